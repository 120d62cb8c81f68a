//! The control plane's errors: the Management API (`/v1`) and the setup page answer
//! `{code, message}` (forge-core's plain shape; Supabase's Management API sends `message`).

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use forge_core::error::{DbErrorKind, Entry, Problem};
use forge_core::{ForgeError, WireFormat};

/// The control plane's catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// unauthorized (401): no token, or one that is not a live platform session or access token.
    Unauthorized,
    /// forbidden (403): a member whose role may not do this.
    Forbidden,
    /// not_found (404): no such organization, project, key, member or token, or one the caller may not see.
    NotFound,
    /// invalid_request (400): a body or parameter that is missing, malformed or out of range.
    InvalidRequest,
    /// conflict (409): the name or member exists already, or the project is not in a state that allows this.
    Conflict,
    /// setup_required (403): the platform has no owner yet; use the setup link the server printed.
    SetupRequired,
    /// setup_done (409): the first owner exists already; the setup link works once.
    SetupDone,
    /// query_failed (400): SQL sent to `database/query` that Postgres rejected (its message is sent).
    QueryFailed,
}

impl ErrorKind {
    /// The catalogue: this kind's code, status and when it is answered.
    #[rustfmt::skip]
    pub const fn entry(self) -> Entry {
        use ErrorKind::*;
        let (code, status, when) = match self {
            Unauthorized   => ("unauthorized",    401, "no token, or one that is not a live platform session or access token"),
            Forbidden      => ("forbidden",       403, "a member whose role may not do this"),
            NotFound       => ("not_found",       404, "no such organization, project, key, member or token, or one the caller may not see"),
            InvalidRequest => ("invalid_request", 400, "a body or parameter that is missing, malformed or out of range"),
            Conflict       => ("conflict",        409, "the name or member exists already, or the project is not in a state that allows this"),
            SetupRequired  => ("setup_required",  403, "the platform has no owner yet: use the setup link the server printed"),
            SetupDone      => ("setup_done",      409, "the first owner exists already; the setup link works once"),
            QueryFailed    => ("query_failed",    400, "SQL sent to `database/query` that Postgres rejected (its message is sent)"),
        };
        Entry { code, status, when }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::InvalidRequest,
        ErrorKind::Conflict,
        ErrorKind::SetupRequired,
        ErrorKind::SetupDone,
        ErrorKind::QueryFailed,
    ];
}

/// A control-plane error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A row of the catalogue with a client-safe message.
    #[error("{message}")]
    Api {
        /// Which error.
        kind: ErrorKind,
        /// The message.
        message: Cow<'static, str>,
    },
    /// A forge-core error (database, internal).
    #[error(transparent)]
    Core(#[from] ForgeError),
}

/// A result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a client-safe message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Api { kind, message: message.into() }
    }

    /// An internal error: logged, answered generically.
    pub fn internal(cause: impl Into<forge_core::error::BoxError>) -> Self {
        Error::Core(ForgeError::internal(cause))
    }

    /// 404 for `what`.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    /// 400 with `message`.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// 403 for a role that may not do this.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// 409 with `message`.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// Which catalogue row this error is, if it is the control plane's own.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Api { kind, .. } => Some(*kind),
            Error::Core(_) => None,
        }
    }

    /// The kind of a database error, if this is one.
    pub fn db_kind(&self) -> Option<DbErrorKind> {
        match self {
            Error::Core(e) => e.db_kind(),
            Error::Api { .. } => None,
        }
    }

    /// This error in the plain shape.
    pub fn problem(&self) -> Problem {
        match self {
            Error::Api { kind, message } => {
                let entry = kind.entry();
                Problem::new(entry.status(), entry.code, message.clone())
            }
            Error::Core(e) => e.problem(WireFormat::Plain, true),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Core(e.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            // Logged with its cause; a generic body.
            Error::Core(e) => e.render(WireFormat::Plain, true),
            api => WireFormat::Plain.render(api.problem()),
        }
    }
}
