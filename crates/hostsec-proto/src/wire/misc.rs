//! Small payloads with a one-byte type field: CERT (RFC 2408 §3.9), CR (§3.10) and NAT-OA (RFC 3947 §5.2).
//! KE, NONCE, HASH, SIG and VID bodies are opaque byte strings and need no type of their own; a NAT-D body is a
//! hash, checked for a plausible length ([`NatDPayload`]).

use super::writer::{Emit, Out};
use super::WireError;
use std::net::IpAddr;

/// A view of a certificate payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertPayload<'a> {
    /// Certificate encoding (4 = X.509 signature).
    pub encoding: u8,
    /// Certificate data.
    pub data: &'a [u8],
}

/// Splits the leading type byte off a CERT or CR body.
fn split_type<'a>(what: &'static str, body: &'a [u8]) -> Result<(u8, &'a [u8]), WireError> {
    body.split_first().map(|(&t, rest)| (t, rest)).ok_or(WireError::Truncated { what, need: 1, have: 0 })
}

impl<'a> CertPayload<'a> {
    /// Parses a CERT body (at least the encoding byte).
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (encoding, data) = split_type("certificate payload", body)?;
        Ok(CertPayload { encoding, data })
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

impl Emit for CertRepr {
    fn buffer_len(&self) -> usize {
        self.data.len().saturating_add(1)
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        out.u8(self.encoding)?;
        out.bytes(&self.data)
    }
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
        let (encoding, authority) = split_type("certificate request payload", body)?;
        Ok(CertRequestPayload { encoding, authority })
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

impl Emit for CertRequestRepr {
    fn buffer_len(&self) -> usize {
        self.authority.len().saturating_add(1)
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        out.u8(self.encoding)?;
        out.bytes(&self.authority)
    }
}

/// NAT-OA ID types: the ID payload's IPv4 and IPv6 address types (RFC 3947 §5.2).
const NAT_OA_IPV4: u8 = super::consts::id_type::IPV4_ADDR;
const NAT_OA_IPV6: u8 = super::consts::id_type::IPV6_ADDR;
/// ID type and three reserved bytes (RFC 3947 §5.2).
const NAT_OA_FIXED_LEN: usize = 4;

/// A view of a NAT-OA payload body: ID type (1 IPv4, 5 IPv6), 3 reserved bytes, the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatOaPayload {
    /// The original address.
    pub address: std::net::IpAddr,
}

impl NatOaPayload {
    /// Parses a NAT-OA body. Other ID types are refused (RFC 3947 §5.2 allows only these two) and so is an
    /// address of the wrong length; the reserved bytes are ignored.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let (fixed, address) = body.split_first_chunk::<NAT_OA_FIXED_LEN>().ok_or(WireError::Truncated {
            what: "NAT-OA payload",
            need: NAT_OA_FIXED_LEN,
            have: body.len(),
        })?;
        let bad_length = || WireError::BadLength { what: "NAT-OA address", len: address.len() };
        let address = match fixed[0] {
            NAT_OA_IPV4 => IpAddr::from(<[u8; 4]>::try_from(address).map_err(|_| bad_length())?),
            NAT_OA_IPV6 => IpAddr::from(<[u8; 16]>::try_from(address).map_err(|_| bad_length())?),
            other => return Err(WireError::InvalidValue { what: "NAT-OA ID type", value: u32::from(other) }),
        };
        Ok(NatOaPayload { address })
    }
}

/// A view of a NAT-D payload body (RFC 3947 §3.2): HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash. To
/// emit one, the hash bytes themselves are the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatDPayload<'a> {
    /// The hash.
    pub hash: &'a [u8],
}

impl<'a> NatDPayload<'a> {
    /// The shortest hash a NAT-D can carry (MD5, which old peers negotiate).
    pub const MIN_LEN: usize = 16;
    /// The longest (SHA2-512).
    pub const MAX_LEN: usize = 64;

