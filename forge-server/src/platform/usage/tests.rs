use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use forge_core::project::ProjectMap;
use forge_core::testing::{TestDb, test_db};
use forge_core::{ProjectLayer, ProjectRef, RefResolver};
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use secrecy::SecretString;
use sqlx::PgPool;
use time::OffsetDateTime;
use tower::{Layer as _, ServiceExt as _};

use super::*;

const MIB: usize = 1 << 20;

async fn usage_db() -> TestDb {
    let db = test_db().await;
    sqlx::raw_sql(MIGRATION_SQL).execute(db.pool()).await.expect("usage.sql applies");
    db
}

fn reference(name: &str) -> ProjectRef {
    ProjectRef::new(name).expect("a valid ref")
}

fn chunks(count: usize, size: usize) -> Body {
    let chunks = (0..count).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'x'; size])));
    Body::from_stream(futures_util::stream::iter(chunks.collect::<Vec<_>>()))
}

/// The services, as seen behind the project layer.
fn services() -> Router {
    Router::new()
        .route("/rest/v1/items", get(|| async { "[1,2,3]" }))
        .route("/auth/v1/token", post(|| async { (StatusCode::BAD_REQUEST, "bad") }))
        .route("/storage/v1/object/{*path}", get(|| async { chunks(3, 1000) }))
        .route("/storage/v1/big", get(|| async { chunks(3, MIB) }))
        .route("/storage/v1/five", get(|| async { chunks(5, 100) }))
        .route("/functions/v1/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
}

/// A node: `/p/{ref}` resolution over projects `abc` and `xyz`, then the meter.
type App = forge_core::project::ProjectService<UsageService<Router>>;

fn app(db: &TestDb, meter: &Meter) -> App {
    let projects = ProjectMap::new();
    projects.insert(db.project("abc"));
    projects.insert(db.project("xyz"));
    ProjectLayer::new(RefResolver::new(projects).by_path_prefix()).layer(meter.layer().layer(services()))
}

/// Sends a request and reads its whole body; returns the status and the body's length.
async fn send(app: &App, method: &str, uri: &str) -> (StatusCode, usize) {
    let req = Request::builder().method(method).uri(uri).body(Body::empty()).expect("a request");
    let response = app.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let body = response.into_body().collect().await.expect("the body").to_bytes();
    (status, body.len())
}

/// The known mix for `abc` (and a little for `xyz` and an unknown project), `times` over.
async fn send_mix(app: &App, times: usize) {
    for _ in 0..times {
        for _ in 0..5 {
            assert_eq!(send(app, "GET", "/p/abc/rest/v1/items").await, (StatusCode::OK, 7));
        }
        for _ in 0..2 {
            assert_eq!(send(app, "GET", "/p/abc/rest/v1/nothing").await.0, StatusCode::NOT_FOUND);
        }
        for _ in 0..3 {
            assert_eq!(send(app, "POST", "/p/abc/auth/v1/token").await, (StatusCode::BAD_REQUEST, 3));
        }
        assert_eq!(send(app, "GET", "/p/abc/storage/v1/object/a/b.txt").await, (StatusCode::OK, 3000));
        assert_eq!(send(app, "GET", "/p/abc/functions/v1/fail").await.0, StatusCode::INTERNAL_SERVER_ERROR);
        for _ in 0..2 {
            assert_eq!(send(app, "GET", "/p/abc/elsewhere").await.0, StatusCode::NOT_FOUND);
        }
        for _ in 0..4 {
            assert_eq!(send(app, "GET", "/p/xyz/rest/v1/items").await, (StatusCode::OK, 7));
        }
        // No such project: answered by the project layer, metered for no one.
        assert_eq!(send(app, "GET", "/p/nobody/rest/v1/items").await.0, StatusCode::NOT_FOUND);
    }
}

fn row(metric: &str, dimension: &str, kind: &str, value: i64) -> UsageRow {
    UsageRow { metric: metric.into(), dimension: dimension.into(), kind: kind.into(), value }
}

/// What [`send_mix`] meters for `abc`, `times` over.
fn expected_abc(times: i64) -> Vec<UsageRow> {
    vec![
        row(EGRESS_BYTES, "auth", "counter", 9 * times),
        row(EGRESS_BYTES, "rest", "counter", 35 * times),
        row(EGRESS_BYTES, "storage", "counter", 3000 * times),
        row(REQUESTS, "auth:4xx", "counter", 3 * times),
        row(REQUESTS, "functions:5xx", "counter", times),
        row(REQUESTS, "other:4xx", "counter", 2 * times),
        row(REQUESTS, "rest:2xx", "counter", 5 * times),
        row(REQUESTS, "rest:4xx", "counter", 2 * times),
        row(REQUESTS, "storage:2xx", "counter", times),
    ]
}

fn expected_xyz(times: i64) -> Vec<UsageRow> {
    vec![row(EGRESS_BYTES, "rest", "counter", 28 * times), row(REQUESTS, "rest:2xx", "counter", 4 * times)]
}

/// Everything recorded for `name` in the last and next few hours.
async fn read(pool: &PgPool, name: &str) -> Vec<UsageRow> {
    let now = OffsetDateTime::now_utc();
    usage(pool, &reference(name), now - time::Duration::hours(3), now + time::Duration::hours(3)).await.expect("usage")
}

#[test]
fn service_and_status_class_come_from_the_path_and_status() {
    assert_eq!(ServiceKind::for_path("/rest/v1/todos"), ServiceKind::Rest);
    assert_eq!(ServiceKind::for_path("/auth/v1/token"), ServiceKind::Auth);
    assert_eq!(ServiceKind::for_path("/storage/v1/object/x"), ServiceKind::Storage);
    assert_eq!(ServiceKind::for_path("/realtime/v1/websocket"), ServiceKind::Realtime);
    assert_eq!(ServiceKind::for_path("/functions/v1/hello"), ServiceKind::Functions);
    assert_eq!(ServiceKind::for_path("/restful"), ServiceKind::Other);
    assert_eq!(ServiceKind::for_path("/"), ServiceKind::Other);
    assert_eq!(ServiceKind::for_path(""), ServiceKind::Other);
    assert_eq!(StatusClass::of(StatusCode::SWITCHING_PROTOCOLS).as_str(), "1xx");
    assert_eq!(StatusClass::of(StatusCode::NO_CONTENT).as_str(), "2xx");
    assert_eq!(StatusClass::of(StatusCode::NOT_MODIFIED).as_str(), "3xx");
    assert_eq!(StatusClass::of(StatusCode::TOO_MANY_REQUESTS).as_str(), "4xx");
    assert_eq!(StatusClass::of(StatusCode::BAD_GATEWAY).as_str(), "5xx");
}

#[tokio::test]
async fn a_known_request_mix_is_metered_exactly() {
    let db = usage_db().await;
    let meter = Meter::new();
    let app = app(&db, &meter);
    send_mix(&app, 1).await;

    // Nothing is written until a flush; one flush writes one row per key.
    let rows: i64 = sqlx::query_scalar("select count(*) from forge.usage_hourly").fetch_one(db.pool()).await.unwrap();
    assert_eq!(rows, 0);
    assert_eq!(meter.flush(db.pool()).await.unwrap(), 11);
    assert_eq!(meter.flush(db.pool()).await.unwrap(), 0, "a flush takes the counts");

    assert_eq!(read(db.pool(), "abc").await, expected_abc(1));
    assert_eq!(read(db.pool(), "xyz").await, expected_xyz(1));
    assert!(read(db.pool(), "nobody").await.is_empty());
    // Each row is in the current UTC hour.
    let off_hour: i64 =
        sqlx::query_scalar("select count(*) from forge.usage_hourly where hour <> date_trunc('hour', now(), 'UTC')")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(off_hour, 0);
}

#[tokio::test]
async fn two_nodes_and_a_restart_add_up() {
    let db = usage_db().await;
    // Node A flushes in the background; node B by hand.
    let node_a = Meter::new();
    let flushing_a = node_a.start_flushing(db.pool().clone(), Duration::from_millis(50));
    let node_b = Meter::new();
    let (app_a, app_b) = (app(&db, &node_a), app(&db, &node_b));
    send_mix(&app_a, 3).await;
    send_mix(&app_b, 2).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    node_b.flush(db.pool()).await.unwrap();
    send_mix(&app_a, 1).await;
    // Node A restarts: a graceful stop flushes what it counted since its last tick.
    flushing_a.stop().await;
    drop(app_a);
    let node_a = Meter::new();
    let flushing_a = node_a.start_flushing(db.pool().clone(), Duration::from_secs(3600));
    send_mix(&app(&db, &node_a), 2).await;
    flushing_a.stop().await;

    assert_eq!(read(db.pool(), "abc").await, expected_abc(8));
    assert_eq!(read(db.pool(), "xyz").await, expected_xyz(8));
}

#[tokio::test]
async fn a_failed_flush_loses_nothing() {
    let db = usage_db().await;
    let meter = Meter::new();
    let app = app(&db, &meter);
    send_mix(&app, 1).await;
    meter.record_gauge(&reference("abc"), STORAGE_BYTES, 10);

    let closed = PgPool::connect_lazy(db.url()).unwrap();
    closed.close().await;
    assert!(meter.flush(&closed).await.is_err());
    // A database without the table fails too.
    let bare = test_db().await;
    assert!(meter.flush(bare.pool()).await.is_err());

    send_mix(&app, 1).await;
    meter.record_gauge(&reference("abc"), STORAGE_BYTES, 7);
    meter.flush(db.pool()).await.unwrap();
    let mut expected = expected_abc(2);
    expected.push(row(STORAGE_BYTES, "", "gauge", 10));
    assert_eq!(read(db.pool(), "abc").await, expected);
    assert_eq!(read(db.pool(), "xyz").await, expected_xyz(2));
}

/// A flush given up while its statement runs may or may not have committed; sent again with
/// its id, it is added exactly once either way.
#[tokio::test]
async fn a_cancelled_flush_is_added_exactly_once() {
    let db = usage_db().await;
    let meter = Meter::new();
    let abc = reference("abc");
    meter.count(&abc, REALTIME_MESSAGES, "broadcast", 42);
    // Another writer holds the row, uncommitted: the flush's upsert waits on it.
    let mut other = db.pool().begin().await.unwrap();
    sqlx::query(
        "insert into forge.usage_hourly (ref, hour, metric, dimension, value) \
         values ('abc', date_trunc('hour', now(), 'UTC'), 'realtime_messages', 'broadcast', 100)",
    )
    .execute(&mut *other)
    .await
    .unwrap();
    let flushed = tokio::time::timeout(Duration::from_millis(300), meter.flush(db.pool())).await;
    assert!(flushed.is_err(), "the flush waited on the row");
    // Counted meanwhile: waits in the meter for the next flush.
    meter.count(&abc, REALTIME_MESSAGES, "broadcast", 1);
    other.commit().await.unwrap();
    // Give the abandoned statement time to finish, if the server still runs it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Here the server finished it (142) after the client gave up; had it not, 100.
    let between: i64 = sqlx::query_scalar("select value from forge.usage_hourly").fetch_one(db.pool()).await.unwrap();
    assert!(between == 142 || between == 100, "{between}");
    meter.flush(db.pool()).await.unwrap();
    meter.flush(db.pool()).await.unwrap();
    assert_eq!(read(db.pool(), "abc").await, vec![row(REALTIME_MESSAGES, "broadcast", "counter", 143)]);
    let batches: i64 =
        sqlx::query_scalar("select count(*) from forge.usage_flushes").fetch_one(db.pool()).await.unwrap();
    assert_eq!(batches, 2);
    // Old ids are swept; recent ones stay.
    sqlx::query("update forge.usage_flushes set at = now() - interval '8 days' where id = (select id from forge.usage_flushes order by id limit 1)")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(Meter::sweep_flush_ids(db.pool()).await.unwrap(), 1);
}

#[tokio::test]
async fn egress_counts_the_streamed_bytes_actually_sent() {
    let db = usage_db().await;
    let meter = Meter::new();
    let app = app(&db, &meter);
    let request = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();

    // A client that reads two of five frames and goes away: two frames were sent.
    let response = app.clone().oneshot(request("/p/abc/storage/v1/five")).await.unwrap();
    let mut body = response.into_body();
    for _ in 0..2 {
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap().len(), 100);
    }
    drop(body);
    meter.flush(db.pool()).await.unwrap();
    let egress = |rows: Vec<UsageRow>| rows.into_iter().find(|r| r.metric == EGRESS_BYTES).map(|r| r.value);
    assert_eq!(egress(read(db.pool(), "abc").await), Some(200));

    // A long download is counted as it goes, not only at its end.
    let response = app.clone().oneshot(request("/p/abc/storage/v1/big")).await.unwrap();
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    body.frame().await.unwrap().unwrap();
    meter.flush(db.pool()).await.unwrap();
    assert_eq!(egress(read(db.pool(), "abc").await), Some(200 + 2 * MIB as i64));
    while body.frame().await.is_some() {}
    drop(body);
    meter.flush(db.pool()).await.unwrap();
    assert_eq!(egress(read(db.pool(), "abc").await), Some(200 + 3 * MIB as i64));
}

