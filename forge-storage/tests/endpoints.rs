//! Each endpoint against a real Postgres; those that move bytes run on the in-memory, local-disk and S3 (moto) backends.

mod common;

use common::AssertError as _;

use axum::body::Body;
use base64::Engine as _;
use common::{BACKENDS, api};
use serde_json::{Value, json};

#[tokio::test]
async fn buckets_crud_with_limits_and_names() {
    for backend in BACKENDS {
        let t = api(backend).await;
        let r = t
            .service(
                "POST",
                "/bucket",
                json!({ "id": "avatars", "name": "avatars", "public": false, "file_size_limit": "1KB", "allowed_mime_types": ["image/*"] }),
            )
            .await;
        assert_eq!((r.status.as_u16(), r.json()), (200, json!({ "name": "avatars" })), "{backend:?}");
        let r = t.service("POST", "/bucket", json!({ "name": "avatars" })).await;
        r.assert_error(400, "409", "BucketAlreadyExists");
        assert_eq!(r.json()["error"], "Duplicate");
        t.service("POST", "/bucket", json!({ "name": "a/b" })).await.assert_error(400, "400", "InvalidBucketName");
        t.service("POST", "/bucket", json!({ "name": "x", "file_size_limit": "lots" })).await.assert_error(
            400,
            "400",
            "InvalidRequest",
        );

        let b = t.service("GET", "/bucket/avatars", Value::Null).await.json();
        assert_eq!(b["file_size_limit"], 1000, "Storage's units are decimal");
        assert_eq!(b["allowed_mime_types"], json!(["image/*"]));
        assert_eq!(b["public"], false);
        assert!(b["created_at"].is_string() && b["updated_at"].is_string());
        t.service("GET", "/bucket/nope", Value::Null).await.assert_error(400, "404", "NoSuchBucket");
        // Input the framework refuses (a query string that does not deserialize, a method the
        // route does not take) is answered in Storage's shape too, not in plain text.
        let r = t.service("GET", "/bucket?limit=x", Value::Null).await;
        r.assert_error(400, "400", "InvalidRequest");
        assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("limit")), "{}", r.text());
        t.service("PATCH", "/bucket/avatars", Value::Null).await.assert_error(400, "405", "InvalidRequest");

        let r = t.service("PUT", "/bucket/avatars", json!({ "public": true, "file_size_limit": null })).await;
        assert_eq!(r.json()["message"], "Successfully updated");
        let b = t.service("GET", "/bucket/avatars", Value::Null).await.json();
        assert_eq!((b["public"].clone(), b["file_size_limit"].clone()), (json!(true), Value::Null));
        assert_eq!(b["allowed_mime_types"], json!(["image/*"]), "untouched fields stay");

        t.create_bucket("docs", false).await;
        let list = t.service("GET", "/bucket", Value::Null).await.json();
        let names: Vec<&str> = list.as_array().expect("array").iter().filter_map(|b| b["name"].as_str()).collect();
        assert_eq!(names, ["avatars", "docs"]);
        let list = t.service("GET", "/bucket?search=doc&limit=5", Value::Null).await.json();
        assert_eq!(list.as_array().map(Vec::len), Some(1));

        // Without policies, the anon role sees no buckets and cannot create any.
        assert_eq!(t.send("GET", "/bucket", None, Value::Null).await.json(), json!([]));
        let r = t.send("POST", "/bucket", None, json!({ "name": "mine" })).await;
        r.assert_error(400, "403", "AccessDenied");

        // A bucket with objects is refused until emptied.
        t.put_raw("POST", "/object/docs/a.txt", Some(&t.service_key()), "text/plain", b"hello").await;
        t.service("DELETE", "/bucket/docs", json!({})).await.assert_error(400, "409", "ResourceNotEmpty");
        let r = t.service("POST", "/bucket/docs/empty", json!({})).await;
        assert_eq!(r.json()["message"], "Successfully emptied");
        assert!(t.blobs().await.is_empty(), "emptying removed the bytes");
        let r = t.service("DELETE", "/bucket/docs", json!({})).await;
        assert_eq!(r.json()["message"], "Successfully deleted");
        t.service("DELETE", "/bucket/docs", json!({})).await.assert_error(400, "404", "NoSuchBucket");
    }
}

#[tokio::test]
async fn upload_download_with_ranges_validators_and_info() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("docs", false).await;
        let key = t.service_key();
        let meta = base64_json(&json!({ "owner": "team-a" }));
        let req = t
            .builder("POST", "/object/docs/reports/2026/q3.txt", Some(&key))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("cache-control", "max-age=60")
            .header("x-metadata", meta)
            .body(Body::from("0123456789"))
            .expect("request");
        let r = t.request(req).await;
        assert_eq!(r.status, 200, "{backend:?} {}", r.text());
        assert_eq!(r.json()["Key"], "docs/reports/2026/q3.txt");
        assert!(r.json()["Id"].as_str().is_some_and(|i| i.len() == 36));

        let r = t.send("GET", "/object/docs/reports/2026/q3.txt", Some(&key), Value::Null).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "0123456789"));
        assert_eq!(r.header("content-type"), Some("text/plain;charset=UTF-8"));
        assert_eq!(r.header("cache-control"), Some("max-age=60"));
        assert_eq!(r.header("content-length"), Some("10"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert!(r.header("last-modified").is_some_and(|l| l.ends_with(" GMT")), "{:?}", r.header("last-modified"));
        let etag = r.header("etag").expect("etag").to_owned();
        let r = t.send("GET", "/object/authenticated/docs/reports/2026/q3.txt", Some(&key), Value::Null).await;
        assert_eq!(r.text(), "0123456789");

        let req = t.builder("GET", "/object/docs/reports/2026/q3.txt", Some(&key)).header("if-none-match", &etag);
        let r = t.request(req.body(Body::empty()).expect("req")).await;
        assert_eq!(r.status, 304);
        assert!(r.bytes.is_empty());
        let req = t.builder("GET", "/object/docs/reports/2026/q3.txt", Some(&key)).header("range", "bytes=2-5");
        let r = t.request(req.body(Body::empty()).expect("req")).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (206, "2345"));
        assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
        let req = t.builder("GET", "/object/docs/reports/2026/q3.txt", Some(&key)).header("range", "bytes=-3");
        assert_eq!(t.request(req.body(Body::empty()).expect("req")).await.text(), "789");
        let req = t.builder("GET", "/object/docs/reports/2026/q3.txt", Some(&key)).header("range", "bytes=20-");
        let r = t.request(req.body(Body::empty()).expect("req")).await;
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */10"));

        let r = t.send("GET", "/object/docs/reports/2026/q3.txt?download=", Some(&key), Value::Null).await;
        assert!(r.header("content-disposition").is_some_and(|d| d.contains("filename=\"q3.txt\"")));
        let r = t
            .send("GET", "/object/docs/reports/2026/q3.txt?download=r%C3%A9sum%C3%A9.txt", Some(&key), Value::Null)
            .await;
        assert!(r.header("content-disposition").is_some_and(|d| d.contains("UTF-8''r%C3%A9sum%C3%A9.txt")));

        let info = t.send("GET", "/object/info/docs/reports/2026/q3.txt", Some(&key), Value::Null).await.json();
        assert_eq!(info["name"], "reports/2026/q3.txt");
        assert_eq!(info["bucket_id"], "docs");
        assert_eq!(info["size"], 10);
        assert_eq!(info["content_type"], "text/plain;charset=UTF-8");
        assert_eq!(info["cache_control"], "max-age=60");
        assert_eq!(info["metadata"], json!({ "owner": "team-a" }));
        assert_eq!(info["etag"], etag.as_str());

        // exists(): HEAD; a missing object is 400 with statusCode 404.
        assert_eq!(t.send("HEAD", "/object/docs/reports/2026/q3.txt", Some(&key), Value::Null).await.status, 200);
        let r = t.send("GET", "/object/docs/missing.txt", Some(&key), Value::Null).await;
        r.assert_error(400, "404", "NoSuchKey");
        assert_eq!(t.send("HEAD", "/object/docs/missing.txt", Some(&key), Value::Null).await.status, 400);
        t.send("GET", "/object/nobucket/x.txt", Some(&key), Value::Null).await.assert_error(400, "404", "NoSuchKey");
    }
}

