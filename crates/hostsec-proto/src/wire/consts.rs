//! Every number that IKEv1 (RFC 2407/2408/2409), NAT-T (RFC 3947) and their IANA registries put on the
//! wire, in one place. Names follow the RFCs so that a reader can grep them.

/// ISAKMP header version byte for IKEv1: major 1, minor 0 (RFC 2408 §3.1).
pub const ISAKMP_VERSION: u8 = 0x10;

/// UDP port of IKE (RFC 2408 §2.5.2 via IANA).
pub const IKE_PORT: u16 = 500;
/// UDP port of IKE after NAT-T floating (RFC 3947 §4).
pub const NATT_PORT: u16 = 4500;

/// Exchange types (RFC 2408 §3.1, RFC 2409 §5.5, [MS-AIPS] §2.2.1).
pub mod exchange {
    /// No exchange (never valid on the wire).
    pub const NONE: u8 = 0;
    /// Base exchange (RFC 2408 §4.4): refused.
    pub const BASE: u8 = 1;
    /// Identity protection exchange = IKEv1 Main Mode.
    pub const IDENTITY_PROTECTION: u8 = 2;
    /// Authentication-only exchange (RFC 2408 §4.6): refused.
    pub const AUTH_ONLY: u8 = 3;
    /// Aggressive exchange = IKEv1 Aggressive Mode: refused by policy.
    pub const AGGRESSIVE: u8 = 4;
    /// Informational exchange.
    pub const INFORMATIONAL: u8 = 5;
    /// ISAKMP Transaction exchange (Mode Config/XAUTH, draft-dukes-ike-mode-cfg): refused.
    pub const TRANSACTION: u8 = 6;
    /// IKEv1 Quick Mode (RFC 2409 §5.5).
    pub const QUICK_MODE: u8 = 32;
    /// IKEv1 New Group Mode (RFC 2409 §5.6): refused.
    pub const NEW_GROUP_MODE: u8 = 33;
    /// AuthIP Main Mode ([MS-AIPS] §2.2.1).
    pub const AUTHIP_MAIN_MODE: u8 = 243;
    /// AuthIP Quick Mode.
    pub const AUTHIP_QUICK_MODE: u8 = 244;
    /// AuthIP Extended Mode.
    pub const AUTHIP_EXTENDED_MODE: u8 = 245;
    /// AuthIP Notify.
    pub const AUTHIP_NOTIFY: u8 = 246;
}

/// ISAKMP header flags (RFC 2408 §3.1).
pub mod flags {
    /// Payloads after the header are encrypted.
    pub const ENCRYPTION: u8 = 0x01;
    /// Commit bit (RFC 2408 §3.1, RFC 2409 §5.5).
    pub const COMMIT: u8 = 0x02;
    /// Authentication only bit.
    pub const AUTH_ONLY: u8 = 0x04;
}

/// Payload types (RFC 2408 §3.1, RFC 3947 §3, IKE fragmentation, [MS-AIPS] §2.2).
pub mod payload {
    /// End of the payload chain.
    pub const NONE: u8 = 0;
    /// Security Association.
    pub const SA: u8 = 1;
    /// Proposal (only inside SA).
    pub const PROPOSAL: u8 = 2;
    /// Transform (only inside a proposal).
    pub const TRANSFORM: u8 = 3;
    /// Key Exchange.
    pub const KE: u8 = 4;
    /// Identification.
    pub const ID: u8 = 5;
    /// Certificate.
    pub const CERT: u8 = 6;
    /// Certificate Request.
    pub const CR: u8 = 7;
    /// Hash.
    pub const HASH: u8 = 8;
    /// Signature.
    pub const SIG: u8 = 9;
    /// Nonce.
    pub const NONCE: u8 = 10;
    /// Notification.
    pub const NOTIFY: u8 = 11;
    /// Delete.
    pub const DELETE: u8 = 12;
    /// Vendor ID.
    pub const VENDOR_ID: u8 = 13;
    /// NAT-D as numbered by draft-ietf-ipsec-nat-t-ike-02/03 (Cisco and old peers).
    pub const NAT_D_DRAFT: u8 = 130;
    /// NAT-OA as numbered by the drafts.
    pub const NAT_OA_DRAFT: u8 = 131;
    /// NAT Discovery (RFC 3947).
    pub const NAT_D: u8 = 20;
    /// NAT Original Address (RFC 3947).
    pub const NAT_OA: u8 = 21;
    /// IKE fragment (the Cisco/Microsoft IKEv1 fragmentation extension).
    pub const FRAGMENT: u8 = 132;
    /// AuthIP GSS-API payload.
    pub const GSSAPI: u8 = 0x81;
    /// AuthIP CRYPTO payload.
    pub const CRYPTO: u8 = 0x85;
    /// AuthIP GSS_ID payload.
    pub const GSS_ID: u8 = 0x86;
    /// AuthIP Auth payload.
    pub const AUTH: u8 = 0x87;
}

