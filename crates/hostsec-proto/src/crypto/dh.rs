//! Diffie-Hellman for groups 14, 24 (MODP, through aws-lc's constant-time BIGNUM) and 19, 20 (ECP, through
//! aws-lc-rs). Every peer public value is checked before use. ECP shared secrets are the x coordinate only
//! (RFC 5903 as Windows and strongSwan compute them).

use super::{CryptoError, DhGroup, Secret};
use rand_core::CryptoRngCore;

/// This side's half of a Diffie-Hellman exchange: the private value (zeroized on drop) and the public value
/// as carried in a KE payload body.
pub struct DhKeyPair {
    group: DhGroup,
    // private state is implementation-defined
    public: Vec<u8>,
}

impl DhKeyPair {
    /// Draws a fresh private value from `rng` (deterministic for a seeded RNG, which the tests rely on).
    pub fn generate(group: DhGroup, rng: &mut dyn CryptoRngCore) -> Result<Self, CryptoError> {
        let _ = (group, rng);
        todo!()
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
        let _ = peer_public;
        todo!()
    }
}

/// Checks a peer public value for `group` without computing anything secret: ECP points on the curve; MODP
/// 1 < y < p-1, and y^q = 1 mod p for group 24.
pub fn validate_public_value(group: DhGroup, value: &[u8]) -> Result<(), CryptoError> {
    let _ = (group, value);
    todo!()
}
