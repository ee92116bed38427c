//! A whole AuthIP message ([MS-AIPS] §2.2.1, §2.2.3.2): the standard ISAKMP header, then exactly one CRYPTO
//! payload, then (E flag clear) the clear payload chain or (E flag set) the ciphertext and ICV. Two messages have
//! no CRYPTO: the NOTIFY_DOS_COOKIE message ([MS-AIPS] §2.2.3.2, §2.2.3.5) and an IKE fragment ([MS-IKEE]
//! §2.2.3), whose data is a piece of a whole AuthIP datagram.

use super::auth_payload::AuthRepr;
use super::consts::{exchange, notify, payload};
use super::crypto_payload::{CryptoClear, CryptoSealed, CryptoSealedRepr, MIN_ICV_LEN};
use super::gss::{GssIdPayload, GssPayload};
use super::key_dictation::{KeyDictationPayload, KeyDictationWeight};
use super::notify::{AuthipNotify, AuthipNotifyRepr};
use crate::wire::consts::flags;
use crate::wire::payload::split_payload;
use crate::wire::writer::{Emit, Out, GENERIC_HEADER_LEN};
use crate::wire::{FragmentPayload, FragmentRepr, Header, Payloads, RawPayload, WireError};

/// The header fields an AuthIP message keeps; next-payload, flags and length follow from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthipHeader {
    /// CKY-I.
    pub initiator_cookie: [u8; 8],
    /// CKY-R (zero in MM #1, or the DoS cookie on the retry).
    pub responder_cookie: [u8; 8],
    /// Version byte: major 1 (checked), minor as received (§2.2.1: a minor version above 0 must be accepted).
    pub version: u8,
    /// 0xF3–0xF6 ([`exchange`]).
    pub exchange_type: u8,
    /// Message ID. Not checked here: Windows itself does not check the MM one (notes <14>, <15>) and the text
    /// contradicts itself on MM #3–#6 and EM #8 (docs/authip.md); the state machine decides.
    pub message_id: u32,
}

/// Whether an exchange type may carry a clear CRYPTO payload (E flag clear), as far as the codec can tell without
/// state. Only QM (0xF4) is always encrypted: it starts after MM keys exist. MM carries clear #1–#4 and encrypted
/// first-QM messages; EM's GSS messages are drawn encrypted but §3.8 says they should not be; a NOTIFY_STATUS can
/// be sent while an MM fails before it has keys (§3.1). Windows checks none of this (notes <17>, <19>, <20>).
pub fn clear_allowed(exchange_type: u8) -> bool {
    exchange_type != exchange::QUICK_MODE
}

/// The exchange types a NOTIFY_DOS_COOKIE message may carry: [MS-AIPS] does not say; it answers an MM #1 like an
/// IKEv1 informational does ([MS-IKEE] §3.9), so both the Notify exchange and the MM exchange are accepted.
pub fn dos_cookie_exchange_allowed(exchange_type: u8) -> bool {
    exchange_type == exchange::NOTIFY || exchange_type == exchange::MAIN_MODE
}

/// What follows the header of a parsed AuthIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthipBody<'a> {
    /// E flag clear: the clear CRYPTO payload and the (validated) clear payload chain after it.
    Clear {
        /// The CRYPTO payload.
        crypto: CryptoClear,
        /// Type of the first clear payload (the CRYPTO payload's next-payload field; 0 for none).
        first: u8,
        /// The clear payload chain; walk it with [`AuthipPayloads`].
        chain: &'a [u8],
    },
    /// E flag set: the encrypted CRYPTO payload and everything after it.
    Sealed {
        /// The CRYPTO payload: seqNUM and IV.
        crypto: CryptoSealed<'a>,
        /// Ciphertext and ICV, to the end of the message ([`super::crypto_payload::split_icv`]).
        sealed: &'a [u8],
    },
    /// The NOTIFY_DOS_COOKIE message: its only payload, outside any CRYPTO.
    DosCookie(AuthipNotify<'a>),
    /// An IKE fragment message: one fragment payload, outside any CRYPTO.
    Fragment(FragmentPayload<'a>),
}

/// A parsed AuthIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthipMessage<'a> {
    /// Header.
    pub header: AuthipHeader,
    /// Body.
    pub body: AuthipBody<'a>,
}

