//! Traffic selectors of Quick Mode SAs (RFC 2407 §4.6.2: the protocol and port fields of IDci/IDcr) and the
//! matching of flows against rules that the IKE engine, the datapath and the firewall plan share.
//!
//! A rule without `protocol`/`local_ports`/`remote_ports` covers all traffic between its hosts, and its SAs carry
//! [`Selector::ANY`] (IDs with protocol 0 and port 0, as before selectors existed, so that peers such as strongSwan
//! see no change). A rule with selectors gets SAs narrowed to one protocol and, when it can be said in one ID, one
//! port per side.
//!
//! Every place that asks "which rule governs this flow" or "does this rule cover this flow" goes through the
//! functions of this file marked `SWITCH: lookup_flow`, so that the policy module's own flow lookups replace them
//! in one line each once they exist.

use crate::policy::{Policy, PortRange, Precedence, Rule, Spd};
use std::fmt;
use std::net::IpAddr;

/// One flow of traffic as the policy sees it: the policy module's.
// SWITCH: lookup_flow (done)
pub use crate::policy::Flow;

/// The traffic a Quick Mode SA pair carries between its two hosts, from this host's point of view. Zero means
/// "any" in every field, as in the ID payload (RFC 2407 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Selector {
    /// IP protocol; 0 = any.
    pub protocol: u8,
    /// This host's port; 0 = any.
    pub local_port: u16,
    /// The peer's port; 0 = any.
    pub remote_port: u16,
}

impl Selector {
    /// All traffic between the two hosts.
    pub const ANY: Selector = Selector { protocol: 0, local_port: 0, remote_port: 0 };

    /// Whether it carries all traffic.
    pub fn is_any(&self) -> bool {
        *self == Self::ANY
    }

    /// Whether a packet of `protocol` from our `local_port` to the peer's `remote_port` (or the other way
    /// round, inbound) belongs to this SA.
    #[inline]
    pub fn covers(&self, protocol: u8, local_port: u16, remote_port: u16) -> bool {
        (self.protocol == 0 || self.protocol == protocol)
            && (self.local_port == 0 || self.local_port == local_port)
            && (self.remote_port == 0 || self.remote_port == remote_port)
    }

    /// [`Selector::covers`] for a flow (its addresses are the SA's business, not the selector's).
    #[inline]
    pub fn covers_flow(&self, flow: &Flow) -> bool {
        self.covers(flow.protocol, flow.local_port, flow.remote_port)
    }

    /// How narrow it is (fields that are not "any"): among SAs that cover a packet, the narrowest is used, so
    /// that an SA for one port is not bypassed by a broader one of another rule.
    #[inline]
    pub fn specificity(&self) -> u8 {
        u8::from(self.protocol != 0) + u8::from(self.local_port != 0) + u8::from(self.remote_port != 0)
    }

    /// The flow that stands for the whole selector between `local` and `remote` (zeros for "any").
    pub fn as_flow(&self, local: IpAddr, remote: IpAddr) -> Flow {
        Flow { local, remote, protocol: self.protocol, local_port: self.local_port, remote_port: self.remote_port }
    }

    /// The same traffic from the peer's point of view.
    pub fn mirrored(&self) -> Selector {
        Selector { protocol: self.protocol, local_port: self.remote_port, remote_port: self.local_port }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("all traffic");
        }
        let port = |p: u16| if p == 0 { "any".to_string() } else { p.to_string() };
        write!(
            f,
            "{} local port {} remote port {}",
            protocol_name(self.protocol),
            port(self.local_port),
            port(self.remote_port)
        )
    }
}

/// A protocol number as the config writes it.
pub fn protocol_name(p: u8) -> String {
    match p {
        0 => "any protocol".to_string(),
        1 => "icmp".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        58 => "icmpv6".to_string(),
        n => format!("protocol {n}"),
    }
}

fn in_ports(ports: &[PortRange], port: u16) -> bool {
    ports.is_empty() || ports.iter().any(|r| r.first <= port && port <= r.last)
}

/// The rule's protocol, with an explicit 0 read as "any".
fn rule_protocol(rule: &Rule) -> Option<u8> {
    rule.protocol.filter(|p| *p != 0)
}

