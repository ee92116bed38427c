//! Traffic selectors and precedence: which flows a rule covers (addresses, protocol, ports), and the order in
//! which rules covering the same flow compete (SPEC §2 "most specific wins", our design; see docs/config.md).

use super::address::AddressCount;
use super::{Action, PortRange, Rule};
use serde::Serialize;
use std::cmp::Ordering;
use std::net::IpAddr;

/// IANA protocol numbers that the config names, and the ones whose traffic has ports.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP (RFC 4960): has ports.
    pub const SCTP: u8 = 132;
    /// UDP-Lite (RFC 3828): has ports.
    pub const UDPLITE: u8 = 136;
}

/// Whether traffic of this IP protocol carries ports that `local_ports` / `remote_ports` can select.
pub fn has_ports(protocol: u8) -> bool {
    matches!(protocol, proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE)
}

/// The config name of a protocol number, or the number.
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        proto::ICMP => "icmp".into(),
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::ICMPV6 => "icmpv6".into(),
        proto::SCTP => "sctp".into(),
        proto::UDPLITE => "udplite".into(),
        n => n.to_string(),
    }
}

/// Parses a protocol as the config and the CLI write it: a name (any case) or a number 0-255.
pub fn parse_protocol(text: &str) -> Result<u8, String> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "tcp" => Ok(proto::TCP),
        "udp" => Ok(proto::UDP),
        "icmp" => Ok(proto::ICMP),
        "icmpv6" | "ipv6-icmp" => Ok(proto::ICMPV6),
        "sctp" => Ok(proto::SCTP),
        "udplite" => Ok(proto::UDPLITE),
        _ => t.parse::<u8>().map_err(|_| {
            format!("'{t}' is not a protocol; use tcp, udp, icmp, icmpv6, sctp, udplite or a number 0-255")
        }),
    }
}

/// One direction-independent flow as this host sees it: our address and port, the peer's address and port.
/// Ports are 0 when the protocol has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Flow {
    /// This host's address.
    pub local: IpAddr,
    /// The peer's address.
    pub remote: IpAddr,
    /// IP protocol number (next header).
    pub protocol: u8,
    /// This host's port (0 when the protocol has none).
    pub local_port: u16,
    /// The peer's port (0 when the protocol has none).
    pub remote_port: u16,
}

impl Flow {
    /// A flow without ports (ICMP, ESP, anything that is not TCP/UDP/SCTP/UDP-Lite).
    pub fn new(local: IpAddr, remote: IpAddr, protocol: u8) -> Flow {
        Flow { local, remote, protocol, local_port: 0, remote_port: 0 }
    }

    /// A flow with ports.
    pub fn with_ports(local: IpAddr, remote: IpAddr, protocol: u8, local_port: u16, remote_port: u16) -> Flow {
        Flow { local, remote, protocol, local_port, remote_port }
    }
}

/// Number of ports a list covers (overlaps counted once); an empty list means every port, 65536.
pub fn port_count(list: &[PortRange]) -> u32 {
    if list.is_empty() {
        return 65536;
    }
    let mut v: Vec<(u32, u32)> = list.iter().map(|p| (u32::from(p.first), u32::from(p.last))).collect();
    v.sort_unstable();
    let mut total = 0u32;
    let mut end: Option<u32> = None; // last port already counted
    for (lo, hi) in v {
        let lo = match end {
            Some(e) if lo <= e => e + 1,
            _ => lo,
        };
        if lo <= hi {
            total += hi - lo + 1;
        }
        end = Some(end.map_or(hi, |e| e.max(hi)));
    }
    total
}

/// Whether `port` is in the list; an empty list means every port.
pub fn port_in(list: &[PortRange], port: u16) -> bool {
    list.is_empty() || list.iter().any(|p| p.first <= port && port <= p.last)
}

