//! Shared command-line handling for the ixtcp examples.
#![forbid(unsafe_code)]
