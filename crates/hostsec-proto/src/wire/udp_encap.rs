//! What travels on UDP port 4500 after NAT traversal floated an SA there (RFC 3948 §2): ESP packets whose first
//! four bytes are the (non-zero) SPI, IKE messages behind a four-byte non-ESP marker of zeros, and one-byte
//! NAT-keepalives (0xFF). The daemon's 4500 socket sorts each datagram with [`classify`]: ESP goes to the ESP
//! layer, IKE (the whole datagram, marker included) to `Endpoint::handle`, keepalives are counted and dropped.

/// The four zero bytes that precede an IKE message on port 4500 (RFC 3948 §2.2): an SPI of zero, which ESP never
/// uses.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The single byte of a NAT-keepalive (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: u8 = 0xFF;

/// The smallest ESP packet worth handing on: SPI and sequence number (8 bytes), and the smallest body, which is
/// the pad length and next header bytes padded to four (RFC 4303 §2.4). Anything shorter cannot be ESP.
pub const MIN_ESP_LEN: usize = 12;

/// The smallest IKE message: an ISAKMP header (RFC 2408 §3.1).
const MIN_IKE_LEN: usize = 28;

/// What one UDP payload received on port 4500 is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEncap<'a> {
    /// A NAT-keepalive: nothing to do but count it.
    Keepalive,
    /// An IKE message; the slice is the ISAKMP message after the non-ESP marker.
    Ike(&'a [u8]),
    /// An ESP packet (the whole UDP payload, starting with the SPI).
    Esp {
        /// The SPI, for the ESP layer's lookup.
        spi: u32,
        /// The ESP packet.
        packet: &'a [u8],
    },
    /// Neither: too short for what its first bytes announce, or an SPI that IANA reserves. Says why, for the log.
    Invalid(&'static str),
}

/// Sorts a UDP payload received on port 4500. It never panics and never allocates: datagrams are hostile.
pub fn classify(payload: &[u8]) -> UdpEncap<'_> {
    match payload {
        [] => UdpEncap::Invalid("an empty datagram"),
        [NAT_KEEPALIVE] => UdpEncap::Keepalive,
        [_] => UdpEncap::Invalid("a one-byte datagram that is not a NAT-keepalive (0xFF)"),
        _ => match payload.split_first_chunk::<4>() {
            None => UdpEncap::Invalid("a datagram shorter than an SPI or a non-ESP marker"),
            Some((marker, ike)) if *marker == NON_ESP_MARKER => {
                if ike.len() < MIN_IKE_LEN {
                    UdpEncap::Invalid("a non-ESP marker followed by less than an ISAKMP header")
                } else {
                    UdpEncap::Ike(ike)
                }
            }
            Some((spi, _)) => {
                let spi = u32::from_be_bytes(*spi);
                if spi <= 255 {
                    // RFC 4303 §2.1: SPIs 1-255 are reserved by IANA and never assigned.
                    UdpEncap::Invalid("an ESP packet with a reserved SPI (1-255)")
                } else if payload.len() < MIN_ESP_LEN {
                    UdpEncap::Invalid("an ESP packet shorter than its header and trailer")
                } else {
                    UdpEncap::Esp { spi, packet: payload }
                }
            }
        },
    }
}

/// The UDP payload that carries `message` (an ISAKMP message) on port 4500: the non-ESP marker, then the message.
pub fn with_marker(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NON_ESP_MARKER.len() + message.len());
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind() {
        assert_eq!(classify(&[0xff]), UdpEncap::Keepalive);
        assert!(matches!(classify(&[]), UdpEncap::Invalid(_)));
        assert!(matches!(classify(&[0]), UdpEncap::Invalid(_)));
        assert!(matches!(classify(&[0, 0, 0]), UdpEncap::Invalid(_)));
        let ike = [7u8; 28];
        let framed = with_marker(&ike);
        assert_eq!(classify(&framed), UdpEncap::Ike(&ike[..]));
        assert!(matches!(classify(&framed[..31]), UdpEncap::Invalid(_)));
        let esp = [0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 9, 9, 9, 9];
        assert_eq!(classify(&esp), UdpEncap::Esp { spi: 0x1234_5678, packet: &esp[..] });
        assert!(matches!(classify(&esp[..11]), UdpEncap::Invalid(_)));
        let reserved = [0, 0, 0, 0xff, 0, 0, 0, 1, 9, 9, 9, 9];
        assert!(matches!(classify(&reserved), UdpEncap::Invalid(_)));
    }
}
