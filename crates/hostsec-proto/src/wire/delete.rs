//! The delete payload (RFC 2408 §3.15).

use super::writer::{Emit, Out};
use super::WireError;

/// Bound on SPIs read from one delete payload.
pub const MAX_DELETE_SPIS: usize = 256;

/// Length of the fixed part: DOI, protocol ID, SPI size, number of SPIs (RFC 2408 §3.15).
const FIXED_LEN: usize = 8;

/// A view of a delete payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletePayload<'a> {
    /// Domain of interpretation.
    pub doi: u32,
    /// Protocol ID (1: ISAKMP SA, SPI = CKY-I | CKY-R; 3: ESP, 4-byte SPIs).
    pub protocol_id: u8,
    /// SPI size.
    pub spi_size: u8,
    /// Number of SPIs.
    pub spi_count: u16,
    spis: &'a [u8],
}

impl<'a> DeletePayload<'a> {
    /// Parses a delete payload body; checks that count x size bytes are present and count <= MAX_DELETE_SPIS.
    /// Bytes after the SPIs are refused: the payload length must be 12 + count x size (RFC 2408 §3.15).
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, rest) = body.split_first_chunk::<FIXED_LEN>().ok_or(WireError::Truncated {
            what: "delete payload",
            need: FIXED_LEN,
            have: body.len(),
        })?;
        let [d0, d1, d2, d3, protocol_id, spi_size, c_hi, c_lo] = *fixed;
        let spi_count = u16::from_be_bytes([c_hi, c_lo]);
        if usize::from(spi_count) > MAX_DELETE_SPIS {
            return Err(WireError::TooMany { what: "SPIs in a delete payload", limit: MAX_DELETE_SPIS });
        }
        // At most 256 x 255 bytes: no overflow.
        let need = usize::from(spi_count) * usize::from(spi_size);
        if rest.len() < need {
            return Err(WireError::Truncated { what: "delete SPIs", need, have: rest.len() });
        }
        if rest.len() > need {
            return Err(WireError::BadLength { what: "delete payload", len: body.len() });
        }
        Ok(DeletePayload { doi: u32::from_be_bytes([d0, d1, d2, d3]), protocol_id, spi_size, spi_count, spis: rest })
    }

    /// The SPIs, each `spi_size` bytes.
    pub fn spis(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let spis = self.spis;
        let size = usize::from(self.spi_size);
        // Not `chunks_exact`: a zero SPI size would make it panic, and `spi_count` empty SPIs is what was sent.
        (0..usize::from(self.spi_count)).map(move |i| spis.get(i * size..(i + 1) * size).unwrap_or_default())
    }
}

/// A delete payload body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRepr {
    /// Domain of interpretation.
    pub doi: u32,
    /// Protocol ID.
    pub protocol_id: u8,
    /// SPI size.
    pub spi_size: u8,
    /// SPIs, each exactly `spi_size` bytes.
    pub spis: Vec<Vec<u8>>,
}

impl DeleteRepr {
    /// The owned form of a parsed delete payload.
    pub fn from_view(d: &DeletePayload<'_>) -> Self {
        DeleteRepr {
            doi: d.doi,
            protocol_id: d.protocol_id,
            spi_size: d.spi_size,
            spis: d.spis().map(<[u8]>::to_vec).collect(),
        }
    }
}

impl Emit for DeleteRepr {
    fn buffer_len(&self) -> usize {
        self.spis.len().saturating_mul(usize::from(self.spi_size)).saturating_add(FIXED_LEN)
    }

    /// Errors if an SPI's length differs from `spi_size`, or with more than `MAX_DELETE_SPIS` SPIs.
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        if self.spis.len() > MAX_DELETE_SPIS {
            return Err(WireError::TooMany { what: "SPIs in a delete payload", limit: MAX_DELETE_SPIS });
        }
        if let Some(bad) = self.spis.iter().find(|s| s.len() != usize::from(self.spi_size)) {
            return Err(WireError::BadLength { what: "delete SPI", len: bad.len() });
        }
        out.u32(self.doi)?;
        out.u8(self.protocol_id)?;
        out.u8(self.spi_size)?;
        // MAX_DELETE_SPIS < 65536, so the count fits.
        out.u16(self.spis.len() as u16)?;
        self.spis.iter().try_for_each(|s| out.bytes(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::{protocol, DOI_IPSEC};

    /// Deletion of two ESP SAs (RFC 2408 §3.15 layout: DOI 1, protocol 3, SPI size 4, two SPIs).
    const ESP_DELETE: [u8; 16] =
        [0x00, 0x00, 0x00, 0x01, 0x03, 0x04, 0x00, 0x02, 0xc1, 0x2a, 0x9f, 0x01, 0x0b, 0xad, 0xf0, 0x0d];

    #[test]
    fn parse_and_emit() {
        let d = DeletePayload::parse(&ESP_DELETE).unwrap();
        assert_eq!((d.doi, d.protocol_id, d.spi_size, d.spi_count), (DOI_IPSEC, protocol::ESP, 4, 2));
        let spis: Vec<&[u8]> = d.spis().collect();
        assert_eq!(spis, [&ESP_DELETE[8..12], &ESP_DELETE[12..]]);
        let repr = DeleteRepr::from_view(&d);
        let mut out = [0u8; 16];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, ESP_DELETE);
    }

    #[test]
    fn truncated_at_every_length() {
        for cut in 0..ESP_DELETE.len() {
            assert!(DeletePayload::parse(&ESP_DELETE[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn trailing_bytes_and_bounds() {
        let mut long = ESP_DELETE.to_vec();
        long.push(0);
        assert_eq!(DeletePayload::parse(&long), Err(WireError::BadLength { what: "delete payload", len: 17 }));
        // A count far beyond the bound with nothing behind it: refused before looking at the SPIs.
        let huge = [0, 0, 0, 1, 3, 4, 0xff, 0xff];
        assert!(matches!(DeletePayload::parse(&huge), Err(WireError::TooMany { .. })));
        let repr = DeleteRepr { doi: 1, protocol_id: 3, spi_size: 4, spis: vec![vec![0; 4]; MAX_DELETE_SPIS + 1] };
        let mut out = vec![0u8; repr.buffer_len()];
        assert!(matches!(repr.emit(&mut out), Err(WireError::TooMany { .. })));
    }

    #[test]
    fn zero_sized_spis() {
        // Nonsense, but it must not panic: three empty SPIs.
        let d = DeletePayload::parse(&[0, 0, 0, 1, 3, 0, 0, 3]).unwrap();
        assert_eq!(d.spis().count(), 3);
        assert!(d.spis().all(<[u8]>::is_empty));
    }

    #[test]
    fn spi_length_must_match() {
        let repr = DeleteRepr { doi: 1, protocol_id: 3, spi_size: 4, spis: vec![vec![0; 4], vec![0; 3]] };
        let mut out = vec![0u8; repr.buffer_len()];
        assert_eq!(repr.emit(&mut out), Err(WireError::BadLength { what: "delete SPI", len: 3 }));
    }
}
