//! A project's asymmetric JWT signing keys: listed with their public halves, rotated
//! (standby to current, current to previous, a new standby), and previous ones deleted once no
//! session they signed is alive. Each project's JWKS (`/p/<ref>/auth/v1/.well-known/jwks.json`)
//! publishes its own current, standby and previous keys.

use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ErrorBody, Need, project_for, rfc3339};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::users::Caller;

/// A project's signing keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeys {
    /// The current, standby and previous keys.
    pub keys: Vec<SigningKey>,
}

/// One signing key, with its public half.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKey {
    /// Its id.
    pub id: Uuid,
    /// `current`, `standby` or `previous`.
    pub status: String,
    /// `ES256` or `RS256`.
    pub algorithm: String,
    /// Its key id (`kid`).
    pub kid: String,
    /// Its public half as a JWK.
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
    /// When it was made.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `GET /v1/projects/{ref}/config/auth/signing-keys`.
#[utoipa::path(
    get,
    path = "/projects/{ref}/config/auth/signing-keys",
    operation_id = "v1-get-project-signing-keys",
    tag = "auth",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    responses(
        (status = 200, description = "The project's signing keys", body = SigningKeys),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        (status = 409, description = "The default project's signing keys are files in the server's data dir", body = ErrorBody),
    )
)]
pub async fn list(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<SigningKeys>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Read).await?;
    if row.cluster_id.is_none() {
        return Err(Error::conflict("The default project's signing keys are files in the server's data dir"));
    }
    let rows = platform.store().signing_key_rows(&row.reference).await?;
    let keys = rows
        .iter()
        .map(|k| {
            Ok(SigningKey {
                id: k.id,
                status: k.status.clone(),
                algorithm: k.algorithm.clone(),
                kid: k.kid.clone(),
                public_jwk: platform.signing_key_jwk(&row.reference, k)?,
                created_at: rfc3339(k.created_at),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(axum::Json(SigningKeys { keys }))
}

/// `POST /v1/projects/{ref}/config/auth/signing-keys/rotate` (owners and administrators).
#[utoipa::path(
    post,
    path = "/projects/{ref}/config/auth/signing-keys/rotate",
    operation_id = "v1-rotate-project-signing-keys",
    tag = "auth",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    responses(
        (status = 200, description = "The keys after the rotation", body = SigningKeys),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators may rotate keys", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        (status = 409, description = "The default project's signing keys are files in the server's data dir", body = ErrorBody),
    )
)]
pub async fn rotate(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<axum::Json<SigningKeys>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    platform.rotate_signing_keys(&row, &caller.actor()).await?;
    list(State(platform), caller, Path(reference)).await
}

/// `DELETE /v1/projects/{ref}/config/auth/signing-keys/{id}`: a previous key only (owners and
/// administrators).
#[utoipa::path(
    delete,
    path = "/projects/{ref}/config/auth/signing-keys/{id}",
    operation_id = "v1-delete-project-signing-key",
    tag = "auth",
    security(("bearer" = [])),
    params(
        ("ref" = String, Path, description = "The project's ref"),
        ("id" = String, Path, description = "The key's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators may delete keys", body = ErrorBody),
        (status = 404, description = "No such project of the caller's, or no such previous key", body = ErrorBody),
        (status = 409, description = "The default project's signing keys are files in the server's data dir", body = ErrorBody),
    )
)]
pub async fn delete(
    State(platform): State<Platform>,
    caller: Caller,
    Path((reference, id)): Path<(String, String)>,
) -> Result<http::StatusCode, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Admin).await?;
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("Previous signing key"))?;
    platform.delete_signing_key(&row, id, &caller.actor()).await?;
    Ok(http::StatusCode::NO_CONTENT)
}
