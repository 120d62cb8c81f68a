//! The buses against real servers: `LocalBus` in process, `PostgresBus` on a fresh database
//! from forge-core's test support, `NatsBus` on Debian's `nats-server` started per test.
//!
//! The NATS tests need `nats-server` on PATH or at /usr/sbin/nats-server
//! (`apt-get install nats-server`); without it they fail, they do not skip.

mod common;

use common::NatsServer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use forge_core::testing::test_db;
use forge_realtime::bus::{
    Bus, Envelope, LISTENER_APPLICATION_NAME, LocalBus, NatsBus, NodeId, PostgresBus, PostgresBusConfig,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

type Envelopes = BoxStream<'static, Envelope>;

/// How long any one envelope may take to arrive.
const ARRIVAL: Duration = Duration::from_secs(5);

fn envelope(origin: NodeId, project: &str, payload: impl Into<Bytes>) -> Envelope {
    Envelope { origin, project: Arc::from(project), payload: payload.into() }
}

/// `len` bytes that cover every byte value and differ by position.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).wrapping_add((i >> 8) as u8)).collect()
}

async fn next(stream: &mut Envelopes) -> Envelope {
    match tokio::time::timeout(ARRIVAL, stream.next()).await {
        Ok(Some(envelope)) => envelope,
        Ok(None) => panic!("the subscription ended"),
        Err(_) => panic!("no envelope within {ARRIVAL:?}"),
    }
}

/// Receives `expected.len()` envelopes and checks they are `expected`, in that order, and
/// that nothing else follows.
async fn expect_exactly(stream: &mut Envelopes, expected: &[Envelope]) {
    for (i, want) in expected.iter().enumerate() {
        let got = next(stream).await;
        assert!(got == *want, "envelope {i}: got {} from {}, want {}", describe(&got), got.origin, describe(want));
    }
    expect_quiet(stream).await;
}

/// Receives as many envelopes as `published` holds and checks that each origin's arrive in
/// the order it published them (the order across origins is not promised), then that nothing
/// else follows.
async fn expect_per_origin(stream: &mut Envelopes, published: &[Envelope]) {
    let mut received = Vec::with_capacity(published.len());
    for _ in published {
        received.push(next(stream).await);
    }
    let mut origins: Vec<NodeId> = published.iter().map(|e| e.origin).collect();
    origins.dedup();
    for origin in origins {
        let sent: Vec<&Envelope> = published.iter().filter(|e| e.origin == origin).collect();
        let got: Vec<&Envelope> = received.iter().filter(|e| e.origin == origin).collect();
        assert!(got == sent, "from {origin}: got {:?}, want {:?}", names(&got), names(&sent));
    }
    expect_quiet(stream).await;
}

/// Checks that no (duplicate or stray) envelope arrives for a while.
async fn expect_quiet(stream: &mut Envelopes) {
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected {:?}", extra.map(|e| describe(&e)));
    }
}

fn describe(envelope: &Envelope) -> String {
    format!(
        "{}/{} ({} bytes)",
        envelope.project,
        String::from_utf8_lossy(&envelope.payload[..envelope.payload.len().min(24)]),
        envelope.payload.len()
    )
}

fn names(envelopes: &[&Envelope]) -> Vec<String> {
    envelopes.iter().map(|e| describe(e)).collect()
}

/// Two nodes, each with a subscriber (node `a` with two), publish in turn; every subscriber
/// gets every envelope once, each origin's in order. With `total_order`, the buses also
/// promise the order across origins for publishes made one after the other.
async fn exchange(a: &dyn Bus, b: &dyn Bus, total_order: bool) {
    let mut streams = vec![a.subscribe().await.unwrap(), a.subscribe().await.unwrap(), b.subscribe().await.unwrap()];
    let (origin_a, origin_b) = (NodeId::new_v4(), NodeId::new_v4());
    let mut published = Vec::new();
    for i in 0..20 {
        let from_a = envelope(origin_a, "project-a", format!("a{i}"));
        a.publish(from_a.clone()).await.unwrap();
        published.push(from_a);
        let from_b = envelope(origin_b, if i % 2 == 0 { "project-a" } else { "project-b" }, format!("b{i}"));
        b.publish(from_b.clone()).await.unwrap();
        published.push(from_b);
    }
    for stream in &mut streams {
        if total_order {
            expect_exactly(stream, &published).await;
        } else {
            expect_per_origin(stream, &published).await;
        }
    }
}

