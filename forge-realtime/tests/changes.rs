//! postgres_changes end to end: the slot, the bus and each subscriber's RLS check, over a real
//! socket against real Postgres.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Node, database};
use forge_realtime::RealtimeConfig;
use serde_json::{Value, json};

fn config() -> RealtimeConfig {
    RealtimeConfig::default()
        .with_poll_interval(Duration::from_millis(20))
        .with_check_timeout(Duration::from_millis(500))
}

const SCHEMA: &str = "
    create table public.notes (id bigint generated always as identity primary key, owner uuid not null, body text, n int, tags text[], doc jsonb, at timestamptz default now());
    alter table public.notes enable row level security;
    create policy own on public.notes for select to authenticated using (owner = auth.uid());
    grant select on public.notes to anon, authenticated;
    alter publication supabase_realtime add table public.notes;
    create table public.hidden (id int primary key);
";

/// Joins `table`'s changes with `token` and waits for the "Subscribed" system message.
async fn subscribe(c: &mut Client, topic: &str, binding: Value, token: &str) -> i64 {
    let (_, reply) = c.join(topic, json!({"postgres_changes": [binding.clone()]}), Some(token)).await;
    assert_eq!(reply.payload["status"], "ok", "{reply:?}");
    let echoed = &reply.payload["response"]["postgres_changes"][0];
    for key in ["event", "schema", "table", "filter"] {
        assert_eq!(echoed.get(key), binding.get(key), "{key} is echoed");
    }
    let id = echoed["id"].as_i64().expect("an integer id");
    let system = c.expect("system").await;
    assert_eq!(system.payload["status"], "ok", "{system:?}");
    assert_eq!(system.payload["message"], "Subscribed to PostgreSQL");
    assert_eq!(system.payload["extension"], "postgres_changes");
    id
}

async fn change(c: &mut Client) -> Value {
    let f = c.expect("postgres_changes").await;
    assert_eq!((f.join_ref.clone(), f.reference.clone()), (Value::Null, Value::Null));
    f.payload
}

