//! Diffie-Hellman: published known answers (RFC 5903 §8 for groups 19/20, RFC 5114 appendix A.3 for group 24),
//! agreement between two generated key pairs for every group, seeded determinism, and the peer-value checks.

use hostsec_proto::crypto::dh::{validate_public_value, DhKeyPair};
use hostsec_proto::crypto::{CryptoError, DhGroup};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Hex as the RFCs print it: groups of digits separated by spaces and line breaks.
fn h(text: &str) -> Vec<u8> {
    hex::decode(text.split_whitespace().collect::<String>()).expect("hex")
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

/// `value + delta` for a big-endian unsigned integer of fixed width (no overflow in the uses below).
fn add_small(value: &[u8], delta: i16) -> Vec<u8> {
    let mut out = value.to_vec();
    let mut carry = i32::from(delta);
    for byte in out.iter_mut().rev() {
        let sum = i32::from(*byte) + carry;
        *byte = sum.rem_euclid(256) as u8;
        carry = sum.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    assert_eq!(carry, 0, "no overflow");
    out
}

fn small(value: u8, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    out[len - 1] = value;
    out
}

fn rejected(group: DhGroup, value: &[u8]) -> &'static str {
    match validate_public_value(group, value) {
        Err(CryptoError::InvalidPublicValue { group: g, why }) => {
            assert_eq!(g, group);
            why
        }
        other => panic!("{group}: expected a rejection, got {other:?}"),
    }
}

// RFC 5903 §8.1, 256-bit random ECP group: i, g^i = (gix, giy), r, g^r = (grx, gry), g^ir = (girx, giry).
const P256_I: &str = "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433";
const P256_GIX: &str = "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180";
const P256_GIY: &str = "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3";
const P256_R: &str = "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53";
const P256_GRX: &str = "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63";
const P256_GRY: &str = "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB";
const P256_GIRX: &str = "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE";
const P256_GIRY: &str = "522BDE0A F0D8585B 8DEF9C18 3B5AE38F 50235206 A8674ECB 5D98EDB2 0EB153A2";

// RFC 5903 §8.2, 384-bit random ECP group.
const P384_I: &str = "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
    E35B5380 41E649EE 3FAEF896 783AB194";
const P384_GIX: &str = "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6
    DE3AC808 ACB4BDB4 C88732AE E95F41AA";
const P384_GIY: &str = "9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E
    EB9FCFF3 C2C947DA E69B4C63 4573A81C";
const P384_R: &str = "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
    E0308312 916B8ED2 960E4BD5 5A7448FC";
const P384_GRX: &str = "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D
    0D1AC43A 0336DEF9 6FDA41D0 774A3571";
const P384_GRY: &str = "DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF
    F83FA401 42209DFF 5EAAD96D B9E6386C";
const P384_GIRX: &str = "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
    D6031355 69B9E9D0 9CF5D4A2 70F59746";
const P384_GIRY: &str = "A2A9F38E F5CAFBE2 347CF7EC 24BDD5E6 24BC93BF A82771F4 0D1B65D0 6256A852
    C983135D 4669F879 2F2C1D55 718AFBB4";

struct EcpVector {
    group: DhGroup,
    i: &'static str,
    gi: (&'static str, &'static str),
    r: &'static str,
    gr: (&'static str, &'static str),
    gir: (&'static str, &'static str),
}

const RFC5903: [EcpVector; 2] = [
    EcpVector {
        group: DhGroup::Ecp256,
        i: P256_I,
        gi: (P256_GIX, P256_GIY),
        r: P256_R,
        gr: (P256_GRX, P256_GRY),
        gir: (P256_GIRX, P256_GIRY),
    },
    EcpVector {
        group: DhGroup::Ecp384,
        i: P384_I,
        gi: (P384_GIX, P384_GIY),
        r: P384_R,
        gr: (P384_GRX, P384_GRY),
        gir: (P384_GIRX, P384_GIRY),
    },
];

#[test]
fn rfc5903_ecp_vectors() {
    for v in &RFC5903 {
        let initiator = DhKeyPair::from_private_bytes_for_test(v.group, &h(v.i)).unwrap();
        let responder = DhKeyPair::from_private_bytes_for_test(v.group, &h(v.r)).unwrap();
        // RFC 5903 §7: the KE body is x | y.
        let gi = concat(&h(v.gi.0), &h(v.gi.1));
        let gr = concat(&h(v.gr.0), &h(v.gr.1));
        assert_eq!(initiator.public_value(), gi, "{}: g^i", v.group);
        assert_eq!(responder.public_value(), gr, "{}: g^r", v.group);
        validate_public_value(v.group, &gi).unwrap();
        validate_public_value(v.group, &gr).unwrap();
        // RFC 5903 §9: the shared secret is the x coordinate of g^ir.
        let girx = h(v.gir.0);
        assert_eq!(initiator.agree(&gr).unwrap().expose(), girx, "{}: initiator's g^ir", v.group);
        assert_eq!(responder.agree(&gi).unwrap().expose(), girx, "{}: responder's g^ir", v.group);
        // g^ir itself is a point on the curve, so it passes as a public value too.
        validate_public_value(v.group, &concat(&girx, &h(v.gir.1))).unwrap();
    }
}

// RFC 5114 §2.3 and appendix A.3: the 2048-bit MODP group with a 256-bit prime-order subgroup.
const P24: &str = "87A8E61D B4B6663C FFBBD19C 65195999 8CEEF608 660DD0F2
    5D2CEED4 435E3B00 E00DF8F1 D61957D4 FAF7DF45 61B2AA30
    16C3D911 34096FAA 3BF4296D 830E9A7C 209E0C64 97517ABD
    5A8A9D30 6BCF67ED 91F9E672 5B4758C0 22E0B1EF 4275BF7B
    6C5BFC11 D45F9088 B941F54E B1E59BB8 BC39A0BF 12307F5C
    4FDB70C5 81B23F76 B63ACAE1 CAA6B790 2D525267 35488A0E
    F13C6D9A 51BFA4AB 3AD83477 96524D8E F6A167B5 A41825D9
    67E144E5 14056425 1CCACB83 E6B486F6 B3CA3F79 71506026
    C0B857F6 89962856 DED4010A BD0BE621 C3A3960A 54E710C3
    75F26375 D7014103 A4B54330 C198AF12 6116D227 6E11715F
    693877FA D7EF09CA DB094AE9 1E1A1597";
const XA: &str = "0881382C DB87660C 6DC13E61 4938D5B9 C8B2F248 581CC5E3
    1B354543 97FCE50E";
const YA: &str = "2E9380C8 323AF975 45BC4941 DEB0EC37 42C62FE0 ECE824A6
    ABDBE66C 59BEE024 2911BFB9 67235CEB A35AE13E 4EC752BE
    630B92DC 4BDE2847 A9C62CB8 15274542 1FB7EB60 A63C0FE9
    159FCCE7 26CE7CD8 523D7450 667EF840 E4919121 EB5F01C8
    C9B0D3D6 48A93BFB 75689E82 44AC134A F544711C E79A02DC
    C3422668 4780DDDC B4985941 06C37F5B C7985648 7AF5AB02
    2A2E5E42 F09897C1 A85A11EA 0212AF04 D9B4CEBC 937C3C1A
    3E15A8A0 342E3376 15C84E7F E3B8B9B8 7FB1E73A 15AF12A3
    0D746E06 DFC34F29 0D797CE5 1AA13AA7 85BF6658 AFF5E4B0
    93003CBE AF665B3C 2E113A3A 4E905269 341DC071 1426685F
    4EF37E86 8A8126FF 3F2279B5 7CA67E29";
const XB: &str = "7D62A7E3 EF36DE61 7B13D1AF B82C780D 83A23BD4 EE670564
    5121F371 F546A53D";
const YB: &str = "575F0351 BD2B1B81 7448BDF8 7A6C362C 1E289D39 03A30B98
    32C5741F A250363E 7ACBC7F7 7F3DACBC 1F131ADD 8E03367E
    FF8FBBB3 E1C57844 24809B25 AFE4D226 2A1A6FD2 FAB64105
    CA30A674 E07F7809 85208863 2FC04923 3791AD4E DD083A97
    8B883EE6 18BC5E0D D047415F 2D95E683 CF14826B 5FBE10D3
    CE41C6C1 20C78AB2 0008C698 BF7F0BCA B9D7F407 BED0F43A
    FB2970F5 7F8D1204 3963E66D DD320D59 9AD9936C 8F44137C
    08B180EC 5E985CEB E186F3D5 49677E80 607331EE 17AF3380
    A725B078 2317D7DD 43F59D7A F9568A9B B63A84D3 65F92244
    ED120988 219302F4 2924C7CA 90B89D24 F71B0AB6 97823D7D
    EB1AFF5B 0E8E4A45 D49F7F53 757E1913";
const ZZ: &str = "86C70BF8 D0BB81BB 01078A17 219CB7D2 7203DB2A 19C877F1
    D1F19FD7 D77EF225 46A68F00 5AD52DC8 4553B78F C60330BE
    51EA7C06 72CAC151 5E4B35C0 47B9A551 B88F39DC 26DA14A0
    9EF74774 D47C762D D177F9ED 5BC2F11E 52C879BD 95098504
    CD9EECD8 A8F9B3EF BD1F008A C5853097 D9D1837F 2B18F77C
    D7BE01AF 80A7C7B5 EA3CA54C C02D0C11 6FEE3F95 BB873993
    85875D7E 86747E67 6E728938 ACBFF709 8E05BE4D CFB24052
    B83AEFFB 14783F02 9ADBDE7F 53FAE920 84224090 E007CEE9
    4D4BF2BA CE9FFD4B 57D2AF7C 724D0CAA 19BF0501 F6F17B4A
    A10F425E 3EA76080 B4B9D6B3 CEFEA115 B2CEB878 9BB8A3B0
    EA87FEBE 63B6C8F8 46EC6DB0 C26C5D7C";

#[test]
fn rfc5114_a3_modp_vector() {
    let group = DhGroup::Modp2048s256;
    let a = DhKeyPair::from_private_bytes_for_test(group, &h(XA)).unwrap();
    let b = DhKeyPair::from_private_bytes_for_test(group, &h(XB)).unwrap();
    assert_eq!(a.public_value(), h(YA), "yA = g^xA");
    assert_eq!(b.public_value(), h(YB), "yB = g^xB");
    validate_public_value(group, &h(YA)).unwrap();
    validate_public_value(group, &h(YB)).unwrap();
    let zz = h(ZZ);
    assert_eq!(zz.len(), 256);
    assert_eq!(a.agree(&h(YB)).unwrap().expose(), zz, "ZZ = yB^xA");
    assert_eq!(b.agree(&h(YA)).unwrap().expose(), zz, "ZZ = yA^xB");
}

// RFC 3526 §3: the prime of group 14 (the crate's unit tests recompute it from its defining formula).
const P14: &str = "FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1
    29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD
    EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245
    E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D
    C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F
    83655D23 DCA3AD96 1C62F356 208552BB 9ED52907 7096966D
    670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9
    DE2BCBF6 95581718 3995497C EA956AE5 15D22618 98FA0510
    15728E5A 8AACAA68 FFFFFFFF FFFFFFFF";

#[test]
fn generated_pairs_agree_in_every_group() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    for group in DhGroup::ALL {
        let a = DhKeyPair::generate(group, &mut rng).unwrap();
        let b = DhKeyPair::generate(group, &mut rng).unwrap();
        assert_eq!(a.group(), group);
        assert_eq!(a.public_value().len(), group.public_len(), "{group}");
        assert_ne!(a.public_value(), b.public_value(), "{group}");
        validate_public_value(group, a.public_value()).unwrap();
        validate_public_value(group, b.public_value()).unwrap();
        let ab = a.agree(b.public_value()).unwrap();
        let ba = b.agree(a.public_value()).unwrap();
        assert_eq!(ab.len(), group.shared_len(), "{group}");
        assert_eq!(ab.expose(), ba.expose(), "{group}: both sides agree");
        // The same pair agrees again (the private value is kept for a retransmitted KE).
        assert_eq!(a.agree(b.public_value()).unwrap().expose(), ab.expose());
    }
}

