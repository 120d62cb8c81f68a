"""supabase-py's async realtime client (pinned in requirements.txt; vsn 1.0.0) against
forge-server's Realtime at /realtime/v1.

Channels (subscribe, unsubscribe, remove_channel, remove_all_channels, get_channels), broadcast
over the socket (self, ack) and over REST (http_send, exactly 202), presence (track, untrack,
presence_state, sync/join/leave), postgres_changes under row-level security with filters (every
change compared with the row selected back in SQL), system messages, private channels with
policies on realtime.messages, realtime.send and realtime.broadcast_changes from SQL, set_auth,
and non-ASCII topics and payloads. Tables and policies: the `-- realtime` section of
compat/schema.sql. Every test signs up its own users, so the tests are independent.

Each test runs its own event loop (asyncio.run). The realtime client logs every frame it sends
and receives at DEBUG; pytest prints those logs for a failing test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import jwt
import psycopg
import pytest
from realtime import RealtimeSubscribeStates
from realtime.types import RealtimePostgresChangesListenEvent as Ev
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from forge_compat import ANON_KEY, DB_SOCKET_DIR, JWT_SECRET, SERVICE_KEY, URL

PASSWORD = "correct-horse-42"
WAIT = 5.0  # how long an expected event may take
QUIET = 0.7  # how long to wait to be sure an event does not come


@pytest.fixture(autouse=True)
def _frames(caplog):
    """The realtime client's frames ("send: ..." / "receive: ...") for a failing test's report."""
    caplog.set_level(logging.DEBUG, logger="realtime")
    yield


# ------------------------------------------------------------------ SQL (in UTC, as Supabase runs)
_sql_conn: psycopg.Connection | None = None


def sql(query: str, params: tuple | list | None = None) -> list[tuple]:
    global _sql_conn
    if _sql_conn is None or _sql_conn.closed:
        _sql_conn = psycopg.connect(
            host=DB_SOCKET_DIR, port=5432, user="postgres", dbname="postgres", autocommit=True, options="-c TimeZone=UTC"
        )
    cur = _sql_conn.execute(query, params)
    return cur.fetchall() if cur.description else []


def row_json(table: str, row_id: int) -> dict:
    """The row as Supabase Realtime renders it (to_jsonb in UTC)."""
    rows = sql(f"select to_jsonb(t) from public.{table} t where id = %s", (row_id,))
    assert len(rows) == 1, f"{table} row {row_id}"
    return rows[0][0]


def columns_of(table: str) -> list[dict]:
    rows = sql(
        """select a.attname::text, t.typname::text from pg_attribute a join pg_type t on t.oid = a.atttypid
            where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum""",
        (f"public.{table}",),
    )
    return [{"name": n, "type": t} for n, t in rows]


def insert_note(owner: str, **fields: Any) -> int:
    f = {"title": "note", "score": 0, "done": False, "tags": [], "meta": None, "ratio": None, **fields}
    rows = sql(
        "insert into public.rt_notes (owner, title, score, done, tags, meta, ratio) values (%s, %s, %s, %s, %s, %s, %s) returning id",
        (owner, f["title"], f["score"], f["done"], f["tags"], None if f["meta"] is None else json.dumps(f["meta"]), f["ratio"]),
    )
    return rows[0][0]


# ------------------------------------------------------------------ waiting
class Inbox:
    """Collects callback arguments; `next` waits for one that matches."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def push(self, *args: Any) -> None:
        self.items.append(args[0] if len(args) == 1 else args)
        self._changed.set()

    async def next(self, pred: Callable[[Any], bool] = lambda _: True, what: str = "an event", timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for item in self.items:
                if pred(item):
                    self.items.remove(item)
                    return item
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what} on {self.name} (got: {self.items!r:.600})")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def none(self, pred: Callable[[Any], bool] = lambda _: True, what: str = "no event", wait: float = QUIET) -> None:
        await asyncio.sleep(wait)
        bad = [i for i in self.items if pred(i)]
        assert bad == [], f"{what} on {self.name}: {bad!r}"


