//! Configuration: `forge.toml` layered under `FORGE_*` environment variables (figment).
//!
//! The public contract:
//!
//! | variable | key | default |
//! |---|---|---|
//! | `FORGE_LISTEN` | `listen` | `127.0.0.1:8000` |
//! | `FORGE_DATABASE_URL` or `DATABASE_URL` | `database_url` | unset: the embedded Postgres |
//! | `FORGE_DATA_DIR` | `data_dir` | `./.forge` |
//! | `FORGE_JWT_SECRET` | `jwt_secret` | generated once, kept in the data dir |
//! | `FORGE_JWT_EXTRA_ROLES` | `jwt_extra_roles` | empty: tokens may name only `anon`, `authenticated` and `service_role` |
//! | `FORGE_JWT_SIGNING_ALGORITHM` | `jwt_signing_algorithm` | `ES256` (`RS256`; `HS256` signs sessions with the secret) |
//! | `FORGE_JWT_KEYS_DIR` | `jwt_keys_dir` | `<data_dir>/jwt_keys` (see [`crate::signing_keys`]) |
//! | `FORGE_STORAGE_PATH` | `storage_path` | `<data_dir>/storage` |
//! | `FORGE_S3_BUCKET` | `s3_bucket` | unset: files stay on the local disk; set: in this S3 bucket |
//! | `FORGE_S3_ENDPOINT` | `s3_endpoint` | unset: AWS; any S3-compatible server's URL |
//! | `FORGE_S3_REGION` | `s3_region` | `us-east-1` |
//! | `FORGE_S3_ACCESS_KEY_ID` / `FORGE_S3_SECRET_ACCESS_KEY` | `s3_access_key_id` / `s3_secret_access_key` | unset: the AWS environment (`AWS_*`) |
//! | `FORGE_PUBLIC_URL` | `public_url` | `http://<listen>` |
//! | `FORGE_LOG_FORMAT` | `log_format` | `text` (`json` for JSON lines) |
//! | `FORGE_BODY_LIMIT` | `body_limit` | `52428800` (50 MiB) |
//! | `FORGE_REQUEST_TIMEOUT` | `request_timeout` | `60` (seconds; not uploads into storage) |
//! | `FORGE_UPLOAD_TIMEOUT` | `upload_timeout` | `3600` (seconds an upload into storage may take) |
//! | `FORGE_HEADER_TIMEOUT` | `header_timeout` | `30` (seconds a connection may take to send a request's headers, counted from when it opens or its previous response ends: also the idle keep-alive timeout) |
//! | `FORGE_MAX_CONNECTIONS` | `max_connections` | `0`: the open-file limit less 256 (for Postgres, files and the listener); further connections wait in the listen backlog |
//! | `FORGE_CORS_ORIGINS` | `cors_origins` | empty: any origin |
//! | `FORGE_DB_SCHEMAS` | `db_schemas` | `public` (PostgREST's `db-schemas`: the schemas REST exposes, the first the default; `a,b` or a list) |
//! | `FORGE_DB_MAX_ROWS` | `db_max_rows` | unset: no cap (PostgREST's `db-max-rows`) |
//! | `FORGE_DB_EXTRA_SEARCH_PATH` | `db_extra_search_path` | `public,extensions` (PostgREST's `db-extra-search-path`) |
//! | `FORGE_PROJECT_REF` | `project_ref` | `default` |
//! | `FORGE_POSTGRES_BIN` | `postgres_bin` | found on `PATH` or under `/usr/lib/postgresql/*/bin` |
//! | `FORGE_REST_EXPLAIN` | `rest_explain` | `false` (`.explain()` answers 406) |
//! | `FORGE_SMTP_HOST` | `smtp_host` | unset: mail is kept in the local outbox |
//! | `FORGE_SMTP_PORT` | `smtp_port` | `587` |
//! | `FORGE_SMTP_USER` / `FORGE_SMTP_PASS` | `smtp_user` / `smtp_pass` | unset |
//! | `FORGE_SMTP_FROM` | `smtp_from` | `Forge <noreply@localhost>` |
//! | `FORGE_SMTP_TLS` | `smtp_tls` | `true` (STARTTLS, or TLS on port 465) |
//! | `FORGE_AUTH_<KEY>` | `[auth] <key>` | see `forge_auth::AuthConfig`; `__` nests (`FORGE_AUTH_RATE_LIMITS__OTP_PER_5MIN`) |
//! | `FORGE_REALTIME_<KEY>` | `[realtime] <key>` | see `forge_realtime::RealtimeConfig` (`FORGE_REALTIME_MAX_CONNECTIONS`, ...) |
//! | `FORGE_MASTER_KEY` | `master_key` | generated once into `<data_dir>/master_key`: seals the project secrets the control plane stores (32 bytes, base64url) |
//! | `FORGE_BASE_DOMAIN` | `base_domain` | unset: projects answer at `/p/<ref>` only; set: also at `<ref>.<base_domain>` |
//! | `FORGE_PLATFORM_DATABASE` | `platform_database` | `forge_platform` on the embedded cluster, else `<database>_platform`: the control plane's database, on the same cluster |
//! | `FORGE_PROJECT_POOL_SIZE` | `project_pool_size` | `2`: the most connections one project other than the default may hold: one for the services' own work (two from a pool of 4 on), the rest for REST, which also hears schema reloads on them |
//! | `FORGE_PROJECT_CONNECTION_BUDGET` | `project_connection_budget` | `100`: the most connections all projects other than the default hold together; idle ones are closed to make room |
//! | `FORGE_PROJECT_IDLE_TIMEOUT` | `project_idle_timeout` | `300` (seconds a project's pools stay open unused) |
//! | `FORGE_USAGE_METERING` | `usage_metering` | `true` (`false`: no request is counted; for measuring what metering costs) |
//! | `FORGE_USAGE_FLUSH_INTERVAL` | `usage_flush_interval` | `10` (seconds between writes of the usage counted in memory; a graceful stop writes the rest) |
//! | `FORGE_METRICS_TOKEN` | `metrics_token` | unset: no `/metrics` on the API's address; set: `GET /metrics` with `Authorization: Bearer <token>` |
//! | `FORGE_METRICS_LISTEN` | `metrics_listen` | unset; set: `GET /metrics` on this address of its own (with the token too, if one is set) |
//! | `FORGE_CLUSTERS` | `[[clusters]]` | none: projects go to the default project's cluster; each `{ id, url, gateway_url }` is another Postgres cluster new projects may be placed on (the least loaded is chosen) |
//! | `FORGE_BUS` | `bus` | `local`: realtime reaches this process's sockets only; `postgres` (LISTEN/NOTIFY on the project database) or a `nats://` URL to share it between nodes |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The keys `FORGE_*` variables may set (other `FORGE_*` variables are not configuration).
const KEYS: &[&str] = &[
    "listen",
    "database_url",
    "data_dir",
    "jwt_secret",
    "jwt_extra_roles",
    "jwt_signing_algorithm",
    "jwt_keys_dir",
    "storage_path",
    "s3_bucket",
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "public_url",
    "log_format",
    "body_limit",
    "request_timeout",
    "upload_timeout",
    "header_timeout",
    "max_connections",
    "cors_origins",
    "db_schemas",
    "db_max_rows",
    "db_extra_search_path",
    "project_ref",
    "postgres_bin",
    "rest_explain",
    "smtp_host",
    "smtp_port",
    "smtp_user",
    "smtp_pass",
    "smtp_from",
    "smtp_tls",
    "bus",
    "master_key",
    "base_domain",
    "platform_database",
    "project_pool_size",
    "project_connection_budget",
    "project_idle_timeout",
    "usage_flush_interval",
    "usage_metering",
    "metrics_token",
    "metrics_listen",
    "clusters",
];

