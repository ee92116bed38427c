//! AuthIP's GSS-API mechanisms driven token by token in memory, as the Main Mode state machine will drive them:
//! Anonymous, and TLS (mutual, rustls) with every key type of the acceptance list (ECDSA P-256/P-384,
//! RSA-2048), in TLS 1.3 and TLS 1.2, through an intermediate CA and against each `remote_id` form; refusals
//! with their words (unknown CA, expired, wrong identity, a client without a certificate); and hostile tokens
//! (garbage, cut, oversize, split into too many steps, random and mutated bytes), which fail and never panic.
//!
//! Round trips: a full handshake is two in both versions (docs/authip.md T1). TLS 1.3: ClientHello → server
//! flight → client Certificate/CertificateVerify/Finished (the initiator completes) → an empty token (the
//! responder completes). TLS 1.2: ClientHello → server flight → client flight → ChangeCipherSpec/Finished
//! (the responder completes) → the initiator completes without sending.

mod support;

use hostsec_proto::authip::{
    consts::auth_method, AnonymousMechanism, GssFailure, GssMechanism, GssPeer, GssRole, GssStep, TlsMechanism,
    TlsVersions, MAX_TLS_STEPS, MAX_TLS_TOKEN, TLS_SECRET_LEN,
};
use hostsec_proto::pki::{CertAuth, HostCredentials, TrustStore};
use hostsec_proto::policy::IdSpec;
use proptest::prelude::*;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;
use support::pki::{self, Ca, Host, KeyKind};

const A_DN: &str = "C=XX, O=hostsec test, CN=a.example";
const B_DN: &str = "C=XX, O=hostsec test, CN=b.example";
const ROOT_DN: &str = "C=XX, O=hostsec test, CN=Root";

/// A certificate rule's material: `host` (its file carrying `chain` after it), trusting `cas`.
fn cert_auth(host: &Host, chain: &[&Ca], cas: &[&Ca]) -> Arc<CertAuth> {
    let mut pem = host.cert.pem();
    for ca in chain {
        pem.push_str(&ca.pem());
    }
    let creds = HostCredentials::from_pem_or_der(pem.as_bytes(), host.key_pem().as_bytes()).expect("credentials");
    let mut trust = TrustStore::new();
    for ca in cas {
        trust.add_cas(ca.pem().as_bytes()).expect("CA");
    }
    Arc::new(CertAuth { host: creds, trust })
}

/// Two hosts a (initiator) and b (responder) with `kind` keys under one root, each trusting it.
struct Lab {
    root: Ca,
    a: Arc<CertAuth>,
    b: Arc<CertAuth>,
}

fn lab(kind: KeyKind) -> Lab {
    let root = pki::root("Root", kind);
    let a = cert_auth(&pki::host("a.example", "198.51.100.1", kind, &root), &[], &[&root]);
    let b = cert_auth(&pki::host("b.example", "198.51.100.2", kind, &root), &[], &[&root]);
    Lab { root, a, b }
}

/// One P-256 lab for the tests that only need some valid pair (key generation is the slow part).
static P256: LazyLock<Lab> = LazyLock::new(|| lab(KeyKind::P256));

fn tls(role: GssRole, auth: &Arc<CertAuth>, remote_id: IdSpec, versions: TlsVersions) -> TlsMechanism {
    TlsMechanism::new(role, Arc::clone(auth), remote_id, pki::now(), versions).expect("mechanism")
}

fn pair(l: &Lab, versions: TlsVersions) -> (TlsMechanism, TlsMechanism) {
    (tls(GssRole::Initiator, &l.a, IdSpec::Auto, versions), tls(GssRole::Responder, &l.b, IdSpec::Auto, versions))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Initiator,
    Responder,
}

/// How a run went: steps on each side and the token sizes in order (initiator's first).
#[derive(Debug)]
struct Run {
    initiator_steps: usize,
    responder_steps: usize,
    tokens: Vec<usize>,
}

