#!/bin/bash
# End-to-end test of certificate authentication between two hostsecd in network namespaces (198.51.100.1 and
# .2, real UDP 500, the ESP datapath on), with a test PKI that this script makes with the openssl CLI: a root CA
# (ECDSA P-384), an intermediate CA, another root that nobody trusts, an expired CA, and host certificates with
# ECDSA P-256, ECDSA P-384 and RSA-3072 keys (key files mode 0600).
# Cases: (a) each key type: `hostsec initiate` succeeds, `hostsec sas` shows the auth method and the peer's
# certificate, `hostsec certs` shows the credential and a valid chain, ping goes over ESP; (b) a chain through the
# intermediate; (c) an expired, a revoked and an unknown-CA peer certificate are refused with the reason in the
# responder's log and no SA; (d) certificate-then-psk where the responder does not trust the initiator's CA:
# the initiator logs why and falls back to PSK; (e) `hostsec certs` reports an expired host certificate and an
# expired trusted CA, an invalid chain and exit 1; (f) a reload with a renewed certificate shows in
# `hostsec certs` and negotiates. Also: no certificate rule, and an unreachable daemon (exit 3).
# Needs root, the release binaries (cargo build --release -p hostsecd -p hostsec) and openssl. Prints PASS/FAIL
# per check; exit 0 only if all passed. Removes the namespaces, processes and files it made, also on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-e2e-certs.XXXXXX)
NA=hscert-a NB=hscert-b
A=198.51.100.1 B=198.51.100.2
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  ip netns del $NA 2>/dev/null; ip netns del $NB 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

for p in openssl:openssl iputils-ping:ping nftables:nft; do
  command -v "${p#*:}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${p%%:*}"; }
done

# --- the test PKI (lib.sh) ----------------------------------------------------------------------------------------
pki_init "$W/pki"
t0=$(date +%s)
pki_root root "Root CA" p384
pki_root other "Other CA" p256
pki_root oldca "Old CA" p256 20200101000000Z 20210101000000Z
pki_sub inter "Intermediate CA" p256 root
for kt in p256 p384 rsa3072; do
  pki_host a-$kt a.example $A $kt root
  pki_host b-$kt b.example $B $kt root