/// Writes a port list as the config does: `9100, 6000-6063`; empty = `all`.
pub fn ports_text(list: &[PortRange]) -> String {
    if list.is_empty() {
        return "all".into();
    }
    let parts: Vec<String> = list
        .iter()
        .map(|p| if p.first == p.last { p.first.to_string() } else { format!("{}-{}", p.first, p.last) })
        .collect();
    parts.join(", ")
}

/// How narrow a rule is; smaller is more specific and wins. Compared field by field in this order: remote
/// addresses, local addresses, whether a protocol is named, local ports, remote ports (SPEC §2, our design).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Specificity {
    /// Number of remote addresses.
    pub remote: AddressCount,
    /// Number of local addresses.
    pub local: AddressCount,
    /// `false` when the rule names a protocol (so that it sorts first).
    pub any_protocol: bool,
    /// Number of local ports (65536 when the rule has no list).
    pub local_ports: u32,
    /// Number of remote ports (65536 when the rule has no list).
    pub remote_ports: u32,
}

/// Rank of an action among rules of equal specificity: block beats require/request, which beat bypass.
pub fn action_rank(action: Action) -> u8 {
    match action {
        Action::Block => 0,
        Action::Require | Action::Request => 1,
        Action::Bypass => 2,
    }
}

/// The total order of competing rules: specificity, then action rank, then file order (the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Precedence {
    /// How narrow the rule is.
    pub specificity: Specificity,
    /// [`action_rank`] of its action.
    pub action_rank: u8,
    /// Its index in the file.
    pub index: usize,
}

impl Rule {
    /// Whether the flow falls within this rule's remote and local sets, protocol and ports. Says nothing about
    /// `enabled`, nor whether another rule takes precedence.
    pub fn covers(&self, flow: &Flow) -> bool {
        self.remote.contains(flow.remote) && self.covers_beyond_remote(flow)
    }

    /// [`Rule::covers`] without the remote check, for lookups that found the rule by its remote set already.
    pub(crate) fn covers_beyond_remote(&self, flow: &Flow) -> bool {
        self.protocol.is_none_or(|p| p == flow.protocol)
            && port_in(&self.local_ports, flow.local_port)
            && port_in(&self.remote_ports, flow.remote_port)
            && self.local.contains(flow.local)
    }

    /// Whether the rule restricts anything but the remote addresses: a rule that does not covers every flow
    /// with the peers of its remote set, so that no rule after it in precedence order can govern them.
    pub fn has_selectors(&self) -> bool {
        !self.local.is_any() || self.protocol.is_some() || !self.local_ports.is_empty() || !self.remote_ports.is_empty()
    }

    /// How narrow the rule is (see [`Specificity`]).
    pub fn specificity(&self) -> Specificity {
        Specificity {
            remote: self.remote.count(),
            local: self.local.count(),
            any_protocol: self.protocol.is_none(),
            local_ports: port_count(&self.local_ports),
            remote_ports: port_count(&self.remote_ports),
        }
    }

    /// The rule's place in the competition for a flow, as rule number `index` of the file.
    pub fn precedence(&self, index: usize) -> Precedence {
        Precedence { specificity: self.specificity(), action_rank: action_rank(self.action), index }
    }
}

