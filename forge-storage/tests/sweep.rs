//! `Storage::sweep`: what uploads left behind goes, what rows name stays.

mod common;

use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use common::{BACKENDS, api};
use forge_storage::Swept;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use serde_json::Value;

#[tokio::test]
async fn a_sweep_removes_unnamed_blobs_and_orphaned_parts_and_keeps_the_rest() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("docs", false).await;
        let key = t.service_key();
        let reference = t.project.reference().as_str().to_owned();
        let r = t.put_raw("POST", "/object/docs/kept.txt", Some(&key), "text/plain", b"kept").await;
        assert_eq!(r.status, 200, "{}", r.text());

        // A resumable upload in progress, with one part stored.
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let req = t
            .builder("POST", "/upload/resumable", Some(&key))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "10")
            .header("upload-metadata", format!("bucketName {},objectName {}", b64("docs"), b64("big.bin")))
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from("first"));
        let r = t.request(req.expect("request")).await;
        assert_eq!((r.status.as_u16(), r.header("upload-offset")), (201, Some("5")), "{}", r.text());

        // What a crash would leave: a version no row names, and parts of an upload whose row
        // is gone. Another project's blobs are not this project's to sweep.
        let stray = Path::from_iter([reference.as_str(), &uuid::Uuid::new_v4().to_string()]);
        let lost_part =
            Path::from_iter([reference.as_str(), "tus", &uuid::Uuid::new_v4().to_string(), "00000000000000000000"]);
        let other = Path::from_iter(["otherproject", &uuid::Uuid::new_v4().to_string()]);
        for path in [&stray, &lost_part, &other] {
            t.store.put(path, "x".into()).await.expect("put");
        }
        // An upload past its expiry.
        let req = t
            .builder("POST", "/upload/resumable", Some(&key))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "10")
            .header("upload-metadata", format!("bucketName {},objectName {}", b64("docs"), b64("late.bin")))
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from("late"));
        assert_eq!(t.request(req.expect("request")).await.status, 201);
        sqlx::query(
            "update storage.resumable_uploads set expires_at = now() - interval '1 minute' where name = 'late.bin'",
        )
        .execute(t.db.pool())
        .await
        .expect("expire");
        let before = t.blobs().await;
        assert_eq!(before.len(), 6, "{backend:?}: {before:?}");

        // Within the grace period nothing young is taken.
        let swept = t.storage.sweep(&t.project).await.expect("sweep");
        assert_eq!(swept, Swept { expired_uploads: 1, orphan_blobs: 0, orphan_uploads: 0 }, "{backend:?}");
        let swept = t.storage.sweep_older_than(&t.project, Duration::ZERO).await.expect("sweep");
        assert_eq!(swept, Swept { expired_uploads: 0, orphan_blobs: 1, orphan_uploads: 1 }, "{backend:?}");

        let after = t.blobs().await;
        assert!(!after.contains(&stray.to_string()) && !after.contains(&lost_part.to_string()), "{after:?}");
        assert!(after.contains(&other.to_string()), "{backend:?}: another project's blob went");
        assert_eq!(after.len(), 3, "{backend:?}: the object, the live upload's part, the other project's: {after:?}");
        let got = t.send("GET", "/object/docs/kept.txt", Some(&key), Value::Null).await;
        assert_eq!(got.text(), "kept");
        // The live upload still finishes.
        let uploads: Vec<String> = sqlx::query_scalar("select name from storage.resumable_uploads")
            .fetch_all(t.db.pool())
            .await
            .expect("uploads");
        assert_eq!(uploads, ["big.bin"]);
    }
}

#[tokio::test]
async fn a_young_version_is_kept_whatever_its_file_time() {
    let t = api(common::Backend::Local).await;
    let reference = t.project.reference().as_str().to_owned();
    let dir = t.local_dir().expect("a local backend").join(&reference);
    // A copy on a local disk is a hard link: its file keeps the source's (old) time. The
    // version's time-ordered id says it is new.
    let young = uuid::Uuid::now_v7().to_string();
    let old = uuid::Uuid::new_v4().to_string();
    for version in [&young, &old] {
        t.store.put(&Path::from_iter([reference.as_str(), version.as_str()]), "x".into()).await.expect("put");
        let file = std::fs::File::options().write(true).open(dir.join(version)).expect("file");
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(24 * 3600);
        file.set_modified(long_ago).expect("mtime");
    }
    let swept = t.storage.sweep(&t.project).await.expect("sweep");
    assert_eq!(swept.orphan_blobs, 1);
    let left = t.blobs().await;
    assert_eq!(left, [format!("{reference}/{young}")]);
}
