//! The ISAKMP (phase-1) SA: its identity (cookies, peer, rule), its Main Mode state or its established keys,
//! and the Quick Mode exchanges running under it. Also the context that every step of every exchange uses to
//! send, report and count.

use super::dpd::Dpd;
use super::events::{MainModeSaInfo, NatStatus, RequestId, Role};
use super::fragment::Reassembly;
use super::main_mode::MainMode;
use super::message::{build_encrypted, build_plain, Crypt};
use super::quick_mode::QuickMode;
use super::retransmit::{Retransmit, StoredReply};
use super::selector::Selector;
use super::stats::Stats;
use super::vendor::PeerVendors;
use super::{Timing, Transmit};
use crate::crypto::keys::{exchange_iv, Phase1Keys};
use crate::crypto::prf::prf;
use crate::crypto::{AuthMethod, MainModeSuite};
use crate::policy::Policy;
use crate::wire::consts::{exchange, DOI_IPSEC};
use crate::wire::{Emit, Header, NotifyRepr, WireError};
use rand_core::CryptoRngCore;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

/// Identifies an ISAKMP SA inside an endpoint.
pub(crate) type SaId = u64;

/// What every step of an exchange may touch: the clock, randomness, the outbox and counters.
pub(crate) struct Ctx<'a> {
    /// Now.
    pub now: Instant,
    /// Randomness for nonces, cookies, SPIs, message IDs and DH private values.
    pub rng: &'a mut (dyn CryptoRngCore + Send),
    /// Datagrams to send.
    pub out: &'a mut VecDeque<Transmit>,
    /// Counters.
    pub stats: &'a mut Stats,
    /// Timers and bounds.
    pub timing: &'a Timing,
    /// The configuration.
    pub policy: &'a Policy,
    /// Wall-clock time now, if the daemon gave it (certificate validity).
    pub wall_clock: Option<std::time::SystemTime>,
}

impl Ctx<'_> {
    /// Queues a datagram.
    pub fn send(&mut self, local: SocketAddr, remote: SocketAddr, payload: Vec<u8>) {
        self.stats.sent += 1;
        self.out.push_back(Transmit { local, remote, payload });
    }

    /// Random bytes.
    pub fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    /// A fresh nonce (32 bytes, as strongSwan and Windows send).
    pub fn nonce(&mut self) -> Vec<u8> {
        self.random::<32>().to_vec()
    }
}

/// The phase-1 SA once Main Mode completed.
pub(crate) struct Established {
    /// Cipher, hash, group.
    pub suite: MainModeSuite,
    /// Authentication method.
    pub auth: AuthMethod,
    /// The key schedule.
    pub keys: Phase1Keys,
    /// The last CBC block of phase 1, from which every later exchange derives its IV (RFC 2409 appendix B).
    pub last_block: [u8; 16],
    /// When it expires.
    pub expires: Instant,
    /// Our lifetime in seconds, when as responder we chose it below the peer's proposal (announced with
    /// RESPONDER-LIFETIME once established).
    pub lowered_to: Option<u64>,
    /// The peer's authenticated identity, as text.
    pub peer_id: String,
    /// Subject and issuer of the peer's certificate (certificate authentication).
    pub peer_cert: Option<(String, String)>,
}

/// Phase-1 state.
pub(crate) enum Phase1 {
    /// Main Mode in progress.
    Negotiating(Box<MainMode>),
    /// Authenticated.
    Established(Box<Established>),
}

