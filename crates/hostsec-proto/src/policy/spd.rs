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
//! Memory stays linear in the number of rules and address entries:
//! - a segment's list stops at its first rule without selectors (local `any`, no protocol, no ports): that rule
//!   covers every flow of the segment, so nothing after it can win, and nested subnets (where every segment
//!   would otherwise repeat all the enclosing rules) keep one entry each;
//! - identical lists are stored once in a shared pool;
//! - long lists (thousands of overlapping rules that all have selectors, where every segment's list differs)
//!   are stored whole only within a budget proportional to the number of rules; beyond it a list keeps its
//!   first [`SHORT_LIST`] rules and a lookup that finds none of them matching continues over the rules in
//!   precedence order (linear, for such pathological configs only).
//!
//! Speed: the binary search runs over an array of segment starts alone (4 bytes per IPv4 segment), so that it
//! stays in cache at 100,000 segments; a list's last rule, when it has no selectors, is taken without reading
//! the rule; and a long list whose rules differ by port (hundreds of port rules towards the same peers) carries
//! a port index that narrows it to the rules of the flow's port before the scan.

use super::address::from_u128;
use super::selector::{Flow, Precedence};
use super::{Action, Policy, PortRange, Rule};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// A list at least this long gets a port index when most of its rules restrict ports: below it a scan is as
/// fast as the index.
const PORT_INDEX_MIN: usize = 12;

/// What a list keeps of itself once the budget for long lists is spent.
pub const SHORT_LIST: usize = 32;

/// The longest list a segment's sweep collects; the rest is left to the overflow scan.
const LONG_LIST: usize = 1024;

/// Pool entries (rule indexes) allowed for lists longer than [`SHORT_LIST`] and for port indexes: per rule,
/// plus a constant so that small policies never overflow.
const BUDGET_PER_RULE: usize = 16;
const BUDGET_BASE: usize = 1 << 16;

/// A run of remote addresses over which the same rules compete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First address (as an integer of the family's space).
    pub lo: u128,
    /// Last address.
    pub hi: u128,
    /// The run's candidate list (see [`Spd::rules_of`]).
    list: u32,
}

/// The segments of one family as parallel arrays, so that the binary search reads the starts alone (4 bytes
/// per IPv4 segment: 400 KB at 100,000 segments).
#[derive(Debug, Clone, Default)]
struct Family<K> {
    lo: Vec<K>,
    /// Last address and list of each segment, read once the segment is found.
    end: Vec<(K, u32)>,
}

impl<K: Copy + Ord> Family<K> {
    fn find(&self, v: K) -> Option<u32> {
        let idx = self.lo.partition_point(|lo| *lo <= v).checked_sub(1)?;
        let (hi, list) = *self.end.get(idx)?;
        (hi >= v).then_some(list)
    }

    fn push(&mut self, lo: K, hi: K, list: u32, adjacent: bool) {
        match self.end.last_mut() {
            Some(last) if adjacent && last.1 == list => last.0 = hi,
            _ => {
                self.lo.push(lo);
                self.end.push((hi, list));
            }
        }
    }

    fn finish(&mut self) {
        self.lo.shrink_to_fit();
        self.end.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.lo.capacity() * std::mem::size_of::<K>() + self.end.capacity() * std::mem::size_of::<(K, u32)>()
    }

    fn segments(&self) -> impl Iterator<Item = (K, K, u32)> + '_ {
        self.lo.iter().zip(&self.end).map(|(lo, (hi, list))| (*lo, *hi, *list))
    }
}

/// One distinct candidate list: a slice of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ListRef {
    start: u32,
    len: u32,
    /// Whether the last rule has no selectors (it then governs every flow that the rules before it do not).
    terminal: bool,
    /// When the list was cut short: the precedence rank of its last stored rule, after which a lookup that
    /// found nothing continues over `by_rank`. `u32::MAX` when the list is whole.
    overflow_after: u32,
    /// Index into `port_indexes`, or `u32::MAX`.
    port_index: u32,
}

