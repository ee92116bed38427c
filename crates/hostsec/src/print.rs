//! Human output of each verb (JSON output is the daemon's answer as it is).

use crate::exit_code;
use hostsec_proto::control::{CertEntry, CertsView, Outcome, Response, RuleEntry, SasView, StatsView, StatusView};
use std::process::ExitCode;

/// Prints a response: its data as JSON, or through `human`; errors go to stderr.
pub fn report(json: bool, r: &Response, human: impl FnOnce(&serde_json::Value)) -> ExitCode {
    if json {
        if r.outcome == Outcome::Ok {
            println!("{}", serde_json::to_string_pretty(&r.data).unwrap_or_default());
        } else {
            println!("{}", serde_json::json!({ "outcome": r.outcome, "error": r.error }));
        }
    } else if r.outcome == Outcome::Ok {
        human(&r.data);
    } else {
        eprintln!("hostsec: {}", r.error.as_deref().unwrap_or("failed"));
    }
    exit_code(r)
}

fn parse<T: serde::de::DeserializeOwned>(d: &serde_json::Value) -> Option<T> {
    serde_json::from_value(d.clone()).ok()
}

/// `hostsec status`.
pub fn status(d: &serde_json::Value) {
    let Some(s) = parse::<StatusView>(d) else { return };
    println!("hostsecd {} up {}s, config {}", s.version, s.uptime_s, s.config);
    println!("  IKE on {}", s.listen.join(" "));
    println!("  {} rule{}", s.rules, if s.rules == 1 { "" } else { "s" });
    println!(
        "  Main Mode SAs: {} established, {} negotiating; Quick Mode SA pairs: {}",
        s.main_mode_established, s.main_mode_negotiating, s.quick_mode
    );
    if s.key_log {
        println!("  key log: ON (keys are written to disk)");
    }
    for w in &s.warnings {
        println!("  warning: {w}");
    }
}

/// `hostsec sas`.
pub fn sas(d: &serde_json::Value) {
    let Some(s) = parse::<SasView>(d) else { return };
    println!("Main Mode SAs ({}):", s.main_mode.len());
    for m in &s.main_mode {
        println!("  {}: {} <-> {}  {} ({})", m.rule, m.local, m.peer, m.state, m.role);
        let suite = match (&m.encryption, &m.hash, m.dh_group) {
            (Some(e), Some(h), Some(g)) => format!("{e}/{h}/group {g}"),
            (Some(e), Some(h), None) if m.keying == "authip" => format!("{e}/{h}/no DH"),
            _ => "not yet negotiated".to_string(),
        };
        if m.keying == "authip" {
            println!("    keying AuthIP (experimental — not yet verified against Windows)");
        }
        let mut line = format!("    {suite}, auth {}", m.auth.as_deref().unwrap_or("-"));
        if let Some(id) = &m.peer_id {
            line.push_str(&format!(", peer {id}"));
        }
        if let Some(l) = m.lifetime_left_s {
            line.push_str(&format!(", expires in {l}s"));
        }
        if m.nat != "none" {
            line.push_str(&format!(", NAT: {}", nat_words(&m.nat)));
        }
        if let Some(d) = &m.dpd {
            line.push_str(&format!(", DPD {} (peer heard {}s ago)", d.state, d.last_heard_s));
        }
        println!("{line}");
        if let Some(subject) = &m.peer_cert_subject {
            println!("    peer certificate '{subject}', issued by '{}'", m.peer_cert_issuer.as_deref().unwrap_or("?"));
        }
    }
    println!("Quick Mode SAs ({}):", s.quick_mode.len());
    for q in &s.quick_mode {
        println!(
            "  {}: {} <-> {}  ESP {} ({}), SPIs in {} out {}, traffic: {}",
            q.rule,
            q.local,
            q.peer,
            q.mode,
            q.role,
            q.spi_in,
            q.spi_out,
            traffic(q.protocol, q.local_port, q.remote_port)
        );
        let pfs = q.pfs_group.map_or("no PFS".to_string(), |g| format!("PFS group {g}"));
        println!(
            "    {}, integrity {}, {pfs}, expires in {}s or {} KB; {} bytes/{} packets in, {} bytes/{} packets out",
            q.encryption,
            q.integrity,
            q.lifetime_left_s,
            q.lifetime_kb,
            q.bytes_in,
            q.packets_in,
            q.bytes_out,
            q.packets_out
        );
        if q.encapsulation == "udp" {
            let port = |p: Option<u16>| p.map_or("?".to_string(), |p| p.to_string());
            let mut line = format!("    ESP in UDP {} <-> {}", port(q.encap_local_port), port(q.encap_remote_port));
            if let Some(a) = &q.peer_original_address {
                line.push_str(&format!(", peer's own address {a}"));
            }
            println!("{line}");
        }
    }
}

