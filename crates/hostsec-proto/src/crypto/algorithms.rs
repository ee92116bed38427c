//! The algorithm registry: the algorithms hostsec implements, their wire identifiers, their sizes and the names
//! that logs, `hostsec sas` and the JSON output use (SPEC §7).

use crate::wire::consts::{auth_method, dh_group, esp_transform, ike_encr, ike_hash, ipsec_auth};
use std::fmt;

/// A Diffie-Hellman group that hostsec implements (the seed's four).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DhGroup {
    /// 2048-bit MODP group 14 (RFC 3526 §3).
    Modp2048,
    /// 2048-bit MODP group 24 with a 256-bit prime-order subgroup (RFC 5114 §2.3).
    Modp2048s256,
    /// ECP group 19, NIST P-256 (RFC 5903).
    Ecp256,
    /// ECP group 20, NIST P-384 (RFC 5903).
    Ecp384,
}

impl DhGroup {
    /// Every group, in hostsec's order of preference as initiator.
    pub const ALL: [DhGroup; 4] = [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Modp2048, DhGroup::Modp2048s256];

    /// The group from its IANA number, if hostsec implements it.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            dh_group::MODP_2048 => Some(Self::Modp2048),
            dh_group::MODP_2048_S256 => Some(Self::Modp2048s256),
            dh_group::ECP_256 => Some(Self::Ecp256),
            dh_group::ECP_384 => Some(Self::Ecp384),
            _ => None,
        }
    }

    /// The IANA group number.
    pub fn id(self) -> u16 {
        match self {
            Self::Modp2048 => dh_group::MODP_2048,
            Self::Modp2048s256 => dh_group::MODP_2048_S256,
            Self::Ecp256 => dh_group::ECP_256,
            Self::Ecp384 => dh_group::ECP_384,
        }
    }

    /// Length of the KE payload body: the MODP value padded to the prime's length, or x | y for ECP.
    pub fn public_len(self) -> usize {
        match self {
            Self::Modp2048 | Self::Modp2048s256 => 256,
            Self::Ecp256 => 64,
            Self::Ecp384 => 96,
        }
    }

    /// Length of the shared secret g^xy (ECP: the x coordinate only, RFC 5903 as Windows and strongSwan do).
    pub fn shared_len(self) -> usize {
        match self {
            Self::Modp2048 | Self::Modp2048s256 => 256,
            Self::Ecp256 => 32,
            Self::Ecp384 => 48,
        }
    }

    /// Security strength in bits (NIST SP 800-57 part 1 table 2).
    pub fn strength_bits(self) -> u16 {
        match self {
            Self::Modp2048 | Self::Modp2048s256 => 112,
            Self::Ecp256 => 128,
            Self::Ecp384 => 192,
        }
    }

    /// The name used in logs and the CLI, as strongSwan spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Modp2048 => "modp2048",
            Self::Modp2048s256 => "modp2048s256",
            Self::Ecp256 => "ecp256",
            Self::Ecp384 => "ecp384",
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (group {})", self.name(), self.id())
    }
}

/// The hash algorithm of a phase-1 SA; the PRF is HMAC over it (RFC 2409 §4: no PRF attribute means HMAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    /// SHA-1.
    Sha1,
    /// SHA2-256.
    Sha256,
    /// SHA2-384.
    Sha384,
}

impl HashAlg {
    /// The hash from its phase-1 attribute value.
    pub fn from_ike_id(id: u16) -> Option<Self> {
        match id {
            ike_hash::SHA1 => Some(Self::Sha1),
            ike_hash::SHA2_256 => Some(Self::Sha256),
            ike_hash::SHA2_384 => Some(Self::Sha384),
            _ => None,
        }
    }

    /// The phase-1 attribute value.
    pub fn ike_id(self) -> u16 {
        match self {
            Self::Sha1 => ike_hash::SHA1,
            Self::Sha256 => ike_hash::SHA2_256,
            Self::Sha384 => ike_hash::SHA2_384,
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
        }
    }

    /// The name used in logs and the JSON output (SPEC §7: `sha1` | `sha256` | `sha384`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The cipher that protects phase-1 and phase-2 negotiation messages (AES-CBC, RFC 3602; no GCM in IKEv1 Main Mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IkeCipher {
    /// AES-CBC with a 128-bit key.
    AesCbc128,
    /// AES-CBC with a 192-bit key.
    AesCbc192,
    /// AES-CBC with a 256-bit key.
    AesCbc256,
}

impl IkeCipher {
    /// AES block size, which is also the IV length (RFC 3602).
    pub const BLOCK_LEN: usize = 16;

    /// The cipher from its phase-1 attributes (encryption algorithm and key length in bits).
    pub fn from_ike_attrs(encr: u16, key_bits: Option<u16>) -> Option<Self> {
        match (encr, key_bits) {
            (ike_encr::AES_CBC, Some(128)) => Some(Self::AesCbc128),
            (ike_encr::AES_CBC, Some(192)) => Some(Self::AesCbc192),
            (ike_encr::AES_CBC, Some(256)) => Some(Self::AesCbc256),
            _ => None,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::AesCbc128 => 16,
            Self::AesCbc192 => 24,
            Self::AesCbc256 => 32,
        }
    }

