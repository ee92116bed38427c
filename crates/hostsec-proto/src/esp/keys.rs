//! The cryptographic core of ESP: the key objects of one SA direction and the two operations on one ESP packet
//! (SPI through ICV): seal (pad, encrypt, integrity-protect) and open (verify, decrypt).
//!
//! Every key object is built once, when the SA is created, so that the per-packet path constructs nothing:
//! AES-GCM in an `aead::LessSafeKey` (our own nonce, RFC 4106 §4; `RandomizedNonceKey` would draw a random
//! nonce per packet, which neither matches the wire format nor guarantees uniqueness), AES-CBC in
//! `cipher::EncryptingKey`/`DecryptingKey` (pre-expanded AES key schedules), HMAC in `hmac::Key` (whose
//! inner/outer pads are pre-hashed). aws-lc-rs wipes these on drop; the GCM salt, the only raw key bytes kept
//! here, is wiped by `Zeroizing`.

use super::bytes::{array, put};
use super::sa::SaError;
use super::DropReason;
use crate::crypto::{EspCipher, EspIntegrity, EspTransform};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{constant_time, hmac};
use zeroize::Zeroizing;

/// SPI and sequence number (RFC 4303 §2.1, §2.2).
pub(crate) const ESP_HEADER_LEN: usize = 8;
/// AES-GCM explicit IV on the wire (RFC 4106 §3.1).
const GCM_IV_LEN: usize = 8;
/// AES-GCM-16: a 16-octet ICV (RFC 4106 §6).
const GCM_ICV_LEN: usize = 16;
/// Salt at the end of the GCM KEYMAT (RFC 4106 §8.1).
const SALT_LEN: usize = 4;
/// AES block, which is also the CBC IV length (RFC 3602 §2.4).
const AES_BLOCK: usize = 16;
/// Longest padding: one AES block minus one.
const MAX_PAD: usize = AES_BLOCK - 1;

/// Sizes of an ESP packet under one transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// IV bytes after the ESP header.
    pub iv_len: usize,
    /// ICV bytes at the end.
    pub icv_len: usize,
    /// What payload, padding, pad length and next header must add up to a multiple of: the cipher block for
    /// CBC (RFC 3602 §2.4), 4 for GCM so that the ICV is 4-byte aligned (RFC 4303 §2.4, RFC 4106 §3.2).
    pub align: usize,
}

impl Layout {
    fn of(transform: EspTransform) -> Self {
        if transform.cipher.is_aead() {
            Layout { iv_len: GCM_IV_LEN, icv_len: GCM_ICV_LEN, align: 4 }
        } else {
            Layout { iv_len: AES_BLOCK, icv_len: transform.integrity.icv_len(), align: AES_BLOCK }
        }
    }

    /// Padding for a payload of `payload_len` bytes: the RFC 4303 §2.4 minimum. `align` is a power of two
    /// (4 or 16), so the remainders are masks.
    #[inline]
    fn pad_len(&self, payload_len: usize) -> usize {
        // -(payload + 2) mod align.
        0usize.wrapping_sub((payload_len & (self.align - 1)) + 2) & (self.align - 1)
    }

    /// Length of the ESP packet (header through ICV) carrying `payload_len` bytes.
    #[inline]
    pub fn sealed_len(&self, payload_len: usize) -> Option<usize> {
        payload_len.checked_add(ESP_HEADER_LEN + self.iv_len + 2 + self.icv_len)?.checked_add(self.pad_len(payload_len))
    }

    /// The most an ESP packet adds to its payload under this transform.
    pub fn max_overhead(&self) -> usize {
        ESP_HEADER_LEN + self.iv_len + (self.align - 1) + 2 + self.icv_len
    }
}

