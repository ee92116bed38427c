//! The identification payload (RFC 2407 §4.6.2).

use super::consts::id_type;
use super::writer::{Emit, Out};
use super::WireError;
use std::net::IpAddr;

/// Length of the fixed part: ID type, protocol ID, port (RFC 2407 §4.6.2).
const FIXED_LEN: usize = 4;

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

/// The exact data length of the address ID types (RFC 2407 §4.6.2.2-4.6.2.12): an address, or two of them
/// (address and mask, or first and last address). `None` for the other types, whose length is free.
fn address_data_len(kind: u8) -> Option<usize> {
    match kind {
        id_type::IPV4_ADDR => Some(4),
        id_type::IPV4_ADDR_SUBNET | id_type::IPV4_ADDR_RANGE => Some(8),
        id_type::IPV6_ADDR => Some(16),
        id_type::IPV6_ADDR_SUBNET | id_type::IPV6_ADDR_RANGE => Some(32),
        _ => None,
    }
}

/// Refuses address data of the wrong length: a short IPv6 subnet is a known out-of-bounds read in other parsers.
fn check_data(kind: u8, data: &[u8]) -> Result<(), WireError> {
    match address_data_len(kind) {
        Some(len) if len != data.len() => Err(WireError::BadLength { what: "ID address data", len: data.len() }),
        _ => Ok(()),
    }
}

impl<'a> IdPayload<'a> {
    /// Parses an ID payload body; checks the data length of the address types (4, 8, 16, 32 bytes).
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, data) = body.split_first_chunk::<FIXED_LEN>().ok_or(WireError::Truncated {
            what: "ID payload",
            need: FIXED_LEN,
            have: body.len(),
        })?;
        let [id_type, protocol, port_hi, port_lo] = *fixed;
        check_data(id_type, data)?;
        Ok(IdPayload { id_type, protocol, port: u16::from_be_bytes([port_hi, port_lo]), data })
    }

    /// The address of an ID_IPV4_ADDR or ID_IPV6_ADDR; `None` for the other types.
    pub fn address(&self) -> Option<IpAddr> {
        match self.id_type {
            id_type::IPV4_ADDR => <[u8; 4]>::try_from(self.data).ok().map(IpAddr::from),
            id_type::IPV6_ADDR => <[u8; 16]>::try_from(self.data).ok().map(IpAddr::from),
            _ => None,
        }
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
    pub fn from_ip(addr: IpAddr) -> Self {
        let (id_type, data) = match addr {
            IpAddr::V4(a) => (id_type::IPV4_ADDR, a.octets().to_vec()),
            IpAddr::V6(a) => (id_type::IPV6_ADDR, a.octets().to_vec()),
        };
        IdRepr { id_type, protocol: 0, port: 0, data }
    }

    /// The owned form of a parsed ID.
    pub fn from_view(id: &IdPayload<'_>) -> Self {
        IdRepr { id_type: id.id_type, protocol: id.protocol, port: id.port, data: id.data.to_vec() }
    }
}

impl Emit for IdRepr {
    fn buffer_len(&self) -> usize {
        FIXED_LEN.saturating_add(self.data.len())
    }

    /// Refuses what [`IdPayload::parse`] refuses: address data of the wrong length.
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        check_data(self.id_type, &self.data)?;
        out.u8(self.id_type)?;
        out.u8(self.protocol)?;
        out.u16(self.port)?;
        out.bytes(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Phase-1 and Quick Mode ID bodies of the strongSwan 5.9.8 vectors 01 (IPv4 address and IPv4 subnet),
    /// 02 (FQDN) and 04 (user FQDN).
    const IPV4: [u8; 8] = [0x01, 0x00, 0x00, 0x00, 0xcb, 0x00, 0x71, 0x01];
    const SUBNET: [u8; 12] = [0x04, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x00, 0xff, 0xff, 0xff, 0x00];
    const FQDN: &[u8] = b"\x02\x00\x00\x00a.kat.example";
    const USER_FQDN: &[u8] = b"\x03\x00\x00\x00a@kat.example";

    #[test]
    fn parse_and_emit() {
        let id = IdPayload::parse(&IPV4).unwrap();
        assert_eq!((id.id_type, id.protocol, id.port), (id_type::IPV4_ADDR, 0, 0));
        assert_eq!(id.address(), Some(IpAddr::from([203, 0, 113, 1])));
        assert_eq!(IdRepr::from_ip(IpAddr::from([203, 0, 113, 1])), IdRepr::from_view(&id));

        let subnet = IdPayload::parse(&SUBNET).unwrap();
        assert_eq!((subnet.id_type, subnet.data), (id_type::IPV4_ADDR_SUBNET, &SUBNET[4..]));
        assert_eq!(subnet.address(), None);
        assert_eq!(IdPayload::parse(FQDN).unwrap().data, b"a.kat.example");
        assert_eq!(IdPayload::parse(USER_FQDN).unwrap().id_type, id_type::USER_FQDN);

        for body in [&IPV4[..], &SUBNET[..], FQDN, USER_FQDN] {
            let repr = IdRepr::from_view(&IdPayload::parse(body).unwrap());
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut out).unwrap();
            assert_eq!(out, body);
        }
    }

    #[test]
    fn ipv6_and_ports() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let repr = IdRepr { protocol: 17, port: 500, ..IdRepr::from_ip(v6) };
        let mut out = [0u8; 20];
        repr.emit(&mut out).unwrap();
        assert_eq!(out[..4], [id_type::IPV6_ADDR, 17, 0x01, 0xf4]);
        let id = IdPayload::parse(&out).unwrap();
        assert_eq!((id.address(), id.protocol, id.port), (Some(v6), 17, 500));
    }

    #[test]
    fn truncated_at_every_length() {
        for body in [&IPV4[..], &SUBNET[..]] {
            for cut in 0..body.len() {
                assert!(IdPayload::parse(&body[..cut]).is_err(), "cut {cut}");
            }
        }
        // Free-form types only need the fixed part.
        assert!(IdPayload::parse(&FQDN[..3]).is_err());
        assert!(IdPayload::parse(&FQDN[..4]).is_ok());
    }

    #[test]
    fn address_lengths_are_checked() {
        let cases = [
            (id_type::IPV4_ADDR, 4),
            (id_type::IPV4_ADDR_SUBNET, 8),
            (id_type::IPV4_ADDR_RANGE, 8),
            (id_type::IPV6_ADDR, 16),
            (id_type::IPV6_ADDR_SUBNET, 32),
            (id_type::IPV6_ADDR_RANGE, 32),
        ];
        for (kind, len) in cases {
            for data_len in [0, len - 1, len, len + 1] {
                let mut body = vec![kind, 0, 0, 0];
                body.resize(4 + data_len, 0);
                assert_eq!(IdPayload::parse(&body).is_ok(), data_len == len, "type {kind} len {data_len}");
                let repr = IdRepr { id_type: kind, protocol: 0, port: 0, data: vec![0; data_len] };
                let mut out = vec![0u8; repr.buffer_len()];
                assert_eq!(repr.emit(&mut out).is_ok(), data_len == len);
            }
        }
    }
}
