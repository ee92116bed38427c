//! IKE's UDP sockets: one per local address on port 500, and one on port 4500 (NAT traversal, RFC 3947/3948),
//! where IKE behind the non-ESP marker, ESP in UDP and NAT-keepalives share the port.

use hostsec_proto::wire::consts::IKE_PORT;
use hostsec_proto::wire::udp_encap::{classify, UdpEncap};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::debug;

/// The NAT-T port (RFC 3947 §4).
pub const NATT_PORT: u16 = 4500;

/// A datagram received on an IKE socket, for `Endpoint::handle`.
pub struct Datagram {
    /// The socket's address (port 500 or 4500).
    pub local: SocketAddr,
    /// The sender.
    pub remote: SocketAddr,
    /// The whole UDP payload (on 4500 with the non-ESP marker).
    pub data: Vec<u8>,
}

macro_rules! encap_counters {
    ($(#[doc = $doc:literal] $name:ident),* $(,)?) => {
        /// Counters of what arrives on (and leaves through) UDP 4500, shown by `hostsec stats` as `udp_encap`.
        #[derive(Debug, Default)]
        pub struct EncapStats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A snapshot of [`EncapStats`].
        #[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
        pub struct EncapStatsView {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl EncapStats {
            /// Reads every counter.
            pub fn view(&self) -> EncapStatsView {
                EncapStatsView { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

encap_counters! {
    /// IKE messages (behind the non-ESP marker) handed to IKE.
    ike_received,
    /// IKE messages dropped because IKE was too far behind (its queue was full).
    ike_dropped_queue_full,
    /// NAT-keepalives (0xFF) received and dropped.
    keepalives_received,
    /// Datagrams that are neither IKE, ESP nor a keepalive (too short, reserved SPI), dropped.
    invalid_dropped,
    /// ESP-in-UDP packets received (the datapath opens them; its `esp` counters say what became of them).
    esp_received,
    /// ESP-in-UDP packets dropped because the daemon runs without a datapath.
    esp_dropped_no_datapath,
    /// ESP-in-UDP packets dropped because their SA was not negotiated with UDP encapsulation.
    esp_dropped_not_encapsulated,
    /// ESP-in-UDP packets sent.
    esp_sent,
    /// Authenticated packets from a new address or port reported to IKE as a mapping change.
    peer_moves_reported,
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Sorts one datagram received on a 4500 socket: IKE goes to `ike` (whole payload, marker included: the endpoint
/// strips it), keepalives and invalid datagrams are counted and dropped; ESP is returned (SPI and packet) for the
/// caller to open.
pub fn sort_4500<'a>(
    stats: &EncapStats,
    ike: &mpsc::Sender<Datagram>,
    local: SocketAddr,
    remote: SocketAddr,
    payload: &'a [u8],
) -> Option<(u32, &'a [u8])> {
    match classify(payload) {
        UdpEncap::Keepalive => bump(&stats.keepalives_received),
        UdpEncap::Invalid(why) => {
            bump(&stats.invalid_dropped);
            debug!("UDP {local} from {remote}: dropped {}-byte datagram: {why}", payload.len());
        }
        UdpEncap::Ike(_) => match ike.try_send(Datagram { local, remote, data: payload.to_vec() }) {
            Ok(()) => bump(&stats.ike_received),
            Err(_) => bump(&stats.ike_dropped_queue_full),
        },
        UdpEncap::Esp { spi, packet } => {
            bump(&stats.esp_received);
            return Some((spi, packet));
        }
    }
    None
}

/// The bound IKE sockets.
pub struct IkeSockets {
    /// Socket per local address and port (500 and 4500 on each address).
    pub sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
}

impl IkeSockets {
    /// Binds UDP 500 and 4500 on each address.
    pub async fn bind(addrs: &[IpAddr]) -> Result<IkeSockets, String> {
        let mut sockets = Vec::new();
        for a in addrs {
            for port in [IKE_PORT, NATT_PORT] {
                let sa = SocketAddr::new(*a, port);
                let s = UdpSocket::bind(sa).await.map_err(|e| format!("cannot bind IKE on {sa}: {e}"))?;
                sockets.push((sa, Arc::new(s)));
            }
        }
        if sockets.is_empty() {
            return Err("no address to bind IKE on".into());
        }
        Ok(IkeSockets { sockets })
    }

    /// The sockets on port 4500.
    pub fn natt(&self) -> impl Iterator<Item = &(SocketAddr, Arc<UdpSocket>)> {
        self.sockets.iter().filter(|(a, _)| a.port() == NATT_PORT)
    }

    /// The socket bound to `local` (address and port), or one of the same family and port.
    pub fn for_local(&self, local: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.sockets
            .iter()
            .find(|(a, _)| *a == local)
            .or_else(|| self.sockets.iter().find(|(a, _)| a.is_ipv4() == local.is_ipv4() && a.port() == local.port()))
            .map(|(_, s)| s)
    }

    /// The local IKE address (port 500) to use towards `peer`: the kernel's source address if we are bound to it,
    /// else the first bound address of the peer's family.
    pub fn local_for(&self, peer: IpAddr) -> Option<SocketAddr> {
        let routed = crate::netaddr::source_towards(peer).ok();
        let ike = || self.sockets.iter().map(|(a, _)| *a).filter(|a| a.port() == IKE_PORT);
        ike().find(|a| Some(a.ip()) == routed).or_else(|| ike().find(|a| a.is_ipv4() == peer.is_ipv4()))
    }

    /// The first port-500 address (the fallback local address of requests).
    pub fn first(&self) -> SocketAddr {
        self.sockets.iter().map(|(a, _)| *a).find(|a| a.port() == IKE_PORT).unwrap_or(self.sockets[0].0)
    }
}
