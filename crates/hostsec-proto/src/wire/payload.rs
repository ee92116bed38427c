//! The generic payload header (RFC 2408 §3.2) and iteration over a payload chain.

use super::writer::GENERIC_HEADER_LEN;
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

/// Splits the payload at the front of `buf` into (its next-payload field, its body, the bytes after it).
///
/// The payload length covers the generic header (RFC 2408 §3.2), so a value below 4 is malformed, and one that
/// runs past `buf` means the enclosing structure (message, SA payload, proposal) is truncated or lies.
pub(crate) fn split_payload<'a>(what: &'static str, buf: &'a [u8]) -> Result<(u8, &'a [u8], &'a [u8]), WireError> {
    let (header, after) = buf.split_first_chunk::<GENERIC_HEADER_LEN>().ok_or(WireError::Truncated {
        what,
        need: GENERIC_HEADER_LEN,
        have: buf.len(),
    })?;
    let [next, _reserved, len_hi, len_lo] = *header;
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let body_len = len.checked_sub(GENERIC_HEADER_LEN).ok_or(WireError::BadLength { what, len })?;
    let (body, rest) =
        after.split_at_checked(body_len).ok_or(WireError::Truncated { what, need: len, have: buf.len() })?;
    Ok((next, body, rest))
}

/// Iterator over a payload chain that starts with a payload of type `first`. Yields an error (and then stops)
/// on a generic header whose length is < 4 or runs past the buffer, and after `MAX_PAYLOADS` payloads.
/// Bytes after the last payload (next-payload 0) are left for the caller: [`Payloads::remainder`].
///
/// Payload types are not checked here: unknown and private types (RFC 2408 §3.1, e.g. type 15 that draft-07 Cisco
/// peers use for NAT-D) are yielded like any other so that the caller can skip them by length.
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
        if self.failed || self.next == super::consts::payload::NONE {
            return None;
        }
        if self.count == MAX_PAYLOADS {
            self.failed = true;
            return Some(Err(WireError::TooMany { what: "payloads", limit: MAX_PAYLOADS }));
        }
        match split_payload("payload", self.rest) {
            Ok((next, body, rest)) => {
                let item = RawPayload { kind: self.next, body };
                self.next = next;
                self.rest = rest;
                self.count += 1;
                Some(Ok(item))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Payloads<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::payload;

    /// KE (8 bytes), NONCE (4), then 4 bytes of padding as a decrypted message carries them (RFC 2408 §3.1:
    /// the header length covers the padding, the chain does not).
    const CHAIN: [u8; 24] = [
        10, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, // KE, next NONCE
        0, 0, 0, 8, 9, 10, 11, 12, // NONCE, last
        0, 0, 0, 0, // padding
    ];

    #[test]
    fn walks_the_chain_and_leaves_padding() {
        let mut it = Payloads::new(payload::KE, &CHAIN);
        assert_eq!(it.next(), Some(Ok(RawPayload { kind: payload::KE, body: &CHAIN[4..12] })));
        assert_eq!(it.next(), Some(Ok(RawPayload { kind: payload::NONCE, body: &CHAIN[16..20] })));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        assert_eq!(it.remainder(), &[0, 0, 0, 0]);
    }

    #[test]
    fn empty_chain() {
        let mut it = Payloads::new(payload::NONE, &CHAIN);
        assert_eq!(it.next(), None);
        assert_eq!(it.remainder(), &CHAIN[..]);
    }

    #[test]
    fn truncation_is_an_error_then_stops() {
        for cut in 0..20 {
            let items: Vec<_> = Payloads::new(payload::KE, &CHAIN[..cut]).collect();
            assert!(items.last().is_some_and(|r| r.is_err()), "cut {cut}: {items:?}");
            assert_eq!(items.iter().filter(|r| r.is_err()).count(), 1);
        }
    }

    #[test]
    fn short_length_is_refused() {
        for len in 0..4u8 {
            let buf = [0, 0, 0, len, 0, 0, 0, 0];
            let items: Vec<_> = Payloads::new(payload::VENDOR_ID, &buf).collect();
            assert_eq!(items, vec![Err(WireError::BadLength { what: "payload", len: usize::from(len) })]);
        }
    }

    #[test]
    fn bounded_number_of_payloads() {
        // 100 empty payloads, each pointing at another.
        let buf: Vec<u8> = (0..100).flat_map(|_| [payload::VENDOR_ID, 0, 0, 4]).collect();
        let items: Vec<_> = Payloads::new(payload::VENDOR_ID, &buf).collect();
        assert_eq!(items.len(), MAX_PAYLOADS + 1);
        assert_eq!(items.last(), Some(&Err(WireError::TooMany { what: "payloads", limit: MAX_PAYLOADS })));
    }

    #[test]
    fn unknown_types_are_skipped_by_length() {
        // Type 15 as NAT-D (draft-ietf-ipsec-nat-t-ike-07 numbering used by some Cisco releases).
        let buf = [15, 0, 0, 6, 0xaa, 0xbb, 0, 0, 0, 5, 0xcc];
        let kinds: Vec<u8> = Payloads::new(15, &buf).map(|p| p.unwrap().kind).collect();
        assert_eq!(kinds, vec![15, 15]);
    }
}
