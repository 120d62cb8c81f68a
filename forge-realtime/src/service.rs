//! [`Realtime`]: the embeddable realtime service, its settings and its builder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use forge_core::{Project, ProjectRef};
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, NodeId};
use crate::tenant::Tenant;

/// Settings of the realtime service. The limits are per project, as Supabase Realtime's
/// per-tenant limits are; their defaults are Supabase's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RealtimeConfig {
    /// The most sockets open at once on one node (`ConnectionRateLimitReached` beyond).
    pub max_connections: usize,
    /// The most channels one socket may join (`ChannelRateLimitReached` beyond).
    pub max_channels_per_client: usize,
    /// The most joins per second (`ClientJoinRateLimitReached` beyond, and the socket closes).
    pub max_joins_per_second: u32,
    /// The most messages (broadcasts and presence) clients may send per second; a channel
    /// that sends more is shut down with "Too many messages per second".
    pub max_events_per_second: u32,
    /// The largest broadcast or presence payload, in bytes.
    pub max_payload_bytes: usize,
    /// How long a socket may stay silent (clients send a heartbeat every 25 s) before it is
    /// closed.
    #[serde(with = "secs")]
    pub heartbeat_timeout: Duration,
    /// The statement timeout of each authorization check (a subscriber's RLS check of a
    /// change, a private channel's policies).
    #[serde(with = "secs")]
    pub check_timeout: Duration,
    /// Whether database changes are captured (`postgres_changes`). Needs `wal_level=logical`
    /// and a role that may create replication slots.
    pub changes: bool,
    /// How often the capture leader reads the replication slot when it has nothing to read.
    #[serde(with = "secs")]
    pub poll_interval: Duration,
    /// How often a node tells the others which presences it holds; a node not heard from for
    /// three of these is gone and its presences leave.
    #[serde(with = "secs")]
    pub presence_interval: Duration,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            max_connections: 200,
            max_channels_per_client: 100,
            max_joins_per_second: 100,
            max_events_per_second: 100,
            max_payload_bytes: 3000 * 1024,
            heartbeat_timeout: Duration::from_secs(60),
            check_timeout: Duration::from_secs(2),
            changes: true,
            poll_interval: Duration::from_millis(50),
            presence_interval: Duration::from_secs(5),
        }
    }
}

/// Durations as (fractional) seconds in `forge.toml`.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

impl RealtimeConfig {
    /// With the most sockets open at once.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// With the most channels per socket.
    pub fn with_max_channels_per_client(mut self, n: usize) -> Self {
        self.max_channels_per_client = n;
        self
    }

    /// With the most joins per second.
    pub fn with_max_joins_per_second(mut self, n: u32) -> Self {
        self.max_joins_per_second = n;
        self
    }

    /// With the most client messages per second.
    pub fn with_max_events_per_second(mut self, n: u32) -> Self {
        self.max_events_per_second = n;
        self
    }

    /// With the largest payload, in bytes.
    pub fn with_max_payload_bytes(mut self, n: usize) -> Self {
        self.max_payload_bytes = n;
        self
    }

    /// With how long a socket may stay silent.
    pub fn with_heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// With the statement timeout of each authorization check.
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// With or without database change capture.
    pub fn with_changes(mut self, on: bool) -> Self {
        self.changes = on;
        self
    }

    /// With how often an idle capture leader reads the slot.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// With how often a node announces its presences.
    pub fn with_presence_interval(mut self, interval: Duration) -> Self {
        self.presence_interval = interval;
        self
    }
}

/// One project's realtime figures on one node ([`Realtime::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RealtimeStats {
    /// Sockets open.
    pub connections: usize,
    /// How many bytes of WAL the replication slot held at its last reading (once a minute),
    /// when this node leads the capture.
    pub slot_lag_bytes: Option<i64>,
    /// Subscriber identities whose RLS check of a batch of changes ran together with others'
    /// (one transaction and one round trip per table and up to 100 identities).
    pub checks_together: u64,
    /// Identity checks run alone: those whose check failed or ran long together (for ten
    /// minutes after), and their retries.
    pub checks_alone: u64,
    /// Messages queued to the project's channel members on this node since its realtime
    /// state started (broadcasts, presence, changes, system messages), as Supabase counts
    /// realtime messages: once per receiving client.
    pub messages: u64,
}

/// Builds a [`Realtime`].
#[derive(Debug, Default)]
pub struct RealtimeBuilder {
    config: RealtimeConfig,
    bus: Option<Arc<dyn Bus>>,
}

