//! Outbound and inbound ESP SAs: sequence numbers, lifetimes, the replay window, and transport-mode packet
//! processing (RFC 4303 §3.3 outbound, §3.4 inbound).

use super::counters::SaCounters;
use super::ip::{self, IpLayout};
use super::keys::{parse_trailer, Layout, OpeningKeys, SealingKeys, ESP_HEADER_LEN};
use super::replay::ReplayWindow;
use super::{bytes, DropReason, PROTO_ESP, PROTO_IPV4, PROTO_IPV6, PROTO_NONE};
use crate::crypto::{EspTransform, Secret};
use crate::ike::ChildSaKeys;
use rand_core::CryptoRngCore;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How far below the last sequence number the "rekey soon" flag goes up: 2^20 packets before the 32-bit
/// counter runs out (RFC 4303 §3.3.3: the SA must be replaced before the counter would cycle), which leaves a
/// million packets, seconds to minutes at line rate, for the rekeying to finish.
pub const SEQ_SOFT_MARGIN: u64 = 1 << 20;

/// Lifetime limits of an SA (RFC 4301 §4.4.2.1): past a soft limit the results carry `rekey_soon` (the daemon
/// starts a rekeying), at a hard limit the SA refuses every packet with [`DropReason::Expired`]. Bytes are ESP
/// payload bytes (see [`SaCounters::bytes`]). `u64::MAX` and `None` mean no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeLimits {
    /// Soft byte limit.
    pub soft_bytes: u64,
    /// Hard byte limit: the SA is expired once this many bytes went through it.
    pub hard_bytes: u64,
    /// Soft packet limit.
    pub soft_packets: u64,
    /// Hard packet limit.
    pub hard_packets: u64,
    /// Soft time limit.
    pub soft_time: Option<Instant>,
    /// Hard time limit.
    pub hard_time: Option<Instant>,
    /// A soft byte limit by rate: reached earlier than `soft_bytes` when the SA's bytes run out fast.
    pub soft_bytes_by_rate: Option<ByteRateMargin>,
}

/// Makes the soft byte limit come early enough for a rekey to finish at a high rate. A fixed soft limit of 90 %
/// leaves 0.8 s of traffic at 20 Mbit/s with 20,480 KB, less than one IKE retransmission: a lost Quick Mode
/// message then runs the SA into its hard limit before the successor is up. With this margin the soft limit is
/// also reached once `from_bytes` went through and, at the average rate since `since`, the rest of the hard byte
/// limit would last less than `keep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRateMargin {
    /// When the SA was installed.
    pub since: Instant,
    /// The time the remaining bytes must last when the rekey starts.
    pub keep: Duration,
    /// Never before this many bytes (a short burst right after installation says little about the rate).
    pub from_bytes: u64,
}

impl ByteRateMargin {
    /// Whether, with `bytes` of `hard` gone at `now`, the rest would last less than `keep` at the average rate.
    #[inline]
    fn reached(&self, now: Instant, bytes: u64, hard: u64) -> bool {
        if bytes < self.from_bytes || bytes == 0 || hard == u64::MAX {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.since).as_nanos();
        // Time left = elapsed × left / bytes; compared without dividing.
        elapsed * u128::from(hard.saturating_sub(bytes)) < self.keep.as_nanos() * u128::from(bytes)
    }
}

impl LifetimeLimits {
    /// No limits at all (tests, benchmarks); the sequence number limit still applies.
    pub const UNLIMITED: LifetimeLimits = LifetimeLimits {
        soft_bytes: u64::MAX,
        hard_bytes: u64::MAX,
        soft_packets: u64::MAX,
        hard_packets: u64::MAX,
        soft_time: None,
        hard_time: None,
        soft_bytes_by_rate: None,
    };

