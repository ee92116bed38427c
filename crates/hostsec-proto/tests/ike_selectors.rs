//! Traffic selectors in Quick Mode, two endpoints in memory on a virtual clock: the IDs on the wire carry the
//! rule's protocol and port, the responder refuses IDs outside the rule that governs their traffic, several SAs
//! for different traffic coexist with one peer (and rekey one by one), and `rule test` negotiates beside them.

mod support;

use hostsec_proto::crypto::cipher::cbc_decrypt;
use hostsec_proto::crypto::keys::exchange_iv;
use hostsec_proto::crypto::{DhGroup, EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, MainModeSuite};
use hostsec_proto::ike::{Event, Flow, QuickModeSaInfo, Selector};
use hostsec_proto::policy::{OfferRestriction, Policy, PortRange};
use std::time::Duration;
use support::{Fate, Pair};

const PSK: &str = "selector-pair-psk-0123456789";

/// A policy with rule `r` (require, towards `peer`) and, when `rest`, a `bypass` rule for the rest of that peer.
/// `tweak` sets the selectors of `r`.
fn policy(peer: &str, rest: bool, tweak: impl Fn(&mut hostsec_proto::policy::Rule)) -> Policy {
    let mut text = format!(
        "[defaults]\npsk = \"{PSK}\"\nauto = \"none\"\n[[rule]]\nname = \"r\"\nremote = \"{peer}\"\naction = \"require\"\n"
    );
    if rest {
        text.push_str(&format!("[[rule]]\nname = \"rest\"\nremote = \"{peer}\"\naction = \"bypass\"\n"));
    }
    let mut p = support::policy(&text);
    tweak(&mut p.rules[0]);
    p
}

fn ports(list: &[u16]) -> Vec<PortRange> {
    list.iter().map(|p| PortRange { first: *p, last: *p }).collect()
}

fn tcp(rule: &mut hostsec_proto::policy::Rule, local: &[u16], remote: &[u16]) {
    rule.protocol = Some(6);
    rule.local_ports = ports(local);
    rule.remote_ports = ports(remote);
}

fn sel(protocol: u8, local_port: u16, remote_port: u16) -> Selector {
    Selector { protocol, local_port, remote_port }
}

fn selectors(sas: &[QuickModeSaInfo]) -> Vec<Selector> {
    let mut v: Vec<Selector> = sas.iter().map(|q| q.selector).collect();
    v.sort();
    v
}

