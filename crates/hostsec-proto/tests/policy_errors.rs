//! Validation: every error names the file, the line, the rule and the field, and says what is allowed; all
//! errors of a file come at once. A config with 20 typos gives exactly 20 precise messages.

mod policy_util;

use hostsec_proto::policy::{ConfigError, ExplainQuery, Flow, HostFacts, Policy, Spd};
use policy_util::MemFiles;
use proptest::prelude::*;

const TWENTY_TYPOS: &str = r#"[global]
minimum_strength = "hihg"
main_mode_lifetime = "3000m"
default_action = "allow"
colour = "blue"

[defaults]
auto = "none"

[[rule]]
name = "bad-cidr"
remote = "10.0.0.0/33"
action = "bypass"

[[rule]]
name = "host-bits"
remote = ["10.1.0.1/16"]
action = "bypass"

[[rule]]
name = "keyword"
remote = ["DSN"]
action = "bypass"

[[rule]]
name = "big-port"
remote = "10.3.0.1"
protocol = "tcp"
local_ports = ["70000"]
action = "bypass"

[[rule]]
name = "ports-icmp"
remote = "10.4.0.1"
protocol = "icmp"
remote_ports = ["53"]
action = "bypass"

[[rule]]
name = "proto"
remote = "10.5.0.1"
protocol = "tpc"
action = "bypass"

[[rule]]
name = "dup"
remote = "10.6.0.1"
action = "bypass"

[[rule]]
name = "dup"
remote = "10.6.0.2"
action = "bypass"

[[rule]]
name = "open-psk"
remote = "10.7.0.1"
psk_file = "/etc/hostsec/open.psk"

[[rule]]
name = "field"
remtoe = "10.8.0.1"
remote = "10.8.0.1"
action = "bypass"

[[rule]]
name = "action"
remote = "10.9.0.1"
action = "allow"

[[rule]]
name = "both-psk"
remote = "10.10.0.1"
psk = "inline secret 0123456789"
psk_file = "/etc/hostsec/site.psk"

[[rule]]
name = "range"
remote = "10.11.0.9-10.11.0.1"
action = "bypass"

[[rule]]
name = "enabled"
remote = "10.12.0.1"
enabled = "yes"
action = "bypass"

[[rule]]
name = "remote-id"
remote = "10.13.0.1"
psk = "inline secret 0123456789"
remote_id = "user:bob"

[[rule]]
name = "port-range"
remote = "10.14.0.1"
protocol = "udp"
remote_ports = ["600-500"]
action = "bypass"

[[rule]]
name = "mixed"
remote = ["any", "10.15.0.1"]
action = "bypass"
"#;

fn errors(text: &str) -> Vec<ConfigError> {
    match Policy::from_toml("site.toml", text, &MemFiles::standard()) {
        Ok(_) => panic!("the config must be refused"),
        Err(e) => e,
    }
}

