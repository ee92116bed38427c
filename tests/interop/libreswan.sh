#!/bin/bash
# Interop test: hostsec <-> libreswan 4.10 (Debian 12, pluto) with kernel ESP: IKEv1 Main Mode + Quick Mode, PSK,
# ESP transport mode, in both roles, for every DH group x every ESP transform family of the encryption groups.
#
#   netns lab-host: bridge br0 198.51.100.1/24, hostsecd (rule "ls", remote 198.51.100.2)
#   guest "ls"    : 198.51.100.2, libreswan (ipsec.conf conn "hs", ikev1-policy=accept), Debian 6.1 kernel with ESP
#
# Cases: ROLE-dhN-ESP for ROLE in ls (libreswan initiates: ipsec auto --up hs) and hs (hostsec initiate ls), N in
# 14, 24, 19, 20 (the Main Mode cipher/hash rotate: aes128-sha1, aes128-sha256, aes128-sha256, aes256-sha384), ESP in
# gcm (AES-GCM-16-128), sha1 (AES-CBC-128 + HMAC-SHA-1-96), sha256 (AES-CBC-256 + HMAC-SHA-256-128); no PFS
# (libreswan refuses ECP groups for IKEv1 Quick Mode PFS). A case libreswan itself cannot do is reported N/A
# with libreswan's own words (its algorithm parser's, or pluto's), and does not fail the run.
# Certificate cases ROLE-AUTH (AUTH rsa: RSA-2048 with authby=rsasig; p256, p384: ECDSA with authby=ecdsa), Main
# Mode aes128-sha256;dh19, ESP gcm: both hosts' certificates issued by one lab CA (tests/lab/pki.sh), each side
# names the other's subject DN as its identity; libreswan's key and certificate in its NSS database.
# NAT cases (the lab's NAT router lab-nat: 198.51.100.254 outside, 192.0.2.1/24 inside, masquerade):
#   nat-ls-behind   libreswan at 192.0.2.2 behind the NAT initiates to hostsec (nat_traversal = "remote-behind-nat")
#   nat-hs-behind   hostsec at 192.0.2.10 behind the NAT (namespace lab-hsn) initiates to libreswan at 198.51.100.2
#                   (nat_traversal = "both-behind-nat")
#   checks: setup, hostsec's view (NAT found on the right side, ESP in UDP with the ports), ping both ways, TCP
#   both ways, and outside the NAT only UDP 500/4500: no ESP (protocol 50), nothing in clear
# Checks per case:
#   setup    the initiator's command succeeded (libreswan: "IPsec SA established"; hostsec: exit 0)
#   ls-sa    the guest kernel (ip xfrm state) holds the ESP pair between the two, transport mode, with the case's
#            algorithms
#   hs-sa    hostsec sas --json: the same pair (SPIs swapped), the case's transform, no PFS, transport; a Main Mode
#            SA with the case's cipher, hash and group
#   keys     ESP keys equal: the guest kernel's and hostsec's key log (esp_sa), both directions
#   ping     5 pings each way
#   tcp      iperf3 hostsec -> guest for 2 s, and a marker over TCP guest -> hostsec
#   wire     the capture of the case holds IKE and ESP between the two, and nothing in clear
#   then libreswan deletes the SAs (ipsec auto --down) and hostsec must drop the Quick Mode SA within 20 s
#
# Usage: tests/interop/libreswan.sh [--only REGEX] [--keep] [--publish]
#   --publish  also write the table to docs/interop-libreswan.md (the one the README links to)
# Environment: HOSTSEC_BIN_DIR (default <repo>/target/release; not built here), HOSTSEC_LOG_LEVEL (debug), LAB_ACCEL.
# Needs root and a Debian 12 host (the libreswan guest image is built by tests/lab/build-guest.sh on first use).
# Exit 0 only when every applicable case passed; 2 for a usage or setup error.
# Results: tests/lab/results/libreswan/ (summary.txt, results.tsv, table.md, per failed case both sides' logs).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAB_DIR=$REPO/tests/lab
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
# shellcheck source=tests/lab/pki.sh
. "$LAB_DIR/pki.sh"

ONLY='' KEEP=no PUBLISH=no
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --only) ONLY=${2:-}; shift 2;;
    --keep) KEEP=yes; shift;;
    --publish) PUBLISH=yes; shift;;
    -h|--help) usage;;
    *) echo "unknown argument: $1" >&2; usage;;
  esac
done
BIN_DIR=${HOSTSEC_BIN_DIR:-$REPO/target/release}
HOSTSECD=$BIN_DIR/hostsecd HOSTSEC=$BIN_DIR/hostsec
LOG_LEVEL=${HOSTSEC_LOG_LEVEL:-debug}
HOST=$LAB_HOST_ADDR4 LS=198.51.100.2 GUEST=ls RULE=ls
PSK=$LAB_PSK_DEFAULT
R=$LAB_DIR/results/libreswan

