#!/bin/bash
# Interop test: certificate authentication between hostsec and strongSwan 5.9.8 (Debian 12, kernel ESP in a QEMU
# guest), IKEv1 Main Mode with RSA (method 3), ECDSA P-256 (9) and ECDSA P-384 (10) signatures, IKE
# fragmentation on a path with MTU 576 that drops IP fragments, and certificate-then-psk falling back to the PSK.
#
#   netns lab-host: br0 198.51.100.1/24, hostsecd (rule "sw", action require, ESP datapath)
#   guest "sw"    : 198.51.100.2, strongSwan (charon + swanctl)
#
# The PKI is made here with openssl (tests/lab/pki.sh): root CA A (RSA-3072) with an intermediate A (ECDSA P-384),
# root CA B (ECDSA P-256); hostsec's certificates "hostsec.<case>" and the guest's "sw.<type>" carry the
# address in subjectAltName; IDs are the subject DNs, and each side names the other's DN as the remote identity.
#
# Cases (role hs: `hostsec initiate sw`; ss: swanctl --initiate in the guest):
#   p256-hs p256-ss       ECDSA P-256, both certificates issued by CA A
#   p384-hs p384-ss       ECDSA P-384, hostsec's certificate issued by the intermediate (hostsec sends the chain)
#   rsa-hs rsa-ss         RSA-3072 (hostsec, through the intermediate) / RSA-2048 (guest)
#   frag-hs frag-ss       RSA-3072 + intermediate (Main Mode messages 5/6 of 2-3 KB) over MTU 576 with every IP
#                         fragment dropped on the bridge: only IKE fragments (payload 132) get through
#   frag-control          the same path with strongSwan's fragmentation = no: the IP-fragmented message 5 is
#                         dropped (counted) and no SA comes up -- the path really needs IKE fragmentation
#   fallback-hs           hostsec authentication = certificate-then-psk; the guest trusts only CA B, so it refuses
#                         hostsec's certificate: hostsec logs why and falls back to a PSK Main Mode; SA with PSK
#   either-ss-cert        hostsec responder with certificate-then-psk, strongSwan authenticates with its certificate
#   either-ss-psk         the same rule, strongSwan authenticates with the PSK
# Checks per passing case: SA pair on both sides (strongSwan ESTABLISHED/INSTALLED/TRANSPORT with the case's
# algorithms), hostsec sas --json: the Main Mode's auth method and the peer certificate's subject and issuer (or
# psk), strongSwan's log: the authentication of hostsec's identity and method, ping both ways, the br0 capture
# holds no cleartext between the two; frag: both sides sent fragments, no datagram over 576 bytes, no IP fragment.
#
# Usage: tests/interop/strongswan-certs.sh [--only REGEX] [--keep]
# Environment: HOSTSEC_BIN_DIR (default <repo>/target/release; not built here), HOSTSEC_LOG_LEVEL (debug),
#   HOSTSECD_START_TIMEOUT (s, 30), LAB_ACCEL.
# Needs root and a Debian 12 host. Exit 0 only when every check passed; 2 for a usage or setup error.
# Results: tests/lab/results/strongswan-certs/ (summary.txt, results.tsv, per case: capture, both sides' views).
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
START_TIMEOUT=${HOSTSECD_START_TIMEOUT:-30}
HOST=$LAB_HOST_ADDR4 SW=198.51.100.2 GUEST=sw RULE=sw
PSK=$LAB_PSK_DEFAULT
R=$LAB_DIR/results/strongswan-certs
SA_APPEAR_TIMEOUT=15 SMALL_MTU=576

for b in "$HOSTSECD" "$HOSTSEC"; do
  [ -x "$b" ] || { echo "ERROR: $b not found or not executable. Build first (cargo build --release) or set HOSTSEC_BIN_DIR." >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ERROR: needs root (network namespaces, TAP devices, QEMU)" >&2; exit 2; }
command -v openssl >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq openssl >/dev/null; }
lab_install_host_pkgs
lab_lock
"$LAB_DIR/build-guest.sh" strongswan || { echo "ERROR: guest image build failed" >&2; exit 2; }
lab_netns_free "$LAB_NETNS" || { echo "ERROR: the lab network namespace is in use (a --keep run? stop it first)" >&2; exit 2; }
T_START=$(lab_now_ms)
rm -rf "$R"; mkdir -p "$R"
TMP=$(mktemp -d /tmp/hostsec-certs.XXXXXX); chmod 700 "$TMP"
SOCK=$TMP/control.sock KEYS=$TMP/keys HSLOG=$TMP/hostsecd.log P=$TMP/pki
mkdir -m 700 "$KEYS" "$P"; : > "$HSLOG"

