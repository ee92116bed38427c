//! Property tests of the rule lookups: over random rule sets (IPv4 and IPv6 hosts, ranges, subnets, `any`,
//! keywords, local sets, protocols, port ranges, overlaps, disabled rules), the SPD lookup equals the linear
//! reference scan, and `explain` agrees with both.

mod policy_util;

use hostsec_proto::policy::{ExplainQuery, Flow, HostFacts, Policy, Spd};
use policy_util::MemFiles;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Remote addresses live in 198.51.100.0/26 and 2001:db8::/122, local ones in 192.0.2.0/29 and 2001:db8:1::/125,
/// ports in 0-7: small spaces, so that random rules overlap and random probes hit them.
fn v4(x: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be_bytes([198, 51, 100, 0]) + x)
}

fn v6(x: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x)
}

fn arb_remote_item() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u32..64).prop_map(|a| format!("{}", v4(a))),
        2 => (0u32..64, 0u32..16).prop_map(|(a, n)| format!("{}-{}", v4(a), v4((a + n).min(63)))),
        2 => (26u8..=32, 0u32..64).prop_map(|(p, a)| {
            let mask = if p == 32 { u32::MAX } else { !((1u32 << (32 - p)) - 1) };
            format!("{}/{p}", Ipv4Addr::from(u32::from(v4(a)) & mask))
        }),
        1 => (0u16..64).prop_map(|a| format!("{}", v6(a))),
        1 => (122u8..=128, 0u16..64).prop_map(|(p, a)| {
            let mask = if p == 128 { u16::MAX } else { !((1u16 << (128 - p)) - 1) };
            format!("{}/{p}", v6(a & mask))
        }),
        1 => prop_oneof![Just("DNS"), Just("dhcp"), Just("LocalSubnet"), Just("WINS"), Just("DefaultGateway")]
            .prop_map(str::to_string),
    ]
}

