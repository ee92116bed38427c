//! What every fuzz target checks: parsing never panics, and whatever parses can be emitted again and parses back
//! to the same value (the `*Repr` round trip), so that a parser and its encoder cannot drift apart. The
//! certificate targets (`x509`, on the fixed PKI of `fixtures`) check what must hold of an accepted certificate,
//! key, identity or chain.

pub mod fixtures;
pub mod x509;

use hostsec_proto::wire::consts::payload;
use hostsec_proto::wire::udp_encap::{classify, with_marker, UdpEncap, MIN_ESP_LEN, NAT_KEEPALIVE, NON_ESP_MARKER};
use hostsec_proto::wire::{
    AttrValue, CertPayload, CertRepr, CertRequestPayload, CertRequestRepr, DeletePayload, DeleteRepr, Emit,
    FragmentPayload, FragmentRepr, Header, IdPayload, IdRepr, NatOaPayload, NatOaRepr, NotifyPayload, NotifyRepr,
    Payloads, SaPayload, SaRepr, MAX_ATTRIBUTES, MAX_PAYLOADS, MAX_PROPOSALS, MAX_TRANSFORMS,
};

fn emit_vec(e: &dyn Emit) -> Vec<u8> {
    let mut out = vec![0u8; e.buffer_len()];
    if let Err(e) = e.emit(&mut out) {
        panic!("a parsed value must be emittable: {e}");
    }
    out
}

/// A whole ISAKMP message: header, payload chain, and every payload by its type.
pub fn message(data: &[u8]) {
    let Ok((header, body)) = Header::split(data) else {
        return;
    };
    assert_eq!(body.len() + Header::LEN, header.length as usize);
    let mut out = [0u8; Header::LEN];
    header.emit(&mut out).expect("header emit");
    assert_eq!(out[..], data[..Header::LEN], "the header has no reserved bits");
    let mut chain = Payloads::new(header.next_payload, body);
    let mut count = 0;
    for p in chain.by_ref() {
        count += 1;
        assert!(count <= MAX_PAYLOADS + 1);
        match p {
            Ok(p) => typed_payload(p.kind, p.body),
            Err(_) => break,
        }
    }
    assert!(chain.remainder().len() <= body.len());
}

/// One payload body, parsed by type.
pub fn typed_payload(kind: u8, body: &[u8]) {
    match kind {
        payload::SA => sa(body),
        payload::ID => id(body),
        payload::NOTIFY => notify(body),
        payload::DELETE => delete(body),
        payload::CERT => cert(body),
        payload::CR => cert_request(body),
        payload::NAT_OA | payload::NAT_OA_DRAFT => nat_oa(body),
        payload::FRAGMENT => fragment(body),
        _ => {}
    }
}

/// An SA payload body, walked down to the attributes through the views, then through `SaRepr`.
pub fn sa(body: &[u8]) {
    if let Ok(view) = SaPayload::parse(body) {
        let mut proposals = 0;
        for p in view.proposals() {
            proposals += 1;
            assert!(proposals <= MAX_PROPOSALS + 1);
            let Ok(p) = p else { break };
            let mut transforms = 0;
            for t in p.transforms() {
                transforms += 1;
                assert!(transforms <= MAX_TRANSFORMS + 1);
                let Ok(t) = t else { continue };
                let mut attributes = 0;
                for a in t.attributes() {
                    attributes += 1;
                    assert!(attributes <= MAX_ATTRIBUTES + 1);
                    let Ok(a) = a else { break };
                    assert!(a.kind < 0x8000);
                    if let (AttrValue::Variable(v), Some(n)) = (a.value, a.as_u64()) {
                        assert!((1..=8).contains(&v.len()) && (v.len() == 8 || n >> (8 * v.len()) == 0));
                    }
                }
            }
        }
    }
    if let Ok(repr) = SaRepr::parse(body) {
        let out = emit_vec(&repr);
        // Only reserved bytes are dropped, so the encoding has the input's shape.
        assert_eq!(out.len(), body.len());
        assert_eq!(SaRepr::parse(&out).as_ref(), Ok(&repr));
    }
}

