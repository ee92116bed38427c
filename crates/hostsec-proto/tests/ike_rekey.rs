//! Renewal by the engine's own soft deadlines, on two endpoints in memory with a virtual clock: pairs in use are
//! renewed (by the initiator of the pair first), idle ones expire; the daemon's rekey and the timer's are one;
//! a Main Mode SA is renewed without touching the Quick Mode SA pairs; simultaneous rekeys converge.

mod support;

use hostsec_proto::ike::{Endpoint, Event, Role};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use support::{policy, Fate, Pair};

fn lifetimes_policy(peer: &str, mm: &str, qm: &str) -> hostsec_proto::policy::Policy {
    policy(&format!(
        "[global]\nmain_mode_lifetime = \"{mm}\"\nquick_mode_lifetime = \"{qm}\"\n\n[[rule]]\nname = \"r\"\n\
         remote = \"{peer}\"\npsk = \"rekey-test-psk-0123456789\"\nauto = \"none\"\n"
    ))
}

fn pair_with(mm: &str, qm: &str, seed: u64) -> Pair {
    Pair::new(lifetimes_policy("198.51.100.2", mm, qm), lifetimes_policy("198.51.100.1", mm, qm), seed)
}

/// Reports traffic both ways on every pair of both sides, as the daemon's usage poll would (and its per-wake-up
/// report of inbound ESP, which dead peer detection takes as the peer's liveness).
fn use_all(e: &mut Endpoint, now: Instant) {
    for q in e.quick_mode_sas(now) {
        assert!(e.child_used(now, q.spi_in, true));
        e.esp_received(now, q.spi_in);
    }
}

/// Drives the pair for `total`, reporting traffic every 10 s.
fn run_with_traffic(pair: &mut Pair, total: Duration) {
    let end = pair.now + total;
    while pair.now < end {
        pair.drive_for(Duration::from_secs(10));
        let now = pair.now;
        use_all(&mut pair.a, now);
        use_all(&mut pair.b, now);
    }
}

fn ups(ev: &[Event]) -> Vec<(Role, u32)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::QuickModeUp(k) => Some((k.info.role, k.info.spi_in)),
            _ => None,
        })
        .collect()
}

fn count<F: Fn(&Event) -> bool>(ev: &[Event], f: F) -> usize {
    ev.iter().filter(|e| f(e)).count()
}

#[test]
fn a_pair_in_use_is_renewed_by_its_initiator_before_it_expires() {
    let mut pair = pair_with("480m", "10m", 1);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(5));
    let start = pair.now;
    assert_eq!(ups(&pair.events_a).len(), 1);
    // Until 60 % of the lifetime nothing happens; by 70 % a (the initiator) has renewed the pair.
    run_with_traffic(&mut pair, Duration::from_secs(350));
    assert_eq!(ups(&pair.events_a).len(), 1, "no renewal before 60 % of the lifetime");
    run_with_traffic(&mut pair, Duration::from_secs(420 - 350 + 10));
    let a = ups(&pair.events_a);
    assert_eq!(a.len(), 2, "renewed once: {a:?}");
    assert_eq!(a[1].0, Role::Initiator, "by the initiator of the old pair");
    assert!(pair.now - start < Duration::from_secs(600));
    // The old pair goes (make-before-break): the peer used the new one, the overlap passed.
    run_with_traffic(&mut pair, Duration::from_secs(30));
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.a.quick_mode_sas(pair.now)[0].spi_in, a[1].1);
    assert!(!pair.events_a.iter().chain(&pair.events_b).any(|e| matches!(e, Event::NegotiationFailed { .. })));
}

#[test]
fn an_idle_pair_is_not_renewed_and_its_main_mode_ends_too() {
    let mut pair = pair_with("20m", "5m", 2);
    pair.initiate_a();
    pair.settle();
    pair.drive_for(Duration::from_secs(30 * 60));
    assert_eq!(ups(&pair.events_a).len(), 1, "never renewed");
    assert_eq!(count(&pair.events_a, |e| matches!(e, Event::MainModeUp { .. })), 1, "no Main Mode renewal");
    assert!(pair.a.quick_mode_sas(pair.now).is_empty() && pair.b.quick_mode_sas(pair.now).is_empty());
    assert!(pair.a.main_mode_sas(pair.now).is_empty() && pair.b.main_mode_sas(pair.now).is_empty());
    let c = pair.a.state_counts();
    assert_eq!((c.rekeying, c.reserved_spis, c.renewal_states, c.timers), (0, 0, 0, 0), "{c:?}");
}

