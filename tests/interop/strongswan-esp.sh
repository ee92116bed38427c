#!/bin/bash
# Interop test: hostsec's ESP datapath <-> strongSwan 5.9.8 (Debian 12) with kernel ESP, transport mode, IPv4 and
# IPv6. IKE interop and key equality are proven by strongswan-ike.sh; this script proves protected traffic.
#
#   netns lab-host: br0 198.51.100.1/24 + 2001:db8:1::1/64, hostsecd (TUN hs0, policy routing, raw ESP sockets,
#                   nftables table inet hostsec), iperf3 server and TCP listeners (started and stopped by PID)
#   guest "sw"    : 198.51.100.2 + 2001:db8:1::2, strongSwan (charon + swanctl), Debian 6.1 kernel with ESP
#
# Phases:
#   traffic   per case = family (v4, v6) x transform (gcm128: AES-GCM-16-128 without PFS; cbc256-pfs:
#             AES-CBC-256/HMAC-SHA-256-128 with PFS, Main Mode group ECP-384) x role (ss: swanctl --initiate;
#             hs: hostsec initiate RULE; od: on demand, the first ping from hostsec's side starts IKE), 12 cases.
#             hostsecd runs with action = "require" and rules sw4 (198.51.100.2) and sw6 (2001:db8:1::2); the
#             guest requires protection too (xfrm block policies for its cleartext to hostsec, guest_require_policies).
#             Checks per case:
#               sa        both sides hold the SA pair (strongSwan: INSTALLED, TRANSPORT, the case's algorithms;
#                         hostsec sas --json: Quick Mode entry with the SPIs swapped, same algorithms)
#               ping      (a) ping -c 5 guest -> hostsec and hostsec -> guest, every reply received
#               marker    a unique TCP marker guest -> hostsec (socat listener in lab-host) and hostsec -> guest
#               iperf     (b) iperf3 TCP, IPERF_S s guest -> hostsec and hostsec -> guest (server in lab-host, -R)
#               wire      (c) the br0 capture between the two addresses holds only IKE, ESP, ARP and IPv6
#                         neighbour discovery: no cleartext ICMP echo/TCP/UDP (tshark without ESP decryption,
#                         a tcpdump filter, the bridge nft counters at prerouting+output)
#               decrypt   (d) tshark decrypts that capture with hostsec's key log esp_sa as it is, the ICV check
#                         good for every ESP packet of both SAs, and finds both markers in the decrypted TCP
#               counters  (e) hostsec sas --json bytes_in/bytes_out/packets_in/packets_out non-zero, and
#                         packets_in/out = the guest kernel's packet counts of the matching SAs (ip -s xfrm
#                         state) within max(5, 2 %)
#   replay    (v4, v6) one ESP packet guest -> hostsec captured on br0 is injected again through a veth port
#             of br0 (tests/lab/esp-inject.py): stats --json esp.replayed +1 and no other ESP drop counter nor
#             the SA's packets_in changes; then the same packet with the top byte of its sequence number flipped
#             (new to the window, ICV no longer verifies; flipping an ICV byte of an already seen packet would be
#             a replay, RFC 4303 3.4.3): esp.auth_failed +1, nothing else; a ping afterwards still passes
#   actions   strongSwan without IPsec configuration (no connections, xfrm flushed) unless said otherwise:
#               require   guest pings hostsec (v4, v6): no reply, no cleartext reply on the wire, the firewall
#                         require-drop counter increases
#               block     pings fail both ways, strongSwan's swanctl --initiate gets no IKE answer, hostsec sends
#                         nothing to the guest (v6: except neighbour discovery), the block-drop counter increases
#               bypass    cleartext pings pass both ways, nothing is encrypted (no ESP, no IKE on the wire)
#               request   charon stopped in the guest (lab-ike stop): hostsec's first ping starts IKE (UDP 500 to
#                         the guest on the wire), IKE gets no answer, after the fallback the ping passes in
#                         cleartext (ping -w REQUEST_FALLBACK_TIMEOUT), no ESP, no Quick Mode SA
#   restore   the lab-host state (ip rule v4/v6, ip route show table all v4/v6, nft list ruleset with counter
#             values blanked, ip -o link) before the first hostsecd start is the baseline:
#               setup     with hostsecd running and an SA up, hs0, an ip rule with table 4853 and the nftables
#                         table inet hostsec exist
#               sigterm   SIGTERM: exit status 0 and the state equals the baseline
#               kill9     kill -9 with an SA up, a new hostsecd starts and gets ready, SIGTERM: exit 0, baseline
#             (after every other hostsecd stop the state is compared too; a difference is a WARNING line)
#
# Usage: tests/interop/strongswan-esp.sh [--phases traffic,replay,actions,restore] [--only REGEX]
#                                        [--iperf-seconds N] [--keep]
#   --only    traffic cases whose name matches REGEX (names: v4-gcm128-ss, v6-cbc256-pfs-od, ...)
#   --keep    leave hostsecd, the guest and the namespace running at the end (prints how to stop them)
# Environment: HOSTSEC_BIN_DIR (default <repo>/target/release; not built here), HOSTSEC_LOG_LEVEL (debug),
#   HOSTSECD_START_TIMEOUT (s, 30), ON_DEMAND_TIMEOUT (s, 30: first ping to 5 replies), REQUEST_FALLBACK_TIMEOUT
#   (s, 60), LAB_ACCEL, the JSON paths (jq) of the counters this script reads (HS_* below); HOSTSEC_EP,
#   HOSTSEC_ADDR4, HOSTSEC_ADDR6 only to test this script against a stand-in for hostsec (see below).
# Needs root and a Debian 12 host. Exit 0 only when every check passed; 2 for a usage or setup error.
# Results: tests/lab/results/strongswan-esp/ (summary.txt, results.tsv, per case: capture cut before the iperf3
# bulk, hostsec JSON, guest xfrm/list-sas, iperf3 JSON; decryption table of failed cases; hostsecd.log,
# charon.log, esp_sa, host-state baseline and diffs).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAB_DIR=$REPO/tests/lab
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
# shellcheck source=tests/lab/hostsecd.sh
. "$LAB_DIR/hostsecd.sh"

# ---------------------------------------------------------------- arguments and settings
PHASES=traffic,replay,actions,restore ONLY='' KEEP=no IPERF_S=5
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --phases) PHASES=${2:-}; shift 2;;
    --only) ONLY=${2:-}; shift 2;;
    --iperf-seconds) IPERF_S=${2:-}; shift 2;;
    --keep) KEEP=yes; shift;;
    -h|--help) usage;;
    *) echo "unknown argument: $1" >&2; usage;;
  esac