/// Publishes probes from `bus` until every stream has received one (its listener is live
/// again), or fails after 10 s.
async fn wait_until_live(bus: &dyn Bus, streams: &mut [Envelopes]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let probe = NodeId::new_v4();
    for stream in streams.iter_mut() {
        loop {
            assert!(Instant::now() < deadline, "the bus did not come back within 10 s");
            bus.publish(envelope(probe, "probe", "probe")).await.expect("publish a probe");
            if let Ok(got) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
                assert!(got.is_some(), "the subscription ended");
                break;
            }
        }
    }
}

/// Receives until `expected` arrived in order, skipping probes left over from
/// [`wait_until_live`].
async fn expect_after_probes(stream: &mut Envelopes, expected: &[Envelope]) {
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let envelope = next(stream).await;
        if &*envelope.project != "probe" {
            got.push(envelope);
        }
    }
    assert_eq!(got, expected);
}

// --- LocalBus ---

#[tokio::test]
async fn local_bus_subscribers_get_every_envelope_in_order() {
    let bus = LocalBus::new();
    exchange(&bus, &bus.clone(), true).await;
}

#[tokio::test]
async fn local_bus_subscription_sees_only_later_envelopes() {
    let bus = LocalBus::new();
    let origin = NodeId::new_v4();
    bus.publish(envelope(origin, "p", "before")).await.unwrap();
    let mut stream = bus.subscribe().await.unwrap();
    let after = envelope(origin, "p", "after");
    bus.publish(after.clone()).await.unwrap();
    expect_exactly(&mut stream, &[after]).await;
}

#[tokio::test]
async fn local_bus_lagging_subscriber_skips_the_oldest_and_goes_on() {
    let bus = LocalBus::with_capacity(4);
    let mut slow = bus.subscribe().await.unwrap();
    let origin = NodeId::new_v4();
    let all: Vec<Envelope> = (0..10).map(|i| envelope(origin, "p", format!("{i}"))).collect();
    for e in &all {
        bus.publish(e.clone()).await.unwrap();
    }
    // The ring holds the last four; the six before are skipped (and logged).
    expect_exactly(&mut slow, &all[6..]).await;
    let later = envelope(origin, "p", "later");
    bus.publish(later.clone()).await.unwrap();
    expect_exactly(&mut slow, &[later]).await;
}

#[tokio::test]
async fn local_bus_subscription_ends_with_the_bus() {
    let bus = LocalBus::new();
    let mut stream = bus.subscribe().await.unwrap();
    drop(bus);
    assert!(stream.next().await.is_none());
}

// --- PostgresBus ---

