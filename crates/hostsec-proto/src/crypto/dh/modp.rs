//! MODP groups 14 (RFC 3526 §3) and 24 (RFC 5114 §2.3) on aws-lc's BIGNUM through `aws-lc-sys`: constant-time
//! Montgomery exponentiation for everything that involves the private exponent, RAII wrappers that free (and
//! for secrets wipe) every BIGNUM, and the peer-value checks of RFC 2631 §2.1.5 / NIST SP 800-56A §5.6.2.3.1.

use super::invalid;
use crate::crypto::{CryptoError, DhGroup, Secret};
use aws_lc_sys as ffi;
use rand_core::CryptoRngCore;
use std::cmp::Ordering;
use std::ptr::{self, NonNull};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Length of p, of public values and of shared secrets for both groups.
const MODULUS_LEN: usize = 256;

/// Group 14 exponent length. RFC 3526 §1 asks for an exponent with twice the entropy of the strength wanted, as
/// do RFC 7919 §5.2 (short exponents) and NIST SP 800-56A for safe-prime groups (at least 2s bits for strength
/// s). A 2048-bit group gives about 112 bits (SP 800-57), but hostsec pairs it with AES-256 suites, so the
/// target is taken as 256 bits and the exponent has 512 random bits: Pollard's lambda on the exponent then
/// costs 2^256, more than the index calculus on p itself. p is a safe prime, so every exponent below
/// 2^512 < q = (p-1)/2 is as good as any other; it costs a quarter of a full-length exponent.
const EXPONENT_LEN_14: usize = 64;
/// Group 24 exponent length: the subgroup order q has 256 bits and the exponent is uniform in [1, q-1].
const EXPONENT_LEN_24: usize = 32;
/// Rejection sampling for group 24 accepts a 256-bit draw with probability (q-1)/2^256 > 0.55; 128 misses in a
/// row (probability < 2^-147) means a broken RNG.
const MAX_DRAWS: usize = 128;

/// Decodes hex at compile time so that the constants below can keep the RFCs' grouping of 32-bit words.
const fn hex_bytes<const N: usize>(text: &str) -> [u8; N] {
    let text = text.as_bytes();
    let mut out = [0u8; N];
    let mut digits = 0;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        i += 1;
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            b'a'..=b'f' => c - b'a' + 10,
            b' ' | b'\n' => continue,
            _ => panic!("not a hex digit"),
        };
        assert!(digits < 2 * N, "too many hex digits");
        if digits % 2 == 0 {
            out[digits / 2] = v << 4;
        } else {
            out[digits / 2] |= v;
        }
        digits += 1;
    }
    assert!(digits == 2 * N, "too few hex digits");
    out
}

// RFC 3526 §3, the 2048-bit MODP group (id 14): p = 2^2048 - 2^1984 - 1 + 2^64 * ([2^1918 pi] + 124476),
// generator 2. The tests recompute p from that formula.
const P14: [u8; 256] = hex_bytes(
    "FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1
    29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD
    EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245
    E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D
    C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F
    83655D23 DCA3AD96 1C62F356 208552BB 9ED52907 7096966D
    670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9
    DE2BCBF6 95581718 3995497C EA956AE5 15D22618 98FA0510
    15728E5A 8AACAA68 FFFFFFFF FFFFFFFF",
);

