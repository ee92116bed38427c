//! The outbound thread: TUN → policy decision → ESP (or cleartext, queue, drop).

use super::encap::{encapsulate, UdpOut};
use super::wake::{poll_readable, set_nonblocking, Wake};
use super::{bump, Common, DpEvent, DpStats, OutCmd, Snapshot};
use crate::host::{EspSockets, Tun};
use crate::sockets::EncapStats;
use hostsec_proto::esp::{DropReason, OutboundTable, PacketFlow, MAX_OVERHEAD};
use hostsec_proto::ike::selector::{initiator_selector, lookup_flow};
use hostsec_proto::ike::Selector;
use hostsec_proto::policy::{Action, DefaultAction};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

/// Packets kept per peer while IKE negotiates (the rest is dropped and counted).
const QUEUE_PER_PEER: usize = 64;
/// Packets kept over all peers.
const QUEUE_TOTAL: usize = 4096;
/// How long queued packets wait for an SA before they are dropped.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most one acquire per peer, rule and selector in this interval (the control plane deduplicates too).
const ACQUIRE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a `request` peer that did not answer IKE is sent cleartext before IKE is tried again.
const CLEARTEXT_FALLBACK: Duration = Duration::from_secs(60);
/// Packets read from the TUN per wake-up before commands are looked at again; sealed ones leave in one
/// `sendmmsg`.
const BATCH: usize = 64;
/// Size of a batch slot: a TUN packet (at most the TUN MTU) plus the ESP overhead fits with room to spare;
/// anything larger is sealed into the big buffer and sent alone.
const SLOT: usize = 2048;

struct Queued {
    since: Instant,
    packets: VecDeque<Vec<u8>>,
}

/// What happens to an outbound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Out in cleartext (bypass, a `request` peer in fallback, default bypass).
    Clear,
    /// Dropped (block, default block).
    Block,
    /// Sealed with an SA of the rule (its index in the snapshot).
    Seal(usize),
    /// Kept while IKE negotiates an SA under the rule.
    Queue(usize),
}

pub(super) struct Outbound {
    tun: Tun,
    sockets: Arc<EspSockets>,
    commands: Receiver<OutCmd>,
    wake: Arc<Wake>,
    snapshot: Arc<Snapshot>,
    events: UnboundedSender<DpEvent>,
    stats: Arc<DpStats>,
    sas: OutboundTable,
    queues: HashMap<IpAddr, Queued>,
    queued_total: usize,
    fallback: HashMap<IpAddr, Instant>,
    /// The last acquire for a peer, rule (index in the snapshot) and the selector IKE will propose.
    acquired: HashMap<(IpAddr, u32, Selector), Instant>,
    rekey_asked: HashSet<u32>,
    /// Scratch buffer for packets sealed while applying commands (queued packets).
    scratch: Vec<u8>,
    /// The SAs (by SPI) whose packets leave as ESP in UDP, and where to.
    encap: HashMap<u32, UdpOut>,
    encap_stats: Arc<EncapStats>,
}

impl Outbound {
    pub(super) fn new(
        tun: Tun,
        sockets: Arc<EspSockets>,
        commands: Receiver<OutCmd>,
        wake: Arc<Wake>,
        common: Common,
        encap_stats: Arc<EncapStats>,
    ) -> Outbound {
        let Common { snapshot, events, stats } = common;
        Outbound {
            tun,
            sockets,
            commands,
            wake,
            snapshot,
            events,
            stats,
            sas: OutboundTable::new(),
            queues: HashMap::new(),
            queued_total: 0,
            fallback: HashMap::new(),
            acquired: HashMap::new(),
            rekey_asked: HashSet::new(),
            scratch: vec![0u8; 65536 + MAX_OVERHEAD + super::encap::UDP_HDR],
            encap: HashMap::new(),
            encap_stats,
        }
    }

