//! Main Mode (RFC 2409 §5, identity protection) with pre-shared keys (§5.4) or signatures (§5.1: RSA, and
//! ECDSA per RFC 4754), both roles. Six messages:
//!
//! ```text
//!  MM1  I -> R  HDR, SA, VID                 (proposals of the rule's level, per auth method)
//!  MM2  R -> I  HDR, SA [, VID]              (one transform chosen; VIDs of the extensions MM1 announced)
//!  MM3  I -> R  HDR, KE, Ni [, CR...] [, NAT-D, NAT-D]   (CR: the trusted CAs' names, signature methods only;
//!  MM4  R -> I  HDR, KE, Nr [, CR...] [, NAT-D, NAT-D]    NAT-D when both announced NAT-T, see `nat.rs`)
//!  MM5  I -> R  HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)]            (PSK)
//!               HDR*, IDii, CERT..., SIG_I [, N(INITIAL-CONTACT)]    (signatures)
//!  MM6  R -> I  HDR*, IDir, HASH_R | IDir, CERT..., SIG_R
//! ```
//!
//! When NAT-D shows a NAT, MM5 and everything after it travel between the UDP ports 4500 of the two hosts (the
//! initiator floats, the responder follows the message), behind the non-ESP marker that the endpoint adds and
//! strips.
//!
//! With signatures SKEYID = prf(Ni_b | Nr_b, g^xy), and SIG_x is the signature of HASH_x with the host's key.
//! For ECDSA, HASH_x uses the hash that the method names (SHA-256 for 9, SHA-384 for 10) whatever the
//! transform's PRF, as strongSwan computes it. The peer's certificate chain is validated by `pki` against the
//! rule's trusted CAs, its ID must be in its certificate, and its key type must be the negotiated method's.
//!
//! Each state is its own type; a message that does not fit the state is dropped and counted, a message that
//! fits but fails (bad key exchange value, HASH that does not verify) ends the negotiation with a reason.

use super::events::Role;
use super::informational::InfoKeys;
use super::message::{build_encrypted, build_plain, check_nonce, collect, decrypt_body, emit_vec, Crypt};
use super::nat;
use super::proposal::{accept_main_mode_reply, choose_main_mode, main_mode_offer, MainModeChoice};
use super::retransmit::{request_digest, Retransmit, StoredReply};
use super::sa::{Ctx, Established, SaCore};
use super::vendor::{self, PeerVendors};
use crate::crypto::dh::DhKeyPair;
use crate::crypto::keys::{auth_hash, derive_phase1, skeyid_psk, skeyid_signature, Phase1Keys};
use crate::crypto::prf::{verify_mac, Digest};
use crate::crypto::signature::method_hash;
use crate::crypto::{AuthMethod, HashAlg, MainModeSuite};
use crate::pki::{check_peer_id, dn_matches_text, CertAuth, CertError, PeerId};
use crate::policy::{Authentication, IdSpec, Rule};
use crate::wire::consts::{cert_encoding, id_type, notify, payload, protocol, DOI_IPSEC, NATT_PORT};
use crate::wire::{CertPayload, CertRepr, CertRequestRepr, Emit, Header, IdPayload, IdRepr, NotifyRepr, SaRepr};
use std::net::IpAddr;
use std::time::Duration;

/// Main Mode in progress: one variant per message we wait for.
pub(crate) enum MainMode {
    /// Initiator, MM1 sent, waiting for MM2.
    I1(WaitSa),
    /// Initiator, MM3 sent, waiting for MM4.
    I3(WaitKeI),
    /// Initiator, MM5 sent, waiting for MM6.
    I5(WaitAuthI),
    /// Responder, MM2 sent, waiting for MM3.
    R2(WaitKeR),
    /// Responder, MM4 sent, waiting for MM5.
    R4(WaitAuthR),
}

/// Initiator waiting for MM2.
pub(crate) struct WaitSa {
    offer: SaRepr,
    sai_b: Vec<u8>,
}

/// Initiator waiting for MM4.
pub(crate) struct WaitKeI {
    sai_b: Vec<u8>,
    choice: MainModeChoice,
    dh: DhKeyPair,
    ni: Vec<u8>,
}

/// Initiator waiting for MM6.
pub(crate) struct WaitAuthI {
    keyed: Keyed,
    /// IV of MM6: the last ciphertext block of MM5.
    iv: [u8; 16],
}

/// What both sides hold once the key exchange is done: everything the authentication hashes cover.
pub(crate) struct Keyed {
    sai_b: Vec<u8>,
    choice: MainModeChoice,
    keys: Phase1Keys,
    g_xi: Vec<u8>,
    g_xr: Vec<u8>,
}

/// Responder waiting for MM3.
pub(crate) struct WaitKeR {
    sai_b: Vec<u8>,
    choice: MainModeChoice,
}

/// Responder waiting for MM5.
pub(crate) struct WaitAuthR {
    keyed: Keyed,
}

/// What a message did to Main Mode.
pub(crate) enum Step {
    /// The message does not fit this state; nothing changed. The text says why (for debug logs).
    Drop(MainMode, String),
    /// Went on to the next state.
    Next(MainMode),
    /// Main Mode completed.
    Up(Box<Established>),
}

