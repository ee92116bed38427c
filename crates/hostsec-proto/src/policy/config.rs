//! The config file (TOML, SPEC §7) to a validated [`Policy`]. Every problem is reported, not just the first,
//! and each names the file, the line, the rule and the field, and says what is allowed.

use super::address::{AddressSet, AddressSpec};
use super::duration::parse_duration;
use super::keyword::Keyword;
use super::selector::{has_ports, parse_protocol, protocol_name};
use super::{
    Action, Authentication, AutoStart, DefaultAction, Global, IdSpec, Keying, NatTraversal, Policy, PortRange, Rule,
};
use crate::crypto::{Secret, StrengthLevel};
use crate::pki::{dn_matches_text, CertAuth, CertError, HostCredentials, TrustStore};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{Document, Item, Table, Value};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The rule's name (or `#n` for an unnamed rule), when the problem is in a rule.
    pub rule: Option<String>,
    /// The field, e.g. `global.listen` or `psk_file`.
    pub field: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        f.write_str(": ")?;
        if let Some(r) = &self.rule {
            write!(f, "rule '{r}': ")?;
        }
        if let Some(k) = &self.field {
            write!(f, "field '{k}': ")?;
        }
        f.write_str(&self.message)
    }
}

/// Access to files that the config names (PSK files): the daemon and `hostsec config check` read the real
/// filesystem through [`FsFiles`]; tests supply their own.
pub trait ConfigFiles {
    /// Reads a secret file; refuses one that group or others may read.
    fn read_secret(&self, path: &Path) -> Result<Vec<u8>, String>;

    /// Reads a public file (certificates, CA certificates, CRLs). Implementations that serve only secrets
    /// (PSK-only tests) keep this default, which refuses.
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        Err(format!("cannot read '{}': no certificate files here", path.display()))
    }
}

/// [`ConfigFiles`] over the real filesystem.
pub struct FsFiles;

impl ConfigFiles for FsFiles {
    fn read_secret(&self, path: &Path) -> Result<Vec<u8>, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "'{}' is accessible by group or others (mode {mode:04o}); secrets must be private: chmod 600 '{}'",
                path.display(),
                path.display()
            ));
        }
        std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))
    }
}

const GLOBAL_KEYS: &[&str] = &[
    "listen",
    "minimum_strength",
    "default_action",
    "nat_traversal",
    "main_mode_lifetime",
    "quick_mode_lifetime",
    "quick_mode_lifetime_kb",
    "dpd_interval",
    "control_socket",
    "key_log",
    "ike_fragment_size",
    "half_open_main_modes",
    "half_open_main_modes_per_peer",
    "new_main_modes_per_second",
];

const RULE_KEYS: &[&str] = &[
    "name",
    "enabled",
    "remote",
    "local",
    "protocol",
    "local_ports",
    "remote_ports",
    "action",
    "authentication",
    "psk",
    "psk_file",
    "certificate",
    "private_key",
    "trusted_cas",
    "crls",
    "local_id",
    "remote_id",
    "keying",
    "minimum_strength",
    "nat_traversal",
    "auto",
    "pfs",
];

/// What to use instead of Kerberos or NTLM, which need a Windows domain (SPEC §4).
const DOMAINLESS: &str =
    "use \"certificate\" (TLS in AuthIP, certificates in IKEv1) or, with keying = \"authip\", \"anonymous\"";

/// The warning on every negotiating rule that runs AuthIP (issue 10): the AuthIP code is built from [MS-AIPS]
/// alone, so a rule that depends on it should say so where the administrator sees it.
const AUTHIP_EXPERIMENTAL: &str = "AuthIP is experimental — not yet verified against Windows";

struct Ctx {
    file: String,
    /// Byte offset of every line start, so that a span's line is a binary search (a config with 10,000 rules
    /// asks for about 100,000 lines).
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Ctx {
    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        let start = span?.start;
        Some(self.line_starts.partition_point(|s| *s <= start).max(1))
    }

    fn error(&mut self, line: Option<usize>, rule: Option<&str>, field: Option<&str>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            rule: rule.map(str::to_string),
            field: field.map(str::to_string),
            message: message.into(),
        });
    }

    fn warn(&mut self, line: Option<usize>, rule: Option<&str>, field: &str, message: impl fmt::Display) {
        let loc = line.map(|l| format!(":{l}")).unwrap_or_default();
        let r = rule.map(|r| format!("rule '{r}': ")).unwrap_or_default();
        self.warnings.push(format!("{}{loc}: {r}field '{field}': {message}", self.file));
    }
}

/// A value looked up for a rule: from the rule itself or inherited from `[defaults]`, with its line.
struct Field<'d> {
    value: &'d Value,
    line: Option<usize>,
}

