//! Dead peer detection (RFC 3706) and restarts, with two endpoints in memory on a virtual clock: a live peer is
//! probed and answers, ESP activity keeps probes away, a silent peer is declared dead on time and its SAs go, and a
//! restarted peer's INITIAL-CONTACT (as initiator or as responder) removes the stale SAs so that traffic gets fresh
//! ones.

mod support;

use hostsec_proto::ike::{Endpoint, Event, Timing};
use hostsec_proto::policy::Policy;
use hostsec_proto::wire::consts::{exchange, payload, vendor_id};
use hostsec_proto::wire::{Header, Payloads};
use rand_chacha::rand_core::SeedableRng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{policy, Fate, Pair};

/// A one-rule policy towards `peer` with `global` lines.
fn dpd_policy(peer: &str, global: &str) -> Policy {
    policy(&format!(
        "[global]\n{global}\n[[rule]]\nname = \"r\"\nremote = \"{peer}\"\npsk = \"pair-test-psk-0123456789\"\n\
         auto = \"none\"\npfs = true\n"
    ))
}

/// A pair where `a` has `ga` and `b` has `gb` as global settings, with one SA pair up.
fn established(ga: &str, gb: &str, seed: u64) -> Pair {
    let mut pair = Pair::new(dpd_policy("198.51.100.2", ga), dpd_policy("198.51.100.1", gb), seed);
    pair.initiate_a();
    // Up to the end of the exchange only: `settle` would let idle time pass.
    pair.drive_for(Duration::from_secs(1));
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1, "{:#?}", pair.events_a);
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1, "{:#?}", pair.events_b);
    pair
}

fn peer_dead(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PeerDead { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Drives the pair one second at a time until `a` reports a dead peer (at most `limit`); returns when.
fn until_a_finds_b_dead(pair: &mut Pair, limit: Duration) -> Option<Instant> {
    let end = pair.now + limit;
    while pair.now < end {
        pair.drive_for(Duration::from_secs(1));
        if !peer_dead(&pair.events_a).is_empty() {
            return Some(pair.now);
        }
    }
    None
}

fn vendor_ids(datagram: &[u8]) -> Vec<Vec<u8>> {
    let Ok((hdr, body)) = Header::split(datagram) else { return Vec::new() };
    if hdr.is_encrypted() || hdr.exchange_type != exchange::IDENTITY_PROTECTION {
        return Vec::new();
    }
    Payloads::new(hdr.next_payload, body)
        .filter_map(Result::ok)
        .filter(|p| p.kind == payload::VENDOR_ID)
        .map(|p| p.body.to_vec())
        .collect()
}

#[test]
fn a_live_peer_is_probed_when_idle_answers_and_keeps_its_sas() {
    let mut pair = established("dpd_interval = \"30s\"", "dpd_interval = \"30s\"", 1);
    // Both sides announced DPD in their key exchange messages (MM3 and MM4), not in MM1/MM2.
    let dpd = vendor_id::DPD.to_vec();
    let with_dpd: Vec<bool> = pair
        .wire
        .iter()
        .filter(|f| !vendor_ids(&f.t.payload).is_empty())
        .map(|f| vendor_ids(&f.t.payload).contains(&dpd))
        .collect();
    assert_eq!(with_dpd, vec![false, false, true, true], "MM1..MM4 carry vendor IDs, only MM3 and MM4 DPD's");
    let mm = &pair.a.main_mode_sas(pair.now)[0];
    assert!(mm.dpd.is_some_and(|d| !d.probing), "{mm:?}");
    pair.drive_for(Duration::from_secs(300));
    let (sa, sb) = (pair.a.stats().clone(), pair.b.stats().clone());
    // An idle pair: each side probes about once per interval (the other's probe counts as liveness too, so
    // together at least one probe per interval), every probe is answered, nobody is declared dead.
    assert!(sa.dpd_requests_sent + sb.dpd_requests_sent >= 9, "{sa:?} {sb:?}");
    assert_eq!(sa.dpd_acks_received, sa.dpd_requests_sent, "{sa:?}");
    assert_eq!(sb.dpd_acks_received, sb.dpd_requests_sent, "{sb:?}");
    assert_eq!((sa.dpd_peers_dead, sb.dpd_peers_dead), (0, 0));
    assert!(peer_dead(&pair.events_a).is_empty() && peer_dead(&pair.events_b).is_empty());
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.b.main_mode_sas(pair.now).len(), 1);
    let acked = pair.a.main_mode_sas(pair.now)[0].dpd.unwrap();
    assert!(acked.last_heard_ago <= Duration::from_secs(30), "{acked:?}");
}

#[test]
fn esp_activity_keeps_probes_away_and_its_absence_brings_them() {
    // `b` does not probe (dpd_interval 0s), so that only `a`'s own view of the peer decides.
    let mut pair = established("dpd_interval = \"30s\"", "dpd_interval = \"0s\"", 2);
    let spi_in = pair.a.quick_mode_sas(pair.now)[0].spi_in;
    for _ in 0..30 {
        pair.drive_for(Duration::from_secs(10));
        pair.a.esp_received(pair.now, spi_in);
    }
    assert_eq!(pair.a.stats().dpd_requests_sent, 0, "ESP from the peer every 10s: never probed");
    assert_eq!(pair.b.stats().dpd_requests_sent, 0, "dpd_interval 0s probes nothing");
    // An unknown SPI proves nothing about anyone.
    pair.a.esp_received(pair.now, spi_in ^ 1);
    pair.drive_for(Duration::from_secs(65));
    let s = pair.a.stats();
    assert!(s.dpd_requests_sent >= 2 && s.dpd_acks_received == s.dpd_requests_sent, "{s:?}");
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1);
}

