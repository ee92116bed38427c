//! Shared by the policy tests and the SPD benchmark: an in-memory [`ConfigFiles`] and a generator of large,
//! realistic configs (hosts, ranges, nested subnets, IPv6, port rules, local restrictions, disabled rules).

#![allow(dead_code)]

use hostsec_proto::policy::address::from_u128;
use hostsec_proto::policy::{ConfigFiles, Flow, Policy};
use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Secret files by path: `Ok(bytes)`, or the error the filesystem check would give (e.g. world-readable).
pub struct MemFiles(pub HashMap<String, Result<Vec<u8>, String>>);

impl MemFiles {
    /// The files the tests name: a private key file and a world-readable one.
    pub fn standard() -> MemFiles {
        MemFiles(HashMap::from([
            ("/etc/hostsec/site.psk".to_string(), Ok(b"file secret 0123456789\n".to_vec())),
            (
                "/etc/hostsec/open.psk".to_string(),
                Err("'/etc/hostsec/open.psk' is accessible by group or others (mode 0644); secrets must be private: \
                     chmod 600 '/etc/hostsec/open.psk'"
                    .to_string()),
            ),
        ]))
    }
}

impl ConfigFiles for MemFiles {
    fn read_secret(&self, path: &Path) -> Result<Vec<u8>, String> {
        let key = path.to_string_lossy().into_owned();
        self.0.get(&key).cloned().unwrap_or_else(|| Err(format!("cannot read '{key}': no such file")))
    }
}

/// A small deterministic generator (xorshift64*), so that the large configs are the same on every run.
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A config with `rules` rules of `per_rule` address entries each. Every 100th rule is a wide subnet that
/// encloses the hosts of the next 99 (nesting), a tenth name tcp ports, one in twenty restricts its local
/// addresses, one in fifty is disabled; a fifth of the entries are IPv6.
pub fn large_config(rules: usize, per_rule: usize) -> String {
    let mut rng = Rng::new(0x005e_ed0f_1057_5ec5);
    let mut t = String::with_capacity(rules * per_rule * 24);
    t.push_str("[global]\nminimum_strength = \"standard\"\n\n[defaults]\npsk = \"large-config-psk-0123456789\"\nauto = \"none\"\n\n");
    for i in 0..rules {
        let block = (i / 100) % 256;
        let _ = writeln!(t, "[[rule]]\nname = \"r{i}\"");
        let mut items: Vec<String> = Vec::with_capacity(per_rule);
        if i % 100 == 0 {
            items.push(format!("10.{block}.0.0/16"));
        }
        while items.len() < per_rule {
            let (b, c, d) = (rng.below(256), rng.below(256), rng.below(240));
            items.push(match rng.below(10) {
                0..=3 => format!("10.{block}.{b}.{d}"),
                4 => format!("10.{block}.{b}.{d}-10.{block}.{b}.{}", d + rng.below(16)),
                5 => format!("10.{block}.{b}.{}/28", d & !15),
                6 => format!("172.{}.{c}.{d}", 16 + rng.below(16)),
                7 => format!("2001:db8:{block:x}:{b:x}::{:x}", rng.below(65536)),
                8 => format!("2001:db8:{block:x}:{b:x}::/64"),
                _ => format!("192.168.{c}.{d}"),
            });
        }
        let _ = writeln!(t, "remote = [{}]", items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "));
        if i % 10 == 3 {
            t.push_str("protocol = \"tcp\"\nlocal_ports = [\"9100\", \"631\", \"515\"]\n");
        }
        if i % 20 == 7 {
            t.push_str("local = [\"192.0.2.0/28\", \"2001:db8:ffff::/64\"]\n");
        }
        if i % 50 == 11 {
            t.push_str("enabled = false\n");
        }
        let action = match rng.below(10) {
            0 => "block",
            1 => "bypass",
            2 => "request",
            _ => "require",
        };
        let _ = writeln!(t, "action = \"{action}\"\n");
    }
    t
}

/// Flows towards the address space of [`large_config`]: most hit a rule, some hit none.
pub fn probe_flows(n: usize, seed: u64) -> Vec<Flow> {
    let mut rng = Rng::new(seed);
    let local4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let local6: IpAddr = "2001:db8:ffff::1".parse().unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
    (0..n)
        .map(|_| {
            let (b, c, d) = (rng.below(256) as u8, rng.below(256) as u8, rng.below(256) as u8);
            let remote: IpAddr = match rng.below(6) {
                0..=3 => IpAddr::V4(Ipv4Addr::new(10, b, c, d)),
                4 => IpAddr::V4(Ipv4Addr::new(192, 168, c, d)),
                _ => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, u16::from(b), u16::from(c), 0, 0, 0, u16::from(d))),
            };
            let local = if remote.is_ipv4() { local4 } else { local6 };
            let (protocol, lp) = match rng.below(4) {
                0 => (6, 9100),
                1 => (6, 443),
                2 => (17, 53),
                _ => (1, 0),
            };
            Flow { local, remote, protocol, local_port: lp, remote_port: if protocol == 1 { 0 } else { 40000 } }
        })
        .collect()
}

/// Flows towards the policy's own remote addresses (every other one an address inside a random rule's remote
/// set, the rest as [`probe_flows`]), so that lookups at every policy size take the path of a hit.
pub fn hit_flows(policy: &Policy, n: usize, seed: u64) -> Vec<Flow> {
    let mut rng = Rng::new(seed);
    let mut out = probe_flows(n, seed ^ 0x00ff);
    for f in out.iter_mut().step_by(2) {
        let Some(rule) = policy.rules.get(rng.below(policy.rules.len() as u64) as usize) else { break };
        let v4 = f.remote.is_ipv4();
        let iv = rule.remote.intervals(v4);
        if let Some(&(lo, hi)) = iv.get(rng.below(iv.len() as u64) as usize) {
            let span = (hi - lo).min(u128::from(u64::MAX)) as u64;
            f.remote = from_u128(lo + u128::from(rng.below(span.saturating_add(1))), v4);
        }
    }
    out
}

/// Resident memory of this process in bytes (Linux `/proc/self/statm`), or 0 where unknown.
pub fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()))
        .map_or(0, |pages| pages * 4096)
}
