//! The control protocol between `hostsec` (CLI) and `hostsecd`: one JSON request per line on a Unix socket,
//! one JSON response per line. The SA views carry the field names of SPEC §7, which scripts rely on.

mod certs;

pub use certs::{CertEntry, CertsView, CredentialEntry, CrlEntry};

use crate::ike::{MainModeSaInfo, QuickModeSaInfo, Stats};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Request {
    /// Daemon status.
    Status,
    /// Main Mode and Quick Mode SAs.
    Sas,
    /// Counters.
    Stats,
    /// The rules in force.
    Rules,
    /// Which rule applies to a peer.
    RuleExplain {
        /// The peer.
        peer: IpAddr,
        /// IP protocol of the traffic asked about; absent = traffic that no protocol-specific rule selects.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<u8>,
        /// A port of the traffic, matched against rules' local or remote ports.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
    /// Negotiate a rule's SAs now and report the outcome.
    Initiate {
        /// Rule name.
        rule: String,
        /// Peer, when the rule covers more than one.
        peer: Option<IpAddr>,
    },
    /// Negotiate a fresh Main Mode and Quick Mode with a peer under a rule, report the verdict, delete them.
    RuleTest {
        /// Rule name.
        rule: String,
        /// The peer.
        peer: IpAddr,
    },
    /// Delete SAs of a rule and/or a peer.
    Terminate {
        /// Rule name.
        rule: Option<String>,
        /// Peer.
        peer: Option<IpAddr>,
    },
    /// Re-read the config file.
    Reload,
    /// The certificates of the rules in force, their expiry, and whether each chain validates now
    /// ([`CertsView`]).
    Certs,
}

/// Outcome classes, which the CLI maps to its exit codes (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Done (exit 0).
    Ok,
    /// The request was valid but failed, e.g. a negotiation (exit 1).
    Failed,
    /// The request was invalid, e.g. an unknown rule (exit 2).
    Invalid,
}

/// The daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// How it went.
    pub outcome: Outcome,
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The result (its shape depends on the request).
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    /// A successful response carrying `data`.
    pub fn ok(data: impl Serialize) -> Self {
        Response { outcome: Outcome::Ok, error: None, data: serde_json::to_value(data).unwrap_or_default() }
    }

    /// A failed request.
    pub fn failed(error: impl Into<String>) -> Self {
        Response { outcome: Outcome::Failed, error: Some(error.into()), data: serde_json::Value::Null }
    }

    /// An invalid request.
    pub fn invalid(error: impl Into<String>) -> Self {
        Response { outcome: Outcome::Invalid, error: Some(error.into()), data: serde_json::Value::Null }
    }
}

/// A Main Mode SA as `hostsec sas --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MainModeEntry {
    /// Rule name.
    pub rule: String,
    /// Local address:port.
    pub local: String,
    /// Peer address:port.
    pub peer: String,
    /// `initiator` or `responder`.
    pub role: String,
    /// `established` or the step of the negotiation.
    pub state: String,
    /// `psk` | `rsa` | `ecdsa-p256` | `ecdsa-p384`; for AuthIP `anonymous` | `tls`.
    pub auth: Option<String>,
    /// `ike` or `authip` (AuthIP is experimental: not yet verified against Windows).
    #[serde(default = "ike_keying")]
    pub keying: String,
    /// e.g. `aes-cbc-256`.
    pub encryption: Option<String>,
    /// `sha1` | `sha256` | `sha384`.
    pub hash: Option<String>,
    /// DH group number.
    pub dh_group: Option<u16>,
    /// `none` | `local` | `remote` | `both`.
    pub nat: String,
    /// Seconds before the SA expires.
    pub lifetime_left_s: Option<u64>,
    /// The peer's authenticated identity.
    pub peer_id: Option<String>,
    /// Subject of the peer's certificate (certificate authentication).
    #[serde(default)]
    pub peer_cert_subject: Option<String>,
    /// Issuer of the peer's certificate.
    #[serde(default)]
    pub peer_cert_issuer: Option<String>,
    /// CKY-I, hex.
    pub cookie_i: String,
    /// CKY-R, hex.
    pub cookie_r: String,
    /// Dead peer detection with the peer; absent when it does not run (not established, the peer did not
    /// announce DPD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpd: Option<DpdEntry>,
}

fn ike_keying() -> String {
    "ike".to_string()
}

