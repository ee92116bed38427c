//! NAT traversal end to end between two in-memory endpoints, with simulated NATs between them: the initiator
//! `a` behind a NAPT that maps its ports (and can rebind them), the responder `b` behind a NAT with its ports 500
//! and 4500 forwarded, both, or neither. Every combination of the two `nat_traversal` settings and of who is
//! behind NAT either brings the SAs up (floated to port 4500 with the non-ESP marker, Quick Mode UDP-encapsulated
//! with NAT-OA) or is refused with a reason that names the setting; keepalives come from the NATed side only;
//! a rebound mapping is followed.

mod support;

use hostsec_proto::control::{MainModeEntry, QuickModeEntry};
use hostsec_proto::ike::{Endpoint, Event, NatStatus, RequestId, Timing, Transmit, UdpEncapsulation};
use hostsec_proto::wire::consts::{payload, vendor_id, IKE_PORT, NATT_PORT};
use hostsec_proto::wire::udp_encap::{classify, UdpEncap};
use hostsec_proto::wire::{Header, PayloadWriter, Payloads};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `a`'s own address behind its NAT, and the NAT's public address.
const A_PRIVATE: &str = "192.0.2.10";
const A_NAT: &str = "203.0.113.1";
/// `a`'s address without NAT.
const A_PUBLIC: &str = "198.51.100.1";
/// `b`'s own address behind its NAT (port forwarding), and the NAT's public address.
const B_PRIVATE: &str = "192.0.2.20";
const B_NAT: &str = "203.0.113.2";
/// `b`'s address without NAT.
const B_PUBLIC: &str = "198.51.100.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A NAPT in front of `a`: outbound datagrams get the public address and a mapped port (one per inside
/// address and port); inbound ones are let in only through a mapping.
struct Napt {
    public: IpAddr,
    out: HashMap<SocketAddr, u16>,
    back: HashMap<u16, SocketAddr>,
    next_port: u16,
}

impl Napt {
    fn new(public: IpAddr) -> Self {
        Napt { public, out: HashMap::new(), back: HashMap::new(), next_port: 40000 }
    }

    fn outbound(&mut self, inside: SocketAddr) -> SocketAddr {
        let port = *self.out.entry(inside).or_insert_with(|| {
            self.next_port += 1;
            self.back.insert(self.next_port, inside);
            self.next_port
        });
        SocketAddr::new(self.public, port)
    }

    fn inbound(&self, to: SocketAddr) -> Option<SocketAddr> {
        (to.ip() == self.public).then(|| self.back.get(&to.port()).copied()).flatten()
    }

    /// The NAT forgets its mappings (a reboot, a timeout): the next datagrams get new ports.
    fn rebind(&mut self) {
        self.out.clear();
        self.back.clear();
        self.next_port += 100;
    }
}

/// Who is behind NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    Neither,
    InitiatorBehind,
    ResponderBehind,
    Both,
}

impl Topology {
    const ALL: [Topology; 4] =
        [Topology::Neither, Topology::InitiatorBehind, Topology::ResponderBehind, Topology::Both];

    fn a_behind(self) -> bool {
        matches!(self, Topology::InitiatorBehind | Topology::Both)
    }

    fn b_behind(self) -> bool {
        matches!(self, Topology::ResponderBehind | Topology::Both)
    }

    /// `a`'s own address, and the one `b` sees.
    fn a_addrs(self) -> (IpAddr, IpAddr) {
        if self.a_behind() {
            (ip(A_PRIVATE), ip(A_NAT))
        } else {
            (ip(A_PUBLIC), ip(A_PUBLIC))
        }
    }

    /// `b`'s own address, and the one `a` sees.
    fn b_addrs(self) -> (IpAddr, IpAddr) {
        if self.b_behind() {
            (ip(B_PRIVATE), ip(B_NAT))
        } else {
            (ip(B_PUBLIC), ip(B_PUBLIC))
        }
    }

    /// What NAT-D should show from `a`'s side and from `b`'s.
    fn views(self) -> (NatStatus, NatStatus) {
        let (a, b) = (self.a_behind(), self.b_behind());
        (NatStatus::from_sides(a, b), NatStatus::from_sides(b, a))
    }
}

/// One datagram as it travelled: who sent it, and the addresses on each side of the NATs.
#[derive(Debug, Clone)]
struct Seen {
    from_a: bool,
    /// As the sender sent it.
    sent: Transmit,
}

