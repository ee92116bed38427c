//! The AuthIP form of the Notify payload (0x0B, [MS-AIPS] §2.2.3.5 and §2.2.3.6): IKEv1's SPI-size byte becomes a
//! Flags byte and there is no SPI, whenever the exchange type is one of AuthIP's.

use super::consts::{notify, notify_protocol};
use crate::wire::consts::DOI_IPSEC;
use crate::wire::writer::{Emit, Out};
use crate::wire::WireError;

/// DOI (4), Protocol-ID (1), Flags (1), Notify_Message_Type (2).
const FIXED_LEN: usize = 8;

/// The data length [MS-AIPS] §2.2.3.5/§2.2.3.6 fixes for an AuthIP notify type, or `None` for types whose data
/// the codec does not interpret (NO-PROPOSAL-CHOSEN and anything else).
pub fn data_len_of(notify_type: u16) -> Option<usize> {
    match notify_type {
        notify::NOTIFY_QM_SYNCHRONIZE => Some(0),
        notify::NOTIFY_STATUS | notify::NOTIFY_ACK | notify::EXCHANGE_INFO => Some(4),
        notify::NOTIFY_DOS_COOKIE | notify::NOTIFY_ACQUIRE => Some(8),
        _ => None,
    }
}

/// A view of an AuthIP Notify payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthipNotify<'a> {
    /// [`notify_protocol::MM_EM`] or [`notify_protocol::QM`].
    pub protocol_id: u8,
    /// The flags byte as received; only [`super::consts::notify_flags::RELIABLE`] has a meaning, the rest are
    /// kept (the receiver ignores them, §2.2.3.5) so that re-emitting gives the same bytes.
    pub flags: u8,
    /// The notify message type ([`notify`]).
    pub notify_type: u16,
    /// The notification data.
    pub data: &'a [u8],
}

/// What an AuthIP notification says, decoded from its type and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind<'a> {
    /// EXCHANGE_INFO with its flags ([`super::consts::exchange_info`]).
    ExchangeInfo(u32),
    /// NOTIFY_STATUS: delete the SA; a Windows error code.
    Status(u32),
    /// NOTIFY_DOS_COOKIE: the responder cookie to retry with.
    DosCookie([u8; 8]),
    /// NOTIFY_ACK: the seqNUM of the CRYPTO payload that carried the acknowledged notify.
    Ack(u32),
    /// NOTIFY_QM_SYNCHRONIZE.
    QmSynchronize,
    /// NOTIFY_ACQUIRE: an IANA encapsulation mode and flags (§2.2.3.6).
    Acquire {
        /// Encapsulation mode.
        encapsulation_mode: u32,
        /// Flags ([`super::consts::exchange_info::GUARANTEE_ENCRYPTION`]).
        flags: u32,
    },
    /// Any other type (e.g. NO-PROPOSAL-CHOSEN) with its opaque data.
    Other(u16, &'a [u8]),
}

impl<'a> AuthipNotify<'a> {
    /// Parses an AuthIP Notify body. Refused: DOI other than 1 and a Protocol-ID other than 1 or 2 (both "MUST"
    /// in §2.2.3.5), and a data length other than the one §2.2.3.5/§2.2.3.6 fixes for the AuthIP types
    /// ([`data_len_of`]).
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, data) = body.split_first_chunk::<FIXED_LEN>().ok_or(WireError::Truncated {
            what: "AuthIP notify payload",
            need: FIXED_LEN,
            have: body.len(),
        })?;
        let [d0, d1, d2, d3, protocol_id, flags, t_hi, t_lo] = *fixed;
        let doi = u32::from_be_bytes([d0, d1, d2, d3]);
        if doi != DOI_IPSEC {
            return Err(WireError::InvalidValue { what: "AuthIP notify DOI", value: doi });
        }
        if protocol_id != notify_protocol::MM_EM && protocol_id != notify_protocol::QM {
            return Err(WireError::InvalidValue { what: "AuthIP notify protocol ID", value: u32::from(protocol_id) });
        }
        let notify_type = u16::from_be_bytes([t_hi, t_lo]);
        if data_len_of(notify_type).is_some_and(|n| n != data.len()) {
            return Err(WireError::BadLength { what: "AuthIP notify data", len: data.len() });
        }
        Ok(AuthipNotify { protocol_id, flags, notify_type, data })
    }

    /// Whether the notification must be acknowledged ([MS-AIPS] §3.1.5.1).
    pub fn is_reliable(&self) -> bool {
        self.flags & super::consts::notify_flags::RELIABLE != 0
    }

    /// The decoded meaning.
    pub fn kind(&self) -> NotifyKind<'a> {
        let word = |at: usize| -> u32 {
            self.data.get(at..at + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()).map_or(0, u32::from_be_bytes)
        };
        match (self.notify_type, data_len_of(self.notify_type) == Some(self.data.len())) {
            (notify::EXCHANGE_INFO, true) => NotifyKind::ExchangeInfo(word(0)),
            (notify::NOTIFY_STATUS, true) => NotifyKind::Status(word(0)),
            (notify::NOTIFY_ACK, true) => NotifyKind::Ack(word(0)),
            (notify::NOTIFY_QM_SYNCHRONIZE, true) => NotifyKind::QmSynchronize,
            (notify::NOTIFY_DOS_COOKIE, true) => {
                NotifyKind::DosCookie(<[u8; 8]>::try_from(self.data).unwrap_or([0; 8]))
            }
            (notify::NOTIFY_ACQUIRE, true) => NotifyKind::Acquire { encapsulation_mode: word(0), flags: word(4) },
            (t, _) => NotifyKind::Other(t, self.data),
        }
    }
}

