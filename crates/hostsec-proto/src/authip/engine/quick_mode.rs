//! AuthIP Quick Mode ([MS-AIPS] §3.4, §3.5): the first one rides in the Main Mode exchange (0xF3) and carries the
//! authentication proofs Auth1/Auth2; later ones use exchange 0xF4. Fast Quick Mode ends after #6; normal Quick
//! Mode adds the NOTIFY_QM_SYNCHRONIZE pair #7/#8 (hostsec runs the normal one when the rule asks for PFS,
//! docs/authip.md E8).

use super::payloads::{self, sort, Got};
use super::{AuthipEngine, Child, MmState, Sa, KEEP_FINISHED, MAX_KEPT_QUICK_MODES, MAX_QUICK_MODES};
use crate::authip::consts::{exchange, notify, notify_protocol, payload};
use crate::authip::key_schedule::{derive_quick_mode, QuickModeInputs, QM_KEY_ORDER};
use crate::authip::proofs::{auth1, auth2};
use crate::authip::seal::{open, Opened};
use crate::authip::{AuthipMessage, AuthipNotifyRepr, NotifyKind};
use crate::crypto::dh::DhKeyPair;
use crate::crypto::prf::verify_mac;
use crate::crypto::{DhGroup, Secret};
use crate::ike::proposal::{accept_quick_mode_reply, choose_quick_mode, quick_mode_offer, QuickModeChoice};
use crate::ike::quick_mode::{check_host_id, pair_lifetimes, quick_mode_rule};
use crate::ike::retransmit::{request_digest, Retransmit, StoredReply};
use crate::ike::{ChildSaKeys, Event, QuickModeSaInfo, RequestId, Role, Selector};
use crate::wire::consts::encap_mode;
use crate::wire::{Emit, IdRepr, SaRepr};
use rand_core::CryptoRngCore;
use std::time::Instant;
use tracing::{debug, info};

/// Where a Quick Mode stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QmState {
    /// Initiator: #5 sent, waiting for #6.
    WaitReply,
    /// Initiator of a normal Quick Mode: #7 sent, waiting for #8.
    WaitSync,
    /// Finished; kept a while to answer retransmissions.
    Done,
}

/// One Quick Mode under an AuthIP Main Mode SA.
pub(super) struct Qm {
    pub role: Role,
    pub msg_id: u32,
    pub exchange: u8,
    pub state: QmState,
    pub spi_in: [u8; 4],
    pub ni: Vec<u8>,
    pub offer: Option<SaRepr>,
    pub dh: Option<DhKeyPair>,
    pub selector: Selector,
    pub requests: Vec<RequestId>,
    pub request: Option<Retransmit>,
    pub replies: Vec<StoredReply>,
    pub keys: Option<ChildSaKeys>,
    pub forget_at: Option<Instant>,
}

/// What a Quick Mode's timer asks for.
pub(super) enum Timer {
    Nothing,
    Resend(Vec<u8>),
    Failed,
    Forget,
}

impl Qm {
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.request.as_ref().map(|r| r.deadline), self.forget_at].into_iter().flatten().min()
    }

    pub fn on_timer(&mut self, now: Instant, tries: u32) -> Timer {
        if let Some(r) = self.request.as_mut().filter(|r| r.deadline <= now) {
            return match r.on_deadline(now, tries) {
                Some(m) => Timer::Resend(m.to_vec()),
                None => {
                    self.request = None;
                    self.forget_at = Some(now);
                    Timer::Failed
                }
            };
        }
        if self.forget_at.is_some_and(|f| f <= now) {
            return Timer::Forget;
        }
        Timer::Nothing
    }

    pub fn forgettable(&self, now: Instant) -> bool {
        self.request.is_none() && self.forget_at.is_some_and(|f| f <= now)
    }
}

fn id_of(addr: std::net::IpAddr, protocol: u8, port: u16) -> Vec<u8> {
    let id = IdRepr { protocol, port, ..IdRepr::from_ip(addr) };
    let mut v = vec![0u8; id.buffer_len()];
    let _ = id.emit(&mut v);
    v
}

