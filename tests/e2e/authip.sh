#!/bin/bash
# End-to-end test of AuthIP ([MS-AIPS], experimental) between two hostsecd, real UDP 500 and the ESP datapath on:
#   hsaip-a  198.51.100.1  hostsecd, rule "peer" (keying = "authip", action = "require") towards B; initiates
#   hsaip-b  198.51.100.2  hostsecd, the same towards A
#   hsaip-sw               the bridge between them, where tcpdump captures the wire
# Both daemons are started afresh for each case (fresh counters). Cases:
#  1. Anonymous: `hostsec initiate` succeeds; `sas --json` on both sides has one AuthIP Main Mode SA (auth
#     anonymous, established) and one Quick Mode SA pair with crossed SPIs; `hostsec sas` labels AuthIP
#     experimental; ping both ways; the capture has AuthIP Main Mode messages (ISAKMP exchange type 243, 0xF3)
#     both ways, ESP carrying the pings and no cleartext ICMP (nothing but IKE and ESP between A and B).
#  2. pfs = true: the normal Quick Mode, whose #7/#8 (QM_SYNCHRONIZE) are exchange 244 (0xF4); ping.
#  3. TLS (authentication = "certificate", ECDSA P-256 host certificates from a test PKI made with the openssl CLI,
#     lib.sh): auth tls and the peer's certificate subject in `hostsec sas`; ping over ESP; the initiator sent one
#     IKEv1 Main Mode message (exchange 2, with MS-MamieExists) beside AuthIP #1, the responder none, and counted
#     it in `stats --json` (ike.ikev1_discarded_for_authip).
#  4. Reliable delete under loss: nftables in B drops every other UDP 500 datagram in each direction (counted,
#     not random, so that every run loses the same ones: A's first retransmission of the delete and B's first
#     ACK; this kernel has no sch_netem); `hostsec terminate` on A; both sides have no SA within 60 s; the capture
#     has more than 2 exchange-246 (0xF6) notifies; B acted on the delete once; A counted one ACK; meanwhile A
#     listed its SA as deleting (waiting for the ACK) and B none.
#  5. DoS cookie: 700 forged AuthIP #1 (the #1 captured in case 1 with a new initiator cookie each, from A's
#     address, raw socket) to B, whose threshold is 500 half-open Main Modes: B's `stats --json` counts cookies
#     sent, its half-open Main Modes stay at the threshold (and its memory within a bound), and a real
#     `hostsec initiate` from A still succeeds: its #1 gets a cookie, #1 sent again with it is answered.
# AuthIP has no NAT traversal yet: no NAT here. Needs root, the release binaries (cargo build --release -p hostsecd
# -p hostsec, or $HOSTSEC_BIN_DIR), tcpdump, nft, openssl, python3, ping. Prints PASS/FAIL per check and the run
# time; exit 0 only if all passed. Removes the namespaces, processes and files it made, also on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-e2e-authip.XXXXXX)
NS=hsaip-sw NA=hsaip-a NB=hsaip-b
A=198.51.100.1 B=198.51.100.2
FLOOD=700
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for n in $NA $NB $NS; do ip netns del $n 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
T0=$(date +%s)

for p in tcpdump:tcpdump nftables:nft openssl:openssl iputils-ping:ping python3:python3; do
  command -v "${p#*:}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${p%%:*}"; }
done

two_hosts $NS $NA $NB
for n in $NA $NB $NS; do ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done

pki_init "$W/pki"
pki_root root "AuthIP e2e CA" p256
pki_host a a.example $A p256 root
pki_host b b.example $B p256 root
DN_A="C=XX, O=hostsec e2e, CN=a.example" DN_B="C=XX, O=hostsec e2e, CN=b.example"

