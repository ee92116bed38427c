//! Main Mode with certificates between two endpoints in memory: every key type of the acceptance list (ECDSA
//! P-256/P-384 with methods 9/10, RSA-2048/3072 with method 3), a chain through an intermediate CA, the ID and
//! CERT/CR/SIG payloads on the wire, `hostsec sas` fields, certificate-then-psk as responder, and refusals with
//! their reasons and no SA: expired, unknown CA, revoked, wrong identity, mixed key types, no wall clock.

mod support;

use hostsec_proto::crypto::AuthMethod;
use hostsec_proto::ike::Event;
use hostsec_proto::policy::Policy;
use support::pki::{self, cert_policy, Ca, Host, KeyKind, MemFiles};
use support::Pair;

fn pair(pa: Policy, pb: Policy, seed: u64) -> Pair {
    let mut p = Pair::new(pa, pb, seed);
    p.a.set_wall_clock(p.now, pki::now());
    p.b.set_wall_clock(p.now, pki::now());
    p
}

fn up(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::MainModeUp { .. })).count()
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

/// Both sides up, Quick Mode keys mirrored.
fn assert_up(p: &Pair, ctx: &str) {
    assert_eq!(up(&p.events_a), 1, "{ctx}: a: {:#?}", p.events_a);
    assert_eq!(up(&p.events_b), 1, "{ctx}: b: {:#?}", p.events_b);
    let (ka, kb) = (support::child_keys(&p.events_a), support::child_keys(&p.events_b));
    assert_eq!((ka.len(), kb.len()), (1, 1), "{ctx}");
    assert_eq!(ka[0].0, kb[0].1, "{ctx}: SPIs mirror");
    assert_eq!(ka[0].2, kb[0].4, "{ctx}: keys mirror");
}

/// Neither side has an SA and `side`'s failures mention `words`.
fn assert_refused(p: &Pair, words: &str, ctx: &str) {
    assert_eq!(up(&p.events_a) + up(&p.events_b), 0, "{ctx}: an SA came up");
    assert!(support::child_keys(&p.events_a).is_empty() && support::child_keys(&p.events_b).is_empty());
    let all: Vec<String> = failures(&p.events_a).into_iter().chain(failures(&p.events_b)).collect();
    assert!(all.iter().any(|r| r.contains(words)), "{ctx}: no failure mentions '{words}': {all:#?}");
}

fn method(kind: KeyKind) -> AuthMethod {
    match kind {
        KeyKind::P256 => AuthMethod::EcdsaP256,
        KeyKind::P384 => AuthMethod::EcdsaP384,
        KeyKind::Rsa2048 | KeyKind::Rsa3072 => AuthMethod::RsaSig,
    }
}

#[test]
fn every_key_type_both_roles() {
    let root = pki::root("Root", KeyKind::P256);
    for (i, kind) in [KeyKind::P256, KeyKind::P384, KeyKind::Rsa2048, KeyKind::Rsa3072].into_iter().enumerate() {
        let ha = pki::host("a.example", "198.51.100.1", kind, &root);
        let hb = pki::host("b.example", "198.51.100.2", kind, &root);
        let pa = cert_policy("198.51.100.2", &ha, &[], &[&root], None, "");
        let pb = cert_policy("198.51.100.1", &hb, &[], &[&root], None, "");
        let mut p = pair(pa, pb, 100 + i as u64);
        if i % 2 == 0 {
            p.initiate_a();
        } else {
            p.b.initiate(p.now, "r", None, Pair::addr_b()).expect("initiate");
        }
        p.settle();
        let ctx = format!("{kind:?}");
        assert_up(&p, &ctx);
        let (sa_a, sa_b) = (&p.a.main_mode_sas(p.now)[0], &p.b.main_mode_sas(p.now)[0]);
        assert_eq!(sa_a.auth, Some(method(kind)), "{ctx}");
        assert_eq!(sa_b.auth, Some(method(kind)), "{ctx}");
        assert_eq!(sa_a.peer_id.as_deref(), Some("dn:C=XX, O=hostsec test, CN=b.example"), "{ctx}");
        assert_eq!(sa_b.peer_id.as_deref(), Some("dn:C=XX, O=hostsec test, CN=a.example"), "{ctx}");
        assert_eq!(
            sa_a.peer_cert,
            Some(("C=XX, O=hostsec test, CN=b.example".to_string(), "C=XX, O=hostsec test, CN=Root".to_string())),
            "{ctx}"
        );
        // MM3 and MM4 carry a CR naming the trusted CA; MM1 offered the key's method only.
        let mm3 = &p.wire[2].t.payload;
        let root_info = hostsec_proto::pki::CertInfo::parse(&root.der()).expect("root");
        assert!(mm3.windows(root_info.subject_der.len()).any(|w| w == root_info.subject_der), "{ctx}: CR in MM3");
    }
}

