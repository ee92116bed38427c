//! Seal → open round trips for every transform, IPv4 (with and without options) and IPv6 (with and without
//! extension headers), random payload sizes: the inner packet comes back byte for byte, and the outer packet has
//! the structure RFC 4303 §2 and §3.1.1 prescribe (checked here field by field, independently of the engine).

mod esp_util;

use esp_util::*;
use hostsec_proto::crypto::EspTransform;
use hostsec_proto::esp::{
    DropReason, InboundTable, OutboundTable, ReplayWindow, MAX_OVERHEAD, PROTO_ESP, PROTO_IPV4, PROTO_NONE,
};
use proptest::prelude::*;
use std::time::Instant;

const A4: &str = "192.0.2.1";
const B4: &str = "198.51.100.7";
const A6: &str = "2001:db8::1";
const B6: &str = "2001:db8:5::20";

/// Expected ESP sizes: IV, ICV and the block the plaintext is padded to.
fn sizes(t: EspTransform) -> (usize, usize, usize) {
    if t.cipher.is_aead() {
        (8, 16, 4)
    } else {
        (16, t.integrity.icv_len(), 16)
    }
}

/// Checks the ESP part of an outer packet: SPI, sequence number, GCM IV = sequence number, and the length
/// that payload + minimal padding + trailer + ICV must give.
fn check_esp(t: EspTransform, esp: &[u8], seq: u64, payload_len: usize) {
    let (iv, icv, block) = sizes(t);
    assert_eq!(&esp[..4], &0x1234_5678u32.to_be_bytes(), "SPI");
    assert_eq!(&esp[4..8], &(seq as u32).to_be_bytes(), "sequence number");
    let padded = (payload_len + 2).div_ceil(block) * block;
    assert_eq!(esp.len(), 8 + iv + padded + icv, "ESP length for a {payload_len}-byte payload");
    if t.cipher.is_aead() {
        assert_eq!(&esp[8..16], &seq.to_be_bytes(), "GCM IV is the 64-bit sequence number");
    }
}

fn roundtrip_v4(t: EspTransform, options: &[u8], body: &[u8], proto: u8) {
    let (mut out_sa, mut in_sa) = pair(t, A4, B4);
    let inner = ipv4(A4, B4, proto, options, body);
    let mut buf = vec![0u8; inner.len() + MAX_OVERHEAD];
    let sealed = out_sa.seal(Instant::now(), &inner, &mut buf).unwrap();
    assert_eq!(sealed.seq, 1);
    assert!(!sealed.rekey_soon);
    let outer = sealed.packet.to_vec();
    let hl = 20 + options.len();
    // Same header except protocol, total length and checksum; options in place.
    assert_eq!(outer[0], inner[0], "version and IHL kept (options stay in the header)");
    assert_eq!(&outer[4..9], &inner[4..9]);
    assert_eq!(outer[9], PROTO_ESP);
    assert_eq!(&outer[12..hl], &inner[12..hl], "addresses and options");
    assert_eq!(usize::from(u16::from_be_bytes([outer[2], outer[3]])), outer.len());
    assert_eq!(checksum(&outer[..hl]), 0, "outer header checksum");
    check_esp(t, &outer[hl..], 1, body.len());
    assert!(outer.len() <= inner.len() + MAX_OVERHEAD);

    let mut back = vec![0u8; outer.len()];
    let opened = in_sa.open(Instant::now(), &outer, &mut back).unwrap();
    assert_eq!(opened.packet, &inner[..], "inner packet byte-identical");
    assert_eq!((opened.next_header, opened.seq), (proto, 1));
    assert_eq!(in_sa.counters().packets(), 1);
    assert_eq!(in_sa.counters().bytes(), body.len() as u64);
    assert_eq!(out_sa.counters().bytes(), body.len() as u64);
}

