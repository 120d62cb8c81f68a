//! # forge-storage
//!
//! The Supabase Storage API for Forge, so that `supabase.storage` (storage-js) and the Python
//! `storage3` client work unchanged at `/storage/v1`.
//!
//! ## Embedding
//!
//! The routes nest into an application's own router, whatever its state; a request needs a
//! [`forge_core::Project`] in its extensions, which [`forge_core::ProjectLayer`] provides.
//!
//! ```
//! use std::sync::Arc;
//!
//! use axum::extract::State;
//! use axum::{Router, routing::get};
//! use forge_core::{Project, ProjectLayer};
//! use forge_storage::Storage;
//! use object_store::local::LocalFileSystem;
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
//! fn app(project: Project, dir: &std::path::Path) -> Result<Router, Box<dyn std::error::Error>> {
//!     let disk = LocalFileSystem::new_with_prefix(dir)?;
//!     let storage = Storage::builder().store(Arc::new(disk)).build()?;
//!     Ok(Router::new()
//!         .route("/about", get(about))
//!         .nest("/files", storage.router())
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
//! # let dir = tempfile::tempdir()?;
//! // The storage routes lift axum's body limit for themselves (uploads are limited while
//! // streaming). An app-wide request timeout would cut long uploads off: let requests that
//! // carry `forge_core::LongRequest` in their extensions through, as forge-server does.
//! let _app = app(project, dir.path())?;
//! # Ok(())
//! # }
//! ```
//!
//! Apply [`MIGRATIONS`] to the project's database first. Bytes live in any
//! `Arc<dyn object_store::ObjectStore>` under `<project ref>/<version>`; rows live in
//! `storage.buckets` and `storage.objects`, with Supabase's names, so storage policies written
//! for Supabase (with `storage.foldername(name)` and `auth.uid()`) work unchanged: every
//! object request runs in forge-core's RLS gateway as the caller's role.
//!
//! ## Integrity
//!
//! - Bodies stream in both directions; size and MIME limits are enforced while streaming.
//! - An upload writes a new blob version first and then points the row at it in one
//!   transaction, so an object is visible only once its bytes are stored, and a failed upload
//!   leaves neither a row nor a blob. Replaced and deleted versions are removed after commit.
//! - Images are transformed (`/render/image/...`: width, height, cover/contain/fill, quality,
//!   origin or lossy WebP) only up to 25 MiB and 10 000 pixels a side in, 2000 a side out.
//!   Without a `format`, a client whose `Accept` names `image/webp` gets WebP (`Vary:
//!   Accept`); each rendition has its own ETag, and `If-None-Match` with it answers 304.
//! - Object names are validated: no `..`, `.` or empty segments, no control characters, at
//!   most 1024 bytes.
//!
//! - TUS resumable uploads (`/upload/resumable`, tus-js-client and Uppy) keep each chunk as
//!   a part blob under `<project ref>/tus/<id>/` and join them into the object's version when
//!   the last byte arrives; the object row is written then, as the caller. A chunk's writer
//!   holds a renewed lease on its upload, not a database transaction.
//! - [`Storage::sweep`] collects what a crash can leave: blobs no row names, expired
//!   resumable uploads.
//!
//! ## Vector and analytics buckets
//!
//! - `/vector/*`: the S3 Vectors API of `storage.vectors`. Vector buckets, their indexes
//!   (float32; cosine, euclidean or dotproduct; up to 4096 dimensions) and vectors with metadata are
//!   rows; a query is an exact nearest-neighbour search with S3 Vectors' metadata filters.
//! - `/iceberg/*`: analytics buckets (`storage.analytics`) and an Iceberg REST catalog over
//!   them: namespaces and tables, with table metadata kept in Postgres and commits checked
//!   against their requirements.
//!
//! Only the service role may call either, as in Supabase.
//!
//! ## Not yet supported
//!
//! Image transformation has no AVIF output. forge-server bounds
//! every request body and every object by its body limit (`FORGE_BODY_LIMIT`, 50 MiB by
//! default). The analytics catalog writes no metadata or data files and Forge has no S3
//! protocol endpoint, so query engines can use the catalog but cannot read or write table
//! data through Forge.

mod api;
mod blob;
pub mod error;
mod render;
mod rows;
mod service;
mod sweep;
mod table_metadata;
pub mod testing;
mod vector_filter;

pub use error::{Error, ErrorKind, Result};
pub use service::{BuildError, Storage, StorageBuilder, StorageConfig};
pub use sweep::{SWEEP_GRACE, Swept};

use forge_core::migrate::{Migration, MigrationSet};

/// forge-storage's migrations (owner `forge-storage`).
pub const MIGRATIONS: MigrationSet = MigrationSet {
    owner: "forge-storage",
    migrations: &[
        Migration { version: 1, name: "storage schema", sql: include_str!("../migrations/0001_storage_schema.sql") },
        Migration {
            version: 2,
            name: "resumable uploads",
            sql: include_str!("../migrations/0002_resumable_uploads.sql"),
        },
        Migration { version: 3, name: "vector buckets", sql: include_str!("../migrations/0003_vectors.sql") },
        Migration { version: 4, name: "analytics buckets", sql: include_str!("../migrations/0004_analytics.sql") },
        Migration {
            version: 5,
            name: "vector dot product",
            sql: include_str!("../migrations/0005_vector_dot_product.sql"),
        },
        Migration {
            version: 6,
            name: "case-insensitive name index",
            sql: include_str!("../migrations/0006_name_lower_index.sql"),
        },
    ],
};
