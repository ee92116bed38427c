#!/bin/bash
# Interop test: AuthIP fallback (issue 10). A hostsec rule with keying = "authip" against peers that have no AuthIP,
# strongSwan 5.9.8 and libreswan 4.10 (QEMU guests with kernel ESP): as initiator with a certificate, hostsec sends
# an AuthIP Main Mode #1 (ISAKMP exchange type 243) and an IKEv1 Main Mode MM1 carrying the MS-MamieExists vendor ID
# (214CA4FAFFA7F32D6748E5303395AE83) side by side ([MS-AIPS] §3.2.4), and goes on with the IKEv1 exchange the peer
# answers; as responder, a keying = "authip" rule answers plain IKEv1 (no MS-MamieExists) as any rule does.
#
#   netns lab-host: br0 198.51.100.1/24, hostsecd (rule "af", action require, keying = "authip")
#   guest af-ss   : 198.51.100.2, strongSwan (swanctl; certificates from one lab CA, tests/lab/pki.sh)
#   guest af-ls   : 198.51.100.2, libreswan (pluto, ikev1-policy=accept), booted after af-ss is stopped
# Each guest is booted once and runs all its cases. Main Mode AES-CBC-128/SHA-256/group 19, ESP AES-GCM-16-128,
# transport mode, no PFS, no NAT (nat_traversal = "off").
#
# Cases:
#   ss-hs-cert   hostsec initiates (`hostsec initiate af`), authentication = "certificate" with ECDSA P-256 (what
#                strongSwan's IKEv1 signs with in the matrix); strongSwan: IKEv1 certificate authentication
#   ss-peer-cert strongSwan initiates plain IKEv1 with its ECDSA P-256 certificate to the same keying = "authip" rule
#   ss-hs-psk    keying = "authip" + authentication = "psk", hostsec initiates: plain IKEv1 with the PSK (the
#                config check's warning "AuthIP has no pre-shared key method" is expected)
#   ls-hs-rsa    as ss-hs-cert against libreswan with RSA-2048 (libreswan's IKEv1 does RSA, not ECDSA)
#   ls-peer-rsa  as ss-peer-cert: libreswan initiates plain IKEv1 (ipsec auto --up) with RSA-2048
#
# Checks (hostsec initiates with a certificate: ss-hs-cert, ls-hs-rsa):
#   setup     `hostsec initiate af` succeeded
#   authip-1  the br0 capture: hostsec sent AuthIP #1 (exchange 243, CKY-R zero), one initiator cookie (several
#             packets = retransmissions), and none after the peer's MM2 (the AuthIP attempt is abandoned)
#   mm1-mamie hostsec's IKEv1 MM1 (exchange 2, CKY-R zero) carries the MS-MamieExists vendor ID
#   answer    the peer sent no AuthIP message (exchange 243-246) and answered the IKEv1 MM1 (an MM2 with CKY-I of the
#             MM1). What the peer did with AuthIP #1 (any packet of it with the AuthIP cookie, and what its log says
#             about the message) is printed and kept in authip-reaction.txt; ignoring it and answering with an
#             INFORMATIONAL error notify are both fine
#   hs-log    hostsec logged that it sent both side by side, and "the peer answered IKEv1 and not AuthIP: IKEv1 is
#             used ..."
#   hs-sa     hostsec sas --json: an established Main Mode SA of rule af with keying "ike", the case's authentication
#             (ecdsa-p256, rsa) and algorithms, no AuthIP SA; the Quick Mode pair that the guest kernel holds
#   peer-sa   strongSwan: swanctl --list-sas ESTABLISHED/INSTALLED/TRANSPORT with the case's algorithms; libreswan:
#             pluto's "ISAKMP SA established" with auth=RSA_SIG and the algorithms; the guest kernel's ESP pair with
#             hostsec in transport mode
#   keys      the ESP keys of both directions equal in the guest kernel and in hostsec's key log
#   ping      3 pings each way, and on the wire between the two only IKE and ESP (no cleartext ICMP)
# ss-peer-cert, ls-peer-rsa: setup (swanctl --initiate, ipsec auto --up), wire (no AuthIP message at all, the peer's
#   MM1 has no MS-MamieExists), discard (hostsec stats --json .ike.ikev1_discarded_for_authip is 0 and its log
#   discarded nothing for AuthIP), hs-sa (responder, keying "ike", ecdsa-p256 / rsa), peer-sa, keys, ping.
# ss-hs-psk: config (hostsec warned that AuthIP has no PSK method), setup, wire (no AuthIP message at all, hostsec's
#   MM1 has no MS-MamieExists: the plain IKEv1 of a PSK rule), hs-sa (keying "ike", psk), peer-sa, keys, ping.
#
# What the peers did with AuthIP #1 (recorded by the answer check in each run: summary.txt, <case>/authip-reaction.txt;
# measured 2026-11-30, docs/interop.md "AuthIP fallback"): both ignore it and send nothing back.
#   strongSwan 5.9.8: "[NET] received invalid IKE header from 198.51.100.1 - ignored"; it logs MS-MamieExists in the
#                     MM1 as "received unknown vendor ID: 21:4c:a4:fa:..." and answers the MM1
#   libreswan 4.10:   "packet from 198.51.100.1:500: dropping packet with mangled IKE header: exchange type of ISAKMP
#                     Message has an unknown value: 243 (0xf3)" -- no PAYLOAD-MALFORMED notify (Openswan-era pluto
#                     was seen to send one); MS-MamieExists is ignored without a log line
# Ignoring it and answering with an INFORMATIONAL error notify are both acceptable: the checks do not depend on it.
# Timing (2 shared cores, TCG): 75-91 s in all, strongSwan 37-45 s and libreswan 35-45 s with each guest's boot.
#
# Usage: tests/interop/authip-fallback.sh [--only REGEX] [--keep]
#   --only REGEX  the cases whose name matches (e.g. '^ss-': the strongSwan cases only, without booting libreswan)
# Environment: HOSTSEC_BIN_DIR (default <repo>/target/release; not built here), HOSTSEC_LOG_LEVEL (debug), LAB_ACCEL.
# Needs root and a Debian 12 host (guest images are built by tests/lab/build-guest.sh on first use).
# Exit 0 only when every check passed; 2 for a usage or setup error.
# Results: tests/lab/results/authip-fallback/ (summary.txt, results.tsv, timings, per case: capture ike.pcap, its
# ISAKMP table, both sides' logs, configurations, hostsec's JSON, the guest's SAs).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAB_DIR=$REPO/tests/lab
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
# shellcheck source=tests/lab/hostsecd.sh
. "$LAB_DIR/hostsecd.sh"
# shellcheck source=tests/lab/pki.sh
. "$LAB_DIR/pki.sh"

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
PSK=$LAB_PSK_DEFAULT
R=$LAB_DIR/results/authip-fallback
HOST=$LAB_HOST_ADDR4 PEER=198.51.100.2 RULE=af
MAMIE=214ca4faffa7f32d6748e5303395ae83
CASES=(ss-hs-cert ss-peer-cert ss-hs-psk ls-hs-rsa ls-peer-rsa)