#[test]
fn seeded_generation_is_deterministic() {
    for group in DhGroup::ALL {
        let one = DhKeyPair::generate(group, &mut ChaCha20Rng::seed_from_u64(7)).unwrap();
        let two = DhKeyPair::generate(group, &mut ChaCha20Rng::seed_from_u64(7)).unwrap();
        let other = DhKeyPair::generate(group, &mut ChaCha20Rng::seed_from_u64(8)).unwrap();
        assert_eq!(one.public_value(), two.public_value(), "{group}");
        assert_ne!(one.public_value(), other.public_value(), "{group}");
    }
}

#[test]
fn group14_rejects_out_of_range_values() {
    let group = DhGroup::Modp2048;
    let p = h(P14);
    // 0, 1, p-1 (order 2), p, p+1 (not reduced), and all ones.
    assert_eq!(rejected(group, &small(0, 256)), "0 or 1");
    assert_eq!(rejected(group, &small(1, 256)), "0 or 1");
    assert_eq!(rejected(group, &add_small(&p, -1)), "not below p-1");
    assert_eq!(rejected(group, &p), "not below p-1");
    assert_eq!(rejected(group, &add_small(&p, 1)), "not below p-1");
    assert_eq!(rejected(group, &[0xff; 256]), "not below p-1");
    // The extremes that pass: 2 and p-2 (together with p-1 failing this pins the module's p to RFC 3526's).
    validate_public_value(group, &small(2, 256)).unwrap();
    validate_public_value(group, &add_small(&p, -2)).unwrap();
    // Wrong lengths, including a right value without its padding.
    assert_eq!(rejected(group, &small(2, 255)), "wrong length");
    assert_eq!(rejected(group, &small(2, 257)), "wrong length");
    assert_eq!(rejected(group, &[]), "wrong length");
    // agree() applies the same checks.
    let pair = DhKeyPair::generate(group, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    for bad in [small(0, 256), small(1, 256), add_small(&p, -1), p.clone(), small(2, 255)] {
        assert!(matches!(pair.agree(&bad), Err(CryptoError::InvalidPublicValue { .. })));
    }
}

#[test]
fn group24_rejects_values_outside_the_subgroup() {
    let group = DhGroup::Modp2048s256;
    let p = h(P24);
    assert_eq!(rejected(group, &small(0, 256)), "0 or 1");
    assert_eq!(rejected(group, &small(1, 256)), "0 or 1");
    assert_eq!(rejected(group, &add_small(&p, -1)), "not below p-1");
    assert_eq!(rejected(group, &p), "not below p-1");
    assert_eq!(rejected(group, &add_small(&p, 1)), "not below p-1");
    assert_eq!(rejected(group, &small(2, 256)), "not in the prime-order subgroup");
    assert_eq!(rejected(group, &add_small(&p, -2)), "not in the prime-order subgroup");
    // yA + 1 is in range but (overwhelmingly likely) not of order q.
    assert_eq!(rejected(group, &add_small(&h(YA), 1)), "not in the prime-order subgroup");
    assert_eq!(rejected(group, &h(YA)[1..]), "wrong length");
    let a = DhKeyPair::from_private_bytes_for_test(group, &h(XA)).unwrap();
    assert!(matches!(a.agree(&small(2, 256)), Err(CryptoError::InvalidPublicValue { .. })));
}

// RFC 5114 §2.6/§2.7 (the same curves as groups 19/20): the generators, and the field primes.
const P256_GX: &str = "6B17D1F2 E12C4247 F8BCE6E5 63A440F2 77037D81 2DEB33A0 F4A13945 D898C296";
const P256_GY: &str = "4FE342E2 FE1A7F9B 8EE7EB4A 7C0F9E16 2BCE3357 6B315ECE CBB64068 37BF51F5";
const P256_P: &str = "FFFFFFFF 00000001 00000000 00000000 00000000 FFFFFFFF FFFFFFFF FFFFFFFF";
const P384_GX: &str = "AA87CA22 BE8B0537 8EB1C71E F320AD74 6E1D3B62 8BA79B98
    59F741E0 82542A38 5502F25D BF55296C 3A545E38 72760AB7";
const P384_GY: &str = "3617DE4A 96262C6F 5D9E98BF 9292DC29 F8F41DBD 289A147C
    E9DA3113 B5F0B8C0 0A60B1CE 1D7E819D 7A431D7C 90EA0E5F";

#[test]
fn ecp_validation_edge_cases() {
    for (group, gx, gy) in [(DhGroup::Ecp256, P256_GX, P256_GY), (DhGroup::Ecp384, P384_GX, P384_GY)] {
        let (gx, gy) = (h(gx), h(gy));
        let n = gx.len();
        validate_public_value(group, &concat(&gx, &gy)).unwrap();
        // Off the curve: y + 1, and (1, 1).
        assert_eq!(rejected(group, &concat(&gx, &add_small(&gy, 1))), "not a point on the curve");
        assert_eq!(rejected(group, &concat(&small(1, n), &small(1, n))), "not a point on the curve");
        // The all-zero body (what the point at infinity would look like) and wrong lengths.
        assert_eq!(rejected(group, &vec![0u8; 2 * n]), "all zero");
        assert_eq!(rejected(group, &gx), "wrong length");
        assert_eq!(rejected(group, &concat(&[0x04], &concat(&gx, &gy))), "wrong length");
        assert_eq!(rejected(group, &[]), "wrong length");
        // agree() refuses the same points.
        let pair = DhKeyPair::generate(group, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
        assert!(matches!(pair.agree(&concat(&gx, &add_small(&gy, 1))), Err(CryptoError::InvalidPublicValue { .. })));
        assert!(matches!(pair.agree(&vec![0u8; 2 * n]), Err(CryptoError::InvalidPublicValue { .. })));
        assert!(pair.agree(&concat(&gx, &gy)).is_ok());
    }
    // A coordinate equal to the field prime is not reduced: rejected even though it is 32 bytes.
    let p = h(P256_P);
    assert_eq!(rejected(DhGroup::Ecp256, &concat(&p, &h(P256_GY))), "not a point on the curve");
    // A P-384 point is the wrong length for P-256 and the other way round.
    let p384_g = concat(&h(P384_GX), &h(P384_GY));
    assert_eq!(rejected(DhGroup::Ecp256, &p384_g), "wrong length");
    assert_eq!(rejected(DhGroup::Ecp384, &concat(&h(P256_GX), &h(P256_GY))), "wrong length");
}

#[test]
fn test_import_rejects_out_of_range_private_values() {
    assert!(DhKeyPair::from_private_bytes_for_test(DhGroup::Ecp256, &[0u8; 32]).is_err());
    assert!(DhKeyPair::from_private_bytes_for_test(DhGroup::Ecp256, &[0xff; 32]).is_err());
    assert!(DhKeyPair::from_private_bytes_for_test(DhGroup::Ecp256, &h(P384_I)).is_err());
    assert!(DhKeyPair::from_private_bytes_for_test(DhGroup::Modp2048s256, &[0u8; 32]).is_err());
    assert!(DhKeyPair::from_private_bytes_for_test(DhGroup::Modp2048s256, &[0xff; 32]).is_err());
    assert!(DhKeyPair::from_private_bytes_for_test(DhGroup::Modp2048, &[1]).is_err());
    assert!(DhKeyPair::from_private_bytes_for_test(DhGroup::Modp2048, &[]).is_err());
    assert!(DhKeyPair::from_private_bytes_for_test(DhGroup::Modp2048, &[2]).is_ok());
}

#[test]
fn debug_output_shows_no_private_value() {
    let pair = DhKeyPair::from_private_bytes_for_test(DhGroup::Ecp256, &h(P256_I)).unwrap();
    let text = format!("{pair:?}");
    assert!(text.contains(&hex::encode(h(P256_GIX))), "the public value is shown: {text}");
    assert!(!text.to_lowercase().contains(&hex::encode(h(P256_I))), "the private value is not: {text}");
    let secret = pair.agree(&concat(&h(P256_GRX), &h(P256_GRY))).unwrap();
    assert!(!format!("{secret:?}").to_lowercase().contains(&hex::encode(h(P256_GIRX))));
}

#[test]
fn modp_groups_work_from_several_threads() {
    // The group constants are shared process-wide; first use may race between threads.
    std::thread::scope(|scope| {
        for seed in 0..4u64 {
            scope.spawn(move || {
                let mut rng = ChaCha20Rng::seed_from_u64(100 + seed);
                for group in [DhGroup::Modp2048, DhGroup::Modp2048s256] {
                    let a = DhKeyPair::generate(group, &mut rng).unwrap();
                    let b = DhKeyPair::generate(group, &mut rng).unwrap();
                    assert_eq!(a.agree(b.public_value()).unwrap(), b.agree(a.public_value()).unwrap());
                }
            });
        }
    });
}
