//! The anti-replay window of RFC 4303 §3.4.3 and appendix A.
//!
//! A bitmap of [`ReplayWindow::SIZE`] = 2048 sequence numbers ending at the highest authenticated one, kept
//! as a ring of 32 `u64` words indexed by the sequence number itself (the RFC 6479 layout: advancing the window
//! clears the bits of the numbers that enter it instead of shifting the whole map), so that a check is one bit
//! test and an update clears at most 32 words: O(1), no allocation after creation.
//!
//! Why 2048: RFC 4303 §3.4.3 asks for at least 32 and recommends 64, but with multi-queue NICs, several
//! datapath threads and the peer's own parallelism, packets of one SA arrive reordered by far more than 64, and
//! a window that is too small drops valid packets as replays. 2048 (a power of two of 64-bit words, so that the
//! position of a number is a mask and a shift) covers that at a cost of 256 bytes per inbound SA.
//!
//! The order of use is the RFC's: [`ReplayWindow::check`] before the ICV is verified (cheap rejection of
//! duplicates), [`ReplayWindow::update`] only after it verified (so that forged packets cannot move the window).

const WORDS: usize = 32;
const BITS: u64 = 64;

/// The anti-replay window of one inbound SA. Sequence numbers are `u64`: the 32-bit numbers of RFC 4303 as
/// they are, and the 64-bit extended sequence numbers (ESN) once [`ReplayWindow::infer_esn`] has rebuilt them.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest sequence number authenticated so far (0: none yet; 0 is never a valid sequence number).
    top: u64,
    /// Bit `n % SIZE` is set when `n` (within the window) was received.
    bitmap: [u64; WORDS],
}

impl ReplayWindow {
    /// Number of sequence numbers the window covers: `top - SIZE + 1 ..= top`.
    pub const SIZE: u64 = WORDS as u64 * BITS;

    /// An empty window: nothing received yet.
    pub fn new() -> Self {
        ReplayWindow { top: 0, bitmap: [0; WORDS] }
    }

    /// The highest sequence number authenticated so far (0 when none).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Whether `seq` is acceptable: not 0 (RFC 4303 §3.3.3: the first packet has number 1), right of the
    /// window's left edge, and not yet received. To be called before the ICV is verified.
    #[inline]
    pub fn check(&self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            return true;
        }
        if self.top - seq >= Self::SIZE {
            return false;
        }
        let (word, mask) = Self::position(seq);
        self.bitmap.get(word).is_some_and(|w| w & mask == 0)
    }

    /// Records `seq` as received, moving the window right when `seq` is beyond its top. To be called only after
    /// the packet authenticated. Numbers the window would refuse are ignored (so calling it twice is harmless).
    #[inline]
    pub fn update(&mut self, seq: u64) {
        if !self.check(seq) {
            return;
        }
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= Self::SIZE {
                self.bitmap = [0; WORDS];
            } else {
                self.clear_range(self.top.wrapping_add(1), advance);
            }
            self.top = seq;
        }
        let (word, mask) = Self::position(seq);
        if let Some(w) = self.bitmap.get_mut(word) {
            *w |= mask;
        }
    }

    /// Check and update in one step, for callers that have nothing to verify in between (tests, tools).
    pub fn check_and_update(&mut self, seq: u64) -> bool {
        let ok = self.check(seq);
        if ok {
            self.update(seq);
        }
        ok
    }

    /// The whole 64-bit sequence number of a packet on an ESN SA, from the 32 low-order bits it carries and
    /// the window's position (RFC 4303 appendix A2.2). The result is still to be checked and authenticated: a
    /// wrong guess fails the ICV, which covers the high-order bits.
    pub fn infer_esn(&self, seq_low: u32) -> u64 {
        // W - 1 fits in u32: SIZE is 2048.
        let w1 = (Self::SIZE - 1) as u32;
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        let high = if tl >= w1 {
            // Case A: the window lies within one 2^32 block.
            if seq_low >= tl - w1 {
                th
            } else {
                th.wrapping_add(1)
            }
        } else {
            // Case B: the window spans two blocks; a number in its upper part belongs to the previous block
            // (there is none before the first).
            if seq_low >= tl.wrapping_sub(w1) {
                th.checked_sub(1).unwrap_or(th)
            } else {
                th
            }
        };
        (u64::from(high) << 32) | u64::from(seq_low)
    }

    fn position(seq: u64) -> (usize, u64) {
        let bit = seq % (WORDS as u64 * BITS);
        ((bit / BITS) as usize, 1u64 << (bit % BITS))
    }

    /// Clears the bits of the `count` (< SIZE) sequence numbers from `first` on: at most 33 partial words.
    fn clear_range(&mut self, first: u64, count: u64) {
        let mut p = first;
        let mut left = count;
        while left > 0 {
            let (word, _) = Self::position(p);
            let offset = p % BITS;
            let span = (BITS - offset).min(left);
            let mask = if span == BITS { u64::MAX } else { ((1u64 << span) - 1) << offset };
            if let Some(w) = self.bitmap.get_mut(word) {
                *w &= !mask;
            }
            p = p.wrapping_add(span);
            left -= span;
        }
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let received = self.bitmap.iter().map(|w| w.count_ones()).sum::<u32>();
        f.debug_struct("ReplayWindow").field("top", &self.top).field("received_in_window", &received).finish()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::ReplayWindow;

    #[test]
    fn basic_rules() {
        let mut w = ReplayWindow::new();
        assert!(!w.check(0), "0 is never valid");
        assert!(w.check_and_update(1));
        assert!(!w.check_and_update(1), "duplicate");
        assert!(w.check_and_update(3000));
        assert!(!w.check(3000 - 2048), "just left of the window");
        assert!(w.check(3000 - 2047), "leftmost slot of the window");
        assert!(w.check_and_update(2999));
        assert!(!w.check(2999));
        assert!(w.check_and_update(u64::MAX));
        assert!(!w.check_and_update(u64::MAX));
        assert!(w.check_and_update(u64::MAX - 2047));
    }

    #[test]
    fn esn_inference_follows_appendix_a2() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.infer_esn(5), 5);
        assert_eq!(w.infer_esn(u32::MAX), u64::from(u32::MAX), "no block before the first");
        w.update(0xffff_fff0);
        assert_eq!(w.infer_esn(0xffff_fff1), 0xffff_fff1);
        assert_eq!(w.infer_esn(3), 0x1_0000_0003, "wrapped into the next block");
        w.update(0x1_0000_0003);
        assert_eq!(w.infer_esn(0xffff_fff5), 0xffff_fff5, "late packet of the previous block (case B)");
        assert_eq!(w.infer_esn(7), 0x1_0000_0007);
        w.update(0x1_0000_5000);
        assert_eq!(w.infer_esn(0x4900), 0x1_0000_4900);
        assert_eq!(w.infer_esn(0x10), 0x2_0000_0010, "left of the window: taken as the next block");
    }
}
