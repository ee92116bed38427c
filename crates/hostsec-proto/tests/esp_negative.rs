//! What the engine must refuse, and with which reason: tampering, replays, bad padding, tunnel mode, dummy
//! packets, truncations at every length, wrong addresses, fragments, buffers too small, sequence number
//! exhaustion, soft and hard lifetimes, bad keys. Every refusal is also counted.

mod esp_util;

use esp_util::*;
use hostsec_proto::crypto::{EspCipher, EspIntegrity, EspTransform, Secret};
use hostsec_proto::esp::{
    ByteRateMargin, DropReason, InboundSa, LifetimeLimits, OutboundSa, SaError, MAX_OVERHEAD, PROTO_IPV4, PROTO_IPV6,
    PROTO_NONE,
};
use std::time::{Duration, Instant};

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";
const SPI: u32 = 0x1234_5678;

fn seal_one(o: &mut OutboundSa, inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; inner.len() + MAX_OVERHEAD];
    o.seal(Instant::now(), inner, &mut buf).unwrap().packet.to_vec()
}

fn open_err(i: &mut InboundSa, outer: &[u8]) -> DropReason {
    let mut out = vec![0u8; outer.len() + 64];
    i.open(Instant::now(), outer, &mut out).map(|o| o.packet.to_vec()).unwrap_err()
}

#[test]
fn every_flipped_bit_of_the_esp_packet_fails_authentication() {
    for t in transforms() {
        let cases = [
            (A, B, ipv4(A, B, 6, &[], &payload(61, 1))),
            ("2001:db8::1", "2001:db8::2", ipv6("2001:db8::1", "2001:db8::2", &[ext(0, 6)], 17, &payload(30, 2))),
        ];
        for (a, b, inner) in cases {
            let (mut o, mut i) = pair(t, a, b);
            let outer = seal_one(&mut o, &inner);
            let esp_at = if a == A { 20 } else { 48 };
            for bit in (esp_at + 4) * 8..outer.len() * 8 {
                let mut bad = outer.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let reason = open_err(&mut i, &bad);
                // Sequence number 1 with its lowest bit flipped is 0: never valid, refused as a replay before
                // the ICV is even computed.
                let expected =
                    if bit == (esp_at + 8) * 8 - 8 { DropReason::Replayed } else { DropReason::AuthenticationFailed };
                assert_eq!(reason, expected, "{} bit {bit}", t.name());
            }
            // SPI bits name another SA.
            for bit in esp_at * 8..(esp_at + 4) * 8 {
                let mut bad = outer.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(open_err(&mut i, &bad), DropReason::UnknownSpi);
            }
            let flips = (outer.len() - esp_at - 4) * 8;
            assert_eq!(i.counters().drops(DropReason::AuthenticationFailed) as usize, flips - 1);
            // Nothing of that moved the window: the genuine packet still opens.
            let mut out = vec![0u8; outer.len()];
            assert_eq!(i.open(Instant::now(), &outer, &mut out).unwrap().packet, &inner[..]);
        }
    }
}

#[test]
fn replays_and_packets_left_of_the_window_are_dropped() {
    for t in transforms() {
        let (mut o, mut i) = pair(t, A, B);
        let inner = ipv4(A, B, 17, &[], &payload(10, 0));
        let first = seal_one(&mut o, &inner);
        let mut out = vec![0u8; 200];
        assert!(i.open(Instant::now(), &first, &mut out).is_ok());
        assert_eq!(open_err(&mut i, &first), DropReason::Replayed);
        let mut later = Vec::new();
        for _ in 0..2100 {
            later.push(seal_one(&mut o, &inner));
        }
        // Deliver #2101 (seq 2101 with the first): #2..#53 are now left of the 2048-wide window.
        let last = later.pop().unwrap();
        assert!(i.open(Instant::now(), &last, &mut out).is_ok());
        assert_eq!(open_err(&mut i, &later[0]), DropReason::Replayed, "seq 2: too old");
        assert_eq!(open_err(&mut i, &later[51]), DropReason::Replayed, "seq 53 = 2101 - 2048: too old");
        assert!(i.open(Instant::now(), &later[52], &mut out).is_ok(), "seq 54: leftmost slot");
        assert_eq!(open_err(&mut i, &later[52]), DropReason::Replayed);
        assert_eq!(i.counters().drops(DropReason::Replayed), 4);
    }
}

