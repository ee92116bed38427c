//! Rule actions enforced by nftables: the daemon's own table `inet hostsec`, replaced whole and atomically on each
//! change (one `nft -f -` transaction that creates, deletes and re-creates the table, so the host never sees a
//! half-applied policy nor a moment without one) and deleted on exit. Other tables are never touched.
//!
//! The ruleset is generated as nft text: it is what an administrator reads in `nft list table inet hostsec`, the
//! golden tests compare it as such, and every value that goes in is an address, a prefix length, a port or an
//! interface name checked by [`check_ifname`](super::check_ifname), so nothing can inject syntax.

use super::{IKE_PORTS, MARK, NFT_FAMILY, NFT_TABLE};
use std::fmt::Write;
use std::io;
use std::net::IpAddr;
use tracing::{info, warn};

/// What a flow rule does to the cleartext it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    /// Dropped and counted (`drop_require_in` / `drop_require_out`): a `require` rule's traffic must be ESP.
    Require,
    /// Passes (`request`, `bypass`).
    Pass,
    /// Dropped and counted (`drop_block`).
    Block,
}

/// The traffic of a rule with selectors (protocol, ports) towards some prefixes: one nft line per chain and
/// family. Only the prefixes where the rule is in force are listed (where no rule without selectors takes
/// precedence over it), so that the lines, in precedence order, decide exactly as the datapath does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    /// Peer prefixes (IPv4 and IPv6 mixed, disjoint).
    pub prefixes: Vec<(IpAddr, u8)>,
    /// IP protocol; 0 = any.
    pub protocol: u8,
    /// This host's ports (inclusive ranges); empty = any. Only with TCP or UDP.
    pub local_ports: Vec<(u16, u16)>,
    /// The peer's ports; empty = any. Only with TCP or UDP.
    pub remote_ports: Vec<(u16, u16)>,
    /// What happens to matching cleartext.
    pub action: FlowAction,
}

/// What the firewall enforces. Each list holds prefixes (IPv4 and IPv6 mixed) whose winning action is that one:
/// the caller has already resolved overlapping rules, so the lists are disjoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallPlan {
    /// Peers that must be protected: cleartext to and from them is dropped and counted (`drop_require_in`,
    /// `drop_require_out`) on every interface but the TUN and loopback; IKE and ESP pass.
    pub require: Vec<(IpAddr, u8)>,
    /// Peers protected when negotiation succeeds: everything passes (the daemon decides).
    pub request: Vec<(IpAddr, u8)>,
    /// Exempt peers: everything passes.
    pub bypass: Vec<(IpAddr, u8)>,
    /// Blocked peers: everything to and from them is dropped, IKE and ESP too (`drop_block`).
    pub block: Vec<(IpAddr, u8)>,
    /// Rules with traffic selectors, most preferred first: checked after IKE and ESP pass and before the prefix
    /// lists, the first that matches a packet decides (so `require` for tcp/9100 beside `bypass` for the rest of a
    /// peer drops cleartext to and from port 9100 only).
    pub flows: Vec<FlowRule>,
    /// Blocked peers for which a rule with selectors makes exceptions: what the exceptions do not let through is
    /// dropped (`drop_block`) after the flows; IKE and ESP pass.
    pub block_late: Vec<(IpAddr, u8)>,
    /// Drop traffic with hosts no rule covers (`drop_default`), except IKE, ESP, loopback, IPv6 neighbour
    /// discovery and the daemon's own marked packets.
    pub default_block: bool,
    /// The TUN device (decrypted traffic arrives there; protected traffic leaves there).
    pub tun: String,
    /// IKE's UDP ports.
    pub ike_ports: [u16; 2],
}

impl Default for FirewallPlan {
    fn default() -> Self {
        FirewallPlan {
            require: Vec::new(),
            request: Vec::new(),
            bypass: Vec::new(),
            block: Vec::new(),
            flows: Vec::new(),
            block_late: Vec::new(),
            default_block: false,
            tun: super::TUN_NAME.to_string(),
            ike_ports: IKE_PORTS,
        }
    }
}