done
pki_host a-int a.example $A p256 inter; cat "$P/inter.pem" >> "$P/a-int.pem"
pki_host b-int b.example $B p256 inter; cat "$P/inter.pem" >> "$P/b-int.pem"
pki_host a-expired a.example $A p256 root 20200101000000Z 20210101000000Z
pki_host a-other a.example $A p256 other
pki_host a-revoked a.example $A p256 root
pki_host a-renewed a.example $A p256 root "$PKI_NOW" "$(date -u -d '+400 days' +%Y%m%d%H%M%SZ)"
ossl ca -config "$P/ca.cnf" -cert "$P/root.pem" -keyfile "$P/root.key" -revoke "$P/a-revoked.pem"
ossl ca -config "$P/ca.cnf" -cert "$P/root.pem" -keyfile "$P/root.key" -gencrl -out "$P/root.crl"
keys_ok=yes
for k in "$P"/*.key; do [ "$(stat -c %a "$k")" = 600 ] || keys_ok=no; done
check "test PKI made with openssl in $(( $(date +%s) - t0 ))s (CA, intermediate, 3 key types), keys mode 0600" \
  test "$keys_ok" = yes -a -s "$P/root.crl"

# --- two hosts --------------------------------------------------------------------------------------------------
ip netns add $NA; ip netns add $NB
ip link add hsc-a netns $NA type veth peer name hsc-b netns $NB
ip -n $NA addr add $A/24 dev hsc-a; ip -n $NB addr add $B/24 dev hsc-b
for n in $NA $NB; do ip -n $n link set lo up; done
ip -n $NA link set hsc-a up; ip -n $NB link set hsc-b up

PSK=certs-e2e-fallback-psk-0123456789
DN_A="C=XX, O=hostsec e2e, CN=a.example" DN_B="C=XX, O=hostsec e2e, CN=b.example"
DN_ROOT="C=XX, O=hostsec e2e, CN=Root CA" DN_INTER="C=XX, O=hostsec e2e, CN=Intermediate CA"
cas() { local l=(); for c in "$@"; do l+=("\"$P/$c\""); done; local IFS=,; echo "${l[*]}"; }
# conf NAME ME PEER AUTH CERT CAS [EXTRA]: one rule "peer" towards PEER; CERT is a file under $P (NAME.key is
# its key), CAS a list made by `cas`.
conf() {
  cat > "$W/$1.toml" <<CONF
[global]
listen = ["$2"]
control_socket = "$W/$1.sock"
[[rule]]
name = "peer"
remote = ["$3"]
auto = "none"
authentication = "$4"
certificate = "$P/$5.pem"
private_key = "$P/$5.key"
trusted_cas = [$6]
${7:-}
CONF
}
psk_conf() { printf '[global]\nlisten = ["%s"]\ncontrol_socket = "%s"\n[[rule]]\nname = "peer"\nremote = ["%s"]\nauto = "none"\npsk = "%s"\n' \
  "$2" "$W/$1.sock" "$3" "$PSK" > "$W/$1.toml"; }
# both_reload WHAT: reload both daemons with the configs just written and start from no SA.
both_reload() {
  local ok=yes
  for s in a b; do quiet hs $s reload || ok=no; quiet hs $s terminate peer || ok=no; done
  sleep 0.3
  check "$1: both daemons reload" test $ok = yes
}
sas_json() { hs "$1" sas --json; }
established() { sas_json "$1" | jq_ 'len([m for m in d["main_mode"] if m["state"] == "established"]) + len(d["quick_mode"])'; }
mark() { wc -l < "$W/$1.log"; } # log position, to look only at what came after
log_since() { tail -n +"$(( $2 + 1 ))" "$W/$1.log"; }

# --- no certificate rule; unreachable daemon --------------------------------------------------------------------
psk_conf a $A $B; psk_conf b $B $A
check "hostsecd a starts" start a $NA
check "hostsecd b starts" start b $NB
out=$(hs a certs); rc=$?
check "certs without certificate rules: exit 0" test $rc = 0
check "and says so: $out" grep -qx "no certificates: no rule uses certificate authentication" <<<"$out"
check "certs --json: no credentials, all_valid" test "$(hs a certs --json | jq_ 'len(d["credentials"]), d["all_valid"]')" = "0 True"
"$BIN/hostsec" --socket "$W/nothing.sock" certs >/dev/null 2>&1; rc=$?
check "certs with no daemon: exit 3" test $rc = 3

# --- (a) each key type ------------------------------------------------------------------------------------------
for kt in p256 p384 rsa3072; do
  case $kt in p256) auth=ecdsa-p256 key="ECDSA P-256";; p384) auth=ecdsa-p384 key="ECDSA P-384";; rsa3072) auth=rsa key="RSA-3072";; esac
  conf a $A $B certificate a-$kt "$(cas root.pem)" "crls = [\"$P/root.crl\"]"
  conf b $B $A certificate b-$kt "$(cas root.pem)"
  both_reload "($kt)"
  hs a initiate peer >"$W/init.out" 2>&1; rc=$?
  check "($kt) initiate exits 0: $(head -c 160 "$W/init.out")" test $rc = 0
  sas_json a > "$W/a.json"; sas_json b > "$W/b.json"
  check "($kt) a's Main Mode: auth $auth, peer $DN_B issued by Root CA" \
    test "$(jq_ '"|".join(str(d["main_mode"][0][k]) for k in ["state", "auth", "peer_cert_subject", "peer_cert_issuer"])' < "$W/a.json")" = "established|$auth|$DN_B|$DN_ROOT"
  check "($kt) b's Main Mode: auth $auth, peer $DN_A" \
    test "$(jq_ '"|".join(str(d["main_mode"][0][k]) for k in ["state", "auth", "peer_cert_subject"])' < "$W/b.json")" = "established|$auth|$DN_A"
  check "($kt) a Quick Mode SA pair on both sides" test "$(jq_ 'len(d["quick_mode"])' < "$W/a.json")$(jq_ 'len(d["quick_mode"])' < "$W/b.json")" = 11
  hs a sas > "$W/sas.txt"
  check "($kt) hostsec sas shows the method and the peer's certificate" \
    bash -c "grep -q 'auth $auth, peer dn:$DN_B' '$W/sas.txt' && grep -qF \"peer certificate '$DN_B', issued by '$DN_ROOT'\" '$W/sas.txt'"
  hs a certs > "$W/certs.txt"; rc=$?
  check "($kt) hostsec certs exits 0" test $rc = 0
  check "($kt) certs shows the credential: subject, key, expiry, valid chain, rule" bash -c "
    grep -qx 'credential of rule peer:' '$W/certs.txt' && grep -qx '  certificate   $DN_A' '$W/certs.txt' &&
    grep -qx '    key         $key' '$W/certs.txt' && grep -q '    validity    .*: expires in 36[45][0-9] days' '$W/certs.txt' &&
    grep -qx '    chain       valid: $DN_A -> $DN_ROOT' '$W/certs.txt'"
  check "($kt) certs shows the trusted CA and the CRL (1 revoked)" bash -c "
    grep -q '  trusted CA    $DN_ROOT (ECDSA P-384): expires in' '$W/certs.txt' &&
    grep -q '  CRL           issued by $DN_ROOT: 1 revoked' '$W/certs.txt'"
  check "($kt) certs --json: key, chain_valid, all_valid" \
    test "$(hs a certs --json | jq_ 'd["credentials"][0]["key"], d["credentials"][0]["chain_valid"], d["all_valid"], d["credentials"][0]["certificate"]["file"]')" = "$key True True $P/a-$kt.pem"
  if [ $kt = p256 ]; then
    check "($kt) ping over the certificate-authenticated ESP SA" quiet ip netns exec $NA ping -c 3 -W 5 $B
    check "($kt) and the SA counted it" test "$(sas_json a | jq_ 'd["quick_mode"][0]["packets_out"] >= 3')" = True
  fi
done

# --- (b) a chain through an intermediate CA -------------------------------------------------------------------
conf a $A $B certificate a-int "$(cas root.pem)"
conf b $B $A certificate b-int "$(cas root.pem)"
both_reload "(intermediate)"
hs a initiate peer >"$W/init.out" 2>&1; rc=$?
check "(intermediate) initiate exits 0: $(head -c 160 "$W/init.out")" test $rc = 0
check "(intermediate) a sees b's certificate issued by the intermediate" \
  test "$(sas_json a | jq_ 'd["main_mode"][0]["peer_cert_subject"] + "|" + d["main_mode"][0]["peer_cert_issuer"]')" = "$DN_B|$DN_INTER"
check "(intermediate) certs: the path host -> intermediate -> root, the intermediate listed" \
  test "$(hs a certs --json | jq_ '" -> ".join(d["credentials"][0]["chain_path"]) + "|" + d["credentials"][0]["intermediates"][0]["subject"]')" = "$DN_A -> $DN_INTER -> $DN_ROOT|$DN_INTER"
hs a certs > "$W/certs.txt"
check "(intermediate) certs prints the intermediate" grep -q "^  intermediate  $DN_INTER (issued by $DN_ROOT, ECDSA P-256): expires in" "$W/certs.txt"

# --- (c) refused peers: expired, revoked, unknown CA -------------------------------------------------------------
refused() { # what a-cert words
  conf a $A $B certificate "$2" "$(cas root.pem oldca.pem)"
  conf b $B $A certificate b-p256 "$(cas root.pem)" "crls = [\"$P/root.crl\"]"
  both_reload "($1)"
  local m; m=$(mark b)
  hs a initiate peer >"$W/init.out" 2>&1; rc=$?
  check "($1) initiate fails with exit 1: $(head -c 200 "$W/init.out")" test $rc = 1
  check "($1) b's log says why: $(log_since b "$m" | grep -m1 -o "Main Mode refused.*\|Main Mode failed.*" | head -c 220)" \
    bash -c "tail -n +$((m + 1)) '$W/b.log' | grep -q \"$3\""
  check "($1) no SA on either side" test "$(established a)$(established b)" = 00
}
refused expired a-expired "certificate '$DN_A' expired on 2021-01-01"
# --- (e) hostsec certs with an expired host certificate and an expired trusted CA --------------------------------
hs a certs > "$W/certs.txt" 2>&1; rc=$?
check "(expired) hostsec certs exits 1 (documented: a chain that does not validate or an expired certificate)" test $rc = 1
check "(expired) certs shows the host certificate EXPIRED and the chain INVALID with the reason" bash -c "
  grep -q '    validity    .*: EXPIRED on 2021-01-01' '$W/certs.txt' &&
  grep -qx \"    chain       INVALID: certificate '$DN_A' expired on 2021-01-01 00:00:00 UTC\" '$W/certs.txt'"
check "(expired) certs shows the expired trusted CA" grep -q "^  trusted CA    C=XX, O=hostsec e2e, CN=Old CA (ECDSA P-256): EXPIRED on 2021-01-01" "$W/certs.txt"
check "(expired) certs says there is a problem" grep -q "^PROBLEM:" "$W/certs.txt"
hs a certs --json > "$W/certs.json"; rc=$?
check "(expired) certs --json exits 1 too: all_valid false, expired, chain_valid false" \
  test "$rc|$(jq_ 'd["all_valid"], d["credentials"][0]["certificate"]["expired"], d["credentials"][0]["chain_valid"], [c["expired"] for c in d["credentials"][0]["trusted_cas"]]' < "$W/certs.json")" = "1|False True False [False, True]"
refused revoked a-revoked "certificate '$DN_A' is revoked"
refused unknown-CA a-other "issued by 'C=XX, O=hostsec e2e, CN=Other CA', which is not a trusted CA"
hs a certs > "$W/certs.txt" 2>&1; rc=$?
check "(unknown-CA) a's own certs exits 1" test $rc = 1
check "(unknown-CA) and says its chain is INVALID against the rule's trusted CAs" grep -qF \
  "    chain       INVALID: certificate '$DN_A' is issued by 'C=XX, O=hostsec e2e, CN=Other CA', which is not among this rule's trusted CAs" "$W/certs.txt"

# --- (d) certificate-then-psk: the responder does not trust the initiator's CA ---------------------------------
conf a $A $B certificate-then-psk a-other "$(cas root.pem)" "psk = \"$PSK\""
conf b $B $A certificate-then-psk b-p256 "$(cas root.pem)" "psk = \"$PSK\""
both_reload "(fallback)"
ma=$(mark a) mb=$(mark b)
hs a initiate peer >"$W/init.out" 2>&1; rc=$?
check "(fallback) initiate exits 0: $(head -c 160 "$W/init.out")" test $rc = 0
check "(fallback) b refused a's certificate: $(log_since b "$mb" | grep -m1 -o 'Main Mode failed.*' | head -c 200)" \
  bash -c "tail -n +$((mb + 1)) '$W/b.log' | grep -q 'Other CA.*not a trusted CA'"
check "(fallback) a says why it falls back: $(log_since a "$ma" | grep -m1 -o 'certificate authentication did not succeed.*' | head -c 200)" \
  bash -c "tail -n +$((ma + 1)) '$W/a.log' | grep -q 'certificate authentication did not succeed (.*); starting a new Main Mode with the pre-shared key only'"
check "(fallback) the SA is up with PSK authentication" \
  test "$(sas_json a | jq_ '[(m["state"], m["auth"], m["peer_cert_subject"]) for m in d["main_mode"] if m["state"] == "established"], len(d["quick_mode"])')" = "[('established', 'psk', None)] 1"
hs a sas > "$W/sas.txt"
check "(fallback) hostsec sas shows auth psk" grep -q ", auth psk, " "$W/sas.txt"

# --- (f) reload with a renewed certificate ----------------------------------------------------------------------
cp "$P/a-p256.pem" "$P/a-now.pem"; cp "$P/a-p256.key" "$P/a-now.key"; chmod 600 "$P/a-now.key"
conf a $A $B certificate a-now "$(cas root.pem)"
conf b $B $A certificate b-p256 "$(cas root.pem)"
both_reload "(renewal)"
before=$(hs a certs --json | jq_ 'd["credentials"][0]["certificate"]["serial"]')
cp "$P/a-renewed.pem" "$P/a-now.pem"; cp "$P/a-renewed.key" "$P/a-now.key"
quiet hs a reload; rc=$?
after=$(hs a certs --json | jq_ 'd["credentials"][0]["certificate"]["serial"], d["credentials"][0]["certificate"]["days_left"]')
want=$(openssl x509 -in "$P/a-renewed.pem" -noout -serial | sed 's/serial=//; s/../&:/g; s/:$//' | tr 'A-F' 'a-f')
check "(renewal) reload exits 0 and certs shows the new certificate (serial $before -> $after, 400 days)" \
  test "$rc|$after" = "0|$want 399" -a "$before" != "$want"
hs a initiate peer >"$W/init.out" 2>&1; rc=$?
check "(renewal) and negotiates with it" \
  test "$rc|$(sas_json b | jq_ 'd["main_mode"][0]["peer_cert_subject"]')" = "0|$DN_A"

check "no panics in the logs" bash -c "! grep -qi panick '$W/a.log' '$W/b.log'"
echo "certs: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