/// Why Main Mode failed, and which notification (if any) tells the peer.
pub(crate) struct Failure {
    /// In words an administrator can act on.
    pub reason: String,
    /// Notify message type to send.
    pub notify: Option<u16>,
    /// Whether this was an authentication failure (for the counters).
    pub auth: bool,
}

impl Failure {
    fn new(reason: impl Into<String>, notify: Option<u16>) -> Self {
        Failure { reason: reason.into(), notify, auth: false }
    }
    fn auth(reason: impl Into<String>) -> Self {
        Failure { reason: reason.into(), notify: Some(notify::AUTHENTICATION_FAILED), auth: true }
    }
}

impl MainMode {
    /// The state's name for `hostsec sas`.
    pub fn state_name(&self) -> &'static str {
        match self {
            MainMode::I1(_) => "mm1-sent",
            MainMode::I3(_) => "mm3-sent",
            MainMode::I5(_) => "mm5-sent",
            MainMode::R2(_) => "mm2-sent",
            MainMode::R4(_) => "mm4-sent",
        }
    }

    /// Whether this is a responder that answered MM1 and has heard nothing since.
    pub fn is_first_reply_sent(&self) -> bool {
        matches!(self, MainMode::R2(_))
    }

    /// The negotiated suite, once chosen.
    pub fn suite(&self) -> Option<MainModeSuite> {
        self.choice().map(|c| c.suite)
    }

    /// The negotiated authentication method, once chosen.
    pub fn auth(&self) -> Option<AuthMethod> {
        self.choice().map(|c| c.auth)
    }

    /// The keys that protect an Informational message from the peer while we wait for MM6: the peer has our MM5
    /// and may answer it with an error notification instead (strongSwan sends AUTHENTICATION-FAILED so).
    pub fn informational_keys(&self) -> Option<InfoKeys<'_>> {
        match self {
            MainMode::I5(s) => Some(InfoKeys { suite: s.keyed.choice.suite, keys: &s.keyed.keys, last_block: s.iv }),
            _ => None,
        }
    }

    fn choice(&self) -> Option<&MainModeChoice> {
        match self {
            MainMode::I1(_) => None,
            MainMode::I3(s) => Some(&s.choice),
            MainMode::I5(s) => Some(&s.keyed.choice),
            MainMode::R2(s) => Some(&s.choice),
            MainMode::R4(s) => Some(&s.keyed.choice),
        }
    }

    /// Starts Main Mode as initiator: sends MM1 with the rule's proposals.
    pub fn start(cx: &mut Ctx<'_>, sa: &mut SaCore, rule: &Rule) -> Result<MainMode, Failure> {
        let auths = if sa.psk_only { vec![AuthMethod::Psk] } else { auth_methods(rule) };
        let offer = main_mode_offer(&rule.main_mode_offer(), &auths, rule.main_mode_lifetime);
        let sai_b = emit_vec(&offer);
        let mut vids = vendor::ours(None);
        if sa.mamie {
            vids.push(crate::authip::consts::vendor_id::MS_MAMIE_EXISTS.to_vec());
        }
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::SA, &offer)];
        payloads.extend(vids.iter().map(|v| (payload::VENDOR_ID, v as &dyn Emit)));
        let msg = build_plain(sa.header(crate::wire::consts::exchange::IDENTITY_PROTECTION, 0), &payloads)
            .map_err(|e| Failure::new(format!("cannot build MM1: {e}"), None))?;
        send_request(cx, sa, msg);
        Ok(MainMode::I1(WaitSa { offer, sai_b }))
    }

    /// Answers MM1 as responder: chooses a proposal and sends MM2, or refuses with the reasons. MM2 carries our
    /// vendor IDs for the extensions MM1 announced (`sa.peer_vendors`, which the caller read from MM1).
    pub fn respond(
        cx: &mut Ctx<'_>,
        sa: &mut SaCore,
        rule: &Rule,
        datagram: &[u8],
        sa_body: &[u8],
    ) -> Result<MainMode, Failure> {
        let sel = choose_main_mode(sa_body, rule.minimum_strength, &auth_methods(rule)).map_err(|why| {
            let mut reason = format!("no Main Mode proposal of the peer meets rule '{}' (level {}): {}", rule.name, rule.minimum_strength, why.join("; "));
            if why.iter().any(|w| w.contains("DH group 2 ")) {
                reason.push_str(". A Windows peer proposes DH group 2 by default: set its Main Mode key exchange to DH group 14, ECDH P-256 or ECDH P-384, with SHA-256 or better and AES");
            }
            Failure::new(reason, Some(notify::NO_PROPOSAL_CHOSEN))
        })?;
        let vids = vendor::ours(Some(&sa.peer_vendors));
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::SA, &sel.reply)];
        payloads.extend(vids.iter().map(|v| (payload::VENDOR_ID, v as &dyn Emit)));
        let msg = build_plain(sa.header(crate::wire::consts::exchange::IDENTITY_PROTECTION, 0), &payloads)
            .map_err(|e| Failure::new(format!("cannot build MM2: {e}"), None))?;
        send_reply(cx, sa, datagram, msg);
        Ok(MainMode::R2(WaitKeR { sai_b: sa_body.to_vec(), choice: sel.choice }))
    }

    /// Handles the next Main Mode message (`datagram` is cut to the header's length).
    pub fn handle(
        self,
        cx: &mut Ctx<'_>,
        sa: &mut SaCore,
        rule: &Rule,
        hdr: &Header,
        datagram: &[u8],
    ) -> Result<Step, Failure> {
        let encrypted = hdr.flags & crate::wire::consts::flags::ENCRYPTION != 0;
        match self {
            MainMode::I1(s) if !encrypted => s.on_mm2(cx, sa, rule, hdr, datagram),
            MainMode::I3(s) if !encrypted => s.on_mm4(cx, sa, rule, hdr, datagram),
            MainMode::I5(s) if encrypted => s.on_mm6(cx, sa, rule, hdr, datagram),
            MainMode::R2(s) if !encrypted => s.on_mm3(cx, sa, rule, hdr, datagram),
            MainMode::R4(s) if encrypted => s.on_mm5(cx, sa, rule, hdr, datagram),
            other => {
                let why = format!(
                    "{} message does not fit state {}",
                    if encrypted { "an encrypted" } else { "a cleartext" },
                    other.state_name()
                );
                Ok(Step::Drop(other, why))
            }
        }
    }
}

