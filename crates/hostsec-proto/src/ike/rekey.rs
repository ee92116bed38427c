//! When SAs are renewed before they expire (make-before-break), as the engine's own timers decide it.
//!
//! Each SA gets a soft deadline before its hard expiry, at which the engine negotiates its successor. The margin
//! depends on our role in the exchange that made the SA, and carries random jitter from the endpoint's RNG:
//!
//! - the side that *initiated* the SA renews it first, between [`INITIATOR_MARGIN`] and [`INITIATOR_MARGIN`] +
//!   [`JITTER`] of its lifetime before it expires (at 60 % to 70 % of the lifetime);
//! - the *responder* waits longer, [`RESPONDER_MARGIN`] to [`RESPONDER_MARGIN`] + [`JITTER`] before expiry (at 80 %
//!   to 90 %), and by then normally has the initiator's successor, which cancels its own rekey.
//!
//! The margins are wide because a renewal must finish, and the peer must have the new pair, before the old one
//! expires, whatever the loss: with the shortest Quick Mode lifetime (5 min) the initiator starts 90-120 s before
//! expiry, room for a Quick Mode whose messages are lost four times over (retransmissions after 2, 4, 8, 16 s) and
//! a responder that gets QM3 only from a retransmitted QM2. The gap between the two windows (10 % of the lifetime,
//! 30 s for 5 min) makes simultaneous rekeys (collisions) rare; it is the same idea as strongSwan's `margintime` with
//! `rekeyfuzz`, but with the roles kept apart, since two hostsec peers would otherwise draw from the same
//! window. A collision that happens anyway (the initiator's rekey delayed by loss, or both sides' traffic asking
//! for a pair at once) leaves two pairs that came up while each other's Quick Mode ran: both sides keep the same
//! one, chosen by the pairs' SPIs ([`duplicate_winner`]), and delete the other within seconds (make-before-break:
//! once the peer surely has the winner). An older pair the peer rekeyed ends with the peer's DELETE, or, should
//! that be lost, once the peer has sent on the successor and nothing on it for [`STALE_IDLE`].
//!
//! An idle SA is not renewed: a Quick Mode SA pair is rekeyed only when the daemon reported traffic on it
//! ([`crate::ike::Endpoint::child_used`]) within [`idle_window`] of the soft deadline, and a Main Mode SA only while
//! Quick Mode SA pairs with its peer exist. On-demand rules bring an expired pair back with the next packet.

use super::events::Role;
use rand_core::CryptoRngCore;
use std::time::{Duration, Instant};

/// Fraction of the lifetime left when the initiator of an SA starts its successor (before jitter).
pub(crate) const INITIATOR_MARGIN: f64 = 0.30;
/// Fraction of the lifetime left when the responder of an SA starts a successor itself (before jitter).
pub(crate) const RESPONDER_MARGIN: f64 = 0.10;
/// Random extra margin, as a fraction of the lifetime, drawn anew for each SA.
pub(crate) const JITTER: f64 = 0.10;
/// How often a Main Mode SA replaced by our own rekey is looked at until every Quick Mode under it is over and
/// forgotten (its stored answers no longer needed by the peer's retransmissions); then it is deleted.
pub(crate) const MM_RETIRE_CHECK: Duration = Duration::from_secs(5);
/// The longest a pair replaced by our own rekey waits for proof that the peer has its successor (the peer's first
/// packet on it) before it is deleted anyway. Without proof after the overlap, the peer may still lack the new
/// pair (our QM3 lost, its QM2 retransmissions under way): deleting the old one then would lose its traffic.
pub(crate) const RETIRE_CAP: Duration = Duration::from_secs(60);
/// How often a pair waiting for that proof is looked at again.
pub(crate) const RETIRE_CHECK: Duration = Duration::from_secs(2);
/// The shortest wait before looking again at an SA whose rekey could not start or did not finish.
const MIN_RECHECK: Duration = Duration::from_secs(5);

/// The soft deadline of an SA with `lifetime` made at `now` in `role`.
pub(crate) fn soft_deadline(now: Instant, lifetime: Duration, role: Role, rng: &mut dyn CryptoRngCore) -> Instant {
    let base = match role {
        Role::Initiator => INITIATOR_MARGIN,
        Role::Responder => RESPONDER_MARGIN,
    };
    let margin = base + JITTER * unit(rng);
    now + lifetime.mul_f64((1.0 - margin).clamp(0.0, 1.0))
}

