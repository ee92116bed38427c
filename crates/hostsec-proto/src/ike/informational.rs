//! Informational exchanges (RFC 2408 §4.8, RFC 2409 §5.7): notifications and deletes, authenticated under an
//! established ISAKMP SA with HASH(1) = prf(SKEYID_a, M-ID | N/D), or in cleartext before one exists (where only
//! error notifications about a negotiation in progress are believed, and only as a reason to log).

use super::message::{after_first_hash, collect, decrypt_body, Crypt};
use super::sa::Established;
use crate::crypto::algorithms::MainModeSuite;
use crate::crypto::keys::{exchange_iv, Phase1Keys};
use crate::crypto::prf::{prf, verify_mac};
use crate::wire::consts::{notify, protocol, DOI_IPSEC};
use crate::wire::{DeleteRepr, Header};

/// One thing an authenticated Informational message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InfoItem {
    /// Delete the ISAKMP SA with these cookies.
    DeleteIsakmp([u8; 8], [u8; 8]),
    /// Delete the ESP SAs whose SPIs (the peer's inbound SPIs: our outbound ones) are listed.
    DeleteEsp(Vec<u32>),
    /// The peer restarted and forgot all SAs with us (RFC 2407 §4.6.3.3).
    InitialContact,
    /// A DPD request (RFC 3706) with its sequence number.
    RuThere(u32),
    /// A DPD answer.
    RuThereAck(u32),
    /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1) for the SA named by protocol and SPI: the peer's shorter lifetime.
    ResponderLifetime {
        /// Protocol ID (ISAKMP or ESP).
        protocol: u8,
        /// SPI: the cookies for ISAKMP, the peer's inbound SPI for ESP.
        spi: Vec<u8>,
        /// The lifetimes announced.
        lowered: super::lifetime::Lowered,
    },
    /// Any other notification: its type, protocol and SPI.
    Notify {
        /// Notify message type.
        kind: u16,
        /// Protocol ID.
        protocol: u8,
        /// SPI.
        spi: Vec<u8>,
    },
}

/// The phase-1 keys that protect an Informational exchange: those of an established ISAKMP SA, or of a Main Mode
/// whose key exchange is done (a peer that refuses our MM5 says why in an Informational protected this way).
pub(crate) struct InfoKeys<'a> {
    /// Cipher and hash of the Main Mode.
    pub suite: MainModeSuite,
    /// Ka and SKEYID_a.
    pub keys: &'a Phase1Keys,
    /// The last CBC block of phase 1 so far (RFC 2409 appendix B).
    pub last_block: [u8; 16],
}

impl<'a> From<&'a Established> for InfoKeys<'a> {
    fn from(est: &'a Established) -> Self {
        InfoKeys { suite: est.suite, keys: &est.keys, last_block: est.last_block }
    }
}

/// Decrypts and authenticates an Informational message under `k` and lists what it asks for. `Err` means the
/// message is not authentic (or not well-formed) and must be dropped.
pub(crate) fn read_encrypted(k: InfoKeys<'_>, hdr: &Header, datagram: &[u8]) -> Result<Vec<InfoItem>, String> {
    let hash = k.suite.hash;
    let crypt =
        Crypt { cipher: k.suite.cipher, key: k.keys.ka.expose(), iv: exchange_iv(hash, &k.last_block, hdr.message_id) };
    let (plain, _) = decrypt_body(datagram, &crypt).map_err(|e| e.to_string())?;
    let c = collect(hdr.next_payload, &plain).map_err(|e| format!("did not decrypt to valid payloads: {e}"))?;
    let (h, covered) = after_first_hash(&plain, &c).map_err(|e| e.to_string())?;
    let expect = prf(hash, k.keys.skeyid_a.expose(), &[&hdr.message_id.to_be_bytes(), covered]);
    if !verify_mac(expect.as_bytes(), h) {
        return Err("HASH(1) does not verify".into());
    }
    let mut items = Vec::new();
    for n in &c.notify {
        let seq = || n.data.get(..4).and_then(|d| <[u8; 4]>::try_from(d).ok()).map(u32::from_be_bytes);
        items.push(match n.notify_type {
            notify::INITIAL_CONTACT => InfoItem::InitialContact,
            notify::R_U_THERE => match seq() {
                Some(s) => InfoItem::RuThere(s),
                None => continue,
            },
            notify::R_U_THERE_ACK => match seq() {
                Some(s) => InfoItem::RuThereAck(s),
                None => continue,
            },
            notify::RESPONDER_LIFETIME => match super::lifetime::Lowered::read(n.data) {
                Ok(lowered) => InfoItem::ResponderLifetime { protocol: n.protocol_id, spi: n.spi.to_vec(), lowered },
                Err(_) => continue,
            },
            t => InfoItem::Notify { kind: t, protocol: n.protocol_id, spi: n.spi.to_vec() },
        });
    }
    for d in &c.delete {
        match (d.protocol_id, d.spi_size) {
            (protocol::ISAKMP, 16) => {
                for spi in d.spis() {
                    let (a, b) = spi.split_at(8);
                    if let (Ok(i), Ok(r)) = (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) {
                        items.push(InfoItem::DeleteIsakmp(i, r));
                    }
                }
            }
            (protocol::ESP, 4) => {
                let spis = d.spis().filter_map(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_be_bytes).collect();
                items.push(InfoItem::DeleteEsp(spis));
            }
            // Deletes for AH/IPComp or with odd SPI sizes concern nothing hostsec has.
            _ => {}
        }
    }
    Ok(items)
}

