//! The RLS gateway against a real Postgres.

use forge_core::rls::{self, RequestContext};
use forge_core::testing::test_db;
use forge_core::{Claims, Database, ForgeError, Principal};
use http::Method;
use serde_json::json;

const ALICE: &str = "11111111-1111-4111-8111-111111111111";
const BOB: &str = "22222222-2222-4222-8222-222222222222";

fn user(id: &str) -> Principal {
    let claims =
        json!({ "sub": id, "role": "authenticated", "aud": "authenticated", "email": format!("{id}@example.com") });
    Principal::from_claims(Claims::new(claims.as_object().expect("object").clone()))
}

async fn notes_schema(db: &Database) {
    sqlx::raw_sql(
        "create table notes (id serial primary key, owner uuid not null, body text not null);
         alter table notes enable row level security;
         create policy own_notes on notes for all to authenticated
           using (owner = auth.uid()) with check (owner = auth.uid());
         insert into notes (owner, body) values
           ('11111111-1111-4111-8111-111111111111', 'alice 1'),
           ('11111111-1111-4111-8111-111111111111', 'alice 2'),
           ('22222222-2222-4222-8222-222222222222', 'bob 1');",
    )
    .execute(db.pool())
    .await
    .expect("schema");
}

async fn bodies(db: &Database, principal: Principal) -> Result<Vec<String>, ForgeError> {
    let ctx = RequestContext::new(principal, Method::GET, "/rest/v1/notes");
    let rows = rls::query_once(db, &ctx, "select body from notes order by id", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[tokio::test]
async fn a_policy_on_auth_uid_shows_each_principal_only_its_rows() {
    let t = test_db().await;
    notes_schema(t.database()).await;
    let db = t.database();

    assert_eq!(bodies(db, user(ALICE)).await.expect("alice"), ["alice 1", "alice 2"]);
    assert_eq!(bodies(db, user(BOB)).await.expect("bob"), ["bob 1"]);
    assert_eq!(bodies(db, Principal::service()).await.expect("service bypasses RLS").len(), 3);

    // anon has table privileges (Supabase's defaults) but no policy: it sees nothing.
    assert!(bodies(db, Principal::anon()).await.expect("anon").is_empty());

    // Writes are checked too: Bob cannot write a row owned by Alice.
    let ctx = RequestContext::new(user(BOB), Method::POST, "/rest/v1/notes");
    let tx = rls::begin(db, &ctx).await.expect("begin");
    let owner: uuid::Uuid = ALICE.parse().expect("uuid");
    let err =
        tx.execute("insert into notes (owner, body) values ($1, 'forged')", &[&owner]).await.expect_err("RLS refuses");
    match &err {
        ForgeError::Database(db_err) => assert_eq!(db_err.code, "42501"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.status(true), 403);
    assert_eq!(err.status(false), 401);
    // A commit after a failed statement reports failure rather than pretending.
    assert!(tx.commit().await.is_err());

    let tx = rls::begin(db, &ctx).await.expect("begin");
    let own: uuid::Uuid = BOB.parse().expect("uuid");
    tx.execute("insert into notes (owner, body) values ($1, 'bob 2')", &[&own]).await.expect("own row");
    tx.commit().await.expect("commit");
    assert_eq!(bodies(db, user(BOB)).await.expect("bob"), ["bob 1", "bob 2"]);
}

#[tokio::test]
async fn the_gateway_sets_every_request_setting() {
    let t = test_db().await;
    let parts = http::Request::builder()
        .method(Method::POST)
        .uri("/rest/v1/rpc/x?select=*")
        .header("X-Client-Info", "supabase-js/2")
        .header("Cookie", "session=secret")
        .header("Prefer", "return=minimal")
        .body(())
        .expect("request")
        .into_parts()
        .0;
    let ctx = RequestContext::from_parts(&parts, user(ALICE)).with_setting("search_path", "public, auth");
    let tx = rls::begin(t.database(), &ctx).await.expect("begin");
    let row = &tx
        .query(
            "select current_user::text, auth.uid()::text, auth.role(), auth.email(), auth.jwt() ->> 'aud',
                    current_setting('request.method'), current_setting('request.path'),
                    current_setting('request.headers')::jsonb, current_setting('search_path'),
                    current_setting('transaction_read_only')",
            &[],
        )
        .await
        .expect("query")[0];
    assert_eq!(row.get::<_, String>(0), "authenticated");
    assert_eq!(row.get::<_, String>(1), ALICE);
    assert_eq!(row.get::<_, String>(2), "authenticated");
    assert_eq!(row.get::<_, String>(3), format!("{ALICE}@example.com"));
    assert_eq!(row.get::<_, String>(4), "authenticated");
    assert_eq!(row.get::<_, String>(5), "POST");
    assert_eq!(row.get::<_, String>(6), "/rest/v1/rpc/x");
    let headers: serde_json::Value = row.get(7);
    assert_eq!(headers["x-client-info"], "supabase-js/2", "names are lower-cased");
    assert_eq!(headers["prefer"], "return=minimal");
    assert!(headers.get("cookie").is_none(), "cookies are never exposed");
    assert_eq!(row.get::<_, String>(8), "public, auth");
    assert_eq!(row.get::<_, String>(9), "off", "POST is read-write");
    tx.rollback().await.expect("rollback");
}

#[tokio::test]
async fn settings_never_leak_between_requests_on_one_connection() {
    let t = test_db().await;
    notes_schema(t.database()).await;
    // A pool of exactly one connection: every request below reuses the same backend.
    let config = t.config().with_pool_sizes(1, 1);
    let db = Database::connect_lazy(&config).expect("pool");
    let probe = "select pg_backend_pid(), current_user::text, auth.uid()::text, \
                 coalesce(current_setting('request.jwt.claims', true), ''), \
                 coalesce(current_setting('request.path', true), '')";

    let run = |principal: Principal, path: &'static str| {
        let db = db.clone();
        async move {
            let ctx = RequestContext::new(principal, Method::GET, path);
            let rows = rls::query_once(&db, &ctx, probe, &[]).await.expect("probe");
            let r = &rows[0];
            (
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<String>>(2),
                r.get::<_, String>(3),
                r.get::<_, String>(4),
            )
        }
    };

    let (pid_a, role_a, uid_a, _, path_a) = run(user(ALICE), "/a").await;
    assert_eq!((role_a.as_str(), uid_a.as_deref(), path_a.as_str()), ("authenticated", Some(ALICE), "/a"));
    let (pid_b, role_b, uid_b, claims_b, path_b) = run(Principal::anon(), "/b").await;
    assert_eq!(pid_a, pid_b, "the same connection was reused");
    assert_eq!(role_b, "anon");
    assert_eq!(uid_b, None, "Alice's sub must not survive into the next request");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&claims_b).expect("json"), json!({"role": "anon"}));
    assert_eq!(path_b, "/b");

    // A transaction abandoned mid-way (dropped, as when a client disconnects) is rolled back
    // before the connection serves anyone else.
    {
        let ctx = RequestContext::new(user(BOB), Method::POST, "/dropped");
        let tx = rls::begin(&db, &ctx).await.expect("begin");
        tx.execute("insert into notes (owner, body) values (auth.uid(), 'never committed')", &[])
            .await
            .expect("insert");
        drop(tx);
    }
    let (pid_c, role_c, uid_c, _, path_c) = run(Principal::anon(), "/c").await;
    assert_eq!(pid_c, pid_a);
    assert_eq!((role_c.as_str(), uid_c, path_c.as_str()), ("anon", None, "/c"));
    let all = bodies(&db, Principal::service()).await.expect("service");
    assert!(!all.iter().any(|b| b == "never committed"), "{all:?}");

    // After a failed statement the connection is clean too.
    let ctx = RequestContext::new(user(BOB), Method::POST, "/fails");
    let err = rls::query_once(&db, &ctx, "select 1/0", &[]).await.expect_err("division by zero");
    assert!(matches!(&err, ForgeError::Database(e) if e.code == "22012"), "{err:?}");
    let (_, role_d, uid_d, _, _) = run(Principal::anon(), "/d").await;
    assert_eq!((role_d.as_str(), uid_d), ("anon", None));
}

