//! hostsec ↔ hostsec AuthIP in memory ([MS-AIPS] §3): Anonymous Main Mode with fast and normal Quick Mode, later
//! Quick Modes, reliable notifies under loss, the DoS cookie under a flood of first messages, and the coexistence
//! rules with IKEv1 (docs/authip.md). Experimental: both ends are hostsec, so these tests show the state machines
//! agree with each other and survive a bad network, not that they agree with Windows.

mod support;

use hostsec_proto::authip::consts::exchange;
use hostsec_proto::control::AuthipStatsView;
use hostsec_proto::ike::Event;
use hostsec_proto::policy::Keying;
use hostsec_proto::wire::Header;
use std::time::Duration;
use support::{child_keys, policy, Fate, Flight, Pair};

fn authip_policy(peer: &str, extra: &str) -> hostsec_proto::policy::Policy {
    policy(&format!(
        "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\nkeying = \"authip\"\nauthentication = \"anonymous\"\nauto = \"none\"\n{extra}\n"
    ))
}

fn pair(extra: &str, seed: u64) -> Pair {
    Pair::new(authip_policy("198.51.100.2", extra), authip_policy("198.51.100.1", extra), seed)
}

fn exchange_of(f: &Flight) -> u8 {
    Header::parse(&f.t.payload).map(|h| h.exchange_type).unwrap_or(0)
}

/// Both ends hold the same keys for each SA pair, crossed (a's inbound is b's outbound).
fn assert_keys_match(p: &Pair) -> usize {
    let a = child_keys(&p.events_a);
    let b = child_keys(&p.events_b);
    assert!(!a.is_empty(), "no SA pair at a: {:#?}", p.events_a);
    for (spi_in, spi_out, ein, iin, eout, iout) in &a {
        let (_, _, b_ein, b_iin, b_eout, b_iout) =
            b.iter().find(|k| k.0 == *spi_out && k.1 == *spi_in).expect("the peer's half of the pair");
        assert_eq!(ein, b_eout);
        assert_eq!(iin, b_iout);
        assert_eq!(eout, b_ein);
        assert_eq!(iout, b_iin);
        assert_ne!(ein, eout, "the two directions have different keys");
    }
    a.len()
}

/// §4.1's flow with Anonymous: #1/#2 (GSS tokens inside), #5/#6 in exchange 0xF3; fast Quick Mode without PFS.
#[test]
fn anonymous_main_mode_and_fast_quick_mode() {
    let mut p = pair("", 1);
    let r = p.initiate_a();
    p.settle();
    assert_eq!(assert_keys_match(&p), 1);
    assert!(p.events_a.iter().any(|e| matches!(e, Event::RequestDone { request, .. } if *request == r)));
    let xs: Vec<u8> = p.wire.iter().map(exchange_of).collect();
    assert_eq!(xs, vec![exchange::MAIN_MODE; 4], "#1 #2 #5 #6, nothing more: {xs:?}");
    for (i, f) in p.wire.iter().enumerate() {
        let h = Header::parse(&f.t.payload).unwrap();
        assert_eq!(h.is_encrypted(), i >= 2, "only #5 and #6 are encrypted");
    }
    for side in [p.a.main_mode_sas(p.now), p.b.main_mode_sas(p.now)] {
        assert_eq!(side.len(), 1);
        let m = &side[0];
        assert_eq!((m.state, m.keying, m.authip_method), ("established", Keying::AuthIp, Some("anonymous")));
        assert_eq!(m.peer_id.as_deref(), Some("anonymous"));
        assert!(m.dh_group.is_some(), "Anonymous runs DH in Main Mode");
    }
    assert_eq!(p.a.quick_mode_sas(p.now).len(), 1);
    assert_eq!(p.b.quick_mode_sas(p.now).len(), 1);
}

