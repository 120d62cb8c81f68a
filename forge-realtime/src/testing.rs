//! Test support (feature `test-support`): Debian's `nats-server` on a free port, and a
//! Phoenix client that speaks either serializer, for tests of realtime over real sockets.

#![allow(clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A `nats-server` on a free port in a temporary directory, killed on drop.
#[derive(Debug)]
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

    /// Its `nats://` URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts another on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = spawn_nats_server(self.port, &self.dir).await;
    }

    /// Kills the server.
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

/// One received frame, whatever the serializer.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The join ref (null on pushes).
    pub join_ref: Value,
    /// The ref (null on pushes).
    pub reference: Value,
    /// The topic.
    pub topic: String,
    /// The event.
    pub event: String,
    /// The payload.
    pub payload: Value,
}

/// A Phoenix channels client over a real WebSocket.
pub struct Client {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Whether it speaks 2.0.0 (arrays) rather than 1.0.0 (objects).
    pub v2: bool,
    next: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("v2", &self.v2).finish()
    }
}

impl Client {
    /// Connects to `url` (`ws://host/realtime/v1/websocket?apikey=...&vsn=...`).
    pub async fn connect(url: &str) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let v2 = url.contains("vsn=2.0.0");
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client { ws, v2, next: 0 })
    }

    /// The next ref.
    pub fn next_ref(&mut self) -> String {
        self.next += 1;
        self.next.to_string()
    }

    /// Sends a frame; returns its ref.
    pub async fn push(&mut self, join_ref: Option<&str>, topic: &str, event: &str, payload: Value) -> String {
        let r = self.next_ref();
        let text = if self.v2 {
            json!([join_ref, r, topic, event, payload]).to_string()
        } else {
            json!({"join_ref": join_ref, "ref": r, "topic": topic, "event": event, "payload": payload}).to_string()
        };
        self.ws.send(Message::text(text)).await.expect("send");
        r
    }

    /// Sends a raw WebSocket message.
    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next frame (binary frames are returned with event `binary` and the bytes as an
    /// array), or None after `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next()).await.ok()??.ok()?;
            let value: Value = match msg {
                Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON frame"),
                Message::Binary(b) => {
                    return Some(Frame {
                        join_ref: Value::Null,
                        reference: Value::Null,
                        topic: String::new(),
                        event: "binary".into(),
                        payload: json!(b.to_vec()),
                    });
                }
                Message::Close(_) => return None,
                _ => continue,
            };
            return Some(if self.v2 {
                Frame {
                    join_ref: value[0].clone(),
                    reference: value[1].clone(),
                    topic: value[2].as_str().unwrap().to_owned(),
                    event: value[3].as_str().unwrap().to_owned(),
                    payload: value[4].clone(),
                }
            } else {
                Frame {
                    join_ref: value["join_ref"].clone(),
                    reference: value["ref"].clone(),
                    topic: value["topic"].as_str().unwrap().to_owned(),
                    event: value["event"].as_str().unwrap().to_owned(),
                    payload: value["payload"].clone(),
                }
            });
        }
    }

    /// The next frame, failing after 10 s.
    pub async fn next(&mut self) -> Frame {
        self.next_within(Duration::from_secs(10)).await.expect("a frame within 10 s")
    }

    /// The next frame with `event` (others before it are skipped).
    pub async fn expect(&mut self, event: &str) -> Frame {
        loop {
            let f = self.next().await;
            if f.event == event {
                return f;
            }
        }
    }

    /// Joins `topic` with `config` and returns the join ref and the reply.
    pub async fn join(&mut self, topic: &str, config: Value, token: Option<&str>) -> (String, Frame) {
        let r = self.next_ref();
        self.next -= 1;
        let mut payload = json!({"config": config});
        if let Some(t) = token {
            payload["access_token"] = json!(t);
        }
        let r2 = self.push(Some(&r), topic, "phx_join", payload).await;
        assert_eq!(r, r2);
        loop {
            let f = self.next().await;
            if f.event == "phx_reply" && f.reference == json!(r) {
                return (r, f);
            }
        }
    }

    /// The `record.id` of the next `n` `postgres_changes` pushes, in order; then no further
    /// change may arrive for `settle` (a change delivered twice fails here).
    pub async fn change_ids(&mut self, n: usize, settle: Duration) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < n {
            let f = self.expect("postgres_changes").await;
            out.push(f.payload["data"]["record"]["id"].as_i64().expect("a record with an integer id"));
        }
        self.quiet("postgres_changes", settle).await;
        out
    }

    /// Nothing arrives within `wait` (besides frames of other events than `event`).
    pub async fn quiet(&mut self, event: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_within(left).await {
                Some(f) if f.event == event => panic!("unexpected {event}: {f:?}"),
                Some(_) => {}
                None => return,
            }
        }
    }
}
