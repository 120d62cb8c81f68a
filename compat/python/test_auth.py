"""supabase-py (pinned in requirements.txt) against forge-server's /auth/v1 (GoTrue API).

Sign-up, password sign-in, the user endpoints, refresh and sign-out, anonymous, OTP and PKCE
sign-in, password recovery, the admin API, TOTP MFA (codes from pyotp), RLS through /rest/v1
with the users' sessions, and mail over real SMTP (a second server, see compat/run.sh).
Every test signs up its own users (random addresses), so the tests are independent.
Run through compat/run.sh, which starts the servers and exports the FORGE_* variables.
"""

from __future__ import annotations

import email as email_lib
import email.policy
import email.utils
import glob
import json
import os
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pyotp
import pytest
from postgrest import APIError
from supabase import Client, ClientOptions, create_client
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from auth_helpers import (
    PASSWORD,
    UUID_RE,
    admin_outbox,
    amr_methods,
    assert_session,
    auth_fails,
    claims_of,
    fresh,
    wire,
)
from forge_compat import (
    JWT_SECRET,
    SERVICE_KEY,
    URL,
    client,
    fails,
    last_request,
    last_response,
    sql_exec,
    sql_one,
    sql_rows,
    sql_value,
    user_token,
)
from storage_helpers import storage_fails


service = client(SERVICE_KEY)
admin = service.auth.admin


# ------------------------------------------------------------------ helpers
def new_email(label: str) -> str:
    return f"py-{label}-{uuid.uuid4().hex[:8]}@example.com"


def outbox(address: str) -> list[dict]:
    """The mails the main server kept in its local outbox for `address`, oldest first."""
    return admin_outbox(email=address)["messages"]


def otp_of(html: str) -> str:
    m = re.search(r"code: (\d{6,10})", html)
    assert m, f"no OTP in {html}"
    return m.group(1)


def link_of(html: str) -> str:
    m = re.search(r'href="([^"]+)"', html)
    assert m, f"no link in {html}"
    return m.group(1).replace("&amp;", "&")


def signed_up(label: str, data: dict | None = None):
    """Signs up a confirmed user (autoconfirm is on) on a fresh client: (client, email, response)."""
    c = fresh()
    address = new_email(label)
    res = c.auth.sign_up({"email": address, "password": PASSWORD, "options": {"data": data or {}}})
    assert res.session is not None, "autoconfirm: sign_up returns a session"
    return c, address, res


# ------------------------------------------------------------------ sign-up and sign-in
def test_sign_up_returns_session_and_gotrue_user():
    c = fresh()
    address = new_email("signup")
    res = c.auth.sign_up({"email": address, "password": PASSWORD, "options": {"data": {"nickname": "ada"}}})
    assert wire() == ("POST", "/auth/v1/signup", 200, None)
    # supabase-py's PKCE flow (its default) still sends a code challenge with sign-up
    body = json.loads(last_request().content)
    assert body["code_challenge_method"] == "s256"
    user = res.user
    assert UUID_RE.match(user.id)
    assert (user.aud, user.role, user.email, user.phone) == ("authenticated", "authenticated", address, "")
    assert user.email_confirmed_at is not None and user.last_sign_in_at is not None
    assert user.is_anonymous is False
    assert user.app_metadata == {"provider": "email", "providers": ["email"]}
    assert user.user_metadata == {"nickname": "ada"}
    assert [(i.provider, i.user_id, i.identity_data["email"]) for i in user.identities] == [("email", user.id, address)]

    claims = assert_session(res.session, user.id)
    assert claims["email"] == address
    assert claims["aal"] == "aal1"
    assert claims["is_anonymous"] is False
    assert amr_methods(res.session.access_token) == ["password"]
    assert c.auth.get_session().access_token == res.session.access_token
    assert sql_one(
        "select email, email_confirmed_at is not null as confirmed from auth.users where id = %s", (user.id,)
    ) == {"email": address, "confirmed": True}


def test_sign_up_confirmed_address_again_is_user_already_exists():
    _, address, _ = signed_up("dup")
    auth_fails(lambda: fresh().auth.sign_up({"email": address, "password": PASSWORD}), 422, "user_already_exists")


