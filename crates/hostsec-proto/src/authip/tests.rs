//! Whole-message tests: byte layouts written by hand from the [MS-AIPS] packet diagrams and message flows, and
//! the malformed variants the parser must refuse.

use super::consts::{auth_method, exchange, notify, payload};
use super::*;
use crate::wire::consts::vendor_id::MS_NT5_ISAKMPOAKLEY_PREFIX;
use crate::wire::{Emit, FragmentRepr, PayloadWriter, WireError};

const CKY_I: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
const CKY_R: [u8; 8] = [0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01];

/// An ISAKMP header ([MS-AIPS] §2.2.1 diagram, = RFC 2408 §3.1) followed by `body`, with the length filled in.
fn datagram(cky_r: [u8; 8], next: u8, exchange_type: u8, flags: u8, message_id: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(CKY_I);
    m.extend(cky_r);
    m.extend([next, 0x10, exchange_type, flags]);
    m.extend(message_id.to_be_bytes());
    m.extend(u32::try_from(28 + body.len()).unwrap().to_be_bytes());
    m.extend(body);
    m
}

/// MM #1 of the §4.1 example / §3.5 flow, Anonymous-or-TLS initiator: CRYPTO{clear} SA Auth Ni VID.
/// CRYPTO: next = SA, reserved, length 8, seqNUM 0 (§2.2.3.2.2, §2.2.3.2.3).
fn mm1_body() -> Vec<u8> {
    let mut b = vec![];
    b.extend([0x01, 0x00, 0x00, 0x08, 0, 0, 0, 0]); // CRYPTO -> SA
    b.extend([0x87, 0x00, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 1]); // SA (opaque 8 bytes here) -> Auth
    b.extend([0x0a, 0x00, 0x00, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00]); // Auth TLS, Anon -> Nonce
    b.extend([0x0d, 0x00, 0x00, 0x0c]); // Nonce -> VID
    b.extend([0xa5; 8]);
    b.extend([0x00, 0x00, 0x00, 0x18]); // VID, last
    b.extend(MS_NT5_ISAKMPOAKLEY_PREFIX);
    b.extend([0, 0, 0, 9]);
    b
}

fn mm1() -> Vec<u8> {
    datagram([0; 8], payload::CRYPTO, exchange::MAIN_MODE, 0, 0, &mm1_body())
}

/// QM #5 of §3.4.7.3 (figure there): HDR*(0xF4), CRYPTO with seqNUM 1 and a 16-byte IV; ciphertext of two AES
/// blocks and a 12-byte ICV follow outside the CRYPTO length (§2.2.3.2.1, §2.2.3.2.3).
fn qm_sealed() -> Vec<u8> {
    let mut b = vec![0x00, 0x00, 0x00, 0x18, 0, 0, 0, 1];
    b.extend([0x5a; 16]);
    b.extend([0xc7; 32]);
    b.extend([0x1c; 12]);
    datagram(CKY_R, payload::CRYPTO, exchange::QUICK_MODE, 0x01, 0x0102_0304, &b)
}

/// The NOTIFY_DOS_COOKIE message (§2.2.3.2, §2.2.3.5): header + one Notify, no CRYPTO.
fn dos_cookie() -> Vec<u8> {
    let body = [0x00, 0x00, 0x00, 0x14, 0, 0, 0, 1, 0x01, 0x00, 0x9c, 0x55, 1, 2, 3, 4, 5, 6, 7, 8];
    datagram([0; 8], payload::NOTIFY, exchange::NOTIFY, 0, 0, &body)
}

/// An IKE fragment message ([MS-IKEE] §2.2.3): header + one fragment payload, ID 7, number 1, last.
fn fragment() -> Vec<u8> {
    let body = [0x00, 0x00, 0x00, 0x0b, 0x00, 0x07, 0x01, 0x01, 0xde, 0xad, 0xbf];
    datagram(CKY_R, payload::FRAGMENT, exchange::MAIN_MODE, 0, 0, &body)
}

fn roundtrip(bytes: &[u8]) -> AuthipMessageRepr {
    let m = AuthipMessage::parse(bytes).unwrap();
    let repr = AuthipMessageRepr::from_view(&m);
    let out = repr.to_vec().unwrap();
    assert_eq!(out, bytes, "emit must give the input back");
    repr
}

