//! Schema introspection and live reload against a real Postgres.

use std::time::{Duration, Instant};

use forge_core::testing::test_db;
use forge_data::schema::{Cardinality, QualifiedName, RelationKind, ReturnType, SchemaCache, Volatility, introspect};

const SCHEMA: &str = r#"
create type mood as enum ('sad', 'ok', 'happy');
create table countries (id int primary key, name text not null);
create table cities (
  id int generated always as identity primary key,
  name text not null default 'unnamed',
  country_id int not null references countries(id),
  tags text[],
  mood mood,
  moods mood[],
  name_len int generated always as (length(name)) stored
);
comment on table cities is 'Cities of the world';
create table capitals (country_id int primary key references countries(id), city_id int not null references cities(id));
create table users (id uuid primary key, name text);
create table teams (id int primary key, name text);
create table members (user_id uuid references users(id), team_id int references teams(id), joined date, primary key (user_id, team_id));
create table messages (id int primary key, sender uuid references users(id), receiver uuid references users(id));
create view big_cities as select id, name, country_id from cities where name_len > 3;
create materialized view city_count as select country_id, count(*) from cities group by 1;
create schema private;
create table private.hidden (id int);
create function add(a int, b int default 1) returns int language sql immutable as $$ select a + b $$;
create function add(a text, b text) returns text language sql immutable as $$ select a || b $$;
create function cities_of(country int) returns setof cities language sql stable as $$ select * from cities where country_id = country $$;
create function bump() returns void language sql as $$ select 1 $$;
create function echo(jsonb) returns jsonb language sql as $$ select $1 $$;
create function pairs(n int) returns table (i int, sq int) language sql as $$ select g, g * g from generate_series(1, n) g $$;
create function tally(variadic xs int[]) returns int language sql as $$ select count(*)::int from unnest(xs) $$;
"#;

#[tokio::test]
async fn introspection_sees_relations_keys_relationships_and_functions() {
    let t = test_db().await;
    sqlx::raw_sql(SCHEMA).execute(t.pool()).await.expect("schema");
    let s = introspect(t.pool(), &["public".to_owned()]).await.expect("introspect");

    // Relations of the exposed schema only.
    assert!(s.relation("public", "cities").is_some());
    assert!(s.relation("private", "hidden").is_none(), "unexposed schemas are invisible");
    assert_eq!(s.relation("public", "big_cities").expect("view").kind, RelationKind::View);
    assert_eq!(s.relation("public", "city_count").expect("matview").kind, RelationKind::MaterializedView);
    let view = s.relation("public", "big_cities").expect("view");
    assert!(view.insertable && view.updatable && view.deletable, "a simple view is auto-updatable");
    assert!(!s.relation("public", "city_count").expect("matview").insertable);

    // Columns: types, nullability, defaults, generated, arrays, enums, comments.
    let cities = s.relation("public", "cities").expect("cities");
    assert_eq!(cities.comment.as_deref(), Some("Cities of the world"));
    let names: Vec<&str> = cities.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "country_id", "tags", "mood", "moods", "name_len"]);
    let col = |n: &str| cities.column(n).expect(n);
    assert!(col("id").generated && !col("id").nullable);
    assert_eq!(col("name").default.as_deref(), Some("'unnamed'::text"));
    assert!(col("name_len").generated);
    assert_eq!((col("tags").data_type.as_str(), col("tags").element_type.as_deref()), ("text[]", Some("text")));
    assert_eq!(col("mood").enum_values, ["sad", "ok", "happy"]);
    assert_eq!(col("moods").enum_values, ["sad", "ok", "happy"]);
    assert!(col("moods").is_array());
    assert_eq!(col("country_id").type_name, "integer");
    assert_eq!(cities.primary_key, ["id"]);
    let members = s.relation("public", "members").expect("members");
    assert_eq!(members.primary_key, ["user_id", "team_id"]);

    // Relationships.
    let rel = |from: &str, to: &str| {
        s.relationships_of(&QualifiedName::new("public", from))
            .iter()
            .filter(|r| r.target.name == to)
            .cloned()
            .collect::<Vec<_>>()
    };
    let city_country = rel("cities", "countries");
    assert_eq!(city_country.len(), 1);
    assert_eq!(city_country[0].cardinality, Cardinality::ManyToOne);
    assert_eq!(city_country[0].join_columns(), [("country_id".to_owned(), "id".to_owned())]);
    assert_eq!(rel("countries", "cities")[0].cardinality, Cardinality::OneToMany);
    assert_eq!(rel("countries", "cities")[0].join_columns(), [("id".to_owned(), "country_id".to_owned())]);
    // capitals.country_id is its primary key: one-to-one both ways.
    assert_eq!(rel("capitals", "countries")[0].cardinality, Cardinality::OneToOne { source_holds_fk: true });
    assert!(rel("countries", "capitals")[0].is_to_one());
    // users <-> teams through members.
    let m2m = rel("users", "teams");
    assert_eq!(m2m.len(), 1);
    assert!(matches!(&m2m[0].cardinality, Cardinality::ManyToMany { junction, .. } if junction.name == "members"));
    // Two FKs from messages to users: two relationships, told apart by constraint name.
    let msgs = rel("users", "messages");
    assert_eq!(msgs.len(), 2);
    let mut fks: Vec<&str> = msgs.iter().map(|r| r.foreign_key.name.as_str()).collect();
    fks.sort();
    assert_eq!(fks, ["messages_receiver_fkey", "messages_sender_fkey"]);

    // Functions: overloads, defaults, returns, volatility, the single-json form.
    let add = s.function("public", "add");
    assert_eq!(add.len(), 2);
    let int_add = add.iter().find(|f| f.args[0].type_name == "integer").expect("int overload");
    assert_eq!((int_add.args[0].has_default, int_add.args[1].has_default), (false, true));
    assert_eq!(int_add.returns, ReturnType::Scalar("integer".into()));
    assert_eq!(int_add.volatility, Volatility::Immutable);
    let cities_of = &s.function("public", "cities_of")[0];
    assert!(cities_of.returns_set);
    assert_eq!(cities_of.returns, ReturnType::Composite(QualifiedName::new("public", "cities")));
    assert_eq!(s.function("public", "bump")[0].returns, ReturnType::Void);
    assert_eq!(s.function("public", "bump")[0].volatility, Volatility::Volatile);
    assert!(s.function("public", "echo")[0].takes_single_json());
    let pairs = &s.function("public", "pairs")[0];
    assert_eq!(pairs.args.len(), 1, "TABLE columns are not inputs");
    assert_eq!(
        pairs.returns,
        ReturnType::Columns(vec![("i".into(), "integer".into()), ("sq".into(), "integer".into())])
    );
    assert!(s.function("public", "tally")[0].args[0].variadic);
    assert!(s.function("forge", "notify_ddl").is_empty(), "trigger functions and unexposed schemas are not RPCs");
}

