//! IKEv1 handshake cost in memory: a full Main Mode + Quick Mode between two endpoints, and the responder's CPU
//! time alone, for ECP-256 without PFS and for MODP-2048 with PFS, beside the crypto floor of the same handshake
//! (the DH operations and PRFs that no implementation can skip) measured in the same run. The same ECP-256
//! handshake is measured with certificates (ECDSA P-256, method 9, and RSA-3072, method 3, each host under a
//! root of its own key type, the chain validated on every handshake), and a last pass prints the responders'
//! costs as ratios to the PSK responder's, from handshakes interleaved so that drift hits every case alike.
//!
//! Run: `cargo bench -p hostsec-proto --bench handshake`.

#[path = "../tests/support/pki.rs"]
mod pki;

use criterion::{criterion_group, criterion_main, Criterion};
use hostsec_proto::crypto::cipher::cbc_encrypt;
use hostsec_proto::crypto::dh::DhKeyPair;
use hostsec_proto::crypto::prf::prf;
use hostsec_proto::crypto::{
    DhGroup, EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, MainModeSuite, SigningKey, VerifyingKey,
};
use hostsec_proto::ike::{Endpoint, Event, Timing};
use hostsec_proto::pki::{private_key_from_pem_or_der, CertInfo};
use hostsec_proto::policy::{ConfigFiles, OfferRestriction, Policy};
use pki::KeyKind;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct NoFiles;
impl ConfigFiles for NoFiles {
    fn read_secret(&self, _: &Path) -> Result<Vec<u8>, String> {
        Err("none".into())
    }
}

fn policy(peer: &str, pfs: bool, group: DhGroup) -> Policy {
    let text = format!(
        "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\npsk = \"bench-psk-0123456789abcdef\"\nauto = \"none\"\npfs = {pfs}\n"
    );
    restrict(Policy::from_toml("bench.toml", &text, &NoFiles).expect("bench policy"), group)
}

/// One suite each way, so that every case negotiates the same algorithms and only the authentication differs.
fn restrict(mut p: Policy, group: DhGroup) -> Policy {
    p.rules[0].offer_restriction = Some(OfferRestriction {
        main_mode: vec![MainModeSuite { cipher: IkeCipher::AesCbc128, hash: HashAlg::Sha256, group }],
        esp: vec![EspTransform { cipher: EspCipher::AesGcm16_128, integrity: EspIntegrity::None }],
    });
    p
}

/// Both sides authenticate with certificates of `kind` under one root of the same key type (ECP-256, no PFS),
/// identities `dn:` (the default); also returns what the responder's signature floor needs.
fn cert_setup(kind: KeyKind) -> (Setup, SignatureFloor) {
    let root = pki::root("Bench root", kind);
    let ha = pki::host("a.example", "198.51.100.1", kind, &root);
    let hb = pki::host("b.example", "198.51.100.2", kind, &root);
    let pa = pki::cert_policy("198.51.100.2", &ha, &[], &[&root], None, "");
    let pb = pki::cert_policy("198.51.100.1", &hb, &[], &[&root], None, "");
    let signing =
        |pem: String| SigningKey::from_der(&private_key_from_pem_or_der(pem.as_bytes()).expect("key")).expect("key");
    let public = |der: &[u8]| VerifyingKey::from_spki_der(&CertInfo::parse(der).expect("cert").spki_der).expect("key");
    let hash = vec![3u8; if kind == KeyKind::P384 { 48 } else { 32 }];
    let floor = SignatureFloor {
        own: signing(hb.key_pem()),
        peer_sig: (public(&ha.der()), signing(ha.key_pem()).sign(&hash).expect("sign")),
        issuer_sig: (public(&root.der()), signing(root.key.serialize_pem()).sign(&hash).expect("sign")),
        hash,
    };
    let setup = Setup { pa: Arc::new(restrict(pa, DhGroup::Ecp256)), pb: Arc::new(restrict(pb, DhGroup::Ecp256)) };
    (setup, floor)
}

/// The public-key work that certificates add for the responder: making its SIG_R, verifying the peer's SIG_I,
/// and verifying the CA's signature on the peer's certificate.
struct SignatureFloor {
    own: SigningKey,
    peer_sig: (VerifyingKey, Vec<u8>),
    issuer_sig: (VerifyingKey, Vec<u8>),
    hash: Vec<u8>,
}

impl SignatureFloor {
    fn run(&self) {
        std::hint::black_box(self.own.sign(&self.hash).expect("sign"));
        for (key, sig) in [&self.peer_sig, &self.issuer_sig] {
            key.verify(&self.hash, sig).expect("verify");
        }
    }
}

struct Setup {
    pa: Arc<Policy>,
    pb: Arc<Policy>,
}

const A: &str = "198.51.100.1:500";
const B: &str = "198.51.100.2:500";