/// Domain of interpretation (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;
/// Situation: identity only (RFC 2407 §4.2).
pub const SIT_IDENTITY_ONLY: u32 = 1;

/// Protocol identifiers (RFC 2407 §4.4.1).
pub mod protocol {
    /// ISAKMP (phase 1).
    pub const ISAKMP: u8 = 1;
    /// IPsec AH: refused.
    pub const AH: u8 = 2;
    /// IPsec ESP.
    pub const ESP: u8 = 3;
    /// IPCOMP: refused.
    pub const IPCOMP: u8 = 4;
}

/// Transform identifiers in a phase-1 (protocol ISAKMP) proposal (RFC 2407 §4.4.2).
pub const KEY_IKE: u8 = 1;

/// ESP transform identifiers (RFC 2407 §4.4.4, IANA "IPsec ESP Transform Identifiers").
pub mod esp_transform {
    /// DES-CBC: never accepted.
    pub const DES: u8 = 2;
    /// 3DES-CBC: never accepted.
    pub const TRIPLE_DES: u8 = 3;
    /// NULL encryption: never accepted.
    pub const NULL: u8 = 11;
    /// AES-CBC (RFC 3602).
    pub const AES_CBC: u8 = 12;
    /// AES-CTR: not supported.
    pub const AES_CTR: u8 = 13;
    /// AES-CCM with 8-octet ICV: not supported.
    pub const AES_CCM_8: u8 = 14;
    /// AES-GCM with 8-octet ICV: not supported.
    pub const AES_GCM_8: u8 = 18;
    /// AES-GCM with 12-octet ICV: not supported.
    pub const AES_GCM_12: u8 = 19;
    /// AES-GCM with 16-octet ICV (RFC 4106).
    pub const AES_GCM_16: u8 = 20;
    /// AES-GMAC (integrity only, RFC 4543): not supported.
    pub const NULL_AUTH_AES_GMAC: u8 = 23;
}

/// Phase-1 (Oakley) SA attribute types (RFC 2409 appendix A).
pub mod ike_attr {
    /// Encryption algorithm (basic).
    pub const ENCRYPTION: u16 = 1;
    /// Hash algorithm (basic).
    pub const HASH: u16 = 2;
    /// Authentication method (basic).
    pub const AUTH_METHOD: u16 = 3;
    /// Group description (basic).
    pub const GROUP_DESCRIPTION: u16 = 4;
    /// Group type (basic).
    pub const GROUP_TYPE: u16 = 5;
    /// Life type (basic).
    pub const LIFE_TYPE: u16 = 11;
    /// Life duration (variable).
    pub const LIFE_DURATION: u16 = 12;
    /// PRF (basic): no values defined, refused when present.
    pub const PRF: u16 = 13;
    /// Key length in bits (basic).
    pub const KEY_LENGTH: u16 = 14;
    /// Field size (basic).
    pub const FIELD_SIZE: u16 = 15;
    /// Group order (variable).
    pub const GROUP_ORDER: u16 = 16;
}

/// Phase-1 encryption algorithm values (attribute 1).
pub mod ike_encr {
    /// DES-CBC: never accepted.
    pub const DES_CBC: u16 = 1;
    /// IDEA-CBC: never accepted.
    pub const IDEA_CBC: u16 = 2;
    /// Blowfish-CBC: never accepted.
    pub const BLOWFISH_CBC: u16 = 3;
    /// RC5: never accepted.
    pub const RC5_R16_B64_CBC: u16 = 4;
    /// 3DES-CBC: never accepted.
    pub const TRIPLE_DES_CBC: u16 = 5;
    /// CAST-CBC: never accepted.
    pub const CAST_CBC: u16 = 6;
    /// AES-CBC (RFC 3602), with a key length attribute.
    pub const AES_CBC: u16 = 7;
}

