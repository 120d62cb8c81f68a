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
//! | [`docs`] | `GET /openapi.json` (this API's OpenAPI 3.1 document) and the docs page at `/docs` |
//! | [`usage`] | `GET /v1/projects/{ref}/usage` |
//! | [`signing_keys`] | `/v1/projects/{ref}/config/auth/signing-keys`: list, rotate, delete |
//!
//! Routes and the OpenAPI document are declared together: each handler's `#[utoipa::path]`
//! names its method, path, parameters, body and answers, and [`routes`] registers the handlers
//! with `utoipa_axum`'s `routes!`, which builds the axum route and the spec's operation from
//! that one declaration. [`router`] serves them; [`openapi`] is the document served at
//! `/openapi.json`. To add an endpoint: write its handler in a file here with
//! `#[utoipa::path(..., security(("bearer" = [])), responses(...))]`, derive `ToSchema` on its
//! body and answer types, and add `.routes(routes!(file::handler))` to [`routes`] (handlers
//! that share a path go in one `routes!`); `tests/openapi.rs` lists every route and fails
//! until the new one is listed there too.

pub mod api_keys;
pub mod database;
pub mod docs;
pub mod organizations;
pub mod projects;
pub mod setup;
pub mod signing_keys;
pub mod tokens;
pub mod usage;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::platform::Platform;
use crate::platform::error::{Error, ErrorKind};
use crate::platform::store::{Organization, ProjectRow, Role};
use crate::platform::users::Caller;

/// The Management API's routes and their OpenAPI operations, relative to `/v1`.
fn routes() -> OpenApiRouter<Platform> {
    OpenApiRouter::new()
        .routes(routes!(setup::finish))
        .routes(routes!(organizations::list, organizations::create))
        .routes(routes!(organizations::get))
        .routes(routes!(organizations::members))
        .routes(routes!(organizations::update_member, organizations::remove_member))
        .routes(routes!(organizations::invite))
        .routes(routes!(organizations::audit))
        .routes(routes!(organizations::accept))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get, projects::delete))
        .routes(routes!(projects::pause))
        .routes(routes!(projects::restore))
        .routes(routes!(projects::transfer))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::get, api_keys::delete))
        .routes(routes!(database::query))
        .routes(routes!(usage::get))
        .routes(routes!(signing_keys::list))
        .routes(routes!(signing_keys::rotate))
        .routes(routes!(signing_keys::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::delete))
}

/// The Management API's routes, to be nested at `/v1`.
pub fn router<S: Clone + Send + Sync + 'static>(platform: &Platform) -> Router<S> {
    let (router, _) = routes().split_for_parts();
    router.fallback(not_found).with_state(platform.clone())
}

/// The Management API's OpenAPI 3.1 document, paths under `/v1`, from the same declarations
/// as [`router`]'s routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/v1", routes()).into_openapi()
}

/// The document's frame: what [`routes`] does not say.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Forge Management API",
        description = "Organizations, projects, their API keys and databases, and personal access tokens, in the \
                       paths and shapes of Supabase's Management API. Send `Authorization: Bearer` with a personal \
                       access token (`sbp_...`) or a platform session's access token. Errors answer \
                       `{code, message}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "setup", description = "The platform's first owner"),
        (name = "organizations", description = "Organizations, members, invitations and the audit log"),
        (name = "projects", description = "Projects and their lifecycle"),
        (name = "api-keys", description = "A project's API keys"),
        (name = "database", description = "SQL against a project's database"),
        (name = "auth", description = "A project's JWT signing keys"),
        (name = "profile", description = "The caller's personal access tokens"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme the operations name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("A personal access token (`sbp_...`) or a platform session's access token".into());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every error's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `not_found`, `invalid_request`, `conflict`,
    /// `setup_required`, `setup_done`, `query_failed`, or a server error's code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
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

/// A query string whose rejection is the control plane's 400 (not axum's plain text).
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
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
