//! Cryptography for hostsec: the algorithm registry, strength levels, Diffie-Hellman groups, PRFs, the IKEv1
//! key schedule, the cipher that protects IKE messages and the signatures of certificate authentication. Thin
//! wrappers over aws-lc-rs (and, through aws-lc-sys, aws-lc's constant-time BIGNUM for the MODP groups and its
//! raw PKCS#1 v1.5 signing for IKEv1 RSA signatures): no home-made primitives.

pub mod algorithms;
pub mod cipher;
pub mod dh;
pub mod keys;
pub mod prf;
pub mod secret;
pub mod signature;
pub mod strength;

pub use algorithms::{AuthMethod, DhGroup, EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, MainModeSuite};
pub use secret::Secret;
pub use signature::{KeyError, SigningKey, VerifyingKey};
pub use strength::StrengthLevel;

/// Why a cryptographic operation failed. Messages are safe to log: they never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The peer's public value is not acceptable for its group (wrong length, not on the curve, out of range,
    /// not in the prime-order subgroup).
    #[error("invalid {group} public value: {why}")]
    InvalidPublicValue {
        /// The group the value was checked against.
        group: DhGroup,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An input had a length the operation cannot take (e.g. CBC data not a multiple of the block size).
    #[error("invalid length for {0}")]
    InvalidLength(&'static str),
    /// A signature, ICV or other check failed.
    #[error("verification failed")]
    VerificationFailed,
    /// The underlying library reported an error (out of memory and the like).
    #[error("crypto library failure in {0}")]
    Library(&'static str),
}