// RFC 5114 §2.3, the 2048-bit MODP group with a 256-bit prime-order subgroup (id 24): p, the generator g and
// the order q of the subgroup that g generates. The tests check that p and q are prime and g^q = 1 mod p.
const P24: [u8; 256] = hex_bytes(
    "87A8E61D B4B6663C FFBBD19C 65195999 8CEEF608 660DD0F2
    5D2CEED4 435E3B00 E00DF8F1 D61957D4 FAF7DF45 61B2AA30
    16C3D911 34096FAA 3BF4296D 830E9A7C 209E0C64 97517ABD
    5A8A9D30 6BCF67ED 91F9E672 5B4758C0 22E0B1EF 4275BF7B
    6C5BFC11 D45F9088 B941F54E B1E59BB8 BC39A0BF 12307F5C
    4FDB70C5 81B23F76 B63ACAE1 CAA6B790 2D525267 35488A0E
    F13C6D9A 51BFA4AB 3AD83477 96524D8E F6A167B5 A41825D9
    67E144E5 14056425 1CCACB83 E6B486F6 B3CA3F79 71506026
    C0B857F6 89962856 DED4010A BD0BE621 C3A3960A 54E710C3
    75F26375 D7014103 A4B54330 C198AF12 6116D227 6E11715F
    693877FA D7EF09CA DB094AE9 1E1A1597",
);
const G24: [u8; 256] = hex_bytes(
    "3FB32C9B 73134D0B 2E775066 60EDBD48 4CA7B18F 21EF2054
    07F4793A 1A0BA125 10DBC150 77BE463F FF4FED4A AC0BB555
    BE3A6C1B 0C6B47B1 BC3773BF 7E8C6F62 901228F8 C28CBB18
    A55AE313 41000A65 0196F931 C77A57F2 DDF463E5 E9EC144B
    777DE62A AAB8A862 8AC376D2 82D6ED38 64E67982 428EBC83
    1D14348F 6F2F9193 B5045AF2 767164E1 DFC967C1 FB3F2E55
    A4BD1BFF E83B9C80 D052B985 D182EA0A DB2A3B73 13D3FE14
    C8484B1E 052588B9 B7D2BBD2 DF016199 ECD06E15 57CD0915
    B3353BBB 64E0EC37 7FD02837 0DF92B52 C7891428 CDC67EB6
    184B523D 1DB246C3 2F630784 90F00EF8 D647D148 D4795451
    5E2327CF EF98C582 664B4C0F 6CC41659",
);
const Q24: [u8; 32] = hex_bytes(
    "8CF83642 A709A097 B4479976 40129DA2 99B1A47D 1EB3750B
    A308B0FE 64F5FBD3",
);

/// A BIGNUM owned by Rust. Secret ones are wiped when freed.
struct Bn {
    ptr: NonNull<ffi::BIGNUM>,
    secret: bool,
}

impl Bn {
    /// A fresh zero BIGNUM.
    fn new(secret: bool) -> Result<Self, CryptoError> {
        // SAFETY: `BN_new` has no preconditions; it returns an owned BIGNUM or NULL.
        let ptr = unsafe { ffi::BN_new() };
        NonNull::new(ptr).map(|ptr| Bn { ptr, secret }).ok_or(CryptoError::Library("BN_new"))
    }

    /// The big-endian unsigned integer in `bytes`. Its width follows `bytes.len()`, not the value, so a secret
    /// exponent with leading zero bytes does not change the timing of the exponentiation.
    fn from_be(bytes: &[u8], secret: bool) -> Result<Self, CryptoError> {
        // SAFETY: `bytes` is readable for `bytes.len()` bytes; a NULL `ret` makes `BN_bin2bn` allocate a BIGNUM
        // that the caller owns.
        let ptr = unsafe { ffi::BN_bin2bn(bytes.as_ptr(), bytes.len(), ptr::null_mut()) };
        NonNull::new(ptr).map(|ptr| Bn { ptr, secret }).ok_or(CryptoError::Library("BN_bin2bn"))
    }

    fn as_ptr(&self) -> *const ffi::BIGNUM {
        self.ptr.as_ptr()
    }

    fn as_mut_ptr(&mut self) -> *mut ffi::BIGNUM {
        self.ptr.as_ptr()
    }

