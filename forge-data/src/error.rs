//! forge-data's errors, in PostgREST's catalogue (SERVER-BEHAVIOUR.md §1a) and shape.

use axum::response::Response;
use forge_core::error::{Entry, Problem};
use forge_core::{ForgeError, WireFormat};
use serde_json::Value;

use crate::query::ParseError;

/// forge-data's error catalogue: one row per PostgREST code it answers with, and its status.
///
/// The status of a code is decided here and nowhere else; [`Error`]'s constructors pick a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// PGRST002: the schema cache could not be loaded.
    SchemaCacheUnavailable,
    /// PGRST100: the query string does not parse.
    BadQuery,
    /// PGRST101: a method RPC does not take.
    RpcMethodNotAllowed,
    /// PGRST102: a body that is not valid JSON, or objects with different keys.
    InvalidBody,
    /// PGRST103: the requested range cannot be satisfied.
    RangeNotSatisfiable,
    /// PGRST105: a PUT whose filters are not exactly the primary key.
    PutFiltersNotPrimaryKey,
    /// PGRST106: the profile header names a schema that is not exposed.
    SchemaNotExposed,
    /// PGRST107: none of the accepted media types can be produced.
    NotAcceptable,
    /// PGRST108: a filter, order or range on a resource the request does not embed.
    NotEmbedded,
    /// PGRST114: `limit` or `offset` on a PUT.
    PutLimitNotAllowed,
    /// PGRST115: a PUT body whose primary key differs from the URL's.
    PutPrimaryKeyMismatch,
    /// PGRST116: a singular response asked for, and the result is not one row.
    NotSingular,
    /// PGRST118: an order by a to-many embed.
    RelatedOrderNotPossible,
    /// PGRST120: an operator other than `is.null` on an embedded resource.
    BadEmbeddedOperator,
    /// PGRST122: invalid preferences under `handling=strict`.
    InvalidPreferences,
    /// PGRST123: aggregates together with `*`.
    AggregatesNotAllowed,
    /// PGRST124: more rows affected than `max-affected` allows.
    MaxAffectedExceeded,
    /// PGRST126: the root endpoint's metadata is turned off.
    RootDisabled,
    /// PGRST127: a feature PostgREST does not implement.
    NotImplemented,
    /// PGRST128: `max-affected` on a function that returns no set.
    MaxAffectedNeedsSet,
    /// PGRST200: no relationship between two relations.
    RelationshipNotFound,
    /// PGRST201: more than one relationship matches an embed.
    AmbiguousRelationship,
    /// PGRST202: no function with this name and these arguments.
    FunctionNotFound,
    /// PGRST203: overloads that cannot be told apart.
    AmbiguousFunction,
    /// PGRST204: a written column the relation does not have.
    ColumnNotFound,
    /// PGRST205: no such table or view.
    RelationNotFound,
    /// 42703, as Postgres says it: a read of a column the relation does not have.
    UndefinedColumn,
    /// 42712, as Postgres says it: two embeds under one name in the same select list.
    DuplicateAlias,
}

