//! Certificate validation with a test PKI generated here (rcgen): hosts with ECDSA P-256, P-384, RSA-2048 and
//! RSA-3072 keys under a root and under an intermediate CA; the strongSwan vectors' own PKI; host credentials
//! in every key format; and the negative suite of issue 6, each refused with its reason in words: expired,
//! not yet valid, unknown CA, wrong identity, tampered signatures, revoked by CRL, wrong key usage, RSA-1024,
//! chain loop, over-deep chain.

mod support;

use hostsec_proto::crypto::AuthMethod;
use hostsec_proto::pki::{
    check_peer_id, dn_matches_text, CertError, CertInfo, HostCredentials, PeerId, TrustStore, MAX_INTERMEDIATES,
};
use hostsec_proto::wire::IdPayload;
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use support::pki::{self, at, now, Ca, KeyKind};

const ALL_KINDS: [KeyKind; 4] = [KeyKind::P256, KeyKind::P384, KeyKind::Rsa2048, KeyKind::Rsa3072];

fn store(cas: &[&Ca]) -> TrustStore {
    let mut s = TrustStore::new();
    for ca in cas {
        assert_eq!(s.add_cas(ca.pem().as_bytes()), Ok(1));
    }
    s
}

fn method(kind: KeyKind) -> AuthMethod {
    match kind {
        KeyKind::P256 => AuthMethod::EcdsaP256,
        KeyKind::P384 => AuthMethod::EcdsaP384,
        KeyKind::Rsa2048 | KeyKind::Rsa3072 => AuthMethod::RsaSig,
    }
}

/// Every key type of the acceptance list, directly under a root of each type and under an intermediate CA:
/// the chain validates, the peer's fields are read, and a signature made with the host's credentials verifies
/// with the key the validation returns.
#[test]
fn every_key_type_validates_and_signs() {
    let root = pki::root("Root P-384", KeyKind::P384);
    let rsa_root = pki::root("Root RSA", KeyKind::Rsa2048);
    let sub = pki::intermediate("Sub P-256", &root, KeyKind::P256);
    let trust = store(&[&root, &rsa_root]);
    for (i, kind) in ALL_KINDS.into_iter().enumerate() {
        for (issuer, via, root_cn) in
            [(&root, None, "Root P-384"), (&rsa_root, None, "Root RSA"), (&sub, Some(&sub), "Root P-384")]
        {
            let name = format!("h{i}.example");
            let host = pki::host(&name, "192.0.2.7", kind, issuer);
            let intermediates: Vec<Vec<u8>> = via.iter().map(|ca| ca.der()).collect();
            let refs: Vec<&[u8]> = intermediates.iter().map(|v| v.as_slice()).collect();
            let peer = trust.validate_chain(&host.der(), &refs, now()).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(peer.subject_dn, format!("C=XX, O=hostsec test, CN={name}"));
            assert_eq!(peer.san_dns, vec![name.clone()]);
            assert_eq!(peer.san_ips, vec!["192.0.2.7".parse::<std::net::IpAddr>().expect("ip")]);
            assert_eq!(peer.public_key.auth_method(), method(kind));
            assert_eq!(peer.path.len(), 2 + usize::from(via.is_some()), "{:?}", peer.path);
            assert_eq!(peer.path.last(), Some(&format!("C=XX, O=hostsec test, CN={root_cn}")));

            let creds = HostCredentials::from_pem_or_der(host.cert.pem().as_bytes(), host.key_pem().as_bytes())
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(creds.auth_method(), method(kind));
            let hash = vec![0x42u8; if kind == KeyKind::P384 { 48 } else { 32 }];
            let sig = creds.sign(&hash).expect("sign");
            peer.public_key.verify(&hash, &sig).expect("verify with the validated key");
        }
    }
}

