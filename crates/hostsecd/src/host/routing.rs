//! Policy routing: a rule `not fwmark MARK lookup ROUTE_TABLE` (IPv4 and IPv6) sends everything the daemon's own
//! marked sockets do not send through a table that holds a route into the TUN for each protected remote prefix,
//! and `throw` routes for the prefixes inside them that must not go to the TUN (a throw ends the lookup in this
//! table, so the main table decides: longest prefix wins).
//!
//! It speaks rtnetlink directly (see `netlink.rs`): a table of thousands of prefixes is replaced with a few
//! batched sends, the kernel's own dump is the truth that `set_routes` compares against, and errors come back
//! as errno per route rather than as text to parse.

use super::netlink::{self, Msg, Netlink};
use super::{Config, MARK, ROUTE_TABLE, RULE_PREF};
use hostsec_proto::policy::address::{from_u128, to_u128};
use hostsec_proto::policy::AddressSet;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use tracing::{debug, info, warn};

/// What a route of the table does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Into the TUN, with this preferred source address when known (our address towards the peers).
    Tun {
        /// The `src` of the route.
        src: Option<IpAddr>,
    },
    /// Leave this table: the main table routes these destinations (bypass hosts inside a protected subnet).
    Throw,
}

/// One route of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    /// Network address (host bits are cleared when installed).
    pub prefix: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// What the route does.
    pub kind: RouteKind,
}

impl RouteSpec {
    /// A route into the TUN.
    pub fn tun(prefix: IpAddr, len: u8, src: Option<IpAddr>) -> RouteSpec {
        RouteSpec { prefix, len, kind: RouteKind::Tun { src } }
    }

    /// A throw route.
    pub fn throw(prefix: IpAddr, len: u8) -> RouteSpec {
        RouteSpec { prefix, len, kind: RouteKind::Throw }
    }

    fn key(&self) -> (IpAddr, u8) {
        (mask_prefix(self.prefix, self.len), self.len)
    }
}

/// Clears the host bits of `addr` beyond `len`.
pub(crate) fn mask_prefix(addr: IpAddr, len: u8) -> IpAddr {
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let len = u32::from(len).min(bits);
    let host = bits - len;
    let m = if host >= 128 { u128::MAX } else { (1u128 << host) - 1 };
    from_u128(to_u128(addr) & !m, addr.is_ipv4())
}

/// The minimal list of CIDR prefixes whose union is exactly the inclusive interval `lo..=hi` of one family
/// (IPv4 addresses in the low 32 bits), in ascending order. Empty if `lo > hi`; `hi` is clamped to the family.
pub fn interval_to_prefixes(lo: u128, hi: u128, ipv4: bool) -> Vec<(IpAddr, u8)> {
    let bits: u32 = if ipv4 { 32 } else { 128 };
    let hi = if ipv4 { hi.min(u128::from(u32::MAX)) } else { hi };
    let mut out = Vec::new();
    if lo > hi {
        return out;
    }
    let mut cur = lo;
    loop {
        // The largest block that starts at `cur` (alignment) and does not pass `hi` (size): greedy from the left
        // is optimal for an interval.
        let align = if cur == 0 { bits } else { cur.trailing_zeros().min(bits) };
        let span = hi - cur; // block size minus one that still fits
        let fit = if span == u128::MAX { 128 } else { 127 - (span + 1).leading_zeros() };
        let k = align.min(fit).min(bits);
        out.push((from_u128(cur, ipv4), (bits - k) as u8));
        if k >= 128 {
            break;
        }
        let last = cur + ((1u128 << k) - 1);
        if last >= hi {
            break;
        }
        cur = last + 1;
    }
    out
}

/// The CIDR prefixes of an address set (both families; `any` is `0.0.0.0/0` and `::/0`).
pub fn address_set_prefixes(set: &AddressSet) -> Vec<(IpAddr, u8)> {
    if set.is_any() {
        return vec![(IpAddr::from([0u8; 4]), 0), (IpAddr::from([0u8; 16]), 0)];
    }
    let mut out = Vec::new();
    // The effective intervals, already merged, include what the set's keywords resolved to.
    for ipv4 in [true, false] {
        for &(lo, hi) in set.intervals(ipv4) {
            out.extend(interval_to_prefixes(lo, hi, ipv4));
        }
    }
    out
}

