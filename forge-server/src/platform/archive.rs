//! A project as one archive file, and back: `forge-server projects export` and `import`.
//!
//! An archive is a tar file (gzip-compressed when its name ends in `.gz` or `.tgz`) of, in
//! this order:
//!
//! | entry | what it holds |
//! |---|---|
//! | `manifest.json` | [`Manifest`]: the format and its version, the project (ref, name, organization, region, created_at), the Forge version, and the size and SHA-256 of the database dump and of every object |
//! | `database.pgdump` | the project's whole database, `pg_dump --format=custom` |
//! | `objects/<path>` | every stored object under the project's prefix (`<ref>/<path>`), byte for byte |
//!
//! **The database.** The dump is of the whole database: the user's schemas, `auth`, `storage`,
//! `realtime`, and Forge's own `forge` schema with its migrations ledger, grants, default
//! privileges, RLS policies, publications and event triggers. An import restores it into an
//! *empty* database (created from `template0`), not into a clone of the project template:
//! restoring over the template's objects fails (`--clean` cannot drop the inherited keys of
//! realtime's partitions; a `--data-only` restore collides with the template's migrations
//! ledger and cannot order storage's circular foreign keys), and a project's schema is more than
//! its data anyway: policies on `storage.objects`, triggers on `auth.users`, tables added to
//! `supabase_realtime`. Restored into an empty database, the dump gives exactly the source's
//! schema and rows, the ledger included; then this build's migrations run on it, which do
//! nothing for an archive of the same Forge, bring an older one's database up to date, and
//! refuse one from a newer Forge (its ledger names migrations this build does not know).
//! Owners are not restored (`--no-owner`): everything belongs to the cluster's admin role, as
//! every project's objects do; privileges are. The restore is one transaction that stops at
//! the first error.
//!
//! **Objects** are streamed, never held whole in memory: an export hashes every object, then
//! writes each one into the archive while hashing it again (an object changed in between fails
//! the export); an import first reads the whole archive through, checking every size and
//! SHA-256 against the manifest, and only then makes the project, restores its database and
//! writes the objects under the new ref's prefix, checking them again as they pass. An import
//! that fails after the project was made deletes it: nothing half-imported is left.
//!
//! **What is not carried:** the project's keys, signing keys and secrets (an import is a new
//! project with new ones), its ref, and its members (projects belong to organizations). Rows
//! the old keys made stay valid data: users sign in on the imported project with their
//! passwords.
//!
//! `pg_dump` and `pg_restore` run as child processes, found beside the embedded cluster's
//! `postgres` (else on `PATH`, else the newest `/usr/lib/postgresql/*/bin`). The database URL
//! is given as `--dbname` without its password; a password goes through `PGPASSWORD`, never on
//! the command line where `ps` shows it.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::digest;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;
use time::format_description::well_known::Rfc3339;

use crate::platform::cluster::{Cluster, with_database};
use crate::platform::error::{Error, Result};
use crate::platform::store::{Actor, Organization, ProjectRow, Status};
use crate::platform::{DEFAULT_ORGANIZATION, Platform};

/// The `format` every archive's manifest names.
pub const FORMAT: &str = "forge-project-archive";
/// The version of the archive layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MANIFEST_ENTRY: &str = "manifest.json";
const DATABASE_ENTRY: &str = "database.pgdump";
const OBJECTS_DIR: &str = "objects/";
/// A manifest larger than this is refused rather than parsed.
const MANIFEST_LIMIT: u64 = 512 * 1024 * 1024;
/// How much of an object passes through memory at once on import.
const CHUNK: usize = 1024 * 1024;

/// What an archive says it holds: its first entry, `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The layout's version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The Forge version that wrote it.
    pub forge_version: String,
    /// When it was written (RFC 3339).
    pub exported_at: String,
    /// The project it was made from.
    pub project: ManifestProject,
    /// The database dump.
    pub database: ManifestDatabase,
    /// Every object, in the order of the archive.
    pub objects: Vec<ManifestObject>,
}

