//! The generic payload header (RFC 2408 §3.2) and iteration over a payload chain.

use super::WireError;

/// At most this many payloads are read from one message (a resource bound; real messages carry < 20).
pub const MAX_PAYLOADS: usize = 64;

/// One payload of a chain: its type (from the previous header's next-payload field) and its body, without
/// the 4-byte generic header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// Payload type.
    pub kind: u8,
    /// Body bytes (after the generic header).
    pub body: &'a [u8],
}

/// Iterator over a payload chain that starts with a payload of type `first`. Yields an error (and then stops)
/// on a generic header whose length is < 4 or runs past the buffer, and after `MAX_PAYLOADS` payloads.
/// Bytes after the last payload (next-payload 0) are left for the caller: [`Payloads::remainder`].
pub struct Payloads<'a> {
    next: u8,
    rest: &'a [u8],
    count: usize,
    failed: bool,
}

impl<'a> Payloads<'a> {
    /// Starts iterating `buf`, whose first payload has type `first` (the header's next-payload field).
    pub fn new(first: u8, buf: &'a [u8]) -> Self {
        Payloads { next: first, rest: buf, count: 0, failed: false }
    }

    /// Bytes not consumed by the chain so far (after the iterator returned `None`: the padding).
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Payloads<'a> {
    type Item = Result<RawPayload<'a>, WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        let _ = (self.next, self.count, self.failed);
        todo!()
    }
}
