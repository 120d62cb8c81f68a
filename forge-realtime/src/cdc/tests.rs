//! Change capture against a real Postgres (`wal_level=logical`, a fresh database per test).

use std::collections::BTreeMap;

use forge_core::testing::{TestDb, test_db};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::filter::parse as parse_filter;
use super::pgoutput::Lsn;
use super::slot::{Capture, CaptureError, NO_PRIMARY_KEY, drop_slot, lag_bytes, slot_name};
use super::{Change, ChangeKind};

async fn setup(sql: &'static str) -> (TestDb, Capture) {
    let db = test_db().await;
    sqlx::raw_sql(sql).execute(db.pool()).await.expect("setup SQL");
    let slot = slot_name(db.pool()).await.unwrap();
    let capture = Capture::open(db.pool(), &slot).await.unwrap();
    (db, capture)
}

async fn exec(pool: &PgPool, sql: &'static str) {
    sqlx::raw_sql(sql).execute(pool).await.expect("test SQL");
}

/// Waits until the WAL written so far is flushed: the test cluster runs with
/// `synchronous_commit = off`, so a commit reaches decoding when the WAL writer flushes it.
async fn settle(pool: &PgPool) {
    let target: String = sqlx::query_scalar("select pg_current_wal_insert_lsn()::text").fetch_one(pool).await.unwrap();
    for _ in 0..500 {
        let flushed: bool = sqlx::query_scalar("select pg_current_wal_flush_lsn() >= $1::text::pg_lsn")
            .bind(&target)
            .fetch_one(pool)
            .await
            .unwrap();
        if flushed {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("WAL not flushed");
}

/// Reads everything there is and confirms it.
async fn drain(capture: &mut Capture) -> Vec<Change> {
    settle(&capture_pool(capture)).await;
    let batch = capture.next_batch(10_000).await.unwrap();
    capture.confirm(batch.confirm).await.unwrap();
    batch.changes
}

fn capture_pool(capture: &Capture) -> PgPool {
    capture.pool().clone()
}

async fn finish(db: &TestDb, capture: Capture) {
    assert!(drop_slot(db.pool(), capture.slot()).await.unwrap());
}

fn rec(change: &Change) -> Value {
    Value::Object(change.record.clone().expect("a record"))
}

fn old(change: &Change) -> Value {
    Value::Object(change.old_record.clone().expect("an old record"))
}

#[tokio::test]
async fn values_match_to_jsonb() {
    let (db, mut capture) = setup(
        r#"
        create type mood as enum ('happy', 'sad');
        create domain posint as int4 check (value > 0);
        create type pair as (a int4, b text, c int4[]);
        create table public.everything (
            id int4 primary key,
            i2 int2, i8 int8, f4 float4, f8 float8, num numeric, o oid,
            b bool, t text, vc varchar(20), ch char(3), u uuid,
            j json, jb jsonb,
            ts timestamp, tstz timestamptz, d date, tm time, iv interval,
            ia int4[], ta text[], ba bool[], na numeric[], ma int4[][], ja jsonb[], tsa timestamptz[],
            m mood, p posint, pa posint[], c pair, ca pair[],
            by bytea, ip inet, bx box[]
        );
        alter publication supabase_realtime add table public.everything;
        "#,
    )
    .await;
    exec(
        db.pool(),
        r#"
        begin;
        -- The writer's time zone must not matter.
        set local timezone = 'Asia/Kolkata';
        insert into everything values (
            1, -32768, 9223372036854775807, 1.1, 0.30000000000000004, 12.50, 4294967295,
            true, 'héllo "wörld" \ 日本', 'abc', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
            '{"b": 1, "a": [1, 2.50, "x"], "a": "dup"}', '{"z": null, "é": {"k": 1e3}}',
            '2024-01-01 10:00:00.123456', '2024-01-01 10:00:00+05:30', '2024-02-29', '23:59:59.5', '1 year 2 mons 3 days 04:05:06',
            '{1,2,NULL}', array['a b', 'c,d', 'q"uote', 'back\slash', 'NULL', '', ' sp ', '日本'], '{t,f,NULL}',
            '{1.5,NaN,-0.001}', '{{1,2},{3,4}}', array['{"a":1}'::jsonb, 'null'::jsonb], array['2024-01-01 00:00:00+00'::timestamptz],
            'sad', 7, '{1,2}', row(1, 'x, "y"', '{5,6}'), array[row(2, null, null)::pair, row(3, '', '{}')::pair],
            '\xdeadbeef', '192.168.0.1/24', array['(1,2),(3,4)'::box, '(0,0),(1,1)'::box]
        );
        insert into everything (id, f4, f8, num, tstz, ts, d) values
            (2, 'NaN', '-Infinity', 'NaN', 'infinity', '-infinity', '0044-03-15 BC'),
            (3, 3.4028235e38, 1e-300, 123456789012345678901234567890.123456789, '1999-12-31 23:59:59.999999-08', '2000-01-01', '2000-01-01'),
            (4, null, 5e-324, -0.0, '2024-06-01 00:00:00+05:45:30', '0001-01-01 00:00:00 BC', 'infinity');
        commit;
        "#,
    )
    .await;
    let changes = drain(&mut capture).await;
    assert_eq!(changes.len(), 4);
    // As Supabase's session renders them: in UTC.
    let mut tx = db.pool().begin().await.unwrap();
    sqlx::query("set local timezone = 'UTC'").execute(&mut *tx).await.unwrap();
    let expected: Vec<(i32, Value)> =
        sqlx::query_as("select id, to_jsonb(e) from everything e order by id").fetch_all(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    let typnames: Vec<(String, String)> = sqlx::query_as(
        "select a.attname::text, t.typname::text from pg_attribute a join pg_type t on t.oid = a.atttypid \
         where a.attrelid = 'public.everything'::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    for (change, (id, want)) in changes.iter().zip(expected) {
        assert_eq!(change.kind, ChangeKind::Insert);
        assert_eq!(rec(change)["id"], json!(id));
        let got = change.record.as_ref().unwrap();
        let want = want.as_object().unwrap();
        assert_eq!(got.len(), want.len(), "row {id}: same columns");
        for (name, want_value) in want {
            let got_value = &got[name];
            if id == 3 && name == "num" {
                // More digits than f64 holds: kept exact as a string (no arbitrary precision).
                assert_eq!(got_value, &json!("123456789012345678901234567890.123456789"));
                continue;
            }
            assert_eq!(got_value, want_value, "row {id}, column {name}");
        }
        let columns: Vec<(String, String)> =
            change.columns.iter().map(|c| (c.name.clone(), c.type_name.clone())).collect();
        assert_eq!(columns, typnames);
    }
    // A few conversions spelled out.
    let first = rec(&changes[0]);
    assert_eq!(first["tstz"], json!("2024-01-01T04:30:00+00:00"));
    assert_eq!(first["ts"], json!("2024-01-01T10:00:00.123456"));
    assert_eq!(first["i8"], json!(9_223_372_036_854_775_807_i64));
    assert_eq!(first["o"], json!("4294967295"));
    assert_eq!(first["p"], json!(7));
    assert_eq!(first["c"], json!({"a": 1, "b": "x, \"y\"", "c": [5, 6]}));
    assert_eq!(first["ta"][7], json!("日本"));
    assert_eq!(first["ma"], json!([[1, 2], [3, 4]]));
    assert_eq!(rec(&changes[1])["f4"], json!("NaN"));
    finish(&db, capture).await;
}

#[tokio::test]
async fn events_with_default_replica_identity() {
    let (db, mut capture) = setup(
        "create table public.todos (id int8 primary key, title text, done bool default false);
         alter publication supabase_realtime add table public.todos;",
    )
    .await;
    let before: time::OffsetDateTime = sqlx::query_scalar("select now()").fetch_one(db.pool()).await.unwrap();
    exec(
        db.pool(),
        "insert into todos (id, title) values (1, 'Ünïcødé ✓');
         update todos set done = true where id = 1;
         update todos set id = 2 where id = 1;
         delete from todos where id = 2;",
    )
    .await;
    let changes = drain(&mut capture).await;
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::Insert, ChangeKind::Update, ChangeKind::Update, ChangeKind::Delete]);
    for c in &changes {
        assert_eq!((&*c.schema, &*c.table), ("public", "todos"));
        assert_eq!(*c.primary_key, vec!["id".to_owned()]);
        assert_eq!(c.errors, None);
        let cols: Vec<(&str, &str)> = c.columns.iter().map(|c| (c.name.as_str(), c.type_name.as_str())).collect();
        assert_eq!(cols, [("id", "int8"), ("title", "text"), ("done", "bool")]);
        // e.g. 2024-05-01T12:34:56.789Z, close to when we wrote.
        let ts = time::PrimitiveDateTime::parse(
            c.commit_timestamp.strip_suffix('Z').unwrap(),
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]"),
        )
        .unwrap()
        .assume_utc();
        assert!(ts >= before - time::Duration::milliseconds(1) && ts < before + time::Duration::seconds(60), "{ts}");
    }
    assert_eq!(rec(&changes[0]), json!({"id": 1, "title": "Ünïcødé ✓", "done": false}));
    assert_eq!(changes[0].old_record, None);
    // Key unchanged: the identity comes from the new row, as wal2json does.
    assert_eq!(rec(&changes[1]), json!({"id": 1, "title": "Ünïcødé ✓", "done": true}));
    assert_eq!(old(&changes[1]), json!({"id": 1}));
    // Key changed: the old key.
    assert_eq!(rec(&changes[2])["id"], json!(2));
    assert_eq!(old(&changes[2]), json!({"id": 1}));
    assert_eq!(changes[3].record, None);
    assert_eq!(old(&changes[3]), json!({"id": 2}));
    // A table altered between two changes of one batch: each change has its own shape.
    exec(db.pool(), "insert into todos (id) values (5); alter table todos add column note jsonb; insert into todos (id, note) values (6, '[1]');").await;
    let changes = drain(&mut capture).await;
    assert_eq!(changes[0].columns.len(), 3);
    assert_eq!(rec(&changes[0]), json!({"id": 5, "title": null, "done": false}));
    assert_eq!(changes[1].columns.last().map(|c| c.type_name.as_str()), Some("jsonb"));
    assert_eq!(rec(&changes[1])["note"], json!([1]));
    exec(db.pool(), "delete from todos;").await;
    assert_eq!(drain(&mut capture).await.len(), 2);
    // Truncate sends nothing.
    exec(db.pool(), "insert into todos (id) values (9); truncate todos;").await;
    assert_eq!(drain(&mut capture).await.len(), 1);
    finish(&db, capture).await;
}

