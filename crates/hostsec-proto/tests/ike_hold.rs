//! Quick Modes held back while the peer could not take them (see `ike/endpoint/hold.rs`), on two endpoints in
//! memory: during the peer's reauthentication our rekey waits and goes under the peer's new Main Mode SA, never
//! under the one being replaced (strongSwan destroys an IKE SA that gets a Quick Mode while it reauthenticates);
//! right after a Main Mode we answered, our own Quick Mode waits a moment (strongSwan may read it before our MM6).

mod support;

use hostsec_proto::ike::{Endpoint, Event, Role};
use std::time::{Duration, Instant};
use support::{policy, Fate, Flight, Pair};

fn lifetimes_policy(peer: &str, mm: &str) -> hostsec_proto::policy::Policy {
    policy(&format!(
        "[global]\nmain_mode_lifetime = \"{mm}\"\nquick_mode_lifetime = \"60m\"\n\n[[rule]]\nname = \"r\"\n\
         remote = \"{peer}\"\npsk = \"hold-test-psk-0123456789\"\nauto = \"none\"\n"
    ))
}

fn pair_with(mm: &str, seed: u64) -> Pair {
    Pair::new(lifetimes_policy("198.51.100.2", mm), lifetimes_policy("198.51.100.1", mm), seed)
}

fn use_all(e: &mut Endpoint, now: Instant) {
    for q in e.quick_mode_sas(now) {
        e.child_used(now, q.spi_in, true);
        e.esp_received(now, q.spi_in);
    }
}

const ID_PROT: u8 = 2;
const QUICK_MODE: u8 = 32;

fn exchange(f: &Flight) -> u8 {
    f.t.payload.get(18).copied().unwrap_or(0)
}

fn cookie_i(f: &Flight) -> [u8; 8] {
    let mut c = [0u8; 8];
    c.copy_from_slice(&f.t.payload[..8]);
    c
}

/// A Main Mode's first message: ID_PROT with no responder cookie yet.
fn is_mm1(f: &Flight) -> bool {
    exchange(f) == ID_PROT && f.t.payload[8..16] == [0u8; 8]
}

fn failures(ev: &[Event]) -> Vec<&Event> {
    ev.iter().filter(|e| matches!(e, Event::NegotiationFailed { .. })).collect()
}

#[test]
fn our_rekey_during_the_peers_reauthentication_waits_and_goes_under_its_new_main_mode() {
    // B initiates, so B (the Main Mode initiator) renews the Main Mode SA first: for A, the peer reauthenticates.
    let mut pair = pair_with("10m", 11);
    pair.b.initiate(pair.now, "r", None, Pair::addr_b()).expect("initiate");
    pair.settle();
    let old_mm = pair.a.main_mode_sas(pair.now)[0].cookie_i;
    let child = pair.a.quick_mode_sas(pair.now)[0].spi_in;
    // Traffic until B's renewal puts its MM1 in flight.
    let seen = pair.wire.len();
    let deadline = pair.now + Duration::from_secs(600);
    while !pair.wire[seen..].iter().any(|f| !f.from_a && is_mm1(f)) {
        assert!(pair.now < deadline, "B never renewed its Main Mode SA");
        let next = [pair.a.poll_timeout(), pair.b.poll_timeout()].into_iter().flatten().min().expect("timers");
        pair.now = next.max(pair.now);
        let now = pair.now;
        use_all(&mut pair.a, now);
        use_all(&mut pair.b, now);
        pair.a.handle_timeout(now);
        pair.b.handle_timeout(now);
        pair.step();
    }
    // A has answered MM1 (the reauthentication runs) when its datapath asks for a rekey.
    while !pair.a.main_mode_sas(pair.now).iter().any(|m| m.state != "established") {
        assert!(pair.step(), "MM1 delivered");
    }
    let mark = pair.wire.len();
    pair.a.rekey(pair.now, child, true).expect("rekey starts");
    pair.drive_for(Duration::from_secs(10));
    let a_qms: Vec<&Flight> = pair.wire[mark..].iter().filter(|f| f.from_a && exchange(f) == QUICK_MODE).collect();
    assert!(!a_qms.is_empty(), "A's rekey ran");
    assert!(a_qms.iter().all(|f| cookie_i(f) != old_mm), "no Quick Mode under the Main Mode SA being replaced");
    let new_mm = pair.a.main_mode_sas(pair.now).iter().find(|m| m.cookie_i != old_mm).map(|m| m.cookie_i);
    assert_eq!(Some(cookie_i(a_qms[0])), new_mm, "under the peer's new Main Mode SA");
    let ups: Vec<(Role, u32)> = pair
        .events_a
        .iter()
        .filter_map(|e| match e {
            Event::QuickModeUp(k) => Some((k.info.role, k.info.spi_in)),
            _ => None,
        })
        .collect();
    assert_eq!(ups.len(), 2, "the first pair and A's rekey: {ups:?}");
    assert_eq!(ups[1].0, Role::Initiator);
    assert!(failures(&pair.events_a).is_empty() && failures(&pair.events_b).is_empty());
}

