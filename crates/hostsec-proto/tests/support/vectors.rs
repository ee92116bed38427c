//! The nine strongSwan IKEv1 known-answer vectors in `tests/vectors/` (made for this project; field reference in
//! the vectors' README): every message of an MM+QM exchange and every intermediate value of its key schedule.

use serde_json::Value;
use std::path::PathBuf;

/// The vectors' names (file stems).
pub const NAMES: [&str; 9] = [
    "01-psk-aes256-sha256-ecp256",
    "02-psk-aes256-sha384-ecp384",
    "03-psk-aes128-sha1-modp2048",
    "04-psk-aes256-sha256-modp2048s256",
    "05-psk-aes192-sha256-ecp256-nopfs",
    "06-cert-ecdsa-p256",
    "07-cert-ecdsa-p384",
    "08-cert-rsa2048",
    "09-psk-aes256-sha1-modp2048-keyexp",
];

/// One vector as JSON.
pub fn load(name: &str) -> Value {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", &format!("{name}.json")].iter().collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(json["name"], name, "{}: content matches the file name", path.display());
    json
}

/// All nine, in order.
pub fn all() -> Vec<(&'static str, Value)> {
    NAMES.iter().map(|n| (*n, load(n))).collect()
}

/// A file of a certificate vector's test PKI (`tests/vectors/pki/NAME/`): `ca.pem`, `a.pem`/`a.key` (initiator),
/// `b.pem`/`b.key` (responder), as strongswan-pki wrote them (SEC1 EC keys, PKCS#1 RSA keys, PEM).
pub fn pki_file(name: &str, file: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", "pki", name, file].iter().collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
