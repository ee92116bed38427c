//! The RESPONDER-LIFETIME notification (RFC 2407 §4.6.3.1): how a Quick Mode responder that chose a shorter
//! lifetime than the initiator proposed tells it so, and how the initiator takes it in.
//!
//! The responder must echo the accepted transform unchanged (RFC 2408 §4.2), lifetime attributes included, so
//! a lower lifetime can only travel in this notification, sent in QM2 and covered by HASH(2). Its data is the
//! same attribute pairs as in a transform (SA Life Type, SA Life Duration); protocol ESP; the SPI is the
//! responder's (as racoon sends it). Windows sends it when its lifetime is the shorter; the initiator honours
//! it by taking the lower values (never a higher one: the notification may lower, not raise).
//!
//! When the initiator proposes no lifetime, RFC 2407 §4.5 makes the default 28800 s and no byte limit.
//!
//! RFC 2407 §4.6.3 also lets the notification come in a separate Informational exchange after Main Mode or
//! Quick Mode: for protocol ISAKMP (SPI = the cookies) it lowers the ISAKMP SA's lifetime, for ESP (SPI = the
//! peer's inbound SPI) the pair's time lifetime. hostsec honours both (counted from their arrival); a byte limit
//! that comes this way is only logged, as the pair's byte limit is already in the datapath.

use crate::wire::consts::{ipsec_attr, life_type, notify, protocol, DOI_IPSEC};
use crate::wire::{AttrValue, AttributeIter, AttributeRepr, Emit, NotifyPayload, NotifyRepr};
use std::time::Duration;

/// RFC 2407 §4.5: the lifetime of an SA whose proposal carries none.
const DEFAULT_SECONDS: u64 = 28800;

/// Lifetimes a responder announces; `None` = not lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Lowered {
    /// Seconds.
    pub seconds: Option<u64>,
    /// Kilobytes.
    pub kilobytes: Option<u64>,
}

impl Lowered {
    /// What the responder must announce, having chosen `ours` (seconds, kilobytes) against the initiator's
    /// proposal.
    pub fn against(offer_s: Option<u64>, offer_kb: Option<u64>, ours: Duration, ours_kb: u64) -> Lowered {
        let ours_s = ours.as_secs();
        Lowered {
            seconds: (ours_s < offer_s.unwrap_or(DEFAULT_SECONDS)).then_some(ours_s),
            kilobytes: (ours_kb > 0 && offer_kb.is_none_or(|k| ours_kb < k)).then_some(ours_kb),
        }
    }

    /// Whether there is anything to announce.
    pub fn any(&self) -> bool {
        self.seconds.is_some() || self.kilobytes.is_some()
    }

    /// The notification for an ISAKMP SA (`spi` = its cookies), sent in an Informational exchange.
    pub fn isakmp_notify(&self, spi: Vec<u8>) -> NotifyRepr {
        NotifyRepr { protocol_id: protocol::ISAKMP, spi, ..self.notify([0; 4]) }
    }

    /// The notification, for the responder's SPI.
    pub fn notify(&self, spi: [u8; 4]) -> NotifyRepr {
        let mut attrs = Vec::new();
        if let Some(s) = self.seconds {
            attrs.push(AttributeRepr::number(ipsec_attr::SA_LIFE_TYPE, u64::from(life_type::SECONDS)));
            attrs.push(AttributeRepr::number(ipsec_attr::SA_LIFE_DURATION, s));
        }
        if let Some(k) = self.kilobytes {
            attrs.push(AttributeRepr::number(ipsec_attr::SA_LIFE_TYPE, u64::from(life_type::KILOBYTES)));
            attrs.push(AttributeRepr::number(ipsec_attr::SA_LIFE_DURATION, k));
        }
        let mut data = Vec::new();
        for a in &attrs {
            let at = data.len();
            data.resize(at + a.buffer_len(), 0);
            // A numeric attribute of at most 8 bytes always fits the space its own length gave.
            if a.emit(&mut data[at..]).is_err() {
                data.truncate(at);
            }
        }
        NotifyRepr {
            doi: DOI_IPSEC,
            protocol_id: protocol::ESP,
            notify_type: notify::RESPONDER_LIFETIME,
            spi: spi.to_vec(),
            data,
        }
    }

