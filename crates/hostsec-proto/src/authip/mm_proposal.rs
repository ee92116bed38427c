//! The AuthIP Main Mode SA payload ([MS-AIPS] §3.2.4, §3.3.5.1): "identical to the IKE SA payload" (one ISAKMP
//! proposal of KEY_IKE transforms), built from the rule's encryption group, with two AuthIP rules: the
//! authentication methods travel in the Auth payload, not in the transforms (so no Authentication-Method
//! attribute is sent, and one received is ignored: docs/authip.md E2); and a method without Diffie-Hellman (TLS)
//! carries Group-Description 0 in every transform, a method with one (Anonymous) the same group in every
//! transform.
//!
//! **Experimental — not yet verified against Windows.**

use crate::crypto::{DhGroup, HashAlg, IkeCipher, MainModeSuite, StrengthLevel};
use crate::wire::consts::{ike_attr, ike_encr, life_type, protocol, DOI_IPSEC, KEY_IKE, SIT_IDENTITY_ONLY};
use crate::wire::{AttributeRepr, ProposalRepr, SaRepr, TransformRepr};
use std::time::Duration;

/// What one AuthIP Main Mode transform means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthipSuite {
    /// Cipher (AES-CBC).
    pub cipher: IkeCipher,
    /// Hash (and PRF).
    pub hash: HashAlg,
    /// DH group, `None` for Group-Description 0 (no Diffie-Hellman).
    pub group: Option<DhGroup>,
}

impl std::fmt::Display for AuthipSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.group {
            Some(g) => write!(f, "{}, {}, {}", self.cipher, self.hash, g),
            None => write!(f, "{}, {}, no DH", self.cipher, self.hash),
        }
    }
}

/// Whether a suite meets `level`. Without DH only the cipher and hash are judged (the level's group rule has
/// nothing to judge: the MM keys then rest on the GSS-API secret).
pub fn check_suite(level: StrengthLevel, s: AuthipSuite) -> Result<(), String> {
    // The strongest group stands in for "no group", so only the cipher and hash can fall short.
    let group = s.group.unwrap_or(DhGroup::Ecp384);
    level.check_main_mode(MainModeSuite { cipher: s.cipher, hash: s.hash, group })
}

/// The suites a rule offers: the level's Main Mode suites with one group (the level's first: [MS-AIPS] §3.2.4
/// wants the same group in every proposal) when `dh`, or without any group.
pub fn offer_suites(level: StrengthLevel, dh: bool) -> Vec<AuthipSuite> {
    let all = level.main_mode_suites();
    let first_group = all.first().map(|s| s.group);
    let mut out: Vec<AuthipSuite> = Vec::new();
    for s in all {
        let suite = AuthipSuite { cipher: s.cipher, hash: s.hash, group: if dh { Some(s.group) } else { None } };
        if (dh && Some(s.group) != first_group) || out.contains(&suite) {
            continue;
        }
        out.push(suite);
    }
    out
}

/// The SA payload offering `suites`.
pub fn offer(suites: &[AuthipSuite], lifetime: Duration) -> SaRepr {
    let transforms = suites
        .iter()
        .enumerate()
        .map(|(i, s)| TransformRepr {
            number: (i + 1).min(255) as u8,
            transform_id: KEY_IKE,
            attributes: vec![
                AttributeRepr::Basic { kind: ike_attr::ENCRYPTION, value: ike_encr::AES_CBC },
                AttributeRepr::Basic { kind: ike_attr::KEY_LENGTH, value: s.cipher.key_bits() },
                AttributeRepr::Basic { kind: ike_attr::HASH, value: s.hash.ike_id() },
                AttributeRepr::Basic { kind: ike_attr::GROUP_DESCRIPTION, value: s.group.map_or(0, DhGroup::id) },
                AttributeRepr::Basic { kind: ike_attr::LIFE_TYPE, value: life_type::SECONDS },
                AttributeRepr::number(ike_attr::LIFE_DURATION, lifetime.as_secs()),
            ],
        })
        .collect();
    SaRepr {
        doi: DOI_IPSEC,
        situation: SIT_IDENTITY_ONLY,
        proposals: vec![ProposalRepr { number: 1, protocol_id: protocol::ISAKMP, spi: Vec::new(), transforms }],
    }
}

fn attr(a: &AttributeRepr) -> (u16, Option<u64>) {
    match a {
        AttributeRepr::Basic { kind, value } => (*kind, Some(u64::from(*value))),
        AttributeRepr::Variable { kind, value } => {
            let n =
                (1..=8).contains(&value.len()).then(|| value.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)));
            (*kind, n)
        }
    }
}

