#!/bin/bash
# Interop test: NAT traversal (RFC 3947/3948) between hostsec and strongSwan 5.9.8 (kernel ESP in a QEMU guest),
# through the lab's NAT router (nftables masquerade), PSK, IKEv1 Main Mode + Quick Mode, ESP transport in UDP.
#
#   lab-host  br0 198.51.100.1/24 ("the Internet"), hostsecd in case guest-behind-nat
#   lab-nat   the NAT router: 198.51.100.254 on br0, 192.0.2.1/24 inside (bridge brn), masquerade to the outside
#   lab-hsn   (case hostsec-behind-nat) hostsecd at 192.0.2.10/24 behind lab-nat, default route 192.0.2.1
#   guest     strongSwan at 192.0.2.2 behind the NAT (case guest-behind-nat) or at 198.51.100.2 (the others)
#
# Cases:
#   guest-behind-nat    strongSwan behind the NAT initiates to hostsec (nat_traversal = "remote-behind-nat")
#   hostsec-behind-nat  hostsec behind the NAT initiates to strongSwan (nat_traversal = "both-behind-nat")
#   off-refused         strongSwan behind the NAT initiates to hostsec with nat_traversal = "off": refused, and
#                       hostsec's log names nat_traversal and the value to set
#   both-behind-nat     strongSwan behind lab-nat (which forwards UDP 500/4500 to it), hostsec at 203.0.113.10
#                       behind a second NAT (lab-nat2, 198.51.100.253): hostsec initiates (both-behind-nat)
# Checks per case that comes up: both sides hold the SA pair (strongSwan: ESTABLISHED, INSTALLED, TRANSPORT, ESP
# in UDP; hostsec sas --json: nat remote/local, encapsulation udp with the ports), ping both ways, iperf3 TCP both
# ways, and the capture outside the NAT (br0) holds only UDP 500/4500: no ESP (protocol 50), no cleartext.
#
# Usage: tests/interop/strongswan-natt.sh [--only REGEX] [--keep]
# Environment: HOSTSEC_BIN_DIR (default <repo>/target/release; not built here), HOSTSEC_LOG_LEVEL (debug), LAB_ACCEL.
# Needs root and a Debian 12 host. Exit 0 only when every check passed; 2 for a usage or setup error.
# Results: tests/lab/results/strongswan-natt/ (summary.txt, results.tsv, per case: capture and both sides' views).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAB_DIR=$REPO/tests/lab
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
# shellcheck source=tests/lab/hostsecd.sh
. "$LAB_DIR/hostsecd.sh"

ONLY='' KEEP=no
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --only) ONLY=${2:-}; shift 2;;
    --keep) KEEP=yes; shift;;
    -h|--help) usage;;
    *) echo "unknown argument: $1" >&2; usage;;
  esac
done
BIN_DIR=${HOSTSEC_BIN_DIR:-$REPO/target/release}
HOSTSECD=$BIN_DIR/hostsecd HOSTSEC=$BIN_DIR/hostsec
LOG_LEVEL=${HOSTSEC_LOG_LEVEL:-debug}
PUB=$LAB_HOST_ADDR4 NATPUB=198.51.100.254 HSN_NS=lab-hsn HSN=192.0.2.10 SWIN=192.0.2.2 SWPUB=198.51.100.2
NAT2PUB=198.51.100.253 HSN2_NS=lab-hsn2 HSN2=203.0.113.10
PSK=$LAB_PSK_DEFAULT
R=$LAB_DIR/results/strongswan-natt
IKE=aes128-sha256-ecp256 ESP=aes128gcm16 IPERF_S=3