/// IPv6 with extension headers; `clear` of them must stay in front of ESP.
fn roundtrip_v6(t: EspTransform, exts: &[(u8, Vec<u8>)], clear: usize, body: &[u8], proto: u8) {
    let (mut out_sa, mut in_sa) = pair(t, A6, B6);
    let inner = ipv6(A6, B6, exts, proto, body);
    let mut buf = vec![0u8; inner.len() + MAX_OVERHEAD];
    let sealed = out_sa.seal(Instant::now(), &inner, &mut buf).unwrap();
    let outer = sealed.packet.to_vec();
    let clear_len = 40 + exts[..clear].iter().map(|(_, b)| b.len()).sum::<usize>();
    let encrypted_len = inner.len() - clear_len;
    // The clear part: same bytes except the next header that now points to ESP.
    let nh_at = if clear == 0 { 6 } else { clear_len - exts[clear - 1].1.len() };
    let mut expected_clear = inner[..clear_len].to_vec();
    expected_clear[nh_at] = PROTO_ESP;
    expected_clear[4..6].copy_from_slice(&((outer.len() - 40) as u16).to_be_bytes());
    assert_eq!(&outer[..clear_len], &expected_clear[..], "clear headers, re-linked to ESP");
    check_esp(t, &outer[clear_len..], 1, encrypted_len);

    let mut back = vec![0u8; outer.len()];
    let opened = in_sa.open(Instant::now(), &outer, &mut back).unwrap();
    assert_eq!(opened.packet, &inner[..], "inner packet byte-identical");
    // The ESP next header is what followed the clear part.
    let expected_nh = if clear == exts.len() { proto } else { exts[clear].0 };
    assert_eq!(opened.next_header, expected_nh);
}

#[test]
fn every_transform_ipv4_and_ipv6() {
    for t in transforms() {
        for len in [0, 1, 2, 3, 13, 14, 15, 16, 17, 100, 1380, 1480] {
            roundtrip_v4(t, &[], &payload(len, 1), 6);
            roundtrip_v6(t, &[], 0, &payload(len, 2), 17);
        }
        roundtrip_v4(t, &[0x94, 0x04, 0, 0], &payload(40, 3), 17); // Router Alert
        roundtrip_v4(t, &[1; 40], &payload(500, 4), 1); // 40 bytes of NOPs: the longest header
    }
}

