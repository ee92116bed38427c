//! The peer's IKE identity (its ID payload, RFC 2407 §4.6.2) against its validated certificate: an
//! ID_DER_ASN1_DN must be the certificate's subject, an ID_FQDN one of its subjectAltName DNS names, an ID_IPV4/
//! IPV6_ADDR one of its subjectAltName addresses (RFC 4945 §3.1: identities come from the certificate, never
//! from the Common Name for FQDNs).

use super::cert::name_text;
use super::store::ValidatedPeer;
use super::CertError;
use crate::wire::consts::id_type;
use crate::wire::IdPayload;
use std::fmt;
use std::net::IpAddr;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// A phase-1 identity as it matters for certificate checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerId {
    /// ID_DER_ASN1_DN: a DER Name.
    Dn(Vec<u8>),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_IPV4_ADDR / ID_IPV6_ADDR.
    Ip(IpAddr),
    /// Any other ID type, which a certificate cannot vouch for here.
    Other {
        /// The ID type.
        id_type: u8,
    },
}

impl PeerId {
    /// The identity of an ID payload.
    pub fn from_payload(id: &IdPayload<'_>) -> PeerId {
        match id.id_type {
            id_type::DER_ASN1_DN => PeerId::Dn(id.data.to_vec()),
            id_type::FQDN => PeerId::Fqdn(String::from_utf8_lossy(id.data).into_owned()),
            _ => match id.address() {
                Some(addr) => PeerId::Ip(addr),
                None => PeerId::Other { id_type: id.id_type },
            },
        }
    }
}

/// As in the config (`dn:…`, `fqdn:…`, `ip:…`), so that logs and config read alike.
impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerId::Dn(der) => match X509Name::from_der(der) {
                Ok((_, name)) => write!(f, "dn:{}", name_text(&name)),
                Err(_) => write!(f, "dn:<unreadable, {} bytes>", der.len()),
            },
            PeerId::Fqdn(name) => write!(f, "fqdn:{name}"),
            PeerId::Ip(addr) => write!(f, "ip:{addr}"),
            PeerId::Other { id_type } => write!(f, "ID type {id_type}"),
        }
    }
}

/// Checks that the peer's certificate vouches for the identity in its ID payload.
pub fn check_peer_id(peer: &ValidatedPeer, id: &PeerId) -> Result<(), CertError> {
    let mismatch = |why: String| CertError::IdMismatch { id: id.to_string(), subject: peer.subject_dn.clone(), why };
    match id {
        PeerId::Dn(der) => {
            if der == &peer.subject_der
                || X509Name::from_der(der).is_ok_and(|(_, n)| dn_matches_text(&peer.subject_der, &name_text(&n)))
            {
                Ok(())
            } else {
                Err(mismatch("a DN identity must equal the certificate's subject".to_string()))
            }
        }
        PeerId::Fqdn(name) => {
            let wanted = name.trim_end_matches('.');
            if peer.san_dns.iter().any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(wanted)) {
                Ok(())
            } else {
                Err(mismatch(format!("its subjectAltName DNS names are [{}]", peer.san_dns.join(", "))))
            }
        }
        PeerId::Ip(addr) => {
            if peer.san_ips.contains(addr) {
                Ok(())
            } else {
                let ips: Vec<String> = peer.san_ips.iter().map(|a| a.to_string()).collect();
                Err(mismatch(format!("its subjectAltName addresses are [{}]", ips.join(", "))))
            }
        }
        PeerId::Other { .. } => Err(mismatch("only DN, FQDN and IP address identities can be checked".to_string())),
    }
}

/// Whether a DER Name equals a DN written as text (`C=XX, O=Example, CN=host`, as in `dn:` identities): the
/// same attributes in the same order, attribute names and values compared without regard to case or the
/// spaces around separators (X.520 caseIgnoreMatch, which is how the usual string attributes compare).
pub fn dn_matches_text(dn_der: &[u8], text: &str) -> bool {
    match X509Name::from_der(dn_der) {
        Ok((&[], name)) => normalize_dn(&name_text(&name)) == normalize_dn(text),
        _ => false,
    }
}

/// `C = xx ,O=Example` → [("C","XX"), ("O","EXAMPLE")].
fn normalize_dn(text: &str) -> Vec<(String, String)> {
    text.split([',', '+'])
        .filter(|part| !part.trim().is_empty())
        .map(|part| match part.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_uppercase(), v.trim().to_lowercase()),
            None => (String::new(), part.trim().to_lowercase()),
        })
        .collect()
}