done
BIN_DIR=${HOSTSEC_BIN_DIR:-$REPO/target/release}
HOSTSECD=$BIN_DIR/hostsecd HOSTSEC=$BIN_DIR/hostsec
LOG_LEVEL=${HOSTSEC_LOG_LEVEL:-debug}
START_TIMEOUT=${HOSTSECD_START_TIMEOUT:-30}
OD_TIMEOUT=${ON_DEMAND_TIMEOUT:-30}
FALLBACK_TIMEOUT=${REQUEST_FALLBACK_TIMEOUT:-60}
# JSON of hostsec that this script reads (jq paths into `hostsec stats --json`; Quick Mode entry fields below)
HS_ESP_REPLAYED=${HS_ESP_REPLAYED:-.esp.drops.replayed}
HS_ESP_AUTH_FAILED=${HS_ESP_AUTH_FAILED:-.esp.drops.authentication_failed}
HS_FW_REQUIRE=${HS_FW_REQUIRE:-.firewall.drop_require_in.packets}
HS_FW_BLOCK=${HS_FW_BLOCK:-.firewall.drop_block.packets}
# keys of .esp that count traffic, not drops (may change during the replay checks)
HS_ESP_TRAFFIC_RE=${HS_ESP_TRAFFIC_RE:-'^(rx|tx|received|sent|packets|bytes|decrypted|encrypted|accepted|delivered|in|out)(_|$)'}
HOST4=${HOSTSEC_ADDR4:-$LAB_HOST_ADDR4} HOST6=${HOSTSEC_ADDR6:-$LAB_HOST_ADDR6}   # hostsecd (br0 in lab-host)
# where hostsec's side of the traffic (ping, listeners, iperf3 server) runs: "host" (lab-host), or, only to test
# this script against a stand-in for hostsec, "guest:NAME" with HOSTSEC_ADDR4/6 set to that guest's addresses
HS_EP=${HOSTSEC_EP:-host}
SW4=198.51.100.2 SW6=2001:db8:1::2               # the strongSwan guest
GUEST=sw
PSK=$LAB_PSK_DEFAULT
R=$LAB_DIR/results/strongswan-esp
SA_APPEAR_TIMEOUT=15 DELETE_TIMEOUT=20

# ---------------------------------------------------------------- preflight
for b in "$HOSTSECD" "$HOSTSEC"; do
  [ -x "$b" ] || { echo "ERROR: $b not found or not executable. Build first (cargo build --release) or set HOSTSEC_BIN_DIR." >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ERROR: needs root (network namespaces, TAP devices, QEMU)" >&2; exit 2; }
for p in ${PHASES//,/ }; do
  case $p in traffic|replay|actions|restore) ;; *) echo "unknown phase $p (traffic, replay, actions, restore)" >&2; exit 2;; esac
done
lab_install_host_pkgs
lab_lock
"$LAB_DIR/build-guest.sh" strongswan || { echo "ERROR: guest image build failed" >&2; exit 2; }
lab_netns_free "$LAB_NETNS" || { echo "ERROR: the lab network namespace is in use (a --keep run? stop it first)" >&2; exit 2; }
T_START=$(lab_now_ms)
rm -rf "$R"; mkdir -p "$R"
TMP=$(mktemp -d /tmp/hostsec-esp.XXXXXX); chmod 700 "$TMP"
SOCK=$TMP/control.sock KEYS=$TMP/keys HSLOG=$TMP/hostsecd.log
mkdir -m 700 "$KEYS"; : > "$HSLOG"

say() { echo "$*" | tee -a "$R/summary.txt"; }
info() { echo "   $*" | tee -a "$R/summary.txt" >&2; }

# ---------------------------------------------------------------- cleanup: only what this script made
HS_PID='' NET_UP=no GUEST_UP=no
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cp "$HSLOG" "$R/hostsecd.log" 2>/dev/null
  cp "$LAB_RUN/$GUEST/charon.log" "$R/charon.log" 2>/dev/null
  cp "$LAB_RUN/$GUEST/console.log" "$R/guest-console.log" 2>/dev/null
  cp "$KEYS/esp_sa" "$KEYS/ikev1_decryption_table" "$R/" 2>/dev/null
  lab_capture_stop
  [ -n "$LAB_CAPTURE_ONE_PID" ] && kill "$LAB_CAPTURE_ONE_PID" 2>/dev/null
  lab_iperf_server_stop "$HS_EP"
  if [ "$KEEP" = yes ]; then
    echo "--keep: left running: hostsecd pid ${HS_PID:-none} (socket $SOCK), guest $GUEST, namespace $LAB_NETNS."
    echo "  stop with: kill ${HS_PID:-<pid>}; $LAB_DIR/stop-peer.sh $GUEST; $LAB_DIR/net.sh down; rm -rf $TMP"
    exit $rc
  fi
  hs_stop nocompare
  [ "$GUEST_UP" = yes ] && lab_stop_guest "$GUEST" >/dev/null 2>&1
  [ "$NET_UP" = yes ] && lab_net_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- hostsecd
