//! Usage metering through the real binary: a known request mix, served by two nodes that
//! share one database (and one control plane), with a restart of one of them in the middle,
//! adds up to exactly what was sent.

mod common;

use std::time::Duration;

use common::{Server, command};
use serde_json::{Value, json};

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const JWT_SECRET: &str = "metering-test-secret-that-is-long-enough-for-hs256";

fn send(server: &Server, times: usize, path: &str, key: Option<&str>, want: u16) {
    for _ in 0..times {
        let headers: Vec<(&str, &str)> = key.map(|k| vec![("apikey", k)]).unwrap_or_default();
        let res = server.request("GET", path, &headers, b"");
        assert_eq!(res.status, want, "{path}: {}", res.body);
    }
}

fn stop(server: Server) {
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success(), "a graceful stop");
}

#[tokio::test]
async fn a_known_request_mix_is_metered_exactly_across_two_nodes_and_a_restart() {
    let db = forge_core::testing::test_db().await;
    let envs = [
        ("FORGE_DATABASE_URL", db.url()),
        ("FORGE_MASTER_KEY", MASTER_KEY),
        ("FORGE_JWT_SECRET", JWT_SECRET),
        // Longer than the test: only the graceful stops write the counts.
        ("FORGE_USAGE_FLUSH_INTERVAL", "3600"),
    ];
    let (dir1, dir2) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let node1 = Server::start(dir1.path(), &envs);
    let node2 = Server::start(dir2.path(), &envs);

    let out =
        command(dir1.path()).envs(envs).args(["tokens", "create", "--email", "ops@example.com"]).output().expect("cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    let bearer = format!("Bearer {token}");
    let body = json!({ "name": "metered", "organization_id": "default" }).to_string();
    let created = node1.request(
        "POST",
        "/v1/projects",
        &[("authorization", &bearer), ("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let reference = created.json()["ref"].as_str().expect("ref").to_owned();
    let keys = node1.request("GET", &format!("/v1/projects/{reference}/api-keys"), &[("authorization", &bearer)], b"");
    let anon =
        keys.json().as_array().expect("keys").iter().find(|k| k["kind"] == "legacy_anon").expect("anon")["api_key"]
            .as_str()
            .expect("value")
            .to_owned();
    let (rest, missing, auth) = (
        format!("/p/{reference}/rest/v1/"),
        format!("/p/{reference}/rest/v1/nope"),
        format!("/p/{reference}/auth/v1/settings"),
    );

    send(&node1, 30, &rest, Some(&anon), 200);
    send(&node1, 10, &missing, Some(&anon), 404);
    send(&node1, 5, &rest, None, 401);
    send(&node1, 7, &auth, Some(&anon), 200);
    send(&node2, 20, &rest, Some(&anon), 200);
    send(&node2, 3, &missing, Some(&anon), 404);
    // The default project's requests are its own.
    send(&node2, 4, "/rest/v1/", Some(&node2.anon_key), 200);

    stop(node1);
    let node1 = Server::start(dir1.path(), &envs);
    send(&node1, 11, &rest, Some(&anon), 200);
    stop(node1);
    stop(node2);

    // Read back through the Management API of a fresh node.
    let node3 = Server::start(dir1.path(), &envs);
    let usage = node3.request("GET", &format!("/v1/projects/{reference}/usage"), &[("authorization", &bearer)], b"");
    assert_eq!(usage.status, 200, "{}", usage.body);
    let rows = usage.json()["usage"].as_array().expect("rows").clone();
    let value = |metric: &str, dimension: &str| -> i64 {
        rows.iter()
            .filter(|r| r["metric"] == metric && r["dimension"] == dimension)
            .map(|r| r["value"].as_i64().expect("value"))
            .sum()
    };
    assert_eq!(value("requests", "rest:2xx"), 30 + 20 + 11, "{rows:?}");
    assert_eq!(value("requests", "rest:4xx"), 10 + 5 + 3, "{rows:?}");
    assert_eq!(value("requests", "auth:2xx"), 7, "{rows:?}");
    let all: i64 = rows.iter().filter(|r| r["metric"] == "requests").map(|r| r["value"].as_i64().expect("n")).sum();
    assert_eq!(all, 86, "nothing else was counted for the project: {rows:?}");
    assert!(value("egress_bytes", "rest") > 0 && value("egress_bytes", "auth") > 0, "{rows:?}");
    let default = node3.request("GET", "/v1/projects/default/usage", &[("authorization", &bearer)], b"").json();
    let default_rest: i64 = default["usage"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["metric"] == "requests" && r["dimension"] == "rest:2xx")
        .map(|r| r["value"].as_i64().expect("n"))
        .sum();
    assert_eq!(default_rest, 4);
    let _: Value = default;
}
