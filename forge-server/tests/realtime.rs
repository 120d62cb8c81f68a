//! Realtime across two forge-server processes on one database: clients on either process get
//! broadcasts, presence and each change exactly once, over the Postgres bus and over NATS;
//! killing the process that captures changes hands capture over without skipping a committed
//! change, and its presences leave.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use forge_realtime::testing::{Client, NatsServer};
use serde_json::json;

/// How long nothing more may arrive after the changes a test waits for.
const SETTLE: Duration = Duration::from_millis(800);

const SECRET: &str = "realtime-two-nodes-secret-at-least-32-bytes";

async fn connect(server: &Server, vsn: &str) -> Client {
    let url = format!("ws://{}/realtime/v1/websocket?apikey={}&vsn={vsn}", server.addr, server.anon_key);
    Client::connect(&url).await.expect("connect")
}

/// The service key both processes share (same secret, same project ref).
fn service_key() -> String {
    let claims = json!({"role": "service_role", "iss": "supabase", "ref": "default", "exp": 4_102_444_800i64});
    forge_core::ProjectKeys::builder("default".parse().unwrap(), SECRET.as_bytes().to_vec())
        .build()
        .unwrap()
        .sign_hs256(claims.as_object().unwrap())
        .unwrap()
}

async fn subscribe(c: &mut Client, topic: &str) {
    let binding = json!({"event": "INSERT", "schema": "public", "table": "log"});
    let (_, reply) = c.join(topic, json!({"postgres_changes": [binding]}), Some(&service_key())).await;
    assert_eq!(reply.payload["status"], "ok", "{reply:?}");
    assert_eq!(c.expect("system").await.payload["message"], "Subscribed to PostgreSQL");
}

async fn two_processes(bus: &str) {
    let db = forge_core::testing::test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let out = common::command(dir.path()).arg("migrate").env("FORGE_DATABASE_URL", db.url()).output().expect("migrate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sqlx::raw_sql(
        "create table public.log (id int primary key, body text);
         alter publication supabase_realtime add table public.log;",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let env = [
        ("FORGE_DATABASE_URL", db.url()),
        ("FORGE_JWT_SECRET", SECRET),
        ("FORGE_JWT_SIGNING_ALGORITHM", "HS256"),
        ("FORGE_BUS", bus),
        ("FORGE_REALTIME_PRESENCE_INTERVAL", "0.3"),
        ("FORGE_REALTIME_POLL_INTERVAL", "0.02"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A starts first, so it takes the capture lock.
    let a = Server::start(dir_a.path(), &env);
    let b = Server::start(dir_b.path(), &env);

    let topic = "realtime:room";
    let mut ca = connect(&a, "2.0.0").await;
    let mut cb = connect(&b, "1.0.0").await;
    let (ja, _) =
        ca.join(topic, json!({"broadcast": {"self": true}, "presence": {"key": "on-a", "enabled": true}}), None).await;
    ca.expect("presence_state").await;
    cb.join(topic, json!({"presence": {"key": "on-b", "enabled": true}}), None).await;
    cb.expect("presence_state").await;

    ca.push(Some(&ja), topic, "broadcast", json!({"type": "broadcast", "event": "hi", "payload": {"from": "a"}})).await;
    assert_eq!(cb.expect("broadcast").await.payload["payload"], json!({"from": "a"}));
    assert_eq!(ca.expect("broadcast").await.payload["payload"], json!({"from": "a"}));
    cb.quiet("broadcast", Duration::from_millis(400)).await;
    ca.quiet("broadcast", Duration::from_millis(10)).await;

    ca.push(Some(&ja), topic, "presence", json!({"type": "presence", "event": "track", "payload": {"n": 1}})).await;
    assert_eq!(cb.expect("presence_diff").await.payload["joins"]["on-a"]["metas"][0]["n"], 1);

    let mut la = connect(&a, "2.0.0").await;
    let mut lb = connect(&b, "2.0.0").await;
    subscribe(&mut la, "realtime:log").await;
    subscribe(&mut lb, "realtime:log").await;
    sqlx::query("insert into public.log select g, 'x' from generate_series(1, 3) g").execute(db.pool()).await.unwrap();
    assert_eq!(la.change_ids(3, SETTLE).await, vec![1, 2, 3]);
    assert_eq!(lb.change_ids(3, SETTLE).await, vec![1, 2, 3]);

    // A dies while rows are being committed: B captures from where A confirmed, without a
    // gap or a repeat, and A's presence leaves B's channel within a bounded time.
    let killed = Instant::now();
    a.signal("KILL");
    for i in 4..=9 {
        sqlx::query("insert into public.log values ($1, 'y')").bind(i).execute(db.pool()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let diff = cb.expect("presence_diff").await;
    assert!(diff.payload["leaves"].get("on-a").is_some(), "{diff:?}");
    assert!(killed.elapsed() < Duration::from_secs(5), "A's presence left after {:?}", killed.elapsed());
    assert_eq!(lb.change_ids(6, SETTLE).await, vec![4, 5, 6, 7, 8, 9]);
    drop(b);
}

#[tokio::test]
async fn two_processes_over_the_postgres_bus() {
    two_processes("postgres").await;
}

#[tokio::test]
async fn two_processes_over_nats() {
    let nats = NatsServer::start().await;
    two_processes(&nats.url()).await;
}