fn check_keys(transform: EspTransform, encryption_key: &[u8], integrity_key: &[u8]) -> Result<(), SaError> {
    if transform.cipher.is_aead() != (transform.integrity == EspIntegrity::None) {
        return Err(SaError::InvalidTransform(transform));
    }
    if encryption_key.len() != transform.cipher.keymat_len() {
        return Err(SaError::KeyLength {
            what: "encryption",
            expected: transform.cipher.keymat_len(),
            got: encryption_key.len(),
        });
    }
    if integrity_key.len() != transform.integrity.key_len() {
        return Err(SaError::KeyLength {
            what: "integrity",
            expected: transform.integrity.key_len(),
            got: integrity_key.len(),
        });
    }
    Ok(())
}

/// The GCM key and salt from the encryption KEYMAT: key, then the 4-byte salt (RFC 4106 §8.1).
fn gcm_key(cipher: EspCipher, keymat: &[u8]) -> Result<(LessSafeKey, Zeroizing<[u8; SALT_LEN]>), SaError> {
    let algorithm = match cipher {
        EspCipher::AesGcm16_128 => &aead::AES_128_GCM,
        EspCipher::AesGcm16_192 => &aead::AES_192_GCM,
        _ => &aead::AES_256_GCM,
    };
    let (key, salt) = keymat.split_at_checked(keymat.len().saturating_sub(SALT_LEN)).ok_or(SaError::KeyLength {
        what: "encryption",
        expected: cipher.keymat_len(),
        got: keymat.len(),
    })?;
    let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| SaError::KeyLength {
        what: "encryption",
        expected: cipher.keymat_len(),
        got: keymat.len(),
    })?;
    let key = UnboundKey::new(algorithm, key).map_err(|_| SaError::Library("AES-GCM key"))?;
    Ok((LessSafeKey::new(key), Zeroizing::new(salt)))
}

fn aes_key(cipher: EspCipher, key: &[u8]) -> Result<UnboundCipherKey, SaError> {
    let algorithm = match cipher {
        EspCipher::AesCbc128 => &AES_128,
        EspCipher::AesCbc192 => &AES_192,
        _ => &AES_256,
    };
    UnboundCipherKey::new(algorithm, key).map_err(|_| SaError::Library("AES key"))
}

fn hmac_key(integrity: EspIntegrity, key: &[u8]) -> hmac::Key {
    let algorithm = match integrity {
        EspIntegrity::HmacSha256_128 => hmac::HMAC_SHA256,
        _ => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    };
    hmac::Key::new(algorithm, key)
}

/// GCM nonce: salt | explicit IV (RFC 4106 §4).
#[inline]
fn gcm_nonce(salt: &[u8; SALT_LEN], iv: &[u8; GCM_IV_LEN]) -> Nonce {
    let mut n = [0u8; 12];
    let (a, b) = n.split_at_mut(SALT_LEN);
    a.copy_from_slice(salt);
    b.copy_from_slice(iv);
    Nonce::assume_unique_for_key(n)
}

/// GCM AAD: SPI | sequence number, 8 bytes, or SPI | high 32 bits | low 32 bits, 12 bytes, with ESN
/// (RFC 4106 §5). `header` is the ESP header as on the wire (SPI, low 32 bits).
#[inline]
fn gcm_aad(header: &[u8; ESP_HEADER_LEN], seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut aad = [0u8; 12];
    let (spi, rest) = header.split_at(4);
    if esn {
        let (a, b) = aad.split_at_mut(4);
        a.copy_from_slice(spi);
        let (hi, lo) = b.split_at_mut(4);
        hi.copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        lo.copy_from_slice(rest);
        (aad, 12)
    } else {
        let (a, _) = aad.split_at_mut(ESP_HEADER_LEN);
        a.copy_from_slice(header);
        (aad, ESP_HEADER_LEN)
    }
}

/// The HMAC ICV over `authenticated` (ESP header, IV, ciphertext), with the high 32 bits of the sequence
/// number appended for ESN, which are not on the wire but covered by the ICV (RFC 4303 §2.2.1, §3.3.2.1).
#[inline]
fn hmac_tag(key: &hmac::Key, authenticated: &[u8], seq: u64, esn: bool) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(authenticated);
    if esn {
        ctx.update(&((seq >> 32) as u32).to_be_bytes());
    }
    ctx.sign()
}