pub(super) fn parse(file: &str, text: &str, files: &dyn ConfigFiles) -> Result<Policy, Vec<ConfigError>> {
    let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let mut cx = Ctx { file: file.to_string(), line_starts, errors: Vec::new(), warnings: Vec::new() };
    let doc = match Document::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let line = cx.line_of(e.span());
            cx.error(line, None, None, format!("not valid TOML: {}", e.message()));
            return Err(cx.errors);
        }
    };
    let root = doc.as_table();
    for (key, item) in root.iter() {
        if !matches!(key, "global" | "defaults" | "rule") {
            let line = cx.line_of(item.span().or_else(|| root.key(key).and_then(|k| k.span())));
            cx.error(line, None, Some(key), "unknown section; allowed: [global], [defaults], [[rule]]");
        }
    }

    let global = match root.get("global") {
        None => Global::default(),
        Some(Item::Table(t)) => parse_global(&mut cx, t),
        Some(other) => {
            let line = cx.line_of(other.span());
            cx.error(line, None, Some("global"), "must be a table: [global]");
            Global::default()
        }
    };

    let empty = Table::new();
    let defaults = match root.get("defaults") {
        None => &empty,
        Some(Item::Table(t)) => {
            check_keys(&mut cx, t, RULE_KEYS, None, "defaults.");
            if t.contains_key("name") {
                let line = cx.line_of(t.key("name").and_then(|k| k.span()));
                cx.error(line, None, Some("defaults.name"), "a name cannot be a default: every rule names itself");
            }
            t
        }
        Some(other) => {
            let line = cx.line_of(other.span());
            cx.error(line, None, Some("defaults"), "must be a table: [defaults]");
            &empty
        }
    };

    let mut rules = Vec::new();
    match root.get("rule") {
        None => cx.warnings.push(format!("{file}: no [[rule]]: IPsec is inactive until at least one rule exists")),
        Some(Item::ArrayOfTables(arr)) => {
            let mut names = HashSet::new();
            for (i, t) in arr.iter().enumerate() {
                if let Some(rule) = parse_rule(&mut cx, i, t, defaults, &global, files) {
                    if !names.insert(rule.name.clone()) {
                        cx.error(
                            Some(rule.line),
                            Some(&rule.name),
                            Some("name"),
                            "duplicate rule name; names must be unique",
                        );
                    }
                    rules.push(rule);
                }
            }
        }
        Some(other) => {
            let line = cx.line_of(other.span());
            cx.error(line, None, Some("rule"), "rules are written as [[rule]] tables");
        }
    }

    if cx.errors.is_empty() {
        let mut policy = Policy { source: file.to_string(), global, rules, warnings: cx.warnings };
        // Before the host's facts are known keywords cover nothing: verdicts about the rules that use them come
        // from `Policy::resolve`.
        let shadowed = policy.unresolved_shadow_warnings();
        policy.warnings.extend(shadowed);
        Ok(policy)
    } else {
        Err(cx.errors)
    }
}

fn check_keys(cx: &mut Ctx, t: &Table, allowed: &[&str], rule: Option<&str>, prefix: &str) {
    for (key, item) in t.iter() {
        if !allowed.contains(&key) {
            let line = cx.line_of(t.key(key).and_then(|k| k.span()).or_else(|| item.span()));
            cx.error(
                line,
                rule,
                Some(&format!("{prefix}{key}")),
                format!("unknown key; allowed: {}", allowed.join(", ")),
            );
        }
    }
}

fn value_line(cx: &Ctx, t: &Table, key: &str) -> Option<usize> {
    cx.line_of(t.get(key).and_then(|i| i.span()).or_else(|| t.key(key).and_then(|k| k.span())))
}

fn parse_global(cx: &mut Ctx, t: &Table) -> Global {
    check_keys(cx, t, GLOBAL_KEYS, None, "global.");
    let mut g = Global::default();
    for (key, item) in t.iter() {
        let line = value_line(cx, t, key);
        let field = format!("global.{key}");
        let Some(v) = item.as_value() else {
            if GLOBAL_KEYS.contains(&key) {
                cx.error(line, None, Some(&field), "must be a value, not a table");
            }
            continue;
        };
        let res: Result<(), String> = match key {
            "listen" => string_list(v).and_then(|l| {
                g.listen = l
                    .iter()
                    .map(|s| s.parse::<IpAddr>().map_err(|_| format!("'{s}' is not an IP address")))
                    .collect::<Result<_, _>>()?;
                Ok(())
            }),
            "minimum_strength" => str_of(v).and_then(|s| {
                g.minimum_strength = strength(s)?;
                Ok(())
            }),
            "default_action" => str_of(v).and_then(|s| {
                g.default_action = match s {
                    "bypass" => DefaultAction::Bypass,
                    "block" => DefaultAction::Block,
                    _ => return Err(format!("'{s}' is not allowed; use \"bypass\" or \"block\"")),
                };
                Ok(())
            }),
            "nat_traversal" => str_of(v).and_then(|s| {
                g.nat_traversal = nat(s)?;
                Ok(())
            }),
            "main_mode_lifetime" => {
                lifetime(v, 60, 2879 * 60, "1m to 2879m (Windows' range)").map(|d| g.main_mode_lifetime = d)
            }
            "quick_mode_lifetime" => {
                lifetime(v, 5 * 60, 2879 * 60, "5m to 2879m (Windows' range)").map(|d| g.quick_mode_lifetime = d)
            }
            "quick_mode_lifetime_kb" => match v.as_integer() {
                Some(n) if (20_480..=2_147_483_647).contains(&n) => {
                    g.quick_mode_lifetime_kb = n as u64;
                    Ok(())
                }
                _ => Err("must be an integer from 20480 to 2147483647 (Windows' range)".into()),
            },
            "dpd_interval" => str_of(v).and_then(|s| {
                let d = parse_duration(s)?;
                if d != Duration::ZERO && !(Duration::from_secs(5)..=Duration::from_secs(3600)).contains(&d) {
                    return Err(format!("'{s}' is out of range; allowed: \"0s\" (off) or 5s to 60m"));
                }
                g.dpd_interval = d;
                Ok(())
            }),
            "control_socket" => str_of(v).map(|s| g.control_socket = PathBuf::from(s)),
            "key_log" => str_of(v).map(|s| g.key_log = Some(PathBuf::from(s))),
            "ike_fragment_size" => match v.as_integer().map(u16::try_from) {
                Some(Ok(n)) if n == 0 || n >= 576 => {
                    g.ike_fragment_size = n;
                    Ok(())
                }
                _ => {
                    Err("must be 0 (576 bytes over IPv4, 1280 over IPv6) or an IP datagram size from 576 to 65535"
                        .into())
                }
            },
            "half_open_main_modes" => {
                bounded(v, 10, 100_000, "an integer from 10 to 100000").map(|n| g.half_open_main_modes = n)
            }
            "half_open_main_modes_per_peer" => {
                bounded(v, 1, 1000, "an integer from 1 to 1000").map(|n| g.half_open_main_modes_per_peer = n)
            }
            "new_main_modes_per_second" => {
                bounded(v, 1, 100_000, "an integer from 1 to 100000").map(|n| g.new_main_modes_per_second = n)
            }
            _ => Ok(()),
        };
        if let Err(m) = res {
            cx.error(line, None, Some(&field), m);
        }
    }
    if g.half_open_main_modes_per_peer > g.half_open_main_modes {
        let line = value_line(cx, t, "half_open_main_modes_per_peer");
        cx.error(
            line,
            None,
            Some("global.half_open_main_modes_per_peer"),
            format!(
                "{} is more than half_open_main_modes ({}); it must be at most that",
                g.half_open_main_modes_per_peer, g.half_open_main_modes
            ),
        );
    }
    if g.key_log.is_some() {
        let line = value_line(cx, t, "key_log");
        cx.warn(line, None, "global.key_log", "the key log writes IKE and ESP keys to disk so that captures can be decrypted: use it for troubleshooting only");
    }
    g
}