#[tokio::test]
async fn replica_identity_full_and_unchanged_toast() {
    let (db, mut capture) = setup(
        "create table public.docs (id int4 primary key, body text, n int4);
         alter table docs alter column body set storage external;
         create table public.fulldocs (id int4 primary key, body text, n int4);
         alter table fulldocs alter column body set storage external;
         alter table fulldocs replica identity full;
         alter publication supabase_realtime add table public.docs, public.fulldocs;",
    )
    .await;
    exec(
        db.pool(),
        "insert into docs select 1, repeat('Ω0123456789', 400), 1;
         insert into fulldocs select 1, repeat('Ω0123456789', 400), 1;
         update docs set n = 2;
         update fulldocs set n = 2;
         delete from fulldocs;",
    )
    .await;
    let changes = drain(&mut capture).await;
    assert_eq!(changes.len(), 5);
    let body: String = "Ω0123456789".repeat(400);
    assert_eq!(rec(&changes[0])["body"], json!(body));
    // Default identity: the unchanged TOASTed column is left out of `record`.
    assert_eq!(rec(&changes[2]), json!({"id": 1, "n": 2}));
    assert_eq!(old(&changes[2]), json!({"id": 1}));
    // FULL: the old row has it, so `record` is complete, and `old_record` is the whole old row.
    assert_eq!(rec(&changes[3]), json!({"id": 1, "body": body, "n": 2}));
    assert_eq!(old(&changes[3]), json!({"id": 1, "body": body, "n": 1}));
    assert_eq!(changes[4].kind, ChangeKind::Delete);
    assert_eq!(old(&changes[4]), json!({"id": 1, "body": body, "n": 2}));
    finish(&db, capture).await;
}

