//! Finding the SA of a packet. One [`InboundTable`] and one [`OutboundTable`] per datapath thread, owned by it:
//! plain `HashMap`s, no locks (the control plane reaches the SAs through their shared [`SaCounters`] only, and
//! hands new SAs to the thread that owns the table).

use super::bytes::u32_at;
use super::counters::SaCounters;
use super::flow::PacketFlow;
use super::ip;
use super::sa::{InboundSa, Opened, OutboundSa, Sealed};
use super::DropReason;
use crate::ike::Selector;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Inbound SAs by SPI and destination address. RFC 4303 §2.1: a unicast SA is identified by its SPI, which
/// the receiver chose; keying on the destination as well keeps SAs of different local addresses apart even
/// when their SPIs collide (as with manually keyed SAs). The map uses the standard library's randomly keyed
/// SipHash, since SPIs on the wire are chosen by whoever sends the packet.
#[derive(Debug, Default)]
pub struct InboundTable {
    sas: HashMap<(u32, IpAddr), InboundSa>,
    counters: Arc<SaCounters>,
}

impl InboundTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an SA; returns the one it replaces (same SPI and local address), if any.
    pub fn insert(&mut self, sa: InboundSa) -> Option<InboundSa> {
        self.sas.insert((sa.spi(), sa.local()), sa)
    }

    /// Removes and returns the SA with `spi` for `local`.
    pub fn remove(&mut self, spi: u32, local: IpAddr) -> Option<InboundSa> {
        self.sas.remove(&(spi, local))
    }

    /// The SA with `spi` for `local`.
    pub fn get(&self, spi: u32, local: IpAddr) -> Option<&InboundSa> {
        self.sas.get(&(spi, local))
    }

    /// The SA with `spi` for `local`, mutably.
    pub fn get_mut(&mut self, spi: u32, local: IpAddr) -> Option<&mut InboundSa> {
        self.sas.get_mut(&(spi, local))
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    /// Whether the table has no SA.
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    /// Every SA, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &InboundSa> {
        self.sas.values()
    }

    /// Keeps the SAs for which `keep` says true.
    pub fn retain(&mut self, mut keep: impl FnMut(&InboundSa) -> bool) {
        self.sas.retain(|_, sa| keep(sa));
    }

    /// Removes and returns the SAs past a hard limit.
    pub fn remove_expired(&mut self, now: Instant) -> Vec<InboundSa> {
        let expired: Vec<_> = self.sas.iter().filter(|(_, sa)| sa.is_expired(now)).map(|(k, _)| *k).collect();
        expired.into_iter().filter_map(|k| self.sas.remove(&k)).collect()
    }

    /// Drops that belong to no SA: packets too malformed to name one, and unknown SPIs.
    pub fn counters(&self) -> &Arc<SaCounters> {
        &self.counters
    }

    /// Finds the SA of an outer packet by its destination and SPI and opens the packet with it
    /// ([`InboundSa::open`]). Packets that name no SA are counted in [`InboundTable::counters`].
    pub fn open<'o>(&mut self, now: Instant, packet: &[u8], out: &'o mut [u8]) -> Result<Opened<'o>, DropReason> {
        let found = ip::parse_inbound(packet).and_then(|l| {
            let spi =
                packet.get(l.header_len..l.total_len).and_then(|esp| u32_at(esp, 0)).ok_or(DropReason::Malformed)?;
            Ok((l, spi))
        });
        let (layout, spi) = match found {
            Ok(found) => found,
            Err(reason) => {
                self.counters.count_drop(reason);
                return Err(reason);
            }
        };
        match self.sas.get_mut(&(spi, layout.dst)) {
            Some(sa) => sa.open_parsed(now, packet, Ok(layout), out),
            None => {
                self.counters.count_drop(DropReason::UnknownSpi);
                Err(DropReason::UnknownSpi)
            }
        }
    }
}

/// Most outbound SAs kept towards one peer (SAs for different traffic, and the older SAs of a rekeying until
/// they are removed): a bound on the per-packet scan, far above what a rule set produces.
pub const MAX_OUTBOUND_PER_PEER: usize = 64;

/// How long a new outbound SA of the Quick Mode's initiator waits for the peer to use the pair before it takes
/// over anyway. The responder installs the pair only on QM3; when QM3 is lost it gets it again through its QM2
/// retransmissions (after 2, 4, 8, 16 s...), so a short wait would switch one-way traffic to a pair the peer does
/// not have yet. The old pair stays meanwhile: the engine deletes it only once the peer used the new one, or after
/// a cap (`RETIRE_CAP` in ike/rekey.rs, 60 s), when it also decides whether the peer lacks the new pair (then the new
/// one goes instead); this wait is longer than that cap so that the datapath never switches before that decision.
pub const TAKEOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(70);

