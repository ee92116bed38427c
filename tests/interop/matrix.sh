#!/bin/bash
# The interop matrix: hostsec against strongSwan 5.9.8 and libreswan 4.10 (QEMU guests with kernel ESP), IKEv1
# Main Mode + Quick Mode, ESP transport mode, every combination of
#   peer     ss (strongSwan, swanctl) | ls (libreswan, pluto with ikev1-policy=accept)
#   role     hs (hostsec initiates: hostsec initiate) | peer (the peer initiates)
#   auth     psk | p256 (ECDSA P-256) | p384 (ECDSA P-384) | rsa (RSA-2048): certificates from one lab CA
#   dh       14 | 24 | 19 | 20 (the Main Mode group; cipher/hash rotate: aes128-sha1, aes128-sha256,
#            aes128-sha256, aes256-sha384); no Quick Mode PFS (libreswan refuses ECP groups for it)
#   esp      gcm (AES-GCM-16-128) | sha1 (AES-CBC-128 + HMAC-SHA-1-96) | sha256 (AES-CBC-256 + HMAC-SHA-256-128)
#   nat      none (both on one link; nat_traversal = "off")
#            peer (the peer behind a masquerading NAT that forwards UDP 500/4500 to it; "remote-behind-nat")
#            both (the peer behind that NAT, hostsec behind a second one that forwards to it; "both-behind-nat")
# A cell that the peer cannot do is not applicable, with the peer's own words (its configuration loader's or its
# daemon's); it does not fail the run.
#
#   lab-host  br0 198.51.100.1/24: hostsecd (none, peer); the peer at 198.51.100.2 (none)
#   lab-nat   198.51.100.254 outside, 192.0.2.1/24 inside: the peer at 192.0.2.2 (peer, both)
#   lab-nat2  198.51.100.253 outside, 203.0.113.1/24 inside: hostsecd at 203.0.113.10 in lab-hsn2 (both)
#
# Checks per cell:
#   setup    the initiator's command succeeded
#   peer-sa  the peer's IKE SA with the cell's Main Mode algorithms, group and authentication; its kernel holds the
#            ESP pair with hostsec in transport mode with the cell's transform
#   hs-sa    hostsec sas --json: the same pair (SPIs swapped), transform, no PFS, transport, the NAT it found and
#            ESP in UDP 4500 behind a NAT; a Main Mode SA with the cell's cipher, hash, group and authentication
#   keys     the ESP keys of both directions equal in the guest kernel and in hostsec's key log
#   ping     3 pings each way
#   tcp      iperf3 hostsec -> peer for 1 s, and a marker over TCP peer -> hostsec
#   wire     between the two public addresses only IKE and ESP (behind a NAT: only UDP 500/4500, no ESP), nothing
#            in clear
#   delete   the peer deletes the SAs; hostsec drops its Quick Mode SA within 20 s
#
# Usage: tests/interop/matrix.sh [--set full|pairwise] [--only REGEX] [--publish] [--keep]
#   --set full      the 576 cells (default; about 90 minutes without KVM)
#   --set pairwise  every pair of values of any two dimensions at least once (tests/interop/matrix-cells.py;
#                   17 cells, what CI runs)
#   --only REGEX    the cells whose name (PEER-ROLE-AUTH-dhN-ESP-NAT) matches
#   --publish       write the table to docs/interop-matrix.md (the one the README links to)
# Environment: HOSTSEC_BIN_DIR (default <repo>/target/release; not built here), HOSTSEC_LOG_LEVEL (debug), LAB_ACCEL.
# Needs root and a Debian 12 host (guest images are built by tests/lab/build-guest.sh on first use).
# Exit 0 only when every applicable cell passed; 2 for a usage or setup error.
# Results: tests/lab/results/matrix/ (summary.txt, results.tsv, table.md, per cell both sides' logs and capture).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAB_DIR=$REPO/tests/lab
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
# shellcheck source=tests/lab/hostsecd.sh
. "$LAB_DIR/hostsecd.sh"
# shellcheck source=tests/lab/pki.sh
. "$LAB_DIR/pki.sh"

SET=full ONLY='' KEEP=no PUBLISH=no
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --set) SET=${2:-}; shift 2;;
    --only) ONLY=${2:-}; shift 2;;
    --keep) KEEP=yes; shift;;
    --publish) PUBLISH=yes; shift;;
    -h|--help) usage;;
    *) echo "unknown argument: $1" >&2; usage;;
  esac
