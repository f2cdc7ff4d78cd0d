//! `cargo fuzz run http_request`: request bytes into the HTTP server's
//! parser path (see `ixtcp_fuzz::http_request`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ixtcp_fuzz::http_request::run(data));
