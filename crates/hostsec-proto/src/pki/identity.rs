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
/// spaces around separators (X.520 caseIgnoreMatch, which is how the usual string attributes compare). A comma
/// or plus sign inside a value must be escaped in the text (`CN=x\, O=y`, RFC 4514), as [`PeerId`]'s `dn:` text
/// shows it, so that a value can never pass for several attributes.
pub fn dn_matches_text(dn_der: &[u8], text: &str) -> bool {
    match X509Name::from_der(dn_der) {
        Ok((&[], name)) => normalize_dn(&name_text(&name)) == normalize_dn(text),
        _ => false,
    }
}

/// `C = xx ,O=Example` → [("C","xx"), ("O","example")], splitting at unescaped `,` and `+` and the first
/// unescaped `=` of each attribute, with escapes (`\,`, `\2C`) resolved into the value.
fn normalize_dn(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut key, mut value, mut in_value) = (Vec::new(), Vec::new(), false);
    let mut flush = |key: &mut Vec<u8>, value: &mut Vec<u8>, in_value: &mut bool| {
        let k = String::from_utf8_lossy(key).trim().to_ascii_uppercase();
        let v = String::from_utf8_lossy(value).trim().to_lowercase();
        if !k.is_empty() || !v.is_empty() || *in_value {
            out.push((k, v));
        }
        key.clear();
        value.clear();
        *in_value = false;
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        let target = if in_value { &mut value } else { &mut key };
        match b {
            b'\\' => {
                let pair = bytes
                    .get(i..i + 2)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok());
                if let Some(byte) = pair.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    target.push(byte);
                    i += 2;
                } else if let Some(&next) = bytes.get(i) {
                    target.push(next);
                    i += 1;
                }
            }
            b',' | b'+' => flush(&mut key, &mut value, &mut in_value),
            b'=' if !in_value => in_value = true,
            _ => target.push(b),
        }
    }
    flush(&mut key, &mut value, &mut in_value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER Name of RDNs each with one (OID contents, UTF8String value) attribute.
    fn name(attributes: &[(&[u8], &[u8])]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![tag, u8::try_from(body.len()).expect("short")];
            out.extend_from_slice(body);
            out
        }
        let rdns: Vec<u8> = attributes
            .iter()
            .flat_map(|(oid, value)| tlv(0x31, &tlv(0x30, &[tlv(0x06, oid), tlv(0x0c, value)].concat())))
            .collect();
        tlv(0x30, &rdns)
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];

    /// A value holding a separator does not pass for several attributes, nor several attributes for one value:
    /// with plain text rendering, a certificate whose CN is `x, O=y` matched the identity `CN=x, O=y`.
    #[test]
    fn separators_inside_values_do_not_split_them() {
        let one = name(&[(CN, b"x, O=y")]);
        let two = name(&[(CN, b"x"), (O, b"y")]);
        assert_eq!(PeerId::Dn(one.clone()).to_string(), "dn:CN=x\\, O=y");
        assert_eq!(PeerId::Dn(two.clone()).to_string(), "dn:CN=x, O=y");
        assert!(!dn_matches_text(&one, "CN=x, O=y"));
        assert!(dn_matches_text(&one, "CN=x\\, O=y"));
        assert!(dn_matches_text(&one, "cn = X\\2C o=Y"));
        assert!(dn_matches_text(&two, "CN=x, O=y"));
        assert!(!dn_matches_text(&two, "CN=x\\, O=y"));
        let plus = name(&[(CN, b"a+CN=b")]);
        assert!(!dn_matches_text(&plus, "CN=a+CN=b"));
        assert!(dn_matches_text(&plus, "CN=a\\+CN=b"));
    }

    /// Values that are not readable strings read as their DER in hex, so two of them never read alike (x509-parser
    /// prints every unreadable Name as the same error text).
    #[test]
    fn unreadable_values_read_as_hex() {
        let bad = name(&[(CN, b"\xff")]);
        let other = name(&[(CN, b"\xfe")]);
        assert_eq!(PeerId::Dn(bad.clone()).to_string(), "dn:CN=#0c01ff");
        assert!(dn_matches_text(&bad, "CN=#0c01ff"));
        assert!(!dn_matches_text(&other, "CN=#0c01ff"));
        assert!(!dn_matches_text(&bad, &PeerId::Dn(other).to_string()[3..]));
    }

    #[test]
    fn special_characters_are_escaped_and_read_back() {
        let der = name(&[(CN, b"#lead"), (O, b"a;b\\c\"d<e>")]);
        let shown = PeerId::Dn(der.clone()).to_string();
        assert_eq!(shown, "dn:CN=\\#lead, O=a\\;b\\\\c\\\"d\\<e\\>");
        assert!(dn_matches_text(&der, &shown[3..]));
    }

    /// RFC 4514: a backslash and two hex digits is one byte, a backslash and anything else that character; `\+5`
    /// is a plus and a 5 (Rust's radix parser would take "+5" for the number 5).
    #[test]
    fn escapes_resolve_as_rfc_4514_reads_them() {
        let der = name(&[(CN, b"host.example"), (O, b"a+5")]);
        assert!(dn_matches_text(&der, r"CN=host.ex\61mple, O=a\+5"));
        assert!(dn_matches_text(&der, r"CN=h\ost.example, O=a\2B5"));
        assert!(!dn_matches_text(&der, r"CN=host.example, O=a\05"));
    }
}
