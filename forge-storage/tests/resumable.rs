//! TUS resumable uploads (`/upload/resumable`) against a real Postgres.

mod common;

use common::AssertError as _;

use axum::body::{Body, Bytes};
use base64::Engine as _;
use common::{Api, BACKENDS, Backend, Reply, api};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The bytes of a test object: not a repeating pattern, so a misplaced chunk shows.
fn data(len: usize) -> Vec<u8> {
    forge_storage::testing::noise(len, 0x9e37_79b9)
}

fn metadata(bucket: &str, name: &str) -> String {
    format!(
        "bucketName {},objectName {},contentType {},cacheControl {},metadata {}",
        b64(bucket),
        b64(name),
        b64("application/pdf"),
        b64("3600"),
        b64(r#"{"source":"tus"}"#)
    )
}

/// `POST /upload/resumable` with `Upload-Metadata` as given.
async fn create(t: &Api, token: &str, length: usize, meta: &str, extra: &[(&str, &str)]) -> Reply {
    let mut b = t
        .builder("POST", "/upload/resumable", Some(token))
        .header("host", "files.example:8000")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", meta);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    t.request(b.body(Body::empty()).expect("request")).await
}

/// The path of an upload's URL, relative to `/storage/v1`.
fn upload_path(location: &str) -> String {
    location.split("/storage/v1").nth(1).expect("a storage URL").to_owned()
}

async fn head(t: &Api, token: &str, path: &str) -> Reply {
    let req = t.builder("HEAD", path, Some(token)).header("tus-resumable", "1.0.0").body(Body::empty());
    t.request(req.expect("request")).await
}

async fn patch(t: &Api, token: &str, path: &str, offset: usize, body: Body) -> Reply {
    let req = t
        .builder("PATCH", path, Some(token))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(body);
    t.request(req.expect("request")).await
}

/// A plain-text TUS error with its real status (HEAD answers carry no body).
fn assert_tus_error(r: &Reply, status: u16, text: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    assert!(r.text().contains(text), "{:?} lacks {text:?}", r.text());
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
}

fn assert_head_error(r: &Reply, status: u16) {
    assert_tus_error(r, status, "");
    assert!(r.bytes.is_empty());
}

/// Serves the app on a real TCP port.
async fn serve(t: &Api) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = t.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn an_upload_resumes_after_a_dropped_connection_and_produces_the_exact_bytes() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("docs", false).await;
        let key = t.service_key();
        let bytes = data(700_000);

        let r = create(&t, &key, bytes.len(), &metadata("docs", "reports/q3.pdf"), &[]).await;
        assert_eq!(r.status, 201, "{backend:?}: {}", r.text());
        assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
        assert!(r.header("upload-expires").is_some_and(|e| e.ends_with(" GMT")));
        let location = r.header("location").expect("location").to_owned();
        assert!(location.starts_with("http://files.example:8000/storage/v1/upload/resumable/"), "{location}");
        let id = location.rsplit('/').next().expect("id");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).expect("base64url");
        assert!(String::from_utf8(decoded).expect("utf-8").starts_with("docs/reports/q3.pdf/"));
        let path = upload_path(&location);

        let r = head(&t, &key, &path).await;
        assert_eq!((r.status.as_u16(), r.header("upload-offset")), (200, Some("0")));
        assert_eq!(r.header("upload-length"), Some("700000"));
        assert_eq!(r.header("cache-control"), Some("no-store"));

        let r = patch(&t, &key, &path, 0, Body::from(bytes[..200_000].to_vec())).await;
        assert_eq!((r.status.as_u16(), r.header("upload-offset")), (204, Some("200000")), "{}", r.text());

        // A client sends the next 300 000 bytes and its connection drops after 120 000.
        let addr = serve(&t).await;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head_lines = format!(
            "PATCH /storage/v1{path} HTTP/1.1\r\nhost: {addr}\r\napikey: {}\r\nauthorization: Bearer {key}\r\n\
             tus-resumable: 1.0.0\r\nupload-offset: 200000\r\ncontent-type: application/offset+octet-stream\r\n\
             content-length: 300000\r\n\r\n",
            t.anon_key()
        );
        tcp.write_all(head_lines.as_bytes()).await.expect("head");
        tcp.write_all(&bytes[200_000..320_000]).await.expect("part of the body");
        tcp.flush().await.expect("flush");
        drop(tcp);
        // What arrived is kept: the client goes on from the offset HEAD reports.
        let mut offset = String::new();
        for _ in 0..100 {
            offset = head(&t, &key, &path).await.header("upload-offset").unwrap_or_default().to_owned();
            if offset != "200000" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(offset, "320000", "{backend:?}");

        // Nothing is visible before the last byte.
        assert_eq!(t.rows().await, 0);
        t.send("GET", "/object/docs/reports/q3.pdf", Some(&key), Value::Null).await.assert_error(
            400,
            "404",
            "NoSuchKey",
        );
        // A chunk at the wrong offset is refused and changes nothing.
        let r = patch(&t, &key, &path, 200_000, Body::from(bytes[200_000..300_000].to_vec())).await;
        assert_tus_error(&r, 409, "Upload-Offset");

        let r = patch(&t, &key, &path, 320_000, Body::from(bytes[320_000..].to_vec())).await;
        assert_eq!((r.status.as_u16(), r.header("upload-offset")), (204, Some("700000")), "{}", r.text());
        assert_eq!(r.header("upload-expires"), None, "a finished upload does not expire");

        let got = t.send("GET", "/object/docs/reports/q3.pdf", Some(&key), Value::Null).await;
        assert_eq!(got.status, 200);
        assert!(got.bytes == bytes, "{backend:?}: the object differs from what was sent");
        let info = t.send("GET", "/object/info/docs/reports/q3.pdf", Some(&key), Value::Null).await.json();
        assert_eq!(info["content_type"], "application/pdf", "{info}");
        assert_eq!(info["size"], 700_000);
        assert_eq!(info["cache_control"], "max-age=3600");
        assert_eq!(info["metadata"], json!({ "source": "tus" }));
        // Only the object's version is left in the store: the parts are gone.
        let blobs = t.blobs().await;
        assert_eq!(blobs.len(), 1, "{backend:?}: {blobs:?}");
        assert!(!blobs[0].contains("/tus/"), "{blobs:?}");

        // A repeated last request is answered the same; a finished upload stays.
        let r = head(&t, &key, &path).await;
        assert_eq!(r.header("upload-offset"), Some("700000"));
        let r = patch(&t, &key, &path, 700_000, Body::empty()).await;
        assert_eq!((r.status.as_u16(), r.header("upload-offset")), (204, Some("700000")));
        let req = t.builder("DELETE", &path, Some(&key)).header("tus-resumable", "1.0.0").body(Body::empty());
        assert_tus_error(&t.request(req.expect("request")).await, 400, "finished");
    }
}

