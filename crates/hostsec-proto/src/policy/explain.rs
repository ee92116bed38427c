//! Which rule applies to a flow or a peer, and why (`hostsec rule explain`, SPEC §2 and §7): the winner, every
//! other rule that covers the traffic with the reason it lost, and the rules that cover the peer but not the
//! rest of the question, with the field that excluded them.
//!
//! A question may leave the protocol and the port open (`rule explain --peer ADDR [--proto P] [--port N]`).
//! An open protocol or port is answered for the traffic that no protocol- or port-specific rule selects: rules
//! that name a protocol (or ports) are listed under `not_matching`, with the option to add to see them. A
//! single `--port N` may be the port of this host's service or the peer's: it matches a rule whose
//! `local_ports` or `remote_ports` contain it (the answer says which), but not a rule that restricts both
//! (the other end's port is unknown).

use super::selector::{has_ports, port_in, ports_text, protocol_name, why_loses, why_wins, Flow, Precedence};
use super::{DefaultAction, Policy, Rule, Spd};
use serde::Serialize;
use std::net::IpAddr;

/// A question about traffic between this host and a peer; open fields are answered as described in the
/// module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExplainQuery {
    /// This host's address.
    pub local: IpAddr,
    /// The peer's address.
    pub peer: IpAddr,
    /// IP protocol, if the question names one.
    pub protocol: Option<u8>,
    /// A port of either end, if the question names one.
    pub port: Option<u16>,
}

/// A rule in an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// Index in the file's rule list.
    pub index: usize,
    /// Name.
    pub name: String,
    /// Action (`require`, `request`, `bypass`, `block`).
    pub action: &'static str,
    /// Line of its `[[rule]]` header.
    pub line: usize,
    /// For a question with one port: which of the rule's lists matched it (`local_ports` or `remote_ports`);
    /// `None` when the rule has no port list.
    pub matched_port: Option<&'static str>,
}

/// A rule that covers the traffic but lost to the winner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contender {
    /// The rule.
    #[serde(flatten)]
    pub rule: RuleRef,
    /// Why the winner takes precedence over it.
    pub reason: String,
}

/// A rule whose remote covers the peer but that does not apply to this traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excluded {
    /// The rule.
    #[serde(flatten)]
    pub rule: RuleRef,
    /// The field that excludes it: `enabled`, `local`, `protocol`, `local_ports` or `remote_ports`.
    pub field: &'static str,
    /// In words.
    pub reason: String,
}

/// The answer to "which rule applies, and why".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// This host's address.
    pub local: IpAddr,
    /// The peer's address.
    pub peer: IpAddr,
    /// The traffic the answer is about, in words.
    pub traffic: String,
    /// The governing rule; `None` when no rule applies (the global `default_action` does).
    pub rule: Option<RuleRef>,
    /// What happens to the traffic: the rule's action, or the default action.
    pub action: &'static str,
    /// Why that rule (or the default) applies.
    pub why: String,
    /// Every other enabled rule that covers the traffic, in precedence order, with the reason it lost.
    pub also_matched: Vec<Contender>,
    /// Rules whose remote covers the peer but that do not apply, in file order, with the excluding field.
    pub not_matching: Vec<Excluded>,
}

/// The ports of the question.
#[derive(Debug, Clone, Copy)]
enum Ports {
    /// A flow: both known (0 when the protocol has none).
    Exact { local: u16, remote: u16 },
    /// One port of either end, or none.
    Either(Option<u16>),
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    local: IpAddr,
    peer: IpAddr,
    protocol: Option<u8>,
    ports: Ports,
}

impl Probe {
    fn describe(&self) -> String {
        let proto = self.protocol.map_or("all".to_string(), protocol_name);
        let mut s = format!("{proto} traffic between {} (this host) and {}", self.local, self.peer);
        match self.ports {
            Ports::Exact { local, remote } if self.protocol.is_some_and(has_ports) => {
                s.push_str(&format!(", local port {local}, remote port {remote}"));
            }
            Ports::Either(Some(n)) => s.push_str(&format!(", port {n} (of this host or of the peer)")),
            _ => {}
        }
        if self.protocol.is_none() {
            s.push_str(" (as no protocol is named: the traffic that no protocol-specific rule selects)");
        }
        s
    }