/// The exported project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestProject {
    /// Its ref.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Its name.
    pub name: String,
    /// Its organization's slug.
    pub organization: String,
    /// Its region.
    pub region: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

/// The database dump's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDatabase {
    /// `pg_dump --format=custom`.
    pub format: String,
    /// The `pg_dump --version` that made it.
    pub pg_dump: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// Its path under the project's prefix (`<ref>/<path>` in the object store).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

impl Manifest {
    /// Checks what an import relies on: the format, its version, the digests' shape and
    /// object paths that are plain relative paths, each once.
    fn check(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(Error::invalid("This file is not a Forge project archive"));
        }
        if self.version != FORMAT_VERSION {
            return Err(Error::invalid(format!(
                "This archive's format version is {}; this Forge reads version {FORMAT_VERSION}",
                self.version
            )));
        }
        let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex(&self.database.sha256) {
            return Err(damaged("the manifest's database digest is malformed"));
        }
        let mut seen = std::collections::HashSet::new();
        for object in &self.objects {
            let parsed = ObjectPath::parse(&object.path).ok();
            if parsed.as_ref().map(|p| p.as_ref()) != Some(object.path.as_str()) || object.path.is_empty() {
                return Err(damaged(format!("the manifest names an invalid object path {:?}", object.path)));
            }
            if !hex(&object.sha256) {
                return Err(damaged(format!("the manifest's digest of {:?} is malformed", object.path)));
            }
            if !seen.insert(object.path.as_str()) {
                return Err(damaged(format!("the manifest names {:?} twice", object.path)));
            }
        }
        Ok(())
    }
}

/// Whether an archive at this path is gzip-compressed on export: names ending in `.gz` or
/// `.tgz`. (An import looks at the file's first bytes instead.)
pub fn gzip_for(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz") || e.eq_ignore_ascii_case("tgz"))
}

impl Platform {
    /// Writes the project to one archive at `output` (replaced only once the archive is
    /// complete): its database and every stored object. The project keeps running.
    #[tracing::instrument(skip_all, fields(project = %row.reference))]
    pub async fn export_project(&self, row: &ProjectRow, output: &Path, actor: &Actor) -> Result<Manifest> {
        let (cluster, database) = self.placed(row)?;
        if !matches!(row.status(), Status::Active | Status::Paused) {
            return Err(Error::conflict("Only an active or paused project can be exported"));
        }
        let dir = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let staging = tempfile::Builder::new()
            .prefix(".forge-export-")
            .tempdir_in(&dir)
            .map_err(|e| Error::invalid(format!("Cannot write beside {}: {e}", output.display())))?;

        // The database first: an object uploaded while the dump runs is then in the archive
        // too (if unnamed by the dump's rows, storage's sweep removes it later), while the
        // other order could miss an object a dumped row names.
        let dump = staging.path().join(DATABASE_ENTRY);
        let url = SecretString::from(with_database(cluster.url().expose_secret(), &database)?);
        let pg_dump = PgTool::find("pg_dump")?;
        pg_dump.run(&url, &["--format=custom", "--no-password", "--lock-wait-timeout=60000", "--file"], &dump).await?;
        let (size, sha256) = tokio::task::spawn_blocking({
            let dump = dump.clone();
            move || hash_reader(File::open(dump)?)
        })
        .await
        .map_err(Error::internal)?
        .map_err(|e| Error::internal(format!("reading the database dump: {e}")))?;
        let database_entry =
            ManifestDatabase { format: "pg_dump custom".into(), pg_dump: pg_dump.version().await?, size, sha256 };

        // The objects, hashed once here and again as they are written.
        let prefix = format!("{}/", row.reference);
        let mut objects = Vec::new();
        if let Some(store) = &self.0.objects {
            let mut listed = store.list(Some(&ObjectPath::from(row.reference.as_str())));
            while let Some(meta) = listed.next().await {
                let meta = meta.map_err(|e| Error::internal(format!("listing the project's files: {e}")))?;
                let Some(path) = meta.location.as_ref().strip_prefix(&prefix) else { continue };
                let (size, sha256) = hash_object(store.as_ref(), &meta.location).await?;
                objects.push(ManifestObject { path: path.to_owned(), size, sha256 });
            }
        }
        objects.sort_by(|a, b| a.path.cmp(&b.path));

        let manifest = Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            forge_version: env!("CARGO_PKG_VERSION").into(),
            exported_at: time::OffsetDateTime::now_utc().format(&Rfc3339).map_err(Error::internal)?,
            project: ManifestProject {
                reference: row.reference.clone(),
                name: row.name.clone(),
                organization: row.organization_slug.clone(),
                region: row.region.clone(),
                created_at: row.created_at.format(&Rfc3339).map_err(Error::internal)?,
            },
            database: database_entry,
            objects,
        };

