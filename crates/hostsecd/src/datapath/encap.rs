//! ESP in UDP (RFC 3948) for the SAs that NAT traversal floated to port 4500: the packet rewrites around the ESP
//! engine (a UDP header put in after sealing, an IP header rebuilt after opening) and the transport-mode checksum
//! fix of RFC 3948 §3.1.2. Pure functions over buffers, so that they can be tested without sockets.

use std::net::{IpAddr, SocketAddr};

/// Length of a UDP header.
pub const UDP_HDR: usize = 8;
const PROTO_UDP: u8 = 17;
const PROTO_TCP: u8 = 6;
const PROTO_ESP: u8 = 50;
/// Hop limit of the IP headers rebuilt around decrypted packets (they never leave the host).
const REBUILT_TTL: u8 = 64;

/// How an outbound SA's ESP packets leave: in UDP from our port to the peer's (current) address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOut {
    /// Our port (4500).
    pub local_port: u16,
    /// Where the peer's NAT mapping is.
    pub remote: SocketAddr,
}

/// What the inbound side knows of a UDP-encapsulated SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpIn {
    /// Where the peer's packets are expected from (its NAT mapping); another source is a mapping change.
    pub remote: SocketAddr,
    /// The source address the peer's TCP/UDP checksums cover, when it is not the SA's peer address.
    pub peer_original: Option<IpAddr>,
    /// The destination address the peer's checksums cover, when it is not our address.
    pub local_as_seen_by_peer: Option<IpAddr>,
}

/// One's-complement sum of `data` as 16-bit big-endian words (an odd last byte padded with zero).
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// One's-complement sum of an address's words, each complemented when `negate` (RFC 1624's ~m).
fn sum_addr(a: IpAddr, negate: bool, mut acc: u32) -> u32 {
    let (b, n) = match a {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    };
    for c in b[..n].chunks_exact(2) {
        let w = u16::from_be_bytes([c[0], c[1]]);
        acc = acc.wrapping_add(u32::from(if negate { !w } else { w }));
    }
    acc
}

/// The IPv4 header checksum of `header` (whose checksum field is zero).
fn ipv4_header_checksum(header: &[u8]) -> u16 {
    !fold(sum16(header, 0))
}

/// Turns a sealed transport-mode packet (IP header, then ESP) in `buf[..len]` into ESP-in-UDP: a UDP header from
/// `out.local_port` to `out.remote` goes in after the IP header (which is taken to `out.remote`'s address). IPv4
/// gets a zero UDP checksum (RFC 3948 §2.1); IPv6, where zero is not allowed, a computed one. Returns the new
/// length, or `None` when the packet is not IP-then-ESP or `buf` has no room for 8 more bytes.
pub fn encapsulate(buf: &mut [u8], len: usize, out: &UdpOut) -> Option<usize> {
    let packet = buf.get(..len)?;
    let (hl, v4) = match packet.first()? >> 4 {
        4 => (usize::from(packet.first()? & 0x0f) * 4, true),
        // IPv6 extension headers before ESP would need the UDP header after them: not produced for these SAs.
        6 if *packet.get(6)? == PROTO_ESP => (40, false),
        _ => return None,
    };
    if v4 && (hl < 20 || *packet.get(9)? != PROTO_ESP) || len < hl || v4 != out.remote.is_ipv4() {
        return None;
    }
    let total = len.checked_add(UDP_HDR)?;
    if total > buf.len() {
        return None;
    }
    let udp_len = u16::try_from(total - hl).ok()?;
    buf.copy_within(hl..len, hl + UDP_HDR);
    let udp = buf.get_mut(hl..hl + UDP_HDR)?;
    udp[0..2].copy_from_slice(&out.local_port.to_be_bytes());
    udp[2..4].copy_from_slice(&out.remote.port().to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    match out.remote.ip() {
        IpAddr::V4(dst) => {
            let t = u16::try_from(total).ok()?;
            let h = buf.get_mut(..hl)?;
            h[2..4].copy_from_slice(&t.to_be_bytes());
            h[9] = PROTO_UDP;
            h[16..20].copy_from_slice(&dst.octets());
            h[10..12].copy_from_slice(&[0, 0]);
            let c = ipv4_header_checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        IpAddr::V6(dst) => {
            let h = buf.get_mut(..hl)?;
            h[4..6].copy_from_slice(&udp_len.to_be_bytes());
            h[6] = PROTO_UDP;
            h[24..40].copy_from_slice(&dst.octets());
            let mut acc = sum16(&buf[8..40], 0);
            acc = acc.wrapping_add(u32::from(udp_len)).wrapping_add(u32::from(PROTO_UDP));
            acc = sum16(&buf[hl..total], acc);
            let c = match !fold(acc) {
                0 => 0xffff,
                c => c,
            };
            buf[hl + 6..hl + 8].copy_from_slice(&c.to_be_bytes());
        }
    }
    Some(total)
}

/// Writes the IP header of a decrypted transport-mode payload of `payload_len` bytes at `buf[..header_len(src)]`
/// (the payload follows it): from `src` to `dst`, protocol `next_header`. Returns the packet's length, or `None`
/// if the families differ, the length does not fit the header or the buffer.
pub fn rebuild_header(buf: &mut [u8], src: IpAddr, dst: IpAddr, next_header: u8, payload_len: usize) -> Option<usize> {
    let hl = header_len(src);
    let total = hl.checked_add(payload_len)?;
    if total > buf.len() {
        return None;
    }
    let h = buf.get_mut(..hl)?;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let t = u16::try_from(total).ok()?;
            h.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, REBUILT_TTL, next_header, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            h[2..4].copy_from_slice(&t.to_be_bytes());
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = ipv4_header_checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let p = u16::try_from(payload_len).ok()?;
            h.fill(0);
            h[0] = 0x60;
            h[4..6].copy_from_slice(&p.to_be_bytes());
            h[6] = next_header;
            h[7] = REBUILT_TTL;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
        }
        _ => return None,
    }
    Some(total)
}

