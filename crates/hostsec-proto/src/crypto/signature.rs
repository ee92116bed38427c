//! Signatures of IKEv1 phase-1 authentication (RFC 2409 §5.1): SIG_I and SIG_R over HASH_I and HASH_R.
//!
//! - RSA (method 3): PKCS#1 v1.5 type-1 padding of the bare hash, *without* the DigestInfo that RFC 8017 §9.2
//!   puts around it for ordinary signatures. RFC 2409 §5.1 signs "HASH_I" as it is, and strongSwan
//!   (`SIGN_RSA_EMSA_PKCS1_NULL`) and Windows produce and expect exactly that; the signature is as long as the
//!   modulus. aws-lc-rs only offers PKCS#1 signing with a DigestInfo, so this uses aws-lc's own raw primitives
//!   (`RSA_sign_raw` / `RSA_verify_raw` with `RSA_PKCS1_PADDING`) through aws-lc-sys: the padding is the library's,
//!   not ours.
//! - ECDSA P-256 with SHA-256 (method 9) and P-384 with SHA-384 (method 10), RFC 4754: the hash is signed as the
//!   digest (it is not hashed again) and the signature is r | s, each left-padded to the field size (64 or 96
//!   bytes), not the DER `Ecdsa-Sig-Value`. aws-lc-rs signs and verifies a given digest with its FIXED formats.
//!
//! Keys come as DER (PKCS#8, SEC1 or PKCS#1 private keys; SubjectPublicKeyInfo public keys); the PEM armour and
//! the files are the `pki` module's business. RSA keys shorter than [`MIN_RSA_BITS`] are refused in both roles.

use super::{AuthMethod, CryptoError, HashAlg};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use aws_lc_sys as ffi;
use rustls_pki_types::PrivateKeyDer;
use std::fmt;
use std::ptr::{self, NonNull};

/// The shortest RSA modulus hostsec accepts, for its own key and for peers' keys: 2048 bits (112-bit strength,
/// NIST SP 800-57 part 1 table 2, the floor of the `standard` level).
pub const MIN_RSA_BITS: u32 = 2048;

