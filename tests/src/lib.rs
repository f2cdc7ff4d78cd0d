//! Helpers shared by the cross-crate integration tests.
#![forbid(unsafe_code)]