say() { echo "$*" | tee -a "$R/summary.txt"; }
info() { echo "   $*" | tee -a "$R/summary.txt" >&2; }

HS_PID='' NET_UP=no GUEST_UP=no
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  cp "$HSLOG" "$R/hostsecd.log" 2>/dev/null
  cp "$LAB_RUN/$GUEST/charon.log" "$R/charon.log" 2>/dev/null
  cp "$LAB_RUN/$GUEST/console.log" "$R/guest-console.log" 2>/dev/null
  lab_capture_stop
  if [ "$KEEP" = yes ]; then
    echo "--keep: left running: hostsecd pid ${HS_PID:-none} (socket $SOCK), guest $GUEST, namespace $LAB_NETNS."
    echo "  stop with: kill ${HS_PID:-<pid>}; $LAB_DIR/stop-peer.sh $GUEST; $LAB_DIR/net.sh down; rm -rf $TMP"
    exit $rc
  fi
  hs_stop
  [ "$GUEST_UP" = yes ] && lab_stop_guest "$GUEST" >/dev/null 2>&1
  [ "$NET_UP" = yes ] && lab_net_down
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- PKI
make_pki() {
  pki_ca "$P" caA rsa3072 "Lab CA A" && pki_sub_ca "$P" intA p384 "Lab Intermediate A" caA &&
  pki_ca "$P" caB p256 "Lab CA B" &&
  pki_host "$P" hs-p256 p256 hostsec.p256 caA "$HOST" && pki_host "$P" hs-p384 p384 hostsec.p384 intA "$HOST" &&
  pki_host "$P" hs-rsa rsa3072 hostsec.rsa intA "$HOST" &&
  pki_host "$P" sw-p256 p256 sw.p256 caA "$SW" && pki_host "$P" sw-p384 p384 sw.p384 caA "$SW" &&
  pki_host "$P" sw-rsa rsa2048 sw.rsa caA "$SW"
}

# ---------------------------------------------------------------- hostsecd
HS_CLI_TIMEOUT=90
hs_stop() { hs_terminate; }
# hs_config AUTH CERT_NAME REMOTE_DN: one rule "sw" for the guest with that authentication
hs_config() {
  cat <<EOF
[global]
listen = ["$HOST"]
minimum_strength = "$LEVEL"
default_action = "bypass"
control_socket = "$SOCK"
key_log = "$KEYS"

[[rule]]
name = "$RULE"
remote = ["$SW"]
action = "require"
keying = "ike"
pfs = false
auto = "none"
authentication = "$1"
certificate = "$P/$2.chain.pem"
private_key = "$P/$2.key"
trusted_cas = ["$P/caA.pem"]
remote_id = "$3"
EOF
  [ "$1" = certificate-then-psk ] && echo "psk = \"$PSK\""
  return 0
}
# hs_restart AUTH CERT_NAME REMOTE_DN: a fresh hostsecd with that rule; fails with HS_ERR
hs_restart() {
  local cfg=$TMP/hostsecd-$CASE.toml
  hs_stop
  hs_config "$@" > "$cfg"
  hs_launch "$LAB_NETNS" "$cfg" "$START_TIMEOUT" || { cp "$cfg" "$R/"; return 1; }
}

