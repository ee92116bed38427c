//! Finding the SA of a packet. One [`InboundTable`] and one [`OutboundTable`] per datapath thread, owned by it:
//! plain `HashMap`s, no locks (the control plane reaches the SAs through their shared [`SaCounters`] only, and
//! hands new SAs to the thread that owns the table).

use super::bytes::u32_at;
use super::counters::SaCounters;
use super::ip;
use super::sa::{InboundSa, Opened, OutboundSa, Sealed};
use super::DropReason;
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

/// Outbound SAs by peer address: the SA that protects packets to that peer. During a rekeying the new SA
/// replaces the old one here ([`OutboundTable::insert`] returns the old one), while both inbound SAs stay in the
/// [`InboundTable`] until the old one is deleted.
#[derive(Debug, Default)]
pub struct OutboundTable {
    sas: HashMap<IpAddr, OutboundSa>,
    counters: Arc<SaCounters>,
}

impl OutboundTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `sa` the SA towards its peer; returns the one it replaces.
    pub fn insert(&mut self, sa: OutboundSa) -> Option<OutboundSa> {
        self.sas.insert(sa.peer(), sa)
    }

    /// Removes and returns the SA towards `peer`.
    pub fn remove(&mut self, peer: IpAddr) -> Option<OutboundSa> {
        self.sas.remove(&peer)
    }

    /// The SA towards `peer`.
    pub fn get(&self, peer: IpAddr) -> Option<&OutboundSa> {
        self.sas.get(&peer)
    }

    /// The SA towards `peer`, mutably.
    pub fn get_mut(&mut self, peer: IpAddr) -> Option<&mut OutboundSa> {
        self.sas.get_mut(&peer)
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
    pub fn iter(&self) -> impl Iterator<Item = &OutboundSa> {
        self.sas.values()
    }

    /// Keeps the SAs for which `keep` says true.
    pub fn retain(&mut self, mut keep: impl FnMut(&OutboundSa) -> bool) {
        self.sas.retain(|_, sa| keep(sa));
    }

    /// Removes and returns the SAs past a hard limit or out of sequence numbers.
    pub fn remove_expired(&mut self, now: Instant) -> Vec<OutboundSa> {
        let expired: Vec<_> = self.sas.iter().filter(|(_, sa)| sa.is_expired(now)).map(|(k, _)| *k).collect();
        expired.into_iter().filter_map(|k| self.sas.remove(&k)).collect()
    }

    /// Drops that belong to no SA: malformed packets and packets to peers without an SA.
    pub fn counters(&self) -> &Arc<SaCounters> {
        &self.counters
    }

    /// Finds the SA towards the packet's destination and seals the packet with it ([`OutboundSa::seal`]).
    /// [`DropReason::NoSa`] when there is none: the daemon's policy decides what happens to the packet then
    /// (bypass, or drop and negotiate).
    pub fn seal<'o>(&mut self, now: Instant, packet: &[u8], out: &'o mut [u8]) -> Result<Sealed<'o>, DropReason> {
        let layout = match ip::parse_outbound(packet) {
            Ok(l) => l,
            Err(reason) => {
                self.counters.count_drop(reason);
                return Err(reason);
            }
        };
        match self.sas.get_mut(&layout.dst) {
            Some(sa) => sa.seal_parsed(now, packet, Ok(layout), out),
            None => {
                self.counters.count_drop(DropReason::NoSa);
                Err(DropReason::NoSa)
            }
        }
    }
}
