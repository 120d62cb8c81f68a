//! Test support: a private Postgres cluster per test process and a fresh database per test.
//!
//! ```no_run
//! # async fn demo() {
//! let db = forge_core::testing::test_db().await;
//! sqlx::query("create table t (id int)").execute(db.pool()).await.unwrap();
//! # }
//! ```
//!
//! The first call starts the cluster from the installed Postgres binaries (`fsync=off`,
//! Unix socket only, `wal_level=logical`) in a temporary directory, and applies the bootstrap
//! to a template database. Every [`test_db`] is a clone of that template, so each test starts
//! from a clean, bootstrapped database in milliseconds. The cluster is stopped and its
//! directory removed when the process exits; clusters left by killed test processes are
//! swept at the next start.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::{Connection as _, PgConnection, PgPool};

use crate::db::{Database, DatabaseConfig};
use crate::embedded::{ClusterOptions, EmbeddedPostgres};
use crate::keys::ProjectKeys;
use crate::project::{Project, ProjectRef, ProjectSettings};

/// The JWT secret of projects made by [`TestDb::project`].
pub const TEST_JWT_SECRET: &str = "forge-test-secret-that-is-at-least-32-bytes-long";

const TEMPLATE: &str = "forge_template";
const DIR_PREFIX: &str = "forge-test-";

struct TestCluster {
    pg: EmbeddedPostgres,
    dir: PathBuf,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

extern "C" fn stop_cluster_at_exit() {
    if let Some(Ok(cluster)) = CLUSTER.get() {
        cluster.pg.stop_immediately();
        let _ = std::fs::remove_dir_all(&cluster.dir);
    }
}

fn cluster() -> &'static TestCluster {
    let cluster = CLUSTER.get_or_init(|| {
        // Set up on a plain thread: callers are inside a runtime, and the template bootstrap
        // needs one of its own.
        std::thread::spawn(start_cluster).join().unwrap_or_else(|_| Err("the cluster start-up thread panicked".into()))
    });
    match cluster {
        Ok(c) => c,
        Err(e) => panic!("forge test support could not start Postgres: {e}"),
    }
}

fn start_cluster() -> Result<TestCluster, String> {
    sweep_stale_dirs();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    // Postgres may run as another user (when we are root): let it reach its directories.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(|e| e.to_string())?;
    let mut options = ClusterOptions::new(dir.join("data"));
    options.socket_dir = Some(dir.join("run"));
    options.log_file = Some(dir.join("postgres.log"));
    options.durable = false;
    options.settings = vec![
        ("max_connections".into(), "300".into()),
        ("shared_buffers".into(), "64MB".into()),
        // Realtime's tests each open a logical slot in their own database; without fsync,
        // commits reach decoding when the WAL writer flushes them, so flush often.
        ("max_replication_slots".into(), "200".into()),
        ("wal_writer_delay".into(), "10ms".into()),
    ];
    let pg = EmbeddedPostgres::start(options).map_err(|e| {
        let _ = std::fs::remove_dir_all(&dir);
        e.to_string()
    })?;
    crate::embedded::at_exit(stop_cluster_at_exit);

    let admin = pg.url("postgres", pg.superuser());
    let template = pg.url(TEMPLATE, pg.superuser());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime
        .block_on(async {
            let mut conn = PgConnection::connect(&admin).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {TEMPLATE}"))).execute(&mut conn).await?;
            let pool = PgPool::connect(&template).await?;
            crate::bootstrap::apply(&pool).await.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            pool.close().await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("alter database {TEMPLATE} is_template true")))
                .execute(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        })
        .map_err(|e| format!("preparing the template database: {e}"))?;
    Ok(TestCluster { pg, dir })
}

/// Removes directories of test clusters whose process is gone.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh database for one test, cloned from the bootstrapped template.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    gateway_url: String,
    db: Database,
}

