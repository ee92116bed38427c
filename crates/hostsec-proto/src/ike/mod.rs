//! IKEv1 (RFC 2409): Main Mode with pre-shared keys or certificates (RSA, ECDSA P-256/P-384; chains checked by
//! [`crate::pki`]), Quick Mode for ESP transport SAs, and Informational
//! exchanges, as explicit state machines behind a sans-IO [`Endpoint`].
//!
//! The daemon (and every test) drives an endpoint with [`Endpoint::handle`] for each datagram,
//! [`Endpoint::handle_timeout`] when [`Endpoint::poll_timeout`] passes, and [`Endpoint::initiate`]; it then
//! drains [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`].
//!
//! A reader finds each message of each exchange in one file: `main_mode.rs` (MM1–MM6), `quick_mode.rs`
//! (QM1–QM3), `informational.rs` (notify, delete, DPD messages); `dpd.rs` when to probe a silent peer and when it is
//! dead; `proposal.rs` turns strength levels into SA payloads and
//! chooses among a peer's; `message.rs` frames, encrypts and decrypts; `fragment.rs` cuts datagrams too large for
//! the path into IKE fragments and reassembles the peer's; `vendor.rs` holds the vendor IDs; `nat.rs` the NAT
//! detection of NAT traversal and its setting (docs/nat-traversal.md has the daemon's side); `endpoint.rs`
//! dispatches; `admission.rs` bounds the half-open Main Modes a flood of first messages can create and
//! rate-limits the logging of refusals; `selector.rs` holds the traffic selectors of Quick Mode SAs and the flow lookups the datapath
//! shares.

mod admission;
mod dpd;
mod endpoint;
mod events;
mod fragment;
mod informational;
mod lifetime;
mod main_mode;
mod message;
mod nat;
pub(crate) mod proposal;
pub(crate) mod quick_mode;
mod rekey;
pub(crate) mod retransmit;
mod sa;
pub mod selector;
mod stats;
mod vendor;

pub use dpd::DpdInfo;
pub use endpoint::{Endpoint, InitiateError, Occupancy, StateCounts, Transmit, REKEYED};
pub use events::{ChildSaKeys, Event, MainModeSaInfo, NatStatus, QuickModeSaInfo, RequestId, Role, UdpEncapsulation};
pub(crate) use message::check_nonce as message_check_nonce;
pub use nat::nat_d as nat_d_hash;
pub use selector::{Flow, Selector};
pub use stats::Stats;

/// Timing and bounds of the IKE engine. The defaults suit real networks; tests shorten nothing (they use a
/// virtual clock).
#[derive(Debug, Clone)]
pub struct Timing {
    /// First retransmission timeout of a request.
    pub retransmit_initial: std::time::Duration,
    /// Retransmissions of a request before the exchange fails (the timeout doubles each time).
    pub retransmit_tries: u32,
    /// How long a responder keeps a half-open exchange without hearing from the peer.
    pub responder_timeout: std::time::Duration,
    /// How long a completed exchange keeps its last reply, to answer a retransmitted request with it.
    pub keep_reply: std::time::Duration,
    /// How long an incomplete reassembly of a peer's IKE fragments is kept (retransmitted fragments fill its
    /// gaps meanwhile) before it is discarded.
    pub fragment_reassembly: std::time::Duration,
    /// Interval of the NAT-keepalives that a host behind NAT sends on port 4500 to keep its mapping (RFC 3948
    /// §2.3); zero sends none. 20 s, as Windows and strongSwan, is below the UDP timeouts of common NATs.
    pub nat_keepalive: std::time::Duration,
    /// R-U-THEREs of one dead peer detection round, spread evenly over one `dpd_interval` (the global setting)
    /// after the peer fell silent for one; no answer to any of them and the peer is dead.
    pub dpd_probes: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            retransmit_initial: std::time::Duration::from_secs(2),
            retransmit_tries: 5,
            responder_timeout: std::time::Duration::from_secs(60),
            keep_reply: std::time::Duration::from_secs(60),
            fragment_reassembly: std::time::Duration::from_secs(30),
            nat_keepalive: std::time::Duration::from_secs(20),
            dpd_probes: 5,
        }
    }
}