/// The strongSwan vectors' certificates validate against their CA (at a time inside their 2026-2036
/// validity), their SIG_I/SIG_R verify with the keys the validation returns, and their ID payloads match.
#[test]
fn strongswan_vector_pki() {
    for name in ["06-cert-ecdsa-p256", "07-cert-ecdsa-p384", "08-cert-rsa2048"] {
        let v = support::vectors::load(name);
        let mut trust = TrustStore::new();
        trust.add_cas(&support::vectors::pki_file(name, "ca.pem")).expect("CA");
        for (cert, id, hash, sig) in [
            ("/phase1/CERT_I", "/phase1/IDii_b", "/phase1/HASH_I", "/phase1/SIG_I"),
            ("/phase1/CERT_R", "/phase1/IDir_b", "/phase1/HASH_R", "/phase1/SIG_R"),
        ] {
            let get = |p: &str| hex::decode(v.pointer(p).and_then(|x| x.as_str()).expect(p)).expect("hex");
            let peer = trust.validate_chain(&get(cert), &[], at(2030, 6, 1)).unwrap_or_else(|e| panic!("{name}: {e}"));
            peer.public_key.verify(&get(hash), &get(sig)).unwrap_or_else(|e| panic!("{name}: {sig}: {e}"));
            let id_body = get(id);
            let id = PeerId::from_payload(&IdPayload::parse(&id_body).expect("ID"));
            check_peer_id(&peer, &id).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // The certificates were made on 2026-11-29 (the generating machine's clock) and are not valid before.
        let cert = hex::decode(v["phase1"]["CERT_I"].as_str().expect("cert")).expect("hex");
        let err = trust.validate_chain(&cert, &[], at(2026, 1, 1)).unwrap_err();
        assert!(matches!(err, CertError::NotYetValid { .. }), "{name}: {err}");
        // The vector's own host certificate and key load as this host's credentials (SEC1/PKCS#1 PEM keys).
        let creds = HostCredentials::from_pem_or_der(
            &support::vectors::pki_file(name, "a.pem"),
            &support::vectors::pki_file(name, "a.key"),
        )
        .expect("credentials");
        assert_eq!(creds.cert.subject_dn, "C=XX, O=hostsec KAT, CN=a.kat.example");
    }
}

/// Intermediates in any order, with unrelated extras, validate; without the intermediate, the refusal names it.
#[test]
fn intermediates_order_and_absence() {
    let root = pki::root("Root", KeyKind::P256);
    let sub1 = pki::intermediate("Sub 1", &root, KeyKind::P256);
    let sub2 = pki::intermediate("Sub 2", &sub1, KeyKind::P256);
    let stranger = pki::root("Stranger", KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &sub2);
    let trust = store(&[&root]);
    let (d1, d2, ds) = (sub1.der(), sub2.der(), stranger.der());
    let peer = trust.validate_chain(&host.der(), &[&ds, &d1, &d2], now()).expect("any order");
    assert_eq!(peer.path.len(), 4);
    let err = trust.validate_chain(&host.der(), &[&d1], now()).unwrap_err();
    assert_eq!(
        err,
        CertError::UnknownIssuer {
            subject: "C=XX, O=hostsec test, CN=h.example".into(),
            issuer: "C=XX, O=hostsec test, CN=Sub 2".into()
        }
    );
    assert!(err.to_string().contains("is issued by 'C=XX, O=hostsec test, CN=Sub 2', which is not a trusted CA"));
}

/// Expired and not-yet-valid host certificates, an expired intermediate and an expired trusted CA: each is
/// named with its date.
#[test]
fn validity_periods() {
    let root = pki::root("Root", KeyKind::P256);
    let trust = store(&[&root]);
    let mut p = pki::host_params("old.example", "192.0.2.1", 1);
    p.not_after = rcgen::date_time_ymd(2025, 6, 30);
    let old = pki::host_with(p, KeyKind::P256, &root);
    let err = trust.validate_chain(&old.der(), &[], now()).unwrap_err();
    assert_eq!(
        err,
        CertError::Expired {
            subject: "C=XX, O=hostsec test, CN=old.example".into(),
            not_after: "2025-06-30 00:00:00 UTC".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "certificate 'C=XX, O=hostsec test, CN=old.example' expired on 2025-06-30 00:00:00 UTC"
    );

    let mut p = pki::host_params("new.example", "192.0.2.1", 2);
    p.not_before = rcgen::date_time_ymd(2031, 1, 1);
    let new = pki::host_with(p, KeyKind::P256, &root);
    let err = trust.validate_chain(&new.der(), &[], now()).unwrap_err();
    assert!(
        matches!(&err, CertError::NotYetValid { not_before, .. } if not_before == "2031-01-01 00:00:00 UTC"),
        "{err}"
    );
    assert!(err.to_string().contains("check this host's clock"));

    let mut sp = pki::ca_params("Old Sub", None);
    sp.not_after = rcgen::date_time_ymd(2029, 1, 1);
    let sub = pki::intermediate_with(sp, &root, KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &sub);
    let err = trust.validate_chain(&host.der(), &[&sub.der()], now()).unwrap_err();
    assert!(matches!(&err, CertError::Expired { subject, .. } if subject.ends_with("CN=Old Sub")), "{err}");

    // webpki keeps only a trusted CA's name and key; its validity is checked here.
    let mut rp = pki::ca_params("Old Root", None);
    rp.not_after = rcgen::date_time_ymd(2029, 1, 1);
    let old_root = pki::root_with(rp, KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &old_root);
    let err = store(&[&old_root]).validate_chain(&host.der(), &[], now()).unwrap_err();
    assert!(matches!(&err, CertError::Expired { subject, .. } if subject.ends_with("CN=Old Root")), "{err}");
}

/// A certificate from a CA that is not trusted (alone, or with that CA's root sent along) is refused.
#[test]
fn unknown_ca() {
    let root = pki::root("Root", KeyKind::P256);
    let other = pki::root("Other Root", KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &other);
    let trust = store(&[&root]);
    for sent in [vec![], vec![other.der()]] {
        let refs: Vec<&[u8]> = sent.iter().map(|v| v.as_slice()).collect();
        let err = trust.validate_chain(&host.der(), &refs, now()).unwrap_err();
        assert!(matches!(&err, CertError::UnknownIssuer { issuer, .. } if issuer.ends_with("CN=Other Root")), "{err}");
    }
    // Same name as the trusted root, different key: the signature cannot verify.
    let impostor = pki::root("Root", KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &impostor);
    let err = trust.validate_chain(&host.der(), &[], now()).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { .. }), "{err}");
    // An empty store trusts nothing.
    let err = TrustStore::new().validate_chain(&host.der(), &[], now()).unwrap_err();
    assert!(matches!(err, CertError::UnknownIssuer { .. }), "{err}");
}

