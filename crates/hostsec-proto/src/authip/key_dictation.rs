//! Key Dictation (0x88, [MS-AIPS] §2.2.3.7) and Key Dictation Weight (0x89, §2.2.3.8). hostsec does not dictate
//! keys; the codec reads these payloads so that a peer's QM messages that carry them still parse.

use super::crypto_payload::MIN_ICV_LEN;
use crate::wire::writer::{Emit, Out};
use crate::wire::WireError;

/// A Key Dictation payload body: `IV | enc(keys | padding | Pad_Length | Next_Payload) | ICV`, opaque here (its
/// IV, block and ICV sizes are those of the CRYPTO payload, which only the crypto layer knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDictationPayload<'a> {
    /// The whole sealed body.
    pub sealed: &'a [u8],
}

impl<'a> KeyDictationPayload<'a> {
    /// The shortest body that can hold an 8-byte IV, one 8-byte block and the shortest ICV.
    pub const MIN_LEN: usize = 8 + 8 + MIN_ICV_LEN;

    /// Parses a Key Dictation body; only its minimum length is checked.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        if body.len() < Self::MIN_LEN {
            return Err(WireError::Truncated { what: "Key Dictation payload", need: Self::MIN_LEN, have: body.len() });
        }
        Ok(KeyDictationPayload { sealed: body })
    }
}

/// A Key Dictation Weight body: one 32-bit weight; the higher weight dictates QM keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDictationWeight(pub u32);

impl KeyDictationWeight {
    /// Parses the body, which must be exactly 4 bytes.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let w = <[u8; 4]>::try_from(body)
            .map_err(|_| WireError::BadLength { what: "Key Dictation Weight payload", len: body.len() })?;
        Ok(KeyDictationWeight(u32::from_be_bytes(w)))
    }
}

impl Emit for KeyDictationWeight {
    fn buffer_len(&self) -> usize {
        4
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        Out::new(out, 4)?.u32(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [MS-AIPS] §2.2.3.8 packet diagram: Key_Dictation_Weight(4).
    #[test]
    fn weight_layout() {
        assert_eq!(KeyDictationWeight::parse(&[0, 0, 1, 2]), Ok(KeyDictationWeight(258)));
        let mut out = [0u8; 4];
        KeyDictationWeight(258).emit(&mut out).unwrap();
        assert_eq!(out, [0, 0, 1, 2]);
        for len in [0, 3, 5, 8] {
            assert!(KeyDictationWeight::parse(&vec![0; len]).is_err());
        }
    }

    /// §2.2.3.7: IV | ciphertext | ICV, at least one 8-byte IV, one block and a 12-byte ICV.
    #[test]
    fn dictation_minimum() {
        assert!(KeyDictationPayload::parse(&[0; 27]).is_err());
        assert_eq!(KeyDictationPayload::parse(&[0; 28]).map(|k| k.sealed.len()), Ok(28));
    }
}
