//! # forge-data
//!
//! PostgREST-compatible REST over Postgres with row-level security, so that
//! `supabase.from(...)` (postgrest-js) and the Python `postgrest` client work unchanged at
//! `/rest/v1`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`schema`] | the schema cache: relations, columns, keys, relationships, functions; reloaded on the `pgrst` channel that forge-core's bootstrap event trigger notifies |
//! | [`query`] | the query-string grammar (`select`, filters, logic trees, `order`, ranges) and the `Prefer` and `Range` headers; HTTP-free |
//! | `plan` | SQL built with sea-query: identifiers checked against the schema cache, values bound as parameters, the body rendered by Postgres (`json_agg`, CSV) |
//! | `api` | the endpoints: `GET /` (OpenAPI), `/{relation}` (GET, HEAD, POST, PATCH, PUT, DELETE), `/rpc/{function}` |
//!
//! Every statement runs in forge-core's RLS gateway ([`forge_core::rls`]), one transaction
//! per request, so Postgres policies decide what each caller sees and writes. Errors use
//! PostgREST's codes and shape.
//!
//! ## Embedding
//!
//! ```no_run
//! use axum::Router;
//! use forge_core::{Project, ProjectLayer};
//! use forge_data::Data;
//!
//! fn app(project: Project) -> Router {
//!     let data = Data::builder().max_rows(Some(1000)).build();
//!     Router::new().nest("/rest/v1", data.router()).layer(ProjectLayer::single(project))
//! }
//! ```
//!
//! Wrap the app in `tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash()`
//! so that `/rest/v1/` reaches the OpenAPI root.
//!
//! Views inherit their base tables' foreign keys (read from each view's stored rule, as
//! PostgREST does), so embedding works through views, including views over tables in
//! schemas that are not exposed.
//!
//! ## Not yet supported
//!
//! Computed relationships (functions as relationships); CSV request bodies;
//! `Prefer: timezone`; form-encoded and raw (`text`, `bytea`) RPC bodies; `OPTIONS` with an
//! `Allow` header; OpenAPI filtered by the caller's privileges; `.explain()` of writes and
//! RPC calls.
//!
//! `.explain()` is off unless enabled ([`DataBuilder::plan_enabled`]), as in PostgREST, since
//! plans reveal the schema; `.geojson()` needs PostGIS in the database.

mod api;
mod data;
mod error;
mod plan;
pub mod query;
pub mod schema;

pub use data::{Data, DataBuilder, DataConfig};
pub use error::{Error, ErrorKind, Result};
