//! The AuthIP key derivation function ("A-KDF", [MS-AIPS] §3.1 notation and §3.1.7.4): the SP 800-56A
//! concatenation KDF over the Main Mode hash, and the OtherInfo string AuthIP feeds it.
//!
//! **Experimental — not yet verified against Windows.** The KDF itself is the standard construction and is checked
//! against published vectors; the OtherInfo encoding is this module's reading of §3.1.7.4 (see `docs/authip.md`,
//! "Key schedule").

use crate::crypto::prf::{self, Digest};
use crate::crypto::{HashAlg, IkeCipher, Secret};
use crate::wire::consts::{ike_encr, ike_hash};
use zeroize::{Zeroize, Zeroizing};

/// The longest output [`concat_kdf`] produces. AuthIP's longest derivation is one QM key block (a 32-byte
/// integrity key plus a 32-byte key and 4-byte salt, 68 bytes); the cap leaves room for longer algorithms while
/// making a length computed from garbage fail loudly instead of hashing for minutes.
pub const MAX_KDF_OUTPUT: usize = 1024;

/// Why an AuthIP key derivation was refused. Messages are safe to log: they never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthipKeyError {
    /// The Main Mode hash is MD5: [MS-AIPS] allows it, hostsec does not (it is below every hostsec encryption
    /// group), so no AuthIP key is ever derived with it.
    #[error("MD5 is not accepted as the AuthIP Main Mode hash")]
    Md5Refused,
    /// A Main Mode hash attribute value hostsec does not implement.
    #[error("unsupported AuthIP Main Mode hash {0}")]
    UnsupportedHash(u16),
    /// A requested key length of zero or above [`MAX_KDF_OUTPUT`].
    #[error("A-KDF output length {0} out of range (1..={MAX_KDF_OUTPUT})")]
    OutputLength(usize),
    /// A Diffie-Hellman secret that is present but empty: "no DH" is said with `None`, so an empty value is a
    /// caller bug that would silently drop g^xy from every key.
    #[error("empty Diffie-Hellman shared secret")]
    EmptyDhSecret,
    /// A hash chain over fewer messages than the proof needs.
    #[error("{what} needs at least {need} messages, got {have}")]
    TooFewMessages {
        /// Which proof.
        what: &'static str,
        /// The minimum.
        need: usize,
        /// What the caller gave.
        have: usize,
    },
}

/// The Main Mode hash from its SA attribute value, refusing MD5 by name so that the log says why.
pub fn authip_hash_from_ike_id(id: u16) -> Result<HashAlg, AuthipKeyError> {
    match id {
        ike_hash::MD5 => Err(AuthipKeyError::Md5Refused),
        _ => HashAlg::from_ike_id(id).ok_or(AuthipKeyError::UnsupportedHash(id)),
    }
}

/// Crypto-ID: the 16-bit number of the Main Mode encryption algorithm that A-KDF puts in AlgorithmID ([MS-AIPS]
/// §3.1 notation, pointing at RFC 2409 appendix A). RFC 2409's table stops at CAST (6); AES is taken as 7, its
/// IANA value in the same registry and the value the MM SA attribute carries, so the key length is not part of it.
pub fn crypto_id(cipher: IkeCipher) -> u16 {
    match cipher {
        IkeCipher::AesCbc128 | IkeCipher::AesCbc192 | IkeCipher::AesCbc256 => ike_encr::AES_CBC,
    }
}