/// The PFS group of a rule's Quick Modes: the Main Mode's group, or the level's first for a Main Mode without DH.
fn pfs_group(sa: &Sa, rule: &crate::policy::Rule) -> Option<DhGroup> {
    if !rule.pfs {
        return None;
    }
    sa.suite.and_then(|s| s.group).or_else(|| rule.minimum_strength.pfs_groups().first().copied())
}

/// The keys of both SAs of a pair and what `hostsec sas` shows about it.
#[allow(clippy::too_many_arguments)]
fn child_keys(
    sa: &Sa,
    rule: &crate::policy::Rule,
    role: Role,
    msg_id: u32,
    spi_in: [u8; 4],
    spi_out: [u8; 4],
    choice: &QuickModeChoice,
    ni: &[u8],
    nr: &[u8],
    g_qm: Option<&Secret>,
    selector: Selector,
) -> Result<ChildSaKeys, String> {
    let keys = sa.keys.as_ref().ok_or("no Main Mode keys")?;
    let derive = |spi: [u8; 4]| {
        let inputs = QuickModeInputs {
            message_id: msg_id,
            spi,
            ni_qm: ni,
            nr_qm: nr,
            g_qm_xy: g_qm.map(|s| s.expose()),
            skeyid_d: &keys.mm.skeyid_d,
            extended_mode: None,
        };
        derive_quick_mode(&keys.kdf, &inputs, choice.transform, QM_KEY_ORDER).map_err(|e| e.to_string())
    };
    let k_in = derive(spi_in)?;
    let k_out = derive(spi_out)?;
    let (lifetime, lifetime_kb) = pair_lifetimes(rule, choice);
    Ok(ChildSaKeys {
        info: QuickModeSaInfo {
            rule: rule.name.clone(),
            local: sa.local,
            peer: sa.peer,
            role,
            spi_in: u32::from_be_bytes(spi_in),
            spi_out: u32::from_be_bytes(spi_out),
            transform: choice.transform,
            pfs_group: choice.pfs.map(DhGroup::id),
            lifetime_left: lifetime,
            lifetime_kb,
            selector,
            encapsulation: None,
        },
        encryption_key_in: k_in.encryption,
        integrity_key_in: k_in.integrity,
        encryption_key_out: k_out.encryption,
        integrity_key_out: k_out.integrity,
    })
}

impl AuthipEngine {
    /// #5 of the first Quick Mode, in the Main Mode exchange with HASH(Auth1).
    pub(super) fn start_first_quick_mode(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        selector: Selector,
        requests: Vec<RequestId>,
    ) -> Result<(), String> {
        self.send_qm_request(now, rng, id, exchange::MAIN_MODE, selector, requests)
    }

    /// A later Quick Mode (exchange 0xF4) on an established Main Mode SA.
    pub(crate) fn start_quick_mode(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        selector: Selector,
        requests: Vec<RequestId>,
    ) {
        if let Err(why) = self.send_qm_request(now, rng, id, exchange::QUICK_MODE, selector, requests.clone()) {
            self.report_qm_failure(id, requests, &why);
        }
    }