/// For a long list whose rules differ by port: the list narrowed to each run of ports.
#[derive(Debug, Clone, Default)]
struct PortIndex {
    /// Whether the runs are of the remote port (else the local port).
    remote: bool,
    /// First port of each run, ascending, starting at 0.
    starts: Vec<u16>,
    /// The narrowed list of each run (pool slices, same order as the list).
    lists: Vec<(u32, u32)>,
}

/// The flattened remote sets of a policy.
#[derive(Debug, Clone, Default)]
pub struct Spd {
    v4: Family<u32>,
    v6: Family<u128>,
    lists: Vec<ListRef>,
    port_indexes: Vec<PortIndex>,
    /// Every distinct candidate list, back to back.
    pool: Vec<u32>,
    /// Rule indexes of the enabled rules in precedence order (for lists that were cut short).
    by_rank: Vec<u32>,
    /// The smallest `overflow_after` of all lists (`u32::MAX` when none was cut short).
    first_overflow: u32,
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
    /// Lists cut short (the policy has more overlapping rules with selectors than the budget holds).
    pub cut_lists: usize,
    /// Lists with a port index.
    pub port_indexes: usize,
    /// Rule indexes in the pool (all distinct lists and narrowed lists together).
    pub pool_entries: usize,
    /// The longest stored candidate list.
    pub longest_list: usize,
    /// Heap bytes held by the SPD.
    pub heap_bytes: usize,
}

/// The bounds of a build: the constants above, smaller in tests so that small rule sets reach them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) short: usize,
    pub(crate) long: usize,
    pub(crate) budget: usize,
}

impl Limits {
    pub(crate) fn for_rules(rules: usize) -> Limits {
        Limits { short: SHORT_LIST, long: LONG_LIST, budget: BUDGET_BASE + BUDGET_PER_RULE * rules }
    }
}

/// What the build needs to know of each rule, by its rank in precedence order.
struct Ranked<'p> {
    rule: u32,
    terminal: bool,
    local_ports: &'p [PortRange],
    remote_ports: &'p [PortRange],
}

impl Spd {
    /// Flattens the enabled rules of `policy`.
    pub fn build(policy: &Policy) -> Spd {
        Self::build_where(policy, Limits::for_rules(policy.rules.len()), |_| true)
    }

