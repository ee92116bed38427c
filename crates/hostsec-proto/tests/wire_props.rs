//! Property tests of the wire codecs: every `*Repr` survives emit → parse unchanged, and no parser panics on
//! arbitrary or mutated input.

use hostsec_proto::wire::consts::{id_type, payload, DOI_IPSEC};
use hostsec_proto::wire::udp_encap::{classify, with_marker, UdpEncap, MIN_ESP_LEN, NAT_KEEPALIVE, NON_ESP_MARKER};
use hostsec_proto::wire::{
    AttrValue, AttributeRepr, CertPayload, CertRepr, CertRequestPayload, CertRequestRepr, DeletePayload, DeleteRepr,
    Emit, Header, IdPayload, IdRepr, NatDPayload, NatOaPayload, NatOaRepr, NotifyPayload, NotifyRepr, PayloadWriter,
    Payloads, ProposalRepr, SaPayload, SaRepr, TransformRepr, WireError, MAX_DELETE_SPIS,
};
use proptest::prelude::*;
use std::net::IpAddr;

fn emit_vec(e: &dyn Emit) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; e.buffer_len()];
    e.emit(&mut out)?;
    Ok(out)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

fn attribute() -> impl Strategy<Value = AttributeRepr> {
    prop_oneof![
        (0u16..0x8000, any::<u16>()).prop_map(|(kind, value)| AttributeRepr::Basic { kind, value }),
        (0u16..0x8000, bytes(40)).prop_map(|(kind, value)| AttributeRepr::Variable { kind, value }),
        (0u16..0x8000, any::<u64>()).prop_map(|(kind, v)| AttributeRepr::number(kind, v)),
    ]
}

fn transform() -> impl Strategy<Value = TransformRepr> {
    (any::<u8>(), any::<u8>(), proptest::collection::vec(attribute(), 0..8))
        .prop_map(|(number, transform_id, attributes)| TransformRepr { number, transform_id, attributes })
}

fn proposal() -> impl Strategy<Value = ProposalRepr> {
    (any::<u8>(), any::<u8>(), bytes(16), proptest::collection::vec(transform(), 0..5))
        .prop_map(|(number, protocol_id, spi, transforms)| ProposalRepr { number, protocol_id, spi, transforms })
}

fn sa() -> impl Strategy<Value = SaRepr> {
    // Under the IPsec DOI only SIT_IDENTITY_ONLY (or 0) is parsed; other DOIs carry any situation.
    let doi_situation = prop_oneof![
        (Just(DOI_IPSEC), 0u32..=1),
        (any::<u32>().prop_filter("not IPsec", |d| *d != DOI_IPSEC), any::<u32>()),
    ];
    (doi_situation, proptest::collection::vec(proposal(), 0..4)).prop_map(|((doi, situation), proposals)| SaRepr {
        doi,
        situation,
        proposals,
    })
}

fn id() -> impl Strategy<Value = IdRepr> {
    let address = prop_oneof![
        Just((id_type::IPV4_ADDR, 4)),
        Just((id_type::IPV4_ADDR_SUBNET, 8)),
        Just((id_type::IPV4_ADDR_RANGE, 8)),
        Just((id_type::IPV6_ADDR, 16)),
        Just((id_type::IPV6_ADDR_SUBNET, 32)),
        Just((id_type::IPV6_ADDR_RANGE, 32)),
    ]
    .prop_flat_map(|(t, len)| (Just(t), proptest::collection::vec(any::<u8>(), len)));
    let other = (any::<u8>().prop_filter("free-form type", |t| ![1, 4, 5, 6, 7, 8].contains(t)), bytes(64));
    (prop_oneof![address, other], any::<u8>(), any::<u16>()).prop_map(|((id_type, data), protocol, port)| IdRepr {
        id_type,
        protocol,
        port,
        data,
    })
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u8; 16]>().prop_map(IpAddr::from),]
}

/// Parses everything below an SA payload, the way the IKE layer walks it.
fn walk_sa(body: &[u8]) {
    let Ok(sa) = SaPayload::parse(body) else {
        return;
    };
    for p in sa.proposals() {
        let Ok(p) = p else { continue };
        for t in p.transforms() {
            let Ok(t) = t else { continue };
            for a in t.attributes().flatten() {
                let _ = a.as_u64();
                if let AttrValue::Variable(v) = a.value {
                    assert!(v.len() <= body.len());
                }
            }
        }
    }
}

