//! The inbound thread: raw ESP sockets and the UDP 4500 sockets (ESP in UDP) → open (replay, ICV) → policy check
//! (selector and rule) → TUN.

use super::encap::{fix_checksum, header_len, rebuild_header, recompute_checksum, UdpIn};
use super::wake::{set_nonblocking, Wake};
use super::{bump, Common, DpEvent, DpStats, InCmd, NattSockets, Snapshot};
use crate::host::{EspSockets, Tun};
use crate::sockets::sort_4500;
use hostsec_proto::esp::{DropReason, InboundTable, PacketFlow, SaCounters};
use hostsec_proto::ike::selector::lookup_flow;
use hostsec_proto::ike::Selector;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

/// Packets received per `recvmmsg`.
const BATCH: usize = 64;
/// Size of a receive slot: an ESP packet of a 1500-byte link fits (jumbo frames would be truncated, counted as
/// malformed).
const SLOT: usize = 9216;
/// Shortest time between two reports of ESP for unknown SPIs from one peer.
const UNKNOWN_SPI_EVERY: Duration = Duration::from_secs(1);
/// Bound on the peers remembered for that.
const UNKNOWN_SPI_PEERS: usize = 256;

pub(super) struct Inbound {
    tun: Tun,
    sockets: Arc<EspSockets>,
    commands: Receiver<InCmd>,
    wake: Arc<Wake>,
    snapshot: Arc<Snapshot>,
    events: UnboundedSender<DpEvent>,
    stats: Arc<DpStats>,
    sas: InboundTable,
    /// The rule each inbound SA was negotiated under and the traffic it may carry, by SPI.
    rules: HashMap<u32, (String, Selector)>,
    rekey_asked: HashSet<u32>,
    /// When each peer's ESP for an unknown SPI was last reported to IKE (bounded).
    unknown_reported: HashMap<IpAddr, Instant>,
    natt: NattSockets,
    /// The UDP-encapsulated inbound SAs, by SPI.
    encap: HashMap<u32, UdpIn>,
}

impl Inbound {
    pub(super) fn new(
        tun: Tun,
        sockets: Arc<EspSockets>,
        commands: Receiver<InCmd>,
        wake: Arc<Wake>,
        common: Common,
        natt: NattSockets,
    ) -> Inbound {
        let Common { snapshot, events, stats } = common;
        Inbound {
            tun,
            sockets,
            commands,
            wake,
            snapshot,
            events,
            stats,
            sas: InboundTable::new(),
            rules: HashMap::new(),
            rekey_asked: HashSet::new(),
            unknown_reported: HashMap::new(),
            natt,
            encap: HashMap::new(),
        }
    }

    /// The counters of drops that name no SA.
    pub(super) fn unattributed(&self) -> Arc<SaCounters> {
        self.sas.counters().clone()
    }

