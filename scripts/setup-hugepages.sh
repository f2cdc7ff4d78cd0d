#!/usr/bin/env bash
# Reserve 2 MiB hugepages for ixtcp's DMA memory.
#
#   setup-hugepages.sh [N]     make sure at least N (default 512, 1 GiB) are reserved
#
# ixtcp maps hugepages anonymously (mmap with MAP_HUGETLB | MAP_HUGE_2MB), so
# no hugetlbfs mount is needed: reserving pages in the kernel's pool is all.
# Running it again is harmless; it never lowers a larger reservation.
# SYSFS_ROOT (default /sys) points the script at another tree, for tests.

set -euo pipefail

SYSFS_ROOT=${SYSFS_ROOT:-/sys}
POOL=$SYSFS_ROOT/kernel/mm/hugepages/hugepages-2048kB
PROG=${0##*/}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

want=${1:-512}
[[ $want =~ ^[0-9]+$ ]] || die "'$want' is not a number of hugepages (usage: $PROG [N], default 512)"
want=$((10#$want))
[[ $# -le 1 ]] || die "too many arguments (usage: $PROG [N])"
[[ -d $POOL ]] || die "$POOL does not exist: this kernel offers no 2 MiB hugepages"

have=$(<"$POOL/nr_hugepages")
if ((have >= want)); then
    echo "$have 2 MiB hugepages already reserved (wanted at least $want); nothing to do"
else
    if [[ $SYSFS_ROOT == /sys && $EUID -ne 0 ]]; then
        die "must run as root to reserve hugepages (writes $POOL/nr_hugepages)"
    fi
    echo "$want" >"$POOL/nr_hugepages" 2>/dev/null || die "writing $want to $POOL/nr_hugepages failed"
    got=$(<"$POOL/nr_hugepages")
    if ((got < want)); then
        die "the kernel reserved only $got of $want hugepages (memory too fragmented?); free some memory and \
run again, or reserve them at boot with hugepagesz=2M hugepages=$want on the kernel command line"
    fi
    echo "reserved $got 2 MiB hugepages (was $have)"
fi
free=$(<"$POOL/free_hugepages")
echo "$free of $(<"$POOL/nr_hugepages") are free; no hugetlbfs mount is needed (ixtcp maps them anonymously)"