fn base64_json(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

fn multipart(field: &str, filename: &str, mime: &str, bytes: &[u8], extra: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----forgeboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in extra {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn multipart_uploads_upsert_update_and_limits() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("media", false).await;
        let key = t.service_key();
        // storage-js: an unnamed file part after cacheControl and metadata.
        let (ct, body) = multipart(
            "",
            "blob",
            "image/png",
            b"\x89PNG-one",
            &[("cacheControl", "3600"), ("metadata", "{\"alt\":\"cat\"}")],
        );
        let req =
            t.builder("POST", "/object/media/cat.png", Some(&key)).header("content-type", ct).body(Body::from(body));
        let r = t.request(req.expect("req")).await;
        assert_eq!(r.status, 200, "{backend:?} {}", r.text());
        let info = t.send("GET", "/object/info/media/cat.png", Some(&key), Value::Null).await.json();
        assert_eq!(
            (info["content_type"].clone(), info["cache_control"].clone()),
            (json!("image/png"), json!("max-age=3600"))
        );
        assert_eq!(info["metadata"], json!({ "alt": "cat" }));

        // storage3: a part named `file`, metadata after it.
        let (ct, body) = multipart("file", "dog.png", "image/png", b"\x89PNG-dog", &[]);
        let req =
            t.builder("POST", "/object/media/dog.png", Some(&key)).header("content-type", ct).body(Body::from(body));
        assert_eq!(t.request(req.expect("req")).await.status, 200);

        // A second POST without x-upsert is a conflict; nothing is left behind.
        let before = t.blobs().await;
        let r = t.put_raw("POST", "/object/media/cat.png", Some(&key), "image/png", b"\x89PNG-two").await;
        r.assert_error(400, "409", "KeyAlreadyExists");
        assert_eq!(t.blobs().await, before, "the refused upload's bytes are gone");
        // With x-upsert the object is replaced, and the old bytes go.
        let req = t
            .builder("POST", "/object/media/cat.png", Some(&key))
            .header("content-type", "image/png")
            .header("x-upsert", "true")
            .body(Body::from(&b"\x89PNG-two"[..]));
        assert_eq!(t.request(req.expect("req")).await.status, 200);
        let r = t.send("GET", "/object/media/cat.png", Some(&key), Value::Null).await;
        assert_eq!(r.bytes, b"\x89PNG-two");
        assert_eq!(t.blobs().await.len(), 2, "one blob per object");

        // PUT replaces an existing object and refuses a missing one.
        let r = t.put_raw("PUT", "/object/media/dog.png", Some(&key), "image/png", b"\x89PNG-dog2").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(t.send("GET", "/object/media/dog.png", Some(&key), Value::Null).await.bytes, b"\x89PNG-dog2");
        let r = t.put_raw("PUT", "/object/media/none.png", Some(&key), "image/png", b"x").await;
        r.assert_error(400, "404", "NoSuchKey");
        assert_eq!(t.blobs().await.len(), 2);

        // Size and MIME limits, enforced while streaming: nothing stored.
        t.service(
            "POST",
            "/bucket",
            json!({ "name": "tiny", "file_size_limit": 8, "allowed_mime_types": ["image/*", "text/csv"] }),
        )
        .await;
        let (rows, blobs) = (t.rows().await, t.blobs().await.len());
        t.put_raw("POST", "/object/tiny/a.png", Some(&key), "image/png", b"123456789").await.assert_error(
            400,
            "413",
            "EntityTooLarge",
        );
        let (ct, body) = multipart("", "blob", "image/png", b"123456789", &[]);
        let req = t.builder("POST", "/object/tiny/b.png", Some(&key)).header("content-type", ct).body(Body::from(body));
        t.request(req.expect("req")).await.assert_error(400, "413", "EntityTooLarge");
        t.put_raw("POST", "/object/tiny/a.txt", Some(&key), "text/plain", b"1").await.assert_error(
            400,
            "415",
            "InvalidMimeType",
        );
        assert_eq!((t.rows().await, t.blobs().await.len()), (rows, blobs));
        assert_eq!(
            t.put_raw("POST", "/object/tiny/a.csv", Some(&key), "text/csv; charset=utf-8", b"a,b").await.status,
            200
        );

        for bad in
            ["a/../b.txt", "a//b.txt", "./a.txt", "a/%2E%2E/b.txt", "a%00b.txt", "r%C3%A9sum%C3%A9.txt", "a%23b.txt"]
        {
            let r = t.put_raw("POST", &format!("/object/media/{bad}"), Some(&key), "text/plain", b"x").await;
            r.assert_error(400, "400", "InvalidKey");
        }
    }
}

#[tokio::test]
async fn an_interrupted_upload_leaves_no_row_and_no_blob() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("docs", false).await;
        let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![
            Ok(axum::body::Bytes::from(vec![7u8; 64 * 1024])),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
        ];
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let req = t
            .builder("POST", "/object/docs/big.bin", Some(&t.service_key()))
            .header("content-type", "application/octet-stream")
            .body(body)
            .expect("req");
        let r = t.request(req).await;
        assert_eq!(r.status, 400, "{backend:?} {}", r.text());
        assert_eq!(t.rows().await, 0);
        assert!(t.blobs().await.is_empty(), "{:?}", t.blobs().await);
    }
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off_and_leaves_nothing() {
    let config =
        forge_storage::StorageConfig::default().with_upload_idle_timeout(std::time::Duration::from_millis(300));
    for backend in BACKENDS {
        let t = common::api_with(backend, config.clone()).await;
        t.create_bucket("docs", false).await;
        // One chunk, then nothing more, ever.
        let first =
            futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![7u8; 64 * 1024]))]);
        let body = Body::from_stream(futures_util::StreamExt::chain(first, futures_util::stream::pending()));
        let req = t
            .builder("POST", "/object/docs/stalled.bin", Some(&t.service_key()))
            .header("content-type", "application/octet-stream")
            .body(body)
            .expect("req");
        let r =
            tokio::time::timeout(std::time::Duration::from_secs(20), t.request(req)).await.expect("cut off in time");
        r.assert_error(400, "408", "RequestTimeout");
        assert_eq!(t.rows().await, 0);
        assert!(t.blobs().await.is_empty(), "{:?}", t.blobs().await);
    }
}

