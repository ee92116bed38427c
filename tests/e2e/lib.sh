# Helpers shared by the end-to-end scripts (sourced). A script sets BIN (binaries) and W (its work directory)
# before calling hs.
FAILS=0 PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "PASS $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }
# check WHAT CMD...: PASS when CMD succeeds. `!` cannot be passed as a command: use `not`.
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
quiet() { "$@" >/dev/null 2>&1; }
not() { ! "$@"; }
# hs NAME VERB...: the CLI against the daemon whose control socket is $W/NAME.sock.
hs() { local s=$1; shift; "$BIN/hostsec" --socket "$W/$s.sock" "$@"; }
# jq_ EXPR: a Python expression over the JSON on stdin (as `d`), printed.
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
