//! The concatenation KDF against vectors that did not come from hostsec, and against aws-lc's SSKDF.

use super::*;
use aws_lc_rs::kdf::{get_sskdf_digest_algorithm, sskdf_digest, SskdfDigestAlgorithmId};
use proptest::prelude::*;

struct Vector {
    hash: HashAlg,
    z: &'static str,
    other_info: &'static str,
    expected: &'static str,
}

/// Checks every prefix length of `expected` (as the source suites do), so that the counter, the block
/// boundaries and the truncation are all exercised, and splits OtherInfo at every byte to show that the parts
/// are hashed as one string.
fn check(v: &Vector) {
    let z = hex::decode(v.z).unwrap();
    let info = hex::decode(v.other_info).unwrap();
    let expected = hex::decode(v.expected.split_whitespace().collect::<String>()).unwrap();
    for len in 1..=expected.len() {
        let got = concat_kdf(v.hash, &z, &[&info], len).unwrap();
        assert_eq!(hex::encode(got.expose()), hex::encode(&expected[..len]), "{:?} len {len} z {}", v.hash, v.z);
    }
    for cut in 0..=info.len() {
        let (a, b) = info.split_at(cut);
        let got = concat_kdf(v.hash, &z, &[a, &[], b], expected.len()).unwrap();
        assert_eq!(got.expose(), &expected[..], "{:?} split at {cut}", v.hash);
    }
}

/// aws-lc's SSKDF test file, `aws/aws-lc` `crypto/fipsmodule/kdf/test/sskdf.txt` at commit
/// a4ebe7a080af19a1c7dcf059bc80bbd72ee30a5e (VARIANT=DIGEST entries; the INFO strings starting `CAVSid`
/// are NIST CAVP KAS vectors, the short SHA-1 one is translated from OpenSSL's `evpkdf_ss.txt`).
const AWS_LC: &[Vector] = &[
    Vector {
        hash: HashAlg::Sha1,
        z: "81f3d2ad1f70fd67a374547d59506a04d545f4e869f00fa0",
        other_info: "434156536964e63969525e54d806789d7121a1b2c3d4e581597a0e979d5c99a79b1789b41ae57fef5b916f85a1e449",
        expected: "6ff62398511a8a243513781f02d9e50d412c247c84a01dac17f8d8d74bb5ddc5c5d156eb0173e597cab4a276aed4f42d
                   74b5a105666cddd26efc1fa130e1b062f2431c974eca6bc81c8fdc0a78088271cbd3aae0972d37016a293b59fb5656ff
                   169da3ac23cc39723fa887342346fb5859b63ebb86eb19ccff6e314253b9a771",
    },
    Vector {
        hash: HashAlg::Sha256,
        z: "81f3d2ad1f70fd67a374547d59506a04d545f4e869f00fa0",
        other_info: "434156536964e63969525e54d806789d7121a1b2c3d4e581597a0e979d5c99a79b1789b41ae57fef5b916f85a1e449",
        expected: "94a283be5d007b1729f8a7ed1a9bf0361435131c4477e750959bd64426c1fa16df07f848e1ba90d8d3196424de928cdb
                   8a5eda08ef03a5ca907b07faa0d4ac096a9dc7c5fa1f931336f864fdd9038b2dda14ca933c722657c90dd1c82c3a99af
                   48fdb599a975498f023424c5a6cfe010dd800e42c55de57a5d75a6cd54e299b9",
    },
    Vector {
        hash: HashAlg::Sha384,
        z: "81f3d2ad1f70fd67a374547d59506a04d545f4e869f00fa0",
        other_info: "434156536964e63969525e54d806789d7121a1b2c3d4e581597a0e979d5c99a79b1789b41ae57fef5b916f85a1e449",
        expected: "98989fa5f8de3098dfa089a454c24586f75f5bdc1e860d6088f42d9cc129bb462ae243b7922a6c276891bee5ca79b074
                   4b7ef4cb419db1e4ab80d67c873cb62912cb6cef80f17198e02ff590af59faf17e3128b80879606fa346f14930597005
                   d2be607b08b4361a403a28f18f5bc485a8c53921fbe8adcb35e64d4dc9227a5e",
    },
    Vector {
        hash: HashAlg::Sha256,
        z: "008392d899edd742510212be86e6ba5eede4f354b034b2f4df0e6f5a0003f3b334aebbd3",
        other_info: "434156536964808e2f1e4b8a68301e33483b423d0a9b6d15a1b2c3d4e5f3c9e8598a950b971c402d0d65a290845fde",
        expected: "2041f42703fd9ff370373fef399009cd",
    },
    Vector {
        hash: HashAlg::Sha384,
        z: "016995ef4b250d677dc674577427a0603b5d2185ee66e88c2f450c47727cfafa5707c5b74f9d6a2403f571094eaa7ee54bb251de",
        other_info: "434156536964ac9a3236f3d2a4cda1ada36079b3275556220286c036169ebda8a1b2c3d4e575408962a5a3c8afeb92",
        expected: "86a4a396d8819edfab9784f668b997fe9a1da99f6f08c5b1",
    },
    Vector {
        hash: HashAlg::Sha1,
        z: "d09a6b1a472f930db4f5e6b967900744",
        other_info: "b117255ab5f1b6b96fc434b0",
        expected: "b5a3c52e97ae6e8c5069954354eab3c7",
    },
];

