//! Shared helpers of the ESP tests: transforms, SA pairs with fixed keys, and IPv4/IPv6 packet builders that
//! are written independently of the code under test (their checksums and lengths are computed here).

#![allow(dead_code)]

use hostsec_proto::crypto::{EspCipher, EspIntegrity, EspTransform, Secret};
use hostsec_proto::esp::{InboundSa, LifetimeLimits, OutboundSa, SaConfig, SaCounters};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::net::IpAddr;
use std::sync::Arc;

/// Every transform hostsec negotiates.
pub fn transforms() -> Vec<EspTransform> {
    let mut all = Vec::new();
    for cipher in [EspCipher::AesGcm16_128, EspCipher::AesGcm16_192, EspCipher::AesGcm16_256] {
        all.push(EspTransform { cipher, integrity: EspIntegrity::None });
    }
    for cipher in [EspCipher::AesCbc128, EspCipher::AesCbc192, EspCipher::AesCbc256] {
        for integrity in [EspIntegrity::HmacSha1_96, EspIntegrity::HmacSha256_128] {
            all.push(EspTransform { cipher, integrity });
        }
    }
    all
}

/// Deterministic keys of the right lengths for `t`.
pub fn keys(t: EspTransform, seed: u8) -> (Secret, Secret) {
    let enc: Vec<u8> = (0..t.cipher.keymat_len()).map(|i| seed.wrapping_mul(31).wrapping_add(i as u8)).collect();
    let int: Vec<u8> = (0..t.integrity.key_len()).map(|i| seed.wrapping_mul(17) ^ (i as u8).wrapping_mul(7)).collect();
    (Secret::new(enc), Secret::new(int))
}

/// An SA configuration from `local` to `peer`.
pub fn config(t: EspTransform, spi: u32, local: &str, peer: &str, seed: u8) -> SaConfig {
    let (encryption_key, integrity_key) = keys(t, seed);
    SaConfig {
        spi,
        transform: t,
        encryption_key,
        integrity_key,
        local: local.parse().unwrap(),
        peer: peer.parse().unwrap(),
        limits: LifetimeLimits::UNLIMITED,
        esn: false,
        counters: Arc::new(SaCounters::new()),
    }
}

/// The outbound SA at `a` towards `b` and the matching inbound SA at `b`.
pub fn pair(t: EspTransform, a: &str, b: &str) -> (OutboundSa, InboundSa) {
    pair_with(t, a, b, |_| {})
}

/// [`pair`] with the configuration adjusted by `adjust` (applied to both sides).
pub fn pair_with(t: EspTransform, a: &str, b: &str, adjust: impl Fn(&mut SaConfig)) -> (OutboundSa, InboundSa) {
    let mut out_cfg = config(t, 0x1234_5678, a, b, 1);
    adjust(&mut out_cfg);
    let mut in_cfg = config(t, 0x1234_5678, b, a, 1);
    adjust(&mut in_cfg);
    in_cfg.counters = Arc::new(SaCounters::new());
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    (OutboundSa::new(&out_cfg, &mut rng).unwrap(), InboundSa::new(&in_cfg).unwrap())
}

/// RFC 1071 checksum, written out again here so that the tests do not trust the code under test.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn v4(s: &str) -> [u8; 4] {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => panic!("{s} is not IPv4"),
    }
}

fn v6(s: &str) -> [u8; 16] {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => panic!("{s} is not IPv6"),
    }
}

