//! A small HTTP/1.1 load generator: N keep-alive connections, each sending requests back to
//! back for a fixed time, recording each request's latency. Runs against one target can be
//! pooled ([`Samples`]), so that several targets can be measured in interleaved rounds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What to send: a rotation of ready-made requests to one server.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
}

/// The outcome of a run.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) rps: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
}

fn request(method: &str, path: &str, headers: &[(String, String)], body: &str) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        r.push_str("content-type: application/json\r\n");
    }
    r.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    r.into_bytes()
}

impl Target {
    pub(crate) fn get(addr: SocketAddr, paths: Vec<String>, headers: &[(String, String)]) -> Self {
        let requests = paths.iter().map(|p| request("GET", p, headers, "")).collect();
        Self { addr, requests: Arc::new(requests) }
    }

    pub(crate) fn post(addr: SocketAddr, path: &str, body: &str, headers: &[(String, String)]) -> Self {
        Self { addr, requests: Arc::new(vec![request("POST", path, headers, body)]) }
    }

    /// One request: its status and body.
    pub(crate) async fn once(&self) -> std::io::Result<(u16, String)> {
        let mut conn = Conn::open(self.addr).await?;
        let (status, body) = conn.exchange(&self.requests[0]).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Drives `connections` connections for `duration`.
    pub(crate) async fn run(&self, connections: usize, duration: Duration) -> Outcome {
        self.sample(connections, duration).await.outcome()
    }

    /// Drives `connections` connections for `duration`, keeping every latency.
    pub(crate) async fn sample(&self, connections: usize, duration: Duration) -> Samples {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..connections {
            let target = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let Ok(mut conn) = Conn::open(target.addr).await else { return (latencies, 1) };
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let req = &target.requests[i % target.requests.len()];
                    i += 1;
                    let started = Instant::now();
                    match conn.exchange(req).await {
                        Ok((status, _)) => {
                            latencies.push(started.elapsed().as_micros() as u32);
                            if status / 100 != 2 {
                                errors += 1;
                            }
                        }
                        Err(_) => {
                            errors += 1;
                            match Conn::open(target.addr).await {
                                Ok(c) => conn = c,
                                Err(_) => break,
                            }
                        }
                    }
                }
                (latencies, errors)
            }));
        }
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut samples = Samples { elapsed: duration, ..Samples::default() };
        for t in tasks {
            if let Ok((l, e)) = t.await {
                samples.latencies.extend(l);
                samples.errors += e;
            }
        }
        samples
    }
}

/// Latencies gathered over one or more runs against the same target.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    latencies: Vec<u32>,
    errors: u64,
    elapsed: Duration,
}

impl Samples {
    /// Adds another run's samples.
    pub(crate) fn add(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
    }

    /// Throughput over the whole time sampled, and the p99 of all latencies.
    pub(crate) fn outcome(mut self) -> Outcome {
        self.latencies.sort_unstable();
        let all = &self.latencies;
        let p99 = all.get(all.len().saturating_sub(1) * 99 / 100).copied().unwrap_or(0);
        let rps = all.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON);
        Outcome { rps, p99_ms: f64::from(p99) / 1000.0, errors: self.errors }
    }
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::with_capacity(64 * 1024) })
    }

    /// Sends one request and reads one response (by Content-Length).
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("head"))?.to_owned();
                let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status"))?;
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        self.buf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        Ok(())
    }
}
