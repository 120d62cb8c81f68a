//! The WebSocket: the handshake, then one task per socket that reads frames, answers them and
//! writes what the project's fan-out queues for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, ws::rejection::WebSocketUpgradeRejection};
use axum::response::Response;
use forge_core::{Principal, Project, WireFormat};
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::authz::{self, Access, AuthzError, ReplayParams};
use crate::changes::{self, Binding};
use crate::error::{Error, ErrorKind};
use crate::protocol::{self, Body, Inbound, InboundPayload, Vsn};
use crate::service::Realtime;
use crate::tenant::{Member, Out, Tenant, next_id};

/// The most `postgres_changes` bindings one join may carry.
const MAX_BINDINGS: usize = 100;

/// The most frames queued for one socket before it counts as too slow and is closed.
const QUEUE: usize = 1024;

/// `GET /websocket?apikey=...&vsn=...`: checks the key (`x-api-key` first, as Supabase's
/// gateway passes it), the project's connection limit and the serializer, then upgrades.
pub(crate) async fn upgrade(
    Extension(realtime): Extension<Realtime>,
    project: Project,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let refuse = |e: Error| e.render(WireFormat::RealtimeSocket);
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.get("apikey").cloned())
        .filter(|k| !k.trim().is_empty());
    let Some(key) = key else {
        return refuse(Error::new(ErrorKind::MissingApiKey, "API key is missing"));
    };
    let principal = match principal_for(&project, &key, false) {
        Ok(p) => p,
        Err(e) => return refuse(e),
    };
    let Some(vsn) = Vsn::parse(params.get("vsn").map(String::as_str)) else {
        return refuse(Error::new(ErrorKind::UnsupportedVersion, "The serializer version (vsn) is not supported"));
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return refuse(Error::new(ErrorKind::NotAWebSocket, e.body_text())),
    };
    let tenant = match realtime.tenant(&project).await {
        Ok(t) => t,
        Err(e) => return refuse(e),
    };
    let config = realtime.config();
    if tenant.connections.load(Ordering::Relaxed) >= config.max_connections {
        return refuse(Error::new(ErrorKind::TooManyConnections, "Too many connected users"));
    }
    let limit = config.max_payload_bytes + 64 * 1024;
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve(tenant, socket, vsn, principal, key))
}

/// The principal a key or token stands for: one of the project's keys, or a JWT that
/// verifies and names a role (Supabase also takes a user's JWT as the socket's `apikey`). An
/// expired token's message says how long ago when `age` is set (a join's wording; a
/// handshake answers Supabase's plain "Token has expired").
fn principal_for(project: &Project, token: &str, age: bool) -> Result<Principal, Error> {
    let keys = project.keys();
    let refused = match keys.authenticate(Some(token.as_bytes()), None) {
        Ok(p) => return Ok(p),
        Err(e) => e,
    };
    if token.starts_with("sb_") {
        return Err(Error::token(&refused));
    }
    // `verify_jwt` requires `exp`; the role is Realtime's own requirement.
    match keys.verify_jwt(token) {
        Ok(claims) if claims.role().is_some() => Ok(Principal::from_claims(claims)),
        Ok(_) => Err(Error::new(ErrorKind::InvalidToken, "Fields `role` and `exp` are required in JWT")),
        Err(e) if age && e.code == forge_core::ErrorCode::JwtExpired => {
            let ago = unverified_exp(token).map_or(0, |exp| (now_secs() - exp).max(0));
            Err(Error::new(ErrorKind::InvalidToken, format!("Token has expired {ago} seconds ago")))
        }
        Err(e) => Err(Error::token(&e)),
    }
}

/// One channel of this socket.
#[derive(Debug)]
struct Joined {
    member: Arc<Member>,
    /// The channel's token's expiry.
    expires: Option<Instant>,
    /// The token the channel was joined or last refreshed with.
    token: Option<String>,
    /// On a private channel: what its policies let it send, asked on first send.
    writes: Option<Access>,
}

struct Conn {
    tenant: Arc<Tenant>,
    id: u64,
    vsn: Vsn,
    tx: mpsc::Sender<Out>,
    principal: Principal,
    key: String,
    channels: HashMap<Arc<str>, Joined>,
    /// Set when a frame could not be queued: the socket is too slow and is closed.
    lagged: Arc<AtomicBool>,
    /// Set to close the socket after the frames queued so far.
    closing: bool,
}

