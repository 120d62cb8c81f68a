//! `POST /v1/setup`: the first owner, with the token of the setup link the server printed.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Body, ErrorBody};
use crate::platform::Platform;
use crate::platform::error::Error;

/// The setup form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetupRequest {
    /// The setup link's token.
    pub token: String,
    /// The owner's email.
    pub email: String,
    /// The owner's password (at least 8 characters).
    pub password: String,
}

/// The first owner, made.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupDone {
    /// The owner's user id.
    pub user_id: Uuid,
    /// The owner's email, lowercased.
    pub email: String,
}

/// Makes the first owner; they then sign in at `/p/platform/auth/v1`.
#[utoipa::path(
    post,
    path = "/setup",
    operation_id = "v1-finish-setup",
    tag = "setup",
    request_body = SetupRequest,
    responses(
        (status = 201, description = "The first owner exists", body = SetupDone),
        (status = 400, description = "A malformed body or a weak password", body = ErrorBody),
        (status = 401, description = "Not the setup link's token", body = ErrorBody),
        (status = 409, description = "The first owner exists already (`setup_done`)", body = ErrorBody),
    )
)]
pub async fn finish(
    State(platform): State<Platform>,
    Body(req): Body<SetupRequest>,
) -> Result<(http::StatusCode, axum::Json<SetupDone>), Error> {
    let user_id = platform.finish_setup(&req.token, &req.email, &req.password).await?;
    Ok((http::StatusCode::CREATED, axum::Json(SetupDone { user_id, email: req.email.trim().to_lowercase() })))
}
