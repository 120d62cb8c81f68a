//! The project's asymmetric JWT signing keys, kept as PKCS#8 PEM files in a private directory
//! (`<data_dir>/jwt_keys`, or `jwt_keys_dir`):
//!
//! | file | role |
//! |---|---|
//! | `current.pem` | signs user sessions; generated on first start |
//! | `standby.pem` | published ahead of its turn, so clients' cached key sets know it; generated when missing |
//! | any other `*.pem` (say `previous.pem`) | published and accepted, never used to sign: keys rotated out whose tokens may still be alive |
//!
//! Rotating: move `current.pem` to `previous.pem` and `standby.pem` to `current.pem`, then
//! restart every instance; a new standby key is generated. Once the longest access-token
//! lifetime has passed, delete `previous.pem`. Files are created mode 0600 in a 0700
//! directory and never logged.

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use forge_core::keys::{KeyAlgorithm, SigningKey, generate_signing_key_pkcs8, pkcs8_pem};

use crate::Error;
use crate::config::{Config, SigningAlgorithm};

/// The file of the key that signs.
pub const CURRENT: &str = "current.pem";
/// The file of the key that signs next.
pub const STANDBY: &str = "standby.pem";

/// The keys of a directory: the one that signs, and the others that are published.
#[derive(Debug)]
pub struct SigningKeys {
    /// Signs user sessions.
    pub current: SigningKey,
    /// The standby key first, then any previous ones (by file name).
    pub others: Vec<SigningKey>,
}

/// The directory the keys live in.
pub fn keys_dir(config: &Config) -> PathBuf {
    config.jwt_keys_dir.clone().unwrap_or_else(|| config.data_dir.join("jwt_keys"))
}

/// Loads the keys, generating the current and standby ones when missing; `None` when
/// sessions are signed with the HS256 secret (`jwt_signing_algorithm = "HS256"`).
pub fn load_or_create(config: &Config) -> Result<Option<SigningKeys>, Error> {
    let alg = match config.jwt_signing_algorithm {
        SigningAlgorithm::Hs256 => return Ok(None),
        SigningAlgorithm::Es256 => KeyAlgorithm::Es256,
        SigningAlgorithm::Rs256 => KeyAlgorithm::Rs256,
    };
    load_dir(&keys_dir(config), alg).map(Some)
}

fn load_dir(dir: &Path, alg: KeyAlgorithm) -> Result<SigningKeys, Error> {
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let current = load_or_generate(&dir.join(CURRENT), alg)?;
    let standby = load_or_generate(&dir.join(STANDBY), alg)?;
    let mut previous: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .filter(|p| p.file_name().is_some_and(|n| n != CURRENT && n != STANDBY))
        .collect();
    previous.sort();
    let mut others = vec![standby];
    for path in previous {
        others.push(read_key(&path)?);
    }
    Ok(SigningKeys { current, others })
}

fn read_key(path: &Path) -> Result<SigningKey, Error> {
    let pem = fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "a JWT signing key is readable by other users; chmod 600 it");
    }
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Reads the key at `path`, or generates one there (mode 0600; written whole or not at all).
fn load_or_generate(path: &Path, alg: KeyAlgorithm) -> Result<SigningKey, Error> {
    if path.exists() {
        return read_key(path);
    }
    let der = generate_signing_key_pkcs8(alg).map_err(|e| Error::Startup(e.to_string()))?;
    let pem = pkcs8_pem(&der);
    if !crate::secret::create_private(path, pem.as_bytes())? {
        // Another instance made one first: use theirs.
        return read_key(path);
    }
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| Error::Startup(e.to_string()))?;
    tracing::info!(path = %path.display(), kid = key.kid(), alg = key.algorithm(), "generated a JWT signing key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn keys_are_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("jwt_keys");
        let a = load_dir(&keys, KeyAlgorithm::Es256).expect("generate");
        assert_eq!(a.current.algorithm(), "ES256");
        assert_eq!(a.others.len(), 1, "a standby key");
        assert_ne!(a.current.kid(), a.others[0].kid());
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&keys.join(CURRENT)), 0o600);
        assert_eq!(mode(&keys.join(STANDBY)), 0o600);
        let b = load_dir(&keys, KeyAlgorithm::Es256).expect("reuse");
        assert_eq!((a.current.kid(), a.others[0].kid()), (b.current.kid(), b.others[0].kid()));
        let leftovers: Vec<_> =
            fs::read_dir(&keys).expect("dir").filter_map(Result::ok).map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
    }

    #[test]
    fn rotation_moves_standby_to_current_and_keeps_the_previous_key_published() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path();
        let before = load_dir(keys, KeyAlgorithm::Es256).expect("generate");
        fs::rename(keys.join(CURRENT), keys.join("previous.pem")).expect("current to previous");
        fs::rename(keys.join(STANDBY), keys.join(CURRENT)).expect("standby to current");
        let after = load_dir(keys, KeyAlgorithm::Es256).expect("rotated");
        assert_eq!(after.current.kid(), before.others[0].kid(), "the standby key signs");
        let kids: Vec<&str> = after.others.iter().map(SigningKey::kid).collect();
        assert_eq!(kids.len(), 2);
        assert_ne!(kids[0], before.current.kid(), "a new standby key");
        assert_eq!(kids[1], before.current.kid(), "the previous key stays published");
    }

    #[test]
    fn given_keys_are_used_and_bad_ones_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let der = generate_signing_key_pkcs8(KeyAlgorithm::Rs256).expect("rsa");
        fs::write(dir.path().join(CURRENT), pkcs8_pem(&der)).expect("write");
        let keys = load_dir(dir.path(), KeyAlgorithm::Es256).expect("given");
        assert_eq!(keys.current.algorithm(), "RS256", "a given key keeps its own algorithm");
        assert_eq!(keys.others[0].algorithm(), "ES256", "the generated standby uses the configured one");
        fs::write(dir.path().join("broken.pem"), "not a key").expect("write");
        let err = load_dir(dir.path(), KeyAlgorithm::Es256).expect_err("a broken key is refused");
        assert!(err.to_string().contains("broken.pem"), "{err}");
    }

    #[test]
    fn hs256_keeps_signing_with_the_secret_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            data_dir: dir.path().to_owned(),
            jwt_signing_algorithm: SigningAlgorithm::Hs256,
            ..Config::default()
        };
        assert!(load_or_create(&config).expect("hs256").is_none());
        assert!(!dir.path().join("jwt_keys").exists());
    }
}
