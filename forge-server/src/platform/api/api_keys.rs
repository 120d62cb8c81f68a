//! A project's API keys: the publishable and secret keys and the legacy anon and
//! service_role JWTs, each listed, created, revealed and revoked on its own.
//!
//! Keys that run as `anon` (publishable, legacy anon) are public and shown to every member.
//! Keys that run as `service_role` are shown only with `?reveal=true`, and only to owners and
//! administrators; otherwise `api_key` is null and `prefix` tells them apart.

use axum::extract::{Path, State};
use forge_core::keys::ApiKeyKind;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Body, ErrorBody, Need, Params, project_for, rfc3339};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::store::{ApiKeyRow, ProjectRow, Role};
use crate::platform::users::Caller;

/// Whether keys are revealed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Reveal {
    /// Show service-role keys (owners and administrators).
    #[serde(default)]
    pub reveal: bool,
}

/// An API key as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    /// Its id (a UUID; the default project's keys, which come from the server's
    /// configuration, are named by their kind).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `publishable`, `secret` or `legacy`.
    #[serde(rename = "type")]
    #[schema(example = "publishable")]
    pub wire_type: String,
    /// `publishable`, `secret`, `legacy_anon` or `legacy_service_role`.
    #[schema(example = "legacy_anon")]
    pub kind: String,
    /// The Postgres role it runs as: `anon` or `service_role`.
    pub role: String,
    /// Its first characters, to tell keys apart when the key is not shown.
    pub prefix: String,
    /// The key: always for `anon` keys; for `service_role` keys only with `reveal=true`, to
    /// owners and administrators, and on creation.
    pub api_key: Option<String>,
    /// When it was made (not for the default project's keys, nor in a creation's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub inserted_at: Option<String>,
}

/// A revoked API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedApiKey {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

fn wire_type(kind: ApiKeyKind) -> &'static str {
    match kind {
        ApiKeyKind::Publishable => "publishable",
        ApiKeyKind::Secret => "secret",
        ApiKeyKind::Anon | ApiKeyKind::ServiceRole => "legacy",
    }
}

fn shown(
    platform: &Platform,
    project: &ProjectRow,
    row: &ApiKeyRow,
    role: Role,
    reveal: bool,
) -> Result<ApiKey, Error> {
    let kind: ApiKeyKind = row.kind.parse().map_err(Error::internal)?;
    let visible = kind.role() == "anon" || (reveal && role.is_admin());
    let api_key =
        if visible { Some(platform.reveal_key(&project.reference, row)?.expose_secret().to_owned()) } else { None };
    Ok(ApiKey {
        id: row.id.to_string(),
        name: row.name.clone(),
        wire_type: wire_type(kind).to_owned(),
        kind: kind.as_str().to_owned(),
        role: kind.role().to_owned(),
        prefix: row.prefix.clone(),
        api_key,
        inserted_at: Some(rfc3339(row.created_at)),
    })
}

/// The default project's keys, which come from the server's configuration.
fn default_keys(platform: &Platform, project: &ProjectRow, role: Role, reveal: bool) -> Result<Vec<ApiKey>, Error> {
    let pinned = platform.registry().pinned(&project.reference).ok_or_else(|| Error::not_found("Project"))?;
    let keys = pinned.keys();
    Ok(keys
        .derived_api_keys()
        .iter()
        .map(|k| {
            let visible = k.kind.role() == "anon" || (reveal && role.is_admin());
            let value = k.value.expose_secret();
            let name = match k.kind {
                ApiKeyKind::Anon => "anon",
                ApiKeyKind::ServiceRole => "service_role",
                _ => "default",
            };
            ApiKey {
                id: k.kind.as_str().to_owned(),
                name: name.to_owned(),
                wire_type: wire_type(k.kind).to_owned(),
                kind: k.kind.as_str().to_owned(),
                role: k.kind.role().to_owned(),
                prefix: crate::platform::keys::shown_prefix(k.kind, value),
                api_key: visible.then(|| value.to_owned()),
                inserted_at: None,
            }
        })
        .collect())
}

/// `GET /v1/projects/{ref}/api-keys`.
#[utoipa::path(
    get,
    path = "/projects/{ref}/api-keys",
    operation_id = "v1-get-project-api-keys",
    tag = "api-keys",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref"), Reveal),
    responses(
        (status = 200, description = "The project's keys", body = Vec<ApiKey>),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
    )
)]
pub async fn list(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
    Params(q): Params<Reveal>,
) -> Result<axum::Json<Vec<ApiKey>>, Error> {
    let (project, role) = project_for(&platform, &caller, &reference, Need::Read).await?;
    if project.cluster_id.is_none() {
        return Ok(axum::Json(default_keys(&platform, &project, role, q.reveal)?));
    }
    let rows = platform.store().api_keys(&project.reference).await?;
    let list = rows.iter().map(|r| shown(&platform, &project, r, role, q.reveal)).collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(list))
}