        let written = staging.path().join("archive");
        tokio::task::spawn_blocking({
            let (manifest, written, dump) = (manifest.clone(), written.clone(), dump.clone());
            let store = self.0.objects.clone();
            let handle = tokio::runtime::Handle::current();
            let gzip = gzip_for(output);
            move || write_archive(&written, gzip, &manifest, &dump, store, &prefix, &handle)
        })
        .await
        .map_err(Error::internal)??;
        std::fs::rename(&written, output)
            .map_err(|e| Error::invalid(format!("Cannot write {}: {e}", output.display())))?;

        let bytes: u64 = manifest.objects.iter().map(|o| o.size).sum();
        let store = &self.0.store;
        store
            .audit(
                store.pool(),
                actor,
                "project.export",
                Some(row.organization_id),
                Some(&row.reference),
                serde_json::json!({
                    "objects": manifest.objects.len(),
                    "object_bytes": bytes,
                    "database_bytes": manifest.database.size,
                }),
            )
            .await?;
        tracing::info!(objects = manifest.objects.len(), "exported a project");
        Ok(manifest)
    }

    /// Makes a new project (new ref, new keys) from an archive [`export_project`] wrote, in
    /// `organization` (default: the archive's, if it is here, else `default`), named `name`
    /// (default: the archive's). The archive is checked whole before anything is made; an
    /// import that fails later deletes the project it made.
    ///
    /// [`export_project`]: Platform::export_project
    #[tracing::instrument(skip_all)]
    pub async fn import_project(
        &self,
        archive: &Path,
        organization: Option<&str>,
        name: Option<&str>,
        actor: &Actor,
    ) -> Result<ProjectRow> {
        let store = &self.0.store;
        let chosen = match organization {
            Some(slug) => Some(store.organization(slug).await?.ok_or_else(|| Error::not_found("Organization"))?),
            None => None,
        };
        let staging = tempfile::Builder::new()
            .prefix("forge-import-")
            .tempdir()
            .map_err(|e| Error::internal(format!("a staging directory: {e}")))?;
        let dump = staging.path().join(DATABASE_ENTRY);

        // Every byte checked before anything is made.
        let manifest = tokio::task::spawn_blocking({
            let (archive, dump) = (archive.to_path_buf(), dump.clone());
            move || read_archive(&archive, Some(&dump), |_, data| io::copy(data, &mut io::sink()).map(drop))
        })
        .await
        .map_err(Error::internal)??;
        if !manifest.objects.is_empty() && self.0.objects.is_none() {
            return Err(Error::invalid("The archive holds stored objects, and this server keeps none"));
        }
        let org = match chosen {
            Some(org) => org,
            None => match store.organization(&manifest.project.organization).await? {
                Some(org) => org,
                None => {
                    store.organization(DEFAULT_ORGANIZATION).await?.ok_or_else(|| Error::not_found("Organization"))?
                }
            },
        };
        let name = name.unwrap_or(&manifest.project.name);

        let row = self.create_project(&org, name, &manifest.project.region, actor).await?;
        match self.fill(&row, archive, &dump, &manifest, &org, actor).await {
            Ok(()) => {
                tracing::info!(project = %row.reference, from = %manifest.project.reference, "imported a project");
                store.project(&row.reference).await?.ok_or_else(|| Error::internal("the imported project vanished"))
            }
            Err(e) => {
                tracing::error!(project = %row.reference, error = %e, "importing failed; deleting the new project");
                if let Err(d) = self.delete_project(&row, actor).await {
                    tracing::error!(project = %row.reference, error = %d, "deleting the half-imported project failed");
                }
                Err(e)
            }
        }
    }

    /// Gives the new project `row` the archive's database and objects, then serves it.
    async fn fill(
        &self,
        row: &ProjectRow,
        archive: &Path,
        dump: &Path,
        manifest: &Manifest,
        org: &Organization,
        actor: &Actor,
    ) -> Result<()> {
        let (cluster, database) = self.placed(row)?;
        let store = &self.0.store;
        // Not served while it is filled (requests answer 404, as for a project coming up).
        store.set_status(store.pool(), &row.reference, Status::ComingUp).await?;
        self.0.registry.forget(&row.reference).await;
        if let Some(realtime) = &self.0.realtime {
            realtime.stop_project(&row.reference).await;
        }

        // The template's clone gives way to an empty database the dump fills.
        cluster.drop_database(&database).await?;
        create_empty(&cluster, &database).await?;
        let url = SecretString::from(with_database(cluster.url().expose_secret(), &database)?);
        PgTool::find("pg_restore")?
            .run(&url, &["--exit-on-error", "--single-transaction", "--no-owner", "--no-password"], dump)
            .await?;
        migrate(&url).await?;
        // The restore made everything the admin's, and the new database lets anyone connect:
        // the project's owner role gets back what it owns, and the only connections allowed.
        let password = crate::platform::keys::owner_password(store, &self.0.master, &row.reference).await?;
        cluster
            .create_owner_role(&database, &crate::platform::cluster::owner_role_name(&row.reference), &password)
            .await?;

        let imported = tokio::task::spawn_blocking({
            let archive = archive.to_path_buf();
            let store = self.0.objects.clone();
            let handle = tokio::runtime::Handle::current();
            let reference = row.reference.clone();
            move || {
                read_archive(&archive, None, |object, data| {
                    let store = store.clone().ok_or_else(|| io::Error::other("no object store"))?;
                    let location =
                        ObjectPath::parse(format!("{reference}/{}", object.path)).map_err(io::Error::other)?;
                    upload(&handle, store, location, data)
                })
            }
        })
        .await
        .map_err(Error::internal)??;
        if imported != *manifest {
            return Err(damaged("the archive changed while it was imported"));
        }

        let bytes: u64 = manifest.objects.iter().map(|o| o.size).sum();
        let mut tx = store.pool().begin().await?;
        store.set_status(&mut *tx, &row.reference, Status::Active).await?;
        store
            .audit(
                &mut *tx,
                actor,
                "project.import",
                Some(org.id),
                Some(&row.reference),
                serde_json::json!({
                    "from": manifest.project.reference,
                    "exported_at": manifest.exported_at,
                    "forge_version": manifest.forge_version,
                    "objects": manifest.objects.len(),
                    "object_bytes": bytes,
                    "database_bytes": manifest.database.size,
                }),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The cluster and database of a project the control plane manages (not the default one,
    /// which is the server's configured database).
    fn placed(&self, row: &ProjectRow) -> Result<(Cluster, String)> {
        match (row.cluster_id.as_deref(), row.database.as_deref()) {
            (Some(c), Some(d)) => {
                let cluster =
                    self.0.registry.cluster(c).ok_or_else(|| Error::internal(format!("unknown cluster {c}")))?;
                Ok((cluster, d.to_owned()))
            }
            _ => Err(Error::conflict(
                "The default project is the server's configured database; it cannot be exported or imported here",
            )),
        }
    }
}

/// An archive that does not hold what its manifest says.
fn damaged(what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("The archive is damaged and was not imported: {what}"))
}

/// Creates `database` empty (from `template0`), for a dump to fill.
async fn create_empty(cluster: &Cluster, database: &str) -> Result<()> {
    // `with_database` checks the name is one the control plane makes.
    with_database(cluster.url().expose_secret(), database)?;
    let mut conn = sqlx::PgConnection::connect(cluster.url().expose_secret()).await?;
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {database} template template0")))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    created?;
    Ok(())
}

/// Brings a restored database to this build's migrations: nothing to do for an archive of
/// this version; an older one's are applied; one from a newer Forge is refused.
async fn migrate(url: &SecretString) -> Result<()> {
    let options = crate::platform::cluster::control_options(url.expose_secret())?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_with(options).await?;
    let migrated = forge_core::migrate::run(&pool, &crate::migrations()).await;
    pool.close().await;
    match migrated {
        Ok(applied) => {
            if applied > 0 {
                tracing::info!(applied, "migrated the imported database to this build");
            }
            Ok(())
        }
        Err(e) => {
            Err(Error::invalid(format!("The archive's database cannot be brought to this Forge's migrations: {e}")))
        }
    }
}

// ----- pg_dump and pg_restore -----

/// A Postgres client program.
#[derive(Debug)]
struct PgTool {
    path: PathBuf,
}

impl PgTool {
    /// `name` beside the server binaries the embedded cluster uses, else on `PATH`.
    fn find(name: &str) -> Result<PgTool> {
        let beside = forge_core::embedded::PgBinaries::find().ok().map(|b| b.dir().join(name));
        let on_path = || {
            std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        };
        beside.filter(|p| p.is_file()).or_else(on_path).map(|path| PgTool { path }).ok_or_else(|| {
            Error::internal(format!(
                "`{name}` was not found beside the Postgres server binaries or on PATH; install the Postgres client \
                 programs (e.g. `apt-get install postgresql-client`)"
            ))
        })
    }

    /// Its `--version` line.
    async fn version(&self) -> Result<String> {
        let out = tokio::process::Command::new(&self.path)
            .arg("--version")
            .output()
            .await
            .map_err(|e| Error::internal(format!("running {}: {e}", self.path.display())))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs it against the database at `url` with `args`, then `file`. The URL goes as
    /// `--dbname` without its password, which goes through `PGPASSWORD`.
    async fn run(&self, url: &SecretString, args: &[&str], file: &Path) -> Result<()> {
        let (dbname, password) = split_password(url.expose_secret());
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.arg(format!("--dbname={dbname}"))
            .args(args)
            .arg(file)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .env("PGAPPNAME", crate::platform::cluster::CONTROL_APPLICATION_NAME)
            .kill_on_drop(true);
        if let Some(password) = password {
            cmd.env("PGPASSWORD", password.expose_secret());
        }
        let out = cmd.output().await.map_err(|e| Error::internal(format!("running {}: {e}", self.path.display())))?;
        if out.status.success() {
            return Ok(());
        }
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        Err(Error::internal(format!("{name} failed ({}): {}", out.status, tail.join(" | "))))
    }
}

/// `url` without the password in its user info, and that password (percent-decoded).
fn split_password(url: &str) -> (String, Option<SecretString>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None);
    };
    let Some(colon) = authority[..at].find(':') else {
        return (url.to_owned(), None);
    };
    let password = percent_decode(&authority[colon + 1..at]);
    let without = format!("{}{}{}", &url[..scheme_end + colon], &authority[at..], &rest[authority.len()..]);
    (without, Some(SecretString::from(password)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ----- hashing -----

fn hex(digest: digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The size and SHA-256 of everything `reader` gives.
fn hash_reader(mut reader: impl Read) -> io::Result<(u64, String)> {
    let mut hashing = Hashing::new(&mut reader);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish())
}

/// The size and SHA-256 of a stored object, streamed.
async fn hash_object(store: &dyn ObjectStore, location: &ObjectPath) -> Result<(u64, String)> {
    let read = |e: object_store::Error| Error::internal(format!("reading {location}: {e}"));
    let mut stream = store.get(location).await.map_err(read)?.into_stream();
    let mut context = digest::Context::new(&digest::SHA256);
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(read)?;
        size += chunk.len() as u64;
        context.update(&chunk);
    }
    Ok((size, hex(context.finish())))
}

/// A reader that counts and hashes what passes through it.
struct Hashing<R> {
    inner: R,
    context: digest::Context,
    size: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Self { inner, context: digest::Context::new(&digest::SHA256), size: 0 }
    }

    fn finish(self) -> (u64, String) {
        (self.size, hex(self.context.finish()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.context.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

// ----- writing -----

/// Where the tar stream goes: the file, perhaps through gzip.
enum Sink {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}

impl Sink {
    /// Ends the stream and syncs the file.
    fn finish(self) -> io::Result<()> {
        let buffered = match self {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish()?,
        };
        buffered.into_inner().map_err(|e| e.into_error())?.sync_all()
    }
}

/// An object's bytes, pulled from the object store's stream on a blocking thread; an error
/// if they are not `size` bytes.
struct ObjectReader<'a> {
    handle: &'a tokio::runtime::Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    left: u64,
    path: &'a str,
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.chunk.is_empty() {
                let n = buf.len().min(self.chunk.len());
                if n as u64 > self.left {
                    return Err(changed(self.path));
                }
                buf[..n].copy_from_slice(&self.chunk[..n]);
                self.chunk = self.chunk.slice(n..);
                self.left -= n as u64;
                return Ok(n);
            }
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(io::Error::other(format!("reading {}: {e}", self.path))),
                None if self.left == 0 => return Ok(0),
                None => return Err(changed(self.path)),
            }
        }
    }
}

fn changed(path: &str) -> io::Error {
    io::Error::other(format!("the object {path:?} changed while it was exported; export again"))
}

/// A tar header for a regular file of `size` bytes.
fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    header
}

