//! The strongSwan 5.9.8 known-answer vectors (Main Mode + Quick Mode, `vector.json`): every ISAKMP message and every
//! decrypted plaintext is parsed down to its payloads and compared with the vector's own reading; the SA, ID,
//! notification, CERT and CR payloads are re-emitted through their `*Repr` and must come out byte for byte, and so
//! must each whole cleartext message when rebuilt with [`PayloadWriter`].
//!
//! A vector is read from `tests/vectors/<dir>.json` when the repository carries it, else from
//! `../shared/vectors/<dir>/vector.json`; without either the test says SKIPPED.

mod support;

use hostsec_proto::wire::consts::{exchange, payload, protocol, DOI_IPSEC, ISAKMP_VERSION};
use hostsec_proto::wire::{
    AttrValue, CertPayload, CertRepr, CertRequestPayload, CertRequestRepr, Emit, Header, IdPayload, IdRepr,
    NotifyPayload, NotifyRepr, PayloadWriter, Payloads, RawPayload, SaPayload, SaRepr,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// The vectors.
fn vectors() -> Option<Vec<(&'static str, Value)>> {
    Some(support::vectors::all())
}

fn hex_field(v: &Value, path: &[&str]) -> Vec<u8> {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    let s = at.as_str().unwrap_or_else(|| panic!("{path:?} is not a string"));
    hex::decode(s).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The payload names used in `messages[].payloads`.
fn payload_type(name: &str) -> u8 {
    match name {
        "SA" => payload::SA,
        "KE" => payload::KE,
        "ID" => payload::ID,
        "CERT" => payload::CERT,
        "CR" => payload::CR,
        "HASH" => payload::HASH,
        "SIG" => payload::SIG,
        "NONCE" => payload::NONCE,
        "N" => payload::NOTIFY,
        "D" => payload::DELETE,
        "VID" => payload::VENDOR_ID,
        "NAT-D" => payload::NAT_D,
        other => panic!("unknown payload name {other}"),
    }
}

fn emit_vec(e: &dyn Emit) -> Vec<u8> {
    let mut out = vec![0u8; e.buffer_len()];
    e.emit(&mut out).expect("emit");
    out
}

/// The attributes of the single transform of the single proposal of an SA body, as {type: value}.
fn chosen_attributes(sa_body: &[u8]) -> (u8, BTreeMap<u16, u64>) {
    let sa = SaPayload::parse(sa_body).expect("SA");
    let proposals: Vec<_> = sa.proposals().collect::<Result<_, _>>().expect("proposals");
    assert_eq!(proposals.len(), 1);
    let transforms: Vec<_> = proposals[0].transforms().collect::<Result<_, _>>().expect("transforms");
    assert_eq!(transforms.len(), 1);
    let attributes = transforms[0]
        .attributes()
        .map(|a| {
            let a = a.expect("attribute");
            (a.kind, a.as_u64().expect("numeric attribute"))
        })
        .collect();
    (transforms[0].transform_id, attributes)
}

fn json_attributes(v: &Value) -> BTreeMap<u16, u64> {
    v.as_object()
        .expect("attribute map")
        .iter()
        .map(|(k, v)| (k.parse().expect("attribute type"), v.as_u64().expect("attribute value")))
        .collect()
}

/// Re-emits a typed payload through its `*Repr` and checks the bytes; returns whether the type has one.
fn round_trip(p: &RawPayload<'_>, at: &str) -> bool {
    let again = match p.kind {
        payload::SA => emit_vec(&SaRepr::parse(p.body).expect(at)),
        payload::ID => emit_vec(&IdRepr::from_view(&IdPayload::parse(p.body).expect(at))),
        payload::NOTIFY => emit_vec(&NotifyRepr::from_view(&NotifyPayload::parse(p.body).expect(at))),
        payload::CERT => {
            let c = CertPayload::parse(p.body).expect(at);
            emit_vec(&CertRepr { encoding: c.encoding, data: c.data.to_vec() })
        }
        payload::CR => {
            let c = CertRequestPayload::parse(p.body).expect(at);
            emit_vec(&CertRequestRepr { encoding: c.encoding, authority: c.authority.to_vec() })
        }
        _ => return false,
    };
    assert_eq!(again, p.body, "{at}: payload {} re-emitted", p.kind);
    true
}

/// Rebuilds a payload chain from its payloads with a `PayloadWriter`: (first payload type, bytes).
fn rebuild_chain(payloads: &[RawPayload<'_>]) -> (u8, Vec<u8>) {
    let len = payloads.iter().map(|p| p.body.len() + 4).sum();
    let mut buf = vec![0u8; len];
    let mut w = PayloadWriter::new(&mut buf);
    for p in payloads {
        w.push(p.kind, &p.body).expect("push");
    }
    assert_eq!(w.len(), len);
    let first = w.first_payload();
    (first, buf)
}

#[test]
fn messages_parse_as_strongswan_sent_them() {
    let Some(vectors) = vectors() else { return };
    let mut counts = BTreeMap::<&str, usize>::new();
    for (name, v) in &vectors {
        let messages = v["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 9, "{name}: MM1-MM6 and QM1-QM3");
        for m in messages {
            let label = m["label"].as_str().expect("label");
            let at = format!("{name} {label}");
            let msg = hex_field(m, &["isakmp"]);
            let (header, body) = Header::split(&msg).expect(&at);
            assert_eq!(header.length as usize, msg.len(), "{at}");
            assert_eq!(header.version, ISAKMP_VERSION, "{at}");
            assert_eq!(hex::encode(header.initiator_cookie), v["phase1"]["CKY_I"], "{at}");
            let quick = label.starts_with("QM");
            let expected_exchange = if quick { exchange::QUICK_MODE } else { exchange::IDENTITY_PROTECTION };
            assert_eq!(header.exchange_type, expected_exchange, "{at}");
            if quick {
                assert_eq!(u64::from(header.message_id), v["phase2"]["message_id"].as_u64().expect("mid"), "{at}");
            } else {
                assert_eq!(header.message_id, 0, "{at}");
            }

            let expected: Vec<u8> = m["payloads"]
                .as_array()
                .expect("payloads")
                .iter()
                .map(|n| payload_type(n.as_str().expect("payload name")))
                .collect();
            // Cleartext messages carry the chain; encrypted ones (E flag) have it in the decrypted plaintext,
            // followed by the padding (RFC 2409 §5.3: the header length covers it).
            let (chain_bytes, padding) = if header.is_encrypted() {
                assert_eq!(body.len() % 16, 0, "{at}: AES-CBC ciphertext");
                (hex_field(m, &["plaintext"]), hex_field(m, &["padding"]))
            } else {
                (body.to_vec(), vec![])
            };
            let mut chain = Payloads::new(header.next_payload, &chain_bytes);
            let payloads: Vec<RawPayload<'_>> = chain.by_ref().collect::<Result<_, _>>().expect(&at);
            assert_eq!(chain.remainder(), &padding[..], "{at}: padding");
            let kinds: Vec<u8> = payloads.iter().map(|p| p.kind).collect();
            assert_eq!(kinds, expected, "{at}: payload types");

            for p in &payloads {
                *counts.entry("payloads").or_default() += 1;
                if round_trip(p, &at) {
                    *counts.entry("re-emitted").or_default() += 1;
                }
            }
            let (first, rebuilt) = rebuild_chain(&payloads);
            assert_eq!(first, header.next_payload, "{at}");
            assert_eq!(rebuilt, chain_bytes[..rebuilt.len()], "{at}: chain rebuilt");
            if !header.is_encrypted() {
                let mut whole = vec![0u8; msg.len()];
                header.emit(&mut whole).expect("header");
                whole[Header::LEN..].copy_from_slice(&rebuilt);
                assert_eq!(whole, msg, "{at}: message rebuilt");
                *counts.entry("cleartext messages rebuilt").or_default() += 1;
            } else {
                *counts.entry("plaintexts").or_default() += 1;
            }
            check_known_values(v, label, &payloads, &at);
        }
    }
    eprintln!("vectors: {counts:?}");
    assert_eq!(counts.get("cleartext messages rebuilt"), Some(&36));
    assert_eq!(counts.get("plaintexts"), Some(&45));
}

/// The payload bodies that the vector lists on their own (SAi_b, Ni_b, IDii_b...) are where they should be.
fn check_known_values(v: &Value, label: &str, payloads: &[RawPayload<'_>], at: &str) {
    let body_of = |kind: u8| payloads.iter().find(|p| p.kind == kind).map(|p| p.body.to_vec());
    let mut checks: Vec<(u8, Vec<u8>)> = Vec::new();
    match label {
        "MM1" => checks.push((payload::SA, hex_field(v, &["phase1", "SAi_b"]))),
        "MM2" => checks.push((payload::SA, hex_field(v, &["phase1", "SAr_b"]))),
        "MM3" => {
            checks.push((payload::KE, hex_field(v, &["phase1", "g_xi"])));
            checks.push((payload::NONCE, hex_field(v, &["phase1", "Ni_b"])));
        }
        "MM4" => {
            checks.push((payload::KE, hex_field(v, &["phase1", "g_xr"])));
            checks.push((payload::NONCE, hex_field(v, &["phase1", "Nr_b"])));
        }
        "MM5" | "MM6" => {
            let (id, cert) = if label == "MM5" { ("IDii_b", "CERT_I") } else { ("IDir_b", "CERT_R") };
            checks.push((payload::ID, hex_field(v, &["phase1", id])));
            if v["phase1"].get(cert).is_some() {
                let cert_body = body_of(payload::CERT).expect(at);
                let c = CertPayload::parse(&cert_body).expect(at);
                assert_eq!(u64::from(c.encoding), v["phase1"][format!("{cert}_encoding")].as_u64().expect(at));
                assert_eq!(c.data, hex_field(v, &["phase1", cert]), "{at}: certificate");
            }
            if let Some(n) = body_of(payload::NOTIFY) {
                // INITIAL-CONTACT about the new ISAKMP SA: its SPI is CKY-I | CKY-R (RFC 2407 §4.6.3.3).
                let n = NotifyPayload::parse(&n).expect(at);
                assert_eq!((n.doi, n.protocol_id), (DOI_IPSEC, protocol::ISAKMP), "{at}");
                let cookies = [hex_field(v, &["phase1", "CKY_I"]), hex_field(v, &["phase1", "CKY_R"])].concat();
                assert_eq!(n.spi, cookies, "{at}: notification SPI");
            }
        }
        "QM1" | "QM2" => {
            let (sa, nonce, ke) = if label == "QM1" { ("SA_i_b", "Ni_b", "KEi") } else { ("SA_r_b", "Nr_b", "KEr") };
            checks.push((payload::SA, hex_field(v, &["phase2", sa])));
            checks.push((payload::NONCE, hex_field(v, &["phase2", nonce])));
            if v["phase2"].get(ke).is_some() {
                checks.push((payload::KE, hex_field(v, &["phase2", ke])));
            }
            let ids: Vec<_> = payloads.iter().filter(|p| p.kind == payload::ID).map(|p| p.body).collect();
            assert_eq!(ids, [hex_field(v, &["phase2", "IDci_b"]), hex_field(v, &["phase2", "IDcr_b"])], "{at}");
        }
        _ => {}
    }
    for (kind, expected) in checks {
        assert_eq!(body_of(kind).as_ref(), Some(&expected), "{at}: payload {kind}");
    }
}

#[test]
fn sa_payloads_round_trip_and_hold_the_chosen_transform() {
    let Some(vectors) = vectors() else { return };
    for (name, v) in &vectors {
        for (phase, key) in [("phase1", "SAi_b"), ("phase1", "SAr_b"), ("phase2", "SA_i_b"), ("phase2", "SA_r_b")] {
            let body = hex_field(v, &[phase, key]);
            let repr = SaRepr::parse(&body).unwrap_or_else(|e| panic!("{name} {key}: {e}"));
            assert_eq!((repr.doi, repr.situation), (DOI_IPSEC, 1), "{name} {key}");
            assert_eq!(repr.buffer_len(), body.len(), "{name} {key}");
            assert_eq!(emit_vec(&repr), body, "{name} {key}: re-emitted");
        }
        // Phase 1: the responder's single transform is the one the vector says was chosen.
        let (transform_id, attrs) = chosen_attributes(&hex_field(v, &["phase1", "SAr_b"]));
        assert_eq!(transform_id, hostsec_proto::wire::consts::KEY_IKE, "{name}");
        assert_eq!(attrs, json_attributes(&v["phase1"]["selected_transform"]), "{name}");
        // Phase 2: ESP with the responder's SPI, and the chosen transform.
        let sa_r = SaRepr::parse(&hex_field(v, &["phase2", "SA_r_b"])).expect("SA_r_b");
        assert_eq!(sa_r.proposals[0].protocol_id, protocol::ESP, "{name}");
        assert_eq!(sa_r.proposals[0].spi, hex_field(v, &["phase2", "SPI_r"]), "{name}");
        let (transform_id, attrs) = chosen_attributes(&hex_field(v, &["phase2", "SA_r_b"]));
        assert_eq!(u64::from(transform_id), v["phase2"]["selected_transform_id"].as_u64().expect("id"), "{name}");
        assert_eq!(attrs, json_attributes(&v["phase2"]["selected_transform_attrs"]), "{name}");
        // strongSwan sends its lifetimes as basic attributes (both below 65536 s).
        let sa_i_body = hex_field(v, &["phase1", "SAi_b"]);
        let sa_i = SaPayload::parse(&sa_i_body).expect("SAi_b");
        let p = sa_i.proposals().next().expect("proposal").expect("proposal");
        let t = p.transforms().next().expect("transform").expect("transform");
        assert!(t.attributes().all(|a| matches!(a.map(|a| a.value), Ok(AttrValue::Basic(_)))), "{name}");
    }
}

#[test]
fn vector_ids_parse() {
    let Some(vectors) = vectors() else { return };
    for (name, v) in &vectors {
        for (phase, key) in [("phase1", "IDii_b"), ("phase1", "IDir_b"), ("phase2", "IDci_b"), ("phase2", "IDcr_b")] {
            let body = hex_field(v, &[phase, key]);
            let id = IdPayload::parse(&body).unwrap_or_else(|e| panic!("{name} {key}: {e}"));
            // RFC 2407 §4.6.2: strongSwan leaves protocol and port at 0 ("any").
            assert_eq!((id.protocol, id.port), (0, 0), "{name} {key}");
            assert_eq!(emit_vec(&IdRepr::from_view(&id)), body, "{name} {key}");
            if let Some(addr) = id.address() {
                assert_eq!(emit_vec(&IdRepr::from_ip(addr)), body, "{name} {key}");
            }
        }
    }
}
