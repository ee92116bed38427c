#!/bin/bash
# End-to-end test of NAT traversal (RFC 3947/3948) between two hostsecd through a real NAT, in network namespaces:
#   natd-a    192.0.2.10/24      hostsecd, behind the NAT (default route 192.0.2.1), nat_traversal = both-behind-nat
#   natd-nat  192.0.2.1/24 inside, 198.51.100.1/24 outside: a router that masquerades (nftables), then the same
#             with `fully-random` (every new mapping gets a random port)
#   natd-b    198.51.100.2/24    hostsecd, public, nat_traversal = remote-behind-nat (then off)
# Checks, per NAT variant: the SA comes up on demand; `hostsec sas --json` shows nat = local (A) / remote (B) on
# Main Mode and encapsulation udp on Quick Mode on both sides; ping and TCP pass both ways; a capture on the
# outside link holds only UDP 500/4500 (no ESP protocol 50, no cleartext); after the NAT's conntrack table is
# flushed mid-ping, traffic resumes within a few seconds (and with fully-random, B's SA shows the new port).
# Then with nat_traversal = off on B the SA is refused and B's log names nat_traversal.
# Then both behind NAT: B moves behind a second NAT (natd-b2 at 203.0.113.2, UDP 500/4500 forwarded to it):
# nat = both on both sides, ping both ways, iperf3 both ways, only UDP 500/4500 between the NATs.
# Every variant also runs iperf3 TCP both ways through the NAT.
# Needs root. Binaries from $HOSTSEC_BIN_DIR (default target/release). Prints PASS/FAIL per check; exit 0 only if
# all passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-natt.XXXXXX)
NA=natd-a NN=natd-nat NB=natd-b
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for n in $NA $NN $NB natd-b2; do ip netns del $n 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT

for p in tcpdump:tcpdump nftables:nft netcat-openbsd:nc iputils-ping:ping conntrack:conntrack; do
  command -v "${p#*:}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${p%%:*}"; }
done

# --- the three hosts ----------------------------------------------------------------------------------------------
for n in $NA $NN $NB; do
  ip netns add $n; ip -n $n link set lo up
  # IPv4 only: no IPv6 neighbour discovery or MLD in the captures.
  ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add eth0 netns $NA type veth peer name in0 netns $NN
ip link add out0 netns $NN type veth peer name eth0 netns $NB
ip -n $NA addr add 192.0.2.10/24 dev eth0; ip -n $NA link set eth0 up
ip -n $NA route add default via 192.0.2.1
ip -n $NN addr add 192.0.2.1/24 dev in0; ip -n $NN link set in0 up
ip -n $NN addr add 198.51.100.1/24 dev out0; ip -n $NN link set out0 up
ip netns exec $NN sysctl -qw net.ipv4.ip_forward=1
ip -n $NB addr add 198.51.100.2/24 dev eth0; ip -n $NB link set eth0 up
nat() { # "" or "fully-random"
  ip netns exec $NN nft delete table ip natd 2>/dev/null
  ip netns exec $NN nft -f - <<EOF
table ip natd {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "out0" masquerade $1
  }
}
EOF
  ip netns exec $NN conntrack -F >/dev/null 2>&1
}

conf() { # name me nat_traversal rule-name remote
  printf '[global]\nlisten = ["%s"]\ncontrol_socket = "%s/%s.sock"\nnat_traversal = "%s"\n' "$2" "$W" "$1" "$3"
  printf '[defaults]\npsk = "natt-e2e-psk-0123456789abcdef"\npfs = true\n'
  printf '[[rule]]\nname = "%s"\nremote = "%s"\naction = "require"\n' "$4" "$5"
}
sas() { hs "$1" sas --json; }
mm_nat() { sas "$1" | jq_ "','.join(m['nat'] for m in d['main_mode'] if m['state'] == 'established')"; }
qm_encap() { sas "$1" | jq_ "','.join(sorted(set(q['encapsulation'] for q in d['quick_mode']))) or 'none'"; }
remote_port() { sas b | jq_ "','.join(sorted(set(str(q['encap_remote_port']) for q in d['quick_mode'])))"; }

