//! The rule model: global settings and rules as the administrator writes them (SPEC §2 and §7), validated,
//! and the lookups the IKE core needs (which rule governs a peer).

pub mod address;
mod config;
mod duration;
pub mod explain;
pub mod keyword;
pub mod selector;
mod shadow;
pub mod spd;

pub use address::{AddressCount, AddressSet, AddressSpec};
pub use config::{ConfigError, ConfigFiles, FsFiles};
pub use duration::{format_duration, parse_duration};
pub use explain::{ExplainQuery, Explanation};
pub use keyword::{HostFacts, Keyword};
pub use selector::{Flow, Precedence, Specificity};
pub use spd::Spd;

use crate::crypto::{EspTransform, MainModeSuite, Secret, StrengthLevel};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What happens to traffic a rule matches (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Protected in both directions; cleartext from these peers is dropped.
    Require,
    /// Protected when negotiation succeeds, cleartext otherwise.
    Request,
    /// Exempt from IPsec.
    Bypass,
    /// Dropped, IPsec or not.
    Block,
}

impl Action {
    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Require => "require",
            Self::Request => "request",
            Self::Bypass => "bypass",
            Self::Block => "block",
        }
    }

    /// Whether rules with this action negotiate IPsec at all.
    pub fn negotiates(self) -> bool {
        matches!(self, Self::Require | Self::Request)
    }
}

/// What happens to traffic that no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Let it pass in cleartext.
    Bypass,
    /// Drop it.
    Block,
}

/// How a rule authenticates hosts (SPEC §2, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// Pre-shared key.
    Psk,
    /// X.509 certificates.
    Certificate,
    /// Certificates first, the pre-shared key when certificate authentication does not succeed.
    CertificateThenPsk,
    /// AuthIP anonymous authentication: a Diffie-Hellman Main Mode that proves no identity. Only with
    /// [`Keying::AuthIp`] (IKEv1 has no such method); Kerberos and NTLM, AuthIP's other methods, are refused at
    /// config check because they need a Windows domain.
    Anonymous,
}

impl Authentication {
    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Psk => "psk",
            Self::Certificate => "certificate",
            Self::CertificateThenPsk => "certificate-then-psk",
            Self::Anonymous => "anonymous",
        }
    }
}

/// The keying module of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keying {
    /// IKEv1.
    Ike,
    /// AuthIP ([MS-AIPS]; experimental, warned at load): certificates authenticate through TLS, `anonymous`
    /// through AuthIP's anonymous method; with `certificate-then-psk` the PSK fallback and with `psk` the whole
    /// rule negotiate IKEv1, since AuthIP has no pre-shared key method.
    AuthIp,
}

/// The NAT-T setting (SPEC §2; Windows' AssumeUDPEncapsulationContextOnSendRule 0/1/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatTraversal {
    /// Never use UDP encapsulation: an SA with a peer behind NAT is refused.
    Off,
    /// The peer may be behind NAT.
    RemoteBehindNat,
    /// This host and the peer may both be behind NAT.
    BothBehindNat,
}

impl NatTraversal {
    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::RemoteBehindNat => "remote-behind-nat",
            Self::BothBehindNat => "both-behind-nat",
        }
    }
}

/// When a rule's SAs are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoStart {
    /// On the first packet to a peer (needs the datapath).
    OnDemand,
    /// When the daemon starts (the rule's remote must be one host).
    Start,
    /// Only as responder, or by `hostsec initiate`.
    None,
}

/// An IKE identity as configured: what to send (`local_id`) or what to accept (`remote_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    /// Local: the certificate subject DN, else the address. Remote: any identity.
    Auto,
    /// A distinguished name, as text (`dn:CN=host,O=Example`).
    Dn(String),
    /// A fully qualified domain name.
    Fqdn(String),
    /// An IP address.
    Ip(IpAddr),
}

impl std::fmt::Display for IdSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Dn(d) => write!(f, "dn:{d}"),
            Self::Fqdn(d) => write!(f, "fqdn:{d}"),
            Self::Ip(a) => write!(f, "ip:{a}"),
        }
    }
}