done
case $SET in full|pairwise) ;; *) echo "--set: full or pairwise, not '$SET'" >&2; usage;; esac
BIN_DIR=${HOSTSEC_BIN_DIR:-$REPO/target/release}
HOSTSECD=$BIN_DIR/hostsecd HOSTSEC=$BIN_DIR/hostsec
LOG_LEVEL=${HOSTSEC_LOG_LEVEL:-debug}
PSK=$LAB_PSK_DEFAULT
R=$LAB_DIR/results/matrix
HOST=$LAB_HOST_ADDR4 PEER_LINK=198.51.100.2 NATPUB=198.51.100.254 PEER_IN=192.0.2.2
NAT2PUB=198.51.100.253 HSN=203.0.113.10 HSN_NS=lab-hsn2

for b in "$HOSTSECD" "$HOSTSEC"; do
  [ -x "$b" ] || { echo "ERROR: $b not found or not executable. Build first (cargo build --release) or set HOSTSEC_BIN_DIR." >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ERROR: needs root (network namespaces, TAP devices, QEMU)" >&2; exit 2; }
mapfile -t CELLS < <(python3 "$REPO/tests/interop/matrix-cells.py" "$SET") && [ ${#CELLS[@]} -gt 0 ] ||
  { echo "ERROR: tests/interop/matrix-cells.py $SET gave no cells" >&2; exit 2; }
lab_install_host_pkgs
lab_lock
for v in strongswan libreswan; do
  "$LAB_DIR/build-guest.sh" "$v" || { echo "ERROR: guest image build ($v) failed" >&2; exit 2; }
done
for n in "$LAB_NETNS" lab-nat lab-nat2 "$HSN_NS"; do
  lab_netns_free "$n" || { echo "ERROR: network namespace $n is in use (a --keep run? stop it first)" >&2; exit 2; }
done
T_START=$(lab_now_ms)
rm -rf "$R"; mkdir -p "$R"
TMP=$(mktemp -d /tmp/hostsec-matrix.XXXXXX); chmod 700 "$TMP"
SOCK=$TMP/control.sock KEYS=$TMP/keys HSLOG=$TMP/hostsecd.log P=$TMP/pki
mkdir -m 700 "$KEYS" "$P"; : > "$HSLOG"

say() { echo "$*" | tee -a "$R/summary.txt"; }
info() { echo "   $*" | tee -a "$R/summary.txt" >&2; }

NET_UP=no GUEST=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cp "$HSLOG" "$R/hostsecd.log" 2>/dev/null
  lab_capture_stop
  if [ "$KEEP" = yes ]; then
    echo "--keep: left running: hostsecd pid ${HS_PID:-none} (socket $SOCK), guest ${GUEST:-none}, namespaces $LAB_NETNS lab-nat lab-nat2 $HSN_NS."
    echo "  stop with: kill ${HS_PID:-<pid>}; $LAB_DIR/stop-peer.sh ${GUEST:-<guest>}; ip netns del $HSN_NS; ip netns del lab-nat2; $LAB_DIR/net.sh down; rm -rf $TMP"
    exit $rc
  fi
  hs_stop
  guest_stop
  ip netns del "$HSN_NS" 2>/dev/null; ip netns del lab-nat2 2>/dev/null
  [ "$NET_UP" = yes ] && lab_net_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- the network
# lab_net_up nat gives lab-host and lab-nat; here lab-nat also forwards UDP 500/4500 to the peer behind it (so that
# hostsec can initiate to it), and lab-nat2 puts hostsec behind a second NAT that forwards UDP 500/4500 to hostsec
net_up() { lab_net_up nat && lab_nat_forward "$PEER_IN" && lab_nat2_up "$HSN_NS" "$HSN"; }

# where the two sides are in a NAT situation: sets HS_NS HS_ADDR (hostsec's own address) HS_PUB (the address the
# peer sees) PEER_ADDR (the peer's own) PEER_PUB (what hostsec sees) HS_NAT (hostsec's setting) WANT_NAT (the nat
# field hostsec must report: none, remote, both)
place() {
  case $1 in
    none) HS_NS=$LAB_NETNS HS_ADDR=$HOST HS_PUB=$HOST PEER_ADDR=$PEER_LINK PEER_PUB=$PEER_LINK HS_NAT=off WANT_NAT=none;;
    peer) HS_NS=$LAB_NETNS HS_ADDR=$HOST HS_PUB=$HOST PEER_ADDR=$PEER_IN PEER_PUB=$NATPUB HS_NAT=remote-behind-nat WANT_NAT=remote;;
    both) HS_NS=$HSN_NS HS_ADDR=$HSN HS_PUB=$NAT2PUB PEER_ADDR=$PEER_IN PEER_PUB=$NATPUB HS_NAT=both-behind-nat WANT_NAT=both;;
  esac
}

