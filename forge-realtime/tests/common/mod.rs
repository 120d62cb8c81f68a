//! A realtime node served on a local port, and a Phoenix client speaking either serializer.

#![allow(dead_code, unreachable_pub)]

pub mod nats;

use std::net::SocketAddr;
use std::time::Duration;

use forge_core::testing::{TestDb, test_db};
use forge_core::{Project, ProjectLayer};
use forge_realtime::{Realtime, RealtimeConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A database with the realtime schema, and one project on it.
pub async fn database() -> (TestDb, Project) {
    let db = test_db().await;
    forge_core::migrate::run(db.pool(), &[forge_realtime::MIGRATIONS]).await.expect("realtime migrations");
    let project = db.project("realtime");
    (db, project)
}

/// A node: the realtime routes of `project` served at `/realtime/v1`.
#[derive(Debug)]
pub struct Node {
    pub addr: SocketAddr,
    pub realtime: Realtime,
    pub project: Project,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Node {
    pub async fn start(project: &Project, config: RealtimeConfig) -> Node {
        Self::start_with(project, Realtime::builder().config(config).build().expect("realtime")).await
    }

    pub async fn start_with(project: &Project, realtime: Realtime) -> Node {
        let app =
            axum::Router::new().nest("/realtime/v1", realtime.router()).layer(ProjectLayer::single(project.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Node { addr, realtime, project: project.clone(), server }
    }

    pub fn anon_key(&self) -> String {
        self.project.keys().anon_key().to_owned()
    }

    pub fn service_key(&self) -> String {
        use secrecy::ExposeSecret;
        self.project.keys().service_key().expose_secret().to_owned()
    }

    /// A user's token, expiring in `ttl` seconds.
    pub fn user_token(&self, user: uuid::Uuid, ttl: i64) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let claims =
            json!({"sub": user, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + ttl});
        self.project.keys().sign(claims.as_object().unwrap()).expect("sign")
    }

    pub async fn connect(&self, vsn: &str) -> Client {
        let key = self.anon_key();
        self.connect_with(&format!("apikey={key}&vsn={vsn}"), vsn).await.expect("connect")
    }

    pub async fn connect_with(&self, query: &str, vsn: &str) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{}/realtime/v1/websocket?{query}", self.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client { ws, v2: vsn == "2.0.0", next: 0 })
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}/realtime/v1{path}", self.addr)
    }
}

/// One received frame, whatever the serializer.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub join_ref: Value,
    pub reference: Value,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub v2: bool,
    next: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("v2", &self.v2).finish()
    }
}

impl Client {
    pub fn next_ref(&mut self) -> String {
        self.next += 1;
        self.next.to_string()
    }

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