#[test]
fn twenty_typos_give_twenty_precise_messages() {
    let mut errs = errors(TWENTY_TYPOS);
    errs.sort_by_key(|e| e.line);
    let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let text = all.join("\n");
    assert_eq!(errs.len(), 20, "{text}");
    for e in &errs {
        assert_eq!(e.file, "site.toml");
        assert!(e.line.is_some(), "no line: {e}");
        assert!(e.field.is_some(), "no field: {e}");
        assert!(e.rule.is_some() || e.field.as_deref().is_some_and(|f| f.starts_with("global.")), "no rule: {e}");
    }
    let expect = [
        "site.toml:2: field 'global.minimum_strength': 'hihg' is not a level; use \"standard\", \"high\" or \"highest\"",
        "site.toml:3: field 'global.main_mode_lifetime': '3000m' is out of range; allowed: 1m to 2879m",
        "site.toml:4: field 'global.default_action': 'allow' is not allowed; use \"bypass\" or \"block\"",
        "site.toml:5: field 'global.colour': unknown key; allowed: listen, minimum_strength",
        "site.toml:12: rule 'bad-cidr': field 'remote': prefix length '33' in subnet '10.0.0.0/33' must be 0 to 32",
        "site.toml:17: rule 'host-bits': field 'remote': subnet '10.1.0.1/16' has host bits set (did you mean 10.1.0.0/16?)",
        "site.toml:22: rule 'keyword': field 'remote': 'DSN' is not an address, a dash range (a.b.c.d-e.f.g.h), a subnet \
         (a.b.c.d/n) or a keyword (LocalSubnet, DefaultGateway, DHCP, DNS, WINS)",
        "site.toml:29: rule 'big-port': field 'local_ports': '70000' is not a port or port range; allowed: a list of \
         ports (\"631\", 0-65535) or port ranges (\"6000-6063\")",
        "site.toml:36: rule 'ports-icmp': field 'remote_ports': ports need protocol = \"tcp\", \"udp\", \"sctp\" or \
         \"udplite\" (this rule's protocol is icmp)",
        "site.toml:42: rule 'proto': field 'protocol': 'tpc' is not a protocol; use tcp, udp, icmp, icmpv6, sctp, \
         udplite or a number 0-255",
        "site.toml:50: rule 'dup': field 'name': duplicate rule name; names must be unique",
        "site.toml:58: rule 'open-psk': field 'psk_file': '/etc/hostsec/open.psk' is accessible by group or others",
        "site.toml:62: rule 'field': field 'remtoe': unknown key; allowed: name, enabled, remote",
        "site.toml:69: rule 'action': field 'action': 'allow' is not allowed; use \"require\", \"request\", \"bypass\" \
         or \"block\"",
        "site.toml:74: rule 'both-psk': field 'psk': set either psk or psk_file, not both",
        "site.toml:79: rule 'range': field 'remote': range '10.11.0.9-10.11.0.1' ends before it starts",
        "site.toml:85: rule 'enabled': field 'enabled': must be true or false",
        "site.toml:92: rule 'remote-id': field 'remote_id': 'user:bob' is not allowed; use \"any\", \"dn:…\", \"fqdn:…\" \
         or \"ip:…\"",
        "site.toml:98: rule 'port-range': field 'remote_ports': port range '600-500' ends before it starts",
        "site.toml:103: rule 'mixed': field 'remote': \"any\" cannot be combined with other addresses",
    ];
    for (want, got) in expect.iter().zip(&all) {
        assert!(got.starts_with(want), "\nwant {want}\ngot  {got}\nall:\n{text}");
    }
}

#[test]
fn keyword_words_are_case_insensitive_and_selectors_validate() {
    let ok = Policy::from_toml(
        "k.toml",
        "[[rule]]\nname = \"infra\"\nremote = [\"dns\", \"DefaultGateway\", \"10.0.0.0/8\"]\nlocal = \"localsubnet\"\n\
         protocol = \"udp\"\nremote_ports = [53, \"67-68\"]\naction = \"bypass\"\n",
        &MemFiles::standard(),
    );
    let p = ok.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(p.uses_keywords());
    assert_eq!(p.rules[0].protocol, Some(17));
    assert_eq!(p.rules[0].remote.to_string(), "DNS (not resolved), DefaultGateway (not resolved), 10.0.0.0/8");
    for (snippet, field, words) in [
        ("protocol = 256", "protocol", "0-255"),
        ("protocol = \"tcp\"\nlocal_ports = [\"-1\"]", "local_ports", "0-65535"),
        ("local_ports = [\"80\"]", "local_ports", "this rule names no protocol"),
        ("protocol = 47\nlocal_ports = [80]", "local_ports", "this rule's protocol is 47"),
        ("local = [\"Gateway\"]", "local", "LocalSubnet, DefaultGateway, DHCP, DNS, WINS"),
    ] {
        let text = format!("[[rule]]\nname = \"x\"\nremote = \"10.0.0.1\"\naction = \"bypass\"\n{snippet}\n");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field.as_deref(), Some(field), "{errs:?}");
        assert_eq!(errs[0].rule.as_deref(), Some("x"));
        assert!(errs[0].line.is_some_and(|l| l >= 5), "{errs:?}");
        assert!(errs[0].message.contains(words), "{}", errs[0]);
    }
}