/// With PFS the initiator runs the normal Quick Mode: #7/#8 NOTIFY_QM_SYNCHRONIZE in exchange 0xF4; its inbound
/// SA comes first, the pair when #8 arrives.
#[test]
fn normal_quick_mode_with_pfs() {
    let mut p = pair("pfs = true", 2);
    p.initiate_a();
    p.settle();
    assert_eq!(assert_keys_match(&p), 1);
    let xs: Vec<u8> = p.wire.iter().map(exchange_of).collect();
    assert_eq!(
        xs,
        vec![
            exchange::MAIN_MODE,
            exchange::MAIN_MODE,
            exchange::MAIN_MODE,
            exchange::MAIN_MODE,
            exchange::QUICK_MODE,
            exchange::QUICK_MODE
        ]
    );
    let inbound = p.events_a.iter().position(|e| matches!(e, Event::QuickModeInbound(_)));
    let up = p.events_a.iter().position(|e| matches!(e, Event::QuickModeUp(_)));
    assert!(inbound.is_some() && up.is_some() && inbound < up);
    assert!(p.a.quick_mode_sas(p.now)[0].pfs_group.is_some());
}

/// A second request for other traffic runs a Quick Mode of its own (0xF4, with both nonces in #5/#6) under the
/// same Main Mode SA; a rekey does the same.
#[test]
fn later_quick_modes_and_rekey() {
    let mut p = pair("", 3);
    p.initiate_a();
    p.settle();
    let before = p.wire.len();
    let spi = p.a.quick_mode_sas(p.now)[0].spi_in;
    let req = p.a.rekey(p.now, spi, true).expect("an AuthIP pair is rekeyed");
    p.settle();
    assert_eq!(assert_keys_match(&p), 2);
    assert!(p.events_a.iter().any(|e| matches!(e, Event::RequestDone { request, .. } if *request == req)));
    let later: Vec<u8> = p.wire[before..].iter().map(exchange_of).collect();
    assert_eq!(later, vec![exchange::QUICK_MODE, exchange::QUICK_MODE]);
    assert_eq!(p.a.main_mode_sas(p.now).len(), 1, "no new Main Mode");
}

/// Every message of the negotiation lost once (each in turn): retransmission and the stored replies bring the
/// same result.
#[test]
fn each_message_lost_once() {
    for lost in 0..4 {
        let mut p = pair("pfs = true", 10 + lost as u64);
        p.fate = Box::new(move |n, _| if n == lost { Fate::Drop } else { Fate::Deliver });
        p.initiate_a();
        p.drive_for(Duration::from_secs(60));
        assert_eq!(assert_keys_match(&p), 1, "with message {lost} lost");
    }
    // and duplicated
    let mut p = pair("pfs = true", 20);
    p.fate = Box::new(|_, _| Fate::Duplicate);
    p.initiate_a();
    p.settle();
    assert_eq!(assert_keys_match(&p), 1);
}

