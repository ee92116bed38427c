//! The host plumbing against a real kernel, in network namespaces this test creates (and deletes): two hosts A
//! (198.51.100.1, 2001:db8:1::1) and B (.2, ::2) on a veth pair. Needs root, `ip` and `nft`; without root each
//! test says it is skipped and passes, unless `HOSTSEC_HOST_TESTS=require` (tests/e2e/host-plumbing.sh sets it),
//! which makes a missing prerequisite a failure.
//!
//! Code runs "in" a namespace by running it on a thread that has called `setns`: sockets, TUN devices and netlink
//! sockets belong to the namespace they were created in, wherever they are used afterwards, and the `ip`/`nft`
//! processes the plumbing starts inherit the thread's namespace.

// The module is compiled into this test crate, where not all of its API is used.
#[allow(unused_imports)]
// The daemon uses all of the module; this test only part of it.
#[allow(dead_code)]
#[path = "../src/host/mod.rs"]
mod host;

use host::{EspSockets, Firewall, FirewallPlan, HostState, RouteSpec, Routing, Tun};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const A4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const B4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const QUIET: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------------------------------
// Namespaces

fn prerequisites() -> bool {
    let required = std::env::var("HOSTSEC_HOST_TESTS").is_ok_and(|v| v == "require");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "nft"].iter().all(|t| Command::new(t).arg("-V").output().is_ok_and(|o| o.status.success()));
    if root && tools {
        return true;
    }
    let why = if root { "needs the ip and nft commands" } else { "needs root" };
    assert!(!required, "HOSTSEC_HOST_TESTS=require but this test {why}");
    eprintln!("SKIPPED: {why}");
    false
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
struct Ns {
    name: String,
}

