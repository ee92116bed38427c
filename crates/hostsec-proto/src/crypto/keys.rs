//! The IKEv1 key schedule (RFC 2409 §5, §5.5 and appendix B): SKEYID and its children, the encryption key Ka,
//! the phase-1 and per-exchange IVs, the authentication hashes and KEYMAT.

use super::prf::Digest;
use super::{HashAlg, IkeCipher, Secret};

/// Phase-1 keys of an ISAKMP SA.
#[derive(Debug, Clone)]
pub struct Phase1Keys {
    /// SKEYID.
    pub skeyid: Secret,
    /// SKEYID_d: keys Quick Mode KEYMAT.
    pub skeyid_d: Secret,
    /// SKEYID_a: authenticates Quick Mode and Informational messages.
    pub skeyid_a: Secret,
    /// SKEYID_e.
    pub skeyid_e: Secret,
    /// The encryption key Ka (SKEYID_e cut or expanded per appendix B).
    pub ka: Secret,
    /// The IV of MM5: hash(g^xi | g^xr) cut to the block size.
    pub initial_iv: [u8; 16],
}

/// SKEYID for pre-shared keys: prf(pre-shared-key, Ni_b | Nr_b).
pub fn skeyid_psk(hash: HashAlg, psk: &[u8], ni_b: &[u8], nr_b: &[u8]) -> Secret {
    let _ = (hash, psk, ni_b, nr_b);
    todo!()
}

/// SKEYID for signatures: prf(Ni_b | Nr_b, g^xy).
pub fn skeyid_signature(hash: HashAlg, ni_b: &[u8], nr_b: &[u8], g_xy: &[u8]) -> Secret {
    let _ = (hash, ni_b, nr_b, g_xy);
    todo!()
}

/// SKEYID_d/a/e from SKEYID (RFC 2409 §5), Ka per appendix B (K1 = prf(SKEYID_e, 0x00) when SKEYID_e is shorter
/// than the key, as strongSwan does), and the phase-1 IV hash(g^xi | g^xr).
#[allow(clippy::too_many_arguments)]
pub fn derive_phase1(
    hash: HashAlg,
    cipher: IkeCipher,
    skeyid: Secret,
    g_xy: &[u8],
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    g_xi: &[u8],
    g_xr: &[u8],
) -> Phase1Keys {
    let _ = (hash, cipher, skeyid, g_xy, cky_i, cky_r, g_xi, g_xr);
    todo!()
}

/// HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b) and HASH_R (same with the roles swapped
/// and IDir_b). Pass the values in the order of the formula for the hash wanted.
pub fn auth_hash(hash: HashAlg, skeyid: &[u8], g_x_own: &[u8], g_x_peer: &[u8], cky_own: &[u8; 8], cky_peer: &[u8; 8], sai_b: &[u8], id_b: &[u8]) -> Digest {
    let _ = (hash, skeyid, g_x_own, g_x_peer, cky_own, cky_peer, sai_b, id_b);
    todo!()
}

/// The IV of a Quick Mode or Informational exchange: hash(last phase-1 CBC block | M-ID) cut to the block size.
pub fn exchange_iv(hash: HashAlg, last_phase1_block: &[u8; 16], message_id: u32) -> [u8; 16] {
    let _ = (hash, last_phase1_block, message_id);
    todo!()
}

/// KEYMAT for one direction of an ESP SA (RFC 2409 §5.5): K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI |
/// Ni_b | Nr_b), Kn = prf(SKEYID_d, Kn-1 | the same), concatenated and cut to `len`.
#[allow(clippy::too_many_arguments)]
pub fn keymat(
    hash: HashAlg,
    skeyid_d: &[u8],
    g_qm_xy: Option<&[u8]>,
    protocol: u8,
    spi: &[u8; 4],
    ni_b: &[u8],
    nr_b: &[u8],
    len: usize,
) -> Secret {
    let _ = (hash, skeyid_d, g_qm_xy, protocol, spi, ni_b, nr_b, len);
    todo!()
}
