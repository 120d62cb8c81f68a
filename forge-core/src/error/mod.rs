//! Errors shared by every Forge service.
//!
//! Each error has a meaning ([`ForgeError`]) and a stable [`ErrorCode`]. The one table in
//! [`ErrorCode::info`] maps every code to its HTTP status and to the code each wire format
//! uses (PostgREST, GoTrue, Storage).
//!
//! Every crate describes its errors as a [`Problem`] (status, code, message, details, hint)
//! and [`WireFormat::render`] builds the body: one renderer per wire shape, so no crate builds
//! error bodies by hand. Each feature crate keeps its own catalogue, a table of [`Entry`] rows
//! (code, status, when) from which its errors take their status. Database errors are told
//! apart by [`DbErrorKind`], never by message text. [`RefusalLayer`] renders axum's own
//! refusals (bad query strings, paths, bodies, methods) in the service's shape.
//!
//! 5xx bodies are generic: the cause is logged with `tracing` and never sent to the client.

mod refusal;
mod wire;

use std::borrow::Cow;

pub use refusal::{RefusalLayer, Refusals};
pub use wire::{Problem, Rejection, RenderedError, TUS_VERSION, WireFormat, sqlstate_status};

/// A boxed error used as the hidden cause of 5xx errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type used across forge-core.
pub type Result<T, E = ForgeError> = std::result::Result<T, E>;

/// A stable, machine-readable error code.
///
/// The string from [`ErrorCode::as_str`] is part of Forge's public contract; it never changes
/// meaning once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Neither an `apikey` header nor an `Authorization` bearer was sent.
    NoApiKey,
    /// The `apikey` (or `Bearer sb_...`) does not belong to this project.
    InvalidApiKey,
    /// `Authorization` is not of the form `Bearer <token>`.
    MalformedAuthorization,
    /// An authentication header exceeds the size limit.
    HeaderTooLarge,
    /// The token is not a well-formed JWT.
    InvalidJwt,
    /// The JWT's `alg` is not one this project accepts (including `none`).
    JwtAlgorithmNotAllowed,
    /// The JWT's signature does not verify against the project's keys.
    JwtBadSignature,
    /// The JWT's `exp` lies in the past (beyond the leeway).
    JwtExpired,
    /// The JWT's `nbf` lies in the future (beyond the leeway).
    JwtNotYetValid,
    /// A user token's `aud` does not name the project's audience.
    JwtBadAudience,
    /// The JWT is missing a required claim or a claim has the wrong type.
    JwtBadClaims,
    /// The JWT's `role` is not one requests may switch to (not an API role and not configured).
    JwtRoleNotAllowed,
    /// No project with the requested ref exists.
    ProjectNotFound,
    /// The project is paused: its pools are closed until it is restored.
    ProjectPaused,
    /// The project's database cannot be reached (or does not exist).
    DatabaseUnavailable,
    /// No database connection became free in time.
    PoolTimeout,
    /// An error raised by Postgres, carried with its SQLSTATE.
    Database,
    /// The request is malformed in a way no more specific code covers.
    BadRequest,
    /// The request body exceeds the size limit.
    PayloadTooLarge,
    /// The request took longer than the server allows.
    Timeout,
    /// No route matches the path.
    NotFound,
    /// Anything else; the cause is logged, never sent.
    Internal,
}

/// One row of a service's error catalogue: a code, its one HTTP status, and when it is
/// answered. Each crate keeps its catalogue as a table of these (`ErrorKind::entry`), from
/// which its errors take their status and `docs/errors.md` is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The code the service sends.
    pub code: &'static str,
    /// The real HTTP status.
    pub status: u16,
    /// When it is answered, for the documentation.
    pub when: &'static str,
}