# ---------------------------------------------------------------- strongSwan side
# ss_setup TYPE FRAGMENTATION CA_FILE...: the guest's credentials (its certificate for TYPE, its key, the given CAs
# as the only trusted ones; everything loaded before is cleared) and two connections to hostsec with the case's
# proposals: CASE (auth pubkey) and CASE-psk (auth psk)
ss_setup() {
  local type=$1 frag=$2 c d=$LAB_RUN/$GUEST/swanctl
  shift 2
  rm -rf "$d"; mkdir -p "$d/x509" "$d/x509ca" "$d/private"
  cp "$P/sw-$type.pem" "$d/x509/"; cp "$P/sw-$type.key" "$d/private/"
  for c in "$@"; do cp "$P/$c.pem" "$d/x509ca/"; done
  {
    echo "connections {"
    cat <<EOC
  $CASE {
    version = 1
    aggressive = no
    local_addrs = $SW
    remote_addrs = $HOST
    proposals = $IKE
    encap = no
    dpd_delay = 0
    fragmentation = $frag
    local {
      auth = pubkey
      certs = sw-$type.pem
      id = "$(pki_dn "sw.$type")"
    }
    remote {
      auth = pubkey
      id = "$(pki_dn "hostsec.$CERT_TYPE")"
    }
    children {
      $CASE {
        mode = transport
        esp_proposals = $ESP
        start_action = none
      }
    }
  }
EOC
    lab_swanctl_conn "$CASE-psk" "$SW" "$HOST" "$IKE" "$ESP" | sed 's/^    children {/    fragmentation = '"$frag"'\n    children {/'
    echo "}"
    lab_swanctl_secrets "$PSK"
  } > "$TMP/swanctl-$CASE.conf"
  lab_gexec "$GUEST" 'rm -rf /etc/swanctl/x509/* /etc/swanctl/x509ca/* /etc/swanctl/private/*' 20 >/dev/null
  lab_ss_load "$GUEST" "$TMP/swanctl-$CASE.conf" || return 1
  # the credentials of earlier cases stay in charon's memory until cleared
  lab_gexec "$GUEST" 'swanctl --load-creds --clear 2>&1' 60 > "$TMP/creds.log" ||
    { echo "swanctl --load-creds --clear failed: $(cat "$TMP/creds.log")" >&2; return 1; }
}
ss_flush() {
  lab_gexec "$GUEST" 'for i in $(swanctl --list-sas 2>/dev/null | sed -n "s/^\([^ ]*\): #.*/\1/p" | sort -u); do
      swanctl --terminate --ike "$i" --force --timeout 3 >/dev/null 2>&1; done; ip xfrm state flush; ip xfrm policy flush' 40 >/dev/null
}
ss_child_installed() { # conn
  lab_ss_snapshot "$GUEST" "$CASE" >/dev/null
  [ "$(lab_swanctl_sa "$1" < "$LAB_RUN/$GUEST/cases/$CASE/list-sas.txt" | lab_kv child_state)" = INSTALLED ]
}

# ---------------------------------------------------------------- small path
small_path() { # on|off
  local m=1500
  [ "$1" = on ] && m=$SMALL_MTU
  ip -n "$LAB_NETNS" link set br0 mtu "$m"; ip -n "$LAB_NETNS" link set "t-$GUEST" mtu "$m"
  lab_gexec "$GUEST" "ip link set eth0 mtu $m; ip route flush cache" 20 >/dev/null
  if [ "$1" = on ]; then
    ip netns exec "$LAB_NETNS" nft -f - <<'NFT'
table bridge labfrag {
  counter c_ipfrag {}
  chain pre { type filter hook prerouting priority -10; policy accept; ip frag-off & 0x3fff != 0 counter name "c_ipfrag" drop; }
  chain out { type filter hook output priority -10; policy accept; ip frag-off & 0x3fff != 0 counter name "c_ipfrag" drop; }
}
NFT
  else
    ip netns exec "$LAB_NETNS" nft delete table bridge labfrag 2>/dev/null || true
  fi
}
ipfrag_drops() { ip netns exec "$LAB_NETNS" nft list counter bridge labfrag c_ipfrag 2>/dev/null | awk '/packets/ { print $2; exit }'; }

# ---------------------------------------------------------------- results
PASS=0 FAIL=0
result() { # check PASS|FAIL text
  if [ "$2" = PASS ]; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); fi
  say "$(printf '%s %-15s %-10s %s' "$2" "$CASE" "$1" "$3")"
  printf '%s\t%s\t%s\t%s\n' "$CASE" "$1" "$2" "$3" >> "$R/results.tsv"
}
ok() { if [ "$2" = 0 ]; then result "$1" PASS "$3"; else result "$1" FAIL "$3"; fi; }

