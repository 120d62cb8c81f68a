//! A private Postgres cluster started from the Postgres binaries installed on the machine.
//!
//! Used by forge-server when no database URL is configured, and by the test support.
//!
//! - Binaries are found on `PATH` or under `/usr/lib/postgresql/*/bin` (the newest version).
//! - When the process is root, Postgres runs as the `postgres` user (else `nobody`): Postgres
//!   refuses to run as root.
//! - The cluster listens only on a Unix socket in a private directory, with
//!   `wal_level=logical` for realtime.
//! - `initdb` runs once; later starts reuse the data directory. A stale `postmaster.pid` is
//!   cleared, a Postgres orphaned by a killed supervisor is shut down first, and a crashed
//!   cluster recovers by Postgres's own crash recovery.
//! - The postmaster runs in its own process group (a terminal's Ctrl-C reaches only the
//!   supervisor, which then drains requests before stopping Postgres) and receives `SIGQUIT`
//!   if the supervising process dies, so it never outlives it.

mod sys;

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Errors starting or stopping the embedded cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// No Postgres server binaries were found.
    #[error(
        "no PostgreSQL server binaries found (looked for `initdb` and `postgres` on PATH and under \
         /usr/lib/postgresql/*/bin); install them, e.g. `apt-get install postgresql` on Debian or Ubuntu"
    )]
    BinariesNotFound,
    /// Running as root, and neither the `postgres` nor the `nobody` account exists.
    #[error("running as root, but there is no `postgres` or `nobody` user to run Postgres as")]
    NoUnprivilegedUser,
    /// The unprivileged user cannot reach the data directory.
    #[error(
        "the Postgres user cannot reach {0}: make every parent directory searchable (chmod o+x) or choose another data directory"
    )]
    NotReachable(PathBuf),
    /// The data directory exists, is not empty, and is not a Postgres cluster.
    #[error("{0} exists and is not a Postgres data directory")]
    NotADataDir(PathBuf),
    /// The socket path would be too long for a Unix socket.
    #[error("the socket directory path {0} is too long for a Unix socket")]
    SocketPathTooLong(PathBuf),
    /// `initdb` failed.
    #[error("initdb failed: {0}")]
    InitDb(String),
    /// Postgres exited or did not become ready.
    #[error("postgres did not start: {0}")]
    Start(String),
    /// A previous Postgres on this data directory could not be stopped.
    #[error("a previous postgres (pid {0}) is still running on this data directory and did not stop")]
    PreviousStillRunning(i32),
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let context = context.into();
    move |source| EmbeddedError::Io { context, source }
}

/// Where the Postgres server binaries are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// Finds `initdb` and `postgres` side by side on `PATH`, else under
    /// `/usr/lib/postgresql/<version>/bin` (the newest), else `/usr/local/pgsql/bin`.
    pub fn find() -> Result<Self, EmbeddedError> {
        let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
        if let Some(dir) = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).find(|d| has_both(d))) {
            return Ok(Self { dir });
        }
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.split('.').next()?.parse::<u32>().ok()?;
                let dir = e.path().join("bin");
                has_both(&dir).then_some((version, dir))
            })
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            return Ok(Self { dir });
        }
        let local = PathBuf::from("/usr/local/pgsql/bin");
        if has_both(&local) {
            return Ok(Self { dir: local });
        }
        Err(EmbeddedError::BinariesNotFound)
    }

    /// Uses the binaries in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Result<Self, EmbeddedError> {
        let dir = dir.into();
        if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            Ok(Self { dir })
        } else {
            Err(EmbeddedError::BinariesNotFound)
        }
    }

    /// The directory holding the binaries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// How to run the cluster.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// The data directory (created by `initdb` on first start).
    pub data_dir: PathBuf,
    /// The directory for the Unix socket (default: `run` beside the data directory).
    pub socket_dir: Option<PathBuf>,
    /// The port number, which names the socket file (`.s.PGSQL.<port>`); no TCP is opened.
    pub port: u16,
    /// The superuser `initdb` creates.
    pub superuser: String,
    /// Whether writes are flushed to disk. Off only for tests (`fsync=off`).
    pub durable: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// How long to wait for the server to accept connections.
    pub start_timeout: Duration,
    /// Where Postgres writes its log (default: `postgres.log` beside the data directory).
    pub log_file: Option<PathBuf>,
    /// The binaries to use (default: [`PgBinaries::find`]).
    pub binaries: Option<PgBinaries>,
}

