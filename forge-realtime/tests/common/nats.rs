//! A `nats-server` for tests: Debian's binary on a free port in a temporary directory.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A `nats-server` on a free port in a temporary directory, killed on drop.
pub struct NatsServer {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("forge-realtime-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = spawn_nats_server(port, &dir).await;
        Self { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts another on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = spawn_nats_server(self.port, &self.dir).await;
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `nats-server` on `port`, logging into `dir`, and waits until it accepts
/// connections.
async fn spawn_nats_server(port: u16, dir: &std::path::Path) -> std::process::Child {
    let binary = nats_server_binary();
    let mut child = std::process::Command::new(&binary)
        .args(["--addr", "127.0.0.1", "--port", &port.to_string(), "--log"])
        .arg(dir.join("nats.log"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default();
            panic!("nats-server exited with {status}:\n{log}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nats-server is not accepting connections on port {port} after 5 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `nats-server` on PATH, else Debian's /usr/sbin/nats-server; fails the test if neither.
fn nats_server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    let debian = PathBuf::from("/usr/sbin/nats-server");
    on_path.or_else(|| debian.is_file().then_some(debian)).unwrap_or_else(|| {
        panic!(
            "nats-server is not installed (looked on PATH and at /usr/sbin/nats-server): \
             the NatsBus tests need it; install it with `apt-get install nats-server`"
        )
    })
}