    /// Flattens the enabled rules of `policy` that `include` keeps (the others are left out as if disabled).
    pub(crate) fn build_where(policy: &Policy, limits: Limits, include: impl Fn(&Rule) -> bool) -> Spd {
        // Every rule's place in the competition, computed once: rank[i] is rule i's position in precedence order.
        let mut order: Vec<(Precedence, usize)> = policy
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled && !r.local.is_empty() && include(r))
            .map(|(i, r)| (r.precedence(i), i))
            .collect();
        order.sort_unstable();
        let mut rank = vec![u32::MAX; policy.rules.len()];
        let mut ranked = Vec::with_capacity(order.len());
        for (k, (_, i)) in order.iter().enumerate() {
            let Some(r) = policy.rules.get(*i) else { continue };
            rank[*i] = k as u32;
            ranked.push(Ranked {
                rule: *i as u32,
                terminal: !r.has_selectors(),
                local_ports: &r.local_ports,
                remote_ports: &r.remote_ports,
            });
        }
        let mut b = Builder {
            spd: Spd::default(),
            seen: HashMap::new(),
            seen_sub: HashMap::new(),
            ranked,
            budget: limits.budget,
            limits,
        };
        b.spd.by_rank = b.ranked.iter().map(|r| r.rule).collect();
        b.spd.first_overflow = u32::MAX;
        let max4 = u128::from(u32::MAX);
        for (lo, hi, list, adjacent) in b.family(policy, &rank, true) {
            b.spd.v4.push(lo as u32, hi.min(max4) as u32, list, adjacent);
        }
        for (lo, hi, list, adjacent) in b.family(policy, &rank, false) {
            b.spd.v6.push(lo, hi, list, adjacent);
        }
        let mut spd = b.spd;
        spd.v4.finish();
        spd.v6.finish();
        spd.pool.shrink_to_fit();
        spd.lists.shrink_to_fit();
        spd.port_indexes.shrink_to_fit();
        spd
    }

    /// The segments of one family, sorted and disjoint (built on demand: the SPD stores them more compactly).
    pub fn segments(&self, ipv4: bool) -> Vec<Segment> {
        if ipv4 {
            self.v4.segments().map(|(lo, hi, list)| Segment { lo: u128::from(lo), hi: u128::from(hi), list }).collect()
        } else {
            self.v6.segments().map(|(lo, hi, list)| Segment { lo, hi, list }).collect()
        }
    }

    fn slice(&self, start: u32, len: u32) -> &[u32] {
        self.pool.get(start as usize..start as usize + len as usize).unwrap_or(&[])
    }

    /// The stored candidate list of a segment: rule indexes in precedence order, ending at the first rule
    /// without selectors (the rules after it can never govern a flow of the segment). In a policy with
    /// thousands of overlapping rules with selectors the list may be cut short: [`Spd::lookup`] and
    /// [`Spd::lookup_flow`] then continue beyond it.
    pub fn rules_of(&self, segment: &Segment) -> &[u32] {
        self.lists.get(segment.list as usize).map_or(&[], |l| self.slice(l.start, l.len))
    }

    fn list_of(&self, remote: IpAddr) -> Option<&ListRef> {
        let id = match remote {
            IpAddr::V4(a) => self.v4.find(u32::from(a)),
            IpAddr::V6(a) => self.v6.find(u128::from(a)),
        }?;
        self.lists.get(id as usize)
    }

    /// The stored rules that can govern traffic with `remote`, most preferred first (before looking at their
    /// `local` sets and selectors; see [`Spd::rules_of`] for lists cut short).
    pub fn candidates(&self, remote: IpAddr) -> &[u32] {
        self.list_of(remote).map_or(&[], |l| self.slice(l.start, l.len))
    }

    /// The first rule in precedence order whose remote covers `remote` and that `admits` (index into
    /// `policy.rules`): the stored list, then, for a list cut short, the rules after it in precedence order.
    pub(crate) fn first_admitted<T>(
        &self,
        policy: &Policy,
        remote: IpAddr,
        mut admits: impl FnMut(&Rule) -> Option<T>,
    ) -> Option<(usize, T)> {
        let list = self.list_of(remote)?;
        let stored = self.slice(list.start, list.len);
        let found = stored.iter().find_map(|i| {
            let r = policy.rules.get(*i as usize)?;
            admits(r).map(|t| (*i as usize, t))
        });
        found.or_else(|| self.overflow(policy, list, remote, admits))
    }

    fn overflow<T>(
        &self,
        policy: &Policy,
        list: &ListRef,
        remote: IpAddr,
        mut admits: impl FnMut(&Rule) -> Option<T>,
    ) -> Option<(usize, T)> {
        let after = list.overflow_after.checked_add(1)? as usize;
        self.by_rank.get(after..)?.iter().find_map(|i| {
            let r = policy.rules.get(*i as usize)?;
            if r.remote.contains(remote) {
                admits(r).map(|t| (*i as usize, t))
            } else {
                None
            }
        })
    }

    /// The rule that governs traffic between `local` and `remote` whatever its protocol and ports: the first
    /// rule in precedence order whose addresses cover both (index into `policy.rules`). Equal to
    /// [`Policy::governing_rule`]. A rule with selectors counts here even though it covers only part of the
    /// traffic: IKE negotiates under it; the datapath should use [`Spd::lookup_flow`].
    pub fn lookup(&self, policy: &Policy, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.first_admitted(policy, remote, |r| r.local.contains(local).then_some(())).map(|(i, _)| i)
    }

    /// The rule that governs `flow` (index into `policy.rules`), equal to [`Policy::governing_rule_flow`]:
    /// a binary search over the remote segments, then the segment's short candidate list (narrowed by the
    /// flow's port first when the list has a port index).
    pub fn lookup_flow(&self, policy: &Policy, flow: &Flow) -> Option<usize> {
        let list = self.list_of(flow.remote)?;
        let candidates = match self.port_indexes.get(list.port_index as usize) {
            Some(ix) => {
                let port = if ix.remote { flow.remote_port } else { flow.local_port };
                let run = ix.starts.partition_point(|s| *s <= port).checked_sub(1)?;
                let (start, len) = *ix.lists.get(run)?;
                self.slice(start, len)
            }
            None => self.slice(list.start, list.len),
        };
        let admits = |r: &Rule| r.covers_beyond_remote(flow).then_some(());
        let Some((last, rest)) = candidates.split_last() else {
            return self.overflow(policy, list, flow.remote, admits).map(|(i, _)| i);
        };
        let found = rest
            .iter()
            .map(|i| *i as usize)
            .find(|i| policy.rules.get(*i).is_some_and(|r| r.covers_beyond_remote(flow)));
        // The last candidate of a list that ends with a rule without selectors matches whatever the flow; a
        // narrowed list keeps that rule last.
        found
            .or_else(|| {
                let i = *last as usize;
                (list.terminal || policy.rules.get(i).is_some_and(|r| r.covers_beyond_remote(flow))).then_some(i)
            })
            .or_else(|| self.overflow(policy, list, flow.remote, admits).map(|(i, _)| i))
    }

    /// Inclusive address ranges with the action of their address-level rule, for the firewall and the routes,
    /// which see addresses only: the first candidate that names no protocol and no ports (`local` restrictions
    /// are ignored, as before selectors existed), or the first candidate when every one names some. Rules with a
    /// protocol or ports refine a range per flow, where [`Spd::lookup_flow`] is asked; [`Spd::rules_of`] lists
    /// them for a plan that wants to express them.
    pub fn ranges<'p>(&'p self, policy: &'p Policy) -> impl Iterator<Item = (IpAddr, IpAddr, Action, usize)> + 'p {
        let address_level =
            |r: &Rule| (r.protocol.is_none() && r.local_ports.is_empty() && r.remote_ports.is_empty()).then_some(());
        [true, false].into_iter().flat_map(move |v4| {
            self.segments(v4).into_iter().filter_map(move |s| {
                let lo = from_u128(s.lo, v4);
                // Every address of a segment has the same candidates: its first stands for all.
                let w = match self.first_admitted(policy, lo, address_level) {
                    Some((w, ())) => w,
                    None => *self.rules_of(&s).first()? as usize,
                };
                Some((lo, from_u128(s.hi, v4), policy.rules.get(w)?.action, w))
            })
        })
    }

    /// Whether rule `index` is a candidate for some remote address: a rule that is not can never govern a flow.
    pub(crate) fn candidate_rules(&self, rules: usize) -> Vec<bool> {
        let mut seen = vec![false; rules];
        for &k in &self.pool {
            if let Some(c) = seen.get_mut(k as usize) {
                *c = true;
            }
        }
        // Rules beyond a cut-short list may govern through the overflow scan.
        for &k in self.by_rank.get(self.first_overflow as usize..).unwrap_or(&[]).iter().skip(1) {
            if let Some(c) = seen.get_mut(k as usize) {
                *c = true;
            }
        }
        seen
    }

    /// Sizes of the built structure.
    pub fn stats(&self) -> SpdStats {
        use std::mem::size_of;
        SpdStats {
            v4_segments: self.v4.lo.len(),
            v6_segments: self.v6.lo.len(),
            lists: self.lists.len(),
            cut_lists: self.lists.iter().filter(|l| l.overflow_after != u32::MAX).count(),
            port_indexes: self.port_indexes.len(),
            pool_entries: self.pool.len(),
            longest_list: self.lists.iter().map(|l| l.len as usize).max().unwrap_or(0),
            heap_bytes: self.v4.heap_bytes()
                + self.v6.heap_bytes()
                + self.lists.capacity() * size_of::<ListRef>()
                + self.pool.capacity() * size_of::<u32>()
                + self.by_rank.capacity() * size_of::<u32>()
                + self.port_indexes.capacity() * size_of::<PortIndex>()
                + self.port_indexes.iter().map(|p| p.starts.capacity() * 2 + p.lists.capacity() * 8).sum::<usize>(),
        }
    }
}