#[test]
fn chain_through_an_intermediate() {
    let root = pki::root("Root", KeyKind::Rsa2048);
    let sub = pki::intermediate("Sub", &root, KeyKind::P256);
    let ha = pki::host("a.example", "198.51.100.1", KeyKind::P384, &sub);
    let hb = pki::host("b.example", "198.51.100.2", KeyKind::P384, &sub);
    let pa = cert_policy(
        "198.51.100.2",
        &ha,
        &[&sub],
        &[&root],
        None,
        "remote_id = \"dn:C=XX, O=hostsec test, CN=b.example\"",
    );
    let pb =
        cert_policy("198.51.100.1", &hb, &[&sub], &[&root], None, "local_id = \"dn:C=XX,O=hostsec test,CN=b.example\"");
    let mut p = pair(pa, pb, 7);
    p.initiate_a();
    p.settle();
    assert_up(&p, "intermediate");
}

#[test]
fn fqdn_and_ip_identities() {
    let root = pki::root("Root", KeyKind::P256);
    let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
    let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
    let pa = cert_policy(
        "198.51.100.2",
        &ha,
        &[],
        &[&root],
        None,
        "local_id = \"fqdn:a.example\"\nremote_id = \"ip:198.51.100.2\"",
    );
    let pb = cert_policy(
        "198.51.100.1",
        &hb,
        &[],
        &[&root],
        None,
        "local_id = \"ip:198.51.100.2\"\nremote_id = \"fqdn:a.example\"",
    );
    let mut p = pair(pa, pb, 8);
    p.initiate_a();
    p.settle();
    assert_up(&p, "fqdn/ip");
    assert_eq!(p.b.main_mode_sas(p.now)[0].peer_id.as_deref(), Some("fqdn:a.example"));
}

#[test]
fn refusals_leave_no_sa() {
    let root = pki::root("Root", KeyKind::P256);
    let other = pki::root("Other", KeyKind::P256);
    let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
    let good_a = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
    let mut old = pki::host_params("a.example", "198.51.100.1", 31);
    old.not_after = rcgen::date_time_ymd(2025, 1, 1);
    let expired_a = pki::host_with(old, KeyKind::P256, &root);
    let foreign_a = pki::host("a.example", "198.51.100.1", KeyKind::P256, &other);
    let revoked_a = pki::host_with(pki::host_params("a.example", "198.51.100.1", 4242), KeyKind::P256, &root);
    // (case, initiator's host, responder's CRL, initiator's extra rule lines, words of the refusal)
    type Case<'h> = (&'static str, &'h Host, Option<Vec<u8>>, &'static str, &'static str);
    let cases: Vec<Case<'_>> = vec![
        ("expired", &expired_a, None, "", "expired on 2025-01-01"),
        ("unknown CA", &foreign_a, None, "", "which is not a trusted CA"),
        ("revoked", &revoked_a, Some(pki::crl(&root, &[4242])), "", "is revoked"),
        ("wrong ID", &good_a, None, "local_id = \"fqdn:evil.example\"", "does not match its certificate"),
    ];
    for (i, (name, ha, crl, extra_a, words)) in cases.into_iter().enumerate() {
        let pa = cert_policy("198.51.100.2", ha, &[], &[&root, &other], None, extra_a);
        let pb = cert_policy("198.51.100.1", &hb, &[], &[&root], crl, "");
        let mut p = pair(pa, pb, 200 + i as u64);
        p.initiate_a();
        p.settle();
        assert_refused(&p, words, name);
    }
    // The responder's remote_id names someone else.
    let pa = cert_policy("198.51.100.2", &good_a, &[], &[&root], None, "");
    let pb =
        cert_policy("198.51.100.1", &hb, &[], &[&root], None, "remote_id = \"dn:C=XX, O=hostsec test, CN=z.example\"");
    let mut p = pair(pa, pb, 300);
    p.initiate_a();
    p.settle();
    assert_refused(&p, "accepts only dn:C=XX, O=hostsec test, CN=z.example", "remote_id");
}