impl ErrorKind {
    /// The catalogue: this kind's code, status and when it is answered.
    #[rustfmt::skip]
    pub const fn entry(self) -> Entry {
        use ErrorKind::*;
        let (code, status, when) = match self {
            SchemaCacheUnavailable  => ("PGRST002", 503, "the schema cache could not be loaded"),
            BadQuery                => ("PGRST100", 400, "the query string or a header does not parse"),
            RpcMethodNotAllowed     => ("PGRST101", 405, "a method other than GET, HEAD or POST on /rpc"),
            InvalidBody             => ("PGRST102", 400, "a body that is not valid JSON or CSV, or objects with different keys"),
            RangeNotSatisfiable     => ("PGRST103", 416, "a range past the end, or an offset with limit=0"),
            PutFiltersNotPrimaryKey => ("PGRST105", 405, "PUT filters other than `eq` on every primary-key column"),
            SchemaNotExposed        => ("PGRST106", 406, "a profile header naming a schema that is not exposed"),
            NotAcceptable           => ("PGRST107", 406, "an Accept header that no output format satisfies"),
            NotEmbedded             => ("PGRST108", 400, "a filter, order or range on a resource the select does not embed"),
            PutLimitNotAllowed      => ("PGRST114", 400, "limit or offset on a PUT"),
            PutPrimaryKeyMismatch   => ("PGRST115", 400, "a PUT body whose primary key differs from the URL's"),
            NotSingular             => ("PGRST116", 406, "a singular response asked for and not one row found"),
            RelatedOrderNotPossible => ("PGRST118", 400, "an order by a to-many embed"),
            BadEmbeddedOperator     => ("PGRST120", 400, "an operator other than is.null on an embedded resource"),
            InvalidPreferences      => ("PGRST122", 400, "invalid Prefer values under handling=strict"),
            AggregatesNotAllowed    => ("PGRST123", 400, "aggregates together with `*`"),
            MaxAffectedExceeded     => ("PGRST124", 400, "more rows affected than max-affected allows"),
            RootDisabled            => ("PGRST126", 404, "the root endpoint when its metadata is turned off"),
            NotImplemented          => ("PGRST127", 400, "a feature not implemented (aggregates in a to-many spread)"),
            MaxAffectedNeedsSet     => ("PGRST128", 400, "max-affected on a function that does not return a set"),
            RelationshipNotFound    => ("PGRST200", 400, "an embed with no relationship between the relations"),
            AmbiguousRelationship   => ("PGRST201", 300, "an embed that more than one relationship matches"),
            FunctionNotFound        => ("PGRST202", 404, "no function with this name and these arguments"),
            AmbiguousFunction       => ("PGRST203", 300, "overloads that cannot be told apart"),
            ColumnNotFound          => ("PGRST204", 400, "a written column the relation does not have"),
            RelationNotFound        => ("PGRST205", 404, "no such table or view"),
            UndefinedColumn         => ("42703",    400, "a read of a column the relation does not have"),
            DuplicateAlias          => ("42712",    400, "two embeds under one name in the same select list"),
        };
        Entry { code, status, when }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::SchemaCacheUnavailable,
        ErrorKind::BadQuery,
        ErrorKind::RpcMethodNotAllowed,
        ErrorKind::InvalidBody,
        ErrorKind::RangeNotSatisfiable,
        ErrorKind::PutFiltersNotPrimaryKey,
        ErrorKind::SchemaNotExposed,
        ErrorKind::NotAcceptable,
        ErrorKind::NotEmbedded,
        ErrorKind::PutLimitNotAllowed,
        ErrorKind::PutPrimaryKeyMismatch,
        ErrorKind::NotSingular,
        ErrorKind::RelatedOrderNotPossible,
        ErrorKind::BadEmbeddedOperator,
        ErrorKind::InvalidPreferences,
        ErrorKind::AggregatesNotAllowed,
        ErrorKind::MaxAffectedExceeded,
        ErrorKind::RootDisabled,
        ErrorKind::NotImplemented,
        ErrorKind::MaxAffectedNeedsSet,
        ErrorKind::RelationshipNotFound,
        ErrorKind::AmbiguousRelationship,
        ErrorKind::FunctionNotFound,
        ErrorKind::AmbiguousFunction,
        ErrorKind::ColumnNotFound,
        ErrorKind::RelationNotFound,
        ErrorKind::UndefinedColumn,
        ErrorKind::DuplicateAlias,
    ];

    /// The kind of a parser's PostgREST code.
    pub(crate) fn of_parse_code(code: &str) -> Self {
        match code {
            "PGRST103" => ErrorKind::RangeNotSatisfiable,
            "PGRST122" => ErrorKind::InvalidPreferences,
            _ => ErrorKind::BadQuery,
        }
    }
}

