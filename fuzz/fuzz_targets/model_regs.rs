//! `cargo fuzz run model_regs`: register access sequences, DMA contents
//! and frames into the 82599 model (see `ixtcp_fuzz::model_regs`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ixtcp_fuzz::model_regs::run(data));
