//! The AuthIP state machines ([MS-AIPS] §3): Main Mode with Anonymous or TLS authentication, fast and normal
//! Quick Mode, reliable notifies, and the DoS cookie, behind a sans-IO engine that the IKE [`crate::ike::Endpoint`]
//! drives beside IKEv1 (it owns the coexistence rules, [MS-AIPS] §3.2.4 and §3.3.5.2).
//!
//! **Experimental — not yet verified against Windows.** Each reading the spec leaves open is listed in
//! `docs/authip.md` ("State machine", E1…).
//!
//! The messages of one Main Mode SA, as hostsec runs them (docs/authip.md E1–E3):
//! ```text
//! I→R #1   HDR(F3)  CRYPTO SA Auth Ni VID GSS-API(first token) [KE]
//! R→I #2   HDR(F3)  CRYPTO SA Auth Nr Nr(qm) VID GSS-API [KE]
//! I→R #3.. HDR(F3)  CRYPTO GSS-API                  (as many round trips as the mechanism needs)
//! I→R #5   HDR*(F3) CRYPTO{ HASH(Auth1) IDi IDr SA Ni(qm) [KE] }     first Quick Mode
//! R→I #6   HDR*(F3) CRYPTO{ HASH(Auth2) IDi IDr SA [KE] }            → SAs (fast Quick Mode)
//! I→R #7   HDR*(F4) CRYPTO{ N(QM_SYNCHRONIZE) }                      normal Quick Mode only
//! R→I #8   HDR*(F4) CRYPTO{ N(QM_SYNCHRONIZE) }
//! ```

mod main_mode;
mod notify;
mod payloads;
mod quick_mode;

use super::gss_mech::{GssMechanism, GssPeer};
use super::kdf::AuthipKdf;
use super::key_schedule::MainModeKeys;
use super::mm_proposal::AuthipSuite;
use super::seal::SealKeys;
use crate::crypto::dh::DhKeyPair;
use crate::crypto::Secret;
use crate::ike::retransmit::{Retransmit, StoredReply};
use crate::ike::{Event, MainModeSaInfo, NatStatus, QuickModeSaInfo, RequestId, Role, Selector, Timing, Transmit};
use crate::policy::{Authentication, Keying, Policy, Rule};
use notify::Reliable;
use quick_mode::Qm;
use rand_core::CryptoRngCore;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info};

/// The label every AuthIP log line and listing carries until a Windows peer has been tested.
pub const EXPERIMENTAL: &str = "experimental — not yet verified against Windows";

/// Bound on AuthIP Main Mode SAs (established and negotiating), so that a flood of first messages cannot grow
/// the engine without limit; beyond it new first messages are dropped (and counted).
const MAX_SAS: usize = 4096;
/// Half-open responder Main Modes at which the DoS cookie is demanded ([MS-AIPS] §3.1.7.6: 500), and below
/// which it stops ([MS-IKEE] note <29>: 100).
pub const DOS_ENTER: usize = 500;
/// See [`DOS_ENTER`].
pub const DOS_LEAVE: usize = 100;
/// GSS-API round trips allowed in one Main Mode (TLS needs two).
const MAX_GSS_ROUNDS: usize = 8;
/// Quick Modes running at once under one Main Mode SA.
const MAX_QUICK_MODES: usize = 32;
/// Quick Modes (running, or finished and kept for retransmissions) one Main Mode SA holds at most.
const MAX_KEPT_QUICK_MODES: usize = 64;
/// How long a finished Quick Mode keeps its last message, to answer a retransmission.
const KEEP_FINISHED: Duration = Duration::from_secs(60);

