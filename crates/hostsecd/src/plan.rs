//! What the policy means for the host: the routes that send protected traffic into the TUN and the firewall
//! plan, both from the SPD's flattened ranges (so that overlapping rules resolve exactly as the datapath does).

use crate::host::{interval_to_prefixes, FirewallPlan, RouteSpec};
use hostsec_proto::policy::address::to_u128;
use hostsec_proto::policy::{Action, DefaultAction, Policy, Spd};
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
    for (lo, hi, action, _rule) in spd.ranges(policy) {
        let v4 = lo.is_ipv4();
        let src = locals.iter().copied().find(|a| a.is_ipv4() == v4);
        for (prefix, len) in interval_to_prefixes(to_u128(lo), to_u128(hi), v4) {
            routes.push(match action {
                Action::Require | Action::Request => RouteSpec::tun(prefix, len, src),
                Action::Bypass | Action::Block => RouteSpec::throw(prefix, len),
            });
            match action {
                Action::Require => plan.require.push((prefix, len)),
                Action::Request => plan.request.push((prefix, len)),
                Action::Bypass => plan.bypass.push((prefix, len)),
                Action::Block => plan.block.push((prefix, len)),
            }
        }
    }
    let never: Vec<(IpAddr, u8)> =
        NEVER_PROTECTED.iter().filter_map(|(a, l)| a.parse().ok().map(|p| (p, *l))).collect();
    routes.retain(|r| !never.contains(&(r.prefix, r.len)));
    routes.extend(never.into_iter().map(|(p, l)| RouteSpec::throw(p, l)));
    (routes, plan)
}
