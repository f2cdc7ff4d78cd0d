#!/usr/bin/env bash
# Builds ixtcp's mTCP-compatible C library and lays it out for C builds:
#
#   OUT/include/mtcp_api.h, OUT/include/mtcp_epoll.h
#   OUT/lib/libmtcp.a, OUT/lib/libmtcp.so
#
# so that an mTCP application builds with
#   cc app.c -I OUT/include -L OUT/lib -lmtcp -lpthread
# (that picks libmtcp.so: run with LD_LIBRARY_PATH=OUT/lib, or link the
# static library with -Wl,-Bstatic -lmtcp -Wl,-Bdynamic -lpthread).
#
# OUT is target/capi, or $CARGO_TARGET_DIR/capi when that is set (the
# built libraries are looked for under the same target directory).
#
# Options:
#   --profile NAME   cargo profile to build (default release; dev for a
#                    debug build)
#   --no-build       lay out libraries already built in --from DIR
#   --from DIR       where libmtcp.a and libmtcp.so are (default: the
#                    profile's directory under the target directory)
#   --out DIR        where to lay out (default: as above)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
profile=release
build=1
from=""
out="$target/capi"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --from) from="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "build-capi.sh: unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done
if [ -z "$from" ]; then
  # Cargo puts the dev profile's output in debug/.
  case "$profile" in dev|test) from="$target/debug" ;; *) from="$target/$profile" ;; esac
fi
if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --locked -p ixtcp-capi --profile "$profile")
fi
for lib in libmtcp.a libmtcp.so; do
  if [ ! -f "$from/$lib" ]; then
    echo "build-capi.sh: $from/$lib is missing (build ixtcp-capi first, or drop --no-build)" >&2
    exit 1
  fi
done
mkdir -p "$out/include" "$out/lib"
cp "$root/capi/include/mtcp_api.h" "$root/capi/include/mtcp_epoll.h" "$out/include/"
# Copy through a temporary name, so a program running from the old
# library never sees a half-written one.
for lib in libmtcp.a libmtcp.so; do
  cp "$from/$lib" "$out/lib/.$lib.tmp"
  mv -f "$out/lib/.$lib.tmp" "$out/lib/$lib"
done
echo "build-capi.sh: headers in $out/include, libraries in $out/lib" >&2
echo "build-capi.sh: cc app.c -I $out/include -L $out/lib -lmtcp -lpthread" >&2