/// Bouncy Castle, `bcgit/bc-java` `core/src/test/java/org/bouncycastle/crypto/test/ConcatenationKDFTest.java`
/// at commit c1722f4f4920e24931e17c162e6ebc51e6427d42 (its vectors come from patrickfav/singlestep-kdf's
/// "NIST SP 800-56C Rev1 non-official test vectors").
const BOUNCY_CASTLE: &[Vector] = &[
    Vector {
        hash: HashAlg::Sha1,
        z: "ebe28edbae5a410b87a479243db3f690",
        other_info: "e60dd8b28228ce5b9be74d3b",
        expected: "b4a23963e07f485382cb358a493daec1759ac7043dbeac37152c6ddf105031f0f239f270b7f30616166f10e5d2b4cb11
                   ba8bf4ba3f2276885abfbc3e811a568d480d9192",
    },
    Vector {
        hash: HashAlg::Sha256,
        z: "3f892bd8b84dae64a782a35f6eaa8f00",
        other_info: "ec3f1cd873d28858a58cc39e",
        expected: "a7c0665298252531e0db37737a374651b368275f2048284d16a166c6d8a90a91a491c16f49641b9f516a03d9d6d0f4fe
                   7b81ffdf1c816f40ecd74aed8eda2b8a3c714fa0",
    },
];

/// RustCrypto `concat-kdf`, `RustCrypto/KDFs` `concat-kdf/tests/tests.rs` at commit
/// 33915d37a6b5756385bda38c74ebd2a11c54459d (SHA-256 cases: 256 bytes = 8 blocks, including an empty OtherInfo).
const RUSTCRYPTO: &[Vector] = &[
    Vector {
        hash: HashAlg::Sha256,
        z: "00",
        other_info: "",
        expected: "060dc63e5595dffbd161c9ec98bc06fcf67cb22e2e75ecdf0003821388aeee4d
                   182cf10a4a3cc9c7ed07a46bfc0327a406e14b2e892b62471a523ceea8cb7664
                   598cd1428ca03f178cc23c367994cd739eb3e029f63b3e7079e4df62717f2dd0
                   d110457e8900a7bff0e9474ecd94fb6cd001d6928d7e018132678ac22013bdd0
                   5f8b7ad1b5241a8326638b7f596fcc965cc2c81665ad275d0110a9af8fe1d8fb
                   69af0678d2e4cd5b3a9dfeee6343496ee4ec37b3d4240954b64364acb9aa47f8
                   49befd6c253f0eb97f3fb0c118542c39519746da27b55f32cca541f9a1a16091
                   6a8814853bd214d9f0faf8d19724d53383fd0084a9471f67b989d47e225aa1a8",
    },
    Vector {
        hash: HashAlg::Sha256,
        z: "ba5eba11bedabb1ebe5077edb0a710adb01dfacecab005eca11ab1eca55e77e011",
        other_info: "f005ba1100ddba11",
        expected: "a400be9935d0c843a1504aa64f6078195b6e20ea3fe64bb8d7f29aaea6a351bf
                   7e40cafe54e86c4d502f82a390ab77098e8cccf905b5826d475e8316583eb53f
                   fc6afda60479492c5142db5896cbd0438e583d64162e448e68a3725944866f3e
                   55ea6d4e3eea479b7d0a5c7a78d4425bc3c118a564f078f6dc41439c255e87c9
                   be4e3e4a80509f84727ee661b9f04a8da4ece7214328f5180e96a9d641136ae7
                   e2c83707106623dd890cc0c8a04a4af628b530da938753e07c4891204014b675
                   1beb080ee8c3391607652411423567b60a56ca9efe5bc858c9a23f87b13cffa6
                   bcaf5fab9ad33ff2a284c15c8af0195674b46be2f98fad136eb327a8a60a8f4e",
    },
];

#[test]
fn published_vectors_aws_lc() {
    AWS_LC.iter().for_each(check);
}

#[test]
fn published_vectors_bouncy_castle() {
    BOUNCY_CASTLE.iter().for_each(check);
}

#[test]
fn published_vectors_rustcrypto() {
    RUSTCRYPTO.iter().for_each(check);
}

/// No library accepts an empty Z, so this one was computed by hand in Python:
/// `hashlib.sha256(b"\0\0\0\1" + bytes(range(40))).digest() + hashlib.sha256(b"\0\0\0\2" + bytes(range(40)))
/// .digest()[:8]` (also printed by `tests/vectors/authip_key_schedule.py`).
#[test]
fn empty_z_hand_computed() {
    let info: Vec<u8> = (0..40).collect();
    let got = concat_kdf(HashAlg::Sha256, &[], &[&info], 40).unwrap();
    assert_eq!(
        hex::encode(got.expose()),
        "3385ea662080d1a65a7f3c37283981a3043552fc17f3a39209a8ee8e1e81a2f9cb1fe41f719060cf"
    );
}

