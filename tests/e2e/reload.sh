#!/bin/bash
# End-to-end test of configuration changes as an administrator makes them, in network namespaces:
#   A 198.51.100.1   hostsecd, rules "b" (require B) and "c" (require C)
#   B 198.51.100.2   hostsecd, require A
#   C 198.51.100.3   hostsecd, require A
# Checks: `hostsec reload` and SIGHUP under a ping flood to B lose no packet and keep B's SA pair; an invalid file
# changes nothing and says why (exit 2); removing rule "c" deletes its SAs and tells C; a config with 20 typos
# gives 20 messages naming file, line, rule and field, `hostsecd` refuses it with exit 2 and nothing on the host
# changes. Needs root. Prints PASS/FAIL per check; exit 0 only if all passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-rl.XXXXXX)
NA=hsrl-a NB=hsrl-b NC=hsrl-c NS=hsrl-sw
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for n in $NA $NB $NC $NS; do ip netns del $n 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
spis() { hs "$1" sas --json | jq_ "sorted(q['spi_in'] + '/' + q['spi_out'] for q in d['quick_mode'] if q['peer'].startswith('$2:'))"; }

command -v ping >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iputils-ping; }

ip netns add $NS; ip -n $NS link add br0 type bridge; ip -n $NS link set br0 up
i=0
for h in $NA $NB $NC; do
  i=$((i + 1))
  ip netns add $h
  ip link add eth0 netns $h type veth peer name p$i netns $NS
  ip -n $NS link set p$i master br0 up
  ip -n $h link set lo up
  ip -n $h addr add 198.51.100.$i/24 dev eth0
  ip -n $h link set eth0 up
done
snapshot() { # namespace -> its host state
  { ip -n "$1" rule; ip -n "$1" -6 rule; ip -n "$1" route show table all; ip -n "$1" -6 route show table all
    ip netns exec "$1" nft list ruleset; ip -n "$1" -br link; } 2>&1 | grep -v "^$"
}
rule() { printf '[[rule]]\nname = "%s"\nremote = %s\naction = "require"\n' "$1" "$2"; }
conf() { # name me rules...
  local name=$1 me=$2; shift 2
  printf '[global]\nlisten = ["%s"]\ncontrol_socket = "%s/%s.sock"\n' "$me" "$W" "$name"
  printf '[defaults]\npsk = "reload-e2e-psk-0123456789"\n'
  printf '%s\n' "$@"
}
conf a 198.51.100.1 "$(rule b '"198.51.100.2"')" "$(rule c '"198.51.100.3"')" > "$W/a.toml"
conf b 198.51.100.2 "$(rule a '"198.51.100.1"')" > "$W/b.toml"
conf c 198.51.100.3 "$(rule a '"198.51.100.1"')" > "$W/c.toml"
for s in a b c; do n=NA; [ $s = b ] && n=NB; [ $s = c ] && n=NC; check "hostsecd $s starts" start $s ${!n} --log-level debug; done
check "A pings B (SAs on demand)" quiet ip netns exec $NA ping -c 3 -W 5 198.51.100.2
check "A pings C" quiet ip netns exec $NA ping -c 3 -W 5 198.51.100.3
b_before=$(spis a 198.51.100.2)
check "A holds an SA pair with B ($b_before)" test "$b_before" != "[]"

# --- reloads under a ping flood --------------------------------------------------------------------------------
ip netns exec $NA ping -i 0.005 -c 1500 -W 2 198.51.100.2 > "$W/flood.txt" 2>&1 & FLOOD=$!
sleep 1
conf a 198.51.100.1 "$(rule b '"198.51.100.2"')" "$(rule c '"198.51.100.3"')" "$(rule d '["192.0.2.99", "203.0.113.0/24"]')" > "$W/a.toml"
check "hostsec reload with a new rule: exit 0" quiet hs a reload
sleep 1
cp "$W/a.toml" "$W/a.good"
printf '[[rule]]\nname = "broken"\nremote = "198.51.100.0/33"\naction = "require"\n' >> "$W/a.toml"
hs a reload > "$W/reload-bad.txt" 2>&1; rc=$?
check "an invalid file: hostsec reload exits 2" test "$rc" = 2
check "and says which file, line, rule and field: $(head -1 "$W/reload-bad.txt")" \
  grep -q "a.toml:[0-9]*: rule 'broken': field 'remote'" "$W/reload-bad.txt"
check "the running rules are unchanged (3 rules, 'd' among them)" \
  test "$(hs a rules --json | jq_ "len(d)")-$(hs a rules --json | jq_ "'d' in [r['name'] for r in d]")" = "3-True"
cp "$W/a.good" "$W/a.toml"
sleep 1
kill -HUP "$PID_a"
sleep 1
wait $FLOOD
loss=$(grep -o "[0-9.]*% packet loss" "$W/flood.txt")
check "ping flood to B through three reloads: $(grep "packets transmitted" "$W/flood.txt")" test "$loss" = "0% packet loss"
check "B's SA pair is the same after the reloads" test "$(spis a 198.51.100.2)" = "$b_before"

# --- a rule removed ------------------------------------------------------------------------------------------------
conf a 198.51.100.1 "$(rule b '"198.51.100.2"')" > "$W/a.toml"
check "rule 'c' removed: hostsec reload exits 0" quiet hs a reload
gone() { for k in $(seq 30); do [ "$(spis "$1" "$2")" = "[]" ] && return 0; sleep 0.2; done; return 1; }
check "A deleted its SAs with C" gone a 198.51.100.3
check "C was told (DELETE): it holds no SA with A" gone c 198.51.100.1
check "A's log gives the reason" grep -q "rule 'c'.*removed" "$W/a.log"
check "B's SA pair is still the same" test "$(spis a 198.51.100.2)" = "$b_before"