#[tokio::test]
async fn bad_requests_get_plain_text_errors_with_their_real_status() {
    let t = api(Backend::Memory).await;
    t.service(
        "POST",
        "/bucket",
        json!({ "name": "small", "file_size_limit": 1000, "allowed_mime_types": ["image/*"] }),
    )
    .await;
    let key = t.service_key();
    let image =
        |name: &str| format!("bucketName {},objectName {},contentType {}", b64("small"), b64(name), b64("image/png"));

    let req = t.builder("POST", "/upload/resumable", Some(&key)).header("upload-length", "10").body(Body::empty());
    let r = t.request(req.expect("request")).await;
    assert_tus_error(&r, 412, "TUS version");
    assert_eq!(r.header("tus-version"), Some("1.0.0"));
    assert_tus_error(&create(&t, &key, 10, "bucketName !!!", &[]).await, 400, "Invalid Upload-Metadata header");
    assert_tus_error(&create(&t, &key, 10, &format!("objectName {}", b64("a.png")), &[]).await, 400, "bucketName");
    let nobucket = format!("bucketName {},objectName {}", b64("nope"), b64("a.png"));
    assert_tus_error(&create(&t, &key, 10, &nobucket, &[]).await, 404, "Bucket not found");
    assert_tus_error(&create(&t, &key, 1001, &image("a.png"), &[]).await, 413, "maximum allowed size");
    let pdf = format!("bucketName {},objectName {},contentType {}", b64("small"), b64("a.pdf"), b64("application/pdf"));
    assert_tus_error(&create(&t, &key, 10, &pdf, &[]).await, 415, "not supported");
    assert_tus_error(&create(&t, &key, 10, &image("../a.png"), &[]).await, 400, "Invalid key");
    let r = create(&t, &key, 10, &image("a.png"), &[("upload-defer-length", "1")]).await;
    assert_tus_error(&r, 400, "Upload-Defer-Length");

    // An existing key is refused at creation, unless the upload may replace it.
    t.put_raw("POST", "/object/small/a.png", Some(&key), "image/png", b"old").await;
    assert_tus_error(&create(&t, &key, 3, &image("a.png"), &[]).await, 409, "already exists");
    let r = create(&t, &key, 3, &image("a.png"), &[("x-upsert", "true")]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let path = upload_path(r.header("location").expect("location"));
    // The chunk must be typed, and the offset given; bytes past the length are refused.
    let req = t
        .builder("PATCH", &path, Some(&key))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "image/png")
        .body(Body::from("new"));
    assert_tus_error(&t.request(req.expect("request")).await, 415, "offset+octet-stream");
    assert_tus_error(&patch(&t, &key, &path, 0, Body::from("newer")).await, 413, "maximum allowed size");
    assert_eq!(head(&t, &key, &path).await.header("upload-offset"), Some("0"));
    let r = patch(&t, &key, &path, 0, Body::from("new")).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(t.send("GET", "/object/small/a.png", Some(&key), Value::Null).await.text(), "new");
    assert_eq!(t.blobs().await.len(), 1, "the replaced version is gone");

    // Unknown and malformed ids.
    assert_head_error(&head(&t, &key, "/upload/resumable/bm90LWFuLWlk").await, 404);
    assert_head_error(&head(&t, &key, "/upload/resumable/%%%").await, 404);
    // A bad token is a 4xx in plain text, not Storage's JSON.
    let r = patch(&t, "not.a.jwt", &path, 3, Body::empty()).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(!r.bytes.is_empty() && serde_json::from_slice::<Value>(&r.bytes).is_err(), "{}", r.text());
}

