//! Per-SA counters, shared between the datapath thread that owns the SA (the only writer) and the control
//! plane (`hostsec sas`, `hostsec stats`), which reads them at any time without a lock.

use super::DropReason;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Traffic and drop counters of one SA (or of a table, for drops that belong to no SA). Shared as
/// `Arc<SaCounters>` between the SA (the only writer of `bytes` and `packets`: give every SA counters of its
/// own) and the control plane, which reads them with [`SaCounters::snapshot`]. Relaxed atomics: a counter is a
/// statistic, it orders nothing.
pub struct SaCounters {
    bytes: AtomicU64,
    packets: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

impl SaCounters {
    /// All counters at zero.
    pub fn new() -> Self {
        SaCounters {
            bytes: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// ESP payload bytes protected (sealed, or authenticated and decrypted) under the SA: the bytes that
    /// count against its byte lifetime (RFC 4301 §4.4.2.1), without ESP header, padding and ICV.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Packets sealed, or authenticated and decrypted (including those then refused for their contents:
    /// tunnel mode, dummy), under the SA.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Drops for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Publishes the running totals of the SA that owns these counters. The SA keeps the totals itself and is
    /// their only writer, so plain stores suffice: no read-modify-write (a locked instruction) per packet.
    #[inline]
    pub(crate) fn publish(&self, bytes: u64, packets: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
        self.packets.store(packets, Ordering::Relaxed);
    }

    /// Counts one drop. Public so that the daemon can count drops it decides itself (e.g.
    /// [`DropReason::NoSa`] under a `require` rule) in the same place.
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(c) = self.drops.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A copy of every counter (each read on its own: the copy is not atomic as a whole, which statistics do
    /// not need).
    pub fn snapshot(&self) -> CounterSnapshot {
        let drops = DropReason::ALL.iter().map(|&r| (r, self.drops(r))).filter(|&(_, n)| n > 0).collect();
        CounterSnapshot { bytes: self.bytes(), packets: self.packets(), drops }
    }
}

impl Default for SaCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SaCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// The counters of an SA at one moment, for the CLI and the JSON control protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CounterSnapshot {
    /// Payload bytes (see [`SaCounters::bytes`]).
    pub bytes: u64,
    /// Packets (see [`SaCounters::packets`]).
    pub packets: u64,
    /// Drops by reason; reasons with no drop are left out.
    pub drops: BTreeMap<DropReason, u64>,
}

impl CounterSnapshot {
    /// Drops for `reason`.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops.get(&reason).copied().unwrap_or(0)
    }

    /// All drops, every reason together.
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// Adds `other` to this snapshot (for totals over several SAs or threads).
    pub fn add(&mut self, other: &CounterSnapshot) {
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.packets = self.packets.saturating_add(other.packets);
        for (&r, &n) in &other.drops {
            let e = self.drops.entry(r).or_insert(0);
            *e = e.saturating_add(n);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_and_snapshots_across_threads() {
        let c = Arc::new(SaCounters::new());
        let writer = {
            let c = c.clone();
            std::thread::spawn(move || {
                for n in 1..=1000 {
                    c.publish(100 * n, n);
                }
                c.count_drop(DropReason::Replayed);
            })
        };
        assert!(writer.join().is_ok());
        let s = c.snapshot();
        assert_eq!((s.bytes, s.packets), (100_000, 1000));
        assert_eq!(s.drops_for(DropReason::Replayed), 1);
        assert_eq!(s.drops.len(), 1, "zero counters are left out");
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json, r#"{"bytes":100000,"packets":1000,"drops":{"replayed":1}}"#);
        let back: Result<CounterSnapshot, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(s.clone()));
        let mut total = s.clone();
        total.add(&s);
        assert_eq!((total.packets, total.total_drops()), (2000, 2));
    }
}