# ---------------------------------------------------------------- one case
# run_case NAME TYPE ROLE AUTH SS_CONN [FRAG] [GUEST_CAS] [EXPECT]
#   TYPE: p256 | p384 | rsa (certificates hs-TYPE and sw-TYPE); ROLE: hs | ss; AUTH: hostsec's authentication;
#   SS_CONN: the guest's connection that is used (CASE or CASE-psk); FRAG: yes | no (strongSwan's setting; "no"
#   also puts the small path up for frag-control); GUEST_CAS: the CAs the guest trusts (default caA);
#   EXPECT: up (default) | down
run_case() {
  CASE=$1 CERT_TYPE=$2
  local role=$3 auth=$4 conn=$5 frag=${6:-yes} cas=${7:-caA} expect=${8:-up} d=$R/$1 t0 rc out j mm want_auth hm cm v \
        small=no cls x rid
  [ -n "$ONLY" ] && ! [[ $CASE =~ $ONLY ]] && return 0
  [[ $CASE == frag* ]] && small=yes
  [ "$conn" = psk ] && conn=$CASE-psk || conn=$CASE
  case $CERT_TYPE in
    p256) IKE=aes128-sha256-ecp256 ESP=aes128gcm16 want_auth=ecdsa-p256;;
    p384) IKE=aes256-sha384-ecp384 ESP=aes256gcm16 want_auth=ecdsa-p384;;
    rsa) IKE=aes256-sha256-modp2048 ESP=aes256-sha256 want_auth=rsa;;
  esac
  # MTU 576: hostsec's first message must fit unfragmented (IKE fragmentation starts once the peer's vendor ID
  # is known); with its vendor IDs it is about 1.5 KB at "standard" (36 transforms), 0.6 KB at "high" (12) and
  # 0.2 KB at "highest" (1)
  LEVEL=standard
  if [ $small = yes ]; then LEVEL=highest IKE=aes256-sha384-ecp384 ESP=aes256gcm16; fi
  [ "$conn" = "$CASE-psk" ] && want_auth=psk
  [[ $auth == *psk && $CASE == fallback* ]] && want_auth=psk
  mkdir -p "$d"; t0=$(lab_now_ms)
  say "-- $CASE: $CERT_TYPE, $role initiates, hostsec $auth, strongSwan $( [ "$conn" = "$CASE" ] && echo certificate || echo psk), trusts ${cas//,/ }$( [ $small = yes ] && echo ", MTU $SMALL_MTU without IP fragments, strongSwan fragmentation = $frag")"
  # with certificate-then-psk the peer may authenticate with the PSK and its address as ID: any identity
  rid="dn:$(pki_dn "sw.$CERT_TYPE")"; [ "$auth" = certificate-then-psk ] && rid=any
  hs_restart "$auth" "hs-$CERT_TYPE" "$rid" || { result setup FAIL "$HS_ERR"; return; }
  # shellcheck disable=SC2046
  ss_setup "$CERT_TYPE" "$frag" ${cas//,/ } 2> "$TMP/ss.err" || { result setup FAIL "strongSwan: $(cat "$TMP/ss.err")"; return; }
  [ $small = yes ] && small_path on
  # the fallback ends on the guest's PSK connection
  [[ $CASE == fallback* ]] && conn=$CASE-psk
  hm=$(hs_log_mark); cm=$(lab_charon_log_mark "$GUEST")
  lab_capture_start "$d/wire.pcap" "host $SW and host $HOST" || { result setup FAIL "tcpdump did not start"; small_path off; return; }
  mkdir -p "$LAB_RUN/$GUEST/cases/$CASE"
  case $role in
    hs) out=$(timeout 150 "$HOSTSEC" --socket "$SOCK" initiate "$RULE" 2>&1); rc=$?; out="hostsec initiate: exit $rc: $(tail -n 1 <<< "$out")"
        [ $rc = 0 ] && { lab_wait_until "$SA_APPEAR_TIMEOUT" ss_child_installed "$conn" || { rc=1; out="$out; strongSwan has no INSTALLED CHILD_SA"; }; };;
    ss) out=$(lab_ss_initiate "$GUEST" "$conn" 25); rc=$?; out="swanctl --initiate: $(tail -n 1 <<< "$out")";;
  esac
  lab_ss_snapshot "$GUEST" "$CASE" >/dev/null; cp "$LAB_RUN/$GUEST/cases/$CASE/"* "$d/" 2>/dev/null
  hs_log_since "$hm" > "$d/hostsecd.log"; lab_charon_log_since "$GUEST" "$cm" > "$d/charon.log"
  if [ "$expect" = down ]; then
    lab_capture_stop
    x=$(ipfrag_drops); small_path off
    [ $rc != 0 ] && ! grep -q "CHILD_SA $conn{[0-9]*} established" "$d/charon.log"; ok no-sa $? "$out"
    [ "${x:-0}" -gt 0 ]; ok ip-frags $? "IP fragments dropped on the path: ${x:-0}"
    [ "$(tshark -r "$d/wire.pcap" -n -Y 'isakmp.nextpayload == 132' 2>/dev/null | wc -l)" = 0 ]
    ok no-ikefrag $? "no IKE fragment on the wire (neither side announced fragmentation to the other)"
    ss_flush
    return
  fi
  ok sa $rc "$out in $(lab_ms_fmt $(( $(lab_now_ms) - t0 )))"
  if [ $rc != 0 ]; then
    lab_capture_stop; [ $small = yes ] && small_path off; ss_flush
    info "hostsecd: $(grep -E 'WARN|ERROR' "$d/hostsecd.log" | tail -n 3 | tr '\n' ' ')"
    info "charon: $(grep -iE 'fail|error|no trusted|constraint|invalid' "$d/charon.log" | tail -n 3 | tr '\n' ' ')"
    return
  fi
  v=$(lab_check_ss_sa "$d/list-sas.txt" "$conn" "$IKE" "$ESP"); ok ss-view $? "${v:-strongSwan SA}"
  # hostsec's view: the Main Mode SA with the peer's certificate
  j=$(hs_cli --json sas 2>&1); echo "$j" > "$d/hostsec-sas.json"
  mm=$(jq -c --arg p "$SW" '[.main_mode[] | select(.peer == $p or (.peer | startswith($p + ":")))] | last // empty' <<< "$j" 2>/dev/null)
  v=$(jq -r '.auth // "-"' <<< "${mm:-{\}}")
  if [ "$want_auth" = psk ]; then
    [ "$v" = psk ] && [ "$(jq -r '.peer_cert_subject // "none"' <<< "$mm")" = none ]
    ok hs-view $? "hostsec Main Mode auth=$v, no peer certificate"
  else
    x=$(jq -r '"\(.peer_cert_subject // "-") | \(.peer_cert_issuer // "-")"' <<< "${mm:-{\}}")
    [ "$v" = "$want_auth" ] && [[ $x == *"CN=sw.$CERT_TYPE"*"|"*"CN=Lab CA A"* ]]
    ok hs-view $? "hostsec Main Mode auth=$v, peer certificate: $x"
  fi
  [ "$(jq '[.quick_mode[] | select(.mode == "transport")] | length' <<< "$j" 2>/dev/null)" -ge 1 ]
  ok hs-qm $? "hostsec Quick Mode SAs: $(jq -c '[.quick_mode[] | {spi_in, spi_out, mode}]' <<< "$j" 2>/dev/null | head -c 200)"
  # strongSwan authenticated hostsec with the expected method and identity
  case $want_auth in
    psk) x="IKE_SA $conn\[[0-9]+\] established between $SW\[$SW\]\.\.\.$HOST\[$HOST\]";;
    rsa) x="authentication of '$(pki_dn "hostsec.$CERT_TYPE")' with RSA.* successful";;
    *) x="authentication of '$(pki_dn "hostsec.$CERT_TYPE")' with ECDSA.* successful";;
  esac
  grep -qE "$x" "$d/charon.log"
  ok ss-auth $? "charon: $(grep -oE "authentication of '[^']*' with [^ ]*( [^ ]*)? successful|IKE_SA [^ ]* established between .*" "$d/charon.log" | head -n 1)"
  # traffic, then the wire
  out=$(lab_ep_ping guest:$GUEST "$HOST" 3); rc=$?; x=$(lab_ep_ping host "$SW" 3); ok ping $(( rc + $? )) "guest->hostsec $out, hostsec->guest $x (tx rx)"
  lab_capture_stop
  cls=$(lab_pcap_classify "$d/wire.pcap" "$SW" "$HOST"); echo "$cls" > "$d/wire.txt"
  [ "$(kv esp "$cls")" -gt 0 ] && [ $(( $(kv icmp_echo "$cls") + $(kv tcp "$cls") + $(kv udp "$cls") + $(kv icmp_other "$cls") )) = 0 ]
  ok wire $? "$cls"
  if [ $small = yes ]; then
    local fh fg big
    fh=$(tshark -r "$d/wire.pcap" -n -Y "ip.src == $HOST && isakmp.nextpayload == 132" 2>/dev/null | wc -l)
    fg=$(tshark -r "$d/wire.pcap" -n -Y "ip.src == $SW && isakmp.nextpayload == 132" 2>/dev/null | wc -l)
    big=$(tshark -r "$d/wire.pcap" -n -Y "ip.len > $SMALL_MTU || ip.flags.mf == 1 || ip.frag_offset > 0" 2>/dev/null | wc -l)
    [ "$fh" -ge 2 ] && [ "$fg" -ge 2 ] && [ "$big" = 0 ]
    ok ike-frags $? "IKE fragments on the wire: hostsec $fh, strongSwan $fg; datagrams over $SMALL_MTU bytes or IP fragments: $big"
    x=$(hs_cli --json stats 2>/dev/null | jq -r '.ike | "fragmented_sent=\(.fragmented_sent) fragments_received=\(.fragments_received) reassembled=\(.reassembled) dropped_fragments=\(.dropped_fragments)"' 2>/dev/null)
    [ "$(kv fragmented_sent "$x")" -ge 1 ] && [ "$(kv reassembled "$x")" -ge 1 ] && [ "$(kv dropped_fragments "$x")" = 0 ]
    ok hs-frag-stats $? "hostsec stats: $x"
    small_path off
  fi
  if [[ $CASE == fallback* ]]; then
    grep -q 'certificate authentication did not succeed' "$d/hostsecd.log"
    ok fallback $? "hostsecd: $(grep -o 'certificate authentication did not succeed ([^)]*)' "$d/hostsecd.log" | head -n 1)"
    grep -qE "no trusted .* public key found|constraint check failed|not trusted|no issuer certificate found" "$d/charon.log"
    ok ss-refused $? "charon: $(grep -oE "no trusted .* public key found for '[^']*'|constraint check failed[^,]*|no issuer certificate found for \"[^\"]*\"" "$d/charon.log" | head -n 1)"
  fi
  if [[ $CASE == either* ]]; then
    grep -qE "Main Mode established as responder .*, auth $want_auth," "$d/hostsecd.log"
    ok hs-logged $? "hostsecd: $(grep -oE "Main Mode established as responder .*, auth [a-z0-9-]*" "$d/hostsecd.log" | head -n 1 | head -c 250)"
  fi
  ss_flush
}
kv() { tr ' ' '\n' <<< "$2" | awk -F= -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }

