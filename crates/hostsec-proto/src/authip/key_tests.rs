//! Key schedule and proof tests: values computed independently in Python from the §3.1.7.4 formulas
//! (`crates/hostsec-proto/tests/vectors/authip_key_schedule.py`, hashlib/hmac only), and structural properties
//! (lengths, sensitivity to every input byte, role separation). Neither kind can show that the readings match
//! Windows; see `docs/authip.md`, "Key schedule".

use super::*;
use crate::crypto::{EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, Secret};

const CKY_I: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
const CKY_R: [u8; 8] = [0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01];
const MM: [&[u8]; 4] = [b"AuthIP MM #1 payloads", b"AuthIP MM #2 payloads", b"AuthIP MM #3", b"AuthIP MM #4"];
const EM: [&[u8]; 4] = [b"EM #7", b"EM #8", b"EM #9", b"EM #10"];
const CBC_SHA1: EspTransform = EspTransform { cipher: EspCipher::AesCbc128, integrity: EspIntegrity::HmacSha1_96 };
const GCM_256: EspTransform = EspTransform { cipher: EspCipher::AesGcm16_256, integrity: EspIntegrity::None };

fn range(from: u8, to: u8) -> Vec<u8> {
    (from..to).collect()
}

fn g_xy() -> Vec<u8> {
    (0..32u8).map(|i| 0xa0u8.wrapping_add(i)).collect()
}

fn h(s: &Secret) -> String {
    hex::encode(s.expose())
}

struct Case1 {
    kdf: AuthipKdf,
    ni: Vec<u8>,
    nr: Vec<u8>,
    g_xy: Vec<u8>,
}

/// SHA-256, AES-128, with DH, empty GSS-APIsecret (an Anonymous MM).
fn case1() -> Case1 {
    Case1 {
        kdf: AuthipKdf::new(HashAlg::Sha256, IkeCipher::AesCbc128, CKY_I, CKY_R),
        ni: range(0, 32),
        nr: range(32, 64),
        g_xy: g_xy(),
    }
}

impl Case1 {
    fn inputs(&self) -> MainModeInputs<'_> {
        MainModeInputs { g_xy: Some(&self.g_xy), ni: &self.ni, nr: &self.nr, gss_secret: &[] }
    }
}

#[test]
fn main_mode_sha256_with_dh_python() {
    let c = case1();
    let k = derive_main_mode(&c.kdf, &c.inputs()).unwrap();
    assert_eq!(h(&k.skeyid), "6641da7e929406c04871c848bf0daef428eba47efe67c24cfe01aaa0824df2ab");
    assert_eq!(h(&k.skeyid_d), "921be02bf8977a2d314e29042f3493b4a4b7038104db504676dcfccbc1c08f1c");
    assert_eq!(h(&k.skeyid_a), "99f357beb6fba4fb48d4470c976ed7d40f7e5a2ef1047f9d6732ffc7a728a4a3");
    assert_eq!(h(&k.skeyid_e), "ee7afd99723e1a4016c8bdfaeb3cfe0a3170ff796386489c8c9f9ed5d7a9472d");
    assert_eq!(h(&k.encryption_key), "ee7afd99723e1a4016c8bdfaeb3cfe0a");

    let a1 = auth1(HashAlg::Sha256, &k.skeyid, &MM).unwrap();
    let a2 = auth2(HashAlg::Sha256, &k.skeyid, &MM).unwrap();
    assert_eq!(hex::encode(a1), "559bf95120cff12f417a970202db409eaded42c9ec5e3a66a2a4fc0c0b26e10e");
    assert_eq!(hex::encode(a2), "841f379e122ad2b026cb294364006326a1706de554d87a3b01a03f43f72128ce");
}

