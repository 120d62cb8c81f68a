//! A small HTTP/1.1 load generator: N keep-alive connections, each sending requests back to
//! back for a fixed time, recording each request's latency.
//!
//! Two kinds of target: a rotation of ready-made requests, and refresh-token chains, where
//! each connection sends the `refresh_token` of its previous answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What to send to one server.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Ready-made requests, sent in turn (each connection starts at its own offset).
    Rotate(Arc<Vec<Vec<u8>>>),
    /// `POST path {"refresh_token": ...}`: connection `c` continues chain `c`, and stores
    /// the newest token back when it stops, so the next run picks the chain up.
    Refresh { path: String, headers: Arc<Vec<(String, String)>>, chains: Arc<Mutex<Vec<String>>> },
}

/// The outcome of a run (or of several runs, merged).
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    latencies_us: Vec<u32>,
    elapsed: Duration,
    pub(crate) errors: u64,
    /// The first non-2xx answer, to show what went wrong.
    pub(crate) first_error: Option<String>,
}

impl Outcome {
    /// Requests answered per second.
    pub(crate) fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q`-quantile latency in milliseconds (`q` in 0..=1).
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let i = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
        sorted.get(i).map_or(0.0, |us| f64::from(*us) / 1000.0)
    }

    pub(crate) fn p50_ms(&self) -> f64 {
        self.quantile_ms(0.50)
    }

    pub(crate) fn p99_ms(&self) -> f64 {
        self.quantile_ms(0.99)
    }

    /// Records one answered request, and its error if it failed.
    pub(crate) fn record(&mut self, latency: Duration, error: Option<String>) {
        self.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        if let Some(e) = error {
            self.errors += 1;
            self.first_error.get_or_insert(e);
        }
    }

    /// Sets the wall-clock time the requests took.
    pub(crate) fn set_elapsed(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
    }

    /// Adds another run's requests and time to this one.
    pub(crate) fn merge(&mut self, other: Outcome) {
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

pub(crate) fn request(method: &str, path: &str, headers: &[(String, String)], body: &str) -> Vec<u8> {
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
    pub(crate) fn get(addr: SocketAddr, paths: &[String], headers: &[(String, String)]) -> Self {
        let requests = paths.iter().map(|p| request("GET", p, headers, "")).collect();
        Self { addr, kind: Kind::Rotate(Arc::new(requests)) }
    }

    /// POSTs of each body in turn to `path`.
    pub(crate) fn posts(addr: SocketAddr, path: &str, bodies: &[String], headers: &[(String, String)]) -> Self {
        let requests = bodies.iter().map(|b| request("POST", path, headers, b)).collect();
        Self { addr, kind: Kind::Rotate(Arc::new(requests)) }
    }

    /// Refresh-token chains, one per connection, starting from `tokens`.
    pub(crate) fn refresh(addr: SocketAddr, path: &str, tokens: Vec<String>, headers: &[(String, String)]) -> Self {
        let kind = Kind::Refresh {
            path: path.to_owned(),
            headers: Arc::new(headers.to_vec()),
            chains: Arc::new(Mutex::new(tokens)),
        };
        Self { addr, kind }
    }

    /// One request (the first of the rotation): its status and body.
    pub(crate) async fn once(&self) -> std::io::Result<(u16, String)> {
        let Kind::Rotate(requests) = &self.kind else {
            return Err(std::io::Error::other("once() is for rotations"));
        };
        let mut conn = Conn::open(self.addr).await?;
        let (status, body) = conn.exchange(&requests[0]).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Drives `connections` connections for `duration`. Refresh targets use at most as many
    /// connections as they have chains: connection `c` follows chain `c`.
    pub(crate) async fn run(&self, connections: usize, duration: Duration) -> Outcome {
        let connections = match &self.kind {
            Kind::Rotate(_) => connections,
            Kind::Refresh { chains, .. } => connections.min(chains.lock().map_or(0, |c| c.len())),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..connections {
            let target = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { target.connection(c, &stop).await }));
        }
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Outcome::default();
        for t in tasks {
            if let Ok(o) = t.await {
                all.merge(o);
            }
        }
        // Requests in flight at the stop are counted, so the time runs until they are in.
        all.set_elapsed(started.elapsed());
        all
    }

    async fn connection(&self, c: usize, stop: &AtomicBool) -> Outcome {
        let mut out = Outcome::default();
        let Ok(mut conn) = Conn::open(self.addr).await else {
            out.errors = 1;
            return out;
        };
        let mut chain = match &self.kind {
            Kind::Refresh { chains, .. } => chains.lock().ok().and_then(|all| all.get(c).cloned()),
            Kind::Rotate(_) => None,
        };
        let mut i = c;
        while !stop.load(Ordering::Relaxed) {
            let owned;
            let req: &[u8] = match &self.kind {
                Kind::Rotate(requests) => {
                    let next = &requests[i % requests.len()];
                    i += 1;
                    next
                }
                Kind::Refresh { path, headers, .. } => {
                    let Some(token) = &chain else { break };
                    let body = serde_json::json!({ "refresh_token": token }).to_string();
                    owned = request("POST", path, headers, &body);
                    &owned
                }
            };
            let started = Instant::now();
            match conn.exchange(req).await {
                Ok((status, body)) => {
                    let failed = status / 100 != 2;
                    let error = failed.then(|| format!("{status} {}", String::from_utf8_lossy(&body)));
                    out.record(started.elapsed(), error);
                    if failed {
                        if matches!(self.kind, Kind::Refresh { .. }) {
                            break; // The chain is broken; going on would only repeat the error.
                        }
                    } else if matches!(self.kind, Kind::Refresh { .. }) {
                        chain = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["refresh_token"].as_str().map(str::to_owned));
                    }
                }
                Err(_) => {
                    out.errors += 1;
                    match Conn::open(self.addr).await {
                        Ok(c) => conn = c,
                        Err(_) => break,
                    }
                }
            }
        }
        if let (Kind::Refresh { chains, .. }, Some(token)) = (&self.kind, chain)
            && let Ok(mut chains) = chains.lock()
            && let Some(slot) = chains.get_mut(c)
        {
            *slot = token;
        }
        out
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
