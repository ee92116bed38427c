//! Building a payload chain into a caller's buffer, with the next-payload fields linked automatically.

use super::WireError;

/// Something that can be written as a payload body.
pub trait Emit {
    /// Bytes `emit` writes.
    fn buffer_len(&self) -> usize;
    /// Writes the body into `out` (exactly `buffer_len()` bytes long).
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError>;
}

/// Writes payloads one after another into `buf`. Each payload gets a generic header; the previous payload's
/// next-payload byte is patched to the new payload's type. The first payload's type is reported by
/// [`PayloadWriter::first_payload`] for the ISAKMP header.
pub struct PayloadWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    first: u8,
    prev_next_at: Option<usize>,
}

impl<'b> PayloadWriter<'b> {
    /// A writer that starts at the beginning of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        PayloadWriter { buf, len: 0, first: 0, prev_next_at: None }
    }

    /// Appends one payload of type `kind` with `body`.
    pub fn push(&mut self, kind: u8, body: &dyn Emit) -> Result<(), WireError> {
        let _ = (kind, body, &mut self.buf, self.len, self.first, self.prev_next_at);
        todo!()
    }

    /// Type of the first payload written (0 if none).
    pub fn first_payload(&self) -> u8 {
        self.first
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
