//! `cargo fuzz run stack_frames`: frames into a stack core through the
//! 82599 model's receive path (see `ixtcp_fuzz::stack_frames`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ixtcp_fuzz::stack_frames::run(data));