fn parse_rule(
    cx: &mut Ctx,
    index: usize,
    t: &Table,
    defaults: &Table,
    global: &Global,
    files: &dyn ConfigFiles,
) -> Option<Rule> {
    let header_line = cx.line_of(t.span()).or_else(|| t.iter().next().and_then(|(k, _)| value_line(cx, t, k)));
    let provisional = format!("#{}", index + 1);
    let errors_before = cx.errors.len();

    let get = |cx: &Ctx, key: &str| -> Option<Field<'_>> {
        if let Some(v) = t.get(key).and_then(Item::as_value) {
            return Some(Field { value: v, line: value_line(cx, t, key) });
        }
        defaults.get(key).and_then(Item::as_value).map(|v| Field { value: v, line: value_line(cx, defaults, key) })
    };
    let name = match get(cx, "name") {
        None => {
            cx.error(header_line, Some(&provisional), Some("name"), "missing; every rule needs a unique name");
            provisional.clone()
        }
        Some(f) => match f.value.as_str() {
            Some(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) => {
                s.to_string()
            }
            _ => {
                cx.error(
                    f.line,
                    Some(&provisional),
                    Some("name"),
                    "must be a non-empty string of letters, digits, '.', '_' and '-'",
                );
                provisional.clone()
            }
        },
    };
    let rn = Some(name.as_str());
    let line = header_line.unwrap_or(0);
    check_keys(cx, t, RULE_KEYS, rn, "");
    for key in RULE_KEYS {
        for tbl in [t, defaults] {
            if tbl.get(key).is_some_and(|item| item.as_value().is_none()) {
                let line = value_line(cx, tbl, key);
                cx.error(line, rn, Some(key), "must be a value, not a table");
            }
        }
    }

    macro_rules! field {
        ($key:expr, $default:expr, $parse:expr) => {{
            match get(cx, $key) {
                None => $default,
                Some(f) => {
                    let parsed: Result<_, String> = ($parse)(f.value);
                    match parsed {
                        Ok(v) => v,
                        Err(m) => {
                            cx.error(f.line, rn, Some($key), m);
                            $default
                        }
                    }
                }
            }
        }};
    }

    let enabled = field!("enabled", true, |v: &Value| v.as_bool().ok_or_else(|| "must be true or false".to_string()));
    let remote = match get(cx, "remote") {
        None => {
            cx.error(
                header_line,
                rn,
                Some("remote"),
                "missing; write remote = \"any\" or a list of addresses, ranges and subnets",
            );
            AddressSet::any()
        }
        Some(f) => address_set(f.value).unwrap_or_else(|m| {
            cx.error(f.line, rn, Some("remote"), m);
            AddressSet::any()
        }),
    };
    let local = field!("local", AddressSet::any(), address_set);
    let protocol = field!("protocol", None, |v: &Value| protocol(v).map(Some));
    let local_ports = field!("local_ports", Vec::new(), ports);
    let remote_ports = field!("remote_ports", Vec::new(), ports);
    let action = field!("action", Action::Require, |v: &Value| str_of(v).and_then(|s| match s {
        "require" => Ok(Action::Require),
        "request" => Ok(Action::Request),
        "bypass" => Ok(Action::Bypass),
        "block" => Ok(Action::Block),
        _ => Err(format!("'{s}' is not allowed; use \"require\", \"request\", \"bypass\" or \"block\"")),
    }));
    let authentication = field!("authentication", Authentication::Psk, |v: &Value| {
        str_of(v).and_then(|s| match s {
        "psk" => Ok(Authentication::Psk),
        "certificate" => Ok(Authentication::Certificate),
        "certificate-then-psk" => Ok(Authentication::CertificateThenPsk),
        "anonymous" => Ok(Authentication::Anonymous),
        // Recognised so that the refusal says why, rather than "not allowed" as for a typo.
        "kerberos" => Err(format!(
            "'{s}' needs a Windows domain (a KDC on a domain controller), which hostsec does not join; {DOMAINLESS}"
        )),
        "ntlm" => Err(format!(
            "'{s}' needs a Windows domain (a domain controller that checks the credentials), which hostsec does \
             not join; {DOMAINLESS}"
        )),
        _ => Err(format!(
            "'{s}' is not allowed; use \"psk\", \"certificate\", \"certificate-then-psk\" or \"anonymous\" (AuthIP only)"
        )),
    })
    });
    let keying = field!("keying", Keying::Ike, |v: &Value| str_of(v).and_then(|s| match s {
        "ike" => Ok(Keying::Ike),
        "authip" => Ok(Keying::AuthIp),
        _ => Err(format!("'{s}' is not allowed; use \"ike\" or \"authip\"")),
    }));
    let rule_strength = field!("minimum_strength", None, |v: &Value| str_of(v).and_then(strength).map(Some));
    let nat_traversal = field!("nat_traversal", global.nat_traversal, |v: &Value| str_of(v).and_then(nat));
    let auto = field!("auto", AutoStart::OnDemand, |v: &Value| str_of(v).and_then(|s| match s {
        "on-demand" => Ok(AutoStart::OnDemand),
        "start" => Ok(AutoStart::Start),
        "none" => Ok(AutoStart::None),
        _ => Err(format!("'{s}' is not allowed; use \"on-demand\", \"start\" or \"none\"")),
    }));
    let pfs = field!("pfs", false, |v: &Value| v.as_bool().ok_or_else(|| "must be true or false".to_string()));
    let local_id = field!("local_id", IdSpec::Auto, |v: &Value| str_of(v).and_then(|s| id_spec(s, false)));
    let remote_id = field!("remote_id", IdSpec::Auto, |v: &Value| str_of(v).and_then(|s| id_spec(s, true)));
    let path = |v: &Value| str_of(v).map(|s| Some(PathBuf::from(s)));
    let certificate = field!("certificate", None, path);
    let private_key = field!("private_key", None, path);
    let path_list = |v: &Value| string_list(v).map(|l| l.into_iter().map(PathBuf::from).collect::<Vec<_>>());
    let trusted_cas = field!("trusted_cas", Vec::new(), path_list);
    let crls = field!("crls", Vec::new(), path_list);

    // The pre-shared key: inline or from a private file, never both.
    let psk_inline = get(cx, "psk").map(|f| (f.line, f.value.as_str().map(str::to_string)));
    let psk_file = get(cx, "psk_file").map(|f| (f.line, f.value.as_str().map(str::to_string)));
    let psk = match (psk_inline, psk_file) {
        (Some((l, _)), Some(_)) => {
            cx.error(l, rn, Some("psk"), "set either psk or psk_file, not both");
            None
        }
        (Some((l, None)), None) => {
            cx.error(l, rn, Some("psk"), "must be a string");
            None
        }
        (Some((l, Some(s))), None) => psk_bytes(s.as_bytes()).map_err(|m| cx.error(l, rn, Some("psk"), m)).ok(),
        (None, Some((l, None))) => {
            cx.error(l, rn, Some("psk_file"), "must be a path string");
            None
        }
        (None, Some((l, Some(p)))) => match files.read_secret(Path::new(&p)) {
            Ok(bytes) => psk_bytes(&bytes).map_err(|m| cx.error(l, rn, Some("psk_file"), format!("'{p}': {m}"))).ok(),
            Err(m) => {
                cx.error(l, rn, Some("psk_file"), m);
                None
            }
        },
        (None, None) => None,
    };

    // Cross-field checks.
    let field_line = |cx: &Ctx, key: &str| get(cx, key).and_then(|f| f.line).or(header_line);
    let minimum_strength = match rule_strength {
        Some(level) if level < global.minimum_strength => {
            let l = field_line(cx, "minimum_strength");
            cx.error(
                l,
                rn,
                Some("minimum_strength"),
                format!(
                    "'{level}' is below the global level '{}'; a rule may raise the level, never lower it",
                    global.minimum_strength
                ),
            );
            global.minimum_strength
        }
        Some(level) => level,
        None => global.minimum_strength,
    };
    // A misspelt (or refused) action, authentication or keying is reported once: the checks that depend on it
    // would only guess from the default that stands in for it.
    let known = |cx: &Ctx, key: &str| !cx.errors[errors_before..].iter().any(|e| e.field.as_deref() == Some(key));
    let action_known = known(cx, "action");
    let auth_known = known(cx, "authentication");
    let keying_known = known(cx, "keying");
    let mut cert_auth = None;
    if action.negotiates() && action_known && auth_known {
        match authentication {
            Authentication::Psk
                if psk.is_none()
                    && !cx.errors[errors_before..]
                        .iter()
                        .any(|e| e.field.as_deref().is_some_and(|f| f.starts_with("psk"))) =>
            {
                cx.error(
                    header_line,
                    rn,
                    Some("psk"),
                    "authentication = \"psk\" needs a pre-shared key: set psk or psk_file",
                );
            }
            Authentication::Certificate | Authentication::CertificateThenPsk => {
                if authentication == Authentication::CertificateThenPsk
                    && psk.is_none()
                    && !cx.errors[errors_before..]
                        .iter()
                        .any(|e| e.field.as_deref().is_some_and(|f| f.starts_with("psk")))
                {
                    cx.error(
                        header_line,
                        rn,
                        Some("psk"),
                        "authentication = \"certificate-then-psk\" also needs a pre-shared key for the fallback: set psk or psk_file",
                    );
                }
                let lines = CertLines {
                    certificate: field_line(cx, "certificate"),
                    private_key: field_line(cx, "private_key"),
                    trusted_cas: field_line(cx, "trusted_cas"),
                    crls: field_line(cx, "crls"),
                    local_id: field_line(cx, "local_id"),
                };
                cert_auth = load_cert_auth(
                    cx,
                    files,
                    rn,
                    &lines,
                    CertFiles {
                        certificate: &certificate,
                        private_key: &private_key,
                        trusted_cas: &trusted_cas,
                        crls: &crls,
                    },
                    &local_id,
                );
            }
            Authentication::Anonymous if keying == Keying::Ike && keying_known => {
                let l = field_line(cx, "authentication");
                cx.error(
                    l,
                    rn,
                    Some("authentication"),
                    "\"anonymous\" exists only in AuthIP; set keying = \"authip\" or use psk/certificate",
                );
            }
            _ => {}
        }
        if keying == Keying::AuthIp {
            let l = field_line(cx, "keying");
            if authentication == Authentication::Psk {
                // AuthIP itself never runs for this rule, so the AuthIP warning below would mislead.
                cx.warn(l, rn, "keying", "AuthIP has no pre-shared key method: this rule negotiates IKEv1 with the PSK, as Windows' default keying does");
            } else {
                cx.warn(l, rn, "keying", AUTHIP_EXPERIMENTAL);
                if nat_traversal != NatTraversal::Off {
                    let l = field_line(cx, "nat_traversal");
                    cx.warn(
                        l,
                        rn,
                        "nat_traversal",
                        format!(
                            "AuthIP SAs do not cross NAT yet: '{}' applies only when this rule negotiates IKEv1; a \
                             peer behind a NAT needs keying = \"ike\"",
                            nat_traversal.name()
                        ),
                    );
                }
            }
        }
    }
    for (key, id) in [("local_id", &local_id), ("remote_id", &remote_id)] {
        if matches!(id, IdSpec::Dn(_)) && action.negotiates() && auth_known && authentication == Authentication::Psk {
            let l = field_line(cx, key);
            cx.error(
                l,
                rn,
                Some(key),
                "a dn: identity needs certificate authentication; with a pre-shared key use fqdn:… or ip:…",
            );
        }
    }
    for (key, list) in [("local_ports", &local_ports), ("remote_ports", &remote_ports)] {
        if !list.is_empty() && !protocol.is_some_and(has_ports) {
            let l = field_line(cx, key);
            let has = match protocol {
                Some(p) => format!("this rule's protocol is {}", protocol_name(p)),
                None => "this rule names no protocol".to_string(),
            };
            cx.error(
                l,
                rn,
                Some(key),
                format!("ports need protocol = \"tcp\", \"udp\", \"sctp\" or \"udplite\" ({has})"),
            );
        }
    }
    if auto == AutoStart::Start && action.negotiates() && remote.keywords().next().is_some() {
        let l = field_line(cx, "auto");
        cx.warn(
            l,
            rn,
            "auto",
            "\"start\" with a keyword in remote: the rule starts only if the keywords resolve to exactly one address",
        );
    } else if auto == AutoStart::Start && action.negotiates() && remote.single_host().is_none() {
        let l = field_line(cx, "auto");
        cx.error(
            l,
            rn,
            Some("auto"),
            "\"start\" needs a rule whose remote is exactly one address (the peer to start with)",
        );
    }
    if let Some(s) = psk.as_ref().filter(|s| s.len() < 16) {
        let l = field_line(cx, if get(cx, "psk").is_some() { "psk" } else { "psk_file" });
        cx.warn(l, rn, "psk", format!("the pre-shared key has only {} bytes; use at least 16 random bytes", s.len()));
    }

    if cx.errors.len() > errors_before {
        return None;
    }
    Some(Rule {
        name,
        line,
        enabled,
        remote,
        local,
        protocol,
        local_ports,
        remote_ports,
        action,
        authentication,
        psk,
        certificate,
        private_key,
        trusted_cas,
        crls,
        cert_auth,
        local_id,
        remote_id,
        keying,
        minimum_strength,
        nat_traversal,
        auto,
        pfs,
        main_mode_lifetime: global.main_mode_lifetime,
        quick_mode_lifetime: global.quick_mode_lifetime,
        quick_mode_lifetime_kb: global.quick_mode_lifetime_kb,
        offer_restriction: None,
    })
}

