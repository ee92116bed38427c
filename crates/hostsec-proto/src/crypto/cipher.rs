//! AES-CBC without padding for the encrypted part of IKEv1 messages (RFC 2409 appendix B; the caller pads).

use super::{CryptoError, IkeCipher};

/// Encrypts `buf` in place (its length must be a multiple of 16) and returns the last ciphertext block, which
/// is the next IV of the phase-1 chain (RFC 2409 appendix B).
pub fn cbc_encrypt(cipher: IkeCipher, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<[u8; 16], CryptoError> {
    let _ = (cipher, key, iv, buf);
    todo!()
}

/// Decrypts `buf` in place (its length must be a multiple of 16) and returns the last *ciphertext* block,
/// captured before decryption, which is the next IV of the chain.
pub fn cbc_decrypt(cipher: IkeCipher, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<[u8; 16], CryptoError> {
    let _ = (cipher, key, iv, buf);
    todo!()
}
