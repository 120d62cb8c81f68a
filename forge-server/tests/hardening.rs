//! What attacks and crashes found on a live server: credentials in debug logs, body limits,
//! slow connections, files left by a crash, and the data dir's permissions.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

/// The default project's keys, as `forge-server keys` prints them.
fn keys(dir: &std::path::Path) -> Value {
    let out = common::command(dir).arg("keys").output().expect("forge-server keys");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("keys as JSON")
}

fn json_body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

#[test]
fn no_credential_of_a_session_reaches_a_trace_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The most specific directive for the driver too: it must not widen the parameter filter.
    let server = Server::start(dir.path(), &[("FORGE_LOG", "trace,tokio_postgres::query=trace")]);
    let keys = keys(dir.path());
    let (anon, service) = (keys["anon_key"].as_str().expect("anon"), keys["service_role_key"].as_str().expect("svc"));
    let (publishable, secret_key) =
        (keys["publishable_key"].as_str().expect("publishable"), keys["secret_key"].as_str().expect("secret"));
    let jwt_secret = std::fs::read_to_string(dir.path().join("data/jwt_secret")).expect("jwt secret");
    let password = "correct-horse-battery-staple-7";
    let json = ("content-type", "application/json");

    // A session as an app has it: sign up, use the token on every service, refresh, sign out.
    let signup = server.request(
        "POST",
        "/auth/v1/signup",
        &[("apikey", anon), json],
        &json_body(&json!({ "email": "logs@example.com", "password": password })),
    );
    assert_eq!(signup.status, 200, "{}", signup.body);
    let session = signup.json();
    let access = session["access_token"].as_str().expect("access token").to_owned();
    let refresh = session["refresh_token"].as_str().expect("refresh token").to_owned();
    let bearer = format!("Bearer {access}");
    let signin = server.request(
        "POST",
        "/auth/v1/token?grant_type=password",
        &[("apikey", publishable), json],
        &json_body(&json!({ "email": "logs@example.com", "password": password })),
    );
    assert_eq!(signin.status, 200, "{}", signin.body);
    let user = server.request("GET", "/auth/v1/user", &[("apikey", anon), ("authorization", &bearer)], b"");
    assert_eq!(user.status, 200, "{}", user.body);
    let rest = server.request("GET", "/rest/v1/", &[("apikey", anon), ("authorization", &bearer)], b"");
    assert_eq!(rest.status, 200, "{}", rest.body);
    let svc = format!("Bearer {service}");
    let bucket = server.request(
        "POST",
        "/storage/v1/bucket",
        &[("apikey", service), ("authorization", &svc), json],
        &json_body(&json!({ "name": "logs", "public": false })),
    );
    assert_eq!(bucket.status, 200, "{}", bucket.body);
    let listed = server.request("GET", "/storage/v1/bucket", &[("apikey", secret_key)], b"");
    assert_eq!(listed.status, 200, "{}", listed.body);
    let refreshed = server.request(
        "POST",
        "/auth/v1/token?grant_type=refresh_token",
        &[("apikey", anon), json],
        &json_body(&json!({ "refresh_token": refresh })),
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let new_access = refreshed.json()["access_token"].as_str().expect("new access token").to_owned();
    let out = server.request(
        "POST",
        "/auth/v1/logout",
        &[("apikey", anon), ("authorization", &format!("Bearer {new_access}"))],
        b"",
    );
    assert_eq!(out.status, 204, "{}", out.body);

    server.signal("TERM");
    let logs = server.logs();
    assert!(server.wait(Duration::from_secs(60)).success());
    assert!(logs.lines().count() > 50, "a trace log has lines: {logs}");
    let secrets = [
        ("the anon key", anon),
        ("the service key", service),
        ("the publishable key", publishable),
        ("the secret key", secret_key),
        ("the JWT secret", jwt_secret.trim()),
        ("the password", password),
        ("the access token", &access),
        ("the refreshed access token", &new_access),
        ("the refresh token", &refresh),
    ];
    for (what, secret) in secrets {
        // A JWT's signature alone is enough to reuse it.
        let tail = secret.rsplit('.').next().unwrap_or(secret);
        assert!(!logs.contains(tail), "{what} reached the log");
    }
}

