//! Proposals: strength levels turned into SA payloads (what we offer), the choice among a peer's offers (first
//! one that meets the rule, with a reason for each one that does not), and the check of a peer's answer.

use crate::crypto::{
    AuthMethod, DhGroup, EspCipher, EspIntegrity, EspTransform, HashAlg, IkeCipher, MainModeSuite, StrengthLevel,
};
use crate::wire::consts::{
    auth_method, dh_group, encap_mode, esp_transform, ike_attr, ike_encr, ike_hash, ipsec_attr, ipsec_auth, life_type,
    protocol, DOI_IPSEC, KEY_IKE, SIT_IDENTITY_ONLY,
};
use crate::wire::{AttributeRepr, ProposalRepr, SaRepr, TransformRepr};
use std::time::Duration;

/// What one Main Mode transform means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MainModeChoice {
    /// Cipher, hash, group.
    pub suite: MainModeSuite,
    /// Authentication method.
    pub auth: AuthMethod,
    /// Lifetime in seconds, if the transform carried one.
    pub lifetime_s: Option<u64>,
}

/// What one ESP transform means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuickModeChoice {
    /// Cipher and integrity.
    pub transform: EspTransform,
    /// PFS group (Group Description attribute), if any.
    pub pfs: Option<DhGroup>,
    /// Encapsulation mode attribute.
    pub encap: u16,
    /// Lifetime in seconds, if carried.
    pub lifetime_s: Option<u64>,
    /// Lifetime in kilobytes, if carried.
    pub lifetime_kb: Option<u64>,
}

/// The Main Mode SA payload hostsec offers: one ISAKMP proposal, one transform per suite of the level and per
/// authentication method (in the given order of preference).
pub(crate) fn main_mode_offer(suites: &[MainModeSuite], auths: &[AuthMethod], lifetime: Duration) -> SaRepr {
    let mut transforms = Vec::new();
    for auth in auths {
        for &suite in suites {
            let number = (transforms.len() + 1).min(255) as u8;
            transforms.push(TransformRepr {
                number,
                transform_id: KEY_IKE,
                attributes: vec![
                    AttributeRepr::Basic { kind: ike_attr::ENCRYPTION, value: ike_encr::AES_CBC },
                    AttributeRepr::Basic { kind: ike_attr::KEY_LENGTH, value: suite.cipher.key_bits() },
                    AttributeRepr::Basic { kind: ike_attr::HASH, value: suite.hash.ike_id() },
                    AttributeRepr::Basic { kind: ike_attr::AUTH_METHOD, value: auth.id() },
                    AttributeRepr::Basic { kind: ike_attr::GROUP_DESCRIPTION, value: suite.group.id() },
                    AttributeRepr::Basic { kind: ike_attr::LIFE_TYPE, value: life_type::SECONDS },
                    AttributeRepr::number(ike_attr::LIFE_DURATION, lifetime.as_secs()),
                ],
            });
        }
    }
    SaRepr {
        doi: DOI_IPSEC,
        situation: SIT_IDENTITY_ONLY,
        proposals: vec![ProposalRepr { number: 1, protocol_id: protocol::ISAKMP, spi: Vec::new(), transforms }],
    }
}