/// SP 800-56A §5.8.1 concatenation KDF (= SP 800-56C one-step KDF with a hash):
/// `H(counter | Z | OtherInfo)` for counter = 1, 2, … as 32-bit big-endian, concatenated and cut to `out_len`.
///
/// `other_info` is given as parts so that secret parts (SKEYID, GSS-API secrets) are never copied into a
/// scratch buffer. `z` may be empty: AuthIP runs Kerberos and TLS Main Modes without Diffie-Hellman and then
/// uses a zero-length Z (§3.1.7.4), which is why this is written over the hash rather than
/// `aws_lc_rs::kdf::sskdf_digest` (that refuses an empty secret and has no SHA-1).
pub fn concat_kdf(hash: HashAlg, z: &[u8], other_info: &[&[u8]], out_len: usize) -> Result<Secret, AuthipKeyError> {
    if out_len == 0 || out_len > MAX_KDF_OUTPUT {
        return Err(AuthipKeyError::OutputLength(out_len));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(out_len + hash.output_len()));
    let mut counter: u32 = 1;
    while out.len() < out_len {
        let counter_bytes = counter.to_be_bytes();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(other_info.len() + 2);
        parts.push(&counter_bytes);
        parts.push(z);
        parts.extend_from_slice(other_info);
        let mut block: Digest = prf::hash(hash, &parts);
        out.extend_from_slice(block.as_bytes());
        block.zeroize();
        // MAX_KDF_OUTPUT keeps the counter tiny; SP 800-56A's 2^32 - 1 block limit cannot be reached.
        counter += 1;
    }
    out.truncate(out_len);
    Ok(Secret::from_slice(&out))
}

/// What every A-KDF call of one Main Mode SA shares: the hash, and the fixed head of OtherInfo
/// (AlgorithmID = Crypto-ID, PartyUInfo = CKY-I, PartyVInfo = CKY-R, §3.1.7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthipKdf {
    /// The negotiated Main Mode hash (the A-KDF hash, and the PRF's).
    pub hash: HashAlg,
    /// The negotiated Main Mode cipher (Crypto-ID and cryptLength).
    pub cipher: IkeCipher,
    /// Initiator cookie.
    pub cky_i: [u8; 8],
    /// Responder cookie.
    pub cky_r: [u8; 8],
    algorithm_id: [u8; 2],
}

impl AuthipKdf {
    /// The KDF context of a Main Mode SA.
    pub fn new(hash: HashAlg, cipher: IkeCipher, cky_i: [u8; 8], cky_r: [u8; 8]) -> Self {
        AuthipKdf { hash, cipher, cky_i, cky_r, algorithm_id: crypto_id(cipher).to_be_bytes() }
    }

    /// OtherInfo(pubInfo, privInfo) of §3.1.7.4, as the ordered parts that are hashed after Z.
    ///
    /// This is the one place that fixes the encoding: plain concatenation with no length prefixes,
    /// Crypto-ID as 2 bytes big-endian, the cookies as their 8 wire bytes. SP 800-56A's own field formats
    /// (fixed length or length-prefixed) are not applied because §3.1.7.4 defines OtherInfo as a concatenation
    /// with "|", and Windows' CNG SP800_56A_CONCAT KDF concatenates its parameter buffers the same way.
    pub fn other_info<'a>(&'a self, pub_info: &[&'a [u8]], priv_info: &[&'a [u8]]) -> Vec<&'a [u8]> {
        let mut parts = Vec::with_capacity(3 + pub_info.len() + priv_info.len());
        parts.push(&self.algorithm_id[..]);
        parts.push(&self.cky_i[..]);
        parts.push(&self.cky_r[..]);
        parts.extend_from_slice(pub_info);
        parts.extend_from_slice(priv_info);
        parts
    }

    /// A-KDF(Z, OtherInfo(pubInfo, privInfo), len) with this SA's hash. `z` is `None` when no Diffie-Hellman
    /// was done (the spec's zero-length Z); an empty `Some` is refused.
    pub fn derive(
        &self,
        z: Option<&[u8]>,
        pub_info: &[&[u8]],
        priv_info: &[&[u8]],
        len: usize,
    ) -> Result<Secret, AuthipKeyError> {
        let z = match z {
            Some([]) => return Err(AuthipKeyError::EmptyDhSecret),
            Some(z) => z,
            None => &[],
        };
        concat_kdf(self.hash, z, &self.other_info(pub_info, priv_info), len)
    }
}

#[cfg(test)]
mod tests;
