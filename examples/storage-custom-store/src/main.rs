//! Run with `cargo run -p example-storage-custom-store`.
//!
//! Serves forge-storage over HTTP on 127.0.0.1 with its bytes in a [`CountingStore`] around a
//! `LocalFileSystem` in a temporary directory, then uploads, downloads and deletes an object
//! with a plain HTTP client and prints what the store counted after each step. Postgres is a
//! private cluster started from the installed binaries (forge-core's test support), so nothing
//! needs to be set up first.

use std::error::Error;
use std::sync::Arc;

use axum::Router;
use example_storage_custom_store::{CountingStore, Counts};
use forge_core::ProjectLayer;
use forge_core::testing::test_db;
use forge_storage::Storage;
use object_store::local::LocalFileSystem;
use secrecy::ExposeSecret as _;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The object's size: a little over one 8 MiB part, so the upload takes two.
const SIZE: usize = 8 * 1024 * 1024 + 4321;

/// An HTTP client with the project's service key, as a trusted backend would call storage.
struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/storage/v1{path}", self.base))
            .header("apikey", &self.key)
            .header("authorization", format!("Bearer {}", self.key))
    }
}

/// Fails with the body when `res` is not a success.
async fn ok(what: &str, res: reqwest::Response) -> Result<reqwest::Response> {
    if res.status().is_success() {
        return Ok(res);
    }
    Err(format!("{what} answered {}: {}", res.status(), res.text().await?).into())
}

fn show(step: &str, c: Counts) {
    println!(
        "{step:<10} written {:>9} B in {} object(s), read {:>9} B, deleted {} object(s)",
        c.bytes_written, c.objects_put, c.bytes_read, c.objects_deleted
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let db = test_db().await;
    forge_core::migrate::run(db.pool(), &[forge_storage::MIGRATIONS]).await?;
    let project = db.project("demo");

    // The custom store: keep an `Arc` to read its counters, hand forge-storage a clone.
    let dir = tempfile::tempdir()?;
    let store = Arc::new(CountingStore::new(LocalFileSystem::new_with_prefix(dir.path())?));
    let storage = Storage::builder().store(store.clone()).build()?;

    let app = Router::new().nest("/storage/v1", storage.router()).layer(ProjectLayer::single(project.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("forge-storage on http://{addr}/storage/v1, bytes under {}", dir.path().display());

    let client = Client {
        base: format!("http://{addr}"),
        key: project.keys().service_key().expose_secret().to_owned(),
        http: reqwest::Client::new(),
    };
    let bucket = serde_json::json!({ "name": "demo" });
    ok("creating the bucket", client.request(reqwest::Method::POST, "/bucket").json(&bucket).send().await?).await?;

    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let upload = client
        .request(reqwest::Method::POST, "/object/demo/hello.bin")
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await?;
    ok("the upload", upload).await?;
    show("upload", store.counts());

    let download = client.request(reqwest::Method::GET, "/object/demo/hello.bin").send().await?;
    let body = ok("the download", download).await?.bytes().await?;
    if body[..] != data[..] {
        return Err(format!("downloaded {} bytes, not the {SIZE} uploaded", body.len()).into());
    }
    show("download", store.counts());

    let delete = client.request(reqwest::Method::DELETE, "/object/demo/hello.bin").send().await?;
    ok("the delete", delete).await?;
    show("delete", store.counts());

    server.abort();
    Ok(())
}
