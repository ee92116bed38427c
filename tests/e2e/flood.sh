#!/bin/bash
# End-to-end test of the IKE engine's denial-of-service limits (docs/dos.md), in network namespaces:
#   flood-a  198.51.100.1/24   hostsecd, an established SA with B carrying ping and iperf3 traffic
#   flood-b  198.51.100.2/24   hostsecd under attack; 203.0.113.1/24 towards the attacker, and a route for
#                              192.0.2.0/24 (the forged sources, which a rule of B covers) through it
#   flood-x  203.0.113.2/24    sends 100,000 Main Mode first messages (MM1) with random cookies from random forged
#                              addresses in 192.0.2.0/24 (raw socket); B's answers to them reach X and die there
# Checks: B's hostsecd stays under the stated memory bound (VmHWM from /proc), the established SA keeps passing
# traffic during the flood (ping loss at most 1%, iperf3 carries data), `hostsec stats --json` counts every
# forged MM1 once (answered, or refused by reason), the half-open table is at its bound during the flood and
# empty once the responder timeout (60 s) passed, and B's log stays small.
# Needs root. Binaries from $HOSTSEC_BIN_DIR (default target/release). Prints the figures and PASS/FAIL per check;
# exit 0 only if all passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-flood.XXXXXX)
NA=flood-a NB=flood-b NX=flood-x
FLOOD=100000
# The bound this script states for B's peak resident memory above its resident memory before the flood.
RSS_BOUND_KB=32768
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for n in $NA $NB $NX; do ip netns del $n 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT

for p in iputils-ping:ping iperf3:iperf3 python3:python3; do
  command -v "${p#*:}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${p%%:*}"; }
done

for n in $NA $NB $NX; do
  ip netns add $n; ip -n $n link set lo up
  ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add eth0 netns $NA type veth peer name eth0 netns $NB
ip link add eth1 netns $NB type veth peer name eth0 netns $NX
ip -n $NA addr add 198.51.100.1/24 dev eth0; ip -n $NA link set eth0 up
ip -n $NB addr add 198.51.100.2/24 dev eth0; ip -n $NB link set eth0 up
ip -n $NB addr add 203.0.113.1/24 dev eth1; ip -n $NB link set eth1 up
ip -n $NX addr add 203.0.113.2/24 dev eth0; ip -n $NX link set eth0 up
ip -n $NB route add 192.0.2.0/24 via 203.0.113.2
ip -n $NX route add 198.51.100.0/24 via 203.0.113.1
# B's rule for the forged range routes its traffic through the TUN: no reverse-path filter on the way in.
for i in all default eth1; do ip netns exec $NB sysctl -qw net.ipv4.conf.$i.rp_filter=0; done

