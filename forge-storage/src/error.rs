//! Errors in Supabase Storage's shape: `{statusCode, code, error, message}`, with every 4xx
//! but authentication failures answered as HTTP 400 (the real status is in `statusCode`).

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use forge_core::error::{DbErrorKind, Entry, Problem};
use forge_core::{ForgeError, WireFormat};

/// forge-storage's error catalogue: one row per situation, each with Storage's code and its
/// real status (`statusCode`). The HTTP status sent is the wire shape's business: the plain
/// routes fold 4xx into 400, the vector and TUS routes send the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// InvalidRequest (400): a malformed request: a missing or bad header, parameter or form.
    InvalidRequest,
    /// InvalidKey (400): an object name Storage does not allow.
    InvalidKey,
    /// InvalidBucketName (400): a bucket name Storage does not allow.
    InvalidBucketName,
    /// NoSuchBucket (404): no such bucket, or one the caller cannot see.
    NoSuchBucket,
    /// NoSuchKey (404): no such object, or one the caller cannot see.
    NoSuchKey,
    /// BucketAlreadyExists (409): a bucket with this name exists.
    BucketAlreadyExists,
    /// KeyAlreadyExists (409): an object with this name exists and upsert is off.
    KeyAlreadyExists,
    /// ResourceNotEmpty (409): deleting a bucket that still has objects, tables or namespaces.
    BucketNotEmpty,
    /// EntityTooLarge (413): an object, form field or image over its limit.
    EntityTooLarge,
    /// InvalidMimeType (415): a content type the bucket does not allow, or a non-image to transform.
    InvalidMimeType,
    /// InvalidRange (416): a Range header that cannot be satisfied.
    InvalidRange,
    /// InvalidSignature (400): a signed URL or upload token for another object or scope, or none.
    InvalidSignature,
    /// InvalidJWT (400): a signed URL token that does not verify.
    InvalidJwt,
    /// ExpiredToken (400): a signed URL token past its expiry.
    ExpiredToken,
    /// AccessDenied (403): a route for the service role called with another role.
    AccessDenied,
    /// RequestTimeout (408): an upload that sent no byte for the idle time-out.
    RequestTimeout,
    /// NoSuchUpload (404): a resumable upload that does not exist or is not the caller's.
    NoSuchUpload,
    /// NoSuchUpload (410): a resumable upload past its expiry.
    UploadExpired,
    /// ResourceLocked (423): a resumable upload another request is writing.
    UploadLocked,
    /// InvalidRequest (409): a TUS chunk at another offset, or an upload another request took over.
    UploadOffsetMismatch,
    /// InvalidRequest (412): a TUS request without Tus-Resumable: 1.0.0.
    TusVersionNotSupported,
    /// InvalidRequest (405): a method a TUS upload URL does not take.
    TusMethodNotAllowed,
    /// InvalidParameter (400): a vector route's parameter out of range or of the wrong type.
    InvalidParameter,
    /// MissingParameter (400): a vector route without a required parameter.
    MissingParameter,
    /// S3VectorNotFoundException (404): no such vector bucket or index.
    VectorNotFound,
    /// S3VectorConflictException (409): a vector bucket or index with this name exists.
    VectorConflict,
    /// S3VectorBucketNotEmpty (400): deleting a vector bucket that still has indexes.
    VectorBucketNotEmpty,
    /// BadRequestException (400): an analytics request that is malformed, or an update that cannot apply.
    IcebergBadRequest,
    /// NoSuchWarehouseException (404): an Iceberg path naming no analytics bucket.
    NoSuchWarehouse,
    /// NoSuchNamespaceException (404): no such Iceberg namespace.
    NoSuchNamespace,
    /// NoSuchTableException (404): no such Iceberg table.
    NoSuchTable,
    /// AlreadyExistsException (409): an Iceberg namespace or table with this name exists.
    AlreadyExists,
    /// NamespaceNotEmptyException (409): dropping a namespace that still has tables or namespaces.
    NamespaceNotEmpty,
    /// CommitFailedException (409): an Iceberg commit whose requirement does not hold.
    CommitFailed,
    /// UnprocessableEntityException (422): an Iceberg request that is well-formed but cannot apply.
    Unprocessable,
    /// NotFoundException (404): no analytics route at this path.
    IcebergRouteNotFound,
    /// MethodNotAllowedException (405): a method the analytics route does not take.
    IcebergMethodNotAllowed,
    /// RequestTooLargeException (413): an analytics body over the limit.
    IcebergRequestTooLarge,
}