/// Reads a Main Mode transform; `Err` says what hostsec does not accept in it.
pub(crate) fn read_main_mode_transform(t: &TransformRepr) -> Result<MainModeChoice, String> {
    if t.transform_id != KEY_IKE {
        return Err(format!("transform ID {} is not KEY_IKE", t.transform_id));
    }
    let (mut encr, mut key_bits, mut hash, mut auth, mut group, mut life_kind, mut lifetime_s) =
        (None, None, None, None, None, None, None);
    for a in &t.attributes {
        let (kind, value) = attr_number(a);
        match (kind, value) {
            (ike_attr::ENCRYPTION, Some(v)) => encr = Some(v),
            (ike_attr::KEY_LENGTH, Some(v)) => key_bits = Some(v),
            (ike_attr::HASH, Some(v)) => hash = Some(v),
            (ike_attr::AUTH_METHOD, Some(v)) => auth = Some(v),
            (ike_attr::GROUP_DESCRIPTION, Some(v)) => group = Some(v),
            (ike_attr::LIFE_TYPE, Some(v)) => life_kind = Some(v),
            (ike_attr::LIFE_DURATION, Some(v)) => match life_kind {
                Some(k) if k == u64::from(life_type::SECONDS) => lifetime_s = Some(v),
                // A lifetime in kilobytes for the ISAKMP SA has no meaning for hostsec; it is ignored.
                Some(k) if k == u64::from(life_type::KILOBYTES) => {}
                _ => return Err("life duration without a life type".into()),
            },
            (ike_attr::GROUP_TYPE, _) | (ike_attr::FIELD_SIZE, _) | (ike_attr::GROUP_ORDER, _) => {
                return Err("a custom (non-IANA) DH group is never accepted".into())
            }
            (ike_attr::PRF, _) => return Err("the PRF attribute is not supported (HMAC of the hash is used)".into()),
            (k, _) => return Err(format!("unknown attribute type {k}")),
        }
    }
    let encr = encr.ok_or("no encryption algorithm")?;
    let cipher = match encr as u16 {
        ike_encr::AES_CBC => match key_bits {
            None => return Err("AES-CBC without a key length".into()),
            Some(bits) => IkeCipher::from_ike_attrs(ike_encr::AES_CBC, u16::try_from(bits).ok())
                .ok_or_else(|| format!("AES-CBC with a {bits}-bit key is not supported"))?,
        },
        ike_encr::TRIPLE_DES_CBC => return Err("3DES-CBC is never accepted (64-bit block)".into()),
        ike_encr::DES_CBC => return Err("DES-CBC is never accepted".into()),
        other => return Err(format!("encryption algorithm {} is not supported", ike_encr_name(other))),
    };
    let hash_id = hash.ok_or("no hash algorithm")?;
    let hash = HashAlg::from_ike_id(hash_id as u16).ok_or_else(|| match hash_id as u16 {
        ike_hash::MD5 => "MD5 is never accepted".to_string(),
        other => format!("hash {} is not supported", ike_hash_name(other)),
    })?;
    let group_id = group.ok_or("no Diffie-Hellman group")?;
    let group = DhGroup::from_id(group_id as u16).ok_or_else(|| dh_refusal(group_id as u16))?;
    let auth_id = auth.ok_or("no authentication method")?;
    let auth = AuthMethod::from_id(auth_id as u16).ok_or_else(|| match auth_id as u16 {
        auth_method::XAUTH_INIT_PSK => "XAUTH is not supported".to_string(),
        auth_method::RSA_ENC | auth_method::RSA_ENC_REV => "RSA encryption authentication is not supported".to_string(),
        auth_method::DSS_SIG => "DSS signatures are not supported".to_string(),
        other => format!("authentication method {other} is not supported"),
    })?;
    Ok(MainModeChoice { suite: MainModeSuite { cipher, hash, group }, auth, lifetime_s })
}

fn dh_refusal(id: u16) -> String {
    match id {
        dh_group::MODP_768 | dh_group::MODP_1024 | dh_group::MODP_1536 | dh_group::MODP_1024_S160 => {
            format!("DH group {id} is never accepted (too weak)")
        }
        other => format!("DH group {other} is not supported"),
    }
}

fn ike_encr_name(v: u16) -> String {
    match v {
        ike_encr::IDEA_CBC => "IDEA-CBC".into(),
        ike_encr::BLOWFISH_CBC => "Blowfish-CBC".into(),
        ike_encr::RC5_R16_B64_CBC => "RC5".into(),
        ike_encr::CAST_CBC => "CAST-CBC".into(),
        other => other.to_string(),
    }
}

fn ike_hash_name(v: u16) -> String {
    match v {
        ike_hash::TIGER => "Tiger".into(),
        ike_hash::SHA2_512 => "SHA2-512".into(),
        other => other.to_string(),
    }
}

fn attr_number(a: &AttributeRepr) -> (u16, Option<u64>) {
    match a {
        AttributeRepr::Basic { kind, value } => (*kind, Some(u64::from(*value))),
        AttributeRepr::Variable { kind, value } if !value.is_empty() && value.len() <= 8 => {
            (*kind, Some(value.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))))
        }
        AttributeRepr::Variable { kind, .. } => (*kind, None),
    }
}

