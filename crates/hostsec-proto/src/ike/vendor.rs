//! Vendor IDs: the ones we send in MM1 and MM2, and what the peer's tell us about the extensions it speaks.
//!
//! Two extensions are negotiated this way: IKE fragmentation (the Cisco/Microsoft one) and NAT traversal (RFC
//! 3947 and the drafts before it). As initiator we announce both in MM1; as responder we answer in MM2 only with
//! those that MM1 announced, as strongSwan does, so that an initiator never learns of support it did not ask
//! about. NAT-T is announced whatever the `nat_traversal` setting, as Windows does: NAT-D then tells whether a NAT
//! is on the path, and a refusal can name the setting to change instead of failing obscurely later.

use crate::wire::consts::vendor_id::{
    DPD, FRAGMENTATION_MAIN_MODE, FRAGMENTATION_PREFIX, MS_NT5_ISAKMPOAKLEY_PREFIX, NAT_T_DRAFT_02, NAT_T_DRAFT_02_N,
    NAT_T_DRAFT_03, NAT_T_RFC3947,
};
use crate::wire::consts::{encap_mode, payload};

/// Which NAT-T the peer speaks; it decides the payload types of NAT-D and NAT-OA and the encapsulation mode
/// values of Quick Mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NatTVersion {
    /// draft-ietf-ipsec-nat-t-ike-02/03 (Windows XP/2003, old peers): NAT-D 130, NAT-OA 131, UDP transport 61444.
    Draft,
    /// RFC 3947: NAT-D 20, NAT-OA 21, UDP transport 4.
    Rfc3947,
}

impl NatTVersion {
    /// The NAT-D payload type.
    pub fn nat_d_payload(self) -> u8 {
        match self {
            NatTVersion::Rfc3947 => payload::NAT_D,
            NatTVersion::Draft => payload::NAT_D_DRAFT,
        }
    }

    /// The NAT-OA payload type.
    pub fn nat_oa_payload(self) -> u8 {
        match self {
            NatTVersion::Rfc3947 => payload::NAT_OA,
            NatTVersion::Draft => payload::NAT_OA_DRAFT,
        }
    }

    /// The encapsulation mode value of UDP-encapsulated transport.
    pub fn udp_transport(self) -> u16 {
        match self {
            NatTVersion::Rfc3947 => encap_mode::UDP_TRANSPORT,
            NatTVersion::Draft => encap_mode::UDP_TRANSPORT_DRAFT,
        }
    }

    /// The version a NAT-T vendor ID announces; `None` for other IDs (draft-00/01, which floated differently,
    /// count as none).
    fn of_vid(vid: &[u8]) -> Option<NatTVersion> {
        if vid == NAT_T_RFC3947 {
            Some(NatTVersion::Rfc3947)
        } else if [&NAT_T_DRAFT_02[..], &NAT_T_DRAFT_02_N, &NAT_T_DRAFT_03].contains(&vid) {
            Some(NatTVersion::Draft)
        } else {
            None
        }
    }

    /// The vendor ID that announces this version as we answer with it in MM2 (the draft-02 one with the newline
    /// for the drafts: the form Windows sends).
    fn vid(self) -> [u8; 16] {
        match self {
            NatTVersion::Rfc3947 => NAT_T_RFC3947,
            NatTVersion::Draft => NAT_T_DRAFT_02_N,
        }
    }
}

/// What the peer's vendor IDs in MM1 (it initiated) or MM2 (it responded) announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PeerVendors {
    /// The peer reassembles IKE fragments of Main Mode messages.
    pub fragmentation: bool,
    /// The peer is Windows ("MS NT5 ISAKMPOAKLEY"). Windows 7 and 8 accept fragments only of messages that carry
    /// certificates (strongSwan's observation), so we fragment only its encrypted Main Mode messages.
    pub windows: bool,
    /// The newest NAT-T version the peer announced.
    pub nat_t: Option<NatTVersion>,
    /// The peer answers R-U-THERE (RFC 3706): only such a peer is probed.
    pub dpd: bool,
}