/// Reads a cleartext Informational message: the notification types it carries (none are acted on beyond
/// logging: they are unauthenticated).
pub(crate) fn read_plain(hdr: &Header, datagram: &[u8]) -> Result<Vec<u16>, String> {
    let body = datagram.get(Header::LEN..).unwrap_or(&[]);
    let c = collect(hdr.next_payload, body).map_err(|e| e.to_string())?;
    Ok(c.notify.iter().map(|n| n.notify_type).collect())
}

/// A DELETE payload for an ISAKMP SA.
pub(crate) fn delete_isakmp(cky_i: [u8; 8], cky_r: [u8; 8]) -> DeleteRepr {
    let mut spi = cky_i.to_vec();
    spi.extend_from_slice(&cky_r);
    DeleteRepr { doi: DOI_IPSEC, protocol_id: protocol::ISAKMP, spi_size: 16, spis: vec![spi] }
}

/// A DELETE payload for ESP SAs (our inbound SPIs).
pub(crate) fn delete_esp(spis: &[u32]) -> DeleteRepr {
    DeleteRepr {
        doi: DOI_IPSEC,
        protocol_id: protocol::ESP,
        spi_size: 4,
        spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
    }
}

/// The name of a notification type, for logs.
pub(crate) fn notify_name(t: u16) -> String {
    let name = match t {
        notify::INVALID_PAYLOAD_TYPE => "INVALID-PAYLOAD-TYPE",
        notify::DOI_NOT_SUPPORTED => "DOI-NOT-SUPPORTED",
        notify::SITUATION_NOT_SUPPORTED => "SITUATION-NOT-SUPPORTED",
        notify::INVALID_COOKIE => "INVALID-COOKIE",
        notify::INVALID_MAJOR_VERSION => "INVALID-MAJOR-VERSION",
        notify::INVALID_EXCHANGE_TYPE => "INVALID-EXCHANGE-TYPE",
        notify::INVALID_FLAGS => "INVALID-FLAGS",
        notify::INVALID_MESSAGE_ID => "INVALID-MESSAGE-ID",
        notify::INVALID_PROTOCOL_ID => "INVALID-PROTOCOL-ID",
        notify::INVALID_SPI => "INVALID-SPI",
        notify::INVALID_TRANSFORM_ID => "INVALID-TRANSFORM-ID",
        notify::ATTRIBUTES_NOT_SUPPORTED => "ATTRIBUTES-NOT-SUPPORTED",
        notify::NO_PROPOSAL_CHOSEN => "NO-PROPOSAL-CHOSEN",
        notify::BAD_PROPOSAL_SYNTAX => "BAD-PROPOSAL-SYNTAX",
        notify::PAYLOAD_MALFORMED => "PAYLOAD-MALFORMED",
        notify::INVALID_KEY_INFORMATION => "INVALID-KEY-INFORMATION",
        notify::INVALID_ID_INFORMATION => "INVALID-ID-INFORMATION",
        notify::INVALID_CERT_ENCODING => "INVALID-CERT-ENCODING",
        notify::INVALID_CERTIFICATE => "INVALID-CERTIFICATE",
        notify::INVALID_HASH_INFORMATION => "INVALID-HASH-INFORMATION",
        notify::AUTHENTICATION_FAILED => "AUTHENTICATION-FAILED",
        notify::INVALID_SIGNATURE => "INVALID-SIGNATURE",
        notify::UNSUPPORTED_EXCHANGE_TYPE => "UNSUPPORTED-EXCHANGE-TYPE",
        notify::CONNECTED => "CONNECTED",
        notify::RESPONDER_LIFETIME => "RESPONDER-LIFETIME",
        notify::REPLAY_STATUS => "REPLAY-STATUS",
        notify::INITIAL_CONTACT => "INITIAL-CONTACT",
        notify::R_U_THERE => "R-U-THERE",
        notify::R_U_THERE_ACK => "R-U-THERE-ACK",
        _ => return format!("notify type {t}"),
    };
    name.to_string()
}

