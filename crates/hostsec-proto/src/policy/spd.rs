//! The security policy database: which rule applies to traffic with a remote address. The rules' remote sets
//! are flattened once (at load and reload) into disjoint sorted segments, each carrying the rules that cover it in
//! precedence order, so that a lookup is one binary search whatever the number of rules.
//!
//! Precedence (SPEC §2, our design): the most specific rule wins (fewest remote addresses, then fewest local
//! addresses); at equal specificity `block` beats `require`/`request`, which beat `bypass`; file order breaks the
//! remaining ties. [`Policy::governing_rule`] computes the same answer by a linear scan; a property test keeps the
//! two equal.

use super::address::{from_u128, to_u128};
use super::{Action, Policy, Rule};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// A run of remote addresses covered by the same rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// First address (as an integer of the family's space).
    pub lo: u128,
    /// Last address.
    pub hi: u128,
    /// Indexes of the enabled rules covering the run, most preferred first.
    pub rules: Vec<u32>,
}

/// The flattened remote sets of a policy.
#[derive(Debug, Clone, Default)]
pub struct Spd {
    v4: Vec<Segment>,
    v6: Vec<Segment>,
}

/// The order in which rules covering the same address compete: smaller wins.
fn precedence(rule: &Rule, index: usize) -> (u128, u128, u8, usize) {
    let rank = match rule.action {
        Action::Block => 0,
        Action::Require | Action::Request => 1,
        Action::Bypass => 2,
    };
    (rule.remote.size(), rule.local.size(), rank, index)
}

impl Spd {
    /// Flattens the enabled rules of `policy`.
    pub fn build(policy: &Policy) -> Spd {
        Spd { v4: Self::family(policy, true), v6: Self::family(policy, false) }
    }

    fn family(policy: &Policy, ipv4: bool) -> Vec<Segment> {
        let max = if ipv4 { u128::from(u32::MAX) } else { u128::MAX };
        // Sweep: an event where a rule's interval starts, and one just after it ends.
        let mut events: Vec<(u128, bool, usize)> = Vec::new();
        let mut keys = Vec::with_capacity(policy.rules.len());
        for (i, r) in policy.rules.iter().enumerate() {
            keys.push(precedence(r, i));
            if !r.enabled {
                continue;
            }
            let intervals = if r.remote.is_any() { vec![(0, max)] } else { r.remote.intervals(ipv4).to_vec() };
            for (lo, hi) in intervals {
                events.push((lo, true, i));
                if hi < max {
                    events.push((hi + 1, false, i));
                }
            }
        }
        events.sort_unstable_by_key(|(at, start, i)| (*at, *start, *i));
        let mut active: BTreeSet<((u128, u128, u8, usize), u32)> = BTreeSet::new();
        let mut out: Vec<Segment> = Vec::new();
        let mut k = 0;
        while k < events.len() {
            let at = events[k].0;
            while k < events.len() && events[k].0 == at {
                let (_, start, i) = events[k];
                let entry = (keys[i], i as u32);
                if start {
                    active.insert(entry);
                } else {
                    active.remove(&entry);
                }
                k += 1;
            }
            let end = if k < events.len() { events[k].0 - 1 } else { max };
            if active.is_empty() {
                continue;
            }
            let rules: Vec<u32> = active.iter().map(|(_, i)| *i).collect();
            match out.last_mut() {
                Some(last) if last.hi.checked_add(1) == Some(at) && last.rules == rules => last.hi = end,
                _ => out.push(Segment { lo: at, hi: end, rules }),
            }
        }
        out
    }

    /// The segments of one family, sorted and disjoint.
    pub fn segments(&self, ipv4: bool) -> &[Segment] {
        if ipv4 {
            &self.v4
        } else {
            &self.v6
        }
    }

    /// The rules covering `remote`, most preferred first (before looking at their `local` sets).
    pub fn candidates(&self, remote: IpAddr) -> &[u32] {
        let list = self.segments(remote.is_ipv4());
        let v = to_u128(remote);
        let idx = list.partition_point(|s| s.lo <= v);
        match idx.checked_sub(1).and_then(|i| list.get(i)) {
            Some(s) if s.hi >= v => &s.rules,
            _ => &[],
        }
    }

    /// The rule that governs traffic between `local` and `remote` (index into `policy.rules`).
    pub fn lookup(&self, policy: &Policy, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.candidates(remote).iter().map(|i| *i as usize).find(|i| policy.rules[*i].local.contains(local))
    }