/// Phase-1 hash algorithm values (attribute 2).
pub mod ike_hash {
    /// MD5: never accepted.
    pub const MD5: u16 = 1;
    /// SHA-1.
    pub const SHA1: u16 = 2;
    /// Tiger: never accepted.
    pub const TIGER: u16 = 3;
    /// SHA2-256 (RFC 4868).
    pub const SHA2_256: u16 = 4;
    /// SHA2-384 (RFC 4868).
    pub const SHA2_384: u16 = 5;
    /// SHA2-512 (RFC 4868): not offered.
    pub const SHA2_512: u16 = 6;
}

/// Phase-1 authentication method values (attribute 3; RFC 2409, RFC 4754).
pub mod auth_method {
    /// Pre-shared key.
    pub const PSK: u16 = 1;
    /// DSS signatures: not supported.
    pub const DSS_SIG: u16 = 2;
    /// RSA signatures.
    pub const RSA_SIG: u16 = 3;
    /// RSA encryption: not supported.
    pub const RSA_ENC: u16 = 4;
    /// Revised RSA encryption: not supported.
    pub const RSA_ENC_REV: u16 = 5;
    /// ECDSA with SHA-256 on P-256 (RFC 4754).
    pub const ECDSA_SHA256_P256: u16 = 9;
    /// ECDSA with SHA-384 on P-384 (RFC 4754).
    pub const ECDSA_SHA384_P384: u16 = 10;
    /// ECDSA with SHA-512 on P-521 (RFC 4754): not supported.
    pub const ECDSA_SHA512_P521: u16 = 11;
    /// XAUTH initiator with PSK (draft-ietf-ipsec-isakmp-xauth): refused.
    pub const XAUTH_INIT_PSK: u16 = 65001;
}

/// Diffie-Hellman group numbers (IANA "Group Description", RFC 3526, RFC 5114, RFC 5903).
pub mod dh_group {
    /// MODP 768 (group 1): never accepted.
    pub const MODP_768: u16 = 1;
    /// MODP 1024 (group 2): Windows' default, never accepted.
    pub const MODP_1024: u16 = 2;
    /// MODP 1536 (group 5): never accepted.
    pub const MODP_1536: u16 = 5;
    /// MODP 2048 (RFC 3526).
    pub const MODP_2048: u16 = 14;
    /// MODP 3072: not supported.
    pub const MODP_3072: u16 = 15;
    /// MODP 4096: not supported.
    pub const MODP_4096: u16 = 16;
    /// ECP 256-bit random curve, NIST P-256 (RFC 5903).
    pub const ECP_256: u16 = 19;
    /// ECP 384-bit random curve, NIST P-384 (RFC 5903).
    pub const ECP_384: u16 = 20;
    /// ECP 521-bit: not supported.
    pub const ECP_521: u16 = 21;
    /// MODP 1024 with 160-bit prime order subgroup (RFC 5114): never accepted.
    pub const MODP_1024_S160: u16 = 22;
    /// MODP 2048 with 224-bit prime order subgroup (RFC 5114): not supported.
    pub const MODP_2048_S224: u16 = 23;
    /// MODP 2048 with 256-bit prime order subgroup (RFC 5114).
    pub const MODP_2048_S256: u16 = 24;
}

/// Life types (RFC 2409 appendix A attribute 11; RFC 2407 §4.5 attribute 1).
pub mod life_type {
    /// Lifetime in seconds.
    pub const SECONDS: u16 = 1;
    /// Lifetime in kilobytes.
    pub const KILOBYTES: u16 = 2;
}

