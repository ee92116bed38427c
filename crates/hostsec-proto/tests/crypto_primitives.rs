//! The PRF, hash, MAC comparison and AES-CBC against published test cases: RFC 2202 (HMAC-SHA-1), RFC 4231
//! (HMAC-SHA-256/384), FIPS 180-2 appendix examples (SHA), RFC 3602 §4 and NIST SP 800-38A F.2 (AES-CBC).

use hostsec_proto::crypto::cipher::{cbc_decrypt, cbc_encrypt};
use hostsec_proto::crypto::prf::{hash, prf, verify_mac};
use hostsec_proto::crypto::{CryptoError, HashAlg, IkeCipher};
use zeroize::Zeroize;

fn h(text: &str) -> Vec<u8> {
    hex::decode(text.split_whitespace().collect::<String>()).expect("hex")
}

const LARGE_KEY_DATA: &[u8] = b"Test Using Larger Than Block-Size Key - Hash Key First";

#[test]
fn hmac_rfc2202_and_rfc4231() {
    let cases: [(HashAlg, Vec<u8>, &[u8], &str); 10] = [
        // RFC 2202 §3, test cases 1, 2, 3 and 6.
        (HashAlg::Sha1, vec![0x0b; 20], b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
        (HashAlg::Sha1, b"Jefe".to_vec(), b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        (HashAlg::Sha1, vec![0xaa; 20], &[0xdd; 50], "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
        (HashAlg::Sha1, vec![0xaa; 80], LARGE_KEY_DATA, "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
        // RFC 4231 §4.2, §4.3 and §4.7 (test cases 1, 2 and 6).
        (
            HashAlg::Sha256,
            vec![0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            HashAlg::Sha384,
            vec![0x0b; 20],
            b"Hi There",
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
        ),
        (
            HashAlg::Sha256,
            b"Jefe".to_vec(),
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            HashAlg::Sha384,
            b"Jefe".to_vec(),
            b"what do ya want for nothing?",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
        ),
        (
            HashAlg::Sha256,
            vec![0xaa; 131],
            LARGE_KEY_DATA,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            HashAlg::Sha384,
            vec![0xaa; 131],
            LARGE_KEY_DATA,
            "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
        ),
    ];
    for (alg, key, data, want) in cases {
        let mac = prf(alg, &key, &[data]);
        assert_eq!(hex::encode(mac), want, "{alg}");
        assert_eq!(mac.len(), alg.output_len());
        // The parts are one concatenated message, however they are split.
        for split in [0, 1, data.len() / 2, data.len()] {
            let (a, b) = data.split_at(split);
            assert_eq!(prf(alg, &key, &[a, &[], b]), mac, "{alg}: split at {split}");
        }
    }
}

#[test]
fn sha_fips180_examples() {
    // FIPS 180-2 appendices A.1, B.1 and D.1: the one-block message "abc".
    let cases = [
        (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (HashAlg::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            HashAlg::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
    ];
    for (alg, want) in cases {
        assert_eq!(hex::encode(hash(alg, &[b"abc"])), want, "{alg}");
        assert_eq!(hex::encode(hash(alg, &[b"a", b"", b"bc"])), want, "{alg}: in parts");
    }
}

#[test]
fn hash_matches_aws_lc_rs_digest_across_splits() {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
    for (alg, reference) in [
        (HashAlg::Sha1, &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY),
        (HashAlg::Sha256, &aws_lc_rs::digest::SHA256),
        (HashAlg::Sha384, &aws_lc_rs::digest::SHA384),
    ] {
        for len in [0, 1, 55, 56, 64, 111, 112, 128, 512, 1000] {
            let want = aws_lc_rs::digest::digest(reference, &data[..len]);
            let (a, b) = data[..len].split_at(len / 3);
            assert_eq!(hash(alg, &[a, b]).as_bytes(), want.as_ref(), "{alg}, {len} bytes");
            assert_eq!(hash(alg, &[]).as_bytes(), aws_lc_rs::digest::digest(reference, b"").as_ref());
        }
    }
}

#[test]
fn digest_basics() {
    let mut d = prf(HashAlg::Sha256, b"key", &[b"data"]);
    assert_eq!(d.as_ref(), d.as_bytes());
    assert_eq!(format!("{d:?}"), format!("Digest({})", hex::encode(d.as_bytes())));
    assert!(!d.is_empty());
    d.zeroize();
    assert!(d.is_empty());
    assert_eq!(d.as_bytes(), b"");
}

#[test]
fn verify_mac_compares_whole_values() {
    let mac = prf(HashAlg::Sha256, b"k", &[b"m"]);
    assert!(verify_mac(mac.as_bytes(), mac.as_bytes()));
    let mut other = mac.as_bytes().to_vec();
    other[31] ^= 1;
    assert!(!verify_mac(mac.as_bytes(), &other));
    other[31] ^= 1;
    other[0] ^= 0x80;
    assert!(!verify_mac(mac.as_bytes(), &other));
    // Lengths differ: a truncated MAC or one with a byte appended.
    assert!(!verify_mac(mac.as_bytes(), &mac.as_bytes()[..16]));
    assert!(!verify_mac(&mac.as_bytes()[..16], mac.as_bytes()));
    assert!(!verify_mac(mac.as_bytes(), &[mac.as_bytes(), &[0]].concat()));
    // Nothing verifies against nothing.
    assert!(!verify_mac(&[], &[]));
}

struct CbcCase {
    cipher: IkeCipher,
    key: &'static str,
    iv: &'static str,
    plaintext: Vec<u8>,
    ciphertext: &'static str,
}

fn cbc_cases() -> Vec<CbcCase> {
    let sp800_38a_plaintext = h("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
        30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710");
    vec![
        // RFC 3602 §4, cases #1 to #4 (AES-128).
        CbcCase {
            cipher: IkeCipher::AesCbc128,
            key: "06a9214036b8a15b512e03d534120006",
            iv: "3dafba429d9eb430b422da802c9fac41",
            plaintext: b"Single block msg".to_vec(),
            ciphertext: "e353779c1079aeb82708942dbe77181a",
        },
        CbcCase {
            cipher: IkeCipher::AesCbc128,
            key: "c286696d887c9aa0611bbb3e2025a45a",
            iv: "562e17996d093d28ddb3ba695a2e6f58",
            plaintext: (0u8..32).collect(),
            ciphertext: "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        },
        CbcCase {
            cipher: IkeCipher::AesCbc128,
            key: "6c3ea0477630ce21a2ce334aa746c2cd",
            iv: "c782dc4c098c66cbd9cd27d825682c81",
            plaintext: b"This is a 48-byte message (exactly 3 AES blocks)".to_vec(),
            ciphertext: "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5\
                         021c19216bad525c8579695d83ba2684",
        },
        CbcCase {
            cipher: IkeCipher::AesCbc128,
            key: "56e47a38c5598974bc46903dba290349",
            iv: "8ce82eefbea0da3c44699ed7db51b7d9",
            plaintext: (0xa0u8..0xe0).collect(),
            ciphertext: "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e\
                         35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
        },
        // NIST SP 800-38A F.2.3 and F.2.5 (AES-192, AES-256), for the longer keys RFC 3602 has no case for.
        CbcCase {
            cipher: IkeCipher::AesCbc192,
            key: "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            iv: "000102030405060708090a0b0c0d0e0f",
            plaintext: sp800_38a_plaintext.clone(),
            ciphertext: "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a\
                         571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd",
        },
        CbcCase {
            cipher: IkeCipher::AesCbc256,
            key: "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            iv: "000102030405060708090a0b0c0d0e0f",
            plaintext: sp800_38a_plaintext,
            ciphertext: "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                         39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
        },
    ]
}

#[test]
fn aes_cbc_published_cases() {
    for case in cbc_cases() {
        let (key, iv, ct) = (h(case.key), h(case.iv), h(case.ciphertext));
        let mut buf = case.plaintext.clone();
        let last = cbc_encrypt(case.cipher, &key, &iv, &mut buf).unwrap();
        assert_eq!(hex::encode(&buf), hex::encode(&ct), "{} encrypt", case.cipher);
        assert_eq!(last.to_vec(), ct[ct.len() - 16..], "{}: the last ciphertext block is returned", case.cipher);
        let last = cbc_decrypt(case.cipher, &key, &iv, &mut buf).unwrap();
        assert_eq!(buf, case.plaintext, "{} decrypt", case.cipher);
        assert_eq!(last.to_vec(), ct[ct.len() - 16..], "{}: the block captured before decryption", case.cipher);
    }
}

#[test]
fn aes_cbc_chains_across_calls() {
    // Appendix B's IV chain: encrypting two messages with the second IV taken from the first's last block is
    // CBC over their concatenation.
    let case = &cbc_cases()[3];
    let (key, iv) = (h(case.key), h(case.iv));
    let (mut first, mut second) = (case.plaintext[..32].to_vec(), case.plaintext[32..].to_vec());
    let next = cbc_encrypt(case.cipher, &key, &iv, &mut first).unwrap();
    cbc_encrypt(case.cipher, &key, &next, &mut second).unwrap();
    assert_eq!(hex::encode([first, second].concat()), case.ciphertext);
}

#[test]
fn aes_cbc_rejects_bad_lengths() {
    let key = [0u8; 16];
    let iv = [0u8; 16];
    let mut block = [0u8; 32];
    let bad_length = |r: Result<[u8; 16], CryptoError>| matches!(r, Err(CryptoError::InvalidLength(_)));
    for f in [cbc_encrypt, cbc_decrypt] {
        assert!(bad_length(f(IkeCipher::AesCbc128, &key, &iv, &mut block[..15])));
        assert!(bad_length(f(IkeCipher::AesCbc128, &key, &iv, &mut block[..17])));
        assert!(bad_length(f(IkeCipher::AesCbc128, &key, &iv, &mut [])));
        assert!(bad_length(f(IkeCipher::AesCbc128, &key, &iv[..8], &mut block)));
        assert!(bad_length(f(IkeCipher::AesCbc256, &key, &iv, &mut block)), "16-byte key for AES-256");
        assert!(bad_length(f(IkeCipher::AesCbc128, &[0u8; 32], &iv, &mut block)), "32-byte key for AES-128");
        assert!(f(IkeCipher::AesCbc128, &key, &iv, &mut block).is_ok());
    }
}
