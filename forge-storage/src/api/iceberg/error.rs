//! Errors of the analytics routes, in the Iceberg REST error model:
//! `{"error": {"message", "type", "code"}}` with the real HTTP status.
//!
//! Supabase Storage answers every route under `/iceberg` this way, the analytics bucket routes
//! and the service-role check included (its `src/http/routes/iceberg/index.ts` installs that
//! formatter for the whole scope); storage3 parses this shape for analytics buckets, storage-js
//! reads `error.message`, and iceberg-js's `IcebergError` takes `status`, `error.type` and
//! `error.code`. Bucket errors keep Storage's codes as their `type` (`BucketAlreadyExists`,
//! `NoSuchBucket`, ...), catalog errors the Iceberg exception names.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use forge_core::ForgeError;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::Error;

/// An error answered in the Iceberg REST error model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IcebergError {
    /// The HTTP status, also sent as `error.code`.
    pub(crate) status: u16,
    /// `error.type`: an Iceberg exception name or a Storage error code.
    pub(crate) kind: Cow<'static, str>,
    /// `error.message`, safe to show to clients.
    pub(crate) message: Cow<'static, str>,
}

/// A result with [`IcebergError`].
pub(crate) type IcebergResult<T> = std::result::Result<T, IcebergError>;

impl IcebergError {
    pub(crate) fn new(status: u16, kind: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, kind: Cow::Borrowed(kind), message: message.into() }
    }

    /// 400 `BadRequestException`: a malformed request or an update that cannot apply.
    pub(crate) fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "BadRequestException", message)
    }

    /// 403 `AccessDenied`: any role but the service role (Supabase's message).
    pub(crate) fn invalid_role() -> Self {
        Self::new(403, "AccessDenied", "Access denied: Invalid role")
    }

    /// 404: the path names no analytics bucket (warehouse).
    pub(crate) fn no_such_warehouse(name: &str) -> Self {
        Self::new(404, "NoSuchWarehouseException", format!("Analytics bucket does not exist: {name}"))
    }

    /// 404 `NoSuchNamespaceException`.
    pub(crate) fn no_such_namespace(levels: &[String]) -> Self {
        Self::new(404, "NoSuchNamespaceException", format!("Namespace does not exist: {}", levels.join(".")))
    }

    /// 404 `NoSuchTableException`.
    pub(crate) fn no_such_table(levels: &[String], table: &str) -> Self {
        Self::new(404, "NoSuchTableException", format!("Table does not exist: {}.{table}", levels.join(".")))
    }

    /// 409 `AlreadyExistsException`.
    pub(crate) fn already_exists(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(409, "AlreadyExistsException", message)
    }

    /// 409 `NamespaceNotEmptyException`.
    pub(crate) fn namespace_not_empty(levels: &[String]) -> Self {
        Self::new(
            409,
            "NamespaceNotEmptyException",
            format!("Namespace {} is not empty: it still has tables or namespaces", levels.join(".")),
        )
    }

    /// 409 `CommitFailedException`: a requirement of a commit does not hold.
    pub(crate) fn commit_failed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(409, "CommitFailedException", message)
    }

    /// 422 `UnprocessableEntityException`.
    pub(crate) fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(422, "UnprocessableEntityException", message)
    }

    /// The SQLSTATE of a database error, to map constraint violations by kind.
    pub(crate) fn sqlstate(e: &ForgeError) -> Option<&str> {
        match e {
            ForgeError::Database(db) => Some(db.code.as_str()),
            _ => None,
        }
    }
}

impl From<ForgeError> for IcebergError {
    fn from(e: ForgeError) -> Self {
        let (code, status, message) = e.storage_parts(true);
        if status >= 500 {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "analytics request failed");
        }
        // Storage refuses credentials with 403 on these routes (`AccessDenied` from its JWT
        // check), never 401.
        let status = if status == 401 { 403 } else { status };
        Self { status, kind: Cow::Borrowed(code), message: message.into() }
    }
}

impl From<tokio_postgres::Error> for IcebergError {
    fn from(e: tokio_postgres::Error) -> Self {
        ForgeError::from(e).into()
    }
}

/// Storage's own errors (the bucket routes build these): same status, the code as `type`.
impl From<Error> for IcebergError {
    fn from(e: Error) -> Self {
        match e {
            Error::Api { status, code, message } => Self { status, kind: Cow::Borrowed(code), message },
            Error::Core(e) => e.into(),
        }
    }
}

impl IntoResponse for IcebergError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "error": { "message": self.message, "type": self.kind, "code": status.as_u16() } });
        let mut res = (status, body.to_string()).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }
}

/// axum's own refusals on these routes (a path that does not decode, a body over the limit, a
/// method not allowed) come as plain text; they are answered in the Iceberg model too.
pub(crate) async fn plain_refusals(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let json =
        res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("Request failed").to_owned() } else { text };
    let kind = match status.as_u16() {
        404 => "NotFoundException",
        405 => "MethodNotAllowedException",
        413 => "RequestTooLargeException",
        s if s >= 500 => "ServiceFailureException",
        _ => "BadRequestException",
    };
    IcebergError { status: status.as_u16(), kind: Cow::Borrowed(kind), message: message.into() }.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_keep_their_status_and_code() {
        let e = IcebergError::from(Error::no_such_bucket());
        assert_eq!((e.status, e.kind.as_ref(), e.message.as_ref()), (404, "NoSuchBucket", "Bucket not found"));
    }

    #[test]
    fn credential_failures_are_refused_with_403() {
        let auth = forge_core::error::AuthError::new(forge_core::error::ErrorCode::JwtExpired);
        let e = IcebergError::from(ForgeError::from(auth));
        assert_eq!((e.status, e.kind.as_ref()), (403, "ExpiredToken"));
    }

    #[test]
    fn server_errors_are_generic() {
        let e = IcebergError::from(ForgeError::internal("secret detail"));
        assert_eq!(e.status, 500);
        assert!(!e.message.contains("secret"), "{}", e.message);
    }
}
