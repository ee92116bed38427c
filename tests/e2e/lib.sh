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
# two_hosts SWITCH A B [bridge|none]: namespaces A (198.51.100.1/24) and B (198.51.100.2/24), each with an eth0
# whose peer end (p1, p2) is in SWITCH, joined there by a bridge br0 (or left unjoined, up, for a wire to join).
two_hosts() {
  local sw=$1 join=${4:-bridge} i=0 h
  ip netns add "$sw"
  [ "$join" = bridge ] && { ip -n "$sw" link add br0 type bridge; ip -n "$sw" link set br0 up; }
  for h in "$2" "$3"; do
    i=$((i + 1))
    ip netns add "$h"
    ip link add eth0 netns "$h" type veth peer name p$i netns "$sw"
    if [ "$join" = bridge ]; then ip -n "$sw" link set p$i master br0 up; else ip -n "$sw" link set p$i up; fi
    ip -n "$h" link set lo up
    ip -n "$h" addr add 198.51.100.$i/24 dev eth0
    ip -n "$h" link set eth0 up
  done
}
