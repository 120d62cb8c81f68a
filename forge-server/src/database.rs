//! The default project's database: an existing Postgres, or the embedded cluster, restarted
//! if it dies.
//!
//! The supervisor checks the postmaster four times a second. When it has exited without
//! being asked to (killed, crashed), it is started again over the same data directory:
//! Postgres's crash recovery replays the WAL, and both pools reconnect on their own (sqlx
//! tests a connection before handing it out, deadpool drops closed ones). Meanwhile requests
//! answer 503. A start that fails is retried, waiting up to 5 s between tries.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forge_core::embedded::{ClusterOptions, EmbeddedPostgres, PgBinaries};
use forge_core::{Database, DatabaseConfig};
use secrecy::{ExposeSecret as _, SecretString};

use crate::Error;

/// How often the supervisor looks at the postmaster.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// The longest wait between two failed starts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The database and, when embedded, the cluster that serves it.
#[derive(Debug)]
pub struct ProjectDatabase {
    /// The pools.
    pub db: Database,
    /// The URL the pools connect with (the control plane makes project databases with it).
    pub url: SecretString,
    /// The RLS gateway's URL, when not `url`.
    pub gateway_url: Option<SecretString>,
    /// The embedded cluster and its supervisor, stopped on [`ProjectDatabase::shutdown`].
    embedded: Option<Supervised>,
}

/// The embedded cluster under supervision.
#[derive(Debug)]
struct Supervised {
    cluster: Arc<Mutex<Option<EmbeddedPostgres>>>,
    stopping: Arc<AtomicBool>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl ProjectDatabase {
    /// Connects to `url`, or starts the embedded cluster under `data_dir` when it is `None`,
    /// allowing `max_connections` (at least 100). With `attach`, an embedded cluster that a running server started is used as it is (a
    /// command-line tool beside the server); otherwise it would be stopped and started anew.
    pub async fn open(
        url: Option<&SecretString>,
        data_dir: &Path,
        postgres_bin: Option<&Path>,
        attach: bool,
        max_connections: usize,
    ) -> Result<Self, Error> {
        match url {
            Some(url) => {
                let config = DatabaseConfig::new(url.expose_secret());
                let db =
                    Database::connect_lazy(&config).map_err(|e| Error::Config(format!("FORGE_DATABASE_URL: {e}")))?;
                Ok(Self { db, url: url.clone(), gateway_url: None, embedded: None })
            }
            None => {
                let mut options = ClusterOptions::new(data_dir.join("pg"));
                // Room for every pool the server may open (the projects' budget among them).
                options.settings.push(("max_connections".into(), max_connections.max(100).to_string()));
                if let Some(dir) = postgres_bin {
                    options.binaries = Some(PgBinaries::in_dir(dir).map_err(Error::Embedded)?);
                }
                if attach && let Some(running) = forge_core::embedded::RunningCluster::find(&options) {
                    // A server runs this cluster: use it as it is, and leave it running.
                    let url = running.url("postgres", running.superuser());
                    let gateway = running.url("postgres", "authenticator");
                    let config = DatabaseConfig::new(url.clone()).with_gateway_url(gateway.clone());
                    let db = Database::connect_lazy(&config).map_err(|e| Error::Startup(e.to_string()))?;
                    return Ok(Self {
                        db,
                        url: SecretString::from(url),
                        gateway_url: Some(SecretString::from(gateway)),
                        embedded: None,
                    });
                }
                let pg = start(options.clone()).await.map_err(|e| match e {
                    Started::Failed(e) => Error::Embedded(e),
                    Started::Panicked(e) => Error::Startup(e),
                })?;
                let url = pg.url("postgres", pg.superuser());
                let gateway = pg.url("postgres", "authenticator");
                let config = DatabaseConfig::new(url.clone()).with_gateway_url(gateway.clone());
                let db = Database::connect_lazy(&config).map_err(|e| Error::Startup(e.to_string()))?;
                tracing::info!(pid = pg.pid(), first_start = pg.initialized(), "embedded postgres is up");
                let cluster = Arc::new(Mutex::new(Some(pg)));
                let stopping = Arc::new(AtomicBool::new(false));
                let supervisor = tokio::spawn(supervise(cluster.clone(), options, stopping.clone()));
                Ok(Self {
                    db,
                    url: SecretString::from(url),
                    gateway_url: Some(SecretString::from(gateway)),
                    embedded: Some(Supervised { cluster, stopping, supervisor }),
                })
            }
        }
    }

    /// Whether the database is the embedded cluster (this server is then its only user).
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Closes the pools and stops the embedded cluster (fast shutdown: nothing committed is lost).
    pub async fn shutdown(self) {
        self.db.close().await;
        if let Some(Supervised { cluster, stopping, supervisor }) = self.embedded {
            stopping.store(true, Ordering::SeqCst);
            supervisor.abort();
            let _ = supervisor.await;
            let _ = tokio::task::spawn_blocking(move || {
                let pg = cluster.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(pg) = pg {
                    pg.stop();
                    tracing::info!("embedded postgres stopped");
                }
            })
            .await;
        }
    }
}

/// Why a start did not give a cluster.
enum Started {
    Failed(forge_core::embedded::EmbeddedError),
    Panicked(String),
}

/// Starts the cluster on a blocking thread.
async fn start(options: ClusterOptions) -> Result<EmbeddedPostgres, Started> {
    tokio::task::spawn_blocking(move || EmbeddedPostgres::start(options))
        .await
        .map_err(|e| Started::Panicked(format!("the Postgres start-up task failed: {e}")))?
        .map_err(Started::Failed)
}

/// Restarts the cluster whenever it exits unasked, until `stopping`.
async fn supervise(cluster: Arc<Mutex<Option<EmbeddedPostgres>>>, options: ClusterOptions, stopping: Arc<AtomicBool>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let running = {
            let guard = cluster.lock().unwrap_or_else(|e| e.into_inner());
            guard.as_ref().is_some_and(|pg| !pg.has_exited())
        };
        if running || stopping.load(Ordering::SeqCst) {
            continue;
        }
        // A data directory that is gone (a volume unmounted or wiped) is not initialized
        // again: that would serve an empty database. Requests answer 503 until it is back.
        if !options.data_dir.join("PG_VERSION").is_file() {
            tracing::error!(dir = %options.data_dir.display(), "the Postgres data directory is gone; not restarting");
            tokio::time::sleep(MAX_BACKOFF).await;
            continue;
        }
        // Dropping the old handle costs nothing: its postmaster is gone.
        let gone = cluster.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pg) = &gone {
            tracing::error!(pid = pg.pid(), "embedded postgres exited unexpectedly; restarting it");
        }
        drop(gone);
        match start(options.clone()).await {
            Ok(pg) if stopping.load(Ordering::SeqCst) => {
                // Shutting down meanwhile: this one goes too.
                let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
                return;
            }
            Ok(pg) => {
                tracing::info!(pid = pg.pid(), "embedded postgres restarted (crash recovery done)");
                *cluster.lock().unwrap_or_else(|e| e.into_inner()) = Some(pg);
                backoff = Duration::from_millis(100);
            }
            Err(Started::Failed(e)) => {
                tracing::error!(error = %e, retry_in = ?backoff, "restarting embedded postgres failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(Started::Panicked(e)) => {
                tracing::error!(error = %e, retry_in = ?backoff, "restarting embedded postgres failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