/// A short description of a Main Mode transform for logs (`aes-cbc-256/sha256/ecp256/psk`), best effort for
/// transforms hostsec does not implement.
fn describe_main_mode(t: &TransformRepr) -> String {
    let mut parts = Vec::new();
    for a in &t.attributes {
        let (kind, v) = attr_number(a);
        let v = v.unwrap_or(0);
        parts.push(match kind {
            ike_attr::ENCRYPTION => match v as u16 {
                ike_encr::AES_CBC => "aes-cbc".into(),
                ike_encr::TRIPLE_DES_CBC => "3des-cbc".into(),
                ike_encr::DES_CBC => "des-cbc".into(),
                o => format!("encr{o}"),
            },
            ike_attr::KEY_LENGTH => format!("{v}bit"),
            ike_attr::HASH => match HashAlg::from_ike_id(v as u16) {
                Some(h) => h.name().into(),
                None if v as u16 == ike_hash::MD5 => "md5".into(),
                None => format!("hash{v}"),
            },
            ike_attr::GROUP_DESCRIPTION => match DhGroup::from_id(v as u16) {
                Some(g) => g.name().into(),
                None => format!("dh{v}"),
            },
            ike_attr::AUTH_METHOD => match AuthMethod::from_id(v as u16) {
                Some(m) => m.name().into(),
                None => format!("auth{v}"),
            },
            _ => continue,
        });
    }
    parts.join("/")
}

/// Outcome of choosing among a peer's Main Mode offer.
pub(crate) struct MainModeSelection {
    /// What was chosen.
    pub choice: MainModeChoice,
    /// The SA payload to answer with (the chosen transform as the peer sent it).
    pub reply: SaRepr,
}

/// Chooses the first transform of the peer's Main Mode offer that meets `level` and uses one of `auths`.
/// `Err` lists each transform and why it fell short.
pub(crate) fn choose_main_mode(
    sa_body: &[u8],
    level: StrengthLevel,
    auths: &[AuthMethod],
) -> Result<MainModeSelection, Vec<String>> {
    let sa = SaRepr::parse(sa_body).map_err(|e| vec![format!("malformed SA payload: {e}")])?;
    if sa.doi != DOI_IPSEC {
        return Err(vec![format!("DOI {} is not the IPsec DOI", sa.doi)]);
    }
    if sa.situation != SIT_IDENTITY_ONLY {
        return Err(vec![format!("situation {:#x} is not SIT_IDENTITY_ONLY", sa.situation)]);
    }
    let mut why = Vec::new();
    for p in &sa.proposals {
        if p.protocol_id != protocol::ISAKMP {
            why.push(format!("proposal {}: protocol {} is not ISAKMP", p.number, p.protocol_id));
            continue;
        }
        for t in &p.transforms {
            let desc = describe_main_mode(t);
            match read_main_mode_transform(t) {
                Err(e) => why.push(format!("transform {} ({desc}): {e}", t.number)),
                Ok(c) => {
                    if let Err(e) = level.check_main_mode(c.suite) {
                        why.push(format!("transform {} ({desc}): {e}", t.number));
                    } else if !auths.contains(&c.auth) {
                        let names: Vec<&str> = auths.iter().map(|a| a.name()).collect();
                        why.push(format!(
                            "transform {} ({desc}): authentication {} is not what the rule uses ({})",
                            t.number,
                            c.auth,
                            names.join(", ")
                        ));
                    } else {
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
                        return Ok(MainModeSelection { choice: c, reply });
                    }
                }
            }
        }
    }
    if why.is_empty() {
        why.push("the SA payload holds no proposal".into());
    }
    Err(why)
}

/// The one proposal and one transform of a responder's SA payload (RFC 2408 §4.2: the answer names the choice).
pub(crate) fn single_transform(sa_body: &[u8]) -> Result<(ProposalRepr, TransformRepr), String> {
    let sa = SaRepr::parse(sa_body).map_err(|e| format!("malformed SA payload: {e}"))?;
    let [p] = sa.proposals.as_slice() else {
        return Err(format!("the answer holds {} proposals instead of one", sa.proposals.len()));
    };
    let [t] = p.transforms.as_slice() else {
        return Err(format!("the answer holds {} transforms instead of one", p.transforms.len()));
    };
    Ok((p.clone(), t.clone()))
}

