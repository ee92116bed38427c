//! The IP side of transport-mode ESP: where the ESP header goes in an outbound packet, where it is in an inbound
//! one, and how the IP header is fixed up around it (RFC 4303 §3.1.1).

use super::bytes::{array, checksum_adjust, put_u16, put_u8, u16_at, u8_at};
use super::{DropReason, PROTO_ESP};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Minimum IPv4 header (no options).
pub(crate) const IPV4_MIN_HEADER: usize = 20;
/// The fixed IPv6 header.
pub(crate) const IPV6_HEADER: usize = 40;
/// Extension headers walked before giving up (a bound on work per packet; RFC 8200 §4.1 lists at most 8 kinds,
/// and Linux stops at a similar depth).
const MAX_EXT_HEADERS: usize = 8;

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTS: u8 = 60;

/// IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// Where the parts of an IP packet are, for ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpLayout {
    pub family: Family,
    /// Bytes that stay in clear in front of the ESP header: the IPv4 header with its options, or the IPv6
    /// header with the extension headers that must precede ESP.
    pub header_len: usize,
    /// Length of the datagram according to its header (trailing bytes beyond it, e.g. link padding, are not
    /// part of it).
    pub total_len: usize,
    /// Offset of the protocol / next-header byte that points to ESP in the outer packet: the IPv4 protocol
    /// field, the IPv6 next header field, or the next header field of the last extension header in front.
    pub next_header_at: usize,
    /// Outbound: the protocol that follows the clear part (it goes into the ESP trailer). Inbound: 50.
    pub next_header: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
}

fn bad<T>(_: T) -> DropReason {
    DropReason::Malformed
}

/// The IPv4 header: version, lengths, fragment fields, addresses. The header checksum is not verified: the
/// local stack wrote it (outbound) or the kernel checked it (inbound), and [`finish_header`] updates it
/// incrementally, so that a header that was wrong stays wrong for the next hop to drop.
#[inline]
fn ipv4(packet: &[u8]) -> Result<IpLayout, DropReason> {
    let b0 = u8_at(packet, 0).ok_or(DropReason::Malformed)?;
    if b0 >> 4 != 4 {
        return Err(DropReason::Malformed);
    }
    let header_len = usize::from(b0 & 0x0f) * 4;
    let total_len = usize::from(u16_at(packet, 2).ok_or(DropReason::Malformed)?);
    if header_len < IPV4_MIN_HEADER || total_len < header_len || total_len > packet.len() {
        return Err(DropReason::Malformed);
    }
    // MF flag or a fragment offset: a fragment (RFC 791 §3.1).
    let fragment = u16_at(packet, 6).ok_or(DropReason::Malformed)?;
    if fragment & 0x3fff != 0 {
        return Err(DropReason::Fragment);
    }
    Ok(IpLayout {
        family: Family::V4,
        header_len,
        total_len,
        next_header_at: 9,
        next_header: u8_at(packet, 9).ok_or(DropReason::Malformed)?,
        src: IpAddr::V4(Ipv4Addr::from(array::<4>(packet, 12).ok_or(DropReason::Malformed)?)),
        dst: IpAddr::V4(Ipv4Addr::from(array::<4>(packet, 16).ok_or(DropReason::Malformed)?)),
    })
}

/// The fixed IPv6 header: version, length, addresses.
#[inline]
fn ipv6_fixed(packet: &[u8]) -> Result<(usize, u8, IpAddr, IpAddr), DropReason> {
    let b0 = u8_at(packet, 0).ok_or(DropReason::Malformed)?;
    if b0 >> 4 != 6 {
        return Err(DropReason::Malformed);
    }
    let payload_len = usize::from(u16_at(packet, 4).ok_or(DropReason::Malformed)?);
    let total_len = IPV6_HEADER + payload_len;
    // Payload length 0 with more bytes behind is a jumbogram (RFC 2675), which no link hostsec runs on carries.
    if total_len > packet.len() || (payload_len == 0 && packet.len() > IPV6_HEADER) {
        return Err(DropReason::Malformed);
    }
    let src = IpAddr::V6(Ipv6Addr::from(array::<16>(packet, 8).ok_or(DropReason::Malformed)?));
    let dst = IpAddr::V6(Ipv6Addr::from(array::<16>(packet, 24).ok_or(DropReason::Malformed)?));
    Ok((total_len, u8_at(packet, 6).ok_or(DropReason::Malformed)?, src, dst))
}

/// One extension header at `at`: its next header and its end. The fragment header is checked to be atomic
/// (offset 0, no more fragments: RFC 8200 §4.5, RFC 6946), since ESP is applied to whole datagrams only.
#[inline]
fn ext_header(packet: &[u8], kind: u8, at: usize, total_len: usize) -> Result<(u8, usize), DropReason> {
    let next = u8_at(packet, at).ok_or(DropReason::Malformed)?;
    let len = if kind == FRAGMENT {
        let offset_and_m = u16_at(packet, at + 2).ok_or(DropReason::Malformed)?;
        if offset_and_m & 0xfff9 != 0 {
            return Err(DropReason::Fragment);
        }
        8
    } else {
        (usize::from(u8_at(packet, at + 1).ok_or(DropReason::Malformed)?) + 1) * 8
    };
    let end = at.checked_add(len).ok_or(DropReason::Malformed)?;
    if end > total_len {
        return Err(DropReason::Malformed);
    }
    Ok((next, end))
}