# conf NAME ME PEER [LINE...]: the rule "peer" towards PEER with keying = "authip", and the given lines.
conf() {
  printf '[global]\nlisten = ["%s"]\ncontrol_socket = "%s/%s.sock"\n' "$2" "$W" "$1"
  printf '[[rule]]\nname = "peer"\nremote = "%s"\nkeying = "authip"\naction = "require"\nauto = "none"\n' "$3"
  shift 3
  printf '%s\n' "$@"
}
# both LABEL [LINE...]: both daemons (re)started with these rule lines (@SIDE@ in them: a or b).
both() {
  local what=$1; shift
  [ -n "${PID_a:-}" ] && { stop a; stop b; }
  conf a $A $B "${@//@SIDE@/a}" > "$W/a.toml"
  conf b $B $A "${@//@SIDE@/b}" > "$W/b.toml"
  local ok=yes
  start a $NA --log-level debug || ok=no
  start b $NB --log-level debug || ok=no
  check "($what) both hostsecd start" test $ok = yes
}
sas_json() { hs "$1" sas --json; }
# mm NAME: "state|keying|auth" of each Main Mode SA, one a line
mm() { sas_json "$1" | jq_ '"\n".join("|".join(str(m[k]) for k in ("state", "keying", "auth")) for m in d["main_mode"])'; }
n_sas() { sas_json "$1" | jq_ 'len(d["main_mode"]) + len(d["quick_mode"])'; }
authip_stat() { hs "$1" stats --json | jq_ "d['authip']['$2']"; }
# ISAKMP packets of exchange type X in capture F (the exchange type is byte 18 of the header: UDP payload byte 18)
xchg() { pcount "$1" "udp port 500 and udp[26] = $2 ${3:+and $3}"; }
# initiate_ok WHAT: `hostsec initiate peer` on A succeeds
initiate_ok() {
  hs a initiate peer > "$W/init.out" 2>&1; local rc=$?
  check "($1) hostsec initiate exits 0: $(head -c 160 "$W/init.out")" test $rc = 0
}
# sa_pair WHAT AUTH: one established AuthIP Main Mode SA with AUTH on each side, one SA pair with crossed SPIs
sa_pair() {
  check "($1) A: one AuthIP Main Mode SA, auth $2, established" test "$(mm a)" = "established|authip|$2"
  check "($1) B: one AuthIP Main Mode SA, auth $2, established" test "$(mm b)" = "established|authip|$2"
  local qa qb
  qa=$(sas_json a | jq_ '" ".join(q["spi_in"] + "/" + q["spi_out"] for q in d["quick_mode"])')
  qb=$(sas_json b | jq_ '" ".join(q["spi_out"] + "/" + q["spi_in"] for q in d["quick_mode"])')
  check "($1) one Quick Mode SA pair on each side, SPIs crossed (A in/out $qa, B out/in $qb)" \
    test -n "$qa" -a "$qa" = "$qb" -a "$(wc -w <<<"$qa")" = 1
}
pings() { # WHAT: ping both ways
  check "($1) ping A -> B" quiet ip netns exec $NA ping -c 2 -i 0.2 -W 2 $B
  check "($1) ping B -> A" quiet ip netns exec $NB ping -c 2 -i 0.2 -W 2 $A
}
# wire WHAT FILE: the pings went as ESP, nothing in cleartext but IKE
wire() {
  local esp icmp other
  esp=$(pcount "$2" "ip proto 50 and host $A and host $B") icmp=$(pcount "$2" icmp)
  other=$(pcount "$2" "host $A and host $B and not ip proto 50 and not udp port 500")
  check "($1) the wire: $esp ESP, $icmp cleartext ICMP, $other other than IKE and ESP" \
    test "$esp" -ge 8 -a "$icmp" = 0 -a "$other" = 0
}

# --- 1. Anonymous ------------------------------------------------------------------------------------------------
both anonymous 'authentication = "anonymous"'
capture_start $NS br0 "$W/anon.pcap" ip
initiate_ok anonymous
sa_pair anonymous anonymous
check "(anonymous) hostsec sas shows the experimental label" grep -q "keying AuthIP (experimental" <(hs a sas)
pings anonymous
capture_stop
f3a=$(xchg "$W/anon.pcap" 0xf3 "src $A") f3b=$(xchg "$W/anon.pcap" 0xf3 "src $B")
check "(anonymous) AuthIP Main Mode (exchange 0xF3) on the wire: $f3a from A, $f3b from B (#1 #5, #2 #6)" \
  test "$f3a" -ge 2 -a "$f3b" -ge 2
wire anonymous "$W/anon.pcap"
check "(anonymous) no IKEv1 (exchange 2) with the Anonymous method" test "$(xchg "$W/anon.pcap" 2)" = 0
# AuthIP #1: clear (flags byte 19, bit 0 clear), CKY-R zero; kept for case 5
pcap_first "$W/anon.pcap" "src $A and udp port 500 and udp[26] = 0xf3 and udp[27] & 1 = 0 and udp[16:4] = 0 and udp[20:4] = 0" > "$W/mm1.hex"
check "(anonymous) AuthIP #1 found in the capture" test -s "$W/mm1.hex"

