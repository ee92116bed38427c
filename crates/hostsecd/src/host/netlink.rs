//! A minimal rtnetlink client over a raw `AF_NETLINK` socket: just what routing and restore need (routes, rules,
//! links). Requests are batched many to one `send` with an acknowledgement each, which is what makes thousands of
//! routes take milliseconds instead of one round trip (or one `ip` process) per route.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const HDR: usize = 16;
/// Bytes of requests sent at once; the kernel answers each with an ack of 36 bytes, well within the receive buffer.
const BATCH_BYTES: usize = 32 * 1024;
const RECV_BUF: usize = 256 * 1024;

// Rule attributes (`linux/fib_rules.h`), not exported by `libc`.
/// Rule preference.
pub const FRA_PRIORITY: u16 = 6;
/// Firewall mark selector.
pub const FRA_FWMARK: u16 = 10;
/// Table to look up (any size; the header's 8-bit field cannot hold 4853).
pub const FRA_TABLE: u16 = 15;
/// Mask of the firewall mark selector.
pub const FRA_FWMASK: u16 = 16;
/// `fib_rule_hdr.flags`: the selector is negated (`ip rule add not ...`).
pub const FIB_RULE_INVERT: u32 = 2;
/// `fib_rule_hdr.action`: look up a table.
pub const FR_ACT_TO_TBL: u8 = 1;
/// Route origin: configured (what `ip route add` uses), so that `ip route` shows `proto static`.
pub const RTPROT_STATIC: u8 = 4;
/// Route scope of a route that is not on-link (throw).
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// Route scope of a route to a directly attached destination (into the TUN).
pub const RT_SCOPE_LINK: u8 = 253;

/// One request under construction: header, fixed part, attributes.
pub struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    /// A request of type `ty` with `flags` (NLM_F_REQUEST is added) and the family-specific fixed header `fixed`.
    pub fn new(ty: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut buf = vec![0u8; HDR];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        buf.extend_from_slice(fixed);
        pad4(&mut buf);
        Msg { buf }
    }

    /// Appends an attribute.
    pub fn attr(mut self, ty: u16, data: &[u8]) -> Msg {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        pad4(&mut self.buf);
        self
    }

    /// Appends a `u32` attribute.
    pub fn attr_u32(self, ty: u16, v: u32) -> Msg {
        self.attr(ty, &v.to_ne_bytes())
    }

    fn add_flags(&mut self, flags: u16) {
        let f = u16::from_ne_bytes([self.buf[6], self.buf[7]]) | flags;
        self.buf[6..8].copy_from_slice(&f.to_ne_bytes());
    }

    fn finish(&mut self, seq: u32) {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    }
}

