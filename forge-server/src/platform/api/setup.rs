//! `POST /v1/setup`: the first owner, with the token of the setup link the server printed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Body;
use crate::platform::Platform;
use crate::platform::error::Error;

/// The setup form.
#[derive(Debug, Deserialize)]
pub struct SetupRequest {
    /// The setup link's token.
    pub token: String,
    /// The owner's email.
    pub email: String,
    /// The owner's password (at least 8 characters).
    pub password: String,
}

/// Makes the first owner; they then sign in at `/p/platform/auth/v1`.
pub async fn finish(State(platform): State<Platform>, Body(req): Body<SetupRequest>) -> Result<Response, Error> {
    let user = platform.finish_setup(&req.token, &req.email, &req.password).await?;
    Ok((http::StatusCode::CREATED, axum::Json(json!({ "user_id": user, "email": req.email.trim().to_lowercase() })))
        .into_response())
}
