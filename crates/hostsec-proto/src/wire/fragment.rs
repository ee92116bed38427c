//! The fragment payload (type 132) of the Cisco/Microsoft IKEv1 fragmentation extension, which Windows, Cisco and
//! strongSwan implement. A message too large for the path is cut into pieces, each sent as an ISAKMP message of
//! its own that carries one fragment payload:
//!
//! ```text
//!  generic payload header (4) | fragment ID (2) | fragment number (1) | flags (1) | fragment data
//! ```
//!
//! Fragment numbers count from 1; the flag [`consts::fragment::LAST`](super::consts::fragment::LAST) marks the
//! last one, whose number is therefore the fragment count. The data of all fragments, in number order, is the
//! whole original datagram, ISAKMP header included (and, for MM5/MM6, still encrypted).

use super::consts::fragment::{LAST, PAYLOAD_HEADER_LEN};
use super::writer::{Emit, Out, GENERIC_HEADER_LEN};
use super::WireError;

/// Bytes of the body before the data: fragment ID, number, flags.
const FIXED_LEN: usize = PAYLOAD_HEADER_LEN - GENERIC_HEADER_LEN;

/// A view of a fragment payload body (after the generic header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentPayload<'a> {
    /// Identifies the message the fragment belongs to (all its fragments carry the same ID).
    pub id: u16,
    /// Position of the fragment, from 1.
    pub number: u8,
    /// The flags byte as received (only [`LAST`] has a meaning).
    pub flags: u8,
    /// The piece of the original datagram.
    pub data: &'a [u8],
}

impl<'a> FragmentPayload<'a> {
    /// Parses a fragment payload body. Refuses a body shorter than its fixed part and fragment number 0 (numbers
    /// count from 1, so 0 can only be garbage). The data may be empty; its length is bounded by the generic
    /// header's 16-bit length.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, data) = body.split_first_chunk::<FIXED_LEN>().ok_or(WireError::Truncated {
            what: "fragment payload",
            need: FIXED_LEN,
            have: body.len(),
        })?;
        let [id_hi, id_lo, number, flags] = *fixed;
        if number == 0 {
            return Err(WireError::InvalidValue { what: "fragment number", value: 0 });
        }
        Ok(FragmentPayload { id: u16::from_be_bytes([id_hi, id_lo]), number, flags, data })
    }

    /// Whether this is the last fragment of its message.
    pub fn is_last(&self) -> bool {
        self.flags & LAST != 0
    }
}

/// A fragment payload body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRepr {
    /// Fragment ID.
    pub id: u16,
    /// Fragment number, from 1.
    pub number: u8,
    /// Whether this is the last fragment.
    pub last: bool,
    /// The piece of the original datagram.
    pub data: Vec<u8>,
}

impl FragmentRepr {
    /// The owned form of a parsed fragment. Flag bits other than [`LAST`] have no meaning and are not kept.
    pub fn from_view(f: &FragmentPayload<'_>) -> Self {
        FragmentRepr { id: f.id, number: f.number, last: f.is_last(), data: f.data.to_vec() }
    }
}

impl Emit for FragmentRepr {
    fn buffer_len(&self) -> usize {
        FIXED_LEN.saturating_add(self.data.len())
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        if self.number == 0 {
            return Err(WireError::InvalidValue { what: "fragment number", value: 0 });
        }
        let mut o = Out::new(out, self.buffer_len())?;
        o.u16(self.id)?;
        o.u8(self.number)?;
        o.u8(if self.last { LAST } else { 0 })?;
        o.bytes(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::payload;
    use crate::wire::{PayloadWriter, Payloads};

    fn emit(r: &FragmentRepr) -> Vec<u8> {
        let mut v = vec![0u8; r.buffer_len()];
        r.emit(&mut v).unwrap();
        v
    }

    #[test]
    fn layout_and_roundtrip() {
        let r = FragmentRepr { id: 0x1234, number: 3, last: true, data: vec![0xaa, 0xbb] };
        let body = emit(&r);
        assert_eq!(body, [0x12, 0x34, 3, LAST, 0xaa, 0xbb]);
        let v = FragmentPayload::parse(&body).unwrap();
        assert_eq!((v.id, v.number, v.is_last(), v.data), (0x1234, 3, true, &[0xaa, 0xbb][..]));
        assert_eq!(FragmentRepr::from_view(&v), r);
        // Within a chain: the generic header makes the 8 bytes before the data.
        let mut buf = [0u8; 16];
        let mut w = PayloadWriter::new(&mut buf);
        w.push(payload::FRAGMENT, &r).unwrap();
        assert_eq!(w.len(), PAYLOAD_HEADER_LEN + 2);
        let p = Payloads::new(payload::FRAGMENT, w.written()).next().unwrap().unwrap();
        assert_eq!(FragmentPayload::parse(p.body), Ok(v));
    }

    #[test]
    fn not_last_and_empty_data() {
        let r = FragmentRepr { id: 1, number: 1, last: false, data: Vec::new() };
        let body = emit(&r);
        let v = FragmentPayload::parse(&body).unwrap();
        assert!(!v.is_last());
        assert!(v.data.is_empty());
        // Unknown flag bits are read but carry no meaning.
        let v = FragmentPayload::parse(&[0, 1, 1, 0xfe]).unwrap();
        assert!(!v.is_last());
        assert!(!FragmentRepr::from_view(&v).last);
    }

    #[test]
    fn truncated_and_garbage_refused() {
        for cut in 0..FIXED_LEN {
            assert_eq!(
                FragmentPayload::parse(&[0, 1, 1, 0][..cut]),
                Err(WireError::Truncated { what: "fragment payload", need: FIXED_LEN, have: cut })
            );
        }
        assert_eq!(
            FragmentPayload::parse(&[0xff, 0xff, 0, 0xff, 1, 2, 3]),
            Err(WireError::InvalidValue { what: "fragment number", value: 0 })
        );
        let zero = FragmentRepr { id: 1, number: 0, last: true, data: vec![1] };
        assert!(matches!(zero.emit(&mut [0u8; 5]), Err(WireError::InvalidValue { .. })));
    }

    #[test]
    fn oversized_data_cannot_be_chained() {
        // The generic header's length is 16 bits: a fragment whose payload would exceed 65535 bytes is refused by
        // the writer, and a parsed one can never be longer than that.
        let r = FragmentRepr { id: 1, number: 1, last: true, data: vec![0; 65_535 - PAYLOAD_HEADER_LEN + 1] };
        let mut buf = vec![0u8; 70_000];
        let mut w = PayloadWriter::new(&mut buf);
        assert!(matches!(w.push(payload::FRAGMENT, &r), Err(WireError::BadLength { .. })));
        let r = FragmentRepr { id: 1, number: 1, last: true, data: vec![0; 65_535 - PAYLOAD_HEADER_LEN] };
        w.push(payload::FRAGMENT, &r).unwrap();
        // An output buffer that is too small is reported, nothing written.
        let mut small = [0u8; 5];
        assert_eq!(
            FragmentRepr { id: 1, number: 1, last: true, data: vec![1, 2] }.emit(&mut small),
            Err(WireError::BufferTooSmall { need: 6, have: 5 })
        );
    }
}
