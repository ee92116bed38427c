//! Framing of IKEv1 messages: building cleartext and encrypted messages (RFC 2409 appendix B), decrypting, and
//! sorting a message's payloads by type.

use crate::crypto::cipher::{cbc_decrypt, cbc_encrypt};
use crate::crypto::prf::Digest;
use crate::crypto::IkeCipher;
use crate::wire::consts::{flags, payload};
use crate::wire::{DeletePayload, Emit, Header, NotifyPayload, PayloadWriter, Payloads, RawPayload, WireError};

/// Largest message hostsec builds or accepts (without IKE fragmentation).
pub(crate) const MAX_MESSAGE: usize = 16 * 1024;

/// The HASH that leads an authenticated message: its length and how it is computed over the payloads after it.
pub(crate) type LeadingHash<'f> = (usize, &'f dyn Fn(&[u8]) -> Digest);

/// Why an inbound message could not be used, before any protocol meaning is considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Not well-formed.
    Malformed(String),
    /// Did not decrypt to well-formed payloads (wrong key, corrupted or forged).
    Undecryptable(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Malformed(m) | FrameError::Undecryptable(m) => f.write_str(m),
        }
    }
}

impl From<WireError> for FrameError {
    fn from(e: WireError) -> Self {
        FrameError::Malformed(e.to_string())
    }
}

/// A message's payloads sorted by type, each kept as its raw body.
#[derive(Debug, Default)]
pub(crate) struct Collected<'a> {
    /// Payload types in wire order.
    pub order: Vec<u8>,
    /// SA payload bodies.
    pub sa: Vec<&'a [u8]>,
    /// KE bodies.
    pub ke: Vec<&'a [u8]>,
    /// NONCE bodies.
    pub nonce: Vec<&'a [u8]>,
    /// ID bodies.
    pub id: Vec<&'a [u8]>,
    /// HASH bodies.
    pub hash: Vec<&'a [u8]>,
    /// Notifications.
    pub notify: Vec<NotifyPayload<'a>>,
    /// Deletes.
    pub delete: Vec<DeletePayload<'a>>,
    /// Vendor IDs.
    pub vid: Vec<&'a [u8]>,
    /// NAT-D bodies.
    pub nat_d: Vec<&'a [u8]>,
    /// NAT-OA bodies.
    pub nat_oa: Vec<&'a [u8]>,
    /// CERT bodies.
    pub cert: Vec<&'a [u8]>,
    /// CR bodies.
    pub cr: Vec<&'a [u8]>,
    /// SIG bodies.
    pub sig: Vec<&'a [u8]>,
    /// Bytes of the body covered by payloads (the rest is padding).
    pub end: usize,
}

/// Sorts the payload chain of `body` (which starts with a payload of type `first`).
pub(crate) fn collect(first: u8, body: &[u8]) -> Result<Collected<'_>, FrameError> {
    let mut c = Collected::default();
    let mut it = Payloads::new(first, body);
    for p in it.by_ref() {
        let RawPayload { kind, body: b } = p?;
        c.order.push(kind);
        match kind {
            payload::SA => c.sa.push(b),
            payload::KE => c.ke.push(b),
            payload::NONCE => c.nonce.push(b),
            payload::ID => c.id.push(b),
            payload::HASH => c.hash.push(b),
            payload::NOTIFY => c.notify.push(NotifyPayload::parse(b)?),
            payload::DELETE => c.delete.push(DeletePayload::parse(b)?),
            payload::VENDOR_ID => c.vid.push(b),
            payload::NAT_D | payload::NAT_D_DRAFT => c.nat_d.push(b),
            payload::NAT_OA | payload::NAT_OA_DRAFT => c.nat_oa.push(b),
            payload::CERT => c.cert.push(b),
            payload::CR => c.cr.push(b),
            payload::SIG => c.sig.push(b),
            // Other types (private ones) are skipped by length here; the exchange that needs them looks
            // at `order`.
            _ => {}
        }
    }
    c.end = body.len() - it.remainder().len();
    Ok(c)
}

/// Builds a message whose payloads follow the header in cleartext.
pub(crate) fn build_plain(mut hdr: Header, payloads: &[(u8, &dyn Emit)]) -> Result<Vec<u8>, WireError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let len = {
        let mut w = PayloadWriter::new(&mut buf[Header::LEN..]);
        for (kind, body) in payloads {
            w.push(*kind, *body)?;
        }
        hdr.next_payload = w.first_payload();
        w.len()
    };
    hdr.flags &= !flags::ENCRYPTION;
    hdr.length = (Header::LEN + len) as u32;
    hdr.emit(&mut buf[..Header::LEN])?;
    buf.truncate(Header::LEN + len);
    Ok(buf)
}

/// Encryption parameters of a message: the phase-1 cipher, Ka and the IV for this message.
pub(crate) struct Crypt<'k> {
    /// Cipher.
    pub cipher: IkeCipher,
    /// Ka.
    pub key: &'k [u8],
    /// IV for this message.
    pub iv: [u8; 16],
}

