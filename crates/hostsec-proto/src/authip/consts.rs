//! The numbers AuthIP ([MS-AIPS]) puts on the wire beyond IKEv1's.
//!
//! Kept apart from [`crate::wire::consts`] on purpose: [MS-IKEE] §2.2.6 gives the IKEv1 variants of some of these
//! notify types *other* values (NOTIFY_STATUS 0x9C43, NOTIFY_DOS_COOKIE 0x9C44), so one shared table would invite
//! using the wrong one on the wrong code path.

/// Exchange types ([MS-AIPS] §2.2.1), re-exported from the IKEv1 table where the engine already names them.
pub mod exchange {
    pub use crate::wire::consts::exchange::{
        AUTHIP_EXTENDED_MODE as EXTENDED_MODE, AUTHIP_MAIN_MODE as MAIN_MODE, AUTHIP_NOTIFY as NOTIFY,
        AUTHIP_QUICK_MODE as QUICK_MODE,
    };

    /// Whether `exchange_type` is one of the four AuthIP private exchange types (0xF3–0xF6).
    pub fn is_authip(exchange_type: u8) -> bool {
        (MAIN_MODE..=NOTIFY).contains(&exchange_type)
    }
}

/// Message IDs fixed by [MS-AIPS] §2.2.1 (Quick Mode IDs are chosen by the QM initiator).
pub mod message_id {
    /// Main Mode messages.
    pub const MAIN_MODE: u32 = 0;
    /// Extended Mode messages.
    pub const EXTENDED_MODE: u32 = 1;
}

/// Payload types AuthIP uses ([MS-AIPS] §2.2.3 and its tables; RFC 2408 §3.1 for the IKEv1 ones).
pub mod payload {
    pub use crate::wire::consts::payload::{HASH, ID, KE, NAT_D, NAT_OA, NONCE, NONE, NOTIFY, SA, VENDOR_ID};
    /// GSS-API token ([MS-AIPS] §2.2.3.1).
    pub const GSSAPI: u8 = 0x81;
    /// IKE fragment ([MS-IKEE] §2.2.3, allowed for AuthIP by [MS-AIPS] §1.3 and note <1>).
    pub const FRAGMENT: u8 = 0x84;
    /// CRYPTO: the envelope of every AuthIP message ([MS-AIPS] §2.2.3.2).
    pub const CRYPTO: u8 = 0x85;
    /// GSS_ID: security principal name ([MS-AIPS] §2.2.3.3).
    pub const GSS_ID: u8 = 0x86;
    /// Auth: list of authentication methods ([MS-AIPS] §2.2.3.4).
    pub const AUTH: u8 = 0x87;
    /// Key Dictation ([MS-AIPS] §2.2.3.7).
    pub const KEY_DICTATION: u8 = 0x88;
    /// Key Dictation Weight ([MS-AIPS] §2.2.3.8).
    pub const KEY_DICTATION_WEIGHT: u8 = 0x89;

    /// Whether `kind` may appear in an AuthIP payload chain (clear or inside CRYPTO).
    ///
    /// The set is closed on purpose: [MS-AIPS] §2.2.3 excludes CERT, CR, SIG and DELETE, proposals and transforms
    /// only live inside an SA, CRYPTO only directly after the header, and a fragment only as a message of its own.
    /// Every other type (reserved or private) is refused rather than skipped; see docs/authip.md for how a capture
    /// would tell us to relax this.
    pub fn allowed_in_chain(kind: u8) -> bool {
        matches!(
            kind,
            SA | KE
                | ID
                | HASH
                | NONCE
                | NOTIFY
                | VENDOR_ID
                | NAT_D
                | NAT_OA
                | GSSAPI
                | GSS_ID
                | AUTH
                | KEY_DICTATION
                | KEY_DICTATION_WEIGHT
        )
    }
}

