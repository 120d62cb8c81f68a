//! A managed project's key material in the control plane: its legacy JWT secret, its
//! asymmetric signing keys (current, standby, previous) and its API keys, each sealed under the
//! master key with its own purpose, and the [`ProjectKeys`] built from them.
//!
//! A new project's first API keys are the four Forge derives from its secret (so a project's
//! default keys look as they always have); later keys are random opaque ones or freshly
//! minted JWTs with their own `jti`. Only live keys are accepted: revoking one removes it from
//! the managed set every node rebuilds when the project's revision changes.

use aws_lc_rs::digest;
use forge_core::keys::{
    ApiKey, ApiKeyKind, KeyAlgorithm, SigningKey, VerifyConfig, generate_opaque_key, generate_secret,
    generate_signing_key_pkcs8,
};
use forge_core::{ProjectKeys, ProjectRef};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::platform::error::{Error, Result};
use crate::platform::master_key::MasterKey;
use crate::platform::store::{ApiKeyRow, Store};

/// Bytes of a new project's JWT secret.
const SECRET_LEN: usize = 48;

fn secret_purpose(reference: &str) -> String {
    format!("project:{reference}:jwt_secret")
}

fn signing_purpose(reference: &str, id: Uuid) -> String {
    format!("project:{reference}:signing_key:{id}")
}

fn api_key_purpose(reference: &str, id: Uuid) -> String {
    format!("project:{reference}:api_key:{id}")
}

/// The SHA-256 of a key or token: what the control plane finds them by.
pub fn hash(value: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, value.as_bytes()).as_ref().to_vec()
}

/// What a listing shows of a key: a publishable key whole (it is public), else its start.
pub fn shown_prefix(kind: ApiKeyKind, value: &str) -> String {
    match kind {
        ApiKeyKind::Publishable => value.to_owned(),
        ApiKeyKind::Secret => value.chars().take(14).collect(),
        ApiKeyKind::Anon | ApiKeyKind::ServiceRole => value.chars().take(20).collect(),
    }
}

/// Makes and stores a new project's secret, signing keys and first API keys, inside the
/// caller's transaction. Returns the project's keys.
pub async fn create(
    conn: &mut PgConnection,
    store: &Store,
    master: &MasterKey,
    reference: &ProjectRef,
    verify: &VerifyConfig,
    created_by: Option<Uuid>,
) -> Result<ProjectKeys> {
    let r = reference.as_str();
    let secret = generate_secret(SECRET_LEN);
    store.put_secret(&mut *conn, r, &master.seal(&secret, &secret_purpose(r))).await?;
    let mut signing = Vec::new();
    for status in ["current", "standby"] {
        let der = generate_signing_key_pkcs8(KeyAlgorithm::Es256).map_err(Error::internal)?;
        let key = SigningKey::from_pkcs8_der(&der).map_err(Error::internal)?;
        let id = Uuid::new_v4();
        let sealed = master.seal(&der, &signing_purpose(r, id));
        store.insert_signing_key(&mut *conn, id, r, status, key.algorithm(), key.kid(), &sealed).await?;
        signing.push(key);
    }
    let builder = |signing: &[SigningKey]| {
        let mut b = ProjectKeys::builder(reference.clone(), secret.clone()).verify(verify.clone());
        for (i, key) in signing.iter().enumerate() {
            b = if i == 0 { b.signing_key(key.clone()) } else { b.verification_key(key.clone()) };
        }
        b
    };
    let derived = builder(&signing).build().map_err(Error::internal)?.derived_api_keys();
    for key in &derived {
        let name = match key.kind {
            ApiKeyKind::Anon => "anon",
            ApiKeyKind::ServiceRole => "service_role",
            ApiKeyKind::Publishable | ApiKeyKind::Secret => "default",
        };
        insert_key(conn, store, master, reference, key, name, created_by, Uuid::new_v4()).await?;
    }
    builder(&signing).api_keys(derived).build().map_err(Error::internal)
}

/// Stores `key` as a live key of the project.
#[allow(clippy::too_many_arguments)]
async fn insert_key(
    conn: &mut PgConnection,
    store: &Store,
    master: &MasterKey,
    reference: &ProjectRef,
    key: &ApiKey,
    name: &str,
    created_by: Option<Uuid>,
    id: Uuid,
) -> Result<()> {
    let r = reference.as_str();
    let value = key.value.expose_secret();
    let sealed = master.seal(value.as_bytes(), &api_key_purpose(r, id));
    store
        .insert_api_key(
            &mut *conn,
            id,
            r,
            key.kind.as_str(),
            name,
            &shown_prefix(key.kind, value),
            &hash(value),
            &sealed,
            created_by,
        )
        .await
}