    pub(super) fn run(mut self) {
        if let Err(e) = set_nonblocking(self.tun.fd()) {
            warn!("outbound datapath: {e}");
        }
        let mut buf = vec![0u8; 65536];
        let mut slots: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; SLOT]).collect();
        let mut lens = [0usize; BATCH];
        let mut last_sweep = Instant::now();
        loop {
            let [tun_ready, woken] = poll_readable([self.tun.fd(), self.wake.fd()], 1000);
            if woken {
                self.wake.clear();
                if !self.commands() {
                    return;
                }
            }
            if tun_ready {
                let mut n = 0;
                for _ in 0..BATCH {
                    match self.tun.read(&mut buf) {
                        Ok(len) => {
                            let now = Instant::now();
                            if let Some(sealed) = self.packet(now, &buf[..len], &mut slots[n]) {
                                lens[n] = sealed;
                                n += 1;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            bump(&self.stats.io_errors);
                            debug!("TUN read: {e}");
                            break;
                        }
                    }
                }
                self.send_sealed(&slots, &lens[..n]);
            }
            let now = Instant::now();
            if now.duration_since(last_sweep) >= Duration::from_secs(1) {
                last_sweep = now;
                self.sweep(now);
            }
        }
    }

    /// Sends the sealed packets of a batch with as few system calls as the kernel allows.
    fn send_sealed(&self, slots: &[Vec<u8>], lens: &[usize]) {
        let mut packets = [&[][..]; BATCH];
        for (i, (s, l)) in slots.iter().zip(lens).enumerate() {
            packets[i] = &s[..*l];
        }
        let mut rest = &packets[..lens.len()];
        while !rest.is_empty() {
            match self.sockets.send_batch(rest) {
                Ok(0) => break,
                Ok(k) => {
                    self.stats.esp_sent.fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
                    rest = &rest[k..];
                }
                Err(e) => {
                    // The first packet of the rest could not go: count it and go on with the others.
                    bump(&self.stats.io_errors);
                    debug!("ESP send: {e}");
                    rest = &rest[1..];
                }
            }
        }
    }

    /// Applies every pending command; `false` when told to stop.
    fn commands(&mut self) -> bool {
        let mut out = std::mem::take(&mut self.scratch);
        let go_on = self.apply_commands(&mut out);
        self.scratch = out;
        go_on
    }

    fn apply_commands(&mut self, out: &mut [u8]) -> bool {
        while let Ok(c) = self.commands.try_recv() {
            match c {
                OutCmd::Stop => return false,
                OutCmd::Policy(s) => {
                    self.snapshot = s;
                    // Keyed by rule index, which a new policy renumbers.
                    self.acquired.clear();
                }
                OutCmd::Add(sa, rule, selector, gate, udp) => {
                    let peer = sa.peer();
                    if let Some(u) = udp {
                        self.encap.insert(sa.spi(), u);
                    }
                    self.fallback.remove(&peer);
                    self.acquired.retain(|(p, _, _), _| *p != peer);
                    if let Some(dropped) = self.sas.insert_gated(*sa, &rule, selector, gate) {
                        self.rekey_asked.remove(&dropped.spi());
                        warn!("outbound SA {:08x} to {peer} dropped: the peer has too many SAs", dropped.spi());
                    }
                    // Packets that waited for this SA go out now, in order.
                    self.requeue(Instant::now(), peer, out, None);
                }
                OutCmd::Moved(spi, remote) => {
                    if let Some(u) = self.encap.get_mut(&spi) {
                        debug!("outbound SA {spi:08x}: ESP in UDP now to {remote} (was {})", u.remote);
                        u.remote = remote;
                    }
                }
                OutCmd::Remove(spi) => {
                    self.encap.remove(&spi);
                    self.sas.remove(spi);
                    self.rekey_asked.remove(&spi);
                }
                OutCmd::AcquireFailed { peer, rule, cleartext } => {
                    if cleartext {
                        self.fallback.insert(peer, Instant::now() + CLEARTEXT_FALLBACK);
                    }
                    self.requeue(Instant::now(), peer, out, (!cleartext).then_some(rule.as_str()));
                }
            }
        }
        true
    }

    /// Decides again about the packets queued for `peer`: those an SA now covers are sealed and sent, those
    /// cleartext is now allowed for are sent, those of `failed` (a rule whose IKE failed) are dropped, the others
    /// wait on (with their original queueing time).
    fn requeue(&mut self, now: Instant, peer: IpAddr, out: &mut [u8], failed: Option<&str>) {
        let Some(q) = self.queues.remove(&peer) else { return };
        self.queued_total -= q.packets.len();
        let snap = self.snapshot.clone();
        let mut keep = VecDeque::new();
        for p in q.packets {
            let Some(flow) = PacketFlow::parse(&p) else {
                bump(&self.stats.dropped_malformed);
                continue;
            };
            match self.decide(now, &snap, &flow) {
                Decision::Clear => self.send_clear(&p),
                Decision::Block => bump(&self.stats.dropped_blocked),
                Decision::Seal(i) => {
                    let rule = snap.policy.rules.get(i).map(|r| r.name.as_str());
                    self.seal_and_send(now, &p, out, rule);
                }
                Decision::Queue(i) => {
                    if failed.is_some_and(|f| snap.policy.rules.get(i).is_some_and(|r| r.name == f)) {
                        bump(&self.stats.dropped_no_sa);
                    } else {
                        keep.push_back(p);
                    }
                }
            }
        }
        if !keep.is_empty() {
            self.queued_total += keep.len();
            self.queues.insert(peer, Queued { since: q.since, packets: keep });
        }
    }

    /// What happens to a packet with this flow: the rule that governs the flow decides (the global default when
    /// none does); for a rule that negotiates, an SA of that rule covering the flow seals it.
    #[inline]
    fn decide(&self, now: Instant, snap: &Snapshot, flow: &PacketFlow) -> Decision {
        let index = lookup_flow(&snap.spd, &snap.policy, &flow.outbound());
        let rule = index.and_then(|i| snap.policy.rules.get(i).map(|r| (i, r)));
        let action = match rule {
            Some((_, r)) => r.action,
            None => match snap.policy.global.default_action {
                DefaultAction::Bypass => Action::Bypass,
                DefaultAction::Block => Action::Block,
            },
        };
        match (action, rule) {
            (Action::Bypass, _) => Decision::Clear,
            (Action::Block, _) | (_, None) => Decision::Block,
            (Action::Require | Action::Request, Some((i, r))) => {
                if self.sas.find(flow, Some(&r.name)).is_some() {
                    Decision::Seal(i)
                } else if action == Action::Request && self.fallback.get(&flow.dst).is_some_and(|t| *t > now) {
                    Decision::Clear
                } else {
                    Decision::Queue(i)
                }
            }
        }
    }

    /// Decides what happens to one packet from the TUN. A packet sealed into `slot` is left there for the batch
    /// (its length is returned); everything else is done here.
    fn packet(&mut self, now: Instant, packet: &[u8], slot: &mut [u8]) -> Option<usize> {
        bump(&self.stats.tun_read);
        let Some(flow) = PacketFlow::parse(packet) else {
            bump(&self.stats.dropped_malformed);
            return None;
        };
        let snap = self.snapshot.clone();
        match self.decide(now, &snap, &flow) {
            Decision::Clear => self.send_clear(packet),
            Decision::Block => bump(&self.stats.dropped_blocked),
            Decision::Seal(i) => {
                let rule = snap.policy.rules.get(i).map(|r| r.name.as_str());
                if packet.len() + MAX_OVERHEAD + super::encap::UDP_HDR <= slot.len() {
                    return self.seal(now, packet, slot, rule);
                }
                let mut big = std::mem::take(&mut self.scratch);
                self.seal_and_send(now, packet, &mut big, rule);
                self.scratch = big;
            }
            Decision::Queue(i) => self.queue(now, &snap, i, &flow, packet),
        }
        None
    }

    /// Seals a packet into `out` with the SA of `rule` that covers its flow; returns the sealed length.
    fn seal(&mut self, now: Instant, packet: &[u8], out: &mut [u8], rule: Option<&str>) -> Option<usize> {
        match self.sas.seal_for(now, packet, out, rule) {
            Ok(sealed) => {
                let len = sealed.packet.len();
                if sealed.rekey_soon {
                    self.ask_rekey(sealed.spi);
                }
                self.udp_encapsulate(out, len)
            }
            Err(DropReason::NoSa) => {
                bump(&self.stats.dropped_no_sa);
                None
            }
            Err(reason) => {
                bump(&self.stats.dropped_esp);
                debug!("outbound packet refused: {}", reason.name());
                None
            }
        }
    }

    /// Puts a sealed packet of a UDP-encapsulated SA into UDP (RFC 3948 §2.1); other packets are left as they are.
    /// Returns the length to send.
    #[inline]
    fn udp_encapsulate(&self, out: &mut [u8], len: usize) -> Option<usize> {
        if self.encap.is_empty() {
            return Some(len);
        }
        let Some(u) = out.get(..len).and_then(super::inbound::packet_spi).and_then(|spi| self.encap.get(&spi)) else {
            return Some(len);
        };
        match encapsulate(out, len, u) {
            Some(n) => {
                bump(&self.encap_stats.esp_sent);
                Some(n)
            }
            None => {
                bump(&self.stats.dropped_esp);
                debug!("outbound ESP packet cannot be put in UDP to {} (no room, or not IP then ESP)", u.remote);
                None
            }
        }
    }

    /// Asks IKE once for a successor of the outbound SA `spi`, which crossed a soft limit. (By the SPI that
    /// sealed: looking the flow up again could name a newer SA that took over meanwhile, and rekey that one.)
    fn ask_rekey(&mut self, spi: u32) {
        if self.rekey_asked.insert(spi) {
            let _ = self.events.send(DpEvent::RekeySoon { spi, inbound: false });
        }
    }

    /// Seals one packet into `out` and sends it at once (queued packets, oversized packets).
    fn seal_and_send(&mut self, now: Instant, packet: &[u8], out: &mut [u8], rule: Option<&str>) {
        if let Some(len) = self.seal(now, packet, out, rule) {
            match self.sockets.send(&out[..len]) {
                Ok(()) => bump(&self.stats.esp_sent),
                Err(e) => {
                    bump(&self.stats.io_errors);
                    debug!("ESP send: {e}");
                }
            }
        }
    }

    fn send_clear(&self, packet: &[u8]) {
        match self.sockets.send(packet) {
            Ok(()) => bump(&self.stats.cleartext_sent),
            Err(e) => {
                bump(&self.stats.io_errors);
                debug!("cleartext send: {e}");
            }
        }
    }

    /// Keeps the packet until an SA for its flow is up, and asks the control plane to negotiate one under the
    /// rule (`rule`, an index into the snapshot) for the selector IKE will propose for this flow.
    fn queue(&mut self, now: Instant, snap: &Snapshot, rule: usize, flow: &PacketFlow, packet: &[u8]) {
        let dst = flow.dst;
        let q = self.queues.entry(dst).or_insert_with(|| Queued { since: now, packets: VecDeque::new() });
        if q.packets.len() >= QUEUE_PER_PEER || self.queued_total >= QUEUE_TOTAL {
            bump(&self.stats.dropped_queue_full);
        } else {
            q.packets.push_back(packet.to_vec());
            self.queued_total += 1;
            bump(&self.stats.queued);
        }
        let Some(r) = snap.policy.rules.get(rule) else { return };
        let f = flow.outbound();
        let key = (dst, rule as u32, initiator_selector(r, Some(&f)));
        let due = self.acquired.get(&key).is_none_or(|t| now.duration_since(*t) >= ACQUIRE_INTERVAL);
        if due {
            self.acquired.insert(key, now);
            let _ = self.events.send(DpEvent::Acquire { rule: r.name.clone(), flow: f });
        }
    }

    /// Once a second: queues that waited too long, expired fallbacks and SAs.
    fn sweep(&mut self, now: Instant) {
        let stale: Vec<IpAddr> =
            self.queues.iter().filter(|(_, q)| now.duration_since(q.since) > QUEUE_TIMEOUT).map(|(p, _)| *p).collect();
        for p in stale {
            if let Some(q) = self.queues.remove(&p) {
                self.queued_total -= q.packets.len();
                self.stats.dropped_no_sa.fetch_add(q.packets.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.fallback.retain(|_, t| *t > now);
        self.acquired.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        for sa in self.sas.remove_expired(now) {
            self.rekey_asked.remove(&sa.spi());
            debug!("outbound SA {:08x} expired in the datapath", sa.spi());
            let _ = self.events.send(DpEvent::Expired { spi: sa.spi(), inbound: false });
        }
    }
}
