//! Drives forge-storage's router in-process over a fresh test database and a chosen backend.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use forge_core::testing::{TestDb, test_db};
use forge_core::{Project, ProjectLayer};
use forge_storage::Storage;
use forge_storage::testing::{moto_bucket, moto_store};
use futures_util::TryStreamExt as _;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use object_store::ObjectStore;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The backends every endpoint test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Local,
    /// A fresh bucket of moto's S3 server ([`forge_storage::testing`]).
    S3,
}

pub const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Local, Backend::S3];

pub struct Api {
    pub db: TestDb,
    pub project: Project,
    pub storage: Storage,
    pub store: Arc<dyn ObjectStore>,
    pub app: Router,
    dir: Option<tempfile::TempDir>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a Storage error: HTTP status, `statusCode` and `code`.
    #[track_caller]
    pub fn assert_error(&self, http: u16, status_code: &str, code: &str) {
        assert_eq!(self.status.as_u16(), http, "{}", self.text());
        let body = self.json();
        assert_eq!(body["statusCode"], status_code, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["error"].is_string(), "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
}

pub async fn api(backend: Backend) -> Api {
    api_with(backend, forge_storage::StorageConfig::default()).await
}

/// [`api`] with a storage configuration of the test's own.
pub async fn api_with(backend: Backend, config: forge_storage::StorageConfig) -> Api {
    let db = test_db().await;
    forge_core::migrate::run(db.pool(), &[forge_storage::MIGRATIONS]).await.expect("migrate");
    let project = db.project("test");
    let (store, dir): (Arc<dyn ObjectStore>, _) = match backend {
        Backend::Memory => (Arc::new(object_store::memory::InMemory::new()), None),
        Backend::Local => {
            let dir = tempfile::tempdir().expect("tempdir");
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
            (Arc::new(fs), Some(dir))
        }
        Backend::S3 => (moto_store(&moto_bucket().await), None),
    };
    let storage = Storage::builder().store(store.clone()).config(config).build().expect("storage");
    let app = Router::new().nest("/storage/v1", storage.router()).layer(ProjectLayer::single(project.clone()));
    Api { db, project, storage, store, app, dir }
}

impl Api {
    /// The directory the local-disk backend keeps its files in.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }

    pub fn anon_key(&self) -> String {
        self.project.keys().anon_key().to_owned()
    }

    pub fn service_key(&self) -> String {
        secrecy::ExposeSecret::expose_secret(self.project.keys().service_key()).to_owned()
    }

    /// A signed-in user's access token.
    pub fn user_token(&self, user: uuid::Uuid) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims =
            json!({ "sub": user, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600 });
        self.project.keys().sign(claims.as_object().expect("claims")).expect("sign")
    }

    pub async fn request(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
        Reply { status, headers, body }
    }

    /// A request as storage-js sends it: `apikey` (anon) and `Authorization: Bearer <token>`.
    pub fn builder(&self, method: &str, uri: &str, token: Option<&str>) -> http::request::Builder {
        let bearer = token.map_or_else(|| self.anon_key(), str::to_owned);
        Request::builder()
            .method(method)
            .uri(format!("/storage/v1{uri}"))
            .header("apikey", self.anon_key())
            .header("authorization", format!("Bearer {bearer}"))
    }

    pub async fn send(&self, method: &str, uri: &str, token: Option<&str>, body: Value) -> Reply {
        let mut b = self.builder(method, uri, token);
        let body = if body.is_null() {
            Body::empty()
        } else {
            b = b.header("content-type", "application/json");
            Body::from(body.to_string())
        };
        self.request(b.body(body).expect("request")).await
    }

    pub async fn service(&self, method: &str, uri: &str, body: Value) -> Reply {
        let key = self.service_key();
        self.send(method, uri, Some(&key), body).await
    }

    /// A raw upload.
    pub async fn put_raw(&self, method: &str, uri: &str, token: Option<&str>, mime: &str, bytes: &[u8]) -> Reply {
        let req = self
            .builder(method, uri, token)
            .header("content-type", mime)
            .header("cache-control", "max-age=60")
            .body(Body::from(bytes.to_vec()))
            .expect("request");
        self.request(req).await
    }

    pub async fn create_bucket(&self, id: &str, public: bool) {
        let r = self.service("POST", "/bucket", json!({ "id": id, "name": id, "public": public })).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// Every blob in the store.
    pub async fn blobs(&self) -> Vec<String> {
        let listed: Vec<_> = self.store.list(None).try_collect().await.expect("list");
        let mut paths: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
        paths.sort();
        paths
    }

    pub async fn rows(&self) -> i64 {
        sqlx::query_scalar("select count(*) from storage.objects").fetch_one(self.db.pool()).await.expect("count")
    }
}