for b in "$HOSTSECD" "$HOSTSEC"; do
  [ -x "$b" ] || { echo "ERROR: $b not found or not executable. Build first (cargo build --release) or set HOSTSEC_BIN_DIR." >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ERROR: needs root (network namespaces, TAP devices, QEMU)" >&2; exit 2; }
lab_install_host_pkgs
lab_lock
"$LAB_DIR/build-guest.sh" strongswan || { echo "ERROR: guest image build failed" >&2; exit 2; }
for n in "$LAB_NETNS" lab-nat lab-nat2 "$HSN_NS" "$HSN2_NS"; do
  lab_netns_free "$n" || { echo "ERROR: network namespace $n is in use (a --keep run? stop it first)" >&2; exit 2; }
done
T_START=$(lab_now_ms)
rm -rf "$R"; mkdir -p "$R"
TMP=$(mktemp -d /tmp/hostsec-natt.XXXXXX); chmod 700 "$TMP"
SOCK=$TMP/control.sock HSLOG=$TMP/hostsecd.log
: > "$HSLOG"

say() { echo "$*" | tee -a "$R/summary.txt"; }
info() { echo "   $*" | tee -a "$R/summary.txt" >&2; }

HS_PID='' NET_UP=no GUEST=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cp "$HSLOG" "$R/hostsecd.log" 2>/dev/null
  lab_capture_stop
  if [ "$KEEP" = yes ]; then
    echo "--keep: left running: hostsecd pid ${HS_PID:-none} (socket $SOCK), guest ${GUEST:-none}, namespaces."
    exit $rc
  fi
  hs_stop
  [ -n "$GUEST" ] && { cp "$LAB_RUN/$GUEST/charon.log" "$R/charon-$GUEST.log" 2>/dev/null; lab_stop_guest "$GUEST" >/dev/null 2>&1; }
  ip netns del "$HSN_NS" 2>/dev/null; ip netns del "$HSN2_NS" 2>/dev/null; ip netns del lab-nat2 2>/dev/null
  [ "$NET_UP" = yes ] && lab_net_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# iperf_client NETNS SERVER JSON [-R]: iperf3 TCP client for IPERF_S s against the guest's iperf3 server. The server
# (iperf3 -s -D in the emulated guest) closes and reopens its listening socket between two tests, and refuses or
# answers "busy" for a moment after one: such a refusal (an RST or a "busy" that came back through the SA; no test
# ran) is retried, up to 5 times a second apart. A connection that times out is not retried.
iperf_client() {
  local i
  for i in 1 2 3 4 5; do
    ip netns exec "$1" iperf3 -c "$2" -t "$IPERF_S" ${4:-} -J > "$3" 2>&1
    jq -e '.error // "" | test("Connection refused|busy")' "$3" >/dev/null 2>&1 || return 0
    IPERF_REFUSED=$((IPERF_REFUSED + 1)); sleep 1
  done
}

# ---------------------------------------------------------------- hostsecd
HS_CLI_TIMEOUT=150
hs_stop() { hs_terminate; }
# hs_start NETNS LISTEN REMOTE NAT_TRAVERSAL
hs_start() {
  local cfg=$TMP/hostsecd-$CASE.toml
  hs_stop
  cat > "$cfg" <<EOF
[global]
listen = ["$2"]
minimum_strength = "standard"
default_action = "bypass"
control_socket = "$SOCK"
nat_traversal = "$4"

[[rule]]
name = "sw"
remote = ["$3"]
action = "require"
keying = "ike"
authentication = "psk"
psk = "$PSK"
pfs = false
auto = "none"
EOF
  hs_launch "$1" "$cfg"
}

# ---------------------------------------------------------------- results
PASS=0 FAIL=0 CASE=''
result() {
  if [ "$2" = PASS ]; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); fi
  say "$(printf '%s %-19s %-10s %s' "$2" "$CASE" "$1" "$3")"
  printf '%s\t%s\t%s\t%s\n' "$CASE" "$1" "$2" "$3" >> "$R/results.tsv"
}
ok() { if [ "$2" = 0 ]; then result "$1" PASS "$3"; else result "$1" FAIL "$3"; fi; }
kv() { tr ' ' '\n' <<< "$2" | awk -F= -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }

# ---------------------------------------------------------------- guests and the NATed hostsec namespace
boot_guest() { # NAME ADDR/PFX NETNS BRIDGE [GW]
  local out
  { echo "connections {"; echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/boot-swanctl.conf"
  GUEST=$1
  out=$(lab_boot_guest -n "$1" -a "$2" -s "$3" -b "$4" ${5:+-g "$5"} -c "$TMP/boot-swanctl.conf" 2>&1) ||
    { echo "ERROR: guest boot failed: $out" >&2; exit 2; }
  info "$out"
}
stop_guest() { cp "$LAB_RUN/$GUEST/charon.log" "$R/charon-$GUEST.log" 2>/dev/null; lab_stop_guest "$GUEST" >/dev/null 2>&1; GUEST=''; }
hsn_up() {
  ip netns add "$HSN_NS" || return 1
  ip -n "$HSN_NS" link set lo up
  ip netns exec "$HSN_NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip link add hsn0 netns "$HSN_NS" type veth peer name brn-hsn netns lab-nat || return 1
  ip -n lab-nat link set brn-hsn master brn up
  ip -n "$HSN_NS" addr add "$HSN/24" dev hsn0
  ip -n "$HSN_NS" link set hsn0 up
  ip -n "$HSN_NS" route add default via 192.0.2.1
}
# ss_conn NAME LOCAL REMOTE REMOTE_ID: a PSK connection with NAT-T left to detection (encap = no: not forced)
ss_conn() {
  { echo "connections {"; lab_swanctl_conn "$1" "$2" "$3" "$IKE" "$ESP" "$4"; echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/swanctl-$1.conf"
  lab_ss_load "$GUEST" "$TMP/swanctl-$1.conf"
}

# ---------------------------------------------------------------- one case
# run_case NAME HS_NETNS HS_ADDR PEER_FOR_HS NAT_SETTING INITIATOR(ss|hs) GUEST_ADDR_SEEN_BY_HS EXPECT_NAT [down]
run_case() {
  CASE=$1
  local hsns=$2 hsaddr=$3 peer=$4 setting=$5 who=$6 gseen=$7 want_nat=$8 expect=${9:-up} d=$R/$1 out rc j mm qm v x hm
  [ -n "$ONLY" ] && ! [[ $CASE =~ $ONLY ]] && return 0
  mkdir -p "$d"
  say "-- $CASE: hostsec $hsaddr ($setting), strongSwan $( [ "$GUEST" = swn ] && echo "$SWIN behind the NAT" || echo "$SWPUB"), $who initiates"
  hs_start "$hsns" "$hsaddr" "$peer" "$setting" || { result setup FAIL "$HS_ERR"; return; }
  hm=$(hs_log_mark)
  lab_capture_start "$d/outside.pcap" "host $PUB or host $NATPUB or host $SWPUB" || { result setup FAIL "tcpdump"; return; }
  case $who in
    ss) out=$(lab_ss_initiate "$GUEST" "$CASE" 25); rc=$?; out="swanctl --initiate: $(tail -n 1 <<< "$out")";;
    hs) out=$(hs_cli initiate sw 2>&1); rc=$?; out="hostsec initiate: exit $rc: $(tail -n 1 <<< "$out")"
        sleep 1;;
  esac
  lab_ss_snapshot "$GUEST" "$CASE" >/dev/null; cp "$LAB_RUN/$GUEST/cases/$CASE/"* "$d/" 2>/dev/null
  if [ "$expect" = down ]; then
    lab_capture_stop; hs_log_since "$hm" > "$d/hostsecd.log"
    [ $rc != 0 ]; ok no-sa $? "$out"
    grep -q 'nat_traversal' "$d/hostsecd.log"
    ok reason $? "hostsecd: $(grep -o 'NAT-D shows[^"]*"[^"]*"[^"]*"[^"]*"[^)]*' "$d/hostsecd.log" | head -n 1 | head -c 300)"
    return
  fi
  ok sa $rc "$out"
  [ $rc = 0 ] || { lab_capture_stop; hs_log_since "$hm" > "$d/hostsecd.log"; info "hostsecd: $(grep -E 'WARN|ERROR' "$d/hostsecd.log" | tail -n 3 | tr '\n' ' ')"; return; }
  v=$(lab_swanctl_sa "$CASE" < "$d/list-sas.txt")
  x="ike=$(lab_kv ike_state <<< "$v") child=$(lab_kv child_state <<< "$v") mode=$(lab_kv child_mode <<< "$v") esp=$(lab_kv esp_algs <<< "$v")"
  [ "$x" = "ike=ESTABLISHED child=INSTALLED mode=TRANSPORT-in-UDP esp=$(lab_esp_swanctl_algs "$ESP")" ]
  ok ss-view $? "strongSwan: $x"
  j=$(hs_cli --json sas 2>&1); echo "$j" > "$d/hostsec-sas.json"
  mm=$(jq -c '.main_mode | last // empty' <<< "$j" 2>/dev/null); qm=$(jq -c '.quick_mode | last // empty' <<< "$j" 2>/dev/null)
  x="nat=$(jq -r '.nat // "-"' <<< "${mm:-{\}}") encapsulation=$(jq -r '.encapsulation // "-"' <<< "${qm:-{\}}") ports=$(jq -r '"\(.encap_local_port // "-")->\(.encap_remote_port // "-")"' <<< "${qm:-{\}}") peer=$(jq -r '.peer // "-"' <<< "${qm:-{\}}")"
  [[ $x == "nat=$want_nat encapsulation=udp "* ]]; ok hs-view $? "hostsec: $x"
  # traffic: hostsec's side pings the guest's address as it sees it, the guest pings hostsec's
  out=$(ip netns exec "$hsns" ping -n -c 3 -i 0.2 -W 2 "$gseen" 2>&1 | lab_ping_result_stdin); rc=$?
  case $hsns in "$HSN_NS") v=$NATPUB;; "$HSN2_NS") v=$NAT2PUB;; *) v=$PUB;; esac
  x=$(lab_gexec "$GUEST" "ping -n -c 3 -i 0.2 -W 2 $v" 30)
  v=$(lab_ping_result "$x")
  [ "$out" = "3 3" ] && [ "$v" = "3 3" ]; ok ping $? "hostsec->guest $out, guest->hostsec ${v:-none} (tx rx)"
  lab_iperf_server_start "guest:$GUEST" "$( [ "$GUEST" = swn ] && echo "$SWIN" || echo "$SWPUB")" >/dev/null
  IPERF_REFUSED=0
  iperf_client "$hsns" "$gseen" "$d/iperf3-hg.json"
  out=$(lab_iperf_mbps "$d/iperf3-hg.json") || out="failed ($(jq -r '.error // "no JSON"' "$d/iperf3-hg.json" 2>/dev/null | head -c 150))"
  iperf_client "$hsns" "$gseen" "$d/iperf3-gh.json" -R
  x=$(lab_iperf_mbps "$d/iperf3-gh.json") || x="failed ($(jq -r '.error // "no JSON"' "$d/iperf3-gh.json" 2>/dev/null | head -c 150))"
  lab_iperf_server_stop "guest:$GUEST"
  awk -v a="${out%% *}" -v b="${x%% *}" 'BEGIN { exit !(a + 0 > 0 && b + 0 > 0) }'; ok iperf3 $? "TCP hostsec->guest $out Mbit/s, guest->hostsec $x Mbit/s$([ "$IPERF_REFUSED" = 0 ] || echo " (server refused $IPERF_REFUSED times between tests, retried)")"
  lab_capture_stop
  hs_log_since "$hm" > "$d/hostsecd.log"
  # tshark dissects ESP in UDP as ESP: count with tcpdump filters on the IP protocol and the ports instead
  local esp udp other
  esp=$(tcpdump -r "$d/outside.pcap" -nn 'ip proto 50' 2>/dev/null | wc -l)
  udp=$(tcpdump -r "$d/outside.pcap" -nn 'udp port 4500 or udp port 500' 2>/dev/null | wc -l)
  other=$(tcpdump -r "$d/outside.pcap" -nn 'not arp and not (udp port 4500 or udp port 500)' 2>/dev/null | wc -l)
  [ "$udp" -gt 100 ] && [ "$esp" = 0 ] && [ "$other" = 0 ]
  ok wire $? "outside the NAT: $udp UDP 500/4500, $esp ESP (protocol 50), $other other"
  lab_gexec "$GUEST" 'for i in $(swanctl --list-sas 2>/dev/null | sed -n "s/^\([^ ]*\): #.*/\1/p" | sort -u); do
      swanctl --terminate --ike "$i" --force --timeout 3 >/dev/null 2>&1; done; ip xfrm state flush; ip xfrm policy flush' 40 >/dev/null
}
lab_ping_result_stdin() { local r; r=$(lab_ping_result "$(cat)"); echo "${r:-0 0}"; [ "${r:-}" = "3 3" ]; }

