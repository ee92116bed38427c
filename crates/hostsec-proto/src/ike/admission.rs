//! Admission control for new responder Main Modes: what keeps a flood of first messages (MM1) from forged
//! addresses from exhausting memory and CPU while established SAs keep working.
//!
//! IKEv1 has no stateless cookie exchange (IKEv2's COOKIE notify, RFC 7296 §2.6; Windows' DoS protection mode
//! of MS-IKEE §3.9 is its own extension), so a responder cannot make an initiator prove its address before it
//! keeps state. What it can do is bound that state and drop the excess without state and without an answer:
//! - at most `half_open_main_modes_per_peer` unauthenticated Main Modes per peer address (strongSwan's
//!   `block_threshold`, default 5), so one address cannot take the table;
//! - at most `half_open_main_modes` in total;
//! - a token bucket on new Main Modes (`new_main_modes_per_second`), which bounds the work a flood causes.
//!
//! A peer that authenticated since the endpoint started (it had an established Main Mode SA) passes the total
//! bound and the rate, and only its own per-peer bound applies: its Main Mode rekeys and restarts get through a
//! flood of forged addresses. Its address can be forged too, but that gains the attacker at most the per-peer
//! bound for each such peer, so the worst case stays `total + per_peer × authenticated peers`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::sa::SaId;
use crate::policy::Global;

/// How long refusals of one reason are only counted after one was logged in full, before a summary is logged.
pub(crate) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Unauthenticated notifications (answers to refused first messages) sent per second at most, and in a burst:
/// each answers a datagram whose source may be forged, so they are kept rare and never larger than the request.
const NOTIFY_RATE: u64 = 10;

/// Why a first message was refused or a half-open Main Mode given up; each has its counter in
/// [`super::Stats`] and its own rate-limited log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// No rule negotiates with the peer.
    NoRule,
    /// No acceptable proposal.
    NoProposal,
    /// An exchange type hostsec does not do.
    Exchange,
    /// The peer address has its share of half-open Main Modes.
    PeerHalfOpen,
    /// The table of half-open Main Modes is full.
    TotalHalfOpen,
    /// New Main Modes come faster than the rate allows.
    Rate,
    /// A half-open responder Main Mode timed out.
    HalfOpenExpired,
}

impl Refusal {
    const ALL: [Refusal; 7] = [
        Refusal::NoRule,
        Refusal::NoProposal,
        Refusal::Exchange,
        Refusal::PeerHalfOpen,
        Refusal::TotalHalfOpen,
        Refusal::Rate,
        Refusal::HalfOpenExpired,
    ];

    /// What the summary line says about refusals of this reason.
    pub fn summary(self) -> &'static str {
        match self {
            Refusal::NoRule => "Main Mode requests refused: no rule negotiates with the peer",
            Refusal::NoProposal => "Main Mode requests refused: no acceptable proposal",
            Refusal::Exchange => "messages of exchange types hostsec does not do refused",
            Refusal::PeerHalfOpen => {
                "Main Mode requests dropped: the peer address has its share of half-open Main Modes"
            }
            Refusal::TotalHalfOpen => "Main Mode requests dropped: the table of half-open Main Modes is full",
            Refusal::Rate => "Main Mode requests dropped: new Main Modes came faster than the rate limit",
            Refusal::HalfOpenExpired => "half-open responder Main Modes expired without the peer's next message",
        }
    }
}

/// The admission limits in force (from the policy's `[global]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub total: usize,
    pub per_peer: usize,
    pub rate: u64,
}

impl Limits {
    pub fn from_global(g: &Global) -> Self {
        Limits {
            total: g.half_open_main_modes as usize,
            per_peer: g.half_open_main_modes_per_peer as usize,
            rate: u64::from(g.new_main_modes_per_second),
        }
    }
}

/// A token bucket of `rate` tokens per second holding at most `rate` (one second's worth of burst). Integer
/// arithmetic in nanotokens, so that no rounding lets a flood through.
#[derive(Debug, Default)]
pub(crate) struct TokenBucket {
    /// Nanotokens (10⁹ per token).
    level: u128,
    last: Option<Instant>,
}

const NANO: u128 = 1_000_000_000;

