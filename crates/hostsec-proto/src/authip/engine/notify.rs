//! AuthIP notifies ([MS-AIPS] §3.1.5, §3.1.7.5): NOTIFY_STATUS deletes a Main Mode SA, NOTIFY_ACK acknowledges a
//! reliable notify by the seqNUM of the CRYPTO payload that carried it, and one reliable notify is outstanding at a
//! time (the rest wait in order). A notify is retransmitted until acknowledged; a receiver acknowledges every copy
//! but acts on it once.

use super::payloads::{self, Got};
use super::{AuthipEngine, KEEP_FINISHED};
use crate::authip::consts::{exchange, notify, notify_flags, notify_protocol, payload};
use crate::authip::seal::Opened;
use crate::authip::{AuthipNotifyRepr, NotifyKind};
use crate::ike::retransmit::Retransmit;
use rand_core::CryptoRngCore;
use std::collections::VecDeque;
use std::time::Instant;
use tracing::{debug, info};

/// How many of the peer's reliable notify seqNUMs are remembered to acknowledge copies without acting again.
const SEEN: usize = 64;
/// Code of the NOTIFY_STATUS hostsec sends to delete a Main Mode SA (docs/authip.md E9: [MS-AIPS] gives no list;
/// 0 reads as "no error, deleted on purpose").
pub const DELETE_STATUS: u32 = 0;

/// The reliable-notify state of one Main Mode SA.
#[derive(Default)]
pub(super) struct Reliable {
    /// The notify waiting for its ACK: its seqNUM, what it is (for the log), its retransmission.
    outstanding: Option<(u32, String, Retransmit)>,
    /// Notifies waiting their turn.
    queue: VecDeque<(AuthipNotifyRepr, String)>,
    /// The peer's reliable notifies already acted on.
    seen: VecDeque<u32>,
    /// We sent the delete: the SA goes once it is acknowledged.
    pub deleting: bool,
    /// The peer deleted the SA: kept only to acknowledge copies of its delete, until this instant.
    pub closing_until: Option<Instant>,
}

/// What the notify timer asks for.
pub(super) enum NotifyTimer {
    Nothing,
    Resend(Vec<u8>),
    GaveUp(String),
}

impl Reliable {
    pub fn deadline(&self) -> Option<Instant> {
        [self.outstanding.as_ref().map(|(_, _, r)| r.deadline), self.closing_until].into_iter().flatten().min()
    }

    pub fn on_timer(&mut self, now: Instant, tries: u32) -> NotifyTimer {
        let Some((_, what, r)) = self.outstanding.as_mut().filter(|(_, _, r)| r.deadline <= now) else {
            return NotifyTimer::Nothing;
        };
        match r.on_deadline(now, tries) {
            Some(m) => NotifyTimer::Resend(m.to_vec()),
            None => NotifyTimer::GaveUp(what.clone()),
        }
    }

    pub fn clear(&mut self) {
        self.outstanding = None;
        self.queue.clear();
    }

    /// Whether a reliable notify is waiting for its acknowledgement.
    pub fn busy(&self) -> bool {
        self.outstanding.is_some()
    }
}

impl AuthipEngine {
    /// Sends a notify in the Notify exchange (0xF6), sealed; a reliable one waits its turn behind the outstanding
    /// one and is retransmitted until acknowledged.
    pub(super) fn send_notify(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        n: AuthipNotifyRepr,
        what: &str,
    ) {
        let Some(sa) = self.sas.get_mut(&id) else { return };
        let reliable = n.flags & notify_flags::RELIABLE != 0;
        if reliable && sa.notify.busy() {
            sa.notify.queue.push_back((n, what.to_string()));
            return;
        }
        if sa.keys.is_none() {
            return;
        }
        let Ok((first, chain)) = payloads::build(&[(payload::NOTIFY, &n)]) else { return };
        let mut mid = [0u8; 4];
        rng.fill_bytes(&mut mid);
        let seq = sa.seq[3];
        let msg = match sa.sealed(rng, exchange::NOTIFY, u32::from_be_bytes(mid), first, &chain) {
            Ok(m) => m,
            Err(e) => return debug!("cannot build an AuthIP notify: {e}"),
        };
        if reliable {
            sa.notify.outstanding =
                Some((seq, what.to_string(), Retransmit::new(msg.clone(), now, self.timing.retransmit_initial)));
        }
        let (local, peer) = (sa.local, sa.peer);
        self.send(local, peer, msg);
    }