impl ClusterOptions {
    /// Options for a cluster in `data_dir` with durable defaults.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            socket_dir: None,
            port: 5432,
            superuser: "postgres".into(),
            durable: true,
            settings: Vec::new(),
            start_timeout: Duration::from_secs(60),
            log_file: None,
            binaries: None,
        }
    }
}

/// A running embedded cluster. Stopped by [`EmbeddedPostgres::stop`] or on drop.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    pid: i32,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    superuser: String,
    initialized: bool,
    log_file: PathBuf,
    exit: Mutex<Option<mpsc::Receiver<std::io::Result<ExitStatus>>>>,
}

impl EmbeddedPostgres {
    /// Initializes the cluster if needed, starts it and waits until it accepts connections.
    /// Blocking; call it from `spawn_blocking` in async code.
    pub fn start(options: ClusterOptions) -> Result<Self, EmbeddedError> {
        let binaries = match options.binaries.clone() {
            Some(b) => b,
            None => PgBinaries::find()?,
        };
        let account = if sys::is_root() {
            Some(
                sys::lookup_user("postgres")
                    .or_else(|| sys::lookup_user("nobody"))
                    .ok_or(EmbeddedError::NoUnprivilegedUser)?,
            )
        } else {
            None
        };
        let data_dir = absolute(&options.data_dir)?;
        let parent = data_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        fs::create_dir_all(&parent).map_err(io(format!("creating {}", parent.display())))?;
        let socket_name = format!(".s.PGSQL.{}", options.port);
        let socket_dir = match &options.socket_dir {
            Some(dir) => absolute(dir)?,
            // A deep data directory would make the socket path too long for Unix sockets:
            // fall back to a short private directory named after the data directory.
            None if parent.join("run").join(&socket_name).as_os_str().len() > 100 => {
                std::env::temp_dir().join(format!("forge-{:016x}", fnv1a(data_dir.as_os_str().as_encoded_bytes())))
            }
            None => parent.join("run"),
        };
        if socket_dir.join(&socket_name).as_os_str().len() > 100 {
            return Err(EmbeddedError::SocketPathTooLong(socket_dir));
        }
        let log_file = options.log_file.clone().unwrap_or_else(|| parent.join("postgres.log"));

        if let Some(account) = account {
            check_reachable(&parent, account)?;
        }
        prepare_dir(&socket_dir, account)?;

        let initialized = !data_dir.join("PG_VERSION").is_file();
        if initialized {
            init_cluster(&binaries, &data_dir, &options, account)?;
        }
        clear_stale_pid(&data_dir)?;

        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .map_err(io(format!("opening {}", log_file.display())))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);