    /// Limits from what Quick Mode agreed: `lifetime` from `now` and `kilobytes` (0: none) as the hard limits,
    /// the soft limits at 90 % of them (the daemon may jitter its own soft deadline so that both peers do not
    /// rekey at once).
    pub fn from_negotiated(now: Instant, lifetime: Duration, kilobytes: u64) -> Self {
        let hard_bytes = if kilobytes == 0 { u64::MAX } else { kilobytes.saturating_mul(1024) };
        let soft_bytes = if kilobytes == 0 { u64::MAX } else { hard_bytes / 10 * 9 };
        LifetimeLimits {
            soft_bytes,
            hard_bytes,
            soft_packets: u64::MAX,
            hard_packets: u64::MAX,
            soft_time: now.checked_add(lifetime.mul_f64(0.9)),
            hard_time: now.checked_add(lifetime),
            soft_bytes_by_rate: None,
        }
    }

    #[inline]
    fn expired(&self, now: Instant, bytes: u64, packets: u64) -> bool {
        bytes >= self.hard_bytes || packets >= self.hard_packets || self.hard_time.is_some_and(|t| now >= t)
    }

    #[inline]
    fn soft_reached(&self, now: Instant, bytes: u64, packets: u64) -> bool {
        bytes >= self.soft_bytes
            || packets >= self.soft_packets
            || self.soft_time.is_some_and(|t| now >= t)
            || self.soft_bytes_by_rate.is_some_and(|m| m.reached(now, bytes, self.hard_bytes))
    }
}

/// Everything an SA is made from: what IKE negotiated for one direction, and the limits and counters the
/// daemon gives it. Keys are [`Secret`]s (wiped on drop, redacted in `Debug`).
#[derive(Debug, Clone)]
pub struct SaConfig {
    /// The SPI (chosen by the receiving side, RFC 4303 §2.1).
    pub spi: u32,
    /// The ESP transform.
    pub transform: EspTransform,
    /// Encryption key, with the 4-byte salt appended for AES-GCM (RFC 4106 §8.1): the `encryption_key_*` of
    /// [`ChildSaKeys`].
    pub encryption_key: Secret,
    /// Integrity key (empty for AES-GCM).
    pub integrity_key: Secret,
    /// This host's address.
    pub local: IpAddr,
    /// The peer's address.
    pub peer: IpAddr,
    /// Lifetime limits.
    pub limits: LifetimeLimits,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1, RFC 4304). hostsec's IKEv1 does not negotiate
    /// them yet; the datapath supports them.
    pub esn: bool,
    /// Counters shared with the control plane.
    pub counters: Arc<SaCounters>,
}

impl SaConfig {
    /// The inbound and outbound SA configurations of a Quick Mode SA pair, with fresh counters.
    pub fn from_child_keys(keys: &ChildSaKeys, limits: LifetimeLimits) -> (SaConfig, SaConfig) {
        let info = &keys.info;
        let inbound = SaConfig {
            spi: info.spi_in,
            transform: info.transform,
            encryption_key: keys.encryption_key_in.clone(),
            integrity_key: keys.integrity_key_in.clone(),
            local: info.local.ip(),
            peer: info.peer.ip(),
            limits,
            esn: false,
            counters: Arc::new(SaCounters::new()),
        };
        let outbound = SaConfig {
            spi: info.spi_out,
            encryption_key: keys.encryption_key_out.clone(),
            integrity_key: keys.integrity_key_out.clone(),
            counters: Arc::new(SaCounters::new()),
            ..inbound.clone()
        };
        (inbound, outbound)
    }

    fn check_addresses(&self) -> Result<(), SaError> {
        if self.local.is_ipv4() != self.peer.is_ipv4() {
            return Err(SaError::AddressFamilies { local: self.local, peer: self.peer });
        }
        Ok(())
    }
}

/// Why an SA could not be created. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    /// AES-GCM with an integrity algorithm, or AES-CBC without one (RFC 4303 §3.2 requires integrity for
    /// hostsec's SAs: confidentiality-only ESP is not offered).
    #[error("{0} is not a usable ESP transform")]
    InvalidTransform(EspTransform),
    /// A key of the wrong length for the transform.
    #[error("{what} key: expected {expected} bytes, got {got}")]
    KeyLength {
        /// Which key.
        what: &'static str,
        /// Length the transform needs.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// Local and peer addresses of different IP versions.
    #[error("local address {local} and peer address {peer} are of different IP versions")]
    AddressFamilies {
        /// Local address.
        local: IpAddr,
        /// Peer address.
        peer: IpAddr,
    },
    /// The crypto library refused a key (not expected for keys of the right length).
    #[error("crypto library failure: {0}")]
    Library(&'static str),
}

/// A sealed packet: the whole outer packet, in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed<'o> {
    /// The outer packet: the original IP header (protocol 50, lengths and checksum fixed), ESP header, IV,
    /// ciphertext, ICV.
    pub packet: &'o [u8],
    /// Its sequence number.
    pub seq: u64,
    /// A soft limit is crossed: the daemon should start rekeying the SA.
    pub rekey_soon: bool,
    /// The SPI of the SA that sealed it (the one to rekey: a table may have switched to a newer SA since).
    pub spi: u32,
}

