//! The SA payload with its proposals, transforms and data attributes (RFC 2408 §3.4-3.6, §3.3).

use super::consts::{payload, DOI_IPSEC, SIT_IDENTITY_ONLY};
use super::payload::split_payload;
use super::writer::{Emit, Out, PayloadWriter, GENERIC_HEADER_LEN};
use super::WireError;

/// Bound on proposals read from one SA payload.
pub const MAX_PROPOSALS: usize = 64;
/// Bound on transforms read from one proposal.
pub const MAX_TRANSFORMS: usize = 128;
/// Bound on attributes read from one transform.
pub const MAX_ATTRIBUTES: usize = 32;

/// Length of the fixed part of an SA payload body: DOI and situation (RFC 2408 §3.4).
const SA_FIXED_LEN: usize = 8;
/// Length of the fixed part of a proposal body: number, protocol, SPI size, number of transforms (§3.5).
const PROPOSAL_FIXED_LEN: usize = 4;
/// Length of the fixed part of a transform body: number, ID, two reserved bytes (§3.6).
const TRANSFORM_FIXED_LEN: usize = 4;
/// Length of an attribute header: AF bit and type, then the value (TV) or the value length (TLV) (§3.3).
const ATTRIBUTE_HEADER_LEN: usize = 4;
/// Attribute Format bit: set for the TV form (RFC 2408 §3.3).
const ATTRIBUTE_FORMAT_TV: u16 = 0x8000;

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
    ///
    /// Under the IPsec DOI, SIT_SECRECY and SIT_INTEGRITY append labelled-domain fields before the proposals
    /// (RFC 2407 §4.6.1); hostsec does not implement them, and reading past them blindly would misparse the
    /// proposals, so any situation other than SIT_IDENTITY_ONLY (or 0) is refused there.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, proposals) = body.split_first_chunk::<SA_FIXED_LEN>().ok_or(WireError::Truncated {
            what: "SA payload",
            need: SA_FIXED_LEN,
            have: body.len(),
        })?;
        let [d0, d1, d2, d3, s0, s1, s2, s3] = *fixed;
        let doi = u32::from_be_bytes([d0, d1, d2, d3]);
        let situation = u32::from_be_bytes([s0, s1, s2, s3]);
        if doi == DOI_IPSEC && situation & !SIT_IDENTITY_ONLY != 0 {
            return Err(WireError::InvalidValue { what: "SA situation", value: situation });
        }
        Ok(SaPayload { doi, situation, proposals })
    }

    /// The proposals, in wire order. Errors on a malformed proposal and after `MAX_PROPOSALS`.
    pub fn proposals(&self) -> ProposalIter<'a> {
        ProposalIter { chain: Chain::new(self.proposals, PROPOSAL_CHAIN) }
    }
}

/// A chain of substructures with generic headers whose next-payload field must be `kind` or 0 (proposals in an SA,
/// transforms in a proposal; RFC 2408 §3.5, §3.6), ending exactly at the end of the enclosing structure.
#[derive(Debug, Clone, Copy)]
struct ChainKind {
    kind: u8,
    limit: usize,
    /// Names for the errors: one element, several, a wrong next-payload field, bytes after the last element.
    one: &'static str,
    many: &'static str,
    bad_next: &'static str,
    trailing: &'static str,
}

const PROPOSAL_CHAIN: ChainKind = ChainKind {
    kind: payload::PROPOSAL,
    limit: MAX_PROPOSALS,
    one: "proposal",
    many: "proposals",
    bad_next: "next payload after a proposal",
    trailing: "bytes after the last proposal",
};

const TRANSFORM_CHAIN: ChainKind = ChainKind {
    kind: payload::TRANSFORM,
    limit: MAX_TRANSFORMS,
    one: "transform",
    many: "transforms",
    bad_next: "next payload after a transform",
    trailing: "bytes after the last transform",
};

#[derive(Debug, Clone)]
struct Chain<'a> {
    rest: &'a [u8],
    of: ChainKind,
    count: usize,
    done: bool,
}

impl<'a> Chain<'a> {
    fn new(buf: &'a [u8], of: ChainKind) -> Self {
        // An empty area is an empty chain; the IKE layer decides whether zero elements are acceptable.
        Chain { rest: buf, of, count: 0, done: buf.is_empty() }
    }

