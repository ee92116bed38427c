//! What the IKE engine reports to the daemon: SAs up and down (with keys for the ESP layer and the key log),
//! negotiation failures with reasons in words an administrator can act on, and SA listings for the CLI.

use super::dpd::DpdInfo;
use super::selector::Selector;
use crate::crypto::{AuthMethod, EspTransform, HashAlg, IkeCipher, Secret};
use std::net::{IpAddr, SocketAddr};
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

/// What NAT detection (NAT-D in Main Mode, RFC 3947 §3.2) found between this host and the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NatStatus {
    /// No NAT, or not (yet) known: NAT-D not exchanged (a peer without NAT-T, or before MM3/MM4).
    #[default]
    None,
    /// This host is behind NAT.
    Local,
    /// The peer is behind NAT.
    Remote,
    /// Both are.
    Both,
}

impl NatStatus {
    /// From the two findings.
    pub fn from_sides(local_behind: bool, peer_behind: bool) -> Self {
        match (local_behind, peer_behind) {
            (false, false) => NatStatus::None,
            (true, false) => NatStatus::Local,
            (false, true) => NatStatus::Remote,
            (true, true) => NatStatus::Both,
        }
    }

    /// The name in `hostsec sas --json` (`nat` of Main Mode entries).
    pub fn name(self) -> &'static str {
        match self {
            NatStatus::None => "none",
            NatStatus::Local => "local",
            NatStatus::Remote => "remote",
            NatStatus::Both => "both",
        }
    }

    /// Whether a NAT is on the path (SAs are then UDP-encapsulated on port 4500).
    pub fn detected(self) -> bool {
        self != NatStatus::None
    }

    /// Whether this host is behind NAT (it then sends NAT-keepalives).
    pub fn local_behind(self) -> bool {
        matches!(self, NatStatus::Local | NatStatus::Both)
    }

    /// Whether the peer is behind NAT (its address and port may change).
    pub fn peer_behind(self) -> bool {
        matches!(self, NatStatus::Remote | NatStatus::Both)
    }
}

/// How the ESP packets of a Quick Mode SA pair travel when a NAT is on the path: in UDP (RFC 3948), between these
/// ports, with what the daemon needs to fix the checksums of transport-mode TCP and UDP packets (RFC 3948
/// §3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncapsulation {
    /// Our UDP port (4500).
    pub local_port: u16,
    /// The peer's UDP port (4500, or what its NAT mapped it to).
    pub remote_port: u16,
    /// The peer's own address as it knows it (from its NAT-OA): the source address its TCP/UDP checksums cover,
    /// when it differs from the address its packets come from. `None` when the peer sent no NAT-OA.
    pub peer_original: Option<IpAddr>,
    /// Our address as the peer addresses us (from its NAT-OA): the destination its checksums cover, when it
    /// differs from our own address (this host behind NAT). `None` when the peer sent no NAT-OA.
    pub local_as_seen_by_peer: Option<IpAddr>,
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
    /// What NAT detection found.
    pub nat: NatStatus,
    /// Dead peer detection, when it runs with the peer (established, the peer announced DPD).
    pub dpd: Option<DpdInfo>,
    /// The keying module that negotiated it.
    pub keying: crate::policy::Keying,
    /// The AuthIP authentication method (`anonymous`, `tls`), for AuthIP SAs (whose `auth` is `None`).
    pub authip_method: Option<&'static str>,
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
    /// UDP encapsulation of its ESP packets (a NAT is on the path), or `None` for plain ESP.
    pub encapsulation: Option<UdpEncapsulation>,
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
    /// A Quick Mode we answer sent QM2: the pair's keys are known, and its *inbound* SA may be installed now. The
    /// initiator has the pair once it reads QM2 and may send on it right after its QM3, before this host has
    /// processed QM3; installing the inbound SA only at [`Event::QuickModeUp`] would drop those first packets.
    /// The outbound SA waits for `QuickModeUp` (QM3 proves the initiator has the pair). Should QM3 never come, no
    /// event follows: the inbound SA carries nothing the initiator did not key, and the daemon removes it after a
    /// while.
    QuickModeInbound(ChildSaKeys),
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
    /// The peer's NAT changed its mapping: an authenticated IKE message of an SA with a peer behind NAT (or an
    /// authenticated ESP packet that the daemon reported with [`super::Endpoint::peer_moved`]) came from another
    /// address or port. The Main Mode SAs and the Quick Mode SA pairs with the peer follow: the daemon must send
    /// the ESP packets of the listed pairs to `new` from now on.
    PeerMoved {
        /// The address and port the peer had.
        old: SocketAddr,
        /// Where it is now.
        new: SocketAddr,
        /// Our address and port the SAs use (4500).
        local: SocketAddr,
        /// The Quick Mode SA pairs that moved, by our inbound SPI.
        spis_in: Vec<u32>,
    },
    /// Dead peer detection found the peer dead: nothing authenticated came from it for `dpd_interval`, nor an
    /// answer to the R-U-THEREs of one more. Its Main Mode and Quick Mode SAs are gone (each reported with its own
    /// `…Down` event, which is where the daemon removes the ESP SAs); traffic that needs protection re-keys.
    PeerDead {
        /// The peer.
        peer: SocketAddr,
        /// The rule of the SA that probed it.
        rule: String,
        /// Why, in words (probes sent, how long the peer was silent).
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