/// Counters of the AuthIP engine (`hostsec stats`, its `authip` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AuthipStats {
    /// AuthIP messages handed to the engine.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Retransmissions of our requests and notifies.
    pub retransmitted: u64,
    /// Messages dropped as malformed (codec refusal, bad ICV, bad padding).
    pub dropped_malformed: u64,
    /// Messages for no known SA, or unexpected in the SA's state.
    pub dropped_unexpected: u64,
    /// First messages dropped: no AuthIP rule for the peer, or a bound reached.
    pub refused: u64,
    /// DoS cookies sent instead of answering a first message.
    pub cookies_sent: u64,
    /// First messages retried with a DoS cookie that did not verify.
    pub cookies_bad: u64,
    /// Duplicate requests answered with the stored reply.
    pub duplicates: u64,
    /// Reliable notifies acknowledged by the peer.
    pub notifies_acked: u64,
    /// Main Modes established.
    pub main_modes: u64,
    /// Quick Mode SA pairs established.
    pub quick_modes: u64,
    /// Negotiations that failed.
    pub failures: u64,
}

/// The Main Mode keys and what seals messages with them.
struct MmKeys {
    kdf: AuthipKdf,
    mm: MainModeKeys,
    seal: SealKeys,
}

/// Where a Main Mode SA stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MmState {
    /// Initiator: #1 sent, waiting for #2.
    WaitReply,
    /// GSS-API tokens are being exchanged (#3, #4, …).
    Gss,
    /// Initiator: #5 sent, waiting for #6. Responder: authentication done on its side, waiting for #5.
    WaitFirstQm,
    /// Auth1 and Auth2 verified.
    Established,
}

impl MmState {
    fn name(self) -> &'static str {
        match self {
            MmState::WaitReply => "authip-mm1-sent",
            MmState::Gss => "authip-gss",
            MmState::WaitFirstQm => "authip-wait-qm",
            MmState::Established => "established",
        }
    }
}

/// One AuthIP Main Mode SA and the Quick Modes under it.
struct Sa {
    rule: String,
    role: Role,
    local: SocketAddr,
    peer: SocketAddr,
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    state: MmState,
    mech: Box<dyn GssMechanism>,
    /// Whether the responder said its GSS-API side is complete (RESPONDER_AUTH_COMPLETE).
    responder_done: bool,
    gss_rounds: usize,
    offered: Vec<AuthipSuite>,
    suite: Option<AuthipSuite>,
    lifetime: Duration,
    ni: Vec<u8>,
    nr: Vec<u8>,
    /// The responder's Quick Mode nonce from #2, for the first Quick Mode.
    nr_qm: Vec<u8>,
    dh: Option<DhKeyPair>,
    g_xy: Option<Secret>,
    /// The clear payload chains of the Main Mode messages, in order (the Auth1/Auth2 hash chain, docs K7).
    transcript: Vec<Vec<u8>>,
    keys: Option<MmKeys>,
    peer_auth: Option<GssPeer>,
    peer_nt5: Option<u32>,
    /// Next seqNUM to send per exchange type (MM, QM, EM, Notify), docs E5.
    seq: [u32; 4],
    /// Our outstanding Main Mode message (initiator), retransmitted until answered.
    request: Option<Retransmit>,
    /// Our last answer to the peer's Main Mode message (responder).
    reply: Option<StoredReply>,
    /// When a negotiation that hears nothing more is given up.
    deadline: Option<Instant>,
    expires: Option<Instant>,
    qms: BTreeMap<u32, Qm>,
    /// What the first Quick Mode is to carry once the Main Mode is authenticated (initiator).
    pending: Option<(Selector, Vec<RequestId>)>,
    notify: Reliable,
    /// The IKEv1 Main Mode started beside #1 (its CKY-I), to be dropped when the peer answers AuthIP.
    ikev1_twin: Option<[u8; 8]>,
}

impl Sa {
    fn own_cookie(&self) -> [u8; 8] {
        match self.role {
            Role::Initiator => self.cky_i,
            Role::Responder => self.cky_r,
        }
    }

    fn next_seq(&mut self, exchange_type: u8) -> u32 {
        let i = usize::from(exchange_type.saturating_sub(super::consts::exchange::MAIN_MODE)).min(3);
        let s = self.seq[i];
        self.seq[i] = s.wrapping_add(1);
        s
    }

    fn header(&self, exchange_type: u8, message_id: u32) -> super::AuthipHeader {
        super::AuthipHeader {
            initiator_cookie: self.cky_i,
            responder_cookie: self.cky_r,
            version: 0x10,
            exchange_type,
            message_id,
        }
    }

