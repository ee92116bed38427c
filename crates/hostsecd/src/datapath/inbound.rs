//! The inbound thread: raw ESP sockets → open (replay, ICV) → policy check (selector and rule) → TUN.

use super::wake::{poll_readable, set_nonblocking, Wake};
use super::{bump, DpEvent, DpStats, InCmd, Snapshot};
use crate::host::{EspSockets, Tun};
use hostsec_proto::esp::{InboundTable, PacketFlow, SaCounters};
use hostsec_proto::ike::selector::lookup_flow;
use hostsec_proto::ike::Selector;
use std::collections::{HashMap, HashSet};
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
}

impl Inbound {
    pub(super) fn new(
        tun: Tun,
        sockets: Arc<EspSockets>,
        commands: Receiver<InCmd>,
        wake: Arc<Wake>,
        snapshot: Arc<Snapshot>,
        events: UnboundedSender<DpEvent>,
        stats: Arc<DpStats>,
    ) -> Inbound {
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
        loop {
            let [v4, v6, woken] = poll_readable([self.sockets.rx4_fd(), rx6, self.wake.fd()], 1000);
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
                InCmd::Add(sa, rule, selector) => {
                    self.rules.insert(sa.spi(), (rule, selector));
                    self.sas.insert(*sa);
                }
                InCmd::Remove(spi, local) => {
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
                return;
            }
        };
        let inner = opened.packet;
        // The SA carries the traffic it was negotiated for only (RFC 4301 §5.2): the inner packet's protocol and
        // ports must lie within the SA's selector, the rule that governs its flow must be the one the SA was
        // negotiated under, and that rule must still ask for protection.
        let Some(pf) = PacketFlow::parse(inner) else {
            bump(&self.stats.dropped_malformed);
            return;
        };
        let flow = pf.inbound();
        let spi = packet_spi(packet).unwrap_or(0);
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
        if opened.rekey_soon && self.rekey_asked.insert(spi) {
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

/// The SPI of an outer IPv4/IPv6 ESP packet (after the IP header and, for IPv6, extension headers).
fn packet_spi(packet: &[u8]) -> Option<u32> {
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