impl RealtimeBuilder {
    /// Uses `config`.
    pub fn config(mut self, config: RealtimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Carries broadcasts, presence and changes to other nodes over `bus` (default: this
    /// process only, [`crate::bus::LocalBus`]).
    pub fn bus(mut self, bus: Arc<dyn Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Builds the service, or says which setting is not valid.
    pub fn build(self) -> Result<Realtime, BuildError> {
        let c = &self.config;
        let positive = [
            (c.max_connections == 0, "realtime.max_connections"),
            (c.max_channels_per_client == 0, "realtime.max_channels_per_client"),
            (c.max_joins_per_second == 0, "realtime.max_joins_per_second"),
            (c.max_events_per_second == 0, "realtime.max_events_per_second"),
            (c.max_payload_bytes == 0, "realtime.max_payload_bytes"),
            (c.heartbeat_timeout.is_zero(), "realtime.heartbeat_timeout"),
            (c.check_timeout < Duration::from_millis(1), "realtime.check_timeout"),
            (c.poll_interval.is_zero(), "realtime.poll_interval"),
            (c.presence_interval.is_zero(), "realtime.presence_interval"),
        ];
        if let Some((_, setting)) = positive.iter().find(|(bad, _)| *bad) {
            return Err(BuildError::Invalid { setting, reason: "must be positive" });
        }
        let bus = self.bus.unwrap_or_else(|| Arc::new(crate::bus::LocalBus::new()));
        Ok(Realtime(Arc::new(Inner {
            config: self.config,
            bus,
            node: uuid::Uuid::new_v4(),
            tenants: Mutex::new(HashMap::new()),
            listening: tokio::sync::OnceCell::new(),
            admission: AdmissionCell::default(),
        })))
    }
}

/// Why a [`RealtimeBuilder`] could not build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting has a value the service cannot run with.
    #[error("{setting} {reason}")]
    Invalid {
        /// The setting, as named in `forge.toml`.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: RealtimeConfig,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) node: NodeId,
    tenants: Mutex<HashMap<ProjectRef, Arc<Tenant>>>,
    /// The bus subscription, started with the first tenant.
    listening: tokio::sync::OnceCell<()>,
    /// Asked before a project's realtime state starts here (see [`Realtime::set_admission`]).
    admission: AdmissionCell,
}

/// The [`Admission`], once set.
#[derive(Default)]
struct AdmissionCell(std::sync::OnceLock<Admission>);

impl std::fmt::Debug for AdmissionCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Admission(set)" } else { "Admission(none)" })
    }
}

/// Asked before a project's realtime state starts on a node: its change capture holds a
/// connection of its own (the capture leader's), outside the project's pools, which an
/// embedder that budgets connections across projects must make room for. An error refuses
/// the request that would have started it.
pub type Admission = Arc<
    dyn Fn(ProjectRef) -> futures_util::future::BoxFuture<'static, Result<(), forge_core::ForgeError>> + Send + Sync,
>;

/// The Supabase-compatible realtime service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Realtime(pub(crate) Arc<Inner>);

impl Realtime {
    /// Starts a builder.
    pub fn builder() -> RealtimeBuilder {
        RealtimeBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &RealtimeConfig {
        &self.0.config
    }

    /// This node's id on the bus.
    pub fn node(&self) -> NodeId {
        self.0.node
    }

    /// The routes, to nest at `/realtime/v1`: `GET /websocket` (also `/websocket/websocket`,
    /// Phoenix's own path), `POST /api/broadcast` and
    /// `POST /api/broadcast/{topic}/events/{event}`. A request needs a [`Project`] in its
    /// extensions, which [`forge_core::ProjectLayer`] provides.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/websocket", get(crate::socket::upgrade))
            .route("/websocket/websocket", get(crate::socket::upgrade))
            .route("/api/broadcast", post(crate::api::broadcast))
            .route("/api/broadcast/{topic}/events/{event}", post(crate::api::send_one))
            .layer(axum::Extension(self.clone()))
            .layer(axum::Extension(forge_core::WireFormat::Realtime))
    }

    /// Starts the project's realtime state now rather than at its first socket: its change
    /// capture creates the replication slot, from which on committed changes are kept.
    pub async fn start(&self, project: &Project) -> Result<(), crate::error::Error> {
        self.tenant(project).await.map(drop)
    }

    /// Sets what is asked before a project's realtime state starts on this node (once; later
    /// calls are ignored).
    pub fn set_admission(&self, admission: Admission) {
        let _ = self.0.admission.0.set(admission);
    }

    /// The project's realtime state on this node, started on first use.
    pub(crate) async fn tenant(&self, project: &Project) -> Result<Arc<Tenant>, crate::error::Error> {
        self.0.listening.get_or_init(|| async { crate::tenant::listen(self.clone()) }).await;
        if let Some(t) = self.existing_tenant(project.reference().as_str()) {
            return Ok(t);
        }
        if let Some(admit) = self.0.admission.0.get() {
            admit(project.reference().clone()).await?;
        }
        let mut tenants = self.0.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = tenants.get(project.reference()) {
            return Ok(t.clone());
        }
        let tenant = Tenant::start(self.clone(), project.clone());
        tenants.insert(project.reference().clone(), tenant.clone());
        Ok(tenant)
    }

    /// The project's realtime state on this node, if it has any.
    pub(crate) fn existing_tenant(&self, project: &str) -> Option<Arc<Tenant>> {
        let tenants = self.0.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.get(project).cloned()
    }

    /// The project's realtime figures on this node, if it has realtime state here.
    pub fn stats(&self, project: &str) -> Option<RealtimeStats> {
        use std::sync::atomic::Ordering::Relaxed;
        let t = self.existing_tenant(project)?;
        let lag = t.slot_lag.load(Relaxed);
        Some(RealtimeStats {
            connections: t.connections.load(Relaxed),
            slot_lag_bytes: (lag >= 0).then_some(lag),
            checks_together: t.changes.checked_together.load(Relaxed),
            checks_alone: t.changes.checked_alone.load(Relaxed),
            messages: t.messages_sent.load(Relaxed),
        })
    }

    /// Stops one project's realtime state on this node: its capture ends and its sockets are
    /// closed (a project paused, deleted or closed for being idle). Its next socket starts it
    /// again.
    pub async fn stop_project(&self, project: &str) {
        let tenant = self.0.tenants.lock().unwrap_or_else(|e| e.into_inner()).remove(project);
        if let Some(t) = tenant {
            t.stop().await;
        }
    }

    /// Stops every project's capture and closes every socket (a graceful shutdown).
    pub async fn shutdown(&self) {
        let tenants: Vec<_> = {
            let mut tenants = self.0.tenants.lock().unwrap_or_else(|e| e.into_inner());
            tenants.drain().map(|(_, t)| t).collect()
        };
        for t in tenants {
            t.stop().await;
        }
    }
}
