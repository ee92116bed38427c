//! The IKE responder fed real first messages from strongSwan (the known-answer vectors): it must choose exactly
//! the transform strongSwan's own responder chose, byte for byte, or refuse with the right reason.

mod support;

use hostsec_proto::ike::Event;
use hostsec_proto::wire::consts::payload;
use hostsec_proto::wire::{Header, Payloads};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Instant;

#[test]
fn answers_strongswan_mm1_with_the_transform_strongswan_chose() {
    let vs: Vec<Value> = support::vectors::all().into_iter().map(|(_, v)| v).collect();
    assert_eq!(vs.len(), 9);
    let (mut psk_seen, mut cert_seen) = (0, 0);
    for v in vs {
        let name = v["name"].as_str().unwrap().to_string();
        let init_addr = v["roles"]["initiator"]["address"].as_str().unwrap();
        let resp_addr = v["roles"]["responder"]["address"].as_str().unwrap();
        let policy = support::rule_policy(init_addr, "");
        let mut ep = hostsec_proto::ike::Endpoint::new(
            std::sync::Arc::new(policy),
            hostsec_proto::ike::Timing::default(),
            Box::new(<rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(1)),
        );
        let mm1 = hex::decode(v["messages"][0]["isakmp"].as_str().unwrap()).unwrap();
        let local: SocketAddr = format!("{resp_addr}:500").parse().unwrap();
        let remote: SocketAddr = format!("{init_addr}:500").parse().unwrap();
        ep.handle(Instant::now(), local, remote, &mm1);
        let out = ep.poll_transmit().expect("an answer");
        let hdr = Header::parse(&out.payload).unwrap();
        let psk = v["auth"].as_str().unwrap_or("").contains("psk") || v["psk"].is_object();
        if psk {
            psk_seen += 1;
            assert_eq!(hdr.exchange_type, 2, "{name}: answered with MM2");
            let sa = Payloads::new(hdr.next_payload, &out.payload[28..])
                .map(|p| p.unwrap())
                .find(|p| p.kind == payload::SA)
                .expect("MM2 carries an SA");
            let sar_b = hex::decode(v["phase1"]["SAr_b"].as_str().unwrap()).unwrap();
            assert_eq!(hex::encode(sa.body), hex::encode(&sar_b), "{name}: our MM2 SA equals strongSwan's MM2 SA");
        } else {
            cert_seen += 1;
            // Certificate vectors offer signature authentication only; this PSK rule must refuse and say why.
            assert_eq!(hdr.exchange_type, 5, "{name}: answered with a notification");
            let reason = std::iter::from_fn(|| ep.poll_event())
                .find_map(|e| match e {
                    Event::NegotiationFailed { reason, .. } => Some(reason),
                    _ => None,
                })
                .expect("a refusal event");
            assert!(reason.contains("is not what the rule uses (psk)"), "{name}: {reason}");
        }
    }
    assert_eq!((psk_seen, cert_seen), (6, 3));
}
