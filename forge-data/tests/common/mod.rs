//! Drives forge-data's router in-process over a fresh test database.
#![allow(dead_code, unreachable_pub)]

use std::ops::Deref;

use axum::Router;
use axum::body::Body;
use forge_core::testing::{TestApp, test_db};
use forge_data::Data;

pub use forge_core::testing::Reply;

/// forge-data's router at `/rest/v1` in forge-core's shared harness.
pub struct Api(pub TestApp);

impl Deref for Api {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.0
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
    // As forge-server does: `/rest/v1/` is the root, like `/rest/v1`.
    let rest =
        tower_http::normalize_path::NormalizePath::trim_trailing_slash(Router::new().nest("/rest/v1", data.router()));
    Api(TestApp::new(db, project, Router::new().fallback_service(rest)))
}

impl Api {
    pub async fn send(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut req = http::Request::builder().method(method).uri(encode(uri));
        let has_apikey = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("apikey"));
        if !has_apikey {
            req = req.header("apikey", self.anon_key());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.0.send(req.body(Body::from(body.to_owned())).expect("request")).await
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