/// Dead peer detection of a Main Mode SA in `hostsec sas --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpdEntry {
    /// `probing` while R-U-THEREs wait for an answer, else `idle` (the peer was heard within the interval, or
    /// DPD is off with `dpd_interval = "0s"`).
    pub state: String,
    /// Seconds since the peer last proved it is alive (IKE, ESP, an ACK).
    pub last_heard_s: u64,
    /// Seconds since the last R-U-THERE-ACK that answered us, if any did.
    pub last_ack_s: Option<u64>,
}

impl From<&MainModeSaInfo> for MainModeEntry {
    fn from(i: &MainModeSaInfo) -> Self {
        MainModeEntry {
            rule: i.rule.clone(),
            local: i.local.to_string(),
            peer: i.peer.to_string(),
            role: i.role.name().to_string(),
            state: i.state.to_string(),
            auth: i.auth.map(|a| a.name().to_string()).or(i.authip_method.map(str::to_string)),
            keying: match i.keying {
                crate::policy::Keying::Ike => "ike",
                crate::policy::Keying::AuthIp => "authip",
            }
            .to_string(),
            encryption: i.encryption.map(|c| c.name().to_string()),
            hash: i.hash.map(|h| h.name().to_string()),
            dh_group: i.dh_group,
            nat: i.nat.name().into(),
            lifetime_left_s: i.lifetime_left.map(|d| d.as_secs()),
            peer_id: i.peer_id.clone(),
            peer_cert_subject: i.peer_cert.as_ref().map(|c| c.0.clone()),
            peer_cert_issuer: i.peer_cert.as_ref().map(|c| c.1.clone()),
            cookie_i: hex::encode(i.cookie_i),
            cookie_r: hex::encode(i.cookie_r),
            dpd: i.dpd.map(|d| DpdEntry {
                state: if d.probing { "probing" } else { "idle" }.to_string(),
                last_heard_s: d.last_heard_ago.as_secs(),
                last_ack_s: d.last_ack_ago.map(|a| a.as_secs()),
            }),
        }
    }
}

/// A Quick Mode SA pair as `hostsec sas --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickModeEntry {
    /// Rule name.
    pub rule: String,
    /// Local address:port of the IKE SA.
    pub local: String,
    /// Peer address:port of the IKE SA.
    pub peer: String,
    /// `initiator` or `responder` of the Quick Mode.
    pub role: String,
    /// Inbound SPI, 8 lowercase hex digits.
    pub spi_in: String,
    /// Outbound SPI, 8 lowercase hex digits.
    pub spi_out: String,
    /// e.g. `aes-gcm-16-128`, `aes-cbc-256`.
    pub encryption: String,
    /// `hmac-sha1-96` | `hmac-sha256-128` | `none`.
    pub integrity: String,
    /// PFS group, or null.
    pub pfs_group: Option<u16>,
    /// Always `transport`.
    pub mode: String,
    /// `none` | `udp`.
    pub encapsulation: String,
    /// With `udp`: this host's UDP port of the encapsulated ESP (4500).
    #[serde(default)]
    pub encap_local_port: Option<u16>,
    /// With `udp`: the peer's UDP port (4500, or what its NAT mapped it to).
    #[serde(default)]
    pub encap_remote_port: Option<u16>,
    /// With `udp`: the peer's own address from its NAT-OA, when it differs from the address it comes from.
    #[serde(default)]
    pub peer_original_address: Option<String>,
    /// Bytes received on the SA.
    pub bytes_in: u64,
    /// Bytes sent on the SA.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Seconds before the SA expires.
    pub lifetime_left_s: u64,
    /// Agreed lifetime in kilobytes.
    pub lifetime_kb: u64,
    /// IP protocol the SA carries (from its Quick Mode IDs); 0 = all traffic.
    #[serde(default)]
    pub protocol: u8,
    /// This host's port the SA carries; 0 = any.
    #[serde(default)]
    pub local_port: u16,
    /// The peer's port the SA carries; 0 = any.
    #[serde(default)]
    pub remote_port: u16,
}

impl From<&QuickModeSaInfo> for QuickModeEntry {
    fn from(i: &QuickModeSaInfo) -> Self {
        QuickModeEntry {
            rule: i.rule.clone(),
            local: i.local.to_string(),
            peer: i.peer.to_string(),
            role: i.role.name().to_string(),
            spi_in: format!("{:08x}", i.spi_in),
            spi_out: format!("{:08x}", i.spi_out),
            encryption: i.transform.cipher.name().to_string(),
            integrity: i.transform.integrity.name().to_string(),
            pfs_group: i.pfs_group,
            mode: "transport".into(),
            encapsulation: if i.encapsulation.is_some() { "udp" } else { "none" }.into(),
            encap_local_port: i.encapsulation.map(|e| e.local_port),
            encap_remote_port: i.encapsulation.map(|e| e.remote_port),
            peer_original_address: i.encapsulation.and_then(|e| e.peer_original).map(|a| a.to_string()),
            bytes_in: 0,
            bytes_out: 0,
            packets_in: 0,
            packets_out: 0,
            lifetime_left_s: i.lifetime_left.as_secs(),
            lifetime_kb: i.lifetime_kb,
            protocol: i.selector.protocol,
            local_port: i.selector.local_port,
            remote_port: i.selector.remote_port,
        }
    }
}

