//! Encryption and integrity of the CRYPTO payload ([MS-AIPS] §2.2.3.2.1): AES-CBC under the Main Mode encryption
//! key, then an HMAC ICV under SKEYID_a over the header (with its length field zero) through the end of the
//! ciphertext. Which keys these are is not named by the spec: the reading is docs/authip.md S1.
//!
//! **Experimental — not yet verified against Windows.**

use super::crypto_payload::{icv_len, split_icv, CryptoSealedRepr, InnerPlaintext};
use super::message::{AuthipBody, AuthipBodyRepr, AuthipHeader, AuthipMessage, AuthipMessageRepr};
use crate::crypto::cipher::{cbc_decrypt, cbc_encrypt};
use crate::crypto::prf::{prf, verify_mac};
use crate::crypto::{HashAlg, IkeCipher, Secret};
use crate::wire::Header;

/// AES block size: the IV length and the padding unit of an encrypted CRYPTO payload.
pub const BLOCK: usize = 16;

/// Offset of the ISAKMP header's length field, zeroed for the ICV (§2.2.3.2.1).
const LENGTH_AT: usize = 24;

/// The keys and algorithms that protect the messages of one AuthIP Main Mode SA, in both directions.
#[derive(Clone)]
pub struct SealKeys {
    /// Main Mode cipher.
    pub cipher: IkeCipher,
    /// Main Mode hash (the ICV's HMAC).
    pub hash: HashAlg,
    /// The CRYPTO encryption key (the first cryptLength bytes of SKEYID_e).
    pub encryption: Secret,
    /// SKEYID_a, the ICV key.
    pub integrity: Secret,
    /// ICV length (12 for a peer that announced MS NT5 ISAKMPOAKLEY 5–7, else by hash).
    pub icv_len: usize,
}

impl SealKeys {
    /// The keys of an SA with this suite and peer (`peer_nt5`: the MS NT5 ISAKMPOAKLEY version it announced).
    pub fn new(
        cipher: IkeCipher,
        hash: HashAlg,
        encryption: Secret,
        integrity: Secret,
        peer_nt5: Option<u32>,
    ) -> Option<Self> {
        let icv_len = icv_len(hash.ike_id(), peer_nt5)?;
        Some(SealKeys { cipher, hash, encryption, integrity, icv_len })
    }
}

/// Why a sealed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not an encrypted AuthIP message, or malformed around the ciphertext.
    #[error("malformed encrypted message: {0}")]
    Malformed(String),
    /// The ICV does not verify: not from the peer, or altered.
    #[error("its ICV does not verify")]
    BadIcv,
    /// Decrypted, but the padding or payload chain inside is invalid.
    #[error("it decrypts to an invalid payload chain: {0}")]
    BadPlaintext(String),
}

/// A decrypted message: header, the CRYPTO seqNUM, and the inner payload chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The header.
    pub header: AuthipHeader,
    /// seqNUM of the CRYPTO payload.
    pub seq: u32,
    /// Type of the first inner payload.
    pub first: u8,
    /// The inner payload chain (without padding and trailer).
    pub chain: Vec<u8>,
}

/// Builds an encrypted AuthIP message carrying `chain` (first payload type `first`).
pub fn seal(
    keys: &SealKeys,
    header: AuthipHeader,
    seq: u32,
    iv: [u8; BLOCK],
    first: u8,
    chain: &[u8],
) -> Result<Vec<u8>, String> {
    let mut body = InnerPlaintext::build(first, chain, BLOCK).map_err(|e| e.to_string())?;
    cbc_encrypt(keys.cipher, keys.encryption.expose(), &iv, &mut body).map_err(|e| e.to_string())?;
    let ct_len = body.len();
    body.resize(ct_len + keys.icv_len, 0);
    let repr = AuthipMessageRepr {
        header,
        body: AuthipBodyRepr::Sealed { crypto: CryptoSealedRepr { seq, iv: iv.to_vec() }, sealed: body },
    };
    let mut msg = repr.to_vec().map_err(|e| e.to_string())?;
    let covered = msg.len() - keys.icv_len;
    let icv = icv_over(keys, &msg[..covered]);
    msg[covered..].copy_from_slice(&icv[..keys.icv_len]);
    Ok(msg)
}

/// HMAC(SKEYID_a) over `covered` with the header's length field read as zero.
fn icv_over(keys: &SealKeys, covered: &[u8]) -> Vec<u8> {
    let (head, rest) = covered.split_at(covered.len().min(LENGTH_AT));
    let tail = rest.get(4..).unwrap_or_default();
    prf(keys.hash, keys.integrity.expose(), &[head, &[0u8; 4], tail]).as_bytes().to_vec()
}

