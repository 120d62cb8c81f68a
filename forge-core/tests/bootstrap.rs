//! Bootstrap SQL and per-crate migrations against a real Postgres.

use std::time::Duration;

use forge_core::migrate::{self, MigrateError, Migration, MigrationSet};
use forge_core::testing::test_db;
use sqlx::postgres::PgListener;

#[tokio::test]
async fn bootstrap_is_idempotent_and_creates_what_supabase_migrations_expect() {
    let t = test_db().await;
    // The template already ran it once; running again changes nothing and fails nothing.
    forge_core::bootstrap::apply(t.pool()).await.expect("second bootstrap");
    forge_core::bootstrap::apply(t.pool()).await.expect("third bootstrap");

    let roles: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "select rolname::text, rolcanlogin, rolbypassrls, rolinherit from pg_roles
         where rolname in ('anon','authenticated','service_role','authenticator') order by rolname",
    )
    .fetch_all(t.pool())
    .await
    .expect("roles");
    assert_eq!(
        roles,
        vec![
            ("anon".into(), false, false, false),
            ("authenticated".into(), false, false, false),
            ("authenticator".into(), true, false, false),
            ("service_role".into(), false, true, false),
        ]
    );
    let granted: i64 = sqlx::query_scalar(
        "select count(*) from pg_auth_members m join pg_roles r on r.oid = m.roleid join pg_roles u on u.oid = m.member
         where u.rolname = 'authenticator' and r.rolname in ('anon','authenticated','service_role')",
    )
    .fetch_one(t.pool())
    .await
    .expect("memberships");
    assert_eq!(granted, 3);
    let functions: Vec<String> = sqlx::query_scalar(
        "select p.proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'auth' order by 1",
    )
    .fetch_all(t.pool())
    .await
    .expect("functions");
    assert_eq!(functions, ["email", "jwt", "role", "uid"]);
    let publication: i64 =
        sqlx::query_scalar("select count(*) from pg_publication where pubname = 'supabase_realtime'")
            .fetch_one(t.pool())
            .await
            .expect("publication");
    assert_eq!(publication, 1);
    let usage: bool = sqlx::query_scalar("select has_schema_privilege('anon', 'extensions', 'USAGE')")
        .fetch_one(t.pool())
        .await
        .expect("extensions schema");
    assert!(usage, "schema extensions exists and the API roles may use it");
    // A typical Supabase migration line runs unchanged.
    sqlx::raw_sql("create table todos (id int primary key); alter publication supabase_realtime add table todos;")
        .execute(t.pool())
        .await
        .expect("supabase-style migration");
}

#[tokio::test]
async fn ddl_notifies_the_reload_channel() {
    let t = test_db().await;
    let mut listener = PgListener::connect(t.url()).await.expect("listener");
    listener.listen(forge_core::bootstrap::RELOAD_CHANNEL).await.expect("listen");
    sqlx::raw_sql("create table watched (id int)").execute(t.pool()).await.expect("ddl");
    let n =
        tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("notified in time").expect("recv");
    assert_eq!(n.payload(), "reload schema");
    sqlx::raw_sql("drop table watched").execute(t.pool()).await.expect("drop");
    let n =
        tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("notified in time").expect("recv");
    assert_eq!(n.payload(), "reload schema");
}

const AUTH_V1: &[Migration] = &[
    Migration { version: 1, name: "users", sql: "create table a_users (id int primary key);" },
    Migration {
        version: 2,
        name: "sessions",
        sql: "create table a_sessions (id int primary key); create index on a_sessions (id);",
    },
];
const STORAGE_V1: &[Migration] =
    &[Migration { version: 1, name: "buckets", sql: "create table s_buckets (id text primary key);" }];

#[tokio::test]
async fn crates_own_their_migrations_without_colliding() {
    let t = test_db().await;
    let sets = [
        MigrationSet { owner: "forge-auth", migrations: AUTH_V1 },
        MigrationSet { owner: "forge-storage", migrations: STORAGE_V1 },
    ];
    assert_eq!(migrate::run(t.pool(), &sets).await.expect("first run"), 3);
    assert_eq!(migrate::run(t.pool(), &sets).await.expect("second run"), 0, "nothing is applied twice");
    let ledger: Vec<(String, i64)> =
        sqlx::query_as("select owner, version from forge.migrations order by owner, version")
            .fetch_all(t.pool())
            .await
            .expect("ledger");
    assert_eq!(ledger, vec![("forge-auth".into(), 1), ("forge-auth".into(), 2), ("forge-storage".into(), 1)]);

    // Editing an applied migration is refused.
    let edited: &'static [Migration] =
        &[Migration { version: 1, name: "buckets", sql: "create table s_buckets (id int);" }];
    let err = migrate::run(t.pool(), &[MigrationSet { owner: "forge-storage", migrations: edited }])
        .await
        .expect_err("changed");
    assert!(matches!(err, MigrateError::Changed { version: 1, .. }), "{err}");

    // An older build that does not know version 2 refuses to run against this database.
    let older: &'static [Migration] = &AUTH_V1[..1];
    let err =
        migrate::run(t.pool(), &[MigrationSet { owner: "forge-auth", migrations: older }]).await.expect_err("unknown");
    assert!(matches!(err, MigrateError::Unknown { version: 2, .. }), "{err}");

    // A failing migration leaves nothing half-applied.
    let broken: &'static [Migration] =
        &[Migration { version: 1, name: "broken", sql: "create table ok_part (id int); select 1/0;" }];
    assert!(migrate::run(t.pool(), &[MigrationSet { owner: "forge-billing", migrations: broken }]).await.is_err());
    let exists: bool =
        sqlx::query_scalar("select to_regclass('ok_part') is not null").fetch_one(t.pool()).await.expect("check");
    assert!(!exists);

    const UNORDERED: &[Migration] = &[STORAGE_V1[0], STORAGE_V1[0]];
    let unordered = UNORDERED;
    let err =
        migrate::run(t.pool(), &[MigrationSet { owner: "x", migrations: unordered }]).await.expect_err("unordered");
    assert!(matches!(err, MigrateError::Unordered { .. }));
}
