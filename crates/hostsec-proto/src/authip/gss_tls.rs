//! The TLS mechanism of AuthIP ([MS-AIPS] method 4, §2.2.3.1): a mutual TLS handshake whose records travel in
//! GSS-API tokens, initiator = TLS client, responder = TLS server. This is how Windows does certificate
//! authentication in AuthIP (`IKEEXT_SSL`).
//!
//! **Experimental — not verified against Windows**, and undocumented by Microsoft in two places that matter:
//! the framing of the tokens and the GSS-APIsecret. The decisions are T1–T9 in `docs/authip.md`; in short: a
//! token is whole TLS records, one flight per token (T1); TLS 1.2 and 1.3 (T2); both sides present and verify a
//! certificate (T3, T4); the GSS-APIsecret is the TLS exporter with [`TLS_EXPORTER_LABEL`] (T5); no session
//! tickets or resumption (T6); the peer's identity is checked against the rule's `remote_id` (T7).
//!
//! The TLS state machine is rustls, which is sans-IO already: a peer token goes in with `read_tls` +
//! `process_new_packets`, our token comes out of `write_tls`. Certificates are not checked by rustls' own
//! verifier (web PKI rules, server names) but by the rule's [`TrustStore`](crate::pki::TrustStore), exactly as
//! the IKEv1 certificate path checks them, at the wall-clock time the caller gives; rustls only verifies the
//! handshake signatures, with its aws-lc-rs provider. Nothing here reads a clock: rustls gets the caller's time
//! through a fixed time provider. TLS randomness comes from aws-lc's generator, as every aws-lc-rs key
//! generation in hostsec does.

use super::consts::auth_method;
use super::gss_mech::{GssFailure, GssMechanism, GssPeer, GssStep};
use crate::crypto::Secret;
use crate::pki::{dn_matches_text, CertAuth, CertError, CertInfo, PeerId, ValidatedPeer};
use crate::policy::IdSpec;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::NoServerSessionStorage;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::time_provider::TimeProvider;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, Connection, DigitallySignedStruct, DistinguishedName, OtherError,
    ProtocolVersion, ServerConfig, ServerConnection, SignatureScheme, SupportedProtocolVersion,
};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// The RFC 5705 / RFC 8446 §7.5 exporter label whose output is the GSS-APIsecret of a TLS-authenticated Main
/// Mode (docs/authip.md T5). **A hostsec decision, not Microsoft's**: [MS-AIPS] says only "the GSS-API session
/// key", and what Schannel returns as the session key of a TLS context is undocumented (research notes §4.5,
/// SECPKG_ATTR_SESSION_KEY / EAP_KEY_BLOCK / KEYING_MATERIAL are the candidates). The exporter is the one
/// mechanism TLS defines for handing a secret to another protocol, is the same in TLS 1.2 (with extended master
/// secret) and 1.3, and binds the secret to this handshake; the label names AuthIP so that it can collide with no
/// other protocol's. With no context value ([`TLS_EXPORTER_CONTEXT`]) and [`TLS_SECRET_LEN`] bytes.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-MS-AIPS-GSS-API-secret";

/// The exporter's context value: none (RFC 5705 §4 distinguishes "no context" from an empty one; TLS 1.3 does
/// not). Everything the Main Mode must bind (cookies, nonces) enters SKEYID through OtherInfo already.
pub const TLS_EXPORTER_CONTEXT: Option<&[u8]> = None;

/// Length of the TLS GSS-APIsecret: 32 bytes, as long as the longest MM hash AuthIP negotiates (SHA-256) and the
/// size of a TLS 1.3 SHA-256 traffic secret.
pub const TLS_SECRET_LEN: usize = 32;

/// The largest GSS-API token taken from the peer, and produced: 64 KiB. A TLS flight is a few kilobytes (a
/// certificate chain with a handful of intermediates); a whole AuthIP message must fit UDP with IKE fragments,
/// so anything near this bound is hostile or broken.
pub const MAX_TLS_TOKEN: usize = 64 * 1024;