impl Run {
    /// Round trips: each responder step answers one initiator token.
    fn round_trips(&self) -> usize {
        self.responder_steps
    }
}

/// Shuttles tokens as the Main Mode does: MM #3 carries the initiator's token, MM #4 the responder's, and the
/// initiator takes the responder's last token even when it completed before it.
fn run(i: &mut dyn GssMechanism, r: &mut dyn GssMechanism) -> Result<Run, (Side, GssFailure)> {
    let mut tokens = Vec::new();
    let mut to_r = i.step(None).map_err(|e| (Side::Initiator, e))?;
    let (mut initiator_steps, mut responder_steps) = (1, 0);
    for _ in 0..MAX_TLS_STEPS {
        tokens.push(to_r.token.len());
        let from_r = r.step(Some(&to_r.token)).map_err(|e| (Side::Responder, e))?;
        responder_steps += 1;
        tokens.push(from_r.token.len());
        let from_i = i.step(Some(&from_r.token)).map_err(|e| (Side::Initiator, e))?;
        initiator_steps += 1;
        if from_r.complete {
            assert!(from_i.complete, "the responder completed, the initiator not");
            assert!(from_i.token.is_empty(), "the initiator has a token after both completed");
            return Ok(Run { initiator_steps, responder_steps, tokens });
        }
        to_r = from_i;
    }
    panic!("no completion after {MAX_TLS_STEPS} round trips")
}

/// Both sides complete, with the same 32-byte secret, each naming the other.
fn assert_authenticated(i: &TlsMechanism, r: &TlsMechanism, i_dn: &str, r_dn: &str, issuer: &str) -> Vec<u8> {
    let (si, sr) = (i.session_secret().expect("initiator secret"), r.session_secret().expect("responder secret"));
    assert_eq!(si, sr, "secrets differ");
    assert_eq!(si.len(), TLS_SECRET_LEN);
    assert!(si.expose().iter().any(|b| *b != 0));
    assert_eq!(
        i.peer(),
        Some(GssPeer { id: format!("dn:{r_dn}"), cert: Some((r_dn.to_string(), issuer.to_string())) })
    );
    assert_eq!(
        r.peer(),
        Some(GssPeer { id: format!("dn:{i_dn}"), cert: Some((i_dn.to_string(), issuer.to_string())) })
    );
    assert_eq!(i.tls_version(), r.tls_version());
    assert_eq!(i.cipher_suite(), r.cipher_suite());
    si.expose().to_vec()
}

/// The failure of a run that must fail, from `side`.
fn refusal(i: &mut TlsMechanism, r: &mut TlsMechanism, side: Side) -> String {
    match run(i, r) {
        Ok(run) => panic!("the handshake succeeded: {run:?}"),
        Err((s, e)) => {
            assert_eq!(s, side, "{e}");
            assert!(e.0.starts_with("TLS handshake failed: "), "{e}");
            e.0
        }
    }
}

#[test]
fn anonymous_both_roles_complete_in_one_step() {
    let mut i = AnonymousMechanism::initiator();
    let mut r = AnonymousMechanism::responder();
    assert_eq!((i.method(), r.method()), (auth_method::ANONYMOUS, auth_method::ANONYMOUS));
    let run = run(&mut i, &mut r).expect("anonymous");
    assert_eq!((run.initiator_steps, run.responder_steps, run.tokens), (2, 1, vec![0, 0]));
    for m in [&i as &dyn GssMechanism, &r] {
        assert!(m.session_secret().expect("secret").is_empty());
        assert_eq!(m.peer().expect("peer").id, "anonymous");
        assert_eq!(m.peer().expect("peer").cert, None);
    }
}