#[tokio::test]
async fn each_event_reaches_only_whom_rls_lets_see_it() {
    let (db, project) = database().await;
    sqlx::raw_sql(SCHEMA).execute(db.pool()).await.unwrap();
    let node = Node::start(&project, config()).await;
    let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut a = node.connect("2.0.0").await;
    let mut b = node.connect("1.0.0").await;
    let mut s = node.connect("2.0.0").await;
    let all = json!({"event": "*", "schema": "public", "table": "notes"});
    let ida = subscribe(&mut a, "realtime:a", all.clone(), &node.user_token(alice, 3600)).await;
    subscribe(&mut b, "realtime:b", all.clone(), &node.user_token(bob, 3600)).await;
    let ids = subscribe(
        &mut s,
        "realtime:s",
        json!({"event": "INSERT", "schema": "public", "table": "notes"}),
        &node.service_key(),
    )
    .await;

    let id: i64 = sqlx::query_scalar(
        "insert into public.notes (owner, body, n, tags, doc) values ($1, 'héllo', 7, '{a,\"b c\"}', '{\"k\": [1, null]}') returning id",
    )
    .bind(alice)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let row: Value = sqlx::query_scalar("select to_jsonb(t) from public.notes t where id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap();

    let ins = change(&mut a).await;
    assert_eq!(ins["ids"], json!([ida]));
    let data = &ins["data"];
    assert_eq!(
        (data["schema"].clone(), data["table"].clone(), data["type"].clone()),
        (json!("public"), json!("notes"), json!("INSERT"))
    );
    assert!(data.get("old_record").is_none(), "INSERT carries no old_record: {data}");
    assert_eq!(data["errors"], Value::Null);
    assert!(data["commit_timestamp"].as_str().unwrap().ends_with('Z'));
    let record = &data["record"];
    for key in ["id", "owner", "body", "n", "tags", "doc"] {
        assert_eq!(record[key], row[key], "{key} as Postgres renders it");
    }
    let columns: Vec<(String, String)> = data["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["type"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(columns[0], ("id".into(), "int8".into()));
    assert!(columns.contains(&("tags".into(), "_text".into())));
    let svc = change(&mut s).await;
    assert_eq!(svc["ids"], json!([ids]));
    assert_eq!(svc["data"]["record"]["id"], json!(id));

    sqlx::query("update public.notes set n = 8 where id = $1").bind(id).execute(db.pool()).await.unwrap();
    let upd = change(&mut a).await;
    assert_eq!(upd["data"]["type"], "UPDATE");
    assert_eq!(upd["data"]["record"]["n"], 8);
    assert!(upd["data"].get("old_record").is_some());

    sqlx::query("delete from public.notes where id = $1").bind(id).execute(db.pool()).await.unwrap();
    let del = change(&mut a).await;
    assert_eq!(del["data"]["type"], "DELETE");
    assert!(del["data"].get("record").is_none(), "DELETE carries no record");
    assert_eq!(del["data"]["old_record"], json!({"id": id}));

    // Bob saw none of Alice's row but its deletion's key (RLS cannot ask about a row that is
    // gone, as in Supabase); the service subscriber asked for INSERT only.
    let bob_del = change(&mut b).await;
    assert_eq!(bob_del["data"]["type"], "DELETE");
    assert_eq!(bob_del["data"]["old_record"], json!({"id": id}));
    b.quiet("postgres_changes", Duration::from_millis(300)).await;
    s.quiet("postgres_changes", Duration::from_millis(300)).await;

    // Alice's and Bob's checks ran together, in one transaction per batch; none alone.
    let stats = node.realtime.stats("realtime").unwrap();
    assert!(stats.checks_together >= 4, "{stats:?}");
    assert_eq!(stats.checks_alone, 0, "{stats:?}");
    // Metered as Supabase counts realtime messages: each message to each client. Here: the
    // five changes above and the three channels' "Subscribed" system messages.
    assert!(stats.messages >= 5 + 3, "{stats:?}");
}

#[tokio::test]
async fn filters_select_the_rows_and_bad_bindings_are_refused() {
    let (db, project) = database().await;
    sqlx::raw_sql(SCHEMA).execute(db.pool()).await.unwrap();
    let node = Node::start(&project, config()).await;
    let key = node.service_key();
    let mut c = node.connect("2.0.0").await;
    let filtered = json!({"event": "INSERT", "schema": "public", "table": "notes", "filter": "n=gt.5"});
    let idf = subscribe(&mut c, "realtime:f", filtered, &key).await;
    let listed = json!({"event": "*", "schema": "public", "table": "notes", "filter": "body=in.(x,\"y,z\")"});
    let idl = subscribe(&mut c, "realtime:l", listed, &key).await;
    let owner = uuid::Uuid::new_v4();
    for (body, n) in [("x", 1), ("w", 9), ("y,z", 6)] {
        sqlx::query("insert into public.notes (owner, body, n) values ($1, $2, $3)")
            .bind(owner)
            .bind(body)
            .bind(n)
            .execute(db.pool())
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let f = c.expect("postgres_changes").await;
        got.push((
            f.topic,
            f.payload["data"]["record"]["body"].as_str().unwrap().to_owned(),
            f.payload["ids"].to_string(),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("realtime:f".into(), "w".into(), json!([idf]).to_string()),
            ("realtime:f".into(), "y,z".into(), json!([idf]).to_string()),
            ("realtime:l".into(), "x".into(), json!([idl]).to_string()),
            ("realtime:l".into(), "y,z".into(), json!([idl]).to_string()),
        ]
    );
    c.quiet("postgres_changes", Duration::from_millis(300)).await;

    let (_, missing) = c
        .join(
            "realtime:m",
            json!({"postgres_changes": [{"event": "*", "schema": "public", "table": "nope"}]}),
            Some(&key),
        )
        .await;
    assert_eq!(missing.payload["status"], "error");
    assert_eq!(missing.payload["response"]["reason"], "InvalidBinding: The table public.nope does not exist");
    let (_, column) = c
        .join(
            "realtime:m",
            json!({"postgres_changes": [{"event": "*", "schema": "public", "table": "notes", "filter": "nope=eq.1"}]}),
            Some(&key),
        )
        .await;
    assert!(column.payload["response"]["reason"].as_str().unwrap().contains("nope"), "{column:?}");
    let (_, op) = c
        .join(
            "realtime:m",
            json!({"postgres_changes": [{"event": "*", "schema": "public", "table": "notes", "filter": "n=zz.1"}]}),
            Some(&key),
        )
        .await;
    assert!(
        op.payload["response"]["reason"].as_str().unwrap().starts_with("InvalidBinding: Error parsing `filter` params"),
        "{op:?}"
    );

    // A table outside the publication: the join succeeds and a system error says why.
    let (_, ok) = c
        .join(
            "realtime:h",
            json!({"postgres_changes": [{"event": "*", "schema": "public", "table": "hidden"}]}),
            Some(&key),
        )
        .await;
    assert_eq!(ok.payload["status"], "ok");
    let system = c.expect("system").await;
    assert_eq!(system.payload["status"], "error");
    assert!(
        system.payload["message"]
            .as_str()
            .unwrap()
            .starts_with("Unable to subscribe to changes with given parameters.")
    );
}

#[tokio::test]
async fn a_slow_or_failing_policy_delays_no_one_else() {
    let (db, project) = database().await;
    let (fast, slow, broken) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create table public.feed (id int primary key, body text);
         alter table public.feed enable row level security;
         create function public.gate() returns boolean language plpgsql stable as $$
         begin
           if auth.uid() = '{slow}' then perform pg_sleep(5); end if;
           if auth.uid() = '{broken}' then raise exception 'policy broke'; end if;
           return true;
         end $$;
         create policy gate on public.feed for select to authenticated using (public.gate());
         grant select on public.feed to authenticated;
         alter publication supabase_realtime add table public.feed;"
    )))
    .execute(db.pool())
    .await
    .unwrap();
    let node = Node::start(&project, config()).await;
    let binding = json!({"event": "INSERT", "schema": "public", "table": "feed"});
    let mut clients = Vec::new();
    for user in [slow, broken, fast] {
        let mut c = node.connect("2.0.0").await;
        subscribe(&mut c, "realtime:feed", binding.clone(), &node.user_token(user, 3600)).await;
        clients.push(c);
    }
    let mut fast_client = clients.pop().unwrap();
    let mut broken_client = clients.pop().unwrap();
    let mut slow_client = clients.pop().unwrap();

    let t0 = Instant::now();
    sqlx::query("insert into public.feed values (1, 'one')").execute(db.pool()).await.unwrap();
    let got = change(&mut fast_client).await;
    assert_eq!(got["data"]["record"]["body"], "one");
    assert!(t0.elapsed() < Duration::from_millis(400), "the fast subscriber waited {:?}", t0.elapsed());

    let err = broken_client.expect("system").await;
    assert_eq!(err.payload["status"], "error");
    assert_eq!(err.payload["message"], "The row-level security check of a change failed");
    let err = slow_client.expect("system").await;
    assert_eq!(err.payload["message"], "The row-level security check of a change timed out");
    slow_client.quiet("postgres_changes", Duration::from_millis(200)).await;

    // The next change still reaches the fast subscriber at once, and in order.
    let t1 = Instant::now();
    sqlx::query("insert into public.feed values (2, 'two'), (3, 'three')").execute(db.pool()).await.unwrap();
    assert_eq!(change(&mut fast_client).await["data"]["record"]["id"], 2);
    assert_eq!(change(&mut fast_client).await["data"]["record"]["id"], 3);
    assert!(t1.elapsed() < Duration::from_millis(400), "waited {:?}", t1.elapsed());
    // The slow identity was taken out of the batched check and checked alone.
    assert!(node.realtime.stats("realtime").unwrap().checks_alone >= 1);
}

