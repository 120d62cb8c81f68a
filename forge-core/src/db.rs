//! A project's database: a sqlx pool for the services' own work and a small tokio-postgres
//! pool for the RLS gateway's pipelined hot path (ARCHITECTURE.md §3a).
//!
//! Every gateway connection also listens on PostgREST's `pgrst` channel, so schema reloads
//! (DDL, or `NOTIFY pgrst, 'reload schema'`) are heard without a connection held for
//! listening alone: see [`Database::schema_changes`].

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool as GatewayPool, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;

use crate::bootstrap::RELOAD_CHANNEL;
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
    listening: Arc<Listening>,
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
        let (gateway, listening) = gateway_pool(pg_config, config)?;
        Ok(Self { pool, gateway, listening })
    }

    /// Wraps the application's own sqlx pool: Forge's services do their own work on it, and
    /// the RLS gateway opens its connections from `config`'s URL (its gateway URL if set),
    /// since a `PgPool` does not reveal its password. No deadpool or tokio-postgres type is
    /// involved.
    pub fn from_pool(pool: PgPool, config: &DatabaseConfig) -> Result<Self, InvalidDatabaseUrl> {
        let gateway_url = config.gateway_url.as_ref().unwrap_or(&config.url);
        let pg_config = tokio_postgres::Config::from_str(gateway_url.expose_secret())
            .map_err(|_| InvalidDatabaseUrl("gateway url"))?;
        let (gateway, listening) = gateway_pool(pg_config, config)?;
        Ok(Self { pool, gateway, listening })
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

    /// Schema reloads asked for on this database: the value changes on every `NOTIFY pgrst`
    /// with an empty payload or `'reload schema'` (PostgREST's rule; forge-data's DDL trigger
    /// sends one), and whenever the gateway may have missed one (it had no connection left,
    /// and opens one again). Opens a gateway connection first, so that every reload asked for
    /// after this returns is heard; the value returned is marked as seen.
    pub async fn schema_changes(&self) -> Result<watch::Receiver<u64>, ForgeError> {
        let receiver = self.listening.changes.subscribe();
        drop(self.gateway.get().await?);
        Ok(receiver)
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.gateway.close();
        self.pool.close().await;
    }
}

fn gateway_pool(
    pg_config: tokio_postgres::Config,
    config: &DatabaseConfig,
) -> Result<(GatewayPool, Arc<Listening>), InvalidDatabaseUrl> {
    let listening =
        Arc::new(Listening { changes: watch::Sender::new(0), live: AtomicUsize::new(0), ever: AtomicBool::new(false) });
    let manager = Manager::from_connect(
        pg_config,
        ListeningConnect(listening.clone()),
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    let pool = GatewayPool::builder(manager)
        .max_size(config.gateway_max_connections)
        .wait_timeout(Some(config.acquire_timeout))
        .create_timeout(Some(config.acquire_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|_| InvalidDatabaseUrl("gateway pool"))?;
    Ok((pool, listening))
}

/// What the gateway's connections hear of schema reloads.
#[derive(Debug)]
struct Listening {
    /// Bumped on every reload asked for.
    changes: watch::Sender<u64>,
    /// Gateway connections alive (each listening).
    live: AtomicUsize,
    /// Whether one ever was: a connection opened after none was left may have missed a reload.
    ever: AtomicBool,
}

impl Listening {
    fn reload(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Counts a gateway connection alive while it lives (its driver task holds it).
struct Alive(Arc<Listening>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Opens gateway connections that `LISTEN pgrst` and drives them, turning the channel's
/// notifications into [`Listening::reload`].
struct ListeningConnect(Arc<Listening>);

impl deadpool_postgres::Connect for ListeningConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>> {
        let pg_config = pg_config.clone();
        let listening = self.0.clone();
        Box::pin(async move {
            let (client, mut connection) = pg_config.connect(tokio_postgres::NoTls).await?;
            let gap = listening.live.fetch_add(1, Ordering::AcqRel) == 0 && listening.ever.swap(true, Ordering::AcqRel);
            let alive = Alive(listening.clone());
            let driver = tokio::spawn(async move {
                let _alive = alive;
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                    match message {
                        Ok(AsyncMessage::Notification(n))
                            if n.channel() == RELOAD_CHANNEL
                                && (n.payload().is_empty() || n.payload() == "reload schema") =>
                        {
                            listening.reload();
                        }
                        Ok(AsyncMessage::Notice(notice)) => {
                            tracing::debug!(message = notice.message(), "notice on a gateway connection");
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "gateway connection error");
                            break;
                        }
                    }
                }
            });
            if let Err(e) = client.batch_execute(&format!("LISTEN {RELOAD_CHANNEL}")).await {
                driver.abort();
                return Err(e);
            }
            if gap {
                // No connection was listening for a while: whatever was asked meanwhile is lost.
                self.0.reload();
            }
            Ok((client, driver))
        })
    }
}
