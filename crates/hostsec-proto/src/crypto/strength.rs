//! Encryption groups (SPEC §3): a rule names a minimum strength level, and the level alone decides which
//! Main Mode suites, ESP transforms and PFS groups are offered and accepted. Nothing below the level is ever
//! offered nor accepted, and every refusal can say in words why an algorithm fell short.

use super::algorithms::{DhGroup, EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, MainModeSuite};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A minimum strength level, weakest first so that `Ord` compares strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StrengthLevel {
    /// 112-bit security: AES-CBC, SHA-1 and SHA-2, DH 14/24/19/20.
    #[default]
    Standard,
    /// 128-bit security: SHA-2 only, ECP groups only.
    High,
    /// 192-bit security: AES-256, SHA-384, P-384, AES-GCM-256.
    Highest,
}

impl StrengthLevel {
    /// Every level, weakest first.
    pub const ALL: [StrengthLevel; 3] = [Self::Standard, Self::High, Self::Highest];

    /// The level's name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::High => "high",
            Self::Highest => "highest",
        }
    }

    /// The level from its config name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The weakest level that accepts `suite`, or why no level does.
    fn main_mode_rank(suite: MainModeSuite) -> StrengthLevel {
        let cipher = match suite.cipher {
            IkeCipher::AesCbc256 => Self::Highest,
            IkeCipher::AesCbc128 | IkeCipher::AesCbc192 => Self::High,
        };
        let hash = match suite.hash {
            HashAlg::Sha384 => Self::Highest,
            HashAlg::Sha256 => Self::High,
            HashAlg::Sha1 => Self::Standard,
        };
        cipher.min(hash).min(Self::group_rank(suite.group))
    }

    fn group_rank(group: DhGroup) -> StrengthLevel {
        match group {
            DhGroup::Ecp384 => Self::Highest,
            DhGroup::Ecp256 => Self::High,
            DhGroup::Modp2048 | DhGroup::Modp2048s256 => Self::Standard,
        }
    }

    fn esp_rank(t: EspTransform) -> StrengthLevel {
        match (t.cipher, t.integrity) {
            (EspCipher::AesGcm16_256, EspIntegrity::None) => Self::Highest,
            (c, EspIntegrity::None) if c.is_aead() => Self::High,
            (c, EspIntegrity::HmacSha256_128) if !c.is_aead() => Self::High,
            (c, EspIntegrity::HmacSha1_96) if !c.is_aead() => Self::Standard,
            // An AEAD with a separate integrity algorithm, or CBC without one, is not a valid transform at all.
            _ => Self::Standard,
        }
    }

    /// Whether a Main Mode suite meets this level; `Err` says in words what falls short.
    pub fn check_main_mode(self, suite: MainModeSuite) -> Result<(), String> {
        let mut short = Vec::new();
        if self >= Self::Highest && suite.cipher != IkeCipher::AesCbc256 {
            short.push(format!("{} is below level {} (needs aes-cbc-256)", suite.cipher, self));
        }
        let hash_rank = match suite.hash {
            HashAlg::Sha384 => Self::Highest,
            HashAlg::Sha256 => Self::High,
            HashAlg::Sha1 => Self::Standard,
        };
        if hash_rank < self {
            short.push(format!("hash {} is below level {}", suite.hash, self));
        }
        if Self::group_rank(suite.group) < self {
            short.push(format!("DH {} is below level {}", suite.group, self));
        }
        debug_assert_eq!(short.is_empty(), Self::main_mode_rank(suite) >= self);
        if short.is_empty() {
            Ok(())
        } else {
            Err(short.join(", "))
        }
    }

    /// Whether an ESP transform meets this level; `Err` says why not.
    pub fn check_esp(self, t: EspTransform) -> Result<(), String> {
        let valid = t.cipher.is_aead() == (t.integrity == EspIntegrity::None);
        if !valid {
            return Err(format!("{} is not a valid ESP transform", t));
        }
        if Self::esp_rank(t) >= self {
            Ok(())
        } else {
            Err(format!("ESP {} is below level {}", t, self))
        }
    }

    /// Whether a PFS group meets this level; `Err` says why not.
    pub fn check_pfs_group(self, group: DhGroup) -> Result<(), String> {
        if Self::group_rank(group) >= self {
            Ok(())
        } else {
            Err(format!("PFS {} is below level {}", group, self))
        }
    }

    /// The Main Mode suites this level offers, in order of preference (ECP-256 first: 128-bit strength at a
    /// fraction of the cost of MODP-2048; then the other groups; AES-256 before AES-128 before AES-192;
    /// SHA-256 before SHA-384 before SHA-1).
    pub fn main_mode_suites(self) -> Vec<MainModeSuite> {
        let mut out = Vec::new();
        for group in DhGroup::ALL {
            for cipher in [IkeCipher::AesCbc256, IkeCipher::AesCbc128, IkeCipher::AesCbc192] {
                for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha1] {
                    let suite = MainModeSuite { cipher, hash, group };
                    if self.check_main_mode(suite).is_ok() {
                        out.push(suite);
                    }
                }
            }
        }
        out
    }

    /// The ESP transforms this level offers, in order of preference (AEAD first).
    pub fn esp_transforms(self) -> Vec<EspTransform> {
        let mut out = Vec::new();
        for cipher in [EspCipher::AesGcm16_256, EspCipher::AesGcm16_128, EspCipher::AesGcm16_192] {
            out.push(EspTransform { cipher, integrity: EspIntegrity::None });
        }
        for integrity in [EspIntegrity::HmacSha256_128, EspIntegrity::HmacSha1_96] {
            for cipher in [EspCipher::AesCbc256, EspCipher::AesCbc128, EspCipher::AesCbc192] {
                out.push(EspTransform { cipher, integrity });
            }
        }
        out.retain(|t| self.check_esp(*t).is_ok());
        out
    }

    /// The PFS groups this level accepts, in order of preference.
    pub fn pfs_groups(self) -> Vec<DhGroup> {
        DhGroup::ALL.into_iter().filter(|g| self.check_pfs_group(*g).is_ok()).collect()
    }
}

