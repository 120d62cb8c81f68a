//! The projects this node serves: a [`ProjectLookup`] over the control plane that opens a
//! project's pools and keys on its first request and closes them when it has been idle, within
//! one connection budget for all projects.
//!
//! - **Cold open:** the control plane's row, secret and keys are read and the keys built,
//!   while the project's pools open their first connection each (more open as requests need
//!   them). Opens are serialized, so a
//!   burst of first requests to one project opens it once.
//! - **Budget:** each open project may hold at most [`PoolSizes::total`] connections, plus
//!   one once its realtime state starts here (its change capture's own, admitted into the
//!   budget before it starts), and what they reserve never passes the budget, so at most
//!   `budget / pool size` projects are open at once: opening one more first closes the least
//!   recently used project that has been idle for a second; when none has, the request waits
//!   for one (up to the acquire timeout, then 504). A closed project's place is free only once
//!   Postgres has let go of its connections (they leave `pg_stat_activity` a moment after
//!   their sockets close; this node's are told apart by their `application_name`), so the
//!   budget is never exceeded, as Postgres counts.
//! - **Idle close:** a project unused for `idle_timeout` is closed.
//! - **Changes:** every change to a project (status, keys, organization) takes a new revision
//!   in the control plane; each node polls for new revisions every `poll_interval` and drops
//!   what it holds of those projects, so the next request sees the change. A revoked key stops
//!   working on every node within one poll interval.
//! - **Pinned projects** (the default project and the platform's own) are served from memory,
//!   outside the budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forge_core::keys::VerifyConfig;
use forge_core::project::{BoxFuture, ProjectLookup};
use forge_core::{Database, ForgeError, Project, ProjectRef, ProjectSettings};

use crate::platform::cluster::{Cluster, PoolSizes};
use crate::platform::error::{Error, Result};
use crate::platform::keys;
use crate::platform::master_key::MasterKey;
use crate::platform::store::{Status, Store};

/// How projects are opened and kept.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Each project's pools.
    pub pool: PoolSizes,
    /// The most connections all managed projects together may hold.
    pub budget: usize,
    /// A project unused this long is closed.
    pub idle_timeout: Duration,
    /// How often nodes look for changed projects (the bound on a revoked key's life).
    pub poll_interval: Duration,
    /// How long a request waits for room in the budget.
    pub acquire_timeout: Duration,
    /// The server's public URL (a project's is `<it>/p/<ref>`).
    pub public_url: String,
    /// The schemas REST exposes.
    pub exposed_schemas: Vec<String>,
    /// How tokens are verified.
    pub verify: VerifyConfig,
}

impl RegistryConfig {
    /// How many projects may be open at once.
    pub fn max_open(&self) -> usize {
        (self.budget / self.pool.total().max(1)).max(1)
    }
}

/// One open project.
///
/// It is idle when it was last looked up a while ago *and* no request is being served (one
/// queued for a connection may have been looked up long before).
struct Open {
    project: Project,
    /// Where its database lives.
    cluster: String,
    database: String,
    last_used: AtomicU64,
    /// Requests being served (see [`Registry::enter`]).
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections it holds beyond its pools: 1 once its realtime state started here (the
    /// change capture's own), else 0.
    extra: std::sync::atomic::AtomicUsize,
    /// The control plane changed it (its keys, say): the next request reloads it, keeping the
    /// pools, so requests in flight are not cut off.
    stale: std::sync::atomic::AtomicBool,
}

/// What this node holds of a project.
enum Slot {
    Open(Arc<Open>),
    /// Paused or being removed (or made): refused without asking the control plane again.
    Closed(Status),
}

struct Inner {
    store: Store,
    master: Arc<MasterKey>,
    clusters: Mutex<HashMap<String, Cluster>>,
    pinned: Mutex<HashMap<ProjectRef, Project>>,
    slots: Mutex<HashMap<ProjectRef, Slot>>,
    opening: tokio::sync::Mutex<()>,
    config: RegistryConfig,
    revision: AtomicI64,
    epoch: Instant,
    realtime: Mutex<Option<forge_realtime::Realtime>>,
    data: Mutex<Option<forge_data::Data>>,
    /// Connections of closed projects that Postgres still has: they count against the budget.
    closing: std::sync::atomic::AtomicUsize,
    /// Wakes requests waiting for room when a close is done.
    closed: tokio::sync::Notify,
    /// The `application_name` of this node's connections to project databases.
    application_name: String,
}

/// The projects this node serves. Cheap to clone.
#[derive(Clone)]
pub struct Registry(Arc<Inner>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("open", &self.open_count()).finish_non_exhaustive()
    }
}

