//! AuthIP keying material ([MS-AIPS] §3.1.7.4): the Main Mode keys SKEYID, SKEYID_d/a/e and SKEYID_em, and the
//! Quick Mode SA keys, all through [`AuthipKdf`]. Pure functions: the state machine decides which inputs exist.
//!
//! **Experimental — not yet verified against Windows.** Every reading below is listed in `docs/authip.md`
//! ("Key schedule") with the capture that would settle it.

use super::kdf::{AuthipKdf, AuthipKeyError};
use crate::crypto::{EspTransform, Secret};

/// The Main Mode keys of an AuthIP MM SA. Debug output is redacted (see [`Secret`]).
#[derive(Debug, Clone)]
pub struct MainModeKeys {
    /// SKEYID: keys the authentication proofs Auth1/Auth2.
    pub skeyid: Secret,
    /// SKEYID_d: keys the Quick Mode key derivation (it goes into the QM SuppPubInfo).
    pub skeyid_d: Secret,
    /// SKEYID_a: authenticates MM-protected messages (the CRYPTO payload ICV).
    pub skeyid_a: Secret,
    /// SKEYID_e, max(hashLength, cryptLength) bytes.
    pub skeyid_e: Secret,
    /// The CRYPTO payload encryption key: the first cryptLength bytes of SKEYID_e.
    pub encryption_key: Secret,
}

/// The Main Mode inputs that vary per negotiation (the rest is in [`AuthipKdf`]). No `Debug`: g^xy and the
/// GSS-API secret are plain slices here.
#[derive(Clone, Copy)]
pub struct MainModeInputs<'a> {
    /// g^xy, or `None` when the MM negotiated no Diffie-Hellman group (Kerberos, TLS).
    pub g_xy: Option<&'a [u8]>,
    /// Ni: the body of the initiator's MM nonce payload (without the generic payload header, as IKEv1's Ni_b).
    pub ni: &'a [u8],
    /// Nr: the body of the responder's MM nonce payload.
    pub nr: &'a [u8],
    /// GSS-APIsecret: the session key of the MM GSS-API exchange; empty for Anonymous.
    pub gss_secret: &'a [u8],
}

/// hashLength: [MS-AIPS] defines it as the key length of the MM authentication algorithm, which for the
/// HMAC-SHA family Windows lists is the hash's output length.
fn hash_length(kdf: &AuthipKdf) -> usize {
    kdf.hash.output_len()
}

/// SKEYID, SKEYID_d, SKEYID_a and SKEYID_e per the §3.1.7.4 table, plus the MM encryption key.
///
/// The DES/3DES odd-parity step of §3.1.7.4 is not implemented: hostsec's MM ciphers are AES only
/// ([`crate::crypto::IkeCipher`]), since DES and 3DES are below every hostsec encryption group.
pub fn derive_main_mode(kdf: &AuthipKdf, inputs: &MainModeInputs<'_>) -> Result<MainModeKeys, AuthipKeyError> {
    let MainModeInputs { g_xy, ni, nr, gss_secret } = *inputs;
    let hash_len = hash_length(kdf);
    let crypt_len = kdf.cipher.key_len();
    let skeyid = kdf.derive(g_xy, &[ni, nr], &[gss_secret], hash_len)?;
    let skeyid_d = kdf.derive(g_xy, &[ni, nr, &[0x00]], &[skeyid.expose()], hash_len)?;
    let skeyid_a = kdf.derive(g_xy, &[ni, nr, &[0x01]], &[skeyid_d.expose(), skeyid.expose()], hash_len)?;
    let skeyid_e =
        kdf.derive(g_xy, &[ni, nr, &[0x02]], &[skeyid_a.expose(), skeyid.expose()], hash_len.max(crypt_len))?;
    // §3.1.7.4 says to truncate SKEYID_e for DES/3DES; the same truncation is taken for AES (the spec gives no
    // other rule, and SKEYID_e is never shorter than the key).
    let encryption_key = Secret::from_slice(&skeyid_e.expose()[..crypt_len]);
    Ok(MainModeKeys { skeyid, skeyid_d, skeyid_a, skeyid_e, encryption_key })
}

/// SKEYID_em (§3.1.7.4): SKEYID's SuppPubInfo (Ni | Nr, no suffix byte) with GSS-APIsecret_em, the session key
/// of the Extended Mode GSS-API exchange. Z and the nonces are the Main Mode's.
pub fn derive_skeyid_em(
    kdf: &AuthipKdf,
    g_xy: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    gss_secret_em: &[u8],
) -> Result<Secret, AuthipKeyError> {
    kdf.derive(g_xy, &[ni, nr], &[gss_secret_em], hash_length(kdf))
}

