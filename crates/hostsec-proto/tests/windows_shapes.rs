//! Messages shaped as Windows sends them, fed to a hostsec endpoint in memory, and what hostsec answers.
//!
//! No capture of a Windows IKEv1 Main Mode and Quick Mode exists (shared/captures/INDEX.md, "What is missing", 1),
//! so the Windows side here is a small test peer built with the crate's own wire encoders and key schedule, from
//! what is recorded of Windows:
//!
//! - MM1: the vendor IDs and the transform layout of the one Windows ISAKMP capture, the AuthIP MM1 of Windows 7 /
//!   Server 2008 R2 (INDEX.md section A, `libreswan-weirdike-eastwest.pcap-ike.pcap`): "MS NT5 ISAKMPOAKLEY"
//!   version 8, RFC 3947, the fragmentation ID as its 16-byte prefix alone, "MS-Negotiation Discovery Capable",
//!   "Vid-Initial-Contact", in that order; attributes Encryption, Key-Length, Hash, Group, Life-Type, and
//!   Life-Duration 28800 as a 4-byte TLV. AuthIP carries no authentication method: where the PSK attribute goes is
//!   our choice (after the group; hostsec reads attributes in any order).
//! - Windows' defaults and limits (research §2.1): AES-128 then 3DES, SHA-1, DH group 2; one DH group per Main
//!   Mode; Quick Mode 60 min / 100,000 KB.
//! - The fourth Quick Mode message of a Windows responder (research §4.2; strongSwan's log of one: QM2 `[HASH SA
//!   No ID ID]`, then after QM3 a 76-byte `[HASH N(INIT_CONTACT)]` under the same message ID, "ignoring fourth
//!   Quick Mode message") and the commit bit it belongs to (RFC 2408 §3.1).
//!
//! Nothing else of Windows' IKEv1 is recorded (no Quick Mode transform layout, padding, DELETE), so those follow
//! the RFCs. Windows is the Main Mode initiator throughout (a Windows client with a connection security rule); Quick Modes
//! run in both directions under its SA. Addresses are from RFC 5737.

mod support;

