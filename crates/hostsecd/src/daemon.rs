//! The daemon loop: datagrams, control requests, signals and timers in; the IKE engine in the middle;
//! datagrams, key log lines and control answers out. Everything that has state lives in this one task.

use crate::control::{self, ControlRequest};
use crate::datapath::encap::{UdpIn, UdpOut};
use crate::datapath::{Datapath, DpEvent, InCmd, NattSockets, OutCmd, Snapshot};
use crate::host::{self, EspSockets, HostState, Tun};
use crate::keylog::KeyLog;
use crate::plan::host_plan;
use crate::sockets::{sort_4500, Datagram, EncapStats, IkeSockets};
use crate::{load_policy, netaddr, Options};
use hostsec_proto::control::{
    AuthipStatsView, CertsView, MainModeEntry, QuickModeEntry, Request, Response, RuleEntry, SasView, StatsView,
    StatusView,
};
use hostsec_proto::esp::{
    ByteRateMargin, DropReason, InboundSa, LifetimeLimits, OutboundSa, SaConfig, SaCounters, TAKEOVER_WAIT,
};
use hostsec_proto::ike::{Endpoint, Event, RequestId, Timing};
use hostsec_proto::policy::{Action, AutoStart, HostFacts, Policy};
use rand_chacha::rand_core::SeedableRng;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// First retry of a failed `auto = "start"` rule; doubles up to `AUTO_RETRY_MAX`.
const AUTO_RETRY_MIN: Duration = Duration::from_secs(15);
const AUTO_RETRY_MAX: Duration = Duration::from_secs(300);
/// A `request` peer that has not answered IKE after this long gets cleartext (as Windows' fast fallback does),
/// while IKE goes on in the background.
const REQUEST_FALLBACK_AFTER: Duration = Duration::from_secs(3);

/// The host side of the datapath: what it installed, the threads, and the counters of each SA pair.
struct Plumbing {
    state: HostState,
    datapath: Datapath,
    config: host::Config,
    locals: Vec<IpAddr>,
}

/// How long an inbound SA installed at QM2 waits for its Quick Mode to complete before it is removed (the engine
/// gives a responder's Quick Mode up after its QM2 retransmissions, well before).
const EARLY_INBOUND_MAX: Duration = Duration::from_secs(180);
/// How long the inbound SA of a pair we retired (rekeyed, or a collision's loser) outlives it: the peer may
/// still send on it until our DELETE arrives, and those packets are not lost.
const INBOUND_DRAIN: Duration = Duration::from_secs(2);

/// An inbound SA installed when our QM2 went out, before its Quick Mode completed.
struct EarlyInbound {
    since: Instant,
    counters: Arc<SaCounters>,
    local: IpAddr,
}

/// The lifetime limits of a new SA in the datapath. The engine renews pairs in use at its own jittered soft
/// deadline; the datapath flags only the byte limit: at 90 % on the side that initiated the pair, at 95 % on the
/// other, or earlier at a high rate, when the rest of the bytes would last less than 10 s (from half the bytes
/// on) on the initiator's side, 5 s (from 60 %) on the other. Both count the same bytes (one side's outbound SA is
/// the other's inbound), so without the difference both would start a rekey at once, every time (a collision,
/// which costs a second Quick Mode). The rate rule is what leaves a rekey time for IKE retransmissions: at
/// 20 Mbit/s the last 10 % of 20,480 KB go in 0.8 s.
fn sa_limits(info: &hostsec_proto::ike::QuickModeSaInfo) -> LifetimeLimits {
    let now = Instant::now();
    let mut limits = LifetimeLimits::from_negotiated(now, info.lifetime_left, info.lifetime_kb);
    limits.soft_time = None;
    if limits.hard_bytes == u64::MAX {
        return limits;
    }
    let (keep, from_bytes) = if info.role == hostsec_proto::ike::Role::Responder {
        limits.soft_bytes = limits.hard_bytes / 20 * 19;
        (RATE_MARGIN_OTHER, limits.hard_bytes / 10 * 6)
    } else {
        (RATE_MARGIN_INITIATOR, limits.hard_bytes / 2)
    };
    limits.soft_bytes_by_rate = Some(ByteRateMargin { since: now, keep, from_bytes });
    limits
}

/// At a high rate, the initiator of a pair rekeys it when its bytes would last less than this.
const RATE_MARGIN_INITIATOR: Duration = Duration::from_secs(10);
/// The other side, which rekeys only when the initiator did not, when they would last less than this.
const RATE_MARGIN_OTHER: Duration = Duration::from_secs(5);

/// The UDP encapsulation of a new SA pair (NAT traversal), inbound and outbound.
fn udp_ends(info: &hostsec_proto::ike::QuickModeSaInfo) -> (Option<UdpIn>, Option<UdpOut>) {
    match &info.encapsulation {
        Some(e) => {
            let remote = SocketAddr::new(info.peer.ip(), e.remote_port);
            (
                Some(UdpIn { remote, peer_original: e.peer_original, local_as_seen_by_peer: e.local_as_seen_by_peer }),
                Some(UdpOut { local_port: e.local_port, remote }),
            )
        }
        None => (None, None),
    }
}