conf() { # name me peer
  printf '[global]\nlisten = ["%s"]\ncontrol_socket = "%s/%s.sock"\n' "$2" "$W" "$1"
  printf '[defaults]\npsk = "flood-e2e-psk-0123456789abcdef"\nauto = "none"\n'
  printf '[[rule]]\nname = "peer"\nremote = "%s"\naction = "require"\n' "$3"
}
conf a 198.51.100.1 198.51.100.2 > "$W/a.toml"
conf b 198.51.100.2 198.51.100.1 > "$W/b.toml"
printf '[[rule]]\nname = "clients"\nremote = "192.0.2.0/24"\naction = "require"\n' >> "$W/b.toml"
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
ike() { hs b stats --json | jq_ "d['ike']['$1']"; }
# UDP datagrams B's kernel dropped because a socket's receive buffer was full (hostsecd busy).
rcvbuf_errors() { ip netns exec $NB awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ {print $6}' /proc/net/snmp; }

check "hostsecd A starts" start a $NA --log-level info
check "hostsecd B starts" start b $NB --log-level info
check "hostsec initiate from A to B" quiet hs a initiate peer
check "ping A -> B before the flood" quiet ip netns exec $NA ping -c 3 -W 2 198.51.100.2

# MM1: header (random CKY-I, zero CKY-R, SA payload, version 1.0, Main Mode) and one proposal of one transform:
# AES-CBC-256, SHA-256, pre-shared key, MODP-2048, 8 h: the kind B's rules accept, so that each admitted one
# creates a half-open Main Mode (the expensive case).
cat > "$W/flood.py" <<'EOF'
import os, random, socket, struct, sys, time
count, rate = int(sys.argv[1]), int(sys.argv[2])
attrs = b"".join(struct.pack("!HH", 0x8000 | t, v) for t, v in ((1, 7), (14, 256), (2, 4), (3, 1), (4, 14), (11, 1)))
attrs += struct.pack("!HHI", 12, 4, 28800)
transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
sa = struct.pack("!BBHII", 0, 0, 12 + len(proposal), 1, 1) + proposal
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
dst = socket.inet_aton("198.51.100.2")
t0 = time.monotonic()
for i in range(count):
    isakmp = os.urandom(8) + bytes(8) + struct.pack("!BBBBII", 1, 0x10, 2, 0, 0, 28 + len(sa)) + sa
    src = bytes((192, 0, 2, random.randrange(1, 255)))
    udp = struct.pack("!HHHH", 500, 500, 8 + len(isakmp), 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(isakmp), 0, 0, 64, 17, 0, src, dst)
    s.sendto(ip + udp + isakmp, ("198.51.100.2", 0))
    if i % 1000 == 999:
        ahead = t0 + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
print("%d datagrams in %.1f s" % (count, time.monotonic() - t0))
EOF

# --- the flood, with traffic on the established SA ------------------------------------------------------------------
rss0=$(kb "$PID_b" VmRSS)
received0=$(ike received) answered0=$(ike responder_main_modes) rcvbuf0=$(rcvbuf_errors)
a_sent0=$(hs a stats --json | jq_ "d['ike']['sent']")
ip netns exec $NB iperf3 -s -1 -p 5201 >/dev/null 2>&1 & SP=$!; PIDS+=($SP); sleep 0.5
ip netns exec $NA iperf3 -c 198.51.100.2 -p 5201 -t 14 -J > "$W/iperf.json" 2>/dev/null & IP=$!
ip netns exec $NA ping -i 0.01 -c 1400 -W 1 198.51.100.2 > "$W/ping.txt" 2>&1 & PP=$!
sleep 1
# 8,000 a second: 12.5 s, longer than the default rate (100 a second, bursts of 100) takes to fill the table.
ip netns exec $NX python3 "$W/flood.py" $FLOOD 8000 > "$W/flood.txt" 2>&1
half_open_during=$(hs b sas --json | jq_ "sum(1 for m in d['main_mode'] if m['state'] != 'established')")
wait $PP; wait $IP; wait $SP 2>/dev/null
sleep 1
rss1=$(kb "$PID_b" VmRSS) hwm=$(kb "$PID_b" VmHWM)
echo "flood sender: $(cat "$W/flood.txt")"
# One snapshot of both daemons' counters once IKE between them is quiet (volume rekeys stop with the traffic).
snap=""
for k in $(seq 10); do
  now="$(hs a stats --json | jq_ "d['ike']['sent']") $(hs b stats --json | jq_ "' '.join(str(d['ike'][k]) for k in ('responder_main_modes', 'refused_rate', 'refused_half_open_total', 'refused_half_open_per_peer', 'received'))")"
  [ "$now" = "$snap" ] && break
  snap=$now; sleep 1
done
read -r a_sent answered rate total per_peer received <<< "$snap"
answered=$((answered - answered0)) received=$((received - received0)) from_a=$((a_sent - a_sent0))
kernel_dropped=$(( $(rcvbuf_errors) - rcvbuf0 ))
hs b stats --json | jq_ "d['ike']" > "$W/b-stats.txt"
loss=$(grep -o '[0-9.]*% packet loss' "$W/ping.txt" | cut -d% -f1)
mbits=$(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$W/iperf.json" 2>/dev/null)
echo "figures: B's VmRSS ${rss0} kB before, ${rss1} kB after, VmHWM ${hwm} kB (bound: before + ${RSS_BOUND_KB} kB)"
echo "figures: B received $received IKE datagrams (its kernel dropped $kernel_dropped: receive buffer full); MM1 answered $answered, refused: rate $rate, table full $total, per peer $per_peer"
echo "figures: half-open Main Modes during the flood: $half_open_during; ping loss ${loss}%; iperf3 ${mbits:-failed} Mbit/s"

check "B's peak memory stays under the bound (${hwm} kB <= ${rss0} + ${RSS_BOUND_KB} kB)" test "$hwm" -le $((rss0 + RSS_BOUND_KB))
check "ping over the established SA during the flood: loss ${loss}% <= 1%" python3 -c "import sys; sys.exit(0 if float('${loss:-100}') <= 1 else 1)"
check "iperf3 over the established SA during the flood: ${mbits:-failed} Mbit/s" test "${mbits:-0}" -gt 0
check "every forged MM1 reached hostsecd or was dropped by B's kernel ($received + $kernel_dropped)" \
  test $((received + kernel_dropped)) -ge "$FLOOD"
# The rest of what B received came from A, whose datagrams share B's receive buffer with the flood: B's kernel may
# have dropped a few of them (A retransmits), so they are at most what A sent.
counted=$((answered + rate + total + per_peer))
check "every datagram counted once: MM1 answered + refused = $counted, the other $((received - counted)) of $received from A (it sent $from_a)" \
  test "$counted" -le "$received" -a $((received - counted)) -le "$from_a" -a $((received - counted)) -ge $((from_a - 10))
[ "$counted" -le "$received" ] || cat "$W/b-stats.txt"
check "the half-open table reached its bound and no more ($half_open_during <= 1000, answered $answered)" \
  test "$half_open_during" = 1000 -a "$answered" = 1000
check "refusals counted by reason (rate $rate, table full $total)" test "$rate" -gt 0 -a "$total" -gt 0
lines=$(grep -c 'Main Mode request' "$W/b.log")
check "B's log stays small: $lines lines about dropped Main Mode requests" test "$lines" -le 20
check "the established SA still carries traffic after the flood" quiet ip netns exec $NA ping -c 3 -W 2 198.51.100.2
check "A's Main Mode SA with B is still the one established before" \
  test "$(hs a sas --json | jq_ "sum(1 for m in d['main_mode'] if m['state'] == 'established')")" = 1
grep -E 'Main Mode request|half-open' "$W/b.log" | head -5

# --- the half-open Main Modes expire ------------------------------------------------------------------------------
sleep 62
half_open_after=$(hs b sas --json | jq_ "sum(1 for m in d['main_mode'] if m['state'] != 'established')")
expired=$(ike half_open_expired)
echo "figures: after the responder timeout: $half_open_after half-open, $expired expired; VmRSS $(kb "$PID_b" VmRSS) kB"
check "the half-open Main Modes expired ($half_open_after left, $expired counted of $answered)" \
  test "$half_open_after" = 0 -a "$expired" = "$answered"
check "the established SA carries traffic after the expiry" quiet ip netns exec $NA ping -c 3 -W 2 198.51.100.2

echo "flood.sh: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
