#!/bin/bash
# Interop test: rekeying under load between hostsec and strongSwan 5.9.8 (kernel ESP in a QEMU guest), IKEv1 PSK,
# ESP transport, with lifetimes shortened so that a few minutes hold several rekeys of both kinds:
#
#   lab-host  br0 198.51.100.1/24, hostsecd (rule "sw", action require), the pinger and the iperf3 client
#   guest     strongSwan at 198.51.100.2: Quick Mode SAs rekeyed every ~REKEY_S s (life_time REKEY_S + 30 s),
#             its Main Mode SA re-established every ~IKE_REKEY_S s (strongSwan's IKEv1 rekey is a new Main Mode
#             whose Quick Mode SAs replace the old ones; the old Main Mode is then deleted)
#
# Cases:
#   ss-initiates   strongSwan initiates (swanctl --initiate) and does the rekeys; hostsec responds
#   hs-initiates   hostsec initiates (hostsec initiate), strongSwan's shorter lifetimes rule (hostsec takes the
#                  shorter of the two proposals) and strongSwan rekeys as responder-turned-initiator
# Checks per case, for DURATION_S seconds of traffic:
#   rekeys     strongSwan's log shows >= QM_REKEYS new CHILD_SAs and >= MM_REKEYS new IKE SAs after the first;
#              hostsec's stats count as many established Quick Modes / Main Modes
#   ping       ping -i 0.05 from hostsec's side to the guest for the whole time: 0 lost
#   iperf3     an iperf3 TCP stream hostsec -> guest for the whole time, 1 s intervals: no interval without data
#              (no stall), and the stream ends normally
#   cleanup    at the end hostsec holds exactly the Main Mode SAs and Quick Mode pairs strongSwan holds (replaced ones
#              deleted on both sides; at most two of each while strongSwan keeps a replaced SA until it expires)
#   wire       the capture holds only IKE and ESP between the two: no cleartext
#
# Usage: tests/interop/strongswan-rekey.sh [--only REGEX] [--duration N] [--keep]
# Environment: HOSTSEC_BIN_DIR (default <repo>/target/release; not built here), HOSTSEC_LOG_LEVEL (debug), LAB_ACCEL.
# Needs root and a Debian 12 host. Exit 0 only when every check passed; 2 for a usage or setup error.
# Results: tests/lab/results/strongswan-rekey/ (summary.txt, results.tsv, per case: ping and iperf3 output,
# charon and hostsecd logs of the case, both sides' SA lists).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAB_DIR=$REPO/tests/lab
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
# shellcheck source=tests/lab/hostsecd.sh
. "$LAB_DIR/hostsecd.sh"

ONLY='' KEEP=no DURATION_S=150
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --only) ONLY=${2:-}; shift 2;;
    --duration) DURATION_S=${2:-}; shift 2;;
    --keep) KEEP=yes; shift;;
    -h|--help) usage;;
    *) echo "unknown argument: $1" >&2; usage;;
  esac
done
BIN_DIR=${HOSTSEC_BIN_DIR:-$REPO/target/release}
HOSTSECD=$BIN_DIR/hostsecd HOSTSEC=$BIN_DIR/hostsec
LOG_LEVEL=${HOSTSEC_LOG_LEVEL:-debug}
HOST=$LAB_HOST_ADDR4 SW=198.51.100.2 GUEST=rk
PSK=$LAB_PSK_DEFAULT
R=$LAB_DIR/results/strongswan-rekey
IKE=aes128-sha256-ecp256 ESP=aes128gcm16
# strongSwan's schedule: CHILD_SA rekey after REKEY_S (+- 5 s), IKE SA after IKE_REKEY_S; hostsec floors a
# proposed lifetime at 60 s, so the hard lifetimes stay above that. The default 150 s hold 3 Quick Mode rekeys and 1
# Main Mode rekey.
REKEY_S=40 IKE_REKEY_S=100
QM_REKEYS=$(( DURATION_S / (REKEY_S + 10) )) MM_REKEYS=$(( DURATION_S >= IKE_REKEY_S + 20 ? 1 : 0 ))