#[test]
fn the_daemons_rekey_and_the_soft_deadline_start_one_rekey() {
    let mut pair = pair_with("480m", "10m", 3);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(5));
    let q = pair.a.quick_mode_sas(pair.now)[0].clone();
    // The datapath asks (byte limit) by inbound and by outbound SPI; the same request answers both.
    let r1 = pair.a.rekey(pair.now, q.spi_in, true).expect("rekey starts");
    let r2 = pair.a.rekey(pair.now, q.spi_out, false).expect("the running rekey");
    assert_eq!(r1, r2);
    assert_eq!(pair.a.state_counts().rekeying, 1);
    pair.drive_for(Duration::from_secs(5));
    assert_eq!(ups(&pair.events_a).len(), 2, "one new pair");
    assert_eq!(pair.a.state_counts().rekeying, 0);

    // The soft deadline of the new pair starts a rekey while the network is down; the datapath's request for
    // the same pair then joins it.
    let down = Rc::new(Cell::new(false));
    let d = down.clone();
    pair.fate = Box::new(move |_, _| if d.get() { Fate::Drop } else { Fate::Deliver });
    let newest = pair.a.quick_mode_sas(pair.now).into_iter().max_by_key(|q| q.lifetime_left).unwrap();
    down.set(true);
    let end = pair.now + Duration::from_secs(500);
    while pair.a.state_counts().rekeying == 0 && pair.now < end {
        pair.drive_for(Duration::from_secs(1));
        let now = pair.now;
        use_all(&mut pair.a, now);
        use_all(&mut pair.b, now);
    }
    assert_eq!(pair.a.state_counts().rekeying, 1, "the timer started a rekey");
    pair.a.rekey(pair.now, newest.spi_in, true).expect("joins the running rekey");
    assert_eq!(pair.a.state_counts().rekeying, 1);
    down.set(false);
    pair.drive_for(Duration::from_secs(60));
    assert_eq!(ups(&pair.events_a).len(), 3, "one more pair, not two");
    assert_eq!(pair.a.state_counts().rekeying, 0);
}

#[test]
fn a_main_mode_sa_is_renewed_without_touching_the_pairs() {
    let mut pair = pair_with("10m", "60m", 4);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(5));
    let cookies = pair.a.main_mode_sas(pair.now)[0].cookie_i;
    let child = pair.a.quick_mode_sas(pair.now)[0].spi_in;
    run_with_traffic(&mut pair, Duration::from_secs(10 * 60 + 30));
    let mm_ups = |ev: &[Event]| count(ev, |e| matches!(e, Event::MainModeUp { .. }));
    assert_eq!(mm_ups(&pair.events_a), 2, "renewed once");
    assert_eq!(mm_ups(&pair.events_b), 2);
    for e in [&pair.a, &pair.b] {
        let mms = e.main_mode_sas(pair.now);
        assert_eq!(mms.len(), 1, "the old Main Mode SA is gone: {mms:?}");
        assert_ne!(mms[0].cookie_i, cookies);
    }
    let down = |ev: &[Event]| count(ev, |e| matches!(e, Event::MainModeDown { .. }));
    assert_eq!((down(&pair.events_a), down(&pair.events_b)), (1, 1), "deleted, the peer told");
    assert_eq!(count(&pair.events_a, |e| matches!(e, Event::QuickModeDown { .. })), 0, "pairs untouched");
    assert_eq!(pair.a.quick_mode_sas(pair.now)[0].spi_in, child);
    // The renewed Main Mode SA carries the next Quick Mode.
    let spi = pair.a.quick_mode_sas(pair.now)[0].spi_in;
    pair.a.rekey(pair.now, spi, true).expect("rekey");
    pair.settle();
    assert_eq!(ups(&pair.events_a).len(), 2);
    assert!(!pair.events_a.iter().chain(&pair.events_b).any(|e| matches!(e, Event::NegotiationFailed { .. })));
}