#[tokio::test]
async fn one_writer_at_a_time_termination_and_expiry() {
    let t = api(Backend::Memory).await;
    t.create_bucket("docs", false).await;
    let key = t.service_key();
    let bytes = data(64_000);
    let r = create(&t, &key, bytes.len(), &metadata("docs", "big.pdf"), &[]).await;
    let path = upload_path(r.header("location").expect("location"));

    // A first writer holds the upload while its body is still coming.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body =
        Body::from_stream(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        ));
    let first = {
        let req = t
            .builder("PATCH", &path, Some(&key))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(body)
            .expect("request");
        let app = t.router();
        tokio::spawn(async move { tower::ServiceExt::oneshot(app, req).await })
    };
    // The body passes a one-slot channel here, then the server's read-ahead (a task holding
    // one chunk and a two-slot channel). Once six chunks went in, the writer, which takes the
    // upload's lock before it reads, has taken at least the first.
    for start in (0..30_000).step_by(5000) {
        tx.send(Ok(Bytes::copy_from_slice(&bytes[start..start + 5000]))).await.expect("send");
    }
    let r = patch(&t, &key, &path, 0, Body::from(bytes[..1000].to_vec())).await;
    assert_tus_error(&r, 423, "another request");
    let req = t.builder("DELETE", &path, Some(&key)).header("tus-resumable", "1.0.0").body(Body::empty());
    assert_tus_error(&t.request(req.expect("request")).await, 423, "another request");
    drop(tx);
    let res = first.await.expect("task").expect("response");
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["upload-offset"], "30000");

    // Another caller does not reach it.
    let stranger = t.user_token(uuid::Uuid::new_v4());
    assert_head_error(&head(&t, &stranger, &path).await, 404);
    assert_tus_error(&patch(&t, &stranger, &path, 30_000, Body::from("x")).await, 404, "Upload not found");

    // Termination removes the upload and its parts.
    assert!(t.blobs().await.iter().any(|b| b.contains("/tus/")));
    let req = t.builder("DELETE", &path, Some(&key)).header("tus-resumable", "1.0.0").body(Body::empty());
    let r = t.request(req.expect("request")).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_head_error(&head(&t, &key, &path).await, 404);
    assert!(t.blobs().await.is_empty(), "{:?}", t.blobs().await);

    // An upload expires an hour after its creation; the next creation sweeps it away.
    let r = create(&t, &key, bytes.len(), &metadata("docs", "late.pdf"), &[]).await;
    let path = upload_path(r.header("location").expect("location"));
    let r = patch(&t, &key, &path, 0, Body::from(bytes[..5000].to_vec())).await;
    assert_eq!(r.status, 204);
    let expires: time::OffsetDateTime = sqlx::query_scalar("select expires_at from storage.resumable_uploads")
        .fetch_one(t.db.pool())
        .await
        .expect("row");
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(59) && left <= time::Duration::hours(1), "{left}");
    sqlx::query("update storage.resumable_uploads set expires_at = now() - interval '1 second'")
        .execute(t.db.pool())
        .await
        .expect("expire");
    assert_head_error(&head(&t, &key, &path).await, 410);
    assert_tus_error(&patch(&t, &key, &path, 5000, Body::from(bytes[5000..].to_vec())).await, 410, "expired");
    let r = create(&t, &key, 1, &metadata("docs", "next.pdf"), &[]).await;
    assert_eq!(r.status, 201);
    let names: Vec<String> =
        sqlx::query_scalar("select name from storage.resumable_uploads").fetch_all(t.db.pool()).await.expect("rows");
    assert_eq!(names, ["next.pdf"]);
    assert!(t.blobs().await.is_empty(), "{:?}", t.blobs().await);
    assert_eq!(t.rows().await, 0);
}

