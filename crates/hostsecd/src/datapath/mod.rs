//! The ESP datapath: two dedicated threads around the sans-IO ESP engine of `hostsec-proto`.
//!
//! - The outbound thread reads the packets that policy routing sends into the TUN device, looks up the rule that
//!   governs each one's flow (addresses, protocol, ports; the SPD: one binary search), and seals it with an SA of
//!   that rule towards the peer whose traffic selector covers the flow, sends it in cleartext (bypass, or a
//!   `request` peer that runs no IKE), drops it (block), or queues it while IKE negotiates (on demand).
//! - The inbound thread receives ESP on raw sockets, opens it with the SA of its SPI (replay and ICV checked),
//!   checks that the inner packet lies within the SA's selector and that the SA's rule governs it, and writes it
//!   into the TUN.
//!
//! Each thread owns its SA table: the per-packet path takes no lock. The control plane (the tokio task that runs
//! IKE) talks to them through command channels (woken by an eventfd) and reads their counters (atomics); they
//! report back through an unbounded channel (acquires, rekeys).

pub mod encap;
mod inbound;
mod outbound;
mod wake;

use crate::host::{EspSockets, Tun};
use crate::sockets::{Datagram, EncapStats};
use encap::{UdpIn, UdpOut};
use hostsec_proto::esp::{InboundSa, OutboundSa, SaCounters};
use hostsec_proto::ike::{Flow, Selector};
use hostsec_proto::policy::{Policy, Spd};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc::UnboundedSender;
use wake::Wake;

/// The policy as the datapath consults it.
pub struct Snapshot {
    /// The rules.
    pub policy: Arc<Policy>,
    /// Their flattened remote sets.
    pub spd: Spd,
}

impl Snapshot {
    /// A snapshot of `policy`.
    pub fn new(policy: Arc<Policy>) -> Arc<Snapshot> {
        let spd = Spd::build(&policy);
        Arc::new(Snapshot { policy, spd })
    }
}

/// Commands to the outbound thread.
pub enum OutCmd {
    /// A new policy (reload).
    Policy(Arc<Snapshot>),
    /// An SA towards its peer for the traffic of a selector under a rule: from now on it carries that traffic
    /// (taking over from an older SA for the same traffic: make-before-break). Packets queued for the peer that
    /// it covers go out with it. With a gate, it takes over only once the peer has used the pair (or the gate's
    /// deadline passed).
    /// With `UdpOut`, its packets leave as ESP in UDP.
    Add(Box<OutboundSa>, String, Selector, Option<hostsec_proto::esp::TakeoverGate>, Option<UdpOut>),
    /// Forget the outbound SA with this SPI.
    Remove(u32),
    /// The UDP-encapsulated SA with this SPI sends to a new address and port from now on (the peer's NAT mapping
    /// changed).
    Moved(u32, SocketAddr),
    /// IKE with the peer under `rule` did not succeed (yet). With `cleartext` (a `request` rule), the peer is sent
    /// cleartext for the flows `request` rules govern until IKE succeeds or the fallback expires, queued packets
    /// of such flows included; without, the packets of `rule` queued for the peer are dropped (`require`).
    AcquireFailed {
        /// The peer.
        peer: IpAddr,
        /// The rule IKE ran under.
        rule: String,
        /// Whether cleartext is allowed (`request`).
        cleartext: bool,
    },
    /// Stop the thread.
    Stop,
}

/// Commands to the inbound thread.
pub enum InCmd {
    /// A new policy (reload).
    Policy(Arc<Snapshot>),
    /// A new inbound SA, the name of its rule and the traffic it may carry; with `UdpIn`, it arrives in UDP.
    Add(Box<InboundSa>, String, Selector, Option<UdpIn>),
    /// The peer of the UDP-encapsulated SA with this SPI is now at this address and port.
    Moved(u32, SocketAddr),
    /// Forget the inbound SA with this SPI for this local address.
    Remove(u32, IpAddr),
    /// Stop the thread.
    Stop,
}

/// What the datapath asks of the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpEvent {
    /// A packet wants protection and there is no SA for its flow: negotiate `rule` for it (with `flow.remote`
    /// from `flow.local`, for the packet's protocol and ports as the rule's selectors call for).
    Acquire {
        /// Rule name.
        rule: String,
        /// The packet's flow, from our side.
        flow: Flow,
    },
    /// An SA reached a hard limit in the datapath (bytes, packets, sequence numbers): delete it.
    Expired {
        /// The SPI.
        spi: u32,
        /// Whether `spi` is our inbound SPI.
        inbound: bool,
    },
    /// An SA crossed a soft lifetime limit: negotiate its successor.
    RekeySoon {
        /// The outbound SPI (or inbound SPI for inbound soft limits).
        spi: u32,
        /// Whether `spi` is our inbound SPI.
        inbound: bool,
    },
    /// ESP came from `peer` for an SPI that no inbound SA has (reported at most once a second per peer):
    /// `Endpoint::esp_unknown_spi` may tell the peer with INVALID-SPI.
    UnknownSpi {
        /// The SPI of the packet.
        spi: u32,
        /// Its source address.
        peer: IpAddr,
    },
    /// An authenticated ESP-in-UDP packet, the highest-numbered so far on the inbound SA `spi`, came from
    /// `remote`, which is not where the peer was: the NAT's mapping changed (`Endpoint::peer_moved`).
    PeerMoved {
        /// Our inbound SPI.
        spi: u32,
        /// The packet's source address and port.
        remote: SocketAddr,
    },
}

