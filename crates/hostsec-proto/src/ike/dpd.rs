//! Dead peer detection (RFC 3706) for one ISAKMP SA: when to send R-U-THERE, which R-U-THERE-ACK answers it, and
//! when the peer is declared dead.
//!
//! hostsec probes on idleness, as strongSwan's IKEv1 DPD does, rather than only when it has traffic to send (the
//! RFC's "worry" mode): a peer from which nothing authenticated arrived (no IKE message, no ESP packet the daemon
//! reported) for `dpd_interval` gets an R-U-THERE. A probe round sends [`Timing::dpd_probes`] R-U-THEREs spread
//! evenly over one more `dpd_interval`, each with the next sequence number (RFC 3706 §7: random start, +1 per
//! message), and ends as soon as anything authenticated arrives; an ACK counts only when it carries a sequence
//! number of this round. Without one by the end of the round the peer is dead: at most 2 × `dpd_interval` after it
//! was last heard (plus the daemon's ESP reporting delay), its SAs are deleted, and the next packet re-keys.
//!
//! [`Timing::dpd_probes`]: super::Timing::dpd_probes

use crate::wire::consts::{notify, protocol, DOI_IPSEC};
use crate::wire::NotifyRepr;
use std::time::{Duration, Instant};

/// What a due DPD timer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DpdStep {
    /// Nothing to send (the peer was heard recently; the timer moved).
    Wait,
    /// Send R-U-THERE with this sequence number.
    Probe(u32),
    /// The probe round ended without an answer: the peer is dead.
    Dead {
        /// R-U-THEREs sent in the round.
        probes: u32,
        /// How long nothing was heard from the peer.
        silent_for: Duration,
    },
}

/// A probe round in progress.
#[derive(Debug, Clone, Copy)]
struct Round {
    /// Sequence number of the round's first R-U-THERE.
    first_seq: u32,
    /// R-U-THEREs sent so far in the round.
    sent: u32,
}

/// The DPD state of an established ISAKMP SA with a peer that announced DPD.
#[derive(Debug, Clone)]
pub(crate) struct Dpd {
    /// When the peer last proved it is alive.
    last_heard: Instant,
    /// When the timer is due (`None`: DPD is off).
    due: Option<Instant>,
    /// The next R-U-THERE sequence number.
    next_seq: u32,
    round: Option<Round>,
    /// The numbers of the latest round, still answerable after the round ended: when both sides probe at once,
    /// each one's R-U-THERE ends the other's round before the ACK arrives.
    answerable: Option<Round>,
    /// When the last matching R-U-THERE-ACK arrived.
    last_ack: Option<Instant>,
}

impl Dpd {
    /// DPD for an SA established at `now` (which is when the peer was last heard); `seq` is the random first
    /// sequence number. The top bit is cleared so that the numbers do not wrap in the SA's life.
    pub fn new(now: Instant, interval: Duration, seq: u32) -> Self {
        let mut d = Dpd {
            last_heard: now,
            due: None,
            next_seq: seq & 0x7fff_ffff,
            round: None,
            answerable: None,
            last_ack: None,
        };
        d.rearm(now, interval);
        d
    }

    /// When the timer is due.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Arms the timer for `interval` (after a reload changed it): zero turns DPD off and ends a round.
    pub fn rearm(&mut self, now: Instant, interval: Duration) {
        if interval.is_zero() {
            self.due = None;
            self.round = None;
        } else if self.round.is_none() {
            self.due = Some((self.last_heard + interval).max(now));
        }
    }

    /// The peer proved it is alive at `now`: an authenticated IKE message or inbound ESP. Ends a probe round.
    /// The timer is not moved here (that would queue a timer per packet): when it comes due, it looks again.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
        self.round = None;
    }

    /// An authenticated R-U-THERE-ACK: `true` when its sequence number is one of the latest round's (a running
    /// round then ends); an older or foreign number proves nothing (RFC 3706 §7 guards against replays this way).
    pub fn on_ack(&mut self, now: Instant, seq: u32) -> bool {
        let Some(r) = self.answerable else {
            return false;
        };
        if seq.wrapping_sub(r.first_seq) >= r.sent {
            return false;
        }
        self.last_ack = Some(now);
        self.heard(now);
        true
    }

    /// The timer is due at `now`: sends the next probe, declares the peer dead, or waits.
    pub fn on_due(&mut self, now: Instant, interval: Duration, probes: u32) -> DpdStep {
        if interval.is_zero() {
            self.rearm(now, interval);
            return DpdStep::Wait;
        }
        let probes = probes.max(1);
        let spacing = (interval / probes).max(Duration::from_millis(100));
        match self.round {
            None if now < self.last_heard + interval => {
                self.due = Some(self.last_heard + interval);
                DpdStep::Wait
            }
            None => {
                let seq = self.take_seq();
                self.round = Some(Round { first_seq: seq, sent: 1 });
                self.answerable = self.round;
                self.due = Some(now + spacing);
                DpdStep::Probe(seq)
            }
            Some(r) if r.sent < probes => {
                let seq = self.take_seq();
                self.round = Some(Round { sent: r.sent + 1, ..r });
                self.answerable = self.round;
                self.due = Some(now + spacing);
                DpdStep::Probe(seq)
            }
            Some(r) => {
                self.due = None;
                DpdStep::Dead { probes: r.sent, silent_for: now.saturating_duration_since(self.last_heard) }
            }
        }
    }

    fn take_seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        s
    }

    /// What `hostsec sas` shows.
    pub fn info(&self, now: Instant) -> DpdInfo {
        DpdInfo {
            probing: self.round.is_some(),
            last_heard_ago: now.saturating_duration_since(self.last_heard),
            last_ack_ago: self.last_ack.map(|t| now.saturating_duration_since(t)),
        }
    }
}

