//! Building a payload chain into a caller's buffer, with the next-payload fields linked automatically.

use super::WireError;

/// Something that can be written as a payload body (or, for proposals, transforms and attributes, as the part of
/// the SA payload it stands for).
///
/// Every `*Repr` type implements it, and so do byte strings: KE, NONCE, HASH, SIG, VID and NAT-D bodies are opaque
/// (RFC 2408 §3.7-3.12, RFC 3947 §3.2), so `&[u8]`, `[u8; N]` and `Vec<u8>` are their own `Emit`.
pub trait Emit {
    /// Bytes `emit` writes.
    fn buffer_len(&self) -> usize;
    /// Writes the body into the first `buffer_len()` bytes of `out`. Fails with `BufferTooSmall` (before writing
    /// anything) when `out` is shorter, and with another error when the value cannot be encoded (a field that does
    /// not fit, or more elements than a parser would accept).
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError>;
}

impl Emit for [u8] {
    fn buffer_len(&self) -> usize {
        self.len()
    }
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        Out::new(out, self.len())?.bytes(self)
    }
}

impl<const N: usize> Emit for [u8; N] {
    fn buffer_len(&self) -> usize {
        N
    }
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        self.as_slice().emit(out)
    }
}

impl Emit for Vec<u8> {
    fn buffer_len(&self) -> usize {
        self.len()
    }
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        self.as_slice().emit(out)
    }
}

/// Lets a `&&[u8]` (or any reference to an `Emit`) stand where `&dyn Emit` is expected: a bare `&[u8]` cannot be
/// turned into a trait object because `[u8]` is unsized.
impl<T: Emit + ?Sized> Emit for &T {
    fn buffer_len(&self) -> usize {
        (**self).buffer_len()
    }
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        (**self).emit(out)
    }
}

/// A bounds-checked sequential writer for the `emit` functions: the whole size is checked once up front, so an
/// encoder either writes everything or reports `BufferTooSmall` having written nothing.
pub(crate) struct Out<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Out<'b> {
    /// The first `len` bytes of `out`, or `BufferTooSmall`.
    pub(crate) fn new(out: &'b mut [u8], len: usize) -> Result<Self, WireError> {
        let have = out.len();
        let buf = out.get_mut(..len).ok_or(WireError::BufferTooSmall { need: len, have })?;
        Ok(Out { buf, pos: 0 })
    }

    /// The next `n` bytes, for a nested encoder.
    pub(crate) fn take(&mut self, n: usize) -> Result<&mut [u8], WireError> {
        let have = self.buf.len();
        let end = self.pos.checked_add(n).ok_or(WireError::BufferTooSmall { need: usize::MAX, have })?;
        let slot = self.buf.get_mut(self.pos..end).ok_or(WireError::BufferTooSmall { need: end, have })?;
        self.pos = end;
        Ok(slot)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.take(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), WireError> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    /// Writes `item` through its own encoder.
    pub(crate) fn emit(&mut self, item: &dyn Emit) -> Result<(), WireError> {
        item.emit(self.take(item.buffer_len())?)
    }
}

/// Writes payloads one after another into `buf`. Each payload gets a generic header; the previous payload's
/// next-payload byte is patched to the new payload's type. The first payload's type is reported by
/// [`PayloadWriter::first_payload`] for the ISAKMP header.
///
/// The same linking rule builds proposal chains (type 2) inside an SA and transform chains (type 3) inside a
/// proposal (RFC 2408 §3.5, §3.6), so the SA encoder uses this writer too.
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

    /// Appends one payload of type `kind` with `body`. On `BufferTooSmall` nothing is written; on an encoding error
    /// of the body the chain is left as it was (bytes past [`PayloadWriter::len`] may have been touched).
    /// A byte string is passed as `&bytes` (a `&&[u8]`), a `Vec<u8>` or an array.
    pub fn push(&mut self, kind: u8, body: &dyn Emit) -> Result<(), WireError> {
        // Type 0 would end the chain on the wire (RFC 2408 §3.2) and hide everything after it.
        if kind == super::consts::payload::NONE {
            return Err(WireError::InvalidValue { what: "payload type", value: 0 });
        }
        let body_len = body.buffer_len();
        let total = body_len.saturating_add(GENERIC_HEADER_LEN);
        let length = u16::try_from(total).map_err(|_| WireError::BadLength { what: "payload", len: total })?;
        let have = self.buf.len();
        let end = self.len.saturating_add(total);
        let slot = self.buf.get_mut(self.len..end).ok_or(WireError::BufferTooSmall { need: end, have })?;
        let (header, body_out) =
            slot.split_first_chunk_mut::<GENERIC_HEADER_LEN>().ok_or(WireError::BufferTooSmall { need: end, have })?;
        body.emit(body_out)?;
        let [len_hi, len_lo] = length.to_be_bytes();
        *header = [super::consts::payload::NONE, 0, len_hi, len_lo];
        match self.prev_next_at.and_then(|at| self.buf.get_mut(at)) {
            Some(prev_next) => *prev_next = kind,
            None => self.first = kind,
        }
        self.prev_next_at = Some(self.len);
        self.len = end;
        Ok(())
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
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Length of the generic payload header (RFC 2408 §3.2).
pub(crate) const GENERIC_HEADER_LEN: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::payload;

    #[test]
    fn links_next_payload_fields() {
        let mut buf = [0xaau8; 32];
        let mut w = PayloadWriter::new(&mut buf);
        assert!(w.is_empty());
        w.push(payload::KE, &[1u8, 2, 3]).unwrap();
        w.push(payload::NONCE, &vec![4u8]).unwrap();
        let empty: &[u8] = &[];
        w.push(payload::VENDOR_ID, &empty).unwrap();
        assert_eq!(w.first_payload(), payload::KE);
        assert_eq!(w.len(), 7 + 5 + 4);
        assert_eq!(w.written(), &[10, 0, 0, 7, 1, 2, 3, 13, 0, 0, 5, 4, 0, 0, 0, 4][..]);
    }

    #[test]
    fn too_small_writes_nothing() {
        let mut buf = [0xaau8; 10];
        let mut w = PayloadWriter::new(&mut buf);
        w.push(payload::HASH, &[1u8, 2]).unwrap();
        let err = w.push(payload::NONCE, &[9u8; 8]).unwrap_err();
        assert_eq!(err, WireError::BufferTooSmall { need: 18, have: 10 });
        assert_eq!(w.len(), 6);
        assert_eq!(w.written(), &[0, 0, 0, 6, 1, 2][..]);
        assert_eq!(&buf[6..], &[0xaa; 4]);
    }

    #[test]
    fn refuses_type_zero_and_oversized_bodies() {
        let mut buf = [0u8; 8];
        let mut w = PayloadWriter::new(&mut buf);
        assert!(matches!(w.push(0, &[1u8]), Err(WireError::InvalidValue { .. })));
        let big = vec![0u8; 65_532];
        assert_eq!(w.push(payload::CERT, &big), Err(WireError::BadLength { what: "payload", len: 65_536 }));
        assert!(w.is_empty());
    }

    #[test]
    fn byte_strings_check_their_buffer() {
        let mut out = [0u8; 2];
        assert_eq!([1u8, 2, 3].emit(&mut out), Err(WireError::BufferTooSmall { need: 3, have: 2 }));
        let mut out = [0u8; 4];
        [1u8, 2, 3].emit(&mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 0]);
    }
}