#[test]
fn our_first_quick_mode_under_a_main_mode_we_answered_waits_a_moment() {
    let mut pair = pair_with("480m", 12);
    pair.initiate_a();
    // Up to B's MM6: B is established as responder, A has not read MM6 yet.
    while !pair.b.main_mode_sas(pair.now).iter().any(|m| m.state == "established") {
        assert!(pair.step(), "Main Mode runs");
    }
    let mark = pair.wire.len();
    let request = pair.b.initiate(pair.now, "r", None, Pair::addr_b()).expect("initiate");
    assert!(pair.b.poll_transmit().is_none(), "no Quick Mode right after our MM6");
    pair.drive_for(Duration::from_secs(5));
    // A's Quick Mode made the pair meanwhile; B's held request is answered with it, without a second one.
    let b_qms = pair.wire[mark..].iter().filter(|f| !f.from_a && exchange(f) == QUICK_MODE).count();
    assert_eq!(b_qms, 1, "B sent only its QM2");
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1);
    assert!(
        pair.events_b.iter().any(|e| matches!(e, Event::RequestDone { request: r, .. } if *r == request)),
        "B's request answered: {:#?}",
        pair.events_b
    );
    assert!(failures(&pair.events_a).is_empty() && failures(&pair.events_b).is_empty());
}

#[test]
fn a_held_quick_mode_starts_when_the_moment_is_over() {
    // A's Quick Modes are lost: B's own request is the only one for the traffic, and goes out a second after MM6.
    let mut pair = pair_with("480m", 13);
    pair.fate = Box::new(|_, f| if f.from_a && exchange(f) == QUICK_MODE { Fate::Drop } else { Fate::Deliver });
    pair.initiate_a();
    while !pair.b.main_mode_sas(pair.now).iter().any(|m| m.state == "established") {
        assert!(pair.step(), "Main Mode runs");
    }
    let mark = pair.wire.len();
    let request = pair.b.initiate(pair.now, "r", None, Pair::addr_b()).expect("initiate");
    pair.drive_for(Duration::from_millis(900));
    let b_qms = |pair: &Pair| pair.wire[mark..].iter().filter(|f| !f.from_a && exchange(f) == QUICK_MODE).count();
    assert_eq!(b_qms(&pair), 0, "held for the moment");
    pair.drive_for(Duration::from_millis(200));
    assert_eq!(b_qms(&pair), 1, "B's QM1 once the moment is over");
    pair.fate = Box::new(|_, _| Fate::Deliver);
    pair.drive_for(Duration::from_secs(5));
    assert!(
        pair.events_b.iter().any(|e| matches!(e, Event::RequestDone { request: r, .. } if *r == request)),
        "B's request done: {:#?}",
        pair.events_b
    );
}
