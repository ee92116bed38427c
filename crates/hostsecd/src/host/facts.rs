//! The host's own network configuration, from which the rule keywords `LocalSubnet`, `DefaultGateway`, `DHCP`,
//! `DNS` and `WINS` are resolved (SPEC §2): interface subnets and default routes by rtnetlink, name servers from
//! resolv.conf (systemd-resolved's upstream list when resolv.conf points at its local stub), DHCP and WINS servers
//! from the DHCP client's leases (ISC dhclient and systemd-networkd). The core only sees the resulting plain data
//! ([`HostFacts`]); this module is the I/O around it, and its parsers are pure functions so they can be tested.

use super::netlink::{attrs, Msg, Netlink};
use hostsec_proto::policy::HostFacts;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Where the facts come from; the defaults are the standard Debian locations.
#[derive(Debug, Clone)]
pub struct FactSources {
    /// The resolver configuration (`/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// systemd-resolved's list of upstream servers, used when `resolv_conf` names only its stub (127.0.0.53).
    pub resolved_upstream: PathBuf,
    /// Directories holding ISC dhclient lease files (`*.leases`, `*.lease`).
    pub dhclient_dirs: Vec<PathBuf>,
    /// systemd-networkd's lease directory (one file per interface index).
    pub networkd_leases: PathBuf,
    /// The TUN device of the datapath, whose address (if any) is not a local subnet.
    pub tun_name: String,
}

impl Default for FactSources {
    fn default() -> Self {
        FactSources {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            resolved_upstream: PathBuf::from("/run/systemd/resolve/resolv.conf"),
            dhclient_dirs: vec![
                PathBuf::from("/var/lib/dhcp"),
                PathBuf::from("/var/lib/dhclient"),
                PathBuf::from("/var/lib/NetworkManager"),
            ],
            networkd_leases: PathBuf::from("/run/systemd/netif/leases"),
            tun_name: super::TUN_NAME.to_string(),
        }
    }
}

impl FactSources {
    /// The files whose change means the facts may have changed (their metadata is polled: the resolver file is
    /// often replaced rather than rewritten, and inside `ip netns exec` it is a bind mount).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut out = vec![self.resolv_conf.clone(), self.resolved_upstream.clone()];
        for d in &self.dhclient_dirs {
            out.extend(lease_files(d));
        }
        out.extend(dir_files(&self.networkd_leases));
        out
    }
}

/// Gathers every fact. A source that cannot be read counts as empty (a host without DHCP has no lease file); the
/// netlink dumps are the only hard errors.
pub fn gather(src: &FactSources) -> io::Result<HostFacts> {
    let mut nl = Netlink::open()?;
    let tun_index = super::netlink::link_by_name(&mut nl, &src.tun_name)?.map(|(i, _)| i);
    let mut facts = HostFacts {
        local_subnets: local_subnets(&mut nl, tun_index)?,
        default_gateways: default_gateways(&mut nl)?,
        ..HostFacts::default()
    };
    let resolv = std::fs::read_to_string(&src.resolv_conf).unwrap_or_default();
    let mut dns = parse_resolv_conf(&resolv);
    if dns.is_empty() && resolv_conf_uses_stub(&resolv) {
        dns = parse_resolv_conf(&std::fs::read_to_string(&src.resolved_upstream).unwrap_or_default());
    }
    facts.dns_servers = dns;
    for d in &src.dhclient_dirs {
        for f in lease_files(d) {
            let lease = parse_dhclient_leases(&std::fs::read_to_string(&f).unwrap_or_default());
            facts.dhcp_servers.extend(lease.servers);
            facts.wins_servers.extend(lease.wins);
        }
    }
    for f in dir_files(&src.networkd_leases) {
        facts.dhcp_servers.extend(parse_networkd_lease(&std::fs::read_to_string(&f).unwrap_or_default()));
    }
    for v in [&mut facts.dhcp_servers, &mut facts.wins_servers, &mut facts.default_gateways] {
        v.sort();
        v.dedup();
    }
    facts.local_subnets.sort();
    facts.local_subnets.dedup();
    Ok(facts)
}

fn lease_files(dir: &Path) -> Vec<PathBuf> {
    dir_files(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "leases" || e == "lease")).collect()
}

fn dir_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

/// Subnets of the host's interface addresses (`ifaddrmsg`: family, prefix length, flags, scope, index), without
/// loopback and link-local scopes and without the TUN.
fn local_subnets(nl: &mut Netlink, tun_index: Option<u32>) -> io::Result<Vec<(IpAddr, u8)>> {
    let mut out = Vec::new();
    for r in nl.dump(Msg::new(libc::RTM_GETADDR, 0, &[0u8; 8]))? {
        if r.ty != libc::RTM_NEWADDR {
            continue;
        }
        if let Some(s) = parse_ifaddr(&r.body, tun_index) {
            out.push(s);
        }
    }
    Ok(out)
}

