//! Personal access tokens: the caller's own.

use axum::extract::{Path, State};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Body, ErrorBody};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::store::AccessTokenRow;
use crate::platform::users::Caller;

/// A personal access token as listed (never the token itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessToken {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its first characters.
    pub prefix: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working; null: never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used; null: never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<AccessTokenRow> for AccessToken {
    fn from(row: AccessTokenRow) -> Self {
        let AccessTokenRow { id, name, prefix, created_at, expires_at, last_used_at } = row;
        AccessToken { id, name, prefix, created_at, expires_at, last_used_at }
    }
}

/// A new personal access token, with the token: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewAccessToken {
    /// The token as it will be listed.
    #[serde(flatten)]
    pub listed: AccessToken,
    /// The token (`sbp_...`).
    pub token: String,
}

/// `GET /v1/profile/access-tokens` (never the tokens themselves).
#[utoipa::path(
    get,
    path = "/profile/access-tokens",
    operation_id = "v1-list-access-tokens",
    tag = "profile",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tokens", body = Vec<AccessToken>),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    )
)]
pub async fn list(State(platform): State<Platform>, caller: Caller) -> Result<axum::Json<Vec<AccessToken>>, Error> {
    let rows = platform.store().access_tokens(caller.user_id).await?;
    Ok(axum::Json(rows.into_iter().map(AccessToken::from).collect()))
}

/// A new token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateToken {
    /// Its name.
    pub name: String,
    /// When it stops working (RFC 3339); none: never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

/// `POST /v1/profile/access-tokens`: the token is in the answer, and only there.
#[utoipa::path(
    post,
    path = "/profile/access-tokens",
    operation_id = "v1-create-access-token",
    tag = "profile",
    security(("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, description = "The new token, shown this once", body = NewAccessToken),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    )
)]
pub async fn create(
    State(platform): State<Platform>,
    caller: Caller,
    Body(req): Body<CreateToken>,
) -> Result<(http::StatusCode, axum::Json<NewAccessToken>), Error> {
    let (row, token) = platform.create_access_token(caller.user_id, &req.name, req.expires_at).await?;
    let body = NewAccessToken { listed: row.into(), token: token.expose_secret().to_owned() };
    Ok((http::StatusCode::CREATED, axum::Json(body)))
}

/// `DELETE /v1/profile/access-tokens/{id}`.
#[utoipa::path(
    delete,
    path = "/profile/access-tokens/{id}",
    operation_id = "v1-delete-access-token",
    tag = "profile",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such token of the caller's", body = ErrorBody),
    )
)]
pub async fn delete(
    State(platform): State<Platform>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<http::StatusCode, Error> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("Access token"))?;
    if !platform.store().delete_access_token(caller.user_id, id).await? {
        return Err(Error::not_found("Access token"));
    }
    Ok(http::StatusCode::NO_CONTENT)
}
