//! `hostsec certs`: the certificate material of the rules in force, its expiry, and whether each host
//! certificate's chain validates now against its rule's trusted CAs. Built from a policy and a wall-clock time
//! given by the caller (the daemon), so that it reads no clock itself.

use crate::pki::{format_utc, CertAuth, CertError, CertInfo, CrlInfo};
use crate::policy::{Policy, Rule};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const DAY_SECS: i64 = 86_400;

/// The files a certificate rule loads: `certificate`, `trusted_cas`, `crls`.
type MaterialFiles<'a> = (&'a Option<PathBuf>, &'a [PathBuf], &'a [PathBuf]);

/// What `hostsec certs` shows: one entry per distinct set of certificate material.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertsView {
    /// When the chains were validated and the days counted, `YYYY-MM-DD HH:MM:SS UTC`.
    pub checked_at: String,
    /// Whether every host certificate's chain validates now and no loaded certificate (host, intermediate,
    /// trusted CA) is outside its validity period. The CLI exits 1 when this is false. True with no
    /// credentials at all.
    pub all_valid: bool,
    /// The credentials, in the order of the first rule that uses each.
    pub credentials: Vec<CredentialEntry>,
}

/// A host certificate with its key, the intermediates sent with it, the trusted CAs and the CRLs, shared by
/// the rules that load the same files with the same contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialEntry {
    /// The rules that authenticate with this material, in file order.
    pub rules: Vec<String>,
    /// This host's certificate (`file` is the rule's `certificate`).
    pub certificate: CertEntry,
    /// The private key file (`private_key`).
    pub private_key_file: Option<String>,
    /// The key type and size of the private key, e.g. `ECDSA P-256`, `RSA-3072`.
    pub key: String,
    /// The intermediate CA certificates that follow the host certificate in its file and are sent with it.
    pub intermediates: Vec<CertEntry>,
    /// Whether the host certificate's chain validates now against the rule's trusted CAs and CRLs.
    pub chain_valid: bool,
    /// Why it does not, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_error: Option<String>,
    /// The subjects from the host certificate up to the trusted CA, when the chain validates.
    #[serde(default)]
    pub chain_path: Vec<String>,
    /// The trusted CA certificates (`trusted_cas`).
    pub trusted_cas: Vec<CertEntry>,
    /// The files they came from.
    pub trusted_ca_files: Vec<String>,
    /// The loaded CRLs (`crls`).
    pub crls: Vec<CrlEntry>,
    /// The files they came from.
    pub crl_files: Vec<String>,
}

/// One certificate with its validity as of the view's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertEntry {
    /// Subject, `C=XX, O=Example, CN=host`.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Serial number, hex bytes separated by colons.
    pub serial: String,
    /// Key type and size, e.g. `ECDSA P-384`, `RSA-3072`.
    pub key: String,
    /// Start of validity, `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_before: String,
    /// End of validity, `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_after: String,
    /// End of validity, seconds since the Unix epoch (for scripts that compare dates).
    pub not_after_unix: i64,
    /// Whole days until `not_after`; negative once it has passed.
    pub days_left: i64,
    /// `valid`, `expired` or `not-yet-valid`.
    pub validity: String,
    /// Whether `not_after` has passed.
    pub expired: bool,
    /// The file it was loaded from, where it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// One CRL as loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlEntry {
    /// The CA that issued it.
    pub issuer: String,
    /// Its thisUpdate, `YYYY-MM-DD HH:MM:SS UTC`.
    pub this_update: String,
    /// Its nextUpdate, if it has one.
    pub next_update: Option<String>,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// Whether its nextUpdate has passed (it still counts, but the issuer has published a newer one).
    pub overdue: bool,
}