/// The most [`GssMechanism::step`] calls a TLS handshake may take on one side. A full handshake needs 2 on the
/// responder and 3 on the initiator (2 round trips, docs/authip.md T1), one more each after a
/// HelloRetryRequest; 8 leaves room and stops a peer that keeps the exchange going.
pub const MAX_TLS_STEPS: u32 = 8;

/// The server name the TLS client uses. rustls needs one, but it is neither sent (no SNI, T7) nor checked:
/// the peer's identity comes from the rule's `remote_id`. `.invalid` (RFC 6761) cannot name a real host.
const SERVER_NAME: &str = "authip.invalid";

/// TLS record header: content type (1), legacy version (2), length (2).
const RECORD_HEADER_LEN: usize = 5;

/// The largest TLS record body, TLS 1.2's TLSCiphertext limit (2^14 + 2048, RFC 5246 §6.2.3); TLS 1.3's is
/// smaller (2^14 + 256).
const MAX_RECORD_BODY: usize = 16_384 + 2_048;

/// Which TLS versions a [`TlsMechanism`] offers (initiator) or accepts (responder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// TLS 1.3 preferred, TLS 1.2 accepted (T2): what [`TlsMechanism::initiator`] and
    /// [`TlsMechanism::responder`] use.
    #[default]
    Tls12And13,
    /// TLS 1.2 only: for tests, and for trying a peer that mishandles TLS 1.3.
    Tls12Only,
    /// TLS 1.3 only.
    Tls13Only,
}

/// Which side of the AuthIP Main Mode a mechanism runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GssRole {
    /// The Main Mode initiator (TLS client).
    Initiator,
    /// The Main Mode responder (TLS server).
    Responder,
}

/// TLS ([MS-AIPS] method 4): a mutual TLS handshake carried in GSS-API tokens; initiator = TLS client.
///
/// After a failure the mechanism stays failed: every later step returns the same [`GssFailure`]. A TLS alert
/// that rustls queues on failure is not sent; AuthIP reports the failure in the GSS-API payload's Status and
/// its notifies, which are the state machine's.
pub struct TlsMechanism {
    role: GssRole,
    conn: Connection,
    /// Written by the certificate verifier inside rustls when the peer's chain and identity pass.
    verified: Arc<Mutex<Option<GssPeer>>>,
    steps: u32,
    /// The GSS-APIsecret and the peer, once the handshake is complete.
    outcome: Option<(Secret, GssPeer)>,
    failed: Option<GssFailure>,
}

