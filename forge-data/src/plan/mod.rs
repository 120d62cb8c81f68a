//! The planner: a parsed query plus the schema cache become one SQL statement whose result
//! Postgres has already rendered (JSON or CSV).
//!
//! Every identifier is looked up in the schema cache before it reaches SQL, and quoted.
//! Every value from the request is a bound parameter, passed as text and cast to the column's
//! type in SQL (`CAST($1::text AS integer)`), so Postgres parses it exactly as PostgREST lets
//! it, and indexes still apply. Statements are built with sea-query.

mod filter;
mod read;
mod rpc;
#[cfg(test)]
mod snapshots;
mod write;

use sea_query::{
    DeleteStatement, InsertStatement, PostgresQueryBuilder, SelectStatement, UpdateStatement, Value, Values, WithQuery,
};
use tokio_postgres::types::ToSql;

pub(crate) use read::{Output, PlanOptions, ReadRequest, Source, plan_read};
pub(crate) use rpc::{Args, Payload, call, resolve, result_relation};
pub(crate) use write::{Conflict, Write, merges, plan_upsert_counts, plan_write, plan_write_returning};

/// A statement ready to run: SQL text and its parameters in order.
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(Option<String>),
    Int(i64),
    Bool(bool),
    Bytes(Option<Vec<u8>>),
}

impl Statement {
    pub(crate) fn from_select(stmt: &SelectStatement) -> Self {
        Self::built(stmt.build(PostgresQueryBuilder))
    }

    pub(crate) fn from_insert(stmt: &InsertStatement) -> Self {
        Self::built(stmt.build(PostgresQueryBuilder))
    }

    pub(crate) fn from_update(stmt: &UpdateStatement) -> Self {
        Self::built(stmt.build(PostgresQueryBuilder))
    }

    pub(crate) fn from_delete(stmt: &DeleteStatement) -> Self {
        Self::built(stmt.build(PostgresQueryBuilder))
    }

    pub(crate) fn from_with(stmt: &WithQuery) -> Self {
        Self::built(stmt.build(PostgresQueryBuilder))
    }

    fn built((sql, values): (String, Values)) -> Self {
        Self { sql, params: params(values) }
    }

    /// The parameters as tokio-postgres takes them.
    pub(crate) fn bind(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| match p {
                Param::Text(s) => s as &(dyn ToSql + Sync),
                Param::Int(i) => i as &(dyn ToSql + Sync),
                Param::Bool(b) => b as &(dyn ToSql + Sync),
                Param::Bytes(b) => b as &(dyn ToSql + Sync),
            })
            .collect()
    }
}

fn params(values: Values) -> Vec<Param> {
    values
        .0
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Param::Text(s),
            Value::BigUnsigned(n) => Param::Int(n.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))),
            Value::Unsigned(n) => Param::Int(n.map_or(0, i64::from)),
            Value::BigInt(n) => Param::Int(n.unwrap_or(0)),
            Value::Int(n) => Param::Int(n.map_or(0, i64::from)),
            Value::Bool(b) => Param::Bool(b.unwrap_or(false)),
            Value::Bytes(b) => Param::Bytes(b),
            // The planner binds nothing else.
            other => Param::Text(Some(format!("{other:?}"))),
        })
        .collect()
}

/// Quotes an identifier for SQL text: `"name"`, with inner quotes doubled.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether a user-supplied cast target is a plain type name (`text`, `int4`,
/// `double precision`, `timestamptz`, `text[]`): letters, digits, underscores and single
/// spaces, with an optional trailing `[]`. Nothing else may reach SQL text.
pub(crate) fn is_safe_type_name(name: &str) -> bool {
    let base = name.strip_suffix("[]").unwrap_or(name);
    !base.is_empty()
        && base.len() <= 64
        && base.split(' ').all(|word| {
            let mut chars = word.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_casts_are_plain_type_names() {
        assert_eq!(ident("weird \"col\""), "\"weird \"\"col\"\"\"");
        for ok in ["text", "int4", "double precision", "timestamp with time zone", "text[]", "_int4"] {
            assert!(is_safe_type_name(ok), "{ok}");
        }
        for bad in ["", "text; drop table x", "int4)", "\"x\"", "text[][]x", "a  b", "1abc", "x'y"] {
            assert!(!is_safe_type_name(bad), "{bad}");
        }
    }
}