async def wait_until(cond: Callable[[], bool], what: str, show: Callable[[], Any] = lambda: "", timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}: {show()}")
        await asyncio.sleep(0.05)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def config(*, self_: bool = False, ack: bool = False, key: str = "", private: bool = False) -> dict:
    return {"config": {"broadcast": {"ack": ack, "self": self_}, "presence": {"key": key, "enabled": False}, "private": private}}


# ------------------------------------------------------------------ clients
async def new_client(key: str = ANON_KEY) -> AsyncClient:
    options = AsyncClientOptions(auto_refresh_token=False, persist_session=False)
    return await acreate_client(URL, key, options=options)


class User:
    def __init__(self, client: AsyncClient, user_id: str, token: str) -> None:
        self.client = client
        self.id = user_id
        self.token = token


async def signed_in_user(label: str) -> User:
    """Signs up a fresh user on a client of its own; its realtime token is the session's."""
    c = await new_client()
    email = f"rt-py-{label.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    res = await c.auth.sign_up({"email": email, "password": PASSWORD})
    assert res.session is not None, f"sign-up of {email} returned no session (auto-confirm is expected on the main server)"
    # supabase-py hands the session's token to realtime from its auth listener, in a task
    await wait_until(lambda: c.realtime.access_token == res.session.access_token, "the session token reaches realtime")
    return User(c, res.user.id, res.session.access_token)


def run(fn: Callable[[list[AsyncClient]], Awaitable[None]]) -> None:
    """Runs a test body in a fresh event loop and closes every client it opened."""

    async def main() -> None:
        clients: list[AsyncClient] = []
        try:
            await asyncio.wait_for(fn(clients), 50)
        finally:
            for c in clients:
                try:
                    await c.remove_all_channels()
                except Exception:
                    pass
                try:
                    await c.realtime.close()
                except Exception:
                    pass

    asyncio.run(main())


class Status:
    """A subscribe callback that records (status, error)."""

    def __init__(self, name: str) -> None:
        self.inbox = Inbox(f"status of {name}")

    def __call__(self, status: RealtimeSubscribeStates, err: Exception | None) -> None:
        self.inbox.push((status, err))


async def subscribe(channel, expect: RealtimeSubscribeStates = RealtimeSubscribeStates.SUBSCRIBED) -> tuple:
    """Subscribes (supabase-py waits for the join's answer) and returns (status, error, recorder)."""
    rec = Status(channel.topic)
    await channel.subscribe(rec)
    status, err = await rec.inbox.next(lambda s: s[0] != RealtimeSubscribeStates.CLOSED, f"a subscribe status for {channel.topic}")
    assert status == expect, f"subscribe {channel.topic}: {status} {err}"
    channel.statuses = rec.inbox
    return status, err


async def subscribe_changes(channel) -> None:
    """Subscribes a channel with postgres_changes bindings; waits for "Subscribed to PostgreSQL"."""
    system = Inbox(f"system of {channel.topic}")
    channel.on_system(system.push)
    await subscribe(channel)
    msg = await system.next(lambda m: m.extension == "postgres_changes", "the postgres_changes system message")
    assert msg.status == "ok", msg
    assert msg.message == "Subscribed to PostgreSQL"
    assert msg.channel == channel.topic.removeprefix("realtime:")


def bc(event: str, payload: Any) -> dict:
    """A broadcast as supabase-py hands it to on_broadcast (its model keeps event, payload, meta)."""
    return {"event": event, "payload": payload}


def record_of(payload: dict) -> dict:
    return payload["data"]["record"]