#[test]
fn simultaneous_rekeys_converge_to_one_pair() {
    let mut pair = pair_with("480m", "5m", 5);
    pair.initiate_a();
    pair.settle();
    let q = pair.a.quick_mode_sas(pair.now)[0].clone();
    // Both sides rekey the same pair at once (both datapaths hit the byte limit).
    pair.a.rekey(pair.now, q.spi_in, true).expect("a rekeys");
    pair.b.rekey(pair.now, q.spi_out, true).expect("b rekeys");
    pair.drive_for(Duration::from_secs(5));
    assert_eq!(ups(&pair.events_a).len(), 3, "both rekeys completed");
    assert_eq!(ups(&pair.events_b).len(), 3);
    // A collision: both sides keep the same one of the two new pairs (the winner by SPIs), and the other goes
    // within seconds, with the old pair.
    run_with_traffic(&mut pair, Duration::from_secs(20));
    let same = |pair: &Pair| {
        let (a, b) = (pair.a.quick_mode_sas(pair.now), pair.b.quick_mode_sas(pair.now));
        let mut a: Vec<(u32, u32)> = a.iter().map(|q| (q.spi_in, q.spi_out)).collect();
        let mut b: Vec<(u32, u32)> = b.iter().map(|q| (q.spi_out, q.spi_in)).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "both sides hold the same pairs");
        a.len()
    };
    assert_eq!(same(&pair), 1);
    let gone = |ev: &[Event]| count(ev, |e| matches!(e, Event::QuickModeDown { .. }));
    assert_eq!(gone(&pair.events_a), 2, "the old pair and the loser: {:#?}", pair.events_a);
    assert_eq!(gone(&pair.events_b), 2);
    // Then one lineage is renewed; pairs overlap only for the moments of a rekey.
    for _ in 0..60 {
        run_with_traffic(&mut pair, Duration::from_secs(10));
        assert!(same(&pair) <= 2);
    }
    assert!(ups(&pair.events_a).len() >= 5, "renewed every 180-210 s");
}

/// RFC 2407 §4.6.3.1: a responder with shorter lifetimes announces them in QM2 (RESPONDER-LIFETIME) and the
/// initiator takes them, so that both sides expire and renew the pair on the same schedule.
#[test]
fn the_responders_shorter_lifetime_binds_the_initiator() {
    let a = lifetimes_policy("198.51.100.2", "480m", "60m");
    let b = policy(
        "[global]\nquick_mode_lifetime = \"10m\"\nquick_mode_lifetime_kb = 50000\n\n[[rule]]\nname = \"r\"\n\
         remote = \"198.51.100.1\"\npsk = \"rekey-test-psk-0123456789\"\nauto = \"none\"\n",
    );
    let mut pair = Pair::new(a, b, 6);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(5));
    let (qa, qb) = (pair.a.quick_mode_sas(pair.now), pair.b.quick_mode_sas(pair.now));
    assert_eq!(qa.len(), 1);
    for q in [&qa[0], &qb[0]] {
        assert!(q.lifetime_left <= Duration::from_secs(600), "{:?}", q.lifetime_left);
        assert!(q.lifetime_left > Duration::from_secs(590), "{:?}", q.lifetime_left);
        assert_eq!(q.lifetime_kb, 50_000);
    }
    // The other way round nothing is announced, and the initiator's shorter lifetime holds on both sides.
    let mut pair =
        Pair::new(lifetimes_policy("198.51.100.2", "480m", "10m"), lifetimes_policy("198.51.100.1", "480m", "60m"), 7);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(5));
    for q in [&pair.a.quick_mode_sas(pair.now)[0], &pair.b.quick_mode_sas(pair.now)[0]] {
        assert!(q.lifetime_left <= Duration::from_secs(600) && q.lifetime_left > Duration::from_secs(590));
    }
}

/// A Main Mode responder echoes the proposal's lifetime and announces its shorter one in an Informational
/// exchange (RFC 2407 §4.6.3); the initiator takes it, so both renew and expire the ISAKMP SA alike.
#[test]
fn the_responders_shorter_main_mode_lifetime_binds_the_initiator() {
    let mut pair =
        Pair::new(lifetimes_policy("198.51.100.2", "480m", "60m"), lifetimes_policy("198.51.100.1", "20m", "60m"), 8);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(5));
    for e in [&pair.a, &pair.b] {
        let left = e.main_mode_sas(pair.now)[0].lifetime_left.expect("established");
        assert!(left <= Duration::from_secs(1200) && left > Duration::from_secs(1190), "{left:?}");
    }
    assert_eq!(pair.b.stats().sent, 5, "MM2, MM4, MM6, the Informational with RESPONDER-LIFETIME, QM2");
    // Not announced when the responder's lifetime is the longer one.
    let mut pair =
        Pair::new(lifetimes_policy("198.51.100.2", "20m", "60m"), lifetimes_policy("198.51.100.1", "480m", "60m"), 9);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(5));
    assert_eq!(pair.b.stats().sent, 4, "MM2, MM4, MM6, QM2: nothing to announce");
    for e in [&pair.a, &pair.b] {
        let left = e.main_mode_sas(pair.now)[0].lifetime_left.expect("established");
        assert!(left <= Duration::from_secs(1200) && left > Duration::from_secs(1190), "{left:?}");
    }
}

