//! A test PKI made with rcgen in the tests themselves: root and intermediate CAs, host certificates with ECDSA
//! P-256/P-384 and RSA-2048/3072 keys, CRLs, the broken certificates of the negative suite, and certificate rules
//! loaded from them through in-memory files. Validity is 2020-01-01..2040-01-01 unless a test says otherwise;
//! [`now`] is in the middle. The handshake bench includes this file too.

#![allow(dead_code)]

use hostsec_proto::policy::{ConfigFiles, Policy};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevokedCertParams,
    SanType, SerialNumber, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The key types of the acceptance list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA-2048.
    Rsa2048,
    /// RSA-3072.
    Rsa3072,
}

/// A fresh key of `kind`.
pub fn key(kind: KeyKind) -> KeyPair {
    let key = match kind {
        KeyKind::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        KeyKind::P384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
        KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048),
        KeyKind::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072),
    };
    key.expect("key generation")
}

/// Wall-clock time of the tests: 2030-01-01, inside every default validity period.
pub fn now() -> SystemTime {
    at(2030, 1, 1)
}

/// Midnight UTC of a date, as a `SystemTime`.
pub fn at(year: i32, month: u8, day: u8) -> SystemTime {
    let t = rcgen::date_time_ymd(year, month, day).unix_timestamp();
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).expect("after 1970"))
}

/// A CA: its parameters, key and certificate.
pub struct Ca {
    /// What it was made from (an `Issuer` needs them).
    pub params: CertificateParams,
    /// Its key.
    pub key: KeyPair,
    /// Its certificate.
    pub cert: Certificate,
}

impl Ca {
    /// Certificate as DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Certificate as PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The issuer that signs below this CA.
    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

/// CA parameters: cA with `path_len`, keyCertSign + cRLSign, the default validity.
pub fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    // rcgen starts with a placeholder CN; the tests want C, O, CN in this order, as the vectors have them.
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "XX");
    p.distinguished_name.push(DnType::OrganizationName, "hostsec test");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(path_len.map_or(BasicConstraints::Unconstrained, BasicConstraints::Constrained));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2040, 1, 1);
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

/// A self-signed root CA with a fresh key.
pub fn root(cn: &str, kind: KeyKind) -> Ca {
    root_with(ca_params(cn, None), kind)
}

/// A self-signed root CA from parameters.
pub fn root_with(params: CertificateParams, kind: KeyKind) -> Ca {
    let key = key(kind);
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca { params, key, cert }
}

/// An intermediate CA issued by `issuer`.
pub fn intermediate(cn: &str, issuer: &Ca, kind: KeyKind) -> Ca {
    intermediate_with(ca_params(cn, None), issuer, kind)
}

/// An intermediate CA from parameters, issued by `issuer`.
pub fn intermediate_with(params: CertificateParams, issuer: &Ca, kind: KeyKind) -> Ca {
    let key = key(kind);
    let cert = params.signed_by(&key, &issuer.issuer()).expect("intermediate CA");
    Ca { params, key, cert }
}

/// Host certificate parameters: CN and a DNS subjectAltName `cn`, an IP subjectAltName, digitalSignature,
/// serverAuth + clientAuth (as Windows templates and strongSwan's `pki --flag` make them), the default validity.
pub fn host_params(cn: &str, ip: &str, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::new(vec![cn.to_string()]).expect("params");
    p.subject_alt_names.push(SanType::IpAddress(ip.parse::<IpAddr>().expect("ip")));
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "XX");
    p.distinguished_name.push(DnType::OrganizationName, "hostsec test");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2040, 1, 1);
    p.serial_number = Some(SerialNumber::from(serial));
    p.use_authority_key_identifier_extension = true;
    p
}

/// A host: certificate and key.
pub struct Host {
    /// Its certificate.
    pub cert: Certificate,
    /// Its key.
    pub key: KeyPair,
}

