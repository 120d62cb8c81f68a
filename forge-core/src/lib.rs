//! # forge-core
//!
//! The mechanisms every Forge service shares. Feature crates (forge-auth, forge-data,
//! forge-storage, forge-realtime, forge-billing) depend on this crate and on no other feature
//! crate; they meet only through the types here.
//!
//! | module | what it holds |
//! |---|---|
//! | [`error`] | [`ForgeError`], the [`ErrorCode`] table and rendering in each service's wire shape |
//! | [`keys`] | a project's JWT secret, its asymmetric signing keys (ES256 or RS256), API keys and token verification |
//! | [`principal`] | [`Principal`] (anon, user, service) and its extractor |
//! | [`project`] | [`Project`], [`ProjectResolver`] implementations and [`ProjectLayer`] |
//! | [`db`] | [`Database`]: the sqlx pool and the gateway's tokio-postgres pool |
//! | [`rls`] | the RLS gateway: [`rls::begin`] opens the per-request transaction |
//! | [`bootstrap`] | the SQL every project database gets (roles, `auth.uid()`, ...) |
//! | [`migrate`] | per-crate migrations that never collide |
//! | [`embedded`] | a private Postgres cluster from the installed binaries |
//! | `testing` | (feature `test-support`) a private cluster per test process, a fresh database per test |
//!
//! ## A request, end to end
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use forge_core::{Project, ProjectLayer, rls::{self, RequestContext}, ForgeError, WireFormat};
//! use axum::response::{IntoResponse, Response};
//!
//! async fn whoami(project: Project, ctx: RequestContext) -> Response {
//!     let authenticated = ctx.principal().is_authenticated();
//!     let result = rls::query_once(project.db(), &ctx, "select auth.role()", &[]).await;
//!     match result {
//!         Ok(rows) => rows[0].get::<_, Option<String>>(0).unwrap_or_default().into_response(),
//!         Err(e) => e.render(WireFormat::PostgRest, authenticated),
//!     }
//! }
//!
//! fn app(project: Project) -> Router {
//!     Router::new().route("/whoami", get(whoami)).layer(ProjectLayer::single(project))
//! }
//! ```

pub mod bootstrap;
pub mod db;
pub mod embedded;
pub mod error;
pub mod keys;
mod long_request;
pub mod migrate;
pub mod principal;
pub mod project;
pub mod rls;
#[cfg(feature = "test-support")]
pub mod testing;

pub use db::{Database, DatabaseConfig};
pub use error::{
    AuthError, DbError, DbErrorKind, ErrorCode, ForgeError, Problem, Rejection, RenderedError, WireFormat,
};
pub use keys::{ProjectKeys, ThirdPartyIssuer};
pub use long_request::LongRequest;
pub use principal::{Claims, Principal};
pub use project::{Project, ProjectLayer, ProjectRef, ProjectResolver, ProjectSettings, RefResolver, SingleProject};
