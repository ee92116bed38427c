//! Retransmission of requests with exponential backoff, and the stored reply that answers a peer's
//! retransmitted request. RFC 2408 leaves the policy to implementations; we follow common practice: the side
//! that waits retransmits, and the side that answered replays its answer to an identical request, so that a
//! duplicate never changes state.

use std::time::{Duration, Instant};

/// A request waiting for its answer.
#[derive(Debug, Clone)]
pub(crate) struct Retransmit {
    /// The datagram, exactly as first sent.
    pub message: Vec<u8>,
    /// When to send it again (or give up).
    pub deadline: Instant,
    /// Retransmissions done so far.
    pub tries: u32,
    timeout: Duration,
}

impl Retransmit {
    /// Arms retransmission of `message`, sent at `now`.
    pub fn new(message: Vec<u8>, now: Instant, initial: Duration) -> Self {
        Retransmit { message, deadline: now + initial, tries: 0, timeout: initial }
    }

    /// At the deadline: `Some(message)` to send again (and the deadline moves, doubling the timeout), or `None`
    /// when `max_tries` retransmissions are spent and the exchange has failed.
    pub fn on_deadline(&mut self, now: Instant, max_tries: u32) -> Option<&[u8]> {
        if self.tries >= max_tries {
            return None;
        }
        self.tries += 1;
        self.timeout = self.timeout.saturating_mul(2);
        self.deadline = now + self.timeout;
        Some(&self.message)
    }
}

/// The answer we gave to a peer's request, kept to answer an identical retransmission with the same bytes
/// instead of processing it again.
#[derive(Debug, Clone)]
pub(crate) struct StoredReply {
    /// A digest of the request that was answered (SHA-256, so that we need not keep the request).
    pub request_digest: [u8; 32],
    /// The reply, exactly as sent.
    pub reply: Vec<u8>,
}

/// The digest identifying a request for duplicate detection.
pub(crate) fn request_digest(datagram: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, datagram);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
