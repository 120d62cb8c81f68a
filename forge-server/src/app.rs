//! The HTTP application: liveness and readiness, then every project-scoped service behind
//! the project resolver.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use forge_core::project::ProjectMap;
use forge_core::{ForgeError, Project, ProjectLayer, RefResolver, WireFormat};
use serde_json::json;
use tower::Layer as _;

use forge_auth::Auth;
use forge_data::Data;
use forge_realtime::Realtime;
use forge_storage::Storage;

use crate::config::Config;

/// What the top-level handlers need.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The default project.
    pub project: Project,
}

/// Builds the application for `project`, which is served at the root and at `/p/{ref}`.
pub fn router(
    project: Project,
    data: &Data,
    auth: &Auth,
    storage: &Storage,
    realtime: &Realtime,
    config: &Config,
) -> Router {
    let projects = ProjectMap::new();
    projects.insert(project.clone());
    let resolver = RefResolver::new(projects).by_path_prefix().with_fallback(project.clone());
    let services = Router::new()
        .nest("/rest/v1", data.router())
        .nest("/auth/v1", auth.router())
        .nest("/storage/v1", storage.router())
        .nest("/realtime/v1", realtime.router())
        .fallback(not_found);
    // Around the services router, so a `/p/{ref}` prefix is gone before routing.
    let services = ProjectLayer::new(resolver).layer(services);
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback_service(services)
        .with_state(AppState { project });
    crate::edge::layer(app, config)
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(3), state.project.db().ping()).await;
    match ping {
        Ok(Ok(())) => axum::Json(json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => e.render(WireFormat::Plain, false),
        Err(_) => ForgeError::DatabaseUnavailable("readiness check timed out".into()).render(WireFormat::Plain, false),
    }
}

async fn not_found(req: Request) -> Response {
    ForgeError::NotFound.render(WireFormat::for_path(req.uri().path()), false)
}
