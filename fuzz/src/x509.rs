//! The bodies of the certificate targets (`cert_parse`, `peer_id`, `chain_validate`): certificate, CRL and key
//! files and CERT payload contents are hostile input (a peer sends its chain in Main Mode before anything about it
//! is known), so besides "never panics" each checks what must hold of whatever is accepted.

use crate::fixtures::{self, fixtures, Chain};
use hostsec_proto::crypto::{AuthMethod, SigningKey};
use hostsec_proto::pki::{
    certificates_from_pem_or_der, check_peer_id, crls_from_pem_or_der, dn_matches_text, format_utc,
    private_key_from_pem_or_der, CertInfo, PeerId, TrustStore, ValidatedPeer,
};
use hostsec_proto::wire::IdPayload;
use std::net::IpAddr;

/// The most pieces an input is split into: more than a Main Mode message carries CERT payloads in practice, and
/// above webpki's bound of 6 intermediates.
const MAX_PIECES: usize = 12;

/// The most edits one input makes to a valid certificate.
const MAX_EDITS: usize = 32;

/// Splits `data` into records `[len: u16 BE][bytes]`; a length past the end takes what is left.
pub fn pieces(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while out.len() < MAX_PIECES {
        let Some((len, rest)) = data.split_first_chunk::<2>() else { break };
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (piece, rest) = rest.split_at(len);
        out.push(piece);
        data = rest;
    }
    out
}

/// One certificate's fields as they must survive a round trip, everything but the DER itself.
fn fields(c: &CertInfo) -> CertInfo {
    CertInfo { der: Vec::new(), ..c.clone() }
}

/// A file or payload as certificates, CRLs, a CA file and a private key, each parser on the same bytes.
pub fn cert_parse(data: &[u8]) {
    if let Ok(info) = CertInfo::parse(data) {
        assert_eq!(info.der, data, "a parsed certificate is the whole input");
        assert_eq!(CertInfo::parse(&info.der).as_ref(), Ok(&info), "parsing is a function of the bytes");
        assert_eq!(info.is_self_issued(), info.subject_der == info.issuer_der);
        // The texts that `hostsec certs` and the logs show.
        std::hint::black_box((format_utc(info.not_before), format_utc(info.not_after), info.valid_at(0)));
    }
    if let Ok(certs) = certificates_from_pem_or_der(data) {
        assert!(!certs.is_empty());
        for der in &certs {
            if let Err(e) = CertInfo::parse(der) {
                std::hint::black_box(e.to_string());
            }
        }
    }
    let mut store = TrustStore::new();
    match store.add_cas(data) {
        Ok(n) => {
            assert_eq!(store.cas().len(), n);
            assert!(store.cas().iter().all(|c| c.is_ca || c.is_self_issued()), "only CAs become trust anchors");
            assert_eq!(store.ca_names().count(), n);
        }
        Err(e) => {
            assert!(store.cas().is_empty(), "a refused CA file adds nothing");
            std::hint::black_box(e.to_string());
        }
    }
    if crls_from_pem_or_der(data).is_ok() {
        match store.add_crls(data) {
            Ok(n) => assert_eq!(store.crls().len(), n),
            Err(e) => {
                assert!(store.crls().is_empty(), "a refused CRL file adds nothing");
                std::hint::black_box(e.to_string());
            }
        }
    }
    if let Ok(key) = private_key_from_pem_or_der(data) {
        if let Ok(signing) = SigningKey::from_der(&key) {
            // A key that loads must sign, and its own public half must accept the signature.
            let hash = [0x5a_u8; 48];
            let hash = if signing.auth_method() == AuthMethod::EcdsaP384 { &hash[..] } else { &hash[..32] };
            let sig = signing.sign(hash).expect("a loaded key signs");
            let public = signing.verifying_key().expect("a loaded key has a public half");
            assert!(public.verify(hash, &sig).is_ok(), "{}: own signature refused", signing.description());
        }
    }
}

/// The fixed peer's identity checks. Input: a mode byte, then for mode 0 an ID payload body, for mode 1 a DER
/// Name, a zero byte and a DN text.
pub fn peer_id(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else { return };
    let peer = &fixtures().peer;
    if mode % 2 == 0 {
        id_payload(peer, rest);
    } else {
        let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        let (der, text) = rest.split_at(split);
        let text = String::from_utf8_lossy(text.get(1..).unwrap_or_default());
        dn_text(peer, der, &text);
    }
}

fn id_payload(peer: &ValidatedPeer, body: &[u8]) {
    let Ok(payload) = IdPayload::parse(body) else { return };
    let id = PeerId::from_payload(&payload);
    let shown = id.to_string();
    let verdict = check_peer_id(peer, &id);
    if let Err(e) = &verdict {
        std::hint::black_box(e.to_string());
    }
    match &id {
        PeerId::Dn(der) => {
            if der == &peer.subject_der {
                assert!(verdict.is_ok(), "the certificate's own subject is refused");
            }
            if verdict.is_ok() {
                let text = shown.strip_prefix("dn:").expect("a DN shows as dn:");
                assert!(dn_matches_text(&peer.subject_der, text), "accepted DN {shown} does not read as the subject");
            }
        }
        PeerId::Fqdn(name) => {
            let name = name.trim_end_matches('.');
            let in_san = peer.san_dns.iter().any(|d| d.eq_ignore_ascii_case(name));
            assert_eq!(verdict.is_ok(), in_san, "{shown}: FQDNs come from the subjectAltName only");
        }
        PeerId::Ip(addr) => {
            assert_eq!(verdict.is_ok(), peer.san_ips.contains(addr), "{shown}");
            assert!(matches!(addr, IpAddr::V4(_)) == (payload.data.len() == 4), "{shown}");
        }
        PeerId::Other { .. } => assert!(verdict.is_err(), "{shown}: only DN, FQDN and IP can be vouched for"),
    }
    // The same bytes as a DN against the subject's text, whatever the ID type says.
    dn_text(peer, payload.data, &peer.subject_dn);
}

