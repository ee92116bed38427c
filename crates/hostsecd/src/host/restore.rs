//! Leaving the host as it was. At start, [`restore_leftovers`] removes whatever a previous hostsecd left after
//! `kill -9` (everything it adds has a fixed name or number, see `mod.rs`); at a clean exit, [`HostState`] removes
//! exactly what this run added, and nothing else.

use super::firewall::{self, Firewall, FirewallPlan};
use super::netlink::{self, Netlink};
use super::routing::{self, RouteSpec, Routing};
use super::{Config, NFT_FAMILY, NFT_TABLE, ROUTE_TABLE, RULE_PREF};
use std::io;
use tracing::{info, warn};

/// What [`restore_leftovers`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leftovers {
    /// `ip rule`s with our preference and table, both families.
    pub rules: usize,
    /// Routes of our table, both families.
    pub routes: usize,
    /// Whether the nftables table existed.
    pub nft_table: bool,
    /// Whether a TUN device of our name existed (only a persistent one survives its process).
    pub link: bool,
}

impl Leftovers {
    /// Whether anything was removed.
    pub fn any(&self) -> bool {
        self.rules > 0 || self.routes > 0 || self.nft_table || self.link
    }
}

/// Removes what a previous run may have left: our `ip rule`s (preference and table 4853, any selector, IPv4 and
/// IPv6), every route of table 4853, the nftables table `inet hostsec`, and a TUN device named `config.tun_name`
/// (a device of that name that is not a TUN is left alone, with a warning). Idempotent: on a clean host it removes
/// nothing. Logs what it removed.
pub fn restore_leftovers(config: &Config) -> io::Result<Leftovers> {
    super::check_ifname(&config.tun_name)?;
    let mut nl = Netlink::open()?;
    let mut left = Leftovers { rules: routing::delete_our_rules(&mut nl)?, ..Default::default() };
    let routes = routing::dump_table(&mut nl)?;
    let msgs = routes.iter().map(|r| routing::route_del_msg(r.prefix, r.len, r.rtype)).collect();
    for (r, res) in routes.iter().zip(nl.execute(msgs)?) {
        match res {
            Ok(()) => left.routes += 1,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot delete {}/{} from table {ROUTE_TABLE}: {e}", r.prefix, r.len),
                ))
            }
        }
    }
    left.nft_table = firewall::delete_table()?;
    match netlink::link_by_name(&mut nl, &config.tun_name)? {
        Some((index, Some(kind))) if kind == "tun" => {
            netlink::delete_link(&mut nl, index)?;
            left.link = true;
        }
        Some((_, kind)) => warn!(
            "interface {} exists and is not a TUN device ({}): left alone, the TUN cannot be created",
            config.tun_name,
            kind.as_deref().unwrap_or("no kind")
        ),
        None => {}
    }
    if left.any() {
        info!(
            "removed what a previous hostsecd left: {} ip rule(s) pref {RULE_PREF}, {} route(s) of table {ROUTE_TABLE}{}{}",
            left.rules,
            left.routes,
            if left.nft_table { format!(", nftables table {NFT_FAMILY} {NFT_TABLE}") } else { String::new() },
            if left.link { format!(", link {}", config.tun_name) } else { String::new() },
        );
    }
    Ok(left)
}

/// What this run added to the host, removed in reverse order by [`HostState::teardown`] or on drop. The TUN is not
/// in here: the kernel removes it when the last of its descriptors (owned by the datapath threads) closes.
#[derive(Default)]
pub struct HostState {
    routing: Option<Routing>,
    firewall: Option<Firewall>,
}

impl HostState {
    /// Nothing added yet.
    pub fn new() -> HostState {
        HostState::default()
    }

    /// Installs the policy routing rules (see [`Routing::install`]) and the table's routes.
    pub fn install_routing(&mut self, config: &Config, routes: &[RouteSpec]) -> io::Result<()> {
        let r = self.routing.insert(Routing::install(config)?);
        r.set_routes(routes)?;
        Ok(())
    }

    /// The installed routing, to change its routes.
    pub fn routing(&mut self) -> Option<&mut Routing> {
        self.routing.as_mut()
    }

    /// Installs or replaces the nftables table.
    pub fn apply_firewall(&mut self, plan: &FirewallPlan) -> io::Result<()> {
        match &mut self.firewall {
            Some(f) => f.update(plan),
            None => {
                self.firewall = Some(Firewall::apply(plan)?);
                Ok(())
            }
        }
    }

    /// The installed firewall, to read its counters.
    pub fn firewall(&self) -> Option<&Firewall> {
        self.firewall.as_ref()
    }

    /// Removes what this run added: the routes and rules first (so that no traffic is routed into a TUN that is
    /// going away), then the firewall table. Idempotent.
    pub fn teardown(&mut self) {
        if let Some(mut r) = self.routing.take() {
            r.remove();
        }
        if let Some(mut f) = self.firewall.take() {
            f.remove();
        }
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        self.teardown();
    }
}
