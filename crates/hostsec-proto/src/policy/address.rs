//! Address sets: the `remote` and `local` of a rule ("trusted network locations"). A set is a sorted list of
//! disjoint intervals per address family, so that membership is a binary search, whatever mix of addresses,
//! dash ranges, subnets and keywords the administrator wrote.

use super::keyword::{HostFacts, Keyword};
use std::fmt;
use std::net::IpAddr;

/// One element of an address list as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressSpec {
    /// A single address.
    Host(IpAddr),
    /// An inclusive dash range `first-last` of one family.
    Range(IpAddr, IpAddr),
    /// A subnet `address/prefix`; host bits must be zero.
    Subnet(IpAddr, u8),
    /// A keyword standing for addresses of the host's configuration; what it covers is known only after
    /// [`AddressSet::resolve`].
    Keyword(Keyword),
}

impl AddressSpec {
    /// Parses `10.0.0.1`, `10.0.0.1-10.0.0.9`, `10.0.0.0/24`, `2001:db8::/32` and the keywords (any case).
    /// `Err` says what is allowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(k) = Keyword::parse(text) {
            return Ok(Self::Keyword(k));
        }
        if let Some((a, b)) = text.split_once('-') {
            let first: IpAddr =
                a.trim().parse().map_err(|_| format!("'{}' in range '{text}' is not an IP address", a.trim()))?;
            let last: IpAddr =
                b.trim().parse().map_err(|_| format!("'{}' in range '{text}' is not an IP address", b.trim()))?;
            if first.is_ipv4() != last.is_ipv4() {
                return Err(format!("range '{text}' mixes IPv4 and IPv6"));
            }
            if to_u128(first) > to_u128(last) {
                return Err(format!("range '{text}' ends before it starts"));
            }
            return Ok(Self::Range(first, last));
        }
        if let Some((a, p)) = text.split_once('/') {
            let addr: IpAddr = a.parse().map_err(|_| format!("'{a}' in subnet '{text}' is not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = p
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length '{p}' in subnet '{text}' must be 0 to {max}"))?;
            let lo = subnet_bounds(addr, prefix).0;
            if lo != to_u128(addr) {
                return Err(format!(
                    "subnet '{text}' has host bits set (did you mean {}/{prefix}?)",
                    from_u128(lo, addr.is_ipv4())
                ));
            }
            return Ok(Self::Subnet(addr, prefix));
        }
        text.parse::<IpAddr>().map(Self::Host).map_err(|_| {
            format!(
                "'{text}' is not an address, a dash range (a.b.c.d-e.f.g.h), a subnet (a.b.c.d/n) or a keyword \
                 ({})",
                Keyword::allowed()
            )
        })
    }

    /// Whether the element is IPv4; `None` for a keyword, which may stand for addresses of both families.
    pub fn is_ipv4(&self) -> Option<bool> {
        match self {
            Self::Host(a) | Self::Range(a, _) | Self::Subnet(a, _) => Some(a.is_ipv4()),
            Self::Keyword(_) => None,
        }
    }

    /// First and last address as integers in the family's space; `None` for a keyword (see
    /// [`AddressSet::intervals`] for what a resolved set covers).
    pub fn bounds(&self) -> Option<(u128, u128)> {
        match *self {
            Self::Host(a) => Some((to_u128(a), to_u128(a))),
            Self::Range(a, b) => Some((to_u128(a), to_u128(b))),
            Self::Subnet(a, p) => Some(subnet_bounds(a, p)),
            Self::Keyword(_) => None,
        }
    }
}

/// First and last address of `addr/prefix`; a prefix longer than the family's is taken as a host.
fn subnet_bounds(addr: IpAddr, prefix: u8) -> (u128, u128) {
    let bits: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let host_bits = u32::from(bits.saturating_sub(prefix));
    let mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
    let lo = to_u128(addr) & !mask;
    (lo, lo | mask)
}

impl fmt::Display for AddressSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(a) => write!(f, "{a}"),
            Self::Range(a, b) => write!(f, "{a}-{b}"),
            Self::Subnet(a, p) => write!(f, "{a}/{p}"),
            Self::Keyword(k) => write!(f, "{k}"),
        }
    }
}