use hostsec_proto::crypto::cipher::{cbc_decrypt, cbc_encrypt};
use hostsec_proto::crypto::dh::DhKeyPair;
use hostsec_proto::crypto::keys::{auth_hash, derive_phase1, exchange_iv, keymat, skeyid_psk, Phase1Keys};
use hostsec_proto::crypto::prf::{prf, Digest};
use hostsec_proto::crypto::{
    DhGroup, EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, MainModeSuite, Secret,
};
use hostsec_proto::ike::{nat_d_hash, ChildSaKeys, Endpoint, Event, Stats, Timing};
use hostsec_proto::wire::consts::{
    auth_method, dh_group, encap_mode, esp_transform, exchange, flags, ike_attr, ike_encr, ike_hash, ipsec_attr,
    ipsec_auth, life_type, notify, payload, protocol, vendor_id, DOI_IPSEC, ISAKMP_VERSION, KEY_IKE, SIT_IDENTITY_ONLY,
};
use hostsec_proto::wire::{
    AttributeRepr, DeleteRepr, Emit, Header, IdRepr, NotifyPayload, NotifyRepr, PayloadWriter, Payloads, ProposalRepr,
    SaRepr, TransformRepr,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------------------------
// What Windows puts on the wire.

/// The Windows host.
const WIN: &str = "192.0.2.10:500";
/// The hostsec host.
const HOST: &str = "203.0.113.5:500";
/// The pre-shared key of `support::rule_policy`, configured on the Windows side too.
const PSK: &[u8] = b"pair-test-psk-0123456789";

/// "MS NT5 ISAKMPOAKLEY" and its version word: 8 is Windows 7 / Server 2008 R2, 9 Windows 8 and later (research
/// §3.1, INDEX.md section A).
fn ms_nt5(version: u32) -> Vec<u8> {
    [&vendor_id::MS_NT5_ISAKMPOAKLEY_PREFIX[..], &version.to_be_bytes()].concat()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Windows' MM1 vendor IDs in the order of the capture; `ms_version` `None` leaves out "MS NT5 ISAKMPOAKLEY" (the
/// same peer, not recognisable as Windows).
fn windows_vids(ms_version: Option<u32>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = ms_version.map(ms_nt5).into_iter().collect();
    v.push(vendor_id::NAT_T_RFC3947.to_vec());
    v.push(vendor_id::FRAGMENTATION_PREFIX.to_vec());
    // MS-Negotiation Discovery Capable, Vid-Initial-Contact.
    v.push(unhex("fb1de3cdf341b7ea16b7e5be0855f120"));
    v.push(unhex("26244d38eddb61b3172a36e3d0cfb819"));
    v
}

/// "IKE CGA version 1", which Windows adds in IKEv1 (libreswan issue 26's log, research §3.1).
fn ike_cga_vid() -> Vec<u8> {
    unhex("e3a5966a76379fe707228231e5ce8652")
}

/// A Main Mode cipher as Windows names it: encryption algorithm and key length attribute.
type WinCipher = (u16, Option<u16>);
const AES128: WinCipher = (ike_encr::AES_CBC, Some(128));
const TRIPLE_DES: WinCipher = (ike_encr::TRIPLE_DES_CBC, None);

/// One PSK Main Mode transform in Windows' attribute order, 480 minutes.
fn mm_transform(number: u8, (encr, key_bits): WinCipher, hash: u16, group: u16) -> TransformRepr {
    let mut attributes = vec![AttributeRepr::Basic { kind: ike_attr::ENCRYPTION, value: encr }];
    if let Some(bits) = key_bits {
        attributes.push(AttributeRepr::Basic { kind: ike_attr::KEY_LENGTH, value: bits });
    }
    attributes.extend([
        AttributeRepr::Basic { kind: ike_attr::HASH, value: hash },
        AttributeRepr::Basic { kind: ike_attr::GROUP_DESCRIPTION, value: group },
        AttributeRepr::Basic { kind: ike_attr::AUTH_METHOD, value: auth_method::PSK },
        AttributeRepr::Basic { kind: ike_attr::LIFE_TYPE, value: life_type::SECONDS },
        AttributeRepr::Variable { kind: ike_attr::LIFE_DURATION, value: 28800u32.to_be_bytes().to_vec() },
    ]);
    TransformRepr { number, transform_id: KEY_IKE, attributes }
}

/// Windows' Main Mode offer: every transform of its crypto set carries the one DH group of the set (research
/// §2.1: "only one key-exchange (DH) algorithm" since Windows 7).
fn mm_offer(group: u16, suites: &[(WinCipher, u16)]) -> Vec<TransformRepr> {
    suites.iter().enumerate().map(|(i, &(c, h))| mm_transform(i as u8 + 1, c, h, group)).collect()
}

/// Windows' default Main Mode crypto set: AES-128 then 3DES, SHA-1, DH group 2 (research §2.1).
fn windows_default_offer() -> Vec<TransformRepr> {
    mm_offer(dh_group::MODP_1024, &[(AES128, ike_hash::SHA1), (TRIPLE_DES, ike_hash::SHA1)])
}

/// One ESP transport transform of a Windows Quick Mode offer, 60 minutes and 100,000 KB (research §2.1); the
/// attribute layout follows the Main Mode one (lifetimes as 4-byte TLVs), as none is recorded.
fn esp_transform_of(number: u8, id: u8, key_bits: Option<u16>, auth: u16) -> TransformRepr {
    let mut attributes = vec![
        AttributeRepr::Basic { kind: ipsec_attr::SA_LIFE_TYPE, value: life_type::SECONDS },
        AttributeRepr::Variable { kind: ipsec_attr::SA_LIFE_DURATION, value: 3600u32.to_be_bytes().to_vec() },
        AttributeRepr::Basic { kind: ipsec_attr::SA_LIFE_TYPE, value: life_type::KILOBYTES },
        AttributeRepr::Variable { kind: ipsec_attr::SA_LIFE_DURATION, value: 100_000u32.to_be_bytes().to_vec() },
        AttributeRepr::Basic { kind: ipsec_attr::ENCAPSULATION_MODE, value: encap_mode::TRANSPORT },
        AttributeRepr::Basic { kind: ipsec_attr::AUTH_ALGORITHM, value: auth },
    ];
    if let Some(bits) = key_bits {
        attributes.push(AttributeRepr::Basic { kind: ipsec_attr::KEY_LENGTH, value: bits });
    }
    TransformRepr { number, transform_id: id, attributes }
}

/// Windows' default data-encryption set: ESP with SHA-1, AES-128 then 3DES (research §2.1).
fn windows_esp_offer(spi: [u8; 4]) -> SaRepr {
    let transforms = vec![
        esp_transform_of(1, esp_transform::AES_CBC, Some(128), ipsec_auth::HMAC_SHA1),
        esp_transform_of(2, esp_transform::TRIPLE_DES, None, ipsec_auth::HMAC_SHA1),
    ];
    sa_payload(ProposalRepr { number: 1, protocol_id: protocol::ESP, spi: spi.to_vec(), transforms })
}

fn sa_payload(p: ProposalRepr) -> SaRepr {
    SaRepr { doi: DOI_IPSEC, situation: SIT_IDENTITY_ONLY, proposals: vec![p] }
}

// ---------------------------------------------------------------------------------------------------------------
// Framing, with the crate's encoders and cipher.

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn header(cky_i: [u8; 8], cky_r: [u8; 8], exchange_type: u8, flags: u8, message_id: u32) -> Header {
    Header {
        initiator_cookie: cky_i,
        responder_cookie: cky_r,
        next_payload: 0,
        version: ISAKMP_VERSION,
        exchange_type,
        flags,
        message_id,
        length: 0,
    }
}

fn bytes_of(e: &dyn Emit) -> Vec<u8> {
    let mut v = vec![0u8; e.buffer_len()];
    e.emit(&mut v).unwrap();
    v
}

/// How a leading HASH is computed over the payloads after it.
type Mac<'a> = &'a dyn Fn(&[u8]) -> Digest;

/// Writes `payloads` after room for the header; with `mac`, a HASH payload leads and covers the ones after it
/// (RFC 2409 §5.5, §5.7). Returns the buffer, the first payload's type and the payload bytes' length.
fn chain(payloads: &[(u8, &dyn Emit)], mac: Option<(usize, Mac<'_>)>) -> (Vec<u8>, u8, usize) {
    let mut buf = vec![0u8; 16 * 1024];
    let (first, len) = {
        let mut w = PayloadWriter::new(&mut buf[Header::LEN..]);
        if let Some((hash_len, _)) = mac {
            w.push(payload::HASH, &vec![0u8; hash_len]).unwrap();
        }
        for (kind, body) in payloads {
            w.push(*kind, *body).unwrap();
        }
        (w.first_payload(), w.len())
    };
    if let Some((hash_len, f)) = mac {
        let body = &mut buf[Header::LEN..Header::LEN + len];
        let digest = f(&body[4 + hash_len..]);
        body[4..4 + hash_len].copy_from_slice(digest.as_bytes());
    }
    (buf, first, len)
}

/// A cleartext message.
fn plain(mut hdr: Header, payloads: &[(u8, &dyn Emit)]) -> Vec<u8> {
    let (mut buf, first, len) = chain(payloads, None);
    hdr.next_payload = first;
    hdr.length = (Header::LEN + len) as u32;
    hdr.emit(&mut buf).unwrap();
    buf.truncate(Header::LEN + len);
    buf
}

/// An encrypted message under the phase-1 key Ka from `iv`, with the least zero padding to the block (none when
/// the payloads fill whole blocks: RFC 2409 appendix B leaves padding open); returns it with its last ciphertext
/// block, the next IV of its chain.
fn sealed(
    mut hdr: Header,
    keys: (&MainModeSuite, &Phase1Keys),
    iv: [u8; 16],
    mac: Option<Mac<'_>>,
    payloads: &[(u8, &dyn Emit)],
) -> (Vec<u8>, [u8; 16]) {
    let (suite, k) = keys;
    let (mut buf, first, len) = chain(payloads, mac.map(|f| (suite.hash.output_len(), f)));
    let total = len.div_ceil(IkeCipher::BLOCK_LEN) * IkeCipher::BLOCK_LEN;
    let last = cbc_encrypt(suite.cipher, k.ka.expose(), &iv, &mut buf[Header::LEN..Header::LEN + total]).unwrap();
    hdr.next_payload = first;
    hdr.flags |= flags::ENCRYPTION;
    hdr.length = (Header::LEN + total) as u32;
    hdr.emit(&mut buf).unwrap();
    buf.truncate(Header::LEN + total);
    (buf, last)
}

/// A message's payloads as (type, body), in wire order.
type Bodies = Vec<(u8, Vec<u8>)>;

fn payloads_of(first: u8, body: &[u8]) -> Bodies {
    Payloads::new(first, body).map(|p| p.map(|p| (p.kind, p.body.to_vec())).unwrap()).collect()
}

fn all(ps: &Bodies, kind: u8) -> Vec<Vec<u8>> {
    ps.iter().filter(|(k, _)| *k == kind).map(|(_, b)| b.clone()).collect()
}

fn one(ps: &Bodies, kind: u8) -> Vec<u8> {
    let mut v = all(ps, kind);
    assert_eq!(v.len(), 1, "one payload of type {kind} in {:?}", ps.iter().map(|p| p.0).collect::<Vec<_>>());
    v.pop().unwrap()
}

/// A cleartext message from hostsec: its header and payloads.
fn open_plain(msg: &[u8]) -> (Header, Bodies) {
    let (hdr, body) = Header::split(msg).unwrap();
    assert!(!hdr.is_encrypted(), "cleartext expected: {hdr:?}");
    (hdr, payloads_of(hdr.next_payload, body))
}

/// An encrypted message from hostsec, decrypted from `iv`: header, payloads, the bytes a leading HASH covers
/// (everything after it, padding excluded) and the last ciphertext block.
fn open(msg: &[u8], keys: (&MainModeSuite, &Phase1Keys), iv: [u8; 16]) -> (Header, Bodies, Vec<u8>, [u8; 16]) {
    let (suite, k) = keys;
    let (hdr, body) = Header::split(msg).unwrap();
    assert!(hdr.is_encrypted(), "encrypted expected: {hdr:?}");
    let mut plain = body.to_vec();
    let last = cbc_decrypt(suite.cipher, k.ka.expose(), &iv, &mut plain).unwrap();
    let ps = payloads_of(hdr.next_payload, &plain);
    let end: usize = ps.iter().map(|(_, b)| 4 + b.len()).sum();
    let covered = match ps.first() {
        Some((payload::HASH, h)) => plain[4 + h.len()..end].to_vec(),
        _ => Vec::new(),
    };
    (hdr, ps, covered, last)
}

fn random<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

fn attr(t: &TransformRepr, kind: u16) -> Option<u16> {
    t.attributes.iter().find(|a| a.kind() == kind).map(|a| match a {
        AttributeRepr::Basic { value, .. } => *value,
        AttributeRepr::Variable { .. } => panic!("attribute {kind} in variable form"),
    })
}

/// The single transform of an answering SA payload, with the proposal's SPI.
fn chosen(sa_body: &[u8]) -> (Vec<u8>, TransformRepr) {
    let sa = SaRepr::parse(sa_body).unwrap();
    let [p] = sa.proposals.as_slice() else { panic!("one proposal expected: {sa:?}") };
    let [t] = p.transforms.as_slice() else { panic!("one transform expected: {p:?}") };
    (p.spi.clone(), t.clone())
}

fn suite_of(t: &TransformRepr) -> MainModeSuite {
    MainModeSuite {
        cipher: IkeCipher::from_ike_attrs(attr(t, ike_attr::ENCRYPTION).unwrap(), attr(t, ike_attr::KEY_LENGTH))
            .unwrap(),
        hash: HashAlg::from_ike_id(attr(t, ike_attr::HASH).unwrap()).unwrap(),
        group: DhGroup::from_id(attr(t, ike_attr::GROUP_DESCRIPTION).unwrap()).unwrap(),
    }
}

fn esp_of(t: &TransformRepr) -> EspTransform {
    EspTransform {
        cipher: EspCipher::from_wire(t.transform_id, attr(t, ipsec_attr::KEY_LENGTH)).unwrap(),
        integrity: EspIntegrity::from_wire(attr(t, ipsec_attr::AUTH_ALGORITHM)).unwrap(),
    }
}

/// The type of a message's single notification.
fn notify_type(ps: &Bodies) -> u16 {
    NotifyPayload::parse(&one(ps, payload::NOTIFY)).unwrap().notify_type
}

fn is_fragment(msg: &[u8]) -> bool {
    Header::parse(msg).is_ok_and(|h| h.next_payload == payload::FRAGMENT)
}

// ---------------------------------------------------------------------------------------------------------------
// The Windows side of the SAs.

/// A Main Mode SA as the Windows side holds it once MM6 verified.
struct WinSa {
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    suite: MainModeSuite,
    keys: Phase1Keys,
    /// The last CBC block of phase 1 (of MM6), from which Quick Mode and Informational IVs derive.
    last_block: [u8; 16],
}

impl WinSa {
    fn crypt(&self) -> (&MainModeSuite, &Phase1Keys) {
        (&self.suite, &self.keys)
    }

    /// prf(SKEYID_a, parts...): the HASHes of Quick Mode and Informational messages.
    fn mac(&self, parts: &[&[u8]]) -> Digest {
        prf(self.suite.hash, self.keys.skeyid_a.expose(), parts)
    }

    /// An Informational message: HASH(1) = prf(SKEYID_a, M-ID | payloads), IV from the last phase-1 block and
    /// the M-ID (RFC 2409 §5.7, appendix B).
    fn informational(&self, mid: u32, payloads: &[(u8, &dyn Emit)]) -> Vec<u8> {
        let mac = |rest: &[u8]| self.mac(&[&mid.to_be_bytes(), rest]);
        let iv = exchange_iv(self.suite.hash, &self.last_block, mid);
        sealed(header(self.cky_i, self.cky_r, exchange::INFORMATIONAL, 0, mid), self.crypt(), iv, Some(&mac), payloads)
            .0
    }
}

/// A Quick Mode SA pair as the Windows side derived it.
struct WinChild {
    msg_id: u32,
    /// Windows' inbound SPI (hostsec sends on it).
    spi_in: [u8; 4],
    /// Windows' outbound SPI (hostsec's inbound).
    spi_out: [u8; 4],
    transform: EspTransform,
    /// KEYMAT of Windows' inbound and outbound SA.
    keymat_in: Vec<u8>,
    keymat_out: Vec<u8>,
    /// The exchange's CBC chain after its last message (QM3).
    iv: [u8; 16],
}

fn child_keymat(sa: &WinSa, g_qm: Option<&[u8]>, spi: &[u8; 4], ni: &[u8], nr: &[u8], len: usize) -> Vec<u8> {
    let d = sa.keys.skeyid_d.expose();
    keymat(sa.suite.hash, d, g_qm, protocol::ESP, spi, ni, nr, len).expose().to_vec()
}

/// Checks that hostsec's SA pair is the Windows side's, mirrored: SPIs crossed, hostsec's inbound keys are
/// Windows' outbound KEYMAT and the other way round.
fn assert_mirrors(k: &ChildSaKeys, w: &WinChild) {
    assert_eq!(k.info.spi_in, u32::from_be_bytes(w.spi_out));
    assert_eq!(k.info.spi_out, u32::from_be_bytes(w.spi_in));
    assert_eq!(k.info.transform, w.transform);
    let joined = |e: &Secret, i: &Secret| [e.expose(), i.expose()].concat();
    assert_eq!(joined(&k.encryption_key_in, &k.integrity_key_in), w.keymat_out);
    assert_eq!(joined(&k.encryption_key_out, &k.integrity_key_out), w.keymat_in);
}

/// hostsec's endpoint, the Windows peer's randomness, a virtual clock, and what hostsec reported.
struct Lab {
    ep: Endpoint,
    now: Instant,
    rng: ChaCha20Rng,
    events: Vec<Event>,
}

/// hostsec's answer to MM1, and what Windows keeps of MM1 to go on.
struct Mm1 {
    cky_i: [u8; 8],
    sai_b: Vec<u8>,
    answer: Vec<u8>,
}

impl Lab {
    /// hostsec with one rule towards the Windows host (`extra` lines added to it).
    fn new(extra: &str, seed: u64) -> Lab {
        let policy = support::rule_policy("192.0.2.10", extra);
        let ep = Endpoint::new(Arc::new(policy), Timing::default(), Box::new(ChaCha20Rng::seed_from_u64(seed)));
        Lab { ep, now: Instant::now(), rng: ChaCha20Rng::seed_from_u64(seed ^ 0x77), events: Vec::new() }
    }

    /// What hostsec sends (all to the Windows host) and reports.
    fn drain(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_transmit() {
            assert_eq!((t.local, t.remote), (addr(HOST), addr(WIN)));
            out.push(t.payload);
        }
        while let Some(e) = self.ep.poll_event() {
            self.events.push(e);
        }
        out
    }

    /// Hands hostsec a datagram from the Windows host; returns what hostsec sent back.
    fn send(&mut self, msg: &[u8]) -> Vec<Vec<u8>> {
        self.ep.handle(self.now, addr(HOST), addr(WIN), msg);
        self.drain()
    }

    /// As `send`, for a message that hostsec answers with exactly one datagram.
    fn exchange(&mut self, msg: &[u8]) -> Vec<u8> {
        let mut out = self.send(msg);
        assert_eq!(out.len(), 1, "one answer expected; events: {:#?}", self.events);
        out.pop().unwrap()
    }

    /// Lets `d` pass, running hostsec's timers; returns what it sent meanwhile.
    fn wait(&mut self, d: Duration) -> Vec<Vec<u8>> {
        let end = self.now + d;
        while let Some(t) = self.ep.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.ep.handle_timeout(self.now);
        }
        self.now = end;
        self.drain()
    }

    fn failures(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::NegotiationFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    fn quick_modes_up(&self) -> Vec<&ChildSaKeys> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::QuickModeUp(k) => Some(k),
                _ => None,
            })
            .collect()
    }

    /// Windows' MM1 with `transforms` and `vids`; hostsec's single answer.
    fn mm1(&mut self, transforms: Vec<TransformRepr>, vids: &[Vec<u8>]) -> Mm1 {
        let cky_i: [u8; 8] = random(&mut self.rng);
        let sa = sa_payload(ProposalRepr { number: 1, protocol_id: protocol::ISAKMP, spi: Vec::new(), transforms });
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::SA, &sa)];
        payloads.extend(vids.iter().map(|v| (payload::VENDOR_ID, v as &dyn Emit)));
        let msg = plain(header(cky_i, [0; 8], exchange::IDENTITY_PROTECTION, 0, 0), &payloads);
        let answer = self.exchange(&msg);
        Mm1 { cky_i, sai_b: bytes_of(&sa), answer }
    }

    /// MM3 to MM6 after hostsec's MM2 (`m.answer`), as Windows runs them with a pre-shared key: NAT-D in MM3 (both
    /// announced RFC 3947), IDii its address; checks hostsec's NAT-D (no NAT here) and HASH_R.
    fn complete_main_mode(&mut self, m: &Mm1) -> WinSa {
        let (h2, p2) = open_plain(&m.answer);
        assert_eq!(h2.exchange_type, exchange::IDENTITY_PROTECTION, "MM2 expected, got {h2:?}");
        let (cky_i, cky_r) = (m.cky_i, h2.responder_cookie);
        let (_, t) = chosen(&one(&p2, payload::SA));
        let suite = suite_of(&t);
        let dh = DhKeyPair::generate(suite.group, &mut self.rng).unwrap();
        let ni = random::<32>(&mut self.rng).to_vec();
        let nat_d = |a: &str| nat_d_hash(suite.hash, &cky_i, &cky_r, addr(a));
        let (d_peer, d_own) = (nat_d(HOST), nat_d(WIN));
        let mm3 = plain(
            header(cky_i, cky_r, exchange::IDENTITY_PROTECTION, 0, 0),
            &[
                (payload::KE, &dh.public_value()),
                (payload::NONCE, &ni),
                (payload::NAT_D, &d_peer),
                (payload::NAT_D, &d_own),
            ],
        );
        let (_, p4) = open_plain(&self.exchange(&mm3));
        let (g_xr, nr) = (one(&p4, payload::KE), one(&p4, payload::NONCE));
        assert_eq!(all(&p4, payload::NAT_D), vec![d_own.clone(), d_peer.clone()], "MM4's NAT-D: no NAT");
        let g_xy = dh.agree(&g_xr).unwrap();
        let skeyid = skeyid_psk(suite.hash, PSK, &ni, &nr);
        let keys =
            derive_phase1(suite.hash, suite.cipher, skeyid, g_xy.expose(), &cky_i, &cky_r, dh.public_value(), &g_xr);
        let id = IdRepr::from_ip(addr(WIN).ip());
        let (g_xi, sk) = (dh.public_value(), keys.skeyid.expose());
        let hash_i = auth_hash(suite.hash, sk, g_xi, &g_xr, &cky_i, &cky_r, &m.sai_b, &bytes_of(&id));
        let hash_i = hash_i.as_bytes().to_vec();
        let (mm5, iv) = sealed(
            header(cky_i, cky_r, exchange::IDENTITY_PROTECTION, 0, 0),
            (&suite, &keys),
            keys.initial_iv,
            None,
            &[(payload::ID, &id), (payload::HASH, &hash_i)],
        );
        let mm6 = self.exchange(&mm5);
        let (_, p6, _, last_block) = open(&mm6, (&suite, &keys), iv);
        let id_r = one(&p6, payload::ID);
        let hash_r = auth_hash(suite.hash, sk, &g_xr, g_xi, &cky_r, &cky_i, &m.sai_b, &id_r);
        assert_eq!(one(&p6, payload::HASH), hash_r.as_bytes(), "HASH_R of hostsec's MM6");
        WinSa { cky_i, cky_r, suite, keys, last_block }
    }

    fn main_mode(&mut self, transforms: Vec<TransformRepr>, vids: &[Vec<u8>]) -> WinSa {
        let m = self.mm1(transforms, vids);
        self.complete_main_mode(&m)
    }

    /// Windows starts a Quick Mode (its default ESP set, IDs of the two hosts), the commit bit in QM1 and QM3
    /// when `commit`; checks hostsec's QM2 (HASH(2), no commit bit of its own) and returns the pair it derived.
    fn quick_mode_from_windows(&mut self, sa: &WinSa, commit: bool) -> WinChild {
        let msg_id = u32::from_be_bytes(random(&mut self.rng)) | 1;
        let spi_in: [u8; 4] = random(&mut self.rng);
        let offer = windows_esp_offer(spi_in);
        let ni = random::<32>(&mut self.rng).to_vec();
        let (id_ci, id_cr) = (IdRepr::from_ip(addr(WIN).ip()), IdRepr::from_ip(addr(HOST).ip()));
        let flags = if commit { flags::COMMIT } else { 0 };
        let mid = msg_id.to_be_bytes();
        let mac1 = |rest: &[u8]| sa.mac(&[&mid, rest]);
        let (qm1, iv) = sealed(
            header(sa.cky_i, sa.cky_r, exchange::QUICK_MODE, flags, msg_id),
            sa.crypt(),
            exchange_iv(sa.suite.hash, &sa.last_block, msg_id),
            Some(&mac1),
            &[(payload::SA, &offer), (payload::NONCE, &ni), (payload::ID, &id_ci), (payload::ID, &id_cr)],
        );
        let qm2 = self.exchange(&qm1);
        let h2 = Header::parse(&qm2).unwrap();
        assert_eq!((h2.exchange_type, h2.message_id), (exchange::QUICK_MODE, msg_id), "{:#?}", self.failures());
        let (_, p2, covered, iv) = open(&qm2, sa.crypt(), iv);
        assert_eq!(h2.flags, flags::ENCRYPTION, "hostsec never sets the commit bit itself");
        assert_eq!(one(&p2, payload::HASH), sa.mac(&[&mid, &ni, &covered]).as_bytes(), "HASH(2)");
        let (spi_out, t) = chosen(&one(&p2, payload::SA));
        let spi_out: [u8; 4] = spi_out.try_into().unwrap();
        let nr = one(&p2, payload::NONCE);
        assert_eq!(all(&p2, payload::ID), vec![bytes_of(&id_ci), bytes_of(&id_cr)], "IDs echoed");
        let hash3 = sa.mac(&[&[0], &mid, &ni, &nr]).as_bytes().to_vec();
        let (qm3, iv) = sealed(
            header(sa.cky_i, sa.cky_r, exchange::QUICK_MODE, flags, msg_id),
            sa.crypt(),
            iv,
            None,
            &[(payload::HASH, &hash3)],
        );
        assert!(self.send(&qm3).is_empty(), "QM3 is not answered");
        let transform = esp_of(&t);
        let len = transform.keymat_len();
        WinChild {
            msg_id,
            spi_in,
            spi_out,
            transform,
            keymat_in: child_keymat(sa, None, &spi_in, &ni, &nr, len),
            keymat_out: child_keymat(sa, None, &spi_out, &ni, &nr, len),
            iv,
        }
    }

    /// Windows answers hostsec's QM1 as responder: picks AES-128/HMAC-SHA-1 (its primary default) from the
    /// offer, answers PFS in kind, sends QM2 (the commit bit set when `commit`), and checks hostsec's QM3.
    fn answer_quick_mode(&mut self, sa: &WinSa, qm1: &[u8], commit: bool) -> WinChild {
        let h1 = Header::parse(qm1).unwrap();
        assert_eq!(h1.exchange_type, exchange::QUICK_MODE, "QM1 expected, got {h1:?}");
        let (msg_id, mid) = (h1.message_id, h1.message_id.to_be_bytes());
        let (_, p1, covered, iv) = open(qm1, sa.crypt(), exchange_iv(sa.suite.hash, &sa.last_block, msg_id));
        assert_eq!(one(&p1, payload::HASH), sa.mac(&[&mid, &covered]).as_bytes(), "HASH(1)");
        let offer = SaRepr::parse(&one(&p1, payload::SA)).unwrap();
        let [p] = offer.proposals.as_slice() else { panic!("one ESP proposal expected: {offer:?}") };
        let aes128_sha1 = EspTransform { cipher: EspCipher::AesCbc128, integrity: EspIntegrity::HmacSha1_96 };
        let t = p.transforms.iter().find(|t| esp_of(t) == aes128_sha1).expect("hostsec offers aes-cbc-128/sha1");
        let spi_out: [u8; 4] = p.spi.clone().try_into().unwrap();
        let spi_in: [u8; 4] = random(&mut self.rng);
        let reply = sa_payload(ProposalRepr { spi: spi_in.to_vec(), transforms: vec![t.clone()], ..p.clone() });
        let ni = one(&p1, payload::NONCE);
        let nr = random::<32>(&mut self.rng).to_vec();
        let dh = all(&p1, payload::KE).first().map(|_| {
            let group = DhGroup::from_id(attr(t, ipsec_attr::GROUP_DESCRIPTION).unwrap()).unwrap();
            DhKeyPair::generate(group, &mut self.rng).unwrap()
        });
        let g_qm = dh.as_ref().map(|d| d.agree(&one(&p1, payload::KE)).unwrap());
        let ke = dh.as_ref().map(|d| d.public_value().to_vec());
        let ids = all(&p1, payload::ID);
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::SA, &reply), (payload::NONCE, &nr)];
        payloads.extend(ke.iter().map(|k| (payload::KE, k as &dyn Emit)));
        payloads.extend(ids.iter().map(|i| (payload::ID, i as &dyn Emit)));
        let flags = if commit { flags::COMMIT } else { 0 };
        let mac2 = |rest: &[u8]| sa.mac(&[&mid, &ni, rest]);
        let hdr = header(sa.cky_i, sa.cky_r, exchange::QUICK_MODE, flags, msg_id);
        let (qm2, iv) = sealed(hdr, sa.crypt(), iv, Some(&mac2), &payloads);
        let qm3 = self.exchange(&qm2);
        let (h3, p3, covered, iv) = open(&qm3, sa.crypt(), iv);
        assert_eq!((h3.message_id, h3.flags), (msg_id, flags::ENCRYPTION), "QM3, without a commit bit of hostsec's");
        assert_eq!(one(&p3, payload::HASH), sa.mac(&[&[0], &mid, &ni, &nr]).as_bytes(), "HASH(3)");
        assert!(covered.is_empty(), "QM3 is HASH(3) alone");
        let transform = esp_of(t);
        let (len, g) = (transform.keymat_len(), g_qm.as_ref().map(|s| s.expose()));
        WinChild {
            msg_id,
            spi_in,
            spi_out,
            transform,
            keymat_in: child_keymat(sa, g, &spi_in, &ni, &nr, len),
            keymat_out: child_keymat(sa, g, &spi_out, &ni, &nr, len),
            iv,
        }
    }

    /// hostsec starts a Quick Mode towards Windows (`initiate`), and the second passes for which it holds its own
    /// Quick Modes after a Main Mode it answered (endpoint/hold.rs); returns what it sent.
    fn hostsec_initiates(&mut self) -> Vec<Vec<u8>> {
        self.ep.initiate(self.now, "r", None, addr(HOST)).expect("initiate");
        let mut out = self.drain();
        out.extend(self.wait(Duration::from_secs(2)));
        out
    }
}

