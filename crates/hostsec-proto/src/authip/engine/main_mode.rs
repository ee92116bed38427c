//! AuthIP Main Mode ([MS-AIPS] §3.2, §3.3): #1 and #2 negotiate the SA, the method and (Anonymous) the DH
//! values and carry the first GSS-API tokens; #3, #4, … carry the rest of the GSS-API exchange; once both sides'
//! mechanisms are complete the keys are derived and the first Quick Mode (#5/#6) proves them.

use super::payloads::{self, sort};
use super::{AuthipEngine, MmKeys, MmState, Sa, MAX_GSS_ROUNDS, MAX_SAS};
use crate::authip::consts::{auth_method, exchange, gss_flags, payload, vendor_id};
use crate::authip::gss_mech::{AnonymousMechanism, GssMechanism};
use crate::authip::kdf::AuthipKdf;
use crate::authip::key_schedule::{derive_main_mode, MainModeInputs};
use crate::authip::mm_proposal::{self, AuthipSuite};
use crate::authip::seal::SealKeys;
use crate::authip::{
    classify, AuthRepr, AuthipBody, AuthipBodyRepr, AuthipMessage, AuthipMessageRepr, CryptoClear, GssRepr,
};
use crate::crypto::dh::DhKeyPair;
use crate::ike::retransmit::{request_digest, Retransmit, StoredReply};
use crate::ike::{RequestId, Role, Selector};
use crate::policy::Rule;
use crate::wire::Emit;
use rand_core::CryptoRngCore;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// The Status a responder's failed GSS-API step is reported with: SEC_E_LOGON_DENIED (0x8009030C), the SSPI code
/// for an authentication that did not succeed ([MS-AIPS] §2.2.3.1 names no list; docs/authip.md E15).
const GSS_FAILED: u32 = 0x8009_030C;

/// Our vendor ID in AuthIP #1/#2: KEY_MODS with the AuthIP module (what Windows 7+ announces).
fn key_mods_vid() -> Vec<u8> {
    let mut v = vendor_id::KEY_MODS_PREFIX.to_vec();
    v.extend_from_slice(&vendor_id::KEY_MODS_AUTHIP.to_be_bytes());
    v
}

/// The MS NT5 ISAKMPOAKLEY version among a peer's vendor IDs (it decides the ICV length, §2.2.3.2.1).
fn nt5_version(vids: &[&[u8]]) -> Option<u32> {
    vids.iter().find_map(|v| match classify::recognise_vendor_id(v) {
        Some(classify::MsVendorId::MsNt5(version)) => Some(version),
        _ => None,
    })
}

/// A clear Main Mode message.
fn clear_message(sa: &Sa, seq: u32, first: u8, chain: Vec<u8>) -> Result<Vec<u8>, String> {
    AuthipMessageRepr {
        header: sa.header(exchange::MAIN_MODE, 0),
        body: AuthipBodyRepr::Clear { crypto: CryptoClear { seq, iv: None }, first, chain },
    }
    .to_vec()
    .map_err(|e| e.to_string())
}

/// A mechanism for `method` on our side of `role`.
fn mechanism(
    engine: &AuthipEngine,
    now: Instant,
    rule: &Rule,
    method: u16,
    role: Role,
) -> Result<Box<dyn GssMechanism>, String> {
    match method {
        auth_method::ANONYMOUS => Ok(Box::new(match role {
            Role::Initiator => AnonymousMechanism::initiator(),
            Role::Responder => AnonymousMechanism::responder(),
        })),
        auth_method::TLS => {
            let auth = rule.cert_auth.clone().ok_or("the rule has no certificate loaded")?;
            let wall = engine.wall(now).ok_or(
                "the wall-clock time is unknown (the daemon did not call Endpoint::set_wall_clock), so no certificate can be checked",
            )?;
            let m = match role {
                Role::Initiator => crate::authip::TlsMechanism::initiator(auth, rule.remote_id.clone(), wall),
                Role::Responder => crate::authip::TlsMechanism::responder(auth, rule.remote_id.clone(), wall),
            };
            Ok(Box::new(m.map_err(|e| e.0)?))
        }
        other => Err(format!("AuthIP method {other} is not supported")),
    }
}