/// Serves one socket. Frames are handled in a boxed future, so an idle socket's task holds
/// only this loop's state, not the largest handler's.
async fn serve(tenant: Arc<Tenant>, socket: WebSocket, vsn: Vsn, principal: Principal, key: String) {
    tenant.connections.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let mut conn = Conn {
        tenant: tenant.clone(),
        id: next_id(),
        vsn,
        tx,
        principal,
        key,
        channels: HashMap::new(),
        lagged: Arc::new(AtomicBool::new(false)),
        closing: false,
    };
    let (mut sink, mut stream) = socket.split();
    let silence = tenant.realtime.config().heartbeat_timeout;
    // The two timers live across iterations and are moved only when their instant changes:
    // a socket woken for every broadcast does not register and drop a timer each time.
    let idle = tokio::time::sleep(silence);
    tokio::pin!(idle);
    let never = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut expiry_at: Option<Instant> = None;
    let expiry = tokio::time::sleep_until(never);
    tokio::pin!(expiry);
    loop {
        let next = conn.next_expiry();
        if next != expiry_at {
            expiry_at = next;
            expiry.as_mut().reset(next.unwrap_or(never));
        }
        tokio::select! {
            frame = stream.next() => {
                idle.as_mut().reset(Instant::now() + silence);
                match frame {
                    Some(Ok(Message::Text(text))) => match protocol::decode_text(vsn, text.as_str()) {
                        Ok(inbound) => Box::pin(conn.handle(inbound)).await,
                        Err(e) => tracing::debug!(error = %e, "realtime: a frame that does not decode"),
                    },
                    Some(Ok(Message::Binary(bytes))) => match protocol::decode_binary(&bytes) {
                        Ok(inbound) => Box::pin(conn.handle(inbound)).await,
                        Err(e) => tracing::debug!(error = %e, "realtime: a binary frame that does not decode"),
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                }
            }
            Some(out) = rx.recv() => {
                let mut batch = vec![out];
                while batch.len() < 64 {
                    match rx.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let mut frames = Vec::with_capacity(batch.len());
                for out in batch {
                    conn.outbound(out, &mut frames);
                }
                if write(&mut sink, frames, silence).await.is_err() {
                    break;
                }
                if conn.lagged.load(Ordering::Relaxed) {
                    tracing::warn!(socket = conn.id, "realtime socket fell behind; closing it");
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1013, reason: Utf8Bytes::from_static("too slow") }))).await;
                    break;
                }
            }
            () = &mut expiry, if expiry_at.is_some() => conn.expire(),
            () = &mut idle => {
                tracing::debug!(socket = conn.id, "realtime socket silent for too long; closing it");
                break;
            }
        }
        if conn.closing {
            // Flush what is queued (the refusal), then close.
            let mut frames = Vec::new();
            while let Ok(out) = rx.try_recv() {
                conn.outbound(out, &mut frames);
            }
            let _ = write(&mut sink, frames, silence).await;
            let _ = sink.send(Message::Close(None)).await;
            break;
        }
    }
    // Completes the closing handshake: a client's Close is answered (tungstenite queued the
    // reply; this flushes it), ours is sent if it was not yet.
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    conn.leave_all();
    tenant.connections.fetch_sub(1, Ordering::Relaxed);
}

