//! The endpoint's side of make-before-break renewal: soft deadlines of Quick Mode SA pairs and Main Mode SAs,
//! successors taking over, and the retirement of what they replace. The policy (margins, jitter, idleness) is in
//! [`crate::ike::rekey`].

use super::{wall_time_at, Endpoint, TimerKey, REKEY_OVERLAP};
use crate::ike::events::{Event, RequestId, Role};
use crate::ike::lifetime::Lowered;
use crate::ike::rekey::{self, Retire, RetireKind, MM_RETIRE_CHECK};
use crate::ike::sa::{Ctx, Phase1, SaId};
use crate::wire::consts::{payload, protocol};
use std::cmp::Reverse;
use std::time::{Duration, Instant};
use tracing::{debug, info};

impl Endpoint {
    /// The daemon saw traffic on the Quick Mode SA pair named by our inbound SPI since its last report:
    /// the pair counts as in use, and its soft deadline renews it. `received` says that some of it came from the
    /// peer (the inbound SA counted packets), which proves that the peer has the pair: a pair our rekey replaced
    /// is deleted only after that proof (or a cap), so that the peer never loses the pair it still sends on. (Dead
    /// peer detection takes the peer's liveness from [`Endpoint::esp_received`], reported at every wake-up: this
    /// poll's time is up to its period later than the packets.)
    /// Cheap (a map lookup); meant for the daemon's periodic poll of the datapath's per-SA counters, for the pairs
    /// whose packet counters moved. Returns whether the pair is known.
    pub fn child_used(&mut self, now: Instant, spi_in: u32, received: bool) -> bool {
        let Some(c) = self.children.get_mut(&spi_in) else { return false };
        c.life.used = Some(now);
        c.life.peer_sent |= received;
        if received {
            c.life.peer_sent_at = Some(now);
        }
        true
    }

    /// The expiry of the pair `spi_in` came, which a retirement set (see [`RetireKind`]): returns whether the
    /// deletion is postponed (or called off).
    pub(super) fn postpone_retirement(&mut self, now: Instant, spi_in: u32) -> bool {
        let Some(r) = self.children.get(&spi_in).and_then(|c| c.life.retire) else {
            return false;
        };
        match r.kind {
            _ if !self.children.contains_key(&r.successor) => self.keep_without_successor(now, spi_in),
            RetireKind::Rekeyed => self.postpone_rekeyed(now, spi_in, r),
            RetireKind::Duplicate => {
                let sure =
                    self.children.get(&r.successor).is_none_or(|s| s.life.peer_sent || s.info.role == Role::Responder);
                if sure || now >= r.cap {
                    info!("Quick Mode SA {spi_in:08x} lost a collision to {:08x} (both negotiated the same traffic at once): deleted", r.successor);
                    return false;
                }
                self.recheck_retirement(spi_in, (now + rekey::RETIRE_CHECK).min(r.cap));
                true
            }
            RetireKind::PeerRekeyed => {
                let Some(c) = self.children.get(&spi_in) else { return false };
                let hard = c.life.hard;
                if now >= hard {
                    return false;
                }
                let successor_used = self.children.get(&r.successor).and_then(|s| s.life.peer_sent_at);
                let Some(used) = successor_used else {
                    self.recheck_retirement(spi_in, (now + rekey::STALE_CHECK).min(hard));
                    return true;
                };
                let quiet_since = c.life.peer_sent_at.map_or(c.life.up, |t| t.max(c.life.up));
                if used > quiet_since && now >= quiet_since + rekey::STALE_IDLE {
                    info!("Quick Mode SA {spi_in:08x} was rekeyed by the peer, which sends on {:08x} and nothing on this one: its DELETE must have been lost; deleted", r.successor);
                    return false;
                }
                self.recheck_retirement(spi_in, (now + rekey::STALE_CHECK).min(hard));
                true
            }
        }
    }

    /// The successor of the retiring pair `spi_in` is gone (the peer deleted it, say, having kept this one in a
    /// collision it judged otherwise). Returns `true` when no other pair carries the same traffic: this one does
    /// again, renewed as any (now, if it is past its soft deadline and in use); `false` when another does, and
    /// this one can go.
    fn keep_without_successor(&mut self, now: Instant, spi_in: u32) -> bool {
        let Some(c) = self.children.get(&spi_in) else { return false };
        let (rule, peer, hard) = (c.info.rule.clone(), c.info.peer.ip(), c.life.hard);
        if !self.live_pairs_beside(spi_in).is_empty() || hard <= now {
            return false;
        }
        info!(peer = %peer, rule = %rule, "Quick Mode SA {spi_in:08x} stays: the pair meant to replace it is gone");
        if let Some(c) = self.children.get_mut(&spi_in) {
            c.life.retire = None;
            c.life.superseded = false;
            c.life.soft = c.life.soft.min(now);
            c.expires = hard;
        }
        self.timers.push(Reverse((hard, TimerKey::Child(spi_in))));
        self.timers.push(Reverse((now, TimerKey::Child(spi_in))));
        true
    }