# ================================================================== connection and channels
def test_connect_vsn_1_and_channel_lifecycle():
    async def body(clients):
        a = await new_client()
        b = await new_client()
        clients += [a, b]
        assert "vsn=1.0.0" in a.realtime.endpoint_url()
        names = [uniq("one"), uniq("two"), uniq("three")]
        got = Inbox("A broadcasts")
        chans = []
        for n in names:
            ch = a.channel(n, config())
            ch.on_broadcast("e", lambda m, n=n: got.push({**m, "topic": n}))
            await subscribe(ch)
            chans.append(ch)
        assert a.realtime.is_connected
        assert sorted(c.topic for c in a.get_channels()) == sorted(f"realtime:{n}" for n in names)
        senders = [b.channel(n, config()) for n in names]
        for s in senders:
            await subscribe(s)

        # unsubscribe: the server answers the leave and closes the channel (CLOSED)
        await chans[0].unsubscribe()
        await chans[0].statuses.next(lambda s: s[0] == RealtimeSubscribeStates.CLOSED, "CLOSED after unsubscribe")
        await senders[0].send_broadcast("e", {"after": "unsubscribe"})

        # remove_channel
        await a.remove_channel(chans[1])
        assert [c.topic for c in a.get_channels()] == [f"realtime:{names[2]}"]
        await senders[1].send_broadcast("e", {"after": "remove"})

        await senders[2].send_broadcast("e", {"still": "here"})
        m = await got.next(what="the broadcast on the remaining channel")
        assert m["topic"] == names[2]
        assert m["payload"] == {"still": "here"}
        await got.none(what="no broadcast reaches an unsubscribed or removed channel")

        await a.remove_all_channels()
        assert a.get_channels() == []
        assert not a.realtime.is_connected
        await senders[2].send_broadcast("e", {"after": "remove_all"})
        await got.none(what="no broadcast after remove_all_channels")

    run(body)


def test_empty_topic_is_refused():
    async def body(clients):
        a = await new_client()
        clients.append(a)
        ch = a.channel("", config())
        status, err = await subscribe(ch, RealtimeSubscribeStates.CHANNEL_ERROR)
        assert json.loads(str(err)) == {"reason": "TopicNameRequired: You must provide a topic name"}
        await a.remove_channel(ch)

    run(body)


def test_closing_the_client_is_a_clean_close(caplog):
    """remove_all_channels closes the socket: the server must answer the client's Close frame
    (RFC 6455 5.5.1). Without the answer websockets reports 1006, and supabase-py logs
    "WebSocket connection closed with code: 1006" and starts its reconnect sequence."""

    async def body(clients):
        a = await new_client()
        clients.append(a)
        await subscribe(a.channel(uniq("close"), config()))
        await a.remove_all_channels()
        assert not a.realtime.is_connected
        await asyncio.sleep(0.3)

    run(body)
    errors = [r.getMessage() for r in caplog.records if r.name.startswith("realtime") and r.levelno >= logging.ERROR]
    assert errors == [], "closing the client was not a clean close"


# ================================================================== broadcast
def test_broadcast_self_and_ack():
    async def body(clients):
        topic = uniq("bc")
        a = await new_client()
        b = await new_client()
        clients += [a, b]
        a_got, b_got, b_all = Inbox("A greet"), Inbox("B greet"), Inbox("B *")
        ch_a = a.channel(topic, config(self_=True, ack=True)).on_broadcast("greet", a_got.push)
        ch_b = b.channel(topic, config()).on_broadcast("greet", b_got.push).on_broadcast("*", b_all.push)
        await subscribe(ch_a)
        await subscribe(ch_b)

        payload = {"text": "hello", "n": 1, "nested": {"ok": True, "list": [1, "two", None]}}
        # ack: true: the push is answered ok
        acks = Inbox("ack")
        push = await ch_a.push("broadcast", {"type": "broadcast", "event": "greet", "payload": payload})
        push.receive("ok", lambda *_: acks.push("ok")).receive("error", lambda *r: acks.push(("error", r))).receive(
            "timeout", lambda *_: acks.push("timeout")
        )
        assert await acks.next(what="the ack of the broadcast push") == "ok"
        got = await b_got.next(what="the greet broadcast")
        assert got == bc("greet", payload)
        echo = await a_got.next(what="the self echo (broadcast.self = true)")
        assert echo == bc("greet", payload)
        assert (await b_all.next())["payload"] == payload

        # B (self: false) sends: A gets it, B does not get its own
        a_other = Inbox("A other")
        ch_a.on_broadcast("other", a_other.push)
        await ch_b.send_broadcast("other", {"from": "B"})
        assert (await a_other.next(what="B's broadcast"))["payload"] == {"from": "B"}
        await b_all.none(lambda m: m["event"] == "other", "B must not receive its own broadcast (self: false)")
        await a_got.none(what="A's greet listener got another event")

    run(body)