/// A sealed ESP packet without IP header ([`OutboundSa::seal_esp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedEsp<'o> {
    /// SPI through ICV.
    pub esp: &'o [u8],
    /// Its sequence number.
    pub seq: u64,
    /// A soft limit is crossed.
    pub rekey_soon: bool,
}

/// An opened packet: the inner packet, in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'o> {
    /// The inner packet: the outer IP header with the protocol / next header of the payload, lengths and
    /// checksum fixed, and IPv6 extension headers in front of ESP kept; then the decrypted payload.
    pub packet: &'o [u8],
    /// The payload's protocol (the ESP next header).
    pub next_header: u8,
    /// The packet's sequence number (all 64 bits with ESN).
    pub seq: u64,
    /// A soft limit is crossed.
    pub rekey_soon: bool,
}

/// A decrypted ESP payload ([`InboundSa::open_esp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspPayload<'o> {
    /// The payload, without padding and trailer.
    pub payload: &'o [u8],
    /// The ESP next header.
    pub next_header: u8,
    /// The packet's sequence number.
    pub seq: u64,
    /// A soft limit is crossed.
    pub rekey_soon: bool,
}

/// The outbound half of an SA pair: seals packets to the peer. Owned by one datapath thread (`&mut self`: the
/// sequence number is per SA and must never repeat, RFC 4303 §3.3.3).
pub struct OutboundSa {
    spi: u32,
    transform: EspTransform,
    keys: SealingKeys,
    layout: Layout,
    local: IpAddr,
    peer: IpAddr,
    limits: LifetimeLimits,
    esn: bool,
    /// Last sequence number used (0: none yet). `u64` so that ESN needs no other type.
    seq: u64,
    bytes: u64,
    packets: u64,
    counters: Arc<SaCounters>,
}

impl OutboundSa {
    /// The SA from its configuration. `rng` gives the 32 bytes of the CBC IV key (see the IV comment in
    /// the key module): the daemon's CSPRNG, once per SA, never per packet.
    pub fn new(config: &SaConfig, rng: &mut dyn CryptoRngCore) -> Result<Self, SaError> {
        config.check_addresses()?;
        let mut iv_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut iv_key[..]);
        let keys =
            SealingKeys::new(config.transform, config.encryption_key.expose(), config.integrity_key.expose(), &iv_key)?;
        Ok(OutboundSa {
            spi: config.spi,
            transform: config.transform,
            layout: keys.layout(),
            keys,
            local: config.local,
            peer: config.peer,
            limits: config.limits,
            esn: config.esn,
            seq: 0,
            bytes: 0,
            packets: 0,
            counters: config.counters.clone(),
        })
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The transform.
    pub fn transform(&self) -> EspTransform {
        self.transform
    }

    /// This host's address.
    pub fn local(&self) -> IpAddr {
        self.local
    }

    /// The peer's address.
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// The shared counters.
    pub fn counters(&self) -> &Arc<SaCounters> {
        &self.counters
    }

    /// The lifetime limits.
    pub fn limits(&self) -> LifetimeLimits {
        self.limits
    }

    /// Replaces the lifetime limits (e.g. when the daemon defers a soft deadline).
    pub fn set_limits(&mut self, limits: LifetimeLimits) {
        self.limits = limits;
    }

    /// The last sequence number used (0: none yet).
    pub fn last_sequence(&self) -> u64 {
        self.seq
    }