/// The AuthIP Notify payload's Protocol-ID field ([MS-AIPS] §2.2.3.5).
pub mod notify_protocol {
    /// The notification is about the MM or EM.
    pub const MM_EM: u8 = 0x01;
    /// The notification is about a QM.
    pub const QM: u8 = 0x02;
}

/// The AuthIP Notify payload's Flags field, which replaces IKEv1's SPI-size byte ([MS-AIPS] §2.2.3.5).
pub mod notify_flags {
    /// The notification must be acknowledged with NOTIFY_ACK ([MS-AIPS] §3.1.5.1).
    pub const RELIABLE: u8 = 0x01;
}

/// AuthIP notify message types ([MS-AIPS] §2.2.3.5).
pub mod notify {
    /// Standard IKEv1 NO-PROPOSAL-CHOSEN, which AuthIP sends reliably ([MS-AIPS] §3.5.5.1).
    pub const NO_PROPOSAL_CHOSEN: u16 = crate::wire::consts::notify::NO_PROPOSAL_CHOSEN;
    /// Negotiation-discovery flags, 4 bytes ([MS-IKEE] §3.7).
    pub const EXCHANGE_INFO: u16 = 0x9C45;
    /// "Delete your state": a 4-byte Windows error code ([MS-IKEE] §3.8).
    pub const NOTIFY_STATUS: u16 = 0x9C54;
    /// DoS-protection cookie, 8 bytes; the one message without CRYPTO ([MS-IKEE] §3.9).
    pub const NOTIFY_DOS_COOKIE: u16 = 0x9C55;
    /// Acknowledges a reliable notify: the 4-byte seqNUM of the CRYPTO payload that carried it.
    pub const NOTIFY_ACK: u16 = 0x9C56;
    /// End of a QM; no data.
    pub const NOTIFY_QM_SYNCHRONIZE: u16 = 0x9C57;
    /// Asks the peer to build a new MM ([MS-AIPS] §2.2.3.6); 8 bytes, followed by two phase-2 IDs.
    pub const NOTIFY_ACQUIRE: u16 = 0x9C58;
}

/// EXCHANGE_INFO and NOTIFY_ACQUIRE flag bits ([MS-AIPS] §2.2.3.5, §2.2.3.6).
pub mod exchange_info {
    /// IKE_EXCHANGE_INFO_ND_BOUNDARY.
    pub const ND_BOUNDARY: u32 = 0x0000_0001;
    /// IKE_EXCHANGE_INFO_GUARANTEE_ENCRYPTION.
    pub const GUARANTEE_ENCRYPTION: u32 = 0x0000_0002;
}

/// GSS-API payload flags ([MS-AIPS] §2.2.3.1).
pub mod gss_flags {
    /// Start of a new authentication exchange (initiator only).
    pub const NEW_GSS_EXCHANGE: u8 = 0x01;
    /// The SPN names a user (initiator only).
    pub const IMPERSONATION_ACTIVE: u8 = 0x02;
    /// Retry the current method with other credentials (either side).
    pub const RETRY_CURRENT_AUTHENTICATION: u8 = 0x04;
    /// Explicit credentials are in use (initiator only).
    pub const EXPLICIT_CREDENTIALS: u8 = 0x08;
    /// The responder's authentication completed (responder only).
    pub const RESPONDER_AUTH_COMPLETE: u8 = 0x10;
    /// Every flag [MS-AIPS] defines.
    pub const ALL: u8 = 0x1F;
}

/// Authentication methods of the Auth payload ([MS-AIPS] §2.2.3.4).
pub mod auth_method {
    /// Kerberos (RFC 1964 tokens), mutual.
    pub const KERBEROS: u16 = 0x0002;
    /// Anonymous (empty tokens), MM only, always with DH.
    pub const ANONYMOUS: u16 = 0x0003;
    /// TLS (handshake messages as tokens); how Windows does certificate authentication in AuthIP.
    pub const TLS: u16 = 0x0004;
    /// NTLM (MS-NLMP messages), one-way.
    pub const NTLM: u16 = 0x0005;
}

