//! AuthIP wire codec ([MS-AIPS] §2.2), through the public API: property tests that every message and payload
//! the emitters write parses back to the same value, that whatever parses re-emits to a value that parses alike
//! (the fuzz target's oracle, on random bytes), and that mutating a valid message never panics.
//!
//! The byte layouts written by hand from the spec are unit tests next to the code (`src/authip/`).

use hostsec_proto::authip::consts::{auth_method, exchange, notify, notify_protocol, payload};
use hostsec_proto::authip::{
    AuthEntry, AuthRepr, AuthipBodyRepr, AuthipHeader, AuthipMessage, AuthipMessageRepr, AuthipNotify,
    AuthipNotifyRepr, AuthipPayloads, CryptoClear, CryptoSealedRepr, GssIdPayload, GssIdRepr, GssPayload, GssRepr,
    InnerPlaintext, KeyDictationWeight, MAX_AUTH_METHODS,
};
use hostsec_proto::wire::{Emit, FragmentRepr, PayloadWriter};
use proptest::prelude::*;

const BOM: char = '\u{feff}';

fn emit_vec(e: &dyn Emit) -> Vec<u8> {
    let mut out = vec![0u8; e.buffer_len()];
    e.emit(&mut out).expect("emit");
    out
}

/// One payload of a valid AuthIP chain: (type, body).
fn chain_payload() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    let gss = (any::<u32>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(status, flags, token)| vec![(payload::GSSAPI, emit_vec(&GssRepr { status, flags, token }))]);
    let gss_id = "[a-z]{1,8}/[a-z0-9.\u{e9}\u{1F600}]{1,24}"
        .prop_map(|name| vec![(payload::GSS_ID, emit_vec(&GssIdRepr { name }))]);
    let auth = prop::collection::vec((any::<u16>(), any::<u16>()), 1..=MAX_AUTH_METHODS).prop_map(|e| {
        let entries = e.into_iter().map(|(method, flags)| AuthEntry { method, flags }).collect();
        vec![(payload::AUTH, emit_vec(&AuthRepr { entries }))]
    });
    let notify = prop_oneof![
        any::<u32>().prop_map(|s| AuthipNotifyRepr::ack(notify_protocol::MM_EM, s)),
        (any::<bool>(), any::<u32>()).prop_map(|(r, c)| AuthipNotifyRepr::status(notify_protocol::QM, r, c)),
        Just(AuthipNotifyRepr::qm_synchronize()),
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(flags, data)| AuthipNotifyRepr {
            protocol_id: notify_protocol::MM_EM,
            flags,
            notify_type: notify::NO_PROPOSAL_CHOSEN,
            data
        }),
    ]
    .prop_map(|n| vec![(payload::NOTIFY, emit_vec(&n))]);
    let acquire = (any::<u32>(), any::<u32>(), prop::collection::vec(any::<u8>(), 4..12)).prop_map(|(m, f, id)| {
        vec![
            (payload::NOTIFY, emit_vec(&AuthipNotifyRepr::acquire(m, f))),
            (payload::ID, id.clone()),
            (payload::ID, id),
        ]
    });
    let ike = (
        prop::sample::select(vec![
            payload::SA,
            payload::KE,
            payload::ID,
            payload::HASH,
            payload::NONCE,
            payload::VENDOR_ID,
            payload::NAT_D,
            payload::NAT_OA,
        ]),
        prop::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(k, b)| vec![(k, b)]);
    let weight = any::<u32>().prop_map(|w| vec![(payload::KEY_DICTATION_WEIGHT, emit_vec(&KeyDictationWeight(w)))]);
    let dictation = prop::collection::vec(any::<u8>(), 28..64).prop_map(|b| vec![(payload::KEY_DICTATION, b)]);
    prop_oneof![gss, gss_id, auth, notify, acquire, ike, weight, dictation]
}

/// A valid chain as (first type, bytes).
fn chain() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop::collection::vec(chain_payload(), 0..8).prop_map(|groups| {
        let mut buf = vec![0u8; 8192];
        let mut w = PayloadWriter::new(&mut buf);
        for (kind, body) in groups.into_iter().flatten() {
            w.push(kind, &body).expect("push");
        }
        (w.first_payload(), w.written().to_vec())
    })
}

