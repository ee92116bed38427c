//! Quick Mode (RFC 2409 §5.5): one ESP SA pair in transport mode per exchange, with or without PFS. Three
//! messages, all encrypted under the phase-1 SA with an IV of the exchange's own:
//!
//! ```text
//!  QM1  I -> R  HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]
//!  QM2  R -> I  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr]
//!  QM3  I -> R  HDR*, HASH(3)
//! ```
//!
//! HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDs]), HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr …),
//! HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
//!
//! When Main Mode's NAT-D found a NAT, the SA pair is UDP-encapsulated transport (RFC 3947 §5.1: mode 4, or
//! 61444 for a peer of the drafts), and QM1 and QM2 each carry two NAT-OA payloads after the IDs (§5.2): the
//! initiator's and the responder's address as the sender sees them. The peer's tell the daemon which addresses
//! its TCP and UDP checksums cover; with a NAT, the peer's IDs may name the address its NAT-OA names.

use super::events::{ChildSaKeys, QuickModeSaInfo, RequestId, Role, UdpEncapsulation};
use super::lifetime::Lowered;
use super::message::{
    after_first_hash, build_encrypted, check_nonce, collect, decrypt_body, emit_vec, Collected, Crypt,
};
use super::proposal::{accept_quick_mode_reply, choose_quick_mode, quick_mode_offer, QuickModeChoice};
use super::retransmit::{request_digest, Retransmit, StoredReply};
use super::sa::{Ctx, Established, SaCore};
use super::selector::{governing_rule_flow, protocol_name, rule_contains, same_authentication, Selector};
use crate::crypto::dh::DhKeyPair;
use crate::crypto::keys::{exchange_iv, keymat};
use crate::crypto::prf::{prf, verify_mac};
use crate::crypto::StrengthLevel;
use crate::crypto::{DhGroup, EspTransform, Secret};
use crate::policy::{Policy, Rule};
use crate::wire::consts::{encap_mode, exchange, id_type, notify, payload, protocol};
use crate::wire::{Emit, Header, IdPayload, IdRepr, NatOaPayload, NatOaRepr, SaRepr};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A Quick Mode exchange.
pub(crate) struct QuickMode {
    /// Its message ID.
    pub msg_id: u32,
    /// The CBC chain of this exchange: the IV of its next message.
    iv: [u8; 16],
    /// Where it stands.
    pub state: QmState,
    /// Our request waiting for an answer (QM1 as initiator, QM2 as responder).
    pub retransmit: Option<Retransmit>,
    /// Our last answer, for retransmitted requests (QM2 as responder, QM3 as initiator).
    pub reply: Option<StoredReply>,
    /// The `initiate` requests it serves (several when they asked for the same traffic while it ran).
    pub requests: Vec<RequestId>,
    /// The traffic it negotiates for (ours as initiator, the peer's proposal as responder), from our side.
    pub selector: Selector,
    /// When a finished exchange is forgotten (its stored reply with it).
    pub forget_at: Option<Instant>,
    /// Our inbound SPI while the exchange runs (reserved so that no other exchange picks it).
    pub spi_in: u32,
    /// When it began (QM1 sent or received): a pair for the same traffic that came up after this moment was
    /// negotiated at the same time (a collision), not before it.
    pub started: Instant,
}

/// Quick Mode state.
pub(crate) enum QmState {
    /// Initiator: QM1 sent, waiting for QM2.
    WaitReply(Box<WaitReply>),
    /// Responder: QM2 sent, waiting for QM3; the SA pair is ready but not installed before QM3 proves the
    /// initiator has it too.
    WaitCommit(Box<NewChild>),
    /// Finished (kept only to answer retransmissions).
    Done,
}

/// The bodies of IDci and IDcr.
type IdPair = (Vec<u8>, Vec<u8>);

/// What the initiator remembers between QM1 and QM2.
pub(crate) struct WaitReply {
    offer: SaRepr,
    ni: Vec<u8>,
    dh: Option<DhKeyPair>,
    spi_in: [u8; 4],
    ids: Option<IdPair>,
    selector: Selector,
}

/// A negotiated SA pair, before it is handed to the endpoint.
pub(crate) struct NewChild {
    /// Keys and description.
    pub keys: ChildSaKeys,
    /// Negotiated lifetime.
    pub lifetime: Duration,
    /// Ni_b and Nr_b, which HASH(3) covers.
    pub nonces: (Vec<u8>, Vec<u8>),
}

/// What a message did to a Quick Mode.
pub(crate) enum QmStep {
    /// Not for this state, nothing changed; why.
    Drop(String),
    /// Handled (a duplicate answered, or the exchange went on).
    Continue,
    /// The SA pair is established.
    ChildUp(Box<NewChild>),
    /// The exchange failed; why, and the notification for the peer.
    Failed(String, Option<u16>),
}

