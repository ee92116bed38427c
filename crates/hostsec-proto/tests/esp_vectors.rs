//! Known answers for the ESP crypto:
//!
//! - the 36 ESP packets of the nine strongSwan IKEv1 vectors (`tests/vectors/*.json`, strongSwan 5.9 with the
//!   kernel's ESP, UDP-encapsulated tunnel mode) decrypted with the KEYMAT of the same vector: AES-GCM-16-128/256
//!   and AES-CBC-128/256 with HMAC-SHA-1-96 and HMAC-SHA-256-128, against a real implementation;
//! - the AES-GCM ESP test cases of draft-mcgrew-gcm-test-01 §4 (RFC 4106 has none), 32-bit and 64-bit (ESN)
//!   sequence numbers, 128/192/256-bit keys;
//! - the packets `seal` makes, rebuilt independently here from RFC 4106 / RFC 3602 + RFC 2404/4868 with
//!   aws-lc-rs directly (nonce = salt | IV, AAD = SPI | sequence number, padding 1, 2, 3, …).

mod esp_util;

use aws_lc_rs::{aead, cipher, hmac};
use esp_util::*;
use hostsec_proto::crypto::{EspCipher, EspIntegrity, EspTransform, Secret};
use hostsec_proto::esp::{parse_trailer, DropReason, InboundSa, OpeningKeys, SaConfig, SaCounters, MAX_OVERHEAD};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn unhex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).unwrap()
}

