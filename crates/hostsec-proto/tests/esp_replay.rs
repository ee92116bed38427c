//! The anti-replay window against a naive reference model: a `BTreeSet` of every sequence number accepted so
//! far and the window rule of RFC 4303 §3.4.3 (accept when new and not more than 2047 below the highest number
//! accepted). Random streams mix in-order runs, duplicates, old packets, packets just inside and just outside
//! the window, huge jumps and authentication failures (checked, but never recorded).

use hostsec_proto::esp::ReplayWindow;
use proptest::prelude::*;
use std::collections::BTreeSet;

const W: u64 = ReplayWindow::SIZE;

#[derive(Default)]
struct Model {
    seen: BTreeSet<u64>,
    top: u64,
}

impl Model {
    fn check(&self, seq: u64) -> bool {
        seq != 0 && !self.seen.contains(&seq) && (seq > self.top || self.top - seq < W)
    }

    fn update(&mut self, seq: u64) {
        self.seen.insert(seq);
        self.top = self.top.max(seq);
    }
}

/// How the next sequence number is chosen, relative to the highest so far.
#[derive(Debug, Clone)]
enum Step {
    Next(u64),
    Duplicate(usize),
    Back(u64),
    EdgeOfWindow(i64),
    Jump(u64),
    Absolute(u64),
}

fn step() -> impl Strategy<Value = (Step, bool)> {
    let s = prop_oneof![
        4 => (1u64..8).prop_map(Step::Next),
        2 => any::<usize>().prop_map(Step::Duplicate),
        2 => (0u64..3000).prop_map(Step::Back),
        2 => (-3i64..3).prop_map(Step::EdgeOfWindow),
        1 => (0u64..200_000).prop_map(Step::Jump),
        1 => prop_oneof![Just(0u64), Just(u64::MAX), Just(u64::MAX - W), any::<u64>(), 0u64..5000].prop_map(Step::Absolute),
    ];
    // The bool: whether the packet authenticates (a failure is checked but not recorded).
    (s, prop::bool::weighted(0.9))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn window_matches_the_reference_model(steps in prop::collection::vec(step(), 1..600)) {
        let mut w = ReplayWindow::new();
        let mut m = Model::default();
        let mut history: Vec<u64> = Vec::new();
        for (s, authentic) in steps {
            let top = m.top;
            let seq = match s {
                Step::Next(d) => top.saturating_add(d),
                Step::Duplicate(i) => if history.is_empty() { 1 } else { history[i % history.len()] },
                Step::Back(d) => top.saturating_sub(d),
                Step::EdgeOfWindow(d) => top.saturating_sub(W).saturating_add_signed(d),
                Step::Jump(d) => top.saturating_add(d.saturating_mul(d)),
                Step::Absolute(v) => v,
            };
            let expected = m.check(seq);
            prop_assert_eq!(w.check(seq), expected, "seq {} with top {}", seq, top);
            if expected && authentic {
                w.update(seq);
                m.update(seq);
                history.push(seq);
            }
            prop_assert_eq!(w.top(), m.top);
        }
        // Everything in the final window agrees with the model, number by number.
        let top = m.top;
        for seq in top.saturating_sub(W + 2)..=top.saturating_add(2) {
            prop_assert_eq!(w.check(seq), m.check(seq), "final sweep at {}", seq);
        }
    }

    /// RFC 4303 appendix A2.2, restated: the inferred number is the one with the received low half that lies
    /// in [top - W + 1, top - W + 1 + 2^32) (from 0 while the window has not filled).
    #[test]
    fn esn_inference_matches_its_definition(top in prop_oneof![0u64..10_000, any::<u64>().prop_map(|t| t >> 1)], low: u32) {
        let mut w = ReplayWindow::new();
        if top > 0 {
            w.update(top);
        }
        let base = top.saturating_sub(W - 1);
        let expected = base + (u64::from(low).wrapping_sub(base) & 0xffff_ffff);
        prop_assert_eq!(w.infer_esn(low), expected);
    }
}

#[test]
fn window_covers_2048_numbers() {
    let mut w = ReplayWindow::new();
    assert!(w.check_and_update(5000));
    for seq in 5000 - 2047..5000 {
        assert!(w.check_and_update(seq), "{seq}");
    }
    assert!(!w.check(5000 - 2048));
    for seq in 5000 - 2047..=5000 {
        assert!(!w.check(seq), "{seq} received");
    }
    // Sliding by one frees exactly one slot on the left and adds one on the right.
    assert!(w.check_and_update(5001));
    assert!(!w.check(5001 - 2048));
    assert!(!w.check(5001 - 2047), "still received");
}