impl TokenBucket {
    /// Takes a token if there is one at `now`. A clock that goes back refills nothing.
    pub fn take(&mut self, now: Instant, rate: u64) -> bool {
        let cap = u128::from(rate) * NANO;
        match self.last {
            None => self.level = cap,
            Some(last) if now > last => {
                let added = (now - last).as_nanos().saturating_mul(u128::from(rate));
                self.level = self.level.saturating_add(added).min(cap);
            }
            Some(_) => {}
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        self.level = self.level.min(cap);
        if self.level >= NANO {
            self.level -= NANO;
            true
        } else {
            false
        }
    }
}

/// The half-open responder Main Modes, by the peer's address and cookie (to answer a retransmitted MM1), by SA
/// and by peer address (for the per-peer bound).
#[derive(Debug, Default)]
pub(crate) struct HalfOpen {
    by_key: HashMap<(SocketAddr, [u8; 8]), SaId>,
    keys: HashMap<SaId, (SocketAddr, [u8; 8])>,
    per_ip: HashMap<IpAddr, usize>,
}

impl HalfOpen {
    /// The half-open SA that answered this MM1 (a retransmission).
    pub fn get(&self, remote: SocketAddr, cky_i: [u8; 8]) -> Option<SaId> {
        self.by_key.get(&(remote, cky_i)).copied()
    }

    pub fn insert(&mut self, remote: SocketAddr, cky_i: [u8; 8], id: SaId) {
        if let Some(old) = self.by_key.insert((remote, cky_i), id) {
            self.forget_key(old);
        }
        self.keys.insert(id, (remote, cky_i));
        *self.per_ip.entry(remote.ip()).or_default() += 1;
    }

    /// Forgets SA `id` (established, failed or removed); harmless for an SA that is not half-open.
    pub fn remove(&mut self, id: SaId) {
        if let Some(key) = self.forget_key(id) {
            self.by_key.remove(&key);
        }
    }

    fn forget_key(&mut self, id: SaId) -> Option<(SocketAddr, [u8; 8])> {
        let key = self.keys.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&key.0.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&key.0.ip());
            }
        }
        Some(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn of_ip(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Gives back the memory of the maps once a flood is over (they keep their peak capacity otherwise).
    pub fn shrink(&mut self) {
        if self.keys.is_empty() {
            self.by_key.shrink_to(16);
            self.keys.shrink_to(16);
            self.per_ip.shrink_to(16);
        }
    }
}

/// Admission control: the half-open table, the new-exchange bucket and the notification bucket.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pub half_open: HalfOpen,
    new_exchanges: TokenBucket,
    notifies: TokenBucket,
}

impl Admission {
    /// Whether a new responder Main Mode from `ip` may start at `now`; `known` for a peer that authenticated
    /// since the endpoint started. A token is taken only when the answer is yes.
    pub fn admit(&mut self, now: Instant, limits: Limits, ip: IpAddr, known: bool) -> Result<(), Refusal> {
        if self.half_open.of_ip(ip) >= limits.per_peer {
            return Err(Refusal::PeerHalfOpen);
        }
        if known {
            return Ok(());
        }
        if self.half_open.len() >= limits.total {
            return Err(Refusal::TotalHalfOpen);
        }
        if !self.new_exchanges.take(now, limits.rate) {
            return Err(Refusal::Rate);
        }
        Ok(())
    }

    /// Whether an unauthenticated notification may be sent now.
    pub fn may_notify(&mut self, now: Instant) -> bool {
        self.notifies.take(now, NOTIFY_RATE)
    }
}

/// Rate-limited reporting of refusals: the first of each reason is logged in full, the following ones within
/// [`REFUSAL_LOG_INTERVAL`] only counted, and a summary with their number logged at the end of the interval
/// (again every interval while they go on). A flood therefore writes a few lines every ten seconds.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    windows: HashMap<Refusal, (Instant, u64)>,
}

impl RefusalLog {
    /// Notes a refusal at `now`: `true` when it is to be logged in full (the first of its reason in a while).
    pub fn note(&mut self, now: Instant, why: Refusal) -> bool {
        match self.windows.get_mut(&why) {
            Some((_, quiet)) => {
                *quiet += 1;
                false
            }
            None => {
                self.windows.insert(why, (now, 0));
                true
            }
        }
    }