/// Identities: DN equal to the subject (byte for byte or as text), FQDN and IP in the subjectAltName; anything
/// else is refused with what the certificate holds.
#[test]
fn identities() {
    let root = pki::root("Root", KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.9", KeyKind::P256, &root);
    let peer = store(&[&root]).validate_chain(&host.der(), &[], now()).expect("valid");
    let info = CertInfo::parse(&host.der()).expect("parse");
    check_peer_id(&peer, &PeerId::Dn(info.subject_der.clone())).expect("own DN");
    check_peer_id(&peer, &PeerId::Fqdn("H.Example.".into())).expect("FQDN, any case, trailing dot");
    check_peer_id(&peer, &PeerId::Ip("192.0.2.9".parse().expect("ip"))).expect("IP");
    assert!(dn_matches_text(&info.subject_der, "c=XX,o=Hostsec Test , CN=h.example"));
    assert!(!dn_matches_text(&info.subject_der, "C=XX, O=hostsec test"));
    assert!(!dn_matches_text(&info.subject_der, "CN=h.example, O=hostsec test, C=XX"), "order matters");

    let other = CertInfo::parse(&root.der()).expect("parse");
    let err = check_peer_id(&peer, &PeerId::Dn(other.subject_der)).unwrap_err();
    assert!(err.to_string().contains("dn:C=XX, O=hostsec test, CN=Root does not match"), "{err}");
    let err = check_peer_id(&peer, &PeerId::Fqdn("evil.example".into())).unwrap_err();
    assert!(err.to_string().contains("its subjectAltName DNS names are [h.example]"), "{err}");
    let err = check_peer_id(&peer, &PeerId::Ip("192.0.2.10".parse().expect("ip"))).unwrap_err();
    assert!(err.to_string().contains("its subjectAltName addresses are [192.0.2.9]"), "{err}");
    // The CN is not an FQDN identity (RFC 4945 §3.1): a certificate without DNS SAN does not vouch for one.
    let mut p = pki::host_params("cn-only.example", "192.0.2.9", 3);
    p.subject_alt_names.clear();
    let cn_only = pki::host_with(p, KeyKind::P256, &root);
    let peer = store(&[&root]).validate_chain(&cn_only.der(), &[], now()).expect("valid");
    assert!(check_peer_id(&peer, &PeerId::Fqdn("cn-only.example".into())).is_err());
    assert!(check_peer_id(&peer, &PeerId::Other { id_type: 3 }).is_err());
}

/// A certificate whose signature was tampered with, and an AUTH signature (SIG payload) tampered with: both fail.
#[test]
fn tampered_signatures() {
    let root = pki::root("Root", KeyKind::Rsa2048);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::Rsa2048, &root);
    let trust = store(&[&root]);
    let mut der = host.der();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = trust.validate_chain(&der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { .. }), "{err}");

    let peer = trust.validate_chain(&host.der(), &[], now()).expect("valid");
    let creds = HostCredentials::from_pem_or_der(host.cert.pem().as_bytes(), host.key_pem().as_bytes()).expect("creds");
    let hash = [7u8; 32];
    let mut sig = creds.sign(&hash).expect("sign");
    peer.public_key.verify(&hash, &sig).expect("untouched");
    sig[10] ^= 0x40;
    assert!(peer.public_key.verify(&hash, &sig).is_err());
}