    /// Big-endian, left-padded with zeros to `out.len()` (fails if the value does not fit).
    fn write_be_padded(&self, out: &mut [u8]) -> Result<(), CryptoError> {
        // SAFETY: `out` is writable for `out.len()` bytes; `self` is a valid BIGNUM. `BN_bn2bin_padded` writes
        // no more than `out.len()` bytes, in time independent of the value.
        match unsafe { ffi::BN_bn2bin_padded(out.as_mut_ptr(), out.len(), self.as_ptr()) } {
            1 => Ok(()),
            _ => Err(CryptoError::Library("BN_bn2bin_padded")),
        }
    }

    /// Variable-time comparison: for public values and for rejecting test inputs only.
    fn cmp_public(&self, other: &Bn) -> Ordering {
        // SAFETY: both are valid BIGNUMs; `BN_cmp` only reads them.
        unsafe { ffi::BN_cmp(self.as_ptr(), other.as_ptr()) }.cmp(&0)
    }

    /// Whether the value is 0 (variable time: public values and test inputs only).
    fn is_zero_public(&self) -> bool {
        // SAFETY: `self` is a valid BIGNUM; `BN_is_zero` only reads it.
        unsafe { ffi::BN_is_zero(self.as_ptr()) == 1 }
    }

    /// Whether the value is 1 (variable time: public values and test inputs only).
    fn is_one_public(&self) -> bool {
        // SAFETY: `self` is a valid BIGNUM; `BN_is_one` only reads it.
        unsafe { ffi::BN_is_one(self.as_ptr()) == 1 }
    }

    /// Whether the value is 0 or 1 (variable time: public values and test inputs only).
    fn is_zero_or_one_public(&self) -> bool {
        self.is_zero_public() || self.is_one_public()
    }
}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `BN_new`/`BN_bin2bn`, is owned by this wrapper alone and is freed once, here.
        unsafe {
            if self.secret {
                ffi::BN_clear_free(self.as_mut_ptr());
            } else {
                ffi::BN_free(self.as_mut_ptr());
            }
        }
    }
}

/// Scratch space for one operation. Not shareable between threads, so each operation makes its own; aws-lc
/// frees its temporaries with `OPENSSL_free`, which wipes them.
struct BnCtx(NonNull<ffi::BN_CTX>);

impl BnCtx {
    fn new() -> Result<Self, CryptoError> {
        // SAFETY: `BN_CTX_new` has no preconditions; it returns an owned BN_CTX or NULL.
        NonNull::new(unsafe { ffi::BN_CTX_new() }).map(BnCtx).ok_or(CryptoError::Library("BN_CTX_new"))
    }

    fn as_mut_ptr(&mut self) -> *mut ffi::BN_CTX {
        self.0.as_ptr()
    }
}

impl Drop for BnCtx {
    fn drop(&mut self) {
        // SAFETY: owned by this wrapper alone, freed once.
        unsafe { ffi::BN_CTX_free(self.0.as_ptr()) }
    }
}

/// Montgomery context of a public modulus.
struct MontCtx(NonNull<ffi::BN_MONT_CTX>);

impl MontCtx {
    fn new(modulus: &Bn) -> Result<Self, CryptoError> {
        let mut ctx = BnCtx::new()?;
        // SAFETY: `modulus` is a valid odd BIGNUM and `ctx` a valid BN_CTX; the result is owned or NULL.
        let mont = unsafe { ffi::BN_MONT_CTX_new_for_modulus(modulus.as_ptr(), ctx.as_mut_ptr()) };
        NonNull::new(mont).map(MontCtx).ok_or(CryptoError::Library("BN_MONT_CTX_new_for_modulus"))
    }

    fn as_ptr(&self) -> *const ffi::BN_MONT_CTX {
        self.0.as_ptr()
    }
}

impl Drop for MontCtx {
    fn drop(&mut self) {
        // SAFETY: owned by this wrapper alone, freed once.
        unsafe { ffi::BN_MONT_CTX_free(self.0.as_ptr()) }
    }
}