/// Every key type, in TLS 1.3 (the default) and TLS 1.2: two round trips, equal 32-byte secrets, each side
/// names the other's DN.
#[test]
fn tls_pair_every_key_type_both_versions() {
    for kind in [KeyKind::P256, KeyKind::P384, KeyKind::Rsa2048] {
        let l = lab(kind);
        let mut secrets = Vec::new();
        for (versions, name, initiator_steps) in
            [(TlsVersions::Tls12And13, "TLS 1.3", 3), (TlsVersions::Tls12Only, "TLS 1.2", 3)]
        {
            let ctx = format!("{kind:?} {name}");
            let (mut i, mut r) = pair(&l, versions);
            assert_eq!(i.method(), auth_method::TLS);
            assert!(i.session_secret().is_none() && i.peer().is_none(), "{ctx}");
            let run = run(&mut i, &mut r).unwrap_or_else(|(s, e)| panic!("{ctx}: {s:?}: {e}"));
            assert_eq!(run.round_trips(), 2, "{ctx}: {run:?}");
            assert_eq!((run.initiator_steps, run.responder_steps), (initiator_steps, 2), "{ctx}");
            assert_eq!(i.tls_version(), Some(name), "{ctx}");
            secrets.push(assert_authenticated(&i, &r, A_DN, B_DN, ROOT_DN));
            // After completion: the extra call takes an empty token and gives one back.
            assert_eq!(i.step(Some(&[])).expect("extra"), GssStep { token: Vec::new(), complete: true });
        }
        assert_ne!(secrets[0], secrets[1], "{kind:?}: two handshakes gave one secret");
    }
}

/// The token pattern of each version: in TLS 1.3 the responder's last token is empty; in TLS 1.2 it holds
/// ChangeCipherSpec and Finished and the initiator's last step sends nothing.
#[test]
fn token_pattern_per_version() {
    let (mut i, mut r) = pair(&P256, TlsVersions::Tls13Only);
    let run13 = run(&mut i, &mut r).expect("1.3");
    assert!(run13.tokens[..3].iter().all(|n| *n > 0) && run13.tokens[3] == 0, "{run13:?}");
    let (mut i, mut r) = pair(&P256, TlsVersions::Tls12Only);
    let run12 = run(&mut i, &mut r).expect("1.2");
    assert!(run12.tokens.iter().all(|n| *n > 0), "{run12:?}");
    assert_eq!(run12.tokens.len(), 4);
}

/// An initiator limited to TLS 1.2 meets a default responder: TLS 1.2.
#[test]
fn version_negotiation_falls_back_to_tls12() {
    let mut i = tls(GssRole::Initiator, &P256.a, IdSpec::Auto, TlsVersions::Tls12Only);
    let mut r = tls(GssRole::Responder, &P256.b, IdSpec::Auto, TlsVersions::Tls12And13);
    run(&mut i, &mut r).expect("mixed");
    assert_eq!(r.tls_version(), Some("TLS 1.2"));
    let mut i = tls(GssRole::Initiator, &P256.a, IdSpec::Auto, TlsVersions::Tls12Only);
    let mut r = tls(GssRole::Responder, &P256.b, IdSpec::Auto, TlsVersions::Tls13Only);
    let e = refusal(&mut i, &mut r, Side::Responder);
    assert!(e.contains("in common"), "{e}");
}

/// Hosts under an intermediate CA that they send along; the peers trust only the root.
#[test]
fn chain_through_an_intermediate() {
    let root = pki::root("Root", KeyKind::P384);
    let sub = pki::intermediate("Sub", &root, KeyKind::P256);
    let a = cert_auth(&pki::host("a.example", "198.51.100.1", KeyKind::P256, &sub), &[&sub], &[&root]);
    let b = cert_auth(&pki::host("b.example", "198.51.100.2", KeyKind::Rsa2048, &sub), &[&sub], &[&root]);
    let mut i = tls(GssRole::Initiator, &a, IdSpec::Auto, TlsVersions::default());
    let mut r = tls(GssRole::Responder, &b, IdSpec::Auto, TlsVersions::default());
    run(&mut i, &mut r).expect("chain");
    assert_authenticated(&i, &r, A_DN, B_DN, "C=XX, O=hostsec test, CN=Sub");
}