# ---------------------------------------------------------------- hostsecd
hs_stop() { hs_terminate; }
# hs_start AUTH: hostsecd in HS_NS with one rule "mx" towards PEER_PUB for PSK or the certificate of type AUTH
hs_start() {
  local cfg=$TMP/hostsecd.toml a
  a=$(hs_auth_toml "$1" "$P" "$PSK")
  cat > "$cfg" <<EOF
[global]
listen = ["$HS_ADDR"]
minimum_strength = "standard"
default_action = "bypass"
control_socket = "$SOCK"
key_log = "$KEYS"
nat_traversal = "$HS_NAT"

[[rule]]
name = "mx"
remote = ["$PEER_PUB"]
action = "require"
keying = "ike"
$a
pfs = false
auto = "none"
EOF
  hs_launch "$HS_NS" "$cfg"
}
hs_no_qm() { [ "$(hs_qm_count)" = 0 ]; }
hs_has_qm() { [ "$(hs_qm_count)" -ge 1 ] 2>/dev/null; }

# ---------------------------------------------------------------- the guests
# guest_boot PEER PLACE: the peer's guest on the link (none) or behind lab-nat (peer, both), with every credential
# of the lab PKI loaded (strongSwan: swanctl's directories; libreswan: its NSS database)
GUEST_KIND='' GUEST_PLACE=''
guest_stop() { [ -n "$GUEST" ] && lab_stop_guest "$GUEST" >/dev/null 2>&1; GUEST='' GUEST_KIND='' GUEST_PLACE=''; }
guest_boot() {
  local kind=$1 where=$2 name out l
  name=mx-$kind; [ "$where" = link ] || name=mx-${kind}n
  guest_stop
  if [ "$where" = link ]; then out=$(lab_peer_boot "$kind" "$name" "$P" "$PSK" -a "$PEER_LINK/24")
  else out=$(lab_peer_boot "$kind" "$name" "$P" "$PSK" -a "$PEER_IN/24" -s lab-nat -b brn -g 192.0.2.1); fi ||
    { echo "ERROR: $kind guest: see above" >&2; return 1; }
  GUEST=$name GUEST_KIND=$kind GUEST_PLACE=$where
  while IFS= read -r l; do info "$l"; done <<< "$out"
}
peer_log() { lab_peer_log "$GUEST_KIND" "$GUEST"; }
peer_mark() { lab_peer_log_mark "$GUEST_KIND" "$GUEST"; }
peer_since() { lab_peer_log_since "$GUEST_KIND" "$GUEST" "$1"; }
pluto_text() { lab_pluto_text; }

# the cell's algorithms in each side's words
# mm_of DH -> "LIBRESWAN_IKE STRONGSWAN_IKE HOSTSEC_ENC HOSTSEC_HASH LIBRESWAN_GROUP_NAME"
mm_of() {
  case $1 in
    14) echo "aes128-sha1;modp2048 aes128-sha1-modp2048 aes-cbc-128 sha1 MODP2048";;
    24) echo "aes128-sha2_256;dh24 aes128-sha256-modp2048s256 aes-cbc-128 sha256 DH24";;
    19) echo "aes128-sha2_256;dh19 aes128-sha256-ecp256 aes-cbc-128 sha256 DH19";;
    20) echo "aes256-sha2_384;dh20 aes256-sha384-ecp384 aes-cbc-256 sha384 DH20";;
  esac
}
# esp_of ESP -> "LIBRESWAN_PHASE2ALG STRONGSWAN_ESP HOSTSEC_ENC HOSTSEC_INTEG"
esp_of() {
  case $1 in
    gcm) echo "aes_gcm128-null aes128gcm16 aes-gcm-16-128 none";;
    sha1) echo "aes128-sha1 aes128-sha1 aes-cbc-128 hmac-sha1-96";;
    sha256) echo "aes256-sha2_256 aes256-sha256 aes-cbc-256 hmac-sha256-128";;
  esac
}
auth_name() { case $1 in psk) echo "pre-shared key";; rsa) echo "RSA-2048";; p256) echo "ECDSA P-256";; p384) echo "ECDSA P-384";; esac; }