/// The constants of one group as BIGNUMs, built once per process and then only read. Building them costs
/// about 7 µs (3-5 µs of it the Montgomery context of p, measured on the 2-core development machine in a
/// release build): under 1% of a key generation (0.6 ms for group 24, 1.2 ms for group 14). The cache saves
/// little; it stays because sharing read-only constants is simple to argue (below).
struct Params {
    p: Bn,
    p_minus_1: Bn,
    g: Bn,
    /// The prime order of the subgroup that g generates, where the group defines one to check against.
    q: Option<Bn>,
    mont: MontCtx,
}

// SAFETY: a `Params` is never mutated after `Params::new` returns: every later use passes its pointers to
// aws-lc as `const BIGNUM *` / `const BN_MONT_CTX *` (BN_mod_exp_mont*, BN_cmp, BN_bn2bin_padded). aws-lc's
// API conventions (inherited from BoringSSL) say an object may be used concurrently by non-mutating functions,
// and that functions taking a const pointer are non-mutating; a fully built BN_MONT_CTX has no lazily filled
// fields, and none of these objects holds thread-affine state. The pointers are owned by `Params` alone and freed only in its `Drop`, which
// cannot run while a shared reference (including the `static` below) exists.
unsafe impl Send for Params {}
// SAFETY: see `Send` above: shared access is read-only.
unsafe impl Sync for Params {}

impl Params {
    fn new(group: DhGroup) -> Result<Self, CryptoError> {
        let (p, g, q) = constants(group);
        let p = Bn::from_be(p, false)?;
        let mut p_minus_1 = Bn::from_be(constants(group).0, false)?;
        // SAFETY: `p_minus_1` is a valid BIGNUM, exclusively borrowed.
        if unsafe { ffi::BN_sub_word(p_minus_1.as_mut_ptr(), 1) } != 1 {
            return Err(CryptoError::Library("BN_sub_word"));
        }
        let g = Bn::from_be(g, false)?;
        let q = q.map(|q| Bn::from_be(q, false)).transpose()?;
        let mont = MontCtx::new(&p)?;
        Ok(Params { p, p_minus_1, g, q, mont })
    }

    fn get(group: DhGroup) -> Result<&'static Params, CryptoError> {
        static MODP_2048: OnceLock<Params> = OnceLock::new();
        static MODP_2048_S256: OnceLock<Params> = OnceLock::new();
        let cell = match group {
            DhGroup::Modp2048s256 => &MODP_2048_S256,
            _ => &MODP_2048,
        };
        if let Some(params) = cell.get() {
            return Ok(params);
        }
        // Built outside `get_or_init` so that a failure is an error, not a panic; a racing thread's copy is
        // dropped.
        let params = Params::new(group)?;
        Ok(cell.get_or_init(|| params))
    }
}

/// p, g and (group 24) q of a MODP group. The callers in this module only pass MODP groups.
fn constants(group: DhGroup) -> (&'static [u8], &'static [u8], Option<&'static [u8]>) {
    match group {
        DhGroup::Modp2048s256 => (&P24, &G24, Some(&Q24)),
        _ => (&P14, &[2], None),
    }
}

/// base^exponent mod p with `BN_mod_exp_mont_consttime`: no branch or memory access depends on the exponent
/// or the base (its width, set by its byte length, is public). `base` must be in [0, p-1].
fn mod_exp_consttime(params: &Params, base: &Bn, exponent: &Bn, secret_result: bool) -> Result<Bn, CryptoError> {
    let mut result = Bn::new(secret_result)?;
    let mut ctx = BnCtx::new()?;
    // SAFETY: all BIGNUMs are valid; `result` is exclusively borrowed and distinct from the inputs; `mont` is the
    // Montgomery context of `params.p`, which is what the function requires; `ctx` is exclusively ours.
    let ok = unsafe {
        ffi::BN_mod_exp_mont_consttime(
            result.as_mut_ptr(),
            base.as_ptr(),
            exponent.as_ptr(),
            params.p.as_ptr(),
            ctx.as_mut_ptr(),
            params.mont.as_ptr(),
        )
    };
    match ok {
        1 => Ok(result),
        _ => Err(CryptoError::Library("BN_mod_exp_mont_consttime")),
    }
}