/// Identity and bookkeeping of an ISAKMP SA: what the Main Mode and Quick Mode steps read and update besides
/// their own state.
pub(crate) struct SaCore {
    /// Name of the rule it was negotiated under.
    pub rule: String,
    /// Our Main Mode role.
    pub role: Role,
    /// Local address and port.
    pub local: SocketAddr,
    /// Peer address and port.
    pub peer: SocketAddr,
    /// CKY-I.
    pub cky_i: [u8; 8],
    /// CKY-R (zero until the responder's first message).
    pub cky_r: [u8; 8],
    /// Our pending request in Main Mode (initiator).
    pub retransmit: Option<Retransmit>,
    /// Our last Main Mode reply (responder), for retransmitted requests.
    pub reply: Option<StoredReply>,
    /// When the stored reply is dropped, or a half-open responder SA given up.
    pub idle_deadline: Option<Instant>,
    /// Requests waiting for this SA to carry a Quick Mode, with the traffic each asks for: while it negotiates,
    /// or, established, while its Quick Modes are held (`hold_quick_until`).
    pub waiting: Vec<(RequestId, Selector)>,
    /// Until when the Quick Modes we start under this established SA are held back (see `endpoint/hold.rs`).
    pub hold_quick_until: Option<Instant>,
    /// Message IDs of Informational exchanges already processed (bounded), so a replayed one is ignored.
    pub seen_informational: VecDeque<u32>,
    /// Message IDs of forgotten Quick Modes (bounded, oldest first), never to be taken for new exchanges.
    pub retired_quick_modes: VecDeque<u32>,
    /// Whether we send INITIAL-CONTACT in MM5 or MM6 (first contact with this peer since we started).
    pub send_initial_contact: bool,
    /// Whether the peer sent INITIAL-CONTACT during Main Mode (in MM5 or MM6).
    pub peer_initial_contact: bool,
    /// When its Main Mode began (MM1 sent or received): the SAs with the peer that came up before it are what a
    /// restart of the peer (its INITIAL-CONTACT) makes stale, not those negotiated at the same time.
    pub started: Option<Instant>,
    /// When it was established.
    pub up: Option<Instant>,
    /// Whether this Main Mode offers the pre-shared key only: the fallback of a `certificate-then-psk` rule after
    /// certificate authentication did not succeed (SPEC §5).
    pub psk_only: bool,
    /// The deadline last handed to the endpoint's timer queue.
    pub scheduled: Option<Instant>,
    /// A `rule test` SA: negotiated beside the SAs in use, never reused for other traffic, deleted once its
    /// Quick Mode reported.
    pub test: bool,
    /// What the peer's vendor IDs in MM1 or MM2 announced (IKE fragmentation, Windows).
    pub peer_vendors: PeerVendors,
    /// The peer's IKE fragments of one message, while they come in.
    pub reassembly: Option<Reassembly>,
    /// What NAT-D found (from MM3/MM4 on). With a NAT, the SA floats to port 4500 from MM5 on.
    pub nat: NatStatus,
    /// When the next NAT-keepalive is due (established SAs of a host behind NAT).
    pub keepalive_at: Option<Instant>,
    /// Dead peer detection (established SAs with a peer that announced DPD).
    pub dpd: Option<Dpd>,
    /// The initiator's MM1 carries MS-MamieExists: an AuthIP #1 went to the peer beside it ([MS-AIPS] §3.2.4).
    pub mamie: bool,
    /// CKY-I of the AuthIP Main Mode started beside this one, abandoned if the peer answers IKEv1.
    pub authip_twin: Option<[u8; 8]>,
}

impl SaCore {
    /// A new SA core.
    pub fn new(rule: &str, role: Role, local: SocketAddr, peer: SocketAddr, cky_i: [u8; 8], cky_r: [u8; 8]) -> Self {
        SaCore {
            rule: rule.to_string(),
            role,
            local,
            peer,
            cky_i,
            cky_r,
            retransmit: None,
            reply: None,
            idle_deadline: None,
            waiting: Vec::new(),
            hold_quick_until: None,
            seen_informational: VecDeque::new(),
            retired_quick_modes: VecDeque::new(),
            send_initial_contact: false,
            peer_initial_contact: false,
            started: None,
            up: None,
            psk_only: false,
            mamie: false,
            authip_twin: None,
            scheduled: None,
            test: false,
            peer_vendors: PeerVendors::default(),
            reassembly: None,
            nat: NatStatus::None,
            keepalive_at: None,
            dpd: None,
        }
    }

    /// Remembers the message ID of a forgotten Quick Mode, keeping at most `bound`.
    pub fn retire_quick_mode(&mut self, msg_id: u32, bound: usize) {
        if self.retired_quick_modes.len() >= bound {
            self.retired_quick_modes.pop_front();
        }
        self.retired_quick_modes.push_back(msg_id);
    }

    /// Our own cookie (the one that indexes this SA).
    pub fn own_cookie(&self) -> [u8; 8] {
        match self.role {
            Role::Initiator => self.cky_i,
            Role::Responder => self.cky_r,
        }
    }

    /// A header for a message of this SA.
    pub fn header(&self, exchange_type: u8, message_id: u32) -> Header {
        Header {
            initiator_cookie: self.cky_i,
            responder_cookie: self.cky_r,
            next_payload: 0,
            version: crate::wire::consts::ISAKMP_VERSION,
            exchange_type,
            flags: 0,
            message_id,
            length: 0,
        }
    }

    /// Sends an Informational exchange under the established phase-1 keys `est`: HASH(1) = prf(SKEYID_a,
    /// M-ID | payloads) (RFC 2409 §5.7), encrypted with an IV of its own.
    pub fn send_informational(
        &self,
        cx: &mut Ctx<'_>,
        est: &Established,
        payloads: &[(u8, &dyn Emit)],
    ) -> Result<(), WireError> {
        let mid = loop {
            let m = u32::from_be_bytes(cx.random::<4>());
            if m != 0 {
                break m;
            }
        };
        let hash = est.suite.hash;
        let skeyid_a = est.keys.skeyid_a.expose();
        let mid_b = mid.to_be_bytes();
        let f = |rest: &[u8]| prf(hash, skeyid_a, &[&mid_b, rest]);
        let crypt =
            Crypt { cipher: est.suite.cipher, key: est.keys.ka.expose(), iv: exchange_iv(hash, &est.last_block, mid) };
        let (msg, _) = build_encrypted(
            self.header(exchange::INFORMATIONAL, mid),
            Some((hash.output_len(), &f)),
            payloads,
            &crypt,
        )?;
        cx.send(self.local, self.peer, msg);
        Ok(())
    }