def test_http_send_is_202_and_reaches_subscribers():
    async def body(clients):
        topic = uniq("http")
        a = await new_client()
        b = await new_client()
        clients += [a, b]
        got = Inbox("B broadcasts")
        await subscribe(b.channel(topic, config()).on_broadcast("*", got.push))
        ch_a = a.channel(topic, config())  # never subscribed: http_send needs no socket
        await ch_a.http_send("news", {"headline": "Grüße", "n": 3})  # raises unless the answer is 202
        assert await got.next(lambda m: m["event"] == "news", "the http_send broadcast") == bc("news", {"headline": "Grüße", "n": 3})
        # a binary payload cannot reach a 1.0.0 socket, but is accepted (202) and breaks nothing
        await ch_a.http_send("blob", b"\x00\x01\xff")
        await ch_a.http_send("after", {"i": 1})
        await got.next(lambda m: m["event"] == "after", "a broadcast after the binary one")
        assert not [m for m in got.items if m["event"] == "blob"]

    run(body)


def test_non_ascii_topics_and_payloads():
    async def body(clients):
        topic = f"raum-grüße-日本-{uuid.uuid4().hex[:6]}"
        a = await new_client()
        b = await new_client()
        clients += [a, b]
        got = Inbox("B broadcasts")
        await subscribe(b.channel(topic, config()).on_broadcast("*", got.push))
        ch_a = a.channel(topic, config(ack=True))
        await subscribe(ch_a)
        payload = {"text": "Grüße aus 東京 🌍", "emoji": "🎉", "quote": '"\\'}
        await ch_a.send_broadcast("msg", payload)
        assert await got.next(lambda m: m["event"] == "msg", "the socket broadcast") == bc("msg", payload)
        await ch_a.http_send("événement", {"ok": "ü"})
        assert (await got.next(lambda m: m["event"] == "événement", "the REST broadcast"))["payload"] == {"ok": "ü"}

    run(body)


# ================================================================== presence
def test_presence_track_untrack_and_state():
    async def body(clients):
        topic = uniq("presence")
        a = await new_client()
        b = await new_client()
        clients += [a, b]
        events = Inbox("B presence")
        a_sync = Inbox("A sync")
        ch_a = a.channel(topic, config(key="alice")).on_presence_sync(lambda: a_sync.push("sync"))
        ch_b = (
            b.channel(topic, config(key="bob"))
            .on_presence_sync(lambda: events.push(("sync",)))
            .on_presence_join(lambda key, cur, new: events.push(("join", key, cur, new)))
            .on_presence_leave(lambda key, cur, left: events.push(("leave", key, cur, left)))
        )
        await subscribe(ch_a)
        await subscribe(ch_b)
        # presence_state comes right after the join: the first sync, with nobody present
        await events.next(lambda e: e[0] == "sync", "the sync from presence_state")
        assert ch_b.presence_state() == {}

        meta = {"name": "Ada Ü", "online_at": "2024-01-01T00:00:00Z", "n": 1}
        await ch_a.track(meta)
        joined = await events.next(lambda e: e[0] == "join" and e[1] == "alice", "the join of alice")
        new = joined[3]
        assert len(new) == 1
        assert {k: v for k, v in new[0].items() if k != "presence_ref"} == meta
        assert isinstance(new[0]["presence_ref"], str)
        state = ch_b.presence_state()
        assert list(state) == ["alice"]
        assert [{k: v for k, v in p.items() if k != "presence_ref"} for p in state["alice"]] == [meta]
        await a_sync.next(what="the tracker's own sync")
        await wait_until(lambda: list(ch_a.presence_state()) == ["alice"], "A sees itself", ch_a.presence_state)

        # tracking again replaces the presence (one diff: join of the new meta, leave of the old)
        await ch_a.track({**meta, "n": 2})
        await events.next(lambda e: e[0] == "join" and e[3][0].get("n") == 2, "the join of the updated presence")
        left = await events.next(lambda e: e[0] == "leave" and e[1] == "alice", "the leave of the replaced presence")
        assert left[3][0]["n"] == 1
        state = ch_b.presence_state()
        assert [p["n"] for p in state["alice"]] == [2], state

        await ch_a.untrack()
        left = await events.next(lambda e: e[0] == "leave" and e[1] == "alice", "the leave after untrack")
        assert left[3][0]["n"] == 2
        assert ch_b.presence_state() == {}

        # track, then leave the channel: a leave too
        await ch_a.track({"name": "again"})
        await events.next(lambda e: e[0] == "join" and e[3][0].get("name") == "again", "the join of alice again")
        await a.remove_channel(ch_a)
        await events.next(lambda e: e[0] == "leave" and e[1] == "alice", "the leave after remove_channel")
        assert ch_b.presence_state() == {}

        # a later joiner gets the existing presences in presence_state
        await ch_b.track({"who": "bob"})
        c = await new_client()
        clients.append(c)
        c_sync = Inbox("C sync")
        ch_c = c.channel(topic, config(key="carol")).on_presence_sync(lambda: c_sync.push("sync"))
        await subscribe(ch_c)
        await c_sync.next(what="the sync from presence_state")
        await wait_until(lambda: "bob" in ch_c.presence_state(), "C sees bob", ch_c.presence_state)
        assert [p["who"] for p in ch_c.presence_state()["bob"]] == ["bob"]

    run(body)