/// The DPD state of a Main Mode SA, as `hostsec sas` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpdInfo {
    /// Whether R-U-THEREs are out without an answer yet.
    pub probing: bool,
    /// How long ago the peer last proved it is alive (IKE, ESP as the daemon reported it, or an ACK).
    pub last_heard_ago: Duration,
    /// How long ago the last matching R-U-THERE-ACK arrived, if one did.
    pub last_ack_ago: Option<Duration>,
}

/// An R-U-THERE or R-U-THERE-ACK notification (RFC 3706 §5.2: protocol ISAKMP, the SA's cookies as SPI, the
/// sequence number as data).
pub(crate) fn notification(kind: u16, isakmp_spi: Vec<u8>, seq: u32) -> NotifyRepr {
    debug_assert!(kind == notify::R_U_THERE || kind == notify::R_U_THERE_ACK);
    NotifyRepr {
        doi: DOI_IPSEC,
        protocol_id: protocol::ISAKMP,
        notify_type: kind,
        spi: isakmp_spi,
        data: seq.to_be_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(10);

    #[test]
    fn an_idle_peer_is_probed_then_declared_dead_after_one_more_interval() {
        let t0 = Instant::now();
        let mut d = Dpd::new(t0, I, 0xffff_fffe);
        assert_eq!(d.due(), Some(t0 + I));
        let mut seqs = Vec::new();
        let mut now = t0 + I;
        loop {
            match d.on_due(now, I, 5) {
                DpdStep::Probe(s) => seqs.push(s),
                DpdStep::Dead { probes, silent_for } => {
                    assert_eq!((probes, silent_for), (5, 2 * I));
                    break;
                }
                DpdStep::Wait => panic!("waited while probing"),
            }
            now = d.due().unwrap();
        }
        // The top bit is cleared at the start; each probe takes the next number.
        assert_eq!(seqs, vec![0x7fff_fffe, 0x7fff_ffff, 0x8000_0000, 0x8000_0001, 0x8000_0002]);
        assert_eq!(d.due(), None);
    }

    #[test]
    fn activity_defers_the_probe_and_a_matching_ack_ends_the_round() {
        let t0 = Instant::now();
        let mut d = Dpd::new(t0, I, 100);
        d.heard(t0 + Duration::from_secs(7));
        assert_eq!(d.on_due(t0 + I, I, 5), DpdStep::Wait);
        assert_eq!(d.due(), Some(t0 + Duration::from_secs(17)));
        let now = t0 + Duration::from_secs(17);
        assert_eq!(d.on_due(now, I, 5), DpdStep::Probe(100));
        assert!(!d.on_ack(now, 99), "an ACK for a number not sent");
        assert!(!d.on_ack(now, 101), "an ACK for a number not sent yet");
        assert_eq!(d.on_due(now + Duration::from_secs(2), I, 5), DpdStep::Probe(101));
        assert!(d.on_ack(now + Duration::from_secs(3), 100), "a late ACK of the round's first probe");
        assert!(d.on_ack(now + Duration::from_secs(3), 101), "the ACK of the second, after the round ended");
        assert!(!d.on_ack(now + Duration::from_secs(3), 102), "never sent");
        let info = d.info(now + Duration::from_secs(4));
        assert!(!info.probing);
        assert_eq!(info.last_ack_ago, Some(Duration::from_secs(1)));
        // The pending timer finds the peer heard and waits a whole interval.
        assert_eq!(d.on_due(now + Duration::from_secs(4), I, 5), DpdStep::Wait);
        assert_eq!(d.due(), Some(now + Duration::from_secs(13)));
        // Activity ends a round too; its ACKs still count when they come.
        let later = now + Duration::from_secs(13);
        assert_eq!(d.on_due(later, I, 5), DpdStep::Probe(102));
        d.heard(later);
        assert!(!d.info(later).probing);
        assert!(d.on_ack(later, 102));
        assert!(!d.on_ack(later, 101), "an older round's number is no longer accepted");
    }

    #[test]
    fn zero_turns_it_off_and_a_reload_turns_it_on() {
        let t0 = Instant::now();
        let mut d = Dpd::new(t0, Duration::ZERO, 1);
        assert_eq!(d.due(), None);
        d.rearm(t0 + Duration::from_secs(30), I);
        assert_eq!(d.due(), Some(t0 + Duration::from_secs(30)), "overdue: probe now");
        assert_eq!(d.on_due(t0 + Duration::from_secs(30), I, 5), DpdStep::Probe(1));
        d.rearm(t0 + Duration::from_secs(31), Duration::ZERO);
        assert_eq!(d.due(), None);
        assert!(!d.info(t0).probing);
    }
}