/// Whether x, a 256-bit big-endian candidate exponent, lies in [1, q-1], with no branch on its bits: the
/// candidate that passes becomes the private exponent. Computes the borrow of x - q byte by byte.
fn in_subgroup_exponent_range(x: &[u8; EXPONENT_LEN_24]) -> bool {
    let mut borrow = 0u16;
    let mut any = 0u8;
    for (&xi, &qi) in x.iter().zip(Q24.iter()).rev() {
        let diff = u16::from(xi).wrapping_sub(u16::from(qi)).wrapping_sub(borrow);
        borrow = (diff >> 8) & 1;
        any |= xi;
    }
    // Only the verdict leaves this function, and a rejected candidate is thrown away.
    (borrow == 1) & (any != 0)
}

/// Whether x, a 512-bit big-endian candidate exponent for group 14, is at least 2 (0 and 1 give the public
/// values 1 and g), without branching on its bits.
fn at_least_two(x: &[u8; EXPONENT_LEN_14]) -> bool {
    let (last, high) = x.split_last().unwrap_or((&0, &[]));
    let high_any = high.iter().fold(0u8, |acc, &b| acc | b);
    (high_any != 0) | (*last > 1)
}

/// Draws the private exponent from `rng` (group 14: 512 random bits; group 24: uniform in [1, q-1] by
/// rejection sampling) and computes the public value g^x mod p, padded to 256 bytes.
pub(super) fn generate(group: DhGroup, rng: &mut dyn CryptoRngCore) -> Result<(Secret, Vec<u8>), CryptoError> {
    let params = Params::get(group)?;
    let exponent = match group {
        DhGroup::Modp2048s256 => draw(rng, in_subgroup_exponent_range)?,
        _ => draw(rng, at_least_two)?,
    };
    let public = public_value(params, &exponent)?;
    Ok((exponent, public))
}

fn draw<const N: usize>(rng: &mut dyn CryptoRngCore, accept: fn(&[u8; N]) -> bool) -> Result<Secret, CryptoError> {
    let mut candidate = Zeroizing::new([0u8; N]);
    for _ in 0..MAX_DRAWS {
        rng.try_fill_bytes(&mut candidate[..]).map_err(|_| CryptoError::Library("random number generator"))?;
        if accept(&candidate) {
            return Ok(Secret::from_slice(&candidate[..]));
        }
    }
    Err(CryptoError::Library("MODP private exponent generation"))
}

/// Imports a known exponent (known-answer tests): 1 < x < p-1, and for group 24 1 <= x < q.
pub(super) fn from_private_bytes(group: DhGroup, exponent: &[u8]) -> Result<(Secret, Vec<u8>), CryptoError> {
    let params = Params::get(group)?;
    if exponent.is_empty() || exponent.len() > MODULUS_LEN {
        return Err(CryptoError::InvalidLength("MODP private exponent"));
    }
    let x = Bn::from_be(exponent, true)?;
    let in_range = match &params.q {
        Some(q) => !x.is_zero_public() && x.cmp_public(q) == Ordering::Less,
        None => !x.is_zero_or_one_public() && x.cmp_public(&params.p_minus_1) == Ordering::Less,
    };
    if !in_range {
        return Err(CryptoError::Library("MODP private exponent out of range"));
    }
    let exponent = Secret::from_slice(exponent);
    let public = public_value(params, &exponent)?;
    Ok((exponent, public))
}

fn public_value(params: &Params, exponent: &Secret) -> Result<Vec<u8>, CryptoError> {
    let x = Bn::from_be(exponent.expose(), true)?;
    let y = mod_exp_consttime(params, &params.g, &x, false)?;
    let mut public = vec![0u8; MODULUS_LEN];
    y.write_be_padded(&mut public)?;
    Ok(public)
}

