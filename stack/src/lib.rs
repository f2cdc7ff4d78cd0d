//! ixtcp-stack: being built; see the issues.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
