//! The whole server on port 0: health, readiness, the edge, the CLI and an external database.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::Server;
use serde_json::Value;

#[test]
fn health_ready_and_the_edge_on_port_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("FORGE_BODY_LIMIT", "1024"), ("FORGE_LOG_FORMAT", "json")]);
    assert!(!server.url.ends_with(":0"), "a real port was bound: {}", server.url);

    let health = server.get("/health");
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("ok")));
    let ready = server.get("/ready");
    assert_eq!((ready.status, ready.json()["status"].as_str()), (200, Some("ready")));
    assert!(ready.header("x-request-id").is_some_and(|id| !id.is_empty()));

    // Unknown routes answer in the shape of the service the path names.
    let rest = server.get("/rest/v2/nothing_here");
    assert_eq!(rest.status, 404);
    assert_eq!(rest.json()["code"], "PGRST125");
    assert_eq!(rest.header("proxy-status"), Some("PostgREST; error=PGRST125"));
    // The REST service is mounted: it wants an API key, then knows no such table.
    let rest = server.get("/rest/v1/nothing_here");
    assert_eq!((rest.status, rest.json()["code"].as_str()), (401, Some("PGRST302")));
    let res = server.request("GET", "/rest/v1/nothing_here", &[("apikey", &server.anon_key)], b"");
    assert_eq!((res.status, res.json()["code"].as_str()), (404, Some("PGRST205")));
    let res = server.request("GET", "/rest/v1/", &[("apikey", &server.anon_key)], b"");
    assert_eq!((res.status, res.json()["swagger"].as_str()), (200, Some("2.0")), "the trailing slash is the root");
    let auth = server.get("/auth/v1/nothing");
    assert_eq!((auth.status, auth.json()["error_code"].as_str()), (404, Some("not_found")));
    // The default project also answers under /p/{ref}; unknown refs get a clear 404.
    assert_eq!(server.get("/p/default/rest/v2/x").json()["code"], "PGRST125");
    let unknown = server.get("/p/nope/rest/v1/x");
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["message"].as_str().expect("message").contains("nope"));

    // Bodies over the limit are refused before they are read, in the service's shape.
    let big = vec![b'x'; 4096];
    let res = server.request("POST", "/rest/v1/todos", &[("content-type", "application/json")], &big);
    assert_eq!(res.status, 413);
    assert_eq!(res.json()["code"], "PGRST102");
    let res = server.request("POST", "/storage/v1/object/b/x", &[], &big);
    assert_eq!((res.status, res.json()["statusCode"].as_str()), (400, Some("413")));

    // CORS: the preflight allows the Supabase headers; responses expose Content-Range.
    let pre = server.request(
        "OPTIONS",
        "/rest/v1/todos",
        &[
            ("origin", "http://app.test"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "apikey,prefer,x-client-info,content-profile"),
        ],
        b"",
    );
    assert_eq!(pre.status, 200);
    // The lists SUPABASE-WIRE.md section A requires.
    let allowed = pre.header("access-control-allow-headers").expect("allow-headers");
    let required = [
        "apikey",
        "authorization",
        "x-client-info",
        "content-type",
        "accept-profile",
        "content-profile",
        "prefer",
        "x-supabase-api-version",
        "x-upsert",
        "x-metadata",
        "cache-control",
        "x-retry-count",
        "x-region",
        "range",
        "tus-resumable",
        "upload-offset",
        "upload-length",
        "upload-metadata",
        "x-signature",
    ];
    for h in required {
        assert!(allowed.split(',').any(|a| a.trim() == h), "{h} in {allowed}");
    }
    let res = server.request("GET", "/rest/v1/todos", &[("origin", "http://app.test")], b"");
    let exposed = res.header("access-control-expose-headers").expect("expose-headers");
    let required = [
        "content-range",
        "x-total-count",
        "link",
        "x-supabase-api-version",
        "location",
        "preference-applied",
        "proxy-status",
    ];
    for h in required {
        assert!(exposed.split(',').any(|e| e.trim() == h), "{h} in {exposed}");
    }

    // JSON logs, and no credential ever reaches them.
    let secret_probe = "Bearer probe-token-that-must-not-be-logged";
    let _ = server.request(
        "GET",
        "/rest/v1/todos",
        &[("authorization", secret_probe), ("apikey", "probe-apikey-not-logged")],
        b"",
    );
    server.signal("TERM");
    let logs = std::fs::read_to_string(&server.stderr).expect("logs");
    let status = server.wait(Duration::from_secs(60));
    assert!(status.success());
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    assert!(!logs.contains("probe-token") && !logs.contains("probe-apikey"), "credentials leaked into logs");
    assert!(logs.contains("ready_ms"));
}

#[test]
fn keys_prints_the_url_and_keys_as_json_and_they_are_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        let out = common::command(dir.path()).arg("keys").env("FORGE_LISTEN", "127.0.0.1:8123").output().expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    let keys = run();
    assert_eq!(keys["url"], "http://127.0.0.1:8123");
    let anon = keys["anon_key"].as_str().expect("anon key");
    let payload = anon.split('.').nth(1).expect("a JWT");
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("claims");
    assert_eq!(claims["role"], "anon");
    assert!(keys["service_role_key"].as_str().is_some_and(|k| k.split('.').count() == 3));
    assert!(keys["publishable_key"].as_str().is_some_and(|k| k.starts_with("sb_publishable_")));
    assert!(keys["secret_key"].as_str().is_some_and(|k| k.starts_with("sb_secret_")));
    assert_eq!(run(), keys, "the generated secret is kept, so keys do not change between runs");

    let short = common::command(dir.path()).arg("keys").env("FORGE_JWT_SECRET", "too-short").output().expect("run");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 32 bytes"));
}

#[tokio::test]
async fn an_external_database_via_forge_database_url() {
    let db = forge_core::testing::test_db().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::command(dir.path()).arg("migrate").env("FORGE_DATABASE_URL", db.url()).output().expect("migrate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(dir.path(), &[("FORGE_DATABASE_URL", db.url())]);
    assert_eq!(server.get("/ready").status, 200);
    assert!(!dir.path().join("data/pg").exists(), "no embedded cluster when a URL is given");
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());

    // A database that does not exist: a clear start-up error, not a hang or a panic.
    let missing = db.url().replace(db.name(), "no_such_db");
    let out = common::command(dir.path()).env("FORGE_DATABASE_URL", &missing).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("preparing the database") && stderr.contains("does not exist"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
