//! What traffic selectors match on: the addresses, upper-layer protocol and ports of an IPv4/IPv6 packet, read
//! without allocating and without trusting any length in the packet (the datapath reads it for every packet).

use super::bytes::{array, u16_at, u8_at};
use crate::ike::Flow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv6 extension headers walked before giving up: RFC 8200 §4.1 lists at most 8 kinds in a packet, and a
/// longer chain is an attack on parsers, not traffic.
const MAX_EXT_HEADERS: usize = 8;

/// The addresses, protocol and ports of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketFlow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol: the IPv4 protocol, or the IPv6 next header after the extension headers.
    pub protocol: u8,
    /// Source port (TCP, UDP, SCTP, UDP-Lite); 0 for other protocols and for fragments after the first.
    pub src_port: u16,
    /// Destination port, likewise.
    pub dst_port: u16,
}

/// Whether the protocol's header starts with 16-bit source and destination ports.
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 132 | 136)
}

impl PacketFlow {
    /// Reads a whole IPv4 or IPv6 packet (as the TUN or the ESP layer hands it over). `None` when it is not
    /// one, or too short for its headers (a port protocol without its ports counts as too short).
    #[inline]
    pub fn parse(packet: &[u8]) -> Option<PacketFlow> {
        let (src, dst, protocol, at, first_fragment) = match u8_at(packet, 0)? >> 4 {
            4 => {
                let header_len = usize::from(u8_at(packet, 0)? & 0x0f) * 4;
                if header_len < 20 {
                    return None;
                }
                let fragment_offset = u16_at(packet, 6)? & 0x1fff;
                let src = IpAddr::V4(Ipv4Addr::from(array::<4>(packet, 12)?));
                let dst = IpAddr::V4(Ipv4Addr::from(array::<4>(packet, 16)?));
                (src, dst, u8_at(packet, 9)?, header_len, fragment_offset == 0)
            }
            6 => {
                let src = IpAddr::V6(Ipv6Addr::from(array::<16>(packet, 8)?));
                let dst = IpAddr::V6(Ipv6Addr::from(array::<16>(packet, 24)?));
                let (protocol, at, first) = ipv6_upper_layer(packet)?;
                (src, dst, protocol, at, first)
            }
            _ => return None,
        };
        let (src_port, dst_port) = if has_ports(protocol) && first_fragment {
            (u16_at(packet, at)?, u16_at(packet, at.checked_add(2)?)?)
        } else {
            (0, 0)
        };
        Some(PacketFlow { src, dst, protocol, src_port, dst_port })
    }

    /// The flow of a packet this host sends (its source is ours).
    #[inline]
    pub fn outbound(&self) -> Flow {
        Flow {
            local: self.src,
            remote: self.dst,
            protocol: self.protocol,
            local_port: self.src_port,
            remote_port: self.dst_port,
        }
    }

    /// The flow of a packet this host receives (its destination is ours).
    #[inline]
    pub fn inbound(&self) -> Flow {
        Flow {
            local: self.dst,
            remote: self.src,
            protocol: self.protocol,
            local_port: self.dst_port,
            remote_port: self.src_port,
        }
    }
}

/// The upper-layer protocol of an IPv6 packet, where its header starts, and whether the packet is not a
/// fragment after the first one: the extension headers (hop-by-hop, routing, fragment, destination options, AH)
/// are skipped, at most [`MAX_EXT_HEADERS`] of them.
#[inline]
fn ipv6_upper_layer(packet: &[u8]) -> Option<(u8, usize, bool)> {
    let mut next = u8_at(packet, 6)?;
    let mut at = 40usize;
    let mut first_fragment = true;
    for _ in 0..MAX_EXT_HEADERS {
        let len = match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units, not counting the first.
            0 | 43 | 60 => (usize::from(u8_at(packet, at.checked_add(1)?)?) + 1) * 8,
            // Fragment: fixed 8 bytes; a non-zero offset means the upper-layer header is elsewhere.
            44 => {
                first_fragment &= u16_at(packet, at.checked_add(2)?)? & 0xfff8 == 0;
                8
            }
            // AH: length in 4-octet units, minus 2 (RFC 4302 §2.2).
            51 => (usize::from(u8_at(packet, at.checked_add(1)?)?) + 2) * 4,
            upper => return Some((upper, at, first_fragment)),
        };
        next = u8_at(packet, at)?;
        at = at.checked_add(len)?;
    }
    None
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v4(protocol: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, (frag >> 8) as u8, frag as u8, 64, protocol, 0, 0];
        p.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn v6(next: u8, ext: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[6] = next;
        p[8] = 0x20;
        p[9] = 0x01;
        p[24] = 0x20;
        p[25] = 0x01;
        p[39] = 2;
        p.extend_from_slice(ext);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv4_ports_and_fragments() {
        let tcp = [0x9c, 0x40, 0x23, 0x8c, 0, 0, 0, 0];
        let f = PacketFlow::parse(&v4(6, 0, &tcp)).unwrap();
        assert_eq!((f.protocol, f.src_port, f.dst_port), (6, 40000, 9100));
        assert_eq!(f.outbound().local_port, 40000);
        assert_eq!(f.inbound().local_port, 9100);
        let later = PacketFlow::parse(&v4(6, 0x0010, &tcp)).unwrap();
        assert_eq!((later.src_port, later.dst_port), (0, 0), "a later fragment has no ports");
        let icmp = PacketFlow::parse(&v4(1, 0, &[8, 0, 0, 0])).unwrap();
        assert_eq!((icmp.protocol, icmp.src_port), (1, 0));
        assert!(PacketFlow::parse(&v4(17, 0, &[1, 2])).is_none(), "UDP without its ports");
        for n in 0..20 {
            assert!(PacketFlow::parse(&v4(6, 0, &tcp)[..n]).is_none());
        }
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let udp = [0x00, 0x35, 0x13, 0x88, 0, 8, 0, 0];
        let ext = [[60u8, 0, 0, 0, 0, 0, 0, 0], [44, 0, 0, 0, 0, 0, 0, 1], [17, 0, 0, 0, 0, 0, 0, 0]].concat();
        let f = PacketFlow::parse(&v6(0, &ext, &udp)).unwrap();
        assert_eq!((f.protocol, f.src_port, f.dst_port), (17, 53, 5000));
        // AH: length 4 means (4 + 2) * 4 = 24 bytes.
        let mut ah = vec![6u8, 4];
        ah.resize(24, 0);
        let f = PacketFlow::parse(&v6(51, &ah, &[0x23, 0x8c, 0x9c, 0x40])).unwrap();
        assert_eq!((f.protocol, f.src_port, f.dst_port), (6, 9100, 40000));
        // A later fragment.
        let f = PacketFlow::parse(&v6(44, &[6, 0, 0, 8, 0, 0, 0, 1], &[1, 2, 3, 4])).unwrap();
        assert_eq!((f.protocol, f.src_port), (6, 0));
        // A chain longer than the bound, and a truncated one.
        let long: Vec<u8> = (0..9).flat_map(|_| [60u8, 0, 0, 0, 0, 0, 0, 0]).collect();
        assert!(PacketFlow::parse(&v6(60, &long, &udp)).is_none());
        assert!(PacketFlow::parse(&v6(60, &[17, 5], &[])).is_none());
        // ICMPv6 has no ports.
        let f = PacketFlow::parse(&v6(58, &[], &[135, 0, 0, 0])).unwrap();
        assert_eq!((f.protocol, f.dst_port), (58, 0));
    }
}