# --- rule test: a fresh negotiation beside the SAs in use ----------------------------------------------------------
hs a rule test b --peer 198.51.100.2 > "$W/ruletest.txt" 2>&1; rc=$?
check "hostsec rule test b --peer B: exit 0, '$(head -1 "$W/ruletest.txt")'" test "$rc" = 0
check "the verdict names the algorithms and the authentication" grep -q "PASS: rule 'b' negotiates with.*psk" "$W/ruletest.txt"
check "B's SA pair is untouched by the test" test "$(spis a 198.51.100.2)" = "$b_before"
check "B still pings A after the test" quiet ip netns exec $NB ping -c 2 -W 5 198.51.100.1
hs a rule test nosuch --peer 198.51.100.2 >/dev/null 2>&1; rc=$?
check "rule test of an unknown rule: exit 2" test "$rc" = 2

# --- a new user's config with 20 typos -------------------------------------------------------------------------------
printf 'an-open-secret-0123456789\n' > "$W/open.psk"; chmod 644 "$W/open.psk"
printf 'a-private-secret-0123456789\n' > "$W/site.psk"; chmod 600 "$W/site.psk"
cat > "$W/typos.toml" <<EOF
[global]
listen = ["198.51.100.1"]
minimum_strength = "strong"
default_action = "allow"
control_socket = "$W/typos.sock"
quick_mode_lifetime = "2m"
[[rule]]
name = "bad-cidr"
remote = "10.0.0.0/33"
action = "bypass"
[[rule]]
name = "host-bits"
remote = ["10.1.0.1/16"]
action = "bypass"
[[rule]]
name = "keyword"
remote = ["DSN"]
action = "bypass"
[[rule]]
name = "big-port"
remote = "10.3.0.1"
protocol = "tcp"
local_ports = ["70000"]
action = "bypass"
[[rule]]
name = "ports-icmp"
remote = "10.4.0.1"
protocol = "icmp"
remote_ports = ["53"]
action = "bypass"
[[rule]]
name = "proto"
remote = "10.5.0.1"
protocol = "tpc"
action = "bypass"
[[rule]]
name = "dup"
remote = "10.6.0.1"
action = "bypass"
[[rule]]
name = "dup"
remote = "10.6.0.2"
action = "bypass"
[[rule]]
name = "open-psk"
remote = "10.7.0.1"
psk_file = "$W/open.psk"
[[rule]]
name = "field"
remtoe = "10.8.0.1"
remote = "10.8.0.1"
action = "bypass"
[[rule]]
name = "action"
remote = "10.9.0.1"
action = "allow"
[[rule]]
name = "both-psk"
remote = "10.10.0.1"
psk = "inline secret 0123456789"
psk_file = "$W/site.psk"
[[rule]]
name = "range"
remote = "10.11.0.9-10.11.0.1"
action = "bypass"
[[rule]]
name = "enabled"
remote = "10.12.0.1"
enabled = "yes"
action = "bypass"
[[rule]]
name = "remote-id"
remote = "10.13.0.1"
psk = "inline secret 0123456789"
remote_id = "user:bob"
[[rule]]
name = "port-range"
remote = "10.14.0.1"
protocol = "udp"
remote_ports = ["600-500"]
action = "bypass"
[[rule]]
name = "mixed"
remote = ["any", "10.15.0.1"]
action = "bypass"
[[rule]]
name = "lifetime"
remote = "10.16.0.1"
action = "bypass"
main_mode_lifetime = "3000m"
EOF
"$BIN/hostsec" config check "$W/typos.toml" > "$W/typos.out" 2>&1; rc=$?
check "hostsec config check: exit 2" test "$rc" = 2
n=$(grep -c "typos.toml:[0-9]*: " "$W/typos.out")
check "20 messages, each with file and line (got $n)" test "$n" = 20
check "each names the rule or the global field" \
  test "$(grep "typos.toml:[0-9]*: " "$W/typos.out" | grep -vc "rule '\|field 'global\.")" = 0
check "the world-readable PSK file is named" grep -q "open.psk.*\(group\|other\|readable\)" "$W/typos.out"
check "port 70000 says what is allowed" grep -q "70000.*65535" "$W/typos.out"
snapshot $NA > "$W/a.snap1"
ip netns exec $NA "$BIN/hostsecd" --config "$W/typos.toml" --foreground > "$W/typos-d.out" 2>&1; rc=$?
check "hostsecd refuses it: exit 2" test "$rc" = 2
check "and nothing on the host changed" diff -q <(grep -v "^ *counter\|packets" "$W/a.snap1") <(snapshot $NA | grep -v "^ *counter\|packets")
check "no typos control socket was left" test ! -e "$W/typos.sock"
check "no panics in the logs" not grep -q "panicked" "$W/a.log" "$W/b.log" "$W/c.log"

echo "reload: $PASSES passed, $FAILS failed"
if [ "$FAILS" -gt 0 ]; then
  echo "--- typos"; cat "$W/typos.out"
  echo "--- A's log (last 30 lines)"; tail -30 "$W/a.log"
fi
[ "$FAILS" = 0 ]