/// Whether the rule has traffic selectors at all.
pub fn has_selectors(rule: &Rule) -> bool {
    rule_protocol(rule).is_some() || !rule.local_ports.is_empty() || !rule.remote_ports.is_empty()
}

/// Whether `rule` covers `flow`: both addresses, the protocol and both ports.
// SWITCH: lookup_flow — becomes `rule.covers(flow)`.
pub fn rule_covers(rule: &Rule, flow: &Flow) -> bool {
    rule.covers(flow)
}

/// The precedence of rules that cover the same flow (SPEC §2, as [`Policy::governing_rule`] and the SPD's
/// segments order them): smaller wins. `index` is the rule's position in the file.
pub fn precedence(rule: &Rule, index: usize) -> Precedence {
    rule.precedence(index)
}

/// The rule that governs `flow` (index into `policy.rules`), by a scan of the rules (the IKE engine's view; the
/// datapath uses [`lookup_flow`]).
// SWITCH: lookup_flow — becomes `policy.governing_rule_flow(flow)`.
pub fn governing_rule_flow(policy: &Policy, flow: &Flow) -> Option<usize> {
    policy.governing_rule_flow(flow)
}

/// The rule that governs `flow`, through the SPD (one binary search, then the few rules of the peer's
/// segment in precedence order; no allocation: the datapath calls it per packet).
// SWITCH: lookup_flow — becomes `spd.lookup_flow(policy, flow)`.
#[inline]
pub fn lookup_flow(spd: &Spd, policy: &Policy, flow: &Flow) -> Option<usize> {
    spd.lookup_flow(policy, flow)
}

/// The rule IKE with `peer` on `local` negotiates Main Mode under: the rule that governs the two hosts when it
/// negotiates; otherwise the most preferred negotiating rule with traffic selectors that covers both addresses
/// (it governs some of the traffic between them, e.g. `require` for tcp/9100 beside `bypass` for the rest).
pub fn main_mode_rule(policy: &Policy, local: IpAddr, peer: IpAddr) -> Option<usize> {
    policy.rule_for_peer(local, peer).or_else(|| {
        policy
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.negotiates_with(local, peer) && has_selectors(r))
            .min_by_key(|(i, r)| precedence(r, *i))
            .map(|(i, _)| i)
    })
}

/// Whether all the traffic of `sel` between the two hosts lies within `rule`'s protocol and ports. `Err` says
/// which field of the rule excludes it, in words for the log.
pub fn rule_contains(rule: &Rule, sel: &Selector) -> Result<(), String> {
    if let Some(p) = rule_protocol(rule) {
        if sel.protocol != p {
            return Err(format!(
                "protocol = {} of rule '{}' excludes {}",
                protocol_name(p),
                rule.name,
                if sel.protocol == 0 { "all other protocols".to_string() } else { protocol_name(sel.protocol) }
            ));
        }
    }
    for (field, ports, port) in
        [("local_ports", &rule.local_ports, sel.local_port), ("remote_ports", &rule.remote_ports, sel.remote_port)]
    {
        if ports.is_empty() {
            continue;
        }
        let ok = port != 0 && in_ports(ports, port);
        if !ok {
            let list: Vec<String> = ports
                .iter()
                .map(|r| if r.first == r.last { r.first.to_string() } else { format!("{}-{}", r.first, r.last) })
                .collect();
            return Err(format!(
                "{field} = [{}] of rule '{}' excludes {}",
                list.join(", "),
                rule.name,
                if port == 0 { "any port".to_string() } else { format!("port {port}") }
            ));
        }
    }
    Ok(())
}

/// The selector an initiator proposes under `rule`: the rule's protocol, and on each side the rule's port when
/// it lists a single one, else the port of the packet that asked for the SA (`flow`, on-demand) when the rule
/// covers it, else any. A rule without protocol proposes all traffic.
pub fn initiator_selector(rule: &Rule, flow: Option<&Flow>) -> Selector {
    let Some(protocol) = rule_protocol(rule) else {
        return Selector::ANY;
    };
    let flow = flow.filter(|f| f.protocol == protocol);
    let port = |ports: &[PortRange], from_flow: Option<u16>| match ports {
        [one] if one.first == one.last => one.first,
        [] => 0,
        _ => from_flow.filter(|p| *p != 0 && in_ports(ports, *p)).unwrap_or(0),
    };
    Selector {
        protocol,
        local_port: port(&rule.local_ports, flow.map(|f| f.local_port)),
        remote_port: port(&rule.remote_ports, flow.map(|f| f.remote_port)),
    }
}

