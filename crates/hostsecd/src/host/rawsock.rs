//! Raw IP sockets of the ESP datapath.
//!
//! Receiving: `socket(AF_INET, SOCK_RAW, IPPROTO_ESP)` delivers every ESP packet addressed to this host, IPv4
//! header included (and its mere existence stops the kernel from answering ESP with ICMP protocol-unreachable).
//! The IPv6 equivalent strips the IPv6 header and the extension headers, so [`EspSockets::recv6`] asks for them as
//! ancillary data and rebuilds the whole packet ([`rebuild_ipv6`]).
//!
//! Sending: `IPPROTO_RAW` sockets take whole packets (header included: `IP_HDRINCL` is implied for IPv4, and Linux
//! implies `IPV6_HDRINCL` for IPv6 too). They carry [`MARK`](super::MARK), so that the policy rule lets them take
//! the main table rather than looping back into the TUN. They carry ESP and the cleartext packets the daemon lets
//! through outside the TUN.

use std::io;
use std::mem::size_of;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

const IPPROTO_ESP: u8 = 50;
/// Room reserved in front of a received IPv6 payload for the rebuilt header.
const V6_HDR: usize = 40;
/// Extension header types as the IPv6 next-header field names them.
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_DEST: u8 = 60;
/// At most this many extension headers are rebuilt (more is no legitimate ESP traffic).
const MAX_EXT: usize = 8;
/// Socket buffers of the datapath sockets: a burst of several Gbit/s must not overflow between two reads.
const SOCK_BUF: libc::c_int = 8 << 20;

/// Why an IPv6 packet could not be rebuilt from what `recvmsg` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildError {
    /// No `IPV6_PKTINFO` (destination address) in the ancillary data.
    NoDestination,
    /// No `IPV6_HOPLIMIT` in the ancillary data.
    NoHopLimit,
    /// A control message or an extension header is malformed.
    Malformed,
    /// More extension headers than we rebuild.
    TooManyHeaders,
    /// The rebuilt packet does not fit the buffer or a 16-bit payload length.
    TooLong,
}

impl std::fmt::Display for RebuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoDestination => "no IPV6_PKTINFO in the ancillary data",
            Self::NoHopLimit => "no IPV6_HOPLIMIT in the ancillary data",
            Self::Malformed => "malformed ancillary data or extension header",
            Self::TooManyHeaders => "too many extension headers",
            Self::TooLong => "packet too long for the buffer or for IPv6",
        })
    }
}

impl std::error::Error for RebuildError {}

