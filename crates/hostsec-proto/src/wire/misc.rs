//! Small payloads with a one-byte type field: CERT (RFC 2408 §3.9), CR (§3.10) and NAT-OA (RFC 3947 §5.2).
//! KE, NONCE, HASH, SIG, VID and NAT-D bodies are opaque byte strings and need no type of their own.

use super::WireError;

/// A view of a certificate payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertPayload<'a> {
    /// Certificate encoding (4 = X.509 signature).
    pub encoding: u8,
    /// Certificate data.
    pub data: &'a [u8],
}

impl<'a> CertPayload<'a> {
    /// Parses a CERT body (at least the encoding byte).
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let _ = body;
        todo!()
    }
}

/// A CERT body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRepr {
    /// Encoding.
    pub encoding: u8,
    /// Data.
    pub data: Vec<u8>,
}

/// A view of a certificate request payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertRequestPayload<'a> {
    /// Requested certificate type.
    pub encoding: u8,
    /// Certificate authority (DER distinguished name), possibly empty.
    pub authority: &'a [u8],
}

impl<'a> CertRequestPayload<'a> {
    /// Parses a CR body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let _ = body;
        todo!()
    }
}

/// A CR body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequestRepr {
    /// Requested type.
    pub encoding: u8,
    /// Authority.
    pub authority: Vec<u8>,
}

/// A view of a NAT-OA payload body: ID type (1 IPv4, 5 IPv6), 3 reserved bytes, the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatOaPayload {
    /// The original address.
    pub address: std::net::IpAddr,
}

impl NatOaPayload {
    /// Parses a NAT-OA body.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let _ = body;
        todo!()
    }
}

/// A NAT-OA body to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatOaRepr {
    /// The original address.
    pub address: std::net::IpAddr,
}
