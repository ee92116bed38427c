# shellcheck shell=bash
# A throw-away test PKI made with the openssl CLI, for the certificate interop tests (source it).
#
#   pki_key TYPE OUT            private key, PKCS#8 PEM, mode 0600; TYPE = p256 | p384 | rsa2048 | rsa3072
#   pki_ca DIR NAME TYPE CN     self-signed root CA: DIR/NAME.pem, DIR/NAME.key (basicConstraints CA, keyCertSign)
#   pki_sub_ca DIR NAME TYPE CN ISSUER
#                               intermediate CA signed by DIR/ISSUER (pathlen 0)
#   pki_host DIR NAME TYPE CN ISSUER IP
#                               end entity signed by DIR/ISSUER: subject "C=XX, O=hostsec lab, CN=CN",
#                               subjectAltName IP, keyUsage digitalSignature; DIR/NAME.pem, DIR/NAME.key;
#                               DIR/NAME.chain.pem = the certificate followed by its issuer when that is an
#                               intermediate (what the host sends)
#   pki_dn CN                   the subject DN of a certificate made here, as hostsec and strongSwan write it
#
# Validity: 30 days from now (the QEMU guests take their clock from the host).
PKI_O="hostsec lab"

pki_dn() { printf 'C=XX, O=%s, CN=%s' "$PKI_O" "$1"; }

pki_key() {
  local t=$1 out=$2
  case $t in
    p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out" 2>/dev/null;;
    p384) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$out" 2>/dev/null;;
    rsa2048) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out" 2>/dev/null;;
    rsa3072) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$out" 2>/dev/null;;
    *) echo "pki_key: unknown key type $t" >&2; return 2;;
  esac || { echo "pki_key: openssl genpkey $t failed" >&2; return 1; }
  chmod 600 "$out"
}

# pki_sign DIR NAME ISSUER EXTFILE: sign DIR/NAME.csr with DIR/ISSUER into DIR/NAME.pem
pki_sign() {
  openssl x509 -req -in "$1/$2.csr" -CA "$1/$3.pem" -CAkey "$1/$3.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 30 -sha256 -extfile "$4" -out "$1/$2.pem" 2>"$1/$2.err" ||
    { echo "pki: signing $2 with $3 failed: $(cat "$1/$2.err")" >&2; return 1; }
  rm -f "$1/$2.csr" "$1/$2.err"
}

pki_ca() {
  local d=$1 n=$2
  pki_key "$3" "$d/$n.key" || return 1
  openssl req -x509 -new -key "$d/$n.key" -subj "/C=XX/O=$PKI_O/CN=$4" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$d/$n.pem" 2>/dev/null ||
    { echo "pki_ca: openssl req for $n failed" >&2; return 1; }
}

pki_sub_ca() {
  local d=$1 n=$2
  pki_key "$3" "$d/$n.key" || return 1
  openssl req -new -key "$d/$n.key" -subj "/C=XX/O=$PKI_O/CN=$4" -out "$d/$n.csr" 2>/dev/null || return 1
  printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" > "$d/$n.ext"
  pki_sign "$d" "$n" "$5" "$d/$n.ext"
}

pki_host() {
  local d=$1 n=$2 issuer=$5
  pki_key "$3" "$d/$n.key" || return 1
  openssl req -new -key "$d/$n.key" -subj "/C=XX/O=$PKI_O/CN=$4" -out "$d/$n.csr" 2>/dev/null || return 1
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "subjectAltName=IP:$6" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" > "$d/$n.ext"
  pki_sign "$d" "$n" "$issuer" "$d/$n.ext" || return 1
  cp "$d/$n.pem" "$d/$n.chain.pem"
  # an issuer that is not self-signed is an intermediate: send it after the host certificate
  if [ "$(openssl x509 -in "$d/$issuer.pem" -noout -subject -nameopt RFC2253)" != \
       "$(openssl x509 -in "$d/$issuer.pem" -noout -issuer -nameopt RFC2253 | sed 's/^issuer=/subject=/')" ]; then
    cat "$d/$issuer.pem" >> "$d/$n.chain.pem"
  fi
}
