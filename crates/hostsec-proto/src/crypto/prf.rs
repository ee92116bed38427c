//! Hashes and the IKEv1 PRF (HMAC over the negotiated hash, RFC 2409 §4).

use super::HashAlg;

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

/// prf(key, part0 | part1 | ...) = HMAC-hash over the concatenation of `parts`.
pub fn prf(hash: HashAlg, key: &[u8], parts: &[&[u8]]) -> Digest {
    let _ = (hash, key, parts);
    todo!()
}

/// hash(part0 | part1 | ...).
pub fn hash(hash: HashAlg, parts: &[&[u8]]) -> Digest {
    let _ = (hash, parts);
    todo!()
}

/// Compares two MACs in constant time.
pub fn verify_mac(expected: &[u8], received: &[u8]) -> bool {
    let _ = (expected, received);
    todo!()
}
