"""Helpers the supabase-py auth suites share (test_auth.py, test_phone.py): session and JWT
checks, error assertions, and the main server's local outboxes (mail and texts)."""

from __future__ import annotations

import re
import time

import httpx
import jwt
import pytest
from supabase import Client
from supabase_auth.errors import AuthApiError

from forge_compat import ANON_KEY, JWT_SECRET, SERVICE_KEY, URL, client, last_request, last_response

PASSWORD = "correct-horse-42"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# The server's published signing keys (GET /auth/v1/.well-known/jwks.json), read once.
JWKS = httpx.get(f"{URL}/auth/v1/.well-known/jwks.json").json()


def claims_of(token: str) -> dict:
    """The claims of an access token, checking its signature: an ES256 or RS256 token with the
    published key its `kid` names, a legacy HS256 one with the project secret."""
    header = jwt.get_unverified_header(token)
    if header["alg"] == "HS256":
        return jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert header["alg"] in ("ES256", "RS256"), header
    jwk = next((k for k in JWKS["keys"] if k["kid"] == header.get("kid")), None)
    assert jwk is not None, f"kid {header.get('kid')} is not published in {JWKS}"
    key = jwt.PyJWK.from_dict(jwk).key
    return jwt.decode(token, key, algorithms=[header["alg"]], audience="authenticated")


def amr_methods(token: str) -> list[str]:
    return [entry["method"] for entry in claims_of(token)["amr"]]


def wire() -> tuple[str, str, int, str | None]:
    """Method, path, status and x-sb-error-code of the last exchange."""
    req, res = last_request(), last_response()
    return req.method, req.url.path, res.status_code, res.headers.get("x-sb-error-code")


def auth_fails(call, status: int, code: str | None, error_type: type = AuthApiError):
    """Runs `call`, expects an auth error of `error_type` with this status and code."""
    with pytest.raises(error_type) as info:
        call()
    err = info.value
    assert err.status == status, f"status of {err!r} ({err.message})"
    assert err.code == code, f"code of {err!r} ({err.message})"
    assert last_response().status_code == status
    return err


def admin_outbox(**recipient: str) -> dict:
    """The main server's local outbox for one recipient (`email=` or `phone=`), as the service
    role. (The request goes through httpx too: check wire() before reading the outbox.)"""
    res = httpx.get(
        f"{URL}/auth/v1/admin/outbox",
        params=recipient,
        headers={"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"},
    )
    assert res.status_code == 200
    return res.json()


def fresh() -> Client:
    return client(ANON_KEY)


def assert_session(session, user_id: str) -> dict:
    assert session.token_type == "bearer"
    assert session.expires_in == 3600
    now = int(time.time())
    assert abs(session.expires_at - (now + 3600)) <= 30
    assert isinstance(session.refresh_token, str) and len(session.refresh_token) >= 12
    assert session.user.id == user_id
    claims = claims_of(session.access_token)
    assert claims["sub"] == user_id
    assert claims["aud"] == "authenticated"
    assert claims["role"] == "authenticated"
    assert claims["exp"] == session.expires_at
    assert claims["exp"] - claims["iat"] == 3600
    assert UUID_RE.match(claims["session_id"])
    return claims