/// A CRL that lists the host's serial revokes it; other hosts of the same CA still validate; a CA without a
/// loaded CRL is not refused for that (CRLs are optional); a revoked intermediate revokes what is below it.
#[test]
fn revoked_by_crl() {
    let root = pki::root("Root", KeyKind::P256);
    let sub = pki::intermediate_with(
        {
            let mut p = pki::ca_params("Sub", None);
            p.serial_number = Some(rcgen::SerialNumber::from(77u64));
            p
        },
        &root,
        KeyKind::P256,
    );
    let revoked = pki::host_with(pki::host_params("bad.example", "192.0.2.1", 4242), KeyKind::P256, &root);
    let fine = pki::host_with(pki::host_params("good.example", "192.0.2.2", 4243), KeyKind::P256, &root);
    let mut trust = store(&[&root]);
    assert_eq!(trust.add_crls(&pki::crl(&root, &[4242])), Ok(1));
    assert_eq!(trust.crls()[0].revoked, 1);
    let err = trust.validate_chain(&revoked.der(), &[], now()).unwrap_err();
    assert_eq!(err, CertError::Revoked { subject: "C=XX, O=hostsec test, CN=bad.example".into() });
    assert!(err.to_string().contains("is revoked (listed in a loaded CRL)"));
    trust.validate_chain(&fine.der(), &[], now()).expect("not revoked");
    // Under the intermediate, with no CRL of the intermediate loaded: fine.
    let below = pki::host("below.example", "192.0.2.3", KeyKind::P256, &sub);
    trust.validate_chain(&below.der(), &[&sub.der()], now()).expect("no CRL for Sub");
    // The root's CRL revokes the intermediate: everything below it is refused.
    let mut trust = store(&[&root]);
    trust.add_crls(&pki::crl(&root, &[77])).expect("CRL");
    let err = trust.validate_chain(&below.der(), &[&sub.der()], now()).unwrap_err();
    assert!(matches!(err, CertError::Revoked { .. }), "{err}");
    // A CRL signed by another key is refused when used.
    let impostor = pki::root("Root", KeyKind::P256);
    let mut trust = store(&[&root]);
    trust.add_crls(&pki::crl(&impostor, &[])).expect("CRL parses");
    let err = trust.validate_chain(&fine.der(), &[], now()).unwrap_err();
    assert!(matches!(err, CertError::Crl(_)), "{err}");
    assert!(TrustStore::new().add_crls(b"garbage").is_err());
}

