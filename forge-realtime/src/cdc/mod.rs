//! Change capture: logical decoding with the built-in `pgoutput` plugin, read through the SQL
//! interface of a logical replication slot, decoded in commit order.
//!
//! - [`pgoutput`]: the binary protocol's decoder and its relation cache.
//! - [`value`]: column values from Postgres text to Supabase's JSON.
//! - [`slot`]: [`Capture`], which reads the slot and builds [`Change`]s, and slot upkeep.
//! - [`filter`]: `postgres_changes` filters, parsed and matched against a [`Change`].
//! - [`leader`]: which node captures, by advisory lock.

pub(crate) mod filter;
pub(crate) mod leader;
pub(crate) mod pgoutput;
pub(crate) mod slot;
pub(crate) mod value;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum ChangeKind {
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
}

/// A column of a changed table, as Supabase's payload lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Column {
    /// The column's name.
    pub(crate) name: String,
    /// Its type as Supabase names it: `int4`, `text`, `_int4` for arrays, ...
    #[serde(rename = "type")]
    pub(crate) type_name: String,
}

/// One decoded row change, in commit order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Change {
    /// The table's schema.
    pub(crate) schema: Arc<str>,
    /// The table.
    pub(crate) table: Arc<str>,
    /// INSERT, UPDATE or DELETE.
    pub(crate) kind: ChangeKind,
    /// When its transaction committed (ISO 8601, as Supabase sends it).
    pub(crate) commit_timestamp: String,
    /// The table's columns.
    pub(crate) columns: Arc<Vec<Column>>,
    /// The new row (INSERT and UPDATE).
    pub(crate) record: Option<Map<String, Value>>,
    /// The old row's replica-identity columns, or all of them with `REPLICA IDENTITY FULL`
    /// (UPDATE and DELETE).
    pub(crate) old_record: Option<Map<String, Value>>,
    /// The primary key's columns (empty for a table without one).
    pub(crate) primary_key: Arc<Vec<String>>,
    /// Errors Supabase reports in the payload's `errors`: `["Error 400: Bad Request, no
    /// primary key"]` for an INSERT or UPDATE on a table without a primary key. Upstream then
    /// sends that change with empty `columns` and `record` and a null `commit_timestamp`, to
    /// every subscriber of the table regardless of filters; the fields here stay filled so the
    /// payload layer can choose.
    pub(crate) errors: Option<Vec<String>>,
    /// Where it is in the stream: its transaction's commit end LSN and its index in the
    /// transaction. Receivers drop what they have delivered already (a new capture leader
    /// re-sends what the old one published but had not confirmed).
    pub(crate) position: (u64, u32),
}