impl std::fmt::Debug for TlsMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMechanism")
            .field("role", &self.role)
            .field("steps", &self.steps)
            .field("complete", &self.outcome.is_some())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl TlsMechanism {
    /// The initiator's side (TLS client), authenticating with `auth.host`, accepting a peer whose chain
    /// `auth.trust` validates at `now` (the caller's wall clock) and whose certificate matches `remote_id`.
    pub fn initiator(auth: Arc<CertAuth>, remote_id: IdSpec, now: SystemTime) -> Result<Self, GssFailure> {
        Self::new(GssRole::Initiator, auth, remote_id, now, TlsVersions::default())
    }

    /// The responder's side (TLS server, which requires a client certificate); otherwise as
    /// [`TlsMechanism::initiator`].
    pub fn responder(auth: Arc<CertAuth>, remote_id: IdSpec, now: SystemTime) -> Result<Self, GssFailure> {
        Self::new(GssRole::Responder, auth, remote_id, now, TlsVersions::default())
    }

    /// Either side, with a choice of TLS versions. Fails only if this host's key cannot be used for TLS.
    pub fn new(
        role: GssRole,
        auth: Arc<CertAuth>,
        remote_id: IdSpec,
        now: SystemTime,
        versions: TlsVersions,
    ) -> Result<Self, GssFailure> {
        let setup = |what: &str, e: rustls::Error| GssFailure(format!("TLS cannot be set up: {what}: {e}"));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let time: Arc<dyn TimeProvider> = Arc::new(FixedTime(unix_time(now)));
        let key = provider.key_provider.load_private_key(auth.host.tls_key_der()).map_err(|e| {
            GssFailure(format!(
                "TLS cannot use this host's private key ({}) of certificate '{}': {e}",
                auth.host.key_description(),
                auth.host.cert.subject_dn
            ))
        })?;
        let chain: Vec<CertificateDer<'static>> =
            auth.host.certificates_to_send().map(|der| CertificateDer::from(der.to_vec())).collect();
        let certified = CertifiedKey::new(chain, key);
        // HostCredentials checked this when it loaded the files, but its certificate field is public; a
        // mismatch here would only show up as the peer's refusal of our handshake signature.
        certified.keys_match().map_err(|e| {
            GssFailure(format!(
                "TLS cannot be set up: the private key does not belong to certificate '{}': {e}",
                auth.host.cert.subject_dn
            ))
        })?;
        let resolver = Arc::new(SingleCertAndKey::from(certified));
        let hints = auth.trust.ca_names().map(|name| DistinguishedName::from(name.to_vec())).collect();
        let verified = Arc::new(Mutex::new(None));
        let verifier = Arc::new(PeerVerifier {
            auth,
            remote_id,
            now,
            algorithms: provider.signature_verification_algorithms,
            hints,
            verified: Arc::clone(&verified),
        });
        let versions: &[&'static SupportedProtocolVersion] = match versions {
            TlsVersions::Tls12And13 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersions::Tls12Only => &[&rustls::version::TLS12],
            TlsVersions::Tls13Only => &[&rustls::version::TLS13],
        };
        let conn = match role {
            GssRole::Initiator => {
                let mut config = ClientConfig::builder_with_details(provider, time)
                    .with_protocol_versions(versions)
                    .map_err(|e| setup("TLS versions", e))?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_client_cert_resolver(resolver);
                config.resumption = Resumption::disabled();
                config.enable_sni = false;
                config.require_ems = true;
                let name = ServerName::try_from(SERVER_NAME)
                    .map_err(|e| GssFailure(format!("TLS cannot be set up: server name: {e}")))?;
                Connection::Client(ClientConnection::new(Arc::new(config), name).map_err(|e| setup("client", e))?)
            }
            GssRole::Responder => {
                let mut config = ServerConfig::builder_with_details(provider, time)
                    .with_protocol_versions(versions)
                    .map_err(|e| setup("TLS versions", e))?
                    .with_client_cert_verifier(verifier)
                    .with_cert_resolver(resolver);
                config.session_storage = Arc::new(NoServerSessionStorage {});
                config.send_tls13_tickets = 0;
                config.require_ems = true;
                config.max_early_data_size = 0;
                Connection::Server(ServerConnection::new(Arc::new(config)).map_err(|e| setup("server", e))?)
            }
        };
        Ok(TlsMechanism { role, conn, verified, steps: 0, outcome: None, failed: None })
    }

    /// This side's role.
    pub fn role(&self) -> GssRole {
        self.role
    }

    /// The negotiated TLS version (`TLS 1.2`, `TLS 1.3`), once the hellos are through.
    pub fn tls_version(&self) -> Option<&'static str> {
        match self.conn.protocol_version()? {
            ProtocolVersion::TLSv1_3 => Some("TLS 1.3"),
            ProtocolVersion::TLSv1_2 => Some("TLS 1.2"),
            _ => Some("TLS (other)"),
        }
    }

    /// The negotiated cipher suite by its IANA name (e.g. `TLS13_AES_256_GCM_SHA384`), once the hellos are
    /// through.
    pub fn cipher_suite(&self) -> Option<String> {
        self.conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite()))
    }

    fn step_inner(&mut self, input: Option<&[u8]>) -> Result<GssStep, GssFailure> {
        self.steps = self.steps.saturating_add(1);
        if self.steps > MAX_TLS_STEPS {
            return Err(fail(format!("the handshake did not finish within {MAX_TLS_STEPS} GSS-API steps")));
        }
        if self.outcome.is_some() {
            return self.after_complete(input);
        }
        match (self.role, input) {
            // The initiator speaks first; an empty token in its place is the same as none.
            (GssRole::Initiator, None) if self.steps == 1 => {}
            (GssRole::Initiator, Some([])) if self.steps == 1 => {}
            (GssRole::Initiator, Some(t)) if self.steps == 1 => {
                return Err(fail(format!(
                    "the responder sent a {}-byte token before the initiator's first one (the TLS client must \
                     start)",
                    t.len()
                )));
            }
            (_, None) => return Err(fail("no GSS-API token from the peer, and the handshake needs one".to_string())),
            (_, Some([])) => {
                return Err(fail(
                    "the peer sent an empty GSS-API token while the handshake is unfinished (its TLS layer may \
                     have failed; see its GSS-API Status)"
                        .to_string(),
                ))
            }
            (_, Some(token)) => self.feed(token)?,
        }
        let token = self.drain()?;
        if !self.conn.is_handshaking() {
            self.finish()?;
        }
        Ok(GssStep { token, complete: self.outcome.is_some() })
    }

    /// The initiator's extra call with the responder's last token. In TLS 1.3 that is empty (our responder
    /// sends no tickets); a peer that sends NewSessionTicket anyway (Schannel does by default) is processed
    /// and the ticket ignored, an alert there becomes the failure it reports.
    fn after_complete(&mut self, input: Option<&[u8]>) -> Result<GssStep, GssFailure> {
        if let Some(token) = input.filter(|t| !t.is_empty()) {
            self.feed(token)?;
            // Nothing we could owe the peer here belongs in the Main Mode; what rustls queued is dropped.
            self.drain()?;
        }
        Ok(GssStep { token: Vec::new(), complete: true })
    }

    /// Hands one token from the peer to rustls.
    fn feed(&mut self, token: &[u8]) -> Result<(), GssFailure> {
        if token.len() > MAX_TLS_TOKEN {
            return Err(fail(format!(
                "the peer's GSS-API token is {} bytes, over the limit of {MAX_TLS_TOKEN}",
                token.len()
            )));
        }
        check_records(token)?;
        let mut rest = token;
        while !rest.is_empty() {
            // rustls takes at most one buffer's worth per call, so read and process in turns.
            let n = self
                .conn
                .read_tls(&mut rest)
                .map_err(|e| fail(format!("the peer's TLS records could not be taken in: {e}")))?;
            let state = self.conn.process_new_packets().map_err(tls_failure)?;
            if state.plaintext_bytes_to_read() > 0 {
                return Err(fail("the peer sent application data, which TLS inside AuthIP never carries".to_string()));
            }
            if state.peer_has_closed() {
                return Err(fail("the peer closed the TLS connection (close_notify)".to_string()));
            }
            if n == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Collects what rustls has to send: our token.
    fn drain(&mut self) -> Result<Vec<u8>, GssFailure> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            let n = self
                .conn
                .write_tls(&mut out)
                .map_err(|e| fail(format!("our TLS records could not be written: {e}")))?;
            if out.len() > MAX_TLS_TOKEN {
                return Err(fail(format!(
                    "this host's TLS flight is over {MAX_TLS_TOKEN} bytes (is its certificate chain that long?)"
                )));
            }
            if n == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// Takes the secret and the verified peer once rustls says the handshake is over.
    fn finish(&mut self) -> Result<(), GssFailure> {
        let peer = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| fail("the handshake finished without a verified peer certificate".to_string()))?;
        let secret = self
            .conn
            .export_keying_material(Zeroizing::new(vec![0u8; TLS_SECRET_LEN]), TLS_EXPORTER_LABEL, TLS_EXPORTER_CONTEXT)
            .map_err(|e| fail(format!("the TLS exporter gave no GSS-API secret: {e}")))?;
        self.outcome = Some((Secret::from_slice(&secret), peer));
        Ok(())
    }
}