fn str_of(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| "must be a string".to_string())
}

fn string_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.value().clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| "must be a list of strings".to_string()))
            .collect(),
        _ => Err("must be a string or a list of strings".into()),
    }
}

fn strength(s: &str) -> Result<StrengthLevel, String> {
    StrengthLevel::from_name(s)
        .ok_or_else(|| format!("'{s}' is not a level; use \"standard\", \"high\" or \"highest\""))
}

fn nat(s: &str) -> Result<NatTraversal, String> {
    match s {
        "off" => Ok(NatTraversal::Off),
        "remote-behind-nat" => Ok(NatTraversal::RemoteBehindNat),
        "both-behind-nat" => Ok(NatTraversal::BothBehindNat),
        _ => Err(format!("'{s}' is not allowed; use \"off\", \"remote-behind-nat\" or \"both-behind-nat\"")),
    }
}

/// An integer setting within `min..=max`.
fn bounded(v: &Value, min: u32, max: u32, allowed: &str) -> Result<u32, String> {
    match v.as_integer().map(u32::try_from) {
        Some(Ok(n)) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be {allowed}")),
    }
}

fn lifetime(v: &Value, min_s: u64, max_s: u64, allowed: &str) -> Result<Duration, String> {
    let s = str_of(v)?;
    let d = parse_duration(s)?;
    if d.as_secs() < min_s || d.as_secs() > max_s {
        return Err(format!("'{s}' is out of range; allowed: {allowed}"));
    }
    Ok(d)
}