fn failures(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::NegotiationFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// The bodies of the ID payloads of the first Quick Mode message on the wire, decrypted with the initiator's
/// phase-1 key (from its `MainModeUp` event) and the IV chain of RFC 2409 appendix B (the last CBC block of MM6).
fn qm1_ids(pair: &Pair) -> Vec<Vec<u8>> {
    let (key, cipher, hash) = pair
        .events_a
        .iter()
        .find_map(|e| match e {
            Event::MainModeUp { info, encryption_key } => {
                Some((encryption_key.clone(), info.encryption.unwrap(), info.hash.unwrap()))
            }
            _ => None,
        })
        .expect("a's Main Mode is up");
    let mm: Vec<&Vec<u8>> = pair.wire.iter().filter(|f| f.t.payload[18] == 2).map(|f| &f.t.payload).collect();
    let mm6 = mm[5];
    let last_block: [u8; 16] = mm6[mm6.len() - 16..].try_into().unwrap();
    let qm1 = &pair.wire.iter().find(|f| f.from_a && f.t.payload[18] == 32).expect("QM1").t.payload;
    let msg_id = u32::from_be_bytes(qm1[20..24].try_into().unwrap());
    let iv = exchange_iv(hash, &last_block, msg_id);
    let mut body = qm1[28..].to_vec();
    cbc_decrypt(cipher, key.expose(), &iv, &mut body).unwrap();
    // Walk the generic payload headers (RFC 2408 §3.2) from the header's next payload.
    let (mut next, mut at, mut ids) = (qm1[16], 0usize, Vec::new());
    while next != 0 {
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        if next == 5 {
            ids.push(body[at + 4..at + len].to_vec());
        }
        next = body[at];
        at += len;
    }
    ids
}

#[test]
fn quick_mode_ids_carry_the_rules_protocol_and_port() {
    // a connects to b's port 9100: a's rule names the remote port, b's the local one.
    let mut pair = Pair::new(
        policy("198.51.100.2", true, |r| tcp(r, &[], &[9100])),
        policy("198.51.100.1", true, |r| tcp(r, &[9100], &[])),
        31,
    );
    pair.initiate_a();
    pair.settle();
    assert!(failures(&pair.events_a).is_empty() && failures(&pair.events_b).is_empty(), "{:#?}", pair.events_b);
    assert_eq!(selectors(&pair.a.quick_mode_sas(pair.now)), vec![sel(6, 0, 9100)]);
    assert_eq!(selectors(&pair.b.quick_mode_sas(pair.now)), vec![sel(6, 9100, 0)], "the peer's proposal, mirrored");
    let ids = qm1_ids(&pair);
    assert_eq!(ids, vec![vec![1, 6, 0, 0, 198, 51, 100, 1], vec![1, 6, 0x23, 0x8c, 198, 51, 100, 2]]);
}

#[test]
fn rules_without_selectors_keep_protocol_and_port_zero() {
    let mut pair = Pair::new(policy("198.51.100.2", false, |_| {}), policy("198.51.100.1", false, |_| {}), 32);
    pair.initiate_a();
    pair.settle();
    assert_eq!(selectors(&pair.a.quick_mode_sas(pair.now)), vec![Selector::ANY]);
    assert_eq!(qm1_ids(&pair), vec![vec![1, 0, 0, 0, 198, 51, 100, 1], vec![1, 0, 0, 0, 198, 51, 100, 2]]);
}

#[test]
fn the_responder_refuses_ids_outside_its_rule_and_says_which_field() {
    // a asks for all traffic; b protects tcp/9100 only and lets the rest bypass.
    let mut pair =
        Pair::new(policy("198.51.100.2", false, |_| {}), policy("198.51.100.1", true, |r| tcp(r, &[9100], &[])), 33);
    let req = pair.initiate_a();
    pair.settle();
    let b = failures(&pair.events_b);
    assert!(
        b.iter().any(|r| r.contains("protocol = tcp of rule 'r' excludes all other protocols")
            && r.contains("rule 'rest', action bypass, governs it")),
        "{b:#?}"
    );
    let a_reason = pair.events_a.iter().find_map(|e| match e {
        Event::NegotiationFailed { request: Some(r), reason, .. } if *r == req => Some(reason.clone()),
        _ => None,
    });
    assert!(a_reason.expect("a's request fails").contains("INVALID-ID-INFORMATION"));
    assert!(pair.a.quick_mode_sas(pair.now).is_empty() && pair.b.quick_mode_sas(pair.now).is_empty());

    // a asks for tcp port 80 of b; b's rule lists 9100 only.
    let mut pair = Pair::new(
        policy("198.51.100.2", true, |r| tcp(r, &[], &[80])),
        policy("198.51.100.1", true, |r| tcp(r, &[9100], &[])),
        34,
    );
    pair.initiate_a();
    pair.settle();
    let b = failures(&pair.events_b);
    assert!(b.iter().any(|r| r.contains("local_ports = [9100] of rule 'r' excludes port 80")), "{b:#?}");
    assert!(pair.b.quick_mode_sas(pair.now).is_empty());
}

#[test]
fn sas_for_different_ports_and_rules_coexist_and_rekey_one_by_one() {
    let snmp = |peer: &str, local: bool| {
        let mut p = policy(peer, true, |r| if local { tcp(r, &[9100, 631], &[]) } else { tcp(r, &[], &[9100, 631]) });
        let mut s = p.rules[0].clone();
        s.name = "snmp".into();
        s.protocol = Some(17);
        (s.local_ports, s.remote_ports) = if local { (ports(&[161]), vec![]) } else { (vec![], ports(&[161])) };
        p.rules.insert(1, s);
        p
    };
    let mut pair = Pair::new(snmp("198.51.100.2", false), snmp("198.51.100.1", true), 35);
    let flow = |port: u16| Flow {
        local: "198.51.100.1".parse().unwrap(),
        remote: "198.51.100.2".parse().unwrap(),
        protocol: 6,
        local_port: 40000 + port % 100,
        remote_port: port,
    };
    // Two packets for two ports of the rule (on demand): two SAs, one per port.
    pair.a.acquire(pair.now, "r", &flow(9100), Pair::addr_a()).unwrap();
    pair.a.acquire(pair.now, "r", &flow(631), Pair::addr_a()).unwrap();
    pair.settle();
    // Another packet for port 9100 finds the SA there.
    let again = pair.a.acquire(pair.now, "r", &flow(9100), Pair::addr_a()).unwrap();
    // And another rule of the same peer, for udp/161.
    pair.a.initiate(pair.now, "snmp", None, Pair::addr_a()).unwrap();
    pair.settle();
    assert!(failures(&pair.events_a).is_empty() && failures(&pair.events_b).is_empty(), "{:#?}", pair.events_b);
    assert!(pair.events_a.iter().any(|e| matches!(e, Event::RequestDone { request, .. } if *request == again)));
    let want_a = vec![sel(6, 0, 631), sel(6, 0, 9100), sel(17, 0, 161)];
    assert_eq!(selectors(&pair.a.quick_mode_sas(pair.now)), want_a);
    assert_eq!(selectors(&pair.b.quick_mode_sas(pair.now)), vec![sel(6, 631, 0), sel(6, 9100, 0), sel(17, 161, 0)]);
    let rules: Vec<String> = pair.b.quick_mode_sas(pair.now).iter().map(|q| q.rule.clone()).collect();
    assert!(rules.contains(&"snmp".to_string()), "b runs udp/161 under its rule snmp: {rules:?}");

    // Rekeying the 9100 SA replaces that one only.
    let old = pair.a.quick_mode_sas(pair.now).into_iter().find(|q| q.selector == sel(6, 0, 9100)).unwrap();
    pair.a.rekey(pair.now, old.spi_in, true).expect("rekey");
    pair.drive_for(Duration::from_secs(1));
    // The peer's first packets on the successor (the daemon's usage poll) let the old pair retire after the overlap.
    let successor =
        pair.a.quick_mode_sas(pair.now).into_iter().find(|q| q.selector == sel(6, 0, 9100) && q.spi_in != old.spi_in);
    assert!(pair.a.child_used(pair.now, successor.expect("the successor is up").spi_in, true));
    pair.drive_for(Duration::from_secs(30));
    let now_a = pair.a.quick_mode_sas(pair.now);
    assert_eq!(selectors(&now_a), want_a, "the successor has the same selector, the others are untouched");
    assert!(now_a.iter().all(|q| q.spi_in != old.spi_in), "the old 9100 SA retired after the overlap");
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 3);
}