const VALID: &str = r#"[global]
default_action = "block"

[defaults]
psk = "0123456789abcdef0123"
auto = "none"

[[rule]]
name = "lan"
remote = ["198.51.100.0/24", "2001:db8::/64", "DNS", "10.0.0.1-10.0.0.9"]
local = ["192.0.2.1", "LocalSubnet"]
protocol = "tcp"
local_ports = ["9100", "6000-6063"]
remote_ports = [53]
action = "require"

[[rule]]
name = "rest"
remote = "any"
action = "bypass"
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever a typo does to a config, loading it (and using what loads) gives answers or messages, never a
    /// panic; every message names the file and, past the TOML syntax, the line and the field.
    #[test]
    fn mangled_configs_never_panic(edits in prop::collection::vec((0usize..600, prop::sample::select(vec![
        "", "0", "9", "-", "/", ".", ":", "\"", "[", "]", "=", "\n", " ", "x", "any", "DNS", "65536", "999", "ff::",
        "#", ",", "tcp", "icmp", "true", "{", "'",
    ])), 1..4)) {
        let mut text = VALID.to_string();
        for (at, with) in edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let end = (at + 1..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
            text.replace_range(at..end, with);
        }
        match Policy::from_toml("m.toml", &text, &MemFiles::standard()) {
            Ok(mut p) => {
                let _ = p.resolve(&HostFacts { dns_servers: vec!["198.51.100.53".parse().unwrap()], ..HostFacts::default() });
                let spd = Spd::build(&p);
                let local = "192.0.2.1".parse().unwrap();
                for peer in ["198.51.100.7", "2001:db8::1", "10.0.0.5", "203.0.113.1"] {
                    let peer = peer.parse().unwrap();
                    let f = Flow::with_ports(local, peer, 6, 9100, 53);
                    prop_assert_eq!(spd.lookup_flow(&p, &f), p.governing_rule_flow(&f));
                    let _ = p.explain(&spd, &f);
                    let _ = p.explain_query(&spd, &ExplainQuery { local, peer, protocol: None, port: Some(9100) });
                    for r in &p.rules {
                        prop_assert!(!r.remote.to_string().is_empty() && !r.local.to_string().is_empty());
                    }
                }
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in errors {
                    prop_assert_eq!(&e.file, "m.toml");
                    prop_assert!(e.line.is_some(), "{}", e);
                    prop_assert!(e.field.is_some() || e.message.starts_with("not valid TOML"), "{}", e);
                }
            }
        }
    }
}

#[test]
fn dpd_interval_is_off_or_within_its_range() {
    let conf = |v: &str| format!("[global]\ndpd_interval = \"{v}\"\n");
    for (v, secs) in [("0s", 0), ("5s", 5), ("30s", 30), ("60m", 3600)] {
        let p =
            Policy::from_toml("site.toml", &conf(v), &MemFiles::standard()).unwrap_or_else(|e| panic!("{v}: {e:?}"));
        assert_eq!(p.global.dpd_interval, std::time::Duration::from_secs(secs));
    }
    for v in ["4s", "61m", "2h"] {
        let errs = errors(&conf(v));
        let text = errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert_eq!(
            text,
            format!(
                "site.toml:2: field 'global.dpd_interval': '{v}' is out of range; allowed: \"0s\" (off) or 5s to 60m"
            )
        );
    }
    assert!(errors(&conf("30")).iter().any(|e| e.to_string().contains("no unit")));
}