#[test]
fn mixed_key_types_do_not_agree_on_a_method() {
    // IKEv1 negotiates one auth method for both sides: an ECDSA P-256 host and an RSA host have none in common.
    let root = pki::root("Root", KeyKind::P256);
    let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
    let hb = pki::host("b.example", "198.51.100.2", KeyKind::Rsa2048, &root);
    let pa = cert_policy("198.51.100.2", &ha, &[], &[&root], None, "");
    let pb = cert_policy("198.51.100.1", &hb, &[], &[&root], None, "");
    let mut p = pair(pa, pb, 400);
    p.initiate_a();
    p.settle();
    assert_refused(&p, "authentication ecdsa-p256 is not what the rule uses (rsa)", "mixed");
}

#[test]
fn no_wall_clock_no_certificate_check() {
    let root = pki::root("Root", KeyKind::P256);
    let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
    let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
    let pa = cert_policy("198.51.100.2", &ha, &[], &[&root], None, "");
    let pb = cert_policy("198.51.100.1", &hb, &[], &[&root], None, "");
    let mut p = Pair::new(pa, pb, 500);
    p.initiate_a();
    p.settle();
    assert_refused(&p, "set_wall_clock", "no clock");
}

#[test]
fn certificate_then_psk_responder_accepts_either() {
    let root = pki::root("Root", KeyKind::P256);
    let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
    let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
    let psk = "psk = \"pair-test-psk-0123456789\"";
    let both = format!("authentication = \"certificate-then-psk\"\n{psk}");
    // A certificate initiator: the responder picks the signature transform (offered first).
    let pa = cert_policy("198.51.100.2", &ha, &[], &[&root], None, "");
    let pb = cert_policy_with_auth("198.51.100.1", &hb, &root, &both);
    let mut p = pair(pa, pb, 600);
    p.initiate_a();
    p.settle();
    assert_up(&p, "certificate");
    assert_eq!(p.b.main_mode_sas(p.now)[0].auth, Some(AuthMethod::EcdsaP256));
    // A PSK-only initiator.
    let pa = support::rule_policy("198.51.100.2", "");
    let pb = cert_policy_with_auth("198.51.100.1", &hb, &root, &both);
    let mut p = pair(pa, pb, 601);
    p.initiate_a();
    p.settle();
    assert_up(&p, "psk");
    assert_eq!(p.b.main_mode_sas(p.now)[0].auth, Some(AuthMethod::Psk));
    // Both certificate-then-psk: the signature method wins.
    let pa = cert_policy_with_auth("198.51.100.2", &ha, &root, &both);
    let pb = cert_policy_with_auth("198.51.100.1", &hb, &root, &both);
    let mut p = pair(pa, pb, 602);
    p.initiate_a();
    p.settle();
    assert_up(&p, "both");
    assert_eq!(p.a.main_mode_sas(p.now)[0].auth, Some(AuthMethod::EcdsaP256));
}

/// Like `cert_policy`, with the rule's `authentication` line replaced by `auth_lines`.
fn cert_policy_with_auth(peer: &str, host: &Host, root: &Ca, auth_lines: &str) -> Policy {
    let mut files = MemFiles::default();
    files.add("/h.pem", host.cert.pem());
    files.add("/h.key", host.key_pem());
    files.add("/ca.pem", root.pem());
    let text = format!(
        "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\nauto = \"none\"\n{auth_lines}\ncertificate = \"/h.pem\"\n\
         private_key = \"/h.key\"\ntrusted_cas = [\"/ca.pem\"]\n"
    );
    Policy::from_toml("test.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"))
}

