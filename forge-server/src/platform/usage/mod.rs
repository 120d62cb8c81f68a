//! Usage metering per project, and the Prometheus metrics (issue: usage metering).
//!
//! - [`Meter`] counts in memory: API requests by service and status class, egress bytes by
//!   service, and whatever else is given to [`Meter::count`] (realtime messages) or
//!   [`Meter::record_gauge`] (database size, storage bytes and objects, realtime peak
//!   connections, monthly active users). Counting takes one short std-mutex section and
//!   allocates nothing once a project has been seen in the current hour.
//! - [`UsageLayer`] counts each response when its head is produced (service from the path's
//!   first segment, status class), times it into a latency histogram, and counts the body's
//!   bytes as its frames stream out, so a download cut short counts what was sent.
//! - [`Meter::flush`] takes the counts and adds them to hourly rows of `forge.usage_hourly`
//!   ([`MIGRATION_SQL`]) with one multi-row upsert: counters add up, gauges keep the hour's
//!   largest value, so any number of nodes serving one project add up correctly. A batch
//!   whose write failed or was cancelled is sent again by the next flush under the same id
//!   (kept in `forge.usage_flushes`), so it is added exactly once. [`Meter::start_flushing`]
//!   flushes every interval; [`FlushTask::stop`] flushes a last time on a graceful stop.
//! - [`sample_database`] samples a project's database size, storage and monthly active users;
//!   [`usage`] reads a project's usage over a period.
//! - [`metrics_router`] serves `GET /metrics` in the Prometheus text format, optionally behind
//!   a bearer token: request counts and egress per project, latency histograms per service,
//!   and database pool use from [`Meter::set_pool_source`].
//!
//! Wiring: `ProjectLayer` outermost (it strips `/p/{ref}` and inserts the `Project`), then
//! [`UsageLayer`], then the services, so paths look like `/rest/v1/...`:
//!
//! ```no_run
//! # async fn demo(router: axum::Router, projects: forge_core::ProjectLayer, control: sqlx::PgPool) {
//! use forge_server::platform::usage::{DEFAULT_FLUSH_INTERVAL, Meter, metrics_router};
//! use tower::Layer as _;
//!
//! let meter = Meter::new();
//! let app = projects.layer(meter.layer().layer(router));
//! let metrics = metrics_router::<()>(meter.clone(), None); // on its own listen address
//! let flushing = meter.start_flushing(control, DEFAULT_FLUSH_INTERVAL);
//! // ... serve `app` and `metrics`; on shutdown, once in-flight requests have drained:
//! flushing.stop().await;
//! # }
//! ```
//!
//! Not counted: requests that name no project (they still reach the latency histogram), and
//! requests dropped before their response head (client gone, an outer timeout). Egress is the
//! response body's bytes, not headers or TLS framing.

mod layer;
mod metrics;
mod report;
mod store;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use forge_core::ProjectRef;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use layer::{UsageFuture, UsageLayer, UsageService};
pub use metrics::{PoolSource, PoolUse, metrics_router};
pub use report::{UsageRow, sample_database, usage};

use metrics::Metrics;
use store::{Pending, Rows};

/// The table: version 2 of the control plane's migration set (after `forge.projects`).
pub const MIGRATION_SQL: &str = include_str!("../usage.sql");

/// How often [`Meter::start_flushing`] writes, unless told otherwise.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Metric: API requests, dimension `<service>:<status class>` (`rest:2xx`). Counter.
pub const REQUESTS: &str = "requests";
/// Metric: response body bytes sent, dimension the service (`storage`). Counter.
pub const EGRESS_BYTES: &str = "egress_bytes";
/// Metric: `pg_database_size` of the project's database. Gauge.
pub const DATABASE_SIZE_BYTES: &str = "database_size_bytes";
/// Metric: bytes of stored objects. Gauge.
pub const STORAGE_BYTES: &str = "storage_bytes";
/// Metric: number of stored objects. Gauge.
pub const STORAGE_OBJECTS: &str = "storage_objects";
/// Metric: users who signed in this calendar month (UTC). Gauge.
pub const MONTHLY_ACTIVE_USERS: &str = "mau";
/// Metric: the most realtime connections open at once. Gauge.
pub const REALTIME_PEAK_CONNECTIONS: &str = "realtime_peak_connections";
/// Metric: realtime messages, dimension the kind (`broadcast`, `presence`, `postgres_changes`).
/// Counter.
pub const REALTIME_MESSAGES: &str = "realtime_messages";