/// An outbound packet as the local stack wrote it: where ESP goes.
///
/// IPv4: after the header and its options. IPv6 (RFC 4303 §3.1.1): after the hop-by-hop, routing and fragment
/// headers (and destination options in front of a routing header), which the network must see; destination
/// options after them and everything else are encrypted.
#[inline]
pub(crate) fn parse_outbound(packet: &[u8]) -> Result<IpLayout, DropReason> {
    match u8_at(packet, 0).ok_or(DropReason::Malformed)? >> 4 {
        4 => ipv4(packet),
        6 => {
            let (total_len, first, src, dst) = ipv6_fixed(packet)?;
            let mut kind = first;
            let mut at = IPV6_HEADER;
            // The clear part so far: the fixed header, whose next header field is at offset 6.
            let (mut header_len, mut next_header_at, mut next_header) = (IPV6_HEADER, 6, first);
            for i in 0..MAX_EXT_HEADERS {
                match kind {
                    HOP_BY_HOP | ROUTING | FRAGMENT | DEST_OPTS => {
                        // RFC 8200 §4.1: hop-by-hop only right after the IPv6 header.
                        if kind == HOP_BY_HOP && i != 0 {
                            return Err(DropReason::Malformed);
                        }
                        let (next, end) = ext_header(packet, kind, at, total_len)?;
                        if kind != DEST_OPTS {
                            // Everything up to here (including destination options before a routing header)
                            // stays in front of ESP.
                            (header_len, next_header_at, next_header) = (end, at, next);
                        }
                        kind = next;
                        at = end;
                    }
                    _ => {
                        return Ok(IpLayout {
                            family: Family::V6,
                            header_len,
                            total_len,
                            next_header_at,
                            next_header,
                            src,
                            dst,
                        })
                    }
                }
            }
            Err(DropReason::Malformed)
        }
        _ => Err(DropReason::Malformed),
    }
}

/// An inbound packet: where its ESP header is. IPv4 protocol 50; IPv6 with extension headers in front of ESP
/// (hop-by-hop, destination options, routing, atomic fragment), anything else is not ESP.
#[inline]
pub(crate) fn parse_inbound(packet: &[u8]) -> Result<IpLayout, DropReason> {
    match u8_at(packet, 0).ok_or(DropReason::Malformed)? >> 4 {
        4 => {
            let l = ipv4(packet)?;
            if l.next_header != PROTO_ESP {
                return Err(DropReason::Malformed);
            }
            Ok(l)
        }
        6 => {
            let (total_len, first, src, dst) = ipv6_fixed(packet)?;
            let (mut kind, mut at, mut next_header_at) = (first, IPV6_HEADER, 6);
            for i in 0..MAX_EXT_HEADERS {
                match kind {
                    PROTO_ESP => {
                        return Ok(IpLayout {
                            family: Family::V6,
                            header_len: at,
                            total_len,
                            next_header_at,
                            next_header: PROTO_ESP,
                            src,
                            dst,
                        })
                    }
                    HOP_BY_HOP | ROUTING | FRAGMENT | DEST_OPTS => {
                        if kind == HOP_BY_HOP && i != 0 {
                            return Err(DropReason::Malformed);
                        }
                        let (next, end) = ext_header(packet, kind, at, total_len)?;
                        (kind, next_header_at, at) = (next, at, end);
                    }
                    _ => return Err(DropReason::Malformed),
                }
            }
            Err(DropReason::Malformed)
        }
        _ => Err(DropReason::Malformed),
    }
}

/// Fixes up the clear header copied to the front of `out` for a datagram of `total_len` bytes whose part after
/// the header starts with protocol `next_header`: protocol / next header field, length field (RFC 791 §3.1;
/// RFC 8200 §3: IPv6 counts the payload after the fixed header), and the IPv4 header checksum, updated for the
/// two changed 16-bit words (RFC 1624 eqn. 3) rather than recomputed over the header and its options.
#[inline]
pub(crate) fn finish_header(out: &mut [u8], l: &IpLayout, next_header: u8, total_len: usize) -> Result<(), DropReason> {
    match l.family {
        Family::V4 => {
            let len = u16::try_from(total_len).map_err(bad)?;
            let old_len = u16_at(out, 2).ok_or(DropReason::BufferTooSmall)?;
            let old_ttl_proto = u16_at(out, 8).ok_or(DropReason::BufferTooSmall)?;
            let new_ttl_proto = (old_ttl_proto & 0xff00) | u16::from(next_header);
            let sum = u16_at(out, 10).ok_or(DropReason::BufferTooSmall)?;
            let sum = checksum_adjust(checksum_adjust(sum, old_len, len), old_ttl_proto, new_ttl_proto);
            put_u16(out, 2, len).ok_or(DropReason::BufferTooSmall)?;
            put_u16(out, 8, new_ttl_proto).ok_or(DropReason::BufferTooSmall)?;
            put_u16(out, 10, sum).ok_or(DropReason::BufferTooSmall)?;
        }
        Family::V6 => {
            put_u8(out, l.next_header_at, next_header).ok_or(DropReason::BufferTooSmall)?;
            let len = u16::try_from(total_len.checked_sub(IPV6_HEADER).ok_or(DropReason::Malformed)?).map_err(bad)?;
            put_u16(out, 4, len).ok_or(DropReason::BufferTooSmall)?;
        }
    }
    Ok(())
}