#[tokio::test]
async fn list_move_copy_and_remove() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("docs", false).await;
        t.create_bucket("archive", false).await;
        let key = t.service_key();
        for name in ["a.txt", "b.txt", "folder/c.txt", "folder/sub/d.txt", "folder/sub/e.txt"] {
            let r = t.put_raw("POST", &format!("/object/docs/{name}"), Some(&key), "text/plain", name.as_bytes()).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        let names = |v: &Value| -> Vec<(String, bool)> {
            v.as_array()
                .expect("array")
                .iter()
                .map(|e| (e["name"].as_str().expect("name").to_owned(), e["id"].is_string()))
                .collect()
        };
        let root =
            t.service("POST", "/object/list/docs", json!({ "prefix": "", "limit": 100, "offset": 0 })).await.json();
        assert_eq!(names(&root), [("a.txt".into(), true), ("b.txt".into(), true), ("folder".into(), false)]);
        let file = &root[0];
        assert_eq!(file["metadata"]["size"], 5);
        assert_eq!(file["metadata"]["mimetype"], "text/plain");
        assert!(root[2]["metadata"].is_null() && root[2]["updated_at"].is_null());
        let inner = t.service("POST", "/object/list/docs", json!({ "prefix": "folder/" })).await.json();
        assert_eq!(names(&inner), [("c.txt".into(), true), ("sub".into(), false)]);
        let deep =
            t.service("POST", "/object/list/docs", json!({ "prefix": "folder/sub", "search": "e" })).await.json();
        assert_eq!(names(&deep), [("e.txt".into(), true)]);
        let page = t
            .service(
                "POST",
                "/object/list/docs",
                json!({ "prefix": "", "limit": 1, "offset": 1, "sortBy": { "column": "name", "order": "desc" } }),
            )
            .await
            .json();
        assert_eq!(names(&page), [("b.txt".into(), true)]);
        // Any column but the name: folders first, then files by that column.
        let by_date = t
            .service(
                "POST",
                "/object/list/docs",
                json!({ "prefix": "", "sortBy": { "column": "created_at", "order": "desc" } }),
            )
            .await
            .json();
        assert_eq!(names(&by_date), [("folder".into(), false), ("b.txt".into(), true), ("a.txt".into(), true)]);
        // Prefixes match case-insensitively, as in Supabase.
        let upper = t.service("POST", "/object/list/docs", json!({ "prefix": "FOLDER/" })).await.json();
        assert_eq!(names(&upper), [("c.txt".into(), true), ("sub".into(), false)]);

        // Move renames the row; the bytes stay put.
        let blobs = t.blobs().await;
        let r = t
            .service(
                "POST",
                "/object/move",
                json!({ "bucketId": "docs", "sourceKey": "a.txt", "destinationKey": "moved/a.txt" }),
            )
            .await;
        assert_eq!(r.json()["message"], "Successfully moved", "{}", r.text());
        assert_eq!(t.blobs().await, blobs);
        assert_eq!(t.send("GET", "/object/docs/moved/a.txt", Some(&key), Value::Null).await.text(), "a.txt");
        t.send("GET", "/object/docs/a.txt", Some(&key), Value::Null).await.assert_error(400, "404", "NoSuchKey");
        let r = t
            .service(
                "POST",
                "/object/move",
                json!({ "bucketId": "docs", "sourceKey": "b.txt", "destinationKey": "moved/a.txt" }),
            )
            .await;
        r.assert_error(400, "409", "KeyAlreadyExists");
        let r = t
            .service("POST", "/object/move", json!({ "bucketId": "docs", "sourceKey": "b.txt", "destinationKey": "b.txt", "destinationBucket": "archive" }))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(t.send("GET", "/object/archive/b.txt", Some(&key), Value::Null).await.text(), "b.txt");

        // Copy makes a second object with its own bytes.
        let r = t
            .service("POST", "/object/copy", json!({ "bucketId": "docs", "sourceKey": "moved/a.txt", "destinationKey": "a-copy.txt", "destinationBucket": "archive" }))
            .await;
        assert_eq!(r.json()["Key"], "archive/a-copy.txt", "{}", r.text());
        assert_eq!(t.blobs().await.len(), 6);
        t.send("DELETE", "/object/docs/moved/a.txt", Some(&key), Value::Null).await;
        assert_eq!(t.send("GET", "/object/archive/a-copy.txt", Some(&key), Value::Null).await.text(), "a.txt");

        // Bulk remove returns what went; missing names are ignored.
        let r = t
            .service("DELETE", "/object/docs", json!({ "prefixes": ["folder/c.txt", "folder/sub/d.txt", "nope.txt"] }))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let mut gone: Vec<String> =
            r.json().as_array().expect("array").iter().map(|o| o["name"].as_str().expect("name").to_owned()).collect();
        gone.sort();
        assert_eq!(gone, ["folder/c.txt", "folder/sub/d.txt"]);
        assert_eq!(t.rows().await, 3);
        assert_eq!(t.blobs().await.len(), 3, "removed objects' bytes are gone");
        let r = t.send("DELETE", "/object/docs/nope.txt", Some(&key), Value::Null).await;
        r.assert_error(400, "404", "NoSuchKey");
    }
}

#[tokio::test]
async fn signed_urls_are_bound_to_one_object_and_expire() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("private", false).await;
        let key = t.service_key();
        t.put_raw("POST", "/object/private/dir/secret%20one.txt", Some(&key), "text/plain", b"top secret").await;
        t.put_raw("POST", "/object/private/other.txt", Some(&key), "text/plain", b"other").await;
        let r = t.service("POST", "/object/sign/private/dir/secret%20one.txt", json!({ "expiresIn": 60 })).await;
        let url = r.json()["signedURL"].as_str().expect("signedURL").to_owned();
        assert!(url.starts_with("/object/sign/private/dir/secret one.txt?token="), "the decoded key: {url}");
        let fetch = |url: String| {
            let t = &t;
            async move {
                let uri = url.replace(' ', "%20");
                let req =
                    axum::http::Request::builder().uri(format!("/storage/v1{uri}")).body(Body::empty()).expect("req");
                t.request(req).await
            }
        };
        let r = fetch(url.clone()).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "top secret"));
        let r = fetch(format!("{url}&download=s.txt")).await;
        assert!(r.header("content-disposition").is_some_and(|d| d.contains("s.txt")));

        // Bound to its object, tamper-evident, and expiring.
        let token = url.split("token=").nth(1).expect("token").to_owned();
        fetch(format!("/object/sign/private/other.txt?token={token}")).await.assert_error(
            400,
            "400",
            "InvalidSignature",
        );
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        fetch(format!("/object/sign/private/dir/secret%20one.txt?token={forged}")).await.assert_error(
            400,
            "400",
            "InvalidJWT",
        );
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired =
            json!({ "url": "private/dir/secret one.txt", "scope": "download", "iat": now - 600, "exp": now - 300 });
        let expired = t.project.keys().sign_hs256(expired.as_object().expect("claims")).expect("sign");
        fetch(format!("/object/sign/private/dir/secret%20one.txt?token={expired}")).await.assert_error(
            400,
            "400",
            "ExpiredToken",
        );
        fetch("/object/sign/private/other.txt".into()).await.assert_error(400, "400", "InvalidSignature");

        t.service("POST", "/object/sign/private/other.txt", json!({ "expiresIn": 0 })).await.assert_error(
            400,
            "400",
            "InvalidRequest",
        );
        t.service("POST", "/object/sign/private/missing.txt", json!({ "expiresIn": 60 })).await.assert_error(
            400,
            "404",
            "NoSuchKey",
        );
        let many = t
            .service("POST", "/object/sign/private", json!({ "expiresIn": 60, "paths": ["other.txt", "missing.txt"] }))
            .await
            .json();
        assert!(many[0]["signedURL"].as_str().is_some_and(|u| u.starts_with("/object/sign/private/other.txt?token=")));
        assert_eq!((many[1]["signedURL"].clone(), many[1]["path"].clone()), (Value::Null, json!("missing.txt")));
        assert!(many[1]["error"].is_string());
    }
}

