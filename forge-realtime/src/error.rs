//! Errors in Supabase Realtime's shapes.
//!
//! Realtime answers in three places, each with its own shape:
//! - a refused WebSocket handshake: HTTP with `{"error": message}`;
//! - its REST endpoints (`/api/broadcast`): HTTP with `{"message": message}`;
//! - a refused channel join: a `phx_reply` with status `error` and
//!   `{"reason": "<Code>: <message>"}`, and a channel shut down: a `system` push with the message.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use forge_core::error::{AuthError, Entry, Problem};
use forge_core::{ForgeError, WireFormat};

/// forge-realtime's error catalogue: one row per situation, with Supabase Realtime's code and
/// the HTTP status it is answered with (for join refusals, the status of the same refusal at
/// the handshake or over REST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// MissingAPIKey (401): a handshake without `apikey` or `x-api-key`.
    MissingApiKey,
    /// InvalidJWTToken (401): an API key or token that does not verify, or has expired.
    InvalidToken,
    /// ConnectionRateLimitReached (429): more sockets than the project allows.
    TooManyConnections,
    /// ClientJoinRateLimitReached (429): more joins per second than the project allows.
    TooManyJoins,
    /// ChannelRateLimitReached (429): a join over the socket's channel limit.
    TooManyChannels,
    /// TopicNameRequired (400): a join on `realtime:` with nothing after it.
    TopicNameRequired,
    /// Unauthorized (401): a private channel whose policies do not let the caller read.
    Unauthorized,
    /// InvalidBinding (400): a `postgres_changes` binding on a table or column that does not
    /// exist, or with a filter that does not parse.
    InvalidBinding,
    /// UnableToReplayMessages (400): replay asked on a public channel, or with bad parameters.
    UnableToReplay,
    /// UnableToConnectToProject (503): the project's database is unavailable.
    Unavailable,
    /// UnprocessableEntity (422): a REST broadcast body that is malformed, or a payload over
    /// the limit.
    InvalidBody,
    /// TooManyMessages (429): more messages per second than the project allows.
    TooManyMessages,
    /// UnsupportedVersion (400): a handshake whose `vsn` is neither 1.0.0 nor 2.0.0.
    UnsupportedVersion,
    /// NotAWebSocket (400): a plain GET of the socket's URL, not an upgrade.
    NotAWebSocket,
}

impl ErrorKind {
    /// The catalogue: this kind's code, status and when it is answered.
    #[rustfmt::skip]
    pub const fn entry(self) -> Entry {
        use ErrorKind::*;
        let (code, status, when) = match self {
            MissingApiKey      => ("MissingAPIKey",              401, "a handshake without `apikey` or `x-api-key`"),
            InvalidToken       => ("InvalidJWTToken",            401, "an API key or token that does not verify, or has expired"),
            TooManyConnections => ("ConnectionRateLimitReached", 429, "more sockets than the project allows"),
            TooManyJoins       => ("ClientJoinRateLimitReached", 429, "more joins per second than the project allows (the socket is closed)"),
            TooManyChannels    => ("ChannelRateLimitReached",    429, "a join over the socket's channel limit"),
            TopicNameRequired  => ("TopicNameRequired",          400, "a join on `realtime:` with nothing after it"),
            Unauthorized       => ("Unauthorized",               401, "a private channel whose policies do not let the caller read or send"),
            InvalidBinding     => ("InvalidBinding",             400, "a postgres_changes binding on a missing table or column, or a filter that does not parse"),
            UnableToReplay     => ("UnableToReplayMessages",     400, "replay asked on a public channel, or with bad parameters"),
            Unavailable        => ("UnableToConnectToProject",   503, "the project's database is unavailable"),
            InvalidBody        => ("UnprocessableEntity",        422, "a REST broadcast body that is malformed, or a payload over the limit"),
            TooManyMessages    => ("TooManyMessages",            429, "more messages per second than the project allows"),
            UnsupportedVersion => ("UnsupportedVersion",         400, "a handshake whose `vsn` is neither 1.0.0 nor 2.0.0"),
            NotAWebSocket      => ("NotAWebSocket",              400, "a plain GET of the socket's URL, not an upgrade"),
        };
        Entry { code, status, when }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::MissingApiKey,
        ErrorKind::InvalidToken,
        ErrorKind::TooManyConnections,
        ErrorKind::TooManyJoins,
        ErrorKind::TooManyChannels,
        ErrorKind::TopicNameRequired,
        ErrorKind::Unauthorized,
        ErrorKind::InvalidBinding,
        ErrorKind::UnableToReplay,
        ErrorKind::Unavailable,
        ErrorKind::InvalidBody,
        ErrorKind::TooManyMessages,
        ErrorKind::UnsupportedVersion,
        ErrorKind::NotAWebSocket,
    ];
}

/// A realtime error.
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
    pub(crate) fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Api { kind, message: message.into() }
    }

    /// An internal error: logged, answered generically.
    pub fn internal(cause: impl Into<forge_core::error::BoxError>) -> Self {
        Error::Core(ForgeError::internal(cause))
    }

    /// Which catalogue row this error is, if it is forge-realtime's own.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Api { kind, .. } => Some(*kind),
            Error::Core(_) => None,
        }
    }

    /// A token refusal, with Realtime's wording.
    pub(crate) fn token(e: &AuthError) -> Self {
        Error::new(ErrorKind::InvalidToken, token_message(e))
    }

    /// The reason of a refused join: `<Code>: <message>`, as Supabase Realtime sends it.
    pub(crate) fn reason(&self) -> String {
        match self {
            Error::Api { kind: ErrorKind::InvalidToken, message } if message.starts_with("The token provided") => {
                format!("MalformedJWT: {message}")
            }
            Error::Api { kind: ErrorKind::InvalidToken, message } if message.starts_with("Failed to validate") => {
                format!("JwtSignatureError: {message}")
            }
            Error::Api { kind, message } => format!("{}: {message}", kind.entry().code),
            Error::Core(e) if e.status(true).is_server_error() => {
                tracing::error!(error = %e, "realtime join failed");
                "UnableToConnectToProject: Realtime was unable to connect to the project database".to_owned()
            }
            Error::Core(e) => format!("Unknown Error on Channel: {e}"),
        }
    }

    /// This error described for `format`.
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

/// Supabase Realtime's wording for a token that does not verify.
pub(crate) fn token_message(e: &AuthError) -> String {
    use forge_core::ErrorCode;
    match e.code {
        ErrorCode::JwtExpired => "Token has expired".to_owned(),
        ErrorCode::InvalidJwt | ErrorCode::JwtAlgorithmNotAllowed | ErrorCode::MalformedAuthorization => {
            "The token provided is not a valid JWT".to_owned()
        }
        ErrorCode::JwtBadSignature => "Failed to validate JWT signature".to_owned(),
        _ => e.message.to_string(),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.render(WireFormat::Realtime)
    }
}
