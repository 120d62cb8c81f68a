//! The master key: it seals the secrets the control plane keeps in its database (each
//! project's JWT secret and signing keys), so that a copy of the database alone reveals none.
//!
//! It is the key given (32 bytes, base64url, `FORGE_MASTER_KEY`), else
//! `<data_dir>/master_key`, generated
//! once (mode 0600, whole or not at all). A sealed value is AES-256-GCM with a
//! random nonce, bound to its use by associated data (say `project:<ref>:jwt_secret`), so a
//! value copied into another row or another project does not open: a version byte, the 12
//! nonce bytes, then the ciphertext and its tag.

use std::fs;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};

use crate::Error;

const FILE: &str = "master_key";
const KEY_LEN: usize = 32;
const VERSION: u8 = 1;

/// The control plane's master key. Its bytes are never printed or logged.
pub struct MasterKey {
    aead: LessSafeKey,
    /// For secrets derived from the master key rather than stored (HMAC-SHA256).
    derive: hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A sealed value that does not open: tampered with, sealed for another use, or under
/// another key. Deliberately says no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sealed value does not open with this master key and purpose")]
pub struct Unsealable;

impl MasterKey {
    /// The configured key, or the one kept in `data_dir` (made on first use).
    pub fn load_or_create(configured: Option<&SecretString>, data_dir: &Path) -> Result<MasterKey, Error> {
        if let Some(key) = configured {
            return Self::from_text(key, "FORGE_MASTER_KEY");
        }
        let path = data_dir.join(FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                return Self::from_text(&SecretString::from(text.trim().to_owned()), &path.display().to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        }
        fs::create_dir_all(data_dir).map_err(|e| Error::io(format!("creating {}", data_dir.display()), e))?;
        let text = SecretString::from(URL_SAFE_NO_PAD.encode(forge_core::keys::generate_secret(KEY_LEN)));
        if !crate::secret::create_private(&path, text.expose_secret().as_bytes())? {
            // Another process made one first: use theirs.
            return Self::load_or_create(None, data_dir);
        }
        Self::from_text(&text, &path.display().to_string())
    }

    /// A key from its base64url text (32 bytes).
    fn from_text(text: &SecretString, origin: &str) -> Result<MasterKey, Error> {
        let bytes = SecretBox::new(Box::new(
            URL_SAFE_NO_PAD
                .decode(text.expose_secret().trim().trim_end_matches('='))
                .map_err(|_| Error::Config(format!("{origin}: the master key is not base64url")))?,
        ));
        if bytes.expose_secret().len() != KEY_LEN {
            return Err(Error::Config(format!("{origin}: the master key must be {KEY_LEN} bytes")));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes.expose_secret())
            .map_err(|_| Error::Config(format!("{origin}: the master key is not usable")))?;
        let derive = hmac::Key::new(hmac::HMAC_SHA256, bytes.expose_secret());
        Ok(MasterKey { aead: LessSafeKey::new(key), derive })
    }

    /// A 32-byte secret derived from the master key for `purpose`: the same on every node
    /// that shares the key, and nothing to store.
    pub fn derive(&self, purpose: &str) -> SecretBox<Vec<u8>> {
        let tag = hmac::sign(&self.derive, format!("forge/derive/{purpose}").as_bytes());
        SecretBox::new(Box::new(tag.as_ref().to_vec()))
    }

    /// Seals `plaintext` for `purpose` (for example `project:<ref>:jwt_secret`).
    pub fn seal(&self, plaintext: &[u8], purpose: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // The system's random source failing is not something to carry on after.
        SystemRandom::new().fill(&mut nonce).expect("the system random source");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(purpose.as_bytes()), &mut body)
            .expect("AES-GCM seals any length below 64 GiB");
        out.extend_from_slice(&body);
        out
    }

    /// Opens what [`MasterKey::seal`] sealed for the same `purpose`.
    pub fn open(&self, sealed: &[u8], purpose: &str) -> Result<SecretBox<Vec<u8>>, Unsealable> {
        let (&version, rest) = sealed.split_first().ok_or(Unsealable)?;
        if version != VERSION || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Unsealable);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut body = body.to_vec();
        let plain = self.aead.open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body).map_err(|_| Unsealable)?;
        let plain = plain.to_vec();
        Ok(SecretBox::new(Box::new(plain)))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_purpose_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(None, dir.path()).unwrap();
        let sealed = key.seal(b"the project's secret", "project:abc:jwt_secret");
        assert_eq!(key.open(&sealed, "project:abc:jwt_secret").unwrap().expose_secret(), b"the project's secret");
        assert!(!sealed.windows(6).any(|w| w == b"secret"), "the plaintext is not in the sealed bytes");
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(key.seal(b"x", "p"), key.seal(b"x", "p"));

        assert_eq!(key.open(&sealed, "project:abd:jwt_secret").unwrap_err(), Unsealable);
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1;
            assert!(key.open(&tampered, "project:abc:jwt_secret").is_err(), "byte {i}");
        }
        assert!(key.open(&sealed[..sealed.len() - 1], "project:abc:jwt_secret").is_err());
        assert!(key.open(&[], "project:abc:jwt_secret").is_err());

        let other = MasterKey::load_or_create(None, tempfile::tempdir().unwrap().path()).unwrap();
        assert!(other.open(&sealed, "project:abc:jwt_secret").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn the_key_is_made_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load_or_create(None, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = MasterKey::load_or_create(None, dir.path()).unwrap();
        let sealed = first.seal(b"v", "p");
        assert_eq!(again.open(&sealed, "p").unwrap().expose_secret(), b"v");
    }

    #[test]
    fn a_configured_key_wins_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = URL_SAFE_NO_PAD.encode([7u8; KEY_LEN]);
        let configured = MasterKey::load_or_create(Some(&SecretString::from(text.clone())), dir.path()).unwrap();
        assert!(!dir.path().join(FILE).exists(), "a configured key writes no file");
        let same = MasterKey::from_text(&SecretString::from(text), "test").unwrap();
        assert_eq!(same.open(&configured.seal(b"v", "p"), "p").unwrap().expose_secret(), b"v");

        for bad in ["not base64!", "c2hvcnQ", ""] {
            let e = MasterKey::load_or_create(Some(&SecretString::from(bad.to_owned())), dir.path()).unwrap_err();
            assert!(e.to_string().contains("FORGE_MASTER_KEY"), "{e}");
            assert!(!e.to_string().contains(bad) || bad.is_empty(), "the key is not echoed: {e}");
        }
    }
}