fn established_spis(sas: &[QuickModeSaInfo]) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = sas.iter().map(|q| (q.spi_in, q.spi_out)).collect();
    v.sort_unstable();
    v
}

#[test]
fn rule_test_negotiates_beside_the_sas_in_use_and_deletes_its_own() {
    let mut pair = Pair::new(policy("198.51.100.2", false, |_| {}), policy("198.51.100.1", false, |_| {}), 36);
    pair.initiate_a();
    pair.settle();
    let (qa, qb) =
        (established_spis(&pair.a.quick_mode_sas(pair.now)), established_spis(&pair.b.quick_mode_sas(pair.now)));
    let cookies: Vec<[u8; 8]> = pair.a.main_mode_sas(pair.now).iter().map(|m| m.cookie_i).collect();
    let test = pair.a.test_rule(pair.now, "r", None, Pair::addr_a()).unwrap();
    pair.settle();
    let verdict = pair.events_a.iter().find_map(|e| match e {
        Event::RequestDone { request, verdict, .. } if *request == test => Some(verdict.clone()),
        _ => None,
    });
    let verdict = verdict.expect("the test reports");
    assert!(verdict.starts_with("established with 198.51.100.2 under rule 'r'"), "{verdict}");
    assert!(verdict.contains("auth psk") && verdict.contains("Quick Mode ESP"), "{verdict}");
    // A fresh Main Mode was negotiated (not the one in use), without INITIAL-CONTACT.
    assert_eq!(pair.events_a.iter().filter(|e| matches!(e, Event::MainModeUp { .. })).count(), 2);
    assert!(!pair
        .events_b
        .iter()
        .any(|e| matches!(e, Event::QuickModeDown { reason, .. } if reason.contains("INITIAL"))));
    // Only the SAs in use are left, on both sides, untouched.
    assert_eq!(established_spis(&pair.a.quick_mode_sas(pair.now)), qa);
    assert_eq!(established_spis(&pair.b.quick_mode_sas(pair.now)), qb, "b deleted the test SA on DELETE");
    let left: Vec<[u8; 8]> = pair.a.main_mode_sas(pair.now).iter().map(|m| m.cookie_i).collect();
    assert_eq!(left, cookies);
    assert_eq!(pair.b.main_mode_sas(pair.now).len(), 1, "b deleted the test Main Mode SA on DELETE");
    assert!(!pair.events_a.iter().any(|e| matches!(e, Event::QuickModeDown { .. })), "no SA in use went down");
}

