//! Key-schedule properties that the strongSwan vectors do not reach: Ka expansion for every cipher/hash pair,
//! KEYMAT lengths, and the IV cut for SHA-384. Expected values are built from `prf`/`hash` by the RFC 2409
//! formulas, spelled out here independently of `keys.rs`.

use hostsec_proto::crypto::keys::{derive_phase1, exchange_iv, keymat, skeyid_psk, skeyid_signature};
use hostsec_proto::crypto::prf::{hash, prf};
use hostsec_proto::crypto::{HashAlg, IkeCipher, Secret};

const HASHES: [HashAlg; 3] = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384];
const CIPHERS: [IkeCipher; 3] = [IkeCipher::AesCbc128, IkeCipher::AesCbc192, IkeCipher::AesCbc256];

/// RFC 2409 appendix B, written out: Ka = SKEYID_e cut when long enough, else K1 = prf(SKEYID_e, 0x00),
/// Kn = prf(SKEYID_e, Kn-1), concatenated and cut.
fn expected_ka(alg: HashAlg, skeyid_e: &[u8], key_len: usize) -> Vec<u8> {
    if skeyid_e.len() >= key_len {
        return skeyid_e[..key_len].to_vec();
    }
    let mut out = Vec::new();
    let mut k = prf(alg, skeyid_e, &[&[0u8]]).as_bytes().to_vec();
    out.extend_from_slice(&k);
    while out.len() < key_len {
        k = prf(alg, skeyid_e, &[&k]).as_bytes().to_vec();
        out.extend_from_slice(&k);
    }
    out.truncate(key_len);
    out
}

#[test]
fn ka_for_every_hash_and_cipher() {
    let g_xy = [0x42u8; 32];
    let (cky_i, cky_r) = ([1u8; 8], [2u8; 8]);
    for alg in HASHES {
        for cipher in CIPHERS {
            let skeyid = skeyid_psk(alg, b"psk", b"ni", b"nr");
            let keys = derive_phase1(alg, cipher, skeyid, &g_xy, &cky_i, &cky_r, b"gxi", b"gxr");
            assert_eq!(keys.skeyid_e.len(), alg.output_len());
            assert_eq!(keys.ka.len(), cipher.key_len(), "{alg}/{cipher}");
            assert_eq!(keys.ka.expose(), expected_ka(alg, keys.skeyid_e.expose(), cipher.key_len()), "{alg}/{cipher}");
            // SHA-1 with AES-192/256 is where the expansion applies.
            let expands = alg.output_len() < cipher.key_len();
            assert_eq!(expands, alg == HashAlg::Sha1 && cipher != IkeCipher::AesCbc128);
            if expands {
                assert_ne!(&keys.ka.expose()[..alg.output_len()], keys.skeyid_e.expose());
            }
            assert_eq!(keys.initial_iv.to_vec(), hash(alg, &[b"gxi", b"gxr"]).as_bytes()[..16].to_vec());
        }
    }
}

#[test]
fn skeyid_formulas() {
    for alg in HASHES {
        assert_eq!(skeyid_psk(alg, b"secret", b"N1", b"N2").expose(), prf(alg, b"secret", &[b"N1N2"]).as_bytes());
        assert_eq!(skeyid_signature(alg, b"N1", b"N2", b"gxy").expose(), prf(alg, b"N1N2", &[b"gxy"]).as_bytes());
    }
}

#[test]
fn exchange_iv_is_cut_to_the_block() {
    let last = [0xabu8; 16];
    for alg in HASHES {
        let iv = exchange_iv(alg, &last, 0x0102_0304);
        assert_eq!(iv.to_vec(), hash(alg, &[&last, &[1, 2, 3, 4]]).as_bytes()[..16].to_vec(), "{alg}");
    }
}

#[test]
fn keymat_lengths_and_prefixes() {
    let d = [7u8; 32];
    let spi = [0xde, 0xad, 0xbe, 0xef];
    for alg in HASHES {
        for g in [None, Some(&[9u8; 48][..])] {
            let seed: Vec<u8> = [g.unwrap_or(&[]), &[3], &spi, b"ni", b"nr"].concat();
            let k1 = prf(alg, &d, &[&seed]);
            let k2 = prf(alg, &d, &[k1.as_bytes(), &seed]);
            let k3 = prf(alg, &d, &[k2.as_bytes(), &seed]);
            let expected = [k1.as_bytes(), k2.as_bytes(), k3.as_bytes()].concat();
            for len in [0, 1, 20, alg.output_len(), alg.output_len() + 1, 2 * alg.output_len() + 5, expected.len()] {
                let got: Secret = keymat(alg, &d, g, 3, &spi, b"ni", b"nr", len);
                assert_eq!(got.expose(), &expected[..len], "{alg}, {len} bytes, PFS {}", g.is_some());
            }
        }
    }
}

#[test]
fn secrets_compare_by_value_and_never_print() {
    let a = Secret::from_slice(b"key material");
    assert_eq!(a, Secret::new(b"key material".to_vec()));
    assert_ne!(a, Secret::from_slice(b"key materiaL"));
    assert_ne!(a, Secret::from_slice(b"key"));
    assert_eq!(Secret::new(Vec::new()), Secret::from_slice(&[]));
    assert_eq!(format!("{a:?}"), "Secret([12 bytes redacted])");
    let keys = derive_phase1(HashAlg::Sha256, IkeCipher::AesCbc256, a, b"gxy", &[1; 8], &[2; 8], b"gxi", b"gxr");
    let text = format!("{keys:?}");
    assert!(!text.contains(&hex::encode(keys.ka.expose())), "{text}");
}

#[test]
fn crypto_types_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Secret>();
    send_sync::<hostsec_proto::crypto::keys::Phase1Keys>();
    send_sync::<hostsec_proto::crypto::prf::Digest>();
    send_sync::<hostsec_proto::crypto::dh::DhKeyPair>();
}