    /// Key length in bits, as carried in the key length attribute.
    pub fn key_bits(self) -> u16 {
        (self.key_len() * 8) as u16
    }

    /// The name used in logs and the JSON output (SPEC §7, e.g. `aes-cbc-256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCbc128 => "aes-cbc-128",
            Self::AesCbc192 => "aes-cbc-192",
            Self::AesCbc256 => "aes-cbc-256",
        }
    }
}

impl fmt::Display for IkeCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Phase-1 authentication method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    /// Pre-shared key (method 1).
    Psk,
    /// RSA signature (method 3): PKCS#1 v1.5 over the bare hash.
    RsaSig,
    /// ECDSA P-256 with SHA-256 (method 9, RFC 4754).
    EcdsaP256,
    /// ECDSA P-384 with SHA-384 (method 10, RFC 4754).
    EcdsaP384,
}

impl AuthMethod {
    /// The method from its attribute value.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            auth_method::PSK => Some(Self::Psk),
            auth_method::RSA_SIG => Some(Self::RsaSig),
            auth_method::ECDSA_SHA256_P256 => Some(Self::EcdsaP256),
            auth_method::ECDSA_SHA384_P384 => Some(Self::EcdsaP384),
            _ => None,
        }
    }

    /// The attribute value.
    pub fn id(self) -> u16 {
        match self {
            Self::Psk => auth_method::PSK,
            Self::RsaSig => auth_method::RSA_SIG,
            Self::EcdsaP256 => auth_method::ECDSA_SHA256_P256,
            Self::EcdsaP384 => auth_method::ECDSA_SHA384_P384,
        }
    }

    /// The name used in the JSON output (SPEC §7: `psk` | `rsa` | `ecdsa-p256` | `ecdsa-p384`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Psk => "psk",
            Self::RsaSig => "rsa",
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The encryption part of an ESP transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EspCipher {
    /// AES-GCM with a 16-octet ICV and a 128-bit key (RFC 4106).
    AesGcm16_128,
    /// AES-GCM-16 with a 192-bit key.
    AesGcm16_192,
    /// AES-GCM-16 with a 256-bit key.
    AesGcm16_256,
    /// AES-CBC with a 128-bit key (RFC 3602).
    AesCbc128,
    /// AES-CBC with a 192-bit key.
    AesCbc192,
    /// AES-CBC with a 256-bit key.
    AesCbc256,
}

impl EspCipher {
    /// The cipher from the ESP transform ID and key length attribute (bits).
    pub fn from_wire(transform_id: u8, key_bits: Option<u16>) -> Option<Self> {
        match (transform_id, key_bits) {
            (esp_transform::AES_GCM_16, Some(128)) => Some(Self::AesGcm16_128),
            (esp_transform::AES_GCM_16, Some(192)) => Some(Self::AesGcm16_192),
            (esp_transform::AES_GCM_16, Some(256)) => Some(Self::AesGcm16_256),
            (esp_transform::AES_CBC, Some(128)) => Some(Self::AesCbc128),
            (esp_transform::AES_CBC, Some(192)) => Some(Self::AesCbc192),
            (esp_transform::AES_CBC, Some(256)) => Some(Self::AesCbc256),
            _ => None,
        }
    }

    /// ESP transform ID.
    pub fn transform_id(self) -> u8 {
        if self.is_aead() {
            esp_transform::AES_GCM_16
        } else {
            esp_transform::AES_CBC
        }
    }

    /// Key length in bits (the key length attribute; RFC 4106 §8.4 excludes the salt).
    pub fn key_bits(self) -> u16 {
        match self {
            Self::AesGcm16_128 | Self::AesCbc128 => 128,
            Self::AesGcm16_192 | Self::AesCbc192 => 192,
            Self::AesGcm16_256 | Self::AesCbc256 => 256,
        }
    }

    /// Whether this is an AEAD (which then needs no integrity algorithm).
    pub fn is_aead(self) -> bool {
        matches!(self, Self::AesGcm16_128 | Self::AesGcm16_192 | Self::AesGcm16_256)
    }

    /// Bytes of KEYMAT this cipher takes: the key, plus the 4-byte salt for GCM (RFC 4106 §8.1).
    pub fn keymat_len(self) -> usize {
        usize::from(self.key_bits() / 8) + if self.is_aead() { 4 } else { 0 }
    }

    /// The name used in logs and the JSON output (SPEC §7).
    pub fn name(self) -> &'static str {
        match self {
            Self::AesGcm16_128 => "aes-gcm-16-128",
            Self::AesGcm16_192 => "aes-gcm-16-192",
            Self::AesGcm16_256 => "aes-gcm-16-256",
            Self::AesCbc128 => "aes-cbc-128",
            Self::AesCbc192 => "aes-cbc-192",
            Self::AesCbc256 => "aes-cbc-256",
        }
    }
}

/// The integrity part of an ESP transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EspIntegrity {
    /// No separate integrity algorithm (AEAD ciphers).
    None,
    /// HMAC-SHA-1-96 (RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868).
    HmacSha256_128,
}

