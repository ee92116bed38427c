//! The fixed PKI of the certificate targets, loaded once per process: a trust store with four CAs and two CRLs,
//! the valid chains under them, and a peer validated from one of them. Every byte comes from committed files
//! (`fuzz/fixtures/`, made by `make-pki.sh`, and the strongSwan vectors' PKI), so a crash input replays against
//! the same certificates it was found with.

use hostsec_proto::pki::{certificates_from_pem_or_der, CertError, TrustStore, ValidatedPeer};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The fuzz PKI's root CA (ECDSA P-256), its intermediate (pathLenConstraint 0) and a host below it with
/// DNS `host.fuzz.example` and IPs 192.0.2.1 and 2001:db8::1 in its subjectAltName.
const ROOT: &[u8] = include_bytes!("../fixtures/root.der");
const INTERMEDIATE: &[u8] = include_bytes!("../fixtures/inter.der");
const HOST: &[u8] = include_bytes!("../fixtures/host.der");
/// A host under the intermediate whose serial the intermediate's CRL lists.
const REVOKED: &[u8] = include_bytes!("../fixtures/revoked.der");
const ROOT_CRL: &[u8] = include_bytes!("../fixtures/root.crl.der");
const INTERMEDIATE_CRL: &[u8] = include_bytes!("../fixtures/inter.crl.der");

/// The strongSwan vectors' PKIs (ECDSA P-256, P-384, RSA-2048): a CA and two hosts each, issued directly.
const VECTOR_PKIS: [(&[u8], &[u8], &[u8]); 3] = [
    (
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/06-cert-ecdsa-p256/ca.pem"),
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/06-cert-ecdsa-p256/a.pem"),
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/06-cert-ecdsa-p256/b.pem"),
    ),
    (
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/07-cert-ecdsa-p384/ca.pem"),
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/07-cert-ecdsa-p384/a.pem"),
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/07-cert-ecdsa-p384/b.pem"),
    ),
    (
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/08-cert-rsa2048/ca.pem"),
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/08-cert-rsa2048/a.pem"),
        include_bytes!("../../crates/hostsec-proto/tests/vectors/pki/08-cert-rsa2048/b.pem"),
    ),
];

/// 2030-01-01 00:00:00 UTC: inside the validity of every fixture (fuzz PKI 2020..2040, vectors 2026-11-29..2036).
pub const NOW_SECS: u64 = 1_893_456_000;

/// Wall-clock times a chain is validated at: inside every validity period, before the fuzz PKI's, after it, and
/// between the two PKIs' starts (fuzz PKI valid, vectors not yet), so that the date checks of every certificate
/// in a path and their explanations are reached.
pub const TIMES: [u64; 4] = [NOW_SECS, 1_546_300_800, 2_240_611_200, 1_795_910_400];

/// A `SystemTime` from seconds since the Unix epoch.
pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A chain that validates against [`Fixtures::trust`] at [`NOW_SECS`].
pub struct Chain {
    /// The end-entity certificate, DER.
    pub leaf: Vec<u8>,
    /// The intermediates to send with it, DER.
    pub intermediates: Vec<Vec<u8>>,
}

/// Everything the certificate targets compare against.
pub struct Fixtures {
    /// The fuzz root and the three vector CAs, with a CRL from each of the fuzz CAs.
    pub trust: TrustStore,
    /// Valid chains: the fuzz host through its intermediate first, then the vector hosts.
    pub chains: Vec<Chain>,
    /// The fuzz host as validated: the peer that ID payloads are checked against.
    pub peer: ValidatedPeer,
}

fn one_der(pem: &[u8]) -> Vec<u8> {
    let certs = certificates_from_pem_or_der(pem).expect("fixture PEM");
    certs[0].to_vec()
}

fn load() -> Fixtures {
    let mut trust = TrustStore::new();
    trust.add_cas(ROOT).expect("fuzz root CA");
    trust.add_crls(ROOT_CRL).expect("fuzz root CRL");
    trust.add_crls(INTERMEDIATE_CRL).expect("fuzz intermediate CRL");
    let mut chains = vec![Chain { leaf: HOST.to_vec(), intermediates: vec![INTERMEDIATE.to_vec()] }];
    for (ca, a, b) in VECTOR_PKIS {
        trust.add_cas(ca).expect("vector CA");
        chains.push(Chain { leaf: one_der(a), intermediates: Vec::new() });
        chains.push(Chain { leaf: one_der(b), intermediates: Vec::new() });
    }
    // A fixture that stopped validating would leave the targets testing only the refusals: fail loudly instead.
    for chain in &chains {
        let intermediates: Vec<&[u8]> = chain.intermediates.iter().map(Vec::as_slice).collect();
        if let Err(e) = trust.validate_chain(&chain.leaf, &intermediates, at(NOW_SECS)) {
            panic!("fixture chain does not validate: {e}");
        }
    }
    let revoked = trust.validate_chain(REVOKED, &[INTERMEDIATE], at(NOW_SECS));
    assert!(matches!(revoked, Err(CertError::Revoked { .. })), "the CRLs are not in effect: {revoked:?}");
    let peer = trust.validate_chain(HOST, &[INTERMEDIATE], at(NOW_SECS)).expect("fuzz host validates");
    assert_eq!(peer.san_dns, ["host.fuzz.example"]);
    assert_eq!(peer.san_ips.len(), 2);
    Fixtures { trust, chains, peer }
}

/// The fixtures, loaded on first use.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(load)
}

/// The fuzz intermediate CA, DER: appended to fuzzer-made end entities so that they can chain to the fuzz root.
pub fn intermediate() -> &'static [u8] {
    INTERMEDIATE
}