selected() { [ -z "$ONLY" ] || [[ $1 =~ $ONLY ]]; }
n=0; for c in "${CASES[@]}"; do selected "$c" && n=$((n + 1)); done
[ "$n" -gt 0 ] || { echo "ERROR: --only '$ONLY' selects no case (cases: ${CASES[*]})" >&2; exit 2; }
for b in "$HOSTSECD" "$HOSTSEC"; do
  [ -x "$b" ] || { echo "ERROR: $b not found or not executable. Build first (cargo build --release) or set HOSTSEC_BIN_DIR." >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ERROR: needs root (network namespaces, TAP devices, QEMU)" >&2; exit 2; }
command -v openssl >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq openssl >/dev/null; }
lab_install_host_pkgs
lab_lock
for v in ss:strongswan ls:libreswan; do
  n=0; for c in "${CASES[@]}"; do [[ $c == "${v%%:*}"-* ]] && selected "$c" && n=1; done
  [ "$n" = 1 ] || continue
  "$LAB_DIR/build-guest.sh" "${v#*:}" || { echo "ERROR: guest image build (${v#*:}) failed" >&2; exit 2; }
done
lab_netns_free "$LAB_NETNS" || { echo "ERROR: the lab network namespace is in use (a --keep run? stop it first)" >&2; exit 2; }
T_START=$(lab_now_ms)
rm -rf "$R"; mkdir -p "$R"
TMP=$(mktemp -d /tmp/hostsec-authip-fallback.XXXXXX); chmod 700 "$TMP"
SOCK=$TMP/control.sock KEYS=$TMP/keys HSLOG=$TMP/hostsecd.log P=$TMP/pki
mkdir -m 700 "$KEYS" "$P"; : > "$HSLOG"

say() { echo "$*" | tee -a "$R/summary.txt"; }
info() { echo "   $*" | tee -a "$R/summary.txt" >&2; }

