//! What the policy means for the host: the routes that send protected traffic into the TUN and the firewall
//! plan, both from the SPD's flattened segments (so that overlapping rules resolve exactly as the datapath does).
//!
//! Within a segment of peer addresses the rules apply in precedence order; a rule with traffic selectors
//! (protocol, ports) governs only its flows, so the rules after it still govern the rest, down to the first rule
//! without selectors, which governs everything left (its action goes into the address lists). The rules with
//! selectors before it become flow rules of the firewall for that segment. A segment goes into the TUN when any
//! of its rules in force negotiates IPsec: the datapath then decides per flow (seal, cleartext, drop).

use crate::host::{interval_to_prefixes, FirewallPlan, FlowAction, FlowRule, RouteSpec};
use hostsec_proto::ike::selector::{has_selectors, precedence};
use hostsec_proto::policy::{Action, DefaultAction, Policy, PortRange, Precedence, Spd};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Destinations that never go into the TUN, whatever the rules: multicast and broadcast, and IPv6 link-local
/// (neighbour discovery must keep working, SPEC §4; IKE transport SAs protect unicast traffic between two hosts).
const NEVER_PROTECTED: [(&str, u8); 5] =
    [("224.0.0.0", 4), ("255.255.255.255", 32), ("169.254.0.0", 16), ("ff00::", 8), ("fe80::", 10)];

