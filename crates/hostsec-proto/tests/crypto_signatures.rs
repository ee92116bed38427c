//! Known answers for the signatures of certificate authentication (RFC 2409 §5.1, RFC 4754): SIG_I and SIG_R of
//! the three strongSwan certificate vectors (06 ECDSA P-256, 07 ECDSA P-384, 08 RSA-2048) verified with the
//! vectors' keys, the deterministic RSA signatures reproduced byte for byte from the private keys, and the
//! refusals: a flipped bit, another hash, a DER-encoded ECDSA signature, the wrong key, a short RSA key.

mod support;

use aws_lc_sys as ffi;
use hostsec_proto::crypto::signature::{method_hash, KeyError, SigningKey, VerifyingKey, MIN_RSA_BITS};
use hostsec_proto::crypto::{AuthMethod, CryptoError, HashAlg};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

const CERT_VECTORS: [(&str, AuthMethod); 3] = [
    ("06-cert-ecdsa-p256", AuthMethod::EcdsaP256),
    ("07-cert-ecdsa-p384", AuthMethod::EcdsaP384),
    ("08-cert-rsa2048", AuthMethod::RsaSig),
];

fn key(vector: &str, file: &str) -> SigningKey {
    let pem = support::vectors::pki_file(vector, file);
    let der = PrivateKeyDer::from_pem_slice(&pem).unwrap_or_else(|e| panic!("{vector}/{file}: {e:?}"));
    SigningKey::from_der(&der).unwrap_or_else(|e| panic!("{vector}/{file}: {e}"))
}

fn hex_at(json: &serde_json::Value, pointer: &str) -> Vec<u8> {
    let s = json.pointer(pointer).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("no {pointer}"));
    hex::decode(s).unwrap_or_else(|e| panic!("{pointer}: {e}"))
}

/// The peers' signatures of each vector verify with their public keys over HASH_I / HASH_R, and the negotiated
/// auth method is the one the keys sign for.
#[test]
fn strongswan_signatures_verify() {
    for (name, method) in CERT_VECTORS {
        let v = support::vectors::load(name);
        let wire_method = v.pointer("/phase1/selected_transform/3").and_then(|m| m.as_u64());
        assert_eq!(wire_method, Some(u64::from(method.id())), "{name}: auth method");
        for (file, hash, sig) in
            [("a.key", "/phase1/HASH_I", "/phase1/SIG_I"), ("b.key", "/phase1/HASH_R", "/phase1/SIG_R")]
        {
            let signer = key(name, file);
            assert_eq!(signer.auth_method(), method, "{name}/{file}");
            let public = signer.verifying_key().expect("public half");
            let (hash, sig) = (hex_at(&v, hash), hex_at(&v, sig));
            if let Some(h) = method_hash(method) {
                assert_eq!(hash.len(), h.output_len(), "{name}: HASH_x has the method's hash length");
            }
            public.verify(&hash, &sig).unwrap_or_else(|e| panic!("{name}/{file}: {e}"));
        }
    }
}

/// RSA PKCS#1 v1.5 is deterministic: hostsec's signature over HASH_I / HASH_R with the vector's private keys
/// equals strongSwan's on the wire, which pins the padding (type 1, no DigestInfo) byte for byte.
#[test]
fn rsa_signatures_reproduced_exactly() {
    let name = "08-cert-rsa2048";
    let v = support::vectors::load(name);
    for (file, hash, sig) in
        [("a.key", "/phase1/HASH_I", "/phase1/SIG_I"), ("b.key", "/phase1/HASH_R", "/phase1/SIG_R")]
    {
        let signer = key(name, file);
        assert_eq!(signer.description(), "RSA-2048");
        let ours = signer.sign(&hex_at(&v, hash)).expect("sign");
        assert_eq!(hex::encode(&ours), hex::encode(hex_at(&v, sig)), "{name}/{file}: {sig}");
        assert_eq!(ours.len(), 256);
    }
}