impl GssMechanism for TlsMechanism {
    fn method(&self) -> u16 {
        auth_method::TLS
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<GssStep, GssFailure> {
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        let result = self.step_inner(input);
        if let Err(failure) = &result {
            self.failed = Some(failure.clone());
        }
        result
    }

    fn session_secret(&self) -> Option<Secret> {
        self.outcome.as_ref().map(|(secret, _)| secret.clone())
    }

    fn peer(&self) -> Option<GssPeer> {
        self.outcome.as_ref().map(|(_, peer)| peer.clone())
    }
}

/// A failure of the TLS mechanism, in the words given.
fn fail(why: String) -> GssFailure {
    GssFailure(format!("TLS handshake failed: {why}"))
}

/// Checks that a token is whole TLS records (T1) before rustls sees it, so that a cut token is reported as
/// such instead of leaving rustls waiting for the rest.
fn check_records(token: &[u8]) -> Result<(), GssFailure> {
    let mut rest = token;
    while !rest.is_empty() {
        let offset = token.len().saturating_sub(rest.len());
        let Some((header, body)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
            return Err(fail(format!(
                "the peer's token ends inside a TLS record header ({} bytes at offset {offset}); a token must \
                 hold whole TLS records",
                rest.len()
            )));
        };
        let [content_type, _, _, len_hi, len_lo] = *header;
        // ChangeCipherSpec, alert, handshake, application data (TLS 1.3's encrypted handshake records).
        if !(20..=23).contains(&content_type) {
            return Err(fail(format!(
                "the peer's token is not TLS records (content type {content_type} at offset {offset})"
            )));
        }
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if len > MAX_RECORD_BODY {
            return Err(fail(format!(
                "the peer's token has a TLS record of {len} bytes at offset {offset}, over TLS's limit of \
                 {MAX_RECORD_BODY}"
            )));
        }
        rest = body.get(len..).ok_or_else(|| {
            fail(format!(
                "the peer's token is cut short: a TLS record of {len} bytes at offset {offset} has only {} \
                 bytes; a token must hold whole TLS records",
                body.len()
            ))
        })?;
    }
    Ok(())
}

/// Why rustls stopped the handshake, in words. A refusal by our own verifier comes back as the
/// [`GssFailure`] it made.
fn tls_failure(e: rustls::Error) -> GssFailure {
    use rustls::Error as E;
    match &e {
        E::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            if let Some(ours) = inner.downcast_ref::<GssFailure>() {
                return ours.clone();
            }
            fail(format!("the peer's certificate was refused: {e}"))
        }
        E::NoCertificatesPresented => fail(
            "the peer sent no certificate; TLS in AuthIP is mutual here and needs one from both sides (does the \
             peer have a machine certificate, and one from a CA this host trusts?)"
                .to_string(),
        ),
        E::AlertReceived(alert) => fail(format!(
            "the peer refused the handshake with TLS alert {alert:?} (for a certificate alert such as \
             BadCertificate or UnknownCA: the peer does not accept this host's certificate or its CA)"
        )),
        E::PeerIncompatible(why) => fail(format!(
            "no TLS version, cipher suite, group or signature algorithm in common with the peer ({why:?})"
        )),
        E::PeerMisbehaved(why) => fail(format!("the peer broke the TLS protocol ({why:?})")),
        E::InvalidMessage(why) => fail(format!("the peer sent malformed TLS data ({why:?})")),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            fail(format!("the peer sent a TLS message out of order: {e}"))
        }
        E::DecryptError => fail("the peer's TLS records do not decrypt (corrupted, or not for this handshake)".into()),
        _ => fail(e.to_string()),
    }
}

