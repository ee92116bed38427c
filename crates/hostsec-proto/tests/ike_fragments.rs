//! IKE fragmentation between two endpoints in memory, over a path that drops every IP datagram larger than its
//! MTU (as a path that drops IP fragments does to the datagrams the kernel would fragment): Main Mode with
//! RSA-3072 certificates and an intermediate CA (MM5 and MM6 of about 2.8 KB) completes with fragments no
//! larger than the fragment size, and does not without the vendor ID that announces them.
//!
//! The path's MTU is 1500 (Ethernet) rather than the default fragment size of 576: MM1 of a certificate rule
//! carries all the proposals of its level and the NAT-T vendor IDs (1448 bytes) and cannot be fragmented, since the peer has not yet
//! said that it reassembles. The fragments themselves are checked against 576.
//!
//! Also the reassembly's bounds on a live SA: too many fragments, too many bytes, a timeout, a newer fragment ID,
//! a fragmented first message, unknown cookies and malformed fragments.

mod support;

use hostsec_proto::ike::{Endpoint, Event, Timing};
use hostsec_proto::policy::{ConfigFiles, Policy};
use hostsec_proto::wire::consts::{exchange, payload, vendor_id};
use hostsec_proto::wire::{FragmentPayload, FragmentRepr, Header, PayloadWriter, Payloads};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use support::pki::{self, KeyKind};

/// IP (20) and UDP (8) headers of an IPv4 datagram.
const IP_UDP: usize = 28;

/// Files served from memory, as the config loader reads them.
#[derive(Default)]
struct MemFiles(HashMap<PathBuf, Vec<u8>>);

impl ConfigFiles for MemFiles {
    fn read_secret(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.read_file(path)
    }
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.0.get(path).cloned().ok_or_else(|| format!("no file {}", path.display()))
    }
}

/// The PEM files of both hosts: RSA-3072 keys throughout, host certificates issued by an intermediate under a
/// root (made once: RSA key generation is slow).
struct Pki {
    root: String,
    hosts: [(String, String); 2],
}

fn test_pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = pki::root("Root", KeyKind::Rsa3072);
        let sub = pki::intermediate("Sub", &root, KeyKind::Rsa3072);
        let host = |cn: &str, ip: &str| {
            let h = pki::host(cn, ip, KeyKind::Rsa3072, &sub);
            (h.cert.pem() + &sub.pem(), h.key_pem())
        };
        Pki { root: root.pem(), hosts: [host("a.example", "198.51.100.1"), host("b.example", "198.51.100.2")] }
    })
}