#[tokio::test]
async fn ddl_is_picked_up_within_a_second_without_blocking_readers() {
    let t = test_db().await;
    let cache = SchemaCache::watch(t.database(), vec!["public".into()]).await.expect("watch");
    assert!(cache.snapshot().relation("public", "late").is_none());
    // No pause: `watch` returns once a connection listens, so DDL right after it is heard.
    let before = cache.snapshot();

    let started = Instant::now();
    sqlx::raw_sql("create table late (id int primary key, note text)").execute(t.pool()).await.expect("ddl");
    loop {
        if cache.snapshot().relation("public", "late").is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "DDL not picked up within a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("DDL picked up after {:?}", started.elapsed());
    // A snapshot taken earlier is untouched: readers are never disturbed by a reload.
    assert!(before.relation("public", "late").is_none());

    // A column added later, and a drop, are picked up the same way.
    sqlx::raw_sql("alter table late add column extra int").execute(t.pool()).await.expect("alter");
    let started = Instant::now();
    while cache.snapshot().relation("public", "late").and_then(|r| r.column("extra")).is_none() {
        assert!(started.elapsed() < Duration::from_secs(1), "ALTER not picked up within a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::raw_sql("drop table late").execute(t.pool()).await.expect("drop");
    let started = Instant::now();
    while cache.snapshot().relation("public", "late").is_some() {
        assert!(started.elapsed() < Duration::from_secs(1), "DROP not picked up within a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_reload_missed_while_no_gateway_connection_listened_is_made_up() {
    let t = test_db().await;
    let cache = SchemaCache::watch(t.database(), vec!["public".into()]).await.expect("watch");
    // The gateway's connections are the ones listening; they all die (as in a restart of
    // Postgres), and DDL made meanwhile notifies no one.
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = current_database() and pid <> pg_backend_pid() and query = 'LISTEN pgrst'",
    )
    .fetch_all(t.pool())
    .await
    .expect("terminate");
    assert!(!killed.is_empty() && killed.iter().all(|k| *k), "the gateway's listening connection: {killed:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::raw_sql("create table unheard (id int primary key)").execute(t.pool()).await.expect("ddl");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cache.snapshot().relation("public", "unheard").is_none(), "no one was listening");
    // The gateway's next connection listens again, and reloads for what it may have missed.
    t.database().ping().await.expect("the gateway reconnects");
    let started = Instant::now();
    while cache.snapshot().relation("public", "unheard").is_none() {
        assert!(started.elapsed() < Duration::from_secs(1), "the missed DDL was never made up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // And it hears the next change as usual.
    sqlx::raw_sql("notify pgrst, 'reload schema'; create table heard (id int primary key)")
        .execute(t.pool())
        .await
        .expect("ddl");
    let started = Instant::now();
    while cache.snapshot().relation("public", "heard").is_none() {
        assert!(started.elapsed() < Duration::from_secs(1), "DDL after the reconnect not picked up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