struct Net {
    a: Endpoint,
    b: Endpoint,
    topo: Topology,
    napt: Napt,
    now: Instant,
    flight: VecDeque<Seen>,
    wire: Vec<Seen>,
    events_a: Vec<Event>,
    events_b: Vec<Event>,
    /// Rewrites the first datagram `a` sends (MM1).
    mm1_hook: Option<fn(&mut Vec<u8>)>,
}

fn policy(remote: IpAddr, nat: &str) -> hostsec_proto::policy::Policy {
    support::rule_policy(&remote.to_string(), &format!("nat_traversal = \"{nat}\""))
}

impl Net {
    fn new(topo: Topology, nat_a: &str, nat_b: &str) -> Net {
        let (_, a_seen) = topo.a_addrs();
        let (_, b_seen) = topo.b_addrs();
        let ep = |p, seed| Endpoint::new(Arc::new(p), Timing::default(), Box::new(ChaCha20Rng::seed_from_u64(seed)));
        Net {
            a: ep(policy(b_seen, nat_a), 1),
            b: ep(policy(a_seen, nat_b), 2),
            topo,
            napt: Napt::new(ip(A_NAT)),
            now: Instant::now(),
            flight: VecDeque::new(),
            wire: Vec::new(),
            events_a: Vec::new(),
            events_b: Vec::new(),
            mm1_hook: None,
        }
    }

    fn initiate(&mut self) -> RequestId {
        let local = SocketAddr::new(self.topo.a_addrs().0, IKE_PORT);
        self.a.initiate(self.now, "r", None, local).expect("initiate")
    }

    fn collect(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.flight.push_back(Seen { from_a: true, sent: t });
        }
        while let Some(t) = self.b.poll_transmit() {
            self.flight.push_back(Seen { from_a: false, sent: t });
        }
        self.events_a.extend(std::iter::from_fn(|| self.a.poll_event()));
        self.events_b.extend(std::iter::from_fn(|| self.b.poll_event()));
    }

    /// Carries one datagram through the NATs; returns whether there was one.
    fn step(&mut self) -> bool {
        self.collect();
        let Some(mut seen) = self.flight.pop_front() else {
            return false;
        };
        if seen.from_a && !self.wire.iter().any(|s| s.from_a) {
            if let Some(hook) = self.mm1_hook {
                hook(&mut seen.sent.payload);
            }
        }
        self.wire.push(seen.clone());
        let t = &seen.sent;
        if seen.from_a {
            let src = if self.topo.a_behind() { self.napt.outbound(t.local) } else { t.local };
            // `b`'s NAT forwards its public ports to it.
            let dst = if self.topo.b_behind() && t.remote.ip() == ip(B_NAT) {
                SocketAddr::new(ip(B_PRIVATE), t.remote.port())
            } else {
                t.remote
            };
            if dst.ip() == self.topo.b_addrs().0 {
                self.b.handle(self.now, dst, src, &t.payload);
            }
        } else {
            let src = if self.topo.b_behind() { SocketAddr::new(ip(B_NAT), t.local.port()) } else { t.local };
            let dst = if self.topo.a_behind() { self.napt.inbound(t.remote) } else { Some(t.remote) };
            if let Some(dst) = dst.filter(|d| d.ip() == self.topo.a_addrs().0) {
                self.a.handle(self.now, dst, src, &t.payload);
            }
        }
        self.collect();
        true
    }

    fn drive_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            while self.step() {}
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.collect();
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
    }

    fn up(events: &[Event]) -> Vec<&hostsec_proto::ike::ChildSaKeys> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::QuickModeUp(k) => Some(k),
                _ => None,
            })
            .collect()
    }

    fn failures(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::NegotiationFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    fn keepalives(&self, from_a: bool) -> usize {
        self.wire.iter().filter(|s| s.from_a == from_a && s.sent.payload == [0xff]).count()
    }
}

const SETTINGS: [&str; 3] = ["off", "remote-behind-nat", "both-behind-nat"];

/// Whether a side with `setting` accepts what its NAT-D `view` shows.
fn allows(setting: &str, view: NatStatus) -> bool {
    match view {
        NatStatus::None => true,
        NatStatus::Remote => setting != "off",
        NatStatus::Local | NatStatus::Both => setting == "both-behind-nat",
    }
}