# ================================================================== postgres_changes
def test_postgres_changes_under_rls():
    async def body(clients):
        A = await signed_in_user("A")
        B = await signed_in_user("B")
        clients += [A.client, B.client]

        def mk(u: User, label: str):
            inbox = {k: Inbox(f"{label} {k}") for k in ("ins", "upd", "del", "all")}
            ch = (
                u.client.channel(uniq(f"changes-{label}"), config())
                .on_postgres_changes(Ev.Insert, inbox["ins"].push, table="rt_notes", schema="public")
                .on_postgres_changes(Ev.Update, inbox["upd"].push, table="rt_notes", schema="public")
                .on_postgres_changes(Ev.Delete, inbox["del"].push, table="rt_notes", schema="public")
                .on_postgres_changes(Ev.All, inbox["all"].push, table="rt_notes", schema="public")
            )
            return ch, inbox

        ch_a, a = mk(A, "A")
        ch_b, b = mk(B, "B")
        await subscribe_changes(ch_a)
        await subscribe_changes(ch_b)
        ids = [cb.id for cb in ch_a.postgres_changes_callbacks]
        assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 4, ids

        columns = columns_of("rt_notes")
        id_a = insert_note(A.id, title="for A", score=5, done=True, tags=["x", "y z"], meta={"k": [1, 2], "s": "ü"}, ratio="1.25")
        id_b = insert_note(B.id, title="for B", score=6)

        ins = await a["ins"].next(what="A's INSERT")
        data = ins["data"]
        assert data["type"] == "INSERT"
        assert (data["schema"], data["table"]) == ("public", "rt_notes")
        assert data["record"] == row_json("rt_notes", id_a)
        assert "old_record" not in data
        assert data["columns"] == columns
        assert data["errors"] is None
        ts = datetime.fromisoformat(data["commit_timestamp"].replace("Z", "+00:00"))
        assert abs((datetime.now(timezone.utc) - ts).total_seconds()) < 60, data["commit_timestamp"]
        assert ins["ids"] == [ch_a.postgres_changes_callbacks[0].id, ch_a.postgres_changes_callbacks[3].id]
        assert record_of(await a["all"].next(what="A's * INSERT")) == data["record"]
        assert record_of(await b["ins"].next(what="B's INSERT")) == row_json("rt_notes", id_b)

        sql("update public.rt_notes set title = 'A updated', score = score + 10, tags = array['q'] where id = %s", (id_a,))
        sql("update public.rt_notes set title = 'B updated' where id = %s", (id_b,))
        upd = (await a["upd"].next(what="A's UPDATE"))["data"]
        assert upd["type"] == "UPDATE"
        assert upd["record"] == row_json("rt_notes", id_a)
        assert upd["old_record"] == {"id": id_a}
        assert record_of(await b["upd"].next(what="B's UPDATE"))["title"] == "B updated"

        sql("delete from public.rt_notes where id = %s", (id_a,))
        dele = (await a["del"].next(what="A's DELETE"))["data"]
        assert dele["type"] == "DELETE"
        assert dele["old_record"] == {"id": id_a}
        assert "record" not in dele
        await a["all"].next(lambda p: p["data"]["type"] == "UPDATE", "A's * UPDATE")
        await a["all"].next(lambda p: p["data"]["type"] == "DELETE", "A's * DELETE")

        await a["ins"].none(what="A got another INSERT (B's row?)")
        await a["upd"].none(what="A got another UPDATE (B's row?)", wait=0.01)
        await b["ins"].none(what="B got another INSERT (A's row?)", wait=0.01)
        await b["upd"].none(what="B got another UPDATE (A's row?)", wait=0.01)
        sql("delete from public.rt_notes where id = %s", (id_b,))

    run(body)