NET_UP=no GUEST='' KIND=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cp "$HSLOG" "$R/hostsecd.log" 2>/dev/null
  lab_capture_stop
  if [ "$KEEP" = yes ]; then
    echo "--keep: left running: hostsecd pid ${HS_PID:-none} (socket $SOCK), guest ${GUEST:-none}, namespace $LAB_NETNS."
    echo "  stop with: kill ${HS_PID:-<pid>}; $LAB_DIR/stop-peer.sh ${GUEST:-<guest>}; $LAB_DIR/net.sh down; rm -rf $TMP"
    exit $rc
  fi
  hs_terminate
  guest_stop
  [ "$NET_UP" = yes ] && lab_net_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- hostsecd
# hs_start AUTH: a fresh hostsecd with rule "af" (keying = "authip") towards the guest; AUTH psk, p256 or rsa
hs_start() {
  local cfg=$TMP/hostsecd-$CASE.toml
  hs_terminate
  cat > "$cfg" <<EOF
[global]
listen = ["$HOST"]
minimum_strength = "standard"
default_action = "bypass"
control_socket = "$SOCK"
key_log = "$KEYS"
nat_traversal = "off"

[[rule]]
name = "$RULE"
remote = ["$PEER"]
action = "require"
keying = "authip"
$(hs_auth_toml "$1" "$P" "$PSK")
pfs = false
auto = "none"
EOF
  cp "$cfg" "$R/$CASE/hostsecd.toml"
  hs_launch "$LAB_NETNS" "$cfg"
}
hs_has_qm() { [ "$(hs_qm_count)" -ge 1 ] 2>/dev/null; }

# ---------------------------------------------------------------- the guest
guest_stop() { [ -n "$GUEST" ] && lab_stop_guest "$GUEST" >/dev/null 2>&1; GUEST='' KIND=''; }
# guest_boot KIND: the peer's guest at PEER with the lab PKI's credentials
guest_boot() {
  local out l
  guest_stop
  out=$(lab_peer_boot "$1" "af-$1" "$P" "$PSK" -a "$PEER/24") || { echo "ERROR: $1 guest: see above" >&2; return 1; }
  GUEST=af-$1 KIND=$1
  while IFS= read -r l; do info "$l"; done <<< "$out"
}
# peer_load AUTH: the peer's connection "hs" to hostsec (Main Mode aes128/sha256/group 19, ESP AES-GCM-16-128)
peer_load() {
  case $KIND in
    ss) lab_ss_conf "$1" "$PEER" "$HOST" aes128-sha256-ecp256 aes128gcm16 "$HOST" "$PSK" > "$TMP/swanctl.conf" &&
          lab_ss_load "$GUEST" "$TMP/swanctl.conf" 2>&1;;
    ls) lab_ls_conf "$1" "$PEER" "$HOST" "aes128-sha2_256;dh19" aes_gcm128-null > "$TMP/ipsec.conf" &&
          lab_ls_load "$GUEST" "$TMP/ipsec.conf";;
  esac
}
peer_flush() {
  case $KIND in
    ss) lab_ss_flush "$GUEST";;
    ls) lab_gexec "$GUEST" 'ipsec auto --down hs >/dev/null 2>&1; ip xfrm state flush' 40 >/dev/null;;
  esac
}
# setup_failed PEER_MARK HS_MARK: the initiator's command failed: keep what there is, clean up for the next case
setup_failed() { lab_capture_stop; isakmp_table "$R/$CASE/ike.pcap" > "$R/$CASE/isakmp.tsv"; hs_terminate; peer_flush; save_logs "$1" "$2"; }
peer_name() { case $KIND in ss) echo strongSwan;; ls) echo libreswan;; esac; }

# ---------------------------------------------------------------- results
PASS=0 FAIL=0 CASE=''
result() { # check PASS|FAIL text
  case $2 in PASS) PASS=$((PASS + 1));; *) FAIL=$((FAIL + 1));; esac
  say "$(printf '%-4s %-13s %-10s %s' "$2" "$CASE" "$1" "$3")"
  printf '%s\t%s\t%s\t%s\n' "$CASE" "$1" "$2" "$3" >> "$R/results.tsv"
}
ok() { if [ "$2" = 0 ]; then result "$1" PASS "$3"; else result "$1" FAIL "$3"; fi; }
save_logs() { # PEER_MARK HS_MARK
  lab_peer_log_since "$KIND" "$GUEST" "$1" > "$R/$CASE/$(basename "$(lab_peer_log "$KIND" "$GUEST")")"
  hs_log_since "$2" > "$R/$CASE/hostsecd.log"
  case $KIND in ss) cp "$LAB_RUN/$GUEST/swanctl.conf" "$R/$CASE/" 2>/dev/null;; ls) cp "$LAB_RUN/$GUEST/ipsec.conf" "$R/$CASE/" 2>/dev/null;; esac
}

