//! The trusted CAs and CRLs of a rule, and validation of a peer's certificate chain by webpki (see the module
//! docs of `pki` for what webpki checks and what is checked here on the paths it proposes).

use super::cert::{certificates_from_pem_or_der, crls_from_pem_or_der, format_utc, CertInfo};
use super::CertError;
use crate::crypto::signature::{KeyError, VerifyingKey};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::cell::RefCell;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter,
    OwnedCertRevocationList, RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy, VerifiedPath,
};
use x509_parser::prelude::FromDer;

/// The most intermediate CAs between a peer's certificate and a trusted CA: webpki's fixed bound (its
/// `MAX_SUB_CA_COUNT`), which no real IPsec deployment comes near.
pub const MAX_INTERMEDIATES: usize = 6;

/// Extended key usages that allow a certificate in IKE. RFC 4945 §5.1.3.12 names ipsecIKE and
/// anyExtendedKeyUsage; certificates from Windows CAs and strongSwan's `pki --flag` usually carry serverAuth
/// and/or clientAuth instead, and older ones the RFC 2459 IPsec purposes or Microsoft's "IP security IKE
/// intermediate". A certificate without the extension is allowed too. Values are OID contents (DER, no tag).
const IKE_EKUS: [&[u8]; 8] = [
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11], // 1.3.6.1.5.5.7.3.17 id-kp-ipsecIKE
    &[0x55, 0x1d, 0x25, 0x00],                         // 2.5.29.37.0 anyExtendedKeyUsage
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01], // 1.3.6.1.5.5.7.3.1 id-kp-serverAuth
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02], // 1.3.6.1.5.5.7.3.2 id-kp-clientAuth
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x05], // 1.3.6.1.5.5.7.3.5 id-kp-ipsecEndSystem
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x06], // 1.3.6.1.5.5.7.3.6 id-kp-ipsecTunnel
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x07], // 1.3.6.1.5.5.7.3.7 id-kp-ipsecUser
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x08, 0x02, 0x02], // 1.3.6.1.5.5.8.2.2 Microsoft IP security IKE intermediate
];

/// The IKE extended-key-usage policy, plugged into webpki. It remembers the purposes of a refused certificate
/// so that the refusal can name them.
#[derive(Default)]
struct IkeEku {
    refused: RefCell<Option<String>>,
}

impl ExtendedKeyUsageValidator for IkeEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut seen = Vec::new();
        for purpose in iter {
            let purpose = purpose?;
            if IKE_EKUS.iter().any(|ok| KeyPurposeId::new(ok) == purpose) {
                return Ok(());
            }
            seen.push(purpose.to_decoded_oid().iter().map(|n| n.to_string()).collect::<Vec<_>>().join("."));
        }
        if seen.is_empty() {
            return Ok(());
        }
        *self.refused.borrow_mut() = Some(seen.join(", "));
        // The context variant needs a webpki `KeyUsage`, which cannot describe a set of accepted purposes.
        #[allow(deprecated)]
        Err(webpki::Error::RequiredEkuNotFound)
    }
}

/// What a path check of ours returns to webpki when it refuses a candidate path; the real reason waits in a
/// cell beside it. webpki's `Error` has no variant for callers' reasons; this one cannot otherwise occur for
/// hostsec's inputs (it needs an IP name constraint with a malformed mask) and ranks high enough that webpki
/// reports it rather than a vaguer error of another candidate path.
const PATH_CHECK_REFUSED: webpki::Error = webpki::Error::InvalidNetworkMaskConstraint;

/// A peer whose certificate chain validated: who it is, as its certificate says, and the key that must have
/// made its SIG payload.
#[derive(Debug)]
pub struct ValidatedPeer {
    /// Subject of the peer's certificate, as text.
    pub subject_dn: String,
    /// Subject as DER, to compare with an ID_DER_ASN1_DN payload.
    pub subject_der: Vec<u8>,
    /// Issuer of the peer's certificate, as text.
    pub issuer_dn: String,
    /// DNS names of its subjectAltName.
    pub san_dns: Vec<String>,
    /// IP addresses of its subjectAltName.
    pub san_ips: Vec<IpAddr>,
    /// End of its validity, seconds since the Unix epoch (an SA should not outlive it).
    pub not_after: i64,
    /// Its public key.
    pub public_key: VerifyingKey,
    /// Subjects from the peer's certificate up to and including the trusted CA.
    pub path: Vec<String>,
}

