//! The stateless responder cookie of [MS-IKEE] §3.9 ("Denial of Service Protection"), which AuthIP uses too
//! ([MS-AIPS] §2.2.3.2, §3.1.7.6): a responder under load answers an AuthIP MM #1 with `HDR + N(NOTIFY_DOS_COOKIE,
//! cookie)` and keeps nothing; the initiator sends its MM #1 again with CKY-R = the cookie, and only a retry whose
//! CKY-R verifies gets state. Sans-IO: the caller passes the time and the randomness, and counts its half-open
//! Main Modes for [`DosMode`].
//!
//! **Experimental — not yet verified against Windows**, like the rest of [`crate::authip`]. The cookie itself
//! cannot cause an interop failure: only its issuer ever checks it ([MS-IKEE] §3.9.5.2: the initiator checks
//! nothing but its length), so its inputs and their layout are this implementation's own business. The message
//! that carries it is what a Windows initiator must understand; its open points are docs/authip.md W13 and D1–D3.

use super::consts::{exchange, message_id};
use super::message::{AuthipBodyRepr, AuthipHeader, AuthipMessageRepr};
use super::notify::AuthipNotifyRepr;
use crate::crypto::prf;
use crate::crypto::HashAlg;
use crate::wire::consts::ISAKMP_VERSION;
use rand_core::CryptoRngCore;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tracing::{info, warn};
use zeroize::Zeroizing;

/// Length of the cookie key, as Windows' ([MS-IKEE] note <27>: "a 50-byte random number").
pub const COOKIE_KEY_LEN: usize = 50;

/// Length of one time slice in seconds ([MS-IKEE] §3.9.1: "a cookie timeout period, initialized to 150 secs").
pub const COOKIE_SLICE_SECS: u64 = 150;

/// Half-open AuthIP Main Modes at which a responder starts demanding cookies ([MS-AIPS] §3.1.7.6; [MS-IKEE]
/// note <29>: Windows enters DoS protection with more than 500 negotiations that have received one message).
pub const DOS_ENTER_HALF_OPEN: usize = 500;

/// Half-open AuthIP Main Modes below which a responder stops demanding cookies ([MS-IKEE] note <29>: "less than
/// 100").
pub const DOS_LEAVE_HALF_OPEN: usize = 100;

/// Length of one encoded socket address (see [`DosCookies`]): the size of Windows' IPv4 layout in note <27>,
/// which its IPv6 layout also fills.
const SOCKADDR_LEN: usize = 36;

/// The stateless responder cookie of [MS-IKEE] §3.9.
///
/// `cookie = first 8 bytes of SHA-1(key | CKY-I | peer sockaddr | local sockaddr | slice end)`, the algorithm of
/// [MS-IKEE] note <27>, with a 50-byte random key made once per responder. Slices are [`COOKIE_SLICE_SECS`] long;
/// a cookie verifies in the slice it was made in and in the next one (note <28> also accepts the previous
/// slice), so it stays good for 150 to 300 s, enough for a retry after any retransmission timer.
///
/// Inputs and their layout, which only this responder needs to reproduce (an initiator never checks a cookie):
/// - *Socket addresses*, 36 bytes each. IPv4: `01 00 02 00 | port | address | 26 zero bytes`, as note <27>
///   writes it (the bytes read as a little-endian family AF_INET = 2 behind a 2-byte tag; inferred, not stated).
///   IPv6: `05 00 17 00 | port | address | 14 zero bytes` (0x17 = 23 = AF_INET6 on Windows), the note's peer
///   layout, used for the local address too: the note gives the local IPv6 address the IPv4 tag `01 00 02 00`,
///   most likely a copy slip, and following it would gain nothing. Ports and addresses in network order; an
///   IPv4-mapped IPv6 address is encoded as IPv6, as the socket reports it. Flow label and scope ID are not part
///   of it: a cookie shows that the initiator receives at an address and port, nothing more.
/// - *Time*: the end of the current slice in seconds, as 8 bytes big-endian, counted from the [`Instant`] given to
///   [`DosCookies::new`] rather than from 1970 as Windows does. Monotonic time means a wall-clock step neither
///   voids the cookies just sent nor revives old ones.
pub struct DosCookies {
    /// Zeroized on drop: with the key, anyone could mint cookies for any address.
    key: Zeroizing<[u8; COOKIE_KEY_LEN]>,
    /// Time zero of the slices.
    epoch: Instant,
}