/// Why rule `a` wins over rule `b` (both cover the flow and `a` precedes `b`), in words: the first criterion
/// that separates them. `None` when `a` does not precede `b`.
pub(crate) fn why_wins(a: &Rule, ka: &Precedence, b: &Rule, kb: &Precedence) -> Option<String> {
    if ka >= kb {
        return None;
    }
    let (sa, sb) = (&ka.specificity, &kb.specificity);
    let name = &b.name;
    Some(match (sa.remote.cmp(&sb.remote), sa.local.cmp(&sb.local)) {
        (Ordering::Less, _) => format!(
            "most specific: remote {} ({}) is narrower than '{name}' ({}, {})",
            a.remote, sa.remote, b.remote, sb.remote
        ),
        (_, Ordering::Less) => format!(
            "same remote size as '{name}' ({}); local {} ({}) is narrower than the local of '{name}' ({}, {})",
            sa.remote, a.local, sa.local, b.local, sb.local
        ),
        _ if sa.any_protocol != sb.any_protocol => format!(
            "as specific as '{name}' in addresses; it names protocol {} and '{name}' covers every protocol",
            a.protocol.map(protocol_name).unwrap_or_default()
        ),
        _ if sa.local_ports != sb.local_ports => format!(
            "as specific as '{name}' in addresses and protocol; it names fewer local ports ({}) than '{name}' ({})",
            ports_text(&a.local_ports),
            ports_text(&b.local_ports)
        ),
        _ if sa.remote_ports != sb.remote_ports => format!(
            "as specific as '{name}' in addresses, protocol and local ports; it names fewer remote ports ({}) than \
             '{name}' ({})",
            ports_text(&a.remote_ports),
            ports_text(&b.remote_ports)
        ),
        _ if ka.action_rank != kb.action_rank => {
            format!("same specificity as '{name}', {} wins over {}", a.action.name(), b.action.name())
        }
        _ => format!(
            "same specificity and action rank as '{name}'; it comes first in the file (line {}, '{name}' at line {})",
            a.line, b.line
        ),
    })
}

/// The reverse of [`why_wins`]: why `b` loses to the winner `a`, from `b`'s point of view.
pub(crate) fn why_loses(b: &Rule, kb: &Precedence, a: &Rule, ka: &Precedence) -> String {
    let (sa, sb) = (&ka.specificity, &kb.specificity);
    let w = &a.name;
    match (sb.remote.cmp(&sa.remote), sb.local.cmp(&sa.local)) {
        (Ordering::Greater, _) => {
            format!(
                "less specific: remote {} ({}) is wider than the remote of '{w}' ({}, {})",
                b.remote, sb.remote, a.remote, sa.remote
            )
        }
        (_, Ordering::Greater) => format!(
            "same remote size; local {} ({}) is wider than the local of '{w}' ({}, {})",
            b.local, sb.local, a.local, sa.local
        ),
        _ if sb.any_protocol != sa.any_protocol => format!(
            "as specific in addresses; '{w}' names protocol {} and this rule covers every protocol",
            a.protocol.map(protocol_name).unwrap_or_default()
        ),
        _ if sb.local_ports != sa.local_ports => {
            format!("more local ports ({}) than '{w}' ({})", ports_text(&b.local_ports), ports_text(&a.local_ports))
        }
        _ if sb.remote_ports != sa.remote_ports => {
            format!("more remote ports ({}) than '{w}' ({})", ports_text(&b.remote_ports), ports_text(&a.remote_ports))
        }
        _ if kb.action_rank != ka.action_rank => {
            format!("same specificity as '{w}', {} wins over {}", a.action.name(), b.action.name())
        }
        _ => format!("same specificity and action rank as '{w}', which comes first in the file (line {})", a.line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_counts_merge_overlaps() {
        let r = |first, last| PortRange { first, last };
        assert_eq!(port_count(&[]), 65536);
        assert_eq!(port_count(&[r(80, 80)]), 1);
        assert_eq!(port_count(&[r(80, 90), r(85, 100), r(80, 80), r(200, 200)]), 22);
        assert_eq!(port_count(&[r(0, 65535), r(5, 6)]), 65536);
        assert!(port_in(&[r(6000, 6063)], 6010) && !port_in(&[r(6000, 6063)], 6064));
        assert_eq!(ports_text(&[r(9100, 9100), r(6000, 6063)]), "9100, 6000-6063");
    }

    #[test]
    fn protocol_names() {
        assert_eq!(parse_protocol("TCP"), Ok(6));
        assert_eq!(parse_protocol("132"), Ok(132));
        assert!(parse_protocol("tpc").unwrap_err().contains("use tcp, udp"));
        assert!(parse_protocol("256").is_err());
        assert_eq!(protocol_name(58), "icmpv6");
        assert!(has_ports(136) && !has_ports(1));
    }
}