/// An inclusive port range of a traffic selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// Settings that apply to all IPsec connections (`[global]`).
#[derive(Debug, Clone)]
pub struct Global {
    /// Addresses IKE binds; empty = all local addresses.
    pub listen: Vec<IpAddr>,
    /// The global minimum strength; rules may raise it.
    pub minimum_strength: StrengthLevel,
    /// Traffic that matches no rule.
    pub default_action: DefaultAction,
    /// NAT-T setting; rules may override it.
    pub nat_traversal: NatTraversal,
    /// Main Mode SA lifetime.
    pub main_mode_lifetime: Duration,
    /// Quick Mode SA lifetime.
    pub quick_mode_lifetime: Duration,
    /// Quick Mode SA lifetime in kilobytes.
    pub quick_mode_lifetime_kb: u64,
    /// DPD interval; zero = off.
    pub dpd_interval: Duration,
    /// Path of the control socket.
    pub control_socket: PathBuf,
    /// Directory of the Wireshark key log; `None` = no key log.
    pub key_log: Option<PathBuf>,
    /// Largest IP datagram (bytes) of an IKE message to a peer that announced IKE fragmentation: larger ones go
    /// as fragments. 0 = 576 over IPv4 and 1280 over IPv6 (the sizes every path must carry).
    pub ike_fragment_size: u16,
    /// Bound on half-open (not yet authenticated) responder Main Modes in total; first messages beyond it are
    /// dropped without state (see `ike/admission.rs`).
    pub half_open_main_modes: u32,
    /// Bound on half-open responder Main Modes from one peer address.
    pub half_open_main_modes_per_peer: u32,
    /// New responder Main Modes started per second at most (a token bucket with one second's worth of burst);
    /// peers that authenticated before are exempt.
    pub new_main_modes_per_second: u32,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            listen: Vec::new(),
            minimum_strength: StrengthLevel::Standard,
            default_action: DefaultAction::Bypass,
            nat_traversal: NatTraversal::Off,
            main_mode_lifetime: Duration::from_secs(480 * 60),
            quick_mode_lifetime: Duration::from_secs(60 * 60),
            quick_mode_lifetime_kb: 100_000,
            dpd_interval: Duration::from_secs(30),
            control_socket: PathBuf::from("/run/hostsec/control.sock"),
            key_log: None,
            ike_fragment_size: 0,
            half_open_main_modes: 1000,
            half_open_main_modes_per_peer: 5,
            new_main_modes_per_second: 100,
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Line of the rule's `[[rule]]` header in the config file.
    pub line: usize,
    /// Whether the rule is in force.
    pub enabled: bool,
    /// Remote endpoints.
    pub remote: AddressSet,
    /// Local endpoints.
    pub local: AddressSet,
    /// IP protocol of the traffic selector; `None` = all.
    pub protocol: Option<u8>,
    /// Local ports of the traffic selector; empty = all.
    pub local_ports: Vec<PortRange>,
    /// Remote ports of the traffic selector; empty = all.
    pub remote_ports: Vec<PortRange>,
    /// Action.
    pub action: Action,
    /// Host authentication.
    pub authentication: Authentication,
    /// The pre-shared key, if the rule has one.
    pub psk: Option<Secret>,
    /// This host's certificate.
    pub certificate: Option<PathBuf>,
    /// This host's private key.
    pub private_key: Option<PathBuf>,
    /// Trusted CA certificates.
    pub trusted_cas: Vec<PathBuf>,
    /// CRL files.
    pub crls: Vec<PathBuf>,
    /// The certificate, key, trusted CAs and CRLs loaded from those files (certificate rules that negotiate).
    pub cert_auth: Option<std::sync::Arc<crate::pki::CertAuth>>,
    /// Identity this host sends.
    pub local_id: IdSpec,
    /// Identity accepted from the peer.
    pub remote_id: IdSpec,
    /// Keying module.
    pub keying: Keying,
    /// Effective minimum strength (the higher of the global and the rule's level).
    pub minimum_strength: StrengthLevel,
    /// Effective NAT-T setting.
    pub nat_traversal: NatTraversal,
    /// When SAs are set up.
    pub auto: AutoStart,
    /// Whether Quick Mode requires PFS (with the Main Mode group as initiator).
    pub pfs: bool,
    /// Main Mode lifetime.
    pub main_mode_lifetime: Duration,
    /// Quick Mode lifetime.
    pub quick_mode_lifetime: Duration,
    /// Quick Mode lifetime in kilobytes.
    pub quick_mode_lifetime_kb: u64,
    /// Narrows what this rule offers as initiator (never settable from the config file: the level alone decides
    /// there). Tests use it to force one algorithm of the level onto the wire.
    pub offer_restriction: Option<OfferRestriction>,
}

/// A subset of a level's algorithms to offer; anything not in the level is still never offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRestriction {
    /// Main Mode suites to offer, in order.
    pub main_mode: Vec<MainModeSuite>,
    /// ESP transforms to offer, in order.
    pub esp: Vec<EspTransform>,
}