impl PeerVendors {
    /// Reads the vendor ID payload bodies of a message.
    pub fn from_payloads(vids: &[&[u8]]) -> Self {
        let mut v = PeerVendors::default();
        for vid in vids {
            v.fragmentation |= announces_fragmentation(vid);
            v.windows |= vid.starts_with(&MS_NT5_ISAKMPOAKLEY_PREFIX);
            v.nat_t = v.nat_t.max(NatTVersion::of_vid(vid));
            v.dpd |= *vid == DPD;
        }
        v
    }
}

/// Whether a vendor ID announces IKE fragmentation of Main Mode messages: the 16-byte prefix alone (Windows), or
/// followed by a 4-byte capability word with the Main Mode bit set (strongSwan, racoon, Cisco). Other lengths, or
/// a capability word without that bit, do not.
fn announces_fragmentation(vid: &[u8]) -> bool {
    match vid.split_first_chunk::<16>() {
        Some((prefix, rest)) if *prefix == FRAGMENTATION_PREFIX => match rest {
            [] => true,
            [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]) & FRAGMENTATION_MAIN_MODE != 0,
            _ => false,
        },
        _ => false,
    }
}

/// The fragmentation vendor ID as we send it: the prefix and the capability word with the Main Mode bit, the form
/// strongSwan sends; Windows accepts it with or without the word.
pub(crate) fn fragmentation() -> [u8; 20] {
    let mut v = [0u8; 20];
    v[..16].copy_from_slice(&FRAGMENTATION_PREFIX);
    v[16..].copy_from_slice(&FRAGMENTATION_MAIN_MODE.to_be_bytes());
    v
}

/// The vendor IDs of MM1 (`peer` = `None`) or of MM2 answering an MM1 whose vendor IDs were `peer`. MM1 announces
/// RFC 3947 and the drafts strongSwan sends (03, 02, 02 with the newline); MM2 the one version it chose.
pub(crate) fn ours(peer: Option<&PeerVendors>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if peer.is_none_or(|p| p.fragmentation) {
        out.push(fragmentation().to_vec());
    }
    match peer {
        None => out.extend([NAT_T_RFC3947, NAT_T_DRAFT_03, NAT_T_DRAFT_02, NAT_T_DRAFT_02_N].map(|v| v.to_vec())),
        Some(p) => out.extend(p.nat_t.map(|v| v.vid().to_vec())),
    }
    out
}

