#!/usr/bin/env python3
"""Builds the seed corpus of the fuzz targets from the strongSwan known-answer vectors and the test PKIs.

Writes fuzz/corpus/<target>/<name> (fuzz/corpus is not committed). The vectors are read from
crates/hostsec-proto/tests/vectors/*.json when the repository carries them, else from ../shared/vectors/*/vector.json;
pass other vector.json files as arguments to use those instead. The certificate targets are seeded from the vectors'
PKI (crates/hostsec-proto/tests/vectors/pki/) and the fuzz PKI (fuzz/fixtures/). Standard library only.

    python3 fuzz/seed_corpus.py
"""
import base64
import glob
import ipaddress
import json
import re
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")

# Payload types (RFC 2408 section 3.1).
SA, ID, CERT, CR, NOTIFY, DELETE = 1, 5, 6, 7, 11, 12
# ID types (RFC 2407 section 4.6.2.1).
ID_IPV4_ADDR, ID_FQDN, ID_IPV6_ADDR, ID_DER_ASN1_DN, ID_KEY_ID = 1, 2, 5, 9, 11

PKI = os.path.join(ROOT, "crates/hostsec-proto/tests/vectors/pki")
FIXTURES = os.path.join(HERE, "fixtures")
# The vectors' PKIs in the order of fuzz/src/fixtures.rs (VECTOR_PKIS): its chains are the fuzz host, then these
# hosts a and b in turn.
VECTOR_PKIS = ["06-cert-ecdsa-p256", "07-cert-ecdsa-p384", "08-cert-rsa2048"]


def vector_files():
    if len(sys.argv) > 1:
        return sys.argv[1:]
    repo = sorted(glob.glob(os.path.join(ROOT, "crates/hostsec-proto/tests/vectors/*.json")))
    if repo:
        return repo
    return sorted(glob.glob(os.path.join(ROOT, "../shared/vectors/*/vector.json")))