/// A packet and byte count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The firewall's drop counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FirewallCounters {
    /// Cleartext from `require` peers, dropped.
    pub drop_require_in: Counter,
    /// Cleartext to `require` peers, dropped.
    pub drop_require_out: Counter,
    /// Anything to or from `block` peers, dropped.
    pub drop_block: Counter,
    /// Traffic with uncovered hosts under `default_block`, dropped.
    pub drop_default: Counter,
}

/// The counter names, in the order of [`FirewallCounters`]' fields.
pub const COUNTERS: [&str; 4] = ["drop_require_in", "drop_require_out", "drop_block", "drop_default"];

impl FirewallCounters {
    fn get_mut(&mut self, name: &str) -> Option<&mut Counter> {
        match name {
            "drop_require_in" => Some(&mut self.drop_require_in),
            "drop_require_out" => Some(&mut self.drop_require_out),
            "drop_block" => Some(&mut self.drop_block),
            "drop_default" => Some(&mut self.drop_default),
            _ => None,
        }
    }

    fn get(&self, name: &str) -> Counter {
        let mut c = *self;
        c.get_mut(name).map(|c| *c).unwrap_or_default()
    }
}

/// ICMPv6 neighbour discovery (router solicitation/advertisement, neighbour solicitation/advertisement,
/// redirect: types 133 to 137), which passes whatever the rules: without it no IPv6 neighbour is reachable, IKE
/// and ESP included.
const ND_TYPES: &str = "nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect";

fn set_def(out: &mut String, name: &str, ipv4: bool, prefixes: &[(IpAddr, u8)]) {
    let ty = if ipv4 { "ipv4_addr" } else { "ipv6_addr" };
    let _ = write!(out, "\tset {name} {{\n\t\ttype {ty}\n\t\tflags interval\n\t\tauto-merge\n");
    let elems: Vec<String> = prefixes
        .iter()
        .filter(|(a, _)| a.is_ipv4() == ipv4)
        .map(|(a, l)| {
            let max = if ipv4 { 32 } else { 128 };
            let l = (*l).min(max);
            let a = super::routing::mask_prefix(*a, l);
            if l == max {
                a.to_string()
            } else {
                format!("{a}/{l}")
            }
        })
        .collect();
    if !elems.is_empty() {
        out.push_str("\t\telements = { ");
        for (i, e) in elems.iter().enumerate() {
            if i > 0 {
                out.push_str(if i % 8 == 0 { ",\n\t\t\t     " } else { ", " });
            }
            out.push_str(e);
        }
        out.push_str(" }\n");
    }
    out.push_str("\t}\n");
}

/// Prefixes of one family as an nft set literal (`{ 192.0.2.1, 198.51.100.0/24 }`, or the bare element when there
/// is one, as `nft list` prints it back), or `None` when there is none of that family.
fn prefix_literal(prefixes: &[(IpAddr, u8)], ipv4: bool) -> Option<String> {
    let max = if ipv4 { 32 } else { 128 };
    let elems: Vec<String> = prefixes
        .iter()
        .filter(|(a, _)| a.is_ipv4() == ipv4)
        .map(|(a, l)| {
            let l = (*l).min(max);
            let a = super::routing::mask_prefix(*a, l);
            if l == max {
                a.to_string()
            } else {
                format!("{a}/{l}")
            }
        })
        .collect();
    literal(elems)
}

/// Elements as `nft list` writes them: one bare, several in braces; `None` for none.
fn literal(elems: Vec<String>) -> Option<String> {
    match elems.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => Some(format!("{{ {} }}", elems.join(", "))),
    }
}

/// Port ranges as an nft set literal (`{ 631, 9100-9109 }`, or `9100` alone).
fn port_literal(ports: &[(u16, u16)]) -> String {
    let elems: Vec<String> =
        ports.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    literal(elems).unwrap_or_default()
}