fn vector(name: &str) -> Value {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", &format!("{name}.json")].iter().collect();
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

const VECTORS: [&str; 9] = [
    "01-psk-aes256-sha256-ecp256",
    "02-psk-aes256-sha384-ecp384",
    "03-psk-aes128-sha1-modp2048",
    "04-psk-aes256-sha256-modp2048s256",
    "05-psk-aes192-sha256-ecp256-nopfs",
    "06-cert-ecdsa-p256",
    "07-cert-ecdsa-p384",
    "08-cert-rsa2048",
    "09-psk-aes256-sha1-modp2048-keyexp",
];

/// The negotiated ESP transform of a vector, from the Quick Mode SA attributes (RFC 2407 §4.5: 5 = auth
/// algorithm, 6 = key length).
fn vector_transform(p2: &Value) -> EspTransform {
    let id = p2["selected_transform_id"].as_u64().unwrap() as u8;
    let attrs = &p2["selected_transform_attrs"];
    let bits = attrs["6"].as_u64().map(|b| b as u16);
    let auth = attrs["5"].as_u64().map(|a| a as u16);
    EspTransform { cipher: EspCipher::from_wire(id, bits).unwrap(), integrity: EspIntegrity::from_wire(auth).unwrap() }
}

fn inbound(t: EspTransform, spi: u32, enc: &[u8], int: &[u8], local: &str, peer: &str) -> InboundSa {
    InboundSa::new(&SaConfig {
        spi,
        transform: t,
        encryption_key: Secret::from_slice(enc),
        integrity_key: Secret::from_slice(int),
        local: local.parse().unwrap(),
        peer: peer.parse().unwrap(),
        limits: hostsec_proto::esp::LifetimeLimits::UNLIMITED,
        esn: false,
        counters: Arc::new(SaCounters::new()),
    })
    .unwrap()
}

/// Whether `addr` is in the /24 of `net`.
fn in_24(addr: &[u8], net: &str) -> bool {
    let n: std::net::Ipv4Addr = net.parse().unwrap();
    addr[..3] == n.octets()[..3]
}

#[test]
fn strongswan_esp_packets_decrypt_with_the_vectors_keymat() {
    let mut seen = std::collections::BTreeSet::new();
    for name in VECTORS {
        let v = vector(name);
        let p2 = &v["phase2"];
        let t = vector_transform(p2);
        seen.insert(t);
        let (i_addr, r_addr) = ("203.0.113.1", "203.0.113.2");
        let mut sas = Vec::new();
        for (dir, local, peer) in
            [("KEYMAT_initiator_to_responder", r_addr, i_addr), ("KEYMAT_responder_to_initiator", i_addr, r_addr)]
        {
            let k = &p2[dir];
            let spi = u32::from_str_radix(k["spi"].as_str().unwrap(), 16).unwrap();
            let enc = unhex(k["encr_key"].as_str().unwrap());
            let int = unhex(k["integ_key"].as_str().unwrap());
            sas.push(inbound(t, spi, &enc, &int, local, peer));
        }
        let packets = v["esp_packets"].as_array().unwrap();
        assert_eq!(packets.len(), 4, "{name}");
        for p in packets {
            let esp = unhex(p["esp"].as_str().unwrap());
            let from_initiator = p["src"].as_str().unwrap().starts_with(i_addr);
            let sa = &mut sas[usize::from(!from_initiator)];
            let mut out = vec![0u8; esp.len()];
            let opened = sa.open_esp(Instant::now(), &esp, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(opened.seq, p["seq"].as_u64().unwrap(), "{name}");
            // UDP-encapsulated tunnel mode: an IPv4 packet between the two protected subnets, with a valid
            // header checksum and a length that matches what the padding left.
            assert_eq!(opened.next_header, 4, "{name}: IP-in-IP");
            let inner = opened.payload;
            assert_eq!(inner[0], 0x45, "{name}");
            assert_eq!(usize::from(u16::from_be_bytes([inner[2], inner[3]])), inner.len(), "{name}");
            assert_eq!(checksum(&inner[..20]), 0, "{name}");
            let (src_net, dst_net) =
                if from_initiator { ("192.0.2.0", "198.51.100.0") } else { ("198.51.100.0", "192.0.2.0") };
            assert!(in_24(&inner[12..16], src_net) && in_24(&inner[16..20], dst_net), "{name}: {inner:02x?}");
            if inner[9] == 1 {
                assert_eq!(checksum(&inner[20..]), 0, "{name}: ICMP checksum of the decrypted payload");
            }
        }
    }
    let names: Vec<String> = seen.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        [
            "aes-gcm-16-128",
            "aes-gcm-16-256",
            "aes-cbc-128/hmac-sha1-96",
            "aes-cbc-256/hmac-sha1-96",
            "aes-cbc-256/hmac-sha256-128"
        ],
        "transforms the vectors cover"
    );
}

/// The tunnel-mode refusal comes after authentication and decryption: the window moved, the drop is counted
/// as tunnel mode, and the same packet again is a replay.
#[test]
fn open_refuses_the_strongswan_tunnel_packets_after_authenticating_them() {
    for name in VECTORS {
        let v = vector(name);
        let p2 = &v["phase2"];
        let t = vector_transform(p2);
        let k = &p2["KEYMAT_initiator_to_responder"];
        let spi = u32::from_str_radix(k["spi"].as_str().unwrap(), 16).unwrap();
        let mut sa = inbound(
            t,
            spi,
            &unhex(k["encr_key"].as_str().unwrap()),
            &unhex(k["integ_key"].as_str().unwrap()),
            "203.0.113.2",
            "203.0.113.1",
        );
        let p = &v["esp_packets"][0];
        let esp = unhex(p["esp"].as_str().unwrap());
        // The same ESP packet as raw IP (the daemon's view without UDP encapsulation).
        let outer = ipv4("203.0.113.1", "203.0.113.2", 50, &[], &esp);
        let mut out = vec![0u8; outer.len()];
        assert_eq!(sa.open(Instant::now(), &outer, &mut out).unwrap_err(), DropReason::TunnelMode, "{name}");
        assert_eq!(sa.window().top(), 1, "{name}: authenticated, so the window moved");
        assert_eq!(sa.open(Instant::now(), &outer, &mut out).unwrap_err(), DropReason::Replayed, "{name}");
        let c = sa.counters().snapshot();
        assert_eq!(
            (c.drops_for(DropReason::TunnelMode), c.drops_for(DropReason::Replayed), c.packets),
            (1, 1, 1),
            "{name}"
        );
    }
}

/// One GCM ESP test case of draft-mcgrew-gcm-test-01 §4: key, SPI, sequence number (64 bits when the AAD is
/// 12 bytes: ESN), nonce (salt | IV), plaintext (payload | padding | pad length | next header), ESP packet.
struct GcmCase {
    key: &'static str,
    spi: u32,
    seq: u64,
    esn: bool,
    nonce: &'static str,
    plaintext: &'static str,
    packet: &'static str,
}

const GCM_CASES: [GcmCase; 14] = [
    GcmCase {
        key: "4c80cdefbb5d10da906ac73c3613a634",
        spi: 0x0000_4321,
        seq: 0x8765_4321_0000_0000,
        esn: true,
        nonce: "2e443b684956ed7e3b244cfe",
        plaintext: "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000
                    00000000045f736970045f756470037369700963796265726369747902646b00
                    0021000101020201",
        packet: "00004321000000004956ed7e3b244cfe
                 fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34
                 cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce
                 61bc17d768fd9732459018148f6cbe722fd04796562dfdb4",
    },
    GcmCase {
        key: "feffe9928665731c6d6a8f9467308308",
        spi: 0x0000_a5f8,
        seq: 0x0a,
        esn: false,
        nonce: "cafebabefacedbaddecaf888",
        plaintext: "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100
                    0001000000000000037369700963796265726369747902646b00000100010001",
        packet: "0000a5f80000000afacedbaddecaf888
                 deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c
                 3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1
                 83b70d3aa8bc6ee4c309e9d85a41ad4a",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        spi: 0x4a2c_bfe3,
        seq: 2,
        esn: false,
        nonce: "112233440102030405060708",
        plaintext: "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000
                    7002400020bf0000020405b40101040201020201",
        packet: "4a2cbfe3000000020102030405060708
                 ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763
                 748a637985771d347f0545659f14e99def842d8eb335f4eecfdbf831824b4c49
                 15956c96",
    },
    GcmCase {
        key: "00000000000000000000000000000000",
        spi: 0,
        seq: 1,
        esn: false,
        nonce: "000000000000000000000000",
        plaintext: "4500003c99c500008001cb7a40679318010101010800075c0200440061626364
                    65666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
        packet: "00000000000000010000000000000000
                 4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284
                 456476492719ffb64de7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3
                 f821d496eeb096e98ad2b69e4799c71d",
    },
    GcmCase {
        key: "3de09874b388e6491988d0c3607eae1f",
        spi: 0x42f6_7e3f,
        seq: 0x1010_1010_1010_1010,
        esn: true,
        nonce: "57690e434e280000a2fca1a3",
        plaintext: "4500003c99c300008001cb7c40679318010101010800085c0200430061626364
                    65666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
        packet: "42f67e3f101010104e280000a2fca1a3
                 fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c357917
                 65acbd8701ad79845bf9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a
                 e0d731cc978ecafaeae88f00e80d6e48",
    },
    GcmCase {
        key: "3de09874b388e6491988d0c3607eae1f",
        spi: 0x42f6_7e3f,
        seq: 0x1010_1010_1010_1010,
        esn: true,
        nonce: "57690e434e280000a2fca1a3",
        plaintext: "4500001c42a200008001441f406793b6e00000020a00f5ff01020201",
        packet: "42f67e3f101010104e280000a2fca1a3
                 fba2ca845e5df9f0f22c3e6e86dd831e1fc65792cd1af9130e1379ed369f071f
                 35e034be95f112e4e7d05d35",
    },
    GcmCase {
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c",
        spi: 0x0000_a5f8,
        seq: 0x0a,
        esn: false,
        nonce: "cafebabefacedbaddecaf888",
        plaintext: "45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e
                    501016d075680001",
        packet: "0000a5f80000000afacedbaddecaf888
                 a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0
                 315b27452144cc7795457b9652037f5318027b5b4cd7a636",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aab",
        spi: 0x0000_0100,
        seq: 1,
        esn: true,
        nonce: "decaf888cafedebaceface74",
        plaintext: "4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d5
                    00004e20001e8c18d75b81dc91baa0476b91b924b280389d92c963bac046ec95
                    9b6266c04722b14923010101",
        packet: "0000010000000001cafedebaceface74
                 18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f
                 9190feebaf2cb01984e65863965d7472b79da345e0e780191f0d2f0e0f496c22
                 6f2127b27db35724e7845d68651f57e65f354f75ff17015769623436",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        spi: 0x1740_5e67,
        seq: 0x156f_3126_dd0d_b99b,
        esn: true,
        nonce: "73616c74616e640169766563",
        plaintext: "45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb712602
                    50101f646d540001",
        packet: "17405e67dd0db99b616e640169766563
                 f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57f
                 f4d3a31ce673119e451626c2415771e3b7eebca614c89b35",
    },
    GcmCase {
        key: "3de09874b388e6491988d0c3607eae1f",
        spi: 0x42f6_7e3f,
        seq: 0x1010_1010_1010_1010,
        esn: true,
        nonce: "57690e434e280000a2fca1a3",
        plaintext: "45000049333e00007f119182c3fb1d10c2b1d326c02831ce0035cb458003025b
                    000001e0001e8c18d65759d52284a0352c71475c8880391c764d6e5ee0496b32
                    5ae270c03899493915010101",
        packet: "42f67e3f101010104e280000a2fca1a3
                 fba2cad12fc1f9f00d3cebf305410db83d7784b607323d220f24b0a97d541828
                 00cadb0f68d99ef0e0c0c89ae9bea8884e52d65bc1afd0740f742444747b5b39
                 ab533163aad4550ee5160975cdb608c5769189609763b8e18caa81e2",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        spi: 0x1740_5e67,
        seq: 0x156f_3126_dd0d_b99b,
        esn: true,
        nonce: "73616c74616e640169766563",
        plaintext: "636973636f0172756c65730174686501
                    6e6574776501646566696e6501746865746563686e6f6c6f6769657301746861
                    7477696c6c01646566696e65746f6d6f72726f7701020201",
        packet: "17405e67dd0db99b616e640169766563
                 d4b7ed86a1777f2ea13d6973d324c69e7b43f826fb56831226508bebd2dceb18
                 d0a6df10e5487df074113e14c641024e3e6773d91a62ee429b043a10e3efe6b0
                 12a49363412364f8c0cac587f249e56b11e24f30e44ccc76",
    },
    GcmCase {
        key: "7d773d00c144c525ac619d18c84a3f47",
        spi: 0x3354_67ae,
        seq: 0xffff_ffff,
        esn: false,
        nonce: "d966426743457e9182443bc6",
        plaintext: "01020201",
        packet: "335467aeffffffff43457e9182443bc6437f866bcb3f699fe9b0822bac961c4504bef270",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aab",
        spi: 0x0000_0100,
        seq: 1,
        esn: true,
        nonce: "decaf888cafedebaceface74",
        plaintext: "746f016265016f72016e6f7401746f0162650001",
        packet: "0000010000000001cafedebaceface74
                 29c9fc69a197d038ccdd14e2ddfcaa0543332164412503524303ed3c6c5f2838
                 43af8c3e",
    },
    GcmCase {
        key: "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961",
        spi: 0x796b_6963,
        seq: 0xffff_ffff_ffff_ffff,
        esn: true,
        nonce: "7475726e333021696765746d",
        plaintext: "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364
                    65666768696a6b6c6d6e6f707172737401020201",
        packet: "796b6963ffffffff333021696765746d
                 f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a86
                 4cd3d78ca4ae68a32b42458fb57dbe821dcc63b9d0937ba2945f669368661a32
                 9fb4c053",
    },
];

fn gcm_transform(key_len: usize) -> EspTransform {
    let cipher = match key_len {
        16 => EspCipher::AesGcm16_128,
        24 => EspCipher::AesGcm16_192,
        _ => EspCipher::AesGcm16_256,
    };
    EspTransform { cipher, integrity: EspIntegrity::None }
}

#[test]
fn draft_mcgrew_gcm_test_cases() {
    let mut sizes = std::collections::BTreeSet::new();
    let (mut plain_seq, mut esn) = (0, 0);
    for (n, c) in GCM_CASES.iter().enumerate() {
        let case = n + 1;
        let key = unhex(c.key);
        let nonce = unhex(c.nonce);
        let packet = unhex(c.packet);
        let plaintext = unhex(c.plaintext);
        assert_eq!(&packet[..4], &c.spi.to_be_bytes(), "case {case}");
        assert_eq!(&packet[4..8], &(c.seq as u32).to_be_bytes(), "case {case}");
        assert_eq!(&packet[8..16], &nonce[4..], "case {case}: the IV on the wire is the nonce after the salt");
        sizes.insert(key.len());
        let t = gcm_transform(key.len());
        // KEYMAT = key | salt (RFC 4106 §8.1).
        let keymat = [&key[..], &nonce[..4]].concat();
        // The crypto core, with the whole sequence number.
        let keys = OpeningKeys::new(t, &keymat, &[]).unwrap();
        let mut out = vec![0u8; packet.len()];
        let len = keys.open(&packet, c.seq, c.esn, &mut out).unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert_eq!(&out[..len], &plaintext[..], "case {case}");
        let (payload_len, next_header) = parse_trailer(&out[..len]).unwrap();
        assert_eq!(next_header, *plaintext.last().unwrap(), "case {case}");
        assert_eq!(payload_len, plaintext.len() - 2 - usize::from(plaintext[plaintext.len() - 2]), "case {case}");
        // The other AAD form must fail: the ESN flag is not a formality.
        assert_eq!(keys.open(&packet, c.seq, !c.esn, &mut out), Err(DropReason::AuthenticationFailed), "case {case}");
        if c.esn {
            esn += 1;
            continue;
        }
        plain_seq += 1;
        // 32-bit cases through a whole inbound SA.
        let mut sa = inbound(t, c.spi, &keymat, &[], "192.0.2.1", "192.0.2.2");
        let mut out = vec![0u8; packet.len()];
        let p = sa.open_esp(Instant::now(), &packet, &mut out).unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert_eq!((p.payload, p.next_header, p.seq), (&plaintext[..payload_len], next_header, c.seq), "case {case}");
    }
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [16, 24, 32]);
    assert_eq!((plain_seq, esn), (5, 9));
}