/// Largest datagram the length field can describe: 65535 bytes for IPv4 (total length), 40 + 65535 for IPv6
/// (payload length; no jumbograms).
#[inline]
pub(crate) fn max_total_len(family: Family) -> usize {
    match family {
        Family::V4 => 0xffff,
        Family::V6 => IPV6_HEADER + 0xffff,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v6(next: u8, ext: &[u8], payload_len: usize) -> Vec<u8> {
        let mut p = vec![0u8; IPV6_HEADER];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((ext.len() + payload_len) as u16).to_be_bytes());
        p[6] = next;
        p[8] = 0x20;
        p[24] = 0x20;
        p.extend_from_slice(ext);
        p.extend(std::iter::repeat_n(0xaa, payload_len));
        p
    }

    #[test]
    fn ipv6_split_points() {
        // HBH -> DestOpts -> Routing -> DestOpts -> TCP: clear part ends after the routing header.
        let ext = [
            [DEST_OPTS, 0, 0, 0, 0, 0, 0, 0],
            [ROUTING, 0, 0, 0, 0, 0, 0, 0],
            [DEST_OPTS, 0, 0, 0, 0, 0, 0, 0],
            [6, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        let p = v6(HOP_BY_HOP, &ext, 20);
        let l = parse_outbound(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((l.header_len, l.next_header_at, l.next_header), (IPV6_HEADER + 24, IPV6_HEADER + 16, DEST_OPTS));
        // Only destination options: everything is encrypted.
        let p = v6(DEST_OPTS, &[17, 0, 0, 0, 0, 0, 0, 0], 8);
        let l = parse_outbound(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((l.header_len, l.next_header_at, l.next_header), (IPV6_HEADER, 6, DEST_OPTS));
        // A real fragment is refused, an atomic one stays in front.
        let p = v6(FRAGMENT, &[17, 0, 0, 1, 0, 0, 0, 1], 8);
        assert_eq!(parse_outbound(&p), Err(DropReason::Fragment));
        let p = v6(FRAGMENT, &[17, 0, 0, 0, 0, 0, 0, 1], 8);
        assert_eq!(parse_outbound(&p).map(|l| (l.header_len, l.next_header)), Ok((48, 17)));
        // Hop-by-hop after another header is malformed.
        let p = v6(DEST_OPTS, &[HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0], 0);
        assert_eq!(parse_outbound(&p), Err(DropReason::Malformed));
        // Inbound: ESP after a destination options header.
        let p = v6(DEST_OPTS, &[PROTO_ESP, 0, 0, 0, 0, 0, 0, 0], 30);
        assert_eq!(parse_inbound(&p).map(|l| (l.header_len, l.next_header_at)), Ok((48, 40)));
        let p = v6(17, &[], 30);
        assert_eq!(parse_inbound(&p), Err(DropReason::Malformed));
    }

    use crate::esp::bytes::internet_checksum;

    #[test]
    fn incremental_checksum_equals_recomputation() {
        let mut h = vec![0x46, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x94, 4, 0, 0];
        let sum = internet_checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        let l = parse_outbound(&[h.clone(), vec![0; 16]].concat()).unwrap();
        for (proto, total) in [(50u8, 100usize), (17, 24), (0, 65535), (255, 0xfffe)] {
            let mut out = h.clone();
            finish_header(&mut out, &l, proto, total).unwrap();
            assert_eq!((out[9], u16::from_be_bytes([out[2], out[3]])), (proto, total as u16));
            assert_eq!(internet_checksum(&out), 0, "proto {proto} total {total}");
        }
    }

    #[test]
    fn ipv4_checks() {
        let mut p = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p.extend_from_slice(&[0; 8]);
        let sum = internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_outbound(&p).map(|l| (l.header_len, l.total_len, l.next_header)), Ok((20, 28, 17)));
        let mut frag = p.clone();
        frag[6] = 0x20;
        assert_eq!(parse_outbound(&frag), Err(DropReason::Fragment));
        assert_eq!(parse_inbound(&p), Err(DropReason::Malformed), "not ESP");
        for n in 0..p.len() {
            assert!(parse_outbound(&p[..n]).is_err());
        }
    }
}