/// Why a peer's QM1 was refused.
pub(crate) struct QmRefusal {
    /// In words.
    pub reason: String,
    /// Notification for the peer.
    pub notify: u16,
    /// Whether it is a decryption/HASH problem (dropped silently and counted) rather than a refusal.
    pub bad_hash: bool,
}

impl QuickMode {
    /// The earliest deadline of this exchange.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.retransmit.as_ref().map(|r| r.deadline), self.forget_at].into_iter().flatten().min()
    }

    /// Whether we started this exchange and wait for the peer's answer.
    pub fn is_waiting_for_reply(&self) -> bool {
        matches!(self.state, QmState::WaitReply(_))
    }

    /// Whether it is the responder's, QM2 sent and QM3 not yet read.
    pub fn is_waiting_for_commit(&self) -> bool {
        matches!(self.state, QmState::WaitCommit(_))
    }

    /// Starts a Quick Mode as initiator: sends QM1 offering the rule's ESP transforms with our inbound SPI, and
    /// IDs for the two hosts that carry `selector`'s protocol and ports (RFC 2407 §4.6.2).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        cx: &mut Ctx<'_>,
        sa: &SaCore,
        est: &Established,
        rule: &Rule,
        msg_id: u32,
        spi_in: [u8; 4],
        selector: Selector,
        requests: Vec<RequestId>,
    ) -> Result<QuickMode, String> {
        let pfs = rule.pfs.then_some(est.suite.group);
        let natt = nat_t(sa);
        let encap = natt.map_or(encap_mode::TRANSPORT, |v| v.udp_transport());
        let offer = quick_mode_offer(
            &rule.esp_offer(),
            spi_in,
            pfs,
            rule.quick_mode_lifetime,
            rule.quick_mode_lifetime_kb,
            encap,
        );
        let ni = cx.nonce();
        let dh = match pfs {
            Some(g) => Some(DhKeyPair::generate(g, cx.rng).map_err(|e| format!("DH: {e}"))?),
            None => None,
        };
        let id_ci = emit_vec(&IdRepr {
            protocol: selector.protocol,
            port: selector.local_port,
            ..IdRepr::from_ip(sa.local.ip())
        });
        let id_cr = emit_vec(&IdRepr {
            protocol: selector.protocol,
            port: selector.remote_port,
            ..IdRepr::from_ip(sa.peer.ip())
        });
        let ke = dh.as_ref().map(|d| d.public_value().to_vec());
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::SA, &offer), (payload::NONCE, &ni)];
        if let Some(ke) = &ke {
            payloads.push((payload::KE, ke));
        }
        payloads.push((payload::ID, &id_ci));
        payloads.push((payload::ID, &id_cr));
        let oa = [NatOaRepr { address: sa.local.ip() }, NatOaRepr { address: sa.peer.ip() }];
        if let Some(v) = natt {
            payloads.extend(oa.iter().map(|a| (v.nat_oa_payload(), a as &dyn Emit)));
        }
        let hash = est.suite.hash;
        let skeyid_a = est.keys.skeyid_a.expose();
        let mid_b = msg_id.to_be_bytes();
        let f = |rest: &[u8]| prf(hash, skeyid_a, &[&mid_b, rest]);
        let crypt = Crypt {
            cipher: est.suite.cipher,
            key: est.keys.ka.expose(),
            iv: exchange_iv(hash, &est.last_block, msg_id),
        };
        let (msg, iv) =
            build_encrypted(sa.header(exchange::QUICK_MODE, msg_id), Some((hash.output_len(), &f)), &payloads, &crypt)
                .map_err(|e| format!("cannot build QM1: {e}"))?;
        cx.send(sa.local, sa.peer, msg.clone());
        Ok(QuickMode {
            msg_id,
            iv,
            state: QmState::WaitReply(Box::new(WaitReply {
                offer,
                ni,
                dh,
                spi_in,
                ids: Some((id_ci, id_cr)),
                selector,
            })),
            retransmit: Some(Retransmit::new(msg, cx.now, cx.timing.retransmit_initial)),
            reply: None,
            requests,
            selector,
            forget_at: None,
            spi_in: u32::from_be_bytes(spi_in),
            started: cx.now,
        })
    }

    /// Answers a peer's QM1 (`datagram` cut to the header's length): checks that the traffic its IDs ask for is
    /// governed by a rule this Main Mode SA may serve (`mm_rule`, or one that authenticates alike), chooses a
    /// transform under that rule, sends QM2.
    #[allow(clippy::too_many_arguments)]
    pub fn respond(
        cx: &mut Ctx<'_>,
        sa: &SaCore,
        est: &Established,
        mm_rule: &Rule,
        hdr: &Header,
        datagram: &[u8],
        spi_in: [u8; 4],
    ) -> Result<QuickMode, QmRefusal> {
        let hash = est.suite.hash;
        let bad = |reason: String| QmRefusal { reason, notify: notify::INVALID_HASH_INFORMATION, bad_hash: true };
        let crypt = Crypt {
            cipher: est.suite.cipher,
            key: est.keys.ka.expose(),
            iv: exchange_iv(hash, &est.last_block, hdr.message_id),
        };
        let (plain, iv) = decrypt_body(datagram, &crypt).map_err(|e| bad(e.to_string()))?;
        let c = collect(hdr.next_payload, &plain)
            .map_err(|e| bad(format!("QM1 did not decrypt to valid payloads: {e}")))?;
        let (hash1, covered) = after_first_hash(&plain, &c).map_err(|e| bad(e.to_string()))?;
        let expect = prf(hash, est.keys.skeyid_a.expose(), &[&hdr.message_id.to_be_bytes(), covered]);
        if !verify_mac(expect.as_bytes(), hash1) {
            return Err(bad("HASH(1) of QM1 does not verify".into()));
        }
        let refuse = |reason: String, notify: u16| QmRefusal { reason, notify, bad_hash: false };
        let ([sa_body], [ni]) = (c.sa.as_slice(), c.nonce.as_slice()) else {
            return Err(refuse("QM1 lacks its SA or NONCE payload".into(), notify::PAYLOAD_MALFORMED));
        };
        check_nonce(ni).map_err(|r| refuse(r, notify::PAYLOAD_MALFORMED))?;
        let natt = nat_t(sa);
        let peer_oa = read_nat_oa(&c).map_err(|r| refuse(r, notify::PAYLOAD_MALFORMED))?;
        // With a NAT, the peer's IDs may name the addresses as it knows them, which its NAT-OA announced.
        let oa_of = |i: usize| peer_oa.filter(|_| natt.is_some()).map(|oa| oa[i]);
        let initiators = [Some(sa.peer.ip()), oa_of(0)];
        let responders = [Some(sa.local.ip()), oa_of(1)];
        let (ids, selector) =
            check_peer_ids(&c, &initiators, &responders).map_err(|r| refuse(r, notify::INVALID_ID_INFORMATION))?;
        let policy: &Policy = cx.policy;
        let rule = quick_mode_rule(policy, mm_rule, sa.local.ip(), sa.peer.ip(), &selector)
            .map_err(|r| refuse(r, notify::INVALID_ID_INFORMATION))?;
        let sel =
            choose_quick_mode(sa_body, rule.minimum_strength, rule.pfs, spi_in, natt.is_some()).map_err(|why| {
                let mut reason = format!(
                    "no Quick Mode proposal of the peer meets rule '{}' (level {}): {}",
                    rule.name,
                    rule.minimum_strength,
                    why.join("; ")
                );
                if let Some(hint) = windows_default_esp_hint(&why, rule.minimum_strength) {
                    reason.push_str(hint);
                }
                refuse(reason, notify::NO_PROPOSAL_CHOSEN)
            })?;
        let (dh, g_qm) = match (sel.choice.pfs, c.ke.as_slice()) {
            (Some(g), [ke]) => {
                let dh = DhKeyPair::generate(g, cx.rng)
                    .map_err(|e| refuse(format!("DH: {e}"), notify::INVALID_KEY_INFORMATION))?;
                let s = dh.agree(ke).map_err(|e| {
                    refuse(
                        format!("the peer's PFS key exchange value is invalid: {e}"),
                        notify::INVALID_KEY_INFORMATION,
                    )
                })?;
                (Some(dh), Some(s))
            }
            (Some(g), _) => {
                return Err(refuse(
                    format!("the chosen transform asks for PFS with {g} but QM1 carries no single KE"),
                    notify::INVALID_KEY_INFORMATION,
                ))
            }
            (None, []) => (None, None),
            (None, _) => {
                return Err(refuse("QM1 carries a KE payload but no PFS group".into(), notify::INVALID_KEY_INFORMATION))
            }
        };
        let nr = cx.nonce();
        let ke = dh.as_ref().map(|d| d.public_value().to_vec());
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::SA, &sel.reply), (payload::NONCE, &nr)];
        if let Some(ke) = &ke {
            payloads.push((payload::KE, ke));
        }
        if let Some((ci, cr)) = &ids {
            payloads.push((payload::ID, ci));
            payloads.push((payload::ID, cr));
        }
        // A lifetime of ours shorter than the proposal is announced: the echoed transform must stay unchanged.
        let lowered = Lowered::against(
            sel.choice.lifetime_s,
            sel.choice.lifetime_kb,
            rule.quick_mode_lifetime,
            rule.quick_mode_lifetime_kb,
        );
        let responder_lifetime = lowered.any().then(|| lowered.notify(spi_in));
        if let Some(n) = &responder_lifetime {
            payloads.push((payload::NOTIFY, n));
        }
        let oa = [NatOaRepr { address: sa.peer.ip() }, NatOaRepr { address: sa.local.ip() }];
        if let Some(v) = natt {
            payloads.extend(oa.iter().map(|a| (v.nat_oa_payload(), a as &dyn Emit)));
        }
        let mid_b = hdr.message_id.to_be_bytes();
        let skeyid_a = est.keys.skeyid_a.expose();
        let f = |rest: &[u8]| prf(hash, skeyid_a, &[&mid_b, ni, rest]);
        let crypt = Crypt { cipher: est.suite.cipher, key: est.keys.ka.expose(), iv };
        let (msg, iv) = build_encrypted(
            sa.header(exchange::QUICK_MODE, hdr.message_id),
            Some((hash.output_len(), &f)),
            &payloads,
            &crypt,
        )
        .map_err(|e| refuse(format!("cannot build QM2: {e}"), notify::PAYLOAD_MALFORMED))?;
        let encapsulation = natt.map(|_| encapsulation(sa, Role::Responder, peer_oa));
        let keys = ChildParams { role: Role::Responder, spi_in, spi_out: sel.peer_spi, selector, encapsulation };
        let child = new_child(sa, est, rule, &keys, &sel.choice, g_qm.as_ref(), ni, &nr);
        cx.send(sa.local, sa.peer, msg.clone());
        Ok(QuickMode {
            msg_id: hdr.message_id,
            iv,
            state: QmState::WaitCommit(Box::new(child)),
            retransmit: Some(Retransmit::new(msg.clone(), cx.now, cx.timing.retransmit_initial)),
            reply: Some(StoredReply { request_digest: request_digest(datagram), reply: msg }),
            requests: Vec::new(),
            selector,
            forget_at: None,
            spi_in: u32::from_be_bytes(spi_in),
            started: cx.now,
        })
    }

    /// Handles a later message of this exchange (QM2 as initiator, QM3 as responder).
    pub fn handle(
        &mut self,
        cx: &mut Ctx<'_>,
        sa: &SaCore,
        est: &Established,
        hdr: &Header,
        datagram: &[u8],
    ) -> QmStep {
        if let Some(r) = &self.reply {
            if r.request_digest == request_digest(datagram) {
                cx.stats.duplicates_answered += 1;
                cx.send(sa.local, sa.peer, r.reply.clone());
                return QmStep::Continue;
            }
        }
        let state = std::mem::replace(&mut self.state, QmState::Done);
        match state {
            QmState::WaitReply(w) => self.on_qm2(cx, sa, est, hdr, datagram, w),
            QmState::WaitCommit(child) => self.on_qm3(cx, est, hdr, datagram, child),
            QmState::Done => QmStep::Drop("the Quick Mode is already complete".into()),
        }
    }

    fn on_qm2(
        &mut self,
        cx: &mut Ctx<'_>,
        sa: &SaCore,
        est: &Established,
        hdr: &Header,
        datagram: &[u8],
        w: Box<WaitReply>,
    ) -> QmStep {
        let hash = est.suite.hash;
        let crypt = Crypt { cipher: est.suite.cipher, key: est.keys.ka.expose(), iv: self.iv };
        let restore = |this: &mut Self, w: Box<WaitReply>, why: String| {
            this.state = QmState::WaitReply(w);
            QmStep::Drop(why)
        };
        let (plain, iv) = match decrypt_body(datagram, &crypt) {
            Ok(x) => x,
            Err(e) => return restore(self, w, e.to_string()),
        };
        let c = match collect(hdr.next_payload, &plain) {
            Ok(c) => c,
            Err(e) => return restore(self, w, format!("QM2 did not decrypt to valid payloads: {e}")),
        };
        let (hash2, covered) = match after_first_hash(&plain, &c) {
            Ok(x) => x,
            Err(e) => return restore(self, w, e.to_string()),
        };
        let expect = prf(hash, est.keys.skeyid_a.expose(), &[&self.msg_id.to_be_bytes(), &w.ni, covered]);
        if !verify_mac(expect.as_bytes(), hash2) {
            return restore(self, w, "HASH(2) of QM2 does not verify".into());
        }
        let ([sa_body], [nr]) = (c.sa.as_slice(), c.nonce.as_slice()) else {
            return QmStep::Failed("QM2 lacks its SA or NONCE payload".into(), Some(notify::PAYLOAD_MALFORMED));
        };
        if let Err(r) = check_nonce(nr) {
            return QmStep::Failed(r, Some(notify::PAYLOAD_MALFORMED));
        }
        let peer_oa = match read_nat_oa(&c) {
            Ok(oa) => oa,
            Err(r) => return QmStep::Failed(r, Some(notify::PAYLOAD_MALFORMED)),
        };
        let (mut choice, spi_out) = match accept_quick_mode_reply(sa_body, &w.offer) {
            Ok(x) => x,
            Err(e) => {
                return QmStep::Failed(
                    format!("the peer's Quick Mode answer is unacceptable: {e}"),
                    Some(notify::BAD_PROPOSAL_SYNTAX),
                )
            }
        };
        if let Some((ci, cr)) = &w.ids {
            if let [a, b] = c.id.as_slice() {
                // Through a NAT, a responder may answer with the addresses it sees (strongSwan does: "changing
                // received traffic selectors due to NAT"), which its NAT-OA payloads name.
                let seen = |i: usize| peer_oa.filter(|_| nat_t(sa).is_some()).map(|oa| oa[i]);
                if !same_id_or_natted(ci, a, seen(0)) || !same_id_or_natted(cr, b, seen(1)) {
                    return QmStep::Failed(
                        "the peer answered with other Quick Mode IDs than we proposed".into(),
                        Some(notify::INVALID_ID_INFORMATION),
                    );
                }
            } else if !c.id.is_empty() {
                return QmStep::Failed(
                    "QM2 carries an odd number of ID payloads".into(),
                    Some(notify::INVALID_ID_INFORMATION),
                );
            }
        }
        // RFC 2407 §4.6.3.1: the responder's shorter lifetime binds us too.
        match Lowered::from_notifies(&c.notify) {
            Ok(Some(l)) => {
                tracing::info!(
                    peer = %sa.peer,
                    "the peer lowered the Quick Mode lifetime (RESPONDER-LIFETIME): {}",
                    [l.seconds.map(|s| format!("{s}s")), l.kilobytes.map(|k| format!("{k}KB"))]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                l.apply(&mut choice.lifetime_s, &mut choice.lifetime_kb);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(peer = %sa.peer, "ignored a RESPONDER-LIFETIME notification: {e}"),
        }
        let g_qm = match (&w.dh, c.ke.as_slice()) {
            (Some(dh), [ke]) => match dh.agree(ke) {
                Ok(s) => Some(s),
                Err(e) => {
                    return QmStep::Failed(
                        format!("the peer's PFS key exchange value is invalid: {e}"),
                        Some(notify::INVALID_KEY_INFORMATION),
                    )
                }
            },
            (Some(_), _) => {
                return QmStep::Failed(
                    "we asked for PFS but QM2 carries no single KE".into(),
                    Some(notify::INVALID_KEY_INFORMATION),
                )
            }
            (None, []) => None,
            (None, _) => {
                return QmStep::Failed(
                    "QM2 carries a KE payload but we did not ask for PFS".into(),
                    Some(notify::INVALID_KEY_INFORMATION),
                )
            }
        };
        // The rule in force when QM1 was sent is the one in the child; the endpoint passes it through `sa.rule`.
        let Some(rule) = cx.policy.rule(&sa.rule).cloned() else {
            return QmStep::Failed(format!("rule '{}' no longer exists", sa.rule), None);
        };
        let encapsulation = nat_t(sa).map(|_| encapsulation(sa, Role::Initiator, peer_oa));
        let keys =
            ChildParams { role: Role::Initiator, spi_in: w.spi_in, spi_out, selector: w.selector, encapsulation };
        let child = new_child(sa, est, &rule, &keys, &choice, g_qm.as_ref(), &w.ni, nr);
        let hash3 = prf(hash, est.keys.skeyid_a.expose(), &[&[0u8], &self.msg_id.to_be_bytes(), &w.ni, nr]);
        let hash3 = hash3.as_bytes().to_vec();
        let crypt = Crypt { cipher: est.suite.cipher, key: est.keys.ka.expose(), iv };
        let msg = match build_encrypted(
            sa.header(exchange::QUICK_MODE, self.msg_id),
            None,
            &[(payload::HASH, &hash3)],
            &crypt,
        ) {
            Ok((m, last)) => {
                self.iv = last;
                m
            }
            Err(e) => return QmStep::Failed(format!("cannot build QM3: {e}"), None),
        };
        cx.send(sa.local, sa.peer, msg.clone());
        self.retransmit = None;
        self.reply = Some(StoredReply { request_digest: request_digest(datagram), reply: msg });
        self.forget_at = Some(cx.now + cx.timing.keep_reply);
        QmStep::ChildUp(Box::new(child))
    }

    fn on_qm3(
        &mut self,
        cx: &mut Ctx<'_>,
        est: &Established,
        hdr: &Header,
        datagram: &[u8],
        child: Box<NewChild>,
    ) -> QmStep {
        let crypt = Crypt { cipher: est.suite.cipher, key: est.keys.ka.expose(), iv: self.iv };
        let verified = decrypt_body(datagram, &crypt).map_err(|e| e.to_string()).and_then(|(plain, _)| {
            let c = collect(hdr.next_payload, &plain).map_err(|e| e.to_string())?;
            let (hash3, covered) = after_first_hash(&plain, &c).map_err(|e| e.to_string())?;
            if !covered.is_empty() {
                return Err("QM3 carries payloads after HASH(3)".to_string());
            }
            let (ni, nr) = (child.nonces.0.as_slice(), child.nonces.1.as_slice());
            let expect = prf(est.suite.hash, est.keys.skeyid_a.expose(), &[&[0u8], &self.msg_id.to_be_bytes(), ni, nr]);
            if verify_mac(expect.as_bytes(), hash3) {
                Ok(())
            } else {
                Err("HASH(3) of QM3 does not verify".to_string())
            }
        });
        match verified {
            Ok(()) => {
                self.retransmit = None;
                self.forget_at = Some(cx.now + cx.timing.keep_reply);
                QmStep::ChildUp(child)
            }
            Err(why) => {
                self.state = QmState::WaitCommit(child);
                QmStep::Drop(why)
            }
        }
    }
}

/// Who we are in a Quick Mode and what it agreed besides the transform.
#[derive(Clone, Copy)]
struct ChildParams {
    role: Role,
    spi_in: [u8; 4],
    spi_out: [u8; 4],
    selector: Selector,
    encapsulation: Option<UdpEncapsulation>,
}

/// The NAT-T version to use in this SA's Quick Modes: `Some` when Main Mode found a NAT (which it can only with
/// NAT-T negotiated), `None` for plain transport.
fn nat_t(sa: &SaCore) -> Option<super::vendor::NatTVersion> {
    sa.peer_vendors.nat_t.filter(|_| sa.nat.detected())
}

/// The peer's two NAT-OA payloads (NAT-OAi, NAT-OAr), if it sent them. `Err` for a malformed one or another count.
/// Whether the peer's echo `got` of a Quick Mode ID we sent is that ID, or, through a NAT, the same single-address
/// ID (protocol and port unchanged) naming `natted`, the address the peer's NAT-OA gives for that side.
fn same_id_or_natted(sent: &[u8], got: &[u8], natted: Option<IpAddr>) -> bool {
    if sent == got {
        return true;
    }
    let (Some(addr), Some(head), Some(sent_head)) = (natted, got.get(..4), sent.get(..4)) else {
        return false;
    };
    let (kind, octets) = match addr {
        IpAddr::V4(a) => (id_type::IPV4_ADDR, a.octets().to_vec()),
        IpAddr::V6(a) => (id_type::IPV6_ADDR, a.octets().to_vec()),
    };
    head[0] == kind && head[1..] == sent_head[1..] && got.get(4..) == Some(octets.as_slice())
}

fn read_nat_oa(c: &Collected<'_>) -> Result<Option<[IpAddr; 2]>, String> {
    match c.nat_oa.as_slice() {
        [] => Ok(None),
        [i, r] => {
            let parse = |b: &[u8]| NatOaPayload::parse(b).map(|p| p.address).map_err(|e| format!("NAT-OA: {e}"));
            Ok(Some([parse(i)?, parse(r)?]))
        }
        other => Err(format!("{} NAT-OA payloads (two expected: NAT-OAi and NAT-OAr)", other.len())),
    }
}

/// How the SA pair's ESP travels through the NAT: between the SA's UDP ports, with the addresses the peer's
/// NAT-OA payloads name when they differ from the ones in use (`we` is our role: NAT-OAi is the initiator's).
fn encapsulation(sa: &SaCore, we: Role, peer_oa: Option<[IpAddr; 2]>) -> UdpEncapsulation {
    let (peer_original, local_as_seen_by_peer) = match (peer_oa, we) {
        (None, _) => (None, None),
        (Some([i, r]), Role::Responder) => (Some(i), Some(r)),
        (Some([i, r]), Role::Initiator) => (Some(r), Some(i)),
    };
    UdpEncapsulation {
        local_port: sa.local.port(),
        remote_port: sa.peer.port(),
        peer_original: peer_original.filter(|a| *a != sa.peer.ip()),
        local_as_seen_by_peer: local_as_seen_by_peer.filter(|a| *a != sa.local.ip()),
    }
}

/// The lifetime (time, kilobytes) of an SA pair: the shorter of the chosen proposal's and the rule's (the responder
/// may lower it, RFC 2407 §4.5.4). AuthIP's Quick Mode uses the same rule.
pub(crate) fn pair_lifetimes(rule: &Rule, choice: &QuickModeChoice) -> (Duration, u64) {
    let lifetime = choice
        .lifetime_s
        .map_or(rule.quick_mode_lifetime, |s| rule.quick_mode_lifetime.min(Duration::from_secs(s.max(60))));
    let lifetime_kb =
        choice.lifetime_kb.map_or(rule.quick_mode_lifetime_kb, |k| rule.quick_mode_lifetime_kb.min(k.max(1)));
    (lifetime, lifetime_kb)
}

#[allow(clippy::too_many_arguments)]
fn new_child(
    sa: &SaCore,
    est: &Established,
    rule: &Rule,
    p: &ChildParams,
    choice: &QuickModeChoice,
    g_qm: Option<&Secret>,
    ni: &[u8],
    nr: &[u8],
) -> NewChild {
    let ChildParams { role, spi_in, spi_out, selector, encapsulation } = *p;
    let t: EspTransform = choice.transform;
    let len = t.keymat_len();
    let hash = est.suite.hash;
    let d = est.keys.skeyid_d.expose();
    let g = g_qm.map(|s| s.expose());
    let k_in = keymat(hash, d, g, protocol::ESP, &spi_in, ni, nr, len);
    let k_out = keymat(hash, d, g, protocol::ESP, &spi_out, ni, nr, len);
    let split = t.cipher.keymat_len();
    let (enc_in, int_in) = k_in.expose().split_at(split);
    let (enc_out, int_out) = k_out.expose().split_at(split);
    let (lifetime, lifetime_kb) = pair_lifetimes(rule, choice);
    NewChild {
        keys: ChildSaKeys {
            info: QuickModeSaInfo {
                rule: rule.name.clone(),
                local: sa.local,
                peer: sa.peer,
                role,
                spi_in: u32::from_be_bytes(spi_in),
                spi_out: u32::from_be_bytes(spi_out),
                transform: t,
                pfs_group: choice.pfs.map(DhGroup::id),
                lifetime_left: lifetime,
                lifetime_kb,
                selector,
                encapsulation,
            },
            encryption_key_in: Secret::from_slice(enc_in),
            integrity_key_in: Secret::from_slice(int_in),
            encryption_key_out: Secret::from_slice(enc_out),
            integrity_key_out: Secret::from_slice(int_out),
        },
        lifetime,
        nonces: (ni.to_vec(), nr.to_vec()),
    }
}

/// Checks the peer's QM IDs (RFC 2409 §5.5): absent (the IKE addresses and all traffic are meant), or IDci
/// naming the initiator's address and IDcr ours, each a single host (transport mode), with one protocol (0 =
/// any) and each a port (0 = any; only with a protocol). Returns the ID bodies to echo and the traffic they ask
/// for, from our side: IDcr's port is ours, IDci's the peer's.
fn check_peer_ids(
    c: &Collected<'_>,
    initiator: &[Option<IpAddr>],
    responder: &[Option<IpAddr>],
) -> Result<(Option<IdPair>, Selector), String> {
    match c.id.as_slice() {
        [] => Ok((None, Selector::ANY)),
        [ci, cr] => {
            let (pi, port_i) = check_host_id(ci, initiator, "IDci")?;
            let (pr, port_r) = check_host_id(cr, responder, "IDcr")?;
            if pi != pr {
                return Err(format!(
                    "IDci names {} but IDcr {}: the two IDs of a transport-mode SA must name the same protocol",
                    protocol_name(pi),
                    protocol_name(pr)
                ));
            }
            let selector = Selector { protocol: pi, local_port: port_r, remote_port: port_i };
            Ok((Some((ci.to_vec(), cr.to_vec())), selector))
        }
        other => Err(format!("QM1 carries {} ID payloads (0 or 2 allowed)", other.len())),
    }
}

/// The rule a peer's Quick Mode runs under: the one that governs the traffic its IDs ask for, which must
/// negotiate, contain all of that traffic, and authenticate like the Main Mode SA's rule. `Err` says in words
/// which field of which rule excludes the proposal.
pub(crate) fn quick_mode_rule<'p>(
    policy: &'p Policy,
    mm_rule: &Rule,
    local: IpAddr,
    peer: IpAddr,
    selector: &Selector,
) -> Result<&'p Rule, String> {
    let asked = format!("the peer's Quick Mode IDs ask for {selector} between {peer} and {local}");
    let governing = governing_rule_flow(policy, &selector.as_flow(local, peer)).and_then(|g| policy.rules.get(g));
    if let Some(g) = governing {
        if g.action.negotiates() && rule_contains(g, selector).is_ok() {
            if g.name == mm_rule.name || same_authentication(g, mm_rule) {
                return Ok(g);
            }
            return Err(format!(
                "{asked}: rule '{}' governs that traffic, but it authenticates differently from rule '{}', under \
                 which Main Mode ran",
                g.name, mm_rule.name
            ));
        }
    }
    let why = match rule_contains(mm_rule, selector) {
        Err(field) => field,
        Ok(()) => format!("rule '{}' does not govern it", mm_rule.name),
    };
    let tail = match governing {
        Some(g) if g.name != mm_rule.name => format!(" (rule '{}', action {}, governs it)", g.name, g.action.name()),
        Some(_) => String::new(),
        None => " (no rule governs it)".to_string(),
    };
    Err(format!("{asked}: {why}{tail}"))
}

