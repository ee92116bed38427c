#!/bin/bash
# End-to-end test of traffic selectors between two hostsecd, in network namespaces: a print server A protects TCP
# port 9100 with B (`require`, protocol tcp, local_ports 9100) and lets everything else with B bypass IPsec:
#   A 198.51.100.1   hostsecd: rule print (require tcp, local port 9100, B), rule rest (bypass, B)
#   B 198.51.100.2   hostsecd: rule print (require tcp, remote port 9100, A), rule rest (bypass, A)
# Checks: a TCP connection from B to A:9100 negotiates on demand and crosses as ESP only (tshark decrypts it with
# the key log and finds the payload); a TCP connection to another port and pings cross in cleartext; `hostsec sas
# --json` shows the SA's protocol 6 and port 9100 on both sides; a cleartext TCP SYN to A:9100 that B sends around
# its own IPsec (a packet socket, below B's firewall) is dropped by A's firewall and counted, one to another port
# is not; a reload with the same rules keeps the SA, a reload that moves the port deletes it on both sides; the
# host is restored after SIGTERM. Needs root. Prints PASS/FAIL per check; exit 0 only if all passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-sel.XXXXXX)
NA=hssel-a NB=hssel-b NS=hssel-sw
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for n in $NA $NB $NS; do ip netns del $n 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
fw() { hs "$1" stats --json | jq_ "d['firewall']['$2']['packets']"; }

for p in tcpdump:tcpdump tshark:tshark nftables:nft netcat-openbsd:nc iputils-ping:ping; do
  command -v "${p#*:}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${p%%:*}"; }
done

# --- the switch and two hosts -------------------------------------------------------------------------------
ip netns add $NS; ip -n $NS link add br0 type bridge; ip -n $NS link set br0 up
i=0
for h in $NA $NB; do
  i=$((i + 1))
  ip netns add $h
  ip link add eth0 netns $h type veth peer name p$i netns $NS
  ip -n $NS link set p$i master br0 up
  ip -n $h link set lo up
  ip -n $h addr add 198.51.100.$i/24 dev eth0
  ip -n $h link set eth0 up
done
snapshot() { # namespace -> the host state a daemon must leave as it found it
  { ip -n "$1" rule; ip -n "$1" -6 rule; ip -n "$1" route show table all; ip -n "$1" -6 route show table all
    ip netns exec "$1" nft list ruleset; ip -n "$1" -br link; } 2>&1 | grep -v "^$"
}
for k in $(seq 100); do ip -n $NA -6 route show table local | grep -q "local fe80" && break; sleep 0.1; done
sleep 0.5
snapshot $NA > "$W/a.before"

conf() { # name me port-key peer
  printf '[global]\nlisten = ["%s"]\ncontrol_socket = "%s/%s.sock"\nkey_log = "%s/%s-keys"\n' "$2" "$W" "$1" "$W" "$1"
  printf '[defaults]\npsk = "selectors-e2e-psk-0123456789"\npfs = true\n'
  printf '[[rule]]\nname = "print"\nremote = ["%s"]\nprotocol = "tcp"\n%s = ["%s"]\naction = "require"\n' "$4" "$3" "${5:-9100}"
  printf '[[rule]]\nname = "rest"\nremote = ["%s"]\naction = "bypass"\n' "$4"
}

conf a 198.51.100.1 local_ports 198.51.100.2 > "$W/a.toml"
conf b 198.51.100.2 remote_ports 198.51.100.1 > "$W/b.toml"
check "hostsecd A starts" start a $NA --log-level debug
check "hostsecd B starts" start b $NB --log-level debug

# --- traffic ------------------------------------------------------------------------------------------------------
ip netns exec $NS tcpdump -i br0 -nn -s 0 -U -w "$W/wire.pcap" 'ip' >/dev/null 2>&1 & TD=$!
sleep 1
send() { # port marker -> B connects to A:port and sends the marker; A's listener writes what it got
  ip netns exec $NA sh -c "nc -l -p $1 > '$W/got-$1.txt'" & local l=$!; PIDS+=($l)
  sleep 0.5
  printf '%s\n' "$2" | ip netns exec $NB nc -q 1 -w 10 198.51.100.1 "$1"
  wait $l 2>/dev/null
  grep -q "$2" "$W/got-$1.txt"
}
M9100="SEL-E2E-9100-$RANDOM$RANDOM"
M8080="SEL-E2E-8080-$RANDOM$RANDOM"
check "TCP B -> A:9100 (IKE on demand) delivers the payload" send 9100 "$M9100"
check "TCP B -> A:8080 delivers the payload" send 8080 "$M8080"
check "ping B -> A" quiet ip netns exec $NB ping -c 3 -W 5 198.51.100.1
check "ping A -> B" quiet ip netns exec $NA ping -c 3 -W 5 198.51.100.2
sleep 1; kill $TD; wait $TD 2>/dev/null
count() { tcpdump -r "$W/wire.pcap" -nn "host 198.51.100.1 and host 198.51.100.2 and ($1)" 2>/dev/null | wc -l; }
n_esp=$(count "ip proto 50"); n_9100=$(count "tcp port 9100"); n_8080=$(count "tcp port 8080"); n_icmp=$(count "icmp")
check "the wire: port 9100 only inside ESP ($n_esp ESP, $n_9100 cleartext 9100)" test "$n_esp" -ge 6 -a "$n_9100" = 0
check "the wire: port 8080 in cleartext ($n_8080 packets)" test "$n_8080" -ge 6
check "the wire: pings in cleartext ($n_icmp packets)" test "$n_icmp" -ge 12
check "the wire: only port 9100 went into ESP (ESP packets $n_esp < 30)" test "$n_esp" -lt 30
args=(-o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE)
while IFS= read -r l; do args+=(-o "uat:esp_sa:$l"); done < "$W/a-keys/esp_sa"
tshark -r "$W/wire.pcap" "${args[@]}" -Y "esp and tcp.port == 9100" -T fields -e tcp.payload 2>/dev/null > "$W/decrypted.txt"
hexmarker=$(printf '%s' "$M9100" | od -An -tx1 | tr -d ' \n')
check "tshark decrypts the ESP with A's key log and finds the port-9100 payload" grep -q "$hexmarker" "$W/decrypted.txt"
check "and the ESP carries nothing but port 9100" test "$(tshark -r "$W/wire.pcap" "${args[@]}" -Y 'esp and not tcp.port == 9100' 2>/dev/null | wc -l)" = 0