    pub(super) fn run(mut self) {
        for fd in [Some(self.sockets.rx4_fd()), self.sockets.rx6_fd()].into_iter().flatten() {
            if let Err(e) = set_nonblocking(fd) {
                warn!("inbound datapath: {e}");
            }
        }
        let mut buf = vec![0u8; 65536];
        let mut out = vec![0u8; 65536];
        let mut slots: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; SLOT]).collect();
        let mut lens = [0usize; BATCH];
        let rx6 = self.sockets.rx6_fd().unwrap_or(-1);
        let mut last_sweep = Instant::now();
        let natt: Vec<(SocketAddr, RawFd)> = self.natt.sockets.iter().map(|(a, s)| (*a, s.as_raw_fd())).collect();
        let mut fds: Vec<RawFd> = vec![self.sockets.rx4_fd(), rx6, self.wake.fd()];
        fds.extend(natt.iter().map(|(_, fd)| *fd));
        loop {
            let ready = poll_many(&fds, 1000);
            let is = |i: usize| ready.get(i) == Some(&true);
            let (v4, v6, woken) = (is(0), is(1), is(2));
            for (i, (local, fd)) in natt.iter().enumerate() {
                if is(3 + i) {
                    self.drain_udp(*local, *fd, &mut buf, &mut out);
                }
            }
            if woken {
                self.wake.clear();
                if !self.commands() {
                    return;
                }
            }
            if v4 {
                let mut bufs: Vec<&mut [u8]> = slots.iter_mut().map(|s| s.as_mut_slice()).collect();
                match self.sockets.recv4_batch(&mut bufs, &mut lens) {
                    Ok(n) => {
                        let now = Instant::now();
                        for (slot, len) in slots.iter().zip(&lens[..n]) {
                            if *len == 0 {
                                bump(&self.stats.dropped_malformed);
                                continue;
                            }
                            self.packet(now, &slot[..*len], &mut out);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        bump(&self.stats.dropped_malformed);
                        debug!("ESP receive: {e}");
                    }
                }
            }
            if v6 {
                for _ in 0..BATCH {
                    match self.sockets.recv6(&mut buf) {
                        Ok(n) => {
                            let now = Instant::now();
                            self.packet(now, &buf[..n], &mut out);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            bump(&self.stats.dropped_malformed);
                            debug!("ESP receive: {e}");
                            break;
                        }
                    }
                }
            }
            let now = Instant::now();
            if now.duration_since(last_sweep) >= Duration::from_secs(1) {
                last_sweep = now;
                for sa in self.sas.remove_expired(now) {
                    self.rules.remove(&sa.spi());
                    self.rekey_asked.remove(&sa.spi());
                    debug!("inbound SA {:08x} expired in the datapath", sa.spi());
                    let _ = self.events.send(DpEvent::Expired { spi: sa.spi(), inbound: true });
                }
            }
        }
    }

    fn commands(&mut self) -> bool {
        while let Ok(c) = self.commands.try_recv() {
            match c {
                InCmd::Stop => return false,
                InCmd::Policy(s) => self.snapshot = s,
                InCmd::Add(sa, rule, selector, udp) => {
                    if let Some(u) = udp {
                        self.encap.insert(sa.spi(), u);
                    }
                    self.rules.insert(sa.spi(), (rule, selector));
                    self.sas.insert(*sa);
                }
                InCmd::Moved(spi, remote) => {
                    if let Some(u) = self.encap.get_mut(&spi) {
                        u.remote = remote;
                    }
                }
                InCmd::Remove(spi, local) => {
                    self.encap.remove(&spi);
                    self.sas.remove(spi, local);
                    self.rules.remove(&spi);
                    self.rekey_asked.remove(&spi);
                }
            }
        }
        true
    }

    fn packet(&mut self, now: Instant, packet: &[u8], out: &mut [u8]) {
        bump(&self.stats.esp_received);
        let opened = match self.sas.open(now, packet, out) {
            Ok(o) => o,
            Err(reason) => {
                bump(&self.stats.dropped_esp);
                if !reason.is_quiet() {
                    debug!("inbound ESP dropped: {}", reason.name());
                }
                if reason == DropReason::UnknownSpi {
                    if let (Some(peer), Some(spi)) = (packet_source(packet), packet_spi(packet)) {
                        self.report_unknown_spi(now, peer, spi);
                    }
                }
                return;
            }
        };
        let spi = packet_spi(packet).unwrap_or(0);
        self.deliver(spi, opened.packet, opened.rekey_soon);
    }

    /// Reads what a UDP 4500 socket holds (a batch at most): IKE to the control plane, ESP opened here.
    fn drain_udp(&mut self, local: SocketAddr, fd: RawFd, buf: &mut [u8], out: &mut [u8]) {
        for _ in 0..BATCH {
            let (n, remote) = match recv_from(fd, buf) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    debug!("UDP {local}: {e}");
                    return;
                }
            };
            let Some(payload) = buf.get(..n) else { return };
            if let Some((spi, esp)) = sort_4500(&self.natt.stats, &self.natt.ike, local, remote, payload) {
                self.esp_in_udp(Instant::now(), local, remote, spi, esp, out);
            }
        }
    }

    /// Opens an ESP-in-UDP packet (RFC 3948 §3.1.2): the same SA lookup, replay and ICV checks as raw ESP, the IP
    /// header rebuilt from the SA's addresses, the TCP/UDP checksum fixed for the addresses NAT changed, then the
    /// same policy checks. An authenticated packet with the highest sequence number so far from a new source is
    /// reported as a mapping change.
    fn esp_in_udp(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        spi: u32,
        esp: &[u8],
        out: &mut [u8],
    ) {
        bump(&self.stats.esp_received);
        let Some(udp) = self.encap.get(&spi).copied() else {
            // Not opened, so that a packet of a plain ESP SA cannot move its replay window from another path.
            let unknown = self.sas.get(spi, local.ip()).is_none();
            if unknown {
                self.sas.counters().count_drop(DropReason::UnknownSpi);
                bump(&self.stats.dropped_esp);
                self.report_unknown_spi(now, remote.ip(), spi);
            } else {
                bump(&self.natt.stats.esp_dropped_not_encapsulated);
            }
            return;
        };
        let Some(sa) = self.sas.get_mut(spi, local.ip()) else {
            self.sas.counters().count_drop(DropReason::UnknownSpi);
            bump(&self.stats.dropped_esp);
            self.report_unknown_spi(now, remote.ip(), spi);
            return;
        };
        let (src, dst) = (sa.peer(), sa.local());
        let hl = header_len(src);
        let Some(body) = out.get_mut(hl..) else { return };
        let opened = match sa.open_transport_esp(now, esp, body) {
            Ok(p) => (p.payload.len(), p.next_header, p.seq, p.rekey_soon),
            Err(reason) => {
                bump(&self.stats.dropped_esp);
                if !reason.is_quiet() {
                    debug!("inbound ESP in UDP from {remote} dropped: {}", reason.name());
                }
                return;
            }
        };
        let (len, next_header, seq, rekey_soon) = opened;
        let highest = sa.window().top() == seq;
        if let Some(payload) = out.get_mut(hl..hl + len) {
            match (udp.peer_original, udp.local_as_seen_by_peer) {
                // The peer's NAT-OA named the addresses its checksum covers: adjusted (RFC 3948 §3.1.2 step 3).
                (Some(orig), Some(seen)) => fix_checksum(payload, next_header, (orig, src), (seen, dst)),
                // It named one of them, or none: our address as the peer sees it may be a NAT's, which we cannot
                // know, so the checksum is computed anew (step 4).
                _ => recompute_checksum(payload, next_header, src, dst),
            }
        }
        let Some(total) = rebuild_header(out, src, dst, next_header, len) else {
            bump(&self.stats.dropped_malformed);
            return;
        };
        if remote != udp.remote && highest {
            // Followed at once here (so that one report is made, not one per packet); IKE moves the rest.
            if let Some(u) = self.encap.get_mut(&spi) {
                u.remote = remote;
            }
            bump(&self.natt.stats.peer_moves_reported);
            let _ = self.events.send(DpEvent::PeerMoved { spi, remote });
        }
        if let Some(inner) = out.get(..total) {
            self.deliver(spi, inner, rekey_soon);
        }
    }

    /// ESP from `peer` for an SPI no inbound SA has: IKE may tell the peer (INVALID-SPI). Reported at most once a
    /// second per peer, so that a stream of such packets costs a map lookup each, not an event each.
    fn report_unknown_spi(&mut self, now: Instant, peer: IpAddr, spi: u32) {
        if self.unknown_reported.get(&peer).is_some_and(|t| now.saturating_duration_since(*t) < UNKNOWN_SPI_EVERY) {
            return;
        }
        if self.unknown_reported.len() >= UNKNOWN_SPI_PEERS {
            self.unknown_reported.retain(|_, t| now.saturating_duration_since(*t) < UNKNOWN_SPI_EVERY);
            if self.unknown_reported.len() >= UNKNOWN_SPI_PEERS {
                return;
            }
        }
        self.unknown_reported.insert(peer, now);
        let _ = self.events.send(DpEvent::UnknownSpi { spi, peer });
    }

    /// The policy checks of a decrypted packet of the SA `spi`, then the TUN.
    fn deliver(&mut self, spi: u32, inner: &[u8], rekey_soon: bool) {
        // The SA carries the traffic it was negotiated for only (RFC 4301 §5.2): the inner packet's protocol and
        // ports must lie within the SA's selector, the rule that governs its flow must be the one the SA was
        // negotiated under, and that rule must still ask for protection.
        let Some(pf) = PacketFlow::parse(inner) else {
            bump(&self.stats.dropped_malformed);
            return;
        };
        let flow = pf.inbound();
        let snap = &self.snapshot;
        let governing = lookup_flow(&snap.spd, &snap.policy, &flow).and_then(|i| snap.policy.rules.get(i));
        let owner = self.rules.get(&spi);
        let ok = matches!((governing, owner),
            (Some(r), Some((o, sel))) if r.name == *o && r.action.negotiates() && sel.covers_flow(&flow));
        if !ok {
            bump(&self.stats.dropped_policy_mismatch);
            debug!(
                "inbound packet {} -> {} (protocol {} ports {} -> {}) on SA {spi:08x} dropped: outside the SA's traffic \
                 ({}) or not governed by its rule ({})",
                pf.src,
                pf.dst,
                pf.protocol,
                pf.src_port,
                pf.dst_port,
                owner.map_or("unknown".to_string(), |(_, s)| s.to_string()),
                owner.map_or("unknown", |(r, _)| r.as_str()),
            );
            return;
        }
        if rekey_soon && self.rekey_asked.insert(spi) {
            let _ = self.events.send(DpEvent::RekeySoon { spi, inbound: true });
        }
        match self.tun.write(inner) {
            Ok(_) => bump(&self.stats.delivered),
            Err(e) => {
                bump(&self.stats.io_errors);
                debug!("TUN write: {e}");
            }
        }
    }
}

