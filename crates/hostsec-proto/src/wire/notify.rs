//! The notification payload (RFC 2408 §3.14).

use super::writer::{Emit, Out};
use super::WireError;

/// Length of the fixed part: DOI, protocol ID, SPI size, notify message type (RFC 2408 §3.14).
const FIXED_LEN: usize = 8;

/// A view of a notification payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyPayload<'a> {
    /// Domain of interpretation.
    pub doi: u32,
    /// Protocol ID.
    pub protocol_id: u8,
    /// Notify message type (see `consts::notify`).
    pub notify_type: u16,
    /// SPI (its size comes from the SPI size field).
    pub spi: &'a [u8],
    /// Notification data.
    pub data: &'a [u8],
}

impl<'a> NotifyPayload<'a> {
    /// Parses a notification payload body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, rest) = body.split_first_chunk::<FIXED_LEN>().ok_or(WireError::Truncated {
            what: "notification payload",
            need: FIXED_LEN,
            have: body.len(),
        })?;
        let [d0, d1, d2, d3, protocol_id, spi_size, t_hi, t_lo] = *fixed;
        let (spi, data) = rest.split_at_checked(usize::from(spi_size)).ok_or(WireError::Truncated {
            what: "notification SPI",
            need: usize::from(spi_size),
            have: rest.len(),
        })?;
        Ok(NotifyPayload {
            doi: u32::from_be_bytes([d0, d1, d2, d3]),
            protocol_id,
            notify_type: u16::from_be_bytes([t_hi, t_lo]),
            spi,
            data,
        })
    }
}

/// A notification payload body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRepr {
    /// Domain of interpretation.
    pub doi: u32,
    /// Protocol ID.
    pub protocol_id: u8,
    /// Notify message type.
    pub notify_type: u16,
    /// SPI.
    pub spi: Vec<u8>,
    /// Data.
    pub data: Vec<u8>,
}

impl NotifyRepr {
    /// The owned form of a parsed notification.
    pub fn from_view(n: &NotifyPayload<'_>) -> Self {
        NotifyRepr {
            doi: n.doi,
            protocol_id: n.protocol_id,
            notify_type: n.notify_type,
            spi: n.spi.to_vec(),
            data: n.data.to_vec(),
        }
    }
}

impl Emit for NotifyRepr {
    fn buffer_len(&self) -> usize {
        FIXED_LEN.saturating_add(self.spi.len()).saturating_add(self.data.len())
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        let spi_size = u8::try_from(self.spi.len())
            .map_err(|_| WireError::InvalidValue { what: "SPI size", value: super::value_of(self.spi.len()) })?;
        out.u32(self.doi)?;
        out.u8(self.protocol_id)?;
        out.u8(spi_size)?;
        out.u16(self.notify_type)?;
        out.bytes(&self.spi)?;
        out.bytes(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::{notify, protocol, DOI_IPSEC};

    /// The INITIAL-CONTACT notification body from the decrypted MM5 of the strongSwan 5.9.8 vector 01: protocol
    /// ISAKMP, 16-byte SPI (CKY-I | CKY-R), no data.
    const INITIAL_CONTACT: [u8; 24] = [
        0x00, 0x00, 0x00, 0x01, 0x01, 0x10, 0x60, 0x02, 0xde, 0xe4, 0xc1, 0xbb, 0x3f, 0x30, 0xe5, 0x4a, 0xd5, 0x99,
        0x76, 0x12, 0x59, 0xde, 0x89, 0x0f,
    ];

    #[test]
    fn parse_and_emit() {
        let n = NotifyPayload::parse(&INITIAL_CONTACT).unwrap();
        assert_eq!((n.doi, n.protocol_id, n.notify_type), (DOI_IPSEC, protocol::ISAKMP, notify::INITIAL_CONTACT));
        assert_eq!((n.spi, n.data), (&INITIAL_CONTACT[8..], &[][..]));
        let repr = NotifyRepr::from_view(&n);
        let mut out = [0u8; 24];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, INITIAL_CONTACT);
    }

    #[test]
    fn data_after_the_spi() {
        // R-U-THERE (RFC 3706 §5.3): ISAKMP SPI and a 4-byte sequence number as data.
        let repr = NotifyRepr {
            doi: DOI_IPSEC,
            protocol_id: protocol::ISAKMP,
            notify_type: notify::R_U_THERE,
            spi: vec![7; 16],
            data: vec![0, 0, 0, 9],
        };
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out).unwrap();
        let n = NotifyPayload::parse(&out).unwrap();
        assert_eq!((n.spi, n.data), (&[7u8; 16][..], &[0u8, 0, 0, 9][..]));
    }

    #[test]
    fn truncated_at_every_length() {
        for cut in 0..INITIAL_CONTACT.len() {
            assert!(NotifyPayload::parse(&INITIAL_CONTACT[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn oversized_spi_is_refused() {
        let repr = NotifyRepr { doi: 1, protocol_id: 1, notify_type: 1, spi: vec![0; 256], data: vec![] };
        let mut out = vec![0u8; repr.buffer_len()];
        assert!(matches!(repr.emit(&mut out), Err(WireError::InvalidValue { what: "SPI size", .. })));
    }
}