/// Why a private or public key cannot be used for IKE signatures. Messages are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not a key of the stated encoding.
    #[error("not a valid {0} key")]
    Malformed(&'static str),
    /// A well-formed key of a type IKEv1 cannot sign with.
    #[error("{0} keys cannot be used for IKEv1 signatures (use RSA, ECDSA P-256 or ECDSA P-384)")]
    UnsupportedType(&'static str),
    /// An EC key on a curve that no IKEv1 auth method hostsec implements uses.
    #[error("EC keys on curves other than P-256 and P-384 cannot be used for IKEv1 signatures")]
    UnsupportedCurve,
    /// An RSA key below [`MIN_RSA_BITS`].
    #[error("RSA key of {bits} bits is too weak: at least {MIN_RSA_BITS} bits are required")]
    RsaTooSmall {
        /// Modulus length in bits.
        bits: u32,
    },
}

/// The ECDSA parameters of an auth method: aws-lc-rs's algorithms and the hash that HASH_I/HASH_R use.
struct EcdsaParams {
    method: AuthMethod,
    signing: &'static EcdsaSigningAlgorithm,
    verification: &'static EcdsaVerificationAlgorithm,
    digest: &'static digest::Algorithm,
}

const ECDSA_PARAMS: [EcdsaParams; 2] = [
    EcdsaParams {
        method: AuthMethod::EcdsaP256,
        signing: &ECDSA_P256_SHA256_FIXED_SIGNING,
        verification: &ECDSA_P256_SHA256_FIXED,
        digest: &digest::SHA256,
    },
    EcdsaParams {
        method: AuthMethod::EcdsaP384,
        signing: &ECDSA_P384_SHA384_FIXED_SIGNING,
        verification: &ECDSA_P384_SHA384_FIXED,
        digest: &digest::SHA384,
    },
];

/// The hash that HASH_I/HASH_R must be computed with for `method`, when the method fixes one. RFC 4754 §3 ties
/// ECDSA P-256 to SHA-256 and P-384 to SHA-384, and strongSwan computes HASH_x with that hash's HMAC whatever
/// PRF the transform negotiated; RSA and PSK use the negotiated PRF.
pub fn method_hash(method: AuthMethod) -> Option<HashAlg> {
    match method {
        AuthMethod::EcdsaP256 => Some(HashAlg::Sha256),
        AuthMethod::EcdsaP384 => Some(HashAlg::Sha384),
        AuthMethod::Psk | AuthMethod::RsaSig => None,
    }
}

/// An aws-lc RSA key (private or public) owned by Rust; aws-lc wipes private components when it frees them.
struct RsaKey {
    ptr: NonNull<ffi::RSA>,
}

// SAFETY: aws-lc's RSA objects may be shared between threads: signing and verifying take no caller locks
// (aws-lc guards the lazily built Montgomery and blinding state internally), and nothing here mutates the key
// after construction.
unsafe impl Send for RsaKey {}
// SAFETY: as for `Send`.
unsafe impl Sync for RsaKey {}

impl Drop for RsaKey {
    fn drop(&mut self) {
        // SAFETY: `ptr` is an RSA that this value owns (one reference), freed once here.
        unsafe { ffi::RSA_free(self.ptr.as_ptr()) }
    }
}

/// An EVP_PKEY owned by Rust, only while a key's type is looked at.
struct EvpKey(NonNull<ffi::EVP_PKEY>);

impl Drop for EvpKey {
    fn drop(&mut self) {
        // SAFETY: the EVP_PKEY is owned by this value and freed once.
        unsafe { ffi::EVP_PKEY_free(self.0.as_ptr()) }
    }
}

impl EvpKey {
    /// Parses a whole DER string with one of aws-lc's `EVP_parse_*` functions; trailing bytes are an error.
    fn parse(der: &[u8], parse: unsafe extern "C" fn(*mut ffi::CBS) -> *mut ffi::EVP_PKEY) -> Option<EvpKey> {
        let mut cbs = ffi::CBS { data: der.as_ptr(), len: der.len() };
        // SAFETY: `cbs` points into `der`, which outlives the call; the parser only reads within it.
        let key = NonNull::new(unsafe { parse(&mut cbs) }).map(EvpKey)?;
        (cbs.len == 0).then_some(key)
    }

    fn id(&self) -> i32 {
        // SAFETY: a valid EVP_PKEY.
        unsafe { ffi::EVP_PKEY_id(self.0.as_ptr()) }
    }

    /// The RSA inside, with its own reference.
    fn rsa(&self) -> Option<RsaKey> {
        // SAFETY: a valid EVP_PKEY; `EVP_PKEY_get1_RSA` returns a new reference (or NULL if it holds no RSA).
        NonNull::new(unsafe { ffi::EVP_PKEY_get1_RSA(self.0.as_ptr()) }).map(|ptr| RsaKey { ptr })
    }
}

impl RsaKey {
    /// PKCS#1 RSAPrivateKey DER.
    fn from_pkcs1_private(der: &[u8]) -> Option<RsaKey> {
        // SAFETY: reads `der.len()` bytes of `der`; returns an owned RSA or NULL.
        NonNull::new(unsafe { ffi::RSA_private_key_from_bytes(der.as_ptr(), der.len()) }).map(|ptr| RsaKey { ptr })
    }

    fn bits(&self) -> u32 {
        // SAFETY: a valid RSA.
        unsafe { ffi::RSA_bits(self.ptr.as_ptr()) }
    }

    /// Modulus length in bytes: the length of every signature.
    fn size(&self) -> usize {
        // SAFETY: a valid RSA.
        unsafe { ffi::RSA_size(self.ptr.as_ptr()) as usize }
    }

    /// Whether the private key is consistent (p·q = n, d·e = 1 mod λ(n), CRT values), so that a corrupt key
    /// file fails at load and not in the middle of a negotiation.
    fn check(&self) -> bool {
        // SAFETY: a valid RSA.
        unsafe { ffi::RSA_check_key(self.ptr.as_ptr()) == 1 }
    }

    /// The public key as PKCS#1 RSAPublicKey DER (n and e), to compare keys.
    fn public_der(&self) -> Result<Vec<u8>, CryptoError> {
        let mut out: *mut u8 = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: a valid RSA; on success aws-lc allocates `len` bytes at `out`, which are copied and freed below.
        if unsafe { ffi::RSA_public_key_to_bytes(&mut out, &mut len, self.ptr.as_ptr()) } != 1 || out.is_null() {
            return Err(CryptoError::Library("RSA_public_key_to_bytes"));
        }
        // SAFETY: `out` holds `len` initialised bytes that aws-lc allocated for us.
        let der = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
        // SAFETY: `out` came from aws-lc's allocator and is freed once.
        unsafe { ffi::OPENSSL_free(out.cast()) };
        Ok(der)
    }

    /// RSASSA-PKCS1-v1_5 type-1 padding of `hash` without DigestInfo, then the private-key operation.
    fn sign_raw(&self, hash: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut sig = vec![0u8; self.size()];
        let mut len = 0usize;
        // SAFETY: a valid private RSA; `sig` has `sig.len()` writable bytes; `hash` is read for its length.
        let ok = unsafe {
            ffi::RSA_sign_raw(
                self.ptr.as_ptr(),
                &mut len,
                sig.as_mut_ptr(),
                sig.len(),
                hash.as_ptr(),
                hash.len(),
                ffi::RSA_PKCS1_PADDING,
            )
        };
        if ok != 1 || len != sig.len() {
            return Err(CryptoError::Library("RSA_sign_raw"));
        }
        Ok(sig)
    }

    /// The public-key operation and the type-1 padding check; true when what is inside equals `hash`.
    fn verify_raw(&self, hash: &[u8], sig: &[u8]) -> bool {
        if sig.len() != self.size() {
            return false;
        }
        let mut out = vec![0u8; self.size()];
        let mut len = 0usize;
        // SAFETY: a valid RSA; `out` has `out.len()` writable bytes; `sig` is read for its length.
        let ok = unsafe {
            ffi::RSA_verify_raw(
                self.ptr.as_ptr(),
                &mut len,
                out.as_mut_ptr(),
                out.len(),
                sig.as_ptr(),
                sig.len(),
                ffi::RSA_PKCS1_PADDING,
            )
        };
        // The content is public (the peer's own hash), so a plain comparison would do; the library's
        // constant-time one costs nothing.
        ok == 1 && len <= out.len() && aws_lc_rs::constant_time::verify_slices_are_equal(&out[..len], hash).is_ok()
    }
}

fn rsa_checked(key: RsaKey) -> Result<RsaKey, KeyError> {
    let bits = key.bits();
    if bits < MIN_RSA_BITS {
        return Err(KeyError::RsaTooSmall { bits });
    }
    Ok(key)
}

enum SigningInner {
    Rsa(RsaKey),
    Ecdsa { params: &'static EcdsaParams, key: EcdsaKeyPair },
}

/// This host's private key, able to make SIG_I / SIG_R.
pub struct SigningKey {
    inner: SigningInner,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, private part redacted)", self.description())
    }
}

