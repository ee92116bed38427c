//! Reading and writing AuthIP payload chains for the state machine: one pass over a chain sorts its payloads by
//! kind (order-independent, as [MS-AIPS] gives the figures' order without saying receivers may rely on it), and
//! a builder links payloads into a chain.

use crate::authip::consts::payload;
use crate::authip::{AuthRepr, AuthipNotify, AuthipPayload, AuthipPayloads, GssIdPayload, GssPayload};
use crate::wire::{Emit, PayloadWriter, WireError};

/// The payloads of one chain, by kind.
#[derive(Default)]
pub(crate) struct Got<'a> {
    pub sa: Vec<&'a [u8]>,
    pub ke: Vec<&'a [u8]>,
    pub nonce: Vec<&'a [u8]>,
    pub id: Vec<&'a [u8]>,
    pub hash: Vec<&'a [u8]>,
    pub vid: Vec<&'a [u8]>,
    pub gss: Vec<GssPayload<'a>>,
    pub gss_id: Vec<GssIdPayload<'a>>,
    pub auth: Vec<AuthRepr>,
    pub notify: Vec<AuthipNotify<'a>>,
}

/// Sorts a chain's payloads; the first error of the codec refuses the whole chain.
pub(crate) fn sort(first: u8, chain: &[u8]) -> Result<Got<'_>, WireError> {
    let mut g = Got::default();
    for p in AuthipPayloads::new(first, chain) {
        match p? {
            AuthipPayload::Gss(x) => g.gss.push(x),
            AuthipPayload::GssId(x) => g.gss_id.push(x),
            AuthipPayload::Auth(x) => g.auth.push(x),
            AuthipPayload::Notify(x) => g.notify.push(x),
            // Key dictation is declined (hostsec never dictates and never accepts dictated keys, docs/authip.md
            // E4): its payloads are read for validity and otherwise ignored.
            AuthipPayload::KeyDictation(_) | AuthipPayload::KeyDictationWeight(_) => {}
            AuthipPayload::Ike(raw) => match raw.kind {
                payload::SA => g.sa.push(raw.body),
                payload::KE => g.ke.push(raw.body),
                payload::NONCE => g.nonce.push(raw.body),
                payload::ID => g.id.push(raw.body),
                payload::HASH => g.hash.push(raw.body),
                payload::VENDOR_ID => g.vid.push(raw.body),
                // NAT-D and NAT-OA: hostsec's AuthIP path does not traverse NAT yet (docs/authip.md E6).
                _ => {}
            },
        }
    }
    Ok(g)
}

/// Links `payloads` into a chain; returns the first payload's type and the bytes.
pub(crate) fn build(payloads: &[(u8, &dyn Emit)]) -> Result<(u8, Vec<u8>), String> {
    let len: usize = payloads.iter().map(|(_, e)| e.buffer_len().saturating_add(4)).sum();
    let mut buf = vec![0u8; len];
    let mut w = PayloadWriter::new(&mut buf);
    for (kind, body) in payloads {
        w.push(*kind, *body).map_err(|e| e.to_string())?;
    }
    let first = w.first_payload();
    Ok((first, buf))
}
