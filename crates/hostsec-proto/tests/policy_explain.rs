//! `explain`, keywords and shadowing as an administrator meets them: the words of the answers are part of the
//! product (`hostsec rule explain`, `hostsec rules`, the warnings of `config check` and of the daemon).

mod policy_util;

use hostsec_proto::policy::{ExplainQuery, Flow, HostFacts, Policy, Spd};
use policy_util::MemFiles;
use std::net::IpAddr;

fn load(text: &str) -> Policy {
    Policy::from_toml("site.toml", text, &MemFiles::standard()).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("{s}"))
}

const SITE: &str = r#"[defaults]
psk = "0123456789abcdef0123"
auto = "none"

[[rule]]
name = "lan"
remote = "198.51.100.0/24"

[[rule]]
name = "printer"
remote = "198.51.100.7"

[[rule]]
name = "printer-block"
remote = "198.51.100.7"
protocol = "udp"
action = "block"

[[rule]]
name = "printer-block-2"
remote = "198.51.100.7"
protocol = "udp"
action = "request"

[[rule]]
name = "jetdirect"
remote = "198.51.100.0/24"
protocol = "tcp"
local_ports = ["9100"]
action = "bypass"

[[rule]]
name = "admin-only"
remote = "198.51.100.0/24"
local = "192.0.2.200"
action = "block"

[[rule]]
name = "old"
remote = "198.51.100.0/24"
enabled = false
"#;

