//! The identification payload (RFC 2407 §4.6.2).

use super::WireError;

/// A view of an ID payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPayload<'a> {
    /// ID type (see `consts::id_type`).
    pub id_type: u8,
    /// IP protocol (0 = any).
    pub protocol: u8,
    /// Port (0 = any).
    pub port: u16,
    /// Identification data.
    pub data: &'a [u8],
}

impl<'a> IdPayload<'a> {
    /// Parses an ID payload body; checks the data length of the address types (4, 8, 16, 32 bytes).
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let _ = body;
        todo!()
    }
}

/// An ID payload body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRepr {
    /// ID type.
    pub id_type: u8,
    /// IP protocol.
    pub protocol: u8,
    /// Port.
    pub port: u16,
    /// Identification data.
    pub data: Vec<u8>,
}

impl IdRepr {
    /// The ID for one IP address (ID_IPV4_ADDR or ID_IPV6_ADDR), protocol and port 0.
    pub fn from_ip(addr: std::net::IpAddr) -> Self {
        let _ = addr;
        todo!()
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    /// Writes the body; returns the bytes written.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let _ = out;
        todo!()
    }
}
