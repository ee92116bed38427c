//! Host plumbing of the user-space ESP datapath. The kernels hostsec runs on have no ESP (`CONFIG_INET_ESP` off), so
//! the datapath lives in this process:
//!
//! - outbound: policy routing sends traffic for protected peers into a TUN device ([`tun`]); the daemon reads it,
//!   encrypts it and sends whole ESP packets on marked raw sockets ([`rawsock`]), whose mark makes them take the main
//!   table instead of looping back into the TUN ([`routing`]);
//! - inbound: a raw `IPPROTO_ESP` socket receives ESP whole; the daemon decrypts it and writes the inner packet to
//!   the TUN, so that the kernel delivers it as if it had arrived on `hs0`;
//! - rule actions (require, block, default block) are enforced by the daemon's own nftables table ([`firewall`]);
//! - whatever a previous run left after `kill -9` is removed at start, and what this run added at exit
//!   ([`restore`]).
//!
//! Every name and number the plumbing puts on the host is a constant of this file, so that `restore` finds exactly
//! what an earlier run added.

pub mod facts;
pub mod firewall;
mod netlink;
pub mod rawsock;
pub mod restore;
pub mod routing;
pub mod tun;
pub mod watch;

pub use firewall::{Counter, Firewall, FirewallCounters, FirewallPlan, FlowAction, FlowRule};
pub use rawsock::{rebuild_ipv6, EspSockets, RebuildError};
pub use restore::{restore_leftovers, HostState, Leftovers};
pub use routing::{
    address_set_prefixes, interval_to_prefixes, strict_rp_filter_interfaces, RouteKind, RouteSpec, Routing,
};
pub use tun::Tun;

use std::os::fd::AsRawFd;

/// Firewall mark of the daemon's own sockets ("HS"): their packets skip the TUN route table and are recognised by
/// the nftables rules.
pub const MARK: u32 = 0x4853;
/// The route table that sends protected traffic into the TUN.
pub const ROUTE_TABLE: u32 = 4853;
/// Preference of the `not fwmark MARK lookup ROUTE_TABLE` rule (IPv4 and IPv6): before `main` (32766), after
/// `local` (0), so that local delivery is never diverted.
pub const RULE_PREF: u32 = 4853;
/// Default name of the TUN device.
pub const TUN_NAME: &str = "hs0";
/// Default TUN MTU: 1500 less the worst ESP transport overhead hostsec negotiates (AES-CBC: 8 header + 16 IV
/// + 15 padding + 2 trailer + 16 ICV = 57 bytes), rounded down, so that the outer packet fits a 1500-byte link.
pub const TUN_MTU: u32 = 1400;
/// Family of the daemon's nftables table.
pub const NFT_FAMILY: &str = "inet";
/// Name of the daemon's nftables table.
pub const NFT_TABLE: &str = "hostsec";
/// UDP ports of IKE (plain and NAT-T), which always pass the firewall except for `block` peers.
pub const IKE_PORTS: [u16; 2] = [500, 4500];

/// What the host plumbing needs to know from the daemon's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Name of the TUN device (at most 15 bytes: letters, digits, `_`, `-`, `.`).
    pub tun_name: String,
    /// MTU of the TUN device.
    pub mtu: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config { tun_name: TUN_NAME.to_string(), mtu: TUN_MTU }
    }
}

/// Checks an interface name before it goes into an ioctl, a netlink message or nftables text (where a quote or a
/// newline would change the ruleset's meaning).
pub fn check_ifname(name: &str) -> std::io::Result<()> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("interface name '{name}' must be 1 to 15 letters, digits, '_', '-' or '.'"),
        ))
    }
}

/// Sets `SO_MARK` on a socket (the IKE sockets need it too: unmarked, IKE to a protected peer would be routed into
/// the TUN).
pub fn set_mark(sock: &impl AsRawFd, mark: u32) -> std::io::Result<()> {
    setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MARK, mark as libc::c_int)
}

/// `setsockopt` with an `int` value.
pub(crate) fn setsockopt_int(
    fd: libc::c_int,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: the option value is a live local int whose size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs a command with `input` on its standard input; `Err` carries its standard error.
pub(crate) fn run_with_input(program: &str, args: &[&str], input: &str) -> std::io::Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
    // Feed stdin from another thread while this one collects the output, so that neither pipe can fill up and
    // block the other side whatever the sizes.
    let stdin = child.stdin.take();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.map_or(Ok(()), |mut s| s.write_all(input.as_bytes())));
    let out = child.wait_with_output()?;
    let write = writer.join().unwrap_or_else(|_| Err(std::io::Error::other("stdin writer panicked")));
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if let Err(e) = write {
        return Err(std::io::Error::other(format!("cannot write to {program}: {e}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