fn arb_local() -> impl Strategy<Value = Option<String>> {
    let item = prop_oneof![
        (0u32..8).prop_map(|a| format!("192.0.2.{a}")),
        (0u32..8, 0u32..4).prop_map(|(a, n)| format!("192.0.2.{a}-192.0.2.{}", (a + n).min(7))),
        Just("192.0.2.0/30".to_string()),
        (0u16..8).prop_map(|a| format!("2001:db8:1::{a:x}")),
    ];
    prop_oneof![3 => Just(None), 2 => prop::collection::vec(item, 1..3).prop_map(Some)]
        .prop_map(|o| o.map(|v| format!("[{}]", v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "))))
}

fn arb_ports() -> impl Strategy<Value = Option<String>> {
    let range =
        (0u16..8, 0u16..3).prop_map(|(a, n)| if n == 0 { format!("\"{a}\"") } else { format!("\"{a}-{}\"", a + n) });
    prop_oneof![2 => Just(None), 1 => prop::collection::vec(range, 1..3).prop_map(|v| Some(format!("[{}]", v.join(", "))))]
}

#[derive(Debug, Clone)]
struct RuleSpec {
    remote: String,
    local: Option<String>,
    protocol: Option<&'static str>,
    local_ports: Option<String>,
    remote_ports: Option<String>,
    action: &'static str,
    enabled: bool,
}

fn arb_rule() -> impl Strategy<Value = RuleSpec> {
    let remote = prop_oneof![
        1 => Just("\"any\"".to_string()),
        6 => prop::collection::vec(arb_remote_item(), 1..4)
            .prop_map(|v| format!("[{}]", v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "))),
    ];
    let protocol = prop_oneof![4 => Just(None), 2 => Just(Some("tcp")), 1 => Just(Some("udp")), 1 => Just(Some("icmp")), 1 => Just(Some("132"))];
    let action = prop_oneof![Just("require"), Just("request"), Just("bypass"), Just("block")];
    (remote, arb_local(), protocol, arb_ports(), arb_ports(), action, prop::bool::weighted(0.85)).prop_map(
        |(remote, local, protocol, lp, rp, action, enabled)| {
            let ports_ok = matches!(protocol, Some("tcp" | "udp" | "132"));
            RuleSpec {
                remote,
                local,
                protocol,
                local_ports: lp.filter(|_| ports_ok),
                remote_ports: rp.filter(|_| ports_ok),
                action,
                enabled,
            }
        },
    )
}

fn config(rules: &[RuleSpec]) -> String {
    let mut t = String::from("[defaults]\npsk = \"0123456789abcdef\"\nauto = \"none\"\n");
    for (i, r) in rules.iter().enumerate() {
        t.push_str(&format!("[[rule]]\nname = \"r{i}\"\nremote = {}\naction = \"{}\"\n", r.remote, r.action));
        if let Some(l) = &r.local {
            t.push_str(&format!("local = {l}\n"));
        }
        if let Some(p) = r.protocol {
            t.push_str(&format!("protocol = \"{p}\"\n"));
        }
        if let Some(p) = &r.local_ports {
            t.push_str(&format!("local_ports = {p}\n"));
        }
        if let Some(p) = &r.remote_ports {
            t.push_str(&format!("remote_ports = {p}\n"));
        }
        if !r.enabled {
            t.push_str("enabled = false\n");
        }
    }
    t
}

fn arb_facts() -> impl Strategy<Value = HostFacts> {
    let hosts = prop::collection::vec(
        prop_oneof![(0u32..64).prop_map(|a| IpAddr::V4(v4(a))), (0u16..64).prop_map(|a| IpAddr::V6(v6(a)))],
        0..3,
    );
    (hosts.clone(), hosts.clone(), hosts.clone(), hosts, prop::option::of(0u32..64)).prop_map(
        |(gw, dhcp, dns, wins, sub)| HostFacts {
            local_subnets: sub.map(|a| vec![(IpAddr::V4(v4(a)), 29)]).unwrap_or_default(),
            default_gateways: gw,
            dhcp_servers: dhcp,
            dns_servers: dns,
            wins_servers: wins,
        },
    )
}

fn arb_flow() -> impl Strategy<Value = Flow> {
    let protocol = prop_oneof![Just(6u8), Just(17u8), Just(1u8), Just(132u8), Just(58u8)];
    (any::<bool>(), 0u32..72, 0u32..9, protocol, 0u16..9, 0u16..9).prop_map(|(is4, r, l, protocol, lp, rp)| {
        let (remote, local) = if is4 {
            (IpAddr::V4(v4(r)), IpAddr::V4(Ipv4Addr::new(192, 0, 2, l as u8)))
        } else {
            (IpAddr::V6(v6(r as u16)), IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, l as u16)))
        };
        let with_ports = matches!(protocol, 6 | 17 | 132);
        Flow {
            local,
            remote,
            protocol,
            local_port: if with_ports { lp } else { 0 },
            remote_port: if with_ports { rp } else { 0 },
        }
    })
}

fn load(rules: &[RuleSpec]) -> Policy {
    let text = config(rules);
    Policy::from_toml("p.toml", &text, &MemFiles::standard()).unwrap_or_else(|e| panic!("{e:#?}\n{text}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn lookup_flow_equals_linear_scan(
        rules in prop::collection::vec(arb_rule(), 1..14),
        facts in arb_facts(),
        resolve in any::<bool>(),
        flows in prop::collection::vec(arb_flow(), 40),
    ) {
        let mut p = load(&rules);
        if resolve {
            let _ = p.resolve(&facts);
        }
        let spd = Spd::build(&p);
        for f in &flows {
            let want = p.governing_rule_flow(f);
            prop_assert_eq!(spd.lookup_flow(&p, f), want, "flow {:?}", f);
            prop_assert_eq!(spd.lookup(&p, f.local, f.remote), p.governing_rule(f.local, f.remote), "flow {:?}", f);
            let e = p.explain(&spd, f);
            prop_assert_eq!(e.rule.as_ref().map(|r| r.index), want);
            // Everything that covers the flow is either the winner or listed as a loser, in precedence order.
            let covering: Vec<usize> = p.rules.iter().enumerate().filter(|(_, r)| r.enabled && r.covers(f)).map(|(i, _)| i).collect();
            let mut listed: Vec<usize> = e.also_matched.iter().map(|c| c.rule.index).chain(want).collect();
            listed.sort_unstable();
            prop_assert_eq!(listed, covering);
            let order: Vec<_> = e.also_matched.iter().map(|c| p.rules[c.rule.index].precedence(c.rule.index)).collect();
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]));
            if let Some(w) = want {
                prop_assert!(order.iter().all(|k| p.rules[w].precedence(w) < *k));
            }
        }
    }

    #[test]
    fn explain_query_without_protocol_answers_for_unselected_traffic(
        rules in prop::collection::vec(arb_rule(), 1..14),
        flows in prop::collection::vec(arb_flow(), 20),
    ) {
        let p = load(&rules);
        let spd = Spd::build(&p);
        for f in &flows {
            // Traffic of a protocol that no rule names stands for "no protocol given".
            let unnamed = Flow { protocol: 99, local_port: 0, remote_port: 0, ..*f };
            let q = ExplainQuery { local: f.local, peer: f.remote, protocol: None, port: None };
            let e = p.explain_query(&spd, &q);
            prop_assert_eq!(e.rule.map(|r| r.index), p.governing_rule_flow(&unnamed));
            // With the protocol and one port named, a rule matches when either of its port lists has it.
            let q = ExplainQuery { local: f.local, peer: f.remote, protocol: Some(f.protocol), port: Some(f.local_port) };
            let e = p.explain_query(&spd, &q);
            if let Some(r) = &e.rule {
                let rule = &p.rules[r.index];
                prop_assert!(rule.enabled && rule.remote.contains(f.remote) && rule.local.contains(f.local));
                prop_assert!(rule.protocol.is_none_or(|x| x == f.protocol));
            }
        }
    }

    #[test]
    fn port_indexed_lists_equal_linear_scan(
        rules in prop::collection::vec(arb_port_rule(), 12..40),
        flows in prop::collection::vec(arb_flow(), 60),
    ) {
        let p = load(&rules);
        let spd = Spd::build(&p);
        for f in &flows {
            prop_assert_eq!(spd.lookup_flow(&p, f), p.governing_rule_flow(f), "flow {:?}", f);
        }
    }
}

/// Many rules on the same few remote sets that differ mostly by port: long candidate lists, with port indexes.
fn arb_port_rule() -> impl Strategy<Value = RuleSpec> {
    let remote = prop_oneof![
        Just("\"any\"".to_string()),
        Just("\"198.51.100.0/26\"".to_string()),
        Just("[\"198.51.100.0/27\", \"2001:db8::/122\"]".to_string())
    ];
    let protocol = prop_oneof![4 => Just(Some("tcp")), 2 => Just(Some("udp")), 1 => Just(None)];
    let action = prop_oneof![Just("require"), Just("request"), Just("bypass"), Just("block")];
    (remote, arb_local(), protocol, arb_ports(), arb_ports(), action, prop::bool::weighted(0.9)).prop_map(
        |(remote, local, protocol, lp, rp, action, enabled)| {
            let ports_ok = protocol.is_some();
            RuleSpec {
                remote,
                local: local.filter(|_| !ports_ok),
                protocol,
                local_ports: lp.filter(|_| ports_ok).or_else(|| ports_ok.then(|| "[\"3\"]".to_string())),
                remote_ports: rp.filter(|_| ports_ok),
                action,
                enabled,
            }
        },
    )
}

#[test]
fn long_port_lists_get_an_index() {
    let mut t = String::from("[defaults]\npsk = \"0123456789abcdef\"\nauto = \"none\"\n");
    for i in 0..40 {
        t.push_str(&format!(
            "[[rule]]\nname = \"p{i}\"\nremote = \"any\"\nprotocol = \"tcp\"\nlocal_ports = [\"{}-{}\"]\n",
            1000 + i,
            1001 + i
        ));
    }
    t.push_str("[[rule]]\nname = \"rest\"\nremote = \"any\"\naction = \"bypass\"\n");
    let p = Policy::from_toml("p.toml", &t, &MemFiles::standard()).unwrap_or_else(|e| panic!("{e:?}"));
    let spd = Spd::build(&p);
    assert!(spd.stats().port_indexes >= 1, "{:?}", spd.stats());
    let local = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    for port in [0u16, 999, 1000, 1001, 1020, 1040, 1041, 1042, 65535] {
        let f = Flow::with_ports(local, IpAddr::V4(v4(3)), 6, port, 5);
        assert_eq!(spd.lookup_flow(&p, &f), p.governing_rule_flow(&f), "port {port}");
    }
}
