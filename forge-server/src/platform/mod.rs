//! The platform's control plane: organizations, their members, projects (each its own
//! database), their keys, personal access tokens and the audit log, served as the Management
//! API at `/v1`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`master_key`] | the key that seals every project secret the control plane stores |
//! | [`schema`] | the control plane's tables (`forge.*` in the platform database) |
//! | [`store`] | reading and writing them |
//! | [`cluster`] | the Postgres clusters project databases live on; the template they are cloned from |
//! | [`keys`] | a project's secret, signing keys and API keys, sealed |
//! | [`registry`] | the projects this node serves: opened on first use, closed when idle, within one connection budget |
//! | [`projects`] | a project's lifecycle: create, pause, restore, transfer, delete |
//! | [`archive`] | a project as one archive file (database dump and stored objects): export, import |
//! | [`users`] | platform users, the first owner's setup link, personal access tokens |
//! | [`api`] | the Management API |
//! | [`usage`] | usage metering and Prometheus metrics |
//! | [`error`] | the control plane's errors |
//!
//! Platform users are users of a built-in project, `platform`, whose database is the platform
//! database: forge-auth serves their sign-up, sign-in, MFA and recovery at
//! `/p/platform/auth/v1`, and its sessions authorize the Management API. The server's default
//! project (its configured database) is a project of the control plane too, in the
//! organization `default`, served at the root as before.

pub mod api;
pub mod archive;
pub mod cluster;
pub mod error;
pub mod keys;
pub mod master_key;
pub mod projects;
pub mod registry;
pub mod schema;
pub mod store;
pub mod usage;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use forge_core::keys::VerifyConfig;
use forge_core::migrate::MigrateError;
use forge_core::{Database, Project, ProjectKeys, ProjectRef, ProjectSettings};
use object_store::ObjectStore;
use secrecy::{ExposeSecret as _, SecretString};

pub use error::{Error, ErrorKind, Result};

use crate::platform::cluster::{Cluster, PoolSizes};
use crate::platform::master_key::MasterKey;
use crate::platform::registry::{Registry, RegistryConfig};
use crate::platform::store::{Actor, Status, Store};

/// The platform project's ref.
pub const PLATFORM_REF: &str = "platform";
/// The organization the default project belongs to.
pub const DEFAULT_ORGANIZATION: &str = "default";

/// What the platform needs to start.
#[derive(Debug)]
#[non_exhaustive]
pub struct PlatformConfig {
    /// The default project's cluster: its admin URL and, optionally, the gateway's.
    pub cluster_url: SecretString,
    /// The gateway URL on that cluster (`authenticator`), if not the admin one.
    pub cluster_gateway_url: Option<SecretString>,
    /// The platform database's name (default: derived from the cluster's database).
    pub database: Option<String>,
    /// Where the master key is kept, and the one given.
    pub data_dir: std::path::PathBuf,
    /// The master key given (`FORGE_MASTER_KEY`).
    pub master_key: Option<SecretString>,
    /// How projects are opened and kept.
    pub registry: RegistryConfig,
    /// The default project's ref.
    pub default_ref: ProjectRef,
    /// How often usage counted in memory is written to the control plane.
    pub usage_flush_interval: Duration,
    /// How often open projects' database size, storage and active users are sampled.
    pub usage_sample_interval: Duration,
    /// More clusters new projects may be placed on.
    pub clusters: Vec<Cluster>,
}