def test_postgres_changes_filters():
    async def body(clients):
        A = await signed_in_user("A")
        clients.append(A.client)
        tag = uuid.uuid4().hex[:8]
        filters = {
            "eq": f"title=eq.{tag}-b",
            "neq": "score=neq.2",
            "in": f"title=in.({tag}-a,{tag}-c)",
            "gt": "score=gt.2",
            "lte": "score=lte.1",
        }
        inboxes = {k: Inbox(f"filter {f}") for k, f in filters.items()}
        ch = A.client.channel(uniq("filters"), config())
        for k, f in filters.items():
            ch.on_postgres_changes(Ev.Insert, inboxes[k].push, table="rt_notes", schema="public", filter=f)
        await subscribe_changes(ch)
        ids = {name: insert_note(A.id, title=f"{tag}-{name}", score=score) for name, score in [("a", 1), ("b", 2), ("c", 3), ("d", 4)]}
        expected = {"eq": ["b"], "neq": ["a", "c", "d"], "in": ["a", "c"], "gt": ["c", "d"], "lte": ["a"]}
        for k, want in expected.items():
            got = [record_of(await inboxes[k].next(what=f"row {i + 1} of {len(want)} for {filters[k]}")) for i in range(len(want))]
            assert sorted(r["id"] for r in got) == sorted(ids[w] for w in want), filters[k]
            for r in got:
                assert r == row_json("rt_notes", r["id"])
        for k in expected:
            await inboxes[k].none(what=f"an extra row for {filters[k]}", wait=QUIET if k == "eq" else 0.01)
        sql("delete from public.rt_notes where owner = %s", (A.id,))

    run(body)


def test_postgres_changes_replica_identity_full():
    async def body(clients):
        A = await signed_in_user("A")
        clients.append(A.client)
        got = Inbox("rt_full changes")
        await subscribe_changes(A.client.channel(uniq("full"), config()).on_postgres_changes(Ev.All, got.push, table="rt_full", schema="public"))
        (row_id,) = sql("insert into public.rt_full (owner, body, n) values (%s, 'before', 1) returning id", (A.id,))[0]
        before = row_json("rt_full", row_id)
        assert record_of(await got.next(lambda p: p["data"]["type"] == "INSERT", "the INSERT")) == before
        sql("update public.rt_full set body = 'after', n = 2 where id = %s", (row_id,))
        upd = (await got.next(lambda p: p["data"]["type"] == "UPDATE", "the UPDATE"))["data"]
        assert upd["record"] == row_json("rt_full", row_id)
        assert upd["old_record"] == before
        sql("delete from public.rt_full where id = %s", (row_id,))
        dele = (await got.next(lambda p: p["data"]["type"] == "DELETE", "the DELETE"))["data"]
        assert dele["old_record"] == {"id": row_id}, "RLS: a DELETE carries only the primary key"

    run(body)


