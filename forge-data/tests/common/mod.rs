//! Drives forge-data's router in-process over a fresh test database.
#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use forge_core::testing::{TestDb, test_db};
use forge_core::{Project, ProjectLayer};
use forge_data::Data;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

pub type App = tower_http::normalize_path::NormalizePath<Router>;

pub struct Api {
    pub db: TestDb,
    pub project: Project,
    pub app: App,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A fresh database with `sql` applied and the REST router over it at `/rest/v1`.
pub async fn api(sql: &str) -> Api {
    api_with(sql, Data::builder().build().expect("data")).await
}

/// Like [`api`], with a service configured by the caller.
pub async fn api_with(sql: &str, data: Data) -> Api {
    let db = test_db().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(db.pool()).await.expect("schema");
    let project = db.project("test");
    let app = Router::new().nest("/rest/v1", data.router()).layer(ProjectLayer::single(project.clone()));
    // As forge-server does: `/rest/v1/` is the root, like `/rest/v1`.
    let app = tower_http::normalize_path::NormalizePath::trim_trailing_slash(app);
    Api { db, project, app }
}

impl Api {
    pub fn anon_key(&self) -> String {
        self.project.keys().anon_key().to_owned()
    }

    pub fn service_key(&self) -> String {
        secrecy::ExposeSecret::expose_secret(self.project.keys().service_key()).to_owned()
    }

    pub async fn send(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut req = Request::builder().method(method).uri(encode(uri));
        let has_apikey = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("apikey"));
        if !has_apikey {
            req = req.header("apikey", self.anon_key());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_owned())).expect("request"))
            .await
            .expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, &[], "").await
    }
}

/// Percent-encodes what a browser's URLSearchParams would (the http crate refuses raw `>`,
/// `"`, `{`, spaces and the like).
fn encode(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    for c in uri.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '"' | '<' | '>' | '{' | '}' | '\\' | '^' | '`' | '|' => out.push_str(&format!("%{:02X}", c as u32)),
            c if !c.is_ascii() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}