    fn send_qm_request(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        exchange_type: u8,
        selector: Selector,
        requests: Vec<RequestId>,
    ) -> Result<(), String> {
        let spi_in = self.fresh_spi(rng);
        let policy = self.policy.clone();
        let Some(sa) = self.sas.get_mut(&id) else { return Ok(()) };
        let rule = policy.rule(&sa.rule).ok_or_else(|| format!("rule '{}' was removed", sa.rule))?;
        if sa.qms.values().filter(|q| q.state != QmState::Done).count() >= MAX_QUICK_MODES {
            return Err(format!("{MAX_QUICK_MODES} Quick Modes are running under this Main Mode SA"));
        }
        let msg_id = loop {
            let mut b = [0u8; 4];
            rng.fill_bytes(&mut b);
            let m = u32::from_be_bytes(b);
            if m > 1 && !sa.qms.contains_key(&m) {
                break m;
            }
        };
        let first = exchange_type == exchange::MAIN_MODE;
        let pfs = pfs_group(sa, rule);
        let offer = quick_mode_offer(
            &rule.esp_offer(),
            spi_in,
            pfs,
            rule.quick_mode_lifetime,
            rule.quick_mode_lifetime_kb,
            encap_mode::TRANSPORT,
        );
        let mut ni = vec![0u8; 32];
        rng.fill_bytes(&mut ni);
        let dh = match pfs {
            Some(g) => Some(DhKeyPair::generate(g, rng).map_err(|e| format!("DH: {e}"))?),
            None => None,
        };
        let keys = sa.keys.as_ref().ok_or("no Main Mode keys")?;
        let hash_i = if first {
            let t: Vec<&[u8]> = sa.transcript.iter().map(Vec::as_slice).collect();
            Some(auth1(keys.kdf.hash, &keys.mm.skeyid, &t).map_err(|e| e.to_string())?.as_bytes().to_vec())
        } else {
            None
        };
        let id_i = id_of(sa.local.ip(), selector.protocol, selector.local_port);
        let id_r = id_of(sa.peer.ip(), selector.protocol, selector.remote_port);
        let ke = dh.as_ref().map(|d| d.public_value().to_vec());
        let mut list: Vec<(u8, &dyn Emit)> = Vec::new();
        if let Some(h) = &hash_i {
            list.push((payload::HASH, h));
        }
        list.extend([
            (payload::ID, &id_i as &dyn Emit),
            (payload::ID, &id_r),
            (payload::SA, &offer),
            (payload::NONCE, &ni),
        ]);
        if let Some(ke) = &ke {
            list.push((payload::KE, ke));
        }
        let (first_type, chain) = payloads::build(&list)?;
        let msg = sa.sealed(rng, exchange_type, msg_id, first_type, &chain)?;
        sa.qms.insert(
            msg_id,
            Qm {
                role: Role::Initiator,
                msg_id,
                exchange: exchange_type,
                state: QmState::WaitReply,
                spi_in,
                ni,
                offer: Some(offer),
                dh,
                selector,
                requests,
                request: Some(Retransmit::new(msg.clone(), now, self.timing.retransmit_initial)),
                replies: Vec::new(),
                keys: None,
                forget_at: None,
            },
        );
        let (local, peer) = (sa.local, sa.peer);
        self.send(local, peer, msg);
        Ok(())
    }

    fn report_qm_failure(&mut self, id: u64, requests: Vec<RequestId>, why: &str) {
        let Some(sa) = self.sas.get(&id) else { return };
        self.stats.failures += 1;
        info!(peer = %sa.peer, rule = %sa.rule, "AuthIP Quick Mode failed: {why}");
        let (rule, peer) = (sa.rule.clone(), sa.peer);
        let reqs: Vec<Option<RequestId>> =
            if requests.is_empty() { vec![None] } else { requests.into_iter().map(Some).collect() };
        for request in reqs {
            self.events.push_back(Event::NegotiationFailed {
                request,
                rule: Some(rule.clone()),
                peer,
                phase: "quick mode",
                reason: format!("AuthIP: {why}"),
            });
        }
    }

    pub(super) fn fail_quick_mode(&mut self, id: u64, msg_id: u32, why: &str) {
        let Some(sa) = self.sas.get_mut(&id) else { return };
        let Some(qm) = sa.qms.get_mut(&msg_id) else { return };
        let requests = std::mem::take(&mut qm.requests);
        qm.request = None;
        qm.state = QmState::Done;
        let first = qm.exchange == exchange::MAIN_MODE && sa.state != MmState::Established;
        if first {
            return self.fail(id, why);
        }
        self.report_qm_failure(id, requests, why);
    }