# isakmp_table PCAP: one line per ISAKMP packet (tab-separated): TIME SRC DST CKY_I CKY_R EXCHANGE VIDS NOTIFY
# (VIDS: the vendor IDs' hex, comma-separated; NOTIFY: notify message types; "-" when none)
isakmp_table() {
  tshark -r "$1" -n -Y isakmp -T fields -E separator=/t -E occurrence=a -E aggregator=, \
      -e frame.time_epoch -e ip.src -e ip.dst -e isakmp.ispi -e isakmp.rspi -e isakmp.exchangetype \
      -e isakmp.vid_bytes -e isakmp.notify.msgtype 2>/dev/null |
    awk -F'\t' -v OFS='\t' '{ for (i = 4; i <= 8; i++) { $i = tolower($i); gsub(/:/, "", $i); if ($i == "") $i = "-" }
                             sub(/,.*/, "", $6); print }'
}
zero_cky() { [ "$1" = 0000000000000000 ]; }

# peer_reaction AUTHIP_CKY TABLE PEER_LOG_TEXT: what the peer did with AuthIP #1: its packets with that initiator
# cookie, and the lines of its log about the message (charon: the parser; pluto: its complaint)
peer_reaction() {
  local pk lg vid
  pk=$(awk -F'\t' -v c="$1" -v p="$PEER" '$2 == p && $4 == c { printf "%sexchange %s%s", (n++ ? "; " : ""), $6, ($8 == "-" ? "" : " notify " $8) }' "$2")
  case $KIND in
    ss) lg=$(grep -E "invalid IKE header from $HOST|exchange type|unsupported exchange" <<< "$3" | sed -E 's/^[0-9:]+ //' | joined)
        vid=$(grep -iE 'vendor ID.*21:4c:a4:fa' <<< "$3" | sed -E 's/^[0-9:]+ //' | joined);;
    ls) lg=$(lab_pluto_text <<< "$3" | grep -E "packet from $HOST:500: .*(exchange type|mangled|243)" | joined)
        vid=$(lab_pluto_text <<< "$3" | grep -iE 'vendor.*(214ca4fa|21:4c:a4:fa|mamie)' | joined);;
  esac
  echo "packets of the AuthIP cookie from the peer: ${pk:-none (no answer)}"
  echo "its log about AuthIP #1: ${lg:-nothing}"
  echo "its log about MS-MamieExists in the MM1: ${vid:-nothing}"
}
joined() { head -n 3 | awk '{ printf "%s%s", (NR > 1 ? " | " : ""), $0 }'; }