fn family(ipv4: bool) -> u8 {
    if ipv4 {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    }
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn addr_from(data: &[u8], ipv4: bool) -> Option<IpAddr> {
    if ipv4 {
        Some(IpAddr::from(<[u8; 4]>::try_from(data.get(..4)?).ok()?))
    } else {
        Some(IpAddr::from(<[u8; 16]>::try_from(data.get(..16)?).ok()?))
    }
}

/// The fixed header of a rule message (`struct fib_rule_hdr`).
fn rule_hdr(ipv4: bool) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = family(ipv4);
    h[7] = netlink::FR_ACT_TO_TBL;
    h[8..12].copy_from_slice(&netlink::FIB_RULE_INVERT.to_ne_bytes());
    h
}

/// Our rule, for one family: `not fwmark MARK/0xffffffff lookup ROUTE_TABLE pref RULE_PREF`.
fn rule_msg(ty: u16, flags: u16, ipv4: bool) -> Msg {
    Msg::new(ty, flags, &rule_hdr(ipv4))
        .attr_u32(netlink::FRA_PRIORITY, RULE_PREF)
        .attr_u32(netlink::FRA_TABLE, ROUTE_TABLE)
        .attr_u32(netlink::FRA_FWMARK, MARK)
        .attr_u32(netlink::FRA_FWMASK, u32::MAX)
}

/// A rule of the kernel, as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpedRule {
    /// IPv4 or IPv6.
    pub ipv4: bool,
    /// Preference.
    pub pref: u32,
    /// Table looked up.
    pub table: u32,
    /// Firewall mark selector.
    pub fwmark: Option<u32>,
    /// Its mask.
    pub fwmask: Option<u32>,
    /// Whether the selector is negated (`not`).
    pub invert: bool,
    /// The message body, to delete exactly this rule.
    body: Vec<u8>,
}

impl DumpedRule {
    fn is_ours(&self) -> bool {
        self.pref == RULE_PREF
            && self.table == ROUTE_TABLE
            && self.invert
            && self.fwmark == Some(MARK)
            && self.fwmask.unwrap_or(u32::MAX) == u32::MAX
    }
}

/// Every rule of one family.
pub(crate) fn dump_rules(nl: &mut Netlink, ipv4: bool) -> io::Result<Vec<DumpedRule>> {
    let mut hdr = [0u8; 12];
    hdr[0] = family(ipv4);
    let replies = match nl.dump(Msg::new(libc::RTM_GETRULE, 0, &hdr)) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for r in replies.into_iter().filter(|r| r.ty == libc::RTM_NEWRULE) {
        if r.body.len() < 12 {
            continue;
        }
        let flags = u32::from_ne_bytes(r.body[8..12].try_into().unwrap_or_default());
        let mut rule = DumpedRule {
            ipv4,
            pref: 0,
            table: u32::from(r.body[4]),
            fwmark: None,
            fwmask: None,
            invert: flags & netlink::FIB_RULE_INVERT != 0,
            body: Vec::new(),
        };
        for (ty, data) in netlink::attrs(&r.body, 12) {
            match ty {
                netlink::FRA_PRIORITY => rule.pref = netlink::u32_of(data).unwrap_or(0),
                netlink::FRA_TABLE => rule.table = netlink::u32_of(data).unwrap_or(rule.table),
                netlink::FRA_FWMARK => rule.fwmark = netlink::u32_of(data),
                netlink::FRA_FWMASK => rule.fwmask = netlink::u32_of(data),
                _ => {}
            }
        }
        rule.body = r.body;
        out.push(rule);
    }
    Ok(out)
}

/// Deletes rules with preference `RULE_PREF` that look up `ROUTE_TABLE` (ours, whatever their selector), both
/// families; returns how many.
pub(crate) fn delete_our_rules(nl: &mut Netlink) -> io::Result<usize> {
    let mut msgs = Vec::new();
    for ipv4 in [true, false] {
        for r in dump_rules(nl, ipv4)? {
            if r.pref == RULE_PREF && r.table == ROUTE_TABLE {
                // Echoing the dumped message back as a delete names exactly that rule (the kernel matches every
                // attribute given).
                let mut m = Msg::new(libc::RTM_DELRULE, 0, &r.body[..12]);
                for (ty, data) in netlink::attrs(&r.body, 12) {
                    m = m.attr(ty, data);
                }
                msgs.push(m);
            }
        }
    }
    let n = msgs.len();
    for r in nl.execute(msgs)? {
        match r {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("cannot delete ip rule pref {RULE_PREF}: {e}"))),
        }
    }
    Ok(n)
}

