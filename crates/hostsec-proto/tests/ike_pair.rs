//! Two IKE endpoints in memory on a virtual clock: every DH group, every ESP transform, with and without PFS,
//! both roles; loss, duplication and reordering; refusals; deletes; lifetimes; INITIAL-CONTACT.

mod support;

use hostsec_proto::crypto::{
    DhGroup, EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, MainModeSuite, StrengthLevel,
};
use hostsec_proto::ike::{Endpoint, Event, Timing};
use hostsec_proto::policy::{OfferRestriction, Policy};
use rand_chacha::rand_core::SeedableRng;
use std::sync::Arc;
use std::time::Duration;
use support::{child_keys, rule_policy, Fate, Pair};

fn restricted(mut p: Policy, suite: MainModeSuite, esp: EspTransform) -> Policy {
    p.rules[0].offer_restriction = Some(OfferRestriction { main_mode: vec![suite], esp: vec![esp] });
    p
}

fn count<F: Fn(&Event) -> bool>(events: &[Event], f: F) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn mm_up(e: &Event) -> bool {
    matches!(e, Event::MainModeUp { .. })
}

/// Checks that each side has exactly `n` Quick Mode SAs and that their SPIs and keys mirror each other.
fn assert_mirrored(pair: &Pair, n: usize) {
    let ka = child_keys(&pair.events_a);
    let kb = child_keys(&pair.events_b);
    assert_eq!(ka.len(), n, "a: {:#?}", pair.events_a);
    assert_eq!(kb.len(), n, "b: {:#?}", pair.events_b);
    for (spi_in, spi_out, ein, iin, eout, iout) in &ka {
        let peer = kb.iter().find(|k| k.0 == *spi_out).expect("b has the SA that a sends on");
        assert_eq!(peer.1, *spi_in);
        assert_eq!(peer.2, *eout, "a's outbound encryption key = b's inbound");
        assert_eq!(peer.3, *iout);
        assert_eq!(peer.4, *ein);
        assert_eq!(peer.5, *iin);
    }
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), n);
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), n);
}

fn all_esp() -> Vec<EspTransform> {
    StrengthLevel::Standard.esp_transforms()
}

#[test]
fn every_group_and_transform_with_and_without_pfs_in_both_roles() {
    let mut seed = 1;
    for group in DhGroup::ALL {
        for (i, esp) in all_esp().into_iter().enumerate() {
            for pfs in [false, true] {
                // Alternate which endpoint initiates, and vary cipher and hash, so that both roles see every group.
                let a_initiates = (i + usize::from(pfs)) % 2 == 0;
                let cipher = [IkeCipher::AesCbc128, IkeCipher::AesCbc192, IkeCipher::AesCbc256][i % 3];
                let hash = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384][(i / 3) % 3];
                let suite = MainModeSuite { cipher, hash, group };
                let extra = if pfs { "pfs = true" } else { "" };
                let (pi, pr) = (
                    restricted(
                        rule_policy(if a_initiates { "198.51.100.2" } else { "198.51.100.1" }, extra),
                        suite,
                        esp,
                    ),
                    rule_policy(if a_initiates { "198.51.100.1" } else { "198.51.100.2" }, extra),
                );
                let mut pair = if a_initiates { Pair::new(pi, pr, seed) } else { Pair::new(pr, pi, seed) };
                seed += 1;
                if a_initiates {
                    pair.initiate_a();
                } else {
                    pair.b.initiate(pair.now, "r", None, Pair::addr_b()).unwrap();
                }
                pair.settle();
                let ctx = format!("group {group} esp {esp} pfs {pfs} a_initiates {a_initiates}");
                assert_eq!(count(&pair.events_a, mm_up), 1, "{ctx}: {:#?}", pair.events_a);
                assert_eq!(count(&pair.events_b, mm_up), 1, "{ctx}: {:#?}", pair.events_b);
                assert_mirrored(&pair, 1);
                for sas in [pair.a.main_mode_sas(pair.now), pair.b.main_mode_sas(pair.now)] {
                    assert_eq!(sas.len(), 1, "{ctx}");
                    assert_eq!(sas[0].dh_group, Some(group.id()), "{ctx}");
                    assert_eq!(sas[0].encryption, Some(cipher), "{ctx}");
                    assert_eq!(sas[0].hash, Some(hash), "{ctx}");
                    assert_eq!(sas[0].state, "established", "{ctx}");
                }
                for q in [pair.a.quick_mode_sas(pair.now), pair.b.quick_mode_sas(pair.now)] {
                    assert_eq!(q[0].transform, esp, "{ctx}");
                    assert_eq!(q[0].pfs_group, pfs.then_some(group.id()), "{ctx}");
                }
                assert!(
                    count(&pair.events_a, |e| matches!(e, Event::RequestDone { .. }))
                        + count(&pair.events_b, |e| matches!(e, Event::RequestDone { .. }))
                        == 1,
                    "{ctx}"
                );
            }
        }
    }
}