/// IPsec DOI SA attribute types for phase 2 (RFC 2407 §4.5).
pub mod ipsec_attr {
    /// SA life type (basic).
    pub const SA_LIFE_TYPE: u16 = 1;
    /// SA life duration (variable).
    pub const SA_LIFE_DURATION: u16 = 2;
    /// Group description for PFS (basic).
    pub const GROUP_DESCRIPTION: u16 = 3;
    /// Encapsulation mode (basic).
    pub const ENCAPSULATION_MODE: u16 = 4;
    /// Authentication algorithm (basic).
    pub const AUTH_ALGORITHM: u16 = 5;
    /// Key length in bits (basic).
    pub const KEY_LENGTH: u16 = 6;
    /// Key rounds (basic): refused.
    pub const KEY_ROUNDS: u16 = 7;
    /// Compress dictionary size: refused.
    pub const COMPRESS_DICTIONARY_SIZE: u16 = 8;
    /// Compress private algorithm: refused.
    pub const COMPRESS_PRIVATE_ALGORITHM: u16 = 9;
    /// Extended (64-bit) sequence number (RFC 4304).
    pub const EXTENDED_SEQUENCE_NUMBER: u16 = 11;
}

/// Encapsulation mode values (RFC 2407 §4.5, RFC 3947 §5.2, draft-ietf-ipsec-nat-t-ike).
pub mod encap_mode {
    /// Tunnel mode: refused (hostsec protects hosts, transport mode only).
    pub const TUNNEL: u16 = 1;
    /// Transport mode.
    pub const TRANSPORT: u16 = 2;
    /// UDP-encapsulated tunnel (RFC 3947): refused.
    pub const UDP_TUNNEL: u16 = 3;
    /// UDP-encapsulated transport (RFC 3947).
    pub const UDP_TRANSPORT: u16 = 4;
    /// UDP-encapsulated tunnel, draft numbering: refused.
    pub const UDP_TUNNEL_DRAFT: u16 = 61443;
    /// UDP-encapsulated transport, draft numbering (Windows, older peers).
    pub const UDP_TRANSPORT_DRAFT: u16 = 61444;
}

/// Phase-2 authentication algorithm values (RFC 2407 §4.5, RFC 4868).
pub mod ipsec_auth {
    /// HMAC-MD5-96: never accepted.
    pub const HMAC_MD5: u16 = 1;
    /// HMAC-SHA-1-96.
    pub const HMAC_SHA1: u16 = 2;
    /// DES-MAC: never accepted.
    pub const DES_MAC: u16 = 3;
    /// KPDK: never accepted.
    pub const KPDK: u16 = 4;
    /// HMAC-SHA-256-128 (RFC 4868).
    pub const HMAC_SHA2_256: u16 = 5;
    /// HMAC-SHA-384-192 (RFC 4868): not supported (Windows has none for ESP).
    pub const HMAC_SHA2_384: u16 = 6;
    /// HMAC-SHA-512-256 (RFC 4868): not supported.
    pub const HMAC_SHA2_512: u16 = 7;
}

/// Identification types (RFC 2407 §4.6.2.1).
pub mod id_type {
    /// IPv4 address.
    pub const IPV4_ADDR: u8 = 1;
    /// Fully qualified domain name.
    pub const FQDN: u8 = 2;
    /// user@FQDN.
    pub const USER_FQDN: u8 = 3;
    /// IPv4 subnet (address and mask).
    pub const IPV4_ADDR_SUBNET: u8 = 4;
    /// IPv6 address.
    pub const IPV6_ADDR: u8 = 5;
    /// IPv6 subnet (address and mask).
    pub const IPV6_ADDR_SUBNET: u8 = 6;
    /// IPv4 range (first and last address).
    pub const IPV4_ADDR_RANGE: u8 = 7;
    /// IPv6 range.
    pub const IPV6_ADDR_RANGE: u8 = 8;
    /// DER-encoded ASN.1 distinguished name.
    pub const DER_ASN1_DN: u8 = 9;
    /// DER-encoded ASN.1 general name.
    pub const DER_ASN1_GN: u8 = 10;
    /// Opaque key ID.
    pub const KEY_ID: u8 = 11;
}

/// Certificate encodings (RFC 2408 §3.9).
pub mod cert_encoding {
    /// PKCS #7 wrapped X.509.
    pub const PKCS7: u8 = 1;
    /// X.509 certificate, signature.
    pub const X509_SIGNATURE: u8 = 4;
    /// X.509 certificate revocation list.
    pub const CRL: u8 = 7;
}