/// The service a request is for, by the first segment of its (project-relative) path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceKind {
    /// `/rest/...`
    Rest,
    /// `/auth/...`
    Auth,
    /// `/storage/...`
    Storage,
    /// `/realtime/...`
    Realtime,
    /// `/functions/...`
    Functions,
    /// Anything else.
    Other,
}

impl ServiceKind {
    pub(crate) const COUNT: usize = 6;
    pub(crate) const ALL: [ServiceKind; Self::COUNT] = [
        ServiceKind::Rest,
        ServiceKind::Auth,
        ServiceKind::Storage,
        ServiceKind::Realtime,
        ServiceKind::Functions,
        ServiceKind::Other,
    ];

    /// The service of a request path such as `/rest/v1/todos`.
    pub fn for_path(path: &str) -> ServiceKind {
        let path = path.strip_prefix('/').unwrap_or(path);
        match path.split('/').next().unwrap_or_default() {
            "rest" => ServiceKind::Rest,
            "auth" => ServiceKind::Auth,
            "storage" => ServiceKind::Storage,
            "realtime" => ServiceKind::Realtime,
            "functions" => ServiceKind::Functions,
            _ => ServiceKind::Other,
        }
    }

    /// The name used in dimensions and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Rest => "rest",
            ServiceKind::Auth => "auth",
            ServiceKind::Storage => "storage",
            ServiceKind::Realtime => "realtime",
            ServiceKind::Functions => "functions",
            ServiceKind::Other => "other",
        }
    }
}

/// The class of a response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 1xx (a WebSocket upgrade is 101).
    Informational,
    /// 2xx
    Success,
    /// 3xx
    Redirection,
    /// 4xx
    ClientError,
    /// 5xx (and anything out of range).
    ServerError,
}

impl StatusClass {
    pub(crate) const COUNT: usize = 5;
    pub(crate) const ALL: [StatusClass; Self::COUNT] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
    ];

    /// The class of `status`.
    pub fn of(status: http::StatusCode) -> StatusClass {
        match status.as_u16() / 100 {
            1 => StatusClass::Informational,
            2 => StatusClass::Success,
            3 => StatusClass::Redirection,
            4 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// `1xx` to `5xx`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

/// Counts usage per project in memory until [`Meter::flush`], and holds the Prometheus
/// metrics. Cheap to clone: clones share their counts.
#[derive(Clone)]
pub struct Meter(Arc<Inner>);

struct Inner {
    pending: Mutex<Pending>,
    /// Batches whose write failed or was cancelled, to send again (with their ids) first.
    unsent: Mutex<Vec<Batch>>,
    metrics: Metrics,
}

/// Counts taken for one write, under an id that makes the write apply at most once.
#[derive(Debug)]
struct Batch {
    id: String,
    rows: Rows,
}

impl Batch {
    fn new(rows: Rows) -> Batch {
        let mut bytes = [0u8; 16];
        // A random id; should the system's generator fail, a time-based one is still unique
        // enough for one node's batches.
        if SystemRandom::new().fill(&mut bytes).is_err() {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            bytes = nanos.to_be_bytes();
        }
        let mut id = String::with_capacity(32);
        for b in bytes {
            let _ = write!(id, "{b:02x}");
        }
        Batch { id, rows }
    }
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter").finish_non_exhaustive()
    }
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

/// The start of the current UTC hour, in seconds since the epoch.
fn current_hour() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs - secs % 3600).unwrap_or(i64::MAX)
}