/// The server's configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// An existing Postgres to use instead of the embedded one.
    #[serde(serialize_with = "skip_secret")]
    pub database_url: Option<SecretString>,
    /// Where Forge keeps its state (embedded cluster, generated secret, files).
    pub data_dir: PathBuf,
    /// The project's JWT secret (at least 32 bytes).
    #[serde(serialize_with = "skip_secret")]
    pub jwt_secret: Option<SecretString>,
    /// Database roles a token's `role` claim may name besides `anon`, `authenticated` and
    /// `service_role`; tokens naming any other role are refused by every service.
    pub jwt_extra_roles: Vec<String>,
    /// How user sessions are signed: with an asymmetric key published at
    /// `/auth/v1/.well-known/jwks.json` (ES256 or RS256), or with the HS256 secret.
    pub jwt_signing_algorithm: SigningAlgorithm,
    /// Where the signing keys are kept (default `<data_dir>/jwt_keys`).
    pub jwt_keys_dir: Option<PathBuf>,
    /// Where uploaded files are kept.
    pub storage_path: Option<PathBuf>,
    /// The S3 bucket files go to (unset: the local disk at `storage_path`).
    pub s3_bucket: Option<String>,
    /// An S3-compatible server's URL (unset: AWS).
    pub s3_endpoint: Option<String>,
    /// The S3 region.
    pub s3_region: String,
    /// The S3 access key id (unset: from the AWS environment).
    pub s3_access_key_id: Option<String>,
    /// The S3 secret key.
    #[serde(serialize_with = "skip_secret")]
    pub s3_secret_access_key: Option<SecretString>,
    /// The URL clients use to reach this server.
    pub public_url: Option<String>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// The largest request body accepted, in bytes.
    pub body_limit: u64,
    /// The longest a request may take, in seconds.
    pub request_timeout: u64,
    /// The longest an upload into storage may take, in seconds (its body is also cut off
    /// after 30 s without a byte).
    pub upload_timeout: u64,
    /// The longest a connection may take to send a request's headers, in seconds, counted
    /// from when it opens or its previous response ends (so also how long an idle keep-alive
    /// connection stays open).
    pub header_timeout: u64,
    /// The most connections served at once (0: the open-file limit less 256); more wait in
    /// the listen backlog until one closes.
    pub max_connections: usize,
    /// Origins allowed by CORS; empty allows any origin.
    pub cors_origins: Vec<String>,
    /// The schemas the REST API exposes (`Accept-Profile`/`Content-Profile`), the first being
    /// the default.
    #[serde(deserialize_with = "schema_list")]
    pub db_schemas: Vec<String>,
    /// The most rows a REST read or RPC call returns; unset is no cap.
    pub db_max_rows: Option<u64>,
    /// Schemas searched after the request's own.
    #[serde(deserialize_with = "schema_list")]
    pub db_extra_search_path: Vec<String>,
    /// The default project's ref.
    pub project_ref: String,
    /// Where the Postgres server binaries are (default: found on PATH or under
    /// /usr/lib/postgresql/*/bin).
    pub postgres_bin: Option<PathBuf>,
    /// Whether `.explain()` may show query plans (off: plans reveal the schema to any caller).
    pub rest_explain: bool,
    /// The SMTP server for auth mail; unset keeps mail in the local outbox.
    pub smtp_host: Option<String>,
    /// The SMTP port.
    pub smtp_port: u16,
    /// The SMTP user name.
    pub smtp_user: Option<String>,
    /// The SMTP password.
    #[serde(serialize_with = "skip_secret")]
    pub smtp_pass: Option<SecretString>,
    /// The sender of auth mail.
    pub smtp_from: String,
    /// Whether to use TLS with the SMTP server.
    pub smtp_tls: bool,
    /// The auth service's settings.
    pub auth: forge_auth::AuthConfig,
    /// The realtime service's settings.
    pub realtime: forge_realtime::RealtimeConfig,
    /// How realtime reaches other nodes: `local`, `postgres` or a `nats://` URL.
    pub bus: String,
    /// The master key (32 bytes, base64url) that seals the project secrets the control plane
    /// stores; unset: generated once into the data dir.
    #[serde(serialize_with = "skip_secret")]
    pub master_key: Option<SecretString>,
    /// The domain under which `<ref>.<base_domain>` names a project.
    pub base_domain: Option<String>,
    /// The control plane's database (on the default project's cluster).
    pub platform_database: Option<String>,
    /// The most connections one project (other than the default) may hold.
    pub project_pool_size: usize,
    /// The most connections all projects (other than the default) hold together.
    pub project_connection_budget: usize,
    /// Seconds a project's pools stay open unused.
    pub project_idle_timeout: u64,
    /// Seconds between writes of the usage counted in memory.
    pub usage_flush_interval: u64,
    /// Whether requests are metered.
    pub usage_metering: bool,
    /// The bearer token `GET /metrics` needs on the API's address (unset: not served there).
    #[serde(serialize_with = "skip_secret")]
    pub metrics_token: Option<SecretString>,
    /// An address of its own for `GET /metrics`.
    pub metrics_listen: Option<SocketAddr>,
    /// More Postgres clusters that project databases may be placed on.
    pub clusters: Vec<ClusterSetting>,
}

