//! Every fuzz target as a plain test: each checked-in corpus file (seeds
//! and regressions), then a deterministic stream of random inputs
//! (`IXTCP_FUZZ_CASES`, default 300 per target; `IXTCP_SEED` to change
//! the stream). Runs on the stable toolchain without libFuzzer.
use std::path::Path;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn corpus(target: &str, run: fn(&[u8])) {
    for sub in ["corpus", "regressions"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(sub).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            eprintln!("replay {}", f.display());
            run(&data);
        }
    }
}

fn random(target: &str, run: fn(&[u8])) {
    let seed = std::env::var("IXTCP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xf022);
    let cases = std::env::var("IXTCP_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for case in 0..cases {
        let len = rng.random_range(0..4096);
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        eprintln!("{target}: seed {seed} case {case} ({len} bytes)");
        run(&data);
    }
}

#[test]
fn stack_frames_corpus_and_random_inputs() {
    corpus("stack_frames", ixtcp_fuzz::stack_frames::run);
    random("stack_frames", ixtcp_fuzz::stack_frames::run);
}

#[test]
fn model_regs_corpus_and_random_inputs() {
    corpus("model_regs", ixtcp_fuzz::model_regs::run);
    random("model_regs", ixtcp_fuzz::model_regs::run);
}

#[test]
fn http_request_corpus_and_random_inputs() {
    corpus("http_request", ixtcp_fuzz::http_request::run);
    random("http_request", ixtcp_fuzz::http_request::run);
}

#[test]
fn sockapi_calls_corpus_and_random_inputs() {
    corpus("sockapi_calls", ixtcp_fuzz::sockapi_calls::run);
    random("sockapi_calls", ixtcp_fuzz::sockapi_calls::run);
}