#[tokio::test]
async fn get_and_head_are_really_read_only() {
    let t = test_db().await;
    notes_schema(t.database()).await;
    let db = t.database();
    for method in [Method::GET, Method::HEAD] {
        let ctx = RequestContext::new(Principal::service(), method.clone(), "/rest/v1/notes");
        let err = rls::query_once(
            db,
            &ctx,
            "insert into notes (owner, body) values (gen_random_uuid(), 'x') returning id",
            &[],
        )
        .await
        .expect_err("read-only transaction refuses writes");
        match &err {
            ForgeError::Database(e) => assert_eq!(e.code, "25006", "{method}"),
            other => panic!("{method}: unexpected {other:?}"),
        }
        assert_eq!(err.status(true), 405);
        // Even a function that writes is refused.
        let ctx = RequestContext::new(Principal::service(), method, "/rest/v1/notes");
        let tx = rls::begin(db, &ctx).await.expect("begin");
        assert!(tx.execute("delete from notes", &[]).await.is_err());
    }
    let ctx = RequestContext::new(Principal::service(), Method::PATCH, "/rest/v1/notes");
    let rows =
        rls::query_once(db, &ctx, "update notes set body = body || '!' returning id", &[]).await.expect("PATCH writes");
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn a_role_the_gateway_may_not_assume_is_refused() {
    let t = test_db().await;
    // A token naming a role that exists but was never granted to the authenticator.
    sqlx::raw_sql("create role intruder nologin").execute(t.pool()).await.ok();
    let claims = json!({ "sub": ALICE, "role": "intruder" });
    let p = Principal::from_claims(Claims::new(claims.as_object().expect("object").clone()));
    let ctx = RequestContext::new(p, Method::GET, "/");
    let err = rls::query_once(t.database(), &ctx, "select 1", &[]).await.expect_err("not a member");
    assert!(matches!(&err, ForgeError::Database(e) if e.code == "42501"), "{err:?}");
    // ...and a role that does not exist at all.
    let claims = json!({ "sub": ALICE, "role": "no_such_role" });
    let p = Principal::from_claims(Claims::new(claims.as_object().expect("object").clone()));
    let ctx = RequestContext::new(p, Method::GET, "/");
    let err = rls::query_once(t.database(), &ctx, "select 1", &[]).await.expect_err("no role");
    assert!(matches!(&err, ForgeError::Database(e) if e.code == "22023"), "{err:?}");
    assert_eq!(err.status(true), 401);
}
