//! hostsecd: the hostsec daemon. It validates the config before touching the host, binds IKE's UDP port on the
//! configured addresses, runs the sans-IO IKE engine of `hostsec-proto` in a loop, and answers the CLI on a
//! Unix control socket. Exit codes: 0 after SIGTERM, 2 for an invalid config, 1 for any other start failure.

mod control;
mod daemon;
mod datapath;
pub mod host;
mod keylog;
mod netaddr;
mod plan;
mod sockets;

use hostsec_proto::policy::{FsFiles, Policy};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: hostsecd --config FILE [--foreground] [--log-level error|warn|info|debug|trace] [--no-datapath]";

/// Command-line options.
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// Stay attached to the terminal instead of detaching.
    pub foreground: bool,
    /// Log filter.
    pub log_level: String,
    /// Run the ESP datapath (TUN, routes, firewall); off for IKE-only operation.
    pub datapath: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mut config, mut foreground, mut log_level, mut datapath) = (None, false, "info".to_string(), true);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?)),
            "--foreground" | "-f" => foreground = true,
            "--no-datapath" => datapath = false,
            "--log-level" => log_level = args.next().ok_or("--log-level needs a level")?,
            "--help" | "-h" => return Err(String::new()),
            "--version" => {
                println!("hostsecd {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
        return Err(format!("--log-level '{log_level}' is not one of error, warn, info, debug, trace"));
    }
    Ok(Options { config: config.ok_or("--config FILE is required")?, foreground, log_level, datapath })
}

/// Reads and validates the config file; on failure returns every problem.
pub fn load_policy(path: &std::path::Path) -> Result<Policy, Vec<String>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{name}: cannot read: {e}")])?;
    let mut policy = Policy::from_toml(&name, &text, &FsFiles)
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    apply_offer_overrides(&mut policy).map_err(|e| vec![e])?;
    Ok(policy)
}

/// Benchmarks and interop tests need one particular algorithm on the wire, which the config cannot ask for (the
/// level alone decides). `HOSTSEC_OFFER_IKE` and `HOSTSEC_OFFER_ESP` (comma-separated names as `hostsec sas`
/// prints them) narrow what every rule offers as initiator; nothing outside a rule's level is ever offered, and a
/// warning says the override is on.
fn apply_offer_overrides(policy: &mut Policy) -> Result<(), String> {
    use hostsec_proto::crypto::{EspTransform, MainModeSuite};
    use hostsec_proto::policy::OfferRestriction;
    let ike = std::env::var("HOSTSEC_OFFER_IKE").ok();
    let esp = std::env::var("HOSTSEC_OFFER_ESP").ok();
    if ike.is_none() && esp.is_none() {
        return Ok(());
    }
    let parse_list = |v: &Option<String>, what: &str, f: &dyn Fn(&str) -> bool| -> Result<(), String> {
        for n in v.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
            if !f(n) {
                return Err(format!("{what}: '{n}' is not an algorithm name hostsec knows"));
            }
        }
        Ok(())
    };
    parse_list(&ike, "HOSTSEC_OFFER_IKE", &|n| MainModeSuite::from_name(n).is_some())?;
    parse_list(&esp, "HOSTSEC_OFFER_ESP", &|n| EspTransform::from_name(n).is_some())?;
    for r in &mut policy.rules {
        let main_mode = match &ike {
            Some(v) => v.split(',').filter_map(|n| MainModeSuite::from_name(n.trim())).collect(),
            None => r.minimum_strength.main_mode_suites(),
        };
        let esp_list = match &esp {
            Some(v) => v.split(',').filter_map(|n| EspTransform::from_name(n.trim())).collect(),
            None => r.minimum_strength.esp_transforms(),
        };
        r.offer_restriction = Some(OfferRestriction { main_mode, esp: esp_list });
    }
    policy.warnings.push(format!(
        "offers narrowed by the environment (HOSTSEC_OFFER_IKE={}, HOSTSEC_OFFER_ESP={}): for tests and benchmarks",
        ike.as_deref().unwrap_or("-"),
        esp.as_deref().unwrap_or("-")
    ));
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("hostsecd: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let policy = match load_policy(&opts.config) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "hostsecd: invalid config ({} problem{}); nothing was changed",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},hostsec_proto={}", opts.log_level, opts.log_level))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    for w in &policy.warnings {
        tracing::warn!("config: {w}");
    }
    // Detach only once the config is known to be good, so that errors reach the caller's terminal and exit code.
    let ready = if opts.foreground { None } else { Some(daemon::detach()) };
    let ready = match ready {
        None => None,
        Some(Ok(fd)) => Some(fd),
        Some(Err(e)) => {
            eprintln!("hostsecd: cannot detach: {e}");
            return ExitCode::from(1);
        }
    };
    match daemon::run(opts, policy, ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("hostsecd: {e}");
            ExitCode::from(1)
        }
    }
}