    /// An encrypted message of this SA carrying `chain` (first payload type `first`), with the next seqNUM of its
    /// exchange type and a fresh IV.
    fn sealed(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        exchange_type: u8,
        message_id: u32,
        first: u8,
        chain: &[u8],
    ) -> Result<Vec<u8>, String> {
        let seq = self.next_seq(exchange_type);
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut iv);
        let keys = self.keys.as_ref().ok_or("no Main Mode keys")?;
        super::seal::seal(&keys.seal, self.header(exchange_type, message_id), seq, iv, first, chain)
    }

    fn next_deadline(&self) -> Option<Instant> {
        [self.request.as_ref().map(|r| r.deadline), self.deadline, self.expires, self.notify.deadline()]
            .into_iter()
            .flatten()
            .chain(self.qms.values().filter_map(Qm::next_deadline))
            .min()
    }

    /// What `hostsec sas` and the events show; `now` `None` for an SA on its way out (no lifetime left to show).
    fn info(&self, now: Option<Instant>) -> MainModeSaInfo {
        let suite = self.suite;
        MainModeSaInfo {
            rule: self.rule.clone(),
            local: self.local,
            peer: self.peer,
            role: self.role,
            // an SA whose delete waits for the peer's ACK is no longer in use (`established` skips it)
            state: if self.notify.deleting { "deleting" } else { self.state.name() },
            cookie_i: self.cky_i,
            cookie_r: self.cky_r,
            auth: None,
            encryption: suite.map(|s| s.cipher),
            hash: suite.map(|s| s.hash),
            dh_group: suite.and_then(|s| s.group.map(|g| g.id())),
            peer_id: self.peer_auth.as_ref().map(|p| p.id.clone()),
            peer_cert: self.peer_auth.as_ref().and_then(|p| p.cert.clone()),
            lifetime_left: now.zip(self.expires).map(|(n, e)| e.saturating_duration_since(n)),
            nat: NatStatus::None,
            dpd: None,
            keying: Keying::AuthIp,
            authip_method: Some(method_name(self.mech.method())),
        }
    }
}

/// The config-side name of an AuthIP method, for listings.
pub fn method_name(method: u16) -> &'static str {
    match method {
        super::consts::auth_method::ANONYMOUS => "anonymous",
        super::consts::auth_method::TLS => "tls",
        super::consts::auth_method::KERBEROS => "kerberos",
        super::consts::auth_method::NTLM => "ntlm",
        _ => "unknown",
    }
}

/// The AuthIP method a rule authenticates with, if AuthIP can serve it: Anonymous, or TLS for certificate rules.
/// A PSK rule has none: AuthIP has no pre-shared key method, so IKEv1 serves it.
pub fn rule_method(rule: &Rule) -> Option<u16> {
    if rule.keying != Keying::AuthIp {
        return None;
    }
    match rule.authentication {
        Authentication::Anonymous => Some(super::consts::auth_method::ANONYMOUS),
        Authentication::Certificate | Authentication::CertificateThenPsk if rule.cert_auth.is_some() => {
            Some(super::consts::auth_method::TLS)
        }
        _ => None,
    }
}

/// An ESP SA pair established by AuthIP, as the engine keeps it.
struct Child {
    info: QuickModeSaInfo,
    sa: u64,
    expires: Instant,
    /// When its successor is negotiated (the Quick Mode initiator's side renews, make-before-break), if not yet.
    soft: Option<Instant>,
    /// A successor took over: it goes at `expires`, which was brought forward to the overlap.
    superseded: bool,
}

/// Share of a pair's lifetime after which its Quick Mode initiator negotiates the successor.
const SOFT_SHARE: f64 = 0.9;
/// How long a pair replaced by its successor lives on beside it, for packets in flight.
const REKEY_OVERLAP: Duration = Duration::from_secs(10);

