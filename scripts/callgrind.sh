#!/usr/bin/env bash
# Instructions per packet of the driver (rx_batch, tx_batch, the mempool) and
# of the model, counted by callgrind over two fixed workloads
# (driver/benches/callgrind.rs: 200 000 frames of 60 bytes in batches of 32,
# tx_batch on one model, rx_batch on a linked one): `plain` non-IP frames,
# then `offload` TCP/IPv4 frames asking for checksum insertion (the bench
# fails unless every one arrives with good verdicts). Instruction counts are
# repeatable on the same binary, unlike times on a shared machine.
#
# The split uses exclusive costs by function (code inlined into a function
# counts for it): driver = ixtcp_driver::queue, ::mempool, ::dma; model =
# ixtcp_driver::model and the in-memory wire, with crossbeam_queue's functions: in this workload they
# are the wire's frame handoff (the mempool's shared return queue is used
# only off the owning thread and once when the owner claims the pool). The
# mempool row is what runs in the mempool's own functions (alloc, a
# buffer's drop, their slow paths); the rings' refills and TX cleaning
# inline the owner's stack pushes and pops into the rx_batch and tx_batch
# rows. The benchmark makes each driver call (tx_batch, rx_batch, alloc,
# dropping the received buffers) in a function of its own that is never
# inlined (`callgrind::driver_*`, counted in the call's row), so none of the
# driver's work hides in its main.
#
# `scripts/callgrind.sh layers [WORKLOAD…] [--transactions N]` counts
# instructions per transaction by layer instead (model, driver, stack,
# smoltcp, sockapi, application, other) for echo and HTTP over two linked
# ixtcp hosts: scripts/callgrind-layers.sh, which says how.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: scripts/setup.sh installs it" >&2; exit 1; }
if [ "${1:-}" = layers ]; then
  shift
  exec scripts/callgrind-layers.sh "$@"
fi
cargo bench -p ixtcp-driver --bench callgrind --no-run 2>/dev/null
bin=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/callgrind-* | grep -v '\.d$' | head -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# One workload: `plain` (non-IP frames, no offload; the driver row's target
# applies to it) or `offload` (TCP/IPv4 frames asking for IPv4 and TCP
# checksum insertion, which the model performs and counts in its row).
run() {
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.out" "$bin" "$1" >/dev/null 2>"$out/$1.log" ||
    { cat "$out/$1.log" >&2; exit 1; }
  callgrind_annotate --inclusive=no --auto=no --threshold=100 "$out/$1.out" 2>/dev/null >"$out/$1.self"
  awk -v packets=200000 -v mode="$1" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1; next }
    /^ *[0-9,]+ \(/ {
      n = $1; gsub(",", "", n)
      if ($0 ~ /ixtcp_driver::queue::RxQueue<R>::|ixtcp_driver::queue::RxScan|callgrind::driver_rx/) rx += n
      else if ($0 ~ /ixtcp_driver::queue::TxQueue<R>::|ixtcp_driver::queue::pad_short_frame|ixtcp_driver::queue::write_context|callgrind::driver_tx/) tx += n
      else if ($0 ~ /ixtcp_driver::mempool|ixtcp_driver::dma::|callgrind::driver_alloc|callgrind::driver_free/) pool += n
      else if ($0 ~ /ixtcp_driver::model|ixtcp_driver::wire|crossbeam_queue::/) model += n
    }
    END {
      printf "%s: instructions per packet (callgrind, %d packets of 60 bytes, batch 32)\n", mode, packets
      printf "  rx_batch                 %7.1f\n", rx / packets
      printf "  tx_batch (with cleaning) %7.1f\n", tx / packets
      printf "  mempool alloc/free       %7.1f\n", pool / packets
      printf "  driver total             %7.1f\n", (rx + tx + pool) / packets
      printf "  model (both ends)        %7.1f\n", model / packets
      printf "  whole program            %7.1f   (also malloc/memcpy of the in-memory wire and the benchmark loop)\n", total / packets
    }' "$out/$1.self"
}
run plain
run offload