/// A route of our table, as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpedRoute {
    /// Destination.
    pub prefix: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// `RTN_UNICAST`, `RTN_THROW`, ...
    pub rtype: u8,
    /// Output interface.
    pub oif: Option<u32>,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
}

/// Every route of `ROUTE_TABLE`, both families.
pub(crate) fn dump_table(nl: &mut Netlink) -> io::Result<Vec<DumpedRoute>> {
    let mut out = Vec::new();
    for ipv4 in [true, false] {
        let mut hdr = [0u8; 12];
        hdr[0] = family(ipv4);
        let replies = match nl.dump(Msg::new(libc::RTM_GETROUTE, 0, &hdr)) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => continue,
            Err(e) => return Err(e),
        };
        for r in replies.into_iter().filter(|r| r.ty == libc::RTM_NEWROUTE) {
            if r.body.len() < 12 {
                continue;
            }
            let mut table = u32::from(r.body[4]);
            let mut route = DumpedRoute {
                prefix: if ipv4 { IpAddr::from([0u8; 4]) } else { IpAddr::from([0u8; 16]) },
                len: r.body[1],
                rtype: r.body[7],
                oif: None,
                prefsrc: None,
            };
            for (ty, data) in netlink::attrs(&r.body, 12) {
                match ty {
                    libc::RTA_TABLE => table = netlink::u32_of(data).unwrap_or(table),
                    libc::RTA_DST => route.prefix = addr_from(data, ipv4).unwrap_or(route.prefix),
                    libc::RTA_OIF => route.oif = netlink::u32_of(data),
                    libc::RTA_PREFSRC => route.prefsrc = addr_from(data, ipv4),
                    _ => {}
                }
            }
            if table == ROUTE_TABLE {
                out.push(route);
            }
        }
    }
    Ok(out)
}

/// A request that deletes the route `prefix/len` of our table (any scope, protocol and next hop).
pub(crate) fn route_del_msg(prefix: IpAddr, len: u8, rtype: u8) -> Msg {
    let mut rt = [0u8; 12];
    rt[0] = family(prefix.is_ipv4());
    rt[1] = len;
    rt[6] = libc::RT_SCOPE_NOWHERE;
    rt[7] = rtype;
    Msg::new(libc::RTM_DELROUTE, 0, &rt).attr_u32(libc::RTA_TABLE, ROUTE_TABLE).attr(libc::RTA_DST, &addr_bytes(prefix))
}

fn route_add_msg(r: &RouteSpec, tun_index: u32) -> Msg {
    let (prefix, len) = r.key();
    let mut rt = [0u8; 12];
    rt[0] = family(prefix.is_ipv4());
    rt[1] = len;
    rt[5] = netlink::RTPROT_STATIC;
    rt[6] = match r.kind {
        RouteKind::Tun { .. } => netlink::RT_SCOPE_LINK,
        RouteKind::Throw => netlink::RT_SCOPE_UNIVERSE,
    };
    rt[7] = match r.kind {
        RouteKind::Tun { .. } => libc::RTN_UNICAST,
        RouteKind::Throw => libc::RTN_THROW,
    };
    // REPLACE changes a route whose kind or source changed in place, so that its destination is never unrouted.
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
    let mut m = Msg::new(libc::RTM_NEWROUTE, flags, &rt)
        .attr_u32(libc::RTA_TABLE, ROUTE_TABLE)
        .attr(libc::RTA_DST, &addr_bytes(prefix));
    if let RouteKind::Tun { src } = r.kind {
        m = m.attr_u32(libc::RTA_OIF, tun_index);
        if let Some(src) = src.filter(|s| s.is_ipv4() == prefix.is_ipv4()) {
            m = m.attr(libc::RTA_PREFSRC, &addr_bytes(src));
        }
    }
    m
}

/// Whether a dumped route is exactly what `want` asks for.
fn same(d: &DumpedRoute, want: &RouteSpec, tun_index: u32) -> bool {
    match want.kind {
        RouteKind::Throw => d.rtype == libc::RTN_THROW,
        RouteKind::Tun { src } => {
            d.rtype == libc::RTN_UNICAST
                && d.oif == Some(tun_index)
                && d.prefsrc == src.filter(|s| s.is_ipv4() == want.prefix.is_ipv4())
        }
    }
}

/// The index of an interface in the calling thread's network namespace.
pub(crate) fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string that lives for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no interface '{name}'")));
    }
    Ok(i)
}