    /// The pairs other than `spi_in` that carry its traffic (rule, peer, selector) and are not superseded.
    fn live_pairs_beside(&self, spi_in: u32) -> Vec<u32> {
        let Some(c) = self.children.get(&spi_in) else { return Vec::new() };
        let (rule, peer, selector) = (&c.info.rule, c.info.peer.ip(), c.info.selector);
        self.children
            .iter()
            .filter(|(spi, o)| {
                **spi != spi_in
                    && !o.life.superseded
                    && o.info.rule == *rule
                    && o.info.peer.ip() == peer
                    && o.info.selector == selector
            })
            .map(|(spi, _)| *spi)
            .collect()
    }

    /// Looks at the retiring pair `spi_in` again at `at`.
    fn recheck_retirement(&mut self, spi_in: u32, at: Instant) {
        if let Some(c) = self.children.get_mut(&spi_in) {
            c.expires = at;
        }
        self.timers.push(Reverse((at, TimerKey::Child(spi_in))));
    }

    /// [`RetireKind::Rekeyed`]: the pair waits while the peer has not used the successor yet, up to the cap.
    /// At the cap, a successor the peer never used while it went on sending on this pair is taken for one the
    /// peer does not have (its QM2 retransmissions lost, so it never got our QM3): the successor is deleted (the
    /// peer told, should it have it after all), this pair stays until its own expiry, and its rekey starts again.
    fn postpone_rekeyed(&mut self, now: Instant, spi_in: u32, r: Retire) -> bool {
        let (successor, cap) = (r.successor, r.cap);
        let proven = self.children.get(&successor).is_some_and(|s| s.life.peer_sent);
        if proven {
            return false;
        }
        if now >= cap {
            let successor_up = self.children.get(&successor).map(|s| s.life.up);
            let old = self.children.get(&spi_in).map(|c| (c.life.peer_sent_at, c.life.hard));
            let (Some(up), Some((Some(last_from_peer), hard))) = (successor_up, old) else {
                return false;
            };
            if last_from_peer <= up || hard <= now {
                return false;
            }
            info!("Quick Mode SA {successor:08x} replaced {spi_in:08x}, but the peer still sends on the old pair and never used the new one: it may not have completed that Quick Mode; the new pair goes, the old one stays and is rekeyed again");
            self.delete_child_with_notice(
                now,
                successor,
                "the peer never used it (it may not have completed the Quick Mode)",
            );
            if let Some(c) = self.children.get_mut(&spi_in) {
                c.life.retire = None;
                c.life.superseded = false;
                c.life.soft = now;
                c.expires = hard;
            }
            self.timers.push(Reverse((hard, TimerKey::Child(spi_in))));
            if self.rekey_running(spi_in).is_none() {
                self.rekey(now, spi_in, true);
            }
            return true;
        }
        self.recheck_retirement(spi_in, (now + rekey::RETIRE_CHECK).min(cap));
        true
    }

    /// Whether a rekey of the pair `spi_in` is under way (its request neither done nor failed).
    pub(super) fn rekey_running(&self, spi_in: u32) -> Option<RequestId> {
        self.rekeying.iter().find(|(_, old)| **old == spi_in).map(|(r, _)| *r)
    }

    /// A request that failed is no longer a running rekey (so that the next check may try again).
    pub(super) fn note_event(&mut self, e: &Event) {
        if let Event::NegotiationFailed { request: Some(r), .. } = e {
            if let Some(old) = self.rekeying.remove(r) {
                debug!("the rekey of Quick Mode SA {old:08x} failed; it is tried again before the SA expires");
            }
        }
    }

    /// Arms the soft deadline of a new pair.
    pub(super) fn arm_child(&mut self, spi_in: u32) {
        if let Some(c) = self.children.get(&spi_in) {
            self.timers.push(Reverse((c.life.soft, TimerKey::Child(spi_in))));
        }
    }