/// A SIG that does not verify with the key of the certificate sent beside it (the signer's key is another one
/// than the certificate's, as with a tampered signature or a stolen certificate): refused, no SA, in both roles.
#[test]
fn signature_not_from_the_certificate_key() {
    use hostsec_proto::pki::{CertAuth, CertInfo, HostCredentials, TrustStore};
    use std::sync::Arc;
    let root = pki::root("Root", KeyKind::P256);
    for (i, a_lies) in [true, false].into_iter().enumerate() {
        let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
        let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
        // Another certificate for the same name and addresses, from the same CA, with another key.
        let twin = pki::host(
            if a_lies { "a.example" } else { "b.example" },
            if a_lies { "198.51.100.1" } else { "198.51.100.2" },
            KeyKind::P256,
            &root,
        );
        let mut pa = cert_policy("198.51.100.2", &ha, &[], &[&root], None, "");
        let mut pb = cert_policy("198.51.100.1", &hb, &[], &[&root], None, "");
        let (liar, host) = if a_lies { (&mut pa, &ha) } else { (&mut pb, &hb) };
        let mut creds =
            HostCredentials::from_pem_or_der(host.cert.pem().as_bytes(), host.key_pem().as_bytes()).expect("creds");
        creds.cert = CertInfo::parse(&twin.der()).expect("twin");
        let mut trust = TrustStore::new();
        trust.add_cas(root.pem().as_bytes()).expect("CA");
        liar.rules[0].cert_auth = Some(Arc::new(CertAuth { host: creds, trust }));
        let mut p = pair(pa, pb, 700 + i as u64);
        p.initiate_a();
        p.settle();
        let which = if a_lies { "SIG_I" } else { "SIG_R" };
        let words = format!("{which} from the peer does not verify with the ECDSA P-256 key of its certificate");
        if a_lies {
            assert_refused(&p, &words, which);
        } else {
            // A Main Mode responder is done once it sends MM6, so the lying responder holds an ISAKMP SA; the
            // honest initiator refuses MM6, has no SA and starts no Quick Mode, so no ESP SA exists anywhere.
            assert_eq!(up(&p.events_a), 0, "{which}: the initiator came up");
            assert!(support::child_keys(&p.events_a).is_empty() && support::child_keys(&p.events_b).is_empty());
            assert!(failures(&p.events_a).iter().any(|r| r.contains(&words)), "{:#?}", failures(&p.events_a));
        }
    }
}

/// A certificate-then-psk rule whose certificate is `host`'s and whose trusted CA is `trusted`.
fn fallback_policy(peer: &str, host: &Host, trusted: &Ca) -> Policy {
    let mut files = MemFiles::default();
    files.add("/h.pem", host.cert.pem());
    files.add("/h.key", host.key_pem());
    files.add("/ca.pem", trusted.pem());
    let text = format!(
        "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\nauto = \"none\"\nauthentication = \"certificate-then-psk\"\n\
         psk = \"pair-test-psk-0123456789\"\ncertificate = \"/h.pem\"\nprivate_key = \"/h.key\"\n\
         trusted_cas = [\"/ca.pem\"]\n"
    );
    Policy::from_toml("test.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"))
}

/// SPEC §5: when certificate authentication does not succeed, the initiator starts a fresh Main Mode offering
/// the pre-shared key only, and the request it served completes with it. Both directions of failure: the
/// responder refuses the initiator's certificate (and says so with INVALID-CERTIFICATE), or the initiator
/// refuses the responder's.
#[test]
fn certificate_then_psk_initiator_falls_back() {
    let root = pki::root("Root", KeyKind::P256);
    let other = pki::root("Other", KeyKind::P256);
    for (i, responder_refuses) in [true, false].into_iter().enumerate() {
        let (ca_a, ca_b) = if responder_refuses { (&other, &root) } else { (&root, &other) };
        let ha = pki::host("a.example", "198.51.100.1", KeyKind::P256, ca_a);
        let hb = pki::host("b.example", "198.51.100.2", KeyKind::P256, ca_b);
        // Each side trusts only the root: one of the two certificates comes from a CA its verifier does not trust.
        let pa = fallback_policy("198.51.100.2", &ha, &root);
        let pb = fallback_policy("198.51.100.1", &hb, &root);
        let mut p = pair(pa, pb, 800 + i as u64);
        let request = p.initiate_a();
        p.settle();
        let ctx = if responder_refuses { "responder refuses" } else { "initiator refuses" };
        assert!(
            p.events_a.iter().any(|e| matches!(e, Event::RequestDone { request: r, .. } if *r == request)),
            "{ctx}: the request completed: {:#?}",
            p.events_a
        );
        assert!(
            !p.events_a.iter().any(|e| matches!(e, Event::NegotiationFailed { request: Some(r), .. } if *r == request)),
            "{ctx}: the request was not failed"
        );
        let sas = p.a.main_mode_sas(p.now);
        assert_eq!(sas.len(), 1, "{ctx}: {sas:#?}");
        assert_eq!(sas[0].auth, Some(AuthMethod::Psk), "{ctx}");
        assert_eq!(support::child_keys(&p.events_a).len(), 1, "{ctx}");
        let refused_by = if responder_refuses { &p.events_b } else { &p.events_a };
        assert!(
            failures(refused_by).iter().any(|r| r.contains("which is not a trusted CA")),
            "{ctx}: the certificate refusal is reported: {:#?}",
            failures(refused_by)
        );
    }
}
