//! Vendor IDs: the ones we send in MM1 and MM2, and what the peer's tell us about the extensions it speaks.
//!
//! Today the only extension negotiated this way is IKE fragmentation (the Cisco/Microsoft one). As initiator we
//! announce it in MM1; as responder we answer with it in MM2 only when MM1 announced it, as strongSwan does, so
//! that an initiator never learns of support it did not ask about. Later extensions (NAT-T, DPD) add their IDs
//! here.

use crate::wire::consts::vendor_id::{FRAGMENTATION_MAIN_MODE, FRAGMENTATION_PREFIX, MS_NT5_ISAKMPOAKLEY_PREFIX};

/// What the peer's vendor IDs in MM1 (it initiated) or MM2 (it responded) announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PeerVendors {
    /// The peer reassembles IKE fragments of Main Mode messages.
    pub fragmentation: bool,
    /// The peer is Windows ("MS NT5 ISAKMPOAKLEY"). Windows 7 and 8 accept fragments only of messages that carry
    /// certificates (strongSwan's observation), so we fragment only its encrypted Main Mode messages.
    pub windows: bool,
}

impl PeerVendors {
    /// Reads the vendor ID payload bodies of a message.
    pub fn from_payloads(vids: &[&[u8]]) -> Self {
        let mut v = PeerVendors::default();
        for vid in vids {
            v.fragmentation |= announces_fragmentation(vid);
            v.windows |= vid.starts_with(&MS_NT5_ISAKMPOAKLEY_PREFIX);
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

/// The vendor IDs of MM1 (`peer` = `None`) or of MM2 answering an MM1 whose vendor IDs were `peer`.
pub(crate) fn ours(peer: Option<&PeerVendors>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if peer.is_none_or(|p| p.fragmentation) {
        out.push(fragmentation().to_vec());
    }
    out
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
        assert_eq!(v, PeerVendors { fragmentation: true, windows: true });
        assert_eq!(ours(None), vec![fragmentation().to_vec()]);
        assert_eq!(ours(Some(&v)), vec![fragmentation().to_vec()]);
        assert!(ours(Some(&PeerVendors::default())).is_empty());
    }
}
