//! X.509 for certificate authentication (SPEC §2, issue 6): this host's certificate and key, the trusted CAs
//! and CRLs, validation of a peer's chain, and the checks of the peer's IKE identity against its certificate.
//!
//! # Library choice
//!
//! **Chains are validated by [rustls-webpki](https://github.com/rustls/webpki) (0.103, aws-lc-rs backend);
//! certificate fields are read with [x509-parser](https://github.com/rusticata/x509-parser).** Nothing here
//! builds or validates a path by hand. Why:
//!
//! - *Maintained and reviewed*: webpki is the verifier of rustls, maintained by the rustls project with regular
//!   releases and a security process; x509-parser is the rusticata project's parser, widely used. Licences ISC
//!   and MIT/Apache-2.0, compatible with ours.
//! - *Memory-safe and bounded*: both are safe Rust. webpki caps the work a hostile chain can cause (signature
//!   checks and path-building calls have budgets, at most 6 intermediates) and skips loops (RFC 4158 §5.2).
//! - *Path building*, not just checking a given order: it tries every intermediate the peer sent and every
//!   trusted CA whose name matches, so an unordered or over-complete CERT set still validates.
//! - *What it checks*: validity periods, basicConstraints (cA, pathLenConstraint), name constraints, the
//!   signature on every certificate (RSA from 2048 bits, ECDSA P-256/P-384/P-521, Ed25519), and CRLs (RFC 5280
//!   §6.3) with a choice of depth, unknown-status and expiry policy. No network: CRLs come from files.
//! - *One crypto library*: its signatures run on aws-lc-rs, which hostsec uses for everything else.
//! - *No EKU requirement for IPsec*: the extended key usage check is a pluggable validator, so hostsec applies
//!   RFC 4945 §5.1.3.12 (no EKU, ipsecIKE or anyExtendedKeyUsage) widened to the serverAuth/clientAuth that
//!   Windows and strongSwan certificates usually carry, instead of the web's "serverAuth required".
//!
//! What webpki leaves to the caller, done here on each candidate path it proposes (so that another path can
//! still be tried): the keyUsage bits (digitalSignature or nonRepudiation on the peer's certificate, RFC 4945
//! §5.1.3.2; keyCertSign on CAs), the size of the peer's own RSA key (webpki only checks keys that sign
//! certificates), and the validity of the trusted CA certificate itself (webpki keeps only its name and key).
//! When webpki answers "unknown issuer", the chain the peer sent is walked by name only to say *why* in words
//! (a loop, or which issuer is missing).
//!
//! Rejected: the `openssl` crate's `X509Store` (thorough, precise error codes, but a second C crypto library
//! linked from the system, libssl-dev in every build, and a large unsafe surface) and aws-lc's own X509
//! verifier through aws-lc-sys (the same C family, but only as raw FFI: hundreds of unsafe lines against the
//! house rule of thin safe wrappers).
//!
//! This module does no I/O: it takes file contents and the wall-clock time from its caller.

mod cert;
mod host;
mod identity;
mod store;

pub use cert::{
    certificates_from_pem_or_der, crls_from_pem_or_der, format_utc, private_key_from_pem_or_der, CertInfo, KeyUsageBits,
};
pub use host::HostCredentials;
pub use identity::{check_peer_id, dn_matches_text, PeerId};
pub use store::{CrlInfo, TrustStore, ValidatedPeer, MAX_INTERMEDIATES};

use crate::crypto::signature::KeyError;

/// What a certificate rule authenticates with: this host's credentials and the CAs (and CRLs) that peers'
/// certificates must chain to. Loaded once from the files a rule names; shared by the SAs of the rule.
#[derive(Debug)]
pub struct CertAuth {
    /// This host's certificate, chain and key.
    pub host: HostCredentials,
    /// The trusted CAs and CRLs.
    pub trust: TrustStore,
}

impl CertAuth {
    /// Whether `other` holds the same certificate, chain and trusted CAs and CRLs (a reload that changes none of
    /// them keeps the SAs negotiated with them).
    pub fn same_material(&self, other: &CertAuth) -> bool {
        fn ders(a: &CertAuth) -> Vec<&[u8]> {
            let mut v: Vec<&[u8]> = a.host.certificates_to_send().collect();
            v.extend(a.trust.cas().iter().map(|c| c.der.as_slice()));
            v
        }
        ders(self) == ders(other) && self.trust.crls() == other.trust.crls()
    }

