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
use forge_core::{ForgeError, WireFormat};

use crate::error::{Error, ErrorKind};

/// An error answered in the Iceberg REST error model: one of forge-storage's errors (the
/// catalogue's Iceberg rows, or a bucket error under its Storage code) rendered by forge-core's
/// Iceberg renderer.
#[derive(Debug)]
pub(crate) struct IcebergError(pub(crate) Error);

/// A result with [`IcebergError`].
pub(crate) type IcebergResult<T> = std::result::Result<T, IcebergError>;

impl IcebergError {
    fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self(Error::new(kind, message))
    }

    /// 400 `BadRequestException`: a malformed request or an update that cannot apply.
    pub(crate) fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::IcebergBadRequest, message)
    }

    /// 403 `AccessDenied`: any role but the service role (Supabase's message).
    pub(crate) fn invalid_role() -> Self {
        Self(Error::invalid_role())
    }

    /// 404: the path names no analytics bucket (warehouse).
    pub(crate) fn no_such_warehouse(name: &str) -> Self {
        Self::new(ErrorKind::NoSuchWarehouse, format!("Analytics bucket does not exist: {name}"))
    }

    /// 404 `NoSuchNamespaceException`.
    pub(crate) fn no_such_namespace(levels: &[String]) -> Self {
        Self::new(ErrorKind::NoSuchNamespace, format!("Namespace does not exist: {}", levels.join(".")))
    }

    /// 404 `NoSuchTableException`.
    pub(crate) fn no_such_table(levels: &[String], table: &str) -> Self {
        Self::new(ErrorKind::NoSuchTable, format!("Table does not exist: {}.{table}", levels.join(".")))
    }

    /// 409 `AlreadyExistsException`.
    pub(crate) fn already_exists(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    /// 409 `NamespaceNotEmptyException`.
    pub(crate) fn namespace_not_empty(levels: &[String]) -> Self {
        Self::new(
            ErrorKind::NamespaceNotEmpty,
            format!("Namespace {} is not empty: it still has tables or namespaces", levels.join(".")),
        )
    }

    /// 409 `CommitFailedException`: a requirement of a commit does not hold.
    pub(crate) fn commit_failed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::CommitFailed, message)
    }

    /// 422 `UnprocessableEntityException`.
    pub(crate) fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unprocessable, message)
    }

    /// Which catalogue row this error is, if it is forge-storage's own.
    pub(crate) fn kind(&self) -> Option<ErrorKind> {
        self.0.kind()
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> u16 {
        self.0.problem(WireFormat::Iceberg).status.as_u16()
    }

    #[cfg(test)]
    pub(crate) fn message(&self) -> String {
        self.0.problem(WireFormat::Iceberg).message.into_owned()
    }
}

impl From<Error> for IcebergError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl From<ForgeError> for IcebergError {
    fn from(e: ForgeError) -> Self {
        Self(Error::Core(e))
    }
}

impl From<tokio_postgres::Error> for IcebergError {
    fn from(e: tokio_postgres::Error) -> Self {
        ForgeError::from(e).into()
    }
}

impl IntoResponse for IcebergError {
    fn into_response(self) -> Response {
        self.0.render(WireFormat::Iceberg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_keep_their_status_and_code() {
        let e = IcebergError::from(Error::no_such_bucket());
        assert_eq!(
            (e.status(), e.kind(), e.message().as_str()),
            (404, Some(ErrorKind::NoSuchBucket), "Bucket not found")
        );
    }

    #[test]
    fn credential_failures_are_refused_with_403() {
        let auth = forge_core::error::AuthError::new(forge_core::error::ErrorCode::JwtExpired);
        let e = IcebergError::from(ForgeError::from(auth));
        let problem = e.0.problem(WireFormat::Iceberg);
        assert_eq!((problem.status.as_u16(), problem.code.as_ref()), (403, "ExpiredToken"));
    }

    #[test]
    fn server_errors_are_generic() {
        let e = IcebergError::from(ForgeError::internal("secret detail"));
        assert_eq!(e.status(), 500);
        assert!(!e.message().contains("secret"), "{}", e.message());
    }
}