/// The routes of the TUN table and the firewall plan for `policy`. `locals` are our addresses (the preferred
/// source of protected routes, per family).
pub fn host_plan(policy: &Policy, spd: &Spd, locals: &[IpAddr], tun: &str) -> (Vec<RouteSpec>, FirewallPlan) {
    let mut routes = Vec::new();
    let mut plan = FirewallPlan { tun: tun.to_string(), ..FirewallPlan::default() };
    plan.default_block = policy.global.default_action == DefaultAction::Block;
    // Flow rules by precedence (the order the datapath tries rules in), each with its prefixes.
    let mut flows: BTreeMap<Precedence, Vec<(IpAddr, u8)>> = BTreeMap::new();
    for v4 in [true, false] {
        let src = locals.iter().copied().find(|a| a.is_ipv4() == v4);
        for seg in &spd.segments(v4) {
            let mut selective = Vec::new();
            let mut base = None;
            for i in spd.rules_of(seg).iter().map(|i| *i as usize) {
                let Some(r) = policy.rules.get(i) else { continue };
                if has_selectors(r) {
                    selective.push(i);
                } else {
                    base = Some(i);
                    break;
                }
            }
            let negotiates = selective.iter().chain(base.iter()).any(|i| policy.rules[*i].action.negotiates());
            let prefixes = interval_to_prefixes(seg.lo, seg.hi, v4);
            for (prefix, len) in &prefixes {
                routes.push(if negotiates {
                    RouteSpec::tun(*prefix, *len, src)
                } else {
                    RouteSpec::throw(*prefix, *len)
                });
            }
            for i in &selective {
                flows.entry(precedence(&policy.rules[*i], *i)).or_default().extend(prefixes.iter().copied());
            }
            let list = match base.map(|i| policy.rules[i].action) {
                Some(Action::Require) => &mut plan.require,
                Some(Action::Request) => &mut plan.request,
                Some(Action::Bypass) => &mut plan.bypass,
                Some(Action::Block) if selective.is_empty() => &mut plan.block,
                Some(Action::Block) => &mut plan.block_late,
                // No rule without selectors: what the selective rules leave is the default action's.
                None => continue,
            };
            list.extend(prefixes);
        }
    }
    for (Precedence { index, .. }, prefixes) in flows {
        let r = &policy.rules[index];
        let ports = |l: &[PortRange]| l.iter().map(|p| (p.first, p.last)).collect::<Vec<_>>();
        plan.flows.push(FlowRule {
            prefixes,
            protocol: r.protocol.unwrap_or(0),
            local_ports: ports(&r.local_ports),
            remote_ports: ports(&r.remote_ports),
            action: match r.action {
                Action::Require => FlowAction::Require,
                Action::Request | Action::Bypass => FlowAction::Pass,
                Action::Block => FlowAction::Block,
            },
        });
    }
    let never: Vec<(IpAddr, u8)> =
        NEVER_PROTECTED.iter().filter_map(|(a, l)| a.parse().ok().map(|p| (p, *l))).collect();
    routes.retain(|r| !never.contains(&(r.prefix, r.len)));
    routes.extend(never.into_iter().map(|(p, l)| RouteSpec::throw(p, l)));
    (routes, plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::RouteKind;
    use hostsec_proto::policy::ConfigFiles;

    struct NoFiles;
    impl ConfigFiles for NoFiles {
        fn read_secret(&self, _: &std::path::Path) -> Result<Vec<u8>, String> {
            Err("none".into())
        }
    }

    fn policy(rules: &str) -> Policy {
        let text = format!("[defaults]\npsk = \"0123456789abcdef\"\nauto = \"none\"\n{rules}");
        Policy::from_toml("t.toml", &text, &NoFiles).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn is_tun(r: &RouteSpec) -> bool {
        matches!(r.kind, RouteKind::Tun { .. })
    }

    fn pfx(s: &str) -> (IpAddr, u8) {
        (s.parse().unwrap(), if s.contains(':') { 128 } else { 32 })
    }

    #[test]
    fn require_for_one_port_beside_bypass_for_the_rest() {
        let mut p = policy(
            "[[rule]]\nname = \"print\"\nremote = \"198.51.100.2\"\naction = \"require\"\n\
             [[rule]]\nname = \"rest\"\nremote = \"198.51.100.2\"\naction = \"bypass\"\n\
             [[rule]]\nname = \"c\"\nremote = \"198.51.100.3\"\naction = \"require\"\n",
        );
        p.rules[0].protocol = Some(6);
        p.rules[0].local_ports = vec![PortRange { first: 9100, last: 9100 }];
        let spd = Spd::build(&p);
        let (routes, plan) = host_plan(&p, &spd, &["198.51.100.1".parse().unwrap()], "hs0");
        assert_eq!(plan.bypass, vec![pfx("198.51.100.2")], "the rest of the peer is bypass");
        assert_eq!(plan.require, vec![pfx("198.51.100.3")]);
        assert_eq!(
            plan.flows,
            vec![FlowRule {
                prefixes: vec![pfx("198.51.100.2")],
                protocol: 6,
                local_ports: vec![(9100, 9100)],
                remote_ports: vec![],
                action: FlowAction::Require,
            }]
        );
        let tun = |a: &str| routes.iter().any(|r| r.prefix == a.parse::<IpAddr>().unwrap() && r.len == 32 && is_tun(r));
        assert!(tun("198.51.100.2"), "the datapath decides per flow: {routes:?}");
        assert!(tun("198.51.100.3"));
    }

    #[test]
    fn selectors_under_a_block_and_without_a_base_rule() {
        let mut p = policy(
            "[[rule]]\nname = \"ssh\"\nremote = \"203.0.113.5\"\naction = \"bypass\"\n\
             [[rule]]\nname = \"deny\"\nremote = \"203.0.113.0/24\"\naction = \"block\"\n\
             [[rule]]\nname = \"snmp\"\nremote = \"192.0.2.9\"\naction = \"request\"\n",
        );
        p.rules[0].protocol = Some(6);
        p.rules[0].local_ports = vec![PortRange { first: 22, last: 22 }];
        p.rules[2].protocol = Some(17);
        let spd = Spd::build(&p);
        let (routes, plan) = host_plan(&p, &spd, &[], "hs0");
        // 203.0.113.5 lets ssh through and blocks the rest after the flows; the rest of the /24 is blocked outright.
        assert_eq!(plan.block_late, vec![pfx("203.0.113.5")], "{plan:?}");
        assert_eq!(plan.block.len(), 8, "203.0.113.0/24 without .5: {plan:?}");
        assert!(plan.request.is_empty(), "only udp is 'request': the rest of 192.0.2.9 has the default action");
        assert_eq!(plan.flows.len(), 2);
        assert!(routes.iter().any(|r| r.prefix == "192.0.2.9".parse::<IpAddr>().unwrap() && is_tun(r)));
        assert!(routes.iter().filter(|r| r.prefix.to_string().starts_with("203.0.113.")).all(|r| !is_tun(r)));
    }
}
