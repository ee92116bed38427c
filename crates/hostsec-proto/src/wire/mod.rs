//! Wire formats: the ISAKMP header, the IKEv1 payloads and their attributes.
//!
//! Parsing is zero-copy: typed views borrow the datagram and every accessor is bounds-checked once at
//! construction, so no accessor can panic. Parsing never allocates without a bound. Building goes through
//! `*Repr` values that `emit` into a caller's buffer, and a [`PayloadWriter`] that chains payloads.

pub mod consts;
mod delete;
mod error;
mod header;
mod id;
mod misc;
mod notify;
mod payload;
mod sa;
mod writer;

pub use delete::{DeletePayload, DeleteRepr};
pub use error::WireError;
pub use header::Header;
pub use id::{IdPayload, IdRepr};
pub use misc::{CertPayload, CertRepr, CertRequestPayload, CertRequestRepr, NatOaPayload, NatOaRepr};
pub use notify::{NotifyPayload, NotifyRepr};
pub use payload::{Payloads, RawPayload, MAX_PAYLOADS};
pub use sa::{AttrValue, Attribute, AttributeRepr, Proposal, ProposalRepr, SaPayload, SaRepr, Transform, TransformRepr};
pub use writer::{Emit, PayloadWriter};
