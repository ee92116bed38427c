//! Diffie-Hellman for groups 14, 24 (MODP, through aws-lc's constant-time BIGNUM) and 19, 20 (ECP, through
//! aws-lc-rs). Every peer public value is checked before use. ECP shared secrets are the x coordinate only
//! (RFC 5903 as Windows and strongSwan compute them).

mod ecp;
mod modp;

use super::{CryptoError, DhGroup, Secret};
use aws_lc_rs::agreement;
use rand_core::CryptoRngCore;
use std::fmt;

/// The private half, per kind of group.
enum PrivateValue {
    /// The exponent as fixed-length big-endian bytes (zeroized on drop). Kept as bytes rather than as a BIGNUM
    /// so that the key pair stays `Send + Sync` without unsafe code; the conversion costs nanoseconds next to
    /// the exponentiation.
    Modp(Secret),
    /// aws-lc's EC key; aws-lc wipes its memory when it is freed (`OPENSSL_free` cleanses).
    Ecp(agreement::PrivateKey),
}

/// This side's half of a Diffie-Hellman exchange: the private value (zeroized on drop) and the public value
/// as carried in a KE payload body.
pub struct DhKeyPair {
    group: DhGroup,
    private: PrivateValue,
    public: Vec<u8>,
}

impl DhKeyPair {
    /// Draws a fresh private value from `rng` (deterministic for a seeded RNG, which the tests rely on).
    pub fn generate(group: DhGroup, rng: &mut dyn CryptoRngCore) -> Result<Self, CryptoError> {
        let (private, public) = match group {
            DhGroup::Modp2048 | DhGroup::Modp2048s256 => {
                let (exponent, public) = modp::generate(group, rng)?;
                (PrivateValue::Modp(exponent), public)
            }
            DhGroup::Ecp256 | DhGroup::Ecp384 => {
                let (key, public) = ecp::generate(group, rng)?;
                (PrivateValue::Ecp(key), public)
            }
        };
        Ok(DhKeyPair { group, private, public })
    }

    /// Builds a key pair from a known private value, for known-answer tests (RFC 5903 §8, RFC 5114 appendix A)
    /// only: production code draws private values with [`DhKeyPair::generate`]. MODP: big-endian exponent,
    /// 1 < x < p-1 (group 24: 1 <= x < q); ECP: the scalar, exactly the curve's length, 1 <= d < n.
    #[doc(hidden)]
    pub fn from_private_bytes_for_test(group: DhGroup, private: &[u8]) -> Result<Self, CryptoError> {
        let (private, public) = match group {
            DhGroup::Modp2048 | DhGroup::Modp2048s256 => {
                let (exponent, public) = modp::from_private_bytes(group, private)?;
                (PrivateValue::Modp(exponent), public)
            }
            DhGroup::Ecp256 | DhGroup::Ecp384 => {
                let (key, public) = ecp::from_private_bytes(group, private)?;
                (PrivateValue::Ecp(key), public)
            }
        };
        Ok(DhKeyPair { group, private, public })
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value, exactly as a KE payload body carries it (MODP: big-endian, left-padded to the prime's
    /// length; ECP: x | y without a point-format byte, RFC 5903 §7).
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// Checks the peer's public value and computes the shared secret g^xy (fixed length: MODP padded to the
    /// prime length, ECP the x coordinate).
    pub fn agree(&self, peer_public: &[u8]) -> Result<Secret, CryptoError> {
        match &self.private {
            PrivateValue::Modp(exponent) => modp::agree(self.group, exponent, peer_public),
            PrivateValue::Ecp(key) => ecp::agree(self.group, key, peer_public),
        }
    }
}

/// Shows the group and the public value; the private value never appears.
impl fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhKeyPair")
            .field("group", &self.group)
            .field("public", &hex::encode(&self.public))
            .finish_non_exhaustive()
    }
}

/// Checks a peer public value for `group` without computing anything secret: ECP points on the curve; MODP
/// 1 < y < p-1, and y^q = 1 mod p for group 24.
pub fn validate_public_value(group: DhGroup, value: &[u8]) -> Result<(), CryptoError> {
    match group {
        DhGroup::Modp2048 | DhGroup::Modp2048s256 => modp::validate(group, value),
        DhGroup::Ecp256 | DhGroup::Ecp384 => ecp::validate(group, value),
    }
}

/// The error for a peer value that fails a check.
fn invalid(group: DhGroup, why: &'static str) -> CryptoError {
    CryptoError::InvalidPublicValue { group, why }
}
