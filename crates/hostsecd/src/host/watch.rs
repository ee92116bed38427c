//! Follows the host's network configuration for the rule keywords: a thread that listens to rtnetlink's address
//! and route notifications and polls the resolver and lease files, gathers the facts again when something moved,
//! and reports them only when they differ from the last ones (our own route changes in the TUN table wake it too,
//! and must not cause a re-resolution).

use super::facts::{gather, FactSources};
use hostsec_proto::policy::HostFacts;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How often the files are looked at (their change has no notification we can rely on inside `ip netns exec`).
const FILE_POLL: Duration = Duration::from_secs(1);
/// Quiet time after a notification before gathering, so that a burst (an address and its routes) counts once.
const SETTLE: Duration = Duration::from_millis(200);

// rtnetlink multicast groups (`linux/rtnetlink.h` RTMGRP_*), not all exported by `libc`.
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// Starts the watcher thread; it sends the new facts on `tx` whenever they change, and ends when `tx` is closed.
pub fn spawn(src: FactSources, last: HostFacts, tx: mpsc::UnboundedSender<HostFacts>) -> io::Result<()> {
    let sock = notifications()?;
    std::thread::Builder::new().name("hostsec-facts".into()).spawn(move || run(src, last, tx, sock))?;
    Ok(())
}

/// A netlink socket subscribed to address and route changes, with a receive timeout of [`FILE_POLL`].
fn notifications() -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value before the fields are set.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE;
    // SAFETY: `sa` is a valid sockaddr_nl of the size given.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let tv = libc::timeval { tv_sec: FILE_POLL.as_secs() as libc::time_t, tv_usec: 0 };
    // SAFETY: setting a socket option from a local timeval of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// What identifies a file's content cheaply: inode, size and modification time (`None` when absent).
type FileMark = Option<(u64, u64, SystemTime)>;

fn marks(files: &[PathBuf]) -> Vec<(PathBuf, FileMark)> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            let m =
                std::fs::metadata(f).ok().map(|m| (m.ino(), m.size(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            (f.clone(), m)
        })
        .collect()
}

fn run(src: FactSources, mut last: HostFacts, tx: mpsc::UnboundedSender<HostFacts>, sock: OwnedFd) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut files = marks(&src.watched_files());
    let mut files_checked = Instant::now();
    // When the first notification of a burst arrived (the facts are gathered once it has settled).
    let mut pending_since: Option<Instant> = None;
    loop {
        if tx.is_closed() {
            return;
        }
        // SAFETY: receiving into our own buffer of the length given.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 {
            pending_since.get_or_insert_with(Instant::now);
        } else if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                // The kernel dropped notifications for us: we no longer know what changed, so look at everything.
                Some(libc::ENOBUFS) => {
                    pending_since.get_or_insert_with(Instant::now);
                }
                _ => {
                    warn!("host configuration watcher stopped: {e}");
                    return;
                }
            }
        }
        let mut due = pending_since.is_some_and(|t| t.elapsed() >= SETTLE);
        if files_checked.elapsed() >= FILE_POLL {
            files_checked = Instant::now();
            let now_files = marks(&src.watched_files());
            if now_files != files {
                files = now_files;
                due = true;
            }
        }
        if !due {
            continue;
        }
        pending_since = None;
        match gather(&src) {
            Ok(facts) if facts != last => {
                debug!("host configuration changed: {facts:?}");
                last = facts.clone();
                if tx.send(facts).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => warn!("cannot read the host's network configuration: {e}"),
        }
    }
}