/// SHA-1 and AES-256 make SKEYID_e (32 bytes) longer than the hash (20): a second KDF block. No DH (Z empty),
/// a Kerberos-like GSS-APIsecret; the proofs mix SHA-256 (#1, #2) and SHA-1 (#3, #4); EM on top.
#[test]
fn main_mode_sha1_without_dh_and_extended_mode_python() {
    let kdf = AuthipKdf::new(HashAlg::Sha1, IkeCipher::AesCbc256, CKY_I, CKY_R);
    let (ni, nr, gss) = (range(0, 32), range(32, 64), range(100, 116));
    let k = derive_main_mode(&kdf, &MainModeInputs { g_xy: None, ni: &ni, nr: &nr, gss_secret: &gss }).unwrap();
    assert_eq!(h(&k.skeyid), "b7f98a9e4bc7d615dc53503e333ec93cd25c6f4b");
    assert_eq!(h(&k.skeyid_d), "bf60d3b05b29b60f84f7e116acda65d15dcdb0bf");
    assert_eq!(h(&k.skeyid_a), "ca40be0745bd8cc12074415d1a7b489935871b34");
    assert_eq!(h(&k.skeyid_e), "0db6f21e1d02b5093f6f0a9e79ba38465003e1d972c6011c5c6891cfd6396fd3");
    assert_eq!(k.encryption_key, k.skeyid_e);

    let a1 = auth1(HashAlg::Sha1, &k.skeyid, &MM).unwrap();
    let a2 = auth2(HashAlg::Sha1, &k.skeyid, &MM).unwrap();
    assert_eq!(hex::encode(a1), "851330b66b5bafc51e791109ec3c7c29e64ccef0");
    assert_eq!(hex::encode(a2), "75ae2b73c65223b043cb1d5944b8e71ef4c29f56");

    let em = derive_skeyid_em(&kdf, None, &ni, &nr, b"em-secretem-secret").unwrap();
    assert_eq!(h(&em), "e88564b7d01b29a2d5cb9d2bb1ef1b3b3146b6e7");
    let a3 = auth3(HashAlg::Sha1, &em, &EM, a1.as_bytes()).unwrap();
    let a4 = auth4(HashAlg::Sha1, &em, &EM, a2.as_bytes()).unwrap();
    assert_eq!(hex::encode(a3), "52adb7ef73c0da2c2d9ed8e2debac80cbe718a55");
    assert_eq!(hex::encode(a4), "033f998c60772508cbdb359035b0415818897f2d");
}

fn qm_inputs<'a>(skeyid_d: &'a Secret, ni_qm: &'a [u8], nr_qm: &'a [u8]) -> QuickModeInputs<'a> {
    QuickModeInputs {
        message_id: 0x0102_0304,
        spi: [0xde, 0xad, 0xbe, 0xef],
        ni_qm,
        nr_qm,
        g_qm_xy: None,
        skeyid_d,
        extended_mode: None,
    }
}

#[test]
fn quick_mode_python() {
    let c = case1();
    let k = derive_main_mode(&c.kdf, &c.inputs()).unwrap();
    let (ni_qm, nr_qm) = (range(64, 80), range(80, 96));

    // AES-CBC-128 / HMAC-SHA1, no PFS, no EM: 36 bytes, integrity key first (QM_KEY_ORDER).
    let qi = qm_inputs(&k.skeyid_d, &ni_qm, &nr_qm);
    let cbc = derive_quick_mode(&c.kdf, &qi, CBC_SHA1, QM_KEY_ORDER).unwrap();
    assert_eq!(h(&cbc.integrity), "9ef73af0f71d4ff4ec701d9104a755a2380c68aa");
    assert_eq!(h(&cbc.encryption), "11b73e71405c5f183aead6ad942432db");

    // The other reading of the split takes the same 36 bytes from the other end.
    let other = derive_quick_mode(&c.kdf, &qi, CBC_SHA1, QmKeyOrder::EncryptionFirst).unwrap();
    assert_eq!(h(&other.encryption), "9ef73af0f71d4ff4ec701d9104a755a2");
    assert_eq!(h(&other.integrity), "380c68aa11b73e71405c5f183aead6ad942432db");

    // AES-GCM-16-256 with PFS and an Extended Mode: key and salt, no integrity key; both orders agree.
    let g_qm: Vec<u8> = (0..32u8).map(|i| 0x55u8.wrapping_add(i.wrapping_mul(3))).collect();
    let skeyid_em = derive_skeyid_em(&c.kdf, Some(&c.g_xy), &c.ni, &c.nr, b"em-secretem-secret").unwrap();
    let qi = QuickModeInputs {
        g_qm_xy: Some(&g_qm),
        extended_mode: Some(ExtendedModeBinding { ni_mm: &c.ni, nr_mm: &c.nr, skeyid_em: &skeyid_em }),
        ..qi
    };
    let gcm = derive_quick_mode(&c.kdf, &qi, GCM_256, QM_KEY_ORDER).unwrap();
    assert_eq!(h(&gcm.encryption), "2e61b52b561adec05be53fa1f8b3ceec8f0985aa48fe9f27daf9eb5fd5b691680ba25eee");
    assert!(gcm.integrity.is_empty());
    let gcm_other = derive_quick_mode(&c.kdf, &qi, GCM_256, QmKeyOrder::EncryptionFirst).unwrap();
    assert_eq!(gcm_other.encryption, gcm.encryption);
}