/// Waits until one of `fds` (negative ones are ignored) is readable or `timeout_ms` passes; which ones are.
fn poll_many(fds: &[RawFd], timeout_ms: i32) -> Vec<bool> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `pfds` is a live array of that many pollfd structures.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if n <= 0 {
        return vec![false; fds.len()];
    }
    pfds.iter().map(|p| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0).collect()
}

/// One datagram from a non-blocking UDP socket: its length and sender, `None` when there is none. A truncated
/// datagram is an error (nothing legitimate on 4500 is larger than the buffer).
fn recv_from(fd: RawFd, buf: &mut [u8]) -> std::io::Result<Option<(usize, SocketAddr)>> {
    loop {
        // SAFETY: an all-zero sockaddr_storage is valid.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut nlen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `buf` and `name` are live and writable for the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&mut name as *mut libc::sockaddr_storage).cast(),
                &mut nlen,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(e),
            }
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{n}-byte datagram truncated")));
        }
        let addr = match i32::from(name.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for an AF_INET socket.
                let sa = unsafe { *(&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                SocketAddr::new(
                    std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)).into(),
                    u16::from_be(sa.sin_port),
                )
            }
            libc::AF_INET6 => {
                // SAFETY: the kernel wrote a sockaddr_in6 for an AF_INET6 socket.
                let sa = unsafe { *(&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                SocketAddr::new(std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr).into(), u16::from_be(sa.sin6_port))
            }
            f => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("address family {f}"))),
        };
        return Ok(Some((n, addr)));
    }
}