# --- the SAs ------------------------------------------------------------------------------------------------------
sa_a=$(hs a sas --json); sa_b=$(hs b sas --json)
check "A: one Quick Mode SA, rule print, protocol 6, local port 9100" test "$(jq_ '[(q["rule"], q["protocol"], q["local_port"], q["remote_port"]) for q in d["quick_mode"]]' <<<"$sa_a")" = "[('print', 6, 9100, 0)]"
check "B: one Quick Mode SA, rule print, protocol 6, remote port 9100" test "$(jq_ '[(q["rule"], q["protocol"], q["local_port"], q["remote_port"]) for q in d["quick_mode"]]' <<<"$sa_b")" = "[('print', 6, 0, 9100)]"
check "hostsec sas (for people) names A's traffic" grep -q "traffic: tcp, local port 9100" <(hs a sas)
check "A counts the protected packets" test "$(jq_ 'sum(q["packets_in"] for q in d["quick_mode"])' <<<"$sa_a")" -ge 3
check "A: the ports other than 9100 left through the datapath in cleartext" test "$(hs a stats --json | jq_ "d['esp']['datapath']['cleartext_sent']")" -gt 0

# --- cleartext to 9100 from the peer, around its IPsec -------------------------------------------------------------
mac_a=$(ip -n $NA -br link show eth0 | awk '{print $3}')
inject_syn() { # port: B sends a cleartext TCP SYN to A:port on a packet socket (below B's own routes and firewall)
  ip netns exec $NB python3 - "$mac_a" "$1" <<'EOF'
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
src, dst = socket.inet_aton("198.51.100.2"), socket.inet_aton("198.51.100.1")
port = int(sys.argv[2])
tcp = struct.pack("!HHIIBBHHH", 45678, port, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = lambda m: bytes.fromhex(m.replace(":", ""))
me = open("/sys/class/net/eth0/address").read().strip()
s.send(mac(sys.argv[1]) + mac(me) + b"\x08\x00" + ip + tcp)
EOF
}
d0=$(fw a drop_require_in); inject_syn 9100; sleep 0.5; d1=$(fw a drop_require_in)
check "a cleartext SYN from B to A:9100 is dropped by A's firewall and counted ($d0 -> $d1)" test "$d1" -gt "$d0"
inject_syn 8081; sleep 0.5; d2=$(fw a drop_require_in)
check "a cleartext SYN from B to A:8081 is not ($d1 -> $d2)" test "$d2" = "$d1"
check "A's firewall: the require rule matches tcp dport 9100 for B only" bash -c "ip netns exec $NA nft list chain inet hostsec input | grep -q 'ip saddr 198.51.100.2 tcp dport 9100 counter name \"drop_require_in\" drop'"

# --- reload -------------------------------------------------------------------------------------------------------
spi=$(jq_ 'd["quick_mode"][0]["spi_in"]' <<<"$sa_a")
hs a reload >/dev/null
check "a reload with the same rules keeps the SA ($spi)" test "$(hs a sas --json | jq_ '[q["spi_in"] for q in d["quick_mode"]]')" = "['$spi']"
conf a 198.51.100.1 local_ports 198.51.100.2 9101 > "$W/a.toml"
hs a reload >/dev/null; sleep 0.5
check "a reload that moves the port deletes A's SA" test "$(hs a sas --json | jq_ 'len(d["quick_mode"])')" = 0
check "and B's, told by DELETE" test "$(hs b sas --json | jq_ 'len(d["quick_mode"])')" = 0
check "A logs why" grep -q "rule 'print' changed (local_ports)" "$W/a.log"

# --- restore ------------------------------------------------------------------------------------------------------
stop b
stop a
check "SIGTERM: A's host state is as before the daemon" diff "$W/a.before" <(snapshot $NA)
check "no panics in the logs" bash -c "! grep -qi panick '$W/a.log' '$W/b.log'"

echo "selectors: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