fn standard_pair(seed: u64) -> Pair {
    Pair::new(rule_policy("198.51.100.2", "pfs = true"), rule_policy("198.51.100.1", "pfs = true"), seed)
}

#[test]
fn losing_any_single_message_still_establishes() {
    // MM1..MM6 and QM1..QM3 are the first nine datagrams of a clean exchange.
    for lost in 0..9 {
        let mut pair = standard_pair(100 + lost as u64);
        pair.fate = Box::new(move |n, _| if n == lost { Fate::Drop } else { Fate::Deliver });
        pair.initiate_a();
        pair.settle();
        assert_eq!(count(&pair.events_a, mm_up), 1, "lost #{lost}: {:#?}", pair.events_a);
        assert_eq!(count(&pair.events_b, mm_up), 1, "lost #{lost}: {:#?}", pair.events_b);
        assert_mirrored(&pair, 1);
        assert!(pair.a.stats().retransmitted + pair.b.stats().retransmitted >= 1, "lost #{lost}: something was resent");
        assert!(!pair.events_a.iter().chain(&pair.events_b).any(|e| matches!(e, Event::NegotiationFailed { .. })));
    }
}

#[test]
fn duplicated_messages_change_nothing() {
    let mut pair = standard_pair(7);
    pair.fate = Box::new(|_, _| Fate::Duplicate);
    pair.initiate_a();
    pair.settle();
    assert_eq!(count(&pair.events_a, mm_up), 1);
    assert_eq!(count(&pair.events_b, mm_up), 1);
    assert_mirrored(&pair, 1);
    assert!(
        pair.a.stats().duplicates_answered
            + pair.b.stats().duplicates_answered
            + pair.a.stats().dropped_unexpected
            + pair.b.stats().dropped_unexpected
            > 0
    );
    assert!(!pair.events_a.iter().chain(&pair.events_b).any(|e| matches!(e, Event::NegotiationFailed { .. })));
}