/// One `RTM_NEWADDR` body to the subnet it lies in, or `None` for addresses that are not a local subnet.
pub fn parse_ifaddr(body: &[u8], tun_index: Option<u32>) -> Option<(IpAddr, u8)> {
    let (&family, rest) = body.split_first()?;
    let prefix = *rest.first()?;
    let scope = *body.get(3)?;
    let index = u32::from_ne_bytes(body.get(4..8)?.try_into().ok()?);
    // RT_SCOPE_HOST (254) is loopback, RT_SCOPE_LINK (253) IPv6 link-local: neither is a network of peers.
    if scope >= 253 || Some(index) == tun_index {
        return None;
    }
    let mut addr = None;
    for (ty, data) in attrs(body, 8) {
        // IFA_LOCAL (2) is this host's address on point-to-point links, where IFA_ADDRESS (1) is the far end.
        if ty == libc::IFA_LOCAL || (ty == libc::IFA_ADDRESS && addr.is_none()) {
            addr = ip_from(family, data);
        }
    }
    let addr = addr?;
    Some((network_of(addr, prefix)?, prefix))
}

fn ip_from(family: u8, data: &[u8]) -> Option<IpAddr> {
    match i32::from(family) {
        libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data.get(..4)?).ok()?))),
        libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data.get(..16)?).ok()?))),
        _ => None,
    }
}

/// The network address of `addr/prefix` (host bits cleared), `None` for an impossible prefix.
fn network_of(addr: IpAddr, prefix: u8) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)))
        }
        IpAddr::V6(a) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            Some(IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)))
        }
        _ => None,
    }
}

/// Gateways of the default routes in the main table (`rtmsg`: family, dst_len, src_len, tos, table, protocol,
/// scope, type, flags).
fn default_gateways(nl: &mut Netlink) -> io::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        let mut hdr = [0u8; 12];
        hdr[0] = family as u8;
        for r in nl.dump(Msg::new(libc::RTM_GETROUTE, 0, &hdr))? {
            if r.ty == libc::RTM_NEWROUTE {
                out.extend(parse_default_route(&r.body));
            }
        }
    }
    Ok(out)
}

/// The gateway of one `RTM_NEWROUTE` body if it is a unicast default route of the main table.
pub fn parse_default_route(body: &[u8]) -> Option<IpAddr> {
    let family = *body.first()?;
    let dst_len = *body.get(1)?;
    let mut table = u32::from(*body.get(4)?);
    let rtype = *body.get(7)?;
    if dst_len != 0 || rtype != libc::RTN_UNICAST {
        return None;
    }
    let mut gateway = None;
    for (ty, data) in attrs(body, 12) {
        match ty {
            libc::RTA_TABLE => table = super::netlink::u32_of(data).unwrap_or(table),
            libc::RTA_GATEWAY => gateway = ip_from(family, data),
            _ => {}
        }
    }
    (table == u32::from(libc::RT_TABLE_MAIN)).then_some(gateway).flatten()
}

/// `nameserver` lines of a resolv.conf, loopback servers left out (a local resolver is not a peer).
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        // A scoped IPv6 server (fe80::1%eth0) is link-local: not a peer either.
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|a| !a.is_loopback())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether a resolv.conf points at systemd-resolved's local stub.
pub fn resolv_conf_uses_stub(text: &str) -> bool {
    text.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("nameserver") && matches!(w.next(), Some("127.0.0.53" | "127.0.0.54"))
    })
}

/// What a dhclient lease file says about servers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LeaseServers {
    /// DHCP servers (`option dhcp-server-identifier`).
    pub servers: Vec<IpAddr>,
    /// WINS servers (`option netbios-name-servers`).
    pub wins: Vec<IpAddr>,
}

/// Parses an ISC dhclient lease file. Only the last lease of each interface is current (dhclient appends).
pub fn parse_dhclient_leases(text: &str) -> LeaseServers {
    let mut per_iface: Vec<(String, LeaseServers)> = Vec::new();
    let mut cur: Option<(String, LeaseServers)> = None;
    for line in text.lines() {
        let line = line.trim().trim_end_matches(';').trim();
        if line.starts_with("lease") && line.ends_with('{') {
            cur = Some((String::new(), LeaseServers::default()));
        } else if line == "}" {
            if let Some((iface, l)) = cur.take() {
                per_iface.retain(|(i, _)| *i != iface);
                per_iface.push((iface, l));
            }
        } else if let Some((iface, l)) = cur.as_mut() {
            if let Some(v) = line.strip_prefix("interface ") {
                *iface = v.trim_matches('"').to_string();
            } else if let Some(v) = line.strip_prefix("option dhcp-server-identifier ") {
                l.servers.extend(addr_list(v));
            } else if let Some(v) = line.strip_prefix("option netbios-name-servers ") {
                l.wins.extend(addr_list(v));
            }
        }
    }
    let mut out = LeaseServers::default();
    for (_, l) in per_iface {
        out.servers.extend(l.servers);
        out.wins.extend(l.wins);
    }
    out
}

