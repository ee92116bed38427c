//! ESP (RFC 4303) in transport mode: the packet engine of the daemon's datapath threads.
//!
//! Sans-IO like the rest of the crate: packets come in as byte slices, results are written into caller buffers,
//! time comes in as [`std::time::Instant`] arguments, and nothing here allocates per packet, reads a clock,
//! takes a lock or does a system call.
//!
//! - [`OutboundSa::seal`] turns a whole IPv4/IPv6 packet (as read from a TUN device) into the whole outer packet
//!   (same IP header, protocol 50, ESP header, IV, ciphertext, ICV).
//! - [`InboundSa::open`] turns a whole outer packet into the inner packet, or says why it was dropped
//!   ([`DropReason`]), in the processing order of RFC 4303 §3.4.
//! - [`ReplayWindow`] is the anti-replay window of RFC 4303 §3.4.3 and appendix A (2048 packets).
//! - [`InboundTable`] and [`OutboundTable`] find the SA of a packet (outbound: by peer, rule and traffic
//!   selector, read with [`PacketFlow`]); one of each per datapath thread, no locks.
//! - [`SaCounters`] are shared (`Arc`) with the control plane, which reads them without locks.
//!
//! Transforms: AES-GCM-16 with 128/192/256-bit keys (RFC 4106) and AES-CBC 128/192/256 (RFC 3602) with
//! HMAC-SHA-1-96 (RFC 2404) or HMAC-SHA-256-128 (RFC 4868), as [`crate::crypto::EspTransform`] names them.
//! The keys are held in aws-lc-rs key objects built once per SA (see [`OpeningKeys`]).
//!
//! Nothing in this module may panic on packet data: every access to packet bytes is a checked one (the lints
//! below make indexing a compile error here).
//!
//! ```
//! use hostsec_proto::crypto::{EspCipher, EspIntegrity, EspTransform, Secret};
//! use hostsec_proto::esp::{InboundSa, LifetimeLimits, OutboundSa, SaConfig, SaCounters, MAX_OVERHEAD};
//! use std::{sync::Arc, time::Instant};
//!
//! // What Quick Mode negotiated (see `SaConfig::from_child_keys` for the real thing).
//! let transform = EspTransform { cipher: EspCipher::AesGcm16_128, integrity: EspIntegrity::None };
//! let config = |local: &str, peer: &str| SaConfig {
//!     spi: 0xc0ffee01,
//!     transform,
//!     encryption_key: Secret::new(vec![7; 20]), // 16-byte key and 4-byte salt
//!     integrity_key: Secret::new(vec![]),
//!     local: local.parse().unwrap(),
//!     peer: peer.parse().unwrap(),
//!     limits: LifetimeLimits::UNLIMITED,
//!     esn: false,
//!     counters: Arc::new(SaCounters::new()),
//! };
//! let mut rng = rand_core::OsRng;
//! let mut outbound = OutboundSa::new(&config("192.0.2.1", "192.0.2.2"), &mut rng)?;
//! let mut inbound = InboundSa::new(&config("192.0.2.2", "192.0.2.1"))?;
//!
//! // An IPv4 UDP packet 192.0.2.1 -> 192.0.2.2 as read from the TUN device.
//! let mut packet = vec![0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
//! let mut sum: u32 = packet.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
//! while sum > 0xffff {
//!     sum = (sum & 0xffff) + (sum >> 16);
//! }
//! packet[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
//! packet.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4]);
//!
//! let now = Instant::now();
//! let mut wire = vec![0u8; packet.len() + MAX_OVERHEAD];
//! let sealed = outbound.seal(now, &packet, &mut wire)?; // to the raw socket
//! assert_eq!(sealed.packet[9], 50);
//! let sealed = sealed.packet.to_vec();
//!
//! let mut inner = vec![0u8; sealed.len()];
//! let opened = inbound.open(now, &sealed, &mut inner)?; // to the TUN device
//! assert_eq!(opened.packet, &packet[..]);
//! assert_eq!(inbound.counters().snapshot().packets, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bytes;
mod counters;
mod flow;
mod ip;
mod keys;
mod replay;
mod sa;
mod table;

pub use counters::{CounterSnapshot, SaCounters};
pub use flow::PacketFlow;
pub use keys::{parse_trailer, OpeningKeys};
pub use replay::ReplayWindow;
pub use sa::{
    ByteRateMargin, EspPayload, InboundSa, LifetimeLimits, Opened, OutboundSa, SaConfig, SaError, Sealed, SealedEsp,
    SEQ_SOFT_MARGIN,
};
pub use table::{InboundTable, OutboundTable, TakeoverGate, MAX_OUTBOUND_PER_PEER, TAKEOVER_WAIT};

use std::fmt;

/// IP protocol number of ESP (IANA; RFC 4303 §2).
pub const PROTO_ESP: u8 = 50;
/// IP protocol number of IP-in-IP (IPv4 inside): a tunnel-mode payload (RFC 4303 §2.6, RFC 2003).
pub const PROTO_IPV4: u8 = 4;
/// IP protocol number of IPv6 inside: a tunnel-mode payload (RFC 4303 §2.6, RFC 2473).
pub const PROTO_IPV6: u8 = 41;
/// "No next header": the Next Header value of a dummy (traffic flow confidentiality) packet (RFC 4303 §2.6).
pub const PROTO_NONE: u8 = 59;

/// Bytes an ESP header adds at most in front of and behind the payload, over every transform hostsec supports:
/// SPI and sequence number (8), CBC IV (16), padding up to the AES block (15), pad length and next header (2),
/// ICV (16). A caller buffer of `packet.len() + MAX_OVERHEAD` always fits the sealed packet.
pub const MAX_OVERHEAD: usize = 8 + 16 + 15 + 2 + 16;