impl<'a> AuthipMessage<'a> {
    /// Parses one AuthIP datagram (bytes beyond the header's length are ignored, as for IKEv1).
    ///
    /// Refused: exchange types other than 0xF3–0xF6; any flag but E (§2.2.1: "all other flags MUST be 0");
    /// a first payload other than CRYPTO except for the DoS-cookie and fragment messages (both with E clear); a
    /// clear CRYPTO on QM ([`clear_allowed`]); in the
    /// clear form, a CRYPTO body of other than 4 or 12 bytes and a chain that [`AuthipPayloads`] refuses; in the
    /// encrypted form, a next-payload other than 0 in the CRYPTO header (§2.2.3.2.3), an IV of other than 8 or 16
    /// bytes, and fewer bytes after it than one block plus the shortest ICV; DoS-cookie and fragment messages
    /// with anything beside their single payload.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, WireError> {
        let (h, body) = Header::split(datagram)?;
        if !exchange::is_authip(h.exchange_type) {
            return Err(WireError::InvalidValue { what: "AuthIP exchange type", value: u32::from(h.exchange_type) });
        }
        if h.flags & !flags::ENCRYPTION != 0 {
            return Err(WireError::InvalidValue { what: "AuthIP header flags", value: u32::from(h.flags) });
        }
        let encrypted = h.is_encrypted();
        let header = AuthipHeader {
            initiator_cookie: h.initiator_cookie,
            responder_cookie: h.responder_cookie,
            version: h.version,
            exchange_type: h.exchange_type,
            message_id: h.message_id,
        };
        let body = match (encrypted, h.next_payload) {
            (false, payload::NOTIFY) => {
                let n = AuthipNotify::parse(only_payload("NOTIFY_DOS_COOKIE message", body)?)?;
                if n.notify_type != notify::NOTIFY_DOS_COOKIE {
                    return Err(WireError::InvalidValue {
                        what: "AuthIP message without CRYPTO (notify type)",
                        value: u32::from(n.notify_type),
                    });
                }
                if !dos_cookie_exchange_allowed(h.exchange_type) {
                    return Err(WireError::InvalidValue {
                        what: "NOTIFY_DOS_COOKIE exchange type",
                        value: u32::from(h.exchange_type),
                    });
                }
                AuthipBody::DosCookie(n)
            }
            (false, payload::FRAGMENT) => {
                AuthipBody::Fragment(FragmentPayload::parse(only_payload("AuthIP fragment message", body)?)?)
            }
            (false, payload::CRYPTO) => {
                if !clear_allowed(h.exchange_type) {
                    return Err(WireError::InvalidValue { what: "AuthIP E flag (must be set)", value: 0 });
                }
                let (first, crypto, chain) = split_payload("clear CRYPTO payload", body)?;
                let crypto = CryptoClear::parse(crypto)?;
                validate_chain(first, chain)?;
                AuthipBody::Clear { crypto, first, chain }
            }
            (true, payload::CRYPTO) => {
                let (next, crypto, sealed) = split_payload("encrypted CRYPTO payload", body)?;
                if next != payload::NONE {
                    return Err(WireError::InvalidValue {
                        what: "encrypted CRYPTO next payload",
                        value: u32::from(next),
                    });
                }
                let crypto = CryptoSealed::parse(crypto)?;
                let need = crypto.iv.len() + MIN_ICV_LEN;
                if sealed.len() < need {
                    return Err(WireError::Truncated { what: "CRYPTO ciphertext", need, have: sealed.len() });
                }
                AuthipBody::Sealed { crypto, sealed }
            }
            (_, other) => {
                return Err(WireError::InvalidValue {
                    what: "AuthIP first payload (CRYPTO missing)",
                    value: u32::from(other),
                })
            }
        };
        Ok(AuthipMessage { header, body })
    }

    /// The typed clear payloads (none for the other forms).
    pub fn clear_payloads(&self) -> AuthipPayloads<'a> {
        match self.body {
            AuthipBody::Clear { first, chain, .. } => AuthipPayloads::new(first, chain),
            _ => AuthipPayloads::new(payload::NONE, &[]),
        }
    }

    /// seqNUM of the CRYPTO payload, if the message has one.
    pub fn seq(&self) -> Option<u32> {
        match self.body {
            AuthipBody::Clear { crypto, .. } => Some(crypto.seq),
            AuthipBody::Sealed { crypto, .. } => Some(crypto.seq),
            _ => None,
        }
    }
}