/// Whether MM3 or MM4 carries the DPD vendor ID: MM3 always, MM4 when the peer announced DPD (in MM1 or MM3), so
/// that each side learns the other answers R-U-THERE. It travels there rather than in MM1, as Cisco sends it and
/// strongSwan reads it, because MM1 of a certificate rule already nearly fills a 1500-byte packet over IPv6; it is
/// sent whatever `dpd_interval` says, since we always answer.
pub(crate) fn dpd_in_key_exchange(peer: &PeerVendors, initiator: bool) -> Option<[u8; 16]> {
    (initiator || peer.dpd).then_some(DPD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_the_fragmentation_vid() {
        let ours = fragmentation();
        assert_eq!(hex::encode(ours), "4048b7d56ebce88525e7de7f00d6c2d380000000");
        let windows = &ours[..16];
        let cisco = [&ours[..16], &[0xc0, 0, 0, 0]].concat();
        for vid in [&ours[..], windows, &cisco] {
            assert!(PeerVendors::from_payloads(&[vid]).fragmentation, "{}", hex::encode(vid));
        }
        // Base ISAKMP fragmentation only, a truncated or extended ID, another vendor's ID: no.
        let base_only = [&ours[..16], &[0x40, 0, 0, 0]].concat();
        let long = [&ours[..], &[0]].concat();
        for vid in [&base_only[..], &ours[..15], &ours[..18], &long, &[0u8; 20]] {
            assert!(!PeerVendors::from_payloads(&[vid]).fragmentation, "{}", hex::encode(vid));
        }
    }

    #[test]
    fn windows_and_what_we_send() {
        let ms = [&MS_NT5_ISAKMPOAKLEY_PREFIX[..], &[0, 0, 0, 9]].concat();
        let v = PeerVendors::from_payloads(&[&ms, &FRAGMENTATION_PREFIX]);
        assert_eq!(v, PeerVendors { fragmentation: true, windows: true, nat_t: None, dpd: false });
        assert_eq!(ours(None)[0], fragmentation().to_vec());
        assert_eq!(ours(Some(&v)), vec![fragmentation().to_vec()]);
        assert!(ours(Some(&PeerVendors::default())).is_empty());
    }

    #[test]
    fn dpd_is_announced_in_mm3_and_answered_in_mm4() {
        // RFC 3706 §5.1: the vendor ID is afcad71368a1f1c96b8696fc77570100.
        let dpd = hex::decode("afcad71368a1f1c96b8696fc77570100").unwrap();
        assert!(!ours(None).contains(&dpd), "MM1 has no room to spare");
        let peer = PeerVendors::from_payloads(&[&dpd]);
        assert!(peer.dpd);
        assert_eq!(dpd_in_key_exchange(&PeerVendors::default(), true).map(|v| v.to_vec()), Some(dpd.clone()));
        assert_eq!(dpd_in_key_exchange(&peer, false).map(|v| v.to_vec()), Some(dpd.clone()));
        assert_eq!(dpd_in_key_exchange(&PeerVendors::default(), false), None);
        assert!(!PeerVendors::from_payloads(&[&dpd[..15]]).dpd, "a truncated ID is not DPD");
    }

    #[test]
    fn nat_t_versions() {
        // The IDs are the MD5 of their names; the draft-02 one with a trailing newline is a famous typo.
        let ours_mm1 = ours(None);
        assert!(ours_mm1.contains(&hex::decode("4a131c81070358455c5728f20e95452f").unwrap()));
        assert!(ours_mm1.contains(&hex::decode("90cb80913ebb696e086381b5ec427b1f").unwrap()));
        assert!(ours_mm1.contains(&hex::decode("cd60464335df21f87cfdb2fc68b6a448").unwrap()));
        assert!(ours_mm1.contains(&hex::decode("7d9419a65310ca6f2c179d9215529d56").unwrap()));
        assert_eq!(PeerVendors::from_payloads(&[&NAT_T_DRAFT_02_N]).nat_t, Some(NatTVersion::Draft));
        assert_eq!(PeerVendors::from_payloads(&[&NAT_T_DRAFT_03]).nat_t, Some(NatTVersion::Draft));
        // The newest wins, in any order.
        let both = PeerVendors::from_payloads(&[&NAT_T_RFC3947, &NAT_T_DRAFT_02]);
        assert_eq!(both.nat_t, Some(NatTVersion::Rfc3947));
        let both = PeerVendors::from_payloads(&[&NAT_T_DRAFT_02, &NAT_T_RFC3947]);
        assert_eq!(both.nat_t, Some(NatTVersion::Rfc3947));
        assert_eq!(ours(Some(&both)), vec![NAT_T_RFC3947.to_vec()]);
        let draft = PeerVendors::from_payloads(&[&NAT_T_DRAFT_03]);
        assert_eq!(ours(Some(&draft)), vec![NAT_T_DRAFT_02_N.to_vec()]);
        // draft-00/01 and truncated IDs are no NAT-T.
        use crate::wire::consts::vendor_id::{NAT_T_DRAFT_00, NAT_T_DRAFT_01};
        for vid in [&NAT_T_DRAFT_00[..], &NAT_T_DRAFT_01, &NAT_T_RFC3947[..15]] {
            assert_eq!(PeerVendors::from_payloads(&[vid]).nat_t, None);
        }
        assert_eq!((NatTVersion::Rfc3947.nat_d_payload(), NatTVersion::Draft.nat_d_payload()), (20, 130));
        assert_eq!((NatTVersion::Rfc3947.nat_oa_payload(), NatTVersion::Draft.nat_oa_payload()), (21, 131));
        assert_eq!((NatTVersion::Rfc3947.udp_transport(), NatTVersion::Draft.udp_transport()), (4, 61444));
    }
}