impl Entry {
    /// The HTTP status.
    pub fn status(&self) -> http::StatusCode {
        http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// One row of the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    /// Forge's own stable code, e.g. `jwt_expired`.
    pub code: &'static str,
    /// The HTTP status (the real one; Storage's wire format folds 4xx into 400 itself).
    pub status: u16,
    /// The code PostgREST would send (`PGRSTxxx`).
    pub postgrest: &'static str,
    /// The `error_code` GoTrue would send.
    pub gotrue: &'static str,
    /// The `code` Supabase Storage would send.
    pub storage: &'static str,
    /// The client-facing message used when the error carries none of its own.
    pub message: &'static str,
}

impl ErrorCode {
    /// The error table: one row per code.
    #[rustfmt::skip]
    pub const fn info(self) -> CodeInfo {
        use ErrorCode::*;
        let (code, status, postgrest, gotrue, storage, message) = match self {
            //                        code                         HTTP  PostgREST   GoTrue                Storage             default message
            NoApiKey               => ("no_api_key",               401, "PGRST302", "no_authorization",   "AccessDenied",     "No API key found in request"),
            InvalidApiKey          => ("invalid_api_key",          401, "PGRST301", "bad_jwt",            "AccessDenied",     "Invalid API key"),
            MalformedAuthorization => ("malformed_authorization",  401, "PGRST301", "bad_jwt",            "InvalidJWT",       "Authorization header must be 'Bearer <token>'"),
            HeaderTooLarge         => ("header_too_large",         431, "PGRST301", "bad_jwt",            "InvalidJWT",       "Authentication header is too large"),
            InvalidJwt             => ("invalid_jwt",              401, "PGRST301", "bad_jwt",            "InvalidJWT",       "JWT could not be decoded"),
            JwtAlgorithmNotAllowed => ("jwt_algorithm_not_allowed", 401, "PGRST301", "bad_jwt",           "InvalidJWT",       "Wrong or unsupported encoding algorithm"),
            JwtBadSignature        => ("jwt_bad_signature",        401, "PGRST301", "bad_jwt",            "InvalidSignature", "JWT cryptographic operation failed"),
            JwtExpired             => ("jwt_expired",              401, "PGRST303", "bad_jwt",            "ExpiredToken",     "JWT expired"),
            JwtNotYetValid         => ("jwt_not_yet_valid",        401, "PGRST303", "bad_jwt",            "InvalidJWT",       "JWT not yet valid"),
            JwtBadAudience         => ("jwt_bad_audience",         401, "PGRST303", "bad_jwt",            "InvalidJWT",       "JWT not in audience"),
            JwtBadClaims           => ("jwt_bad_claims",           401, "PGRST303", "bad_jwt",            "InvalidJWT",       "Parsing claims failed"),
            JwtRoleNotAllowed      => ("jwt_role_not_allowed",     403, "42501",    "bad_jwt",            "AccessDenied",     "The JWT's role is not allowed"),
            ProjectNotFound        => ("project_not_found",        404, "PGRST125", "not_found",          "TenantNotFound",   "Project not found"),
            ProjectPaused          => ("project_paused",           503, "PGRST000", "unexpected_failure", "DatabaseError",    "Project is paused; restore it to serve requests"),
            DatabaseUnavailable    => ("database_unavailable",     503, "PGRST000", "unexpected_failure", "DatabaseError",    "Database connection error."),
            PoolTimeout            => ("pool_timeout",             504, "PGRST003", "request_timeout",    "DatabaseTimeout",  "Timed out acquiring connection from connection pool."),
            Database               => ("database_error",           400, "",         "unexpected_failure", "DatabaseError",    "Database error"),
            BadRequest             => ("bad_request",              400, "PGRST100", "validation_failed",  "InvalidRequest",   "Bad request"),
            PayloadTooLarge        => ("payload_too_large",        413, "PGRST102", "validation_failed",  "EntityTooLarge",   "Payload too large"),
            Timeout                => ("request_timeout",          504, "PGRST003", "request_timeout",    "DatabaseTimeout",  "Request timed out"),
            NotFound               => ("not_found",                404, "PGRST125", "not_found",          "NotFound",         "Invalid path specified in request URL"),
            Internal               => ("internal",                 500, "PGRSTX00", "unexpected_failure", "InternalError",    "Internal server error"),
        };
        CodeInfo { code, status, postgrest, gotrue, storage, message }
    }

    /// Forge's stable code string.
    pub const fn as_str(self) -> &'static str {
        self.info().code
    }