# Config variant ACTION:AUTO:PFS (e.g. require:none:off, require:on-demand:on, block:none:off): rules sw4 and sw6
# (one peer address each) with that action, auto and pfs.
HS_VARIANT='' HS_ERR='' BASELINE=''
declare -A HS_BROKEN=()
hs_config() { # action auto pfs
  local r a
  cat <<EOF
[global]
listen = ["$HOST4", "$HOST6"]
minimum_strength = "standard"
default_action = "bypass"
control_socket = "$SOCK"
key_log = "$KEYS"
# One SA pair per case, whose counters are compared with the guest kernel's: no byte rekey in the middle of a
# case's iperf3 run (rekeying under load has its own test, strongswan-rekey.sh).
quick_mode_lifetime_kb = 2147483647
EOF
  for r in sw4 sw6; do
    a=$SW4; [ $r = sw6 ] && a=$SW6
    cat <<EOF

[[rule]]
name = "$r"
remote = ["$a"]
action = "$1"
authentication = "psk"
psk = "$PSK"
keying = "ike"
pfs = $( [ "$3" = on ] && echo true || echo false )
auto = "$2"
EOF
  done
}
HS_EXIT=''   # exit status of the last hostsecd that hs_stop / hs_kill9 stopped
# hs_stop [nocompare]: SIGTERM (SIGKILL after 10 s), HS_EXIT = its exit status; then compare the host state with
# the baseline (a difference is a WARNING: the restore phase has the real checks)
hs_stop() {
  [ -n "$HS_PID" ] || { HS_EXIT=''; return 0; }
  hs_terminate; HS_VARIANT=''
  if [ "${1:-}" != nocompare ] && [ -n "$BASELINE" ]; then
    local now; now=$(lab_host_state)
    if [ "$now" != "$BASELINE" ]; then
      diff <(echo "$BASELINE") <(echo "$now") > "$R/host-state-diff-$(date +%H%M%S).txt"
      say "WARNING: after hostsecd stopped (exit $HS_EXIT) lab-host differs from the baseline: $(diff <(echo "$BASELINE") <(echo "$now") | grep '^[<>]' | head -n 3 | tr '\n' ' ')"
    fi
  fi
}
# hs_start CFG: start hostsecd in lab-host, wait until it answers; fails with HS_ERR
hs_start() {
  hs_launch "$LAB_NETNS" "$1" "$START_TIMEOUT" || { cp "$1" "$R/"; return 1; }
}
# hs_ensure ACTION AUTO PFS: (re)start hostsecd with that variant unless it already runs with it
hs_ensure() {
  local v="$1:$2:$3" cfg=$TMP/hostsecd-$1-$2-$3.toml
  [ "$HS_VARIANT" = "$v" ] && hs_alive && return 0
  HS_ERR=${HS_BROKEN[$v]:-}
  [ -z "$HS_ERR" ] || return 1
  if [ -n "$HS_PID" ] && hs_dead; then say "WARNING: hostsecd (pid $HS_PID, $HS_VARIANT) exited unexpectedly"; fi
  hs_stop
  hs_config "$1" "$2" "$3" > "$cfg"
  if ! hs_start "$cfg"; then
    HS_BROKEN[$v]=$HS_ERR; echo "$HS_ERR; its log ends with:" >&2; tail -n 20 "$HSLOG" >&2; return 1
  fi
  HS_VARIANT=$v
}
# hs_sas / hs_stats: the JSON, or a failure reason (exit 1)
hs_sas() {
  local out
  out=$(hs_cli --json sas 2>&1) && jq -e '(.main_mode | type == "array") and (.quick_mode | type == "array")' <<< "$out" >/dev/null 2>&1 ||
    { echo "hostsec --json sas failed or is not {main_mode, quick_mode}: $(head -c 300 <<< "$out")"; return 1; }
  echo "$out"
}
hs_stats() {
  local out
  out=$(hs_cli --json stats 2>&1) && jq -e 'type == "object"' <<< "$out" >/dev/null 2>&1 ||
    { echo "hostsec --json stats failed: $(head -c 300 <<< "$out")"; return 1; }
  echo "$out"
}
# jnum JSON PATH: the number at PATH, or "-" when absent / not a number
jnum() { jq -r "($2) | if type == \"number\" then . else \"-\" end" <<< "$1" 2>/dev/null || echo -; }
# hs_qm JSON SPI_IN SPI_OUT: hostsec's Quick Mode entry with these SPIs (compact JSON) or nothing
hs_qm() { jq -c --arg i "$2" --arg o "$3" '[.quick_mode[] | select(.spi_in == $i and .spi_out == $o)] | last // empty' <<< "$1"; }
hs_qm_present() { local j; j=$(hs_sas) || return 1; [ -n "$(hs_qm "$j" "$1" "$2")" ]; }
hs_qm_gone() { local j; j=$(hs_sas) || return 1; [ -z "$(jq -c --arg i "$1" '.quick_mode[] | select(.spi_in == $i)' <<< "$j")" ]; }
hs_no_qm() { local j; j=$(hs_sas) || return 1; [ "$(jq '.quick_mode | length' <<< "$j")" = 0 ]; }
# esp_drop_deltas BEFORE AFTER: "key:+N" for every numeric key of .esp that changed, except traffic counters
esp_drop_deltas() {
  jq -r --argjson b "$1" --arg re "$HS_ESP_TRAFFIC_RE" '
    (.esp.drops // {}) | to_entries[] | select((.value | type) == "number") | select(.key | test($re) | not)
    | . as $e | (($b.esp.drops // {})[$e.key] // 0) as $old | select($e.value != $old) | "\($e.key):+\($e.value - $old)"' <<< "$2" 2>/dev/null | paste -sd' '
}

# ---------------------------------------------------------------- results
PASS=0 FAIL=0 CASE_MS=()
declare -A PH_PASS=() PH_FAIL=()
PHASE=''
result() { # case check PASS|FAIL text
  if [ "$3" = PASS ]; then PASS=$((PASS + 1)); PH_PASS[$PHASE]=$(( ${PH_PASS[$PHASE]:-0} + 1 ))
  else FAIL=$((FAIL + 1)); PH_FAIL[$PHASE]=$(( ${PH_FAIL[$PHASE]:-0} + 1 )); fi
  say "$(printf '%s %-18s %-9s %s' "$3" "$1" "$2" "$4")"
  printf '%s\t%s\t%s\t%s\t%s\n' "$PHASE" "$1" "$2" "$3" "$4" >> "$R/results.tsv"
}
check() { if [ "$3" = 0 ]; then result "$1" "$2" PASS "$4"; else result "$1" "$2" FAIL "$4"; fi; }
# kv KEY LINE: value of KEY=... in a "k=v k=v" line
kv() { tr ' ' '\n' <<< "$2" | awk -F= -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }

# ---------------------------------------------------------------- strongSwan side
ss_load() { # name family ike esp  (one connection; as initiator or responder)
  local g=$SW4 h=$HOST4
  [ "$2" = 6 ] && g=$SW6 h=$HOST6
  { echo "connections {"; [ -n "$1" ] && lab_swanctl_conn "$1" "$g" "$h" "$3" "$4"; echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/swanctl-${1:-none}.conf"
  lab_ss_load "$GUEST" "$TMP/swanctl-${1:-none}.conf"
}
ss_no_ipsec() { # no connections, no SAs, no policies in the guest
  ss_load '' 4 - - 2> "$TMP/load.err" || return 1
  lab_gexec "$GUEST" 'for i in $(swanctl --list-sas 2>/dev/null | sed -n "s/^\([^ ]*\): #.*/\1/p" | sort -u); do
      swanctl --terminate --ike "$i" --force --timeout 3 >/dev/null 2>&1; done; ip xfrm state flush; ip xfrm policy flush' 40 >/dev/null
}
ss_child_installed() { # case
  lab_ss_snapshot "$GUEST" "$1" >/dev/null
  [ "$(lab_swanctl_sa "$1" < "$LAB_RUN/$GUEST/cases/$1/list-sas.txt" | lab_kv child_state)" = INSTALLED ]
}
# The guest as a peer that requires protection: block policies for its cleartext TCP, UDP and ICMP echo to hostsec,
# at a priority every strongSwan policy overrides. Without them the guest, as Quick Mode responder, sends its reply
# to a ping that arrives on its newly installed inbound SA in cleartext: charon in the emulated guest installs the
# outbound SA and policy up to ~200 ms after the inbound one, and until then no policy covers the reply (seen on the
# wire in the on-demand cases: one cleartext echo reply from the guest). ss_no_ipsec flushes them.
guest_require_policies() { # family
  local g=$SW4 h=$HOST4 p cmd=''
  [ "$1" = 6 ] && g=$SW6 h=$HOST6
  for p in "proto tcp" "proto udp" "$( [ "$1" = 6 ] && echo 'proto ipv6-icmp type 128' || echo 'proto icmp type 8')" \
           "$( [ "$1" = 6 ] && echo 'proto ipv6-icmp type 129' || echo 'proto icmp type 0')"; do
    cmd="$cmd ip -$1 xfrm policy update src $g dst $h $p dir out priority 4000000 action block || exit 1;"
  done
  lab_gexec "$GUEST" "$cmd" 20
}
guest_xfrm_stats() { lab_gexec "$GUEST" 'ip -s xfrm state' 20 | lab_xfrm_stats; }

# ---------------------------------------------------------------- phase: traffic
#       transform   IKE proposal          ESP proposal          PFS
TRANSFORMS=("gcm128     aes128-sha256-ecp256 aes128gcm16          off"
            "cbc256-pfs aes256-sha384-ecp384 aes256-sha256-ecp384 on")
traffic_case() { # name family ike esp pfs role
  local n=$1 fam=$2 ike=$3 esp=$4 pfs=$5 role=$6 g h rule d c0 out rc v ss_in ss_out j qm x y ok m_gh m_hg r_gh r_hg \
        mb_gh mb_hg t_bulk cls clr cb ce s_out s_in st gin gout pi po bi bo cm hm t0 ij
  c0=$(lab_now_ms)
  if [ "$fam" = 4 ]; then g=$SW4 h=$HOST4 rule=sw4; else g=$SW6 h=$HOST6 rule=sw6; fi
  d=$R/$n; mkdir -p "$d"
  if ! hs_ensure require "$( [ "$role" = od ] && echo on-demand || echo none)" "$pfs"; then result "$n" sa FAIL "$HS_ERR"; return; fi
  ss_load "$n" "$fam" "$ike" "$esp" 2> "$TMP/load.err" || { result "$n" sa FAIL "strongSwan config: $(cat "$TMP/load.err")"; return; }
  x=$(guest_require_policies "$fam" 2>&1) || { result "$n" sa FAIL "guest block policies: $x"; return; }
  cm=$(lab_charon_log_mark "$GUEST"); hm=$(hs_log_mark)
  lab_net_reset
  lab_capture_start "$d/full.pcap" "host $g and host $h" || { result "$n" sa FAIL "tcpdump did not start"; return; }
  mkdir -p "$LAB_RUN/$GUEST/cases/$n"
  # establish the SA pair
  t0=$(lab_now_ms); rc=0
  case $role in
    ss) out=$(lab_ss_initiate "$GUEST" "$n" 30); rc=$?;;
    hs) out=$(hs_cli initiate "$rule" 2>&1); rc=$?; out="hostsec initiate $rule: exit $rc $(tail -n 1 <<< "$out")"
        [ $rc = 0 ] && { lab_wait_until "$SA_APPEAR_TIMEOUT" ss_child_installed "$n" || { rc=1; out="$out; strongSwan has no INSTALLED CHILD_SA"; }; };;
    od) x=$(lab_ep_ping "$HS_EP" "$g" 5 "-w $OD_TIMEOUT"); rc=$?
        out="on demand: ping from hostsec's side $x (tx rx) in $(lab_ms_fmt $(( $(lab_now_ms) - t0 )))"
        [ $rc = 0 ] && { lab_wait_until "$SA_APPEAR_TIMEOUT" ss_child_installed "$n" || { rc=1; out="$out; strongSwan has no INSTALLED CHILD_SA"; }; };;
  esac
  lab_ss_snapshot "$GUEST" "$n" >/dev/null
  cp "$LAB_RUN/$GUEST/cases/$n/"* "$d/" 2>/dev/null
  v=''
  if [ $rc = 0 ]; then v=$(lab_check_ss_sa "$d/list-sas.txt" "$n" "$ike" "$esp") || rc=1; fi
  if [ $rc = 0 ]; then
    read -r ss_in ss_out _ <<< "$v"
    if lab_wait_until "$SA_APPEAR_TIMEOUT" hs_qm_present "$ss_out" "$ss_in"; then
      j=$(hs_sas); qm=$(hs_qm "$j" "$ss_out" "$ss_in")
      read -r x y _ < <(lab_esp_parse "$esp")
      [ "$(jq -r '"\(.encryption) \(.integrity) \(.mode)"' <<< "$qm")" = "$x $y transport" ] ||
        { rc=1; v="hostsec's Quick Mode SA is $(jq -c '{encryption, integrity, mode}' <<< "$qm"), expected $x/$y/transport"; }
    else rc=1; v="hostsec lists no Quick Mode SA spi_in=$ss_out spi_out=$ss_in: $(hs_sas | jq -c '[.quick_mode[]? | {rule, spi_in, spi_out}]' 2>/dev/null)"; fi
  fi
  if [ $rc != 0 ]; then
    lab_capture_stop
    result "$n" sa FAIL "$out${v:+ | $v}"
    lab_charon_log_since "$GUEST" "$cm" > "$d/charon.log"; hs_log_since "$hm" > "$d/hostsecd.log"
    lab_ss_terminate "$GUEST" "$n" >/dev/null 2>&1; return
  fi
  result "$n" sa PASS "$(lab_esp_swanctl_algs "$esp") strongSwan in $ss_in out $ss_out | $out"

  # (a) ping both ways
  x=$(lab_ep_ping "guest:$GUEST" "$h" 5); ok=$?; y=$(lab_ep_ping "$HS_EP" "$g" 5); [ $ok = 0 ] && ok=$?
  check "$n" ping "$ok" "guest->hostsec $x, hostsec->guest $y (tx rx)"
  # markers both ways
  m_gh=$(lab_marker "$n-gh") m_hg=$(lab_marker "$n-hg")
  r_gh=$(lab_marker_xfer "guest:$GUEST" "$HS_EP" "$h" 5301 "$m_gh" "$d"); ok=$?
  r_hg=$(lab_marker_xfer "$HS_EP" "guest:$GUEST" "$g" 5302 "$m_hg" "$d"); [ $ok = 0 ] && ok=$?
  check "$n" marker "$ok" "guest->hostsec got '$r_gh'; hostsec->guest got '$r_hg'"
  # (b) iperf3 both ways, server in lab-host
  t_bulk=$(date +%s.%N)
  LAB_IPERF_LOG=$d/iperf3-server.log
  if lab_iperf_server_start "$HS_EP" "$h"; then
    mb_gh=$(lab_iperf_guest "$GUEST" "$h" "$IPERF_S" "$n-iperf-gh.json"); ok=$?
    mb_hg=$(lab_iperf_guest "$GUEST" "$h" "$IPERF_S" "$n-iperf-hg.json" -R); [ $ok = 0 ] && ok=$?
    lab_iperf_server_stop "$HS_EP"
    cp "$LAB_RUN/$GUEST/cases/$n-iperf-"*.json "$d/" 2>/dev/null
    check "$n" iperf "$ok" "guest->hostsec ${mb_gh} Mbit/s, hostsec->guest ${mb_hg} Mbit/s (${IPERF_S} s each, TCP)"
  else
    lab_iperf_server_stop "$HS_EP"; result "$n" iperf FAIL "iperf3 server in lab-host did not start: $(head -c 200 "$d/iperf3-server.log")"
  fi
  # (e) snapshots right after the traffic: hostsec's counters and the guest kernel's
  j=$(hs_sas); echo "$j" > "$d/hostsec-sas.json"; hs_stats > "$d/hostsec-stats.json"
  lab_gexec "$GUEST" 'ip -s xfrm state' 20 > "$d/xfrm-s.txt"
  lab_capture_stop
  # (c) only IKE and ESP on the wire
  cls=$(lab_pcap_classify "$d/full.pcap" "$g" "$h")
  clr=$(lab_pcap_cleartext_tcpdump "$d/full.pcap" "$g" "$h")
  if [ "$fam" = 4 ]; then cb=$(( $(lab_net_counter c_icmp_echo) + $(lab_net_counter c_tcp_clear) )); ce=$(lab_net_counter c_esp)
  else cb=$(( $(lab_net_counter c_icmp6_echo) + $(lab_net_counter c_tcp6_clear) )); ce=$(lab_net_counter c_esp6); fi
  lab_net_counters > "$d/nft-counters.txt"
  x=$(( $(kv icmp_echo "$cls") + $(kv icmp_other "$cls") + $(kv tcp "$cls") + $(kv udp "$cls") + $(kv other "$cls") ))
  ok=1; [ "$(kv esp "$cls")" -gt 100 ] && [ "$x" = 0 ] && [ "$clr" = 0 ] && [ "$cb" = 0 ] && [ "$ce" -gt 100 ] && ok=0
  check "$n" wire "$ok" "tshark: $cls | tcpdump cleartext filter: $clr | nft br0: esp=$ce cleartext icmp-echo+tcp=$cb"
  # (d) decryption with hostsec's key log as it is
  # (only the lines of this case's two SPIs: a single line that tshark rejects would make it refuse all of them)
  cp "$KEYS/esp_sa" "$d/esp_sa" 2>/dev/null || : > "$d/esp_sa"
  LAB_TSHARK_ERR=$d/tshark-decrypt.err lab_esp_decrypt "$d/full.pcap" "$d/esp_sa" "$ss_out" "$ss_in" > "$d/decrypted.tsv"
  s_out=$(lab_esp_decrypt_summary "$ss_out" < "$d/decrypted.tsv"); s_in=$(lab_esp_decrypt_summary "$ss_in" < "$d/decrypted.tsv")
  x=$(lab_esp_find_marker "$m_gh" < "$d/decrypted.tsv" | head -n 1); y=$(lab_esp_find_marker "$m_hg" < "$d/decrypted.tsv" | head -n 1)
  ok=1
  if [ "$(kv esp "$s_out")" -gt 0 ] && [ "$(kv esp "$s_out")" = "$(kv decrypted "$s_out")" ] && [ "$(kv esp "$s_out")" = "$(kv icv_good "$s_out")" ] &&
     [ "$(kv esp "$s_in")" -gt 0 ] && [ "$(kv esp "$s_in")" = "$(kv decrypted "$s_in")" ] && [ "$(kv esp "$s_in")" = "$(kv icv_good "$s_in")" ] &&
     [ "$(awk '{print $4, $5}' <<< "$x")" = "$ss_out good" ] && [ "$(awk '{print $4, $5}' <<< "$y")" = "$ss_in good" ]; then ok=0; fi
  ij=$(lab_esp_find_marker '"tcp":true' < "$d/decrypted.tsv" | grep -c .)   # iperf3's parameter JSON (information)
  v="$(lab_uat_lines "$d/esp_sa" "$ss_out" | grep -c .)/$(lab_uat_lines "$d/esp_sa" "$ss_in" | grep -c .)"
  [ "$v" = 1/1 ] || v="$v <- key log lines for $ss_out/$ss_in, expected 1/1"
  # frames without a good ICV, for the failure message
  [ $ok = 0 ] || v="$v; not good: $(awk -F'\t' '$6 != "good" { printf "%s(%s %s %s) ", $1, $4, $6, $7 }' "$d/decrypted.tsv" | head -c 300)"
  check "$n" decrypt "$ok" "with hostsec's esp_sa (lines for the SAs: $v): guest->hostsec SA $ss_out: $s_out; hostsec->guest SA $ss_in: $s_in; markers in frames ${x%% *}/${y%% *}; iperf3 parameter JSON in $ij frames$(grep -v 'Running as user' "$d/tshark-decrypt.err" 2>/dev/null | head -n 1 | cut -c1-200 | sed 's/^./; tshark: &/')"
  # (e) hostsec's byte and packet counters against the guest kernel's
  qm=$(hs_qm "$j" "$ss_out" "$ss_in")
  bi=$(jnum "$qm" .bytes_in) bo=$(jnum "$qm" .bytes_out) pi=$(jnum "$qm" .packets_in) po=$(jnum "$qm" .packets_out)
  st=$(lab_xfrm_stats < "$d/xfrm-s.txt")
  gout=$(lab_xfrm_stat_of "$ss_out" packets <<< "$st") gin=$(lab_xfrm_stat_of "$ss_in" packets <<< "$st")
  ok=1
  for x in "$bi" "$bo" "$pi" "$po"; do [[ $x =~ ^[0-9]+$ ]] && [ "$x" -gt 0 ] || ok=2; done
  [ $ok = 1 ] && lab_near "$pi" "$gout" && lab_near "$po" "$gin" && ok=0
  check "$n" counters "$ok" "hostsec packets_in $pi / guest out $gout, packets_out $po / guest in $gin; hostsec bytes_in $bi bytes_out $bo"
  # end of the case: strongSwan deletes, hostsec must drop the SA
  lab_ss_terminate "$GUEST" "$n" > "$d/terminate.log" 2>&1
  lab_wait_until "$DELETE_TIMEOUT" hs_qm_gone "$ss_out" || info "note: hostsec still lists Quick Mode SA $ss_out ${DELETE_TIMEOUT}s after strongSwan's DELETE"
  lab_pcap_cut "$d/full.pcap" "$d/capture.pcap" "$t_bulk"; rm -f "$d/full.pcap"
  if awk -F'\t' -v n="$n" '$2 == n && $4 == "FAIL" { f = 1 } END { exit !f }' "$R/results.tsv"; then
    lab_charon_log_since "$GUEST" "$cm" > "$d/charon.log"; hs_log_since "$hm" > "$d/hostsecd.log"
  else rm -f "$d/decrypted.tsv"; fi
  CASE_MS+=("$(( $(lab_now_ms) - c0 ))")
  info "case $n: $(lab_ms_fmt "${CASE_MS[-1]}")"
}
phase_traffic() {
  local fam t role tn ike esp pfs n
  say "== traffic: hostsec <-> strongSwan, ESP transport mode, action require"
  for fam in 4 6; do
    for t in "${TRANSFORMS[@]}"; do
      read -r tn ike esp pfs <<< "$t"
      for role in ss hs od; do
        n=v$fam-$tn-$role
        [ -z "$ONLY" ] || [[ $n =~ $ONLY ]] || continue
        traffic_case "$n" "$fam" "$ike" "$esp" "$pfs" "$role"
      done
    done
  done
}

# ---------------------------------------------------------------- phase: replay and bad ICV
replay_family() { # family
  local fam=$1 g h n=replay-v$1 d v ss_in ss_out s0 s1 s2 j0 j1 x y ok p0 p1
  if [ "$fam" = 4 ]; then g=$SW4 h=$HOST4; else g=$SW6 h=$HOST6; fi
  d=$R/$n; mkdir -p "$d"
  hs_ensure require none off || { result "$n" replay FAIL "$HS_ERR"; return; }
  ss_load "$n" "$fam" aes128-sha256-ecp256 aes128gcm16 2> "$TMP/load.err" || { result "$n" replay FAIL "strongSwan config: $(cat "$TMP/load.err")"; return; }
  x=$(lab_ss_initiate "$GUEST" "$n" 30) && v=$(lab_check_ss_sa "$LAB_RUN/$GUEST/cases/$n/list-sas.txt" "$n" aes128-sha256-ecp256 aes128gcm16) ||
    { result "$n" replay FAIL "no SA: $x ${v:-}"; lab_ss_terminate "$GUEST" "$n" >/dev/null 2>&1; return; }
  read -r ss_in ss_out _ <<< "$v"
  lab_wait_until "$SA_APPEAR_TIMEOUT" hs_qm_present "$ss_out" "$ss_in" || { result "$n" replay FAIL "hostsec lists no Quick Mode SA $ss_out"; return; }
  if ! lab_capture_one "$d/one.pcap" "esp and src $g and dst $h"; then result "$n" replay FAIL "tcpdump did not start"; return; fi
  lab_ep_ping "guest:$GUEST" "$h" 2 > "$d/ping.txt"
  wait "$LAB_CAPTURE_ONE_PID"; LAB_CAPTURE_ONE_PID=''
  sleep 1
  s0=$(hs_stats) && j0=$(hs_sas) || { result "$n" replay FAIL "$s0 ${j0:-}"; return; }
  p0=$(jnum "$(hs_qm "$j0" "$ss_out" "$ss_in")" .packets_in)
  x=$(lab_inject "$d/one.pcap" 2>&1); sleep 1
  s1=$(hs_stats); j1=$(hs_sas)
  p1=$(jnum "$(hs_qm "$j1" "$ss_out" "$ss_in")" .packets_in)
  y=$(esp_drop_deltas "$s0" "$s1")
  ok=1
  [ "$(jnum "$s1" "$HS_ESP_REPLAYED")" = "$(( $(jnum "$s0" "$HS_ESP_REPLAYED" | tr -- - 0) + 1 ))" ] &&
    [ "$y" = "${HS_ESP_REPLAYED##*.}:+1" ] && [ "$p0" = "$p1" ] && ok=0
  check "$n" replay "$ok" "$x | $HS_ESP_REPLAYED $(jnum "$s0" "$HS_ESP_REPLAYED") -> $(jnum "$s1" "$HS_ESP_REPLAYED"); ESP drop counters changed: ${y:-none}; SA packets_in $p0 -> $p1"
  x=$(lab_inject "$d/one.pcap" --flip esp-seq 2>&1); sleep 1
  s2=$(hs_stats); j1=$(hs_sas)
  p0=$p1; p1=$(jnum "$(hs_qm "$j1" "$ss_out" "$ss_in")" .packets_in)
  y=$(esp_drop_deltas "$s1" "$s2")
  v=$(lab_ep_ping "guest:$GUEST" "$h" 3)
  ok=1
  [ "$(jnum "$s2" "$HS_ESP_AUTH_FAILED")" = "$(( $(jnum "$s1" "$HS_ESP_AUTH_FAILED" | tr -- - 0) + 1 ))" ] &&
    [ "$y" = "${HS_ESP_AUTH_FAILED##*.}:+1" ] && [ "$p0" = "$p1" ] && [ "$v" = "3 3" ] && ok=0
  check "$n" bad-icv "$ok" "$x | $HS_ESP_AUTH_FAILED $(jnum "$s1" "$HS_ESP_AUTH_FAILED") -> $(jnum "$s2" "$HS_ESP_AUTH_FAILED"); ESP drop counters changed: ${y:-none}; SA packets_in $p0 -> $p1; ping guest->hostsec afterwards $v"
  printf '%s\n' "$s0" "$s1" "$s2" > "$d/hostsec-stats.json"
  lab_ss_terminate "$GUEST" "$n" > "$d/terminate.log" 2>&1
  lab_wait_until "$DELETE_TIMEOUT" hs_qm_gone "$ss_out" || true
}
phase_replay() {
  say "== replay and bad ICV: one captured ESP packet guest -> hostsec injected again into br0"
  replay_family 4
  replay_family 6
}

# ---------------------------------------------------------------- phase: rule actions
# act_capture NAME / act_capture_end: capture between the guest and hostsec (both families) for an action check
act_capture() { lab_net_reset; lab_capture_start "$R/actions/$1.pcap" "host $SW4 or host $SW6"; }
# from_host PCAP FAMILY: packets hostsec's side sent to the guest, "total icmp_echo esp ike nd"
from_host() {
  local f
  if [ "$2" = 4 ]; then f="ip.src == $HOST4 && ip.dst == $SW4"; else f="ipv6.src == $HOST6 && ipv6.dst == $SW6"; fi
  tshark -r "$1" -n -Y "$f" -T fields -e frame.protocols -e icmp.type -e icmpv6.type -e udp.dstport 2>/dev/null |
    awk -F'\t' '{ t++; p = ":" $1 ":"
                  if (p ~ /:esp:/) e++; else if ($4 == 500 || $4 == 4500) k++
                  else if ($2 == 0 || $2 == 8 || $3 == 128 || $3 == 129) i++; else if ($3 >= 133 && $3 <= 137) n++ }
                END { printf "total=%d icmp_echo=%d esp=%d ike=%d nd=%d\n", t, i, e, k, n }'
}
act_require() {
  local s0 s1 fam g h x ok c0 c1 pc
  hs_ensure require none off || { result require setup FAIL "$HS_ERR"; return; }
  ss_no_ipsec || { result require setup FAIL "strongSwan: $(cat "$TMP/load.err")"; return; }
  s0=$(hs_stats) || { result require setup FAIL "$s0"; return; }
  for fam in 4 6; do
    if [ "$fam" = 4 ]; then g=$SW4 h=$HOST4; else g=$SW6 h=$HOST6; fi
    act_capture "require-v$fam" || { result require "ping-v$fam" FAIL "tcpdump"; continue; }
    c0=$(jnum "$(hs_stats)" "$HS_FW_REQUIRE")
    x=$(lab_ep_ping "guest:$GUEST" "$h" 3)
    c1=$(jnum "$(hs_stats)" "$HS_FW_REQUIRE")
    lab_capture_stop; pc=$(from_host "$R/actions/require-v$fam.pcap" "$fam")
    ok=1; [ "$x" = "3 0" ] && [ "$(kv icmp_echo "$pc")" = 0 ] && [[ $c0 =~ ^[0-9]+$ ]] && [[ $c1 =~ ^[0-9]+$ ]] && [ "$c1" -gt "$c0" ] && ok=0
    check require "ping-v$fam" "$ok" "cleartext ping guest->hostsec: $x (tx rx, expected no reply); hostsec sent to the guest: $pc; $HS_FW_REQUIRE $c0 -> $c1"
  done
  s1=$(hs_stats); printf '%s\n' "$s0" "$s1" > "$R/actions/require-stats.json"
}
act_block() {
  local fam g h x y z ok c0 c1 pc out rc
  hs_ensure block none off || { result block setup FAIL "$HS_ERR"; return; }
  for fam in 4 6; do
    if [ "$fam" = 4 ]; then g=$SW4 h=$HOST4; else g=$SW6 h=$HOST6; fi
    ss_load "block$fam" "$fam" aes128-sha256-ecp256 aes128gcm16 2> "$TMP/load.err" || { result block "v$fam" FAIL "strongSwan config: $(cat "$TMP/load.err")"; continue; }
    act_capture "block-v$fam" || { result block "v$fam" FAIL "tcpdump"; continue; }
    c0=$(jnum "$(hs_stats)" "$HS_FW_BLOCK")
    x=$(lab_ep_ping "guest:$GUEST" "$h" 3)
    y=$(lab_ep_ping "$HS_EP" "$g" 3)
    out=$(lab_gexec "$GUEST" "swanctl --initiate --child block$fam --timeout 10 2>&1" 60); rc=$?
    lab_gexec "$GUEST" "swanctl --terminate --ike block$fam --timeout 5 >/dev/null 2>&1" 30 >/dev/null
    c1=$(jnum "$(hs_stats)" "$HS_FW_BLOCK")
    lab_capture_stop; pc=$(from_host "$R/actions/block-v$fam.pcap" "$fam")
    z=$(( $(kv total "$pc") - $(kv nd "$pc") ))
    [ "$fam" = 4 ] && z=$(kv total "$pc")
    ok=1; [ "$x" = "3 0" ] && [ "$y" = "3 0" ] && [ $rc != 0 ] && [ "$z" = 0 ] && [[ $c0 =~ ^[0-9]+$ ]] && [[ $c1 =~ ^[0-9]+$ ]] && [ "$c1" -gt "$c0" ] && ok=0
    check block "v$fam" "$ok" "ping guest->hostsec $x, hostsec->guest $y (tx rx, expected no reply); swanctl --initiate exit $rc ($(grep -m1 -oE 'establishing .* failed|timeout|retransmit[^,]*' <<< "$out" | head -n 1)); hostsec sent to the guest: $pc; $HS_FW_BLOCK $c0 -> $c1"
  done
  ss_no_ipsec
}
act_bypass() {
  local fam g h x y ok cls
  hs_ensure bypass none off || { result bypass setup FAIL "$HS_ERR"; return; }
  ss_no_ipsec || { result bypass setup FAIL "strongSwan: $(cat "$TMP/load.err")"; return; }
  for fam in 4 6; do
    if [ "$fam" = 4 ]; then g=$SW4 h=$HOST4; else g=$SW6 h=$HOST6; fi
    act_capture "bypass-v$fam" || { result bypass "v$fam" FAIL "tcpdump"; continue; }
    x=$(lab_ep_ping "guest:$GUEST" "$h" 3)
    y=$(lab_ep_ping "$HS_EP" "$g" 3)
    lab_capture_stop; cls=$(lab_pcap_classify "$R/actions/bypass-v$fam.pcap" "$g" "$h")
    ok=1; [ "$x" = "3 3" ] && [ "$y" = "3 3" ] && [ "$(kv esp "$cls")" = 0 ] && [ "$(kv ike "$cls")" = 0 ] && [ "$(kv icmp_echo "$cls")" -ge 12 ] && ok=0
    check bypass "v$fam" "$ok" "ping guest->hostsec $x, hostsec->guest $y (tx rx); on the wire: $cls"
  done
}
act_request() {
  local fam g h x ok pc t0 ms
  hs_ensure request on-demand off || { result request setup FAIL "$HS_ERR"; return; }
  ss_no_ipsec || { result request setup FAIL "strongSwan: $(cat "$TMP/load.err")"; return; }
  lab_gexec "$GUEST" 'lab-ike stop; pgrep -x charon >/dev/null && echo "charon still running"' 30 > "$R/actions/request-ike-stop.txt"
  for fam in 4 6; do
    if [ "$fam" = 4 ]; then g=$SW4 h=$HOST4; else g=$SW6 h=$HOST6; fi
    act_capture "request-v$fam" || { result request "v$fam" FAIL "tcpdump"; continue; }
    t0=$(lab_now_ms)
    x=$(lab_ep_ping "$HS_EP" "$g" 3 "-w $FALLBACK_TIMEOUT"); ms=$(( $(lab_now_ms) - t0 ))
    lab_capture_stop; pc=$(from_host "$R/actions/request-v$fam.pcap" "$fam")
    # At least 3 replies: the echo requests queued while IKE was tried all leave in cleartext at the fallback, and
    # ping may count the burst of their replies before it stops at 3.
    ok=1; [ "${x#* }" -ge 3 ] 2>/dev/null && [ "$(kv ike "$pc")" -gt 0 ] && [ "$(kv esp "$pc")" = 0 ] && [ "$(kv icmp_echo "$pc")" -ge 3 ] && hs_no_qm && ok=0
    check request "v$fam" "$ok" "charon stopped; ping hostsec->guest (-w $FALLBACK_TIMEOUT) $x (tx rx) in $(lab_ms_fmt $ms); hostsec sent to the guest: $pc; hostsec Quick Mode SAs: $(hs_sas | jq '.quick_mode | length' 2>/dev/null)"
  done
  lab_gexec "$GUEST" 'lab-ike start' 60 >> "$R/actions/request-ike-stop.txt"
}
phase_actions() {
  say "== rule actions (strongSwan without IPsec configuration)"
  mkdir -p "$R/actions"
  act_require
  act_block
  act_bypass
  act_request
}

