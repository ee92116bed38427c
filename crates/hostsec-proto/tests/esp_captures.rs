//! Every ESP packet of the public capture corpus (`../shared/captures`, INDEX.md section F) whose SA uses an
//! algorithm hostsec supports, decrypted with the keys published next to the capture (`<capture>.esp_sa`,
//! Wireshark's format) and compared with tshark's reading (`ground-truth/<capture>.txt`): the ICV verifies where
//! tshark says `icv=good`, the next header and the inner protocol are the same, and the rebuilt inner packets
//! carry valid checksums (ICMP; ICMPv6 over the pseudo-header, which proves the rebuilt IPv6 header).
//!
//! Transport mode (the Wireshark wiki's `ipsec_esp_capture_1`, IPv4 and IPv6) goes through `InboundSa::open`;
//! tunnel mode (ipdecap, Wireshark bug 12671, ESP-in-ESP) must be refused by `open` as `TunnelMode` after
//! authentication, and its payload is checked through the crypto core; UDP-encapsulated ESP (the IKEv2 NAT-T
//! capture, the only AES-GCM ESP with keys) goes through `open_esp`.
//!
//! The captures are public data from other projects: they are read in place and never copied into the
//! project. Without the folder (or `$HOSTSEC_CAPTURES`), the test prints SKIPPED and passes.

mod esp_util;

use esp_util::checksum;
use hostsec_proto::crypto::{EspCipher, EspIntegrity, EspTransform, Secret};
use hostsec_proto::esp::{
    parse_trailer, DropReason, InboundSa, LifetimeLimits, OpeningKeys, SaConfig, SaCounters, PROTO_ESP,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

fn captures_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("HOSTSEC_CAPTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/captures"),
    };
    dir.join("ground-truth").is_dir().then_some(dir)
}

/// Frames of a pcap/pcapng (optionally gzipped) capture: (link type, bytes), numbered from 1 as tshark does.
fn read_frames(path: &Path) -> Vec<(u32, Vec<u8>)> {
    let mut bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
        bytes = out;
    }
    let mut frames = Vec::new();
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut linktypes = Vec::new();
        while let Some(block) = reader.next_block() {
            match block.unwrap() {
                Block::SectionHeader(_) => linktypes.clear(),
                Block::InterfaceDescription(idb) => linktypes.push(u32::from(idb.linktype)),
                Block::EnhancedPacket(epb) => {
                    frames.push((linktypes[epb.interface_id as usize], epb.data.into_owned()));
                }
                Block::SimplePacket(spb) => frames.push((linktypes[0], spb.data.into_owned())),
                _ => {}
            }
        }
    } else {
        let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
        let linktype = u32::from(reader.header().datalink);
        while let Some(p) = reader.next_raw_packet() {
            frames.push((linktype, p.unwrap().data.into_owned()));
        }
    }
    frames
}

/// The IP packet in a frame (Ethernet with VLAN tags, DLT_NULL/LOOP, raw IP, Linux cooked).
fn network_layer(linktype: u32, data: &[u8]) -> Option<&[u8]> {
    match linktype & 0xffff {
        0 | 108 => data.get(4..),
        1 => {
            let mut at = 12;
            loop {
                match u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?) {
                    0x8100 | 0x88a8 => at += 4,
                    0x0800 | 0x86dd => return data.get(at + 2..),
                    _ => return None,
                }
            }
        }
        101 | 12 | 14 | 228 | 229 => Some(data),
        113 => data.get(16..),
        276 => data.get(20..),
        _ => None,
    }
}

/// One `esp_sa` line: "IPv4","src","dst","spi","encryption","key","authentication","key".
#[derive(Debug, Clone)]
struct SaLine {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    spi: Option<u32>,
    /// The transform and keys, or why hostsec cannot use this SA.
    usable: Result<(EspTransform, Vec<u8>, Vec<u8>), String>,
}

fn key_bytes(s: &str) -> Vec<u8> {
    match s.strip_prefix("0x") {
        Some(h) => hex::decode(h).unwrap(),
        None => s.as_bytes().to_vec(), // the wiki's keys are ASCII strings
    }
}

