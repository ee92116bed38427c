//! Address keywords (`LocalSubnet`, `DefaultGateway`, `DHCP`, `DNS`, `WINS`, SPEC §2): names that stand for
//! addresses of the host's own configuration. The core reads no interface, route or resolver file: the daemon
//! gathers [`HostFacts`] and hands them to [`super::Policy::resolve`], again whenever they change.

use super::address::AddressSpec;
use std::fmt;
use std::net::IpAddr;

/// A keyword that may stand in a `remote` or `local` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keyword {
    /// The subnets of the host's own interface addresses.
    LocalSubnet,
    /// The host's default gateways.
    DefaultGateway,
    /// The DHCP servers the host got its leases from.
    Dhcp,
    /// The host's DNS servers.
    Dns,
    /// The host's WINS servers.
    Wins,
}

impl Keyword {
    /// Every keyword, in the order the documentation and the error messages list them.
    pub const ALL: [Keyword; 5] =
        [Keyword::LocalSubnet, Keyword::DefaultGateway, Keyword::Dhcp, Keyword::Dns, Keyword::Wins];

    /// The spelling used in the documentation (the file may use any case, as Windows' rule editor does).
    pub fn name(self) -> &'static str {
        match self {
            Self::LocalSubnet => "LocalSubnet",
            Self::DefaultGateway => "DefaultGateway",
            Self::Dhcp => "DHCP",
            Self::Dns => "DNS",
            Self::Wins => "WINS",
        }
    }

    /// The keyword spelled `text`, in any case.
    pub fn parse(text: &str) -> Option<Keyword> {
        Self::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(text.trim()))
    }

    /// The keywords as a list for messages: "LocalSubnet, DefaultGateway, DHCP, DNS, WINS".
    pub fn allowed() -> String {
        Self::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }

    /// Why the keyword can resolve to nothing, in words an administrator can check on the host.
    pub fn empty_reason(self) -> &'static str {
        match self {
            Self::LocalSubnet => "no interface address with a prefix in the host's configuration",
            Self::DefaultGateway => "no default route in the host's configuration",
            Self::Dhcp => "no DHCP server known: no address of the host comes from a DHCP lease",
            Self::Dns => "no nameserver in the host's configuration",
            Self::Wins => "no WINS server in the host's configuration",
        }
    }

    /// The addresses the keyword stands for on a host with these facts. Subnets come back with their host bits
    /// cleared (the facts carry interface addresses such as 192.0.2.10/24); out-of-range prefixes are clamped.
    pub fn expand(self, facts: &HostFacts) -> Vec<AddressSpec> {
        let hosts = |list: &[IpAddr]| list.iter().map(|a| AddressSpec::Host(*a)).collect::<Vec<_>>();
        let mut out = match self {
            Self::LocalSubnet => facts
                .local_subnets
                .iter()
                .map(|(addr, prefix)| {
                    let max = if addr.is_ipv4() { 32 } else { 128 };
                    let prefix = (*prefix).min(max);
                    let (lo, _) = AddressSpec::Subnet(*addr, prefix).bounds().unwrap_or_default();
                    AddressSpec::Subnet(super::address::from_u128(lo, addr.is_ipv4()), prefix)
                })
                .collect(),
            Self::DefaultGateway => hosts(&facts.default_gateways),
            Self::Dhcp => hosts(&facts.dhcp_servers),
            Self::Dns => hosts(&facts.dns_servers),
            Self::Wins => hosts(&facts.wins_servers),
        };
        // Two interfaces on one subnet, or a resolver listed twice, are one entry to display.
        let mut seen = Vec::with_capacity(out.len());
        out.retain(|s| {
            if seen.contains(s) {
                false
            } else {
                seen.push(*s);
                true
            }
        });
        out
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the keywords stand for on this host, gathered by the daemon (interfaces, routes, resolver and lease
/// files) and kept as plain data so that the core stays free of I/O and tests can state any host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Interface addresses with their prefix lengths (`LocalSubnet`); host bits may be set.
    pub local_subnets: Vec<(IpAddr, u8)>,
    /// Default gateways (`DefaultGateway`).
    pub default_gateways: Vec<IpAddr>,
    /// DHCP servers (`DHCP`).
    pub dhcp_servers: Vec<IpAddr>,
    /// DNS servers (`DNS`).
    pub dns_servers: Vec<IpAddr>,
    /// WINS servers (`WINS`).
    pub wins_servers: Vec<IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_any_case_and_expands() {
        assert_eq!(Keyword::parse("dns"), Some(Keyword::Dns));
        assert_eq!(Keyword::parse("LOCALSUBNET"), Some(Keyword::LocalSubnet));
        assert_eq!(Keyword::parse("defaultgateway"), Some(Keyword::DefaultGateway));
        assert_eq!(Keyword::parse("DSN"), None);
        assert_eq!(Keyword::allowed(), "LocalSubnet, DefaultGateway, DHCP, DNS, WINS");
        let facts = HostFacts {
            local_subnets: vec![
                ("192.0.2.10".parse().unwrap(), 24),
                ("192.0.2.11".parse().unwrap(), 24),
                ("2001:db8::5".parse().unwrap(), 200),
            ],
            dns_servers: vec!["192.0.2.53".parse().unwrap()],
            ..HostFacts::default()
        };
        let subnets: Vec<String> = Keyword::LocalSubnet.expand(&facts).iter().map(ToString::to_string).collect();
        assert_eq!(subnets, ["192.0.2.0/24", "2001:db8::5/128"]);
        assert_eq!(Keyword::Dns.expand(&facts), vec![AddressSpec::Host("192.0.2.53".parse().unwrap())]);
        assert!(Keyword::Wins.expand(&facts).is_empty());
    }
}
