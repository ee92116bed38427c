#!/bin/bash
# Interop test: hostsec <-> strongSwan 5.9.8 (Debian 12) with kernel ESP, IKEv1 Main Mode + Quick Mode, PSK,
# ESP transport mode.
#
#   netns lab-host: bridge br0 198.51.100.1/24, hostsecd bound to 198.51.100.1
#   guest "sw"    : 198.51.100.2, strongSwan (charon + swanctl), Debian 6.1 kernel with ESP (QEMU, TCG)
#
# Phases (each case: DH group x ESP transform, PFS on/off, see lab_case_matrix in tests/lab/lib.sh):
#   responder  strongSwan initiates (swanctl --initiate), hostsec responds
#   initiator  strongSwan is reconfigured as responder for exactly the case, `hostsec initiate sw`
#   refusal    (i) strongSwan offers aes128-sha1-modp2048/aes128-sha1 to hostsec at minimum_strength "high":
#                  refused, NO_PROPOSAL_CHOSEN in strongSwan's log, "below level" in hostsec's log
#              (ii) hostsec at "highest" initiates to strongSwan configured for aes256-sha256-modp2048 only:
#                  `hostsec initiate` exits 1, strongSwan's log shows it found no acceptable proposal
# hostsecd (rule "sw", remote 198.51.100.2, PSK) runs with pfs = true for the PFS cases and pfs = false for the
# others, in both directions (config variants standard:on / standard:off; it is restarted between variants),
# and with minimum_strength "high" / "highest" for the refusals.
# Checks per case:
#   (a) swanctl --list-sas: IKE SA ESTABLISHED with the case's IKE algorithms; CHILD_SA INSTALLED, TRANSPORT,
#       the case's ESP algorithms and PFS group
#   (b) hostsec sas --json: a Quick Mode SA with the same SPIs (swapped: hostsec's spi_in = strongSwan's out),
#       algorithm names, PFS group, mode transport, rule sw; a Main Mode SA with the case's algorithms
#   (c) KEYMAT: the ESP SAs in the guest kernel (ip xfrm state: SPI, addresses, algorithms, keys) equal the
#       lines of hostsec's key log esp_sa, both directions; (d) ikev1_decryption_table has the IKE SA's CKY-I
#       with a key of the IKE cipher's length
#   then strongSwan terminates (DELETE) and hostsec must drop the Quick Mode SA (FAIL if it stays 20 s).
#   Finally (e): tshark decrypts Main Mode messages 5 and 6 of every passing case in the capture of br0 with
#   hostsec's ikev1_decryption_table (proves each logged Ka).
#
# Usage: tests/interop/strongswan-ike.sh [--cases all|quick] [--only REGEX] [--phases responder,initiator,refusal]
#                                        [--keep]
#   --cases   all: 36 cases per direction (default); quick: 6
#   --only    run only the cases whose name matches REGEX (e.g. 'dh19', 'c0[1-3]', 'gcm')
#   --keep    leave hostsecd, the guest and the namespaces running at the end (prints how to stop them)
# Environment: HOSTSEC_BIN_DIR (default <repo>/target/release; this script does not build), HOSTSEC_LOG_LEVEL
#   (default debug), HOSTSECD_START_TIMEOUT (s, default 30), LAB_ACCEL (auto|kvm|tcg), LAB_HOST_ADDR (default
#   198.51.100.1, hostsecd's address; another 198.51.100.x only to test this script against a stand-in).
# Needs root and a Debian 12 host (missing packages are installed with apt-get; the guest image is built by
# tests/lab/build-guest.sh on first use, a few minutes). Exit code 0 only when every case passed; 2 for a usage
# or setup error. Results: tests/lab/results/strongswan-ike/ (summary.txt, results.tsv, logs of both sides
# for every failed case, full logs).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAB_DIR=$REPO/tests/lab
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
# shellcheck source=tests/lab/hostsecd.sh
. "$LAB_DIR/hostsecd.sh"

# ---------------------------------------------------------------- arguments and settings
CASE_SET=all ONLY='' PHASES=responder,initiator,refusal KEEP=no
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --cases) CASE_SET=${2:-}; shift 2;;
    --only) ONLY=${2:-}; shift 2;;
    --phases) PHASES=${2:-}; shift 2;;
    --keep) KEEP=yes; shift;;
    -h|--help) usage;;
    *) echo "unknown argument: $1" >&2; usage;;
  esac