#[tokio::test]
async fn policies_decide_who_reads_and_writes_each_folder() {
    let t = api(common::Backend::Memory).await;
    t.create_bucket("private", false).await;
    t.create_bucket("public", true).await;
    sqlx::raw_sql(
        "create policy own_folder_read on storage.objects for select to authenticated \
           using (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text); \
         create policy own_folder_write on storage.objects for insert to authenticated \
           with check (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text and owner = auth.uid()); \
         create policy own_folder_update on storage.objects for update to authenticated \
           using (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text); \
         create policy own_folder_delete on storage.objects for delete to authenticated \
           using (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text);",
    )
    .execute(t.db.pool())
    .await
    .expect("policies");
    let (ann, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let (ann_token, bob_token) = (t.user_token(ann), t.user_token(bob));

    let r =
        t.put_raw("POST", &format!("/object/private/{ann}/notes.txt"), Some(&ann_token), "text/plain", b"ann's").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let owner: Option<uuid::Uuid> =
        sqlx::query_scalar("select owner from storage.objects").fetch_one(t.db.pool()).await.expect("owner");
    assert_eq!(owner, Some(ann), "owner comes from the token's subject");
    let r = t.put_raw("POST", &format!("/object/private/{bob}/notes.txt"), Some(&ann_token), "text/plain", b"x").await;
    r.assert_error(400, "403", "AccessDenied");
    assert_eq!(t.blobs().await.len(), 1, "the refused upload left no bytes");
    // The policies are asked before any byte is read: a body that would fail is never touched.
    let never_read = || {
        let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
            vec![Err(std::io::Error::other("the body was read"))];
        Body::from_stream(futures_util::stream::iter(chunks))
    };
    let req = t
        .builder("POST", &format!("/object/private/{bob}/big.bin"), Some(&ann_token))
        .header("content-type", "application/octet-stream")
        .body(never_read())
        .expect("req");
    t.request(req).await.assert_error(400, "403", "AccessDenied");
    let req = t
        .builder("POST", &format!("/object/private/{ann}/notes.txt"), Some(&ann_token))
        .header("content-type", "text/plain")
        .body(never_read())
        .expect("req");
    t.request(req).await.assert_error(400, "409", "KeyAlreadyExists");

    let path = format!("/object/private/{ann}/notes.txt");
    assert_eq!(t.send("GET", &path, Some(&ann_token), Value::Null).await.text(), "ann's");
    t.send("GET", &path, Some(&bob_token), Value::Null).await.assert_error(400, "404", "NoSuchKey");
    t.send("GET", &path, None, Value::Null).await.assert_error(400, "404", "NoSuchKey");
    let listed = t.send("POST", "/object/list/private", Some(&bob_token), json!({ "prefix": ann.to_string() })).await;
    assert_eq!(listed.json(), json!([]));
    t.send("POST", &format!("/object/sign/private/{ann}/notes.txt"), Some(&bob_token), json!({ "expiresIn": 60 }))
        .await
        .assert_error(400, "404", "NoSuchKey");
    // Bob cannot delete it either; Ann can.
    t.send("DELETE", &path, Some(&bob_token), Value::Null).await.assert_error(400, "404", "NoSuchKey");
    assert_eq!(t.rows().await, 1);

    // Private objects are never served on public URLs; public buckets are, without a token.
    t.send("GET", &format!("/object/public/private/{ann}/notes.txt"), None, Value::Null).await.assert_error(
        400,
        "404",
        "NoSuchBucket",
    );
    let key = t.service_key();
    t.put_raw("POST", "/object/public/logo.svg", Some(&key), "image/svg+xml", b"<svg/>").await;
    let req = axum::http::Request::builder().uri("/storage/v1/object/public/public/logo.svg").body(Body::empty());
    let r = t.request(req.expect("req")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "<svg/>"));
    assert_eq!(t.send("GET", "/object/info/public/public/logo.svg", None, Value::Null).await.json()["size"], 6);
    assert_eq!(t.send("DELETE", &path, Some(&ann_token), Value::Null).await.status, 200);
}

#[tokio::test]
async fn signed_upload_urls_upload_once_as_their_signer() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("drop", false).await;
        sqlx::raw_sql(
            "create policy own_insert on storage.objects for insert to authenticated \
           with check (bucket_id = 'drop' and (storage.foldername(name))[1] = auth.uid()::text);",
        )
        .execute(t.db.pool())
        .await
        .expect("policy");
        let ann = uuid::Uuid::new_v4();
        let token = t.user_token(ann);
        let r = t
            .send("POST", &format!("/object/upload/sign/drop/{}/x.txt", uuid::Uuid::new_v4()), Some(&token), json!({}))
            .await;
        r.assert_error(400, "403", "AccessDenied");
        let r = t.send("POST", &format!("/object/upload/sign/drop/{ann}/report.txt"), Some(&token), json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let url = r.json()["url"].as_str().expect("url").to_owned();
        let upload_token = r.json()["token"].as_str().expect("token").to_owned();
        assert!(url.ends_with(&format!("?token={upload_token}")), "{url}");

        // No JWT needed: the token is the permission.
        let put = |body: &'static [u8]| {
            axum::http::Request::builder()
                .method("PUT")
                .uri(format!("/storage/v1{url}"))
                .header("content-type", "text/plain")
                .body(Body::from(body))
                .expect("req")
        };
        let r = t.request(put(b"first")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["Key"], format!("drop/{ann}/report.txt"));
        let owner: Option<uuid::Uuid> =
            sqlx::query_scalar("select owner from storage.objects").fetch_one(t.db.pool()).await.expect("owner");
        assert_eq!(owner, Some(ann));
        t.request(put(b"second")).await.assert_error(400, "409", "KeyAlreadyExists");

        // Upload tokens and download tokens do not stand in for each other.
        let r = t
            .request(
                axum::http::Request::builder()
                    .uri(format!("/storage/v1/object/sign/drop/{ann}/report.txt?token={upload_token}"))
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        r.assert_error(400, "400", "InvalidSignature");
        let key = t.service_key();
        let signed =
            t.service("POST", &format!("/object/sign/drop/{ann}/report.txt"), json!({ "expiresIn": 60 })).await;
        let download_token =
            signed.json()["signedURL"].as_str().expect("url").split("token=").nth(1).expect("t").to_owned();
        let req = axum::http::Request::builder()
            .method("PUT")
            .uri(format!("/storage/v1/object/upload/sign/drop/{ann}/report.txt?token={download_token}"))
            .header("content-type", "text/plain")
            .body(Body::from("overwrite"))
            .expect("req");
        t.request(req).await.assert_error(400, "400", "InvalidSignature");
        assert_eq!(
            t.send("GET", &format!("/object/drop/{ann}/report.txt"), Some(&key), Value::Null).await.text(),
            "first"
        );
    }
}

#[tokio::test]
async fn a_refused_upload_is_answered_after_its_body_not_with_a_reset() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let t = api(common::Backend::Memory).await;
    t.service("POST", "/bucket", json!({ "name": "tiny", "file_size_limit": 16, "allowed_mime_types": ["image/*"] }))
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = t.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let key = t.service_key();
    for (mime, why) in [("image/png", "413"), ("application/pdf", "415")] {
        let (ct, body) = multipart("", "blob", mime, &vec![7u8; 24 * 1024 * 1024], &[("cacheControl", "3600")]);
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /storage/v1/object/tiny/big.bin HTTP/1.1\r\nhost: {addr}\r\napikey: {key}\r\n\
             authorization: Bearer {key}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await.expect("head");
        // The whole body goes out: the server reads it before answering.
        tcp.write_all(&body).await.unwrap_or_else(|e| panic!("{mime}: the server hung up mid-body: {e}"));
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("\"message\"") {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "{mime}: no answer");
            answer.extend_from_slice(&buf[..n]);
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(&format!("\"statusCode\":\"{why}\"")), "{answer}");
    }
    assert!(t.blobs().await.is_empty());
}