    /// Most bytes [`OutboundSa::seal`] adds to a packet: `out` must have `packet.len() + max_overhead()`
    /// bytes (or [`super::MAX_OVERHEAD`] for any SA).
    pub fn max_overhead(&self) -> usize {
        self.layout.max_overhead()
    }

    /// Skips sequence numbers: the next packet gets `last_used + 1`. Only ever forward (a sequence number, which
    /// is also the GCM IV, must never be used twice); a smaller value is ignored. For tests of exhaustion and
    /// for resuming an SA whose earlier numbers were used elsewhere.
    pub fn fast_forward_sequence(&mut self, last_used: u64) {
        self.seq = self.seq.max(last_used);
    }

    /// Whether a soft limit is crossed (time, bytes, packets, or sequence numbers near the end).
    #[inline]
    pub fn rekey_soon(&self, now: Instant) -> bool {
        self.limits.soft_reached(now, self.bytes, self.packets)
            || self.seq >= self.max_seq().saturating_sub(SEQ_SOFT_MARGIN)
    }

    /// Whether the SA refuses every packet now (a hard limit, or no sequence number left).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.limits.expired(now, self.bytes, self.packets) || self.seq >= self.max_seq()
    }

    #[inline]
    fn max_seq(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// The next sequence number, after the hard limits: RFC 4303 §3.3.3, the counter never cycles (the last
    /// 32-bit number is 2^32 − 1; after it the SA needs rekeying).
    #[inline]
    fn next_seq(&mut self, now: Instant) -> Result<u64, DropReason> {
        if self.limits.expired(now, self.bytes, self.packets) {
            return Err(DropReason::Expired);
        }
        if self.seq >= self.max_seq() {
            return Err(DropReason::SequenceExhausted);
        }
        self.seq += 1;
        Ok(self.seq)
    }

    #[inline]
    fn account(&mut self, now: Instant, payload_len: usize) -> bool {
        self.bytes = self.bytes.saturating_add(payload_len as u64);
        self.packets = self.packets.saturating_add(1);
        self.counters.publish(self.bytes, self.packets);
        self.rekey_soon(now)
    }

    /// Seals a whole IPv4 or IPv6 packet from the local stack into `out` (transport mode, RFC 4303 §3.1.1,
    /// §3.3): the IP header stays in front (IPv4 options included; IPv6 hop-by-hop, routing and fragment
    /// headers and destination options before a routing header too, their next-header chain re-linked to
    /// ESP), the rest is encrypted. Refused: fragments, malformed headers, source/destination other than the
    /// SA's local/peer, results that do not fit `out` or the IP length field, and anything after a hard
    /// limit or the last sequence number. A refusal consumes no sequence number (except on a crypto library
    /// failure) and is counted in the SA's counters. The IPv4 header checksum is updated for the changed fields,
    /// not verified (the local stack computed it).
    pub fn seal<'o>(&mut self, now: Instant, packet: &[u8], out: &'o mut [u8]) -> Result<Sealed<'o>, DropReason> {
        let layout = ip::parse_outbound(packet);
        self.seal_parsed(now, packet, layout, out)
    }

    /// [`OutboundSa::seal`] with the packet's header already parsed (by the table that found this SA).
    pub(crate) fn seal_parsed<'o>(
        &mut self,
        now: Instant,
        packet: &[u8],
        layout: Result<IpLayout, DropReason>,
        out: &'o mut [u8],
    ) -> Result<Sealed<'o>, DropReason> {
        match self.seal_packet(now, packet, layout, out) {
            Ok((len, seq, rekey_soon)) => {
                let out: &'o [u8] = out;
                let packet = out.get(..len).ok_or(DropReason::BufferTooSmall)?;
                Ok(Sealed { packet, seq, rekey_soon, spi: self.spi() })
            }
            Err(reason) => {
                self.counters.count_drop(reason);
                Err(reason)
            }
        }
    }

    fn seal_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        layout: Result<IpLayout, DropReason>,
        out: &mut [u8],
    ) -> Result<(usize, u64, bool), DropReason> {
        let l = layout?;
        if l.src != self.local || l.dst != self.peer {
            return Err(DropReason::WrongAddresses);
        }
        let header = packet.get(..l.header_len).ok_or(DropReason::Malformed)?;
        let payload = packet.get(l.header_len..l.total_len).ok_or(DropReason::Malformed)?;
        let esp_len = self.layout.sealed_len(payload.len()).ok_or(DropReason::TooBig)?;
        let total = l.header_len.checked_add(esp_len).ok_or(DropReason::TooBig)?;
        if total > ip::max_total_len(l.family) {
            return Err(DropReason::TooBig);
        }
        let (head, esp_out) = out
            .get_mut(..total)
            .and_then(|o| o.split_at_mut_checked(l.header_len))
            .ok_or(DropReason::BufferTooSmall)?;
        let seq = self.next_seq(now)?;
        head.copy_from_slice(header);
        self.keys.seal(self.spi, seq, self.esn, payload, l.next_header, esp_out)?;
        ip::finish_header(out, &l, PROTO_ESP, total)?;
        Ok((total, seq, self.account(now, payload.len())))
    }

    /// Seals `payload` with next header `next_header` as an ESP packet without IP header (SPI through ICV):
    /// the ESP layer of [`OutboundSa::seal`], with the same sequence numbers and limits, for callers that build
    /// the rest themselves (UDP encapsulation, tests).
    pub fn seal_esp<'o>(
        &mut self,
        now: Instant,
        next_header: u8,
        payload: &[u8],
        out: &'o mut [u8],
    ) -> Result<SealedEsp<'o>, DropReason> {
        match self.seal_esp_packet(now, next_header, payload, out) {
            Ok((len, seq, rekey_soon)) => {
                let out: &'o [u8] = out;
                Ok(SealedEsp { esp: out.get(..len).ok_or(DropReason::BufferTooSmall)?, seq, rekey_soon })
            }
            Err(reason) => {
                self.counters.count_drop(reason);
                Err(reason)
            }
        }
    }

    fn seal_esp_packet(
        &mut self,
        now: Instant,
        next_header: u8,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, u64, bool), DropReason> {
        let len = self.layout.sealed_len(payload.len()).ok_or(DropReason::TooBig)?;
        if out.len() < len {
            return Err(DropReason::BufferTooSmall);
        }
        let seq = self.next_seq(now)?;
        let len = self.keys.seal(self.spi, seq, self.esn, payload, next_header, out)?;
        Ok((len, seq, self.account(now, payload.len())))
    }
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("transform", &self.transform.name())
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("esn", &self.esn)
            .field("seq", &self.seq)
            .field("bytes", &self.bytes)
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