/// An AuthIP Notify payload body to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthipNotifyRepr {
    /// Protocol-ID.
    pub protocol_id: u8,
    /// Flags.
    pub flags: u8,
    /// Notify message type.
    pub notify_type: u16,
    /// Data.
    pub data: Vec<u8>,
}

impl AuthipNotifyRepr {
    /// The owned form of a parsed notification.
    pub fn from_view(n: &AuthipNotify<'_>) -> Self {
        AuthipNotifyRepr {
            protocol_id: n.protocol_id,
            flags: n.flags,
            notify_type: n.notify_type,
            data: n.data.to_vec(),
        }
    }

    fn with(protocol_id: u8, reliable: bool, notify_type: u16, data: &[u8]) -> Self {
        let flags = if reliable { super::consts::notify_flags::RELIABLE } else { 0 };
        AuthipNotifyRepr { protocol_id, flags, notify_type, data: data.to_vec() }
    }

    /// NOTIFY_ACK for the notify carried by the CRYPTO payload with sequence number `seq` (never reliable:
    /// acknowledgements are not acknowledged).
    pub fn ack(protocol_id: u8, seq: u32) -> Self {
        Self::with(protocol_id, false, notify::NOTIFY_ACK, &seq.to_be_bytes())
    }

    /// NOTIFY_STATUS ("delete") with a Windows error code.
    pub fn status(protocol_id: u8, reliable: bool, code: u32) -> Self {
        Self::with(protocol_id, reliable, notify::NOTIFY_STATUS, &code.to_be_bytes())
    }

    /// NOTIFY_QM_SYNCHRONIZE.
    pub fn qm_synchronize() -> Self {
        Self::with(notify_protocol::QM, false, notify::NOTIFY_QM_SYNCHRONIZE, &[])
    }

    /// NOTIFY_DOS_COOKIE with the cookie the initiator is to retry with.
    pub fn dos_cookie(cookie: [u8; 8]) -> Self {
        Self::with(notify_protocol::MM_EM, false, notify::NOTIFY_DOS_COOKIE, &cookie)
    }

    /// NOTIFY_ACQUIRE (reliable, §3.4.7.4); the two phase-2 ID payloads must follow it in the chain.
    pub fn acquire(encapsulation_mode: u32, flags: u32) -> Self {
        let mut data = encapsulation_mode.to_be_bytes().to_vec();
        data.extend_from_slice(&flags.to_be_bytes());
        Self::with(notify_protocol::MM_EM, true, notify::NOTIFY_ACQUIRE, &data)
    }
}

impl Emit for AuthipNotifyRepr {
    fn buffer_len(&self) -> usize {
        FIXED_LEN.saturating_add(self.data.len())
    }