impl fmt::Debug for DosCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DosCookies([key redacted])")
    }
}

impl DosCookies {
    /// A new cookie key from `rng`; slices start at `now`.
    pub fn new(rng: &mut dyn CryptoRngCore, now: Instant) -> Self {
        let mut key = Zeroizing::new([0u8; COOKIE_KEY_LEN]);
        rng.fill_bytes(key.as_mut_slice());
        DosCookies { key, epoch: now }
    }

    /// The cookie for an MM #1 with initiator cookie `cky_i`, received from `peer` on `local` at `now`: the
    /// value to send in NOTIFY_DOS_COOKIE ([`dos_cookie_message`]).
    pub fn cookie(&self, cky_i: [u8; 8], peer: SocketAddr, local: SocketAddr, now: Instant) -> [u8; 8] {
        self.cookie_in(self.slice(now), cky_i, peer, local)
    }

    /// Whether `cky_r`, the CKY-R of a retried MM #1, is the cookie this responder made for the same `cky_i`,
    /// `peer` and `local` in the current or the previous slice ([MS-IKEE] note <28>). A zero CKY-R is refused
    /// first ([MS-IKEE] §3.9.5.3: it is a first try, not a retry). Both candidates are always computed and
    /// compared in constant time, so the answer's timing says nothing about how close a guess came.
    pub fn verify(&self, cky_r: [u8; 8], cky_i: [u8; 8], peer: SocketAddr, local: SocketAddr, now: Instant) -> bool {
        if cky_r == [0; 8] {
            return false;
        }
        let slice = self.slice(now);
        let current = self.cookie_in(slice, cky_i, peer, local);
        // Slice numbers start at 1, so the previous one exists even in the first slice (and matches nothing
        // issued, since no cookie was made in slice 0).
        let previous = self.cookie_in(slice.saturating_sub(1), cky_i, peer, local);
        // `|`, not `||`: the second comparison runs whatever the first found.
        prf::verify_mac(&current, &cky_r) | prf::verify_mac(&previous, &cky_r)
    }

    /// The number of the slice `now` is in, counted so that `slice * 150` is the slice's end, as note <27>
    /// computes `((t + 150) / 150) * 150`. A `now` before the epoch (a caller's clock confusion) counts as the
    /// epoch.
    fn slice(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / COOKIE_SLICE_SECS + 1
    }

    fn cookie_in(&self, slice: u64, cky_i: [u8; 8], peer: SocketAddr, local: SocketAddr) -> [u8; 8] {
        let end = slice.saturating_mul(COOKIE_SLICE_SECS).to_be_bytes();
        let (peer, local) = (encode_sockaddr(peer), encode_sockaddr(local));
        let digest = prf::hash(HashAlg::Sha1, &[self.key.as_slice(), &cky_i, &peer, &local, &end]);
        let mut cookie = [0u8; 8];
        cookie.copy_from_slice(&digest.as_bytes()[..8]);
        cookie
    }
}

/// A socket address in the 36-byte layout described on [`DosCookies`].
fn encode_sockaddr(addr: SocketAddr) -> [u8; SOCKADDR_LEN] {
    let mut out = [0u8; SOCKADDR_LEN];
    out[4..6].copy_from_slice(&addr.port().to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&[0x01, 0x00, 0x02, 0x00]);
            out[6..10].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out[..4].copy_from_slice(&[0x05, 0x00, 0x17, 0x00]);
            out[6..22].copy_from_slice(&a.octets());
        }
    }
    out
}

/// When to demand cookies: a hysteresis over the number of half-open AuthIP Main Modes (those that have received
/// only MM #1). On at `enter` or more ([MS-AIPS] §3.1.7.6, Windows: 500), off below `leave` (Windows: 100), so
/// that a load hovering around one threshold does not flip the mode on every message. [`Default`] is Windows'
/// 500 / 100; tests and operators may choose others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DosMode {
    enter: usize,
    leave: usize,
    active: bool,
}