/// An outbound SA with the traffic it carries.
#[derive(Debug)]
struct OutboundEntry {
    sa: OutboundSa,
    /// Name of its rule ("" for an SA of no rule: it serves every rule).
    rule: Box<str>,
    selector: Selector,
    /// Until when it waits for the peer before taking over from an older SA for the same traffic.
    gate: Option<TakeoverGate>,
}

/// Holds a new outbound SA back from taking over while the peer may not have it yet. The initiator of a Quick
/// Mode has the new pair after QM2, but the responder installs it only when QM3 arrives: packets sealed with it
/// before then are dropped there as unknown SPIs (TCP sees a burst of loss at every rekey, twice a second with
/// Windows' 100,000 KB lifetime at a gigabit). The peer's first packet on the matching inbound SA proves it has
/// the pair; the deadline bounds the wait when no traffic comes back.
#[derive(Debug)]
pub struct TakeoverGate {
    /// Counters of the inbound SA of the same pair.
    pub peer_uses: Arc<SaCounters>,
    /// When the new SA takes over anyway.
    pub until: Instant,
}

impl TakeoverGate {
    #[inline]
    fn open(&self, now: Option<Instant>) -> bool {
        self.peer_uses.packets() > 0 || now.is_none_or(|n| n >= self.until)
    }
}

/// Outbound SAs by peer address, each with the rule and the traffic selector it was negotiated for: a peer may
/// have several (a rule for tcp/9100 and another for udp/161, or one SA per port of a rule). A packet goes out on
/// the narrowest SA of its rule whose selector covers it, and among equally narrow ones on the newest: during a
/// rekeying the new SA takes over at once while the old one stays in the table (and in the [`InboundTable`])
/// until it is removed, so that removing the newer SA first (a `rule test` SA, say) falls back to the older.
/// The per-peer list is short and scanned without allocating.
#[derive(Debug, Default)]
pub struct OutboundTable {
    sas: HashMap<IpAddr, Vec<OutboundEntry>>,
    counters: Arc<SaCounters>,
}