/// Plaintext with a trailer: `payload`, then `padding`, then pad length `pad_len` and next header 6, padded
/// with zeros in front to `block` when needed (the padding under test stays right before the trailer).
fn plaintext(block: usize, body: &[u8], padding: &[u8], pad_len: u8) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(padding);
    p.extend_from_slice(&[pad_len, 6]);
    assert_eq!(p.len() % block, 0, "test plaintext must be block aligned");
    p
}

#[test]
fn bad_padding_is_detected_after_authentication() {
    for t in transforms() {
        let block = if t.cipher.is_aead() { 4 } else { 16 };
        // 7 bytes of payload: 3 bytes of padding for GCM (to 12), 7 for CBC (to 16).
        let body = payload(7, 7);
        let n = pad_for(block, body.len(), |_| 0).len() as u8;
        let cases: [(Vec<u8>, u8, Option<DropReason>); 5] = [
            // (padding bytes, pad length, expected error)
            (pad_for(block, 7, |i| i as u8 + 1), n, None),
            (pad_for(block, 7, |i| if i == 2 { 9 } else { i as u8 + 1 }), n, Some(DropReason::BadPadding)),
            (pad_for(block, 7, |_| 0), n, Some(DropReason::BadPadding)),
            (pad_for(block, 7, |i| i as u8 + 1), 200, Some(DropReason::BadPadding)),
            (pad_for(block, 7, |i| i as u8 + 1), 255, Some(DropReason::BadPadding)),
        ];
        let (_, mut i) = pair(t, A, B);
        for (seq, (padding, pad_len, expected)) in cases.iter().enumerate() {
            let p = plaintext(block, &body, padding, *pad_len);
            let esp = forge(t, SPI, seq as u32 + 1, &p);
            let outer = ipv4(A, B, 50, &[], &esp);
            let mut out = vec![0u8; outer.len()];
            match expected {
                None => {
                    let opened =
                        i.open(Instant::now(), &outer, &mut out).unwrap_or_else(|e| panic!("{}: {e}", t.name()));
                    assert_eq!(&opened.packet[20..], &body[..], "the forge makes valid packets");
                }
                Some(reason) => {
                    assert_eq!(open_err(&mut i, &outer), *reason, "{} case {seq}", t.name());
                    assert_eq!(open_err(&mut i, &outer), DropReason::Replayed, "authenticated: the window moved");
                }
            }
        }
        assert_eq!(i.counters().drops(DropReason::BadPadding), 4, "{}", t.name());
    }
}

/// Padding that brings `body_len + padding + 2` to a multiple of `block`, byte `i` given by `f(i)`.
fn pad_for(block: usize, body_len: usize, f: impl Fn(usize) -> u8) -> Vec<u8> {
    let n = (block - (body_len + 2) % block) % block;
    (0..n).map(f).collect()
}

#[test]
fn tunnel_mode_and_dummy_packets_are_refused_after_authentication() {
    for t in transforms() {
        let (mut o, mut i) = pair(t, A, B);
        for (nh, reason) in [
            (PROTO_IPV4, DropReason::TunnelMode),
            (PROTO_IPV6, DropReason::TunnelMode),
            (PROTO_NONE, DropReason::Dummy),
        ] {
            let inner = if nh == PROTO_NONE { vec![] } else { ipv4("10.0.0.1", "10.0.0.2", 1, &[], &payload(20, 0)) };
            let mut buf = vec![0u8; 200];
            let esp = o.seal_esp(Instant::now(), nh, &inner, &mut buf).unwrap().esp.to_vec();
            let outer = ipv4(A, B, 50, &[], &esp);
            assert_eq!(open_err(&mut i, &outer), reason, "{}", t.name());
            assert_eq!(open_err(&mut i, &outer), DropReason::Replayed, "{}: authenticated first", t.name());
        }
        // The same through `seal`: an IPv6 packet whose encrypted part starts with IPv6-in-IPv6 after
        // destination options carries next header 60, and one that is IP-in-IP right away carries 41.
        let (mut o6, mut i6) = pair(t, "2001:db8::1", "2001:db8::2");
        let tunnelled = ipv6("2001:db8::1", "2001:db8::2", &[], PROTO_IPV6, &payload(40, 1));
        let outer = seal_one(&mut o6, &tunnelled);
        assert_eq!(open_err(&mut i6, &outer), DropReason::TunnelMode);
        let with_opts = ipv6("2001:db8::1", "2001:db8::2", &[ext(60, 6)], PROTO_IPV6, &payload(40, 1));
        let outer = seal_one(&mut o6, &with_opts);
        let mut out = vec![0u8; outer.len()];
        assert_eq!(i6.open(Instant::now(), &outer, &mut out).unwrap().next_header, 60, "encrypted options first");
        assert!(DropReason::Dummy.is_quiet() && !DropReason::TunnelMode.is_quiet());
        let c = i.counters().snapshot();
        assert_eq!((c.drops_for(DropReason::TunnelMode), c.drops_for(DropReason::Dummy)), (2, 1));
    }
}

