//! The real binary storing files in S3: moto's S3 server behind `FORGE_S3_*`, driven through
//! `/storage/v1` with the service key, with the bucket itself read back over moto's S3 API.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::Server;
use forge_storage::testing::{
    MOTO_ACCESS_KEY_ID, MOTO_REGION, MOTO_SECRET_ACCESS_KEY, moto_bucket, moto_endpoint, moto_keys, noise,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The project ref, so every blob's key starts with `s3-e2e/`.
const REF: &str = "s3-e2e";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// forge-server's storage API, as the service role.
struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url).header("apikey", &self.key).bearer_auth(&self.key)
    }

    /// `path` under `/storage/v1`.
    fn storage(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, &format!("{}/storage/v1{path}", self.url))
    }

    /// Downloads an object: its status and bytes.
    async fn download(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let res = self.storage(Method::GET, &format!("/object/{path}")).send().await.expect("download");
        (res.status(), res.bytes().await.expect("the body").to_vec())
    }
}

/// A blob's bytes, read from moto directly.
async fn s3_object(http: &reqwest::Client, bucket: &str, key: &str) -> Vec<u8> {
    let res = http.get(format!("{}/{bucket}/{key}", moto_endpoint())).send().await.expect("get from moto");
    assert_eq!(res.status(), StatusCode::OK, "{key} in moto");
    res.bytes().await.expect("the blob").to_vec()
}

#[tokio::test]
async fn files_go_to_s3_and_come_back_through_the_binary() {
    let s3_bucket = moto_bucket().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let envs = [
        ("FORGE_PROJECT_REF", REF),
        ("FORGE_S3_BUCKET", s3_bucket.as_str()),
        ("FORGE_S3_ENDPOINT", moto_endpoint()),
        ("FORGE_S3_REGION", MOTO_REGION),
        ("FORGE_S3_ACCESS_KEY_ID", MOTO_ACCESS_KEY_ID),
        ("FORGE_S3_SECRET_ACCESS_KEY", MOTO_SECRET_ACCESS_KEY),
    ];
    let keys = common::command(dir.path()).arg("keys").envs(envs).output().expect("forge-server keys");
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let keys: Value = serde_json::from_slice(&keys.stdout).expect("JSON");
    assert_eq!(keys["project_ref"], REF);
    let server = Server::start(dir.path(), &envs);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let api = Api {
        http: http.clone(),
        url: server.url.clone(),
        key: keys["service_role_key"].as_str().expect("service key").to_owned(),
    };
    let project_blobs = format!("{REF}/");
    let tus_blobs = format!("{REF}/tus/");
    assert!(moto_keys(&s3_bucket, "").await.is_empty(), "a fresh bucket");
    assert!(!dir.path().join("data/storage").exists(), "no local storage directory when S3 is configured");

    let res = api
        .storage(Method::POST, "/bucket")
        .json(&json!({ "id": "files", "name": "files", "public": false }))
        .send()
        .await
        .expect("create bucket");
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap_or_default());

    // A plain upload: one blob `<ref>/<version>` in S3 holding exactly the bytes.
    let report = noise(300 * 1024 + 7, 0x9e37_79b9);
    let res = api
        .storage(Method::POST, "/object/files/docs/report.bin")
        .header("content-type", "application/octet-stream")
        .body(report.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap_or_default());
    assert_eq!(res.json::<Value>().await.expect("JSON")["Key"], "files/docs/report.bin");
    let blobs = moto_keys(&s3_bucket, "").await;
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let report_blob = blobs[0].clone();
    let version = report_blob.strip_prefix(&project_blobs).unwrap_or_else(|| panic!("under {REF}/: {report_blob}"));
    assert!(!version.is_empty() && !version.contains('/'), "a version key: {report_blob}");
    assert!(s3_object(&http, &s3_bucket, &report_blob).await == report, "moto holds the uploaded bytes");
    let (status, body) = api.download("files/docs/report.bin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == report, "the download is the upload ({} bytes of {})", body.len(), report.len());

    // A TUS upload in two chunks: a part blob in S3 after the first, the object after the last.
    let big = noise(400 * 1024 + 3, 0x2545_f491);
    let split = 150_000;
    let metadata = format!(
        "bucketName {},objectName {},contentType {}",
        b64("files"),
        b64("docs/big.bin"),
        b64("application/octet-stream")
    );
    let res = api
        .storage(Method::POST, "/upload/resumable")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", big.len().to_string())
        .header("upload-metadata", metadata)
        .send()
        .await
        .expect("create the upload");
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap_or_default());
    let location = res.headers().get("location").and_then(|l| l.to_str().ok()).expect("location").to_owned();
    assert!(location.starts_with(&format!("{}/storage/v1/upload/resumable/", server.url)), "{location}");
    let patch = |offset: usize, chunk: &[u8]| {
        api.request(Method::PATCH, &location)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(chunk.to_vec())
            .send()
    };
    let upload_offset =
        |res: &reqwest::Response| res.headers().get("upload-offset").and_then(|o| o.to_str().ok()).map(str::to_owned);

    let res = patch(0, &big[..split]).await.expect("first chunk");
    assert_eq!((res.status(), upload_offset(&res)), (StatusCode::NO_CONTENT, Some(split.to_string())));
    let parts = moto_keys(&s3_bucket, &tus_blobs).await;
    assert_eq!(parts.len(), 1, "the first chunk is a part blob: {parts:?}");
    assert!(s3_object(&http, &s3_bucket, &parts[0]).await == big[..split], "moto holds the first chunk");
    assert_ne!(api.download("files/docs/big.bin").await.0, StatusCode::OK, "not visible before the last byte");
    let res = api.request(Method::HEAD, &location).header("tus-resumable", "1.0.0").send().await.expect("HEAD");
    assert_eq!((res.status(), upload_offset(&res)), (StatusCode::OK, Some(split.to_string())));

    let res = patch(split, &big[split..]).await.expect("last chunk");
    assert_eq!((res.status(), upload_offset(&res)), (StatusCode::NO_CONTENT, Some(big.len().to_string())));
    assert!(moto_keys(&s3_bucket, &tus_blobs).await.is_empty(), "the joined parts are removed");
    let blobs = moto_keys(&s3_bucket, "").await;
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    let joined: Vec<&String> = blobs.iter().filter(|k| **k != report_blob).collect();
    assert_eq!(joined.len(), 1, "the first object's blob is kept: {blobs:?}");
    assert!(joined[0].starts_with(&project_blobs) && !joined[0][project_blobs.len()..].contains('/'), "{blobs:?}");
    assert!(s3_object(&http, &s3_bucket, joined[0]).await == big, "moto holds the joined object");
    let (status, body) = api.download("files/docs/big.bin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == big, "the download is the resumable upload ({} bytes of {})", body.len(), big.len());

    // Deleting the objects deletes their blobs from S3.
    let res = api
        .storage(Method::DELETE, "/object/files")
        .json(&json!({ "prefixes": ["docs/report.bin", "docs/big.bin"] }))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), StatusCode::OK);
    let deleted = res.json::<Value>().await.expect("JSON");
    let mut names: Vec<&str> = deleted.as_array().expect("a list").iter().filter_map(|o| o["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["docs/big.bin", "docs/report.bin"], "{deleted}");
    let left = moto_keys(&s3_bucket, "").await;
    assert!(left.is_empty(), "no blobs are left in S3: {left:?}");
    assert_ne!(api.download("files/docs/report.bin").await.0, StatusCode::OK);

    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(60)).success());
}