// One per SA, built once and never moved on the per-packet path: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum SealCipher {
    Gcm {
        key: LessSafeKey,
        salt: Zeroizing<[u8; SALT_LEN]>,
    },
    Cbc {
        key: EncryptingKey,
        /// A second, independent AES key drawn from fresh randomness when the SA is created, used only to
        /// make IVs (see [`SealingKeys::cbc_iv`]).
        iv_key: EncryptingKey,
        mac: hmac::Key,
        icv_len: usize,
    },
}

/// The outbound key objects of one SA. Crate-private: sealing with an arbitrary sequence number could repeat a
/// GCM nonce, so only [`super::OutboundSa`], which never reuses one, calls it.
pub(crate) struct SealingKeys {
    cipher: SealCipher,
    layout: Layout,
}

impl SealingKeys {
    /// Key objects for `transform` from the KEYMAT of one direction (RFC 2409 §5.5: encryption key, with
    /// the GCM salt, then integrity key) and, for CBC, 32 random bytes for the IV key.
    pub fn new(
        transform: EspTransform,
        encryption_key: &[u8],
        integrity_key: &[u8],
        iv_key: &[u8; 32],
    ) -> Result<Self, SaError> {
        check_keys(transform, encryption_key, integrity_key)?;
        let cipher = if transform.cipher.is_aead() {
            let (key, salt) = gcm_key(transform.cipher, encryption_key)?;
            SealCipher::Gcm { key, salt }
        } else {
            let key = EncryptingKey::cbc(aes_key(transform.cipher, encryption_key)?)
                .map_err(|_| SaError::Library("AES-CBC key"))?;
            let iv_key = UnboundCipherKey::new(&AES_256, iv_key).map_err(|_| SaError::Library("IV key"))?;
            let iv_key = EncryptingKey::ecb(iv_key).map_err(|_| SaError::Library("IV key"))?;
            SealCipher::Cbc {
                key,
                iv_key,
                mac: hmac_key(transform.integrity, integrity_key),
                icv_len: transform.integrity.icv_len(),
            }
        };
        Ok(SealingKeys { cipher, layout: Layout::of(transform) })
    }

    /// The packet sizes of this transform.
    #[inline]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The CBC IV of the packet with sequence number `seq`: AES-256 under the SA's IV key of the block
    /// 0^64 | seq.
    ///
    /// RFC 3602 §2.3 requires CBC IVs that an attacker cannot predict (a predictable IV, such as the last
    /// ciphertext block of the previous packet, lets a chosen-plaintext attacker test guesses of earlier
    /// plaintext blocks). Reading the system RNG per packet would be a system call (or a locked RNG shared by
    /// the datapath threads) on the hot path. Instead: the sequence numbers of an SA never repeat, and AES
    /// under a key that never leaves this object is a pseudo-random permutation, so the IVs are distinct and
    /// indistinguishable from random to anyone without that key, for one AES block operation per packet. This
    /// is the method NIST SP 800-38A appendix C recommends (encrypt a nonce), with a key of its own rather than
    /// the data key so that IV generation and data encryption share nothing. The IV key comes from the RNG
    /// passed at SA creation and dies with the SA.
    #[inline]
    fn cbc_iv(iv_key: &EncryptingKey, seq: u64) -> Result<[u8; AES_BLOCK], DropReason> {
        let mut block = [0u8; AES_BLOCK];
        let (_, low) = block.split_at_mut(8);
        low.copy_from_slice(&seq.to_be_bytes());
        iv_key.less_safe_encrypt(&mut block, EncryptionContext::None).map_err(|_| DropReason::CryptoFailure)?;
        Ok(block)
    }

