//! Two nodes serving one project on one database, sharing a real bus: broadcasts, presence
//! and each change reach clients on either node exactly once; when the capture leader goes,
//! the other node takes over without skipping a committed change; a node that goes silent
//! loses its presences.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Client, Node, database};
use forge_realtime::bus::{Bus, BusError, Envelope, PostgresBus, PostgresBusConfig};
use forge_realtime::{Realtime, RealtimeConfig};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};

/// How long nothing more may arrive after the changes a test waits for.
const SETTLE: Duration = Duration::from_millis(500);

fn config() -> RealtimeConfig {
    RealtimeConfig::default()
        .with_poll_interval(Duration::from_millis(20))
        .with_presence_interval(Duration::from_millis(300))
}

/// A real bus whose publishing can be cut, as a node that dies stops talking.
#[derive(Debug)]
struct Cuttable {
    inner: Arc<dyn Bus>,
    cut: AtomicBool,
}

impl Bus for Cuttable {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        if self.cut.load(Ordering::Relaxed) {
            return Box::pin(async { Ok(()) });
        }
        self.inner.publish(envelope)
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Envelope>, BusError>> {
        self.inner.subscribe()
    }
}

async fn postgres_bus(db: &forge_core::testing::TestDb) -> Arc<dyn Bus> {
    let options = db.pool().connect_options().as_ref().clone();
    Arc::new(PostgresBus::connect_with(PostgresBusConfig::new(options)).await.expect("postgres bus"))
}

async fn node(project: &forge_core::Project, bus: Arc<dyn Bus>) -> Node {
    Node::start_with(project, Realtime::builder().config(config()).bus(bus).build().unwrap()).await
}

const TABLE: &str = "
    create table public.log (id int primary key, body text);
    grant select on public.log to anon, authenticated;
    alter publication supabase_realtime add table public.log;
";

async fn subscribe_log(c: &mut Client, topic: &str, key: &str) {
    let (_, reply) = c
        .join(topic, json!({"postgres_changes": [{"event": "INSERT", "schema": "public", "table": "log"}]}), Some(key))
        .await;
    assert_eq!(reply.payload["status"], "ok", "{reply:?}");
    assert_eq!(c.expect("system").await.payload["message"], "Subscribed to PostgreSQL");
}

