//! docs/config.md's worked examples of precedence are checked here: the config in the document is the one
//! tested, and every row of its table is what `Spd::lookup_flow` and `Policy::explain` answer.

mod policy_util;

use hostsec_proto::policy::{Flow, HostFacts, Policy, Spd};
use policy_util::MemFiles;
use std::net::IpAddr;

const DOC: &str = include_str!("../../../docs/config.md");

fn example_config() -> &'static str {
    let marker = "<!-- precedence-example";
    let after = DOC.split_once(marker).map_or("", |(_, rest)| rest);
    let block = after.split_once("```toml\n").map_or("", |(_, rest)| rest);
    block.split_once("```").map_or("", |(toml, _)| toml)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("{s}"))
}

#[test]
fn the_documented_precedence_examples_hold() {
    let text = example_config();
    assert!(text.contains("name = \"lan-exempt\""), "example not found in docs/config.md");
    let mut p = Policy::from_toml("site.toml", text, &MemFiles::standard()).unwrap_or_else(|e| panic!("{e:#?}"));
    // The warning the document quotes is given at load, before keywords are resolved.
    let quoted =
        DOC.split_once("hostsec warns about it at load:\n`").and_then(|(_, r)| r.split_once('`')).map(|(w, _)| w);
    let quoted = quoted.map(|w| w.replace('\n', " ")).unwrap_or_default();
    assert!(p.warnings.contains(&quoted), "{quoted:?} not in {:#?}", p.warnings);
    let warnings = p.resolve(&HostFacts { dns_servers: vec![ip("192.0.2.53")], ..HostFacts::default() });
    assert!(warnings.iter().any(|w| w == &quoted), "{warnings:#?}");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let spd = Spd::build(&p);

    let rows = [
        (
            "`tcp 192.0.2.1:9100 ↔ 198.51.100.7:40000` | `printer` |",
            Flow::with_ports(ip("192.0.2.1"), ip("198.51.100.7"), 6, 9100, 40000),
            Some("printer"),
        ),
        (
            "`tcp 192.0.2.1:9100 ↔ 198.51.100.8:40000` | `jetdirect` |",
            Flow::with_ports(ip("192.0.2.1"), ip("198.51.100.8"), 6, 9100, 40000),
            Some("jetdirect"),
        ),
        (
            "`tcp 192.0.2.1:22 ↔ 198.51.100.8:40000` | `lan` |",
            Flow::with_ports(ip("192.0.2.1"), ip("198.51.100.8"), 6, 22, 40000),
            Some("lan"),
        ),
        (
            "`tcp 192.0.2.1:23 ↔ 198.51.100.8:40000` | `no-telnet` |",
            Flow::with_ports(ip("192.0.2.1"), ip("198.51.100.8"), 6, 23, 40000),
            Some("no-telnet"),
        ),
        (
            "`tcp 192.0.2.10:9100 ↔ 198.51.100.8:40000` | `admin` |",
            Flow::with_ports(ip("192.0.2.10"), ip("198.51.100.8"), 6, 9100, 40000),
            Some("admin"),
        ),
        (
            "`udp 192.0.2.1:5353 ↔ 192.0.2.53:53` | `dns` |",
            Flow::with_ports(ip("192.0.2.1"), ip("192.0.2.53"), 17, 5353, 53),
            Some("dns"),
        ),
        ("`icmp 192.0.2.1 ↔ 203.0.113.1` | none |", Flow::new(ip("192.0.2.1"), ip("203.0.113.1"), 1), None),
    ];
    for (row, flow, want) in rows {
        assert!(DOC.contains(row), "docs/config.md lacks the row {row}");
        let got = spd.lookup_flow(&p, &flow).map(|i| p.rules[i].name.as_str());
        assert_eq!(got, want, "{row}");
        assert_eq!(spd.lookup_flow(&p, &flow), p.governing_rule_flow(&flow), "{row}");
        let e = p.explain(&spd, &flow);
        assert_eq!(e.rule.as_ref().map(|r| r.name.as_str()), want, "{row}");
    }
}