/// The source address of an outer IPv4/IPv6 packet.
fn packet_source(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(packet.get(12..16)?).ok()?)),
        6 => Some(IpAddr::from(<[u8; 16]>::try_from(packet.get(8..24)?).ok()?)),
        _ => None,
    }
}

/// The SPI of an outer IPv4/IPv6 ESP packet (after the IP header and, for IPv6, extension headers).
pub(super) fn packet_spi(packet: &[u8]) -> Option<u32> {
    let off = match packet.first()? >> 4 {
        4 => usize::from(packet.first()? & 0x0f) * 4,
        6 => ipv6_esp_offset(packet)?,
        _ => return None,
    };
    Some(u32::from_be_bytes(packet.get(off..off + 4)?.try_into().ok()?))
}

/// Offset of the ESP header in an IPv6 packet: after the fixed header and the extension headers before ESP.
fn ipv6_esp_offset(packet: &[u8]) -> Option<usize> {
    let mut next = *packet.get(6)?;
    let mut off = 40;
    for _ in 0..8 {
        match next {
            50 => return Some(off),
            0 | 43 | 60 => {
                next = *packet.get(off)?;
                off += (usize::from(*packet.get(off + 1)?) + 1) * 8;
            }
            44 => {
                next = *packet.get(off)?;
                off += 8;
            }
            _ => return None,
        }
    }
    None
}
