//! The CRYPTO payload (0x85, [MS-AIPS] §2.2.3.2): the envelope directly after the ISAKMP header of every AuthIP
//! message but one. Two forms, chosen by the header's E flag:
//!
//! ```text
//! E clear (§2.2.3.2.2):  generic header (next = first clear payload) | seqNUM(4) | [IV(8)]  , clear payloads follow
//! E set   (§2.2.3.2.1):  generic header (next = 0, length = 8 + IV) | seqNUM(4) | IV(block) | ciphertext... | ICV
//!                        ciphertext = enc(payload chain | padding | Pad_Length(1) | Next_Payload(1))
//! ```
//!
//! The codec stops at the ciphertext: what it parses is the envelope, and what the crypto layer hands back after
//! decrypting is read by [`InnerPlaintext`]. The ICV size depends on the negotiated hash and the peer's vendor
//! IDs ([`icv_len`]).

use crate::wire::consts::ike_hash;
use crate::wire::writer::{Emit, Out};
use crate::wire::WireError;

/// Length of seqNUM.
pub const SEQ_LEN: usize = 4;
/// Length of the optional "IV" of the clear form ([MS-AIPS] §2.2.3.2.2: 8 bytes, present iff the body is longer
/// than 4; Windows' responder adds it once its GSS exchange has completed, note <8>).
pub const CLEAR_IV_LEN: usize = 8;
/// IV lengths accepted in the encrypted form: the block sizes of DES/3DES (8) and AES-CBC (16), which are the
/// MM ciphers Windows offers for AuthIP. A NULL MM cipher (IV of 0) is not accepted.
pub const SEALED_IV_LENS: [usize; 2] = [8, 16];
/// Shortest ICV of any integrity algorithm AuthIP can negotiate (HMAC-MD5-96/HMAC-SHA1-96, §2.2.3.2.1).
pub const MIN_ICV_LEN: usize = 12;
/// Longest padding the Pad_Length byte can announce (§2.2.3.2.1: 0 to 255).
pub const MAX_PAD_LEN: usize = 255;

fn be32(b: &[u8]) -> u32 {
    b.first_chunk::<4>().map_or(0, |w| u32::from_be_bytes(*w))
}

/// The body of a CRYPTO payload when the E flag is clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoClear {
    /// seqNUM: the per-MM-SA, per-exchange-type counter of [MS-AIPS] §3.1.1.
    pub seq: u32,
    /// The optional 8-byte "IV" (no cipher uses it in a clear message; it is carried as it came).
    pub iv: Option<[u8; CLEAR_IV_LEN]>,
}

impl CryptoClear {
    /// Parses the body (after the generic header). Its length must be 4 or 12: §2.2.3.2.2 defines only "8 bytes"
    /// (payload, without IV) and "greater than 8" with an 8-byte IV; any other length is refused rather than
    /// guessed at, because the clear payloads start right after it.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        match body.len() {
            SEQ_LEN => Ok(CryptoClear { seq: be32(body), iv: None }),
            12 => {
                let iv = body.get(SEQ_LEN..).and_then(|s| <[u8; CLEAR_IV_LEN]>::try_from(s).ok());
                Ok(CryptoClear { seq: be32(body), iv })
            }
            len => Err(WireError::BadLength { what: "clear CRYPTO payload", len: len + 4 }),
        }
    }
}

impl Emit for CryptoClear {
    fn buffer_len(&self) -> usize {
        SEQ_LEN + self.iv.map_or(0, |iv| iv.len())
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        out.u32(self.seq)?;
        match &self.iv {
            Some(iv) => out.bytes(iv),
            None => Ok(()),
        }
    }
}

/// The body of a CRYPTO payload when the E flag is set: seqNUM and IV (the ciphertext and ICV follow the payload,
/// outside its length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoSealed<'a> {
    /// seqNUM.
    pub seq: u32,
    /// The IV, one cipher block.
    pub iv: &'a [u8],
}