for b in "$HOSTSECD" "$HOSTSEC"; do
  [ -x "$b" ] || { echo "ERROR: $b not found or not executable. Build first (cargo build --release) or set HOSTSEC_BIN_DIR." >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ERROR: needs root (network namespaces, TAP devices, QEMU)" >&2; exit 2; }
lab_install_host_pkgs
lab_lock
"$LAB_DIR/build-guest.sh" strongswan || { echo "ERROR: guest image build failed" >&2; exit 2; }
lab_netns_free "$LAB_NETNS" || { echo "ERROR: network namespace $LAB_NETNS is in use (a --keep run? stop it first)" >&2; exit 2; }
T_START=$(lab_now_ms)
rm -rf "$R"; mkdir -p "$R"
TMP=$(mktemp -d /tmp/hostsec-rekey.XXXXXX); chmod 700 "$TMP"
SOCK=$TMP/control.sock HSLOG=$TMP/hostsecd.log
: > "$HSLOG"

say() { echo "$*" | tee -a "$R/summary.txt"; }
info() { echo "   $*" | tee -a "$R/summary.txt" >&2; }

HS_PID='' NET_UP=no GUEST_UP=no PING_PID='' IPERF_PID=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cp "$HSLOG" "$R/hostsecd.log" 2>/dev/null
  lab_capture_stop
  [ -n "$PING_PID" ] && kill "$PING_PID" 2>/dev/null
  [ -n "$IPERF_PID" ] && kill "$IPERF_PID" 2>/dev/null
  if [ "$KEEP" = yes ]; then
    echo "--keep: left running: hostsecd pid ${HS_PID:-none} (socket $SOCK), guest $GUEST, namespace $LAB_NETNS."
    exit $rc
  fi
  hs_stop
  [ "$GUEST_UP" = yes ] && { cp "$LAB_RUN/$GUEST/charon.log" "$R/charon.log" 2>/dev/null; lab_stop_guest "$GUEST" >/dev/null 2>&1; }
  [ "$NET_UP" = yes ] && lab_net_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- hostsecd
HS_CLI_TIMEOUT=150
hs_stop() { hs_terminate; }
hs_start() {
  local cfg=$TMP/hostsecd-$CASE.toml
  hs_stop
  cat > "$cfg" <<EOF
[global]
listen = ["$HOST"]
minimum_strength = "standard"
default_action = "bypass"
control_socket = "$SOCK"

[[rule]]
name = "sw"
remote = ["$SW"]
action = "require"
keying = "ike"
authentication = "psk"
psk = "$PSK"
pfs = false
auto = "none"
EOF
  hs_launch "$LAB_NETNS" "$cfg"
}

# ---------------------------------------------------------------- results
PASS=0 FAIL=0 CASE=''
result() {
  if [ "$2" = PASS ]; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); fi
  say "$(printf '%s %-14s %-9s %s' "$2" "$CASE" "$1" "$3")"
  printf '%s\t%s\t%s\t%s\n' "$CASE" "$1" "$2" "$3" >> "$R/results.tsv"
}
ok() { if [ "$2" = 0 ]; then result "$1" PASS "$3"; else result "$1" FAIL "$3"; fi; }