fn pad4(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// A message received from the kernel: type and body (fixed header and attributes, without the netlink header).
pub struct Reply {
    /// Message type (`RTM_NEWLINK`, ...).
    pub ty: u16,
    /// Fixed header and attributes.
    pub body: Vec<u8>,
}

/// The attributes after a fixed header of `fixed` bytes: `(type, data)` pairs, bounds-checked.
pub fn attrs(body: &[u8], fixed: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = align4(fixed);
    while off + 4 <= body.len() {
        let len = usize::from(u16::from_ne_bytes([body[off], body[off + 1]]));
        let ty = u16::from_ne_bytes([body[off + 2], body[off + 3]]) & 0x3fff;
        if len < 4 || off + len > body.len() {
            break;
        }
        out.push((ty, &body[off + 4..off + len]));
        off += align4(len);
    }
    out
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Reads a `u32` attribute value.
pub fn u32_of(data: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

/// A route netlink socket.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket creation; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_nl is valid (pid 0 lets the kernel assign one).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `sa` is a live sockaddr_nl and its size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // Acks of failed requests would otherwise echo the whole request; the error code is all we read.
        let _ = super::setsockopt_int(fd.as_raw_fd(), libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        let _ = super::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1 << 20);
        Ok(Netlink { fd, seq: 1, buf: vec![0u8; RECV_BUF] })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_nl addresses the kernel.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `data` and `sa` are live for the call and their sizes are passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one datagram into the internal buffer and returns its messages as (type, seq, body).
    fn recv(&mut self) -> io::Result<Vec<(u16, u32, Vec<u8>)>> {
        let n = loop {
            // SAFETY: the buffer is live and its length is passed.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let data = &self.buf[..n];
        let mut out = Vec::new();
        let mut off = 0;
        while off + HDR <= data.len() {
            let len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap_or_default()) as usize;
            let ty = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
            let seq = u32::from_ne_bytes(data[off + 8..off + 12].try_into().unwrap_or_default());
            if len < HDR || off + len > data.len() {
                break;
            }
            out.push((ty, seq, data[off + HDR..off + len].to_vec()));
            off += align4(len);
        }
        Ok(out)
    }

    /// Sends every request with an ack and returns each one's outcome, in order. Requests go out in batches of
    /// about 32 KiB; a failed request does not stop the others.
    pub fn execute(&mut self, msgs: Vec<Msg>) -> io::Result<Vec<io::Result<()>>> {
        let mut results: Vec<io::Result<()>> = Vec::with_capacity(msgs.len());
        let mut msgs = msgs.into_iter().peekable();
        while msgs.peek().is_some() {
            let mut batch = Vec::with_capacity(BATCH_BYTES + 512);
            let first = results.len();
            let mut seqs = Vec::new();
            while let Some(m) = msgs.next_if(|m| batch.is_empty() || batch.len() + m.buf.len() <= BATCH_BYTES) {
                let mut m = m;
                let seq = self.next_seq();
                m.add_flags(libc::NLM_F_ACK as u16);
                m.finish(seq);
                batch.extend_from_slice(&m.buf);
                seqs.push(seq);
                results.push(Err(io::Error::other("no answer from the kernel")));
            }
            self.send(&batch)?;
            let mut pending = seqs.len();
            while pending > 0 {
                for (ty, seq, body) in self.recv()? {
                    if ty != libc::NLMSG_ERROR as u16 {
                        continue;
                    }
                    let Some(i) = seqs.iter().position(|s| *s == seq) else { continue };
                    let code = body.get(..4).map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or_default()));
                    results[first + i] = if code == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-code)) };
                    pending -= 1;
                }
            }
        }
        Ok(results)
    }

    /// Sends one request with an ack; returns the replies before the ack, or the error the kernel answered.
    pub fn request(&mut self, mut msg: Msg) -> io::Result<Vec<Reply>> {
        let seq = self.next_seq();
        msg.add_flags(libc::NLM_F_ACK as u16);
        msg.finish(seq);
        self.send(&msg.buf)?;
        let mut out = Vec::new();
        loop {
            for (ty, s, body) in self.recv()? {
                if s != seq {
                    continue;
                }
                if ty == libc::NLMSG_ERROR as u16 {
                    let code = body.get(..4).map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or_default()));
                    return if code == 0 { Ok(out) } else { Err(io::Error::from_raw_os_error(-code)) };
                }
                out.push(Reply { ty, body });
            }
        }
    }

    /// Sends a dump request and returns every message up to `NLMSG_DONE`.
    pub fn dump(&mut self, mut msg: Msg) -> io::Result<Vec<Reply>> {
        let seq = self.next_seq();
        msg.add_flags(libc::NLM_F_DUMP as u16);
        msg.finish(seq);
        self.send(&msg.buf)?;
        let mut out = Vec::new();
        loop {
            for (ty, s, body) in self.recv()? {
                if s != seq {
                    continue;
                }
                if ty == libc::NLMSG_DONE as u16 {
                    return Ok(out);
                }
                if ty == libc::NLMSG_ERROR as u16 {
                    let code = body.get(..4).map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or_default()));
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    continue;
                }
                out.push(Reply { ty, body });
            }
        }
    }
}

/// Looks up a link by name: `(ifindex, kind)` where kind is the `IFLA_INFO_KIND` ("tun", "veth", ...) if any;
/// `None` if there is no such link.
pub fn link_by_name(nl: &mut Netlink, name: &str) -> io::Result<Option<(u32, Option<String>)>> {
    let mut ifname = name.as_bytes().to_vec();
    ifname.push(0);
    let msg = Msg::new(libc::RTM_GETLINK, 0, &[0u8; 16]).attr(libc::IFLA_IFNAME, &ifname);
    let replies = match nl.request(msg) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
        Err(e) => return Err(e),
    };
    for r in replies.iter().filter(|r| r.ty == libc::RTM_NEWLINK) {
        let Some(index) = r.body.get(4..8).map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default())) else {
            continue;
        };
        let mut kind = None;
        for (ty, data) in attrs(&r.body, 16) {
            if ty == libc::IFLA_LINKINFO {
                for (t, d) in attrs(data, 0) {
                    if t == libc::IFLA_INFO_KIND {
                        kind = Some(String::from_utf8_lossy(d).trim_end_matches('\0').to_string());
                    }
                }
            }
        }
        return Ok(Some((index, kind)));
    }
    Ok(None)
}

/// Deletes a link by index.
pub fn delete_link(nl: &mut Netlink, index: u32) -> io::Result<()> {
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    nl.request(Msg::new(libc::RTM_DELLINK, 0, &ifi)).map(|_| ())
}
