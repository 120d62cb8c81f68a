//! A small HTTP/1.1 client over keep-alive connections: one-off calls for the Management API,
//! and a load generator (N connections, requests back to back for a fixed time), as in
//! `examples/rest-bench`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A ready-made request.
pub(crate) fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
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

/// One keep-alive connection.
#[derive(Debug)]
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
}

fn bad(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned())
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self { addr, stream, buf: Vec::with_capacity(64 * 1024) })
    }

    /// Sends one request and reads one response (by Content-Length, or chunked).
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("head"))?.to_owned();
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status"))?;
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        self.buf.drain(..end + 4);
        if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    self.fill().await?;
                };
                let size_text = std::str::from_utf8(&self.buf[..line_end]).map_err(|_| bad("chunk"))?;
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad("chunk size"))?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill().await?;
                }
                body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
                if size == 0 {
                    return Ok((status, body));
                }
            }
        }
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while self.buf.len() < length {
            self.fill().await?;
        }
        let body = self.buf[..length].to_vec();
        self.buf.drain(..length);
        Ok((status, body))
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        self.buf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        Ok(())
    }

    /// One request, reconnecting once if the server had closed the connection.
    pub(crate) async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let req = request(method, path, headers, body);
        let res = match self.exchange(&req).await {
            Ok(r) => r,
            Err(_) => {
                *self = Conn::open(self.addr).await?;
                self.exchange(&req).await?
            }
        };
        Ok((res.0, String::from_utf8_lossy(&res.1).into_owned()))
    }
}

/// The outcome of a load run.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
    /// The first answer that was not 2xx: its status and the start of its body.
    pub(crate) first_error: Option<String>,
}

/// Drives `connections` connections for `duration` over a rotation of `requests` (each
/// connection starting at its own offset). Counts only the answers that arrived before the end.
pub(crate) async fn run(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
    duration: Duration,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..connections {
        let requests = requests.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let Ok(mut conn) = Conn::open(addr).await else { return (latencies, 1, Some("connect".to_owned())) };
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let req = &requests[i % requests.len()];
                i += 1;
                let t = Instant::now();
                let result = conn.exchange(req).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match result {
                    Ok((status, _)) if status / 100 == 2 => latencies.push(t.elapsed().as_micros() as u32),
                    Ok((status, body)) => {
                        errors += 1;
                        if first_error.is_none() {
                            let body = String::from_utf8_lossy(&body).chars().take(200).collect::<String>();
                            first_error = Some(format!("{status} {body}"));
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("connection: {e}"));
                        match Conn::open(addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        if let Ok((l, e, f)) = t.await {
            all.extend(l);
            errors += e;
            first_error = first_error.or(f);
        }
    }
    all.sort_unstable();
    let ms = |p: f64| f64::from(crate::percentile(&all, p)) / 1000.0;
    Outcome {
        rps: all.len() as f64 / elapsed.min(duration).as_secs_f64(),
        p50_ms: ms(50.0),
        p99_ms: ms(99.0),
        errors,
        first_error,
    }
}