/// An IPv4 packet with `options` (a multiple of 4 bytes), protocol `proto` and `payload`; valid checksum.
pub fn ipv4(src: &str, dst: &str, proto: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let hl = 20 + options.len();
    let total = hl + payload.len();
    let mut p = vec![0x40 | (hl / 4) as u8, 0x10];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    p.extend_from_slice(&v4(src));
    p.extend_from_slice(&v4(dst));
    p.extend_from_slice(options);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An IPv6 extension header of `kind` with `body_len` (6, 14, 22, …) bytes of options after next header
/// and length; a fragment header (44) is atomic (offset 0, M 0).
pub fn ext(kind: u8, body_len: usize) -> (u8, Vec<u8>) {
    if kind == 44 {
        return (44, vec![0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    }
    assert_eq!((body_len + 2) % 8, 0);
    // PadN option filling the body.
    let mut b = vec![0u8; 2 + body_len];
    b[1] = ((2 + body_len) / 8 - 1) as u8;
    b[2] = 1;
    b[3] = (body_len - 2) as u8;
    (kind, b)
}

/// An IPv6 packet with extension headers `exts` (kind, bytes with room for next header and length), then
/// protocol `proto` and `payload`. Next-header fields are linked here.
pub fn ipv6(src: &str, dst: &str, exts: &[(u8, Vec<u8>)], proto: u8, payload: &[u8]) -> Vec<u8> {
    let ext_len: usize = exts.iter().map(|(_, b)| b.len()).sum();
    let mut p = vec![0x60, 0x0a, 0xbc, 0xde];
    p.extend_from_slice(&((ext_len + payload.len()) as u16).to_be_bytes());
    p.push(exts.first().map_or(proto, |(k, _)| *k));
    p.push(64);
    p.extend_from_slice(&v6(src));
    p.extend_from_slice(&v6(dst));
    for (i, (_, body)) in exts.iter().enumerate() {
        let mut b = body.clone();
        b[0] = exts.get(i + 1).map_or(proto, |(k, _)| *k);
        p.extend_from_slice(&b);
    }
    p.extend_from_slice(payload);
    p
}

/// A TCP-looking payload of `len` bytes (content does not matter to ESP).
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed)).collect()
}

/// An ESP packet (SPI through ICV) built here, with the real keys of `t` (seed 1, as [`pair`] uses) but any
/// plaintext (`plaintext` is payload, padding, pad length and next header, already a multiple of the block for
/// CBC): for packets `seal` would never make, such as bad padding. RFC 4106 / RFC 3602 + RFC 2404/4868
/// directly with aws-lc-rs.
pub fn forge(t: EspTransform, spi: u32, seq: u32, plaintext: &[u8]) -> Vec<u8> {
    use aws_lc_rs::{aead, cipher, hmac};
    let (enc, int) = keys(t, 1);
    let (enc, int) = (enc.expose(), int.expose());
    let header = [spi.to_be_bytes(), seq.to_be_bytes()].concat();
    if t.cipher.is_aead() {
        let (key, salt) = enc.split_at(enc.len() - 4);
        let alg = match key.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            _ => &aead::AES_256_GCM,
        };
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap());
        let iv = u64::from(seq).to_be_bytes();
        let nonce = aead::Nonce::try_assume_unique_for_key(&[salt, &iv[..]].concat()).unwrap();
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(nonce, aead::Aad::from(&header), &mut body).unwrap();
        [&header[..], &iv[..], &body[..]].concat()
    } else {
        let alg = match enc.len() {
            16 => &cipher::AES_128,
            24 => &cipher::AES_192,
            _ => &cipher::AES_256,
        };
        let iv = [0x5a; 16];
        let mut body = plaintext.to_vec();
        let key = cipher::EncryptingKey::cbc(cipher::UnboundCipherKey::new(alg, enc).unwrap()).unwrap();
        key.less_safe_encrypt(&mut body, cipher::EncryptionContext::Iv128(iv.into())).unwrap();
        let mut packet = [&header[..], &iv[..], &body[..]].concat();
        let (mac_alg, icv) = match t.integrity {
            hostsec_proto::crypto::EspIntegrity::HmacSha1_96 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 12),
            _ => (hmac::HMAC_SHA256, 16),
        };
        let tag = hmac::sign(&hmac::Key::new(mac_alg, int), &packet);
        packet.extend_from_slice(&tag.as_ref()[..icv]);
        packet
    }
}
