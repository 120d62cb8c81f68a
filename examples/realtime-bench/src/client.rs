//! The load generator, the same for both servers: WebSocket clients that open, join a topic,
//! then read frames and time-stamp on receipt each one that carries a send stamp.
//!
//! A frame's stamp is read by searching its text for one key (no JSON parsing on the hot
//! path), so the clients spend as little as possible of the two cores the servers share.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client's socket.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// What the error of a client step is.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// Microseconds since the Unix epoch: the clock both processes share.
pub(crate) fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Which server the clients speak to, and how.
#[derive(Debug, Clone)]
pub(crate) enum Server {
    /// Forge: Phoenix channels, serializer 2.0.0.
    Forge { addr: std::net::SocketAddr, anon_key: String },
    /// The hand-written fan-out server: `join <topic>`, `pub <topic> <frame>`.
    Ceiling { addr: std::net::SocketAddr },
}

/// Where a frame's send time is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Probe {
    /// `"sent_us":<unix microseconds>`, put in a broadcast's payload by its sender.
    SentUs,
    /// `"commit_timestamp":"<ISO 8601, milliseconds>"`, the change's commit time as Postgres
    /// recorded it (so a latency is rounded up by up to 1 ms).
    CommitTimestamp,
}

impl Probe {
    fn stamp(self, text: &str) -> Option<u64> {
        match self {
            Probe::SentUs => {
                let at = text.find("\"sent_us\":")? + "\"sent_us\":".len();
                let digits = text[at..].split(|c: char| !c.is_ascii_digit()).next()?;
                digits.parse().ok()
            }
            Probe::CommitTimestamp => {
                let at = text.find("\"commit_timestamp\":\"")? + "\"commit_timestamp\":\"".len();
                let end = at + text[at..].find('"')?;
                let parsed =
                    time::OffsetDateTime::parse(&text[at..end], &time::format_description::well_known::Rfc3339).ok()?;
                u64::try_from(parsed.unix_timestamp_nanos() / 1000).ok()
            }
        }
    }
}

/// What the clients received: counts, the last receipt and each latency.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    received: AtomicU64,
    last_us: AtomicU64,
    /// Latencies in microseconds.
    samples: Mutex<Vec<u32>>,
}

impl Recorder {
    fn record(&self, stamp_us: u64) {
        let now = unix_us();
        let latency = now.saturating_sub(stamp_us).min(u64::from(u32::MAX)) as u32;
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).push(latency);
        self.last_us.fetch_max(now, Ordering::Relaxed);
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Stamped frames received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// When the last stamped frame arrived (Unix microseconds).
    pub(crate) fn last_us(&self) -> u64 {
        self.last_us.load(Ordering::Relaxed)
    }

    /// Takes the latencies recorded so far.
    pub(crate) fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits until `target` stamped frames have arrived in all; false after `timeout`.
    pub(crate) async fn wait_for(&self, target: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.received() < target {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }
}

/// Opens one socket (the WebSocket handshake only).
pub(crate) async fn open(server: &Server) -> Result<Ws, Error> {
    let (addr, url) = match server {
        Server::Forge { addr, anon_key } => {
            (*addr, format!("ws://{addr}/realtime/v1/websocket?apikey={anon_key}&vsn=2.0.0"))
        }
        Server::Ceiling { addr } => (*addr, format!("ws://{addr}/")),
    };
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    // Small buffers: ten thousand of these live in this process.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
    Ok(ws)
}

/// Opens `count` sockets, `concurrency` handshakes at a time.
pub(crate) async fn open_many(server: &Server, count: usize, concurrency: usize) -> Result<Vec<Ws>, Error> {
    let opened: Vec<Result<Ws, Error>> =
        futures_util::stream::iter(0..count).map(|_| open(server)).buffer_unordered(concurrency).collect().await;
    opened.into_iter().collect()
}

/// How a socket joins: its topic and, on Forge, the join payload.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    /// The topic, `realtime:<name>`.
    pub(crate) topic: String,
    /// Forge's `phx_join` payload (config and access token).
    pub(crate) payload: Value,
    /// Wait for postgres_changes' "Subscribed to PostgreSQL" before counting as joined.
    pub(crate) changes: bool,
}

