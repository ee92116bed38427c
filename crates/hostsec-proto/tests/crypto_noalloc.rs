//! `prf`, `hash` and `verify_mac` run per packet-sized message and must not touch the heap (their outputs
//! live inline in `Digest`). A counting global allocator sees every Rust allocation in this test binary.
//! aws-lc's own C allocations are invisible here; `prf.rs` avoids them by using only inline HMAC and SHA
//! contexts (no `EVP_MD_CTX`).

use hostsec_proto::crypto::prf::{hash, prf, verify_mac};
use hostsec_proto::crypto::HashAlg;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

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
fn prf_hash_and_verify_mac_do_not_allocate() {
    let key = [0x11u8; 200];
    let data = [0x22u8; 600];
    for alg in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
        let n = allocations_during(|| {
            let a = prf(alg, &key, &[&data[..10], &data[10..]]);
            let b = hash(alg, &[&data, &key]);
            assert!(verify_mac(a.as_bytes(), a.as_bytes()));
            assert!(!verify_mac(a.as_bytes(), b.as_bytes()));
        });
        assert_eq!(n, 0, "{alg}: heap allocations");
    }
}