#[test]
fn truncations_at_every_length_are_malformed_and_never_panic() {
    for t in transforms() {
        let (mut o, mut i) = pair(t, A, B);
        for inner in [ipv4(A, B, 6, &[1, 1, 1, 0], &payload(100, 3))] {
            let outer = seal_one(&mut o, &inner);
            for n in 0..outer.len() {
                // As cut: the IP length field no longer matches.
                assert_eq!(open_err(&mut i, &outer[..n]), DropReason::Malformed, "{} cut at {n}", t.name());
                assert!(o.seal(Instant::now(), &inner[..n.min(inner.len() - 1)], &mut [0u8; 300]).is_err());
                // Cut with the length field fixed: too short for ESP, or an ICV that no longer verifies.
                if n >= 24 {
                    let mut cut = outer[..n].to_vec();
                    cut[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                    let r = open_err(&mut i, &cut);
                    assert!(
                        matches!(r, DropReason::Malformed | DropReason::AuthenticationFailed),
                        "{} cut at {n}: {r}",
                        t.name()
                    );
                }
            }
            let mut out = vec![0u8; outer.len()];
            assert_eq!(i.open(Instant::now(), &outer, &mut out).unwrap().packet, &inner[..]);
        }
    }
}

#[test]
fn wrong_addresses_fragments_and_malformed_headers() {
    let t = transforms()[3];
    let (mut o, _) = pair(t, A, B);
    let mut buf = [0u8; 400];
    let other = ipv4("192.0.2.9", B, 6, &[], &payload(10, 0));
    assert_eq!(o.seal(Instant::now(), &other, &mut buf).unwrap_err(), DropReason::WrongAddresses);
    let other = ipv4(A, "192.0.2.9", 6, &[], &payload(10, 0));
    assert_eq!(o.seal(Instant::now(), &other, &mut buf).unwrap_err(), DropReason::WrongAddresses);
    let v6 = ipv6("2001:db8::1", "2001:db8::2", &[], 6, &payload(10, 0));
    assert_eq!(o.seal(Instant::now(), &v6, &mut buf).unwrap_err(), DropReason::WrongAddresses);
    // Fragments: MF set, or an offset.
    for frag in [[0x20u8, 0x00], [0x00, 0x10], [0x40, 0x01]] {
        let mut p = ipv4(A, B, 17, &[], &payload(40, 0));
        p[6..8].copy_from_slice(&frag);
        p[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(o.seal(Instant::now(), &p, &mut buf).unwrap_err(), DropReason::Fragment, "{frag:?}");
    }
    let frag6 = ipv6("2001:db8::1", "2001:db8::2", &[(44, vec![0, 0, 0x01, 0x00, 1, 2, 3, 4])], 17, &[0; 16]);
    let (mut o6, _) = pair(t, "2001:db8::1", "2001:db8::2");
    assert_eq!(o6.seal(Instant::now(), &frag6, &mut buf).unwrap_err(), DropReason::Fragment);
    // Bad version, IHL below 5, total length beyond the packet.
    let good = ipv4(A, B, 6, &[], &payload(10, 0));
    for (at, flip) in [(0usize, 0x50u8), (0, 0x01), (3, 0x80)] {
        let mut p = good.clone();
        p[at] ^= flip;
        assert_eq!(o.seal(Instant::now(), &p, &mut buf).unwrap_err(), DropReason::Malformed, "byte {at}");
    }
    // IPv6 jumbogram shape (payload length 0 with data).
    let mut jumbo = ipv6("2001:db8::1", "2001:db8::2", &[], 6, &payload(10, 0));
    jumbo[4..6].copy_from_slice(&[0, 0]);
    assert_eq!(o6.seal(Instant::now(), &jumbo, &mut buf).unwrap_err(), DropReason::Malformed);
    assert_eq!(o.counters().drops(DropReason::Malformed), 3);
    assert_eq!(o.last_sequence(), 0, "no refusal consumed a sequence number");
    // A wrong IPv4 header checksum is not repaired: the header is updated incrementally (RFC 1624), so the
    // outer packet carries a checksum exactly as wrong, for the next hop to drop.
    let mut bad_sum = good.clone();
    bad_sum[11] ^= 0x40;
    let sealed = o.seal(Instant::now(), &bad_sum, &mut buf).unwrap().packet.to_vec();
    assert_ne!(checksum(&sealed[..20]), 0);
    let (mut o_check, _) = pair(t, A, B);
    let _ = o_check.seal(Instant::now(), &good, &mut buf).unwrap();
    assert_eq!(checksum(&buf[..20]), 0, "a right one stays right");

    // Inbound: a genuine packet with other outer addresses, or as a fragment.
    let (mut o, mut i) = pair(t, A, B);
    let outer = seal_one(&mut o, &good);
    let mut moved = outer.clone();
    moved[12] = 10;
    assert_eq!(open_err(&mut i, &moved), DropReason::WrongAddresses);
    let mut frag = outer.clone();
    frag[6] = 0x20;
    assert_eq!(open_err(&mut i, &frag), DropReason::Fragment);
    let mut not_esp = outer.clone();
    not_esp[9] = 51;
    assert_eq!(open_err(&mut i, &not_esp), DropReason::Malformed);
    let mut out = vec![0u8; outer.len()];
    assert!(i.open(Instant::now(), &outer, &mut out).is_ok(), "none of that touched the window");
}

#[test]
fn buffers_too_small_consume_nothing() {
    for t in transforms() {
        let (mut o, mut i) = pair(t, A, B);
        let inner = ipv4(A, B, 6, &[], &payload(77, 0));
        let mut probe = vec![0u8; inner.len() + MAX_OVERHEAD];
        let needed = o.seal(Instant::now(), &inner, &mut probe).unwrap().packet.len();
        assert!(needed <= inner.len() + o.max_overhead());
        let mut small = vec![0u8; needed - 1];
        assert_eq!(o.seal(Instant::now(), &inner, &mut small).unwrap_err(), DropReason::BufferTooSmall);
        assert_eq!(o.last_sequence(), 1, "the refused seal used no sequence number");
        let outer = seal_one(&mut o, &inner);
        assert_eq!(u32::from_be_bytes(outer[24..28].try_into().unwrap()), 2);
        let mut small = vec![0u8; inner.len() - 1];
        assert_eq!(i.open(Instant::now(), &outer, &mut small).unwrap_err(), DropReason::BufferTooSmall);
        assert_eq!(i.window().top(), 0, "nothing authenticated");
        let mut out = vec![0u8; outer.len()];
        assert_eq!(i.open(Instant::now(), &outer, &mut out).unwrap().packet, &inner[..]);
    }
}

#[test]
fn packets_that_would_not_fit_the_ip_length_field() {
    let t = transforms()[0];
    let (mut o, _) = pair(t, A, B);
    let inner = ipv4(A, B, 17, &[], &payload(65535 - 20, 0));
    let mut buf = vec![0u8; 70_000];
    assert_eq!(o.seal(Instant::now(), &inner, &mut buf).unwrap_err(), DropReason::TooBig);
    let (mut o6, mut i6) = pair(t, "2001:db8::1", "2001:db8::2");
    let inner = ipv6("2001:db8::1", "2001:db8::2", &[], 17, &payload(65535 - 40, 0));
    let sealed = o6.seal(Instant::now(), &inner, &mut buf).unwrap().packet.to_vec();
    let mut out = vec![0u8; sealed.len()];
    assert_eq!(i6.open(Instant::now(), &sealed, &mut out).unwrap().packet, &inner[..], "IPv6: 65535 after the header");
    let inner = ipv6("2001:db8::1", "2001:db8::2", &[], 17, &payload(65535, 0));
    assert_eq!(o6.seal(Instant::now(), &inner, &mut buf).unwrap_err(), DropReason::TooBig);
}

#[test]
fn sequence_numbers_never_wrap() {
    for t in transforms() {
        let (mut o, mut i) = pair(t, A, B);
        let inner = ipv4(A, B, 6, &[], &payload(10, 0));
        let mut buf = vec![0u8; 200];
        let now = Instant::now();
        assert!(!o.seal(now, &inner, &mut buf).unwrap().rekey_soon);
        o.fast_forward_sequence(u64::from(u32::MAX) - (1 << 20) - 2);
        assert!(!o.seal(now, &inner, &mut buf).unwrap().rekey_soon, "just before the soft margin");
        assert!(o.seal(now, &inner, &mut buf).unwrap().rekey_soon, "2^32 - 1 - 2^20: rekey soon");
        o.fast_forward_sequence(3);
        assert_eq!(o.last_sequence(), u64::from(u32::MAX) - (1 << 20), "never backwards");
        o.fast_forward_sequence(u64::from(u32::MAX) - 1);
        let last = o.seal(now, &inner, &mut buf).unwrap();
        assert_eq!((last.seq, last.rekey_soon), (u64::from(u32::MAX), true), "2^32 - 1 is the last number");
        let last = last.packet.to_vec();
        assert!(o.is_expired(now));
        for _ in 0..3 {
            let e = o.seal(now, &inner, &mut buf).unwrap_err();
            assert_eq!(e, DropReason::SequenceExhausted);
            assert!(e.needs_rekey());
            assert!(e.to_string().contains("rekey"), "{e}");
        }
        assert_eq!(o.counters().drops(DropReason::SequenceExhausted), 3);
        assert_eq!(o.last_sequence(), u64::from(u32::MAX));
        // The receiver takes the last number.
        let mut out = vec![0u8; last.len()];
        assert_eq!(i.open(now, &last, &mut out).unwrap().seq, u64::from(u32::MAX));
    }
}

fn limited(soft_bytes: u64, hard_bytes: u64, soft_packets: u64, hard_packets: u64) -> LifetimeLimits {
    LifetimeLimits { soft_bytes, hard_bytes, soft_packets, hard_packets, ..LifetimeLimits::UNLIMITED }
}

#[test]
fn soft_and_hard_byte_and_packet_limits() {
    let t = transforms()[1];
    let inner = ipv4(A, B, 6, &[], &payload(100, 0)); // 100 payload bytes per packet
                                                      // Bytes: soft at 250, hard at 400: packets 1-2 fine, 3-4 rekey soon, 5 expired.
                                                      // Packets: soft at 2, hard at 4.
    for (limits, soon_from, expired_from) in
        [(limited(250, 400, u64::MAX, u64::MAX), 3, 5), (limited(u64::MAX, u64::MAX, 2, 4), 2, 5)]
    {
        let (mut o, mut i) = pair_with(t, A, B, |c| c.limits = limits);
        let now = Instant::now();
        for n in 1..=6 {
            let mut buf = vec![0u8; 300];
            match o.seal(now, &inner, &mut buf) {
                Ok(s) => {
                    assert!(n < expired_from, "packet {n} sealed after the hard limit");
                    assert_eq!(s.rekey_soon, n >= soon_from, "packet {n}");
                    let outer = s.packet.to_vec();
                    let mut out = vec![0u8; outer.len()];
                    let opened = i.open(now, &outer, &mut out).unwrap();
                    assert_eq!(opened.rekey_soon, n >= soon_from, "inbound packet {n}");
                }
                Err(e) => {
                    assert!(n >= expired_from, "packet {n}: {e}");
                    assert_eq!(e, DropReason::Expired);
                }
            }
        }
        assert!(o.is_expired(now) && i.is_expired(now));
        // The inbound side refuses once its own hard limit is reached, before any crypto.
        let (mut o2, _) = pair(t, A, B);
        o2.fast_forward_sequence(100);
        let outer = seal_one(&mut o2, &inner);
        assert_eq!(open_err(&mut i, &outer), DropReason::Expired);
        assert_eq!(o.counters().drops(DropReason::Expired), 2);
    }
}

/// The soft byte limit comes early at a high rate (the rest of the bytes would not last `keep`), never before
/// `from_bytes`, and stays at its fixed place at a low rate.
#[test]
fn the_soft_byte_limit_comes_early_at_a_high_rate() {
    let t = transforms()[1];
    let inner = ipv4(A, B, 6, &[], &payload(100, 0)); // 100 payload bytes per packet
    let start = Instant::now();
    let margin = ByteRateMargin { since: start, keep: Duration::from_secs(10), from_bytes: 5_000 };
    let limits = LifetimeLimits { soft_bytes_by_rate: Some(margin), ..limited(9_000, 10_000, u64::MAX, u64::MAX) };
    // Packet n goes at n × `gap`: returns the first packet flagged for rekeying.
    let first_soon = |gap: Duration| {
        let (mut o, _) = pair_with(t, A, B, |c| c.limits = limits);
        let mut buf = vec![0u8; 300];
        (1..=100u32).find(|n| o.seal(start + gap * *n, &inner, &mut buf).unwrap().rekey_soon)
    };
    // 100 bytes every 10 ms (10 kB/s): the rest lasts under 10 s from the start, but not before 5,000 bytes.
    assert_eq!(first_soon(Duration::from_millis(10)), Some(50));
    // 100 bytes every 300 ms: after packet n the rest lasts 0.3 × (100 − n) s, under 10 s from packet 67 on.
    assert_eq!(first_soon(Duration::from_millis(300)), Some(67));
    // 100 bytes every second: the fixed soft limit (9,000).
    assert_eq!(first_soon(Duration::from_secs(1)), Some(90));
}

#[test]
fn soft_and_hard_time_limits() {
    for t in transforms() {
        let start = Instant::now();
        let limits = LifetimeLimits::from_negotiated(start, Duration::from_secs(100), 0);
        let (mut o, mut i) = pair_with(t, A, B, |c| c.limits = limits);
        let inner = ipv4(A, B, 6, &[], &payload(10, 0));
        let mut buf = vec![0u8; 200];
        let at = |s: u64| start + Duration::from_secs(s);
        let s = o.seal(at(0), &inner, &mut buf).unwrap();
        assert!(!s.rekey_soon);
        let early = s.packet.to_vec();
        let s = o.seal(at(90), &inner, &mut buf).unwrap();
        assert!(s.rekey_soon, "soft limit at 90 %");
        let late = s.packet.to_vec();
        assert_eq!(o.seal(at(100), &inner, &mut buf).unwrap_err(), DropReason::Expired);
        assert!(o.rekey_soon(at(95)) && !o.is_expired(at(99)) && o.is_expired(at(100)));
        let mut out = vec![0u8; 200];
        assert!(!i.open(at(1), &early, &mut out).unwrap().rekey_soon);
        assert_eq!(i.open(at(100), &late, &mut out).unwrap_err(), DropReason::Expired);
        assert!(i.open(at(99), &late, &mut out).unwrap().rekey_soon);
    }
}

#[test]
fn bad_keys_and_configurations_are_refused() {
    let gcm = EspTransform { cipher: EspCipher::AesGcm16_128, integrity: EspIntegrity::None };
    let mut c = config(gcm, 1, A, B, 1);
    let mut rng = <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(0);
    c.encryption_key = Secret::new(vec![0; 16]); // salt missing
    assert_eq!(InboundSa::new(&c).unwrap_err(), SaError::KeyLength { what: "encryption", expected: 20, got: 16 });
    c.transform.integrity = EspIntegrity::HmacSha1_96;
    assert!(matches!(OutboundSa::new(&c, &mut rng).unwrap_err(), SaError::InvalidTransform(_)));
    let cbc = EspTransform { cipher: EspCipher::AesCbc256, integrity: EspIntegrity::None };
    assert!(matches!(InboundSa::new(&config(cbc, 1, A, B, 1)).unwrap_err(), SaError::InvalidTransform(_)));
    let mut c = config(transforms()[3], 1, A, B, 1);
    c.integrity_key = Secret::new(vec![1; 19]);
    assert!(matches!(InboundSa::new(&c).unwrap_err(), SaError::KeyLength { what: "integrity", .. }));
    let c = config(transforms()[3], 1, A, "2001:db8::2", 1);
    assert!(matches!(InboundSa::new(&c).unwrap_err(), SaError::AddressFamilies { .. }));
}

#[test]
fn nothing_prints_keys() {
    for t in transforms() {
        let c = config(t, 1, A, B, 1);
        let (enc, int) = keys(t, 1);
        let mut rng = <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(0);
        let text = format!("{c:?} {:?} {:?}", OutboundSa::new(&c, &mut rng).unwrap(), InboundSa::new(&c).unwrap());
        for key in [enc.expose(), int.expose()] {
            if !key.is_empty() {
                assert!(!text.contains(&hex::encode(key)), "{text}");
                assert!(!text.contains(&format!("{:?}", &key[..4])), "{text}");
            }
        }
        assert!(text.contains("redacted"));
    }
}
