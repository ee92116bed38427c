//! hostsec: the command-line interface of hostsecd. It talks to the daemon's control socket (one JSON line per
//! request) and prints for people or, with `--json`, for scripts. Exit codes (SPEC §7): 0 success, 1 the request
//! failed (e.g. a negotiation), 2 invalid input, 3 daemon not reachable.

mod print;

use hostsec_proto::control::{Outcome, Request, Response};
use hostsec_proto::policy::{FsFiles, Policy};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_SOCKET: &str = "/run/hostsec/control.sock";

const USAGE: &str = "usage: hostsec [--socket PATH] [--json] VERB
verbs:
  status                              daemon status
  sas                                 Main Mode and Quick Mode SAs
  stats                               counters (received, dropped by reason, refusals)
  rules                               the rules in force
  rule explain --peer ADDR [--proto P] [--port N]
                                      which rule applies to that traffic, why, and which others lost
  rule test NAME --peer ADDR          negotiate with the peer under the rule and report the verdict
  initiate RULE [--peer ADDR]         negotiate a rule's SAs now
  terminate RULE | --peer ADDR        delete SAs (the peer is told)
  reload                              re-read the daemon's config file
  certs                               certificates of the rules in force: subject, issuer, key, expiry,
                                      whether each chain validates now against the rule's trusted CAs,
                                      the trusted CAs and the CRLs. Exit 1 if a chain does not validate or a
                                      host, intermediate or trusted CA certificate is expired or not yet
                                      valid (an overdue CRL is only shown); 0 otherwise, also with no
                                      certificate rule
  config check FILE                   validate a config file without a daemon";

struct Cli {
    socket: PathBuf,
    json: bool,
    words: Vec<String>,
}

fn parse_cli() -> Result<Cli, String> {
    let mut socket =
        std::env::var_os("HOSTSEC_SOCKET").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let mut json = false;
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => socket = PathBuf::from(args.next().ok_or("--socket needs a path")?),
            "--json" => json = true,
            "--help" | "-h" | "help" => return Err(String::new()),
            "--version" => {
                println!("hostsec {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            _ => words.push(a),
        }
    }
    Ok(Cli { socket, json, words })
}