/// An ID payload body; it has no reserved bytes, so re-emitting gives the input back.
pub fn id(body: &[u8]) {
    if let Ok(view) = IdPayload::parse(body) {
        assert_eq!(emit_vec(&IdRepr::from_view(&view)), body);
        if let Some(addr) = view.address() {
            assert_eq!(IdPayload::parse(&emit_vec(&IdRepr::from_ip(addr))).map(|i| i.data), Ok(view.data));
        }
    }
}

/// A notification payload body.
pub fn notify(body: &[u8]) {
    if let Ok(view) = NotifyPayload::parse(body) {
        assert_eq!(emit_vec(&NotifyRepr::from_view(&view)), body);
    }
}

/// A delete payload body.
pub fn delete(body: &[u8]) {
    if let Ok(view) = DeletePayload::parse(body) {
        assert_eq!(view.spis().count(), usize::from(view.spi_count));
        assert!(view.spis().all(|s| s.len() == usize::from(view.spi_size)));
        assert_eq!(emit_vec(&DeleteRepr::from_view(&view)), body);
    }
}

/// A CERT payload body.
pub fn cert(body: &[u8]) {
    if let Ok(view) = CertPayload::parse(body) {
        assert_eq!(emit_vec(&CertRepr { encoding: view.encoding, data: view.data.to_vec() }), body);
    }
}

/// A CR payload body.
pub fn cert_request(body: &[u8]) {
    if let Ok(view) = CertRequestPayload::parse(body) {
        let repr = CertRequestRepr { encoding: view.encoding, authority: view.authority.to_vec() };
        assert_eq!(emit_vec(&repr), body);
    }
}

/// A NAT-OA payload body; the reserved bytes are not kept, so the round trip is checked on the address.
pub fn nat_oa(body: &[u8]) {
    if let Ok(view) = NatOaPayload::parse(body) {
        let out = emit_vec(&NatOaRepr { address: view.address });
        assert_eq!(out.len(), body.len());
        assert_eq!(NatOaPayload::parse(&out), Ok(view));
    }
}

/// A UDP payload received on port 4500 (RFC 3948 framing): the classifier never panics, agrees with the first
/// bytes, and an IKE message framed by `with_marker` comes back out unchanged.
pub fn udp_encap(data: &[u8]) {
    match classify(data) {
        UdpEncap::Keepalive => assert_eq!(data, [NAT_KEEPALIVE]),
        UdpEncap::Ike(msg) => {
            assert_eq!(data.get(..4), Some(&NON_ESP_MARKER[..]));
            assert_eq!(msg, &data[4..]);
            assert_eq!(with_marker(msg), data);
        }
        UdpEncap::Esp { spi, packet } => {
            assert_eq!(packet, data);
            assert!(spi > 255 && data.len() >= MIN_ESP_LEN);
            assert_eq!(data.get(..4), Some(&spi.to_be_bytes()[..]));
        }
        UdpEncap::Invalid(why) => assert!(!why.is_empty()),
    }
    if let UdpEncap::Ike(msg) = classify(&with_marker(data)) {
        assert_eq!(msg, data);
    } else {
        assert!(data.len() < 28, "a framed message of {} bytes was not taken for IKE", data.len());
    }
}

/// An IKE fragment payload body; flag bits other than "last" are not kept, so the round trip is checked on what
/// the fragment means.
pub fn fragment(body: &[u8]) {
    if let Ok(view) = FragmentPayload::parse(body) {
        assert_ne!(view.number, 0);
        let out = emit_vec(&FragmentRepr::from_view(&view));
        assert_eq!(out.len(), body.len());
        let back = FragmentPayload::parse(&out).expect("an emitted fragment parses");
        assert_eq!(
            (back.id, back.number, back.is_last(), back.data),
            (view.id, view.number, view.is_last(), view.data)
        );
    }
}