/// Checks one ID of a Quick Mode proposal: a single host among `addrs` (the first is the one the SA uses).
/// Returns its protocol and port.
pub(crate) fn check_host_id(body: &[u8], addrs: &[Option<IpAddr>], which: &str) -> Result<(u8, u16), String> {
    let id = IdPayload::parse(body).map_err(|e| format!("{which} is malformed: {e}"))?;
    if id.protocol == 0 && id.port != 0 {
        return Err(format!("{which} names port {} without a protocol", id.port));
    }
    if addrs.iter().flatten().any(|a| id_covers(&id, *a)) {
        return Ok((id.protocol, id.port));
    }
    let addr = addrs.iter().flatten().next().map_or("?".to_string(), IpAddr::to_string);
    Err(format!(
        "{which} ({}) is not the single host {addr}: transport mode protects the traffic of the two IKE hosts only",
        super::main_mode::identity_text(&id)
    ))
}

/// Whether an ID names exactly the host `addr`.
fn id_covers(id: &IdPayload<'_>, addr: IpAddr) -> bool {
    match (id.id_type, addr) {
        (id_type::IPV4_ADDR, IpAddr::V4(a)) => id.data == a.octets(),
        (id_type::IPV6_ADDR, IpAddr::V6(a)) => id.data == a.octets(),
        (id_type::IPV4_ADDR_SUBNET, IpAddr::V4(a)) => {
            id.data.get(..4) == Some(&a.octets()[..]) && id.data.get(4..) == Some(&[255u8; 4][..])
        }
        (id_type::IPV6_ADDR_SUBNET, IpAddr::V6(a)) => {
            id.data.get(..16) == Some(&a.octets()[..]) && id.data.get(16..) == Some(&[255u8; 16][..])
        }
        (id_type::IPV4_ADDR_RANGE, IpAddr::V4(a)) => {
            id.data.get(..4) == Some(&a.octets()[..]) && id.data.get(4..) == Some(&a.octets()[..])
        }
        (id_type::IPV6_ADDR_RANGE, IpAddr::V6(a)) => {
            id.data.get(..16) == Some(&a.octets()[..]) && id.data.get(16..) == Some(&a.octets()[..])
        }
        _ => false,
    }
}