    /// An encrypted message of an SA: a Quick Mode message, or a notify.
    pub(super) fn on_sealed(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        datagram: &[u8],
        msg: &AuthipMessage<'_>,
    ) {
        let Some(sa) = self.sas.get_mut(&id) else { return };
        let Some(keys) = sa.keys.as_ref() else {
            self.stats.dropped_unexpected += 1;
            debug!(peer = %sa.peer, "dropped an encrypted AuthIP message: the SA has no keys yet");
            return;
        };
        let h = msg.header;
        let digest = request_digest(datagram);
        if let Some(r) = sa.qms.get(&h.message_id).and_then(|q| q.replies.iter().find(|r| r.request_digest == digest)) {
            let (local, peer, reply) = (sa.local, sa.peer, r.reply.clone());
            self.stats.duplicates += 1;
            self.send(local, peer, reply);
            return;
        }
        let opened = match open(&keys.seal, datagram) {
            Ok(o) => o,
            Err(e) => {
                self.stats.dropped_malformed += 1;
                debug!(peer = %sa.peer, "dropped an encrypted AuthIP message: {e}");
                return;
            }
        };
        let got = match sort(opened.first, &opened.chain) {
            Ok(g) => g,
            Err(e) => {
                self.stats.dropped_malformed += 1;
                debug!(peer = %sa.peer, "dropped an encrypted AuthIP message: {e}");
                return;
            }
        };
        let result = match (h.exchange_type, sa.role, sa.state, sa.qms.contains_key(&h.message_id)) {
            (exchange::NOTIFY, ..) => {
                self.on_notify(now, rng, id, &opened, &got);
                return;
            }
            (exchange::MAIN_MODE, Role::Responder, MmState::WaitFirstQm, false) => {
                self.answer_qm(now, rng, id, &opened, &got, digest, true)
            }
            (exchange::MAIN_MODE, Role::Initiator, MmState::WaitFirstQm, true) => {
                self.on_qm_reply(now, rng, id, &opened, &got, true)
            }
            (exchange::QUICK_MODE, _, MmState::Established, true) => {
                self.on_qm_later(now, rng, id, &opened, &got, digest)
            }
            (exchange::QUICK_MODE, _, MmState::Established, false) => {
                self.answer_qm(now, rng, id, &opened, &got, digest, false)
            }
            _ => {
                self.stats.dropped_unexpected += 1;
                debug!("dropped an encrypted AuthIP message (exchange {}) unexpected in this state", h.exchange_type);
                return;
            }
        };
        if let Err(why) = result {
            let first = h.exchange_type == exchange::MAIN_MODE;
            if first {
                self.fail(id, &why);
            } else if self.sas.get(&id).is_some_and(|sa| sa.qms.contains_key(&h.message_id)) {
                self.fail_quick_mode(id, h.message_id, &why);
            } else {
                self.report_qm_failure(id, Vec::new(), &why);
                self.send_notify(
                    now,
                    rng,
                    id,
                    AuthipNotifyRepr {
                        protocol_id: notify_protocol::QM,
                        flags: crate::authip::consts::notify_flags::RELIABLE,
                        notify_type: notify::NO_PROPOSAL_CHOSEN,
                        data: Vec::new(),
                    },
                    "NO-PROPOSAL-CHOSEN",
                );
            }
        }
    }