impl<'a> CryptoSealed<'a> {
    /// Parses the body. The generic header's length is "4 + 4 + IV length" (§2.2.3.2.3), so the body is the
    /// seqNUM and the IV, whose length must be one of [`SEALED_IV_LENS`].
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (seq, iv) = body.split_first_chunk::<SEQ_LEN>().ok_or(WireError::Truncated {
            what: "encrypted CRYPTO payload",
            need: SEQ_LEN,
            have: body.len(),
        })?;
        if !SEALED_IV_LENS.contains(&iv.len()) {
            return Err(WireError::BadLength { what: "encrypted CRYPTO payload", len: body.len() + 4 });
        }
        Ok(CryptoSealed { seq: u32::from_be_bytes(*seq), iv })
    }
}

/// The body of an encrypted CRYPTO payload to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoSealedRepr {
    /// seqNUM.
    pub seq: u32,
    /// IV (8 or 16 bytes).
    pub iv: Vec<u8>,
}

impl Emit for CryptoSealedRepr {
    fn buffer_len(&self) -> usize {
        SEQ_LEN.saturating_add(self.iv.len())
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        if !SEALED_IV_LENS.contains(&self.iv.len()) {
            return Err(WireError::BadLength { what: "encrypted CRYPTO IV", len: self.iv.len() });
        }
        out.u32(self.seq)?;
        out.bytes(&self.iv)
    }
}

/// The ICV size of an encrypted CRYPTO payload ([MS-AIPS] §2.2.3.2.1): 12 bytes for every algorithm when the peer
/// announced MS NT5 ISAKMPOAKLEY version 5, 6 or 7 (Vista, Vista SP1/2008, 7); otherwise 12 for HMAC-MD5 and
/// HMAC-SHA1 and the RFC 4868 §2.3 size (half the hash) for SHA-2. `None` for a hash AuthIP cannot negotiate.
pub fn icv_len(hash: u16, peer_ms_nt5_version: Option<u32>) -> Option<usize> {
    let by_hash = match hash {
        ike_hash::MD5 | ike_hash::SHA1 => MIN_ICV_LEN,
        ike_hash::SHA2_256 => 16,
        ike_hash::SHA2_384 => 24,
        ike_hash::SHA2_512 => 32,
        _ => return None,
    };
    let short = peer_ms_nt5_version.is_some_and(|v| super::consts::vendor_id::MS_NT5_SHORT_ICV_VERSIONS.contains(&v));
    Some(if short { MIN_ICV_LEN } else { by_hash })
}

/// Splits the bytes after an encrypted CRYPTO payload into ciphertext and ICV, checking that the ciphertext is a
/// non-empty whole number of `block` bytes (CBC, RFC 4303 §2.4 via §2.2.3.2.1).
pub fn split_icv(sealed: &[u8], block: usize, icv: usize) -> Result<(&[u8], &[u8]), WireError> {
    let ct_len = sealed.len().checked_sub(icv).ok_or(WireError::Truncated {
        what: "CRYPTO ICV",
        need: icv,
        have: sealed.len(),
    })?;
    if ct_len == 0 || block == 0 || ct_len % block != 0 {
        return Err(WireError::BadLength { what: "CRYPTO ciphertext", len: ct_len });
    }
    Ok(sealed.split_at(ct_len))
}

/// The decrypted content of an encrypted CRYPTO payload:
/// `payload chain | padding (1, 2, 3, …) | Pad_Length | Next_Payload`, decoded from the end (§2.2.3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerPlaintext<'a> {
    /// Type of the first payload of the chain (the trailer's Next_Payload).
    pub first: u8,
    /// The payload chain, which fills everything before the padding.
    pub chain: &'a [u8],
    /// Padding length.
    pub pad_len: u8,
}