/// Host `i` (0 = a, 1 = b)'s policy: certificate authentication towards the other, `global` lines in [global].
fn policy(i: usize, global: &str) -> Policy {
    let pki = test_pki();
    let mut files = MemFiles::default();
    let (cert, key) = &pki.hosts[i];
    files.0.insert("/etc/hostsec/host.pem".into(), cert.clone().into_bytes());
    files.0.insert("/etc/hostsec/host.key".into(), key.clone().into_bytes());
    files.0.insert("/etc/hostsec/ca.pem".into(), pki.root.clone().into_bytes());
    let peer = ["198.51.100.2", "198.51.100.1"][i];
    let text = format!(
        "[global]\n{global}\n[[rule]]\nname = \"r\"\nremote = \"{peer}\"\nauto = \"none\"\n\
         authentication = \"certificate\"\ncertificate = \"/etc/hostsec/host.pem\"\n\
         private_key = \"/etc/hostsec/host.key\"\ntrusted_cas = [\"/etc/hostsec/ca.pem\"]\n"
    );
    Policy::from_toml("test.toml", &text, &files).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn addr(i: usize) -> SocketAddr {
    [support::A, support::B][i].parse().unwrap()
}

/// A datagram on the wire: sent by `a`?, the bytes, delivered?
type Sent = (bool, Vec<u8>, bool);

/// Two endpoints, a virtual clock and a path between them. The path sees each datagram and may rewrite it;
/// it returns whether to deliver it.
struct Net {
    ep: [Endpoint; 2],
    now: Instant,
    queue: VecDeque<(usize, Vec<u8>)>,
    wire: Vec<Sent>,
    events: [Vec<Event>; 2],
}

type PathFn = Box<dyn FnMut(bool, &mut Vec<u8>) -> bool>;

impl Net {
    fn new(global: &str, seed: u64) -> Net {
        let now = Instant::now();
        let ep = [0, 1].map(|i| {
            let mut e = Endpoint::new(
                Arc::new(policy(i, global)),
                Timing::default(),
                Box::new(ChaCha20Rng::seed_from_u64(seed + i as u64)),
            );
            e.set_wall_clock(now, pki::now());
            e
        });
        Net { ep, now, queue: VecDeque::new(), wire: Vec::new(), events: [Vec::new(), Vec::new()] }
    }

    /// Moves what the endpoints want to send onto the path.
    fn collect(&mut self, path: &mut PathFn) {
        for i in 0..2 {
            while let Some(t) = self.ep[i].poll_transmit() {
                assert_eq!((t.local, t.remote), (addr(i), addr(1 - i)));
                let mut bytes = t.payload;
                let deliver = path(i == 0, &mut bytes);
                self.wire.push((i == 0, bytes.clone(), deliver));
                if deliver {
                    self.queue.push_back((1 - i, bytes));
                }
            }
            while let Some(e) = self.ep[i].poll_event() {
                self.events[i].push(e);
            }
        }
    }

    /// Runs until nothing is in flight and no timer is due within `limit`.
    fn run(&mut self, mut path: PathFn, limit: Duration) {
        let end = self.now + limit;
        loop {
            self.collect(&mut path);
            while let Some((to, bytes)) = self.queue.pop_front() {
                self.ep[to].handle(self.now, addr(to), addr(1 - to), &bytes);
                self.collect(&mut path);
            }
            match self.ep.iter().filter_map(Endpoint::poll_timeout).min() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for e in &mut self.ep {
                        e.handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
    }

    fn up(&self, i: usize) -> bool {
        self.events[i].iter().any(|e| matches!(e, Event::MainModeUp { .. }))
            && self.events[i].iter().any(|e| matches!(e, Event::QuickModeUp(_)))
    }

    fn failures(&self, i: usize) -> Vec<String> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                Event::NegotiationFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A path whose IP datagrams may not exceed `mtu` bytes.
fn small_path(mtu: usize) -> PathFn {
    Box::new(move |_, bytes: &mut Vec<u8>| bytes.len() + IP_UDP <= mtu)
}

/// Rewrites a cleartext Main Mode message without its vendor ID payloads.
fn strip_vendor_ids(bytes: &mut Vec<u8>) {
    let (hdr, body) = Header::split(bytes).unwrap();
    let kept: Vec<(u8, Vec<u8>)> = Payloads::new(hdr.next_payload, body)
        .map(Result::unwrap)
        .filter(|p| p.kind != payload::VENDOR_ID)
        .map(|p| (p.kind, p.body.to_vec()))
        .collect();
    let mut buf = vec![0u8; bytes.len()];
    let mut w = PayloadWriter::new(&mut buf[Header::LEN..]);
    for (kind, b) in &kept {
        w.push(*kind, b).unwrap();
    }
    let (first, len) = (w.first_payload(), w.len());
    Header { next_payload: first, length: (Header::LEN + len) as u32, ..hdr }.emit(&mut buf).unwrap();
    buf.truncate(Header::LEN + len);
    *bytes = buf;
}

fn is_fragment(bytes: &[u8]) -> bool {
    Header::parse(bytes).is_ok_and(|h| h.next_payload == payload::FRAGMENT)
}

/// The vendor ID payload bodies of a cleartext message.
fn vendor_ids(bytes: &[u8]) -> Vec<Vec<u8>> {
    let (hdr, body) = Header::split(bytes).unwrap();
    Payloads::new(hdr.next_payload, body)
        .map(Result::unwrap)
        .filter(|p| p.kind == payload::VENDOR_ID)
        .map(|p| p.body.to_vec())
        .collect()
}

#[test]
fn certificates_pass_a_path_that_drops_ip_fragments() {
    let mut net = Net::new("", 1);
    net.ep[0].initiate(net.now, "r", None, addr(0)).expect("initiate");
    net.run(small_path(1500), Duration::from_secs(120));
    assert!(net.up(0) && net.up(1), "a: {:#?}\nb: {:#?}", net.events[0], net.events[1]);
    // Nothing was lost to the path, and every fragment fitted 576 bytes with the IP and UDP headers (the default
    // size for IPv4).
    assert!(net.wire.iter().all(|(_, _, delivered)| *delivered));
    assert!(net.wire.iter().filter(|(_, b, _)| is_fragment(b)).all(|(_, b, _)| b.len() + IP_UDP <= 576));
    // MM1 and MM2 announced fragmentation with the capability word.
    let ours = [&vendor_id::FRAGMENTATION_PREFIX[..], &[0x80, 0, 0, 0]].concat();
    let first = |from_a: bool| &net.wire.iter().find(|(a, ..)| *a == from_a).unwrap().1;
    let frag = |b: &Vec<u8>| {
        vendor_ids(b).into_iter().filter(|v| v.starts_with(&vendor_id::FRAGMENTATION_PREFIX)).collect::<Vec<_>>()
    };
    assert_eq!(frag(first(true)), vec![ours.clone()]);
    assert_eq!(frag(first(false)), vec![ours]);
    // MM5 and MM6 (and only they: the rest is small) went as fragments, which came back together.
    for (i, ep) in net.ep.iter().enumerate() {
        let s = ep.stats();
        assert!(s.fragmented_sent >= 1 && s.reassembled >= 1, "side {i}: {s:?}");
        assert_eq!(s.dropped_fragments, 0, "side {i}: {s:?}");
        assert_eq!(
            s.fragments_received,
            net.wire.iter().filter(|(a, b, _)| *a == (i == 1) && is_fragment(b)).count() as u64
        );
    }
    let fragments: Vec<&Vec<u8>> = net.wire.iter().filter(|(_, b, _)| is_fragment(b)).map(|(_, b, _)| b).collect();
    assert!(fragments.len() >= 6, "{} fragments", fragments.len());
    for f in fragments {
        let h = Header::parse(f).unwrap();
        assert_eq!((h.exchange_type, h.flags, h.message_id), (exchange::IDENTITY_PROTECTION, 0, 0));
    }
}

#[test]
fn configured_fragment_size_is_honoured() {
    // A path of 1480 bytes, the fragment size set to it: every datagram (MM1 too) fits exactly.
    let mut net = Net::new("ike_fragment_size = 1480", 2);
    net.ep[0].initiate(net.now, "r", None, addr(0)).expect("initiate");
    net.run(small_path(1480), Duration::from_secs(120));
    assert!(net.up(0) && net.up(1));
    assert!(net.wire.iter().all(|(_, b, delivered)| *delivered && b.len() + IP_UDP <= 1480));
    // Fragments use the room they have: all but the last of a message are exactly the size allowed.
    let largest = net.wire.iter().filter(|(_, b, _)| is_fragment(b)).map(|(_, b, _)| b.len()).max();
    assert_eq!(largest, Some(1480 - IP_UDP));
    // The same path with the default fragment size of 576 works too, with more fragments.
    let mut small = Net::new("", 2);
    small.ep[0].initiate(small.now, "r", None, addr(0)).expect("initiate");
    small.run(small_path(1480), Duration::from_secs(120));
    assert!(small.up(0) && small.up(1));
    let count = |n: &Net| n.wire.iter().filter(|(_, b, _)| is_fragment(b)).count();
    assert!(count(&small) > count(&net), "{} fragments at 576, {} at 1480", count(&small), count(&net));
}

#[test]
fn without_the_vendor_id_nothing_is_fragmented_and_the_path_breaks_it() {
    // The responder does not learn that the initiator reassembles (MM1 rewritten): it neither announces
    // fragmentation in MM2 nor fragments, nor does the initiator; MM5 is lost to the path, again and again.
    let mut net = Net::new("", 3);
    net.ep[0].initiate(net.now, "r", None, addr(0)).expect("initiate");
    let mut first = true;
    let strip_mm1: PathFn = Box::new(move |from_a, bytes: &mut Vec<u8>| {
        if from_a && std::mem::take(&mut first) {
            strip_vendor_ids(bytes);
        }
        bytes.len() + IP_UDP <= 1500
    });
    net.run(strip_mm1, Duration::from_secs(300));
    assert!(!net.up(0) && !net.up(1));
    let mm2 = &net.wire.iter().find(|(from_a, ..)| !from_a).unwrap().1;
    assert!(vendor_ids(mm2).is_empty(), "MM2 answers no fragmentation it was not asked about");
    assert!(net.wire.iter().any(|(_, b, delivered)| !delivered && b.len() + IP_UDP > 1500));
    assert!(net.wire.iter().all(|(_, b, _)| !is_fragment(b)));
    assert!(net.failures(0).iter().any(|r| r.contains("no answer from")), "{:#?}", net.failures(0));

    // Only MM2 rewritten: the responder would fragment MM6, but the initiator never fragments MM5.
    let mut net = Net::new("", 4);
    net.ep[0].initiate(net.now, "r", None, addr(0)).expect("initiate");
    let mut first = true;
    let strip_mm2: PathFn = Box::new(move |from_a, bytes: &mut Vec<u8>| {
        if !from_a && std::mem::take(&mut first) {
            strip_vendor_ids(bytes);
        }
        bytes.len() + IP_UDP <= 1500
    });
    net.run(strip_mm2, Duration::from_secs(300));
    assert!(!net.up(0) && !net.up(1));
    assert!(net.wire.iter().all(|(from_a, b, _)| !(*from_a && is_fragment(b))));

    // The same rewrite over a path that carries large datagrams: it completes, so the rewrite harms nothing.
    let mut net = Net::new("", 5);
    net.ep[0].initiate(net.now, "r", None, addr(0)).expect("initiate");
    let mut first = true;
    let strip_only: PathFn = Box::new(move |from_a, bytes: &mut Vec<u8>| {
        if from_a && std::mem::take(&mut first) {
            strip_vendor_ids(bytes);
        }
        true
    });
    net.run(strip_only, Duration::from_secs(120));
    assert!(net.up(0) && net.up(1));
    assert!(net.wire.iter().all(|(_, b, _)| !is_fragment(b)));
    assert!(net.wire.iter().any(|(_, b, _)| b.len() + IP_UDP > 1500));
}

#[test]
fn lost_fragments_are_resent_with_the_retransmission() {
    // The path loses the second fragment of each side's first fragmented message once; retransmissions carry
    // all the fragments again, with the same ID, and fill the gap.
    let mut net = Net::new("", 6);
    net.ep[0].initiate(net.now, "r", None, addr(0)).expect("initiate");
    let mut lost = [false, false];
    let path: PathFn = Box::new(move |from_a, bytes: &mut Vec<u8>| {
        let side = usize::from(!from_a);
        if is_fragment(bytes) && !lost[side] {
            let (h, body) = Header::split(bytes).unwrap();
            let p = Payloads::new(h.next_payload, body).next().unwrap().unwrap();
            if FragmentPayload::parse(p.body).unwrap().number == 2 {
                lost[side] = true;
                return false;
            }
        }
        bytes.len() + IP_UDP <= 1500
    });
    net.run(path, Duration::from_secs(120));
    assert!(net.up(0) && net.up(1), "a: {:#?}", net.failures(0));
    assert!(net.ep[0].stats().retransmitted >= 1);
    // The repeated fragments that had already come are duplicates at the receiver.
    assert!(net.ep[1].stats().dropped_fragments >= 1);
}

/// A fragment datagram of the SA with cookies `hdr`.
fn fragment(hdr: &Header, id: u16, number: u8, last: bool, data: &[u8]) -> Vec<u8> {
    let repr = FragmentRepr { id, number, last, data: data.to_vec() };
    let mut buf = vec![0u8; 70_000];
    let mut w = PayloadWriter::new(&mut buf[Header::LEN..]);
    w.push(payload::FRAGMENT, &repr).unwrap();
    let len = Header::LEN + w.len();
    Header {
        next_payload: payload::FRAGMENT,
        exchange_type: exchange::IDENTITY_PROTECTION,
        flags: 0,
        message_id: 0,
        length: len as u32,
        ..*hdr
    }
    .emit(&mut buf)
    .unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn reassembly_is_bounded() {
    // Main Mode up to MM4; MM5 (as fragments from a) is held back so that b's SA waits for it.
    let mut net = Net::new("", 7);
    net.ep[0].initiate(net.now, "r", None, addr(0)).expect("initiate");
    net.run(Box::new(|from_a, bytes: &mut Vec<u8>| !(from_a && is_fragment(bytes))), Duration::ZERO);
    let mm5: Vec<Vec<u8>> =
        net.wire.iter().filter(|(a, b, _)| *a && is_fragment(b)).map(|(_, b, _)| b.clone()).collect();
    assert!(mm5.len() >= 3, "MM5 in {} fragments", mm5.len());
    let hdr = Header::parse(&mm5[0]).unwrap();
    let (a, b, now) = (addr(0), addr(1), net.now);
    let b_ep = &mut net.ep[1];
    let dropped = |ep: &Endpoint| ep.stats().dropped_fragments;
    let answered = |ep: &mut Endpoint| std::iter::from_fn(|| ep.poll_transmit()).count();
    let mut expect = 0;

    // Too many fragments: a number beyond 64 is refused, and so is a whole held message with it.
    b_ep.handle(now, b, a, &fragment(&hdr, 7, 1, false, b"x"));
    b_ep.handle(now, b, a, &fragment(&hdr, 7, 65, true, b"x"));
    expect += 2;
    assert_eq!(dropped(b_ep), expect);
    // Too many bytes: more than 16 KiB in all.
    let big = vec![0u8; 6000];
    for n in 1..=3 {
        b_ep.handle(now, b, a, &fragment(&hdr, 8, n, false, &big));
    }
    expect += 3;
    assert_eq!(dropped(b_ep), expect);
    // A contradiction and a duplicate are refused, the held ones kept; another ID supersedes them.
    b_ep.handle(now, b, a, &fragment(&hdr, 9, 2, false, b"x"));
    b_ep.handle(now, b, a, &fragment(&hdr, 9, 1, true, b"x"));
    b_ep.handle(now, b, a, &fragment(&hdr, 9, 2, false, b"x"));
    expect += 2;
    assert_eq!(dropped(b_ep), expect);
    // The real MM5, first fragment aside: supersedes fragment 9/2; b still waits.
    for f in &mm5[1..] {
        b_ep.handle(now, b, a, f);
    }
    expect += 1;
    assert_eq!(dropped(b_ep), expect);
    assert_eq!(answered(b_ep), 0);
    // The reassembly deadline is b's next timer; past it, the held fragments are discarded.
    let deadline = b_ep.poll_timeout().unwrap();
    assert!(deadline <= now + Timing::default().fragment_reassembly);
    b_ep.handle_timeout(deadline);
    expect += mm5.len() as u64 - 1;
    assert_eq!(dropped(b_ep), expect);
    // So the first fragment alone does not complete MM5 any more ...
    b_ep.handle(deadline, b, a, &mm5[0]);
    assert_eq!(answered(b_ep), 0);
    // ... until the rest comes again, in any order, with duplicates: MM6 goes out (as fragments).
    b_ep.handle(deadline, b, a, &mm5[0]);
    expect += 1;
    for f in mm5[1..].iter().rev() {
        b_ep.handle(deadline, b, a, f);
    }
    assert_eq!(dropped(b_ep), expect);
    assert_eq!(b_ep.stats().reassembled, 1);
    assert!(answered(b_ep) >= 2, "MM6 in fragments");

    // A fragmented first message (zero responder cookie) and fragments of unknown cookies are refused.
    let mm1_like = Header { responder_cookie: [0; 8], ..hdr };
    b_ep.handle(deadline, b, a, &fragment(&mm1_like, 1, 1, true, &mm5[0]));
    let unknown = Header { initiator_cookie: [9; 8], responder_cookie: [9; 8], ..hdr };
    b_ep.handle(deadline, b, a, &fragment(&unknown, 1, 1, true, b"x"));
    // Malformed: number 0, encrypted flag, truncated payload.
    let mut zero = fragment(&hdr, 1, 1, true, b"x");
    zero[Header::LEN + 6] = 0;
    b_ep.handle(deadline, b, a, &zero);
    let mut encrypted = fragment(&hdr, 1, 1, true, b"x");
    encrypted[19] = 1;
    b_ep.handle(deadline, b, a, &encrypted);
    let short = fragment(&hdr, 1, 1, true, b"");
    let mut truncated = short[..Header::LEN + 6].to_vec();
    truncated[27] = truncated.len() as u8;
    truncated[Header::LEN + 3] = 6;
    b_ep.handle(deadline, b, a, &truncated);
    expect += 5;
    assert_eq!(dropped(b_ep), expect);
    assert_eq!(answered(b_ep), 0);

    // Fragments held by an SA that goes are counted with it.
    b_ep.handle(deadline, b, a, &fragment(&hdr, 3, 1, false, b"x"));
    b_ep.handle(deadline, b, a, &fragment(&hdr, 3, 2, false, b"x"));
    assert_eq!(dropped(b_ep), expect);
    assert_eq!(b_ep.terminate(deadline, None, None, "test over"), 1);
    assert_eq!(dropped(b_ep), expect + 2);
}
