//! IKE fragmentation (the Cisco/Microsoft IKEv1 extension): cutting a datagram too large for the path into
//! fragment messages, and putting a peer's fragments back together.
//!
//! Facts from strongSwan (`message.c`, `ike_sa.c`, `isakmp_vendor.c`), which Windows interoperates with:
//! - the fragments' data, in number order, is the complete original datagram, ISAKMP header included and still
//!   encrypted where the original is; nothing is encrypted again;
//! - each fragment is an ISAKMP message with the original's cookies and version, next payload 132, exchange type
//!   Identity Protection whatever the original's, no flags and message ID 0, carrying one fragment payload;
//! - the fragment size is that of the whole IP datagram: IP (20 or 40 bytes) and UDP (8) headers, the non-ESP
//!   marker (4) on port 4500, the ISAKMP header (28) and the fragment payload header (8) all come out of it.
//!
//! Our choices:
//! - The fragment ID is taken from a digest of the datagram, so a retransmission sends exactly the same fragments
//!   (they fill the gaps of a reassembly the peer has begun) and another message gets another ID (strongSwan
//!   always sends ID 1 and relies on one message at a time).
//! - A reassembly is bounded: [`MAX_FRAGMENTS`] fragments and [`MAX_MESSAGE`] bytes, one per SA (a fragment with
//!   another ID discards an incomplete reassembly: the peer has moved on), and a deadline after which an
//!   incomplete one is discarded.

use super::message::MAX_MESSAGE;
use crate::wire::consts::fragment::PAYLOAD_HEADER_LEN;
use crate::wire::consts::{exchange, payload, NATT_PORT};
use crate::wire::{FragmentPayload, FragmentRepr, Header};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Most fragments one message may be cut into. Our own messages need at most 34 (16 KiB in pieces of at least
/// 488 bytes); peers cut theirs into pieces of similar size.
pub(crate) const MAX_FRAGMENTS: usize = 64;

/// IP datagram size used when the configuration says 0: the sizes every IPv4 host (RFC 791) and every IPv6 link
/// (RFC 8200) must carry, as strongSwan's `fragment_size = 0`.
const DEFAULT_V4: usize = 576;
const DEFAULT_V6: usize = 1280;

/// The largest UDP payload (an IKE datagram) that fits an IP datagram of `fragment_size` bytes (0: the family's
/// default) from `local` to `remote`.
pub(crate) fn max_datagram(fragment_size: u16, local: SocketAddr, remote: SocketAddr) -> usize {
    let v4 = remote.is_ipv4();
    let ip_size = match usize::from(fragment_size) {
        0 if v4 => DEFAULT_V4,
        0 => DEFAULT_V6,
        n => n,
    };
    let ip_header = if v4 { 20 } else { 40 };
    let marker = if local.port() == NATT_PORT || remote.port() == NATT_PORT { 4 } else { 0 };
    ip_size.saturating_sub(ip_header + 8 + marker)
}

/// Cuts `datagram` (a complete ISAKMP message) into fragment messages of at most `max` bytes each. `None` when
/// it is no ISAKMP message, or `max` leaves no room for data, or it would take more than [`MAX_FRAGMENTS`].
pub(crate) fn split(datagram: &[u8], max: usize) -> Option<Vec<Vec<u8>>> {
    let original = Header::parse(datagram).ok()?;
    let piece = max.checked_sub(Header::LEN + PAYLOAD_HEADER_LEN).filter(|n| *n > 0)?;
    let count = datagram.len().div_ceil(piece);
    if count > MAX_FRAGMENTS {
        return None;
    }
    let id = fragment_id(datagram);
    let mut out = Vec::with_capacity(count);
    for (i, data) in datagram.chunks(piece).enumerate() {
        let repr = FragmentRepr { id, number: u8::try_from(i + 1).ok()?, last: i + 1 == count, data: data.to_vec() };
        let hdr = Header {
            next_payload: payload::FRAGMENT,
            exchange_type: exchange::IDENTITY_PROTECTION,
            flags: 0,
            message_id: 0,
            length: 0,
            ..original
        };
        out.push(super::message::build_plain(hdr, &[(payload::FRAGMENT, &repr)]).ok()?);
    }
    Some(out)
}

/// The fragment ID of a datagram: the same for its retransmissions, another for another message (but for a
/// 1 in 65535 coincidence, which costs one retransmission). Never 0.
fn fragment_id(datagram: &[u8]) -> u16 {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, datagram);
    match d.as_ref() {
        [a, b, ..] => u16::from_be_bytes([*a, *b]).max(1),
        _ => 1,
    }
}