/// Length of the IP header [`rebuild_header`] writes for this family.
pub fn header_len(a: IpAddr) -> usize {
    if a.is_ipv4() {
        20
    } else {
        40
    }
}

/// RFC 3948 §3.1.2: the TCP or UDP checksum of a decrypted transport-mode `payload` (protocol `next_header`)
/// was computed by the peer over a pseudo-header with `old_src`/`old_dst`; the packet now carries `new_src`/
/// `new_dst`. The checksum is adjusted incrementally (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')), which keeps
/// whatever the peer's checksum was worth: the packet's integrity is already proven by the ESP ICV. A UDP
/// checksum of zero (none, IPv4) stays zero. Other protocols and truncated headers are left alone.
pub fn fix_checksum(
    payload: &mut [u8],
    next_header: u8,
    (old_src, new_src): (IpAddr, IpAddr),
    (old_dst, new_dst): (IpAddr, IpAddr),
) {
    let at = match next_header {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return,
    };
    let Some(field) = payload.get_mut(at..at + 2) else { return };
    let hc = u16::from_be_bytes([field[0], field[1]]);
    if next_header == PROTO_UDP && hc == 0 {
        return;
    }
    let mut acc = u32::from(!hc);
    for (old, new) in [(old_src, new_src), (old_dst, new_dst)] {
        if old == new {
            continue;
        }
        acc = sum_addr(old, true, acc);
        acc = sum_addr(new, false, acc);
    }
    let mut c = !fold(acc);
    // A UDP checksum that comes out zero is sent as all ones (RFC 768); TCP's 0 and 0xffff are equal.
    if next_header == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    field.copy_from_slice(&c.to_be_bytes());
}

/// RFC 3948 §3.1.2, step 4: the TCP or UDP checksum of a decrypted transport-mode `payload` computed anew over
/// `src`/`dst`, for a peer whose NAT-OA did not tell which addresses its checksum covers (libreswan 4.10 answers a
/// Quick Mode from behind a NAT without one: its checksums cover our public address, which we do not know). The
/// ESP ICV has already proven the payload. A UDP checksum of zero (none, IPv4) stays zero.
pub fn recompute_checksum(payload: &mut [u8], next_header: u8, src: IpAddr, dst: IpAddr) {
    let at = match next_header {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return,
    };
    let Some(field) = payload.get(at..at + 2) else { return };
    if next_header == PROTO_UDP && field == [0, 0] && src.is_ipv4() {
        return;
    }
    let Ok(len) = u32::try_from(payload.len()) else { return };
    if let Some(f) = payload.get_mut(at..at + 2) {
        f.copy_from_slice(&[0, 0]);
    }
    let mut c = pseudo_checksum(src, dst, next_header, len, payload);
    if next_header == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    if let Some(f) = payload.get_mut(at..at + 2) {
        f.copy_from_slice(&c.to_be_bytes());
    }
}

