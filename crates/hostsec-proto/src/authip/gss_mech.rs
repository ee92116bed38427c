//! The GSS-API mechanisms AuthIP authenticates its Main Mode with ([MS-AIPS] §1.7, §2.2.3.1), as sans-IO state
//! machines: each [`GssMechanism::step`] takes the peer's token (the body of its GSS-API payload after Status and
//! Flags) and returns the token to send back. The state machine around them carries the tokens in GSS-API
//! payloads (MM #1–#4 and their repeats), feeds [`GssMechanism::session_secret`] into SKEYID as the
//! GSS-APIsecret and shows [`GssMechanism::peer`] in `hostsec sas`.
//!
//! Two mechanisms exist here: [`AnonymousMechanism`] (method 3) and [`TlsMechanism`](super::TlsMechanism)
//! (method 4, in `gss_tls`). Kerberos and NTLM need a domain and are not implemented.

use super::consts::auth_method;
use crate::crypto::Secret;

/// What one GSS-API step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssStep {
    /// Token for the peer (may be empty: a GSS-API payload with an empty token is still sent).
    pub token: Vec<u8>,
    /// Whether this side's mechanism has finished (nothing more is needed from the peer).
    pub complete: bool,
}

/// Why the mechanism failed, in words an administrator can act on (e.g. "the peer's certificate 'CN=x' does not
/// chain to a trusted CA: ...").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GssFailure(pub String);

/// Who the mechanism authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssPeer {
    /// Identity text as shown by `hostsec sas` (e.g. `dn:CN=peer,O=Lab` for TLS, `anonymous` for Anonymous).
    pub id: String,
    /// Subject and issuer of the peer's certificate (TLS), for `hostsec sas`.
    pub cert: Option<(String, String)>,
}

/// A GSS-API mechanism as AuthIP uses it (Anonymous or TLS). Sans-IO: it takes tokens and returns tokens.
pub trait GssMechanism: Send {
    /// The [MS-AIPS] Auth method number (consts::auth_method::ANONYMOUS or TLS).
    fn method(&self) -> u16;
    /// One step: `input` is the peer's token (`None` only for the initiator's first call). Called again only while
    /// `complete` was false, or (initiator) once more with the responder's last token after the initiator itself
    /// completed — in that case it must accept it (e.g. an empty token) and return an empty token, complete.
    fn step(&mut self, input: Option<&[u8]>) -> Result<GssStep, GssFailure>;
    /// The GSS-APIsecret for the key schedule once complete ([MS-AIPS] §3.1.7.4): None while incomplete.
    /// Anonymous: an empty secret (docs/authip.md K6). TLS: the TLS exporter (docs/authip.md T5).
    fn session_secret(&self) -> Option<Secret>;
    /// The authenticated peer once complete.
    fn peer(&self) -> Option<GssPeer>;
}

/// The identity text of a peer that the Anonymous mechanism "authenticated".
pub const ANONYMOUS_PEER_ID: &str = "anonymous";

/// Anonymous ([MS-AIPS] §1.7, method 3): empty tokens, completes on the first step on both sides, authenticates
/// nobody (id "anonymous").
///
/// Lenient on one point: the responder accepts `None` as well as an empty token as its input, because whether a
/// Windows initiator sends an empty GSS-API payload for Anonymous at all (in MM #1, or an empty #3/#4 round trip)
/// is open (research notes §4.5); either way there is nothing to authenticate. A non-empty token is refused: no
/// Anonymous token has contents, so one means the peer runs another mechanism.
#[derive(Debug)]
pub struct AnonymousMechanism {
    initiator: bool,
    complete: bool,
}

impl AnonymousMechanism {
    /// The initiator's side.
    pub fn initiator() -> Self {
        AnonymousMechanism { initiator: true, complete: false }
    }

    /// The responder's side.
    pub fn responder() -> Self {
        AnonymousMechanism { initiator: false, complete: false }
    }
}

impl GssMechanism for AnonymousMechanism {
    fn method(&self) -> u16 {
        auth_method::ANONYMOUS
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<GssStep, GssFailure> {
        if let Some(token) = input.filter(|t| !t.is_empty()) {
            let side = if self.initiator { "responder" } else { "initiator" };
            return Err(GssFailure(format!(
                "Anonymous authentication failed: the {side} sent a {}-byte GSS-API token, but Anonymous tokens \
                 are empty (is the peer running another method?)",
                token.len()
            )));
        }
        self.complete = true;
        Ok(GssStep { token: Vec::new(), complete: true })
    }

    fn session_secret(&self) -> Option<Secret> {
        self.complete.then(|| Secret::new(Vec::new()))
    }

    fn peer(&self) -> Option<GssPeer> {
        self.complete.then(|| GssPeer { id: ANONYMOUS_PEER_ID.to_string(), cert: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_completes_in_one_step_on_both_sides() {
        let mut i = AnonymousMechanism::initiator();
        let mut r = AnonymousMechanism::responder();
        assert_eq!(i.method(), auth_method::ANONYMOUS);
        assert!(i.session_secret().is_none() && i.peer().is_none());
        let first = i.step(None).expect("initiator");
        assert_eq!(first, GssStep { token: Vec::new(), complete: true });
        let reply = r.step(Some(&first.token)).expect("responder");
        assert_eq!(reply, GssStep { token: Vec::new(), complete: true });
        // The initiator's extra call with the responder's last token.
        assert_eq!(i.step(Some(&reply.token)).expect("last"), GssStep { token: Vec::new(), complete: true });
        for m in [&i, &r] {
            assert!(m.session_secret().expect("secret").is_empty());
            assert_eq!(m.peer(), Some(GssPeer { id: "anonymous".to_string(), cert: None }));
        }
    }

    #[test]
    fn anonymous_responder_accepts_no_token_and_refuses_contents() {
        assert!(AnonymousMechanism::responder().step(None).expect("none").complete);
        let err = AnonymousMechanism::responder().step(Some(&[0x16, 3, 1])).expect_err("contents");
        assert!(err.0.contains("3-byte GSS-API token"), "{err}");
        let mut i = AnonymousMechanism::initiator();
        i.step(None).expect("first");
        assert!(i.step(Some(&[1])).is_err());
    }
}
