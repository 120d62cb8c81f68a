//! The embedded Postgres supervisor, through the real binary: first start, restart over the
//! same data dir, recovery after SIGKILL, a stale pid file, and clean stops.

mod common;

use std::time::{Duration, Instant};

use common::{Server, embedded_url, postmaster_pid, process_alive};
use sqlx::{Connection as _, PgConnection};

async fn exec(data_dir: &std::path::Path, sql: &str) {
    let mut conn = PgConnection::connect(&embedded_url(data_dir)).await.expect("connect to the embedded cluster");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.expect("sql");
}

async fn count(data_dir: &std::path::Path) -> i64 {
    let mut conn = PgConnection::connect(&embedded_url(data_dir)).await.expect("connect to the embedded cluster");
    sqlx::query_scalar("select count(*) from kept").fetch_one(&mut conn).await.expect("count")
}

fn wait_gone(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "postgres {pid} still running after {timeout:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[tokio::test]
async fn first_start_restart_sigkill_recovery_and_clean_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");

    // First start: initdb, bootstrap, ready.
    let server = Server::start(dir.path(), &[]);
    println!("first start: ready after {:?}", server.started_in);
    assert!(server.logs().contains("first_start=true"), "{}", server.logs());
    assert_eq!(server.get("/ready").status, 200);
    exec(&data, "create table kept (id int); insert into kept values (1);").await;
    let pg = postmaster_pid(&data).expect("postmaster.pid");

    // A clean stop on SIGTERM: the server exits 0, Postgres shuts down cleanly.
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    wait_gone(pg, Duration::from_secs(10));
    assert!(postmaster_pid(&data).is_none(), "a clean stop leaves no postmaster.pid");
    let log = std::fs::read_to_string(data.join("postgres.log")).expect("postgres log");
    assert!(log.contains("received fast shutdown request") && log.contains("database system is shut down"));

    // Restart over the same data dir: no initdb, data kept.
    let server = Server::start(dir.path(), &[]);
    println!("restart: ready after {:?}", server.started_in);
    assert!(server.logs().contains("first_start=false"), "{}", server.logs());
    assert_eq!(count(&data).await, 1);
    exec(&data, "insert into kept values (2);").await;
    let pg = postmaster_pid(&data).expect("postmaster.pid");

    // SIGKILL the server: Postgres must not outlive it, and the next start recovers.
    server.signal("KILL");
    let _ = server.wait(Duration::from_secs(10));
    wait_gone(pg, Duration::from_secs(15));
    let server = Server::start(dir.path(), &[]);
    println!("after SIGKILL: ready after {:?}", server.started_in);
    assert_eq!(server.get("/ready").status, 200);
    assert_eq!(count(&data).await, 2, "a committed row survives the crash");
    let log = std::fs::read_to_string(data.join("postgres.log")).expect("postgres log");
    assert!(log.contains("received immediate shutdown request"), "postgres was told to quit when its supervisor died");
    assert!(log.contains("automatic recovery in progress") || log.contains("not properly shut down"));

    // SIGINT (Ctrl-C) stops cleanly too.
    let pg = postmaster_pid(&data).expect("postmaster.pid");
    server.signal("INT");
    assert!(server.wait(Duration::from_secs(60)).success());
    wait_gone(pg, Duration::from_secs(10));

    // A stale pid file (from a process that no longer exists) does not stop the next start.
    std::fs::write(data.join("pg/postmaster.pid"), "999999\n/nowhere\n").expect("stale pid file");
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.get("/ready").status, 200);
    assert!(server.logs().contains("stale postmaster.pid"), "{}", server.logs());
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(60)).success());
}

#[test]
fn missing_postgres_binaries_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::command(dir.path()).env("FORGE_POSTGRES_BIN", "/nonexistent").output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(stderr.contains("FORGE_DATABASE_URL"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postmaster_is_restarted_and_requests_recover_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &[]);
    exec(&data, "create table kept (id int); insert into kept values (1);").await;
    let keys = common::command(dir.path()).arg("keys").output().expect("keys");
    let keys: serde_json::Value = serde_json::from_slice(&keys.stdout).expect("keys JSON");
    let service = keys["service_role_key"].as_str().expect("service key").to_owned();

    // Load on both pools: /ready pings through sqlx, the bucket list goes through the RLS
    // gateway.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (addr, stop) = (server.addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let svc = format!("Bearer {service}");
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let ready = common::request(&addr, "GET", "/ready", &[], b"").status;
                let buckets =
                    common::request(&addr, "GET", "/storage/v1/bucket", &[("authorization", &svc)], b"").status;
                seen.push((Instant::now(), ready, buckets));
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pg = postmaster_pid(&data).expect("postmaster.pid");
    let killed = Instant::now();
    assert!(std::process::Command::new("kill").args(["-KILL", &pg.to_string()]).status().expect("kill").success());

    // Back within 5 s: both pools answer again, and keep answering.
    let deadline = killed + Duration::from_secs(5);
    loop {
        let ready = server.get("/ready").status;
        if ready == 200 && postmaster_pid(&data).is_some_and(|new| new != pg) {
            break;
        }
        assert!(Instant::now() < deadline, "not ready again 5 s after the postmaster was killed: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = load.join().expect("load");
    let recovered = seen
        .iter()
        .filter(|(at, ready, buckets)| *at > killed && (*ready != 200 || *buckets != 200))
        .map(|(at, ..)| at.duration_since(killed))
        .max()
        .unwrap_or_default();
    println!("{} requests; the last failure came {recovered:?} after the kill", seen.len());
    assert!(recovered < Duration::from_secs(5), "requests still failed {recovered:?} after the kill");
    let (_, ready, buckets) = seen.last().copied().expect("requests were made");
    assert_eq!((ready, buckets), (200, 200), "the last requests succeeded");
    assert_eq!(count(&data).await, 1, "committed data survives");
    assert!(server.logs().contains("embedded postgres restarted"), "{}", server.logs());

    // A clean stop still stops the restarted cluster.
    let new_pg = postmaster_pid(&data).expect("the new postmaster");
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(60)).success());
    wait_gone(new_pg, Duration::from_secs(10));
}