impl WaitSa {
    fn on_mm2(
        self,
        cx: &mut Ctx<'_>,
        sa: &mut SaCore,
        rule: &Rule,
        hdr: &Header,
        datagram: &[u8],
    ) -> Result<Step, Failure> {
        let body = &datagram[Header::LEN..];
        let c = match collect(hdr.next_payload, body) {
            Ok(c) => c,
            Err(e) => return Ok(Step::Drop(MainMode::I1(self), e.to_string())),
        };
        let [sa_body] = c.sa.as_slice() else {
            return Ok(Step::Drop(MainMode::I1(self), "MM2 without exactly one SA payload".into()));
        };
        let choice = accept_main_mode_reply(sa_body, &self.offer).map_err(|e| {
            Failure::new(format!("the peer's Main Mode answer is unacceptable: {e}"), Some(notify::BAD_PROPOSAL_SYNTAX))
        })?;
        sa.cky_r = hdr.responder_cookie;
        sa.peer_vendors = PeerVendors::from_payloads(&c.vid);
        let dh = DhKeyPair::generate(choice.suite.group, cx.rng).map_err(|e| Failure::new(format!("DH: {e}"), None))?;
        let ni = cx.nonce();
        let ke = dh.public_value().to_vec();
        let crs = cert_requests(rule, choice.auth);
        let nat_d = sa
            .peer_vendors
            .nat_t
            .map(|v| (v.nat_d_payload(), nat::our_nat_d(choice.suite.hash, &sa.cky_i, &sa.cky_r, sa.local, sa.peer)));
        let dpd = vendor::dpd_in_key_exchange(&sa.peer_vendors, true);
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::KE, &ke), (payload::NONCE, &ni)];
        payloads.extend(crs.iter().map(|cr| (payload::CR, cr as &dyn Emit)));
        if let Some((kind, hashes)) = &nat_d {
            payloads.extend(hashes.iter().map(|h| (*kind, h as &dyn Emit)));
        }
        payloads.extend(dpd.iter().map(|v| (payload::VENDOR_ID, v as &dyn Emit)));
        let msg = build_plain(sa.header(crate::wire::consts::exchange::IDENTITY_PROTECTION, 0), &payloads)
            .map_err(|e| Failure::new(format!("cannot build MM3: {e}"), None))?;
        send_request(cx, sa, msg);
        Ok(Step::Next(MainMode::I3(WaitKeI { sai_b: self.sai_b, choice, dh, ni })))
    }
}

impl WaitKeI {
    fn on_mm4(
        self,
        cx: &mut Ctx<'_>,
        sa: &mut SaCore,
        rule: &Rule,
        hdr: &Header,
        datagram: &[u8],
    ) -> Result<Step, Failure> {
        let peer = match read_ke_nonce(hdr, datagram, "MM4") {
            Ok(p) => p,
            Err(why) => return Ok(Step::Drop(MainMode::I3(self), why)),
        };
        sa.peer_vendors.dpd |= peer.dpd;
        let keys = phase1_keys(rule, &self.choice, sa, &self.dh, &self.ni, &peer, Role::Initiator)?;
        nat_detection(sa, rule, self.choice.suite.hash, &peer)?;
        if sa.nat.detected() {
            // RFC 3947 §4: the initiator floats to port 4500 with MM5; everything after follows.
            sa.local.set_port(NATT_PORT);
            sa.peer.set_port(NATT_PORT);
        }
        let hash = auth_hash_alg(&self.choice);
        let (g_xi, ke) = (self.dh.public_value().to_vec(), peer.ke.as_slice());
        let id = local_identity(rule, self.choice.auth, sa.local.ip());
        let id_b = emit_vec(&id);
        let hash_i = auth_hash(hash, keys.skeyid.expose(), &g_xi, ke, &sa.cky_i, &sa.cky_r, &self.sai_b, &id_b);
        let proof = own_proof(rule, self.choice.auth, &hash_i, "MM5")?;
        let ic = NotifyRepr {
            doi: DOI_IPSEC,
            protocol_id: protocol::ISAKMP,
            notify_type: notify::INITIAL_CONTACT,
            spi: sa.isakmp_spi(),
            data: Vec::new(),
        };
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::ID, &id)];
        proof.push_payloads(&mut payloads);
        if sa.send_initial_contact {
            payloads.push((payload::NOTIFY, &ic));
        }
        let crypt = Crypt { cipher: self.choice.suite.cipher, key: keys.ka.expose(), iv: keys.initial_iv };
        let (msg, iv) =
            build_encrypted(sa.header(crate::wire::consts::exchange::IDENTITY_PROTECTION, 0), None, &payloads, &crypt)
                .map_err(|e| Failure::new(format!("cannot build MM5: {e}"), None))?;
        send_request(cx, sa, msg);
        let keyed = Keyed { sai_b: self.sai_b, choice: self.choice, keys, g_xi, g_xr: peer.ke };
        Ok(Step::Next(MainMode::I5(WaitAuthI { keyed, iv })))
    }
}