impl<'a> InnerPlaintext<'a> {
    /// Reads the trailer and checks the padding and the chain. The padding must hold the default contents
    /// 1, 2, 3, … (RFC 4303 §2.4, which §2.2.3.2.1 points to; RFC 4303 asks the receiver to check them), and the
    /// payload chain must be valid by [`super::message::AuthipPayloads`] and end exactly where the padding starts.
    pub fn parse(plaintext: &'a [u8]) -> Result<Self, WireError> {
        let (rest, trailer) = plaintext.split_last_chunk::<2>().ok_or(WireError::Truncated {
            what: "CRYPTO plaintext trailer",
            need: 2,
            have: plaintext.len(),
        })?;
        let [pad_len, first] = *trailer;
        let chain_len = rest
            .len()
            .checked_sub(usize::from(pad_len))
            .ok_or(WireError::BadLength { what: "CRYPTO padding", len: usize::from(pad_len) })?;
        let (chain, padding) = rest.split_at(chain_len);
        if padding.iter().zip(1u8..).any(|(&p, want)| p != want) {
            return Err(WireError::InvalidValue { what: "CRYPTO padding contents", value: u32::from(pad_len) });
        }
        super::message::validate_chain(first, chain)?;
        Ok(InnerPlaintext { first, chain, pad_len })
    }