fn address_set(v: &Value) -> Result<AddressSet, String> {
    let list = string_list(v)?;
    if list.iter().any(|s| s.trim().eq_ignore_ascii_case("any")) {
        if list.len() > 1 {
            return Err("\"any\" cannot be combined with other addresses".into());
        }
        return Ok(AddressSet::any());
    }
    if list.is_empty() {
        return Err(format!(
            "is empty; write \"any\" or list addresses, ranges, subnets and keywords ({})",
            Keyword::allowed()
        ));
    }
    let specs = list.iter().map(|s| AddressSpec::parse(s)).collect::<Result<Vec<_>, _>>()?;
    Ok(AddressSet::from_specs(specs))
}

fn protocol(v: &Value) -> Result<u8, String> {
    if let Some(n) = v.as_integer() {
        return u8::try_from(n).map_err(|_| {
            format!("{n} is not a protocol number; allowed: 0-255 or a name (tcp, udp, icmp, icmpv6, sctp, udplite)")
        });
    }
    parse_protocol(str_of(v)?)
}

const PORTS_ALLOWED: &str = "a list of ports (\"631\", 0-65535) or port ranges (\"6000-6063\")";

fn ports(v: &Value) -> Result<Vec<PortRange>, String> {
    let item = |x: &Value| match x {
        Value::Integer(i) => Ok(i.value().to_string()),
        Value::String(s) => Ok(s.value().clone()),
        _ => Err(format!("must be {PORTS_ALLOWED}")),
    };
    let items: Vec<String> = match v {
        Value::Array(a) => a.iter().map(item).collect::<Result<_, _>>()?,
        Value::String(_) | Value::Integer(_) => vec![item(v)?],
        _ => return Err(format!("must be {PORTS_ALLOWED}")),
    };
    items
        .iter()
        .map(|s| {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            let bad = || format!("'{s}' is not a port or port range; allowed: {PORTS_ALLOWED}");
            let first: u16 = a.trim().parse().map_err(|_| bad())?;
            let last: u16 = b.trim().parse().map_err(|_| bad())?;
            if first > last {
                return Err(format!("port range '{s}' ends before it starts"));
            }
            Ok(PortRange { first, last })
        })
        .collect()
}