impl WaitAuthI {
    fn on_mm6(
        self,
        cx: &mut Ctx<'_>,
        sa: &mut SaCore,
        rule: &Rule,
        hdr: &Header,
        datagram: &[u8],
    ) -> Result<Step, Failure> {
        let Some(proof) = self.keyed.authenticate_peer(Role::Responder, self.iv, cx, sa, rule, hdr, datagram)? else {
            return Ok(Step::Drop(MainMode::I5(self), "MM6 is not a whole number of cipher blocks".into()));
        };
        sa.retransmit = None;
        sa.peer_initial_contact = proof.initial_contact;
        let Keyed { choice, keys, .. } = self.keyed;
        Ok(Step::Up(Box::new(established(cx, choice, keys, proof.last_block, proof.peer_id, proof.peer_cert, rule))))
    }
}

impl Keyed {
    /// Checks MM5 (from an initiator) or MM6 (from a responder): it must decrypt to an ID and a HASH, the HASH
    /// must be HASH_I or HASH_R over what both sides saw (RFC 2409 §5), and the ID must be one the rule accepts.
    /// `None` when the message is not even a whole number of blocks (dropped: it may be noise).
    #[allow(clippy::too_many_arguments)]
    fn authenticate_peer(
        &self,
        peer: Role,
        iv: [u8; 16],
        cx: &Ctx<'_>,
        sa: &SaCore,
        rule: &Rule,
        hdr: &Header,
        datagram: &[u8],
    ) -> Result<Option<PeerProof>, Failure> {
        let name = if peer == Role::Initiator { "MM5" } else { "MM6" };
        let crypt = Crypt { cipher: self.choice.suite.cipher, key: self.keys.ka.expose(), iv };
        let Ok((plain, last_block)) = decrypt_body(datagram, &crypt) else { return Ok(None) };
        let psk = self.choice.auth == AuthMethod::Psk;
        let c = collect(hdr.next_payload, &plain).map_err(|_| {
            Failure::auth(if psk {
                format!("{name} from the peer did not decrypt to valid payloads: the pre-shared keys of the two sides probably differ")
            } else {
                format!("{name} from the peer did not decrypt to valid payloads")
            })
        })?;
        let [id_b] = c.id.as_slice() else {
            return Err(Failure::auth(format!("{name} lacks the ID payload")));
        };
        let h = auth_hash_alg(&self.choice);
        let skeyid = self.keys.skeyid.expose();
        let expect = match peer {
            Role::Initiator => auth_hash(h, skeyid, &self.g_xi, &self.g_xr, &sa.cky_i, &sa.cky_r, &self.sai_b, id_b),
            Role::Responder => auth_hash(h, skeyid, &self.g_xr, &self.g_xi, &sa.cky_r, &sa.cky_i, &self.sai_b, id_b),
        };
        let which = if peer == Role::Initiator { "HASH_I" } else { "HASH_R" };
        let mut peer_cert = None;
        if psk {
            let [hash] = c.hash.as_slice() else {
                return Err(Failure::auth(format!("{name} lacks the HASH payload")));
            };
            if !verify_mac(expect.as_bytes(), hash) {
                return Err(Failure::auth(format!(
                    "{which} from the peer does not verify: the pre-shared keys of the two sides differ"
                )));
            }
        } else {
            peer_cert = Some(verify_signature(&self.choice, cx, rule, &c, id_b, &expect, name)?);
        }
        let peer_id = check_peer_identity(rule, id_b, sa.peer.ip())?;
        let initial_contact = c.notify.iter().any(|n| n.notify_type == notify::INITIAL_CONTACT);
        Ok(Some(PeerProof { peer_id, last_block, initial_contact, peer_cert }))
    }
}

/// What a verified MM5 or MM6 established.
struct PeerProof {
    /// The peer's identity, as text.
    peer_id: String,
    /// The last ciphertext block of the message: the next IV of the phase-1 chain.
    last_block: [u8; 16],
    /// Whether the peer said it has no other SA with us.
    initial_contact: bool,
    /// Subject and issuer of the peer's certificate (signature methods).
    peer_cert: Option<(String, String)>,
}