# check_sas AUTH ROLE PEER_LOG_MARK: hs-sa, peer-sa, keys (sets IN OUT_SPI: the guest's SPIs)
check_sas() {
  local auth=$1 role=$2 d=$R/$CASE j v qm n mm rc want kv
  lab_wait_until 10 hs_has_qm
  lab_wait_until 10 bash -c "'$LAB_DIR/gexec.sh' '$GUEST' 'ip xfrm state' 20 | grep -q 'proto esp'"
  lab_gexec "$GUEST" 'ip xfrm state' 20 > "$d/xfrm.txt"
  read -r IN OUT_SPI <<< "$(lab_xfrm_pair "$d/xfrm.txt" "$HOST" "$PEER")"
  # hs-sa
  j=$(hs_cli --json sas 2>&1); echo "$j" > "$d/hostsec-sas.json"
  want=psk; case $auth in rsa) want=rsa;; p256) want=ecdsa-p256;; esac
  n=$(jq --arg r "$RULE" --arg a "$want" --arg role "$role" \
      '[.main_mode[]? | select(.rule == $r and .keying == "ike" and .state == "established" and .role == $role and .auth == $a
                               and .encryption == "aes-cbc-128" and .hash == "sha256" and .dh_group == 19)] | length' <<< "$j" 2>/dev/null)
  v=$(jq '[.main_mode[]? | select(.keying != "ike")] | length' <<< "$j" 2>/dev/null)
  qm=$(jq -c --arg i "${OUT_SPI:-x}" --arg o "${IN:-x}" '[.quick_mode[]? | select(.spi_in == $i and .spi_out == $o
          and .encryption == "aes-gcm-16-128" and .mode == "transport")] | first // empty' <<< "$j" 2>/dev/null)
  [ "${n:-0}" = 1 ] && [ "${v:-1}" = 0 ] && [ -n "$qm" ]
  ok hs-sa $? "Main Mode keying/state/role/auth: $(jq -r '[.main_mode[]? | "\(.keying)/\(.state)/\(.role)/\(.auth)/\(.encryption)-\(.hash)-\(.dh_group)"] | join(", ")' <<< "$j" 2>/dev/null); Quick Mode $(jq -r '[.quick_mode[]? | "in \(.spi_in) out \(.spi_out) \(.encryption) \(.mode)"] | join(", ")' <<< "$j" 2>/dev/null)$( [ -n "$qm" ] || echo " (want in ${OUT_SPI:-?} out ${IN:-?} aes-gcm-16-128 transport)")"
  # peer-sa
  case $KIND in
    ss) lab_gexec "$GUEST" 'swanctl --list-sas' 20 > "$d/list-sas.txt"
        kv=$(lab_check_ss_sa "$d/list-sas.txt" hs aes128-sha256-ecp256 aes128gcm16); rc=$?
        [ $rc = 0 ] && kv="IKE $(lab_ike_swanctl_algs aes128-sha256-ecp256), ESP $(lab_esp_swanctl_algs aes128gcm16)";;
    ls) mm=$(lab_peer_log_since ls "$GUEST" "$3" | grep -E 'ISAKMP SA established|IKE SA established' | tail -n 1 | lab_pluto_text)
        grep -q "auth=$( [ "$auth" = rsa ] && echo RSA_SIG || echo PRESHARED_KEY) cipher=AES_CBC_128 integ=HMAC_SHA2_256 group=DH19" <<< "$mm"; rc=$?
        kv=${mm:-libreswan logged no established ISAKMP SA};;
  esac
  if [ -z "${IN:-}" ]; then result peer-sa FAIL "the guest kernel holds no ESP pair with $HOST; ${kv:0:200}"
  else
    v=$(lab_check_xfrm_pair "$d/xfrm.txt" "$PEER" "$HOST" "$IN" "$OUT_SPI" aes128gcm16) || rc=1
    ok peer-sa "$rc" "$(cut -c1-170 <<< "$kv"); kernel: in $IN out $OUT_SPI $( [ "$(wc -l <<< "$v")" = 2 ] && echo "aes-gcm-16-128, transport" || echo "$v")"
  fi
  # keys
  v=$(lab_keys_cmp "$d/xfrm.txt" "$KEYS/esp_sa" "${IN:-x}" "${OUT_SPI:-x}")
  ok keys $? "${v:-keys and algorithms equal both ways (SPIs $IN, $OUT_SPI)}"
}
# check_ping: 3 pings each way; then (after the capture stopped) only IKE and ESP between the two
check_ping() {
  local a b esp clear
  a=$(ip netns exec "$LAB_NETNS" ping -n -c 3 -i 0.2 -W 2 "$PEER" 2>&1 9>&-); a=$(lab_ping_result "$a")
  b=$(lab_ep_ping "guest:$GUEST" "$HOST" 3)
  lab_capture_stop
  esp=$(tcpdump -r "$R/$CASE/ike.pcap" -nn 'ip proto 50' 2>/dev/null | wc -l)
  clear=$(tcpdump -r "$R/$CASE/ike.pcap" -nn 'not arp and not udp port 500 and not ip proto 50' 2>/dev/null | wc -l)
  [ "$a" = "3 3" ] && [ "$b" = "3 3" ] && [ "$esp" -ge 12 ] && [ "$clear" = 0 ]
  ok ping $? "hostsec->peer ${a:-none}, peer->hostsec ${b:-none} (tx rx); on the wire $esp ESP, $clear other (cleartext) packets"
}