/// Why a rule's changes between `old` and `new` invalidate SAs negotiated under it: the fields that decide how
/// an SA was authenticated and keyed (authentication, keys, identities, strength, keying, PFS, NAT-T). Empty
/// when none changed.
pub fn changed_fields(old: &Rule, new: &Rule) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            out.push(name);
        }
    };
    check("authentication", old.authentication == new.authentication);
    check("psk", old.psk == new.psk);
    let same_material = match (&old.cert_auth, &new.cert_auth) {
        (Some(a), Some(b)) => a.same_material(b),
        (None, None) => true,
        _ => false,
    };
    check("certificate", old.certificate == new.certificate && same_material);
    check("private_key", old.private_key == new.private_key);
    check("trusted_cas", old.trusted_cas == new.trusted_cas);
    check("crls", old.crls == new.crls);
    check("local_id", old.local_id == new.local_id);
    check("remote_id", old.remote_id == new.remote_id);
    check("keying", old.keying == new.keying);
    check("minimum_strength", old.minimum_strength == new.minimum_strength);
    check("pfs", old.pfs == new.pfs);
    check("nat_traversal", old.nat_traversal == new.nat_traversal);
    check("offer_restriction", old.offer_restriction == new.offer_restriction);
    out
}

/// Whether two rules authenticate a peer the same way, so that a Quick Mode governed by one may run under a
/// Main Mode SA negotiated under the other without lowering what the Main Mode proved.
pub fn same_authentication(a: &Rule, b: &Rule) -> bool {
    a.authentication == b.authentication
        && a.psk == b.psk
        && a.certificate == b.certificate
        && a.trusted_cas == b.trusted_cas
        && match (&a.cert_auth, &b.cert_auth) {
            (Some(x), Some(y)) => x.same_material(y),
            (None, None) => true,
            _ => false,
        }
        && a.remote_id == b.remote_id
        && a.minimum_strength >= b.minimum_strength
}