impl WaitKeR {
    fn on_mm3(
        self,
        cx: &mut Ctx<'_>,
        sa: &mut SaCore,
        rule: &Rule,
        hdr: &Header,
        datagram: &[u8],
    ) -> Result<Step, Failure> {
        let peer = match read_ke_nonce(hdr, datagram, "MM3") {
            Ok(p) => p,
            Err(why) => return Ok(Step::Drop(MainMode::R2(self), why)),
        };
        sa.peer_vendors.dpd |= peer.dpd;
        let dh =
            DhKeyPair::generate(self.choice.suite.group, cx.rng).map_err(|e| Failure::new(format!("DH: {e}"), None))?;
        let nr = cx.nonce();
        let keys = phase1_keys(rule, &self.choice, sa, &dh, &nr, &peer, Role::Responder)?;
        nat_detection(sa, rule, self.choice.suite.hash, &peer)?;
        let g_xr = dh.public_value().to_vec();
        let crs = cert_requests(rule, self.choice.auth);
        let nat_d = sa.peer_vendors.nat_t.map(|v| {
            (v.nat_d_payload(), nat::our_nat_d(self.choice.suite.hash, &sa.cky_i, &sa.cky_r, sa.local, sa.peer))
        });
        let dpd = vendor::dpd_in_key_exchange(&sa.peer_vendors, false);
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::KE, &g_xr), (payload::NONCE, &nr)];
        payloads.extend(crs.iter().map(|cr| (payload::CR, cr as &dyn Emit)));
        if let Some((kind, hashes)) = &nat_d {
            payloads.extend(hashes.iter().map(|h| (*kind, h as &dyn Emit)));
        }
        payloads.extend(dpd.iter().map(|v| (payload::VENDOR_ID, v as &dyn Emit)));
        let msg = build_plain(sa.header(crate::wire::consts::exchange::IDENTITY_PROTECTION, 0), &payloads)
            .map_err(|e| Failure::new(format!("cannot build MM4: {e}"), None))?;
        send_reply(cx, sa, datagram, msg);
        let keyed = Keyed { sai_b: self.sai_b, choice: self.choice, keys, g_xi: peer.ke, g_xr };
        Ok(Step::Next(MainMode::R4(WaitAuthR { keyed })))
    }
}

impl WaitAuthR {
    fn on_mm5(
        self,
        cx: &mut Ctx<'_>,
        sa: &mut SaCore,
        rule: &Rule,
        hdr: &Header,
        datagram: &[u8],
    ) -> Result<Step, Failure> {
        let k = &self.keyed;
        let Some(proof) = k.authenticate_peer(Role::Initiator, k.keys.initial_iv, cx, sa, rule, hdr, datagram)? else {
            return Ok(Step::Drop(MainMode::R4(self), "MM5 is not a whole number of cipher blocks".into()));
        };
        sa.peer_initial_contact = proof.initial_contact;
        let id = local_identity(rule, k.choice.auth, sa.local.ip());
        let id_r = emit_vec(&id);
        let h = auth_hash_alg(&k.choice);
        let hash_r = auth_hash(h, k.keys.skeyid.expose(), &k.g_xr, &k.g_xi, &sa.cky_r, &sa.cky_i, &k.sai_b, &id_r);
        let own = own_proof(rule, k.choice.auth, &hash_r, "MM6")?;
        let ic = NotifyRepr {
            doi: DOI_IPSEC,
            protocol_id: protocol::ISAKMP,
            notify_type: notify::INITIAL_CONTACT,
            spi: sa.isakmp_spi(),
            data: Vec::new(),
        };
        let mut payloads: Vec<(u8, &dyn Emit)> = vec![(payload::ID, &id)];
        own.push_payloads(&mut payloads);
        if sa.send_initial_contact {
            payloads.push((payload::NOTIFY, &ic));
        }
        let crypt = Crypt { cipher: k.choice.suite.cipher, key: k.keys.ka.expose(), iv: proof.last_block };
        let (msg, last) =
            build_encrypted(sa.header(crate::wire::consts::exchange::IDENTITY_PROTECTION, 0), None, &payloads, &crypt)
                .map_err(|e| Failure::new(format!("cannot build MM6: {e}"), None))?;
        send_reply(cx, sa, datagram, msg);
        let Keyed { choice, keys, .. } = self.keyed;
        Ok(Step::Up(Box::new(established(cx, choice, keys, last, proof.peer_id, proof.peer_cert, rule))))
    }
}

/// The peer's half of the key exchange, from MM3 or MM4.
struct KeNonce {
    ke: Vec<u8>,
    nonce: Vec<u8>,
    /// NAT-D bodies, in wire order.
    nat_d: Vec<Vec<u8>>,
    /// Whether it carries the DPD vendor ID.
    dpd: bool,
}

