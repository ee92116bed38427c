//! Worst cases of overlap for the SPD: thousands of nested or sliding ranges whose rules all have selectors, so
//! that no candidate list can stop early. Memory must stay linear in the number of rules and lookups must still
//! equal the linear scan.

mod policy_util;

use hostsec_proto::policy::{Flow, Policy, Spd};
use policy_util::{MemFiles, Rng};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

fn config(n: u32, nested: bool) -> String {
    let mut t = String::from("[defaults]\npsk = \"0123456789abcdef0123\"\nauto = \"none\"\n");
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    for i in 0..n {
        let (lo, hi) = if nested { (base + i, base + 2 * n - i) } else { (base + i, base + i + n) };
        let _ = write!(
            t,
            "[[rule]]\nname = \"r{i}\"\nremote = \"{}-{}\"\nlocal = \"192.0.2.{}\"\n",
            Ipv4Addr::from(lo),
            Ipv4Addr::from(hi),
            i % 200
        );
    }
    t
}

fn check(n: u32, nested: bool) {
    let text = config(n, nested);
    let p = Policy::from_toml("w.toml", &text, &MemFiles::standard()).unwrap_or_else(|e| panic!("{:?}", &e[..1]));
    let start = Instant::now();
    let spd = Spd::build(&p);
    let took = start.elapsed();
    let s = spd.stats();
    eprintln!("{n} {} rules: SPD built in {took:?}: {s:?}", if nested { "nested" } else { "sliding" });
    assert!(s.pool_entries <= 64 * (s.v4_segments + s.v6_segments).max(1), "{s:?}");
    assert!(s.heap_bytes < 64 * 1024 * 1024, "{s:?}");
    let mut rng = Rng::new(u64::from(n));
    for _ in 0..300 {
        let remote =
            IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + rng.below(u64::from(3 * n)) as u32));
        let local = IpAddr::V4(Ipv4Addr::new(192, 0, 2, rng.below(256) as u8));
        let f = Flow::new(local, remote, 6);
        assert_eq!(spd.lookup_flow(&p, &f), p.governing_rule_flow(&f), "{f:?}");
    }
}

#[test]
fn nested_ranges_with_selectors_stay_linear() {
    check(if cfg!(debug_assertions) { 2_000 } else { 10_000 }, true);
}

#[test]
fn sliding_ranges_with_selectors_stay_linear() {
    check(if cfg!(debug_assertions) { 2_000 } else { 10_000 }, false);
}