/// IKE fragments fed to the engine, which holds a half-open initiator SA (its responder cookie is not known yet,
/// so fragments with any non-zero responder cookie reach its reassembly). The input is a list of records
/// `[op][id: u16][number][flags][len: u16][bytes]`: op 0 sends the bytes as the data of a fragment of our SA
/// (a first fragment's leading bytes get the SA's cookies, so that a completed message reaches Main Mode), op 1
/// the same with a zero responder cookie, op 2 the bytes as a raw datagram, op 3 lets the clock run `number`
/// seconds. Nothing may panic, and the counters must add up: every fragment received is at most once dropped
/// or once part of a reassembled message.
pub fn ike_fragments(data: &[u8]) {
    use hostsec_proto::ike::{Endpoint, Timing};
    use hostsec_proto::policy::{ConfigFiles, Policy};
    use hostsec_proto::wire::consts::exchange;
    use hostsec_proto::wire::PayloadWriter;
    use rand_chacha::rand_core::SeedableRng;
    use std::net::SocketAddr;
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    struct NoFiles;
    impl ConfigFiles for NoFiles {
        fn read_secret(&self, _: &std::path::Path) -> Result<Vec<u8>, String> {
            Err("none".into())
        }
    }
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        let text =
            "[[rule]]\nname = \"r\"\nremote = \"203.0.113.1\"\npsk = \"fuzz-psk-0123456789abcdef\"\nauto = \"none\"\n";
        Arc::new(Policy::from_toml("fuzz.toml", text, &NoFiles).expect("fuzz policy"))
    });
    let local: SocketAddr = "203.0.113.2:500".parse().expect("addr");
    let remote: SocketAddr = "203.0.113.1:500".parse().expect("addr");
    let mut ep = Endpoint::new(policy.clone(), Timing::default(), Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(9)));
    let mut now = Instant::now();
    let _ = ep.initiate(now, "r", Some(remote.ip()), local);
    let Some(mm1) = ep.poll_transmit() else { return };
    let Ok(ours) = Header::parse(&mm1.payload) else { return };
    let (cky_i, cky_r) = (ours.initiator_cookie, [0x5a; 8]);
    let mut rest = data;
    let mut records = 0;
    let mut fragments_sent = 0u64;
    let mut buf = vec![0u8; 70_000];
    while rest.len() >= 7 && records < 128 {
        records += 1;
        let (op, id, number, flags) = (rest[0] % 4, u16::from_be_bytes([rest[1], rest[2]]), rest[3], rest[4]);
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]])).min(rest.len() - 7);
        let mut bytes = rest[7..7 + len].to_vec();
        rest = &rest[7 + len..];
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
        let datagram = match op {
            0 | 1 => {
                let responder_cookie = if op == 0 { cky_r } else { [0; 8] };
                if number == 1 && bytes.len() >= 16 {
                    bytes[..8].copy_from_slice(&cky_i);
                    bytes[8..16].copy_from_slice(&responder_cookie);
                }
                // The flags byte is sent as it came; `last` only picks how the repr encodes it.
                let repr = FragmentRepr { id, number: number.max(1), last: flags & 1 != 0, data: bytes };
                let mut w = PayloadWriter::new(&mut buf[Header::LEN..]);
                if w.push(payload::FRAGMENT, &repr).is_err() {
                    continue;
                }
                let total = Header::LEN + w.len();
                let hdr = Header {
                    initiator_cookie: cky_i,
                    responder_cookie,
                    next_payload: payload::FRAGMENT,
                    version: ours.version,
                    exchange_type: exchange::IDENTITY_PROTECTION,
                    flags: 0,
                    message_id: 0,
                    length: total as u32,
                };
                hdr.emit(&mut buf).expect("header");
                buf[Header::LEN + 7] = flags;
                if number == 0 {
                    buf[Header::LEN + 6] = 0;
                }
                fragments_sent += 1;
                buf[..total].to_vec()
            }
            2 => {
                if Header::parse(&bytes).is_ok_and(|h| h.next_payload == payload::FRAGMENT) {
                    fragments_sent += 1;
                }
                bytes
            }
            _ => {
                now += Duration::from_secs(u64::from(number));
                ep.handle_timeout(now);
                continue;
            }
        };
        ep.handle(now, local, remote, &datagram);
    }
    let s = ep.stats();
    assert!(s.fragments_received <= fragments_sent, "{s:?}");
    assert!(s.dropped_fragments + s.reassembled <= s.fragments_received, "{s:?}");
}