def test_sign_up_weak_password():
    err = auth_fails(
        lambda: fresh().auth.sign_up({"email": new_email("weak"), "password": "short"}),
        422,
        "weak_password",
        AuthWeakPasswordError,
    )
    assert err.reasons == ["length"]
    # GoTrue's message names the configured minimum (internal/api/password.go).
    assert err.message == "Password should be at least 8 characters."


def test_sign_in_with_password_and_invalid_credentials():
    _, address, first = signed_up("signin")
    c = fresh()
    res = c.auth.sign_in_with_password({"email": address, "password": PASSWORD})
    claims = assert_session(res.session, first.user.id)
    assert claims["session_id"] != claims_of(first.session.access_token)["session_id"]
    assert amr_methods(res.session.access_token) == ["password"]

    err = auth_fails(
        lambda: fresh().auth.sign_in_with_password({"email": address, "password": "not-the-password"}),
        400,
        "invalid_credentials",
    )
    assert err.message == "Invalid login credentials"
    assert last_response().headers["x-sb-error-code"] == "invalid_credentials"
    auth_fails(
        lambda: fresh().auth.sign_in_with_password({"email": new_email("nobody"), "password": PASSWORD}),
        400,
        "invalid_credentials",
    )


# ------------------------------------------------------------------ the signed-in user
def test_get_user_and_update_user_metadata():
    c, address, res = signed_up("meta", {"nickname": "ada", "lang": "en"})
    got = c.auth.get_user()
    assert wire() == ("GET", "/auth/v1/user", 200, None)
    assert (got.user.id, got.user.email) == (res.user.id, address)

    updated = c.auth.update_user({"data": {"theme": "dark", "lang": None}})
    assert wire() == ("PUT", "/auth/v1/user", 200, None)
    assert updated.user.user_metadata == {"nickname": "ada", "theme": "dark"}
    assert sql_value("select raw_user_meta_data from auth.users where id = %s", (res.user.id,)) == {
        "nickname": "ada",
        "theme": "dark",
    }
    assert c.auth.get_session().user.user_metadata == {"nickname": "ada", "theme": "dark"}


def test_update_password_then_sign_in_with_it():
    c, address, _ = signed_up("passwd")
    c.auth.update_user({"password": "battery-staple-77"})
    fresh().auth.sign_in_with_password({"email": address, "password": "battery-staple-77"})
    auth_fails(
        lambda: fresh().auth.sign_in_with_password({"email": address, "password": PASSWORD}), 400, "invalid_credentials"
    )
    auth_fails(lambda: c.auth.update_user({"password": "battery-staple-77"}), 422, "same_password")


def test_refresh_session_rotates_the_refresh_token():
    c, _, res = signed_up("refresh")
    before = claims_of(res.session.access_token)
    refreshed = c.auth.refresh_session()
    assert wire() == ("POST", "/auth/v1/token", 200, None)
    assert parse_qs(last_request().url.query.decode())["grant_type"] == ["refresh_token"]
    assert refreshed.session.refresh_token != res.session.refresh_token
    after = assert_session(refreshed.session, res.user.id)
    assert after["session_id"] == before["session_id"]
    assert c.auth.get_session().refresh_token == refreshed.session.refresh_token

    auth_fails(lambda: fresh().auth.refresh_session("not-a-refresh-token"), 400, "refresh_token_not_found")


def test_sign_out_revokes_the_session():
    c, _, res = signed_up("signout")
    c.auth.sign_out()
    assert wire() == ("POST", "/auth/v1/logout", 204, None)
    assert parse_qs(last_request().url.query.decode())["scope"] == ["global"]
    assert c.auth.get_session() is None

    err = auth_fails(lambda: fresh().auth.get_user(res.session.access_token), 403, "session_not_found")
    assert wire()[:2] == ("GET", "/auth/v1/user")
    assert err.name == "AuthApiError"
    auth_fails(lambda: fresh().auth.refresh_session(res.session.refresh_token), 400, "refresh_token_not_found")


