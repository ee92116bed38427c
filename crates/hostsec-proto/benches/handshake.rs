//! IKEv1 handshake cost in memory: a full Main Mode + Quick Mode between two endpoints, and the responder's CPU
//! time alone, for ECP-256 without PFS and for MODP-2048 with PFS, beside the crypto floor of the same handshake
//! (the DH operations and PRFs that no implementation can skip) measured in the same run.
//!
//! Run: `cargo bench -p hostsec-proto --bench handshake`.

use criterion::{criterion_group, criterion_main, Criterion};
use hostsec_proto::crypto::cipher::cbc_encrypt;
use hostsec_proto::crypto::dh::DhKeyPair;
use hostsec_proto::crypto::prf::prf;
use hostsec_proto::crypto::{DhGroup, EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, MainModeSuite};
use hostsec_proto::ike::{Endpoint, Event, Timing};
use hostsec_proto::policy::{ConfigFiles, OfferRestriction, Policy};
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
    let mut p = Policy::from_toml("bench.toml", &text, &NoFiles).expect("bench policy");
    p.rules[0].offer_restriction = Some(OfferRestriction {
        main_mode: vec![MainModeSuite { cipher: IkeCipher::AesCbc128, hash: HashAlg::Sha256, group }],
        esp: vec![EspTransform { cipher: EspCipher::AesGcm16_128, integrity: EspIntegrity::None }],
    });
    p
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

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ikev1_mm_qm");
    g.measurement_time(Duration::from_secs(5)).sample_size(30);
    for (name, group, pfs) in [("ecp256", DhGroup::Ecp256, false), ("modp2048_pfs", DhGroup::Modp2048, true)] {
        let s = Setup {
            pa: Arc::new(policy("198.51.100.2", pfs, group)),
            pb: Arc::new(policy("198.51.100.1", pfs, group)),
        };
        g.bench_function(format!("{name}/full_handshake_both_sides"), |bch| {
            let mut seed = 0;
            bch.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seed += 1;
                    total += handshake(&s, seed).0;
                }
                total
            })
        });
        g.bench_function(format!("{name}/responder_cpu"), |bch| {
            let mut seed = 1 << 32;
            bch.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seed += 1;
                    total += handshake(&s, seed).1;
                }
                total
            })
        });
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let peer = DhKeyPair::generate(group, &mut rng).unwrap().public_value().to_vec();
        g.bench_function(format!("{name}/responder_crypto_floor"), |bch| bch.iter(|| crypto_floor(group, pfs, &peer)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
