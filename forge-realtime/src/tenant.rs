//! One project's realtime state on this node: its channels' members, presences, rate
//! counters and change capture, and the fan-out of messages to members, here and over the bus.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use bytes::Bytes;
use forge_core::{Principal, Project};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bus::{Envelope, NodeId};
use crate::cdc::Change;
use crate::changes::Binding;
use crate::protocol::{self, Body, Vsn};
use crate::service::Realtime;

/// What a socket's writer is asked to do.
#[derive(Debug)]
pub(crate) enum Out {
    /// Send a frame.
    Frame(Message),
    /// Shut a channel down: a `system` message (status `error`, or `ok` when the server
    /// asked for it) with `message`, then `phx_close`.
    Shutdown { topic: Arc<str>, join_ref: Arc<str>, message: String, ok: bool },
}

/// One channel joined by one socket.
#[derive(Debug)]
pub(crate) struct Member {
    /// Unique on this node.
    pub(crate) id: u64,
    /// `realtime:<name>`.
    pub(crate) topic: Arc<str>,
    /// Where it is kept: its topic, or for a private channel a name of its own ([`room`]), so
    /// that a private channel and a public one of the same name share nothing.
    pub(crate) room: Arc<str>,
    /// The join's ref, echoed on this channel's replies.
    pub(crate) join_ref: Arc<str>,
    pub(crate) vsn: Vsn,
    pub(crate) tx: mpsc::Sender<Out>,
    /// The socket's flag for a queue that overflowed (the socket is then closed).
    pub(crate) lagged: Arc<AtomicBool>,
    /// The project's count of messages queued to its clients (usage metering).
    pub(crate) messages_sent: Arc<std::sync::atomic::AtomicU64>,
    /// `config.broadcast.self`: receive one's own broadcasts.
    pub(crate) echo: bool,
    /// `config.broadcast.ack`.
    pub(crate) ack: bool,
    /// `config.private`.
    pub(crate) private: bool,
    /// Whether broadcasts reach it (on a private channel, its read policy's answer).
    pub(crate) reads_broadcast: AtomicBool,
    /// Whether presence reaches it (on a private channel, its read policy's answer for the
    /// `presence` extension).
    pub(crate) reads_presence: AtomicBool,
    /// Whether presence reaches it (`config.presence.enabled`, or a track).
    pub(crate) presence_enabled: AtomicBool,
    /// `config.presence.key`, or a generated one.
    pub(crate) presence_key: String,
    /// `postgres_changes` bindings, with the ids the join reply gave them.
    pub(crate) bindings: Vec<Binding>,
    /// Who the member is: its join token's principal, replaced on `access_token`.
    pub(crate) principal: RwLock<Principal>,
}