/// Reliable notifies ([MS-AIPS] §3.1.5): the delete (NOTIFY_STATUS, reliable) is retransmitted until the peer's
/// ACK arrives, through 50 % loss; the peer acts once and acknowledges every copy.
#[test]
fn reliable_delete_survives_loss() {
    for seed in 0..8u64 {
        let mut p = pair("", 100 + seed);
        p.initiate_a();
        p.settle();
        assert_eq!(assert_keys_match(&p), 1);
        let mut n = seed;
        p.fate = Box::new(move |_, f| {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if exchange_of(f) == exchange::NOTIFY && (n >> 33) % 2 == 0 {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        let before = p.wire.len();
        assert_eq!(p.a.terminate(p.now, Some("r"), None, "administrator"), 1);
        p.drive_for(Duration::from_secs(200));
        let notifies = p.wire[before..].iter().filter(|f| exchange_of(f) == exchange::NOTIFY).count();
        assert!(notifies >= 2, "a delete and its ACK at least");
        assert!(p.a.main_mode_sas(p.now).is_empty(), "seed {seed}: a forgets the SA once acknowledged or given up");
        assert!(p.b.main_mode_sas(p.now).is_empty(), "seed {seed}: b deleted on the notify");
        assert!(p.b.quick_mode_sas(p.now).is_empty());
        let downs = p.events_b.iter().filter(|e| matches!(e, Event::MainModeDown { .. })).count();
        assert_eq!(downs, 1, "seed {seed}: b acted once");
        let acked = p.a.authip().stats().notifies_acked;
        let b_delivered_any = p.wire[before..].iter().any(|f| !f.from_a && exchange_of(f) == exchange::NOTIFY);
        assert!(acked <= 1 && (acked == 1 || b_delivered_any || notifies > 0));
    }
}

/// Right after a delete (no time passing): the side that sent it lists its SA as "deleting" until the ACK
/// comes; the side that got it lists nothing (it keeps the SA only to acknowledge copies of the delete) and a
/// `terminate` of its own finds nothing to delete and reports nothing down twice.
#[test]
fn deleted_sa_leaves_the_listings_at_once() {
    let mut p = pair("", 9);
    p.initiate_a();
    p.settle();
    assert_eq!(assert_keys_match(&p), 1);
    p.fate = Box::new(|_, f| if f.from_a { Fate::Deliver } else { Fate::Drop });
    assert_eq!(p.a.terminate(p.now, Some("r"), None, "administrator"), 1);
    while p.step() {}
    let a = p.a.main_mode_sas(p.now);
    assert_eq!(a.iter().map(|m| m.state).collect::<Vec<_>>(), vec!["deleting"], "a waits for the ACK (lost)");
    assert!(p.b.main_mode_sas(p.now).is_empty(), "b acted on the delete: {:#?}", p.b.main_mode_sas(p.now));
    assert!(p.b.quick_mode_sas(p.now).is_empty());
    assert_eq!(p.b.terminate(p.now, Some("r"), None, "administrator"), 0);
    let downs = p.events_b.iter().filter(|e| matches!(e, Event::MainModeDown { .. })).count();
    assert_eq!(downs, 1);
    // the ACK of a's retransmission gets through
    p.fate = Box::new(|_, _| Fate::Deliver);
    p.drive_for(Duration::from_secs(10));
    assert!(p.a.main_mode_sas(p.now).is_empty());
    assert_eq!(p.a.authip().stats().notifies_acked, 1);
}

/// A flood of first messages from many initiators past the DoS threshold: the responder answers with cookies and
/// keeps no state for them, while a real initiator still gets through by retrying with its cookie.
#[test]
fn dos_cookie_under_a_flood() {
    let mut p = pair("", 7);
    p.b.authip().set_dos_thresholds(4, 2);
    // 20 half-open Main Modes from the initiator (each initiate is a new #1 that b answers, a drops b's #2).
    p.fate = Box::new(|_, f| if f.from_a { Fate::Deliver } else { Fate::Drop });
    for _ in 0..20 {
        p.a.initiate(p.now, "r", None, Pair::addr_a()).unwrap();
        while p.step() {}
    }
    let (_, half_open) = p.b.authip().occupancy();
    assert!(half_open <= 5, "b stopped making state at the threshold: {half_open}");
    assert!(p.b.authip().stats().cookies_sent >= 15);
    // as `hostsec stats --json` shows it: the counters flat beside the occupancy
    let view = serde_json::to_value(AuthipStatsView::of(p.b.authip_engine())).unwrap();
    assert_eq!(view["half_open"], half_open);
    assert_eq!(view["cookies_sent"], p.b.authip().stats().cookies_sent);
    assert_eq!(serde_json::from_value::<AuthipStatsView>(view).unwrap(), AuthipStatsView::of(p.b.authip_engine()));
    // a fresh initiator on a clean network: its #1 gets a cookie, its retry gets through
    let mut q = pair("", 8);
    q.b.authip().set_dos_thresholds(0, 0);
    q.initiate_a();
    q.settle();
    assert_eq!(assert_keys_match(&q), 1);
    assert!(q.b.authip().stats().cookies_sent >= 1);
    let first = Header::parse(&q.wire[2].t.payload).unwrap();
    assert_ne!(first.responder_cookie, [0; 8], "the retry of #1 carries the cookie as CKY-R");
}

mod tls {
    use super::*;
    use hostsec_proto::policy::Policy;
    use support::pki::{self, Ca, Host, KeyKind, MemFiles};

    fn tls_policy(peer: &str, host: &Host, root: &Ca, auth: &str, extra: &str) -> Policy {
        let mut files = MemFiles::default();
        files.add("/h.pem", host.cert.pem());
        files.add("/h.key", host.key_pem());
        files.add("/ca.pem", root.pem());
        let text = format!(
            "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\nkeying = \"authip\"\nauthentication = \"{auth}\"\n\
             auto = \"none\"\ncertificate = \"/h.pem\"\nprivate_key = \"/h.key\"\ntrusted_cas = [\"/ca.pem\"]\n\
             psk = \"authip-fallback-psk-0123456789\"\n{extra}\n"
        );
        Policy::from_toml("test.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"))
    }

    fn tls_pair(kind: KeyKind, auth: &str, seed: u64) -> Pair {
        let root = pki::root("AuthIP Lab CA", KeyKind::P256);
        let ha = pki::host("a.example", "198.51.100.1", kind, &root);
        let hb = pki::host("b.example", "198.51.100.2", kind, &root);
        let mut p = Pair::new(
            tls_policy("198.51.100.2", &ha, &root, auth, ""),
            tls_policy("198.51.100.1", &hb, &root, auth, ""),
            seed,
        );
        p.a.set_wall_clock(p.now, pki::now());
        p.b.set_wall_clock(p.now, pki::now());
        p
    }

    /// TLS in GSS-API tokens ([MS-AIPS] method 4): #1 carries the ClientHello, #2 the server's flight, #3/#4 the
    /// rest; no DH in Main Mode; each side names the other's certificate subject. The IKEv1 twin (MM1 with
    /// MS-MamieExists) goes out beside #1 and is discarded by the AuthIP responder.
    #[test]
    fn tls_main_mode_every_key_type() {
        for (i, kind) in [KeyKind::P256, KeyKind::P384, KeyKind::Rsa2048].into_iter().enumerate() {
            let mut p = tls_pair(kind, "certificate", 30 + i as u64);
            p.initiate_a();
            p.settle();
            assert_eq!(assert_keys_match(&p), 1, "{kind:?}");
            let a = &p.a.main_mode_sas(p.now)[0];
            assert_eq!((a.keying, a.authip_method, a.dh_group), (Keying::AuthIp, Some("tls"), None));
            assert!(a.peer_id.as_deref().is_some_and(|id| id.contains("b.example")), "{:?}", a.peer_id);
            assert!(a.peer_cert.is_some());
            let xs: Vec<u8> = p.wire.iter().map(exchange_of).collect();
            let ikev1 = xs.iter().filter(|x| **x == hostsec_proto::wire::consts::exchange::IDENTITY_PROTECTION).count();
            assert_eq!(ikev1, 1, "one IKEv1 MM1 beside AuthIP #1, discarded: {xs:?}");
            assert_eq!(p.b.stats().ikev1_discarded_for_authip, 1);
            assert_eq!(p.b.main_mode_sas(p.now).len(), 1, "only the AuthIP SA at the responder");
            assert_eq!(p.a.main_mode_sas(p.now).len(), 1, "the IKEv1 twin is gone at the initiator");
            // nothing is left retransmitting: minutes later the SAs are still there and nothing failed
            p.drive_for(Duration::from_secs(600));
            assert_eq!(p.a.main_mode_sas(p.now)[0].state, "established");
            let failed = p.events_a.iter().chain(&p.events_b).any(|e| matches!(e, Event::NegotiationFailed { .. }));
            assert!(!failed, "{:#?}", p.events_a);
        }
    }

    /// The core reads no clock: without the daemon's wall-clock time no certificate is checked, and TLS does not
    /// start (the reason names the missing call), as for IKEv1 certificates.
    #[test]
    fn no_wall_clock_no_tls() {
        let root = pki::root("AuthIP Lab CA", KeyKind::P256);
        let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
        let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
        let mut p = Pair::new(
            tls_policy("198.51.100.2", &ha, &root, "certificate", ""),
            tls_policy("198.51.100.1", &hb, &root, "certificate", ""),
            41,
        );
        use rand_chacha::rand_core::SeedableRng;
        let rule = p.a.policy().rule("r").cloned().unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let (a, b, any) = (Pair::addr_a(), Pair::addr_b(), hostsec_proto::ike::Selector::ANY);
        let why = p.a.authip().initiate(p.now, &mut rng, &rule, a, b, any, Vec::new(), None).unwrap_err();
        assert!(why.contains("set_wall_clock"), "{why}");
    }

    /// A certificate from another CA is refused by TLS, in words.
    #[test]
    fn untrusted_certificate_is_refused() {
        let root = pki::root("AuthIP Lab CA", KeyKind::P256);
        let other = pki::root("Other CA", KeyKind::P256);
        let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &other);
        let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
        let mut p = Pair::new(
            tls_policy("198.51.100.2", &ha, &other, "certificate", ""),
            tls_policy("198.51.100.1", &hb, &root, "certificate", ""),
            40,
        );
        p.a.set_wall_clock(p.now, pki::now());
        p.b.set_wall_clock(p.now, pki::now());
        p.initiate_a();
        p.drive_for(Duration::from_secs(200));
        assert!(child_keys(&p.events_a).is_empty());
        let why: Vec<String> = p
            .events_a
            .iter()
            .chain(&p.events_b)
            .filter_map(|e| match e {
                Event::NegotiationFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert!(why.iter().any(|w| w.contains("trusted CA")), "{why:#?}");
    }
}

/// The coexistence rules ([MS-AIPS] §3.2.4, §3.3.5.2), replayed in memory with the message sequence a Windows
/// initiator sends (AuthIP #1 and, beside it, IKEv1 MM1 with MS-MamieExists; hostsec's initiator builds both from
/// the spec as Windows does).
mod coexistence {
    use super::*;
    use hostsec_proto::authip::classify::ikev1_has_mamie_exists;
    use hostsec_proto::policy::Policy;
    use hostsec_proto::wire::consts::exchange::IDENTITY_PROTECTION;
    use support::pki::{self, Ca, Host, KeyKind, MemFiles};

    fn cert_policy(peer: &str, host: &Host, root: &Ca, keying: &str) -> Policy {
        let mut files = MemFiles::default();
        files.add("/h.pem", host.cert.pem());
        files.add("/h.key", host.key_pem());
        files.add("/ca.pem", root.pem());
        let text = format!(
            "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\nkeying = \"{keying}\"\nauthentication = \"certificate\"\n\
             auto = \"none\"\ncertificate = \"/h.pem\"\nprivate_key = \"/h.key\"\ntrusted_cas = [\"/ca.pem\"]\n"
        );
        Policy::from_toml("test.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"))
    }

    fn pair_with(a_keying: &str, b_keying: &str, seed: u64) -> Pair {
        let root = pki::root("Lab CA", KeyKind::P256);
        let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
        let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
        let mut p = Pair::new(
            cert_policy("198.51.100.2", &ha, &root, a_keying),
            cert_policy("198.51.100.1", &hb, &root, b_keying),
            seed,
        );
        p.a.set_wall_clock(p.now, pki::now());
        p.b.set_wall_clock(p.now, pki::now());
        p
    }

    /// Windows-shaped initiator, `keying = "ike"` responder: the AuthIP #1 is ignored (counted), the IKEv1 MM1
    /// with MS-MamieExists is answered, IKEv1 completes, and the initiator drops its AuthIP attempt.
    #[test]
    fn ike_responder_answers_the_ikev1_twin() {
        let mut p = pair_with("authip", "ike", 50);
        p.initiate_a();
        p.settle();
        let first: Vec<&Flight> = p.wire.iter().filter(|f| f.from_a).take(2).collect();
        assert_eq!(
            first.iter().map(|f| exchange_of(f)).collect::<Vec<_>>(),
            vec![IDENTITY_PROTECTION, exchange::MAIN_MODE]
        );
        assert!(ikev1_has_mamie_exists(&first[0].t.payload), "the IKEv1 twin carries MS-MamieExists");
        assert_eq!(p.b.stats().refused_exchange, 1, "b ignored AuthIP #1");
        assert_eq!(p.b.authip().stats().received, 0);
        let a = p.a.main_mode_sas(p.now);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!((a[0].keying, a[0].state), (Keying::Ike, "established"));
        assert!(child_keys(&p.events_a).len() == 1 && child_keys(&p.events_b).len() == 1);
        // nothing of AuthIP after #1: no retransmission of it once IKEv1 answered
        let authip_sent = p.wire.iter().filter(|f| f.from_a && exchange_of(f) == exchange::MAIN_MODE).count();
        assert_eq!(authip_sent, 1);
    }

    /// Plain IKEv1 (no MS-MamieExists, as strongSwan and libreswan send) to a responder whose rule uses AuthIP is
    /// answered: it is never discarded.
    #[test]
    fn plain_ikev1_to_an_authip_responder_is_answered() {
        let mut p = pair_with("ike", "authip", 51);
        p.initiate_a();
        p.settle();
        assert!(
            !ikev1_has_mamie_exists(&p.wire[0].t.payload),
            "a keying = \"ike\" initiator never sends MS-MamieExists"
        );
        assert_eq!(p.b.stats().ikev1_discarded_for_authip, 0);
        assert_eq!(p.b.main_mode_sas(p.now)[0].keying, Keying::Ike);
        assert!(child_keys(&p.events_a).len() == 1 && child_keys(&p.events_b).len() == 1);
    }

    /// Once an IKEv1 Main Mode SA is up under a `keying = "authip"` rule (the peer answered the IKEv1 twin, or
    /// initiated plain IKEv1), a Quick Mode rekey, as a second request would, runs under it: IKEv1 Quick Mode
    /// only, no new AuthIP #1 and no new Main Mode (found while writing tests/interop/authip-fallback.sh: before,
    /// strongSwan and libreswan would have got a whole new Main Mode for every rekey).
    #[test]
    fn quick_modes_after_the_fallback_stay_under_the_ikev1_main_mode() {
        use hostsec_proto::wire::consts::exchange::{INFORMATIONAL, QUICK_MODE};
        for (a_keying, b_keying, seed) in [("authip", "ike", 52), ("ike", "authip", 53)] {
            let mut p = pair_with(a_keying, b_keying, seed);
            p.initiate_a();
            p.settle();
            let before = p.wire.len();
            // the side whose rule uses AuthIP rekeys: the initiator that fell back, or the responder
            let (authip_side, spi) = if a_keying == "authip" {
                (true, p.a.quick_mode_sas(p.now)[0].spi_in)
            } else {
                (false, p.b.quick_mode_sas(p.now)[0].spi_in)
            };
            let req = if authip_side { p.a.rekey(p.now, spi, true) } else { p.b.rekey(p.now, spi, true) };
            assert!(req.is_some(), "{a_keying}/{b_keying}: the IKEv1 pair is rekeyed");
            p.settle();
            // Informational exchanges (dead peer detection while settle() drives two minutes) are not counted
            let later: Vec<u8> = p.wire[before..].iter().map(exchange_of).filter(|x| *x != INFORMATIONAL).collect();
            assert_eq!(later, vec![QUICK_MODE; 3], "{a_keying}/{b_keying}: QM1-QM3 only, got {later:?}");
            assert_eq!(p.a.main_mode_sas(p.now).len(), 1, "{a_keying}/{b_keying}: no new Main Mode");
            assert_eq!(p.b.main_mode_sas(p.now).len(), 1, "{a_keying}/{b_keying}: no new Main Mode");
            assert_eq!(child_keys(&p.events_a).len(), 2);
            assert_eq!(child_keys(&p.events_b).len(), 2);
        }
    }
}

/// Lifetimes ([MS-AIPS] §3.1.2, §3.1.6.4): the Quick Mode initiator renews each pair at 90 % of its lifetime under
/// the Main Mode SA (make-before-break: the old pair goes 10 s after its successor, reported as rekeyed); when the
/// Main Mode SA expires its pairs stay, and the next renewal runs a new Main Mode. Over 3 hours of virtual time
/// there is always a pair, and both ends agree on every one.
#[test]
fn pairs_renew_before_expiry_across_main_mode_lifetimes() {
    let text = |peer: &str| {
        format!(
            "[global]\nmain_mode_lifetime = \"60m\"\nquick_mode_lifetime = \"10m\"\n\n[[rule]]\nname = \"r\"\n\
             remote = \"{peer}\"\nkeying = \"authip\"\nauthentication = \"anonymous\"\nauto = \"none\"\n"
        )
    };
    let mut p = Pair::new(policy(&text("198.51.100.2")), policy(&text("198.51.100.1")), 60);
    p.initiate_a();
    p.settle();
    for minute in 0..180 {
        p.drive_for(Duration::from_secs(60));
        assert!(!p.a.quick_mode_sas(p.now).is_empty(), "a has a pair at minute {minute}");
        assert!(!p.b.quick_mode_sas(p.now).is_empty(), "b has a pair at minute {minute}");
    }
    let n = assert_keys_match(&p);
    assert!(n >= 18, "one renewal per 9 minutes: {n}");
    let rekeyed = p
        .events_a
        .iter()
        .filter(|e| matches!(e, Event::QuickModeDown { reason, .. } if reason.contains("rekeyed")))
        .count();
    assert!(rekeyed >= n - 2, "old pairs go as rekeyed: {rekeyed} of {n}");
    let mm_up = p.events_a.iter().filter(|e| matches!(e, Event::MainModeUp { .. })).count();
    assert!(mm_up >= 3, "a new Main Mode after each 60-minute Main Mode lifetime: {mm_up}");
    assert!(p.a.quick_mode_sas(p.now).len() <= 2 && p.b.quick_mode_sas(p.now).len() <= 2, "old pairs are gone");
}

/// `certificate-then-psk` with `keying = "authip"` (SPEC §5): when TLS does not succeed (here the responder does not
/// trust the initiator's CA), the responder says so at once with a non-zero GSS-API Status, and the initiator falls
/// back to IKEv1 with the pre-shared key; no retransmission timeout is waited for.
#[test]
fn certificate_then_psk_falls_back_from_tls_to_ikev1_psk() {
    use hostsec_proto::policy::Policy;
    use support::pki::{self, KeyKind, MemFiles};
    let root = pki::root("AuthIP Lab CA", KeyKind::P256);
    let other = pki::root("Other CA", KeyKind::P256);
    let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &other);
    let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
    let mk = |peer: &str, host: &support::pki::Host, ca: &support::pki::Ca| {
        let mut files = MemFiles::default();
        files.add("/h.pem", host.cert.pem());
        files.add("/h.key", host.key_pem());
        files.add("/ca.pem", ca.pem());
        let text = format!(
            "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\nkeying = \"authip\"\nauthentication = \"certificate-then-psk\"\n\
             auto = \"none\"\ncertificate = \"/h.pem\"\nprivate_key = \"/h.key\"\ntrusted_cas = [\"/ca.pem\"]\n\
             psk = \"authip-fallback-psk-0123456789\"\n"
        );
        Policy::from_toml("test.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"))
    };
    let mut p = Pair::new(mk("198.51.100.2", &ha, &other), mk("198.51.100.1", &hb, &root), 70);
    p.a.set_wall_clock(p.now, support::pki::now());
    p.b.set_wall_clock(p.now, support::pki::now());
    let r = p.initiate_a();
    p.drive_for(Duration::from_secs(20));
    assert_eq!(assert_keys_match(&p), 1);
    assert!(p.events_a.iter().any(|e| matches!(e, Event::RequestDone { request, .. } if *request == r)));
    let a = p.a.main_mode_sas(p.now);
    let up: Vec<_> = a.iter().filter(|m| m.state == "established").collect();
    assert_eq!(up.len(), 1, "{a:#?}");
    assert_eq!((up[0].keying, up[0].auth), (Keying::Ike, Some(hostsec_proto::crypto::AuthMethod::Psk)));
}

/// A peer that runs Quick Mode after Quick Mode under one Main Mode SA is refused past 64 within a minute (each
/// answered one is kept a minute for retransmissions), so what it can make the SA hold stays bounded; the refusal
/// reaches it as NO-PROPOSAL-CHOSEN and the pair in use stays.
#[test]
fn quick_modes_per_main_mode_are_bounded() {
    let mut p = pair("", 80);
    p.initiate_a();
    p.settle();
    for _ in 0..70 {
        let spi = p.a.quick_mode_sas(p.now).iter().map(|q| q.spi_in).max().unwrap();
        p.a.rekey(p.now, spi, true);
        while p.step() {}
    }
    let refused = p
        .events_b
        .iter()
        .filter(|e| matches!(e, Event::NegotiationFailed { reason, .. } if reason.contains("within a minute")))
        .count();
    assert!(refused >= 5, "b refused the Quick Modes past its bound: {refused}");
    assert!(p
        .events_a
        .iter()
        .any(|e| matches!(e, Event::NegotiationFailed { reason, .. } if reason.contains("NO-PROPOSAL-CHOSEN"))));
    assert!(!p.b.quick_mode_sas(p.now).is_empty() && !p.a.quick_mode_sas(p.now).is_empty());
}