/// Runs the records of [`ike_endpoint`] and [`authip_endpoint`] against `ep`: `[op][len: u16][bytes]`, op 0 the
/// bytes as they are, op 1 with our initiator cookie over CKY-I, op 2 with the responder cookie of the last message
/// we sent over CKY-R, op 3 a clock jump of `bytes[0]` seconds. Returns the clock at the end.
fn drive_records(
    ep: &mut hostsec_proto::ike::Endpoint,
    mut now: std::time::Instant,
    local: std::net::SocketAddr,
    remote: std::net::SocketAddr,
    data: &[u8],
) -> std::time::Instant {
    use std::time::Duration;
    let mut own_cky_i = [0u8; 8];
    let mut last_cky_r = [0u8; 8];
    let mut rest = data;
    let mut records = 0;
    while rest.len() >= 3 && records < 64 {
        records += 1;
        while let Some(t) = ep.poll_transmit() {
            if let Ok(h) = Header::parse(&t.payload) {
                if own_cky_i == [0; 8] {
                    own_cky_i = h.initiator_cookie;
                }
                last_cky_r = h.responder_cookie;
            }
        }
        while ep.poll_event().is_some() {}
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let mut msg = rest[3..3 + len].to_vec();
        rest = &rest[3 + len..];
        match op % 4 {
            1 if msg.len() >= 8 => msg[..8].copy_from_slice(&own_cky_i),
            2 if msg.len() >= 16 => msg[8..16].copy_from_slice(&last_cky_r),
            3 => {
                now += Duration::from_secs(u64::from(msg.first().copied().unwrap_or(1)));
                ep.handle_timeout(now);
                continue;
            }
            _ => {}
        }
        ep.handle(now, local, remote, &msg);
    }
    now
}

/// The whole IKE engine fed arbitrary datagrams: it holds a half-open initiator SA and answers as responder;
/// the input is a list of records `[op][len: u16][bytes]`. op 0 delivers the bytes as they are, op 1 with our
/// initiator cookie written over CKY-I (to reach the initiator's states), op 2 with the responder cookie of the
/// last message we sent written over CKY-R (to reach the responder's states), op 3 lets the clock run `bytes[0]`
/// seconds. Nothing may panic, and the engine's state must stay bounded.
pub fn ike_endpoint(data: &[u8]) {
    use hostsec_proto::ike::{Endpoint, Timing};
    use hostsec_proto::policy::{ConfigFiles, Policy};
    use rand_chacha::rand_core::SeedableRng;
    use std::net::SocketAddr;
    use std::sync::{Arc, OnceLock};
    use std::time::Instant;

    struct NoFiles;
    impl ConfigFiles for NoFiles {
        fn read_secret(&self, _: &std::path::Path) -> Result<Vec<u8>, String> {
            Err("none".into())
        }
    }
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        let text = "[[rule]]\nname = \"r\"\nremote = \"any\"\npsk = \"fuzz-psk-0123456789abcdef\"\nauto = \"none\"\npfs = true\n";
        Arc::new(Policy::from_toml("fuzz.toml", text, &NoFiles).expect("fuzz policy"))
    });
    let local: SocketAddr = "203.0.113.2:500".parse().expect("addr");
    let remote: SocketAddr = "203.0.113.1:500".parse().expect("addr");
    let mut ep = Endpoint::new(policy.clone(), Timing::default(), Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(7)));
    let now = Instant::now();
    let _ = ep.initiate(now, "r", Some(remote.ip()), local);
    let now = drive_records(&mut ep, now, local, remote, data);
    assert!(ep.main_mode_sas(now).len() <= 66, "state stays bounded by the input");
}