/// A uniform number in [0, 1) from the RNG.
fn unit(rng: &mut dyn CryptoRngCore) -> f64 {
    (rng.next_u32() >> 8) as f64 / f64::from(1u32 << 24)
}

/// How recent traffic on a Quick Mode SA pair must be for its soft deadline to renew it: a fifth of its lifetime
/// (at least a minute, as the daemon reports usage from a periodic poll).
pub(crate) fn idle_window(lifetime: Duration) -> Duration {
    (lifetime / 5).max(Duration::from_secs(60))
}

/// When to look again at an SA past its soft deadline that is not renewed yet (its rekey failed, is still
/// running, or it was idle): halfway to its expiry, so that a retry still has time, but not in a busy loop.
pub(crate) fn recheck(now: Instant, expires: Instant) -> Option<Instant> {
    let left = expires.saturating_duration_since(now);
    (left > MIN_RECHECK * 2).then(|| now + (left / 2).max(MIN_RECHECK))
}

/// The renewal state of a Quick Mode SA pair.
#[derive(Debug, Clone)]
pub(crate) struct ChildLife {
    /// The lifetime it was negotiated with.
    pub lifetime: Duration,
    /// When the engine renews it, if it is used.
    pub soft: Instant,
    /// The last time the daemon reported traffic on it.
    pub used: Option<Instant>,
    /// A newer pair for the same traffic exists (ours or the peer's): this one is not renewed.
    pub superseded: bool,
    /// The peer sent on it: it has the pair.
    pub peer_sent: bool,
    /// The last time the daemon reported packets from the peer on it.
    pub peer_sent_at: Option<Instant>,
    /// When its Quick Mode began.
    pub started: Instant,
    /// When it came up.
    pub up: Instant,
    /// Its hard expiry as negotiated.
    pub hard: Instant,
    /// On its way out, for a successor: when and why it goes (see [`Retire`]).
    pub retire: Option<Retire>,
}

/// Why a Quick Mode SA pair retires, which decides when it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetireKind {
    /// Our own rekey replaced it: deleted after the overlap once the peer used the successor; at the cap, a
    /// successor the peer never used is taken for one it does not have (see `postpone_retirement`).
    Rekeyed,
    /// It lost a collision: two pairs for the same traffic came up at about the same time (both sides
    /// negotiated at once), and both sides keep the same one ([`duplicate_winner`]). Deleted at once when the
    /// peer surely has the winner (we answered its Quick Mode, or the peer sent on it), else at the cap.
    Duplicate,
    /// The peer's rekey replaced it and the peer normally deletes it: deleted by us only once the peer sends on
    /// the successor and has sent nothing on this pair for [`STALE_IDLE`] (its DELETE was lost).
    PeerRekeyed,
}

/// A pair's retirement ([`ChildLife::retire`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retire {
    /// The successor's inbound SPI.
    pub successor: u32,
    /// The latest time the retirement waits for proof that the peer has the successor.
    pub cap: Instant,
    /// Why it retires.
    pub kind: RetireKind,
}

/// Of duplicate pairs, given as (inbound SPI, outbound SPI), the one both sides keep: the pair's two SPIs are
/// the same set on both sides, whichever side made them, so the pair with the greatest smaller SPI (then
/// greater SPI) wins on both. Returns its index.
pub(crate) fn duplicate_winner(pairs: &[(u32, u32)]) -> Option<usize> {
    let key = |&(a, b): &(u32, u32)| (a.min(b), a.max(b));
    (0..pairs.len()).max_by_key(|&i| pairs.get(i).map(key))
}

/// How long a pair the peer rekeyed must have gone without packets from the peer, the peer sending on its
/// successor meanwhile, before we delete it ourselves: the peer's DELETE for it was lost.
pub(crate) const STALE_IDLE: Duration = Duration::from_secs(60);
/// How often such a pair is looked at.
pub(crate) const STALE_CHECK: Duration = Duration::from_secs(10);
/// How long a pair that lost a collision stays once the peer surely has the winner, for its packets in flight.
pub(crate) const DUPLICATE_OVERLAP: Duration = Duration::from_secs(2);