#[tokio::test]
async fn policies_decide_and_signed_upload_urls_work_over_tus() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("home", false).await;
        sqlx::raw_sql(
            "create policy own_insert on storage.objects for insert to authenticated \
           with check (bucket_id = 'home' and (storage.foldername(name))[1] = auth.uid()::text); \
         create policy own_select on storage.objects for select to authenticated \
           using (bucket_id = 'home' and (storage.foldername(name))[1] = auth.uid()::text);",
        )
        .execute(t.db.pool())
        .await
        .expect("policies");
        let ann = uuid::Uuid::new_v4();
        let token = t.user_token(ann);
        let other = uuid::Uuid::new_v4();

        // Outside her folder, the policy refuses the upload before any byte is sent.
        let r = create(&t, &token, 5, &metadata("home", &format!("{other}/x.pdf")), &[]).await;
        assert_tus_error(&r, 403, "row-level security");
        assert_eq!(r.text(), "new row violates row-level security policy", "Storage's words, not Postgres'");
        assert_tus_error(&create(&t, &t.anon_key(), 5, &metadata("home", &format!("{ann}/x.pdf")), &[]).await, 403, "");

        // creation-with-upload: the first bytes come with the creation.
        let req = t
            .builder("POST", "/upload/resumable", Some(&token))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "11")
            .header("upload-metadata", metadata("home", &format!("{ann}/notes.pdf")))
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from("hello "));
        let r = t.request(req.expect("request")).await;
        assert_eq!((r.status.as_u16(), r.header("upload-offset")), (201, Some("6")), "{}", r.text());
        let path = upload_path(r.header("location").expect("location"));
        let r = patch(&t, &token, &path, 6, Body::from("world")).await;
        assert_eq!(r.status, 204, "{}", r.text());
        let got = t.send("GET", &format!("/object/home/{ann}/notes.pdf"), Some(&token), Value::Null).await;
        assert_eq!(got.text(), "hello world");
        let owner: Option<uuid::Uuid> =
            sqlx::query_scalar("select owner from storage.objects where name like '%notes.pdf'")
                .fetch_one(t.db.pool())
                .await
                .expect("owner");
        assert_eq!(owner, Some(ann));

        // An empty file is complete at its creation.
        let r = create(&t, &token, 0, &metadata("home", &format!("{ann}/empty.pdf")), &[]).await;
        assert_eq!((r.status.as_u16(), r.header("upload-offset")), (201, Some("0")), "{}", r.text());
        let got = t.send("GET", &format!("/object/home/{ann}/empty.pdf"), Some(&token), Value::Null).await;
        assert_eq!((got.status.as_u16(), got.bytes.len()), (200, 0));

        // The signed variant: a signed upload URL's token in x-signature, no JWT needed.
        let r = t.send("POST", &format!("/object/upload/sign/home/{ann}/signed.pdf"), Some(&token), json!({})).await;
        let signature = r.json()["token"].as_str().expect("token").to_owned();
        let signed_create = |name: String, signature: Option<&str>| {
            let mut b = axum::http::Request::builder()
                .method("POST")
                .uri("/storage/v1/upload/resumable/sign")
                .header("host", "localhost")
                .header("apikey", t.anon_key())
                .header("tus-resumable", "1.0.0")
                .header("upload-length", "6")
                .header("upload-metadata", metadata("home", &name));
            if let Some(s) = signature {
                b = b.header("x-signature", s);
            }
            b.body(Body::empty()).expect("request")
        };
        assert_tus_error(&t.request(signed_create(format!("{ann}/signed.pdf"), None)).await, 400, "token");
        let r = t.request(signed_create(format!("{ann}/other.pdf"), Some(&signature))).await;
        assert_tus_error(&r, 400, "does not match");
        let r = t.request(signed_create(format!("{ann}/signed.pdf"), Some(&signature))).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let location = r.header("location").expect("location").to_owned();
        assert!(location.starts_with("http://localhost/storage/v1/upload/resumable/sign/"), "{location}");
        let path = upload_path(&location);
        // The JWT routes do not reach a signed upload, nor the signed routes a JWT one.
        assert_tus_error(&patch(&t, &token, &path.replace("/sign/", "/"), 0, Body::from("signed")).await, 404, "");
        let req = axum::http::Request::builder()
            .method("PATCH")
            .uri(format!("/storage/v1{path}"))
            .header("apikey", t.anon_key())
            .header("tus-resumable", "1.0.0")
            .header("x-signature", &signature)
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from("signed"))
            .expect("request");
        let r = t.request(req).await;
        assert_eq!(r.status, 204, "{}", r.text());
        let got = t.send("GET", &format!("/object/home/{ann}/signed.pdf"), Some(&token), Value::Null).await;
        assert_eq!(got.text(), "signed");
        let owner: Option<uuid::Uuid> =
            sqlx::query_scalar("select owner from storage.objects where name like '%signed.pdf'")
                .fetch_one(t.db.pool())
                .await
                .expect("owner");
        assert_eq!(owner, Some(ann), "the signer owns what the URL's holder uploaded");
    }
}

