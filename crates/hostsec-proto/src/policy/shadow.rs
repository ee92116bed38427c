//! Rules that can never apply: warned about at load (and after every keyword resolution), because an
//! administrator who wrote them expects them to do something.

use super::selector::action_rank;
use super::spd::Limits;
use super::{Policy, PortRange, Rule, Spd};
use std::collections::HashMap;

/// Everything that decides which flows a rule covers; rules with equal keys cover exactly the same flows.
#[derive(PartialEq, Eq, Hash)]
struct CoverageKey<'r> {
    remote_any: bool,
    remote_v4: &'r [(u128, u128)],
    remote_v6: &'r [(u128, u128)],
    local_any: bool,
    local_v4: &'r [(u128, u128)],
    local_v6: &'r [(u128, u128)],
    protocol: Option<u8>,
    local_ports: Vec<(u16, u16)>,
    remote_ports: Vec<(u16, u16)>,
}

impl<'r> CoverageKey<'r> {
    fn of(r: &'r Rule) -> Self {
        CoverageKey {
            remote_any: r.remote.is_any(),
            remote_v4: r.remote.intervals(true),
            remote_v6: r.remote.intervals(false),
            local_any: r.local.is_any(),
            local_v4: r.local.intervals(true),
            local_v6: r.local.intervals(false),
            protocol: r.protocol,
            local_ports: merged_ports(&r.local_ports),
            remote_ports: merged_ports(&r.remote_ports),
        }
    }
}

/// A port list as disjoint sorted ranges, so that `["80", "80-81"]` and `["80-81"]` compare equal.
fn merged_ports(list: &[PortRange]) -> Vec<(u16, u16)> {
    let mut v: Vec<(u16, u16)> = list.iter().map(|p| (p.first, p.last)).collect();
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

impl Policy {
    /// Enabled rules that can never govern any flow, with the reason: a `remote` or `local` of keywords only
    /// that resolve to nothing; another rule with exactly the same remote, local, protocol and ports that wins
    /// by action or file order; or more specific rules without selectors that together cover every remote
    /// address of the rule. `spd` must be built from this policy.
    pub fn shadow_warnings(&self, spd: &Spd) -> Vec<String> {
        self.shadow_warnings_where(spd, |_| true)
    }

    /// Before keywords are resolved, the rules that use them have partial address sets: the verdicts are given
    /// for the other rules only, against an SPD built without the keyword rules. That is sound: a rule that
    /// never wins among fewer competitors never wins among more.
    pub(crate) fn unresolved_shadow_warnings(&self) -> Vec<String> {
        let literal = |r: &Rule| r.remote.keywords().next().is_none() && r.local.keywords().next().is_none();
        let spd = Spd::build_where(self, Limits::for_rules(self.rules.len()), literal);
        self.shadow_warnings_where(&spd, literal)
    }

    fn shadow_warnings_where(&self, spd: &Spd, include: impl Fn(&Rule) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut said = vec![false; self.rules.len()];
        let at = |r: &Rule| format!("{}:{}: rule '{}'", self.source, r.line, r.name);
        for (i, r) in self.rules.iter().enumerate() {
            if !r.enabled || !include(r) {
                continue;
            }
            for (field, set) in [("remote", &r.remote), ("local", &r.local)] {
                if set.is_keyword_only() && set.is_empty() && !said[i] {
                    let how =
                        if set.is_resolved() { "resolve to nothing on this host" } else { "are not resolved yet" };
                    out.push(format!("{}: never applies: its {field} is only keywords, which {how}", at(r)));
                    said[i] = true;
                }
            }
        }
        // Identical selectors: the winner by action rank, then file order, takes every flow.
        let mut groups: HashMap<CoverageKey<'_>, usize> = HashMap::new();
        for (i, r) in self.rules.iter().enumerate() {
            if !r.enabled || said[i] || !include(r) {
                continue;
            }
            let full = CoverageKey::of(r);
            match groups.get(&full).copied() {
                None => {
                    groups.insert(full, i);
                }
                Some(w) => {
                    let (a, b) = if r.precedence(i) < self.rules[w].precedence(w) { (i, w) } else { (w, i) };
                    let (winner, loser) = (&self.rules[a], &self.rules[b]);
                    let why = if action_rank(winner.action) == action_rank(loser.action) {
                        format!("same action rank, and '{}' comes first in the file", winner.name)
                    } else {
                        format!("{} wins over {}", winner.action.name(), loser.action.name())
                    };
                    out.push(format!(
                        "{}: never applies: rule '{}' (line {}) covers exactly the same traffic and wins ({why})",
                        at(loser),
                        winner.name,
                        winner.line
                    ));
                    said[b] = true;
                    groups.insert(full, a);
                }
            }
        }
        // Covered by the union of rules that take precedence: the SPD keeps no candidate after a rule without
        // selectors, so a rule that is a candidate nowhere never governs anything.
        let candidate = spd.candidate_rules(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            if r.enabled && include(r) && !said[i] && !candidate[i] && !r.remote.is_empty() && !r.local.is_empty() {
                out.push(format!(
                    "{}: never applies: every remote address it covers is covered by more specific rules that apply \
                     to all traffic (see `hostsec rule explain`)",
                    at(r)
                ));
            }
        }
        out
    }
}