impl CertsView {
    /// The view of `policy`'s certificate material at wall-clock time `now`. Rules that load the same files with
    /// the same contents share one entry; each host certificate is validated once.
    pub fn from_policy(policy: &Policy, now: SystemTime) -> CertsView {
        let now_secs = unix_secs(now);
        let mut groups: Vec<(&Rule, &Arc<CertAuth>, Vec<String>)> = Vec::new();
        // The files a rule names, as a cheap key; `same_material` then confirms the contents are equal too.
        let mut by_files: HashMap<MaterialFiles<'_>, Vec<usize>> = HashMap::new();
        for rule in &policy.rules {
            let Some(auth) = &rule.cert_auth else { continue };
            let candidates =
                by_files.entry((&rule.certificate, rule.trusted_cas.as_slice(), rule.crls.as_slice())).or_default();
            let same = candidates
                .iter()
                .copied()
                .find(|&i| groups.get(i).is_some_and(|(_, a, _)| Arc::ptr_eq(a, auth) || a.same_material(auth)));
            match same.and_then(|i| groups.get_mut(i)) {
                Some(group) => group.2.push(rule.name.clone()),
                None => {
                    candidates.push(groups.len());
                    groups.push((rule, auth, vec![rule.name.clone()]));
                }
            }
        }
        let credentials: Vec<CredentialEntry> =
            groups.into_iter().map(|(rule, auth, rules)| credential(rule, auth, rules, now, now_secs)).collect();
        let all_valid = credentials.iter().all(|c| {
            c.chain_valid
                && std::iter::once(&c.certificate)
                    .chain(&c.intermediates)
                    .chain(&c.trusted_cas)
                    .all(|e| e.validity == VALID)
        });
        CertsView { checked_at: format_utc(now_secs), all_valid, credentials }
    }
}

const VALID: &str = "valid";

fn credential(rule: &Rule, auth: &CertAuth, rules: Vec<String>, now: SystemTime, now_secs: i64) -> CredentialEntry {
    let path_text = |p: &PathBuf| p.display().to_string();
    let mut certificate = cert_entry(&auth.host.cert, now_secs);
    certificate.file = rule.certificate.as_ref().map(path_text);
    let (chain_valid, chain_error, chain_path) = match auth.validate_own(now) {
        Ok(peer) => (true, None, peer.path),
        Err(e) => (false, Some(own_chain_error(e)), Vec::new()),
    };
    CredentialEntry {
        rules,
        certificate,
        private_key_file: rule.private_key.as_ref().map(path_text),
        key: auth.host.key_description(),
        intermediates: auth.host.chain.iter().map(|c| cert_entry(c, now_secs)).collect(),
        chain_valid,
        chain_error,
        chain_path,
        trusted_cas: auth.trust.cas().iter().map(|c| cert_entry(c, now_secs)).collect(),
        trusted_ca_files: rule.trusted_cas.iter().map(path_text).collect(),
        crls: auth.trust.crls().iter().map(|c| crl_entry(c, now_secs)).collect(),
        crl_files: rule.crls.iter().map(path_text).collect(),
    }
}

/// A refusal in words for this host's own chain: the validator's wording speaks of a peer that sends
/// intermediates, which here are the certificates after the host's own in its file.
fn own_chain_error(e: CertError) -> String {
    match e {
        CertError::UnknownIssuer { subject, issuer } => format!(
            "certificate '{subject}' is issued by '{issuer}', which is not among this rule's trusted CAs \
             (trusted_cas) and not in the certificate file as an intermediate"
        ),
        other => other.to_string(),
    }
}

fn cert_entry(c: &CertInfo, now: i64) -> CertEntry {
    let validity = if now < c.not_before {
        "not-yet-valid"
    } else if now > c.not_after {
        "expired"
    } else {
        VALID
    };
    CertEntry {
        subject: c.subject_dn.clone(),
        issuer: c.issuer_dn.clone(),
        serial: c.serial.clone(),
        key: c.key.clone(),
        not_before: format_utc(c.not_before),
        not_after: format_utc(c.not_after),
        not_after_unix: c.not_after,
        days_left: c.not_after.saturating_sub(now).div_euclid(DAY_SECS),
        validity: validity.to_string(),
        expired: now > c.not_after,
        file: None,
    }
}

fn crl_entry(c: &CrlInfo, now: i64) -> CrlEntry {
    CrlEntry {
        issuer: c.issuer_dn.clone(),
        this_update: format_utc(c.this_update),
        next_update: c.next_update.map(format_utc),
        revoked: c.revoked,
        overdue: c.next_update.is_some_and(|t| now > t),
    }
}

/// Seconds since the Unix epoch; times before it count as the epoch (a clock that far off fails every check).
fn unix_secs(t: SystemTime) -> i64 {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