/// Verifies and decrypts an encrypted AuthIP message (`datagram` cut to the header's length).
pub fn open(keys: &SealKeys, datagram: &[u8]) -> Result<Opened, OpenError> {
    let m = AuthipMessage::parse(datagram).map_err(|e| OpenError::Malformed(e.to_string()))?;
    let AuthipBody::Sealed { crypto, sealed } = m.body else {
        return Err(OpenError::Malformed("the E flag is clear".into()));
    };
    if crypto.iv.len() != BLOCK {
        return Err(OpenError::Malformed(format!("a {}-byte IV (AES needs {BLOCK})", crypto.iv.len())));
    }
    let (ct, icv) = split_icv(sealed, BLOCK, keys.icv_len).map_err(|e| OpenError::Malformed(e.to_string()))?;
    let covered = datagram.len().checked_sub(icv.len()).ok_or(OpenError::Malformed("too short".into()))?;
    if covered < Header::LEN {
        return Err(OpenError::Malformed("too short".into()));
    }
    let expect = icv_over(keys, &datagram[..covered]);
    if !verify_mac(&expect[..keys.icv_len], icv) {
        return Err(OpenError::BadIcv);
    }
    let mut plain = ct.to_vec();
    cbc_decrypt(keys.cipher, keys.encryption.expose(), crypto.iv, &mut plain)
        .map_err(|e| OpenError::Malformed(e.to_string()))?;
    let inner = InnerPlaintext::parse(&plain).map_err(|e| OpenError::BadPlaintext(e.to_string()))?;
    let (first, chain) = (inner.first, inner.chain.to_vec());
    Ok(Opened { header: m.header, seq: crypto.seq, first, chain })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authip::consts::exchange;
    use crate::wire::consts::payload as p;
    use crate::wire::PayloadWriter;

    fn keys(hash: HashAlg, nt5: Option<u32>) -> SealKeys {
        SealKeys::new(IkeCipher::AesCbc256, hash, Secret::from_slice(&[7; 32]), Secret::from_slice(&[9; 32]), nt5)
            .unwrap()
    }

    fn chain() -> (u8, Vec<u8>) {
        let mut buf = vec![0u8; 256];
        let mut w = PayloadWriter::new(&mut buf);
        w.push(p::NONCE, &vec![0x55u8; 32]).unwrap();
        w.push(p::HASH, &vec![0x66u8; 20]).unwrap();
        (w.first_payload(), w.written().to_vec())
    }

    fn header() -> AuthipHeader {
        AuthipHeader {
            initiator_cookie: [1; 8],
            responder_cookie: [2; 8],
            version: 0x10,
            exchange_type: exchange::QUICK_MODE,
            message_id: 0x01020304,
        }
    }

    /// §2.2.3.2.1: the ICV is 12/16/24 bytes by hash, 12 whatever the hash for MS NT5 versions 5–7.
    #[test]
    fn round_trip_every_hash_and_icv_rule() {
        let (first, c) = chain();
        for (hash, nt5, icv) in [
            (HashAlg::Sha1, None, 12),
            (HashAlg::Sha256, None, 16),
            (HashAlg::Sha384, None, 24),
            (HashAlg::Sha256, Some(7), 12),
            (HashAlg::Sha256, Some(9), 16),
        ] {
            let k = keys(hash, nt5);
            assert_eq!(k.icv_len, icv);
            let msg = seal(&k, header(), 5, [3; 16], first, &c).unwrap();
            let o = open(&k, &msg).unwrap();
            assert_eq!((o.seq, o.first, o.chain.as_slice()), (5, first, c.as_slice()));
            assert_eq!(o.header, header());
        }
    }

    /// Every single-bit change of the datagram is refused (ICV, or a parse error before it).
    #[test]
    fn any_bit_flip_is_refused() {
        let (first, c) = chain();
        let k = keys(HashAlg::Sha256, None);
        let msg = seal(&k, header(), 1, [3; 16], first, &c).unwrap();
        for i in 0..msg.len() {
            for bit in [0x01, 0x80] {
                let mut m = msg.clone();
                m[i] ^= bit;
                if (24..28).contains(&i) {
                    // the length field: a changed length no longer frames the message
                    assert!(open(&k, &m[..m.len().min(msg.len())]).is_err() || m == msg);
                    continue;
                }
                assert!(open(&k, &m).is_err(), "flip at {i}");
            }
        }
        let other = keys(HashAlg::Sha256, None);
        let wrong = SealKeys { integrity: Secret::from_slice(&[1; 32]), ..other };
        assert_eq!(open(&wrong, &msg), Err(OpenError::BadIcv));
    }

    #[test]
    fn truncations_never_panic() {
        let (first, c) = chain();
        let k = keys(HashAlg::Sha1, None);
        let msg = seal(&k, header(), 1, [3; 16], first, &c).unwrap();
        for len in 0..msg.len() {
            assert!(open(&k, &msg[..len]).is_err());
        }
    }
}
