//! Address sets: the `remote` and `local` of a rule ("trusted network locations"). A set is a sorted list of
//! disjoint intervals per address family, so that membership is a binary search, whatever mix of addresses,
//! dash ranges and subnets the administrator wrote.

use std::fmt;
use std::net::IpAddr;

/// One element of an address list as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSpec {
    /// A single address.
    Host(IpAddr),
    /// An inclusive dash range `first-last` of one family.
    Range(IpAddr, IpAddr),
    /// A subnet `address/prefix`; host bits must be zero.
    Subnet(IpAddr, u8),
}

impl AddressSpec {
    /// Parses `10.0.0.1`, `10.0.0.1-10.0.0.9`, `10.0.0.0/24`, `2001:db8::/32`. `Err` says what is allowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
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
            let (lo, hi) = Self::Subnet(addr, prefix).bounds();
            if lo != to_u128(addr) {
                return Err(format!(
                    "subnet '{text}' has host bits set (did you mean {}/{prefix}?)",
                    from_u128(lo, addr.is_ipv4())
                ));
            }
            let _ = hi;
            return Ok(Self::Subnet(addr, prefix));
        }
        text.parse::<IpAddr>()
            .map(Self::Host)
            .map_err(|_| format!("'{text}' is not an address, a dash range (a.b.c.d-e.f.g.h) or a subnet (a.b.c.d/n)"))
    }

    /// Whether the element is IPv4.
    pub fn is_ipv4(&self) -> bool {
        match self {
            Self::Host(a) | Self::Range(a, _) | Self::Subnet(a, _) => a.is_ipv4(),
        }
    }

    /// First and last address as integers in the family's space.
    pub fn bounds(&self) -> (u128, u128) {
        match *self {
            Self::Host(a) => (to_u128(a), to_u128(a)),
            Self::Range(a, b) => (to_u128(a), to_u128(b)),
            Self::Subnet(a, p) => {
                let bits = if a.is_ipv4() { 32 } else { 128 };
                let host_bits = u32::from(bits - p);
                let mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
                let lo = to_u128(a) & !mask;
                (lo, lo | mask)
            }
        }
    }
}

impl fmt::Display for AddressSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(a) => write!(f, "{a}"),
            Self::Range(a, b) => write!(f, "{a}-{b}"),
            Self::Subnet(a, p) => write!(f, "{a}/{p}"),
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

/// A set of addresses: `any`, or disjoint sorted intervals per family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressSet {
    any: bool,
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
    specs: Vec<AddressSpec>,
}

impl AddressSet {
    /// The set of all addresses.
    pub fn any() -> Self {
        AddressSet { any: true, ..Default::default() }
    }

    /// The union of `specs` (overlaps merged).
    pub fn from_specs(specs: Vec<AddressSpec>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for s in &specs {
            if s.is_ipv4() {
                v4.push(s.bounds());
            } else {
                v6.push(s.bounds());
            }
        }
        AddressSet { any: false, v4: merge(v4), v6: merge(v6), specs }
    }

    /// Whether this is `any`.
    pub fn is_any(&self) -> bool {
        self.any
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
        idx > 0 && list[idx - 1].1 >= v
    }

    /// Number of addresses covered, saturating (used to rank specificity: smaller is more specific).
    pub fn size(&self) -> u128 {
        if self.any {
            return u128::MAX;
        }
        self.v4.iter().chain(&self.v6).fold(0u128, |acc, (lo, hi)| acc.saturating_add(hi - lo).saturating_add(1))
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
}

impl fmt::Display for AddressSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("any");
        }
        let parts: Vec<String> = self.specs.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(", "))
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