# ss_conn NAME: the case's connection, lab_swanctl_conn with short lifetimes (rand_time small so the schedule is
# predictable; over_time keeps the hard lifetime 30 s after the rekey)
ss_conn() {
  { echo "connections {"
    lab_swanctl_conn "$1" "$SW" "$HOST" "$IKE" "$ESP" |
      sed "s/^    dpd_delay = 0/    dpd_delay = 0\n    rekey_time = ${IKE_REKEY_S}s\n    over_time = 30s\n    rand_time = 5s/" |
      sed "s/^        start_action = none/        start_action = none\n        rekey_time = ${REKEY_S}s\n        life_time = $(( REKEY_S + 30 ))s\n        rand_time = 5s/"
    echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/swanctl-$1.conf"
  lab_ss_load "$GUEST" "$TMP/swanctl-$1.conf"
}

# sides_agree: hostsec's Main Mode SAs (initiator cookies) and Quick Mode pairs (its inbound SPIs) are exactly
# strongSwan's IKE SAs and CHILD_SAs (their outbound SPIs), at most two of each; writes both views to $TMP/agree-*
sides_agree() {
  local j l
  j=$(hs_cli --json sas 2>/dev/null) || return 1
  l=$(lab_gexec "$GUEST" 'swanctl --list-sas' 20) || return 1
  { echo "mm $(jq -r '[.main_mode[]?.cookie_i] | sort | join(",")' <<< "$j")"
    echo "qm $(jq -r '[.quick_mode[]?.spi_in] | sort | join(",")' <<< "$j")"; } > "$TMP/agree-hs"
  { echo "mm $(sed -n 's/.*IKEv1, \([0-9a-f]*\)_i.*/\1/p' <<< "$l" | sort | paste -sd,)"
    echo "qm $(sed -n 's/^ *out \([0-9a-f]*\),.*/\1/p' <<< "$l" | sort | paste -sd,)"; } > "$TMP/agree-ss"
  cmp -s "$TMP/agree-hs" "$TMP/agree-ss" && [ "$(jq '[.main_mode[]?] | length' <<< "$j")" -le 2 ] &&
    [ "$(jq '[.quick_mode[]?] | length' <<< "$j")" -le 2 ] && [ "$(jq '[.quick_mode[]?] | length' <<< "$j")" -ge 1 ]
}

# ---------------------------------------------------------------- one case
run_case() { # NAME ss|hs
  CASE=$1
  local who=$2 d=$R/$1 cm hm out rc j st qm_n mm_n qm_hs mm_hs x y tx rx zero n spi
  [ -n "$ONLY" ] && ! [[ $CASE =~ $ONLY ]] && return 0
  mkdir -p "$d"
  say "-- $CASE: $who initiates; strongSwan rekeys Quick Mode every ~${REKEY_S}s, Main Mode every ~${IKE_REKEY_S}s; ${DURATION_S}s of ping + iperf3"
  hs_start || { result setup FAIL "$HS_ERR"; return; }
  ss_conn "$CASE" 2> "$TMP/load.err" || { result setup FAIL "strongSwan config: $(cat "$TMP/load.err")"; return; }
  cm=$(lab_charon_log_mark "$GUEST"); hm=$(hs_log_mark)
  st=$(hs_cli --json stats 2>/dev/null)
  qm_hs=$(jq -r '.ike.quick_mode_established // 0' <<< "$st"); mm_hs=$(jq -r '.ike.main_mode_established // 0' <<< "$st")
  lab_capture_start "$d/full.pcap" "host $SW and host $HOST" || { result setup FAIL "tcpdump did not start"; return; }
  case $who in
    ss) out=$(lab_ss_initiate "$GUEST" "$CASE" 30); rc=$?;;
    hs) out=$(hs_cli initiate sw 2>&1); rc=$?
        [ $rc = 0 ] && { lab_wait_until 20 lab_ss_lists_spi "$GUEST" "$(hs_cli --json sas | jq -r '.quick_mode | last | .spi_out')" || rc=1; };;
  esac
  ok setup "$rc" "$who initiated: $(tail -n 1 <<< "$out")"
  [ "$rc" = 0 ] || { lab_capture_stop; return; }
  # traffic for the whole time: a ping every 50 ms and an iperf3 stream (server in the guest)
  lab_iperf_server_start "guest:$GUEST" "$SW" >/dev/null
  ip netns exec "$LAB_NETNS" ping -n -i 0.05 -W 2 -c "$(( DURATION_S * 20 ))" "$SW" > "$d/ping.txt" 2>&1 9>&- &
  PING_PID=$!
  ip netns exec "$LAB_NETNS" iperf3 -c "$SW" -t "$(( DURATION_S - 5 ))" -i 1 -b 20M -J > "$d/iperf3.json" 2>&1 9>&- &
  IPERF_PID=$!
  wait "$IPERF_PID"; IPERF_PID=''
  wait "$PING_PID"; PING_PID=''
  lab_iperf_server_stop "guest:$GUEST"
  sleep 2
  lab_capture_stop
  lab_charon_log_since "$GUEST" "$cm" > "$d/charon.log"; hs_log_since "$hm" > "$d/hostsecd.log"
  lab_ss_snapshot "$GUEST" "$CASE" end >/dev/null; cp "$LAB_RUN/$GUEST/cases/$CASE/"* "$d/" 2>/dev/null
  # rekeys seen by both sides
  qm_n=$(grep -c 'CHILD_SA .* established' "$d/charon.log"); mm_n=$(grep -c 'IKE_SA .* established' "$d/charon.log")
  st=$(hs_cli --json stats 2>/dev/null); echo "$st" > "$d/hostsec-stats.json"
  x=$(( $(jq -r '.ike.quick_mode_established // 0' <<< "$st") - qm_hs )); y=$(( $(jq -r '.ike.main_mode_established // 0' <<< "$st") - mm_hs ))
  [ "$qm_n" -ge $(( QM_REKEYS + 1 )) ] && [ "$mm_n" -ge $(( MM_REKEYS + 1 )) ] && [ "$x" -ge $(( QM_REKEYS + 1 )) ] && [ "$y" -ge $(( MM_REKEYS + 1 )) ]
  ok rekeys $? "strongSwan: $qm_n CHILD_SAs and $mm_n IKE SAs established (want >= $(( QM_REKEYS + 1 )) and >= $(( MM_REKEYS + 1 ))); hostsec: $x Quick Modes, $y Main Modes"
  # ping: nothing lost
  read -r tx rx <<< "$(lab_ping_result "$(cat "$d/ping.txt")")"
  [ -n "${tx:-}" ] && [ "${tx:-0}" = $(( DURATION_S * 20 )) ] && [ "$tx" = "$rx" ]
  ok ping $? "ping -i 0.05 for ${DURATION_S}s across the rekeys: ${tx:-?} sent, ${rx:-?} received"
  # iperf3: every 1 s interval carried data
  n=$(jq '.intervals | length' "$d/iperf3.json" 2>/dev/null); zero=$(jq '[.intervals[].sum.bytes | select(. == 0)] | length' "$d/iperf3.json" 2>/dev/null)
  x=$(jq -r '[.intervals[].sum.bits_per_second] | min / 1e6 | . * 10 | round / 10' "$d/iperf3.json" 2>/dev/null)
  y=$(jq -r '.end.sum_received.bits_per_second / 1e6 | . * 10 | round / 10' "$d/iperf3.json" 2>/dev/null)
  [ "${n:-0}" -ge $(( DURATION_S - 10 )) ] && [ "${zero:-1}" = 0 ] && [ -n "$y" ] && [ "$y" != null ]
  ok iperf3 $? "TCP hostsec -> guest, ${n:-0} intervals of 1 s, ${zero:-?} without data, slowest ${x:-?} Mbit/s, mean ${y:-?} Mbit/s$(jq -r '.error // empty | " error: " + .' "$d/iperf3.json" 2>/dev/null)"
  # at the end: hostsec holds exactly the SAs strongSwan holds (the old ones deleted or expired on both sides, no
  # stale leftovers), at most two of each kind (strongSwan keeps a replaced SA for over_time / until its expiry)
  lab_wait_until 45 sides_agree
  sides_agree; rc=$?
  cp "$TMP/agree-"* "$d/" 2>/dev/null
  x=$(cat "$TMP/agree-hs" 2>/dev/null | tr '\n' ' ') y=$(cat "$TMP/agree-ss" 2>/dev/null | tr '\n' ' ')
  ok cleanup $rc "hostsec: $x| strongSwan: $y"
  # wire: IKE and ESP only
  x=$(tcpdump -r "$d/full.pcap" -nn 'not (udp port 500 or udp port 4500 or ip proto 50) and not arp' 2>/dev/null | wc -l)
  y=$(tcpdump -r "$d/full.pcap" -nn 'ip proto 50' 2>/dev/null | wc -l)
  [ "$x" = 0 ] && [ "$y" -gt 1000 ]
  ok wire $? "capture: $y ESP, $x other (cleartext) packets"
  lab_ss_terminate "$GUEST" "$CASE" >/dev/null 2>&1
  hs_stop
}

# ---------------------------------------------------------------- run
say "== hostsec <-> strongSwan rekeying under load $(date -u +%FT%TZ)"
info "hostsec binaries: $BIN_DIR ($(stat -c %y "$HOSTSECD" | cut -d. -f1)); lifetimes: Quick Mode rekey ${REKEY_S}s, Main Mode rekey ${IKE_REKEY_S}s; ${DURATION_S}s per case"
NET_UP=yes
lab_net_up || { echo "ERROR: could not set up the lab network" >&2; exit 2; }
{ echo "connections {"; echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/boot-swanctl.conf"
GUEST_UP=yes
boot=$(lab_boot_guest -n "$GUEST" -a "$SW/24" -c "$TMP/boot-swanctl.conf" 2>&1) || { echo "ERROR: guest boot failed: $boot" >&2; exit 2; }
info "$boot"
lab_ep_ping host "$SW" 1 >/dev/null

run_case ss-initiates ss
run_case hs-initiates hs

say "== $PASS passed, $FAIL failed, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START ))) -- $([ "$FAIL" = 0 ] && echo PASS || echo FAIL) (results: $R)"
[ "$FAIL" = 0 ]