    /// Inclusive address ranges with the action of their winning rule (ignoring `local` restrictions), for the
    /// firewall and the routes.
    pub fn ranges<'p>(&'p self, policy: &'p Policy) -> impl Iterator<Item = (IpAddr, IpAddr, Action, usize)> + 'p {
        [true, false].into_iter().flat_map(move |v4| {
            self.segments(v4).iter().filter_map(move |s| {
                let w = *s.rules.first()? as usize;
                Some((from_u128(s.lo, v4), from_u128(s.hi, v4), policy.rules[w].action, w))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ConfigFiles, Policy};
    use proptest::prelude::*;

    struct NoFiles;
    impl ConfigFiles for NoFiles {
        fn read_secret(&self, _: &std::path::Path) -> Result<Vec<u8>, String> {
            Err("none".into())
        }
    }

    fn policy(rules: &[(&str, &str)]) -> Policy {
        let mut text = String::from("[defaults]\npsk = \"0123456789abcdef\"\nauto = \"none\"\n");
        for (i, (remote, action)) in rules.iter().enumerate() {
            text.push_str(&format!("[[rule]]\nname = \"r{i}\"\nremote = {remote}\naction = \"{action}\"\n"));
        }
        Policy::from_toml("t.toml", &text, &NoFiles).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
    }

    #[test]
    fn most_specific_then_action_then_order() {
        let p = policy(&[
            ("\"any\"", "request"),
            ("[\"10.0.0.0/8\"]", "require"),
            ("[\"10.1.0.0-10.1.0.255\"]", "bypass"),
            ("[\"10.1.0.0/24\"]", "block"),
            ("[\"2001:db8::/32\"]", "require"),
        ]);
        let spd = Spd::build(&p);
        let l: IpAddr = "192.0.2.1".parse().unwrap();
        let at = |a: &str| spd.lookup(&p, l, a.parse().unwrap());
        assert_eq!(at("10.1.0.7"), Some(3), "block beats bypass at equal size");
        assert_eq!(at("10.2.0.7"), Some(1));
        assert_eq!(at("203.0.113.9"), Some(0));
        assert_eq!(at("2001:db8::1"), Some(4));
        assert_eq!(at("2001:db9::1"), Some(0));
        let ranges: Vec<_> =
            spd.ranges(&p).filter(|r| r.0.is_ipv4()).map(|r| (r.0.to_string(), r.1.to_string(), r.2)).collect();
        assert_eq!(ranges.len(), 5, "{ranges:?}");
    }

    fn arb_rule() -> impl Strategy<Value = (String, &'static str)> {
        let v4 = (0u32..64, 0u32..64, 24u8..=32).prop_map(|(a, b, p)| {
            let (lo, hi) = (a.min(b), a.max(b));
            match p % 3 {
                0 => format!("\"198.51.100.{lo}\""),
                1 => format!("\"198.51.100.{lo}-198.51.100.{hi}\""),
                _ => {
                    let addr = u32::from_be_bytes([198, 51, 100, 0]) + lo;
                    let mask = if p == 32 { u32::MAX } else { !((1u32 << (32 - p)) - 1) };
                    let net = std::net::Ipv4Addr::from(addr & mask);
                    format!("\"{net}/{p}\"")
                }
            }
        });
        let v6 = (0u16..64, 120u8..=128)
            .prop_map(|(a, p)| format!("\"2001:db8::{:x}/{p}\"", a & !((1u16 << (128 - p)) - 1)));
        let remote = prop_oneof![
            4 => v4.clone(),
            1 => v6,
            1 => Just("\"any\"".to_string()),
            2 => prop::collection::vec(v4, 1..4).prop_map(|v| format!("[{}]", v.join(", "))),
        ];
        let action = prop_oneof![Just("require"), Just("request"), Just("bypass"), Just("block")];
        (remote, action)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn lookup_equals_linear_scan(rules in prop::collection::vec(arb_rule(), 1..12), probes in prop::collection::vec(0u32..80, 20)) {
            let named: Vec<(&str, &str)> = rules.iter().map(|(r, a)| (r.as_str(), *a)).collect();
            let p = policy(&named);
            let spd = Spd::build(&p);
            let local: IpAddr = "192.0.2.1".parse().unwrap();
            for x in probes {
                let v4 = IpAddr::from(std::net::Ipv4Addr::from(u32::from_be_bytes([198, 51, 100, 0]) + x));
                let v6: IpAddr = format!("2001:db8::{x:x}").parse().unwrap();
                for a in [v4, v6] {
                    prop_assert_eq!(spd.lookup(&p, local, a), p.governing_rule(local, a), "address {}", a);
                }
            }
        }
    }
}