/// The `nat` of a Main Mode SA in words.
fn nat_words(nat: &str) -> &str {
    match nat {
        "local" => "this host is behind NAT",
        "remote" => "the peer is behind NAT",
        "both" => "both hosts are behind NAT",
        other => other,
    }
}

/// A Quick Mode SA's traffic selector in words (0 = any, as in the IKEv1 IDs).
fn traffic(protocol: u8, local_port: u16, remote_port: u16) -> String {
    if protocol == 0 {
        return "all".to_string();
    }
    let mut t = hostsec_proto::policy::selector::protocol_name(protocol);
    if local_port != 0 {
        t.push_str(&format!(", local port {local_port}"));
    }
    if remote_port != 0 {
        t.push_str(&format!(", remote port {remote_port}"));
    }
    t
}

/// `hostsec stats`.
pub fn stats(d: &serde_json::Value) {
    let Some(s) = parse::<StatsView>(d) else { return };
    let v = serde_json::to_value(&s.ike).unwrap_or_default();
    println!("IKE:");
    print_counters(&v, "  ");
    if let Some(esp) = &s.esp {
        println!("ESP datapath:");
        print_counters(&esp["datapath"], "  ");
        if esp["drops"].as_object().is_some_and(|m| !m.is_empty()) {
            println!("  ESP drops by reason:");
            print_counters(&esp["drops"], "    ");
        }
    }
    if let Some(u) = &s.udp_encap {
        println!("UDP 4500 (NAT traversal):");
        print_counters(u, "  ");
    }
    if let Some(a) = &s.authip {
        println!("AuthIP (experimental — not yet verified against Windows):");
        println!("  Main Mode SAs now: {}, half-open: {}", a.main_mode_sas, a.half_open);
        print_counters(&serde_json::to_value(&a.counters).unwrap_or_default(), "  ");
    }
    if let Some(fw) = &s.firewall {
        println!("Firewall (cleartext dropped):");
        if let Some(map) = fw.as_object() {
            for (k, c) in map {
                println!("  {:<24} {} packets, {} bytes", k.replace('_', " "), c["packets"], c["bytes"]);
            }
        }
    }
}

fn print_counters(v: &serde_json::Value, indent: &str) {
    if let Some(map) = v.as_object() {
        for (k, n) in map {
            println!("{indent}{:<24} {}", k.replace(['_', '-'], " "), n);
        }
    }
}

/// `hostsec rules`.
pub fn rules(d: &serde_json::Value) {
    let Some(rules) = parse::<Vec<RuleEntry>>(d) else { return };
    for r in &rules {
        println!(
            "{} (line {}){}: {} {} -> remote {} local {}",
            r.name,
            r.line,
            if r.enabled { "" } else { " [disabled]" },
            r.action,
            r.authentication,
            r.remote,
            r.local
        );
        println!(
            "    keying {}, minimum strength {}, NAT-T {}, auto {}, PFS {}",
            if r.keying == "authip" && r.authentication != "psk" {
                "authip (experimental — not yet verified against Windows)"
            } else if r.keying == "authip" {
                "authip (no pre-shared key in AuthIP: IKEv1 negotiates this rule)"
            } else {
                r.keying.as_str()
            },
            r.minimum_strength,
            r.nat_traversal,
            r.auto,
            if r.pfs { "required" } else { "optional" }
        );
    }
}