    /// A new pair came up. Other pairs for the same traffic (rule, peer, selector) that came up moments before
    /// are duplicates from a collision (both sides negotiated at once): both sides keep the same one and retire
    /// the others ([`RetireKind::Duplicate`]). Older ones are superseded, since only the newest is renewed: after
    /// the peer's rekey they end with its DELETE, or, if that was lost, once the peer has moved to the new pair
    /// ([`RetireKind::PeerRekeyed`]); after ours, by retirement ([`Endpoint::retire_child`]).
    pub(super) fn supersede_older(&mut self, now: Instant, spi_in: u32) {
        let Some(new) = self.children.get(&spi_in) else { return };
        let (rule, peer) = (new.info.rule.clone(), new.info.peer.ip());
        let started = new.life.started;
        let same: Vec<(u32, bool)> = self
            .live_pairs_beside(spi_in)
            .into_iter()
            .filter_map(|spi| self.children.get(&spi).map(|c| (spi, c)))
            .map(|(spi, c)| {
                // It came up while the new pair was being negotiated: a collision, not a predecessor.
                let duplicate = c.life.retire.is_none() && c.life.up >= started;
                (spi, duplicate)
            })
            .collect();
        let mut duplicates: Vec<(u32, u32)> = same
            .iter()
            .filter(|(_, d)| *d)
            .filter_map(|(spi, _)| self.children.get(spi).map(|c| (c.info.spi_in, c.info.spi_out)))
            .collect();
        let mut newest = spi_in;
        if !duplicates.is_empty() {
            duplicates.extend(self.children.get(&spi_in).map(|c| (c.info.spi_in, c.info.spi_out)));
            let winner = rekey::duplicate_winner(&duplicates).and_then(|i| duplicates.get(i)).map(|d| d.0);
            let Some(winner) = winner else { return };
            newest = winner;
            for &(loser, _) in duplicates.iter().filter(|d| d.0 != winner) {
                info!(peer = %peer, rule = %rule, "Quick Mode SA {loser:08x} and {winner:08x} carry the same traffic (a collision): {winner:08x} stays on both sides");
                self.retire_as(now, loser, winner, RetireKind::Duplicate);
            }
        }
        for (spi, duplicate) in same {
            if duplicate {
                continue;
            }
            debug!(peer = %peer, rule = %rule, "Quick Mode SA {spi:08x} has a successor ({newest:08x}): not renewed by us");
            if self.children.get(&spi).is_some_and(|c| c.life.retire.is_none()) {
                self.retire_as(now, spi, newest, RetireKind::PeerRekeyed);
            } else if let Some(c) = self.children.get_mut(&spi) {
                c.life.superseded = true;
            }
        }
    }

    /// Marks the pair `old` as superseded by `successor` and sets its retirement of `kind`.
    fn retire_as(&mut self, now: Instant, old: u32, successor: u32, kind: RetireKind) {
        let Some(c) = self.children.get_mut(&old) else { return };
        c.life.superseded = true;
        let (first_look, cap) = match kind {
            RetireKind::Rekeyed => (now + REKEY_OVERLAP, now + rekey::RETIRE_CAP),
            RetireKind::Duplicate => (now + rekey::DUPLICATE_OVERLAP, now + rekey::RETIRE_CAP),
            RetireKind::PeerRekeyed => (now + rekey::STALE_CHECK, c.life.hard),
        };
        if first_look < c.expires {
            c.life.retire = Some(Retire { successor, cap: cap.min(c.expires), kind });
            c.expires = first_look;
            self.timers.push(Reverse((first_look, TimerKey::Child(old))));
        }
    }

    /// Our rekey of `old` is done (its successor is `new`): `old` retires after the overlap (make-before-break),
    /// or later when the peer has not used `new` by then (see [`Endpoint::child_used`]).
    pub(super) fn retire_child(&mut self, now: Instant, old: u32, new: u32) {
        self.retire_as(now, old, new, RetireKind::Rekeyed);
    }

    /// The soft deadline (or a later check) of the pair `spi_in` passed, short of its expiry.
    pub(super) fn child_soft_deadline(&mut self, now: Instant, spi_in: u32) {
        let Some(c) = self.children.get(&spi_in) else { return };
        if c.life.superseded || c.life.soft > now {
            return;
        }
        let expires = c.expires;
        if !c.life.recently_used(now) {
            debug!(peer = %c.info.peer, rule = %c.info.rule, "Quick Mode SA {spi_in:08x} is idle: not renewed");
        } else if self.rekey_running(spi_in).is_none() {
            self.rekey(now, spi_in, true);
        }
        // Traffic may come back, or the rekey may fail: look again while there is time.
        if let Some(at) = rekey::recheck(now, expires) {
            if let Some(c) = self.children.get_mut(&spi_in) {
                c.life.soft = at;
            }
            self.timers.push(Reverse((at, TimerKey::Child(spi_in))));
        }
    }

