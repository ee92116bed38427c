//! Telling AuthIP from IKEv1 on the wire, and the vendor IDs through which Windows announces AuthIP, for the later
//! coexistence logic ([MS-AIPS] §1.7, §3.2.4, §3.3.5.2).

use super::consts::{exchange, vendor_id};
use crate::wire::consts::{exchange as ike_exchange, payload as ike_payload};
use crate::wire::{Header, Payloads};

/// Which keying module a datagram on UDP 500/4500 is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keying {
    /// ISAKMP version 1 with an AuthIP exchange type (0xF3–0xF6).
    AuthIp,
    /// ISAKMP version 1 with any other exchange type.
    IkeV1,
}

/// Classifies a datagram by its ISAKMP header: `None` when the header does not parse (too short, a length that
/// lies, or another major version such as IKEv2). AuthIP and IKEv1 share the header and the version 1.0
/// (§1.7), so the exchange type is the only thing that tells them apart.
pub fn classify(datagram: &[u8]) -> Option<Keying> {
    let h = Header::parse(datagram).ok()?;
    Some(if exchange::is_authip(h.exchange_type) { Keying::AuthIp } else { Keying::IkeV1 })
}

/// Whether `datagram` is a clear IKEv1 Main Mode message carrying the MS-MamieExists vendor ID, i.e. the IKEv1
/// MM #1 a Windows initiator sends beside its AuthIP MM #1 ([MS-AIPS] §3.2.4, note <4>). Walks the payload chain
/// up to the first malformed payload; a VID before it still counts.
pub fn ikev1_has_mamie_exists(datagram: &[u8]) -> bool {
    let Ok((h, body)) = Header::split(datagram) else {
        return false;
    };
    if h.exchange_type != ike_exchange::IDENTITY_PROTECTION || h.is_encrypted() {
        return false;
    }
    Payloads::new(h.next_payload, body)
        .map_while(Result::ok)
        .any(|p| p.kind == ike_payload::VENDOR_ID && p.body == vendor_id::MS_MAMIE_EXISTS)
}

/// A Microsoft vendor ID that bears on AuthIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsVendorId {
    /// MS NT5 ISAKMPOAKLEY with its version (5 Vista … 9 Windows 8 and later).
    MsNt5(u32),
    /// MS-MamieExists: the sender also runs AuthIP.
    MamieExists,
    /// KEY_MODS with its keying-module number (1 = AuthIP; see docs/authip.md for what IKEv1 peers send).
    KeyMods(u32),
    /// AUTHIP_INIT_KE_DH_GROUP with its group index.
    AuthipInitKeDhGroup(u32),
    /// GSSAPI (Kerberos available).
    Gssapi,
    /// Vid-Initial-Contact.
    InitialContact,
    /// NLBS_PRESENT.
    NlbsPresent,
    /// MS-Negotiation Discovery Capable.
    NegotiationDiscoveryCapable,
    /// IKE CGA version 1.
    IkeCgaV1,
}

