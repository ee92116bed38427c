//! This host's own certificate, the intermediate certificates sent with it, and its private key.

use super::cert::{certificates_from_pem_or_der, private_key_from_pem_or_der, CertInfo};
use super::CertError;
use crate::crypto::signature::{KeyError, SigningKey, VerifyingKey};
use crate::crypto::{AuthMethod, CryptoError};
use rustls_pki_types::PrivateKeyDer;
use zeroize::Zeroize;

/// What this host authenticates with in a certificate rule (`certificate`, `private_key`).
#[derive(Debug)]
pub struct HostCredentials {
    /// This host's certificate: the first one of the certificate file.
    pub cert: CertInfo,
    /// The other certificates of that file, in file order: intermediate CAs sent in CERT payloads after the
    /// host's own so that peers which trust only the root can build the path.
    pub chain: Vec<CertInfo>,
    key: SigningKey,
    /// The same key as it was read (PKCS#8, SEC1 or PKCS#1 DER), for TLS in AuthIP: rustls loads keys from DER
    /// through its crypto provider and cannot take hostsec's `SigningKey`.
    tls_key: TlsKeyDer,
}

/// A private key's DER, wiped on drop and never printed (`PrivateKeyDer` itself has neither property).
struct TlsKeyDer(PrivateKeyDer<'static>);

impl Drop for TlsKeyDer {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for TlsKeyDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsKeyDer(<redacted>)")
    }
}

impl HostCredentials {
    /// Loads the certificate file (PEM, host certificate first, then any intermediates; or one DER certificate)
    /// and the private key file (PEM or DER; PKCS#8, SEC1 or PKCS#1). The key must be the certificate's, usable
    /// for IKE signatures (RSA from 2048 bits, ECDSA P-256 or P-384), and a keyUsage on the certificate must
    /// allow signatures. The caller reads the key file through `ConfigFiles::read_secret`, which refuses files
    /// that group or others can read, and should wipe its copy of the bytes.
    pub fn from_pem_or_der(cert_file: &[u8], key_file: &[u8]) -> Result<HostCredentials, CertError> {
        let mut certs = certificates_from_pem_or_der(cert_file)?.into_iter();
        let first = certs.next().ok_or(CertError::NoCertificate)?;
        let cert = CertInfo::parse(&first)?;
        let chain = certs.map(|der| CertInfo::parse(&der)).collect::<Result<Vec<_>, _>>()?;
        let subject = cert.subject_dn.clone();
        let public = match VerifyingKey::from_spki_der(&cert.spki_der) {
            Ok(key) => key,
            Err(KeyError::RsaTooSmall { bits }) => {
                return Err(CertError::KeyTooWeak { subject, key: format!("RSA-{bits}") })
            }
            Err(why) => return Err(CertError::UnusableKey { subject, why }),
        };
        // Wrapped at once so that every return below wipes it.
        let key_der = TlsKeyDer(private_key_from_pem_or_der(key_file)?);
        let key = SigningKey::from_der(&key_der.0).map_err(|e| match e {
            KeyError::RsaTooSmall { bits } => {
                CertError::KeyTooWeak { subject: subject.clone(), key: format!("RSA-{bits}") }
            }
            other => CertError::PrivateKey(other.to_string()),
        })?;
        let matches = key.verifying_key().map(|k| k.same_key(&public)).unwrap_or(false);
        if !matches {
            return Err(CertError::KeyMismatch { subject });
        }
        if cert.key_usage.is_some_and(|ku| !(ku.digital_signature || ku.non_repudiation)) {
            return Err(CertError::BadKeyUsage {
                subject,
                why: "its keyUsage has neither digitalSignature nor nonRepudiation, so peers will refuse its \
                      signatures (RFC 4945 §5.1.3.2)"
                    .to_string(),
            });
        }
        Ok(HostCredentials { cert, chain, key, tls_key: key_der })
    }

    /// A copy of the private key's DER for rustls' key loader (`KeyProvider::load_private_key`, which takes it
    /// by value and wipes it). The caller must not keep or log it.
    pub(crate) fn tls_key_der(&self) -> PrivateKeyDer<'static> {
        self.tls_key.0.clone_key()
    }

    /// The Main Mode auth method this key signs with: 3 (RSA), 9 (ECDSA P-256) or 10 (ECDSA P-384).
    pub fn auth_method(&self) -> AuthMethod {
        self.key.auth_method()
    }

    /// Key type and size, e.g. `ECDSA P-256`.
    pub fn key_description(&self) -> String {
        self.key.description()
    }

    /// Signs HASH_I or HASH_R (see [`SigningKey::sign`]).
    pub fn sign(&self, hash: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key.sign(hash)
    }

    /// The certificates to send in CERT payloads (DER, host certificate first). `requested` are the CA names
    /// of the peer's CERTREQ payloads; hostsec has one certificate per rule and sends it whatever they name
    /// (as strongSwan and Windows do), with its intermediates.
    pub fn certificates_to_send(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.cert).chain(self.chain.iter()).map(|c| c.der.as_slice())
    }

    /// Whether a CERTREQ naming `ca_name` (DER Name) is answered by this host's chain: the name is the issuer
    /// of the host certificate or of one of its intermediates. An empty CERTREQ asks for any certificate.
    pub fn answers_request(&self, ca_name: &[u8]) -> bool {
        ca_name.is_empty()
            || std::iter::once(&self.cert)
                .chain(self.chain.iter())
                .any(|c| c.issuer_der == ca_name || c.subject_der == ca_name)
    }
}
