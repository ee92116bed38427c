//! Reloading the policy with SAs up, two endpoints in memory on a virtual clock: SAs of unchanged rules stay
//! with their keys; SAs of removed, narrowed or changed rules are deleted and the peer told.

mod support;

use hostsec_proto::ike::Event;
use hostsec_proto::policy::Policy;
use std::sync::Arc;
use support::{child_keys, rule_policy, Pair};

fn established() -> Pair {
    let mut pair = Pair::new(rule_policy("198.51.100.2", "pfs = true"), rule_policy("198.51.100.1", "pfs = true"), 51);
    pair.initiate_a();
    pair.settle();
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1);
    pair
}

fn down_reasons(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::QuickModeDown { reason, .. } | Event::MainModeDown { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Reloads `a` with `policy` and checks that `a` deleted its Quick Mode and Main Mode SAs giving `reason`, and
/// that `b`, told by DELETE, has none left either.
fn reload_deletes(policy: Policy, reason: &str) {
    let mut pair = established();
    pair.a.set_policy(pair.now, Arc::new(policy));
    pair.settle();
    let a = down_reasons(&pair.events_a);
    assert_eq!(a.iter().filter(|r| r.as_str() == reason).count(), 2, "QM and MM SA, each with the reason: {a:#?}");
    assert!(pair.a.quick_mode_sas(pair.now).is_empty() && pair.a.main_mode_sas(pair.now).is_empty());
    assert!(pair.b.quick_mode_sas(pair.now).is_empty(), "b got the ESP DELETE");
    assert!(pair.b.main_mode_sas(pair.now).is_empty(), "b got the ISAKMP DELETE");
    let b = down_reasons(&pair.events_b);
    assert_eq!(b, vec!["the peer deleted it".to_string(); 2], "{b:#?}");
}

#[test]
fn reload_with_unchanged_rules_keeps_sas_and_keys() {
    let mut pair = established();
    let before = child_keys(&pair.events_a);
    let spis: Vec<u32> = pair.a.quick_mode_sas(pair.now).iter().map(|q| q.spi_in).collect();
    // The same rule parsed again, plus an unrelated rule: nothing of r changed.
    let same = support::policy(
        "[[rule]]\nname = \"r\"\nremote = \"198.51.100.2\"\npsk = \"pair-test-psk-0123456789\"\nauto = \"none\"\n\
         pfs = true\n\
         [[rule]]\nname = \"other\"\nremote = \"203.0.113.7\"\npsk = \"another-psk-0123456789\"\nauto = \"none\"\n",
    );
    let n = pair.events_a.len();
    pair.a.set_policy(pair.now, Arc::new(same));
    pair.settle();
    assert!(down_reasons(&pair.events_a).is_empty(), "{:#?}", &pair.events_a[n..]);
    assert_eq!(pair.a.quick_mode_sas(pair.now).iter().map(|q| q.spi_in).collect::<Vec<_>>(), spis);
    assert_eq!(pair.a.main_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1);
    assert!(down_reasons(&pair.events_b).is_empty());
    // Same keys: no new Quick Mode happened.
    let after = child_keys(&pair.events_a);
    assert_eq!(after.len(), before.len());
    assert!(after.iter().zip(&before).all(|(x, y)| x.0 == y.0 && x.2 == y.2 && x.4 == y.4));
    // And the SA still carries new requests without a new negotiation.
    let r = pair.initiate_a();
    pair.settle();
    assert!(pair.events_a.iter().any(|e| matches!(e, Event::RequestDone { request, .. } if *request == r)));
    assert_eq!(child_keys(&pair.events_a).len(), before.len());
}

#[test]
fn a_removed_rule_deletes_its_sas_and_tells_the_peer() {
    let other = support::policy(
        "[[rule]]\nname = \"other\"\nremote = \"198.51.100.2\"\npsk = \"pair-test-psk-0123456789\"\nauto = \"none\"\n",
    );
    reload_deletes(other, "rule 'r' removed by reload");
}

#[test]
fn a_narrowed_rule_deletes_the_sas_of_the_peer_it_no_longer_covers() {
    reload_deletes(rule_policy("198.51.100.3", "pfs = true"), "rule 'r' no longer covers peer 198.51.100.2");
}

#[test]
fn a_changed_strength_deletes_the_sas() {
    reload_deletes(
        rule_policy("198.51.100.2", "pfs = true\nminimum_strength = \"high\""),
        "rule 'r' changed (minimum_strength)",
    );
}

#[test]
fn a_disabled_rule_deletes_the_sas() {
    reload_deletes(rule_policy("198.51.100.2", "pfs = true\nenabled = false"), "rule 'r' disabled by reload");
}

#[test]
fn a_rule_narrowed_to_a_protocol_deletes_the_all_traffic_sa() {
    let mut p = rule_policy("198.51.100.2", "pfs = true");
    p.rules[0].protocol = Some(6);
    let mut pair = established();
    pair.a.set_policy(pair.now, Arc::new(p));
    pair.settle();
    let a = down_reasons(&pair.events_a);
    assert!(a.iter().any(|r| r.starts_with("rule 'r' changed (protocol)")), "{a:#?}");
    assert!(pair.a.quick_mode_sas(pair.now).is_empty() && pair.b.quick_mode_sas(pair.now).is_empty());
    assert_eq!(pair.a.main_mode_sas(pair.now).len(), 1, "the rule still negotiates with b: Main Mode stays");
}