/// The inbound half of an SA pair: opens packets from the peer. Owned by one datapath thread (`&mut self`: the
/// replay window is per SA).
pub struct InboundSa {
    spi: u32,
    transform: EspTransform,
    keys: OpeningKeys,
    local: IpAddr,
    peer: IpAddr,
    limits: LifetimeLimits,
    esn: bool,
    window: ReplayWindow,
    bytes: u64,
    packets: u64,
    counters: Arc<SaCounters>,
}

impl InboundSa {
    /// The SA from its configuration.
    pub fn new(config: &SaConfig) -> Result<Self, SaError> {
        config.check_addresses()?;
        Ok(InboundSa {
            spi: config.spi,
            transform: config.transform,
            keys: OpeningKeys::new(config.transform, config.encryption_key.expose(), config.integrity_key.expose())?,
            local: config.local,
            peer: config.peer,
            limits: config.limits,
            esn: config.esn,
            window: ReplayWindow::new(),
            bytes: 0,
            packets: 0,
            counters: config.counters.clone(),
        })
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The transform.
    pub fn transform(&self) -> EspTransform {
        self.transform
    }

    /// This host's address (the packets' destination).
    pub fn local(&self) -> IpAddr {
        self.local
    }

    /// The peer's address (the packets' source).
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// The shared counters.
    pub fn counters(&self) -> &Arc<SaCounters> {
        &self.counters
    }

    /// The lifetime limits.
    pub fn limits(&self) -> LifetimeLimits {
        self.limits
    }

    /// Replaces the lifetime limits.
    pub fn set_limits(&mut self, limits: LifetimeLimits) {
        self.limits = limits;
    }

    /// The replay window.
    pub fn window(&self) -> &ReplayWindow {
        &self.window
    }

    /// Whether a soft limit is crossed.
    pub fn rekey_soon(&self, now: Instant) -> bool {
        self.limits.soft_reached(now, self.bytes, self.packets)
    }

    /// Whether a hard limit is reached: the SA drops everything.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.limits.expired(now, self.bytes, self.packets)
    }

