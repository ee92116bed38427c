//! The GSS-API payload (0x81, [MS-AIPS] §2.2.3.1) and the GSS_ID payload (0x86, [MS-AIPS] §2.2.3.3).

use crate::wire::writer::{Emit, Out};
use crate::wire::WireError;

/// Bytes of the GSS-API body before the token: Status (4), Flags (1).
const GSS_FIXED_LEN: usize = 5;

/// The longest SPN accepted in a GSS_ID payload, in UTF-16 code units. MS-KILE SPNs are
/// `class/host[:port][/service]` with DNS host names of at most 255 characters, so 1024 leaves room while
/// bounding the `String` a hostile payload can make us build.
pub const MAX_SPN_UNITS: usize = 1024;

/// A view of a GSS-API payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GssPayload<'a> {
    /// 0 on success, else a Windows error code from the peer's GSS layer.
    pub status: u32,
    /// The flags byte as received ([`super::consts::gss_flags`]). Unknown bits are kept: [MS-AIPS] §2.2.3.1
    /// has the responder ignore them, and which side may set which bit is the state machine's check.
    pub flags: u8,
    /// The mechanism token (empty for Anonymous, and for a responder whose GSS layer produced no output).
    pub token: &'a [u8],
}

impl<'a> GssPayload<'a> {
    /// Parses a GSS-API payload body. Only the 5-byte fixed part is required; the token may be empty.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, token) = body.split_first_chunk::<GSS_FIXED_LEN>().ok_or(WireError::Truncated {
            what: "GSS-API payload",
            need: GSS_FIXED_LEN,
            have: body.len(),
        })?;
        let [s0, s1, s2, s3, flags] = *fixed;
        Ok(GssPayload { status: u32::from_be_bytes([s0, s1, s2, s3]), flags, token })
    }

    /// Whether `flag` ([`super::consts::gss_flags`]) is set.
    pub fn has_flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A GSS-API payload body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssRepr {
    /// Status.
    pub status: u32,
    /// Flags.
    pub flags: u8,
    /// Token.
    pub token: Vec<u8>,
}

impl GssRepr {
    /// The owned form of a parsed payload.
    pub fn from_view(g: &GssPayload<'_>) -> Self {
        GssRepr { status: g.status, flags: g.flags, token: g.token.to_vec() }
    }
}

impl Emit for GssRepr {
    fn buffer_len(&self) -> usize {
        GSS_FIXED_LEN.saturating_add(self.token.len())
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        out.u32(self.status)?;
        out.u8(self.flags)?;
        out.bytes(&self.token)
    }
}

/// A view of a GSS_ID payload body: the peer's security principal name as UTF-16LE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GssIdPayload<'a> {
    /// The raw UTF-16LE bytes (even length, checked).
    pub utf16le: &'a [u8],
}

impl<'a> GssIdPayload<'a> {
    /// Parses a GSS_ID body and checks that it decodes: [MS-AIPS] §2.2.3.3 asks for a "Unicode string" (UTF-16LE
    /// in Microsoft's glossary) without the terminating NUL. Refused: an odd length, an empty name, more than
    /// [`MAX_SPN_UNITS`] code units, a NUL code unit anywhere (a terminator, or a name that C code would cut
    /// short), a byte-order mark (Windows writes none, and it would never match a configured name), and unpaired
    /// surrogates.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let id = GssIdPayload { utf16le: body };
        id.name()?;
        Ok(id)
    }

    /// The name as a Rust string.
    pub fn name(&self) -> Result<String, WireError> {
        let b = self.utf16le;
        if b.len() % 2 != 0 || b.is_empty() {
            return Err(WireError::BadLength { what: "GSS_ID payload", len: b.len() });
        }
        let units = b.len() / 2;
        if units > MAX_SPN_UNITS {
            return Err(WireError::TooMany { what: "GSS_ID UTF-16 code units", limit: MAX_SPN_UNITS });
        }
        let code_units = b.chunks_exact(2).map(|c| match *c {
            [lo, hi] => u16::from_le_bytes([lo, hi]),
            _ => 0,
        });
        let mut name = String::with_capacity(units);
        for (i, c) in char::decode_utf16(code_units).enumerate() {
            match c {
                Ok('\0') => return Err(WireError::InvalidValue { what: "GSS_ID character", value: 0 }),
                Ok('\u{feff}') if i == 0 => {
                    return Err(WireError::InvalidValue { what: "GSS_ID byte-order mark", value: 0xfeff })
                }
                Ok(ch) => name.push(ch),
                Err(e) => {
                    return Err(WireError::InvalidValue {
                        what: "GSS_ID unpaired surrogate",
                        value: u32::from(e.unpaired_surrogate()),
                    })
                }
            }
        }
        Ok(name)
    }
}

/// A GSS_ID payload body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssIdRepr {
    /// The security principal name, e.g. `host/server.example.com` (MS-KILE §3.1.5.11 form).
    pub name: String,
}