impl AuthipEngine {
    /// Starts an AuthIP Main Mode with `peer` under `rule` (whose method [`super::rule_method`] gives), with a first
    /// Quick Mode for `selector`. `ikev1_twin` is the CKY-I of the IKEv1 Main Mode sent beside it (with
    /// MS-MamieExists), dropped if the peer answers AuthIP. Returns the CKY-I.
    #[allow(clippy::too_many_arguments)]
    pub fn initiate(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        rule: &Rule,
        local: SocketAddr,
        peer: SocketAddr,
        selector: Selector,
        requests: Vec<RequestId>,
        ikev1_twin: Option<[u8; 8]>,
    ) -> Result<[u8; 8], String> {
        let method = super::rule_method(rule).ok_or_else(|| super::refusal(Some(rule)))?;
        if self.sas.len() >= MAX_SAS {
            return Err(format!("{MAX_SAS} AuthIP Main Mode SAs exist already"));
        }
        let mut mech = mechanism(self, now, rule, method, Role::Initiator)?;
        let dh_needed = method == auth_method::ANONYMOUS;
        let offered = mm_proposal::offer_suites(rule.minimum_strength, dh_needed);
        let group = offered.first().and_then(|s| s.group);
        let dh = match group {
            Some(g) => Some(DhKeyPair::generate(g, rng).map_err(|e| format!("DH: {e}"))?),
            None => None,
        };
        let first = mech.step(None).map_err(|e| e.0)?;
        let cky_i = self.fresh_cookie(rng);
        let mut ni = vec![0u8; 32];
        rng.fill_bytes(&mut ni);
        let sa_payload = mm_proposal::offer(&offered, rule.main_mode_lifetime);
        let auth = AuthRepr::offering(&[method]);
        let vid = key_mods_vid();
        let gss = GssRepr { status: 0, flags: gss_flags::NEW_GSS_EXCHANGE, token: first.token };
        let ke = dh.as_ref().map(|d| d.public_value().to_vec());
        let mut list: Vec<(u8, &dyn Emit)> = vec![
            (payload::SA, &sa_payload),
            (payload::AUTH, &auth),
            (payload::NONCE, &ni),
            (payload::VENDOR_ID, &vid),
            (payload::GSSAPI, &gss),
        ];
        if let Some(ke) = &ke {
            list.push((payload::KE, ke));
        }
        let (first_type, chain) = payloads::build(&list)?;
        let mut sa = Sa {
            rule: rule.name.clone(),
            role: Role::Initiator,
            local,
            peer,
            cky_i,
            cky_r: [0; 8],
            state: MmState::WaitReply,
            mech,
            responder_done: false,
            gss_rounds: 1,
            offered,
            suite: None,
            lifetime: rule.main_mode_lifetime,
            ni,
            nr: Vec::new(),
            nr_qm: Vec::new(),
            dh,
            g_xy: None,
            transcript: vec![chain.clone()],
            keys: None,
            peer_auth: None,
            peer_nt5: None,
            seq: [0; 4],
            request: None,
            reply: None,
            deadline: None,
            expires: None,
            qms: BTreeMap::new(),
            pending: Some((selector, requests)),
            notify: super::notify::Reliable::default(),
            ikev1_twin,
        };
        let seq = sa.next_seq(exchange::MAIN_MODE);
        let msg = clear_message(&sa, seq, first_type, chain)?;
        sa.request = Some(Retransmit::new(msg.clone(), now, self.timing.retransmit_initial));
        let id = self.alloc_id();
        self.by_cookie.insert(cky_i, id);
        self.sas.insert(id, sa);
        self.send(local, peer, msg);
        info!(peer = %peer, rule = %rule.name, "AuthIP Main Mode #1 sent ({}; {})", super::method_name(method), super::EXPERIMENTAL);
        Ok(cky_i)
    }