/// Every `remote_id` form that names the peer passes, on both sides.
#[test]
fn remote_id_forms_that_match() {
    let l = &*P256;
    let ids = [
        // DNs compare attribute by attribute, without regard to case or the spaces around separators.
        (IdSpec::Dn(B_DN.to_string()), IdSpec::Dn("c = xx,o=HOSTSEC test , cn=A.example".to_string())),
        (IdSpec::Fqdn("B.Example.".to_string()), IdSpec::Fqdn("a.example".to_string())),
        (IdSpec::Ip("198.51.100.2".parse().expect("ip")), IdSpec::Ip("198.51.100.1".parse().expect("ip"))),
    ];
    for (of_b, of_a) in ids {
        let ctx = format!("{of_b} / {of_a}");
        let mut i = tls(GssRole::Initiator, &l.a, of_b, TlsVersions::default());
        let mut r = tls(GssRole::Responder, &l.b, of_a, TlsVersions::default());
        run(&mut i, &mut r).unwrap_or_else(|(s, e)| panic!("{ctx}: {s:?}: {e}"));
        assert_authenticated(&i, &r, A_DN, B_DN, ROOT_DN);
    }
}

/// A `remote_id` the peer's certificate does not hold: refused by the side that checks it, with both names.
#[test]
fn remote_id_mismatch_is_refused() {
    let l = &*P256;
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        // The initiator expects someone else: it refuses the server's certificate in its second step.
        let mut i = tls(GssRole::Initiator, &l.a, IdSpec::Dn("CN=other, O=Lab".to_string()), versions);
        let mut r = tls(GssRole::Responder, &l.b, IdSpec::Auto, versions);
        let e = refusal(&mut i, &mut r, Side::Initiator);
        assert!(
            e.contains(&format!("the peer's certificate '{B_DN}' does not match remote_id dn:CN=other, O=Lab")),
            "{e}"
        );
        assert!(i.session_secret().is_none() && i.peer().is_none());
        // The responder expects another FQDN: it refuses the client's certificate.
        let mut i = tls(GssRole::Initiator, &l.a, IdSpec::Auto, versions);
        let mut r = tls(GssRole::Responder, &l.b, IdSpec::Fqdn("c.example".to_string()), versions);
        let e = refusal(&mut i, &mut r, Side::Responder);
        assert!(
            e.contains("does not match remote_id fqdn:c.example: its subjectAltName DNS names are [a.example]"),
            "{e}"
        );
        assert!(r.session_secret().is_none() && r.peer().is_none());
        let mut i = tls(GssRole::Initiator, &l.a, IdSpec::Ip("192.0.2.9".parse().expect("ip")), versions);
        let mut r = tls(GssRole::Responder, &l.b, IdSpec::Auto, versions);
        let e = refusal(&mut i, &mut r, Side::Initiator);
        assert!(e.contains("its subjectAltName addresses are [198.51.100.2]"), "{e}");
    }
}

/// A peer whose certificate comes from a CA this side does not trust, in each direction.
#[test]
fn untrusted_ca_is_refused() {
    let l = &*P256;
    let other = pki::root("Other", KeyKind::P256);
    let stranger_b = cert_auth(&pki::host("b.example", "198.51.100.2", KeyKind::P256, &other), &[], &[&l.root]);
    let mut i = tls(GssRole::Initiator, &l.a, IdSpec::Auto, TlsVersions::default());
    let mut r = tls(GssRole::Responder, &stranger_b, IdSpec::Auto, TlsVersions::default());
    let e = refusal(&mut i, &mut r, Side::Initiator);
    assert!(e.contains(&format!("the peer's certificate '{B_DN}' does not chain to a trusted CA")), "{e}");
    assert!(e.contains("issued by 'C=XX, O=hostsec test, CN=Other', which is not a trusted CA"), "{e}");

    let stranger_a = cert_auth(&pki::host("a.example", "198.51.100.1", KeyKind::P256, &other), &[], &[&l.root]);
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let mut i = tls(GssRole::Initiator, &stranger_a, IdSpec::Auto, versions);
        let mut r = tls(GssRole::Responder, &l.b, IdSpec::Auto, versions);
        let e = refusal(&mut i, &mut r, Side::Responder);
        assert!(e.contains(&format!("the peer's certificate '{A_DN}' does not chain to a trusted CA")), "{e}");
    }
}

