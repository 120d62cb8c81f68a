//! The servers under test, each in a child process of the benchmark (this same binary run as
//! `serve-forge` or `serve-ceiling`): their resident memory and CPU time are their own, and
//! their sockets do not count against the benchmark's file limit.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use forge_core::{Database, DatabaseConfig, Project, ProjectKeys, ProjectLayer, ProjectRef, ProjectSettings};
use forge_realtime::{Realtime, RealtimeConfig};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::client::Error;

/// The project's reference, on both sides.
pub(crate) const REFERENCE: &str = "bench";

/// The project's keys: the child and the benchmark build the same ones from the same secret,
/// so the benchmark signs the users' tokens the server verifies.
pub(crate) fn keys() -> Result<ProjectKeys, Error> {
    let reference = ProjectRef::new(REFERENCE)?;
    Ok(ProjectKeys::builder(reference, forge_core::testing::TEST_JWT_SECRET.as_bytes().to_vec()).build()?)
}

/// The limits raised out of the way (the defaults are Supabase's small ones).
fn config() -> RealtimeConfig {
    RealtimeConfig::default()
        .with_max_connections(20_000)
        .with_max_joins_per_second(100_000)
        .with_max_events_per_second(100_000)
}

/// `serve-forge <url> <gateway url>`: forge-realtime at `/realtime/v1` on the database at
/// `url`, with the pools' default sizes, served as forge-server serves it (TCP_NODELAY).
pub(crate) async fn forge(url: &str, gateway_url: &str) -> Result<(), Error> {
    let db = Database::connect_lazy(&DatabaseConfig::new(url).with_gateway_url(gateway_url))?;
    let project = Project::new(ProjectRef::new(REFERENCE)?, db, keys()?, ProjectSettings::new("http://127.0.0.1"));
    let realtime = Realtime::builder().config(config()).build()?;
    // As forge-server does: the replication slot is made before the first subscriber.
    realtime.start(&project).await?;
    let app = Router::new().nest("/realtime/v1", realtime.router()).layer(ProjectLayer::single(project));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// `serve-ceiling`: the hand-written fan-out server.
pub(crate) async fn ceiling() -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?);
    crate::ceiling::serve(listener).await?;
    Ok(())
}

/// Tells the parent the address, and exits when the parent goes (its end of stdin closes).
fn announce(addr: SocketAddr) {
    println!("READY {addr}");
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        while matches!(std::io::Read::read(&mut std::io::stdin(), &mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

/// A server under test, as the benchmark sees it.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Runs this binary with `args` and waits for it to listen.
    pub(crate) async fn spawn(args: &[&str]) -> Result<Server, Error> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .map_err(|_| "the server did not start within 60 s")??
            .ok_or("the server exited before listening")?;
        let addr = line.strip_prefix("READY ").ok_or_else(|| format!("unexpected first line: {line}"))?.parse()?;
        Ok(Server { child, pid, addr })
    }

    /// Resident memory, in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub(crate) fn rss(&self) -> u64 {
        rss_of(self.pid)
    }

    /// CPU time (user and system) used so far, in seconds.
    pub(crate) fn cpu(&self) -> f64 {
        cpu_of(self.pid)
    }

    /// Stops the server.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `VmRSS` of a process, in bytes (0 if gone).
pub(crate) fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// User and system CPU time of a process, in seconds (0 if gone).
pub(crate) fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}