#[test]
fn rule_test_reports_a_refusal_and_a_silent_peer() {
    // b asks for level high; a offers a standard-only suite.
    let weak = MainModeSuite { cipher: IkeCipher::AesCbc128, hash: HashAlg::Sha1, group: DhGroup::Modp2048 };
    let cbc = EspTransform { cipher: EspCipher::AesCbc128, integrity: EspIntegrity::HmacSha1_96 };
    let mut pa = policy("198.51.100.2", false, |_| {});
    pa.rules[0].offer_restriction = Some(OfferRestriction { main_mode: vec![weak], esp: vec![cbc] });
    let mut pb = policy("198.51.100.1", false, |_| {});
    pb.rules[0].minimum_strength = hostsec_proto::crypto::StrengthLevel::High;
    let mut pair = Pair::new(pa, pb, 37);
    let test = pair.a.test_rule(pair.now, "r", None, Pair::addr_a()).unwrap();
    pair.settle();
    let reason = pair.events_a.iter().find_map(|e| match e {
        Event::NegotiationFailed { request: Some(r), reason, .. } if *r == test => Some(reason.clone()),
        _ => None,
    });
    let reason = reason.expect("the test reports");
    assert!(reason.starts_with("refused: ") && reason.contains("NO-PROPOSAL-CHOSEN"), "{reason}");
    assert!(pair.a.main_mode_sas(pair.now).is_empty());

    // A peer that never answers.
    let mut pair = Pair::new(policy("198.51.100.2", false, |_| {}), policy("198.51.100.1", false, |_| {}), 38);
    pair.fate = Box::new(|_, f| if f.from_a { Fate::Drop } else { Fate::Deliver });
    let test = pair.a.test_rule(pair.now, "r", None, Pair::addr_a()).unwrap();
    pair.drive_for(Duration::from_secs(600));
    let reason = pair.events_a.iter().find_map(|e| match e {
        Event::NegotiationFailed { request: Some(r), reason, .. } if *r == test => Some(reason.clone()),
        _ => None,
    });
    let reason = reason.expect("the test reports");
    assert!(reason.starts_with("no answer from 198.51.100.2 after 5 retransmissions"), "{reason}");
}
