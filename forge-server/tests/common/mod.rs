//! Starts the real `forge-server` binary and talks HTTP to it.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub url: String,
    pub anon_key: String,
    pub addr: String,
    pub stderr: PathBuf,
    pub started_in: Duration,
    /// Every line the server printed so far.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A `forge-server` command with a clean environment: nothing inherited that configures Forge.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forge-server"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("FORGE_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("FORGE_DATA_DIR", dir.join("data"));
    cmd.env("FORGE_LISTEN", "127.0.0.1:0");
    cmd
}

impl Server {
    pub fn start(dir: &Path, envs: &[(&str, &str)]) -> Server {
        Self::try_start(dir, envs).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(dir: &Path, envs: &[(&str, &str)]) -> Result<Server, String> {
        Self::try_start_command(dir, command(dir), envs)
    }

    /// Starts `cmd` (a [`command`], perhaps wrapped) with `envs`.
    pub fn try_start_command(dir: &Path, mut cmd: Command, envs: &[(&str, &str)]) -> Result<Server, String> {
        let stderr = dir.join(format!(
            "server-{}.log",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
        ));
        cmd.envs(envs.iter().copied());
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&stderr).expect("log file"));
        let t0 = Instant::now();
        let mut child = cmd.spawn().expect("spawn forge-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = printed.clone();
        std::thread::spawn(move || {
            let mut url = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().expect("stdout lines").push(line.clone());
                if let Some(u) = line.trim().strip_prefix("API URL:") {
                    url = Some(u.trim().to_owned());
                } else if let (Some(key), Some(u)) = (line.trim().strip_prefix("anon key:"), &url) {
                    let _ = tx.send((u.clone(), key.trim().to_owned()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((url, anon_key)) => {
                let started_in = t0.elapsed();
                let addr = url.trim_start_matches("http://").to_owned();
                Ok(Server { child, url, anon_key, addr, stderr, started_in, stdout: printed })
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("forge-server did not start: {}", std::fs::read_to_string(&stderr).unwrap_or_default()))
            }
        }
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        request(&self.addr, method, path, headers, body)
    }

    /// The first printed line containing `needle`, waiting up to 10 s for it.
    pub fn printed(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.stdout.lock().expect("stdout lines").iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn signal(&self, signal: &str) {
        let ok =
            Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    /// Waits for the process to exit.
    pub fn wait(mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "forge-server did not exit in {timeout:?}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
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

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.1 client: one request per connection.
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // A Host header given replaces the default one.
    let host = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")).map_or(addr, |(_, v)| *v);
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("write");
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Response { status, headers, body: body.to_owned() }
}

/// The superuser URL of the embedded cluster under `data_dir`.
pub fn embedded_url(data_dir: &Path) -> String {
    let socket = data_dir.join("run").to_string_lossy().replace('/', "%2F");
    format!("postgres://postgres@{socket}:5432/postgres")
}

pub fn process_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("pg/postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
}
