#!/usr/bin/env bash
# The SYN-flood measurement of issue 10, side by side with the kernel, so
# that it can be repeated:
#
#   ixtcp:  httpd --nic tap:ixsf0 --cores 2 on a TAP device in namespace A
#           (10.87.0.1; the kernel's side of the TAP is 10.87.0.2);
#   kernel: python3 -m http.server 80 in namespace B (10.88.0.1,
#           net.ipv4.tcp_syncookies = 1), reached over a veth pair from
#           namespace C (10.88.0.2).
#
# Against each, from the client side: `hping3 -S -p 80 --rand-source -i u50`
# (about 20 000 SYN/s, random spoofed sources), and after 1 s of flood
# REQUESTS fetches of the page, one after the other, each
# `curl -s -o /dev/null -m 10 -w %{http_code}` (no retries); a fetch that
# answers 200 within the 10 s counts as served.
#
# Usage (root):  scripts/synflood.sh [on|off|both]   (ixtcp's syn_cookies; default both)
# Environment:   HTTPD=path to an httpd binary (default: build the release one),
#                REQUESTS (default 20), FLOOD_INTERVAL (hping3 -i, default u50).
#
# Network rule: random spoofed sources are safe here because no reply can
# leave the namespaces. Every interface is inside a namespace this script
# creates; none has a default route, forwarding stays off (a new namespace
# starts with ip_forward = 0, and this script sets it to 0 again), and
# httpd runs with no gateway, so a SYN-ACK to a spoofed address off the /24
# has no route and is dropped, and one on the /24 only draws an ARP request
# that no one answers. The namespaces and every process are removed on any
# exit (trap).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "synflood: needs root (network namespaces, TAP, hping3)" >&2
  exit 1
fi
for tool in ip hping3 curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "synflood: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
which=${1:-both}
case $which in on | off | both) ;; *) echo "synflood: usage: $0 [on|off|both]" >&2; exit 2 ;; esac
REQUESTS=${REQUESTS:-20}
FLOOD_INTERVAL=${FLOOD_INTERVAL:-u50}

cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
if [[ -z ${HTTPD:-} ]]; then
  cargo build --release --locked -q -p ixtcp-examples --bin httpd
  HTTPD=$target/release/httpd
fi

tag=$$
ns_ix=ixsf-ix-$tag
ns_ksrv=ixsf-ksrv-$tag
ns_kcli=ixsf-kcli-$tag
work=$(mktemp -d)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "$ns_ix" "$ns_ksrv" "$ns_kcli"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The page both servers serve: 4 KiB.
mkdir -p "$work/www"
head -c 4096 /dev/urandom | od -An -tx1 | head -c 4096 >"$work/www/index.html"

no_forwarding() {
  ip netns exec "$1" sysctl -q -w net.ipv4.ip_forward=0
}

# flood NS TARGET: hping3 in NS against TARGET:80 until killed; prints its pid.
flood() {
  ip netns exec "$1" hping3 -S -p 80 --rand-source -i "$FLOOD_INTERVAL" -q "$2" >/dev/null 2>&1 &
  echo $!
}

# fetches NS URL: REQUESTS fetches one after the other; prints how many got 200.
fetches() {
  local served=0 code
  for _ in $(seq "$REQUESTS"); do
    code=$(ip netns exec "$1" curl -s -o /dev/null -m 10 -w '%{http_code}' "$2" || true)
    if [[ $code == 200 ]]; then served=$((served + 1)); fi
  done
  echo "$served"
}

# wait_up NS URL: the server answers (before any flood), or give up after 20 s.
wait_up() {
  for _ in $(seq 100); do
    ip netns exec "$1" curl -s -o /dev/null -m 2 "$2" && return 0
    sleep 0.2
  done
  echo "synflood: $2 never answered" >&2
  return 1
}

ixtcp() {
  local cookies=$1
  ip netns add "$ns_ix"
  no_forwarding "$ns_ix"
  ip -n "$ns_ix" link set lo up
  printf 'ip = "10.87.0.1"\nprefix_len = 24\nsyn_cookies = %s\n' "$cookies" >"$work/ixtcp.toml"
  # No --gateway: replies to spoofed sources off the /24 have no route.
  ip netns exec "$ns_ix" "$HTTPD" --nic tap:ixsf0 --config "$work/ixtcp.toml" --cores 2 --port 80 \
    --root "$work/www" --stats >"$work/httpd.out" 2>&1 &
  local httpd=$!
  pids+=("$httpd")
  for _ in $(seq 100); do
    ip -n "$ns_ix" link show dev ixsf0 >/dev/null 2>&1 && break
    sleep 0.2
  done
  ip -n "$ns_ix" addr add 10.87.0.2/24 dev ixsf0
  ip -n "$ns_ix" link set dev ixsf0 up
  wait_up "$ns_ix" http://10.87.0.1/
  local f
  f=$(flood "$ns_ix" 10.87.0.1)
  pids+=("$f")
  sleep 1
  local served
  served=$(fetches "$ns_ix" http://10.87.0.1/)
  kill "$f"
  wait "$f" 2>/dev/null || true
  kill -INT "$httpd"
  wait "$httpd" || true
  local counters
  counters=$(grep -o 'syn_cookies_[a-z]* [0-9]*\|drop_backlog_full [0-9]*\|conns_opened_passive [0-9]*' "$work/httpd.out" |
    tr '\n' ' ' || true)
  echo "ixtcp httpd --cores 2, syn_cookies = $cookies: served $served of $REQUESTS during the flood (counters per core: $counters)"
  ip netns del "$ns_ix"
}

kernel() {
  ip netns add "$ns_ksrv"
  ip netns add "$ns_kcli"
  no_forwarding "$ns_ksrv"
  no_forwarding "$ns_kcli"
  ip -n "$ns_ksrv" link set lo up
  ip -n "$ns_kcli" link set lo up
  ip link add ixsfk0 netns "$ns_ksrv" type veth peer name ixsfk1 netns "$ns_kcli"
  ip -n "$ns_ksrv" addr add 10.88.0.1/24 dev ixsfk0
  ip -n "$ns_kcli" addr add 10.88.0.2/24 dev ixsfk1
  ip -n "$ns_ksrv" link set dev ixsfk0 up
  ip -n "$ns_kcli" link set dev ixsfk1 up
  ip netns exec "$ns_ksrv" sysctl -q -w net.ipv4.tcp_syncookies=1
  ip netns exec "$ns_ksrv" python3 -m http.server 80 --bind 10.88.0.1 --directory "$work/www" >/dev/null 2>&1 &
  pids+=("$!")
  wait_up "$ns_kcli" http://10.88.0.1/
  local f
  f=$(flood "$ns_kcli" 10.88.0.1)
  pids+=("$f")
  sleep 1
  local served
  served=$(fetches "$ns_kcli" http://10.88.0.1/)
  kill "$f"
  wait "$f" 2>/dev/null || true
  local cookies
  cookies=$(ip netns exec "$ns_ksrv" nstat -az TcpExtSyncookiesSent 2>/dev/null | awk '/TcpExtSyncookiesSent/ {print $2}' || true)
  echo "kernel python3 -m http.server, tcp_syncookies = 1: served $served of $REQUESTS during the flood (SyncookiesSent ${cookies:-?})"
}

case $which in
  on) ixtcp true ;;
  off) ixtcp false ;;
  both)
    ixtcp false
    ixtcp true
    ;;
esac
kernel