#[tokio::test]
async fn the_location_honours_forwarded_headers_and_options_describes_the_server() {
    let t = api(Backend::Memory).await;
    t.create_bucket("docs", false).await;
    let key = t.service_key();
    let forwarded = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com"),
        ("x-forwarded-port", "8443"),
        ("x-forwarded-prefix", "/edge"),
    ];
    let r = create(&t, &key, 4, &metadata("docs", "a.pdf"), &forwarded).await;
    let location = r.header("location").expect("location");
    assert!(location.starts_with("https://api.example.com:8443/edge/storage/v1/upload/resumable/"), "{location}");

    let req = t.builder("OPTIONS", "/upload/resumable", Some(&key)).body(Body::empty());
    let r = t.request(req.expect("request")).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("tus-version"), Some("1.0.0"));
    assert!(r.header("tus-extension").is_some_and(|e| e.contains("creation") && e.contains("termination")));
    assert_eq!(r.header("tus-max-size"), Some(t.storage.config().file_size_limit.to_string().as_str()));
}

#[tokio::test]
async fn a_refused_first_chunk_is_answered_after_its_body_not_with_a_reset() {
    use tokio::io::AsyncReadExt as _;
    let t = api(Backend::Memory).await;
    t.create_bucket("docs", false).await;
    let key = t.service_key();
    t.put_raw("POST", "/object/docs/taken.pdf", Some(&key), "application/pdf", b"old").await;
    let addr = serve(&t).await;
    let chunk = data(6 * 1024 * 1024);
    // As tus-js-client sends it with uploadDataDuringCreation: the first 6 MiB in the POST.
    for (name, bucket, status) in [("a.pdf", "nope", "404"), ("taken.pdf", "docs", "409")] {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /storage/v1/upload/resumable HTTP/1.1\r\nhost: {addr}\r\napikey: {}\r\n\
             authorization: Bearer {key}\r\ntus-resumable: 1.0.0\r\nupload-length: {}\r\n\
             upload-metadata: {}\r\ncontent-type: application/offset+octet-stream\r\ncontent-length: {}\r\n\r\n",
            t.anon_key(),
            chunk.len() + 1,
            metadata(bucket, name),
            chunk.len()
        );
        tcp.write_all(head.as_bytes()).await.expect("head");
        tcp.write_all(&chunk).await.unwrap_or_else(|e| panic!("{name}: the server hung up mid-body: {e}"));
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "{name}: no answer");
            answer.extend_from_slice(&buf[..n]);
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
    }
    assert_eq!(t.blobs().await.len(), 1, "only the existing object");
}