for b in "$HOSTSECD" "$HOSTSEC"; do
  [ -x "$b" ] || { echo "ERROR: $b not found or not executable. Build first (cargo build --release) or set HOSTSEC_BIN_DIR." >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ERROR: needs root (network namespaces, TAP devices, QEMU)" >&2; exit 2; }
lab_install_host_pkgs
lab_lock
"$LAB_DIR/build-guest.sh" libreswan || { echo "ERROR: guest image build failed" >&2; exit 2; }
for n in "$LAB_NETNS" lab-nat lab-hsn; do
  lab_netns_free "$n" || { echo "ERROR: network namespace $n is in use (a --keep run? stop it first)" >&2; exit 2; }
done
T_START=$(lab_now_ms)
rm -rf "$R"; mkdir -p "$R"
TMP=$(mktemp -d /tmp/hostsec-libreswan.XXXXXX); chmod 700 "$TMP"
SOCK=$TMP/control.sock KEYS=$TMP/keys HSLOG=$TMP/hostsecd.log
mkdir -m 700 "$KEYS"; : > "$HSLOG"

say() { echo "$*" | tee -a "$R/summary.txt"; }
info() { echo "   $*" | tee -a "$R/summary.txt" >&2; }

HS_PID='' NET_UP=no GUEST_UP=no
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cp "$HSLOG" "$R/hostsecd.log" 2>/dev/null
  cp "$LAB_RUN/$GUEST/pluto.log" "$R/pluto.log" 2>/dev/null
  cp "$LAB_RUN/$GUEST/console.log" "$R/guest-console.log" 2>/dev/null
  lab_capture_stop
  if [ "$KEEP" = yes ]; then
    echo "--keep: left running: hostsecd pid ${HS_PID:-none} (socket $SOCK), guest $GUEST, namespace $LAB_NETNS."
    echo "  stop with: kill ${HS_PID:-<pid>}; $LAB_DIR/stop-peer.sh $GUEST; $LAB_DIR/net.sh down; rm -rf $TMP"
    exit $rc
  fi
  hs_stop
  [ "$GUEST_UP" = yes ] && lab_stop_guest "$GUEST" >/dev/null 2>&1
  ip netns del lab-hsn 2>/dev/null
  [ "$NET_UP" = yes ] && lab_net_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- hostsecd
hs_cli() { timeout 60 "$HOSTSEC" --socket "$SOCK" "$@"; }
hs_ready() { [ -S "$SOCK" ] && hs_cli status >/dev/null 2>&1; }
hs_alive() { [ -n "$HS_PID" ] && kill -0 "$HS_PID" 2>/dev/null; }
hs_ready_or_dead() { hs_ready || ! hs_alive; }
hs_stop() {
  [ -n "$HS_PID" ] || return 0
  if kill -0 "$HS_PID" 2>/dev/null; then
    kill "$HS_PID" 2>/dev/null
    lab_wait_until 10 bash -c "! kill -0 $HS_PID 2>/dev/null" || kill -9 "$HS_PID" 2>/dev/null
  fi
  wait "$HS_PID" 2>/dev/null
  HS_PID=''
}
# hs_start [AUTH]: hostsecd with rule "ls" for PSK (default) or the certificate of type AUTH (rsa, p256, p384), in
# namespace HS_NS at HS_ADDR, towards HS_REMOTE, with nat_traversal = HS_NAT
HS_NS=$LAB_NETNS HS_ADDR=$HOST HS_REMOTE=$LS HS_NAT=remote-behind-nat
hs_start() {
  local cfg=$TMP/hostsecd.toml auth=${1:-psk} a
  if [ "$auth" = psk ]; then a="authentication = \"psk\"
psk = \"$PSK\""
  else a="authentication = \"certificate\"
certificate = \"$P/hostsec.$auth.chain.pem\"
private_key = \"$P/hostsec.$auth.key\"
trusted_cas = [\"$P/ca.pem\"]
remote_id = \"dn:$(pki_dn "ls.$auth")\""
  fi
  cat > "$cfg" <<EOF
[global]
listen = ["$HS_ADDR"]
minimum_strength = "standard"
default_action = "bypass"
control_socket = "$SOCK"
key_log = "$KEYS"
nat_traversal = "$HS_NAT"

[[rule]]
name = "$RULE"
remote = ["$HS_REMOTE"]
action = "require"
keying = "ike"
$a
pfs = false
auto = "none"
EOF
  rm -f "$SOCK"
  ip netns exec "$HS_NS" "$HOSTSECD" --config "$cfg" --foreground --log-level "$LOG_LEVEL" >> "$HSLOG" 2>&1 9>&- &
  HS_PID=$!
  lab_wait_until 30 hs_ready_or_dead && hs_alive
}
hs_log_mark() { wc -c < "$HSLOG"; }
hs_log_since() { tail -c "+$(( $1 + 1 ))" "$HSLOG"; }
hs_qm_count() { hs_cli --json sas 2>/dev/null | jq '[.quick_mode[]?] | length'; }
hs_no_qm() { [ "$(hs_qm_count)" = 0 ]; }

# ---------------------------------------------------------------- libreswan
pluto_mark() { local n; n=$(wc -l < "$LAB_RUN/$GUEST/pluto.log" 2>/dev/null) || n=0; echo "${n:-0}"; }
pluto_since() { tail -n "+$(( $1 + 1 ))" "$LAB_RUN/$GUEST/pluto.log" 2>/dev/null; }
# ls_conf MM_ALGS ESP_ALGS [AUTH]: ipsec.conf with conn "hs" for exactly these algorithms (libreswan syntax), PSK
# or the certificate of type AUTH (nickname ls-AUTH in libreswan's NSS database)
ls_conf() {
  local auth=${3:-psk} a
  case $auth in
    psk) a="    authby=secret
    leftid=$LS
    rightid=$HOST";;
    *) a="    authby=$( [ "$auth" = rsa ] && echo rsasig || echo ecdsa )
    leftcert=ls-$auth
    leftid=%fromcert
    rightid=\"$(pki_dn "hostsec.$auth")\"
    rightca=%same";;
  esac
  cat <<EOF
config setup
    logfile=/lab/pluto.log
    logtime=yes
    uniqueids=no
    ikev1-policy=accept

conn hs
    ikev2=no
$a
    type=transport
    left=$LS
    right=$HOST
    ike=$1
    phase2=esp
    phase2alg=$2
    pfs=no
    encapsulation=no
    rekey=no
    auto=add
EOF
}
# ls_load MM_ALGS ESP_ALGS [AUTH]: installs the conn; prints libreswan's complaint and fails when it refuses it
# (pluto writes why it did not add a conn to its log, not always to whack's output)
ls_load() {
  local out rc mark why
  mark=$(pluto_mark)
  ls_conf "$1" "$2" "${3:-psk}" > "$LAB_RUN/$GUEST/ipsec.conf"
  out=$(lab_gexec "$GUEST" 'cp /lab/ipsec.conf /etc/ipsec.conf; ipsec auto --delete hs >/dev/null 2>&1; ipsec auto --add hs 2>&1; ipsec auto --rereadsecrets 2>&1' 60); rc=$?
  why=$(pluto_since "$mark" | grep -m 1 'failed to add connection' | pluto_text)
  [ -n "$why" ] || why=$(grep -i -m 1 '^While loading' <<< "$out")
  if [ $rc -ne 0 ] || [ -n "$why" ] || grep -qiE 'error|not supported|unknown|invalid|failed|did not load' <<< "$out"; then
    echo "${why:-$(echo "$out" | tr '\n' ' ' | sed 's/  */ /g')}"; return 1
  fi
}
# pluto_text: pluto log lines without their time stamps
pluto_text() { sed -E 's/^[A-Z][a-z]{2} [ 0-9]{2} [0-9:.]+: //'; }