/// Reads MM3 or MM4: exactly one KE and one NONCE. `Err` says why the message does not fit (it is dropped).
fn read_ke_nonce(hdr: &Header, datagram: &[u8], name: &str) -> Result<KeNonce, String> {
    let c = collect(hdr.next_payload, &datagram[Header::LEN..]).map_err(|e| e.to_string())?;
    match (c.ke.as_slice(), c.nonce.as_slice()) {
        ([ke], [nonce]) => Ok(KeNonce {
            ke: ke.to_vec(),
            nonce: nonce.to_vec(),
            nat_d: c.nat_d.iter().map(|b| b.to_vec()).collect(),
            dpd: PeerVendors::from_payloads(&c.vid).dpd,
        }),
        _ => Err(format!("{name} without exactly one KE and one NONCE")),
    }
}

/// NAT detection from the peer's MM3 or MM4 (when both sides announced NAT-T): records what it found in `sa.nat`
/// and refuses, naming the setting to change, when the rule's `nat_traversal` does not allow that NAT.
fn nat_detection(sa: &mut SaCore, rule: &Rule, hash: HashAlg, peer: &KeNonce) -> Result<(), Failure> {
    if sa.peer_vendors.nat_t.is_none() {
        return Ok(());
    }
    let bodies: Vec<&[u8]> = peer.nat_d.iter().map(Vec::as_slice).collect();
    let status = nat::detect(hash, &sa.cky_i, &sa.cky_r, sa.local, sa.peer, &bodies)
        .map_err(|why| Failure::new(why, Some(notify::PAYLOAD_MALFORMED)))?;
    sa.nat = status;
    nat::check_setting(rule.nat_traversal, status, &rule.name)
        .map_err(|why| Failure::new(why, Some(notify::NO_PROPOSAL_CHOSEN)))
}

/// The phase-1 keys (RFC 2409 §5): checks the peer's nonce and KE value, computes g^xy, SKEYID =
/// prf(PSK, Ni_b | Nr_b) for pre-shared keys or prf(Ni_b | Nr_b, g^xy) for signatures, and its children. `we`
/// says which side we are, which orders the values.
fn phase1_keys(
    rule: &Rule,
    choice: &MainModeChoice,
    sa: &SaCore,
    ours: &DhKeyPair,
    our_nonce: &[u8],
    peer: &KeNonce,
    we: Role,
) -> Result<Phase1Keys, Failure> {
    check_nonce(&peer.nonce).map_err(|r| Failure::new(r, Some(notify::PAYLOAD_MALFORMED)))?;
    let g_xy = ours.agree(&peer.ke).map_err(|e| {
        Failure::new(format!("the peer's key exchange value is invalid: {e}"), Some(notify::INVALID_KEY_INFORMATION))
    })?;
    let (ni, nr, g_xi, g_xr) = match we {
        Role::Initiator => (our_nonce, peer.nonce.as_slice(), ours.public_value(), peer.ke.as_slice()),
        Role::Responder => (peer.nonce.as_slice(), our_nonce, peer.ke.as_slice(), ours.public_value()),
    };
    let h = choice.suite.hash;
    let skeyid = match choice.auth {
        AuthMethod::Psk => skeyid_psk(h, rule_psk(rule)?, ni, nr),
        AuthMethod::RsaSig | AuthMethod::EcdsaP256 | AuthMethod::EcdsaP384 => {
            skeyid_signature(h, ni, nr, g_xy.expose())
        }
    };
    Ok(derive_phase1(h, choice.suite.cipher, skeyid, g_xy.expose(), &sa.cky_i, &sa.cky_r, g_xi, g_xr))
}

fn established(
    cx: &Ctx<'_>,
    choice: MainModeChoice,
    keys: Phase1Keys,
    last_block: [u8; 16],
    peer_id: String,
    peer_cert: Option<(String, String)>,
    rule: &Rule,
) -> Established {
    // The lifetime is the shorter of the peer's proposal and ours (RFC 2407 §4.5 lets the responder lower it).
    let ours = rule.main_mode_lifetime;
    let lifetime = choice.lifetime_s.map_or(ours, |s| ours.min(Duration::from_secs(s.max(60))));
    // RFC 2407 §4.5: a proposal without a lifetime means 8 hours.
    let lowered_to = (ours.as_secs() < choice.lifetime_s.unwrap_or(28800)).then_some(ours.as_secs());
    Established {
        suite: choice.suite,
        auth: choice.auth,
        keys,
        last_block,
        expires: cx.now + lifetime,
        lowered_to,
        peer_id,
        peer_cert,
    }
}

fn send_request(cx: &mut Ctx<'_>, sa: &mut SaCore, msg: Vec<u8>) {
    sa.retransmit = Some(Retransmit::new(msg.clone(), cx.now, cx.timing.retransmit_initial));
    cx.send(sa.local, sa.peer, msg);
}

fn send_reply(cx: &mut Ctx<'_>, sa: &mut SaCore, request: &[u8], msg: Vec<u8>) {
    sa.reply = Some(StoredReply { request_digest: request_digest(request), reply: msg.clone() });
    sa.idle_deadline = Some(cx.now + cx.timing.responder_timeout);
    cx.send(sa.local, sa.peer, msg);
}

fn rule_psk(rule: &Rule) -> Result<&[u8], Failure> {
    rule.psk.as_ref().map(|s| s.expose()).ok_or_else(|| {
        Failure::new(format!("rule '{}' has no pre-shared key", rule.name), Some(notify::AUTHENTICATION_FAILED))
    })
}