fn dn_text(peer: &ValidatedPeer, der: &[u8], text: &str) {
    let matches = dn_matches_text(der, text);
    if matches {
        // A Name that matched some text reads back as itself.
        let shown = PeerId::Dn(der.to_vec()).to_string();
        let own = shown.strip_prefix("dn:").expect("a DN shows as dn:");
        assert!(dn_matches_text(der, own), "{shown} does not match its own text");
    }
    if dn_matches_text(&peer.subject_der, text) {
        // Values compare without case and with escapes resolved (`\l`, `\6c`: both an `l`); whatever matches the
        // subject names the host and its organisation.
        let lower = unescape(text).to_lowercase();
        assert!(lower.contains("host.fuzz.example") && lower.contains("hostsec fuzz"), "{text:?}");
    }
}

/// The text with DN escapes resolved as identity matching reads them (RFC 4514 `\` + hex pair, or `\` + any
/// character for itself).
fn unescape(text: &str) -> String {
    let (bytes, mut out, mut i) = (text.as_bytes(), Vec::new(), 0);
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let pair = bytes
            .get(i..i + 2)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok());
        if let Some(byte) = pair.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            out.push(byte);
            i += 2;
        } else if let Some(&next) = bytes.get(i) {
            out.push(next);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `TrustStore::validate_chain` on the fixed store. The first byte picks the mode (low 2 bits) and the time
/// (next 2 bits, [`fixtures::TIMES`]):
/// - 0: the rest is pieces (see [`pieces`]): the end entity, then the intermediates;
/// - 1: a valid chain with edits (see [`mutate`]);
/// - 2: the fuzz host with the pieces as its intermediates;
/// - 3: the first piece as end entity with the fuzz intermediate after the other pieces.
pub fn chain_validate(data: &[u8]) {
    let Some((control, rest)) = data.split_first() else { return };
    let fx = fixtures();
    let now = fixtures::at(fixtures::TIMES[usize::from(control >> 2) % fixtures::TIMES.len()]);
    match control % 4 {
        0 => {
            let parts = pieces(rest);
            if let Some((ee, intermediates)) = parts.split_first() {
                validate(&fx.trust, ee, intermediates, now);
            }
        }
        1 => mutate(&fx.trust, &fx.chains, rest, now),
        2 => {
            let host = &fx.chains[0].leaf;
            validate(&fx.trust, host, &pieces(rest), now);
        }
        _ => {
            let mut parts = pieces(rest);
            if parts.is_empty() {
                return;
            }
            parts.push(fixtures::intermediate());
            validate(&fx.trust, parts[0], &parts[1..], now);
        }
    }
}

/// Validates and checks what any accepted chain must satisfy.
fn validate(trust: &TrustStore, ee: &[u8], intermediates: &[&[u8]], now: std::time::SystemTime) -> bool {
    match trust.validate_chain(ee, intermediates, now) {
        Ok(peer) => {
            let info = CertInfo::parse(ee).expect("an accepted end entity parses");
            assert_eq!(peer.subject_der, info.subject_der);
            assert_eq!((&peer.san_dns, &peer.san_ips), (&info.san_dns, &info.san_ips));
            assert!(!info.is_ca, "a CA accepted as end entity");
            assert!(peer.path.len() >= 2 && peer.path.len() <= 2 + hostsec_proto::pki::MAX_INTERMEDIATES);
            let anchor = peer.path.last().expect("a path");
            assert!(trust.cas().iter().any(|c| &c.subject_dn == anchor), "path ends at {anchor}, not a trusted CA");
            true
        }
        Err(e) => {
            std::hint::black_box(e.to_string());
            false
        }
    }
}

/// A valid chain with a certificate edited: `[chain][which cert]`, then edits `[op|offset: u16 BE][value]`: the
/// top two bits of the offset choose overwrite, xor, truncate or insert at `offset % len`. Signatures cover the
/// whole tbsCertificate, so an edited chain that still validates must read exactly as the original.
fn mutate(trust: &TrustStore, chains: &[Chain], data: &[u8], now: std::time::SystemTime) {
    let [pick, which, edits @ ..] = data else { return };
    let chain = &chains[usize::from(*pick) % chains.len()];
    let mut certs: Vec<Vec<u8>> =
        std::iter::once(chain.leaf.clone()).chain(chain.intermediates.iter().cloned()).collect();
    let target = usize::from(*which) % certs.len();
    let cert = &mut certs[target];
    for edit in edits.chunks_exact(3).take(MAX_EDITS) {
        let (word, value) = (u16::from_be_bytes([edit[0], edit[1]]), edit[2]);
        if cert.is_empty() {
            break;
        }
        let at = usize::from(word & 0x3fff) % cert.len();
        match word >> 14 {
            0 => cert[at] = value,
            1 => cert[at] ^= value,
            2 => cert.truncate(at),
            _ => cert.insert(at, value),
        }
    }
    let intermediates: Vec<&[u8]> = certs[1..].iter().map(Vec::as_slice).collect();
    if validate(trust, &certs[0], &intermediates, now) {
        let original = if target == 0 { &chain.leaf } else { &chain.intermediates[target - 1] };
        let before = CertInfo::parse(original).expect("fixture parses");
        // Every fixture chain needs all of its certificates, so the edited one was on the path and must parse.
        let after = CertInfo::parse(&certs[target]).expect("an accepted chain's certificate parses");
        assert_eq!(fields(&after), fields(&before), "an edited certificate validated with other contents");
    }
}