fn id_spec(s: &str, remote: bool) -> Result<IdSpec, String> {
    let allowed = if remote {
        "\"any\", \"dn:…\", \"fqdn:…\" or \"ip:…\""
    } else {
        "\"auto\", \"dn:…\", \"fqdn:…\" or \"ip:…\""
    };
    if (remote && s == "any") || (!remote && s == "auto") {
        return Ok(IdSpec::Auto);
    }
    match s.split_once(':') {
        Some(("dn", v)) if !v.is_empty() => Ok(IdSpec::Dn(v.to_string())),
        Some(("fqdn", v)) if !v.is_empty() && !v.contains(char::is_whitespace) => Ok(IdSpec::Fqdn(v.to_string())),
        Some(("ip", v)) => v.parse().map(IdSpec::Ip).map_err(|_| format!("'{v}' is not an IP address")),
        _ => Err(format!("'{s}' is not allowed; use {allowed}")),
    }
}

/// Where the certificate fields of a rule are written, for messages.
struct CertLines {
    certificate: Option<usize>,
    private_key: Option<usize>,
    trusted_cas: Option<usize>,
    crls: Option<usize>,
    local_id: Option<usize>,
}

/// The files a certificate rule names.
struct CertFiles<'a> {
    certificate: &'a Option<PathBuf>,
    private_key: &'a Option<PathBuf>,
    trusted_cas: &'a [PathBuf],
    crls: &'a [PathBuf],
}

