# Helpers shared by the end-to-end scripts (sourced). A script sets BIN (binaries) and W (its work directory)
# before calling hs.
FAILS=0 PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "PASS $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }
# check WHAT CMD...: PASS when CMD succeeds. `!` cannot be passed as a command: use `not`.
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
quiet() { "$@" >/dev/null 2>&1; }
not() { ! "$@"; }
# hs NAME VERB...: the CLI against the daemon whose control socket is $W/NAME.sock.
hs() { local s=$1; shift; "$BIN/hostsec" --socket "$W/$s.sock" "$@"; }
# jq_ EXPR: a Python expression over the JSON on stdin (as `d`), printed.
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# two_hosts SWITCH A B [bridge|none]: namespaces A (198.51.100.1/24) and B (198.51.100.2/24), each with an eth0
# whose peer end (p1, p2) is in SWITCH, joined there by a bridge br0 (or left unjoined, up, for a wire to join).
two_hosts() {
  local sw=$1 join=${4:-bridge} i=0 h
  ip netns add "$sw"
  [ "$join" = bridge ] && { ip -n "$sw" link add br0 type bridge; ip -n "$sw" link set br0 up; }
  for h in "$2" "$3"; do
    i=$((i + 1))
    ip netns add "$h"
    ip link add eth0 netns "$h" type veth peer name p$i netns "$sw"
    if [ "$join" = bridge ]; then ip -n "$sw" link set p$i master br0 up; else ip -n "$sw" link set p$i up; fi
    ip -n "$h" link set lo up
    ip -n "$h" addr add 198.51.100.$i/24 dev eth0
    ip -n "$h" link set eth0 up
  done
}

# --- hostsecd ---------------------------------------------------------------------------------------------------
# start NAME NS [HOSTSECD OPTIONS...]: hostsecd with the config $W/NAME.toml in namespace NS, its log appended to
# $W/NAME.log; its PID goes to PIDS (for the cleanup) and PID_NAME. Returns 1 if its control socket $W/NAME.sock
# did not appear within 5 s.
start() {
  local n=$1 ns=$2; shift 2
  rm -f "$W/$n.sock"
  ip netns exec "$ns" "$BIN/hostsecd" --config "$W/$n.toml" --foreground "$@" 2>>"$W/$n.log" & PIDS+=($!)
  eval "PID_$n=$!"
  for _ in $(seq 50); do [ -S "$W/$n.sock" ] && return 0; sleep 0.1; done
  return 1
}
# stop NAME: SIGTERM to the hostsecd that `start NAME` started; waits for it and returns its exit status.
stop() { local pid; eval "pid=\$PID_$1"; kill -TERM "$pid"; wait "$pid" 2>/dev/null; }

# --- captures ---------------------------------------------------------------------------------------------------
# capture_start NS IFACE FILE [FILTER]: tcpdump in namespace NS on IFACE into FILE (pcap), returning once it
# listens (1 if it did not within 5 s); its PID is CAPTURE_PID. capture_stop: lets the last packets in, stops it.
capture_start() {
  ip netns exec "$1" tcpdump -i "$2" --immediate-mode -nn -s 0 -U -w "$3" ${4:+"$4"} >"$3.log" 2>&1 &
  CAPTURE_PID=$!; PIDS+=("$CAPTURE_PID")
  for _ in $(seq 50); do grep -qs 'listening on' "$3.log" && return 0; sleep 0.1; done
  return 1
}
capture_stop() { sleep 0.3; kill "$CAPTURE_PID" 2>/dev/null; wait "$CAPTURE_PID" 2>/dev/null; }
# pcount FILE FILTER: how many packets of the capture FILE match the tcpdump FILTER.
pcount() { tcpdump -r "$1" -nn "$2" 2>/dev/null | wc -l; }
# pcap_first FILE FILTER: the first packet of the capture FILE (Ethernet) that matches FILTER, as the hex of its
# IP packet (empty if none).
pcap_first() {
  tcpdump -r "$1" -nn -c 1 -w - "$2" 2>/dev/null | python3 -c '
import struct, sys
d = sys.stdin.buffer.read()
if len(d) > 40:
    # pcap: 24-byte global header; 16-byte record header (captured length at offset 8); Ethernet (14); IP
    n = struct.unpack_from("<I" if d[:4] == b"\xd4\xc3\xb2\xa1" else ">I", d, 24 + 8)[0]
    print(d[40 + 14 : 40 + n].hex())'
}