/// Verifies the peer's certificate for rustls, in both roles: the rule's trust store, then `remote_id`. The
/// handshake signatures are rustls' aws-lc-rs provider's.
#[derive(Debug)]
struct PeerVerifier {
    auth: Arc<CertAuth>,
    remote_id: IdSpec,
    now: SystemTime,
    algorithms: WebPkiSupportedAlgorithms,
    /// The trusted CAs' names, sent in the server's CertificateRequest so the client picks a matching
    /// certificate (as CERTREQ payloads do in IKEv1).
    hints: Vec<DistinguishedName>,
    verified: Arc<Mutex<Option<GssPeer>>>,
}

impl PeerVerifier {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        match self.check(end_entity, intermediates) {
            Ok(peer) => {
                *self.verified.lock().unwrap_or_else(PoisonError::into_inner) = Some(peer);
                Ok(())
            }
            Err(failure) => {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(failure)))))
            }
        }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<GssPeer, GssFailure> {
        let chain: Vec<&[u8]> = intermediates.iter().map(|c| c.as_ref()).collect();
        let peer = self
            .auth
            .trust
            .validate_chain(end_entity.as_ref(), &chain, self.now)
            .map_err(|e| refused(end_entity.as_ref(), e))?;
        check_remote_id(&peer, &self.remote_id)?;
        Ok(GssPeer {
            id: PeerId::Dn(peer.subject_der.clone()).to_string(),
            cert: Some((peer.subject_dn, peer.issuer_dn)),
        })
    }
}