# --- 2. Normal Quick Mode (PFS) ----------------------------------------------------------------------------------
both pfs 'authentication = "anonymous"' 'pfs = true'
capture_start $NS br0 "$W/pfs.pcap" ip
initiate_ok pfs
sa_pair pfs anonymous
check "(pfs) the SA pair has a PFS group" test "$(sas_json a | jq_ 'd["quick_mode"][0]["pfs_group"] is not None')" = True
pings pfs
capture_stop
f4a=$(xchg "$W/pfs.pcap" 0xf4 "src $A") f4b=$(xchg "$W/pfs.pcap" 0xf4 "src $B")
check "(pfs) QM_SYNCHRONIZE (exchange 0xF4) on the wire: $f4a from A (#7), $f4b from B (#8)" \
  test "$f4a" -ge 1 -a "$f4b" -ge 1
wire pfs "$W/pfs.pcap"

# --- 3. TLS with certificates ------------------------------------------------------------------------------------
both tls 'authentication = "certificate"' "certificate = \"$P/@SIDE@.pem\"" "private_key = \"$P/@SIDE@.key\"" \
  "trusted_cas = [\"$P/root.pem\"]"
capture_start $NS br0 "$W/tls.pcap" ip
initiate_ok tls
sa_pair tls tls
check "(tls) each side names the other's certificate" test \
  "$(sas_json a | jq_ 'd["main_mode"][0]["peer_cert_subject"]')|$(sas_json b | jq_ 'd["main_mode"][0]["peer_cert_subject"]')" = "$DN_B|$DN_A"
check "(tls) hostsec sas shows the peer's certificate" grep -qF "peer certificate '$DN_B'" <(hs a sas)
pings tls
capture_stop
wire tls "$W/tls.pcap"
v1a=$(xchg "$W/tls.pcap" 2 "src $A") v1b=$(xchg "$W/tls.pcap" 2 "src $B")
check "(tls) IKEv1 Main Mode (exchange 2) on the wire: $v1a from A beside AuthIP #1, $v1b from B" \
  test "$v1a" = 1 -a "$v1b" = 0
check "(tls) A's IKEv1 message carries MS-MamieExists" \
  grep -q 214ca4faffa7f32d6748e5303395ae83 <(pcap_first "$W/tls.pcap" "src $A and udp port 500 and udp[26] = 2")
check "(tls) B counted it: ike.ikev1_discarded_for_authip = 1" \
  test "$(hs b stats --json | jq_ 'd["ike"]["ikev1_discarded_for_authip"]')" = 1

# --- 4. Reliable delete under loss ---------------------------------------------------------------------------------
both delete 'authentication = "anonymous"'
initiate_ok delete
check "(delete) SAs up on both sides" test "$(mm a)|$(mm b)" = "established|authip|anonymous|established|authip|anonymous"
# B drops A's 2nd, 4th, … datagram to UDP 500 and its own 1st, 3rd, …: A's delete arrives, B's ACK is lost, A's
# first retransmission (2 s) is lost, its second (6 s) arrives and B acknowledges it again.
ip netns exec $NB nft -f - <<EOF
table ip hsaip-loss {
  counter in_dropped { }
  counter out_dropped { }
  chain inbound { type filter hook input priority -10; policy accept; udp dport 500 numgen inc mod 2 == 1 counter name in_dropped drop; }
  chain outbound { type filter hook output priority -10; policy accept; udp dport 500 numgen inc mod 2 == 0 counter name out_dropped drop; }
}
EOF
capture_start $NS br0 "$W/delete.pcap" ip
m=$(grep -c 'the peer deleted the AuthIP Main Mode SA' "$W/b.log")
t=$(date +%s.%N)
check "(delete) hostsec terminate on A exits 0" quiet hs a terminate peer
gone="" between=""
for _ in $(seq 300); do
  [ "$(n_sas a)$(n_sas b)" = 00 ] && { gone=$(python3 -c "import time; print(f'{time.time() - $t:.1f}')"); break; }
  [ "$(mm a)|$(n_sas b)" = "deleting|authip|anonymous|0" ] && between=yes
  sleep 0.2