impl From<RebuildError> for io::Error {
    fn from(e: RebuildError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// What the ancillary data of one received IPv6 packet says about its header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct V6Ancillary<'a> {
    /// Destination address (`IPV6_PKTINFO`).
    pub dst: Option<Ipv6Addr>,
    /// Receiving interface (`IPV6_PKTINFO`).
    pub ifindex: u32,
    /// Hop limit as received (`IPV6_HOPLIMIT`).
    pub hop_limit: Option<u8>,
    /// Traffic class (`IPV6_TCLASS`).
    pub tclass: Option<u8>,
    /// Traffic class and flow label, the header's first word less the version (`IPV6_FLOWINFO`).
    pub flowinfo: Option<u32>,
    /// Extension headers in packet order: (next-header value naming it, its bytes).
    pub ext: Vec<(u8, &'a [u8])>,
}

fn cmsg_align(n: usize) -> usize {
    (n + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// Parses the control buffer `recvmsg` filled (Linux `cmsghdr` layout). Unknown messages are skipped.
pub fn parse_v6_ancillary(control: &[u8]) -> Result<V6Ancillary<'_>, RebuildError> {
    let hdr = size_of::<libc::cmsghdr>();
    let mut a = V6Ancillary::default();
    let mut off = 0;
    while off + hdr <= control.len() {
        let len_bytes: [u8; size_of::<usize>()] =
            control[off..off + size_of::<usize>()].try_into().map_err(|_| RebuildError::Malformed)?;
        let len = usize::from_ne_bytes(len_bytes);
        let level =
            i32::from_ne_bytes(control[off + hdr - 8..off + hdr - 4].try_into().map_err(|_| RebuildError::Malformed)?);
        let ty = i32::from_ne_bytes(control[off + hdr - 4..off + hdr].try_into().map_err(|_| RebuildError::Malformed)?);
        if len < hdr || off + len > control.len() {
            return Err(RebuildError::Malformed);
        }
        let data = &control[off + cmsg_align(hdr)..off + len];
        if level == libc::IPPROTO_IPV6 {
            let int = || data.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            match ty {
                libc::IPV6_PKTINFO => {
                    let addr: [u8; 16] =
                        data.get(..16).and_then(|b| b.try_into().ok()).ok_or(RebuildError::Malformed)?;
                    a.dst = Some(Ipv6Addr::from(addr));
                    a.ifindex = data.get(16..20).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                }
                libc::IPV6_HOPLIMIT => {
                    a.hop_limit =
                        Some(u8::try_from(int().ok_or(RebuildError::Malformed)?).map_err(|_| RebuildError::Malformed)?)
                }
                libc::IPV6_TCLASS => {
                    a.tclass =
                        Some(u8::try_from(int().ok_or(RebuildError::Malformed)?).map_err(|_| RebuildError::Malformed)?)
                }
                libc::IPV6_FLOWINFO => {
                    let b = data.get(..4).ok_or(RebuildError::Malformed)?;
                    a.flowinfo = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x0fff_ffff);
                }
                libc::IPV6_HOPOPTS | libc::IPV6_RTHDR | libc::IPV6_DSTOPTS => {
                    // Each is the header itself: next header, length in 8-byte units less one, contents.
                    let l = data.get(1).map(|l| (usize::from(*l) + 1) * 8).ok_or(RebuildError::Malformed)?;
                    if data.len() != l {
                        return Err(RebuildError::Malformed);
                    }
                    let kind = match ty {
                        libc::IPV6_HOPOPTS => NEXTHDR_HOP,
                        libc::IPV6_RTHDR => NEXTHDR_ROUTING,
                        _ => NEXTHDR_DEST,
                    };
                    // Hop-by-hop options may only come first (RFC 8200 §4.1).
                    if kind == NEXTHDR_HOP && !a.ext.is_empty() {
                        return Err(RebuildError::Malformed);
                    }
                    if a.ext.len() == MAX_EXT {
                        return Err(RebuildError::TooManyHeaders);
                    }
                    a.ext.push((kind, data));
                }
                _ => {}
            }
        }
        off += cmsg_align(len);
    }
    Ok(a)
}

/// Rebuilds a whole IPv6 packet in `buf` from what a raw IPv6 socket returned: the payload (from the upper-layer
/// header on) lies at `buf[payload_at..payload_at + payload_len]`, `src` is the sender's address (`msg_name`),
/// `control` the ancillary data, `proto` the upper-layer protocol the socket receives (50 for ESP). The header and
/// the extension headers (in packet order, as the kernel reports them) are written in front of the payload, which
/// moves right only when there are extension headers. The next-header chain is rewritten to lead through the
/// headers we have to `proto`, so the packet is consistent even if the kernel kept a header back (a fragment
/// header of a reassembled packet, an AH). Returns the packet's length, from `buf[0]`.
pub fn rebuild_ipv6(
    src: Ipv6Addr,
    control: &[u8],
    proto: u8,
    buf: &mut [u8],
    payload_at: usize,
    payload_len: usize,
) -> Result<usize, RebuildError> {
    let a = parse_v6_ancillary(control)?;
    let dst = a.dst.ok_or(RebuildError::NoDestination)?;
    let hop_limit = a.hop_limit.ok_or(RebuildError::NoHopLimit)?;
    let ext_len: usize = a.ext.iter().map(|(_, h)| h.len()).sum();
    let plen = ext_len + payload_len;
    let total = V6_HDR + plen;
    let payload_end = payload_at.checked_add(payload_len).ok_or(RebuildError::TooLong)?;
    if plen > usize::from(u16::MAX) || total > buf.len() || payload_end > buf.len() {
        return Err(RebuildError::TooLong);
    }
    let start = V6_HDR + ext_len;
    if start != payload_at {
        buf.copy_within(payload_at..payload_end, start);
    }
    let tclass = a.tclass.map(u32::from).or(a.flowinfo.map(|f| f >> 20)).unwrap_or(0);
    let label = a.flowinfo.unwrap_or(0) & 0x000f_ffff;
    let first_word = (6u32 << 28) | (tclass << 20) | label;
    buf[0..4].copy_from_slice(&first_word.to_be_bytes());
    buf[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    buf[6] = a.ext.first().map_or(proto, |(k, _)| *k);
    buf[7] = hop_limit;
    buf[8..24].copy_from_slice(&src.octets());
    buf[24..40].copy_from_slice(&dst.octets());
    let mut off = V6_HDR;
    for (i, (_, h)) in a.ext.iter().enumerate() {
        buf[off..off + h.len()].copy_from_slice(h);
        buf[off] = a.ext.get(i + 1).map_or(proto, |(k, _)| *k);
        off += h.len();
    }
    Ok(total)
}

fn raw_socket(family: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is fresh and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_buffer(fd: &OwnedFd, force: libc::c_int, plain: libc::c_int) {
    // The FORCE variants pass net.core.rmem_max/wmem_max (we are root); fall back to what the limit allows.
    if super::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, force, SOCK_BUF).is_err() {
        let _ = super::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, plain, SOCK_BUF);
    }
}

fn set_timeout(fd: &OwnedFd, timeout: Option<Duration>) -> io::Result<()> {
    let d = timeout.unwrap_or_default();
    let tv = libc::timeval { tv_sec: d.as_secs() as libc::time_t, tv_usec: d.subsec_micros() as libc::suseconds_t };
    // SAFETY: a live timeval whose size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "IPv6 is not available on this host")
}

/// Where a whole packet goes: the destination of its header, as a socket address for `sendto`.
enum Dest {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

fn dest_of(packet: &[u8]) -> io::Result<Dest> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("not a whole IP packet: {what}"));
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let d: [u8; 4] =
                packet.get(16..20).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("IPv4 header too short"))?;
            // SAFETY: an all-zero sockaddr_in is valid.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes(d);
            Ok(Dest::V4(sa))
        }
        Some(6) => {
            let d: [u8; 16] =
                packet.get(24..40).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("IPv6 header too short"))?;
            // SAFETY: an all-zero sockaddr_in6 is valid.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = d;
            Ok(Dest::V6(sa))
        }
        _ => Err(bad("version is neither 4 nor 6")),
    }
}