impl Member {
    /// Queues `out`; a socket whose queue is full is too slow: it is closed once its writer
    /// catches up with the queue.
    pub(crate) fn send(&self, out: Out) {
        match self.tx.try_send(out) {
            Ok(()) => {
                self.messages_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.lagged.store(true, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// A `system` push on this channel, as Supabase sends them:
    /// `{extension, status: ok|error, message, channel}`.
    pub(crate) fn system_frame(&self, extension: &str, ok: bool, message: &str) -> Message {
        let status = if ok { "ok" } else { "error" };
        let payload =
            json!({ "extension": extension, "status": status, "message": message, "channel": self.channel() });
        protocol::encode(self.vsn, Some(&self.join_ref), None, &self.topic, "system", &payload)
    }

    /// Queues a `system` push (see [`Member::system_frame`]).
    pub(crate) fn system(&self, extension: &str, ok: bool, message: &str) {
        self.send(Out::Frame(self.system_frame(extension, ok, message)));
    }

    /// The channel name (`room1` for `realtime:room1`).
    pub(crate) fn channel(&self) -> &str {
        self.topic.strip_prefix("realtime:").unwrap_or(&self.topic)
    }

    /// The principal now.
    pub(crate) fn principal(&self) -> Principal {
        self.principal.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The key members and presences of `topic` are kept under: the topic itself, or for a
/// private channel the topic behind a prefix no topic has (a NUL).
pub(crate) fn room(topic: &str, private: bool) -> Arc<str> {
    if private { Arc::from(format!("private\u{0}{topic}")) } else { Arc::from(topic) }
}

/// The topic frames of `room` name.
fn topic_of(room: &str) -> &str {
    room.strip_prefix("private\u{0}").unwrap_or(room)
}

/// One tracked presence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Presence {
    pub(crate) key: String,
    pub(crate) phx_ref: String,
    /// The member that tracked it (on its node).
    pub(crate) member: u64,
    pub(crate) node: NodeId,
    pub(crate) meta: Map<String, Value>,
}

impl Presence {
    fn meta_json(&self) -> Value {
        let mut m = self.meta.clone();
        m.insert("phx_ref".into(), Value::from(self.phx_ref.clone()));
        Value::Object(m)
    }
}

#[derive(Debug, Default)]
struct Topic {
    members: Vec<Arc<Member>>,
    presences: Vec<Presence>,
}

/// A fixed one-second window counter.
#[derive(Debug, Default)]
pub(crate) struct Rate {
    window: Mutex<(u64, u32)>,
}

impl Rate {
    /// Counts one event; false when `limit` events were already counted this second.
    pub(crate) fn allow(&self, limit: u32) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 != now {
            *w = (now, 0);
        }
        if w.1 >= limit {
            return false;
        }
        w.1 += 1;
        true
    }
}

/// What nodes tell each other about one project.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Note {
    /// A broadcast sent on another node.
    Broadcast {
        topic: String,
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary: Option<Vec<u8>>,
        private: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta: Option<Value>,
    },
    /// Presences joined and left on the sender.
    PresenceDiff { topic: String, joins: Vec<Presence>, leaves: Vec<Presence> },
    /// Every presence the sender holds (sent periodically, and on request).
    PresenceState { presences: Vec<(String, Presence)> },
    /// A new node asks for everyone's presences.
    PresenceRequest,
    /// Decoded changes, from the capture leader.
    Changes { changes: Vec<Change> },
    /// The capture leader found the slot invalidated: changes were lost.
    ChangesLost,
}

/// One project's state on this node.
#[derive(Debug)]
pub(crate) struct Tenant {
    pub(crate) realtime: Realtime,
    pub(crate) project: Project,
    topics: RwLock<HashMap<Arc<str>, Topic>>,
    /// Sockets open.
    pub(crate) connections: AtomicUsize,
    /// Messages queued to this project's channel members here (broadcasts, presence,
    /// changes and system messages), for usage metering.
    pub(crate) messages_sent: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) joins: Rate,
    pub(crate) events: Rate,
    /// Other nodes' presences and when each node was last heard from.
    remote_nodes: Mutex<HashMap<NodeId, Instant>>,
    pub(crate) changes: crate::changes::Deliveries,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Envelopes for the bus, published one at a time so that they keep their order.
    outbox: mpsc::UnboundedSender<Envelope>,
    next_ref: AtomicU64,
    /// How many bytes of WAL the replication slot held at its last reading (leader only).
    pub(crate) slot_lag: std::sync::atomic::AtomicI64,
    /// The stream position of the last change handed on here (commit LSN, index).
    pub(crate) delivered: Mutex<(u64, u32)>,
    /// Whether the project's replication slot exists (changes committed from then on are
    /// captured).
    pub(crate) capturing: AtomicBool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A number unique on this node (members, sockets).
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl Tenant {
    /// Starts the project's state: its presence announcements and its change capture.
    pub(crate) fn start(realtime: Realtime, project: Project) -> Arc<Tenant> {
        let (outbox, pending) = mpsc::unbounded_channel();
        let tenant = Arc::new(Tenant {
            realtime: realtime.clone(),
            project,
            topics: RwLock::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            messages_sent: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            joins: Rate::default(),
            events: Rate::default(),
            remote_nodes: Mutex::new(HashMap::new()),
            changes: crate::changes::Deliveries::default(),
            tasks: Mutex::new(Vec::new()),
            outbox,
            next_ref: AtomicU64::new(1),
            capturing: AtomicBool::new(false),
            delivered: Mutex::new((0, 0)),
            slot_lag: std::sync::atomic::AtomicI64::new(-1),
        });
        let mut tasks = vec![
            tokio::spawn(announce_presence(Arc::downgrade(&tenant))),
            tokio::spawn(publish_in_order(realtime.0.bus.clone(), pending)),
        ];
        if realtime.config().changes {
            tasks.push(tokio::spawn(crate::changes::capture(Arc::downgrade(&tenant))));
        }
        *tenant.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        tenant.publish(&Note::PresenceRequest);
        tenant
    }

    /// Stops the project's tasks and shuts every channel down.
    pub(crate) async fn stop(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let members: Vec<Arc<Member>> = {
            let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
            topics.values().flat_map(|t| t.members.iter().cloned()).collect()
        };
        for m in members {
            m.send(Out::Shutdown {
                topic: m.topic.clone(),
                join_ref: m.join_ref.clone(),
                message: "Server requested disconnect".into(),
                ok: true,
            });
        }
    }

    /// The project's ref.
    pub(crate) fn reference(&self) -> &str {
        self.project.reference().as_str()
    }

    /// Publishes `note` to the other nodes.
    pub(crate) fn publish(&self, note: &Note) {
        let Ok(payload) = serde_json::to_vec(note) else {
            return;
        };
        let envelope = Envelope {
            origin: self.realtime.node(),
            project: Arc::from(self.reference()),
            payload: Bytes::from(payload),
        };
        let _ = self.outbox.send(envelope);
    }

    /// Adds a joined channel. When presence reaches it, its `presence_state` is queued under
    /// the same lock, so that every later diff follows it and none is missed.
    pub(crate) fn add(&self, member: Arc<Member>) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let room = topics.entry(member.room.clone()).or_default();
        if member.presence_enabled.load(Ordering::Relaxed) && member.reads_presence.load(Ordering::Relaxed) {
            member.send(Out::Frame(state_frame(&member, &room.presences)));
        }
        room.members.push(member);
    }

    /// Turns presence on for `member` (its first track): its `presence_state` is queued
    /// first, under the lock diffs are made under.
    pub(crate) fn enable_presence(&self, member: &Member) {
        let topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if member.presence_enabled.swap(true, Ordering::Relaxed) || !member.reads_presence.load(Ordering::Relaxed) {
            return;
        }
        let presences = topics.get(&member.room).map(|r| r.presences.as_slice()).unwrap_or_default();
        member.send(Out::Frame(state_frame(member, presences)));
    }

    /// Removes a channel: its presences leave.
    pub(crate) fn remove(&self, member: &Member) {
        let (leaves, recipients) = {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            let Some(topic) = topics.get_mut(&member.room) else {
                return;
            };
            topic.members.retain(|m| m.id != member.id);
            let (leaves, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.presences)
                .into_iter()
                .partition(|p| p.node == self.realtime.node() && p.member == member.id);
            topic.presences = kept;
            let recipients = topic.members.clone();
            if topic.members.is_empty() && topic.presences.is_empty() {
                topics.remove(&member.room);
            }
            (leaves, recipients)
        };
        self.presence_diff(&member.room, recipients, &[], &leaves, true);
    }

    /// Members of `topic` on this node.
    pub(crate) fn members(&self, topic: &str) -> Vec<Arc<Member>> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get(topic).map(|t| t.members.clone()).unwrap_or_default()
    }

    /// Every member with `postgres_changes` bindings.
    pub(crate) fn change_members(&self) -> Vec<Arc<Member>> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.values().flat_map(|t| t.members.iter().filter(|m| !m.bindings.is_empty()).cloned()).collect()
    }

