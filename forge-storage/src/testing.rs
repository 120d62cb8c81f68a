//! Test support (feature `test-support`): a real S3-compatible server, moto, for tests of
//! forge-storage and of anything that stores files through it.
//!
//! ```no_run
//! # async fn demo() {
//! use forge_storage::testing::{moto_bucket, moto_keys, moto_store};
//!
//! let bucket = moto_bucket().await;
//! let store = moto_store(&bucket);
//! // ... run forge-storage on `store`, then look at what really is in the bucket:
//! let keys = moto_keys(&bucket, "default/").await;
//! # let _ = (store, keys);
//! # }
//! ```
//!
//! The first call to [`moto_endpoint`] starts moto's S3 server (`FORGE_MOTO_SERVER`, or
//! `compat/.venv/bin/moto_server`, installed by `bash compat/venv.sh`) on a free port; every
//! later call in the process shares it. A watcher stops it within a second of the test
//! process's exit. Each test takes a bucket of its own from [`moto_bucket`], so tests never see
//! each other's keys. moto accepts any credentials; [`MOTO_ACCESS_KEY_ID`] and
//! [`MOTO_SECRET_ACCESS_KEY`] are what [`moto_store`] signs with, for a server configured
//! through its environment to use the same.
#![cfg(feature = "test-support")]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use object_store::ObjectStore;

/// The region moto's buckets are created in.
pub const MOTO_REGION: &str = "us-east-1";
/// The access key id [`moto_store`] signs with (moto accepts any).
pub const MOTO_ACCESS_KEY_ID: &str = "forge-test";
/// The secret key [`moto_store`] signs with (moto accepts any).
pub const MOTO_SECRET_ACCESS_KEY: &str = "forge-test-secret";

/// How long moto may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The URL of this process's moto server (`http://127.0.0.1:<port>`), started on first use.
///
/// # Panics
///
/// When moto's server is not installed or does not start within 30 s.
pub fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(start_moto)
}

fn start_moto() -> String {
    let server = std::env::var("FORGE_MOTO_SERVER")
        .unwrap_or_else(|_| format!("{}/../compat/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
    assert!(
        Path::new(&server).exists(),
        "moto's S3 server is needed for the S3 tests: run `bash compat/venv.sh` (or set FORGE_MOTO_SERVER); \
         not found at {server}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    // The shell watches this process and stops moto when it is gone.
    let script = format!(
        "\"{server}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        parent = std::process::id()
    );
    // Not waited for: it outlives the tests by design and is reaped by init.
    #[allow(clippy::zombie_processes)]
    Command::new("sh").arg("-c").arg(script).spawn().expect("start moto");
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start within {START_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}

/// Creates a fresh, empty bucket on the moto server and returns its name.
///
/// # Panics
///
/// When moto is unavailable or refuses the bucket.
pub async fn moto_bucket() -> String {
    let endpoint = moto_endpoint();
    let bucket = format!("forge-{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("create bucket");
    assert!(created.status().is_success(), "creating the bucket {bucket}: {}", created.status());
    bucket
}

/// An S3 store on `bucket` of the moto server, as forge-storage would be given in production.
///
/// # Panics
///
/// When the store cannot be built (it does not connect until used).
pub fn moto_store(bucket: &str) -> Arc<dyn ObjectStore> {
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(moto_endpoint())
        .with_bucket_name(bucket)
        .with_region(MOTO_REGION)
        .with_access_key_id(MOTO_ACCESS_KEY_ID)
        .with_secret_access_key(MOTO_SECRET_ACCESS_KEY)
        .with_allow_http(true)
        .build()
        .expect("an S3 store on moto");
    Arc::new(s3)
}

/// Every key in `bucket` that starts with `prefix`, sorted, as moto's own S3 API lists them
/// (`ListObjectsV2`, page by page), independently of any `ObjectStore`.
///
/// # Panics
///
/// When moto is unavailable or the bucket does not exist.
pub async fn moto_keys(bucket: &str, prefix: &str) -> Vec<String> {
    let client = reqwest::Client::new();
    let url = format!("{}/{bucket}", moto_endpoint());
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![("list-type", "2"), ("prefix", prefix)];
        if let Some(token) = &token {
            query.push(("continuation-token", token.as_str()));
        }
        let res = client.get(&url).query(&query).send().await.expect("list the bucket");
        let status = res.status();
        let xml = res.text().await.expect("the listing");
        assert!(status.is_success(), "listing {bucket}: {status}: {xml}");
        keys.extend(elements(&xml, "Key").into_iter().map(unescape));
        token = match elements(&xml, "IsTruncated").first() {
            Some(&"true") => Some(unescape(elements(&xml, "NextContinuationToken").first().expect("a continuation"))),
            _ => None,
        };
        if token.is_none() {
            break;
        }
    }
    keys.sort();
    keys
}

/// The text of every `<name>` element of `xml` (S3 listings nest no element in a `Key`).
fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(open.as_str()).skip(1).filter_map(|rest| rest.split_once(close.as_str()).map(|(text, _)| text)).collect()
}

/// Undoes XML's escapes for the five predefined entities (`&amp;` last).
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// `len` bytes of a test object from `seed`: not a repeating pattern, so a misplaced or
/// repeated chunk shows when the object is compared with what was sent.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// The plan Postgres makes for the statement a listing route (`list` or `list-v2`) runs on
/// `bucket` for the request `body`, as the service role: what `EXPLAIN (FORMAT JSON)` answers.
/// With `generic`, the generic plan (the one a statement prepared once and run many times may
/// settle on, made without its parameters' values), else the plan for these values.
///
/// # Panics
///
/// When the body is refused or Postgres fails.
#[doc(hidden)]
pub async fn explain_listing(
    project: &forge_core::Project,
    route: &str,
    bucket: &str,
    body: serde_json::Value,
    generic: bool,
) -> serde_json::Value {
    static PREPARED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let statement = crate::api::listing_statement(route, bucket, body).expect("a listing request");
    let params = statement.params();
    let ctx = forge_core::rls::RequestContext::new(forge_core::Principal::service(), http::Method::POST, "/");
    let tx = forge_core::rls::begin(project.db(), &ctx).await.expect("begin");
    let rows = if generic {
        // PREPARE outlives the transaction: a name of its own, deallocated after.
        let name = format!("forge_explained_{}", PREPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let prepare = format!("set local plan_cache_mode = force_generic_plan; prepare {name} as {}", statement.sql);
        tx.client().batch_execute(&prepare).await.expect("prepare");
        // A generic plan is made without the values: nulls stand for them.
        let args = vec!["null"; params.len()].join(", ");
        let rows = tx.query(&format!("explain (format json) execute {name}({args})"), &[]).await;
        tx.client().batch_execute(&format!("deallocate {name}")).await.expect("deallocate");
        rows.expect("explain")
    } else {
        tx.query(&format!("explain (format json) {}", statement.sql), &params).await.expect("explain")
    };
    tx.rollback().await.expect("rollback");
    rows[0].get(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_keys_are_read_and_unescaped() {
        let xml = "<ListBucketResult><Contents><Key>p/a&amp;b</Key><Size>3</Size></Contents>\
                   <Contents><Key>p/&lt;c&gt;</Key></Contents><IsTruncated>false</IsTruncated></ListBucketResult>";
        let keys: Vec<String> = elements(xml, "Key").into_iter().map(unescape).collect();
        assert_eq!(keys, ["p/a&b", "p/<c>"]);
        assert_eq!(elements(xml, "IsTruncated"), ["false"]);
        assert!(elements(xml, "NextContinuationToken").is_empty());
    }
}