#[test]
fn output_length_bounds() {
    assert_eq!(concat_kdf(HashAlg::Sha256, b"z", &[], 0).unwrap_err(), AuthipKeyError::OutputLength(0));
    assert_eq!(
        concat_kdf(HashAlg::Sha1, b"z", &[], MAX_KDF_OUTPUT + 1).unwrap_err(),
        AuthipKeyError::OutputLength(MAX_KDF_OUTPUT + 1)
    );
    assert_eq!(concat_kdf(HashAlg::Sha384, b"z", &[], MAX_KDF_OUTPUT).unwrap().len(), MAX_KDF_OUTPUT);
}

#[test]
fn md5_and_unknown_hashes_refused() {
    assert_eq!(authip_hash_from_ike_id(ike_hash::MD5), Err(AuthipKeyError::Md5Refused));
    assert_eq!(authip_hash_from_ike_id(ike_hash::TIGER), Err(AuthipKeyError::UnsupportedHash(ike_hash::TIGER)));
    assert_eq!(authip_hash_from_ike_id(ike_hash::SHA2_512), Err(AuthipKeyError::UnsupportedHash(6)));
    assert_eq!(authip_hash_from_ike_id(ike_hash::SHA1), Ok(HashAlg::Sha1));
    assert_eq!(authip_hash_from_ike_id(ike_hash::SHA2_256), Ok(HashAlg::Sha256));
    assert_eq!(authip_hash_from_ike_id(ike_hash::SHA2_384), Ok(HashAlg::Sha384));
}

/// The OtherInfo layout (§3.1.7.4 reading): 2-byte big-endian Crypto-ID, the cookies, then pub and priv info,
/// nothing in between.
#[test]
fn other_info_layout() {
    let kdf = AuthipKdf::new(HashAlg::Sha256, IkeCipher::AesCbc256, [1; 8], [2; 8]);
    let joined: Vec<u8> = kdf.other_info(&[b"pub", b"!"], &[b"priv"]).concat();
    let mut want = vec![0x00, 0x07];
    want.extend([1; 8]);
    want.extend([2; 8]);
    want.extend(b"pub!priv");
    assert_eq!(joined, want);
    assert_eq!(crypto_id(IkeCipher::AesCbc128), 7);
}

#[test]
fn derive_refuses_empty_dh_secret() {
    let kdf = AuthipKdf::new(HashAlg::Sha256, IkeCipher::AesCbc128, [1; 8], [2; 8]);
    assert_eq!(kdf.derive(Some(&[]), &[], &[], 16).unwrap_err(), AuthipKeyError::EmptyDhSecret);
    let none = kdf.derive(None, &[b"x"], &[], 16).unwrap();
    let direct = concat_kdf(HashAlg::Sha256, &[], &kdf.other_info(&[b"x"], &[]), 16).unwrap();
    assert_eq!(none, direct);
}

fn sskdf(hash: HashAlg, secret: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let id = match hash {
        HashAlg::Sha256 => SskdfDigestAlgorithmId::Sha256,
        HashAlg::Sha384 => SskdfDigestAlgorithmId::Sha384,
        HashAlg::Sha1 => unreachable!("aws-lc-rs has no SHA-1 SSKDF"),
    };
    let mut out = vec![0u8; len];
    sskdf_digest(get_sskdf_digest_algorithm(id).unwrap(), secret, info, &mut out).unwrap();
    out
}

fn sha2() -> impl Strategy<Value = HashAlg> {
    prop_oneof![Just(HashAlg::Sha256), Just(HashAlg::Sha384)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For a non-empty Z the construction is SP 800-56C's one-step KDF, which aws-lc implements independently.
    #[test]
    fn matches_aws_lc_sskdf(
        hash in sha2(),
        z in proptest::collection::vec(any::<u8>(), 1..300),
        info in proptest::collection::vec(any::<u8>(), 0..300),
        cut in any::<prop::sample::Index>(),
        len in 1usize..400,
    ) {
        let (a, b) = info.split_at(cut.index(info.len() + 1));
        let ours = concat_kdf(hash, &z, &[a, b], len).unwrap();
        prop_assert_eq!(ours.expose(), &sskdf(hash, &z, &info, len)[..]);
    }

    /// The empty-Z path against aws-lc too: `counter | Z | OtherInfo` with Z empty is the same string as with Z
    /// set to a non-empty prefix of OtherInfo and the rest as OtherInfo.
    #[test]
    fn empty_z_matches_aws_lc_sskdf_with_prefix(
        hash in sha2(),
        info in proptest::collection::vec(any::<u8>(), 1..300),
        cut in any::<prop::sample::Index>(),
        len in 1usize..400,
    ) {
        let k = 1 + cut.index(info.len());
        let ours = concat_kdf(hash, &[], &[&info], len).unwrap();
        prop_assert_eq!(ours.expose(), &sskdf(hash, &info[..k], &info[k..], len)[..]);
    }
}
