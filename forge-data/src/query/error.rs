//! The error every parser in this module returns, shaped like PostgREST's `{code, message,
//! details, hint}` envelope.

use std::fmt;

/// Most characters of user input echoed back in an error message.
const MAX_ECHO_CHARS: usize = 200;

/// A query-string or header parse failure, carrying the PostgREST error code it maps to.
///
/// `message`, `details` and `hint` are the fields of the PostgREST error body; [`ParseError::status`]
/// gives the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ParseError {
    /// The PostgREST code: `PGRST100` (syntax), `PGRST103` (range) or `PGRST122` (strict `Prefer`).
    pub code: &'static str,
    /// The human-readable message (never more than about 200 characters of echoed input).
    pub message: String,
    /// What the parser expected, or the failed constraint.
    pub details: Option<String>,
    /// A hint for the caller; the parsers never set one today.
    pub hint: Option<String>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(details) = &self.details {
            write!(f, " ({details})")?;
        }
        Ok(())
    }
}

impl ParseError {
    /// The HTTP status PostgREST answers with for this code, from forge-data's catalogue
    /// (`PGRST103` → 416, everything else produced here → 400).
    pub fn status(&self) -> u16 {
        crate::error::ErrorKind::of_parse_code(self.code).entry().status
    }

    /// The PostgREST error body: `{"code","message","details","hint"}` with `null`s.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "hint": self.hint,
        })
    }

    /// A `PGRST103` "Requested range not satisfiable" error with the given details.
    pub(super) fn range(details: &str) -> Self {
        Self {
            code: "PGRST103",
            message: "Requested range not satisfiable".to_owned(),
            details: Some(details.to_owned()),
            hint: None,
        }
    }

    /// A `PGRST100` error in Parsec's format: `"failed to parse <what> (<input>)" (line 1, column N)`.
    pub(super) fn syntax(what: &str, input: &str, err: SyntaxError) -> Self {
        Self {
            code: "PGRST100",
            message: format!("\"failed to parse {what} ({})\" (line 1, column {})", truncate(input), err.column),
            details: Some(err.details),
            hint: None,
        }
    }
}

/// `input`, cut to [`MAX_ECHO_CHARS`] characters (on a character boundary) with an ellipsis.
pub(super) fn truncate(input: &str) -> String {
    match input.char_indices().nth(MAX_ECHO_CHARS) {
        Some((idx, _)) => format!("{}...", input.get(..idx).unwrap_or_default()),
        None => input.to_owned(),
    }
}

/// A parse failure inside one parameter: where it happened and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    /// 1-based column in the original parameter value.
    pub(super) column: usize,
    /// Parsec-like `unexpected "x" expecting ...` text, or a specific complaint.
    pub(super) details: String,
}

impl SyntaxError {
    /// `unexpected <found> expecting <expecting>`.
    pub(super) fn unexpected(column: usize, found: Option<char>, expecting: &str) -> Self {
        let found = match found {
            Some(c) => format!("\"{}\"", c.escape_debug()),
            None => "end of input".to_owned(),
        };
        Self { column, details: format!("unexpected {found} expecting {expecting}") }
    }

    /// A free-form complaint, e.g. `unknown single value operator noop`.
    pub(super) fn custom(column: usize, details: impl Into<String>) -> Self {
        Self { column, details: details.into() }
    }
}
