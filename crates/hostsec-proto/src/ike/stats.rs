//! Counters of what the IKE engine received, refused and dropped, for `hostsec stats` and the logs.

/// IKE counters. Every dropped datagram increments exactly one `dropped_*` counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Datagrams handed to the engine.
    pub received: u64,
    /// Datagrams sent (first transmissions, retransmissions and replayed replies).
    pub sent: u64,
    /// Requests retransmitted after a timeout.
    pub retransmitted: u64,
    /// Retransmitted requests from peers answered with the stored reply.
    pub duplicates_answered: u64,
    /// Dropped: not a well-formed ISAKMP message.
    pub dropped_malformed: u64,
    /// Dropped: cookies or message ID of no known SA or exchange.
    pub dropped_unknown_sa: u64,
    /// Dropped: a message that does not fit the exchange's state (late, out of order or a duplicate reply).
    pub dropped_unexpected: u64,
    /// Dropped: an encrypted message that did not decrypt to valid payloads, or whose HASH did not verify.
    pub dropped_bad_hash: u64,
    /// Refused: exchange types hostsec does not do (Aggressive Mode, Transaction, unknown).
    pub refused_exchange: u64,
    /// Refused: no rule negotiates with the peer.
    pub refused_no_rule: u64,
    /// Refused: no proposal met the rule's strength level or settings.
    pub refused_no_proposal: u64,
    /// Failed: authentication (HASH or identity) did not verify.
    pub auth_failed: u64,
    /// Failed: the peer stopped answering.
    pub timeouts: u64,
    /// Main Mode SAs established.
    pub main_mode_established: u64,
    /// Quick Mode SA pairs established.
    pub quick_mode_established: u64,
    /// Messages sent as IKE fragments (each fragment also counts in `sent`).
    #[serde(default)]
    pub fragmented_sent: u64,
    /// IKEv1 first messages with MS-MamieExists discarded because the peer's rule uses AuthIP, which the peer
    /// sent beside them ([MS-AIPS] §3.3.5.2).
    #[serde(default)]
    pub ikev1_discarded_for_authip: u64,
    /// IKE fragments received (each also counts in `received`).
    #[serde(default)]
    pub fragments_received: u64,
    /// Messages put back together from IKE fragments (then handled like any other).
    #[serde(default)]
    pub reassembled: u64,
    /// Dropped: IKE fragments refused (malformed, unknown SA, a fragmented first message, a duplicate, a
    /// contradiction) or discarded with an incomplete reassembly (bounds exceeded, superseded, timed out).
    #[serde(default)]
    pub dropped_fragments: u64,
    /// NAT-keepalives sent (this host behind NAT; not counted in `sent`).
    #[serde(default)]
    pub nat_keepalives_sent: u64,
    /// NAT-keepalives that reached IKE (also counted in `received`).
    #[serde(default)]
    pub nat_keepalives_received: u64,
    /// SAs that followed their peer to a new address or port (a NAT's new mapping).
    #[serde(default)]
    pub peer_moves: u64,
    /// Dead peer detection: R-U-THERE messages sent (first tries and repeats).
    #[serde(default)]
    pub dpd_requests_sent: u64,
    /// Dead peer detection: R-U-THERE-ACKs received that answered one of ours.
    #[serde(default)]
    pub dpd_acks_received: u64,
    /// Dead peer detection: peers declared dead (their SAs deleted).
    #[serde(default)]
    pub dpd_peers_dead: u64,
    /// INVALID-SPI notifications sent to peers that sent ESP for an SPI we do not have.
    #[serde(default)]
    pub invalid_spi_sent: u64,
    /// Authenticated INVALID-SPI notifications that made us delete an SA pair the peer no longer knows.
    #[serde(default)]
    pub invalid_spi_honoured: u64,
    /// SPIs (ESP SPIs, or ISAKMP cookie pairs) named by authenticated DELETE payloads that match no SA of ours
    /// with the peer: ignored. Usually an SA both sides deleted at the same moment (both expired it), so the count
    /// is informational; a steady rise means the peer's view of our SAs drifts from ours.
    #[serde(default)]
    pub ignored_deletes: u64,
    /// First messages (MM1) answered: new half-open responder Main Modes.
    #[serde(default)]
    pub responder_main_modes: u64,
    /// Dropped without state or answer: an MM1 from a peer address that has its share of half-open Main Modes
    /// (`half_open_main_modes_per_peer`).
    #[serde(default)]
    pub refused_half_open_per_peer: u64,
    /// Dropped without state or answer: an MM1 while the table of half-open Main Modes is full
    /// (`half_open_main_modes`).
    #[serde(default)]
    pub refused_half_open_total: u64,
    /// Dropped without state or answer: an MM1 beyond the rate of new Main Modes (`new_main_modes_per_second`).
    #[serde(default)]
    pub refused_rate: u64,
    /// Half-open responder Main Modes given up: the peer did not go on within the responder timeout (also
    /// counted in `timeouts`).
    #[serde(default)]
    pub half_open_expired: u64,
}
