//! Projects: list, create, get, delete, pause, restore, transfer.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Body, ErrorBody, Need, organization_for, project_for, rfc3339};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::store::ProjectRow;
use crate::platform::users::Caller;

/// A project as the API shows it (Supabase's fields, plus the URL clients are given).
#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    /// Its ref (Supabase sends the ref as the id too).
    pub id: String,
    /// Its ref: the `{ref}` of its paths.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Its organization's id (slug).
    pub organization_id: String,
    /// Its organization's slug.
    pub organization_slug: String,
    /// Its name.
    pub name: String,
    /// Its region (informational).
    pub region: String,
    /// Its plan.
    pub plan: String,
    /// `COMING_UP`, `ACTIVE_HEALTHY`, `INACTIVE` (paused) or `GOING_DOWN`.
    #[schema(example = "ACTIVE_HEALTHY")]
    pub status: String,
    /// When it was made.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Where its services are served: give it to Supabase's clients with an API key.
    pub url: String,
}

impl Project {
    fn of(platform: &Platform, row: &ProjectRow) -> Self {
        let base = platform.registry().config().public_url.trim_end_matches('/').to_owned();
        let url = if row.cluster_id.is_none() { base } else { format!("{base}/p/{}", row.reference) };
        Project {
            id: row.reference.clone(),
            reference: row.reference.clone(),
            organization_id: row.organization_slug.clone(),
            organization_slug: row.organization_slug.clone(),
            name: row.name.clone(),
            region: row.region.clone(),
            plan: row.plan.clone(),
            status: row.status().wire().to_owned(),
            created_at: rfc3339(row.created_at),
            url,
        }
    }
}

/// A project as the API shows it, as JSON (for the command line).
pub(crate) fn shown(platform: &Platform, row: &ProjectRow) -> Value {
    serde_json::to_value(Project::of(platform, row)).unwrap_or_default()
}

/// A deleted project.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedProject {
    /// Its ref.
    pub id: String,
    /// Its ref.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Its name.
    pub name: String,
}

/// `GET /v1/projects`: the projects of the caller's organizations.
#[utoipa::path(
    get,
    path = "/projects",
    operation_id = "v1-list-all-projects",
    tag = "projects",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The projects of the caller's organizations", body = Vec<Project>),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    )
)]
pub async fn list(State(platform): State<Platform>, caller: Caller) -> Result<axum::Json<Vec<Project>>, Error> {
    let rows = platform.store().projects(Some(caller.user_id)).await?;
    Ok(axum::Json(rows.iter().map(|r| Project::of(&platform, r)).collect()))
}

/// A new project.
#[derive(Debug, Deserialize, ToSchema)]
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
#[utoipa::path(
    post,
    path = "/projects",
    operation_id = "v1-create-a-project",
    tag = "projects",
    security(("bearer" = [])),
    request_body = CreateProject,
    responses(
        (status = 201, description = "The new project, ready", body = Project),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators may create projects", body = ErrorBody),
        (status = 404, description = "No such organization of the caller's", body = ErrorBody),
        (status = 409, description = "The name is taken in the organization", body = ErrorBody),
    )
)]
pub async fn create(
    State(platform): State<Platform>,
    caller: Caller,
    Body(req): Body<CreateProject>,
) -> Result<(http::StatusCode, axum::Json<Project>), Error> {
    let (org, _) = organization_for(&platform, &caller, &req.organization_id, Need::Admin).await?;
    let row = platform.create_project(&org, &req.name, req.region.as_deref().unwrap_or(""), &caller.actor()).await?;
    Ok((http::StatusCode::CREATED, axum::Json(Project::of(&platform, &row))))
}

/// `GET /v1/projects/{ref}`.
#[utoipa::path(
    get,
    path = "/projects/{ref}",
    operation_id = "v1-get-project",
    tag = "projects",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
    )
)]
pub async fn get(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<Project>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Read).await?;
    Ok(axum::Json(Project::of(&platform, &row)))
}

/// `DELETE /v1/projects/{ref}` (owners and administrators).
#[utoipa::path(
    delete,
    path = "/projects/{ref}",
    operation_id = "v1-delete-a-project",
    tag = "projects",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    responses(
        (status = 200, description = "Deleted, with its database", body = DeletedProject),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators may delete projects", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        (status = 409, description = "The default project cannot be deleted", body = ErrorBody),
    )
)]
pub async fn delete(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<DeletedProject>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    platform.delete_project(&row, &caller.actor()).await?;
    Ok(axum::Json(DeletedProject { id: row.reference.clone(), reference: row.reference, name: row.name }))
}

/// `POST /v1/projects/{ref}/pause` (owners and administrators).
#[utoipa::path(
    post,
    path = "/projects/{ref}/pause",
    operation_id = "v1-pause-a-project",
    tag = "projects",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    responses(
        (status = 200, description = "The project, paused (`INACTIVE`)", body = Project),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators may pause projects", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        (status = 409, description = "The project cannot be paused now", body = ErrorBody),
    )
)]
pub async fn pause(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<Project>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    platform.pause_project(&row, &caller.actor()).await?;
    let row = platform.store().project(&reference).await?.ok_or_else(|| Error::not_found("Project"))?;
    Ok(axum::Json(Project::of(&platform, &row)))
}

/// `POST /v1/projects/{ref}/restore` (owners and administrators).
#[utoipa::path(
    post,
    path = "/projects/{ref}/restore",
    operation_id = "v1-restore-a-project",
    tag = "projects",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    responses(
        (status = 200, description = "The project, active again", body = Project),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators may restore projects", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        (status = 409, description = "The project cannot be restored now", body = ErrorBody),
    )
)]
pub async fn restore(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<Project>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    platform.restore_project(&row, &caller.actor()).await?;
    let row = platform.store().project(&reference).await?.ok_or_else(|| Error::not_found("Project"))?;
    Ok(axum::Json(Project::of(&platform, &row)))
}

/// Where to move a project.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Transfer {
    /// The target organization's id (slug); the caller must administer both.
    pub target_organization_slug: String,
}

/// `POST /v1/projects/{ref}/transfer`.
#[utoipa::path(
    post,
    path = "/projects/{ref}/transfer",
    operation_id = "v1-transfer-a-project",
    tag = "projects",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    request_body = Transfer,
    responses(
        (status = 200, description = "The project, in its new organization", body = Project),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "The caller does not administer both organizations", body = ErrorBody),
        (status = 404, description = "No such project or organization of the caller's", body = ErrorBody),
        (status = 409, description = "The default project stays in the default organization", body = ErrorBody),
    )
)]
pub async fn transfer(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(req): Body<Transfer>,
) -> Result<axum::Json<Project>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    let (to, _) = organization_for(&platform, &caller, &req.target_organization_slug, Need::Admin).await?;
    if row.cluster_id.is_none() {
        return Err(Error::conflict("The default project stays in the default organization"));
    }
    platform.transfer_project(&row, &to, &caller.actor()).await?;
    let row = platform.store().project(&reference).await?.ok_or_else(|| Error::not_found("Project"))?;
    Ok(axum::Json(Project::of(&platform, &row)))
}