/// Parses and checks a peer value: exactly 256 bytes (the KE body is padded to the length of p, RFC 2409 §5),
/// 1 < y < p-1 (rejects 0, 1, p-1 of order 2, and unreduced values), and for group 24 y^q = 1 mod p, i.e. y is
/// in the subgroup of prime order q (RFC 2631 §2.1.5). Without that check a peer could send an element of a
/// small subgroup and learn our exponent modulo its order: (p-1)/q has the small factors 2, 7, 13, 2549 and
/// 142031 for this p.
fn checked_peer_value(group: DhGroup, params: &Params, value: &[u8]) -> Result<Bn, CryptoError> {
    if value.len() != MODULUS_LEN {
        return Err(invalid(group, "wrong length"));
    }
    let y = Bn::from_be(value, false)?;
    if y.is_zero_or_one_public() {
        return Err(invalid(group, "0 or 1"));
    }
    if y.cmp_public(&params.p_minus_1) != Ordering::Less {
        return Err(invalid(group, "not below p-1"));
    }
    if let Some(q) = &params.q {
        let mut t = Bn::new(false)?;
        let mut ctx = BnCtx::new()?;
        // SAFETY: valid BIGNUMs, `t` exclusively borrowed and distinct from the inputs, 0 <= y < p as the function
        // requires (checked above), `mont` belongs to p. Everything here is public, so the variable-time
        // exponentiation is fine.
        let ok = unsafe {
            ffi::BN_mod_exp_mont(
                t.as_mut_ptr(),
                y.as_ptr(),
                q.as_ptr(),
                params.p.as_ptr(),
                ctx.as_mut_ptr(),
                params.mont.as_ptr(),
            )
        };
        if ok != 1 {
            return Err(CryptoError::Library("BN_mod_exp_mont"));
        }
        if !t.is_one_public() {
            return Err(invalid(group, "not in the prime-order subgroup"));
        }
    }
    Ok(y)
}

/// See [`checked_peer_value`].
pub(super) fn validate(group: DhGroup, value: &[u8]) -> Result<(), CryptoError> {
    let params = Params::get(group)?;
    checked_peer_value(group, params, value).map(|_| ())
}