    /// Refuses what the parser refuses (a bad Protocol-ID or data length), so that an emitted notify parses back.
    fn emit(&self, out: &mut [u8]) -> Result<(), WireError> {
        let mut out = Out::new(out, self.buffer_len())?;
        if self.protocol_id != notify_protocol::MM_EM && self.protocol_id != notify_protocol::QM {
            return Err(WireError::InvalidValue {
                what: "AuthIP notify protocol ID",
                value: u32::from(self.protocol_id),
            });
        }
        if data_len_of(self.notify_type).is_some_and(|n| n != self.data.len()) {
            return Err(WireError::BadLength { what: "AuthIP notify data", len: self.data.len() });
        }
        out.u32(DOI_IPSEC)?;
        out.u8(self.protocol_id)?;
        out.u8(self.flags)?;
        out.u16(self.notify_type)?;
        out.bytes(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(r: &AuthipNotifyRepr) -> Vec<u8> {
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out).unwrap();
        out
    }

    /// [MS-AIPS] §2.2.3.5 packet diagram: DOI(4)=1 | Protocol-ID(1) | Flags(1) | Type(2) | data; NOTIFY_ACK's data
    /// is the acknowledged seqNUM.
    #[test]
    fn ack_layout() {
        let body = [0, 0, 0, 1, 0x01, 0x00, 0x9c, 0x56, 0, 0, 0, 5];
        let n = AuthipNotify::parse(&body).unwrap();
        assert_eq!(n.kind(), NotifyKind::Ack(5));
        assert!(!n.is_reliable());
        assert_eq!(emit(&AuthipNotifyRepr::ack(notify_protocol::MM_EM, 5)), body);
        assert_eq!(emit(&AuthipNotifyRepr::from_view(&n)), body);
    }

    /// §2.2.3.5: a reliable NOTIFY_STATUS ("delete") with a 4-byte error code.
    #[test]
    fn reliable_status_layout() {
        let body = [0, 0, 0, 1, 0x02, 0x01, 0x9c, 0x54, 0x00, 0x00, 0x35, 0xed];
        let n = AuthipNotify::parse(&body).unwrap();
        assert!(n.is_reliable());
        assert_eq!(n.kind(), NotifyKind::Status(13805));
        assert_eq!(emit(&AuthipNotifyRepr::status(notify_protocol::QM, true, 13805)), body);
    }

    /// §2.2.3.6 packet diagram: Encapsulation_Mode(4) | Flags(4) (transport mode 2, GUARANTEE_ENCRYPTION).
    #[test]
    fn acquire_layout() {
        let body = [0, 0, 0, 1, 0x01, 0x01, 0x9c, 0x58, 0, 0, 0, 2, 0, 0, 0, 2];
        let n = AuthipNotify::parse(&body).unwrap();
        assert_eq!(n.kind(), NotifyKind::Acquire { encapsulation_mode: 2, flags: 2 });
        assert_eq!(emit(&AuthipNotifyRepr::acquire(2, 2)), body);
    }

    /// §2.2.3.5: QM_SYNCHRONIZE has no data, DOS_COOKIE 8 bytes, EXCHANGE_INFO 4; NO-PROPOSAL-CHOSEN is opaque.
    #[test]
    fn other_kinds() {
        let sync = emit(&AuthipNotifyRepr::qm_synchronize());
        assert_eq!(sync, [0, 0, 0, 1, 2, 0, 0x9c, 0x57]);
        assert_eq!(AuthipNotify::parse(&sync).unwrap().kind(), NotifyKind::QmSynchronize);
        let cookie = emit(&AuthipNotifyRepr::dos_cookie([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(AuthipNotify::parse(&cookie).unwrap().kind(), NotifyKind::DosCookie([1, 2, 3, 4, 5, 6, 7, 8]));
        let info = [0, 0, 0, 1, 2, 0, 0x9c, 0x45, 0, 0, 0, 3];
        assert_eq!(AuthipNotify::parse(&info).unwrap().kind(), NotifyKind::ExchangeInfo(3));
        let npc = [0, 0, 0, 1, 2, 1, 0, 14, 0xaa];
        assert_eq!(AuthipNotify::parse(&npc).unwrap().kind(), NotifyKind::Other(14, &[0xaa]));
    }

    #[test]
    fn malformed() {
        let good = [0, 0, 0, 1, 0x01, 0x00, 0x9c, 0x56, 0, 0, 0, 5];
        for cut in 0..good.len() {
            assert!(AuthipNotify::parse(&good[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = good;
        bad[3] = 2; // DOI
        assert!(matches!(AuthipNotify::parse(&bad), Err(WireError::InvalidValue { what: "AuthIP notify DOI", .. })));
        for proto in [0u8, 3, 0xff] {
            let mut bad = good;
            bad[4] = proto;
            assert!(AuthipNotify::parse(&bad).is_err(), "protocol {proto}");
        }
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(AuthipNotify::parse(&long), Err(WireError::BadLength { what: "AuthIP notify data", len: 5 }));
        let mut out = [0u8; 64];
        let r = AuthipNotifyRepr { protocol_id: 1, flags: 0, notify_type: notify::NOTIFY_ACK, data: vec![1] };
        assert!(r.emit(&mut out).is_err());
        let r = AuthipNotifyRepr { protocol_id: 7, flags: 0, notify_type: 14, data: vec![] };
        assert!(r.emit(&mut out).is_err());
    }
}
