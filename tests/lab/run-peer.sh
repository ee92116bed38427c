#!/bin/bash
# Boot one lab guest (QEMU; TCG unless the CPU has VT-x/SVM) on a TAP device in a bridge of a lab namespace.
#
# Usage: tests/lab/run-peer.sh -n NAME -a ADDR/PFX [-6 ADDR6/PFX] [-i strongswan|libreswan|none] [-s NETNS]
#                              [-b BRIDGE] [-g GW] [-m MEM_MB] [-c FILE]...
#   -6 ADDR6/PFX  IPv6 address too (e.g. 2001:db8:1::2/64; without it the guest has IPv6 disabled)
#   -c FILE  copied into the guest's share before boot: swanctl.conf, strongswan.conf, a swanctl/ dir,
#            ipsec.conf + ipsec.secrets (libreswan), setup.sh (run before the IKE daemon starts)
# Defaults: -i strongswan -s lab-host -b br0 -m 512. Image: tests/lab/build/<ike>.img (none: strongswan.img,
# no IKE daemon started). Needs the namespace (tests/lab/net.sh up).
# Share (9p, /lab in the guest): tests/lab/run/NAME/ -> console.log, init.log, charon.log, ready, cmd/
# Commands in the guest: tests/lab/gexec.sh NAME 'swanctl --list-sas'.  Stop: tests/lab/stop-peer.sh NAME
# Root shell: socat -,raw,echo=0 UNIX-CONNECT:tests/lab/run/NAME/console.sock
# Environment: LAB_ACCEL=auto|kvm|tcg, LAB_CPU, LAB_BOOT_TIMEOUT (s, default 300).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
[ $# -gt 0 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
lab_require_root
lab_install_host_pkgs qemu-system-x86 iproute2
lab_boot_guest "$@"
