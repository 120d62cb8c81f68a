//! Passwords: argon2id hashes in PHC strings, imported bcrypt hashes, and the password policy.
//!
//! New hashes use argon2id with m = 19456 KiB, t = 2, p = 1 (OWASP's recommendation); the
//! parameters live in the PHC string, so hashes made with other parameters still verify and
//! are flagged for rehashing. bcrypt hashes imported from elsewhere (GoTrue stores bcrypt)
//! verify too, and are rehashed to argon2id on the next successful login.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// argon2id memory cost in KiB.
pub const M_COST: u32 = 19_456;
/// argon2id iterations.
pub const T_COST: u32 = 2;
/// argon2id parallelism.
pub const P_COST: u32 = 1;

/// Hashing failed (not a wrong password: a broken hash or an internal error).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(M_COST, T_COST, P_COST, None).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id and a fresh random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    let hash = argon2()?.hash_password(password.as_bytes()).map_err(|e| HashError(e.to_string()))?;
    Ok(hash.to_string())
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Verified {
    /// The password matches. `rehash` holds a new argon2id hash to store when the stored one
    /// is bcrypt or uses other parameters.
    Valid {
        /// The hash to store instead, if the stored one should be upgraded.
        rehash: Option<String>,
    },
    /// The password does not match (or the stored hash is not one Forge understands).
    Invalid,
}

/// Checks `password` against `stored` (an argon2 PHC string or a bcrypt hash). The
/// comparison inside both algorithms is constant-time.
pub fn verify(password: &str, stored: &str) -> Result<Verified, HashError> {
    if stored.starts_with("$argon2") {
        let parsed = argon2::PasswordHash::new(stored).map_err(|e| HashError(e.to_string()))?;
        // Verifying uses the parameters stored in the hash itself.
        if Argon2::default().verify_password(password.as_bytes(), &parsed).is_err() {
            return Ok(Verified::Invalid);
        }
        let current = parsed.algorithm.as_str() == "argon2id"
            && parsed.params.get_decimal("m") == Some(M_COST)
            && parsed.params.get_decimal("t") == Some(T_COST)
            && parsed.params.get_decimal("p") == Some(P_COST);
        return Ok(Verified::Valid { rehash: if current { None } else { Some(hash(password)?) } });
    }
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Ok(Verified::Valid { rehash: Some(hash(password)?) }),
            Ok(false) => Ok(Verified::Invalid),
            Err(e) => Err(HashError(e.to_string())),
        };
    }
    Ok(Verified::Invalid)
}

/// What a new password must satisfy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PasswordPolicy {
    /// The fewest characters allowed (default 8).
    pub min_length: usize,
    /// Whether to refuse passwords from the common-password list (default off).
    pub reject_common: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 8, reject_common: false }
    }
}

/// Passwords too common to allow, lower-cased (from public breach frequency lists).
const COMMON: &str = include_str!("common-passwords.txt");

/// A password the policy refuses, with GoTrue's `weak_password.reasons` and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct WeakPassword {
    /// `length` (too short) and/or `pwned` (on the common list).
    pub reasons: Vec<&'static str>,
    /// The policy's minimum length, which the message names.
    pub min_length: usize,
}

impl WeakPassword {
    /// GoTrue's message (`internal/api/password.go`): one sentence per reason, in the order
    /// of the reasons, e.g. "Password should be at least 8 characters."
    pub fn message(&self) -> String {
        let sentences: Vec<String> = self
            .reasons
            .iter()
            .map(|reason| match *reason {
                "length" => format!("Password should be at least {} characters.", self.min_length),
                _ => "Password is known to be weak and easy to guess, please choose a different one.".to_owned(),
            })
            .collect();
        sentences.join(" ")
    }
}

impl PasswordPolicy {
    /// Checks a new password.
    pub fn check(&self, password: &str) -> Result<(), WeakPassword> {
        let mut reasons = Vec::new();
        if password.chars().count() < self.min_length {
            reasons.push("length");
        }
        if self.reject_common {
            let lower = password.to_lowercase();
            if COMMON.lines().any(|l| l.trim() == lower) {
                reasons.push("pwned");
            }
        }
        if reasons.is_empty() { Ok(()) } else { Err(WeakPassword { reasons, min_length: self.min_length }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_are_argon2id_with_the_parameters_in_the_phc_string() {
        let h = hash("correct horse battery staple").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_ne!(h, hash("correct horse battery staple").expect("hash"), "a fresh salt every time");
        assert_eq!(verify("correct horse battery staple", &h).expect("verify"), Verified::Valid { rehash: None });
        assert_eq!(verify("correct horse battery stapl", &h).expect("verify"), Verified::Invalid);
        assert_eq!(verify("", &h).expect("verify"), Verified::Invalid);
    }

    #[test]
    fn other_argon2_parameters_verify_and_ask_for_a_rehash() {
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8, 1, 1, None).expect("params"))
            .hash_password(b"pw-1234567")
            .expect("hash")
            .to_string();
        match verify("pw-1234567", &weak).expect("verify") {
            Verified::Valid { rehash: Some(new) } => assert!(new.contains("m=19456,t=2,p=1")),
            other => panic!("expected a rehash, got {other:?}"),
        }
    }

    #[test]
    fn imported_bcrypt_hashes_verify_and_are_upgraded() {
        let imported = bcrypt::hash("hunter22", 4).expect("bcrypt");
        assert!(imported.starts_with("$2b$"));
        match verify("hunter22", &imported).expect("verify") {
            Verified::Valid { rehash: Some(new) } => {
                assert!(new.starts_with("$argon2id$"));
                assert_eq!(verify("hunter22", &new).expect("verify"), Verified::Valid { rehash: None });
            }
            other => panic!("expected an upgrade, got {other:?}"),
        }
        assert_eq!(verify("hunter23", &imported).expect("verify"), Verified::Invalid);
        assert_eq!(verify("x", "not a hash").expect("verify"), Verified::Invalid);
        assert!(verify("x", "$argon2id$garbage").is_err(), "a corrupt stored hash is an error, not a mismatch");
    }

    #[test]
    fn the_policy_reports_gotrues_reasons() {
        let policy = PasswordPolicy::default();
        let short = policy.check("short").expect_err("short");
        assert_eq!(short.reasons, ["length"]);
        assert_eq!(short.message(), "Password should be at least 8 characters.");
        assert!(policy.check("password").is_ok(), "the common list is off by default");
        let strict = PasswordPolicy { min_length: 8, reject_common: true };
        assert_eq!(strict.check("Password").expect_err("common").reasons, ["pwned"]);
        let both = strict.check("abc123").expect_err("both");
        assert_eq!(both.reasons, ["length", "pwned"]);
        assert_eq!(
            both.message(),
            "Password should be at least 8 characters. \
             Password is known to be weak and easy to guess, please choose a different one."
        );
        assert!(strict.check("a much longer passphrase").is_ok());
        let long = PasswordPolicy { min_length: 12, reject_common: false };
        assert!(long.check("ünïcødé-pässwörd").is_ok(), "length counts characters, not bytes");
    }
}