    /// Opens a whole outer IPv4/IPv6 packet with protocol 50 into `out` (which needs `packet.len()` bytes at
    /// most), in the order of RFC 4303 §3.4: cheap checks (lengths, SPI, outer addresses, hard lifetime), replay
    /// check, ICV verification (AES-GCM: tag, while decrypting), replay window update, decryption (CBC),
    /// padding check; then the next header: IPv4/IPv6 (tunnel mode) is refused, 59 (dummy) dropped quietly,
    /// anything else rebuilt into the inner packet. Every drop is counted in the SA's counters.
    pub fn open<'o>(&mut self, now: Instant, packet: &[u8], out: &'o mut [u8]) -> Result<Opened<'o>, DropReason> {
        let l = ip::parse_inbound(packet);
        self.open_parsed(now, packet, l, out)
    }

    /// [`InboundSa::open`] with the outer header already parsed (by the table that found this SA).
    pub(crate) fn open_parsed<'o>(
        &mut self,
        now: Instant,
        packet: &[u8],
        layout: Result<IpLayout, DropReason>,
        out: &'o mut [u8],
    ) -> Result<Opened<'o>, DropReason> {
        match self.open_packet(now, packet, layout, out) {
            Ok((len, next_header, seq, rekey_soon)) => {
                let out: &'o [u8] = out;
                Ok(Opened { packet: out.get(..len).ok_or(DropReason::BufferTooSmall)?, next_header, seq, rekey_soon })
            }
            Err(reason) => {
                self.counters.count_drop(reason);
                Err(reason)
            }
        }
    }

    fn open_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        layout: Result<IpLayout, DropReason>,
        out: &mut [u8],
    ) -> Result<(usize, u8, u64, bool), DropReason> {
        let l = layout?;
        let esp = packet.get(l.header_len..l.total_len).ok_or(DropReason::Malformed)?;
        self.check_spi(esp)?;
        if l.src != self.peer || l.dst != self.local {
            return Err(DropReason::WrongAddresses);
        }
        let (head, inner) = out.split_at_mut_checked(l.header_len).ok_or(DropReason::BufferTooSmall)?;
        head.copy_from_slice(packet.get(..l.header_len).ok_or(DropReason::Malformed)?);
        let (payload_len, next_header, seq, rekey_soon) = self.decrypt(now, esp, inner)?;
        transport_payload(next_header)?;
        let total = l.header_len + payload_len;
        ip::finish_header(out, &l, next_header, total)?;
        Ok((total, next_header, seq, rekey_soon))
    }

    /// Opens an ESP packet without IP header (SPI through ICV) into `out`: everything [`InboundSa::open`]
    /// does except what needs the IP header (outer addresses, which the caller must check) and the next-header
    /// policy (the payload is returned whatever its next header, tunnel mode and dummy packets included). For
    /// UDP-encapsulated ESP and for tests that look at decrypted tunnel-mode payloads.
    pub fn open_esp<'o>(&mut self, now: Instant, esp: &[u8], out: &'o mut [u8]) -> Result<EspPayload<'o>, DropReason> {
        let result = self.check_spi(esp).and_then(|()| self.decrypt(now, esp, out));
        match result {
            Ok((payload_len, next_header, seq, rekey_soon)) => {
                let out: &'o [u8] = out;
                let payload = out.get(..payload_len).ok_or(DropReason::BufferTooSmall)?;
                Ok(EspPayload { payload, next_header, seq, rekey_soon })
            }
            Err(reason) => {
                self.counters.count_drop(reason);
                Err(reason)
            }
        }
    }

    /// [`InboundSa::open_esp`] with the next-header policy of [`InboundSa::open`] (tunnel-mode and dummy packets
    /// refused and counted): for UDP-encapsulated ESP of a transport-mode SA, whose IP header the caller rebuilds.
    pub fn open_transport_esp<'o>(
        &mut self,
        now: Instant,
        esp: &[u8],
        out: &'o mut [u8],
    ) -> Result<EspPayload<'o>, DropReason> {
        let result = self
            .check_spi(esp)
            .and_then(|()| self.decrypt(now, esp, out))
            .and_then(|r| transport_payload(r.1).map(|()| r));
        match result {
            Ok((payload_len, next_header, seq, rekey_soon)) => {
                let out: &'o [u8] = out;
                let payload = out.get(..payload_len).ok_or(DropReason::BufferTooSmall)?;
                Ok(EspPayload { payload, next_header, seq, rekey_soon })
            }
            Err(reason) => {
                self.counters.count_drop(reason);
                Err(reason)
            }
        }
    }

    #[inline]
    fn check_spi(&self, esp: &[u8]) -> Result<(), DropReason> {
        // Cheapest checks first: a packet shorter than header, IV, ICV and trailer cannot be ESP of this SA.
        if esp.len() < ESP_HEADER_LEN + self.keys.iv_len() + self.keys.icv_len() + 2 {
            return Err(DropReason::Malformed);
        }
        if bytes::u32_at(esp, 0) != Some(self.spi) {
            return Err(DropReason::UnknownSpi);
        }
        Ok(())
    }

    /// Replay check, verification, window update, decryption and trailer of an ESP packet whose length and SPI
    /// were checked. Returns payload length, next header, sequence number and the soft-limit flag.
    fn decrypt(&mut self, now: Instant, esp: &[u8], out: &mut [u8]) -> Result<(usize, u8, u64, bool), DropReason> {
        if self.limits.expired(now, self.bytes, self.packets) {
            return Err(DropReason::Expired);
        }
        let seq_low = bytes::u32_at(esp, 4).ok_or(DropReason::Malformed)?;
        let seq = if self.esn { self.window.infer_esn(seq_low) } else { u64::from(seq_low) };
        // RFC 4303 §3.4.3: duplicates and packets left of the window are dropped before the (costly) ICV check.
        if !self.window.check(seq) {
            return Err(DropReason::Replayed);
        }
        let window = &mut self.window;
        // The window moves only once the packet authenticated (§3.4.3 "after" the ICV check, §3.4.4).
        let len = self.keys.open_with(esp, seq, self.esn, out, || window.update(seq))?;
        let (payload_len, next_header) = parse_trailer(out.get(..len).ok_or(DropReason::BufferTooSmall)?)?;
        self.bytes = self.bytes.saturating_add(payload_len as u64);
        self.packets = self.packets.saturating_add(1);
        self.counters.publish(self.bytes, self.packets);
        Ok((payload_len, next_header, seq, self.rekey_soon(now)))
    }
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("transform", &self.transform.name())
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("esn", &self.esn)
            .field("window", &self.window)
            .field("bytes", &self.bytes)
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

/// What a transport-mode SA delivers: not tunnel mode (an inner IP packet), not a dummy packet (RFC 4303 §2.6).
fn transport_payload(next_header: u8) -> Result<(), DropReason> {
    match next_header {
        PROTO_IPV4 | PROTO_IPV6 => Err(DropReason::TunnelMode),
        PROTO_NONE => Err(DropReason::Dummy),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sas_can_move_to_datapath_threads() {
        fn send<T: Send>() {}
        send::<OutboundSa>();
        send::<InboundSa>();
    }

    #[test]
    fn negotiated_limits() {
        let now = Instant::now();
        let l = LifetimeLimits::from_negotiated(now, Duration::from_secs(3600), 1000);
        assert_eq!(l.hard_bytes, 1_024_000);
        assert_eq!(l.soft_bytes, 921_600);
        assert_eq!(l.hard_time, Some(now + Duration::from_secs(3600)));
        assert_eq!(l.soft_time, Some(now + Duration::from_secs(3240)));
        assert_eq!(LifetimeLimits::from_negotiated(now, Duration::from_secs(1), 0).hard_bytes, u64::MAX);
    }
}