impl ErrorKind {
    /// The catalogue: this kind's code, real status and when it is answered.
    #[rustfmt::skip]
    pub const fn entry(self) -> Entry {
        use ErrorKind::*;
        let (code, status, when) = match self {
            InvalidRequest          => ("InvalidRequest",               400, "a malformed request: a missing or bad header, parameter or form"),
            InvalidKey              => ("InvalidKey",                   400, "an object name Storage does not allow"),
            InvalidBucketName       => ("InvalidBucketName",            400, "a bucket name Storage does not allow"),
            NoSuchBucket            => ("NoSuchBucket",                 404, "no such bucket, or one the caller cannot see"),
            NoSuchKey               => ("NoSuchKey",                    404, "no such object, or one the caller cannot see"),
            BucketAlreadyExists     => ("BucketAlreadyExists",          409, "a bucket with this name exists"),
            KeyAlreadyExists        => ("KeyAlreadyExists",             409, "an object with this name exists and upsert is off"),
            BucketNotEmpty          => ("ResourceNotEmpty",             409, "deleting a bucket that still has objects, tables or namespaces"),
            EntityTooLarge          => ("EntityTooLarge",               413, "an object, form field or image over its limit"),
            InvalidMimeType         => ("InvalidMimeType",              415, "a content type the bucket does not allow, or a non-image to transform"),
            InvalidRange            => ("InvalidRange",                 416, "a Range header that cannot be satisfied"),
            InvalidSignature        => ("InvalidSignature",             400, "a signed URL or upload token for another object or scope, or none"),
            InvalidJwt              => ("InvalidJWT",                   400, "a signed URL token that does not verify"),
            ExpiredToken            => ("ExpiredToken",                 400, "a signed URL token past its expiry"),
            AccessDenied            => ("AccessDenied",                 403, "a route for the service role called with another role"),
            RequestTimeout          => ("RequestTimeout",               408, "an upload that sent no byte for the idle time-out"),
            NoSuchUpload            => ("NoSuchUpload",                 404, "a resumable upload that does not exist or is not the caller's"),
            UploadExpired           => ("NoSuchUpload",                 410, "a resumable upload past its expiry"),
            UploadLocked            => ("ResourceLocked",               423, "a resumable upload another request is writing"),
            UploadOffsetMismatch    => ("InvalidRequest",               409, "a TUS chunk at another offset, or an upload another request took over"),
            TusVersionNotSupported  => ("InvalidRequest",               412, "a TUS request without Tus-Resumable: 1.0.0"),
            TusMethodNotAllowed     => ("InvalidRequest",               405, "a method a TUS upload URL does not take"),
            InvalidParameter        => ("InvalidParameter",             400, "a vector route's parameter out of range or of the wrong type"),
            MissingParameter        => ("MissingParameter",             400, "a vector route without a required parameter"),
            VectorNotFound          => ("S3VectorNotFoundException",    404, "no such vector bucket or index"),
            VectorConflict          => ("S3VectorConflictException",    409, "a vector bucket or index with this name exists"),
            VectorBucketNotEmpty    => ("S3VectorBucketNotEmpty",       400, "deleting a vector bucket that still has indexes"),
            IcebergBadRequest       => ("BadRequestException",          400, "an analytics request that is malformed, or an update that cannot apply"),
            NoSuchWarehouse         => ("NoSuchWarehouseException",     404, "an Iceberg path naming no analytics bucket"),
            NoSuchNamespace         => ("NoSuchNamespaceException",     404, "no such Iceberg namespace"),
            NoSuchTable             => ("NoSuchTableException",         404, "no such Iceberg table"),
            AlreadyExists           => ("AlreadyExistsException",       409, "an Iceberg namespace or table with this name exists"),
            NamespaceNotEmpty       => ("NamespaceNotEmptyException",   409, "dropping a namespace that still has tables or namespaces"),
            CommitFailed            => ("CommitFailedException",        409, "an Iceberg commit whose requirement does not hold"),
            Unprocessable           => ("UnprocessableEntityException", 422, "an Iceberg request that is well-formed but cannot apply"),
            IcebergRouteNotFound    => ("NotFoundException",            404, "no analytics route at this path"),
            IcebergMethodNotAllowed => ("MethodNotAllowedException",    405, "a method the analytics route does not take"),
            IcebergRequestTooLarge  => ("RequestTooLargeException",     413, "an analytics body over the limit"),
        };
        Entry { code, status, when }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::InvalidRequest,
        ErrorKind::InvalidKey,
        ErrorKind::InvalidBucketName,
        ErrorKind::NoSuchBucket,
        ErrorKind::NoSuchKey,
        ErrorKind::BucketAlreadyExists,
        ErrorKind::KeyAlreadyExists,
        ErrorKind::BucketNotEmpty,
        ErrorKind::EntityTooLarge,
        ErrorKind::InvalidMimeType,
        ErrorKind::InvalidRange,
        ErrorKind::InvalidSignature,
        ErrorKind::InvalidJwt,
        ErrorKind::ExpiredToken,
        ErrorKind::AccessDenied,
        ErrorKind::RequestTimeout,
        ErrorKind::NoSuchUpload,
        ErrorKind::UploadExpired,
        ErrorKind::UploadLocked,
        ErrorKind::UploadOffsetMismatch,
        ErrorKind::TusVersionNotSupported,
        ErrorKind::TusMethodNotAllowed,
        ErrorKind::InvalidParameter,
        ErrorKind::MissingParameter,
        ErrorKind::VectorNotFound,
        ErrorKind::VectorConflict,
        ErrorKind::VectorBucketNotEmpty,
        ErrorKind::IcebergBadRequest,
        ErrorKind::NoSuchWarehouse,
        ErrorKind::NoSuchNamespace,
        ErrorKind::NoSuchTable,
        ErrorKind::AlreadyExists,
        ErrorKind::NamespaceNotEmpty,
        ErrorKind::CommitFailed,
        ErrorKind::Unprocessable,
        ErrorKind::IcebergRouteNotFound,
        ErrorKind::IcebergMethodNotAllowed,
        ErrorKind::IcebergRequestTooLarge,
    ];
}