impl fmt::Display for StrengthLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_match_spec_table() {
        // SPEC §3: standard = 3 ciphers x 3 hashes x 4 groups; high = 3 x 2 x 2; highest = 1 x 1 x 1.
        assert_eq!(StrengthLevel::Standard.main_mode_suites().len(), 36);
        assert_eq!(StrengthLevel::High.main_mode_suites().len(), 12);
        assert_eq!(
            StrengthLevel::Highest.main_mode_suites(),
            vec![MainModeSuite { cipher: IkeCipher::AesCbc256, hash: HashAlg::Sha384, group: DhGroup::Ecp384 }]
        );
        assert_eq!(StrengthLevel::Standard.esp_transforms().len(), 9);
        assert_eq!(StrengthLevel::High.esp_transforms().len(), 6);
        assert_eq!(
            StrengthLevel::Highest.esp_transforms(),
            vec![EspTransform { cipher: EspCipher::AesGcm16_256, integrity: EspIntegrity::None }]
        );
        assert_eq!(StrengthLevel::Standard.pfs_groups().len(), 4);
        assert_eq!(StrengthLevel::High.pfs_groups(), vec![DhGroup::Ecp256, DhGroup::Ecp384]);
        assert_eq!(StrengthLevel::Highest.pfs_groups(), vec![DhGroup::Ecp384]);
    }

    #[test]
    fn higher_levels_are_subsets() {
        for pair in StrengthLevel::ALL.windows(2) {
            let (lo, hi) = (pair[0], pair[1]);
            assert!(hi.main_mode_suites().iter().all(|s| lo.main_mode_suites().contains(s)));
            assert!(hi.esp_transforms().iter().all(|t| lo.esp_transforms().contains(t)));
            assert!(hi.pfs_groups().iter().all(|g| lo.pfs_groups().contains(g)));
        }
    }

    #[test]
    fn refusals_say_why() {
        let s = MainModeSuite { cipher: IkeCipher::AesCbc128, hash: HashAlg::Sha1, group: DhGroup::Modp2048 };
        let why = StrengthLevel::High.check_main_mode(s).unwrap_err();
        assert!(why.contains("hash sha1 is below level high"), "{why}");
        assert!(why.contains("modp2048"), "{why}");
        let cbc_sha1 = EspTransform { cipher: EspCipher::AesCbc256, integrity: EspIntegrity::HmacSha1_96 };
        assert!(StrengthLevel::High.check_esp(cbc_sha1).unwrap_err().contains("below level high"));
        let bogus = EspTransform { cipher: EspCipher::AesGcm16_128, integrity: EspIntegrity::HmacSha1_96 };
        assert!(StrengthLevel::Standard.check_esp(bogus).is_err());
    }
}