#[tokio::test]
async fn table_without_primary_key() {
    let (db, mut capture) = setup(
        "create table public.logs (msg text, at int4);
         alter table logs replica identity full;
         alter publication supabase_realtime add table public.logs;",
    )
    .await;
    exec(db.pool(), "insert into logs values ('a', 1); update logs set at = 2; delete from logs;").await;
    let changes = drain(&mut capture).await;
    assert_eq!(changes.len(), 3);
    assert!(changes[0].primary_key.is_empty());
    assert_eq!(changes[0].errors, Some(vec![NO_PRIMARY_KEY.to_owned()]));
    assert_eq!(changes[1].errors, Some(vec![NO_PRIMARY_KEY.to_owned()]));
    assert_eq!(changes[2].errors, None, "upstream reports the error for INSERT and UPDATE only");
    assert_eq!(rec(&changes[0]), json!({"msg": "a", "at": 1}));
    assert_eq!(old(&changes[2]), json!({"msg": "a", "at": 2}));
    // The primary key is re-read when the table changes (a new Relation message).
    exec(db.pool(), "alter table logs add column id int4 generated always as identity primary key; insert into logs values ('b', 3);").await;
    let changes = drain(&mut capture).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(*changes[0].primary_key, vec!["id".to_owned()]);
    assert_eq!(changes[0].errors, None);
    finish(&db, capture).await;
}

