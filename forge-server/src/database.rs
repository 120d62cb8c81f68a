//! The default project's database: an existing Postgres, or the embedded cluster.

use std::path::Path;

use forge_core::embedded::{ClusterOptions, EmbeddedPostgres, PgBinaries};
use forge_core::{Database, DatabaseConfig};
use secrecy::{ExposeSecret as _, SecretString};

use crate::Error;

/// The database and, when embedded, the cluster that serves it.
#[derive(Debug)]
pub struct ProjectDatabase {
    /// The pools.
    pub db: Database,
    /// The embedded cluster, stopped on [`ProjectDatabase::shutdown`].
    pub embedded: Option<EmbeddedPostgres>,
}

impl ProjectDatabase {
    /// Connects to `url`, or starts the embedded cluster under `data_dir` when it is `None`.
    pub async fn open(url: Option<&SecretString>, data_dir: &Path, postgres_bin: Option<&Path>) -> Result<Self, Error> {
        match url {
            Some(url) => {
                let config = DatabaseConfig::new(url.expose_secret());
                let db =
                    Database::connect_lazy(&config).map_err(|e| Error::Config(format!("FORGE_DATABASE_URL: {e}")))?;
                Ok(Self { db, embedded: None })
            }
            None => {
                let mut options = ClusterOptions::new(data_dir.join("pg"));
                if let Some(dir) = postgres_bin {
                    options.binaries = Some(PgBinaries::in_dir(dir).map_err(Error::Embedded)?);
                }
                let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(options))
                    .await
                    .map_err(|e| Error::Startup(format!("the Postgres start-up task failed: {e}")))?
                    .map_err(Error::Embedded)?;
                let config = DatabaseConfig::new(pg.url("postgres", pg.superuser()))
                    .with_gateway_url(pg.url("postgres", "authenticator"));
                let db = Database::connect_lazy(&config).map_err(|e| Error::Startup(e.to_string()))?;
                tracing::info!(pid = pg.pid(), first_start = pg.initialized(), "embedded postgres is up");
                Ok(Self { db, embedded: Some(pg) })
            }
        }
    }

    /// Closes the pools and stops the embedded cluster (fast shutdown: nothing committed is lost).
    pub async fn shutdown(self) {
        self.db.close().await;
        if let Some(pg) = self.embedded {
            let _ = tokio::task::spawn_blocking(move || {
                pg.stop();
                tracing::info!("embedded postgres stopped");
            })
            .await;
        }
    }
}