    /// #5 (first: with HASH(Auth1)) as responder: checks the proof and the traffic, chooses a transform, sends #6,
    /// and installs the pair (fast Quick Mode: the initiator has the keys once it reads #6).
    #[allow(clippy::too_many_arguments)]
    fn answer_qm(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        o: &Opened,
        got: &Got<'_>,
        digest: [u8; 32],
        first: bool,
    ) -> Result<(), String> {
        let spi_in = self.fresh_spi(rng);
        let policy = self.policy.clone();
        let Some(sa) = self.sas.get_mut(&id) else { return Ok(()) };
        let keys = sa.keys.as_ref().ok_or("no Main Mode keys")?;
        let hash = keys.kdf.hash;
        let t: Vec<&[u8]> = sa.transcript.iter().map(Vec::as_slice).collect();
        let (proof, auth2_bytes) = if first {
            let [h1] = got.hash.as_slice() else { return Err("#5 carries no single HASH(Auth1)".into()) };
            let expect = auth1(hash, &keys.mm.skeyid, &t).map_err(|e| e.to_string())?;
            if !verify_mac(expect.as_bytes(), h1) {
                return Err("Auth1 does not verify: the peer does not hold the Main Mode keys (wrong GSS-API secret or altered messages)".into());
            }
            (true, Some(auth2(hash, &keys.mm.skeyid, &t).map_err(|e| e.to_string())?.as_bytes().to_vec()))
        } else {
            (false, None)
        };
        let ([sa_body], [ni], [idi, idr]) = (got.sa.as_slice(), got.nonce.as_slice(), got.id.as_slice()) else {
            return Err("#5 needs one SA, one nonce and two IDs".into());
        };
        crate::ike::message_check_nonce(ni)?;
        let (pi, port_i) = check_host_id(idi, &[Some(sa.peer.ip())], "IDi")?;
        let (pr, port_r) = check_host_id(idr, &[Some(sa.local.ip())], "IDr")?;
        if pi != pr {
            return Err("IDi and IDr name different protocols".into());
        }
        let selector = Selector { protocol: pi, local_port: port_r, remote_port: port_i };
        // Each answered Quick Mode is kept a minute for retransmissions: a bound on them bounds what a peer can
        // make this SA hold (and how fast it can add SA pairs).
        if sa.qms.len() >= MAX_KEPT_QUICK_MODES {
            return Err(format!("{MAX_KEPT_QUICK_MODES} Quick Modes ran under this Main Mode SA within a minute"));
        }
        let mm_rule = policy.rule(&sa.rule).ok_or_else(|| format!("rule '{}' was removed", sa.rule))?;
        let rule = quick_mode_rule(&policy, mm_rule, sa.local.ip(), sa.peer.ip(), &selector)?;
        let sel = choose_quick_mode(sa_body, rule.minimum_strength, rule.pfs, spi_in, false).map_err(|why| {
            format!(
                "no Quick Mode proposal meets rule '{}' (level {}): {}",
                rule.name,
                rule.minimum_strength,
                why.join("; ")
            )
        })?;
        let (dh, g_qm) = match (sel.choice.pfs, got.ke.as_slice()) {
            (Some(g), [ke]) => {
                let d = DhKeyPair::generate(g, rng).map_err(|e| format!("DH: {e}"))?;
                let s = d.agree(ke).map_err(|e| format!("the peer's PFS KE is invalid: {e}"))?;
                (Some(d), Some(s))
            }
            (None, []) => (None, None),
            _ => return Err("#5's KE does not match the chosen transform's PFS group".into()),
        };
        let nr = if first {
            sa.nr_qm.clone()
        } else {
            let mut n = vec![0u8; 32];
            rng.fill_bytes(&mut n);
            n
        };
        let ke = dh.as_ref().map(|d| d.public_value().to_vec());
        let mut list: Vec<(u8, &dyn Emit)> = Vec::new();
        if let Some(h) = &auth2_bytes {
            list.push((payload::HASH, h));
        }
        let (idi_v, idr_v) = (idi.to_vec(), idr.to_vec());
        list.extend([(payload::ID, &idi_v as &dyn Emit), (payload::ID, &idr_v), (payload::SA, &sel.reply)]);
        if !first {
            list.push((payload::NONCE, &nr));
        }
        if let Some(ke) = &ke {
            list.push((payload::KE, ke));
        }
        let (first_type, chain) = payloads::build(&list)?;
        let child = child_keys(
            sa,
            rule,
            Role::Responder,
            o.header.message_id,
            spi_in,
            sel.peer_spi,
            &sel.choice,
            ni,
            &nr,
            g_qm.as_ref(),
            selector,
        )?;
        let xchg = o.header.exchange_type;
        let msg = sa.sealed(rng, xchg, o.header.message_id, first_type, &chain)?;
        sa.qms.insert(
            o.header.message_id,
            Qm {
                role: Role::Responder,
                msg_id: o.header.message_id,
                exchange: xchg,
                state: QmState::Done,
                spi_in,
                ni: ni.to_vec(),
                offer: None,
                dh: None,
                selector,
                requests: Vec::new(),
                request: None,
                replies: vec![StoredReply { request_digest: digest, reply: msg.clone() }],
                keys: None,
                forget_at: Some(now + KEEP_FINISHED),
            },
        );
        let (local, peer) = (sa.local, sa.peer);
        let rule_name = rule.name.clone();
        self.send(local, peer, msg);
        if proof {
            self.mark_established(now, id);
        }
        info!(peer = %peer, rule = %rule_name, "AuthIP Quick Mode up: ESP {} SPIs in {:08x} out {:08x} ({})", child.info.transform, child.info.spi_in, child.info.spi_out, super::EXPERIMENTAL);
        self.add_child(now, id, child.clone());
        self.stats.quick_modes += 1;
        self.events.push_back(Event::QuickModeUp(child));
        Ok(())
    }