/// Creates a fresh, bootstrapped database on the process's private cluster.
pub async fn test_db() -> TestDb {
    let cluster = cluster();
    let name = format!("forge_test_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let admin = cluster.pg.url("postgres", cluster.pg.superuser());
    let mut conn = PgConnection::connect(&admin).await.expect("connect to the test cluster");
    // The name is made here from a counter and the pid, never from input.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name} template {TEMPLATE}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let _ = conn.close().await;
    let url = cluster.pg.url(&name, cluster.pg.superuser());
    let gateway_url = cluster.pg.url(&name, "authenticator");
    let config = DatabaseConfig::new(url.clone())
        .with_gateway_url(gateway_url.clone())
        .with_acquire_timeout(Duration::from_secs(10));
    let db = Database::connect_lazy(&config).expect("valid test database URL");
    TestDb { name, url, gateway_url, db }
}

impl TestDb {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database handle (sqlx pool as the superuser; gateway as `authenticator`).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The sqlx pool, connected as the superuser.
    pub fn pool(&self) -> &PgPool {
        self.db.pool()
    }

    /// The superuser's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `authenticator` role's URL, as the RLS gateway uses.
    pub fn gateway_url(&self) -> &str {
        &self.gateway_url
    }

    /// A database config for this database, to build other pools (e.g. of one connection).
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig::new(self.url.clone()).with_gateway_url(self.gateway_url.clone())
    }

    /// A project `reference` on this database with keys from [`TEST_JWT_SECRET`].
    pub fn project(&self, reference: &str) -> Project {
        self.project_with_secret(reference, TEST_JWT_SECRET.as_bytes())
    }

    /// A project `reference` on this database with keys from `secret`.
    pub fn project_with_secret(&self, reference: &str, secret: &[u8]) -> Project {
        let reference = ProjectRef::new(reference).expect("a valid project ref");
        let keys = ProjectKeys::builder(reference.clone(), secret.to_vec()).build().expect("test keys");
        Project::new(reference, self.db.clone(), keys, ProjectSettings::new("http://localhost"))
    }
}

/// An app driven in-process over a fresh database: the one harness of every crate's HTTP
/// tests. It holds the database, the project and the router (under the project's layer), and
/// sends requests with `tower::ServiceExt::oneshot`, as a client would send them.
///
/// ```no_run
/// # async fn demo() {
/// use forge_core::testing::{TestApp, test_db};
/// let db = test_db().await;
/// let project = db.project("test");
/// let app = TestApp::new(db, project, axum::Router::new());
/// let reply = app.send(app.request("GET", "/nowhere").body(axum::body::Body::empty()).unwrap()).await;
/// assert_eq!(reply.status, 404);
/// # }
/// ```
#[derive(Debug)]
pub struct TestApp {
    /// The test's database.
    pub db: TestDb,
    /// The project the app serves.
    pub project: Project,
    app: axum::Router,
}

/// What the app answered: status, headers and the whole body.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: http::StatusCode,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body's bytes.
    pub bytes: Vec<u8>,
    /// The body as text (lossy UTF-8), for assertions and their messages.
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        self.body.clone()
    }

    /// A header's value, if it is present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    /// `app` under `project`'s layer, over `db`.
    pub fn new(db: TestDb, project: Project, app: axum::Router) -> Self {
        let app = app.layer(crate::ProjectLayer::single(project.clone()));
        Self { db, project, app }
    }

    /// The project's anon key.
    pub fn anon_key(&self) -> String {
        self.project.keys().anon_key().to_owned()
    }

    /// The project's service-role key.
    pub fn service_key(&self) -> String {
        secrecy::ExposeSecret::expose_secret(self.project.keys().service_key()).to_owned()
    }

    /// An access token for `user` with the `authenticated` role, valid for an hour.
    pub fn user_token(&self, user: uuid::Uuid) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = serde_json::json!({
            "sub": user, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600
        });
        let Some(claims) = claims.as_object() else { unreachable!("a JSON object") };
        self.project.keys().sign(claims).expect("sign a user token")
    }

    /// The app, under the project's layer, for tests that drive it themselves (concurrently,
    /// say).
    pub fn router(&self) -> axum::Router {
        self.app.clone()
    }

    /// A request to `uri` with the anon key in `apikey`, as every Supabase client sends.
    pub fn request(&self, method: &str, uri: &str) -> http::request::Builder {
        http::Request::builder().method(method).uri(uri).header("apikey", self.anon_key())
    }

    /// Sends `req` and reads the whole answer.
    pub async fn send(&self, req: http::Request<axum::body::Body>) -> Reply {
        use tower::ServiceExt as _;
        let res = self.app.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("read the body").to_vec();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Reply { status, headers, bytes, body }
    }
}