# ---------------------------------------------------------------- cases
# DH -> libreswan's Main Mode algorithms and hostsec's names of them
mm_of() {
  case $1 in
    14) echo "aes128-sha1;modp2048 aes-cbc-128 sha1";;
    24) echo "aes128-sha2_256;dh24 aes-cbc-128 sha256";;
    19) echo "aes128-sha2_256;dh19 aes-cbc-128 sha256";;
    20) echo "aes256-sha2_384;dh20 aes-cbc-256 sha384";;
  esac
}
# ESP name -> libreswan's phase2alg, hostsec's encryption and integrity, the kernel record's names
esp_of() {
  case $1 in
    gcm) echo "aes_gcm128-null aes-gcm-16-128 none";;
    sha1) echo "aes128-sha1 aes-cbc-128 hmac-sha1-96";;
    sha256) echo "aes256-sha2_256 aes-cbc-256 hmac-sha256-128";;
  esac
}

PASS=0 FAIL=0 NA=0 CASE=''
declare -A CELL=()
result() { # check PASS|FAIL|N/A text
  case $2 in PASS) PASS=$((PASS + 1));; FAIL) FAIL=$((FAIL + 1));; *) NA=$((NA + 1));; esac
  say "$(printf '%-4s %-16s %-7s %s' "$2" "$CASE" "$1" "$3")"
  printf '%s\t%s\t%s\t%s\n' "$CASE" "$1" "$2" "$3" >> "$R/results.tsv"
  if [ "$2" = FAIL ]; then CELL[$CASE]="FAIL ($1: $3)"; elif [ "$2" = N/A ]; then CELL[$CASE]="n/a: $3"; fi
}
ok() { if [ "$2" = 0 ]; then result "$1" PASS "$3"; else result "$1" FAIL "$3"; fi; }

