//! Hashes and the IKEv1 PRF (HMAC over the negotiated hash, RFC 2409 §4).
//!
//! Neither `prf` nor `hash` allocates: the HMAC state of aws-lc-rs lives inline, and the hash runs aws-lc's
//! SHA functions on a context on the stack (aws-lc's `EVP_MD_CTX`, which `aws_lc_rs::digest::Context` wraps,
//! mallocs its state in `EVP_DigestInit_ex`, so it is not used here).

use super::HashAlg;
use aws_lc_rs::{constant_time, hmac};
use aws_lc_sys as ffi;
use core::ffi::{c_int, c_void};
use core::mem::MaybeUninit;
use zeroize::Zeroize;

/// Room for the longest output of the hashes hostsec implements (SHA-384: 48 bytes), rounded up.
const DIGEST_CAPACITY: usize = 64;

/// A hash or PRF output (up to SHA-384's 48 bytes), kept inline so that hashing allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    bytes: [u8; 64],
    len: usize,
}

impl Digest {
    /// The output bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Output length in bytes (the hash's output length).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the output is empty (only after [`Zeroize::zeroize`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn from_output(out: &[u8]) -> Self {
        let len = out.len().min(DIGEST_CAPACITY);
        let mut bytes = [0u8; DIGEST_CAPACITY];
        bytes[..len].copy_from_slice(&out[..len]);
        Digest { bytes, len }
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", hex::encode(self.as_bytes()))
    }
}

/// `Digest` is `Copy` and so cannot wipe itself on drop: code that keeps PRF outputs that are key material
/// (the K1..Kn blocks of RFC 2409 appendix B and §5.5) wipes its copies with this.
impl Zeroize for Digest {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
        self.len = 0;
    }
}

fn hmac_algorithm(hash: HashAlg) -> hmac::Algorithm {
    match hash {
        HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => hmac::HMAC_SHA256,
        HashAlg::Sha384 => hmac::HMAC_SHA384,
    }
}

/// prf(key, part0 | part1 | ...) = HMAC-hash over the concatenation of `parts`.
pub fn prf(hash: HashAlg, key: &[u8], parts: &[&[u8]]) -> Digest {
    let key = hmac::Key::new(hmac_algorithm(hash), key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    Digest::from_output(ctx.sign().as_ref())
}

/// hash(part0 | part1 | ...).
pub fn hash(hash: HashAlg, parts: &[&[u8]]) -> Digest {
    let mut out = [0u8; DIGEST_CAPACITY];
    // The aws-lc SHA functions cannot fail for valid pointers: an error here is a broken library, not input.
    let ok = match hash {
        HashAlg::Sha1 => {
            stream_hash::<ffi::SHA_CTX>(ffi::SHA1_Init, ffi::SHA1_Update, ffi::SHA1_Final, parts, &mut out)
        }
        HashAlg::Sha256 => {
            stream_hash::<ffi::SHA256_CTX>(ffi::SHA256_Init, ffi::SHA256_Update, ffi::SHA256_Final, parts, &mut out)
        }
        HashAlg::Sha384 => {
            stream_hash::<ffi::SHA512_CTX>(ffi::SHA384_Init, ffi::SHA384_Update, ffi::SHA384_Final, parts, &mut out)
        }
    };
    assert!(ok, "aws-lc SHA function failed");
    Digest::from_output(&out[..hash.output_len()])
}

type InitFn<C> = unsafe extern "C" fn(*mut C) -> c_int;
type UpdateFn<C> = unsafe extern "C" fn(*mut C, *const c_void, usize) -> c_int;
type FinalFn<C> = unsafe extern "C" fn(*mut u8, *mut C) -> c_int;

/// Runs one of aws-lc's `SHA*_Init/Update/Final` triples over `parts` with the context on the stack. `out` has
/// room for every digest length (`DIGEST_CAPACITY` >= 48).
fn stream_hash<C>(
    init: InitFn<C>,
    update: UpdateFn<C>,
    finish: FinalFn<C>,
    parts: &[&[u8]],
    out: &mut [u8; DIGEST_CAPACITY],
) -> bool {
    let mut ctx = MaybeUninit::<C>::zeroed();
    // SAFETY: `ctx` is writable memory of the exact C type that `init` expects (the callers pair each context
    // type with its own functions); `SHA*_Init` initialises every field.
    let mut ok = unsafe { init(ctx.as_mut_ptr()) } == 1;
    for part in parts {
        // SAFETY: `ctx` was initialised above; `part` is a live slice, read for `part.len()` bytes only.
        ok &= unsafe { update(ctx.as_mut_ptr(), part.as_ptr().cast(), part.len()) } == 1;
    }
    // SAFETY: `out` has DIGEST_CAPACITY (64) writable bytes, more than the 20/32/48 that `SHA*_Final` writes.
    ok &= unsafe { finish(out.as_mut_ptr(), ctx.as_mut_ptr()) } == 1;
    // SAFETY: `ctx` is `size_of::<C>()` bytes of writable memory that nothing reads afterwards.
    unsafe { ffi::OPENSSL_cleanse(ctx.as_mut_ptr().cast(), core::mem::size_of::<C>()) };
    ok
}

/// Compares two MACs in constant time (in their contents; lengths are public). False when the lengths differ
/// and when `expected` is empty, so that a truncated or missing MAC never verifies.
pub fn verify_mac(expected: &[u8], received: &[u8]) -> bool {
    !expected.is_empty()
        && expected.len() == received.len()
        && constant_time::verify_slices_are_equal(expected, received).is_ok()
}
