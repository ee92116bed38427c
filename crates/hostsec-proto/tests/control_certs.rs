//! `hostsec certs` as the daemon builds it (`CertsView::from_policy`): rules that share material share one
//! entry, each host certificate's chain is validated against its rule's trusted CAs at the given time, expiry
//! is counted in days, expired host and CA certificates make the view invalid with the reason in words, CRLs
//! show their dates and revocations, and a policy without certificate rules has no entry and is valid.

mod support;

use hostsec_proto::control::{CertsView, Request};
use hostsec_proto::policy::{ConfigFiles, Policy};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::pki::{self, KeyKind};

/// Files served from memory, as the config loader reads them.
#[derive(Default)]
struct MemFiles(HashMap<PathBuf, Vec<u8>>);

impl MemFiles {
    fn add(&mut self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.0.insert(PathBuf::from(path), bytes.into());
    }
}

impl ConfigFiles for MemFiles {
    fn read_secret(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.read_file(path)
    }
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.0.get(path).cloned().ok_or_else(|| format!("no file {}", path.display()))
    }
}

fn rule(name: &str, peer: &str, extra: &str) -> String {
    format!("[[rule]]\nname = \"{name}\"\nremote = \"{peer}\"\nauto = \"none\"\n{extra}\n")
}

fn cert_keys(cert: &str, key: &str, cas: &str, crls: &str) -> String {
    format!(
        "authentication = \"certificate\"\ncertificate = \"{cert}\"\nprivate_key = \"{key}\"\n\
         trusted_cas = [{cas}]\ncrls = [{crls}]"
    )
}

#[test]
fn shared_material_is_one_entry_with_its_rules() {
    let root = pki::root("Root", KeyKind::P256);
    let inter = pki::intermediate("Inter", &root, KeyKind::P384);
    let a = pki::host("a.example", "198.51.100.1", KeyKind::P256, &inter);
    let b = pki::host("b.example", "198.51.100.1", KeyKind::Rsa3072, &root);
    let mut files = MemFiles::default();
    files.add("/etc/a.pem", a.cert.pem() + &inter.pem());
    files.add("/etc/a.key", a.key_pem());
    files.add("/etc/b.pem", b.cert.pem());
    files.add("/etc/b.key", b.key_pem());
    files.add("/etc/root.pem", root.pem());
    files.add("/etc/root.crl", pki::crl(&root, &[7, 8]));
    let shared = cert_keys("/etc/a.pem", "/etc/a.key", "\"/etc/root.pem\"", "\"/etc/root.crl\"");
    let text = [
        rule("one", "198.51.100.2", &shared),
        rule("psk-only", "198.51.100.3", "psk = \"a pre-shared key of some length\""),
        rule("two", "198.51.100.4", &shared),
        rule("rsa", "198.51.100.5", &cert_keys("/etc/b.pem", "/etc/b.key", "\"/etc/root.pem\"", "")),
    ]
    .concat();
    let policy = Policy::from_toml("t.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"));
    let v = CertsView::from_policy(&policy, pki::now());
    assert_eq!(v.checked_at, "2030-01-01 00:00:00 UTC");
    assert!(v.all_valid, "{v:#?}");
    assert_eq!(v.credentials.len(), 2, "{v:#?}");
    let (c, r) = (&v.credentials[0], &v.credentials[1]);
    assert_eq!(c.rules, ["one", "two"]);
    assert_eq!(r.rules, ["rsa"]);

    assert_eq!(c.certificate.subject, "C=XX, O=hostsec test, CN=a.example");
    assert_eq!(c.certificate.issuer, "C=XX, O=hostsec test, CN=Inter");
    assert_eq!(c.certificate.key, "ECDSA P-256");
    assert_eq!(c.key, "ECDSA P-256");
    assert_eq!(r.key, "RSA-3072");
    assert_eq!(c.certificate.file.as_deref(), Some("/etc/a.pem"));
    assert_eq!(c.private_key_file.as_deref(), Some("/etc/a.key"));
    assert_eq!(c.certificate.not_after, "2040-01-01 00:00:00 UTC");
    // 2030-01-01 to 2040-01-01: ten years with two leap days (2032, 2036).
    assert_eq!(c.certificate.days_left, 3652);
    assert_eq!((c.certificate.validity.as_str(), c.certificate.expired), ("valid", false));
    assert!(c.chain_valid && c.chain_error.is_none());
    assert_eq!(
        c.chain_path,
        ["C=XX, O=hostsec test, CN=a.example", "C=XX, O=hostsec test, CN=Inter", "C=XX, O=hostsec test, CN=Root"]
    );
    assert_eq!(c.intermediates.len(), 1);
    assert_eq!(c.intermediates[0].subject, "C=XX, O=hostsec test, CN=Inter");
    assert_eq!(c.intermediates[0].key, "ECDSA P-384");
    assert_eq!(c.trusted_cas.len(), 1);
    assert_eq!(c.trusted_cas[0].subject, "C=XX, O=hostsec test, CN=Root");
    assert_eq!(c.trusted_ca_files, ["/etc/root.pem"]);
    assert_eq!(c.crls.len(), 1);
    assert_eq!(c.crls[0].issuer, "C=XX, O=hostsec test, CN=Root");
    assert_eq!(c.crls[0].revoked, 2);
    assert_eq!(c.crls[0].this_update, "2029-12-01 00:00:00 UTC");
    assert_eq!(c.crls[0].next_update.as_deref(), Some("2030-02-01 00:00:00 UTC"));
    assert!(!c.crls[0].overdue);
    assert!(r.crls.is_empty() && r.intermediates.is_empty() && r.chain_valid);

    // The same policy a few months later: the CRL is overdue but still counts; nothing else changes.
    let later = CertsView::from_policy(&policy, pki::at(2030, 6, 1));
    assert!(later.credentials[0].crls[0].overdue);
    assert!(later.all_valid);

    // Past the certificates' end: every chain is invalid, with the reason.
    let after = CertsView::from_policy(&policy, pki::at(2040, 1, 1) + Duration::from_secs(3600));
    assert!(!after.all_valid);
    let c = &after.credentials[0];
    assert_eq!(
        (c.certificate.validity.as_str(), c.certificate.expired, c.certificate.days_left),
        ("expired", true, -1)
    );
    assert!(!c.chain_valid);
    assert!(c.chain_error.as_deref().is_some_and(|e| e.contains("expired on 2040-01-01")), "{c:#?}");
    assert!(c.trusted_cas[0].expired);

    // Before they start.
    let before = CertsView::from_policy(&policy, pki::at(2019, 6, 1));
    assert!(!before.all_valid);
    assert_eq!(before.credentials[0].certificate.validity, "not-yet-valid");
    assert!(!before.credentials[0].certificate.expired);
}

