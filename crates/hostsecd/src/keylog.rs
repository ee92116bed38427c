//! The opt-in key log: IKEv1 and ESP keys in the formats of Wireshark's "IKEv1 Decryption Table" and "ESP SAs"
//! tables (files `ikev1_decryption_table` and `esp_sa`, which can be copied into a Wireshark profile or passed
//! to tshark with `-o uat:…`). Off unless `key_log` is set; the daemon warns when it is on.

use hostsec_proto::crypto::{EspCipher, EspIntegrity};
use hostsec_proto::ike::ChildSaKeys;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

/// Appends keys to the two table files in a private directory.
pub struct KeyLog {
    dir: PathBuf,
}

impl KeyLog {
    /// Creates the directory (mode 0700) if needed.
    pub fn open(dir: PathBuf) -> std::io::Result<KeyLog> {
        DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        Ok(KeyLog { dir })
    }

    fn append(&self, file: &str, line: &str) -> std::io::Result<()> {
        let mut f = OpenOptions::new().create(true).append(true).mode(0o600).open(self.dir.join(file))?;
        writeln!(f, "{line}")
    }

    /// Records a Main Mode SA: `CKY-I,Ka` (hex).
    pub fn main_mode(&self, cookie_i: &[u8; 8], ka: &[u8]) -> std::io::Result<()> {
        self.append("ikev1_decryption_table", &format!("{},{}", hex::encode(cookie_i), hex::encode(ka)))
    }

    /// Records both directions of an ESP SA pair.
    pub fn esp(&self, k: &ChildSaKeys) -> std::io::Result<()> {
        let i = &k.info;
        let (enc, integ) = (cipher_name(i.transform.cipher), integrity_name(i.transform.integrity));
        let family = if i.local.is_ipv4() { "IPv4" } else { "IPv6" };
        let (l, p) = (i.local.ip(), i.peer.ip());
        let line = |src, dst, spi: u32, ek: &[u8], ik: &[u8]| {
            let ik = if ik.is_empty() { String::new() } else { format!("0x{}", hex::encode(ik)) };
            format!(
                "\"{family}\",\"{src}\",\"{dst}\",\"0x{spi:08x}\",\"{enc}\",\"0x{}\",\"{integ}\",\"{ik}\"",
                hex::encode(ek)
            )
        };
        self.append("esp_sa", &line(p, l, i.spi_in, k.encryption_key_in.expose(), k.integrity_key_in.expose()))?;
        self.append("esp_sa", &line(l, p, i.spi_out, k.encryption_key_out.expose(), k.integrity_key_out.expose()))
    }
}

/// Wireshark's name of an ESP encryption algorithm.
fn cipher_name(c: EspCipher) -> &'static str {
    if c.is_aead() {
        "AES-GCM with 16 octet ICV [RFC4106]"
    } else {
        "AES-CBC [RFC3602]"
    }
}

/// Wireshark's name of an ESP integrity algorithm.
fn integrity_name(i: EspIntegrity) -> &'static str {
    match i {
        EspIntegrity::None => "NULL",
        EspIntegrity::HmacSha1_96 => "HMAC-SHA-1-96 [RFC2404]",
        EspIntegrity::HmacSha256_128 => "HMAC-SHA-256-128 [RFC4868]",
    }
}
