//! # forge-server
//!
//! The reference Forge binary: every Forge service wired into one server, with an embedded
//! Postgres when no database is configured.
//!
//! | module | what it holds |
//! |---|---|
//! | [`cli`] | `serve` (default), `migrate`, `keys` |
//! | [`config`] | `forge.toml` + `FORGE_*` variables, layered with figment |
//! | [`private`] | umask 077 and a private data dir |
//! | [`secret`] | the JWT secret: configured, or generated once into the data dir |
//! | [`signing_keys`] | the JWT signing keys (current, standby, previous): generated once into the data dir, or given |
//! | [`database`] | an existing Postgres or the embedded cluster |
//! | [`app`] | `/health`, `/ready` and the project-scoped services |
//! | [`edge`] | request id, tracing, CORS, limits, timeouts |
//! | [`linger`] | refused request bodies read to their end, so the answer reaches the client |
//! | [`serve`] | the connection loop: header timeout, connection cap, graceful drain |
//! | [`sweep`] | what uploads left behind: at start-up, then hourly |
//! | [`telemetry`] | text or JSON logs |
//! | [`platform`] | the control plane, being built: so far the master key that seals stored project secrets |
//!
//! Start-up: config → logging → secret → database (embedded cluster if needed) → bootstrap and
//! migrations → listen → banner. Shutdown on SIGINT or SIGTERM: stop accepting, drain
//! in-flight requests (up to 30 s), close the pools, stop the embedded cluster cleanly.

pub mod app;
pub mod cli;
mod commands;
pub mod config;
pub mod database;
pub mod edge;
pub mod linger;
pub mod platform;
pub mod private;
pub mod secret;
pub mod serve;
pub mod signing_keys;
pub mod sweep;
pub mod telemetry;

use std::time::{Duration, Instant};