def test_sign_out_others_keeps_the_current_session():
    c1, address, _ = signed_up("scopes")
    c2 = fresh()
    c2.auth.sign_in_with_password({"email": address, "password": PASSWORD})
    c1.auth.sign_out({"scope": "others"})
    assert wire() == ("POST", "/auth/v1/logout", 204, None)
    assert c1.auth.get_user().user.email == address
    auth_fails(lambda: c2.auth.get_user(), 403, "session_not_found")


# ------------------------------------------------------------------ anonymous, OTP, PKCE, recovery
def test_sign_in_anonymously():
    c = fresh()
    res = c.auth.sign_in_anonymously({"options": {"data": {"guest": True}}})
    assert wire() == ("POST", "/auth/v1/signup", 200, None)
    user = res.user
    assert user.is_anonymous is True
    assert not user.email
    assert user.user_metadata == {"guest": True}
    assert user.app_metadata == {"provider": "anonymous", "providers": ["anonymous"]}
    assert user.identities == []
    claims = assert_session(res.session, user.id)
    assert claims["is_anonymous"] is True
    assert amr_methods(res.session.access_token) == ["anonymous"]


def test_sign_in_with_otp_and_verify_otp_email():
    c = fresh()
    address = new_email("otp")
    sent = c.auth.sign_in_with_otp({"email": address})
    assert (sent.user, sent.session) == (None, None)
    assert wire() == ("POST", "/auth/v1/otp", 200, None)
    mails = outbox(address)
    assert len(mails) == 1 and mails[0]["to"] == address
    code = otp_of(mails[0]["html"])

    wrong = "111111" if code == "000000" else "000000"
    err = auth_fails(lambda: c.auth.verify_otp({"email": address, "token": wrong, "type": "email"}), 403, "otp_expired")
    assert err.message == "Token has expired or is invalid"

    res = c.auth.verify_otp({"email": address, "token": code, "type": "email"})
    assert wire() == ("POST", "/auth/v1/verify", 200, None)
    assert res.user.email == address and res.user.email_confirmed_at is not None
    assert_session(res.session, res.user.id)
    assert c.auth.get_session().access_token == res.session.access_token
    auth_fails(lambda: fresh().auth.verify_otp({"email": address, "token": code, "type": "email"}), 403, "otp_expired")


def test_pkce_magic_link_exchange_code_for_session():
    """The PKCE flow (supabase-py's default): the mailed link redirects with ?code=, which the
    same client exchanges with its stored code verifier (grant_type=pkce)."""
    _, address, signup = signed_up("pkce")
    c = fresh()
    c.auth.sign_in_with_otp({"email": address})
    body = json.loads(last_request().content)
    assert body["code_challenge_method"] == "s256" and body["code_challenge"]
    link = link_of(outbox(address)[-1]["html"])

    redirect = httpx.get(link, follow_redirects=False)
    assert redirect.status_code == 303
    location = urlsplit(redirect.headers["location"])
    code = parse_qs(location.query)["code"][0]
    assert "access_token" not in location.fragment

    res = c.auth.exchange_code_for_session({"auth_code": code})
    assert wire() == ("POST", "/auth/v1/token", 200, None)
    assert parse_qs(last_request().url.query.decode())["grant_type"] == ["pkce"]
    assert_session(res.session, signup.user.id)
    assert amr_methods(res.session.access_token) == ["magiclink"]
    assert c.auth.get_session().access_token == res.session.access_token

    # the code is single-use, and useless without the verifier
    auth_fails(lambda: fresh().auth.exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 64}), 404, "flow_state_not_found")


def test_reset_password_for_email_answers_known_and_unknown_alike():
    _, address, _ = signed_up("recover")
    unknown = new_email("unknown")
    assert fresh().auth.reset_password_for_email(address) is None
    known_wire, known_body = wire(), last_response().json()
    assert fresh().auth.reset_password_for_email(unknown) is None
    assert (wire(), last_response().json()) == (known_wire, known_body)
    assert known_wire == ("POST", "/auth/v1/recover", 200, None)
    assert known_body == {}
    assert outbox(unknown) == []
    mails = outbox(address)
    assert [m["subject"] for m in mails] == ["Reset Your Password"]

    c = fresh()
    res = c.auth.verify_otp({"email": address, "token": otp_of(mails[0]["html"]), "type": "recovery"})
    assert_session(res.session, res.user.id)
    c.auth.update_user({"password": "recovered-pass-9"})
    fresh().auth.sign_in_with_password({"email": address, "password": "recovered-pass-9"})


