//! Personal access tokens: the caller's own.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Body;
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::users::Caller;

/// `GET /v1/profile/access-tokens` (never the tokens themselves).
pub async fn list(State(platform): State<Platform>, caller: Caller) -> Result<axum::Json<Value>, Error> {
    let rows = platform.store().access_tokens(caller.user_id).await?;
    Ok(axum::Json(serde_json::to_value(rows).map_err(Error::internal)?))
}

/// A new token.
#[derive(Debug, Deserialize)]
pub struct CreateToken {
    /// Its name.
    pub name: String,
    /// When it stops working (RFC 3339); none: never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

/// `POST /v1/profile/access-tokens`: the token is in the answer, and only there.
pub async fn create(
    State(platform): State<Platform>,
    caller: Caller,
    Body(req): Body<CreateToken>,
) -> Result<Response, Error> {
    let (row, token) = platform.create_access_token(caller.user_id, &req.name, req.expires_at).await?;
    let mut body = serde_json::to_value(&row).map_err(Error::internal)?;
    body["token"] = json!(token.expose_secret());
    Ok((http::StatusCode::CREATED, axum::Json(body)).into_response())
}

/// `DELETE /v1/profile/access-tokens/{id}`.
pub async fn delete(
    State(platform): State<Platform>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("Access token"))?;
    if !platform.store().delete_access_token(caller.user_id, id).await? {
        return Err(Error::not_found("Access token"));
    }
    Ok(http::StatusCode::NO_CONTENT.into_response())
}