    /// Sends a broadcast to the members of `topic` here and on the other nodes. `from` is the
    /// sending member (skipped unless it asked for its own broadcasts).
    pub(crate) fn broadcast(&self, topic: &str, event: &str, body: &Body, private: bool, from: Option<u64>) {
        self.deliver_broadcast(topic, event, body, private, from, None);
        let (payload, binary) = match body {
            Body::Json(v) => (Some(v.clone()), None),
            Body::Binary(b) => (None, Some(b.to_vec())),
        };
        self.publish(&Note::Broadcast {
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
            binary,
            private,
            meta: None,
        });
    }

    /// Sends a broadcast to the members of `topic` on this node: each serializer's frame is
    /// encoded once. A public broadcast reaches public members, a private one private members
    /// whose policies let them read.
    pub(crate) fn deliver_broadcast(
        &self,
        topic: &str,
        event: &str,
        body: &Body,
        private: bool,
        from: Option<u64>,
        meta: Option<&Value>,
    ) {
        let members = self.members(&room(topic, private));
        if members.is_empty() {
            return;
        }
        let mut frames: [Option<Option<Message>>; 2] = [None, None];
        for m in members {
            if !m.reads_broadcast.load(Ordering::Relaxed) {
                continue;
            }
            if from == Some(m.id) && !m.echo {
                continue;
            }
            let slot = &mut frames[usize::from(m.vsn == Vsn::V2)];
            let frame = slot.get_or_insert_with(|| protocol::encode_broadcast(m.vsn, topic, event, body, meta));
            if let Some(frame) = frame {
                m.send(Out::Frame(frame.clone()));
            }
        }
    }

    /// A fresh `phx_ref` for a presence.
    fn presence_ref(&self) -> String {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let node = self.realtime.node().as_simple().to_string();
        format!("F{}{n:x}", &node[..8])
    }