/// The IKE engine with an AuthIP rule (Anonymous) fed arbitrary datagrams, as [`ike_endpoint`] does for IKEv1:
/// it holds an AuthIP initiator Main Mode (its #1 sent) and answers AuthIP #1 as responder, with the DoS cookie
/// demanded from the second half-open SA on; records `[op][len: u16][bytes]` as there. Nothing may panic, and
/// the state must stay bounded.
pub fn authip_endpoint(data: &[u8]) {
    use hostsec_proto::ike::{Endpoint, Timing};
    use hostsec_proto::policy::{ConfigFiles, Policy};
    use rand_chacha::rand_core::SeedableRng;
    use std::net::SocketAddr;
    use std::sync::{Arc, OnceLock};
    use std::time::Instant;

    struct NoFiles;
    impl ConfigFiles for NoFiles {
        fn read_secret(&self, _: &std::path::Path) -> Result<Vec<u8>, String> {
            Err("none".into())
        }
    }
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        let text = "[[rule]]\nname = \"r\"\nremote = \"any\"\nkeying = \"authip\"\nauthentication = \"anonymous\"\nauto = \"none\"\npfs = true\n";
        Arc::new(Policy::from_toml("fuzz.toml", text, &NoFiles).expect("fuzz policy"))
    });
    let local: SocketAddr = "203.0.113.2:500".parse().expect("addr");
    let remote: SocketAddr = "203.0.113.1:500".parse().expect("addr");
    let mut ep = Endpoint::new(policy.clone(), Timing::default(), Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(7)));
    ep.authip().set_dos_thresholds(2, 1);
    let now = Instant::now();
    let _ = ep.initiate(now, "r", Some(remote.ip()), local);
    drive_records(&mut ep, now, local, remote, data);
    let (sas, half_open) = ep.authip().occupancy();
    assert!(sas <= 66 && half_open <= 66, "state stays bounded by the input");
}

