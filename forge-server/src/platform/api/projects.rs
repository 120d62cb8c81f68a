//! Projects: list, create, get, delete, pause, restore, transfer.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, Need, organization_for, project_for, rfc3339};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::store::ProjectRow;
use crate::platform::users::Caller;

/// A project as the API shows it (Supabase's fields, plus the URL clients are given).
pub(crate) fn shown(platform: &Platform, row: &ProjectRow) -> Value {
    let base = platform.registry().config().public_url.trim_end_matches('/').to_owned();
    let url = if row.cluster_id.is_none() { base } else { format!("{base}/p/{}", row.reference) };
    json!({
        "id": row.reference,
        "ref": row.reference,
        "organization_id": row.organization_slug,
        "organization_slug": row.organization_slug,
        "name": row.name,
        "region": row.region,
        "plan": row.plan,
        "status": row.status().wire(),
        "created_at": rfc3339(row.created_at),
        "url": url,
    })
}

/// `GET /v1/projects`: the projects of the caller's organizations.
pub async fn list(State(platform): State<Platform>, caller: Caller) -> Result<axum::Json<Value>, Error> {
    let rows = platform.store().projects(Some(caller.user_id)).await?;
    Ok(axum::Json(Value::Array(rows.iter().map(|r| shown(&platform, r)).collect())))
}

/// A new project.
#[derive(Debug, Deserialize)]
pub struct CreateProject {
    /// Its name.
    pub name: String,
    /// The organization's id (slug).
    pub organization_id: String,
    /// The region (informational here).
    #[serde(default)]
    pub region: Option<String>,
    /// Supabase's clients send a database password; a Forge project's database is reached
    /// through the API only, so it is accepted and not used.
    #[serde(default)]
    pub db_pass: Option<String>,
}

/// `POST /v1/projects` (owners and administrators).
pub async fn create(
    State(platform): State<Platform>,
    caller: Caller,
    Body(req): Body<CreateProject>,
) -> Result<Response, Error> {
    let (org, _) = organization_for(&platform, &caller, &req.organization_id, Need::Admin).await?;
    let row = platform.create_project(&org, &req.name, req.region.as_deref().unwrap_or(""), &caller.actor()).await?;
    Ok((http::StatusCode::CREATED, axum::Json(shown(&platform, &row))).into_response())
}

/// `GET /v1/projects/{ref}`.
pub async fn get(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Read).await?;
    Ok(axum::Json(shown(&platform, &row)))
}

/// `DELETE /v1/projects/{ref}` (owners and administrators).
pub async fn delete(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    platform.delete_project(&row, &caller.actor()).await?;
    Ok(axum::Json(json!({ "id": row.reference, "ref": row.reference, "name": row.name })))
}

/// `POST /v1/projects/{ref}/pause` (owners and administrators).
pub async fn pause(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    platform.pause_project(&row, &caller.actor()).await?;
    let row = platform.store().project(&reference).await?.ok_or_else(|| Error::not_found("Project"))?;
    Ok(axum::Json(shown(&platform, &row)))
}

/// `POST /v1/projects/{ref}/restore` (owners and administrators).
pub async fn restore(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    platform.restore_project(&row, &caller.actor()).await?;
    let row = platform.store().project(&reference).await?.ok_or_else(|| Error::not_found("Project"))?;
    Ok(axum::Json(shown(&platform, &row)))
}

/// Where to move a project.
#[derive(Debug, Deserialize)]
pub struct Transfer {
    /// The target organization's id (slug); the caller must administer both.
    pub target_organization_slug: String,
}

/// `POST /v1/projects/{ref}/transfer`.
pub async fn transfer(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(req): Body<Transfer>,
) -> Result<axum::Json<Value>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    let (to, _) = organization_for(&platform, &caller, &req.target_organization_slug, Need::Admin).await?;
    if row.cluster_id.is_none() {
        return Err(Error::conflict("The default project stays in the default organization"));
    }
    platform.transfer_project(&row, &to, &caller.actor()).await?;
    let row = platform.store().project(&reference).await?.ok_or_else(|| Error::not_found("Project"))?;
    Ok(axum::Json(shown(&platform, &row)))
}