/// Outcome of an initiator's race between its AuthIP #1 and the IKEv1 Main Mode sent beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Race {
    /// The peer answered AuthIP: the IKEv1 Main Mode with this CKY-I is to be dropped without a word.
    AuthipWon {
        /// CKY-I of the IKEv1 twin.
        ikev1_cookie: [u8; 8],
    },
    /// The AuthIP Main Mode of a `certificate-then-psk` rule failed before it was established: its requests go to
    /// an IKEv1 Main Mode with the pre-shared key (SPEC §5, as for IKEv1 certificate authentication).
    FallBackToPsk {
        /// The rule.
        rule: String,
        /// Our address and port.
        local: SocketAddr,
        /// The peer.
        peer: SocketAddr,
        /// The requests, each with its traffic.
        requests: Vec<(RequestId, Selector)>,
        /// Why AuthIP failed.
        reason: String,
    },
}

/// The sans-IO AuthIP engine of one host.
pub struct AuthipEngine {
    policy: Arc<Policy>,
    timing: Timing,
    sas: BTreeMap<u64, Sa>,
    by_cookie: HashMap<[u8; 8], u64>,
    half_open: HashMap<(SocketAddr, [u8; 8]), u64>,
    children: BTreeMap<u32, Child>,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    races: VecDeque<Race>,
    stats: AuthipStats,
    next_id: u64,
    cookies: Option<super::dos_cookie::DosCookies>,
    dos: super::dos_cookie::DosMode,
    wall_clock: Option<(Instant, SystemTime)>,
}

impl AuthipEngine {
    /// A new engine running `policy`.
    pub fn new(policy: Arc<Policy>, timing: Timing) -> Self {
        AuthipEngine {
            policy,
            timing,
            sas: BTreeMap::new(),
            by_cookie: HashMap::new(),
            half_open: HashMap::new(),
            children: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            races: VecDeque::new(),
            stats: AuthipStats::default(),
            next_id: 1,
            cookies: None,
            dos: super::dos_cookie::DosMode::new(DOS_ENTER, DOS_LEAVE),
            wall_clock: None,
        }
    }

    /// Sets the thresholds of DoS-cookie mode (tests use small ones).
    pub fn set_dos_thresholds(&mut self, enter: usize, leave: usize) {
        self.dos = super::dos_cookie::DosMode::new(enter, leave);
    }

    /// The wall-clock time at an instant (certificate validity), as the IKE endpoint has it.
    pub fn set_wall_clock(&mut self, at: Instant, time: SystemTime) {
        self.wall_clock = Some((at, time));
    }

    /// The wall-clock time at `now`, if the daemon gave the reference (the core reads no clock).
    fn wall(&self, now: Instant) -> Option<SystemTime> {
        self.wall_clock.map(|(at, t)| if now >= at { t + (now - at) } else { t.checked_sub(at - now).unwrap_or(t) })
    }