/// The datapath's raw sockets: ESP in (IPv4, IPv6), whole packets out (IPv4, IPv6), the out ones marked. All
/// methods take `&self`, so one thread can receive while others send.
#[derive(Debug)]
pub struct EspSockets {
    rx4: OwnedFd,
    rx6: Option<OwnedFd>,
    tx4: OwnedFd,
    tx6: Option<OwnedFd>,
}

impl EspSockets {
    /// Opens the four sockets, the sending ones with `SO_MARK = mark`. On a host without IPv6 the IPv6 ones are
    /// absent and their methods fail with `Unsupported`.
    pub fn open(mark: u32) -> io::Result<EspSockets> {
        let rx4 = raw_socket(libc::AF_INET, libc::IPPROTO_ESP)?;
        set_buffer(&rx4, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
        let tx4 = raw_socket(libc::AF_INET, libc::IPPROTO_RAW)?;
        super::set_mark(&tx4, mark)?;
        set_buffer(&tx4, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
        let (rx6, tx6) = match raw_socket(libc::AF_INET6, libc::IPPROTO_ESP) {
            Ok(rx6) => {
                set_buffer(&rx6, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
                for opt in [
                    libc::IPV6_RECVPKTINFO,
                    libc::IPV6_RECVHOPLIMIT,
                    libc::IPV6_RECVTCLASS,
                    libc::IPV6_RECVHOPOPTS,
                    libc::IPV6_RECVRTHDR,
                    libc::IPV6_RECVDSTOPTS,
                    // Setting IPV6_FLOWINFO on a socket asks for the flow label of received packets.
                    libc::IPV6_FLOWINFO,
                ] {
                    super::setsockopt_int(rx6.as_raw_fd(), libc::IPPROTO_IPV6, opt, 1)?;
                }
                let tx6 = raw_socket(libc::AF_INET6, libc::IPPROTO_RAW)?;
                super::set_mark(&tx6, mark)?;
                // Implied by IPPROTO_RAW on Linux; said explicitly where the option exists (Linux 4.5+).
                let _ = super::setsockopt_int(tx6.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_HDRINCL, 1);
                set_buffer(&tx6, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
                (Some(rx6), Some(tx6))
            }
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => (None, None),
            Err(e) => return Err(e),
        };
        Ok(EspSockets { rx4, rx6, tx4, tx6 })
    }

    /// Makes the receive calls give up after `timeout` (`WouldBlock`), or block for ever with `None`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.rx4, timeout)?;
        if let Some(rx6) = &self.rx6 {
            set_timeout(rx6, timeout)?;
        }
        Ok(())
    }

    /// The IPv4 receive socket (for poll/epoll).
    pub fn rx4_fd(&self) -> RawFd {
        self.rx4.as_raw_fd()
    }

    /// The IPv6 receive socket, if IPv6 is available.
    pub fn rx6_fd(&self) -> Option<RawFd> {
        self.rx6.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Receives one IPv4 ESP packet, whole (header included). A packet longer than `buf` is an error
    /// (`InvalidData`), never silently cut.
    pub fn recv4(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is live and writable for its length; MSG_TRUNC makes the call return the real length.
            let n = unsafe { libc::recv(self.rx4.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
            if n >= 0 {
                let n = n as usize;
                if n > buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{n}-byte packet for a {}-byte buffer", buf.len()),
                    ));
                }
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives up to `bufs.len()` IPv4 ESP packets with one `recvmmsg`, waiting for the first only; their
    /// lengths go to `lens`. Returns how many. A truncated packet gets length 0 (the caller skips it).
    pub fn recv4_batch(&self, bufs: &mut [&mut [u8]], lens: &mut [usize]) -> io::Result<usize> {
        let n = bufs.len().min(lens.len());
        if n == 0 {
            return Ok(0);
        }
        let mut iovs: Vec<libc::iovec> =
            bufs[..n].iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
        // SAFETY: an all-zero mmsghdr is valid (no name, no control).
        let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let got = loop {
            // SAFETY: `msgs` points at `n` headers whose iovecs point into `bufs`, all live for the call.
            let r = unsafe {
                libc::recvmmsg(
                    self.rx4.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        for (len, m) in lens.iter_mut().zip(&msgs[..got]) {
            *len = if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 { 0 } else { m.msg_len as usize };
        }
        Ok(got)
    }

    /// Receives one IPv6 ESP packet and returns it whole: the header (source, destination, hop limit, traffic
    /// class, flow label as received; payload length and next-header chain recomputed) and its extension headers
    /// rebuilt in front of the ESP payload, from `buf[0]`.
    pub fn recv6(&self, buf: &mut [u8]) -> io::Result<usize> {
        let rx6 = self.rx6.as_ref().ok_or_else(unsupported)?;
        if buf.len() <= V6_HDR {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffer too small for an IPv6 packet"));
        }
        let mut control = [0u64; 1024];
        loop {
            // SAFETY: an all-zero sockaddr_in6 is valid.
            let mut name: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            let mut iov = libc::iovec { iov_base: buf[V6_HDR..].as_mut_ptr().cast(), iov_len: buf.len() - V6_HDR };
            // SAFETY: an all-zero msghdr is valid; the fields set below point at live locals.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut name as *mut libc::sockaddr_in6).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of::<[u64; 1024]>() as _;
            // SAFETY: `msg` describes the live buffers above for the duration of the call.
            let n = unsafe { libc::recvmsg(rx6.as_raw_fd(), &mut msg, 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "IPv6 packet or its headers truncated"));
            }
            // SAFETY: `control` is plain memory; viewing its first msg_controllen bytes (at most its size, as the
            // kernel never reports more than it was given) as bytes is valid.
            let ctl = unsafe {
                std::slice::from_raw_parts(
                    control.as_ptr().cast::<u8>(),
                    (msg.msg_controllen as usize).min(size_of::<[u64; 1024]>()),
                )
            };
            let src = Ipv6Addr::from(name.sin6_addr.s6_addr);
            return Ok(rebuild_ipv6(src, ctl, IPPROTO_ESP, buf, V6_HDR, n as usize)?);
        }
    }

    fn sendto(&self, packet: &[u8], dest: &Dest) -> io::Result<()> {
        let (fd, addr, alen) = match dest {
            Dest::V4(sa) => {
                (self.tx4.as_raw_fd(), (sa as *const libc::sockaddr_in).cast(), size_of::<libc::sockaddr_in>())
            }
            Dest::V6(sa) => (
                self.tx6.as_ref().ok_or_else(unsupported)?.as_raw_fd(),
                (sa as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>(),
            ),
        };
        loop {
            // SAFETY: `packet` and the socket address are live for the call and their sizes are passed.
            let n = unsafe { libc::sendto(fd, packet.as_ptr().cast(), packet.len(), 0, addr, alen as libc::socklen_t) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Sends a whole IPv4 or IPv6 packet (family from the version nibble, destination from the header), marked, on
    /// the main table. The kernel fills in an IPv4 header's checksum (and its ID and source when zero) and leaves
    /// the rest, and an IPv6 header, as given. The packet must fit the outgoing link's MTU (no fragmentation), and
    /// an IPv6 destination must not need a scope (link-local).
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.sendto(packet, &dest_of(packet)?)
    }

    /// Sends several whole packets with one `sendmmsg` per run of one family. Returns how many were sent: fewer
    /// than given when the kernel stopped early (the rest is the caller's to retry or drop); an error only if the
    /// first could not be sent.
    pub fn send_batch(&self, packets: &[&[u8]]) -> io::Result<usize> {
        let mut sent = 0;
        while sent < packets.len() {
            let first_v4 = packets[sent].first().map(|b| b >> 4) == Some(4);
            let run = packets[sent..].iter().take_while(|p| (p.first().map(|b| b >> 4) == Some(4)) == first_v4).count();
            let dests: Vec<Dest> = match packets[sent..sent + run].iter().map(|p| dest_of(p)).collect() {
                Ok(d) => d,
                // A malformed packet in the run: send it alone to report it.
                Err(e) if sent == 0 && run == 1 => return Err(e),
                Err(_) if run == 1 => return Ok(sent),
                Err(_) => {
                    // Send packet by packet up to the bad one.
                    for p in &packets[sent..sent + run] {
                        match self.send(p) {
                            Ok(()) => sent += 1,
                            Err(e) if sent == 0 => return Err(e),
                            Err(_) => return Ok(sent),
                        }
                    }
                    continue;
                }
            };
            let fd =
                if first_v4 { self.tx4.as_raw_fd() } else { self.tx6.as_ref().ok_or_else(unsupported)?.as_raw_fd() };
            let mut iovs: Vec<libc::iovec> = packets[sent..sent + run]
                .iter()
                .map(|p| libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() })
                .collect();
            // SAFETY: an all-zero mmsghdr is valid.
            let mut msgs: Vec<libc::mmsghdr> = (0..run).map(|_| unsafe { std::mem::zeroed() }).collect();
            for ((m, iov), d) in msgs.iter_mut().zip(iovs.iter_mut()).zip(&dests) {
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                let (addr, len) = match d {
                    Dest::V4(sa) => {
                        ((sa as *const libc::sockaddr_in).cast_mut().cast(), size_of::<libc::sockaddr_in>())
                    }
                    Dest::V6(sa) => {
                        ((sa as *const libc::sockaddr_in6).cast_mut().cast(), size_of::<libc::sockaddr_in6>())
                    }
                };
                m.msg_hdr.msg_name = addr;
                m.msg_hdr.msg_namelen = len as libc::socklen_t;
            }
            // SAFETY: `msgs` holds `run` headers whose iovecs and names point into `packets` and `dests`, live for
            // the call; the kernel only reads them.
            let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), run as libc::c_uint, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return if sent == 0 { Err(e) } else { Ok(sent) };
            }
            sent += r as usize;
            if (r as usize) < run {
                return Ok(sent);
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One control message in the kernel's layout.
    fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let hdr = size_of::<libc::cmsghdr>();
        let len = hdr + data.len();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        v.resize(cmsg_align(len), 0);
        v
    }

    fn pktinfo(dst: &str, ifindex: u32) -> Vec<u8> {
        let mut d = dst.parse::<Ipv6Addr>().unwrap().octets().to_vec();
        d.extend_from_slice(&ifindex.to_ne_bytes());
        cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &d)
    }

    fn int(ty: i32, v: i32) -> Vec<u8> {
        cmsg(libc::IPPROTO_IPV6, ty, &v.to_ne_bytes())
    }

    const SRC: &str = "2001:db8:1::2";
    const DST: &str = "2001:db8:1::1";

    fn esp_payload() -> Vec<u8> {
        let mut p = vec![0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x07];
        p.extend((0u8..40).map(|i| i.wrapping_mul(7)));
        p
    }

    #[test]
    fn rebuilds_a_plain_header() {
        let mut control = pktinfo(DST, 3);
        control.extend(int(libc::IPV6_HOPLIMIT, 61));
        control.extend(int(libc::IPV6_TCLASS, 0xb8));
        control.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_FLOWINFO, &0x0b8_12345u32.to_be_bytes()));
        let payload = esp_payload();
        let mut buf = vec![0u8; 200];
        buf[40..40 + payload.len()].copy_from_slice(&payload);
        let n = rebuild_ipv6(SRC.parse().unwrap(), &control, 50, &mut buf, 40, payload.len()).unwrap();
        let mut want = vec![0x6b, 0x81, 0x23, 0x45, 0, payload.len() as u8, 50, 61];
        want.extend(SRC.parse::<Ipv6Addr>().unwrap().octets());
        want.extend(DST.parse::<Ipv6Addr>().unwrap().octets());
        want.extend(&payload);
        assert_eq!(&buf[..n], &want[..]);
        assert_eq!(parse_v6_ancillary(&control).unwrap().ifindex, 3);
    }

    #[test]
    fn rebuilds_extension_headers_in_order_with_a_consistent_chain() {
        // Hop-by-hop (8 bytes, PadN), a routing header (type 0 would be refused by the kernel, but its bytes are
        // just carried here) and destination options (16 bytes); their next-header bytes as received are wrong on
        // purpose (as if a fragment header had been removed) and must be rewritten.
        let hop = [44u8, 0, 1, 4, 0, 0, 0, 0];
        let rt = [60u8, 0, 4, 0, 0, 0, 0, 0];
        let dst = [44u8, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut control = pktinfo(DST, 2);
        control.extend(int(libc::IPV6_HOPLIMIT, 255));
        control.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_HOPOPTS, &hop));
        control.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_RTHDR, &rt));
        control.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_DSTOPTS, &dst));
        // Unknown messages are skipped.
        control.extend(cmsg(libc::SOL_SOCKET, 99, &[1, 2, 3]));
        let payload = esp_payload();
        let mut buf = vec![0u8; 200];
        buf[40..40 + payload.len()].copy_from_slice(&payload);
        let n = rebuild_ipv6(SRC.parse().unwrap(), &control, 50, &mut buf, 40, payload.len()).unwrap();
        assert_eq!(n, 40 + 32 + payload.len());
        assert_eq!(&buf[0..4], &[0x60, 0, 0, 0]);
        assert_eq!(u16::from_be_bytes([buf[4], buf[5]]) as usize, 32 + payload.len());
        assert_eq!(buf[6], 0, "IPv6 header -> hop-by-hop");
        assert_eq!(buf[7], 255);
        assert_eq!(&buf[40..48], &[43, 0, 1, 4, 0, 0, 0, 0], "hop-by-hop -> routing");
        assert_eq!(&buf[48..56], &[60, 0, 4, 0, 0, 0, 0, 0], "routing -> destination options");
        assert_eq!(buf[56], 50, "destination options -> ESP");
        assert_eq!(&buf[57..72], &dst[1..]);
        assert_eq!(&buf[72..n], &payload[..]);
    }

    #[test]
    fn refuses_what_it_cannot_rebuild() {
        let payload = esp_payload();
        let src: Ipv6Addr = SRC.parse().unwrap();
        let mut buf = vec![0u8; 200];
        let hl = int(libc::IPV6_HOPLIMIT, 64);
        assert_eq!(rebuild_ipv6(src, &hl, 50, &mut buf, 40, payload.len()), Err(RebuildError::NoDestination));
        assert_eq!(rebuild_ipv6(src, &pktinfo(DST, 1), 50, &mut buf, 40, 10), Err(RebuildError::NoHopLimit));
        let mut ok = pktinfo(DST, 1);
        ok.extend(&hl);
        // The rebuilt packet must fit the buffer.
        assert_eq!(rebuild_ipv6(src, &ok, 50, &mut buf, 40, 161), Err(RebuildError::TooLong));
        let mut c = ok.clone();
        c.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_DSTOPTS, &[50, 1, 1, 4, 0, 0, 0, 0]));
        assert_eq!(rebuild_ipv6(src, &c, 50, &mut buf, 40, 10), Err(RebuildError::Malformed), "length byte says 16");
        let mut c = ok.clone();
        c.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_DSTOPTS, &[50, 0, 1, 4, 0, 0, 0, 0]));
        c.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_HOPOPTS, &[50, 0, 1, 4, 0, 0, 0, 0]));
        assert_eq!(rebuild_ipv6(src, &c, 50, &mut buf, 40, 10), Err(RebuildError::Malformed), "hop-by-hop not first");
        let mut c = ok.clone();
        for _ in 0..9 {
            c.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_DSTOPTS, &[50, 0, 1, 4, 0, 0, 0, 0]));
        }
        assert_eq!(rebuild_ipv6(src, &c, 50, &mut buf, 40, 10), Err(RebuildError::TooManyHeaders));
        // A cmsg_len past the end of the buffer.
        let mut c = ok.clone();
        let mut bad = cmsg(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &[0; 4]);
        bad[0] = 200;
        c.extend(bad);
        assert_eq!(rebuild_ipv6(src, &c, 50, &mut buf, 40, 10), Err(RebuildError::Malformed));
        // Payload range outside the buffer.
        assert_eq!(rebuild_ipv6(src, &ok, 50, &mut buf, 190, 20), Err(RebuildError::TooLong));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_control_data_never_panics(control: Vec<u8>, at in 0usize..300, len in 0usize..300) {
            let mut buf = vec![0u8; 256];
            let _ = rebuild_ipv6(Ipv6Addr::LOCALHOST, &control, 50, &mut buf, at, len);
        }
    }

    #[test]
    fn destination_comes_from_the_header() {
        assert!(matches!(dest_of(&[0x45; 20]), Ok(Dest::V4(_))));
        assert!(matches!(dest_of(&[0x60; 40]), Ok(Dest::V6(_))));
        assert!(dest_of(&[0x45; 19]).is_err());
        assert!(dest_of(&[0x60; 39]).is_err());
        assert!(dest_of(&[0x50; 60]).is_err());
        assert!(dest_of(&[]).is_err());
    }
}