/// Notify message types (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706).
pub mod notify {
    /// INVALID-PAYLOAD-TYPE.
    pub const INVALID_PAYLOAD_TYPE: u16 = 1;
    /// DOI-NOT-SUPPORTED.
    pub const DOI_NOT_SUPPORTED: u16 = 2;
    /// SITUATION-NOT-SUPPORTED.
    pub const SITUATION_NOT_SUPPORTED: u16 = 3;
    /// INVALID-COOKIE.
    pub const INVALID_COOKIE: u16 = 4;
    /// INVALID-MAJOR-VERSION.
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    /// INVALID-MINOR-VERSION.
    pub const INVALID_MINOR_VERSION: u16 = 6;
    /// INVALID-EXCHANGE-TYPE.
    pub const INVALID_EXCHANGE_TYPE: u16 = 7;
    /// INVALID-FLAGS.
    pub const INVALID_FLAGS: u16 = 8;
    /// INVALID-MESSAGE-ID.
    pub const INVALID_MESSAGE_ID: u16 = 9;
    /// INVALID-PROTOCOL-ID.
    pub const INVALID_PROTOCOL_ID: u16 = 10;
    /// INVALID-SPI.
    pub const INVALID_SPI: u16 = 11;
    /// INVALID-TRANSFORM-ID.
    pub const INVALID_TRANSFORM_ID: u16 = 12;
    /// ATTRIBUTES-NOT-SUPPORTED.
    pub const ATTRIBUTES_NOT_SUPPORTED: u16 = 13;
    /// NO-PROPOSAL-CHOSEN.
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    /// BAD-PROPOSAL-SYNTAX.
    pub const BAD_PROPOSAL_SYNTAX: u16 = 15;
    /// PAYLOAD-MALFORMED.
    pub const PAYLOAD_MALFORMED: u16 = 16;
    /// INVALID-KEY-INFORMATION.
    pub const INVALID_KEY_INFORMATION: u16 = 17;
    /// INVALID-ID-INFORMATION.
    pub const INVALID_ID_INFORMATION: u16 = 18;
    /// INVALID-CERT-ENCODING.
    pub const INVALID_CERT_ENCODING: u16 = 19;
    /// INVALID-CERTIFICATE.
    pub const INVALID_CERTIFICATE: u16 = 20;
    /// CERT-TYPE-UNSUPPORTED.
    pub const CERT_TYPE_UNSUPPORTED: u16 = 21;
    /// INVALID-CERT-AUTHORITY.
    pub const INVALID_CERT_AUTHORITY: u16 = 22;
    /// INVALID-HASH-INFORMATION.
    pub const INVALID_HASH_INFORMATION: u16 = 23;
    /// AUTHENTICATION-FAILED.
    pub const AUTHENTICATION_FAILED: u16 = 24;
    /// INVALID-SIGNATURE.
    pub const INVALID_SIGNATURE: u16 = 25;
    /// ADDRESS-NOTIFICATION.
    pub const ADDRESS_NOTIFICATION: u16 = 26;
    /// NOTIFY-SA-LIFETIME.
    pub const NOTIFY_SA_LIFETIME: u16 = 27;
    /// CERTIFICATE-UNAVAILABLE.
    pub const CERTIFICATE_UNAVAILABLE: u16 = 28;
    /// UNSUPPORTED-EXCHANGE-TYPE.
    pub const UNSUPPORTED_EXCHANGE_TYPE: u16 = 29;
    /// UNEQUAL-PAYLOAD-LENGTHS.
    pub const UNEQUAL_PAYLOAD_LENGTHS: u16 = 30;
    /// Highest error notify type (RFC 2408 §3.14.1: 1–8191 are errors).
    pub const MAX_ERROR: u16 = 8191;
    /// CONNECTED (status).
    pub const CONNECTED: u16 = 16384;
    /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1).
    pub const RESPONDER_LIFETIME: u16 = 24576;
    /// REPLAY-STATUS (RFC 2407 §4.6.3.2).
    pub const REPLAY_STATUS: u16 = 24577;
    /// INITIAL-CONTACT (RFC 2407 §4.6.3.3).
    pub const INITIAL_CONTACT: u16 = 24578;
    /// R-U-THERE (RFC 3706).
    pub const R_U_THERE: u16 = 36136;
    /// R-U-THERE-ACK (RFC 3706).
    pub const R_U_THERE_ACK: u16 = 36137;
}