/// The interfaces (other than `tun` and `lo`) of the calling thread's namespace on which IPv4 reverse path
/// filtering is strict: the kernel uses the higher of `all` and the interface's own `rp_filter`. Strict filtering
/// checks that the route back to a packet's source leaves by the interface it came in on, and for a protected
/// peer that route is the TUN, so ESP from it would be dropped before the raw socket sees it; loose mode (2) or
/// none (0) is needed.
pub fn strict_rp_filter_interfaces(tun: &str) -> Vec<String> {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"))
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    let all = read("all");
    let Ok(dir) = std::fs::read_dir("/proc/sys/net/ipv4/conf") else { return Vec::new() };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !["all", "default", "lo", tun].contains(&n.as_str()))
        .filter(|n| all.max(read(n)) == 1)
        .collect();
    out.sort();
    out
}

/// The policy routing this run installed: the rules it added and the routes it manages.
pub struct Routing {
    nl: Netlink,
    tun_name: String,
    /// Families whose rule this run added (and so removes).
    rules_added: Vec<bool>,
    /// What the table holds, as far as this run knows (it put it there).
    routes: Vec<RouteSpec>,
    removed: bool,
}

impl Routing {
    /// Adds the rule `not fwmark 0x4853 lookup 4853 pref 4853` for IPv4 and IPv6 (each one only if it is not
    /// there yet; a host without IPv6 gets the IPv4 rule alone). Routes are added by [`Routing::set_routes`].
    pub fn install(config: &Config) -> io::Result<Routing> {
        super::check_ifname(&config.tun_name)?;
        let mut nl = Netlink::open()?;
        let mut rules_added = Vec::new();
        for ipv4 in [true, false] {
            if dump_rules(&mut nl, ipv4)?.iter().any(DumpedRule::is_ours) {
                debug!("ip rule pref {RULE_PREF} ({}) already there", if ipv4 { "IPv4" } else { "IPv6" });
                continue;
            }
            let res =
                nl.execute(vec![rule_msg(libc::RTM_NEWRULE, (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16, ipv4)])?;
            match res.into_iter().next().unwrap_or(Ok(())) {
                Ok(()) => rules_added.push(ipv4),
                Err(e) if !ipv4 && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                    warn!("IPv6 is not available: no IPv6 policy rule");
                }
                Err(e) => {
                    let mut r = Routing {
                        nl,
                        tun_name: config.tun_name.clone(),
                        rules_added,
                        routes: Vec::new(),
                        removed: false,
                    };
                    r.remove_rules();
                    return Err(io::Error::new(e.kind(), format!("cannot add ip rule pref {RULE_PREF}: {e}")));
                }
            }
        }
        info!("policy routing: ip rule not fwmark {MARK:#x} lookup {ROUTE_TABLE} pref {RULE_PREF}");
        let strict = strict_rp_filter_interfaces(&config.tun_name);
        if !strict.is_empty() {
            warn!(
                "strict reverse path filtering (rp_filter=1) on {}: IPv4 packets from protected peers (ESP included) \
                 will be dropped, because table {ROUTE_TABLE} routes those peers into {}; use loose mode \
                 (sysctl net.ipv4.conf.all.rp_filter=2 and the same for each interface)",
                strict.join(", "),
                config.tun_name
            );
        }
        Ok(Routing { nl, tun_name: config.tun_name.clone(), rules_added, routes: Vec::new(), removed: false })
    }