/// Applies `edits` (position, new byte) and a truncation to `buf`.
fn mutate(mut buf: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    if buf.is_empty() {
        return buf;
    }
    for &(at, b) in edits {
        let at = at % buf.len();
        buf[at] = b;
    }
    let keep = buf.len() - cut % (buf.len() + 1);
    buf.truncate(keep);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sa_round_trips(repr in sa()) {
        let out = emit_vec(&repr).unwrap();
        prop_assert_eq!(out.len(), repr.buffer_len());
        prop_assert_eq!(SaRepr::parse(&out).unwrap(), repr);
    }

    #[test]
    fn attributes_round_trip(attrs in proptest::collection::vec(attribute(), 0..32)) {
        let repr = SaRepr {
            doi: DOI_IPSEC,
            situation: 1,
            proposals: vec![ProposalRepr {
                number: 1,
                protocol_id: 1,
                spi: vec![],
                transforms: vec![TransformRepr { number: 1, transform_id: 1, attributes: attrs }],
            }],
        };
        let out = emit_vec(&repr).unwrap();
        prop_assert_eq!(SaRepr::parse(&out).unwrap(), repr);
    }

    #[test]
    fn number_attribute_keeps_its_value(kind in 0u16..0x8000, v in any::<u64>()) {
        let repr = AttributeRepr::number(kind, v);
        let expected_len = if v <= 0xffff { 4 } else if v <= 0xffff_ffff { 8 } else { 12 };
        prop_assert_eq!(repr.buffer_len(), expected_len);
        let sa = SaRepr {
            doi: DOI_IPSEC,
            situation: 1,
            proposals: vec![ProposalRepr {
                number: 1,
                protocol_id: 1,
                spi: vec![],
                transforms: vec![TransformRepr { number: 1, transform_id: 1, attributes: vec![repr] }],
            }],
        };
        let out = emit_vec(&sa).unwrap();
        let view = SaPayload::parse(&out).unwrap();
        let p = view.proposals().next().unwrap().unwrap();
        let t = p.transforms().next().unwrap().unwrap();
        let a = t.attributes().next().unwrap().unwrap();
        prop_assert_eq!((a.kind, a.as_u64()), (kind, Some(v)));
    }

    #[test]
    fn id_round_trips(repr in id()) {
        let out = emit_vec(&repr).unwrap();
        let view = IdPayload::parse(&out).unwrap();
        prop_assert_eq!(IdRepr::from_view(&view), repr);
    }

    #[test]
    fn id_from_ip_round_trips(addr in ip()) {
        let out = emit_vec(&IdRepr::from_ip(addr)).unwrap();
        let view = IdPayload::parse(&out).unwrap();
        prop_assert_eq!((view.address(), view.protocol, view.port), (Some(addr), 0, 0));
    }

    #[test]
    fn notify_round_trips(
        doi in any::<u32>(), protocol_id in any::<u8>(), notify_type in any::<u16>(), spi in bytes(16),
        data in bytes(64),
    ) {
        let repr = NotifyRepr { doi, protocol_id, notify_type, spi, data };
        let out = emit_vec(&repr).unwrap();
        prop_assert_eq!(NotifyRepr::from_view(&NotifyPayload::parse(&out).unwrap()), repr);
    }

    #[test]
    fn delete_round_trips(
        doi in any::<u32>(), protocol_id in any::<u8>(), spi_size in 0u8..=16, count in 0usize..10, seed in any::<u8>(),
    ) {
        let spis = (0..count).map(|i| vec![seed.wrapping_add(i as u8); usize::from(spi_size)]).collect();
        let repr = DeleteRepr { doi, protocol_id, spi_size, spis };
        let out = emit_vec(&repr).unwrap();
        let view = DeletePayload::parse(&out).unwrap();
        prop_assert_eq!(usize::from(view.spi_count), count);
        prop_assert_eq!(DeleteRepr::from_view(&view), repr);
    }

    #[test]
    fn delete_at_the_bound(spi_size in 0u8..=4) {
        let repr = DeleteRepr {
            doi: DOI_IPSEC,
            protocol_id: 3,
            spi_size,
            spis: vec![vec![0xab; usize::from(spi_size)]; MAX_DELETE_SPIS],
        };
        let out = emit_vec(&repr).unwrap();
        prop_assert_eq!(DeleteRepr::from_view(&DeletePayload::parse(&out).unwrap()), repr);
    }

    #[test]
    fn cert_and_cr_round_trip(encoding in any::<u8>(), data in bytes(300)) {
        let cert = CertRepr { encoding, data: data.clone() };
        let view = CertPayload::parse(&emit_vec(&cert).unwrap()).map(|c| (c.encoding, c.data.to_vec()));
        prop_assert_eq!(view, Ok((encoding, data.clone())));
        let cr = CertRequestRepr { encoding, authority: data.clone() };
        let view = CertRequestPayload::parse(&emit_vec(&cr).unwrap()).map(|c| (c.encoding, c.authority.to_vec()));
        prop_assert_eq!(view, Ok((encoding, data)));
    }

    #[test]
    fn nat_oa_round_trips(address in ip()) {
        let out = emit_vec(&NatOaRepr { address }).unwrap();
        prop_assert_eq!(NatOaPayload::parse(&out), Ok(NatOaPayload { address }));
    }

    #[test]
    fn header_round_trips(
        icky in any::<[u8; 8]>(), rcky in any::<[u8; 8]>(), next_payload in any::<u8>(), minor in 0u8..16,
        exchange_type in any::<u8>(), flags in any::<u8>(), message_id in any::<u32>(), extra in 0u32..64,
    ) {
        let h = Header {
            initiator_cookie: icky,
            responder_cookie: rcky,
            next_payload,
            version: 0x10 | minor,
            exchange_type,
            flags,
            message_id,
            length: 28 + extra,
        };
        let mut out = vec![0u8; h.length as usize];
        h.emit(&mut out).unwrap();
        prop_assert_eq!(Header::parse(&out), Ok(h));
        let (_, body) = Header::split(&out).unwrap();
        prop_assert_eq!(body.len(), extra as usize);
    }

    #[test]
    fn payload_chain_round_trips(
        items in proptest::collection::vec((1u8..=255, bytes(80)), 0..20), padding in bytes(16),
    ) {
        let mut buf = vec![0u8; 20 * 84 + 16];
        let mut w = PayloadWriter::new(&mut buf);
        for (kind, body) in &items {
            w.push(*kind, body).unwrap();
        }
        let first = w.first_payload();
        let mut msg = w.written().to_vec();
        msg.extend(&padding);
        let mut it = Payloads::new(first, &msg);
        let parsed: Vec<(u8, Vec<u8>)> = it.by_ref().map(|p| p.map(|p| (p.kind, p.body.to_vec())).unwrap()).collect();
        prop_assert_eq!(parsed, items);
        prop_assert_eq!(it.remainder(), &padding[..]);
    }

    #[test]
    fn parsers_never_panic(buf in bytes(600), kind in any::<u8>()) {
        let _ = Header::parse(&buf);
        if let Ok((h, body)) = Header::split(&buf) {
            prop_assert!(body.len() + Header::LEN == h.length as usize);
            prop_assert!(Payloads::new(h.next_payload, body).count() <= hostsec_proto::wire::MAX_PAYLOADS + 1);
        }
        let mut chain = Payloads::new(kind, &buf);
        prop_assert!(chain.by_ref().count() <= hostsec_proto::wire::MAX_PAYLOADS + 1);
        prop_assert!(chain.remainder().len() <= buf.len());
        walk_sa(&buf);
        if let Ok(sa) = SaRepr::parse(&buf) {
            // What was parsed can be emitted and parses to the same thing (reserved bytes are not kept).
            let out = emit_vec(&sa).unwrap();
            prop_assert_eq!(SaRepr::parse(&out).unwrap(), sa);
        }
        if let Ok(id) = IdPayload::parse(&buf) {
            prop_assert_eq!(emit_vec(&IdRepr::from_view(&id)).unwrap(), buf.clone());
        }
        if let Ok(n) = NotifyPayload::parse(&buf) {
            prop_assert_eq!(emit_vec(&NotifyRepr::from_view(&n)).unwrap(), buf.clone());
        }
        if let Ok(d) = DeletePayload::parse(&buf) {
            prop_assert_eq!(d.spis().count(), usize::from(d.spi_count));
            prop_assert_eq!(emit_vec(&DeleteRepr::from_view(&d)).unwrap(), buf.clone());
        }
        let _ = CertPayload::parse(&buf);
        let _ = CertRequestPayload::parse(&buf);
        let _ = NatOaPayload::parse(&buf);
    }

    #[test]
    fn mutated_sa_never_panics(
        repr in sa(), edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4), cut in any::<usize>(),
    ) {
        let buf = mutate(emit_vec(&repr).unwrap(), &edits, cut);
        walk_sa(&buf);
        let _ = SaRepr::parse(&buf);
    }

    #[test]
    fn mutated_message_never_panics(
        repr in sa(), nonce in bytes(64), edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let mut buf = vec![0u8; 2048];
        let mut w = PayloadWriter::new(&mut buf[Header::LEN..]);
        w.push(payload::SA, &repr).unwrap();
        w.push(payload::NONCE, &nonce).unwrap();
        let (first, len) = (w.first_payload(), w.len() + Header::LEN);
        let h = Header {
            initiator_cookie: [1; 8],
            responder_cookie: [0; 8],
            next_payload: first,
            version: 0x10,
            exchange_type: 2,
            flags: 0,
            message_id: 0,
            length: len as u32,
        };
        h.emit(&mut buf).unwrap();
        buf.truncate(len);
        let buf = mutate(buf, &edits, cut);
        if let Ok((h, body)) = Header::split(&buf) {
            for p in Payloads::new(h.next_payload, body).flatten() {
                if p.kind == payload::SA {
                    walk_sa(p.body);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever arrives on UDP 4500 is sorted without panicking, and the kind agrees with the first bytes.
    #[test]
    fn udp_4500_classification_agrees_with_the_bytes(data in bytes(64)) {
        match classify(&data) {
            UdpEncap::Keepalive => prop_assert_eq!(&data[..], &[NAT_KEEPALIVE][..]),
            UdpEncap::Ike(msg) => {
                prop_assert_eq!(&data[..4], &NON_ESP_MARKER[..]);
                prop_assert_eq!(msg, &data[4..]);
                prop_assert!(msg.len() >= Header::LEN);
            }
            UdpEncap::Esp { spi, packet } => {
                prop_assert_eq!(packet, &data[..]);
                prop_assert_eq!(&data[..4], &spi.to_be_bytes()[..]);
                prop_assert!(spi > 255 && data.len() >= MIN_ESP_LEN);
            }
            UdpEncap::Invalid(_) => prop_assert!(
                data.len() < MIN_ESP_LEN || data[..4] == NON_ESP_MARKER || data[..4] <= [0, 0, 0, 255][..]
            ),
        }
    }

    /// An ISAKMP message framed for port 4500 comes back out whole; ESP (a non-zero SPI) is never taken for IKE.
    #[test]
    fn framed_ike_round_trips(msg in proptest::collection::vec(any::<u8>(), Header::LEN..512), spi in 256u32.., body in bytes(64)) {
        let framed = with_marker(&msg);
        prop_assert_eq!(framed.len(), msg.len() + 4);
        prop_assert_eq!(classify(&framed), UdpEncap::Ike(&msg[..]));
        let mut esp = spi.to_be_bytes().to_vec();
        esp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        esp.extend_from_slice(&body);
        prop_assert_eq!(classify(&esp), UdpEncap::Esp { spi, packet: &esp[..] });
    }

    /// NAT-D bodies: any hash of 16 to 64 bytes parses as itself, any other length is refused.
    #[test]
    fn nat_d_lengths(body in bytes(80)) {
        match NatDPayload::parse(&body) {
            Ok(p) => {
                prop_assert_eq!(p.hash, &body[..]);
                prop_assert!((16..=64).contains(&body.len()));
            }
            Err(_) => prop_assert!(!(16..=64).contains(&body.len())),
        }
    }
}