/// Writes the archive to `path`: the manifest, the dump, every object (re-hashed as it goes).
fn write_archive(
    path: &Path,
    gzip: bool,
    manifest: &Manifest,
    dump: &Path,
    store: Option<Arc<dyn ObjectStore>>,
    prefix: &str,
    handle: &tokio::runtime::Handle,
) -> Result<()> {
    let failed = |e: io::Error| Error::internal(format!("writing the archive: {e}"));
    let file = BufWriter::with_capacity(CHUNK, File::create(path).map_err(failed)?);
    let sink = if gzip {
        Sink::Gzip(flate2::write::GzEncoder::new(file, flate2::Compression::default()))
    } else {
        Sink::Plain(file)
    };
    let mut tar = tar::Builder::new(sink);

    let json = serde_json::to_vec_pretty(manifest).map_err(Error::internal)?;
    tar.append_data(&mut header(json.len() as u64), MANIFEST_ENTRY, json.as_slice()).map_err(failed)?;
    let dumped = File::open(dump).map_err(failed)?;
    tar.append_data(&mut header(manifest.database.size), DATABASE_ENTRY, dumped.take(manifest.database.size))
        .map_err(failed)?;

    for object in &manifest.objects {
        let store = store.as_ref().ok_or_else(|| Error::internal("no object store"))?;
        let location = ObjectPath::parse(format!("{prefix}{}", object.path)).map_err(Error::internal)?;
        let stream = handle
            .block_on(store.get(&location))
            .map_err(|e| Error::internal(format!("reading {location}: {e}")))?
            .into_stream();
        let reader = ObjectReader { handle, stream, chunk: Bytes::new(), left: object.size, path: &object.path };
        let mut hashing = Hashing::new(reader);
        tar.append_data(&mut header(object.size), format!("{OBJECTS_DIR}{}", object.path), &mut hashing)
            .map_err(failed)?;
        if hashing.finish() != (object.size, object.sha256.clone()) {
            return Err(Error::internal(changed(&object.path)));
        }
    }
    tar.into_inner().map_err(failed)?.finish().map_err(failed)
}