# the guest's ESP pair with hostsec: "SPI_IN SPI_OUT" (guest's view), from ip xfrm state
guest_pair() {
  lab_xfrm_records < "$1" | awk -v h="$HOST" -v l="$LS" '$1 == h && $2 == l { i = $3 } $1 == l && $2 == h { o = $3 } END { if (i != "" && o != "") print i, o }'
}

run_case() { # ROLE DH ESP [AUTH]
  local role=$1 dh=$2 esp=$3 auth=${4:-psk} d mm mmalgs mmenc mmhash ls_esp enc integ pm hm out rc v in out_spi j qm recs h_in h_out k_in k_out n mk
  CASE=$role-dh$dh-$esp; [ "$auth" = psk ] || CASE=$role-$auth
  [ -n "$ONLY" ] && ! [[ $CASE =~ $ONLY ]] && return 0
  d=$R/$CASE; mkdir -p "$d"
  read -r mmalgs mmenc mmhash <<< "$(mm_of "$dh")"
  read -r ls_esp enc integ <<< "$(esp_of "$esp")"
  say "-- $CASE: $( [ "$role" = ls ] && echo "libreswan initiates" || echo "hostsec initiates"), $auth, Main Mode $mmalgs, ESP $ls_esp"
  pm=$(pluto_mark); hm=$(hs_log_mark)
  if ! out=$(ls_load "$mmalgs" "$ls_esp" "$auth"); then
    result setup N/A "libreswan: $out"; save_logs "$d" "$pm" "$hm"; return
  fi
  hs_stop; hs_start "$auth" || { result setup FAIL "hostsecd did not start: $(tail -n 3 "$HSLOG" | tr '\n' ' ')"; return; }
  lab_capture_start "$d/case.pcap" "host $LS and host $HOST" || { result setup FAIL "tcpdump did not start"; return; }
  case $role in
    ls) out=$(lab_gexec "$GUEST" 'ipsec auto --up hs 2>&1' 60); rc=$?
        { [ "$rc" = 0 ] && ! grep -q 'IPsec SA established' <<< "$out"; } && rc=1;;
    hs) out=$(hs_cli initiate "$RULE" 2>&1); rc=$?;;
  esac
  echo "$out" > "$d/initiate.log"
  if [ "$rc" != 0 ] && [ "$role" = ls ] && grep -qiE 'not supported|no acceptable|unknown' <<< "$(pluto_since "$pm")" &&
     ! grep -q 'NO_PROPOSAL_CHOSEN' <<< "$(hs_log_since "$hm")"; then
    result setup N/A "libreswan: $(pluto_since "$pm" | grep -iE 'not supported|no acceptable|unknown' | head -n 1 | pluto_text | cut -c1-200)"
    lab_capture_stop; save_logs "$d" "$pm" "$hm"; return
  fi
  ok setup "$rc" "$(tail -n 1 <<< "$out" | cut -c1-200)"
  [ "$rc" = 0 ] || { lab_capture_stop; save_logs "$d" "$pm" "$hm"; return; }
  lab_wait_until 10 bash -c "[ \"\$(timeout 20 '$HOSTSEC' --socket '$SOCK' --json sas | jq '[.quick_mode[]?] | length')\" -ge 1 ]" >/dev/null 2>&1
  lab_gexec "$GUEST" 'ip xfrm state' 20 > "$d/xfrm.txt"
  # ls-sa
  v=$(guest_pair "$d/xfrm.txt")
  read -r in out_spi <<< "$v"
  if [ -z "$v" ]; then result ls-sa FAIL "the guest kernel holds no ESP pair with $HOST"
  else
    v=$(lab_check_xfrm_pair "$d/xfrm.txt" "$LS" "$HOST" "$in" "$out_spi" "$(case $esp in gcm) echo aes128gcm16;; sha1) echo aes128-sha1;; sha256) echo aes256-sha256;; esac)")
    ok ls-sa $? "$( [ -n "$v" ] && [ "$(wc -l <<< "$v")" = 2 ] && echo "in $in out $out_spi, $(awk 'NR == 1 {print $4 "/" $6}' <<< "$v"), transport" || echo "$v")"
  fi
  # hs-sa
  j=$(hs_cli --json sas 2>&1); echo "$j" > "$d/hostsec-sas.json"
  qm=$(jq -c --arg i "$out_spi" --arg o "$in" '[.quick_mode[]? | select(.spi_in == $i and .spi_out == $o)] | first // empty' <<< "$j" 2>/dev/null)
  local want_auth=psk; case $auth in rsa) want_auth=rsa;; p256) want_auth=ecdsa-p256;; p384) want_auth=ecdsa-p384;; esac
  n=$(jq --arg e "$mmenc" --arg h "$mmhash" --argjson g "$dh" --arg a "$want_auth" '[.main_mode[]? | select(.encryption == $e and .hash == $h and .dh_group == $g and .auth == $a)] | length' <<< "$j" 2>/dev/null)
  if [ -z "$qm" ]; then result hs-sa FAIL "hostsec has no Quick Mode SA in $out_spi out $in: $(jq -c '[.quick_mode[]? | {spi_in, spi_out}]' <<< "$j" 2>/dev/null)"
  else
    v=$(jq -r --arg e "$enc" --arg i "$integ" '[ (if .encryption != $e then "encryption \(.encryption) (want \($e))" else empty end),
           (if .integrity != $i then "integrity \(.integrity) (want \($i))" else empty end),
           (if .pfs_group != null then "pfs_group \(.pfs_group)" else empty end),
           (if .mode != "transport" then "mode \(.mode)" else empty end)] | join("; ")' <<< "$qm")
    [ -z "$v" ] && [ "${n:-0}" -ge 1 ]
    ok hs-sa $? "$( [ -z "$v" ] && echo "Quick Mode $enc/$integ, no PFS, transport" || echo "$v")$( [ "${n:-0}" -ge 1 ] && echo "; Main Mode $mmenc/$mmhash/group $dh, auth $want_auth$(jq -r '.main_mode[0].peer_cert_subject // empty | ", peer " + .' <<< "$j")" || echo "; no Main Mode SA $mmenc/$mmhash/group $dh auth $want_auth: $(jq -c '[.main_mode[]? | {encryption, hash, dh_group, auth}]' <<< "$j")")"
  fi
  # keys
  recs=$(lab_uat_records < "$KEYS/esp_sa" 2>/dev/null)
  k_in=$(lab_record_for_spi "$in" < <(lab_xfrm_records < "$d/xfrm.txt")); k_out=$(lab_record_for_spi "$out_spi" < <(lab_xfrm_records < "$d/xfrm.txt"))
  h_out=$(lab_record_for_spi "$in" <<< "$recs"); h_in=$(lab_record_for_spi "$out_spi" <<< "$recs")
  v=$(lab_record_cmp kernel "$k_in" hostsec-esp_sa "$h_out") && v=$(lab_record_cmp kernel "$k_out" hostsec-esp_sa "$h_in")
  ok keys $? "${v:-keys and algorithms equal both ways}"
  # ping
  v=$(lab_ep_ping host "$LS" 5) && v="$v / $(lab_ep_ping "guest:$GUEST" "$HOST" 5)"
  ok ping $? "hostsec->libreswan, libreswan->hostsec (tx rx): $v"
  # tcp
  lab_iperf_server_start "guest:$GUEST" "$LS" >/dev/null
  v=$(ip netns exec "$LAB_NETNS" iperf3 -c "$LS" -t 2 -J 2>&1 9>&- | jq -r '.end.sum_received.bits_per_second / 1e6 | . * 10 | round / 10' 2>/dev/null)
  lab_iperf_server_stop "guest:$GUEST"
  mk=$(lab_marker "$CASE")
  out=$(lab_marker_xfer "guest:$GUEST" host "$HOST" 5999 "$mk" "$TMP"); rc=$?
  [ -n "$v" ] && [ "$v" != null ] && [ $rc = 0 ]
  ok tcp $? "iperf3 hostsec->libreswan ${v:-failed} Mbit/s; marker libreswan->hostsec: $( [ $rc = 0 ] && echo received || echo "$out")"
  lab_capture_stop
  # wire
  v=$(tcpdump -r "$d/case.pcap" -nn 'not (udp port 500 or udp port 4500 or ip proto 50) and not arp' 2>/dev/null | wc -l)
  n=$(tcpdump -r "$d/case.pcap" -nn 'ip proto 50' 2>/dev/null | wc -l)
  [ "$v" = 0 ] && [ "$n" -gt 20 ]
  ok wire $? "$n ESP, $v other (cleartext) packets"
  # delete
  lab_gexec "$GUEST" 'ipsec auto --down hs 2>&1' 30 > "$d/down.log"
  lab_wait_until 20 hs_no_qm
  ok delete $? "libreswan's DELETE: hostsec holds $(hs_qm_count) Quick Mode SA(s)"
  [ -z "${CELL[$CASE]:-}" ] && CELL[$CASE]=pass
  save_logs "$d" "$pm" "$hm"
}
save_logs() { pluto_since "$2" > "$1/pluto.log"; hs_log_since "$3" > "$1/hostsecd.log"; cp "$LAB_RUN/$GUEST/ipsec.conf" "$1/" 2>/dev/null; }