    /// Deletes a Main Mode SA and tells the peer (reliable NOTIFY_STATUS); its SA pairs go at once, the Main Mode
    /// SA once the peer acknowledged (or retransmissions are spent). An SA without keys just goes.
    pub(super) fn delete_with_notice(&mut self, now: Instant, rng: &mut dyn CryptoRngCore, id: u64, reason: &str) {
        let Some(sa) = self.sas.get_mut(&id) else { return };
        if sa.keys.is_none() || sa.notify.deleting || sa.notify.closing_until.is_some() {
            return self.remove_sa(id, reason);
        }
        sa.notify.deleting = true;
        sa.notify.clear();
        info!(peer = %sa.peer, rule = %sa.rule, "deleting AuthIP Main Mode SA: {reason}");
        let spis: Vec<u32> = self.children.iter().filter(|(_, c)| c.sa == id).map(|(s, _)| *s).collect();
        for spi in spis {
            self.remove_child(spi, reason);
        }
        let n = AuthipNotifyRepr::status(notify_protocol::MM_EM, true, DELETE_STATUS);
        self.send_notify(now, rng, id, n, "the delete (NOTIFY_STATUS)");
    }

    /// A notify message of the peer: acknowledgements, deletes, refusals.
    pub(super) fn on_notify(&mut self, now: Instant, rng: &mut dyn CryptoRngCore, id: u64, o: &Opened, got: &Got<'_>) {
        let mut ack_needed = false;
        let mut first_time = true;
        for n in &got.notify {
            if n.is_reliable() {
                ack_needed = true;
                if let Some(sa) = self.sas.get_mut(&id) {
                    if sa.notify.seen.contains(&o.seq) {
                        first_time = false;
                    }
                }
            }
        }
        if ack_needed {
            let ack = AuthipNotifyRepr::ack(notify_protocol::MM_EM, o.seq);
            self.send_notify(now, rng, id, ack, "an ACK");
            if let Some(sa) = self.sas.get_mut(&id) {
                if first_time {
                    sa.notify.seen.push_back(o.seq);
                    if sa.notify.seen.len() > SEEN {
                        sa.notify.seen.pop_front();
                    }
                }
            }
        }
        if !first_time {
            self.stats.duplicates += 1;
            return;
        }
        for n in &got.notify {
            match n.kind() {
                NotifyKind::Ack(seq) => self.on_ack(now, rng, id, seq),
                NotifyKind::Status(code) => {
                    let Some(sa) = self.sas.get_mut(&id) else { return };
                    if sa.notify.closing_until.is_some() {
                        continue;
                    }
                    info!(peer = %sa.peer, rule = %sa.rule, "the peer deleted the AuthIP Main Mode SA (NOTIFY_STATUS {code:#010x})");
                    sa.notify.closing_until = Some(now + KEEP_FINISHED);
                    sa.notify.clear();
                    let spis: Vec<u32> = self.children.iter().filter(|(_, c)| c.sa == id).map(|(s, _)| *s).collect();
                    for spi in spis {
                        self.remove_child(spi, "the peer deleted its Main Mode SA");
                    }
                    let info = self.sas.get(&id).map(|sa| sa.info(None));
                    if let Some(info) = info {
                        self.events.push_back(crate::ike::Event::MainModeDown {
                            info,
                            reason: format!("AuthIP: the peer deleted it (NOTIFY_STATUS {code:#010x})"),
                        });
                    }
                }
                NotifyKind::Other(notify::NO_PROPOSAL_CHOSEN, _) => {
                    let waiting: Vec<u32> = self
                        .sas
                        .get(&id)
                        .map(|sa| sa.qms.iter().filter(|(_, q)| q.request.is_some()).map(|(m, _)| *m).collect())
                        .unwrap_or_default();
                    for m in waiting {
                        self.fail_quick_mode(
                            id,
                            m,
                            "the peer chose none of our Quick Mode proposals (NO-PROPOSAL-CHOSEN)",
                        );
                    }
                }
                other => debug!("ignored an AuthIP notify: {other:?}"),
            }
        }
    }

    fn on_ack(&mut self, now: Instant, rng: &mut dyn CryptoRngCore, id: u64, seq: u32) {
        let Some(sa) = self.sas.get_mut(&id) else { return };
        match &sa.notify.outstanding {
            Some((s, what, _)) if *s == seq => {
                debug!(peer = %sa.peer, "the peer acknowledged {what}");
                sa.notify.outstanding = None;
                self.stats.notifies_acked += 1;
            }
            _ => {
                self.stats.dropped_unexpected += 1;
                return;
            }
        }
        if sa.notify.deleting {
            return self.remove_sa(id, "deleted; the peer acknowledged");
        }
        if let Some((n, what)) = sa.notify.queue.pop_front() {
            self.send_notify(now, rng, id, n, &what);
        }
    }
}
