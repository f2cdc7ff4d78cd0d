#!/usr/bin/env bash
# The test command: formatting, lints, and every test of the workspace.
# Tests that need root, /dev/net/tun or hugepages run when they can and skip
# with a message when they cannot, unless IXTCP_REQUIRE_PEER=1 or
# IXTCP_REQUIRE_HUGEPAGES=1 makes such a skip a failure (.ci/run sets both).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast

# Fuzzing (a separate step; the fuzz crate is outside the workspace): every
# checked-in corpus and regression input replayed as a test, then a short
# libFuzzer run of each target (scripts/fuzz.sh SECONDS for longer runs).
cargo test --manifest-path fuzz/Cargo.toml --release --locked
scripts/fuzz.sh 20