    /// Marks a Main Mode SA authenticated and reports it.
    fn mark_established(&mut self, now: Instant, id: u64) {
        let Some(sa) = self.sas.get_mut(&id) else { return };
        sa.state = MmState::Established;
        sa.deadline = None;
        sa.request = None;
        sa.reply = None;
        sa.expires = Some(now + sa.lifetime);
        self.half_open.remove(&(sa.peer, sa.cky_i));
        self.stats.main_modes += 1;
        let Some(key) = sa.keys.as_ref().map(|k| k.mm.encryption_key.clone()) else { return };
        let info = sa.info(Some(now));
        info!(peer = %sa.peer, rule = %sa.rule, "AuthIP Main Mode established ({}, peer {}; {})", super::method_name(sa.mech.method()), info.peer_id.as_deref().unwrap_or("-"), super::EXPERIMENTAL);
        self.events.push_back(Event::MainModeUp { info, encryption_key: key });
    }

    /// Records a new SA pair; one it succeeds (same rule, peer and traffic) goes after the overlap.
    fn add_child(&mut self, now: Instant, id: u64, keys: ChildSaKeys) {
        let life = keys.info.lifetime_left;
        let expires = now + life;
        let soft = (keys.info.role == Role::Initiator).then(|| now + life.mul_f64(super::SOFT_SHARE));
        let i = &keys.info;
        for old in self.children.values_mut().filter(|c| {
            c.info.rule == i.rule && c.info.peer == i.peer && c.info.selector == i.selector && !c.superseded
        }) {
            old.superseded = true;
            old.soft = None;
            old.expires = old.expires.min(now + super::REKEY_OVERLAP);
        }
        self.children
            .insert(keys.info.spi_in, Child { info: keys.info.clone(), sa: id, expires, soft, superseded: false });
    }

    /// #6 as initiator (first: with HASH(Auth2)).
    fn on_qm_reply(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        o: &Opened,
        got: &Got<'_>,
        first: bool,
    ) -> Result<(), String> {
        let policy = self.policy.clone();
        let Some(sa) = self.sas.get_mut(&id) else { return Ok(()) };
        let Some(qm) = sa.qms.get(&o.header.message_id) else { return Ok(()) };
        if qm.state != QmState::WaitReply {
            self.stats.dropped_unexpected += 1;
            return Ok(());
        }
        let keys = sa.keys.as_ref().ok_or("no Main Mode keys")?;
        if first {
            let t: Vec<&[u8]> = sa.transcript.iter().map(Vec::as_slice).collect();
            let [h2] = got.hash.as_slice() else { return Err("#6 carries no single HASH(Auth2)".into()) };
            let expect = auth2(keys.kdf.hash, &keys.mm.skeyid, &t).map_err(|e| e.to_string())?;
            if !verify_mac(expect.as_bytes(), h2) {
                return Err("Auth2 does not verify: the responder does not hold the Main Mode keys".into());
            }
        }
        let [sa_body] = got.sa.as_slice() else { return Err("#6 carries no single SA".into()) };
        let offer = qm.offer.as_ref().ok_or("no offer")?;
        let (choice, spi_out) = accept_quick_mode_reply(sa_body, offer)?;
        let nr = if first {
            sa.nr_qm.clone()
        } else {
            let [n] = got.nonce.as_slice() else {
                return Err("#6 of a later Quick Mode carries no single nonce".into());
            };
            crate::ike::message_check_nonce(n)?;
            n.to_vec()
        };
        let g_qm = match (&qm.dh, got.ke.as_slice()) {
            (Some(d), [ke]) => Some(d.agree(ke).map_err(|e| format!("the responder's PFS KE is invalid: {e}"))?),
            (None, []) => None,
            _ => return Err("#6's KE does not match our PFS offer".into()),
        };
        let rule = policy.rule(&sa.rule).ok_or_else(|| format!("rule '{}' was removed", sa.rule))?;
        let child = child_keys(
            sa,
            rule,
            Role::Initiator,
            qm.msg_id,
            qm.spi_in,
            spi_out,
            &choice,
            &qm.ni,
            &nr,
            g_qm.as_ref(),
            qm.selector,
        )?;
        let normal = choice.pfs.is_some();
        let msg_id = o.header.message_id;
        let sync = if normal {
            let n = AuthipNotifyRepr::qm_synchronize();
            let (first_type, chain) = payloads::build(&[(payload::NOTIFY, &n)])?;
            Some(sa.sealed(rng, exchange::QUICK_MODE, msg_id, first_type, &chain)?)
        } else {
            None
        };
        let Some(qm) = sa.qms.get_mut(&msg_id) else { return Ok(()) };
        qm.request = None;
        let requests = if normal { Vec::new() } else { std::mem::take(&mut qm.requests) };
        match &sync {
            Some(m) => {
                qm.state = QmState::WaitSync;
                qm.request = Some(Retransmit::new(m.clone(), now, self.timing.retransmit_initial));
                qm.keys = Some(child.clone());
            }
            None => {
                qm.state = QmState::Done;
                qm.forget_at = Some(now + KEEP_FINISHED);
            }
        }
        let (local, peer) = (sa.local, sa.peer);
        if first {
            self.mark_established(now, id);
        }
        self.add_child(now, id, child.clone());
        match sync {
            Some(m) => {
                self.send(local, peer, m);
                self.events.push_back(Event::QuickModeInbound(child));
            }
            None => self.child_up(child, requests),
        }
        Ok(())
    }

