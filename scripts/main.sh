#!/usr/bin/env bash
# The main job on the built-in default: no NIC and no root needed. Builds the
# examples optimised and runs `bench`: every workload on ixtcp (server and
# client hosts over two linked software 82599s in this process) and on the
# Linux kernel (epoll over loopback), same core split, in one run, then
# prints the table of per-core figures and ratios. Takes about a minute.
# Extra arguments go to bench (e.g. --quick, --json FILE, --plot FILE.svg).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p ixtcp-examples
"${CARGO_TARGET_DIR:-target}"/release/bench "$@"