/// Checks the responder's Main Mode answer: exactly one transform, and one that we offered.
pub(crate) fn accept_main_mode_reply(sa_body: &[u8], offered: &SaRepr) -> Result<MainModeChoice, String> {
    let (_, t) = single_transform(sa_body)?;
    let choice = read_main_mode_transform(&t)?;
    let ours = offered.proposals.iter().flat_map(|p| &p.transforms).filter_map(|t| read_main_mode_transform(t).ok());
    if !ours.into_iter().any(|o| o.suite == choice.suite && o.auth == choice.auth) {
        return Err(format!("the peer chose {} which we did not offer", describe_main_mode(&t)));
    }
    Ok(choice)
}

/// The Quick Mode SA payload hostsec offers: one ESP proposal with our inbound SPI and one transform per ESP
/// transform of the level, each with the PFS group when there is one, and the encapsulation mode `encap`
/// (transport, or UDP-encapsulated transport in the numbering of the peer's NAT-T version when a NAT is on the
/// path).
pub(crate) fn quick_mode_offer(
    esp: &[EspTransform],
    spi: [u8; 4],
    pfs: Option<DhGroup>,
    lifetime: Duration,
    lifetime_kb: u64,
    encap: u16,
) -> SaRepr {
    let transforms = esp
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut attributes = vec![
                AttributeRepr::Basic { kind: ipsec_attr::SA_LIFE_TYPE, value: life_type::SECONDS },
                AttributeRepr::number(ipsec_attr::SA_LIFE_DURATION, lifetime.as_secs()),
                AttributeRepr::Basic { kind: ipsec_attr::SA_LIFE_TYPE, value: life_type::KILOBYTES },
                AttributeRepr::number(ipsec_attr::SA_LIFE_DURATION, lifetime_kb),
            ];
            if let Some(g) = pfs {
                attributes.push(AttributeRepr::Basic { kind: ipsec_attr::GROUP_DESCRIPTION, value: g.id() });
            }
            attributes.push(AttributeRepr::Basic { kind: ipsec_attr::ENCAPSULATION_MODE, value: encap });
            if let Some(a) = t.integrity.auth_alg() {
                attributes.push(AttributeRepr::Basic { kind: ipsec_attr::AUTH_ALGORITHM, value: a });
            }
            attributes.push(AttributeRepr::Basic { kind: ipsec_attr::KEY_LENGTH, value: t.cipher.key_bits() });
            TransformRepr { number: (i + 1) as u8, transform_id: t.cipher.transform_id(), attributes }
        })
        .collect();
    SaRepr {
        doi: DOI_IPSEC,
        situation: SIT_IDENTITY_ONLY,
        proposals: vec![ProposalRepr { number: 1, protocol_id: protocol::ESP, spi: spi.to_vec(), transforms }],
    }
}