#[tokio::test]
async fn counts_land_in_the_hour_they_were_made() {
    let db = usage_db().await;
    let meter = Meter::new();
    let abc = reference("abc");
    let this_hour = current_hour();
    let last_hour = this_hour - 3600;
    meter.count_at(last_hour, &abc, REALTIME_MESSAGES, "presence", 3);
    meter.count_at(this_hour, &abc, REALTIME_MESSAGES, "presence", 4);
    meter.count(&abc, REALTIME_MESSAGES, "presence", 1);
    assert_eq!(meter.flush(db.pool()).await.unwrap(), 2);

    let hours: Vec<(i64, i64)> =
        sqlx::query_as("select extract(epoch from hour)::int8, value from forge.usage_hourly order by hour")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(hours, vec![(last_hour, 3), (this_hour, 5)]);
    let at = |secs: i64| OffsetDateTime::from_unix_timestamp(secs).unwrap();
    // A period inside the last hour reads that hour's bucket only.
    let last = usage(db.pool(), &abc, at(last_hour + 60), at(last_hour + 120)).await.unwrap();
    assert_eq!(last, vec![row(REALTIME_MESSAGES, "presence", "counter", 3)]);
    let both = usage(db.pool(), &abc, at(last_hour), at(this_hour + 3600)).await.unwrap();
    assert_eq!(both, vec![row(REALTIME_MESSAGES, "presence", "counter", 8)]);
}