impl EspIntegrity {
    /// The integrity algorithm from the phase-2 authentication algorithm attribute.
    pub fn from_wire(auth_alg: Option<u16>) -> Option<Self> {
        match auth_alg {
            None => Some(Self::None),
            Some(ipsec_auth::HMAC_SHA1) => Some(Self::HmacSha1_96),
            Some(ipsec_auth::HMAC_SHA2_256) => Some(Self::HmacSha256_128),
            Some(_) => None,
        }
    }

    /// The phase-2 authentication algorithm attribute value, if any.
    pub fn auth_alg(self) -> Option<u16> {
        match self {
            Self::None => None,
            Self::HmacSha1_96 => Some(ipsec_auth::HMAC_SHA1),
            Self::HmacSha256_128 => Some(ipsec_auth::HMAC_SHA2_256),
        }
    }

    /// Key length in bytes (RFC 2404: 20; RFC 4868: 32).
    pub fn key_len(self) -> usize {
        match self {
            Self::None => 0,
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
        }
    }

    /// ICV length in bytes.
    pub fn icv_len(self) -> usize {
        match self {
            Self::None => 0,
            Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
        }
    }

    /// The name used in logs and the JSON output (SPEC §7).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::HmacSha1_96 => "hmac-sha1-96",
            Self::HmacSha256_128 => "hmac-sha256-128",
        }
    }
}

/// A complete ESP transform: cipher and integrity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EspTransform {
    /// The encryption algorithm.
    pub cipher: EspCipher,
    /// The integrity algorithm (`None` exactly when the cipher is an AEAD).
    pub integrity: EspIntegrity,
}

impl EspTransform {
    /// Bytes of KEYMAT per direction: encryption key (with salt) followed by the integrity key (RFC 2409 §5.5).
    pub fn keymat_len(self) -> usize {
        self.cipher.keymat_len() + self.integrity.key_len()
    }

    /// The name used in logs, e.g. `aes-cbc-256/hmac-sha256-128` or `aes-gcm-16-128`.
    pub fn name(self) -> String {
        if self.integrity == EspIntegrity::None {
            self.cipher.name().to_string()
        } else {
            format!("{}/{}", self.cipher.name(), self.integrity.name())
        }
    }
}

impl EspTransform {
    /// Every transform hostsec implements.
    pub const ALL: [EspTransform; 9] = [
        EspTransform { cipher: EspCipher::AesGcm16_128, integrity: EspIntegrity::None },
        EspTransform { cipher: EspCipher::AesGcm16_192, integrity: EspIntegrity::None },
        EspTransform { cipher: EspCipher::AesGcm16_256, integrity: EspIntegrity::None },
        EspTransform { cipher: EspCipher::AesCbc128, integrity: EspIntegrity::HmacSha1_96 },
        EspTransform { cipher: EspCipher::AesCbc192, integrity: EspIntegrity::HmacSha1_96 },
        EspTransform { cipher: EspCipher::AesCbc256, integrity: EspIntegrity::HmacSha1_96 },
        EspTransform { cipher: EspCipher::AesCbc128, integrity: EspIntegrity::HmacSha256_128 },
        EspTransform { cipher: EspCipher::AesCbc192, integrity: EspIntegrity::HmacSha256_128 },
        EspTransform { cipher: EspCipher::AesCbc256, integrity: EspIntegrity::HmacSha256_128 },
    ];

    /// The transform named as [`EspTransform::name`] prints it (`aes-gcm-16-128`, `aes-cbc-256/hmac-sha256-128`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for EspTransform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A phase-1 suite: what one Main Mode transform fixes (besides authentication and lifetime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MainModeSuite {
    /// Cipher protecting MM5/MM6 and later messages.
    pub cipher: IkeCipher,
    /// Hash and PRF.
    pub hash: HashAlg,
    /// Diffie-Hellman group.
    pub group: DhGroup,
}

impl MainModeSuite {
    /// The suite named as its `Display` prints it (`aes-cbc-256/sha256/ecp256`).
    pub fn from_name(name: &str) -> Option<Self> {
        let mut parts = name.split('/');
        let (c, h, g) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let cipher =
            [IkeCipher::AesCbc128, IkeCipher::AesCbc192, IkeCipher::AesCbc256].into_iter().find(|x| x.name() == c)?;
        let hash = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384].into_iter().find(|x| x.name() == h)?;
        let group = DhGroup::ALL.into_iter().find(|x| x.name() == g)?;
        Some(MainModeSuite { cipher, hash, group })
    }
}

impl fmt::Display for MainModeSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cipher.name(), self.hash.name(), self.group.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in EspTransform::ALL {
            assert_eq!(EspTransform::from_name(&t.name()), Some(t));
        }
        let s = MainModeSuite { cipher: IkeCipher::AesCbc192, hash: HashAlg::Sha384, group: DhGroup::Modp2048s256 };
        assert_eq!(MainModeSuite::from_name(&s.to_string()), Some(s));
        assert_eq!(MainModeSuite::from_name("aes-cbc-256/md5/ecp256"), None);
        assert_eq!(EspTransform::from_name("3des"), None);
    }
}