# ---------------------------------------------------------------- cases
# hostsec initiates with a certificate (ss-hs-cert p256, ls-hs-rsa rsa)
case_hs_cert() {
  local auth=$1 d=$R/$CASE pm hm out rc t a_cky a_n a_late m_cky m_mamie mm2_t peer_authip peer_mm2 react hl l
  pm=$(lab_peer_log_mark "$KIND" "$GUEST"); hm=$(hs_log_mark)
  out=$(peer_load "$auth") || { result setup FAIL "$(peer_name) refused the connection: $out"; save_logs "$pm" "$hm"; return; }
  hs_start "$auth" || { result setup FAIL "$HS_ERR"; save_logs "$pm" "$hm"; return; }
  lab_capture_start "$d/ike.pcap" "host $HOST and host $PEER" || { result setup FAIL "tcpdump did not start"; return; }
  out=$(hs_cli initiate "$RULE" 2>&1); rc=$?
  ok setup "$rc" "hostsec initiate $RULE: $(tail -n 1 <<< "$out" | cut -c1-160)"
  [ "$rc" = 0 ] || { setup_failed "$pm" "$hm"; return; }
  check_sas "$auth" initiator "$pm"
  check_ping
  t=$d/isakmp.tsv; isakmp_table "$d/ike.pcap" > "$t"
  # authip-1: hostsec's exchange-243 packets, one cookie, none after the peer's MM2
  a_cky=$(awk -F'\t' -v h="$HOST" '$2 == h && $6 == 243 { print $4 }' "$t" | sort -u)
  a_n=$(awk -F'\t' -v h="$HOST" '$2 == h && $6 == 243' "$t" | wc -l)
  m_cky=$(awk -F'\t' -v h="$HOST" '$2 == h && $6 == 2 && $5 == "0000000000000000" { print $4 }' "$t" | sort -u)
  mm2_t=$(awk -F'\t' -v p="$PEER" -v c="$m_cky" '$2 == p && $6 == 2 && $4 == c { print $1; exit }' "$t")
  a_late=$(awk -F'\t' -v h="$HOST" -v t0="${mm2_t:-9e99}" '$2 == h && $6 == 243 && $1 > t0' "$t" | wc -l)
  [ "$a_n" -ge 1 ] && [ "$(wc -w <<< "$a_cky")" = 1 ] && [ "$a_late" = 0 ] &&
    [ -z "$(awk -F'\t' -v h="$HOST" '$2 == h && $6 == 243 && $5 != "0000000000000000"' "$t")" ]
  ok authip-1 $? "hostsec sent $a_n exchange-243 packet(s) with CKY-I ${a_cky:-none} (CKY-R zero), $a_late after the peer's MM2"
  # mm1-mamie
  m_mamie=$(awk -F'\t' -v h="$HOST" -v c="$m_cky" -v v="$MAMIE" '$2 == h && $6 == 2 && $4 == c && $5 == "0000000000000000" && index($7, v) { n++ } END { print n + 0 }' "$t")
  [ "$(wc -w <<< "$m_cky")" = 1 ] && [ "$m_mamie" -ge 1 ] && [ "$m_cky" != "$a_cky" ]
  ok mm1-mamie $? "hostsec's IKEv1 MM1 CKY-I ${m_cky:-none}: $m_mamie packet(s) with the MS-MamieExists VID $MAMIE"
  # answer: no AuthIP from the peer, an MM2 to the IKEv1 MM1; record what it did with AuthIP #1
  peer_authip=$(awk -F'\t' -v p="$PEER" '$2 == p && $6 >= 243 && $6 <= 246' "$t" | wc -l)
  peer_mm2=$(awk -F'\t' -v p="$PEER" -v c="$m_cky" '$2 == p && $6 == 2 && $4 == c && $5 != "0000000000000000"' "$t" | wc -l)
  react=$(peer_reaction "${a_cky:-none}" "$t" "$(lab_peer_log_since "$KIND" "$GUEST" "$pm")")
  echo "$react" > "$d/authip-reaction.txt"
  [ "$peer_authip" = 0 ] && [ "$peer_mm2" -ge 1 ]
  ok answer $? "$(peer_name) sent $peer_authip AuthIP message(s) and $peer_mm2 IKEv1 answer(s) to the MM1 (MM2, MM4, MM6)"
  while IFS= read -r l; do info "$(peer_name) and AuthIP #1: $l"; done <<< "$react"
  # hs-log
  out=$(hs_log_since "$hm")
  hl=$(grep -o 'the peer answered IKEv1 and not AuthIP: IKEv1 is used.*' <<< "$out" | head -n 1)
  grep -q 'sent AuthIP #1 and IKEv1 MM1 (with MS-MamieExists) side by side' <<< "$out" && [ -n "$hl" ]
  ok hs-log $? "${hl:-no 'the peer answered IKEv1 and not AuthIP' line}$(grep -q 'side by side' <<< "$out" || echo "; no 'sent AuthIP #1 and IKEv1 MM1 side by side' line")"
  hs_terminate; peer_flush
  save_logs "$pm" "$hm"
}

