//! # forge-data
//!
//! PostgREST-compatible REST over Postgres with row-level security, so that
//! `supabase.from(...)` (postgrest-js) and the Python `postgrest` client work unchanged at
//! `/rest/v1`.
//!
//! It will hold the schema cache (reloaded on the `pgrst` channel that forge-core's bootstrap
//! event trigger notifies), the query-string parser, the SQL planner and the executor. Every
//! statement runs inside forge-core's RLS gateway ([`forge_core::rls`]), so Postgres policies
//! decide what each caller sees; errors use [`forge_core::WireFormat::PostgRest`].
//!
//! Status: not implemented yet.

mod api;
mod data;
mod error;
mod plan;
pub mod query;
pub mod schema;

pub use data::{Data, DataBuilder, DataConfig};
pub use error::{Error, Result};