fn header(exchange_types: Vec<u8>) -> impl Strategy<Value = AuthipHeader> {
    (any::<[u8; 8]>(), any::<[u8; 8]>(), 0x10u8..=0x1f, prop::sample::select(exchange_types), any::<u32>()).prop_map(
        |(initiator_cookie, responder_cookie, version, exchange_type, message_id)| AuthipHeader {
            initiator_cookie,
            responder_cookie,
            version,
            exchange_type,
            message_id,
        },
    )
}

fn message() -> impl Strategy<Value = AuthipMessageRepr> {
    let all = vec![exchange::MAIN_MODE, exchange::QUICK_MODE, exchange::EXTENDED_MODE, exchange::NOTIFY];
    let clear_ok = vec![exchange::MAIN_MODE, exchange::EXTENDED_MODE, exchange::NOTIFY];
    let clear = (header(clear_ok.clone()), any::<u32>(), any::<Option<[u8; 8]>>(), chain()).prop_map(
        |(header, seq, iv, (first, chain))| AuthipMessageRepr {
            header,
            body: AuthipBodyRepr::Clear { crypto: CryptoClear { seq, iv }, first, chain },
        },
    );
    let sealed = (
        header(all.clone()),
        any::<u32>(),
        prop::sample::select(vec![8usize, 16]),
        prop::collection::vec(any::<u8>(), 0..96),
    )
        .prop_map(|(header, seq, iv_len, extra)| {
            let mut sealed = vec![0xc3; iv_len + 12];
            sealed.extend(extra);
            AuthipMessageRepr {
                header,
                body: AuthipBodyRepr::Sealed { crypto: CryptoSealedRepr { seq, iv: vec![0x17; iv_len] }, sealed },
            }
        });
    let cookie = (header(vec![exchange::MAIN_MODE, exchange::NOTIFY]), any::<[u8; 8]>(), any::<u8>()).prop_map(
        |(header, c, flags)| AuthipMessageRepr {
            header,
            body: AuthipBodyRepr::DosCookie(AuthipNotifyRepr { flags, ..AuthipNotifyRepr::dos_cookie(c) }),
        },
    );
    let fragment = (header(all), any::<u16>(), 1u8..=255, any::<bool>(), prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(header, id, number, last, data)| AuthipMessageRepr {
            header,
            body: AuthipBodyRepr::Fragment(FragmentRepr { id, number, last, data }),
        });
    prop_oneof![clear, sealed, cookie, fragment]
}