/// Rebuilds a sealed ESP packet (header at `esp[..8]`) from the RFCs with aws-lc-rs alone and checks it equals
/// what `seal` produced. For CBC the IV is taken from the packet (it is secret-derived by design).
fn independent_esp(t: EspTransform, enc: &[u8], int: &[u8], esp: &[u8], seq: u64, payload: &[u8], nh: u8) -> Vec<u8> {
    let spi_seq = &esp[..8];
    if t.cipher.is_aead() {
        let (key, salt) = enc.split_at(enc.len() - 4);
        let alg = match key.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            _ => &aead::AES_256_GCM,
        };
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap());
        let iv = seq.to_be_bytes();
        let nonce = aead::Nonce::try_assume_unique_for_key(&[salt, &iv[..]].concat()).unwrap();
        let pad = (4 - (payload.len() + 2) % 4) % 4;
        let mut plaintext = payload.to_vec();
        plaintext.extend((1..=pad as u8).chain([pad as u8, nh]));
        key.seal_in_place_append_tag(nonce, aead::Aad::from(spi_seq), &mut plaintext).unwrap();
        [spi_seq, &iv[..], &plaintext[..]].concat()
    } else {
        let alg = match enc.len() {
            16 => &cipher::AES_128,
            24 => &cipher::AES_192,
            _ => &cipher::AES_256,
        };
        let iv: [u8; 16] = esp[8..24].try_into().unwrap();
        let pad = (16 - (payload.len() + 2) % 16) % 16;
        let mut plaintext = payload.to_vec();
        plaintext.extend((1..=pad as u8).chain([pad as u8, nh]));
        let key = cipher::EncryptingKey::cbc(cipher::UnboundCipherKey::new(alg, enc).unwrap()).unwrap();
        key.less_safe_encrypt(&mut plaintext, cipher::EncryptionContext::Iv128(iv.into())).unwrap();
        let mut packet = [spi_seq, &iv[..], &plaintext[..]].concat();
        let (mac_alg, icv) = match t.integrity {
            EspIntegrity::HmacSha1_96 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 12),
            _ => (hmac::HMAC_SHA256, 16),
        };
        let tag = hmac::sign(&hmac::Key::new(mac_alg, int), &packet);
        packet.extend_from_slice(&tag.as_ref()[..icv]);
        packet
    }
}

