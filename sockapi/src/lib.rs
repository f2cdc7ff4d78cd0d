//! ixtcp-sockapi: being built; see the issues.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