    /// The HTTP status.
    pub fn status(self) -> http::StatusCode {
        http::StatusCode::from_u16(self.info().status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Every code, for tests and documentation.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::NoApiKey,
        ErrorCode::InvalidApiKey,
        ErrorCode::MalformedAuthorization,
        ErrorCode::HeaderTooLarge,
        ErrorCode::InvalidJwt,
        ErrorCode::JwtAlgorithmNotAllowed,
        ErrorCode::JwtBadSignature,
        ErrorCode::JwtExpired,
        ErrorCode::JwtNotYetValid,
        ErrorCode::JwtBadAudience,
        ErrorCode::JwtBadClaims,
        ErrorCode::JwtRoleNotAllowed,
        ErrorCode::ProjectNotFound,
        ErrorCode::ProjectPaused,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::PoolTimeout,
        ErrorCode::Database,
        ErrorCode::BadRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Timeout,
        ErrorCode::NotFound,
        ErrorCode::Internal,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reported by Postgres, kept with its SQLSTATE so services can map it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("postgres error {code}: {message}")]
#[non_exhaustive]
pub struct DbError {
    /// The five-character SQLSTATE.
    pub code: String,
    /// Postgres's primary message.
    pub message: String,
    /// Postgres's DETAIL, if any.
    pub detail: Option<String>,
    /// Postgres's HINT, if any.
    pub hint: Option<String>,
    /// The constraint Postgres named, if any (never sent to clients).
    pub constraint: Option<String>,
}

impl DbError {
    /// An error with a SQLSTATE and a message, and no detail, hint or constraint.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), detail: None, hint: None, constraint: None }
    }

    /// What kind of error this is, by its SQLSTATE.
    pub fn kind(&self) -> DbErrorKind {
        DbErrorKind::from_sqlstate(&self.code)
    }
}

/// What a database error means, judged by its SQLSTATE (in the spirit of sqlx's
/// `DatabaseError::kind()`). Services map errors by kind, never by message text or by SQLSTATE
/// literals of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// 23505: a unique or primary-key constraint.
    UniqueViolation,
    /// 23503: a foreign key (a missing referenced row, or a row still referenced).
    ForeignKeyViolation,
    /// 23502: a NOT NULL column.
    NotNullViolation,
    /// 23514: a CHECK constraint.
    CheckViolation,
    /// 23P01: an exclusion constraint.
    ExclusionViolation,
    /// 40001: a serializable transaction lost a race.
    SerializationFailure,
    /// 40P01: a deadlock was broken by failing this transaction.
    DeadlockDetected,
    /// 42501: a privilege or a row-level security policy refused.
    InsufficientPrivilege,
    /// 55P03: `NOWAIT` or `lock_timeout` could not take a lock.
    LockNotAvailable,
    /// 57014: `statement_timeout` or a cancel request ended the statement.
    QueryCanceled,
    /// 25006: a write in a read-only transaction.
    ReadOnlyTransaction,
    /// 22P02: a value that does not parse as its type.
    InvalidTextRepresentation,
    /// 22021 or 22P05: a NUL character in text or JSON, which Postgres cannot store.
    NulCharacter,
    /// P0001: `RAISE EXCEPTION` in a function or trigger.
    RaiseException,
    /// Anything else.
    Other,
}

impl DbErrorKind {
    /// The kind of a SQLSTATE.
    pub fn from_sqlstate(code: &str) -> Self {
        match code {
            "23505" => Self::UniqueViolation,
            "23503" => Self::ForeignKeyViolation,
            "23502" => Self::NotNullViolation,
            "23514" => Self::CheckViolation,
            "23P01" => Self::ExclusionViolation,
            "40001" => Self::SerializationFailure,
            "40P01" => Self::DeadlockDetected,
            "42501" => Self::InsufficientPrivilege,
            "55P03" => Self::LockNotAvailable,
            "57014" => Self::QueryCanceled,
            "25006" => Self::ReadOnlyTransaction,
            "22P02" => Self::InvalidTextRepresentation,
            "22021" | "22P05" => Self::NulCharacter,
            "P0001" => Self::RaiseException,
            _ => Self::Other,
        }
    }

    /// The kind of a database error from sqlx, if it is one.
    pub fn of_sqlx(err: &sqlx::Error) -> Option<Self> {
        err.as_database_error().and_then(|db| db.code()).map(|code| Self::from_sqlstate(&code))
    }
}

/// Authentication failures: API keys, the `Authorization` header and JWTs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// What went wrong.
    pub code: ErrorCode,
    /// A client-safe description.
    pub message: Cow<'static, str>,
}

impl AuthError {
    /// An authentication failure with the table's default message.
    pub fn new(code: ErrorCode) -> Self {
        Self { code, message: Cow::Borrowed(code.info().message) }
    }

    /// An authentication failure with a specific, client-safe message.
    pub fn with_message(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code, message: message.into() }
    }
}