impl SigningKey {
    /// Loads a DER private key: PKCS#8 (RSA or EC), SEC1 (EC) or PKCS#1 (RSA). EC keys must be on P-256 or
    /// P-384, RSA keys at least [`MIN_RSA_BITS`] long and consistent.
    pub fn from_der(key: &PrivateKeyDer<'_>) -> Result<SigningKey, KeyError> {
        let inner = match key {
            PrivateKeyDer::Pkcs1(der) => {
                let rsa =
                    RsaKey::from_pkcs1_private(der.secret_pkcs1_der()).ok_or(KeyError::Malformed("PKCS#1 RSA"))?;
                SigningInner::Rsa(rsa_private_checked(rsa)?)
            }
            PrivateKeyDer::Sec1(der) => ecdsa_private(der.secret_sec1_der(), "SEC1 EC")?,
            PrivateKeyDer::Pkcs8(der) => {
                let der = der.secret_pkcs8_der();
                let evp = EvpKey::parse(der, ffi::EVP_parse_private_key).ok_or(KeyError::Malformed("PKCS#8"))?;
                match evp.id() {
                    ffi::EVP_PKEY_RSA => {
                        SigningInner::Rsa(rsa_private_checked(evp.rsa().ok_or(KeyError::Malformed("PKCS#8 RSA"))?)?)
                    }
                    ffi::EVP_PKEY_EC => ecdsa_private(der, "PKCS#8 EC")?,
                    other => return Err(KeyError::UnsupportedType(key_type_name(other))),
                }
            }
            _ => return Err(KeyError::Malformed("private")),
        };
        Ok(SigningKey { inner })
    }