/// Loads a certificate rule's credentials, trusted CAs and CRLs; every problem becomes an error on its field.
/// The private key is read as a secret (refused when group or others may read it) and its bytes are wiped.
fn load_cert_auth(
    cx: &mut Ctx,
    files: &dyn ConfigFiles,
    rn: Option<&str>,
    lines: &CertLines,
    paths: CertFiles<'_>,
    local_id: &IdSpec,
) -> Option<std::sync::Arc<CertAuth>> {
    let mut ok = true;
    let (Some(cert_path), Some(key_path)) = (paths.certificate, paths.private_key) else {
        for (field, missing) in
            [("certificate", paths.certificate.is_none()), ("private_key", paths.private_key.is_none())]
        {
            if missing {
                cx.error(
                    lines.certificate.or(lines.private_key),
                    rn,
                    Some(field),
                    format!("certificate authentication needs {field}"),
                );
            }
        }
        return None;
    };
    if paths.trusted_cas.is_empty() {
        cx.error(
            lines.trusted_cas,
            rn,
            Some("trusted_cas"),
            "certificate authentication needs at least one trusted CA file in trusted_cas",
        );
        ok = false;
    }
    let cert_bytes =
        files.read_file(cert_path).map_err(|m| cx.error(lines.certificate, rn, Some("certificate"), m)).ok();
    let key_bytes = files
        .read_secret(key_path)
        .map(zeroize::Zeroizing::new)
        .map_err(|m| cx.error(lines.private_key, rn, Some("private_key"), m))
        .ok();
    let host = match (cert_bytes, key_bytes) {
        (Some(c), Some(k)) => match HostCredentials::from_pem_or_der(&c, &k) {
            Ok(h) => Some(h),
            Err(e) => {
                let field = if matches!(e, CertError::PrivateKey(_)) { "private_key" } else { "certificate" };
                let line = if field == "private_key" { lines.private_key } else { lines.certificate };
                cx.error(line, rn, Some(field), format!("'{}' / '{}': {e}", cert_path.display(), key_path.display()));
                None
            }
        },
        _ => None,
    };
    let mut trust = TrustStore::new();
    for ca in paths.trusted_cas {
        match files.read_file(ca).and_then(|b| trust.add_cas(&b).map_err(|e| format!("'{}': {e}", ca.display()))) {
            Ok(_) => {}
            Err(m) => {
                cx.error(lines.trusted_cas, rn, Some("trusted_cas"), m);
                ok = false;
            }
        }
    }
    for crl in paths.crls {
        if let Err(m) =
            files.read_file(crl).and_then(|b| trust.add_crls(&b).map_err(|e| format!("'{}': {e}", crl.display())))
        {
            cx.error(lines.crls, rn, Some("crls"), m);
            ok = false;
        }
    }
    let host = host?;
    if let IdSpec::Dn(dn) = local_id {
        if !dn_matches_text(&host.cert.subject_der, dn) {
            cx.error(
                lines.local_id,
                rn,
                Some("local_id"),
                format!(
                    "dn:{dn} is not the subject of the certificate, '{}'; use local_id = \"auto\" to send it",
                    host.cert.subject_dn
                ),
            );
            ok = false;
        }
    }
    ok.then(|| std::sync::Arc::new(CertAuth { host, trust }))
}