fn parse_sa_line(line: &str) -> SaLine {
    let f: Vec<&str> = line.split("\",\"").map(|s| s.trim_matches('"')).collect();
    assert_eq!(f.len(), 8, "{line}");
    let addr = |s: &str| if s == "*" { None } else { Some(s.parse::<IpAddr>().unwrap()) };
    let spi = match f[3] {
        "*" => None,
        s => Some(match s.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).unwrap(),
            None => s.parse().unwrap(),
        }),
    };
    let (enc, int) = (key_bytes(f[5]), key_bytes(f[7]));
    let cipher = match (f[4], enc.len()) {
        ("AES-CBC [RFC3602]", 16) => Ok(EspCipher::AesCbc128),
        ("AES-CBC [RFC3602]", 24) => Ok(EspCipher::AesCbc192),
        ("AES-CBC [RFC3602]", 32) => Ok(EspCipher::AesCbc256),
        ("AES-GCM with 16 octet ICV [RFC4106]", 20) => Ok(EspCipher::AesGcm16_128),
        ("AES-GCM with 16 octet ICV [RFC4106]", 28) => Ok(EspCipher::AesGcm16_192),
        ("AES-GCM with 16 octet ICV [RFC4106]", 36) => Ok(EspCipher::AesGcm16_256),
        (other, _) => Err(other.to_string()),
    };
    let integrity = match f[6] {
        "HMAC-SHA-1-96 [RFC2404]" => Ok(EspIntegrity::HmacSha1_96),
        "HMAC-SHA-256-128 [RFC4868]" => Ok(EspIntegrity::HmacSha256_128),
        "NULL" => Ok(EspIntegrity::None),
        other => Err(other.to_string()),
    };
    let usable = match (cipher, integrity) {
        (Ok(cipher), Ok(integrity)) if cipher.is_aead() == (integrity == EspIntegrity::None) => {
            Ok((EspTransform { cipher, integrity }, enc, int))
        }
        (c, i) => Err(format!(
            "{} / {}",
            c.map_or_else(|e| e, |c| c.name().into()),
            i.map_or_else(|e| e, |i| i.name().into())
        )),
    };
    SaLine { src: addr(f[1]), dst: addr(f[2]), spi, usable }
}

/// tshark's reading of one ESP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Truth {
    spi: u32,
    seq: u64,
    in_udp: bool,
    next_header: Option<u8>,
    inner: String,
    icv: String,
}

fn ground_truth(path: &Path) -> BTreeMap<usize, Truth> {
    let mut map = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        if line.starts_with('#') || !line.contains(" ESP ") {
            continue;
        }
        let frame: usize = line.split(' ').next().unwrap().parse().unwrap();
        let field = |name: &str| {
            line.split(' ').find_map(|w| w.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("{line}"))
        };
        let truth = Truth {
            spi: u32::from_str_radix(field("spi").trim_start_matches("0x"), 16).unwrap(),
            seq: field("seq").parse().unwrap_or(0),
            in_udp: line.contains(" in-UDP "),
            next_header: u8::from_str_radix(field("next_header").trim_start_matches("0x"), 16).ok(),
            inner: field("inner").to_string(),
            icv: field("icv").to_string(),
        };
        // Nested ESP has two lines per frame: the outer layer comes first and is the one read here.
        map.entry(frame).or_insert(truth);
    }
    map
}

/// Where the ESP packet is in an IP packet: (src, dst, ESP bytes, in UDP).
fn find_esp(ip: &[u8]) -> Option<(IpAddr, IpAddr, &[u8], bool)> {
    let (src, dst, mut next, mut at, end) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let s: [u8; 4] = ip[12..16].try_into().ok()?;
            let d: [u8; 4] = ip[16..20].try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), ip[9], ihl, total.min(ip.len()))
        }
        6 => {
            let s: [u8; 16] = ip[8..24].try_into().ok()?;
            let d: [u8; 16] = ip[24..40].try_into().ok()?;
            let total = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            (IpAddr::from(s), IpAddr::from(d), ip[6], 40, total.min(ip.len()))
        }
        _ => return None,
    };
    loop {
        match next {
            50 => return Some((src, dst, ip.get(at..end)?, false)),
            17 => {
                let udp = ip.get(at..end)?;
                let ports = [u16::from_be_bytes([udp[0], udp[1]]), u16::from_be_bytes([udp[2], udp[3]])];
                // RFC 3948: ESP in UDP 4500 starts with a non-zero SPI (zero is the non-ESP marker of IKE).
                if ports.contains(&4500) && udp.len() > 12 && udp[8..12] != [0; 4] {
                    return Some((src, dst, &udp[8..], true));
                }
                return None;
            }
            0 | 43 | 60 => {
                next = *ip.get(at)?;
                at += (usize::from(*ip.get(at + 1)?) + 1) * 8;
            }
            _ => return None,
        }
    }
}

