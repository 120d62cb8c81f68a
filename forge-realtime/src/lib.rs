//! # forge-realtime
//!
//! The Supabase Realtime protocol (Phoenix channels over WebSockets) for Forge, so that
//! `supabase.channel(...)` works unchanged at `/realtime/v1/websocket`: broadcast (with
//! `self` and `ack`, and over REST), presence, and `postgres_changes` captured by logical
//! decoding and checked against each subscriber's row-level security.
//!
//! ## Embedding
//!
//! ```no_run
//! use axum::Router;
//! use forge_core::{Project, ProjectLayer};
//! use forge_realtime::Realtime;
//!
//! fn app(project: Project) -> Result<Router, forge_realtime::BuildError> {
//!     let realtime = Realtime::builder().build()?;
//!     Ok(Router::new().nest("/realtime/v1", realtime.router()).layer(ProjectLayer::single(project)))
//! }
//! ```
//!
//! Apply [`MIGRATIONS`] to the project's database first (the `realtime` schema: private
//! channels' `realtime.messages`, `realtime.send`, `realtime.broadcast_changes`). Change
//! capture needs `wal_level=logical` and a connection role that may create replication
//! slots; tables are published as in Supabase, with
//! `alter publication supabase_realtime add table ...`.
//!
//! ## Several nodes
//!
//! Nodes serving the same projects share a [`bus::Bus`]: in-process by default, Postgres
//! LISTEN/NOTIFY, or NATS (feature `nats`). One node per project database leads the change
//! capture (an advisory lock); the others take over when it goes.

mod api;
mod authz;
pub mod bus;
mod cdc;
mod changes;
pub mod error;
mod protocol;
mod service;
mod socket;
mod tenant;
#[cfg(feature = "test-support")]
pub mod testing;

pub use error::{Error, ErrorKind, Result};
pub use service::{BuildError, Realtime, RealtimeBuilder, RealtimeConfig};

use forge_core::migrate::{Migration, MigrationSet};

/// forge-realtime's migrations (owner `forge-realtime`).
pub const MIGRATIONS: MigrationSet = MigrationSet {
    owner: "forge-realtime",
    migrations: &[Migration {
        version: 1,
        name: "realtime schema",
        sql: include_str!("../migrations/0001_realtime.sql"),
    }],
};
