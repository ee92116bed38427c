//! hostsec-proto: the sans-IO core of hostsec.
//!
//! Nothing in this crate opens a socket, reads a clock or starts a thread. Protocol logic takes datagrams,
//! `Instant`s and a random number generator as inputs and returns datagrams to send, timer deadlines and
//! events: the daemon (`hostsecd`) is a loop around [`ike::Endpoint`], and so is every test.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod authip;
pub mod control;
pub mod crypto;
pub mod esp;
pub mod ike;
pub mod pki;
pub mod policy;
pub mod wire;