#[test]
fn the_body_limit_is_the_same_for_every_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("FORGE_BODY_LIMIT", "3000000")]);
    let keys = keys(dir.path());
    let service = keys["service_role_key"].as_str().expect("service key");
    let svc = format!("Bearer {service}");

    // A 2.1 MiB JSON array: over axum's 2 MiB default, under the configured 3 MB.
    let rows: Vec<Value> = (0..30_000).map(|i| json!({ "id": i, "note": "x".repeat(60) })).collect();
    let body = json_body(&Value::Array(rows));
    assert!(body.len() > 2_200_000 && body.len() < 3_000_000, "{}", body.len());
    // No such table: the body was read whole and the request reached the service.
    let res = server.request(
        "POST",
        "/rest/v1/no_such_table",
        &[("apikey", service), ("authorization", &svc), ("content-type", "application/json")],
        &body,
    );
    assert_eq!((res.status, res.json()["code"].as_str()), (404, Some("PGRST205")), "{}", res.body);
    let res = server.request(
        "POST",
        "/auth/v1/signup",
        &[("apikey", service), ("content-type", "application/json")],
        &json_body(&json!({ "email": "big@example.com", "password": "long-enough-1", "data": { "pad": "y".repeat(2_200_000) } })),
    );
    assert_ne!(res.status, 413, "{}", res.body);

    // Over the configured limit: 413 in each service's shape.
    let over = vec![b' '; 3_100_000];
    let res = server.request(
        "POST",
        "/rest/v1/no_such_table",
        &[("apikey", service), ("authorization", &svc), ("content-type", "application/json")],
        &over,
    );
    assert_eq!((res.status, res.json()["code"].as_str()), (413, Some("PGRST102")), "{}", res.body);
    let res =
        server.request("POST", "/auth/v1/signup", &[("apikey", service), ("content-type", "application/json")], &over);
    assert_eq!(res.status, 413, "{}", res.body);
}

/// `forge-server` under a shell that first lowers its open-file limit to `files`.
fn with_file_limit(dir: &std::path::Path, files: u32) -> std::process::Command {
    let plain = common::command(dir);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(format!("ulimit -n {files} && exec \"$0\"")).arg(plain.get_program());
    cmd.current_dir(dir);
    for (key, value) in plain.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

/// Opens a connection that never finishes a request: it dribbles a header line every 300 ms
/// (`kind` 0), sends half a request line and waits (1), or sends nothing at all (2). Returns
/// how long the server kept it open (`None`: still open after `hold`).
async fn slow_client(addr: String, kind: usize, hold: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dribble = kind == 0;
    let connect = tokio::net::TcpStream::connect(&addr);
    let mut tcp = match tokio::time::timeout(hold, connect).await {
        Ok(Ok(tcp)) => tcp,
        // Refused or never accepted: it holds nothing on the server.
        Ok(Err(_)) => return Some(Duration::ZERO),
        Err(_) => return None,
    };
    let opened = tokio::time::Instant::now();
    // A third send nothing at all.
    if kind != 2 {
        let _ = tcp.write_all(b"GET /rest/v1/ HT").await;
    }
    let deadline = opened + hold;
    let mut buf = [0u8; 256];
    loop {
        let wait = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(300)));
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                // Closed by the server (with or without a 408 first).
                Ok(0) | Err(_) => return Some(opened.elapsed()),
                Ok(_) => continue,
            },
            () = wait => {
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                if dribble && tcp.write_all(b"TP/1.1\r\nX-Slow: 1\r\n").await.is_err() {
                    return Some(opened.elapsed());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_beyond_the_file_limit_do_not_stop_normal_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 320 files: the default connection cap is then 64.
    let server =
        Server::try_start_command(dir.path(), with_file_limit(dir.path(), 320), &[("FORGE_HEADER_TIMEOUT", "1")])
            .unwrap_or_else(|e| panic!("{e}"));
    let addr = server.addr.clone();

    // An idle keep-alive connection is closed after the header timeout too.
    let idle = {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        tcp.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 4096];
        let n = tcp.read(&mut buf).await.expect("response");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let t0 = tokio::time::Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the idle connection was closed");
        t0.elapsed()
    };
    assert!(idle < Duration::from_secs(3), "closed after {idle:?}");

    // 450 slow connections, more than the server's 320 files.
    let hold = Duration::from_secs(25);
    let slow: Vec<_> = (0..450).map(|i| tokio::spawn(slow_client(addr.clone(), i % 2, hold))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Normal requests still get answers, while the slow ones keep coming.
    let normal = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            let t0 = std::time::Instant::now();
            for _ in 0..5 {
                let res = common::request(&addr, "GET", "/health", &[], b"");
                assert_eq!(res.status, 200, "{res:?}");
            }
            t0.elapsed()
        }
    });
    let took = normal.await.expect("normal requests");
    println!("5 normal requests answered in {took:?} beside 450 slow connections");
    assert!(took < Duration::from_secs(20), "normal requests waited {took:?}");

    let mut closed = Vec::new();
    for task in slow {
        closed.push(task.await.expect("slow client"));
    }
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(still_open, 0, "every slow connection is closed by the server");
    assert_eq!(server.get("/ready").status, 200);
    assert!(!server.logs().contains("Too many open files"), "the server ran out of files");
}