# the peer initiates plain IKEv1 with a certificate to the keying = "authip" rule (ss-peer-cert, ls-peer-rsa)
case_peer_cert() {
  local auth=$1 d=$R/$CASE pm hm out rc t s any mm1 mamie
  pm=$(lab_peer_log_mark "$KIND" "$GUEST"); hm=$(hs_log_mark)
  out=$(peer_load "$auth") || { result setup FAIL "$(peer_name) refused the connection: $out"; save_logs "$pm" "$hm"; return; }
  hs_start "$auth" || { result setup FAIL "$HS_ERR"; save_logs "$pm" "$hm"; return; }
  lab_capture_start "$d/ike.pcap" "host $HOST and host $PEER" || { result setup FAIL "tcpdump did not start"; return; }
  case $KIND in
    ss) out=$(lab_gexec "$GUEST" 'swanctl --initiate --child hs --timeout 30 2>&1' 90); rc=$?
        echo "$out" > "$d/initiate.log"
        out="swanctl --initiate: $(grep -E 'successfully|failed' <<< "$out" | tail -n 1)";;
    ls) out=$(lab_ls_up "$GUEST"); rc=$?
        echo "$out" > "$d/initiate.log"
        out="ipsec auto --up hs: $out";;
  esac
  ok setup "$rc" "$(cut -c1-180 <<< "$out")"
  [ "$rc" = 0 ] || { setup_failed "$pm" "$hm"; return; }
  check_sas "$auth" responder "$pm"
  check_ping
  t=$d/isakmp.tsv; isakmp_table "$d/ike.pcap" > "$t"
  any=$(awk -F'\t' '$6 >= 243 && $6 <= 246' "$t" | wc -l)
  mm1=$(awk -F'\t' -v p="$PEER" '$2 == p && $6 == 2 && $5 == "0000000000000000"' "$t" | wc -l)
  mamie=$(awk -F'\t' -v v="$MAMIE" '$6 == 2 && index($7, v)' "$t" | wc -l)
  [ "$any" = 0 ] && [ "$mm1" -ge 1 ] && [ "$mamie" = 0 ]
  ok wire $? "$any AuthIP message(s) on the wire; $(peer_name)'s MM1: $mm1 packet(s), $mamie IKEv1 packet(s) with MS-MamieExists"
  s=$(hs_cli --json stats 2>/dev/null | jq -r '.ike.ikev1_discarded_for_authip // "absent"')
  out=$(hs_log_since "$hm")
  [ "$s" = 0 ] && ! grep -q 'discarded an IKEv1 MM1' <<< "$out"
  ok discard $? "hostsec stats .ike.ikev1_discarded_for_authip = $s$(grep -q 'discarded an IKEv1 MM1' <<< "$out" && echo "; its log: $(grep -m 1 -o 'discarded an IKEv1 MM1.*' <<< "$out" | cut -c1-120)")"
  hs_terminate; peer_flush
  save_logs "$pm" "$hm"
}

# keying = "authip" + authentication = "psk", hostsec initiates (ss-hs-psk)
case_hs_psk() {
  local d=$R/$CASE pm hm out rc t any mamie mm1 w
  pm=$(lab_peer_log_mark "$KIND" "$GUEST"); hm=$(hs_log_mark)
  out=$(peer_load psk) || { result setup FAIL "$(peer_name) refused the connection: $out"; save_logs "$pm" "$hm"; return; }
  hs_start psk || { result setup FAIL "$HS_ERR"; save_logs "$pm" "$hm"; return; }
  w=$(hs_log_since "$hm" | grep -o "rule '$RULE': field 'keying': AuthIP has no pre-shared key method.*" | head -n 1)
  [ -n "$w" ]
  ok config $? "${w:+hostsec warned: }${w:-hostsec did not warn that AuthIP has no pre-shared key method}"
  lab_capture_start "$d/ike.pcap" "host $HOST and host $PEER" || { result setup FAIL "tcpdump did not start"; return; }
  out=$(hs_cli initiate "$RULE" 2>&1); rc=$?
  ok setup "$rc" "hostsec initiate $RULE: $(tail -n 1 <<< "$out" | cut -c1-160)"
  [ "$rc" = 0 ] || { setup_failed "$pm" "$hm"; return; }
  check_sas psk initiator "$pm"
  check_ping
  t=$d/isakmp.tsv; isakmp_table "$d/ike.pcap" > "$t"
  any=$(awk -F'\t' '$6 >= 243 && $6 <= 246' "$t" | wc -l)
  mm1=$(awk -F'\t' -v h="$HOST" '$2 == h && $6 == 2 && $5 == "0000000000000000"' "$t" | wc -l)
  mamie=$(awk -F'\t' -v v="$MAMIE" '$6 == 2 && index($7, v)' "$t" | wc -l)
  out=$(hs_log_since "$hm")
  [ "$any" = 0 ] && [ "$mm1" -ge 1 ] && [ "$mamie" = 0 ] && ! grep -q 'side by side' <<< "$out"
  ok wire $? "$any AuthIP message(s) on the wire; hostsec's MM1: $mm1 packet(s), $mamie IKEv1 packet(s) with MS-MamieExists$(grep -q 'side by side' <<< "$out" && echo "; hostsec logged sending AuthIP #1")"
  hs_terminate; peer_flush
  save_logs "$pm" "$hm"
}