async fn write(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    frames: Vec<Message>,
    timeout: Duration,
) -> Result<(), ()> {
    let send = async {
        for f in frames {
            sink.feed(f).await?;
        }
        sink.flush().await
    };
    match tokio::time::timeout(timeout, send).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Seconds since the epoch.
fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// When a token's `exp` falls, as an instant.
fn expiry_of(principal: &Principal) -> Option<Instant> {
    let exp = principal.claims().get("exp").and_then(Value::as_i64)?;
    let left = exp.saturating_sub(now_secs()).max(0) as u64;
    Some(Instant::now() + Duration::from_secs(left))
}

/// The `exp` of a token that did not verify, read without verifying, for the message.
fn unverified_exp(token: &str) -> Option<i64> {
    use base64::Engine as _;
    let body = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?.get("exp")?.as_i64()
}

impl Conn {
    fn reply(&self, join_ref: Option<&str>, reference: Option<&str>, topic: &str, status: &str, response: Value) {
        let payload = json!({ "status": status, "response": response });
        self.push(protocol::encode(self.vsn, join_ref, reference, topic, "phx_reply", &payload));
    }

    fn push(&self, frame: Message) {
        if self.tx.try_send(Out::Frame(frame)).is_err() {
            self.lagged.store(true, Ordering::Relaxed);
        }
    }

    /// Turns a queued item into frames (a shutdown also leaves the channel).
    fn outbound(&mut self, out: Out, frames: &mut Vec<Message>) {
        match out {
            Out::Frame(f) => frames.push(f),
            Out::Shutdown { topic, join_ref, message, ok } => {
                let Some(joined) = self.channels.get(&topic) else { return };
                if joined.member.join_ref != join_ref {
                    return;
                }
                let member = joined.member.clone();
                frames.extend(self.shutdown_frames(&member, &message, ok));
                self.leave(&topic);
            }
        }
    }

    fn shutdown_frames(&self, member: &Member, message: &str, ok: bool) -> [Message; 2] {
        let jr = Some(&*member.join_ref);
        [
            member.system_frame("system", ok, message),
            protocol::encode(self.vsn, jr, jr, &member.topic, "phx_close", &json!({})),
        ]
    }

    /// Shuts a channel down now: a `system` error, `phx_close`, and it leaves.
    fn shutdown(&mut self, topic: &str, message: &str) {
        let Some(joined) = self.channels.get(topic) else { return };
        let member = joined.member.clone();
        for f in self.shutdown_frames(&member, message, false) {
            self.push(f);
        }
        self.leave(topic);
    }

    fn leave(&mut self, topic: &str) {
        if let Some(joined) = self.channels.remove(topic) {
            self.tenant.remove(&joined.member);
        }
    }

    fn leave_all(&mut self) {
        for (_, joined) in self.channels.drain() {
            self.tenant.remove(&joined.member);
        }
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.channels.values().filter_map(|j| j.expires).min()
    }

    /// Shuts down the channels whose token has expired.
    fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<(Arc<str>, i64)> = self
            .channels
            .iter()
            .filter(|(_, j)| j.expires.is_some_and(|e| e <= now))
            .map(|(t, j)| {
                let exp = j.member.principal().claims().get("exp").and_then(Value::as_i64).unwrap_or_else(now_secs);
                (t.clone(), exp)
            })
            .collect();
        for (topic, exp) in expired {
            let ago = (now_secs() - exp).max(0);
            self.shutdown(&topic, &format!("Token has expired {ago} seconds ago"));
        }
    }

    async fn handle(&mut self, inbound: Inbound) {
        let Inbound { join_ref, reference, topic, event, payload } = inbound;
        let (jr, r) = (join_ref.as_deref(), reference.as_deref());
        if topic == "phoenix" && event == "heartbeat" {
            self.reply(None, r, "phoenix", "ok", json!({}));
            return;
        }
        match (event.as_str(), payload) {
            ("phx_join", InboundPayload::Json(p)) => self.join(jr, r, &topic, p).await,
            ("phx_leave", _) => {
                let Some(joined) = self.channels.get(topic.as_str()) else {
                    self.reply(jr, r, &topic, "ok", json!({}));
                    return;
                };
                let join_ref = joined.member.join_ref.clone();
                self.reply(Some(&join_ref), r, &topic, "ok", json!({}));
                self.push(protocol::encode(
                    self.vsn,
                    Some(&join_ref),
                    Some(&join_ref),
                    &topic,
                    "phx_close",
                    &json!({}),
                ));
                self.leave(&topic);
            }
            ("access_token", InboundPayload::Json(p)) => self.refresh(&topic, &p).await,
            ("broadcast", InboundPayload::Broadcast { event, body }) => self.broadcast(r, &topic, &event, body).await,
            ("broadcast", InboundPayload::Json(p)) => {
                let event = p.get("event").and_then(Value::as_str).unwrap_or_default().to_owned();
                let body = Body::Json(p.get("payload").cloned().unwrap_or(Value::Null));
                self.broadcast(r, &topic, &event, body).await;
            }
            ("presence", InboundPayload::Json(p)) => self.presence(jr, r, &topic, &p).await,
            _ => {
                if !self.channels.contains_key(topic.as_str()) {
                    self.reply(jr, r, &topic, "error", json!({ "reason": "unmatched topic" }));
                }
            }
        }
    }

    /// A join's token: its `access_token` (or `user_token`), else the socket's key. API keys
    /// (`sb_...`) always stand for the socket's key.
    fn join_principal(&self, payload: &Value) -> Result<(Principal, Option<String>), Error> {
        let token = ["access_token", "user_token"]
            .iter()
            .find_map(|k| payload.get(*k).and_then(Value::as_str))
            .filter(|t| !t.is_empty() && !t.starts_with("sb_"));
        let Some(token) = token else {
            return Ok((self.principal.clone(), None));
        };
        if token == self.key {
            return Ok((self.principal.clone(), Some(token.to_owned())));
        }
        let principal = self.verify(token)?;
        Ok((principal, Some(token.to_owned())))
    }

    fn verify(&self, token: &str) -> Result<Principal, Error> {
        principal_for(&self.tenant.project, token, true)
    }

    async fn join(&mut self, join_ref: Option<&str>, reference: Option<&str>, topic: &str, payload: Value) {
        let jr = join_ref.or(reference).unwrap_or_default().to_owned();
        match self.try_join(&jr, reference.unwrap_or(&jr), topic, &payload).await {
            Ok(()) => {}
            Err((e, disconnect)) => {
                self.reply(Some(&jr), reference, topic, "error", json!({ "reason": e.reason() }));
                if disconnect {
                    self.closing = true;
                }
            }
        }
    }

    async fn try_join(&mut self, jr: &str, reference: &str, topic: &str, payload: &Value) -> Result<(), (Error, bool)> {
        let Some(name) = topic.strip_prefix("realtime:") else {
            return Err((Error::new(ErrorKind::TopicNameRequired, "You must provide a topic name"), false));
        };
        if name.is_empty() {
            return Err((Error::new(ErrorKind::TopicNameRequired, "You must provide a topic name"), false));
        }
        // A second join of a topic replaces the first, as Phoenix does: the first is closed.
        if let Some(old) = self.channels.get(topic) {
            let jr = old.member.join_ref.clone();
            self.push(protocol::encode(self.vsn, Some(&jr), Some(&jr), topic, "phx_close", &json!({})));
            self.leave(topic);
        }
        let config = self.tenant.realtime.config().clone();
        if !self.tenant.joins.allow(config.max_joins_per_second) {
            return Err((Error::new(ErrorKind::TooManyJoins, "Too many joins per second"), true));
        }
        if self.channels.len() >= config.max_channels_per_client {
            return Err((Error::new(ErrorKind::TooManyChannels, "Too many channels"), false));
        }
        let (principal, token) = self.join_principal(payload).map_err(|e| (e, false))?;
        let settings = payload.get("config").cloned().unwrap_or(Value::Null);
        let flag = |path: &[&str]| {
            let mut at = &settings;
            for p in path {
                at = &at[*p];
            }
            at.as_bool().unwrap_or(false)
        };
        let private = flag(&["private"]);
        let presence_enabled = flag(&["presence", "enabled"]);
        let presence_key = match settings["presence"]["key"].as_str() {
            Some(k) if !k.is_empty() => k.to_owned(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let replay = match ReplayParams::from_json(&settings["broadcast"]["replay"]) {
            Ok(r) => r,
            Err(_) => return Err((Error::new(ErrorKind::UnableToReplay, "Replay params are not valid"), false)),
        };
        if replay.is_some() && !private {
            return Err((Error::new(ErrorKind::UnableToReplay, "Replay is not allowed for public channels"), false));
        }
        let bindings = match &settings["postgres_changes"] {
            Value::Array(list) if list.len() > MAX_BINDINGS => {
                let message = format!("A channel may have at most {MAX_BINDINGS} postgres_changes bindings");
                return Err((Error::new(ErrorKind::InvalidBinding, message), false));
            }
            Value::Array(list) => {
                list.iter().map(Binding::parse).collect::<Result<Vec<_>, _>>().map_err(|e| (e, false))?
            }
            _ => Vec::new(),
        };
        let pool = self.tenant.project.db().pool().clone();
        let timeout = config.check_timeout;
        let mut reads = Access { broadcast: true, presence: true };
        if private {
            // Both extensions are asked, so a member who tracks later is known already; the
            // join itself needs broadcast read, or presence read with presence enabled.
            reads = authz::read_access(&pool, name, &principal, true, timeout)
                .await
                .map_err(|e| (authz_error(e, name), false))?;
            if !(reads.broadcast || (presence_enabled && reads.presence)) {
                return Err((unauthorized(name), false));
            }
        }
        let published = if bindings.is_empty() {
            Vec::new()
        } else {
            changes::check_bindings(&self.tenant, &bindings, &principal).await.map_err(|e| (e, false))?
        };
        // Changes and database broadcasts reach a channel only once the slot exists.
        let replication_ready = flag(&["broadcast", "replication_ready"]);
        if !bindings.is_empty() || private || replication_ready {
            changes::wait_until_capturing(&self.tenant).await.map_err(|e| (e, false))?;
        }
        let replayed = match replay {
            Some(ReplayParams { since_ms, limit }) if reads.broadcast => {
                authz::replay(&pool, name, &principal, since_ms, limit, timeout).await.map_err(|e| {
                    let error = match e {
                        AuthzError::Policy(_) => {
                            Error::new(ErrorKind::UnableToReplay, "Realtime was unable to replay messages")
                        }
                        other => authz_error(other, name),
                    };
                    (error, false)
                })?
            }
            _ => Vec::new(),
        };
        let member = Arc::new(Member {
            id: next_id(),
            topic: Arc::from(topic),
            room: crate::tenant::room(topic, private),
            join_ref: Arc::from(jr),
            vsn: self.vsn,
            tx: self.tx.clone(),
            lagged: self.lagged.clone(),
            messages_sent: self.tenant.messages_sent.clone(),
            echo: flag(&["broadcast", "self"]),
            ack: flag(&["broadcast", "ack"]),
            private,
            reads_broadcast: AtomicBool::new(reads.broadcast),
            reads_presence: AtomicBool::new(reads.presence),
            presence_enabled: AtomicBool::new(presence_enabled),
            presence_key,
            bindings,
            principal: RwLock::new(principal.clone()),
        });
        let replies: Vec<Value> = member.bindings.iter().map(Binding::reply).collect();
        self.reply(Some(jr), Some(reference), topic, "ok", json!({ "postgres_changes": replies }));
        if !member.bindings.is_empty() {
            let (ok, message) = changes::subscribed_message(&member.bindings, &published);
            member.system("postgres_changes", ok, &message);
        }
        if replication_ready {
            member.system("system", true, "Replication connection established");
        }
        for m in replayed {
            let body = match (m.payload, m.binary_payload) {
                (Some(v), _) => Body::Json(v),
                (None, Some(b)) => Body::Binary(b.into()),
                (None, None) => Body::Json(Value::Null),
            };
            let meta = json!({ "id": m.id, "replayed": true });
            let event = m.event.unwrap_or_default();
            if let Some(frame) = protocol::encode_broadcast(self.vsn, topic, &event, &body, Some(&meta)) {
                self.push(frame);
            }
        }
        self.tenant.add(member.clone());
        let expires = expiry_of(&principal);
        self.channels.insert(member.topic.clone(), Joined { member, expires, token, writes: None });
        Ok(())
    }

    /// `access_token`: a new token for the channel. Unchanged or API-key tokens are ignored;
    /// a bad one, or one whose policies no longer let it read, shuts the channel down.
    async fn refresh(&mut self, topic: &str, payload: &Value) {
        let Some(token) = payload.get("access_token").and_then(Value::as_str) else { return };
        let Some(joined) = self.channels.get(topic) else { return };
        if token.is_empty() || token.starts_with("sb_") || joined.token.as_deref() == Some(token) {
            return;
        }
        let principal = match self.verify(token) {
            Ok(p) => p,
            Err(e) => {
                self.shutdown(topic, &e.to_string());
                return;
            }
        };
        let member = joined.member.clone();
        if member.private {
            let pool = self.tenant.project.db().pool().clone();
            let timeout = self.tenant.realtime.config().check_timeout;
            match authz::read_access(&pool, member.channel(), &principal, true, timeout).await {
                Ok(reads) if reads.broadcast || (member.presence_enabled.load(Ordering::Relaxed) && reads.presence) => {
                    member.reads_broadcast.store(reads.broadcast, Ordering::Relaxed);
                    member.reads_presence.store(reads.presence, Ordering::Relaxed);
                }
                Ok(_) | Err(AuthzError::Policy(_)) => {
                    let name = member.channel().to_owned();
                    self.shutdown(
                        topic,
                        &format!("You no longer have permission to read from this Channel topic: {name}"),
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "realtime: re-checking a private channel failed");
                    return;
                }
            }
        }
        *member.principal.write().unwrap_or_else(|e| e.into_inner()) = principal.clone();
        if let Some(joined) = self.channels.get_mut(topic) {
            joined.expires = expiry_of(&principal);
            joined.token = Some(token.to_owned());
            joined.writes = None;
        }
    }

    /// On a private channel, whether its policies let the member send `presence` or
    /// broadcasts (asked once per token).
    async fn may_write(&mut self, topic: &str, presence: bool) -> bool {
        let Some(joined) = self.channels.get(topic) else { return false };
        if !joined.member.private {
            return true;
        }
        if let Some(w) = joined.writes {
            return if presence { w.presence } else { w.broadcast };
        }
        let member = joined.member.clone();
        let pool = self.tenant.project.db().pool().clone();
        let timeout = self.tenant.realtime.config().check_timeout;
        let writes = authz::write_access(&pool, member.channel(), &member.principal(), true, timeout)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "realtime: checking a private channel's write policies failed");
                Access::default()
            });
        if let Some(joined) = self.channels.get_mut(topic) {
            joined.writes = Some(writes);
        }
        if presence { writes.presence } else { writes.broadcast }
    }

    async fn broadcast(&mut self, reference: Option<&str>, topic: &str, event: &str, body: Body) {
        let Some(joined) = self.channels.get(topic) else { return };
        let member = joined.member.clone();
        let config = self.tenant.realtime.config().clone();
        if !self.tenant.events.allow(config.max_events_per_second) {
            self.shutdown(topic, "Too many messages per second");
            return;
        }
        let size = match &body {
            Body::Json(v) => v.to_string().len(),
            Body::Binary(b) => b.len(),
        };
        if size > config.max_payload_bytes {
            if member.ack {
                self.reply(
                    Some(&member.join_ref),
                    reference,
                    topic,
                    "error",
                    json!({ "reason": "payload_size_exceeded" }),
                );
            }
            return;
        }
        // An unauthorized broadcast on a private channel is dropped silently, as Supabase does.
        if !self.may_write(topic, false).await {
            return;
        }
        self.tenant.broadcast(topic, event, &body, member.private, Some(member.id));
        if member.ack {
            self.reply(Some(&member.join_ref), reference, topic, "ok", json!({}));
        }
    }

    async fn presence(&mut self, join_ref: Option<&str>, reference: Option<&str>, topic: &str, payload: &Value) {
        let Some(joined) = self.channels.get(topic) else {
            self.reply(join_ref, reference, topic, "error", json!({ "reason": "unmatched topic" }));
            return;
        };
        let member = joined.member.clone();
        let jr = Some(&*member.join_ref);
        let config = self.tenant.realtime.config().clone();
        if !self.tenant.events.allow(config.max_events_per_second) {
            self.shutdown(topic, "Too many messages per second");
            return;
        }
        match payload.get("event").and_then(Value::as_str) {
            Some("track") => {
                let Some(meta) = payload.get("payload").and_then(Value::as_object) else {
                    self.reply(
                        jr,
                        reference,
                        topic,
                        "error",
                        json!({ "reason": "Presence track payload must be a map" }),
                    );
                    return;
                };
                if Value::Object(meta.clone()).to_string().len() > config.max_payload_bytes {
                    self.shutdown(topic, "Track message size exceeded");
                    return;
                }
                if !self.may_write(topic, true).await {
                    let reason = format!(
                        "Unauthorized: You do not have permissions to track presence on this Channel topic: {}",
                        member.channel()
                    );
                    self.reply(jr, reference, topic, "error", json!({ "reason": reason }));
                    return;
                }
                self.tenant.enable_presence(&member);
                self.tenant.track(&member, meta.clone());
                self.reply(jr, reference, topic, "ok", json!({}));
            }
            Some("untrack") => {
                self.tenant.untrack(&member);
                self.reply(jr, reference, topic, "ok", json!({}));
            }
            _ => {
                self.reply(jr, reference, topic, "error", json!({ "reason": "Unknown presence event" }));
            }
        }
    }
}

fn unauthorized(name: &str) -> Error {
    Error::new(ErrorKind::Unauthorized, format!("You do not have permissions to read from this Channel topic: {name}"))
}

/// A private channel's check that failed: a policy that errs or times out is a refusal; a
/// database that cannot be reached is said so.
fn authz_error(e: AuthzError, name: &str) -> Error {
    if e.is_timeout() {
        tracing::warn!(topic = name, "realtime: a private channel's policy ran past the check's timeout");
    }
    match e {
        AuthzError::Policy(_) => unauthorized(name),
        AuthzError::InvalidReplayParams => Error::new(ErrorKind::UnableToReplay, "Replay params are not valid"),
        AuthzError::Saturated => Error::new(ErrorKind::Unavailable, "Please increase your connection pool size"),
        AuthzError::Unavailable(_) => {
            Error::new(ErrorKind::Unavailable, "Realtime was unable to connect to the project database")
        }
    }
}