#[test]
fn the_data_dir_and_stored_files_are_private_to_the_server() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // A data dir an earlier version left open is closed too.
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = Server::start(dir.path(), &[]);
    let keys = keys(dir.path());
    let service = keys["service_role_key"].as_str().expect("service key");
    let svc = format!("Bearer {service}");
    let auth = [("apikey", service), ("authorization", svc.as_str())];
    let bucket = server.request(
        "POST",
        "/storage/v1/bucket",
        &[auth[0], auth[1], ("content-type", "application/json")],
        &json_body(&json!({ "name": "private" })),
    );
    assert_eq!(bucket.status, 200, "{}", bucket.body);
    let upload = server.request("POST", "/storage/v1/object/private/a/b/secret.txt", &auth, b"not for other users");
    assert_eq!(upload.status, 200, "{}", upload.body);

    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    // Run as root, the embedded Postgres runs as another account and must pass through.
    let root = std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0;
    assert_eq!(mode(&data), if root { 0o711 } else { 0o700 }, "the data dir");
    assert_eq!(mode(&data.join("jwt_secret")), 0o600);
    let mut stored = 0;
    let mut pending = vec![data.join("storage")];
    while let Some(path) = pending.pop() {
        assert_eq!(mode(&path) & 0o077, 0, "{} is private", path.display());
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).expect("read dir").map(|e| e.expect("entry").path()));
        } else {
            stored += 1;
        }
    }
    assert!(stored >= 1, "the upload is on disk");
    assert_eq!(mode(&data.join("pg")), 0o700, "the cluster");
}

/// A time-ordered (v7) UUID made now, as the storage service names versions.
fn version_now() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let hex = format!("{:012x}", ms & 0xffff_ffff_ffff);
    format!("{}-{}-7abc-8def-0123456789ab", &hex[..8], &hex[8..])
}

#[test]
fn a_restart_removes_what_an_upload_cut_by_a_crash_left() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let files = dir.path().join("data/storage/default");
    let server = Server::start(dir.path(), &[]);
    let keys = keys(dir.path());
    let service = keys["service_role_key"].as_str().expect("service key").to_owned();
    let svc = format!("Bearer {service}");
    let auth = [("apikey", service.as_str()), ("authorization", svc.as_str())];
    let bucket = server.request(
        "POST",
        "/storage/v1/bucket",
        &[auth[0], auth[1], ("content-type", "application/json")],
        &json_body(&json!({ "name": "crash" })),
    );
    assert_eq!(bucket.status, 200, "{}", bucket.body);
    let kept = server.request("POST", "/storage/v1/object/crash/kept.txt", &auth, b"still here");
    assert_eq!(kept.status, 200, "{}", kept.body);

    // A large upload, streamed in chunks, still running when the server is killed.
    let mut tcp = std::net::TcpStream::connect(&server.addr).expect("connect");
    write!(
        tcp,
        "POST /storage/v1/object/crash/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {svc}\r\n\
         Transfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .expect("head");
    let chunk = vec![7u8; 1 << 20];
    let staged = |files: &std::path::Path| {
        std::fs::read_dir(files)
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().contains('#')).count())
            .unwrap_or(0)
    };
    for _ in 0..40 {
        write!(tcp, "{:x}\r\n", chunk.len()).expect("chunk size");
        tcp.write_all(&chunk).expect("chunk");
        tcp.write_all(b"\r\n").expect("chunk end");
        if staged(&files) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(staged(&files) > 0, "the upload's bytes are on disk before the crash");
    let pg = common::postmaster_pid(&dir.path().join("data"));
    server.signal("KILL");
    drop(server);
    drop(tcp);
    // The embedded cluster follows its server down.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pg.is_some_and(common::process_alive) {
        assert!(std::time::Instant::now() < deadline, "postgres outlived its server");
        std::thread::sleep(Duration::from_millis(50));
    }
    // And a whole blob no row names, as a kill between storing and recording leaves.
    let orphan = files.join(version_now());
    std::fs::write(&orphan, b"never recorded").expect("orphan blob");
    assert!(staged(&files) > 0);

    let server = Server::start(dir.path(), &[]);
    assert_eq!(staged(&files), 0, "no interrupted write is left once the server is up");
    assert!(!orphan.exists(), "the unrecorded blob is gone");
    let res = server.request("GET", "/storage/v1/object/crash/kept.txt", &auth, b"");
    assert_eq!((res.status, res.body.as_str()), (200, "still here"));
    assert!(server.logs().contains("what a previous run left"), "{}", server.logs());
}