fn addr_list(v: &str) -> impl Iterator<Item = IpAddr> + '_ {
    v.split(',').filter_map(|a| a.trim().parse().ok())
}

/// Parses a systemd-networkd lease (`KEY=value` lines): the DHCP server's address.
pub fn parse_networkd_lease(text: &str) -> Vec<IpAddr> {
    text.lines().filter_map(|l| l.strip_prefix("SERVER_ADDRESS=")).filter_map(|a| a.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn resolv_conf_servers_without_loopback_and_comments() {
        let text = "# generated\nsearch example.com\nnameserver 198.51.100.53\nnameserver  2001:db8::53 \n\
                    nameserver 127.0.0.1\n;nameserver 192.0.2.9\nnameserver fe80::1%eth0\noptions edns0\n";
        assert_eq!(parse_resolv_conf(text), vec![ip("198.51.100.53"), ip("2001:db8::53")]);
        assert!(!resolv_conf_uses_stub(text));
        assert!(resolv_conf_uses_stub("nameserver 127.0.0.53\noptions edns0 trust-ad\n"));
        assert!(parse_resolv_conf("nameserver 127.0.0.53\n").is_empty());
    }

    #[test]
    fn dhclient_leases_last_per_interface() {
        let text = r#"lease {
  interface "eth0";
  fixed-address 198.51.100.20;
  option dhcp-server-identifier 198.51.100.1;
  option netbios-name-servers 198.51.100.5, 198.51.100.6;
}
lease {
  interface "eth0";
  option dhcp-server-identifier 198.51.100.2;
}
lease {
  interface "eth1";
  option dhcp-server-identifier 203.0.113.1;
  option netbios-name-servers 203.0.113.5;
}
"#;
        let l = parse_dhclient_leases(text);
        assert_eq!(l.servers, vec![ip("198.51.100.2"), ip("203.0.113.1")]);
        assert_eq!(l.wins, vec![ip("203.0.113.5")]);
        assert_eq!(parse_dhclient_leases("lease {\n garbage\n"), LeaseServers::default());
    }

    #[test]
    fn networkd_lease() {
        let text = "# This is private data. Do not parse.\nADDRESS=198.51.100.20\nSERVER_ADDRESS=198.51.100.1\n";
        assert_eq!(parse_networkd_lease(text), vec![ip("198.51.100.1")]);
    }

    fn addr_msg(family: u8, prefix: u8, scope: u8, index: u32, ty: u16, addr: &[u8]) -> Vec<u8> {
        let mut b = vec![family, prefix, 0, scope];
        b.extend_from_slice(&index.to_ne_bytes());
        let len = 4 + addr.len() as u16;
        b.extend_from_slice(&len.to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(addr);
        b
    }

    #[test]
    fn interface_addresses_to_subnets() {
        let v4 = addr_msg(libc::AF_INET as u8, 24, 0, 2, libc::IFA_LOCAL, &[198, 51, 100, 20]);
        assert_eq!(parse_ifaddr(&v4, Some(9)), Some((ip("198.51.100.0"), 24)));
        assert_eq!(parse_ifaddr(&v4, Some(2)), None, "the TUN is not a local subnet");
        let lo = addr_msg(libc::AF_INET as u8, 8, 254, 1, libc::IFA_LOCAL, &[127, 0, 0, 1]);
        assert_eq!(parse_ifaddr(&lo, None), None);
        let mut a6 = [0u8; 16];
        a6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a6[15] = 7;
        let v6 = addr_msg(libc::AF_INET6 as u8, 64, 0, 2, libc::IFA_ADDRESS, &a6);
        assert_eq!(parse_ifaddr(&v6, None), Some((ip("2001:db8::"), 64)));
        assert_eq!(parse_ifaddr(&v6[..5], None), None, "truncated");
    }

    #[test]
    fn default_route_gateway() {
        let mut b = vec![libc::AF_INET as u8, 0, 0, 0, libc::RT_TABLE_MAIN, 4, 0, libc::RTN_UNICAST, 0, 0, 0, 0];
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&libc::RTA_GATEWAY.to_ne_bytes());
        b.extend_from_slice(&[198, 51, 100, 1]);
        assert_eq!(parse_default_route(&b), Some(ip("198.51.100.1")));
        let mut not_default = b.clone();
        not_default[1] = 24;
        assert_eq!(parse_default_route(&not_default), None);
        let mut other_table = b.clone();
        other_table[4] = 100;
        assert_eq!(parse_default_route(&other_table), None);
    }
}
