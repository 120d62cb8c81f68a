//! Errors in GoTrue's shape.
//!
//! Every failure carries GoTrue's `error_code` and HTTP status (SERVER-BEHAVIOUR.md §2a). The
//! body satisfies both client parsers: a string `code` (read with the
//! `X-Supabase-Api-Version` response header), `error_code`, `msg` and `message`. Server
//! errors are logged and answered with a generic body.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use forge_core::{ForgeError, WireFormat};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

/// The result type of forge-auth.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An auth API error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client error with GoTrue's code.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// GoTrue's `error_code`.
        code: &'static str,
        /// A client-safe message.
        message: Cow<'static, str>,
        /// `weak_password.reasons`, for `weak_password`.
        reasons: Vec<&'static str>,
    },
    /// An error from forge-core (database unavailable, pool timeout, ...).
    #[error(transparent)]
    Core(#[from] ForgeError),
    /// Anything else: logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] forge_core::error::BoxError),
}

impl Error {
    /// A client error.
    pub fn api(status: u16, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Api {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            message: message.into(),
            reasons: Vec::new(),
        }
    }

    /// An internal error; the cause is logged when rendered.
    pub fn internal(cause: impl Into<forge_core::error::BoxError>) -> Self {
        Error::Internal(cause.into())
    }

    /// 400 `validation_failed`.
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::api(400, "validation_failed", message)
    }

    /// 400 `invalid_credentials`.
    pub fn invalid_credentials() -> Self {
        Self::api(400, "invalid_credentials", "Invalid login credentials")
    }

    /// 422 `weak_password` with its reasons.
    pub fn weak_password(reasons: Vec<&'static str>) -> Self {
        let message = if reasons.contains(&"pwned") {
            "Password is known to be weak and easy to guess, please choose a different one."
        } else {
            "Password should be at least the required length."
        };
        Error::Api { status: StatusCode::UNPROCESSABLE_ENTITY, code: "weak_password", message: message.into(), reasons }
    }

    /// 422 `email_exists`.
    pub fn email_exists() -> Self {
        Self::api(422, "email_exists", "A user with this email address has already been registered")
    }

    /// 404 `user_not_found`.
    pub fn user_not_found() -> Self {
        Self::api(404, "user_not_found", "User not found")
    }

    /// 403 `otp_expired`.
    pub fn otp_expired() -> Self {
        Self::api(403, "otp_expired", "Token has expired or is invalid")
    }

    /// 403 `not_admin`.
    pub fn not_admin() -> Self {
        Self::api(403, "not_admin", "User not allowed")
    }

    /// 429 `over_request_rate_limit`.
    pub fn rate_limited() -> Self {
        Self::api(429, "over_request_rate_limit", "Request rate limit reached")
    }

    /// 429 with `code` (`over_email_send_rate_limit` or `over_sms_send_rate_limit`) for a re-send too soon.
    pub fn too_soon(code: &'static str, seconds: u64) -> Self {
        Self::api(429, code, format!("For security purposes, you can only request this after {seconds} seconds."))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Api { status, .. } => *status,
            Error::Core(e) => e.status(false),
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// GoTrue's `error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Api { code, .. } => code,
            Error::Core(e) => e.code().info().gotrue,
            Error::Internal(_) => "unexpected_failure",
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => Error::Core(ForgeError::PoolTimeout),
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                Error::Core(ForgeError::DatabaseUnavailable(e.into()))
            }
            other => Error::internal(other),
        }
    }
}

impl From<crate::password::HashError> for Error {
    fn from(e: crate::password::HashError) -> Self {
        Error::internal(e)
    }
}

impl From<forge_core::keys::KeyError> for Error {
    fn from(e: forge_core::keys::KeyError) -> Self {
        Error::internal(e)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Core(e) => e.render(WireFormat::GoTrue, false),
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "auth request failed");
                ForgeError::Internal(cause).render(WireFormat::GoTrue, false)
            }
            Error::Api { status, code, message, reasons } => {
                let mut body = json!({ "code": code, "error_code": code, "msg": message, "message": message });
                if code == "weak_password" {
                    body["weak_password"] = json!({ "reasons": reasons, "message": message });
                }
                let mut res = (status, body.to_string()).into_response();
                let headers = res.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert("x-supabase-api-version", HeaderValue::from_static("2024-01-01"));
                headers.insert("x-sb-error-code", HeaderValue::from_static(code));
                res
            }
        }
    }
}
