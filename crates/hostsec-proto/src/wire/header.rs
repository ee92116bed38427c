//! The 28-byte ISAKMP header (RFC 2408 §3.1).

use super::WireError;

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
        let _ = buf;
        todo!()
    }

    /// Writes the header into the first 28 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let _ = buf;
        todo!()
    }
}