#[tokio::test]
async fn a_refused_signed_upload_is_answered_after_its_body() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let t = api(common::Backend::Memory).await;
    t.create_bucket("drop", false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = t.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body = vec![7u8; 8 * 1024 * 1024];
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "PUT /storage/v1/object/upload/sign/drop/a.bin?token=forged HTTP/1.1\r\nhost: {addr}\r\napikey: {}\r\n\
         content-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        t.anon_key(),
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(&body).await.unwrap_or_else(|e| panic!("the server hung up mid-body: {e}"));
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"message\"") {
        let n = tcp.read(&mut buf).await.expect("read");
        assert!(n > 0, "no answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("InvalidJWT"), "{answer}");
}

#[tokio::test]
async fn expires_in_may_be_a_numeric_string() {
    let t = api(common::Backend::Memory).await;
    t.create_bucket("docs", false).await;
    let key = t.service_key();
    t.put_raw("POST", "/object/docs/a.txt", Some(&key), "text/plain", b"a").await;
    // storage3 sends `"expiresIn": "60"`.
    let r = t.service("POST", "/object/sign/docs/a.txt", json!({ "expiresIn": "60" })).await;
    assert!(r.json()["signedURL"].is_string(), "{}", r.text());
    let r = t.service("POST", "/object/sign/docs", json!({ "expiresIn": "60", "paths": ["a.txt"] })).await;
    assert!(r.json()[0]["signedURL"].is_string(), "{}", r.text());
    t.service("POST", "/object/sign/docs/a.txt", json!({ "expiresIn": "soon" })).await.assert_error(
        400,
        "400",
        "InvalidRequest",
    );
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

fn dims(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("an image");
    (img.width(), img.height())
}

#[tokio::test]
async fn images_are_transformed_on_the_render_endpoints() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("pics", false).await;
        t.create_bucket("site", true).await;
        let key = t.service_key();
        t.put_raw("POST", "/object/pics/cat.png", Some(&key), "image/png", &png(300, 150)).await;
        t.put_raw("POST", "/object/site/logo.png", Some(&key), "image/png", &png(64, 64)).await;
        t.put_raw("POST", "/object/pics/notes.txt", Some(&key), "text/plain", b"hello").await;

        let r = t
            .send(
                "GET",
                "/render/image/authenticated/pics/cat.png?width=100&height=100&resize=contain",
                Some(&key),
                Value::Null,
            )
            .await;
        assert_eq!((r.status.as_u16(), r.header("content-type")), (200, Some("image/png")), "{}", r.text());
        assert_eq!(dims(&r.bytes), (100, 50));
        // X-Transformations names what was rendered, as Storage's image service was asked.
        assert_eq!(r.header("x-transformations"), Some("height:100,width:100,resizing_type:fit"));
        let r = t
            .send("GET", "/render/image/authenticated/pics/cat.png?width=100&height=100", Some(&key), Value::Null)
            .await;
        assert_eq!(dims(&r.bytes), (100, 100), "cover is the default");
        assert_eq!(r.header("x-transformations"), Some("height:100,width:100,resizing_type:fill"));
        let r = t
            .send(
                "GET",
                "/render/image/authenticated/pics/cat.png?width=200&height=200&resize=cover&quality=60",
                Some(&key),
                Value::Null,
            )
            .await;
        assert_eq!(r.header("x-transformations"), Some("height:200,width:200,resizing_type:fill,quality:60"));
        let r = t.send("GET", "/render/image/authenticated/pics/cat.png?format=origin", Some(&key), Value::Null).await;
        assert_eq!((r.status.as_u16(), r.header("x-transformations")), (200, None), "nothing asked, no header");
        let r = t
            .send("GET", "/render/image/authenticated/pics/cat.png?width=60&format=webp", Some(&key), Value::Null)
            .await;
        assert_eq!((r.header("content-type"), dims(&r.bytes)), (Some("image/webp"), (60, 30)));
        assert_eq!(r.header("x-transformations"), Some("width:60,resizing_type:fill,format:webp"));
        // Without a format, a client that takes WebP gets WebP (a browser's Accept); with
        // `format=origin` it gets the stored format. Each variant has its own ETag, and a
        // revalidation with it is answered 304 without a body.
        let browser = |uri: &str, tag: Option<&str>| {
            let mut b = t.builder("GET", uri, Some(&key)).header("accept", "image/avif,image/webp,image/*,*/*;q=0.8");
            if let Some(tag) = tag {
                b = b.header("if-none-match", tag);
            }
            b.body(Body::empty()).expect("req")
        };
        let webp = t.request(browser("/render/image/authenticated/pics/cat.png?width=60", None)).await;
        assert_eq!((webp.header("content-type"), dims(&webp.bytes)), (Some("image/webp"), (60, 30)));
        assert_eq!(webp.header("vary"), Some("Accept"));
        assert_eq!(webp.header("x-transformations"), Some("width:60,resizing_type:fill"), "Accept's WebP is not named");
        let origin = t.request(browser("/render/image/authenticated/pics/cat.png?width=60&format=origin", None)).await;
        assert_eq!(origin.header("content-type"), Some("image/png"));
        let (webp_tag, origin_tag) = (webp.header("etag").expect("etag"), origin.header("etag").expect("etag"));
        assert_ne!(webp_tag, origin_tag);
        let again = t.request(browser("/render/image/authenticated/pics/cat.png?width=60", Some(webp_tag))).await;
        assert_eq!((again.status.as_u16(), again.bytes.len()), (304, 0));
        assert_eq!(again.header("etag"), Some(webp_tag));
        let other = t.request(browser("/render/image/authenticated/pics/cat.png?width=61", Some(webp_tag))).await;
        assert_eq!(other.status, 200, "another transformation is another variant");
        // Without a token the private object stays hidden.
        t.send("GET", "/render/image/authenticated/pics/cat.png?width=10", None, Value::Null).await.assert_error(
            400,
            "404",
            "NoSuchKey",
        );
        t.send("GET", "/render/image/public/pics/cat.png?width=10", None, Value::Null).await.assert_error(
            400,
            "404",
            "NoSuchBucket",
        );
        let r = t.send("GET", "/render/image/public/site/logo.png?width=16", None, Value::Null).await;
        assert_eq!(dims(&r.bytes), (16, 16));
        assert_eq!(r.header("content-disposition"), None);
        // `download` asks for an attachment, as on the object endpoints.
        let r = t.send("GET", "/render/image/public/site/logo.png?width=16&download=", None, Value::Null).await;
        assert_eq!(
            r.header("content-disposition"),
            Some("attachment; filename=\"logo.png\"; filename*=UTF-8''logo.png")
        );
        let r = t
            .send(
                "GET",
                "/render/image/authenticated/pics/cat.png?width=16&download=small.png",
                Some(&key),
                Value::Null,
            )
            .await;
        assert_eq!(dims(&r.bytes), (16, 8));
        assert!(r.header("content-disposition").is_some_and(|d| d.contains("filename=\"small.png\"")));

        // A signed URL carries its transformation; the query cannot change it.
        let signed = t
            .service(
                "POST",
                "/object/sign/pics/cat.png",
                json!({ "expiresIn": 60, "transform": { "width": 30, "height": 30, "resize": "fill" } }),
            )
            .await;
        let url = signed.json()["signedURL"].as_str().expect("url").to_owned();
        assert!(url.starts_with("/render/image/sign/pics/cat.png?token="), "{url}");
        let fetch =
            |u: String| axum::http::Request::builder().uri(format!("/storage/v1{u}")).body(Body::empty()).expect("req");
        let r = t.request(fetch(url.clone())).await;
        assert_eq!(dims(&r.bytes), (30, 30));
        assert_eq!(r.header("x-transformations"), Some("height:30,width:30,resizing_type:force"));
        assert_eq!(dims(&t.request(fetch(format!("{url}&width=500"))).await.bytes), (30, 30));

        t.send("GET", "/render/image/authenticated/pics/notes.txt?width=10", Some(&key), Value::Null)
            .await
            .assert_error(400, "415", "InvalidMimeType");
        t.send("GET", "/render/image/authenticated/pics/cat.png?resize=squash", Some(&key), Value::Null)
            .await
            .assert_error(400, "400", "InvalidRequest");
        t.service("POST", "/object/sign/pics/cat.png", json!({ "expiresIn": 60, "transform": { "quality": 1 } }))
            .await
            .assert_error(400, "400", "InvalidRequest");
    }
}