/// Well-known vendor ID payload bodies.
pub mod vendor_id {
    /// RFC 3947 NAT-T ("RFC 3947", MD5).
    pub const NAT_T_RFC3947: [u8; 16] =
        [0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f];
    /// NAT-T as draft-ietf-ipsec-nat-t-ike-02 (MD5 of that name): NAT-D/NAT-OA as 130/131, encapsulation modes
    /// 61443/61444. strongSwan sends it.
    pub const NAT_T_DRAFT_02: [u8; 16] =
        [0xcd, 0x60, 0x46, 0x43, 0x35, 0xdf, 0x21, 0xf8, 0x7c, 0xfd, 0xb2, 0xfc, 0x68, 0xb6, 0xa4, 0x48];
    /// NAT-T as draft-02 with a trailing newline in the hashed name (MD5 of "draft-ietf-ipsec-nat-t-ike-02\n"),
    /// a typo that Windows XP/2003 and strongSwan send.
    pub const NAT_T_DRAFT_02_N: [u8; 16] =
        [0x90, 0xcb, 0x80, 0x91, 0x3e, 0xbb, 0x69, 0x6e, 0x08, 0x63, 0x81, 0xb5, 0xec, 0x42, 0x7b, 0x1f];
    /// NAT-T as draft-ietf-ipsec-nat-t-ike-03 (same numbering as draft-02). strongSwan sends it.
    pub const NAT_T_DRAFT_03: [u8; 16] =
        [0x7d, 0x94, 0x19, 0xa6, 0x53, 0x10, 0xca, 0x6f, 0x2c, 0x17, 0x9d, 0x92, 0x15, 0x52, 0x9d, 0x56];
    /// NAT-T as draft-ietf-ipsec-nat-t-ike-00: floated on port 500 with an 8-byte marker, not supported (the
    /// peer is treated as speaking no NAT-T).
    pub const NAT_T_DRAFT_00: [u8; 16] =
        [0x44, 0x85, 0x15, 0x2d, 0x18, 0xb6, 0xbb, 0xcd, 0x0b, 0xe8, 0xa8, 0x46, 0x95, 0x79, 0xdd, 0xcc];
    /// NAT-T as draft-ietf-ipsec-nat-t-ike-01: not supported, as draft-00.
    pub const NAT_T_DRAFT_01: [u8; 16] =
        [0x16, 0xf6, 0xca, 0x16, 0xe4, 0xa4, 0x06, 0x6d, 0x83, 0x82, 0x1a, 0x0f, 0x0a, 0xea, 0xa8, 0x62];
    /// Dead Peer Detection, RFC 3706 (the 16-byte form that peers send: major 1, minor 0).
    pub const DPD: [u8; 16] =
        [0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00];
    /// The prefix of Microsoft's "MS NT5 ISAKMPOAKLEY" vendor ID; 4 bytes of version follow.
    pub const MS_NT5_ISAKMPOAKLEY_PREFIX: [u8; 16] =
        [0x1e, 0x2b, 0x51, 0x69, 0x05, 0x99, 0x1c, 0x7d, 0x7c, 0x96, 0xfc, 0xbf, 0xb5, 0x87, 0xe4, 0x61];
    /// IKE fragmentation (Cisco/Microsoft), without the 4 capability bytes.
    pub const FRAGMENTATION_PREFIX: [u8; 16] =
        [0x40, 0x48, 0xb7, 0xd5, 0x6e, 0xbc, 0xe8, 0x85, 0x25, 0xe7, 0xde, 0x7f, 0x00, 0xd6, 0xc2, 0xd3];
    /// The capability word that may follow [`FRAGMENTATION_PREFIX`] (big-endian): this bit announces
    /// fragmentation of Main Mode and Aggressive Mode messages (racoon's reading, which strongSwan follows; Cisco
    /// adds 0x40000000 for base ISAKMP messages). Windows sends the prefix alone.
    pub const FRAGMENTATION_MAIN_MODE: u32 = 0x8000_0000;
}

/// The IKEv1 fragment payload (type 132) of the Cisco/Microsoft fragmentation extension.
pub mod fragment {
    /// Flag: this is the last fragment of the message (its number is the fragment count).
    pub const LAST: u8 = 0x01;
    /// Bytes before the fragment data: the generic payload header (4), fragment ID (2), number (1), flags (1).
    pub const PAYLOAD_HEADER_LEN: usize = 8;
}