/// The error type of forge-core and the common currency between Forge crates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForgeError {
    /// The caller could not be authenticated.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No project with this ref exists (an empty ref: the request named no project).
    #[error("{}", if .0.is_empty() { "No project named in the request (use /p/{ref}/... or a {ref}. host)".to_owned() } else { format!("Project '{}' not found", .0) })]
    ProjectNotFound(String),
    /// The project exists but is paused (or being removed).
    #[error("Project '{0}' is paused; restore it to serve requests")]
    ProjectPaused(String),
    /// The database could not be reached. The cause is logged, never sent.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(#[source] BoxError),
    /// No pooled connection became free in time.
    #[error("timed out waiting for a database connection")]
    PoolTimeout,
    /// Postgres rejected a statement.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The request is malformed.
    #[error("{message}")]
    BadRequest {
        /// A client-safe description.
        message: Cow<'static, str>,
    },
    /// The request body is over the limit.
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request took too long.
    #[error("request timed out")]
    Timeout,
    /// No such route.
    #[error("Invalid path specified in request URL")]
    NotFound,
    /// A bug or an unexpected failure. The cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl ForgeError {
    /// An internal error from any cause.
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        ForgeError::Internal(cause.into())
    }

    /// A bad-request error with a client-safe message.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        ForgeError::BadRequest { message: message.into() }
    }

    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ForgeError::Auth(e) => e.code,
            ForgeError::ProjectNotFound(_) => ErrorCode::ProjectNotFound,
            ForgeError::ProjectPaused(_) => ErrorCode::ProjectPaused,
            ForgeError::DatabaseUnavailable(_) => ErrorCode::DatabaseUnavailable,
            ForgeError::PoolTimeout => ErrorCode::PoolTimeout,
            ForgeError::Database(_) => ErrorCode::Database,
            ForgeError::BadRequest { .. } => ErrorCode::BadRequest,
            ForgeError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ForgeError::Timeout => ErrorCode::Timeout,
            ForgeError::NotFound => ErrorCode::NotFound,
            ForgeError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The kind of a database error; `None` for anything else.
    pub fn db_kind(&self) -> Option<DbErrorKind> {
        match self {
            ForgeError::Database(db) => Some(db.kind()),
            _ => None,
        }
    }

    /// The database error's constraint, when Postgres named one (unique, foreign-key, check
    /// and not-null violations do).
    pub fn db_constraint(&self) -> Option<&str> {
        match self {
            ForgeError::Database(db) => db.constraint.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status this error answers with (the real one, before any wire-format folding).
    ///
    /// `authenticated` matters only for SQLSTATE 42501, which PostgREST answers with 401 for
    /// the anon role and 403 otherwise.
    pub fn status(&self, authenticated: bool) -> http::StatusCode {
        match self {
            ForgeError::Database(db) => sqlstate_status(&db.code, &db.message, authenticated),
            other => other.code().status(),
        }
    }
}

impl From<sqlx::Error> for ForgeError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(db) => {
                let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
                ForgeError::Database(DbError {
                    code: db.code().map(|c| c.into_owned()).unwrap_or_else(|| "XX000".into()),
                    message: db.message().to_owned(),
                    detail: pg.and_then(|p| p.detail()).map(str::to_owned),
                    hint: pg.and_then(|p| p.hint()).map(str::to_owned),
                    constraint: db.constraint().map(str::to_owned),
                })
            }
            sqlx::Error::PoolTimedOut => ForgeError::PoolTimeout,
            e @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_)) => {
                ForgeError::DatabaseUnavailable(e.into())
            }
            other => ForgeError::internal(other),
        }
    }
}

impl From<tokio_postgres::Error> for ForgeError {
    fn from(err: tokio_postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            // Connection-level refusals (no such database, auth failure, too many clients)
            // come back as database errors too; they mean "unavailable", not "bad request".
            let code = db.code().code();
            if code.starts_with("08") || code.starts_with("28") || code == "3D000" || code == "53300" || code == "57P03"
            {
                return ForgeError::DatabaseUnavailable(err.into());
            }
            return ForgeError::Database(DbError {
                code: code.to_owned(),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
                hint: db.hint().map(str::to_owned),
                constraint: db.constraint().map(str::to_owned),
            });
        }
        // A lost or refused connection is "unavailable"; anything else on the client side
        // (a parameter of the wrong type, say) is a bug, answered with a generic 500.
        let io = std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>());
        if err.is_closed() || io {
            return ForgeError::DatabaseUnavailable(err.into());
        }
        ForgeError::Internal(err.into())
    }
}

impl From<deadpool_postgres::PoolError> for ForgeError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match err {
            PoolError::Timeout(_) => ForgeError::PoolTimeout,
            PoolError::Backend(e) => e.into(),
            other => ForgeError::DatabaseUnavailable(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_unique_stable_string_and_a_valid_status() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let info = code.info();
            assert!(seen.insert(info.code), "duplicate code string {}", info.code);
            assert!(http::StatusCode::from_u16(info.status).is_ok(), "{code:?}");
            assert!((400..600).contains(&info.status), "{code:?} is not an error status");
            assert!(!info.message.is_empty());
            assert!(!info.gotrue.is_empty() && !info.storage.is_empty());
        }
    }

    #[test]
    fn jwt_failures_are_401_and_use_postgrest_jwt_codes() {
        for code in [ErrorCode::InvalidJwt, ErrorCode::JwtBadSignature, ErrorCode::JwtAlgorithmNotAllowed] {
            assert_eq!(code.info().status, 401);
            assert_eq!(code.info().postgrest, "PGRST301");
        }
        for code in [ErrorCode::JwtExpired, ErrorCode::JwtNotYetValid, ErrorCode::JwtBadAudience] {
            assert_eq!(code.info().postgrest, "PGRST303");
        }
    }
}
