//! Why a message could not be parsed or built.

/// A wire-format error. Its message is safe to log and names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    #[error("{what} truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A length field that contradicts the enclosing structure or the structure's minimum.
    #[error("{what}: bad length {len}")]
    BadLength {
        /// Which structure.
        what: &'static str,
        /// The length found.
        len: usize,
    },
    /// ISAKMP major version other than 1.
    #[error("unsupported ISAKMP version {0:#04x}")]
    BadVersion(u8),
    /// More elements than hostsec accepts (a bound against resource exhaustion).
    #[error("too many {what} (limit {limit})")]
    TooMany {
        /// Which element.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A field with a value that is invalid in its place.
    #[error("{what}: invalid value {value}")]
    InvalidValue {
        /// Which field.
        what: &'static str,
        /// The value.
        value: u32,
    },
    /// The caller's output buffer is too small.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}