#[test]
fn mm1_clear_layout() {
    let bytes = mm1();
    // Header: CKY-I | 0 | next 0x85 | 1.0 | 0xF3 | flags 0 | msgid 0 (§2.2.1).
    assert_eq!(&bytes[16..20], &[0x85, 0x10, 0xf3, 0x00]);
    let m = AuthipMessage::parse(&bytes).unwrap();
    assert_eq!(m.header.exchange_type, exchange::MAIN_MODE);
    assert_eq!(m.header.responder_cookie, [0; 8]);
    assert_eq!(m.seq(), Some(0));
    let AuthipBody::Clear { crypto, first, chain } = m.body else { panic!("{m:?}") };
    assert_eq!((crypto, first, chain.len()), (CryptoClear { seq: 0, iv: None }, payload::SA, 12 + 12 + 12 + 24));
    let typed: Vec<_> = m.clear_payloads().collect::<Result<_, _>>().unwrap();
    assert_eq!(typed.len(), 4);
    assert!(matches!(typed[0], AuthipPayload::Ike(p) if p.kind == payload::SA));
    assert_eq!(typed[1], AuthipPayload::Auth(AuthRepr::offering(&[auth_method::TLS, auth_method::ANONYMOUS])));
    assert!(matches!(typed[2], AuthipPayload::Ike(p) if p.kind == payload::NONCE && p.body == [0xa5; 8]));
    assert!(matches!(typed[3], AuthipPayload::Ike(p) if classify::recognise_vendor_id(p.body)
        == Some(classify::MsVendorId::MsNt5(9))));
    roundtrip(&bytes);
    assert_eq!(classify::classify(&bytes), Some(classify::Keying::AuthIp));
}