/// Takes `--name VALUE` out of `words`.
fn take_opt(words: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    match words.iter().position(|w| w == name) {
        None => Ok(None),
        Some(i) => {
            if i + 1 >= words.len() {
                return Err(format!("{name} needs a value"));
            }
            let v = words.remove(i + 1);
            words.remove(i);
            Ok(Some(v))
        }
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| format!("'{s}' is not an IP address"))
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = match parse_cli() {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("hostsec: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hostsec: {e}");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// A command-line tool is read through pipes (`hostsec sas | head`): when the reader goes away the process
/// should end quietly as other Unix tools do, not panic in `println!`. Rust ignores SIGPIPE by default.
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to its default before any thread starts has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(mut cli: Cli) -> Result<ExitCode, String> {
    let peer = take_opt(&mut cli.words, "--peer")?.map(|p| parse_ip(&p)).transpose()?;
    let proto = take_opt(&mut cli.words, "--proto")?
        .map(|p| hostsec_proto::policy::selector::parse_protocol(&p).map_err(|e| format!("--proto: {e}")))
        .transpose()?;
    let port = take_opt(&mut cli.words, "--port")?
        .map(|p| p.parse::<u16>().map_err(|_| format!("--port: '{p}' is not a port number (0 to 65535)")))
        .transpose()?;
    let words: Vec<&str> = cli.words.iter().map(String::as_str).collect();
    let request = match words.as_slice() {
        ["status"] => Request::Status,
        ["sas"] => Request::Sas,
        ["stats"] => Request::Stats,
        ["rules"] => Request::Rules,
        ["rule", "explain"] => Request::RuleExplain {
            peer: peer.ok_or("rule explain needs --peer ADDR")?,
            protocol: proto,
            port: match port {
                Some(_) if proto.is_some_and(|p| !hostsec_proto::policy::selector::has_ports(p)) => {
                    return Err("--port needs a protocol with ports (tcp, udp, sctp, udplite) or no --proto".into())
                }
                p => p,
            },
        },
        ["rule", "test", name] => {
            Request::RuleTest { rule: name.to_string(), peer: peer.ok_or("rule test needs --peer ADDR")? }
        }
        ["initiate", rule] => Request::Initiate { rule: rule.to_string(), peer },
        ["terminate", rule] => Request::Terminate { rule: Some(rule.to_string()), peer },
        ["terminate"] if peer.is_some() => Request::Terminate { rule: None, peer },
        ["reload"] => Request::Reload,
        ["certs"] => Request::Certs,
        ["config", "check", file] => return Ok(config_check(file, cli.json)),
        [] => return Err("no verb".into()),
        other => return Err(format!("unknown verb '{}'", other.join(" "))),
    };
    let response = match call(&cli.socket, &request) {
        Ok(r) => r,
        Err(e) => {
            if cli.json {
                println!("{}", serde_json::json!({ "outcome": "unreachable", "error": e }));
            } else {
                eprintln!("hostsec: {e}");
            }
            return Ok(ExitCode::from(3));
        }
    };
    Ok(match request {
        Request::Status => print::report(cli.json, &response, print::status),
        Request::Sas => print::report(cli.json, &response, print::sas),
        Request::Stats => print::report(cli.json, &response, print::stats),
        Request::Rules => print::report(cli.json, &response, print::rules),
        Request::RuleExplain { .. } => print::report(cli.json, &response, print::explain),
        Request::RuleTest { .. } => print::report(cli.json, &response, print::test_verdict),
        Request::Initiate { .. } => print::report(cli.json, &response, print::initiated),
        Request::Terminate { .. } => print::report(cli.json, &response, |d| println!("deleted {} SA(s)", d["deleted"])),
        Request::Reload => {
            print::report(cli.json, &response, |d| println!("reloaded {}", d["reloaded"].as_str().unwrap_or("")))
        }
        Request::Certs => {
            let code = print::report(cli.json, &response, print::certs);
            // A certificate that is about to break negotiations is a failure for monitoring scripts.
            if response.outcome == Outcome::Ok && response.data["all_valid"] == serde_json::Value::Bool(false) {
                ExitCode::from(1)
            } else {
                code
            }
        }
    })
}

/// Sends one request and reads one response.
fn call(socket: &PathBuf, request: &Request) -> Result<Response, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        format!("cannot reach hostsecd at {}: {e} (is it running? is --socket right?)", socket.display())
    })?;
    // Initiation waits for the negotiation, which gives up after about a minute of retransmissions.
    let _ = s.set_read_timeout(Some(Duration::from_secs(150)));
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(|e| format!("cannot talk to hostsecd: {e}"))?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).map_err(|e| format!("no answer from hostsecd: {e}"))?;
    serde_json::from_str(&answer).map_err(|e| format!("garbled answer from hostsecd: {e}"))
}

/// `hostsec config check FILE`: validates locally, exactly as the daemon would.
fn config_check(file: &str, json: bool) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("{file}: cannot read: {e}");
            if json {
                println!("{}", serde_json::json!({ "valid": false, "errors": [msg], "warnings": [] }));
            } else {
                eprintln!("{msg}");
            }
            return ExitCode::from(2);
        }
    };
    match Policy::from_toml(file, &text, &FsFiles) {
        Ok(p) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "rules": p.rules.len(), "errors": [], "warnings": p.warnings })
                );
            } else {
                for w in &p.warnings {
                    eprintln!("warning: {w}");
                }
                println!("{file}: valid, {} rule{}", p.rules.len(), if p.rules.len() == 1 { "" } else { "s" });
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            if json {
                println!("{}", serde_json::json!({ "valid": false, "errors": errors, "warnings": [] }));
            } else {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!("{file}: invalid ({} problem{})", errors.len(), if errors.len() == 1 { "" } else { "s" });
            }
            ExitCode::from(2)
        }
    }
}

/// The exit code of a response.
fn exit_code(r: &Response) -> ExitCode {
    match r.outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::from(1),
        Outcome::Invalid => ExitCode::from(2),
    }
}