# ---------------------------------------------------------------- phase: the host is restored
restore_sa_up() { # bring up an IPv4 SA (strongSwan initiates); prints the strongSwan outbound SPI
  local v
  ss_load rst 4 aes128-sha256-ecp256 aes128gcm16 2>/dev/null && lab_ss_initiate "$GUEST" rst 30 >/dev/null &&
    v=$(lab_check_ss_sa "$LAB_RUN/$GUEST/cases/rst/list-sas.txt" rst aes128-sha256-ecp256 aes128gcm16) &&
    lab_wait_until "$SA_APPEAR_TIMEOUT" hs_qm_present "$(awk '{print $2}' <<< "$v")" "$(awk '{print $1}' <<< "$v")" &&
    lab_ep_ping "guest:$GUEST" "$HOST4" 2 >/dev/null && awk '{print $2}' <<< "$v"
}
phase_restore() {
  local cfg=$TMP/hostsecd-restore.toml during after ok x spi pid rc
  say "== the host is restored after hostsecd exits"
  mkdir -p "$R/restore"
  echo "$BASELINE" > "$R/restore/baseline.txt"
  hs_stop
  hs_config require none off > "$cfg"
  # (i) SIGTERM
  if hs_start "$cfg"; then
    spi=$(restore_sa_up) || spi=''
    during=$(lab_host_state); echo "$during" > "$R/restore/during.txt"
    x=''
    grep -q '^## ip link' <<< "$during" && grep -qE '(^| )hs0[:@ ]' <<< "$(sed -n '/^## ip link/,$p' <<< "$during")" || x="$x no hs0;"
    sed -n '/^## ip -4 rule/,/^## ip -6 rule/p' <<< "$during" | grep -qE 'lookup 4853|table 4853' || x="$x no ip rule for table 4853;"
    grep -q 'table inet hostsec' <<< "$during" || x="$x no nft table inet hostsec;"
    check restore setup "$( [ -z "$x" ] && [ -n "$spi" ] && echo 0 || echo 1)" "hostsecd running, SA ${spi:-NOT up}:${x:- hs0, ip rule -> table 4853, table inet hostsec present}; $(diff <(echo "$BASELINE") <(echo "$during") | grep -c '^>') lines added to the host state"
    pid=$HS_PID; hs_stop nocompare; rc=$HS_EXIT
    after=$(lab_host_state); echo "$after" > "$R/restore/after-sigterm.txt"
    diff <(echo "$BASELINE") <(echo "$after") > "$R/restore/diff-sigterm.txt"
    ok=1; [ "$rc" = 0 ] && [ "$after" = "$BASELINE" ] && ok=0
    check restore sigterm "$ok" "hostsecd $pid exit status $rc after SIGTERM; host state $( [ "$after" = "$BASELINE" ] && echo 'equals the baseline' || echo "differs: $(grep '^[<>]' "$R/restore/diff-sigterm.txt" | head -n 4 | tr '\n' ' ')")"
    lab_ss_terminate "$GUEST" rst >/dev/null 2>&1
  else
    result restore sigterm FAIL "$HS_ERR"
  fi
  # (ii) kill -9, a new start, SIGTERM
  if hs_start "$cfg"; then
    spi=$(restore_sa_up) || spi=''
    pid=$HS_PID
    kill -9 "$pid"; wait "$pid" 2>/dev/null; HS_PID=''
    echo "=== $(date -u +%FT%TZ) lab: hostsecd $pid killed with SIGKILL (SA ${spi:-not up})" >> "$HSLOG"
    lab_host_state > "$R/restore/after-kill9.txt"
    if hs_start "$cfg"; then
      x=$(hs_cli status 2>&1 | head -n 1)
      pid=$HS_PID; hs_stop nocompare; rc=$HS_EXIT
      after=$(lab_host_state); echo "$after" > "$R/restore/after-restart-sigterm.txt"
      diff <(echo "$BASELINE") <(echo "$after") > "$R/restore/diff-kill9.txt"
      ok=1; [ "$rc" = 0 ] && [ "$after" = "$BASELINE" ] && [ -n "$spi" ] && ok=0
      check restore kill9 "$ok" "SA ${spi:-NOT up} at kill -9 ($(diff <(echo "$BASELINE") "$R/restore/after-kill9.txt" | grep -c '^[<>]') lines differed from the baseline then); new hostsecd started ($x), exit $rc after SIGTERM; host state $( [ "$after" = "$BASELINE" ] && echo 'equals the baseline' || echo "differs: $(grep '^[<>]' "$R/restore/diff-kill9.txt" | head -n 4 | tr '\n' ' ')")"
    else
      result restore kill9 FAIL "after kill -9 a new hostsecd did not start: $HS_ERR"
    fi
    lab_ss_terminate "$GUEST" rst >/dev/null 2>&1
  else
    result restore kill9 FAIL "$HS_ERR"
  fi
}