/// A storage error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A row of the catalogue with a client-safe message.
    #[error("{message}")]
    Api {
        /// Which error: Storage's code and its real status.
        kind: ErrorKind,
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
    /// An error of `kind` with a client-safe message.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Api { kind, message: message.into() }
    }

    /// An internal error: logged, answered generically.
    pub fn internal(cause: impl Into<forge_core::error::BoxError>) -> Self {
        Error::Core(ForgeError::internal(cause))
    }

    /// 400 `InvalidRequest`.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// 404 `NoSuchKey`.
    pub fn no_such_key() -> Self {
        Self::new(ErrorKind::NoSuchKey, "Object not found")
    }

    /// 404 `NoSuchBucket`.
    pub fn no_such_bucket() -> Self {
        Self::new(ErrorKind::NoSuchBucket, "Bucket not found")
    }

    /// 403 `AccessDenied` for any role but the service role (Supabase's message).
    pub(crate) fn invalid_role() -> Self {
        Self::new(ErrorKind::AccessDenied, "Access denied: Invalid role")
    }

    /// Which catalogue row this error is, if it is forge-storage's own.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Api { kind, .. } => Some(*kind),
            Error::Core(_) => None,
        }
    }

    /// The kind of a database error, if this is one.
    pub(crate) fn db_kind(&self) -> Option<DbErrorKind> {
        match self {
            Error::Core(e) => e.db_kind(),
            Error::Api { .. } => None,
        }
    }

    /// The status in the body (`statusCode`).
    pub fn status(&self) -> u16 {
        self.problem(WireFormat::Storage).status.as_u16()
    }

    /// This error described for `format` (Storage, its vector or TUS variants, or Iceberg).
    pub fn problem(&self, format: WireFormat) -> Problem {
        match self {
            Error::Api { kind, message } => {
                let entry = kind.entry();
                Problem::new(entry.status(), entry.code, message.clone())
            }
            Error::Core(e) => e.problem(format, true),
        }
    }

    /// Renders in `format`; server errors are logged with their cause.
    pub(crate) fn render(self, format: WireFormat) -> Response {
        match self {
            Error::Core(e) => e.render(format, true),
            api => format.render(api.problem(format)),
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

/// A request body that broke off: the client's doing (400); ours when the body was cut off
/// here (a stalled upload's 408), whose error comes back through the body's layers; or an
/// edge's body limit (`http_body_util::Limited`, under tower-http's `RequestBodyLimitLayer`,
/// which cuts off a chunked body that has no Content-Length to refuse up front): 413, as
/// Storage answers an object over its size limit.
impl From<axum::Error> for Error {
    fn from(e: axum::Error) -> Self {
        let mut inner = e.into_inner();
        loop {
            inner = match inner.downcast::<Error>() {
                Ok(ours) => return *ours,
                Err(other) => match other.downcast::<axum::Error>() {
                    Ok(wrapped) => wrapped.into_inner(),
                    Err(other) if over_a_body_limit(other.as_ref()) => return crate::blob::too_large(),
                    Err(other) => return Error::invalid(format!("The upload was interrupted: {other}")),
                },
            };
        }
    }
}

/// Whether `e`, or an error it wraps, is a body limit's.
fn over_a_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        at = e.source();
    }
    false
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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.render(WireFormat::Storage)
    }
}