#[tokio::test]
async fn review_cases_upsert_urls_big_forms_render_tokens_and_destination_limits() {
    for backend in BACKENDS {
        let t = api(backend).await;
        let key = t.service_key();
        // An upsert upload URL needs the update policy, not just the insert one.
        t.create_bucket("shared", false).await;
        sqlx::raw_sql(
        "create policy shared_insert on storage.objects for insert to authenticated with check (bucket_id = 'shared'); \
         create policy shared_read on storage.objects for select to authenticated using (bucket_id = 'shared'); \
         create policy shared_update on storage.objects for update to authenticated \
           using (bucket_id = 'shared' and owner = auth.uid());",
    )
    .execute(t.db.pool())
    .await
    .expect("policies");
        let (bob, mallory) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let r = t.put_raw("POST", "/object/shared/cv.pdf", Some(&t.user_token(bob)), "application/pdf", b"bob's").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let req = t
            .builder("POST", "/object/upload/sign/shared/cv.pdf", Some(&t.user_token(mallory)))
            .header("x-upsert", "true")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("req");
        t.request(req).await.assert_error(400, "403", "AccessDenied");
        let r = t.send("POST", "/object/upload/sign/shared/cv.pdf", Some(&t.user_token(bob)), json!({})).await;
        r.assert_error(400, "409", "KeyAlreadyExists");

        // Multipart forms are not held to axum's 2 MiB default: the bucket's limit decides.
        t.create_bucket("big", false).await;
        let (ct, body) =
            multipart("", "blob", "application/octet-stream", &vec![1u8; 3 * 1024 * 1024], &[("cacheControl", "60")]);
        let req =
            t.builder("POST", "/object/big/three.bin", Some(&key)).header("content-type", ct).body(Body::from(body));
        let r = t.request(req.expect("req")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = t.send("GET", "/object/big/three.bin", Some(&key), Value::Null).await;
        assert_eq!(r.bytes.len(), 3 * 1024 * 1024);
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

        // A transformed-image token does not download the original.
        t.put_raw("POST", "/object/big/pic.png", Some(&key), "image/png", &png(40, 40)).await;
        let signed = t
            .service("POST", "/object/sign/big/pic.png", json!({ "expiresIn": 60, "transform": { "width": 10 } }))
            .await;
        let token = signed.json()["signedURL"].as_str().expect("url").split("token=").nth(1).expect("t").to_owned();
        let req = axum::http::Request::builder()
            .uri(format!("/storage/v1/object/sign/big/pic.png?token={token}"))
            .body(Body::empty());
        t.request(req.expect("req")).await.assert_error(400, "400", "InvalidSignature");

        // Move and copy respect the destination bucket's limits.
        t.service(
            "POST",
            "/bucket",
            json!({ "name": "images", "allowed_mime_types": ["image/*"], "file_size_limit": 1024 }),
        )
        .await;
        let moved = |src: &str, dst: &str| json!({ "bucketId": "big", "sourceKey": src, "destinationKey": dst, "destinationBucket": "images" });
        t.service("POST", "/object/move", moved("three.bin", "x.bin")).await.assert_error(
            400,
            "415",
            "InvalidMimeType",
        );
        t.service("POST", "/object/copy", moved("three.bin", "x.bin")).await.assert_error(
            400,
            "415",
            "InvalidMimeType",
        );
        t.put_raw("POST", "/object/big/large.png", Some(&key), "image/png", &vec![0u8; 2048]).await;
        t.service("POST", "/object/copy", moved("large.png", "l.png")).await.assert_error(400, "413", "EntityTooLarge");
        let r = t.service("POST", "/object/move", moved("pic.png", "pic.png")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[tokio::test]
async fn list_v2_pages_with_a_cursor_and_folds_folders() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("docs", false).await;
        let key = t.service_key();
        let names = ["a.txt", "docs/x.txt", "docs/y.txt", "docs/sub/z.txt", "img/p.png", "zz.txt"];
        for (i, name) in names.iter().enumerate() {
            let r = t.put_raw("POST", &format!("/object/docs/{name}"), Some(&key), "text/plain", name.as_bytes()).await;
            assert_eq!(r.status, 200, "{}", r.text());
            // Distinct, known times: created in this order, updated in the reverse one.
            sqlx::query(
                "update storage.objects set created_at = now() - make_interval(mins => $1), \
                 updated_at = now() - make_interval(mins => $2) where name = $3",
            )
            .bind(100 - i as i32)
            .bind(i as i32)
            .bind(name)
            .execute(t.db.pool())
            .await
            .expect("touch");
        }
        let list = |body: Value| {
            let t = &t;
            async move {
                let r = t.service("POST", "/object/list-v2/docs", body).await;
                assert_eq!(r.status, 200, "{}", r.text());
                r.json()
            }
        };
        let keys = |page: &Value, kind: &str| -> Vec<String> {
            page[kind].as_array().expect("array").iter().map(|e| e["name"].as_str().expect("name").to_owned()).collect()
        };

        // Without the delimiter: every key under the prefix, by name.
        let page = list(json!({})).await;
        assert_eq!(
            keys(&page, "objects"),
            ["a.txt", "docs/sub/z.txt", "docs/x.txt", "docs/y.txt", "img/p.png", "zz.txt"]
        );
        assert_eq!((page["hasNext"].clone(), page["nextCursor"].clone()), (json!(false), Value::Null));
        let first = &page["objects"][0];
        assert!(first["id"].is_string() && first["updated_at"].is_string(), "{first}");
        assert_eq!(first["metadata"]["size"], json!(5));
        assert!(first.get("key").is_none(), "no key without the delimiter: {first}");

        // With it: one folder per name with a `/` past the prefix.
        let page = list(json!({ "with_delimiter": true })).await;
        assert_eq!(
            (keys(&page, "folders"), keys(&page, "objects")),
            (vec!["docs/".to_owned(), "img/".to_owned()], vec!["a.txt".to_owned(), "zz.txt".to_owned()])
        );
        // A folder's key is its name without the `/`; every other field is null.
        assert_eq!(
            page["folders"][0],
            json!({ "key": "docs", "name": "docs/", "id": null, "updated_at": null, "created_at": null,
                    "last_accessed_at": null, "metadata": null })
        );
        assert_eq!(page["objects"][0]["key"], "a.txt");
        let page = list(json!({ "prefix": "docs/", "with_delimiter": true })).await;
        assert_eq!(
            (keys(&page, "folders"), keys(&page, "objects")),
            (vec!["docs/sub/".to_owned()], vec!["docs/x.txt".to_owned(), "docs/y.txt".to_owned()])
        );
        // The prefix is a raw prefix, not a folder.
        assert_eq!(keys(&list(json!({ "prefix": "d" })).await, "objects").len(), 3);

        // Pages: a folder counts as one entry, and the cursor goes on after it.
        let page = list(json!({ "limit": 2, "with_delimiter": true })).await;
        assert_eq!(
            (keys(&page, "objects"), keys(&page, "folders")),
            (vec!["a.txt".to_owned()], vec!["docs/".to_owned()])
        );
        assert_eq!(page["hasNext"], true);
        let cursor = page["nextCursor"].as_str().expect("cursor").to_owned();
        let page = list(json!({ "limit": 2, "with_delimiter": true, "cursor": cursor })).await;
        assert_eq!(
            (keys(&page, "folders"), keys(&page, "objects")),
            (vec!["img/".to_owned()], vec!["zz.txt".to_owned()])
        );
        assert_eq!((page["hasNext"].clone(), page["nextCursor"].clone()), (json!(false), Value::Null));

        // Descending by name, then by update time; the cursor keeps the first page's order.
        let sort = |column: &str| json!({ "limit": 4, "sortBy": { "column": column, "order": "desc" } });
        let page = list(sort("name")).await;
        assert_eq!(keys(&page, "objects"), ["zz.txt", "img/p.png", "docs/y.txt", "docs/x.txt"]);
        let cursor = page["nextCursor"].as_str().expect("cursor").to_owned();
        let page = list(json!({ "limit": 4, "cursor": cursor })).await;
        assert_eq!(keys(&page, "objects"), ["docs/sub/z.txt", "a.txt"]);
        let mut seen = Vec::new();
        let mut body = json!({ "limit": 4, "sortBy": { "column": "updated_at", "order": "desc" } });
        loop {
            let page = list(body.clone()).await;
            seen.extend(keys(&page, "objects"));
            match page["nextCursor"].as_str() {
                Some(c) => body = json!({ "limit": 4, "cursor": c }),
                None => break,
            }
        }
        let newest_first: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        assert_eq!(seen, newest_first, "{backend:?}");

        // Folded and sorted by a timestamp: folders sort by their oldest object's creation
        // (which they answer as both timestamps), among the objects, paged one at a time.
        let walk = |column: &'static str, order: &'static str| {
            let list = &list;
            async move {
                let mut seen = Vec::new();
                let mut body =
                    json!({ "limit": 1, "with_delimiter": true, "sortBy": { "column": column, "order": order } });
                loop {
                    let page = list(body.clone()).await;
                    for folder in page["folders"].as_array().expect("folders") {
                        assert_eq!(folder["created_at"], folder["updated_at"], "{folder}");
                        assert!(folder["created_at"].is_string(), "{folder}");
                        seen.push(folder["name"].as_str().expect("name").to_owned());
                    }
                    seen.extend(keys(&page, "objects"));
                    match page["nextCursor"].as_str() {
                        Some(c) => body = json!({ "limit": 1, "with_delimiter": true, "cursor": c }),
                        None => break,
                    }
                }
                seen
            }
        };
        assert_eq!(walk("created_at", "asc").await, ["a.txt", "docs/", "img/", "zz.txt"], "{backend:?}");
        assert_eq!(walk("created_at", "desc").await, ["zz.txt", "img/", "docs/", "a.txt"], "{backend:?}");
        // docs/ and img/ still sort by creation (99 and 96 minutes ago); zz.txt was updated
        // 5 minutes ago, a.txt now.
        assert_eq!(walk("updated_at", "asc").await, ["docs/", "img/", "zz.txt", "a.txt"], "{backend:?}");
        assert_eq!(walk("updated_at", "desc").await, ["a.txt", "zz.txt", "img/", "docs/"], "{backend:?}");
        let page = list(json!({ "limit": 2, "with_delimiter": true, "sortBy": { "column": "created_at" } })).await;
        assert_eq!(page["nextCursorKey"], "docs", "the last entry, a folder's name without its /");

        // The caller's policies decide: anon sees nothing without one.
        let r = t.send("POST", "/object/list-v2/docs", None, json!({})).await;
        assert_eq!(r.json(), json!({ "hasNext": false, "folders": [], "objects": [] }));
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"after":"a.txt","column":"updated_at","order":"asc","at":"not a time"}"#);
        t.service("POST", "/object/list-v2/docs", json!({ "cursor": forged })).await.assert_error(
            400,
            "400",
            "InvalidRequest",
        );
        t.service("POST", "/object/list-v2/docs", json!({ "cursor": "nonsense" })).await.assert_error(
            400,
            "400",
            "InvalidRequest",
        );
        t.service("POST", "/object/list-v2/docs", json!({ "limit": 0 })).await.assert_error(
            400,
            "400",
            "InvalidRequest",
        );
        let bad = json!({ "sortBy": { "column": "size" } });
        t.service("POST", "/object/list-v2/docs", bad).await.assert_error(400, "400", "InvalidRequest");
    }
}

#[tokio::test]
async fn cdn_purges_succeed_for_what_the_caller_can_see() {
    let t = api(common::Backend::Memory).await;
    t.create_bucket("pics", false).await;
    let key = t.service_key();
    t.put_raw("POST", "/object/pics/a.png", Some(&key), "image/png", b"png").await;
    let r = t.service("DELETE", "/cdn/pics/a.png?transformations=true", json!({})).await;
    assert_eq!((r.status.as_u16(), r.json()), (200, json!({ "message": "success" })));
    assert_eq!(t.service("DELETE", "/cdn/pics", json!({})).await.json(), json!({ "message": "success" }));
    t.service("DELETE", "/cdn/pics/missing.png", json!({})).await.assert_error(400, "404", "NoSuchKey");
    t.service("DELETE", "/cdn/nope", json!({})).await.assert_error(400, "404", "NoSuchBucket");
    // Without policies, anon sees neither the object nor the bucket.
    t.send("DELETE", "/cdn/pics/a.png", None, json!({})).await.assert_error(400, "404", "NoSuchKey");
    t.send("DELETE", "/cdn/pics", None, json!({})).await.assert_error(400, "404", "NoSuchBucket");
    assert_eq!(t.blobs().await.len(), 1, "purging deletes nothing");
}

#[tokio::test]
async fn size_limits_take_supabases_decimal_units() {
    let t = api(common::Backend::Memory).await;
    let r = t.service("POST", "/bucket", json!({ "name": "big", "file_size_limit": "20mb" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(bucket_limit(&t, "big").await, json!(20_000_000), "20mb is 20 000 000 bytes, not 20 MiB");
    for (given, bytes) in [("1GB", 1_000_000_000i64), ("2.5Mb", 2_500_000), ("1.5kb", 1_500), ("3B", 3)] {
        let r = t.service("PUT", "/bucket/big", json!({ "file_size_limit": given })).await;
        assert_eq!(r.status, 200, "{given}: {}", r.text());
        assert_eq!(bucket_limit(&t, "big").await, json!(bytes), "{given}");
    }
    // The limit holds uploads to those bytes.
    t.service("PUT", "/bucket/big", json!({ "file_size_limit": "1.5kb" })).await;
    let key = t.service_key();
    let r = t.put_raw("POST", "/object/big/fits.bin", Some(&key), "application/octet-stream", &[1; 1500]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = t.put_raw("POST", "/object/big/over.bin", Some(&key), "application/octet-stream", &[1; 1501]).await;
    r.assert_error(400, "413", "EntityTooLarge");
    // Anything but digits and a unit is refused, as Storage's InvalidFileSizeLimit.
    for bad in ["20 MB", "20", "1TB", "mb", "-1mb", " 1mb"] {
        for (method, uri) in [("POST", "/bucket"), ("PUT", "/bucket/big")] {
            let r = t.service(method, uri, json!({ "name": "other", "file_size_limit": bad })).await;
            r.assert_error(400, "400", "InvalidRequest");
            assert_eq!(r.json()["message"], "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B", "{bad}");
        }
    }
    assert_eq!(bucket_limit(&t, "big").await, json!(1_500), "a refused update changes nothing");
}

async fn bucket_limit(t: &common::Api, id: &str) -> Value {
    t.service("GET", &format!("/bucket/{id}"), Value::Null).await.json()["file_size_limit"].clone()
}

/// Whether `v` is a timestamp as Supabase Storage renders one: `2021-02-17T04:43:32.770Z`.
fn storage_timestamp(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let shape = s.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        19 => b == b'.',
        23 => b == b'Z',
        _ => b.is_ascii_digit(),
    });
    shape && s.len() == 24
}

/// The row's `column`, truncated to milliseconds, as milliseconds since the epoch.
async fn row_millis(t: &common::Api, column: &str, name: &str) -> i64 {
    let sql = format!(
        "select (extract(epoch from date_trunc('milliseconds', {column})) * 1000)::bigint \
         from storage.objects where name = $1"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(name).fetch_one(t.db.pool()).await.expect("row")
}

fn millis(v: &Value) -> i64 {
    let at = time::OffsetDateTime::parse(v.as_str().expect("a string"), &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("millis")
}

#[tokio::test]
async fn timestamps_render_as_storage_renders_them() {
    let t = api(common::Backend::Memory).await;
    t.create_bucket("docs", false).await;
    let key = t.service_key();
    // Microseconds that to_jsonb would show (and round-trip) but Storage does not.
    sqlx::query("update storage.buckets set created_at = '2021-02-17 04:43:32.770999+00', updated_at = '2021-02-17 06:43:32.5+02' where id = 'docs'")
        .execute(t.db.pool())
        .await
        .expect("set bucket times");
    let bucket = t.service("GET", "/bucket/docs", Value::Null).await.json();
    assert_eq!(
        (&bucket["created_at"], &bucket["updated_at"]),
        (&json!("2021-02-17T04:43:32.770Z"), &json!("2021-02-17T04:43:32.500Z"))
    );
    let listed = t.service("GET", "/bucket", Value::Null).await.json();
    assert_eq!(listed[0]["created_at"], "2021-02-17T04:43:32.770Z");

    for name in ["a.txt", "dir/b.txt"] {
        let r = t.put_raw("POST", &format!("/object/docs/{name}"), Some(&key), "text/plain", b"hi").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let mut seen = Vec::new();
    let info = t.service("GET", "/object/info/docs/a.txt", Value::Null).await.json();
    seen.extend([("updated_at", info["last_modified"].clone()), ("created_at", info["created_at"].clone())]);
    let list = t.service("POST", "/object/list/docs", json!({ "prefix": "" })).await.json();
    let file = list.as_array().expect("list").iter().find(|e| e["name"] == "a.txt").expect("a.txt").clone();
    seen.extend([
        ("updated_at", file["updated_at"].clone()),
        ("created_at", file["created_at"].clone()),
        ("last_accessed_at", file["last_accessed_at"].clone()),
    ]);
    assert!(storage_timestamp(&file["metadata"]["lastModified"]), "{file}");
    let v2 = t.service("POST", "/object/list-v2/docs", json!({ "prefix": "a" })).await.json();
    let file = v2["objects"][0].clone();
    seen.extend([("updated_at", file["updated_at"].clone()), ("created_at", file["created_at"].clone())]);
    let removed = t.service("DELETE", "/object/docs", json!({ "prefixes": ["dir/b.txt"] })).await.json();
    for (column, at) in &seen {
        assert!(storage_timestamp(at), "{column}: {at}");
        assert_eq!(millis(at), row_millis(&t, column, "a.txt").await, "{column}");
    }
    for column in ["updated_at", "created_at", "last_accessed_at"] {
        assert!(storage_timestamp(&removed[0][column]), "{removed}");
    }
}

/// Sends `head` and then `body` in HTTP/1.1 chunks of `chunk` bytes (Transfer-Encoding: chunked,
/// no Content-Length) to `addr`; the answer's status line and body. The server may answer
/// before the whole body went out: the rest is then not sent.
async fn send_chunked(addr: std::net::SocketAddr, head: &str, body: &[u8], chunk: usize) -> (String, Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(format!("{head}transfer-encoding: chunked\r\n\r\n").as_bytes()).await.expect("head");
    let (mut read, mut write) = tcp.into_split();
    let body = body.to_vec();
    let sending = tokio::spawn(async move {
        for piece in body.chunks(chunk) {
            let framed = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
            if write.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = write.write_all(b"0\r\n\r\n").await;
        // Kept open until the answer is read.
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    // The head, then as many bytes as its Content-Length says.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |answer: &[u8]| {
        let text = String::from_utf8_lossy(answer);
        let Some(end) = text.find("\r\n\r\n") else { return false };
        let length = text[..end]
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
            .and_then(|v| v.parse::<usize>().ok())
            .expect("a Content-Length");
        answer.len() >= end + 4 + length
    };
    while !complete(&answer) {
        let n = read.read(&mut buf).await.expect("read");
        assert!(n > 0, "no answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    sending.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let json = answer.find("\r\n\r\n").map(|at| &answer[at + 4..]).unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}")))
}

#[tokio::test]
async fn a_chunked_upload_over_the_limit_is_413() {
    // As forge-server runs storage: its body limit for every request (a chunked body breaks off
    // there) and the same limit for objects.
    const LIMIT: u64 = 256 * 1024;
    let config = forge_storage::StorageConfig::default().with_file_size_limit(LIMIT);
    let t = common::api_with(common::Backend::Memory, config).await;
    t.create_bucket("docs", false).await;
    t.service("POST", "/bucket", json!({ "name": "tiny", "file_size_limit": 1000 })).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = t.router().layer(tower_http::limit::RequestBodyLimitLayer::new(LIMIT as usize));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let key = t.service_key();
    let head = |path: &str, extra: &str| {
        format!(
            "POST /storage/v1/object/{path} HTTP/1.1\r\nhost: {addr}\r\napikey: {key}\r\n\
             authorization: Bearer {key}\r\ncontent-type: application/octet-stream\r\n{extra}"
        )
    };
    let big = vec![7u8; 2 * LIMIT as usize];

    // Over the service's (and the edge's) limit, and over a bucket's own limit.
    for path in ["docs/big.bin", "tiny/big.bin"] {
        let (status, body) = send_chunked(addr, &head(path, ""), &big, 16 * 1024).await;
        assert!(status.starts_with("HTTP/1.1 400"), "{path}: {status} {body}");
        assert_eq!(
            (body["statusCode"].as_str(), body["code"].as_str()),
            (Some("413"), Some("EntityTooLarge")),
            "{path}: {body}"
        );
        assert_eq!(body["message"], "The object exceeded the maximum allowed size", "{path}");
    }
    // A signed upload URL too.
    let signed = t.service("POST", "/object/upload/sign/docs/signed.bin", json!({})).await.json();
    let url = signed["url"].as_str().expect("url").to_owned();
    let signed_head = format!(
        "PUT /storage/v1{url} HTTP/1.1\r\nhost: {addr}\r\napikey: {}\r\ncontent-type: application/octet-stream\r\n",
        t.anon_key()
    );
    let (status, body) = send_chunked(addr, &signed_head, &big, 16 * 1024).await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status} {body}");
    assert_eq!((body["statusCode"].as_str(), body["code"].as_str()), (Some("413"), Some("EntityTooLarge")), "{body}");
    // Within the limit, a chunked upload lands.
    let (status, body) = send_chunked(addr, &head("docs/fits.bin", ""), &big[..LIMIT as usize], 16 * 1024).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    assert_eq!(body["Key"], "docs/fits.bin");
    assert_eq!(t.rows().await, 1, "the refused uploads left no rows");
    assert_eq!(t.blobs().await.len(), 1, "and no blobs: {:?}", t.blobs().await);
}