/// The ESP counters of a Quick Mode SA pair (shared with the datapath threads), and its outbound SPI.
struct PairCounters {
    inbound: Arc<SaCounters>,
    outbound: Arc<SaCounters>,
    spi_out: u32,
    /// The inbound packet count last reported to the engine as the peer's liveness.
    reported_in: u64,
    /// Packets both ways at the last usage poll.
    seen: u64,
    /// Packets received at the last usage poll.
    seen_in: u64,
}

/// How often the engine is told which SA pairs carried traffic (it renews only pairs in use; rekey.rs).
const USAGE_POLL: Duration = Duration::from_secs(10);

/// Forks into the background. The parent waits until the child reports that it is ready (then exits 0) or
/// dies first (then exits 1), so that the caller's exit code tells whether the daemon started.
pub fn detach() -> std::io::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two file descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet (the runtime starts after this), so fork is safe.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(rd);
            // SAFETY: plain system calls on our own process.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::close(null);
                }
            }
            Ok(wr)
        }
        _ => {
            drop(wr);
            let mut b = [0u8; 1];
            // SAFETY: reading one byte into a local buffer from our own pipe.
            let n = unsafe { libc::read(rd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
            std::process::exit(if n == 1 && b[0] == b'1' { 0 } else { 1 });
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(opts: Options, policy: Policy, ready: Option<OwnedFd>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let mut d = Daemon::start(opts, policy).await?;
        if let Some(fd) = ready {
            // SAFETY: writing one byte from a local buffer to our own pipe.
            unsafe { libc::write(fd.as_raw_fd(), b"1".as_ptr().cast(), 1) };
        }
        d.run().await
    })
}

struct Daemon {
    config: PathBuf,
    started: Instant,
    endpoint: Endpoint,
    sockets: Arc<IkeSockets>,
    keylog: Option<KeyLog>,
    control_path: PathBuf,
    pending: HashMap<RequestId, oneshot::Sender<Response>>,
    auto_requests: HashMap<RequestId, String>,
    auto_retry: HashMap<String, (Instant, Duration)>,
    /// When the SA pairs' counters are next read for [`Endpoint::child_used`].
    usage_poll_at: Instant,
    net_rx: mpsc::Receiver<Datagram>,
    ctl_rx: mpsc::Receiver<ControlRequest>,
    plumbing: Option<Plumbing>,
    dp_rx: mpsc::UnboundedReceiver<DpEvent>,
    pairs: HashMap<u32, PairCounters>,
    /// Inbound SAs installed at QM2, by SPI, until their Quick Mode completes.
    early_inbound: HashMap<u32, EarlyInbound>,
    /// Inbound SAs of retired pairs, kept until the given time for packets in flight ([`INBOUND_DRAIN`]).
    draining_inbound: Vec<(Instant, u32, IpAddr)>,
    acquires: HashMap<RequestId, (IpAddr, Action, String)>,
    fallback_at: HashMap<IpAddr, (Instant, String)>,
    rng: rand_chacha::ChaCha20Rng,
    /// The policy as the config file says it, before the keywords are resolved.
    base: Policy,
    /// The host's network configuration that the keywords were last resolved against.
    facts: HostFacts,
    facts_rx: mpsc::UnboundedReceiver<HostFacts>,
    /// What UDP 4500 carried.
    encap_stats: Arc<EncapStats>,
}

impl Daemon {
    async fn start(opts: Options, base: Policy) -> Result<Daemon, String> {
        let sources = host::facts::FactSources::default();
        let facts = host::facts::gather(&sources).unwrap_or_else(|e| {
            warn!("cannot read the host's network configuration (keywords resolve to nothing): {e}");
            HostFacts::default()
        });
        let policy = resolved(&base, &facts);
        let (facts_tx, facts_rx) = mpsc::unbounded_channel();
        if base.uses_keywords() {
            // Keeping the sender alive without a watcher would do no harm, but there is nothing to follow.
            host::watch::spawn(sources, facts.clone(), facts_tx)
                .map_err(|e| format!("cannot follow the host's network configuration: {e}"))?;
        }
        let listen = if policy.global.listen.is_empty() {
            netaddr::local_addresses().map_err(|e| format!("cannot list local addresses: {e}"))?
        } else {
            policy.global.listen.clone()
        };
        let sockets = Arc::new(IkeSockets::bind(&listen).await?);
        let control_path = policy.global.control_socket.clone();
        let listener = control::bind(&control_path)?;
        let keylog = match &policy.global.key_log {
            Some(dir) => {
                warn!(
                    "key log on: IKE and ESP keys are written to {} (anyone who reads them can decrypt the traffic)",
                    dir.display()
                );
                Some(KeyLog::open(dir.clone()).map_err(|e| format!("cannot open key log {}: {e}", dir.display()))?)
            }
            None => None,
        };
        let policy = Arc::new(policy);
        let (dp_tx, dp_rx) = mpsc::unbounded_channel();
        let (net_tx, net_rx) = mpsc::channel(4096);
        let encap_stats = Arc::new(EncapStats::default());
        let plumbing = if opts.datapath {
            let natt = NattSockets {
                sockets: sockets.natt().cloned().collect(),
                ike: net_tx.clone(),
                stats: encap_stats.clone(),
            };
            Some(Self::install_datapath(&policy, &listen, &sockets, dp_tx, natt)?)
        } else {
            info!("datapath off (--no-datapath): IKE only, no packet is protected by this host");
            None
        };
        let rng = rand_chacha::ChaCha20Rng::from_entropy();
        let endpoint = Endpoint::new(policy, Timing::default(), Box::new(rng));
        for (local, sock) in &sockets.sockets {
            let natt = local.port() == crate::sockets::NATT_PORT;
            if natt && plumbing.is_some() {
                // The datapath's inbound thread reads 4500 (mostly ESP) and passes IKE on.
                continue;
            }
            let (local, sock, tx, stats) = (*local, sock.clone(), net_tx.clone(), encap_stats.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, remote)) => {
                            let data = &buf[..n];
                            if natt {
                                if sort_4500(&stats, &tx, local, remote, data).is_some() {
                                    crate::sockets::bump(&stats.esp_dropped_no_datapath);
                                }
                            } else if tx.send(Datagram { local, remote, data: data.to_vec() }).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => debug!("IKE socket {local}: {e}"),
                    }
                }
            });
        }
        let (ctl_tx, ctl_rx) = mpsc::channel(64);
        tokio::spawn(control::serve(listener, ctl_tx));
        let rules = endpoint.policy().rules.len();
        info!(
            "hostsecd {} started: config {}, {rules} rule{}, IKE on {}, control socket {}",
            env!("CARGO_PKG_VERSION"),
            opts.config.display(),
            if rules == 1 { "" } else { "s" },
            sockets.sockets.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>().join(" "),
            control_path.display()
        );
        Ok(Daemon {
            config: opts.config,
            started: Instant::now(),
            endpoint,
            sockets,
            keylog,
            control_path,
            pending: HashMap::new(),
            auto_requests: HashMap::new(),
            auto_retry: HashMap::new(),
            usage_poll_at: Instant::now() + USAGE_POLL,
            net_rx,
            ctl_rx,
            plumbing,
            dp_rx,
            pairs: HashMap::new(),
            early_inbound: HashMap::new(),
            draining_inbound: Vec::new(),
            acquires: HashMap::new(),
            fallback_at: HashMap::new(),
            rng: rand_chacha::ChaCha20Rng::from_entropy(),
            base,
            facts,
            facts_rx,
            encap_stats,
        })
    }

    /// Removes what an earlier run left (after `kill -9`), creates the TUN, installs routes and the firewall,
    /// opens the raw ESP sockets, marks the IKE sockets and starts the datapath threads. On failure everything
    /// installed so far is removed again.
    fn install_datapath(
        policy: &Arc<Policy>,
        locals: &[IpAddr],
        ike: &IkeSockets,
        events: mpsc::UnboundedSender<DpEvent>,
        natt: NattSockets,
    ) -> Result<Plumbing, String> {
        let config = host::Config::default();
        match host::restore_leftovers(&config) {
            Ok(left) if left.any() => warn!("removed what an earlier hostsecd left on the host: {left:?}"),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot check the host for leftovers of an earlier run: {e}")),
        }
        let tun = Tun::create(&config.tun_name, config.mtu)
            .map_err(|e| format!("cannot create TUN {}: {e}", config.tun_name))?;
        let snapshot = Snapshot::new(policy.clone());
        let (routes, plan) = host_plan(policy, &snapshot.spd, locals, &config.tun_name);
        let mut state = HostState::new();
        state.install_routing(&config, &routes).map_err(|e| format!("cannot install policy routing: {e}"))?;
        state.apply_firewall(&plan).map_err(|e| format!("cannot install the nftables table: {e}"))?;
        for (a, s) in &ike.sockets {
            host::set_mark(&**s, host::MARK).map_err(|e| format!("cannot mark the IKE socket on {a}: {e}"))?;
        }
        let sockets = Arc::new(EspSockets::open(host::MARK).map_err(|e| format!("cannot open raw ESP sockets: {e}"))?);
        let datapath = Datapath::start(tun, sockets, snapshot, events, natt)
            .map_err(|e| format!("cannot start the datapath: {e}"))?;
        info!(
            "datapath up: TUN {} (MTU {}), {} route(s), firewall table inet hostsec",
            config.tun_name,
            config.mtu,
            routes.len()
        );
        Ok(Plumbing { state, datapath, config, locals: locals.to_vec() })
    }

    async fn run(&mut self) -> Result<(), String> {
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        self.start_auto_rules(Instant::now());
        self.flush().await;
        loop {
            // Certificate validity needs the calendar, which the sans-IO engine does not read; refreshed every turn
            // so that clock steps and suspends are followed.
            self.endpoint.set_wall_clock(Instant::now(), std::time::SystemTime::now());
            let deadline = [
                self.endpoint.poll_timeout(),
                self.auto_retry.values().map(|(t, _)| *t).min(),
                self.fallback_at.values().map(|(t, _)| *t).min(),
                self.draining_inbound.iter().map(|(t, _, _)| *t).min(),
                Some(self.usage_poll_at),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = tokio::time::sleep_until(
                deadline.map_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600), Into::into),
            );
            tokio::select! {
                Some(d) = self.net_rx.recv() => self.endpoint.handle(Instant::now(), d.local, d.remote, &d.data),
                Some(c) = self.ctl_rx.recv() => self.control(c),
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => { let _ = self.reload(); }
                Some(e) = self.dp_rx.recv() => self.on_datapath(e),
                Some(f) = self.facts_rx.recv() => self.on_host_facts(f),
                _ = sleep => {
                    let now = Instant::now();
                    self.report_esp_activity(now);
                    self.endpoint.handle_timeout(now);
                    self.retry_auto_rules(now);
                    self.request_fallbacks(now);
                    self.poll_usage(now);
                    self.end_draining_inbound(now);
                }
            }
            self.flush().await;
        }
        info!("stopping: deleting SAs");
        self.endpoint.terminate(Instant::now(), None, None, "hostsecd is stopping");
        self.flush().await;
        if let Some(mut p) = self.plumbing.take() {
            p.datapath.stop();
            p.state.teardown();
            info!("host restored: routes, rules and firewall table removed, TUN {} closed", p.config.tun_name);
        }
        control::remove(&self.control_path);
        info!("hostsecd stopped");
        Ok(())
    }

    /// Acts on the engine's events, then sends what it queued. Events first: an SA that a message we are about to
    /// send lets the peer use (our QM2 as responder, our QM3 as initiator) is installed before the peer can send on
    /// it.
    async fn flush(&mut self) {
        loop {
            while let Some(e) = self.endpoint.poll_event() {
                self.on_event(e);
            }
            let Some(t) = self.endpoint.poll_transmit() else { break };
            match self.sockets.for_local(t.local) {
                Some(s) => {
                    if let Err(e) = s.send_to(&t.payload, t.remote).await {
                        warn!(peer = %t.remote, "cannot send IKE message: {e}");
                    }
                }
                None => warn!(peer = %t.remote, "no IKE socket for local address {}", t.local),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::MainModeUp { info, encryption_key } => {
                // Wireshark's IKEv1 table cannot open AuthIP's CRYPTO payloads (another layout and key), so an
                // AuthIP SA's key would only mislead there; its ESP SAs are logged like any others.
                if info.keying == hostsec_proto::policy::Keying::AuthIp {
                    return;
                }
                if let Some(k) = &self.keylog {
                    if let Err(err) = k.main_mode(&info.cookie_i, encryption_key.expose()) {
                        warn!("key log: {err}");
                    }
                }
            }
            Event::QuickModeUp(keys) => {
                if let Some(k) = &self.keylog {
                    if let Err(err) = k.esp(&keys) {
                        warn!("key log: {err}");
                    }
                }
                self.auto_retry.remove(&keys.info.rule);
                self.fallback_at.remove(&keys.info.peer.ip());
                self.install_sa(&keys);
            }
            Event::QuickModeInbound(keys) => self.install_inbound_early(&keys),
            Event::QuickModeDown { info, reason } => {
                if reason == hostsec_proto::ike::REKEYED {
                    // Ours to retire: the peer learns it from our DELETE, and may send on it until then.
                    self.remove_sa_draining(info.spi_in, info.spi_out, info.local.ip());
                } else {
                    self.remove_sa(info.spi_in, info.spi_out, info.local.ip());
                }
                let auto = self.endpoint.policy().rule(&info.rule).is_some_and(|r| r.auto == AutoStart::Start);
                if auto && !reason.contains("administrator") && reason != hostsec_proto::ike::REKEYED {
                    // Bring an always-on rule back (the peer deleted the SA or it expired).
                    self.auto_retry
                        .insert(info.rule.clone(), (Instant::now() + Duration::from_secs(1), AUTO_RETRY_MIN));
                }
            }
            Event::MainModeDown { .. } => {}
            Event::PeerDead { peer, rule, reason } => {
                // The SAs went with their own events (QuickModeDown removed the ESP SAs); traffic re-keys.
                warn!(peer = %peer, rule = %rule, "{reason}: its SAs are deleted; the next packet for it negotiates anew");
            }
            Event::PeerMoved { old, new, local, spis_in } => {
                info!("peer {old} moved to {new} (its NAT mapping changed): {} SA pair(s) follow", spis_in.len());
                if let Some(p) = &self.plumbing {
                    for spi_in in spis_in {
                        if let Some(c) = self.pairs.get(&spi_in) {
                            p.datapath.outbound(OutCmd::Moved(c.spi_out, new));
                        }
                        p.datapath.inbound(InCmd::Moved(spi_in, new));
                    }
                }
                debug!("SAs to {new} use {local}");
            }
            Event::NegotiationFailed { request, reason, .. } => {
                if let Some((peer, action, rule)) = request.and_then(|r| self.acquires.remove(&r)) {
                    // IKE for packets waiting in the datapath failed: `request` peers get cleartext, `require`
                    // peers' packets are dropped (and counted).
                    self.fallback_at.remove(&peer);
                    if let Some(p) = &self.plumbing {
                        let cleartext = action == Action::Request;
                        p.datapath.outbound(OutCmd::AcquireFailed { peer, rule, cleartext });
                    }
                }
                if let Some(r) = request {
                    if let Some(tx) = self.pending.remove(&r) {
                        let _ = tx.send(Response::failed(reason.clone()));
                    }
                    if let Some(rule) = self.auto_requests.remove(&r) {
                        let backoff =
                            self.auto_retry.get(&rule).map_or(AUTO_RETRY_MIN, |(_, b)| (*b * 2).min(AUTO_RETRY_MAX));
                        info!(rule = %rule, "auto-start failed; retrying in {}s", backoff.as_secs());
                        self.auto_retry.insert(rule, (Instant::now() + backoff, backoff));
                    }
                }
            }
            Event::RequestDone { request, info, verdict } => {
                self.acquires.remove(&request);
                if let Some(tx) = self.pending.remove(&request) {
                    let mut entry = serde_json::to_value(QuickModeEntry::from(&info)).unwrap_or_default();
                    if let Some(o) = entry.as_object_mut() {
                        o.insert("verdict".into(), serde_json::Value::String(verdict));
                    }
                    let _ = tx.send(Response::ok(entry));
                }
                self.auto_requests.remove(&request);
            }
        }
    }

    /// Tells the engine which SA pairs carried packets since the last poll, from the datapath's counters.
    fn poll_usage(&mut self, now: Instant) {
        if now < self.usage_poll_at {
            return;
        }
        self.usage_poll_at = now + USAGE_POLL;
        self.sweep_early_inbound(now);
        for (spi_in, pc) in self.pairs.iter_mut() {
            let received = pc.inbound.packets();
            let total = received.saturating_add(pc.outbound.packets());
            if total != pc.seen {
                pc.seen = total;
                self.endpoint.child_used(now, *spi_in, received != pc.seen_in);
                pc.seen_in = received;
            }
        }
    }

    /// Hands a new SA pair to the datapath (inbound first, so that the peer's first ESP packets find it; as the
    /// Quick Mode's responder the inbound SA is usually there already, since QM2: `install_inbound_early`).
    fn install_sa(&mut self, keys: &hostsec_proto::ike::ChildSaKeys) {
        let Some(p) = &self.plumbing else { return };
        let info = &keys.info;
        let (cfg_in, cfg_out) = SaConfig::from_child_keys(keys, sa_limits(info));
        // A draining SA with the same (random, since freed) SPI must not take the new one with it.
        self.draining_inbound.retain(|(_, spi, _)| *spi != info.spi_in);
        let early = self.early_inbound.remove(&info.spi_in);
        let inbound_counters = early.as_ref().map_or_else(|| cfg_in.counters.clone(), |e| e.counters.clone());
        let made_in = match early {
            Some(_) => Ok(None),
            None => InboundSa::new(&cfg_in).map(Some),
        };
        let made = made_in.and_then(|i| OutboundSa::new(&cfg_out, &mut self.rng).map(|o| (i, o)));
        match made {
            Ok((i, o)) => {
                self.pairs.insert(
                    info.spi_in,
                    PairCounters {
                        inbound: inbound_counters.clone(),
                        outbound: cfg_out.counters.clone(),
                        spi_out: info.spi_out,
                        reported_in: 0,
                        seen: 0,
                        seen_in: 0,
                    },
                );
                let (udp_in, udp_out) = udp_ends(info);
                if let Some(i) = i {
                    p.datapath.inbound(InCmd::Add(Box::new(i), info.rule.clone(), info.selector, udp_in));
                }
                // As the Quick Mode's initiator we have the pair before the peer does (it installs on QM3): the
                // new outbound SA waits for the peer's first packet on it (or TAKEOVER_WAIT) before taking over.
                let gate =
                    (info.role == hostsec_proto::ike::Role::Initiator).then(|| hostsec_proto::esp::TakeoverGate {
                        peer_uses: inbound_counters.clone(),
                        until: Instant::now() + TAKEOVER_WAIT,
                    });
                p.datapath.outbound(OutCmd::Add(Box::new(o), info.rule.clone(), info.selector, gate, udp_out));
            }
            Err(e) => {
                warn!(peer = %info.peer, rule = %info.rule, "cannot install ESP SA pair {:08x}/{:08x}: {e}", info.spi_in, info.spi_out)
            }
        }
    }

    /// The inbound SA of a Quick Mode we answer, installed when QM2 goes out ([`Event::QuickModeInbound`]): the
    /// initiator may send on the pair right after its QM3, before we have read QM3. Removed again by
    /// `sweep_early_inbound` when QM3 never comes.
    fn install_inbound_early(&mut self, keys: &hostsec_proto::ike::ChildSaKeys) {
        let Some(p) = &self.plumbing else { return };
        let info = &keys.info;
        let (cfg_in, _) = SaConfig::from_child_keys(keys, sa_limits(info));
        self.draining_inbound.retain(|(_, spi, _)| *spi != info.spi_in);
        match InboundSa::new(&cfg_in) {
            Ok(i) => {
                let (udp_in, _) = udp_ends(info);
                p.datapath.inbound(InCmd::Add(Box::new(i), info.rule.clone(), info.selector, udp_in));
                let early =
                    EarlyInbound { since: Instant::now(), counters: cfg_in.counters.clone(), local: info.local.ip() };
                self.early_inbound.insert(info.spi_in, early);
            }
            Err(e) => {
                warn!(peer = %info.peer, rule = %info.rule, "cannot install inbound ESP SA {:08x}: {e}", info.spi_in)
            }
        }
    }

    /// Removes inbound SAs installed at QM2 whose Quick Mode never completed (the engine gives a Quick Mode up
    /// well within `EARLY_INBOUND_MAX`).
    fn sweep_early_inbound(&mut self, now: Instant) {
        let stale: Vec<(u32, IpAddr)> = self
            .early_inbound
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.since) > EARLY_INBOUND_MAX)
            .map(|(spi, e)| (*spi, e.local))
            .collect();
        for (spi, local) in stale {
            self.early_inbound.remove(&spi);
            debug!("inbound ESP SA {spi:08x} removed: its Quick Mode never completed");
            if let Some(p) = &self.plumbing {
                p.datapath.inbound(InCmd::Remove(spi, local));
            }
        }
    }

    /// Tells the engine which SA pairs received ESP since the last time, for dead peer detection: a peer whose
    /// packets arrive is alive. Called before the engine's timers run (a DPD timer is one of them), so that a
    /// busy peer is never probed; a counter read per SA pair, not a call per packet.
    fn report_esp_activity(&mut self, now: Instant) {
        for (spi_in, c) in &mut self.pairs {
            let packets = c.inbound.packets();
            if packets != c.reported_in {
                c.reported_in = packets;
                self.endpoint.esp_received(now, *spi_in);
            }
        }
    }

    /// Removes a retired pair's outbound SA now and its inbound SA after [`INBOUND_DRAIN`].
    fn remove_sa_draining(&mut self, spi_in: u32, spi_out: u32, local: IpAddr) {
        self.pairs.remove(&spi_in);
        if let Some(p) = &self.plumbing {
            p.datapath.outbound(OutCmd::Remove(spi_out));
            self.draining_inbound.push((Instant::now() + INBOUND_DRAIN, spi_in, local));
        }
    }

    /// Removes the inbound SAs of retired pairs whose drain time is over.
    fn end_draining_inbound(&mut self, now: Instant) {
        let Some(p) = &self.plumbing else { return };
        self.draining_inbound.retain(|&(until, spi_in, local)| {
            if until > now {
                return true;
            }
            p.datapath.inbound(InCmd::Remove(spi_in, local));
            false
        });
    }

    fn remove_sa(&mut self, spi_in: u32, spi_out: u32, local: IpAddr) {
        self.pairs.remove(&spi_in);
        if let Some(p) = &self.plumbing {
            p.datapath.inbound(InCmd::Remove(spi_in, local));
            p.datapath.outbound(OutCmd::Remove(spi_out));
        }
    }

    fn on_datapath(&mut self, e: DpEvent) {
        let now = Instant::now();
        match e {
            DpEvent::Acquire { rule, flow } => {
                let action = self.endpoint.policy().rule(&rule).map(|r| r.action);
                let local = SocketAddr::new(flow.local, hostsec_proto::wire::consts::IKE_PORT);
                let peer = flow.remote;
                match self.endpoint.acquire(now, &rule, &flow, local) {
                    Ok(req) => {
                        debug!(rule = %rule, "traffic to {peer} (protocol {} port {}) needs an SA: negotiating", flow.protocol, flow.remote_port);
                        if let Some(a) = action {
                            self.acquires.insert(req, (peer, a, rule.clone()));
                            if a == Action::Request {
                                self.fallback_at.entry(peer).or_insert((now + REQUEST_FALLBACK_AFTER, rule));
                            }
                        }
                    }
                    Err(err) => warn!(rule = %rule, "cannot negotiate for traffic to {peer}: {err}"),
                }
            }
            DpEvent::Expired { spi, inbound } => self.endpoint.expire_child(now, spi, inbound),
            DpEvent::PeerMoved { spi, remote } => {
                if !self.endpoint.peer_moved(spi, remote) {
                    debug!("ESP in UDP of SA {spi:08x} from {remote}: IKE moved nothing");
                }
            }
            DpEvent::UnknownSpi { spi, peer } => {
                if !self.endpoint.esp_unknown_spi(now, peer, spi) {
                    debug!("ESP from {peer} for unknown SPI {spi:08x}: no INVALID-SPI (no Main Mode SA with it, or sent lately)");
                }
            }
            DpEvent::RekeySoon { spi, inbound } => {
                if self.endpoint.rekey(now, spi, inbound).is_none() {
                    debug!("no SA with SPI {spi:08x} to rekey");
                }
            }
        }
    }

    /// `request` peers that did not answer IKE in time get cleartext while IKE goes on.
    fn request_fallbacks(&mut self, now: Instant) {
        let due: Vec<IpAddr> = self.fallback_at.iter().filter(|(_, (t, _))| *t <= now).map(|(p, _)| *p).collect();
        for peer in due {
            let Some((_, rule)) = self.fallback_at.remove(&peer) else { continue };
            if let Some(p) = &self.plumbing {
                info!(
                    "{peer} has not answered IKE within {}s: sending cleartext as its rule is 'request'",
                    REQUEST_FALLBACK_AFTER.as_secs()
                );
                p.datapath.outbound(OutCmd::AcquireFailed { peer, rule, cleartext: true });
            }
        }
    }

    fn start_auto_rules(&mut self, now: Instant) {
        let rules: Vec<String> = self
            .endpoint
            .policy()
            .rules
            .iter()
            .filter(|r| r.enabled && r.action.negotiates() && r.auto == AutoStart::Start)
            .map(|r| r.name.clone())
            .collect();
        for r in rules {
            self.initiate_auto(now, &r);
        }
    }

    fn retry_auto_rules(&mut self, now: Instant) {
        let due: Vec<String> = self.auto_retry.iter().filter(|(_, (t, _))| *t <= now).map(|(r, _)| r.clone()).collect();
        for r in due {
            if let Some((_, backoff)) = self.auto_retry.get_mut(&r) {
                // Keep the backoff; push the deadline out so that the outcome decides the next retry.
                let b = *backoff;
                self.auto_retry.insert(r.clone(), (now + AUTO_RETRY_MAX * 4, b));
            }
            self.initiate_auto(now, &r);
        }
    }

    fn initiate_auto(&mut self, now: Instant, rule: &str) {
        let Some(peer) = self.endpoint.policy().rule(rule).and_then(|r| r.remote.single_host()) else { return };
        let Some(local) = self.sockets.local_for(peer) else {
            warn!(rule = %rule, "cannot start: no IKE address of {peer}'s family");
            return;
        };
        match self.endpoint.initiate(now, rule, Some(peer), local) {
            Ok(req) => {
                self.auto_requests.insert(req, rule.to_string());
            }
            Err(e) => warn!(rule = %rule, "cannot start: {e}"),
        }
    }

    fn reload(&mut self) -> Result<(), Vec<String>> {
        match load_policy(&self.config) {
            Ok(base) => {
                for w in &base.warnings {
                    warn!("config: {w}");
                }
                info!("reloaded {}: {} rules", self.config.display(), base.rules.len());
                let policy = resolved(&base, &self.facts);
                self.base = base;
                self.apply_policy(policy);
                Ok(())
            }
            Err(errors) => {
                for e in &errors {
                    warn!("reload refused: {e}");
                }
                warn!("reload refused: the running configuration is unchanged");
                Err(errors)
            }
        }
    }

    /// The host's addresses, routes, resolver or leases changed: the keywords are resolved again. SAs whose peers
    /// stay covered stay up.
    fn on_host_facts(&mut self, facts: HostFacts) {
        info!("host network configuration changed: resolving the rule keywords again");
        self.facts = facts;
        let policy = resolved(&self.base, &self.facts);
        self.apply_policy(policy);
    }

    /// Puts a validated, resolved policy in force: routes, firewall, datapath, IKE.
    fn apply_policy(&mut self, p: Policy) {
        let p = Arc::new(p);
        if let Some(pl) = &mut self.plumbing {
            let snapshot = Snapshot::new(p.clone());
            let (routes, plan) = host_plan(&p, &snapshot.spd, &pl.locals, &pl.config.tun_name);
            if let Some(r) = pl.state.routing() {
                if let Err(e) = r.set_routes(&routes) {
                    warn!("policy change: routes: {e}");
                }
            }
            if let Err(e) = pl.state.apply_firewall(&plan) {
                warn!("policy change: firewall: {e}");
            }
            pl.datapath.set_policy(snapshot);
        }
        // SAs whose rule did not change stay; the others are deleted (the peer told) with their reason.
        self.endpoint.set_policy(Instant::now(), p);
        self.start_auto_rules(Instant::now());
    }

    fn control(&mut self, c: ControlRequest) {
        let now = Instant::now();
        let response = match c.request {
            Request::Status => {
                let mm = self.endpoint.main_mode_sas(now);
                let established = mm.iter().filter(|m| m.state == "established").count();
                // an AuthIP SA whose delete waits for the peer's ACK is neither
                let negotiating = mm.iter().filter(|m| m.state != "deleting").count() - established;
                let p = self.endpoint.policy();
                Response::ok(StatusView {
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    uptime_s: self.started.elapsed().as_secs(),
                    config: self.config.display().to_string(),
                    listen: self.sockets.sockets.iter().map(|(a, _)| a.to_string()).collect(),
                    rules: p.rules.len(),
                    main_mode_established: established,
                    main_mode_negotiating: negotiating,
                    quick_mode: self.endpoint.quick_mode_sas(now).len(),
                    key_log: self.keylog.is_some(),
                    warnings: p.warnings.clone(),
                })
            }
            Request::Sas => Response::ok(SasView {
                main_mode: self.endpoint.main_mode_sas(now).iter().map(MainModeEntry::from).collect(),
                quick_mode: self.endpoint.quick_mode_sas(now).iter().map(|q| self.quick_mode_entry(q)).collect(),
            }),
            Request::Stats => Response::ok(self.stats()),
            Request::Rules => {
                Response::ok(self.endpoint.policy().rules.iter().map(RuleEntry::from).collect::<Vec<_>>())
            }
            Request::RuleExplain { peer, protocol, port } => self.explain(peer, protocol, port),
            Request::Initiate { rule, peer } => {
                let target = peer.or_else(|| self.endpoint.policy().rule(&rule).and_then(|r| r.remote.single_host()));
                let local = target.and_then(|p| self.sockets.local_for(p));
                let local = local.unwrap_or_else(|| self.sockets.first());
                match self.endpoint.initiate(now, &rule, peer, local) {
                    Ok(req) => {
                        self.pending.insert(req, c.reply);
                        return;
                    }
                    Err(e) => Response::invalid(e.to_string()),
                }
            }
            Request::RuleTest { rule, peer } => {
                let local = self.sockets.local_for(peer).unwrap_or_else(|| self.sockets.first());
                match self.endpoint.test_rule(now, &rule, Some(peer), local) {
                    Ok(req) => {
                        self.pending.insert(req, c.reply);
                        return;
                    }
                    Err(e) => Response::invalid(e.to_string()),
                }
            }
            Request::Terminate { rule, peer } => match &rule {
                Some(r) if self.endpoint.policy().rule(r).is_none() => {
                    Response::invalid(format!("no rule named '{r}'"))
                }
                _ => {
                    let n = self.endpoint.terminate(now, rule.as_deref(), peer, "terminated by the administrator");
                    Response::ok(serde_json::json!({ "deleted": n }))
                }
            },
            Request::Reload => match self.reload() {
                Ok(()) => Response::ok(serde_json::json!({ "reloaded": self.config.display().to_string() })),
                Err(errors) => Response::invalid(errors.join("\n")),
            },
            // The policy in force (reloads replace it), judged at the calendar time of the question.
            Request::Certs => {
                Response::ok(CertsView::from_policy(self.endpoint.policy(), std::time::SystemTime::now()))
            }
        };
        let _ = c.reply.send(response);
    }

    /// A Quick Mode SA as `hostsec sas` shows it, with the datapath's counters.
    fn quick_mode_entry(&self, q: &hostsec_proto::ike::QuickModeSaInfo) -> QuickModeEntry {
        let mut e = QuickModeEntry::from(q);
        if let Some(c) = self.pairs.get(&q.spi_in) {
            e.bytes_in = c.inbound.bytes();
            e.packets_in = c.inbound.packets();
            e.bytes_out = c.outbound.bytes();
            e.packets_out = c.outbound.packets();
        }
        e
    }

    /// IKE, ESP and firewall counters.
    fn stats(&self) -> StatsView {
        let (esp, firewall) = match &self.plumbing {
            None => (None, None),
            Some(p) => {
                // JSON keys in snake_case (`authentication_failed`), so that jq paths can name them.
                let mut drops: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
                let mut add = |c: &SaCounters| {
                    for r in DropReason::ALL {
                        let n = c.drops(r);
                        if n > 0 {
                            *drops.entry(r.name().replace('-', "_")).or_default() += n;
                        }
                    }
                };
                add(&p.datapath.unattributed);
                for pc in self.pairs.values() {
                    add(&pc.inbound);
                    add(&pc.outbound);
                }
                let esp = serde_json::json!({ "datapath": p.datapath.stats.view(), "drops": drops });
                let fw = p.state.firewall().and_then(|f| f.counters().ok()).map(|c| {
                    let one =
                        |k: host::firewall::Counter| serde_json::json!({ "packets": k.packets, "bytes": k.bytes });
                    serde_json::json!({
                        "drop_require_in": one(c.drop_require_in),
                        "drop_require_out": one(c.drop_require_out),
                        "drop_block": one(c.drop_block),
                        "drop_default": one(c.drop_default),
                    })
                });
                (Some(esp), fw)
            }
        };
        let udp_encap = serde_json::to_value(self.encap_stats.view()).ok();
        let authip_rules =
            self.endpoint.policy().rules.iter().any(|r| r.keying == hostsec_proto::policy::Keying::AuthIp);
        let authip = AuthipStatsView::of(self.endpoint.authip_engine());
        let authip = (authip_rules || authip != AuthipStatsView::default()).then_some(authip);
        StatsView { ike: self.endpoint.stats().clone(), esp, firewall, udp_encap, authip }
    }

    fn explain(&self, peer: IpAddr, protocol: Option<u8>, port: Option<u16>) -> Response {
        let p: &Policy = self.endpoint.policy();
        let local = self.sockets.local_for(peer).map(|a| a.ip());
        let Some(local) = local else { return Response::invalid(format!("no local IKE address of {peer}'s family")) };
        let spd = hostsec_proto::policy::Spd::build(p);
        let q = hostsec_proto::policy::ExplainQuery { local, peer, protocol, port };
        Response::ok(p.explain_query(&spd, &q))
    }
}

/// `base` with its keywords resolved against `facts`; what each keyword stands for is logged, and a keyword that
/// stands for nothing is warned about.
fn resolved(base: &Policy, facts: &HostFacts) -> Policy {
    let mut p = base.clone();
    if !p.uses_keywords() {
        return p;
    }
    for w in p.resolve(facts) {
        warn!("keywords: {w}");
    }
    for r in p.rules.iter().filter(|r| r.remote.keywords().next().is_some() || r.local.keywords().next().is_some()) {
        info!(rule = %r.name, "keywords resolved: remote {}; local {}", r.remote, r.local);
    }
    p
}
