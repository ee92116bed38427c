#!/bin/bash
# End-to-end test of the rule keywords (SPEC §2: LocalSubnet, DNS, WINS ...) resolved from the host's own
# configuration and followed when it changes, in network namespaces:
#   A  198.51.100.1/24 (to B) and 203.0.113.1/24 (to C)   hostsecd with
#        rule "lan"  remote = ["LocalSubnet"]  require
#        rule "dns"  remote = ["DNS"]          bypass   (a single host: more specific than "lan")
#        rule "wins" remote = ["WINS"]         block    (no lease: resolves to nothing, warned about)
#      A's resolv.conf is /etc/netns/hskw-a/resolv.conf (ip netns exec bind-mounts it over /etc/resolv.conf)
#   B  198.51.100.2   hostsecd, require A
#   C  203.0.113.2    no IPsec (the DNS server at first)
# Checks: what the keywords resolve to; B is protected (LocalSubnet) and C passes in cleartext while it is the DNS
# server; after resolv.conf names another server C falls under "lan" (require: its cleartext is dropped) and back;
# an address added to A widens LocalSubnet (rule explain) and its removal narrows it again; the SA pair with B stays
# the same through all of it. Needs root. Prints PASS/FAIL per check; exit 0 only if all passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-kw.XXXXXX)
NA=hskw-a NB=hskw-b NC=hskw-c
ETC=/etc/netns/$NA
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for n in $NA $NB $NC; do ip netns del $n 2>/dev/null; done
  [ -n "${KEEP_W:-}" ] && cp -r "$W" "$KEEP_W"; rm -rf "$W" "$ETC"
}
trap cleanup EXIT
explained() { hs a rule explain --peer "$1" --json | jq_ "(d['rule'] or {}).get('name')"; }
# Polls until the explanation for a peer names the expected rule (the watcher reacts within about 2 s).
explains_as() { local peer=$1 want=$2; for k in $(seq 50); do [ "$(explained "$peer")" = "$want" ] && return 0; sleep 0.2; done; return 1; }
b_spis() { hs a sas --json | jq_ "sorted(q['spi_in'] + '/' + q['spi_out'] for q in d['quick_mode'] if q['peer'].startswith('198.51.100.2'))"; }

command -v ping >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iputils-ping; }

ip netns add $NA; ip netns add $NB; ip netns add $NC
ip link add ab netns $NA type veth peer name ba netns $NB
ip link add ac netns $NA type veth peer name ca netns $NC
ip -n $NA addr add 198.51.100.1/24 dev ab; ip -n $NB addr add 198.51.100.2/24 dev ba
ip -n $NA addr add 203.0.113.1/24 dev ac; ip -n $NC addr add 203.0.113.2/24 dev ca
for n in $NA $NB $NC; do ip -n $n link set lo up; done
ip -n $NA link set ab up; ip -n $NA link set ac up; ip -n $NB link set ba up; ip -n $NC link set ca up
ip -n $NA link add lan2 type veth peer name lan2p; ip -n $NA link set lan2 up; ip -n $NA link set lan2p up
mkdir -p "$ETC"
printf 'search example.test\nnameserver 203.0.113.2\n' > "$ETC/resolv.conf"

cat > "$W/a.toml" <<EOF
[global]
listen = ["198.51.100.1", "203.0.113.1"]
control_socket = "$W/a.sock"
[defaults]
psk = "keywords-e2e-psk-0123456789"
[[rule]]
name = "lan"
remote = ["LocalSubnet"]
action = "require"
[[rule]]
name = "dns"
remote = ["DNS"]
action = "bypass"
[[rule]]
name = "wins"
remote = ["WINS"]
action = "block"
EOF
cat > "$W/b.toml" <<EOF
[global]
listen = ["198.51.100.2"]
control_socket = "$W/b.sock"
[[rule]]
name = "a"
remote = ["198.51.100.1"]
action = "require"
psk = "keywords-e2e-psk-0123456789"
EOF
check "hostsecd A starts" start a $NA --log-level debug
check "hostsecd B starts" start b $NB --log-level debug

check "A's log: LocalSubnet resolved to A's two subnets" \
  grep -q "keywords resolved: remote LocalSubnet (198.51.100.0/24, 203.0.113.0/24).*rule=lan" "$W/a.log"
check "A's log: DNS resolved to the resolv.conf server" grep -q "remote DNS (203.0.113.2).*rule=dns" "$W/a.log"
check "A's log: WINS resolves to nothing, with a warning" grep -q "WARN.*wins.*WINS.*nothing" "$W/a.log"
check "explain: B is under 'lan'" explains_as 198.51.100.2 lan
check "explain: C is under 'dns' (more specific than 'lan')" explains_as 203.0.113.2 dns
check "A pings B (LocalSubnet: require, IKE on demand)" quiet ip netns exec $NA ping -c 3 -W 5 198.51.100.2
check "A pings C in cleartext (DNS: bypass)" quiet ip netns exec $NA ping -c 2 -W 2 203.0.113.2
spis=$(b_spis)
check "an SA pair with B ($spis)" test "$spis" != "[]"

# --- resolv.conf changes -----------------------------------------------------------------------------------------
printf 'search example.test\nnameserver 192.0.2.53\n' > "$ETC/resolv.conf"
check "after resolv.conf changed, C falls under 'lan'" explains_as 203.0.113.2 lan
check "A's log says the keywords were resolved again" grep -q "remote DNS (192.0.2.53).*rule=dns" "$W/a.log"
check "C's cleartext is no longer accepted (require, C runs no IKE)" not quiet ip netns exec $NC ping -c 2 -W 2 203.0.113.1
check "B still pings A" quiet ip netns exec $NB ping -c 2 -W 5 198.51.100.1
check "the SA pair with B is the same" test "$(b_spis)" = "$spis"
printf 'search example.test\nnameserver 203.0.113.2\n' > "$ETC/resolv.conf"
check "resolv.conf back: C is under 'dns' again" explains_as 203.0.113.2 dns
check "C pings A in cleartext again" quiet ip netns exec $NC ping -c 2 -W 2 203.0.113.1

# --- an address comes and goes -----------------------------------------------------------------------------------
check "192.0.2.7 is under no rule" explains_as 192.0.2.7 None
ip -n $NA addr add 192.0.2.1/24 dev lan2
check "an address added to A: LocalSubnet covers 192.0.2.0/24" explains_as 192.0.2.7 lan
ip -n $NA addr del 192.0.2.1/24 dev lan2
check "the address removed: 192.0.2.7 is under no rule again" explains_as 192.0.2.7 None
check "the SA pair with B is still the same" test "$(b_spis)" = "$spis"
check "B still pings A" quiet ip netns exec $NB ping -c 2 -W 5 198.51.100.1
check "no panics in the logs" not grep -q "panicked" "$W/a.log" "$W/b.log"

echo "keywords: $PASSES passed, $FAILS failed"
if [ "$FAILS" -gt 0 ]; then
  echo "--- A's log (last 40 lines)"; tail -40 "$W/a.log"
fi
[ "$FAILS" = 0 ]
