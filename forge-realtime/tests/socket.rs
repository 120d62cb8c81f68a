//! The Phoenix protocol end to end over a real socket: handshake, join, heartbeat, broadcast,
//! presence, leave, tokens and limits, in both serializers.

mod common;

use std::time::Duration;

use common::{Node, database};
use forge_realtime::RealtimeConfig;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn config() -> RealtimeConfig {
    RealtimeConfig::default().with_changes(false)
}

#[tokio::test]
async fn handshake_needs_a_key_and_a_known_serializer() {
    let (_db, project) = database().await;
    let node = Node::start(&project, config()).await;
    let http = reqwest::Client::new();

    let missing = http.get(node.http("/websocket?vsn=2.0.0")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.json::<serde_json::Value>().await.unwrap(), json!({"error": "API key is missing"}));

    let bad = http.get(node.http("/websocket?apikey=nope&vsn=2.0.0")).send().await.unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.json::<serde_json::Value>().await.unwrap(),
        json!({"error": "The token provided is not a valid JWT"})
    );

    let err = node.connect_with(&format!("apikey={}&vsn=9.9.9", node.anon_key()), "2.0.0").await.unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");

    // The key may come as x-api-key (the gateway's way); a plain GET is not an upgrade.
    let plain = http.get(node.http("/websocket?vsn=2.0.0")).header("x-api-key", node.anon_key()).send().await.unwrap();
    assert_eq!(plain.status(), 400);
}

#[tokio::test]
async fn heartbeat_join_and_leave_in_both_serializers() {
    let (_db, project) = database().await;
    let node = Node::start(&project, config()).await;
    for vsn in ["1.0.0", "2.0.0"] {
        let mut c = node.connect(vsn).await;
        let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
        let hb = c.next().await;
        assert_eq!((hb.topic.as_str(), hb.event.as_str()), ("phoenix", "phx_reply"));
        assert_eq!(hb.reference, json!(r));
        assert_eq!(hb.payload, json!({"status": "ok", "response": {}}));

        let (first, _) = c.join("realtime:room-ü", json!({}), None).await;
        // A second join of the topic closes the first (Phoenix's duplicate join).
        let jr = c.next_ref();
        let payload = json!({"config": {"broadcast": {"self": true}}, "access_token": node.anon_key()});
        let sent = c.push(Some(&jr.clone()), "realtime:room-ü", "phx_join", payload).await;
        let close = c.next().await;
        assert_eq!((close.event.as_str(), close.join_ref.clone()), ("phx_close", json!(first)));
        let reply = c.next().await;
        assert_eq!((reply.event.as_str(), reply.reference.clone()), ("phx_reply", json!(sent)));
        assert_eq!(reply.join_ref, json!(jr));
        assert_eq!(reply.payload, json!({"status": "ok", "response": {"postgres_changes": []}}));

        let r = c.push(Some(&jr), "realtime:room-ü", "phx_leave", json!({})).await;
        let ok = c.expect("phx_reply").await;
        assert_eq!((ok.reference, ok.payload["status"].clone()), (json!(r), json!("ok")));
        let close = c.expect("phx_close").await;
        assert_eq!((close.join_ref, close.reference), (json!(jr), json!(jr)));

        // An empty topic name is refused with Supabase's reason.
        let (_, refused) = c.join("realtime:", json!({}), None).await;
        assert_eq!(refused.payload["status"], "error");
        assert_eq!(refused.payload["response"]["reason"], "TopicNameRequired: You must provide a topic name");

        // A client's Close is answered with a Close (a clean 1000, not an abnormal 1006).
        c.ws.close(None).await.unwrap();
        let reply =
            tokio::time::timeout(Duration::from_secs(5), futures_util::StreamExt::next(&mut c.ws)).await.unwrap();
        assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
    }
}

