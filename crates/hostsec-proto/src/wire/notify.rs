//! The notification payload (RFC 2408 §3.14).

use super::WireError;

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
        let _ = body;
        todo!()
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
    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        8 + self.spi.len() + self.data.len()
    }

    /// Writes the body; returns the bytes written.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let _ = out;
        todo!()
    }
}