/// keyUsage without digitalSignature, extendedKeyUsage for other purposes only, a CA without keyCertSign and a
/// CA certificate presented as a host certificate are refused; no EKU at all, ipsecIKE alone and
/// nonRepudiation alone are accepted.
#[test]
fn key_usage() {
    let root = pki::root("Root", KeyKind::P256);
    let trust = store(&[&root]);
    let with = |f: &dyn Fn(&mut rcgen::CertificateParams)| {
        let mut p = pki::host_params("h.example", "192.0.2.1", 9);
        f(&mut p);
        pki::host_with(p, KeyKind::P256, &root).der()
    };
    let err = trust
        .validate_chain(&with(&|p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]), &[], now())
        .unwrap_err();
    assert!(matches!(&err, CertError::BadKeyUsage { why, .. } if why.contains("neither digitalSignature")), "{err}");
    let err = trust
        .validate_chain(&with(&|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning]), &[], now())
        .unwrap_err();
    assert!(
        matches!(&err, CertError::BadKeyUsage { why, .. } if why.contains("1.3.6.1.5.5.7.3.3") && why.contains("ipsecIKE")),
        "{err}"
    );
    trust.validate_chain(&with(&|p| p.extended_key_usages.clear()), &[], now()).expect("no EKU");
    trust
        .validate_chain(
            &with(&|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 17])]),
            &[],
            now(),
        )
        .expect("ipsecIKE");
    trust
        .validate_chain(&with(&|p| p.key_usages = vec![KeyUsagePurpose::ContentCommitment]), &[], now())
        .expect("nonRepudiation");
    trust.validate_chain(&with(&|p| p.key_usages.clear()), &[], now()).expect("no keyUsage");

    let mut sp = pki::ca_params("No-Sign Sub", None);
    sp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let sub = pki::intermediate_with(sp, &root, KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &sub);
    let err = trust.validate_chain(&host.der(), &[&sub.der()], now()).unwrap_err();
    assert!(
        matches!(&err, CertError::BadKeyUsage { subject, why } if subject.ends_with("No-Sign Sub") && why.contains("keyCertSign")),
        "{err}"
    );

    let sub = pki::intermediate("Sub", &root, KeyKind::P256);
    let err = trust.validate_chain(&sub.der(), &[], now()).unwrap_err();
    assert!(matches!(&err, CertError::BadKeyUsage { why, .. } if why.contains("CA certificate")), "{err}");
}

/// RSA-1024: as the peer's key, as an intermediate the peer sends, as a trusted CA and as this host's key.
#[test]
fn rsa_1024_refused() {
    let root = pki::root("Root", KeyKind::Rsa2048);
    let trust = store(&[&root]);
    let (private, public) = pki::raw_rsa(1024);
    let public = pki::RsaPublic(public);
    let weak = pki::cert_for_rsa_public(&pki::host_params("weak.example", "192.0.2.1", 5), &public, &root);
    let err = trust.validate_chain(weak.der(), &[], now()).unwrap_err();
    assert_eq!(
        err,
        CertError::KeyTooWeak { subject: "C=XX, O=hostsec test, CN=weak.example".into(), key: "RSA-1024".into() }
    );
    assert!(err.to_string().contains("has a RSA-1024 key; at least RSA-2048"), "{err}");

    let weak_ca = pki::cert_for_rsa_public(&pki::ca_params("Weak CA", None), &public, &root);
    let mut s = TrustStore::new();
    let err = s.add_cas(weak_ca.pem().as_bytes()).unwrap_err();
    assert!(matches!(err, CertError::KeyTooWeak { .. }), "{err}");
    assert!(s.cas().is_empty());

    // This host's own certificate and key.
    let pem = format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n", base64(&private));
    let err = HostCredentials::from_pem_or_der(weak.pem().as_bytes(), pem.as_bytes()).unwrap_err();
    assert!(matches!(err, CertError::KeyTooWeak { .. }), "{err}");
}