#[tokio::test]
async fn commit_order_across_interleaved_transactions() {
    let (db, mut capture) = setup(
        "create table public.t (id int4 primary key);
         alter publication supabase_realtime add table public.t;",
    )
    .await;
    let mut a = db.pool().begin().await.unwrap();
    let mut b = db.pool().begin().await.unwrap();
    sqlx::query("insert into t values (1)").execute(&mut *a).await.unwrap();
    sqlx::query("insert into t values (2)").execute(&mut *b).await.unwrap();
    sqlx::query("insert into t values (3)").execute(&mut *a).await.unwrap();
    b.commit().await.unwrap();
    sqlx::query("insert into t values (4)").execute(&mut *a).await.unwrap();
    a.commit().await.unwrap();
    let ids: Vec<Value> = drain(&mut capture).await.iter().map(|c| rec(c)["id"].clone()).collect();
    assert_eq!(ids, [json!(2), json!(1), json!(3), json!(4)]);
    // A rolled-back transaction sends nothing.
    let mut c = db.pool().begin().await.unwrap();
    sqlx::query("insert into t values (5)").execute(&mut *c).await.unwrap();
    c.rollback().await.unwrap();
    assert!(drain(&mut capture).await.is_empty());
    finish(&db, capture).await;
}

#[tokio::test]
async fn batch_limit_never_splits_a_transaction_and_confirm_advances() {
    let (db, mut capture) = setup(
        "create table public.t (id int4 primary key);
         alter publication supabase_realtime add table public.t;",
    )
    .await;
    exec(db.pool(), "insert into t select generate_series(1, 50);").await;
    exec(db.pool(), "insert into t values (100);").await;
    exec(db.pool(), "insert into t values (200);").await;
    settle(db.pool()).await;

    let first = capture.next_batch(10).await.unwrap();
    assert_eq!(first.changes.len(), 50, "the whole first transaction, though it exceeds the limit");
    // Without confirm, the same changes again.
    let again = capture.next_batch(10).await.unwrap();
    assert_eq!(again, first);
    capture.confirm(first.confirm).await.unwrap();

    let second = capture.next_batch(1).await.unwrap();
    let ids: Vec<Value> = second.changes.iter().map(|c| rec(c)["id"].clone()).collect();
    assert_eq!(ids, [json!(100)]);
    assert!(second.confirm > first.confirm);
    capture.confirm(second.confirm).await.unwrap();

    let third = capture.next_batch(1000).await.unwrap();
    let ids: Vec<Value> = third.changes.iter().map(|c| rec(c)["id"].clone()).collect();
    assert_eq!(ids, [json!(200)]);
    capture.confirm(third.confirm).await.unwrap();

    // Nothing new: an empty batch still moves the slot up to the flush position.
    exec(db.pool(), "create table public.other (id int4 primary key); insert into other values (1);").await;
    settle(db.pool()).await;
    let empty = capture.next_batch(1000).await.unwrap();
    assert!(empty.changes.is_empty());
    capture.confirm(empty.confirm).await.unwrap();
    let confirmed: String =
        sqlx::query_scalar("select confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1")
            .bind(capture.slot())
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(confirmed.parse::<Lsn>().unwrap(), empty.confirm);
    assert!(empty.confirm > third.confirm);
    // Confirming an older position is a no-op, not an error.
    capture.confirm(first.confirm).await.unwrap();
    assert!(capture.next_batch(1000).await.unwrap().changes.is_empty());

    let lag = lag_bytes(db.pool(), capture.slot()).await.unwrap();
    assert!(lag >= 0);
    finish(&db, capture).await;
    assert!(matches!(lag_bytes(db.pool(), "forge_realtime_nope").await, Err(CaptureError::SlotMissing(_))));
}