/// The fuzz target's oracle: whatever parses re-emits, and the emitted bytes parse to the same value.
fn oracle(data: &[u8]) {
    if let Ok(m) = AuthipMessage::parse(data) {
        let repr = AuthipMessageRepr::from_view(&m);
        let out = repr.to_vec().expect("a parsed message must be emittable");
        let back = AuthipMessage::parse(&out).expect("an emitted message must parse");
        assert_eq!(AuthipMessageRepr::from_view(&back), repr);
        for p in m.clear_payloads() {
            p.expect("a parsed message's chain is valid");
        }
    }
    if let Ok(inner) = InnerPlaintext::parse(data) {
        for p in AuthipPayloads::new(inner.first, inner.chain) {
            p.expect("a parsed plaintext's chain is valid");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// [MS-AIPS] §2.2.1, §2.2.3.2: every message the emitter writes parses back to itself, byte for byte.
    #[test]
    fn message_roundtrip(repr in message()) {
        let bytes = repr.to_vec().expect("valid repr");
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        let m = AuthipMessage::parse(&bytes).expect("parses");
        prop_assert_eq!(AuthipMessageRepr::from_view(&m), repr.clone());
        prop_assert_eq!(AuthipMessageRepr::from_view(&m).to_vec().unwrap(), bytes.clone());
        for p in m.clear_payloads() {
            prop_assert!(p.is_ok());
        }
    }

    /// §2.2.3.2.1: a chain sealed with default padding for 8- or 16-byte blocks comes back out unchanged.
    #[test]
    fn inner_plaintext_roundtrip((first, chain) in chain(), block in prop::sample::select(vec![8usize, 16])) {
        let p = InnerPlaintext::build(first, &chain, block).expect("valid chain");
        prop_assert_eq!(p.len() % block, 0);
        let inner = InnerPlaintext::parse(&p).expect("parses");
        prop_assert_eq!((inner.first, inner.chain), (first, &chain[..]));
    }

    /// Random bytes: never a panic, and the oracle holds for whatever parses.
    #[test]
    fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        oracle(&data);
    }

    /// Random edits of valid messages reach deeper than random bytes: never a panic, oracle holds.
    #[test]
    fn mutated_messages(repr in message(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut bytes = repr.to_vec().unwrap();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        oracle(&bytes);
        oracle(&bytes[..cut.index(bytes.len() + 1)]);
    }

    /// Each payload's emitter and parser agree (§2.2.3.1, §2.2.3.3, §2.2.3.4, §2.2.3.5).
    #[test]
    fn payload_roundtrips(status in any::<u32>(), flags in any::<u8>(), token in prop::collection::vec(any::<u8>(), 0..64),
                          name in "\\PC{1,40}", methods in prop::collection::vec(any::<u16>(), 1..=MAX_AUTH_METHODS),
                          seq in any::<u32>()) {
        let g = GssRepr { status, flags, token };
        prop_assert_eq!(GssRepr::from_view(&GssPayload::parse(&emit_vec(&g)).unwrap()), g);
        let id = GssIdRepr { name };
        let mut out = vec![0u8; id.buffer_len()];
        match id.emit(&mut out) {
            Ok(()) => prop_assert_eq!(GssIdRepr::from_view(&GssIdPayload::parse(&out).unwrap()).unwrap(), id),
            Err(_) => prop_assert!(id.name.contains('\0') || id.name.starts_with(BOM)),
        }
        let a = AuthRepr::offering(&methods);
        prop_assert_eq!(AuthRepr::parse(&emit_vec(&a)).unwrap(), a);
        let n = AuthipNotifyRepr::ack(notify_protocol::QM, seq);
        prop_assert_eq!(AuthipNotifyRepr::from_view(&AuthipNotify::parse(&emit_vec(&n)).unwrap()), n);
    }
}

/// A whole first exchange as §3.5 / §4.1 draw it (MM #1 and #2, DH-less Kerberos), built through the public API.
#[test]
fn main_mode_first_exchange_via_public_api() {
    let mut buf = [0u8; 512];
    let mut w = PayloadWriter::new(&mut buf);
    w.push(payload::SA, &[0u8; 12]).unwrap();
    w.push(payload::AUTH, &AuthRepr::offering(&[auth_method::KERBEROS])).unwrap();
    w.push(payload::NONCE, &[7u8; 16]).unwrap();
    w.push(payload::NONCE, &[8u8; 16]).unwrap(); // Nr(qm), piggy-backed in #2 (§3.3.5.1)
    w.push(payload::GSS_ID, &GssIdRepr { name: "host/win.example.com".into() }).unwrap();
    let (first, chain) = (w.first_payload(), w.written().to_vec());
    let repr = AuthipMessageRepr {
        header: AuthipHeader {
            initiator_cookie: [1; 8],
            responder_cookie: [2; 8],
            version: 0x10,
            exchange_type: exchange::MAIN_MODE,
            message_id: 0,
        },
        body: AuthipBodyRepr::Clear { crypto: CryptoClear { seq: 0, iv: Some([0; 8]) }, first, chain },
    };
    let bytes = repr.to_vec().unwrap();
    // Header next-payload CRYPTO, CRYPTO length 16 pointing at the SA.
    assert_eq!((bytes[16], &bytes[28..32]), (payload::CRYPTO, &[payload::SA, 0, 0, 16][..]));
    let m = AuthipMessage::parse(&bytes).unwrap();
    let kinds: Vec<u8> = m
        .clear_payloads()
        .map(|p| match p.unwrap() {
            hostsec_proto::authip::AuthipPayload::Ike(r) => r.kind,
            hostsec_proto::authip::AuthipPayload::Auth(_) => payload::AUTH,
            hostsec_proto::authip::AuthipPayload::GssId(id) => {
                assert_eq!(id.name().unwrap(), "host/win.example.com");
                payload::GSS_ID
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [payload::SA, payload::AUTH, payload::NONCE, payload::NONCE, payload::GSS_ID]);
}