#[test]
fn ipv6_extension_header_placement() {
    let (hbh, dst, rt, frag) = (ext(0, 6), ext(60, 14), ext(43, 6), ext(44, 0));
    // (headers, how many stay in front of ESP: RFC 4303 §3.1.1)
    type Headers = Vec<(u8, Vec<u8>)>;
    let cases: Vec<(Headers, usize)> = vec![
        (vec![hbh.clone()], 1),
        (vec![dst.clone()], 0),
        (vec![hbh.clone(), dst.clone()], 1),
        (vec![hbh.clone(), dst.clone(), rt.clone()], 3),
        (vec![hbh.clone(), dst.clone(), rt.clone(), dst.clone()], 3),
        (vec![rt.clone(), frag.clone(), dst.clone()], 2),
        (vec![frag.clone()], 1),
        (vec![dst.clone(), frag.clone(), dst.clone()], 2),
    ];
    for t in transforms() {
        for (exts, clear) in &cases {
            for len in [0, 7, 64, 1200] {
                roundtrip_v6(t, exts, *clear, &payload(len, 9), 6);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_ipv4(t in 0usize..9, options in 0usize..=10, len in 0usize..1500, seed: u8, proto: u8) {
        prop_assume!(proto != 4 && proto != 41 && proto != 59);
        let opts: Vec<u8> = (0..options * 4).map(|i| if i % 4 == 3 { 0 } else { 1 }).collect();
        roundtrip_v4(transforms()[t], &opts, &payload(len, seed), proto);
    }

    #[test]
    fn random_ipv6(t in 0usize..9, shape in 0usize..5, len in 0usize..1500, seed: u8, proto: u8) {
        prop_assume!(proto != 4 && proto != 41 && proto != 59 && ![0, 43, 44, 60].contains(&proto));
        let (exts, clear) = match shape {
            0 => (vec![], 0),
            1 => (vec![ext(0, 6)], 1),
            2 => (vec![ext(60, 6)], 0),
            3 => (vec![ext(0, 14), ext(60, 6), ext(43, 22), ext(60, 6)], 3),
            _ => (vec![ext(44, 0)], 1),
        };
        roundtrip_v6(transforms()[t], &exts, clear, &payload(len, seed), proto);
    }
}

#[test]
fn many_packets_in_order_and_reordered_within_the_window() {
    for t in transforms() {
        let (mut o, mut i) = pair(t, A4, B4);
        let now = Instant::now();
        let mut sealed = Vec::new();
        for n in 0..300u64 {
            let inner = ipv4(A4, B4, 17, &[], &payload(n as usize % 200, n as u8));
            let mut buf = vec![0u8; 2000];
            let s = o.seal(now, &inner, &mut buf).unwrap();
            assert_eq!(s.seq, n + 1);
            sealed.push((inner, s.packet.to_vec()));
        }
        // Deliver odd ones first, then even ones backwards: all within 2048 of the top.
        let order: Vec<usize> = (0..300).filter(|n| n % 2 == 1).chain((0..300).filter(|n| n % 2 == 0).rev()).collect();
        for k in order {
            let (inner, outer) = &sealed[k];
            let mut back = vec![0u8; outer.len()];
            let opened = i.open(now, outer, &mut back).unwrap();
            assert_eq!(opened.packet, &inner[..]);
            assert_eq!(opened.seq, k as u64 + 1);
        }
        assert_eq!(i.counters().packets(), 300);
        assert_eq!(i.window().top(), 300);
    }
}

#[test]
fn esn_sequence_numbers_cross_the_32_bit_boundary() {
    for t in transforms() {
        let (mut o, mut i) = pair_with(t, A4, B4, |c| c.esn = true);
        o.fast_forward_sequence(u64::from(u32::MAX) - 3);
        let now = Instant::now();
        for k in 0..8u64 {
            let inner = ipv4(A4, B4, 6, &[], &payload(33, k as u8));
            let mut buf = vec![0u8; 200];
            let s = o.seal(now, &inner, &mut buf).unwrap();
            let expected = u64::from(u32::MAX) - 2 + k;
            assert_eq!(s.seq, expected);
            assert_eq!(&s.packet[24..28], &(expected as u32).to_be_bytes(), "only the low half on the wire");
            let outer = s.packet.to_vec();
            let mut back = vec![0u8; outer.len()];
            let opened = i.open(now, &outer, &mut back).unwrap();
            assert_eq!(opened.seq, expected, "the receiver infers the high half (RFC 4303 A2.2)");
            assert_eq!(opened.packet, &inner[..]);
        }
        assert_eq!(i.window().top(), (1 << 32) + 4);
    }
}

#[test]
fn seal_esp_and_open_esp_carry_any_next_header() {
    for t in transforms() {
        let (mut o, mut i) = pair(t, A4, B4);
        for (nh, len) in [(PROTO_IPV4, 60), (PROTO_NONE, 0), (17, 1), (253, 333)] {
            let body = payload(len, nh);
            let mut buf = vec![0u8; len + MAX_OVERHEAD];
            let sealed = o.seal_esp(Instant::now(), nh, &body, &mut buf).unwrap();
            let esp = sealed.esp.to_vec();
            check_esp(t, &esp, sealed.seq, len);
            let mut back = vec![0u8; esp.len()];
            let p = i.open_esp(Instant::now(), &esp, &mut back).unwrap();
            assert_eq!((p.payload, p.next_header, p.seq), (&body[..], nh, sealed.seq));
        }
    }
}

#[test]
fn tables_route_by_spi_destination_and_peer() {
    let t = transforms()[0];
    let mut inbound = InboundTable::new();
    let mut outbound = OutboundTable::new();
    let mut senders = Vec::new();
    // Three peers of the host B4; the SPIs of two of them collide on purpose (different local addresses).
    for (k, peer) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"].iter().enumerate() {
        let local = if k == 2 { "198.51.100.8" } else { B4 };
        let spi = if k == 2 { 0x100 } else { 0x100 + k as u32 };
        let mut c_in = config(t, spi, local, peer, k as u8);
        let c_out_peer = config(t, spi, peer, local, k as u8);
        c_in.counters = std::sync::Arc::new(Default::default());
        inbound.insert(hostsec_proto::esp::InboundSa::new(&c_in).unwrap());
        let mut rng = <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(k as u64);
        senders.push((peer.to_string(), local, hostsec_proto::esp::OutboundSa::new(&c_out_peer, &mut rng).unwrap()));
        let c_out = config(t, 0x900 + k as u32, local, peer, 50 + k as u8);
        outbound.insert(hostsec_proto::esp::OutboundSa::new(&c_out, &mut rng).unwrap());
    }
    assert_eq!((inbound.len(), outbound.len()), (3, 3));
    let now = Instant::now();
    for (peer, local, sender) in &mut senders {
        let inner = ipv4(peer, local, 6, &[], &payload(50, 1));
        let mut buf = vec![0u8; 200];
        let outer = sender.seal(now, &inner, &mut buf).unwrap().packet.to_vec();
        let mut back = vec![0u8; outer.len()];
        assert_eq!(inbound.open(now, &outer, &mut back).unwrap().packet, &inner[..]);
        // Outbound: the table picks the SA of the destination.
        let reply = ipv4(local, peer, 6, &[], &payload(20, 2));
        let mut buf = vec![0u8; 200];
        let s = outbound.seal(now, &reply, &mut buf).unwrap();
        assert_eq!(s.packet[20..24], (0x900 + senders_index(peer)).to_be_bytes());
    }
    // Unknown SPI and no SA: counted in the tables' own counters.
    let (mut stranger, _) = pair(t, "203.0.113.9", B4);
    let inner = ipv4("203.0.113.9", B4, 6, &[], &payload(10, 1));
    let mut buf = vec![0u8; 200];
    let outer = stranger.seal(now, &inner, &mut buf).unwrap().packet.to_vec();
    let mut back = vec![0u8; outer.len()];
    assert_eq!(inbound.open(now, &outer, &mut back).unwrap_err(), DropReason::UnknownSpi);
    assert_eq!(inbound.counters().drops(DropReason::UnknownSpi), 1);
    let mut buf = vec![0u8; 200];
    let to_nowhere = ipv4(B4, "203.0.113.99", 6, &[], &payload(10, 1));
    assert_eq!(outbound.seal(now, &to_nowhere, &mut buf).unwrap_err(), DropReason::NoSa);
    assert_eq!(outbound.counters().drops(DropReason::NoSa), 1);
    assert_eq!(outbound.seal(now, &[0x45, 0], &mut buf).unwrap_err(), DropReason::Malformed);
    assert_eq!(outbound.counters().drops(DropReason::Malformed), 1);
    // Removal.
    assert!(inbound.remove(0x100, B4.parse().unwrap()).is_some());
    assert!(inbound.get(0x100, "198.51.100.8".parse().unwrap()).is_some(), "same SPI, other address, kept");
    assert!(outbound.remove(0x900).is_some(), "the SA to 203.0.113.1");
    assert!(outbound.remove(0x900).is_none());
    assert_eq!((inbound.len(), outbound.len()), (2, 2));
}

fn senders_index(peer: &str) -> u32 {
    ["203.0.113.1", "203.0.113.2", "203.0.113.3"].iter().position(|p| *p == peer).unwrap() as u32
}

// The window covers at least 1024 packets (checked at compile time).
const _: () = assert!(ReplayWindow::SIZE >= 1024);

/// A TCP segment's first bytes: source and destination port, then filler.
fn tcp(src_port: u16, dst_port: u16) -> Vec<u8> {
    let mut b = src_port.to_be_bytes().to_vec();
    b.extend_from_slice(&dst_port.to_be_bytes());
    b.extend_from_slice(&payload(16, 3));
    b
}

#[test]
fn outbound_table_picks_the_sa_by_rule_and_selector() {
    use hostsec_proto::esp::{OutboundSa, PacketFlow};
    use hostsec_proto::ike::Selector;
    let t = transforms()[0];
    let mut rng = <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(5);
    let mut sa = |spi: u32| OutboundSa::new(&config(t, spi, A4, B4, spi as u8), &mut rng).unwrap();
    let print = |port: u16| Selector { protocol: 6, local_port: port, remote_port: 0 };
    let mut table = OutboundTable::new();
    table.insert_for(sa(0x901), "print", print(9100));
    table.insert_for(sa(0x902), "print", print(631));
    table.insert_for(sa(0x903), "all", Selector::ANY);
    assert_eq!(table.len(), 3);
    let now = Instant::now();
    let spi_of = |table: &mut OutboundTable, packet: &[u8], rule: Option<&str>| {
        let mut buf = vec![0u8; packet.len() + MAX_OVERHEAD];
        table.seal_for(now, packet, &mut buf, rule).map(|s| u32::from_be_bytes(s.packet[20..24].try_into().unwrap()))
    };
    let to_9100 = ipv4(A4, B4, 6, &[], &tcp(9100, 40000));
    let to_631 = ipv4(A4, B4, 6, &[], &tcp(631, 40001));
    let to_80 = ipv4(A4, B4, 6, &[], &tcp(80, 40002));
    let udp = ipv4(A4, B4, 17, &[], &tcp(9100, 40003));
    assert_eq!(spi_of(&mut table, &to_9100, Some("print")), Ok(0x901));
    assert_eq!(spi_of(&mut table, &to_9100, None), Ok(0x901), "the narrowest SA wins over the all-traffic one");
    assert_eq!(spi_of(&mut table, &to_631, Some("print")), Ok(0x902));
    assert_eq!(spi_of(&mut table, &to_80, Some("print")), Err(DropReason::NoSa), "no SA of the rule covers port 80");
    assert_eq!(spi_of(&mut table, &to_80, Some("all")), Ok(0x903));
    assert_eq!(spi_of(&mut table, &to_80, None), Ok(0x903));
    assert_eq!(spi_of(&mut table, &udp, Some("print")), Err(DropReason::NoSa));
    let flow = PacketFlow::parse(&to_631).unwrap();
    assert_eq!(table.find(&flow, Some("print")).map(|s| s.spi()), Some(0x902));
    assert_eq!(table.find(&flow, Some("other")).map(|s| s.spi()), None);
    // A rekeying: the newer SA for the same traffic takes over; removing it falls back to the older one.
    table.insert_for(sa(0x904), "print", print(9100));
    assert_eq!(spi_of(&mut table, &to_9100, Some("print")), Ok(0x904));
    assert_eq!(table.remove(0x904).map(|s| s.spi()), Some(0x904));
    assert_eq!(spi_of(&mut table, &to_9100, Some("print")), Ok(0x901));
    assert_eq!(table.to_peer(B4.parse().unwrap()).count(), 3);
    // An SA of no rule serves every rule.
    let mut plain = OutboundTable::new();
    plain.insert(sa(0x905));
    assert_eq!(spi_of(&mut plain, &to_80, Some("print")), Ok(0x905));
}

/// A rekeying started by us: the new outbound SA waits until the peer has been seen using the new pair (its first
/// packet on our new inbound SA) or until the gate's deadline, so that the peer, which installs the pair only on
/// QM3, never gets packets for an SPI it does not know yet.
#[test]
fn a_new_outbound_sa_takes_over_once_the_peer_uses_the_pair() {
    use hostsec_proto::esp::{InboundSa, OutboundSa, TakeoverGate};
    use hostsec_proto::ike::Selector;
    use std::time::Duration;
    let t = transforms()[0];
    let mut rng = <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(6);
    let now = Instant::now();
    let mut table = OutboundTable::new();
    let old = OutboundSa::new(&config(t, 0xa01, A4, B4, 1), &mut rng).unwrap();
    table.insert_for(old, "r", Selector::ANY);
    // The new pair: our inbound SA 0xb02 (the peer's outbound) and our outbound SA 0xa02.
    let in_cfg = config(t, 0xb02, A4, B4, 2);
    let mut inbound = InboundSa::new(&in_cfg).unwrap();
    let gate = TakeoverGate { peer_uses: in_cfg.counters.clone(), until: now + Duration::from_secs(2) };
    let new = OutboundSa::new(&config(t, 0xa02, A4, B4, 3), &mut rng).unwrap();
    table.insert_gated(new, "r", Selector::ANY, Some(gate));
    let packet = ipv4(A4, B4, 6, &[], &tcp(40000, 80));
    let spi_at = |table: &mut OutboundTable, at: Instant| {
        let mut buf = vec![0u8; packet.len() + MAX_OVERHEAD];
        table
            .seal_for(at, &packet, &mut buf, Some("r"))
            .map(|s| u32::from_be_bytes(s.packet[20..24].try_into().unwrap()))
    };
    assert_eq!(spi_at(&mut table, now), Ok(0xa01), "the old SA carries on while the peer has not used the new pair");
    assert_eq!(spi_at(&mut table, now + Duration::from_secs(3)), Ok(0xa02), "the deadline opens the gate");
    assert_eq!(spi_at(&mut table, now), Ok(0xa01));
    // The peer's first packet on the new pair opens it at once.
    let mut peer_out = OutboundSa::new(&config(t, 0xb02, B4, A4, 2), &mut rng).unwrap();
    let inner = ipv4(B4, A4, 6, &[], &tcp(80, 40000));
    let mut sealed = vec![0u8; inner.len() + MAX_OVERHEAD];
    let n = peer_out.seal(now, &inner, &mut sealed).unwrap().packet.len();
    let mut opened = vec![0u8; n];
    assert!(inbound.open(now, &sealed[..n], &mut opened).is_ok());
    assert_eq!(spi_at(&mut table, now), Ok(0xa02), "the peer has the pair: the new SA takes over");
    // With no older SA for the traffic, a gated SA is used at once.
    let mut fresh = OutboundTable::new();
    let gate = TakeoverGate { peer_uses: config(t, 0xb03, A4, B4, 4).counters, until: now + Duration::from_secs(2) };
    fresh.insert_gated(
        OutboundSa::new(&config(t, 0xa03, A4, B4, 5), &mut rng).unwrap(),
        "r",
        Selector::ANY,
        Some(gate),
    );
    assert_eq!(spi_at(&mut fresh, now), Ok(0xa03));
}

#[test]
fn open_transport_esp_refuses_tunnel_mode_and_dummy_packets_as_open_does() {
    for t in transforms() {
        let (mut o, mut i) = pair(t, A4, B4);
        for (nh, len, refused) in [
            (PROTO_IPV4, 60, Some(DropReason::TunnelMode)),
            (41, 60, Some(DropReason::TunnelMode)),
            (PROTO_NONE, 0, Some(DropReason::Dummy)),
            (6, 40, None),
        ] {
            let body = payload(len, nh);
            let mut buf = vec![0u8; len + MAX_OVERHEAD];
            let sealed = o.seal_esp(Instant::now(), nh, &body, &mut buf).unwrap();
            let esp = sealed.esp.to_vec();
            let mut back = vec![0u8; esp.len()];
            let before = refused.map(|r| i.counters().drops(r));
            match (i.open_transport_esp(Instant::now(), &esp, &mut back), refused) {
                (Ok(p), None) => assert_eq!((p.payload, p.next_header), (&body[..], nh)),
                (Err(e), Some(r)) => {
                    assert_eq!(e, r);
                    assert_eq!(i.counters().drops(r), before.unwrap() + 1, "{r:?} counted");
                }
                (got, want) => {
                    panic!("next header {nh}: got {:?}, wanted refusal {want:?}", got.map(|p| p.next_header))
                }
            }
        }
    }
}