macro_rules! counters {
    ($(#[doc = $doc:literal] $name:ident),* $(,)?) => {
        /// Datapath counters (what `hostsec stats` shows under `esp`): every packet that is not delivered is
        /// counted under exactly one reason.
        #[derive(Debug, Default)]
        pub struct DpStats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A snapshot of [`DpStats`].
        #[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
        pub struct DpStatsView {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl DpStats {
            /// Reads every counter.
            pub fn view(&self) -> DpStatsView {
                DpStatsView { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Packets read from the TUN (outbound, before any decision).
    tun_read,
    /// ESP packets sent.
    esp_sent,
    /// Packets sent in cleartext (bypass rules, `request` fallback, default bypass).
    cleartext_sent,
    /// ESP packets received.
    esp_received,
    /// Decrypted packets written into the TUN.
    delivered,
    /// Packets queued while IKE negotiated.
    queued,
    /// Dropped: the queue for a peer (or all queues) was full.
    dropped_queue_full,
    /// Dropped: IKE failed for a `require` peer, or the queue waited too long.
    dropped_no_sa,
    /// Dropped: a `block` rule, or the default action `block`.
    dropped_blocked,
    /// Dropped inbound: the inner packet is outside the SA's selector, or the SA's rule does not govern it.
    dropped_policy_mismatch,
    /// Dropped: ESP refused the packet (see the reasons in `esp_drops`).
    dropped_esp,
    /// Dropped: a packet that is not IPv4/IPv6, or too short.
    dropped_malformed,
    /// Errors sending or writing packets.
    io_errors,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What both threads share: the policy, the way back to the control plane, the counters.
pub(crate) struct Common {
    snapshot: Arc<Snapshot>,
    events: UnboundedSender<DpEvent>,
    stats: Arc<DpStats>,
}

/// The UDP 4500 sockets the inbound thread reads, where their IKE goes, and the counters of what they carry.
pub struct NattSockets {
    /// The sockets (non-blocking), by local address.
    pub sockets: Vec<(SocketAddr, Arc<tokio::net::UdpSocket>)>,
    /// IKE messages for the control plane.
    pub ike: tokio::sync::mpsc::Sender<Datagram>,
    /// Counters.
    pub stats: Arc<EncapStats>,
}

/// The running datapath.
pub struct Datapath {
    out_tx: mpsc::Sender<OutCmd>,
    out_wake: Arc<Wake>,
    in_tx: mpsc::Sender<InCmd>,
    in_wake: Arc<Wake>,
    /// Counters.
    pub stats: Arc<DpStats>,
    /// Drops that belong to no SA (unknown SPIs, malformed ESP), shared with the inbound table.
    pub unattributed: Arc<SaCounters>,
    threads: Vec<JoinHandle<()>>,
}

impl Datapath {
    /// Starts the two threads. The inbound thread also reads the UDP 4500 sockets `natt` (IKE from them goes to
    /// `ike`).
    pub fn start(
        tun: Tun,
        sockets: Arc<EspSockets>,
        snapshot: Arc<Snapshot>,
        events: UnboundedSender<DpEvent>,
        natt: NattSockets,
    ) -> std::io::Result<Datapath> {
        let stats = Arc::new(DpStats::default());
        let (out_tx, out_rx) = mpsc::channel();
        let (in_tx, in_rx) = mpsc::channel();
        let out_wake = Arc::new(Wake::new()?);
        let in_wake = Arc::new(Wake::new()?);
        let tun_out = tun.try_clone()?;
        let common = || Common { snapshot: snapshot.clone(), events: events.clone(), stats: stats.clone() };
        let ob = outbound::Outbound::new(tun, sockets.clone(), out_rx, out_wake.clone(), common(), natt.stats.clone());
        let ib = inbound::Inbound::new(tun_out, sockets, in_rx, in_wake.clone(), common(), natt);
        let unattributed = ib.unattributed();
        let threads = vec![
            std::thread::Builder::new().name("hs-outbound".into()).spawn(move || ob.run())?,
            std::thread::Builder::new().name("hs-inbound".into()).spawn(move || ib.run())?,
        ];
        Ok(Datapath { out_tx, out_wake, in_tx, in_wake, stats, unattributed, threads })
    }

    /// Sends a command to the outbound thread.
    pub fn outbound(&self, c: OutCmd) {
        if self.out_tx.send(c).is_ok() {
            self.out_wake.wake();
        }
    }

    /// Sends a command to the inbound thread.
    pub fn inbound(&self, c: InCmd) {
        if self.in_tx.send(c).is_ok() {
            self.in_wake.wake();
        }
    }

    /// A new policy for both threads.
    pub fn set_policy(&self, snapshot: Arc<Snapshot>) {
        self.outbound(OutCmd::Policy(snapshot.clone()));
        self.inbound(InCmd::Policy(snapshot));
    }

    /// Stops the threads and waits for them.
    pub fn stop(mut self) {
        self.outbound(OutCmd::Stop);
        self.inbound(InCmd::Stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