impl Rule {
    /// The Main Mode suites this rule offers, in order of preference.
    pub fn main_mode_offer(&self) -> Vec<MainModeSuite> {
        let level = self.minimum_strength.main_mode_suites();
        match &self.offer_restriction {
            Some(r) => r.main_mode.iter().copied().filter(|s| level.contains(s)).collect(),
            None => level,
        }
    }

    /// The ESP transforms this rule offers, in order of preference.
    pub fn esp_offer(&self) -> Vec<EspTransform> {
        let level = self.minimum_strength.esp_transforms();
        match &self.offer_restriction {
            Some(r) => r.esp.iter().copied().filter(|t| level.contains(t)).collect(),
            None => level,
        }
    }

    /// Whether this rule negotiates with `peer` from `local` (enabled, an IPsec action, both addresses covered).
    pub fn negotiates_with(&self, local: IpAddr, peer: IpAddr) -> bool {
        self.enabled && self.action.negotiates() && self.remote.contains(peer) && self.local.contains(local)
    }
}

/// A validated configuration: what the daemon runs and the core consults.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Name of the file it came from (for messages).
    pub source: String,
    /// Global settings.
    pub global: Global,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// Things worth an administrator's attention that do not stop the daemon.
    pub warnings: Vec<String>,
}

impl Policy {
    /// Parses and validates a config file's text. `files` reads PSK files (and checks their permissions).
    /// On failure, every problem found is returned, each naming the file, line, rule and field.
    pub fn from_toml(source: &str, text: &str, files: &dyn ConfigFiles) -> Result<Policy, Vec<ConfigError>> {
        config::parse(source, text, files)
    }

    /// The rule with this name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Index of the rule with this name.
    pub fn rule_index(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.name == name)
    }

    /// The rule that applies between `local` and `peer` whatever the protocol and ports (SPEC §2): among enabled
    /// rules whose remote and local sets cover the two addresses, the first in precedence order (most specific,
    /// then block over require/request over bypass, then file order; see [`Precedence`]). A rule with a protocol
    /// or ports counts although it covers only part of the traffic: IKE negotiates under it. Returns its index.
    /// [`Policy::governing_rule_flow`] answers for one flow.
    pub fn governing_rule(&self, local: IpAddr, peer: IpAddr) -> Option<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled && r.remote.contains(peer) && r.local.contains(local))
            .min_by_key(|(i, r)| r.precedence(*i))
            .map(|(i, _)| i)
    }

    /// The rule that governs `flow`: among enabled rules that cover it ([`Rule::covers`]), the first in
    /// precedence order. A linear scan: the reference that [`Spd::lookup_flow`] must equal.
    pub fn governing_rule_flow(&self, flow: &Flow) -> Option<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled && r.covers(flow))
            .min_by_key(|(i, r)| r.precedence(*i))
            .map(|(i, _)| i)
    }

    /// Whether any rule's `remote` or `local` uses a keyword (so that the daemon must gather [`HostFacts`],
    /// and watch them for changes).
    pub fn uses_keywords(&self) -> bool {
        self.rules.iter().any(|r| r.remote.keywords().next().is_some() || r.local.keywords().next().is_some())
    }

    /// Expands every keyword for a host with these facts and recomputes every rule's effective address sets
    /// (literal elements ∪ expansions). Before the first call keywords cover nothing, so a keyword-only rule
    /// matches no traffic. Returns warnings: keywords that stand for nothing, rules that can never apply. Any
    /// [`Spd`] built before must be rebuilt.
    pub fn resolve(&mut self, facts: &HostFacts) -> Vec<String> {
        let mut warnings = Vec::new();
        for r in &mut self.rules {
            for (field, set) in [("remote", &mut r.remote), ("local", &mut r.local)] {
                for k in set.resolve(facts) {
                    warnings.push(format!(
                        "{}:{}: rule '{}': {field} keyword {k} resolves to nothing ({})",
                        self.source,
                        r.line,
                        r.name,
                        k.empty_reason()
                    ));
                }
            }
        }
        let spd = Spd::build(self);
        warnings.extend(self.shadow_warnings(&spd));
        warnings
    }

    /// The rule that IKE with `peer` on `local` negotiates under: the governing rule, if its action negotiates.
    pub fn rule_for_peer(&self, local: IpAddr, peer: IpAddr) -> Option<usize> {
        self.governing_rule(local, peer).filter(|i| self.rules[*i].action.negotiates())
    }
}