/// MM #2 of §4.1 from a Windows responder (note <8>: the 8-byte IV is present, CRYPTO length 16), GSS_ID last.
#[test]
fn mm2_clear_with_iv_and_gss_id() {
    let mut body = vec![0x86, 0x00, 0x00, 0x10, 0, 0, 0, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    body.extend([0x00, 0x00, 0x00, 0x0c, 0x68, 0, 0x2f, 0, 0x61, 0, 0x62, 0]); // GSS_ID "h/ab"
    let bytes = datagram(CKY_R, payload::CRYPTO, exchange::MAIN_MODE, 0, 0, &body);
    let m = AuthipMessage::parse(&bytes).unwrap();
    let AuthipBody::Clear { crypto, .. } = m.body else { panic!() };
    assert_eq!(crypto.iv, Some([9, 8, 7, 6, 5, 4, 3, 2]));
    let typed: Vec<_> = m.clear_payloads().collect::<Result<_, _>>().unwrap();
    let [AuthipPayload::GssId(id)] = typed.as_slice() else { panic!("{typed:?}") };
    assert_eq!(id.name().unwrap(), "h/ab");
    roundtrip(&bytes);
}

/// MM #3 (§3.8, §4.1): CRYPTO{clear} GSS-API, with a token.
#[test]
fn mm3_gss_api() {
    let body = [0x81, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0x01, 0x60, 0x82, 0x01];
    let bytes = datagram(CKY_R, payload::CRYPTO, exchange::MAIN_MODE, 0, 0, &body);
    let m = AuthipMessage::parse(&bytes).unwrap();
    let typed: Vec<_> = m.clear_payloads().collect::<Result<_, _>>().unwrap();
    assert_eq!(typed, [AuthipPayload::Gss(GssPayload { status: 0, flags: 1, token: &[0x60, 0x82, 0x01] })]);
    roundtrip(&bytes);
}

#[test]
fn sealed_layout() {
    let bytes = qm_sealed();
    let m = AuthipMessage::parse(&bytes).unwrap();
    assert_eq!(m.header.message_id, 0x0102_0304);
    assert_eq!(m.seq(), Some(1));
    let AuthipBody::Sealed { crypto, sealed } = m.body else { panic!() };
    assert_eq!((crypto.iv, sealed.len()), (&[0x5a; 16][..], 44));
    let (ct, icv) = split_icv(sealed, crypto.iv.len(), 12).unwrap();
    assert_eq!((ct, icv), (&[0xc7; 32][..], &[0x1c; 12][..]));
    assert_eq!(m.clear_payloads().count(), 0);
    roundtrip(&bytes);
}

/// The decrypted chain of an encrypted Notify exchange (§3.4, Fig. 11–12): a reliable NOTIFY_ACQUIRE followed by
/// IDi and IDr, as the crypto layer would hand it back.
#[test]
fn acquire_with_ids_inside_crypto() {
    let mut buf = [0u8; 128];
    let mut w = PayloadWriter::new(&mut buf);
    w.push(payload::NOTIFY, &AuthipNotifyRepr::acquire(2, 0)).unwrap();
    w.push(payload::ID, &[1u8, 17, 0, 0, 10, 0, 0, 1]).unwrap();
    w.push(payload::ID, &[1u8, 17, 0, 0, 10, 0, 0, 2]).unwrap();
    let (first, chain) = (w.first_payload(), w.written().to_vec());
    let plain = InnerPlaintext::build(first, &chain, 16).unwrap();
    let inner = InnerPlaintext::parse(&plain).unwrap();
    let typed: Vec<_> = AuthipPayloads::new(inner.first, inner.chain).collect::<Result<_, _>>().unwrap();
    assert!(matches!(typed[0], AuthipPayload::Notify(n) if n.is_reliable()
        && n.kind() == NotifyKind::Acquire { encapsulation_mode: 2, flags: 0 }));
    // Without its two IDs, or with something else between, the chain is refused (§2.2.3.5).
    assert_eq!(chain.len(), 20 + 12 + 12);
    let mut one_id = chain[..32].to_vec();
    one_id[20] = 0; // the first ID becomes the last payload
    assert!(validate_chain(first, &one_id).is_err());
    let mut no_id = chain[..20].to_vec();
    no_id[0] = 0;
    assert!(validate_chain(first, &no_id).is_err());
    let mut swapped = chain.clone();
    swapped[0] = payload::NONCE;
    assert!(validate_chain(first, &swapped).is_err());
}

#[test]
fn dos_cookie_layout() {
    let bytes = dos_cookie();
    let m = AuthipMessage::parse(&bytes).unwrap();
    let AuthipBody::DosCookie(n) = m.body else { panic!() };
    assert_eq!(n.kind(), NotifyKind::DosCookie([1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(m.seq(), None);
    let repr = roundtrip(&bytes);
    assert_eq!(repr.body, AuthipBodyRepr::DosCookie(AuthipNotifyRepr::dos_cookie([1, 2, 3, 4, 5, 6, 7, 8])));
    // The MM exchange type is accepted too (docs/authip.md), QM and EM are not.
    let mut mm = bytes.clone();
    mm[18] = exchange::MAIN_MODE;
    assert!(AuthipMessage::parse(&mm).is_ok());
    for x in [exchange::QUICK_MODE, exchange::EXTENDED_MODE] {
        mm[18] = x;
        assert!(AuthipMessage::parse(&mm).is_err(), "exchange {x:#x}");
    }
}

#[test]
fn fragment_layout() {
    let bytes = fragment();
    let m = AuthipMessage::parse(&bytes).unwrap();
    let AuthipBody::Fragment(f) = m.body else { panic!() };
    assert_eq!((f.id, f.number, f.is_last(), f.data), (7, 1, true, &[0xde, 0xad, 0xbf][..]));
    roundtrip(&bytes);
}

#[test]
fn truncated_at_every_length() {
    // The ciphertext of an encrypted message has no length of its own: cut after one block and the shortest ICV
    // (28 + 24 + 16 + 12 bytes) it still parses, and the crypto layer's ICV check is what refuses it.
    let sealed_min = 28 + 24 + 16 + 12;
    for (bytes, parses_from) in
        [(mm1(), usize::MAX), (qm_sealed(), sealed_min), (dos_cookie(), usize::MAX), (fragment(), usize::MAX)]
    {
        for cut in 0..bytes.len() {
            let mut short = bytes[..cut].to_vec();
            assert!(AuthipMessage::parse(&short).is_err(), "cut {cut}");
            // The same with the header length made to agree: the payloads themselves are cut.
            if cut >= 28 {
                short[24..28].copy_from_slice(&u32::try_from(cut).unwrap().to_be_bytes());
                assert_eq!(AuthipMessage::parse(&short).is_ok(), cut >= parses_from, "cut {cut}, length fixed");
            }
        }
    }
}

#[test]
fn trailing_bytes_and_versions() {
    let mut bytes = mm1();
    bytes.extend([0xee; 5]); // beyond the header's length: ignored, as for IKEv1
    assert!(AuthipMessage::parse(&bytes).is_ok());
    let mut bytes = mm1();
    bytes[17] = 0x11; // minor version > 0 must be accepted (§2.2.1)
    assert_eq!(roundtrip(&bytes).header.version, 0x11);
    bytes[17] = 0x20;
    assert_eq!(AuthipMessage::parse(&bytes), Err(WireError::BadVersion(0x20)));
    // Bytes after the chain but inside the header's length are refused in a clear message.
    let mut body = mm1_body();
    body.extend([0, 0, 0, 0]);
    let bytes = datagram([0; 8], payload::CRYPTO, exchange::MAIN_MODE, 0, 0, &body);
    assert_eq!(
        AuthipMessage::parse(&bytes),
        Err(WireError::BadLength { what: "bytes after the AuthIP payload chain", len: 4 })
    );
}

#[test]
fn header_rules() {
    let good = mm1();
    for x in [0u8, 2, 5, 32, 0xf2, 0xf7, 0xff] {
        let mut m = good.clone();
        m[18] = x;
        assert!(
            matches!(AuthipMessage::parse(&m), Err(WireError::InvalidValue { what: "AuthIP exchange type", .. })),
            "exchange {x:#x}"
        );
    }
    for f in [0x02u8, 0x04, 0x08, 0x80, 0x03] {
        let mut m = good.clone();
        m[19] = f;
        assert!(
            matches!(AuthipMessage::parse(&m), Err(WireError::InvalidValue { what: "AuthIP header flags", .. })),
            "flags {f:#x}"
        );
    }
}

#[test]
fn e_flag_rules() {
    // E set on a clear-form message: the CRYPTO next-payload is non-zero and its length is that of the clear form.
    let mut m = mm1();
    m[19] = 0x01;
    assert!(AuthipMessage::parse(&m).is_err());
    // Clear QM: refused (§2.2.3.2, every QM message is HDR*).
    let mut m = mm1();
    m[18] = exchange::QUICK_MODE;
    assert_eq!(
        AuthipMessage::parse(&m),
        Err(WireError::InvalidValue { what: "AuthIP E flag (must be set)", value: 0 })
    );
    // Clear EM and Notify are accepted (see clear_allowed).
    for x in [exchange::EXTENDED_MODE, exchange::NOTIFY] {
        let mut m = mm1();
        m[18] = x;
        assert!(AuthipMessage::parse(&m).is_ok(), "exchange {x:#x}");
    }
    // E clear on the sealed form: the CRYPTO body (20 bytes) is no clear form.
    let mut m = qm_sealed();
    m[18] = exchange::MAIN_MODE;
    m[19] = 0;
    assert!(AuthipMessage::parse(&m).is_err());
    // E set on the DoS cookie and fragment messages.
    for mut m in [dos_cookie(), fragment()] {
        m[19] = 0x01;
        assert!(matches!(
            AuthipMessage::parse(&m),
            Err(WireError::InvalidValue { what: "AuthIP first payload (CRYPTO missing)", .. })
        ));
    }
    // Encrypted CRYPTO with a non-zero next payload (§2.2.3.2.3: 0 when E is set).
    let mut m = qm_sealed();
    m[28] = payload::HASH;
    assert!(matches!(
        AuthipMessage::parse(&m),
        Err(WireError::InvalidValue { what: "encrypted CRYPTO next payload", .. })
    ));
}

#[test]
fn crypto_missing_or_duplicated() {
    // Header points at SA: no CRYPTO.
    let body = &mm1_body()[8..];
    let m = datagram([0; 8], payload::SA, exchange::MAIN_MODE, 0, 0, body);
    assert!(matches!(
        AuthipMessage::parse(&m),
        Err(WireError::InvalidValue { what: "AuthIP first payload (CRYPTO missing)", value: 1 })
    ));
    // A second CRYPTO in the clear chain.
    let mut body = vec![0x85, 0, 0, 8, 0, 0, 0, 0];
    body.extend([0x00, 0, 0, 8, 0, 0, 0, 1]);
    let m = datagram([0; 8], payload::CRYPTO, exchange::MAIN_MODE, 0, 0, &body);
    assert!(matches!(AuthipMessage::parse(&m), Err(WireError::InvalidValue { what: "second CRYPTO payload", .. })));
    // CRYPTO present but not adjacent to the header (after an SA).
    let mut body = vec![0x85, 0, 0, 8, 0, 0, 0, 1];
    body.extend([0x00, 0, 0, 8, 0, 0, 0, 0]);
    let m = datagram([0; 8], payload::SA, exchange::MAIN_MODE, 0, 0, &body);
    assert!(AuthipMessage::parse(&m).is_err());
    // A clear message whose first payload is a Notify other than NOTIFY_DOS_COOKIE.
    let body = [0x00, 0x00, 0x00, 0x10, 0, 0, 0, 1, 0x01, 0x00, 0x9c, 0x56, 0, 0, 0, 5];
    let m = datagram([0; 8], payload::NOTIFY, exchange::NOTIFY, 0, 0, &body);
    assert!(matches!(
        AuthipMessage::parse(&m),
        Err(WireError::InvalidValue { what: "AuthIP message without CRYPTO (notify type)", .. })
    ));
}

#[test]
fn payload_types_refused_in_chain() {
    for kind in [2u8, 3, 6, 7, 9, 12, 14, 19, 22, 0x7f, 0x80, 0x82, 0x83, 0x84, 130, 131, 0x8a, 0xff] {
        let body = [kind, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 4];
        let m = datagram([0; 8], payload::CRYPTO, exchange::MAIN_MODE, 0, 0, &body);
        assert!(
            matches!(AuthipMessage::parse(&m), Err(WireError::InvalidValue { what: "AuthIP payload type", .. })),
            "type {kind:#x}"
        );
    }
}

#[test]
fn malformed_payload_bodies_in_chain() {
    let cases: [(u8, &[u8]); 8] = [
        (payload::GSSAPI, &[0, 0, 0, 0]),                         // GSS-API without flags byte
        (payload::GSS_ID, &[0x68]),                               // odd UTF-16
        (payload::AUTH, &[0, 4, 0]),                              // not a multiple of 4
        (payload::AUTH, &[]),                                     // empty list
        (payload::NOTIFY, &[0, 0, 0, 1, 1, 0, 0x9c, 0x56, 0, 0]), // ACK with 2 bytes
        (payload::NOTIFY, &[0, 0, 0, 1, 1, 0, 0x9c, 0x55, 0, 0, 0, 0, 0, 0, 0, 0]), // DoS cookie inside CRYPTO
        (payload::KEY_DICTATION_WEIGHT, &[0, 0, 1]),
        (payload::KEY_DICTATION, &[0; 27]),
    ];
    for (kind, pbody) in cases {
        let mut body = vec![kind, 0, 0, 8, 0, 0, 0, 0];
        body.extend([0, 0]);
        body.extend(u16::try_from(4 + pbody.len()).unwrap().to_be_bytes());
        body.extend(pbody);
        let m = datagram([0; 8], payload::CRYPTO, exchange::MAIN_MODE, 0, 0, &body);
        assert!(AuthipMessage::parse(&m).is_err(), "type {kind:#x} body {pbody:?}");
    }
}

#[test]
fn bad_lengths() {
    // Clear CRYPTO lengths other than 8 and 16.
    for len in [0u8, 3, 4, 7, 9, 12, 15, 17, 20] {
        let mut body = vec![0, 0, 0, len];
        body.resize(24, 0);
        let m = datagram([0; 8], payload::CRYPTO, exchange::MAIN_MODE, 0, 0, &body);
        assert!(AuthipMessage::parse(&m).is_err(), "len {len}");
    }
    // Encrypted CRYPTO lengths other than 16 and 24; and too little after it.
    let good = qm_sealed();
    for len in [0u8, 4, 8, 12, 15, 17, 20, 28] {
        let mut m = good.clone();
        m[31] = len;
        assert!(AuthipMessage::parse(&m).is_err(), "len {len}");
    }
    let sealed_min = datagram(CKY_R, payload::CRYPTO, exchange::QUICK_MODE, 1, 9, &{
        let mut b = vec![0, 0, 0, 16, 0, 0, 0, 1];
        b.extend([0u8; 8 + 8 + 12]);
        b
    });
    assert!(AuthipMessage::parse(&sealed_min).is_ok());
    assert!(AuthipMessage::parse(&{
        let mut m = sealed_min.clone();
        m.pop();
        m[27] -= 1;
        m
    })
    .is_err());
    // DoS cookie with next-payload != 0 or a second payload.
    let mut m = dos_cookie();
    m[28] = payload::VENDOR_ID;
    assert!(AuthipMessage::parse(&m).is_err());
    let mut body = dos_cookie()[28..].to_vec();
    body.extend([0, 0, 0, 4]);
    let m = datagram([0; 8], payload::NOTIFY, exchange::NOTIFY, 0, 0, &body);
    assert!(AuthipMessage::parse(&m).is_err());
    // Fragment number 0.
    let mut m = fragment();
    m[34] = 0;
    assert!(AuthipMessage::parse(&m).is_err());
}

#[test]
fn too_many_payloads() {
    let mut buf = vec![0u8; 8192];
    let mut w = PayloadWriter::new(&mut buf);
    for _ in 0..crate::wire::MAX_PAYLOADS {
        w.push(payload::VENDOR_ID, &[0u8; 4]).unwrap();
    }
    let (first, chain) = (w.first_payload(), w.written().to_vec());
    assert_eq!(validate_chain(first, &chain), Ok(crate::wire::MAX_PAYLOADS));
    let mut more = chain.clone();
    let last = more.len() - 8;
    more[last] = payload::VENDOR_ID;
    more.extend([0, 0, 0, 4]);
    assert_eq!(
        validate_chain(first, &more),
        Err(WireError::TooMany { what: "payloads", limit: crate::wire::MAX_PAYLOADS })
    );
}

#[test]
fn emit_refuses_what_parse_refuses() {
    let header = AuthipHeader {
        initiator_cookie: CKY_I,
        responder_cookie: CKY_R,
        version: 0x10,
        exchange_type: exchange::MAIN_MODE,
        message_id: 0,
    };
    let clear =
        |first: u8, chain: Vec<u8>| AuthipBodyRepr::Clear { crypto: CryptoClear { seq: 0, iv: None }, first, chain };
    let bad = [
        AuthipMessageRepr { header, body: clear(payload::SA, vec![0, 0, 0, 3]) },
        AuthipMessageRepr {
            header: AuthipHeader { exchange_type: exchange::QUICK_MODE, ..header },
            body: clear(0, vec![]),
        },
        AuthipMessageRepr { header: AuthipHeader { exchange_type: 2, ..header }, body: clear(0, vec![]) },
        AuthipMessageRepr { header: AuthipHeader { version: 0x20, ..header }, body: clear(0, vec![]) },
        AuthipMessageRepr {
            header,
            body: AuthipBodyRepr::Sealed { crypto: CryptoSealedRepr { seq: 1, iv: vec![0; 16] }, sealed: vec![0; 27] },
        },
        AuthipMessageRepr { header, body: AuthipBodyRepr::DosCookie(AuthipNotifyRepr::ack(1, 1)) },
        AuthipMessageRepr {
            header,
            body: AuthipBodyRepr::Fragment(FragmentRepr { id: 1, number: 0, last: true, data: vec![] }),
        },
    ];
    for r in bad {
        assert!(r.to_vec().is_err(), "{r:?}");
    }
    // An empty clear message (CRYPTO only) is valid both ways.
    let r = AuthipMessageRepr { header, body: clear(0, vec![]) };
    let bytes = r.to_vec().unwrap();
    assert_eq!(bytes.len(), 36);
    assert_eq!(AuthipMessageRepr::from_view(&AuthipMessage::parse(&bytes).unwrap()), r);
    assert_eq!(r.emit(&mut [0u8; 35]), Err(WireError::BufferTooSmall { need: 36, have: 35 }));
}

#[test]
fn crypto_reserved_byte_is_ignored() {
    // §2.2.3.2.3: the responder ignores RESERVED; it is written back as 0.
    let mut bytes = mm1();
    bytes[29] = 0xff;
    let repr = AuthipMessageRepr::from_view(&AuthipMessage::parse(&bytes).unwrap());
    let out = repr.to_vec().unwrap();
    bytes[29] = 0;
    assert_eq!(out, bytes);
}

#[test]
fn consts_agree_with_the_ikev1_table() {
    use crate::wire::consts::payload as p;
    assert_eq!(
        [payload::GSSAPI, payload::CRYPTO, payload::GSS_ID, payload::AUTH, payload::FRAGMENT],
        [p::GSSAPI, p::CRYPTO, p::GSS_ID, p::AUTH, p::FRAGMENT]
    );
    assert_ne!(notify::NOTIFY_STATUS, 0x9C43); // the MS-IKEE IKEv1 value
}