/// ECDSA signatures are randomised: ours cannot equal strongSwan's, but they are r | s of the fixed length and
/// verify with the public key (and strongSwan's verify with the same code path, above).
#[test]
fn ecdsa_sign_verify_fixed_length() {
    for (name, method, len) in
        [("06-cert-ecdsa-p256", AuthMethod::EcdsaP256, 64), ("07-cert-ecdsa-p384", AuthMethod::EcdsaP384, 96)]
    {
        let v = support::vectors::load(name);
        let signer = key(name, "a.key");
        let public = signer.verifying_key().expect("public half");
        let hash = hex_at(&v, "/phase1/HASH_I");
        let a = signer.sign(&hash).expect("sign");
        let b = signer.sign(&hash).expect("sign");
        assert_eq!(a.len(), len, "{name}: r | s");
        assert_ne!(a, b, "{name}: a fresh nonce per signature");
        public.verify(&hash, &a).expect("own signature verifies");
        public.verify(&hash, &b).expect("own signature verifies");
        assert_eq!(public.auth_method(), method);
        // A hash of another length is not a digest of the method's hash.
        let short = &hash[..20];
        assert_eq!(signer.sign(short), Err(CryptoError::InvalidLength("ECDSA hash")));
        assert_eq!(public.verify(short, &a), Err(CryptoError::VerificationFailed));
    }
}

/// A flipped bit anywhere in a signature, a flipped bit in the hash, a truncated or extended signature and the
/// other peer's key all fail.
#[test]
fn tampered_signatures_fail() {
    for (name, _) in CERT_VECTORS {
        let v = support::vectors::load(name);
        let hash = hex_at(&v, "/phase1/HASH_I");
        let sig = hex_at(&v, "/phase1/SIG_I");
        let public = key(name, "a.key").verifying_key().expect("public half");
        let other = key(name, "b.key").verifying_key().expect("public half");
        for i in [0, sig.len() / 2, sig.len() - 1] {
            let mut bad = sig.clone();
            bad[i] ^= 0x01;
            assert_eq!(public.verify(&hash, &bad), Err(CryptoError::VerificationFailed), "{name}: bit in byte {i}");
        }
        let mut bad_hash = hash.clone();
        bad_hash[3] ^= 0x80;
        assert!(public.verify(&bad_hash, &sig).is_err(), "{name}: other hash");
        assert!(public.verify(&hash, &sig[..sig.len() - 1]).is_err(), "{name}: truncated");
        let mut long = sig.clone();
        long.push(0);
        assert!(public.verify(&hash, &long).is_err(), "{name}: extended");
        assert!(public.verify(&hash, &[]).is_err(), "{name}: empty");
        assert!(other.verify(&hash, &sig).is_err(), "{name}: the responder's key");
        assert!(!public.same_key(&other) && public.same_key(&key(name, "a.key").verifying_key().expect("public")));
    }
}

/// RFC 4754 §7 rules out the DER `Ecdsa-Sig-Value`: the same r and s wrapped in DER do not verify.
#[test]
fn ecdsa_der_signature_refused() {
    let name = "06-cert-ecdsa-p256";
    let v = support::vectors::load(name);
    let (hash, sig) = (hex_at(&v, "/phase1/HASH_I"), hex_at(&v, "/phase1/SIG_I"));
    let der_int = |x: &[u8]| {
        let x: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        let mut out = vec![0x02];
        let pad = x[0] & 0x80 != 0;
        out.push((x.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(&x);
        out
    };
    let (r, s) = (der_int(&sig[..32]), der_int(&sig[32..]));
    let mut der = vec![0x30, (r.len() + s.len()) as u8];
    der.extend(r);
    der.extend(s);
    let public = key(name, "a.key").verifying_key().expect("public half");
    assert_eq!(public.verify(&hash, &der), Err(CryptoError::VerificationFailed));
}

/// An RSA signature that carries a DigestInfo (RFC 8017 §9.2, what ordinary PKCS#1 signing produces) is not an
/// IKEv1 signature of the bare hash and fails; so does one over the same hash with another hash's DigestInfo.
#[test]
fn rsa_with_digest_info_refused() {
    let name = "08-cert-rsa2048";
    let v = support::vectors::load(name);
    let hash = hex_at(&v, "/phase1/HASH_I");
    let signer = key(name, "a.key");
    let public = signer.verifying_key().expect("public half");
    // DigestInfo for SHA-256 (RFC 8017 §9.2 note 1) followed by the hash: a signature of that is what a
    // library's SHA-256 PKCS#1 signature of the same message would be.
    let mut digest_info = hex::decode("3031300d060960864801650304020105000420").expect("hex");
    digest_info.extend_from_slice(&hash);
    let with_info = signer.sign(&digest_info).expect("sign");
    assert_eq!(public.verify(&hash, &with_info), Err(CryptoError::VerificationFailed));
    public.verify(&digest_info, &with_info).expect("consistent with itself");
    // Every hash length of the MM transforms signs and verifies with RSA.
    for h in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
        let x = vec![0x5a; h.output_len()];
        public.verify(&x, &signer.sign(&x).expect("sign")).expect("verify");
    }
}

/// An RSA key below 2048 bits is refused as a private key and as a peer's public key, with its size in words.
#[test]
fn short_rsa_keys_refused() {
    let pkcs1 = generate_rsa_pkcs1(1024);
    let err = SigningKey::from_der(&PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(pkcs1.clone()))).unwrap_err();
    assert_eq!(err, KeyError::RsaTooSmall { bits: 1024 });
    assert!(err.to_string().contains("1024 bits is too weak"), "{err}");
    assert_eq!(MIN_RSA_BITS, 2048);
    assert_eq!(VerifyingKey::from_spki_der(&rsa_spki(&pkcs1)).unwrap_err(), KeyError::RsaTooSmall { bits: 1024 });
}