    /// A Main Mode SA is established: its soft deadline is armed; it takes over from the SA it was negotiated to
    /// replace (ours), or from older SAs with the peer (the peer's rekey).
    pub(super) fn main_mode_up(&mut self, now: Instant, id: SaId) {
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(est) = sa.established() else { return };
        if sa.core.test {
            return;
        }
        let lifetime = est.expires.saturating_duration_since(now);
        let (role, rule, peer) = (sa.core.role, sa.core.rule.clone(), sa.core.peer.ip());
        // As responder we must echo the proposal's lifetime unchanged; a shorter one of ours is announced in a
        // separate Informational exchange (RFC 2407 §4.6.3).
        if let (Role::Responder, Some(secs)) = (role, est.lowered_to) {
            let n = Lowered { seconds: Some(secs), kilobytes: None }.isakmp_notify(sa.core.isakmp_spi());
            let mut cx = ctx!(self, now);
            let _ = sa.core.send_informational(&mut cx, est, &[(payload::NOTIFY, &n)]);
        }
        let soft = rekey::soft_deadline(now, lifetime, role, &mut *self.rng);
        let life = self.mm_life.entry(id).or_default();
        life.soft = Some(soft);
        let replaces = life.replaces;
        self.timers.push(Reverse((soft, TimerKey::MainModeSoft(id))));
        let older: Vec<SaId> = self
            .sas
            .iter()
            .filter(|(o, s)| {
                **o != id
                    && !s.core.test
                    && s.core.rule == rule
                    && s.core.peer.ip() == peer
                    && s.established().is_some()
            })
            .map(|(o, _)| *o)
            .collect();
        for o in older {
            let l = self.mm_life.entry(o).or_default();
            l.superseded = true;
            if replaces == Some(o) {
                l.retiring = true;
                info!(peer = %peer, rule = %rule, "Main Mode SA renewed: the old one goes once its Quick Modes are done");
                self.timers.push(Reverse((now, TimerKey::MainModeSoft(o))));
            }
        }
    }

    /// The soft deadline (or a retirement check) of Main Mode SA `id`.
    pub(super) fn main_mode_soft_deadline(&mut self, now: Instant, id: SaId) {
        let Some(life) = self.mm_life.get(&id).cloned() else { return };
        let Some(sa) = self.sas.get(&id) else {
            self.mm_life.remove(&id);
            return;
        };
        let Some(expires) = sa.established().map(|e| e.expires) else { return };
        if life.retiring {
            // A Quick Mode we finished may not be finished at the peer (our QM3 lost, its QM2 retransmitted): the
            // SA stays until every exchange under it is forgotten, so that the peer still gets its answer.
            if !sa.quick_modes.is_empty() && now + MM_RETIRE_CHECK < expires {
                self.timers.push(Reverse((now + MM_RETIRE_CHECK, TimerKey::MainModeSoft(id))));
            } else {
                self.delete_sa_with_notice(now, id, "it was renewed (a new Main Mode SA replaces it)");
            }
            return;
        }
        if life.superseded || life.soft.is_none_or(|s| s > now) {
            return;
        }
        let (rule_name, local, peer) = (sa.core.rule.clone(), sa.core.local, sa.core.peer);
        let needed = self.children.values().any(|c| c.info.rule == rule_name && c.info.peer.ip() == peer.ip());
        let negotiating = self.sas.iter().any(|(o, s)| {
            *o != id
                && !s.core.test
                && s.core.rule == rule_name
                && s.core.peer.ip() == peer.ip()
                && s.established().is_none()
        });
        let rule = self.policy.rule(&rule_name).cloned();
        match rule {
            Some(rule) if needed && !negotiating => {
                info!(peer = %peer, rule = %rule_name, "renewing the Main Mode SA before it expires");
                let new = self.next_sa;
                self.start_main_mode_with(now, &rule, local, peer, Vec::new(), false, false, false);
                if self.sas.contains_key(&new) {
                    self.mm_life.entry(new).or_default().replaces = Some(id);
                }
            }
            _ if !needed => {
                debug!(peer = %peer, rule = %rule_name, "Main Mode SA not renewed: no Quick Mode SA needs it")
            }
            _ => {}
        }
        // A renewal that fails is tried again while there is time.
        if let Some(at) = rekey::recheck(now, expires) {
            if let Some(l) = self.mm_life.get_mut(&id) {
                l.soft = Some(at);
            }
            self.timers.push(Reverse((at, TimerKey::MainModeSoft(id))));
        }
    }