    /// Tracks (or re-tracks) `member`'s presence with `meta`.
    pub(crate) fn track(&self, member: &Member, meta: Map<String, Value>) {
        let presence = Presence {
            key: member.presence_key.clone(),
            phx_ref: self.presence_ref(),
            member: member.id,
            node: self.realtime.node(),
            meta,
        };
        let (leaves, recipients) = {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            let topic = topics.entry(member.room.clone()).or_default();
            let (leaves, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.presences)
                .into_iter()
                .partition(|p| p.node == presence.node && p.member == member.id);
            topic.presences = kept;
            topic.presences.push(presence.clone());
            (leaves, topic.members.clone())
        };
        self.presence_diff(&member.room, recipients, &[presence], &leaves, true);
    }

    /// Untracks `member`'s presence.
    pub(crate) fn untrack(&self, member: &Member) {
        let (leaves, recipients) = {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            let Some(topic) = topics.get_mut(&member.room) else {
                return;
            };
            let (leaves, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.presences)
                .into_iter()
                .partition(|p| p.node == self.realtime.node() && p.member == member.id);
            topic.presences = kept;
            (leaves, topic.members.clone())
        };
        self.presence_diff(&member.room, recipients, &[], &leaves, true);
    }

    /// Sends a `presence_diff` of `room` to `recipients` (its members when the presences
    /// changed, taken under the same lock), and to the other nodes when the change is this
    /// node's.
    fn presence_diff(
        &self,
        room: &str,
        recipients: Vec<Arc<Member>>,
        joins: &[Presence],
        leaves: &[Presence],
        ours: bool,
    ) {
        if joins.is_empty() && leaves.is_empty() {
            return;
        }
        let topic = topic_of(room);
        let diff = json!({ "joins": group(joins.iter()), "leaves": group(leaves.iter()) });
        let mut frames: [Option<Message>; 2] = [None, None];
        for m in recipients {
            if !m.presence_enabled.load(Ordering::Relaxed) || !m.reads_presence.load(Ordering::Relaxed) {
                continue;
            }
            let frame = frames[usize::from(m.vsn == Vsn::V2)]
                .get_or_insert_with(|| protocol::encode(m.vsn, None, None, topic, "presence_diff", &diff));
            m.send(Out::Frame(frame.clone()));
        }
        if ours {
            self.publish(&Note::PresenceDiff {
                topic: room.to_owned(),
                joins: joins.to_vec(),
                leaves: leaves.to_vec(),
            });
        }
    }

    /// This node's own presences, for the other nodes.
    fn own_presences(&self) -> Vec<(String, Presence)> {
        let node = self.realtime.node();
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .iter()
            .flat_map(|(name, t)| t.presences.iter().filter(|p| p.node == node).map(|p| (name.to_string(), p.clone())))
            .collect()
    }