#[test]
fn most_specific_wins_and_says_why() {
    let p = load(SITE);
    let spd = Spd::build(&p);
    let local = ip("192.0.2.1");
    let e = p.explain(&spd, &Flow::with_ports(local, ip("198.51.100.7"), 6, 9100, 40000));
    let w = e.rule.as_ref().map(|r| r.name.as_str());
    assert_eq!(w, Some("printer"));
    assert_eq!(e.action, "require");
    assert_eq!(
        e.why,
        "most specific: remote 198.51.100.7 (1 address) is narrower than 'jetdirect' (198.51.100.0/24, 256 addresses)"
    );
    let also: Vec<(&str, &str)> = e.also_matched.iter().map(|c| (c.rule.name.as_str(), c.reason.as_str())).collect();
    assert_eq!(also.len(), 2, "{also:?}");
    assert_eq!(also[0].0, "jetdirect");
    assert!(also[0].1.starts_with("less specific: remote 198.51.100.0/24 (256 addresses) is wider than the remote of 'printer' (198.51.100.7, 1 address)"));
    assert_eq!(also[1].0, "lan");
    let excluded: Vec<(&str, &str)> = e.not_matching.iter().map(|x| (x.rule.name.as_str(), x.field)).collect();
    assert_eq!(
        excluded,
        [("printer-block", "protocol"), ("printer-block-2", "protocol"), ("admin-only", "local"), ("old", "enabled")]
    );
    assert!(e.not_matching[0].reason.contains("applies only to udp traffic, not tcp"), "{:?}", e.not_matching[0]);

    // Equal specificity: block beats request.
    let e = p.explain(&spd, &Flow::with_ports(local, ip("198.51.100.7"), 17, 53, 53));
    assert_eq!(e.rule.as_ref().map(|r| r.name.as_str()), Some("printer-block"));
    assert_eq!(e.why, "same specificity as 'printer-block-2', block wins over request");
    assert_eq!(e.also_matched[0].reason, "same specificity as 'printer-block', block wins over request");

    // A protocol and a port make the narrower selector win at equal addresses.
    let e = p.explain(&spd, &Flow::with_ports(local, ip("198.51.100.9"), 6, 9100, 40000));
    assert_eq!(e.rule.as_ref().map(|r| r.name.as_str()), Some("jetdirect"));
    assert!(
        e.why.contains("as specific as 'lan' in addresses; it names protocol tcp and 'lan' covers every protocol"),
        "{}",
        e.why
    );

    // Nothing covers the peer: the default action, said so.
    let e = p.explain(&spd, &Flow::new(local, ip("203.0.113.1"), 1));
    assert!(e.rule.is_none());
    assert_eq!(e.action, "bypass");
    assert!(e.why.contains("global default_action (bypass)"), "{}", e.why);

    let json = serde_json::to_value(&e).unwrap_or_default();
    for key in ["local", "peer", "traffic", "rule", "action", "why", "also_matched", "not_matching"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
}

#[test]
fn questions_with_an_open_protocol_or_one_port() {
    let p = load(SITE);
    let spd = Spd::build(&p);
    let q = |protocol, port| ExplainQuery { local: ip("192.0.2.1"), peer: ip("198.51.100.9"), protocol, port };
    // No protocol: the answer is for traffic no protocol-specific rule selects; those rules say what to add.
    let e = p.explain_query(&spd, &q(None, None));
    assert_eq!(e.rule.as_ref().map(|r| r.name.as_str()), Some("lan"));
    let jet = e.not_matching.iter().find(|x| x.rule.name == "jetdirect").map(|x| (x.field, x.reason.as_str()));
    assert_eq!(
        jet,
        Some(("protocol", "applies only to tcp traffic; the question names no protocol (add --proto tcp)"))
    );
    assert!(e.traffic.contains("no protocol-specific rule"), "{}", e.traffic);
    // tcp without a port: the port rule needs one.
    let e = p.explain_query(&spd, &q(Some(6), None));
    assert_eq!(e.rule.as_ref().map(|r| r.name.as_str()), Some("lan"));
    assert!(e.not_matching.iter().any(|x| x.rule.name == "jetdirect" && x.field == "local_ports"));
    // tcp 9100: this host's service port, and the answer says which list matched.
    let e = p.explain_query(&spd, &q(Some(6), Some(9100)));
    let r = e.rule.as_ref().map(|r| (r.name.as_str(), r.matched_port));
    assert_eq!(r, Some(("jetdirect", Some("local_ports"))));
    // tcp 80: not the printer port.
    let e = p.explain_query(&spd, &q(Some(6), Some(80)));
    assert_eq!(e.rule.as_ref().map(|r| r.name.as_str()), Some("lan"));
    let why = e.not_matching.iter().find(|x| x.rule.name == "jetdirect").map(|x| x.reason.clone());
    assert_eq!(why.as_deref(), Some("port 80 is not among its local ports (9100)"));
}

#[test]
fn keywords_resolve_from_host_facts_with_warnings() {
    let mut p = load(
        r#"[defaults]
psk = "0123456789abcdef0123"
auto = "none"

[[rule]]
name = "infra"
remote = ["DNS", "dhcp", "DefaultGateway"]
action = "bypass"

[[rule]]
name = "wins"
remote = "WINS"
action = "block"

[[rule]]
name = "office"
remote = ["LocalSubnet", "203.0.113.5"]
"#,
    );
    assert!(p.uses_keywords());
    let spd = Spd::build(&p);
    let local = ip("192.0.2.10");
    // Before resolution keywords cover nothing: a keyword-only rule matches no peer, not every peer.
    assert_eq!(spd.lookup(&p, local, ip("192.0.2.53")), None);
    assert_eq!(spd.lookup(&p, local, ip("203.0.113.5")), Some(2));

    let facts = HostFacts {
        local_subnets: vec![(ip("192.0.2.10"), 24), (ip("2001:db8:7::10"), 64)],
        default_gateways: vec![ip("192.0.2.1")],
        dhcp_servers: vec![ip("192.0.2.67")],
        dns_servers: Vec::new(),
        wins_servers: Vec::new(),
    };
    let warnings = p.resolve(&facts);
    let text = warnings.join("\n");
    assert!(
        text.contains(
            "site.toml:5: rule 'infra': remote keyword DNS resolves to nothing (no nameserver in the host's \
             configuration)"
        ),
        "{text}"
    );
    assert!(text.contains("rule 'wins': remote keyword WINS resolves to nothing"), "{text}");
    assert!(
        text.contains("rule 'wins': never applies: its remote is only keywords, which resolve to nothing"),
        "{text}"
    );
    assert_eq!(warnings.len(), 3, "{text}");
    let spd = Spd::build(&p);
    assert_eq!(spd.lookup(&p, local, ip("192.0.2.1")), Some(0), "the gateway is infra's, the narrowest rule");
    assert_eq!(spd.lookup(&p, local, ip("192.0.2.77")), Some(2), "the local subnet is the office's");
    assert_eq!(spd.lookup(&p, local, ip("2001:db8:7::99")), Some(2));
    assert_eq!(spd.lookup(&p, local, ip("198.18.0.1")), None);
    assert_eq!(p.rules[0].remote.to_string(), "DNS (nothing), DHCP (192.0.2.67), DefaultGateway (192.0.2.1)",);
    assert_eq!(p.rules[2].remote.to_string(), "LocalSubnet (192.0.2.0/24, 2001:db8:7::/64), 203.0.113.5");

    // The host changes: re-resolution follows.
    let facts = HostFacts { wins_servers: vec![ip("192.0.2.137")], ..facts };
    let warnings = p.resolve(&facts);
    assert!(!warnings.iter().any(|w| w.contains("'wins'")), "{warnings:?}");
    let spd = Spd::build(&p);
    assert_eq!(spd.lookup(&p, local, ip("192.0.2.137")), Some(1));
}

#[test]
fn shadowed_rules_are_warned_about() {
    let p = load(
        r#"[defaults]
psk = "0123456789abcdef0123"
auto = "none"

[[rule]]
name = "first"
remote = "198.51.100.0/25"

[[rule]]
name = "same-later"
remote = "198.51.100.0-198.51.100.127"

[[rule]]
name = "same-blocked"
remote = "198.51.100.0/25"
action = "bypass"

[[rule]]
name = "halves"
remote = "198.51.100.0/24"
action = "block"

[[rule]]
name = "upper"
remote = "198.51.100.128/25"
action = "bypass"

[[rule]]
name = "ports"
remote = "198.51.100.0/25"
protocol = "tcp"
local_ports = ["22"]
"#,
    );
    let text = p.warnings.join("\n");
    assert!(
        text.contains(
            "site.toml:9: rule 'same-later': never applies: rule 'first' (line 5) covers exactly the same traffic and \
             wins (same action rank, and 'first' comes first in the file)"
        ),
        "{text}"
    );
    assert!(text.contains("rule 'same-blocked': never applies: rule 'first' (line 5) covers exactly the same traffic and wins (require wins over bypass)"), "{text}");
    assert!(
        text.contains("rule 'halves': never applies: every remote address it covers is covered by more specific rules"),
        "{text}"
    );
    assert!(!text.contains("'ports'"), "a port rule is narrower than 'first': {text}");
    assert_eq!(p.warnings.len(), 3, "{text}");
}