    /// Makes the table's content exactly `routes` (duplicates by prefix: the last wins): adds what is missing,
    /// replaces what differs, deletes what is extra, comparing with the kernel's own dump (so it is idempotent
    /// and repairs changes made behind our back). New routes go in before old ones go out, so that no protected
    /// destination is ever unrouted during the change. Returns (added or replaced, deleted).
    pub fn set_routes(&mut self, routes: &[RouteSpec]) -> io::Result<(usize, usize)> {
        let mut want: HashMap<(IpAddr, u8), RouteSpec> = HashMap::with_capacity(routes.len());
        for r in routes {
            let max = if r.prefix.is_ipv4() { 32 } else { 128 };
            if r.len > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("prefix length /{} of {}", r.len, r.prefix),
                ));
            }
            want.insert(r.key(), *r);
        }
        let needs_tun = want.values().any(|r| matches!(r.kind, RouteKind::Tun { .. }));
        let tun_index = if needs_tun { ifindex(&self.tun_name)? } else { 0 };
        let current = dump_table(&mut self.nl)?;
        let mut have: HashMap<(IpAddr, u8), Vec<&DumpedRoute>> = HashMap::with_capacity(current.len());
        for d in &current {
            have.entry((d.prefix, d.len)).or_default().push(d);
        }
        let mut adds = Vec::new();
        for (key, r) in &want {
            match have.get(key).map(Vec::as_slice) {
                Some([d]) if same(d, r, tun_index) => {}
                _ => adds.push(*r),
            }
        }
        // Extra routes: prefixes not wanted, and duplicates of a wanted prefix beyond the one REPLACE rewrites.
        let mut dels = Vec::new();
        for (key, ds) in &have {
            let keep = usize::from(want.contains_key(key));
            for d in ds.iter().skip(keep) {
                dels.push((d.prefix, d.len, d.rtype));
            }
        }
        adds.sort_by_key(|r| (r.prefix.is_ipv6(), r.prefix, r.len));
        let add_msgs = adds.iter().map(|r| route_add_msg(r, tun_index)).collect();
        let mut failed = Vec::new();
        for (r, res) in adds.iter().zip(self.nl.execute(add_msgs)?) {
            if let Err(e) = res {
                failed.push(format!("{}/{}: {e}", r.prefix, r.len));
            }
        }
        let del_msgs = dels.iter().map(|(p, l, t)| route_del_msg(*p, *l, *t)).collect();
        for ((p, l, _), res) in dels.iter().zip(self.nl.execute(del_msgs)?) {
            match res {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => failed.push(format!("delete {p}/{l}: {e}")),
            }
        }
        self.routes = want.into_values().collect();
        debug!(
            "table {ROUTE_TABLE}: {} routes, {} added or changed, {} deleted",
            self.routes.len(),
            adds.len(),
            dels.len()
        );
        if !failed.is_empty() {
            let n = failed.len();
            failed.truncate(5);
            return Err(io::Error::other(format!(
                "table {ROUTE_TABLE}: {n} route changes failed: {}",
                failed.join("; ")
            )));
        }
        Ok((adds.len(), dels.len()))
    }

    /// The routes this run put in the table.
    pub fn routes(&self) -> &[RouteSpec] {
        &self.routes
    }

    fn remove_rules(&mut self) {
        for ipv4 in std::mem::take(&mut self.rules_added) {
            let res = self.nl.execute(vec![rule_msg(libc::RTM_DELRULE, 0, ipv4)]);
            match res.map(|v| v.into_iter().next().unwrap_or(Ok(()))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Ok(Err(e)) | Err(e) => warn!("cannot delete ip rule pref {RULE_PREF}: {e}"),
            }
        }
    }

    /// Removes the rules this run added and the routes it put in the table. Idempotent; also done on drop.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        self.remove_rules();
        let routes = std::mem::take(&mut self.routes);
        let msgs = routes
            .iter()
            .map(|r| {
                let (p, l) = r.key();
                let t = if r.kind == RouteKind::Throw { libc::RTN_THROW } else { libc::RTN_UNICAST };
                route_del_msg(p, l, t)
            })
            .collect();
        match self.nl.execute(msgs) {
            Ok(res) => {
                // ESRCH: the route went with the TUN (the kernel deletes routes of a link that disappears).
                let failed =
                    res.iter().filter(|r| matches!(r, Err(e) if e.raw_os_error() != Some(libc::ESRCH))).count();
                if failed > 0 {
                    warn!("table {ROUTE_TABLE}: {failed} routes could not be deleted");
                }
            }
            Err(e) => warn!("table {ROUTE_TABLE}: cannot delete routes: {e}"),
        }
        info!("policy routing removed");
    }
}

impl Drop for Routing {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: the minimal number of aligned blocks covering exactly `lo..=hi`, by dynamic programming over
    /// every block that starts at each address.
    fn min_blocks(lo: u128, hi: u128, bits: u32) -> usize {
        let n = (hi - lo + 1) as usize;
        let mut best = vec![usize::MAX; n + 1];
        best[n] = 0;
        for i in (0..n).rev() {
            let a = lo + i as u128;
            for k in 0..=bits {
                let size = 1u128 << k;
                if a % size != 0 || a + size - 1 > hi {
                    continue;
                }
                let next = i + size as usize;
                if best[next] != usize::MAX {
                    best[i] = best[i].min(1 + best[next]);
                }
            }
        }
        best[0]
    }