# ---------------------------------------------------------------- strongSwan
ss_conf() { lab_ss_conf "$1" "$PEER_ADDR" "$HS_PUB" "$2" "$3" "$HS_ADDR" "$PSK"; } # AUTH IKE ESP
# ss_load AUTH IKE ESP: install the cell's connection; prints strongSwan's complaint and fails when it refuses it
ss_load() {
  local out rc
  ss_conf "$@" > "$LAB_RUN/$GUEST/swanctl.conf"
  out=$(lab_gexec "$GUEST" 'lab-ike reload 2>&1' 60); rc=$?
  if [ $rc -ne 0 ] || ! grep -qE 'successfully loaded' <<< "$out" || grep -qiE 'failed|error|invalid' <<< "$out"; then
    echo "$out" | grep -iE 'failed|error|invalid' | head -n 2 | tr '\n' ' '; return 1
  fi
}
ss_flush() { lab_ss_flush "$GUEST"; }

# ---------------------------------------------------------------- libreswan
# ls_conf AUTH IKE PHASE2ALG NAT; ls_load AUTH IKE PHASE2ALG NAT: installs the conn; prints libreswan's complaint
# and fails when it refuses it
ls_conf() { lab_ls_conf "$1" "$PEER_ADDR" "$HS_PUB" "$2" "$3" "$( [ "$4" = none ] && echo no || echo auto)" "$HS_ADDR"; }
ls_load() { ls_conf "$@" > "$LAB_RUN/$GUEST/ipsec.conf"; lab_ls_load "$GUEST" "$LAB_RUN/$GUEST/ipsec.conf"; }

# ---------------------------------------------------------------- results
PASS=0 FAIL=0 NA=0 CELL_PASS=0 CELL_FAIL=0 CELL_NA=0 CASE=''
declare -A CELL=()
result() { # check PASS|FAIL|N/A text
  case $2 in PASS) PASS=$((PASS + 1));; FAIL) FAIL=$((FAIL + 1));; *) NA=$((NA + 1));; esac
  say "$(printf '%-4s %-30s %-7s %s' "$2" "$CASE" "$1" "$3")"
  printf '%s\t%s\t%s\t%s\n' "$CASE" "$1" "$2" "$3" >> "$R/results.tsv"
  if [ "$2" = FAIL ] && [[ ${CELL[$CASE]:-} != FAIL* ]]; then CELL[$CASE]="FAIL ($1: $3)"
  elif [ "$2" = N/A ]; then CELL[$CASE]="n/a: $3"; fi
}
ok() { if [ "$2" = 0 ]; then result "$1" PASS "$3"; else result "$1" FAIL "$3"; fi; }
save_logs() { # DIR PEER_MARK HS_MARK
  peer_since "$2" > "$1/$( [ "$GUEST_KIND" = ss ] && echo charon || echo pluto).log"
  hs_log_since "$3" > "$1/hostsecd.log"
  cp "$TMP/hostsecd.toml" "$1/" 2>/dev/null
  case $GUEST_KIND in ss) cp "$LAB_RUN/$GUEST/swanctl.conf" "$1/" 2>/dev/null;; ls) cp "$LAB_RUN/$GUEST/ipsec.conf" "$1/" 2>/dev/null;; esac
}
end_cell() {
  case ${CELL[$CASE]:-} in
    # a passed cell's capture is only its traffic (megabytes each): kept for the others
    '') CELL[$CASE]=pass; CELL_PASS=$((CELL_PASS + 1)); rm -f "$R/$CASE/outside.pcap";;
    FAIL*) CELL_FAIL=$((CELL_FAIL + 1));;
    n/a*) CELL_NA=$((CELL_NA + 1));;
  esac
}

# the guest's ESP pair with hostsec from `ip xfrm state`: "SPI_IN SPI_OUT" (the guest's view)
guest_pair() { lab_xfrm_pair "$1" "$HS_PUB" "$PEER_ADDR"; }