# table.md: the cells by role and algorithms
write_table() {
  local role dh esp a
  { echo "# hostsec <-> libreswan 4.10 (IKEv1 Main Mode + Quick Mode, ESP transport, QEMU lab)"
    echo
    echo "Run $(date -u +%FT%TZ) by \`tests/interop/libreswan.sh\`: $PASS checks passed, $FAIL failed, $NA not applicable."
    echo
    echo "| Main Mode group (cipher/hash) | ESP | libreswan initiates | hostsec initiates |"
    echo "|---|---|---|---|"
    for dh in 14 24 19 20; do
      for esp in gcm sha1 sha256; do
        read -r _ mmenc mmhash <<< "$(mm_of "$dh")"
        read -r _ enc integ <<< "$(esp_of "$esp")"
        printf '| %s (%s/%s) | %s%s | %s | %s |\n' "$dh" "$mmenc" "$mmhash" "$enc" "$( [ "$integ" = none ] || echo " + $integ")" \
          "${CELL[ls-dh$dh-$esp]:-not run}" "${CELL[hs-dh$dh-$esp]:-not run}"
      done
    done
    echo
    echo "| Certificates (Main Mode group 19, ESP AES-GCM-16-128) | libreswan initiates | hostsec initiates |"
    echo "|---|---|---|"
    for a in rsa p256 p384; do
      printf '| %s | %s | %s |\n' "$(case $a in rsa) echo "RSA-2048";; p256) echo "ECDSA P-256";; p384) echo "ECDSA P-384";; esac)" \
        "${CELL[ls-$a]:-not run}" "${CELL[hs-$a]:-not run}"
    done
    echo
    echo "| NAT traversal (PSK, group 19, ESP AES-GCM-16-128 in UDP) | result |"
    echo "|---|---|"
    echo "| libreswan behind a NAT initiates (hostsec \`remote-behind-nat\`) | ${CELL[nat-ls-behind]:-not run} |"
    echo "| hostsec behind a NAT initiates (hostsec \`both-behind-nat\`) | ${CELL[nat-hs-behind]:-not run} |"; } > "$R/table.md"
}

