//! The Postgres bus: LISTEN/NOTIFY on one channel of one database, with large envelopes
//! spilled into a table.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use forge_core::DatabaseConfig;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::local::LocalBus;
use super::{Bus, BusError, Envelope, frame};

/// The `application_name` of the publishing pool's connections.
pub const PUBLISHER_APPLICATION_NAME: &str = "forge_realtime_bus";

/// The `application_name` of the listening connection.
pub const LISTENER_APPLICATION_NAME: &str = "forge_realtime_bus_listener";

/// NOTIFY payloads must be shorter than this many bytes (Postgres's limit with the default
/// 8 kB block size).
const NOTIFY_LIMIT: usize = 8000;

/// Marks a payload that carries its frame inline, in base64.
const INLINE: &str = "f:";

/// Marks a payload that carries the id of a spilled frame.
const SPILLED: &str = "s:";

/// How long to wait for a connection from a pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first and the longest wait between attempts to reconnect the listener.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(30));

/// How to reach the bus database, and the bus's settings.
///
/// ```no_run
/// # async fn demo() -> Result<(), forge_realtime::bus::BusError> {
/// use forge_realtime::bus::{PostgresBus, PostgresBusConfig};
/// let config = PostgresBusConfig::from_url("postgres://forge@localhost/forge")?.with_channel("my_deployment");
/// let bus = PostgresBus::connect_with(config).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresBusConfig {
    options: PgConnectOptions,
    channel: String,
    capacity: usize,
    pool_size: u32,
    spill_retention: Duration,
}

impl std::fmt::Debug for PostgresBusConfig {
    // `PgConnectOptions`'s own Debug shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBusConfig")
            .field("host", &self.options.get_host())
            .field("port", &self.options.get_port())
            .field("database", &self.options.get_database())
            .field("channel", &self.channel)
            .field("capacity", &self.capacity)
            .field("pool_size", &self.pool_size)
            .field("spill_retention", &self.spill_retention)
            .finish()
    }
}

impl PostgresBusConfig {
    /// Defaults for the database `options` reach.
    pub fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            channel: PostgresBus::DEFAULT_CHANNEL.to_owned(),
            capacity: LocalBus::DEFAULT_CAPACITY,
            pool_size: 4,
            spill_retention: Duration::from_secs(60),
        }
    }

    /// Defaults for the database at `url`.
    pub fn from_url(url: &str) -> Result<Self, BusError> {
        // sqlx's parse error does not echo the URL, which may hold a password.
        let options = PgConnectOptions::from_str(url).map_err(|e| BusError(format!("invalid database URL: {e}")))?;
        Ok(Self::new(options))
    }

    /// Defaults for the database of `config` (its `url`, not the gateway's: the bus creates
    /// its schema on connecting).
    pub fn from_database_config(config: &DatabaseConfig) -> Result<Self, BusError> {
        // `Database` parses the URL without the caller (or this crate) handling the secret.
        let database = forge_core::Database::connect_lazy(config).map_err(|e| BusError(e.to_string()))?;
        Ok(Self::new(PgConnectOptions::clone(&database.pool().connect_options())))
    }

    /// Sets the NOTIFY channel (at most 63 bytes). Nodes exchange envelopes only on the
    /// same channel of the same database.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// Sets how many envelopes a subscriber on this node may fall behind (see
    /// [`LocalBus::with_capacity`]).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the most connections the publishing pool opens (at least 1; default 4). The
    /// listener has a connection of its own.
    pub fn with_pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Sets how long spilled envelopes are kept (default a minute; at least 100 ms). A node
    /// that reads a spilled envelope's notification later than this loses it.
    pub fn with_spill_retention(mut self, retention: Duration) -> Self {
        self.spill_retention = retention.max(Duration::from_millis(100));
        self
    }
}