    /// Takes a new configuration; SAs whose rule is gone or no longer uses AuthIP are deleted (the peer told).
    pub fn set_policy(&mut self, now: Instant, rng: &mut dyn CryptoRngCore, policy: Arc<Policy>) {
        self.policy = policy;
        let gone: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| self.policy.rule(&sa.rule).and_then(rule_method) != Some(sa.mech.method()))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.delete_with_notice(now, rng, id, "its rule was removed or no longer uses AuthIP");
        }
    }

    /// Counters.
    pub fn stats(&self) -> &AuthipStats {
        &self.stats
    }

    /// Main Mode SAs, established or negotiating, and the half-open ones among them.
    pub fn occupancy(&self) -> (usize, usize) {
        (self.sas.len(), self.half_open.len())
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next outcome of an initiator's AuthIP/IKEv1 race, for the IKE endpoint.
    pub fn poll_race(&mut self) -> Option<Race> {
        self.races.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sas = self.sas.values().filter_map(Sa::next_deadline);
        let children = self.children.values().flat_map(|c| [Some(c.expires), c.soft]).flatten();
        sas.chain(children).min()
    }

    /// Main Mode SAs as `hostsec sas` shows them. An SA the peer deleted is not among them: it was reported down
    /// and is kept only to acknowledge copies of the peer's delete (until `KEEP_FINISHED` passed).
    pub fn main_mode_sas(&self, now: Instant) -> Vec<MainModeSaInfo> {
        self.sas.values().filter(|sa| sa.notify.closing_until.is_none()).map(|sa| sa.info(Some(now))).collect()
    }

    /// Quick Mode SA pairs as `hostsec sas` shows them.
    pub fn quick_mode_sas(&self, now: Instant) -> Vec<QuickModeSaInfo> {
        self.children
            .values()
            .map(|c| QuickModeSaInfo { lifetime_left: c.expires.saturating_duration_since(now), ..c.info.clone() })
            .collect()
    }

    /// How many AuthIP SA pairs exist.
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// Whether this inbound SPI is an AuthIP SA pair's.
    pub fn owns_child(&self, spi_in: u32) -> bool {
        self.children.contains_key(&spi_in)
    }

    /// The established AuthIP Main Mode SA with `peer` under `rule`, if any.
    pub(crate) fn established(&self, rule: &str, peer: IpAddr) -> Option<u64> {
        self.sas
            .iter()
            .filter(|(_, sa)| {
                sa.rule == rule
                    && sa.peer.ip() == peer
                    && sa.state == MmState::Established
                    && !sa.notify.deleting
                    && sa.notify.closing_until.is_none()
            })
            .map(|(id, _)| *id)
            .next_back()
    }

    /// Links an initiator's AuthIP Main Mode (by CKY-I) to the IKEv1 Main Mode sent beside it.
    pub fn set_twin(&mut self, authip_cookie: [u8; 8], ikev1_cookie: [u8; 8]) {
        if let Some(sa) = self.by_cookie.get(&authip_cookie).and_then(|id| self.sas.get_mut(id)) {
            sa.ikev1_twin = Some(ikev1_cookie);
        }
    }

    /// Drops an initiator's AuthIP Main Mode that the peer did not answer because it answered the IKEv1 twin;
    /// no event (the request goes on in IKEv1). Returns whether there was one to drop.
    pub fn abandon(&mut self, authip_cookie: [u8; 8]) -> bool {
        let Some(id) = self.by_cookie.get(&authip_cookie).copied() else { return false };
        let waiting = self.sas.get(&id).is_some_and(|sa| sa.role == Role::Initiator && sa.state == MmState::WaitReply);
        waiting && self.forget(id).is_some()
    }

    /// Whether an AuthIP negotiation from `peer` (CKY-I of its #1) is known: the IKEv1 twin of a Windows initiator
    /// is then discarded ([MS-AIPS] §3.3.5.2).
    pub fn knows_initiator(&self, peer: IpAddr) -> bool {
        self.half_open.keys().any(|(p, _)| p.ip() == peer)
            || self.sas.values().any(|sa| sa.role == Role::Responder && sa.peer.ip() == peer)
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, payload: Vec<u8>) {
        self.stats.sent += 1;
        self.out.push_back(Transmit { local, remote, payload });
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn fresh_cookie(&self, rng: &mut dyn CryptoRngCore) -> [u8; 8] {
        loop {
            let mut c = [0u8; 8];
            rng.fill_bytes(&mut c);
            if c != [0; 8] && !self.by_cookie.contains_key(&c) {
                return c;
            }
        }
    }

    fn fresh_spi(&self, rng: &mut dyn CryptoRngCore) -> [u8; 4] {
        loop {
            let mut s = [0u8; 4];
            rng.fill_bytes(&mut s);
            let v = u32::from_be_bytes(s);
            // SPIs 1–255 are reserved (RFC 4303 §2.1)
            if v > 255 && !self.children.contains_key(&v) {
                return s;
            }
        }
    }

    /// Handles one AuthIP datagram (cut or not to the header's length).
    pub fn handle(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.stats.received += 1;
        let Ok(hdr) = crate::wire::Header::parse(data) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let Some(datagram) = usize::try_from(hdr.length).ok().and_then(|l| data.get(..l)) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let msg = match super::AuthipMessage::parse(datagram) {
            Ok(m) => m,
            Err(e) => {
                self.stats.dropped_malformed += 1;
                debug!(peer = %remote, "dropped a malformed AuthIP message: {e}");
                return;
            }
        };
        if let super::AuthipBody::DosCookie(n) = msg.body {
            return self.on_dos_cookie(now, msg.header.initiator_cookie, remote, n.data);
        }
        if matches!(msg.body, super::AuthipBody::Fragment(_)) {
            self.stats.dropped_unexpected += 1;
            debug!(peer = %remote, "dropped an AuthIP fragment: hostsec's AuthIP messages are never fragmented (docs/authip.md E7)");
            return;
        }
        let h = msg.header;
        let first_message =
            h.exchange_type == super::consts::exchange::MAIN_MODE && !hdr.is_encrypted() && msg.seq() == Some(0);
        let id = self
            .by_cookie
            .get(&h.responder_cookie)
            .or_else(|| self.by_cookie.get(&h.initiator_cookie))
            .copied()
            .filter(|id| self.sas.get(id).is_some_and(|sa| sa.cky_i == h.initiator_cookie));
        let id = match id {
            Some(id) => Some(id),
            None => self.half_open.get(&(remote, h.initiator_cookie)).copied(),
        };
        match id {
            None if first_message => self.respond_first(now, rng, local, remote, datagram, &msg),
            None => {
                self.stats.dropped_unexpected += 1;
                debug!(peer = %remote, "dropped an AuthIP message for unknown cookies");
            }
            Some(id) => self.on_sa_message(now, rng, id, remote, datagram, &msg),
        }
    }

    /// Runs timers: retransmissions, notifies, negotiation deadlines, expiry of SAs.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut dyn CryptoRngCore) {
        let due: Vec<u64> =
            self.sas.iter().filter(|(_, sa)| sa.next_deadline().is_some_and(|d| d <= now)).map(|(id, _)| *id).collect();
        for id in due {
            self.sa_timers(now, rng, id);
        }
        let expired: Vec<(u32, bool)> =
            self.children.iter().filter(|(_, c)| c.expires <= now).map(|(s, c)| (*s, c.superseded)).collect();
        for (spi, superseded) in expired {
            self.remove_child(spi, if superseded { crate::ike::REKEYED } else { "its lifetime expired" });
        }
        let soft: Vec<u32> =
            self.children.iter().filter(|(_, c)| c.soft.is_some_and(|t| t <= now)).map(|(s, _)| *s).collect();
        for spi in soft {
            if let Some(c) = self.children.get_mut(&spi) {
                c.soft = None;
            }
            info!("AuthIP: renewing SA pair {spi:08x} before it expires");
            self.renew(now, rng, spi, Vec::new());
        }
    }

    fn sa_timers(&mut self, now: Instant, rng: &mut dyn CryptoRngCore, id: u64) {
        let tries = self.timing.retransmit_tries;
        let Some(sa) = self.sas.get_mut(&id) else { return };
        if sa.notify.closing_until.is_some_and(|c| c <= now) {
            // deleted by the peer, and kept only to acknowledge copies of its delete: gone now, reported already
            self.forget(id);
            return;
        }
        if sa.expires.is_some_and(|e| e <= now) {
            // Its SA pairs keep their own lifetimes (a renewal of one starts a new Main Mode).
            let info = sa.info(None);
            let peer = sa.peer;
            for c in self.children.values_mut().filter(|c| c.sa == id) {
                c.sa = 0;
            }
            self.forget(id);
            info!(peer = %peer, "AuthIP Main Mode SA expired");
            self.events.push_back(Event::MainModeDown { info, reason: "AuthIP: its lifetime expired".into() });
            return;
        }
        if sa.deadline.is_some_and(|d| d <= now) {
            let what = format!("the peer sent nothing for {}s", self.timing.responder_timeout.as_secs());
            return self.fail(id, &what);
        }
        let mut resend = Vec::new();
        if let Some(r) = sa.request.as_mut().filter(|r| r.deadline <= now) {
            match r.on_deadline(now, tries) {
                Some(m) => resend.push(m.to_vec()),
                None => {
                    let why = format!("the peer did not answer ({tries} retransmissions)");
                    return self.fail(id, &why);
                }
            }
        }
        let mut failed_qms = Vec::new();
        for (mid, qm) in sa.qms.iter_mut() {
            match qm.on_timer(now, tries) {
                quick_mode::Timer::Nothing => {}
                quick_mode::Timer::Resend(m) => resend.push(m),
                quick_mode::Timer::Failed => failed_qms.push(*mid),
                quick_mode::Timer::Forget => {}
            }
        }
        sa.qms.retain(|_, qm| !qm.forgettable(now));
        let notify = sa.notify.on_timer(now, tries);
        let (local, peer) = (sa.local, sa.peer);
        self.stats.retransmitted += resend.len() as u64;
        for m in resend {
            self.send(local, peer, m);
        }
        match notify {
            notify::NotifyTimer::Nothing => {}
            notify::NotifyTimer::Resend(m) => {
                self.stats.retransmitted += 1;
                self.send(local, peer, m);
            }
            notify::NotifyTimer::GaveUp(what) => {
                info!(peer = %peer, "AuthIP: the peer never acknowledged {what}; the SA is deleted without it");
                if let Some(sa) = self.sas.get_mut(&id) {
                    sa.notify.clear();
                }
                if self.sas.get(&id).is_some_and(|sa| sa.notify.deleting) {
                    self.remove_sa(id, "deleted; the peer did not acknowledge");
                }
            }
        }
        for mid in failed_qms {
            self.fail_quick_mode(id, mid, "the peer did not answer the Quick Mode");
        }
        let _ = rng;
    }

    /// Records and reports a failed negotiation, and forgets the SA.
    fn fail(&mut self, id: u64, reason: &str) {
        let Some(sa) = self.sas.get(&id) else { return };
        self.stats.failures += 1;
        let (rule, peer, established) = (sa.rule.clone(), sa.peer, sa.state == MmState::Established);
        let requests: Vec<RequestId> = sa
            .pending
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .chain(sa.qms.values().flat_map(|q| q.requests.iter().copied()))
            .collect();
        info!(peer = %peer, rule = %rule, "AuthIP Main Mode failed: {reason} ({EXPERIMENTAL})");
        let psk_fallback = sa.role == Role::Initiator
            && !established
            && self.policy.rule(&rule).is_some_and(|r| r.authentication == Authentication::CertificateThenPsk);
        if psk_fallback {
            let selector = sa.pending.as_ref().map(|(s, _)| *s).or_else(|| sa.qms.values().next().map(|q| q.selector));
            let local = sa.local;
            self.races.push_back(Race::FallBackToPsk {
                rule,
                local,
                peer,
                requests: requests.into_iter().map(|r| (r, selector.unwrap_or(Selector::ANY))).collect(),
                reason: reason.to_string(),
            });
            self.forget(id);
            return;
        }
        if requests.is_empty() {
            self.events.push_back(Event::NegotiationFailed {
                request: None,
                rule: Some(rule.clone()),
                peer,
                phase: "main mode",
                reason: format!("AuthIP: {reason}"),
            });
        }
        for r in requests {
            self.events.push_back(Event::NegotiationFailed {
                request: Some(r),
                rule: Some(rule.clone()),
                peer,
                phase: "main mode",
                reason: format!("AuthIP: {reason}"),
            });
        }
        if established {
            self.remove_sa(id, reason);
        } else {
            self.forget(id);
        }
    }

    /// Forgets an SA without events (and its children, which are reported).
    fn forget(&mut self, id: u64) -> Option<Sa> {
        let sa = self.sas.remove(&id)?;
        self.by_cookie.remove(&sa.own_cookie());
        self.half_open.remove(&(sa.peer, sa.cky_i));
        let spis: Vec<u32> = self.children.iter().filter(|(_, c)| c.sa == id).map(|(s, _)| *s).collect();
        for spi in spis {
            self.remove_child(spi, "its AuthIP Main Mode SA was deleted");
        }
        Some(sa)
    }

    /// Removes an SA and reports it down.
    fn remove_sa(&mut self, id: u64, reason: &str) {
        let now_info = self.sas.get(&id).map(|sa| sa.info(None));
        // one the peer deleted was reported down then
        let established =
            self.sas.get(&id).is_some_and(|sa| sa.state == MmState::Established && sa.notify.closing_until.is_none());
        if self.forget(id).is_some() && established {
            if let Some(info) = now_info {
                self.events.push_back(Event::MainModeDown { info, reason: format!("AuthIP: {reason}") });
            }
        }
    }

    fn remove_child(&mut self, spi_in: u32, reason: &str) {
        if let Some(c) = self.children.remove(&spi_in) {
            self.events.push_back(Event::QuickModeDown { info: c.info, reason: format!("AuthIP: {reason}") });
        }
    }

    /// The daemon's report that an AuthIP SA pair ran out of lifetime (time or volume).
    pub fn expire_child(&mut self, spi_in: u32) {
        self.remove_child(spi_in, "its lifetime expired");
    }

    /// Renews an AuthIP SA pair before it expires: a new Quick Mode (exchange 244) under its Main Mode SA, or a
    /// new Main Mode when that is gone. Returns the request, or `None` when the pair is not AuthIP's.
    pub fn rekey(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        spi_in: u32,
        request: RequestId,
    ) -> Option<RequestId> {
        self.children.get(&spi_in)?;
        self.renew(now, rng, spi_in, vec![request]);
        Some(request)
    }

    /// Negotiates the successor of an SA pair: a Quick Mode under its Main Mode SA (or another established one
    /// with the peer under the rule), else a new Main Mode.
    fn renew(&mut self, now: Instant, rng: &mut dyn CryptoRngCore, spi_in: u32, requests: Vec<RequestId>) {
        let Some(c) = self.children.get(&spi_in) else { return };
        let (sa_id, selector, rule, peer, local) =
            (c.sa, c.info.selector, c.info.rule.clone(), c.info.peer, c.info.local);
        let carrier = self
            .sas
            .get(&sa_id)
            .filter(|sa| sa.state == MmState::Established && sa.notify.closing_until.is_none() && !sa.notify.deleting)
            .map(|_| sa_id)
            .or_else(|| self.established(&rule, peer.ip()));
        if let Some(id) = carrier {
            self.start_quick_mode(now, rng, id, selector, requests);
        } else if let Some(r) = self.policy.rule(&rule).cloned() {
            if let Err(why) = self.initiate(now, rng, &r, local, peer, selector, requests, None) {
                info!(peer = %peer, rule = %rule, "AuthIP: cannot renew SA pair {spi_in:08x}: {why}");
            }
        }
    }

    /// Deletes every AuthIP SA of `rule` (all if `None`) with `peer` (all if `None`), telling the peer with a
    /// reliable NOTIFY_STATUS. Returns how many Main Mode SAs went.
    pub fn terminate(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        rule: Option<&str>,
        peer: Option<IpAddr>,
        reason: &str,
    ) -> usize {
        let ids: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| rule.is_none_or(|r| sa.rule == r) && peer.is_none_or(|p| sa.peer.ip() == p))
            // one the peer deleted is gone already (kept only to acknowledge copies of the delete)
            .filter(|(_, sa)| sa.notify.closing_until.is_none())
            .map(|(id, _)| *id)
            .collect();
        for &id in &ids {
            self.delete_with_notice(now, rng, id, reason);
        }
        ids.len()
    }
}

/// Why a peer's Main Mode is refused before any state exists, for the log.
fn refusal(rule: Option<&Rule>) -> String {
    match rule {
        None => "no rule governs this peer".into(),
        Some(r) if r.keying != Keying::AuthIp => {
            format!("rule '{}' uses keying = \"ike\" (the parallel IKEv1 Main Mode is answered instead)", r.name)
        }
        Some(r) => format!(
            "rule '{}' authenticates with {}, which AuthIP cannot do (IKEv1 serves it)",
            r.name,
            r.authentication.name()
        ),
    }
}