impl FlowRule {
    /// The match on protocol and ports for a chain: in `input` our ports are the destination ports, in `output`
    /// the source ports.
    fn l4_match(&self, input: bool) -> String {
        let kw = match self.protocol {
            6 => Some("tcp"),
            17 => Some("udp"),
            _ => None,
        };
        let (ours, theirs) = if input { ("dport", "sport") } else { ("sport", "dport") };
        let mut m = Vec::new();
        match kw {
            Some(kw) if !self.local_ports.is_empty() || !self.remote_ports.is_empty() => {
                if !self.local_ports.is_empty() {
                    m.push(format!("{kw} {ours} {}", port_literal(&self.local_ports)));
                }
                if !self.remote_ports.is_empty() {
                    m.push(format!("{kw} {theirs} {}", port_literal(&self.remote_ports)));
                }
            }
            _ if self.protocol != 0 => m.push(format!("meta l4proto {}", self.protocol)),
            _ => {}
        }
        m.join(" ")
    }
}

impl FirewallPlan {
    /// The table, as nft text. `counters` are the values the named counters start with (so that replacing the
    /// table does not reset them).
    pub fn table_text(&self, counters: &FirewallCounters) -> io::Result<String> {
        super::check_ifname(&self.tun)?;
        let mut t = String::with_capacity(4096 + 48 * self.prefix_count());
        let _ = writeln!(t, "table {NFT_FAMILY} {NFT_TABLE} {{");
        for name in COUNTERS {
            let c = counters.get(name);
            let _ = writeln!(t, "\tcounter {name} {{\n\t\tpackets {} bytes {}\n\t}}", c.packets, c.bytes);
        }
        for (list, name) in
            [(&self.require, "require"), (&self.request, "request"), (&self.bypass, "bypass"), (&self.block, "block")]
        {
            set_def(&mut t, &format!("{name}4"), true, list);
            set_def(&mut t, &format!("{name}6"), false, list);
        }
        // Only when used, so that a rule set without selectors gives the same table as before they existed.
        if !self.block_late.is_empty() {
            set_def(&mut t, "block_late4", true, &self.block_late);
            set_def(&mut t, "block_late6", false, &self.block_late);
        }
        let ike = format!("{{ {}, {} }}", self.ike_ports[0], self.ike_ports[1]);
        let tun = &self.tun;
        for (chain, dir, port, iface) in
            [("input", "saddr", "dport", "iifname"), ("output", "daddr", "sport", "oifname")]
        {
            let (req_counter, hook) =
                if chain == "input" { ("drop_require_in", "input") } else { ("drop_require_out", "output") };
            let _ = writeln!(t, "\tchain {chain} {{");
            let _ = writeln!(t, "\t\ttype filter hook {hook} priority filter; policy accept;");
            let _ = writeln!(t, "\t\t{iface} \"lo\" accept");
            let _ = writeln!(t, "\t\ticmpv6 type {{ {ND_TYPES} }} accept");
            let _ = writeln!(t, "\t\tip {dir} @block4 counter name \"drop_block\" drop");
            let _ = writeln!(t, "\t\tip6 {dir} @block6 counter name \"drop_block\" drop");
            let _ = writeln!(t, "\t\t{iface} \"{tun}\" accept");
            let _ = writeln!(t, "\t\tmeta l4proto esp accept");
            let _ = writeln!(t, "\t\tudp {port} {ike} accept");
            for f in &self.flows {
                let action = match f.action {
                    FlowAction::Require => format!("counter name \"{req_counter}\" drop"),
                    FlowAction::Pass => "accept".to_string(),
                    FlowAction::Block => "counter name \"drop_block\" drop".to_string(),
                };
                let l4 = f.l4_match(chain == "input");
                for (fam, v4) in [("ip", true), ("ip6", false)] {
                    if let Some(addrs) = prefix_literal(&f.prefixes, v4) {
                        let l4 = if l4.is_empty() { String::new() } else { format!("{l4} ") };
                        let _ = writeln!(t, "\t\t{fam} {dir} {addrs} {l4}{action}");
                    }
                }
            }
            if !self.block_late.is_empty() {
                let _ = writeln!(t, "\t\tip {dir} @block_late4 counter name \"drop_block\" drop");
                let _ = writeln!(t, "\t\tip6 {dir} @block_late6 counter name \"drop_block\" drop");
            }
            let _ = writeln!(t, "\t\tip {dir} @require4 counter name \"{req_counter}\" drop");
            let _ = writeln!(t, "\t\tip6 {dir} @require6 counter name \"{req_counter}\" drop");
            if self.default_block {
                if chain == "output" {
                    let _ = writeln!(t, "\t\tmeta mark {MARK:#x} accept");
                }
                for set in ["request", "bypass"] {
                    let _ = writeln!(t, "\t\tip {dir} @{set}4 accept");
                    let _ = writeln!(t, "\t\tip6 {dir} @{set}6 accept");
                }
                let _ = writeln!(t, "\t\tcounter name \"drop_default\" drop");
            }
            let _ = writeln!(t, "\t}}");
        }
        t.push_str("}\n");
        Ok(t)
    }

