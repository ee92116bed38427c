//! `keying = "authip"` with certificates (SPEC §4, issue 10): `certificate` (TLS in AuthIP) and
//! `certificate-then-psk` (TLS in AuthIP, then IKEv1 with the PSK) load their certificate files as with IKEv1
//! and are warned about once as experimental; their file errors are the same as with IKEv1.

mod support;

use hostsec_proto::policy::{Authentication, Keying, Policy};
use support::pki::{self, KeyKind, MemFiles};

const EXPERIMENTAL: &str = "field 'keying': AuthIP is experimental — not yet verified against Windows";

fn files() -> MemFiles {
    let root = pki::root("Root", KeyKind::P256);
    let host = pki::host("a.example", "198.51.100.1", KeyKind::P256, &root);
    let mut files = MemFiles::default();
    files.add("/h.pem", host.cert.pem());
    files.add("/h.key", host.key_pem());
    files.add("/ca.pem", root.pem());
    files
}

fn rule(auth_lines: &str) -> String {
    format!(
        "[[rule]]\nname = \"t\"\nremote = \"198.51.100.2\"\nkeying = \"authip\"\n{auth_lines}\n\
         certificate = \"/h.pem\"\nprivate_key = \"/h.key\"\ntrusted_cas = [\"/ca.pem\"]\n"
    )
}

#[test]
fn certificate_rules_load_their_files_and_are_warned_once() {
    let files = files();
    for (auth_lines, want) in [
        ("authentication = \"certificate\"", Authentication::Certificate),
        (
            "authentication = \"certificate-then-psk\"\npsk = \"inline secret 0123456789\"",
            Authentication::CertificateThenPsk,
        ),
    ] {
        let p = Policy::from_toml("site.toml", &rule(auth_lines), &files)
            .unwrap_or_else(|e| panic!("{auth_lines}: {e:#?}"));
        let r = &p.rules[0];
        assert_eq!((r.keying, r.authentication), (Keying::AuthIp, want));
        assert!(r.cert_auth.is_some(), "{auth_lines}: certificate not loaded");
        assert_eq!(p.warnings, [format!("site.toml:4: rule 't': {EXPERIMENTAL}")], "{auth_lines}");
    }
}

#[test]
fn certificate_rules_keep_their_file_errors() {
    let files = files();
    // certificate-then-psk still needs the PSK for the IKEv1 fallback.
    let errs = Policy::from_toml("site.toml", &rule("authentication = \"certificate-then-psk\""), &files)
        .err()
        .unwrap_or_default();
    let text = errs.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        text,
        ["site.toml:1: rule 't': field 'psk': authentication = \"certificate-then-psk\" also needs a pre-shared key \
             for the fallback: set psk or psk_file"]
    );
    // A missing certificate file is reported as with IKEv1.
    let text = rule("authentication = \"certificate\"").replace("/h.pem", "/missing.pem");
    let errs = Policy::from_toml("site.toml", &text, &files).err().unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].field.as_deref(), Some("certificate"));
    assert!(errs[0].message.contains("/missing.pem"), "{}", errs[0]);
}

/// AuthIP SAs do not cross NAT yet: a NAT-T setting on an AuthIP rule is warned about, naming the field and what to
/// use instead; `off` (the default) and a PSK rule (which runs IKEv1) are not.
#[test]
fn nat_traversal_on_an_authip_rule_is_warned() {
    let files = files();
    let text = format!("{}nat_traversal = \"remote-behind-nat\"\n", rule("authentication = \"certificate\""));
    let p = Policy::from_toml("site.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        p.warnings,
        [
            format!("site.toml:4: rule 't': {EXPERIMENTAL}"),
            "site.toml:9: rule 't': field 'nat_traversal': AuthIP SAs do not cross NAT yet: 'remote-behind-nat' \
             applies only when this rule negotiates IKEv1; a peer behind a NAT needs keying = \"ike\""
                .to_string()
        ]
    );
    let psk =
        "[[rule]]\nname = \"p\"\nremote = \"198.51.100.2\"\nkeying = \"authip\"\npsk = \"inline secret 0123456789\"\n\
               nat_traversal = \"both-behind-nat\"\n";
    let p = Policy::from_toml("site.toml", psk, &files).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(p.warnings.iter().all(|w| !w.contains("do not cross NAT")), "{:?}", p.warnings);
}