#[test]
fn reordered_and_lossy_networks_still_converge() {
    for seed in 0..20u64 {
        let mut pair = standard_pair(1000 + seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        pair.fate = Box::new(move |_, _| {
            use rand_chacha::rand_core::RngCore;
            match rng.next_u32() % 10 {
                0 => Fate::Drop,
                1 => Fate::Duplicate,
                2 => Fate::Delay,
                _ => Fate::Deliver,
            }
        });
        pair.initiate_a();
        pair.drive_for(Duration::from_secs(300));
        let failed = pair.events_a.iter().chain(&pair.events_b).any(|e| matches!(e, Event::NegotiationFailed { .. }));
        if failed {
            // With random loss a negotiation may time out; then nothing may be half-installed.
            assert_eq!(pair.a.quick_mode_sas(pair.now).len(), pair.b.quick_mode_sas(pair.now).len(), "seed {seed}");
            continue;
        }
        assert_mirrored(&pair, 1);
    }
}

#[test]
fn below_level_is_refused_with_reasons_on_both_sides() {
    let weak = MainModeSuite { cipher: IkeCipher::AesCbc128, hash: HashAlg::Sha1, group: DhGroup::Modp2048 };
    let cbc_sha1 = EspTransform { cipher: EspCipher::AesCbc128, integrity: EspIntegrity::HmacSha1_96 };
    let mut pair = Pair::new(
        restricted(rule_policy("198.51.100.2", ""), weak, cbc_sha1),
        rule_policy("198.51.100.1", "minimum_strength = \"high\""),
        3,
    );
    let req = pair.initiate_a();
    pair.settle();
    let b_reason = pair.events_b.iter().find_map(|e| match e {
        Event::NegotiationFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    let b_reason = b_reason.expect("responder reports the refusal");
    assert!(b_reason.contains("hash sha1 is below level high") && b_reason.contains("modp2048"), "{b_reason}");
    let a_reason = pair.events_a.iter().find_map(|e| match e {
        Event::NegotiationFailed { request: Some(r), reason, .. } if *r == req => Some(reason.clone()),
        _ => None,
    });
    let a_reason = a_reason.expect("initiator's request fails");
    assert!(a_reason.contains("NO-PROPOSAL-CHOSEN"), "{a_reason}");
    assert!(pair.a.main_mode_sas(pair.now).is_empty() && pair.b.main_mode_sas(pair.now).is_empty());
    assert_eq!(pair.b.stats().refused_no_proposal, 1);
}

#[test]
fn quick_mode_below_level_is_refused() {
    let cbc_sha1 = EspTransform { cipher: EspCipher::AesCbc256, integrity: EspIntegrity::HmacSha1_96 };
    let strong = StrengthLevel::High.main_mode_suites()[0];
    let mut pair = Pair::new(
        restricted(rule_policy("198.51.100.2", ""), strong, cbc_sha1),
        rule_policy("198.51.100.1", "minimum_strength = \"high\""),
        4,
    );
    let req = pair.initiate_a();
    pair.settle();
    assert_eq!(count(&pair.events_a, mm_up), 1);
    let b_reason = pair.events_b.iter().find_map(|e| match e {
        Event::NegotiationFailed { phase: "quick mode", reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(b_reason.expect("refused").contains("ESP aes-cbc-256/hmac-sha1-96 is below level high"));
    assert!(pair.events_a.iter().any(|e| matches!(e, Event::NegotiationFailed { request: Some(r), .. } if *r == req)));
    assert!(pair.a.quick_mode_sas(pair.now).is_empty() && pair.b.quick_mode_sas(pair.now).is_empty());
}

#[test]
fn mismatched_psk_fails_authentication() {
    let pb = support::policy(
        "[[rule]]\nname = \"r\"\nremote = \"198.51.100.1\"\npsk = \"another-secret-entirely\"\nauto = \"none\"\n",
    );
    let mut pair = Pair::new(rule_policy("198.51.100.2", ""), pb, 5);
    pair.initiate_a();
    pair.settle();
    let reason = pair.events_b.iter().find_map(|e| match e {
        Event::NegotiationFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.expect("responder fails").contains("pre-shared keys"));
    assert_eq!(pair.b.stats().auth_failed, 1);
    assert!(pair.a.quick_mode_sas(pair.now).is_empty());
    assert!(pair.events_a.iter().any(|e| matches!(e, Event::NegotiationFailed { .. })), "initiator fails too");
}

#[test]
fn terminate_sends_deletes_and_the_peer_removes_its_sas() {
    let mut pair = standard_pair(9);
    pair.initiate_a();
    pair.settle();
    assert_mirrored(&pair, 1);
    let n = pair.a.terminate(pair.now, Some("r"), None, "terminated by the administrator");
    assert_eq!(n, 2);
    pair.settle();
    assert!(pair.a.quick_mode_sas(pair.now).is_empty());
    assert!(pair.b.quick_mode_sas(pair.now).is_empty(), "b handled the ESP DELETE");
    assert!(pair.b.main_mode_sas(pair.now).is_empty(), "b handled the ISAKMP DELETE");
    assert_eq!(count(&pair.events_b, |e| matches!(e, Event::QuickModeDown { .. })), 1);
    assert_eq!(count(&pair.events_b, |e| matches!(e, Event::MainModeDown { .. })), 1);
}

#[test]
fn lifetimes_expire_and_both_sides_agree() {
    let mut pair = standard_pair(11);
    pair.initiate_a();
    pair.settle();
    assert_mirrored(&pair, 1);
    let left = pair.a.quick_mode_sas(pair.now)[0].lifetime_left;
    assert!(left <= Duration::from_secs(3600) && left > Duration::from_secs(3400), "{left:?}");
    pair.drive_for(Duration::from_secs(3600));
    assert!(pair.a.quick_mode_sas(pair.now).is_empty() && pair.b.quick_mode_sas(pair.now).is_empty());
    assert_eq!(pair.a.main_mode_sas(pair.now).len(), 1, "Main Mode lives 480 minutes");
    pair.drive_for(Duration::from_secs(480 * 60));
    assert!(pair.a.main_mode_sas(pair.now).is_empty() && pair.b.main_mode_sas(pair.now).is_empty());
}

#[test]
fn a_restarted_peer_sends_initial_contact_and_stale_sas_go() {
    let mut pair = standard_pair(13);
    pair.initiate_a();
    pair.settle();
    assert_mirrored(&pair, 1);
    // `a` restarts: a fresh endpoint that has never talked to `b`.
    pair.a = Endpoint::new(
        Arc::new(rule_policy("198.51.100.2", "pfs = true")),
        Timing::default(),
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(99)),
    );
    pair.events_a.clear();
    pair.initiate_a();
    pair.settle();
    assert_eq!(
        pair.b.main_mode_sas(pair.now).len(),
        1,
        "b dropped the stale Main Mode SA: {:#?}",
        pair.b.main_mode_sas(pair.now)
    );
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1, "b dropped the stale Quick Mode SA");
    assert!(pair
        .events_b
        .iter()
        .any(|e| matches!(e, Event::QuickModeDown { reason, .. } if reason.contains("INITIAL-CONTACT"))));
}

#[test]
fn second_initiate_reuses_the_established_sas() {
    let mut pair = standard_pair(17);
    pair.initiate_a();
    pair.settle();
    let r2 = pair.initiate_a();
    pair.settle();
    assert!(pair.events_a.iter().any(|e| matches!(e, Event::RequestDone { request, .. } if *request == r2)));
    assert_mirrored(&pair, 1);
}

#[test]
fn aggressive_mode_and_unknown_exchanges_are_refused_without_state() {
    let mut pair = standard_pair(19);
    let mut msg = vec![0u8; 28];
    msg[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    msg[17] = 0x10;
    msg[18] = 4; // Aggressive Mode
    msg[27] = 28;
    let (a, b) = (Pair::addr_a(), Pair::addr_b());
    pair.b.handle(pair.now, b, a, &msg);
    msg[18] = 6; // Transaction (Mode Config)
    pair.b.handle(pair.now, b, a, &msg);
    msg[18] = 243; // AuthIP Main Mode
    pair.b.handle(pair.now, b, a, &msg);
    assert_eq!(pair.b.stats().refused_exchange, 3);
    assert!(pair.b.main_mode_sas(pair.now).is_empty());
    // The only timer is the summary of the refusals logged once and then counted: it goes when they stop.
    let summary = pair.now + Duration::from_secs(10);
    assert_eq!(pair.b.poll_timeout(), Some(summary));
    pair.b.handle_timeout(summary);
    pair.b.handle_timeout(summary + Duration::from_secs(10));
    assert!(pair.b.poll_timeout().is_none(), "no state, no timer");
}

#[test]
fn garbage_is_dropped_and_counted() {
    let mut pair = standard_pair(23);
    let (a, b) = (Pair::addr_a(), Pair::addr_b());
    for len in [0usize, 1, 27, 28, 29, 100] {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
        pair.b.handle(pair.now, b, a, &junk);
    }
    assert_eq!(pair.b.stats().received, 6);
    assert!(pair.b.stats().dropped_malformed >= 4);
    assert!(pair.b.main_mode_sas(pair.now).is_empty());
}

/// A busy SA pair rekeyed by volume (Windows' 100,000 KB at a gigabit) runs hundreds of Quick Modes under one
/// Main Mode SA within the time finished exchanges are kept for retransmissions: none of them may be refused.
#[test]
fn hundreds_of_rekeys_under_one_main_mode_sa() {
    let mut pair = standard_pair(23);
    pair.initiate_a();
    pair.settle();
    assert_mirrored(&pair, 1);
    for round in 0..300 {
        let newest =
            pair.a.quick_mode_sas(pair.now).into_iter().max_by_key(|q| q.lifetime_left).expect("a has a Quick Mode SA");
        // Alternate the initiator, as both sides rekey by volume.
        let (side, spi) = if round % 2 == 0 { (&mut pair.a, newest.spi_in) } else { (&mut pair.b, newest.spi_out) };
        assert!(side.rekey(pair.now, spi, true).is_some(), "round {round}: rekey started");
        pair.drive_for(Duration::from_millis(300));
    }
    pair.settle();
    let ups = |ev: &[Event]| count(ev, |e| matches!(e, Event::QuickModeUp(_)));
    assert_eq!(ups(&pair.events_a), 301, "every rekey came up on a");
    assert_eq!(ups(&pair.events_b), 301, "every rekey came up on b");
    assert_eq!(pair.a.main_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.b.main_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.b.stats().dropped_unexpected + pair.a.stats().dropped_unexpected, 0);
}