impl PlatformConfig {
    /// A config for the cluster at `url`, with defaults.
    pub fn new(cluster_url: SecretString, data_dir: std::path::PathBuf, public_url: String) -> Self {
        Self {
            cluster_url,
            cluster_gateway_url: None,
            database: None,
            data_dir,
            master_key: None,
            registry: RegistryConfig {
                pool: PoolSizes { sqlx: 1, gateway: 1 },
                budget: 100,
                idle_timeout: Duration::from_secs(300),
                poll_interval: Duration::from_secs(1),
                acquire_timeout: Duration::from_secs(10),
                public_url,
                exposed_schemas: vec!["public".into()],
                verify: VerifyConfig::default(),
            },
            default_ref: ProjectRef::new("default").expect("a valid ref"),
            usage_flush_interval: usage::DEFAULT_FLUSH_INTERVAL,
            usage_sample_interval: Duration::from_secs(600),
            clusters: Vec::new(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) master: Arc<MasterKey>,
    pub(crate) registry: Registry,
    pub(crate) database: String,
    pub(crate) template: String,
    pub(crate) project: Project,
    pub(crate) default_ref: ProjectRef,
    pub(crate) auth: Option<forge_auth::Auth>,
    pub(crate) objects: Option<Arc<dyn ObjectStore>>,
    pub(crate) realtime: Option<forge_realtime::Realtime>,
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    pub(crate) setup_token: std::sync::Mutex<Option<SecretString>>,
    pub(crate) meter: usage::Meter,
    pub(crate) intervals: (Duration, Duration),
    pub(crate) running: std::sync::Mutex<Option<(tokio::task::JoinHandle<()>, usage::FlushTask)>>,
    pub(crate) realtime_seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// The control plane. Cheap to clone.
#[derive(Clone)]
pub struct Platform(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").field("database", &self.0.database).finish_non_exhaustive()
    }
}

/// The services the platform drives: auth (platform users, mail), storage's object store (a
/// deleted project's files) and realtime (a paused project's sockets).
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct Services {
    /// forge-auth, for platform users and invitations.
    pub auth: Option<forge_auth::Auth>,
    /// Where storage keeps objects (one prefix per project).
    pub objects: Option<Arc<dyn ObjectStore>>,
    /// forge-realtime.
    pub realtime: Option<forge_realtime::Realtime>,
    /// forge-data (its schema caches go with closed projects).
    pub data: Option<forge_data::Data>,
}

impl Platform {
    /// Opens the control plane: the platform database (made and migrated when needed), the
    /// clusters it knows, the project template, and the default project's record.
    pub async fn open(config: PlatformConfig, services: Services) -> Result<Platform> {
        let master = Arc::new(
            MasterKey::load_or_create(config.master_key.as_ref(), &config.data_dir)
                .map_err(|e| Error::internal(format!("the master key: {e}")))?,
        );
        let cluster = Cluster::new("default", config.cluster_url.clone(), config.cluster_gateway_url.clone())?;
        let database = match &config.database {
            Some(name) => name.clone(),
            None => match cluster.admin_database().as_str() {
                "postgres" => "forge_platform".to_owned(),
                other => format!("{}_platform", other.chars().take(40).collect::<String>()),
            },
        };
        if !cluster.has_database(&database).await? {
            cluster.create_empty_database(&database).await?;
        }
        cluster.restrict_connect(&database).await?;
        let db_config = cluster.database_config(&database, PoolSizes { sqlx: 5, gateway: 4 }, "forge-platform")?;
        let db = Database::connect_lazy(&db_config).map_err(|e| Error::internal(e.to_string()))?;
        let migrated = async {
            forge_core::bootstrap::apply(db.pool()).await.map_err(MigrateError::from)?;
            let mut sets = crate::migrations();
            sets.push(schema::MIGRATIONS);
            forge_core::migrate::run(db.pool(), &sets).await
        }
        .await;
        if let Err(e) = migrated {
            db.close().await;
            return Err(Error::internal(format!("migrating the platform database: {e}")));
        }
        let store = Store::new(db.pool().clone());

        // The platform project: its secret is derived from the master key, so every node
        // that shares the key signs and accepts the same sessions.
        let reference = ProjectRef::new(PLATFORM_REF).expect("a valid ref");
        let secret = master.derive("platform:jwt_secret");
        let keys = ProjectKeys::builder(reference.clone(), secret.expose_secret().to_vec())
            .verify(config.registry.verify.clone())
            .build()
            .map_err(Error::internal)?;
        let settings =
            ProjectSettings::new(format!("{}/p/{PLATFORM_REF}", config.registry.public_url.trim_end_matches('/')));
        let project = Project::new(reference, db, keys, settings);

        // The configured clusters are recorded (sealed), so every node and the command line
        // know them; one configured no longer stays known while it holds projects.
        for c in std::iter::once(&cluster).chain(&config.clusters) {
            let id = &c.id;
            let url = master.seal(c.url().expose_secret().as_bytes(), &format!("cluster:{id}:url"));
            let gateway = c
                .gateway_url()
                .map(|g| master.seal(g.expose_secret().as_bytes(), &format!("cluster:{id}:gateway_url")));
            store.put_cluster(id, &url, gateway.as_deref()).await?;
        }
        let registry = Registry::new(store.clone(), master.clone(), config.registry);
        for (id, url, gateway) in store.clusters().await? {
            let open = |sealed: &[u8], what: &str| -> Result<SecretString> {
                let bytes = master.open(sealed, &format!("cluster:{id}:{what}")).map_err(Error::internal)?;
                Ok(SecretString::from(String::from_utf8(bytes.expose_secret().clone()).map_err(Error::internal)?))
            };
            let gateway = gateway.map(|g| open(&g, "gateway_url")).transpose()?;
            registry.add_cluster(Cluster::new(id.clone(), open(&url, "url")?, gateway)?);
        }
        let template = format!("{database}_template");
        for c in registry.clusters() {
            c.prepare_template(&template).await?;
        }
        registry.start_revision().await?;
        registry.pin(project.clone());
        if let Some(realtime) = &services.realtime {
            registry.set_realtime(realtime.clone());
        }
        if let Some(data) = &services.data {
            registry.set_data(data.clone());
        }

        let (stop, _) = tokio::sync::watch::channel(false);
        let meter = usage::Meter::new();
        let pools = registry.clone();
        meter.set_pool_source(Arc::new(move || {
            pools
                .open_projects()
                .iter()
                .map(|p| {
                    let c = p.db().connections();
                    usage::PoolUse {
                        reference: p.reference().clone(),
                        size: c.open as u32,
                        idle: c.idle as u32,
                        max: c.max as u32,
                    }
                })
                .collect()
        }));
        let platform = Platform(Arc::new(Inner {
            store,
            master,
            registry,
            database,
            template,
            project,
            default_ref: config.default_ref,
            auth: services.auth,
            objects: services.objects,
            realtime: services.realtime,
            stop,
            setup_token: std::sync::Mutex::new(None),
            meter,
            intervals: (config.usage_flush_interval, config.usage_sample_interval),
            running: std::sync::Mutex::new(None),
            realtime_seen: std::sync::Mutex::new(std::collections::HashMap::new()),
        }));
        platform.record_default_project().await?;
        Ok(platform)
    }

    /// Records the default project (and its organization) on first start.
    async fn record_default_project(&self) -> Result<()> {
        let store = &self.0.store;
        let reference = self.0.default_ref.as_str();
        if store.project(reference).await?.is_some() {
            return Ok(());
        }
        let mut tx = store.pool().begin().await?;
        let org = match store.organization(DEFAULT_ORGANIZATION).await? {
            Some(org) => org,
            None => store.create_organization(&mut *tx, DEFAULT_ORGANIZATION, "Default organization").await?,
        };
        store
            .insert_project(&mut *tx, reference, org.id, "Default project", Status::Active, None, None, "local")
            .await?;
        store
            .audit(
                &mut *tx,
                &Actor::system(),
                "project.register_default",
                Some(org.id),
                Some(reference),
                serde_json::json!({}),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Serves the default project from memory.
    pub fn pin_default(&self, project: Project) {
        self.0.registry.pin(project);
    }

    /// Starts the background work: closing idle projects, noticing changed ones, writing
    /// usage and sampling open projects' sizes.
    pub fn start(&self) {
        let maintenance = tokio::spawn(self.0.registry.clone().maintain(self.0.stop.subscribe()));
        let (flush, sample) = self.0.intervals;
        let flushing = self.0.meter.start_flushing(self.0.store.pool().clone(), flush);
        tokio::spawn(self.clone().sample_usage(sample, self.0.stop.subscribe()));
        *self.0.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((maintenance, flushing));
    }

    /// Samples the open projects' database size, storage and monthly active users, and their
    /// realtime connections, every `every` until `stop`.
    async fn sample_usage(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut realtime_tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    for project in self.0.registry.open_projects() {
                        if project.reference().as_str() == PLATFORM_REF {
                            continue;
                        }
                        if let Err(e) = usage::sample_database(&self.0.meter, project.reference(), project.db().pool()).await {
                            tracing::debug!(project = %project.reference(), error = %e, "sampling usage failed");
                        }
                    }
                }
                _ = realtime_tick.tick() => self.sample_realtime(),
                _ = stop.changed() => break,
            }
        }
    }

    /// Counts the realtime messages sent since the last look and records the connections
    /// open now, for every open project. Run every 15 s, and before realtime shuts down.
    pub fn sample_realtime(&self) {
        let Some(realtime) = &self.0.realtime else {
            return;
        };
        let mut seen = self.0.realtime_seen.lock().unwrap_or_else(|e| e.into_inner());
        for project in self.0.registry.open_projects() {
            let reference = project.reference();
            let Some(stats) = realtime.stats(reference.as_str()) else {
                continue;
            };
            self.0.meter.record_gauge(reference, usage::REALTIME_PEAK_CONNECTIONS, stats.connections as i64);
            let before = seen.insert(reference.as_str().to_owned(), stats.messages).unwrap_or(0);
            // A count lower than before is a realtime state started anew.
            let sent = if stats.messages >= before { stats.messages - before } else { stats.messages };
            if sent > 0 {
                self.0.meter.count(reference, usage::REALTIME_MESSAGES, "", sent);
            }
        }
    }

    /// The usage meter.
    pub fn meter(&self) -> &usage::Meter {
        &self.0.meter
    }

    /// Stops the background work, writes the usage counted so far, and closes every project
    /// this node opened. Call it once in-flight requests have drained.
    pub async fn shutdown(&self) {
        let _ = self.0.stop.send(true);
        let running = self.0.running.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((maintenance, flushing)) = running {
            let _ = maintenance.await;
            flushing.stop().await;
        }
        self.0.registry.close_all().await;
        self.0.project.db().close().await;
    }

    /// The projects this node serves.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// The control plane's tables.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The platform project (its users are the platform's).
    pub fn project(&self) -> &Project {
        &self.0.project
    }

    /// The platform database's name.
    pub fn database(&self) -> &str {
        &self.0.database
    }
}