def chain(first, data):
    """(type, body) of each payload of a chain; stops at the end or at a malformed header."""
    out, kind, at = [], first, 0
    while kind and at + 4 <= len(data):
        nxt, length = data[at], int.from_bytes(data[at + 2:at + 4], "big")
        if length < 4 or at + length > len(data):
            break
        out.append((kind, data[at + 4:at + length]))
        kind, at = nxt, at + length
    return out


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pem_blocks(text):
    """(label, DER) of every PEM block of a file."""
    return [(m.group(1), base64.b64decode("".join(m.group(2).split())))
            for m in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", text, re.S)]


def der_item(data, at):
    """(start of contents, end) of the DER item at `at`."""
    length, at = data[at + 1], at + 2
    if length & 0x80:
        n = length & 0x7F
        length, at = int.from_bytes(data[at:at + n], "big"), at + n
    return at, at + length


def subject_der(cert):
    """The subject Name of a DER certificate: the sixth item of tbsCertificate when it has a version, else the fifth."""
    tbs, _ = der_item(cert, der_item(cert, 0)[0])
    at, item = tbs, 0
    skip = 5 if cert[tbs] == 0xA0 else 4
    while item < skip:
        at = der_item(cert, at)[1]
        item += 1
    return cert[at:der_item(cert, at)[1]]


def records(*parts):
    """Pieces as the certificate targets split them: [len: u16 BE][bytes] each."""
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


def id_body(kind, data):
    """An ID payload body: type, protocol 0 (any), port 0, data."""
    return bytes([kind, 0, 0, 0]) + data


def certificate_seeds():
    """Seeds of cert_parse, peer_id and chain_validate. Returns how many files it wrote."""
    n = 0

    def put(target, name, data):
        nonlocal n
        write(target, name, data)
        n += 1

    fixture = {name: open(os.path.join(FIXTURES, name + ".der"), "rb").read()
               for name in ("root", "inter", "host", "revoked", "root.crl", "inter.crl")}
    for name, der in fixture.items():
        put("cert_parse", "fuzz-" + name, der)
    host, inter = fixture["host"], fixture["inter"]
    chains = [(host, [inter])]
    for pki in VECTOR_PKIS:
        for f in sorted(glob.glob(os.path.join(PKI, pki, "*"))):
            if f.endswith("README"):
                continue
            text = open(f).read()
            label = "%s-%s" % (pki, os.path.basename(f))
            put("cert_parse", label, text.encode())
            for i, (_, der) in enumerate(pem_blocks(text)):
                put("cert_parse", "%s-der%d" % (label, i), der)
        for side in ("a", "b"):
            chains.append((pem_blocks(open(os.path.join(PKI, pki, side + ".pem")).read())[0][1], []))
    # A CA file of two certificates, as trusted_cas files often are.
    put("cert_parse", "two-cas", "".join(open(os.path.join(PKI, p, "ca.pem")).read() for p in VECTOR_PKIS[:2]).encode())

    # peer_id: mode 0 and an ID payload body; mode 1 and a DER Name, a zero byte, a DN text.
    subject = subject_der(host)
    ids = {
        "dn": id_body(ID_DER_ASN1_DN, subject),
        "fqdn": id_body(ID_FQDN, b"host.fuzz.example"),
        "fqdn-dot-case": id_body(ID_FQDN, b"HOST.fuzz.example."),
        "ipv4": id_body(ID_IPV4_ADDR, ipaddress.ip_address("192.0.2.1").packed),
        "ipv6": id_body(ID_IPV6_ADDR, ipaddress.ip_address("2001:db8::1").packed),
        "ipv4-other": id_body(ID_IPV4_ADDR, ipaddress.ip_address("192.0.2.2").packed),
        "key-id": id_body(ID_KEY_ID, b"\x01\x02\x03\x04"),
    }
    for cert, _ in chains[1:]:
        ids["dn-vector-%d" % len(ids)] = id_body(ID_DER_ASN1_DN, subject_der(cert))
    for name, body in ids.items():
        put("peer_id", name, b"\x00" + body)
    put("peer_id", "dn-text", b"\x01" + subject + b"\x00" + b"C=XX, O=hostsec fuzz, CN=host.fuzz.example")
    put("peer_id", "dn-text-spaces", b"\x01" + subject + b"\x00" + b"c = xx ,o=HOSTSEC FUZZ,cn=Host.Fuzz.Example")

    # chain_validate: the control byte's low bits are the mode (time 0, 2030-01-01).
    for i, (leaf, intermediates) in enumerate(chains):
        put("chain_validate", "pieces-%d" % i, b"\x00" + records(leaf, *intermediates))
        put("chain_validate", "edit-none-%d" % i, b"\x01" + bytes([i, 0]))
        # Overwrite the last byte of the signature: must be refused.
        last = (len(leaf) - 1) & 0x3FFF
        put("chain_validate", "edit-signature-%d" % i, b"\x01" + bytes([i, 0]) + last.to_bytes(2, "big") + b"\x00")
    put("chain_validate", "edit-intermediate", b"\x01\x00\x01" + (20).to_bytes(2, "big") + b"\x01")
    put("chain_validate", "intermediates", b"\x02" + records(inter))
    put("chain_validate", "intermediates-twice-and-root", b"\x02" + records(inter, fixture["root"], inter))
    put("chain_validate", "host-with-fuzz-intermediate", b"\x03" + records(host))
    put("chain_validate", "revoked", b"\x00" + records(fixture["revoked"], inter))
    put("chain_validate", "expired", bytes([0x00 | 2 << 2]) + records(host, inter))
    put("chain_validate", "not-yet-valid", bytes([0x00 | 1 << 2]) + records(host, inter))
    return n


def authip_seeds():
    """AuthIP messages built by hand from the [MS-AIPS] section 2.2 diagrams (no capture exists): clear MM #1 and
    #2, an encrypted QM, the DoS-cookie message, a fragment, and decrypted CRYPTO contents."""
    def msg(next_payload, exchange, flags, msgid, body, cky_r=bytes(8)):
        return (bytes.fromhex("1122334455667788") + cky_r + bytes([next_payload, 0x10, exchange, flags])
                + msgid.to_bytes(4, "big") + (28 + len(body)).to_bytes(4, "big") + body)
    cky_r = bytes.fromhex("99aabbccddeeff01")
    ms_nt5 = bytes.fromhex("1e2b516905991c7d7c96fcbfb587e461") + bytes([0, 0, 0, 9])
    mm1 = (bytes.fromhex("01000008" "00000000")                 # CRYPTO, clear, next SA
           + bytes.fromhex("8700000c" "0000000100000001")       # SA (opaque) -> Auth
           + bytes.fromhex("0a00000c" "0004000000030000")       # Auth: TLS, Anonymous -> Nonce
           + bytes.fromhex("0d000014") + bytes(range(16))       # Nonce -> VID
           + bytes.fromhex("00000018") + ms_nt5)                # VID
    write("authip_message", "mm1", msg(0x85, 0xF3, 0, 0, mm1))

    def record(op, data):
        return bytes([op]) + len(data).to_bytes(2, "big") + data
    # authip_endpoint: the same messages as records, as a peer's first message (op 0), as answers to our #1 (op
    # 1 writes our CKY-I), and with a clock jump between (op 3) to fire retransmissions and the DoS-cookie slice.
    write("authip_endpoint", "mm1-twice", record(0, msg(0x85, 0xF3, 0, 0, mm1)) + record(0, msg(0x85, 0xF3, 0, 0, mm1)))
    write("authip_endpoint", "answer-to-our-mm1", record(1, msg(0x85, 0xF3, 0, 0, mm1, cky_r)) + record(3, b"\x05"))
    name = "host/win.example.com".encode("utf-16-le")
    mm2 = (bytes.fromhex("86000010" "00000000") + bytes(range(8))
           + (4 + len(name)).to_bytes(4, "big") + name)
    write("authip_message", "mm2-gss-id", msg(0x85, 0xF3, 0, 0, mm2, cky_r))
    mm3 = bytes.fromhex("81000008" "00000001") + bytes.fromhex("0000000b" "00000000" "01" "6082")  # GSS-API, new exchange
    write("authip_message", "mm3-gss", msg(0x85, 0xF3, 0, 0, mm3, cky_r))
    qm = bytes.fromhex("00000018" "00000001") + bytes([0x5a] * 16) + bytes([0xc7] * 32) + bytes([0x1c] * 12)
    write("authip_message", "qm-sealed", msg(0x85, 0xF4, 1, 0x01020304, qm, cky_r))
    cookie = bytes.fromhex("00000014" "00000001" "0100" "9c55" "0102030405060708")
    write("authip_message", "dos-cookie", msg(0x0B, 0xF6, 0, 0, cookie))
    frag = bytes.fromhex("0000000b" "0007" "01" "01" "deadbf")
    write("authip_message", "fragment", msg(0x84, 0xF3, 0, 0, frag, cky_r))
    # Decrypted CRYPTO contents: NOTIFY_ACK, padding 1..14, Pad_Length, Next_Payload (Notify).
    ack = bytes.fromhex("00000010" "00000001" "0100" "9c56" "00000005")
    write("authip_message", "inner-ack", ack + bytes(range(1, 15)) + bytes([14, 0x0B]))
    acquire = (bytes.fromhex("05000014" "00000001" "0101" "9c58" "00000002" "00000002")
               + bytes.fromhex("0500000c" "01110000" "0a000001") + bytes.fromhex("0000000c" "01110000" "0a000002"))
    write("authip_message", "inner-acquire", acquire + bytes(range(1, 3)) + bytes([2, 0x0B]))


def main():
    files = vector_files()
    if not files:
        sys.exit("no vector.json found; pass paths as arguments")
    n = 0
    for path in files:
        v = json.load(open(path))
        tag = v.get("name") or os.path.basename(os.path.dirname(path))
        for m in v["messages"]:
            msg = bytes.fromhex(m["isakmp"])
            label = tag + "-" + m["label"]
            write("isakmp_message", label, msg)
            payloads = []
            if "plaintext" in m:
                # The decrypted message as if sent in the clear: E flag off, length without the padding.
                pad = len(bytes.fromhex(m["padding"]))
                plain = bytes.fromhex(m["plaintext"])
                plain = plain[:len(plain) - pad]
                hdr = bytearray(msg[:28])
                hdr[19] &= 0xFE
                hdr[24:28] = (28 + len(plain)).to_bytes(4, "big")
                write("isakmp_message", label + "-plain", bytes(hdr) + plain)
                payloads = chain(msg[16], plain)
            else:
                payloads = chain(msg[16], msg[28:])
            for i, (kind, body) in enumerate(payloads):
                name = "%s-%d" % (label, i)
                if kind == SA:
                    write("sa_payload", name, body)
                elif kind == ID:
                    write("id_payload", name, body)
                elif kind == NOTIFY:
                    write("notify_payload", name, body)
                elif kind in (CERT, CR):
                    write("cert_payloads", name, body)
            n += 1
        # The IKE responder target reads records [op][len16][bytes]: the exchange's messages from the initiator,
        # delivered as they are (op 0), so that the responder sees a real MM1 first.
        records = b"".join(b"\x00" + len(bytes.fromhex(m["isakmp"])).to_bytes(2, "big") + bytes.fromhex(m["isakmp"])
                           for m in v["messages"] if m["dir"].startswith("i"))
        write("ike_endpoint", tag, records)
    # No vector has these: delete payloads for ESP and ISAKMP SAs (RFC 2408 section 3.15) and NAT-OA bodies
    # (RFC 3947 section 5.2), built by hand.
    write("delete_payload", "esp-two-spis", bytes.fromhex("0000000103040002c12a9f010badf00d"))
    write("delete_payload", "isakmp", bytes.fromhex("00000001011000010011223344556677" "8899aabbccddeeff"))
    write("cert_payloads", "nat-oa-v4", bytes.fromhex("01000000c0a8010a"))
    write("cert_payloads", "nat-oa-v6", bytes.fromhex("05000000fd000000000000000000000000000005"))
    authip_seeds()
    print("seed corpus: %d messages from %d vector files in %s" % (n, len(files), CORPUS))
    print("seed corpus: %d certificate, key, identity and chain inputs" % certificate_seeds())


if __name__ == "__main__":
    main()