/// A [`Bus`] over Postgres LISTEN/NOTIFY, for nodes that share a database.
///
/// The bus listens from [`PostgresBus::connect`] on; each node's subscribers share its one
/// listening connection. Dropping the bus stops its tasks and ends its subscribers' streams.
///
/// # Wire format
///
/// Every envelope is one NOTIFY on the channel ([`PostgresBus::DEFAULT_CHANNEL`] unless
/// configured), sent with `select pg_notify($1, $2)`. Its payload is text:
///
/// - `f:` and the envelope's frame in standard base64, when that fits the NOTIFY limit
///   (payloads must be shorter than 8000 bytes: frames up to 5,997 bytes). The frame is
///   the binary framing the NATS bus uses too: a version byte (1), the origin's 16 bytes,
///   the project's length (2 bytes, big endian), the project, the payload.
/// - `s:` and a row id otherwise: the frame was inserted into `forge_realtime_bus.spill` by
///   the same statement as the NOTIFY, so the row is committed when the notification
///   arrives, and each receiver reads it by id.
///
/// Either way an envelope is exactly one notification, so envelopes arrive in NOTIFY order,
/// which is commit order: publishes that one node makes one after the other arrive in that
/// order, spilled or not (concurrent publishes have no order to keep).
///
/// # The spill table
///
/// The bus keeps its table in a schema of its own, `forge_realtime_bus`, which it creates
/// (idempotently, under an advisory lock, so nodes starting together do not race) when it
/// connects: the table is infrastructure of the nodes, not of any project, so it must not
/// depend on forge-realtime's migrations having run on the bus database, nor sit in the
/// `realtime` schema that projects' policies address. The role connecting needs to be
/// allowed to create it (or it must exist already, with `insert`, `select` and `delete`
/// granted, and `usage` on its sequence). It is `UNLOGGED`: a spilled row only has to
/// outlive its notification by moments, and a crash loses in-flight notifications anyway.
/// Each node deletes rows older than the retention (a minute by default, see
/// [`PostgresBusConfig::with_spill_retention`]) every half retention, at most every 30 s.
///
/// # Connections
///
/// A bus holds a small pool for publishing and reading spilled rows (`application_name`
/// [`PUBLISHER_APPLICATION_NAME`]) and one listening connection
/// ([`LISTENER_APPLICATION_NAME`]). When the listening connection drops, the bus logs it
/// and reconnects, retrying with exponential backoff (100 ms doubling to 30 s) while it
/// cannot; notifications sent while it was away are lost, as the [`Bus`] contract allows.
pub struct PostgresBus {
    pool: PgPool,
    channel: Arc<str>,
    local: LocalBus,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for PostgresBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBus").field("channel", &self.channel).finish_non_exhaustive()
    }
}

impl Drop for PostgresBus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PostgresBus {
    /// The NOTIFY channel unless configured otherwise.
    pub const DEFAULT_CHANNEL: &str = "forge_realtime";

    /// Connects to the database of `config` with the default settings.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, BusError> {
        Self::connect_with(PostgresBusConfig::from_database_config(config)?).await
    }

    /// Connects to the database at `url` with the default settings.
    pub async fn connect_url(url: &str) -> Result<Self, BusError> {
        Self::connect_with(PostgresBusConfig::from_url(url)?).await
    }

    /// Connects as `config` says: creates the spill table if it is missing, starts
    /// listening, and returns once it listens.
    #[tracing::instrument(skip_all, fields(channel = %config.channel))]
    pub async fn connect_with(config: PostgresBusConfig) -> Result<Self, BusError> {
        if config.channel.is_empty() || config.channel.len() > 63 {
            return Err(BusError(format!("the NOTIFY channel must be 1 to 63 bytes, not {}", config.channel.len())));
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(config.options.clone().application_name(PUBLISHER_APPLICATION_NAME))
            .await
            .map_err(|e| pg_error("cannot connect", &e))?;
        create_spill_table(&pool).await.map_err(|e| pg_error("cannot create the spill table", &e))?;
        // PgListener reconnects through a pool; this one only ever holds the listener's
        // connection.
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(config.options.clone().application_name(LISTENER_APPLICATION_NAME));
        let listener =
            connect_listener(&listener_pool, &config.channel).await.map_err(|e| pg_error("cannot listen", &e))?;

        let channel: Arc<str> = Arc::from(config.channel);
        let local = LocalBus::with_capacity(config.capacity);
        let span = tracing::info_span!("realtime_bus", channel = %channel);
        let receiver = Receiver { pool: pool.clone(), local: local.clone() };
        let listen = tokio::spawn(listen(listener_pool, channel.clone(), listener, receiver).instrument(span.clone()));
        let sweep = tokio::spawn(sweep_spilled(pool.clone(), config.spill_retention).instrument(span));
        Ok(Self { pool, channel, local, tasks: vec![listen, sweep] })
    }

    /// The NOTIFY channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    async fn publish_envelope(&self, envelope: Envelope) -> Result<(), BusError> {
        let frame = frame::encode(&envelope).map_err(|e| BusError(e.to_string()))?;
        let sent = if INLINE.len() + inline_len(frame.len()) < NOTIFY_LIMIT {
            let mut text = String::from(INLINE);
            BASE64.encode_string(&frame, &mut text);
            sqlx::query("select pg_notify($1, $2)").bind(&*self.channel).bind(text).execute(&self.pool).await
        } else {
            // One statement, so one transaction: the row commits with the notification.
            sqlx::query(
                "with spilled as (insert into forge_realtime_bus.spill (payload) values ($2) returning id) \
                 select pg_notify($1, 's:' || id) from spilled",
            )
            .bind(&*self.channel)
            .bind(&frame[..])
            .execute(&self.pool)
            .await
        };
        sent.map(drop).map_err(|e| pg_error("cannot publish", &e))
    }
}

impl Bus for PostgresBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(self.publish_envelope(envelope))
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Envelope>, BusError>> {
        let stream = self.local.stream();
        Box::pin(std::future::ready(Ok(stream)))
    }
}