# ------------------------------------------------------------------ admin
def test_admin_create_get_update_delete_user():
    address = new_email("admin")
    created = admin.create_user(
        {
            "email": address,
            "password": PASSWORD,
            "email_confirm": True,
            "user_metadata": {"name": "Grace"},
            "app_metadata": {"plan": "pro"},
        }
    ).user
    assert wire() == ("POST", "/auth/v1/admin/users", 200, None)
    assert created.email == address and created.email_confirmed_at is not None
    assert created.user_metadata == {"name": "Grace"}
    assert created.app_metadata == {"provider": "email", "providers": ["email"], "plan": "pro"}
    session = fresh().auth.sign_in_with_password({"email": address, "password": PASSWORD}).session
    assert claims_of(session.access_token)["app_metadata"]["plan"] == "pro"
    auth_fails(lambda: admin.create_user({"email": address, "password": PASSWORD}), 422, "email_exists")

    assert admin.get_user_by_id(created.id).user.email == address
    updated = admin.update_user_by_id(created.id, {"user_metadata": {"b": 2}, "ban_duration": "1h"}).user
    assert updated.user_metadata == {"name": "Grace", "b": 2}
    banned_until = datetime.fromisoformat(updated.banned_until.replace("Z", "+00:00"))
    assert abs(banned_until - (datetime.now(timezone.utc) + timedelta(hours=1))) < timedelta(minutes=2)
    auth_fails(
        lambda: fresh().auth.sign_in_with_password({"email": address, "password": PASSWORD}), 400, "user_banned"
    )

    admin.delete_user(created.id)
    assert wire() == ("DELETE", f"/auth/v1/admin/users/{created.id}", 200, None)
    auth_fails(lambda: admin.get_user_by_id(created.id), 404, "user_not_found")
    assert sql_value("select count(*) from auth.users where id = %s", (created.id,)) == 0