#[test]
fn seal_matches_an_independent_rfc_construction() {
    for t in transforms() {
        let (mut o, _) = pair(t, "192.0.2.1", "192.0.2.2");
        let (enc, int) = keys(t, 1);
        let mut ivs = std::collections::HashSet::new();
        for (n, len) in [0usize, 1, 14, 15, 16, 31, 100, 1380].into_iter().enumerate() {
            let body = payload(len, n as u8);
            let mut buf = vec![0u8; len + MAX_OVERHEAD];
            let s = o.seal_esp(Instant::now(), 6, &body, &mut buf).unwrap();
            let expected = independent_esp(t, enc.expose(), int.expose(), s.esp, s.seq, &body, 6);
            assert_eq!(s.esp, &expected[..], "{} payload {len}", t.name());
            let iv_len = if t.cipher.is_aead() { 8 } else { 16 };
            assert!(ivs.insert(s.esp[8..8 + iv_len].to_vec()), "IVs never repeat");
        }
    }
}

/// CBC IVs look random: no two equal, no relation to the sequence number or the previous ciphertext block
/// (RFC 3602 §2.3), and two SAs with the same keys (different IV-key randomness) use different IVs.
#[test]
fn cbc_ivs_are_unpredictable() {
    let t = EspTransform { cipher: EspCipher::AesCbc128, integrity: EspIntegrity::HmacSha256_128 };
    let c = config(t, 7, "192.0.2.1", "192.0.2.2", 3);
    let mut rng1 = <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(1);
    let mut rng2 = <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(2);
    let mut a = hostsec_proto::esp::OutboundSa::new(&c, &mut rng1).unwrap();
    let mut b = hostsec_proto::esp::OutboundSa::new(&c, &mut rng2).unwrap();
    let mut prev_last_block: Option<Vec<u8>> = None;
    let mut ones = 0u32;
    for _ in 0..1000 {
        let mut buf_a = [0u8; 200];
        let mut buf_b = [0u8; 200];
        let ea = a.seal_esp(Instant::now(), 17, &[0u8; 64], &mut buf_a).unwrap().esp.to_vec();
        let eb = b.seal_esp(Instant::now(), 17, &[0u8; 64], &mut buf_b).unwrap().esp.to_vec();
        let (iva, ivb) = (&ea[8..24], &eb[8..24]);
        assert_ne!(iva, ivb);
        if let Some(prev) = &prev_last_block {
            assert_ne!(iva, &prev[..], "not the previous packet's last ciphertext block");
        }
        prev_last_block = Some(ea[ea.len() - 16 - 16..ea.len() - 16].to_vec());
        ones += iva.iter().map(|b| b.count_ones()).sum::<u32>();
    }
    // 128 000 IV bits: about half set (a wide margin around 64 000; a counter-like IV would be far off).
    assert!((62_000..66_000).contains(&ones), "{ones} ones in 128000 IV bits");
}