/// What a reload means for an SA of rule `name` between `local` and `peer` (with `selector` for a Quick Mode
/// SA, `None` for a Main Mode SA): `None` to keep it, or the reason to delete it.
pub fn reload_verdict(
    old: Option<&Rule>,
    new_policy: &Policy,
    name: &str,
    local: IpAddr,
    peer: IpAddr,
    selector: Option<&Selector>,
) -> Option<String> {
    let Some(new_index) = new_policy.rule_index(name) else {
        return Some(format!("rule '{name}' removed by reload"));
    };
    let new = &new_policy.rules[new_index];
    if !new.enabled {
        return Some(format!("rule '{name}' disabled by reload"));
    }
    if !new.action.negotiates() {
        return Some(format!("rule '{name}' changed (action {})", new.action.name()));
    }
    if !new.remote.contains(peer) {
        return Some(format!("rule '{name}' no longer covers peer {peer}"));
    }
    if !new.local.contains(local) {
        return Some(format!("rule '{name}' no longer covers local address {local}"));
    }
    if let Some(old) = old {
        let changed = changed_fields(old, new);
        if !changed.is_empty() {
            return Some(format!("rule '{name}' changed ({})", changed.join(", ")));
        }
    }
    if let Some(sel) = selector {
        if let Err(why) = rule_contains(new, sel) {
            let field = ["protocol", "local_ports", "remote_ports"].into_iter().find(|f| why.starts_with(f));
            return Some(format!("rule '{name}' changed ({}): {why}", field.unwrap_or("selectors")));
        }
        let flow = sel.as_flow(local, peer);
        match governing_rule_flow(new_policy, &flow) {
            Some(g) if g == new_index => {}
            Some(g) => {
                return Some(format!(
                    "rule '{name}' no longer governs {sel} with {peer} (rule '{}' does)",
                    new_policy.rules[g].name
                ))
            }
            None => return Some(format!("rule '{name}' no longer governs {sel} with {peer}")),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ConfigFiles, Policy};

    struct NoFiles;
    impl ConfigFiles for NoFiles {
        fn read_secret(&self, _: &std::path::Path) -> Result<Vec<u8>, String> {
            Err("none".into())
        }
    }

    fn policy() -> Policy {
        let text = "[defaults]\npsk = \"0123456789abcdef\"\nauto = \"none\"\n\
                    [[rule]]\nname = \"print\"\nremote = \"198.51.100.2\"\naction = \"require\"\n\
                    [[rule]]\nname = \"rest\"\nremote = \"198.51.100.2\"\naction = \"bypass\"\n";
        let mut p = Policy::from_toml("t.toml", text, &NoFiles).unwrap_or_else(|e| panic!("{e:?}"));
        p.rules[0].protocol = Some(6);
        p.rules[0].local_ports = vec![PortRange { first: 9100, last: 9100 }];
        p
    }

    fn flow(protocol: u8, local_port: u16, remote_port: u16) -> Flow {
        Flow {
            local: "198.51.100.1".parse().unwrap_or_else(|e| panic!("{e}")),
            remote: "198.51.100.2".parse().unwrap_or_else(|e| panic!("{e}")),
            protocol,
            local_port,
            remote_port,
        }
    }

    #[test]
    fn the_require_rule_governs_its_port_only() {
        let p = policy();
        let spd = Spd::build(&p);
        for (f, want) in [
            (flow(6, 9100, 40000), Some(0)),
            (flow(6, 9101, 40000), Some(1)),
            (flow(17, 9100, 40000), Some(1)),
            (flow(1, 0, 0), Some(1)),
            (flow(0, 0, 0), Some(1)),
        ] {
            assert_eq!(governing_rule_flow(&p, &f), want, "{f:?}");
            assert_eq!(lookup_flow(&spd, &p, &f), want, "{f:?}");
        }
        assert_eq!(main_mode_rule(&p, flow(0, 0, 0).local, flow(0, 0, 0).remote), Some(0));
    }

    #[test]
    fn initiator_selectors() {
        let mut p = policy();
        assert_eq!(initiator_selector(&p.rules[0], None), Selector { protocol: 6, local_port: 9100, remote_port: 0 });
        assert_eq!(initiator_selector(&p.rules[1], Some(&flow(6, 1, 2))), Selector::ANY);
        p.rules[0].local_ports.push(PortRange { first: 631, last: 631 });
        assert_eq!(initiator_selector(&p.rules[0], None), Selector { protocol: 6, local_port: 0, remote_port: 0 });
        assert_eq!(
            initiator_selector(&p.rules[0], Some(&flow(6, 631, 5555))),
            Selector { protocol: 6, local_port: 631, remote_port: 0 }
        );
        assert_eq!(
            initiator_selector(&p.rules[0], Some(&flow(6, 632, 5555))),
            Selector { protocol: 6, local_port: 0, remote_port: 0 },
            "a port the rule does not list is not proposed"
        );
    }

    #[test]
    fn containment_names_the_field() {
        let p = policy();
        let r = &p.rules[0];
        assert!(rule_contains(r, &Selector { protocol: 6, local_port: 9100, remote_port: 0 }).is_ok());
        let e = rule_contains(r, &Selector::ANY).unwrap_err();
        assert!(e.starts_with("protocol = tcp of rule 'print'"), "{e}");
        let e = rule_contains(r, &Selector { protocol: 6, local_port: 0, remote_port: 0 }).unwrap_err();
        assert!(e.starts_with("local_ports = [9100]"), "{e}");
        assert!(rule_contains(&p.rules[1], &Selector::ANY).is_ok());
    }

    #[test]
    fn selectors_cover_and_order() {
        let s = Selector { protocol: 6, local_port: 9100, remote_port: 0 };
        assert!(s.covers(6, 9100, 1234));
        assert!(!s.covers(6, 9101, 1234));
        assert!(!s.covers(17, 9100, 1234));
        assert!(Selector::ANY.covers(17, 1, 2));
        assert!(s.specificity() > Selector::ANY.specificity());
        assert_eq!(s.mirrored(), Selector { protocol: 6, local_port: 0, remote_port: 9100 });
        assert_eq!(s.to_string(), "tcp local port 9100 remote port any");
        assert_eq!(Selector::ANY.to_string(), "all traffic");
    }
}