// ----- reading -----

/// Opens an archive, gzip-compressed or not (told by its first bytes).
fn open(path: &Path) -> Result<tar::Archive<Box<dyn Read + Send>>> {
    let unreadable = |e: io::Error| Error::invalid(format!("Cannot read {}: {e}", path.display()));
    let mut file = File::open(path).map_err(unreadable)?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = File::open(path).map_err(unreadable)?;
    let reader: Box<dyn Read + Send> = if gzip {
        Box::new(flate2::read::GzDecoder::new(io::BufReader::with_capacity(CHUNK, file)))
    } else {
        Box::new(io::BufReader::with_capacity(CHUNK, file))
    };
    Ok(tar::Archive::new(reader))
}

/// Reads an archive through, checking it against its manifest: the dump is copied to `dump`
/// (when given) and each object's bytes are given to `object`, every entry's size and
/// SHA-256 checked, every object present once and nothing else. Returns the manifest.
fn read_archive(
    path: &Path,
    dump: Option<&Path>,
    mut object: impl FnMut(&ManifestObject, &mut dyn Read) -> io::Result<()>,
) -> Result<Manifest> {
    let broken = |e: io::Error| damaged(format!("it is not a readable tar archive ({e})"));
    let mut archive = open(path)?;
    let mut entries = archive.entries().map_err(broken)?;
    let mut next = |what: &str| -> Result<tar::Entry<'_, Box<dyn Read + Send>>> {
        let entry = entries.next().ok_or_else(|| damaged(format!("it ends before {what}")))?.map_err(broken)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(format!("an entry that is not a file where {what} should be")));
        }
        Ok(entry)
    };

    let entry = next("its manifest")?;
    if entry.path_bytes().as_ref() != MANIFEST_ENTRY.as_bytes() {
        return Err(Error::invalid("This file is not a Forge project archive (it does not begin with manifest.json)"));
    }
    if entry.size() > MANIFEST_LIMIT {
        return Err(damaged("its manifest is too large"));
    }
    let manifest: Manifest = serde_json::from_reader(entry)
        .map_err(|e| Error::invalid(format!("This file is not a Forge project archive (its manifest: {e})")))?;
    manifest.check()?;

    let entry = next("its database dump")?;
    if entry.path_bytes().as_ref() != DATABASE_ENTRY.as_bytes() {
        return Err(damaged("the database dump is not its second entry"));
    }
    if entry.size() != manifest.database.size {
        return Err(damaged(format!("the database dump has {} bytes, not {}", entry.size(), manifest.database.size)));
    }
    let mut hashing = Hashing::new(entry);
    match dump {
        Some(dump) => {
            let mut file = File::create(dump).map_err(|e| Error::internal(format!("staging the dump: {e}")))?;
            io::copy(&mut hashing, &mut file).map_err(broken)?;
            file.sync_all().map_err(|e| Error::internal(format!("staging the dump: {e}")))?;
        }
        None => {
            io::copy(&mut hashing, &mut io::sink()).map_err(broken)?;
        }
    }
    if hashing.finish() != (manifest.database.size, manifest.database.sha256.clone()) {
        return Err(damaged("the database dump's size or SHA-256 differs from the manifest"));
    }

    let mut expected = manifest.objects.iter();
    for entry in entries {
        let entry = entry.map_err(broken)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let want = expected.next().ok_or_else(|| damaged(format!("{name:?} is not in the manifest")))?;
        if name.strip_prefix(OBJECTS_DIR) != Some(want.path.as_str())
            || entry.header().entry_type() != tar::EntryType::Regular
        {
            return Err(damaged(format!("{name:?} is not the object the manifest names next ({:?})", want.path)));
        }
        if entry.size() != want.size {
            return Err(damaged(format!("the object {:?} has {} bytes, not {}", want.path, entry.size(), want.size)));
        }
        let mut hashing = Hashing::new(entry);
        object(want, &mut hashing).map_err(|e| Error::internal(format!("importing {:?}: {e}", want.path)))?;
        io::copy(&mut hashing, &mut io::sink()).map_err(broken)?;
        if hashing.finish() != (want.size, want.sha256.clone()) {
            return Err(damaged(format!("the object {:?} differs from its SHA-256 in the manifest", want.path)));
        }
    }
    if let Some(missing) = expected.next() {
        return Err(damaged(format!("the object {:?} is missing", missing.path)));
    }
    Ok(manifest)
}