def test_postgres_changes_unpublished_table_is_a_channel_error():
    async def body(clients):
        a = await new_client()
        clients.append(a)
        ch = a.channel(uniq("unpublished"), config()).on_postgres_changes(Ev.All, lambda _: None, table="rt_unpublished", schema="public")
        rec = Status(ch.topic)
        await ch.subscribe(rec)
        # the join succeeds, then the system error (status "error") makes supabase-py report CHANNEL_ERROR
        first = await rec.inbox.next(what="SUBSCRIBED")
        assert first[0] == RealtimeSubscribeStates.SUBSCRIBED
        status, err = await rec.inbox.next(lambda s: s[0] == RealtimeSubscribeStates.CHANNEL_ERROR, "CHANNEL_ERROR from the system error")
        payload = json.loads(str(err))
        assert payload["extension"] == "postgres_changes"
        assert payload["status"] == "error"
        assert payload["message"] == (
            "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given "
            "connect parameters: [schema: public, table: rt_unpublished, filters: []]"
        )
        assert payload["channel"] == ch.topic.removeprefix("realtime:")
        await a.remove_channel(ch)

    run(body)


# ================================================================== private channels
UNAUTHORIZED = "Unauthorized: You do not have permissions to read from this Channel topic: {}"


def test_private_channels_follow_realtime_messages_policies():
    async def body(clients):
        A = await signed_in_user("A")
        B = await signed_in_user("B")
        anon = await new_client()
        clients += [A.client, B.client, anon]
        room = f"room:{A.id}"
        got = Inbox("A private broadcasts")
        ch_a = A.client.channel(room, config(private=True, self_=True)).on_broadcast("*", got.push)
        await subscribe(ch_a)

        for who, c in (("B", B.client), ("anon", anon)):
            ch = c.channel(room, config(private=True))
            status, err = await subscribe(ch, RealtimeSubscribeStates.CHANNEL_ERROR)
            assert json.loads(str(err)) == {"reason": UNAUTHORIZED.format(room)}, who
            await c.remove_channel(ch)

        await subscribe(B.client.channel(f"room:{B.id}", config(private=True)))

        # A may write (insert policy): its own broadcast comes back (self)
        await ch_a.send_broadcast("mine", {"ok": 1})
        assert await got.next(lambda m: m["event"] == "mine", "the echo of A's private broadcast") == bc("mine", {"ok": 1})
        # B's REST broadcast to A's room: 202, but the insert policy drops it
        await B.client.channel(room, config(private=True)).http_send("intrude", {"from": "B"})
        await A.client.channel(room, config(private=True)).http_send("own-rest", {"from": "A"})
        await got.next(lambda m: m["event"] == "own-rest", "A's own REST broadcast")
        await got.none(lambda m: m["event"] == "intrude", "a broadcast the write policy refuses must not be delivered")

    run(body)


def test_private_channels_receive_realtime_send_and_broadcast_changes():
    async def body(clients):
        A = await signed_in_user("A")
        clients.append(A.client)
        room = f"room:{A.id}"
        got = Inbox("A private broadcasts")
        await subscribe(A.client.channel(room, config(private=True)).on_broadcast("*", got.push))

        sql("select realtime.send(%s::jsonb, 'note', %s, true)", (json.dumps({"text": "from SQL ü", "n": 7}), room))
        sent = await got.next(lambda m: m["event"] == "note", "the realtime.send broadcast")
        payload = dict(sent["payload"])
        sent_id = payload.pop("id")
        assert payload == {"text": "from SQL ü", "n": 7}
        (stored_id,) = sql("select id::text from realtime.messages where topic = %s and event = 'note'", (room,))[0]
        assert sent_id == stored_id
        sql("""select realtime.send('{"pub":1}'::jsonb, 'public-note', %s, false)""", (room,))

        (row_id,) = sql("insert into public.rt_private_notes (owner, body) values (%s, 'hello') returning id", (A.id,))[0]
        ins = (await got.next(lambda m: m["event"] == "INSERT", "the broadcast_changes INSERT"))["payload"]
        assert (ins["operation"], ins["table"], ins["schema"]) == ("INSERT", "rt_private_notes", "public")
        assert ins["record"] == row_json("rt_private_notes", row_id)
        assert ins["old_record"] is None
        before = row_json("rt_private_notes", row_id)
        sql("update public.rt_private_notes set body = 'changed' where id = %s", (row_id,))
        upd = (await got.next(lambda m: m["event"] == "UPDATE", "the broadcast_changes UPDATE"))["payload"]
        assert upd["record"] == row_json("rt_private_notes", row_id)
        assert upd["old_record"] == before
        sql("delete from public.rt_private_notes where id = %s", (row_id,))
        dele = (await got.next(lambda m: m["event"] == "DELETE", "the broadcast_changes DELETE"))["payload"]
        assert dele["record"] is None
        assert dele["old_record"]["body"] == "changed"
        await got.none(lambda m: m["event"] == "public-note", "a public realtime.send must not reach a private channel")

    run(body)


