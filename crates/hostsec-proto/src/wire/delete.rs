//! The delete payload (RFC 2408 §3.15).

use super::WireError;

/// Bound on SPIs read from one delete payload.
pub const MAX_DELETE_SPIS: usize = 256;

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
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let _ = body;
        todo!()
    }

    /// The SPIs, each `spi_size` bytes.
    pub fn spis(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let _ = self.spis;
        std::iter::empty()
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
    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        8 + self.spis.len() * usize::from(self.spi_size)
    }

    /// Writes the body; returns the bytes written. Errors if an SPI's length differs from `spi_size`.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let _ = out;
        todo!()
    }
}