/// A notification about a Quick Mode SA pair (protocol ESP, Windows' inbound SPI).
fn esp_notify(kind: u16, child: &WinChild) -> NotifyRepr {
    NotifyRepr {
        doi: DOI_IPSEC,
        protocol_id: protocol::ESP,
        notify_type: kind,
        spi: child.spi_in.to_vec(),
        data: vec![],
    }
}

/// The fourth Quick Mode message of a Windows responder that set the commit bit: same exchange and message ID,
/// HASH and one notification, encrypted on the exchange's CBC chain (after QM3), which is how strongSwan could
/// decrypt it. Its HASH's formula, its flags and the notification's SPI are not recorded: the Informational HASH,
/// no flag but encryption, and Windows' inbound SPI are used here.
fn fourth_message(sa: &WinSa, child: &WinChild, kind: u16) -> Vec<u8> {
    let n = esp_notify(kind, child);
    let mid = child.msg_id.to_be_bytes();
    let mac = |rest: &[u8]| sa.mac(&[&mid, rest]);
    let hdr = header(sa.cky_i, sa.cky_r, exchange::QUICK_MODE, 0, child.msg_id);
    sealed(hdr, sa.crypt(), child.iv, Some(&mac), &[(payload::NOTIFY, &n)]).0
}

fn delete_esp(spi: [u8; 4]) -> DeleteRepr {
    DeleteRepr { doi: DOI_IPSEC, protocol_id: protocol::ESP, spi_size: 4, spis: vec![spi.to_vec()] }
}

