//! Errors in Supabase Storage's shape: `{statusCode, code, error, message}`, with every 4xx
//! but authentication failures answered as HTTP 400 (the real status is in `statusCode`).

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use forge_core::{ForgeError, WireFormat};
use http::StatusCode;
use serde_json::json;

/// A storage error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error with Storage's code and a client-safe message.
    #[error("{message}")]
    Api {
        /// The real status (`statusCode`).
        status: u16,
        /// Storage's code, e.g. `NoSuchKey`.
        code: &'static str,
        /// The message.
        message: Cow<'static, str>,
    },
    /// A forge-core error (authentication, database, internal).
    #[error(transparent)]
    Core(#[from] ForgeError),
}

/// A result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a status, code and message.
    pub fn api(status: u16, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Api { status, code, message: message.into() }
    }

    /// An internal error: logged, answered generically.
    pub fn internal(cause: impl Into<forge_core::error::BoxError>) -> Self {
        Error::Core(ForgeError::internal(cause))
    }

    /// 400 `InvalidRequest`.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::api(400, "InvalidRequest", message)
    }

    /// 404 `NoSuchKey`.
    pub fn no_such_key() -> Self {
        Self::api(404, "NoSuchKey", "Object not found")
    }

    /// 404 `NoSuchBucket`.
    pub fn no_such_bucket() -> Self {
        Self::api(404, "NoSuchBucket", "Bucket not found")
    }

    /// The status in the body (`statusCode`).
    pub fn status(&self) -> u16 {
        match self {
            Error::Api { status, .. } => *status,
            Error::Core(e) => e.status(true).as_u16(),
        }
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Error::no_such_key(),
            other => Error::internal(other),
        }
    }
}

/// A request body that broke off: the client's doing (400), or ours when the body was cut
/// off here (a stalled upload's 408), whose error comes back through the body's layers.
impl From<axum::Error> for Error {
    fn from(e: axum::Error) -> Self {
        let mut inner = e.into_inner();
        loop {
            inner = match inner.downcast::<Error>() {
                Ok(ours) => return *ours,
                Err(other) => match other.downcast::<axum::Error>() {
                    Ok(wrapped) => wrapped.into_inner(),
                    Err(other) => return Error::invalid(format!("The upload was interrupted: {other}")),
                },
            };
        }
    }
}

/// A multipart body that broke off or was malformed.
impl From<axum::extract::multipart::MultipartError> for Error {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        Error::invalid(format!("Invalid form: {e}"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Core(e.into())
    }
}

/// The legacy `error` label Supabase Storage sends beside each code.
fn label(code: &str) -> &str {
    match code {
        "NoSuchBucket" => "Bucket not found",
        "NoSuchKey" => "not_found",
        "KeyAlreadyExists" | "BucketAlreadyExists" | "ResourceAlreadyExists" => "Duplicate",
        "EntityTooLarge" => "Payload too large",
        "InvalidMimeType" => "invalid_mime_type",
        "InvalidRange" => "invalid_range",
        "AccessDenied" => "Unauthorized",
        "InvalidBucketName" => "Invalid Input",
        other => other,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Core(e) => e.render(WireFormat::Storage, true),
            Error::Api { status, code, message } => {
                let http = match status {
                    s if s >= 500 => s,
                    401 | 403 => 403,
                    416 | 429 => status,
                    _ => 400,
                };
                let body =
                    json!({ "statusCode": status.to_string(), "code": code, "error": label(code), "message": message });
                (StatusCode::from_u16(http).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(body)).into_response()
            }
        }
    }
}
