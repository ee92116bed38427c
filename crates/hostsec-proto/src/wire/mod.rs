//! Wire formats: the ISAKMP header, the IKEv1 payloads and their attributes.
//!
//! Parsing is zero-copy: typed views borrow the datagram and every accessor is bounds-checked once at
//! construction, so no accessor can panic. Parsing never allocates without a bound. Building goes through
//! `*Repr` values that implement [`Emit`] into a caller's buffer, and a [`PayloadWriter`] that chains payloads.

pub mod consts;
mod delete;
mod error;
mod fragment;
mod header;
mod id;
mod misc;
mod notify;
pub(crate) mod payload;
mod sa;
pub mod udp_encap;
pub(crate) mod writer;

pub use delete::{DeletePayload, DeleteRepr, MAX_DELETE_SPIS};
pub use error::WireError;
pub use fragment::{FragmentPayload, FragmentRepr};
pub use header::Header;
pub use id::{IdPayload, IdRepr};
pub use misc::{CertPayload, CertRepr, CertRequestPayload, CertRequestRepr, NatDPayload, NatOaPayload, NatOaRepr};
pub use notify::{NotifyPayload, NotifyRepr};
pub use payload::{Payloads, RawPayload, MAX_PAYLOADS};
pub use sa::{
    AttrValue, Attribute, AttributeIter, AttributeRepr, Proposal, ProposalIter, ProposalRepr, SaPayload, SaRepr,
    Transform, TransformIter, TransformRepr, MAX_ATTRIBUTES, MAX_PROPOSALS, MAX_TRANSFORMS,
};
pub use udp_encap::UdpEncap;
pub use writer::{Emit, PayloadWriter};

/// A count or length as the `value` of [`WireError::InvalidValue`], saturating (the value is for the log only).
pub(crate) fn value_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