/// AuthIP's authentication methods (SPEC §4, issue 10): Kerberos and NTLM are recognised and always refused
/// with the reason and what to use instead; `anonymous` only with `keying = "authip"`. Each refusal is the only
/// error of its rule (no "needs a pre-shared key" from the default that stands in for a refused value).
#[test]
fn authip_authentication_refusals_say_why() {
    let rule = |lines: &str| format!("[[rule]]\nname = \"w\"\nremote = \"10.20.0.1\"\n{lines}\n");
    let domain = "needs a Windows domain";
    let instead = "which hostsec does not join; use \"certificate\" (TLS in AuthIP, certificates in IKEv1) or, with \
                   keying = \"authip\", \"anonymous\"";
    for (lines, want) in [
        (
            "authentication = \"kerberos\"\nkeying = \"authip\"",
            format!("site.toml:4: rule 'w': field 'authentication': 'kerberos' {domain} (a KDC on a domain controller), {instead}"),
        ),
        (
            "keying = \"ike\"\nauthentication = \"ntlm\"",
            format!(
                "site.toml:5: rule 'w': field 'authentication': 'ntlm' {domain} (a domain controller that checks the \
                 credentials), {instead}"
            ),
        ),
        // Refused whatever the action: the value can never be honoured.
        (
            "action = \"bypass\"\nauthentication = \"kerberos\"",
            format!("site.toml:5: rule 'w': field 'authentication': 'kerberos' {domain} (a KDC on a domain controller), {instead}"),
        ),
        (
            "authentication = \"anonymous\"",
            "site.toml:4: rule 'w': field 'authentication': \"anonymous\" exists only in AuthIP; set keying = \
             \"authip\" or use psk/certificate"
                .to_string(),
        ),
        (
            "authentication = \"anonymous\"\nkeying = \"ike\"\npsk = \"inline secret 0123456789\"",
            "site.toml:4: rule 'w': field 'authentication': \"anonymous\" exists only in AuthIP; set keying = \
             \"authip\" or use psk/certificate"
                .to_string(),
        ),
        // A misspelt keying is the only error: the anonymous check would judge the stand-in "ike".
        (
            "authentication = \"anonymous\"\nkeying = \"authpi\"",
            "site.toml:5: rule 'w': field 'keying': 'authpi' is not allowed; use \"ike\" or \"authip\"".to_string(),
        ),
    ] {
        let errs = errors(&rule(lines));
        let text = errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert_eq!(text, want, "{lines}");
    }
}

/// What `keying = "authip"` does with each authentication that needs no file: `anonymous` needs no PSK nor
/// certificate and is warned as experimental; `psk` keeps its warning that IKEv1 negotiates it, and only that one;
/// rules that never negotiate get no AuthIP warning.
#[test]
fn authip_keying_warnings() {
    let load = |lines: &str| {
        let text = format!("[[rule]]\nname = \"w\"\nremote = \"10.20.0.1\"\n{lines}\n");
        Policy::from_toml("site.toml", &text, &MemFiles::standard()).unwrap_or_else(|e| panic!("{lines}: {e:#?}"))
    };
    let p = load("authentication = \"anonymous\"\nkeying = \"authip\"");
    assert_eq!(p.rules[0].psk, None);
    assert_eq!(
        p.warnings,
        ["site.toml:5: rule 'w': field 'keying': AuthIP is experimental — not yet verified against Windows"]
    );
    let p = load("keying = \"authip\"\npsk = \"inline secret 0123456789\"");
    assert_eq!(
        p.warnings,
        ["site.toml:4: rule 'w': field 'keying': AuthIP has no pre-shared key method: this rule negotiates IKEv1 \
             with the PSK, as Windows' default keying does"]
    );
    for action in ["bypass", "block"] {
        let p = load(&format!("action = \"{action}\"\nauthentication = \"anonymous\"\nkeying = \"authip\""));
        assert!(p.warnings.is_empty(), "{action}: {:?}", p.warnings);
    }
    // From [defaults] too, once per rule, at the line that sets it.
    let text = "[defaults]\nkeying = \"authip\"\nauthentication = \"anonymous\"\n\n[[rule]]\nname = \"a\"\n\
                remote = \"10.20.0.1\"\n\n[[rule]]\nname = \"b\"\nremote = \"10.20.0.2\"\n";
    let p = Policy::from_toml("site.toml", text, &MemFiles::standard()).unwrap_or_else(|e| panic!("{e:#?}"));
    let experimental = "field 'keying': AuthIP is experimental — not yet verified against Windows";
    assert_eq!(
        p.warnings,
        [format!("site.toml:2: rule 'a': {experimental}"), format!("site.toml:2: rule 'b': {experimental}")]
    );
}
