//! forge-data's errors, in PostgREST's catalogue (SERVER-BEHAVIOUR.md §1a) and shape.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use forge_core::{ForgeError, WireFormat};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// A REST error: a PostgREST code with its status, or an error from forge-core (auth, the
/// database) rendered in PostgREST's shape.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request PostgREST would refuse with a `PGRSTxxx` code.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// `PGRSTxxx` (or a SQLSTATE PostgREST would pass on).
        code: Cow<'static, str>,
        /// The message.
        message: String,
        /// Details: a string or, for ambiguities, a JSON array.
        details: Value,
        /// A hint.
        hint: Option<String>,
    },
    /// From forge-core: authentication, the database, limits.
    #[error(transparent)]
    Core(#[from] ForgeError),
}

/// forge-data's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn api(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Error::Api {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code: Cow::Borrowed(code),
            message: message.into(),
            details: Value::Null,
            hint: None,
        }
    }

    fn with_details(mut self, value: impl Into<Value>) -> Self {
        if let Error::Api { details, .. } = &mut self {
            *details = value.into();
        }
        self
    }

    fn with_hint(mut self, value: Option<String>) -> Self {
        if let Error::Api { hint, .. } = &mut self {
            *hint = value;
        }
        self
    }

    /// PGRST106: the profile header names a schema that is not exposed.
    pub fn schema_not_exposed(schema: &str, exposed: &[String]) -> Self {
        Self::api(406, "PGRST106", format!("Invalid schema: {schema}"))
            .with_hint(Some(format!("Only the following schemas are exposed: {}", exposed.join(", "))))
    }

    /// PGRST205: no such table or view.
    pub fn relation_not_found(schema: &str, name: &str, suggestion: Option<&str>) -> Self {
        Self::api(404, "PGRST205", format!("Could not find the table '{schema}.{name}' in the schema cache"))
            .with_hint(suggestion.map(|s| format!("Perhaps you meant the table '{schema}.{s}'")))
    }

    /// PGRST204: a written column the relation does not have.
    pub fn column_not_found(relation: &str, column: &str) -> Self {
        Self::api(400, "PGRST204", format!("Could not find the '{column}' column of '{relation}' in the schema cache"))
    }

    /// 42703, as Postgres would say it: a read of a column the relation does not have.
    pub fn undefined_column(relation: &str, column: &str) -> Self {
        Self::api(400, "42703", format!("column {relation}.{column} does not exist"))
    }

    /// PGRST200: no relationship between two relations.
    pub fn relationship_not_found(schema: &str, from: &str, to: &str) -> Self {
        Self::api(400, "PGRST200", format!("Could not find a relationship between '{from}' and '{to}' in the schema cache"))
            .with_details(format!("Searched for a foreign key relationship between '{from}' and '{to}' in the schema '{schema}', but no matches were found."))
    }

    /// PGRST201: more than one relationship matches; `candidates` are `(cardinality,
    /// embedding, relationship)` triples and `hints` the `target!hint` forms that disambiguate.
    pub fn ambiguous_relationship(from: &str, to: &str, candidates: Vec<Value>, hints: &[String]) -> Self {
        Self::api(
            300,
            "PGRST201",
            format!("Could not embed because more than one relationship was found for '{from}' and '{to}'"),
        )
        .with_details(Value::Array(candidates))
        .with_hint(Some(format!(
            "Try changing '{to}' to one of the following: {}. Find the desired relationship in the 'details' key.",
            hints.iter().map(|h| format!("'{h}'")).collect::<Vec<_>>().join(", ")
        )))
    }

    /// PGRST202: no function with this name and these argument names.
    pub fn function_not_found(schema: &str, name: &str, args: &[String]) -> Self {
        let (signature, searched) = if args.is_empty() {
            (
                format!("Could not find the function {schema}.{name} without parameters in the schema cache"),
                "without parameters".to_owned(),
            )
        } else {
            let word = if args.len() == 1 { "parameter" } else { "parameters" };
            (
                format!("Could not find the function {schema}.{name}({}) in the schema cache", args.join(", ")),
                format!("with {word} {}", args.join(", ")),
            )
        };
        Self::api(404, "PGRST202", signature).with_details(format!(
            "Searched for the function {schema}.{name} {searched} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache."
        ))
    }

    /// Adds "Perhaps you meant ..." to a PGRST202 when another function's name is close.
    pub(crate) fn with_function_hint(self, schema: &str, suggestion: Option<&str>) -> Self {
        match (&self, suggestion) {
            (Error::Api { code, .. }, Some(s)) if code == "PGRST202" => {
                self.with_hint(Some(format!("Perhaps you meant to call the function {schema}.{s}")))
            }
            _ => self,
        }
    }

    /// PGRST203: overloads that cannot be told apart.
    pub fn ambiguous_function(schema: &str, name: &str, candidates: &[String]) -> Self {
        Self::api(
            300,
            "PGRST203",
            format!(
                "Could not choose the best candidate function between: {}",
                candidates.iter().map(|c| format!("{schema}.{name}({c})")).collect::<Vec<_>>().join(", ")
            ),
        )
    }

    /// PGRST107: none of the accepted media types can be produced.
    pub fn not_acceptable(accept: &str) -> Self {
        Self::api(406, "PGRST107", format!("None of these media types are available: {accept}"))
    }

    /// PGRST116: a singular response asked for, and the result has `rows` rows.
    pub fn not_singular(rows: u64) -> Self {
        Self::api(406, "PGRST116", "Cannot coerce the result to a single JSON object")
            .with_details(format!("The result contains {rows} rows"))
    }

    /// PGRST102: a body that is not valid JSON, or objects with different keys.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::api(400, "PGRST102", message)
    }

    /// PGRST103: the requested range cannot be satisfied.
    pub fn range_not_satisfiable(details: impl Into<String>) -> Self {
        Self::api(416, "PGRST103", "Requested range not satisfiable").with_details(details.into())
    }

    /// PGRST124: under `handling=strict`, more rows were affected than `max-affected` allows.
    pub fn max_affected_exceeded(rows: u64) -> Self {
        Self::api(400, "PGRST124", "Query result exceeds max-affected preference constraint")
            .with_details(format!("The query affects {rows} rows"))
    }

    /// PGRST101, PGRST105, PGRST117: a method that cannot be used here.
    pub fn method_not_allowed(code: &'static str, message: impl Into<String>) -> Self {
        Self::api(405, code, message)
    }

    /// PGRST100: a query-string error found after parsing (for example an operator that
    /// cannot apply to an embedded resource).
    pub fn bad_query(code: &'static str, message: impl Into<String>) -> Self {
        Self::api(400, code, message)
    }

    /// A query-string parse error.
    pub fn parse(
        code: &'static str,
        status: u16,
        message: String,
        details: Option<String>,
        hint: Option<String>,
    ) -> Self {
        Self::api(status, code, message).with_details(details.map(Value::String).unwrap_or(Value::Null)).with_hint(hint)
    }

    /// Renders in PostgREST's shape. `authenticated` decides 401 versus 403 for 42501.
    pub fn render(self, authenticated: bool) -> Response {
        match self {
            Error::Core(e) => e.render(WireFormat::PostgRest, authenticated),
            Error::Api { status, code, message, details, hint } => {
                let body = json!({ "code": code, "message": message, "details": details, "hint": hint });
                let mut res = (status, body.to_string()).into_response();
                let headers = res.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
                if let Ok(v) = HeaderValue::from_str(&format!("PostgREST; error={code}")) {
                    headers.insert("proxy-status", v);
                }
                res
            }
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Core(e.into())
    }
}

/// The closest of `candidates` to `name`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let tables = ["cities", "countries", "users"];
        assert_eq!(suggest("citis", tables), Some("cities"));
        assert_eq!(suggest("user", tables), Some("users"));
        assert_eq!(suggest("invoices", tables), None);
    }
}