#[test]
fn a_silent_peer_is_declared_dead_on_time_and_traffic_rekeys_afterwards() {
    let mut pair = established("dpd_interval = \"10s\"", "dpd_interval = \"0s\"", 3);
    let cut = pair.now;
    pair.fate = Box::new(|_, _| Fate::Drop);
    let dead_at = until_a_finds_b_dead(&mut pair, Duration::from_secs(60)).expect("a declares b dead");
    // Silent since the cut: probed from 10s on, 5 R-U-THEREs 2s apart, dead at 2 × 10s.
    let after = dead_at - cut;
    assert!(after >= Duration::from_secs(19) && after <= Duration::from_secs(21), "dead after {after:?}");
    let s = pair.a.stats();
    assert_eq!((s.dpd_requests_sent, s.dpd_acks_received, s.dpd_peers_dead), (5, 0, 1), "{s:?}");
    let reasons = peer_dead(&pair.events_a);
    assert!(reasons[0].contains("198.51.100.2") && reasons[0].contains("5 R-U-THERE"), "{reasons:?}");
    assert!(pair.a.quick_mode_sas(pair.now).is_empty() && pair.a.main_mode_sas(pair.now).is_empty());
    let downs: Vec<&String> = pair
        .events_a
        .iter()
        .filter_map(|e| match e {
            Event::QuickModeDown { reason, .. } | Event::MainModeDown { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(downs.len(), 2, "the Quick Mode pair and the Main Mode SA, each reported: {downs:?}");
    assert!(downs.iter().all(|r| r.starts_with("dead peer")), "{downs:?}");
    // The path heals; `b` still holds the old SAs (it did not probe). Traffic for `b` re-keys, and `a`'s new
    // Main Mode carries INITIAL-CONTACT (it gave `b` up), so `b` drops the stale ones.
    pair.fate = Box::new(|_, _| Fate::Deliver);
    let old_b = pair.b.quick_mode_sas(pair.now)[0].spi_in;
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(1));
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1);
    let b_now = pair.b.quick_mode_sas(pair.now);
    assert_eq!(b_now.len(), 1, "{b_now:#?}");
    assert_ne!(b_now[0].spi_in, old_b, "a fresh pair, the stale one gone");
    assert_eq!(pair.b.main_mode_sas(pair.now).len(), 1);
}

#[test]
fn one_way_loss_kills_only_on_the_side_that_hears_nothing() {
    let mut pair = established("dpd_interval = \"10s\"", "dpd_interval = \"10s\"", 4);
    // Everything from `a` is lost: `a` never gets an ACK, but it hears `b`'s R-U-THEREs, which are authenticated
    // messages from a live peer, so `a` keeps the SA; `b` hears nothing and declares `a` dead.
    pair.fate = Box::new(|_, f| if f.from_a { Fate::Drop } else { Fate::Deliver });
    pair.drive_for(Duration::from_secs(25));
    assert_eq!(peer_dead(&pair.events_b).len(), 1, "a's answers were lost: b gives it up");
    assert_eq!(pair.b.stats().dpd_acks_received, 0);
    assert!(peer_dead(&pair.events_a).is_empty(), "b's probes kept it alive for a while they came");
    // `b` has given up and sends nothing more: `a` finds it silent in turn.
    until_a_finds_b_dead(&mut pair, Duration::from_secs(25)).expect("a gives b up once b is silent");
}

#[test]
fn a_restarted_responder_sends_initial_contact_and_the_initiator_drops_its_stale_sas() {
    // `a` keeps its Quick Mode pair longer than its Main Mode SA, and does not probe.
    let mut pair = established("dpd_interval = \"0s\"\nmain_mode_lifetime = \"1m\"", "dpd_interval = \"0s\"", 5);
    let stale = pair.a.quick_mode_sas(pair.now)[0].spi_in;
    // `b` restarts: a fresh endpoint that knows nothing of `a`.
    pair.b = Endpoint::new(
        Arc::new(dpd_policy("198.51.100.1", "dpd_interval = \"0s\"")),
        Timing::default(),
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(77)),
    );
    pair.events_a.clear();
    // `a` renews its Main Mode SA before it expires (a Quick Mode pair with `b` exists): the restarted `b`, which
    // holds no SA with `a`, answers that Main Mode with INITIAL-CONTACT in MM6, and `a` drops the stale pair.
    pair.drive_for(Duration::from_secs(61));
    assert_eq!(pair.a.main_mode_sas(pair.now).len(), 1, "a's renewed Main Mode SA, with the restarted b");
    assert!(
        pair.events_a.iter().any(|e| matches!(e, Event::QuickModeDown { info, reason }
            if info.spi_in == stale && reason.contains("INITIAL-CONTACT"))),
        "{:#?}",
        pair.events_a
    );
    assert!(pair.a.quick_mode_sas(pair.now).iter().all(|q| q.spi_in != stale), "the stale pair is gone");
    // Traffic for `b` gets a fresh pair that both sides hold.
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(1));
    let now_a = pair.a.quick_mode_sas(pair.now);
    assert_eq!(now_a.len(), 1, "{now_a:#?}");
    assert_ne!(now_a[0].spi_in, stale);
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1);
}

