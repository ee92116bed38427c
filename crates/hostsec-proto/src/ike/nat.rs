//! NAT detection in Main Mode (RFC 3947 §3.2) and the `nat_traversal` setting that decides what a detected NAT
//! may do (SPEC §2).
//!
//! When both sides announced NAT-T in MM1/MM2, MM3 and MM4 each carry two NAT-D payloads: first the hash of the
//! address and port the sender sends to, then the hash of the one it sends from, each HASH(CKY-I | CKY-R | IP |
//! Port) with the negotiated hash. The receiver compares the first with its own address (a mismatch: a NAT
//! rewrote the destination, this host is behind NAT) and the second with the address the message came from (a
//! mismatch: the peer is behind NAT).

use super::events::NatStatus;
use crate::crypto::prf::hash;
use crate::crypto::HashAlg;
use crate::policy::NatTraversal;
use crate::wire::NatDPayload;
use std::net::{IpAddr, SocketAddr};

/// HASH(CKY-I | CKY-R | IP | Port): the NAT-D value of one address (RFC 3947 §3.2; the address in network byte
/// order, 4 or 16 bytes, the port in 2), with the hash Main Mode negotiated.
pub fn nat_d(alg: HashAlg, cky_i: &[u8; 8], cky_r: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let port = addr.port().to_be_bytes();
    let digest = match addr.ip() {
        IpAddr::V4(a) => hash(alg, &[cky_i, cky_r, &a.octets(), &port]),
        IpAddr::V6(a) => hash(alg, &[cky_i, cky_r, &a.octets(), &port]),
    };
    digest.as_bytes().to_vec()
}

/// The two NAT-D bodies of our MM3 or MM4: the peer's address (where we send), then ours (where we send from).
pub(crate) fn our_nat_d(
    alg: HashAlg,
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    local: SocketAddr,
    peer: SocketAddr,
) -> [Vec<u8>; 2] {
    [nat_d(alg, cky_i, cky_r, peer), nat_d(alg, cky_i, cky_r, local)]
}

/// Reads the peer's NAT-D payloads of MM3 or MM4, received on `local` from `peer`. None at all: no detection
/// (`NatStatus::None`). `Err` for a single one or a malformed one (the exchange is then refused).
pub(crate) fn detect(
    alg: HashAlg,
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    local: SocketAddr,
    peer: SocketAddr,
    bodies: &[&[u8]],
) -> Result<NatStatus, String> {
    let hashes: Vec<&[u8]> = bodies
        .iter()
        .map(|b| NatDPayload::parse(b).map(|p| p.hash))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("a NAT-D payload is malformed: {e}"))?;
    let [ours, theirs @ ..] = hashes.as_slice() else {
        // Announced but not sent (some peers announce NAT-T in MM1 and then leave it): no detection, as strongSwan.
        return Ok(NatStatus::None);
    };
    if theirs.is_empty() {
        return Err("the peer sent a single NAT-D payload (one for each side is needed)".into());
    }
    let local_behind = *ours != nat_d(alg, cky_i, cky_r, local).as_slice();
    let expect = nat_d(alg, cky_i, cky_r, peer);
    let peer_behind = !theirs.contains(&expect.as_slice());
    Ok(NatStatus::from_sides(local_behind, peer_behind))
}

