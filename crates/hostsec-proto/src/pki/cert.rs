//! Reading certificates, CRLs and keys: PEM or DER containers (rustls-pki-types) and the fields hostsec shows
//! and matches on (x509-parser). Nothing here decides whether a certificate is trustworthy; `store` does.

use super::CertError;
use crate::crypto::signature::{KeyError, VerifyingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::net::IpAddr;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid2abbrev, oid_registry};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// The PEM armour that starts every PEM file (RFC 7468 §2); its absence means DER.
const PEM_MARKER: &[u8] = b"-----BEGIN";

/// The fields of one X.509 certificate that hostsec logs, shows (`hostsec certs`, `hostsec sas`) and matches
/// identities against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The whole certificate, DER: what a CERT payload carries.
    pub der: Vec<u8>,
    /// Subject as text, in certificate order as strongSwan prints it: `C=XX, O=Example, CN=host`.
    pub subject_dn: String,
    /// Subject as DER (the Name SEQUENCE): the data of an ID_DER_ASN1_DN payload and of a CERTREQ's CA name.
    pub subject_der: Vec<u8>,
    /// Issuer as text.
    pub issuer_dn: String,
    /// Issuer as DER.
    pub issuer_der: Vec<u8>,
    /// Serial number, hex bytes separated by colons.
    pub serial: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// DNS names of the subjectAltName extension.
    pub san_dns: Vec<String>,
    /// IP addresses of the subjectAltName extension.
    pub san_ips: Vec<IpAddr>,
    /// Whether basicConstraints says cA.
    pub is_ca: bool,
    /// basicConstraints pathLenConstraint: how many intermediate CAs may follow this CA.
    pub path_len: Option<u32>,
    /// Key type and size, e.g. `RSA-2048`, `ECDSA P-256`, `RSA-1024 (too weak)`.
    pub key: String,
    /// The SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// The keyUsage bits that matter to IKE, if the extension is present.
    pub key_usage: Option<KeyUsageBits>,
}

/// The keyUsage bits (RFC 5280 §4.2.1.3) that IKE certificate checks look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUsageBits {
    /// digitalSignature.
    pub digital_signature: bool,
    /// nonRepudiation (contentCommitment).
    pub non_repudiation: bool,
    /// keyCertSign.
    pub key_cert_sign: bool,
    /// cRLSign.
    pub crl_sign: bool,
}

impl CertInfo {
    /// Reads one DER certificate. Trailing bytes after it are an error: a CERT payload holds one certificate.
    pub fn parse(der: &[u8]) -> Result<CertInfo, CertError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::Malformed(format!("{} bytes after the certificate", rest.len())));
        }
        let malformed = |e: x509_parser::error::X509Error| CertError::Malformed(e.to_string());
        let mut san_dns = Vec::new();
        let mut san_ips = Vec::new();
        if let Some(san) = cert.subject_alternative_name().map_err(malformed)? {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => san_dns.push(d.to_string()),
                    GeneralName::IPAddress(bytes) => {
                        // RFC 5280 §4.2.1.6: 4 or 16 octets; anything else cannot match an address.
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            san_ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            san_ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let key_usage = cert.key_usage().map_err(malformed)?.map(|ku| KeyUsageBits {
            digital_signature: ku.value.digital_signature(),
            non_repudiation: ku.value.non_repudiation(),
            key_cert_sign: ku.value.key_cert_sign(),
            crl_sign: ku.value.crl_sign(),
        });
        let constraints = cert.basic_constraints().map_err(malformed)?;
        let is_ca = constraints.as_ref().is_some_and(|bc| bc.value.ca);
        let path_len = constraints.and_then(|bc| bc.value.path_len_constraint);
        let spki_der = cert.public_key().raw.to_vec();
        Ok(CertInfo {
            der: der.to_vec(),
            subject_dn: name_text(cert.subject()),
            subject_der: cert.subject().as_raw().to_vec(),
            issuer_dn: name_text(cert.issuer()),
            issuer_der: cert.issuer().as_raw().to_vec(),
            serial: cert.raw_serial_as_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            san_dns,
            san_ips,
            is_ca,
            path_len,
            key: key_description(&spki_der),
            spki_der,
            key_usage,
        })
    }

    /// Whether the certificate is self-issued (subject = issuer), as a root CA is.
    pub fn is_self_issued(&self) -> bool {
        self.subject_der == self.issuer_der
    }

    /// Whether `unix_secs` lies in the validity period (both ends included, RFC 5280 §4.1.2.5).
    pub fn valid_at(&self, unix_secs: i64) -> bool {
        self.not_before <= unix_secs && unix_secs <= self.not_after
    }
}

