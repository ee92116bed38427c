//! Checked reads and writes of big-endian fields: every access to packet bytes in this module goes through
//! these (or through `get`/`split_at_checked`), so that no packet can make the datapath panic.

/// `N` bytes at `at`, if they are all there.
#[inline]
pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The byte at `at`.
#[inline]
pub(crate) fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// The big-endian `u16` at `at`.
#[inline]
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    array::<2>(b, at).map(u16::from_be_bytes)
}

/// The big-endian `u32` at `at`.
#[inline]
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    array::<4>(b, at).map(u32::from_be_bytes)
}

/// Writes `value` at `at`; `None` when it does not fit.
#[inline]
pub(crate) fn put(b: &mut [u8], at: usize, value: &[u8]) -> Option<()> {
    b.get_mut(at..at.checked_add(value.len())?)?.copy_from_slice(value);
    Some(())
}

/// Writes one byte at `at`.
#[inline]
pub(crate) fn put_u8(b: &mut [u8], at: usize, value: u8) -> Option<()> {
    *b.get_mut(at)? = value;
    Some(())
}

/// Writes a big-endian `u16` at `at`.
#[inline]
pub(crate) fn put_u16(b: &mut [u8], at: usize, value: u16) -> Option<()> {
    put(b, at, &value.to_be_bytes())
}

/// `checksum` after one 16-bit word of the summed data changed from `old` to `new` (RFC 1624 eqn. 3:
/// HC' = ~(~HC + ~m + m'), which, unlike eqn. 2, never produces the -0 that RFC 1624 §3 warns about).
#[inline]
pub(crate) fn checksum_adjust(checksum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The Internet checksum (RFC 1071) of `data` (an IPv4 header: always a multiple of 4 bytes; an odd tail is
/// padded with zeros as RFC 1071 says).
#[cfg(test)]
pub(crate) fn internet_checksum(data: &[u8]) -> u16 {
    // One's complement sums can be taken over wider words and folded at the end (RFC 1071 §2 (B), (C)): 32-bit
    // big-endian words into a 64-bit accumulator, which cannot overflow for any IP header.
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in words.by_ref() {
        if let [a, b, c, d] = *w {
            sum += u64::from(u32::from_be_bytes([a, b, c, d]));
        }
    }
    let mut tail = [0u8; 4];
    for (t, &b) in tail.iter_mut().zip(words.remainder()) {
        *t = b;
    }
    sum += u64::from(u32::from_be_bytes(tail));
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checked_accessors_refuse_out_of_range() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(u16_at(&b, 3), Some(0x0405));
        assert_eq!(u16_at(&b, 4), None);
        assert_eq!(u32_at(&b, 1), Some(0x0203_0405));
        assert_eq!(u32_at(&b, usize::MAX), None);
        let mut m = [0u8; 3];
        assert_eq!(put(&mut m, 2, &[1, 2]), None);
        assert_eq!(put_u16(&mut m, 1, 0xabcd), Some(()));
        assert_eq!(m, [0, 0xab, 0xcd]);
    }

    #[test]
    fn checksum_of_the_rfc_1071_example_and_a_real_header() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (before complement).
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        // A header with its checksum in place sums to zero.
        let h = hex::decode("45000073000040004011b861c0a80001c0a800c7").unwrap_or_default();
        assert_eq!(internet_checksum(&h), 0);
    }
}