    /// Whether the rule's fields beyond the remote set admit the probe: `Ok(which port list matched)`, or the
    /// field that excludes it and why.
    fn check(&self, r: &Rule) -> Result<Option<&'static str>, (&'static str, String)> {
        if !r.local.contains(self.local) {
            return Err(("local", format!("local {} does not include {}", r.local, self.local)));
        }
        if let Some(p) = r.protocol {
            match self.protocol {
                None => {
                    return Err((
                        "protocol",
                        format!(
                            "applies only to {} traffic; the question names no protocol (add --proto {})",
                            protocol_name(p),
                            protocol_name(p)
                        ),
                    ))
                }
                Some(q) if q != p => {
                    return Err((
                        "protocol",
                        format!("applies only to {} traffic, not {}", protocol_name(p), protocol_name(q)),
                    ))
                }
                Some(_) => {}
            }
        }
        let (lp, rp) = (&r.local_ports, &r.remote_ports);
        match self.ports {
            Ports::Exact { local, remote } => {
                if !port_in(lp, local) {
                    return Err((
                        "local_ports",
                        format!("local port {local} is not among its local ports ({})", ports_text(lp)),
                    ));
                }
                if !port_in(rp, remote) {
                    return Err((
                        "remote_ports",
                        format!("remote port {remote} is not among its remote ports ({})", ports_text(rp)),
                    ));
                }
                Ok(None)
            }
            Ports::Either(None) => match (lp.is_empty(), rp.is_empty()) {
                (true, true) => Ok(None),
                (false, _) => Err((
                    "local_ports",
                    format!(
                        "applies only to local ports {}; the question names no port (add --port N)",
                        ports_text(lp)
                    ),
                )),
                (true, false) => Err((
                    "remote_ports",
                    format!(
                        "applies only to remote ports {}; the question names no port (add --port N)",
                        ports_text(rp)
                    ),
                )),
            },
            Ports::Either(Some(n)) => {
                let (in_l, in_r) = (!lp.is_empty() && port_in(lp, n), !rp.is_empty() && port_in(rp, n));
                match (lp.is_empty(), rp.is_empty()) {
                    (true, true) => Ok(None),
                    (false, true) if in_l => Ok(Some("local_ports")),
                    (true, false) if in_r => Ok(Some("remote_ports")),
                    (false, true) => {
                        Err(("local_ports", format!("port {n} is not among its local ports ({})", ports_text(lp))))
                    }
                    (true, false) => {
                        Err(("remote_ports", format!("port {n} is not among its remote ports ({})", ports_text(rp))))
                    }
                    (false, false) if in_l => Err((
                        "remote_ports",
                        format!(
                            "port {n} is among its local ports, but it also requires remote ports {} and the question \
                             names one port only",
                            ports_text(rp)
                        ),
                    )),
                    (false, false) if in_r => Err((
                        "local_ports",
                        format!(
                            "port {n} is among its remote ports, but it also requires local ports {} and the question \
                             names one port only",
                            ports_text(lp)
                        ),
                    )),
                    (false, false) => Err((
                        "local_ports",
                        format!(
                            "port {n} is neither among its local ports ({}) nor its remote ports ({})",
                            ports_text(lp),
                            ports_text(rp)
                        ),
                    )),
                }
            }
        }
    }
}

fn rule_ref(policy: &Policy, index: usize, matched_port: Option<&'static str>) -> Option<RuleRef> {
    let r = policy.rules.get(index)?;
    Some(RuleRef { index, name: r.name.clone(), action: r.action.name(), line: r.line, matched_port })
}

impl Policy {
    /// Which rule governs `flow`, and why. `spd` must be built from this policy.
    pub fn explain(&self, spd: &Spd, flow: &Flow) -> Explanation {
        let probe = Probe {
            local: flow.local,
            peer: flow.remote,
            protocol: Some(flow.protocol),
            ports: Ports::Exact { local: flow.local_port, remote: flow.remote_port },
        };
        self.explain_probe(spd, &probe)
    }

    /// Which rule applies to the traffic a question describes, and why; an open protocol or port is answered
    /// as the module documentation says. `spd` must be built from this policy.
    pub fn explain_query(&self, spd: &Spd, query: &ExplainQuery) -> Explanation {
        let probe =
            Probe { local: query.local, peer: query.peer, protocol: query.protocol, ports: Ports::Either(query.port) };
        self.explain_probe(spd, &probe)
    }

    fn explain_probe(&self, spd: &Spd, probe: &Probe) -> Explanation {
        // The winner comes from the SPD as the datapath finds it: the first candidate that admits the probe.
        // A candidate list ends at a rule without selectors, which admits every probe, so nothing after it
        // could win.
        let winner = spd.first_admitted(self, probe.peer, |r| probe.check(r).ok());
        let mut also: Vec<(Precedence, usize, Option<&'static str>)> = Vec::new();
        let mut not_matching = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if !r.remote.contains(probe.peer) || winner.is_some_and(|(w, _)| w == i) {
                continue;
            }
            if !r.enabled {
                if let Some(rule) = rule_ref(self, i, None) {
                    not_matching.push(Excluded { rule, field: "enabled", reason: "the rule is disabled".into() });
                }
                continue;
            }
            match probe.check(r) {
                Ok(m) => also.push((r.precedence(i), i, m)),
                Err((field, reason)) => {
                    if let Some(rule) = rule_ref(self, i, None) {
                        not_matching.push(Excluded { rule, field, reason });
                    }
                }
            }
        }
        also.sort_unstable();
        let default = match self.global.default_action {
            DefaultAction::Bypass => "bypass",
            DefaultAction::Block => "block",
        };
        let Some((w, matched)) = winner.and_then(|(w, m)| self.rules.get(w).map(|_| (w, m))) else {
            return Explanation {
                local: probe.local,
                peer: probe.peer,
                traffic: probe.describe(),
                rule: None,
                action: default,
                why: format!("no enabled rule covers this traffic: the global default_action ({default}) applies"),
                also_matched: Vec::new(),
                not_matching,
            };
        };
        let wr = &self.rules[w];
        let kw = wr.precedence(w);
        let why = match also.first().and_then(|(k, i, _)| self.rules.get(*i).map(|r| (k, r))) {
            Some((k, r)) => why_wins(wr, &kw, r, k).unwrap_or_else(|| "first in precedence order".into()),
            None => format!("the only enabled rule that covers this traffic (remote {})", wr.remote),
        };
        let also_matched = also
            .iter()
            .filter_map(|(k, i, m)| {
                let r = self.rules.get(*i)?;
                Some(Contender { rule: rule_ref(self, *i, *m)?, reason: why_loses(r, k, wr, &kw) })
            })
            .collect();
        Explanation {
            local: probe.local,
            peer: probe.peer,
            traffic: probe.describe(),
            rule: rule_ref(self, w, matched),
            action: wr.action.name(),
            why,
            also_matched,
            not_matching,
        }
    }
}