/// Intermediates that issue each other in a circle: refused as a loop, naming the loop.
#[test]
fn chain_loop() {
    let root = pki::root("Root", KeyKind::P256);
    // Loop A ⇄ B: A is issued by B and B by A; the host is issued by A. Neither reaches the trusted root.
    let (ka, kb) = (pki::key(KeyKind::P256), pki::key(KeyKind::P256));
    let (pa, pb) = (pki::ca_params("Loop A", None), pki::ca_params("Loop B", None));
    let issuer_a = rcgen::Issuer::from_params(&pa, &ka);
    let issuer_b = rcgen::Issuer::from_params(&pb, &kb);
    let a = pa.signed_by(&ka, &issuer_b).expect("A");
    let b = pb.signed_by(&kb, &issuer_a).expect("B");
    let hk = pki::key(KeyKind::P256);
    let host = pki::host_params("h.example", "192.0.2.1", 6).signed_by(&hk, &issuer_a).expect("host");
    let err = store(&[&root]).validate_chain(host.der(), &[b.der(), a.der()], now()).unwrap_err();
    assert_eq!(
        err,
        CertError::ChainLoop {
            subject: "C=XX, O=hostsec test, CN=h.example".into(),
            path: "C=XX, O=hostsec test, CN=h.example → C=XX, O=hostsec test, CN=Loop A → C=XX, O=hostsec test, CN=Loop B → C=XX, O=hostsec test, CN=Loop A".into()
        }
    );
    assert!(err.to_string().contains("loops back on itself"));
}

/// A chain of MAX_INTERMEDIATES intermediates validates; one more is refused as too long; a pathLenConstraint
/// is enforced.
#[test]
fn over_deep_chain() {
    let root = pki::root("Root", KeyKind::P256);
    let trust = store(&[&root]);
    let mut cas = vec![pki::intermediate("Sub 1", &root, KeyKind::P256)];
    for i in 2..=MAX_INTERMEDIATES + 1 {
        let next = pki::intermediate(&format!("Sub {i}"), cas.last().expect("ca"), KeyKind::P256);
        cas.push(next);
    }
    let ders: Vec<Vec<u8>> = cas.iter().map(|c| c.der()).collect();
    let refs: Vec<&[u8]> = ders.iter().map(|v| v.as_slice()).collect();
    let ok = pki::host("ok.example", "192.0.2.1", KeyKind::P256, &cas[MAX_INTERMEDIATES - 1]);
    let peer = trust.validate_chain(&ok.der(), &refs[..MAX_INTERMEDIATES], now()).expect("six intermediates");
    assert_eq!(peer.path.len(), MAX_INTERMEDIATES + 2);
    let deep = pki::host("deep.example", "192.0.2.1", KeyKind::P256, &cas[MAX_INTERMEDIATES]);
    let err = trust.validate_chain(&deep.der(), &refs, now()).unwrap_err();
    assert!(
        matches!(&err, CertError::PathTooLong { why, .. } if why.contains("more than 6 intermediate CAs")),
        "{err}"
    );

    // Root allows no intermediate (pathLenConstraint 0).
    let strict = pki::root_with(pki::ca_params("Strict Root", Some(0)), KeyKind::P256);
    let sub = pki::intermediate("Sub", &strict, KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &sub);
    let err = store(&[&strict]).validate_chain(&host.der(), &[&sub.der()], now()).unwrap_err();
    assert!(matches!(&err, CertError::PathTooLong { why, .. } if why.contains("pathLenConstraint")), "{err}");

    // An intermediate that allows no CA below it.
    let sub1 = pki::intermediate_with(pki::ca_params("Sub 1", Some(0)), &root, KeyKind::P256);
    let sub2 = pki::intermediate("Sub 2", &sub1, KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &sub2);
    let err = trust.validate_chain(&host.der(), &[&sub1.der(), &sub2.der()], now()).unwrap_err();
    assert!(matches!(&err, CertError::PathTooLong { why, .. } if why.contains("pathLenConstraint")), "{err}");
    let ok = pki::host("ok.example", "192.0.2.1", KeyKind::P256, &sub1);
    trust.validate_chain(&ok.der(), &[&sub1.der()], now()).expect("directly below Sub 1");
}

