//! What the IKE engine reports to the daemon: SAs up and down (with keys for the ESP layer and the key log),
//! negotiation failures with reasons in words an administrator can act on, and SA listings for the CLI.

use super::selector::Selector;
use crate::crypto::{AuthMethod, EspTransform, HashAlg, IkeCipher, Secret};
use std::net::SocketAddr;
use std::time::Duration;

/// Identifies a request made through [`super::Endpoint::initiate`], so that its outcome can be reported back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Which side started an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the first message.
    Initiator,
    /// The peer sent the first message.
    Responder,
}

impl Role {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        }
    }
}

/// A Main Mode (ISAKMP) SA as `hostsec sas` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainModeSaInfo {
    /// The rule it was negotiated under.
    pub rule: String,
    /// Local address and port.
    pub local: SocketAddr,
    /// Peer address and port.
    pub peer: SocketAddr,
    /// Our role in Main Mode.
    pub role: Role,
    /// State name (`established`, or the step of the negotiation).
    pub state: &'static str,
    /// Initiator cookie.
    pub cookie_i: [u8; 8],
    /// Responder cookie.
    pub cookie_r: [u8; 8],
    /// Authentication method, once negotiated.
    pub auth: Option<AuthMethod>,
    /// Cipher, once negotiated.
    pub encryption: Option<IkeCipher>,
    /// Hash, once negotiated.
    pub hash: Option<HashAlg>,
    /// DH group number, once negotiated.
    pub dh_group: Option<u16>,
    /// The peer's identity, once authenticated (e.g. `ip:198.51.100.2`).
    pub peer_id: Option<String>,
    /// Subject and issuer of the peer's certificate, once authenticated with one.
    pub peer_cert: Option<(String, String)>,
    /// Time left before the SA expires (established SAs).
    pub lifetime_left: Option<Duration>,
}

/// A Quick Mode (ESP) SA pair as `hostsec sas` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickModeSaInfo {
    /// The rule it was negotiated under.
    pub rule: String,
    /// Local address and port of the IKE SA.
    pub local: SocketAddr,
    /// Peer address and port of the IKE SA.
    pub peer: SocketAddr,
    /// Our role in the Quick Mode.
    pub role: Role,
    /// Our inbound SPI.
    pub spi_in: u32,
    /// Our outbound SPI (the peer's inbound).
    pub spi_out: u32,
    /// The ESP transform.
    pub transform: EspTransform,
    /// PFS group, if any.
    pub pfs_group: Option<u16>,
    /// Lifetime left.
    pub lifetime_left: Duration,
    /// Lifetime in kilobytes that was agreed.
    pub lifetime_kb: u64,
    /// The traffic it carries (protocol and ports of the Quick Mode IDs; [`Selector::ANY`] for all traffic).
    pub selector: Selector,
}

/// A new ESP SA pair with its keys, for the ESP layer (and the key log). Keys are zeroized when dropped.
#[derive(Debug, Clone)]
pub struct ChildSaKeys {
    /// What `hostsec sas` shows about it.
    pub info: QuickModeSaInfo,
    /// Encryption key of the inbound SA (with the 4-byte salt appended for AES-GCM, RFC 4106 §8.1).
    pub encryption_key_in: Secret,
    /// Integrity key of the inbound SA (empty for AES-GCM).
    pub integrity_key_in: Secret,
    /// Encryption key of the outbound SA.
    pub encryption_key_out: Secret,
    /// Integrity key of the outbound SA.
    pub integrity_key_out: Secret,
}

/// Something the daemon must act on or log.
#[derive(Debug, Clone)]
pub enum Event {
    /// A Main Mode SA was authenticated and established.
    MainModeUp {
        /// The SA.
        info: MainModeSaInfo,
        /// Its encryption key Ka, for the Wireshark key log (IKEv1 decryption table: CKY-I, Ka).
        encryption_key: Secret,
    },
    /// A Main Mode SA ended.
    MainModeDown {
        /// The SA.
        info: MainModeSaInfo,
        /// Why, in words.
        reason: String,
    },
    /// A Quick Mode SA pair was established.
    QuickModeUp(ChildSaKeys),
    /// A Quick Mode SA pair ended.
    QuickModeDown {
        /// The SA pair.
        info: QuickModeSaInfo,
        /// Why, in words.
        reason: String,
    },
    /// A negotiation failed or was refused.
    NegotiationFailed {
        /// The request that started it, if it was ours.
        request: Option<RequestId>,
        /// The rule involved, when one applied.
        rule: Option<String>,
        /// The peer.
        peer: SocketAddr,
        /// `main mode` or `quick mode`.
        phase: &'static str,
        /// Why, in words an administrator can act on.
        reason: String,
    },
    /// A request made through `initiate` (or `test_rule`) is complete: its Quick Mode SA is up.
    RequestDone {
        /// The request.
        request: RequestId,
        /// The SA pair.
        info: QuickModeSaInfo,
        /// The outcome in words: which algorithms and authentication were agreed (for `rule test`).
        verdict: String,
    },
}