def test_admin_list_users_pages_with_link_and_total():
    for i in range(3):
        admin.create_user({"email": new_email(f"list{i}"), "email_confirm": True})
    total = sql_value("select count(*) from auth.users where deleted_at is null")
    per_page = -(-total // 3)
    last = -(-total // per_page)
    users = admin.list_users(page=2, per_page=per_page)
    expected = sql_rows(
        "select id from auth.users where deleted_at is null order by created_at desc, id desc limit %s offset %s",
        (per_page, per_page),
    )
    assert [u.id for u in users] == [r["id"] for r in expected]
    res = last_response()
    assert res.headers["x-total-count"] == str(total)
    links = [f'</auth/v1/admin/users?page={last}&per_page={per_page}>; rel="last"']
    if last > 2:
        links.insert(0, f'</auth/v1/admin/users?page=3&per_page={per_page}>; rel="next"')
    assert res.headers["link"] == ", ".join(links)
    assert res.json()["aud"] == "authenticated"


def test_admin_api_refuses_non_admin_keys():
    auth_fails(lambda: fresh().auth.admin.list_users(), 403, "not_admin")


def test_admin_generate_link_and_verify_token_hash():
    _, address, signup = signed_up("genlink")
    link = admin.generate_link({"type": "magiclink", "email": address, "options": {"redirect_to": f"{URL}/welcome"}})
    props = link.properties
    assert link.user.id == signup.user.id
    assert props.verification_type == "magiclink"
    assert props.redirect_to == f"{URL}/welcome"
    assert re.fullmatch(r"\d{6}", props.email_otp)
    assert re.fullmatch(r"[0-9a-f]{56}", props.hashed_token)
    query = parse_qs(urlsplit(props.action_link).query)
    assert query["token"] == [props.hashed_token] and query["type"] == ["magiclink"]

    c = fresh()
    res = c.auth.verify_otp({"token_hash": props.hashed_token, "type": "magiclink"})
    assert_session(res.session, signup.user.id)
    auth_fails(lambda: fresh().auth.verify_otp({"token_hash": props.hashed_token, "type": "magiclink"}), 403, "otp_expired")

    # the email OTP of a new link works too (email + token)
    props = admin.generate_link({"type": "magiclink", "email": address}).properties
    res = fresh().auth.verify_otp({"email": address, "token": props.email_otp, "type": "magiclink"})
    assert res.user.id == signup.user.id


def test_admin_invite_user_by_email_sends_an_invite():
    address = new_email("invite")
    user = admin.invite_user_by_email(address, {"data": {"team": "blue"}}).user
    assert wire() == ("POST", "/auth/v1/invite", 200, None)
    assert user.email == address
    assert user.invited_at is not None
    assert user.email_confirmed_at is None
    assert user.user_metadata == {"team": "blue"}
    mails = outbox(address)
    assert [m["subject"] for m in mails] == ["You have been invited"]
    assert parse_qs(urlsplit(link_of(mails[0]["html"])).query)["type"] == ["invite"]
    res = fresh().auth.verify_otp({"email": address, "token": otp_of(mails[0]["html"]), "type": "invite"})
    assert res.user.email_confirmed_at is not None
    assert_session(res.session, user.id)


# ------------------------------------------------------------------ MFA
def test_mfa_totp_enroll_challenge_verify_unenroll():
    c, address, signup = signed_up("mfa")
    user_id = signup.user.id
    enrolled = c.auth.mfa.enroll({"factor_type": "totp", "friendly_name": "phone app"})
    assert wire() == ("POST", "/auth/v1/factors", 200, None)
    assert UUID_RE.match(enrolled.id)
    assert (enrolled.type, enrolled.friendly_name) == ("totp", "phone app")
    assert enrolled.totp.qr_code.startswith("data:image/svg+xml;utf-8,")
    assert "<svg" in enrolled.totp.qr_code
    parsed = pyotp.parse_uri(enrolled.totp.uri)
    assert parsed.secret == enrolled.totp.secret
    assert address in enrolled.totp.uri.replace("%40", "@")
    totp = pyotp.TOTP(enrolled.totp.secret)

    pending = c.auth.mfa.list_factors()
    assert [(f.id, f.status) for f in pending.all] == [(enrolled.id, "unverified")]
    assert pending.totp == []
    assert c.auth.mfa.get_authenticator_assurance_level().current_level == "aal1"

    wrong = f"{(int(totp.now()) + 500000) % 1000000:06d}"
    auth_fails(
        lambda: c.auth.mfa.challenge_and_verify({"factor_id": enrolled.id, "code": wrong}), 422, "mfa_verification_failed"
    )

    challenge = c.auth.mfa.challenge({"factor_id": enrolled.id})
    assert wire() == ("POST", f"/auth/v1/factors/{enrolled.id}/challenge", 200, None)
    assert challenge.factor_type == "totp"
    assert time.time() < challenge.expires_at <= time.time() + 310
    verified = c.auth.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id, "code": totp.now()})
    assert (verified.token_type, verified.expires_in, verified.user.id) == ("bearer", 3600, user_id)
    session = c.auth.get_session()
    assert session.access_token == verified.access_token
    claims = assert_session(session, user_id)
    assert claims["aal"] == "aal2"
    assert amr_methods(verified.access_token) == ["totp", "password"]

    level = c.auth.mfa.get_authenticator_assurance_level()
    assert (level.current_level, level.next_level) == ("aal2", "aal2")
    assert level.current_authentication_methods[0].method == "totp"
    factors = c.auth.mfa.list_factors()
    assert [(f.id, f.status, f.friendly_name) for f in factors.totp] == [(enrolled.id, "verified", "phone app")]

    # an aal1 session may not remove a verified factor; the aal2 one may
    c2 = fresh()
    c2.auth.sign_in_with_password({"email": address, "password": PASSWORD})
    level = c2.auth.mfa.get_authenticator_assurance_level()
    assert (level.current_level, level.next_level) == ("aal1", "aal2")
    auth_fails(lambda: c2.auth.mfa.unenroll({"factor_id": enrolled.id}), 422, "insufficient_aal")
    assert c.auth.mfa.unenroll({"factor_id": enrolled.id}).id == enrolled.id
    assert c.auth.mfa.list_factors().all == []
    assert sql_value("select count(*) from auth.mfa_factors where user_id = %s", (user_id,)) == 0


