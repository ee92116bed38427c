//! Cost of the crypto primitives per operation: Diffie-Hellman key generation and generation plus agreement
//! for every group (the CPU cost of one Main Mode or PFS Quick Mode for this side), peer-value validation, the
//! PRF and hash for each hash algorithm, and AES-CBC over a 256-byte message.
//!
//! Run: `cargo bench -p hostsec-proto --bench crypto -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use hostsec_proto::crypto::cipher::cbc_encrypt;
use hostsec_proto::crypto::dh::{validate_public_value, DhKeyPair};
use hostsec_proto::crypto::prf::{hash, prf};
use hostsec_proto::crypto::{DhGroup, HashAlg, IkeCipher};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn dh(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut keygen = c.benchmark_group("dh_keygen");
    keygen.sample_size(20);
    for group in DhGroup::ALL {
        keygen.bench_function(group.name(), |b| b.iter(|| DhKeyPair::generate(black_box(group), &mut rng).unwrap()));
    }
    keygen.finish();

    let mut both = c.benchmark_group("dh_keygen_agree");
    both.sample_size(20);
    for group in DhGroup::ALL {
        let peer = DhKeyPair::generate(group, &mut rng).unwrap();
        both.bench_function(group.name(), |b| {
            b.iter(|| {
                let mine = DhKeyPair::generate(black_box(group), &mut rng).unwrap();
                mine.agree(black_box(peer.public_value())).unwrap()
            })
        });
    }
    both.finish();

    let mut validate = c.benchmark_group("dh_validate_peer");
    for group in DhGroup::ALL {
        let peer = DhKeyPair::generate(group, &mut rng).unwrap();
        validate.bench_function(group.name(), |b| {
            b.iter(|| validate_public_value(black_box(group), black_box(peer.public_value())).unwrap())
        });
    }
    validate.finish();
}

fn prf_and_hash(c: &mut Criterion) {
    let key = [0x5au8; 32];
    // About the size of the HASH_I input with ECP-256 KE values and a short SA.
    let data = [0xa5u8; 256];
    let mut group = c.benchmark_group("prf_256B");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for alg in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
        group.bench_function(alg.name(), |b| b.iter(|| prf(alg, black_box(&key), &[black_box(&data)])));
    }
    group.finish();
    let mut group = c.benchmark_group("hash_256B");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for alg in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
        group.bench_function(alg.name(), |b| b.iter(|| hash(alg, &[black_box(&data)])));
    }
    group.finish();
}

fn cbc(c: &mut Criterion) {
    let iv = [0x11u8; 16];
    let mut group = c.benchmark_group("cbc_encrypt_256B");
    group.throughput(Throughput::Bytes(256));
    for cipher in [IkeCipher::AesCbc128, IkeCipher::AesCbc192, IkeCipher::AesCbc256] {
        let key = vec![0x22u8; cipher.key_len()];
        let mut buf = [0u8; 256];
        // Includes the AES key schedule: cbc_encrypt takes the raw key, as the IKE code calls it per message.
        group.bench_function(cipher.name(), |b| {
            b.iter(|| cbc_encrypt(cipher, black_box(&key), &iv, black_box(&mut buf)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, dh, prf_and_hash, cbc);
criterion_main!(benches);