/// Garbage, truncated keys and trailing bytes are refused without a panic.
#[test]
fn malformed_keys_refused() {
    let pem = support::vectors::pki_file("08-cert-rsa2048", "a.key");
    let PrivateKeyDer::Pkcs1(der) = PrivateKeyDer::from_pem_slice(&pem).expect("pem") else { panic!("PKCS#1") };
    let der = der.secret_pkcs1_der().to_vec();
    for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
        let k = PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der[..cut].to_vec()));
        assert!(matches!(SigningKey::from_der(&k), Err(KeyError::Malformed(_))), "cut at {cut}");
    }
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(SigningKey::from_der(&PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(trailing))).is_err());
    assert!(matches!(VerifyingKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x00]), Err(KeyError::Malformed(_))));
    assert!(matches!(VerifyingKey::from_spki_der(&[]), Err(KeyError::Malformed(_))));
}

/// A fresh RSA key of `bits` as PKCS#1 DER, straight from aws-lc (rcgen and aws-lc-rs refuse to make keys this
/// short, which is the point of the test).
fn generate_rsa_pkcs1(bits: i32) -> Vec<u8> {
    // SAFETY: plain aws-lc calls on objects created and freed here; every pointer is checked for NULL.
    unsafe {
        let rsa = ffi::RSA_new();
        let e = ffi::BN_new();
        assert!(!rsa.is_null() && !e.is_null());
        assert_eq!(ffi::BN_set_word(e, 65537), 1);
        assert_eq!(ffi::RSA_generate_key_ex(rsa, bits, e, std::ptr::null_mut()), 1);
        let mut out = std::ptr::null_mut();
        let mut len = 0;
        assert_eq!(ffi::RSA_private_key_to_bytes(&mut out, &mut len, rsa), 1);
        let der = std::slice::from_raw_parts(out, len).to_vec();
        ffi::OPENSSL_free(out.cast());
        ffi::BN_free(e);
        ffi::RSA_free(rsa);
        der
    }
}

/// The SubjectPublicKeyInfo of a PKCS#1 private key, as a certificate would carry it.
fn rsa_spki(pkcs1_private: &[u8]) -> Vec<u8> {
    // SAFETY: as above.
    unsafe {
        let rsa = ffi::RSA_private_key_from_bytes(pkcs1_private.as_ptr(), pkcs1_private.len());
        assert!(!rsa.is_null());
        let pkey = ffi::EVP_PKEY_new();
        assert_eq!(ffi::EVP_PKEY_set1_RSA(pkey, rsa), 1);
        let mut cbb = std::mem::MaybeUninit::<ffi::CBB>::zeroed();
        assert_eq!(ffi::CBB_init(cbb.as_mut_ptr(), 0), 1);
        assert_eq!(ffi::EVP_marshal_public_key(cbb.as_mut_ptr(), pkey), 1);
        let mut out = std::ptr::null_mut();
        let mut len = 0;
        assert_eq!(ffi::CBB_finish(cbb.as_mut_ptr(), &mut out, &mut len), 1);
        let der = std::slice::from_raw_parts(out, len).to_vec();
        ffi::OPENSSL_free(out.cast());
        ffi::EVP_PKEY_free(pkey);
        ffi::RSA_free(rsa);
        der
    }
}