fn delete_isakmp(sa: &WinSa) -> DeleteRepr {
    DeleteRepr {
        doi: DOI_IPSEC,
        protocol_id: protocol::ISAKMP,
        spi_size: 16,
        spis: vec![[sa.cky_i, sa.cky_r].concat()],
    }
}

/// The Main Mode offer of a Windows host reconfigured for hostsec's `standard` level (DH 14, AES-128, SHA-1
/// then SHA-256).
fn reconfigured_offer() -> Vec<TransformRepr> {
    mm_offer(dh_group::MODP_2048, &[(AES128, ike_hash::SHA1), (AES128, ike_hash::SHA2_256)])
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Vendor IDs.

/// Windows' MM1 vendor IDs: "MS NT5 ISAKMPOAKLEY" with its version (8 = Windows 7 / 2008 R2, 9 = Windows 8+),
/// MS-Negotiation Discovery Capable, Vid-Initial-Contact, the fragmentation ID without capability bits and RFC
/// 3947 (captures/INDEX.md section A; research §3.1, §4.2), "IKE CGA version 1" added. hostsec answers MM2 with only
/// the two extensions it shares, fragmentation (in its own 20-byte form, which Windows accepts either way: research
/// §4.2) and RFC 3947, ignores the others, and records the peer as Windows: Windows 7 and 8 accept IKE fragments
/// only when they expect certificates (research §4.2, strongSwan's `ike_sa.c`), so hostsec fragments only its
/// encrypted Main Mode messages to Windows. A Quick Mode message too large for the fragment size goes whole to
/// Windows, and in fragments to the same peer without the Microsoft ID.
#[test]
fn windows_vendor_ids_in_mm1_are_accepted_and_the_peer_is_treated_as_windows() {
    let ours_fragmentation = [&vendor_id::FRAGMENTATION_PREFIX[..], &[0x80, 0, 0, 0]].concat();
    for (version, seed) in [(Some(8), 1), (Some(9), 2), (None, 3)] {
        // PFS with DH 14 makes hostsec's QM1 (256 bytes of KE) larger than the 548 bytes an IPv4 fragment takes.
        let mut lab = Lab::new("pfs = true", seed);
        let mut vids = windows_vids(version);
        vids.push(ike_cga_vid());
        let m = lab.mm1(reconfigured_offer(), &vids);
        let (h2, p2) = open_plain(&m.answer);
        assert_eq!((h2.exchange_type, h2.flags, h2.message_id), (exchange::IDENTITY_PROTECTION, 0, 0));
        assert_eq!(h2.initiator_cookie, m.cky_i);
        assert_ne!(h2.responder_cookie, [0; 8]);
        assert_eq!(
            all(&p2, payload::VENDOR_ID),
            vec![ours_fragmentation.clone(), vendor_id::NAT_T_RFC3947.to_vec()],
            "MM2 answers fragmentation and RFC 3947 only (version {version:?})"
        );
        assert_eq!(chosen(&one(&p2, payload::SA)).1, reconfigured_offer()[0], "the first transform, as sent");
        let sa = lab.complete_main_mode(&m);
        assert_eq!(lab.ep.main_mode_sas(lab.now)[0].state, "established");
        assert!(lab.failures().is_empty(), "{:#?}", lab.failures());

        // 548 bytes: the default fragment size of 576 for IPv4, less the IP and UDP headers.
        let qm1 = lab.hostsec_initiates();
        if version.is_some() {
            assert_eq!(qm1.len(), 1, "QM1 goes whole to Windows");
            assert!(!is_fragment(&qm1[0]) && qm1[0].len() > 548, "{} bytes", qm1[0].len());
            // And it is a Quick Mode Windows can read.
            let child = lab.answer_quick_mode(&sa, &qm1[0], false);
            assert_mirrors(lab.quick_modes_up()[0], &child);
        } else {
            assert!(qm1.len() >= 2 && qm1.iter().all(|f| is_fragment(f) && f.len() <= 548), "{} datagrams", qm1.len());
            assert_eq!(lab.ep.stats().fragmented_sent, 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. One DH group per Main Mode proposal.

/// Windows puts one DH group in its Main Mode crypto set, so every transform of its MM1 carries the same group
/// (research §2.1, "only one key-exchange (DH) algorithm in the MM set"), here with AES-128 and SHA-1 then SHA-256.
/// hostsec takes the first transform its rule's encryption group allows (SPEC §3: `standard` allows DH 14 and
/// SHA-1, `high` only ECP groups and SHA-2) and completes Main Mode with it; a group below the rule's level is
/// refused whatever the transforms, and the reason names it.
#[test]
fn windows_single_dh_group_proposals_are_accepted_when_the_encryption_group_allows_them() {
    let sha1_then_sha256 = [(AES128, ike_hash::SHA1), (AES128, ike_hash::SHA2_256)];
    let cases = [
        ("", dh_group::MODP_2048, 1, HashAlg::Sha1),
        ("", dh_group::ECP_256, 1, HashAlg::Sha1),
        ("minimum_strength = \"high\"", dh_group::ECP_256, 2, HashAlg::Sha256),
        ("minimum_strength = \"high\"", dh_group::ECP_384, 2, HashAlg::Sha256),
    ];
    for (i, (extra, group, number, hash)) in cases.into_iter().enumerate() {
        let mut lab = Lab::new(extra, 10 + i as u64);
        let offer = mm_offer(group, &sha1_then_sha256);
        let m = lab.mm1(offer.clone(), &windows_vids(Some(9)));
        let (_, p2) = open_plain(&m.answer);
        assert_eq!(chosen(&one(&p2, payload::SA)).1, offer[number - 1], "case {i}: transform {number} chosen");
        let sa = lab.complete_main_mode(&m);
        assert_eq!(
            sa.suite,
            MainModeSuite { cipher: IkeCipher::AesCbc128, hash, group: DhGroup::from_id(group).unwrap() }
        );
        let info = &lab.ep.main_mode_sas(lab.now)[0];
        assert_eq!((info.state, info.dh_group, info.hash), ("established", Some(group), Some(hash)), "case {i}");
        assert_eq!(lab.events.iter().filter(|e| matches!(e, Event::MainModeUp { .. })).count(), 1, "case {i}");
        // The SA carries Windows' default Quick Mode too where the level allows it (`high` needs HMAC-SHA-256).
        if extra.is_empty() {
            let child = lab.quick_mode_from_windows(&sa, false);
            assert_mirrors(lab.quick_modes_up()[0], &child);
        }
    }

    // DH 14 under a `high` rule: refused, though SHA-256 and AES-128 would do.
    let mut lab = Lab::new("minimum_strength = \"high\"", 20);
    let m = lab.mm1(mm_offer(dh_group::MODP_2048, &sha1_then_sha256), &windows_vids(Some(9)));
    let (h, p) = open_plain(&m.answer);
    assert_eq!(h.exchange_type, exchange::INFORMATIONAL);
    assert_eq!(notify_type(&p), notify::NO_PROPOSAL_CHOSEN);
    let reason = lab.failures().pop().expect("a refusal event");
    assert!(
        reason.contains("transform 2 (aes-cbc/128bit/sha256/modp2048/psk): DH modp2048 (group 14) is below level high"),
        "{reason}"
    );
    assert!(!reason.contains("Windows"), "no DH 2 here, so no advice about Windows' default: {reason}");
    assert!(lab.ep.main_mode_sas(lab.now).is_empty());
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Windows' default proposals.

/// A Windows host left at its defaults proposes AES-128 and 3DES with SHA-1 and DH group 2 (research §2.1, §4.2;
/// libreswan issue 2496), which no encryption group accepts (SPEC §3: never DH 2 nor 3DES). hostsec answers
/// NO-PROPOSAL-CHOSEN, keeps no state, and its reason says what to change in Windows' Main Mode settings.
#[test]
fn windows_default_proposals_are_refused_with_what_to_change_on_windows() {
    for (version, seed) in [(8, 30), (9, 31)] {
        let mut lab = Lab::new("", seed);
        let m = lab.mm1(windows_default_offer(), &windows_vids(Some(version)));
        let (h, p) = open_plain(&m.answer);
        assert_eq!((h.exchange_type, h.initiator_cookie, h.flags), (exchange::INFORMATIONAL, m.cky_i, 0));
        assert_eq!(notify_type(&p), notify::NO_PROPOSAL_CHOSEN);
        let reasons = lab.failures();
        let [reason] = reasons.as_slice() else { panic!("one refusal event: {reasons:#?}") };
        for part in [
            "transform 1 (aes-cbc/128bit/sha1/dh2/psk): DH group 2 is never accepted (too weak)",
            "transform 2 (3des-cbc/sha1/dh2/psk): 3DES-CBC is never accepted",
            "A Windows peer proposes DH group 2 by default: set its Main Mode key exchange to DH group 14, ECDH \
             P-256 or ECDH P-384, with SHA-256 or better and AES",
        ] {
            assert!(reason.contains(part), "{part:?} missing from: {reason}");
        }
        assert_eq!(lab.ep.stats().refused_no_proposal, 1);
        assert!(lab.ep.main_mode_sas(lab.now).is_empty());
        assert_eq!(lab.ep.occupancy().half_open, 0, "a refused MM1 leaves no half-open SA");
    }
}

/// Windows' default data protection (ESP with SHA-1, AES-128 then 3DES; research §2.1) passes at `standard` but
/// not under a `high` rule: hostsec answers NO-PROPOSAL-CHOSEN, and its reason names what to set on Windows' side.
#[test]
fn windows_default_quick_mode_proposals_under_a_high_rule_are_refused_with_what_to_change_on_windows() {
    let mut lab = Lab::new("minimum_strength = \"high\"", 33);
    let sa = lab.main_mode(mm_offer(dh_group::ECP_256, &[(AES128, ike_hash::SHA2_256)]), &windows_vids(Some(9)));
    let msg_id = 0x5151_0001u32;
    let mid = msg_id.to_be_bytes();
    let offer = windows_esp_offer(random(&mut lab.rng));
    let ni = random::<32>(&mut lab.rng).to_vec();
    let (id_ci, id_cr) = (IdRepr::from_ip(addr(WIN).ip()), IdRepr::from_ip(addr(HOST).ip()));
    let mac1 = |rest: &[u8]| sa.mac(&[&mid, rest]);
    let (qm1, _) = sealed(
        header(sa.cky_i, sa.cky_r, exchange::QUICK_MODE, 0, msg_id),
        sa.crypt(),
        exchange_iv(sa.suite.hash, &sa.last_block, msg_id),
        Some(&mac1),
        &[(payload::SA, &offer), (payload::NONCE, &ni), (payload::ID, &id_ci), (payload::ID, &id_cr)],
    );
    let answer = lab.exchange(&qm1);
    assert_eq!(Header::parse(&answer).unwrap().exchange_type, exchange::INFORMATIONAL, "refused, not answered");
    assert!(lab.quick_modes_up().is_empty());
    let reasons = lab.failures();
    let [reason] = reasons.as_slice() else { panic!("one refusal event: {reasons:#?}") };
    for part in [
        "no Quick Mode proposal of the peer meets rule",
        "below level high",
        "DES and 3DES are never accepted",
        "A Windows peer proposes ESP with SHA-1 and AES-128 or 3DES by default: set its data protection (Quick \
         Mode) to AES-GCM 128/192/256, or AES-CBC with SHA-256",
    ] {
        assert!(reason.contains(part), "{part:?} missing from: {reason}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 4. The commit bit and the fourth Quick Mode message.

/// A Windows responder may set the commit bit (RFC 2408 §3.1) in QM2 and, after QM3, sends a fourth message
/// under the same message ID, encrypted on the exchange's CBC chain; strongSwan logged it as `[HASH
/// N(INIT_CONTACT)]` and ignores it (research §4.2, task_manager_v1.c "ignoring fourth Quick Mode message"). RFC
/// 2408 §3.1 has the side that set the bit send CONNECTED; both notifications are tried in Windows' form. hostsec
/// does not implement the commit bit, as libreswan does not (pluto's ikev1.c: the flag is neither encrypted nor
/// authenticated, so a man in the middle could set it and stall every SA): the pair comes up on QM2 and QM3 goes
/// at once. The fourth message is dropped and counted like any message of a finished Quick Mode: no answer, no
/// failure, no second pair, and its INITIAL-CONTACT does not tear down the SAs just made.
#[test]
fn windows_responder_commit_bit_and_fourth_quick_mode_message_change_nothing() {
    for (kind, seed) in [(notify::CONNECTED, 40), (notify::INITIAL_CONTACT, 41)] {
        let mut lab = Lab::new("", seed);
        let sa = lab.main_mode(reconfigured_offer(), &windows_vids(Some(9)));
        let qm1 = lab.hostsec_initiates();
        let [qm1] = qm1.as_slice() else { panic!("one QM1: {qm1:?}") };
        let child = lab.answer_quick_mode(&sa, qm1, true);
        let up = lab.quick_modes_up();
        let [k] = up.as_slice() else { panic!("one pair: {:#?}", lab.events) };
        assert_mirrors(k, &child);
        assert!(lab.events.iter().any(|e| matches!(e, Event::RequestDone { .. })), "the request is done at QM2");

        let (events, pairs, stats) = (lab.events.len(), lab.ep.quick_mode_sas(lab.now), lab.ep.stats().clone());
        let fourth = fourth_message(&sa, &child, kind);
        assert!(lab.send(&fourth).is_empty(), "the fourth message is not answered");
        let after = lab.ep.stats().clone();
        assert_eq!(after.dropped_unexpected, stats.dropped_unexpected + 1, "counted as a message of a finished QM");
        assert_eq!(
            Stats { dropped_unexpected: stats.dropped_unexpected, ..after },
            Stats { received: stats.received + 1, ..stats }
        );
        // Nothing happens later either: no retransmission, no failure, the pair and the Main Mode SA stay.
        assert!(lab.wait(Duration::from_secs(120)).is_empty());
        assert_eq!(lab.events.len(), events, "no event: {:#?}", &lab.events[events..]);
        assert_eq!(
            lab.ep.quick_mode_sas(lab.now).iter().map(|q| (q.spi_in, q.spi_out)).collect::<Vec<_>>(),
            pairs.iter().map(|q| (q.spi_in, q.spi_out)).collect::<Vec<_>>()
        );
        assert_eq!(lab.ep.main_mode_sas(lab.now).len(), 1);
    }
}

/// A Windows-like initiator that sets the commit bit in QM1 and QM3 (RFC 2408 §3.1: "can be set (at any time) by
/// either party") and then announces CONNECTED the way RFC 2408 §3.1 describes, in an Informational exchange
/// with the Quick Mode's message ID. hostsec answers QM2 without a commit bit of its own, installs the pair at QM3
/// (the inbound SA already at QM2) without waiting for CONNECTED, and reads the CONNECTED notification without
/// acting on it.
#[test]
fn windows_initiator_commit_bit_is_ignored_and_the_pair_comes_up_at_qm3() {
    let mut lab = Lab::new("", 50);
    let sa = lab.main_mode(reconfigured_offer(), &windows_vids(Some(8)));
    let child = lab.quick_mode_from_windows(&sa, true);
    let inbound = lab.events.iter().position(|e| matches!(e, Event::QuickModeInbound(_)));
    let up = lab.events.iter().position(|e| matches!(e, Event::QuickModeUp(_)));
    assert!(matches!((inbound, up), (Some(i), Some(u)) if i < u), "{:#?}", lab.events);
    assert_mirrors(lab.quick_modes_up()[0], &child);
    assert_eq!(lab.ep.quick_mode_sas(lab.now).len(), 1);

    let (events, stats) = (lab.events.len(), lab.ep.stats().clone());
    let connected = sa.informational(child.msg_id, &[(payload::NOTIFY, &esp_notify(notify::CONNECTED, &child))]);
    assert!(lab.send(&connected).is_empty(), "CONNECTED is not answered");
    assert_eq!(lab.ep.stats(), &Stats { received: stats.received + 1, ..stats }, "read, not dropped");
    assert!(lab.wait(Duration::from_secs(120)).is_empty());
    assert_eq!(lab.events.len(), events, "no event: {:#?}", &lab.events[events..]);
    assert_eq!(lab.ep.quick_mode_sas(lab.now).len(), 1);
    assert_eq!(lab.ep.main_mode_sas(lab.now).len(), 1);
}

// ---------------------------------------------------------------------------------------------------------------
// 5. DELETE.

/// Windows deletes a Quick Mode SA pair with an Informational DELETE for ESP carrying one SPI, its inbound one
/// (= hostsec's outbound), and its Main Mode SA with an ISAKMP DELETE whose SPI is the two cookies (RFC 2408
/// §3.15, RFC 2409 §5.7; no Windows DELETE is recorded, captures/INDEX.md "What is missing" 8). hostsec removes
/// each with an event and answers nothing; the pair's DELETE leaves the Main Mode SA. A DELETE naming an SPI
/// hostsec does not send on (one that never existed, hostsec's own inbound SPI, a pair already gone) is ignored
/// and counted; an Informational under the deleted Main Mode SA is dropped as unknown.
#[test]
fn windows_deletes_remove_the_pair_and_the_main_mode_sa_and_unknown_spis_are_counted() {
    let mut lab = Lab::new("", 60);
    let sa = lab.main_mode(reconfigured_offer(), &windows_vids(Some(9)));
    let child = lab.quick_mode_from_windows(&sa, false);
    assert_eq!(lab.ep.quick_mode_sas(lab.now).len(), 1);
    let mut mid = 0x1000_0000;
    let mut inform = |lab: &mut Lab, d: &DeleteRepr| {
        mid += 1;
        lab.send(&sa.informational(mid, &[(payload::DELETE, d)]))
    };

    // Unknown SPIs: one that nothing has, and hostsec's own inbound SPI (not the one Windows must name).
    let events = lab.events.len();
    for spi in [[0xde, 0xad, 0xbe, 0xef], child.spi_out] {
        assert!(inform(&mut lab, &delete_esp(spi)).is_empty());
    }
    assert_eq!(lab.ep.stats().ignored_deletes, 2);
    assert_eq!(lab.events.len(), events, "no event: {:#?}", &lab.events[events..]);
    assert_eq!(lab.ep.quick_mode_sas(lab.now).len(), 1);

    // The pair, by Windows' inbound SPI.
    assert!(inform(&mut lab, &delete_esp(child.spi_in)).is_empty(), "a DELETE is not answered");
    let down: Vec<_> = lab.events[events..]
        .iter()
        .filter_map(|e| match e {
            Event::QuickModeDown { info, reason } => Some((info.spi_out, reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(down, vec![(u32::from_be_bytes(child.spi_in), "the peer deleted it")]);
    assert!(lab.ep.quick_mode_sas(lab.now).is_empty());
    assert_eq!(lab.ep.main_mode_sas(lab.now).len(), 1, "the Main Mode SA stays");

    // The pair's DELETE again, as when both sides end it at once: nothing left to remove.
    assert!(inform(&mut lab, &delete_esp(child.spi_in)).is_empty());
    assert_eq!(lab.ep.stats().ignored_deletes, 3);

    // The Main Mode SA.
    assert!(inform(&mut lab, &delete_isakmp(&sa)).is_empty());
    let mm_down = lab
        .events
        .iter()
        .filter(|e| matches!(e, Event::MainModeDown { reason, .. } if reason == "the peer deleted it"));
    assert_eq!(mm_down.count(), 1);
    assert!(lab.ep.main_mode_sas(lab.now).is_empty());
    assert!(lab.failures().is_empty(), "{:#?}", lab.failures());

    // Under the deleted SA nothing is read any more.
    let unknown = lab.ep.stats().dropped_unknown_sa;
    assert!(inform(&mut lab, &delete_isakmp(&sa)).is_empty());
    assert_eq!(lab.ep.stats().dropped_unknown_sa, unknown + 1);
    assert_eq!(lab.ep.stats().ignored_deletes, 3);
    assert!(lab.wait(Duration::from_secs(60)).is_empty());
}

// ---------------------------------------------------------------------------------------------------------------
// AuthIP beside IKEv1 ([MS-AIPS] §3.2.4, §3.3.5.2): a Windows initiator sends AuthIP #1 and, beside it, IKEv1 MM1
// with "MS-MamieExists". No AuthIP capture exists (docs/authip.md), so the AuthIP side is built from the [MS-AIPS]
// §2.2 layouts with the crate's codec, and the Windows peer's keys from the crate's key schedule: this checks that
// hostsec answers what the spec requires, not that it matches Windows' bytes.

mod authip_beside_ikev1 {
    use super::*;
    use hostsec_proto::authip::consts::{auth_method as aip_auth, exchange as aip_x, gss_flags, payload as aip_p};
    use hostsec_proto::authip::{
        self, AuthRepr, AuthipBody, AuthipBodyRepr, AuthipHeader, AuthipKdf, AuthipMessage, AuthipMessageRepr,
        CryptoClear, GssRepr, MainModeInputs, QuickModeInputs, SealKeys,
    };
    use hostsec_proto::policy::Keying;

    /// "MS-MamieExists": an AuthIP #1 went out beside this IKEv1 MM1 ([MS-AIPS] note <4>).
    const MAMIE: &str = "214ca4faffa7f32d6748e5303395ae83";

    /// The Windows peer's AuthIP #1 (Anonymous, DH group 19, AES-128/SHA-256) and what it keeps.
    struct WinAuthip {
        cky_i: [u8; 8],
        ni: Vec<u8>,
        dh: DhKeyPair,
        chain: Vec<u8>,
        msg: Vec<u8>,
    }

    fn authip_mm1(rng: &mut ChaCha20Rng) -> WinAuthip {
        let cky_i = random::<8>(rng);
        let ni = random::<32>(rng).to_vec();
        let dh = DhKeyPair::generate(DhGroup::Ecp256, rng).unwrap();
        // §3.2.4: the SA is an IKE SA payload; no authentication-method attribute (the Auth payload has it).
        let t = TransformRepr {
            number: 1,
            transform_id: KEY_IKE,
            attributes: vec![
                AttributeRepr::Basic { kind: ike_attr::ENCRYPTION, value: ike_encr::AES_CBC },
                AttributeRepr::Basic { kind: ike_attr::KEY_LENGTH, value: 128 },
                AttributeRepr::Basic { kind: ike_attr::HASH, value: ike_hash::SHA2_256 },
                AttributeRepr::Basic { kind: ike_attr::GROUP_DESCRIPTION, value: dh_group::ECP_256 },
                AttributeRepr::Basic { kind: ike_attr::LIFE_TYPE, value: life_type::SECONDS },
                AttributeRepr::Variable { kind: ike_attr::LIFE_DURATION, value: 28800u32.to_be_bytes().to_vec() },
            ],
        };
        let sa =
            sa_payload(ProposalRepr { number: 1, protocol_id: protocol::ISAKMP, spi: vec![], transforms: vec![t] });
        let auth = AuthRepr::offering(&[aip_auth::ANONYMOUS]);
        let gss = GssRepr { status: 0, flags: gss_flags::NEW_GSS_EXCHANGE, token: vec![] };
        let mut vids = vec![ms_nt5(9)];
        vids.push(unhex("01528bbbc00696121849ab9a1c5b2a5100000001")); // KEY_MODS: AuthIP
        vids.push(unhex("7bb93867d76c8d80df0f40fae8fc3b1900000004")); // AUTHIP_INIT_KE_DH_GROUP: ECP-256
        let ke = dh.public_value().to_vec();
        let mut list: Vec<(u8, &dyn Emit)> = vec![(aip_p::SA, &sa), (aip_p::AUTH, &auth), (aip_p::NONCE, &ni)];
        list.extend(vids.iter().map(|v| (aip_p::VENDOR_ID, v as &dyn Emit)));
        list.extend([(aip_p::GSSAPI, &gss as &dyn Emit), (aip_p::KE, &ke)]);
        let (buf, first, len) = chain(&list, None);
        let chain_bytes = buf[Header::LEN..Header::LEN + len].to_vec();
        let msg = AuthipMessageRepr {
            header: AuthipHeader {
                initiator_cookie: cky_i,
                responder_cookie: [0; 8],
                version: ISAKMP_VERSION,
                exchange_type: aip_x::MAIN_MODE,
                message_id: 0,
            },
            body: AuthipBodyRepr::Clear { crypto: CryptoClear { seq: 0, iv: None }, first, chain: chain_bytes.clone() },
        }
        .to_vec()
        .unwrap();
        WinAuthip { cky_i, ni, dh, chain: chain_bytes, msg }
    }

    /// The IKEv1 MM1 Windows sends beside it: its default-shaped offer (AES-128/SHA-1 with group 14, PSK) and its
    /// vendor IDs with "MS-MamieExists" (or without, as a non-Windows peer sends).
    fn ikev1_mm1(rng: &mut ChaCha20Rng, mamie: bool) -> Vec<u8> {
        let transforms = mm_offer(dh_group::MODP_2048, &[(AES128, ike_hash::SHA1)]);
        let sa = sa_payload(ProposalRepr { number: 1, protocol_id: protocol::ISAKMP, spi: vec![], transforms });
        let mut vids = windows_vids(Some(9));
        if mamie {
            vids.insert(0, unhex(MAMIE));
        }
        let mut list: Vec<(u8, &dyn Emit)> = vec![(payload::SA, &sa)];
        list.extend(vids.iter().map(|v| (payload::VENDOR_ID, v as &dyn Emit)));
        plain(header(random::<8>(rng), [0; 8], exchange::IDENTITY_PROTECTION, 0, 0), &list)
    }

    fn hostsec(keying_lines: &str) -> Endpoint {
        let policy = support::rule_policy("192.0.2.10", keying_lines);
        Endpoint::new(Arc::new(policy), Timing::default(), Box::new(ChaCha20Rng::seed_from_u64(77)))
    }

    fn answers(ep: &mut Endpoint) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| ep.poll_transmit()).map(|t| t.payload).collect()
    }

    /// `keying = "ike"`: the AuthIP #1 is ignored (and counted), the IKEv1 MM1 with MS-MamieExists answered with
    /// MM2, in either arrival order.
    #[test]
    fn ike_rule_answers_ikev1_and_ignores_authip() {
        for authip_first in [true, false] {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let mut ep = hostsec("");
            let (a, i) = (authip_mm1(&mut rng), ikev1_mm1(&mut rng, true));
            let now = Instant::now();
            let order = if authip_first { [&a.msg, &i] } else { [&i, &a.msg] };
            for m in order {
                ep.handle(now, addr(HOST), addr(WIN), m);
            }
            let out = answers(&mut ep);
            assert_eq!(out.len(), 1, "one answer");
            assert_eq!(Header::parse(&out[0]).unwrap().exchange_type, exchange::IDENTITY_PROTECTION);
            assert_eq!(ep.stats().refused_exchange, 1);
            assert_eq!(ep.stats().ikev1_discarded_for_authip, 0);
        }
    }

    /// `keying = "authip"` (Anonymous): the IKEv1 MM1 with MS-MamieExists is discarded (§3.3.5.2) and AuthIP #2
    /// answers #1, in either arrival order; the same IKEv1 MM1 without MS-MamieExists would be answered.
    #[test]
    fn authip_rule_answers_authip_and_discards_the_ikev1_twin() {
        for authip_first in [true, false] {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let mut ep = hostsec("keying = \"authip\"\nauthentication = \"anonymous\"");
            let (a, i) = (authip_mm1(&mut rng), ikev1_mm1(&mut rng, true));
            let now = Instant::now();
            let order = if authip_first { [&a.msg, &i] } else { [&i, &a.msg] };
            for m in order {
                ep.handle(now, addr(HOST), addr(WIN), m);
            }
            let out = answers(&mut ep);
            assert_eq!(out.len(), 1, "one answer");
            assert_eq!(Header::parse(&out[0]).unwrap().exchange_type, aip_x::MAIN_MODE);
            assert_eq!(ep.stats().ikev1_discarded_for_authip, 1);
        }
        // plain IKEv1 from the same peer: answered (a PSK rule's IKEv1 form exists; anonymous has none, so the rule
        // here authenticates with a certificate-less PSK under keying = "authip", which runs IKEv1)
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut ep = hostsec("keying = \"authip\"");
        ep.handle(Instant::now(), addr(HOST), addr(WIN), &ikev1_mm1(&mut rng, false));
        let out = answers(&mut ep);
        assert_eq!(out.len(), 1);
        assert_eq!(Header::parse(&out[0]).unwrap().exchange_type, exchange::IDENTITY_PROTECTION);
    }

    /// The whole Anonymous Main Mode and fast Quick Mode against hostsec, Windows' side computed from the spec:
    /// #2 carries what §3.3.5.1 lists (one transform, the method, Nr and Nr(qm), the responder's completed GSS-API,
    /// KE); #5 with HASH(Auth1) gets #6 with a verifying HASH(Auth2); the SA pair hostsec installs has the keys the
    /// A-KDF gives for each SPI.
    #[test]
    fn anonymous_main_mode_and_quick_mode_from_the_spec() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut ep = hostsec("keying = \"authip\"\nauthentication = \"anonymous\"");
        let now = Instant::now();
        let w = authip_mm1(&mut rng);
        ep.handle(now, addr(HOST), addr(WIN), &w.msg);
        ep.handle(now, addr(HOST), addr(WIN), &ikev1_mm1(&mut rng, true));
        let out = answers(&mut ep);
        let m2 = AuthipMessage::parse(&out[0]).unwrap();
        let AuthipBody::Clear { first, chain: chain2, .. } = m2.body else { panic!("#2 is clear") };
        let ps = payloads_of(first, chain2);
        assert_eq!(all(&ps, aip_p::NONCE).len(), 2, "Nr and Nr(qm)");
        let (nr, nr_qm) = (all(&ps, aip_p::NONCE)[0].clone(), all(&ps, aip_p::NONCE)[1].clone());
        assert_eq!(
            AuthRepr::parse(&one(&ps, aip_p::AUTH)).unwrap().methods().collect::<Vec<_>>(),
            vec![aip_auth::ANONYMOUS]
        );
        let gss = one(&ps, aip_p::GSSAPI);
        assert_eq!(gss, vec![0, 0, 0, 0, gss_flags::RESPONDER_AUTH_COMPLETE], "empty token, responder complete");
        let (_, t) = chosen(&one(&ps, aip_p::SA));
        assert_eq!(attr(&t, ike_attr::GROUP_DESCRIPTION), Some(dh_group::ECP_256));
        let g_xy = w.dh.agree(&one(&ps, aip_p::KE)).unwrap();
        let cky_r = m2.header.responder_cookie;
        // Windows' keys (empty GSS-APIsecret for Anonymous, docs/authip.md K6)
        let kdf = AuthipKdf::new(HashAlg::Sha256, IkeCipher::AesCbc128, w.cky_i, cky_r);
        let inputs = MainModeInputs { g_xy: Some(g_xy.expose()), ni: &w.ni, nr: &nr, gss_secret: &[] };
        let keys = authip::derive_main_mode(&kdf, &inputs).unwrap();
        let seal_keys = SealKeys::new(
            IkeCipher::AesCbc128,
            HashAlg::Sha256,
            keys.encryption_key.clone(),
            keys.skeyid_a.clone(),
            None,
        )
        .unwrap();
        let transcript: [&[u8]; 2] = [&w.chain, chain2];
        let h1 = authip::auth1(HashAlg::Sha256, &keys.skeyid, &transcript).unwrap();
        // #5: HASH(Auth1) IDi IDr SA Ni(qm), in exchange 0xF3
        let spi_w = random::<4>(&mut rng);
        let ni_qm = random::<32>(&mut rng).to_vec();
        let esp = windows_esp_offer(spi_w);
        let (idi, idr) = (IdRepr::from_ip(addr(WIN).ip()), IdRepr::from_ip(addr(HOST).ip()));
        let h1v = h1.as_bytes().to_vec();
        let list: Vec<(u8, &dyn Emit)> =
            vec![(aip_p::HASH, &h1v), (aip_p::ID, &idi), (aip_p::ID, &idr), (aip_p::SA, &esp), (aip_p::NONCE, &ni_qm)];
        let (buf, first5, len) = chain(&list, None);
        let msg_id = 0x0102_0304;
        let hdr5 = AuthipHeader {
            initiator_cookie: w.cky_i,
            responder_cookie: cky_r,
            version: ISAKMP_VERSION,
            exchange_type: aip_x::MAIN_MODE,
            message_id: msg_id,
        };
        let m5 =
            authip::seal(&seal_keys, hdr5, 1, random::<16>(&mut rng), first5, &buf[Header::LEN..Header::LEN + len])
                .unwrap();
        ep.handle(now, addr(HOST), addr(WIN), &m5);
        let out = answers(&mut ep);
        assert_eq!(out.len(), 1, "#6");
        let o = authip::open(&seal_keys, &out[0]).expect("#6 opens under the Main Mode keys");
        assert_eq!((o.header.exchange_type, o.header.message_id), (aip_x::MAIN_MODE, msg_id));
        let ps6 = payloads_of(o.first, &o.chain);
        let h2 = authip::auth2(HashAlg::Sha256, &keys.skeyid, &transcript).unwrap();
        assert_eq!(one(&ps6, aip_p::HASH), h2.as_bytes(), "HASH(Auth2) verifies");
        let (spi_h, t) = chosen(&one(&ps6, aip_p::SA));
        let transform = esp_of(&t);
        // hostsec's pair: keys from the A-KDF per SPI (docs/authip.md K11, K12)
        let events: Vec<Event> = std::iter::from_fn(|| ep.poll_event()).collect();
        let up = events
            .iter()
            .find_map(|e| match e {
                Event::QuickModeUp(k) => Some(k.clone()),
                _ => None,
            })
            .expect("pair up");
        let mm = events
            .iter()
            .find_map(|e| match e {
                Event::MainModeUp { info, .. } => Some(info.clone()),
                _ => None,
            })
            .expect("MM up");
        assert_eq!((mm.keying, mm.authip_method), (Keying::AuthIp, Some("anonymous")));
        let qm = |spi: [u8; 4]| {
            let i = QuickModeInputs {
                message_id: msg_id,
                spi,
                ni_qm: &ni_qm,
                nr_qm: &nr_qm,
                g_qm_xy: None,
                skeyid_d: &keys.skeyid_d,
                extended_mode: None,
            };
            authip::derive_quick_mode(&kdf, &i, transform, authip::QM_KEY_ORDER).unwrap()
        };
        let spi_h: [u8; 4] = spi_h.try_into().unwrap();
        assert_eq!(up.info.spi_in, u32::from_be_bytes(spi_h));
        assert_eq!(up.info.spi_out, u32::from_be_bytes(spi_w));
        assert_eq!(up.encryption_key_in, qm(spi_h).encryption);
        assert_eq!(up.integrity_key_in, qm(spi_h).integrity);
        assert_eq!(up.encryption_key_out, qm(spi_w).encryption);
        assert_eq!(up.integrity_key_out, qm(spi_w).integrity);
    }
}