    /// The auth method this key signs for (3, 9 or 10).
    pub fn auth_method(&self) -> AuthMethod {
        match &self.inner {
            SigningInner::Rsa(_) => AuthMethod::RsaSig,
            SigningInner::Ecdsa { params, .. } => params.method,
        }
    }

    /// Key type and size for logs and `hostsec certs`, e.g. `RSA-3072` or `ECDSA P-256`.
    pub fn description(&self) -> String {
        match &self.inner {
            SigningInner::Rsa(rsa) => format!("RSA-{}", rsa.bits()),
            SigningInner::Ecdsa { params, .. } => ecdsa_name(params.method).to_string(),
        }
    }

    /// Signs HASH_I or HASH_R. For ECDSA the hash must have the method's length (32 bytes for P-256, 48 for
    /// P-384, see [`method_hash`]); for RSA any hash hostsec implements.
    pub fn sign(&self, hash: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            SigningInner::Rsa(rsa) => rsa.sign_raw(hash),
            SigningInner::Ecdsa { params, key } => {
                let digest = digest::Digest::import_less_safe(hash, params.digest)
                    .map_err(|_| CryptoError::InvalidLength("ECDSA hash"))?;
                let sig = key.sign_digest(&digest).map_err(|_| CryptoError::Library("ECDSA sign"))?;
                Ok(sig.as_ref().to_vec())
            }
        }
    }

    /// The public half, to check that a certificate belongs to this key and to verify own signatures in tests.
    pub fn verifying_key(&self) -> Result<VerifyingKey, CryptoError> {
        match &self.inner {
            SigningInner::Rsa(rsa) => {
                let public = rsa.public_der()?;
                // SAFETY: reads `public.len()` bytes; returns an owned public RSA or NULL.
                let ptr = unsafe { ffi::RSA_public_key_from_bytes(public.as_ptr(), public.len()) };
                let rsa = NonNull::new(ptr).map(|ptr| RsaKey { ptr }).ok_or(CryptoError::Library("RSA public"))?;
                Ok(VerifyingKey { inner: VerifyingInner::Rsa(rsa) })
            }
            SigningInner::Ecdsa { params, key } => {
                let spki = key.public_key().as_der().map_err(|_| CryptoError::Library("EC public key"))?;
                let key = ParsedPublicKey::new(params.verification, spki.as_ref())
                    .map_err(|_| CryptoError::Library("EC public key"))?;
                Ok(VerifyingKey { inner: VerifyingInner::Ecdsa { params, key } })
            }
        }
    }
}

fn rsa_private_checked(rsa: RsaKey) -> Result<RsaKey, KeyError> {
    let rsa = rsa_checked(rsa)?;
    if !rsa.check() {
        return Err(KeyError::Malformed("RSA private (inconsistent components)"));
    }
    Ok(rsa)
}

/// An EC private key (PKCS#8 or SEC1) on one of the two curves of RFC 4754 that hostsec supports.
fn ecdsa_private(der: &[u8], what: &'static str) -> Result<SigningInner, KeyError> {
    for params in &ECDSA_PARAMS {
        if let Ok(key) = EcdsaKeyPair::from_private_key_der(params.signing, der) {
            return Ok(SigningInner::Ecdsa { params, key });
        }
    }
    // Either not EC at all or another curve; tell the two apart for the message.
    match EvpKey::parse(der, ffi::EVP_parse_private_key) {
        Some(evp) if evp.id() == ffi::EVP_PKEY_EC => Err(KeyError::UnsupportedCurve),
        _ => Err(KeyError::Malformed(what)),
    }
}