# ------------------------------------------------------------------ RLS with real sessions
def test_rls_each_user_sees_only_its_own_auth_notes():
    a, _, res_a = signed_up("rls-a")
    b, _, res_b = signed_up("rls-b")
    ids = [res_a.user.id, res_b.user.id]
    try:
        row_a = a.table("auth_notes").insert({"body": "note of a"}).execute().data
        assert [(r["owner"], r["body"]) for r in row_a] == [(res_a.user.id, "note of a")]
        row_b = b.table("auth_notes").insert({"body": "note of b"}).execute().data
        assert [r["owner"] for r in row_b] == [res_b.user.id]

        assert a.table("auth_notes").select("owner, body").execute().data == [{"owner": ids[0], "body": "note of a"}]
        assert b.table("auth_notes").select("owner, body").execute().data == [{"owner": ids[1], "body": "note of b"}]
        assert sql_rows("select owner::text, body from auth_notes where owner = any(%s::uuid[]) order by id", (ids,)) == [
            {"owner": ids[0], "body": "note of a"},
            {"owner": ids[1], "body": "note of b"},
        ]

        with pytest.raises(APIError) as info:
            a.table("auth_notes").insert({"owner": ids[1], "body": "forged"}).execute()
        assert info.value.code == "42501"
        assert last_response().status_code == 403
        assert fresh().table("auth_notes").select("*").execute().data == []
    finally:
        sql_exec("delete from auth_notes where owner = any(%s::uuid[])", (ids,))


# ------------------------------------------------------------------ manual identity linking
def test_manual_linking_is_off_by_default_link_and_unlink_are_404():
    """GoTrue's GOTRUE_SECURITY_MANUAL_LINKING_ENABLED defaults to false: both identity routes
    answer 404 manual_linking_disabled (internal/api/middleware.go requireManualLinkingEnabled)."""
    c, _, _ = signed_up("link")
    err = auth_fails(
        lambda: c.auth.link_identity({"provider": "github", "options": {"redirect_to": "http://localhost/x"}}),
        404,
        "manual_linking_disabled",
    )
    assert err.message == "Manual linking is disabled"
    assert wire() == ("GET", "/auth/v1/user/identities/authorize", 404, "manual_linking_disabled")
    identities = c.auth.get_user_identities().identities
    assert len(identities) == 1
    auth_fails(lambda: c.auth.unlink_identity(identities[0]), 404, "manual_linking_disabled")
    assert wire()[0] == "DELETE"
    assert len(c.auth.get_user_identities().identities) == 1