/// Reads an ESP transform; `Err` says what hostsec does not accept in it.
pub(crate) fn read_esp_transform(t: &TransformRepr) -> Result<QuickModeChoice, String> {
    let (mut key_bits, mut auth, mut group, mut encap, mut life_kind) = (None, None, None, None, None);
    let (mut lifetime_s, mut lifetime_kb) = (None, None);
    for a in &t.attributes {
        let (kind, value) = attr_number(a);
        match (kind, value) {
            (ipsec_attr::SA_LIFE_TYPE, Some(v)) => life_kind = Some(v),
            (ipsec_attr::SA_LIFE_DURATION, Some(v)) => match life_kind.map(|k| k as u16) {
                Some(life_type::SECONDS) => lifetime_s = Some(v),
                Some(life_type::KILOBYTES) => lifetime_kb = Some(v),
                _ => return Err("life duration without a life type".into()),
            },
            (ipsec_attr::GROUP_DESCRIPTION, Some(v)) => group = Some(v as u16),
            (ipsec_attr::ENCAPSULATION_MODE, Some(v)) => encap = Some(v as u16),
            (ipsec_attr::AUTH_ALGORITHM, Some(v)) => auth = Some(v as u16),
            (ipsec_attr::KEY_LENGTH, Some(v)) => key_bits = Some(v as u16),
            (ipsec_attr::EXTENDED_SEQUENCE_NUMBER, Some(0)) => {}
            (ipsec_attr::EXTENDED_SEQUENCE_NUMBER, _) => {
                return Err("extended sequence numbers are not supported".into())
            }
            (ipsec_attr::KEY_ROUNDS, _) => return Err("the key rounds attribute is not supported".into()),
            (k, _) => return Err(format!("unknown attribute type {k}")),
        }
    }
    let cipher = EspCipher::from_wire(t.transform_id, key_bits).ok_or_else(|| match t.transform_id {
        esp_transform::DES | esp_transform::TRIPLE_DES => "DES and 3DES are never accepted".to_string(),
        esp_transform::NULL => "NULL encryption is never accepted".to_string(),
        esp_transform::AES_CBC | esp_transform::AES_GCM_16 if key_bits.is_none() => {
            "AES without a key length".to_string()
        }
        esp_transform::AES_CBC | esp_transform::AES_GCM_16 => {
            format!("AES with a {}-bit key is not supported", key_bits.unwrap_or(0))
        }
        esp_transform::AES_GCM_8 | esp_transform::AES_GCM_12 => {
            "AES-GCM with a short ICV is not supported (use the 16-octet ICV)".to_string()
        }
        esp_transform::NULL_AUTH_AES_GMAC => "AES-GMAC without encryption is never accepted".to_string(),
        other => format!("ESP transform {other} is not supported"),
    })?;
    let integrity = match auth {
        None => EspIntegrity::None,
        Some(a) => EspIntegrity::from_wire(Some(a)).ok_or_else(|| match a {
            ipsec_auth::HMAC_MD5 => "HMAC-MD5 is never accepted".to_string(),
            ipsec_auth::HMAC_SHA2_384 | ipsec_auth::HMAC_SHA2_512 => {
                "HMAC-SHA2-384/512 are not supported for ESP (nor by Windows); use HMAC-SHA2-256".to_string()
            }
            other => format!("authentication algorithm {other} is not supported"),
        })?,
    };
    if cipher.is_aead() && integrity != EspIntegrity::None {
        return Err("AES-GCM combined with a separate integrity algorithm".into());
    }
    if !cipher.is_aead() && integrity == EspIntegrity::None {
        return Err("AES-CBC without an integrity algorithm is never accepted".into());
    }
    let pfs = match group {
        None => None,
        Some(id) => Some(DhGroup::from_id(id).ok_or_else(|| format!("PFS: {}", dh_refusal(id)))?),
    };
    Ok(QuickModeChoice {
        transform: EspTransform { cipher, integrity },
        pfs,
        encap: encap.unwrap_or(encap_mode::TUNNEL),
        lifetime_s,
        lifetime_kb,
    })
}

fn describe_esp(t: &TransformRepr) -> String {
    let name = match t.transform_id {
        esp_transform::AES_CBC => "aes-cbc",
        esp_transform::AES_GCM_16 => "aes-gcm-16",
        esp_transform::TRIPLE_DES => "3des",
        esp_transform::DES => "des",
        esp_transform::NULL => "null",
        _ => "esp",
    };
    let mut s = name.to_string();
    for a in &t.attributes {
        let (kind, v) = attr_number(a);
        let v = v.unwrap_or(0);
        match kind {
            ipsec_attr::KEY_LENGTH => s.push_str(&format!("-{v}")),
            ipsec_attr::AUTH_ALGORITHM => s.push_str(match v as u16 {
                ipsec_auth::HMAC_SHA1 => "/hmac-sha1-96",
                ipsec_auth::HMAC_SHA2_256 => "/hmac-sha256-128",
                ipsec_auth::HMAC_MD5 => "/hmac-md5",
                _ => "/auth?",
            }),
            ipsec_attr::GROUP_DESCRIPTION => s.push_str(&format!("/pfs{v}")),
            _ => {}
        }
    }
    s
}

/// Outcome of choosing among a peer's Quick Mode offer.
pub(crate) struct QuickModeSelection {
    /// What was chosen.
    pub choice: QuickModeChoice,
    /// The peer's SPI of the chosen proposal (our outbound SPI).
    pub peer_spi: [u8; 4],
    /// The SA payload to answer with (our inbound SPI, the chosen transform as the peer sent it).
    pub reply: SaRepr,
}