/// What an error notification from the peer means for an administrator.
pub(crate) fn explain_peer_error(t: u16) -> String {
    let hint = match t {
        notify::NO_PROPOSAL_CHOSEN => {
            "the peer accepts none of our proposals: compare its algorithms with this rule's minimum_strength"
        }
        notify::INVALID_ID_INFORMATION => {
            "the peer does not accept our identity (check local_id here and the peer's remote identity) or, in Quick \
             Mode, the traffic we asked for (check protocol and ports here against the peer's rule)"
        }
        notify::AUTHENTICATION_FAILED | notify::INVALID_HASH_INFORMATION => {
            "the peer could not authenticate us: the pre-shared keys probably differ"
        }
        notify::INVALID_KEY_INFORMATION => "the peer rejected our key exchange value",
        notify::INVALID_CERTIFICATE | notify::INVALID_CERT_AUTHORITY | notify::CERTIFICATE_UNAVAILABLE => {
            "the peer does not accept our certificate: check that it trusts our CA and that our certificate is valid \
             and names the identity we send"
        }
        notify::INVALID_EXCHANGE_TYPE | notify::UNSUPPORTED_EXCHANGE_TYPE => "the peer does not do this exchange type",
        _ => "",
    };
    if hint.is_empty() {
        format!("the peer sent {}", notify_name(t))
    } else {
        format!("the peer sent {}: {hint}", notify_name(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::derive_phase1;
    use crate::crypto::secret::Secret;
    use crate::crypto::{DhGroup, HashAlg, IkeCipher};
    use crate::ike::message::build_encrypted;
    use crate::wire::consts::{exchange, payload};
    use crate::wire::{Emit, NotifyRepr};

    fn keys() -> Phase1Keys {
        derive_phase1(
            HashAlg::Sha256,
            IkeCipher::AesCbc128,
            Secret::from_slice(&[7; 32]),
            &[9; 32],
            &[1; 8],
            &[2; 8],
            &[3; 65],
            &[4; 65],
        )
    }

    /// An Informational message as strongSwan sends it to refuse our MM5: HASH(1) and an error notification,
    /// encrypted with the Main Mode's keys and an IV from the last block of MM5.
    fn refusal(k: &Phase1Keys, suite: MainModeSuite, last_block: [u8; 16], mid: u32) -> Vec<u8> {
        let n = NotifyRepr {
            doi: DOI_IPSEC,
            protocol_id: protocol::ISAKMP,
            notify_type: notify::AUTHENTICATION_FAILED,
            spi: [[1u8; 8], [2u8; 8]].concat(),
            data: Vec::new(),
        };
        let hdr = Header {
            initiator_cookie: [1; 8],
            responder_cookie: [2; 8],
            next_payload: 0,
            version: 0x10,
            exchange_type: exchange::INFORMATIONAL,
            flags: 0,
            message_id: mid,
            length: 0,
        };
        let mac = |rest: &[u8]| prf(suite.hash, k.skeyid_a.expose(), &[&mid.to_be_bytes(), rest]);
        let crypt = Crypt { cipher: suite.cipher, key: k.ka.expose(), iv: exchange_iv(suite.hash, &last_block, mid) };
        let payloads: [(u8, &dyn Emit); 1] = [(payload::NOTIFY, &n)];
        build_encrypted(hdr, Some((suite.hash.output_len(), &mac)), &payloads, &crypt).unwrap().0
    }

    #[test]
    fn a_refusal_of_mm5_under_the_main_mode_keys_is_read_and_a_forged_one_is_not() {
        let k = keys();
        let suite = MainModeSuite { cipher: IkeCipher::AesCbc128, hash: HashAlg::Sha256, group: DhGroup::Ecp256 };
        let mm5_block = [0x5a; 16];
        let msg = refusal(&k, suite, mm5_block, 0x1234_5678);
        let hdr = Header::parse(&msg).unwrap();
        let items = read_encrypted(InfoKeys { suite, keys: &k, last_block: mm5_block }, &hdr, &msg).unwrap();
        assert!(matches!(items.as_slice(), [InfoItem::Notify { kind: notify::AUTHENTICATION_FAILED, .. }]));
        // Another IV chain (the wrong phase-1 block) or other keys: not authentic.
        assert!(read_encrypted(InfoKeys { suite, keys: &k, last_block: [0; 16] }, &hdr, &msg).is_err());
        let other = derive_phase1(
            HashAlg::Sha256,
            IkeCipher::AesCbc128,
            Secret::from_slice(&[8; 32]),
            &[9; 32],
            &[1; 8],
            &[2; 8],
            &[3; 65],
            &[4; 65],
        );
        assert!(read_encrypted(InfoKeys { suite, keys: &other, last_block: mm5_block }, &hdr, &msg).is_err());
        // A flipped ciphertext bit breaks HASH(1) or the payload chain (the last block here is padding only,
        // which IKEv1 leaves unauthenticated).
        for i in [Header::LEN, msg.len() - 33, msg.len() - 17] {
            let mut bad = msg.clone();
            bad[i] ^= 0x01;
            assert!(
                read_encrypted(InfoKeys { suite, keys: &k, last_block: mm5_block }, &hdr, &bad).is_err(),
                "byte {i}"
            );
        }
    }
}