# ---------------------------------------------------------------- run
say "== hostsec <-> strongSwan NAT traversal $(date -u +%FT%TZ)"
NET_UP=yes
lab_net_up nat || { echo "ERROR: could not set up the lab network" >&2; exit 2; }
# wanted CASE...: some of these cases are selected (--only); a phase whose cases are not boots no guest
wanted() { local c; [ -z "$ONLY" ] && return 0; for c in "$@"; do [[ $c =~ $ONLY ]] && return 0; done; return 1; }
# phase 1: strongSwan behind the NAT, hostsec outside
if wanted guest-behind-nat off-refused; then
boot_guest swn "$SWIN/24" lab-nat brn 192.0.2.1
ss_conn guest-behind-nat "$SWIN" "$PUB" "$PUB" || { echo "ERROR: strongSwan config" >&2; exit 2; }
run_case guest-behind-nat "$LAB_NETNS" "$PUB" "$NATPUB" remote-behind-nat ss "$NATPUB" remote
ss_conn off-refused "$SWIN" "$PUB" "$PUB" || { echo "ERROR: strongSwan config" >&2; exit 2; }
run_case off-refused "$LAB_NETNS" "$PUB" "$NATPUB" off ss "$NATPUB" remote down
hs_stop; stop_guest
fi
# phase 2: hostsec behind the NAT, strongSwan outside
if wanted hostsec-behind-nat; then
hsn_up || { echo "ERROR: could not make $HSN_NS" >&2; exit 2; }
boot_guest sw "$SWPUB/24" "$LAB_NETNS" br0
ss_conn hostsec-behind-nat "$SWPUB" "%any" "$HSN" || { echo "ERROR: strongSwan config" >&2; exit 2; }
run_case hostsec-behind-nat "$HSN_NS" "$HSN" "$SWPUB" both-behind-nat hs "$SWPUB" local
hs_stop; stop_guest
fi
# phase 3: both behind NAT: strongSwan behind lab-nat (UDP 500/4500 forwarded to it), hostsec behind a second NAT
if wanted both-behind-nat; then
{ lab_nat2_up "$HSN2_NS" "$HSN2" && lab_nat_forward "$SWIN"; } || { echo "ERROR: could not make the second NAT" >&2; exit 2; }
boot_guest swn "$SWIN/24" lab-nat brn 192.0.2.1
ss_conn both-behind-nat "$SWIN" "%any" "$HSN2" || { echo "ERROR: strongSwan config" >&2; exit 2; }
run_case both-behind-nat "$HSN2_NS" "$HSN2" "$NATPUB" both-behind-nat hs "$NATPUB" both
fi

say "== $PASS passed, $FAIL failed, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START ))) -- $( [ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ] && echo PASS || echo FAIL) (results: $R)"
[ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]