#[test]
fn key_lengths() {
    for hash in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
        for cipher in [IkeCipher::AesCbc128, IkeCipher::AesCbc192, IkeCipher::AesCbc256] {
            let c = case1();
            let kdf = AuthipKdf::new(hash, cipher, CKY_I, CKY_R);
            let k = derive_main_mode(&kdf, &c.inputs()).unwrap();
            for s in [&k.skeyid, &k.skeyid_d, &k.skeyid_a] {
                assert_eq!(s.len(), hash.output_len());
            }
            assert_eq!(k.skeyid_e.len(), hash.output_len().max(cipher.key_len()), "{hash} {cipher}");
            assert_eq!(k.encryption_key.len(), cipher.key_len());
            assert_eq!(k.encryption_key.expose(), &k.skeyid_e.expose()[..cipher.key_len()]);
            let em = derive_skeyid_em(&kdf, Some(&c.g_xy), &c.ni, &c.nr, b"x").unwrap();
            assert_eq!(em.len(), hash.output_len());
        }
    }
    for t in EspTransform::ALL {
        let (crypt, integ) = qm_key_lengths(t);
        assert_eq!(crypt, t.cipher.keymat_len(), "{t}");
        assert_eq!(integ, t.integrity.key_len(), "{t}");
        let c = case1();
        let k = derive_main_mode(&c.kdf, &c.inputs()).unwrap();
        let q = derive_quick_mode(&c.kdf, &qm_inputs(&k.skeyid_d, b"ni", b"nr"), t, QM_KEY_ORDER).unwrap();
        assert_eq!((q.encryption.len(), q.integrity.len()), (crypt, integ), "{t}");
    }
}