    /// The peer's retry of #1 after our DoS cookie, or a DoS cookie answering our #1.
    pub(super) fn on_dos_cookie(&mut self, now: Instant, cky_i: [u8; 8], remote: SocketAddr, data: &[u8]) {
        let Ok(cookie) = <[u8; 8]>::try_from(data) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let Some(&id) = self.by_cookie.get(&cky_i) else {
            self.stats.dropped_unexpected += 1;
            return;
        };
        let Some(sa) = self.sas.get_mut(&id) else { return };
        if sa.role != Role::Initiator || sa.state != MmState::WaitReply || sa.cky_r != [0; 8] || sa.peer != remote {
            self.stats.dropped_unexpected += 1;
            return;
        }
        // #1 again, with the cookie as CKY-R ([MS-IKEE] §3.9); the payloads (and so the transcript) are unchanged.
        sa.cky_r = cookie;
        let Some((first, chain)) = sa.request.as_ref().and_then(|r| match AuthipMessage::parse(&r.message) {
            Ok(AuthipMessage { body: AuthipBody::Clear { first, chain, .. }, .. }) => Some((first, chain.to_vec())),
            _ => None,
        }) else {
            return;
        };
        let Ok(msg) = clear_message(sa, 0, first, chain) else { return };
        sa.request = Some(Retransmit::new(msg.clone(), now, self.timing.retransmit_initial));
        let (local, peer) = (sa.local, sa.peer);
        info!(peer = %peer, "AuthIP: the responder asked for a DoS cookie; #1 sent again with it");
        self.send(local, peer, msg);
    }