/// The trust store's refusal of the peer's certificate, naming it.
fn refused(end_entity: &[u8], e: CertError) -> GssFailure {
    let who = match CertInfo::parse(end_entity) {
        Ok(c) => format!("the peer's certificate '{}'", c.subject_dn),
        Err(_) => return fail(format!("the peer's certificate is unreadable: {e}")),
    };
    match e {
        CertError::UnknownIssuer { .. } | CertError::ChainLoop { .. } => {
            fail(format!("{who} does not chain to a trusted CA: {e}"))
        }
        _ => fail(format!("{who} was refused: {e}")),
    }
}

/// The rule's `remote_id` against the validated certificate (T7): a DN must be its subject, an FQDN one of its
/// subjectAltName DNS names, an address one of its subjectAltName addresses; `auto` takes any validated peer.
fn check_remote_id(peer: &ValidatedPeer, remote_id: &IdSpec) -> Result<(), GssFailure> {
    let why = match remote_id {
        IdSpec::Auto => return Ok(()),
        IdSpec::Dn(text) if dn_matches_text(&peer.subject_der, text) => return Ok(()),
        IdSpec::Dn(_) => "its subject is a different DN".to_string(),
        IdSpec::Fqdn(name) => {
            let wanted = name.trim_end_matches('.');
            if peer.san_dns.iter().any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(wanted)) {
                return Ok(());
            }
            format!("its subjectAltName DNS names are [{}]", peer.san_dns.join(", "))
        }
        IdSpec::Ip(addr) if peer.san_ips.contains(addr) => return Ok(()),
        IdSpec::Ip(_) => {
            let ips: Vec<String> = peer.san_ips.iter().map(|a| a.to_string()).collect();
            format!("its subjectAltName addresses are [{}]", ips.join(", "))
        }
    };
    Err(fail(format!("the peer's certificate '{}' does not match remote_id {remote_id}: {why}", peer.subject_dn)))
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The caller's wall-clock time for rustls, which would otherwise read the system clock.
#[derive(Debug)]
struct FixedTime(UnixTime);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

fn unix_time(now: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
        let len = u16::try_from(body.len()).expect("short");
        let mut out = vec![content_type, 3, 3];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn records_must_be_whole() {
        let two = [record(22, &[1, 2, 3]), record(20, &[1])].concat();
        assert!(check_records(&two).is_ok());
        assert!(check_records(&[]).is_ok());
        // Cutting at 8, the end of the first record, leaves whole records.
        for cut in (1..two.len()).filter(|cut| *cut != 8) {
            let err = check_records(&two[..cut]).expect_err("cut");
            assert!(err.0.contains("whole TLS records"), "{cut}: {err}");
        }
        assert!(check_records(&record(99, &[0])).expect_err("type").0.contains("content type 99"));
        let mut huge = vec![23, 3, 3, 0xff, 0xff];
        huge.resize(5 + 0xffff, 0);
        assert!(check_records(&huge).expect_err("long").0.contains("over TLS's limit"));
    }
}
