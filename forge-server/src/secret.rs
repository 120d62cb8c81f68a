//! The project's JWT secret: from configuration, or generated once and kept in the data dir.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};

use crate::Error;

const FILE: &str = "jwt_secret";

/// Returns the configured secret, or the one kept in `data_dir` (made on first use, mode 0600).
pub fn load_or_create(configured: Option<&SecretString>, data_dir: &Path) -> Result<SecretString, Error> {
    if let Some(secret) = configured {
        return check(secret.clone(), "FORGE_JWT_SECRET");
    }
    let path = data_dir.join(FILE);
    match fs::read_to_string(&path) {
        Ok(text) => return check(SecretString::from(text.trim().to_owned()), &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    }
    fs::create_dir_all(data_dir).map_err(|e| Error::io(format!("creating {}", data_dir.display()), e))?;
    let secret = URL_SAFE_NO_PAD.encode(forge_core::keys::generate_secret(48));
    if !create_private(&path, secret.as_bytes())? {
        // Another process made one first: use theirs.
        return load_or_create(None, data_dir);
    }
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(SecretString::from(secret))
}

/// Creates `path` with `contents`, mode 0600, whole or not at all: written to a private
/// temporary file, synced, then linked into place. False when the file exists already (another
/// process made it first); it is then left as it is.
pub(crate) fn create_private(path: &Path, contents: &[u8]) -> Result<bool, Error> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("securing {}", tmp.display()), e))?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(format!("saving {}", path.display()), e)),
    }
}

fn check(secret: SecretString, origin: &str) -> Result<SecretString, Error> {
    let len = secret.expose_secret().len();
    if len < forge_core::keys::MIN_SECRET_LEN {
        return Err(Error::Config(format!(
            "the JWT secret from {origin} is {len} bytes; it must be at least {} bytes",
            forge_core::keys::MIN_SECRET_LEN
        )));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create(None, dir.path()).expect("create");
        let b = load_or_create(None, dir.path()).expect("reuse");
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().len() >= 32);
        let mode = fs::metadata(dir.path().join(FILE)).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn configured_secrets_win_and_short_ones_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SecretString::from("x".repeat(40));
        assert_eq!(load_or_create(Some(&s), dir.path()).expect("configured").expose_secret(), "x".repeat(40));
        assert!(!dir.path().join(FILE).exists(), "nothing is written when a secret is configured");
        let short = SecretString::from("short".to_owned());
        assert!(load_or_create(Some(&short), dir.path()).is_err());
    }
}
