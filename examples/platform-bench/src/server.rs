//! The release `forge-server` binary as a child process, on a data directory that outlives it
//! (each phase restarts it with other settings), and what is measured from outside: its
//! resident memory, and the connections to project databases in `pg_stat_activity`.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection as _;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A running server.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) anon_key: String,
    pub(crate) started_in: Duration,
}

/// Where the binary is and where its data lives.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) bin: PathBuf,
    pub(crate) dir: PathBuf,
}

impl Setup {
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A `forge-server` command with nothing inherited that configures Forge.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(&self.dir);
        for (key, _) in std::env::vars() {
            if key.starts_with("FORGE_") || key == "DATABASE_URL" || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.env("FORGE_DATA_DIR", self.data_dir());
        cmd.env("FORGE_LISTEN", "127.0.0.1:0");
        cmd
    }

    /// Starts the server with `envs`; waits for its banner.
    pub(crate) fn start(&self, name: &str, envs: &[(&str, &str)]) -> Result<Server, Error> {
        let log = self.dir.join(format!("server-{name}.log"));
        let mut cmd = self.command();
        cmd.envs(envs.iter().copied());
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&log)?);
        let t0 = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("spawning {}: {e}", self.bin.display()))?;
        let stdout = child.stdout.take().ok_or("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut url = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(u) = line.trim().strip_prefix("API URL:") {
                    url = Some(u.trim().to_owned());
                } else if let (Some(key), Some(u)) = (line.trim().strip_prefix("anon key:"), &url) {
                    let _ = tx.send((u.clone(), key.trim().to_owned()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok((url, anon_key)) => {
                let addr = url.trim_start_matches("http://").trim_end_matches('/').parse()?;
                Ok(Server { child, addr, anon_key, started_in: t0.elapsed() })
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("forge-server did not start: {}", std::fs::read_to_string(&log).unwrap_or_default()).into())
            }
        }
    }

    /// `forge-server tokens create --email <email>`: a personal access token.
    pub(crate) fn token(&self, email: &str) -> Result<String, Error> {
        let out = self.command().args(["tokens", "create", "--email", email]).output()?;
        if !out.status.success() {
            return Err(format!("tokens create: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// The embedded cluster's superuser URL (over its socket), for `database`.
    pub(crate) fn admin_url(&self, database: &str) -> String {
        let socket = self.data_dir().join("run").to_string_lossy().replace('/', "%2F");
        format!("postgres://postgres@{socket}:5432/{database}")
    }

    /// The postmaster's pid.
    fn postmaster(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir().join("pg/postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
    }

    /// Postgres's proportional set size (the postmaster and its children), KiB: shared
    /// buffers counted once, split among the processes that touched them.
    pub(crate) fn postgres_pss_kib(&self) -> u64 {
        let Some(postmaster) = self.postmaster() else { return 0 };
        let mut total = pss_kib(postmaster);
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // pid (comm) state ppid ...
                let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
                if ppid == Some(postmaster) {
                    total += pss_kib(pid);
                }
            }
        }
        total
    }
}

fn pss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines().find(|l| l.starts_with("Pss:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

impl Server {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server process's resident memory, KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// Stops it gracefully (SIGTERM), waiting for it (and so its Postgres) to exit.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        // Postgres's shutdown checkpoint may have much to write.
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Counts the connections to project databases every 20 ms, keeping the peak.
#[derive(Debug)]
pub(crate) struct Watcher {
    peak: Arc<AtomicI64>,
    last: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// The server's connections to project databases (not Postgres's autovacuum workers).
const PROJECT_CONNECTIONS: &str = "select count(*) from pg_stat_activity where datname like 'forge\\_platform\\_%' \
                                   and datname <> 'forge_platform_template' and backend_type = 'client backend'";

impl Watcher {
    pub(crate) async fn start(admin_url: &str) -> Result<Self, Error> {
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        let (peak, last, stop) =
            (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)), Arc::new(AtomicBool::new(false)));
        let task = {
            let (peak, last, stop) = (peak.clone(), last.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sqlx::query_scalar::<_, i64>(PROJECT_CONNECTIONS).fetch_one(&mut conn).await {
                        peak.fetch_max(n, Ordering::Relaxed);
                        last.store(n, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = conn.close().await;
            })
        };
        Ok(Self { peak, last, stop, task })
    }

    /// The peak so far, and starts counting a new one.
    pub(crate) fn take_peak(&self) -> i64 {
        self.peak.swap(self.last.load(Ordering::Relaxed), Ordering::Relaxed)
    }

    /// The last count.
    pub(crate) fn current(&self) -> i64 {
        self.last.load(Ordering::Relaxed)
    }

    pub(crate) async fn stop(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// Whether a path exists (for the binary's).
pub(crate) fn exists(p: &Path) -> bool {
    p.is_file()
}