use forge_core::migrate::{MigrateError, MigrationSet};
use forge_core::{Project, ProjectKeys, ProjectRef, ProjectSettings};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::database::ProjectDatabase;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// A file-system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The embedded Postgres could not start.
    #[error("{0}\n  (or set FORGE_DATABASE_URL to use an existing Postgres instead of the embedded one)")]
    Embedded(#[source] forge_core::embedded::EmbeddedError),
    /// The database refused bootstrap or migrations.
    #[error("preparing the database: {0}")]
    Migrate(#[from] MigrateError),
    /// Anything else during start-up.
    #[error("{0}")]
    Startup(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

impl From<config::ConfigError> for Error {
    fn from(e: config::ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

/// The migrations of every crate, in dependency order. Crates add theirs as they get tables.
pub fn migrations() -> Vec<MigrationSet> {
    vec![forge_auth::MIGRATIONS, forge_storage::MIGRATIONS, forge_realtime::MIGRATIONS]
}

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let started = Instant::now();
    private::restrict_new_files();
    let config = Config::load(cli.config.as_deref())?;
    telemetry::init(config.log_format);
    private::secure_data_dir(&config.data_dir)
        .map_err(|e| Error::io(format!("securing the data dir {}", config.data_dir.display()), e))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Keys => keys(&config),
        Command::Projects { action } => commands::projects(&config, action).await,
        Command::Tokens { action } => commands::tokens(&config, action).await,
        Command::Migrate => {
            let db = prepare(&config, false).await?;
            db.shutdown().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Serve => serve(config, started).await,
    }
}

pub(crate) fn project_keys(
    config: &Config,
    third_party: Option<std::sync::Arc<forge_core::ThirdPartyIssuer>>,
) -> Result<(ProjectRef, ProjectKeys), Error> {
    let secret = secret::load_or_create(config.jwt_secret.as_ref(), &config.data_dir)?;
    let reference = ProjectRef::new(&config.project_ref).map_err(|e| Error::Config(format!("project_ref: {e}")))?;
    let verify = forge_core::keys::VerifyConfig::default().with_extra_roles(config.jwt_extra_roles.clone());
    let mut builder =
        ProjectKeys::builder(reference.clone(), secret.expose_secret().as_bytes().to_vec()).verify(verify);
    if let Some(issuer) = third_party {
        builder = builder.third_party(issuer);
    }
    if let Some(signing) = signing_keys::load_or_create(config)? {
        builder = builder.signing_key(signing.current);
        for key in signing.others {
            builder = builder.verification_key(key);
        }
    }
    let keys = builder.build().map_err(|e| Error::Config(e.to_string()))?;
    Ok((reference, keys))
}

fn keys(config: &Config) -> Result<(), Error> {
    let (reference, keys) = project_keys(config, None)?;
    let out = json!({
        "project_ref": reference.as_str(),
        "url": config.public_url(config.listen),
        "anon_key": keys.anon_key(),
        "service_role_key": keys.service_key().expose_secret(),
        "publishable_key": keys.publishable_key(),
        "secret_key": keys.secret_key().expose_secret(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}

/// Opens the database and applies bootstrap and every crate's migrations. With `attach`, an
/// embedded cluster a running server started is used as it is.
pub(crate) async fn prepare(config: &Config, attach: bool) -> Result<ProjectDatabase, Error> {
    let db = ProjectDatabase::open(
        config.database_url.as_ref(),
        &config.data_dir,
        config.postgres_bin.as_deref(),
        attach,
        config.postgres_connections(),
    )
    .await?;
    let result = async {
        forge_core::bootstrap::apply(db.db.pool()).await.map_err(MigrateError::from)?;
        forge_core::migrate::run(db.db.pool(), &migrations()).await
    }
    .await;
    match result {
        Ok(applied) => {
            tracing::info!(applied, "database is bootstrapped and migrated");
            Ok(db)
        }
        Err(e) => {
            db.shutdown().await;
            Err(e.into())
        }
    }
}

async fn serve(config: Config, started: Instant) -> Result<(), Error> {
    let third_party = match config.auth.third_party.clone() {
        Some(t) => Some(forge_auth::third_party::start(t).await),
        None => None,
    };
    let (reference, keys) = project_keys(&config, third_party)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {}", config.listen), e))?;
    let bound = listener.local_addr().map_err(|e| Error::io("reading the bound address", e))?;
    let url = config.public_url(bound);

    let db = prepare(&config, false).await?;
    let settings = ProjectSettings::new(url.clone()).with_exposed_schemas(config.db_schemas.clone());
    let project = Project::new(reference.clone(), db.db.clone(), keys.clone(), settings);
    let data = forge_data::Data::builder()
        .config(
            forge_data::DataConfig::default()
                .with_plan_enabled(config.rest_explain)
                .with_max_rows(config.db_max_rows)
                .with_extra_search_path(config.db_extra_search_path.clone()),
        )
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
    let mut auth = forge_auth::Auth::builder().config(config.auth.clone());
    if let Some(smtp) = config.smtp() {
        auth = auth.mailer(forge_auth::SmtpMailer::new(&smtp).map_err(|e| Error::Config(e.to_string()))?);
    }
    let auth = auth.build().map_err(|e| Error::Config(e.to_string()))?;
    let store = config.object_store()?;
    let store_for_platform = store.clone();
    // Uploads stop at the edge's body limit, so the storage limit is the same.
    let storage_config = forge_storage::StorageConfig::default().with_file_size_limit(config.body_limit);
    let storage = forge_storage::Storage::builder()
        .store(store)
        .config(storage_config)
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
    let sweeper = sweep::Sweeper {
        storage: storage.clone(),
        project: project.clone(),
        // The project's own folder of the local store, never more of the directory.
        local: config
            .s3_bucket
            .as_deref()
            .is_none_or(str::is_empty)
            .then(|| config.storage_path().join(reference.as_str())),
    };
    // Before serving, so that nothing of this run is in flight yet.
    sweeper.at_start(started, !db.is_embedded()).await;
    let sweeper = tokio::spawn(sweeper.every_hour());
    let realtime = forge_realtime::Realtime::builder()
        .config(config.realtime.clone())
        .bus(bus(&config, &db).await?)
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
    // The change capture's slot is made now, so changes committed before the first
    // subscriber arrives are not the only ones it can see.
    realtime.start(&project).await.map_err(|e| Error::Config(format!("starting realtime: {e}")))?;
    let services = platform::Services {
        auth: Some(auth.clone()),
        objects: Some(store_for_platform),
        realtime: Some(realtime.clone()),
        data: Some(data.clone()),
    };
    let platform = match platform::Platform::open(platform_config(&config, &db, &url)?, services).await {
        Ok(p) => p,
        Err(e) => {
            realtime.shutdown().await;
            db.shutdown().await;
            return Err(Error::Startup(format!("opening the platform's control plane: {e}")));
        }
    };
    platform.pin_default(project.clone());
    platform.start();
    let setup = platform.setup_token().await.map_err(|e| Error::Startup(e.to_string()))?;
    let app = app::router(project, &data, &auth, &storage, &realtime, &platform, &config);

    print_banner(&url, &reference, &keys);
    if let Some(token) = setup {
        println!("  Create the platform's owner (once): {url}/platform/setup?token={}\n", token.expose_secret());
    }
    tracing::info!(%url, ready_ms = started.elapsed().as_millis() as u64, "forge is ready");

    let metrics = match config.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io(format!("cannot listen on {addr} for metrics"), e))?;
            let router = platform::usage::metrics_router(platform.meter().clone(), config.metrics_token.clone());
            tracing::info!(%addr, "serving /metrics");
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            }))
        }
        None => None,
    };
    let limits = serve::Limits {
        header_timeout: Duration::from_secs(config.header_timeout),
        max_connections: config.connection_limit(),
        drain: DRAIN_TIMEOUT,
    };
    tracing::debug!(max_connections = limits.max_connections, "connection limit");
    let served = serve::serve_app(listener, app, shutdown_signal(), limits).await.map_err(|e| Error::io("serving", e));
    sweeper.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    // What realtime sent since the last sample is counted before its state goes.
    platform.sample_realtime();
    realtime.shutdown().await;
    platform.shutdown().await;
    db.shutdown().await;
    tracing::info!("stopped");
    served
}

/// The control plane's settings from the server's.
pub(crate) fn platform_config(
    config: &Config,
    db: &ProjectDatabase,
    url: &str,
) -> Result<platform::PlatformConfig, Error> {
    let mut p = platform::PlatformConfig::new(db.url.clone(), config.data_dir.clone(), url.to_owned());
    p.cluster_gateway_url = db.gateway_url.clone();
    p.database = config.platform_database.clone();
    p.master_key = config.master_key.clone();
    let total = config.project_pool_size.max(2);
    // Two for the services' own work (one on the smallest pools), the rest for REST.
    let sqlx = if total >= 4 { 2 } else { 1 };
    p.registry.pool = platform::cluster::PoolSizes { sqlx: sqlx as u32, gateway: total - sqlx };
    p.registry.budget = config.project_connection_budget.max(total);
    p.registry.idle_timeout = Duration::from_secs(config.project_idle_timeout.max(1));
    p.registry.exposed_schemas = config.db_schemas.clone();
    p.registry.verify = forge_core::keys::VerifyConfig::default().with_extra_roles(config.jwt_extra_roles.clone());
    p.default_ref = ProjectRef::new(&config.project_ref).map_err(|e| Error::Config(format!("project_ref: {e}")))?;
    p.usage_flush_interval = Duration::from_secs(config.usage_flush_interval.max(1));
    for c in &config.clusters {
        let cluster = platform::cluster::Cluster::new(c.id.clone(), c.url.clone(), c.gateway_url.clone())
            .map_err(|e| Error::Config(format!("clusters: {}: {e}", c.id)))?;
        p.clusters.push(cluster);
    }
    Ok(p)
}

/// The realtime bus `config.bus` names.
async fn bus(config: &Config, db: &ProjectDatabase) -> Result<std::sync::Arc<dyn forge_realtime::bus::Bus>, Error> {
    use forge_realtime::bus;
    Ok(match config.bus.as_str() {
        "local" => std::sync::Arc::new(bus::LocalBus::new()),
        "postgres" => {
            let options = db.db.pool().connect_options().as_ref().clone();
            std::sync::Arc::new(
                bus::PostgresBus::connect_with(bus::PostgresBusConfig::new(options))
                    .await
                    .map_err(|e| Error::Config(format!("bus: {e}")))?,
            )
        }
        url => std::sync::Arc::new(
            bus::NatsBus::connect(url, "forge.realtime")
                .await
                .map_err(|e| Error::Config(format!("bus: cannot reach NATS: {e}")))?,
        ),
    })
}

fn print_banner(url: &str, reference: &ProjectRef, keys: &ProjectKeys) {
    let secret_note = "(secret: bypasses RLS; never ship it to a client)";
    println!(
        "\nForge is ready.\n  API URL:          {url}\n  project ref:      {reference}\n  anon key:         {}\n  publishable key:  {}\n  service key:      {} {secret_note}\n  secret key:       {} {secret_note}\n",
        keys.anon_key(),
        keys.publishable_key(),
        keys.service_key().expose_secret(),
        keys.secret_key().expose_secret(),
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
