#!/usr/bin/env bash
# Show which driver owns each ixgbe-family NIC, and move NICs between the
# kernel's ixgbe driver and vfio-pci (for ixtcp's VFIO access path).
#
#   bind.sh --status                     list Intel 82599/X520/X540 NICs
#   bind.sh vfio-pci 0000:03:00.0 ...    hand NICs to vfio-pci
#   bind.sh ixgbe 0000:03:00.0 ...       give them back to the kernel driver
#   bind.sh --unbind 0000:03:00.0 ...    detach them from any driver
#
# --force binds even a NIC whose network interface is up.
# SYSFS_ROOT (default /sys) points the script at another tree, for tests.

set -euo pipefail

SYSFS_ROOT=${SYSFS_ROOT:-/sys}
PCI=$SYSFS_ROOT/bus/pci
PROG=${0##*/}
FORCE=0

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage() {
    cat <<EOF
usage: $PROG --status
       $PROG [--force] DRIVER ADDRESS...     (DRIVER: vfio-pci, ixgbe, ...)
       $PROG --unbind ADDRESS...
ADDRESS is a PCI address as \`lspci -D\` prints it (0000:03:00.0) or 03:00.0.
EOF
}

# The model name of a known ixgbe device id (4 hex digits, lower case), or
# nothing; ids the driver refuses (their link setup is not implemented) say
# so. Kept in step with SUPPORTED_DEVICES and REFUSED_DEVICES in
# driver/src/board.rs.
model_name() {
    case $1 in
        10f7) echo "82599 KX4, not supported" ;;
        10f8) echo "82599 combo backplane, not supported" ;;
        10f9) echo "82599 CX4, not supported" ;;
        10fb) echo "82599 SFP+" ;;
        10fc) echo "82599 XAUI LOM, not supported" ;;
        1507) echo "82599 SFP+ EM" ;;
        1514) echo "82599 KX4 mezzanine, not supported" ;;
        1517) echo "82599 KR, not supported" ;;
        151c) echo "82599 T3 LOM, not supported" ;;
        1529) echo "82599 SFP+ FCoE" ;;
        152a) echo "82599 backplane FCoE, not supported" ;;
        154a) echo "82599 SFP+ SF QP (X520-4)" ;;
        154d) echo "82599 SFP+ SF2" ;;
        154f) echo "82599 LS, not supported" ;;
        1557) echo "82599EN SFP+" ;;
        1558) echo "82599 QSFP+ SF QP (X520-Q1), not supported" ;;
        1528) echo "X540-T, not supported" ;;
        1560) echo "X540-T1, not supported" ;;
    esac
}

# Reads a sysfs hex attribute as lower-case digits without "0x".
read_hex() {
    local v
    v=$(<"$1") || return 1
    v=${v#0x}
    echo "${v,,}"
}

need_root() {
    if [[ $SYSFS_ROOT == /sys && $EUID -ne 0 ]]; then
        die "must run as root: binding drivers writes to $PCI"
    fi
}

# Prints the canonical form of a PCI address, or dies.
normalize() {
    local a=${1,,}
    [[ $a =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && a=0000:$a
    if [[ ! $a =~ ^[0-9a-f]{4,8}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$ ]]; then
        die "'$1' is not a PCI address (expected 0000:03:00.0 or 03:00.0, as \`lspci -D\` prints)"
    fi
    [[ -d $PCI/devices/$a ]] || die "no PCI device $a ($PCI/devices/$a does not exist); see \`$PROG --status\`"
    echo "$a"
}

current_driver() {
    local link=$PCI/devices/$1/driver
    if [[ -L $link ]]; then
        basename "$(readlink "$link")"
    fi
}

# Prints the model name if ADDRESS is a supported Intel network controller.
ixgbe_model() {
    local dev=$PCI/devices/$1 vendor class id model
    vendor=$(read_hex "$dev/vendor") || return 1
    class=$(read_hex "$dev/class") || return 1
    id=$(read_hex "$dev/device") || return 1
    [[ $vendor == 8086 && $class == 02* ]] || return 1
    model=$(model_name "$id")
    [[ -n $model ]] || return 1
    echo "$model"
}

# Network interfaces of a device, space separated.
interfaces() {
    local n names=()
    for n in "$PCI/devices/$1"/net/*; do
        [[ -e $n ]] && names+=("${n##*/}")
    done
    echo "${names[*]:-}"
}

sysfs_write() {
    local value=$1 file=$2
    [[ -e $file ]] || die "cannot write '$value': $file does not exist"
    printf '%s' "$value" 2>/dev/null >"$file" || die "writing '$value' to $file failed"
}

load_driver() {
    local driver=$1
    [[ -d $PCI/drivers/$driver ]] && return 0
    if [[ $SYSFS_ROOT == /sys ]]; then
        modprobe "$driver" || die "cannot load the $driver module (modprobe $driver)"
    fi
    [[ -d $PCI/drivers/$driver ]] || die "driver $driver is not loaded ($PCI/drivers/$driver missing)"
}

unbind() {
    local addr=$1 drv
    drv=$(current_driver "$addr")
    if [[ -z $drv ]]; then
        echo "$addr: bound to no driver"
        return 0
    fi
    sysfs_write "$addr" "$PCI/devices/$addr/driver/unbind"
    echo "$addr: unbound from $drv"
}

bind() {
    local driver=$1 addr=$2 model drv ifs n
    model=$(ixgbe_model "$addr") ||
        die "$addr is not an Intel ixgbe-family network controller (82599, X520, X540); refusing to rebind it"
    drv=$(current_driver "$addr")
    if [[ $drv == "$driver" ]]; then
        echo "$addr ($model): already bound to $driver"
        return 0
    fi
    ifs=$(interfaces "$addr")
    if [[ $FORCE -eq 0 && -n $ifs ]]; then
        for n in $ifs; do
            if [[ $(cat "$PCI/devices/$addr/net/$n/operstate" 2>/dev/null) == up ]]; then
                die "$addr is interface $n, which is up (in use?); bring it down first or pass --force"
            fi
        done
    fi
    load_driver "$driver"
    if [[ -n $drv ]]; then
        unbind "$addr"
    fi
    if [[ $driver == vfio-pci ]]; then
        # driver_override makes vfio-pci take the device without adding its
        # id to vfio-pci's table, which would grab every port of that model.
        sysfs_write vfio-pci "$PCI/devices/$addr/driver_override"
        sysfs_write "$addr" "$PCI/drivers_probe"
    else
        # An empty line clears an override left by an earlier vfio-pci bind.
        if [[ -e $PCI/devices/$addr/driver_override ]]; then
            printf '\n' 2>/dev/null >"$PCI/devices/$addr/driver_override" ||
                die "clearing $PCI/devices/$addr/driver_override failed"
        fi
        sysfs_write "$addr" "$PCI/drivers/$driver/bind"
    fi
    drv=$(current_driver "$addr")
    [[ $drv == "$driver" ]] ||
        die "$addr did not bind to $driver (now: ${drv:-no driver}); see \`dmesg | tail\`"
    echo "$addr ($model): bound to $driver"
    if [[ $driver == vfio-pci && -L $PCI/devices/$addr/iommu_group ]]; then
        n=$(basename "$(readlink "$PCI/devices/$addr/iommu_group")")
        echo "$addr: IOMMU group $n, /dev/vfio/$n"
    fi
}

status() {
    local dev addr model drv group ifs found=0
    for dev in "$PCI"/devices/*; do
        [[ -d $dev ]] || continue
        addr=${dev##*/}
        model=$(ixgbe_model "$addr") || continue
        found=1
        drv=$(current_driver "$addr")
        group=-
        [[ -L $dev/iommu_group ]] && group=$(basename "$(readlink "$dev/iommu_group")")
        ifs=$(interfaces "$addr")
        printf '%s  %-28s  driver=%-9s  iommu_group=%-4s  if=%s\n' \
            "$addr" "$model (0x$(read_hex "$dev/device"))" "${drv:-none}" "$group" "${ifs:--}"
    done
    if [[ $found -eq 0 ]]; then
        echo "no Intel ixgbe-family network controllers under $PCI/devices"
    fi
}

main() {
    [[ $# -gt 0 ]] || {
        usage >&2
        exit 2
    }
    if [[ $1 == --force ]]; then
        FORCE=1
        shift
        [[ $# -gt 0 ]] || die "--force needs a DRIVER and ADDRESS"
    fi
    local a addr driver
    case $1 in
        -h | --help) usage ;;
        -s | --status) status ;;
        -u | --unbind)
            shift
            [[ $# -gt 0 ]] || die "--unbind needs at least one ADDRESS"
            need_root
            for a in "$@"; do
                addr=$(normalize "$a")
                unbind "$addr"
            done
            ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            driver=$1
            shift
            [[ $# -gt 0 ]] || die "binding to $driver needs at least one ADDRESS"
            need_root
            for a in "$@"; do
                addr=$(normalize "$a")
                bind "$driver" "$addr"
            done
            ;;
    esac
}

main "$@"