# ---------------------------------------------------------------- lab up
say "== hostsec <-> strongSwan certificate authentication $(date -u +%FT%TZ)"
info "hostsec binaries: $BIN_DIR ($(stat -c %y "$HOSTSECD" | cut -d. -f1)); $(openssl version)"
make_pki || { echo "ERROR: could not make the test PKI" >&2; exit 2; }
NET_UP=yes
lab_net_up || { echo "ERROR: could not set up the lab network" >&2; exit 2; }
mkdir -p "$TMP/boot"
{ echo "connections {"; echo "}"; lab_swanctl_secrets "$PSK"; } > "$TMP/boot/swanctl.conf"
# IKE fragments of at most 576 bytes (IP datagram) from strongSwan as well
printf 'charon {\n  fragment_size = %s\n}\n' "$SMALL_MTU" > "$TMP/boot/strongswan.conf"
GUEST_UP=yes
boot=$(lab_boot_guest -n "$GUEST" -a "$SW/24" -c "$TMP/boot/swanctl.conf" -c "$TMP/boot/strongswan.conf" 2>&1) ||
  { echo "ERROR: guest boot failed: $boot" >&2; exit 2; }
info "$boot"
lab_ep_ping host "$SW" 1 >/dev/null

#        name            type role auth                 ss conn frag  guest CAs  expect
run_case p256-hs         p256 hs   certificate          cert
run_case p256-ss         p256 ss   certificate          cert
run_case p384-hs         p384 hs   certificate          cert
run_case p384-ss         p384 ss   certificate          cert
run_case rsa-hs          rsa  hs   certificate          cert
run_case rsa-ss          rsa  ss   certificate          cert
run_case frag-hs         rsa  hs   certificate          cert    yes
run_case frag-ss         rsa  ss   certificate          cert    yes
run_case frag-control    rsa  ss   certificate          cert    no    caA        down
run_case fallback-hs     p256 hs   certificate-then-psk cert    yes   caB
run_case either-ss-cert  p256 ss   certificate-then-psk cert
run_case either-ss-psk   p256 ss   certificate-then-psk psk

say "== $PASS passed, $FAIL failed, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START ))) -- $( [ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ] && echo PASS || echo FAIL) (results: $R)"
[ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]
