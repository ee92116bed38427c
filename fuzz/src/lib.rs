//! What every fuzz target checks: parsing never panics, and whatever parses can be emitted again and parses back
//! to the same value (the `*Repr` round trip), so that a parser and its encoder cannot drift apart.

use hostsec_proto::wire::consts::payload;
use hostsec_proto::wire::{
    AttrValue, CertPayload, CertRepr, CertRequestPayload, CertRequestRepr, DeletePayload, DeleteRepr, Emit, Header,
    IdPayload, IdRepr, NatOaPayload, NatOaRepr, NotifyPayload, NotifyRepr, Payloads, SaPayload, SaRepr, MAX_ATTRIBUTES,
    MAX_PAYLOADS, MAX_PROPOSALS, MAX_TRANSFORMS,
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
    use std::time::{Duration, Instant};

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
    let mut now = Instant::now();
    let _ = ep.initiate(now, "r", Some(remote.ip()), local);
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
    assert!(ep.main_mode_sas(now).len() <= 66, "state stays bounded by the input");
}
