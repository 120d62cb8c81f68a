//! The live schema cache: a snapshot that readers take without waiting, replaced whole when
//! the schema changes.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::introspect::introspect;
use super::model::Schema;

/// The channel the bootstrap's DDL event trigger notifies (PostgREST's).
pub const RELOAD_CHANNEL: &str = forge_core::bootstrap::RELOAD_CHANNEL;

/// A project's schema cache.
///
/// [`SchemaCache::snapshot`] never blocks: a reload builds a new [`Schema`] off to the side
/// and swaps it in. DDL is picked up through the `pgrst` channel (fed by the bootstrap's event
/// trigger, or by `notify pgrst, 'reload schema'`); bursts of DDL coalesce into at most one
/// extra reload. A failed reload keeps the previous snapshot. The listener reconnects by
/// itself, and reloads on reconnecting, since notifications sent meanwhile are lost. It stops
/// when the cache is dropped.
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

    /// Loads `schemas` and keeps the snapshot current as DDL happens.
    pub async fn watch(pool: PgPool, schemas: Vec<String>) -> Result<Self, sqlx::Error> {
        let mut cache = Self::load(&pool, &schemas).await?;
        let listener = tokio::spawn(listen(pool.clone(), cache.wake.clone()));
        let reloader = tokio::spawn(reload_on_wake(pool, schemas, cache.current.clone(), cache.wake.clone()));
        cache.tasks = vec![listener, reloader];
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

/// Wakes the reloader for every notification on the channel, and after every reconnect.
async fn listen(pool: PgPool, wake: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        // A closed pool means the project is shutting down: stop quietly.
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "schema listener cannot connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(32));
                continue;
            }
        };
        if let Err(e) = listener.listen(RELOAD_CHANNEL).await {
            tracing::warn!(error = %e, "schema listener cannot LISTEN; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        loop {
            match listener.try_recv().await {
                // PostgREST's rule: "reload schema" or an empty payload reload the schema.
                Ok(Some(n)) if n.payload() == "reload schema" || n.payload().is_empty() => wake.notify_one(),
                Ok(Some(_)) => {}
                // The connection dropped: whatever was sent meanwhile is lost, so reload.
                Ok(None) => {
                    wake.notify_one();
                }
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "schema listener lost its connection");
                    wake.notify_one();
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn reload_on_wake(pool: PgPool, schemas: Vec<String>, current: Arc<ArcSwap<Schema>>, wake: Arc<Notify>) {
    loop {
        // A burst of notifications leaves one stored permit: at most one extra reload.
        wake.notified().await;
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