async fn next_text(ws: &mut Ws) -> Result<String, Error> {
    let wait = Duration::from_secs(30);
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => return Err("no answer within 30 s".into()),
            Ok(None) => return Err("the server closed the socket".into()),
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(c)))) => return Err(format!("the server closed the socket: {c:?}").into()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Joins `join.topic` and waits for the server to say so.
pub(crate) async fn join(ws: &mut Ws, server: &Server, join: &Join) -> Result<(), Error> {
    match server {
        Server::Ceiling { .. } => {
            ws.send(Message::text(format!("join {}", join.topic))).await?;
            match next_text(ws).await?.as_str() {
                "ok" => Ok(()),
                other => Err(format!("join answered {other}").into()),
            }
        }
        Server::Forge { .. } => {
            ws.send(Message::text(json!(["1", "1", join.topic, "phx_join", join.payload]).to_string())).await?;
            let mut replied = false;
            loop {
                let frame: Value = serde_json::from_str(&next_text(ws).await?)?;
                match frame[3].as_str() {
                    Some("phx_reply") if frame[1] == "1" => {
                        if frame[4]["status"] != "ok" {
                            return Err(format!("join refused: {frame}").into());
                        }
                        replied = true;
                    }
                    Some("system") if frame[4]["extension"] == "postgres_changes" => {
                        if frame[4]["status"] != "ok" {
                            return Err(format!("postgres_changes refused: {frame}").into());
                        }
                        return Ok(());
                    }
                    _ => {}
                }
                if replied && !join.changes {
                    return Ok(());
                }
            }
        }
    }
}

/// A joined socket whose frames are being read; dropping it closes the socket.
#[derive(Debug)]
pub(crate) struct Subscriber(JoinHandle<()>);

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads `ws` until it closes, recording every frame that carries a stamp. Forge sockets send
/// a Phoenix heartbeat every 25 s, as supabase-js does.
pub(crate) fn read(ws: Ws, server: &Server, probe: Probe, recorder: std::sync::Arc<Recorder>) -> Subscriber {
    let heartbeat = matches!(server, Server::Forge { .. });
    Subscriber(tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let period = Duration::from_secs(25);
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut n = 0u64;
        loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(stamp) = probe.stamp(t.as_str()) {
                            recorder.record(stamp);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                },
                _ = beat.tick(), if heartbeat => {
                    n += 1;
                    let beat = format!(r#"[null,"hb{n}","phoenix","heartbeat",{{}}]"#);
                    if sink.send(Message::text(beat)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }))
}

/// Joins every socket (`concurrency` joins at a time) and starts reading it.
pub(crate) async fn join_many(
    sockets: Vec<Ws>,
    server: &Server,
    joins: impl Fn(usize) -> Join,
    probe: Probe,
    recorder: &std::sync::Arc<Recorder>,
    concurrency: usize,
) -> Result<Vec<Subscriber>, Error> {
    let joined: Vec<Result<Subscriber, Error>> = futures_util::stream::iter(sockets.into_iter().enumerate())
        .map(|(i, mut ws)| {
            let j = joins(i);
            let recorder = recorder.clone();
            async move {
                join(&mut ws, server, &j).await?;
                Ok(read(ws, server, probe, recorder))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    joined.into_iter().collect()
}

/// The one socket that sends broadcasts on a topic (not itself a subscriber).
#[derive(Debug)]
pub(crate) struct Publisher {
    sink: SplitSink<Ws, Message>,
    server: Server,
    topic: String,
    n: u64,
    drain: JoinHandle<()>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

impl Publisher {
    /// Opens a socket and joins `join` with it (on Forge with `self: false`).
    pub(crate) async fn start(server: &Server, join: &Join) -> Result<Publisher, Error> {
        let mut ws = open(server).await?;
        self::join(&mut ws, server, join).await?;
        let (sink, mut stream) = ws.split();
        // Replies (none are expected) are read and dropped.
        let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        Ok(Publisher { sink, server: server.clone(), topic: join.topic.clone(), n: 0, drain })
    }

    /// The next broadcast, stamped now. Both servers send subscribers the same frame.
    fn frame(&mut self) -> Message {
        self.n += 1;
        let (n, topic, now) = (self.n, &self.topic, unix_us());
        let text = match self.server {
            Server::Forge { .. } => format!(
                r#"["1","{n}","{topic}","broadcast",{{"type":"broadcast","event":"tick","payload":{{"n":{n},"sent_us":{now}}}}}]"#
            ),
            // Forge's outgoing frame, byte for byte in shape.
            Server::Ceiling { .. } => format!(
                r#"pub {topic} [null,null,"{topic}","broadcast",{{"event":"tick","payload":{{"n":{n},"sent_us":{now}}},"type":"broadcast"}}]"#
            ),
        };
        Message::text(text)
    }

    /// Sends one broadcast now.
    pub(crate) async fn send(&mut self) -> Result<(), Error> {
        let frame = self.frame();
        self.sink.send(frame).await?;
        Ok(())
    }

    /// Sends `count` broadcasts back to back (each stamped as it is written).
    pub(crate) async fn send_burst(&mut self, count: usize) -> Result<(), Error> {
        for _ in 0..count {
            let frame = self.frame();
            self.sink.feed(frame).await?;
        }
        self.sink.flush().await?;
        Ok(())
    }
}
