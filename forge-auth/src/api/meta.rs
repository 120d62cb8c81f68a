//! `GET /settings`, `GET /health`, `GET /.well-known/jwks.json`, and the fallback.

use axum::Json;
use axum::extract::State;
use forge_core::Project;
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind};
use crate::service::Auth;

pub(crate) async fn settings(State(auth): State<Auth>) -> Json<Value> {
    let c = auth.config();
    Json(json!({
        "external": {
            "anonymous_users": c.anonymous_enabled,
            "email": c.email_enabled,
            "phone": c.phone_enabled,
        },
        "disable_signup": c.disable_signup,
        "mailer_autoconfirm": c.mailer_autoconfirm,
        "phone_autoconfirm": c.sms_autoconfirm,
        "sms_provider": if c.phone_enabled { auth.0.sms.name() } else { "" },
        "saml_enabled": false,
    }))
}

pub(crate) async fn health() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "name": "Forge Auth",
        "description": "Forge Auth is a GoTrue-compatible user registration and authentication API",
    }))
}

/// The public signing keys (current, standby, previous), cached by clients for ten minutes as
/// GoTrue's `WellKnownJwks` lets them.
pub(crate) async fn jwks(project: Project) -> impl axum::response::IntoResponse {
    ([(http::header::CACHE_CONTROL, "public, max-age=600")], Json(project.keys().jwks()))
}

pub(crate) async fn not_found() -> Error {
    Error::new(ErrorKind::NotFound, "The requested path was not found")
}