    /// The next element body, or None at the end of the chain. After an error the chain is done.
    fn next_body(&mut self) -> Option<Result<&'a [u8], WireError>> {
        if self.done {
            return None;
        }
        let item = self.step();
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }

    fn step(&mut self) -> Result<&'a [u8], WireError> {
        if self.count == self.of.limit {
            return Err(WireError::TooMany { what: self.of.many, limit: self.of.limit });
        }
        let (next, body, rest) = split_payload(self.of.one, self.rest)?;
        if next == payload::NONE {
            // The last element must end the enclosing structure: trailing bytes would be an unaccounted-for
            // proposal or transform.
            if !rest.is_empty() {
                return Err(WireError::BadLength { what: self.of.trailing, len: rest.len() });
            }
            self.done = true;
        } else if next != self.of.kind {
            return Err(WireError::InvalidValue { what: self.of.bad_next, value: u32::from(next) });
        }
        self.rest = rest;
        self.count += 1;
        Ok(body)
    }
}

/// Iterator over the proposals of an SA payload, from [`SaPayload::proposals`].
#[derive(Debug, Clone)]
pub struct ProposalIter<'a> {
    chain: Chain<'a>,
}

impl<'a> Iterator for ProposalIter<'a> {
    type Item = Result<Proposal<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.chain.next_body()?.and_then(Proposal::parse);
        if item.is_err() {
            self.chain.done = true;
        }
        Some(item)
    }
}

impl core::iter::FusedIterator for ProposalIter<'_> {}

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
    /// Parses a proposal body (after its generic header).
    fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, rest) = body.split_first_chunk::<PROPOSAL_FIXED_LEN>().ok_or(WireError::Truncated {
            what: "proposal",
            need: PROPOSAL_FIXED_LEN,
            have: body.len(),
        })?;
        let [number, protocol_id, spi_size, transform_count] = *fixed;
        let (spi, transforms) = rest.split_at_checked(usize::from(spi_size)).ok_or(WireError::Truncated {
            what: "proposal SPI",
            need: usize::from(spi_size),
            have: rest.len(),
        })?;
        Ok(Proposal { number, protocol_id, spi, transform_count, transforms })
    }

    /// The transforms, in wire order. Errors on a malformed transform and after `MAX_TRANSFORMS`, and at the end
    /// when their number differs from `transform_count` (RFC 2408 §3.5).
    pub fn transforms(&self) -> TransformIter<'a> {
        TransformIter {
            chain: Chain::new(self.transforms, TRANSFORM_CHAIN),
            announced: self.transform_count,
            checked: false,
        }
    }
}

/// Iterator over the transforms of a proposal, from [`Proposal::transforms`].
#[derive(Debug, Clone)]
pub struct TransformIter<'a> {
    chain: Chain<'a>,
    announced: u8,
    checked: bool,
}

impl<'a> Iterator for TransformIter<'a> {
    type Item = Result<Transform<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.chain.next_body() {
            Some(body) => {
                let item = body.and_then(Transform::parse);
                if item.is_err() {
                    self.chain.done = true;
                    self.checked = true;
                }
                Some(item)
            }
            None if !self.checked => {
                self.checked = true;
                // A count that disagrees with the chain means one of the two lies; which transforms the peer
                // meant is unknowable, so the proposal is malformed.
                (self.chain.count != usize::from(self.announced)).then(|| {
                    Err(WireError::InvalidValue {
                        what: "number of transforms in a proposal header",
                        value: u32::from(self.announced),
                    })
                })
            }
            None => None,
        }
    }
}

impl core::iter::FusedIterator for TransformIter<'_> {}

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
    /// Parses a transform body (after its generic header). The reserved bytes are ignored (RFC 2408 §3.6 says
    /// they are zero; being strict about them gains nothing).
    fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, attributes) = body.split_first_chunk::<TRANSFORM_FIXED_LEN>().ok_or(WireError::Truncated {
            what: "transform",
            need: TRANSFORM_FIXED_LEN,
            have: body.len(),
        })?;
        let [number, transform_id, _, _] = *fixed;
        Ok(Transform { number, transform_id, attributes })
    }

    /// The data attributes. Errors on a truncated attribute and after `MAX_ATTRIBUTES`.
    pub fn attributes(&self) -> AttributeIter<'a> {
        AttributeIter { rest: self.attributes, count: 0, done: false }
    }
}