    /// A RESPONDER-LIFETIME came in an Informational exchange of SA `id` (RFC 2407 §4.6.3): the ISAKMP SA it
    /// names (by its cookies) or the pair (by the peer's inbound SPI, our outbound one) gets the shorter lifetime,
    /// counted from now, and a soft deadline within it.
    pub(super) fn honour_responder_lifetime(
        &mut self,
        now: Instant,
        id: SaId,
        protocol_id: u8,
        spi: &[u8],
        lowered: Lowered,
    ) {
        let Some(secs) = lowered.seconds else {
            debug!("ignored a RESPONDER-LIFETIME without a time lifetime (byte limits are set in Quick Mode)");
            return;
        };
        let until = now + Duration::from_secs(secs.max(60));
        let Some(sa) = self.sas.get_mut(&id) else { return };
        let (peer, role) = (sa.core.peer, sa.core.role);
        if protocol_id == protocol::ISAKMP && spi == [sa.core.cky_i, sa.core.cky_r].concat() {
            let Phase1::Established(est) = &mut sa.phase1 else { return };
            if until >= est.expires {
                return;
            }
            est.expires = until;
            info!(peer = %peer, "the peer lowered the Main Mode SA's lifetime to {secs}s (RESPONDER-LIFETIME)");
            let soft = rekey::soft_deadline(now, until - now, role, &mut *self.rng);
            self.mm_life.entry(id).or_default().soft = Some(soft);
            self.timers.push(Reverse((soft, TimerKey::MainModeSoft(id))));
            self.schedule(id);
            return;
        }
        let Ok(spi_out) = <[u8; 4]>::try_from(spi).map(u32::from_be_bytes) else {
            debug!(peer = %peer, "ignored a RESPONDER-LIFETIME for protocol {protocol_id} with a {}-byte SPI", spi.len());
            return;
        };
        let found = self.children.values_mut().find(|c| c.info.spi_out == spi_out && c.info.peer.ip() == peer.ip());
        let Some(c) = found.filter(|c| protocol_id == protocol::ESP && until < c.expires) else { return };
        c.expires = until;
        c.life.hard = until;
        c.life.lifetime = until - now;
        c.life.soft = rekey::soft_deadline(now, until - now, c.info.role, &mut *self.rng);
        let (spi_in, soft) = (c.info.spi_in, c.life.soft);
        info!(peer = %peer, "the peer lowered the lifetime of Quick Mode SA {spi_in:08x} to {secs}s (RESPONDER-LIFETIME)");
        self.timers.push(Reverse((until, TimerKey::Child(spi_in))));
        self.timers.push(Reverse((soft, TimerKey::Child(spi_in))));
    }

    /// Whether Main Mode SA `id` is on its way out (replaced by our renewal): no new Quick Mode starts under it.
    pub(super) fn retiring(&self, id: SaId) -> bool {
        self.mm_life.get(&id).is_some_and(|l| l.retiring)
    }

    /// Main Mode SA `id` is gone: its renewal state goes with it.
    pub(super) fn forget_life(&mut self, id: SaId) {
        self.mm_life.remove(&id);
    }

    /// Sizes of the renewal state, for tests that check nothing leaks: Main Mode SAs, Quick Mode SA pairs,
    /// half-open exchanges, pending timers, running rekeys, reserved SPIs.
    pub fn state_counts(&self) -> StateCounts {
        StateCounts {
            main_mode_sas: self.sas.len(),
            quick_mode_sas: self.children.len(),
            half_open: self.admission.half_open.len(),
            timers: self.timers.len(),
            rekeying: self.rekeying.len(),
            reserved_spis: self.reserved_spis.len(),
            renewal_states: self.mm_life.len(),
        }
    }
}

/// How much state an endpoint holds ([`Endpoint::state_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateCounts {
    /// ISAKMP SAs (established or negotiating).
    pub main_mode_sas: usize,
    /// Quick Mode SA pairs.
    pub quick_mode_sas: usize,
    /// Responder exchanges not yet established.
    pub half_open: usize,
    /// Entries of the timer heap (stale ones included, until they come due).
    pub timers: usize,
    /// Quick Mode rekeys under way.
    pub rekeying: usize,
    /// SPIs reserved for pairs and running Quick Modes.
    pub reserved_spis: usize,
    /// Renewal states of Main Mode SAs.
    pub renewal_states: usize,
}