/// One complete MM + QM; returns (total time, time spent in the responder).
fn handshake(s: &Setup, seed: u64) -> (Duration, Duration) {
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let mut a = Endpoint::new(s.pa.clone(), Timing::default(), Box::new(ChaCha20Rng::seed_from_u64(seed)));
    let mut b = Endpoint::new(s.pb.clone(), Timing::default(), Box::new(ChaCha20Rng::seed_from_u64(!seed)));
    let now = Instant::now();
    // Chains are validated at wall-clock time, which the core takes from its caller; PSK ignores it.
    a.set_wall_clock(now, pki::now());
    b.set_wall_clock(now, pki::now());
    let start = Instant::now();
    let mut responder = Duration::ZERO;
    a.initiate(now, "r", None, a_addr).expect("initiate");
    let mut up = false;
    while !up {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            let t0 = Instant::now();
            b.handle(now, b_addr, a_addr, &t.payload);
            while let Some(e) = b.poll_event() {
                std::hint::black_box(e);
            }
            responder += t0.elapsed();
            moved = true;
        }
        let t0 = Instant::now();
        let out: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
        responder += t0.elapsed();
        for t in out {
            a.handle(now, a_addr, b_addr, &t.payload);
            moved = true;
        }
        while let Some(e) = a.poll_event() {
            up |= matches!(e, Event::RequestDone { .. });
            assert!(!matches!(e, Event::NegotiationFailed { .. }), "{e:?}");
        }
        assert!(moved || up, "stalled");
    }
    // QM3 still has to reach the responder.
    while let Some(t) = a.poll_transmit() {
        let t0 = Instant::now();
        b.handle(now, b_addr, a_addr, &t.payload);
        while let Some(e) = b.poll_event() {
            std::hint::black_box(e);
        }
        responder += t0.elapsed();
    }
    assert_eq!(b.quick_mode_sas(now).len(), 1);
    (start.elapsed(), responder)
}

/// The responder's unavoidable crypto for one MM + QM with PSK: one (or, with PFS, two) DH key pairs and
/// agreements, SKEYID and its three children, HASH_I/HASH_R, the three QM hashes, two KEYMAT blocks each way,
/// the phase-1 IV hash, and AES-CBC over the four encrypted messages it reads or writes.
fn crypto_floor(group: DhGroup, pfs: bool, peer: &[u8]) {
    let rounds = if pfs { 2 } else { 1 };
    for _ in 0..rounds {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let kp = DhKeyPair::generate(group, &mut rng).unwrap();
        std::hint::black_box(kp.agree(peer).unwrap());
    }
    let key = [7u8; 32];
    let data = [9u8; 256];
    for _ in 0..(4 + 2 + 3 + 4 + 1) {
        std::hint::black_box(prf(HashAlg::Sha256, &key, &[&data[..96]]));
    }
    for _ in 0..4 {
        let mut buf = [0u8; 128];
        std::hint::black_box(cbc_encrypt(IkeCipher::AesCbc128, &key[..16], &[0u8; 16], &mut buf).unwrap());
    }
}

/// Times `f(seed)` over criterion's iterations with fresh seeds (so no two handshakes share cookies or nonces).
fn iter_seeded(bch: &mut criterion::Bencher<'_>, first_seed: u64, f: impl Fn(u64) -> Duration) {
    let mut seed = first_seed;
    bch.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            seed += 1;
            total += f(seed);
        }
        total
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ikev1_mm_qm");
    g.measurement_time(Duration::from_secs(5)).sample_size(30);
    let mut cases: Vec<(&str, Setup)> = Vec::new();
    for (name, group, pfs) in [("ecp256", DhGroup::Ecp256, false), ("modp2048_pfs", DhGroup::Modp2048, true)] {
        let s = Setup {
            pa: Arc::new(policy("198.51.100.2", pfs, group)),
            pb: Arc::new(policy("198.51.100.1", pfs, group)),
        };
        g.bench_function(format!("{name}/full_handshake_both_sides"), |bch| {
            iter_seeded(bch, 0, |n| handshake(&s, n).0)
        });
        g.bench_function(format!("{name}/responder_cpu"), |bch| iter_seeded(bch, 1 << 32, |n| handshake(&s, n).1));
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let peer = DhKeyPair::generate(group, &mut rng).unwrap().public_value().to_vec();
        g.bench_function(format!("{name}/responder_crypto_floor"), |bch| bch.iter(|| crypto_floor(group, pfs, &peer)));
        cases.push((name, s));
    }
    for (name, kind) in [("ecdsa_p256_ecp256", KeyKind::P256), ("rsa3072_ecp256", KeyKind::Rsa3072)] {
        let (s, signatures) = cert_setup(kind);
        g.bench_function(format!("{name}/full_handshake_both_sides"), |bch| {
            iter_seeded(bch, 0, |n| handshake(&s, n).0)
        });
        g.bench_function(format!("{name}/responder_cpu"), |bch| iter_seeded(bch, 1 << 32, |n| handshake(&s, n).1));
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let peer = DhKeyPair::generate(DhGroup::Ecp256, &mut rng).unwrap().public_value().to_vec();
        g.bench_function(format!("{name}/responder_crypto_floor"), |bch| {
            bch.iter(|| {
                crypto_floor(DhGroup::Ecp256, false, &peer);
                signatures.run();
            })
        });
        cases.push((name, s));
    }
    g.finish();
    ratios(&cases);
}

/// Handshakes per case in the ratio pass, taken in turns.
const RATIO_ROUNDS: u64 = 200;

/// Prints each case's median responder CPU per handshake and its ratio to the PSK (ECP-256) responder's. The
/// cases take turns, one handshake each per round, so that frequency changes and other load hit all alike.
fn ratios(cases: &[(&str, Setup)]) {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for round in 0..RATIO_ROUNDS {
        for (i, (_, s)) in cases.iter().enumerate() {
            times[i].push(handshake(s, (2 << 32) + round).1);
        }
    }
    let medians: Vec<Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    println!("\nresponder CPU per MM+QM handshake, median of {RATIO_ROUNDS} interleaved, against PSK (ecp256):");
    for ((name, _), m) in cases.iter().zip(&medians) {
        let ratio = m.as_secs_f64() / medians[0].as_secs_f64();
        println!("  {name:<20} {:>9.1} µs  = {ratio:.2}x PSK responder", m.as_secs_f64() * 1e6);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