    /// Replaces what this node knows of `node`'s presences with `presences`, sending the
    /// difference to local members.
    fn replace_remote(&self, node: NodeId, presences: Vec<(String, Presence)>) {
        let mut by_topic: HashMap<String, Vec<Presence>> = HashMap::new();
        for (topic, p) in presences {
            by_topic.entry(topic).or_default().push(p);
        }
        let mut diffs = Vec::new();
        {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            let names: Vec<Arc<str>> = topics.keys().cloned().collect();
            for name in names {
                let Some(topic) = topics.get_mut(&name) else { continue };
                let incoming = by_topic.remove(name.as_ref()).unwrap_or_default();
                let (old, kept): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut topic.presences).into_iter().partition(|p| p.node == node);
                topic.presences = kept;
                let leaves: Vec<_> =
                    old.iter().filter(|o| !incoming.iter().any(|n| n.phx_ref == o.phx_ref)).cloned().collect();
                let joins: Vec<_> =
                    incoming.iter().filter(|n| !old.iter().any(|o| o.phx_ref == n.phx_ref)).cloned().collect();
                topic.presences.extend(incoming);
                let recipients = topic.members.clone();
                if topic.members.is_empty() && topic.presences.is_empty() {
                    topics.remove(&name);
                }
                diffs.push((name, recipients, joins, leaves));
            }
            // Presences on topics no member here has joined are kept for when one joins.
            for (name, incoming) in by_topic {
                let topic = topics.entry(Arc::from(name.as_str())).or_default();
                topic.presences.extend(incoming);
            }
        }
        for (name, recipients, joins, leaves) in diffs {
            self.presence_diff(&name, recipients, &joins, &leaves, false);
        }
    }

    /// Handles a note from another node.
    pub(crate) fn receive(self: &Arc<Self>, origin: NodeId, note: Note) {
        if origin != self.realtime.node() {
            self.remote_nodes.lock().unwrap_or_else(|e| e.into_inner()).insert(origin, Instant::now());
        }
        match note {
            Note::Broadcast { topic, event, payload, binary, private, meta } => {
                let body = match (payload, binary) {
                    (Some(v), _) => Body::Json(v),
                    (None, Some(b)) => Body::Binary(Bytes::from(b)),
                    (None, None) => Body::Json(Value::Null),
                };
                self.deliver_broadcast(&topic, &event, &body, private, None, meta.as_ref());
            }
            Note::PresenceDiff { topic, joins, leaves } => {
                let recipients = {
                    let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
                    let t = topics.entry(Arc::from(topic.as_str())).or_default();
                    t.presences.retain(|p| !leaves.iter().any(|l| l.phx_ref == p.phx_ref && l.node == p.node));
                    t.presences.extend(joins.iter().cloned());
                    t.members.clone()
                };
                self.presence_diff(&topic, recipients, &joins, &leaves, false);
            }
            Note::PresenceState { presences } => self.replace_remote(origin, presences),
            Note::PresenceRequest => {
                self.publish(&Note::PresenceState { presences: self.own_presences() });
            }
            Note::Changes { changes } => crate::changes::dispatch(self, changes),
            Note::ChangesLost => {
                let message =
                    "Some database changes were lost: the replication slot was invalidated while no server read it";
                for m in self.change_members() {
                    m.system("postgres_changes", false, message);
                }
            }
        }
    }

    /// Drops the presences of nodes not heard from within `silence`.
    fn expire_nodes(&self, silence: Duration) {
        let gone: Vec<NodeId> = {
            let mut nodes = self.remote_nodes.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<NodeId> = nodes.iter().filter(|(_, at)| at.elapsed() > silence).map(|(n, _)| *n).collect();
            for n in &gone {
                nodes.remove(n);
            }
            gone
        };
        for node in gone {
            tracing::info!(%node, project = self.reference(), "realtime node gone; its presences leave");
            self.replace_remote(node, Vec::new());
        }
    }
}

/// `member`'s `presence_state` frame for `presences`.
fn state_frame(member: &Member, presences: &[Presence]) -> Message {
    let state = group(presences.iter());
    protocol::encode(member.vsn, Some(&member.join_ref), None, &member.topic, "presence_state", &state)
}

/// Presences grouped by key: `{key: {metas: [...]}}`.
fn group<'a>(presences: impl Iterator<Item = &'a Presence>) -> Value {
    let mut out = Map::new();
    for p in presences {
        let entry = out.entry(p.key.clone()).or_insert_with(|| json!({ "metas": [] }));
        if let Some(metas) = entry.get_mut("metas").and_then(Value::as_array_mut) {
            metas.push(p.meta_json());
        }
    }
    Value::Object(out)
}

/// Tells the other nodes this node's presences every `presence_interval`, and forgets nodes
/// silent for three intervals.
async fn announce_presence(tenant: std::sync::Weak<Tenant>) {
    let Some(interval) = tenant.upgrade().map(|t| t.realtime.config().presence_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(t) = tenant.upgrade() else {
            return;
        };
        t.publish(&Note::PresenceState { presences: t.own_presences() });
        t.expire_nodes(interval * 3);
    }
}

/// Publishes a project's envelopes one after the other, so the bus keeps their order.
async fn publish_in_order(bus: Arc<dyn crate::bus::Bus>, mut pending: mpsc::UnboundedReceiver<Envelope>) {
    while let Some(envelope) = pending.recv().await {
        if let Err(e) = bus.publish(envelope).await {
            tracing::warn!(error = %e, "realtime bus publish failed");
        }
    }
}

/// Reads the bus for every project on this node, for as long as the process runs.
pub(crate) fn listen(realtime: Realtime) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let stream = match realtime.0.bus.subscribe().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "realtime bus subscribe failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            let mut stream = stream;
            while let Some(envelope) = stream.next().await {
                let Some(tenant) = realtime.existing_tenant(&envelope.project) else {
                    continue;
                };
                let Ok(note) = serde_json::from_slice::<Note>(&envelope.payload) else {
                    tracing::warn!("realtime bus: an envelope that does not decode");
                    continue;
                };
                // Our own broadcasts and presences were delivered here already; changes come
                // to every node, the leader's too, only through the bus.
                if envelope.origin == realtime.node() && !matches!(note, Note::Changes { .. } | Note::ChangesLost) {
                    continue;
                }
                tenant.receive(envelope.origin, note);
            }
        }
    });
}