#[tokio::test]
async fn open_is_idempotent_and_slot_in_use_is_reported() {
    let (db, mut capture) = setup(
        "create table public.t (id int4 primary key);
         alter publication supabase_realtime add table public.t;",
    )
    .await;
    // A second node opening the same slot at the same time: both succeed.
    let slot = capture.slot().to_owned();
    let (x, y) = tokio::join!(Capture::open(db.pool(), &slot), Capture::open(db.pool(), &slot));
    x.unwrap();
    y.unwrap();
    exec(db.pool(), "insert into t values (1);").await;
    assert_eq!(drain(&mut capture).await.len(), 1);
    assert!(!drop_slot(db.pool(), "forge_realtime_nope").await.unwrap());
    finish(&db, capture).await;
    let mut reopened = Capture::open(db.pool(), &slot).await.unwrap();
    assert!(drop_slot(db.pool(), &slot).await.unwrap());
    assert!(matches!(reopened.next_batch(10).await, Err(CaptureError::SlotMissing(_))));
}

#[tokio::test]
async fn messages_publication() {
    let (db, mut capture) = setup(
        "create table public.t (id int4 primary key);
         alter publication supabase_realtime add table public.t;",
    )
    .await;
    // The slot predates realtime.messages and its publication: WAL from before the
    // publication existed is still readable.
    exec(db.pool(), "insert into t values (1);").await;
    exec(
        db.pool(),
        "create schema if not exists realtime;
         create table realtime.messages (id bigserial primary key, topic text not null, payload jsonb);",
    )
    .await;
    let slot = capture.slot().to_owned();
    Capture::open(db.pool(), &slot).await.unwrap();
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_publication_tables where pubname = $1 and tablename = 'messages')",
    )
    .bind(super::slot::MESSAGES_PUBLICATION)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(exists);
    exec(
        db.pool(),
        "insert into realtime.messages (topic, payload) values ('room:1', '{\"x\": \"ü\"}'); insert into t values (2);",
    )
    .await;
    let changes = drain(&mut capture).await;
    let seen: Vec<(String, Value)> =
        changes.iter().map(|c| (format!("{}.{}", c.schema, c.table), rec(c)["id"].clone())).collect();
    assert_eq!(seen.first(), Some(&("public.t".to_owned(), json!(1))));
    assert_eq!(seen.last(), Some(&("public.t".to_owned(), json!(2))));
    // Once past the publication's creation, both publications are decoded.
    exec(db.pool(), "insert into realtime.messages (topic) values ('room:2');").await;
    let changes = drain(&mut capture).await;
    assert_eq!(changes.len(), 1);
    assert_eq!((&*changes[0].schema, &*changes[0].table), ("realtime", "messages"));
    assert_eq!(rec(&changes[0])["topic"], json!("room:2"));
    finish(&db, capture).await;
}