/// The length of a `len`-byte frame in base64.
fn inline_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

fn pg_error(what: &str, error: &sqlx::Error) -> BusError {
    BusError(format!("postgres: {what}: {error}"))
}

async fn create_spill_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // `if not exists` still races on the catalog's unique indexes when nodes start together.
    sqlx::query("select pg_advisory_xact_lock(hashtext('forge_realtime_bus'))").execute(&mut *tx).await?;
    sqlx::query("create schema if not exists forge_realtime_bus").execute(&mut *tx).await?;
    sqlx::query(
        "create unlogged table if not exists forge_realtime_bus.spill (\
           id bigserial primary key, \
           payload bytea not null, \
           created_at timestamptz not null default now())",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

async fn connect_listener(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Report a lost connection at once: this loop reconnects, with backoff and a log line.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Receives notifications until the bus is dropped, reconnecting whenever the connection
/// drops: after the shortest backoff if it had lasted a while, else after a backoff that
/// doubles with each failure (a connection that keeps dropping at once does not spin).
async fn listen(pool: PgPool, channel: Arc<str>, listener: PgListener, receiver: Receiver) {
    let mut listener = Some(listener);
    let mut backoff = BACKOFF.0;
    loop {
        let mut connected = match listener.take() {
            Some(listener) => listener,
            None => match connect_listener(&pool, &channel).await {
                Ok(listener) => {
                    tracing::info!("realtime bus listener reconnected");
                    listener
                }
                Err(e) => {
                    let retry_in_ms = backoff.as_millis();
                    tracing::warn!(error = %e, retry_in_ms, "realtime bus listener cannot reconnect");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    continue;
                }
            },
        };
        let since = Instant::now();
        let error = loop {
            match connected.try_recv().await {
                Ok(Some(notification)) => receiver.receive(notification.payload()).await,
                // The connection closed (EOF, reset, ...).
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        drop(connected);
        if since.elapsed() >= BACKOFF.1 {
            backoff = BACKOFF.0;
        }
        let retry_in_ms = backoff.as_millis();
        match error {
            Some(e) => {
                tracing::warn!(error = %e, retry_in_ms, "realtime bus listener lost its connection; reconnecting")
            }
            None => tracing::warn!(retry_in_ms, "realtime bus listener lost its connection; reconnecting"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// Turns notifications into envelopes for this node's subscribers.
struct Receiver {
    pool: PgPool,
    local: LocalBus,
}

impl Receiver {
    async fn receive(&self, text: &str) {
        let frame = if let Some(encoded) = text.strip_prefix(INLINE) {
            match BASE64.decode(encoded) {
                Ok(frame) => frame,
                Err(_) => {
                    tracing::warn!("realtime bus notification is not base64; dropped");
                    return;
                }
            }
        } else if let Some(id) = text.strip_prefix(SPILLED).and_then(|id| id.parse::<i64>().ok()) {
            match self.read_spilled(id).await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    tracing::warn!(id, "spilled realtime bus envelope already deleted; dropped");
                    return;
                }
                Err(e) => {
                    tracing::warn!(id, error = %e, "cannot read a spilled realtime bus envelope; dropped");
                    return;
                }
            }
        } else {
            tracing::warn!(
                len = text.len(),
                "notification on the realtime bus channel that the bus did not send; ignored"
            );
            return;
        };
        match frame::decode(Bytes::from(frame)) {
            Ok(envelope) => self.local.send(envelope),
            Err(e) => tracing::warn!(error = %e, "realtime bus frame dropped"),
        }
    }

    async fn read_spilled(&self, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("select payload from forge_realtime_bus.spill where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }
}

/// Deletes spilled envelopes older than `retention`, every half `retention` (at most every
/// 30 s).
async fn sweep_spilled(pool: PgPool, retention: Duration) {
    let mut every = tokio::time::interval((retention / 2).min(Duration::from_secs(30)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let swept =
            sqlx::query("delete from forge_realtime_bus.spill where created_at < now() - make_interval(secs => $1)")
                .bind(retention.as_secs_f64())
                .execute(&pool)
                .await;
        match swept {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::debug!(rows = done.rows_affected(), "old spilled realtime bus envelopes deleted");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot delete old spilled realtime bus envelopes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_up_to_5997_bytes_go_inline() {
        // The threshold the module docs state.
        assert!(INLINE.len() + inline_len(5997) < NOTIFY_LIMIT);
        assert!(INLINE.len() + inline_len(5998) >= NOTIFY_LIMIT);
        for len in [0, 1, 2, 3, 4, 5996, 5997, 5998] {
            assert_eq!(inline_len(len), BASE64.encode(vec![0u8; len]).len());
        }
    }

    #[test]
    fn config_debug_hides_the_password() {
        let config = PostgresBusConfig::from_url("postgres://forge:hunter2@db.example:5433/forge").unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("db.example") && debug.contains("5433"), "{debug}");
    }
}