/// Chooses the first ESP transform of the peer's Quick Mode offer that meets `level`, is in transport mode (plain
/// without a NAT on the path, UDP-encapsulated with one: `nat`) and has PFS when `require_pfs`. `Err` lists each
/// proposal or transform and why it fell short.
pub(crate) fn choose_quick_mode(
    sa_body: &[u8],
    level: StrengthLevel,
    require_pfs: bool,
    our_spi: [u8; 4],
    nat: bool,
) -> Result<QuickModeSelection, Vec<String>> {
    let sa = SaRepr::parse(sa_body).map_err(|e| vec![format!("malformed SA payload: {e}")])?;
    if sa.doi != DOI_IPSEC {
        return Err(vec![format!("DOI {} is not the IPsec DOI", sa.doi)]);
    }
    let mut why = Vec::new();
    for p in &sa.proposals {
        // Proposals sharing a number form one AND-bundle (RFC 2408 §4.2): ESP with AH or IPComp.
        if sa.proposals.iter().filter(|q| q.number == p.number).count() > 1 {
            why.push(format!(
                "proposal {}: a bundle of several protocols (AH/IPComp with ESP) is refused: hostsec uses ESP alone",
                p.number
            ));
            continue;
        }
        match p.protocol_id {
            protocol::ESP => {}
            protocol::AH => {
                why.push(format!("proposal {}: AH is refused: hostsec uses ESP only", p.number));
                continue;
            }
            other => {
                why.push(format!("proposal {}: protocol {other} is refused: hostsec uses ESP only", p.number));
                continue;
            }
        }
        let Ok(peer_spi) = <[u8; 4]>::try_from(p.spi.as_slice()) else {
            why.push(format!("proposal {}: ESP SPI of {} bytes instead of 4", p.number, p.spi.len()));
            continue;
        };
        for t in &p.transforms {
            let desc = describe_esp(t);
            let c = match read_esp_transform(t) {
                Ok(c) => c,
                Err(e) => {
                    why.push(format!("transform {} ({desc}): {e}", t.number));
                    continue;
                }
            };
            let problem = if let Err(e) = level.check_esp(c.transform) {
                Some(e)
            } else if let Some(e) = encap_problem(c.encap, nat) {
                Some(e)
            } else if let Some(Err(e)) = c.pfs.map(|g| level.check_pfs_group(g)) {
                Some(e)
            } else if require_pfs && c.pfs.is_none() {
                Some("no PFS group, and the rule requires PFS (pfs = true)".to_string())
            } else {
                None
            };
            match problem {
                Some(e) => why.push(format!("transform {} ({desc}): {e}", t.number)),
                None => {
                    let reply = SaRepr {
                        doi: sa.doi,
                        situation: sa.situation,
                        proposals: vec![ProposalRepr {
                            number: p.number,
                            protocol_id: protocol::ESP,
                            spi: our_spi.to_vec(),
                            transforms: vec![t.clone()],
                        }],
                    };
                    return Ok(QuickModeSelection { choice: c, peer_spi, reply });
                }
            }
        }
    }
    if why.is_empty() {
        why.push("the SA payload holds no proposal".into());
    }
    Err(why)
}

/// Why an encapsulation mode does not fit the path (`nat`: NAT-D found a NAT between the hosts), if it does not.
fn encap_problem(encap: u16, nat: bool) -> Option<String> {
    let udp = matches!(encap, encap_mode::UDP_TRANSPORT | encap_mode::UDP_TRANSPORT_DRAFT);
    match encap {
        encap_mode::TRANSPORT if nat => Some(
            "plain transport mode cannot cross the NAT that NAT-D found between the hosts: UDP-encapsulated \
             transport is needed"
                .to_string(),
        ),
        _ if udp && !nat => Some(
            "UDP-encapsulated transport is only for a path with NAT, and NAT-D found none between the hosts (or \
             NAT traversal was not negotiated in Main Mode)"
                .to_string(),
        ),
        encap_mode::TRANSPORT => None,
        _ if udp => None,
        encap_mode::TUNNEL | encap_mode::UDP_TUNNEL | encap_mode::UDP_TUNNEL_DRAFT => {
            Some("tunnel mode is refused: hostsec protects hosts in transport mode only".to_string())
        }
        other => Some(format!("encapsulation mode {other} is refused: transport mode only")),
    }
}

