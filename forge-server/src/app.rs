//! The HTTP application: liveness and readiness, then every project-scoped service behind
//! the project resolver.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use forge_core::{ForgeError, Project, ProjectLayer, RefResolver, WireFormat};
use serde_json::json;
use tower::Layer as _;

use forge_auth::Auth;
use forge_data::Data;
use forge_realtime::Realtime;
use forge_storage::Storage;

use crate::config::Config;
use crate::platform::{PLATFORM_REF, Platform};

/// What the top-level handlers need.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The default project.
    pub project: Project,
}

/// Builds the application: `project` (the default) at the root and at `/p/{ref}`, every other
/// project of the platform at `/p/{ref}` (and `{ref}.<base_domain>`), the Management API at
/// `/v1`.
#[allow(clippy::too_many_arguments)]
pub fn router(
    project: Project,
    data: &Data,
    auth: &Auth,
    storage: &Storage,
    realtime: &Realtime,
    platform: &Platform,
    config: &Config,
) -> Router {
    let mut resolver = RefResolver::new(platform.registry().clone()).by_path_prefix().with_fallback(project.clone());
    if let Some(domain) = config.base_domain.as_deref().filter(|d| !d.is_empty()) {
        resolver = resolver.by_host_under(domain);
    }
    let services = Router::new()
        .nest("/rest/v1", data.router())
        .nest("/auth/v1", auth.router())
        .nest("/storage/v1", storage.router())
        .nest("/realtime/v1", realtime.router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(platform.clone(), platform_project_gate))
        .layer(axum::middleware::from_fn_with_state(platform.clone(), in_flight));
    // Around the services router, so a `/p/{ref}` prefix is gone before routing; the meter
    // inside it, so it knows the project and sees the services' own paths.
    let services = if config.usage_metering { services.layer(platform.meter().layer()) } else { services };
    let services = ProjectLayer::new(resolver).layer(services);
    let mut app = Router::new();
    if let Some(token) = &config.metrics_token {
        app = app.merge(crate::platform::usage::metrics_router(platform.meter().clone(), Some(token.clone())));
    }
    let app = app
        .route("/health", get(health))
        .route("/ready", get(ready))
        .nest("/v1", crate::platform::api::router(platform))
        .merge(crate::platform::api::docs::router())
        .route("/platform/setup", get(setup_page))
        .route("/platform/config", get(platform_config).with_state(platform.clone()))
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

/// The platform project serves its users' auth only, and sign-up only once the platform has
/// its owner (made through the setup link): before that, nothing creates a platform user.
async fn platform_project_gate(
    State(platform): State<Platform>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let is_platform = req.extensions().get::<Project>().is_some_and(|p| p.reference().as_str() == PLATFORM_REF);
    if !is_platform {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let Some(auth_path) = path.strip_prefix("/auth/v1") else {
        return ForgeError::NotFound.render(WireFormat::for_path(path), false);
    };
    let creates_users = ["/signup", "/otp", "/magiclink", "/authorize", "/callback", "/invite", "/admin"]
        .iter()
        .any(|p| auth_path == *p || auth_path.starts_with(&format!("{p}/")));
    if creates_users {
        match platform.has_owner().await {
            Ok(true) if !auth_path.starts_with("/admin") => {}
            Ok(_) => {
                let problem = forge_core::error::Problem::new(
                    http::StatusCode::FORBIDDEN,
                    "signup_disabled",
                    "The platform has no owner yet (or this is not open to platform users): use the setup link the server printed",
                );
                return WireFormat::GoTrue.render(problem);
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// What a client of the platform needs: the URL its users sign in at and its anon key (public,
/// as every anon key is), for `supabase.createClient(url, anon_key)`.
async fn platform_config(State(platform): State<Platform>) -> Response {
    let project = platform.project();
    axum::Json(json!({
        "url": project.settings().public_url,
        "anon_key": project.keys().anon_key(),
        "publishable_key": project.keys().publishable_key(),
        "management_api": "/v1",
    }))
    .into_response()
}

/// Keeps a project open while a request to it is served (the registry closes only projects
/// with none).
async fn in_flight(State(platform): State<Platform>, req: Request, next: axum::middleware::Next) -> Response {
    let _serving = req.extensions().get::<Project>().and_then(|p| platform.registry().enter(p.reference().as_str()));
    next.run(req).await
}

/// The setup link's page: a form that makes the platform's first owner.
async fn setup_page() -> Response {
    let html = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Forge: create the owner</title>
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto}label{display:block;margin:.8rem 0}input{width:100%;padding:.4rem}</style></head>
<body><h1>Create the platform's owner</h1>
<form id="f"><label>Email <input name="email" type="email" required></label>
<label>Password <input name="password" type="password" minlength="8" required></label>
<button>Create</button></form><p id="out"></p>
<script>
const token = new URLSearchParams(location.search).get('token') || '';
document.getElementById('f').onsubmit = async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const res = await fetch('/v1/setup', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({token, email: f.get('email'), password: f.get('password')})});
  const body = await res.json();
  document.getElementById('out').textContent = res.ok ? 'Done: sign in as ' + body.email : body.message;
};
</script></body></html>"#;
    ([(http::header::CONTENT_TYPE, "text/html; charset=utf-8"), (http::header::CACHE_CONTROL, "no-store")], html)
        .into_response()
}