/// `hostsec sas`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SasView {
    /// Main Mode SAs.
    pub main_mode: Vec<MainModeEntry>,
    /// Quick Mode SA pairs.
    pub quick_mode: Vec<QuickModeEntry>,
}

/// `hostsec status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// hostsecd version.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Config file.
    pub config: String,
    /// Addresses IKE listens on.
    pub listen: Vec<String>,
    /// Number of rules.
    pub rules: usize,
    /// Main Mode SAs established / negotiating.
    pub main_mode_established: usize,
    /// Main Mode SAs being negotiated.
    pub main_mode_negotiating: usize,
    /// Quick Mode SA pairs.
    pub quick_mode: usize,
    /// Whether the Wireshark key log is on.
    pub key_log: bool,
    /// Config warnings.
    pub warnings: Vec<String>,
}

/// `hostsec stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    /// IKE counters.
    pub ike: Stats,
    /// ESP datapath counters: `datapath` (packets by outcome: sent, received, delivered, dropped by reason) and
    /// `drops` (ESP refusals by reason: replayed, authentication-failed, …). Absent without a datapath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esp: Option<serde_json::Value>,
    /// Firewall drop counters (packets and bytes of cleartext dropped for require, block and default-block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<serde_json::Value>,
    /// What UDP 4500 carried (NAT traversal): IKE, ESP in UDP, keepalives, invalid datagrams, mapping changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_encap: Option<serde_json::Value>,
    /// The AuthIP engine's counters and occupancy (experimental); present when a rule uses `keying = "authip"` or
    /// the engine has counted anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authip: Option<AuthipStatsView>,
}

/// AuthIP in `hostsec stats`: the engine's counters (flattened: `received`, `cookies_sent`, …) and how much state
/// it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthipStatsView {
    /// Counters.
    #[serde(flatten)]
    pub counters: crate::authip::AuthipStats,
    /// AuthIP Main Mode SAs now, established or negotiating.
    #[serde(default)]
    pub main_mode_sas: usize,
    /// Half-open responder Main Modes now (the DoS cookie is demanded from 500 on, [MS-AIPS] §3.1.7.6).
    #[serde(default)]
    pub half_open: usize,
}

impl AuthipStatsView {
    /// The view of an engine.
    pub fn of(engine: &crate::authip::AuthipEngine) -> Self {
        let (main_mode_sas, half_open) = engine.occupancy();
        AuthipStatsView { counters: engine.stats().clone(), main_mode_sas, half_open }
    }
}

/// One rule as `hostsec rules` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEntry {
    /// Name.
    pub name: String,
    /// Enabled.
    pub enabled: bool,
    /// Action.
    pub action: String,
    /// Remote endpoints.
    pub remote: String,
    /// Local endpoints.
    pub local: String,
    /// Authentication.
    pub authentication: String,
    /// Keying module.
    pub keying: String,
    /// Effective minimum strength.
    pub minimum_strength: String,
    /// NAT-T setting.
    pub nat_traversal: String,
    /// Auto start.
    pub auto: String,
    /// PFS required.
    pub pfs: bool,
    /// Line in the config file.
    pub line: usize,
}

impl From<&crate::policy::Rule> for RuleEntry {
    fn from(r: &crate::policy::Rule) -> Self {
        use crate::policy::{AutoStart, Keying};
        RuleEntry {
            name: r.name.clone(),
            enabled: r.enabled,
            action: r.action.name().into(),
            remote: r.remote.to_string(),
            local: r.local.to_string(),
            authentication: r.authentication.name().into(),
            keying: match r.keying {
                Keying::Ike => "ike".into(),
                Keying::AuthIp => "authip".into(),
            },
            minimum_strength: r.minimum_strength.name().into(),
            nat_traversal: r.nat_traversal.name().into(),
            auto: match r.auto {
                AutoStart::OnDemand => "on-demand".into(),
                AutoStart::Start => "start".into(),
                AutoStart::None => "none".into(),
            },
            pfs: r.pfs,
            line: r.line,
        }
    }
}