/// `GET /v1/projects/{ref}/api-keys/{id}`.
#[utoipa::path(
    get,
    path = "/projects/{ref}/api-keys/{id}",
    operation_id = "v1-get-project-api-key",
    tag = "api-keys",
    security(("bearer" = [])),
    params(
        ("ref" = String, Path, description = "The project's ref"),
        ("id" = String, Path, description = "The key's id"),
        Reveal,
    ),
    responses(
        (status = 200, description = "The key", body = ApiKey),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such project of the caller's, or no such key", body = ErrorBody),
    )
)]
pub async fn get(
    State(platform): State<Platform>,
    caller: Caller,
    Path((reference, id)): Path<(String, String)>,
    Params(q): Params<Reveal>,
) -> Result<axum::Json<ApiKey>, Error> {
    let (project, role) = project_for(&platform, &caller, &reference, Need::Read).await?;
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("API key"))?;
    let rows = platform.store().api_keys(&project.reference).await?;
    let row = rows.iter().find(|r| r.id == id).ok_or_else(|| Error::not_found("API key"))?;
    Ok(axum::Json(shown(&platform, &project, row, role, q.reveal)?))
}

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateKey {
    /// `publishable`, `secret`, `legacy_anon` or `legacy_service_role`.
    #[serde(rename = "type")]
    #[schema(example = "publishable")]
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// `POST /v1/projects/{ref}/api-keys`: developers may make publishable and anon keys;
/// service-role keys need an owner or administrator. The new key is answered once in full.
#[utoipa::path(
    post,
    path = "/projects/{ref}/api-keys",
    operation_id = "v1-create-project-api-key",
    tag = "api-keys",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    request_body = CreateKey,
    responses(
        (status = 201, description = "The new key, shown in full", body = ApiKey),
        (status = 400, description = "A malformed body, an unknown type or a bad name", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "The caller's role may not make this kind of key", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
    )
)]
pub async fn create(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(req): Body<CreateKey>,
) -> Result<(http::StatusCode, axum::Json<ApiKey>), Error> {
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
    let body = ApiKey {
        id: id.to_string(),
        name: name.to_owned(),
        wire_type: wire_type(kind).to_owned(),
        kind: kind.as_str().to_owned(),
        role: kind.role().to_owned(),
        prefix: crate::platform::keys::shown_prefix(kind, value.expose_secret()),
        api_key: Some(value.expose_secret().to_owned()),
        inserted_at: None,
    };
    Ok((http::StatusCode::CREATED, axum::Json(body)))
}

/// `DELETE /v1/projects/{ref}/api-keys/{id}`: revokes the key (owners and administrators, or
/// developers for anon keys).
#[utoipa::path(
    delete,
    path = "/projects/{ref}/api-keys/{id}",
    operation_id = "v1-delete-project-api-key",
    tag = "api-keys",
    security(("bearer" = [])),
    params(
        ("ref" = String, Path, description = "The project's ref"),
        ("id" = String, Path, description = "The key's id"),
    ),
    responses(
        (status = 200, description = "Revoked: refused from now on", body = RevokedApiKey),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "The caller's role may not revoke this kind of key", body = ErrorBody),
        (status = 404, description = "No such project of the caller's, or no such key", body = ErrorBody),
    )
)]
pub async fn delete(
    State(platform): State<Platform>,
    caller: Caller,
    Path((reference, id)): Path<(String, String)>,
) -> Result<axum::Json<RevokedApiKey>, Error> {
    let (project, role) = project_for(&platform, &caller, &reference, Need::Write).await?;
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("API key"))?;
    let rows = platform.store().api_keys(&project.reference).await?;
    let row = rows.iter().find(|r| r.id == id).ok_or_else(|| Error::not_found("API key"))?;
    let kind: ApiKeyKind = row.kind.parse().map_err(Error::internal)?;
    if kind.role() != "anon" && !role.is_admin() {
        return Err(Error::forbidden("Only owners and administrators may do this"));
    }
    platform.revoke_api_key(&project, id, &caller.actor()).await?;
    Ok(axum::Json(RevokedApiKey { id, name: row.name.clone() }))
}