/// A PATCH whose body comes from `rx` (the test sends the chunks).
fn streamed_patch(
    t: &Api,
    token: &str,
    path: &str,
    offset: usize,
) -> (tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>, tokio::task::JoinHandle<axum::response::Response>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body =
        Body::from_stream(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        ));
    let req = t
        .builder("PATCH", path, Some(token))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(body)
        .expect("request");
    let app = t.router();
    (tx, tokio::spawn(async move { tower::ServiceExt::oneshot(app, req).await.expect("infallible") }))
}

#[tokio::test]
async fn stalled_writers_hold_no_database_connection() {
    let t = api(Backend::Memory).await;
    t.create_bucket("docs", false).await;
    let key = t.service_key();
    let pool_size = t.db.pool().options().get_max_connections() as usize;
    // More uploads stall mid-chunk than the pool has connections.
    let mut stalled = Vec::new();
    for i in 0..pool_size + 2 {
        let r = create(&t, &key, 100_000, &metadata("docs", &format!("stall-{i}.pdf")), &[]).await;
        let path = upload_path(r.header("location").expect("location"));
        let (tx, res) = streamed_patch(&t, &key, &path, 0);
        // Past the server's read-ahead: the writer holds its lease and waits for more.
        for _ in 0..6 {
            tx.send(Ok(Bytes::from(vec![1u8; 1000]))).await.expect("send");
        }
        stalled.push((path, tx, res));
    }
    let alive = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        sqlx::query_scalar::<_, i32>("select 1").fetch_one(t.db.pool()).await
    })
    .await;
    assert!(matches!(alive, Ok(Ok(1))), "the pool is exhausted: {alive:?}");
    let (path, _, _) = &stalled[0];
    assert_eq!(head(&t, &key, path).await.header("upload-offset"), Some("0"), "HEAD still answers");
    assert_tus_error(&patch(&t, &key, path, 0, Body::from("x")).await, 423, "another request");
    // Each stalled chunk ends (the client goes away) and keeps what arrived.
    for (path, tx, res) in stalled {
        drop(tx);
        let res = res.await.expect("task");
        assert_eq!((res.status().as_u16(), res.headers()["upload-offset"].to_str().ok()), (204, Some("6000")));
        assert_eq!(head(&t, &key, &path).await.header("upload-offset"), Some("6000"));
    }
}

#[tokio::test]
async fn a_retried_last_chunk_after_a_lost_record_keeps_the_object() {
    for backend in BACKENDS {
        let t = api(backend).await;
        t.create_bucket("docs", false).await;
        let key = t.service_key();
        let bytes = data(20_000);
        let r = create(&t, &key, bytes.len(), &metadata("docs", "a.pdf"), &[]).await;
        let path = upload_path(r.header("location").expect("location"));
        assert_eq!(patch(&t, &key, &path, 0, Body::from(bytes[..8000].to_vec())).await.status, 204);
        let before: Vec<String> = sqlx::query_scalar("select parts from storage.resumable_uploads")
            .fetch_one(t.db.pool())
            .await
            .expect("parts");
        assert_eq!(patch(&t, &key, &path, 8000, Body::from(bytes[8000..].to_vec())).await.status, 204);
        // The object row committed, but the upload's own record was lost (a crash between
        // the two): the client sends its last chunk again.
        sqlx::query("update storage.resumable_uploads set finished_at = null, upload_offset = 8000, parts = $1")
            .bind(&before)
            .execute(t.db.pool())
            .await
            .expect("rewind");
        let r = patch(&t, &key, &path, 8000, Body::from(bytes[8000..].to_vec())).await;
        assert_eq!((r.status.as_u16(), r.header("upload-offset")), (204, Some("20000")), "{backend:?}: {}", r.text());
        let got = t.send("GET", "/object/docs/a.pdf", Some(&key), Value::Null).await;
        assert!(got.status == 200 && got.bytes == bytes, "{backend:?}: the object lost its bytes: {}", got.status);
        assert_eq!(t.blobs().await.len(), 1, "{backend:?}: only the version is left");
    }
}