/// Host credentials: PKCS#8 PEM and DER, SEC1 and PKCS#1 keys (the vectors' strongSwan keys above); a key that
/// is not the certificate's; a certificate file with the chain after the host certificate; garbage.
#[test]
fn host_credentials_formats() {
    let root = pki::root("Root", KeyKind::P256);
    let sub = pki::intermediate("Sub", &root, KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P384, &sub);
    let other = pki::host("o.example", "192.0.2.2", KeyKind::P384, &sub);
    let chain_pem = format!("{}{}", host.cert.pem(), sub.pem());
    let creds = HostCredentials::from_pem_or_der(chain_pem.as_bytes(), host.key_pem().as_bytes()).expect("PEM");
    assert_eq!(creds.chain.len(), 1);
    assert_eq!(creds.certificates_to_send().count(), 2);
    assert_eq!(creds.key_description(), "ECDSA P-384");
    let sub_info = CertInfo::parse(&sub.der()).expect("sub");
    let root_info = CertInfo::parse(&root.der()).expect("root");
    assert!(creds.answers_request(&sub_info.subject_der) && creds.answers_request(&root_info.subject_der));
    assert!(!creds.answers_request(&CertInfo::parse(&pki::root("Else", KeyKind::P256).der()).expect("x").subject_der));
    HostCredentials::from_pem_or_der(&host.der(), host.key.serialized_der()).expect("DER certificate and PKCS#8 key");
    let err = HostCredentials::from_pem_or_der(host.cert.pem().as_bytes(), other.key_pem().as_bytes()).unwrap_err();
    assert_eq!(err, CertError::KeyMismatch { subject: "C=XX, O=hostsec test, CN=h.example".into() });
    assert!(HostCredentials::from_pem_or_der(b"", host.key_pem().as_bytes()).is_err());
    let err = HostCredentials::from_pem_or_der(
        host.cert.pem().as_bytes(),
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("encrypted keys are not supported"), "{err}");
    // Its own chain validates against the root, as `hostsec certs` will show.
    let sent: Vec<&[u8]> = creds.chain.iter().map(|c| c.der.as_slice()).collect();
    store(&[&root]).validate_chain(&creds.cert.der, &sent, now()).expect("own chain");
}

/// A trusted-CA file must hold CAs only; a file of several CAs adds them all or none.
#[test]
fn trusted_ca_files() {
    let root = pki::root("Root", KeyKind::P256);
    let host = pki::host("h.example", "192.0.2.1", KeyKind::P256, &root);
    let mut s = TrustStore::new();
    let err = s.add_cas(host.cert.pem().as_bytes()).unwrap_err();
    assert!(matches!(err, CertError::NotCa { .. }), "{err}");
    let both = format!("{}{}", root.pem(), host.cert.pem());
    assert!(s.add_cas(both.as_bytes()).is_err());
    assert!(s.cas().is_empty(), "nothing added from a refused file");
    let other = pki::root("Other", KeyKind::Rsa2048);
    assert_eq!(s.add_cas(format!("{}{}", root.pem(), other.pem()).as_bytes()), Ok(2));
    assert_eq!(s.add_cas(&root.der()), Ok(1), "DER");
    assert_eq!(s.ca_names().count(), 3);
    assert!(matches!(s.add_cas(b"not a certificate"), Err(CertError::Malformed(_))));
    assert!(matches!(s.add_cas(b"-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"), Err(CertError::NoCertificate)));
}

/// Standard base64 with line breaks, for the PEM of keys the test makes by hand.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 16 == 0 {
            out.push('\n');
        }
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for j in 0..4 {
            if j <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * j) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