    /// Seals `payload` with next header `next_header` as the ESP packet with `spi` and sequence number `seq`
    /// into the front of `out`; returns its length. The caller guarantees that `seq` was never used with these
    /// keys before: it is the GCM IV (RFC 4106 §3.1 requires it never repeat for a key).
    #[inline]
    pub fn seal(
        &self,
        spi: u32,
        seq: u64,
        esn: bool,
        payload: &[u8],
        next_header: u8,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        let total = self.layout.sealed_len(payload.len()).ok_or(DropReason::TooBig)?;
        let out = out.get_mut(..total).ok_or(DropReason::BufferTooSmall)?;
        let mut header = [0u8; ESP_HEADER_LEN];
        header[..4].copy_from_slice(&spi.to_be_bytes());
        // RFC 4303 §2.2: only the low-order 32 bits are on the wire, with or without ESN.
        header[4..].copy_from_slice(&(seq as u32).to_be_bytes());

        // Padding 1, 2, 3, …, then pad length and next header (RFC 4303 §2.4–2.6).
        let pad = self.layout.pad_len(payload.len());
        let mut trailer = [0u8; MAX_PAD + 2];
        for (i, b) in trailer.iter_mut().take(pad).enumerate() {
            *b = (i + 1) as u8;
        }
        put(&mut trailer, pad, &[pad as u8, next_header]).ok_or(DropReason::CryptoFailure)?;
        let trailer = trailer.get(..pad + 2).ok_or(DropReason::CryptoFailure)?;

        let (head, rest) = out.split_at_mut_checked(ESP_HEADER_LEN).ok_or(DropReason::BufferTooSmall)?;
        head.copy_from_slice(&header);
        let (iv_out, body) = rest.split_at_mut_checked(self.layout.iv_len).ok_or(DropReason::BufferTooSmall)?;
        match &self.cipher {
            SealCipher::Gcm { key, salt } => {
                // The IV is the sequence number: unique per key by construction (RFC 4106 §3.1, §8.1).
                let iv = seq.to_be_bytes();
                iv_out.copy_from_slice(&iv);
                let (aad, aad_len) = gcm_aad(&header, seq, esn);
                let aad = aad.get(..aad_len).ok_or(DropReason::CryptoFailure)?;
                let (ciphertext, tail) = body.split_at_mut_checked(payload.len()).ok_or(DropReason::BufferTooSmall)?;
                // Payload straight from the caller's packet into `out`, the trailer encrypted after it and the
                // tag behind: no copy of the payload before encryption.
                key.seal_out_of_place_scatter(gcm_nonce(salt, &iv), Aad::from(aad), payload, ciphertext, trailer, tail)
                    .map_err(|_| DropReason::CryptoFailure)?;
            }
            SealCipher::Cbc { key, iv_key, mac, icv_len } => {
                let iv = Self::cbc_iv(iv_key, seq)?;
                iv_out.copy_from_slice(&iv);
                let ct_len = body.len().checked_sub(*icv_len).ok_or(DropReason::BufferTooSmall)?;
                let (ciphertext, _) = body.split_at_mut_checked(ct_len).ok_or(DropReason::BufferTooSmall)?;
                let (plain, tail) = ciphertext.split_at_mut_checked(payload.len()).ok_or(DropReason::BufferTooSmall)?;
                plain.copy_from_slice(payload);
                tail.copy_from_slice(trailer);
                key.less_safe_encrypt(ciphertext, EncryptionContext::Iv128(FixedLength::from(iv)))
                    .map_err(|_| DropReason::CryptoFailure)?;
                let authenticated_len = total - icv_len;
                let (authenticated, icv) =
                    out.split_at_mut_checked(authenticated_len).ok_or(DropReason::BufferTooSmall)?;
                let tag = hmac_tag(mac, authenticated, seq, esn);
                let tag = tag.as_ref().get(..*icv_len).ok_or(DropReason::CryptoFailure)?;
                icv.copy_from_slice(tag);
            }
        }
        Ok(total)
    }
}

impl std::fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKeys").field("layout", &self.layout).finish_non_exhaustive()
    }
}

#[allow(clippy::large_enum_variant)]
enum OpenCipher {
    Gcm { key: LessSafeKey, salt: Zeroizing<[u8; SALT_LEN]> },
    Cbc { key: DecryptingKey, mac: hmac::Key, icv_len: usize },
}