# ---------------------------------------------------------------- one cell
run_cell() { # PEER ROLE AUTH DH ESP NAT
  local peer=$1 role=$2 auth=$3 dh=$4 esp=$5 nat=$6 d ls_ike ss_ike mmenc mmhash ls_group ls_esp ss_esp enc integ
  local pm hm out rc v in out_spi j qm n mk kv want_auth mm natq esp_n other udp
  CASE=$peer-$role-$auth-dh$dh-$esp-$nat
  d=$R/$CASE; mkdir -p "$d"
  read -r ls_ike ss_ike mmenc mmhash ls_group <<< "$(mm_of "$dh")"
  read -r ls_esp ss_esp enc integ <<< "$(esp_of "$esp")"
  place "$nat"
  say "-- $CASE: $( [ "$role" = hs ] && echo "hostsec initiates" || echo "$( [ "$peer" = ss ] && echo strongSwan || echo libreswan) initiates"), $(auth_name "$auth"), Main Mode $mmenc/$mmhash/group $dh, ESP $enc$( [ "$integ" = none ] || echo "+$integ"), hostsec $HS_ADDR (public $HS_PUB, $HS_NAT), peer $PEER_ADDR (public $PEER_PUB)"
  pm=$(peer_mark); hm=$(hs_log_mark)
  # the peer's configuration: a refusal there is the peer's "cannot do", in its own words
  case $peer in
    ss) out=$(ss_load "$auth" "$ss_ike" "$ss_esp") || { result setup N/A "strongSwan: $out"; save_logs "$d" "$pm" "$hm"; end_cell; return; };;
    ls) out=$(ls_load "$auth" "$ls_ike" "$ls_esp" "$nat") || { result setup N/A "libreswan: $out"; save_logs "$d" "$pm" "$hm"; end_cell; return; };;
  esac
  hs_stop; hs_start "$auth" || { result setup FAIL "$HS_ERR"; save_logs "$d" "$pm" "$hm"; end_cell; return; }
  lab_capture_start "$d/outside.pcap" "host $HS_PUB and host $PEER_PUB" || { result setup FAIL "tcpdump did not start"; end_cell; return; }
  case $role:$peer in
    peer:ss) out=$(lab_gexec "$GUEST" 'swanctl --initiate --child hs --timeout 30 2>&1' 90); rc=$?
             out=$(grep -E 'successfully|failed' <<< "$out" | tail -n 1);;
    peer:ls) out=$(lab_ls_up "$GUEST"); rc=$?;;
    hs:*) out=$(hs_cli initiate mx 2>&1); rc=$?;;
  esac
  echo "$out" > "$d/initiate.log"
  ok setup "$rc" "$(tail -n 1 <<< "$out" | cut -c1-200)"
  if [ "$rc" != 0 ]; then
    lab_capture_stop; save_logs "$d" "$pm" "$hm"; [ "$peer" = ss ] && ss_flush
    end_cell; return
  fi
  # the responder installs its SAs after the initiator's command returned
  lab_wait_until 10 hs_has_qm
  lab_wait_until 10 bash -c "'$LAB_DIR/gexec.sh' '$GUEST' 'ip xfrm state' 20 | grep -q 'proto esp'"
  lab_gexec "$GUEST" 'ip xfrm state' 20 > "$d/xfrm.txt"
  # peer-sa: the peer's IKE SA and its kernel's ESP pair
  v=$(guest_pair "$d/xfrm.txt"); read -r in out_spi <<< "$v"
  case $peer in
    ss) lab_gexec "$GUEST" 'swanctl --list-sas' 20 > "$d/list-sas.txt"
        kv=$(lab_check_ss_sa "$d/list-sas.txt" hs "$ss_ike" "$ss_esp" "TRANSPORT$( [ "$nat" = none ] || echo -in-UDP)"); rc=$?
        [ $rc = 0 ] && kv="IKE $(lab_ike_swanctl_algs "$ss_ike"), $(lab_esp_swanctl_algs "$ss_esp")";;
    ls) mm=$(peer_since "$pm" | grep -E 'IKE SA established|ISAKMP SA established' | tail -n 1 | pluto_text)
        kv=$mm
        case $auth in psk) want_auth=PRESHARED_KEY;; rsa) want_auth=RSA_SIG;; *) want_auth=ECDSA;; esac
        grep -q "auth=$want_auth cipher=AES_CBC_${mmenc##*-} integ=HMAC_$(tr 'a-z' 'A-Z' <<< "$mmhash" | sed 's/SHA\([0-9]\{3\}\)/SHA2_\1/') group=$ls_group" <<< "$mm"; rc=$?
        [ -n "$mm" ] || kv="libreswan logged no established IKE SA";;
  esac
  if [ -z "$v" ]; then result peer-sa FAIL "the guest kernel holds no ESP pair between $PEER_ADDR and $HS_PUB; ${kv:0:200}"
  else
    v=$(lab_check_xfrm_pair "$d/xfrm.txt" "$PEER_ADDR" "$HS_PUB" "$in" "$out_spi" "$ss_esp")
    [ $? = 0 ] && [ "$rc" = 0 ]
    ok peer-sa $? "$(cut -c1-160 <<< "$kv"); kernel: in $in out $out_spi $( [ "$(wc -l <<< "$v")" = 2 ] && echo "$(awk 'NR == 1 {print $4 "/" $6}' <<< "$v"), transport" || echo "$v")"
  fi
  # hs-sa
  j=$(hs_cli --json sas 2>&1); echo "$j" > "$d/hostsec-sas.json"
  qm=$(jq -c --arg i "$out_spi" --arg o "$in" '[.quick_mode[]? | select(.spi_in == $i and .spi_out == $o)] | first // empty' <<< "$j" 2>/dev/null)
  want_auth=psk; case $auth in rsa) want_auth=rsa;; p256) want_auth=ecdsa-p256;; p384) want_auth=ecdsa-p384;; esac
  n=$(jq --arg e "$mmenc" --arg h "$mmhash" --argjson g "$dh" --arg a "$want_auth" --arg nat "$WANT_NAT" \
      '[.main_mode[]? | select(.encryption == $e and .hash == $h and .dh_group == $g and .auth == $a and ((.nat // "none") == $nat))] | length' <<< "$j" 2>/dev/null)
  if [ -z "$qm" ]; then result hs-sa FAIL "hostsec has no Quick Mode SA in $out_spi out $in: $(jq -c '[.quick_mode[]? | {spi_in, spi_out}]' <<< "$j" 2>/dev/null)"
  else
    natq=$( [ "$nat" = none ] && echo none || echo udp)
    v=$(jq -r --arg e "$enc" --arg i "$integ" --arg u "$natq" '[ (if .encryption != $e then "encryption \(.encryption) (want \($e))" else empty end),
           (if .integrity != $i then "integrity \(.integrity) (want \($i))" else empty end),
           (if .pfs_group != null then "pfs_group \(.pfs_group)" else empty end),
           (if .mode != "transport" then "mode \(.mode)" else empty end),
           (if $u == "udp" and (.encapsulation != "udp" or .encap_local_port != 4500 or .encap_remote_port != 4500) then "encapsulation \(.encapsulation) \(.encap_local_port)->\(.encap_remote_port) (want udp 4500->4500)" else empty end),
           (if $u == "none" and .encapsulation == "udp" then "ESP in UDP without a NAT" else empty end)] | join("; ")' <<< "$qm")
    [ -z "$v" ] && [ "${n:-0}" -ge 1 ]
    ok hs-sa $? "$( [ -z "$v" ] && echo "Quick Mode $enc/$integ, no PFS, transport$( [ "$nat" = none ] || echo ", ESP in UDP 4500")" || echo "$v")$( [ "${n:-0}" -ge 1 ] && echo "; Main Mode $mmenc/$mmhash/group $dh, auth $want_auth, nat $WANT_NAT" || echo "; no Main Mode SA $mmenc/$mmhash/group $dh auth $want_auth nat $WANT_NAT: $(jq -c '[.main_mode[]? | {encryption, hash, dh_group, auth, nat}]' <<< "$j")")"
  fi
  # keys: the guest kernel's SAs against hostsec's key log
  v=$(lab_keys_cmp "$d/xfrm.txt" "$KEYS/esp_sa" "$in" "$out_spi")
  ok keys $? "${v:-keys and algorithms equal both ways}"
  # ping
  v=$(ip netns exec "$HS_NS" ping -n -c 3 -i 0.2 -W 2 "$PEER_PUB" 2>&1 9>&-); v=$(lab_ping_result "$v")
  out=$(lab_ep_ping "guest:$GUEST" "$HS_PUB" 3)
  [ "$v" = "3 3" ] && [ "$out" = "3 3" ]
  ok ping $? "hostsec->peer ${v:-none}, peer->hostsec ${out:-none} (tx rx)"
  # tcp: iperf3 hostsec -> peer, a marker peer -> hostsec
  lab_iperf_server_start "guest:$GUEST" "$PEER_ADDR" >/dev/null
  v=$(ip netns exec "$HS_NS" iperf3 -c "$PEER_PUB" -t 1 -J 2>&1 9>&- | jq -r '.end.sum_received.bits_per_second / 1e6 | . * 10 | round / 10' 2>/dev/null)
  lab_iperf_server_stop "guest:$GUEST"
  mk=$(lab_marker "$CASE")
  out=$(marker_in "$mk")
  awk -v a="${v:-0}" 'BEGIN { exit !(a + 0 > 0) }' && [ "$out" = "$mk" ]
  ok tcp $? "iperf3 hostsec->peer ${v:-failed} Mbit/s; marker peer->hostsec: $( [ "$out" = "$mk" ] && echo received || echo "${out:0:120}")"
  lab_capture_stop
  # wire: between the public addresses only IKE and ESP (ESP in UDP 4500 behind a NAT), nothing in clear
  esp_n=$(tcpdump -r "$d/outside.pcap" -nn 'ip proto 50' 2>/dev/null | wc -l)
  udp=$(tcpdump -r "$d/outside.pcap" -nn 'udp port 4500' 2>/dev/null | wc -l)
  other=$(tcpdump -r "$d/outside.pcap" -nn 'not arp and not (udp port 500 or udp port 4500 or ip proto 50)' 2>/dev/null | wc -l)
  if [ "$nat" = none ]; then [ "$esp_n" -gt 20 ] && [ "$other" = 0 ]; else [ "$udp" -gt 20 ] && [ "$esp_n" = 0 ] && [ "$other" = 0 ]; fi
  ok wire $? "$esp_n ESP, $udp UDP 4500, $other other (cleartext) packets between $HS_PUB and $PEER_PUB"
  # delete: the peer deletes, hostsec follows
  case $peer in
    ss) lab_ss_terminate "$GUEST" hs > "$d/down.log";;
    ls) lab_gexec "$GUEST" 'ipsec auto --down hs 2>&1' 30 > "$d/down.log";;
  esac
  lab_wait_until 20 hs_no_qm; rc=$?
  ok delete $rc "the peer's DELETE: hostsec holds $(hs_qm_count) Quick Mode SA(s)"
  [ "$peer" = ss ] && [ $rc != 0 ] && ss_flush
  save_logs "$d" "$pm" "$hm"
  end_cell
}
# marker_in MARKER: the peer sends MARKER over TCP to hostsec's public address, a listener in HS_NS on hostsec's own
# address receives it (behind lab-nat2 the TCP can only arrive inside the SA's UDP 4500: the NAT forwards nothing
# else); prints what arrived, true when it is MARKER
marker_in() {
  local f=$TMP/marker.txt pid got
  rm -f "$f"
  ip netns exec "$HS_NS" socat -u "TCP4-LISTEN:5999,bind=$HS_ADDR,reuseaddr" "CREATE:$f" > "$f.log" 2>&1 9>&- &
  pid=$!
  lab_wait_until 5 bash -c "ip netns exec '$HS_NS' ss -ltnH | grep -q ':5999 '"
  lab_gexec "$GUEST" "printf '%s\\n' '$1' | nc -N -w 10 $HS_PUB 5999" 30 > "$TMP/marker-send.log" 2>&1
  lab_wait_until 5 bash -c "! kill -0 $pid 2>/dev/null"; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  got=$(cat "$f" 2>/dev/null)
  echo "${got:-<nothing>}"
  [ "$got" = "$1" ]
}