/// An expired certificate: refused at the caller's time, which is what counts (not the system clock).
#[test]
fn expired_certificate_is_refused() {
    let root = pki::root("Root", KeyKind::P256);
    let mut params = pki::host_params("b.example", "198.51.100.2", 7);
    params.not_after = rcgen::date_time_ymd(2025, 1, 1);
    let b = cert_auth(&pki::host_with(params, KeyKind::P256, &root), &[], &[&root]);
    let a = cert_auth(&pki::host("a.example", "198.51.100.1", KeyKind::P256, &root), &[], &[&root]);
    let mechanisms = |now: SystemTime| {
        (
            TlsMechanism::new(GssRole::Initiator, Arc::clone(&a), IdSpec::Auto, now, TlsVersions::default())
                .expect("i"),
            TlsMechanism::new(GssRole::Responder, Arc::clone(&b), IdSpec::Auto, now, TlsVersions::default())
                .expect("r"),
        )
    };
    let (mut i, mut r) = mechanisms(pki::now());
    let e = refusal(&mut i, &mut r, Side::Initiator);
    assert!(
        e.contains(&format!("the peer's certificate '{B_DN}' was refused: certificate '{B_DN}' expired on 2025-01-01")),
        "{e}"
    );
    // Before its notAfter, the same certificates are fine.
    let (mut i, mut r) = mechanisms(pki::at(2024, 6, 1));
    run(&mut i, &mut r).expect("in time");
}

/// A TLS client that sends no certificate (here plain rustls without client authentication): the responder
/// refuses in its second step.
#[test]
fn client_without_certificate_is_refused() {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AnyServer(WebPkiSupportedAlgorithms);
    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(m, c, d, &self.0)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(m, c, d, &self.0)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_schemes()
        }
    }

    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(AnyServer(provider.signature_verification_algorithms));
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let mut client =
            ClientConnection::new(Arc::new(config), ServerName::try_from("b.example").expect("name")).expect("client");
        let mut r = tls(GssRole::Responder, &P256.b, IdSpec::Auto, versions);
        let flight = |client: &mut ClientConnection| {
            let mut out = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut out).expect("write");
            }
            out
        };
        let hello = flight(&mut client);
        let reply = r.step(Some(&hello)).expect("server flight");
        assert!(!reply.complete);
        client.read_tls(&mut &reply.token[..]).expect("read");
        client.process_new_packets().expect("client takes the server flight");
        let e = r.step(Some(&flight(&mut client))).expect_err("no certificate");
        assert!(e.0.contains("the peer sent no certificate"), "{versions:?}: {e}");
        assert!(r.peer().is_none() && r.session_secret().is_none());
        // A failed mechanism stays failed.
        assert_eq!(r.step(Some(&hello)).expect_err("failed"), e);
    }
}