async fn two_nodes_share_everything(
    bus1: Arc<dyn Bus>,
    bus2: Arc<dyn Bus>,
    db: &forge_core::testing::TestDb,
    project: &forge_core::Project,
) {
    sqlx::raw_sql(TABLE).execute(db.pool()).await.unwrap();
    let n1 = node(project, bus1).await;
    let n2 = node(project, bus2).await;
    let key = n1.service_key();
    let mut c1 = n1.connect("2.0.0").await;
    let mut c2 = n2.connect("1.0.0").await;
    let topic = "realtime:shared";
    let (j1, _) =
        c1.join(topic, json!({"broadcast": {"self": true}, "presence": {"key": "one", "enabled": true}}), None).await;
    c1.expect("presence_state").await;
    let (_, _) = c2.join(topic, json!({"presence": {"key": "two", "enabled": true}}), None).await;
    c2.expect("presence_state").await;

    // A broadcast from node 1 reaches node 2's client once, and its sender (self) once.
    c1.push(Some(&j1), topic, "broadcast", json!({"type": "broadcast", "event": "e", "payload": {"n": 1}})).await;
    assert_eq!(c2.expect("broadcast").await.payload["payload"], json!({"n": 1}));
    assert_eq!(c1.expect("broadcast").await.payload["payload"], json!({"n": 1}));
    c1.quiet("broadcast", Duration::from_millis(400)).await;
    c2.quiet("broadcast", Duration::from_millis(10)).await;

    // Presence tracked on node 1 is seen on node 2, and by a client joining node 2 later.
    c1.push(Some(&j1), topic, "presence", json!({"type": "presence", "event": "track", "payload": {"at": "n1"}})).await;
    let diff = c2.expect("presence_diff").await;
    assert_eq!(diff.payload["joins"]["one"]["metas"][0]["at"], "n1");
    let mut c3 = n2.connect("2.0.0").await;
    c3.join(topic, json!({"presence": {"key": "three", "enabled": true}}), None).await;
    let state = c3.expect("presence_state").await;
    assert_eq!(state.payload["one"]["metas"][0]["at"], "n1", "{state:?}");

    // Each change reaches a subscriber on either node exactly once.
    subscribe_log(&mut c1, "realtime:log1", &key).await;
    subscribe_log(&mut c2, "realtime:log2", &key).await;
    sqlx::query("insert into public.log select g, 'x' from generate_series(1, 5) g").execute(db.pool()).await.unwrap();
    assert_eq!(c1.change_ids(5, SETTLE).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(c2.change_ids(5, SETTLE).await, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn two_nodes_over_postgres_share_broadcasts_presence_and_changes() {
    let (db, project) = database().await;
    let (b1, b2) = (postgres_bus(&db).await, postgres_bus(&db).await);
    two_nodes_share_everything(b1, b2, &db, &project).await;
}

#[tokio::test]
async fn two_nodes_over_nats_share_broadcasts_presence_and_changes() {
    let (db, project) = database().await;
    let nats = common::NatsServer::start().await;
    let b1: Arc<dyn Bus> = Arc::new(forge_realtime::bus::NatsBus::connect(&nats.url(), "forge.test").await.unwrap());
    let b2: Arc<dyn Bus> = Arc::new(forge_realtime::bus::NatsBus::connect(&nats.url(), "forge.test").await.unwrap());
    two_nodes_share_everything(b1, b2, &db, &project).await;
}

#[tokio::test]
async fn the_capture_leader_hands_over_without_skipping_a_change() {
    let (db, project) = database().await;
    sqlx::raw_sql(TABLE).execute(db.pool()).await.unwrap();
    let n1 = node(&project, postgres_bus(&db).await).await;
    let key = n1.service_key();
    // Node 1 leads: it is the only node when the first subscriber arrives.
    let mut c1 = n1.connect("2.0.0").await;
    subscribe_log(&mut c1, "realtime:log", &key).await;
    sqlx::query("insert into public.log values (1, 'a')").execute(db.pool()).await.unwrap();
    assert_eq!(c1.change_ids(1, SETTLE).await, vec![1]);

    let n2 = node(&project, postgres_bus(&db).await).await;
    let mut c2 = n2.connect("1.0.0").await;
    subscribe_log(&mut c2, "realtime:log", &key).await;
    sqlx::query("insert into public.log values (2, 'b')").execute(db.pool()).await.unwrap();
    assert_eq!(c2.change_ids(1, SETTLE).await, vec![2]);

    // The leader goes; changes committed meanwhile all arrive, once, on node 2.
    n1.realtime.shutdown().await;
    drop(n1);
    for i in 3..=6 {
        sqlx::query("insert into public.log values ($1, 'c')").bind(i).execute(db.pool()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(c2.change_ids(4, SETTLE).await, vec![3, 4, 5, 6]);
}

#[tokio::test]
async fn a_silent_node_loses_its_presences() {
    let (db, project) = database().await;
    let cut = Arc::new(Cuttable { inner: postgres_bus(&db).await, cut: AtomicBool::new(false) });
    let n1 = node(&project, cut.clone()).await;
    let n2 = node(&project, postgres_bus(&db).await).await;
    let topic = "realtime:room";
    let mut c1 = n1.connect("2.0.0").await;
    let (j1, _) = c1.join(topic, json!({"presence": {"key": "gone", "enabled": true}}), None).await;
    let mut c2 = n2.connect("2.0.0").await;
    c2.join(topic, json!({"presence": {"key": "here", "enabled": true}}), None).await;
    c2.expect("presence_state").await;
    c1.push(Some(&j1), topic, "presence", json!({"type": "presence", "event": "track", "payload": {}})).await;
    assert!(c2.expect("presence_diff").await.payload["joins"].get("gone").is_some());

    cut.cut.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let diff = c2.expect("presence_diff").await;
    assert!(diff.payload["leaves"].get("gone").is_some(), "{diff:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "left after {:?}", started.elapsed());
    let _: Value = diff.payload;
}