/// Every MM key, SKEYID_em and every QM key changes when any single byte of any input changes, and so do the
/// proofs when any byte of any message changes.
#[test]
fn every_input_byte_matters() {
    let c = case1();
    let gss: Vec<u8> = range(1, 9);
    let base_mm = |kdf: &AuthipKdf, g: &[u8], ni: &[u8], nr: &[u8], gss: &[u8]| {
        let k = derive_main_mode(kdf, &MainModeInputs { g_xy: Some(g), ni, nr, gss_secret: gss }).unwrap();
        let em = derive_skeyid_em(kdf, Some(g), ni, nr, gss).unwrap();
        [k.skeyid, k.skeyid_d, k.skeyid_a, k.skeyid_e, k.encryption_key, em]
    };
    let reference = base_mm(&c.kdf, &c.g_xy, &c.ni, &c.nr, &gss);
    let mut variants: Vec<[Secret; 6]> = Vec::new();
    for which in 0..3 {
        let mut inputs = [c.g_xy.clone(), c.ni.clone(), c.nr.clone(), gss.clone()];
        for i in 0..inputs[which].len() {
            let mut changed = inputs.clone();
            changed[which][i] ^= 0x01;
            variants.push(base_mm(&c.kdf, &changed[0], &changed[1], &changed[2], &changed[3]));
        }
        inputs[which].push(0);
        variants.push(base_mm(&c.kdf, &inputs[0], &inputs[1], &inputs[2], &inputs[3]));
    }
    for i in 0..8 {
        let (mut a, mut b) = (CKY_I, CKY_R);
        a[i] ^= 0x80;
        variants.push(base_mm(
            &AuthipKdf::new(HashAlg::Sha256, IkeCipher::AesCbc128, a, CKY_R),
            &c.g_xy,
            &c.ni,
            &c.nr,
            &gss,
        ));
        b[i] ^= 0x80;
        variants.push(base_mm(
            &AuthipKdf::new(HashAlg::Sha256, IkeCipher::AesCbc128, CKY_I, b),
            &c.g_xy,
            &c.ni,
            &c.nr,
            &gss,
        ));
    }
    for v in &variants {
        for (got, want) in v.iter().zip(&reference) {
            // The SKEYID_em differs from SKEYID only in the GSS secret it takes; both must move.
            assert_ne!(got, want);
        }
    }

    let k = derive_main_mode(&c.kdf, &c.inputs()).unwrap();
    let em = derive_skeyid_em(&c.kdf, Some(&c.g_xy), &c.ni, &c.nr, b"em").unwrap();
    let (ni_qm, nr_qm, g_qm) = (range(64, 80), range(80, 96), range(10, 42));
    let qm = |mid: u32, spi: [u8; 4], ni: &[u8], nr: &[u8], g: &[u8], d: &Secret, em_ni: &[u8]| {
        let inputs = QuickModeInputs {
            message_id: mid,
            spi,
            ni_qm: ni,
            nr_qm: nr,
            g_qm_xy: Some(g),
            skeyid_d: d,
            extended_mode: Some(ExtendedModeBinding { ni_mm: em_ni, nr_mm: &c.nr, skeyid_em: &em }),
        };
        let q = derive_quick_mode(&c.kdf, &inputs, CBC_SHA1, QM_KEY_ORDER).unwrap();
        (q.encryption, q.integrity)
    };
    let spi = [1, 2, 3, 4];
    let reference = qm(7, spi, &ni_qm, &nr_qm, &g_qm, &k.skeyid_d, &c.ni);
    let mut qms = vec![qm(8, spi, &ni_qm, &nr_qm, &g_qm, &k.skeyid_d, &c.ni)];
    for i in 0..4 {
        let mut s = spi;
        s[i] ^= 1;
        qms.push(qm(7, s, &ni_qm, &nr_qm, &g_qm, &k.skeyid_d, &c.ni));
    }
    for i in 0..16 {
        let (mut a, mut b) = (ni_qm.clone(), nr_qm.clone());
        a[i] ^= 1;
        b[i] ^= 1;
        qms.push(qm(7, spi, &a, &nr_qm, &g_qm, &k.skeyid_d, &c.ni));
        qms.push(qm(7, spi, &ni_qm, &b, &g_qm, &k.skeyid_d, &c.ni));
    }
    for i in 0..32 {
        let mut g = g_qm.clone();
        g[i] ^= 1;
        qms.push(qm(7, spi, &ni_qm, &nr_qm, &g, &k.skeyid_d, &c.ni));
        let mut d = k.skeyid_d.expose().to_vec();
        d[i] ^= 1;
        qms.push(qm(7, spi, &ni_qm, &nr_qm, &g_qm, &Secret::new(d), &c.ni));
        let mut n = c.ni.clone();
        n[i] ^= 1;
        qms.push(qm(7, spi, &ni_qm, &nr_qm, &g_qm, &k.skeyid_d, &n));
    }
    for (e, i) in &qms {
        assert_ne!(e, &reference.0);
        assert_ne!(i, &reference.1);
    }

    let a1 = auth1(HashAlg::Sha256, &k.skeyid, &MM).unwrap();
    for m in 0..MM.len() {
        for i in 0..MM[m].len() {
            let mut msg = MM[m].to_vec();
            msg[i] ^= 1;
            let mut msgs = MM;
            msgs[m] = &msg;
            assert_ne!(auth1(HashAlg::Sha256, &k.skeyid, &msgs).unwrap(), a1, "message {m} byte {i}");
        }
    }
}

