#!/usr/bin/env python3
"""Builds the seed corpus of the fuzz targets from the strongSwan known-answer vectors.

Writes fuzz/corpus/<target>/<name> (fuzz/corpus is not committed). The vectors are read from
crates/hostsec-proto/tests/vectors/*.json when the repository carries them, else from ../shared/vectors/*/vector.json;
pass other vector.json files as arguments to use those instead. Standard library only.

    python3 fuzz/seed_corpus.py
"""
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")

# Payload types (RFC 2408 section 3.1).
SA, ID, CERT, CR, NOTIFY, DELETE = 1, 5, 6, 7, 11, 12


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
    print("seed corpus: %d messages from %d vector files in %s" % (n, len(files), CORPUS))


if __name__ == "__main__":
    main()