impl Ns {
    fn new(name: String) -> Ns {
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        sh(&format!("ip netns add {name}"));
        let ns = Ns { name };
        // No duplicate address detection: addresses are usable at once, and the link-local one exists for ND.
        ns.sh("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0; ip link set lo up");
        ns
    }

    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let file = std::fs::File::open(format!("/run/netns/{}", self.name)).expect("netns file");
                // SAFETY: setns on this thread only, with a namespace descriptor that is open for the call.
                assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
                f()
            });
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    fn sh(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} sh -c '{}'", self.name, cmd.replace('\'', "'\\''")))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Hosts A and B on a veth pair.
struct Pair {
    a: Ns,
    b: Ns,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let pid = std::process::id();
        let a = Ns::new(format!("hsh-{tag}-a-{pid}"));
        let b = Ns::new(format!("hsh-{tag}-b-{pid}"));
        sh(&format!("ip link add veth-a netns {} type veth peer name veth-b netns {}", a.name, b.name));
        a.sh("ip addr add 198.51.100.1/24 dev veth-a; ip addr add 2001:db8:1::1/64 dev veth-a nodad; ip link set veth-a up");
        b.sh("ip addr add 198.51.100.2/24 dev veth-b; ip addr add 2001:db8:1::2/64 dev veth-b nodad; ip link set veth-b up");
        Pair { a, b }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Packets and sockets

fn csum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in *p {
            match odd.take() {
                Some(h) => sum += u32::from(u16::from_be_bytes([h, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(h) = odd {
        sum += u32::from(u16::from_be_bytes([h, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend(src.octets());
    h.extend(dst.octets());
    let c = csum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend(payload);
    h
}

fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(((8 + data.len()) as u16).to_be_bytes());
    u.extend([0, 0]); // no checksum (allowed for UDP over IPv4)
    u.extend(data);
    ipv4(src, dst, 17, &u)
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop: u8, tclass: u8, flow: u32, payload: &[u8]) -> Vec<u8> {
    let word = (6u32 << 28) | (u32::from(tclass) << 20) | (flow & 0xfffff);
    let mut h = word.to_be_bytes().to_vec();
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, hop]);
    h.extend(src.octets());
    h.extend(dst.octets());
    h.extend(payload);
    h
}

fn icmp6_echo(src: Ipv6Addr, dst: Ipv6Addr, id: u16) -> Vec<u8> {
    let mut m = vec![128, 0, 0, 0];
    m.extend(id.to_be_bytes());
    m.extend(1u16.to_be_bytes());
    m.extend(b"hostsec-raw-v6");
    let mut pseudo = Vec::new();
    pseudo.extend(src.octets());
    pseudo.extend(dst.octets());
    pseudo.extend((m.len() as u32).to_be_bytes());
    pseudo.extend([0, 0, 0, 58]);
    let c = csum(&[&pseudo, &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv6(src, dst, 58, 64, 0, 0, &m)
}

fn icmp4_echo(id: u16) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend(id.to_be_bytes());
    m.extend(1u16.to_be_bytes());
    m.extend(b"hostsec-ping");
    let c = csum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn esp(spi: u32, len: usize) -> Vec<u8> {
    let mut e = spi.to_be_bytes().to_vec();
    e.extend(1u32.to_be_bytes());
    e.extend((0..len).map(|i| (i * 13) as u8));
    e
}

/// A raw socket of the test (ICMP probes).
struct Raw(OwnedFd);

impl Raw {
    fn new(family: libc::c_int, proto: libc::c_int) -> Raw {
        // SAFETY: plain socket creation; checked below.
        let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptor.
        Raw(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn send_to(&self, data: &[u8], to: IpAddr) -> std::io::Result<()> {
        let std_addr = SocketAddr::new(to, 0);
        let (storage, len) = sockaddr(std_addr);
        // SAFETY: the buffer and address are live for the call.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                0,
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receives until `want` accepts a message or `within` has passed; returns the accepted message.
    fn wait_for(&self, within: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let end = Instant::now() + within;
        let mut buf = vec![0u8; 65536];
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let mut pfd = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one live pollfd.
            if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) } <= 0 {
                return None;
            }
            // SAFETY: the buffer is live and writable.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n > 0 && want(&buf[..n as usize]) {
                return Some(buf[..n as usize].to_vec());
            }
        }
        None
    }
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero sockaddr_storage is valid; we write the matching sockaddr into it.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin = unsafe { &mut *(&mut st as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            (st, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut st as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            (st, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn udp(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    s.set_read_timeout(Some(QUIET)).unwrap();
    s
}

/// Whether `sock` receives `data` within the quiet time.
fn receives(sock: &UdpSocket, data: &[u8]) -> bool {
    let mut buf = [0u8; 2048];
    let end = Instant::now() + QUIET;
    while Instant::now() < end {
        match sock.recv(&mut buf) {
            Ok(n) if &buf[..n] == data => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// The first packet read from the TUN within `within` that `want` accepts.
fn tun_packet(tun: &Tun, within: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let end = Instant::now() + within;
    let mut buf = vec![0u8; 65536];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match tun.read_timeout(&mut buf, left).expect("tun read") {
            Some(n) if want(&buf[..n]) => return Some(buf[..n].to_vec()),
            Some(_) => {}
            None => return None,
        }
    }
    None
}

fn recv_esp(esp: &EspSockets, v6: bool) -> Option<Vec<u8>> {
    esp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = vec![0u8; 65536];
    let r = if v6 { esp.recv6(&mut buf) } else { esp.recv4(&mut buf) };
    match r {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("recv ESP: {e}"),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------------------------
// (a) TUN, policy routing, raw sockets

#[test]
fn protected_traffic_goes_to_the_tun_and_raw_sockets_bypass_it() {
    if !prerequisites() {
        return;
    }
    let p = Pair::new("dp");
    let config = host::Config::default();
    let (tun, mut routing, esp_a) = p.a.run(|| {
        let tun = Tun::create(&config.tun_name, config.mtu).expect("TUN");
        let mut routing = Routing::install(&config).expect("routing");
        routing
            .set_routes(&[
                RouteSpec::tun(B4.into(), 32, Some(A4.into())),
                RouteSpec::tun(B6.into(), 128, Some(A6.into())),
            ])
            .expect("routes");
        (tun, routing, EspSockets::open(host::MARK).expect("ESP sockets"))
    });
    let shown =
        p.a.sh("ip rule; ip -6 rule; ip route show table 4853; ip -6 route show table 4853; ip -d link show hs0");
    assert!(shown.contains("4853:\tnot from all fwmark 0x4853 lookup 4853"), "{shown}");
    assert!(shown.contains("198.51.100.2 dev hs0 proto static scope link src 198.51.100.1"), "{shown}");
    assert!(shown.contains("2001:db8:1::2 dev hs0 proto static src 2001:db8:1::1"), "{shown}");
    assert!(shown.contains("mtu 1400") && shown.contains("multi_queue"), "{shown}");
    assert!(!p.a.sh("ip -6 addr show dev hs0").contains("inet6"), "no address on hs0");

    // A pings B: the echo request comes out of A's TUN, and B sees nothing.
    let (icmp_b, icmp6_b) =
        p.b.run(|| (Raw::new(libc::AF_INET, libc::IPPROTO_ICMP), Raw::new(libc::AF_INET6, libc::IPPROTO_ICMPV6)));
    let (ping, ping6) =
        p.a.run(|| (Raw::new(libc::AF_INET, libc::IPPROTO_ICMP), Raw::new(libc::AF_INET6, libc::IPPROTO_ICMPV6)));
    ping.send_to(&icmp4_echo(0x4801), B4.into()).expect("ping");
    let pkt = tun_packet(&tun, Duration::from_secs(2), |p| {
        p.len() >= 28 && p[0] == 0x45 && p[9] == 1 && p[24..26] == [0x48, 0x01]
    })
    .expect("the ping comes out of the TUN");
    assert_eq!(&pkt[12..16], &A4.octets(), "source is the route's src");
    assert_eq!(&pkt[16..20], &B4.octets());
    assert_eq!(pkt[20], 8, "echo request");
    let mut echo6 = icmp6_echo(A6, B6, 0x4802);
    let echo6_body = echo6.split_off(40);
    ping6.send_to(&echo6_body, B6.into()).expect("ping6");
    let pkt6 = tun_packet(&tun, Duration::from_secs(2), |p| {
        p.len() >= 48 && p[0] >> 4 == 6 && p[6] == 58 && p[44..46] == [0x48, 0x02]
    })
    .expect("the IPv6 ping comes out of the TUN");
    assert_eq!(&pkt6[8..24], &A6.octets());
    assert_eq!(&pkt6[24..40], &B6.octets());
    let is_ours4 = |m: &[u8]| m.len() >= 28 && m[20] == 8 && m[24..26] == [0x48, 0x01];
    assert!(icmp_b.wait_for(QUIET, is_ours4).is_none(), "the ping must not reach B in cleartext");
    assert!(icmp6_b.wait_for(QUIET, |m| m.len() >= 8 && m[0] == 128 && m[4..6] == [0x48, 0x02]).is_none());

    // Whole packets sent on the marked raw socket reach B and do not loop into the TUN.
    let udp_b = p.b.run(|| udp("198.51.100.2:9999"));
    esp_a.send(&udp4(A4, B4, 40000, 9999, b"raw-v4")).expect("raw send v4");
    assert!(receives(&udp_b, b"raw-v4"), "B receives the hand-built UDP packet");
    esp_a.send(&icmp6_echo(A6, B6, 0x4803)).expect("raw send v6");
    assert!(
        icmp6_b.wait_for(Duration::from_secs(2), |m| m.len() >= 8 && m[0] == 128 && m[4..6] == [0x48, 0x03]).is_some(),
        "B receives the hand-built ICMPv6 echo request"
    );
    assert!(
        tun_packet(&tun, QUIET, |p| contains(p, b"raw-v4") || contains(p, b"hostsec-raw-v6")).is_none(),
        "no loop into the TUN"
    );
    // Batched sends take the same path.
    let batch = [udp4(A4, B4, 40000, 9999, b"batch-1"), udp4(A4, B4, 40000, 9999, b"batch-2")];
    assert_eq!(esp_a.send_batch(&[&batch[0], &batch[1]]).expect("send_batch"), 2);
    assert!(receives(&udp_b, b"batch-1") && receives(&udp_b, b"batch-2"));

    // ESP from B arrives whole on A's raw sockets: IPv4 as it was sent, IPv6 rebuilt from the ancillary data.
    let esp_b = p.b.run(|| EspSockets::open(host::MARK).expect("ESP sockets in B"));
    let pkt4 = ipv4(B4, A4, 50, &esp(0x1001, 100));
    esp_b.send(&pkt4).expect("B sends ESP");
    assert_eq!(recv_esp(&esp_a, false).expect("ESP over IPv4"), pkt4);
    let pkt6 = ipv6(B6, A6, 50, 33, 0x20, 0xabcde, &esp(0x1002, 77));
    esp_b.send(&pkt6).expect("B sends ESP over IPv6");
    assert_eq!(recv_esp(&esp_a, true).expect("ESP over IPv6"), pkt6, "IPv6 header rebuilt");
    // With destination options (PadN) in front of ESP.
    let mut with_opts = vec![50, 0, 1, 4, 0, 0, 0, 0];
    with_opts.extend(esp(0x1003, 64));
    let pkt6x = ipv6(B6, A6, 60, 7, 0, 0x12345, &with_opts);
    esp_b.send(&pkt6x).expect("B sends ESP with destination options");
    assert_eq!(recv_esp(&esp_a, true).expect("ESP with an extension header"), pkt6x, "extension header rebuilt");
    // Batched receive.
    for i in 0..3u32 {
        esp_b.send(&ipv4(B4, A4, 50, &esp(0x2000 + i, 20))).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut bufs = vec![vec![0u8; 2048]; 8];
    let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
    let mut lens = [0usize; 8];
    let n = esp_a.recv4_batch(&mut refs, &mut lens).expect("recv4_batch");
    assert_eq!(n, 3);
    assert_eq!(&bufs[2][20..24], &0x2002u32.to_be_bytes());
    assert_eq!(lens[..3], [48, 48, 48]);

    // A whole packet written into the TUN is delivered by A's kernel as if it came from B.
    let udp_a = p.a.run(|| udp("198.51.100.1:7000"));
    tun.write(&udp4(B4, A4, 41000, 7000, b"from-the-tun")).expect("TUN write");
    assert!(receives(&udp_a, b"from-the-tun"), "the kernel delivers what the TUN injects");

    // The table can be emptied and the rules removed; the TUN goes with its last descriptor.
    routing.set_routes(&[]).expect("empty table");
    assert_eq!(p.a.sh("ip route show table 4853; ip -6 route show table 4853"), "");
    routing.remove();
    assert!(!p.a.sh("ip rule; ip -6 rule").contains("4853"));
    // A queue must be opened in the device's namespace (elsewhere TUNSETIFF would create a new device there).
    let q = p.a.run(|| tun.queue().expect("second queue"));
    drop(tun);
    assert!(p.a.sh("ip link").contains("hs0"), "a queue still holds the device");
    drop(q);
    assert!(!p.a.sh("ip link").contains("hs0"), "the TUN disappears with its last descriptor");
}

// ---------------------------------------------------------------------------------------------------------------
// (b) nftables

#[test]
fn firewall_enforces_require_block_and_default_block() {
    if !prerequisites() {
        return;
    }
    let p = Pair::new("fw");
    let pre = |s: &str| -> (IpAddr, u8) {
        let a: IpAddr = s.parse().unwrap();
        (a, if a.is_ipv4() { 32 } else { 128 })
    };
    let b_peer = vec![pre("198.51.100.2"), pre("2001:db8:1::2")];
    let (esp_a, ike_a, app_a, udp6_a) = p.a.run(|| {
        (EspSockets::open(host::MARK).unwrap(), udp("0.0.0.0:500"), udp("198.51.100.1:7777"), udp("[::]:7778"))
    });
    let (esp_b, ping_b, sock_b, listen_b) = p.b.run(|| {
        (
            EspSockets::open(0).unwrap(),
            Raw::new(libc::AF_INET, libc::IPPROTO_ICMP),
            udp("198.51.100.2:0"),
            udp("198.51.100.2:7777"),
        )
    });
    let a500: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let a7777: SocketAddr = "198.51.100.1:7777".parse().unwrap();

    // --- require B
    let plan = FirewallPlan { require: b_peer.clone(), ..Default::default() };
    let mut fw = p.a.run(|| Firewall::apply(&plan).expect("apply"));
    assert!(p.a.sh("nft list tables").contains("table inet hostsec"));
    ping_b.send_to(&icmp4_echo(0x5001), A4.into()).unwrap();
    let reply = |m: &[u8]| m.len() >= 28 && m[20] == 0 && m[24..26] == [0x50, 0x01];
    assert!(ping_b.wait_for(QUIET, reply).is_none(), "require: B's cleartext ping is dropped");
    let c = p.a.run(|| fw.counters().unwrap());
    assert!(c.drop_require_in.packets >= 1, "counted: {c:?}");
    sock_b.send_to(b"ike-1", a500).unwrap();
    assert!(receives(&ike_a, b"ike-1"), "require: IKE passes");
    esp_b.send(&ipv4(B4, A4, 50, &esp(0x3001, 40))).unwrap();
    assert!(recv_esp(&esp_a, false).is_some(), "require: ESP passes");
    esp_b.send(&ipv6(B6, A6, 50, 64, 0, 0, &esp(0x3002, 40))).unwrap();
    assert!(recv_esp(&esp_a, true).is_some(), "require: ESP over IPv6 passes");
    // Cleartext out to B is dropped, marked or not.
    let before = c.drop_require_out.packets;
    assert!(app_a.send_to(b"clear-out", "198.51.100.2:7777").is_err(), "the output drop is reported as EPERM");
    assert!(esp_a.send(&udp4(A4, B4, 40000, 7777, b"clear-marked")).is_err());
    assert!(!receives(&listen_b, b"clear-out") && !receives(&listen_b, b"clear-marked"));
    let c = p.a.run(|| fw.counters().unwrap());
    assert_eq!(c.drop_require_out.packets, before + 2, "{c:?}");
    // Our marked ESP to B passes.
    assert!(esp_a.send(&ipv4(A4, B4, 50, &esp(0x3003, 40))).is_ok());
    let esp_seen_b = recv_esp(&esp_b, false).expect("A's ESP reaches B");
    assert_eq!(&esp_seen_b[20..24], &0x3003u32.to_be_bytes());

    // --- block B: nothing passes, IKE and ESP included; counters survive the replacement.
    let kept = c.drop_require_in.packets;
    let plan = FirewallPlan { block: b_peer.clone(), ..Default::default() };
    p.a.run(|| fw.update(&plan).expect("update"));
    sock_b.send_to(b"ike-2", a500).unwrap();
    assert!(!receives(&ike_a, b"ike-2"), "block: IKE is dropped");
    esp_b.send(&ipv4(B4, A4, 50, &esp(0x3004, 40))).unwrap();
    assert!(recv_esp(&esp_a, false).is_none(), "block: ESP is dropped");
    assert!(esp_a.send(&ipv4(A4, B4, 50, &esp(0x3005, 40))).is_err(), "block: our own ESP is dropped too");
    let c = p.a.run(|| fw.counters().unwrap());
    assert!(c.drop_block.packets >= 3, "{c:?}");
    assert!(c.drop_require_in.packets >= kept, "counters carried over: {c:?}");

    // --- default block, B uncovered
    let plan = FirewallPlan { default_block: true, ..Default::default() };
    p.a.run(|| fw.update(&plan).expect("update"));
    sock_b.send_to(b"app-1", a7777).unwrap();
    assert!(!receives(&app_a, b"app-1"), "default block: B's cleartext is dropped");
    sock_b.send_to(b"ike-3", a500).unwrap();
    assert!(receives(&ike_a, b"ike-3"), "default block: IKE passes");
    esp_b.send(&ipv4(B4, A4, 50, &esp(0x3006, 40))).unwrap();
    assert!(recv_esp(&esp_a, false).is_some(), "default block: ESP passes");
    assert!(
        app_a.send_to(b"app-out", "198.51.100.2:7777").is_err(),
        "default block: unmarked cleartext out is dropped"
    );
    esp_a.send(&udp4(A4, B4, 40000, 7777, b"marked-out")).expect("marked packets pass");
    assert!(receives(&listen_b, b"marked-out"));
    let c = p.a.run(|| fw.counters().unwrap());
    assert!(c.drop_default.packets >= 2, "{c:?}");
    // Neighbour discovery still works: B resolves A's link-local address (and its datagram is then dropped).
    let ll_a = p.a.sh("ip -6 -o addr show dev veth-a scope link");
    let ll_a: Ipv6Addr =
        ll_a.split_whitespace().nth(3).and_then(|a| a.split('/').next()).and_then(|a| a.parse().ok()).expect("LL");
    p.b.sh("ip -6 neigh flush dev veth-b");
    let scope = p.b.sh("cat /sys/class/net/veth-b/ifindex").trim().parse::<u32>().unwrap();
    let sock6_b = p.b.run(|| udp("[::]:0"));
    let dropped = c.drop_default.packets;
    sock6_b.send_to(b"ll", SocketAddr::V6(std::net::SocketAddrV6::new(ll_a, 7778, 0, scope))).unwrap();
    assert!(!receives(&udp6_a, b"ll"), "default block: B's datagram to the link-local address is dropped");
    let neigh = p.b.sh(&format!("ip -6 neigh show {ll_a} dev veth-b"));
    assert!(
        neigh.contains("lladdr") && !neigh.contains("FAILED") && !neigh.contains("INCOMPLETE"),
        "ND resolved: {neigh}"
    );
    let c = p.a.run(|| fw.counters().unwrap());
    assert!(c.drop_default.packets > dropped, "{c:?}");

    p.a.run(|| fw.remove());
    assert!(!p.a.sh("nft list tables").contains("hostsec"));
    sock_b.send_to(b"app-2", a7777).unwrap();
    assert!(receives(&app_a, b"app-2"), "without the table everything passes again");
}

// ---------------------------------------------------------------------------------------------------------------
// (c) restore

/// What the plumbing may change, as the tools show it.
fn host_dump(ns: &Ns) -> String {
    ns.sh("ip rule; ip -6 rule; ip route show table all; ip -6 route show table all; nft list ruleset; ip -o link | cut -d: -f2")
}

/// Run in a child process by `leftovers_of_a_killed_run_are_removed`: installs everything in the namespace named
/// by HOSTSEC_CHILD_NS, says READY and waits to be killed.
#[test]
#[ignore = "helper: run by leftovers_of_a_killed_run_are_removed"]
fn child_installs_and_waits() {
    let Ok(ns) = std::env::var("HOSTSEC_CHILD_NS") else { return };
    let ns = Ns { name: ns };
    ns.run(|| {
        let config = host::Config::default();
        let _tun = Tun::create(&config.tun_name, config.mtu).unwrap();
        let mut state = HostState::new();
        let routes = [
            RouteSpec::tun("203.0.113.0".parse().unwrap(), 24, None),
            RouteSpec::throw("203.0.113.9".parse().unwrap(), 32),
            RouteSpec::tun("2001:db8:5::".parse().unwrap(), 64, Some(A6.into())),
        ];
        state.install_routing(&config, &routes).unwrap();
        state
            .apply_firewall(&FirewallPlan { require: vec![("203.0.113.0".parse().unwrap(), 24)], ..Default::default() })
            .unwrap();
        let _esp = EspSockets::open(host::MARK).unwrap();
        println!("READY");
        std::thread::sleep(Duration::from_secs(120));
    });
    std::mem::forget(ns);
}

#[test]
fn leftovers_of_a_killed_run_are_removed() {
    if !prerequisites() {
        return;
    }
    let p = Pair::new("rs");
    let before = host_dump(&p.a);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_installs_and_waits", "--ignored", "--nocapture", "--test-threads=1"])
        .env("HOSTSEC_CHILD_NS", &p.a.name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l.contains("READY")));
    let during = host_dump(&p.a);
    // SAFETY: kill(2) on the child we started, by its pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let _ = child.wait();
    assert!(ready, "the child did not get ready");
    assert!(
        during.contains("lookup 4853") && during.contains("table inet hostsec") && during.contains("throw 203.0.113.9"),
        "{during}"
    );
    // The non-persistent TUN died with the process; a persistent one of our name (left by an older version, or by
    // an administrator's `ip tuntap add`) is a leftover too.
    p.a.sh("ip tuntap add dev hs0 mode tun");
    let after_kill = host_dump(&p.a);
    assert_ne!(after_kill, before);
    let left = p.a.run(|| host::restore_leftovers(&host::Config::default()).expect("restore"));
    // Two rules, the throw route (the kernel deleted the routes via hs0 with the device), the table, the link.
    assert_eq!((left.rules, left.routes, left.nft_table, left.link), (2, 1, true, true), "{left:?}");
    assert_eq!(host_dump(&p.a), before, "the host is as it was");
    let again = p.a.run(|| host::restore_leftovers(&host::Config::default()).expect("restore again"));
    assert!(!again.any(), "idempotent: {again:?}");
    // A device of our name that is not a TUN is left alone.
    p.a.sh("ip link add hs0 type veth peer name hs0-peer");
    let left = p.a.run(|| host::restore_leftovers(&host::Config::default()).unwrap());
    assert!(!left.link && p.a.sh("ip link").contains("hs0"));
}

#[test]
fn a_clean_exit_removes_exactly_what_it_added() {
    if !prerequisites() {
        return;
    }
    let p = Pair::new("cl");
    // Things of the administrator's that must survive, some close to ours.
    p.a.sh("ip rule add pref 4852 fwmark 0x4853 table 100; ip route add 203.0.113.0/24 dev veth-a table 100; \
         ip -6 rule add pref 4854 table 100; nft add table inet other; nft add chain inet other c");
    let before = host_dump(&p.a);
    p.a.run(|| {
        let config = host::Config::default();
        let tun = Tun::create(&config.tun_name, config.mtu).unwrap();
        let mut state = HostState::new();
        state
            .install_routing(
                &config,
                &[
                    RouteSpec::tun(B4.into(), 32, Some(A4.into())),
                    RouteSpec::throw("198.51.100.0".parse().unwrap(), 30),
                ],
            )
            .unwrap();
        state
            .apply_firewall(&FirewallPlan {
                block: vec![("192.0.2.1".parse().unwrap(), 32)],
                default_block: true,
                ..Default::default()
            })
            .unwrap();
        // Changes go through the same state.
        state.routing().unwrap().set_routes(&[RouteSpec::tun(B6.into(), 128, None)]).unwrap();
        state.apply_firewall(&FirewallPlan::default()).unwrap();
        state.teardown();
        state.teardown();
        drop(tun);
    });
    assert_eq!(host_dump(&p.a), before);
    // Drop does the same.
    p.a.run(|| {
        let mut state = HostState::new();
        state.install_routing(&host::Config::default(), &[RouteSpec::throw(B4.into(), 32)]).unwrap();
        state.apply_firewall(&FirewallPlan::default()).unwrap();
    });
    assert_eq!(host_dump(&p.a), before);
}

// ---------------------------------------------------------------------------------------------------------------
// set_routes semantics and scale

#[test]
fn set_routes_is_exact_idempotent_and_fast() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new(format!("hsh-sc-{}", std::process::id()));
    ns.sh("ip link add d0 type veth peer name d1; ip addr add 198.51.100.1/24 dev d0; ip addr add 2001:db8:1::1/64 dev d0 nodad; ip link set d0 up");
    let report = ns.run(|| {
        let config = host::Config::default();
        let _tun = Tun::create(&config.tun_name, config.mtu).unwrap();
        let mut r = Routing::install(&config).unwrap();
        // 10,000 IPv6 /64s and 384 IPv4 /32s, none adjacent to another (every other one), so that nft's
        // auto-merge cannot fold them into a few ranges and the timings are those of 10,384 elements.
        let mut routes: Vec<RouteSpec> = (0..10_000u32)
            .map(|i| {
                let a = Ipv6Addr::new(0x2001, 0xdb8, 0x100 + (i >> 15) as u16, (i << 1) as u16, 0, 0, 0, 0);
                RouteSpec::tun(a.into(), 64, Some(A6.into()))
            })
            .collect();
        for net in [[192, 0, 2], [198, 51, 100], [203, 0, 113]] {
            for h in (0..=255u8).step_by(2) {
                routes.push(RouteSpec::tun(Ipv4Addr::new(net[0], net[1], net[2], h).into(), 32, Some(A4.into())));
            }
        }
        let t = Instant::now();
        let (added, deleted) = r.set_routes(&routes).unwrap();
        let install = t.elapsed();
        assert_eq!((added, deleted), (routes.len(), 0));
        let t = Instant::now();
        assert_eq!(r.set_routes(&routes).unwrap(), (0, 0), "idempotent");
        let noop = t.elapsed();
        // Half change: every other IPv6 route becomes a throw, the IPv4 ones go.
        let half: Vec<RouteSpec> = routes
            .iter()
            .filter(|r| r.prefix.is_ipv6())
            .enumerate()
            .map(|(i, r)| if i % 2 == 0 { RouteSpec::throw(r.prefix, r.len) } else { *r })
            .collect();
        let t = Instant::now();
        assert_eq!(r.set_routes(&half).unwrap(), (5_000, 384));
        let change = t.elapsed();
        let t = Instant::now();
        r.remove();
        let remove = t.elapsed();
        // nft with the same 10,768 prefixes in its sets.
        let plan = FirewallPlan { require: routes.iter().map(|r| (r.prefix, r.len)).collect(), ..Default::default() };
        let t = Instant::now();
        let mut fw = Firewall::apply(&plan).unwrap();
        let nft = t.elapsed();
        let listed = sh("nft list set inet hostsec require6; nft list set inet hostsec require4");
        assert_eq!(listed.matches("/64").count(), 10_000, "every IPv6 element is in the set");
        assert!(listed.contains("203.0.113.254"), "the last IPv4 element is in the set");
        fw.remove();
        for (what, d) in [("routes", install), ("nft", nft)] {
            assert!(d < Duration::from_secs(3), "{what}: {d:?}");
        }
        format!(
            "10,384 routes: install {install:?}, unchanged {noop:?}, 5,384 changes {change:?}, remove {remove:?}; \
             nft table with 10,384 prefixes {nft:?}"
        )
    });
    eprintln!("TIMING {report}");
    // A route someone changed behind our back is repaired, one added is removed.
    ns.run(|| {
        let config = host::Config::default();
        let _tun = Tun::create(&config.tun_name, config.mtu).unwrap();
        let mut r = Routing::install(&config).unwrap();
        let want =
            [RouteSpec::tun(B4.into(), 32, Some(A4.into())), RouteSpec::throw("198.51.100.0".parse().unwrap(), 30)];
        r.set_routes(&want).unwrap();
        sh("ip route replace 198.51.100.2 dev hs0 table 4853; ip route add 192.0.2.0/24 dev hs0 table 4853");
        assert_eq!(r.set_routes(&want).unwrap(), (1, 1));
        assert_eq!(
            sh("ip route show table 4853"),
            "throw 198.51.100.0/30 proto static \n198.51.100.2 dev hs0 proto static scope link src 198.51.100.1 \n"
        );
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Reverse path filtering

#[test]
fn strict_rp_filter_is_detected_because_it_drops_esp_from_protected_peers() {
    if !prerequisites() {
        return;
    }
    let p = Pair::new("rp");
    let config = host::Config::default();
    let (tun, routing, esp_a) = p.a.run(|| {
        let tun = Tun::create(&config.tun_name, config.mtu).unwrap();
        let mut routing = Routing::install(&config).unwrap();
        routing.set_routes(&[RouteSpec::tun(B4.into(), 32, Some(A4.into()))]).unwrap();
        (tun, routing, EspSockets::open(host::MARK).unwrap())
    });
    let esp_b = p.b.run(|| EspSockets::open(0).unwrap());
    for (mode, arrives) in [(2, true), (1, false), (0, true)] {
        p.a.sh(&format!("sysctl -qw net.ipv4.conf.all.rp_filter={mode} net.ipv4.conf.veth-a.rp_filter={mode}"));
        let strict = p.a.run(|| host::strict_rp_filter_interfaces("hs0"));
        assert_eq!(strict == ["veth-a"], mode == 1, "rp_filter={mode}: {strict:?}");
        esp_b.send(&ipv4(B4, A4, 50, &esp(0x7000 + mode, 40))).unwrap();
        assert_eq!(recv_esp(&esp_a, false).is_some(), arrives, "rp_filter={mode}");
    }
    drop((routing, tun));
}