/// Makes a new API key of `kind` for a project whose keys are `keys`, stores it, and returns
/// its id and value.
#[allow(clippy::too_many_arguments)]
pub async fn add(
    conn: &mut PgConnection,
    store: &Store,
    master: &MasterKey,
    keys: &ProjectKeys,
    reference: &ProjectRef,
    kind: ApiKeyKind,
    name: &str,
    created_by: Option<Uuid>,
) -> Result<(Uuid, SecretString)> {
    let id = Uuid::new_v4();
    let value = match generate_opaque_key(kind) {
        Some(v) => v,
        None => SecretString::from(keys.mint_api_jwt(kind, &id.to_string()).map_err(Error::internal)?),
    };
    let key = ApiKey::new(kind, value.clone());
    insert_key(conn, store, master, reference, &key, name, created_by, id).await?;
    Ok((id, value))
}

/// Opens a stored key's value.
pub fn reveal(master: &MasterKey, reference: &str, row: &ApiKeyRow) -> Result<SecretString> {
    let opened = master.open(&row.sealed, &api_key_purpose(reference, row.id)).map_err(Error::internal)?;
    let text = String::from_utf8(opened.expose_secret().clone()).map_err(Error::internal)?;
    Ok(SecretString::from(text))
}

/// The project's keys as the control plane has them now.
pub async fn load_from(
    store: &Store,
    master: &MasterKey,
    reference: &ProjectRef,
    verify: &VerifyConfig,
) -> Result<ProjectKeys> {
    let r = reference.as_str();
    let sealed = store.secret(r).await?.ok_or_else(|| Error::internal(format!("project {r} has no secret")))?;
    let secret = master.open(&sealed, &secret_purpose(r)).map_err(Error::internal)?;
    let mut builder = ProjectKeys::builder(reference.clone(), secret.expose_secret().clone()).verify(verify.clone());
    for (id, status, sealed) in store.signing_keys(r).await? {
        let der = master.open(&sealed, &signing_purpose(r, id)).map_err(Error::internal)?;
        let key = SigningKey::from_pkcs8_der(der.expose_secret()).map_err(Error::internal)?;
        builder = if status == "current" { builder.signing_key(key) } else { builder.verification_key(key) };
    }
    let mut live = Vec::new();
    for row in store.api_keys(r).await? {
        let kind: ApiKeyKind = row.kind.parse().map_err(Error::internal)?;
        live.push(ApiKey::new(kind, reveal(master, r, &row)?));
    }
    builder.api_keys(live).build().map_err(Error::internal)
}

/// Adds a new standby signing key to a project, inside the caller's transaction.
pub async fn add_standby(conn: &mut PgConnection, store: &Store, master: &MasterKey, reference: &str) -> Result<Uuid> {
    let der = generate_signing_key_pkcs8(KeyAlgorithm::Es256).map_err(Error::internal)?;
    let key = SigningKey::from_pkcs8_der(&der).map_err(Error::internal)?;
    let id = Uuid::new_v4();
    let sealed = master.seal(&der, &signing_purpose(reference, id));
    store.insert_signing_key(&mut *conn, id, reference, "standby", key.algorithm(), key.kid(), &sealed).await?;
    Ok(id)
}

/// A stored signing key's public JWK.
pub fn public_jwk(
    master: &MasterKey,
    reference: &str,
    row: &crate::platform::store::SigningKeyRow,
) -> Result<serde_json::Value> {
    let der = master.open(&row.private_key, &signing_purpose(reference, row.id)).map_err(Error::internal)?;
    let key = SigningKey::from_pkcs8_der(der.expose_secret()).map_err(Error::internal)?;
    Ok(key.public_jwk().clone())
}

fn owner_purpose(reference: &str) -> String {
    format!("project:{reference}:owner_password")
}

/// A new owner password: 32 random alphanumeric characters.
pub fn new_owner_password() -> SecretString {
    use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut raw = [0u8; 32];
    SystemRandom::new().fill(&mut raw).expect("the system random source");
    SecretString::from(raw.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect::<String>())
}

/// Seals and stores a project's owner password.
pub async fn put_owner_password(
    store: &Store,
    master: &MasterKey,
    reference: &str,
    password: &SecretString,
) -> Result<()> {
    store
        .put_owner_password(reference, &master.seal(password.expose_secret().as_bytes(), &owner_purpose(reference)))
        .await
}

/// A project's owner password.
pub async fn owner_password(store: &Store, master: &MasterKey, reference: &str) -> Result<SecretString> {
    let sealed = store
        .owner_password(reference)
        .await?
        .ok_or_else(|| Error::internal(format!("project {reference} has no owner password")))?;
    let opened = master.open(&sealed, &owner_purpose(reference)).map_err(Error::internal)?;
    Ok(SecretString::from(String::from_utf8(opened.expose_secret().clone()).map_err(Error::internal)?))
}