#[test]
fn proofs_separate_roles_and_stages() {
    let c = case1();
    let k = derive_main_mode(&c.kdf, &c.inputs()).unwrap();
    let a1 = auth1(HashAlg::Sha256, &k.skeyid, &MM).unwrap();
    let a2 = auth2(HashAlg::Sha256, &k.skeyid, &MM).unwrap();
    assert_ne!(a1, a2);
    assert_eq!(a1.len(), 32);

    // Swapping the roles (the other end's cookies and nonces first) changes SKEYID and so both proofs.
    let swapped_kdf = AuthipKdf::new(HashAlg::Sha256, IkeCipher::AesCbc128, CKY_R, CKY_I);
    let swapped =
        derive_main_mode(&swapped_kdf, &MainModeInputs { g_xy: Some(&c.g_xy), ni: &c.nr, nr: &c.ni, gss_secret: &[] })
            .unwrap();
    assert_ne!(swapped.skeyid, k.skeyid);
    assert_ne!(auth1(HashAlg::Sha256, &swapped.skeyid, &MM).unwrap(), a1);
    // So does the order of the messages in the chain.
    let reordered = [MM[1], MM[0], MM[2], MM[3]];
    assert_ne!(auth1(HashAlg::Sha256, &k.skeyid, &reordered).unwrap(), a1);

    let em = derive_skeyid_em(&c.kdf, Some(&c.g_xy), &c.ni, &c.nr, b"em").unwrap();
    let a3 = auth3(HashAlg::Sha256, &em, &EM, a1.as_bytes()).unwrap();
    let a4 = auth4(HashAlg::Sha256, &em, &EM, a2.as_bytes()).unwrap();
    assert_ne!(a3, a4);
    // One proof's length, not PRF output followed by Auth1 (the bracket reading).
    assert_eq!(a3.len(), 32);
    assert_ne!(em, k.skeyid);
}

#[test]
fn transcript_chains() {
    // Only #1 and #2: two SHA-256 links, whatever the negotiated hash.
    let two = mm_transcript_hash(HashAlg::Sha1, &MM[..2]).unwrap();
    let first = crate::crypto::prf::hash(HashAlg::Sha256, &[MM[0]]);
    assert_eq!(two, crate::crypto::prf::hash(HashAlg::Sha256, &[MM[1], first.as_bytes()]));
    assert_eq!(two, mm_transcript_hash(HashAlg::Sha384, &MM[..2]).unwrap());
    // From #3 on the negotiated hash.
    let three = mm_transcript_hash(HashAlg::Sha384, &MM[..3]).unwrap();
    assert_eq!(three.len(), 48);
    // A longer GSS exchange lengthens the chain.
    let six = [MM[0], MM[1], MM[2], MM[3], b"#5 GSS", b"#6 GSS"];
    assert_ne!(mm_transcript_hash(HashAlg::Sha256, &six).unwrap(), mm_transcript_hash(HashAlg::Sha256, &MM).unwrap());

    assert_eq!(
        mm_transcript_hash(HashAlg::Sha256, &MM[..1]).unwrap_err(),
        AuthipKeyError::TooFewMessages { what: "Auth1/Auth2", need: 2, have: 1 }
    );
    assert_eq!(
        em_transcript_hash(HashAlg::Sha256, &[]).unwrap_err(),
        AuthipKeyError::TooFewMessages { what: "Auth3/Auth4", need: 1, have: 0 }
    );
    let one = em_transcript_hash(HashAlg::Sha1, &EM[..1]).unwrap();
    assert_eq!(one, crate::crypto::prf::hash(HashAlg::Sha1, &[EM[0]]));
}

#[test]
fn no_key_material_in_debug_output() {
    let c = case1();
    let k = derive_main_mode(&c.kdf, &c.inputs()).unwrap();
    let printed = format!("{k:?}");
    assert!(!printed.contains(&h(&k.skeyid)[..8]));
    assert!(printed.contains("redacted"));
}