struct Builder<'p> {
    spd: Spd,
    /// Distinct candidate lists (as ranks, as the sweep collected them, and whether those are all the rules of the
    /// segment) to their id: the same ranks cut short by the long-list limit elsewhere need the overflow scan,
    /// so they are another list.
    seen: HashMap<(Box<[u32]>, bool), u32>,
    /// Distinct stored slices (as rule indexes) to their place in the pool.
    seen_sub: HashMap<Box<[u32]>, (u32, u32)>,
    ranked: Vec<Ranked<'p>>,
    /// Pool entries still allowed for lists longer than SHORT_LIST and for port indexes.
    budget: usize,
    limits: Limits,
}

impl Builder<'_> {
    /// The segments of one family: `(lo, hi, list id, adjacent to the previous one)`.
    fn family(&mut self, policy: &Policy, rank: &[u32], ipv4: bool) -> Vec<(u128, u128, u32, bool)> {
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
        let mut out: Vec<(u128, u128, u32, bool)> = Vec::new();
        let mut scratch: Vec<u32> = Vec::new();
        let mut prev_hi: Option<u128> = None;
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
            // The rules after the first one without selectors cannot win; past LONG_LIST the overflow scan
            // takes over (marked by a list that ends neither at such a rule nor at the end of `active`).
            scratch.clear();
            let mut whole = true;
            for &k in &active {
                if scratch.len() == self.limits.long {
                    whole = false;
                    break;
                }
                scratch.push(k);
                if self.ranked.get(k as usize).is_none_or(|r| r.terminal) {
                    break;
                }
            }
            let id = self.intern(&scratch, whole);
            let adjacent = prev_hi.and_then(|h| h.checked_add(1)) == Some(at);
            out.push((at, end, id, adjacent));
            prev_hi = Some(end);
        }
        out
    }

    /// The id of the list of these ranks, storing it (and its port index) the first time. `whole`: the ranks
    /// are all the rules that can govern the segment.
    fn intern(&mut self, ranks: &[u32], whole: bool) -> u32 {
        if let Some(id) = self.seen.get(&(ranks.into(), whole)) {
            return *id;
        }
        let whole_ranks = whole;
        let keep = if ranks.len() <= self.limits.short {
            ranks.len()
        } else if ranks.len() <= self.budget {
            self.budget -= ranks.len();
            ranks.len()
        } else {
            self.limits.short
        };
        let whole = whole && keep == ranks.len();
        let kept = ranks.get(..keep).unwrap_or(ranks);
        let rules: Vec<u32> = kept.iter().filter_map(|k| self.ranked.get(*k as usize).map(|r| r.rule)).collect();
        let terminal = whole && kept.last().and_then(|k| self.ranked.get(*k as usize)).is_some_and(|r| r.terminal);
        let overflow_after = if whole { u32::MAX } else { kept.last().copied().unwrap_or(u32::MAX) };
        self.spd.first_overflow = self.spd.first_overflow.min(overflow_after);
        let (start, len) = self.store(&rules);
        let port_index = self.port_index(kept).map_or(u32::MAX, |ix| {
            self.spd.port_indexes.push(ix);
            (self.spd.port_indexes.len() - 1) as u32
        });
        let id = self.spd.lists.len() as u32;
        self.spd.lists.push(ListRef { start, len, terminal, overflow_after, port_index });
        self.seen.insert((ranks.into(), whole_ranks), id);
        id
    }

    fn store(&mut self, rules: &[u32]) -> (u32, u32) {
        if let Some(at) = self.seen_sub.get(rules) {
            return *at;
        }
        let at = (self.spd.pool.len() as u32, rules.len() as u32);
        self.spd.pool.extend_from_slice(rules);
        self.seen_sub.insert(rules.into(), at);
        at
    }

    /// A port index for a long list whose rules mostly restrict one port: the ports split into runs at every
    /// boundary of the rules' ranges, each run with the rules that admit its ports (the unrestricted ones
    /// included, in list order). Within the budget only.
    fn port_index(&mut self, ranks: &[u32]) -> Option<PortIndex> {
        if ranks.len() < PORT_INDEX_MIN {
            return None;
        }
        let members: Vec<&Ranked<'_>> = ranks.iter().filter_map(|k| self.ranked.get(*k as usize)).collect();
        let restricting = |remote: bool| {
            members.iter().filter(|r| !(if remote { r.remote_ports } else { r.local_ports }).is_empty()).count()
        };
        let remote = restricting(true) > restricting(false);
        if restricting(remote) * 2 < members.len() {
            return None;
        }
        // Sweep over ports: (port, starts?, position in the list).
        let mut events: Vec<(u32, bool, usize)> = Vec::new();
        let mut always: Vec<usize> = Vec::new();
        for (pos, r) in members.iter().enumerate() {
            let ports = if remote { r.remote_ports } else { r.local_ports };
            if ports.is_empty() {
                always.push(pos);
            }
            for p in ports {
                events.push((u32::from(p.first), true, pos));
                events.push((u32::from(p.last) + 1, false, pos));
            }
        }
        events.sort_unstable();
        let rules: Vec<u32> = members.iter().map(|r| r.rule).collect();
        drop(members);
        // A rule may list overlapping ranges: count how many of its ranges cover the port.
        let mut cover: HashMap<usize, u32> = HashMap::new();
        let mut ix = PortIndex { remote, starts: Vec::new(), lists: Vec::new() };
        let mut at = 0u32;
        let mut e = 0;
        loop {
            while let Some(&(_, start, pos)) = events.get(e).filter(|ev| ev.0 == at) {
                let n = cover.entry(pos).or_insert(0);
                if start {
                    *n += 1;
                } else {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        cover.remove(&pos);
                    }
                }
                e += 1;
            }
            let mut positions: Vec<usize> = cover.keys().copied().chain(always.iter().copied()).collect();
            positions.sort_unstable();
            let narrowed: Vec<u32> = positions.iter().filter_map(|p| rules.get(*p).copied()).collect();
            // Charge the budget for every run's list, as if none were shared: an index never costs more.
            self.budget = self.budget.checked_sub(narrowed.len() + 2)?;
            let slice = self.store(&narrowed);
            if ix.lists.last() != Some(&slice) {
                ix.starts.push(at as u16);
                ix.lists.push(slice);
            }
            match events.get(e) {
                Some(ev) if ev.0 <= 65535 => at = ev.0,
                _ => break,
            }
        }
        Some(ix)
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

    #[test]
    fn ranges_take_the_address_level_rule() {
        let text = "[defaults]\npsk = \"0123456789abcdef\"\nauto = \"none\"\n\
            [[rule]]\nname = \"jetdirect\"\nremote = \"198.51.100.0/24\"\nprotocol = \"tcp\"\nlocal_ports = [9100]\naction = \"bypass\"\n\
            [[rule]]\nname = \"admin\"\nremote = \"198.51.100.0/24\"\nlocal = \"192.0.2.10\"\naction = \"request\"\n\
            [[rule]]\nname = \"lan\"\nremote = \"198.51.100.0/24\"\n\
            [[rule]]\nname = \"ssh-only\"\nremote = \"203.0.113.0/24\"\nprotocol = \"tcp\"\nlocal_ports = [22]\naction = \"block\"\n";
        let p = Policy::from_toml("t.toml", text, &NoFiles).unwrap_or_else(|e| panic!("{e:?}"));
        let spd = Spd::build(&p);
        let got: Vec<(String, usize)> = spd.ranges(&p).map(|r| (r.0.to_string(), r.3)).collect();
        // The port rule does not decide the range's action; a local restriction does, as before selectors.
        assert_eq!(got, [("198.51.100.0".to_string(), 1), ("203.0.113.0".to_string(), 3)]);
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

    fn arb_flow_rule() -> impl Strategy<Value = String> {
        let remote = prop_oneof![
            Just("\"any\"".to_string()),
            (0u32..16, 0u32..16).prop_map(|(a, n)| format!("\"198.51.100.{a}-198.51.100.{}\"", a + n)),
            (0u32..16).prop_map(|a| format!("\"2001:db8::{a:x}/126\"", a = a & !3)),
        ];
        let sel = prop_oneof![
            Just(String::new()),
            (0u32..4).prop_map(|l| format!("local = \"192.0.2.{l}\"\n")),
            (0u16..6).prop_map(|p| format!("protocol = \"tcp\"\nlocal_ports = [\"{p}\"]\n")),
            (0u16..6).prop_map(|p| format!("protocol = \"udp\"\nremote_ports = [\"{p}-{}\"]\n", p + 1)),
        ];
        let action = prop_oneof![Just("require"), Just("bypass"), Just("block")];
        (remote, sel, action).prop_map(|(r, s, a)| format!("remote = {r}\naction = \"{a}\"\n{s}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Lists cut short, port indexes and the overflow scan, reached by small rule sets through tiny limits.
        #[test]
        fn tiny_limits_still_equal_linear_scan(
            rules in prop::collection::vec(arb_flow_rule(), 1..30),
            short in 1usize..4, long in 2usize..8, budget in 0usize..40,
            probes in prop::collection::vec((0u32..36, 0u32..5, 0u8..3, 0u16..8, 0u16..8), 40),
        ) {
            let mut text = String::from("[defaults]\npsk = \"0123456789abcdef\"\nauto = \"none\"\n");
            for (i, r) in rules.iter().enumerate() {
                text.push_str(&format!("[[rule]]\nname = \"r{i}\"\n{r}"));
            }
            let p = Policy::from_toml("t.toml", &text, &NoFiles).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            let spd = Spd::build_where(&p, Limits { short, long: long.max(short), budget }, |_| true);
            let candidate = spd.candidate_rules(p.rules.len());
            for (r, l, proto, lp, rp) in probes {
                let remote = if r < 20 {
                    IpAddr::from(std::net::Ipv4Addr::new(198, 51, 100, r as u8))
                } else {
                    format!("2001:db8::{:x}", r - 20).parse().unwrap()
                };
                let local = if remote.is_ipv4() { IpAddr::from(std::net::Ipv4Addr::new(192, 0, 2, l as u8)) } else { "2001:db8:1::1".parse().unwrap() };
                let protocol = [6u8, 17, 1][proto as usize];
                let f = Flow { local, remote, protocol, local_port: lp, remote_port: rp };
                prop_assert_eq!(spd.lookup_flow(&p, &f), p.governing_rule_flow(&f), "{:?} {:?}", f, spd.stats());
                prop_assert_eq!(spd.lookup(&p, local, remote), p.governing_rule(local, remote));
                // A rule that is a candidate nowhere is never the answer (the shadowing warnings rely on it).
                if let Some(w) = p.governing_rule_flow(&f) {
                    prop_assert!(candidate[w], "rule {} governs {:?}", w, f);
                }
            }
        }
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