#[test]
fn expired_host_certificate_and_expired_ca_are_reported() {
    let root = pki::root("Root", KeyKind::P256);
    let mut old = pki::host_params("old.example", "198.51.100.1", 5);
    old.not_after = rcgen::date_time_ymd(2025, 1, 1);
    let expired_host = pki::host_with(old, KeyKind::P384, &root);
    let mut old_ca = pki::ca_params("Old CA", None);
    old_ca.not_after = rcgen::date_time_ymd(2026, 3, 1);
    let old_root = pki::root_with(old_ca, KeyKind::P256);
    let fresh = pki::host("fresh.example", "198.51.100.1", KeyKind::P256, &old_root);
    let mut files = MemFiles::default();
    files.add("/etc/old.pem", expired_host.cert.pem());
    files.add("/etc/old.key", expired_host.key_pem());
    files.add("/etc/fresh.pem", fresh.cert.pem());
    files.add("/etc/fresh.key", fresh.key_pem());
    files.add("/etc/root.pem", root.pem());
    files.add("/etc/oldroot.pem", old_root.pem());
    let text = [
        rule("old", "198.51.100.2", &cert_keys("/etc/old.pem", "/etc/old.key", "\"/etc/root.pem\"", "")),
        rule("fresh", "198.51.100.3", &cert_keys("/etc/fresh.pem", "/etc/fresh.key", "\"/etc/oldroot.pem\"", "")),
    ]
    .concat();
    let policy = Policy::from_toml("t.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"));
    let v = CertsView::from_policy(&policy, pki::now());
    assert!(!v.all_valid);
    let (old, fresh) = (&v.credentials[0], &v.credentials[1]);
    assert_eq!(old.certificate.validity, "expired");
    assert_eq!(old.certificate.days_left, -1826);
    assert!(!old.chain_valid);
    assert_eq!(
        old.chain_error.as_deref(),
        Some("certificate 'C=XX, O=hostsec test, CN=old.example' expired on 2025-01-01 00:00:00 UTC")
    );
    // The host certificate is within its dates, its CA is not.
    assert_eq!(fresh.certificate.validity, "valid");
    assert!(fresh.trusted_cas[0].expired);
    assert!(!fresh.chain_valid);
    assert!(fresh.chain_error.as_deref().is_some_and(|e| e.contains("Old CA") && e.contains("expired")), "{fresh:#?}");

    // The JSON that scripts read.
    let json = serde_json::to_value(&v).expect("json");
    assert_eq!(json["all_valid"], false);
    assert_eq!(json["credentials"][0]["rules"][0], "old");
    assert_eq!(json["credentials"][0]["certificate"]["expired"], true);
    assert_eq!(json["credentials"][1]["trusted_cas"][0]["validity"], "expired");
    assert_eq!(serde_json::from_value::<CertsView>(json).expect("round trip"), v);
}

#[test]
fn no_certificate_rule_means_no_entry() {
    let text = rule("p", "198.51.100.2", "psk = \"a pre-shared key of some length\"");
    let policy = Policy::from_toml("t.toml", &text, &MemFiles::default()).unwrap_or_else(|e| panic!("{e:#?}"));
    let v = CertsView::from_policy(&policy, pki::now());
    assert!(v.credentials.is_empty() && v.all_valid);
    assert_eq!(serde_json::to_string(&Request::Certs).expect("json"), r#"{"verb":"certs"}"#);
}
