//! Quick Modes that we hold back for a moment rather than start at once, because the peer could not take them yet:
//! while it negotiates a new Main Mode with us (its reauthentication), and right after a Main Mode that we
//! answered. Both were seen with strongSwan 5.9 under load: a Quick Mode under an IKE SA that strongSwan is
//! reauthenticating makes it destroy that SA ("received quick mode request for unestablished IKE_SA") and send
//! INITIAL-CONTACT in the new Main Mode, and a Quick Mode that overtakes our MM6 inside strongSwan (its workers
//! take packets in parallel) is decrypted with the wrong IV, which strongSwan then keeps for the message ID, so
//! that every retransmission fails too. Held requests wait in the SA's `waiting` list and go on when the time
//! is up, or when the peer's new Main Mode comes up (then under it).

use super::Endpoint;
use crate::ike::events::{Event, RequestId, Role};
use crate::ike::sa::{Phase1, SaId};
use crate::ike::selector::Selector;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::debug;

/// How long our Quick Modes wait for a Main Mode that the peer began with us, rather than go under the SA it is
/// replacing. A reauthentication takes well under a second; this covers a lost message and strongSwan's first
/// retransmission (4 s).
pub(crate) const PEER_MAIN_MODE_WAIT: Duration = Duration::from_secs(6);

/// How long after a Main Mode that we answered our own first Quick Modes under it wait, so that the initiator
/// has surely read our MM6 first.
pub(crate) const AFTER_ANSWERED_MAIN_MODE: Duration = Duration::from_secs(1);

impl Endpoint {
    /// Until when a Quick Mode we would start under established SA `id` waits, if it must: `id` came up as
    /// responder moments ago, or (with `wait_for_peer`) the peer is negotiating a newer Main Mode with us.
    pub(super) fn quick_mode_hold(&self, now: Instant, id: SaId, wait_for_peer: bool) -> Option<Instant> {
        let sa = self.sas.get(&id)?;
        let mut until = None;
        if sa.core.role == Role::Responder {
            until = sa.core.up.map(|up| up + AFTER_ANSWERED_MAIN_MODE).filter(|t| *t > now);
        }
        if wait_for_peer {
            let newer = self
                .sas
                .values()
                .filter(|o| {
                    !o.core.test
                        && o.core.role == Role::Responder
                        && matches!(o.phase1, Phase1::Negotiating(_))
                        && o.core.peer.ip() == sa.core.peer.ip()
                        && o.core.rule == sa.core.rule
                })
                .filter_map(|o| o.core.started)
                .filter(|s| sa.core.up.is_none_or(|up| *s > up))
                .map(|s| s + PEER_MAIN_MODE_WAIT)
                .filter(|t| *t > now)
                .max();
            until = until.max(newer);
        }
        until
    }

    /// Holds `request` for `selector` on established SA `id` until `until` (or until an earlier hold ends).
    pub(super) fn hold(&mut self, now: Instant, id: SaId, until: Instant, request: RequestId, selector: Selector) {
        let Some(sa) = self.sas.get_mut(&id) else { return };
        let ms = until.saturating_duration_since(now).as_millis();
        debug!(peer = %sa.core.peer, rule = %sa.core.rule, "Quick Mode for {selector} held for {ms} ms: the peer is not ready for it yet");
        sa.core.waiting.push((request, selector));
        if sa.core.hold_quick_until.is_none() {
            sa.core.hold_quick_until = Some(until);
        }
        self.schedule(id);
    }

    /// The hold of established SA `id` is over if it was due: its requests go on.
    pub(super) fn release_if_due(&mut self, now: Instant, id: SaId) {
        if self.sas.get(&id).and_then(|sa| sa.core.hold_quick_until).is_some_and(|t| t <= now) {
            self.release_held(now, id, false);
        }
    }

    /// The peer's new Main Mode SA `id` came up: requests held on its other SAs for it go on (under `id`).
    pub(super) fn release_for_new_main_mode(&mut self, now: Instant, id: SaId) {
        let Some(sa) = self.sas.get(&id) else { return };
        let (peer, rule) = (sa.core.peer.ip(), sa.core.rule.clone());
        let holding: Vec<SaId> = self
            .sas
            .iter()
            .filter(|(o, s)| {
                **o != id && s.core.hold_quick_until.is_some() && s.core.peer.ip() == peer && s.core.rule == rule
            })
            .map(|(o, _)| *o)
            .collect();
        for o in holding {
            self.release_held(now, o, true);
        }
    }

    /// Sends the requests held on SA `id` on their way: each is carried again, which picks the newest SA
    /// (`wait_for_peer`: they may wait once more for a Main Mode the peer is negotiating). What no longer needs
    /// a Quick Mode is settled instead: a request whose traffic got a pair meanwhile (the peer's Quick Mode) is
    /// answered with it, a rekey whose pair was renewed by the peer or is gone is dropped.
    pub(super) fn release_held(&mut self, now: Instant, id: SaId, wait_for_peer: bool) {
        let Some(sa) = self.sas.get_mut(&id) else { return };
        sa.core.hold_quick_until = None;
        let held = std::mem::take(&mut sa.core.waiting);
        let (rule_name, local, peer) = (sa.core.rule.clone(), sa.core.local, sa.core.peer);
        self.schedule(id);
        self.carry_held(now, &rule_name, local, peer, held, wait_for_peer);
    }

    /// Carries `held` requests of rule `rule_name` with `peer` again (see [`Endpoint::release_held`]).
    pub(super) fn carry_held(
        &mut self,
        now: Instant,
        rule_name: &str,
        local: SocketAddr,
        peer: SocketAddr,
        held: Vec<(RequestId, Selector)>,
        wait_for_peer: bool,
    ) {
        let Some(rule) = self.policy.rule(rule_name).cloned() else {
            for (request, _) in held {
                self.rekeying.remove(&request);
                let why = format!("rule '{rule_name}' was removed");
                super::failed(&mut self.events, Some(request), Some(rule_name.to_string()), peer, "quick mode", why);
            }
            return;
        };
        for (request, selector) in held {
            if let Some(old) = self.rekeying.get(&request).copied() {
                if self.children.get(&old).is_none_or(|c| c.life.superseded) {
                    self.rekeying.remove(&request);
                    debug!(peer = %peer, "the held rekey of Quick Mode SA {old:08x} is no longer needed: it has a successor or is gone");
                    continue;
                }
            } else if let Some(c) = self
                .children
                .values()
                .find(|c| c.info.rule == rule_name && c.info.peer.ip() == peer.ip() && c.info.selector == selector)
            {
                let verdict = format!("established with {} under rule '{rule_name}' ({})", peer.ip(), c.info.selector);
                self.events.push_back(Event::RequestDone { request, info: c.info.clone(), verdict });
                continue;
            }
            self.carry_or_hold(now, &rule, local, peer, (request, selector), wait_for_peer);
        }
    }
}