impl ChildLife {
    /// A new pair's renewal state.
    pub fn new(now: Instant, lifetime: Duration, role: Role, rng: &mut dyn CryptoRngCore) -> Self {
        ChildLife {
            lifetime,
            soft: soft_deadline(now, lifetime, role, rng),
            used: None,
            superseded: false,
            peer_sent: false,
            peer_sent_at: None,
            started: now,
            up: now,
            hard: now + lifetime,
            retire: None,
        }
    }

    /// Whether traffic used it recently enough at `now` to be worth renewing.
    pub fn recently_used(&self, now: Instant) -> bool {
        self.used.is_some_and(|u| u + idle_window(self.lifetime) >= now)
    }
}

/// The renewal state of a Main Mode SA.
#[derive(Debug, Clone, Default)]
pub(crate) struct MainModeLife {
    /// When the engine renews it (set once it is established).
    pub soft: Option<Instant>,
    /// The SA this one was negotiated to replace (our own Main Mode rekey).
    pub replaces: Option<u64>,
    /// A newer Main Mode SA with the peer under the same rule exists: this one is not renewed.
    pub superseded: bool,
    /// Replaced by our own rekey: deleted (the peer told) once every Quick Mode under it is over and forgotten.
    pub retiring: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn initiator_and_responder_windows_do_not_overlap() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let now = Instant::now();
        let life = Duration::from_secs(300);
        let (mut max_i, mut min_r) = (now, now + life);
        for _ in 0..2000 {
            let i = soft_deadline(now, life, Role::Initiator, &mut rng);
            let r = soft_deadline(now, life, Role::Responder, &mut rng);
            assert!(i >= now + Duration::from_secs(180) && i <= now + Duration::from_secs(210), "{:?}", i - now);
            assert!(r >= now + Duration::from_secs(240) && r <= now + Duration::from_secs(270), "{:?}", r - now);
            max_i = max_i.max(i);
            min_r = min_r.min(r);
        }
        assert!(max_i + Duration::from_secs(29) < min_r, "a gap between the windows");
    }

    #[test]
    fn jitter_spreads_deadlines() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let now = Instant::now();
        let mut seen: Vec<Instant> =
            (0..100).map(|_| soft_deadline(now, Duration::from_secs(3600), Role::Initiator, &mut rng)).collect();
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 90, "deadlines differ: {}", seen.len());
        let spread = *seen.last().unwrap() - *seen.first().unwrap();
        assert!(spread > Duration::from_secs(250), "spread over most of the 360 s window: {spread:?}");
    }

    #[test]
    fn recently_used_follows_the_idle_window() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let now = Instant::now();
        let mut l = ChildLife::new(now, Duration::from_secs(600), Role::Initiator, &mut rng);
        assert!(!l.recently_used(now), "never used");
        l.used = Some(now);
        assert!(l.recently_used(now + Duration::from_secs(120)));
        assert!(!l.recently_used(now + Duration::from_secs(121)));
    }

    #[test]
    fn recheck_stops_near_expiry() {
        let now = Instant::now();
        assert_eq!(recheck(now, now + Duration::from_secs(9)), None);
        assert_eq!(recheck(now, now + Duration::from_secs(60)), Some(now + Duration::from_secs(30)));
        assert_eq!(recheck(now, now + Duration::from_secs(11)), Some(now + Duration::from_millis(5500)));
    }

    #[test]
    fn both_sides_pick_the_same_duplicate() {
        let ours = [(0x1000_0000, 0x9000_0000), (0x2000_0000, 0x0500_0000), (0x0800_0000, 0x7000_0000)];
        let theirs: Vec<(u32, u32)> = ours.iter().rev().map(|&(i, o)| (o, i)).collect();
        let w = duplicate_winner(&ours).expect("a winner");
        let v = duplicate_winner(&theirs).expect("a winner");
        assert_eq!(ours[w], (0x1000_0000, 0x9000_0000));
        assert_eq!(theirs[v], (0x9000_0000, 0x1000_0000), "the same pair seen from the other side");
        assert_eq!(duplicate_winner(&[]), None);
    }
}
