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
//!
//! ## Delivery rules
//!
//! - A change reaches a subscriber only if a SELECT of its row (by primary key) under the
//!   subscriber's role and claims returns it; the record then holds only the columns that role
//!   may select. Checks are batched per identity (role and claims), one round trip per table
//!   and batch of changes, each under a statement timeout; a check that fails or times out
//!   sends that subscriber a `system` error, and nobody else waits for it.
//! - As in Supabase, a DELETE cannot be checked (its row is gone): every subscriber of the
//!   table gets it, with only the primary key in `old_record` (the service role gets the whole
//!   old row). A table without a primary key sends its changes without the row, with
//!   `errors: ["Error 400: Bad Request, no primary key"]`.
//! - A batch of changes is checked for up to 100 identities at once: one transaction and one
//!   round trip, a savepoint per identity. An identity whose check fails there or runs past
//!   100 ms is checked alone from then on (for ten minutes), so a slow policy costs its
//!   neighbours at most that once. Waiting for a pooled connection counts toward a check's
//!   timeout. A subscriber whose checks fall 256 batches behind loses changes, and is told.
//! - A change is handed on, in commit order, before the slot's position moves past it; a new
//!   capture leader re-sends what the last one had not confirmed, and nodes drop what they
//!   delivered already, so no change is delivered twice. Across nodes a change is delivered
//!   at most once: an envelope the bus itself loses (NATS core without JetStream, a Postgres
//!   listener reconnecting) is not sent again.
//! - An `access_token` refresh changes the identity from the next batch on; signing out
//!   sends an API key, which is ignored (as upstream), so a channel keeps its user until the
//!   token expires or the channel is left.
//! - The Postgres bus carries decoded changes (whole rows, before RLS) and private broadcasts
//!   over LISTEN/NOTIFY on the project database: any role that may connect to that database
//!   can listen, and send. Use it only where every role that can connect is trusted (the
//!   platform's own roles), or use NATS.
//! - An invalidated replication slot (it held more WAL than `max_slot_wal_keep_size` while
//!   no server read it) is made anew, and every `postgres_changes` subscriber is told that
//!   changes were lost.

//! ## Not yet supported
//!
//! - Supabase's byte-rate and presence-specific limits (`max_bytes_per_second`,
//!   `max_presence_events_per_second`, five presence calls per 30 s per client): one
//!   messages-per-second limit covers broadcasts and presence.
//! - Upstream's `max_record_bytes` (values over 64 bytes dropped from very large records with
//!   "Error 413"); numeric values too long for an f64 are sent as strings.
//! - Filters compare text bytewise (C collation), and `match`/`imatch` use Rust's regular
//!   expression syntax, not Postgres's.
//! - A project setting for private channels only (`PrivateOnly`).
//! - A project's realtime state is kept until shutdown, not closed when idle; the slot's lag is
//!   logged once a minute and read with [`Realtime::stats`], not yet exported as a metric.

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
pub use service::{Admission, BuildError, Realtime, RealtimeBuilder, RealtimeConfig, RealtimeStats};

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