/// Why a packet was not sealed or not opened. Every refusal and drop of this module has exactly one reason;
/// the SA's [`SaCounters`] count them by reason, and `hostsec stats` prints them by [`DropReason::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// Not a well-formed IPv4/IPv6 packet or ESP packet: too short, inconsistent lengths, bad IPv4 header
    /// checksum (outbound), not ESP (inbound), CBC ciphertext not a multiple of the block.
    Malformed,
    /// An IP fragment. Transport-mode ESP applies to whole datagrams only: the sender fragments after ESP and
    /// the receiver reassembles before it (RFC 4303 §3.3.4 and §3.4.1).
    Fragment,
    /// The packet's source or destination is not the SA's (RFC 4301 §5.2: the SA is bound to its selectors,
    /// here the two host addresses).
    WrongAddresses,
    /// Inbound: no SA has this SPI for this destination (RFC 4303 §3.4.2), or the SPI is not this SA's.
    UnknownSpi,
    /// Outbound: no SA towards the packet's destination.
    NoSa,
    /// The caller's output buffer is too small for the result (nothing was consumed: no sequence number, no
    /// replay window update).
    BufferTooSmall,
    /// The sealed packet would exceed the 65535-byte limit of the IP length fields.
    TooBig,
    /// Inbound: a sequence number already received, or left of the replay window (RFC 4303 §3.4.3).
    Replayed,
    /// Inbound: the ICV (HMAC) or the AES-GCM tag did not verify (RFC 4303 §3.4.4).
    AuthenticationFailed,
    /// Inbound, after authentication: the padding is not 1, 2, 3, … or longer than the plaintext
    /// (RFC 4303 §2.4).
    BadPadding,
    /// Inbound, after authentication: the next header is IPv4 or IPv6, i.e. a tunnel-mode packet; hostsec
    /// negotiates transport mode only.
    TunnelMode,
    /// Inbound, after authentication: a dummy packet (next header 59, RFC 4303 §2.6), discarded quietly.
    Dummy,
    /// A hard lifetime (time, bytes or packets) of the SA is reached: it must not be used any more
    /// (RFC 4301 §4.4.2.1).
    Expired,
    /// Outbound: every sequence number has been used; the counter must never cycle, the SA must be rekeyed
    /// (RFC 4303 §3.3.3).
    SequenceExhausted,
    /// The crypto library reported an internal failure (not caused by the packet).
    CryptoFailure,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 15] = [
        DropReason::Malformed,
        DropReason::Fragment,
        DropReason::WrongAddresses,
        DropReason::UnknownSpi,
        DropReason::NoSa,
        DropReason::BufferTooSmall,
        DropReason::TooBig,
        DropReason::Replayed,
        DropReason::AuthenticationFailed,
        DropReason::BadPadding,
        DropReason::TunnelMode,
        DropReason::Dummy,
        DropReason::Expired,
        DropReason::SequenceExhausted,
        DropReason::CryptoFailure,
    ];

    /// Number of reasons (the length of the counter array).
    pub const COUNT: usize = Self::ALL.len();

    /// Position of this reason in [`DropReason::ALL`] and in the counter array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The short name `hostsec stats` and the JSON output use (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Fragment => "fragment",
            DropReason::WrongAddresses => "wrong-addresses",
            DropReason::UnknownSpi => "unknown-spi",
            DropReason::NoSa => "no-sa",
            DropReason::BufferTooSmall => "buffer-too-small",
            DropReason::TooBig => "too-big",
            DropReason::Replayed => "replayed",
            DropReason::AuthenticationFailed => "authentication-failed",
            DropReason::BadPadding => "bad-padding",
            DropReason::TunnelMode => "tunnel-mode",
            DropReason::Dummy => "dummy",
            DropReason::Expired => "expired",
            DropReason::SequenceExhausted => "sequence-exhausted",
            DropReason::CryptoFailure => "crypto-failure",
        }
    }

    /// Whether the drop is normal protocol behaviour that should not be logged (dummy TFC packets are sent on
    /// purpose and discarded by design, RFC 4303 §2.6).
    pub fn is_quiet(self) -> bool {
        matches!(self, DropReason::Dummy)
    }

    /// Whether the drop means the SA must be replaced (the daemon should rekey or delete it).
    pub fn needs_rekey(self) -> bool {
        matches!(self, DropReason::Expired | DropReason::SequenceExhausted)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Malformed => "malformed packet",
            DropReason::Fragment => "IP fragment (transport-mode ESP protects whole datagrams only)",
            DropReason::WrongAddresses => "source or destination address is not the SA's",
            DropReason::UnknownSpi => "no SA with this SPI",
            DropReason::NoSa => "no SA towards this destination",
            DropReason::BufferTooSmall => "output buffer too small",
            DropReason::TooBig => "packet too big for the IP length field after ESP",
            DropReason::Replayed => "replayed or too old (outside the anti-replay window)",
            DropReason::AuthenticationFailed => "integrity check failed",
            DropReason::BadPadding => "bad ESP padding",
            DropReason::TunnelMode => "tunnel-mode packet on a transport-mode SA",
            DropReason::Dummy => "dummy packet (next header 59)",
            DropReason::Expired => "SA lifetime expired",
            DropReason::SequenceExhausted => "sequence numbers exhausted: the SA needs rekeying",
            DropReason::CryptoFailure => "crypto library failure",
        })
    }
}

impl std::error::Error for DropReason {}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::DropReason;

    #[test]
    fn reasons_are_indexed_in_order_and_named_uniquely() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(serde_json::to_string(&DropReason::BadPadding).ok().as_deref(), Some("\"bad-padding\""));
    }
}
