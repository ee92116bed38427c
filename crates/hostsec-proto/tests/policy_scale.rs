//! SPEC §2: hostsec handles at least 10,000 rules with fast lookup. A generated config of 10,000 rules and
//! 100,000 address entries must parse, validate and flatten into the SPD in under a second (release build:
//! the debug build runs the same check with a looser bound), and lookups must agree with the linear scan.

mod policy_util;

use hostsec_proto::policy::{Policy, Spd};
use policy_util::{large_config, probe_flows, resident_bytes, MemFiles};
use std::time::{Duration, Instant};

#[test]
fn ten_thousand_rules_hundred_thousand_entries_load_fast() {
    let text = large_config(10_000, 10);
    let files = MemFiles::standard();
    let before = resident_bytes();
    let start = Instant::now();
    let policy =
        Policy::from_toml("large.toml", &text, &files).unwrap_or_else(|e| panic!("{:?}", &e[..e.len().min(5)]));
    let spd = Spd::build(&policy);
    let took = start.elapsed();
    let grown = resident_bytes().saturating_sub(before);
    let entries: usize = policy.rules.iter().map(|r| r.remote.specs().len() + r.local.specs().len()).sum();
    assert_eq!(policy.rules.len(), 10_000);
    assert!(entries >= 100_000, "{entries}");
    let stats = spd.stats();
    eprintln!("load of {} bytes, {entries} entries: {took:?}; SPD {stats:?}; resident +{grown} bytes", text.len());
    let limit = if cfg!(debug_assertions) { Duration::from_secs(20) } else { Duration::from_secs(1) };
    assert!(took < limit, "load took {took:?}");
    // Memory stays linear: a few list entries per segment at most.
    assert!(stats.pool_entries <= 4 * (stats.v4_segments + stats.v6_segments), "{stats:?}");

    for flow in probe_flows(2_000, 7) {
        assert_eq!(spd.lookup_flow(&policy, &flow), policy.governing_rule_flow(&flow), "{flow:?}");
    }
}