    /// The whole transaction that replaces the table: an empty declaration (so that the delete cannot fail when
    /// the table does not exist), the delete, and the new table. `nft -f` applies a file as one transaction.
    pub fn transaction(&self, counters: &FirewallCounters) -> io::Result<String> {
        Ok(format!(
            "table {NFT_FAMILY} {NFT_TABLE} {{}}\ndelete table {NFT_FAMILY} {NFT_TABLE}\n{}",
            self.table_text(counters)?
        ))
    }

    fn prefix_count(&self) -> usize {
        self.require.len()
            + self.request.len()
            + self.bypass.len()
            + self.block.len()
            + self.block_late.len()
            + self.flows.iter().map(|f| f.prefixes.len()).sum::<usize>()
    }
}

/// The daemon's nftables table, present from [`Firewall::apply`] until [`Firewall::remove`] or drop.
#[derive(Debug)]
pub struct Firewall {
    installed: bool,
}

impl Firewall {
    /// Installs the table for `plan` (replacing a table of the same name, e.g. one a killed run left behind).
    pub fn apply(plan: &FirewallPlan) -> io::Result<Firewall> {
        let mut fw = Firewall { installed: false };
        fw.update(plan)?;
        Ok(fw)
    }

    /// Replaces the table with one for `plan`, atomically, carrying the counters over.
    pub fn update(&mut self, plan: &FirewallPlan) -> io::Result<()> {
        let counters = if self.installed { self.counters().unwrap_or_default() } else { FirewallCounters::default() };
        super::run_with_input("nft", &["-f", "-"], &plan.transaction(&counters)?)?;
        if !self.installed {
            info!(
                "nftables table {NFT_FAMILY} {NFT_TABLE} installed ({} require, {} request, {} bypass, {} block prefixes, {} selector rules{})",
                plan.require.len(),
                plan.request.len(),
                plan.bypass.len(),
                plan.block.len() + plan.block_late.len(),
                plan.flows.len(),
                if plan.default_block { ", default block" } else { "" }
            );
        }
        self.installed = true;
        Ok(())
    }

    /// Reads the drop counters.
    pub fn counters(&self) -> io::Result<FirewallCounters> {
        let out = super::run_with_input("nft", &["-j", "list", "counters", "table", NFT_FAMILY, NFT_TABLE], "")?;
        parse_counters(&out)
    }