/// A Name as text, in certificate order with the usual short attribute names (`C=XX, O=hostsec KAT,
/// CN=a.kat.example`), which is how strongSwan and `openssl -nameopt compat` print it, so administrators can paste
/// what they see into `dn:` identities. Unlike x509-parser's own rendering, it is unambiguous (RFC 4514 §2.4):
/// separators, quotes and backslashes inside a value are escaped (a CN of `x, O=y` reads `CN=x\, O=y`, not like
/// a Name of two attributes), and a value that is not a readable string is written `#` and the hex of its DER, so
/// that two different Names never read alike.
pub(crate) fn name_text(name: &X509Name<'_>) -> String {
    let registry = oid_registry();
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            let attributes: Vec<String> = rdn
                .iter()
                .map(|atv| {
                    let key = oid2abbrev(atv.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| atv.attr_type().to_id_string());
                    format!("{key}={}", attribute_text(atv.attr_value()))
                })
                .collect();
            attributes.join(" + ")
        })
        .collect();
    rdns.join(", ")
}

/// One attribute value: the string, escaped, or `#` and the hex of the DER of anything else (including strings
/// whose bytes are not valid in their type).
fn attribute_text(value: &Any<'_>) -> String {
    let text = match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::VisibleString
        | Tag::NumericString
        | Tag::T61String
        | Tag::GeneralString
        | Tag::GraphicString
        | Tag::VideotexString => std::str::from_utf8(value.data).ok().map(str::to_string),
        Tag::BmpString if value.data.len() % 2 == 0 => {
            let units = value.data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units).collect::<Result<String, _>>().ok()
        }
        _ => None,
    };
    match text {
        Some(text) => escape_value(&text),
        None => match value.to_der_vec() {
            Ok(der) => format!("#{}", hex::encode(der)),
            Err(_) => format!("#{:02x}{}", value.tag().0, hex::encode(value.data)),
        },
    }
}

/// RFC 4514 §2.4: a backslash before `" + , ; < > \`, before a leading `#` or space and a trailing space, and
/// NUL as `\00`.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => out.push('\\'),
            '#' if i == 0 => out.push('\\'),
            ' ' if i == 0 || i == last => out.push('\\'),
            '\0' => {
                out.push_str("\\00");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Key type and size of a SubjectPublicKeyInfo, also for keys hostsec cannot use (to say why).
pub(crate) fn key_description(spki: &[u8]) -> String {
    match VerifyingKey::from_spki_der(spki) {
        Ok(key) => key.description(),
        Err(KeyError::RsaTooSmall { bits }) => format!("RSA-{bits} (too weak)"),
        Err(KeyError::UnsupportedCurve) => "EC (unsupported curve)".to_string(),
        Err(KeyError::UnsupportedType(t)) => format!("{t} (unsupported)"),
        Err(KeyError::Malformed(_)) => "unreadable key".to_string(),
    }
}

/// Every certificate of a PEM file (in file order), or the one certificate of a DER file.
pub fn certificates_from_pem_or_der(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = if is_pem(bytes) {
        CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::Malformed(format!("PEM: {e}")))?
    } else {
        vec![CertificateDer::from(bytes.to_vec())]
    };
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(certs)
}

/// Every CRL of a PEM file, or the one CRL of a DER file.
pub fn crls_from_pem_or_der(bytes: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    let crls = if is_pem(bytes) {
        CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::Crl(format!("PEM: {e}")))?
    } else {
        vec![CertificateRevocationListDer::from(bytes.to_vec())]
    };
    if crls.is_empty() {
        return Err(CertError::Crl("no 'BEGIN X509 CRL' block in the file".to_string()));
    }
    Ok(crls)
}

/// The private key of a PEM file (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`), or
/// a DER key in one of those formats. The returned key wipes its bytes when dropped.
pub fn private_key_from_pem_or_der(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    if is_pem(bytes) {
        // An encrypted PKCS#8 key has its own label, which this does not read: the daemon starts unattended.
        PrivateKeyDer::from_pem_slice(bytes).map_err(|e| {
            CertError::PrivateKey(format!(
                "no unencrypted PKCS#8, SEC1 or PKCS#1 private key in PEM ({e}); encrypted keys are not supported"
            ))
        })
    } else {
        PrivateKeyDer::try_from(bytes)
            .map(|k| k.clone_key())
            .map_err(|e| CertError::PrivateKey(format!("not a DER PKCS#8, SEC1 or PKCS#1 private key: {e}")))
    }
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(PEM_MARKER.len()).any(|w| w == PEM_MARKER)
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`, for messages and `hostsec certs`.
pub fn format_utc(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Civil date from a day count (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", days_from_civil
    // inverted): proleptic Gregorian, valid for every date an X.509 time can hold.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(2_111_330_638), "2036-11-26 16:43:58 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(format_utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        for bytes in [&b""[..], b"\x30", b"\x30\x82\xff\xff", b"-----BEGIN CERTIFICATE-----\nzz\n", b"hello"] {
            let result = certificates_from_pem_or_der(bytes).and_then(|c| CertInfo::parse(&c[0]));
            assert!(result.is_err(), "{bytes:?}");
            assert!(private_key_from_pem_or_der(bytes).is_err(), "{bytes:?}");
        }
    }
}
