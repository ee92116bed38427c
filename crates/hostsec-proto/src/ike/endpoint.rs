//! The IKE endpoint: owns every ISAKMP SA, Quick Mode and ESP SA pair of one host, dispatches datagrams to
//! them by cookies and message ID, runs their timers, and queues datagrams and events for the daemon.

use super::admission::{Admission, Limits, Refusal, RefusalLog};
use super::dpd::{self, Dpd, DpdStep};
use super::events::{Event, MainModeSaInfo, QuickModeSaInfo, RequestId, Role};
use super::fragment::{self, Added, Reassembly, Refused};
use super::informational::{self, InfoItem};
use super::main_mode::{Failure, MainMode, Step};
use super::message::collect;
use super::quick_mode::{NewChild, QmState, QmStep, QuickMode};
use super::rekey::{ChildLife, MainModeLife};
use super::retransmit::request_digest;
use super::sa::{send_plain_notify, Ctx, IkeSa, Phase1, SaCore, SaId};
use super::selector::{initiator_selector, main_mode_rule, reload_verdict, Flow, Selector};
use super::stats::Stats;
use super::vendor::PeerVendors;
use super::Timing;
use crate::authip::{self, AuthipEngine};
use crate::crypto::AuthMethod;
use crate::policy::{Authentication, Policy, Rule};
use crate::wire::consts::{exchange, flags, notify, payload, protocol, DOI_IPSEC, IKE_PORT, NATT_PORT};
use crate::wire::udp_encap::{self, UdpEncap, NAT_KEEPALIVE};
use crate::wire::{FragmentPayload, Header, NotifyRepr, Payloads};
use rand_core::CryptoRngCore;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info, warn};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address and port: one of the addresses IKE is bound to, port 500, or 4500 once NAT traversal
    /// floated the SA (the daemon sends from its socket bound to that port).
    pub local: SocketAddr,
    /// Destination.
    pub remote: SocketAddr,
    /// The UDP payload, ready to send as it is: an ISAKMP message on port 500; on port 4500 the non-ESP marker and
    /// the message, or a one-byte NAT-keepalive.
    pub payload: Vec<u8>,
}

/// Why `initiate` could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitiateError {
    /// No rule of that name.
    #[error("no rule named '{0}'")]
    UnknownRule(String),
    /// The rule does not negotiate (bypass, block or disabled).
    #[error("rule '{rule}' does not negotiate IPsec ({why})")]
    DoesNotNegotiate {
        /// The rule.
        rule: String,
        /// Why.
        why: String,
    },
    /// The rule's remote is not a single host and no peer was given.
    #[error("rule '{0}' covers more than one peer: name one with --peer")]
    NoPeer(String),
    /// The given peer is not covered by the rule.
    #[error("{peer} is not among the remote addresses of rule '{rule}'")]
    PeerNotCovered {
        /// The rule.
        rule: String,
        /// The peer.
        peer: IpAddr,
    },
}

/// An established ESP SA pair, as the endpoint keeps it (no keys: those went to the ESP layer).
struct Child {
    info: QuickModeSaInfo,
    expires: Instant,
    life: ChildLife,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Sa(SaId),
    Child(u32),
    /// The summary of refusals counted without a log line.
    Refusals,
    /// The soft deadline of a Main Mode SA, or a check of one being retired.
    MainModeSoft(SaId),
}

/// What the endpoint holds, for `hostsec stats` and the tests that check it stays bounded under a flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Occupancy {
    /// Main Mode (ISAKMP) SAs, established or negotiating.
    pub main_mode_sas: usize,
    /// Half-open responder Main Modes (not yet authenticated).
    pub half_open: usize,
    /// Quick Mode SA pairs.
    pub quick_mode_sas: usize,
    /// Entries in the timer queue (live and stale ones).
    pub timers: usize,
}

/// Bound on Quick Modes running at once (not finished) under one ISAKMP SA.
const MAX_QUICK_MODES_PER_SA: usize = 32;
/// Bound on finished Quick Modes kept per ISAKMP SA to answer retransmissions. A busy SA pair rekeyed by volume
/// (Windows' 100,000 KB at a gigabit: twice a second) finishes many more within the reply-keeping time than it
/// runs at once; beyond this bound the oldest are forgotten early (their message IDs stay retired).
const MAX_FINISHED_QUICK_MODES: usize = 64;
/// Bound on the message IDs of forgotten Quick Modes remembered per SA, so that a replayed message of one is
/// dropped instead of starting a new exchange.
const RETIRED_QUICK_MODES: usize = 1024;
/// Bound on the Informational message IDs remembered per SA to ignore replays.
const SEEN_INFORMATIONAL: usize = 64;
/// How long a rekeyed SA pair lives on beside its successor, for packets still in flight (make-before-break),
/// before it is deleted (and the peer told).
const REKEY_OVERLAP: std::time::Duration = std::time::Duration::from_secs(10);
/// Shortest time between two INVALID-SPI notifications to one peer: an unknown SPI usually comes as
/// a stream of packets, and one notification per second is plenty for the peer to act on.
const INVALID_SPI_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Bound on the peers remembered for that rate limit.
const INVALID_SPI_PEERS: usize = 256;
/// Largest first message (MM1) answered. A half-open responder keeps the SA payload of MM1 (it is hashed into
/// the authentication), so this bounds what each half-open Main Mode costs. hostsec's largest MM1 (every
/// transform of `standard` offered for two authentication methods) is about 2.9 KB; other implementations send
/// far fewer proposals.
const MAX_FIRST_MESSAGE: usize = 8192;
/// Why a pair replaced by our rekey goes (the daemon reads "rekeyed" as "nothing to bring back").
pub const REKEYED: &str = "rekeyed: its successor took over";
/// Why the SAs of a `rule test` go (with "administrator" in it, which the daemon reads as "do not bring back").
const TEST_OVER: &str = "the administrator's rule test is over";

/// The sans-IO IKEv1 engine of one host.
pub struct Endpoint {
    policy: Arc<Policy>,
    timing: Timing,
    rng: Box<dyn CryptoRngCore + Send>,
    sas: BTreeMap<SaId, IkeSa>,
    by_cookie: HashMap<[u8; 8], SaId>,
    /// Bounds on half-open responder Main Modes and on the rate of new ones.
    admission: Admission,
    /// Rate-limited logging of refusals.
    refusals: RefusalLog,
    /// The refusal summary's entry in `timers`.
    refusals_scheduled: Option<Instant>,
    children: BTreeMap<u32, Child>,
    reserved_spis: HashSet<u32>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    out: VecDeque<Transmit>,
    /// NAT-keepalives to send (apart from `out`: they are not ISAKMP messages and get no marker).
    keepalives: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    next_sa: SaId,
    next_request: u64,
    contacted: HashSet<IpAddr>,
    /// Rekey requests and the inbound SPI of the pair each one replaces.
    rekeying: HashMap<RequestId, u32>,
    /// Renewal state of Main Mode SAs (rekey.rs).
    mm_life: HashMap<SaId, MainModeLife>,
    /// Requests of `rule test`, whose failures are reported as a verdict.
    tests: HashSet<RequestId>,
    /// The wall-clock time at an instant, for certificate validity (the sans-IO core reads no clock).
    wall_clock: Option<(Instant, std::time::SystemTime)>,
    /// When each peer was last sent INVALID-SPI (bounded).
    invalid_spi_sent: HashMap<IpAddr, Instant>,
    /// The AuthIP keying module, for rules with `keying = "authip"` (experimental).
    authip: AuthipEngine,
}

/// The context of one step, borrowing the endpoint's fields one by one so that an SA of `sas` can be borrowed
/// beside it.
macro_rules! ctx {
    ($s:ident, $now:expr) => {
        Ctx {
            now: $now,
            rng: &mut *$s.rng,
            out: &mut $s.out,
            stats: &mut $s.stats,
            timing: &$s.timing,
            policy: &$s.policy,
            wall_clock: $s.wall_clock.map(|(at, time)| wall_time_at(at, time, $now)),
        }
    };
}

mod coexist;
mod hold;
mod renew;
pub use renew::StateCounts;

/// The wall-clock time at `now`, from a reference pair (`at` = `time`) the daemon gave.
fn wall_time_at(at: Instant, time: std::time::SystemTime, now: Instant) -> std::time::SystemTime {
    if now >= at {
        time + (now - at)
    } else {
        time.checked_sub(at - now).unwrap_or(time)
    }
}

impl Endpoint {
    /// A new endpoint running `policy`, drawing all randomness from `rng`.
    pub fn new(policy: Arc<Policy>, timing: Timing, rng: Box<dyn CryptoRngCore + Send>) -> Self {
        Endpoint {
            authip: AuthipEngine::new(policy.clone(), timing.clone()),
            policy,
            timing,
            rng,
            sas: BTreeMap::new(),
            by_cookie: HashMap::new(),
            admission: Admission::default(),
            refusals: RefusalLog::default(),
            refusals_scheduled: None,
            children: BTreeMap::new(),
            reserved_spis: HashSet::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            keepalives: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            next_sa: 1,
            next_request: 1,
            contacted: HashSet::new(),
            rekeying: HashMap::new(),
            mm_life: HashMap::new(),
            tests: HashSet::new(),
            wall_clock: None,
            invalid_spi_sent: HashMap::new(),
        }
    }

    /// Tells the endpoint the wall-clock time (`time` at instant `at`), which certificate validation needs:
    /// the core reads no clock, and `Instant`s have no calendar. The daemon calls this at start and whenever it
    /// may have drifted (after a suspend, a clock step); without it, certificate authentication fails with a
    /// reason that says so.
    pub fn set_wall_clock(&mut self, at: Instant, time: std::time::SystemTime) {
        self.wall_clock = Some((at, time));
        self.authip.set_wall_clock(at, time);
    }

    /// The AuthIP engine (its counters and SAs; tests set its DoS thresholds).
    pub fn authip(&mut self) -> &mut AuthipEngine {
        &mut self.authip
    }

    /// The AuthIP engine, to read (its counters and occupancy for `hostsec stats`).
    pub fn authip_engine(&self) -> &AuthipEngine {
        &self.authip
    }