/// A REST error: a row of forge-data's catalogue with its message, or an error from
/// forge-core (auth, the database) rendered in PostgREST's shape.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request PostgREST would refuse with a `PGRSTxxx` code.
    #[error("{}: {message}", kind.entry().code)]
    Api {
        /// Which error: its code and status.
        kind: ErrorKind,
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
    fn api(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Api { kind, message: message.into(), details: Value::Null, hint: None }
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

    /// Which catalogue row this error is, if it is forge-data's own.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Api { kind, .. } => Some(*kind),
            Error::Core(_) => None,
        }
    }

    /// PGRST106: the profile header names a schema that is not exposed.
    pub fn schema_not_exposed(schema: &str, exposed: &[String]) -> Self {
        Self::api(ErrorKind::SchemaNotExposed, format!("Invalid schema: {schema}"))
            .with_hint(Some(format!("Only the following schemas are exposed: {}", exposed.join(", "))))
    }

    /// PGRST205: no such table or view.
    pub fn relation_not_found(schema: &str, name: &str, suggestion: Option<&str>) -> Self {
        Self::api(
            ErrorKind::RelationNotFound,
            format!("Could not find the table '{schema}.{name}' in the schema cache"),
        )
        .with_hint(suggestion.map(|s| format!("Perhaps you meant the table '{schema}.{s}'")))
    }

    /// PGRST204: a written column the relation does not have.
    pub fn column_not_found(relation: &str, column: &str) -> Self {
        Self::api(
            ErrorKind::ColumnNotFound,
            format!("Could not find the '{column}' column of '{relation}' in the schema cache"),
        )
    }

    /// 42703, as Postgres would say it: a read of a column the relation does not have.
    pub fn undefined_column(relation: &str, column: &str) -> Self {
        Self::api(ErrorKind::UndefinedColumn, format!("column {relation}.{column} does not exist"))
    }

    /// 42712, as Postgres says it when PostgREST joins two embeds under the same alias
    /// (`<parent>_<name>_<depth>`): two embeds named alike in one select list.
    pub fn duplicate_alias(alias: &str) -> Self {
        Self::api(ErrorKind::DuplicateAlias, format!("table name \"{alias}\" specified more than once"))
    }

    /// PGRST200: no relationship between two relations.
    pub fn relationship_not_found(schema: &str, from: &str, to: &str) -> Self {
        Self::api(ErrorKind::RelationshipNotFound, format!("Could not find a relationship between '{from}' and '{to}' in the schema cache"))
            .with_details(format!("Searched for a foreign key relationship between '{from}' and '{to}' in the schema '{schema}', but no matches were found."))
    }

    /// PGRST201: more than one relationship matches; `candidates` are `(cardinality,
    /// embedding, relationship)` triples and `hints` the `target!hint` forms that disambiguate.
    pub fn ambiguous_relationship(from: &str, to: &str, candidates: Vec<Value>, hints: &[String]) -> Self {
        Self::api(
            ErrorKind::AmbiguousRelationship,
            format!("Could not embed because more than one relationship was found for '{from}' and '{to}'"),
        )
        .with_details(Value::Array(candidates))
        .with_hint(Some(format!(
            "Try changing '{to}' to one of the following: {}. Find the desired relationship in the 'details' key.",
            hints.iter().map(|h| format!("'{h}'")).collect::<Vec<_>>().join(", ")
        )))
    }

    /// PGRST202: no function with this name and these argument names (a JSON POST, which
    /// a function taking a single unnamed json/jsonb argument could also have taken).
    pub fn function_not_found(schema: &str, name: &str, args: &[String]) -> Self {
        Self::function_not_found_for(schema, name, args, None, true)
    }

    /// PGRST202 in PostgREST's words for each way of calling (Error.hs `NoRpc`): `raw` is the
    /// type a text, xml or binary body needed (`text`, `xml`, `bytea`); `json_fallback` says
    /// a JSON POST body could have gone to a single unnamed json/jsonb argument. Argument
    /// names are listed sorted, as PostgREST's set of keys.
    pub(crate) fn function_not_found_for(
        schema: &str,
        name: &str,
        args: &[String],
        raw: Option<&str>,
        json_fallback: bool,
    ) -> Self {
        let mut args = args.to_vec();
        args.sort();
        args.dedup();
        let searched = match args.as_slice() {
            [] => "without parameters".to_owned(),
            [one] => format!("with parameter {one}"),
            many => format!("with parameters {}", many.join(", ")),
        };
        let (message, searched) = match raw {
            Some(ty) => (
                format!("Could not find the function {schema}.{name} in the schema cache"),
                format!("with a single unnamed {ty} parameter"),
            ),
            None if args.is_empty() => (
                format!("Could not find the function {schema}.{name} without parameters in the schema cache"),
                searched,
            ),
            None => (
                format!("Could not find the function {schema}.{name}({}) in the schema cache", args.join(", ")),
                searched,
            ),
        };
        let fallback =
            if json_fallback && raw.is_none() { " or with a single unnamed json/jsonb parameter" } else { "" };
        Self::api(ErrorKind::FunctionNotFound, message).with_details(format!(
            "Searched for the function {schema}.{name} {searched}{fallback}, but no matches were found in the schema cache."
        ))
    }

    /// Adds "Perhaps you meant ..." to a PGRST202 when another function's name is close.
    pub(crate) fn with_function_hint(self, schema: &str, suggestion: Option<&str>) -> Self {
        match (&self, suggestion) {
            (Error::Api { kind: ErrorKind::FunctionNotFound, .. }, Some(s)) => {
                self.with_hint(Some(format!("Perhaps you meant to call the function {schema}.{s}")))
            }
            _ => self,
        }
    }

    /// PGRST203: overloads that cannot be told apart. `candidates` are their parameters
    /// (`a => integer, b => text`), in catalog order; PostgREST's hint is a fixed text.
    pub fn ambiguous_function(schema: &str, name: &str, candidates: &[String]) -> Self {
        Self::api(
            ErrorKind::AmbiguousFunction,
            format!(
                "Could not choose the best candidate function between: {}",
                candidates.iter().map(|c| format!("{schema}.{name}({c})")).collect::<Vec<_>>().join(", ")
            ),
        )
        .with_hint(Some(
            "Try renaming the parameters or the function itself in the database so function overloading can be resolved"
                .to_owned(),
        ))
    }

    /// PGRST107: none of the accepted media types can be produced.
    pub fn not_acceptable(accept: &str) -> Self {
        Self::api(ErrorKind::NotAcceptable, format!("None of these media types are available: {accept}"))
    }

    /// PGRST116: a singular response asked for, and the result has `rows` rows.
    pub fn not_singular(rows: u64) -> Self {
        Self::api(ErrorKind::NotSingular, "Cannot coerce the result to a single JSON object")
            .with_details(format!("The result contains {rows} rows"))
    }

    /// PGRST102: a body that is not valid JSON, or objects with different keys.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::api(ErrorKind::InvalidBody, message)
    }

    /// PGRST103: the requested range cannot be satisfied.
    pub fn range_not_satisfiable(details: impl Into<String>) -> Self {
        Self::api(ErrorKind::RangeNotSatisfiable, "Requested range not satisfiable").with_details(details.into())
    }

    /// PGRST124: under `handling=strict`, more rows were affected than `max-affected` allows.
    pub fn max_affected_exceeded(rows: u64) -> Self {
        Self::api(ErrorKind::MaxAffectedExceeded, "Query result exceeds max-affected preference constraint")
            .with_details(format!("The query affects {rows} rows"))
    }

    /// A query-string, body or method refusal of `kind` with its message.
    pub(crate) fn refused(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::api(kind, message)
    }

    /// PGRST127: aggregates inside a to-many spread, which PostgREST does not implement.
    pub(crate) fn aggregates_in_to_many_spread() -> Self {
        Self::api(ErrorKind::NotImplemented, "Feature not implemented")
            .with_details("Aggregates are not implemented for one-to-many or many-to-many spreads.")
    }

    /// A parser's error: its code, message, details and hint.
    pub(crate) fn parse(e: ParseError) -> Self {
        Self::api(ErrorKind::of_parse_code(e.code), e.message)
            .with_details(e.details.map(Value::String).unwrap_or(Value::Null))
            .with_hint(e.hint)
    }

    /// This error described for PostgREST's renderer. `authenticated` decides 401 versus
    /// 403 for 42501.
    pub fn problem(&self, authenticated: bool) -> Problem {
        match self {
            Error::Core(e) => e.problem(WireFormat::PostgRest, authenticated),
            Error::Api { kind, message, details, hint } => {
                let entry = kind.entry();
                Problem::new(entry.status(), entry.code, message.clone())
                    .with_details(details.clone())
                    .with_hint(hint.clone())
            }
        }
    }

    /// Renders in PostgREST's shape. `authenticated` decides 401 versus 403 for 42501.
    pub fn render(self, authenticated: bool) -> Response {
        match self {
            Error::Core(e) => e.render(WireFormat::PostgRest, authenticated),
            api => WireFormat::PostgRest.render(api.problem(authenticated)),
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
