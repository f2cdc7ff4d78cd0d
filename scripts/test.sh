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

# Fuzzing (the fuzz crate is outside the workspace): one ASan build of the
# targets, each of which first replays every checked-in corpus and
# regression input, then fuzzes for 20 s (scripts/fuzz.sh SECONDS for longer
# runs). The same inputs replay without libFuzzer, plus random ones, in
# `cargo test --manifest-path fuzz/Cargo.toml --release`, left out here
# because it builds the fuzz crate a second time (over 2 minutes).
step scripts/fuzz.sh 20
echo "test.sh: [$((SECONDS / 60))m$((SECONDS % 60))s] done" >&2