    /// The ISAKMP SPI of this SA for notifications and deletes: CKY-I | CKY-R.
    pub fn isakmp_spi(&self) -> Vec<u8> {
        let mut spi = self.cky_i.to_vec();
        spi.extend_from_slice(&self.cky_r);
        spi
    }
}

/// An ISAKMP SA and everything that runs under it.
pub(crate) struct IkeSa {
    /// Identity and bookkeeping.
    pub core: SaCore,
    /// Main Mode or established.
    pub phase1: Phase1,
    /// Quick Modes by message ID.
    pub quick_modes: BTreeMap<u32, QuickMode>,
}

impl IkeSa {
    /// The established state, if any.
    pub fn established(&self) -> Option<&Established> {
        match &self.phase1 {
            Phase1::Established(e) => Some(e),
            Phase1::Negotiating(_) => None,
        }
    }

    /// Forgets the finished Quick Modes that finished first until at most `keep` remain, retiring their message
    /// IDs (at most `retired` remembered).
    pub fn forget_finished_quick_modes(&mut self, keep: usize, retired: usize) {
        let mut finished: Vec<(Option<Instant>, u32)> = self
            .quick_modes
            .iter()
            .filter(|(_, q)| matches!(q.state, super::quick_mode::QmState::Done))
            .map(|(m, q)| (q.forget_at, *m))
            .collect();
        if finished.len() <= keep {
            return;
        }
        finished.sort_unstable();
        for (_, m) in finished.iter().take(finished.len() - keep) {
            self.quick_modes.remove(m);
            self.core.retire_quick_mode(*m, retired);
        }
    }

    /// The earliest deadline of this SA and its exchanges.
    pub fn next_deadline(&self) -> Option<Instant> {
        let own = [
            self.core.retransmit.as_ref().map(|r| r.deadline),
            self.core.idle_deadline,
            self.established().map(|e| e.expires),
            self.core.reassembly.as_ref().map(|r| r.deadline),
            self.core.keepalive_at,
            self.core.dpd.as_ref().and_then(Dpd::due),
            self.core.hold_quick_until,
        ];
        own.into_iter().flatten().chain(self.quick_modes.values().filter_map(QuickMode::next_deadline)).min()
    }

    /// What `hostsec sas` shows.
    pub fn info(&self, now: Instant) -> MainModeSaInfo {
        let (state, auth, suite, peer_id, left) = match &self.phase1 {
            Phase1::Negotiating(mm) => (mm.state_name(), mm.auth(), mm.suite(), None, None),
            Phase1::Established(e) => (
                "established",
                Some(e.auth),
                Some(e.suite),
                Some(e.peer_id.clone()),
                Some(e.expires.saturating_duration_since(now)),
            ),
        };
        let peer_cert = self.established().and_then(|e| e.peer_cert.clone());
        let c = &self.core;
        MainModeSaInfo {
            rule: c.rule.clone(),
            local: c.local,
            peer: c.peer,
            role: c.role,
            state,
            cookie_i: c.cky_i,
            cookie_r: c.cky_r,
            auth,
            encryption: suite.map(|s| s.cipher),
            hash: suite.map(|s| s.hash),
            dh_group: suite.map(|s| s.group.id()),
            peer_id,
            peer_cert,
            lifetime_left: left,
            nat: c.nat,
            dpd: c.dpd.as_ref().map(|d| d.info(now)),
            keying: crate::policy::Keying::Ike,
            authip_method: None,
        }
    }
}

/// Sends an unauthenticated Informational notification (before phase 1 is established, e.g. NO-PROPOSAL-CHOSEN
/// in answer to MM1); it creates no state.
pub(crate) fn send_plain_notify(
    cx: &mut Ctx<'_>,
    local: SocketAddr,
    peer: SocketAddr,
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    notify_type: u16,
) {
    let hdr = Header {
        initiator_cookie: cky_i,
        responder_cookie: cky_r,
        next_payload: 0,
        version: crate::wire::consts::ISAKMP_VERSION,
        exchange_type: exchange::INFORMATIONAL,
        flags: 0,
        message_id: 0,
        length: 0,
    };
    let mut spi = cky_i.to_vec();
    spi.extend_from_slice(&cky_r);
    let n = NotifyRepr {
        doi: DOI_IPSEC,
        protocol_id: crate::wire::consts::protocol::ISAKMP,
        notify_type,
        spi,
        data: Vec::new(),
    };
    if let Ok(msg) = build_plain(hdr, &[(crate::wire::consts::payload::NOTIFY, &n)]) {
        cx.send(local, peer, msg);
    }
}