/// The inbound key objects of one SA: verification and decryption of one ESP packet, without state (no replay
/// window: that is [`super::InboundSa`]'s). Public as the crypto core that known-answer tests and tools can
/// call with any sequence number.
pub struct OpeningKeys {
    cipher: OpenCipher,
    layout: Layout,
    transform: EspTransform,
}

impl OpeningKeys {
    /// Key objects for `transform` from the KEYMAT of one direction: encryption key (with the 4-byte salt
    /// appended for AES-GCM, RFC 4106 §8.1), and the integrity key (empty for AES-GCM).
    pub fn new(transform: EspTransform, encryption_key: &[u8], integrity_key: &[u8]) -> Result<Self, SaError> {
        check_keys(transform, encryption_key, integrity_key)?;
        let cipher = if transform.cipher.is_aead() {
            let (key, salt) = gcm_key(transform.cipher, encryption_key)?;
            OpenCipher::Gcm { key, salt }
        } else {
            let key = DecryptingKey::cbc(aes_key(transform.cipher, encryption_key)?)
                .map_err(|_| SaError::Library("AES-CBC key"))?;
            OpenCipher::Cbc {
                key,
                mac: hmac_key(transform.integrity, integrity_key),
                icv_len: transform.integrity.icv_len(),
            }
        };
        Ok(OpeningKeys { cipher, layout: Layout::of(transform), transform })
    }

    /// The transform.
    pub fn transform(&self) -> EspTransform {
        self.transform
    }

    /// ICV length in bytes.
    pub fn icv_len(&self) -> usize {
        self.layout.icv_len
    }

    /// IV length in bytes.
    pub fn iv_len(&self) -> usize {
        self.layout.iv_len
    }

    /// Verifies the ESP packet `esp` (SPI through ICV) whose whole sequence number is `seq` (the low 32 bits
    /// must be those on the wire; the high 32 bits matter only with `esn`), and decrypts it into the front of
    /// `out`: payload, padding, pad length, next header. Returns the plaintext length; [`parse_trailer`] takes
    /// it apart. Nothing is written to `out` unless the packet authenticated (AES-GCM decrypts while it
    /// verifies; the plaintext of a packet that fails is wiped).
    pub fn open(&self, esp: &[u8], seq: u64, esn: bool, out: &mut [u8]) -> Result<usize, DropReason> {
        self.open_with(esp, seq, esn, out, || ())
    }

    /// [`OpeningKeys::open`] with a hook that runs once the packet authenticated and before CBC decryption:
    /// the replay window update of RFC 4303 §3.4.3, which must follow integrity verification.
    #[inline]
    pub(crate) fn open_with(
        &self,
        esp: &[u8],
        seq: u64,
        esn: bool,
        out: &mut [u8],
        on_authenticated: impl FnOnce(),
    ) -> Result<usize, DropReason> {
        let fixed = ESP_HEADER_LEN + self.layout.iv_len + self.layout.icv_len;
        let ct_len = esp.len().checked_sub(fixed).ok_or(DropReason::Malformed)?;
        // At least pad length and next header; CBC needs whole blocks (RFC 3602 §2.4). GCM ciphertext should
        // be 4-byte aligned (RFC 4303 §2.4) but nothing depends on it, so it is not enforced.
        let cbc = matches!(self.cipher, OpenCipher::Cbc { .. });
        if ct_len < 2 || (cbc && ct_len % AES_BLOCK != 0) {
            return Err(DropReason::Malformed);
        }
        let header: [u8; ESP_HEADER_LEN] = array(esp, 0).ok_or(DropReason::Malformed)?;
        let (authenticated, icv) =
            esp.split_at_checked(esp.len() - self.layout.icv_len).ok_or(DropReason::Malformed)?;
        let (_, iv_and_ct) = authenticated.split_at_checked(ESP_HEADER_LEN).ok_or(DropReason::Malformed)?;
        let (iv, ciphertext) = iv_and_ct.split_at_checked(self.layout.iv_len).ok_or(DropReason::Malformed)?;
        let out = out.get_mut(..ct_len).ok_or(DropReason::BufferTooSmall)?;
        match &self.cipher {
            OpenCipher::Gcm { key, salt } => {
                let iv: [u8; GCM_IV_LEN] = iv.try_into().map_err(|_| DropReason::Malformed)?;
                let (aad, aad_len) = gcm_aad(&header, seq, esn);
                let aad = aad.get(..aad_len).ok_or(DropReason::CryptoFailure)?;
                if key.open_separate_gather(gcm_nonce(salt, &iv), Aad::from(aad), ciphertext, icv, out).is_err() {
                    out.fill(0);
                    return Err(DropReason::AuthenticationFailed);
                }
                on_authenticated();
            }
            OpenCipher::Cbc { key, mac, icv_len } => {
                let iv: [u8; AES_BLOCK] = iv.try_into().map_err(|_| DropReason::Malformed)?;
                let tag = hmac_tag(mac, authenticated, seq, esn);
                let expected = tag.as_ref().get(..*icv_len).ok_or(DropReason::CryptoFailure)?;
                // Constant time: the comparison must not tell a forger how many ICV bytes were right.
                if constant_time::verify_slices_are_equal(expected, icv).is_err() {
                    return Err(DropReason::AuthenticationFailed);
                }
                on_authenticated();
                out.copy_from_slice(ciphertext);
                key.decrypt(out, DecryptionContext::Iv128(FixedLength::from(iv)))
                    .map_err(|_| DropReason::CryptoFailure)?;
            }
        }
        Ok(ct_len)
    }
}