# ================================================================== set_auth
def test_set_auth_refreshes_joined_channels_and_later_joins():
    async def body(clients):
        A = await signed_in_user("A")
        c = await new_client()
        clients += [A.client, c]
        got = Inbox("C changes")
        ch = c.channel(uniq("setauth"), config()).on_postgres_changes(
            Ev.Insert, got.push, table="rt_notes", schema="public", filter=f"owner=eq.{A.id}"
        )
        await subscribe_changes(ch)
        insert_note(A.id, title="before set_auth")
        await got.none(what="anon must not see an RLS-protected row")

        await c.realtime.set_auth(A.token)
        assert c.realtime.access_token == A.token
        second = insert_note(A.id, title="after set_auth")
        assert record_of(await got.next(what="the row A may see, after set_auth"))["id"] == second
        assert ch.is_joined

        # a new private join carries the token
        await subscribe(c.channel(f"room:{A.id}", config(private=True)))
        sql("delete from public.rt_notes where owner = %s", (A.id,))

    run(body)


def test_set_auth_with_an_expired_token():
    async def body(clients):
        c = await new_client()
        clients.append(c)
        now = int(time.time())
        expired = jwt.encode(
            {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated", "iat": now - 7200, "exp": now - 3600},
            JWT_SECRET,
            algorithm="HS256",
        )
        ch = c.channel(uniq("expire"), config())
        await subscribe(ch)
        await c.realtime.set_auth(expired)
        # the server pushes a system error and closes the channel: CHANNEL_ERROR, then CLOSED
        status, err = await ch.statuses.next(lambda s: s[0] == RealtimeSubscribeStates.CHANNEL_ERROR, "CHANNEL_ERROR")
        payload = json.loads(str(err))
        assert payload["extension"] == "system"
        assert payload["status"] == "error"
        assert payload["message"].startswith("Token has expired ") and payload["message"].endswith(" seconds ago"), payload
        await ch.statuses.next(lambda s: s[0] == RealtimeSubscribeStates.CLOSED, "CLOSED")

        ch2 = c.channel(uniq("expired-join"), config())
        status, err = await subscribe(ch2, RealtimeSubscribeStates.CHANNEL_ERROR)
        reason = json.loads(str(err))["reason"]
        assert reason.startswith("InvalidJWTToken: Token has expired ") and reason.endswith(" seconds ago"), reason
        await c.remove_channel(ch2)

    run(body)


def test_service_role_sees_every_row_and_full_deletes():
    async def body(clients):
        s = await new_client(SERVICE_KEY)
        clients.append(s)
        got = Inbox("service changes")
        await subscribe_changes(s.channel(uniq("service"), config()).on_postgres_changes(Ev.All, got.push, table="rt_full", schema="public"))
        owner = str(uuid.uuid4())
        (row_id,) = sql("insert into public.rt_full (owner, body) values (%s, 'svc') returning id", (owner,))[0]
        row = row_json("rt_full", row_id)
        ins = await got.next(lambda p: p["data"]["type"] == "INSERT" and p["data"]["record"]["id"] == row_id, "the INSERT")
        assert record_of(ins) == row
        sql("delete from public.rt_full where id = %s", (row_id,))
        dele = await got.next(lambda p: p["data"]["type"] == "DELETE" and p["data"]["old_record"]["id"] == row_id, "the DELETE")
        assert dele["data"]["old_record"] == row

    run(body)