/// Iterator over the data attributes of a transform, from [`Transform::attributes`].
#[derive(Debug, Clone)]
pub struct AttributeIter<'a> {
    rest: &'a [u8],
    count: usize,
    done: bool,
}

impl<'a> AttributeIter<'a> {
    /// The data attributes packed in `data` outside a transform, as the RESPONDER-LIFETIME notification carries
    /// them (RFC 2407 §4.6.3.1); bounded like a transform's.
    pub fn over(data: &'a [u8]) -> Self {
        AttributeIter { rest: data, count: 0, done: false }
    }
}

impl<'a> Iterator for AttributeIter<'a> {
    type Item = Result<Attribute<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        if self.count == MAX_ATTRIBUTES {
            self.done = true;
            return Some(Err(WireError::TooMany { what: "attributes", limit: MAX_ATTRIBUTES }));
        }
        match Attribute::split(self.rest) {
            Ok((attribute, rest)) => {
                self.rest = rest;
                self.count += 1;
                Some(Ok(attribute))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for AttributeIter<'_> {}

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

impl<'a> Attribute<'a> {
    /// Splits the attribute at the front of `buf` off the rest.
    fn split(buf: &'a [u8]) -> Result<(Self, &'a [u8]), WireError> {
        let (header, after) = buf.split_first_chunk::<ATTRIBUTE_HEADER_LEN>().ok_or(WireError::Truncated {
            what: "attribute",
            need: ATTRIBUTE_HEADER_LEN,
            have: buf.len(),
        })?;
        let [t_hi, t_lo, v_hi, v_lo] = *header;
        let raw_kind = u16::from_be_bytes([t_hi, t_lo]);
        let kind = raw_kind & !ATTRIBUTE_FORMAT_TV;
        let value_or_len = u16::from_be_bytes([v_hi, v_lo]);
        if raw_kind & ATTRIBUTE_FORMAT_TV != 0 {
            return Ok((Attribute { kind, value: AttrValue::Basic(value_or_len) }, after));
        }
        let len = usize::from(value_or_len);
        let (value, rest) = after.split_at_checked(len).ok_or(WireError::Truncated {
            what: "attribute value",
            need: len,
            have: after.len(),
        })?;
        Ok((Attribute { kind, value: AttrValue::Variable(value) }, rest))
    }

    /// The value as an integer: a basic value, or a variable value of 1 to 8 bytes (big-endian). `None` for a
    /// longer or empty variable value.
    pub fn as_u64(&self) -> Option<u64> {
        match self.value {
            AttrValue::Basic(v) => Some(u64::from(v)),
            AttrValue::Variable(bytes) if (1..=8).contains(&bytes.len()) => {
                Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
            }
            AttrValue::Variable(_) => None,
        }
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
    /// A numeric attribute in the shortest form: basic when it fits in 16 bits, else variable with 4 big-endian
    /// bytes, or 8 when the value does not fit in 4 (peers expect 4-byte life durations, RFC 2409 appendix A).
    pub fn number(kind: u16, value: u64) -> Self {
        if let Ok(v) = u16::try_from(value) {
            return AttributeRepr::Basic { kind, value: v };
        }
        let value = match u32::try_from(value) {
            Ok(v) => v.to_be_bytes().to_vec(),
            Err(_) => value.to_be_bytes().to_vec(),
        };
        AttributeRepr::Variable { kind, value }
    }

    /// The owned form of a parsed attribute.
    pub fn from_view(attribute: &Attribute<'_>) -> Self {
        match attribute.value {
            AttrValue::Basic(value) => AttributeRepr::Basic { kind: attribute.kind, value },
            AttrValue::Variable(value) => AttributeRepr::Variable { kind: attribute.kind, value: value.to_vec() },
        }
    }

    /// Attribute type, without the AF bit.
    pub fn kind(&self) -> u16 {
        match self {
            AttributeRepr::Basic { kind, .. } | AttributeRepr::Variable { kind, .. } => *kind,
        }
    }
}

impl TransformRepr {
    /// The owned form of a parsed transform, with its attributes (errors as [`Transform::attributes`]).
    pub fn from_view(transform: &Transform<'_>) -> Result<Self, WireError> {
        let attributes =
            transform.attributes().map(|a| a.map(|a| AttributeRepr::from_view(&a))).collect::<Result<Vec<_>, _>>()?;
        Ok(TransformRepr { number: transform.number, transform_id: transform.transform_id, attributes })
    }
}

impl ProposalRepr {
    /// The owned form of a parsed proposal, with its transforms (errors as [`Proposal::transforms`]).
    pub fn from_view(proposal: &Proposal<'_>) -> Result<Self, WireError> {
        let transforms = proposal
            .transforms()
            .map(|t| t.and_then(|t| TransformRepr::from_view(&t)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProposalRepr {
            number: proposal.number,
            protocol_id: proposal.protocol_id,
            spi: proposal.spi.to_vec(),
            transforms,
        })
    }
}

impl SaRepr {
    /// Parses a whole SA payload body into owned values.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let sa = SaPayload::parse(body)?;
        let proposals =
            sa.proposals().map(|p| p.and_then(|p| ProposalRepr::from_view(&p))).collect::<Result<Vec<_>, _>>()?;
        Ok(SaRepr { doi: sa.doi, situation: sa.situation, proposals })
    }
}

/// Refuses to build more elements than the parser would read back (and than a one-byte count can hold).
fn check_count(what: &'static str, n: usize, limit: usize) -> Result<(), WireError> {
    if n > limit {
        return Err(WireError::TooMany { what, limit });
    }
    Ok(())
}

/// Bytes of a chain of elements, each with a generic header.
fn chain_len<T: Emit>(items: &[T]) -> usize {
    items.iter().map(|i| GENERIC_HEADER_LEN.saturating_add(i.buffer_len())).fold(0, usize::saturating_add)
}

/// Writes `items` as a chain of `kind` substructures: the linking rule is that of a payload chain.
fn emit_chain<T: Emit>(out: &mut [u8], kind: u8, items: &[T]) -> Result<(), WireError> {
    let mut writer = PayloadWriter::new(out);
    items.iter().try_for_each(|item| writer.push(kind, item))
}

impl Emit for SaRepr {
    /// The body, without the generic payload header.
    fn buffer_len(&self) -> usize {
        SA_FIXED_LEN.saturating_add(chain_len(&self.proposals))
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        check_count("proposals", self.proposals.len(), MAX_PROPOSALS)?;
        out.u32(self.doi)?;
        out.u32(self.situation)?;
        emit_chain(out.take(chain_len(&self.proposals))?, payload::PROPOSAL, &self.proposals)
    }
}

impl Emit for ProposalRepr {
    /// The proposal body, without its generic header (the enclosing SA writes it).
    fn buffer_len(&self) -> usize {
        PROPOSAL_FIXED_LEN.saturating_add(self.spi.len()).saturating_add(chain_len(&self.transforms))
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        let spi_size = u8::try_from(self.spi.len())
            .map_err(|_| WireError::InvalidValue { what: "SPI size", value: super::value_of(self.spi.len()) })?;
        check_count("transforms", self.transforms.len(), MAX_TRANSFORMS)?;
        out.u8(self.number)?;
        out.u8(self.protocol_id)?;
        out.u8(spi_size)?;
        // MAX_TRANSFORMS < 256, so the count fits.
        out.u8(self.transforms.len() as u8)?;
        out.bytes(&self.spi)?;
        emit_chain(out.take(chain_len(&self.transforms))?, payload::TRANSFORM, &self.transforms)
    }
}

impl Emit for TransformRepr {
    /// The transform body, without its generic header (the enclosing proposal writes it).
    fn buffer_len(&self) -> usize {
        self.attributes.iter().map(Emit::buffer_len).fold(TRANSFORM_FIXED_LEN, usize::saturating_add)
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        check_count("attributes", self.attributes.len(), MAX_ATTRIBUTES)?;
        out.u8(self.number)?;
        out.u8(self.transform_id)?;
        out.u16(0)?;
        self.attributes.iter().try_for_each(|a| out.emit(a))
    }
}

impl Emit for AttributeRepr {
    fn buffer_len(&self) -> usize {
        match self {
            AttributeRepr::Basic { .. } => ATTRIBUTE_HEADER_LEN,
            AttributeRepr::Variable { value, .. } => ATTRIBUTE_HEADER_LEN.saturating_add(value.len()),
        }
    }

    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        let kind = self.kind();
        // The top bit of the type field is the AF bit (RFC 2408 §3.3): a type that uses it cannot be encoded.
        if kind & ATTRIBUTE_FORMAT_TV != 0 {
            return Err(WireError::InvalidValue { what: "attribute type", value: u32::from(kind) });
        }
        match self {
            AttributeRepr::Basic { value, .. } => {
                out.u16(kind | ATTRIBUTE_FORMAT_TV)?;
                out.u16(*value)
            }
            AttributeRepr::Variable { value, .. } => {
                let len = u16::try_from(value.len())
                    .map_err(|_| WireError::BadLength { what: "attribute value", len: value.len() })?;
                out.u16(kind)?;
                out.u16(len)?;
                out.bytes(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::{esp_transform, ike_attr, ipsec_attr, protocol, KEY_IKE};

    /// SAi_b of the strongSwan 5.9.8 vector 01 (MM1): one ISAKMP proposal, AES-CBC-256 / SHA2-256 / ECP-256 / PSK,
    /// lifetime 15840 s as a basic attribute.
    const PHASE1_SA: &str = "00000001000000010000002c01010001000000240101000080010007800e010080020004\
                             8004001380030001800b0001800c3de0";
    /// SA_i_b of the same vector's QM1: ESP, SPI 917b2a54, AES-GCM-16 128 with PFS group 19, UDP tunnel.
    const PHASE2_SA: &str = "00000001000000010000002801030401917b2a540000001c011400008006008080030013\
                             800400038001000180020f78";

    fn bytes(h: &str) -> Vec<u8> {
        hex::decode(h).unwrap()
    }

    fn attrs(t: &Transform<'_>) -> Vec<(u16, u64)> {
        t.attributes().map(|a| a.unwrap()).map(|a| (a.kind, a.as_u64().unwrap())).collect()
    }

    #[test]
    fn parse_phase1_sa() {
        let body = bytes(PHASE1_SA);
        let sa = SaPayload::parse(&body).unwrap();
        assert_eq!((sa.doi, sa.situation), (DOI_IPSEC, SIT_IDENTITY_ONLY));
        let proposals: Vec<_> = sa.proposals().map(|p| p.unwrap()).collect();
        assert_eq!(proposals.len(), 1);
        let p = proposals[0];
        assert_eq!((p.number, p.protocol_id, p.spi, p.transform_count), (1, protocol::ISAKMP, &[][..], 1));
        let transforms: Vec<_> = p.transforms().map(|t| t.unwrap()).collect();
        assert_eq!(transforms.len(), 1);
        assert_eq!((transforms[0].number, transforms[0].transform_id), (1, KEY_IKE));
        assert_eq!(
            attrs(&transforms[0]),
            vec![
                (ike_attr::ENCRYPTION, 7),
                (ike_attr::KEY_LENGTH, 256),
                (ike_attr::HASH, 4),
                (ike_attr::GROUP_DESCRIPTION, 19),
                (ike_attr::AUTH_METHOD, 1),
                (ike_attr::LIFE_TYPE, 1),
                (ike_attr::LIFE_DURATION, 15840),
            ]
        );
    }

    #[test]
    fn parse_phase2_sa() {
        let body = bytes(PHASE2_SA);
        let sa = SaRepr::parse(&body).unwrap();
        let expected = SaRepr {
            doi: DOI_IPSEC,
            situation: SIT_IDENTITY_ONLY,
            proposals: vec![ProposalRepr {
                number: 1,
                protocol_id: protocol::ESP,
                spi: vec![0x91, 0x7b, 0x2a, 0x54],
                transforms: vec![TransformRepr {
                    number: 1,
                    transform_id: esp_transform::AES_GCM_16,
                    attributes: vec![
                        AttributeRepr::number(ipsec_attr::KEY_LENGTH, 128),
                        AttributeRepr::number(ipsec_attr::GROUP_DESCRIPTION, 19),
                        AttributeRepr::number(ipsec_attr::ENCAPSULATION_MODE, 3),
                        AttributeRepr::number(ipsec_attr::SA_LIFE_TYPE, 1),
                        AttributeRepr::number(ipsec_attr::SA_LIFE_DURATION, 3960),
                    ],
                }],
            }],
        };
        assert_eq!(sa, expected);
    }

    #[test]
    fn emit_gives_back_the_same_bytes() {
        for h in [PHASE1_SA, PHASE2_SA] {
            let body = bytes(h);
            let sa = SaRepr::parse(&body).unwrap();
            assert_eq!(sa.buffer_len(), body.len());
            let mut out = vec![0u8; body.len()];
            sa.emit(&mut out).unwrap();
            assert_eq!(out, body);
            assert_eq!(
                sa.emit(&mut out[..body.len() - 1]),
                Err(WireError::BufferTooSmall { need: body.len(), have: body.len() - 1 })
            );
        }
    }

    #[test]
    fn truncated_at_every_length() {
        for h in [PHASE1_SA, PHASE2_SA] {
            let body = bytes(h);
            for cut in 0..body.len() {
                let parsed = SaRepr::parse(&body[..cut]);
                if cut == SA_FIXED_LEN {
                    // DOI and situation alone: a well-formed SA with no proposals.
                    assert_eq!(parsed.unwrap().proposals, vec![]);
                } else {
                    assert!(parsed.is_err(), "cut {cut}");
                }
            }
        }
    }

    /// A proposal body with `n` transforms that each carry `attrs` basic attributes.
    fn proposal_with(n: usize, attrs: usize) -> ProposalRepr {
        let t = |i: usize| TransformRepr {
            number: i as u8,
            transform_id: KEY_IKE,
            attributes: (0..attrs).map(|k| AttributeRepr::number(k as u16, 1)).collect(),
        };
        ProposalRepr { number: 1, protocol_id: protocol::ISAKMP, spi: vec![], transforms: (0..n).map(t).collect() }
    }

    fn sa_bytes(proposals: Vec<ProposalRepr>) -> Vec<u8> {
        // Emits past the MAX_* bounds by building the chain by hand when needed.
        let mut out = vec![0u8; 8];
        out[3] = 1;
        out[7] = 1;
        let mut chain = vec![0u8; chain_len(&proposals)];
        let mut w = PayloadWriter::new(&mut chain);
        for p in &proposals {
            let mut body = vec![0u8; p.buffer_len()];
            let mut b = Out::new(&mut body, p.buffer_len()).unwrap();
            b.bytes(&[p.number, p.protocol_id, 0, p.transforms.len() as u8]).unwrap();
            let mut tw = PayloadWriter::new(b.take(chain_len(&p.transforms)).unwrap());
            for t in &p.transforms {
                let mut tb = vec![t.number, t.transform_id, 0, 0];
                for a in &t.attributes {
                    let mut ab = vec![0u8; a.buffer_len()];
                    a.emit(&mut ab).unwrap();
                    tb.extend(ab);
                }
                tw.push(payload::TRANSFORM, &tb).unwrap();
            }
            w.push(payload::PROPOSAL, &body).unwrap();
        }
        out.extend(chain);
        out
    }

    #[test]
    fn bounds_are_enforced() {
        let many_proposals = vec![proposal_with(1, 1); MAX_PROPOSALS + 1];
        assert_eq!(
            SaRepr::parse(&sa_bytes(many_proposals.clone())),
            Err(WireError::TooMany { what: "proposals", limit: MAX_PROPOSALS })
        );
        let sa = SaRepr { doi: 1, situation: 1, proposals: many_proposals };
        let mut out = vec![0u8; sa.buffer_len()];
        assert!(matches!(sa.emit(&mut out), Err(WireError::TooMany { .. })));

        assert_eq!(
            SaRepr::parse(&sa_bytes(vec![proposal_with(MAX_TRANSFORMS + 1, 0)])),
            Err(WireError::TooMany { what: "transforms", limit: MAX_TRANSFORMS })
        );
        assert_eq!(
            SaRepr::parse(&sa_bytes(vec![proposal_with(1, MAX_ATTRIBUTES + 1)])),
            Err(WireError::TooMany { what: "attributes", limit: MAX_ATTRIBUTES })
        );
        let at_limit = vec![proposal_with(2, MAX_ATTRIBUTES); MAX_PROPOSALS];
        assert_eq!(SaRepr::parse(&sa_bytes(at_limit.clone())).unwrap().proposals, at_limit);
    }

    #[test]
    fn malformed_chains_are_refused() {
        let good = bytes(PHASE2_SA);
        // Proposal next-payload other than 2 or 0.
        let mut b = good.clone();
        b[8] = payload::TRANSFORM;
        assert_eq!(SaRepr::parse(&b), Err(WireError::InvalidValue { what: "next payload after a proposal", value: 3 }));
        // Transform next-payload other than 3 or 0.
        let mut b = good.clone();
        b[20] = payload::PROPOSAL;
        assert_eq!(
            SaRepr::parse(&b),
            Err(WireError::InvalidValue { what: "next payload after a transform", value: 2 })
        );
        // Bytes after the last proposal.
        let mut b = good.clone();
        b.extend([0, 0, 0, 4]);
        assert_eq!(SaRepr::parse(&b), Err(WireError::BadLength { what: "bytes after the last proposal", len: 4 }));
        // A transform count that disagrees with the chain.
        let mut b = good.clone();
        b[15] = 2;
        assert_eq!(
            SaRepr::parse(&b),
            Err(WireError::InvalidValue { what: "number of transforms in a proposal header", value: 2 })
        );
        // An SPI that runs past the proposal.
        let mut b = good.clone();
        b[14] = 40;
        assert!(matches!(SaRepr::parse(&b), Err(WireError::Truncated { what: "proposal SPI", .. })));
        // A proposal length below the generic header.
        let mut b = good.clone();
        b[11] = 3;
        assert_eq!(SaRepr::parse(&b), Err(WireError::BadLength { what: "proposal", len: 3 }));
        // SIT_SECRECY under the IPsec DOI.
        let mut b = good.clone();
        b[7] = 3;
        assert_eq!(SaRepr::parse(&b), Err(WireError::InvalidValue { what: "SA situation", value: 3 }));
    }

    #[test]
    fn iterators_stop_after_an_error() {
        let mut b = bytes(PHASE2_SA);
        b[8] = 9;
        let sa = SaPayload::parse(&b).unwrap();
        let items: Vec<_> = sa.proposals().collect();
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }

    #[test]
    fn variable_attributes() {
        // Life duration 28800 s in 4 bytes, the TLV form some peers (e.g. ike-scan's default) send.
        let tlv = [0x00, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x70, 0x80];
        let t = Transform { number: 1, transform_id: KEY_IKE, attributes: &tlv };
        let a = t.attributes().next().unwrap().unwrap();
        assert_eq!(a, Attribute { kind: ike_attr::LIFE_DURATION, value: AttrValue::Variable(&tlv[4..]) });
        assert_eq!(a.as_u64(), Some(28800));
        for cut in 1..tlv.len() {
            let t = Transform { number: 1, transform_id: KEY_IKE, attributes: &tlv[..cut] };
            assert!(t.attributes().next().unwrap().is_err());
        }
        assert_eq!(Attribute { kind: 1, value: AttrValue::Variable(&[]) }.as_u64(), None);
        assert_eq!(Attribute { kind: 1, value: AttrValue::Variable(&[1; 9]) }.as_u64(), None);
        assert_eq!(Attribute { kind: 1, value: AttrValue::Variable(&[1; 8]) }.as_u64(), Some(0x0101_0101_0101_0101));
    }

    #[test]
    fn number_picks_the_form() {
        assert_eq!(AttributeRepr::number(12, 0xffff), AttributeRepr::Basic { kind: 12, value: 0xffff });
        assert_eq!(AttributeRepr::number(12, 0x1_0000), AttributeRepr::Variable { kind: 12, value: vec![0, 1, 0, 0] });
        assert_eq!(
            AttributeRepr::number(2, 0x1_0000_0000),
            AttributeRepr::Variable { kind: 2, value: vec![0, 0, 0, 1, 0, 0, 0, 0] }
        );
        let mut out = [0u8; 8];
        AttributeRepr::number(12, 28800).emit(&mut out[..4]).unwrap();
        assert_eq!(out[..4], [0x80, 0x0c, 0x70, 0x80]);
        AttributeRepr::number(12, 86400).emit(&mut out).unwrap();
        assert_eq!(out, [0x00, 0x0c, 0x00, 0x04, 0x00, 0x01, 0x51, 0x80]);
    }

    #[test]
    fn unencodable_values_are_refused() {
        let mut out = [0u8; 70_000];
        let af = AttributeRepr::Basic { kind: 0x8001, value: 1 };
        assert!(matches!(af.emit(&mut out), Err(WireError::InvalidValue { what: "attribute type", .. })));
        let long = AttributeRepr::Variable { kind: 1, value: vec![0; 65_536] };
        assert!(matches!(long.emit(&mut out), Err(WireError::BadLength { .. })));
        let spi = ProposalRepr { number: 1, protocol_id: 3, spi: vec![0; 256], transforms: vec![] };
        assert!(matches!(spi.emit(&mut out), Err(WireError::InvalidValue { what: "SPI size", .. })));
    }
}