/// Why a fragment was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A fragment with this number is already held: ignored, the reassembly goes on.
    Duplicate,
    /// The fragment contradicts the last-fragment number already known: ignored, the reassembly goes on.
    Inconsistent(String),
    /// The message cannot be reassembled within the bounds: the whole reassembly is discarded.
    OutOfBounds(String),
}

/// What adding a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// Held; more are needed.
    Incomplete,
    /// The message is complete: here it is, and the reassembly is spent.
    Complete(Vec<u8>),
}

/// The fragments of one message received so far.
#[derive(Debug)]
pub(crate) struct Reassembly {
    /// The fragment ID of the message.
    pub id: u16,
    /// When an incomplete reassembly is given up.
    pub deadline: Instant,
    parts: BTreeMap<u8, Vec<u8>>,
    last: Option<u8>,
    bytes: usize,
}

impl Reassembly {
    /// An empty reassembly of message `id`, given up at `deadline`.
    pub fn new(id: u16, deadline: Instant) -> Self {
        Reassembly { id, deadline, parts: BTreeMap::new(), last: None, bytes: 0 }
    }

    /// Fragments held.
    pub fn held(&self) -> usize {
        self.parts.len()
    }

    /// Adds a fragment of this message (the caller checked its ID). Fragments come in any order; a duplicate is
    /// refused without harm.
    pub fn add(&mut self, f: &FragmentPayload<'_>) -> Result<Added, Refused> {
        let n = f.number;
        if usize::from(n) > MAX_FRAGMENTS {
            return Err(Refused::OutOfBounds(format!(
                "fragment number {n} is beyond the {MAX_FRAGMENTS} fragments a message may have"
            )));
        }
        if self.parts.contains_key(&n) {
            return Err(Refused::Duplicate);
        }
        match (self.last, f.is_last()) {
            (Some(last), _) if n > last => {
                return Err(Refused::Inconsistent(format!("fragment {n} comes after the last one, {last}")));
            }
            (Some(last), true) if n != last => {
                return Err(Refused::Inconsistent(format!("fragment {n} says it is the last, but {last} did")));
            }
            (None, true) => {
                if let Some(after) = self.parts.keys().next_back().filter(|k| **k > n) {
                    return Err(Refused::Inconsistent(format!(
                        "fragment {n} says it is the last, but fragment {after} came"
                    )));
                }
            }
            _ => {}
        }
        let bytes = self.bytes.saturating_add(f.data.len());
        if bytes > MAX_MESSAGE {
            return Err(Refused::OutOfBounds(format!(
                "the fragments add up to more than {MAX_MESSAGE} bytes, the largest message accepted"
            )));
        }
        self.bytes = bytes;
        self.parts.insert(n, f.data.to_vec());
        if f.is_last() {
            self.last = Some(n);
        }
        match self.last {
            Some(last) if self.parts.len() == usize::from(last) => {
                let mut msg = Vec::with_capacity(self.bytes);
                for part in std::mem::take(&mut self.parts).into_values() {
                    msg.extend_from_slice(&part);
                }
                self.bytes = 0;
                Ok(Added::Complete(msg))
            }
            _ => Ok(Added::Incomplete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::ISAKMP_VERSION;
    use crate::wire::Payloads;
    use proptest::prelude::*;
    use std::time::Duration;

    /// An encrypted MM5-like datagram of `len` bytes.
    fn message(len: usize, seed: u8) -> Vec<u8> {
        let hdr = Header {
            initiator_cookie: [1; 8],
            responder_cookie: [2; 8],
            next_payload: payload::ID,
            version: ISAKMP_VERSION,
            exchange_type: exchange::QUICK_MODE,
            flags: crate::wire::consts::flags::ENCRYPTION,
            message_id: 0x0102_0304,
            length: len as u32,
        };
        let mut m: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        hdr.emit(&mut m).unwrap();
        m
    }

    fn parse(fragment: &[u8]) -> (Header, FragmentPayload<'_>) {
        let (h, body) = Header::split(fragment).unwrap();
        let p = Payloads::new(h.next_payload, body).next().unwrap().unwrap();
        assert_eq!(p.kind, payload::FRAGMENT);
        (h, FragmentPayload::parse(p.body).unwrap())
    }

    #[test]
    fn sizes_per_family_and_port() {
        let v4 = |p: u16| SocketAddr::from(([192, 0, 2, 1], p));
        let v6 = |p: u16| SocketAddr::new("2001:db8::1".parse().unwrap(), p);
        assert_eq!(max_datagram(0, v4(500), v4(500)), 548);
        assert_eq!(max_datagram(0, v6(500), v6(500)), 1232);
        assert_eq!(max_datagram(0, v4(4500), v4(4500)), 544);
        assert_eq!(max_datagram(1400, v4(500), v4(500)), 1372);
        assert_eq!(max_datagram(576, v6(500), v6(4500)), 524);
    }

    #[test]
    fn fragments_carry_the_original_cookies_and_fit() {
        let m = message(2000, 7);
        let frags = split(&m, 548).unwrap();
        assert_eq!(frags.len(), 2000usize.div_ceil(548 - 36));
        let mut data = Vec::new();
        let mut ids = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 548);
            let (h, p) = parse(f);
            assert_eq!((h.initiator_cookie, h.responder_cookie), ([1; 8], [2; 8]));
            assert_eq!((h.exchange_type, h.flags, h.message_id), (exchange::IDENTITY_PROTECTION, 0, 0));
            assert_eq!(usize::from(p.number), i + 1);
            assert_eq!(p.is_last(), i + 1 == frags.len());
            ids.push(p.id);
            data.extend_from_slice(p.data);
        }
        assert_eq!(data, m, "the data is the whole datagram, header included");
        assert!(ids.iter().all(|id| *id == ids[0] && *id != 0));
        // A retransmission gives the same fragments; another message another ID.
        assert_eq!(split(&m, 548).unwrap(), frags);
        assert_ne!(parse(&split(&message(2000, 8), 548).unwrap()[0]).1.id, ids[0]);
        // No room for data, too many fragments, not ISAKMP.
        assert!(split(&m, 36).is_none());
        assert!(split(&message(MAX_MESSAGE, 1), 37 + 100).is_none());
        assert!(split(&[0u8; 40], 548).is_none());
    }

    fn reassemble(frags: &[Vec<u8>], order: &[usize]) -> Option<Vec<u8>> {
        let first = parse(&frags[0]).1.id;
        let mut r = Reassembly::new(first, Instant::now());
        for &i in order {
            let (_, p) = parse(&frags[i]);
            match r.add(&p) {
                Ok(Added::Complete(m)) => return Some(m),
                Ok(Added::Incomplete) | Err(Refused::Duplicate) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        None
    }

    proptest! {
        /// Any message, cut at any size, comes back identical whatever the order, with duplicates.
        #[test]
        fn split_then_reassemble(len in 28usize..6000, seed: u8, max in 37usize..1500, picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..40), shuffle_seed: u64) {
            let m = message(len, seed);
            let Some(frags) = split(&m, max) else {
                prop_assert!(len.div_ceil(max - 36) > MAX_FRAGMENTS);
                return Ok(());
            };
            let mut order: Vec<usize> = (0..frags.len()).collect();
            order.extend(picks.iter().map(|p| p.index(frags.len())));
            let mut s = shuffle_seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(reassemble(&frags, &order), Some(m));
        }
    }

    fn frag(n: u8, last: bool, data: &[u8]) -> FragmentPayload<'_> {
        FragmentPayload { id: 9, number: n, flags: u8::from(last), data }
    }

    #[test]
    fn bounds_and_contradictions() {
        let now = Instant::now();
        let mut r = Reassembly::new(9, now + Duration::from_secs(1));
        assert_eq!(r.add(&frag(2, false, b"bb")), Ok(Added::Incomplete));
        assert_eq!(r.add(&frag(2, false, b"xx")), Err(Refused::Duplicate));
        assert!(matches!(r.add(&frag(65, false, b"")), Err(Refused::OutOfBounds(_))));
        assert!(matches!(r.add(&frag(1, true, b"")), Err(Refused::Inconsistent(_))), "2 came, so 1 is not last");
        assert_eq!(r.add(&frag(3, true, b"cc")), Ok(Added::Incomplete));
        assert!(matches!(r.add(&frag(4, false, b"")), Err(Refused::Inconsistent(_))));
        assert!(matches!(r.add(&frag(1, true, b"")), Err(Refused::Inconsistent(_))));
        assert_eq!(r.held(), 2);
        assert_eq!(r.add(&frag(1, false, b"aa")), Ok(Added::Complete(b"aabbcc".to_vec())));
        assert_eq!(r.held(), 0);

        // Total size: 16 KiB at most.
        let big = vec![0u8; MAX_MESSAGE / 2];
        let mut r = Reassembly::new(9, now);
        assert_eq!(r.add(&frag(1, false, &big)), Ok(Added::Incomplete));
        assert_eq!(r.add(&frag(2, false, &big)), Ok(Added::Incomplete));
        assert!(matches!(r.add(&frag(3, true, b"x")), Err(Refused::OutOfBounds(_))));

        // Fragment count: 64 at most.
        let mut r = Reassembly::new(9, now);
        for n in 1..=64u8 {
            assert_eq!(r.add(&frag(n, false, b"x")), Ok(Added::Incomplete));
        }
        assert!(matches!(r.add(&frag(65, true, b"x")), Err(Refused::OutOfBounds(_))));
    }
}