impl Host {
    /// Certificate as DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

/// A host certificate for `cn` (DNS SAN `cn`, IP SAN `ip`) with a fresh key of `kind`, issued by `issuer`.
pub fn host(cn: &str, ip: &str, kind: KeyKind, issuer: &Ca) -> Host {
    host_with(host_params(cn, ip, 1000), kind, issuer)
}

/// A host certificate from parameters.
pub fn host_with(params: CertificateParams, kind: KeyKind, issuer: &Ca) -> Host {
    let key = key(kind);
    let cert = params.signed_by(&key, &issuer.issuer()).expect("host certificate");
    Host { cert, key }
}

/// A CRL of `ca` that revokes `serials`, valid 2029-12-01..2030-02-01.
pub fn crl(ca: &Ca, serials: &[u64]) -> Vec<u8> {
    let params = CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2029, 12, 1),
        next_update: rcgen::date_time_ymd(2030, 2, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: rcgen::date_time_ymd(2029, 12, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(&ca.issuer()).expect("CRL").der().to_vec()
}

/// Files served from memory, as the config loader reads them.
#[derive(Default)]
pub struct MemFiles(HashMap<PathBuf, Vec<u8>>);

impl MemFiles {
    /// Serves `bytes` at `path`.
    pub fn add(&mut self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.0.insert(PathBuf::from(path), bytes.into());
    }
}

impl ConfigFiles for MemFiles {
    fn read_secret(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.read_file(path)
    }
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.0.get(path).cloned().ok_or_else(|| format!("no file {}", path.display()))
    }
}

/// A one-rule policy towards `peer` authenticating with `host` (its certificate file carries `chain` after it)
/// and trusting `cas`, with `extra` lines in the rule.
pub fn cert_policy(peer: &str, host: &Host, chain: &[&Ca], cas: &[&Ca], crl: Option<Vec<u8>>, extra: &str) -> Policy {
    let mut files = MemFiles::default();
    let mut cert = host.cert.pem();
    for ca in chain {
        cert.push_str(&ca.pem());
    }
    files.add("/etc/hostsec/host.pem", cert);
    files.add("/etc/hostsec/host.key", host.key_pem());
    let mut ca_list = Vec::new();
    for (i, ca) in cas.iter().enumerate() {
        let path = format!("/etc/hostsec/ca{i}.pem");
        files.add(&path, ca.pem());
        ca_list.push(format!("\"{path}\""));
    }
    let crls = match crl {
        Some(der) => {
            files.add("/etc/hostsec/ca.crl", der);
            "crls = [\"/etc/hostsec/ca.crl\"]"
        }
        None => "",
    };
    let text = format!(
        "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\nauto = \"none\"\nauthentication = \"certificate\"\n\
         certificate = \"/etc/hostsec/host.pem\"\nprivate_key = \"/etc/hostsec/host.key\"\n\
         trusted_cas = [{}]\n{crls}\n{extra}\n",
        ca_list.join(", ")
    );
    Policy::from_toml("test.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"))
}

/// An RSA public key given as PKCS#1 RSAPublicKey, for certificates whose key rcgen will not generate (RSA-1024).
pub struct RsaPublic(pub Vec<u8>);

impl PublicKeyData for RsaPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_RSA_SHA256
    }
}

/// A certificate for an RSA public key of any size (PKCS#1 RSAPublicKey), issued by `issuer`.
pub fn cert_for_rsa_public(params: &CertificateParams, public: &RsaPublic, issuer: &Ca) -> Certificate {
    params.signed_by(public, &issuer.issuer()).expect("certificate")
}

/// A fresh RSA key of `bits` straight from aws-lc: (PKCS#1 private key DER, PKCS#1 public key DER). rcgen and
/// aws-lc-rs refuse to make keys below 2048 bits, which is what the weak-key tests need.
pub fn raw_rsa(bits: i32) -> (Vec<u8>, Vec<u8>) {
    use aws_lc_sys as ffi;
    // SAFETY: plain aws-lc calls on objects created and freed here; every result is checked.
    unsafe {
        let rsa = ffi::RSA_new();
        let e = ffi::BN_new();
        assert!(!rsa.is_null() && !e.is_null());
        assert_eq!(ffi::BN_set_word(e, 65537), 1);
        assert_eq!(ffi::RSA_generate_key_ex(rsa, bits, e, std::ptr::null_mut()), 1);
        let take = |out: *mut u8, len: usize| {
            let v = std::slice::from_raw_parts(out, len).to_vec();
            ffi::OPENSSL_free(out.cast());
            v
        };
        let (mut out, mut len) = (std::ptr::null_mut(), 0);
        assert_eq!(ffi::RSA_private_key_to_bytes(&mut out, &mut len, rsa), 1);
        let private = take(out, len);
        assert_eq!(ffi::RSA_public_key_to_bytes(&mut out, &mut len, rsa), 1);
        let public = take(out, len);
        ffi::BN_free(e);
        ffi::RSA_free(rsa);
        (private, public)
    }
}
