//! The Auth payload (0x87, [MS-AIPS] §2.2.3.4): the authentication methods an initiator offers and a responder
//! accepts, in preference order.

use crate::wire::writer::{Emit, Out};
use crate::wire::WireError;

/// Bytes per entry: Auth_Method (2), Flags (2).
const ENTRY_LEN: usize = 4;

/// At most this many entries are read. [MS-AIPS] defines four methods; Windows may list one method more than
/// once (e.g. TLS with RSA and with ECDSA certificates), so the bound leaves room for that and no more.
pub const MAX_AUTH_METHODS: usize = 16;

/// One entry of an Auth payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthEntry {
    /// The method ([`super::consts::auth_method`]). Unknown values are kept: a peer may offer a method hostsec
    /// does not know next to ones it does, and choosing is the policy's business, not the codec's.
    pub method: u16,
    /// The flags field as received: "unused", zero from the initiator and ignored by the responder, kept so that
    /// re-emitting a payload gives the same bytes.
    pub flags: u16,
}

/// An Auth payload body, parsed into its entries (owned: at most [`MAX_AUTH_METHODS`] of 4 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRepr {
    /// The entries in wire order.
    pub entries: Vec<AuthEntry>,
}

impl AuthRepr {
    /// An Auth payload offering `methods` with zero flags, in that order.
    pub fn offering(methods: &[u16]) -> Self {
        AuthRepr { entries: methods.iter().map(|&method| AuthEntry { method, flags: 0 }).collect() }
    }

    /// Parses an Auth payload body. The count is the body length over 4 (§2.2.3.4), so a length that is not a
    /// multiple of 4 is refused, and so is an empty list (an offer of nothing cannot be answered) and one longer
    /// than [`MAX_AUTH_METHODS`].
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        if body.is_empty() || body.len() % ENTRY_LEN != 0 {
            return Err(WireError::BadLength { what: "Auth payload", len: body.len() });
        }
        if body.len() / ENTRY_LEN > MAX_AUTH_METHODS {
            return Err(WireError::TooMany { what: "Auth methods", limit: MAX_AUTH_METHODS });
        }
        let entries = body
            .chunks_exact(ENTRY_LEN)
            .map(|c| match *c {
                [m0, m1, f0, f1] => {
                    AuthEntry { method: u16::from_be_bytes([m0, m1]), flags: u16::from_be_bytes([f0, f1]) }
                }
                _ => AuthEntry { method: 0, flags: 0 },
            })
            .collect();
        Ok(AuthRepr { entries })
    }

    /// The methods in wire order.
    pub fn methods(&self) -> impl Iterator<Item = u16> + '_ {
        self.entries.iter().map(|e| e.method)
    }
}

impl Emit for AuthRepr {
    fn buffer_len(&self) -> usize {
        self.entries.len().saturating_mul(ENTRY_LEN)
    }

    /// Refuses an empty list and more than [`MAX_AUTH_METHODS`] entries, as the parser does.
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        if self.entries.is_empty() {
            return Err(WireError::BadLength { what: "Auth payload", len: 0 });
        }
        if self.entries.len() > MAX_AUTH_METHODS {
            return Err(WireError::TooMany { what: "Auth methods", limit: MAX_AUTH_METHODS });
        }
        for e in &self.entries {
            out.u16(e.method)?;
            out.u16(e.flags)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authip::consts::auth_method;

    /// [MS-AIPS] §2.2.3.4 packet diagram: repeated Auth_Method(2) | Flags(2). TLS then Anonymous.
    #[test]
    fn layout_tls_then_anonymous() {
        let body = [0x00, 0x04, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00];
        let a = AuthRepr::parse(&body).unwrap();
        assert_eq!(a, AuthRepr::offering(&[auth_method::TLS, auth_method::ANONYMOUS]));
        assert_eq!(a.methods().collect::<Vec<_>>(), [4, 3]);
        let mut out = [0u8; 8];
        a.emit(&mut out).unwrap();
        assert_eq!(out, body);
    }

    /// Unknown methods and non-zero flags are kept (§2.2.3.4: flags ignored by the responder).
    #[test]
    fn unknown_method_and_flags_kept() {
        let body = [0x00, 0x09, 0xab, 0xcd];
        let a = AuthRepr::parse(&body).unwrap();
        assert_eq!(a.entries, [AuthEntry { method: 9, flags: 0xabcd }]);
        let mut out = [0u8; 4];
        a.emit(&mut out).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn malformed() {
        for len in [0, 1, 2, 3, 5, 6, 7, 9] {
            assert!(matches!(AuthRepr::parse(&vec![0u8; len]), Err(WireError::BadLength { .. })), "len {len}");
        }
        assert!(AuthRepr::parse(&[0u8; 4 * MAX_AUTH_METHODS]).is_ok());
        assert_eq!(
            AuthRepr::parse(&[0u8; 4 * (MAX_AUTH_METHODS + 1)]),
            Err(WireError::TooMany { what: "Auth methods", limit: MAX_AUTH_METHODS })
        );
        let mut out = [0u8; 128];
        assert!(AuthRepr::offering(&[]).emit(&mut out).is_err());
        assert!(AuthRepr::offering(&[2; MAX_AUTH_METHODS + 1]).emit(&mut out).is_err());
    }
}
