//! A realtime node served on a local port, and a Phoenix client speaking either serializer.

#![allow(dead_code, unreachable_pub)]

#[allow(unused_imports)]
pub use forge_realtime::testing::{Client, Frame, NatsServer};

use std::net::SocketAddr;

use forge_core::testing::{TestDb, test_db};
use forge_core::{Project, ProjectLayer};
use forge_realtime::{Realtime, RealtimeConfig};
use serde_json::json;

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
        let _ = vsn;
        Client::connect(&format!("ws://{}/realtime/v1/websocket?{query}", self.addr)).await
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}/realtime/v1{path}", self.addr)
    }
}