/// A TLS 1.3 server that sends session tickets after the handshake (as Schannel does by default; plain rustls
/// with a WebPKI client verifier here): the initiator takes the tickets in its extra step and ignores them, and
/// its secret is what that server exports with the same label (T5, computed by the other side's own call).
#[test]
fn tickets_from_the_peer_are_ignored_and_the_secret_is_the_exporter() {
    use hostsec_proto::authip::{TLS_EXPORTER_CONTEXT, TLS_EXPORTER_LABEL};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{RootCertStore, ServerConfig, ServerConnection};

    let root = pki::root("Root", KeyKind::P256);
    let a = cert_auth(&pki::host("a.example", "198.51.100.1", KeyKind::P256, &root), &[], &[&root]);
    let b = pki::host("b.example", "198.51.100.2", KeyKind::P256, &root);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(root.der())).expect("root");
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider)).build().expect("verifier");
    let key = PrivateKeyDer::try_from(b.key.serialize_der()).expect("key");
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(b.der())], key)
        .expect("server config");
    config.send_tls13_tickets = 2;
    let mut server = ServerConnection::new(Arc::new(config)).expect("server");
    let mut exchange = |token: &[u8]| {
        server.read_tls(&mut &token[..]).expect("read");
        server.process_new_packets().expect("server");
        let mut out = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut out).expect("write");
        }
        out
    };

    let mut i = tls(GssRole::Initiator, &a, IdSpec::Fqdn("b.example".to_string()), TlsVersions::default());
    let hello = i.step(None).expect("hello");
    let flight = exchange(&hello.token);
    let last = i.step(Some(&flight)).expect("client flight");
    assert!(last.complete);
    let tickets = exchange(&last.token);
    assert!(!tickets.is_empty(), "the server sent no tickets");
    assert_eq!(i.step(Some(&tickets)).expect("tickets"), GssStep { token: Vec::new(), complete: true });
    let exported = server
        .export_keying_material(vec![0u8; TLS_SECRET_LEN], TLS_EXPORTER_LABEL, TLS_EXPORTER_CONTEXT)
        .expect("export");
    assert_eq!(i.session_secret().expect("secret").expose(), exported.as_slice());
    assert_eq!(i.peer().expect("peer").id, format!("dn:{B_DN}"));
}

/// The initiator's first ClientHello, as a token.
fn client_hello() -> Vec<u8> {
    let mut i = tls(GssRole::Initiator, &P256.a, IdSpec::Auto, TlsVersions::default());
    i.step(None).expect("hello").token
}

fn responder() -> TlsMechanism {
    tls(GssRole::Responder, &P256.b, IdSpec::Auto, TlsVersions::default())
}

fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![content_type, 3, 3];
    out.extend_from_slice(&u16::try_from(body.len()).expect("short").to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn garbage_truncated_and_oversize_tokens_fail() {
    let hello = client_hello();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("text", b"GET / HTTP/1.1\r\n\r\n".to_vec(), "not TLS records"),
        ("cut header", hello[..3].to_vec(), "ends inside a TLS record header"),
        ("cut record", hello[..hello.len() / 2].to_vec(), "cut short"),
        ("oversize", vec![0x16; MAX_TLS_TOKEN + 1], "over the limit of 65536"),
        ("handshake garbage", record(22, &[0xde, 0xad, 0xbe, 0xef, 0, 0]), "TLS handshake failed"),
        ("alert", record(21, &[2, 40]), "TLS alert HandshakeFailure"),
        ("application data first", record(23, &[1; 32]), "TLS handshake failed"),
        (
            "record over the limit",
            {
                let mut r = vec![22, 3, 3, 0x48, 0x01];
                r.resize(5 + 0x4801, 0);
                r
            },
            "over TLS's limit",
        ),
    ];
    for (name, token, words) in cases {
        let mut r = responder();
        let e = r.step(Some(&token)).expect_err(name);
        assert!(e.0.contains(words), "{name}: {e}");
        assert!(r.step(Some(&hello)).is_err(), "{name}: a failed mechanism carried on");
    }
    // Nothing or an empty token where the handshake needs one.
    assert!(responder().step(None).expect_err("none").0.contains("no GSS-API token"));
    assert!(responder().step(Some(&[])).expect_err("empty").0.contains("empty GSS-API token"));
    // The initiator: garbage as the server's flight, a token in place of its own first one.
    let mut i = tls(GssRole::Initiator, &P256.a, IdSpec::Auto, TlsVersions::default());
    i.step(None).expect("hello");
    assert!(i.step(Some(&record(22, &[2, 0, 0, 1, 0]))).is_err());
    let mut i = tls(GssRole::Initiator, &P256.a, IdSpec::Auto, TlsVersions::default());
    assert!(i.step(Some(&hello)).expect_err("first").0.contains("before the initiator's first one"));
}