impl Default for DosMode {
    fn default() -> Self {
        DosMode::new(DOS_ENTER_HALF_OPEN, DOS_LEAVE_HALF_OPEN)
    }
}

impl DosMode {
    /// Off at first; on at `enter` half-open Main Modes or more, off again below `leave`. A `leave` above `enter`
    /// is lowered to `enter`: otherwise a count between the two would turn the mode on and off on alternate
    /// updates.
    pub fn new(enter: usize, leave: usize) -> Self {
        DosMode { enter, leave: leave.min(enter), active: false }
    }

    /// The threshold that turns the mode on.
    pub fn enter(&self) -> usize {
        self.enter
    }

    /// The threshold below which the mode turns off.
    pub fn leave(&self) -> usize {
        self.leave
    }

    /// Whether cookies are demanded now (as of the last [`DosMode::update`]).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Takes the current number of half-open AuthIP Main Modes and returns whether cookies are demanded now.
    /// Logs each change of mode once: a warning on entering, since it means a flood or an overloaded host.
    pub fn update(&mut self, half_open: usize) -> bool {
        if !self.active && half_open >= self.enter {
            self.active = true;
            warn!(
                half_open,
                threshold = self.enter,
                "AuthIP DoS protection on: {half_open} half-open Main Modes (at least {}); new Main Modes must \
                 return the responder cookie first ([MS-IKEE] §3.9)",
                self.enter
            );
        } else if self.active && half_open < self.leave {
            self.active = false;
            info!(
                half_open,
                threshold = self.leave,
                "AuthIP DoS protection off: {half_open} half-open Main Modes (below {})",
                self.leave
            );
        }
        self.active
    }
}