done
capture_stop
dropped=$(ip netns exec $NB nft list counters table ip hsaip-loss | awk '/packets/ {printf "%s ", $2}')
ip netns exec $NB nft delete table ip hsaip-loss
check "(delete) both sides have no SA within 60 s (${gone:-not} after terminate)" test -n "$gone"
check "(delete) meanwhile A listed its SA as deleting (waiting for the ACK) and B had none" test "$between" = yes
f6=$(xchg "$W/delete.pcap" 0xf6)
check "(delete) notifies (exchange 0xF6) on the wire: $f6 ($(xchg "$W/delete.pcap" 0xf6 "src $A") from A), lost at B: in/out ${dropped}" \
  test "$f6" -gt 2 -a "$(xchg "$W/delete.pcap" 0xf6 "src $A")" -ge 2
check "(delete) B acted on the delete once" test $(( $(grep -c 'the peer deleted the AuthIP Main Mode SA' "$W/b.log") - m )) = 1
check "(delete) A counted B's acknowledgement (authip.notifies_acked = 1)" test "$(authip_stat a notifies_acked)" = 1

# --- 5. DoS cookie under a flood of forged #1 ----------------------------------------------------------------------
both dos 'authentication = "anonymous"'
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
rss0=$(kb "$PID_b" VmRSS)
# copies of A's #1 with a fresh random CKY-I each (UDP checksum 0: none, as IPv4 allows)
python3 -c '
import os, sys
p = bytearray.fromhex(open(sys.argv[1]).read().strip())
ihl = (p[0] & 15) * 4
p[ihl + 6:ihl + 8] = b"\0\0"
for _ in range(int(sys.argv[2])):
    p[ihl + 8:ihl + 16] = os.urandom(8)
    print(p.hex())' "$W/mm1.hex" $FLOOD > "$W/flood.hex"
t=$(date +%s.%N)
raw_send $NA $B 1500 < "$W/flood.hex"
# until B has handled them all (its counter stops moving)
last=-1
for _ in $(seq 50); do
  r=$(authip_stat b received); [ "$r" = "$last" ] && break; last=$r; sleep 0.3
done
read -r received cookies half_open < <(hs b stats --json | jq_ 'd["authip"]["received"], d["authip"]["cookies_sent"], d["authip"]["half_open"]')
hwm=$(kb "$PID_b" VmHWM)
echo "figures: $FLOOD forged #1 sent in $(python3 -c "import time; print(f'{time.time() - $t:.1f}')") s; B received $received AuthIP messages, sent $cookies DoS cookies, holds $half_open half-open; VmRSS ${rss0} kB before, VmHWM ${hwm} kB"
check "(dos) B received the flood (at least 600 of $FLOOD: $received)" test "$received" -ge 600
check "(dos) B answered with DoS cookies beyond the threshold (authip.cookies_sent = $cookies)" test "$cookies" -gt 0
check "(dos) B's half-open AuthIP Main Modes stay at the threshold ($half_open <= 510)" test "$half_open" -ge 400 -a "$half_open" -le 510
check "(dos) hostsec stats prints them under AuthIP" bash -c "'$BIN/hostsec' --socket '$W/b.sock' stats | grep -A3 '^AuthIP (experimental' | grep -q 'half-open: $half_open' &&
  '$BIN/hostsec' --socket '$W/b.sock' stats | grep -Eq '^  cookies sent +$cookies$'"
check "(dos) B's memory stays bounded (VmHWM ${hwm} kB <= ${rss0} + 32768 kB)" test "$hwm" -le $((rss0 + 32768))
capture_start $NS br0 "$W/dos.pcap" "udp port 500 and host $A and host $B"
c0=$cookies
initiate_ok dos
capture_stop
check "(dos) B demanded a cookie from the real initiator too (cookies_sent $c0 -> $(authip_stat b cookies_sent))" \
  test "$(authip_stat b cookies_sent)" -gt "$c0"
retry=$(pcount "$W/dos.pcap" "src $A and udp[26] = 0xf3 and udp[27] & 1 = 0 and (udp[16:4] != 0 or udp[20:4] != 0)")
check "(dos) A sent #1 again with the cookie as CKY-R ($retry on the wire)" test "$retry" -ge 1
check "(dos) and the SAs are up" test "$(mm a)" = "established|authip|anonymous"
check "(dos) ping A -> B over them" quiet ip netns exec $NA ping -c 2 -i 0.2 -W 2 $B

check "no panics in the logs" bash -c "! grep -qi panick '$W/a.log' '$W/b.log'"
echo "authip: $PASSES passed, $FAILS failed in $(( $(date +%s) - T0 )) s"
[ "$FAILS" = 0 ]