/// Vendor IDs that matter for AuthIP and its coexistence with IKEv1 ([MS-AIPS] §1.7 notes <3>, <4>, <13>;
/// [MS-IKEE] note <6>). Bytes as listed there; the MD5 recomputation is in docs/authip.md.
pub mod vendor_id {
    pub use crate::wire::consts::vendor_id::MS_NT5_ISAKMPOAKLEY_PREFIX;
    /// MS-MamieExists: sent in the IKEv1 MM #1 that accompanies an AuthIP MM #1 ([MS-AIPS] §3.2.4, note <4>).
    pub const MS_MAMIE_EXISTS: [u8; 16] =
        [0x21, 0x4c, 0xa4, 0xfa, 0xff, 0xa7, 0xf3, 0x2d, 0x67, 0x48, 0xe5, 0x30, 0x33, 0x95, 0xae, 0x83];
    /// KEY_MODS prefix; a 4-byte keying-module number follows (0 IKE, 1 AuthIP, 2 IKEv2).
    pub const KEY_MODS_PREFIX: [u8; 16] =
        [0x01, 0x52, 0x8b, 0xbb, 0xc0, 0x06, 0x96, 0x12, 0x18, 0x49, 0xab, 0x9a, 0x1c, 0x5b, 0x2a, 0x51];
    /// AUTHIP_INIT_KE_DH_GROUP prefix; a 4-byte group index follows (Windows 8 and later).
    pub const AUTHIP_INIT_KE_DH_GROUP_PREFIX: [u8; 16] =
        [0x7b, 0xb9, 0x38, 0x67, 0xd7, 0x6c, 0x8d, 0x80, 0xdf, 0x0f, 0x40, 0xfa, 0xe8, 0xfc, 0x3b, 0x19];
    /// GSSAPI (Kerberos supported).
    pub const GSSAPI: [u8; 16] =
        [0x62, 0x1b, 0x04, 0xbb, 0x09, 0x88, 0x2a, 0xc1, 0xe1, 0x59, 0x35, 0xfe, 0xfa, 0x24, 0xae, 0xee];
    /// Vid-Initial-Contact.
    pub const INITIAL_CONTACT: [u8; 16] =
        [0x26, 0x24, 0x4d, 0x38, 0xed, 0xdb, 0x61, 0xb3, 0x17, 0x2a, 0x36, 0xe3, 0xd0, 0xcf, 0xb8, 0x19];
    /// NLBS_PRESENT.
    pub const NLBS_PRESENT: [u8; 16] =
        [0x72, 0x87, 0x2b, 0x95, 0xfc, 0xda, 0x2e, 0xb7, 0x08, 0xef, 0xe3, 0x22, 0x11, 0x9b, 0x49, 0x71];
    /// MS-Negotiation Discovery Capable.
    pub const NEGOTIATION_DISCOVERY_CAPABLE: [u8; 16] =
        [0xfb, 0x1d, 0xe3, 0xcd, 0xf3, 0x41, 0xb7, 0xea, 0x16, 0xb7, 0xe5, 0xbe, 0x08, 0x55, 0xf1, 0x20];
    /// IKE CGA version 1.
    pub const IKE_CGA_V1: [u8; 16] =
        [0xe3, 0xa5, 0x96, 0x6a, 0x76, 0x37, 0x9f, 0xe7, 0x07, 0x22, 0x82, 0x31, 0xe5, 0xce, 0x86, 0x52];
    /// KEY_MODS keying-module number that names AuthIP.
    pub const KEY_MODS_AUTHIP: u32 = 1;
    /// MS NT5 ISAKMPOAKLEY versions (Vista, Vista SP1/2008, 7) whose CRYPTO ICV is 12 bytes for every integrity
    /// algorithm ([MS-AIPS] §2.2.3.2.1).
    pub const MS_NT5_SHORT_ICV_VERSIONS: [u32; 3] = [5, 6, 7];
}
