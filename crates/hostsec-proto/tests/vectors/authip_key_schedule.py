#!/usr/bin/env python3
"""Expected values for the AuthIP key schedule unit tests (crates/hostsec-proto/src/authip/key_tests.rs).

Written from the [MS-AIPS] section 3.1.7.4 formulas and the readings in docs/authip.md ("Key schedule") with
Python's hashlib/hmac only, independently of the Rust code: run `python3 authip_key_schedule.py` and compare with
the hex pasted in key_tests.rs. It checks the Rust code's arithmetic, not the readings themselves (only a Windows
capture can do that).
"""
import hashlib
import hmac

H = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384}


def concat_kdf(h, z, other_info, n):
    out, counter = b"", 1
    while len(out) < n:
        out += H[h](counter.to_bytes(4, "big") + z + other_info).digest()
        counter += 1
    return out[:n]


AES_CRYPTO_ID = 7
CKY_I = bytes.fromhex("1122334455667788")
CKY_R = bytes.fromhex("99aabbccddeeff01")


def akdf(h, z, pub, priv, n):
    # OtherInfo = Crypto-ID (2 bytes BE) | CKY-I | CKY-R | SuppPubInfo | SuppPrivInfo, no length prefixes.
    return concat_kdf(h, z, AES_CRYPTO_ID.to_bytes(2, "big") + CKY_I + CKY_R + pub + priv, n)


def main_mode(h, crypt_len, z, ni, nr, gss):
    hl = H[h]().digest_size
    skeyid = akdf(h, z, ni + nr, gss, hl)
    d = akdf(h, z, ni + nr + b"\x00", skeyid, hl)
    a = akdf(h, z, ni + nr + b"\x01", d + skeyid, hl)
    e = akdf(h, z, ni + nr + b"\x02", a + skeyid, max(hl, crypt_len))
    return skeyid, d, a, e, e[:crypt_len]


def mm_chain(h, msgs):
    link = hashlib.sha256(msgs[0]).digest()
    link = hashlib.sha256(msgs[1] + link).digest()
    for m in msgs[2:]:
        link = H[h](m + link).digest()
    return link


def em_chain(h, msgs):
    link = H[h](msgs[0]).digest()
    for m in msgs[1:]:
        link = H[h](m + link).digest()
    return link


def prf(h, key, msg):
    return hmac.new(key, msg, H[h]).digest()


NI = bytes(range(0, 32))
NR = bytes(range(32, 64))
G_XY = bytes((0xA0 + i) % 256 for i in range(32))
MM = [b"AuthIP MM #1 payloads", b"AuthIP MM #2 payloads", b"AuthIP MM #3", b"AuthIP MM #4"]
EM = [b"EM #7", b"EM #8", b"EM #9", b"EM #10"]


def show(name, value):
    print(f"{name} = {value.hex()}")


print("# case 1: SHA-256, AES-128, DH (Anonymous: empty GSS-APIsecret)")
k = main_mode("sha256", 16, G_XY, NI, NR, b"")
for name, v in zip(["skeyid", "skeyid_d", "skeyid_a", "skeyid_e", "encryption_key"], k):
    show(name, v)
a1 = prf("sha256", k[0], mm_chain("sha256", MM) + b"\x01")
a2 = prf("sha256", k[0], mm_chain("sha256", MM) + b"\x02")
show("auth1", a1)
show("auth2", a2)

print("# case 2: SHA-1, AES-256, no DH (Z empty), GSS-APIsecret = bytes 100..115")
gss = bytes(range(100, 116))
k2 = main_mode("sha1", 32, b"", NI, NR, gss)
for name, v in zip(["skeyid", "skeyid_d", "skeyid_a", "skeyid_e", "encryption_key"], k2):
    show(name, v)
a1_2 = prf("sha1", k2[0], mm_chain("sha1", MM) + b"\x01")
a2_2 = prf("sha1", k2[0], mm_chain("sha1", MM) + b"\x02")
show("auth1", a1_2)
show("auth2", a2_2)
gss_em = b"em-secret" * 2
skeyid_em = akdf("sha1", b"", NI + NR, gss_em, 20)
show("skeyid_em", skeyid_em)
show("auth3", prf("sha1", skeyid_em, em_chain("sha1", EM) + a1_2))
show("auth4", prf("sha1", skeyid_em, em_chain("sha1", EM) + a2_2))

print("# QM keys on case 1: message ID 0x01020304, SPI deadbeef")
NI_QM = bytes(range(64, 80))
NR_QM = bytes(range(80, 96))
mid = (0x01020304).to_bytes(4, "big")
spi = bytes.fromhex("deadbeef")
# AES-CBC-128 / HMAC-SHA1: ipseccryptLength 16, ipsechashLength 20, no PFS, no EM; integrity key first.
blk = akdf("sha256", b"", mid + spi + NI_QM + NR_QM + k[1], b"", 36)
show("qm_cbc_integrity", blk[:20])
show("qm_cbc_encryption", blk[20:])
# AES-GCM-16-256: 32-byte key + 4-byte salt, no integrity key, PFS (Z(qm)) and EM binding.
G_QM = bytes((0x55 + 3 * i) % 256 for i in range(32))
skeyid_em1 = akdf("sha256", G_XY, NI + NR, gss_em, 32)
blk = akdf("sha256", G_QM, mid + spi + NI_QM + NR_QM + k[1], NI + NR + skeyid_em1, 36)
show("qm_gcm_encryption", blk)

print("# empty-Z concat KDF, SHA-256, OtherInfo = bytes 0..40, 40 bytes")
show("empty_z", concat_kdf("sha256", b"", bytes(range(40)), 40))