#[tokio::test]
async fn gauges_keep_the_max() {
    let db = usage_db().await;
    let abc = reference("abc");
    let (node_a, node_b) = (Meter::new(), Meter::new());
    for value in [5, 9, 3] {
        node_a.record_gauge(&abc, REALTIME_PEAK_CONNECTIONS, value);
    }
    node_a.flush(db.pool()).await.unwrap();
    assert_eq!(read(db.pool(), "abc").await, vec![row(REALTIME_PEAK_CONNECTIONS, "", "gauge", 9)]);
    // Another node's smaller sample does not lower it; a larger one raises it.
    node_b.record_gauge(&abc, REALTIME_PEAK_CONNECTIONS, 7);
    node_b.flush(db.pool()).await.unwrap();
    assert_eq!(read(db.pool(), "abc").await, vec![row(REALTIME_PEAK_CONNECTIONS, "", "gauge", 9)]);
    node_a.record_gauge(&abc, REALTIME_PEAK_CONNECTIONS, 12);
    node_a.flush(db.pool()).await.unwrap();
    assert_eq!(read(db.pool(), "abc").await, vec![row(REALTIME_PEAK_CONNECTIONS, "", "gauge", 12)]);
    // Over several hours a period's value is the largest hour, not a sum.
    node_a.record_gauge_at(current_hour() - 3600, &abc, REALTIME_PEAK_CONNECTIONS, 4);
    node_a.flush(db.pool()).await.unwrap();
    assert_eq!(read(db.pool(), "abc").await, vec![row(REALTIME_PEAK_CONNECTIONS, "", "gauge", 12)]);
}

