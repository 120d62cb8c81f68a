"""Shared helpers for the supabase-py compatibility tests.

Environment (exported by compat/run.sh), clients, HS256 JWTs signed with PyJWT, SQL access to
the same database over the Unix socket, and a recorder of every HTTP request the clients send
so that a failing test shows exactly what went over the wire.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
import jwt
import psycopg
from postgrest import APIError
from supabase import Client, ClientOptions, create_client


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the suite through compat/run.sh")
    return value


URL = _env("FORGE_URL")
ANON_KEY = _env("FORGE_ANON_KEY")
SERVICE_KEY = _env("FORGE_SERVICE_KEY")
with open(_env("FORGE_JWT_SECRET_FILE"), encoding="utf-8") as _f:
    JWT_SECRET = _f.read().strip()
DB_SOCKET_DIR = _env("FORGE_DB_SOCKET_DIR")

USER_A = "11111111-1111-4111-8111-111111111111"
USER_B = "22222222-2222-4222-8222-222222222222"

# ------------------------------------------------------------------ request recording
EXCHANGES: list[tuple[httpx.Request, httpx.Response]] = []
_original_send = httpx.Client.send


def _recording_send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
    response = _original_send(self, request, **kwargs)
    EXCHANGES.append((request, response))
    return response


httpx.Client.send = _recording_send  # type: ignore[method-assign]


def last_response() -> httpx.Response:
    assert EXCHANGES, "no HTTP request was sent"
    return EXCHANGES[-1][1]


def last_request() -> httpx.Request:
    assert EXCHANGES, "no HTTP request was sent"
    return EXCHANGES[-1][0]


def _role_of(auth: str | None) -> str:
    if not auth or not auth.startswith("Bearer "):
        return auth or "(none)"
    try:
        claims = jwt.decode(auth[7:], options={"verify_signature": False})
        sub = f" sub={claims['sub']}" if "sub" in claims else ""
        return f"Bearer <jwt role={claims.get('role')}{sub}>"
    except jwt.PyJWTError:
        return "Bearer <opaque>"


def describe_exchanges() -> str:
    lines = []
    for req, res in EXCHANGES:
        url = req.url
        query = url.query.decode()
        lines.append(f"  {req.method} {url.path}{'?' + query if query else ''}")
        if query:
            lines.append(f"    (decoded: {url.path}?{unquote_plus(query)})")
        for k, v in req.headers.items():
            if k.lower() in ("apikey", "x-client-info", "host", "accept-encoding", "connection", "user-agent", "content-length"):
                continue
            lines.append(f"    {k}: {_role_of(v) if k.lower() == 'authorization' else v}")
        extra = " ".join(
            f"{h}={res.headers[h]}" for h in ("content-type", "content-range", "proxy-status") if h in res.headers
        )
        lines.append(f"    -> {res.status_code} {extra}")
    return "\n".join(lines)


# ------------------------------------------------------------------ clients
def client(key: str = ANON_KEY, headers: dict[str, str] | None = None) -> Client:
    options = ClientOptions(auto_refresh_token=False, persist_session=False)
    if headers:
        options = ClientOptions(headers={**options.headers, **headers}, auto_refresh_token=False, persist_session=False)
    return create_client(URL, key, options=options)


def user_client(token: str) -> Client:
    return client(ANON_KEY, {"Authorization": f"Bearer {token}"})


def user_token(sub: str, secret: str = JWT_SECRET) -> str:
    now = int(time.time())
    claims = {"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


# ------------------------------------------------------------------ SQL
_conn: psycopg.Connection | None = None


def db() -> psycopg.Connection:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(host=DB_SOCKET_DIR, port=5432, user="postgres", dbname="postgres", autocommit=True)
    return _conn


def close_db() -> None:
    global _conn
    if _conn is not None:
        _conn.close()
        _conn = None


def sql_rows(query: str, params: tuple | list | None = None) -> list[Any]:
    """Rows of `query` as the JSON Postgres itself produces (same encoding as the REST API)."""
    row = db().execute(f"select coalesce(json_agg(q), '[]'::json)::text from ({query}) q", params).fetchone()
    return json.loads(row[0])


def sql_one(query: str, params: tuple | list | None = None) -> Any:
    rows = sql_rows(query, params)
    assert len(rows) == 1, f"SQL reference query returned {len(rows)} rows: {query}"
    return rows[0]


def sql_value(query: str, params: tuple | list | None = None) -> Any:
    return db().execute(query, params).fetchone()[0]


def sql_csv(query: str) -> str:
    """The CSV body PostgREST produces: a header line, then each row's record text without parens."""
    header, body = db().execute(
        f"""select (select string_agg(k, ',') from (select json_object_keys(row_to_json(h)) as k
                      from (select * from ({query}) h0 limit 1) h) a),
                   (select coalesce(string_agg(substring(q::text, 2, length(q::text) - 2), E'\\n'), '') from ({query}) q)"""
    ).fetchone()
    return f"{header}\n{body}"


def planned_rows(query: str) -> int:
    plan = db().execute(f"explain (format json) {query}").fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return plan[0]["Plan"]["Plan Rows"]


def sql_exec(query: str, params: tuple | list | None = None) -> None:
    """Runs SQL without a result, e.g. to seed or clean up the rows a write test owns."""
    db().execute(query, params)


def sql_error(
    query: str,
    params: tuple | list | None = None,
    *,
    role: str | None = None,
    claims: dict | None = None,
    read_only: bool = False,
) -> dict[str, Any]:
    """Runs `query` in a transaction that is always rolled back and returns the error Postgres
    raised, shaped like a PostgREST error body ({code, message, details, hint}). `role` is set with
    SET LOCAL ROLE, `claims` become request.jwt.claims (read by auth.uid()), `read_only` makes the
    transaction READ ONLY."""
    conn = db()
    try:
        with conn.transaction(force_rollback=True):
            if read_only:
                conn.execute("set transaction read only")
            if claims is not None:
                conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
            if role:
                conn.execute(f"set local role {role}")
            conn.execute(query, params)
    except psycopg.Error as e:
        return {
            "code": e.sqlstate,
            "message": e.diag.message_primary,
            "details": e.diag.message_detail,
            "hint": e.diag.message_hint,
        }
    raise AssertionError(f"the SQL reference statement did not fail: {query}")


def error_fields(err: Any) -> dict[str, Any]:
    """The fields of a PostgREST error body, from a postgrest APIError."""
    body = err.json()
    return {k: body.get(k) for k in ("code", "message", "details", "hint")}


def fails(call, status: int, code: str) -> APIError:
    """Runs `call`, expects an APIError with `code` and the HTTP `status`; returns the error."""
    with pytest.raises(APIError) as info:
        call()
    err = info.value
    assert err.code == code, f"code for {err.json()}"
    assert last_response().status_code == status, f"status for {err.json()}"
    return err
