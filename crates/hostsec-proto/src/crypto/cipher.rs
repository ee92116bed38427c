//! AES-CBC without padding for the encrypted part of IKEv1 messages (RFC 2409 appendix B; the caller pads).

use super::{CryptoError, IkeCipher};
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::iv::FixedLength;

const BLOCK: usize = IkeCipher::BLOCK_LEN;

/// Checks what both directions need and returns the key bound to the cipher, the IV as an array, and the last
/// block of `buf` before the operation (the next IV when decrypting).
fn prepare(
    cipher: IkeCipher,
    key: &[u8],
    iv: &[u8],
    buf: &[u8],
) -> Result<(UnboundCipherKey, [u8; BLOCK]), CryptoError> {
    if key.len() != cipher.key_len() {
        return Err(CryptoError::InvalidLength("IKE cipher key"));
    }
    let iv: [u8; BLOCK] = iv.try_into().map_err(|_| CryptoError::InvalidLength("CBC IV"))?;
    // RFC 2409 appendix B: the encrypted part is padded to whole blocks, and an empty one has no last block to
    // carry the IV chain on.
    if buf.is_empty() || buf.len() % BLOCK != 0 {
        return Err(CryptoError::InvalidLength("CBC data"));
    }
    let algorithm = match cipher {
        IkeCipher::AesCbc128 => &AES_128,
        IkeCipher::AesCbc192 => &AES_192,
        IkeCipher::AesCbc256 => &AES_256,
    };
    let key = UnboundCipherKey::new(algorithm, key).map_err(|_| CryptoError::Library("AES key setup"))?;
    Ok((key, iv))
}

fn last_block(buf: &[u8]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    // `prepare` guarantees at least one whole block.
    block.copy_from_slice(&buf[buf.len() - BLOCK..]);
    block
}

/// Encrypts `buf` in place (its length must be a multiple of 16) and returns the last ciphertext block, which
/// is the next IV of the phase-1 chain (RFC 2409 appendix B).
pub fn cbc_encrypt(cipher: IkeCipher, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<[u8; 16], CryptoError> {
    let (key, iv) = prepare(cipher, key, iv, buf)?;
    let key = EncryptingKey::cbc(key).map_err(|_| CryptoError::Library("AES-CBC encrypting key"))?;
    key.less_safe_encrypt(buf, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| CryptoError::Library("AES-CBC encrypt"))?;
    Ok(last_block(buf))
}

/// Decrypts `buf` in place (its length must be a multiple of 16) and returns the last *ciphertext* block,
/// captured before decryption, which is the next IV of the chain.
pub fn cbc_decrypt(cipher: IkeCipher, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<[u8; 16], CryptoError> {
    let (key, iv) = prepare(cipher, key, iv, buf)?;
    let next_iv = last_block(buf);
    let key = DecryptingKey::cbc(key).map_err(|_| CryptoError::Library("AES-CBC decrypting key"))?;
    key.decrypt(buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| CryptoError::Library("AES-CBC decrypt"))?;
    Ok(next_iv)
}