#[tokio::test]
async fn postgres_nodes_get_each_others_and_their_own_envelopes_once_in_order() {
    let db = test_db().await;
    // Both at once: creating the spill table must not race.
    let config = db.config();
    let (a, b) = tokio::join!(PostgresBus::connect(&config), PostgresBus::connect_url(db.url()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.channel(), PostgresBus::DEFAULT_CHANNEL);
    // Publishes one after the other commit in that order, and NOTIFY keeps commit order.
    exchange(&a, &b, true).await;
}

#[tokio::test]
async fn postgres_large_envelopes_are_spilled_and_keep_their_order() {
    let db = test_db().await;
    let a = PostgresBus::connect(&db.config()).await.unwrap();
    let b = PostgresBus::connect(&db.config()).await.unwrap();
    let mut on_a = a.subscribe().await.unwrap();
    let mut on_b = b.subscribe().await.unwrap();
    let origin = NodeId::new_v4();
    // Small and spilled envelopes interleaved, and every size around the NOTIFY limit (frames
    // up to 5,997 bytes go inline: 19 header bytes and the 7-byte project leave 5,971).
    let mut published = vec![
        envelope(origin, "project", "small 1"),
        envelope(origin, "project", pattern(100 * 1024, 1)),
        envelope(origin, "project", "small 2"),
        envelope(origin, "project", pattern(1024 * 1024, 2)),
        envelope(origin, "project", Bytes::new()),
    ];
    published.extend((5960..5990).map(|len| envelope(origin, "project", pattern(len, len as u8))));
    for e in &published {
        a.publish(e.clone()).await.unwrap();
    }
    expect_exactly(&mut on_a, &published).await;
    expect_exactly(&mut on_b, &published).await;
    let spilled: i64 =
        sqlx::query_scalar("select count(*) from forge_realtime_bus.spill").fetch_one(db.pool()).await.unwrap();
    assert_eq!(spilled, 2 + 18, "the 100 kB and 1 MB payloads and the 18 frames over 5,997 bytes");
}

#[tokio::test]
async fn postgres_old_spilled_envelopes_are_deleted() {
    let db = test_db().await;
    let config =
        PostgresBusConfig::from_database_config(&db.config()).unwrap().with_spill_retention(Duration::from_millis(500));
    let bus = PostgresBus::connect_with(config).await.unwrap();
    let mut stream = bus.subscribe().await.unwrap();
    let large = envelope(NodeId::new_v4(), "project", pattern(50_000, 3));
    bus.publish(large.clone()).await.unwrap();
    expect_exactly(&mut stream, &[large]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: i64 =
            sqlx::query_scalar("select count(*) from forge_realtime_bus.spill").fetch_one(db.pool()).await.unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} spilled rows still there after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn postgres_a_thousand_small_envelopes_arrive_in_order() {
    let db = test_db().await;
    let a = PostgresBus::connect(&db.config()).await.unwrap();
    let b = PostgresBus::connect(&db.config()).await.unwrap();
    let mut on_a = a.subscribe().await.unwrap();
    let mut on_b = b.subscribe().await.unwrap();
    let origin = NodeId::new_v4();
    let published: Vec<Envelope> = (0..1000).map(|i| envelope(origin, "project", format!("{i:04}"))).collect();
    for e in &published {
        a.publish(e.clone()).await.unwrap();
    }
    expect_exactly(&mut on_a, &published).await;
    expect_exactly(&mut on_b, &published).await;
}

#[tokio::test]
async fn postgres_channels_keep_deployments_apart() {
    let db = test_db().await;
    let config = PostgresBusConfig::from_url(db.url()).unwrap();
    let blue = PostgresBus::connect_with(config.clone().with_channel("blue")).await.unwrap();
    let green = PostgresBus::connect_with(config.with_channel("green")).await.unwrap();
    let mut on_blue = blue.subscribe().await.unwrap();
    let mut on_green = green.subscribe().await.unwrap();
    let to_green = envelope(NodeId::new_v4(), "p", "green");
    green.publish(to_green.clone()).await.unwrap();
    expect_exactly(&mut on_green, &[to_green]).await;
    expect_quiet(&mut on_blue).await;
}

#[tokio::test]
async fn postgres_listener_reconnects_after_its_connection_is_killed() {
    let db = test_db().await;
    let a = PostgresBus::connect(&db.config()).await.unwrap();
    let b = PostgresBus::connect(&db.config()).await.unwrap();
    let mut streams = vec![a.subscribe().await.unwrap(), b.subscribe().await.unwrap()];
    let listeners = "select pid from pg_stat_activity where application_name = $1 and datname = current_database()";
    let before: Vec<i32> =
        sqlx::query_scalar(listeners).bind(LISTENER_APPLICATION_NAME).fetch_all(db.pool()).await.unwrap();
    assert_eq!(before.len(), 2, "one listening connection per node");

    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where application_name = $1 and datname = current_database()",
    )
    .bind(LISTENER_APPLICATION_NAME)
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(killed, [true, true]);

    wait_until_live(&a, &mut streams).await;
    let after: Vec<i32> =
        sqlx::query_scalar(listeners).bind(LISTENER_APPLICATION_NAME).fetch_all(db.pool()).await.unwrap();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|pid| !before.contains(pid)), "new connections: {before:?} then {after:?}");

    let origin = NodeId::new_v4();
    let published: Vec<Envelope> = (0..10).map(|i| envelope(origin, "project", format!("after {i}"))).collect();
    for e in &published {
        b.publish(e.clone()).await.unwrap();
    }
    for stream in &mut streams {
        expect_after_probes(stream, &published).await;
    }
}