variant() { # label nat-option
  local v=$1
  nat "$2"
  conf a 192.0.2.10 both-behind-nat b 198.51.100.2 > "$W/a.toml"
  conf b 198.51.100.2 remote-behind-nat a 198.51.100.1 > "$W/b.toml"
  check "($v) hostsecd A starts" start a $NA --log-level debug
  check "($v) hostsecd B starts" start b $NB --log-level debug
  ip netns exec $NB tcpdump -i eth0 -nn -s 0 -U -w "$W/out-$v.pcap" 'not arp' >/dev/null 2>&1 & TD=$!
  sleep 1
  check "($v) ping A -> B through the NAT (IKE on demand)" quiet ip netns exec $NA ping -c 3 -W 5 198.51.100.2
  check "($v) A's Main Mode: nat = local ($(mm_nat a))" test "$(mm_nat a)" = local
  check "($v) B's Main Mode: nat = remote ($(mm_nat b))" test "$(mm_nat b)" = remote
  check "($v) A's Quick Mode SAs: encapsulation udp" test "$(qm_encap a)" = udp
  check "($v) B's Quick Mode SAs: encapsulation udp" test "$(qm_encap b)" = udp
  check "($v) B sees A's private address as peer_original" \
    test "$(sas b | jq_ "','.join(sorted(set(str(q['peer_original_address']) for q in d['quick_mode'])))")" = 192.0.2.10
  check "($v) ping B -> A (the NAT's address)" quiet ip netns exec $NB ping -c 3 -W 5 198.51.100.1
  local marker="NATT-E2E-$v-$RANDOM$RANDOM"
  ip netns exec $NB sh -c "nc -l -p 9100 > '$W/rx-b.txt'" & local ncp=$!; PIDS+=($ncp)
  sleep 0.5
  { printf '%s\n' "$marker"; head -c 200000 /dev/urandom | base64; } | ip netns exec $NA nc -q 1 -w 5 198.51.100.2 9100
  wait $ncp 2>/dev/null
  check "($v) TCP A -> B: 200 kB arrive ($(wc -c < "$W/rx-b.txt") bytes)" \
    bash -c "grep -q '$marker' '$W/rx-b.txt' && test \$(wc -c < '$W/rx-b.txt') -gt 270000"
  ip netns exec $NA sh -c "nc -l -p 9101 > '$W/rx-a.txt'" & ncp=$!; PIDS+=($ncp)
  sleep 0.5
  { printf '%s\n' "$marker"; head -c 200000 /dev/urandom | base64; } | ip netns exec $NB nc -q 1 -w 5 198.51.100.1 9101
  wait $ncp 2>/dev/null
  check "($v) TCP B -> A: 200 kB arrive ($(wc -c < "$W/rx-a.txt") bytes)" \
    bash -c "grep -q '$marker' '$W/rx-a.txt' && test \$(wc -c < '$W/rx-a.txt') -gt 270000"
  iperf_both "$v" $NA $NB 198.51.100.2
  sleep 1; kill $TD; wait $TD 2>/dev/null
  local esp udp other
  esp=$(tcpdump -r "$W/out-$v.pcap" -nn 'ip proto 50' 2>/dev/null | wc -l)
  udp=$(tcpdump -r "$W/out-$v.pcap" -nn 'udp port 4500 or udp port 500' 2>/dev/null | wc -l)
  other=$(tcpdump -r "$W/out-$v.pcap" -nn 'not (udp port 4500 or udp port 500)' 2>/dev/null | wc -l)
  check "($v) outside link: $udp UDP 500/4500, $esp ESP (protocol 50), $other other" \
    test "$udp" -ge 200 -a "$esp" = 0 -a "$other" = 0
  [ "$other" = 0 ] || tcpdump -r "$W/out-$v.pcap" -nn 'not (udp port 4500 or udp port 500)' 2>/dev/null | head -5
  check "($v) outside link: no cleartext of the TCP payload" not grep -qa "$marker" "$W/out-$v.pcap"
  check "($v) ESP in UDP was counted (sent by A: $(hs a stats --json | jq_ "d['udp_encap']['esp_sent']"))" \
    test "$(hs a stats --json | jq_ "d['udp_encap']['esp_sent']")" -gt 100

  # --- the NAT forgets its mappings mid-ping --------------------------------------------------------------------
  local before after
  before=$(remote_port)
  ip netns exec $NA ping -D -i 0.2 -c 60 -W 1 198.51.100.2 > "$W/ping-$v.txt" 2>&1 & local pp=$!
  sleep 3
  local flushed; flushed=$(date +%s.%N)
  ip netns exec $NN conntrack -F >/dev/null 2>&1
  wait $pp
  # The longest silence between two replies, and whether the last ones came back.
  local gap
  gap=$(python3 - "$W/ping-$v.txt" <<'EOF'
import re, sys
t = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\].*icmp_seq=\d+ ttl", open(sys.argv[1]).read(), re.M)]
print("%.1f" % max((b - a for a, b in zip(t, t[1:])), default=99) if len(t) > 40 else 99)
EOF
)
  check "($v) conntrack -F mid-ping: traffic resumes (longest gap ${gap}s, $(grep -c ' ttl=' "$W/ping-$v.txt")/60 replies)" \
    python3 -c "import sys; sys.exit(0 if $gap < 5 else 1)"
  after=$(remote_port)
  if [ "$2" = fully-random ]; then
    check "($v) B's SA follows the new mapping: port $before -> $after" test "$before" != "$after" -a -n "$after"
    check "($v) B reported the move" grep -q "moved to 198.51.100.1:$after" "$W/b.log"
  else
    check "($v) B's SA still at port $after" test -n "$after"
  fi
  check "($v) ping B -> A after the flush" quiet ip netns exec $NB ping -c 3 -W 3 198.51.100.1
  stop a; stop b
}

