//! Random secrets, their digests, and constant-time comparison.
//!
//! Refresh tokens, OTPs, link tokens and PKCE auth codes are random and only their SHA-256
//! digests are stored, so a read of the database does not yield usable credentials.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

/// `n` random bytes from the system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG only fails if the OS has no entropy source; nothing can continue then.
    SystemRandom::new().fill(&mut buf).expect("the system random number generator failed");
    buf
}

/// A random token: 256 bits as unpadded base64url (43 characters).
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A numeric OTP of `digits` uniformly random digits.
pub(crate) fn random_otp(digits: usize) -> String {
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        // Rejection sampling keeps every digit uniform.
        for b in random_bytes::<16>() {
            if b < 250 && out.len() < digits {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    out
}

/// Lower-case hex of SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// The hash a verification link carries for an OTP sent to `address` (GoTrue's
/// `token_hash`): lower-case hex of SHA-224(address ‖ otp).
pub(crate) fn token_hash(address: &str, otp: &str) -> String {
    let mut input = Vec::with_capacity(address.len() + otp.len());
    input.extend_from_slice(address.as_bytes());
    input.extend_from_slice(otp.as_bytes());
    hex(digest::digest(&digest::SHA224, &input).as_ref())
}

/// What is stored for a one-time token: a digest of its `token_hash`, so the stored value
/// alone cannot be replayed through `verify`.
pub(crate) fn stored_digest(token_hash: &str) -> String {
    sha256_hex(token_hash.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Compares two secrets in constant time (for equal lengths).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A PKCE challenge method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeMethod {
    S256,
    Plain,
}

impl ChallengeMethod {
    /// Parses `s256` or `plain`, in any case (supabase-js sends lower-case `s256`).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("s256") {
            Some(Self::S256)
        } else if s.eq_ignore_ascii_case("plain") {
            Some(Self::Plain)
        } else {
            None
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "s256",
            Self::Plain => "plain",
        }
    }

    /// Whether `verifier` answers `challenge`.
    pub(crate) fn verify(self, challenge: &str, verifier: &str) -> bool {
        match self {
            Self::S256 => {
                let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
                ct_eq(&computed, challenge)
            }
            Self::Plain => ct_eq(verifier, challenge),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, random_token());
        let otp = random_otp(6);
        assert_eq!(otp.len(), 6);
        assert!(otp.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(random_otp(10).len(), 10);
    }

    #[test]
    fn token_hash_is_gotrues_sha224() {
        // SHA-224("a@b.c123456")
        assert_eq!(token_hash("a@b.c", "123456").len(), 56);
        assert_eq!(token_hash("a@b.c", "123456"), token_hash("a@b.c", "123456"));
        assert_ne!(token_hash("a@b.c", "123456"), token_hash("a@b.c", "123457"));
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn pkce_s256_matches_rfc7636() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(ChallengeMethod::parse("s256").expect("s256").verify(challenge, verifier));
        assert!(ChallengeMethod::parse("S256").expect("S256").verify(challenge, verifier));
        assert!(!ChallengeMethod::S256.verify(challenge, "wrong"));
        assert!(ChallengeMethod::Plain.verify("abc", "abc"));
        assert!(ChallengeMethod::parse("md5").is_none());
    }
}