impl OutboundTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sa` for all traffic with its peer, under no particular rule (it serves every rule).
    pub fn insert(&mut self, sa: OutboundSa) -> Option<OutboundSa> {
        self.insert_for(sa, "", Selector::ANY)
    }

    /// Adds `sa` for the traffic of `selector` under `rule`; it takes over from any older SA for the same traffic
    /// (which stays until removed). Returns the oldest SA of the peer when the peer already had
    /// [`MAX_OUTBOUND_PER_PEER`] (it is dropped to make room).
    pub fn insert_for(&mut self, sa: OutboundSa, rule: &str, selector: Selector) -> Option<OutboundSa> {
        self.insert_gated(sa, rule, selector, None)
    }

    /// As [`OutboundTable::insert_for`], but while an older SA covers the same traffic the new one takes over only
    /// once `gate` opens (the peer used the new pair, or its deadline passed). With no older SA it is used at once.
    pub fn insert_gated(
        &mut self,
        sa: OutboundSa,
        rule: &str,
        selector: Selector,
        gate: Option<TakeoverGate>,
    ) -> Option<OutboundSa> {
        let list = self.sas.entry(sa.peer()).or_default();
        let dropped = (list.len() >= MAX_OUTBOUND_PER_PEER).then(|| list.remove(0).sa);
        list.push(OutboundEntry { sa, rule: rule.into(), selector, gate });
        dropped
    }

    /// Removes and returns the SA with SPI `spi`.
    pub fn remove(&mut self, spi: u32) -> Option<OutboundSa> {
        let peer = self.sas.iter().find(|(_, l)| l.iter().any(|e| e.sa.spi() == spi)).map(|(p, _)| *p)?;
        let list = self.sas.get_mut(&peer)?;
        let at = list.iter().position(|e| e.sa.spi() == spi)?;
        let removed = list.remove(at).sa;
        if list.is_empty() {
            self.sas.remove(&peer);
        }
        Some(removed)
    }

    /// Index, in the peer's list, of the SA for a packet of `protocol` from our `local_port` to the peer's
    /// `remote_port` under `rule` (any rule when `None`; SAs of no rule serve every rule).
    /// An SA whose [`TakeoverGate`] is still closed is passed over while another covers the packet (`now` =
    /// `None`: gates are judged by the peer's use alone).
    #[inline]
    fn select(
        list: &[OutboundEntry],
        rule: Option<&str>,
        protocol: u8,
        local_port: u16,
        remote_port: u16,
        now: Option<Instant>,
    ) -> Option<usize> {
        let mut best: Option<(u8, usize)> = None;
        let mut best_gated: Option<(u8, usize)> = None;
        for (i, e) in list.iter().enumerate() {
            let rule_ok = rule.is_none_or(|r| e.rule.is_empty() || *e.rule == *r);
            if rule_ok && e.selector.covers(protocol, local_port, remote_port) {
                let spec = e.selector.specificity();
                let slot = if e.gate.as_ref().is_none_or(|g| g.open(now)) { &mut best } else { &mut best_gated };
                // Later entries are newer: `>=` lets the newest of equally narrow SAs win.
                if slot.is_none_or(|(s, _)| spec >= s) {
                    *slot = Some((spec, i));
                }
            }
        }
        best.or(best_gated).map(|(_, i)| i)
    }

    /// The SA a packet with this flow (as this host sends it) goes out on under `rule` (any rule when `None`).
    #[inline]
    pub fn find(&self, flow: &PacketFlow, rule: Option<&str>) -> Option<&OutboundSa> {
        let list = self.sas.get(&flow.dst)?;
        let i = Self::select(list, rule, flow.protocol, flow.src_port, flow.dst_port, None)?;
        list.get(i).map(|e| &e.sa)
    }

    /// The SAs towards `peer`, oldest first.
    pub fn to_peer(&self, peer: IpAddr) -> impl Iterator<Item = &OutboundSa> {
        self.sas.get(&peer).into_iter().flatten().map(|e| &e.sa)
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.sas.values().map(Vec::len).sum()
    }

    /// Whether the table has no SA.
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    /// Every SA, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &OutboundSa> {
        self.sas.values().flatten().map(|e| &e.sa)
    }

    /// Keeps the SAs for which `keep` says true.
    pub fn retain(&mut self, mut keep: impl FnMut(&OutboundSa) -> bool) {
        for list in self.sas.values_mut() {
            list.retain(|e| keep(&e.sa));
        }
        self.sas.retain(|_, l| !l.is_empty());
    }

    /// Removes and returns the SAs past a hard limit or out of sequence numbers.
    pub fn remove_expired(&mut self, now: Instant) -> Vec<OutboundSa> {
        let mut out = Vec::new();
        for list in self.sas.values_mut() {
            let mut k = 0;
            while k < list.len() {
                if list.get(k).is_some_and(|e| e.sa.is_expired(now)) {
                    out.push(list.remove(k).sa);
                } else {
                    k += 1;
                }
            }
        }
        self.sas.retain(|_, l| !l.is_empty());
        out
    }

    /// Drops that belong to no SA: malformed packets and packets to peers without an SA.
    pub fn counters(&self) -> &Arc<SaCounters> {
        &self.counters
    }

    /// Finds the SA for the packet (any rule; see [`OutboundTable::seal_for`]) and seals the packet with it.
    pub fn seal<'o>(&mut self, now: Instant, packet: &[u8], out: &'o mut [u8]) -> Result<Sealed<'o>, DropReason> {
        self.seal_for(now, packet, out, None)
    }

    /// Finds the SA for the packet under `rule` (any rule when `None`): towards its destination, the narrowest
    /// whose selector covers its protocol and ports, the newest among equals; and seals the packet with it
    /// ([`OutboundSa::seal`]). [`DropReason::NoSa`] when there is none: the daemon's policy decides what happens
    /// to the packet then (bypass, or drop and negotiate).
    pub fn seal_for<'o>(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &'o mut [u8],
        rule: Option<&str>,
    ) -> Result<Sealed<'o>, DropReason> {
        let parsed = ip::parse_outbound(packet)
            .and_then(|l| PacketFlow::parse(packet).map(|f| (l, f)).ok_or(DropReason::Malformed));
        let (layout, flow) = match parsed {
            Ok(x) => x,
            Err(reason) => {
                self.counters.count_drop(reason);
                return Err(reason);
            }
        };
        let found = self.sas.get_mut(&layout.dst).and_then(|list| {
            let i = Self::select(list, rule, flow.protocol, flow.src_port, flow.dst_port, Some(now))?;
            list.get_mut(i)
        });
        match found {
            Some(e) => e.sa.seal_parsed(now, packet, Ok(layout), out),
            None => {
                self.counters.count_drop(DropReason::NoSa);
                Err(DropReason::NoSa)
            }
        }
    }
}