#[tokio::test]
async fn sample_database_reads_size_storage_and_monthly_active_users() {
    let db = usage_db().await;
    forge_core::migrate::run(db.pool(), &[forge_auth::MIGRATIONS, forge_storage::MIGRATIONS]).await.unwrap();
    sqlx::raw_sql(
        "insert into storage.buckets (id, name) values ('b', 'b');
         insert into storage.objects (bucket_id, name, metadata) values
           ('b', 'x', '{\"size\": 100}'), ('b', 'y', '{\"size\": 23}'), ('b', 'z', null);
         insert into auth.users (id, last_sign_in_at) values
           (gen_random_uuid(), now()), (gen_random_uuid(), now() - interval '40 days'), (gen_random_uuid(), null);",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let meter = Meter::new();
    let abc = reference("abc");
    sample_database(&meter, &abc, db.pool()).await.unwrap();
    meter.flush(db.pool()).await.unwrap();
    let rows = read(db.pool(), "abc").await;
    let value = |metric: &str| rows.iter().find(|r| r.metric == metric).map(|r| (r.kind.as_str(), r.value));
    assert_eq!(value(STORAGE_BYTES), Some(("gauge", 123)));
    assert_eq!(value(STORAGE_OBJECTS), Some(("gauge", 3)));
    assert_eq!(value(MONTHLY_ACTIVE_USERS), Some(("gauge", 1)));
    let size: i64 =
        sqlx::query_scalar("select pg_database_size(current_database())").fetch_one(db.pool()).await.unwrap();
    let (kind, sampled) = value(DATABASE_SIZE_BYTES).unwrap();
    assert_eq!(kind, "gauge");
    assert!(sampled > 1_000_000 && sampled <= size, "{sampled} vs {size}");

    // A database without storage or auth has a size and nothing else.
    let bare = test_db().await;
    let meter = Meter::new();
    sample_database(&meter, &abc, bare.pool()).await.unwrap();
    meter.flush(db.pool()).await.unwrap();
    assert_eq!(read(db.pool(), "abc").await.len(), 4);
}

async fn get_metrics(router: &Router, authorization: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().uri("/metrics");
    if let Some(value) = authorization {
        req = req.header(http::header::AUTHORIZATION, value);
    }
    let response = router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn metrics_show_counters_histograms_and_pools() {
    let db = usage_db().await;
    let meter = Meter::new();
    send_mix(&app(&db, &meter), 2).await;
    meter.set_pool_source(Arc::new(|| {
        vec![PoolUse { reference: ProjectRef::new("abc").unwrap(), size: 3, idle: 1, max: 5 }]
    }));
    let (status, text) = get_metrics(&metrics_router(meter.clone(), None), None).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "# TYPE forge_http_requests_total counter",
        r#"forge_http_requests_total{project="abc",service="rest",status_class="2xx"} 10"#,
        r#"forge_http_requests_total{project="abc",service="functions",status_class="5xx"} 2"#,
        r#"forge_http_requests_total{project="xyz",service="rest",status_class="2xx"} 8"#,
        r#"forge_http_egress_bytes_total{project="abc",service="storage"} 6000"#,
        "# TYPE forge_http_request_duration_seconds histogram",
        // abc's 14 rest requests and xyz's 8; the unknown project's never reached the meter.
        r#"forge_http_request_duration_seconds_bucket{service="rest",le="+Inf"} 22"#,
        r#"forge_http_request_duration_seconds_count{service="auth"} 6"#,
        r#"forge_db_pool_connections{project="abc",state="in_use"} 2"#,
        r#"forge_db_pool_connections{project="abc",state="idle"} 1"#,
        r#"forge_db_pool_max_connections{project="abc"} 5"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    // Prometheus counters only grow: a flush does not reset them.
    meter.flush(db.pool()).await.unwrap();
    let (_, after) = get_metrics(&metrics_router(meter.clone(), None), None).await;
    assert!(after.contains(r#"forge_http_requests_total{project="abc",service="rest",status_class="2xx"} 10"#));
    // A forgotten project's series go.
    meter.forget(&reference("abc"));
    let (_, after) = get_metrics(&metrics_router(meter, None), None).await;
    assert!(!after.contains(r#"forge_http_requests_total{project="abc""#));
    assert!(after.contains(r#"forge_http_requests_total{project="xyz""#));
}

#[tokio::test]
async fn metrics_require_the_token_when_set() {
    let meter = Meter::new();
    meter.count_request(&reference("abc"), ServiceKind::Rest, StatusClass::Success);
    let router: Router = metrics_router(meter.clone(), Some(SecretString::from("s3cret-token")));
    for wrong in
        [None, Some("Bearer nope"), Some("Basic s3cret-token"), Some("Bearer s3cret-toke"), Some("s3cret-token")]
    {
        let (status, text) = get_metrics(&router, wrong).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(!text.contains("forge_http"));
    }
    for right in ["Bearer s3cret-token", "bearer s3cret-token"] {
        let (status, text) = get_metrics(&router, Some(right)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains(r#"forge_http_requests_total{project="abc",service="rest",status_class="2xx"} 1"#));
    }
    let open: Router = metrics_router(meter, None);
    assert_eq!(get_metrics(&open, None).await.0, StatusCode::OK);
}