#[tokio::test]
async fn filters_on_captured_changes() {
    let (db, mut capture) = setup(
        "create table public.items (id int4 primary key, name text, price numeric, ok bool, at timestamptz, tags text[]);
         alter table items replica identity full;
         alter publication supabase_realtime add table public.items;",
    )
    .await;
    exec(
        db.pool(),
        "insert into items values (1, 'Crème brûlée', 12.50, true, '2024-05-01 12:00:00+00', '{a,\"b c\"}');
         insert into items values (2, null, 3, false, null, '{}');
         delete from items where id = 1;",
    )
    .await;
    let changes = drain(&mut capture).await;
    assert_eq!(changes.len(), 3);
    let cases: Vec<(&str, [bool; 3])> = vec![
        ("id=eq.1", [true, false, true]),
        ("id=neq.1", [false, true, false]),
        ("id=lt.2", [true, false, true]),
        ("id=lte.2", [true, true, true]),
        ("id=gt.1", [false, true, false]),
        ("id=gte.1", [true, true, true]),
        ("id=in.(2,3)", [false, true, false]),
        ("id=not.in.(2,3)", [true, false, true]),
        ("name=like.Crème%", [true, false, true]),
        ("name=ilike.crème BRÛLÉE", [true, false, true]),
        ("name=not.like.X%", [true, false, true]),
        ("name=is.null", [false, true, false]),
        ("name=not.is.null", [true, false, true]),
        ("name=match.^Cr.me", [true, false, true]),
        ("name=imatch.BRÛLÉE$", [true, false, true]),
        ("name=isdistinct.Crème brûlée", [false, true, false]),
        ("name=eq.\"Crème brûlée\"", [true, false, true]),
        ("price=eq.12.5", [true, false, true]),
        ("price=gt.10,ok=is.true", [true, false, true]),
        ("ok=is.false", [false, true, false]),
        ("ok=eq.f", [false, true, false]),
        ("at=gte.2024-05-01T14:00:00+02:00", [true, false, true]),
        (r#"tags=eq."{a,\"b c\"}""#, [true, false, true]),
        ("tags=eq.{}", [false, true, false]),
        ("nope=eq.1", [false, false, false]),
    ];
    for (filter, want) in cases {
        let filters = parse_filter(filter).unwrap();
        let got: Vec<bool> = changes.iter().map(|c| filters.matches(c)).collect();
        assert_eq!(got, want, "{filter}");
    }
    let filters = parse_filter("nope=eq.1,id=eq.1").unwrap();
    assert_eq!(filters.validate(&changes[0].columns), Err("invalid column for filter nope".into()));
    finish(&db, capture).await;
}

#[tokio::test]
async fn sqlx_sessions_settings_do_not_leak() {
    // The capture sets TimeZone/DateStyle locally; a pooled connection keeps its own.
    let (db, mut capture) = setup(
        "create table public.t (id int4 primary key, at timestamptz);
         alter publication supabase_realtime add table public.t;",
    )
    .await;
    exec(db.pool(), "insert into t values (1, '2024-01-01 00:00:00+00');").await;
    let changes = drain(&mut capture).await;
    assert_eq!(rec(&changes[0])["at"], json!("2024-01-01T00:00:00+00:00"));
    let styles: BTreeMap<String, String> = sqlx::query_as(
        "select name::text, setting::text from pg_settings where name in ('DateStyle', 'IntervalStyle')",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(styles["DateStyle"], "ISO, MDY");
    finish(&db, capture).await;
}

/// A slot Postgres invalidated (it held more WAL than `max_slot_wal_keep_size`) is dropped
/// and made anew when the capture opens it, which says so; changes after that are read.
/// Runs on a cluster of its own: the setting is cluster-wide, and other tests' slots must
/// not lose theirs.
#[tokio::test]
async fn an_invalidated_slot_is_made_anew() {
    use forge_core::embedded::{ClusterOptions, EmbeddedPostgres};
    let dir = std::env::temp_dir().join(format!("forge-realtime-lost-slot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut options = ClusterOptions::new(dir.join("data"));
    options.socket_dir = Some(dir.join("run"));
    options.log_file = Some(dir.join("postgres.log"));
    options.durable = false;
    options.settings = vec![
        ("max_slot_wal_keep_size".into(), "1MB".into()),
        ("max_wal_size".into(), "32MB".into()),
        ("min_wal_size".into(), "32MB".into()),
    ];
    let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(options)).await.unwrap().expect("a cluster");
    let pool = PgPool::connect(&pg.url("postgres", pg.superuser())).await.unwrap();
    exec(&pool, "create table t (id int primary key); create publication supabase_realtime for table t").await;
    let slot = slot_name(&pool).await.unwrap();
    assert!(!Capture::open(&pool, &slot).await.unwrap().lost);

    let mut status = String::new();
    for _ in 0..10 {
        exec(&pool, "create table if not exists filler (n int, pad text)").await;
        exec(&pool, "insert into filler select g, repeat('x', 1000) from generate_series(1, 20000) g").await;
        exec(&pool, "select pg_switch_wal()").await;
        exec(&pool, "checkpoint").await;
        status = sqlx::query_scalar("select coalesce(wal_status, '') from pg_replication_slots where slot_name = $1")
            .bind(&slot)
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "lost" {
            break;
        }
    }
    assert_eq!(status, "lost", "the slot was not invalidated");

    let mut capture = Capture::open(&pool, &slot).await.unwrap();
    assert!(capture.lost, "opening says changes were lost");
    let status: String = sqlx::query_scalar("select wal_status from pg_replication_slots where slot_name = $1")
        .bind(&slot)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(status, "lost");
    exec(&pool, "insert into t values (7)").await;
    settle(&pool).await;
    let batch = capture.next_batch(100).await.unwrap();
    assert_eq!(batch.changes.len(), 1);
    assert_eq!(batch.changes[0].record.as_ref().unwrap()["id"], json!(7));

    pool.close().await;
    pg.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