/// The Internet checksum of `seg` (`len` bytes of protocol `proto`) with its pseudo-header.
fn pseudo_checksum(src: IpAddr, dst: IpAddr, proto: u8, len: u32, seg: &[u8]) -> u16 {
    let mut acc = sum_addr(src, false, 0);
    acc = sum_addr(dst, false, acc);
    acc = acc.wrapping_add(u32::from(proto)).wrapping_add(len & 0xffff).wrapping_add(len >> 16);
    !fold(sum16(seg, acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, seg: &[u8]) -> u16 {
        pseudo_checksum(src, dst, proto, seg.len() as u32, seg)
    }

    fn segment(proto: u8, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let mut seg: Vec<u8> = (0u8..57).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
        let at = if proto == PROTO_TCP { 16 } else { 6 };
        if proto == PROTO_UDP {
            let l = seg.len() as u16;
            seg[4..6].copy_from_slice(&l.to_be_bytes());
        }
        seg[at..at + 2].copy_from_slice(&[0, 0]);
        let c = pseudo(src, dst, proto, &seg);
        seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        seg
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Without the peer's NAT-OA the checksum is computed anew over the addresses the packet now carries, whatever
    /// the peer's covered (our public address behind a NAT, its private one).
    #[test]
    fn recomputed_checksum_is_the_one_for_the_packets_addresses() {
        let (peer, public, local) = (ip("198.51.100.2"), ip("198.51.100.254"), ip("192.0.2.10"));
        for proto in [PROTO_TCP, PROTO_UDP] {
            let mut seg = segment(proto, peer, public);
            recompute_checksum(&mut seg, proto, peer, local);
            assert_eq!(seg, segment(proto, peer, local), "protocol {proto}");
        }
        let (a6, b6) = (ip("2001:db8::10"), ip("2001:db8:2::2"));
        let mut seg = segment(PROTO_UDP, a6, ip("2001:db8:1::1"));
        recompute_checksum(&mut seg, PROTO_UDP, a6, b6);
        assert_eq!(seg, segment(PROTO_UDP, a6, b6));
        let mut none = segment(PROTO_UDP, peer, public);
        none[6..8].copy_from_slice(&[0, 0]);
        let before = none.clone();
        recompute_checksum(&mut none, PROTO_UDP, peer, local);
        assert_eq!(none, before, "an IPv4 UDP checksum of zero means none");
        let mut icmp = vec![8u8, 0, 1, 2, 3, 4];
        recompute_checksum(&mut icmp, 1, peer, local);
        assert_eq!(icmp, vec![8u8, 0, 1, 2, 3, 4], "not TCP or UDP: untouched");
    }

    #[test]
    fn incremental_fix_equals_a_recomputed_checksum() {
        let (orig, nat, local, public) = (ip("192.0.2.10"), ip("198.51.100.1"), ip("198.51.100.2"), ip("203.0.113.7"));
        for proto in [PROTO_TCP, PROTO_UDP] {
            // The peer behind NAT computed over its private address; we see the NAT's.
            let mut seg = segment(proto, orig, local);
            fix_checksum(&mut seg, proto, (orig, nat), (local, local));
            assert_eq!(seg, segment(proto, nat, local), "protocol {proto}, source changed");
            // This host behind NAT: the peer computed over our public address.
            let mut seg = segment(proto, nat, public);
            fix_checksum(&mut seg, proto, (nat, nat), (public, local));
            assert_eq!(seg, segment(proto, nat, local), "protocol {proto}, destination changed");
            let mut seg = segment(proto, orig, public);
            fix_checksum(&mut seg, proto, (orig, nat), (public, local));
            assert_eq!(seg, segment(proto, nat, local), "protocol {proto}, both changed");
        }
        let (o6, n6, l6) = (ip("2001:db8::10"), ip("2001:db8:1::1"), ip("2001:db8:2::2"));
        let mut seg = segment(PROTO_TCP, o6, l6);
        fix_checksum(&mut seg, PROTO_TCP, (o6, n6), (l6, l6));
        assert_eq!(seg, segment(PROTO_TCP, n6, l6));
    }

    #[test]
    fn checksum_fix_leaves_what_it_must_not_touch() {
        let (a, b, c) = (ip("192.0.2.10"), ip("198.51.100.1"), ip("198.51.100.2"));
        let mut udp = segment(PROTO_UDP, a, c);
        udp[6..8].copy_from_slice(&[0, 0]);
        let before = udp.clone();
        fix_checksum(&mut udp, PROTO_UDP, (a, b), (c, c));
        assert_eq!(udp, before, "a zero UDP checksum means none");
        let mut icmp = before.clone();
        fix_checksum(&mut icmp, 1, (a, b), (c, c));
        assert_eq!(icmp, before);
        let mut short = vec![0u8; 10];
        fix_checksum(&mut short, PROTO_TCP, (a, b), (c, c));
        assert_eq!(short, vec![0u8; 10]);
    }

    fn sealed_v4() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, PROTO_ESP, 0, 0, 192, 0, 2, 10, 198, 51, 100, 2];
        p.extend([0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1]);
        p.extend((0u8..40).collect::<Vec<_>>());
        let t = p.len() as u16;
        p[2..4].copy_from_slice(&t.to_be_bytes());
        let c = ipv4_header_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn encapsulates_ipv4_with_a_zero_udp_checksum() {
        let p = sealed_v4();
        let mut buf = p.clone();
        buf.resize(p.len() + UDP_HDR, 0);
        let out = UdpOut { local_port: 4500, remote: "198.51.100.1:40002".parse().unwrap() };
        let n = encapsulate(&mut buf, p.len(), &out).unwrap();
        assert_eq!(n, p.len() + 8);
        assert_eq!(buf[9], PROTO_UDP);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]) as usize, n);
        assert_eq!(&buf[16..20], &[198, 51, 100, 1], "to the NAT mapping");
        assert_eq!(fold(sum16(&buf[..20], 0)), 0xffff, "header checksum valid");
        assert_eq!(&buf[20..28], &[0x11, 0x94, 0x9c, 0x42, 0, (n - 20) as u8, 0, 0]);
        assert_eq!(&buf[28..n], &p[20..]);
        // No room, not ESP, a family mismatch.
        let mut small = p.clone();
        assert_eq!(encapsulate(&mut small, p.len(), &out), None);
        let mut not_esp = buf.clone();
        not_esp[..p.len()].copy_from_slice(&p);
        not_esp[9] = PROTO_TCP;
        assert_eq!(encapsulate(&mut not_esp, p.len(), &out), None);
        let out6 = UdpOut { local_port: 4500, remote: "[2001:db8::1]:4500".parse().unwrap() };
        let mut b = p.clone();
        b.resize(p.len() + 8, 0);
        assert_eq!(encapsulate(&mut b, p.len(), &out6), None);
        assert_eq!(encapsulate(&mut [], 0, &out), None);
    }

    #[test]
    fn encapsulates_ipv6_with_a_valid_udp_checksum() {
        let (s, d) = (ip("2001:db8::10"), ip("2001:db8::20"));
        let mut p = vec![0x60, 0, 0, 0, 0, 48, PROTO_ESP, 64];
        for a in [s, d] {
            if let IpAddr::V6(a) = a {
                p.extend(a.octets());
            }
        }
        p.extend([0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1]);
        p.extend((0u8..40).collect::<Vec<_>>());
        let mut buf = p.clone();
        buf.resize(p.len() + 8, 0);
        let out = UdpOut { local_port: 4500, remote: "[2001:db8::20]:4500".parse().unwrap() };
        let n = encapsulate(&mut buf, p.len(), &out).unwrap();
        assert_eq!(buf[6], PROTO_UDP);
        assert_eq!(u16::from_be_bytes([buf[4], buf[5]]), 56);
        assert_eq!(pseudo(s, d, PROTO_UDP, &buf[40..n]), 0, "checksum verifies");
    }

    #[test]
    fn rebuilds_headers() {
        let mut buf = vec![0u8; 100];
        let n = rebuild_header(&mut buf, ip("198.51.100.1"), ip("198.51.100.2"), PROTO_TCP, 30).unwrap();
        assert_eq!(n, 50);
        assert_eq!(&buf[..4], &[0x45, 0, 0, 50]);
        assert_eq!(buf[9], PROTO_TCP);
        assert_eq!(fold(sum16(&buf[..20], 0)), 0xffff);
        let n = rebuild_header(&mut buf, ip("2001:db8::1"), ip("2001:db8::2"), PROTO_UDP, 20).unwrap();
        assert_eq!((n, buf[0], buf[6], u16::from_be_bytes([buf[4], buf[5]])), (60, 0x60, PROTO_UDP, 20));
        assert_eq!(rebuild_header(&mut buf, ip("198.51.100.1"), ip("2001:db8::2"), PROTO_TCP, 20), None);
        assert_eq!(rebuild_header(&mut buf, ip("198.51.100.1"), ip("198.51.100.2"), PROTO_TCP, 81), None);
    }
}
