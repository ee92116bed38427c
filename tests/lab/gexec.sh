#!/bin/bash
# Run a shell command inside a lab guest over the 9p command channel; prints its output, returns its exit code
# (124: timeout, 125: guest not running).
# Usage: tests/lab/gexec.sh NAME 'command ...' [TIMEOUT_S=120]
set -u
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
[ $# -ge 2 ] || { sed -n '2,4p' "$0" >&2; exit 2; }
lab_gexec "$@"
