//! The 28-byte ISAKMP header (RFC 2408 §3.1).

use super::WireError;

/// Byte offsets of the header fields (RFC 2408 §3.1).
mod field {
    use core::ops::Range;
    pub const INITIATOR_COOKIE: Range<usize> = 0..8;
    pub const RESPONDER_COOKIE: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE_TYPE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
}

/// ISAKMP header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Initiator cookie (CKY-I).
    pub initiator_cookie: [u8; 8],
    /// Responder cookie (CKY-R); zero in the first message.
    pub responder_cookie: [u8; 8],
    /// Type of the first payload.
    pub next_payload: u8,
    /// Version byte: major in the high nibble (must be 1), minor in the low nibble.
    pub version: u8,
    /// Exchange type (see `consts::exchange`).
    pub exchange_type: u8,
    /// Flags (see `consts::flags`).
    pub flags: u8,
    /// Message ID.
    pub message_id: u32,
    /// Total message length, header included.
    pub length: u32,
}

impl Header {
    /// Header length on the wire.
    pub const LEN: usize = 28;

    /// Parses the header at the start of `buf`. Checks: at least 28 bytes, major version 1, and
    /// 28 <= length <= buf.len() (trailing bytes beyond `length` are the caller's to ignore).
    pub fn parse(buf: &[u8]) -> Result<Header, WireError> {
        let h = buf.first_chunk::<{ Header::LEN }>().ok_or(WireError::Truncated {
            what: "ISAKMP header",
            need: Header::LEN,
            have: buf.len(),
        })?;
        let version = h[field::VERSION];
        // RFC 2408 §5.2: a major version we do not implement is refused, not guessed at (IKEv2 is major 2).
        if version >> 4 != 1 {
            return Err(WireError::BadVersion(version));
        }
        let header = Header {
            initiator_cookie: array(h, field::INITIATOR_COOKIE),
            responder_cookie: array(h, field::RESPONDER_COOKIE),
            next_payload: h[field::NEXT_PAYLOAD],
            version,
            exchange_type: h[field::EXCHANGE_TYPE],
            flags: h[field::FLAGS],
            message_id: u32::from_be_bytes(array(h, field::MESSAGE_ID)),
            length: u32::from_be_bytes(array(h, field::LENGTH)),
        };
        let len = usize::try_from(header.length).unwrap_or(usize::MAX);
        if len < Header::LEN {
            return Err(WireError::BadLength { what: "ISAKMP message", len });
        }
        if len > buf.len() {
            return Err(WireError::Truncated { what: "ISAKMP message", need: len, have: buf.len() });
        }
        Ok(header)
    }

    /// Parses the header of the message in `buf` and returns it with the bytes after it, up to `length`: the
    /// payload chain (or, with the encryption flag, the ciphertext). Bytes beyond `length` are dropped.
    pub fn split(buf: &[u8]) -> Result<(Header, &[u8]), WireError> {
        let header = Header::parse(buf)?;
        let end = usize::try_from(header.length).unwrap_or(usize::MAX);
        let body = buf.get(Header::LEN..end).ok_or(WireError::Truncated {
            what: "ISAKMP message",
            need: end,
            have: buf.len(),
        })?;
        Ok((header, body))
    }

    /// Whether the payloads after the header are encrypted (RFC 2408 §3.1, E flag).
    pub fn is_encrypted(&self) -> bool {
        self.flags & super::consts::flags::ENCRYPTION != 0
    }

    /// Writes the header into the first 28 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let have = buf.len();
        let h =
            buf.first_chunk_mut::<{ Header::LEN }>().ok_or(WireError::BufferTooSmall { need: Header::LEN, have })?;
        h[field::INITIATOR_COOKIE].copy_from_slice(&self.initiator_cookie);
        h[field::RESPONDER_COOKIE].copy_from_slice(&self.responder_cookie);
        h[field::NEXT_PAYLOAD] = self.next_payload;
        h[field::VERSION] = self.version;
        h[field::EXCHANGE_TYPE] = self.exchange_type;
        h[field::FLAGS] = self.flags;
        h[field::MESSAGE_ID].copy_from_slice(&self.message_id.to_be_bytes());
        h[field::LENGTH].copy_from_slice(&self.length.to_be_bytes());
        Ok(())
    }
}

