//! The daemon loop: datagrams, control requests, signals and timers in; the IKE engine in the middle;
//! datagrams, key log lines and control answers out. Everything that has state lives in this one task.

use crate::control::{self, ControlRequest};
use crate::keylog::KeyLog;
use crate::sockets::IkeSockets;
use crate::{load_policy, netaddr, Options};
use hostsec_proto::control::{
    MainModeEntry, QuickModeEntry, Request, Response, RuleEntry, SasView, StatsView, StatusView,
};
use hostsec_proto::ike::{Endpoint, Event, RequestId, Timing};
use hostsec_proto::policy::{AutoStart, Policy};
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

/// A datagram received on an IKE socket.
struct Datagram {
    local: SocketAddr,
    remote: SocketAddr,
    data: Vec<u8>,
}

/// First retry of a failed `auto = "start"` rule; doubles up to `AUTO_RETRY_MAX`.
const AUTO_RETRY_MIN: Duration = Duration::from_secs(15);
const AUTO_RETRY_MAX: Duration = Duration::from_secs(300);

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
    net_rx: mpsc::Receiver<Datagram>,
    ctl_rx: mpsc::Receiver<ControlRequest>,
}

impl Daemon {
    async fn start(opts: Options, policy: Policy) -> Result<Daemon, String> {
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
        let rng = rand_chacha::ChaCha20Rng::from_entropy();
        let endpoint = Endpoint::new(Arc::new(policy), Timing::default(), Box::new(rng));
        let (net_tx, net_rx) = mpsc::channel(4096);
        for (local, sock) in &sockets.sockets {
            let (local, sock, tx) = (*local, sock.clone(), net_tx.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, remote)) => {
                            if tx.send(Datagram { local, remote, data: buf[..n].to_vec() }).await.is_err() {
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
            net_rx,
            ctl_rx,
        })
    }

    async fn run(&mut self) -> Result<(), String> {
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        self.start_auto_rules(Instant::now());
        self.flush().await;
        loop {
            let deadline = [self.endpoint.poll_timeout(), self.auto_retry.values().map(|(t, _)| *t).min()]
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
                _ = sleep => {
                    let now = Instant::now();
                    self.endpoint.handle_timeout(now);
                    self.retry_auto_rules(now);
                }
            }
            self.flush().await;
        }
        info!("stopping: deleting SAs");
        self.endpoint.terminate(Instant::now(), None, None, "hostsecd is stopping");
        self.flush().await;
        control::remove(&self.control_path);
        info!("hostsecd stopped");
        Ok(())
    }

    /// Sends what the engine queued and acts on its events.
    async fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            match self.sockets.for_local(t.local) {
                Some(s) => {
                    if let Err(e) = s.send_to(&t.payload, t.remote).await {
                        warn!(peer = %t.remote, "cannot send IKE message: {e}");
                    }
                }
                None => warn!(peer = %t.remote, "no IKE socket for local address {}", t.local),
            }
        }
        while let Some(e) = self.endpoint.poll_event() {
            self.on_event(e);
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::MainModeUp { info, encryption_key } => {
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
            }
            Event::QuickModeDown { info, reason } => {
                let auto = self.endpoint.policy().rule(&info.rule).is_some_and(|r| r.auto == AutoStart::Start);
                if auto && !reason.contains("administrator") {
                    // Bring an always-on rule back (the peer deleted the SA or it expired).
                    self.auto_retry
                        .insert(info.rule.clone(), (Instant::now() + Duration::from_secs(1), AUTO_RETRY_MIN));
                }
            }
            Event::MainModeDown { .. } => {}
            Event::NegotiationFailed { request, reason, .. } => {
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
            Event::RequestDone { request, info } => {
                if let Some(tx) = self.pending.remove(&request) {
                    let _ = tx.send(Response::ok(QuickModeEntry::from(&info)));
                }
                self.auto_requests.remove(&request);
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
            Ok(p) => {
                for w in &p.warnings {
                    warn!("config: {w}");
                }
                info!("reloaded {}: {} rules", self.config.display(), p.rules.len());
                self.endpoint.set_policy(Arc::new(p));
                self.start_auto_rules(Instant::now());
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

    fn control(&mut self, c: ControlRequest) {
        let now = Instant::now();
        let response = match c.request {
            Request::Status => {
                let mm = self.endpoint.main_mode_sas(now);
                let established = mm.iter().filter(|m| m.state == "established").count();
                let p = self.endpoint.policy();
                Response::ok(StatusView {
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    uptime_s: self.started.elapsed().as_secs(),
                    config: self.config.display().to_string(),
                    listen: self.sockets.sockets.iter().map(|(a, _)| a.to_string()).collect(),
                    rules: p.rules.len(),
                    main_mode_established: established,
                    main_mode_negotiating: mm.len() - established,
                    quick_mode: self.endpoint.quick_mode_sas(now).len(),
                    key_log: self.keylog.is_some(),
                    warnings: p.warnings.clone(),
                })
            }
            Request::Sas => Response::ok(SasView {
                main_mode: self.endpoint.main_mode_sas(now).iter().map(MainModeEntry::from).collect(),
                quick_mode: self.endpoint.quick_mode_sas(now).iter().map(QuickModeEntry::from).collect(),
            }),
            Request::Stats => Response::ok(StatsView { ike: self.endpoint.stats().clone() }),
            Request::Rules => {
                Response::ok(self.endpoint.policy().rules.iter().map(RuleEntry::from).collect::<Vec<_>>())
            }
            Request::RuleExplain { peer } => self.explain(peer),
            Request::Initiate { rule, peer } => {
                let target = peer.or_else(|| self.endpoint.policy().rule(&rule).and_then(|r| r.remote.single_host()));
                let local = target.and_then(|p| self.sockets.local_for(p));
                let local = local.unwrap_or_else(|| self.sockets.sockets[0].0);
                match self.endpoint.initiate(now, &rule, peer, local) {
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
        };
        let _ = c.reply.send(response);
    }

    fn explain(&self, peer: IpAddr) -> Response {
        let p: &Policy = self.endpoint.policy();
        let local = self.sockets.local_for(peer).map(|a| a.ip());
        let Some(local) = local else { return Response::invalid(format!("no local IKE address of {peer}'s family")) };
        let matching: Vec<&str> = p
            .rules
            .iter()
            .filter(|r| r.enabled && r.remote.contains(peer) && r.local.contains(local))
            .map(|r| r.name.as_str())
            .collect();
        match p.governing_rule(local, peer) {
            Some(i) => {
                let r = &p.rules[i];
                Response::ok(serde_json::json!({
                    "peer": peer.to_string(),
                    "local": local.to_string(),
                    "rule": r.name,
                    "action": r.action.name(),
                    "why": format!("most specific enabled rule covering {peer} (remote {})", r.remote),
                    "also_matched": matching.iter().filter(|n| **n != r.name).collect::<Vec<_>>(),
                }))
            }
            None => Response::ok(serde_json::json!({
                "peer": peer.to_string(),
                "local": local.to_string(),
                "rule": null,
                "action": match p.global.default_action { hostsec_proto::policy::DefaultAction::Bypass => "bypass", hostsec_proto::policy::DefaultAction::Block => "block" },
                "why": "no enabled rule covers this peer: the global default_action applies",
                "also_matched": Vec::<String>::new(),
            })),
        }
    }
}