impl std::fmt::Debug for OpeningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpeningKeys").field("transform", &self.transform.name()).finish_non_exhaustive()
    }
}

/// Splits a decrypted ESP plaintext into payload length and next header, checking the padding: pad length and
/// next header are its last two bytes, and the padding before them must be 1, 2, 3, … (RFC 4303 §2.4: the
/// receiver checks the default padding contents; anything else is a sign of a wrong key or a broken sender).
pub fn parse_trailer(plaintext: &[u8]) -> Result<(usize, u8), DropReason> {
    let (&next_header, rest) = plaintext.split_last().ok_or(DropReason::Malformed)?;
    let (&pad_len, rest) = rest.split_last().ok_or(DropReason::Malformed)?;
    let payload_len = rest.len().checked_sub(usize::from(pad_len)).ok_or(DropReason::BadPadding)?;
    let padding = rest.get(payload_len..).ok_or(DropReason::BadPadding)?;
    if padding.iter().zip(1u8..).any(|(&b, expected)| b != expected) {
        return Err(DropReason::BadPadding);
    }
    Ok((payload_len, next_header))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::{EspCipher, EspIntegrity};

    #[test]
    fn padding_sizes() {
        let gcm = Layout::of(EspTransform { cipher: EspCipher::AesGcm16_128, integrity: EspIntegrity::None });
        let cbc = Layout::of(EspTransform { cipher: EspCipher::AesCbc128, integrity: EspIntegrity::HmacSha1_96 });
        for len in 0..100 {
            assert_eq!((len + 2 + gcm.pad_len(len)) % 4, 0);
            assert!(gcm.pad_len(len) < 4);
            assert_eq!((len + 2 + cbc.pad_len(len)) % 16, 0);
            assert!(cbc.pad_len(len) < 16);
        }
        assert_eq!(gcm.sealed_len(1380), Some(8 + 8 + 1384 + 16));
        assert_eq!(cbc.sealed_len(1380), Some(8 + 16 + 1392 + 12));
    }

    #[test]
    fn trailer_rules() {
        assert_eq!(parse_trailer(&[9, 9, 1, 2, 3, 3, 6]), Ok((2, 6)));
        assert_eq!(parse_trailer(&[0, 17]), Ok((0, 17)));
        assert_eq!(parse_trailer(&[9, 1, 3, 2, 6]), Err(DropReason::BadPadding));
        assert_eq!(parse_trailer(&[1, 2, 3, 6]), Err(DropReason::BadPadding), "pad length beyond the plaintext");
        assert_eq!(parse_trailer(&[6]), Err(DropReason::Malformed));
    }
}