/// The ESP inbound path (and the outbound one, to reach what lies behind authentication), with fixed SA keys.
/// The first byte picks the transform, the IP version and the mode:
///
/// - mode 0: the rest is a list of records `[len][bytes]`, each an outer packet given to `InboundSa::open` and to
///   `InboundTable::open` as it is: nothing may panic, and nothing random may authenticate.
/// - mode 1: the same, with the SA's SPI and addresses and protocol 50 written into each packet where its IP
///   header says, so that the replay check and the ICV verification run.
/// - mode 2: a script of records `[op][len][bytes]` run against an outbound/inbound SA pair: op 0 seals an inner
///   packet made from the bytes, op 1 delivers a sealed packet again (possibly a replay), op 2 delivers one with a
///   bit of its ESP part flipped, op 3 skips sequence numbers, op 4 seals `bytes[1..]` with next header
///   `bytes[0]` as raw ESP. Every result is compared with a reference model of the window: an authentic packet
///   opens to exactly the bytes that were sealed, or is a replay exactly when the model says so; a flipped one
///   never opens.
pub fn esp_open(data: &[u8]) {
    use hostsec_proto::crypto::{EspCipher, EspIntegrity, EspTransform, Secret};
    use hostsec_proto::esp::{
        DropReason, InboundSa, InboundTable, LifetimeLimits, OutboundSa, ReplayWindow, SaConfig, SaCounters,
        MAX_OVERHEAD,
    };
    use rand_chacha::rand_core::SeedableRng;
    use std::collections::BTreeSet;
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::Instant;

    const TRANSFORMS: [(EspCipher, EspIntegrity); 6] = [
        (EspCipher::AesGcm16_128, EspIntegrity::None),
        (EspCipher::AesGcm16_192, EspIntegrity::None),
        (EspCipher::AesGcm16_256, EspIntegrity::None),
        (EspCipher::AesCbc128, EspIntegrity::HmacSha1_96),
        (EspCipher::AesCbc192, EspIntegrity::HmacSha256_128),
        (EspCipher::AesCbc256, EspIntegrity::HmacSha256_128),
    ];
    const SPI: u32 = 0x0c0f_fee0;

    let Some((&selector, rest)) = data.split_first() else { return };
    let (cipher, integrity) = TRANSFORMS[usize::from(selector & 0x07) % TRANSFORMS.len()];
    let transform = EspTransform { cipher, integrity };
    let v6 = selector & 0x08 != 0;
    let mode = (selector >> 4) % 3;
    let (local, peer): (IpAddr, IpAddr) = if v6 {
        ("2001:db8::2".parse().expect("addr"), "2001:db8::1".parse().expect("addr"))
    } else {
        ("192.0.2.2".parse().expect("addr"), "192.0.2.1".parse().expect("addr"))
    };
    let config = |local, peer| SaConfig {
        spi: SPI,
        transform,
        encryption_key: Secret::new((0..transform.cipher.keymat_len() as u8).collect()),
        integrity_key: Secret::new((0..transform.integrity.key_len() as u8).map(|b| !b).collect()),
        local,
        peer,
        limits: LifetimeLimits::UNLIMITED,
        esn: false,
        counters: Arc::new(SaCounters::new()),
    };
    let mut inbound = InboundSa::new(&config(local, peer)).expect("inbound SA");
    let now = Instant::now();
    let mut out = vec![0u8; 70_000];

    if mode < 2 {
        let mut table = InboundTable::new();
        table.insert(InboundSa::new(&config(local, peer)).expect("inbound SA"));
        let mut rest = rest;
        while let Some((&len, tail)) = rest.split_first() {
            let len = usize::from(len).min(tail.len());
            let mut packet = tail[..len].to_vec();
            rest = &tail[len..];
            if mode == 1 {
                patch_esp_packet(&mut packet, local, peer, SPI);
            }
            for r in [inbound.open(now, &packet, &mut out).map(|_| ()), table.open(now, &packet, &mut out).map(|_| ())]
            {
                assert!(r.is_err(), "a packet made of fuzz bytes authenticated");
            }
        }
        assert_eq!(inbound.window().top(), 0, "nothing authenticated, so the window never moved");
        return;
    }

    // Mode 2: scripted traffic through a real SA pair.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let mut outbound = OutboundSa::new(&config(peer, local), &mut rng).expect("outbound SA");
    // (outer packet, the inner packet or ESP payload it must open to, sequence number, raw ESP?)
    let mut sealed: Vec<(Vec<u8>, Vec<u8>, u64, bool)> = Vec::new();
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    let mut top = 0u64;
    let mut rest = rest;
    let mut records = 0;
    while rest.len() >= 2 && records < 64 {
        records += 1;
        let op = rest[0] % 5;
        let len = usize::from(rest[1]).min(rest.len() - 2);
        let bytes = &rest[2..2 + len];
        rest = &rest[2 + len..];
        match op {
            0 | 4 => {
                if sealed.len() >= 32 {
                    continue;
                }
                let mut buf = vec![0u8; 2 * 255 + 100 + MAX_OVERHEAD];
                let sealed_one = if op == 0 {
                    let inner = inner_packet(v6, peer, local, bytes);
                    outbound.seal(now, &inner, &mut buf).map(|s| (s.packet.to_vec(), inner, s.seq, false))
                } else {
                    let (nh, payload) = bytes.split_first().map_or((6, &[][..]), |(n, p)| (*n, p));
                    let nh = if matches!(nh, 4 | 41 | 59) { 17 } else { nh };
                    outbound
                        .seal_esp(now, nh, payload, &mut buf)
                        .map(|s| (s.esp.to_vec(), payload.to_vec(), s.seq, true))
                };
                match sealed_one {
                    Ok(s) => sealed.push(s),
                    Err(e) => assert!(
                        matches!(e, DropReason::Malformed | DropReason::Fragment | DropReason::SequenceExhausted),
                        "seal refused a packet built to be valid: {e}"
                    ),
                }
            }
            1 | 2 => {
                let Some((packet, expected, seq, raw)) = bytes.first().and_then(|i| sealed.get(usize::from(*i) % 32))
                else {
                    continue;
                };
                let mut packet = packet.clone();
                let flip = op == 2 && bytes.len() >= 3;
                if flip {
                    // A bit after the SPI of the ESP part (the SPI only names another SA).
                    let esp_at = if *raw { 0 } else { esp_offset(&packet) };
                    let span = (packet.len() - esp_at - 4) * 8;
                    let bit = usize::from(u16::from_be_bytes([bytes[1], bytes[2]])) % span;
                    packet[esp_at + 4 + bit / 8] ^= 1 << (bit % 8);
                }
                let fresh = *seq != 0 && !seen.contains(seq) && (*seq > top || top - seq < ReplayWindow::SIZE);
                let result = if *raw {
                    inbound.open_esp(now, &packet, &mut out).map(|p| p.payload.to_vec())
                } else {
                    inbound.open(now, &packet, &mut out).map(|p| p.packet.to_vec())
                };
                match result {
                    Ok(opened) => {
                        assert!(!flip, "a packet with a flipped bit opened");
                        assert!(fresh, "seq {seq} opened twice or from left of the window");
                        assert_eq!(&opened, expected, "the packet did not open to what was sealed");
                        seen.insert(*seq);
                        top = top.max(*seq);
                    }
                    Err(DropReason::Replayed) => assert!(flip || !fresh, "seq {seq} refused as a replay"),
                    Err(DropReason::AuthenticationFailed) => assert!(flip, "an authentic packet failed"),
                    // An IPv6 packet whose extension headers lead to IPv4/IPv6/no next header carries 4, 41 or 59
                    // in its ESP trailer: refused by design, after authentication (so the window moved).
                    Err(DropReason::TunnelMode | DropReason::Dummy) if v6 && !raw && !flip && fresh => {
                        seen.insert(*seq);
                        top = top.max(*seq);
                    }
                    Err(e) => panic!("unexpected drop {e} (flipped: {flip})"),
                }
                assert_eq!(inbound.window().top(), top);
            }
            _ => {
                let skip = bytes.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)) & 0xffff_ffff;
                outbound.fast_forward_sequence(outbound.last_sequence().saturating_add(skip));
            }
        }
    }
}