/// The identity we send: the configured one; else, with a certificate, its subject (ID_DER_ASN1_DN, as the
/// certificate's DER Name so that it matches byte for byte; config checked that a `dn:` one is that subject);
/// else our address (ID_IPV4_ADDR / ID_IPV6_ADDR).
pub(crate) fn local_identity(rule: &Rule, auth: AuthMethod, local: IpAddr) -> IdRepr {
    let cert_subject = match (auth, &rule.cert_auth) {
        (AuthMethod::Psk, _) | (_, None) => None,
        (_, Some(c)) => Some(c.host.cert.subject_der.clone()),
    };
    match (&rule.local_id, cert_subject) {
        (IdSpec::Ip(a), _) => IdRepr::from_ip(*a),
        (IdSpec::Fqdn(name), _) => {
            IdRepr { id_type: id_type::FQDN, protocol: 0, port: 0, data: name.as_bytes().to_vec() }
        }
        (IdSpec::Auto | IdSpec::Dn(_), Some(dn)) => {
            IdRepr { id_type: id_type::DER_ASN1_DN, protocol: 0, port: 0, data: dn }
        }
        (IdSpec::Auto | IdSpec::Dn(_), None) => IdRepr::from_ip(local),
    }
}

/// The auth methods a rule offers (initiator, in this order) and accepts (responder): the certificate key's
/// method, PSK, or the key's method then PSK (SPEC §5).
pub(crate) fn auth_methods(rule: &Rule) -> Vec<AuthMethod> {
    let cert = rule.cert_auth.as_ref().map(|c| c.host.auth_method());
    match rule.authentication {
        Authentication::Certificate => cert.into_iter().collect(),
        Authentication::CertificateThenPsk => cert.into_iter().chain([AuthMethod::Psk]).collect(),
        Authentication::Psk | Authentication::Anonymous => vec![AuthMethod::Psk],
    }
}

/// The hash of HASH_I / HASH_R: the ECDSA method's own hash (RFC 4754 §3, as strongSwan computes it), else the
/// negotiated one.
fn auth_hash_alg(choice: &MainModeChoice) -> HashAlg {
    method_hash(choice.auth).unwrap_or(choice.suite.hash)
}

/// The rule's certificate material, which a signature method needs.
fn cert_auth(rule: &Rule) -> Result<&CertAuth, Failure> {
    rule.cert_auth.as_deref().ok_or_else(|| {
        Failure::new(format!("rule '{}' has no certificate loaded", rule.name), Some(notify::AUTHENTICATION_FAILED))
    })
}

/// CERTREQ payloads naming each trusted CA (RFC 2408 §3.10), so that the peer picks a certificate we can
/// validate; none for PSK.
fn cert_requests(rule: &Rule, auth: AuthMethod) -> Vec<CertRequestRepr> {
    match (auth, &rule.cert_auth) {
        (AuthMethod::Psk, _) | (_, None) => Vec::new(),
        (_, Some(c)) => c
            .trust
            .ca_names()
            .map(|name| CertRequestRepr { encoding: cert_encoding::X509_SIGNATURE, authority: name.to_vec() })
            .collect(),
    }
}

/// What proves our identity in MM5/MM6 after the ID: HASH_x (PSK), or our certificates and SIG_x.
enum OwnProof {
    Hash(Vec<u8>),
    Signature { certs: Vec<CertRepr>, sig: Vec<u8> },
}

impl OwnProof {
    fn push_payloads<'a>(&'a self, payloads: &mut Vec<(u8, &'a dyn Emit)>) {
        match self {
            OwnProof::Hash(h) => payloads.push((payload::HASH, h)),
            OwnProof::Signature { certs, sig } => {
                payloads.extend(certs.iter().map(|c| (payload::CERT, c as &dyn Emit)));
                payloads.push((payload::SIG, sig));
            }
        }
    }
}

fn own_proof(rule: &Rule, auth: AuthMethod, hash: &Digest, msg: &str) -> Result<OwnProof, Failure> {
    if auth == AuthMethod::Psk {
        return Ok(OwnProof::Hash(hash.as_bytes().to_vec()));
    }
    let c = cert_auth(rule)?;
    let sig = c.host.sign(hash.as_bytes()).map_err(|e| Failure::new(format!("cannot sign {msg}: {e}"), None))?;
    let certs = c
        .host
        .certificates_to_send()
        .map(|der| CertRepr { encoding: cert_encoding::X509_SIGNATURE, data: der.to_vec() })
        .collect();
    Ok(OwnProof::Signature { certs, sig })
}