    /// A first message (#1) from a peer with no SA yet.
    pub(super) fn respond_first(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        msg: &AuthipMessage<'_>,
    ) {
        let h = msg.header;
        let rule = self.policy.governing_rule(local.ip(), remote.ip()).and_then(|i| self.policy.rules.get(i)).cloned();
        let Some((rule, method)) = rule.as_ref().and_then(|r| super::rule_method(r).map(|m| (r, m))) else {
            self.stats.refused += 1;
            debug!(peer = %remote, "dropped an AuthIP Main Mode: {}", super::refusal(rule.as_ref()));
            return;
        };
        if self.sas.len() >= MAX_SAS {
            self.stats.refused += 1;
            return;
        }
        // DoS protection ([MS-AIPS] §3.1.7.6, [MS-IKEE] §3.9): past the threshold of half-open SAs a first message
        // gets a stateless cookie, and only a retry carrying a valid one is answered.
        let demanding = self.dos.update(self.half_open.len());
        if self.cookies.is_none() {
            self.cookies = Some(crate::authip::dos_cookie::DosCookies::new(rng, now));
        }
        let Some(cookies) = self.cookies.as_ref() else { return };
        let retry_ok =
            h.responder_cookie != [0; 8] && cookies.verify(h.responder_cookie, h.initiator_cookie, remote, local, now);
        if h.responder_cookie != [0; 8] && !retry_ok {
            self.stats.cookies_bad += 1;
            debug!(peer = %remote, "dropped an AuthIP #1 whose DoS cookie does not verify");
            return;
        }
        if demanding && !retry_ok {
            let cookie = cookies.cookie(h.initiator_cookie, remote, local, now);
            let reply = crate::authip::dos_cookie::dos_cookie_message(h.initiator_cookie, cookie);
            self.stats.cookies_sent += 1;
            self.send(local, remote, reply);
            return;
        }
        let cky_r = if retry_ok { h.responder_cookie } else { self.fresh_cookie(rng) };
        match self.answer_first(now, rng, local, remote, datagram, msg, rule, method, cky_r) {
            Ok(id) => {
                self.by_cookie.insert(cky_r, id);
                self.half_open.insert((remote, h.initiator_cookie), id);
            }
            Err(why) => {
                self.stats.failures += 1;
                info!(peer = %remote, rule = %rule.name, "refused an AuthIP Main Mode: {why}");
                self.events.push_back(crate::ike::Event::NegotiationFailed {
                    request: None,
                    rule: Some(rule.name.clone()),
                    peer: remote,
                    phase: "main mode",
                    reason: format!("AuthIP: {why}"),
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_first(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        msg: &AuthipMessage<'_>,
        rule: &Rule,
        method: u16,
        cky_r: [u8; 8],
    ) -> Result<u64, String> {
        let AuthipBody::Clear { first, chain, .. } = msg.body else {
            return Err("#1 is not a clear message".into());
        };
        let got = sort(first, chain).map_err(|e| format!("malformed #1: {e}"))?;
        let ([sa_body], [ni], [auth]) = (got.sa.as_slice(), got.nonce.as_slice(), got.auth.as_slice()) else {
            return Err("#1 needs one SA, one nonce and one Auth payload".into());
        };
        crate::ike::message_check_nonce(ni)?;
        let offered: Vec<u16> = auth.methods().collect();
        if !offered.contains(&method) {
            let names: Vec<&str> = offered.iter().map(|m| super::method_name(*m)).collect();
            return Err(format!(
                "the peer offers [{}] and rule '{}' authenticates with {} only",
                names.join(", "),
                rule.name,
                super::method_name(method)
            ));
        }
        let dh_needed = method == auth_method::ANONYMOUS;
        let (suite, peer_life, reply_sa) =
            mm_proposal::choose(sa_body, rule.minimum_strength, dh_needed).map_err(|why| {
                format!("no Main Mode proposal meets rule '{}' (level {}): {why}", rule.name, rule.minimum_strength)
            })?;
        let (dh, g_xy) = match (suite.group, got.ke.as_slice()) {
            (Some(g), [ke]) => {
                let d = DhKeyPair::generate(g, rng).map_err(|e| format!("DH: {e}"))?;
                let s = d.agree(ke).map_err(|e| format!("the peer's KE is invalid: {e}"))?;
                (Some(d), Some(s))
            }
            (Some(g), _) => return Err(format!("the chosen proposal uses {g} but #1 carries no single KE")),
            (None, []) => (None, None),
            (None, _) => return Err("#1 carries a KE payload but its proposal has no DH group".into()),
        };
        let mut mech = mechanism(self, now, rule, method, Role::Responder)?;
        let gss_out = match got.gss.as_slice() {
            [g] => Some(mech.step(Some(g.token)).map_err(|e| e.0)?),
            [] => None,
            _ => return Err("#1 carries more than one GSS-API payload".into()),
        };
        let lifetime =
            peer_life.map_or(rule.main_mode_lifetime, |s| rule.main_mode_lifetime.min(Duration::from_secs(s.max(60))));
        let mut nr = vec![0u8; 32];
        rng.fill_bytes(&mut nr);
        let mut nr_qm = vec![0u8; 32];
        rng.fill_bytes(&mut nr_qm);
        let auth_reply = AuthRepr::offering(&[method]);
        let vid = key_mods_vid();
        let complete = gss_out.as_ref().is_some_and(|s| s.complete);
        let gss = gss_out.map(|s| GssRepr {
            status: 0,
            flags: if s.complete { gss_flags::RESPONDER_AUTH_COMPLETE } else { 0 },
            token: s.token,
        });
        let ke = dh.as_ref().map(|d| d.public_value().to_vec());
        let mut list: Vec<(u8, &dyn Emit)> = vec![
            (payload::SA, &reply_sa),
            (payload::AUTH, &auth_reply),
            (payload::NONCE, &nr),
            (payload::NONCE, &nr_qm),
            (payload::VENDOR_ID, &vid),
        ];
        if let Some(g) = &gss {
            list.push((payload::GSSAPI, g));
        }
        if let Some(ke) = &ke {
            list.push((payload::KE, ke));
        }
        let (first_type, reply_chain) = payloads::build(&list)?;
        let mut sa = Sa {
            rule: rule.name.clone(),
            role: Role::Responder,
            local,
            peer: remote,
            cky_i: msg.header.initiator_cookie,
            cky_r,
            state: if complete { MmState::WaitFirstQm } else { MmState::Gss },
            mech,
            responder_done: complete,
            gss_rounds: 1,
            offered: Vec::new(),
            suite: Some(suite),
            lifetime,
            ni: ni.to_vec(),
            nr,
            nr_qm,
            dh,
            g_xy,
            transcript: vec![chain.to_vec(), reply_chain.clone()],
            keys: None,
            peer_auth: None,
            peer_nt5: nt5_version(&got.vid),
            seq: [0; 4],
            request: None,
            reply: None,
            deadline: Some(now + self.timing.responder_timeout),
            expires: None,
            qms: BTreeMap::new(),
            pending: None,
            notify: super::notify::Reliable::default(),
            ikev1_twin: None,
        };
        if complete {
            derive_keys(&mut sa)?;
        }
        let seq = sa.next_seq(exchange::MAIN_MODE);
        let out = clear_message(&sa, seq, first_type, reply_chain)?;
        sa.reply = Some(StoredReply { request_digest: request_digest(datagram), reply: out.clone() });
        let id = self.alloc_id();
        self.sas.insert(id, sa);
        self.send(local, remote, out);
        info!(peer = %remote, rule = %rule.name, "AuthIP Main Mode #2 sent ({}, {suite}; {})", super::method_name(method), super::EXPERIMENTAL);
        Ok(id)
    }

    /// A message for an existing SA.
    pub(super) fn on_sa_message(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        remote: SocketAddr,
        datagram: &[u8],
        msg: &AuthipMessage<'_>,
    ) {
        let Some(sa) = self.sas.get(&id) else { return };
        if remote != sa.peer {
            self.stats.dropped_unexpected += 1;
            debug!(peer = %remote, "dropped an AuthIP message from another address than the SA's peer (NAT traversal is not supported by hostsec's AuthIP yet)");
            return;
        }
        if let Some(r) = sa.reply.as_ref().filter(|r| r.request_digest == request_digest(datagram)) {
            let (local, peer, reply) = (sa.local, sa.peer, r.reply.clone());
            self.stats.duplicates += 1;
            self.send(local, peer, reply);
            return;
        }
        match msg.body {
            AuthipBody::Clear { first, chain, .. } if msg.header.exchange_type == exchange::MAIN_MODE => {
                let result = self.on_clear_mm(now, rng, id, first, chain, datagram, msg.header.responder_cookie);
                if let Err(why) = result {
                    self.fail(id, &why);
                }
            }
            AuthipBody::Sealed { .. } => self.on_sealed(now, rng, id, datagram, msg),
            _ => {
                self.stats.dropped_unexpected += 1;
                debug!(peer = %remote, "dropped an AuthIP message that does not fit the SA's state");
            }
        }
    }

    /// #2 (initiator), or a GSS-API message #3.. (either side).
    #[allow(clippy::too_many_arguments)]
    fn on_clear_mm(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        first: u8,
        chain: &[u8],
        datagram: &[u8],
        cky_r: [u8; 8],
    ) -> Result<(), String> {
        let got = match sort(first, chain) {
            Ok(g) => g,
            Err(e) => {
                self.stats.dropped_malformed += 1;
                debug!("dropped a malformed AuthIP Main Mode message: {e}");
                return Ok(());
            }
        };
        let Some(sa) = self.sas.get_mut(&id) else { return Ok(()) };
        match (sa.role, sa.state) {
            (Role::Initiator, MmState::WaitReply) => {
                let ([sa_body], [nr, nr_qm], [auth]) = (got.sa.as_slice(), got.nonce.as_slice(), got.auth.as_slice())
                else {
                    return Err("#2 needs one SA, two nonces (Nr, Nr(qm)) and one Auth payload".into());
                };
                crate::ike::message_check_nonce(nr)?;
                crate::ike::message_check_nonce(nr_qm)?;
                let suite: AuthipSuite = mm_proposal::accept_reply(sa_body, &sa.offered)?;
                let method = sa.mech.method();
                if auth.methods().next() != Some(method) {
                    return Err(format!("the responder does not accept {}", super::method_name(method)));
                }
                sa.g_xy = match (&sa.dh, got.ke.as_slice()) {
                    (Some(d), [ke]) if suite.group == Some(d.group()) => {
                        Some(d.agree(ke).map_err(|e| format!("the responder's KE is invalid: {e}"))?)
                    }
                    (None, []) if suite.group.is_none() => None,
                    _ => return Err("#2's KE does not match the chosen group".into()),
                };
                sa.cky_r = cky_r;
                sa.suite = Some(suite);
                sa.nr = nr.to_vec();
                sa.nr_qm = nr_qm.to_vec();
                sa.peer_nt5 = nt5_version(&got.vid);
                sa.transcript.push(chain.to_vec());
                sa.request = None;
                sa.state = MmState::Gss;
                sa.deadline = Some(now + self.timing.responder_timeout);
                if let Some(twin) = sa.ikev1_twin.take() {
                    self.races.push_back(super::Race::AuthipWon { ikev1_cookie: twin });
                    info!(peer = %sa.peer, rule = %sa.rule, "AuthIP: the peer answered AuthIP #1, so AuthIP is used and the parallel IKEv1 Main Mode is dropped ([MS-AIPS] §3.2.4)");
                }
                self.continue_gss(now, rng, id, &got, request_digest(datagram))
            }
            (_, MmState::Gss) | (Role::Initiator, MmState::WaitFirstQm) if !got.gss.is_empty() => {
                if sa.role == Role::Initiator && sa.state == MmState::WaitFirstQm {
                    self.stats.dropped_unexpected += 1;
                    return Ok(());
                }
                if got.gss.len() != 1 || got.sa.len() + got.nonce.len() + got.ke.len() > 0 {
                    return Err("a GSS-API message must carry one GSS-API payload only".into());
                }
                sa.transcript.push(chain.to_vec());
                if sa.role == Role::Initiator {
                    // the responder's message answers our last one
                    sa.request = None;
                }
                self.continue_gss(now, rng, id, &got, request_digest(datagram))
            }
            _ => {
                self.stats.dropped_unexpected += 1;
                debug!(peer = %sa.peer, "dropped an AuthIP Main Mode message unexpected in state {}", sa.state.name());
                Ok(())
            }
        }
    }

    /// Feeds the peer's GSS-API token to our mechanism and sends what comes next: another GSS-API message, or
    /// (initiator, both sides complete) the first Quick Mode.
    fn continue_gss(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        id: u64,
        got: &payloads::Got<'_>,
        digest: [u8; 32],
    ) -> Result<(), String> {
        let Some(sa) = self.sas.get_mut(&id) else { return Ok(()) };
        sa.gss_rounds += 1;
        if sa.gss_rounds > MAX_GSS_ROUNDS {
            return Err(format!("the GSS-API exchange needs more than {MAX_GSS_ROUNDS} round trips"));
        }
        let token = got.gss.first();
        if let Some(g) = token.filter(|g| g.status != 0) {
            return Err(format!("the peer's GSS-API layer reports error {:#010x}", g.status));
        }
        let out = match (sa.role, token) {
            (Role::Initiator, Some(g)) => {
                sa.responder_done = g.has_flag(gss_flags::RESPONDER_AUTH_COMPLETE);
                Some(sa.mech.step(Some(g.token)).map_err(|e| e.0)?)
            }
            (Role::Initiator, None) => {
                // #2 without a GSS-API payload (the responder sends GSS_ID and waits for our first token).
                None
            }
            (Role::Responder, Some(g)) => match sa.mech.step(Some(g.token)) {
                Ok(step) => Some(step),
                Err(e) => {
                    // §3.1: a responder whose GSS-API layer fails says so with a non-zero Status, so that the
                    // initiator need not wait for its retransmissions to run out.
                    let gss = GssRepr { status: GSS_FAILED, flags: 0, token: Vec::new() };
                    if let Ok((first, chain)) = payloads::build(&[(payload::GSSAPI, &gss)]) {
                        let seq = sa.next_seq(exchange::MAIN_MODE);
                        if let Ok(msg) = clear_message(sa, seq, first, chain) {
                            let (local, peer) = (sa.local, sa.peer);
                            self.send(local, peer, msg);
                        }
                    }
                    return Err(e.0);
                }
            },
            (Role::Responder, None) => return Err("a GSS-API message without a GSS-API payload".into()),
        };
        let ours_complete = out.as_ref().is_none_or(|s| s.complete) && sa.mech.session_secret().is_some();
        match sa.role {
            Role::Initiator
                if ours_complete && sa.responder_done && out.as_ref().is_none_or(|s| s.token.is_empty()) =>
            {
                derive_keys(sa)?;
                sa.state = MmState::WaitFirstQm;
                sa.deadline = None;
                let (selector, requests) = sa.pending.take().unwrap_or((Selector::ANY, Vec::new()));
                self.start_first_quick_mode(now, rng, id, selector, requests)
            }
            Role::Initiator => {
                let token = out.map(|s| s.token).unwrap_or_default();
                let gss = GssRepr { status: 0, flags: 0, token };
                let (first, chain) = payloads::build(&[(payload::GSSAPI, &gss)])?;
                sa.transcript.push(chain.clone());
                let seq = sa.next_seq(exchange::MAIN_MODE);
                let msg = clear_message(sa, seq, first, chain)?;
                sa.request = Some(Retransmit::new(msg.clone(), now, self.timing.retransmit_initial));
                let (local, peer) = (sa.local, sa.peer);
                self.send(local, peer, msg);
                Ok(())
            }
            Role::Responder => {
                let step = out.ok_or("no GSS-API step")?;
                let gss = GssRepr {
                    status: 0,
                    flags: if step.complete { gss_flags::RESPONDER_AUTH_COMPLETE } else { 0 },
                    token: step.token,
                };
                let (first, chain) = payloads::build(&[(payload::GSSAPI, &gss)])?;
                sa.transcript.push(chain.clone());
                if step.complete {
                    derive_keys(sa)?;
                    sa.state = MmState::WaitFirstQm;
                    sa.responder_done = true;
                }
                let seq = sa.next_seq(exchange::MAIN_MODE);
                let msg = clear_message(sa, seq, first, chain)?;
                sa.deadline = Some(now + self.timing.responder_timeout);
                // answers a retransmission of the message just handled
                sa.reply = Some(StoredReply { request_digest: digest, reply: msg.clone() });
                let (local, peer) = (sa.local, sa.peer);
                self.send(local, peer, msg);
                Ok(())
            }
        }
    }
}

/// Derives the Main Mode keys once the GSS-API secret exists ([MS-AIPS] §3.1.7.4).
pub(super) fn derive_keys(sa: &mut Sa) -> Result<(), String> {
    let suite = sa.suite.ok_or("no suite negotiated")?;
    let secret = sa.mech.session_secret().ok_or("the GSS-API exchange is not complete")?;
    let kdf = AuthipKdf::new(suite.hash, suite.cipher, sa.cky_i, sa.cky_r);
    let inputs = MainModeInputs {
        g_xy: sa.g_xy.as_ref().map(|s| s.expose()),
        ni: &sa.ni,
        nr: &sa.nr,
        gss_secret: secret.expose(),
    };
    let mm = derive_main_mode(&kdf, &inputs).map_err(|e| format!("key derivation: {e}"))?;
    let seal = SealKeys::new(suite.cipher, suite.hash, mm.encryption_key.clone(), mm.skeyid_a.clone(), sa.peer_nt5)
        .ok_or("no ICV length for the negotiated hash")?;
    sa.peer_auth = sa.mech.peer();
    sa.keys = Some(MmKeys { kdf, mm, seal });
    Ok(())
}