    fn check(lo: u128, hi: u128, ipv4: bool) -> Vec<(IpAddr, u8)> {
        let bits: u32 = if ipv4 { 32 } else { 128 };
        let ps = interval_to_prefixes(lo, hi, ipv4);
        // Exact cover, in order, no gaps or overlaps; each prefix aligned.
        let mut next = lo;
        for (a, len) in &ps {
            assert_eq!(a.is_ipv4(), ipv4);
            let host = bits - u32::from(*len);
            let size_m1 = if host >= 128 { u128::MAX } else { (1u128 << host) - 1 };
            let start = to_u128(*a);
            assert_eq!(start, next, "gap or overlap at {a}/{len} for {lo}..={hi}");
            assert_eq!(start & size_m1, 0, "{a}/{len} not aligned");
            let end = start + size_m1;
            assert!(end <= hi, "{a}/{len} passes {hi}");
            if end == hi {
                next = hi;
                break;
            }
            next = end + 1;
        }
        assert_eq!(next, hi, "cover of {lo}..={hi} stops early: {ps:?}");
        ps
    }

    #[test]
    fn every_small_interval_is_covered_exactly_and_minimally() {
        // Every interval of an 8-bit universe (placed at the top of the IPv4 and IPv6 spaces as well as at 0, so
        // that the arithmetic near the end of the space is exercised).
        for base in [0u128, 0xffff_ff00] {
            for lo in 0u128..256 {
                for hi in lo..256 {
                    let ps = check(base + lo, base + hi, true);
                    assert_eq!(ps.len(), min_blocks(lo, hi, 8), "{lo}..={hi}: {ps:?}");
                }
            }
        }
        let top6 = u128::MAX - 255;
        for lo in (0u128..256).step_by(7) {
            for hi in lo..256 {
                let ps = check(top6 + lo, top6 + hi, false);
                assert_eq!(ps.len(), min_blocks(lo, hi, 8));
            }
        }
    }

    #[test]
    fn whole_spaces_and_edges() {
        assert_eq!(interval_to_prefixes(0, u128::from(u32::MAX), true), vec![("0.0.0.0".parse().unwrap(), 0)]);
        assert_eq!(interval_to_prefixes(0, u128::MAX, false), vec![("::".parse().unwrap(), 0)]);
        assert_eq!(
            interval_to_prefixes(u128::MAX, u128::MAX, false),
            vec![("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(), 128)]
        );
        assert!(interval_to_prefixes(5, 4, true).is_empty());
        let lo = to_u128("198.51.100.10".parse().unwrap());
        let hi = to_u128("198.51.100.20".parse().unwrap());
        let got: Vec<String> = interval_to_prefixes(lo, hi, true).iter().map(|(a, l)| format!("{a}/{l}")).collect();
        assert_eq!(got, ["198.51.100.10/31", "198.51.100.12/30", "198.51.100.16/30", "198.51.100.20/32"]);
    }

    proptest::proptest! {
        #[test]
        fn random_intervals_are_covered_exactly(a: u128, b: u128, ipv4: bool) {
            let (a, b) = if ipv4 { (a & 0xffff_ffff, b & 0xffff_ffff) } else { (a, b) };
            let (lo, hi) = (a.min(b), a.max(b));
            let ps = check(lo, hi, ipv4);
            // At most two blocks per prefix length (the known bound for an interval).
            let bits = if ipv4 { 32 } else { 128 };
            proptest::prop_assert!(ps.len() <= 2 * bits);
        }

        #[test]
        fn small_random_intervals_anywhere_are_minimal(base: u128, lo in 0u128..512, width in 0u128..512) {
            let base = base & !1023;
            let ps = check(base + lo, base + lo + width, false);
            proptest::prop_assert_eq!(ps.len(), min_blocks(lo, lo + width, 10));
        }
    }

    #[test]
    fn address_sets_become_prefixes() {
        use hostsec_proto::policy::AddressSpec;
        let set = AddressSet::from_specs(
            ["198.51.100.0/25", "198.51.100.128-198.51.100.255", "2001:db8:5::/64", "192.0.2.7"]
                .iter()
                .map(|s| AddressSpec::parse(s).unwrap())
                .collect(),
        );
        let got: Vec<String> = address_set_prefixes(&set).iter().map(|(a, l)| format!("{a}/{l}")).collect();
        assert_eq!(got, ["192.0.2.7/32", "198.51.100.0/24", "2001:db8:5::/64"]);
        assert_eq!(address_set_prefixes(&AddressSet::any()).len(), 2);
    }

    #[test]
    fn masks_host_bits() {
        assert_eq!(mask_prefix("198.51.100.77".parse().unwrap(), 24), "198.51.100.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask_prefix("2001:db8::1".parse().unwrap(), 0), "::".parse::<IpAddr>().unwrap());
    }
}
