//! An in-memory pair of IKE endpoints on a virtual clock (the quinn-proto `Pair` idea): datagrams are shuttled
//! between them through a network that can drop, duplicate and reorder; time jumps to the next timer when
//! nothing is in flight.

#![allow(dead_code)]

pub mod pki;
pub mod vectors;

use hostsec_proto::crypto::Secret;
use hostsec_proto::ike::{Endpoint, Event, RequestId, Timing, Transmit};
use hostsec_proto::policy::{ConfigFiles, Policy};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Address of the endpoint `a`.
pub const A: &str = "198.51.100.1:500";
/// Address of the endpoint `b`.
pub const B: &str = "198.51.100.2:500";

struct NoFiles;
impl ConfigFiles for NoFiles {
    fn read_secret(&self, path: &Path) -> Result<Vec<u8>, String> {
        Err(format!("no file {}", path.display()))
    }
}

/// A policy from config text (panics on errors: test input).
pub fn policy(text: &str) -> Policy {
    Policy::from_toml("test.toml", text, &NoFiles).unwrap_or_else(|e| panic!("{:#?}", e))
}

/// A one-rule policy towards `peer` with `extra` lines added to the rule.
pub fn rule_policy(peer: &str, extra: &str) -> Policy {
    policy(&format!(
        "[[rule]]\nname = \"r\"\nremote = \"{peer}\"\npsk = \"pair-test-psk-0123456789\"\nauto = \"none\"\n{extra}\n"
    ))
}

/// What the network does to a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Deliver it.
    Deliver,
    /// Lose it.
    Drop,
    /// Deliver it twice.
    Duplicate,
    /// Deliver it after the next datagram in flight.
    Delay,
}

/// One datagram in flight.
#[derive(Debug, Clone)]
pub struct Flight {
    /// Sent by `a`?
    pub from_a: bool,
    /// The datagram.
    pub t: Transmit,
}

/// Decides the fate of the n-th datagram.
pub type FateFn = Box<dyn FnMut(usize, &Flight) -> Fate>;

/// Two endpoints and the network between them.
pub struct Pair {
    /// The endpoint at `A`.
    pub a: Endpoint,
    /// The endpoint at `B`.
    pub b: Endpoint,
    /// The virtual clock.
    pub now: Instant,
    /// Datagrams in flight.
    pub net: VecDeque<Flight>,
    /// Decides each datagram's fate; gets the running count of datagrams sent so far and the datagram.
    pub fate: FateFn,
    /// Datagrams sent so far.
    pub sent: usize,
    /// Events of `a`.
    pub events_a: Vec<Event>,
    /// Events of `b`.
    pub events_b: Vec<Event>,
    /// Every datagram that was put on the wire, in order.
    pub wire: Vec<Flight>,
}

impl Pair {
    /// A pair with the given policies and RNG seeds, on a perfect network.
    pub fn new(pa: Policy, pb: Policy, seed: u64) -> Pair {
        let now = Instant::now();
        Pair {
            a: Endpoint::new(Arc::new(pa), Timing::default(), Box::new(ChaCha20Rng::seed_from_u64(seed))),
            b: Endpoint::new(Arc::new(pb), Timing::default(), Box::new(ChaCha20Rng::seed_from_u64(seed ^ 0x5a5a_5a5a))),
            now,
            net: VecDeque::new(),
            fate: Box::new(|_, _| Fate::Deliver),
            sent: 0,
            events_a: Vec::new(),
            events_b: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// The address of `a`.
    pub fn addr_a() -> SocketAddr {
        A.parse().unwrap()
    }

    /// The address of `b`.
    pub fn addr_b() -> SocketAddr {
        B.parse().unwrap()
    }

    /// `a` initiates its rule `r` towards `b`.
    pub fn initiate_a(&mut self) -> RequestId {
        self.a.initiate(self.now, "r", None, Self::addr_a()).expect("initiate")
    }

    fn collect_outputs(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.put(Flight { from_a: true, t });
        }
        while let Some(t) = self.b.poll_transmit() {
            self.put(Flight { from_a: false, t });
        }
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    fn put(&mut self, f: Flight) {
        self.wire.push(f.clone());
        let n = self.sent;
        self.sent += 1;
        match (self.fate)(n, &f) {
            Fate::Deliver => self.net.push_back(f),
            Fate::Drop => {}
            Fate::Duplicate => {
                self.net.push_back(f.clone());
                self.net.push_back(f);
            }
            Fate::Delay => {
                // Goes behind whatever is sent next: appended later by `drive` when something else is in flight.
                self.net.push_back(f);
                if self.net.len() >= 2 {
                    let last = self.net.len() - 1;
                    self.net.swap(last - 1, last);
                }
            }
        }
    }

    /// Delivers one datagram; returns whether there was one.
    pub fn step(&mut self) -> bool {
        self.collect_outputs();
        let Some(f) = self.net.pop_front() else {
            return false;
        };
        let (a, b) = (Self::addr_a(), Self::addr_b());
        if f.from_a {
            self.b.handle(self.now, b, a, &f.t.payload);
        } else {
            self.a.handle(self.now, a, b, &f.t.payload);
        }
        self.collect_outputs();
        true
    }

    /// Runs until nothing is in flight and no timer is due before `limit` from now; timers advance the clock.
    pub fn drive_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            while self.step() {}
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    if t > self.now {
                        self.now = t;
                    }
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.collect_outputs();
                }
                _ => break,
            }
        }
        if self.now < end {
            self.now = end;
        }
    }

    /// Runs until the network is quiet and the next timer is more than `quiet` away (so, after a negotiation,
    /// before any lifetime expires).
    pub fn settle(&mut self) {
        self.drive_for(Duration::from_secs(120));
    }
}

/// The keys of both directions of every Quick Mode SA an endpoint reported, by inbound SPI.
pub fn child_keys(events: &[Event]) -> Vec<(u32, u32, Secret, Secret, Secret, Secret)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::QuickModeUp(k) => Some((
                k.info.spi_in,
                k.info.spi_out,
                k.encryption_key_in.clone(),
                k.integrity_key_in.clone(),
                k.encryption_key_out.clone(),
                k.integrity_key_out.clone(),
            )),
            _ => None,
        })
        .collect()
}