# raw_send NS DST [RATE]: sends the IPv4 packets given as hex lines on stdin, from namespace NS to DST, through a
# raw socket with hostsecd's mark (SO_MARK 0x4853, crates/hostsecd/src/host/mod.rs: around its TUN route and
# firewall, as its own IKE and ESP go); at most RATE a second if given.
raw_send() {
  ip netns exec "$1" python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, 36, 0x4853)  # SO_MARK
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 0
t0 = time.monotonic()
for i, line in enumerate(l for l in sys.stdin if l.strip()):
    s.sendto(bytes.fromhex(line.strip()), (sys.argv[1], 0))
    ahead = t0 + (i + 1) / rate - time.monotonic() if rate else 0
    if ahead > 0:
        time.sleep(ahead)' "$2" ${3:+"$3"}
}

# --- a test PKI made with the openssl CLI -----------------------------------------------------------------------
# pki_init DIR: a CA database and `openssl ca` config in DIR (sets P=DIR), PKI_NOW (yesterday) and PKI_END (in ten
# years), the default validity. `openssl ca` (not `x509 -req`) because it takes explicit start and end dates:
# expired certificates need dates in the past. Subjects are C=XX, O=hostsec e2e, CN=…, which hostsec prints as
# "C=XX, O=hostsec e2e, CN=…". Key files are mode 0600; openssl's output goes to DIR/openssl.log.
pki_init() {
  P=$1
  mkdir -p "$P/db"; : > "$P/db/index.txt"; echo 1000 > "$P/db/serial"; echo 01 > "$P/db/crlnumber"
  cat > "$P/ca.cnf" <<CNF
[ca]
default_ca = ca_default
[ca_default]
dir = $P/db
database = \$dir/index.txt
new_certs_dir = \$dir
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_crl_days = 30
policy = policy_any
unique_subject = no
preserve = yes
crl_extensions = ext_crl
[policy_any]
countryName = optional
organizationName = optional
commonName = supplied
[ext_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ext_crl]
authorityKeyIdentifier = keyid:always
CNF
  PKI_NOW=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
  PKI_END=$(date -u -d '+3650 days' +%Y%m%d%H%M%SZ)
}
# ossl ARGS...: openssl, its output to the PKI's log; on failure the script ends (exit 1) with the log's tail.
ossl() { openssl "$@" >>"$P/openssl.log" 2>&1 || { echo "openssl $1 failed:"; tail -5 "$P/openssl.log"; exit 1; }; }
# pki_key NAME p256|p384|rsa3072 CN: the key P/NAME.key (0600) and a request P/NAME.csr for CN.
pki_key() {
  case $2 in
    p256) ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$P/$1.key";;
    p384) ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$P/$1.key";;
    rsa3072) ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$P/$1.key";;
  esac
  chmod 600 "$P/$1.key"
  ossl req -new -key "$P/$1.key" -subj "/C=XX/O=hostsec e2e/CN=$3" -out "$P/$1.csr"
}
# pki_root NAME CN KEYTYPE [START END]: a self-signed CA P/NAME.pem.
pki_root() {
  pki_key "$1" "$3" "$2"
  ossl ca -batch -config "$P/ca.cnf" -selfsign -keyfile "$P/$1.key" -in "$P/$1.csr" -extensions ext_ca \
    -startdate "${4:-$PKI_NOW}" -enddate "${5:-$PKI_END}" -notext -out "$P/$1.pem"
}
# pki_sub NAME CN KEYTYPE ISSUER: an intermediate CA P/NAME.pem issued by the CA P/ISSUER.pem.
pki_sub() {
  pki_key "$1" "$3" "$2"
  ossl ca -batch -config "$P/ca.cnf" -cert "$P/$4.pem" -keyfile "$P/$4.key" -in "$P/$1.csr" -extensions ext_ca \
    -startdate "$PKI_NOW" -enddate "$PKI_END" -notext -out "$P/$1.pem"
}
# pki_host NAME CN IP KEYTYPE ISSUER [START END]: a host certificate P/NAME.pem (DNS:CN and IP:IP as
# subjectAltName, serverAuth and clientAuth) issued by the CA P/ISSUER.pem.
pki_host() {
  pki_key "$1" "$4" "$2"
  cat > "$P/$1.ext" <<EXT
[ext_host]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$2, IP:$3
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
  ossl ca -batch -config "$P/ca.cnf" -cert "$P/$5.pem" -keyfile "$P/$5.key" -in "$P/$1.csr" \
    -extfile "$P/$1.ext" -extensions ext_host -startdate "${6:-$PKI_NOW}" -enddate "${7:-$PKI_END}" -notext \
    -out "$P/$1.pem"
}