#[tokio::test]
async fn broadcast_reaches_others_and_self_only_when_asked_with_ack() {
    let (_db, project) = database().await;
    let node = Node::start(&project, config()).await;
    let topic = "realtime:room1";
    let mut a = node.connect("2.0.0").await;
    let mut b = node.connect("1.0.0").await;
    let (ja, _) = a.join(topic, json!({"broadcast": {"self": false, "ack": true}}), None).await;
    let (jb, _) = b.join(topic, json!({"broadcast": {"self": true}}), None).await;

    // JSON broadcast from a v2 client: acked, not echoed to the sender, delivered to v1.
    let r =
        a.push(Some(&ja), topic, "broadcast", json!({"type": "broadcast", "event": "hi", "payload": {"n": "ü"}})).await;
    let ack = a.expect("phx_reply").await;
    assert_eq!((ack.reference, ack.payload), (json!(r), json!({"status": "ok", "response": {}})));
    let got = b.expect("broadcast").await;
    assert_eq!(got.payload, json!({"type": "broadcast", "event": "hi", "payload": {"n": "ü"}}));
    assert_eq!((got.join_ref, got.reference), (json!(null), json!(null)));
    a.quiet("broadcast", Duration::from_millis(300)).await;

    // b asked for self: its own broadcast comes back; a gets it too.
    b.push(Some(&jb), topic, "broadcast", json!({"type": "broadcast", "event": "yo", "payload": {"x": 1}})).await;
    assert_eq!(b.expect("broadcast").await.payload["event"], "yo");
    assert_eq!(a.expect("broadcast").await.payload["payload"], json!({"x": 1}));

    // A binary kind-3 push from a v2 client: JSON payloads reach v1 as text, v2 as text.
    let mut frame = vec![3, ja.len() as u8, 2, topic.len() as u8, 3, 0, 1];
    frame.extend_from_slice(ja.as_bytes());
    frame.extend_from_slice(b"99");
    frame.extend_from_slice(topic.as_bytes());
    frame.extend_from_slice(b"bin");
    frame.extend_from_slice(br#"{"k":[1,2]}"#);
    a.send_raw(Message::binary(frame)).await;
    let ack = a.expect("phx_reply").await;
    assert_eq!(ack.reference, json!("99"));
    assert_eq!(
        b.expect("broadcast").await.payload,
        json!({"type": "broadcast", "event": "bin", "payload": {"k": [1, 2]}})
    );

    // Raw bytes reach v2 sockets as kind 4 and never v1 ones.
    let mut c = node.connect("2.0.0").await;
    c.join(topic, json!({}), None).await;
    let mut raw = vec![3, ja.len() as u8, 0, topic.len() as u8, 3, 0, 0];
    raw.extend_from_slice(ja.as_bytes());
    raw.extend_from_slice(topic.as_bytes());
    raw.extend_from_slice(b"raw\x00\x01\xff");
    a.send_raw(Message::binary(raw)).await;
    let bin = c.expect("binary").await;
    let mut expected = vec![4u8, topic.len() as u8, 3, 0, 0];
    expected.extend_from_slice(topic.as_bytes());
    expected.extend_from_slice(b"raw\x00\x01\xff");
    assert_eq!(bin.payload, json!(expected));
    b.quiet("broadcast", Duration::from_millis(300)).await;
}

#[tokio::test]
async fn presence_state_comes_before_diffs_and_leaves_on_disconnect() {
    let (_db, project) = database().await;
    let node = Node::start(&project, config()).await;
    let topic = "realtime:lobby";
    let mut a = node.connect("2.0.0").await;
    let (ja, _) = a.join(topic, json!({"presence": {"key": "alice", "enabled": true}}), None).await;
    let state = a.expect("presence_state").await;
    assert_eq!(state.payload, json!({}));
    assert_eq!(state.join_ref, json!(ja));
    assert_eq!(state.reference, json!(null));

    a.push(Some(&ja), topic, "presence", json!({"type": "presence", "event": "track", "payload": {"mood": "ok"}}))
        .await;
    let diff = a.expect("presence_diff").await;
    let metas = &diff.payload["joins"]["alice"]["metas"];
    assert_eq!(metas[0]["mood"], "ok");
    assert!(metas[0]["phx_ref"].is_string());
    assert_eq!(diff.payload["leaves"], json!({}));

    let mut b = node.connect("1.0.0").await;
    let (jb, _) = b.join(topic, json!({"presence": {"key": "bob", "enabled": true}}), None).await;
    let state = b.expect("presence_state").await;
    assert_eq!(state.payload["alice"]["metas"][0]["mood"], "ok");

    // A track that is not a map is refused and the channel stays open.
    let r = b.push(Some(&jb), topic, "presence", json!({"type": "presence", "event": "track", "payload": 5})).await;
    let refused = b.expect("phx_reply").await;
    assert_eq!(refused.reference, json!(r));
    assert_eq!(refused.payload["response"]["reason"], "Presence track payload must be a map");

    b.push(Some(&jb), topic, "presence", json!({"type": "presence", "event": "track", "payload": {"mood": "meh"}}))
        .await;
    let diff = a.expect("presence_diff").await;
    assert_eq!(diff.payload["joins"]["bob"]["metas"][0]["mood"], "meh");

    // Re-tracking replaces the meta: a leave and a join in one diff.
    b.push(Some(&jb), topic, "presence", json!({"type": "presence", "event": "track", "payload": {"mood": "good"}}))
        .await;
    let diff = a.expect("presence_diff").await;
    assert_eq!(diff.payload["joins"]["bob"]["metas"][0]["mood"], "good");
    assert_eq!(diff.payload["leaves"]["bob"]["metas"][0]["mood"], "meh");

    drop(b);
    let diff = a.expect("presence_diff").await;
    assert_eq!(diff.payload["leaves"]["bob"]["metas"][0]["mood"], "good");
    assert_eq!(diff.payload["joins"], json!({}));

    a.push(Some(&ja), topic, "presence", json!({"type": "presence", "event": "untrack"})).await;
    let diff = a.expect("presence_diff").await;
    assert_eq!(diff.payload["leaves"]["alice"]["metas"][0]["mood"], "ok");
}

#[tokio::test]
async fn an_expired_channel_token_closes_that_channel_only() {
    let (_db, project) = database().await;
    let node = Node::start(&project, config()).await;
    let user = uuid::Uuid::new_v4();
    let mut c = node.connect("2.0.0").await;
    let (j1, _) = c.join("realtime:short", json!({}), Some(&node.user_token(user, 2))).await;
    let (_j2, _) = c.join("realtime:long", json!({}), Some(&node.user_token(user, 3600))).await;
    let system = c.expect("system").await;
    assert_eq!(system.topic, "realtime:short");
    assert_eq!(system.payload["extension"], "system");
    assert_eq!(system.payload["status"], "error");
    assert_eq!(system.payload["channel"], "short");
    assert!(system.payload["message"].as_str().unwrap().starts_with("Token has expired"), "{system:?}");
    let close = c.expect("phx_close").await;
    assert_eq!((close.topic.as_str(), close.join_ref), ("realtime:short", json!(j1)));

    // The other channel still works.
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(c.expect("phx_reply").await.reference, json!(r));

    // An expired token at join is refused with the number of seconds.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({"sub": user, "role": "authenticated", "aud": "authenticated", "exp": now - 300});
    let stale = node.project.keys().sign(claims.as_object().unwrap()).unwrap();
    let (_, refused) = c.join("realtime:stale", json!({}), Some(&stale)).await;
    let reason = refused.payload["response"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("InvalidJWTToken: Token has expired 30"), "{reason}");

    // A refreshed token that does not verify shuts the channel down with its message.
    let (_, _) = c.join("realtime:refresh", json!({}), Some(&node.user_token(user, 3600))).await;
    c.push(None, "realtime:refresh", "access_token", json!({"access_token": "not.a.jwt"})).await;
    let system = c.expect("system").await;
    assert_eq!(system.topic, "realtime:refresh");
    assert_eq!(system.payload["message"], "The token provided is not a valid JWT");
    c.expect("phx_close").await;
}

#[tokio::test]
async fn limits_answer_as_supabase_does() {
    let (_db, project) = database().await;
    let limits = config()
        .with_max_channels_per_client(2)
        .with_max_events_per_second(3)
        .with_max_payload_bytes(100)
        .with_max_joins_per_second(6)
        .with_max_connections(3);
    let node = Node::start(&project, limits).await;
    let mut c = node.connect("2.0.0").await;
    c.join("realtime:a", json!({}), None).await;
    let (jb, _) = c.join("realtime:b", json!({"broadcast": {"ack": true}}), None).await;
    let (_, refused) = c.join("realtime:c", json!({}), None).await;
    assert_eq!(refused.payload["response"]["reason"], "ChannelRateLimitReached: Too many channels");

    // Over the payload size: dropped, and with ack an error reply.
    let r = c
        .push(
            Some(&jb),
            "realtime:b",
            "broadcast",
            json!({"type": "broadcast", "event": "e", "payload": {"x": "y".repeat(200)}}),
        )
        .await;
    let reply = c.expect("phx_reply").await;
    assert_eq!((reply.reference, reply.payload["status"].clone()), (json!(r), json!("error")));
    assert_eq!(reply.payload["response"]["reason"], "payload_size_exceeded");

    // Over the events per second: the channel is shut down.
    for _ in 0..4 {
        c.push(Some(&jb), "realtime:b", "broadcast", json!({"type": "broadcast", "event": "e", "payload": {}})).await;
    }
    let system = c.expect("system").await;
    assert_eq!(system.payload["message"], "Too many messages per second");
    c.expect("phx_close").await;

    // Connections over the limit are refused at the handshake.
    let _c2 = node.connect("2.0.0").await;
    let _c3 = node.connect("2.0.0").await;
    let err = node.connect_with(&format!("apikey={}&vsn=2.0.0", node.anon_key()), "2.0.0").await.unwrap_err();
    assert!(err.to_string().contains("429"), "{err}");

    // Joins over the per-second limit are refused and the socket is closed.
    drop(_c2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut d = node.connect("2.0.0").await;
    let mut reasons = Vec::new();
    for i in 0..20 {
        let (_, reply) = d.join(&format!("realtime:j{i}"), json!({}), None).await;
        if reply.payload["status"] == "error" {
            reasons.push(reply.payload["response"]["reason"].as_str().unwrap().to_owned());
            break;
        }
        d.push(None, &format!("realtime:j{i}"), "phx_leave", json!({})).await;
    }
    assert_eq!(reasons, ["ClientJoinRateLimitReached: Too many joins per second"]);
    assert!(d.next_within(Duration::from_secs(2)).await.is_none_or(|f| f.event != "phx_reply"));
}

#[tokio::test]
async fn rest_broadcasts_answer_202_and_reach_the_channel() {
    let (_db, project) = database().await;
    let node = Node::start(&project, config()).await;
    let mut c = node.connect("1.0.0").await;
    c.join("realtime:news", json!({}), None).await;
    let http = reqwest::Client::new();
    let res = http
        .post(node.http("/api/broadcast"))
        .header("apikey", node.anon_key())
        .json(&json!({"messages": [{"topic": "news", "event": "flash", "payload": {"a": 1}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        c.expect("broadcast").await.payload,
        json!({"type": "broadcast", "event": "flash", "payload": {"a": 1}})
    );

    let res = http
        .post(node.http("/api/broadcast/news/events/one%20two?apikey=x&vsn=2.0.0"))
        .header("apikey", node.anon_key())
        .json(&json!({"b": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        c.expect("broadcast").await.payload,
        json!({"type": "broadcast", "event": "one two", "payload": {"b": 2}})
    );

    let bad = http
        .post(node.http("/api/broadcast"))
        .header("apikey", node.anon_key())
        .header("content-type", "application/json")
        .body("{\"messages\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.json::<serde_json::Value>().await.unwrap()["message"].is_string());

    let unauthenticated = http.post(node.http("/api/broadcast")).json(&json!({"messages": []})).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
}