# ------------------------------------------------------------------ roles a token may name
def _forged(user, role: str) -> str:
    """A token signed with the project's JWT secret for `user`, naming `role`."""
    now = int(time.time())
    claims = {"sub": user.id, "role": role, "aud": "authenticated", "email": user.email, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize("role", ["postgres", "pg_read_all_data"])
def test_a_token_naming_a_role_beyond_the_api_roles_is_refused_everywhere(role):
    """Signed with the project's secret but naming a superuser or predefined role: 403 in each
    service's shape (PostgREST's 42501, GoTrue's bad_jwt, Storage's AccessDenied), never served."""
    _, _, res = signed_up(f"role-{role}")
    token = _forged(res.user, role)
    c = client(headers={"Authorization": f"Bearer {token}"})
    err = fails(lambda: c.table("countries").select("id").limit(1).execute(), 403, "42501")
    assert err.message == f'permission denied to set role "{role}"'
    auth_fails(lambda: fresh().auth.get_user(token), 403, "bad_jwt")
    storage_fails(lambda: c.storage.list_buckets(), "403", 403, f'permission denied to set role "{role}"')
    # The same user naming the authenticated role is served.
    ok = client(headers={"Authorization": f"Bearer {_forged(res.user, 'authenticated')}"})
    assert ok.table("countries").select("id").limit(1).execute().data is not None
    assert ok.storage.list_buckets() is not None


# ------------------------------------------------------------------ asymmetric signing keys
def test_sessions_are_signed_es256_and_get_claims_verifies_with_the_published_keys():
    """The access token names a published ES256 key; supabase-py's get_claims() verifies it with
    the JWKS (no GET /user); the legacy HS256 tokens of the JWT secret still work."""
    c, _, res = signed_up("claims")
    token = res.session.access_token
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    keys = httpx.get(f"{URL}/auth/v1/.well-known/jwks.json")
    assert keys.headers["cache-control"] == "public, max-age=600"
    jwk = next(k for k in keys.json()["keys"] if k["kid"] == header["kid"])
    assert (jwk["kty"], jwk["crv"], jwk["alg"], "d" in jwk) == ("EC", "P-256", "ES256", False)
    got = c.auth.get_claims()
    assert got is not None and got["claims"]["sub"] == res.user.id
    assert last_request().url.path == "/auth/v1/.well-known/jwks.json", "no GET /user"
    assert claims_of(token)["sub"] == res.user.id
    legacy = user_token(res.user.id)
    assert jwt.get_unverified_header(legacy)["alg"] == "HS256"
    assert fresh().auth.get_user(legacy).user.id == res.user.id


# ------------------------------------------------------------------ mail over SMTP (second server)
SMTP_ENV = (
    "FORGE_SMTP_URL",
    "FORGE_SMTP_ANON_KEY",
    "FORGE_SMTP_SERVICE_KEY",
    "FORGE_SMTP_MAIL_DIR",
    "FORGE_SMTP_SENDER",
    "FORGE_SMTP_SITE_URL",
)
needs_smtp = pytest.mark.skipif(
    any(not os.environ.get(v) for v in SMTP_ENV), reason="the SMTP server is started by compat/run.sh"
)


def smtp_client(key_var: str = "FORGE_SMTP_ANON_KEY") -> Client:
    options = ClientOptions(auto_refresh_token=False, persist_session=False, flow_type="implicit")
    return create_client(os.environ["FORGE_SMTP_URL"], os.environ[key_var], options=options)


def sink_records(address: str) -> list[dict]:
    """The messages the SMTP sink has received for `address` so far, oldest first."""
    found = []
    for path in sorted(glob.glob(os.path.join(os.environ["FORGE_SMTP_MAIL_DIR"], "*.json"))):
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if address in record["rcpt_tos"]:
            found.append(record)
    return found


def sink_messages(address: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
    """The messages the SMTP sink received for `address`, once there are `count` of them."""
    deadline = time.time() + timeout
    while True:
        found = sink_records(address)
        if len(found) >= count or time.time() > deadline:
            assert len(found) >= count, f"{len(found)} of {count} mails to {address} arrived"
            return found
        time.sleep(0.05)


def claims_of_any(token: str) -> dict:
    """Claims of a token from the SMTP server (another project secret: not verified here)."""
    return jwt.decode(token, options={"verify_signature": False})


@needs_smtp
def test_smtp_signup_confirmation_mail_and_verify_otp_signup():
    c = smtp_client()
    address = new_email("smtp")
    res = c.auth.sign_up({"email": address, "password": PASSWORD})
    assert res.session is None, "without autoconfirm sign-up returns no session"
    assert res.user.email == address
    assert res.user.email_confirmed_at is None
    assert res.user.confirmation_sent_at is not None

    # a second confirmation within the per-address interval (60 s) is refused
    with pytest.raises(AuthApiError) as info:
        c.auth.resend({"type": "signup", "email": address})
    assert (info.value.status, info.value.code) == (429, "over_email_send_rate_limit")

    [record] = sink_messages(address)
    assert record["rcpt_tos"] == [address]
    assert record["mail_from"] == email.utils.parseaddr(os.environ["FORGE_SMTP_SENDER"])[1]
    msg = email_lib.message_from_string(record["data"], policy=email.policy.default)
    assert msg["From"] == os.environ["FORGE_SMTP_SENDER"]
    assert msg["To"] == address
    assert msg["Subject"] == "Confirm Your Signup"
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    code = otp_of(parts["text/html"])
    assert code in parts["text/plain"]
    assert "<" not in parts["text/plain"]
    link = link_of(parts["text/html"])
    query = parse_qs(urlsplit(link).query)
    assert urlsplit(link).path == "/auth/v1/verify"
    assert query["type"] == ["signup"]
    assert query["redirect_to"] == [os.environ["FORGE_SMTP_SITE_URL"]]

    auth_fails(lambda: c.auth.sign_in_with_password({"email": address, "password": PASSWORD}), 400, "email_not_confirmed")
    verified = c.auth.verify_otp({"email": address, "token": code, "type": "signup"})
    assert verified.session is not None
    assert verified.user.email_confirmed_at is not None
    assert claims_of_any(verified.session.access_token)["sub"] == res.user.id
    assert c.auth.sign_in_with_password({"email": address, "password": PASSWORD}).session is not None


@needs_smtp
def test_smtp_redirect_to_must_be_allowed():
    site = os.environ["FORGE_SMTP_SITE_URL"]
    allowed, denied = new_email("redir-ok"), new_email("redir-no")
    smtp_client().auth.sign_up(
        {"email": allowed, "password": PASSWORD, "options": {"email_redirect_to": f"{site}/welcome/home"}}
    )
    smtp_client().auth.sign_up(
        {"email": denied, "password": PASSWORD, "options": {"email_redirect_to": "https://evil.example/steal"}}
    )

    def redirect_of(address: str) -> str:
        msg = email_lib.message_from_string(sink_messages(address)[0]["data"], policy=email.policy.default)
        link = link_of(msg.get_body(("html",)).get_content())
        return parse_qs(urlsplit(link).query)["redirect_to"][0]

    assert redirect_of(allowed) == f"{site}/welcome/home"
    assert redirect_of(denied) == site


@needs_smtp
def test_smtp_sign_up_of_a_confirmed_address_returns_a_fake_user():
    """With confirmation on, a sign-up for an already confirmed address answers a fake user
    (new random id, no session) shaped exactly like a new one. GoTrue leaves `identities`
    empty, which tells "already registered" apart; Forge does not, so sign-up does not reveal
    who is registered. Nothing is mailed."""
    address = new_email("smtp-known")
    known = smtp_client("FORGE_SMTP_SERVICE_KEY").auth.admin.create_user(
        {"email": address, "password": PASSWORD, "email_confirm": True}
    ).user
    res = smtp_client().auth.sign_up({"email": address, "password": "another-pass-1"})
    assert wire() == ("POST", "/auth/v1/signup", 200, None)
    assert res.session is None
    assert res.user.id != known.id
    assert res.user.email == address
    fresh_address = new_email("smtp-fresh")
    fresh = smtp_client().auth.sign_up({"email": fresh_address, "password": "another-pass-1"}).user
    assert fresh.identities is not None and len(fresh.identities) == 1
    assert res.user.identities is not None and len(res.user.identities) == 1
    assert res.user.identities[0].provider == fresh.identities[0].provider == "email"
    assert res.user.role == fresh.role == "authenticated"
    assert sorted(res.user.model_dump(exclude_none=True)) == sorted(fresh.model_dump(exclude_none=True))
    time.sleep(0.3)  # mail is sent before the response; leave a margin all the same
    assert sink_records(address) == []


@needs_smtp
def test_smtp_server_default_request_rate_limit_is_429():
    """The SMTP server keeps the default per-IP limits: /verify allows a burst of 30 requests per
    5 minutes (the other SMTP tests use a few of them), then answers 429 over_request_rate_limit."""
    c = smtp_client()
    refused = 0
    for _ in range(40):
        try:
            c.auth.verify_otp({"email": new_email("limit"), "token": "000000", "type": "email"})
        except AuthApiError as err:
            if err.status == 429:
                assert err.code == "over_request_rate_limit", err.message
                break
            assert (err.status, err.code) == (403, "otp_expired"), err.message
            refused += 1
    else:
        pytest.fail("40 requests to /verify were never rate limited")
    assert wire() == ("POST", "/auth/v1/verify", 429, "over_request_rate_limit")
    assert 25 <= refused <= 30, refused