    /// The summaries due at `now` (reason and number of refusals counted without a log line). A reason whose
    /// interval passed without further refusals is logged in full again next time.
    pub fn due(&mut self, now: Instant) -> Vec<(Refusal, u64)> {
        let mut out = Vec::new();
        for why in Refusal::ALL {
            let Some((start, quiet)) = self.windows.get_mut(&why) else {
                continue;
            };
            if *start + REFUSAL_LOG_INTERVAL > now {
                continue;
            }
            if *quiet == 0 {
                self.windows.remove(&why);
            } else {
                out.push((why, *quiet));
                (*start, *quiet) = (now, 0);
            }
        }
        out
    }

    /// When the next summary (or window end) is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.windows.values().map(|(start, _)| *start + REFUSAL_LOG_INTERVAL).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_gives_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::default();
        let burst = (0..20).filter(|_| b.take(t0, 10)).count();
        assert_eq!(burst, 10);
        // 0.5 s later: 5 more; a clock going back adds none.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| b.take(t1, 10)).count(), 5);
        assert!(!b.take(t0, 10));
        // Long idle: refilled to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| b.take(t2, 10)).count(), 10);
    }

    #[test]
    fn admission_order_per_peer_then_known_then_total_then_rate() {
        let t = Instant::now();
        let limits = Limits { total: 3, per_peer: 2, rate: 1000 };
        let mut a = Admission::default();
        let ip = |n: u8| IpAddr::from([203, 0, 113, n]);
        let sock = |n: u8| SocketAddr::new(ip(n), 500);
        assert_eq!(a.admit(t, limits, ip(1), false), Ok(()));
        a.half_open.insert(sock(1), [1; 8], 1);
        a.half_open.insert(sock(1), [2; 8], 2);
        assert_eq!(a.admit(t, limits, ip(1), false), Err(Refusal::PeerHalfOpen));
        assert_eq!(a.admit(t, limits, ip(1), true), Err(Refusal::PeerHalfOpen));
        a.half_open.insert(sock(2), [3; 8], 3);
        assert_eq!(a.admit(t, limits, ip(3), false), Err(Refusal::TotalHalfOpen));
        assert_eq!(a.admit(t, limits, ip(3), true), Ok(()));
        a.half_open.remove(2);
        assert_eq!(a.half_open.of_ip(ip(1)), 1);
        assert_eq!(a.half_open.len(), 2);
        assert_eq!(a.half_open.get(sock(1), [2; 8]), None);
        let slow = Limits { total: 100, per_peer: 100, rate: 1 };
        let mut b = Admission::default();
        assert_eq!(b.admit(t, slow, ip(9), false), Ok(()));
        assert_eq!(b.admit(t, slow, ip(9), false), Err(Refusal::Rate));
        assert_eq!(b.admit(t, slow, ip(9), true), Ok(()));
    }

    #[test]
    fn refusal_log_logs_first_then_summaries() {
        let t = Instant::now();
        let mut l = RefusalLog::default();
        assert!(l.note(t, Refusal::Rate));
        assert!(!l.note(t, Refusal::Rate));
        assert!(!l.note(t, Refusal::Rate));
        assert!(l.note(t, Refusal::NoRule));
        assert_eq!(l.next_deadline(), Some(t + REFUSAL_LOG_INTERVAL));
        assert!(l.due(t + Duration::from_secs(1)).is_empty());
        let t1 = t + REFUSAL_LOG_INTERVAL;
        assert_eq!(l.due(t1), vec![(Refusal::Rate, 2)]);
        // Rate goes on quietly into a new window; NoRule's window closed and logs in full again.
        assert!(!l.note(t1, Refusal::Rate));
        assert!(l.note(t1, Refusal::NoRule));
        assert_eq!(l.due(t1 + REFUSAL_LOG_INTERVAL), vec![(Refusal::Rate, 1)]);
        assert!(l.due(t1 + 2 * REFUSAL_LOG_INTERVAL).is_empty());
        assert_eq!(l.next_deadline(), None);
    }
}