/// Copies a constant field range of the header array into a fixed-size array. The ranges are constants within
/// 0..28, so the lookup cannot fail; the zero fallback only keeps this function free of panics.
fn array<const N: usize>(h: &[u8; Header::LEN], range: core::ops::Range<usize>) -> [u8; N] {
    h.get(range).and_then(|s| <[u8; N]>::try_from(s).ok()).unwrap_or([0; N])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::{exchange, flags, payload, ISAKMP_VERSION};
    use crate::wire::Payloads;

    /// MM2 of the strongSwan 5.9.8 vector 01: SA and three VIDs.
    const MM2: &str = "dee4c1bb3f30e54ad599761259de890f0110020000000000000000880d00003800000001000000010000002c\
                       01010001000000240101000080010007800e0100800200048004001380030001800b0001800c3de00d00000c\
                       09002689dfd6b7120d000014afcad71368a1f1c96b8696fc77570100000000144a131c81070358455c5728f2\
                       0e95452f";
    /// The header of QM3 of the same vector: encrypted, with a message ID.
    const QM3_HEADER: &str = "dee4c1bb3f30e54ad599761259de890f08102001fce90e920000004c";

    fn mm2() -> Header {
        Header {
            initiator_cookie: [0xde, 0xe4, 0xc1, 0xbb, 0x3f, 0x30, 0xe5, 0x4a],
            responder_cookie: [0xd5, 0x99, 0x76, 0x12, 0x59, 0xde, 0x89, 0x0f],
            next_payload: payload::SA,
            version: ISAKMP_VERSION,
            exchange_type: exchange::IDENTITY_PROTECTION,
            flags: 0,
            message_id: 0,
            length: 136,
        }
    }

    #[test]
    fn parse_and_emit() {
        let msg = hex::decode(MM2).unwrap();
        assert_eq!(Header::parse(&msg), Ok(mm2()));
        let mut out = [0u8; 28];
        mm2().emit(&mut out).unwrap();
        assert_eq!(out[..], msg[..28]);
        assert!(!mm2().is_encrypted());
        let (_, body) = Header::split(&msg).unwrap();
        let kinds: Vec<u8> = Payloads::new(payload::SA, body).map(|p| p.unwrap().kind).collect();
        assert_eq!(kinds, [payload::SA, payload::VENDOR_ID, payload::VENDOR_ID, payload::VENDOR_ID]);
    }

    #[test]
    fn quick_mode_header() {
        let mut msg = hex::decode(QM3_HEADER).unwrap();
        msg.resize(76, 0);
        let h = Header::parse(&msg).unwrap();
        assert_eq!(h.exchange_type, exchange::QUICK_MODE);
        assert_eq!(h.flags, flags::ENCRYPTION);
        assert!(h.is_encrypted());
        assert_eq!(h.message_id, 0xfce9_0e92);
        assert_eq!((h.next_payload, h.length), (payload::HASH, 76));
    }

    #[test]
    fn truncated_at_every_length() {
        let msg = hex::decode(MM2).unwrap();
        for cut in 0..msg.len() {
            assert!(Header::parse(&msg[..cut]).is_err(), "cut {cut}");
            assert!(Header::split(&msg[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn length_field_is_checked() {
        let mut msg = hex::decode(MM2).unwrap();
        msg[..28].copy_from_slice(&{
            let mut h = [0u8; 28];
            Header { length: 40, ..mm2() }.emit(&mut h).unwrap();
            h
        });
        msg.truncate(40);
        let (h, body) = Header::split(&msg).unwrap();
        assert_eq!((h.length, body.len()), (40, 12));
        msg[27] = 41;
        assert_eq!(Header::parse(&msg), Err(WireError::Truncated { what: "ISAKMP message", need: 41, have: 40 }));
        msg[27] = 27;
        assert_eq!(Header::parse(&msg), Err(WireError::BadLength { what: "ISAKMP message", len: 27 }));
        msg[27] = 0;
        assert_eq!(Header::parse(&msg), Err(WireError::BadLength { what: "ISAKMP message", len: 0 }));
        msg[24] = 0xff;
        assert!(matches!(Header::parse(&msg), Err(WireError::Truncated { .. })));
        // Trailing bytes after `length` (a datagram padded by a middlebox) are dropped by `split`.
        msg[24] = 0;
        msg[27] = 30;
        assert_eq!(Header::split(&msg).unwrap().1.len(), 2);
    }

    #[test]
    fn version_is_checked() {
        let mut msg = hex::decode(MM2).unwrap();
        msg[17] = 0x20; // IKEv2
        assert_eq!(Header::parse(&msg), Err(WireError::BadVersion(0x20)));
        msg[17] = 0x00;
        assert_eq!(Header::parse(&msg), Err(WireError::BadVersion(0x00)));
        msg[17] = 0x11; // minor versions are the exchange's business (RFC 2408 §3.1)
        assert!(Header::parse(&msg).is_ok());
    }

    #[test]
    fn emit_needs_28_bytes() {
        assert_eq!(mm2().emit(&mut [0u8; 27]), Err(WireError::BufferTooSmall { need: 28, have: 27 }));
    }
}