/// Checks the peer's certificates and SIG payload in MM5/MM6: the first X.509 certificate is the peer's own,
/// the others are intermediates; the chain must validate against the rule's trusted CAs now, the ID must be in
/// the certificate, the key must be the negotiated method's, and SIG must verify over `expect` (HASH_I or
/// HASH_R). Returns the certificate's subject and issuer.
fn verify_signature(
    choice: &MainModeChoice,
    cx: &Ctx<'_>,
    rule: &Rule,
    c: &super::message::Collected<'_>,
    id_b: &[u8],
    expect: &Digest,
    name: &str,
) -> Result<(String, String), Failure> {
    let auth = cert_auth(rule)?;
    let cert_failure = |reason: String| Failure { reason, notify: Some(notify::INVALID_CERTIFICATE), auth: true };
    let [sig] = c.sig.as_slice() else {
        return Err(Failure::auth(format!("{name} lacks the SIG payload")));
    };
    let certs: Vec<&[u8]> = c
        .cert
        .iter()
        .filter_map(|b| CertPayload::parse(b).ok())
        .filter(|p| p.encoding == cert_encoding::X509_SIGNATURE)
        .map(|p| p.data)
        .collect();
    let Some((end_entity, intermediates)) = certs.split_first() else {
        return Err(Failure {
            reason: format!(
                "{name} from the peer carries no X.509 certificate (CERT payload of encoding 4); hostsec cannot look one up"
            ),
            notify: Some(notify::CERTIFICATE_UNAVAILABLE),
            auth: true,
        });
    };
    let Some(now) = cx.wall_clock else {
        return Err(cert_failure(
            "the wall-clock time is unknown (the daemon did not call Endpoint::set_wall_clock), so no certificate can be checked".into(),
        ));
    };
    let peer = auth
        .trust
        .validate_chain(end_entity, intermediates, now)
        .map_err(|e: CertError| cert_failure(format!("the peer's certificate is refused: {e}")))?;
    if peer.public_key.auth_method() != choice.auth {
        return Err(cert_failure(format!(
            "the peer's certificate '{}' holds a {} key, which cannot make {} signatures (the negotiated method)",
            peer.subject_dn,
            peer.public_key.description(),
            choice.auth
        )));
    }
    let id = IdPayload::parse(id_b).map_err(|e| {
        Failure::new(format!("the peer's ID payload is malformed: {e}"), Some(notify::INVALID_ID_INFORMATION))
    })?;
    check_peer_id(&peer, &PeerId::from_payload(&id)).map_err(|e| Failure {
        reason: e.to_string(),
        notify: Some(notify::INVALID_ID_INFORMATION),
        auth: true,
    })?;
    if peer.public_key.verify(expect.as_bytes(), sig).is_err() {
        let which = if name == "MM5" { "SIG_I" } else { "SIG_R" };
        return Err(Failure::auth(format!(
            "{which} from the peer does not verify with the {} key of its certificate '{}': the signature was not made \
             over this exchange by that key",
            peer.public_key.description(),
            peer.subject_dn
        )));
    }
    Ok((peer.subject_dn, peer.issuer_dn))
}

/// Checks the peer's phase-1 identity against the rule's `remote_id`; returns it as text.
fn check_peer_identity(rule: &Rule, id_b: &[u8], peer: IpAddr) -> Result<String, Failure> {
    let id = IdPayload::parse(id_b).map_err(|e| {
        Failure::new(format!("the peer's ID payload is malformed: {e}"), Some(notify::INVALID_ID_INFORMATION))
    })?;
    let text = identity_text(&id);
    let ok = match &rule.remote_id {
        IdSpec::Auto => true,
        IdSpec::Ip(a) => id_ip(&id) == Some(*a),
        IdSpec::Fqdn(name) => id.id_type == id_type::FQDN && id.data.eq_ignore_ascii_case(name.as_bytes()),
        IdSpec::Dn(dn) => id.id_type == id_type::DER_ASN1_DN && dn_matches_text(id.data, dn),
    };
    if !ok {
        return Err(Failure {
            reason: format!(
                "the peer (at {peer}) identified as {text}, but rule '{}' accepts only {}",
                rule.name, rule.remote_id
            ),
            notify: Some(notify::INVALID_ID_INFORMATION),
            auth: true,
        });
    }
    Ok(text)
}

fn id_ip(id: &IdPayload<'_>) -> Option<IpAddr> {
    match id.id_type {
        id_type::IPV4_ADDR => <[u8; 4]>::try_from(id.data).ok().map(IpAddr::from),
        id_type::IPV6_ADDR => <[u8; 16]>::try_from(id.data).ok().map(IpAddr::from),
        _ => None,
    }
}

/// An identity as text for logs and `hostsec sas`.
pub(crate) fn identity_text(id: &IdPayload<'_>) -> String {
    let printable =
        |d: &[u8]| String::from_utf8_lossy(d).chars().filter(|c| !c.is_control()).take(255).collect::<String>();
    match id.id_type {
        id_type::IPV4_ADDR | id_type::IPV6_ADDR => id_ip(id).map_or_else(|| "ip:?".into(), |a| format!("ip:{a}")),
        id_type::FQDN => format!("fqdn:{}", printable(id.data)),
        id_type::USER_FQDN => format!("user-fqdn:{}", printable(id.data)),
        id_type::DER_ASN1_DN => PeerId::Dn(id.data.to_vec()).to_string(),
        id_type::KEY_ID => format!("keyid:{}", hex::encode(id.data)),
        other => format!("id-type-{other}"),
    }
}

impl std::fmt::Debug for MainMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.state_name())
    }
}