/// Writes the SA's SPI, addresses and protocol 50 into a packet where its own header puts them (IPv4 or plain
/// IPv6; anything else is left alone).
fn patch_esp_packet(packet: &mut [u8], local: std::net::IpAddr, peer: std::net::IpAddr, spi: u32) {
    match (packet.first().map(|b| b >> 4), local, peer) {
        (Some(4), std::net::IpAddr::V4(l), std::net::IpAddr::V4(p)) if packet.len() >= 20 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            packet[6] &= 0x40; // no fragment
            packet[7] = 0;
            packet[9] = 50;
            packet[12..16].copy_from_slice(&p.octets());
            packet[16..20].copy_from_slice(&l.octets());
            let len = packet.len().min(0xffff) as u16;
            packet[2..4].copy_from_slice(&len.to_be_bytes());
            if let Some(s) = packet.get_mut(ihl..ihl + 4) {
                s.copy_from_slice(&spi.to_be_bytes());
            }
        }
        (Some(6), std::net::IpAddr::V6(l), std::net::IpAddr::V6(p)) if packet.len() >= 44 => {
            let len = (packet.len() - 40).min(0xffff) as u16;
            packet[4..6].copy_from_slice(&len.to_be_bytes());
            packet[6] = 50;
            packet[8..24].copy_from_slice(&p.octets());
            packet[24..40].copy_from_slice(&l.octets());
            packet[40..44].copy_from_slice(&spi.to_be_bytes());
        }
        _ => {}
    }
}

/// Offset of the ESP header in a packet made by `inner_packet` and sealed (IPv4 header or IPv6 header with the
/// extension headers the sender kept in front).
fn esp_offset(packet: &[u8]) -> usize {
    if packet[0] >> 4 == 4 {
        return usize::from(packet[0] & 0x0f) * 4;
    }
    let (mut next, mut at) = (packet[6], 40);
    while next != 50 {
        let len = if next == 44 { 8 } else { (usize::from(packet[at + 1]) + 1) * 8 };
        next = packet[at];
        at += len;
    }
    at
}