    /// Reads the notification among a QM2's: `Ok(None)` when there is none, `Err` when it is malformed.
    pub fn from_notifies(notifies: &[NotifyPayload<'_>]) -> Result<Option<Lowered>, String> {
        let Some(n) = notifies.iter().find(|n| n.notify_type == notify::RESPONDER_LIFETIME) else {
            return Ok(None);
        };
        if n.protocol_id != protocol::ESP {
            return Err(format!("RESPONDER-LIFETIME for protocol {} in a Quick Mode of ESP", n.protocol_id));
        }
        Lowered::read(n.data).map(Some)
    }

    /// Reads the attributes of a RESPONDER-LIFETIME notification.
    pub fn read(data: &[u8]) -> Result<Lowered, String> {
        let mut out = Lowered::default();
        let mut kind = None;
        for a in AttributeIter::over(data) {
            let a = a.map_err(|e| format!("RESPONDER-LIFETIME attributes: {e}"))?;
            let value = match a.value {
                AttrValue::Basic(v) => u64::from(v),
                AttrValue::Variable(b) if !b.is_empty() && b.len() <= 8 => {
                    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
                }
                AttrValue::Variable(_) => return Err("RESPONDER-LIFETIME value longer than 8 bytes".into()),
            };
            match a.kind {
                ipsec_attr::SA_LIFE_TYPE => kind = Some(value),
                ipsec_attr::SA_LIFE_DURATION => match kind.and_then(|k| u16::try_from(k).ok()) {
                    Some(life_type::SECONDS) => out.seconds = Some(value),
                    Some(life_type::KILOBYTES) => out.kilobytes = Some(value),
                    _ => return Err("RESPONDER-LIFETIME duration without a known life type".into()),
                },
                k => return Err(format!("RESPONDER-LIFETIME carries attribute type {k}")),
            }
        }
        Ok(out)
    }

    /// Lowers the lifetimes an initiator agreed (`seconds`, `kilobytes`) to these; never raises them.
    pub fn apply(&self, seconds: &mut Option<u64>, kilobytes: &mut Option<u64>) {
        if let Some(s) = self.seconds {
            *seconds = Some(seconds.map_or(s, |x| x.min(s)));
        }
        if let Some(k) = self.kilobytes {
            *kilobytes = Some(kilobytes.map_or(k, |x| x.min(k)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(l: Lowered) -> Option<Lowered> {
        let n = l.notify([1, 2, 3, 4]);
        let mut buf = vec![0; n.buffer_len()];
        n.emit(&mut buf).unwrap();
        let view = NotifyPayload::parse(&buf).unwrap();
        assert_eq!(view.spi, [1, 2, 3, 4]);
        Lowered::from_notifies(&[view]).unwrap()
    }

    #[test]
    fn announced_only_when_lower() {
        let h = Duration::from_secs(3600);
        assert_eq!(Lowered::against(Some(3600), Some(100_000), h, 100_000), Lowered::default());
        assert_eq!(Lowered::against(Some(7200), Some(50_000), h, 100_000).seconds, Some(3600));
        assert_eq!(Lowered::against(Some(7200), Some(50_000), h, 100_000).kilobytes, None);
        // No lifetime proposed: 8 hours and no byte limit by default, so ours are lower.
        assert_eq!(Lowered::against(None, None, h, 100_000), Lowered { seconds: Some(3600), kilobytes: Some(100_000) });
    }

    #[test]
    fn round_trips_both_kinds_and_big_values() {
        for l in [
            Lowered { seconds: Some(300), kilobytes: None },
            Lowered { seconds: None, kilobytes: Some(2_147_483_647) },
            Lowered { seconds: Some(100_000), kilobytes: Some(20_480) },
        ] {
            assert_eq!(roundtrip(l), Some(l));
        }
    }

    #[test]
    fn malformed_ones_are_errors_and_absence_is_none() {
        assert_eq!(Lowered::from_notifies(&[]), Ok(None));
        let bad = |data: Vec<u8>, proto: u8| {
            let n = NotifyRepr {
                doi: DOI_IPSEC,
                protocol_id: proto,
                notify_type: notify::RESPONDER_LIFETIME,
                spi: vec![0; 4],
                data,
            };
            let mut buf = vec![0; n.buffer_len()];
            n.emit(&mut buf).unwrap();
            Lowered::from_notifies(&[NotifyPayload::parse(&buf).unwrap()]).map(|_| ()).map_err(|_| ()).err().is_some()
        };
        // A duration before any life type; an unknown attribute; a truncated attribute; another protocol.
        assert!(bad(vec![0x80, 0x02, 0x01, 0x2c], protocol::ESP));
        assert!(bad(vec![0x80, 0x05, 0x00, 0x01], protocol::ESP));
        assert!(bad(vec![0x00, 0x02, 0x00, 0x04, 0x00], protocol::ESP));
        assert!(bad(vec![0x80, 0x01, 0x00, 0x01, 0x80, 0x02, 0x01, 0x2c], protocol::ISAKMP));
        assert!(!bad(vec![0x80, 0x01, 0x00, 0x01, 0x80, 0x02, 0x01, 0x2c], protocol::ESP));
    }

    #[test]
    fn apply_only_lowers() {
        let l = Lowered { seconds: Some(600), kilobytes: Some(50_000) };
        let (mut s, mut k) = (Some(3600), None);
        l.apply(&mut s, &mut k);
        assert_eq!((s, k), (Some(600), Some(50_000)));
        let (mut s, mut k) = (Some(300), Some(10_000));
        l.apply(&mut s, &mut k);
        assert_eq!((s, k), (Some(300), Some(10_000)));
    }
}