fn inner_protocol_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        50 => "esp",
        58 => "icmpv6",
        _ => "other",
    }
}

/// Checks an inner (decrypted) packet against tshark's `inner=` chain, and its upper-layer checksum where the
/// protocol has one we can verify without more context.
fn check_inner(file: &str, frame: usize, next_header: u8, inner: &[u8], truth: &Truth) {
    match next_header {
        4 => {
            // Tunnel mode: an IPv4 packet, "ip:<proto>[:app]" (nested ESP shows as plain "ip").
            assert_eq!(inner[0] >> 4, 4, "{file} #{frame}");
            let ihl = usize::from(inner[0] & 0x0f) * 4;
            assert_eq!(usize::from(u16::from_be_bytes([inner[2], inner[3]])), inner.len(), "{file} #{frame}");
            assert_eq!(checksum(&inner[..ihl]), 0, "{file} #{frame}: inner IPv4 header checksum");
            let proto = inner[9];
            let mut chain = truth.inner.split(':');
            assert_eq!(chain.next(), Some("ip"), "{file} #{frame}");
            assert_eq!(chain.next().unwrap_or("esp"), inner_protocol_name(proto), "{file} #{frame}");
            if proto == 1 {
                assert_eq!(checksum(&inner[ihl..]), 0, "{file} #{frame}: ICMP checksum");
            }
        }
        _ => {
            assert_eq!(truth.inner, inner_protocol_name(next_header), "{file} #{frame}");
        }
    }
}