/// A valid inner packet from fuzz bytes: `[proto][payload...]` between the peer and us; IPv4 with a correct
/// checksum, or IPv6 (whose payload may then start with extension headers if `proto` says so).
fn inner_packet(v6: bool, src: std::net::IpAddr, dst: std::net::IpAddr, bytes: &[u8]) -> Vec<u8> {
    let (proto, payload) = bytes.split_first().map_or((6, &[][..]), |(p, rest)| (*p, rest));
    // Tunnel-mode and dummy next headers are refused by design on the way in: not what this target tests.
    let proto = if matches!(proto, 4 | 41 | 59) { 17 } else { proto };
    match (v6, src, dst) {
        (false, std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            let total = (20 + payload.len()) as u16;
            let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let mut sum: u32 = p.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(c[1])).sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            p.extend_from_slice(payload);
            p
        }
        (_, s, d) => {
            let (s, d) = match (s, d) {
                (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => (s.octets(), d.octets()),
                _ => ([0; 16], [0; 16]),
            };
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            p.extend_from_slice(&[proto, 64]);
            p.extend_from_slice(&s);
            p.extend_from_slice(&d);
            p.extend_from_slice(payload);
            p
        }
    }
}

/// An AuthIP datagram ([MS-AIPS] §2.2): `AuthipMessage::parse`, its typed payload chain, the classification
/// helpers, and the same bytes read as the decrypted content of an encrypted CRYPTO payload. Oracle: whatever
/// parses is emitted again and must give the input back byte for byte (up to the header's length), except the
/// fields the parser ignores (generic-header RESERVED bytes of the CRYPTO or single payload, fragment flag bits
/// other than "last"), and the emitted bytes must parse to the same value.
pub fn authip_message(data: &[u8]) {
    use hostsec_proto::authip::classify::{classify, ikev1_has_mamie_exists, recognise_vendor_id, Keying};
    use hostsec_proto::authip::{AuthipBody, AuthipMessage, AuthipMessageRepr, AuthipPayload, InnerPlaintext};
    use hostsec_proto::wire::consts::fragment::LAST;

    let keying = classify(data);
    if ikev1_has_mamie_exists(data) {
        assert_eq!(keying, Some(Keying::IkeV1));
    }
    if let Ok(m) = AuthipMessage::parse(data) {
        assert_eq!(keying, Some(Keying::AuthIp));
        let repr = AuthipMessageRepr::from_view(&m);
        let out = repr.to_vec().expect("a parsed AuthIP message must be emittable");
        let len = out.len();
        let mut want = data.get(..len).expect("emitted message longer than the input").to_vec();
        // RESERVED of the first payload's generic header (CRYPTO, or the lone Notify/fragment) is ignored.
        want[Header::LEN + 1] = 0;
        if let AuthipBody::Fragment(_) = m.body {
            want[Header::LEN + 7] &= LAST;
        }
        assert_eq!(out, want, "re-emitted AuthIP message differs");
        let back = AuthipMessage::parse(&out).expect("an emitted AuthIP message must parse");
        assert_eq!(AuthipMessageRepr::from_view(&back), repr);
        let mut count = 0;
        for p in m.clear_payloads() {
            count += 1;
            assert!(count <= MAX_PAYLOADS);
            if let AuthipPayload::Ike(p) = p.expect("a parsed message's chain is valid") {
                let _ = recognise_vendor_id(p.body);
            }
        }
    }
    if let Ok(inner) = InnerPlaintext::parse(data) {
        let mut rebuilt = inner.chain.to_vec();
        rebuilt.extend(1..=inner.pad_len);
        rebuilt.extend([inner.pad_len, inner.first]);
        assert_eq!(rebuilt, data, "decrypted CRYPTO content does not read back");
        for block in [1usize, 8, 16] {
            let p = InnerPlaintext::build(inner.first, inner.chain, block).expect("a parsed chain must seal");
            assert_eq!(InnerPlaintext::parse(&p).map(|i| (i.first, i.chain)), Ok((inner.first, inner.chain)));
        }
    }
}