    /// Validates this host's own certificate and the intermediates sent with it against the rule's trusted CAs
    /// and CRLs at `now`, as a peer trusting the same CAs would (`hostsec certs`). A peer that trusts other CAs
    /// may judge differently; this is the administrator's check that the material is current and consistent.
    pub fn validate_own(&self, now: std::time::SystemTime) -> Result<ValidatedPeer, CertError> {
        let chain: Vec<&[u8]> = self.host.chain.iter().map(|c| c.der.as_slice()).collect();
        self.trust.validate_chain(&self.host.cert.der, &chain, now)
    }
}

/// Why a certificate, key, CRL or chain was refused, in words an administrator can act on. Certificates are
/// named by their subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The bytes are not an X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Malformed(String),
    /// A certificate file with no certificate in it.
    #[error("no certificate found (expected PEM 'BEGIN CERTIFICATE' blocks or one DER certificate)")]
    NoCertificate,
    /// The private key cannot be read.
    #[error("private key: {0}")]
    PrivateKey(String),
    /// A key hostsec cannot sign or verify IKE signatures with.
    #[error("certificate '{subject}': {why}")]
    UnusableKey {
        /// The certificate's subject.
        subject: String,
        /// What is wrong with its key.
        why: KeyError,
    },
    /// The private key is not the one of the certificate.
    #[error("the private key does not belong to certificate '{subject}' (their public keys differ)")]
    KeyMismatch {
        /// The certificate's subject.
        subject: String,
    },
    /// A trusted-CA file holds a certificate that is not a CA.
    #[error("'{subject}' is not a CA certificate (basicConstraints cA is not set), so it cannot be a trusted CA")]
    NotCa {
        /// The certificate's subject.
        subject: String,
    },
    /// Past its notAfter.
    #[error("certificate '{subject}' expired on {not_after}")]
    Expired {
        /// The certificate's subject.
        subject: String,
        /// Its notAfter, as text.
        not_after: String,
    },
    /// Before its notBefore (or this host's clock is wrong).
    #[error("certificate '{subject}' is not valid before {not_before} (check this host's clock)")]
    NotYetValid {
        /// The certificate's subject.
        subject: String,
        /// Its notBefore, as text.
        not_before: String,
    },
    /// No trusted CA issued the chain.
    #[error(
        "certificate '{subject}' is issued by '{issuer}', which is not a trusted CA (trusted_cas) and for which \
         the peer sent no intermediate certificate"
    )]
    UnknownIssuer {
        /// The certificate whose issuer is missing.
        subject: String,
        /// That issuer's name.
        issuer: String,
    },
    /// Listed in a CRL.
    #[error("certificate '{subject}' is revoked (listed in a loaded CRL)")]
    Revoked {
        /// The peer's certificate subject (the revoked one may be a CA above it).
        subject: String,
    },
    /// keyUsage / extendedKeyUsage / basicConstraints forbid this use.
    #[error("certificate '{subject}' may not be used for this: {why}")]
    BadKeyUsage {
        /// The certificate's subject.
        subject: String,
        /// Which usage is missing or forbidden.
        why: String,
    },
    /// An RSA key below 2048 bits somewhere in the chain.
    #[error("certificate '{subject}' has a {key} key; at least RSA-2048 or ECDSA P-256 is required")]
    KeyTooWeak {
        /// The certificate's subject.
        subject: String,
        /// The key, e.g. `RSA-1024`.
        key: String,
    },
    /// More CAs between the peer and the trusted CA than allowed.
    #[error("the chain of '{subject}' is too long: {why}")]
    PathTooLong {
        /// The peer's certificate subject.
        subject: String,
        /// Which limit was exceeded.
        why: String,
    },
    /// The intermediates the peer sent issue each other in a circle.
    #[error("the chain of '{subject}' loops back on itself ({path}) and never reaches a trusted CA")]
    ChainLoop {
        /// The peer's certificate subject.
        subject: String,
        /// The names along the loop.
        path: String,
    },
    /// A certificate's signature does not verify with its issuer's key.
    #[error("the signature on certificate '{subject}' (or on a CA above it) does not verify with its issuer's key")]
    BadSignature {
        /// The peer's certificate subject.
        subject: String,
    },
    /// A CRL that cannot be read or used.
    #[error("CRL: {0}")]
    Crl(String),
    /// The peer's ID payload names something its certificate does not hold.
    #[error("the peer's identity {id} does not match its certificate '{subject}': {why}")]
    IdMismatch {
        /// The ID as text (`dn:…`, `fqdn:…`, `ip:…`).
        id: String,
        /// The certificate's subject.
        subject: String,
        /// What the certificate holds instead.
        why: String,
    },
    /// Any other refusal by the validator, with its own wording.
    #[error("certificate '{subject}' refused: {why}")]
    Refused {
        /// The peer's certificate subject.
        subject: String,
        /// The validator's reason.
        why: String,
    },
}
