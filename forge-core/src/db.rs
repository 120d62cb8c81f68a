//! A project's database: a sqlx pool for the services' own work and a small tokio-postgres
//! pool for the RLS gateway's pipelined hot path (ARCHITECTURE.md §3a).

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool as GatewayPool, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::ForgeError;

/// How to reach a project's database.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// The connection URL for the services' own work (migrations, auth, storage metadata).
    pub url: SecretString,
    /// The connection URL for the RLS gateway, normally as the `authenticator` role. Defaults
    /// to `url`; the gateway switches role per transaction either way.
    pub gateway_url: Option<SecretString>,
    /// The most connections the sqlx pool opens.
    pub max_connections: u32,
    /// The most connections the gateway pool opens.
    pub gateway_max_connections: usize,
    /// How long a request waits for a free connection before failing with 504.
    pub acquire_timeout: Duration,
}

impl DatabaseConfig {
    /// A config for `url` with default pool sizes.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            gateway_url: None,
            max_connections: 10,
            gateway_max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the URL the RLS gateway connects with.
    pub fn with_gateway_url(mut self, url: impl Into<String>) -> Self {
        self.gateway_url = Some(SecretString::from(url.into()));
        self
    }

    /// Sets both pools' sizes.
    pub fn with_pool_sizes(mut self, sqlx: u32, gateway: usize) -> Self {
        self.max_connections = sqlx.max(1);
        self.gateway_max_connections = gateway.max(1);
        self
    }

    /// Sets the acquire timeout.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

/// How many connections a [`Database`]'s two pools hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConnections {
    /// Open now.
    pub open: usize,
    /// Open and unused.
    pub idle: usize,
    /// The most both pools may open.
    pub max: usize,
}

/// A project's database handle. Cheap to clone. Pools connect lazily.
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    gateway: GatewayPool,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("gateway", &self.gateway.status()).finish_non_exhaustive()
    }
}

/// The URL is not a valid Postgres URL. The URL itself is never shown (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("invalid database URL ({0})")]
pub struct InvalidDatabaseUrl(&'static str);

impl Database {
    /// Creates both pools without connecting yet.
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Self, InvalidDatabaseUrl> {
        let options = PgConnectOptions::from_str(config.url.expose_secret()).map_err(|_| InvalidDatabaseUrl("url"))?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            .connect_lazy_with(options);
        let gateway_url = config.gateway_url.as_ref().unwrap_or(&config.url);
        let pg_config = tokio_postgres::Config::from_str(gateway_url.expose_secret())
            .map_err(|_| InvalidDatabaseUrl("gateway url"))?;
        Ok(Self { pool, gateway: gateway_pool(pg_config, config)? })
    }

    /// Wraps the application's own sqlx pool: Forge's services do their own work on it, and
    /// the RLS gateway opens its connections from `config`'s URL (its gateway URL if set),
    /// since a `PgPool` does not reveal its password. No deadpool or tokio-postgres type is
    /// involved.
    pub fn from_pool(pool: PgPool, config: &DatabaseConfig) -> Result<Self, InvalidDatabaseUrl> {
        let gateway_url = config.gateway_url.as_ref().unwrap_or(&config.url);
        let pg_config = tokio_postgres::Config::from_str(gateway_url.expose_secret())
            .map_err(|_| InvalidDatabaseUrl("gateway url"))?;
        Ok(Self { pool, gateway: gateway_pool(pg_config, config)? })
    }

    /// The sqlx pool, for the services' own (non-RLS) work.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The gateway pool, for [`crate::rls::begin`], which sets up RLS on the connection.
    pub(crate) fn gateway(&self) -> &GatewayPool {
        &self.gateway
    }

    /// How many connections both pools hold (open, of which idle) and may hold at most.
    pub fn connections(&self) -> PoolConnections {
        let gateway = self.gateway.status();
        let sqlx_open = self.pool.size() as usize;
        let sqlx_idle = self.pool.num_idle();
        PoolConnections {
            open: sqlx_open + gateway.size,
            idle: sqlx_idle + gateway.available,
            max: self.pool.options().get_max_connections() as usize + gateway.max_size,
        }
    }

    /// Checks that both pools can reach the database.
    pub async fn ping(&self) -> Result<(), ForgeError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        let client = self.gateway.get().await?;
        client.simple_query("select 1").await?;
        Ok(())
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.gateway.close();
        self.pool.close().await;
    }
}

fn gateway_pool(pg_config: tokio_postgres::Config, config: &DatabaseConfig) -> Result<GatewayPool, InvalidDatabaseUrl> {
    let manager = Manager::from_config(
        pg_config,
        tokio_postgres::NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    GatewayPool::builder(manager)
        .max_size(config.gateway_max_connections)
        .wait_timeout(Some(config.acquire_timeout))
        .create_timeout(Some(config.acquire_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|_| InvalidDatabaseUrl("gateway pool"))
}
