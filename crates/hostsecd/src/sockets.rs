//! IKE's UDP sockets: one per local address, port 500.

use hostsec_proto::wire::consts::IKE_PORT;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::UdpSocket;

/// The bound IKE sockets.
pub struct IkeSockets {
    /// Socket per local address.
    pub sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
}

impl IkeSockets {
    /// Binds UDP 500 on each address.
    pub async fn bind(addrs: &[IpAddr]) -> Result<IkeSockets, String> {
        let mut sockets = Vec::new();
        for a in addrs {
            let sa = SocketAddr::new(*a, IKE_PORT);
            let s = UdpSocket::bind(sa).await.map_err(|e| format!("cannot bind IKE on {sa}: {e}"))?;
            sockets.push((sa, Arc::new(s)));
        }
        if sockets.is_empty() {
            return Err("no address to bind IKE on".into());
        }
        Ok(IkeSockets { sockets })
    }

    /// The socket bound to `local`, or one of the same family.
    pub fn for_local(&self, local: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.sockets
            .iter()
            .find(|(a, _)| *a == local)
            .or_else(|| self.sockets.iter().find(|(a, _)| a.is_ipv4() == local.is_ipv4()))
            .map(|(_, s)| s)
    }

    /// The local IKE address to use towards `peer`: the kernel's source address if we are bound to it, else the
    /// first bound address of the peer's family.
    pub fn local_for(&self, peer: IpAddr) -> Option<SocketAddr> {
        let routed = crate::netaddr::source_towards(peer).ok();
        self.sockets
            .iter()
            .map(|(a, _)| *a)
            .find(|a| Some(a.ip()) == routed)
            .or_else(|| self.sockets.iter().map(|(a, _)| *a).find(|a| a.is_ipv4() == peer.is_ipv4()))
    }
}
