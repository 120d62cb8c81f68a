//! Private channels: `realtime.messages` policies decide who joins, receives and sends, and
//! `realtime.send` / `realtime.broadcast_changes` reach subscribers through the change stream.

mod common;

use std::time::Duration;

use common::{Node, database};
use forge_realtime::RealtimeConfig;
use serde_json::json;

const POLICIES: &str = "
    create policy read_own_room on realtime.messages for select to authenticated
      using (realtime.topic() = 'room:' || auth.uid()::text and realtime.messages.extension in ('broadcast', 'presence'));
    create policy send_own_room on realtime.messages for insert to authenticated
      with check (realtime.topic() = 'room:' || auth.uid()::text and realtime.messages.extension in ('broadcast', 'presence'));
    create policy read_lobby on realtime.messages for select to authenticated using (realtime.topic() = 'lobby');
";

fn config() -> RealtimeConfig {
    RealtimeConfig::default().with_poll_interval(Duration::from_millis(20))
}

#[tokio::test]
async fn policies_decide_who_joins_receives_and_sends() {
    let (db, project) = database().await;
    sqlx::raw_sql(POLICIES).execute(db.pool()).await.unwrap();
    let node = Node::start(&project, config()).await;
    let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let (ta, tb) = (node.user_token(alice, 3600), node.user_token(bob, 3600));
    let room = format!("realtime:room:{alice}");
    let private = json!({"private": true, "broadcast": {"self": true, "ack": true}});

    let mut a = node.connect("2.0.0").await;
    let (ja, ok) = a.join(&room, private.clone(), Some(&ta)).await;
    assert_eq!(ok.payload["status"], "ok", "{ok:?}");

    let mut b = node.connect("2.0.0").await;
    let (_, refused) = b.join(&room, private.clone(), Some(&tb)).await;
    assert_eq!(refused.payload["status"], "error");
    assert_eq!(
        refused.payload["response"]["reason"],
        format!("Unauthorized: You do not have permissions to read from this Channel topic: room:{alice}")
    );
    // Anon has no policy at all.
    let (_, anon) = b.join(&room, private.clone(), None).await;
    assert_eq!(anon.payload["status"], "error");

    // Alice may send in her room; a public channel of the same name is another channel.
    let mut public = node.connect("2.0.0").await;
    public.join(&room, json!({}), None).await;
    let r =
        a.push(Some(&ja), &room, "broadcast", json!({"type": "broadcast", "event": "m", "payload": {"x": 1}})).await;
    assert_eq!(a.expect("broadcast").await.payload["payload"], json!({"x": 1}));
    assert_eq!(a.expect("phx_reply").await.reference, json!(r));
    public.quiet("broadcast", Duration::from_millis(300)).await;

    // In the lobby both may read, neither may send: the broadcast is dropped without a reply.
    let mut bl = node.connect("1.0.0").await;
    let (jl, ok) = bl.join("realtime:lobby", private.clone(), Some(&tb)).await;
    assert_eq!(ok.payload["status"], "ok");
    bl.push(Some(&jl), "realtime:lobby", "broadcast", json!({"type": "broadcast", "event": "m", "payload": {}})).await;
    bl.quiet("broadcast", Duration::from_millis(300)).await;
    bl.quiet("phx_reply", Duration::from_millis(10)).await;

    // realtime.send from SQL reaches the private channel, and only it.
    sqlx::query("select realtime.send('{\"from\": \"sql\"}'::jsonb, 'note', $1, true)")
        .bind(format!("room:{alice}"))
        .execute(db.pool())
        .await
        .unwrap();
    let got = a.expect("broadcast").await;
    assert_eq!(got.payload["event"], "note");
    assert_eq!(got.payload["payload"]["from"], "sql");
    public.quiet("broadcast", Duration::from_millis(300)).await;

    // REST: the service role sends anywhere; Bob's private message to Alice's room is dropped.
    let http = reqwest::Client::new();
    let send = |token: String, event: &'static str| {
        http.post(node.http("/api/broadcast"))
            .header("apikey", node.anon_key())
            .bearer_auth(token)
            .json(&json!({"messages": [{"topic": format!("room:{alice}"), "event": event, "payload": {}, "private": true}]}))
            .send()
    };
    assert_eq!(send(tb.clone(), "from-bob").await.unwrap().status(), 202);
    assert_eq!(send(node.service_key(), "from-service").await.unwrap().status(), 202);
    assert_eq!(a.expect("broadcast").await.payload["event"], "from-service");
}