    /// Parses a NAT-D body: a hash of 16 to 64 bytes. Which length is right depends on the negotiated hash, which
    /// the comparison checks (a hash of another length never matches).
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        if (Self::MIN_LEN..=Self::MAX_LEN).contains(&body.len()) {
            Ok(NatDPayload { hash: body })
        } else {
            Err(WireError::BadLength { what: "NAT-D hash", len: body.len() })
        }
    }
}

/// A NAT-OA body to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatOaRepr {
    /// The original address.
    pub address: std::net::IpAddr,
}

impl Emit for NatOaRepr {
    fn buffer_len(&self) -> usize {
        NAT_OA_FIXED_LEN
            + match self.address {
                IpAddr::V4(_) => 4,
                IpAddr::V6(_) => 16,
            }
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        match self.address {
            IpAddr::V4(a) => {
                out.bytes(&[NAT_OA_IPV4, 0, 0, 0])?;
                out.bytes(&a.octets())
            }
            IpAddr::V6(a) => {
                out.bytes(&[NAT_OA_IPV6, 0, 0, 0])?;
                out.bytes(&a.octets())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::cert_encoding;

    /// The CR body of MM4 in the strongSwan 5.9.8 vector 06: X.509 signature, with the DER name of the CA.
    const CR: &str = "04304b310b300906035504061302585831143012060355040a130b686f7374736563204b41543126302406035504\
                      03131d686f7374736563204b4154204543445341203235362074657374204341";

    #[test]
    fn cert_request() {
        let body = hex::decode(CR).unwrap();
        let cr = CertRequestPayload::parse(&body).unwrap();
        assert_eq!(cr.encoding, cert_encoding::X509_SIGNATURE);
        assert_eq!(body.len(), 78);
        assert_eq!(&cr.authority[..2], &[0x30, 0x4b]);
        let repr = CertRequestRepr { encoding: cr.encoding, authority: cr.authority.to_vec() };
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, body);
        // An empty authority asks for any certificate of the type.
        assert_eq!(CertRequestPayload::parse(&[4]).unwrap().authority, &[] as &[u8]);
        assert!(CertRequestPayload::parse(&[]).is_err());
    }

    #[test]
    fn cert() {
        let repr = CertRepr { encoding: cert_encoding::X509_SIGNATURE, data: vec![0x30, 0x82, 0x01, 0xcf] };
        let mut out = [0u8; 5];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, [4, 0x30, 0x82, 0x01, 0xcf]);
        let c = CertPayload::parse(&out).unwrap();
        assert_eq!((c.encoding, c.data), (cert_encoding::X509_SIGNATURE, &out[1..]));
        assert!(CertPayload::parse(&[]).is_err());
    }

    #[test]
    fn nat_oa() {
        let v4 = [1, 0, 0, 0, 192, 168, 1, 10];
        assert_eq!(NatOaPayload::parse(&v4).unwrap().address, IpAddr::from([192, 168, 1, 10]));
        let mut out = [0u8; 8];
        NatOaRepr { address: IpAddr::from([192, 168, 1, 10]) }.emit(&mut out).unwrap();
        assert_eq!(out, v4);
        for cut in 0..v4.len() {
            assert!(NatOaPayload::parse(&v4[..cut]).is_err(), "cut {cut}");
        }
        let v6: IpAddr = "fd00::5".parse().unwrap();
        let repr = NatOaRepr { address: v6 };
        let mut out = [0u8; 20];
        repr.emit(&mut out).unwrap();
        assert_eq!(out[0], 5);
        assert_eq!(NatOaPayload::parse(&out).unwrap().address, v6);
        // A v4 type with a v6-sized address, and an ID type NAT-OA does not allow.
        let mut wrong = out;
        wrong[0] = 1;
        assert!(matches!(NatOaPayload::parse(&wrong), Err(WireError::BadLength { .. })));
        wrong[0] = 2;
        assert!(matches!(NatOaPayload::parse(&wrong), Err(WireError::InvalidValue { .. })));
    }
}