    /// Builds the plaintext to encrypt from a payload chain (as [`crate::wire::PayloadWriter`] writes it) whose
    /// first payload has type `first`: chain, default padding up to a multiple of `block`, Pad_Length, Next_Payload.
    /// The chain is checked as the receiver will check it, so nothing is sealed that the peer must refuse.
    pub fn build(first: u8, chain: &[u8], block: usize) -> Result<Vec<u8>, WireError> {
        if block == 0 || block > MAX_PAD_LEN {
            return Err(WireError::InvalidValue { what: "cipher block size", value: crate::wire::value_of(block) });
        }
        super::message::validate_chain(first, chain)?;
        let unpadded = chain.len().saturating_add(2);
        let pad = (block - unpadded % block) % block;
        let pad_u8 = u8::try_from(pad).map_err(|_| WireError::BadLength { what: "CRYPTO padding", len: pad })?;
        let mut out = Vec::with_capacity(unpadded.saturating_add(pad));
        out.extend_from_slice(chain);
        out.extend(1..=pad_u8);
        out.push(pad_u8);
        out.push(first);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authip::consts::payload;

    /// [MS-AIPS] §2.2.3.2.2 packet diagram: seqNUM(4) [IV(8)].
    #[test]
    fn clear_layouts() {
        let c = CryptoClear::parse(&[0, 0, 0, 7]).unwrap();
        assert_eq!(c, CryptoClear { seq: 7, iv: None });
        let body = [0, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let c = CryptoClear::parse(&body).unwrap();
        assert_eq!(c, CryptoClear { seq: 256, iv: Some([1, 2, 3, 4, 5, 6, 7, 8]) });
        let mut out = [0u8; 12];
        c.emit(&mut out).unwrap();
        assert_eq!(out, body);
        for len in (0..20).filter(|&l| l != 4 && l != 12) {
            assert!(matches!(CryptoClear::parse(&vec![0; len]), Err(WireError::BadLength { .. })), "len {len}");
        }
    }

    /// §2.2.3.2.1 packet diagram and §2.2.3.2.3 (length = 4 + 4 + IV).
    #[test]
    fn sealed_layouts() {
        let mut body = vec![0, 0, 0, 3];
        body.extend([0xaa; 16]);
        let s = CryptoSealed::parse(&body).unwrap();
        assert_eq!((s.seq, s.iv), (3, &[0xaa; 16][..]));
        let mut out = vec![0u8; 20];
        CryptoSealedRepr { seq: 3, iv: vec![0xaa; 16] }.emit(&mut out).unwrap();
        assert_eq!(out, body);
        for len in [0, 3, 4, 5, 11, 13, 19, 21, 36] {
            assert!(CryptoSealed::parse(&vec![0; len]).is_err(), "len {len}");
        }
        assert!(CryptoSealedRepr { seq: 0, iv: vec![0; 4] }.emit(&mut [0u8; 8]).is_err());
    }

    /// §2.2.3.2.1: ICV 12 for MD5/SHA-1, RFC 4868 sizes otherwise, 12 for every hash after MS NT5 v5–v7.
    #[test]
    fn icv_sizes() {
        assert_eq!(icv_len(ike_hash::SHA1, None), Some(12));
        assert_eq!(icv_len(ike_hash::MD5, Some(9)), Some(12));
        assert_eq!(icv_len(ike_hash::SHA2_256, None), Some(16));
        assert_eq!(icv_len(ike_hash::SHA2_384, Some(8)), Some(24));
        assert_eq!(icv_len(ike_hash::SHA2_256, Some(7)), Some(12));
        assert_eq!(icv_len(ike_hash::SHA2_384, Some(5)), Some(12));
        assert_eq!(icv_len(ike_hash::TIGER, None), None);
        let sealed = [0u8; 32 + 12];
        assert_eq!(split_icv(&sealed, 16, 12).map(|(c, i)| (c.len(), i.len())), Ok((32, 12)));
        assert!(split_icv(&sealed, 16, 16).is_err()); // 28 bytes of ciphertext
        assert!(split_icv(&sealed[..12], 16, 12).is_err()); // no ciphertext
        assert!(split_icv(&sealed[..8], 8, 12).is_err()); // shorter than the ICV
        assert!(split_icv(&sealed, 0, 12).is_err());
    }

    /// §2.2.3.2.1: chain | 1, 2, … | Pad_Length | Next_Payload, decoded from the end. A NOTIFY_ACK (12-byte body,
    /// 16 with its header) padded to 16-byte blocks needs 14 bytes of padding.
    #[test]
    fn inner_plaintext_layout() {
        let chain = [0, 0, 0, 16, 0, 0, 0, 1, 1, 0, 0x9c, 0x56, 0, 0, 0, 5];
        let p = InnerPlaintext::build(payload::NOTIFY, &chain, 16).unwrap();
        assert_eq!(p.len(), 32);
        assert_eq!(&p[..16], &chain);
        assert_eq!(&p[16..30], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        assert_eq!(&p[30..], &[14, payload::NOTIFY]);
        let inner = InnerPlaintext::parse(&p).unwrap();
        assert_eq!(inner, InnerPlaintext { first: payload::NOTIFY, chain: &chain, pad_len: 14 });
        // 8-byte blocks: 16 + 2 -> 6 bytes of padding.
        let p8 = InnerPlaintext::build(payload::NOTIFY, &chain, 8).unwrap();
        assert_eq!((p8.len(), p8[p8.len() - 2]), (24, 6));
    }

    #[test]
    fn inner_plaintext_malformed() {
        let chain = [0, 0, 0, 16, 0, 0, 0, 1, 1, 0, 0x9c, 0x56, 0, 0, 0, 5];
        let good = InnerPlaintext::build(payload::NOTIFY, &chain, 16).unwrap();
        for cut in 0..good.len() {
            assert!(InnerPlaintext::parse(&good[good.len() - cut..]).is_err(), "suffix {cut}");
        }
        let mut bad = good.clone();
        bad[20] = 0; // padding contents
        assert!(matches!(InnerPlaintext::parse(&bad), Err(WireError::InvalidValue { .. })));
        let mut bad = good.clone();
        bad[30] = 13; // one byte of padding taken for the chain: the chain no longer fills its space
        assert!(InnerPlaintext::parse(&bad).is_err());
        let mut bad = good.clone();
        bad[30] = 31; // more padding than plaintext
        assert!(matches!(InnerPlaintext::parse(&bad), Err(WireError::BadLength { .. })));
        let mut bad = good;
        bad[31] = payload::CRYPTO; // a CRYPTO inside CRYPTO
        assert!(InnerPlaintext::parse(&bad).is_err());
        assert!(InnerPlaintext::build(payload::NOTIFY, &chain, 0).is_err());
        assert!(InnerPlaintext::build(payload::NOTIFY, &chain[..15], 16).is_err());
    }
}