#[tokio::test]
async fn postgres_subscriptions_end_with_the_bus() {
    let db = test_db().await;
    let bus = PostgresBus::connect(&db.config()).await.unwrap();
    let mut stream = bus.subscribe().await.unwrap();
    drop(bus);
    assert!(tokio::time::timeout(ARRIVAL, stream.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn postgres_rejects_a_bad_channel() {
    let db = test_db().await;
    let config = PostgresBusConfig::from_url(db.url()).unwrap().with_channel("c".repeat(64));
    let error = PostgresBus::connect_with(config).await.unwrap_err();
    assert!(error.to_string().contains("channel"), "{error}");
}

// --- NatsBus ---

#[tokio::test]
async fn nats_nodes_get_each_others_and_their_own_envelopes_once_in_order() {
    let server = NatsServer::start().await;
    let a = NatsBus::connect(&server.url(), NatsBus::DEFAULT_SUBJECT).await.unwrap();
    let b = NatsBus::connect(&server.url(), NatsBus::DEFAULT_SUBJECT).await.unwrap();
    assert_eq!(a.subject(), "forge.realtime");
    exchange(&a, &b, false).await;
}

#[tokio::test]
async fn nats_large_payloads_arrive_up_to_max_payload() {
    let server = NatsServer::start().await;
    let a = NatsBus::connect(&server.url(), "test.large").await.unwrap();
    let b = NatsBus::connect(&server.url(), "test.large").await.unwrap();
    let mut on_b = b.subscribe().await.unwrap();
    let origin = NodeId::new_v4();
    // nats-server's default max_payload is 1 MiB; a frame adds 19 bytes and the project.
    let largest = 1024 * 1024 - 19 - "project".len();
    let published = vec![
        envelope(origin, "project", pattern(100 * 1024, 1)),
        envelope(origin, "project", "small"),
        envelope(origin, "project", pattern(largest, 2)),
    ];
    for e in &published {
        a.publish(e.clone()).await.unwrap();
    }
    expect_exactly(&mut on_b, &published).await;
    let error = a.publish(envelope(origin, "project", pattern(largest + 1, 3))).await.unwrap_err();
    assert!(error.to_string().contains("payload"), "{error}");
}

#[tokio::test]
async fn nats_subjects_keep_deployments_apart() {
    let server = NatsServer::start().await;
    let blue = NatsBus::connect(&server.url(), "blue.realtime").await.unwrap();
    let green = NatsBus::connect(&server.url(), "green.realtime").await.unwrap();
    let mut on_blue = blue.subscribe().await.unwrap();
    let mut on_green = green.subscribe().await.unwrap();
    let to_green = envelope(NodeId::new_v4(), "p", "green");
    green.publish(to_green.clone()).await.unwrap();
    expect_exactly(&mut on_green, &[to_green]).await;
    expect_quiet(&mut on_blue).await;
    assert!(NatsBus::connect(&server.url(), "forge.*").await.is_err());
}

#[tokio::test]
async fn nats_bus_reconnects_after_the_server_restarts() {
    let mut server = NatsServer::start().await;
    let a = NatsBus::connect(&server.url(), NatsBus::DEFAULT_SUBJECT).await.unwrap();
    let b = NatsBus::connect(&server.url(), NatsBus::DEFAULT_SUBJECT).await.unwrap();
    let mut streams = vec![a.subscribe().await.unwrap(), b.subscribe().await.unwrap()];

    server.restart().await;

    wait_until_live(&a, &mut streams).await;
    let origin = NodeId::new_v4();
    let published: Vec<Envelope> = (0..10).map(|i| envelope(origin, "project", format!("after {i}"))).collect();
    for e in &published {
        b.publish(e.clone()).await.unwrap();
    }
    for stream in &mut streams {
        expect_after_probes(stream, &published).await;
    }
}
