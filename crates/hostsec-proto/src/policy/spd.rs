//! The security policy database: which rule applies to a flow. The rules' remote sets are flattened once (at
//! load, reload and re-resolution of keywords) into disjoint sorted segments, each carrying the rules that can
//! govern it in precedence order, so that a lookup is one binary search and a short scan whatever the number of
//! rules.
//!
//! Precedence (SPEC §2, our design; docs/config.md has worked examples): the most specific rule wins (fewest
//! remote addresses, then fewest local addresses, then a rule naming a protocol before one that does not, then
//! fewest local ports, then fewest remote ports); at equal specificity `block` beats `require`/`request`, which
//! beat `bypass`; file order breaks the remaining ties. [`Policy::governing_rule_flow`] computes the same answer
//! by a linear scan; property tests keep the two equal.
//!
//! Memory stays linear in practice for two reasons. A segment's list stops at its first rule without selectors
//! (local `any`, no protocol, no ports): that rule covers every flow of the segment, so nothing after it can win,
//! and nested subnets (where every segment would otherwise repeat all the enclosing rules) keep one entry each.
//! And identical lists are stored once in a shared pool, so that thousands of segments governed by the same few
//! rules cost a few words each.

use super::address::{from_u128, to_u128};
use super::selector::{Flow, Precedence};
use super::{Action, Policy};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// A run of remote addresses over which the same rules compete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First address (as an integer of the family's space).
    pub lo: u128,
    /// Last address.
    pub hi: u128,
    /// Where the run's candidate list starts in the pool (see [`Spd::rules_of`]).
    start: u32,
    /// Length of the candidate list.
    len: u32,
}

/// The flattened remote sets of a policy.
#[derive(Debug, Clone, Default)]
pub struct Spd {
    v4: Vec<Segment>,
    v6: Vec<Segment>,
    /// Every distinct candidate list, back to back; segments point into it.
    pool: Vec<u32>,
}

/// Build-time numbers, for the benchmarks and the memory figures of large policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpdStats {
    /// IPv4 segments.
    pub v4_segments: usize,
    /// IPv6 segments.
    pub v6_segments: usize,
    /// Distinct candidate lists.
    pub lists: usize,
    /// Rule indexes in the pool (all distinct lists together).
    pub pool_entries: usize,
    /// The longest candidate list.
    pub longest_list: usize,
    /// Heap bytes held by the SPD.
    pub heap_bytes: usize,
}

