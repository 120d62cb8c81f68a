//! The Management API at `/v1`, in the paths and shapes of Supabase's where it has them.
//! Every route but `POST /v1/setup` needs `Authorization: Bearer` with a personal access token
//! or a platform session, and checks the caller's role in the organization that owns what it
//! touches: outsiders get 404 (nothing is revealed), members whose role may not act get 403.
//!
//! | file | routes |
//! |---|---|
//! | [`setup`] | `POST /v1/setup` (the first owner, with the setup link's token) |
//! | [`organizations`] | `/v1/organizations`, members, invitations, audit log |
//! | [`projects`] | `/v1/projects`: list, create, get, delete, pause, restore, transfer |
//! | [`api_keys`] | `/v1/projects/{ref}/api-keys` |
//! | [`database`] | `POST /v1/projects/{ref}/database/query` |
//! | [`tokens`] | `/v1/profile/access-tokens` |

pub mod api_keys;
pub mod database;
pub mod organizations;
pub mod projects;
pub mod setup;
pub mod tokens;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::routing::{get, post};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::platform::Platform;
use crate::platform::error::{Error, ErrorKind};
use crate::platform::store::{Organization, ProjectRow, Role};
use crate::platform::users::Caller;

/// The Management API's routes, to be nested at `/v1`.
pub fn router<S: Clone + Send + Sync + 'static>(platform: &Platform) -> Router<S> {
    Router::new()
        .route("/setup", post(setup::finish))
        .route("/organizations", get(organizations::list).post(organizations::create))
        .route("/organizations/{slug}", get(organizations::get))
        .route("/organizations/{slug}/members", get(organizations::members))
        .route(
            "/organizations/{slug}/members/{user_id}",
            axum::routing::patch(organizations::update_member).delete(organizations::remove_member),
        )
        .route("/organizations/{slug}/members/invitations", post(organizations::invite))
        .route("/organizations/{slug}/audit", get(organizations::audit))
        .route("/invitations/accept", post(organizations::accept))
        .route("/projects", get(projects::list).post(projects::create))
        .route("/projects/{reference}", get(projects::get).delete(projects::delete))
        .route("/projects/{reference}/pause", post(projects::pause))
        .route("/projects/{reference}/restore", post(projects::restore))
        .route("/projects/{reference}/transfer", post(projects::transfer))
        .route("/projects/{reference}/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/projects/{reference}/api-keys/{id}", get(api_keys::get).delete(api_keys::delete))
        .route("/projects/{reference}/database/query", post(database::query))
        .route("/profile/access-tokens", get(tokens::list).post(tokens::create))
        .route("/profile/access-tokens/{id}", axum::routing::delete(tokens::delete))
        .fallback(not_found)
        .with_state(platform.clone())
}

async fn not_found() -> Error {
    Error::new(ErrorKind::NotFound, "No such Management API route")
}

impl FromRequestParts<Platform> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, platform: &Platform) -> Result<Self, Self::Rejection> {
        let refused = || Error::new(ErrorKind::Unauthorized, "A valid access token or platform session is required");
        let header = parts.headers.get(http::header::AUTHORIZATION).ok_or_else(refused)?;
        let value = header.to_str().map_err(|_| refused())?;
        let (scheme, token) = value.trim().split_once(' ').ok_or_else(refused)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.len() > 8 * 1024 {
            return Err(refused());
        }
        platform.caller(token.trim()).await
    }
}

/// A JSON body whose rejection is the control plane's 400.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(Error::invalid(rejection.body_text())),
        }
    }
}

/// What a route needs of the caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Any member.
    Read,
    /// Anyone but read-only members.
    Write,
    /// Owners and administrators.
    Admin,
}

impl Need {
    fn allows(self, role: Role) -> bool {
        match self {
            Need::Read => true,
            Need::Write => role.can_write(),
            Need::Admin => role.is_admin(),
        }
    }
}

fn refuse(need: Need) -> Error {
    match need {
        Need::Admin => Error::forbidden("Only owners and administrators may do this"),
        _ => Error::forbidden("Read-only members may not change anything"),
    }
}

/// The organization `slug` and the caller's role in it, refused as 404 for outsiders and 403
/// for members whose role is not enough.
pub(crate) async fn organization_for(
    platform: &Platform,
    caller: &Caller,
    slug: &str,
    need: Need,
) -> Result<(Organization, Role), Error> {
    let store = platform.store();
    let org = store.organization(slug).await?.ok_or_else(|| Error::not_found("Organization"))?;
    let role = store.role(org.id, caller.user_id).await?.ok_or_else(|| Error::not_found("Organization"))?;
    if !need.allows(role) {
        return Err(refuse(need));
    }
    Ok((org, role))
}

/// The project `reference` and the caller's role in its organization (404 for outsiders).
pub(crate) async fn project_for(
    platform: &Platform,
    caller: &Caller,
    reference: &str,
    need: Need,
) -> Result<(ProjectRow, Role), Error> {
    let store = platform.store();
    let row = store.project(reference).await?.ok_or_else(|| Error::not_found("Project"))?;
    let role = store.role(row.organization_id, caller.user_id).await?.ok_or_else(|| Error::not_found("Project"))?;
    if !need.allows(role) {
        return Err(refuse(need));
    }
    Ok((row, role))
}

/// A timestamp as the API shows it.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