/// Writes what `data` gives to `location`, in parts (never whole in memory).
fn upload(
    handle: &tokio::runtime::Handle,
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    data: &mut dyn Read,
) -> io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut writer = object_store::buffered::BufWriter::new(store, location);
    let mut buf = vec![0u8; CHUNK];
    let written = (|| {
        loop {
            let n = data.read(&mut buf)?;
            if n == 0 {
                break;
            }
            handle.block_on(writer.write_all(&buf[..n]))?;
        }
        handle.block_on(writer.shutdown())
    })();
    if written.is_err() {
        let _ = handle.block_on(writer.abort());
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url() {
        let (url, password) = split_password("postgres://admin:p%40ss@db.example:5432/forge_x?sslmode=require");
        assert_eq!(url, "postgres://admin@db.example:5432/forge_x?sslmode=require");
        assert_eq!(password.expect("a password").expose_secret(), "p@ss");
        let socket = "postgres://postgres@%2Ftmp%2Frun:5432/forge_x";
        let (url, password) = split_password(socket);
        assert_eq!((url.as_str(), password.is_none()), (socket, true));
        let (url, password) = split_password("postgres://host/db");
        assert_eq!((url.as_str(), password.is_none()), ("postgres://host/db", true));
    }

    #[test]
    fn manifests_with_unsafe_paths_are_refused() {
        let digest = "0".repeat(64);
        let manifest = |path: &str| Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            forge_version: "0".into(),
            exported_at: String::new(),
            project: ManifestProject {
                reference: "x".into(),
                name: "x".into(),
                organization: "default".into(),
                region: "local".into(),
                created_at: String::new(),
            },
            database: ManifestDatabase {
                format: String::new(),
                pg_dump: String::new(),
                size: 0,
                sha256: digest.clone(),
            },
            objects: vec![ManifestObject { path: path.into(), size: 0, sha256: digest.clone() }],
        };
        assert!(manifest("0196f3b2-version").check().is_ok());
        assert!(manifest("tus/abc/0-1").check().is_ok());
        for bad in ["", "../other/x", "a/../b", "/abs", "a//b", "a/"] {
            assert!(manifest(bad).check().is_err(), "{bad:?}");
        }
        let mut twice = manifest("a");
        twice.objects.push(twice.objects[0].clone());
        assert!(twice.check().is_err());
        let mut other = manifest("a");
        other.version = FORMAT_VERSION + 1;
        assert!(other.check().is_err());
    }

    #[test]
    fn gzip_is_chosen_by_name() {
        assert!(gzip_for(Path::new("out/p.tar.gz")));
        assert!(gzip_for(Path::new("p.tgz")));
        assert!(!gzip_for(Path::new("p.tar")));
    }
}