#[test]
fn every_setting_and_topology() {
    let (mut ups, mut refusals) = (0, 0);
    for topo in Topology::ALL {
        for sa in SETTINGS {
            for sb in SETTINGS {
                let case = format!("{topo:?}, a {sa}, b {sb}");
                let mut net = Net::new(topo, sa, sb);
                let request = net.initiate();
                net.drive_for(Duration::from_secs(60));
                let (view_a, view_b) = topo.views();
                let expect_up = allows(sa, view_a) && allows(sb, view_b);
                let done =
                    net.events_a.iter().any(|e| matches!(e, Event::RequestDone { request: r, .. } if *r == request));
                assert_eq!(
                    done,
                    expect_up,
                    "{case}: {:?} / {:?}",
                    Net::failures(&net.events_a),
                    Net::failures(&net.events_b)
                );
                if expect_up {
                    check_up(&net, &case);
                    ups += 1;
                    continue;
                }
                refusals += 1;
                // The request failed at once (no waiting for retransmissions), and whoever refused named the
                // setting that would allow it.
                let a_failed = net
                    .events_a
                    .iter()
                    .any(|e| matches!(e, Event::NegotiationFailed { request: Some(r), .. } if *r == request));
                assert!(a_failed, "{case}");
                let (refuser, view, setting) =
                    if allows(sb, view_b) { (&net.events_a, view_a, sa) } else { (&net.events_b, view_b, sb) };
                let needed = if view.local_behind() { "both-behind-nat" } else { "remote-behind-nat" };
                let reasons = Net::failures(refuser);
                assert!(
                    reasons.iter().any(|r| r.contains(&format!("nat_traversal = \"{setting}\""))
                        && r.contains(&format!("set nat_traversal = \"{needed}\""))),
                    "{case}: {reasons:?}"
                );
                assert!(Net::up(&net.events_a).is_empty() && Net::up(&net.events_b).is_empty(), "{case}");
            }
        }
    }
    // Without NAT all 9 pairs of settings; one NATed side: the NATed side needs both-behind-nat, the other any
    // but off (2 each); both NATed: both sides need both-behind-nat (1).
    assert_eq!((ups, refusals), (9 + 2 + 2 + 1, 36 - 14));
}

/// An SA pair that came up: on port 500 without NAT; with NAT, floated to 4500 from MM5 on with the marker,
/// UDP-encapsulated with the ports and NAT-OA addresses each side needs, and `nat` as each side sees it.
fn check_up(net: &Net, case: &str) {
    let (view_a, view_b) = net.topo.views();
    let nat = net.topo != Topology::Neither;
    for (events, view, ep) in [(&net.events_a, view_a, &net.a), (&net.events_b, view_b, &net.b)] {
        let mm = ep.main_mode_sas(net.now);
        assert_eq!(mm.len(), 1, "{case}");
        assert_eq!(mm[0].nat, view, "{case}");
        let port = if nat { NATT_PORT } else { IKE_PORT };
        assert_eq!(mm[0].local.port(), port, "{case}");
        let kids = Net::up(events);
        assert_eq!(kids.len(), 1, "{case}");
        assert_eq!(kids[0].info.encapsulation.is_some(), nat, "{case}");
        // `hostsec sas --json`.
        assert_eq!(MainModeEntry::from(&mm[0]).nat, view.name(), "{case}");
        let q = QuickModeEntry::from(&kids[0].info);
        assert_eq!(q.encapsulation, if nat { "udp" } else { "none" }, "{case}");
        let ports = kids[0].info.encapsulation.map(|e| (e.local_port, e.remote_port));
        assert_eq!(q.encap_local_port.zip(q.encap_remote_port), ports, "{case}");
    }
    // On the wire: MM1-MM4 on 500 without marker; everything after on 4500 with it (or on 500 without NAT).
    let ike: Vec<&Seen> = net.wire.iter().filter(|s| s.sent.payload != [0xff]).collect();
    for (i, s) in ike.iter().enumerate() {
        let on_4500 = nat && i >= 4;
        assert_eq!(s.sent.local.port() == NATT_PORT, on_4500, "{case}: datagram {i}");
        match classify(&s.sent.payload) {
            UdpEncap::Ike(_) => assert!(on_4500, "{case}: a marker on port 500 (datagram {i})"),
            _ => assert!(!on_4500, "{case}: no marker on port 4500 (datagram {i})"),
        }
    }
    if !nat {
        return;
    }
    let a_kid = Net::up(&net.events_a)[0].info.clone();
    let b_kid = Net::up(&net.events_b)[0].info.clone();
    let (a_own, a_seen) = net.topo.a_addrs();
    let (b_own, b_seen) = net.topo.b_addrs();
    let ea: UdpEncapsulation = a_kid.encapsulation.unwrap();
    let eb: UdpEncapsulation = b_kid.encapsulation.unwrap();
    assert_eq!((ea.local_port, ea.remote_port), (NATT_PORT, NATT_PORT), "{case}");
    assert_eq!(eb.local_port, NATT_PORT, "{case}");
    let a_port = if net.topo.a_behind() { net.napt.out[&SocketAddr::new(a_own, NATT_PORT)] } else { NATT_PORT };
    assert_eq!(eb.remote_port, a_port, "{case}");
    assert_eq!(b_kid.peer, SocketAddr::new(a_seen, a_port), "{case}");
    // NAT-OA: each side learns the other's own address when it differs from the one its packets come from, and
    // its own address as the other addresses it, when that differs from its own.
    assert_eq!(eb.peer_original, (a_own != a_seen).then_some(a_own), "{case}");
    assert_eq!(ea.peer_original, (b_own != b_seen).then_some(b_own), "{case}");
    assert_eq!(ea.local_as_seen_by_peer, (a_own != a_seen).then_some(a_seen), "{case}");
    assert_eq!(eb.local_as_seen_by_peer, (b_own != b_seen).then_some(b_seen), "{case}");
}