/// A CRL as loaded, for `hostsec certs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// The CA that issued it.
    pub issuer_dn: String,
    /// Its thisUpdate (when it was issued), seconds since the Unix epoch.
    pub this_update: i64,
    /// Its nextUpdate, seconds since the Unix epoch, if it has one.
    pub next_update: Option<i64>,
    /// How many certificates it revokes.
    pub revoked: usize,
}

/// The trusted CAs (`trusted_cas`) and CRLs (`crls`) of a rule.
#[derive(Default)]
pub struct TrustStore {
    /// The CA certificates, parallel to `anchors`.
    cas: Vec<CertInfo>,
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    crl_info: Vec<CrlInfo>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("cas", &self.cas.iter().map(|c| &c.subject_dn).collect::<Vec<_>>())
            .field("crls", &self.crl_info)
            .finish()
    }
}

impl TrustStore {
    /// An empty store: it trusts nothing.
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Adds every certificate of a CA file (PEM with one or more certificates, or one DER certificate). Each must
    /// be a CA (basicConstraints cA, or a self-issued legacy v1 root) with a key of at least RSA-2048 strength.
    /// Returns how many were added; on error none of the file's certificates is added.
    pub fn add_cas(&mut self, pem_or_der: &[u8]) -> Result<usize, CertError> {
        let mut staged = Vec::new();
        for der in certificates_from_pem_or_der(pem_or_der)? {
            let info = CertInfo::parse(&der)?;
            if !info.is_ca && !info.is_self_issued() {
                return Err(CertError::NotCa { subject: info.subject_dn });
            }
            if let Err(KeyError::RsaTooSmall { bits }) = VerifyingKey::from_spki_der(&info.spki_der) {
                return Err(CertError::KeyTooWeak { subject: info.subject_dn, key: format!("RSA-{bits}") });
            }
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| CertError::Malformed(format!("'{}' as a trust anchor: {e:?}", info.subject_dn)))?
                .to_owned();
            staged.push((info, anchor));
        }
        let n = staged.len();
        for (info, anchor) in staged {
            self.cas.push(info);
            self.anchors.push(anchor);
        }
        Ok(n)
    }

    /// Adds every CRL of a file (PEM or one DER CRL). Its signature is checked when it is used, against the CA
    /// that issued the certificate in question.
    pub fn add_crls(&mut self, pem_or_der: &[u8]) -> Result<usize, CertError> {
        let mut staged = Vec::new();
        for der in crls_from_pem_or_der(pem_or_der)? {
            let crl = OwnedCertRevocationList::from_der(&der).map_err(crl_error)?;
            let info = match x509_parser::revocation_list::CertificateRevocationList::from_der(&der) {
                Ok((_, parsed)) => CrlInfo {
                    issuer_dn: super::cert::name_text(parsed.issuer()),
                    this_update: parsed.last_update().timestamp(),
                    next_update: parsed.next_update().map(|t| t.timestamp()),
                    revoked: parsed.iter_revoked_certificates().count(),
                },
                Err(e) => return Err(CertError::Crl(e.to_string())),
            };
            staged.push((CertRevocationList::Owned(crl), info));
        }
        let n = staged.len();
        for (crl, info) in staged {
            self.crls.push(crl);
            self.crl_info.push(info);
        }
        Ok(n)
    }

    /// The trusted CA certificates.
    pub fn cas(&self) -> &[CertInfo] {
        &self.cas
    }

    /// The loaded CRLs.
    pub fn crls(&self) -> &[CrlInfo] {
        &self.crl_info
    }

    /// The DER subject names of the trusted CAs: the data of the CERTREQ payloads this host sends (RFC 2408
    /// §3.10, certificate authority = the DER Name).
    pub fn ca_names(&self) -> impl Iterator<Item = &[u8]> {
        self.cas.iter().map(|c| c.subject_der.as_slice())
    }

    /// Validates a peer's certificate (`end_entity`, DER) with the intermediate certificates it sent (DER, any
    /// order, extra ones ignored) at wall-clock time `now`: a path to a trusted CA on which every certificate is
    /// within its validity, CAs are CAs with room in their pathLenConstraint, signatures verify, nothing is
    /// revoked by a loaded CRL, key usages allow IKE, and keys are strong enough.
    pub fn validate_chain(
        &self,
        end_entity: &[u8],
        intermediates: &[&[u8]],
        now: SystemTime,
    ) -> Result<ValidatedPeer, CertError> {
        let ee = CertInfo::parse(end_entity)?;
        let public_key = match VerifyingKey::from_spki_der(&ee.spki_der) {
            Ok(key) => key,
            Err(KeyError::RsaTooSmall { bits }) => {
                return Err(CertError::KeyTooWeak { subject: ee.subject_dn, key: format!("RSA-{bits}") })
            }
            Err(why) => return Err(CertError::UnusableKey { subject: ee.subject_dn, why }),
        };
        let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let now_secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
        let time = UnixTime::since_unix_epoch(since_epoch);

        let ee_der = CertificateDer::from(end_entity);
        let webpki_ee = EndEntityCert::try_from(&ee_der).map_err(|e| CertError::Malformed(format!("{e:?}")))?;
        let intermediate_ders: Vec<CertificateDer<'_>> =
            intermediates.iter().map(|d| CertificateDer::from(*d)).collect();
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        // CRLs are optional (SPEC §7 `crls = []`): a certificate whose issuer has no loaded CRL is accepted, the
        // whole chain is checked where CRLs exist, and a CRL past its nextUpdate still counts (a stale list
        // still names what it revoked; refusing every peer because a file was not refreshed would be worse).
        let revocation = RevocationOptionsBuilder::new(&crl_refs).ok().map(|builder| {
            builder
                .with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Allow)
                .with_expiration_policy(ExpirationPolicy::Ignore)
                .build()
        });
        let eku = IkeEku::default();
        let refused_path: RefCell<Option<CertError>> = RefCell::new(None);
        let check = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            self.check_path(path, &ee, now_secs).map_err(|e| {
                *refused_path.borrow_mut() = Some(e);
                PATH_CHECK_REFUSED
            })
        };
        let result = webpki_ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediate_ders,
            time,
            &eku,
            revocation,
            Some(&check),
        );
        match result {
            Ok(path) => {
                let mut names = vec![ee.subject_dn.clone()];
                for cert in path.intermediate_certificates() {
                    names.push(CertInfo::parse(cert.der().as_ref()).map(|c| c.subject_dn).unwrap_or_default());
                }
                if let Some(ca) = self.anchor_info(path.anchor()) {
                    names.push(ca.subject_dn.clone());
                }
                Ok(ValidatedPeer {
                    subject_dn: ee.subject_dn,
                    subject_der: ee.subject_der,
                    issuer_dn: ee.issuer_dn,
                    san_dns: ee.san_dns,
                    san_ips: ee.san_ips,
                    not_after: ee.not_after,
                    public_key,
                    path: names,
                })
            }
            Err(e) => {
                if e == PATH_CHECK_REFUSED {
                    if let Some(reason) = refused_path.into_inner() {
                        return Err(reason);
                    }
                }
                Err(self.explain(e, &ee, intermediates, now_secs, eku.refused.into_inner()))
            }
        }
    }

    /// The trusted CA certificate behind a webpki trust anchor.
    fn anchor_info(&self, anchor: &TrustAnchor<'_>) -> Option<&CertInfo> {
        self.anchors
            .iter()
            .position(|a| {
                a.subject.as_ref() == anchor.subject.as_ref()
                    && a.subject_public_key_info.as_ref() == anchor.subject_public_key_info.as_ref()
            })
            .and_then(|i| self.cas.get(i))
    }

    /// Our checks on a path that webpki found valid: key usages, key sizes of the CAs that the peer sent, and
    /// the validity of the trusted CA certificate.
    fn check_path(&self, path: &VerifiedPath<'_>, ee: &CertInfo, now: i64) -> Result<(), CertError> {
        if let Some(ku) = ee.key_usage {
            if !(ku.digital_signature || ku.non_repudiation) {
                return Err(CertError::BadKeyUsage {
                    subject: ee.subject_dn.clone(),
                    why: "its keyUsage has neither digitalSignature nor nonRepudiation, which IKE signatures need \
                          (RFC 4945 §5.1.3.2)"
                        .to_string(),
                });
            }
        }
        for cert in path.intermediate_certificates() {
            let ca = CertInfo::parse(cert.der().as_ref())?;
            check_ca(&ca)?;
        }
        if let Some(ca) = self.anchor_info(path.anchor()) {
            check_ca(ca)?;
            check_validity(ca, now)?;
            // webpki enforces pathLenConstraint on the intermediates only; a trusted CA's own is checked here.
            let below = path.intermediate_certificates().count();
            if ca.path_len.is_some_and(|max| usize::try_from(max).is_ok_and(|max| below > max)) {
                return Err(CertError::PathTooLong {
                    subject: ee.subject_dn.clone(),
                    why: format!(
                        "the trusted CA '{}' allows {} intermediate CA(s) below it (pathLenConstraint), the chain has {below}",
                        ca.subject_dn,
                        ca.path_len.unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Turns webpki's verdict into words, naming the certificate concerned where webpki does not.
    fn explain(
        &self,
        e: webpki::Error,
        ee: &CertInfo,
        intermediates: &[&[u8]],
        now: i64,
        refused_eku: Option<String>,
    ) -> CertError {
        let subject = ee.subject_dn.clone();
        // The intermediates the peer sent, as far as they parse (webpki skips those that do not).
        let sent: Vec<CertInfo> = intermediates.iter().filter_map(|d| CertInfo::parse(d).ok()).collect();
        let chain = || std::iter::once(ee).chain(sent.iter());
        use webpki::Error as W;
        #[allow(deprecated)]
        match e {
            W::CertExpired { .. } | W::CertNotValidYet { .. } => {
                let out_of_date = chain().chain(self.cas.iter()).find_map(|c| check_validity(c, now).err());
                out_of_date.unwrap_or(CertError::Refused { subject, why: format!("{e:?}") })
            }
            W::UnknownIssuer => self.explain_unknown_issuer(ee, &sent),
            W::CertRevoked => CertError::Revoked { subject },
            W::CaUsedAsEndEntity => CertError::BadKeyUsage {
                subject,
                why: "it is a CA certificate (basicConstraints cA), not a host certificate".to_string(),
            },
            W::EndEntityUsedAsCa => CertError::BadKeyUsage {
                subject,
                why: "a certificate in its chain that is not a CA (no basicConstraints cA) issued another one"
                    .to_string(),
            },
            W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => CertError::BadKeyUsage {
                subject,
                why: format!(
                    "it or a CA above it restricts extendedKeyUsage to {}, which allows none of IKE (ipsecIKE), \
                     server or client authentication",
                    refused_eku.unwrap_or_else(|| "other purposes".to_string())
                ),
            },
            W::EmptyEkuExtension => {
                CertError::BadKeyUsage { subject, why: "its extendedKeyUsage extension is empty".to_string() }
            }
            W::PathLenConstraintViolated => CertError::PathTooLong {
                subject,
                why: "a CA's pathLenConstraint allows fewer intermediate CAs below it".to_string(),
            },
            W::MaximumPathDepthExceeded => {
                CertError::PathTooLong { subject, why: format!("more than {MAX_INTERMEDIATES} intermediate CAs") }
            }
            W::InvalidSignatureForPublicKey
            | W::UnsupportedSignatureAlgorithmForPublicKey
            | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
            | W::SignatureAlgorithmMismatch => {
                // aws-lc-rs refuses RSA keys under 2048 bits as signature checks fail, which webpki reports as a
                // bad signature; name the weak key instead when the peer sent one.
                let weak = sent.iter().find_map(|c| match VerifyingKey::from_spki_der(&c.spki_der) {
                    Err(KeyError::RsaTooSmall { bits }) => {
                        Some(CertError::KeyTooWeak { subject: c.subject_dn.clone(), key: format!("RSA-{bits}") })
                    }
                    _ => None,
                });
                weak.unwrap_or(CertError::BadSignature { subject })
            }
            W::InvalidCrlSignatureForPublicKey => {
                CertError::Crl("a loaded CRL's signature does not verify with its issuing CA's key".to_string())
            }
            W::IssuerNotCrlSigner => {
                CertError::Crl("a loaded CRL was issued by a CA whose keyUsage lacks cRLSign".to_string())
            }
            other => CertError::Refused { subject, why: format!("{other:?}") },
        }
    }

    /// Why no path reached a trusted CA: follows the peer's chain by issuer name from its certificate until a
    /// name is missing (the unknown issuer) or comes back (a loop).
    fn explain_unknown_issuer(&self, ee: &CertInfo, sent: &[CertInfo]) -> CertError {
        let mut current = ee;
        let mut seen: Vec<&CertInfo> = vec![ee];
        // Each step adds a distinct certificate, so this ends within `sent.len() + 1` steps.
        for _ in 0..=sent.len() {
            let next = sent.iter().find(|c| c.subject_der == current.issuer_der && !std::ptr::eq(*c, current));
            let Some(next) = next else { break };
            if next.is_self_issued() {
                // A root the peer sent along but that is not trusted here.
                return CertError::UnknownIssuer {
                    subject: current.subject_dn.clone(),
                    issuer: next.subject_dn.clone(),
                };
            }
            if seen.iter().any(|c| c.subject_der == next.subject_der) {
                let mut names: Vec<&str> = seen.iter().map(|c| c.subject_dn.as_str()).collect();
                names.push(&next.subject_dn);
                return CertError::ChainLoop { subject: ee.subject_dn.clone(), path: names.join(" → ") };
            }
            seen.push(next);
            current = next;
        }
        CertError::UnknownIssuer { subject: current.subject_dn.clone(), issuer: current.issuer_dn.clone() }
    }
}

/// Why webpki cannot load a CRL, in words where its error name alone would leave an administrator guessing.
fn crl_error(e: webpki::Error) -> CertError {
    match e {
        // The usual cause is a CRL made without a cRLNumber (e.g. `openssl ca -gencrl` with no `crlnumber` file).
        webpki::Error::MalformedExtensions => CertError::Crl(
            "its extensions are missing or malformed: a CRL must be version 2 with extensions, cRLNumber at \
             least (RFC 5280 §5.2.3)"
                .to_string(),
        ),
        other => CertError::Crl(format!("{other:?}")),
    }
}

/// A CA on a validated path: strong enough key, and allowed to sign certificates if it has a keyUsage.
fn check_ca(ca: &CertInfo) -> Result<(), CertError> {
    if let Err(KeyError::RsaTooSmall { bits }) = VerifyingKey::from_spki_der(&ca.spki_der) {
        return Err(CertError::KeyTooWeak { subject: ca.subject_dn.clone(), key: format!("RSA-{bits}") });
    }
    if ca.key_usage.is_some_and(|ku| !ku.key_cert_sign) {
        return Err(CertError::BadKeyUsage {
            subject: ca.subject_dn.clone(),
            why: "it is a CA whose keyUsage lacks keyCertSign, so it may not issue certificates".to_string(),
        });
    }
    Ok(())
}

fn check_validity(cert: &CertInfo, now: i64) -> Result<(), CertError> {
    if now < cert.not_before {
        return Err(CertError::NotYetValid {
            subject: cert.subject_dn.clone(),
            not_before: format_utc(cert.not_before),
        });
    }
    if now > cert.not_after {
        return Err(CertError::Expired { subject: cert.subject_dn.clone(), not_after: format_utc(cert.not_after) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 2 CRL with no extensions at all, as `openssl ca -gencrl` makes it without a `crlnumber` file
    /// (issuer `C=XX, O=hostsec fuzz, CN=hostsec fuzz root`, one revoked serial, ECDSA P-256).
    const CRL_WITHOUT_EXTENSIONS: &str = "\
        3081ed308194020101300a06082a8648ce3d0403023040310b300906035504061302585831153013060355040a0c0c68\
        6f73747365632066757a7a311a301806035504030c11686f73747365632066757a7a20726f6f74170d32393132303130\
        30303030305a170d3330303230313030303030305a30233021020210ff170d3239313230313030303030305a300c300a\
        0603551d1504030a0101300a06082a8648ce3d040302034800304502200505207755b8ef1557150a06c5b3f261c5c8c2\
        938e353c34304b32fb3793910d022100c57c1a47d18c02ee4b922788c795b9d11a01e5eeb0767be3425f903701a8cabd";

    #[test]
    fn crl_without_extensions_is_refused_with_the_reason() {
        let der = hex::decode(CRL_WITHOUT_EXTENSIONS).expect("hex");
        let mut store = TrustStore::new();
        let err = store.add_crls(&der).expect_err("webpki needs CRL extensions");
        assert!(err.to_string().contains("cRLNumber"), "{err}");
        assert!(store.crls().is_empty());
    }
}
