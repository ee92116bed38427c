//! The rule lookup at scale (SPEC §2: at least 10,000 rules with fast lookup): `Spd::lookup_flow` at 10, 1,000
//! and 10,000 rules (the goal: flat within 2×, well under 1 µs), a worst case of port rules sharing one remote
//! set, the config load (parse + validate + SPD build) of 10,000 rules with 100,000 address entries (goal:
//! under 1 s), and the memory the built Policy and Spd hold, counted by a counting allocator and seen in
//! `/proc/self/statm`.
//!
//! Run: `cargo bench -p hostsec-proto --bench spd -- --warm-up-time 1 --measurement-time 3`.

#[path = "../tests/policy_util/mod.rs"]
mod policy_util;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use hostsec_proto::policy::{Flow, Policy, Spd};
use policy_util::{hit_flows, large_config, resident_bytes, MemFiles};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes live and the peak, so that the memory of a built policy is
/// measured exactly rather than through the allocator's retained pages.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator, whose contract the caller meets.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn load(text: &str) -> (Policy, Spd) {
    let policy = Policy::from_toml("bench.toml", text, &MemFiles::standard()).expect("generated config is valid");
    let spd = Spd::build(&policy);
    (policy, spd)
}

/// A worst case for the candidate lists: `n` rules on the same remote set that differ only by their tcp port,
/// so that every flow towards these peers scans the list.
fn port_rules_config(n: usize) -> String {
    let mut t = String::from("[defaults]\npsk = \"bench-psk-0123456789abcdef\"\nauto = \"none\"\n");
    for i in 0..n {
        let _ = write!(
            t,
            "[[rule]]\nname = \"p{i}\"\nremote = \"10.0.0.0/8\"\nprotocol = \"tcp\"\nlocal_ports = [\"{}\"]\n",
            1000 + i
        );
    }
    t.push_str("[[rule]]\nname = \"all\"\nremote = \"10.0.0.0/8\"\n");
    t
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("spd_lookup_flow");
    let mut flows = Vec::new();
    for rules in [10usize, 1_000, 10_000] {
        let (policy, spd) = load(&large_config(rules, 10));
        flows = hit_flows(&policy, 4096, 99);
        let hits = flows.iter().filter(|f| spd.lookup_flow(&policy, f).is_some()).count();
        eprintln!("{rules} rules: {hits} of {} probe flows match a rule; {:?}", flows.len(), spd.stats());
        g.bench_with_input(BenchmarkId::from_parameter(rules), &rules, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(spd.lookup_flow(&policy, black_box(&flows[i])))
            })
        });
    }
    // The linear reference at 10,000 rules (the same flows), for scale.
    let (policy, _) = load(&large_config(10_000, 10));
    g.bench_function("linear_scan_10000", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(policy.governing_rule_flow(black_box(&flows[i])))
        })
    });
    for n in [100usize, 1_000] {
        let (policy, spd) = load(&port_rules_config(n));
        let local: IpAddr = "192.0.2.1".parse().expect("literal");
        let remote: IpAddr = "10.1.2.3".parse().expect("literal");
        let miss = Flow::with_ports(local, remote, 6, 443, 40000);
        g.bench_function(format!("same_remote_{n}_port_rules_miss"), |b| {
            b.iter(|| black_box(spd.lookup_flow(&policy, black_box(&miss))))
        });
    }
    g.finish();
}

fn config_load(c: &mut Criterion) {
    let text = large_config(10_000, 10);
    let mut g = c.benchmark_group("config_load");
    g.sample_size(10);
    g.bench_function("10000_rules_100000_entries", |b| b.iter(|| black_box(load(black_box(&text)))));
    // The SPD alone (what a reload or a keyword re-resolution rebuilds).
    let (policy, _) = load(&text);
    g.bench_function("spd_build_only", |b| b.iter(|| black_box(Spd::build(black_box(&policy)))));
    drop(policy);
    g.finish();

    // Memory: what the built Policy and Spd keep (the TOML document is gone by then), and the peak of a load.
    let (live0, rss0) = (LIVE.load(Ordering::Relaxed), resident_bytes());
    PEAK.store(live0, Ordering::Relaxed);
    let start = Instant::now();
    let (policy, spd) = load(&text);
    let took = start.elapsed();
    let (live1, peak, rss1) = (LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed), resident_bytes());
    let entries: usize = policy.rules.iter().map(|r| r.remote.specs().len() + r.local.specs().len()).sum();
    let stats = spd.stats();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "load: {} rules, {entries} address entries, {:.1} MiB of TOML in {took:?}\n\
         memory: Policy + Spd hold {:.1} MiB live (Spd {:.1} MiB: {} + {} segments, {} distinct lists, {} pool \
         entries, longest list {}); peak during load {:.1} MiB; resident grew {:.1} MiB",
        policy.rules.len(),
        text.len() as f64 / (1024.0 * 1024.0),
        mib(live1.saturating_sub(live0)),
        mib(stats.heap_bytes),
        stats.v4_segments,
        stats.v6_segments,
        stats.lists,
        stats.pool_entries,
        stats.longest_list,
        mib(peak.saturating_sub(live0)),
        mib(rss1.saturating_sub(rss0)),
    );
    black_box((policy, spd));
}

criterion_group!(benches, lookups, config_load);
criterion_main!(benches);