fn ecdsa_name(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::EcdsaP384 => "ECDSA P-384",
        _ => "ECDSA P-256",
    }
}

fn key_type_name(evp_id: i32) -> &'static str {
    match evp_id {
        ffi::EVP_PKEY_ED25519 => "Ed25519",
        ffi::EVP_PKEY_DSA => "DSA",
        _ => "this type of",
    }
}

enum VerifyingInner {
    Rsa(RsaKey),
    Ecdsa { params: &'static EcdsaParams, key: ParsedPublicKey },
}

/// A peer's public key (from its certificate), able to check SIG_I / SIG_R.
pub struct VerifyingKey {
    inner: VerifyingInner,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.description())
    }
}

impl VerifyingKey {
    /// Reads a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), as found in a certificate. RSA keys shorter than
    /// [`MIN_RSA_BITS`] and EC keys on other curves than P-256 and P-384 are refused.
    pub fn from_spki_der(spki: &[u8]) -> Result<VerifyingKey, KeyError> {
        let evp = EvpKey::parse(spki, ffi::EVP_parse_public_key).ok_or(KeyError::Malformed("SubjectPublicKeyInfo"))?;
        let inner = match evp.id() {
            ffi::EVP_PKEY_RSA => VerifyingInner::Rsa(rsa_checked(evp.rsa().ok_or(KeyError::Malformed("RSA public"))?)?),
            ffi::EVP_PKEY_EC => {
                let found = ECDSA_PARAMS
                    .iter()
                    .find_map(|params| ParsedPublicKey::new(params.verification, spki).ok().map(|key| (params, key)));
                let (params, key) = found.ok_or(KeyError::UnsupportedCurve)?;
                VerifyingInner::Ecdsa { params, key }
            }
            other => return Err(KeyError::UnsupportedType(key_type_name(other))),
        };
        Ok(VerifyingKey { inner })
    }

    /// The auth method this key verifies (3, 9 or 10): a peer whose certificate holds an ECDSA P-256 key can
    /// only authenticate with method 9, and so on.
    pub fn auth_method(&self) -> AuthMethod {
        match &self.inner {
            VerifyingInner::Rsa(_) => AuthMethod::RsaSig,
            VerifyingInner::Ecdsa { params, .. } => params.method,
        }
    }

    /// Key type and size for logs and `hostsec certs`, e.g. `RSA-2048` or `ECDSA P-384`.
    pub fn description(&self) -> String {
        match &self.inner {
            VerifyingInner::Rsa(rsa) => format!("RSA-{}", rsa.bits()),
            VerifyingInner::Ecdsa { params, .. } => ecdsa_name(params.method).to_string(),
        }
    }

    /// Checks SIG_I / SIG_R over HASH_I / HASH_R. Any failure (wrong length, bad padding, another hash inside,
    /// wrong key) is [`CryptoError::VerificationFailed`].
    pub fn verify(&self, hash: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let ok = match &self.inner {
            VerifyingInner::Rsa(rsa) => rsa.verify_raw(hash, signature),
            VerifyingInner::Ecdsa { params, key } => digest::Digest::import_less_safe(hash, params.digest)
                .is_ok_and(|digest| key.verify_digest_sig(&digest, signature).is_ok()),
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::VerificationFailed)
        }
    }

    /// Whether `other` is the same public key (a certificate's key against this host's private key).
    pub fn same_key(&self, other: &VerifyingKey) -> bool {
        match (&self.inner, &other.inner) {
            (VerifyingInner::Rsa(a), VerifyingInner::Rsa(b)) => match (a.public_der(), b.public_der()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
            (VerifyingInner::Ecdsa { params: pa, key: a }, VerifyingInner::Ecdsa { params: pb, key: b }) => {
                pa.method == pb.method && matches!((a.as_der(), b.as_der()), (Ok(a), Ok(b)) if a.as_ref() == b.as_ref())
            }
            _ => false,
        }
    }
}
