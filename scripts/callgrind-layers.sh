#!/usr/bin/env bash
# Instructions per transaction by layer, counted by callgrind over a fixed,
# deterministic workload (run as `scripts/callgrind.sh layers [WORKLOAD…]
# [--transactions N]`; workloads echo-persistent, echo-new-conn,
# http-keep-alive, default all three).
#
# The workload is examples/benches/layers.rs: an ixtcp server and an ixtcp
# client over two linked software 82599s, both hosts' stack cores and both
# applications stepped from one thread on a virtual clock, with the bench's
# host configurations and application code (64 connections, 64-byte echo,
# the built-in page over HTTP keep-alive); 500 warm-up transactions, then
# 2 000 measured ones. Nothing in it waits for time or another thread, so
# the same binary counts the same instructions on every run.
#
# Both sides are ixtcp, so each side is counted in a run of its own:
# callgrind collects only inside that side's turn function
# (--collect-atstart=no --toggle-collect=layers::server_turn, or
# client_turn), one iteration of that host's stack core (its model's pump,
# the driver, the stack) and of its application loop. The warm-up, moving
# the virtual clock and the closing run outside both turns. The server
# column is what a server core costs per transaction; the client column is
# the load generator's cost.
#
# Layers by exclusive cost per function (callgrind_annotate --inclusive=no;
# code inlined into a function counts for that function), by the first of
# these crates its name mentions:
#   model       ixtcp_driver::model, ixtcp_driver::wire (the NIC's work)
#               and crossbeam_queue (here the in-memory wire's frame
#               handoff: on one thread the mempool never uses its shared
#               return queue)
#   driver      the rest of ixtcp_driver (queue, mempool, dma, device,
#               time), and ixtcp_host::nic: its queue adapter's
#               `<PumpedQueue as ixtcp_stack::PacketIo>::rx_batch` is the
#               model's pump and the driver's rx_batch inlined, which the
#               name's `ixtcp_stack::` would otherwise count as stack
#   stack       ixtcp_stack
#   smoltcp     smoltcp
#   sockapi     ixtcp_sockapi
#   application ixtcp_examples (echo, HTTP, the event loops), httparse,
#               hdrhistogram, the harness itself
#   other       everything else: malloc/free, memcpy, libc, std, hashbrown
# The layers add up to callgrind's total for the run: the remainder line
# says so (0).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: scripts/setup.sh installs it" >&2; exit 1; }
workloads=()
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --transactions)
      [ $# -ge 2 ] || { echo "--transactions needs a number" >&2; exit 2; }
      args+=("$1" "$2"); shift 2 ;;
    *) workloads+=("$1"); shift ;;
  esac
done
[ ${#workloads[@]} -gt 0 ] || workloads=(echo-persistent echo-new-conn http-keep-alive)
# The harness binary, as cargo names it (its path is in cargo's JSON output).
bin=$(cargo bench -p ixtcp-examples --bench layers --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*/layers-[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "could not build the cost harness: cargo bench -p ixtcp-examples --bench layers --no-run" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# count WORKLOAD SIDE: callgrind over one side's turns; writes
# $out/WORKLOAD.SIDE (per-layer totals) and $out/WORKLOAD.SIDE.n (transactions).
count() {
  local w=$1 side=$2
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$w.$side" --collect-atstart=no \
    --toggle-collect="layers::${side}_turn*" "$bin" "$w" "${args[@]}" >"$out/$w.$side.stdout" 2>"$out/log" || {
    cat "$out/log" >&2
    exit 1
  }
  awk -v w="$w" '$1 == w && $2 == "transactions" { print $3 }' "$out/$w.$side.stdout" >"$out/$w.$side.n"
  [ -s "$out/$w.$side.n" ] || { echo "the harness said no transaction count for $w" >&2; exit 1; }
  callgrind_annotate --inclusive=no --auto=no --threshold=100 "$out/cg.$w.$side" 2>/dev/null >"$out/self.$w.$side"
  awk '
    BEGIN {
      # Pattern → layer; the longer of two patterns found at the same place wins.
      n = split("ixtcp_driver::model:: model ixtcp_driver::wire:: model ixtcp_driver:: driver ixtcp_host::nic:: driver " \
                "crossbeam_queue:: model ixtcp_stack:: stack smoltcp:: smoltcp ixtcp_sockapi:: sockapi " \
                "ixtcp_examples:: application layers:: application httparse:: application " \
                "hdrhistogram:: application", kv, " ")
      for (i = 1; i < n; i += 2) { pat[i] = kv[i]; lay[i] = kv[i + 1] }
    }
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1; next }
    /^ *[0-9,]+ \(/ {
      c = $1; gsub(",", "", c)
      f = $0
      sub(/^ *[0-9,]+ \([^)]*\) +/, "", f)   # the count and percentage
      sub(/^[^:]*:/, "", f)                   # the source file (or ???)
      sub(/ \[[^]]*\]$/, "", f)              # the object file
      best = "other"; at = 0; len = 0
      for (i = 1; i < n; i += 2) {
        p = index(f, pat[i])
        if (p > 0 && (at == 0 || p < at || (p == at && length(pat[i]) > len))) {
          at = p; len = length(pat[i]); best = lay[i]
        }
      }
      sum[best] += c
    }
    END {
      printf "total %d\n", total
      for (l in sum) printf "%s %d\n", l, sum[l]
    }' "$out/self.$w.$side" >"$out/$w.$side"
}

echo "instructions per transaction by layer (callgrind; each side counted inside its own turns; see scripts/callgrind-layers.sh)"
for w in "${workloads[@]}"; do
  count "$w" server
  count "$w" client
  awk -v w="$w" -v ns="$(cat "$out/$w.server.n")" -v nc="$(cat "$out/$w.client.n")" '
    FILENAME ~ /\.server$/ { s[$1] = $2; next }
    { c[$1] = $2 }
    END {
      printf "\n%s: %d transactions (server side) / %d (client side)\n", w, ns, nc
      printf "  %-40s %10s %10s\n", "layer", "server", "client"
      split("model driver stack smoltcp sockapi application other", order, " ")
      names["model"] = "model (driver::model, driver::wire)"
      names["driver"] = "driver (queue, mempool, dma, ...)"
      names["stack"] = "stack (ixtcp_stack)"
      names["smoltcp"] = "smoltcp"
      names["sockapi"] = "sockapi (ixtcp_sockapi)"
      names["application"] = "application (echo/HTTP, loops)"
      names["other"] = "other (malloc, memcpy, libc, std)"
      for (i = 1; i <= 7; i++) {
        l = order[i]; ss += s[l]; cs += c[l]
        printf "  %-40s %10.1f %10.1f\n", names[l], s[l] / ns, c[l] / nc
      }
      printf "  %-40s %10.1f %10.1f\n", "sum of layers", ss / ns, cs / nc
      printf "  %-40s %10.1f %10.1f\n", "program total (callgrind)", s["total"] / ns, c["total"] / nc
      printf "  %-40s %10d %10d\n", "remainder (total - sum), instructions", s["total"] - ss, c["total"] - cs
    }' "$out/$w.server" "$out/$w.client"
done