/// The ICMPv6 checksum over the IPv6 pseudo-header (RFC 8200 §8.1): zero when the rebuilt header is right.
fn icmpv6_checksum_ok(packet: &[u8]) -> bool {
    let body = &packet[40..];
    let mut pseudo = packet[8..40].to_vec();
    pseudo.extend_from_slice(&(body.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(body);
    checksum(&pseudo) == 0
}

#[derive(Debug, Default)]
struct FileResult {
    transport_opened: usize,
    tunnel_refused: usize,
    udp_opened: usize,
    duplicates: usize,
    unsupported: BTreeMap<String, usize>,
}

fn run_file(dir: &Path, file: &str) -> FileResult {
    let sa_lines: Vec<SaLine> = std::fs::read_to_string(dir.join(format!("{file}.esp_sa")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(parse_sa_line)
        .collect();
    let truth = ground_truth(&dir.join("ground-truth").join(format!("{file}.txt")));
    let mut result = FileResult::default();
    let mut sas: HashMap<(u32, IpAddr, IpAddr), InboundSa> = HashMap::new();
    let mut seen: HashSet<(u32, IpAddr, u64)> = HashSet::new();
    let mut visited = HashSet::new();
    for (i, (linktype, data)) in read_frames(&dir.join(file)).iter().enumerate() {
        let frame = i + 1;
        let Some(ip) = network_layer(*linktype, data) else { continue };
        let Some((src, dst, esp, in_udp)) = find_esp(ip) else { continue };
        visited.insert(frame);
        let spi = u32::from_be_bytes(esp[..4].try_into().unwrap());
        let seq = u64::from(u32::from_be_bytes(esp[4..8].try_into().unwrap()));
        let t = truth.get(&frame).unwrap_or_else(|| panic!("{file} #{frame}: ESP that tshark did not list"));
        assert_eq!((t.spi, t.seq, t.in_udp), (spi, seq, in_udp), "{file} #{frame}");
        let line = sa_lines
            .iter()
            .find(|l| {
                l.spi.is_none_or(|s| s == spi)
                    && l.src.is_none_or(|a| a == src)
                    && l.dst.is_none_or(|a| a == dst)
                    && l.src.or(l.dst).is_none_or(|a| a.is_ipv4() == src.is_ipv4())
            })
            .unwrap_or_else(|| panic!("{file} #{frame}: no SA line"));
        let (transform, enc, int) = match &line.usable {
            Ok(u) => u.clone(),
            Err(why) => {
                *result.unsupported.entry(why.clone()).or_default() += 1;
                continue;
            }
        };
        assert_eq!(t.icv, "good", "{file} #{frame}: tshark verified the ICV of every supported SA");
        let config = SaConfig {
            spi,
            transform,
            encryption_key: Secret::from_slice(&enc),
            integrity_key: Secret::from_slice(&int),
            local: dst,
            peer: src,
            limits: LifetimeLimits::UNLIMITED,
            esn: false,
            counters: Arc::new(SaCounters::new()),
        };
        let sa = sas.entry((spi, src, dst)).or_insert_with(|| InboundSa::new(&config).unwrap());
        let core = OpeningKeys::new(transform, &enc, &int).unwrap();
        let first_time = seen.insert((spi, dst, seq));
        let mut out = vec![0u8; ip.len()];
        let now = Instant::now();
        if in_udp {
            match sa.open_esp(now, esp, &mut out) {
                Ok(p) => {
                    assert_eq!(Some(p.next_header), t.next_header, "{file} #{frame}");
                    check_inner(file, frame, p.next_header, p.payload, t);
                    result.udp_opened += 1;
                }
                Err(DropReason::Replayed) if !first_time => result.duplicates += 1,
                Err(e) => panic!("{file} #{frame}: {e}"),
            }
            continue;
        }
        match sa.open(now, ip, &mut out) {
            Ok(opened) => {
                // Transport mode: the rebuilt packet is the datagram the sender's stack wrote.
                assert_eq!(Some(opened.next_header), t.next_header, "{file} #{frame}");
                check_inner(file, frame, opened.next_header, &[], t);
                let p = opened.packet;
                match opened.next_header {
                    1 => {
                        let ihl = usize::from(p[0] & 0x0f) * 4;
                        assert_eq!(checksum(&p[..ihl]), 0, "{file} #{frame}: rebuilt IPv4 header");
                        assert_eq!(checksum(&p[ihl..]), 0, "{file} #{frame}: ICMP checksum");
                    }
                    58 => assert!(icmpv6_checksum_ok(p), "{file} #{frame}: ICMPv6 checksum over the rebuilt header"),
                    other => panic!("{file} #{frame}: unexpected inner protocol {other}"),
                }
                result.transport_opened += 1;
            }
            Err(DropReason::TunnelMode) => {
                // Authenticated, then refused: the payload through the crypto core.
                let len = core.open(esp, seq, false, &mut out).unwrap();
                let (payload_len, next_header) = parse_trailer(&out[..len]).unwrap();
                assert_eq!(Some(next_header), t.next_header, "{file} #{frame}");
                check_inner(file, frame, next_header, &out[..payload_len], t);
                if t.inner == "ip" {
                    // ESP in ESP: the inner packet is the inner ESP layer tshark also listed.
                    assert_eq!(out[9], PROTO_ESP, "{file} #{frame}");
                }
                result.tunnel_refused += 1;
            }
            Err(DropReason::Replayed) if !first_time => result.duplicates += 1,
            Err(e) => panic!("{file} #{frame}: {e}"),
        }
    }
    // Every ESP packet tshark listed was found here, supported or not.
    assert_eq!(visited, truth.keys().copied().collect::<HashSet<_>>(), "{file}");
    result
}

#[test]
fn esp_captures_decrypt_as_tshark_says() {
    let Some(dir) = captures_dir() else {
        println!("SKIPPED: no capture corpus (set HOSTSEC_CAPTURES or put it at ../shared/captures)");
        return;
    };
    // (file, expected transport-mode packets opened, tunnel-mode packets refused after authentication,
    //  UDP-encapsulated packets opened): the counts of tshark's `icv=good` lines for the supported SAs.
    let expected: [(&str, usize, usize, usize); 7] = [
        ("wireshark-wiki-ipsec_esp_capture_1-capture.pcap", 20, 0, 0),
        ("wireshark-wiki-ipsec_esp_capture_2-capture.pcap", 0, 312, 0),
        ("wireshark-esp-bug-12671.pcapng.gz", 0, 6, 0),
        ("ipdecap-aes-cbc_hmac-sha1.cap", 0, 250, 0),
        ("ipdecap-aes192-cbc_hmac-sha1.cap", 0, 250, 0),
        ("ipdecap-aes256-cbc_hmac-sha1.cap", 0, 252, 0),
        ("wireshark-wiki-ipsec_ikev2+esp_aes-gcm_aes-ctr_aes-cbc-capture.pcapng", 0, 0, 16),
    ];
    let mut total = 0;
    for (file, transport, tunnel, udp) in expected {
        let r = run_file(&dir, file);
        println!("{file}: {r:?}");
        assert_eq!((r.transport_opened, r.tunnel_refused, r.udp_opened), (transport, tunnel, udp), "{file}");
        total += r.transport_opened + r.tunnel_refused + r.udp_opened;
    }
    println!("{total} ESP packets of other implementations verified and decrypted");
}