/// Whether the `nat_traversal` setting of `rule` lets an SA through the NAT that detection found; `Err` says why
/// not and which setting would (the administrator reads it in the log and in `hostsec initiate`).
pub(crate) fn check_setting(setting: NatTraversal, status: NatStatus, rule: &str) -> Result<(), String> {
    let needed = match status {
        NatStatus::None => return Ok(()),
        NatStatus::Remote => NatTraversal::RemoteBehindNat,
        NatStatus::Local | NatStatus::Both => NatTraversal::BothBehindNat,
    };
    let allowed = match setting {
        NatTraversal::Off => false,
        NatTraversal::RemoteBehindNat => needed == NatTraversal::RemoteBehindNat,
        NatTraversal::BothBehindNat => true,
    };
    if allowed {
        return Ok(());
    }
    let what = match status {
        NatStatus::Remote => "the peer is behind NAT",
        NatStatus::Local => "this host is behind NAT",
        NatStatus::Both | NatStatus::None => "this host and the peer are both behind NAT",
    };
    Err(format!(
        "NAT-D shows that {what}, and rule '{rule}' has nat_traversal = \"{}\": set nat_traversal = \"{}\" (in [global] \
         or in the rule) to allow UDP-encapsulated SAs through it",
        setting.name(),
        needed.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CKY_I: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    const CKY_R: [u8; 8] = [9, 10, 11, 12, 13, 14, 15, 16];

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn detection_from_each_side() {
        let alg = HashAlg::Sha256;
        let inside = addr("192.0.2.10:500");
        let public = addr("203.0.113.5:40001");
        let server = addr("198.51.100.2:500");
        // The NATed initiator hashes what it knows: its private address, the server's.
        let [dst, src] = our_nat_d(alg, &CKY_I, &CKY_R, inside, server);
        let got = detect(alg, &CKY_I, &CKY_R, server, public, &[&dst, &src]).unwrap();
        assert_eq!(got, NatStatus::Remote);
        // The server hashes what it sees: the public mapping.
        let [dst, src] = our_nat_d(alg, &CKY_I, &CKY_R, server, public);
        assert_eq!(detect(alg, &CKY_I, &CKY_R, inside, server, &[&dst, &src]).unwrap(), NatStatus::Local);
        // No NAT.
        let [dst, src] = our_nat_d(alg, &CKY_I, &CKY_R, inside, server);
        assert_eq!(detect(alg, &CKY_I, &CKY_R, server, inside, &[&dst, &src]).unwrap(), NatStatus::None);
        // A port change alone is a NAT too.
        let moved = addr("192.0.2.10:501");
        assert_eq!(detect(alg, &CKY_I, &CKY_R, server, moved, &[&dst, &src]).unwrap(), NatStatus::Remote);
        // Several source hashes (a multihomed peer): any may match.
        let other = nat_d(alg, &CKY_I, &CKY_R, addr("192.0.2.99:500"));
        assert_eq!(detect(alg, &CKY_I, &CKY_R, server, inside, &[&dst, &other, &src]).unwrap(), NatStatus::None);
        // Missing or malformed.
        assert_eq!(detect(alg, &CKY_I, &CKY_R, server, inside, &[]).unwrap(), NatStatus::None);
        assert!(detect(alg, &CKY_I, &CKY_R, server, inside, &[&dst]).is_err());
        assert!(detect(alg, &CKY_I, &CKY_R, server, inside, &[&dst, &[1, 2, 3]]).is_err());
        // Another hash length than the negotiated one never matches: both sides look NATed.
        let sha1 = our_nat_d(HashAlg::Sha1, &CKY_I, &CKY_R, inside, server);
        assert_eq!(detect(alg, &CKY_I, &CKY_R, server, inside, &[&sha1[0], &sha1[1]]).unwrap(), NatStatus::Both);
    }

    #[test]
    fn ipv6_hash_covers_16_bytes() {
        let a = nat_d(HashAlg::Sha1, &CKY_I, &CKY_R, addr("[2001:db8::1]:500"));
        let b = nat_d(HashAlg::Sha1, &CKY_I, &CKY_R, addr("[2001:db8::2]:500"));
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn the_setting() {
        use NatTraversal::*;
        for s in [Off, RemoteBehindNat, BothBehindNat] {
            assert!(check_setting(s, NatStatus::None, "r").is_ok());
        }
        let e = check_setting(Off, NatStatus::Remote, "r").unwrap_err();
        assert!(e.contains("peer is behind NAT") && e.contains("nat_traversal = \"remote-behind-nat\""), "{e}");
        assert!(check_setting(RemoteBehindNat, NatStatus::Remote, "r").is_ok());
        for st in [NatStatus::Local, NatStatus::Both] {
            for s in [Off, RemoteBehindNat] {
                let e = check_setting(s, st, "r").unwrap_err();
                assert!(e.contains("nat_traversal = \"both-behind-nat\""), "{e}");
            }
            assert!(check_setting(BothBehindNat, st, "r").is_ok());
        }
    }
}
