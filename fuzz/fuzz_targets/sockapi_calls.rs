//! `cargo fuzz run sockapi_calls`: socket API call sequences (see
//! `ixtcp_fuzz::sockapi_calls`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ixtcp_fuzz::sockapi_calls::run(data));