/// A ClientHello cut into one-byte records, one per token: the responder waits (empty token, not complete)
/// while it lacks the rest, and stops the exchange after MAX_TLS_STEPS steps.
#[test]
fn too_many_steps_are_refused() {
    let hello = client_hello();
    // Handshake records only: the ClientHello is one plaintext handshake record.
    assert_eq!(hello[0], 22);
    let body = &hello[5..];
    // Two halves in two tokens: allowed, the second step answers.
    let mut r = responder();
    let (first, second) = body.split_at(body.len() / 2);
    assert_eq!(r.step(Some(&record(22, first))).expect("half"), GssStep { token: Vec::new(), complete: false });
    assert!(!r.step(Some(&record(22, second))).expect("rest").token.is_empty());
    // One byte per token: refused at the ninth step.
    let mut r = responder();
    for n in 0..MAX_TLS_STEPS as usize {
        let step = r.step(Some(&record(22, &body[n..=n]))).expect("byte");
        assert!(step.token.is_empty() && !step.complete);
    }
    let e = r.step(Some(&record(22, &body[8..9]))).expect_err("ninth");
    assert!(e.0.contains("did not finish within 8 GSS-API steps"), "{e}");
}

/// The state machine keeps mechanisms as `Box<dyn GssMechanism>` in an SA that moves between threads.
#[test]
fn mechanisms_are_send() {
    fn send<T: Send>() {}
    send::<TlsMechanism>();
    send::<AnonymousMechanism>();
    let boxed: Vec<Box<dyn GssMechanism>> = vec![
        Box::new(AnonymousMechanism::initiator()),
        Box::new(tls(GssRole::Initiator, &P256.a, IdSpec::Auto, TlsVersions::default())),
    ];
    assert_eq!(boxed.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes as the first token: a failure or a wait, never a panic or a completion.
    #[test]
    fn random_first_token_never_panics(token in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let mut r = responder();
        if let Ok(step) = r.step(Some(&token)) {
            prop_assert!(!step.complete);
        }
    }

    /// Random records (valid framing, random contents): the same.
    #[test]
    fn random_records_never_panic(
        records in proptest::collection::vec((20u8..=23, proptest::collection::vec(any::<u8>(), 0..600)), 1..6)
    ) {
        let token: Vec<u8> = records.iter().flat_map(|(t, body)| record(*t, body)).collect();
        let mut r = responder();
        if let Ok(step) = r.step(Some(&token)) {
            prop_assert!(!step.complete);
        }
    }

    /// A real ClientHello with bytes changed, and the server flight changed on its way to the initiator.
    #[test]
    fn mutated_tokens_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        to_initiator in any::<bool>(),
    ) {
        let mut i = tls(GssRole::Initiator, &P256.a, IdSpec::Auto, TlsVersions::default());
        let mut r = responder();
        let mut hello = i.step(None).expect("hello").token;
        if to_initiator {
            let mut flight = r.step(Some(&hello)).expect("flight").token;
            for (at, byte) in &flips {
                let n = at.index(flight.len());
                flight[n] ^= byte | 1;
            }
            let _ = i.step(Some(&flight));
        } else {
            for (at, byte) in &flips {
                let n = at.index(hello.len());
                hello[n] ^= byte | 1;
            }
            let _ = r.step(Some(&hello));
        }
    }
}