run_case() {
  CASE=$1; mkdir -p "$R/$CASE"
  local t0; t0=$(lab_now_ms)
  case $CASE in
    ss-hs-cert) say "-- $CASE: strongSwan; hostsec initiates, keying = authip, certificate ECDSA P-256"; case_hs_cert p256;;
    ss-peer-cert) say "-- $CASE: strongSwan initiates plain IKEv1 (certificate ECDSA P-256) to keying = authip"; case_peer_cert p256;;
    ss-hs-psk) say "-- $CASE: strongSwan; hostsec initiates, keying = authip + psk (plain IKEv1)"; case_hs_psk;;
    ls-hs-rsa) say "-- $CASE: libreswan; hostsec initiates, keying = authip, certificate RSA-2048"; case_hs_cert rsa;;
    ls-peer-rsa) say "-- $CASE: libreswan initiates plain IKEv1 (certificate RSA-2048) to keying = authip"; case_peer_cert rsa;;
  esac
  info "$CASE took $(lab_ms_fmt $(( $(lab_now_ms) - t0 )))"
}

# ---------------------------------------------------------------- run
say "== hostsec AuthIP fallback interop $(date -u +%FT%TZ)"
info "hostsec binaries: $BIN_DIR ($(stat -c %y "$HOSTSECD" | cut -d. -f1))"
NET_UP=yes
# shellcheck disable=SC2119 # no NAT router
lab_net_up || { echo "ERROR: could not set up the lab network" >&2; exit 2; }
# the lab PKI: one CA (ECDSA P-256); each side's ECDSA P-256 and RSA-2048 certificates (libreswan's as PKCS#12 too)
{ pki_ca "$P" ca p256 "hostsec lab CA" &&
  for a in p256 rsa; do
    t=$a; [ "$a" = rsa ] && t=rsa2048
    pki_host "$P" "hostsec.$a" "$t" "hostsec.$a" ca "$HOST" && pki_host "$P" "peer.$a" "$t" "peer.$a" ca "$PEER" || exit 1
  done &&
  openssl pkcs12 -export -in "$P/peer.rsa.pem" -inkey "$P/peer.rsa.key" -name peer-rsa -passout pass:lab -out "$P/peer-rsa.p12" 2>/dev/null; } ||
  { echo "ERROR: PKI" >&2; exit 2; }

declare -A PEER_MS=()
for kind in ss ls; do
  sel=()
  for c in "${CASES[@]}"; do [[ $c == "$kind"-* ]] && selected "$c" && sel+=("$c"); done
  [ ${#sel[@]} -gt 0 ] || continue
  t0=$(lab_now_ms)
  guest_boot "$kind" || exit 2
  tb=$(lab_now_ms)
  for c in "${sel[@]}"; do run_case "$c"; done
  guest_stop
  PEER_MS[$kind]=$(( $(lab_now_ms) - t0 ))
  info "$( [ "$kind" = ss ] && echo strongSwan || echo libreswan): boot $(lab_ms_fmt $(( tb - t0 ))), ${#sel[@]} case(s) $(lab_ms_fmt $(( $(lab_now_ms) - tb ))), in all $(lab_ms_fmt "${PEER_MS[$kind]}")"
done
for kind in "${!PEER_MS[@]}"; do printf '%s\t%s\n' "$kind" "${PEER_MS[$kind]}"; done > "$R/timings.tsv"

say "== $PASS checks passed, $FAIL failed, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START ))) -- $( [ "$FAIL" = 0 ] && [ "$PASS" -gt 0 ] && echo PASS || echo FAIL) (results: $R)"
[ "$FAIL" = 0 ] && [ "$PASS" -gt 0 ]