/// Checks the responder's Quick Mode answer: one ESP proposal with a 4-byte SPI and one transform that we offered
/// (same algorithms and PFS group). Returns the choice and the responder's SPI.
pub(crate) fn accept_quick_mode_reply(sa_body: &[u8], offered: &SaRepr) -> Result<(QuickModeChoice, [u8; 4]), String> {
    let sa = SaRepr::parse(sa_body).map_err(|e| format!("malformed SA payload: {e}"))?;
    let [p] = sa.proposals.as_slice() else {
        return Err(format!("the answer holds {} proposals instead of one", sa.proposals.len()));
    };
    if p.protocol_id != protocol::ESP {
        return Err(format!("the answer is for protocol {}, not ESP", p.protocol_id));
    }
    let spi =
        <[u8; 4]>::try_from(p.spi.as_slice()).map_err(|_| format!("the answer's SPI has {} bytes", p.spi.len()))?;
    let [t] = p.transforms.as_slice() else {
        return Err(format!("the answer holds {} transforms instead of one", p.transforms.len()));
    };
    let c = read_esp_transform(t)?;
    let offered_ok = offered
        .proposals
        .iter()
        .flat_map(|p| &p.transforms)
        .filter_map(|t| read_esp_transform(t).ok())
        .any(|o| o.transform == c.transform && o.pfs == c.pfs && o.encap == c.encap);
    if !offered_ok {
        return Err(format!("the peer chose {} which we did not offer", describe_esp(t)));
    }
    Ok((c, spi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Emit;

    fn emit(sa: &SaRepr) -> Vec<u8> {
        let mut v = vec![0; sa.buffer_len()];
        sa.emit(&mut v).unwrap();
        v
    }

    #[test]
    fn responder_picks_first_acceptable_and_explains_the_rest() {
        let offer = main_mode_offer(
            &StrengthLevel::Standard.main_mode_suites(),
            &[AuthMethod::Psk],
            Duration::from_secs(28800),
        );
        let body = emit(&offer);
        let sel = choose_main_mode(&body, StrengthLevel::Standard, &[AuthMethod::Psk]).unwrap();
        assert_eq!(sel.choice.suite, StrengthLevel::Standard.main_mode_suites()[0]);
        assert_eq!(sel.choice.lifetime_s, Some(28800));
        let accepted = accept_main_mode_reply(&emit(&sel.reply), &offer).unwrap();
        assert_eq!(accepted, sel.choice);

        let highest = choose_main_mode(&body, StrengthLevel::Highest, &[AuthMethod::Psk]).unwrap();
        assert_eq!(highest.choice.suite.group, DhGroup::Ecp384);
        let why = choose_main_mode(&body, StrengthLevel::Highest, &[AuthMethod::RsaSig]).err().unwrap();
        assert_eq!(why.len(), 36);
        assert!(why[0].contains("below level highest") || why[0].contains("not what the rule uses"), "{why:?}");
    }

    #[test]
    fn windows_default_is_refused_with_reasons() {
        let t = |n, encr, bits: Option<u16>, hash, group| TransformRepr {
            number: n,
            transform_id: KEY_IKE,
            attributes: [
                Some(AttributeRepr::Basic { kind: ike_attr::ENCRYPTION, value: encr }),
                bits.map(|b| AttributeRepr::Basic { kind: ike_attr::KEY_LENGTH, value: b }),
                Some(AttributeRepr::Basic { kind: ike_attr::HASH, value: hash }),
                Some(AttributeRepr::Basic { kind: ike_attr::AUTH_METHOD, value: auth_method::PSK }),
                Some(AttributeRepr::Basic { kind: ike_attr::GROUP_DESCRIPTION, value: group }),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        let sa = SaRepr {
            doi: DOI_IPSEC,
            situation: SIT_IDENTITY_ONLY,
            proposals: vec![ProposalRepr {
                number: 1,
                protocol_id: protocol::ISAKMP,
                spi: vec![],
                transforms: vec![
                    t(1, ike_encr::AES_CBC, Some(128), ike_hash::SHA1, dh_group::MODP_1024),
                    t(2, ike_encr::TRIPLE_DES_CBC, None, ike_hash::SHA1, dh_group::MODP_1024),
                ],
            }],
        };
        let why = choose_main_mode(&emit(&sa), StrengthLevel::Standard, &[AuthMethod::Psk]).err().unwrap();
        assert!(why[0].contains("DH group 2 is never accepted"), "{why:?}");
        assert!(why[1].contains("3DES-CBC is never accepted"), "{why:?}");
    }

    #[test]
    fn quick_mode_choice_and_refusals() {
        let offer = quick_mode_offer(
            &StrengthLevel::Standard.esp_transforms(),
            [1, 2, 3, 4],
            Some(DhGroup::Ecp256),
            Duration::from_secs(3600),
            100_000,
            encap_mode::TRANSPORT,
        );
        let body = emit(&offer);
        let sel = choose_quick_mode(&body, StrengthLevel::High, true, [9, 9, 9, 9], false).unwrap();
        assert_eq!(sel.peer_spi, [1, 2, 3, 4]);
        assert_eq!(sel.choice.pfs, Some(DhGroup::Ecp256));
        assert_eq!(sel.choice.lifetime_kb, Some(100_000));
        let (c, spi) = accept_quick_mode_reply(&emit(&sel.reply), &offer).unwrap();
        assert_eq!((c, spi), (sel.choice, [9, 9, 9, 9]));

        let no_pfs = quick_mode_offer(
            &StrengthLevel::Standard.esp_transforms(),
            [1, 2, 3, 4],
            None,
            Duration::from_secs(3600),
            100_000,
            encap_mode::TRANSPORT,
        );
        let why = choose_quick_mode(&emit(&no_pfs), StrengthLevel::Standard, true, [9; 4], false).err().unwrap();
        assert!(why.iter().all(|w| w.contains("requires PFS")), "{why:?}");
        let why = choose_quick_mode(&body, StrengthLevel::Highest, false, [9; 4], false).err().unwrap();
        assert!(why.iter().any(|w| w.contains("below level highest")), "{why:?}");

        let mut ah = offer.clone();
        ah.proposals[0].protocol_id = protocol::AH;
        let why = choose_quick_mode(&emit(&ah), StrengthLevel::Standard, false, [9; 4], false).err().unwrap();
        assert!(why[0].contains("AH is refused"), "{why:?}");
        let mut tunnel = offer;
        for t in &mut tunnel.proposals[0].transforms {
            for a in &mut t.attributes {
                if let AttributeRepr::Basic { kind: ipsec_attr::ENCAPSULATION_MODE, value } = a {
                    *value = encap_mode::TUNNEL;
                }
            }
        }
        let why = choose_quick_mode(&emit(&tunnel), StrengthLevel::Standard, false, [9; 4], false).err().unwrap();
        assert!(why[0].contains("tunnel mode is refused"), "{why:?}");
    }

    #[test]
    fn encapsulation_follows_nat_detection() {
        let offer = |encap| {
            emit(&quick_mode_offer(
                &StrengthLevel::Standard.esp_transforms(),
                [1, 2, 3, 4],
                None,
                Duration::from_secs(3600),
                100_000,
                encap,
            ))
        };
        let plain = offer(encap_mode::TRANSPORT);
        let why = choose_quick_mode(&plain, StrengthLevel::Standard, false, [9; 4], true).err().unwrap();
        assert!(why.iter().all(|w| w.contains("plain transport mode cannot cross the NAT")), "{why:?}");
        for udp in [encap_mode::UDP_TRANSPORT, encap_mode::UDP_TRANSPORT_DRAFT] {
            let sel = choose_quick_mode(&offer(udp), StrengthLevel::Standard, false, [9; 4], true).unwrap();
            assert_eq!(sel.choice.encap, udp);
            let why = choose_quick_mode(&offer(udp), StrengthLevel::Standard, false, [9; 4], false).err().unwrap();
            assert!(why.iter().all(|w| w.contains("NAT-D found none")), "{why:?}");
        }
        let why = choose_quick_mode(&offer(encap_mode::UDP_TUNNEL), StrengthLevel::Standard, false, [9; 4], true);
        assert!(why.err().unwrap()[0].contains("tunnel mode is refused"));
    }
}