    /// The policy in force.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Replaces the policy (a reload). SAs whose rule is unchanged (same name, still covering the SA's hosts and
    /// traffic, still governing that traffic, and the same authentication, keys, identities, strength, keying,
    /// PFS and NAT-T settings) stay as they are. The others are deleted, the peer told with DELETE: Quick Mode SAs
    /// of rules that were removed, disabled, narrowed or changed, and Main Mode SAs of such rules. Each deletion is
    /// logged and reported with its reason ("rule 'x' removed by reload", "rule 'x' no longer covers peer P",
    /// "rule 'x' changed (field)").
    pub fn set_policy(&mut self, now: Instant, policy: Arc<Policy>) {
        self.authip.set_policy(now, &mut *self.rng, policy.clone());
        let old = std::mem::replace(&mut self.policy, policy);
        let new = &self.policy;
        let kids: Vec<(u32, String)> = self
            .children
            .values()
            .filter_map(|c| {
                let i = &c.info;
                reload_verdict(old.rule(&i.rule), new, &i.rule, i.local.ip(), i.peer.ip(), Some(&i.selector))
                    .map(|why| (i.spi_in, why))
            })
            .collect();
        let sas: Vec<(SaId, String)> = self
            .sas
            .iter()
            .filter_map(|(id, sa)| {
                let c = &sa.core;
                reload_verdict(old.rule(&c.rule), new, &c.rule, c.local.ip(), c.peer.ip(), None).map(|why| (*id, why))
            })
            .collect();
        if !kids.is_empty() || !sas.is_empty() {
            info!(
                "reload: deleting {} Quick Mode and {} Main Mode SA(s) whose rule changed; the others stay",
                kids.len(),
                sas.len()
            );
        }
        // Quick Mode SAs first, while a Main Mode SA with the peer is still there to carry their DELETE.
        for (spi, why) in kids {
            self.delete_child_with_notice(now, spi, &why);
        }
        for (id, why) in sas {
            self.delete_sa_with_notice(now, id, &why);
        }
        self.rearm_dpd(now);
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How much state the endpoint holds now.
    pub fn occupancy(&self) -> Occupancy {
        let (authip_sas, authip_half_open) = self.authip.occupancy();
        Occupancy {
            main_mode_sas: self.sas.len() + authip_sas,
            half_open: self.admission.half_open.len() + authip_half_open,
            quick_mode_sas: self.children.len() + self.authip.child_count(),
            timers: self.timers.len(),
        }
    }

    /// Counts a refusal and logs it in full when it is the first of its reason in a while (else the periodic
    /// summary reports it); returns whether it was logged in full, for what goes with the log line.
    fn refuse(&mut self, now: Instant, why: Refusal, remote: SocketAddr, detail: impl FnOnce() -> String) -> bool {
        let counter = match why {
            Refusal::NoRule => &mut self.stats.refused_no_rule,
            Refusal::NoProposal => &mut self.stats.refused_no_proposal,
            Refusal::Exchange => &mut self.stats.refused_exchange,
            Refusal::PeerHalfOpen => &mut self.stats.refused_half_open_per_peer,
            Refusal::TotalHalfOpen => &mut self.stats.refused_half_open_total,
            Refusal::Rate => &mut self.stats.refused_rate,
            Refusal::HalfOpenExpired => &mut self.stats.half_open_expired,
        };
        *counter += 1;
        let full = self.refusals.note(now, why);
        if full {
            warn!(peer = %remote, "{} (further ones are counted and summarised every {}s)", detail(), super::admission::REFUSAL_LOG_INTERVAL.as_secs());
            self.schedule_refusal_summary();
        }
        full
    }

    /// Keeps one timer entry for the next refusal summary.
    fn schedule_refusal_summary(&mut self) {
        let next = self.refusals.next_deadline();
        if next.is_some() && next != self.refusals_scheduled {
            self.refusals_scheduled = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, TimerKey::Refusals)));
            }
        }
    }

    /// Logs the refusal summaries that are due.
    fn refusal_summaries(&mut self, now: Instant) {
        for (why, n) in self.refusals.due(now) {
            warn!("{n} more {} in the last {}s", why.summary(), super::admission::REFUSAL_LOG_INTERVAL.as_secs());
        }
        self.refusals_scheduled = None;
        self.schedule_refusal_summary();
    }

    /// The next datagram to send. A datagram of an SA whose peer announced IKE fragmentation comes out as
    /// fragments when it is larger than the global `ike_fragment_size` allows. Datagrams from port 4500 carry the
    /// non-ESP marker before the ISAKMP message (RFC 3948 §2.2), or are NAT-keepalives.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(k) = self.keepalives.pop_front() {
            return Some(k);
        }
        let Some(mut t) = self.next_message() else {
            return self.authip.poll_transmit();
        };
        if t.local.port() == NATT_PORT {
            t.payload = udp_encap::with_marker(&t.payload);
        }
        Some(t)
    }

    /// The next ISAKMP message to send, whole or as its next fragment.
    fn next_message(&mut self) -> Option<Transmit> {
        let t = self.out.pop_front()?;
        let Some(fragments) = self.fragments_of(&t) else {
            return Some(t);
        };
        self.stats.fragmented_sent += 1;
        self.stats.sent += fragments.len().saturating_sub(1) as u64;
        debug!(peer = %t.remote, "sending a {}-byte message as {} IKE fragments", t.payload.len(), fragments.len());
        let mut it = fragments.into_iter().map(|payload| Transmit { local: t.local, remote: t.remote, payload });
        let first = it.next();
        for (i, f) in it.enumerate() {
            self.out.insert(i, f);
        }
        first
    }

    /// The fragments to send instead of `t`, or `None` to send it whole. Every message of an SA goes through
    /// here whether first sent, retransmitted or replayed as a stored reply, so retransmissions resend all the
    /// fragments, identical (the fragment ID comes from the message). Fragments are sent only to a peer that
    /// announced support in MM1 or MM2, and to a Windows peer only for encrypted Main Mode messages (MM5/MM6,
    /// the ones that carry certificates): strongSwan found that Windows 7 and 8 accept fragments only of those.
    fn fragments_of(&self, t: &Transmit) -> Option<Vec<Vec<u8>>> {
        let max = fragment::max_datagram(self.policy.global.ike_fragment_size, t.local, t.remote);
        if t.payload.len() <= max {
            return None;
        }
        let hdr = Header::parse(&t.payload).ok().filter(|h| h.next_payload != payload::FRAGMENT)?;
        let sa = self.own_sa(&hdr).filter(|sa| sa.core.peer == t.remote)?;
        let v = sa.core.peer_vendors;
        if !v.fragmentation {
            debug!(peer = %t.remote, "sending a {}-byte message whole: the peer did not announce IKE fragmentation", t.payload.len());
            return None;
        }
        if v.windows && !(hdr.exchange_type == exchange::IDENTITY_PROTECTION && hdr.is_encrypted()) {
            return None;
        }
        fragment::split(&t.payload, max)
    }

    /// The SA that sent a message with this header (found by our own cookie in it).
    fn own_sa(&self, hdr: &Header) -> Option<&IkeSa> {
        let by = |cookie: &[u8; 8], role: Role| {
            self.by_cookie.get(cookie).and_then(|id| self.sas.get(id)).filter(|sa| {
                sa.core.role == role && sa.core.cky_i == hdr.initiator_cookie && sa.core.cky_r == hdr.responder_cookie
            })
        };
        by(&hdr.initiator_cookie, Role::Initiator).or_else(|| by(&hdr.responder_cookie, Role::Responder))
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let mut e = match self.events.pop_front() {
            Some(e) => e,
            None => self.authip.poll_event()?,
        };
        // A `rule test` reports its failure as a verdict, in the words the administrator asked for.
        if let Event::NegotiationFailed { request: Some(r), reason, .. } = &mut e {
            if self.tests.remove(r) && !reason.starts_with("no answer from") {
                *reason = format!("refused: {reason}");
            }
        }
        if let Event::RequestDone { request, .. } = &e {
            self.tests.remove(request);
        }
        self.note_event(&e);
        Some(e)
    }

    /// When [`Endpoint::handle_timeout`] must be called next (calling it earlier is harmless).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ike = self.timers.peek().map(|Reverse((t, _))| *t);
        [ike, self.authip.poll_timeout()].into_iter().flatten().min()
    }

    /// The Main Mode SAs.
    pub fn main_mode_sas(&self, now: Instant) -> Vec<MainModeSaInfo> {
        let mut v: Vec<MainModeSaInfo> = self.sas.values().map(|sa| sa.info(now)).collect();
        v.extend(self.authip.main_mode_sas(now));
        v
    }

    /// The Quick Mode SA pairs.
    pub fn quick_mode_sas(&self, now: Instant) -> Vec<QuickModeSaInfo> {
        let mut v: Vec<QuickModeSaInfo> = self
            .children
            .values()
            .map(|c| QuickModeSaInfo { lifetime_left: c.expires.saturating_duration_since(now), ..c.info.clone() })
            .collect();
        v.extend(self.authip.quick_mode_sas(now));
        v
    }

    /// Handles a datagram received on `local` from `remote`: the UDP payload as it arrived. On port 4500 (`local`
    /// port [`NATT_PORT`]) that is the non-ESP marker and an ISAKMP message; the daemon hands over every datagram
    /// of its 4500 socket that [`udp_encap::classify`] calls IKE, marker included, and keeps ESP for the ESP
    /// layer. A NAT-keepalive or an ESP packet that comes here anyway is counted and dropped.
    pub fn handle(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.stats.received += 1;
        if local.port() != NATT_PORT {
            self.dispatch(now, local, remote, data, false);
            return;
        }
        match udp_encap::classify(data) {
            UdpEncap::Ike(msg) => self.dispatch(now, local, remote, msg, false),
            UdpEncap::Keepalive => {
                self.stats.nat_keepalives_received += 1;
            }
            UdpEncap::Esp { spi, .. } => {
                self.stats.dropped_malformed += 1;
                debug!(peer = %remote, "dropped an ESP packet (SPI {spi:08x}) handed to IKE: the ESP layer takes those");
            }
            UdpEncap::Invalid(why) => {
                self.stats.dropped_malformed += 1;
                debug!(peer = %remote, "dropped a datagram on port {NATT_PORT}: {why}");
            }
        }
    }

    /// Handles a message: a datagram, or one reassembled from IKE fragments (which may not be a fragment again).
    fn dispatch(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8], reassembled: bool) {
        let hdr = match Header::parse(data) {
            Ok(h) => h,
            Err(e) => {
                self.stats.dropped_malformed += 1;
                debug!(peer = %remote, "dropped a malformed ISAKMP message: {e}");
                return;
            }
        };
        let Some(datagram) = usize::try_from(hdr.length).ok().and_then(|l| data.get(..l)) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if hdr.next_payload == payload::FRAGMENT {
            if reassembled {
                self.stats.dropped_malformed += 1;
                debug!(peer = %remote, "dropped a message reassembled from IKE fragments: it is a fragment itself");
            } else {
                self.on_fragment(now, local, remote, &hdr, datagram);
            }
            return;
        }
        match hdr.exchange_type {
            exchange::IDENTITY_PROTECTION => self.on_main_mode(now, local, remote, &hdr, datagram),
            exchange::QUICK_MODE => self.on_quick_mode(now, local, remote, &hdr, datagram),
            exchange::INFORMATIONAL => self.on_informational(now, local, remote, &hdr, datagram),
            exchange::AGGRESSIVE => {
                self.refuse(now, Refusal::Exchange, remote, || {
                    "refused Aggressive Mode: hostsec negotiates Main Mode only (it protects identities); configure the peer for Main Mode".to_string()
                });
                if hdr.responder_cookie == [0; 8] && self.admission.may_notify(now) {
                    let cky_r = self.fresh_cookie();
                    let mut cx = ctx!(self, now);
                    send_plain_notify(
                        &mut cx,
                        local,
                        remote,
                        hdr.initiator_cookie,
                        cky_r,
                        notify::INVALID_EXCHANGE_TYPE,
                    );
                }
            }
            exchange::AUTHIP_MAIN_MODE
            | exchange::AUTHIP_QUICK_MODE
            | exchange::AUTHIP_EXTENDED_MODE
            | exchange::AUTHIP_NOTIFY => {
                if self.policy.rules.iter().any(|r| authip::rule_method(r).is_some()) {
                    self.authip.handle(now, &mut *self.rng, local, remote, datagram);
                    self.settle_races(now);
                } else {
                    // [MS-AIPS] §3.2.4: a Windows initiator sends IKEv1 MM1 beside its AuthIP #1, and continues
                    // with whichever the peer answers; with no AuthIP rule, IKEv1 it is.
                    self.stats.refused_exchange += 1;
                    debug!(peer = %remote, "ignored an AuthIP message (exchange {}): no rule uses keying = \"authip\"; the IKEv1 Main Mode Windows sends alongside is answered", hdr.exchange_type);
                }
            }
            other => {
                self.refuse(now, Refusal::Exchange, remote, || {
                    format!("refused ISAKMP exchange type {other}: hostsec does IKEv1 Main Mode, Quick Mode and Informational only")
                });
            }
        }
    }

    /// An IKE fragment: held in its SA's reassembly until the message is complete, which is then handled as if it
    /// had come whole. Fragments with a zero responder cookie (a fragmented first message) are refused: MM1 is
    /// small, and reassembling before the responder has an SA would keep state for anyone who sends a fragment.
    fn on_fragment(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, hdr: &Header, datagram: &[u8]) {
        self.stats.fragments_received += 1;
        let frag = match Payloads::new(hdr.next_payload, datagram.get(Header::LEN..).unwrap_or_default()).next() {
            _ if hdr.is_encrypted() => Err("it has the encryption flag".to_string()),
            Some(Ok(p)) => FragmentPayload::parse(p.body).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no payload".to_string()),
        };
        let frag = match frag {
            Ok(f) => f,
            Err(why) => return self.drop_fragments(1, remote, &format!("malformed: {why}")),
        };
        if hdr.responder_cookie == [0; 8] {
            return self.drop_fragments(
                1,
                remote,
                "a fragmented first message (zero responder cookie) is not reassembled",
            );
        }
        let Some(id) = self.lookup(hdr, remote) else {
            return self.drop_fragments(1, remote, "its cookies are of no known SA");
        };
        let deadline = now + self.timing.fragment_reassembly;
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let superseded = match sa.core.reassembly.take() {
            Some(r) if r.id == frag.id => {
                sa.core.reassembly = Some(r);
                0
            }
            Some(r) => r.held(),
            None => 0,
        };
        let r = sa.core.reassembly.get_or_insert_with(|| Reassembly::new(frag.id, deadline));
        let result = r.add(&frag);
        let discarded = match &result {
            Err(Refused::OutOfBounds(_)) => sa.core.reassembly.take().map_or(0, |r| r.held()),
            Ok(Added::Complete(_)) => {
                sa.core.reassembly = None;
                0
            }
            _ => 0,
        };
        if superseded > 0 {
            self.drop_fragments(
                superseded,
                remote,
                "an incomplete message was superseded by fragments with another ID",
            );
        }
        match result {
            Ok(Added::Incomplete) => {
                debug!(peer = %remote, "holding IKE fragment {} of message {}", frag.number, frag.id);
            }
            Ok(Added::Complete(msg)) => {
                let same_sa = Header::parse(&msg).is_ok_and(|h| {
                    (h.initiator_cookie, h.responder_cookie) == (hdr.initiator_cookie, hdr.responder_cookie)
                });
                if same_sa {
                    self.stats.reassembled += 1;
                    debug!(peer = %remote, "reassembled a {}-byte message from IKE fragments", msg.len());
                    self.dispatch(now, local, remote, &msg, true);
                } else {
                    self.stats.dropped_malformed += 1;
                    debug!(peer = %remote, "dropped a message reassembled from IKE fragments: it is not an ISAKMP message of the fragments' SA");
                }
            }
            Err(Refused::Duplicate) => self.drop_fragments(1, remote, "a duplicate"),
            Err(Refused::Inconsistent(why)) => self.drop_fragments(1, remote, &why),
            Err(Refused::OutOfBounds(why)) => {
                self.drop_fragments(1 + discarded, remote, &format!("{why}; the message is discarded"))
            }
        }
        self.schedule(id);
    }

    /// Counts and logs `count` IKE fragments dropped.
    fn drop_fragments(&mut self, count: usize, remote: SocketAddr, why: &str) {
        self.stats.dropped_fragments += count as u64;
        debug!(peer = %remote, "dropped {count} IKE fragment(s): {why}");
    }

    fn on_main_mode(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, hdr: &Header, datagram: &[u8]) {
        if hdr.responder_cookie == [0; 8] {
            match self.admission.half_open.get(remote, hdr.initiator_cookie) {
                Some(id) => {
                    if !self.answer_duplicate(id, datagram) {
                        self.stats.dropped_unexpected += 1;
                    }
                }
                None => self.respond_main_mode(now, local, remote, hdr, datagram),
            }
            return;
        }
        let Some(id) = self.lookup(hdr, remote) else {
            self.stats.dropped_unknown_sa += 1;
            debug!(peer = %remote, "dropped a Main Mode message for unknown cookies");
            return;
        };
        if self.answer_duplicate(id, datagram) {
            return;
        }
        let Some(IkeSa { mut core, phase1, quick_modes }) = self.sas.remove(&id) else {
            return;
        };
        let mm = match phase1 {
            Phase1::Negotiating(mm) => *mm,
            established => {
                self.sas.insert(id, IkeSa { core, phase1: established, quick_modes });
                self.stats.dropped_unexpected += 1;
                debug!(peer = %remote, "dropped a late Main Mode message: the SA is established");
                return;
            }
        };
        let Some(rule) = self.policy.rule(&core.rule).cloned() else {
            let reason = format!("rule '{}' was removed", core.rule);
            self.sas.insert(id, IkeSa { core, phase1: Phase1::Negotiating(Box::new(mm)), quick_modes });
            self.fail_sa(now, id, Failure { reason, notify: None, auth: false });
            return;
        };
        let chosen_auth = mm.auth();
        if core.role == Role::Responder {
            core.send_initial_contact = self.first_contact(core.peer.ip());
        }
        // The NATed initiator's MM5 comes to port 4500 (RFC 3947 §4), from wherever its NAT maps it: the SA
        // answers there if the message authenticates, and stays where it was if not.
        let was = (core.local, core.peer);
        if core.peer_vendors.nat_t.is_some() && local.port() == NATT_PORT {
            (core.local, core.peer) = (local, remote);
        }
        let result = {
            let mut cx = ctx!(self, now);
            mm.handle(&mut cx, &mut core, &rule, hdr, datagram)
        };
        if core.role == Role::Initiator && matches!(result, Ok(Step::Next(_) | Step::Up(_))) {
            if let Some(twin) = core.authip_twin.take() {
                self.ikev1_won(twin, core.peer, &core.rule);
            }
        }
        if !matches!(result, Ok(Step::Next(_) | Step::Up(_))) {
            (core.local, core.peer) = was;
        } else if (core.local, core.peer) != was {
            debug!(peer = %remote, "Main Mode floated to {} <-> {}", core.local, core.peer);
        }
        let phase1 = match result {
            Ok(Step::Drop(mm, why)) => {
                self.stats.dropped_unexpected += 1;
                debug!(peer = %remote, "dropped a Main Mode message: {why}");
                Phase1::Negotiating(Box::new(mm))
            }
            Ok(Step::Next(mm)) => Phase1::Negotiating(Box::new(mm)),
            Ok(Step::Up(est)) => {
                self.sas.insert(id, IkeSa { core, phase1: Phase1::Established(est), quick_modes });
                self.on_established(now, id);
                self.schedule(id);
                return;
            }
            Err(f) => {
                self.unindex(id, &core, &quick_modes);
                if let Some(rule) = self.psk_fallback(&core, chosen_auth) {
                    self.fall_back_to_psk(now, &core, &rule, f);
                } else {
                    self.report_failure(now, &core, &quick_modes, f);
                }
                return;
            }
        };
        self.sas.insert(id, IkeSa { core, phase1, quick_modes });
        self.schedule(id);
    }

    fn respond_main_mode(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        datagram: &[u8],
    ) {
        if hdr.flags & flags::ENCRYPTION != 0 || hdr.message_id != 0 {
            self.stats.dropped_malformed += 1;
            debug!(peer = %remote, "dropped a first Main Mode message that is encrypted or has a message ID");
            return;
        }
        if self.discard_for_authip(local, remote, datagram) {
            return;
        }
        if datagram.len() > MAX_FIRST_MESSAGE {
            self.stats.dropped_malformed += 1;
            debug!(peer = %remote, "dropped a {}-byte MM1: more than {MAX_FIRST_MESSAGE} bytes", datagram.len());
            return;
        }
        let c = match collect(hdr.next_payload, &datagram[Header::LEN..]) {
            Ok(c) => c,
            Err(e) => {
                self.stats.dropped_malformed += 1;
                debug!(peer = %remote, "dropped a malformed MM1: {e}");
                return;
            }
        };
        let [sa_body] = c.sa.as_slice() else {
            self.stats.dropped_malformed += 1;
            debug!(peer = %remote, "dropped an MM1 without exactly one SA payload");
            return;
        };
        let Some(rule_idx) = main_mode_rule(&self.policy, local.ip(), remote.ip()) else {
            let why = match self.policy.governing_rule(local.ip(), remote.ip()) {
                Some(i) => format!(
                    "rule '{}' applies to it with action {}",
                    self.policy.rules[i].name,
                    self.policy.rules[i].action.name()
                ),
                None => "no enabled require/request rule covers it".to_string(),
            };
            if self.refuse(now, Refusal::NoRule, remote, || format!("refused Main Mode from {}: {why}", remote.ip())) {
                failed(&mut self.events, None, None, remote, "main mode", format!("refused: {why}"));
            }
            // The source may be forged: the answer is smaller than the request, and rate-limited.
            if self.admission.may_notify(now) {
                let cky_r = self.fresh_cookie();
                let mut cx = ctx!(self, now);
                send_plain_notify(&mut cx, local, remote, hdr.initiator_cookie, cky_r, notify::NO_PROPOSAL_CHOSEN);
            }
            return;
        };
        // Admission before any work or state: what is refused here is dropped silently (an answer would let forged
        // sources reflect traffic at third parties).
        let known = self.contacted.contains(&remote.ip());
        let limits = Limits::from_global(&self.policy.global);
        if let Err(why) = self.admission.admit(now, limits, remote.ip(), known) {
            let held = self.admission.half_open.len();
            self.refuse(now, why, remote, || {
                let detail = match why {
                    Refusal::PeerHalfOpen => format!(
                        "{} half-open Main Modes are the bound per peer (half_open_main_modes_per_peer)",
                        limits.per_peer
                    ),
                    Refusal::TotalHalfOpen => {
                        format!("{held} half-open Main Modes are the bound (half_open_main_modes)")
                    }
                    _ => format!("more than {} new Main Modes per second (new_main_modes_per_second)", limits.rate),
                };
                format!("dropped a Main Mode request from {} without answer: {detail}", remote.ip())
            });
            return;
        }
        let cky_r = self.fresh_cookie();
        let rule = self.policy.rules[rule_idx].clone();
        let id = self.next_sa;
        self.next_sa += 1;
        let mut core = SaCore::new(&rule.name, Role::Responder, local, remote, hdr.initiator_cookie, cky_r);
        core.started = Some(now);
        core.peer_vendors = PeerVendors::from_payloads(&c.vid);
        let result = {
            let mut cx = ctx!(self, now);
            MainMode::respond(&mut cx, &mut core, &rule, datagram, sa_body)
        };
        match result {
            Ok(mm) => {
                self.stats.responder_main_modes += 1;
                self.by_cookie.insert(cky_r, id);
                self.admission.half_open.insert(remote, hdr.initiator_cookie, id);
                self.sas.insert(
                    id,
                    IkeSa { core, phase1: Phase1::Negotiating(Box::new(mm)), quick_modes: BTreeMap::new() },
                );
                debug!(peer = %remote, rule = %rule.name, "answered MM1");
                self.schedule(id);
            }
            Err(f) => {
                let full = self.refuse(now, Refusal::NoProposal, remote, || {
                    format!("Main Mode refused under rule '{}': {}", rule.name, f.reason)
                });
                if let Some(n) = f.notify.filter(|_| self.admission.may_notify(now)) {
                    let mut cx = ctx!(self, now);
                    send_plain_notify(&mut cx, local, remote, hdr.initiator_cookie, cky_r, n);
                }
                if full {
                    failed(&mut self.events, None, Some(rule.name.clone()), remote, "main mode", f.reason);
                }
            }
        }
    }

    /// Answers a retransmitted request with the stored reply; `false` when `datagram` is not one.
    fn answer_duplicate(&mut self, id: SaId, datagram: &[u8]) -> bool {
        let Some(sa) = self.sas.get(&id) else {
            return false;
        };
        match &sa.core.reply {
            Some(r) if r.request_digest == request_digest(datagram) => {
                self.stats.duplicates_answered += 1;
                self.stats.sent += 1;
                self.out.push_back(Transmit { local: sa.core.local, remote: sa.core.peer, payload: r.reply.clone() });
                true
            }
            _ => false,
        }
    }

    /// The SA that owns a message with both cookies set, if it came from that SA's peer address.
    fn lookup(&self, hdr: &Header, remote: SocketAddr) -> Option<SaId> {
        let candidate = |cookie: &[u8; 8], role: Role| {
            self.by_cookie.get(cookie).copied().filter(|id| {
                self.sas.get(id).is_some_and(|sa| {
                    let c = &sa.core;
                    // A peer behind NAT may come back from another address (its NAT rebooted, or it moved):
                    // the message must then authenticate before the SA follows it.
                    let same_peer = c.peer.ip() == remote.ip() || (c.nat.peer_behind() && c.local.port() == NATT_PORT);
                    c.role == role
                        && same_peer
                        && match role {
                            Role::Initiator => c.cky_r == hdr.responder_cookie || c.cky_r == [0; 8],
                            Role::Responder => c.cky_i == hdr.initiator_cookie,
                        }
                })
            })
        };
        candidate(&hdr.initiator_cookie, Role::Initiator).or_else(|| candidate(&hdr.responder_cookie, Role::Responder))
    }

    fn on_established(&mut self, now: Instant, id: SaId) {
        // By SA rather than by key: a responder that floated to port 4500 no longer has the address of MM1.
        self.admission.half_open.remove(id);
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        sa.core.retransmit = None;
        sa.core.up = Some(now);
        if sa.core.nat.local_behind() && !self.timing.nat_keepalive.is_zero() {
            sa.core.keepalive_at = Some(now + self.timing.nat_keepalive);
        }
        sa.core.idle_deadline = sa.core.reply.as_ref().map(|_| now + self.timing.keep_reply);
        if sa.core.peer_vendors.dpd && !sa.core.test {
            let seq = self.rng.next_u32();
            sa.core.dpd = Some(Dpd::new(now, self.policy.global.dpd_interval, seq));
        }
        self.stats.main_mode_established += 1;
        let info = sa.info(now);
        let Phase1::Established(est) = &sa.phase1 else {
            return;
        };
        info!(
            peer = %sa.core.peer,
            rule = %sa.core.rule,
            "Main Mode established as {} with {}: {}, auth {}, lifetime {}s",
            sa.core.role.name(),
            est.peer_id,
            est.suite,
            est.auth,
            est.expires.saturating_duration_since(now).as_secs(),
        );
        self.events.push_back(Event::MainModeUp { info, encryption_key: est.keys.ka.clone() });
        let (peer_ip, role) = (sa.core.peer.ip(), sa.core.role);
        let initial_contact = sa.core.peer_initial_contact;
        let waiting = std::mem::take(&mut sa.core.waiting);
        self.contacted.insert(peer_ip);
        let mut waiting = waiting;
        if initial_contact {
            waiting.extend(self.honour_initial_contact(now, id, peer_ip));
        }
        if role == Role::Responder && !waiting.is_empty() {
            // The initiator may not have read our MM6 yet: our Quick Modes wait a moment (see `hold`).
            if let Some(sa) = self.sas.get_mut(&id) {
                sa.core.waiting = waiting;
                sa.core.hold_quick_until = Some(now + hold::AFTER_ANSWERED_MAIN_MODE);
            }
            self.schedule(id);
            waiting = Vec::new();
        }
        // One Quick Mode per distinct traffic selector, serving every request that asked for it.
        let mut groups: Vec<(Selector, Vec<RequestId>)> = Vec::new();
        for (req, sel) in waiting {
            match groups.iter_mut().find(|(s, _)| *s == sel) {
                Some((_, reqs)) => reqs.push(req),
                None => groups.push((sel, vec![req])),
            }
        }
        for (sel, reqs) in groups {
            self.start_quick_mode(now, id, sel, reqs);
        }
        self.main_mode_up(now, id);
        self.release_for_new_main_mode(now, id);
    }

    /// The peer restarted: every other SA with it that came up before `keep` began is stale (RFC 2407
    /// §4.6.3.3). They are removed without DELETE: the peer no longer knows them. Our requests that were running
    /// on them are returned, for the SA `keep` to carry.
    fn honour_initial_contact(&mut self, now: Instant, keep: SaId, peer_ip: IpAddr) -> Vec<(RequestId, Selector)> {
        // What came up while `keep` was negotiated is not stale: both sides may have started a Main Mode at once,
        // each with INITIAL-CONTACT, and each must keep the other's.
        let since = self.sas.get(&keep).and_then(|sa| sa.core.started).unwrap_or(now);
        let stale: Vec<SaId> = self
            .sas
            .iter()
            .filter(|(i, sa)| **i != keep && sa.core.peer.ip() == peer_ip && sa.core.up.is_some_and(|t| t < since))
            .map(|(i, _)| *i)
            .collect();
        let keep_rule = self.sas.get(&keep).filter(|sa| !sa.core.test).map(|sa| sa.core.rule.clone());
        let mut rescued = Vec::new();
        for id in stale {
            if let Some(sa) =
                self.sas.get_mut(&id).filter(|sa| !sa.core.test && Some(&sa.core.rule) == keep_rule.as_ref())
            {
                rescued.append(&mut sa.core.waiting);
                for q in sa.quick_modes.values_mut().filter(|q| !matches!(q.state, QmState::Done)) {
                    let selector = q.selector;
                    rescued.extend(q.requests.drain(..).map(|r| (r, selector)));
                }
            }
            self.remove_sa(now, id, "the peer restarted (INITIAL-CONTACT)");
        }
        if !rescued.is_empty() {
            debug!(peer = %peer_ip, "{} request(s) of the stale SAs go on under the new Main Mode SA", rescued.len());
        }
        let kids: Vec<u32> = self
            .children
            .iter()
            .filter(|(_, c)| c.info.peer.ip() == peer_ip && c.life.up < since)
            .map(|(s, _)| *s)
            .collect();
        for spi in kids {
            self.remove_child(spi, "the peer restarted (INITIAL-CONTACT)");
        }
        rescued
    }

    fn fail_sa(&mut self, now: Instant, id: SaId, f: Failure) {
        if let Some(sa) = self.forget_sa(id) {
            let chosen_auth = match &sa.phase1 {
                Phase1::Negotiating(mm) => mm.auth(),
                Phase1::Established(_) => None,
            };
            if let Some(rule) = self.psk_fallback(&sa.core, chosen_auth) {
                self.fall_back_to_psk(now, &sa.core, &rule, f);
            } else {
                self.report_failure(now, &sa.core, &sa.quick_modes, f);
            }
        }
    }

    /// The rule to fall back to the pre-shared key with (SPEC §5), when a Main Mode that failed was ours, ran
    /// under a `certificate-then-psk` rule, and had agreed on a signature method: certificate authentication did
    /// not succeed, so a fresh Main Mode offering the PSK only is worth a try. `None` when no proposal had been
    /// agreed (the peer took none of our offers, PSK ones included) or this already was the fallback.
    fn psk_fallback(&self, core: &SaCore, chosen_auth: Option<AuthMethod>) -> Option<Rule> {
        if core.role != Role::Initiator || core.psk_only || chosen_auth.is_none_or(|a| a == AuthMethod::Psk) {
            return None;
        }
        let rule = self.policy.rule(&core.rule)?;
        (rule.authentication == Authentication::CertificateThenPsk && rule.psk.is_some()).then(|| rule.clone())
    }

    /// Says why certificate authentication did not succeed, tells the peer when there is a notification for
    /// it, and starts a fresh Main Mode with the pre-shared key only that takes over the waiting requests.
    fn fall_back_to_psk(&mut self, now: Instant, c: &SaCore, rule: &Rule, f: Failure) {
        if f.auth {
            self.stats.auth_failed += 1;
        }
        warn!(
            peer = %c.peer,
            rule = %c.rule,
            "certificate authentication did not succeed ({}); starting a new Main Mode with the pre-shared key only \
             (authentication = \"certificate-then-psk\")",
            f.reason
        );
        if let Some(n) = f.notify {
            let mut cx = ctx!(self, now);
            send_plain_notify(&mut cx, c.local, c.peer, c.cky_i, c.cky_r, n);
        }
        // Reported without a request: the requests are not failed, the PSK Main Mode serves them.
        let reason = format!(
            "certificate authentication did not succeed: {}; starting a new Main Mode with the pre-shared key only",
            f.reason
        );
        failed(&mut self.events, None, Some(c.rule.clone()), c.peer, "main mode", reason);
        self.start_main_mode_with(now, rule, c.local, c.peer, c.waiting.clone(), c.test, true, false);
    }

    /// Logs a failed Main Mode, tells the peer when there is a notification for it, and fails every request that
    /// waited on the SA.
    fn report_failure(&mut self, now: Instant, c: &SaCore, quick_modes: &BTreeMap<u32, QuickMode>, f: Failure) {
        if f.auth {
            self.stats.auth_failed += 1;
        }
        warn!(peer = %c.peer, rule = %c.rule, "Main Mode failed: {}", f.reason);
        if let Some(n) = f.notify {
            let mut cx = ctx!(self, now);
            send_plain_notify(&mut cx, c.local, c.peer, c.cky_i, c.cky_r, n);
        }
        let mut requests: Vec<RequestId> = c.waiting.iter().map(|(r, _)| *r).collect();
        requests.extend(quick_modes.values().flat_map(|q| q.requests.iter().copied()));
        fail_all(&mut self.events, &requests, &c.rule, c.peer, "main mode", &f.reason);
    }

    /// Removes an SA from the map and every index.
    fn forget_sa(&mut self, id: SaId) -> Option<IkeSa> {
        let sa = self.sas.remove(&id)?;
        self.forget_life(id);
        self.unindex(id, &sa.core, &sa.quick_modes);
        Some(sa)
    }

    /// Removes an SA (already out of the map) from the cookie indexes and releases the SPIs its Quick Modes
    /// reserved. The peer's fragments it held go with it, counted.
    fn unindex(&mut self, id: SaId, core: &SaCore, quick_modes: &BTreeMap<u32, QuickMode>) {
        if let Some(r) = core.reassembly.as_ref().filter(|r| r.held() > 0) {
            self.drop_fragments(r.held(), core.peer, "their SA is gone");
        }
        let own = core.own_cookie();
        if self.by_cookie.get(&own) == Some(&id) {
            self.by_cookie.remove(&own);
        }
        self.admission.half_open.remove(id);
        self.admission.half_open.shrink();
        // After a flood the index would keep its peak capacity for good.
        if self.by_cookie.capacity() > 64 && self.by_cookie.len() * 4 < self.by_cookie.capacity() {
            self.by_cookie.shrink_to(self.by_cookie.len() * 2);
        }
        for qm in quick_modes.values() {
            if !self.children.contains_key(&qm.spi_in) {
                self.reserved_spis.remove(&qm.spi_in);
            }
        }
    }

    /// Removes an ISAKMP SA with an event (and fails the requests waiting on it).
    fn remove_sa(&mut self, now: Instant, id: SaId, reason: &str) {
        let Some(mut sa) = self.forget_sa(id) else { return };
        // Requests held on an established SA (see `hold`) go on under another SA with the peer.
        let held = if sa.established().is_some() { std::mem::take(&mut sa.core.waiting) } else { Vec::new() };
        let c = &sa.core;
        info!(peer = %c.peer, rule = %c.rule, "Main Mode SA deleted: {reason}");
        let mut requests: Vec<RequestId> = c.waiting.iter().map(|(r, _)| *r).collect();
        requests.extend(
            sa.quick_modes
                .values()
                .filter(|q| !matches!(q.state, QmState::Done))
                .flat_map(|q| q.requests.iter().copied()),
        );
        for request in requests {
            let why = format!("the Main Mode SA was deleted: {reason}");
            failed(&mut self.events, Some(request), Some(c.rule.clone()), c.peer, "main mode", why);
        }
        self.events.push_back(Event::MainModeDown { info: sa.info(now), reason: reason.to_string() });
        if !held.is_empty() {
            self.carry_held(now, &sa.core.rule, sa.core.local, sa.core.peer, held, true);
        }
    }

    fn remove_child(&mut self, spi_in: u32, reason: &str) {
        if let Some(c) = self.children.remove(&spi_in) {
            self.reserved_spis.remove(&spi_in);
            info!(peer = %c.info.peer, rule = %c.info.rule, "Quick Mode SA deleted (SPIs in {:08x} out {:08x}): {reason}", c.info.spi_in, c.info.spi_out);
            self.events.push_back(Event::QuickModeDown { info: c.info, reason: reason.to_string() });
        }
    }

    fn start_quick_mode(&mut self, now: Instant, id: SaId, selector: Selector, requests: Vec<RequestId>) {
        let spi = self.fresh_spi();
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let msg_id = loop {
            let mut b = [0u8; 4];
            self.rng.fill_bytes(&mut b);
            let m = u32::from_be_bytes(b);
            if m != 0 && !sa.quick_modes.contains_key(&m) && !sa.core.retired_quick_modes.contains(&m) {
                break m;
            }
        };
        sa.forget_finished_quick_modes(MAX_FINISHED_QUICK_MODES, RETIRED_QUICK_MODES);
        let Some(rule) = self.policy.rule(&sa.core.rule) else {
            return;
        };
        let result = match &sa.phase1 {
            Phase1::Established(est) => {
                let mut cx = ctx!(self, now);
                QuickMode::start(&mut cx, &sa.core, est, rule, msg_id, spi.to_be_bytes(), selector, requests.clone())
            }
            Phase1::Negotiating(_) => Err("phase 1 is not established".into()),
        };
        match result {
            Ok(qm) => {
                self.reserved_spis.insert(spi);
                sa.quick_modes.insert(msg_id, qm);
            }
            Err(reason) => {
                warn!(peer = %sa.core.peer, rule = %sa.core.rule, "Quick Mode could not start: {reason}");
                fail_all(&mut self.events, &requests, &sa.core.rule, sa.core.peer, "quick mode", &reason);
            }
        }
        self.schedule(id);
    }

    fn on_quick_mode(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, hdr: &Header, datagram: &[u8]) {
        let Some(id) = self.lookup(hdr, remote) else {
            self.stats.dropped_unknown_sa += 1;
            debug!(peer = %remote, "dropped a Quick Mode message for unknown cookies");
            return;
        };
        if hdr.flags & flags::ENCRYPTION == 0 || hdr.message_id == 0 {
            self.stats.dropped_malformed += 1;
            debug!(peer = %remote, "dropped a Quick Mode message that is not encrypted or has message ID 0");
            return;
        }
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let Phase1::Established(est) = &sa.phase1 else {
            self.stats.dropped_unexpected += 1;
            debug!(peer = %remote, "dropped a Quick Mode message before Main Mode completed");
            return;
        };
        let msg_id = hdr.message_id;
        let Some(qm) = sa.quick_modes.get_mut(&msg_id) else {
            if self.respond_quick_mode(now, id, hdr, datagram) {
                self.follow_peer(id, local, remote);
                self.heard_from(now, remote.ip());
            }
            self.schedule(id);
            return;
        };
        let step = {
            let mut cx = ctx!(self, now);
            qm.handle(&mut cx, &sa.core, est, hdr, datagram)
        };
        match step {
            QmStep::Drop(why) => {
                self.stats.dropped_unexpected += 1;
                debug!(peer = %remote, "dropped a Quick Mode message: {why}");
            }
            QmStep::Continue => self.heard_from(now, remote.ip()),
            QmStep::ChildUp(child) => {
                let requests = std::mem::take(&mut qm.requests);
                let started = qm.started;
                self.follow_peer(id, local, remote);
                self.heard_from(now, remote.ip());
                self.install_child(now, id, *child, requests, started);
            }
            QmStep::Failed(reason, n) => {
                let requests = std::mem::take(&mut qm.requests);
                let spi = qm.spi_in;
                sa.quick_modes.remove(&msg_id);
                self.reserved_spis.remove(&spi);
                warn!(peer = %sa.core.peer, rule = %sa.core.rule, "Quick Mode failed: {reason}");
                if let Some(t) = n {
                    let repr = NotifyRepr {
                        doi: DOI_IPSEC,
                        protocol_id: protocol::ISAKMP,
                        notify_type: t,
                        spi: sa.core.isakmp_spi(),
                        data: Vec::new(),
                    };
                    let mut cx = ctx!(self, now);
                    let _ = sa.core.send_informational(&mut cx, est, &[(payload::NOTIFY, &repr)]);
                }
                fail_all(&mut self.events, &requests, &sa.core.rule, sa.core.peer, "quick mode", &reason);
                if sa.core.test {
                    self.delete_sa_with_notice(now, id, TEST_OVER);
                    return;
                }
            }
        }
        self.schedule(id);
    }

    /// Answers a peer's QM1; returns whether it authenticated (its HASH(1) verified), accepted or not.
    fn respond_quick_mode(&mut self, now: Instant, id: SaId, hdr: &Header, datagram: &[u8]) -> bool {
        let spi = self.fresh_spi();
        let Some(sa) = self.sas.get_mut(&id) else {
            return false;
        };
        if sa.core.retired_quick_modes.contains(&hdr.message_id) {
            self.stats.dropped_unexpected += 1;
            debug!(peer = %sa.core.peer, "dropped a message of a finished Quick Mode (message ID {:08x})", hdr.message_id);
            return false;
        }
        let running = sa.quick_modes.values().filter(|q| !matches!(q.state, QmState::Done)).count();
        if running >= MAX_QUICK_MODES_PER_SA {
            self.stats.dropped_unexpected += 1;
            warn!(peer = %sa.core.peer, "dropped a new Quick Mode: {MAX_QUICK_MODES_PER_SA} are running under this Main Mode SA");
            return false;
        }
        sa.forget_finished_quick_modes(MAX_FINISHED_QUICK_MODES, RETIRED_QUICK_MODES);
        let Phase1::Established(est) = &sa.phase1 else {
            return false;
        };
        let Some(rule) = self.policy.rule(&sa.core.rule) else {
            self.stats.refused_no_rule += 1;
            warn!(peer = %sa.core.peer, "refused a Quick Mode: rule '{}' was removed", sa.core.rule);
            return false;
        };
        let result = {
            let mut cx = ctx!(self, now);
            QuickMode::respond(&mut cx, &sa.core, est, rule, hdr, datagram, spi.to_be_bytes())
        };
        match result {
            Ok(qm) => {
                self.reserved_spis.insert(spi);
                // A `rule test` never reaches the ESP layer.
                if let (QmState::WaitCommit(child), false) = (&qm.state, sa.core.test) {
                    self.events.push_back(Event::QuickModeInbound(child.keys.clone()));
                }
                sa.quick_modes.insert(hdr.message_id, qm);
                true
            }
            Err(r) if r.bad_hash => {
                self.stats.dropped_bad_hash += 1;
                debug!(peer = %sa.core.peer, "dropped a Quick Mode message: {}", r.reason);
                false
            }
            Err(r) => {
                self.stats.refused_no_proposal += 1;
                warn!(peer = %sa.core.peer, rule = %sa.core.rule, "Quick Mode refused: {}", r.reason);
                let repr = NotifyRepr {
                    doi: DOI_IPSEC,
                    protocol_id: protocol::ISAKMP,
                    notify_type: r.notify,
                    spi: sa.core.isakmp_spi(),
                    data: Vec::new(),
                };
                let mut cx = ctx!(self, now);
                let _ = sa.core.send_informational(&mut cx, est, &[(payload::NOTIFY, &repr)]);
                failed(&mut self.events, None, Some(sa.core.rule.clone()), sa.core.peer, "quick mode", r.reason);
                true
            }
        }
    }

    /// An authenticated message of SA `id` came in on `local` from `remote`. When that is not where the SA is and
    /// the SA floated to port 4500 (NAT traversal), the peer's NAT changed its mapping: the SAs follow it.
    fn follow_peer(&mut self, id: SaId, local: SocketAddr, remote: SocketAddr) {
        let Some(sa) = self.sas.get(&id) else {
            return;
        };
        let c = &sa.core;
        if local.port() != NATT_PORT || c.local.port() != NATT_PORT || (c.local, c.peer) == (local, remote) {
            return;
        }
        self.move_peer(c.peer, local, remote);
    }

    /// Moves every SA with the peer at `old` to `new` (from `local`), and reports it.
    fn move_peer(&mut self, old: SocketAddr, local: SocketAddr, new: SocketAddr) {
        for sa in self.sas.values_mut().filter(|sa| sa.core.peer == old) {
            sa.core.peer = new;
            sa.core.local = local;
        }
        let mut spis_in = Vec::new();
        for c in self.children.values_mut().filter(|c| c.info.peer == old) {
            c.info.peer = new;
            c.info.local = local;
            if let Some(e) = c.info.encapsulation.as_mut() {
                e.local_port = local.port();
                e.remote_port = new.port();
            }
            spis_in.push(c.info.spi_in);
        }
        self.stats.peer_moves += 1;
        info!(peer = %new, "the peer's NAT mapping changed from {old} to {new}: its SAs follow ({} Quick Mode pair(s))", spis_in.len());
        self.events.push_back(Event::PeerMoved { old, new, local, spis_in });
    }

    /// The ESP layer received an authenticated packet (its ICV verified, its sequence number the highest so far,
    /// RFC 3948 §3.1.1 warns about replays) of the UDP-encapsulated inbound SA `spi_in` from `remote`, which is
    /// not where the SA's peer was: the peer's NAT changed its mapping. Every SA with the peer follows (an
    /// [`Event::PeerMoved`] reports it, for the daemon's outbound ESP SAs). Returns whether anything moved;
    /// `false` for an SA without UDP encapsulation or a `remote` where the peer already is.
    pub fn peer_moved(&mut self, spi_in: u32, remote: SocketAddr) -> bool {
        let Some(c) = self.children.get(&spi_in).filter(|c| c.info.encapsulation.is_some()) else {
            return false;
        };
        if c.info.peer == remote {
            return false;
        }
        let (old, local) = (c.info.peer, c.info.local);
        self.move_peer(old, local, remote);
        true
    }

    fn install_child(
        &mut self,
        now: Instant,
        id: SaId,
        mut child: NewChild,
        requests: Vec<RequestId>,
        started: Instant,
    ) {
        // Where the SA is now: the peer's NAT may have moved it while the Quick Mode ran.
        if let Some(sa) = self.sas.get(&id) {
            let i = &mut child.keys.info;
            (i.local, i.peer) = (sa.core.local, sa.core.peer);
            if let Some(e) = i.encapsulation.as_mut() {
                (e.local_port, e.remote_port) = (sa.core.local.port(), sa.core.peer.port());
            }
        }
        let info = child.keys.info.clone();
        self.stats.quick_mode_established += 1;
        let verdict = self.verdict(id, &info);
        info!(
            peer = %info.peer,
            rule = %info.rule,
            "Quick Mode established as {}: ESP transport {}, SPIs in {:08x} out {:08x}, PFS {}, {}, lifetime {}s/{}KB",
            info.role.name(),
            info.transform,
            info.spi_in,
            info.spi_out,
            info.pfs_group.map_or("none".to_string(), |g| format!("group {g}")),
            info.selector,
            child.lifetime.as_secs(),
            info.lifetime_kb,
        );
        if self.sas.get(&id).is_some_and(|sa| sa.core.test) {
            self.finish_test(now, id, &info, requests, verdict);
            return;
        }
        let expires = now + child.lifetime;
        self.reserved_spis.insert(info.spi_in);
        let mut life = ChildLife::new(now, child.lifetime, info.role, &mut *self.rng);
        life.started = started;
        self.children.insert(info.spi_in, Child { info: info.clone(), expires, life });
        self.timers.push(Reverse((expires, TimerKey::Child(info.spi_in))));
        self.arm_child(info.spi_in);
        self.events.push_back(Event::QuickModeUp(child.keys));
        for request in requests {
            if let Some(old) = self.rekeying.remove(&request) {
                // The successor is up: the old pair retires after the overlap, once the peer used the successor.
                self.retire_child(now, old, info.spi_in);
            }
            self.events.push_back(Event::RequestDone { request, info: info.clone(), verdict: verdict.clone() });
        }
        // The newest pair for some traffic is the one renewed (the peer's rekey, or a collision's later pair).
        self.supersede_older(now, info.spi_in);
    }

    /// A `rule test` negotiated its Quick Mode: the outcome is reported, and the test SAs are deleted at once
    /// (the peer told with DELETE), without ever reaching the ESP layer, so that traffic keeps its own SAs.
    fn finish_test(
        &mut self,
        now: Instant,
        id: SaId,
        info: &QuickModeSaInfo,
        requests: Vec<RequestId>,
        verdict: String,
    ) {
        info!(peer = %info.peer, rule = %info.rule, "rule test: {verdict}");
        for request in requests {
            self.events.push_back(Event::RequestDone { request, info: info.clone(), verdict: verdict.clone() });
        }
        if let Some(sa) = self.sas.get(&id) {
            if let Phase1::Established(est) = &sa.phase1 {
                let d = informational::delete_esp(&[info.spi_in]);
                let mut cx = ctx!(self, now);
                let _ = sa.core.send_informational(&mut cx, est, &[(payload::DELETE, &d)]);
            }
        }
        self.reserved_spis.remove(&info.spi_in);
        self.delete_sa_with_notice(now, id, TEST_OVER);
    }

    /// The outcome of a Quick Mode in words: the Main Mode and Quick Mode algorithms and the authentication.
    fn verdict(&self, id: SaId, info: &QuickModeSaInfo) -> String {
        let mm = match self.sas.get(&id).and_then(IkeSa::established) {
            Some(est) => format!("Main Mode {}, auth {}, peer identity {}", est.suite, est.auth, est.peer_id),
            None => "Main Mode gone".to_string(),
        };
        format!(
            "established with {} under rule '{}': {mm}; Quick Mode ESP {}, PFS {}, {}",
            info.peer.ip(),
            info.rule,
            info.transform,
            info.pfs_group.map_or("none".to_string(), |g| format!("group {g}")),
            info.selector
        )
    }

    /// The ESP layer used up an SA pair (its byte, packet or time limit, or its sequence numbers): it is deleted and
    /// the peer told. `spi` is our inbound SPI, or our outbound SPI when `inbound` is false.
    pub fn expire_child(&mut self, now: Instant, spi: u32, inbound: bool) {
        if let Some(spi_in) = self.authip_spi_in(now, spi, inbound) {
            return self.authip.expire_child(spi_in);
        }
        let found = self.children.values().find(|c| if inbound { c.info.spi_in == spi } else { c.info.spi_out == spi });
        if let Some(spi_in) = found.map(|c| c.info.spi_in) {
            self.delete_child_with_notice(now, spi_in, "the ESP layer used it up (its byte, packet or time limit)");
        }
    }

    fn on_informational(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, hdr: &Header, datagram: &[u8]) {
        if hdr.flags & flags::ENCRYPTION == 0 {
            self.on_plain_informational(now, remote, hdr, datagram);
            return;
        }
        let Some(id) = self.lookup(hdr, remote) else {
            self.stats.dropped_unknown_sa += 1;
            debug!(peer = %remote, "dropped an Informational message for unknown cookies");
            return;
        };
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let est = match &sa.phase1 {
            Phase1::Established(est) => est,
            Phase1::Negotiating(_) => {
                self.on_refusal_of_mm5(now, id, remote, hdr, datagram);
                return;
            }
        };
        if sa.core.seen_informational.contains(&hdr.message_id) {
            self.stats.dropped_unexpected += 1;
            return;
        }
        let items = match informational::read_encrypted(est.as_ref().into(), hdr, datagram) {
            Ok(i) => i,
            Err(e) => {
                self.stats.dropped_bad_hash += 1;
                debug!(peer = %remote, "dropped an Informational message: {e}");
                return;
            }
        };
        if sa.core.seen_informational.len() >= SEEN_INFORMATIONAL {
            sa.core.seen_informational.pop_front();
        }
        sa.core.seen_informational.push_back(hdr.message_id);
        let peer_ip = sa.core.peer.ip();
        self.follow_peer(id, local, remote);
        // An ACK proves liveness only with a sequence number of ours (checked when it is applied).
        let alive = items.iter().any(|i| !matches!(i, InfoItem::RuThereAck(_)));
        for item in items {
            self.apply_informational(now, id, remote, item);
        }
        if alive {
            self.heard_from(now, peer_ip);
        }
        self.schedule(id);
    }

    /// An encrypted Informational message while our Main Mode waits for MM6: the peer may answer our MM5 with an
    /// error (strongSwan sends AUTHENTICATION-FAILED when it does not trust our certificate). Protected by the
    /// keys of this very exchange, it comes from the party we did the key exchange with, so it ends our Main
    /// Mode at once (and `certificate-then-psk` falls back) instead of after every retransmission of MM5.
    fn on_refusal_of_mm5(&mut self, now: Instant, id: SaId, remote: SocketAddr, hdr: &Header, datagram: &[u8]) {
        let Some(sa) = self.sas.get(&id) else {
            return;
        };
        let Phase1::Negotiating(mm) = &sa.phase1 else {
            return;
        };
        let Some(keys) = mm.informational_keys() else {
            self.stats.dropped_unexpected += 1;
            debug!(peer = %remote, "dropped an encrypted Informational message for a Main Mode in progress");
            return;
        };
        let items = match informational::read_encrypted(keys, hdr, datagram) {
            Ok(i) => i,
            Err(e) => {
                self.stats.dropped_bad_hash += 1;
                debug!(peer = %remote, "dropped an Informational message during Main Mode: {e}");
                return;
            }
        };
        let by_signature = mm.auth().is_some_and(|a| a != AuthMethod::Psk);
        let error = items.iter().find_map(|i| match i {
            InfoItem::Notify { kind, .. } if (1..=notify::MAX_ERROR).contains(kind) => Some(*kind),
            _ => None,
        });
        match error {
            Some(kind) => {
                let reason = if by_signature && kind == notify::AUTHENTICATION_FAILED {
                    "the peer sent AUTHENTICATION-FAILED after our certificate and signature: check that it trusts our \
                     CA, that our certificate is valid and names the identity we send, and the peer's log"
                        .to_string()
                } else {
                    informational::explain_peer_error(kind)
                };
                info!(peer = %remote, "notification during Main Mode: {reason}");
                let auth = matches!(
                    kind,
                    notify::AUTHENTICATION_FAILED
                        | notify::INVALID_CERTIFICATE
                        | notify::INVALID_CERT_AUTHORITY
                        | notify::CERTIFICATE_UNAVAILABLE
                        | notify::INVALID_SIGNATURE
                );
                self.fail_sa(now, id, Failure { reason, notify: None, auth });
            }
            None => debug!(peer = %remote, "ignored an Informational message without an error during Main Mode"),
        }
    }

    fn apply_informational(&mut self, now: Instant, id: SaId, remote: SocketAddr, item: InfoItem) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let peer_ip = sa.core.peer.ip();
        match item {
            InfoItem::DeleteIsakmp(i, r) if (i, r) == (sa.core.cky_i, sa.core.cky_r) => {
                self.remove_sa(now, id, "the peer deleted it")
            }
            InfoItem::DeleteIsakmp(..) => {
                self.stats.ignored_deletes += 1;
                debug!(peer = %remote, "ignored a DELETE for another ISAKMP SA")
            }
            InfoItem::DeleteEsp(spis) => {
                for spi_out in spis {
                    let found = self
                        .children
                        .iter()
                        .find(|(_, c)| c.info.spi_out == spi_out && c.info.peer.ip() == peer_ip)
                        .map(|(s, _)| *s);
                    match found {
                        Some(spi_in) => self.remove_child(spi_in, "the peer deleted it"),
                        None => {
                            self.stats.ignored_deletes += 1;
                            debug!(peer = %remote, "ignored a DELETE for unknown ESP SPI {spi_out:08x}")
                        }
                    }
                }
            }
            InfoItem::InitialContact => {
                let rescued = self.honour_initial_contact(now, id, peer_ip);
                let carrier = self.sas.get(&id).map(|sa| (sa.core.rule.clone(), sa.core.local, sa.core.peer));
                if let Some((name, local, peer)) = carrier {
                    let rule = self.policy.rule(&name).cloned();
                    for (request, selector) in rescued {
                        match &rule {
                            Some(rule) => self.carry(now, rule, local, peer, request, selector),
                            None => {
                                let why = format!("the peer restarted, and rule '{name}' is no longer configured");
                                failed(&mut self.events, Some(request), Some(name.clone()), peer, "quick mode", why);
                            }
                        }
                    }
                }
            }
            InfoItem::RuThere(seq) => {
                if let Phase1::Established(est) = &sa.phase1 {
                    let ack = dpd::notification(notify::R_U_THERE_ACK, sa.core.isakmp_spi(), seq);
                    let mut cx = ctx!(self, now);
                    let _ = sa.core.send_informational(&mut cx, est, &[(payload::NOTIFY, &ack)]);
                }
            }
            InfoItem::RuThereAck(seq) => {
                if sa.core.dpd.as_mut().is_some_and(|d| d.on_ack(now, seq)) {
                    self.stats.dpd_acks_received += 1;
                    debug!(peer = %remote, "R-U-THERE-ACK {seq:08x}: the peer is alive");
                    self.heard_from(now, peer_ip);
                } else {
                    debug!(peer = %remote, "ignored an R-U-THERE-ACK {seq:08x}: it answers no R-U-THERE of ours in flight");
                }
            }
            InfoItem::Notify { kind: notify::INVALID_SPI, protocol: protocol::ESP, spi } => {
                let spi_out = <[u8; 4]>::try_from(spi.as_slice()).ok().map(u32::from_be_bytes);
                let found = self
                    .children
                    .values()
                    .find(|c| Some(c.info.spi_out) == spi_out && c.info.peer.ip() == peer_ip)
                    .map(|c| c.info.spi_in);
                match (found, spi_out) {
                    (Some(spi_in), Some(out)) => {
                        self.stats.invalid_spi_honoured += 1;
                        let why = format!("the peer does not know its SPI {out:08x} (INVALID-SPI)");
                        self.delete_child_with_notice(now, spi_in, &why);
                    }
                    _ => {
                        debug!(peer = %remote, "ignored INVALID-SPI for an SPI we do not send on: {}", hex::encode(&spi))
                    }
                }
            }
            InfoItem::ResponderLifetime { protocol, spi, lowered } => {
                self.honour_responder_lifetime(now, id, protocol, &spi, lowered)
            }
            InfoItem::Notify { kind, protocol: proto, spi } => {
                let text = informational::explain_peer_error(kind);
                info!(peer = %remote, "notification: {text}");
                if (1..=notify::MAX_ERROR).contains(&kind) {
                    // An authenticated error ends the Quick Modes we started under this SA: the one whose SPI it
                    // names, or all of them when it names none.
                    let named = (proto == protocol::ESP)
                        .then(|| <[u8; 4]>::try_from(spi.as_slice()).ok().map(u32::from_be_bytes))
                        .flatten();
                    let ended: Vec<u32> = sa
                        .quick_modes
                        .iter()
                        .filter(|(_, q)| q.is_waiting_for_reply() && named.is_none_or(|s| s == q.spi_in))
                        .map(|(m, _)| *m)
                        .collect();
                    let ended_any = !ended.is_empty();
                    for mid in ended {
                        if let Some(q) = sa.quick_modes.remove(&mid) {
                            self.reserved_spis.remove(&q.spi_in);
                            warn!(peer = %sa.core.peer, rule = %sa.core.rule, "Quick Mode failed: {text}");
                            fail_all(&mut self.events, &q.requests, &sa.core.rule, sa.core.peer, "quick mode", &text);
                        }
                    }
                    if ended_any && sa.core.test {
                        self.delete_sa_with_notice(now, id, TEST_OVER);
                    }
                }
            }
        }
    }

    /// Cleartext notifications are unauthenticated: they are logged, and believed only as the reason why our own
    /// Main Mode in progress with that peer fails (so that `hostsec initiate` can say why at once).
    fn on_plain_informational(&mut self, now: Instant, remote: SocketAddr, hdr: &Header, datagram: &[u8]) {
        let types = match informational::read_plain(hdr, datagram) {
            Ok(t) => t,
            Err(e) => {
                self.stats.dropped_malformed += 1;
                debug!(peer = %remote, "dropped a malformed Informational message: {e}");
                return;
            }
        };
        let target = self.by_cookie.get(&hdr.initiator_cookie).copied().filter(|id| {
            self.sas.get(id).is_some_and(|sa| {
                sa.core.role == Role::Initiator && sa.core.peer.ip() == remote.ip() && sa.established().is_none()
            })
        });
        for t in types {
            let text = informational::explain_peer_error(t);
            info!(peer = %remote, "cleartext notification: {text}");
            if let (Some(id), true) = (target, (1..=notify::MAX_ERROR).contains(&t)) {
                self.fail_sa(now, id, Failure { reason: text, notify: None, auth: false });
                return;
            }
        }
    }

    /// Starts negotiating under `rule` with `peer` (the rule's single remote host when `None`), from `local`
    /// (the address and port the daemon's IKE socket uses towards the peer). The outcome comes as
    /// [`Event::RequestDone`] or [`Event::NegotiationFailed`] carrying the returned id. A rule with a protocol
    /// negotiates an SA for that protocol (and for its port, when it lists a single one per side).
    pub fn initiate(
        &mut self,
        now: Instant,
        rule_name: &str,
        peer: Option<IpAddr>,
        local: SocketAddr,
    ) -> Result<RequestId, InitiateError> {
        let (rule, peer_ip) = self.check_initiate(rule_name, peer)?;
        let selector = initiator_selector(&rule, None);
        Ok(self.request_child(now, &rule, peer_ip, local, selector, None))
    }

    /// Starts negotiating under `rule` for a packet that needs protection (on-demand): the SA is for the
    /// packet's protocol and, where the rule lists several ports, for the packet's port. `flow` is the packet's,
    /// from this host's side (`flow.remote` is the peer). Outcome as for [`Endpoint::initiate`].
    pub fn acquire(
        &mut self,
        now: Instant,
        rule_name: &str,
        flow: &Flow,
        local: SocketAddr,
    ) -> Result<RequestId, InitiateError> {
        let (rule, peer_ip) = self.check_initiate(rule_name, Some(flow.remote))?;
        let selector = initiator_selector(&rule, Some(flow));
        Ok(self.request_child(now, &rule, peer_ip, local, selector, Some(flow)))
    }

    /// Negotiates a fresh Main Mode and Quick Mode with `peer` under `rule` (the administrator's "rule test"),
    /// beside the SAs in use: no existing Main Mode SA is reused, no INITIAL-CONTACT is sent (it would make the
    /// peer drop the SAs in use), and the SAs it makes never carry traffic: once the Quick Mode is up they are
    /// deleted (the peer told with DELETE). The outcome comes as for [`Endpoint::initiate`], as a verdict in
    /// words: [`Event::RequestDone`]'s `verdict` names the algorithms and the authentication; the `reason` of
    /// [`Event::NegotiationFailed`] starts with "refused: " (the peer's notification or our own reason) or is
    /// "no answer from P after N retransmissions …".
    pub fn test_rule(
        &mut self,
        now: Instant,
        rule_name: &str,
        peer: Option<IpAddr>,
        local: SocketAddr,
    ) -> Result<RequestId, InitiateError> {
        let (rule, peer_ip) = self.check_initiate(rule_name, peer)?;
        let selector = initiator_selector(&rule, None);
        let request = self.next_request();
        self.tests.insert(request);
        info!(peer = %peer_ip, rule = %rule.name, "rule test: negotiating a fresh Main Mode and Quick Mode");
        self.start_main_mode(now, &rule, local, SocketAddr::new(peer_ip, IKE_PORT), (request, selector), true);
        Ok(request)
    }

    /// The rule and peer of an `initiate`, `acquire` or `test_rule`, checked.
    fn check_initiate(&self, rule_name: &str, peer: Option<IpAddr>) -> Result<(Rule, IpAddr), InitiateError> {
        let rule =
            self.policy.rule(rule_name).cloned().ok_or_else(|| InitiateError::UnknownRule(rule_name.to_string()))?;
        if !rule.enabled || !rule.action.negotiates() {
            let why = if rule.enabled {
                format!("its action is {}", rule.action.name())
            } else {
                "it is disabled".to_string()
            };
            return Err(InitiateError::DoesNotNegotiate { rule: rule.name, why });
        }
        let peer_ip = match peer {
            Some(p) => p,
            None => rule.remote.single_host().ok_or_else(|| InitiateError::NoPeer(rule.name.clone()))?,
        };
        if !rule.remote.contains(peer_ip) {
            return Err(InitiateError::PeerNotCovered { rule: rule.name, peer: peer_ip });
        }
        Ok((rule, peer_ip))
    }

    fn next_request(&mut self) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        request
    }

    /// A request for an SA pair of `rule` with `peer_ip` for `selector`: answered at once by an existing pair
    /// for the same traffic (one that covers `flow`, for a packet), else carried by the Main Mode SA with the
    /// peer.
    fn request_child(
        &mut self,
        now: Instant,
        rule: &Rule,
        peer_ip: IpAddr,
        local: SocketAddr,
        selector: Selector,
        flow: Option<&Flow>,
    ) -> RequestId {
        let request = self.next_request();
        let same_traffic = |c: &&Child| match flow {
            Some(f) => c.info.selector.covers_flow(f),
            None => c.info.selector == selector,
        };
        if let Some(c) = self
            .children
            .values()
            .filter(|c| c.info.rule == rule.name && c.info.peer.ip() == peer_ip)
            .find(same_traffic)
        {
            let verdict =
                format!("already established with {peer_ip} under rule '{}' ({})", rule.name, c.info.selector);
            self.events.push_back(Event::RequestDone { request, info: c.info.clone(), verdict });
            return request;
        }
        self.carry(now, rule, local, SocketAddr::new(peer_ip, IKE_PORT), request, selector);
        request
    }

    /// Gets a Quick Mode for `selector` going under the Main Mode SA of `rule` with `peer`: joins one that runs
    /// for the same traffic, starts one under an established SA, waits for one in negotiation, or starts a Main
    /// Mode. `rule test` SAs are never used.
    fn carry(
        &mut self,
        now: Instant,
        rule: &Rule,
        local: SocketAddr,
        peer: SocketAddr,
        request: RequestId,
        selector: Selector,
    ) {
        self.carry_or_hold(now, rule, local, peer, (request, selector), true);
    }

    /// [`Endpoint::carry`]; `wait_for_peer` lets the request wait for a Main Mode the peer is negotiating
    /// (false for requests that already waited for one: a forged MM1 must not hold them again).
    fn carry_or_hold(
        &mut self,
        now: Instant,
        rule: &Rule,
        local: SocketAddr,
        peer: SocketAddr,
        (request, selector): (RequestId, Selector),
        wait_for_peer: bool,
    ) {
        if authip::rule_method(rule).is_some() && !self.ikev1_up(rule, peer) {
            return self.carry_authip(now, rule, local, peer, request, selector);
        }
        // The newest established SA: after the peer's reauthentication the older ones are on their way out.
        let carrier = self
            .sas
            .iter()
            .filter(|(id, sa)| {
                !sa.core.test && !self.retiring(**id) && sa.core.rule == rule.name && sa.core.peer.ip() == peer.ip()
            })
            .max_by_key(|(_, sa)| (sa.established().is_some(), sa.core.up))
            .map(|(id, sa)| (*id, sa.established().is_some()));
        match carrier {
            Some((id, true)) => {
                // The peer's Quick Mode for the same traffic, answered and waiting for its QM3, serves as well:
                // the peer may send on the pair before we read QM3, and our reply must not start a second one.
                let running = self.sas.get_mut(&id).and_then(|sa| {
                    sa.quick_modes
                        .values_mut()
                        .find(|q| (q.is_waiting_for_reply() || q.is_waiting_for_commit()) && q.selector == selector)
                });
                match running {
                    Some(qm) => qm.requests.push(request),
                    None => match self.quick_mode_hold(now, id, wait_for_peer) {
                        Some(until) => self.hold(now, id, until, request, selector),
                        None => self.start_quick_mode(now, id, selector, vec![request]),
                    },
                }
            }
            Some((id, false)) => {
                if let Some(sa) = self.sas.get_mut(&id) {
                    sa.core.waiting.push((request, selector));
                }
            }
            None => self.start_main_mode(now, rule, local, peer, (request, selector), false),
        }
    }

    /// Negotiates a successor of a Quick Mode SA pair (named by our inbound SPI, or by our outbound SPI when
    /// `inbound` is false) before it expires: a new Quick Mode for the same traffic under an established Main
    /// Mode SA with the same peer and rule, or a new Main Mode first if there is none. The old pair stays until its
    /// own expiry or a DELETE (make-before-break); the ESP layer switches its outbound traffic to the new pair when
    /// it comes up. One rekey per pair at a time: while one runs (started here by the datapath's byte limit, or by
    /// the engine's soft deadline) this returns its request instead of starting another. `None` for an unknown
    /// pair, or one that already has a successor.
    pub fn rekey(&mut self, now: Instant, spi: u32, inbound: bool) -> Option<RequestId> {
        if let Some(spi_in) = self.authip_spi_in(now, spi, inbound) {
            let request = self.next_request();
            return self.authip.rekey(now, &mut *self.rng, spi_in, request);
        }
        let child =
            self.children.values().find(|c| if inbound { c.info.spi_in == spi } else { c.info.spi_out == spi })?;
        // The datapath's byte limit and the engine's soft deadline may both ask: one rekey per pair at a time.
        if let Some(running) = self.rekey_running(child.info.spi_in) {
            return Some(running);
        }
        // A pair with a successor is not renewed (its inbound SA may cross a byte limit while the peer still
        // sends on it): a second successor would only be a duplicate.
        if child.life.superseded {
            debug!(peer = %child.info.peer, "Quick Mode SA {:08x} already has a successor: not rekeyed", child.info.spi_in);
            return None;
        }
        let (rule_name, local, peer, selector) =
            (child.info.rule.clone(), child.info.local, child.info.peer, child.info.selector);
        let rule = self.policy.rule(&rule_name).cloned()?;
        info!(peer = %peer, rule = %rule_name, "rekeying Quick Mode SA (SPIs {:08x}/{:08x}, {selector})", child.info.spi_in, child.info.spi_out);
        let old = child.info.spi_in;
        let request = self.next_request();
        let children = &self.children;
        self.rekeying.retain(|_, spi| children.contains_key(spi));
        self.rekeying.insert(request, old);
        self.carry(now, &rule, local, peer, request, selector);
        Some(request)
    }

    fn start_main_mode(
        &mut self,
        now: Instant,
        rule: &Rule,
        local: SocketAddr,
        peer: SocketAddr,
        (request, selector): (RequestId, Selector),
        test: bool,
    ) {
        self.start_main_mode_with(now, rule, local, peer, vec![(request, selector)], test, false, false);
    }

    /// Starts Main Mode for `waiting` requests; `psk_only` for the fallback of a `certificate-then-psk` rule;
    /// `mamie` when an AuthIP #1 goes to the peer beside it. Returns the CKY-I, once MM1 is sent.
    #[allow(clippy::too_many_arguments)]
    fn start_main_mode_with(
        &mut self,
        now: Instant,
        rule: &Rule,
        local: SocketAddr,
        peer: SocketAddr,
        waiting: Vec<(RequestId, Selector)>,
        test: bool,
        psk_only: bool,
        mamie: bool,
    ) -> Option<[u8; 8]> {
        let id = self.next_sa;
        self.next_sa += 1;
        let cky_i = self.fresh_cookie();
        let mut core = SaCore::new(&rule.name, Role::Initiator, local, peer, cky_i, [0; 8]);
        core.started = Some(now);
        let requests: Vec<RequestId> = waiting.iter().map(|(r, _)| *r).collect();
        core.waiting = waiting;
        core.test = test;
        core.psk_only = psk_only;
        core.mamie = mamie;
        if rule.keying == crate::policy::Keying::AuthIp && rule.authentication == Authentication::Psk {
            info!(peer = %peer, rule = %rule.name, "rule '{}' has keying = \"authip\" with a pre-shared key, which AuthIP has no method for: negotiating IKEv1", rule.name);
        }
        core.send_initial_contact = !test && self.first_contact(peer.ip());
        let result = {
            let mut cx = ctx!(self, now);
            MainMode::start(&mut cx, &mut core, rule)
        };
        match result {
            Ok(mm) => {
                info!(
                    peer = %peer,
                    rule = %rule.name,
                    "initiating Main Mode{}{}",
                    if psk_only { " with the pre-shared key only" } else { "" },
                    if test { " (rule test)" } else { "" }
                );
                self.by_cookie.insert(cky_i, id);
                self.sas.insert(
                    id,
                    IkeSa { core, phase1: Phase1::Negotiating(Box::new(mm)), quick_modes: BTreeMap::new() },
                );
                self.schedule(id);
                Some(cky_i)
            }
            Err(f) => {
                warn!(peer = %peer, rule = %rule.name, "Main Mode could not start: {}", f.reason);
                fail_all(&mut self.events, &requests, &rule.name, peer, "main mode", &f.reason);
                None
            }
        }
    }

    /// Deletes every SA of `rule` (or, with `peer`, only those with that peer), telling the peer with DELETE
    /// notifications; `reason` goes to the log and the events. Returns how many SAs (Main Mode and Quick Mode)
    /// were deleted.
    pub fn terminate(&mut self, now: Instant, rule: Option<&str>, peer: Option<IpAddr>, reason: &str) -> usize {
        let authip = self.authip.terminate(now, &mut *self.rng, rule, peer, reason);
        authip + self.terminate_ikev1(now, rule, peer, reason)
    }

    fn terminate_ikev1(&mut self, now: Instant, rule: Option<&str>, peer: Option<IpAddr>, reason: &str) -> usize {
        let matches = |r: &str, p: IpAddr| rule.is_none_or(|x| x == r) && peer.is_none_or(|x| x == p);
        let kids: Vec<u32> =
            self.children.values().filter(|c| matches(&c.info.rule, c.info.peer.ip())).map(|c| c.info.spi_in).collect();
        let sas: Vec<SaId> =
            self.sas.iter().filter(|(_, sa)| matches(&sa.core.rule, sa.core.peer.ip())).map(|(id, _)| *id).collect();
        let count = kids.len() + sas.len();
        for spi in kids {
            self.delete_child_with_notice(now, spi, reason);
        }
        for id in sas {
            self.delete_sa_with_notice(now, id, reason);
        }
        count
    }

    /// Deletes an ESP SA pair, telling the peer under an established ISAKMP SA with it (if one is left).
    fn delete_child_with_notice(&mut self, now: Instant, spi_in: u32, reason: &str) {
        let Some(c) = self.children.get(&spi_in) else {
            return;
        };
        let peer_ip = c.info.peer.ip();
        let carrier =
            self.sas.values().filter(|sa| sa.core.peer.ip() == peer_ip).rev().find(|sa| sa.established().is_some());
        if let Some(sa) = carrier {
            if let Phase1::Established(est) = &sa.phase1 {
                let d = informational::delete_esp(&[spi_in]);
                let mut cx = ctx!(self, now);
                let _ = sa.core.send_informational(&mut cx, est, &[(payload::DELETE, &d)]);
            }
        }
        self.remove_child(spi_in, reason);
    }

    fn delete_sa_with_notice(&mut self, now: Instant, id: SaId, reason: &str) {
        if let Some(sa) = self.sas.get(&id) {
            if let Phase1::Established(est) = &sa.phase1 {
                let d = informational::delete_isakmp(sa.core.cky_i, sa.core.cky_r);
                let mut cx = ctx!(self, now);
                let _ = sa.core.send_informational(&mut cx, est, &[(payload::DELETE, &d)]);
            }
        }
        self.remove_sa(now, id, reason);
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.authip.poll_timeout().is_some_and(|t| t <= now) {
            self.authip.handle_timeout(now, &mut *self.rng);
            self.settle_races(now);
        }
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Sa(id) => {
                    let due = self
                        .sas
                        .get_mut(&id)
                        .filter(|sa| sa.core.scheduled == Some(t))
                        .map(|sa| sa.core.scheduled = None)
                        .is_some();
                    if due {
                        self.sa_timers(now, id);
                        self.release_if_due(now, id);
                        self.schedule(id);
                    }
                }
                TimerKey::Child(spi) => {
                    if self.children.get(&spi).is_some_and(|c| c.expires <= now) {
                        if self.postpone_retirement(now, spi) {
                            continue;
                        }
                        let renewed = self.children.get(&spi).is_some_and(|c| c.life.retire.is_some());
                        let why = if renewed { REKEYED } else { "its lifetime expired" };
                        self.delete_child_with_notice(now, spi, why);
                    } else {
                        self.child_soft_deadline(now, spi);
                    }
                }
                TimerKey::Refusals => {
                    if self.refusals_scheduled == Some(t) {
                        self.refusal_summaries(now);
                    }
                }
                TimerKey::MainModeSoft(id) => self.main_mode_soft_deadline(now, id),
            }
        }
    }

    fn sa_timers(&mut self, now: Instant, id: SaId) {
        let tries = self.timing.retransmit_tries;
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        // Main Mode request retransmission.
        if let Some(r) = sa.core.retransmit.as_mut().filter(|r| r.deadline <= now) {
            match r.on_deadline(now, tries) {
                Some(msg) => {
                    self.stats.retransmitted += 1;
                    self.stats.sent += 1;
                    debug!(peer = %sa.core.peer, "retransmitting a Main Mode request");
                    self.out.push_back(Transmit { local: sa.core.local, remote: sa.core.peer, payload: msg.to_vec() });
                }
                None => {
                    self.stats.timeouts += 1;
                    let state = sa.info(now).state;
                    let reason = format!(
                        "no answer from {} after {tries} retransmissions (state {state}): is it up, does it run IKEv1 on UDP 500, does a firewall drop it?",
                        sa.core.peer.ip()
                    );
                    self.fail_sa(now, id, Failure { reason, notify: None, auth: false });
                    return;
                }
            }
        }
        // An incomplete reassembly of the peer's fragments given up.
        if let Some(r) = sa.core.reassembly.take_if(|r| r.deadline <= now) {
            self.stats.dropped_fragments += r.held() as u64;
            info!(peer = %sa.core.peer, "dropped {} IKE fragment(s) of message {}: the rest did not come in time", r.held(), r.id);
        }
        // A half-open responder SA given up, or a stored reply no longer needed.
        if sa.core.idle_deadline.is_some_and(|d| d <= now) {
            sa.core.idle_deadline = None;
            sa.core.reply = None;
            if sa.established().is_none() {
                self.stats.timeouts += 1;
                let state = sa.info(now).state;
                let reason = format!("the peer stopped answering during Main Mode (state {state})");
                if sa.core.role == Role::Responder
                    && matches!(&sa.phase1, Phase1::Negotiating(mm) if mm.is_first_reply_sent())
                {
                    // Never answered beyond MM1: most likely a forged first message, of which a flood leaves
                    // thousands; counted and summarised rather than logged and reported one by one.
                    let peer = sa.core.peer;
                    self.forget_sa(id);
                    self.refuse(now, Refusal::HalfOpenExpired, peer, || {
                        format!(
                            "gave up a half-open Main Mode with {}: no MM3 came after our MM2 ({reason})",
                            peer.ip()
                        )
                    });
                } else {
                    if sa.core.role == Role::Responder {
                        self.stats.half_open_expired += 1;
                    }
                    self.fail_sa(now, id, Failure { reason, notify: None, auth: false });
                }
                return;
            }
        }
        if sa.established().is_some_and(|e| e.expires <= now) {
            self.delete_sa_with_notice(now, id, "its lifetime expired");
            return;
        }
        // This host is behind NAT: a keepalive keeps its mapping for the peer's packets (RFC 3948 §2.3).
        if sa.core.keepalive_at.is_some_and(|d| d <= now) {
            sa.core.keepalive_at = Some(now + self.timing.nat_keepalive);
            self.stats.nat_keepalives_sent += 1;
            self.keepalives.push_back(Transmit {
                local: sa.core.local,
                remote: sa.core.peer,
                payload: vec![NAT_KEEPALIVE],
            });
        }
        // Dead peer detection: probe a silent peer, or give it up.
        if sa.core.dpd.as_ref().and_then(Dpd::due).is_some_and(|d| d <= now) {
            let interval = self.policy.global.dpd_interval;
            let step = sa.core.dpd.as_mut().map(|d| d.on_due(now, interval, self.timing.dpd_probes));
            match (step, &sa.phase1) {
                (Some(DpdStep::Probe(seq)), Phase1::Established(est)) => {
                    let n = dpd::notification(notify::R_U_THERE, sa.core.isakmp_spi(), seq);
                    let mut cx = ctx!(self, now);
                    if sa.core.send_informational(&mut cx, est, &[(payload::NOTIFY, &n)]).is_ok() {
                        self.stats.dpd_requests_sent += 1;
                        debug!(peer = %sa.core.peer, "R-U-THERE {seq:08x}: nothing heard from the peer for {}s", interval.as_secs());
                    }
                }
                (Some(DpdStep::Dead { probes, silent_for }), _) => {
                    self.peer_dead(now, id, probes, silent_for);
                    return;
                }
                _ => {}
            }
        }
        // Quick Modes: retransmissions, give-ups, and finished ones forgotten.
        let mut test_failed = false;
        let due: Vec<u32> = sa
            .quick_modes
            .iter()
            .filter(|(_, q)| q.next_deadline().is_some_and(|d| d <= now))
            .map(|(m, _)| *m)
            .collect();
        for mid in due {
            let Some(qm) = sa.quick_modes.get_mut(&mid) else {
                continue;
            };
            if let Some(r) = qm.retransmit.as_mut().filter(|r| r.deadline <= now) {
                match r.on_deadline(now, tries) {
                    Some(msg) => {
                        self.stats.retransmitted += 1;
                        self.stats.sent += 1;
                        self.out.push_back(Transmit {
                            local: sa.core.local,
                            remote: sa.core.peer,
                            payload: msg.to_vec(),
                        });
                    }
                    None => {
                        self.stats.timeouts += 1;
                        let (requests, spi) = (std::mem::take(&mut qm.requests), qm.spi_in);
                        sa.quick_modes.remove(&mid);
                        self.reserved_spis.remove(&spi);
                        let reason = format!(
                            "no answer from {} after {tries} retransmissions: the peer did not complete the Quick Mode",
                            sa.core.peer.ip()
                        );
                        warn!(peer = %sa.core.peer, rule = %sa.core.rule, "Quick Mode failed: {reason}");
                        fail_all(&mut self.events, &requests, &sa.core.rule, sa.core.peer, "quick mode", &reason);
                        test_failed |= sa.core.test;
                        continue;
                    }
                }
            }
            if qm.forget_at.is_some_and(|d| d <= now) {
                sa.quick_modes.remove(&mid);
                sa.core.retire_quick_mode(mid, RETIRED_QUICK_MODES);
            }
        }
        if test_failed {
            self.delete_sa_with_notice(now, id, TEST_OVER);
        }
    }

    /// Whether this host holds no SA with `peer` and has not talked to it since it started (or since it found it
    /// dead): a Main Mode then carries INITIAL-CONTACT, in MM5 as initiator or MM6 as responder, so that the peer
    /// drops whatever it still holds from our previous life (RFC 2407 §4.6.3.3).
    fn first_contact(&self, peer: IpAddr) -> bool {
        !self.contacted.contains(&peer) && !self.sas.values().any(|s| s.core.peer.ip() == peer)
    }

    /// The ESP layer received packets on inbound SA `spi_in` since it last said so: the peer is alive, and dead
    /// peer detection leaves it alone for another `dpd_interval`; the peer has the pair, which a retiring
    /// predecessor or a collision's loser waits for. The daemon reports each SA pair whose inbound packet counter
    /// moved, once per wake-up of its loop, not per packet.
    pub fn esp_received(&mut self, now: Instant, spi_in: u32) {
        if let Some(c) = self.children.get_mut(&spi_in) {
            c.life.peer_sent = true;
            c.life.peer_sent_at = Some(now);
            let peer = c.info.peer.ip();
            self.heard_from(now, peer);
        }
    }

    /// The ESP layer dropped a packet from `peer` for SPI `spi`, which no inbound SA has (the daemon reports at most
    /// a few per second). When an established Main Mode SA with the peer exists, the peer is told with an
    /// INVALID-SPI notification protected under it (RFC 2408 §3.14.1), so that it drops the SA it sends on and
    /// re-keys instead of sending into the void until the SA expires; at most one per second per peer. Without
    /// such an SA nothing is sent: an unprotected notification would answer anyone who sends junk. An SPI this
    /// engine knows or negotiates is not reported: its packets raced ahead of the SA's installation. Returns
    /// whether a notification was sent.
    pub fn esp_unknown_spi(&mut self, now: Instant, peer: IpAddr, spi: u32) -> bool {
        if self.children.contains_key(&spi) || self.reserved_spis.contains(&spi) {
            return false;
        }
        if self.invalid_spi_sent.get(&peer).is_some_and(|t| now.saturating_duration_since(*t) < INVALID_SPI_EVERY) {
            return false;
        }
        let Some(sa) = self
            .sas
            .values()
            .filter(|sa| sa.core.peer.ip() == peer && !sa.core.test)
            .rev()
            .find(|sa| sa.established().is_some())
        else {
            return false;
        };
        if self.invalid_spi_sent.len() >= INVALID_SPI_PEERS {
            self.invalid_spi_sent.retain(|_, t| now.saturating_duration_since(*t) < INVALID_SPI_EVERY);
            if self.invalid_spi_sent.len() >= INVALID_SPI_PEERS {
                return false;
            }
        }
        let Phase1::Established(est) = &sa.phase1 else {
            return false;
        };
        let n = NotifyRepr {
            doi: DOI_IPSEC,
            protocol_id: protocol::ESP,
            notify_type: notify::INVALID_SPI,
            spi: spi.to_be_bytes().to_vec(),
            data: Vec::new(),
        };
        let sent = {
            let mut cx = ctx!(self, now);
            sa.core.send_informational(&mut cx, est, &[(payload::NOTIFY, &n)]).is_ok()
        };
        if sent {
            self.invalid_spi_sent.insert(peer, now);
            self.stats.invalid_spi_sent += 1;
            info!(peer = %peer, "ESP for unknown SPI {spi:08x}: told the peer (INVALID-SPI)");
        }
        sent
    }

    /// Something authenticated came from `peer`: every SA with it counts that as liveness.
    fn heard_from(&mut self, now: Instant, peer: IpAddr) {
        for sa in self.sas.values_mut().filter(|sa| sa.core.peer.ip() == peer) {
            if let Some(d) = sa.core.dpd.as_mut() {
                d.heard(now);
            }
        }
    }

    /// Puts a new `dpd_interval` (a reload) in force on every SA that runs DPD.
    fn rearm_dpd(&mut self, now: Instant) {
        let interval = self.policy.global.dpd_interval;
        let ids: Vec<SaId> = self.sas.iter().filter(|(_, sa)| sa.core.dpd.is_some()).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(d) = self.sas.get_mut(&id).and_then(|sa| sa.core.dpd.as_mut()) {
                d.rearm(now, interval);
            }
            self.schedule(id);
        }
    }

    /// Dead peer detection on SA `id` got no answer: every SA with its peer goes, without DELETE (nobody would
    /// read it), and the next Main Mode with the peer carries INITIAL-CONTACT again, in case the peer lives on
    /// with SAs of ours that it could not tell us about (it restarted, or the path was cut).
    fn peer_dead(&mut self, now: Instant, id: SaId, probes: u32, silent_for: std::time::Duration) {
        let Some(sa) = self.sas.get(&id) else {
            return;
        };
        let (peer, rule) = (sa.core.peer, sa.core.rule.clone());
        let reason = format!(
            "dead peer: {} answered none of {probes} R-U-THERE (nothing heard from it for {}s)",
            peer.ip(),
            silent_for.as_secs()
        );
        self.stats.dpd_peers_dead += 1;
        warn!(peer = %peer, rule = %rule, "{reason}: deleting its SAs");
        let kids: Vec<u32> =
            self.children.iter().filter(|(_, c)| c.info.peer.ip() == peer.ip()).map(|(s, _)| *s).collect();
        for spi in kids {
            self.remove_child(spi, &reason);
        }
        let sas: Vec<SaId> =
            self.sas.iter().filter(|(_, sa)| sa.core.peer.ip() == peer.ip()).map(|(i, _)| *i).collect();
        for sa in sas {
            self.remove_sa(now, sa, &reason);
        }
        self.contacted.remove(&peer.ip());
        self.events.push_back(Event::PeerDead { peer, rule, reason });
    }

    fn schedule(&mut self, id: SaId) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let next = sa.next_deadline();
        if next != sa.core.scheduled {
            sa.core.scheduled = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, TimerKey::Sa(id))));
                self.compact_timers();
            }
        }
    }

    /// Drops stale entries from the timer queue when they outnumber the live ones. An entry goes stale when its
    /// SA is removed or rescheduled; it would otherwise stay until its time came, which for an established SA
    /// (its expiry, hours away) rescheduled by every Quick Mode, or for the SAs of a flood, grows without bound.
    /// Few live entries exist per SA (its own and its renewal check) and per Quick Mode pair (expiry, soft
    /// deadline, retirement check), and one for the refusal summary, so rebuilding when the queue is twice that
    /// keeps it linear in live state at an amortised constant cost per push.
    fn compact_timers(&mut self) {
        let live = 2 * self.sas.len() + 3 * self.children.len() + 1;
        if self.timers.len() <= 2 * live + 64 {
            return;
        }
        let (sas, children, refusals) = (&self.sas, &self.children, self.refusals_scheduled);
        let entries = std::mem::take(&mut self.timers).into_vec();
        self.timers = entries
            .into_iter()
            .filter(|Reverse((t, key))| match key {
                TimerKey::Sa(id) => sas.get(id).is_some_and(|sa| sa.core.scheduled == Some(*t)),
                // A pair's timers are its expiry, its soft deadline and the checks of a retirement: the handler
                // checks which is due, so an entry is live while its pair exists.
                TimerKey::Child(spi) => children.contains_key(spi),
                TimerKey::Refusals => refusals == Some(*t),
                // The handler checks the renewal state; an entry is live while its SA exists.
                TimerKey::MainModeSoft(id) => sas.contains_key(id),
            })
            .collect();
        self.timers.shrink_to(2 * self.timers.len() + 64);
    }

    fn fresh_cookie(&mut self) -> [u8; 8] {
        loop {
            let mut c = [0u8; 8];
            self.rng.fill_bytes(&mut c);
            if c != [0; 8] && !self.by_cookie.contains_key(&c) {
                return c;
            }
        }
    }

    fn fresh_spi(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill_bytes(&mut b);
            let spi = u32::from_be_bytes(b);
            // SPIs 1-255 are reserved by IANA (RFC 4303 §2.1).
            if spi > 255 && !self.reserved_spis.contains(&spi) && !self.children.contains_key(&spi) {
                return spi;
            }
        }
    }
}

/// Reports a failed negotiation to every request it served (or once, without a request, when it served none).
fn fail_all(
    events: &mut VecDeque<Event>,
    requests: &[RequestId],
    rule: &str,
    peer: SocketAddr,
    phase: &'static str,
    reason: &str,
) {
    if requests.is_empty() {
        failed(events, None, Some(rule.to_string()), peer, phase, reason.to_string());
    }
    for r in requests {
        failed(events, Some(*r), Some(rule.to_string()), peer, phase, reason.to_string());
    }
}

/// Reports a failed or refused negotiation.
fn failed(
    events: &mut VecDeque<Event>,
    request: Option<RequestId>,
    rule: Option<String>,
    peer: SocketAddr,
    phase: &'static str,
    reason: String,
) {
    events.push_back(Event::NegotiationFailed { request, rule, peer, phase, reason });
}
