//! Integration tests that cross every crate: driver, model, stack and
//! sockapi together, with the Linux kernel as the peer (`tests/tests/`).
//! Tests that need one crate's internals live next to that crate instead
//! (`driver/tests`, `stack/tests`, `sockapi/tests`, `examples/tests`).
#![forbid(unsafe_code)]
