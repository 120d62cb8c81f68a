//! Drives forge-storage's router in-process over a fresh test database and a chosen backend.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use forge_core::testing::{TestDb, test_db};
use forge_core::{Project, ProjectLayer};
use forge_storage::Storage;
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
    /// moto's S3 server (`FORGE_MOTO_SERVER`, or `compat/.venv/bin/moto_server`).
    S3,
}

pub const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Local, Backend::S3];

/// One moto S3 server per test binary. It stops within a second of the tests' process.
fn moto() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let server = std::env::var("FORGE_MOTO_SERVER")
            .unwrap_or_else(|_| format!("{}/../compat/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
        assert!(
            std::path::Path::new(&server).exists(),
            "moto's S3 server is needed for the S3 tests: run `bash compat/venv.sh` (or set FORGE_MOTO_SERVER); \
             not found at {server}"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        // The shell watches this process and stops moto when it is gone.
        let script = format!(
            "\"{server}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
            parent = std::process::id()
        );
        // Not waited for: it outlives the tests by design and is reaped by init.
        #[allow(clippy::zombie_processes)]
        std::process::Command::new("sh").arg("-c").arg(script).spawn().expect("start moto");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start within 30 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
}

/// An S3 store on a fresh bucket of the moto server.
async fn s3_store() -> Arc<dyn ObjectStore> {
    let endpoint = moto();
    let bucket = format!("forge-{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("create bucket");
    assert!(created.status().is_success(), "creating the bucket: {}", created.status());
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("forge-test")
        .with_secret_access_key("forge-test-secret")
        .with_allow_http(true)
        .build()
        .expect("s3");
    Arc::new(s3)
}

pub struct Api {
    pub db: TestDb,
    pub project: Project,
    pub storage: Storage,
    pub store: Arc<dyn ObjectStore>,
    pub app: Router,
    _dir: Option<tempfile::TempDir>,
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
        Backend::S3 => (s3_store().await, None),
    };
    let storage = Storage::builder().store(store.clone()).build();
    let app = Router::new().nest("/storage/v1", storage.router()).layer(ProjectLayer::single(project.clone()));
    Api { db, project, storage, store, app, _dir: dir }
}

impl Api {
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
