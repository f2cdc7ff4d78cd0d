#!/usr/bin/env bash
# The test command: formatting, lints, and every test of the workspace.
# Tests that need root, /dev/net/tun or hugepages run when they can and skip
# with a message when they cannot, unless IXTCP_REQUIRE_PEER=1 or
# IXTCP_REQUIRE_HUGEPAGES=1 makes such a skip a failure (.ci/run sets both).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it starts, so a slow run shows where its time went.
step() {
  echo "test.sh: [$((SECONDS / 60))m$((SECONDS % 60))s] $*" >&2
  "$@"
}

step scripts/setup.sh
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets --locked -- -D warnings
step cargo test --workspace --locked --no-fail-fast

# Fuzzing (a separate step; the fuzz crate is outside the workspace): every
# checked-in corpus and regression input replayed as a test, then a short
# libFuzzer run of each target (scripts/fuzz.sh SECONDS for longer runs).
step cargo test --manifest-path fuzz/Cargo.toml --release --locked
step scripts/fuzz.sh 20
echo "test.sh: [$((SECONDS / 60))m$((SECONDS % 60))s] done" >&2