#[test]
fn a_restarted_peer_that_stays_quiet_is_found_dead_and_traffic_gets_fresh_sas() {
    let mut pair = established("dpd_interval = \"10s\"", "dpd_interval = \"10s\"", 6);
    pair.b = Endpoint::new(
        Arc::new(dpd_policy("198.51.100.1", "dpd_interval = \"10s\"")),
        Timing::default(),
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(78)),
    );
    // `b` drops `a`'s R-U-THEREs (unknown cookies); `a` gives it up after 2 × 10s.
    until_a_finds_b_dead(&mut pair, Duration::from_secs(30)).expect("a finds the restarted b dead");
    assert!(pair.b.stats().dropped_unknown_sa >= 5, "{:?}", pair.b.stats());
    assert!(pair.a.quick_mode_sas(pair.now).is_empty());
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(1));
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.b.quick_mode_sas(pair.now).len(), 1);
}

#[test]
fn a_reload_turns_dpd_off_and_on() {
    let mut pair = established("dpd_interval = \"10s\"", "dpd_interval = \"0s\"", 7);
    pair.a.set_policy(pair.now, Arc::new(dpd_policy("198.51.100.2", "dpd_interval = \"0s\"")));
    pair.drive_for(Duration::from_secs(60));
    assert_eq!(pair.a.stats().dpd_requests_sent, 0, "off after the reload");
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1, "the SAs stay (the rule did not change)");
    pair.a.set_policy(pair.now, Arc::new(dpd_policy("198.51.100.2", "dpd_interval = \"5s\"")));
    pair.fate = Box::new(|_, _| Fate::Drop);
    let dead_at = until_a_finds_b_dead(&mut pair, Duration::from_secs(30));
    assert!(dead_at.is_some(), "on again: the silent peer is found dead");
}

#[test]
fn esp_for_an_spi_the_peer_lost_brings_invalid_spi_and_the_sender_drops_its_pair() {
    let mut pair = established("dpd_interval = \"0s\"", "dpd_interval = \"0s\"", 8);
    let a_ip = "198.51.100.1".parse().unwrap();
    let child = pair.a.quick_mode_sas(pair.now)[0].clone();
    // An SPI that `b` knows (its packets raced ahead of the datapath) is never reported.
    assert!(!pair.b.esp_unknown_spi(pair.now, a_ip, child.spi_out));
    // `b` loses the pair, and its DELETE is lost on the way: `a` keeps sending on it.
    pair.fate = Box::new(|_, _| Fate::Drop);
    pair.b.expire_child(pair.now, child.spi_out, true);
    pair.drive_for(Duration::from_millis(10));
    pair.fate = Box::new(|_, _| Fate::Deliver);
    assert!(pair.b.quick_mode_sas(pair.now).is_empty());
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1);
    // `b`'s datapath reports `a`'s packets for the SPI it no longer has: one protected INVALID-SPI per second.
    assert!(pair.b.esp_unknown_spi(pair.now, a_ip, child.spi_out));
    assert!(!pair.b.esp_unknown_spi(pair.now, a_ip, child.spi_out), "rate-limited");
    assert!(!pair.b.esp_unknown_spi(pair.now, "198.51.100.9".parse().unwrap(), 0x1234), "no IKE SA: silence");
    assert_eq!(pair.b.stats().invalid_spi_sent, 1);
    pair.drive_for(Duration::from_millis(10));
    assert!(pair.a.quick_mode_sas(pair.now).is_empty(), "a dropped the pair the peer does not know");
    assert_eq!(pair.a.stats().invalid_spi_honoured, 1);
    assert!(pair
        .events_a
        .iter()
        .any(|e| matches!(e, Event::QuickModeDown { reason, .. } if reason.contains("INVALID-SPI"))));
    assert_eq!(pair.a.main_mode_sas(pair.now).len(), 1, "the Main Mode SA stays");
    // Traffic re-keys under it.
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(1));
    assert_eq!((pair.a.quick_mode_sas(pair.now).len(), pair.b.quick_mode_sas(pair.now).len()), (1, 1));
    // An INVALID-SPI for an SPI `a` does not send on changes nothing.
    pair.drive_for(Duration::from_secs(2));
    assert!(pair.b.esp_unknown_spi(pair.now, a_ip, 0xdead_beef));
    pair.drive_for(Duration::from_millis(10));
    assert_eq!(pair.a.quick_mode_sas(pair.now).len(), 1);
    assert_eq!(pair.a.stats().invalid_spi_honoured, 1);
}
