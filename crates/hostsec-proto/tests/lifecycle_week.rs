//! A simulated week of two hosts on a virtual clock, with short lifetimes (Quick Mode 5 min, Main Mode 20 min) so
//! that both kinds of SA are renewed hundreds of times, over a network that loses, duplicates and reorders IKE
//! datagrams. ESP traffic flows both ways all the time through real ESP tables fed from the engines' events, as
//! the daemon feeds its datapath. The engine alone decides when to renew (its soft deadlines); the test only
//! reports traffic ([`Endpoint::child_used`]), as the daemon's usage poll does.
//!
//! Checked: no packet ever finds no SA (no gap), every sealed packet opens on the other side (none lost during a
//! rekey), the state stays bounded during the week and returns to nothing once traffic stops and the SAs expire.

mod support;

use hostsec_proto::esp::{
    DropReason, InboundSa, InboundTable, LifetimeLimits, OutboundSa, OutboundTable, SaConfig, TakeoverGate,
    TAKEOVER_WAIT,
};
use hostsec_proto::ike::{Endpoint, Event, Role, StateCounts};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use support::{policy, Fate, Pair};

const ADDR_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The virtual time between two rounds of traffic.
const TICK: Duration = Duration::from_secs(5);

fn policy_towards(peer: Ipv4Addr) -> hostsec_proto::policy::Policy {
    policy(&format!(
        "[global]\nmain_mode_lifetime = \"20m\"\nquick_mode_lifetime = \"5m\"\n\n[[rule]]\nname = \"r\"\n\
         remote = \"{peer}\"\npsk = \"lifecycle-week-psk-0123456789\"\nauto = \"none\"\npfs = true\n"
    ))
}

/// One host's ESP tables, fed from its engine's events.
struct Esp {
    inbound: InboundTable,
    outbound: OutboundTable,
    /// Inbound SPI of each pair by its outbound SPI.
    pair_of: HashMap<u32, u32>,
    seen: usize,
    rng: ChaCha8Rng,
}