impl Meter {
    /// A meter with nothing counted.
    pub fn new() -> Self {
        Meter(Arc::new(Inner {
            pending: Mutex::new(Pending::default()),
            unsent: Mutex::new(Vec::new()),
            metrics: Metrics::new(),
        }))
    }

    /// The layer that meters requests into this meter.
    pub fn layer(&self) -> UsageLayer {
        UsageLayer::new(self.clone())
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // The data is plain counts: usable even if a panic interrupted an update.
        self.0.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `n` to counter `metric` (`dimension` may be `""`) of `reference`, in this hour.
    pub fn count(&self, reference: &ProjectRef, metric: &str, dimension: &str, n: u64) {
        self.count_at(current_hour(), reference, metric, dimension, n);
    }

    fn count_at(&self, hour: i64, reference: &ProjectRef, metric: &str, dimension: &str, n: u64) {
        self.pending().with(hour, reference, |c| c.add(metric, dimension, n));
    }

    /// Records a sample of gauge `metric` of `reference`: the hour keeps its largest sample.
    pub fn record_gauge(&self, reference: &ProjectRef, metric: &str, value: i64) {
        self.record_gauge_at(current_hour(), reference, metric, value);
    }

    fn record_gauge_at(&self, hour: i64, reference: &ProjectRef, metric: &str, value: i64) {
        self.pending().with(hour, reference, |c| c.gauge(metric, "", value));
    }

    /// Where `/metrics` reads database pool use from, at each scrape.
    pub fn set_pool_source(&self, source: PoolSource) {
        self.0.metrics.set_pool_source(source);
    }

    /// The Prometheus text exposition (format 0.0.4) of the metrics.
    pub fn render_metrics(&self) -> String {
        self.0.metrics.render()
    }

    /// Drops `reference`'s Prometheus series (its unflushed usage stays and is still
    /// written), for a deleted project.
    pub fn forget(&self, reference: &ProjectRef) {
        self.0.metrics.forget(reference);
    }

    /// A response's head: one request of `service` with `class`.
    fn count_request(&self, reference: &ProjectRef, service: ServiceKind, class: StatusClass) {
        self.pending().with(current_hour(), reference, |c| c.requests[service as usize][class as usize] += 1);
        self.0.metrics.count_request(reference, service, class);
    }

    /// Response body bytes sent.
    fn count_egress(&self, reference: &ProjectRef, service: ServiceKind, bytes: u64) {
        self.pending().with(current_hour(), reference, |c| {
            let slot = &mut c.egress[service as usize];
            *slot = slot.saturating_add(bytes);
        });
        self.0.metrics.count_egress(reference, service, bytes);
    }

    fn observe_latency(&self, service: ServiceKind, elapsed: Duration) {
        self.0.metrics.observe_latency(service, elapsed);
    }

    /// Adds everything counted so far to `forge.usage_hourly` in one statement and returns
    /// how many rows it added to or created.
    ///
    /// Each batch carries an id recorded in `forge.usage_flushes` by the same statement. A
    /// batch whose write fails, or whose flush is dropped before the answer, is kept and sent
    /// again first by the next flush, with its id: it is added once, whether or not the
    /// first attempt had committed. Counts made meanwhile wait in the meter.
    #[tracing::instrument(skip_all)]
    pub async fn flush(&self, pool: &PgPool) -> Result<usize, sqlx::Error> {
        let mut written = 0;
        loop {
            let retry = self.0.unsent.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(batch) = retry else { break };
            written += self.write(pool, batch).await?;
        }
        let taken = std::mem::take(&mut *self.pending());
        if taken.is_empty() {
            return Ok(written);
        }
        written += self.write(pool, Batch::new(taken.rows())).await?;
        Ok(written)
    }

    async fn write(&self, pool: &PgPool, batch: Batch) -> Result<usize, sqlx::Error> {
        let mut unsent = Unsent { meter: self, batch: Some(batch) };
        let Some(batch) = unsent.batch.as_ref() else { return Ok(0) };
        let done = sqlx::query(UPSERT)
            .bind(&batch.rows.refs)
            .bind(&batch.rows.hours)
            .bind(&batch.rows.metrics)
            .bind(&batch.rows.dimensions)
            .bind(&batch.rows.kinds)
            .bind(&batch.rows.values)
            .bind(&batch.id)
            .execute(pool)
            .await?;
        unsent.batch = None;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    /// Forgets the ids of batches written more than a week ago (the flush task does this
    /// hourly).
    pub async fn sweep_flush_ids(pool: &PgPool) -> Result<u64, sqlx::Error> {
        let done =
            sqlx::query("delete from forge.usage_flushes where at < now() - interval '7 days'").execute(pool).await?;
        Ok(done.rows_affected())
    }

    /// Starts a task that flushes into `pool` every `interval`, and once more when the
    /// returned guard is stopped (or dropped). Failed flushes are logged and retried at the
    /// next tick with their counts kept.
    pub fn start_flushing(&self, pool: PgPool, interval: Duration) -> FlushTask {
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(flush_loop(self.clone(), pool, interval, stopped));
        FlushTask { stop: Some(stop), handle: Some(handle) }
    }
}

/// Records the batch's id and, only if it was new, adds the rows: counters add up, gauges
/// keep the hour's largest sample. `to_timestamp` of whole seconds is exact; the rows come
/// sorted by key (see `Pending::rows`), so nodes lock shared rows in one order.
const UPSERT: &str = "with batch as ( \
         insert into forge.usage_flushes (id) values ($7::uuid) on conflict (id) do nothing returning id) \
     insert into forge.usage_hourly as u (ref, hour, metric, dimension, kind, value) \
     select r, to_timestamp(h), m, d, k, v \
     from unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[]) as t(r, h, m, d, k, v) \
     where exists (select from batch) \
     on conflict (ref, hour, metric, dimension) do update \
     set value = case when u.kind = 'gauge' then greatest(u.value, excluded.value) \
                      else u.value + excluded.value end";

/// Keeps a batch for the next flush unless its write was confirmed.
struct Unsent<'a> {
    meter: &'a Meter,
    batch: Option<Batch>,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(batch) = self.batch.take() {
            self.meter.0.unsent.lock().unwrap_or_else(|e| e.into_inner()).push(batch);
        }
    }
}

