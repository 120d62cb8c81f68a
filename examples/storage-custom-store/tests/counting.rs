//! [`CountingStore`] behind forge-storage's router, against a real Postgres (a fresh database
//! per test) and a real inner store: what the HTTP API does to the store is what it counts.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use example_storage_custom_store::{CountingStore, Counts};
use forge_core::ProjectLayer;
use forge_core::testing::{TestDb, test_db};
use forge_storage::Storage;
use futures_util::TryStreamExt as _;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _};
use tower::ServiceExt as _;

/// A little over forge-storage's 8 MiB upload part, so the upload is sent in two parts.
const N: u64 = 8 * 1024 * 1024 + 12_345;

struct Harness<S: ObjectStore> {
    _db: TestDb,
    app: Router,
    key: String,
    store: Arc<CountingStore<S>>,
}

/// forge-storage over a fresh database, its bytes in a `CountingStore` around `inner`, with a
/// bucket `files`.
async fn harness<S: ObjectStore>(inner: S) -> Harness<S> {
    let db = test_db().await;
    forge_core::migrate::run(db.pool(), &[forge_storage::MIGRATIONS]).await.expect("migrate");
    let project = db.project("test");
    let store = Arc::new(CountingStore::new(inner));
    let storage = Storage::builder().store(store.clone()).build().expect("storage");
    let app = Router::new().nest("/storage/v1", storage.router()).layer(ProjectLayer::single(project.clone()));
    let key = secrecy::ExposeSecret::expose_secret(project.keys().service_key()).to_owned();
    let h = Harness { _db: db, app, key, store };
    let bucket = Body::from(r#"{ "name": "files" }"#);
    let res = h.call(h.request("POST", "/bucket").header(header::CONTENT_TYPE, "application/json"), bucket).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.store.counts(), Counts::default(), "creating a bucket touches no bytes");
    h
}

impl<S: ObjectStore> Harness<S> {
    /// A request with the service key, as a trusted backend sends it.
    fn request(&self, method: &str, uri: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("/storage/v1{uri}"))
            .header("apikey", &self.key)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
    }

    /// Sends a request through the router; the response body is not read yet.
    async fn call(&self, req: axum::http::request::Builder, body: Body) -> Response<Body> {
        self.app.clone().oneshot(req.body(body).expect("request")).await.expect("infallible")
    }

    /// Every blob in the inner store, looked at without counting.
    async fn blobs(&self) -> Vec<ObjectMeta> {
        self.store.inner().list(None).try_collect().await.expect("list")
    }
}

async fn read(res: Response<Body>) -> Vec<u8> {
    axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body").to_vec()
}

/// Upload, download (whole and a range), delete; the counters after each step.
async fn upload_download_delete<S: ObjectStore>(inner: S) {
    let h = harness(inner).await;
    let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();

    let upload =
        h.request("POST", "/object/files/dir/big.bin").header(header::CONTENT_TYPE, "application/octet-stream");
    let res = h.call(upload, Body::from(data.clone())).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", String::from_utf8_lossy(&read(res).await));
    assert_eq!(h.store.counts(), Counts { bytes_written: N, objects_put: 1, ..Counts::default() });
    let blobs = h.blobs().await;
    assert_eq!(blobs.iter().map(|b| b.size).collect::<Vec<_>>(), [N], "one blob of N bytes in the inner store");

    let res = h.call(h.request("GET", "/object/files/dir/big.bin"), Body::empty()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.store.counts().bytes_read, 0, "bytes are counted as the body streams, not before");
    assert!(read(res).await == data, "the download is the upload");
    assert_eq!(h.store.counts(), Counts { bytes_written: N, bytes_read: N, objects_put: 1, objects_deleted: 0 });

    let range = h.request("GET", "/object/files/dir/big.bin").header(header::RANGE, "bytes=100-199");
    let res = h.call(range, Body::empty()).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert!(read(res).await == data[100..200]);
    assert_eq!(h.store.counts().bytes_read, N + 100, "a range reads only its bytes");

    let res = h.call(h.request("DELETE", "/object/files/dir/big.bin"), Body::empty()).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", String::from_utf8_lossy(&read(res).await));
    assert_eq!(h.store.counts(), Counts { bytes_written: N, bytes_read: N + 100, objects_put: 1, objects_deleted: 1 });
    assert!(h.blobs().await.is_empty(), "the inner store has no blob left");
    let gone = h.store.inner().head(&blobs[0].location).await;
    assert!(matches!(gone, Err(object_store::Error::NotFound { .. })), "{gone:?}");
    let res = h.call(h.request("GET", "/object/files/dir/big.bin"), Body::empty()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "the object is gone from the API too");
    assert_eq!(h.store.counts().bytes_read, N + 100);
}

/// A local filesystem answers reads with an open file, which the wrapper must stream.
#[tokio::test]
async fn counts_bytes_and_objects_on_a_local_filesystem() {
    let dir = tempfile::tempdir().expect("tempdir");
    upload_download_delete(LocalFileSystem::new_with_prefix(dir.path()).expect("fs")).await;
}

/// The in-memory store answers reads with a stream.
#[tokio::test]
async fn counts_bytes_and_objects_in_memory() {
    upload_download_delete(InMemory::new()).await;
}