/// Recognises a VID payload body as one of the Microsoft vendor IDs of [`vendor_id`], or `None`. The
/// versioned ones are a 16-byte prefix and a 4-byte big-endian number, exactly 20 bytes.
pub fn recognise_vendor_id(body: &[u8]) -> Option<MsVendorId> {
    if let Ok(fixed) = <[u8; 16]>::try_from(body) {
        return match fixed {
            vendor_id::MS_MAMIE_EXISTS => Some(MsVendorId::MamieExists),
            vendor_id::GSSAPI => Some(MsVendorId::Gssapi),
            vendor_id::INITIAL_CONTACT => Some(MsVendorId::InitialContact),
            vendor_id::NLBS_PRESENT => Some(MsVendorId::NlbsPresent),
            vendor_id::NEGOTIATION_DISCOVERY_CAPABLE => Some(MsVendorId::NegotiationDiscoveryCapable),
            vendor_id::IKE_CGA_V1 => Some(MsVendorId::IkeCgaV1),
            _ => None,
        };
    }
    let (prefix, number) = body.split_first_chunk::<16>()?;
    let number = u32::from_be_bytes(<[u8; 4]>::try_from(number).ok()?);
    match *prefix {
        vendor_id::MS_NT5_ISAKMPOAKLEY_PREFIX => Some(MsVendorId::MsNt5(number)),
        vendor_id::KEY_MODS_PREFIX => Some(MsVendorId::KeyMods(number)),
        vendor_id::AUTHIP_INIT_KE_DH_GROUP_PREFIX => Some(MsVendorId::AuthipInitKeDhGroup(number)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::{payload, ISAKMP_VERSION};
    use crate::wire::PayloadWriter;

    fn ikev1_mm1(vids: &[&[u8]], exchange_type: u8) -> Vec<u8> {
        let mut buf = vec![0u8; 512];
        let mut w = PayloadWriter::new(&mut buf);
        w.push(payload::SA, &[0u8; 8]).unwrap();
        for v in vids {
            w.push(payload::VENDOR_ID, v).unwrap();
        }
        let (first, chain) = (w.first_payload(), w.written().to_vec());
        let h = Header {
            initiator_cookie: [1; 8],
            responder_cookie: [0; 8],
            next_payload: first,
            version: ISAKMP_VERSION,
            exchange_type,
            flags: 0,
            message_id: 0,
            length: u32::try_from(28 + chain.len()).unwrap(),
        };
        let mut msg = vec![0u8; 28];
        h.emit(&mut msg).unwrap();
        msg.extend(chain);
        msg
    }

    /// [MS-AIPS] §2.2.1: AuthIP exchange types 0xF3–0xF6 under the same 1.0 header as IKEv1.
    #[test]
    fn classify_by_exchange_type() {
        let mut m = ikev1_mm1(&[], ike_exchange::IDENTITY_PROTECTION);
        assert_eq!(classify(&m), Some(Keying::IkeV1));
        for (x, want) in [(0xF2, Keying::IkeV1), (0xF3, Keying::AuthIp), (0xF6, Keying::AuthIp), (0xF7, Keying::IkeV1)]
        {
            m[18] = x;
            assert_eq!(classify(&m), Some(want), "exchange {x:#x}");
        }
        m[17] = 0x20;
        assert_eq!(classify(&m), None);
        assert_eq!(classify(&m[..27]), None);
    }

    /// §3.2.4 and note <4>: the IKEv1 MM #1 that accompanies an AuthIP MM #1 carries MS-MamieExists.
    #[test]
    fn mamie_exists() {
        let ms_nt5: Vec<u8> = [&vendor_id::MS_NT5_ISAKMPOAKLEY_PREFIX[..], &[0, 0, 0, 9]].concat();
        let m = ikev1_mm1(&[&ms_nt5, &vendor_id::MS_MAMIE_EXISTS], ike_exchange::IDENTITY_PROTECTION);
        assert!(ikev1_has_mamie_exists(&m));
        assert!(!ikev1_has_mamie_exists(&ikev1_mm1(&[&ms_nt5], ike_exchange::IDENTITY_PROTECTION)));
        assert!(!ikev1_has_mamie_exists(&ikev1_mm1(&[&vendor_id::MS_MAMIE_EXISTS], ike_exchange::AGGRESSIVE)));
        // A truncated VID is not counted; a malformed payload after it does not hide it.
        assert!(!ikev1_has_mamie_exists(&ikev1_mm1(&[&vendor_id::MS_MAMIE_EXISTS[..15]], 2)));
        let mut m2 = m.clone();
        m2.extend([0u8; 3]);
        let len = u32::try_from(m2.len()).unwrap();
        m2[24..28].copy_from_slice(&len.to_be_bytes());
        let last_next = m2.len() - 3 - 20; // next-payload of the MamieExists VID
        m2[last_next] = payload::NONCE;
        assert!(ikev1_has_mamie_exists(&m2));
        for cut in 0..m.len() {
            assert!(!ikev1_has_mamie_exists(&m[..cut]), "cut {cut}");
        }
    }

    /// [MS-AIPS] notes <3>, <4>; [MS-IKEE] note <6>.
    #[test]
    fn vendor_ids() {
        assert_eq!(recognise_vendor_id(&vendor_id::MS_MAMIE_EXISTS), Some(MsVendorId::MamieExists));
        let v = [&vendor_id::KEY_MODS_PREFIX[..], &[0, 0, 0, 1]].concat();
        assert_eq!(recognise_vendor_id(&v), Some(MsVendorId::KeyMods(vendor_id::KEY_MODS_AUTHIP)));
        let v = [&vendor_id::MS_NT5_ISAKMPOAKLEY_PREFIX[..], &[0, 0, 0, 7]].concat();
        assert_eq!(recognise_vendor_id(&v), Some(MsVendorId::MsNt5(7)));
        let v = [&vendor_id::AUTHIP_INIT_KE_DH_GROUP_PREFIX[..], &[0, 0, 0, 3]].concat();
        assert_eq!(recognise_vendor_id(&v), Some(MsVendorId::AuthipInitKeDhGroup(3)));
        assert_eq!(recognise_vendor_id(&vendor_id::MS_NT5_ISAKMPOAKLEY_PREFIX), None);
        assert_eq!(recognise_vendor_id(&v[..19]), None);
        assert_eq!(recognise_vendor_id(&[&v[..], &[0]].concat()), None);
        assert_eq!(recognise_vendor_id(&crate::wire::consts::vendor_id::DPD), None);
        assert_eq!(recognise_vendor_id(&[]), None);
    }
}