/// A PSK from config text: `0x…` is hex (binary keys), anything else is taken as written (a trailing newline of
/// a file is dropped).
fn psk_bytes(raw: &[u8]) -> Result<Secret, String> {
    let mut raw = raw;
    while let [rest @ .., b'\n' | b'\r'] = raw {
        raw = rest;
    }
    if raw.is_empty() {
        return Err("the pre-shared key is empty".into());
    }
    if let Some(hexpart) = raw.strip_prefix(b"0x") {
        let bytes = hex::decode(hexpart).map_err(|_| "a key starting with 0x must be hexadecimal".to_string())?;
        if bytes.is_empty() {
            return Err("the pre-shared key is empty".into());
        }
        return Ok(Secret::new(bytes));
    }
    Ok(Secret::from_slice(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MemFiles(HashMap<&'static str, Result<Vec<u8>, String>>);
    impl ConfigFiles for MemFiles {
        fn read_secret(&self, path: &Path) -> Result<Vec<u8>, String> {
            self.0
                .get(path.to_str().unwrap())
                .cloned()
                .unwrap_or_else(|| Err(format!("cannot read '{}'", path.display())))
        }
    }

    fn files() -> MemFiles {
        MemFiles(HashMap::from([
            ("/etc/hostsec/site.psk", Ok(b"file secret 0123456789\n".to_vec())),
            (
                "/etc/hostsec/open.psk",
                Err("'/etc/hostsec/open.psk' is accessible by group or others (mode 0644)".into()),
            ),
        ]))
    }

    fn parse_ok(text: &str) -> Policy {
        Policy::from_toml("test.toml", text, &files()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn parse_err(text: &str) -> Vec<String> {
        Policy::from_toml("test.toml", text, &files()).unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn minimal_rule_with_defaults() {
        let p = parse_ok(
            r#"
[global]
listen = ["198.51.100.1"]
minimum_strength = "high"

[defaults]
psk_file = "/etc/hostsec/site.psk"

[[rule]]
name = "printers"
remote = ["10.20.1.10-10.20.1.20", "10.20.2.0/24"]
auto = "none"
"#,
        );
        let r = &p.rules[0];
        assert_eq!(r.name, "printers");
        assert_eq!(r.line, 9);
        assert_eq!(r.psk.as_ref().unwrap().expose(), b"file secret 0123456789");
        assert_eq!(r.minimum_strength, StrengthLevel::High);
        assert_eq!(r.action, Action::Require);
        assert_eq!(p.global.main_mode_lifetime, Duration::from_secs(28800));
        assert!(r.remote.contains("10.20.2.9".parse().unwrap()));
        assert_eq!(p.rule_for_peer("198.51.100.1".parse().unwrap(), "10.20.1.15".parse().unwrap()), Some(0));
        assert_eq!(p.rule_for_peer("198.51.100.1".parse().unwrap(), "10.20.3.1".parse().unwrap()), None);
    }

    #[test]
    fn admission_limits() {
        let rule = "[[rule]]\nname = \"a\"\nremote = \"192.0.2.1\"\npsk = \"x\"\n";
        let g = parse_ok(rule).global;
        assert_eq!(
            (g.half_open_main_modes, g.half_open_main_modes_per_peer, g.new_main_modes_per_second),
            (1000, 5, 100)
        );
        let p = parse_ok(&format!(
            "[global]\nhalf_open_main_modes = 10\nhalf_open_main_modes_per_peer = 10\nnew_main_modes_per_second = 100000\n{rule}"
        ));
        assert_eq!(p.global.half_open_main_modes, 10);
        assert_eq!(p.global.half_open_main_modes_per_peer, 10);
        assert_eq!(p.global.new_main_modes_per_second, 100_000);
        for (key, bad, allowed) in [
            ("half_open_main_modes", "9", "an integer from 10 to 100000"),
            ("half_open_main_modes", "100001", "an integer from 10 to 100000"),
            ("half_open_main_modes_per_peer", "0", "an integer from 1 to 1000"),
            ("half_open_main_modes_per_peer", "\"5\"", "an integer from 1 to 1000"),
            ("new_main_modes_per_second", "0", "an integer from 1 to 100000"),
            ("new_main_modes_per_second", "-1", "an integer from 1 to 100000"),
        ] {
            let all = parse_err(&format!("[global]\n{key} = {bad}\n{rule}")).join("\n");
            assert!(all.contains(&format!("test.toml:2: field 'global.{key}': must be {allowed}")), "{all}");
        }
        let all =
            parse_err(&format!("[global]\nhalf_open_main_modes = 20\nhalf_open_main_modes_per_peer = 21\n{rule}"))
                .join("\n");
        assert!(
            all.contains(
                "test.toml:3: field 'global.half_open_main_modes_per_peer': 21 is more than half_open_main_modes (20)"
            ),
            "{all}"
        );
    }

    #[test]
    fn ike_fragment_size() {
        let rule = "[[rule]]\nname = \"a\"\nremote = \"192.0.2.1\"\npsk = \"x\"\n";
        assert_eq!(parse_ok(rule).global.ike_fragment_size, 0);
        for ok in [0u16, 576, 1280, 65535] {
            let p = parse_ok(&format!("[global]\nike_fragment_size = {ok}\n{rule}"));
            assert_eq!(p.global.ike_fragment_size, ok);
        }
        for bad in ["1", "575", "65536", "-1", "\"1280\"", "1280.0"] {
            let all = parse_err(&format!("[global]\nike_fragment_size = {bad}\n{rule}")).join("\n");
            assert!(
                all.contains("test.toml:2: field 'global.ike_fragment_size': must be 0 (576 bytes over IPv4, 1280 over IPv6) or an IP datagram size from 576 to 65535"),
                "{bad}: {all}"
            );
        }
    }

    #[test]
    fn errors_name_file_line_rule_field_and_what_is_allowed() {
        let errs = parse_err(
            r#"[global]
minimum_strength = "high"
colour = "blue"

[[rule]]
name = "a"
remote = ["10.0.0.1/8"]
psk = "x"
action = "allow"
minimum_strength = "standard"
"#,
        );
        let all = errs.join("\n");
        assert!(all.contains("test.toml:3: field 'global.colour': unknown key; allowed: listen"), "{all}");
        assert!(all.contains("test.toml:7: rule 'a': field 'remote': subnet '10.0.0.1/8' has host bits set"), "{all}");
        assert!(
            all.contains("test.toml:9: rule 'a': field 'action': 'allow' is not allowed; use \"require\""),
            "{all}"
        );
        assert!(
            all.contains(
                "test.toml:10: rule 'a': field 'minimum_strength': 'standard' is below the global level 'high'"
            ),
            "{all}"
        );
    }

    #[test]
    fn psk_rules() {
        let both = parse_err(
            "[[rule]]\nname = \"a\"\nremote = \"any\"\npsk = \"abc\"\npsk_file = \"/etc/hostsec/site.psk\"\n",
        );
        assert!(both[0].contains("either psk or psk_file"), "{both:?}");
        let open = parse_err("[[rule]]\nname = \"a\"\nremote = \"any\"\npsk_file = \"/etc/hostsec/open.psk\"\n");
        assert!(
            open[0].contains("test.toml:4: rule 'a': field 'psk_file':") && open[0].contains("group or others"),
            "{open:?}"
        );
        let none = parse_err("[[rule]]\nname = \"a\"\nremote = \"any\"\n");
        assert!(none[0].contains("needs a pre-shared key"), "{none:?}");
        let hexkey = parse_ok("[[rule]]\nname = \"a\"\nremote = \"any\"\npsk = \"0x00ff10\"\n");
        assert_eq!(hexkey.rules[0].psk.as_ref().unwrap().expose(), &[0, 0xff, 0x10]);
        assert!(hexkey.warnings.iter().any(|w| w.contains("only 3 bytes")));
        let bypass = parse_ok("[[rule]]\nname = \"dns\"\nremote = \"192.0.2.53\"\naction = \"bypass\"\n");
        assert!(bypass.rules[0].psk.is_none());
    }

    #[test]
    fn duplicate_names_and_bad_toml() {
        let dup = parse_err("[[rule]]\nname = \"a\"\nremote = \"any\"\npsk = \"k\"\n[[rule]]\nname = \"a\"\nremote = \"any\"\npsk = \"k\"\n");
        assert!(dup.iter().any(|e| e.contains("test.toml:5: rule 'a': field 'name': duplicate")), "{dup:?}");
        let bad = parse_err("[global\n");
        assert!(bad[0].starts_with("test.toml:1: not valid TOML"), "{bad:?}");
    }

    #[test]
    fn precedence_most_specific_then_block() {
        let p = parse_ok(
            r#"
[defaults]
psk = "0123456789abcdef"
[[rule]]
name = "net"
remote = "198.51.100.0/24"
[[rule]]
name = "host"
remote = "198.51.100.7"
[[rule]]
name = "host-block"
remote = "198.51.100.7"
action = "block"
"#,
        );
        let l: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(p.governing_rule(l, "198.51.100.7".parse().unwrap()), Some(2));
        assert_eq!(p.rule_for_peer(l, "198.51.100.7".parse().unwrap()), None);
        assert_eq!(p.rule_for_peer(l, "198.51.100.8".parse().unwrap()), Some(0));
    }
}
