//! The TUN device: the kernel routes protected traffic into it (the daemon reads plaintext packets to encrypt) and
//! the daemon writes decrypted packets into it (the kernel delivers them as if they had arrived on it).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;
use tracing::{debug, warn};

/// `struct ifreq` as the TUN and interface ioctls use it: a name and a union whose first member is what we set.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    /// `ifr_flags` (short), `ifr_mtu` (int), ...; padded to the union's size.
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> IfReq {
        let mut r = IfReq { name: [0; libc::IFNAMSIZ], data: [0; 24] };
        for (d, s) in r.name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        r
    }
}

/// A queue of the TUN device (`IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE`). Packets are whole IPv4 or IPv6 packets,
/// without any prefix. The device exists as long as one queue of it is open: the kernel removes a
/// non-persistent TUN when its last descriptor closes, so a crashed daemon leaves no device behind.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
}

fn open_queue(name: &str) -> io::Result<OwnedFd> {
    // SAFETY: opening a device node with a NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("cannot open /dev/net/tun: {e}")));
    }
    // SAFETY: `fd` is fresh and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq::new(name);
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE) as libc::c_short;
    req.data[..2].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `req` is laid out as, live for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("cannot create TUN device '{name}': {e}")));
    }
    Ok(fd)
}

/// An `AF_INET` datagram socket: the handle interface ioctls need (in the calling thread's namespace).
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation; the result is checked.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `s` is fresh and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(s) })
}

fn write_sysctl(path: &str, value: &str) {
    match std::fs::write(path, value) {
        Ok(()) => {}
        // No IPv6 on this host: nothing to configure.
        Err(e) if e.kind() == io::ErrorKind::NotFound => debug!("{path}: not present"),
        Err(e) => warn!("cannot set {path} to {value}: {e}"),
    }
}

/// Packets the kernel may queue for the datapath thread in the TUN device.
const TUN_TX_QUEUE: u32 = 4096;

impl Tun {
    /// Creates the TUN device `name` (fails if a device of that name exists and is not a multi-queue TUN of
    /// ours), configures it and brings it up with `mtu`:
    /// - no IPv6 link-local address nor duplicate address detection (`addr_gen_mode` 1, `accept_dad` 0) and no
    ///   router advertisements: the device carries other hosts' packets only, and addresses on it would make it
    ///   send ND and MLD of its own;
    /// - no reverse path filter (packets we write into it come from peers that the main table routes elsewhere).
    pub fn create(name: &str, mtu: u32) -> io::Result<Tun> {
        super::check_ifname(name)?;
        let fd = open_queue(name)?;
        // The sysctl directories appear when the device registers; they must be set before it is up, or the
        // kernel will already have generated a link-local address.
        write_sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/addr_gen_mode"), "1");
        write_sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/accept_dad"), "0");
        write_sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/accept_ra"), "0");
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"), "0");
        let tun = Tun { fd, name: name.to_string() };
        let sock = ioctl_socket()?;
        let mut req = IfReq::new(name);
        req.data[..4].copy_from_slice(&(mtu as libc::c_int).to_ne_bytes());
        // SAFETY: SIOCSIFMTU reads a `struct ifreq` with `ifr_mtu` set; `req` is live for the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &mut req as *mut IfReq) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("cannot set MTU {mtu} on {name}: {e}")));
        }
        // The kernel drops what it routes into a TUN whose queue is full; 500 packets (the default) overflow at
        // the first burst of a fast TCP sender while the datapath thread is sealing, which TCP takes as loss.
        let mut req = IfReq::new(name);
        req.data[..4].copy_from_slice(&(TUN_TX_QUEUE as libc::c_int).to_ne_bytes());
        // SAFETY: SIOCSIFTXQLEN reads `ifr_qlen` from the live `req`.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFTXQLEN, &mut req as *mut IfReq) } < 0 {
            warn!("cannot set the queue length of {name}: {}", io::Error::last_os_error());
        }
        let mut req = IfReq::new(name);
        // SAFETY: SIOCGIFFLAGS writes `ifr_flags` into the live `req`.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req as *mut IfReq) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = i16::from_ne_bytes([req.data[0], req.data[1]]) | libc::IFF_UP as i16;
        req.data[..2].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: SIOCSIFFLAGS reads `ifr_flags` from the live `req`.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req as *mut IfReq) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("cannot bring {name} up: {e}")));
        }
        tracing::info!("TUN device {name} up, MTU {mtu}");
        Ok(tun)
    }

    /// Opens one more queue of the same device (for one more datapath thread: the kernel spreads the packets it
    /// routes into the device over the queues by flow). Call it from a thread in the device's network namespace:
    /// `/dev/net/tun` attaches by name in the namespace of the thread that opens it.
    pub fn queue(&self) -> io::Result<Tun> {
        Ok(Tun { fd: open_queue(&self.name)?, name: self.name.clone() })
    }

    /// Another descriptor of the same queue.
    pub fn try_clone(&self) -> io::Result<Tun> {
        Ok(Tun { fd: self.fd.try_clone()?, name: self.name.clone() })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw descriptor (for poll/epoll).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads one packet (blocking). A packet longer than `buf` is truncated to it, so `buf` should hold the MTU.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is live and writable for its length during the call.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Waits up to `timeout` for a packet and reads it; `Ok(None)` if none came (lets a thread check for
    /// shutdown).
    pub fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(None) } else { Err(e) };
        }
        if n == 0 {
            return Ok(None);
        }
        self.read(buf).map(Some)
    }

    /// Writes one whole packet; the kernel takes it as received on the device.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `packet` is live and readable for its length during the call.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