# ---------------------------------------------------------------- run
say "== hostsec <-> libreswan $(date -u +%FT%TZ)"
info "hostsec binaries: $BIN_DIR ($(stat -c %y "$HOSTSECD" | cut -d. -f1))"
NET_UP=yes
lab_net_up nat || { echo "ERROR: could not set up the lab network" >&2; exit 2; }
# the lab PKI: one CA, each side's certificate of each type (libreswan's as PKCS#12 for its NSS database)
P=$TMP/pki; mkdir -m 700 "$P"
pki_ca "$P" ca p256 "hostsec lab CA" || { echo "ERROR: PKI" >&2; exit 2; }
for a in rsa p256 p384; do
  t=$a; [ "$a" = rsa ] && t=rsa2048
  pki_host "$P" "hostsec.$a" "$t" "hostsec.$a" ca "$HOST" && pki_host "$P" "ls.$a" "$t" "ls.$a" ca "$LS" &&
    openssl pkcs12 -export -in "$P/ls.$a.pem" -inkey "$P/ls.$a.key" -name "ls-$a" -passout pass:lab -out "$P/ls-$a.p12" 2>/dev/null ||
    { echo "ERROR: PKI ($a)" >&2; exit 2; }
done
ls_conf aes128-sha2_256\;modp2048 aes128-sha1 > "$TMP/ipsec.conf"
echo "$LS $HOST : PSK \"$PSK\"" > "$TMP/ipsec.secrets"
GUEST_UP=yes
boot=$(lab_boot_guest -n "$GUEST" -a "$LS/24" -i libreswan -c "$TMP/ipsec.conf" -c "$TMP/ipsec.secrets" 2>&1) || { echo "ERROR: guest boot failed: $boot" >&2; exit 2; }
info "$boot"
info "libreswan: $(lab_gexec "$GUEST" 'ipsec --version 2>&1 | head -n 1' 20)"
cp "$P/ca.pem" "$P"/ls-*.p12 "$LAB_RUN/$GUEST/"
out=$(lab_gexec "$GUEST" 'd=sql:/var/lib/ipsec/nss; certutil -A -d $d -n labca -t CT,, -a -i /lab/ca.pem 2>&1 &&
  for a in rsa p256 p384; do pk12util -i /lab/ls-$a.p12 -d $d -W lab 2>&1 || exit 1; done; certutil -L -d $d 2>&1' 60) ||
  { echo "ERROR: importing the lab PKI into libreswan's NSS database: $out" >&2; exit 2; }
lab_ep_ping host "$LS" 1 >/dev/null

for role in ls hs; do
  for dh in 14 24 19 20; do
    for esp in gcm sha1 sha256; do
      run_case "$role" "$dh" "$esp"
    done
  done
  for a in rsa p256 p384; do
    run_case "$role" 19 gcm "$a"
  done
done
# ---------------------------------------------------------------- NAT traversal
NATPUB=198.51.100.254 LSIN=192.0.2.2 HSN=192.0.2.10 HSN_NS=lab-hsn
# nat_conf LEFT LEFTID RIGHT RIGHTID: a PSK transport conn with NAT-T left to detection
nat_conf() {
  cat <<EOF
config setup
    logfile=/lab/pluto.log
    logtime=yes
    uniqueids=no
    ikev1-policy=accept

conn hs
    ikev2=no
    authby=secret
    type=transport
    left=$1
    leftid=$2
    right=$3
    rightid=$4
    ike=aes128-sha2_256;dh19
    phase2=esp
    phase2alg=aes_gcm128-null
    pfs=no
    encapsulation=auto
    rekey=no
    auto=add
EOF
}
# run_nat_case NAME WHO(ls|hs) HOSTSEC_SEES GUEST_SEES GUEST_ADDR WANT_NAT: the guest is up with conn "hs"
run_nat_case() {
  CASE=$1
  local who=$2 hsee=$3 gsee=$4 gaddr=$5 want=$6 d=$R/$1 out rc j mm qm v x esp udp other pm hm
  [ -n "$ONLY" ] && ! [[ $CASE =~ $ONLY ]] && return 0
  mkdir -p "$d"
  say "-- $CASE: hostsec $HS_ADDR ($HS_NAT), libreswan $gaddr, $( [ "$who" = ls ] && echo "libreswan initiates" || echo "hostsec initiates")"
  pm=$(pluto_mark); hm=$(hs_log_mark)
  hs_stop; hs_start || { result setup FAIL "hostsecd did not start: $(tail -n 3 "$HSLOG" | tr '\n' ' ')"; return; }
  lab_capture_start "$d/outside.pcap" "host $HOST or host $NATPUB or host $LS" || { result setup FAIL "tcpdump did not start"; return; }
  case $who in
    ls) out=$(lab_gexec "$GUEST" 'ipsec auto --up hs 2>&1' 60); rc=$?
        { [ "$rc" = 0 ] && ! grep -q 'IPsec SA established' <<< "$out"; } && rc=1;;
    hs) out=$(hs_cli initiate "$RULE" 2>&1); rc=$?;;
  esac
  echo "$out" > "$d/initiate.log"
  ok setup "$rc" "$(tail -n 1 <<< "$out" | cut -c1-200)"
  [ "$rc" = 0 ] || { lab_capture_stop; save_logs "$d" "$pm" "$hm"; return; }
  lab_wait_until 10 bash -c "[ \"\$(timeout 20 '$HOSTSEC' --socket '$SOCK' --json sas | jq '[.quick_mode[]?] | length')\" -ge 1 ]" >/dev/null 2>&1
  j=$(hs_cli --json sas 2>&1); echo "$j" > "$d/hostsec-sas.json"
  mm=$(jq -c '.main_mode | last // empty' <<< "$j" 2>/dev/null); qm=$(jq -c '.quick_mode | last // empty' <<< "$j" 2>/dev/null)
  x="nat=$(jq -r '.nat // "-"' <<< "${mm:-{\}}") encapsulation=$(jq -r '.encapsulation // "-"' <<< "${qm:-{\}}") ports=$(jq -r '"\(.encap_local_port // "-")->\(.encap_remote_port // "-")"' <<< "${qm:-{\}}") transform=$(jq -r '.encryption // "-"' <<< "${qm:-{\}}")"
  [[ $x == "nat=$want encapsulation=udp "*" transform=aes-gcm-16-128" ]]; ok hs-sa $? "hostsec: $x"
  v=$(ip netns exec "$HS_NS" ping -n -c 5 -i 0.2 -W 2 "$hsee" 2>&1); v=$(lab_ping_result "$v")
  out=$(lab_ep_ping "guest:$GUEST" "$gsee" 5)
  [ "$v" = "5 5" ] && [ "$out" = "5 5" ]; ok ping $? "hostsec->libreswan ${v:-none}, libreswan->hostsec ${out:-none} (tx rx)"
  lab_iperf_server_start "guest:$GUEST" "$gaddr" >/dev/null
  v=$(ip netns exec "$HS_NS" iperf3 -c "$hsee" -t 2 -J 2>&1 9>&- | jq -r '.end.sum_received.bits_per_second / 1e6 | . * 10 | round / 10' 2>/dev/null)
  sleep 1
  out=$(ip netns exec "$HS_NS" iperf3 -c "$hsee" -t 2 -R -J 2>&1 9>&- | jq -r '.end.sum_received.bits_per_second / 1e6 | . * 10 | round / 10' 2>/dev/null)
  lab_iperf_server_stop "guest:$GUEST"
  awk -v a="${v:-0}" -v b="${out:-0}" 'BEGIN { exit !(a + 0 > 0 && b + 0 > 0) }'
  ok tcp $? "iperf3 hostsec->libreswan ${v:-failed} Mbit/s, libreswan->hostsec ${out:-failed} Mbit/s"
  lab_capture_stop
  esp=$(tcpdump -r "$d/outside.pcap" -nn 'ip proto 50' 2>/dev/null | wc -l)
  udp=$(tcpdump -r "$d/outside.pcap" -nn 'udp port 4500 or udp port 500' 2>/dev/null | wc -l)
  other=$(tcpdump -r "$d/outside.pcap" -nn 'not arp and not (udp port 4500 or udp port 500)' 2>/dev/null | wc -l)
  [ "$udp" -gt 100 ] && [ "$esp" = 0 ] && [ "$other" = 0 ]
  ok wire $? "outside the NAT: $udp UDP 500/4500, $esp ESP (protocol 50), $other other"
  [ -z "${CELL[$CASE]:-}" ] && CELL[$CASE]=pass
  lab_gexec "$GUEST" 'ipsec auto --down hs >/dev/null 2>&1' 30 >/dev/null
  save_logs "$d" "$pm" "$hm"
}
if [ -z "$ONLY" ] || [[ nat-ls-behind =~ $ONLY ]] || [[ nat-hs-behind =~ $ONLY ]]; then
  hs_stop; lab_stop_guest "$GUEST" >/dev/null 2>&1; GUEST_UP=no
  # phase 1: libreswan behind the NAT, hostsec outside
  nat_conf "$LSIN" "$LSIN" "$HOST" "$HOST" > "$TMP/ipsec.conf"
  echo "$LSIN $HOST : PSK \"$PSK\"" > "$TMP/ipsec.secrets"
  GUEST=lsn GUEST_UP=yes
  boot=$(lab_boot_guest -n "$GUEST" -a "$LSIN/24" -s lab-nat -b brn -g 192.0.2.1 -i libreswan -c "$TMP/ipsec.conf" -c "$TMP/ipsec.secrets" 2>&1) ||
    { echo "ERROR: guest boot failed: $boot" >&2; exit 2; }
  info "$boot"
  HS_REMOTE=$NATPUB HS_NAT=remote-behind-nat
  run_nat_case nat-ls-behind ls "$NATPUB" "$HOST" "$LSIN" remote
  hs_stop; lab_stop_guest "$GUEST" >/dev/null 2>&1; GUEST_UP=no
  # phase 2: hostsec behind the NAT, libreswan outside (it knows hostsec by its own address, as hostsec's ID says)
  ip netns add "$HSN_NS" && ip -n "$HSN_NS" link set lo up &&
    ip netns exec "$HSN_NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 &&
    ip link add hsn0 netns "$HSN_NS" type veth peer name brn-hsn netns lab-nat && ip -n lab-nat link set brn-hsn master brn up &&
    ip -n "$HSN_NS" addr add "$HSN/24" dev hsn0 && ip -n "$HSN_NS" link set hsn0 up &&
    ip -n "$HSN_NS" route add default via 192.0.2.1 || { echo "ERROR: could not make $HSN_NS" >&2; exit 2; }
  nat_conf "$LS" "$LS" %any "$HSN" > "$TMP/ipsec.conf"
  echo "$LS $HSN : PSK \"$PSK\"" > "$TMP/ipsec.secrets"
  GUEST=ls GUEST_UP=yes
  boot=$(lab_boot_guest -n "$GUEST" -a "$LS/24" -i libreswan -c "$TMP/ipsec.conf" -c "$TMP/ipsec.secrets" 2>&1) ||
    { echo "ERROR: guest boot failed: $boot" >&2; exit 2; }
  info "$boot"
  HS_NS=$HSN_NS HS_ADDR=$HSN HS_REMOTE=$LS HS_NAT=both-behind-nat
  run_nat_case nat-hs-behind hs "$LS" "$NATPUB" "$LS" local
  hs_stop
fi

write_table
[ "$PUBLISH" = yes ] && cp "$R/table.md" "$REPO/docs/interop-libreswan.md"

say "== $PASS passed, $FAIL failed, $NA not applicable, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START ))) -- $([ "$FAIL" = 0 ] && echo PASS || echo FAIL) (results: $R, table: $R/table.md)"
[ "$FAIL" = 0 ]