/// An IPv4 address as an integer in the low 32 bits, an IPv6 address as all 128.
pub fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`] for the given family.
pub fn from_u128(v: u128, ipv4: bool) -> IpAddr {
    if ipv4 {
        IpAddr::V4((v as u32).into())
    } else {
        IpAddr::V6(v.into())
    }
}

/// The exact number of addresses in a set. IPv6 alone has 2^128 addresses, so `any` (every IPv4 and IPv6
/// address) does not fit in a `u128`: the count carries the multiples of 2^128 apart. Ordered by size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AddressCount {
    wraps: u8,
    low: u128,
}

impl AddressCount {
    /// Whether the count is 1.
    pub fn is_one(self) -> bool {
        self.wraps == 0 && self.low == 1
    }

    fn add(self, n: u128) -> Self {
        match self.low.checked_add(n) {
            Some(low) => AddressCount { wraps: self.wraps, low },
            None => AddressCount { wraps: self.wraps.saturating_add(1), low: self.low.wrapping_add(n) },
        }
    }
}

impl fmt::Display for AddressCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pow = |v: u128| (v.is_power_of_two() && v > 1 << 32).then(|| v.trailing_zeros());
        match (self.wraps, self.low) {
            (0, 1) => f.write_str("1 address"),
            (0, n) => match pow(n) {
                Some(p) => write!(f, "2^{p} addresses"),
                None => write!(f, "{n} addresses"),
            },
            (1, 0) => f.write_str("2^128 addresses"),
            (1, n) if n == 1 << 32 => f.write_str("every address"),
            (w, n) => write!(f, "{w}×2^128 + {n} addresses"),
        }
    }
}

/// A set of addresses: `any`, or disjoint sorted intervals per family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressSet {
    any: bool,
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
    specs: Vec<AddressSpec>,
    /// What each keyword of `specs` stood for at the last [`AddressSet::resolve`], in the order of `specs`.
    expansions: Vec<(Keyword, Vec<AddressSpec>)>,
    resolved: bool,
}

impl AddressSet {
    /// The set of all addresses.
    pub fn any() -> Self {
        AddressSet { any: true, ..Default::default() }
    }

    /// The union of `specs` (overlaps merged). Keywords cover nothing until [`AddressSet::resolve`].
    pub fn from_specs(specs: Vec<AddressSpec>) -> Self {
        let mut set = AddressSet { specs, ..Default::default() };
        set.rebuild();
        set
    }

    /// Re-expands the keywords for a host with these facts and recomputes what the set covers (the literal
    /// elements plus the expansions). Returns the keywords that stand for nothing on this host.
    pub fn resolve(&mut self, facts: &HostFacts) -> Vec<Keyword> {
        if self.any {
            return Vec::new();
        }
        self.expansions = self.keywords().map(|k| (k, k.expand(facts))).collect();
        self.resolved = true;
        self.rebuild();
        self.expansions.iter().filter(|(_, e)| e.is_empty()).map(|(k, _)| *k).collect()
    }

    fn rebuild(&mut self) {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let literal = self.specs.iter();
        let expanded = self.expansions.iter().flat_map(|(_, e)| e.iter());
        for s in literal.chain(expanded) {
            match (s.is_ipv4(), s.bounds()) {
                (Some(true), Some(b)) => v4.push(b),
                (Some(false), Some(b)) => v6.push(b),
                _ => {}
            }
        }
        self.v4 = merge(v4);
        self.v6 = merge(v6);
    }

    /// Whether this is `any`.
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether the set covers no address at all (a keyword-only list that resolved to nothing, or was never
    /// resolved).
    pub fn is_empty(&self) -> bool {
        !self.any && self.v4.is_empty() && self.v6.is_empty()
    }

    /// The keywords among the elements, in the order written.
    pub fn keywords(&self) -> impl Iterator<Item = Keyword> + '_ {
        self.specs.iter().filter_map(|s| match s {
            AddressSpec::Keyword(k) => Some(*k),
            _ => None,
        })
    }

    /// Whether every element is a keyword (so that the set is empty when they all resolve to nothing).
    pub fn is_keyword_only(&self) -> bool {
        !self.any && !self.specs.is_empty() && self.specs.iter().all(|s| matches!(s, AddressSpec::Keyword(_)))
    }

    /// Whether [`AddressSet::resolve`] has run on this set.
    pub fn is_resolved(&self) -> bool {
        self.resolved
    }

    /// What `keyword` stood for at the last resolution (`None` if the set has no such keyword or was not
    /// resolved).
    pub fn expansion(&self, keyword: Keyword) -> Option<&[AddressSpec]> {
        self.expansions.iter().find(|(k, _)| *k == keyword).map(|(_, e)| e.as_slice())
    }

    /// The disjoint sorted intervals of one family (empty for `any`: check [`AddressSet::is_any`] first).
    pub fn intervals(&self, ipv4: bool) -> &[(u128, u128)] {
        if ipv4 {
            &self.v4
        } else {
            &self.v6
        }
    }

    /// The elements as written.
    pub fn specs(&self) -> &[AddressSpec] {
        &self.specs
    }

    /// Whether `addr` is in the set (binary search).
    pub fn contains(&self, addr: IpAddr) -> bool {
        if self.any {
            return true;
        }
        let list = if addr.is_ipv4() { &self.v4 } else { &self.v6 };
        let v = to_u128(addr);
        let idx = list.partition_point(|(lo, _)| *lo <= v);
        idx.checked_sub(1).and_then(|i| list.get(i)).is_some_and(|(_, hi)| *hi >= v)
    }

    /// Number of addresses covered, saturating (used to rank specificity: smaller is more specific).
    pub fn size(&self) -> u128 {
        if self.any {
            return u128::MAX;
        }
        self.v4.iter().chain(&self.v6).fold(0u128, |acc, (lo, hi)| acc.saturating_add(hi - lo).saturating_add(1))
    }

    /// The exact number of addresses covered; `any` counts every IPv4 and every IPv6 address, so that
    /// `::/0` is narrower than `any`.
    pub fn count(&self) -> AddressCount {
        if self.any {
            return AddressCount { wraps: 1, low: 1 << 32 };
        }
        self.v4.iter().chain(&self.v6).fold(AddressCount::default(), |acc, (lo, hi)| acc.add(hi - lo).add(1))
    }

    /// The single address of a one-host set (what `hostsec initiate RULE` can start without `--peer`).
    pub fn single_host(&self) -> Option<IpAddr> {
        if self.any {
            return None;
        }
        match (self.v4.as_slice(), self.v6.as_slice()) {
            ([(lo, hi)], []) if lo == hi => Some(from_u128(*lo, true)),
            ([], [(lo, hi)]) if lo == hi => Some(from_u128(*lo, false)),
            _ => None,
        }
    }

    /// Approximate heap bytes held (for the memory figures of large policies).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        (self.v4.capacity() + self.v6.capacity()) * size_of::<(u128, u128)>()
            + self.specs.capacity() * size_of::<AddressSpec>()
            + self.expansions.iter().map(|(_, e)| e.capacity() * size_of::<AddressSpec>()).sum::<usize>()
            + self.expansions.capacity() * size_of::<(Keyword, Vec<AddressSpec>)>()
    }
}

/// As written, with what each keyword stands for: `10.0.0.0/24, DNS (192.0.2.53, 192.0.2.54)`;
/// `DNS (nothing)` when it resolved to no address, `DNS (not resolved)` before the host's facts are known.
impl fmt::Display for AddressSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("any");
        }
        for (i, s) in self.specs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
            if let AddressSpec::Keyword(k) = s {
                match self.expansion(*k) {
                    _ if !self.resolved => f.write_str(" (not resolved)")?,
                    Some(e) if !e.is_empty() => {
                        let parts: Vec<String> = e.iter().map(ToString::to_string).collect();
                        write!(f, " ({})", parts.join(", "))?;
                    }
                    _ => f.write_str(" (nothing)")?,
                }
            }
        }
        Ok(())
    }
}

fn merge(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out.shrink_to_fit();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> AddressSet {
        AddressSet::from_specs(items.iter().map(|s| AddressSpec::parse(s).unwrap()).collect())
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(AddressSpec::parse("192.0.2.1").unwrap(), AddressSpec::Host("192.0.2.1".parse().unwrap()));
        assert!(matches!(AddressSpec::parse("10.20.1.10-10.20.1.20").unwrap(), AddressSpec::Range(..)));
        assert!(matches!(AddressSpec::parse("2001:db8:5::/64").unwrap(), AddressSpec::Subnet(_, 64)));
        assert!(AddressSpec::parse("10.20.2.1/24").unwrap_err().contains("did you mean 10.20.2.0/24"));
        assert!(AddressSpec::parse("10.0.0.9-10.0.0.1").unwrap_err().contains("ends before"));
        assert!(AddressSpec::parse("10.0.0.1-2001:db8::1").unwrap_err().contains("mixes"));
        assert!(AddressSpec::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(AddressSpec::parse("printer").unwrap_err().contains("not an address"));
        assert!(AddressSpec::parse("printer").unwrap_err().contains("LocalSubnet, DefaultGateway, DHCP, DNS, WINS"));
        assert_eq!(AddressSpec::parse("wins").unwrap(), AddressSpec::Keyword(Keyword::Wins));
    }

    #[test]
    fn keywords_cover_nothing_until_resolved_then_their_expansion() {
        let mut s = set(&["dns", "10.9.0.0/16"]);
        assert!(!s.contains("192.0.2.53".parse().unwrap()));
        assert!(s.contains("10.9.1.1".parse().unwrap()));
        assert_eq!(s.to_string(), "DNS (not resolved), 10.9.0.0/16");
        let facts = HostFacts {
            dns_servers: vec!["192.0.2.53".parse().unwrap(), "2001:db8::53".parse().unwrap()],
            ..HostFacts::default()
        };
        assert!(s.resolve(&facts).is_empty());
        assert!(s.contains("192.0.2.53".parse().unwrap()));
        assert!(s.contains("2001:db8::53".parse().unwrap()));
        assert_eq!(s.to_string(), "DNS (192.0.2.53, 2001:db8::53), 10.9.0.0/16");
        let mut only = set(&["WINS"]);
        assert!(only.is_keyword_only() && only.is_empty());
        assert_eq!(only.resolve(&facts), vec![Keyword::Wins]);
        assert!(only.is_empty());
        assert_eq!(only.to_string(), "WINS (nothing)");
        assert_eq!(only.count(), AddressCount::default());
    }

    #[test]
    fn exact_counts_order_any_above_ipv6_everything() {
        assert!(set(&["::/0"]).count() < AddressSet::any().count());
        assert_eq!(set(&["0.0.0.0/0", "::/0"]).count(), AddressSet::any().count());
        assert_eq!(set(&["10.0.0.0/24"]).count().to_string(), "256 addresses");
        assert_eq!(set(&["2001:db8::/64"]).count().to_string(), "2^64 addresses");
        assert_eq!(set(&["10.0.0.1"]).count().to_string(), "1 address");
    }

    #[test]
    fn membership() {
        let s = set(&["10.20.1.10-10.20.1.20", "10.20.2.0/24", "2001:db8:5::/64", "192.0.2.7"]);
        for yes in ["10.20.1.10", "10.20.1.20", "10.20.2.255", "2001:db8:5::1", "192.0.2.7"] {
            assert!(s.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["10.20.1.9", "10.20.1.21", "10.20.3.0", "2001:db8:6::1", "192.0.2.8", "::ffff:192.0.2.7"] {
            assert!(!s.contains(no.parse().unwrap()), "{no}");
        }
        assert!(AddressSet::any().contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn single_host_and_size() {
        assert_eq!(set(&["198.51.100.2"]).single_host(), Some("198.51.100.2".parse().unwrap()));
        assert_eq!(set(&["198.51.100.2/32"]).single_host(), Some("198.51.100.2".parse().unwrap()));
        assert_eq!(set(&["198.51.100.0/31"]).single_host(), None);
        assert_eq!(set(&["198.51.100.0/24", "198.51.100.7"]).size(), 256);
        assert_eq!(set(&["::/0"]).size(), u128::MAX);
    }
}