/// Sends `body` (chunked when `chunked`) and reads the whole answer, or the error that cut it.
fn send_all(addr: &str, path: &str, auth: &str, body: &[u8], chunked: bool) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    let mut tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let length =
        if chunked { "Transfer-Encoding: chunked".to_owned() } else { format!("Content-Length: {}", body.len()) };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n{length}\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let mut sent = tcp.write_all(head.as_bytes());
    for chunk in body.chunks(64 * 1024) {
        if sent.is_err() {
            break;
        }
        sent = if chunked {
            tcp.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| tcp.write_all(chunk))
                .and_then(|()| tcp.write_all(b"\r\n"))
        } else {
            tcp.write_all(chunk)
        };
    }
    if chunked && sent.is_ok() {
        let _ = tcp.write_all(b"0\r\n\r\n");
    }
    let mut answer = Vec::new();
    match tcp.read_to_end(&mut answer) {
        // The whole body went through: the server read (and dropped) what it refused, so
        // that clients that stop at a failed write (browsers' fetch) still see the answer.
        Ok(_) if !answer.is_empty() && sent.is_err() => Err(format!(
            "the server stopped reading the body ({sent:?}) and answered: {}",
            String::from_utf8_lossy(&answer)
        )),
        Ok(_) if !answer.is_empty() => Ok(String::from_utf8_lossy(&answer).into_owned()),
        Ok(_) => Err(format!("no answer (sending: {sent:?})")),
        Err(e) => Err(format!("{e} (sending: {sent:?}, read {} bytes)", answer.len())),
    }
}

#[test]
fn a_body_over_the_limit_gets_its_413_however_it_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("FORGE_BODY_LIMIT", "1000000")]);
    let keys = keys(dir.path());
    let svc = format!("Bearer {}", keys["service_role_key"].as_str().expect("service key"));
    let bucket = server.request(
        "POST",
        "/storage/v1/bucket",
        &[("authorization", &svc), ("content-type", "application/json")],
        &json_body(&json!({ "name": "limits" })),
    );
    assert_eq!(bucket.status, 200, "{}", bucket.body);
    // Four times the limit: more than the sockets' buffers hold.
    let body = vec![b'x'; 16_000_000];
    for round in 0..3 {
        for (path, chunked) in [
            ("/storage/v1/object/limits/big.bin", true),
            ("/storage/v1/object/limits/big.bin", false),
            ("/rest/v1/no_such_table", true),
            ("/rest/v1/no_such_table", false),
        ] {
            let answer = send_all(&server.addr, path, &svc, &body, chunked)
                .unwrap_or_else(|e| panic!("round {round}, {path}, chunked {chunked}: the answer was lost: {e}"));
            let status = answer.split_whitespace().nth(1).unwrap_or("");
            let storage_413 = answer.contains("\"statusCode\":\"413\"");
            assert!(status == "413" || storage_413, "round {round}, {path}, chunked {chunked}: {answer}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_are_closed_too() {
    use tokio::io::AsyncReadExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("FORGE_HEADER_TIMEOUT", "1"), ("FORGE_MAX_CONNECTIONS", "32")]);
    // Twice the cap: silent connections must give their slots back.
    let mut silent = Vec::new();
    for _ in 0..64 {
        silent.push(tokio::net::TcpStream::connect(&server.addr).await.expect("connect"));
    }
    let t0 = std::time::Instant::now();
    for mut tcp in silent {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0) | Err(_))), "a silent connection stayed open: {closed:?}");
    }
    println!("64 silent connections closed within {:?}", t0.elapsed());
    assert_eq!(server.get("/health").status, 200);
}