/// The whole NOTIFY_DOS_COOKIE message that answers an AuthIP MM #1 with initiator cookie `cky_i`: an ISAKMP
/// header and one AuthIP Notify, no CRYPTO ([MS-AIPS] §2.2.3.2, [MS-IKEE] §3.9.5.1).
///
/// Header: exchange type 0xF3 (the Main Mode it answers, so the initiator finds its MM by exchange and CKY-I;
/// docs/authip.md W13, D2), message ID 0 (the MM's), CKY-R zero (the responder has no SA, and the initiator's MM
/// still has CKY-R 0: what it finds the message by), E flag clear. Notify: Protocol-ID 1 (MM), not reliable
/// (nothing is kept to retransmit it), data = the cookie.
pub fn dos_cookie_message(cky_i: [u8; 8], cookie: [u8; 8]) -> Vec<u8> {
    let repr = AuthipMessageRepr {
        header: AuthipHeader {
            initiator_cookie: cky_i,
            responder_cookie: [0; 8],
            version: ISAKMP_VERSION,
            exchange_type: exchange::MAIN_MODE,
            message_id: message_id::MAIN_MODE,
        },
        body: AuthipBodyRepr::DosCookie(AuthipNotifyRepr::dos_cookie(cookie)),
    };
    // Cannot fail: every field has a fixed, valid value (the codec refuses only other exchange types, versions
    // and notify types), and the test below parses the result back.
    repr.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authip::{AuthipBody, AuthipMessage, NotifyKind};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use std::time::Duration;

    const CKY_I: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn cookies(seed: u64, epoch: Instant) -> DosCookies {
        DosCookies::new(&mut ChaCha20Rng::seed_from_u64(seed), epoch)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn same_inputs_same_cookie() {
        let t0 = Instant::now();
        let (peer, local) = (addr("198.51.100.7:500"), addr("192.0.2.1:500"));
        let a = cookies(1, t0);
        let c = a.cookie(CKY_I, peer, local, t0 + secs(10));
        assert_eq!(c, a.cookie(CKY_I, peer, local, t0 + secs(149)), "same slice");
        assert_eq!(c, cookies(1, t0).cookie(CKY_I, peer, local, t0 + secs(10)), "same key");
        assert_ne!(c, [0; 8]);
        assert!(a.verify(c, CKY_I, peer, local, t0 + secs(10)));
    }

    #[test]
    fn any_input_changed_changes_the_cookie() {
        let t0 = Instant::now();
        let now = t0 + secs(5);
        let (peer, local) = (addr("198.51.100.7:500"), addr("192.0.2.1:500"));
        let a = cookies(1, t0);
        let base = a.cookie(CKY_I, peer, local, now);
        let mut cky = CKY_I;
        cky[7] ^= 1;
        let others = [
            ("key", cookies(2, t0).cookie(CKY_I, peer, local, now)),
            ("CKY-I", a.cookie(cky, peer, local, now)),
            ("peer address", a.cookie(CKY_I, addr("198.51.100.8:500"), local, now)),
            ("peer port", a.cookie(CKY_I, addr("198.51.100.7:4500"), local, now)),
            ("local address", a.cookie(CKY_I, peer, addr("192.0.2.2:500"), now)),
            ("local port", a.cookie(CKY_I, peer, addr("192.0.2.1:4500"), now)),
            ("peer and local swapped", a.cookie(CKY_I, local, peer, now)),
            ("next slice", a.cookie(CKY_I, peer, local, t0 + secs(150))),
            ("IPv4-mapped IPv6", a.cookie(CKY_I, addr("[::ffff:198.51.100.7]:500"), local, now)),
        ];
        for (what, c) in others {
            assert_ne!(c, base, "{what}");
            assert!(!a.verify(c, CKY_I, peer, local, now), "{what}");
        }
        let (p6, l6) = (addr("[2001:db8::7]:500"), addr("[2001:db8::1]:500"));
        let v6 = a.cookie(CKY_I, p6, l6, now);
        assert_ne!(v6, a.cookie(CKY_I, addr("[2001:db8::8]:500"), l6, now));
        assert_ne!(v6, a.cookie(CKY_I, p6, addr("[2001:db8::1]:4500"), now));
        assert!(a.verify(v6, CKY_I, p6, l6, now));
        assert!(!a.verify(v6, CKY_I, p6, addr("[2001:db8::2]:500"), now));
    }

    #[test]
    fn previous_slice_accepted_two_back_refused() {
        let t0 = Instant::now();
        let (peer, local) = (addr("198.51.100.7:500"), addr("192.0.2.1:500"));
        let a = cookies(3, t0);
        // Made at the very end of slice 1: good through slice 2 (to 299 s), not in slice 3.
        let c = a.cookie(CKY_I, peer, local, t0 + secs(149));
        assert!(a.verify(c, CKY_I, peer, local, t0 + secs(149)));
        assert!(a.verify(c, CKY_I, peer, local, t0 + secs(150)), "previous slice");
        assert!(a.verify(c, CKY_I, peer, local, t0 + secs(299)), "previous slice, its last second");
        assert!(!a.verify(c, CKY_I, peer, local, t0 + secs(300)), "two slices back");
        assert!(!a.verify(c, CKY_I, peer, local, t0 + secs(3600)));
        // A cookie from a later slice than now (a caller whose clock went back) is not accepted.
        let later = a.cookie(CKY_I, peer, local, t0 + secs(151));
        assert!(!a.verify(later, CKY_I, peer, local, t0 + secs(10)));
        // A time before the epoch counts as the epoch.
        let early = a.cookie(CKY_I, peer, local, t0);
        assert!(a.verify(early, CKY_I, peer, local, t0.checked_sub(secs(1)).unwrap_or(t0)));
    }

    #[test]
    fn zero_and_wrong_cookies_are_refused() {
        let t0 = Instant::now();
        let (peer, local) = (addr("198.51.100.7:500"), addr("192.0.2.1:500"));
        let a = cookies(4, t0);
        let c = a.cookie(CKY_I, peer, local, t0);
        assert!(!a.verify([0; 8], CKY_I, peer, local, t0));
        for i in 0..8 {
            let mut bad = c;
            bad[i] ^= 0x80;
            assert!(!a.verify(bad, CKY_I, peer, local, t0), "byte {i}");
        }
        // Another responder's key does not verify this one's cookies.
        assert!(!cookies(5, t0).verify(c, CKY_I, peer, local, t0));
    }

    #[test]
    fn sockaddr_layouts() {
        let v4 = encode_sockaddr(addr("192.0.2.1:4500"));
        assert_eq!(v4[..10], [0x01, 0x00, 0x02, 0x00, 0x11, 0x94, 192, 0, 2, 1]);
        assert_eq!(v4[10..], [0; 26]);
        let v6 = encode_sockaddr(addr("[2001:db8::1]:500"));
        assert_eq!(v6[..6], [0x05, 0x00, 0x17, 0x00, 0x01, 0xf4]);
        assert_eq!(v6[6..22], "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(v6[22..], [0; 14]);
    }

    #[test]
    fn debug_hides_the_key() {
        let a = cookies(6, Instant::now());
        assert_eq!(format!("{a:?}"), "DosCookies([key redacted])");
    }

    #[test]
    fn hysteresis_windows_thresholds() {
        let mut m = DosMode::default();
        assert_eq!((m.enter(), m.leave()), (500, 100));
        assert!(!m.is_active());
        for (half_open, want) in [
            (0, false),
            (499, false),
            (500, true),
            (10_000, true),
            (250, true),
            (100, true),
            (99, false),
            (499, false),
            (500, true),
            (0, false),
        ] {
            assert_eq!(m.update(half_open), want, "{half_open}");
            assert_eq!(m.is_active(), want);
        }
    }

    #[test]
    fn hysteresis_custom_and_inverted_thresholds() {
        let mut m = DosMode::new(3, 1);
        assert!(!m.update(2));
        assert!(m.update(3));
        assert!(m.update(1));
        assert!(!m.update(0));
        // leave > enter is lowered to enter: a count between them no longer flips the mode.
        let mut m = DosMode::new(5, 50);
        assert_eq!(m.leave(), 5);
        assert!(m.update(10));
        assert!(m.update(10));
        assert!(m.update(5));
        assert!(!m.update(4));
        assert!(!m.update(4));
    }

    #[test]
    fn cookie_message_parses_back() {
        let cookie = [1, 2, 3, 4, 5, 6, 7, 8];
        let bytes = dos_cookie_message(CKY_I, cookie);
        // Header (28) + generic payload header (4) + DOI, Protocol-ID, Flags, Type (8) + cookie (8).
        assert_eq!(bytes.len(), 48);
        assert_eq!(&bytes[16..20], &[0x0b, 0x10, 0xf3, 0x00]); // next = N, version 1.0, AuthIP MM, no flags
        assert_eq!(&bytes[32..40], &[0, 0, 0, 1, 0x01, 0x00, 0x9c, 0x55]);
        let m = AuthipMessage::parse(&bytes).unwrap();
        assert_eq!(m.header.initiator_cookie, CKY_I);
        assert_eq!(m.header.responder_cookie, [0; 8]);
        assert_eq!(m.header.exchange_type, exchange::MAIN_MODE);
        assert_eq!(m.header.message_id, 0);
        assert_eq!(m.seq(), None);
        let AuthipBody::DosCookie(n) = m.body else { panic!("{:?}", m.body) };
        assert_eq!(n.kind(), NotifyKind::DosCookie(cookie));
        assert!(!n.is_reliable());
        assert_eq!(AuthipMessageRepr::from_view(&m).to_vec().unwrap(), bytes);
    }

    /// The round trip an initiator makes: cookie from the responder's message, retry with CKY-R = cookie,
    /// verified by the responder.
    #[test]
    fn issued_cookie_verifies_on_retry() {
        let t0 = Instant::now();
        let (peer, local) = (addr("[2001:db8::7]:4500"), addr("[2001:db8::1]:4500"));
        let a = cookies(7, t0);
        let bytes = dos_cookie_message(CKY_I, a.cookie(CKY_I, peer, local, t0 + secs(1)));
        let m = AuthipMessage::parse(&bytes).unwrap();
        let AuthipBody::DosCookie(n) = m.body else { panic!() };
        let NotifyKind::DosCookie(cky_r) = n.kind() else { panic!() };
        assert!(a.verify(cky_r, m.header.initiator_cookie, peer, local, t0 + secs(3)));
    }
}