#[test]
fn a_successor_the_peer_never_completed_goes_and_the_old_pair_is_rekeyed_again() {
    let mut pair = pair_with("480m", "60m", 9);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(5));
    let old = pair.a.quick_mode_sas(pair.now)[0].clone();
    let b_old = pair.b.quick_mode_sas(pair.now)[0].spi_in;
    // `a` rekeys; everything from `a` after its QM1 is lost (its QM3 and the answers to `b`'s QM2 retransmissions):
    // `a` has the new pair after QM2, `b` never completes the Quick Mode.
    let drop_from_a = Rc::new(Cell::new(false));
    let d = drop_from_a.clone();
    pair.fate = Box::new(move |_, f| if f.from_a && d.get() { Fate::Drop } else { Fate::Deliver });
    pair.a.rekey(pair.now, old.spi_in, true).expect("rekey starts");
    pair.step(); // QM1 to `b`
    drop_from_a.set(true);
    pair.drive_for(Duration::from_secs(1));
    let new = ups(&pair.events_a).last().copied().expect("a has the new pair").1;
    assert_ne!(new, old.spi_in);
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1, "b has only the old pair");
    // `b` keeps sending on the old pair (all it has); nothing arrives on the new one. IKE heals after 30 s.
    let end = pair.now + Duration::from_secs(75);
    while pair.now < end {
        pair.drive_for(Duration::from_secs(5));
        let now = pair.now;
        if now >= end - Duration::from_secs(45) {
            drop_from_a.set(false);
        }
        pair.a.child_used(now, old.spi_in, true);
        pair.b.child_used(now, b_old, true);
    }
    // At the cap `a` gave the new pair up (not the old one), told `b`, and rekeyed the old pair again.
    assert!(
        pair.events_a.iter().any(|e| matches!(e, Event::QuickModeDown { info, reason }
            if info.spi_in == new && reason.contains("never used"))),
        "{:#?}",
        pair.events_a
    );
    assert!(
        !pair.events_a.iter().any(|e| matches!(e, Event::QuickModeDown { info, .. } if info.spi_in == old.spi_in)),
        "the old pair stayed until its successor was proven"
    );
    let a_now: Vec<u32> = pair.a.quick_mode_sas(pair.now).iter().map(|q| q.spi_in).collect();
    let b_now: Vec<u32> = pair.b.quick_mode_sas(pair.now).iter().map(|q| q.spi_out).collect();
    assert!(
        a_now.iter().any(|s| *s != old.spi_in && *s != new && b_now.contains(s)),
        "a fresh pair both sides hold: a {a_now:x?} b {b_now:x?}"
    );
}

#[test]
fn the_responder_announces_its_inbound_sa_at_qm2_before_the_pair_is_up() {
    let mut pair = pair_with("480m", "60m", 11);
    pair.initiate_a();
    // QM1 reaches `b`, which answers with QM2: its inbound SA may be installed now, before QM3.
    let mut inbound = None;
    for _ in 0..64 {
        if !pair.step() {
            break;
        }
        inbound = pair.events_b.iter().find_map(|e| match e {
            Event::QuickModeInbound(k) => Some(k.clone()),
            _ => None,
        });
        if inbound.is_some() {
            break;
        }
    }
    let inbound = inbound.expect("b announced its inbound SA");
    assert!(ups(&pair.events_b).is_empty(), "announced before the pair is up (QM3 not read yet)");
    pair.drive_for(Duration::from_secs(1));
    let up = pair
        .events_b
        .iter()
        .find_map(|e| match e {
            Event::QuickModeUp(k) => Some(k.clone()),
            _ => None,
        })
        .expect("b's pair is up after QM3");
    assert_eq!(up.info.spi_in, inbound.info.spi_in);
    assert_eq!(up.info.role, Role::Responder);
    assert_eq!(up.encryption_key_in.expose(), inbound.encryption_key_in.expose(), "the same inbound keys");
    assert_eq!(up.integrity_key_in.expose(), inbound.integrity_key_in.expose());
    // The initiator installs its pair at QM2 (QuickModeUp); it announces nothing early.
    assert!(!pair.events_a.iter().any(|e| matches!(e, Event::QuickModeInbound(_))));
}

/// The pair (by our inbound SPI) a side's datapath sends on: its newest, as the ESP layer picks it.
fn newest(e: &Endpoint, events: &[Event], now: Instant) -> Option<(u32, u32)> {
    let live: Vec<(u32, u32)> = e.quick_mode_sas(now).iter().map(|q| (q.spi_in, q.spi_out)).collect();
    ups(events).iter().rev().find_map(|(_, spi)| live.iter().find(|(i, _)| i == spi).copied())
}