done
case $CASE_SET in all|quick) ;; *) echo "--cases must be all or quick" >&2; exit 2;; esac
BIN_DIR=${HOSTSEC_BIN_DIR:-$REPO/target/release}
HOSTSECD=$BIN_DIR/hostsecd HOSTSEC=$BIN_DIR/hostsec
LOG_LEVEL=${HOSTSEC_LOG_LEVEL:-debug}
START_TIMEOUT=${HOSTSECD_START_TIMEOUT:-30}
HOST=${LAB_HOST_ADDR:-198.51.100.1}     # hostsecd's address (the bridge's address in lab-host)
SW=198.51.100.2                         # the strongSwan guest
GUEST=sw RULE=sw
PSK=$LAB_PSK_DEFAULT
R=$LAB_DIR/results/strongswan-ike
DELETE_TIMEOUT=20 SA_APPEAR_TIMEOUT=15

# ---------------------------------------------------------------- preflight
for b in "$HOSTSECD" "$HOSTSEC"; do
  [ -x "$b" ] || { echo "ERROR: $b not found or not executable. Build first (cargo build --release) or set HOSTSEC_BIN_DIR." >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ERROR: needs root (network namespaces, TAP devices, QEMU)" >&2; exit 2; }
lab_install_host_pkgs
lab_lock
"$LAB_DIR/build-guest.sh" strongswan || { echo "ERROR: guest image build failed" >&2; exit 2; }
lab_netns_free "$LAB_NETNS" || { echo "ERROR: the lab network namespace is in use (a --keep run? stop it first)" >&2; exit 2; }
T_START=$(lab_now_ms)
rm -rf "$R"; mkdir -p "$R"
TMP=$(mktemp -d /tmp/hostsec-interop.XXXXXX); chmod 700 "$TMP"
SOCK=$TMP/control.sock KEYS=$TMP/keys HSLOG=$TMP/hostsecd.log
mkdir -m 700 "$KEYS"; : > "$HSLOG"
printf '%s' "$PSK" > "$TMP/psk"; chmod 600 "$TMP/psk"

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
  if [ "$KEEP" = yes ]; then
    echo "--keep: left running: hostsecd pid ${HS_PID:-none} (socket $SOCK), guest $GUEST, namespace $LAB_NETNS."
    echo "  stop with: kill ${HS_PID:-<pid>}; $LAB_DIR/stop-peer.sh $GUEST; $LAB_DIR/net.sh down; rm -rf $TMP"
    exit $rc
  fi
  hs_stop
  lab_capture_stop
  [ "$GUEST_UP" = yes ] && lab_stop_guest "$GUEST" >/dev/null 2>&1
  [ "$NET_UP" = yes ] && lab_net_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- hostsecd
# Config variants: LEVEL:PFS (standard:on, standard:off, high:off, highest:off). The PFS variant uses psk_file,
# the others an inline psk, so both ways of giving the key are exercised by real negotiations.
HS_VARIANT='' HS_ERR=''
declare -A HS_BROKEN=()   # variant -> why hostsecd did not start with it (not retried for every case)
hs_config() { # level pfs(on|off)
  cat <<EOF
[global]
listen = ["$HOST"]
minimum_strength = "$1"
control_socket = "$SOCK"
key_log = "$KEYS"

[[rule]]
name = "$RULE"
remote = ["$SW"]
authentication = "psk"
$( [ "$2" = on ] && echo "psk_file = \"$TMP/psk\"" || echo "psk = \"$PSK\"" )
keying = "ike"
pfs = $( [ "$2" = on ] && echo true || echo false )
minimum_strength = "$1"
auto = "none"
EOF
}
hs_stop() { hs_terminate; HS_VARIANT=''; }
# hs_ensure LEVEL PFS: (re)start hostsecd with that config variant unless it already runs with it. On failure
# HS_ERR says why (and the variant is not tried again: every later case fails at once with the same reason).
hs_ensure() {
  local v="$1:$2" cfg=$TMP/hostsecd-$1-$2.toml rc
  [ "$HS_VARIANT" = "$v" ] && hs_alive && return 0
  HS_ERR=${HS_BROKEN[$v]:-}
  [ -z "$HS_ERR" ] || return 1
  if [ -n "$HS_PID" ] && hs_dead; then
    wait "$HS_PID"; rc=$?
    say "WARNING: hostsecd (pid $HS_PID, $HS_VARIANT) exited unexpectedly with status $rc; restarting it"
    HS_PID='' HS_VARIANT=''
  fi
  hs_stop
  hs_config "$1" "$2" > "$cfg"
  if ! hs_launch "$LAB_NETNS" "$cfg" "$START_TIMEOUT"; then
    HS_BROKEN[$v]=$HS_ERR; echo "$HS_ERR; its log ends with:" >&2; tail -n 20 "$HSLOG" >&2; cp "$cfg" "$R/"; return 1
  fi
  HS_VARIANT=$v
}

# hs_sas: `hostsec --json sas` (JSON on stdout) or a failure reason
hs_sas() {
  local out rc
  out=$(hs_cli --json sas 2> "$TMP/cli.err"); rc=$?
  if [ $rc -ne 0 ]; then
    echo "hostsec --json sas exited $rc$( [ $rc -eq 3 ] && echo ' (daemon not reachable)')$(hs_alive || echo ', hostsecd is not running'): $(head -c 300 "$TMP/cli.err")"
    return 1
  fi
  if ! jq -e '(.main_mode | type == "array") and (.quick_mode | type == "array")' <<< "$out" >/dev/null 2>&1; then
    echo "hostsec --json sas: not {\"main_mode\": [...], \"quick_mode\": [...]}: $(head -c 300 <<< "$out")"; return 1
  fi
  echo "$out"
}
# hs_qm JSON SPI_IN SPI_OUT: the Quick Mode entry with these SPIs (compact JSON), empty if none
hs_qm() { jq -c --arg i "$2" --arg o "$3" '[.quick_mode[] | select(.spi_in == $i and .spi_out == $o)] | last // empty' <<< "$1"; }
hs_qm_gone() { local j; j=$(hs_sas) || return 1; [ -z "$(jq -c --arg i "$1" '.quick_mode[] | select(.spi_in == $i)' <<< "$j")" ]; }
hs_qm_present() { local j; j=$(hs_sas) || return 1; [ -n "$(hs_qm "$j" "$1" "$2")" ]; }

# check_hostsec JSON HS_SPI_IN HS_SPI_OUT IKE ESP: check (b); prints a summary or the failure reason
check_hostsec() {
  local j=$1 qm enc integ pfs pfsnum mmenc mmhash mmdh bad n
  read -r enc integ pfs < <(lab_esp_parse "$5")
  pfsnum=null; [ "$pfs" != - ] && pfsnum=$(lab_dh_num "$pfs")
  read -r mmenc mmhash mmdh < <(lab_ike_hostsec "$4")
  qm=$(hs_qm "$j" "$2" "$3")
  if [ -z "$qm" ]; then
    echo "hostsec lists no Quick Mode SA with spi_in=$2 spi_out=$3 (its QM SAs: $(jq -c '[.quick_mode[] | {spi_in, spi_out}]' <<< "$j"))"
    return 1
  fi
  bad=$(jq -r --arg rule "$RULE" --arg host "$HOST" --arg sw "$SW" --arg enc "$enc" --arg integ "$integ" \
          --argjson pfs "$pfsnum" '
    def host: tostring | split(":")[0];
    [ (if .rule != $rule then "rule=\(.rule)" else empty end),
      (if (.local | host) != $host then "local=\(.local)" else empty end),
      (if (.peer | host) != $sw then "peer=\(.peer)" else empty end),
      (if (.spi_in | test("^[0-9a-f]{8}$") | not) or (.spi_out | test("^[0-9a-f]{8}$") | not) then "SPI format \(.spi_in)/\(.spi_out)" else empty end),
      (if .encryption != $enc then "encryption=\(.encryption) (expected \($enc))" else empty end),
      (if .integrity != $integ then "integrity=\(.integrity) (expected \($integ))" else empty end),
      (if .pfs_group != $pfs then "pfs_group=\(.pfs_group) (expected \($pfs))" else empty end),
      (if .mode != "transport" then "mode=\(.mode)" else empty end),
      (if ((.lifetime_left_s | type) != "number") or .lifetime_left_s <= 0 then "lifetime_left_s=\(.lifetime_left_s)" else empty end)
    ] | join("; ")' <<< "$qm" 2>&1)
  [ -z "$bad" ] || { echo "hostsec Quick Mode SA $2: $bad"; return 1; }
  n=$(jq --arg rule "$RULE" --arg sw "$SW" --arg e "$mmenc" --arg h "$mmhash" --argjson g "$mmdh" '
        def host: tostring | split(":")[0];
        [.main_mode[] | select(.rule == $rule and (.peer | host) == $sw and .auth == "psk"
                               and .encryption == $e and .hash == $h and .dh_group == $g)] | length' <<< "$j" 2>&1)
  [ "$n" -ge 1 ] 2>/dev/null ||
    { echo "hostsec lists no Main Mode SA rule=$RULE peer=$SW auth=psk $mmenc/$mmhash/group $mmdh (its MM SAs: $(jq -c '[.main_mode[] | {rule, peer, state, auth, encryption, hash, dh_group}]' <<< "$j"))"; return 1; }
  echo "hostsec QM $enc/$integ pfs=$pfsnum, MM $mmenc/$mmhash/$mmdh"
}

# keylog_has SPI...: hostsec's esp_sa holds lines for all these SPIs
keylog_has() {
  local s recs
  recs=$(lab_uat_records < "$KEYS/esp_sa" 2>/dev/null) || return 1
  for s in "$@"; do [ -n "$(lab_record_for_spi "$s" <<< "$recs")" ] || return 1; done
}
# check_keys XFRM_FILE SS_SPI_IN SS_SPI_OUT ESP IKE CKY_I: checks (c) and (d)
check_keys() {
  local v k_in k_out recs h_in h_out d ka bits
  v=$(lab_check_xfrm_pair "$1" "$SW" "$HOST" "$2" "$3" "$4") || { echo "strongSwan kernel: $v"; return 1; }
  k_in=$(sed -n 1p <<< "$v"); k_out=$(sed -n 2p <<< "$v")       # guest's inbound (hostsec -> sw), outbound
  lab_wait_until 10 keylog_has "$2" "$3" ||
    { echo "hostsec key log $KEYS/esp_sa has no line for SPI $( keylog_has "$2" && echo "$3" || echo "$2")"; return 1; }
  recs=$(lab_uat_records < "$KEYS/esp_sa")
  h_out=$(lab_record_for_spi "$2" <<< "$recs"); h_in=$(lab_record_for_spi "$3" <<< "$recs")
  d=$(lab_record_cmp kernel "$k_in" hostsec-esp_sa "$h_out") || { echo "KEYMAT hostsec->strongSwan SA $2: $d"; return 1; }
  d=$(lab_record_cmp kernel "$k_out" hostsec-esp_sa "$h_in") || { echo "KEYMAT strongSwan->hostsec SA $3: $d"; return 1; }
  [ -n "$6" ] || { echo "no IKE SA initiator cookie from strongSwan"; return 1; }
  ka=$(lab_ikev1_table_lookup "$6" < "$KEYS/ikev1_decryption_table" 2>/dev/null)
  [ -n "$ka" ] || { echo "hostsec key log ikev1_decryption_table has no line for CKY-I $6"; return 1; }
  read -r bits _ <<< "$(lab_ike_parse "$5")"
  [ ${#ka} -eq $(( bits / 4 )) ] && [[ $ka =~ ^[0-9a-f]+$ ]] ||
    { echo "ikev1_decryption_table: Ka for $6 is ${#ka} hex digits, expected $(( bits / 4 )) (AES-$bits)"; return 1; }
  echo "keys equal both ways ($(awk '{print $4 "/" $6}' <<< "$k_in"))"
}

# ---------------------------------------------------------------- results
PASS=0 FAIL=0 NEG_MS=() CASE_MS=() CKYS=()
declare -A PH_PASS=() PH_FAIL=()
result() { # phase case PASS|FAIL text
  if [ "$3" = PASS ]; then PASS=$((PASS + 1)); PH_PASS[$1]=$(( ${PH_PASS[$1]:-0} + 1 ))
  else FAIL=$((FAIL + 1)); PH_FAIL[$1]=$(( ${PH_FAIL[$1]:-0} + 1 )); fi
  say "$(printf '%s %-9s %-27s %s' "$3" "$1" "$2" "$4")"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$R/results.tsv"
}
# save_case PHASE CASE CHARON_MARK HS_MARK REASON: logs of both sides and snapshots of a failed case
save_case() {
  local d=$R/$1-$2
  mkdir -p "$d"
  echo "$5" > "$d/reason.txt"
  lab_charon_log_since "$GUEST" "$3" > "$d/charon.log"
  hs_log_since "$4" > "$d/hostsecd.log"
  cp "$LAB_RUN/$GUEST/cases/$2/"* "$d/" 2>/dev/null
  cp "$LAB_RUN/$GUEST/swanctl.conf" "$d/swanctl.conf" 2>/dev/null
  hs_sas > "$d/hostsec-sas.json" 2>&1
  cp "$KEYS/esp_sa" "$d/esp_sa" 2>/dev/null; cp "$KEYS/ikev1_decryption_table" "$d/ikev1_decryption_table" 2>/dev/null
  cp "$TMP/hostsecd-"*.toml "$d/" 2>/dev/null
}
# verify_case PHASE CASE IKE ESP: checks (a) (b) (c) (d) on the snapshot in cases/CASE; prints details or reason
verify_case() {
  local dir=$LAB_RUN/$GUEST/cases/$2 v ss_in ss_out cky j b k
  v=$(lab_check_ss_sa "$dir/list-sas.txt" "$2" "$3" "$4") || { echo "(a) $v"; return 1; }
  read -r ss_in ss_out cky <<< "$v"
  # hostsec installs its SAs when it has sent/received the last Quick Mode message: allow it a moment
  lab_wait_until "$SA_APPEAR_TIMEOUT" hs_qm_present "$ss_out" "$ss_in" || true
  j=$(hs_sas) || { echo "(b) $j"; return 1; }
  b=$(check_hostsec "$j" "$ss_out" "$ss_in" "$3" "$4") || { echo "(b) $b"; return 1; }
  k=$(check_keys "$dir/xfrm.txt" "$ss_in" "$ss_out" "$4" "$3" "$cky") || { echo "(c) $k"; return 1; }
  echo "$ss_in $ss_out $cky $(lab_esp_swanctl_algs "$4") | $(lab_ike_swanctl_algs "$3") | $k"
}
# finish_case PHASE CASE SS_SPI_OUT: terminate on the strongSwan side, wait until hostsec dropped the QM SA
finish_case() {
  lab_ss_terminate "$GUEST" "$2" > "$LAB_RUN/$GUEST/cases/$2/terminate.log" 2>&1
  [ -n "$3" ] || return 0
  if ! lab_wait_until "$DELETE_TIMEOUT" hs_qm_gone "$3"; then
    echo "hostsec still lists Quick Mode SA spi_in=$3 ${DELETE_TIMEOUT}s after strongSwan's DELETE"; return 1
  fi
}

# ---------------------------------------------------------------- lab up
say "== hostsec <-> strongSwan IKEv1 interop $(date -u +%FT%TZ)"
info "hostsec binaries: $BIN_DIR ($(stat -c %y "$HOSTSECD" | cut -d. -f1)); host $(uname -r); $(qemu-system-x86_64 --version | head -n 1)"
NET_UP=yes
lab_net_up || { echo "ERROR: could not set up the lab network" >&2; exit 2; }
mapfile -t ALL_CASES < <(lab_case_matrix "$CASE_SET")
CASES=()
for c in "${ALL_CASES[@]}"; do
  [ -z "$ONLY" ] || [[ ${c%% *} =~ $ONLY ]] && CASES+=("$c")
done
[ ${#CASES[@]} -gt 0 ] || [ "$PHASES" = refusal ] || { echo "ERROR: no case matches --only '$ONLY'" >&2; exit 2; }
# strongSwan initiator connections for the responder phase (+ the refused one of refusal (i))
{
  echo "connections {"
  for c in "${CASES[@]}"; do read -r n ike esp <<< "$c"; lab_swanctl_conn "$n" "$SW" "$HOST" "$ike" "$esp"; done
  lab_swanctl_conn weak "$SW" "$HOST" aes128-sha1-modp2048 aes128-sha1
  echo "}"
  lab_swanctl_secrets "$PSK"
} > "$TMP/swanctl-initiator.conf"
mkdir -p "$TMP/boot"; cp "$TMP/swanctl-initiator.conf" "$TMP/boot/swanctl.conf"
t0=$(lab_now_ms)
GUEST_UP=yes
boot=$(lab_boot_guest -n "$GUEST" -a "$SW/24" -c "$TMP/boot/swanctl.conf" 2>&1) || { echo "ERROR: guest boot failed: $boot" >&2; exit 2; }
info "$boot"
lab_ss_load "$GUEST" "$TMP/swanctl-initiator.conf" || { echo "ERROR: strongSwan did not load its connections" >&2; exit 2; }
BOOT_MS=$(( $(lab_now_ms) - t0 ))

ms_of() { sed -n 's/.*ms=\([0-9]*\).*/\1/p' <<< "$1"; }
pfs_of() { [ "$(lab_esp_parse "$1" | awk '{print $3}')" = - ] && echo off || echo on; }

# ---------------------------------------------------------------- phase: hostsec as responder
phase_responder() {
  local pass c n ike esp cm hm out rc ms v spis cky reason c0
  say "== hostsec as responder: strongSwan initiates (${#CASES[@]} cases)"
  for pass in on off; do
    for c in "${CASES[@]}"; do
      read -r n ike esp <<< "$c"
      [ "$(pfs_of "$esp")" = "$pass" ] || continue
      c0=$(lab_now_ms)
      hs_ensure standard "$pass" || { result responder "$n" FAIL "$HS_ERR"; continue; }
      cm=$(lab_charon_log_mark "$GUEST"); hm=$(hs_log_mark)
      out=$(lab_ss_initiate "$GUEST" "$n" 30); rc=$?
      ms=$(ms_of "$out")
      if [ $rc -ne 0 ]; then
        reason="swanctl --initiate failed ($out): $(grep -E 'NO_PROP|failed|error|timeout|retransmit' "$LAB_RUN/$GUEST/cases/$n/initiate.log" | tail -n 2 | tr '\n' ' ')"
        spis=''
      elif v=$(verify_case responder "$n" "$ike" "$esp"); then
        read -r _ spis cky _ <<< "$v"; reason=''
      else
        reason=$v; spis=$(lab_swanctl_sa "$n" < "$LAB_RUN/$GUEST/cases/$n/list-sas.txt" | lab_kv spi_out)
      fi
      if v=$(finish_case responder "$n" "$spis"); then :; else reason=${reason:-$v}; fi
      if [ -n "$reason" ]; then
        result responder "$n" FAIL "$reason"; save_case responder "$n" "$cm" "$hm" "$reason"
      else
        NEG_MS+=("${ms:-0}"); CASE_MS+=("$(( $(lab_now_ms) - c0 ))"); CKYS+=("responder/$n:$cky")
        result responder "$n" PASS "negotiated in $(lab_ms_fmt "${ms:-0}") | $(lab_esp_swanctl_algs "$esp") | $(lab_ike_swanctl_algs "$ike") | keys equal, DELETE handled"
      fi
    done
  done
}

# ---------------------------------------------------------------- phase: hostsec as initiator
ss_child_installed() { # case: snapshot the guest, true when the CHILD_SA is INSTALLED
  lab_ss_snapshot "$GUEST" "$1" >/dev/null
  [ "$(lab_swanctl_sa "$1" < "$LAB_RUN/$GUEST/cases/$1/list-sas.txt" | lab_kv child_state)" = INSTALLED ]
}
phase_initiator() {
  local pass c n ike esp cm hm rc ms v spis cky reason t0 c0 out
  say "== hostsec as initiator: hostsec initiate $RULE, strongSwan responds with exactly the case's proposals (${#CASES[@]} cases)"
  for pass in off on; do
    for c in "${CASES[@]}"; do
      read -r n ike esp <<< "$c"
      [ "$(pfs_of "$esp")" = "$pass" ] || continue
      c0=$(lab_now_ms)
      { echo "connections {"; lab_swanctl_conn "$n" "$SW" "$HOST" "$ike" "$esp"; echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/swanctl-$n.conf"
      lab_ss_load "$GUEST" "$TMP/swanctl-$n.conf" 2> "$TMP/load.err" || { result initiator "$n" FAIL "strongSwan config: $(cat "$TMP/load.err")"; continue; }
      hs_ensure standard "$pass" || { result initiator "$n" FAIL "$HS_ERR"; continue; }
      cm=$(lab_charon_log_mark "$GUEST"); hm=$(hs_log_mark)
      mkdir -p "$LAB_RUN/$GUEST/cases/$n"
      t0=$(lab_now_ms)
      out=$(hs_cli initiate "$RULE" 2>&1); rc=$?
      ms=$(( $(lab_now_ms) - t0 ))
      echo "$out" > "$LAB_RUN/$GUEST/cases/$n/hostsec-initiate.log"
      spis='' reason=''
      if [ $rc -ne 0 ]; then
        reason="hostsec initiate $RULE exited $rc after $(lab_ms_fmt $ms): $(tail -n 2 <<< "$out" | tr '\n' ' ')"
        lab_ss_snapshot "$GUEST" "$n" >/dev/null
      elif ! lab_wait_until "$SA_APPEAR_TIMEOUT" ss_child_installed "$n"; then
        reason="hostsec initiate exited 0 but strongSwan has no INSTALLED CHILD_SA $n after ${SA_APPEAR_TIMEOUT}s"
      elif v=$(verify_case initiator "$n" "$ike" "$esp"); then
        read -r _ spis cky _ <<< "$v"
      else
        reason=$v; spis=$(lab_swanctl_sa "$n" < "$LAB_RUN/$GUEST/cases/$n/list-sas.txt" | lab_kv spi_out)
      fi
      if v=$(finish_case initiator "$n" "$spis"); then :; else reason=${reason:-$v}; fi
      if [ -n "$reason" ]; then
        result initiator "$n" FAIL "$reason"; save_case initiator "$n" "$cm" "$hm" "$reason"
      else
        NEG_MS+=("$ms"); CASE_MS+=("$(( $(lab_now_ms) - c0 ))"); CKYS+=("initiator/$n:$cky")
        result initiator "$n" PASS "negotiated in $(lab_ms_fmt "$ms") | $(lab_esp_swanctl_algs "$esp") | $(lab_ike_swanctl_algs "$ike") | keys equal, DELETE handled"
      fi
    done
  done
}

# ---------------------------------------------------------------- phase: below the level is refused
phase_refusal() {
  local cm hm out rc reason line t0 ms
  say "== below the level is refused on both sides"
  # (i) strongSwan offers aes128-sha1-modp2048 / aes128-sha1 to hostsec at "high"
  reason=''
  lab_ss_load "$GUEST" "$TMP/swanctl-initiator.conf" 2> "$TMP/load.err" || reason="strongSwan config: $(cat "$TMP/load.err")"
  if [ -z "$reason" ]; then
    if hs_ensure high off; then
      cm=$(lab_charon_log_mark "$GUEST"); hm=$(hs_log_mark)
      out=$(lab_ss_initiate "$GUEST" weak 30); rc=$?
      sleep 1
      lab_charon_log_since "$GUEST" "$cm" > "$TMP/weak-charon.log"; hs_log_since "$hm" > "$TMP/weak-hostsecd.log"
      line=$(grep -i -m1 'below level' "$TMP/weak-hostsecd.log")
      if [ $rc -eq 0 ]; then reason="strongSwan established aes128-sha1-modp2048/aes128-sha1 with hostsec at level high"
      elif ! grep -q 'NO_PROPOSAL_CHOSEN' "$TMP/weak-charon.log"; then reason="initiation failed ($out) but strongSwan's log has no NO_PROPOSAL_CHOSEN: $(grep -E 'IKE\]|ENC\]' "$TMP/weak-charon.log" | tail -n 2 | cut -c1-200 | tr '\n' ' ')"
      elif [ -z "$line" ]; then reason="refused, but hostsecd's log has no 'below level' line naming the offer"
      fi
    else reason=$HS_ERR; fi
  fi
  lab_ss_terminate "$GUEST" weak >/dev/null 2>&1
  if [ -n "$reason" ]; then result refusal strongswan-weak-offer FAIL "$reason"; save_case refusal strongswan-weak-offer "${cm:-0}" "${hm:-0}" "$reason"
  else result refusal strongswan-weak-offer PASS "NO_PROPOSAL_CHOSEN at strongSwan; hostsecd: $(sed 's/^[[:space:]]*//' <<< "$line" | cut -c1-160)"; fi

  # (ii) hostsec at "highest" initiates to strongSwan accepting aes256-sha256-modp2048 only
  reason='' cm=0 hm=0
  { echo "connections {"; lab_swanctl_conn strict "$SW" "$HOST" aes256-sha256-modp2048 aes256-sha256-modp2048; echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/swanctl-strict.conf"
  lab_ss_load "$GUEST" "$TMP/swanctl-strict.conf" 2> "$TMP/load.err" || reason="strongSwan config: $(cat "$TMP/load.err")"
  if [ -z "$reason" ]; then
    if hs_ensure highest off; then
      cm=$(lab_charon_log_mark "$GUEST"); hm=$(hs_log_mark)
      t0=$(lab_now_ms)
      out=$(timeout 120 "$HOSTSEC" --socket "$SOCK" initiate "$RULE" 2>&1); rc=$?
      ms=$(( $(lab_now_ms) - t0 ))
      sleep 1
      lab_charon_log_since "$GUEST" "$cm" > "$TMP/strict-charon.log"
      line=$(grep -E -m1 'no proposal found|no matching proposal found|NO_PROPOSAL_CHOSEN' "$TMP/strict-charon.log")
      if [ $rc -eq 124 ]; then reason="hostsec initiate did not return within 120 s"
      elif [ $rc -ne 1 ]; then reason="hostsec initiate exited $rc (expected 1) after $(lab_ms_fmt $ms): $(tail -n 1 <<< "$out")"
      elif [ -z "$line" ]; then reason="hostsec initiate exited 1 but strongSwan's log shows no refusal: $(grep -E 'IKE\]|CFG\]' "$TMP/strict-charon.log" | tail -n 3 | cut -c1-200 | tr '\n' ' ')"
      fi
    else reason=$HS_ERR; fi
  fi
  lab_gexec "$GUEST" "swanctl --terminate --ike strict --timeout 5 >/dev/null 2>&1" 30 >/dev/null
  if [ -n "$reason" ]; then result refusal hostsec-highest-offer FAIL "$reason"; save_case refusal hostsec-highest-offer "$cm" "$hm" "$reason"
  else result refusal hostsec-highest-offer PASS "hostsec initiate exit 1 after $(lab_ms_fmt $ms); strongSwan: $(sed -E 's/^.*\] (<[^>]*> )?//' <<< "$line" | cut -c1-120)"; fi
}

# ---------------------------------------------------------------- IKEv1 decryption with hostsec's key log
# (e) tshark decrypts Main Mode messages 5 and 6 of every passing case's IKE SA in the capture of br0 with
# hostsec's ikev1_decryption_table: proves each logged Ka, which (d) only checks for presence and length.
phase_decrypt() {
  local x n dec bad=''
  [ ${#CKYS[@]} -gt 0 ] || return 0
  say "== IKEv1 decryption of the capture with hostsec's ikev1_decryption_table (tshark)"
  lab_capture_stop
  dec=$(lab_ikev1_decrypted "$R/ike.pcap" "$KEYS/ikev1_decryption_table" 2> "$TMP/tshark.err")
  for x in "${CKYS[@]}"; do
    n=$(awk -v c="${x##*:}" '$1 == c {print $2}' <<< "$dec")
    [ "${n:-0}" = 2 ] || bad="$bad ${x%:*}(CKY-I ${x##*:}: ${n:-0} of 2)"
  done
  if [ -z "$bad" ]; then result decrypt ikev1-decryption-table PASS "tshark decrypted MM5 and MM6 of all ${#CKYS[@]} IKE SAs"
  else result decrypt ikev1-decryption-table FAIL "MM5/MM6 not decrypted with the logged Ka for:$bad $(head -c 200 "$TMP/tshark.err")"; fi
}

lab_capture_start "$R/ike.pcap" || { echo "ERROR: packet capture on br0 failed" >&2; exit 2; }
IFS=, read -r -a PH <<< "$PHASES"
for p in "${PH[@]}"; do
  case $p in
    responder) phase_responder;;
    initiator) phase_initiator;;
    refusal) phase_refusal;;
    *) echo "unknown phase $p (responder, initiator, refusal)" >&2; exit 2;;
  esac
done
phase_decrypt
[ ${#CKYS[@]} -gt 0 ] && PH+=(decrypt)
hs_alive || [ -z "$HS_PID" ] || say "WARNING: hostsecd is no longer running"

# ---------------------------------------------------------------- summary
stats() { [ $# -gt 0 ] || { echo "n=0"; return; }; printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1; s+=$1} END {printf "n=%d min=%.2fs median=%.2fs max=%.2fs", NR, v[1]/1000, v[int((NR+1)/2)]/1000, v[NR]/1000}'; }
say "== summary"
for p in "${PH[@]}"; do say "$(printf '   %-9s %3d passed, %3d failed' "$p" "${PH_PASS[$p]:-0}" "${PH_FAIL[$p]:-0}")"; done
say "   guest boot + config $(lab_ms_fmt "$BOOT_MS"); negotiation (MM+QM) $(stats "${NEG_MS[@]}"); whole passing case $(stats "${CASE_MS[@]}")"
say "== $PASS passed, $FAIL failed, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START ))) -- $( [ "$FAIL" -eq 0 ] && echo PASS || echo FAIL) (results: $R)"
[ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]