    /// Deletes the table. Idempotent; also done on drop.
    pub fn remove(&mut self) {
        if !self.installed {
            return;
        }
        self.installed = false;
        match delete_table() {
            Ok(_) => info!("nftables table {NFT_FAMILY} {NFT_TABLE} removed"),
            Err(e) => warn!("cannot delete nftables table {NFT_FAMILY} {NFT_TABLE}: {e}"),
        }
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Deletes our table if it exists; returns whether it did.
pub(crate) fn delete_table() -> io::Result<bool> {
    // `delete` of a missing table fails, so declare it first: the pair is idempotent in one transaction.
    let exists = run_with_input_ok("nft", &["list", "table", NFT_FAMILY, NFT_TABLE]);
    if !exists {
        return Ok(false);
    }
    super::run_with_input(
        "nft",
        &["-f", "-"],
        &format!("table {NFT_FAMILY} {NFT_TABLE} {{}}\ndelete table {NFT_FAMILY} {NFT_TABLE}\n"),
    )?;
    Ok(true)
}

fn run_with_input_ok(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Reads the named counters of our table from `nft -j list counters` output.
pub fn parse_counters(json: &str) -> io::Result<FirewallCounters> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| io::Error::other(format!("nft -j list counters: {e}")))?;
    let mut c = FirewallCounters::default();
    let items =
        v.get("nftables").and_then(|n| n.as_array()).ok_or_else(|| io::Error::other("nft -j: no 'nftables' array"))?;
    for item in items {
        let Some(ctr) = item.get("counter") else { continue };
        if ctr.get("table").and_then(|t| t.as_str()) != Some(NFT_TABLE) {
            continue;
        }
        let Some(slot) = ctr.get("name").and_then(|n| n.as_str()).and_then(|n| c.get_mut(n)) else { continue };
        slot.packets = ctr.get("packets").and_then(|p| p.as_u64()).unwrap_or(0);
        slot.bytes = ctr.get("bytes").and_then(|p| p.as_u64()).unwrap_or(0);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (IpAddr, u8) {
        let (a, l) = s.split_once('/').unwrap_or((s, if s.contains(':') { "128" } else { "32" }));
        (a.parse().unwrap(), l.parse().unwrap())
    }

    #[test]
    fn golden_ruleset() {
        let plan = FirewallPlan {
            require: vec![p("198.51.100.2"), p("2001:db8:1::/64"), p("203.0.113.0/24")],
            request: vec![p("198.51.100.3")],
            bypass: vec![],
            block: vec![p("2001:db8:2::5"), p("192.0.2.77/32")],
            flows: vec![],
            block_late: vec![],
            default_block: true,
            tun: "hs0".into(),
            ike_ports: [500, 4500],
        };
        let counters = FirewallCounters { drop_block: Counter { packets: 3, bytes: 252 }, ..Default::default() };
        let want = r#"table inet hostsec {}
delete table inet hostsec
table inet hostsec {
	counter drop_require_in {
		packets 0 bytes 0
	}
	counter drop_require_out {
		packets 0 bytes 0
	}
	counter drop_block {
		packets 3 bytes 252
	}
	counter drop_default {
		packets 0 bytes 0
	}
	set require4 {
		type ipv4_addr
		flags interval
		auto-merge
		elements = { 198.51.100.2, 203.0.113.0/24 }
	}
	set require6 {
		type ipv6_addr
		flags interval
		auto-merge
		elements = { 2001:db8:1::/64 }
	}
	set request4 {
		type ipv4_addr
		flags interval
		auto-merge
		elements = { 198.51.100.3 }
	}
	set request6 {
		type ipv6_addr
		flags interval
		auto-merge
	}
	set bypass4 {
		type ipv4_addr
		flags interval
		auto-merge
	}
	set bypass6 {
		type ipv6_addr
		flags interval
		auto-merge
	}
	set block4 {
		type ipv4_addr
		flags interval
		auto-merge
		elements = { 192.0.2.77 }
	}
	set block6 {
		type ipv6_addr
		flags interval
		auto-merge
		elements = { 2001:db8:2::5 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "lo" accept
		icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept
		ip saddr @block4 counter name "drop_block" drop
		ip6 saddr @block6 counter name "drop_block" drop
		iifname "hs0" accept
		meta l4proto esp accept
		udp dport { 500, 4500 } accept
		ip saddr @require4 counter name "drop_require_in" drop
		ip6 saddr @require6 counter name "drop_require_in" drop
		ip saddr @request4 accept
		ip6 saddr @request6 accept
		ip saddr @bypass4 accept
		ip6 saddr @bypass6 accept
		counter name "drop_default" drop
	}
	chain output {
		type filter hook output priority filter; policy accept;
		oifname "lo" accept
		icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept
		ip daddr @block4 counter name "drop_block" drop
		ip6 daddr @block6 counter name "drop_block" drop
		oifname "hs0" accept
		meta l4proto esp accept
		udp sport { 500, 4500 } accept
		ip daddr @require4 counter name "drop_require_out" drop
		ip6 daddr @require6 counter name "drop_require_out" drop
		meta mark 0x4853 accept
		ip daddr @request4 accept
		ip6 daddr @request6 accept
		ip daddr @bypass4 accept
		ip6 daddr @bypass6 accept
		counter name "drop_default" drop
	}
}
"#;
        assert_eq!(plan.transaction(&counters).unwrap(), want);
    }

    #[test]
    fn selector_rules_match_protocol_and_ports_per_direction() {
        let plan = FirewallPlan {
            bypass: vec![p("198.51.100.2")],
            flows: vec![
                FlowRule {
                    prefixes: vec![p("198.51.100.2"), p("2001:db8:1::/64")],
                    protocol: 6,
                    local_ports: vec![(9100, 9100), (631, 632)],
                    remote_ports: vec![],
                    action: FlowAction::Require,
                },
                FlowRule {
                    prefixes: vec![p("198.51.100.2")],
                    protocol: 1,
                    local_ports: vec![],
                    remote_ports: vec![],
                    action: FlowAction::Pass,
                },
            ],
            block_late: vec![p("203.0.113.0/24")],
            ..Default::default()
        };
        let t = plan.table_text(&FirewallCounters::default()).unwrap();
        for line in [
            "\t\tip saddr 198.51.100.2 tcp dport { 9100, 631-632 } counter name \"drop_require_in\" drop\n",
            "\t\tip6 saddr 2001:db8:1::/64 tcp dport { 9100, 631-632 } counter name \"drop_require_in\" drop\n",
            "\t\tip daddr 198.51.100.2 tcp sport { 9100, 631-632 } counter name \"drop_require_out\" drop\n",
            "\t\tip saddr 198.51.100.2 meta l4proto 1 accept\n",
            "\t\tip saddr @block_late4 counter name \"drop_block\" drop\n",
            "\tset block_late4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t\telements = { 203.0.113.0/24 }\n",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
        // The flows come after IKE and ESP pass and before the prefix lists decide.
        let ike = t.find("udp dport { 500, 4500 } accept").unwrap();
        let flow = t.find("tcp dport { 9100").unwrap();
        let sets = t.find("ip saddr @require4").unwrap();
        assert!(ike < flow && flow < sets, "{t}");
    }

    #[test]
    fn without_default_block_nothing_is_dropped_by_default() {
        let plan = FirewallPlan { require: vec![p("198.51.100.2")], ..Default::default() };
        let t = plan.table_text(&FirewallCounters::default()).unwrap();
        assert!(!t.contains("drop_default\" drop"));
        assert!(!t.contains("meta mark"));
        assert!(t.contains("ip saddr @require4 counter name \"drop_require_in\" drop"));
    }

    #[test]
    fn host_bits_are_cleared_and_long_lists_wrap() {
        let plan = FirewallPlan {
            bypass: (0..20).map(|i| (IpAddr::from([203, 0, 113, i]), 32)).chain([p("198.51.100.77/24")]).collect(),
            ..Default::default()
        };
        let t = plan.table_text(&FirewallCounters::default()).unwrap();
        assert!(t.contains("198.51.100.0/24"), "{t}");
        assert!(t.contains("203.0.113.7,\n\t\t\t     203.0.113.8, "), "{t}");
    }

    #[test]
    fn refuses_an_interface_name_that_would_change_the_ruleset() {
        for bad in ["hs0\" accept", "a\nb", "", "0123456789abcdef"] {
            let plan = FirewallPlan { tun: bad.into(), ..Default::default() };
            assert!(plan.table_text(&FirewallCounters::default()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_counters_from_nft_json() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
            {"counter": {"family": "inet", "name": "drop_require_in", "table": "hostsec", "handle": 1, "packets": 7, "bytes": 588}},
            {"counter": {"family": "inet", "name": "drop_block", "table": "hostsec", "handle": 3, "packets": 2, "bytes": 120}},
            {"counter": {"family": "inet", "name": "drop_block", "table": "other", "handle": 3, "packets": 99, "bytes": 99}},
            {"counter": {"family": "inet", "name": "unknown", "table": "hostsec", "handle": 9, "packets": 1, "bytes": 1}}]}"#;
        let c = parse_counters(json).unwrap();
        assert_eq!(c.drop_require_in, Counter { packets: 7, bytes: 588 });
        assert_eq!(c.drop_block, Counter { packets: 2, bytes: 120 });
        assert_eq!(c.drop_default, Counter::default());
        assert!(parse_counters("not json").is_err());
        assert!(parse_counters("{}").is_err());
    }
}