/// Builds an encrypted message. When `hash` is given, a HASH payload comes first and its body is
/// `hash(bytes of all following payloads)` (RFC 2409 §5.5, §5.7). Returns the datagram and its last ciphertext
/// block (the next IV of the exchange).
pub(crate) fn build_encrypted(
    mut hdr: Header,
    hash: Option<LeadingHash<'_>>,
    payloads: &[(u8, &dyn Emit)],
    crypt: &Crypt<'_>,
) -> Result<(Vec<u8>, [u8; 16]), WireError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (len, first) = {
        let body = &mut buf[Header::LEN..];
        let mut w = PayloadWriter::new(body);
        if let Some((hash_len, _)) = hash {
            w.push(payload::HASH, &vec![0u8; hash_len])?;
        }
        for (kind, b) in payloads {
            w.push(*kind, *b)?;
        }
        (w.len(), w.first_payload())
    };
    if let Some((hash_len, f)) = hash {
        let body = &mut buf[Header::LEN..Header::LEN + len];
        let digest = f(&body[4 + hash_len..]);
        body[4..4 + hash_len].copy_from_slice(&digest.as_bytes()[..hash_len]);
    }
    // Pad to the block size; always at least one byte, zeros, the last one counting the others (RFC 2409
    // appendix B leaves the content open: peers ignore it, and either reading of the last byte is satisfied).
    let pad = IkeCipher::BLOCK_LEN - len % IkeCipher::BLOCK_LEN;
    let total = len + pad;
    if Header::LEN + total > MAX_MESSAGE {
        return Err(WireError::BufferTooSmall { need: Header::LEN + total, have: MAX_MESSAGE });
    }
    buf[Header::LEN + total - 1] = (pad - 1) as u8;
    let last = cbc_encrypt(crypt.cipher, crypt.key, &crypt.iv, &mut buf[Header::LEN..Header::LEN + total])
        .map_err(|_| WireError::InvalidValue { what: "cipher", value: 0 })?;
    hdr.next_payload = first;
    hdr.flags |= flags::ENCRYPTION;
    hdr.length = (Header::LEN + total) as u32;
    hdr.emit(&mut buf[..Header::LEN])?;
    buf.truncate(Header::LEN + total);
    Ok((buf, last))
}

/// Decrypts the body of an encrypted message (`datagram` cut to the header's length). Returns the plaintext
/// (payloads and padding) and the last ciphertext block (the next IV).
pub(crate) fn decrypt_body(datagram: &[u8], crypt: &Crypt<'_>) -> Result<(Vec<u8>, [u8; 16]), FrameError> {
    let body = datagram.get(Header::LEN..).unwrap_or(&[]);
    if body.is_empty() || body.len() % IkeCipher::BLOCK_LEN != 0 {
        return Err(FrameError::Malformed(format!(
            "encrypted body of {} bytes is not a whole number of {}-byte blocks",
            body.len(),
            IkeCipher::BLOCK_LEN
        )));
    }
    let mut plain = body.to_vec();
    let last = cbc_decrypt(crypt.cipher, crypt.key, &crypt.iv, &mut plain)
        .map_err(|e| FrameError::Undecryptable(e.to_string()))?;
    Ok((plain, last))
}

/// The bytes a QM/Informational HASH covers: everything after the HASH payload (which must come first) up to the
/// end of the last payload, padding excluded.
pub(crate) fn after_first_hash<'a>(body: &'a [u8], c: &Collected<'_>) -> Result<(&'a [u8], &'a [u8]), FrameError> {
    if c.order.first() != Some(&payload::HASH) || c.hash.len() != 1 {
        return Err(FrameError::Undecryptable("the first payload is not a HASH".into()));
    }
    let hash_len = c.hash[0].len();
    let start = 4 + hash_len;
    let covered = body.get(start..c.end).ok_or_else(|| FrameError::Malformed("bad HASH payload length".into()))?;
    let hash = body.get(4..start).ok_or_else(|| FrameError::Malformed("bad HASH payload length".into()))?;
    Ok((hash, covered))
}

/// Emits a payload body into a new vector (for bodies that the hashes cover, such as SAi_b and IDii_b).
pub(crate) fn emit_vec(e: &dyn Emit) -> Vec<u8> {
    let mut v = vec![0u8; e.buffer_len()];
    // A buffer of exactly `buffer_len` bytes always fits; an error would leave the body empty, which no hash
    // verification accepts.
    if e.emit(&mut v).is_err() {
        v.clear();
    }
    v
}

/// Checks a nonce's length: 8 to 256 bytes (RFC 2409 §5).
pub(crate) fn check_nonce(n: &[u8]) -> Result<(), String> {
    if (8..=256).contains(&n.len()) {
        Ok(())
    } else {
        Err(format!("the peer's nonce has {} bytes (8 to 256 allowed)", n.len()))
    }
}
