//! The per-packet path does not touch the heap: seal and open (through the SAs and through the tables), their
//! refusals included. A counting global allocator sees every Rust allocation in this test binary; aws-lc's own
//! C allocations are invisible here, and the key objects are built once per SA precisely so that none is needed
//! per packet (AES-GCM contexts, AES key schedules and HMAC states are inline in the key objects).

mod esp_util;

use esp_util::*;
use hostsec_proto::esp::{InboundTable, OutboundTable, PacketFlow, MAX_OVERHEAD};
use hostsec_proto::ike::Selector;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls on the current thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn seal_and_open_do_not_allocate() {
    for t in transforms() {
        for (a, b, inner) in [
            ("192.0.2.1", "192.0.2.2", ipv4("192.0.2.1", "192.0.2.2", 6, &[1, 1, 1, 0], &payload(1380, 1))),
            ("2001:db8::1", "2001:db8::2", ipv6("2001:db8::1", "2001:db8::2", &[ext(0, 6)], 17, &payload(700, 2))),
        ] {
            let (mut o, mut i) = pair(t, a, b);
            let mut sealed = vec![0u8; inner.len() + MAX_OVERHEAD];
            let mut opened = vec![0u8; inner.len() + MAX_OVERHEAD];
            let mut bad = vec![0u8; inner.len() + MAX_OVERHEAD];
            let now = Instant::now();
            let n = allocations_during(|| {
                for _ in 0..50 {
                    let len = o.seal(now, &inner, &mut sealed).unwrap().packet.len();
                    let back = i.open(now, &sealed[..len], &mut opened).unwrap();
                    assert_eq!(back.packet.len(), inner.len());
                    // Refusals: a replay, and a forgery.
                    assert!(i.open(now, &sealed[..len], &mut opened).is_err());
                    bad[..len].copy_from_slice(&sealed[..len]);
                    bad[len - 1] ^= 1;
                    assert!(i.open(now, &bad[..len], &mut opened).is_err());
                    assert!(o.seal(now, &inner[..20], &mut sealed).is_err());
                }
            });
            assert_eq!(n, 0, "{}: heap allocations on the packet path", t.name());

            // Through the tables.
            let (o2, i2) = pair(t, a, b);
            let mut out_table = OutboundTable::new();
            let mut in_table = InboundTable::new();
            out_table.insert(o2);
            in_table.insert(i2);
            let n = allocations_during(|| {
                for _ in 0..50 {
                    let len = out_table.seal(now, &inner, &mut sealed).unwrap().packet.len();
                    assert!(in_table.open(now, &sealed[..len], &mut opened).is_ok());
                }
            });
            assert_eq!(n, 0, "{}: heap allocations through the tables", t.name());

            // Through a table with several SAs per peer, chosen by rule and selector, as the datapath does.
            let flow = PacketFlow::parse(&inner).unwrap();
            let (o3, i3) = pair(t, a, b);
            let (o4, _) = pair(t, a, b);
            let mut out_table = OutboundTable::new();
            let mut in_table = InboundTable::new();
            out_table.insert_for(o4, "other", Selector::ANY);
            let sel = Selector { protocol: flow.protocol, local_port: flow.src_port, remote_port: 0 };
            out_table.insert_for(o3, "r", sel);
            in_table.insert(i3);
            let n = allocations_during(|| {
                for _ in 0..50 {
                    let f = PacketFlow::parse(&inner).unwrap();
                    assert!(sel.covers_flow(&f.outbound()));
                    assert!(out_table.find(&f, Some("r")).is_some());
                    let len = out_table.seal_for(now, &inner, &mut sealed, Some("r")).unwrap().packet.len();
                    assert!(in_table.open(now, &sealed[..len], &mut opened).is_ok());
                }
            });
            assert_eq!(n, 0, "{}: heap allocations choosing SAs by selector", t.name());
        }
    }
}