#[tokio::test]
async fn broadcast_changes_triggers_and_replay_reach_private_channels() {
    let (db, project) = database().await;
    sqlx::raw_sql(POLICIES).execute(db.pool()).await.unwrap();
    sqlx::raw_sql(
        "create table public.items (id int primary key, name text);
         create function public.items_changed() returns trigger language plpgsql security definer as $$
         begin
           perform realtime.broadcast_changes('lobby', tg_op, tg_op, tg_table_name, tg_table_schema, new, old);
           return null;
         end $$;
         create trigger items_changed after insert or update or delete on public.items
           for each row execute function public.items_changed();",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let node = Node::start(&project, config()).await;
    let user = uuid::Uuid::new_v4();
    let token = node.user_token(user, 3600);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;

    let mut c = node.connect("2.0.0").await;
    let (_, ok) = c.join("realtime:lobby", json!({"private": true}), Some(&token)).await;
    assert_eq!(ok.payload["status"], "ok");
    sqlx::query("insert into public.items values (1, 'first')").execute(db.pool()).await.unwrap();
    let got = c.expect("broadcast").await;
    assert_eq!(got.payload["event"], "INSERT");
    assert_eq!(got.payload["payload"]["record"], json!({"id": 1, "name": "first"}));
    assert_eq!(got.payload["payload"]["operation"], "INSERT");
    assert!(got.payload["meta"]["id"].is_string());

    // A later join with replay gets the message again, marked replayed.
    let mut late = node.connect("1.0.0").await;
    let (_, ok) = late
        .join(
            "realtime:lobby",
            json!({"private": true, "broadcast": {"replay": {"since": since, "limit": 10}}}),
            Some(&token),
        )
        .await;
    assert_eq!(ok.payload["status"], "ok", "{ok:?}");
    let replayed = late.expect("broadcast").await;
    assert_eq!(replayed.payload["event"], "INSERT");
    assert_eq!(replayed.payload["meta"]["replayed"], true);

    // Replay is refused on a public channel.
    let (_, refused) = late.join("realtime:open", json!({"broadcast": {"replay": {"since": since}}}), None).await;
    assert_eq!(
        refused.payload["response"]["reason"],
        "UnableToReplayMessages: Replay is not allowed for public channels"
    );
}

#[tokio::test]
async fn presence_read_alone_gives_presence_and_no_broadcasts() {
    let (db, project) = database().await;
    sqlx::raw_sql(
        "create policy stage_presence on realtime.messages for select to authenticated
           using (realtime.topic() = 'stage' and realtime.messages.extension = 'presence');
         create policy stage_track on realtime.messages for insert to authenticated
           with check (realtime.topic() = 'stage' and realtime.messages.extension = 'presence');",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let node = Node::start(&project, config()).await;
    let token = node.user_token(uuid::Uuid::new_v4(), 3600);
    let mut c = node.connect("2.0.0").await;
    // Without presence enabled, presence read is not enough to join.
    let (_, refused) = c.join("realtime:stage", json!({"private": true}), Some(&token)).await;
    assert_eq!(refused.payload["status"], "error");
    let (jr, ok) = c
        .join("realtime:stage", json!({"private": true, "presence": {"key": "me", "enabled": true}}), Some(&token))
        .await;
    assert_eq!(ok.payload["status"], "ok", "{ok:?}");
    c.expect("presence_state").await;
    c.push(Some(&jr), "realtime:stage", "presence", json!({"type": "presence", "event": "track", "payload": {"a": 1}}))
        .await;
    assert_eq!(c.expect("presence_diff").await.payload["joins"]["me"]["metas"][0]["a"], 1);
    // A broadcast from the service role over REST does not reach it.
    let res = reqwest::Client::new()
        .post(node.http("/api/broadcast"))
        .header("apikey", node.anon_key())
        .bearer_auth(node.service_key())
        .json(&json!({"messages": [{"topic": "stage", "event": "e", "payload": {}, "private": true}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    c.quiet("broadcast", Duration::from_millis(400)).await;
}

#[tokio::test]
async fn private_presence_is_its_own_and_follows_the_presence_policy() {
    let (db, project) = database().await;
    sqlx::raw_sql(POLICIES).execute(db.pool()).await.unwrap();
    sqlx::raw_sql(
        "create policy ops_broadcast_only on realtime.messages for select to authenticated
           using (realtime.topic() = 'ops' and realtime.messages.extension = 'broadcast');
         create policy ops_track on realtime.messages for insert to authenticated
           with check (realtime.topic() = 'ops');",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let node = Node::start(&project, config()).await;
    let alice = uuid::Uuid::new_v4();
    let room = format!("realtime:room:{alice}");
    let mut a = node.connect("2.0.0").await;
    let (ja, _) = a
        .join(
            &room,
            json!({"private": true, "presence": {"key": "alice", "enabled": true}}),
            Some(&node.user_token(alice, 3600)),
        )
        .await;
    a.expect("presence_state").await;
    a.push(Some(&ja), &room, "presence", json!({"type": "presence", "event": "track", "payload": {"secret": 1}})).await;
    a.expect("presence_diff").await;

    // A public channel of the same name sees none of it, and cannot add to it.
    let mut m = node.connect("2.0.0").await;
    let (jm, _) = m.join(&room, json!({"presence": {"key": "mallory", "enabled": true}}), None).await;
    assert_eq!(m.expect("presence_state").await.payload, json!({}));
    m.push(Some(&jm), &room, "presence", json!({"type": "presence", "event": "track", "payload": {"x": 1}})).await;
    assert!(m.expect("presence_diff").await.payload["joins"].get("mallory").is_some());
    a.quiet("presence_diff", Duration::from_millis(300)).await;

    // Broadcast read without presence read: no presence_state, no diffs.
    let carol = uuid::Uuid::new_v4();
    let mut c = node.connect("2.0.0").await;
    let (jc, _) = c
        .join(
            "realtime:ops",
            json!({"private": true, "presence": {"key": "carol", "enabled": true}}),
            Some(&node.user_token(carol, 3600)),
        )
        .await;
    c.push(
        Some(&jc),
        "realtime:ops",
        "presence",
        json!({"type": "presence", "event": "track", "payload": {"where": "x"}}),
    )
    .await;
    c.quiet("presence_state", Duration::from_millis(300)).await;
    c.quiet("presence_diff", Duration::from_millis(10)).await;
}
