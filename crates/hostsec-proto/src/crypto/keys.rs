//! The IKEv1 key schedule (RFC 2409 §5, §5.5 and appendix B): SKEYID and its children, the encryption key Ka,
//! the phase-1 and per-exchange IVs, the authentication hashes and KEYMAT.

use super::prf::{self, Digest};
use super::{HashAlg, IkeCipher, Secret};
use zeroize::{Zeroize, Zeroizing};

const BLOCK: usize = IkeCipher::BLOCK_LEN;

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

/// Moves a PRF output that is key material into a `Secret` and wipes the stack copy.
fn into_secret(mut digest: Digest) -> Secret {
    let secret = Secret::from_slice(digest.as_bytes());
    digest.zeroize();
    secret
}

/// The first block-size bytes of a hash output (every hash hostsec implements is longer than an AES block).
fn cut_to_block(digest: &Digest) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    let bytes = digest.as_bytes();
    let n = bytes.len().min(BLOCK);
    block[..n].copy_from_slice(&bytes[..n]);
    block
}

/// SKEYID for pre-shared keys: prf(pre-shared-key, Ni_b | Nr_b).
pub fn skeyid_psk(hash: HashAlg, psk: &[u8], ni_b: &[u8], nr_b: &[u8]) -> Secret {
    into_secret(prf::prf(hash, psk, &[ni_b, nr_b]))
}

/// SKEYID for signatures: prf(Ni_b | Nr_b, g^xy).
pub fn skeyid_signature(hash: HashAlg, ni_b: &[u8], nr_b: &[u8], g_xy: &[u8]) -> Secret {
    // The nonces are the HMAC key here, so they must be one contiguous string.
    let mut key = Vec::with_capacity(ni_b.len() + nr_b.len());
    key.extend_from_slice(ni_b);
    key.extend_from_slice(nr_b);
    into_secret(prf::prf(hash, &key, &[g_xy]))
}

/// Ka from SKEYID_e (RFC 2409 appendix B): its first bytes when it is long enough, otherwise
/// K1 = prf(SKEYID_e, 0x00), K2 = prf(SKEYID_e, K1), ... concatenated and cut. The RFC leaves the seed of K1
/// open ("0"); strongSwan, and so every peer hostsec meets, uses one zero byte.
fn encryption_key(hash: HashAlg, cipher: IkeCipher, skeyid_e: &Secret) -> Secret {
    let key_len = cipher.key_len();
    if skeyid_e.len() >= key_len {
        return Secret::from_slice(&skeyid_e.expose()[..key_len]);
    }
    let mut ka = Zeroizing::new(Vec::with_capacity(key_len + hash.output_len()));
    let mut k = prf::prf(hash, skeyid_e.expose(), &[&[0u8]]);
    ka.extend_from_slice(k.as_bytes());
    while ka.len() < key_len {
        let next = prf::prf(hash, skeyid_e.expose(), &[k.as_bytes()]);
        k.zeroize();
        k = next;
        ka.extend_from_slice(k.as_bytes());
    }
    k.zeroize();
    Secret::from_slice(&ka[..key_len])
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
    let key = skeyid.expose();
    let skeyid_d = into_secret(prf::prf(hash, key, &[g_xy, cky_i, cky_r, &[0]]));
    let skeyid_a = into_secret(prf::prf(hash, key, &[skeyid_d.expose(), g_xy, cky_i, cky_r, &[1]]));
    let skeyid_e = into_secret(prf::prf(hash, key, &[skeyid_a.expose(), g_xy, cky_i, cky_r, &[2]]));
    let ka = encryption_key(hash, cipher, &skeyid_e);
    // RFC 2409 appendix B: the IV of the first encrypted message is hash(g^xi | g^xr), cut to the block size.
    let initial_iv = cut_to_block(&prf::hash(hash, &[g_xi, g_xr]));
    Phase1Keys { skeyid, skeyid_d, skeyid_a, skeyid_e, ka, initial_iv }
}

/// HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b) and HASH_R (same with the roles swapped
/// and IDir_b). Pass the values in the order of the formula for the hash wanted.
#[allow(clippy::too_many_arguments)]
pub fn auth_hash(
    hash: HashAlg,
    skeyid: &[u8],
    g_x_own: &[u8],
    g_x_peer: &[u8],
    cky_own: &[u8; 8],
    cky_peer: &[u8; 8],
    sai_b: &[u8],
    id_b: &[u8],
) -> Digest {
    prf::prf(hash, skeyid, &[g_x_own, g_x_peer, cky_own, cky_peer, sai_b, id_b])
}

/// The IV of a Quick Mode or Informational exchange: hash(last phase-1 CBC block | M-ID) cut to the block size.
pub fn exchange_iv(hash: HashAlg, last_phase1_block: &[u8; 16], message_id: u32) -> [u8; 16] {
    // RFC 2409 appendix B: the M-ID goes in as it is on the wire, in network byte order.
    cut_to_block(&prf::hash(hash, &[last_phase1_block, &message_id.to_be_bytes()]))
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
    if len == 0 {
        return Secret::new(Vec::new());
    }
    let g = g_qm_xy.unwrap_or(&[]);
    let protocol = [protocol];
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.output_len()));
    // The seed goes in as separate parts, so the secret g(qm)^xy is never copied into a seed buffer.
    let mut k = prf::prf(hash, skeyid_d, &[g, &protocol, spi, ni_b, nr_b]);
    out.extend_from_slice(k.as_bytes());
    while out.len() < len {
        let next = prf::prf(hash, skeyid_d, &[k.as_bytes(), g, &protocol, spi, ni_b, nr_b]);
        k.zeroize();
        k = next;
        out.extend_from_slice(k.as_bytes());
    }
    k.zeroize();
    Secret::from_slice(&out[..len])
}