#[tokio::test]
async fn columns_the_role_may_not_select_are_left_out() {
    let (db, project) = database().await;
    sqlx::raw_sql(
        "create table public.people (id int primary key, name text, salary int);
         revoke all on public.people from authenticated;
         grant select (id, name) on public.people to authenticated;
         alter publication supabase_realtime add table public.people;",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let node = Node::start(&project, config()).await;
    let mut c = node.connect("2.0.0").await;
    let binding = json!({"event": "*", "schema": "public", "table": "people"});
    subscribe(&mut c, "realtime:people", binding.clone(), &node.user_token(uuid::Uuid::new_v4(), 3600)).await;
    let mut s = node.connect("2.0.0").await;
    subscribe(&mut s, "realtime:people", binding, &node.service_key()).await;
    sqlx::query("insert into public.people values (1, 'ann', 100)").execute(db.pool()).await.unwrap();
    let got = change(&mut c).await;
    assert_eq!(got["data"]["record"], json!({"id": 1, "name": "ann"}));
    let names: Vec<&str> =
        got["data"]["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["id", "name"]);
    assert_eq!(change(&mut s).await["data"]["record"], json!({"id": 1, "name": "ann", "salary": 100}));

    // A filter may not name a column the role may not select (its value could be probed).
    let probe =
        json!({"postgres_changes": [{"event": "*", "schema": "public", "table": "people", "filter": "salary=gt.50"}]});
    let (_, refused) = c.join("realtime:probe", probe, Some(&node.user_token(uuid::Uuid::new_v4(), 3600))).await;
    assert_eq!(refused.payload["response"]["reason"], "InvalidBinding: invalid column for filter salary");
    // A pattern that would compile to a large program is refused, not compiled.
    let big = json!({"postgres_changes": [{"event": "*", "schema": "public", "table": "people", "filter": "name=match.\\w{500}"}]});
    let (_, refused) = c.join("realtime:big", big, Some(&node.service_key())).await;
    assert_eq!(refused.payload["status"], "error", "{refused:?}");
}