/// Reads one transform; `Err` says what hostsec does not accept in it.
pub fn read_transform(t: &TransformRepr) -> Result<(AuthipSuite, Option<u64>), String> {
    if t.transform_id != KEY_IKE {
        return Err(format!("transform ID {} is not KEY_IKE", t.transform_id));
    }
    let (mut encr, mut bits, mut hash, mut group, mut life_kind, mut life) = (None, None, None, None, None, None);
    for a in &t.attributes {
        match attr(a) {
            (ike_attr::ENCRYPTION, Some(v)) => encr = Some(v),
            (ike_attr::KEY_LENGTH, Some(v)) => bits = Some(v),
            (ike_attr::HASH, Some(v)) => hash = Some(v),
            (ike_attr::GROUP_DESCRIPTION, Some(v)) => group = Some(v),
            (ike_attr::AUTH_METHOD, _) => {}
            (ike_attr::LIFE_TYPE, Some(v)) => life_kind = Some(v),
            (ike_attr::LIFE_DURATION, Some(v)) => {
                if life_kind == Some(u64::from(life_type::SECONDS)) {
                    life = Some(v)
                }
            }
            (k, _) => return Err(format!("attribute type {k} is not supported")),
        }
    }
    let cipher = match (encr.map(|e| e as u16), bits) {
        (Some(ike_encr::AES_CBC), Some(b)) => IkeCipher::from_ike_attrs(ike_encr::AES_CBC, u16::try_from(b).ok())
            .ok_or_else(|| format!("AES-CBC with a {b}-bit key is not supported"))?,
        (Some(ike_encr::AES_CBC), None) => return Err("AES-CBC without a key length".into()),
        (Some(e), _) => return Err(format!("encryption algorithm {e} is not supported (AES-CBC only)")),
        (None, _) => return Err("no encryption algorithm".into()),
    };
    let hash_id = hash.ok_or("no hash algorithm")?;
    let hash = HashAlg::from_ike_id(hash_id as u16).ok_or_else(|| format!("hash {hash_id} is not supported"))?;
    let group = match group.unwrap_or(0) {
        0 => None,
        g => Some(DhGroup::from_id(g as u16).ok_or_else(|| format!("DH group {g} is not supported"))?),
    };
    Ok((AuthipSuite { cipher, hash, group }, life))
}

/// The responder's choice: the first transform of the peer's offer that meets `level`, with DH exactly when
/// the method needs it (`dh`). Returns the suite, the peer's lifetime, and the one-transform SA payload to
/// answer with; `Err` lists why each transform fell short.
pub fn choose(sa_body: &[u8], level: StrengthLevel, dh: bool) -> Result<(AuthipSuite, Option<u64>, SaRepr), String> {
    let sa = SaRepr::parse(sa_body).map_err(|e| format!("malformed SA payload: {e}"))?;
    if sa.doi != DOI_IPSEC {
        return Err(format!("DOI {} is not the IPsec DOI", sa.doi));
    }
    let mut why = Vec::new();
    for p in &sa.proposals {
        if p.protocol_id != protocol::ISAKMP {
            why.push(format!("proposal {}: protocol {} is not ISAKMP", p.number, p.protocol_id));
            continue;
        }
        for t in &p.transforms {
            let problem = match read_transform(t) {
                Err(e) => Some(e),
                Ok((s, _)) if s.group.is_some() != dh => Some(if dh {
                    "no DH group, and the method (Anonymous) needs one".to_string()
                } else {
                    "a DH group, and the method (TLS) has none".to_string()
                }),
                Ok((s, life)) => match check_suite(level, s) {
                    Err(e) => Some(e),
                    Ok(()) => {
                        let reply = SaRepr {
                            doi: sa.doi,
                            situation: sa.situation,
                            proposals: vec![ProposalRepr {
                                number: p.number,
                                protocol_id: p.protocol_id,
                                spi: p.spi.clone(),
                                transforms: vec![t.clone()],
                            }],
                        };
                        return Ok((s, life, reply));
                    }
                },
            };
            if let Some(e) = problem {
                why.push(format!("transform {}: {e}", t.number));
            }
        }
    }
    if why.is_empty() {
        why.push("the SA payload holds no proposal".into());
    }
    Err(why.join("; "))
}

/// Checks the responder's answer: one transform, one we offered.
pub fn accept_reply(sa_body: &[u8], offered: &[AuthipSuite]) -> Result<AuthipSuite, String> {
    let (_, t) = crate::ike::proposal::single_transform(sa_body)?;
    let (s, _) = read_transform(&t)?;
    if !offered.contains(&s) {
        return Err(format!("the peer chose {s}, which we did not offer"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Emit;

    fn body(sa: &SaRepr) -> Vec<u8> {
        let mut v = vec![0; sa.buffer_len()];
        sa.emit(&mut v).unwrap();
        v
    }

    #[test]
    fn offers_meet_the_level_and_one_group() {
        for level in [StrengthLevel::Standard, StrengthLevel::High, StrengthLevel::Highest] {
            for dh in [false, true] {
                let suites = offer_suites(level, dh);
                assert!(!suites.is_empty());
                assert!(suites.iter().all(|s| check_suite(level, *s).is_ok()));
                let groups: std::collections::HashSet<_> = suites.iter().map(|s| s.group).collect();
                assert_eq!(groups.len(), 1, "one group (or none) in every transform");
                assert_eq!(suites[0].group.is_some(), dh);
                let sa = offer(&suites, Duration::from_secs(28800));
                let (chosen, life, reply) = choose(&body(&sa), level, dh).unwrap();
                assert_eq!(chosen, suites[0]);
                assert_eq!(life, Some(28800));
                assert_eq!(accept_reply(&body(&reply), &suites).unwrap(), chosen);
            }
        }
    }

    #[test]
    fn refusals_say_why() {
        let weak = offer_suites(StrengthLevel::Standard, false);
        let sha1: Vec<_> = weak.into_iter().filter(|s| s.hash == HashAlg::Sha1).collect();
        let e = choose(&body(&offer(&sha1, Duration::from_secs(60))), StrengthLevel::High, false).unwrap_err();
        assert!(e.contains("below level high"), "{e}");
        let tls = offer_suites(StrengthLevel::High, false);
        let e = choose(&body(&offer(&tls, Duration::from_secs(60))), StrengthLevel::High, true).unwrap_err();
        assert!(e.contains("needs one"), "{e}");
        let anon = offer_suites(StrengthLevel::High, true);
        let e = choose(&body(&offer(&anon, Duration::from_secs(60))), StrengthLevel::High, false).unwrap_err();
        assert!(e.contains("has none"), "{e}");
        let other = offer_suites(StrengthLevel::Highest, true);
        assert!(accept_reply(&body(&offer(&other[..1], Duration::from_secs(60))), &anon).is_err());
    }
}
