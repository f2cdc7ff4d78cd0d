#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60).
#
#   scripts/fuzz.sh [SECONDS]
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# nightly-only flags (-Zsanitizer, coverage instrumentation); the stable
# toolchain ships the AddressSanitizer runtime, so targets run under ASan
# (FUZZ_SANITIZER=none to run without it, about twice as fast). The checked-
# in corpus (fuzz/corpus/TARGET) and regression inputs (fuzz/regressions/TARGET)
# are read as seeds, so each run replays them first; new inputs go to a scratch
# directory, so the tree stays clean. A crash stops the script with the
# reproducer in fuzz/artifacts/TARGET/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# then copy it into fuzz/regressions/TARGET/ with the fix, so that
#   cargo test --manifest-path fuzz/Cargo.toml
# replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo fuzz build --sanitizer "$sanitizer"
for target in $(cargo fuzz list); do
    mkdir -p "$scratch/$target" "corpus/$target"
    echo "fuzz.sh: $target for ${secs}s"
    set +e
    # libFuzzer runs every input of the seed directories before it mutates:
    # the checked-in corpus and the regression inputs are replayed under ASan.
    seeds=("corpus/$target")
    if [ -d "regressions/$target" ]; then seeds+=("regressions/$target"); fi
    cargo fuzz run --sanitizer "$sanitizer" "$target" "$scratch/$target" "${seeds[@]}" -- \
        -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
        grep -E '^(INFO: Seed|#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb)|panicked|ERROR|SUMMARY|Test unit written|^ +[0-9]+: '
    status="${PIPESTATUS[0]}"
    set -e
    # grep only hides libFuzzer's progress lines; the status is libFuzzer's.
    if [ "$status" -ne 0 ]; then
        echo "fuzz.sh: $target FAILED (status $status), reproducer in fuzz/artifacts/$target/"
        exit 1
    fi
done
echo "fuzz.sh: every target ran ${secs}s without a crash"