/// y^x mod p, padded to 256 bytes so that a secret with leading zero bytes keeps them, as strongSwan's openssl
/// plugin does (`EVP_PKEY_CTX_set_dh_pad`); RFC 7296 §2.14 spells the same rule out for IKEv2.
pub(super) fn agree(group: DhGroup, exponent: &Secret, peer: &[u8]) -> Result<Secret, CryptoError> {
    let params = Params::get(group)?;
    let y = checked_peer_value(group, params, peer)?;
    let x = Bn::from_be(exponent.expose(), true)?;
    let z = mod_exp_consttime(params, &y, &x, true)?;
    let mut shared = Zeroizing::new(vec![0u8; MODULUS_LEN]);
    z.write_be_padded(&mut shared)?;
    // Defence in depth: with the checks above and a generated exponent, 0 or 1 cannot come out, but if it ever
    // did, keying an SA from it would be silent and fatal. Folded without early exit: the bytes are secret.
    let (last, high) = shared.split_last().unwrap_or((&0, &[]));
    let high_any = high.iter().fold(0u8, |acc, &b| acc | b);
    if (high_any == 0) & (*last <= 1) {
        return Err(invalid(group, "degenerate shared secret"));
    }
    Ok(Secret::new(std::mem::take(&mut *shared)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test-only arithmetic on public numbers, to check the constants against their definitions.

    fn word(w: u64) -> Bn {
        let mut bn = Bn::new(false).unwrap();
        // SAFETY: valid BIGNUM, exclusively borrowed.
        assert_eq!(unsafe { ffi::BN_set_word(bn.as_mut_ptr(), w) }, 1);
        bn
    }

    fn binop(
        a: &Bn,
        b: &Bn,
        op: unsafe extern "C" fn(*mut ffi::BIGNUM, *const ffi::BIGNUM, *const ffi::BIGNUM) -> i32,
    ) -> Bn {
        let mut r = Bn::new(false).unwrap();
        // SAFETY: valid BIGNUMs; `r` is distinct from the inputs.
        assert_eq!(unsafe { op(r.as_mut_ptr(), a.as_ptr(), b.as_ptr()) }, 1);
        r
    }

    fn shift(a: &Bn, n: i32, op: unsafe extern "C" fn(*mut ffi::BIGNUM, *const ffi::BIGNUM, i32) -> i32) -> Bn {
        let mut r = Bn::new(false).unwrap();
        // SAFETY: valid BIGNUMs; `r` is distinct from `a`.
        assert_eq!(unsafe { op(r.as_mut_ptr(), a.as_ptr(), n) }, 1);
        r
    }

    fn mul_word(a: &Bn, w: u64) -> Bn {
        let mut r = binop(a, &word(0), ffi::BN_add);
        // SAFETY: valid BIGNUM, exclusively borrowed.
        assert_eq!(unsafe { ffi::BN_mul_word(r.as_mut_ptr(), w) }, 1);
        r
    }

    /// Divides in place, returning the remainder.
    fn div_word(a: &mut Bn, w: u64) -> u64 {
        // SAFETY: valid BIGNUM, exclusively borrowed; w != 0 in every call.
        unsafe { ffi::BN_div_word(a.as_mut_ptr(), w) }
    }

    fn bytes(a: &Bn, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        a.write_be_padded(&mut out).unwrap();
        out
    }

    fn is_prime(a: &Bn) -> bool {
        let mut ctx = BnCtx::new().unwrap();
        let mut prime = 0;
        // SAFETY: valid BIGNUM and BN_CTX; `prime` is a writable int; no callback. 64 Miller-Rabin rounds.
        let ok = unsafe { ffi::BN_primality_test(&mut prime, a.as_ptr(), 64, ctx.as_mut_ptr(), 1, ptr::null_mut()) };
        assert_eq!(ok, 1);
        prime == 1
    }

    /// atan(1/x) * 2^bits by its Taylor series, each term truncated (total error: a few units).
    fn atan_inv_scaled(x: u64, bits: i32) -> Bn {
        let mut term = shift(&word(1), bits, ffi::BN_lshift);
        div_word(&mut term, x);
        let mut sum = binop(&term, &word(0), ffi::BN_add);
        let mut k = 1u64;
        loop {
            div_word(&mut term, x * x);
            if term.is_zero_public() {
                return sum;
            }
            let mut t = binop(&term, &word(0), ffi::BN_add);
            div_word(&mut t, 2 * k + 1);
            sum = if k % 2 == 1 { binop(&sum, &t, ffi::BN_sub) } else { binop(&sum, &t, ffi::BN_add) };
            k += 1;
        }
    }

    #[test]
    fn group14_prime_is_the_rfc3526_formula() {
        // pi * 2^(1918 + 64) by Machin's formula; 64 guard bits absorb the truncation errors, and the equality
        // below could not hold by accident if they did not.
        let bits = 1918 + 64;
        let pi =
            binop(&mul_word(&atan_inv_scaled(5, bits), 16), &mul_word(&atan_inv_scaled(239, bits), 4), ffi::BN_sub);
        let floor_2_1918_pi = shift(&pi, 64, ffi::BN_rshift);
        // p = 2^2048 - 2^1984 - 1 + 2^64 * ([2^1918 pi] + 124476)
        let tail = shift(&binop(&floor_2_1918_pi, &word(124_476), ffi::BN_add), 64, ffi::BN_lshift);
        let head = binop(&shift(&word(1), 2048, ffi::BN_lshift), &shift(&word(1), 1984, ffi::BN_lshift), ffi::BN_sub);
        let p = binop(&binop(&head, &word(1), ffi::BN_sub), &tail, ffi::BN_add);
        assert_eq!(bytes(&p, MODULUS_LEN), P14.to_vec());
    }

    #[test]
    fn group14_is_a_safe_prime() {
        let p = Bn::from_be(&P14, false).unwrap();
        assert!(is_prime(&p));
        let q = shift(&p, 1, ffi::BN_rshift);
        assert!(is_prime(&q), "(p-1)/2 is prime");
    }

    #[test]
    fn group24_constants_are_consistent() {
        let params = Params::new(DhGroup::Modp2048s256).unwrap();
        let q = params.q.as_ref().unwrap();
        assert!(is_prime(&params.p));
        assert!(is_prime(q));
        let mut p_minus_1 = binop(&params.p, &word(1), ffi::BN_sub);
        // q divides p-1: p-1 = q * j with j even and > 1.
        let mut rem = Bn::new(false).unwrap();
        let mut j = Bn::new(false).unwrap();
        let mut ctx = BnCtx::new().unwrap();
        // SAFETY: valid, distinct BIGNUMs and BN_CTX.
        let ok = unsafe {
            ffi::BN_div(j.as_mut_ptr(), rem.as_mut_ptr(), p_minus_1.as_mut_ptr(), q.as_ptr(), ctx.as_mut_ptr())
        };
        assert_eq!(ok, 1);
        assert!(rem.is_zero_public());
        assert!(!j.is_one_public());
        // g has order q: g != 1 and g^q = 1 mod p.
        assert!(!params.g.is_zero_or_one_public());
        assert_eq!(params.g.cmp_public(&params.p_minus_1), Ordering::Less);
        let mut t = Bn::new(false).unwrap();
        // SAFETY: valid BIGNUMs; 0 <= g < p; `mont` belongs to p.
        let ok = unsafe {
            ffi::BN_mod_exp_mont(
                t.as_mut_ptr(),
                params.g.as_ptr(),
                q.as_ptr(),
                params.p.as_ptr(),
                ctx.as_mut_ptr(),
                params.mont.as_ptr(),
            )
        };
        assert_eq!(ok, 1);
        assert!(t.is_one_public());
        // And the subgroup check accepts g itself.
        validate(DhGroup::Modp2048s256, &G24).unwrap();
    }

    #[test]
    fn subgroup_exponent_range_bounds() {
        let mut q_minus_1 = Q24;
        q_minus_1[31] -= 1; // q is odd
        assert!(in_subgroup_exponent_range(&q_minus_1));
        assert!(!in_subgroup_exponent_range(&Q24));
        let mut q_plus_1 = Q24;
        q_plus_1[31] += 1;
        assert!(!in_subgroup_exponent_range(&q_plus_1));
        assert!(!in_subgroup_exponent_range(&[0u8; 32]));
        let mut one = [0u8; 32];
        one[31] = 1;
        assert!(in_subgroup_exponent_range(&one));
        assert!(!in_subgroup_exponent_range(&[0xff; 32]));
        let mut high = [0u8; 32];
        high[0] = 0x8c; // below q's first bytes 8CF8...
        assert!(in_subgroup_exponent_range(&high));
        high[1] = 0xf9; // 8CF9... is above q
        assert!(!in_subgroup_exponent_range(&high));
    }

    #[test]
    fn group14_exponent_lower_bound() {
        let mut x = [0u8; EXPONENT_LEN_14];
        assert!(!at_least_two(&x));
        x[63] = 1;
        assert!(!at_least_two(&x));
        x[63] = 2;
        assert!(at_least_two(&x));
        x[63] = 0;
        x[0] = 1;
        assert!(at_least_two(&x));
    }

    #[test]
    fn hex_bytes_skips_spaces_and_newlines() {
        const X: [u8; 4] = hex_bytes("0a1B\n 2c3D");
        assert_eq!(X, [0x0a, 0x1b, 0x2c, 0x3d]);
    }
}