# ---------------------------------------------------------------- table
# table.md: per peer and NAT situation, rows auth x DH, columns ESP x role; n/a reasons as footnotes
write_table() {
  local peer nat auth dh esp role c k i
  declare -A NOTE=(); local -a NOTES=()
  { echo "# hostsec interop matrix: strongSwan 5.9.8 and libreswan 4.10"
    echo
    echo "IKEv1 Main Mode + Quick Mode, ESP transport mode, QEMU guests with kernel ESP. Run $(date -u +%FT%TZ) by"
    echo "\`tests/interop/matrix.sh --set $SET\`: $CELL_PASS cells passed, $CELL_FAIL failed, $CELL_NA not applicable"
    echo "($PASS checks passed, $FAIL failed). A cell passes when every check passes: SAs up on both sides with the"
    echo "cell's algorithms, ESP keys equal (peer's kernel and hostsec's key log), ping and TCP both ways, only IKE and"
    echo "ESP on the wire (behind a NAT only UDP 500/4500), and the peer's DELETE removes hostsec's SA."
    echo
    echo "Main Mode cipher/hash by group: 14 aes-cbc-128/sha1, 24 and 19 aes-cbc-128/sha256, 20 aes-cbc-256/sha384."
    echo "ESP: gcm = AES-GCM-16-128, sha1 = AES-CBC-128 + HMAC-SHA-1-96, sha256 = AES-CBC-256 + HMAC-SHA-256-128."
    echo "Initiator: hs = hostsec, peer = the other side. NAT: none (one link), peer (the peer behind a NAT,"
    echo "hostsec \`remote-behind-nat\`), both (each behind its own NAT, hostsec \`both-behind-nat\`)."
    for peer in ss ls; do
      for nat in none peer both; do
        echo
        echo "## $( [ "$peer" = ss ] && echo strongSwan || echo libreswan), NAT: $nat"
        echo
        echo "| auth | DH | gcm, hs | gcm, peer | sha1, hs | sha1, peer | sha256, hs | sha256, peer |"
        echo "|---|---|---|---|---|---|---|---|"
        for auth in psk p256 p384 rsa; do
          for dh in 14 24 19 20; do
            printf '| %s | %s |' "$auth" "$dh"
            for esp in gcm sha1 sha256; do
              for role in hs peer; do
                c=${CELL[$peer-$role-$auth-dh$dh-$esp-$nat]:-}
                case $c in
                  '') printf ' – |';;
                  pass) printf ' pass |';;
                  n/a:*) k=${c#n/a: }
                         [ -n "${NOTE[$k]:-}" ] || { NOTES+=("$k"); NOTE[$k]=${#NOTES[@]}; }
                         printf ' n/a [%s] |' "${NOTE[$k]}";;
                  *) printf ' **%s** |' "$(sed 's/|/\\|/g' <<< "${c:0:160}")";;
                esac
              done
            done
            echo
          done
        done
      done
    done
    echo
    echo "\"–\": not in this run (\`--set pairwise\` runs a subset; \`--set full\` every cell)."
    if [ ${#NOTES[@]} -gt 0 ]; then
      echo
      echo "## Not applicable: the peer's reasons"
      echo
      for i in "${!NOTES[@]}"; do echo "$(( i + 1 )). $(sed 's/|/\\|/g' <<< "${NOTES[i]}")"; done
    fi; } > "$R/table.md"
}

# ---------------------------------------------------------------- run
say "== hostsec interop matrix ($SET: ${#CELLS[@]} cells) $(date -u +%FT%TZ)"
info "hostsec binaries: $BIN_DIR ($(stat -c %y "$HOSTSECD" | cut -d. -f1))"
NET_UP=yes
net_up || { echo "ERROR: could not set up the lab network" >&2; exit 2; }
# the lab PKI: one CA; each side's certificate of each type (libreswan's also as PKCS#12 for its NSS database)
pki_ca "$P" ca p256 "hostsec lab CA" || { echo "ERROR: PKI" >&2; exit 2; }
for a in rsa p256 p384; do
  t=$a; [ "$a" = rsa ] && t=rsa2048
  pki_host "$P" "hostsec.$a" "$t" "hostsec.$a" ca "$HOST" && pki_host "$P" "peer.$a" "$t" "peer.$a" ca "$PEER_LINK" &&
    openssl pkcs12 -export -in "$P/peer.$a.pem" -inkey "$P/peer.$a.key" -name "peer-$a" -passout pass:lab -out "$P/peer-$a.p12" 2>/dev/null ||
    { echo "ERROR: PKI ($a)" >&2; exit 2; }
done

for line in "${CELLS[@]}"; do
  read -r peer role auth dh esp nat <<< "$line"
  [ -n "$ONLY" ] && ! [[ $peer-$role-$auth-dh$dh-$esp-$nat =~ $ONLY ]] && continue
  where=link; [ "$nat" = none ] || where=nat
  if [ "$GUEST_KIND" != "$peer" ] || [ "$GUEST_PLACE" != "$where" ]; then
    hs_stop
    guest_boot "$peer" "$where" || exit 2
  fi
  run_cell "$peer" "$role" "$auth" "$dh" "$esp" "$nat"
done
hs_stop

write_table
[ "$PUBLISH" = yes ] && cp "$R/table.md" "$REPO/docs/interop-matrix.md"

say "== $CELL_PASS cells passed, $CELL_FAIL failed, $CELL_NA not applicable ($PASS checks passed, $FAIL failed), total $(lab_ms_fmt $(( $(lab_now_ms) - T_START ))) -- $( [ "$FAIL" = 0 ] && [ "$CELL_PASS" -gt 0 ] && echo PASS || echo FAIL) (results: $R, table: $R/table.md)"
[ "$FAIL" = 0 ] && [ "$CELL_PASS" -gt 0 ]