impl Esp {
    fn new(seed: u64) -> Esp {
        Esp {
            inbound: InboundTable::new(),
            outbound: OutboundTable::new(),
            pair_of: HashMap::new(),
            seen: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Installs and removes SAs as the daemon does for the events since the last call.
    fn follow(&mut self, events: &[Event], now: Instant) -> (usize, usize) {
        let (mut up, mut down) = (0, 0);
        for e in events.get(self.seen..).unwrap_or_default() {
            match e {
                Event::QuickModeUp(keys) => {
                    let info = &keys.info;
                    let mut limits = LifetimeLimits::from_negotiated(now, info.lifetime_left, info.lifetime_kb);
                    limits.soft_time = None;
                    let (cfg_in, cfg_out) = SaConfig::from_child_keys(keys, limits);
                    let i = InboundSa::new(&cfg_in).expect("inbound SA");
                    let o = OutboundSa::new(&cfg_out, &mut self.rng).expect("outbound SA");
                    self.inbound.insert(i);
                    let gate = (info.role == Role::Initiator)
                        .then(|| TakeoverGate { peer_uses: cfg_in.counters.clone(), until: now + TAKEOVER_WAIT });
                    assert!(self.outbound.insert_gated(o, &info.rule, info.selector, gate).is_none());
                    self.pair_of.insert(info.spi_out, info.spi_in);
                    up += 1;
                }
                Event::QuickModeDown { info, .. } => {
                    self.inbound.remove(info.spi_in, info.local.ip());
                    self.outbound.remove(info.spi_out);
                    self.pair_of.remove(&info.spi_out);
                    down += 1;
                }
                _ => {}
            }
        }
        self.seen = events.len();
        (up, down)
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A UDP datagram from `src` to `dst` carrying `n`.
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, n: u64) -> Vec<u8> {
    let mut udp = vec![0x0f, 0xa0, 0x13, 0x88, 0, 16, 0, 0];
    udp.extend_from_slice(&n.to_be_bytes());
    let total = 20 + udp.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&udp);
    p
}

#[derive(Debug, Default)]
struct Figures {
    offered: u64,
    offered_during_rekey: u64,
    gaps: u64,
    lost: u64,
    lost_reasons: HashMap<String, u64>,
    delivered: u64,
}

/// Offers one packet from `from` to `to`: sealed on the sender's newest SA for it, opened by the receiver.
#[allow(clippy::too_many_arguments)]
fn offer(
    now: Instant,
    n: u64,
    (src, dst): (Ipv4Addr, Ipv4Addr),
    tx: &mut Esp,
    tx_engine: &mut Endpoint,
    rx: &mut Esp,
    rx_engine: &mut Endpoint,
    fig: &mut Figures,
) {
    fig.offered += 1;
    let packet = udp_packet(src, dst, n);
    let mut sealed = [0u8; 256];
    let mut opened = [0u8; 256];
    let sealed = match tx.outbound.seal_for(now, &packet, &mut sealed, Some("r")) {
        Ok(s) => s.packet,
        Err(DropReason::NoSa) => {
            fig.gaps += 1;
            return;
        }
        Err(e) => panic!("cannot seal: {e:?}"),
    };
    let spi = u32::from_be_bytes(sealed[20..24].try_into().unwrap());
    if let Some(spi_in) = tx.pair_of.get(&spi) {
        tx_engine.child_used(now, *spi_in, false);
    }
    match rx.inbound.open(now, sealed, &mut opened) {
        Ok(o) => {
            assert_eq!(o.packet[o.packet.len() - 8..], n.to_be_bytes(), "the packet's own payload");
            fig.delivered += 1;
            rx_engine.child_used(now, spi, true);
            rx_engine.esp_received(now, spi);
        }
        Err(e) => {
            if std::env::var("WEEK_DEBUG").is_ok() {
                let sas = |e: &Endpoint| {
                    e.quick_mode_sas(now).iter().map(|q| (q.spi_in, q.spi_out, q.lifetime_left)).collect::<Vec<_>>()
                };
                eprintln!(
                    "lost at {now:?}: {e:?} on SPI {spi:08x}; receiver's pairs {:?}, sender's {:?}",
                    sas(rx_engine),
                    sas(tx_engine)
                );
            }
            fig.lost += 1;
            *fig.lost_reasons.entry(format!("{e:?}")).or_default() += 1;
        }
    }
}

fn counts(e: &Endpoint) -> StateCounts {
    e.state_counts()
}

#[test]
fn a_week_of_rekeys_under_loss_has_no_gap_no_loss_and_no_leak() {
    // Another seed can be tried with WEEK_SEED=n.
    let seed = std::env::var("WEEK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2024u64);
    let mut pair = Pair::new(policy_towards(ADDR_B), policy_towards(ADDR_A), seed);
    let mut net = ChaCha8Rng::seed_from_u64(seed ^ 77);
    pair.fate = Box::new(move |_, _| match net.next_u32() % 10 {
        0 => Fate::Drop,
        1 => Fate::Duplicate,
        2 => Fate::Delay,
        _ => Fate::Deliver,
    });
    let (mut esp_a, mut esp_b) = (Esp::new(1), Esp::new(2));
    let baseline = (counts(&pair.a), counts(&pair.b));
    pair.initiate_a();
    pair.drive_for(Duration::from_secs(30));
    esp_a.follow(&pair.events_a, pair.now);
    esp_b.follow(&pair.events_b, pair.now);
    assert_eq!((esp_a.outbound.len(), esp_b.outbound.len()), (1, 1), "the first pair is up");

    let week = Duration::from_secs(7 * 24 * 3600);
    let end = pair.now + week;
    let mut fig = Figures::default();
    let (mut qm_up, mut max_pairs, mut max_mm, mut max_timers) = (0usize, 0usize, 0usize, 0usize);
    let mut n = 0u64;
    while pair.now < end {
        pair.drive_for(TICK);
        let (ua, _) = esp_a.follow(&pair.events_a, pair.now);
        esp_b.follow(&pair.events_b, pair.now);
        qm_up += ua;
        let rekeying = esp_a.outbound.len() > 1 || esp_b.outbound.len() > 1;
        // During a rekey window (more than one pair), a burst; otherwise one packet each way.
        let burst = if rekeying { 4 } else { 1 };
        for _ in 0..burst {
            n += 1;
            fig.offered_during_rekey += u64::from(rekeying) * 2;
            offer(pair.now, n, (ADDR_A, ADDR_B), &mut esp_a, &mut pair.a, &mut esp_b, &mut pair.b, &mut fig);
            offer(pair.now, n, (ADDR_B, ADDR_A), &mut esp_b, &mut pair.b, &mut esp_a, &mut pair.a, &mut fig);
        }
        for c in [counts(&pair.a), counts(&pair.b)] {
            max_pairs = max_pairs.max(c.quick_mode_sas);
            max_mm = max_mm.max(c.main_mode_sas);
            max_timers = max_timers.max(c.timers);
        }
    }
    let main_modes = |ev: &[Event]| ev.iter().filter(|e| matches!(e, Event::MainModeUp { .. })).count();
    let (mm_a, mm_b) = (main_modes(&pair.events_a), main_modes(&pair.events_b));
    let failures =
        pair.events_a.iter().chain(&pair.events_b).filter(|e| matches!(e, Event::NegotiationFailed { .. })).count();
    println!(
        "week: {} Quick Mode SA pairs up ({} rekeys), Main Mode SAs up {} on a / {} on b; packets offered {}, \
         {} of them during rekeys; delivered {}, gaps (no SA) {}, lost during rekeys {} {:?}; failed negotiations {}; \
         most pairs at once {}, most Main Mode SAs {}, longest timer heap {}; IKE datagrams {}, retransmitted {}",
        qm_up,
        qm_up.saturating_sub(1),
        mm_a,
        mm_b,
        fig.offered,
        fig.offered_during_rekey,
        fig.delivered,
        fig.gaps,
        fig.lost,
        fig.lost_reasons,
        failures,
        max_pairs,
        max_mm,
        max_timers,
        pair.sent,
        pair.a.stats().retransmitted + pair.b.stats().retransmitted,
    );
    // 2016 five-minute lifetimes in a week, renewed at 70-95 % of their lifetime: well over 2000 rekeys; the
    // Main Mode, renewed every 14-19 min, over 500 times.
    if std::env::var("WEEK_DEBUG").is_ok() {
        for e in pair.events_a.iter().chain(&pair.events_b).filter(|e| matches!(e, Event::NegotiationFailed { .. })) {
            eprintln!("FAILED {e:?}");
        }
    }
    assert!(qm_up > 2000, "Quick Mode rekeys: {qm_up}");
    assert!(mm_a.max(mm_b) > 500, "Main Mode rekeys: {mm_a}/{mm_b}");
    assert_eq!(fig.gaps, 0, "no packet found no SA");
    assert_eq!(fig.lost, 0, "no packet lost during rekeys: {:?}", fig.lost_reasons);
    assert_eq!(fig.delivered, fig.offered);
    assert!(max_pairs <= 4, "pairs stay bounded: {max_pairs}");
    assert!(max_mm <= 3, "Main Mode SAs stay bounded: {max_mm}");
    assert!(max_timers <= 64, "the timer heap stays bounded: {max_timers}");

    // Traffic stops: idle pairs are not renewed, they expire; then the Main Mode SAs, no longer needed.
    pair.drive_for(Duration::from_secs(2 * 3600));
    esp_a.follow(&pair.events_a, pair.now);
    esp_b.follow(&pair.events_b, pair.now);
    for (c, b) in [(counts(&pair.a), baseline.0), (counts(&pair.b), baseline.1)] {
        assert_eq!(c, b, "state back to its baseline");
    }
    assert!(
        esp_a.inbound.is_empty() && esp_a.outbound.is_empty() && esp_b.inbound.is_empty() && esp_b.outbound.is_empty()
    );
}