#[tokio::test]
async fn odd_requests_are_refused_or_understood() {
    let t = api(Backend::Memory).await;
    t.create_bucket("docs", false).await;
    let key = t.service_key();
    // Upload-Concat (the concatenation extension) is not offered.
    let r = create(&t, &key, 10, &metadata("docs", "c.pdf"), &[("upload-concat", "partial")]).await;
    assert_tus_error(&r, 400, "Upload-Concat");
    // X-HTTP-Method-Override, for clients that cannot send PATCH.
    let r = create(&t, &key, 5, &metadata("docs", "o.pdf"), &[]).await;
    let path = upload_path(r.header("location").expect("location"));
    let req = t
        .builder("POST", &path, Some(&key))
        .header("tus-resumable", "1.0.0")
        .header("x-http-method-override", "PATCH")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(Body::from("hello"));
    let r = t.request(req.expect("request")).await;
    assert_eq!((r.status.as_u16(), r.header("upload-offset")), (204, Some("5")), "{}", r.text());
    assert_eq!(t.send("GET", "/object/docs/o.pdf", Some(&key), Value::Null).await.text(), "hello");
    let req = t.builder("POST", &path, Some(&key)).header("tus-resumable", "1.0.0").body(Body::empty());
    assert_tus_error(&t.request(req.expect("request")).await, 405, "HEAD, PATCH and DELETE");
    // An upload takes at most 10 000 parts.
    let r = create(&t, &key, 20_000, &metadata("docs", "many.pdf"), &[]).await;
    let path = upload_path(r.header("location").expect("location"));
    sqlx::query("update storage.resumable_uploads set parts = array_fill('x'::text, array[10000]), upload_offset = 10000 where name = 'many.pdf'")
        .execute(t.db.pool())
        .await
        .expect("parts");
    assert_tus_error(&patch(&t, &key, &path, 10_000, Body::from("x")).await, 400, "10000 chunks");

    // Users whose `sub` is not a UUID (third-party tokens) do not share uploads.
    sqlx::raw_sql(
        "create policy open_insert on storage.objects for insert to authenticated with check (bucket_id = 'docs');",
    )
    .execute(t.db.pool())
    .await
    .expect("policy");
    let token = |sub: &str| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims =
            json!({ "sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600 });
        t.project.keys().sign(claims.as_object().expect("claims")).expect("sign")
    };
    let (alice, bob) = (token("alice@idp"), token("bob@idp"));
    let r = create(&t, &alice, 5, &metadata("docs", "alice.pdf"), &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let path = upload_path(r.header("location").expect("location"));
    assert_head_error(&head(&t, &bob, &path).await, 404);
    assert_eq!(head(&t, &alice, &path).await.status, 200);
}

#[tokio::test]
async fn a_chunk_cut_off_by_the_edge_body_limit_is_413_and_adds_nothing() {
    // As forge-server runs storage: the same limit for request bodies and objects. A chunk of
    // a full-size upload that carries more than that breaks off at the edge, without a
    // Content-Length to refuse it by: it is refused whole, not stored cut short.
    const LIMIT: usize = 64 * 1024;
    let config = forge_storage::StorageConfig::default().with_file_size_limit(LIMIT as u64);
    let t = common::api_with(Backend::Memory, config).await;
    t.create_bucket("docs", false).await;
    let key = t.service_key();
    let r = create(&t, &key, LIMIT, &metadata("docs", "full.pdf"), &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let path = upload_path(r.header("location").expect("location"));
    let edge = t.router().layer(tower_http::limit::RequestBodyLimitLayer::new(LIMIT));
    let bytes = data(LIMIT + 1000);
    let chunked = |bytes: &[u8]| {
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            bytes.chunks(4096).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        Body::from_stream(futures_util::stream::iter(pieces))
    };
    let req = t
        .builder("PATCH", &path, Some(&key))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(chunked(&bytes))
        .expect("request");
    let r = {
        use tower::ServiceExt as _;
        let res = edge.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(r.0.as_u16(), 413, "{}", r.1);
    assert!(r.1.contains("maximum allowed size"), "{}", r.1);
    assert_eq!(head(&t, &key, &path).await.header("upload-offset"), Some("0"), "nothing was kept");
    assert_eq!(t.rows().await, 0);
    // The whole upload, within the limit, lands.
    let r = patch(&t, &key, &path, 0, chunked(&bytes[..LIMIT])).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(t.send("GET", "/object/docs/full.pdf", Some(&key), Value::Null).await.bytes, bytes[..LIMIT]);
}
