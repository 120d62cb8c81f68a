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
//! The routes nest into an application's own router, whatever its state; a request needs a
//! [`forge_core::Project`] in its extensions, which [`forge_core::ProjectLayer`] provides.
//!
//! ```
//! use axum::extract::State;
//! use axum::{Router, routing::get};
//! use forge_core::{Project, ProjectLayer};
//! use forge_data::{Data, DataConfig};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     name: &'static str,
//! }
//!
//! async fn about(State(state): State<AppState>) -> &'static str {
//!     state.name
//! }
//!
//! fn app(project: Project) -> Result<Router, forge_data::BuildError> {
//!     let data = Data::builder().config(DataConfig::default().with_max_rows(Some(1000))).build()?;
//!     Ok(Router::new()
//!         .route("/about", get(about))
//!         .nest("/api/rest", data.router())
//!         .layer(ProjectLayer::single(project))
//!         .with_state(AppState { name: "my app" }))
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # let _guard = rt.enter();
//! # let reference: forge_core::ProjectRef = "embedded".parse()?;
//! # let keys = forge_core::ProjectKeys::builder(reference.clone(), vec![7; 32]).build()?;
//! # let db = forge_core::Database::connect_lazy(&forge_core::DatabaseConfig::new("postgres://localhost/app"))?;
//! # let project = Project::new(reference, db, keys, forge_core::ProjectSettings::new("http://localhost:3000"));
//! let app = app(project)?;
//! // `/api/rest/` (with the slash) is the OpenAPI root only if trailing slashes are trimmed
//! // before routing, as supabase-js's root calls need.
//! let _app = tower_http::normalize_path::NormalizePath::trim_trailing_slash(app);
//! # Ok(())
//! # }
//! ```
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
//! `.explain()` is off unless enabled ([`DataConfig::with_plan_enabled`]), as in PostgREST, since
//! plans reveal the schema; `.geojson()` needs PostGIS in the database.

mod api;
mod data;
mod error;
mod plan;
pub mod query;
pub mod schema;

pub use data::{BuildError, Data, DataBuilder, DataConfig};
pub use error::{Error, ErrorKind, Result};