/// A Postgres cluster the platform may place project databases on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSetting {
    /// Its id (lower-case letters, digits and `-`).
    pub id: String,
    /// An admin URL: a role that may create and drop databases.
    #[serde(serialize_with = "redact")]
    pub url: SecretString,
    /// The URL the RLS gateway connects with (`authenticator`); unset: `url`.
    #[serde(default, serialize_with = "skip_secret")]
    pub gateway_url: Option<SecretString>,
}

fn redact<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

fn skip_secret<S: serde::Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("<redacted>"),
        None => s.serialize_none(),
    }
}

/// How user sessions are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum SigningAlgorithm {
    /// ECDSA P-256 keys from the keys directory (Supabase's default for signing keys).
    #[default]
    #[serde(rename = "ES256", alias = "es256")]
    Es256,
    /// RSA keys from the keys directory.
    #[serde(rename = "RS256", alias = "rs256")]
    Rs256,
    /// The shared secret, as Supabase's legacy JWT secret (nothing is published).
    #[serde(rename = "HS256", alias = "hs256")]
    Hs256,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: None,
            data_dir: PathBuf::from(".forge"),
            jwt_secret: None,
            jwt_extra_roles: Vec::new(),
            jwt_signing_algorithm: SigningAlgorithm::Es256,
            jwt_keys_dir: None,
            storage_path: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            public_url: None,
            log_format: LogFormat::Text,
            body_limit: 50 * 1024 * 1024,
            request_timeout: 60,
            upload_timeout: 3600,
            header_timeout: 30,
            max_connections: 0,
            cors_origins: Vec::new(),
            db_schemas: vec!["public".into()],
            db_max_rows: None,
            db_extra_search_path: vec!["public".into(), "extensions".into()],
            project_ref: "default".into(),
            postgres_bin: None,
            rest_explain: false,
            smtp_host: None,
            smtp_port: 587,
            smtp_user: None,
            smtp_pass: None,
            smtp_from: "Forge <noreply@localhost>".into(),
            smtp_tls: true,
            auth: forge_auth::AuthConfig::default(),
            realtime: forge_realtime::RealtimeConfig::default(),
            bus: "local".into(),
            master_key: None,
            base_domain: None,
            platform_database: None,
            project_pool_size: 2,
            project_connection_budget: 100,
            project_idle_timeout: 300,
            usage_flush_interval: 10,
            usage_metering: true,
            metrics_token: None,
            metrics_listen: None,
            clusters: Vec::new(),
        }
    }
}