/// The flushing task started by [`Meter::start_flushing`]. Stop it with [`FlushTask::stop`]
/// after in-flight requests have drained and before the pool closes; dropping it also asks
/// for a last flush, but nothing then waits for it.
#[derive(Debug)]
pub struct FlushTask {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl FlushTask {
    /// Flushes a last time (retrying a few times) and ends the task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for FlushTask {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How often the flush task forgets old batch ids.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// How many times the last flush is tried before its counts are given up.
const FINAL_ATTEMPTS: u32 = 3;

async fn flush_loop(meter: Meter, pool: PgPool, interval: Duration, mut stopped: oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    let mut swept: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if let Err(error) = meter.flush(&pool).await {
                    tracing::warn!(%error, "writing usage failed; the counts are kept for the next flush");
                    continue;
                }
                if swept.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL) {
                    swept = Some(Instant::now());
                    if let Err(error) = Meter::sweep_flush_ids(&pool).await {
                        tracing::warn!(%error, "sweeping old usage flush ids failed");
                    }
                }
            }
            _ = &mut stopped => break,
        }
    }
    for attempt in 1..=FINAL_ATTEMPTS {
        match meter.flush(&pool).await {
            Ok(_) => return,
            Err(error) if attempt < FINAL_ATTEMPTS => {
                tracing::warn!(%error, attempt, "the last usage flush failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(error) => tracing::error!(%error, "the last usage flush failed; unwritten usage is lost"),
        }
    }
}