impl Open {
    /// Unused for `ms` milliseconds: not looked up since, and no request being served.
    fn idle_for(&self, now: u64, ms: u64) -> bool {
        now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= ms && self.in_flight.load(Ordering::Relaxed) == 0
    }
}

impl Registry {
    /// A registry over the control plane's `store`.
    pub fn new(store: Store, master: Arc<MasterKey>, config: RegistryConfig) -> Self {
        Self(Arc::new(Inner {
            store,
            master,
            clusters: Mutex::new(HashMap::new()),
            pinned: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            config,
            revision: AtomicI64::new(0),
            epoch: Instant::now(),
            realtime: Mutex::new(None),
            data: Mutex::new(None),
            closing: std::sync::atomic::AtomicUsize::new(0),
            closed: tokio::sync::Notify::new(),
            application_name: format!("forge-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        }))
    }

    /// Realtime, whose sockets keep a project open and whose state goes with a closed one.
    /// Its change capture's connection is admitted into the budget (see
    /// [`Registry::admit_realtime`]).
    pub fn set_realtime(&self, realtime: forge_realtime::Realtime) {
        let registry = Arc::downgrade(&self.0);
        realtime.set_admission(Arc::new(move |reference| {
            let registry = registry.upgrade().map(Registry);
            Box::pin(async move {
                match registry {
                    Some(registry) => registry.admit_realtime(&reference).await,
                    None => Ok(()),
                }
            })
        }));
        *lock(&self.0.realtime) = Some(realtime);
    }

    /// REST, whose schema cache of a closed project goes with its pools (the cache watches
    /// the schema through them; the next opening loads it anew).
    pub fn set_data(&self, data: forge_data::Data) {
        *lock(&self.0.data) = Some(data);
    }

    /// Whether a project has live realtime sockets on this node (it is in use, however long
    /// ago its last request was).
    fn has_sockets(&self, reference: &str) -> bool {
        lock(&self.0.realtime).as_ref().and_then(|r| r.stats(reference)).is_some_and(|s| s.connections > 0)
    }

    /// Closes a slot's pools and its realtime state. Its place in the budget is free once
    /// Postgres has let go of its connections (requests in flight keep theirs until they end).
    async fn close(&self, reference: &str, slot: Slot) {
        if let Slot::Open(open) = slot {
            if let Some(data) = lock(&self.0.data).as_ref() {
                data.forget(open.project.reference());
            }
            let realtime = lock(&self.0.realtime).clone();
            if let Some(realtime) = realtime {
                realtime.stop_project(reference).await;
            }
            let held = self.0.config.pool.total() + open.extra.load(Ordering::Acquire);
            self.0.closing.fetch_add(held, Ordering::AcqRel);
            let registry = self.clone();
            tokio::spawn(async move {
                open.project.db().close().await;
                registry.wait_gone(&open).await;
                registry.0.closing.fetch_sub(held, Ordering::AcqRel);
                registry.0.closed.notify_waiters();
            });
        }
    }

    /// Waits (up to 5 s) until Postgres has no connection of this node's to `open`'s database.
    async fn wait_gone(&self, open: &Open) {
        let Some(cluster) = self.cluster(&open.cluster) else { return };
        // The control plane's pool is on the default cluster.
        let platform = (cluster.id == "default").then(|| self.0.store.pool());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match cluster.connections_named(platform, &open.database, &self.0.application_name).await {
                Ok(0) => return,
                Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(2)).await,
                Ok(n) => {
                    tracing::warn!(database = %open.database, connections = n, "a closed project's connections linger");
                    return;
                }
                Err(e) => {
                    tracing::warn!(database = %open.database, error = %e, "cannot tell whether a closed project's connections are gone");
                    return;
                }
            }
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.0.config
    }

    /// Serves `project` from memory, outside the budget.
    pub fn pin(&self, project: Project) {
        lock(&self.0.pinned).insert(project.reference().clone(), project);
    }

    /// A pinned project.
    pub fn pinned(&self, reference: &str) -> Option<Project> {
        lock(&self.0.pinned).get(reference).cloned()
    }

    /// Knows `cluster` by its id.
    pub fn add_cluster(&self, cluster: Cluster) {
        lock(&self.0.clusters).insert(cluster.id.clone(), cluster);
    }

    /// The cluster with this id.
    pub fn cluster(&self, id: &str) -> Option<Cluster> {
        lock(&self.0.clusters).get(id).cloned()
    }

    /// Every known cluster.
    pub fn clusters(&self) -> Vec<Cluster> {
        let mut all: Vec<Cluster> = lock(&self.0.clusters).values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// How many managed projects are open.
    pub fn open_count(&self) -> usize {
        lock(&self.0.slots).values().filter(|s| matches!(s, Slot::Open(_))).count()
    }

    /// The open projects (pinned ones first), for pool metrics.
    pub fn open_projects(&self) -> Vec<Project> {
        let mut all: Vec<Project> = lock(&self.0.pinned).values().cloned().collect();
        all.extend(lock(&self.0.slots).values().filter_map(|s| match s {
            Slot::Open(o) => Some(o.project.clone()),
            Slot::Closed(_) => None,
        }));
        all
    }

    fn now_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }

    /// The project with this ref, opening it if needed.
    pub async fn get(&self, reference: &ProjectRef) -> Result<Option<Project>, ForgeError> {
        if let Some(p) = lock(&self.0.pinned).get(reference) {
            return Ok(Some(p.clone()));
        }
        if let Some(found) = self.held(reference) {
            return found.map(Some);
        }
        let _opening = self.0.opening.lock().await;
        if let Some(found) = self.held(reference) {
            return found.map(Some);
        }
        let row = self.0.store.project(reference.as_str()).await.map_err(core)?;
        // A stale entry's pools are kept for the reloaded project, if it is still served.
        // So are its requests in flight: they still count against closing it.
        let stale = match lock(&self.0.slots).get(reference) {
            Some(Slot::Open(open)) => {
                Some((open.project.db().clone(), open.in_flight.clone(), open.extra.load(Ordering::Acquire)))
            }
            _ => None,
        };
        let served = row.as_ref().is_some_and(|r| r.status() == Status::Active && r.cluster_id.is_some());
        if stale.is_some() && !served {
            // Deleted or paused since: its pools close (a paused project answers 503 anyway).
            self.forget(reference.as_str()).await;
        }
        let Some(row) = row else {
            return Ok(None);
        };
        let status = row.status();
        if status != Status::Active {
            // A pause lasts: remember it until the project changes. Being made or removed is
            // brief: ask again next time.
            if status == Status::Paused {
                lock(&self.0.slots).insert(reference.clone(), Slot::Closed(status));
            }
            return Err(closed(reference, status));
        }
        let (Some(cluster_id), Some(database)) = (row.cluster_id.as_deref(), row.database.as_deref()) else {
            // The default project's row: it is pinned when served at all.
            return Ok(None);
        };
        let cluster =
            self.cluster(cluster_id).ok_or_else(|| ForgeError::internal(format!("unknown cluster {cluster_id}")))?;
        let config = &self.0.config;
        let (db, in_flight, extra, fresh) = match stale {
            Some((db, in_flight, extra)) => (db, in_flight, extra, false),
            None => {
                self.make_room(config.pool.total()).await?;
                let db_config =
                    cluster.database_config(database, config.pool, &self.0.application_name).map_err(core)?;
                let db = Database::connect_lazy(&db_config).map_err(|e| ForgeError::internal(e.to_string()))?;
                (db, Arc::new(std::sync::atomic::AtomicUsize::new(0)), 0, true)
            }
        };
        let keys = keys::load_from(&self.0.store, &self.0.master, reference, &config.verify);
        let keys = if fresh {
            // New pools: their first connections (one of each kind, which a REST request
            // needs both of) open while the keys are read, not one after another behind them.
            // A failure here is the request's to report.
            let (keys, warmed) = tokio::join!(keys, db.ping());
            if let Err(e) = warmed {
                tracing::debug!(project = %reference, error = %e, "warming a project's pools failed");
            }
            keys
        } else {
            keys.await
        }
        .map_err(core)?;
        let settings = ProjectSettings::new(format!("{}/p/{reference}", config.public_url.trim_end_matches('/')))
            .with_exposed_schemas(config.exposed_schemas.clone());
        let wanted = crate::platform::schema::project_migrations();
        if row.migrations.as_deref() != Some(wanted.as_str()) {
            // Made by an older build: bring its database up to this build's migrations.
            forge_core::migrate::run(db.pool(), &crate::migrations())
                .await
                .map_err(|e| ForgeError::internal(format!("migrating project {reference}: {e}")))?;
            self.0.store.set_migrations(reference.as_str(), &wanted).await.map_err(core)?;
            tracing::info!(project = %reference, "migrated the project's database");
        }
        let project = Project::new(reference.clone(), db, keys, settings);
        let open = Arc::new(Open {
            project: project.clone(),
            cluster: cluster_id.to_owned(),
            database: database.to_owned(),
            last_used: AtomicU64::new(self.now_ms()),
            in_flight,
            extra: std::sync::atomic::AtomicUsize::new(extra),
            stale: std::sync::atomic::AtomicBool::new(false),
        });
        lock(&self.0.slots).insert(reference.clone(), Slot::Open(open));
        tracing::debug!(project = %reference, open = self.open_count(), "opened a project");
        Ok(Some(project))
    }

    /// What this node holds: `None` when nothing.
    fn held(&self, reference: &ProjectRef) -> Option<Result<Project, ForgeError>> {
        match lock(&self.0.slots).get(reference)? {
            Slot::Open(open) if open.stale.load(Ordering::Relaxed) => None,
            Slot::Open(open) => {
                open.last_used.store(self.now_ms(), Ordering::Relaxed);
                Some(Ok(open.project.clone()))
            }
            Slot::Closed(status) => Some(Err(closed(reference, *status))),
        }
    }

    /// Connections the open and closing projects hold (or may hold) now.
    fn reserved(&self, slots: &HashMap<ProjectRef, Slot>) -> usize {
        let pool = self.0.config.pool.total();
        let open: usize = slots
            .values()
            .map(|s| match s {
                Slot::Open(o) => pool + o.extra.load(Ordering::Acquire),
                Slot::Closed(_) => 0,
            })
            .sum();
        open + self.0.closing.load(Ordering::Acquire)
    }

    /// Waits until `wanted` more connections fit the budget, closing the least recently used
    /// idle project if needed. Callers hold `opening`, so room made is theirs.
    async fn make_room(&self, wanted: usize) -> Result<(), ForgeError> {
        let deadline = Instant::now() + self.0.config.acquire_timeout;
        loop {
            let victim = {
                let mut slots = lock(&self.0.slots);
                if self.reserved(&slots) + wanted <= self.0.config.budget {
                    return Ok(());
                }
                let now = self.now_ms();
                let idle = slots
                    .iter()
                    .filter_map(|(r, s)| match s {
                        Slot::Open(o) if o.idle_for(now, 1000) && !self.has_sockets(r.as_str()) => Some((r, o)),
                        _ => None,
                    })
                    .min_by_key(|(_, o)| o.last_used.load(Ordering::Relaxed))
                    .map(|(r, _)| r.clone());
                idle.and_then(|r| slots.remove(&r).map(|s| (r, s)))
            };
            match victim {
                Some((reference, slot)) => {
                    self.close(reference.as_str(), slot).await;
                }
                None if Instant::now() >= deadline => return Err(ForgeError::PoolTimeout),
                None if self.0.closing.load(Ordering::Acquire) > 0 => {
                    // A close under way frees its connections as soon as Postgres lets go.
                    let _ = tokio::time::timeout(Duration::from_millis(20), self.0.closed.notified()).await;
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Makes room in the budget for the connection a project's realtime state holds of its
    /// own (its change capture's), before that state starts here; a no-op for pinned
    /// projects, which are outside the budget, and for one already counted.
    pub async fn admit_realtime(&self, reference: &ProjectRef) -> Result<(), ForgeError> {
        let counted = |slots: &HashMap<ProjectRef, Slot>| match slots.get(reference) {
            Some(Slot::Open(o)) => o.extra.load(Ordering::Acquire) > 0,
            // Not open here (pinned, or closed meanwhile): nothing of the budget's to count.
            _ => true,
        };
        if counted(&lock(&self.0.slots)) {
            return Ok(());
        }
        let _opening = self.0.opening.lock().await;
        if counted(&lock(&self.0.slots)) {
            return Ok(());
        }
        self.make_room(1).await?;
        if let Some(Slot::Open(o)) = lock(&self.0.slots).get(reference) {
            o.extra.store(1, Ordering::Release);
        }
        Ok(())
    }

    /// Marks what this node holds of a project as out of date: the next request reloads its
    /// status and keys (keeping its pools when it is still served).
    pub fn invalidate(&self, reference: &str) {
        let mut slots = lock(&self.0.slots);
        match slots.get(reference) {
            Some(Slot::Open(open)) => open.stale.store(true, Ordering::Relaxed),
            Some(Slot::Closed(_)) => {
                slots.remove(reference);
            }
            None => {}
        }
    }

    /// Marks a request to `reference` as being served until the guard drops: the project is
    /// not closed meanwhile, however long the request waits for a connection.
    pub fn enter(&self, reference: &str) -> Option<InFlight> {
        match lock(&self.0.slots).get(reference)? {
            Slot::Open(open) => {
                open.in_flight.fetch_add(1, Ordering::Relaxed);
                Some(InFlight(open.in_flight.clone()))
            }
            Slot::Closed(_) => None,
        }
    }

    /// Drops what this node holds of a project (its pools close once their requests end).
    pub async fn forget(&self, reference: &str) {
        let slot = lock(&self.0.slots).remove(reference);
        if let Some(slot) = slot {
            self.close(reference, slot).await;
        }
    }

    /// Closes projects idle past the idle timeout.
    pub async fn close_idle(&self) {
        let now = self.now_ms();
        let limit = self.0.config.idle_timeout.as_millis() as u64;
        let idle: Vec<(ProjectRef, Slot)> = {
            let mut slots = lock(&self.0.slots);
            let refs: Vec<ProjectRef> = slots
                .iter()
                .filter(|(r, s)| match s {
                    Slot::Open(o) => o.idle_for(now, limit) && !self.has_sockets(r.as_str()),
                    Slot::Closed(_) => false,
                })
                .map(|(r, _)| r.clone())
                .collect();
            refs.into_iter().filter_map(|r| slots.remove(&r).map(|s| (r, s))).collect()
        };
        for (reference, slot) in idle {
            self.close(reference.as_str(), slot).await;
        }
    }

    /// Looks for projects changed since the last look and forgets them.
    pub async fn poll_changes(&self) -> Result<usize> {
        let since = self.0.revision.load(Ordering::Relaxed);
        let changed = self.0.store.changed_since(since).await?;
        let mut dropped = 0;
        for (reference, revision) in &changed {
            self.0.revision.fetch_max(*revision, Ordering::Relaxed);
            if lock(&self.0.slots).contains_key(reference.as_str()) {
                self.invalidate(reference);
                dropped += 1;
            }
        }
        // A deleted project leaves no row (and maybe no revision this node saw): forget the
        // refs this node holds that are gone.
        let held: Vec<String> = lock(&self.0.slots).keys().map(|r| r.as_str().to_owned()).collect();
        if !held.is_empty() {
            let live: std::collections::HashSet<String> = self.0.store.existing(&held).await?.into_iter().collect();
            for r in held.iter().filter(|r| !live.contains(*r)) {
                self.forget(r).await;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Starts from the control plane's current revision (nothing held is older).
    pub async fn start_revision(&self) -> Result<()> {
        let revision = self.0.store.revision().await?;
        self.0.revision.store(revision, Ordering::Relaxed);
        Ok(())
    }

    /// Runs the idle close and the change poll until `stop` fires.
    pub async fn maintain(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut poll = tokio::time::interval(self.0.config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut idle = tokio::time::interval(Duration::from_secs(5).min(self.0.config.idle_timeout));
        idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    if let Err(e) = self.poll_changes().await {
                        tracing::warn!(error = %e, "looking for changed projects failed");
                    }
                }
                _ = idle.tick() => self.close_idle().await,
                _ = stop.changed() => break,
            }
        }
    }

    /// Closes every open project.
    pub async fn close_all(&self) {
        let all: Vec<(ProjectRef, Slot)> = lock(&self.0.slots).drain().collect();
        for (reference, slot) in all {
            self.close(reference.as_str(), slot).await;
        }
    }
}

/// A request being served (see [`Registry::enter`]).
#[derive(Debug)]
pub struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ProjectLookup for Registry {
    fn lookup<'a>(&'a self, reference: &'a ProjectRef) -> BoxFuture<'a, Result<Option<Project>, ForgeError>> {
        Box::pin(self.get(reference))
    }
}

fn closed(reference: &ProjectRef, status: Status) -> ForgeError {
    match status {
        Status::Paused | Status::Removing => ForgeError::ProjectPaused(reference.to_string()),
        Status::ComingUp | Status::Active => ForgeError::ProjectNotFound(reference.to_string()),
    }
}

fn core(e: Error) -> ForgeError {
    match e {
        Error::Core(e) => e,
        other => ForgeError::internal(other.to_string()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