        let mut cmd = Command::new(binaries.dir().join("postgres"));
        cmd.arg("-D").arg(&data_dir);
        cmd.arg("-k").arg(&socket_dir);
        cmd.arg("-p").arg(options.port.to_string());
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), String::new()),
            ("wal_level".into(), "logical".into()),
            ("unix_socket_permissions".into(), "0700".into()),
            ("max_wal_senders".into(), "10".into()),
            ("max_replication_slots".into(), "10".into()),
            // Realtime's slot keeps WAL while no server reads it; past this much, Postgres
            // invalidates the slot rather than fill the disk.
            ("max_slot_wal_keep_size".into(), "1GB".into()),
        ];
        if !options.durable {
            settings.push(("fsync".into(), "off".into()));
            settings.push(("synchronous_commit".into(), "off".into()));
            settings.push(("full_page_writes".into(), "off".into()));
        }
        settings.extend(options.settings.iter().cloned());
        for (name, value) in &settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.stdin(Stdio::null());
        cmd.stdout(log.try_clone().map_err(io("duplicating the log handle"))?);
        cmd.stderr(log);
        cmd.process_group(0);
        if let Some(account) = account {
            cmd.uid(account.uid).gid(account.gid);
        }
        sys::pre_exec(&mut cmd, || sys::set_parent_death_signal(libc::SIGQUIT));

        // The thread that spawns the postmaster is the one whose death triggers its
        // parent-death signal, so it is a dedicated thread that lives exactly as long as
        // Postgres does.
        let (pid_tx, pid_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("forge-postgres".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = pid_tx.send(Ok(child.id() as i32));
                    let _ = exit_tx.send(child.wait());
                }
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                }
            })
            .map_err(io("spawning the supervisor thread"))?;
        let pid = pid_rx
            .recv()
            .map_err(|_| EmbeddedError::Start("the supervisor thread ended".into()))?
            .map_err(io(format!("running {}", binaries.dir().join("postgres").display())))?;

        let pg = EmbeddedPostgres {
            pid,
            data_dir,
            socket_dir,
            port: options.port,
            superuser: options.superuser.clone(),
            initialized,
            log_file,
            exit: Mutex::new(Some(exit_rx)),
        };
        pg.wait_ready(options.start_timeout, log_start)?;
        Ok(pg)
    }

    fn wait_ready(&self, timeout: Duration, log_start: u64) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + timeout;
        let pid_file = self.data_dir.join("postmaster.pid");
        loop {
            let exited = self.exit.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|rx| rx.try_recv().ok());
            if let Some(status) = exited {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                return Err(EmbeddedError::Start(format!("exited ({status}): {}", self.log_since(log_start))));
            }
            if let Ok(text) = fs::read_to_string(&pid_file) {
                let lines: Vec<&str> = text.lines().collect();
                let ours = lines.first().and_then(|l| l.trim().parse::<i32>().ok()) == Some(self.pid);
                if ours && lines.get(7).map(|l| l.trim()) == Some("ready") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.stop_now(libc::SIGQUIT);
                return Err(EmbeddedError::Start(format!(
                    "not ready after {timeout:?}: {}",
                    self.log_since(log_start)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_since(&self, start: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log_file) {
            let _ = f.seek(SeekFrom::Start(start));
            let _ = f.take(8 * 1024).read_to_string(&mut text);
        }
        let text = text.trim();
        if text.is_empty() { format!("see {}", self.log_file.display()) } else { text.to_owned() }
    }

    /// Whether the postmaster has exited (it crashed or was killed, or was stopped). Does not
    /// block.
    pub fn has_exited(&self) -> bool {
        let mut guard = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rx) = guard.as_ref() else {
            return true;
        };
        match rx.try_recv() {
            Ok(_) | Err(mpsc::TryRecvError::Disconnected) => {
                *guard = None;
                true
            }
            Err(mpsc::TryRecvError::Empty) => false,
        }
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether this start ran `initdb` (a first start).
    pub fn initialized(&self) -> bool {
        self.initialized
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The superuser's name.
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// A connection URL for `database` as `user`, over the Unix socket. Both sqlx and
    /// tokio-postgres accept it.
    pub fn url(&self, database: &str, user: &str) -> String {
        socket_url(&self.socket_dir, self.port, database, user)
    }

    /// Stops the cluster with a fast shutdown (active sessions are ended, everything written
    /// is kept), escalating to an immediate shutdown after 60 s.
    pub fn stop(&self) {
        if !self.stop_now(libc::SIGINT) {
            self.stop_now(libc::SIGQUIT);
        }
    }

    /// Stops the cluster without a checkpoint (Postgres recovers at next start). For exit paths
    /// that must be quick.
    pub fn stop_immediately(&self) {
        self.stop_now(libc::SIGQUIT);
    }

    /// Signals the postmaster and waits for it to exit. Returns whether it exited.
    fn stop_now(&self, signal: i32) -> bool {
        let mut guard = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rx) = guard.as_ref() else {
            return true;
        };
        sys::signal(self.pid, signal);
        let wait = if signal == libc::SIGQUIT { Duration::from_secs(10) } else { Duration::from_secs(60) };
        match rx.recv_timeout(wait) {
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                *guard = None;
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn absolute(path: &Path) -> Result<PathBuf, EmbeddedError> {
    std::path::absolute(path).map_err(io(format!("resolving {}", path.display())))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Creates `dir` (mode 0700) owned by `account`.
fn prepare_dir(dir: &Path, account: Option<sys::Account>) -> Result<(), EmbeddedError> {
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(format!("securing {}", dir.display())))?;
    if let Some(a) = account {
        std::os::unix::fs::chown(dir, Some(a.uid), Some(a.gid))
            .map_err(io(format!("handing {} to the Postgres user", dir.display())))?;
    }
    Ok(())
}

/// Whether `account` can search every directory down to `dir`.
fn check_reachable(dir: &Path, account: sys::Account) -> Result<(), EmbeddedError> {
    for ancestor in dir.ancestors() {
        let Ok(meta) = fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.mode();
        let ok = (meta.uid() == account.uid && mode & 0o100 != 0)
            || (meta.gid() == account.gid && mode & 0o010 != 0)
            || mode & 0o001 != 0;
        if !ok {
            return Err(EmbeddedError::NotReachable(ancestor.to_path_buf()));
        }
    }
    Ok(())
}

fn init_cluster(
    binaries: &PgBinaries,
    data_dir: &Path,
    options: &ClusterOptions,
    account: Option<sys::Account>,
) -> Result<(), EmbeddedError> {
    if data_dir.exists() && fs::read_dir(data_dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(EmbeddedError::NotADataDir(data_dir.to_path_buf()));
    }
    prepare_dir(data_dir, account)?;
    let mut cmd = Command::new(binaries.dir().join("initdb"));
    cmd.arg("-D").arg(data_dir);
    cmd.args(["-U", &options.superuser, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"]);
    if !options.durable {
        cmd.arg("--no-sync");
    }
    cmd.current_dir(data_dir);
    cmd.stdin(Stdio::null());
    if let Some(a) = account {
        cmd.uid(a.uid).gid(a.gid);
    }
    let out = cmd.output().map_err(io(format!("running {}", binaries.dir().join("initdb").display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Leave no half-made cluster behind: the next start must be able to try again.
        let _ = fs::remove_dir_all(data_dir);
        return Err(EmbeddedError::InitDb(stderr.trim().to_owned()));
    }
    Ok(())
}

/// A cluster that another process (a running server) started on a data directory: what a
/// command-line tool needs to connect to it without starting or stopping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningCluster {
    socket_dir: PathBuf,
    port: u16,
    superuser: String,
}

impl RunningCluster {
    /// The cluster `options` describe, when a live Postgres serves its data directory.
    pub fn find(options: &ClusterOptions) -> Option<RunningCluster> {
        let data_dir = absolute(&options.data_dir).ok()?;
        let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let pid = lines.first()?.trim().parse::<i32>().ok()?;
        if !sys::process_exists(pid) || !is_postgres_for(pid, &data_dir) {
            return None;
        }
        // postmaster.pid: pid, data directory, start time, port, socket directory, ...
        let port = lines.get(3)?.trim().parse().ok()?;
        let socket_dir = PathBuf::from(lines.get(4)?.trim());
        Some(RunningCluster { socket_dir, port, superuser: options.superuser.clone() })
    }

    /// The superuser's name.
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// A connection URL for `database` as `user`, over the Unix socket.
    pub fn url(&self, database: &str, user: &str) -> String {
        socket_url(&self.socket_dir, self.port, database, user)
    }
}

fn socket_url(socket_dir: &Path, port: u16, database: &str, user: &str) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        percent_encode(user),
        percent_encode(&socket_dir.to_string_lossy()),
        port,
        percent_encode(database)
    )
}

/// Deals with a `postmaster.pid` left by an earlier run: a live Postgres on this data
/// directory (orphaned by a killed supervisor) is shut down; a stale file is removed.
fn clear_stale_pid(data_dir: &Path) -> Result<(), EmbeddedError> {
    let pid_file = data_dir.join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let pid = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()).unwrap_or(0);
    if sys::process_exists(pid) && is_postgres_for(pid, data_dir) {
        tracing::warn!(pid, "a postgres from an earlier run is still up on this data directory; stopping it");
        for (signal, wait) in [(libc::SIGINT, Duration::from_secs(30)), (libc::SIGQUIT, Duration::from_secs(10))] {
            sys::signal(pid, signal);
            let deadline = Instant::now() + wait;
            while sys::process_exists(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !sys::process_exists(pid) {
                return Ok(());
            }
        }
        return Err(EmbeddedError::PreviousStillRunning(pid));
    }
    tracing::warn!(pid, "removing a stale postmaster.pid");
    fs::remove_file(&pid_file).map_err(io(format!("removing {}", pid_file.display())))
}

fn is_postgres_for(pid: i32, data_dir: &Path) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    let dir = data_dir.as_os_str().as_encoded_bytes();
    args.windows(2).any(|w| w[0] == b"-D" && w[1] == dir)
}

#[cfg(feature = "test-support")]
pub(crate) use sys::at_exit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_the_socket_path() {
        assert_eq!(percent_encode("/tmp/a b"), "%2Ftmp%2Fa%20b");
    }
}