/// What to change on a Windows peer whose Quick Mode proposals were all refused, when they look like Windows'
/// defaults (ESP with SHA-1 and AES-128 or 3DES, "IPsec default settings"): the administrator reads this in our
/// log, and the setting lives on the Windows side.
fn windows_default_esp_hint(why: &[String], level: StrengthLevel) -> Option<&'static str> {
    let windows_like = why.iter().any(|w| w.contains("sha1") || w.contains("3DES"));
    windows_like.then_some(match level {
        StrengthLevel::Highest => {
            ". A Windows peer proposes ESP with SHA-1 and AES-128 or 3DES by default: set its data protection (Quick Mode) to AES-GCM 256"
        }
        _ => ". A Windows peer proposes ESP with SHA-1 and AES-128 or 3DES by default: set its data protection (Quick Mode) to AES-GCM 128/192/256, or AES-CBC with SHA-256",
    })
}

#[cfg(test)]
mod tests {
    use super::same_id_or_natted;
    use std::net::IpAddr;

    fn v4(proto: u8, port: u16, a: [u8; 4]) -> Vec<u8> {
        let mut b = vec![1, proto];
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&a);
        b
    }

    #[test]
    fn a_natted_echo_of_our_id_is_accepted_only_for_the_address_the_nat_oa_names() {
        let sent = v4(6, 9100, [192, 0, 2, 10]);
        let public: IpAddr = "198.51.100.254".parse().unwrap();
        assert!(same_id_or_natted(&sent, &sent, None));
        assert!(same_id_or_natted(&sent, &v4(6, 9100, [198, 51, 100, 254]), Some(public)));
        // Without NAT-T, or another address, protocol or port: not our ID.
        assert!(!same_id_or_natted(&sent, &v4(6, 9100, [198, 51, 100, 254]), None));
        assert!(!same_id_or_natted(&sent, &v4(6, 9100, [198, 51, 100, 253]), Some(public)));
        assert!(!same_id_or_natted(&sent, &v4(17, 9100, [198, 51, 100, 254]), Some(public)));
        assert!(!same_id_or_natted(&sent, &v4(6, 9101, [198, 51, 100, 254]), Some(public)));
        // A subnet ID (type 4) naming the address is not a single-address echo.
        let mut subnet = v4(6, 9100, [198, 51, 100, 254]);
        subnet[0] = 4;
        subnet.extend_from_slice(&[255, 255, 255, 255]);
        assert!(!same_id_or_natted(&sent, &subnet, Some(public)));
        assert!(!same_id_or_natted(&sent, &[1, 6], Some(public)));
    }
}
