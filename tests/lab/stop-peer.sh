#!/bin/bash
# Stop lab guests started by run-peer.sh: kills each guest's QEMU by the PID in its pidfile (after checking that
# this PID is still that guest's QEMU) and removes its tap. Usage: tests/lab/stop-peer.sh NAME...
set -u
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
[ $# -ge 1 ] || { sed -n '2,3p' "$0" >&2; exit 2; }
lab_stop_guest "$@"
