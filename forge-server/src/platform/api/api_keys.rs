//! A project's API keys: the publishable and secret keys and the legacy anon and
//! service_role JWTs, each listed, created, revealed and revoked on its own.
//!
//! Keys that run as `anon` (publishable, legacy anon) are public and shown to every member.
//! Keys that run as `service_role` are shown only with `?reveal=true`, and only to owners and
//! administrators; otherwise `api_key` is null and `prefix` tells them apart.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use forge_core::keys::ApiKeyKind;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Body, Need, project_for, rfc3339};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::store::{ApiKeyRow, ProjectRow, Role};
use crate::platform::users::Caller;

/// Whether keys are revealed.
#[derive(Debug, Deserialize)]
pub struct Reveal {
    /// Show service-role keys (owners and administrators).
    #[serde(default)]
    pub reveal: bool,
}

fn wire_type(kind: ApiKeyKind) -> &'static str {
    match kind {
        ApiKeyKind::Publishable => "publishable",
        ApiKeyKind::Secret => "secret",
        ApiKeyKind::Anon | ApiKeyKind::ServiceRole => "legacy",
    }
}

fn shown(platform: &Platform, project: &ProjectRow, row: &ApiKeyRow, role: Role, reveal: bool) -> Result<Value, Error> {
    let kind: ApiKeyKind = row.kind.parse().map_err(Error::internal)?;
    let visible = kind.role() == "anon" || (reveal && role.is_admin());
    let api_key =
        if visible { Some(platform.reveal_key(&project.reference, row)?.expose_secret().to_owned()) } else { None };
    Ok(json!({
        "id": row.id,
        "name": row.name,
        "type": wire_type(kind),
        "kind": kind.as_str(),
        "role": kind.role(),
        "prefix": row.prefix,
        "api_key": api_key,
        "inserted_at": rfc3339(row.created_at),
    }))
}

/// The default project's keys, which come from the server's configuration.
fn default_keys(platform: &Platform, project: &ProjectRow, role: Role, reveal: bool) -> Result<Value, Error> {
    let pinned = platform.registry().pinned(&project.reference).ok_or_else(|| Error::not_found("Project"))?;
    let keys = pinned.keys();
    let list: Vec<Value> = keys
        .derived_api_keys()
        .iter()
        .map(|k| {
            let visible = k.kind.role() == "anon" || (reveal && role.is_admin());
            let value = k.value.expose_secret();
            json!({
                "id": k.kind.as_str(),
                "name": match k.kind { ApiKeyKind::Anon => "anon", ApiKeyKind::ServiceRole => "service_role", _ => "default" },
                "type": wire_type(k.kind),
                "kind": k.kind.as_str(),
                "role": k.kind.role(),
                "prefix": crate::platform::keys::shown_prefix(k.kind, value),
                "api_key": visible.then(|| value.to_owned()),
            })
        })
        .collect();
    Ok(Value::Array(list))
}

/// `GET /v1/projects/{ref}/api-keys`.
pub async fn list(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
    Query(q): Query<Reveal>,
) -> Result<axum::Json<Value>, Error> {
    let (project, role) = project_for(&platform, &caller, &reference, Need::Read).await?;
    if project.cluster_id.is_none() {
        return Ok(axum::Json(default_keys(&platform, &project, role, q.reveal)?));
    }
    let rows = platform.store().api_keys(&project.reference).await?;
    let list = rows.iter().map(|r| shown(&platform, &project, r, role, q.reveal)).collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(Value::Array(list)))
}

/// `GET /v1/projects/{ref}/api-keys/{id}`.
pub async fn get(
    State(platform): State<Platform>,
    caller: Caller,
    Path((reference, id)): Path<(String, String)>,
    Query(q): Query<Reveal>,
) -> Result<axum::Json<Value>, Error> {
    let (project, role) = project_for(&platform, &caller, &reference, Need::Read).await?;
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("API key"))?;
    let rows = platform.store().api_keys(&project.reference).await?;
    let row = rows.iter().find(|r| r.id == id).ok_or_else(|| Error::not_found("API key"))?;
    Ok(axum::Json(shown(&platform, &project, row, role, q.reveal)?))
}

/// A new key.
#[derive(Debug, Deserialize)]
pub struct CreateKey {
    /// `publishable`, `secret`, `legacy_anon` or `legacy_service_role`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// `POST /v1/projects/{ref}/api-keys`: developers may make publishable and anon keys;
/// service-role keys need an owner or administrator. The new key is answered once in full.
pub async fn create(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(req): Body<CreateKey>,
) -> Result<Response, Error> {
    let kind: ApiKeyKind = req
        .kind
        .parse()
        .map_err(|_| Error::invalid("type must be publishable, secret, legacy_anon or legacy_service_role"))?;
    let need = if kind.role() == "anon" { Need::Write } else { Need::Admin };
    let (project, _) = project_for(&platform, &caller, &reference, need).await?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(Error::invalid("A key's name must have 1 to 128 characters"));
    }
    let (id, value) = platform.add_api_key(&project, kind, name, &caller.actor()).await?;
    let body = json!({
        "id": id, "name": name, "type": wire_type(kind), "kind": kind.as_str(), "role": kind.role(),
        "prefix": crate::platform::keys::shown_prefix(kind, value.expose_secret()),
        "api_key": value.expose_secret(),
    });
    Ok((http::StatusCode::CREATED, axum::Json(body)).into_response())
}

/// `DELETE /v1/projects/{ref}/api-keys/{id}`: revokes the key (owners and administrators, or
/// developers for anon keys).
pub async fn delete(
    State(platform): State<Platform>,
    caller: Caller,
    Path((reference, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, Error> {
    let (project, role) = project_for(&platform, &caller, &reference, Need::Write).await?;
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("API key"))?;
    let rows = platform.store().api_keys(&project.reference).await?;
    let row = rows.iter().find(|r| r.id == id).ok_or_else(|| Error::not_found("API key"))?;
    let kind: ApiKeyKind = row.kind.parse().map_err(Error::internal)?;
    if kind.role() != "anon" && !role.is_admin() {
        return Err(Error::forbidden("Only owners and administrators may do this"));
    }
    platform.revoke_api_key(&project, id, &caller.actor()).await?;
    Ok(axum::Json(json!({ "id": id, "name": row.name })))
}
