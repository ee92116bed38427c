//! AuthIP authentication proofs ([MS-AIPS] §3.1.7.4): Auth1/Auth2 over the Main Mode messages and Auth3/Auth4
//! over the Extended Mode messages, each carried in a HASH payload.
//!
//! **Experimental — not yet verified against Windows.** What the bytes of each message "#n" are is not stated
//! (the spec only says the payloads are hashed as plaintext); these functions hash exactly the byte strings the
//! caller passes. The reading this module recommends, and that the state machine should pass, is the payload
//! chain inside the CRYPTO payload: for a clear message the bytes after the clear CRYPTO payload, for an encrypted
//! one [`super::InnerPlaintext::chain`] (so the ISAKMP header, the CRYPTO payload itself, padding and ICV are out).
//! `docs/authip.md` ("Key schedule") lists the alternatives and how a capture tells them apart.

use super::kdf::AuthipKeyError;
use crate::crypto::prf::{self, Digest};
use crate::crypto::{HashAlg, Secret};

/// Main Mode transcript hash: `hash(#n | … hash(#3 | sha256(#2 | sha256(#1))))`.
///
/// The first two links are SHA-256 whatever was negotiated (no hash is agreed before MM #2); from #3 on the
/// negotiated hash. The chain grows with the number of MM messages (one GSS-API round trip per two), so it takes
/// every clear MM message in order; at least #1 and #2.
pub fn mm_transcript_hash(hash: HashAlg, messages: &[&[u8]]) -> Result<Digest, AuthipKeyError> {
    if messages.len() < 2 {
        return Err(AuthipKeyError::TooFewMessages { what: "Auth1/Auth2", need: 2, have: messages.len() });
    }
    let mut link = prf::hash(HashAlg::Sha256, &[messages[0]]);
    link = prf::hash(HashAlg::Sha256, &[messages[1], link.as_bytes()]);
    for message in &messages[2..] {
        link = prf::hash(hash, &[message, link.as_bytes()]);
    }
    Ok(link)
}

/// Auth1 = prf(SKEYID, MM transcript hash | 0x01): the initiator's proof, sent in MM #5.
///
/// §3.1.7.4 prints Auth1 without the inner `hash(` around `#3 | …`; that is taken as a typo and Auth2's shape
/// is used for both, since the two differ only in the final byte everywhere else.
pub fn auth1(hash: HashAlg, skeyid: &Secret, mm_messages: &[&[u8]]) -> Result<Digest, AuthipKeyError> {
    mm_proof(hash, skeyid, mm_messages, 0x01)
}

/// Auth2 = prf(SKEYID, MM transcript hash | 0x02): the responder's proof, sent in MM #6.
pub fn auth2(hash: HashAlg, skeyid: &Secret, mm_messages: &[&[u8]]) -> Result<Digest, AuthipKeyError> {
    mm_proof(hash, skeyid, mm_messages, 0x02)
}

fn mm_proof(hash: HashAlg, skeyid: &Secret, messages: &[&[u8]], role: u8) -> Result<Digest, AuthipKeyError> {
    let transcript = mm_transcript_hash(hash, messages)?;
    Ok(prf::prf(hash, skeyid.expose(), &[transcript.as_bytes(), &[role]]))
}

/// Extended Mode transcript hash: `hash(#last | … hash(#8 | hash(#7)))`, every link with the negotiated hash
/// (the MM has long agreed on one). At least one message.
pub fn em_transcript_hash(hash: HashAlg, messages: &[&[u8]]) -> Result<Digest, AuthipKeyError> {
    let (first, rest) =
        messages.split_first().ok_or(AuthipKeyError::TooFewMessages { what: "Auth3/Auth4", need: 1, have: 0 })?;
    let mut link = prf::hash(hash, &[first]);
    for message in rest {
        link = prf::hash(hash, &[message, link.as_bytes()]);
    }
    Ok(link)
}

/// Auth3 = prf(SKEYID_em, EM transcript hash | Auth1): the initiator's Extended Mode proof.
///
/// §3.1.7.4 prints `prf(SKEYID_em, …) | Auth1`, with Auth1 outside the PRF. That is read as a bracket error:
/// outside, Auth3 and Auth4 would share the same PRF value and differ only by a public suffix, so either side
/// could reflect the other's proof; inside, Auth1/Auth2 play the role the 0x01/0x02 byte plays in the MM proofs
/// and bind the EM proof to the MM it extends.
pub fn auth3(hash: HashAlg, skeyid_em: &Secret, em_messages: &[&[u8]], auth1: &[u8]) -> Result<Digest, AuthipKeyError> {
    em_proof(hash, skeyid_em, em_messages, auth1)
}

/// Auth4 = prf(SKEYID_em, EM transcript hash | Auth2): the responder's Extended Mode proof (see [`auth3`]).
pub fn auth4(hash: HashAlg, skeyid_em: &Secret, em_messages: &[&[u8]], auth2: &[u8]) -> Result<Digest, AuthipKeyError> {
    em_proof(hash, skeyid_em, em_messages, auth2)
}

fn em_proof(hash: HashAlg, skeyid_em: &Secret, messages: &[&[u8]], mm_proof: &[u8]) -> Result<Digest, AuthipKeyError> {
    let transcript = em_transcript_hash(hash, messages)?;
    Ok(prf::prf(hash, skeyid_em.expose(), &[transcript.as_bytes(), mm_proof]))
}
