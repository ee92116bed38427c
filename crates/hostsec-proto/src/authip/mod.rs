//! AuthIP ([MS-AIPS], Microsoft's IKEv1 extension): the wire codec and the key schedule.
//!
//! **Experimental — not yet verified against Windows.** Everything here is built from the [MS-AIPS] text, which
//! has no byte-level examples; where the text is ambiguous or silent the decision taken is documented on the item
//! and listed in `docs/authip.md` with the capture that would settle it.
//!
//! The codec follows [`crate::wire`]: zero-copy views with a `parse(&[u8])` that checks every length and
//! refuses what the spec forbids, owned `*Repr` values that implement [`Emit`](crate::wire::Emit) and write
//! exactly what the parser reads, and a [`WireError`](crate::wire::WireError) for everything. It reuses the
//! ISAKMP header parser and the generic payload iteration of [`crate::wire`]; the IKEv1 payloads AuthIP reuses
//! unchanged (SA, KE, ID, HASH, NONCE, VID, NAT-D) are handed out raw for the IKEv1 parsers.
//!
//! What is here: [`AuthipMessage`] (header + exactly one CRYPTO, clear or encrypted, or the two CRYPTO-less
//! messages), the typed payload chain [`AuthipPayloads`], the decrypted-content layout [`InnerPlaintext`],
//! each AuthIP payload, and the classification helpers in [`classify`].
//!
//! The key schedule (issue 10, part 3) is here too, as pure functions: the A-KDF and its OtherInfo
//! ([`concat_kdf`], [`AuthipKdf`]), the Main Mode and Quick Mode keys ([`derive_main_mode`],
//! [`derive_quick_mode`]) and the authentication proofs ([`auth1`] … [`auth4`]).
//!
//! The GSS-API mechanisms that authenticate a Main Mode are here as sans-IO token machines: the
//! [`GssMechanism`] trait, [`AnonymousMechanism`] and [`TlsMechanism`] (TLS records in GSS-API tokens, with
//! rustls). Not here: encryption, the Main Mode state machine.

pub mod classify;
pub mod consts;

mod auth_payload;
mod crypto_payload;
pub mod dos_cookie;
mod engine;
mod gss;
mod gss_mech;
mod gss_tls;
mod kdf;
mod key_dictation;
mod key_schedule;
mod message;
mod mm_proposal;
mod notify;
mod proofs;
mod seal;

pub use auth_payload::{AuthEntry, AuthRepr, MAX_AUTH_METHODS};
pub use crypto_payload::{
    icv_len, split_icv, CryptoClear, CryptoSealed, CryptoSealedRepr, InnerPlaintext, CLEAR_IV_LEN, MAX_PAD_LEN,
    MIN_ICV_LEN, SEALED_IV_LENS, SEQ_LEN,
};
pub use dos_cookie::{
    dos_cookie_message, DosCookies, DosMode, COOKIE_KEY_LEN, COOKIE_SLICE_SECS, DOS_ENTER_HALF_OPEN,
    DOS_LEAVE_HALF_OPEN,
};
pub use engine::{method_name, rule_method, AuthipEngine, AuthipStats, Race, EXPERIMENTAL};
pub use gss::{GssIdPayload, GssIdRepr, GssPayload, GssRepr, MAX_SPN_UNITS};
pub use gss_mech::{AnonymousMechanism, GssFailure, GssMechanism, GssPeer, GssStep, ANONYMOUS_PEER_ID};
pub use gss_tls::{
    GssRole, TlsMechanism, TlsVersions, MAX_TLS_STEPS, MAX_TLS_TOKEN, TLS_EXPORTER_CONTEXT, TLS_EXPORTER_LABEL,
    TLS_SECRET_LEN,
};
pub use kdf::{authip_hash_from_ike_id, concat_kdf, crypto_id, AuthipKdf, AuthipKeyError, MAX_KDF_OUTPUT};
pub use key_dictation::{KeyDictationPayload, KeyDictationWeight};
pub use key_schedule::{
    derive_main_mode, derive_quick_mode, derive_skeyid_em, qm_key_lengths, ExtendedModeBinding, MainModeInputs,
    MainModeKeys, QmKeyOrder, QuickModeInputs, QuickModeKeys, GCM_SALT_FROM_KDF, QM_KEY_ORDER,
};
pub use message::{
    clear_allowed, dos_cookie_exchange_allowed, validate_chain, AuthipBody, AuthipBodyRepr, AuthipHeader,
    AuthipMessage, AuthipMessageRepr, AuthipPayload, AuthipPayloads,
};
pub use mm_proposal::{check_suite, offer_suites, AuthipSuite};
pub use notify::{data_len_of, AuthipNotify, AuthipNotifyRepr, NotifyKind};
pub use proofs::{auth1, auth2, auth3, auth4, em_transcript_hash, mm_transcript_hash};
pub use seal::{open, seal, OpenError, Opened, SealKeys};

#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod tests;