    fn child_up(&mut self, child: ChildSaKeys, requests: Vec<RequestId>) {
        self.stats.quick_modes += 1;
        info!(peer = %child.info.peer, rule = %child.info.rule, "AuthIP Quick Mode up: ESP {} SPIs in {:08x} out {:08x} ({})", child.info.transform, child.info.spi_in, child.info.spi_out, super::EXPERIMENTAL);
        let info = child.info.clone();
        self.events.push_back(Event::QuickModeUp(child));
        for request in requests {
            let verdict = format!(
                "AuthIP Quick Mode up: ESP {}{} ({})",
                info.transform,
                info.pfs_group.map(|g| format!(", PFS group {g}")).unwrap_or_default(),
                super::EXPERIMENTAL
            );
            self.events.push_back(Event::RequestDone { request, info: info.clone(), verdict });
        }
    }

    /// A 0xF4 message of a known Quick Mode: #6 of a later one (initiator), #7 (responder), #8 (initiator).
    fn on_qm_later(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        o: &Opened,
        got: &Got<'_>,
        digest: [u8; 32],
    ) -> Result<(), String> {
        let Some(sa) = self.sas.get_mut(&id) else { return Ok(()) };
        let Some(qm) = sa.qms.get_mut(&o.header.message_id) else { return Ok(()) };
        let sync = got.notify.iter().any(|n| matches!(n.kind(), NotifyKind::QmSynchronize));
        match (qm.role, qm.state, sync) {
            (Role::Initiator, QmState::WaitReply, false) => self.on_qm_reply(now, rng, id, o, got, false),
            (Role::Responder, QmState::Done, true) => {
                // #7 of a normal Quick Mode: the pair is in place already; #8 confirms it.
                let n = AuthipNotifyRepr::qm_synchronize();
                let (first_type, chain) = payloads::build(&[(payload::NOTIFY, &n)])?;
                let msg = sa.sealed(rng, exchange::QUICK_MODE, o.header.message_id, first_type, &chain)?;
                if let Some(qm) = sa.qms.get_mut(&o.header.message_id) {
                    qm.replies.push(StoredReply { request_digest: digest, reply: msg.clone() });
                    qm.forget_at = Some(now + KEEP_FINISHED);
                }
                let (local, peer) = (sa.local, sa.peer);
                self.send(local, peer, msg);
                Ok(())
            }
            (Role::Initiator, QmState::WaitSync, true) => {
                qm.state = QmState::Done;
                qm.request = None;
                qm.forget_at = Some(now + KEEP_FINISHED);
                let requests = std::mem::take(&mut qm.requests);
                if let Some(child) = qm.keys.take() {
                    self.child_up(child, requests);
                }
                Ok(())
            }
            _ => {
                self.stats.dropped_unexpected += 1;
                Ok(())
            }
        }
    }
}