/// Traffic both ways for `total`, each side sending on its newest pair only, reported every `step` as the
/// daemon does: the sender's pair counts as used, the receiver's matching inbound SA as used by the peer.
fn run_on_newest(pair: &mut Pair, total: Duration, step: Duration) {
    let end = pair.now + total;
    while pair.now < end {
        pair.drive_for(step);
        let now = pair.now;
        if let Some((a_in, a_out)) = newest(&pair.a, &pair.events_a, now) {
            pair.a.child_used(now, a_in, false);
            pair.b.child_used(now, a_out, true);
            pair.b.esp_received(now, a_out);
        }
        if let Some((b_in, b_out)) = newest(&pair.b, &pair.events_b, now) {
            pair.b.child_used(now, b_in, false);
            pair.a.child_used(now, b_out, true);
            pair.a.esp_received(now, b_out);
        }
    }
}

/// The pairs both sides hold, as (a's inbound SPI, a's outbound SPI), checked to be the same on both.
fn agreed_pairs(pair: &Pair) -> Vec<(u32, u32)> {
    let mut a: Vec<(u32, u32)> = pair.a.quick_mode_sas(pair.now).iter().map(|q| (q.spi_in, q.spi_out)).collect();
    let mut b: Vec<(u32, u32)> = pair.b.quick_mode_sas(pair.now).iter().map(|q| (q.spi_out, q.spi_in)).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "both sides hold the same pairs");
    a
}

/// Both sides negotiate the same traffic at once (each one's packet triggered its own Main Mode and Quick Mode,
/// as after a peer restarted): two pairs come up, and both sides keep the same one within seconds, whichever
/// each of them sends on, so nothing lingers until the pairs' expiry.
#[test]
fn both_sides_negotiating_at_once_keep_the_same_one_pair() {
    for seed in 20..30 {
        let mut pair = pair_with("480m", "60m", seed);
        pair.initiate_a();
        pair.b.initiate(pair.now, "r", None, Pair::addr_b()).expect("b initiates");
        pair.drive_for(Duration::from_secs(1));
        assert_eq!(ups(&pair.events_a).len(), 2, "seed {seed}: two pairs came up");
        assert_eq!(pair.a.main_mode_sas(pair.now).len(), 2, "seed {seed}: from two Main Modes");
        run_on_newest(&mut pair, Duration::from_secs(10), Duration::from_secs(1));
        let kept = agreed_pairs(&pair);
        assert_eq!(kept.len(), 1, "seed {seed}: {kept:x?}");
        assert!(!pair.events_a.iter().chain(&pair.events_b).any(|e| matches!(e, Event::NegotiationFailed { .. })));
        // Traffic goes on, and the pair is renewed as any other.
        run_on_newest(&mut pair, Duration::from_secs(3600), Duration::from_secs(10));
        assert!(ups(&pair.events_a).len() >= 3, "seed {seed}: renewed");
        assert!(agreed_pairs(&pair).len() <= 2);
    }
}

/// The peer rekeyed a pair and its DELETE for the old one was lost: once the peer has moved to the new pair and
/// sent nothing on the old one for a minute, the old one goes (the peer told), instead of living on until its
/// expiry.
#[test]
fn a_pair_whose_delete_was_lost_goes_once_the_peer_moved_on() {
    let mut pair = pair_with("480m", "60m", 31);
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(1));
    let old = agreed_pairs(&pair)[0];
    // Every Informational exchange from `a` is lost (exchange type 5, after the cookies and two bytes).
    pair.fate = Box::new(|_, f| if f.from_a && f.t.payload.get(18) == Some(&5) { Fate::Drop } else { Fate::Deliver });
    pair.a.rekey(pair.now, old.0, true).expect("a rekeys");
    run_on_newest(&mut pair, Duration::from_secs(30), Duration::from_secs(1));
    assert!(pair.a.quick_mode_sas(pair.now).iter().all(|q| q.spi_in != old.0), "a retired the old pair");
    let b_has_old = |pair: &Pair| pair.b.quick_mode_sas(pair.now).iter().any(|q| q.spi_in == old.1);
    assert!(b_has_old(&pair), "b never got the DELETE; a minute of quiet is not over");
    run_on_newest(&mut pair, Duration::from_secs(60), Duration::from_secs(1));
    assert!(!b_has_old(&pair), "b deleted it itself");
    assert_eq!(agreed_pairs(&pair).len(), 1);
    assert!(pair.events_b.iter().any(|e| matches!(e, Event::QuickModeDown { info, .. } if info.spi_in == old.1)));
}
