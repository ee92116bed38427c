//! The SA payload with its proposals, transforms and data attributes (RFC 2408 §3.4-3.6, §3.3).

use super::WireError;

/// Bound on proposals read from one SA payload.
pub const MAX_PROPOSALS: usize = 64;
/// Bound on transforms read from one proposal.
pub const MAX_TRANSFORMS: usize = 128;
/// Bound on attributes read from one transform.
pub const MAX_ATTRIBUTES: usize = 32;

/// A view of an SA payload body.
#[derive(Debug, Clone, Copy)]
pub struct SaPayload<'a> {
    /// Domain of interpretation (1 = IPsec).
    pub doi: u32,
    /// Situation bitmap (1 = SIT_IDENTITY_ONLY); the IPsec DOI adds labelled-domain fields after it when other bits
    /// are set, which hostsec refuses.
    pub situation: u32,
    proposals: &'a [u8],
}

impl<'a> SaPayload<'a> {
    /// Parses an SA payload body (DOI, situation, then proposal payloads).
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let _ = body;
        todo!()
    }

    /// The proposals, in wire order. Errors on a malformed proposal and after `MAX_PROPOSALS`.
    pub fn proposals(&self) -> impl Iterator<Item = Result<Proposal<'a>, WireError>> + 'a {
        let _ = self.proposals;
        std::iter::empty()
    }
}

/// A view of a proposal payload.
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
    /// Proposal number (proposals with equal numbers form an AND-bundle, RFC 2408 §4.2).
    pub number: u8,
    /// Protocol ID (1 ISAKMP, 2 AH, 3 ESP).
    pub protocol_id: u8,
    /// The SPI (empty or 16 bytes in phase 1, 4 bytes for ESP).
    pub spi: &'a [u8],
    /// Number of transforms announced by the header.
    pub transform_count: u8,
    transforms: &'a [u8],
}

impl<'a> Proposal<'a> {
    /// The transforms, in wire order. Errors on a malformed transform and after `MAX_TRANSFORMS`.
    pub fn transforms(&self) -> impl Iterator<Item = Result<Transform<'a>, WireError>> + 'a {
        let _ = self.transforms;
        std::iter::empty()
    }
}

/// A view of a transform payload.
#[derive(Debug, Clone, Copy)]
pub struct Transform<'a> {
    /// Transform number.
    pub number: u8,
    /// Transform ID (KEY_IKE in phase 1, an ESP transform ID in phase 2).
    pub transform_id: u8,
    attributes: &'a [u8],
}

impl<'a> Transform<'a> {
    /// The data attributes. Errors on a truncated attribute and after `MAX_ATTRIBUTES`.
    pub fn attributes(&self) -> impl Iterator<Item = Result<Attribute<'a>, WireError>> + 'a {
        let _ = self.attributes;
        std::iter::empty()
    }
}

/// An attribute value: TV (basic, AF bit set) or TLV (variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrValue<'a> {
    /// 16-bit value in the attribute header.
    Basic(u16),
    /// Variable-length value.
    Variable(&'a [u8]),
}

/// A data attribute (RFC 2408 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Attribute type, without the AF bit.
    pub kind: u16,
    /// Its value.
    pub value: AttrValue<'a>,
}

impl Attribute<'_> {
    /// The value as an integer: a basic value, or a variable value of 1 to 8 bytes (big-endian). `None` for a
    /// longer or empty variable value.
    pub fn as_u64(&self) -> Option<u64> {
        todo!()
    }
}

/// An SA payload body to emit, or a fully parsed one (bounded by the MAX_* limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaRepr {
    /// Domain of interpretation.
    pub doi: u32,
    /// Situation.
    pub situation: u32,
    /// Proposals in order.
    pub proposals: Vec<ProposalRepr>,
}

/// A proposal to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRepr {
    /// Proposal number.
    pub number: u8,
    /// Protocol ID.
    pub protocol_id: u8,
    /// SPI.
    pub spi: Vec<u8>,
    /// Transforms in order (emitted with next-payload 3, the last with 0).
    pub transforms: Vec<TransformRepr>,
}

/// A transform to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformRepr {
    /// Transform number.
    pub number: u8,
    /// Transform ID.
    pub transform_id: u8,
    /// Attributes in order.
    pub attributes: Vec<AttributeRepr>,
}

/// An attribute to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeRepr {
    /// TV form (AF bit set).
    Basic {
        /// Attribute type.
        kind: u16,
        /// Value.
        value: u16,
    },
    /// TLV form.
    Variable {
        /// Attribute type.
        kind: u16,
        /// Value bytes.
        value: Vec<u8>,
    },
}

impl AttributeRepr {
    /// A numeric attribute in the shortest form: basic when it fits in 16 bits, else variable with the
    /// minimal number of big-endian bytes (at least 4, as peers expect for life durations).
    pub fn number(kind: u16, value: u64) -> Self {
        let _ = (kind, value);
        todo!()
    }
}

impl SaRepr {
    /// Parses a whole SA payload body into owned values.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let _ = body;
        todo!()
    }

    /// Bytes `emit` writes (the body, without the generic payload header).
    pub fn buffer_len(&self) -> usize {
        todo!()
    }

    /// Writes the body into `out` (at least `buffer_len()` bytes); returns the bytes written.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let _ = out;
        todo!()
    }
}