#[test]
fn keepalives_from_the_natted_side_only() {
    for topo in [Topology::InitiatorBehind, Topology::ResponderBehind, Topology::Both, Topology::Neither] {
        let mut net = Net::new(topo, "both-behind-nat", "both-behind-nat");
        net.initiate();
        net.drive_for(Duration::from_secs(5));
        assert_eq!(Net::up(&net.events_a).len(), 1, "{topo:?}");
        let (ka, kb) = (net.keepalives(true), net.keepalives(false));
        net.drive_for(Duration::from_secs(100));
        // 20 s apart: five in 100 s, from each side that is behind NAT, none from the others.
        let expect = |behind: bool| if behind { 5 } else { 0 };
        assert_eq!(net.keepalives(true) - ka, expect(topo.a_behind()), "{topo:?}");
        assert_eq!(net.keepalives(false) - kb, expect(topo.b_behind()), "{topo:?}");
        for s in net.wire.iter().filter(|s| s.sent.payload == [0xff]) {
            assert_eq!((s.sent.local.port(), s.sent.remote.port() == IKE_PORT), (NATT_PORT, false), "{topo:?}");
        }
        // They reach the peer's IKE, which counts them and answers nothing.
        let received = if topo.a_behind() { net.b.stats() } else { net.a.stats() };
        if topo != Topology::Neither {
            assert!(received.nat_keepalives_received >= 5, "{topo:?}: {received:?}");
        }
        assert!(Net::up(&net.events_a).len() == 1 && Net::failures(&net.events_a).is_empty(), "{topo:?}");
    }
}