/// A list of schema names, as PostgREST takes it (`public, api`) or as a list.
fn schema_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        Joined(String),
        List(Vec<String>),
    }
    let names = match Names::deserialize(deserializer)? {
        Names::Joined(joined) => joined.split(',').map(str::to_owned).collect(),
        Names::List(list) => list,
    };
    Ok(names.into_iter().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect())
}

/// A configuration error, with the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then the config file, then `DATABASE_URL`, then `FORGE_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError(format!("config file {} not found", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("forge.toml").is_file() => figment = figment.merge(Toml::file_exact("forge.toml")),
            None => {}
        }
        let figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database_url".into()))
            .merge(Env::prefixed("FORGE_").only(KEYS))
            .merge(Env::prefixed("FORGE_AUTH_").map(|k| format!("auth.{}", k.as_str().replace("__", ".")).into()))
            .merge(Env::prefixed("FORGE_REALTIME_").map(|k| format!("realtime.{}", k.as_str()).into()));
        let mut config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        // Treat empty strings from the environment as unset.
        if config.database_url.as_ref().is_some_and(|u| secrecy::ExposeSecret::expose_secret(u).is_empty()) {
            config.database_url = None;
        }
        if config.jwt_secret.as_ref().is_some_and(|s| secrecy::ExposeSecret::expose_secret(s).is_empty()) {
            config.jwt_secret = None;
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        forge_core::ProjectRef::new(&self.project_ref).map_err(|e| ConfigError(format!("project_ref: {e}")))?;
        if self.request_timeout == 0 {
            return Err(ConfigError("request_timeout must be at least 1 second".into()));
        }
        if !(self.bus == "local" || self.bus == "postgres" || self.bus.starts_with("nats://")) {
            return Err(ConfigError(format!("bus: {:?} is not local, postgres or a nats:// URL", self.bus)));
        }
        if self.upload_timeout < self.request_timeout {
            return Err(ConfigError("upload_timeout must be at least request_timeout".into()));
        }
        if self.body_limit == 0 {
            return Err(ConfigError("body_limit must be positive".into()));
        }
        if self.db_schemas.is_empty() {
            return Err(ConfigError("db_schemas must name at least one schema".into()));
        }
        if self.db_max_rows == Some(0) {
            return Err(ConfigError("db_max_rows must be positive (unset: no cap)".into()));
        }
        if self.header_timeout == 0 {
            return Err(ConfigError("header_timeout must be at least 1 second".into()));
        }
        if self.project_pool_size < 2 {
            return Err(ConfigError(
                "project_pool_size must be at least 2 (one for the services, one for REST)".into(),
            ));
        }
        if self.project_connection_budget < self.project_pool_size {
            return Err(ConfigError("project_connection_budget must be at least project_pool_size".into()));
        }
        let mut ids = std::collections::HashSet::from(["default"]);
        for c in &self.clusters {
            let valid = !c.id.is_empty()
                && c.id.len() <= 40
                && c.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !c.id.starts_with('-');
            if !valid {
                return Err(ConfigError(format!("clusters: {:?} is not an id (lower-case letters, digits, -)", c.id)));
            }
            if !ids.insert(c.id.as_str()) {
                return Err(ConfigError(format!("clusters: the id {:?} is used twice (or is `default`)", c.id)));
            }
        }
        self.auth.validate().map_err(|e| ConfigError(e.to_string()))?;
        Ok(())
    }

    /// The connections the embedded cluster must allow: the projects' budget, the default
    /// project's and the platform's pools, realtime's own connections, and room for the
    /// command line and an operator.
    pub fn postgres_connections(&self) -> usize {
        self.project_connection_budget + 100
    }

    /// The SMTP settings, when a server is configured.
    pub fn smtp(&self) -> Option<forge_auth::SmtpSettings> {
        let host = self.smtp_host.clone().filter(|h| !h.is_empty())?;
        let mut smtp =
            forge_auth::SmtpSettings::new(host, &self.smtp_from).with_port(self.smtp_port).with_tls(self.smtp_tls);
        // A user without a password (or the reverse) is no authentication, as before.
        if let (Some(user), Some(password)) = (&self.smtp_user, &self.smtp_pass) {
            smtp = smtp.with_credentials(user, password.clone());
        }
        Some(smtp)
    }

    /// The most connections served at once: `max_connections`, or the open-file limit less
    /// 256 (at least 64).
    pub fn connection_limit(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        // The soft limit on open files, as the kernel reports it (1024 where it cannot be read).
        let files = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
                line.trim_start_matches("Max open files").split_whitespace().next()?.parse::<usize>().ok()
            })
            .unwrap_or(1024);
        files.saturating_sub(256).max(64)
    }

    /// Where uploaded files go.
    pub fn storage_path(&self) -> PathBuf {
        self.storage_path.clone().unwrap_or_else(|| self.data_dir.join("storage"))
    }

    /// Where uploaded files' bytes go: the S3 bucket when one is configured, else the local
    /// disk at [`Config::storage_path`] (created if missing).
    pub fn object_store(&self) -> Result<std::sync::Arc<dyn object_store::ObjectStore>, ConfigError> {
        let Some(bucket) = self.s3_bucket.clone().filter(|b| !b.is_empty()) else {
            let path = self.storage_path();
            crate::private::secure_dir(&path)
                .map_err(|e| ConfigError(format!("storage_path {}: {e}", path.display())))?;
            // Files are synced to disk before the row that names them commits, so a crash
            // cannot leave a visible object without its bytes. Directories left empty by
            // deletes (a finished resumable upload's parts) go too.
            let disk = object_store::local::LocalFileSystem::new_with_prefix(&path)
                .map_err(|e| ConfigError(format!("storage_path {}: {e}", path.display())))?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            return Ok(std::sync::Arc::new(disk));
        };
        let mut s3 =
            object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).with_region(&self.s3_region);
        if let Some(endpoint) = self.s3_endpoint.as_deref().filter(|e| !e.is_empty()) {
            s3 = s3.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(id) = &self.s3_access_key_id {
            s3 = s3.with_access_key_id(id);
        }
        if let Some(secret) = &self.s3_secret_access_key {
            s3 = s3.with_secret_access_key(secrecy::ExposeSecret::expose_secret(secret));
        }
        let s3 = s3.build().map_err(|e| ConfigError(format!("s3: {e}")))?;
        Ok(std::sync::Arc::new(s3))
    }

    /// The URL clients use, for a server bound to `bound`.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment's own error type
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        figment::Jail::expect_with(|_jail| {
            let c = Config::load(None).expect("defaults");
            assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
            assert!(c.database_url.is_none());
            assert_eq!(c.data_dir, PathBuf::from(".forge"));
            assert_eq!(c.storage_path(), PathBuf::from(".forge/storage"));
            Ok(())
        });
    }

    #[test]
    fn auth_settings_come_from_the_auth_table_and_forge_auth_variables() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("forge.toml", "[auth]\nmailer_autoconfirm = false\njwt_exp = 600\n")?;
            jail.set_env("FORGE_AUTH_SITE_URL", "https://app.example.com");
            jail.set_env("FORGE_AUTH_RATE_LIMITS__OTP_PER_5MIN", "1000");
            jail.set_env("FORGE_SMTP_HOST", "127.0.0.1");
            jail.set_env("FORGE_SMTP_PORT", "2525");
            jail.set_env("FORGE_SMTP_TLS", "false");
            let c = Config::load(None).expect("auth settings");
            assert!(!c.auth.mailer_autoconfirm);
            assert_eq!(c.auth.jwt_exp, 600);
            assert_eq!(c.auth.site_url.as_deref(), Some("https://app.example.com"));
            assert_eq!(c.auth.rate_limits.otp_per_5min, 1000);
            assert_eq!(c.auth.rate_limits.token_per_5min, 150, "other limits keep their defaults");
            assert!(c.jwt_extra_roles.is_empty(), "only the API roles by default");
            assert_eq!((c.jwt_signing_algorithm, c.jwt_keys_dir.as_deref()), (SigningAlgorithm::Es256, None));
            jail.set_env("FORGE_JWT_SIGNING_ALGORITHM", "RS256");
            jail.set_env("FORGE_JWT_KEYS_DIR", "/srv/keys");
            let k = Config::load(None).expect("signing");
            assert_eq!(
                (k.jwt_signing_algorithm, k.jwt_keys_dir),
                (SigningAlgorithm::Rs256, Some(PathBuf::from("/srv/keys")))
            );
            jail.set_env("FORGE_JWT_SIGNING_ALGORITHM", "none");
            assert!(Config::load(None).is_err(), "only ES256, RS256 and HS256");
            jail.set_env("FORGE_JWT_SIGNING_ALGORITHM", "HS256");
            jail.set_env("FORGE_JWT_EXTRA_ROLES", "[\"editor\", \"auditor\"]");
            assert_eq!(Config::load(None).expect("roles").jwt_extra_roles, ["editor", "auditor"]);
            assert!(!c.auth.manual_linking_enabled, "manual linking is off by default, as in GoTrue");
            jail.set_env("FORGE_AUTH_MANUAL_LINKING_ENABLED", "true");
            assert!(Config::load(None).expect("linking").auth.manual_linking_enabled);
            let smtp = c.smtp().expect("smtp");
            assert_eq!((smtp.host.as_str(), smtp.port, smtp.tls), ("127.0.0.1", 2525, false));
            jail.set_env("FORGE_AUTH_JWT_EXP", "60");
            let err = Config::load(None).expect_err("too short");
            assert!(err.to_string().contains("jwt_exp"), "{err}");
            jail.set_env("FORGE_AUTH_JWT_EXP", "600");
            jail.set_env("FORGE_AUTH_NO_SUCH_SETTING", "1");
            assert!(Config::load(None).is_err(), "unknown auth settings are refused");
            Ok(())
        });
    }

    #[test]
    fn file_then_database_url_then_forge_variables() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "forge.toml",
                "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/forge\"\nrequest_timeout = 5\n",
            )?;
            jail.set_env("DATABASE_URL", "postgres://a@h/db");
            let c = Config::load(None).expect("file");
            assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
            assert_eq!(c.data_dir, PathBuf::from("/srv/forge"));
            assert_eq!(c.request_timeout, 5);
            assert_eq!(
                c.database_url.as_ref().map(|u| secrecy::ExposeSecret::expose_secret(u).to_owned()).as_deref(),
                Some("postgres://a@h/db")
            );
            jail.set_env("FORGE_DATABASE_URL", "postgres://b@h/db");
            jail.set_env("FORGE_LISTEN", "127.0.0.1:0");
            jail.set_env("FORGE_LOG_FORMAT", "json");
            jail.set_env("FORGE_UNRELATED_TOOL_SETTING", "ignored");
            let c = Config::load(None).expect("env");
            assert_eq!(
                c.database_url.as_ref().map(|u| secrecy::ExposeSecret::expose_secret(u).to_owned()).as_deref(),
                Some("postgres://b@h/db")
            );
            assert_eq!(c.listen.port(), 0);
            assert_eq!(c.log_format, LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_clear_errors() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FORGE_LISTEN", "not-an-address");
            let err = Config::load(None).expect_err("bad listen").to_string();
            assert!(err.to_lowercase().contains("listen"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("forge.toml", "lisen = \"127.0.0.1:1\"\n")?;
            let err = Config::load(None).expect_err("typo").to_string();
            assert!(err.contains("lisen"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("FORGE_PROJECT_REF", "Not A Ref");
            assert!(Config::load(None).is_err());
            Ok(())
        });
        let missing = Config::load(Some(Path::new("/no/such/forge.toml"))).expect_err("missing file");
        assert!(missing.to_string().contains("not found"));
    }

    #[test]
    fn rest_settings_take_postgrest_style_lists() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).expect("defaults");
            assert_eq!((c.db_schemas.as_slice(), c.db_max_rows), (["public".to_owned()].as_slice(), None));
            assert_eq!(c.db_extra_search_path, ["public", "extensions"]);
            jail.set_env("FORGE_DB_SCHEMAS", "public, api");
            jail.set_env("FORGE_DB_MAX_ROWS", "1000");
            jail.set_env("FORGE_DB_EXTRA_SEARCH_PATH", "[\"public\", \"extensions\", \"tools\"]");
            let c = Config::load(None).expect("REST settings");
            assert_eq!(c.db_schemas, ["public", "api"]);
            assert_eq!(c.db_max_rows, Some(1000));
            assert_eq!(c.db_extra_search_path, ["public", "extensions", "tools"]);
            jail.set_env("FORGE_DB_MAX_ROWS", "0");
            assert!(Config::load(None).is_err(), "a cap of 0 rows");
            jail.set_env("FORGE_DB_MAX_ROWS", "5");
            jail.set_env("FORGE_DB_SCHEMAS", " , ");
            assert!(Config::load(None).is_err(), "no schema");
            Ok(())
        });
    }

    #[test]
    fn files_go_to_s3_when_a_bucket_is_configured() {
        let dir = std::env::temp_dir().join(format!("forge-config-{}", std::process::id()));
        let disk = Config { storage_path: Some(dir.clone()), ..Config::default() };
        assert!(disk.object_store().expect("disk").to_string().contains("LocalFileSystem"));
        assert!(dir.is_dir(), "the storage directory is created");
        let s3 = Config {
            s3_bucket: Some("uploads".into()),
            s3_endpoint: Some("http://127.0.0.1:9000".into()),
            s3_access_key_id: Some("id".into()),
            s3_secret_access_key: Some("very secret".into()),
            ..Config::default()
        };
        let store = s3.object_store().expect("s3").to_string();
        assert!(store.contains("uploads"), "{store}");
        assert!(!format!("{s3:?}").contains("very secret"), "Debug hides the secret key");
        std::fs::remove_dir_all(dir).ok();
    }
}