impl Spd {
    /// Flattens the enabled rules of `policy`.
    pub fn build(policy: &Policy) -> Spd {
        // Every rule's place in the competition, computed once: rank[i] is rule i's position in precedence order.
        let mut order: Vec<(Precedence, usize)> = policy
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled && !r.local.is_empty())
            .map(|(i, r)| (r.precedence(i), i))
            .collect();
        order.sort_unstable();
        let mut rank = vec![u32::MAX; policy.rules.len()];
        let mut by_rank: Vec<(u32, bool)> = Vec::with_capacity(order.len());
        for (k, (_, i)) in order.iter().enumerate() {
            rank[*i] = k as u32;
            let rule = &policy.rules[*i];
            by_rank.push((*i as u32, !rule.has_selectors()));
        }
        let mut interner = Interner::default();
        let v4 = Self::family(policy, &rank, &by_rank, &mut interner, true);
        let v6 = Self::family(policy, &rank, &by_rank, &mut interner, false);
        let mut pool = interner.pool;
        pool.shrink_to_fit();
        Spd { v4, v6, pool }
    }

    fn family(
        policy: &Policy,
        rank: &[u32],
        by_rank: &[(u32, bool)],
        interner: &mut Interner,
        ipv4: bool,
    ) -> Vec<Segment> {
        let max = if ipv4 { u128::from(u32::MAX) } else { u128::MAX };
        let whole = [(0, max)];
        // Sweep: an event where a rule's interval starts, and one just after it ends.
        let mut events: Vec<(u128, bool, u32)> = Vec::new();
        for (i, r) in policy.rules.iter().enumerate() {
            let Some(&k) = rank.get(i).filter(|k| **k != u32::MAX) else { continue };
            let intervals = if r.remote.is_any() { &whole[..] } else { r.remote.intervals(ipv4) };
            for &(lo, hi) in intervals {
                events.push((lo, true, k));
                if hi < max {
                    events.push((hi + 1, false, k));
                }
            }
        }
        events.sort_unstable();
        let mut active: BTreeSet<u32> = BTreeSet::new();
        let mut out: Vec<Segment> = Vec::new();
        let mut scratch: Vec<u32> = Vec::new();
        let mut e = 0;
        while let Some(&(at, _, _)) = events.get(e) {
            while let Some(&(_, start, k)) = events.get(e).filter(|ev| ev.0 == at) {
                if start {
                    active.insert(k);
                } else {
                    active.remove(&k);
                }
                e += 1;
            }
            let end = events.get(e).map_or(max, |ev| ev.0 - 1);
            if active.is_empty() {
                continue;
            }
            scratch.clear();
            for &k in &active {
                let Some(&(rule, terminal)) = by_rank.get(k as usize) else { continue };
                scratch.push(rule);
                if terminal {
                    break;
                }
            }
            let (start, len) = interner.intern(&scratch);
            match out.last_mut() {
                Some(last) if last.hi.checked_add(1) == Some(at) && (last.start, last.len) == (start, len) => {
                    last.hi = end
                }
                _ => out.push(Segment { lo: at, hi: end, start, len }),
            }
        }
        out.shrink_to_fit();
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

    /// The candidate list of a segment: rule indexes in precedence order, ending at the first rule without
    /// selectors (the rules after it can never govern a flow of the segment, so they are not stored).
    pub fn rules_of(&self, segment: &Segment) -> &[u32] {
        let start = segment.start as usize;
        self.pool.get(start..start + segment.len as usize).unwrap_or(&[])
    }

    /// The rules that can govern traffic with `remote`, most preferred first (before looking at their `local`
    /// sets and selectors).
    pub fn candidates(&self, remote: IpAddr) -> &[u32] {
        let list = self.segments(remote.is_ipv4());
        let v = to_u128(remote);
        let idx = list.partition_point(|s| s.lo <= v);
        match idx.checked_sub(1).and_then(|i| list.get(i)) {
            Some(s) if s.hi >= v => self.rules_of(s),
            _ => &[],
        }
    }

    /// The rule that governs traffic between `local` and `remote` whatever its protocol and ports: the first
    /// rule in precedence order whose addresses cover both (index into `policy.rules`). Equal to
    /// [`Policy::governing_rule`]. A rule with selectors counts here even though it covers only part of the
    /// traffic: IKE negotiates under it; the datapath should use [`Spd::lookup_flow`].
    pub fn lookup(&self, policy: &Policy, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.candidates(remote)
            .iter()
            .map(|i| *i as usize)
            .find(|i| policy.rules.get(*i).is_some_and(|r| r.local.contains(local)))
    }

    /// The rule that governs `flow` (index into `policy.rules`), equal to [`Policy::governing_rule_flow`]:
    /// a binary search over the remote segments, then the segment's short candidate list.
    pub fn lookup_flow(&self, policy: &Policy, flow: &Flow) -> Option<usize> {
        self.candidates(flow.remote)
            .iter()
            .map(|i| *i as usize)
            .find(|i| policy.rules.get(*i).is_some_and(|r| r.covers_beyond_remote(flow)))
    }

    /// Inclusive address ranges with the action of their first candidate (ignoring `local` restrictions and
    /// selectors), for the firewall and the routes.
    pub fn ranges<'p>(&'p self, policy: &'p Policy) -> impl Iterator<Item = (IpAddr, IpAddr, Action, usize)> + 'p {
        [true, false].into_iter().flat_map(move |v4| {
            self.segments(v4).iter().filter_map(move |s| {
                let w = *self.rules_of(s).first()? as usize;
                Some((from_u128(s.lo, v4), from_u128(s.hi, v4), policy.rules.get(w)?.action, w))
            })
        })
    }

    /// Sizes of the built structure.
    pub fn stats(&self) -> SpdStats {
        let segs = self.v4.iter().chain(&self.v6);
        let mut lists: Vec<(u32, u32)> = segs.clone().map(|s| (s.start, s.len)).collect();
        lists.sort_unstable();
        lists.dedup();
        SpdStats {
            v4_segments: self.v4.len(),
            v6_segments: self.v6.len(),
            lists: lists.len(),
            pool_entries: self.pool.len(),
            longest_list: segs.map(|s| s.len as usize).max().unwrap_or(0),
            heap_bytes: (self.v4.capacity() + self.v6.capacity()) * std::mem::size_of::<Segment>()
                + self.pool.capacity() * std::mem::size_of::<u32>(),
        }
    }
}

/// Stores each distinct candidate list once.
#[derive(Default)]
struct Interner {
    pool: Vec<u32>,
    seen: HashMap<Box<[u32]>, (u32, u32)>,
}

impl Interner {
    fn intern(&mut self, list: &[u32]) -> (u32, u32) {
        if let Some(at) = self.seen.get(list) {
            return *at;
        }
        let at = (self.pool.len() as u32, list.len() as u32);
        self.pool.extend_from_slice(list);
        self.seen.insert(list.into(), at);
        at
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