#[test]
fn a_rebound_mapping_is_followed() {
    let mut net = Net::new(Topology::InitiatorBehind, "both-behind-nat", "remote-behind-nat");
    net.initiate();
    net.drive_for(Duration::from_secs(5));
    let first = Net::up(&net.events_b)[0].info.clone();
    let old_port = first.peer.port();
    net.napt.rebind();
    // A keepalive through the new mapping proves nothing: it is not authenticated, so nothing moves.
    net.drive_for(Duration::from_secs(21));
    assert!(net.keepalives(true) >= 1);
    assert!(!net.events_b.iter().any(|e| matches!(e, Event::PeerMoved { .. })));
    // A rekey: its authenticated QM1 comes from the new port, and the SAs follow.
    net.a.rekey(net.now, Net::up(&net.events_a)[0].info.spi_in, true).expect("rekey");
    net.drive_for(Duration::from_secs(5));
    let moved: Vec<_> = net
        .events_b
        .iter()
        .filter_map(|e| match e {
            Event::PeerMoved { old, new, local, spis_in } => Some((*old, *new, *local, spis_in.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(moved.len(), 1, "{:?}", net.events_b);
    let (old, new, local, spis) = &moved[0];
    assert_eq!(old.port(), old_port);
    assert_ne!(new.port(), old_port);
    assert_eq!(new.ip(), ip(A_NAT));
    assert_eq!((local.ip(), local.port()), (ip(B_PUBLIC), NATT_PORT));
    assert_eq!(spis, &vec![first.spi_in]);
    // The old pair moved, and the new one was negotiated at the new address.
    let kids = net.b.quick_mode_sas(net.now);
    assert_eq!(kids.len(), 2);
    for k in &kids {
        assert_eq!(k.peer, *new);
        assert_eq!(k.encapsulation.unwrap().remote_port, new.port());
    }
    assert_eq!(net.b.main_mode_sas(net.now)[0].peer, *new);
    assert_eq!(net.b.stats().peer_moves, 1);
}

#[test]
fn the_datapath_reports_a_move() {
    let mut net = Net::new(Topology::InitiatorBehind, "both-behind-nat", "both-behind-nat");
    net.initiate();
    net.drive_for(Duration::from_secs(5));
    let kid = Net::up(&net.events_b)[0].info.clone();
    // Where the peer already is, or an SPI of no pair: nothing moves.
    assert!(!net.b.peer_moved(kid.spi_in, kid.peer));
    assert!(!net.b.peer_moved(kid.spi_in ^ 1, "203.0.113.1:50000".parse().unwrap()));
    let new: SocketAddr = "203.0.113.1:50000".parse().unwrap();
    assert!(net.b.peer_moved(kid.spi_in, new));
    net.collect();
    assert!(net
        .events_b
        .iter()
        .any(|e| matches!(e, Event::PeerMoved { new: n, spis_in, .. } if *n == new && spis_in == &vec![kid.spi_in])));
    assert_eq!(net.b.main_mode_sas(net.now)[0].peer, new);
    assert_eq!(net.b.quick_mode_sas(net.now)[0].encapsulation.unwrap().remote_port, 50000);

    // Without NAT the pair is not UDP-encapsulated, and ESP from elsewhere moves nothing.
    let mut plain = Net::new(Topology::Neither, "off", "off");
    plain.initiate();
    plain.drive_for(Duration::from_secs(5));
    let kid = Net::up(&plain.events_b)[0].info.clone();
    assert!(!plain.b.peer_moved(kid.spi_in, "198.51.100.9:4500".parse().unwrap()));
}

#[test]
fn port_4500_input_that_is_not_ike() {
    let mut net = Net::new(Topology::Neither, "off", "off");
    let local: SocketAddr = format!("{B_PUBLIC}:4500").parse().unwrap();
    let remote: SocketAddr = format!("{A_PUBLIC}:4500").parse().unwrap();
    net.b.handle(net.now, local, remote, &[0xff]);
    net.b.handle(net.now, local, remote, &[0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0, 0, 0, 0]);
    net.b.handle(net.now, local, remote, &[0, 0, 0, 0, 1]);
    // An ISAKMP message on 4500 without its marker reads as ESP (its cookie as SPI): dropped, as the
    // Openswan xf88 capture shows a buggy sender doing.
    net.b.handle(net.now, local, remote, &[0x80, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x10, 2, 0]);
    let s = net.b.stats();
    assert_eq!((s.received, s.nat_keepalives_received, s.dropped_malformed), (4, 1, 3));
    assert!(net.b.poll_transmit().is_none());
}

/// MM1 without its RFC 3947 vendor ID: `a` looks like a peer of the drafts only.
fn drafts_only(mm1: &mut Vec<u8>) {
    let (hdr, body) = Header::split(mm1).unwrap();
    let kept: Vec<(u8, Vec<u8>)> = Payloads::new(hdr.next_payload, body)
        .map(Result::unwrap)
        .filter(|p| !(p.kind == payload::VENDOR_ID && p.body == vendor_id::NAT_T_RFC3947))
        .map(|p| (p.kind, p.body.to_vec()))
        .collect();
    let mut buf = vec![0u8; mm1.len()];
    let mut w = PayloadWriter::new(&mut buf[Header::LEN..]);
    for (kind, b) in &kept {
        w.push(*kind, b).unwrap();
    }
    let (first, len) = (w.first_payload(), w.len());
    Header { next_payload: first, length: (Header::LEN + len) as u32, ..hdr }.emit(&mut buf).unwrap();
    buf.truncate(Header::LEN + len);
    *mm1 = buf;
}

/// The payload types of a cleartext message.
fn payload_types(msg: &[u8]) -> Vec<u8> {
    let (hdr, body) = Header::split(msg).unwrap();
    Payloads::new(hdr.next_payload, body).map(|p| p.unwrap().kind).collect()
}

#[test]
fn a_peer_of_the_drafts() {
    // The responder answers in the drafts' numbering: the draft-02 vendor ID, NAT-D as payload 130, and the SAs
    // come up UDP-encapsulated (mode 61444 inside the encrypted Quick Mode).
    let mut net = Net::new(Topology::InitiatorBehind, "both-behind-nat", "both-behind-nat");
    net.mm1_hook = Some(drafts_only);
    net.initiate();
    net.drive_for(Duration::from_secs(5));
    assert_eq!(Net::up(&net.events_a).len(), 1, "{:?}", Net::failures(&net.events_a));
    assert!(Net::up(&net.events_b)[0].info.encapsulation.is_some());
    let mm: Vec<&Seen> = net.wire.iter().take(4).collect();
    assert!(!payload_types(&mm[0].sent.payload).is_empty());
    let (hdr, body) = Header::split(&mm[1].sent.payload).unwrap();
    let vids: Vec<Vec<u8>> = Payloads::new(hdr.next_payload, body)
        .map(Result::unwrap)
        .filter(|p| p.kind == payload::VENDOR_ID)
        .map(|p| p.body.to_vec())
        .collect();
    assert!(vids.contains(&vendor_id::NAT_T_DRAFT_02_N.to_vec()), "MM2 answers with the draft ID");
    assert!(!vids.contains(&vendor_id::NAT_T_RFC3947.to_vec()));
    for m in &mm[2..4] {
        let types = payload_types(&m.sent.payload);
        assert_eq!(types.iter().filter(|t| **t == payload::NAT_D_DRAFT).count(), 2, "{types:?}");
        assert!(!types.contains(&payload::NAT_D));
    }
    // With RFC 3947, payload 20.
    let mut rfc = Net::new(Topology::InitiatorBehind, "both-behind-nat", "both-behind-nat");
    rfc.initiate();
    rfc.drive_for(Duration::from_secs(5));
    let types = payload_types(&rfc.wire[2].sent.payload);
    assert_eq!(types.iter().filter(|t| **t == payload::NAT_D).count(), 2, "{types:?}");
}

#[test]
fn a_nat_with_a_new_public_address_is_followed() {
    // The initiator's NAT comes back with another public address (a new lease): the responder's rule covers the
    // provider's range, and the SAs follow once a Quick Mode from there authenticated.
    let mut net = Net::new(Topology::InitiatorBehind, "both-behind-nat", "remote-behind-nat");
    let wide = support::rule_policy("203.0.113.0/24", "nat_traversal = \"remote-behind-nat\"");
    net.b.set_policy(net.now, Arc::new(wide));
    net.initiate();
    net.drive_for(Duration::from_secs(5));
    assert_eq!(Net::up(&net.events_b).len(), 1);
    net.napt.rebind();
    net.napt.public = ip("203.0.113.77");
    net.a.rekey(net.now, Net::up(&net.events_a)[0].info.spi_in, true).expect("rekey");
    net.drive_for(Duration::from_secs(5));
    assert_eq!(Net::up(&net.events_a).len(), 2, "{:?}", Net::failures(&net.events_a));
    let moved = net.events_b.iter().find_map(|e| match e {
        Event::PeerMoved { new, .. } => Some(*new),
        _ => None,
    });
    assert_eq!(moved.map(|m| m.ip()), Some(ip("203.0.113.77")));
    assert!(net.b.quick_mode_sas(net.now).iter().all(|k| k.peer.ip() == ip("203.0.113.77")));
    // A message from another address that does not authenticate moves nothing.
    let before = net.b.main_mode_sas(net.now)[0].peer;
    let mut forged = net.wire.iter().rev().find(|s| s.from_a && s.sent.payload.len() > 40).unwrap().sent.clone();
    let last = forged.payload.len() - 1;
    forged.payload[last] ^= 1;
    let local = SocketAddr::new(ip(B_PUBLIC), NATT_PORT);
    net.b.handle(net.now, local, "203.0.113.99:1234".parse().unwrap(), &forged.payload);
    net.collect();
    assert_eq!(net.b.main_mode_sas(net.now)[0].peer, before);
    assert_eq!(net.b.stats().peer_moves, 1);
}
