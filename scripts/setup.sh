#!/usr/bin/env bash
# Installs what building and testing ixtcp needs on a fresh Debian machine:
# the system tools the tests drive (iproute2 for network namespaces, curl as
# an HTTP client, tshark to read pcap captures, valgrind for instruction
# counts, hping3 for the SYN-flood test and scripts/synflood.sh, ping and
# python3 for the UDP test against the kernel, a C compiler for the C API's
# tests) and the Rust components (rustfmt, clippy). Safe to run again: it
# only installs what is missing. Without root it only reports what it would
# install, since the tests that need these tools skip without root anyway.
set -euo pipefail

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
command -v hping3 >/dev/null 2>&1 || need+=(hping3)
# The UDP test on TAP: the kernel's ping, and a Python UDP client.
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The C API's tests compile C programs against libmtcp.
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)

if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # tshark asks whether non-root users may capture; the answer does not matter here.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: not root, so not installing ${need[*]}; tests that need them will skip"
  fi
fi

if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" || true
  done
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi
