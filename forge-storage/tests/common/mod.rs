//! Drives forge-storage's router in-process over a fresh test database and a chosen backend.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use std::ops::Deref;

use forge_core::testing::{TestApp, test_db};
use forge_storage::Storage;
use forge_storage::testing::{moto_bucket, moto_store};
use futures_util::TryStreamExt as _;
use http::Request;
use object_store::ObjectStore;
use serde_json::{Value, json};

pub use forge_core::testing::Reply;

/// The backends every endpoint test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Local,
    /// A fresh bucket of moto's S3 server ([`forge_storage::testing`]).
    S3,
}

pub const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Local, Backend::S3];

/// forge-storage's router at `/storage/v1` in forge-core's shared harness, on one backend.
pub struct Api {
    pub t: TestApp,
    pub storage: Storage,
    pub store: Arc<dyn ObjectStore>,
    dir: Option<tempfile::TempDir>,
}

impl Deref for Api {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.t
    }
}

/// Storage's error shape, asserted on a reply.
pub trait AssertError {
    /// Asserts a Storage error: HTTP status, `statusCode` and `code`.
    fn assert_error(&self, http: u16, status_code: &str, code: &str);
}

impl AssertError for Reply {
    #[track_caller]
    fn assert_error(&self, http: u16, status_code: &str, code: &str) {
        assert_eq!(self.status.as_u16(), http, "{}", self.body);
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
    let app = Router::new().nest("/storage/v1", storage.router());
    Api { t: TestApp::new(db, project, app), storage, store, dir }
}

impl Api {
    /// The directory the local-disk backend keeps its files in.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }

    pub async fn request(&self, req: Request<Body>) -> Reply {
        self.t.send(req).await
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