# ---------------------------------------------------------------- lab up
say "== hostsec <-> strongSwan ESP datapath interop $(date -u +%FT%TZ)"
info "hostsec binaries: $BIN_DIR ($(stat -c %y "$HOSTSECD" | cut -d. -f1)); host $(uname -r); $(qemu-system-x86_64 --version | head -n 1); $(tshark --version 2>/dev/null | head -n 1)"
NET_UP=yes
lab_net_up || { echo "ERROR: could not set up the lab network" >&2; exit 2; }
lab_inject_up || { echo "ERROR: could not create the injection port" >&2; exit 2; }
mkdir -p "$TMP/boot"
{ echo "connections {"; echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/boot/swanctl.conf"
t0=$(lab_now_ms)
GUEST_UP=yes
boot=$(lab_boot_guest -n "$GUEST" -a "$SW4/24" -6 "$SW6/64" -c "$TMP/boot/swanctl.conf" 2>&1) || { echo "ERROR: guest boot failed: $boot" >&2; exit 2; }
info "$boot"
BOOT_MS=$(( $(lab_now_ms) - t0 ))
# neighbours resolved in cleartext once, before any policy exists on either side
lab_ep_ping "$HS_EP" "$SW4" 1 >/dev/null; lab_ep_ping "$HS_EP" "$SW6" 1 >/dev/null
BASELINE=$(lab_host_state)
echo "$BASELINE" > "$R/host-state-baseline.txt"

IFS=, read -r -a PH <<< "$PHASES"
for PHASE in "${PH[@]}"; do
  case $PHASE in
    traffic) phase_traffic;;
    replay) phase_replay;;
    actions) phase_actions;;
    restore) phase_restore;;
  esac
done
hs_alive || [ -z "$HS_PID" ] || say "WARNING: hostsecd is no longer running"

# ---------------------------------------------------------------- summary
stats() { [ $# -gt 0 ] || { echo "n=0"; return; }; printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "n=%d min=%.1fs median=%.1fs max=%.1fs", NR, v[1]/1000, v[int((NR+1)/2)]/1000, v[NR]/1000}'; }
say "== summary"
for p in "${PH[@]}"; do say "$(printf '   %-8s %3d passed, %3d failed' "$p" "${PH_PASS[$p]:-0}" "${PH_FAIL[$p]:-0}")"; done
say "   guest boot $(lab_ms_fmt "$BOOT_MS"); traffic case $(stats "${CASE_MS[@]}")"
say "== $PASS passed, $FAIL failed, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START ))) -- $( [ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ] && echo PASS || echo FAIL) (results: $R)"
[ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]
