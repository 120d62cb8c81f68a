//! The live schema cache: a snapshot that readers take without waiting, replaced whole when
//! the schema changes.

use std::sync::Arc;

use arc_swap::ArcSwap;
use forge_core::{Database, ForgeError};
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::introspect::introspect;
use super::model::Schema;

/// The channel the bootstrap's DDL event trigger notifies (PostgREST's).
pub const RELOAD_CHANNEL: &str = forge_core::bootstrap::RELOAD_CHANNEL;

/// A project's schema cache.
///
/// [`SchemaCache::snapshot`] never blocks: a reload builds a new [`Schema`] off to the side
/// and swaps it in. DDL is picked up through the `pgrst` channel (fed by the bootstrap's event
/// trigger, or by `notify pgrst, 'reload schema'`), which the project's gateway connections
/// listen on (see [`Database::schema_changes`]): no connection is held for listening alone.
/// Bursts of DDL coalesce into at most one extra reload. A failed reload keeps the previous
/// snapshot. The reloader stops when the cache is dropped.
#[derive(Debug)]
pub struct SchemaCache {
    current: Arc<ArcSwap<Schema>>,
    wake: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SchemaCache {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl SchemaCache {
    /// Loads `schemas` once, without watching for changes.
    pub async fn load(pool: &PgPool, schemas: &[String]) -> Result<Self, sqlx::Error> {
        let schema = introspect(pool, schemas).await?;
        Ok(Self { current: Arc::new(ArcSwap::from_pointee(schema)), wake: Arc::new(Notify::new()), tasks: Vec::new() })
    }

    /// Loads `schemas` from `db` and keeps the snapshot current as DDL happens.
    pub async fn watch(db: &Database, schemas: Vec<String>) -> Result<Self, ForgeError> {
        // Listening first: a change made while the schema loads is heard, and reloaded.
        let changes = db.schema_changes().await?;
        let mut cache = Self::load(db.pool(), &schemas).await?;
        let reloader = tokio::spawn(reload_on_change(
            db.pool().clone(),
            schemas,
            cache.current.clone(),
            changes,
            cache.wake.clone(),
        ));
        cache.tasks = vec![reloader];
        Ok(cache)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Schema> {
        self.current.load_full()
    }

    /// Asks for a reload (as a notification would).
    pub fn request_reload(&self) {
        self.wake.notify_one();
    }
}

async fn reload_on_change(
    pool: PgPool,
    schemas: Vec<String>,
    current: Arc<ArcSwap<Schema>>,
    mut changes: watch::Receiver<u64>,
    wake: Arc<Notify>,
) {
    loop {
        // Changes seen together (a burst of DDL) make one reload.
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = wake.notified() => {}
        }
        if pool.is_closed() {
            return;
        }
        match introspect(&pool, &schemas).await {
            Ok(schema) => {
                current.store(Arc::new(schema));
                tracing::debug!("schema cache reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "schema reload failed; keeping the previous schema"),
        }
    }
}
