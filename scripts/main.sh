#!/usr/bin/env bash
# The main job on the built-in default: no NIC and no root needed. Builds
# the examples optimised and runs pktgen on the software 82599 for a few
# seconds (as root it also measures the Linux kernel's raw send path in the
# same run and prints the ratio).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p ixtcp-examples
compare=()
[[ $(id -u) -eq 0 ]] && compare=(--compare-kernel)
target/release/pktgen --nic model --seconds "${SECONDS_TO_RUN:-5}" "${compare[@]}"