/// The single payload of a message without CRYPTO: its next-payload must be 0 and nothing may follow it.
fn only_payload<'a>(what: &'static str, body: &'a [u8]) -> Result<&'a [u8], WireError> {
    let (next, pbody, rest) = split_payload(what, body)?;
    if next != payload::NONE {
        return Err(WireError::InvalidValue { what, value: u32::from(next) });
    }
    if !rest.is_empty() {
        return Err(WireError::BadLength { what, len: body.len() });
    }
    Ok(pbody)
}

/// One payload of an AuthIP chain, parsed by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthipPayload<'a> {
    /// GSS-API (0x81).
    Gss(GssPayload<'a>),
    /// GSS_ID (0x86).
    GssId(GssIdPayload<'a>),
    /// Auth (0x87).
    Auth(AuthRepr),
    /// Notify in the AuthIP form (0x0B).
    Notify(AuthipNotify<'a>),
    /// Key Dictation (0x88).
    KeyDictation(KeyDictationPayload<'a>),
    /// Key Dictation Weight (0x89).
    KeyDictationWeight(KeyDictationWeight),
    /// An IKEv1 payload AuthIP reuses unchanged (SA, KE, ID, HASH, NONCE, VID, NAT-D, NAT-OA), for the IKEv1
    /// parsers in [`crate::wire`].
    Ike(RawPayload<'a>),
}

/// Iterator over an AuthIP payload chain (the clear one after a clear CRYPTO, or the decrypted one), yielding
/// typed payloads. Stops after the first error. Beyond the generic checks of [`Payloads`] (lengths, at most
/// [`crate::wire::MAX_PAYLOADS`] payloads) it refuses: a type not in [`payload::allowed_in_chain`] (CRYPTO
/// again, fragments, CERT/CR/SIG/DELETE, reserved and unknown private types); a body its parser refuses; a
/// NOTIFY_DOS_COOKIE (only allowed as a message of its own); a NOTIFY_ACQUIRE not followed by two ID payloads
/// (§2.2.3.5); and bytes after the last payload.
pub struct AuthipPayloads<'a> {
    inner: Payloads<'a>,
    ids_owed: u8,
    done: bool,
}

impl<'a> AuthipPayloads<'a> {
    /// Walks `chain`, whose first payload has type `first`.
    pub fn new(first: u8, chain: &'a [u8]) -> Self {
        AuthipPayloads { inner: Payloads::new(first, chain), ids_owed: 0, done: false }
    }

    fn typed(&mut self, p: RawPayload<'a>) -> Result<AuthipPayload<'a>, WireError> {
        if !payload::allowed_in_chain(p.kind) {
            let what = if p.kind == payload::CRYPTO { "second CRYPTO payload" } else { "AuthIP payload type" };
            return Err(WireError::InvalidValue { what, value: u32::from(p.kind) });
        }
        if self.ids_owed > 0 {
            if p.kind != payload::ID {
                return Err(WireError::InvalidValue { what: "payload after NOTIFY_ACQUIRE", value: u32::from(p.kind) });
            }
            self.ids_owed -= 1;
        }
        Ok(match p.kind {
            payload::GSSAPI => AuthipPayload::Gss(GssPayload::parse(p.body)?),
            payload::GSS_ID => AuthipPayload::GssId(GssIdPayload::parse(p.body)?),
            payload::AUTH => AuthipPayload::Auth(AuthRepr::parse(p.body)?),
            payload::KEY_DICTATION => AuthipPayload::KeyDictation(KeyDictationPayload::parse(p.body)?),
            payload::KEY_DICTATION_WEIGHT => AuthipPayload::KeyDictationWeight(KeyDictationWeight::parse(p.body)?),
            payload::NOTIFY => {
                let n = AuthipNotify::parse(p.body)?;
                match n.notify_type {
                    notify::NOTIFY_DOS_COOKIE => {
                        return Err(WireError::InvalidValue {
                            what: "NOTIFY_DOS_COOKIE inside CRYPTO",
                            value: u32::from(n.notify_type),
                        })
                    }
                    notify::NOTIFY_ACQUIRE => self.ids_owed = 2,
                    _ => {}
                }
                AuthipPayload::Notify(n)
            }
            _ => AuthipPayload::Ike(p),
        })
    }
}

impl<'a> Iterator for AuthipPayloads<'a> {
    type Item = Result<AuthipPayload<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.inner.next() {
            Some(Ok(p)) => self.typed(p),
            Some(Err(e)) => Err(e),
            None => {
                self.done = true;
                if self.ids_owed > 0 {
                    return Some(Err(WireError::Truncated {
                        what: "ID payloads after NOTIFY_ACQUIRE",
                        need: 2,
                        have: usize::from(2 - self.ids_owed),
                    }));
                }
                let left = self.inner.remainder().len();
                if left > 0 {
                    return Some(Err(WireError::BadLength { what: "bytes after the AuthIP payload chain", len: left }));
                }
                return None;
            }
        };
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

impl core::iter::FusedIterator for AuthipPayloads<'_> {}

/// Checks a whole AuthIP payload chain; returns the number of payloads.
pub fn validate_chain(first: u8, chain: &[u8]) -> Result<usize, WireError> {
    AuthipPayloads::new(first, chain).try_fold(0usize, |n, p| p.map(|_| n + 1))
}

/// The owned body of an AuthIP message to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthipBodyRepr {
    /// A clear message: the CRYPTO payload and a payload chain (as [`crate::wire::PayloadWriter`] writes it)
    /// whose first payload has type `first`.
    Clear {
        /// CRYPTO payload.
        crypto: CryptoClear,
        /// Type of the first payload of `chain` (0 when it is empty).
        first: u8,
        /// The chain.
        chain: Vec<u8>,
    },
    /// An encrypted message: the CRYPTO payload and the ciphertext with its ICV.
    Sealed {
        /// CRYPTO payload.
        crypto: CryptoSealedRepr,
        /// Ciphertext and ICV.
        sealed: Vec<u8>,
    },
    /// The NOTIFY_DOS_COOKIE message.
    DosCookie(AuthipNotifyRepr),
    /// An IKE fragment message.
    Fragment(FragmentRepr),
}

/// An AuthIP message to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthipMessageRepr {
    /// Header fields.
    pub header: AuthipHeader,
    /// Body.
    pub body: AuthipBodyRepr,
}

impl AuthipMessageRepr {
    /// The owned form of a parsed message.
    pub fn from_view(m: &AuthipMessage<'_>) -> Self {
        let body = match m.body {
            AuthipBody::Clear { crypto, first, chain } => {
                AuthipBodyRepr::Clear { crypto, first, chain: chain.to_vec() }
            }
            AuthipBody::Sealed { crypto, sealed } => AuthipBodyRepr::Sealed {
                crypto: CryptoSealedRepr { seq: crypto.seq, iv: crypto.iv.to_vec() },
                sealed: sealed.to_vec(),
            },
            AuthipBody::DosCookie(n) => AuthipBodyRepr::DosCookie(AuthipNotifyRepr::from_view(&n)),
            AuthipBody::Fragment(f) => AuthipBodyRepr::Fragment(FragmentRepr::from_view(&f)),
        };
        AuthipMessageRepr { header: m.header, body }
    }

    /// The header's next-payload, flags, and the body length after the header.
    fn layout(&self) -> (u8, u8, usize) {
        let g = GENERIC_HEADER_LEN;
        match &self.body {
            AuthipBodyRepr::Clear { crypto, chain, .. } => {
                (payload::CRYPTO, 0, g.saturating_add(crypto.buffer_len()).saturating_add(chain.len()))
            }
            AuthipBodyRepr::Sealed { crypto, sealed } => {
                (payload::CRYPTO, flags::ENCRYPTION, g.saturating_add(crypto.buffer_len()).saturating_add(sealed.len()))
            }
            AuthipBodyRepr::DosCookie(n) => (payload::NOTIFY, 0, g.saturating_add(n.buffer_len())),
            AuthipBodyRepr::Fragment(f) => (payload::FRAGMENT, 0, g.saturating_add(f.buffer_len())),
        }
    }

    /// The whole datagram in a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut out = vec![0u8; self.buffer_len()];
        self.emit(&mut out)?;
        Ok(out)
    }
}

/// Writes one payload's generic header and body.
fn put_payload(out: &mut Out<'_>, next: u8, body: &dyn Emit) -> Result<(), WireError> {
    let total = body.buffer_len().saturating_add(GENERIC_HEADER_LEN);
    let len = u16::try_from(total).map_err(|_| WireError::BadLength { what: "payload", len: total })?;
    out.u8(next)?;
    out.u8(0)?;
    out.u16(len)?;
    out.emit(body)
}

impl Emit for AuthipMessageRepr {
    fn buffer_len(&self) -> usize {
        Header::LEN.saturating_add(self.layout().2)
    }

    /// Writes the message, refusing what [`AuthipMessage::parse`] would refuse (so that whatever is emitted parses
    /// back to the same value).
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let (next_payload, flags, body_len) = self.layout();
        let total = Header::LEN.saturating_add(body_len);
        let mut out = Out::new(out, total)?;
        let h = self.header;
        if !exchange::is_authip(h.exchange_type) {
            return Err(WireError::InvalidValue { what: "AuthIP exchange type", value: u32::from(h.exchange_type) });
        }
        if h.version >> 4 != 1 {
            return Err(WireError::BadVersion(h.version));
        }
        if matches!(self.body, AuthipBodyRepr::Clear { .. }) && !clear_allowed(h.exchange_type) {
            return Err(WireError::InvalidValue { what: "AuthIP E flag (must be set)", value: 0 });
        }
        let length = u32::try_from(total).map_err(|_| WireError::BadLength { what: "AuthIP message", len: total })?;
        let header = Header {
            initiator_cookie: h.initiator_cookie,
            responder_cookie: h.responder_cookie,
            next_payload,
            version: h.version,
            exchange_type: h.exchange_type,
            flags,
            message_id: h.message_id,
            length,
        };
        header.emit(out.take(Header::LEN)?)?;
        match &self.body {
            AuthipBodyRepr::Clear { crypto, first, chain } => {
                validate_chain(*first, chain)?;
                put_payload(&mut out, *first, crypto)?;
                out.bytes(chain)
            }
            AuthipBodyRepr::Sealed { crypto, sealed } => {
                let need = crypto.iv.len() + MIN_ICV_LEN;
                if sealed.len() < need {
                    return Err(WireError::Truncated { what: "CRYPTO ciphertext", need, have: sealed.len() });
                }
                put_payload(&mut out, payload::NONE, crypto)?;
                out.bytes(sealed)
            }
            AuthipBodyRepr::DosCookie(n) => {
                if n.notify_type != notify::NOTIFY_DOS_COOKIE || !dos_cookie_exchange_allowed(h.exchange_type) {
                    return Err(WireError::InvalidValue {
                        what: "AuthIP message without CRYPTO (notify type)",
                        value: u32::from(n.notify_type),
                    });
                }
                put_payload(&mut out, payload::NONE, n)
            }
            AuthipBodyRepr::Fragment(f) => {
                if f.number == 0 {
                    return Err(WireError::InvalidValue { what: "fragment number", value: 0 });
                }
                put_payload(&mut out, payload::NONE, f)
            }
        }
    }
}
