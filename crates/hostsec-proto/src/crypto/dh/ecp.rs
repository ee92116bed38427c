//! ECP groups 19 and 20 (NIST P-256, P-384) through aws-lc-rs ECDH. KE bodies carry x | y without the SEC 1
//! point-format byte and the shared secret is the x coordinate alone (RFC 5903 §7 and §9).

use super::invalid;
use crate::crypto::{CryptoError, DhGroup, Secret};
use aws_lc_rs::agreement::{self, ParsedPublicKey, PrivateKey, UnparsedPublicKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

/// SEC 1 uncompressed point: 0x04 | x | y.
const UNCOMPRESSED: u8 = 0x04;
/// Longest encoded point (P-384: 1 + 2 * 48).
const MAX_POINT: usize = 1 + 96;
/// Longest scalar (P-384).
const MAX_SCALAR: usize = 48;
/// Draws before giving up on finding a scalar in [1, n-1]. A 256/384-bit draw falls outside with probability
/// below 2^-32 for both curves, so reaching this means a broken RNG.
const MAX_DRAWS: usize = 64;

/// The aws-lc-rs algorithm of an ECP group (the callers in this module only pass groups 19 and 20).
fn algorithm(group: DhGroup) -> &'static agreement::Algorithm {
    match group {
        DhGroup::Ecp384 => &agreement::ECDH_P384,
        DhGroup::Ecp256 | DhGroup::Modp2048 | DhGroup::Modp2048s256 => &agreement::ECDH_P256,
    }
}

/// Scalar length: the coordinate length, half the KE body.
fn scalar_len(group: DhGroup) -> usize {
    group.public_len() / 2
}

/// Draws the scalar from the caller's RNG (so that seeded runs are reproducible) and lets aws-lc reject values
/// outside [1, n-1]: rejection sampling, so the accepted scalar is uniform.
pub(super) fn generate(group: DhGroup, rng: &mut dyn CryptoRngCore) -> Result<(PrivateKey, Vec<u8>), CryptoError> {
    let len = scalar_len(group);
    let mut scalar = Zeroizing::new([0u8; MAX_SCALAR]);
    for _ in 0..MAX_DRAWS {
        rng.try_fill_bytes(&mut scalar[..len]).map_err(|_| CryptoError::Library("random number generator"))?;
        if let Ok(key) = PrivateKey::from_private_key(algorithm(group), &scalar[..len]) {
            let public = public_value(group, &key)?;
            return Ok((key, public));
        }
    }
    Err(CryptoError::Library("ECP private scalar generation"))
}

/// Imports a known scalar (known-answer tests).
pub(super) fn from_private_bytes(group: DhGroup, scalar: &[u8]) -> Result<(PrivateKey, Vec<u8>), CryptoError> {
    if scalar.len() != scalar_len(group) {
        return Err(CryptoError::InvalidLength("ECP private scalar"));
    }
    let key = PrivateKey::from_private_key(algorithm(group), scalar)
        .map_err(|_| CryptoError::Library("ECP private scalar out of range"))?;
    let public = public_value(group, &key)?;
    Ok((key, public))
}

/// x | y: the uncompressed SEC 1 encoding without its 0x04 byte (RFC 5903 §7).
fn public_value(group: DhGroup, key: &PrivateKey) -> Result<Vec<u8>, CryptoError> {
    let public = key.compute_public_key().map_err(|_| CryptoError::Library("ECP public key"))?;
    match public.as_ref().split_first() {
        Some((&UNCOMPRESSED, xy)) if xy.len() == group.public_len() => Ok(xy.to_vec()),
        _ => Err(CryptoError::Library("ECP public key encoding")),
    }
}

/// The peer's x | y as 0x04 | x | y in `buf`, after the checks that need no curve arithmetic.
fn encode_peer<'a>(group: DhGroup, value: &[u8], buf: &'a mut [u8; MAX_POINT]) -> Result<&'a [u8], CryptoError> {
    if value.len() != group.public_len() {
        return Err(invalid(group, "wrong length"));
    }
    // Not a point on either curve (b != 0), and the form a careless peer would send for the point at infinity.
    if value.iter().all(|&b| b == 0) {
        return Err(invalid(group, "all zero"));
    }
    buf[0] = UNCOMPRESSED;
    buf[1..=value.len()].copy_from_slice(value);
    Ok(&buf[..=value.len()])
}

/// Parses the point as aws-lc does for ECDH: `EC_POINT_oct2point` rejects coordinates outside [0, p-1] and
/// points off the curve. Both curves have cofactor 1, so a point on the curve is in the prime-order group, and
/// the uncompressed encoding cannot express the point at infinity.
pub(super) fn validate(group: DhGroup, value: &[u8]) -> Result<(), CryptoError> {
    let mut buf = [0u8; MAX_POINT];
    let point = encode_peer(group, value, &mut buf)?;
    ParsedPublicKey::try_from(&UnparsedPublicKey::new(algorithm(group), point))
        .map(|_| ())
        .map_err(|_| invalid(group, "not a point on the curve"))
}

/// ECDH with the peer's point; aws-lc checks the point again (on the curve, right curve) before using it.
pub(super) fn agree(group: DhGroup, key: &PrivateKey, peer: &[u8]) -> Result<Secret, CryptoError> {
    let mut buf = [0u8; MAX_POINT];
    let point = encode_peer(group, peer, &mut buf)?;
    let secret = agreement::agree(
        key,
        UnparsedPublicKey::new(algorithm(group), point),
        invalid(group, "not a point on the curve"),
        |x| Ok(Secret::from_slice(x)),
    )?;
    if secret.len() != group.shared_len() {
        return Err(CryptoError::Library("ECDH output length"));
    }
    Ok(secret)
}