# iperf_both LABEL CLIENT_NS SERVER_NS SERVER_ADDR: iperf3 TCP for 3 s each way (the server in SERVER_NS)
iperf_both() {
  local fw rv sp
  ip netns exec "$3" iperf3 -s -1 -p 5201 >/dev/null 2>&1 & sp=$!; PIDS+=($sp); sleep 0.5
  fw=$(ip netns exec "$2" iperf3 -c "$4" -p 5201 -t 3 -J 2>/dev/null | jq -r '.end.sum_received.bits_per_second / 1e6 | floor' 2>/dev/null)
  wait $sp 2>/dev/null
  ip netns exec "$3" iperf3 -s -1 -p 5201 >/dev/null 2>&1 & sp=$!; PIDS+=($sp); sleep 0.5
  rv=$(ip netns exec "$2" iperf3 -c "$4" -p 5201 -t 3 -R -J 2>/dev/null | jq -r '.end.sum_received.bits_per_second / 1e6 | floor' 2>/dev/null)
  wait $sp 2>/dev/null
  check "($1) iperf3 TCP through the NAT: ${fw:-failed} Mbit/s out, ${rv:-failed} Mbit/s back" \
    test "${fw:-0}" -gt 0 -a "${rv:-0}" -gt 0
}

variant masquerade ""
variant random fully-random

# --- both behind NAT: B moves behind a second NAT (natd-b routes for natd-b2 and forwards UDP 500/4500 to it) ----
NB2=natd-b2
ip netns add $NB2; ip -n $NB2 link set lo up
ip netns exec $NB2 sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add in1 netns $NB type veth peer name eth0 netns $NB2
ip -n $NB addr add 203.0.113.1/24 dev in1; ip -n $NB link set in1 up
ip -n $NB2 addr add 203.0.113.2/24 dev eth0; ip -n $NB2 link set eth0 up
ip -n $NB2 route add default via 203.0.113.1
ip netns exec $NB sysctl -qw net.ipv4.ip_forward=1
ip netns exec $NB nft -f - <<'EOF'
table ip natd2 {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "eth0" udp dport { 500, 4500 } dnat to 203.0.113.2
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" masquerade
  }
}
EOF
nat ""
conf a 192.0.2.10 both-behind-nat b 198.51.100.2 > "$W/a.toml"
conf b 203.0.113.2 both-behind-nat a 198.51.100.1 > "$W/b.toml"
: > "$W/b.log"
check "(both) hostsecd A starts" start a $NA --log-level debug
check "(both) hostsecd B starts behind the second NAT" start b $NB2 --log-level debug
ip netns exec $NB tcpdump -i eth0 -nn -s 0 -U -w "$W/out-both.pcap" 'not arp' >/dev/null 2>&1 & TD=$!
sleep 1
check "(both) hostsec initiate from A to B's NAT" quiet hs a initiate b
check "(both) A's Main Mode: nat = both ($(mm_nat a))" test "$(mm_nat a)" = both
check "(both) B's Main Mode: nat = both ($(mm_nat b))" test "$(mm_nat b)" = both
check "(both) Quick Mode SAs: encapsulation udp on A and B" test "$(qm_encap a),$(qm_encap b)" = udp,udp
check "(both) ping A -> B's NAT, delivered to B" quiet ip netns exec $NA ping -c 3 -W 5 198.51.100.2
check "(both) ping B -> A's NAT, delivered to A" quiet ip netns exec $NB2 ping -c 3 -W 5 198.51.100.1
iperf_both both $NA $NB2 198.51.100.2
sleep 1; kill $TD; wait $TD 2>/dev/null
esp=$(tcpdump -r "$W/out-both.pcap" -nn 'ip proto 50' 2>/dev/null | wc -l)
udp=$(tcpdump -r "$W/out-both.pcap" -nn 'udp port 4500 or udp port 500' 2>/dev/null | wc -l)
other=$(tcpdump -r "$W/out-both.pcap" -nn 'not (udp port 4500 or udp port 500)' 2>/dev/null | wc -l)
check "(both) link between the NATs: $udp UDP 500/4500, $esp ESP (protocol 50), $other other" \
  test "$udp" -ge 100 -a "$esp" = 0 -a "$other" = 0
stop a; stop b
ip netns del $NB2
ip netns exec $NB nft delete table ip natd2

# --- nat_traversal = off on B: refused, and B says which setting -----------------------------------------------
nat ""
conf a 192.0.2.10 both-behind-nat b 198.51.100.2 > "$W/a.toml"
conf b 198.51.100.2 off a 198.51.100.1 > "$W/b.toml"
: > "$W/b.log"
start a $NA --log-level debug; start b $NB --log-level debug
hs a initiate b > "$W/off.out" 2>&1; rc=$?
check "(off) A's initiate fails (exit $rc): $(head -c 120 "$W/off.out")" test $rc != 0
check "(off) B's log names nat_traversal" grep -q 'nat_traversal = "off"' "$W/b.log"
check "(off) no SA" test "$(qm_encap b)" = none
stop a; stop b
check "no panics in the logs" bash -c "! grep -qi panick '$W/a.log' '$W/b.log'"

echo "natt: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