/// `hostsec rule explain`.
pub fn explain(d: &serde_json::Value) {
    let rule = d["rule"]["name"].as_str().map_or("(none)".to_string(), |n| format!("'{n}'"));
    println!(
        "{} from {} ({}): rule {rule}, action {}",
        d["peer"].as_str().unwrap_or("?"),
        d["local"].as_str().unwrap_or("?"),
        d["traffic"].as_str().unwrap_or("all traffic"),
        d["action"].as_str().unwrap_or("?")
    );
    println!("  why: {}", d["why"].as_str().unwrap_or(""));
    for c in d["also_matched"].as_array().into_iter().flatten() {
        println!(
            "  also matched, lost: '{}': {}",
            c["rule"]["name"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or("")
        );
    }
    for c in d["not_matching"].as_array().into_iter().flatten() {
        println!(
            "  covers the peer, not this traffic: '{}' ({}): {}",
            c["rule"]["name"].as_str().unwrap_or("?"),
            c["field"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or("")
        );
    }
}

/// `hostsec initiate`.
pub fn initiated(d: &serde_json::Value) {
    let integrity = match d["integrity"].as_str() {
        Some("none") | None => String::new(),
        Some(i) => format!("/{i}"),
    };
    let pfs = d["pfs_group"].as_u64().map_or("no PFS".to_string(), |g| format!("PFS group {g}"));
    println!(
        "established: {} <-> {}, ESP transport {}{integrity}, {pfs}, SPIs in {} out {}",
        d["local"].as_str().unwrap_or("?"),
        d["peer"].as_str().unwrap_or("?"),
        d["encryption"].as_str().unwrap_or("?"),
        d["spi_in"].as_str().unwrap_or("?"),
        d["spi_out"].as_str().unwrap_or("?")
    );
}

/// `hostsec rule test`.
pub fn test_verdict(d: &serde_json::Value) {
    println!(
        "PASS: rule '{}' negotiates with {}: {}",
        d["rule"].as_str().unwrap_or("?"),
        d["peer"].as_str().unwrap_or("the peer"),
        d["verdict"].as_str().unwrap_or("")
    );
    println!("(the test's SAs were deleted again; the SAs in use were not touched)");
}

/// `hostsec certs`: one block per credential, then its trusted CAs and CRLs.
pub fn certs(d: &serde_json::Value) {
    let Some(v) = parse::<CertsView>(d) else { return };
    if v.credentials.is_empty() {
        println!("no certificates: no rule uses certificate authentication");
        return;
    }
    println!("certificates as of {}", v.checked_at);
    for c in &v.credentials {
        let plural = if c.rules.len() == 1 { "" } else { "s" };
        println!();
        println!("credential of rule{plural} {}:", c.rules.join(", "));
        let host = &c.certificate;
        println!("  certificate   {}", host.subject);
        println!("    issuer      {}", host.issuer);
        println!("    serial      {}", host.serial);
        println!("    key         {}", c.key);
        println!("    validity    {} to {}: {}", host.not_before, host.not_after, expiry(host));
        if let Some(f) = &host.file {
            let key = c.private_key_file.as_deref().map_or(String::new(), |k| format!(", key {k}"));
            println!("    file        {f}{key}");
        }
        match &c.chain_error {
            None if c.chain_valid => println!("    chain       valid: {}", c.chain_path.join(" -> ")),
            reason => println!("    chain       INVALID: {}", reason.as_deref().unwrap_or("not validated")),
        }
        for i in &c.intermediates {
            println!("  intermediate  {} (issued by {}, {}): {}", i.subject, i.issuer, i.key, expiry(i));
        }
        for ca in &c.trusted_cas {
            println!("  trusted CA    {} ({}): {}", ca.subject, ca.key, expiry(ca));
        }
        if !c.trusted_ca_files.is_empty() {
            println!("    CA files    {}", c.trusted_ca_files.join(", "));
        }
        for crl in &c.crls {
            let next = match (&crl.next_update, crl.overdue) {
                (Some(n), true) => format!("next update {n} OVERDUE"),
                (Some(n), false) => format!("next update {n}"),
                (None, _) => "no next update".to_string(),
            };
            println!(
                "  CRL           issued by {}: {} revoked, updated {}, {next}",
                crl.issuer, crl.revoked, crl.this_update
            );
        }
    }
    if !v.all_valid {
        println!();
        println!("PROBLEM: a chain does not validate or a certificate is outside its validity (exit code 1)");
    }
}

/// When a certificate expires, in words.
fn expiry(c: &CertEntry) -> String {
    match c.validity.as_str() {
        "expired" => format!("EXPIRED on {}", c.not_after),
        "not-yet-valid" => format!("NOT YET VALID (from {})", c.not_before),
        _ => format!("expires in {} day{}", c.days_left, if c.days_left == 1 { "" } else { "s" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(validity: &str, days_left: i64) -> CertEntry {
        CertEntry {
            subject: "CN=h".into(),
            issuer: "CN=ca".into(),
            serial: "01".into(),
            key: "ECDSA P-256".into(),
            not_before: "2020-01-01 00:00:00 UTC".into(),
            not_after: "2030-01-01 00:00:00 UTC".into(),
            not_after_unix: 1_893_456_000,
            days_left,
            validity: validity.into(),
            expired: validity == "expired",
            file: None,
        }
    }

    #[test]
    fn expiry_in_words() {
        assert_eq!(expiry(&entry("valid", 30)), "expires in 30 days");
        assert_eq!(expiry(&entry("valid", 1)), "expires in 1 day");
        assert_eq!(expiry(&entry("expired", -3)), "EXPIRED on 2030-01-01 00:00:00 UTC");
        assert_eq!(expiry(&entry("not-yet-valid", 4000)), "NOT YET VALID (from 2020-01-01 00:00:00 UTC)");
    }
}
