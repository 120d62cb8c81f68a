//! Many projects on one server: 200 are created and each used once, while a watcher counts
//! the connections the server holds to project databases; they never exceed the budget.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, command};
use serde_json::json;
use sqlx::Connection as _;

const PROJECTS: usize = 200;
const POOL: usize = 2;
const BUDGET: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_projects_each_used_once_within_the_connection_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pool, budget) = (POOL.to_string(), BUDGET.to_string());
    let server = Arc::new(Server::start(
        dir.path(),
        &[("FORGE_PROJECT_POOL_SIZE", &pool), ("FORGE_PROJECT_CONNECTION_BUDGET", &budget)],
    ));
    let out = command(dir.path()).args(["tokens", "create", "--email", "ops@example.com"]).output().expect("cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bearer = format!("Bearer {}", String::from_utf8(out.stdout).expect("utf-8").trim());

    // The watcher: connections to project databases (named forge_platform_<ref>), every 20 ms,
    // but for the control plane's own (creating each project), which the budget leaves out,
    // and Postgres's autovacuum workers (new databases get analyzed).
    let admin = common::embedded_url(&dir.path().join("data"));
    let mut watcher = sqlx::PgConnection::connect(&admin).await.expect("connect to the cluster");
    let (peak, stop) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicBool::new(false)));
    let watching = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n: i64 = sqlx::query_scalar(
                    "select count(*) from pg_stat_activity where datname like 'forge\\_platform\\_%' \
                     and datname <> 'forge_platform_template' and backend_type = 'client backend' \
                     and application_name <> 'forge-control'",
                )
                .fetch_one(&mut watcher)
                .await
                .expect("count connections");
                peak.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let started = Instant::now();
    let mut created = Vec::new();
    for i in 0..PROJECTS {
        let server = server.clone();
        let bearer = bearer.clone();
        let (reference, anon) = tokio::task::spawn_blocking(move || {
            let body = json!({ "name": format!("project {i}"), "organization_id": "default" }).to_string();
            let res = server.request(
                "POST",
                "/v1/projects",
                &[("authorization", &bearer), ("content-type", "application/json")],
                body.as_bytes(),
            );
            assert_eq!(res.status, 201, "project {i}: {}", res.body);
            let reference = res.json()["ref"].as_str().expect("ref").to_owned();
            let keys = server.request(
                "GET",
                &format!("/v1/projects/{reference}/api-keys"),
                &[("authorization", &bearer)],
                b"",
            );
            let anon = keys.json().as_array().expect("keys").iter().find(|k| k["kind"] == "legacy_anon").expect("anon")
                ["api_key"]
                .as_str()
                .expect("key")
                .to_owned();
            // Used once: a REST request under its own key opens its pools.
            let res = server.request("GET", &format!("/p/{reference}/rest/v1/"), &[("apikey", &anon)], b"");
            assert_eq!(res.status, 200, "project {i}: {}", res.body);
            (reference, anon)
        })
        .await
        .expect("join");
        created.push((reference, anon));
    }
    let elapsed = started.elapsed();
    // Every project still answers (closed ones reopen on demand), in a second pass.
    for (reference, anon) in created.iter().step_by(10) {
        let server = server.clone();
        let (reference, anon) = (reference.clone(), anon.clone());
        let status = tokio::task::spawn_blocking(move || {
            server.request("GET", &format!("/p/{reference}/rest/v1/"), &[("apikey", &anon)], b"").status
        })
        .await
        .expect("join");
        assert_eq!(status, 200);
    }
    stop.store(true, Ordering::Relaxed);
    watching.await.expect("watcher");
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "{PROJECTS} projects created and used in {elapsed:?}; peak connections to project databases: {peak} (budget {BUDGET})"
    );
    assert!(peak > 0, "the watcher saw the projects' connections");
    assert!(peak <= BUDGET as i64, "{peak} connections, over the budget of {BUDGET}");
}