impl GssIdRepr {
    /// The owned form of a parsed payload.
    pub fn from_view(g: &GssIdPayload<'_>) -> Result<Self, WireError> {
        Ok(GssIdRepr { name: g.name()? })
    }

    fn units(&self) -> impl Iterator<Item = u16> + '_ {
        self.name.encode_utf16()
    }
}

impl Emit for GssIdRepr {
    fn buffer_len(&self) -> usize {
        self.units().count().saturating_mul(2)
    }

    /// Refuses what [`GssIdPayload::parse`] would refuse, so that an emitted name always parses back.
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let len = self.buffer_len();
        let mut out = Out::new(out, len)?;
        if self.name.is_empty() || self.name.starts_with('\u{feff}') || self.name.contains('\0') {
            return Err(WireError::InvalidValue { what: "GSS_ID name", value: crate::wire::value_of(len) });
        }
        if len / 2 > MAX_SPN_UNITS {
            return Err(WireError::TooMany { what: "GSS_ID UTF-16 code units", limit: MAX_SPN_UNITS });
        }
        for u in self.units() {
            out.bytes(&u.to_le_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authip::consts::gss_flags;

    /// [MS-AIPS] §2.2.3.1 packet diagram: Status(4) | Flags(1) | token. An Anonymous initiator opening a new
    /// exchange sends Status 0, NEW_GSS_EXCHANGE, no token.
    #[test]
    fn gss_anonymous_initiator_layout() {
        let body = [0, 0, 0, 0, 0x01];
        let g = GssPayload::parse(&body).unwrap();
        assert_eq!(g, GssPayload { status: 0, flags: gss_flags::NEW_GSS_EXCHANGE, token: &[] });
        assert!(g.has_flag(gss_flags::NEW_GSS_EXCHANGE) && !g.has_flag(gss_flags::RESPONDER_AUTH_COMPLETE));
        let mut out = [0u8; 5];
        GssRepr::from_view(&g).emit(&mut out).unwrap();
        assert_eq!(out, body);
    }

    /// §2.2.3.1 / §3.1: a responder refusing a TLS credential: non-zero Status with RETRY_CURRENT_AUTHENTICATION,
    /// and a token; unknown flag bits survive the round trip.
    #[test]
    fn gss_status_flags_and_token() {
        let body = [0x80, 0x09, 0x03, 0x0c, 0x04 | 0x80, 0x16, 0x03, 0x03];
        let g = GssPayload::parse(&body).unwrap();
        assert_eq!((g.status, g.flags, g.token), (0x8009_030c, 0x84, &[0x16u8, 3, 3][..]));
        let mut out = [0u8; 8];
        GssRepr::from_view(&g).emit(&mut out).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn gss_truncated() {
        for cut in 0..5 {
            assert!(matches!(GssPayload::parse(&[0u8; 5][..cut]), Err(WireError::Truncated { .. })), "cut {cut}");
        }
    }

    /// §2.2.3.3: UTF-16LE, no NUL terminator. `host/a` = 68 00 6f 00 73 00 74 00 2f 00 61 00.
    #[test]
    fn gss_id_layout() {
        let body = [0x68, 0, 0x6f, 0, 0x73, 0, 0x74, 0, 0x2f, 0, 0x61, 0];
        let id = GssIdPayload::parse(&body).unwrap();
        assert_eq!(id.name().unwrap(), "host/a");
        let repr = GssIdRepr { name: "host/a".into() };
        let mut out = [0u8; 12];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, body);
        // Non-BMP characters are surrogate pairs and survive.
        let repr = GssIdRepr { name: "host/\u{1F600}.example".into() };
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out).unwrap();
        assert_eq!(GssIdRepr::from_view(&GssIdPayload::parse(&out).unwrap()).unwrap(), repr);
    }

    #[test]
    fn gss_id_malformed() {
        let bad: [&[u8]; 6] = [
            &[],                    // empty
            &[0x68, 0, 0x6f],       // odd length
            &[0x68, 0, 0, 0],       // NUL terminator
            &[0xff, 0xfe, 0x68, 0], // BOM
            &[0x00, 0xd8, 0x68, 0], // lone high surrogate
            &[0x68, 0, 0x00, 0xdc], // lone low surrogate
        ];
        for b in bad {
            assert!(GssIdPayload::parse(b).is_err(), "{b:?}");
        }
        let long = [0x61u8, 0].repeat(MAX_SPN_UNITS + 1);
        assert!(matches!(GssIdPayload::parse(&long), Err(WireError::TooMany { .. })));
        assert!(GssIdPayload::parse(&long[2..]).is_ok());
        for name in ["", "a\0b", "\u{feff}host/a"] {
            let r = GssIdRepr { name: name.into() };
            let mut out = vec![0u8; r.buffer_len()];
            assert!(r.emit(&mut out).is_err(), "{name:?}");
        }
    }
}