/// Which end of IPsecEncryptKey holds which QM key. [MS-AIPS] contradicts itself: §3.1.7.4 puts the encryption
/// key first, §3.4.5.2 and §3.5.5.2 put the authentication key first. For AEAD transforms (no separate
/// integrity key) both readings give the same keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QmKeyOrder {
    /// Authentication key = first ipsechashLength bytes, encryption key = the last ipseccryptLength bytes
    /// (§3.4.5.2, §3.5.5.2).
    IntegrityFirst,
    /// Encryption key = first ipseccryptLength bytes, authentication key = the rest (§3.1.7.4).
    EncryptionFirst,
}

/// The reading hostsec uses (`docs/authip.md`, "Key schedule", explains the choice). Changing this line is all
/// the other reading takes.
pub const QM_KEY_ORDER: QmKeyOrder = QmKeyOrder::IntegrityFirst;

/// Bytes of AES-GCM salt derived after the key (RFC 4106 §8.1). [MS-AIPS] is silent on GCM; 4 takes the salt
/// from the KDF as IKEv1 KEYMAT does. Setting 0 is the other reading (the KDF yields the bare key).
pub const GCM_SALT_FROM_KDF: usize = 4;

/// ipseccryptLength and ipsechashLength of an ESP transform, in that order: the one place that decides how
/// long each QM key is.
pub fn qm_key_lengths(transform: EspTransform) -> (usize, usize) {
    let cipher = transform.cipher;
    let key = usize::from(cipher.key_bits() / 8);
    // the salt that IKEv1 KEYMAT carries after the key (4 for GCM, 0 for CBC), as much of it as this reading takes
    let salt = cipher.keymat_len() - key;
    (key + salt.min(GCM_SALT_FROM_KDF), transform.integrity.key_len())
}

/// The Extended Mode inputs of a QM key derivation (SuppPrivInfo = Ni(mm) | Nr(mm) | SKEYID_em).
#[derive(Debug, Clone, Copy)]
pub struct ExtendedModeBinding<'a> {
    /// The MM initiator nonce body.
    pub ni_mm: &'a [u8],
    /// The MM responder nonce body.
    pub nr_mm: &'a [u8],
    /// SKEYID_em.
    pub skeyid_em: &'a Secret,
}

/// The inputs of one QM SA's keys (one direction: the SPI is that SA's). No `Debug`: Z(qm) is a plain slice.
#[derive(Clone, Copy)]
pub struct QuickModeInputs<'a> {
    /// The QM message ID, as it is on the wire (big-endian).
    pub message_id: u32,
    /// The SPI of the SA being keyed, as carried in its proposal: the inbound SA's SPI is the one this end chose.
    pub spi: [u8; 4],
    /// Ni(qm): the body of the initiator's QM nonce payload.
    pub ni_qm: &'a [u8],
    /// Nr(qm): the body of the responder's QM nonce payload.
    pub nr_qm: &'a [u8],
    /// Z(qm): the QM Diffie-Hellman secret with PFS, `None` without.
    pub g_qm_xy: Option<&'a [u8]>,
    /// SKEYID_d of the MM SA.
    pub skeyid_d: &'a Secret,
    /// Present when an Extended Mode completed on this MM SA.
    pub extended_mode: Option<ExtendedModeBinding<'a>>,
}

/// The keys of one QM SA (one direction).
#[derive(Debug, Clone)]
pub struct QuickModeKeys {
    /// ESP encryption key; for AES-GCM the key followed by its 4-byte salt, as the ESP layer takes it.
    pub encryption: Secret,
    /// ESP integrity key (empty for AEAD transforms).
    pub integrity: Secret,
}

/// IPsecEncryptKey (§3.1.7.4) for one QM SA, split per `order` (pass [`QM_KEY_ORDER`]).
///
/// OtherInfo's head (Crypto-ID, CKY-I, CKY-R) is the Main Mode's: §3.1.7.4 defines it once, "known
/// externally", and uses the same OtherInfo function for the QM key.
pub fn derive_quick_mode(
    kdf: &AuthipKdf,
    inputs: &QuickModeInputs<'_>,
    transform: EspTransform,
    order: QmKeyOrder,
) -> Result<QuickModeKeys, AuthipKeyError> {
    let (crypt_len, hash_len) = qm_key_lengths(transform);
    let message_id = inputs.message_id.to_be_bytes();
    let pub_info: [&[u8]; 5] = [&message_id, &inputs.spi, inputs.ni_qm, inputs.nr_qm, inputs.skeyid_d.expose()];
    let priv_info: Vec<&[u8]> = match &inputs.extended_mode {
        Some(em) => vec![em.ni_mm, em.nr_mm, em.skeyid_em.expose()],
        None => Vec::new(),
    };
    let block = kdf.derive(inputs.g_qm_xy, &pub_info, &priv_info, crypt_len + hash_len)?;
    let (encryption, integrity) = match order {
        QmKeyOrder::IntegrityFirst => {
            let (i, e) = block.expose().split_at(hash_len);
            (e, i)
        }
        QmKeyOrder::EncryptionFirst => block.expose().split_at(crypt_len),
    };
    Ok(QuickModeKeys { encryption: Secret::from_slice(encryption), integrity: Secret::from_slice(integrity) })
}
