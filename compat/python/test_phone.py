"""supabase-py (pinned in requirements.txt) against forge-server's phone sign-in (GoTrue API).

Phone sign-up and its SMS confirmation, password sign-in with a phone, OTP sign-in by text,
single-use codes, phone changes, resending codes, reauthentication by text and admin-created
phone users. The main server runs with phone sign-in on, sms_autoconfirm off and no SMS
provider: texts are read from its local SMS outbox (GET /auth/v1/admin/outbox?phone=, service
role). Every test uses its own random numbers (+1555 and 7 random digits), so the tests are
independent of each other and of the other suites.
Run through compat/run.sh, which starts the servers and exports the FORGE_* variables.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs

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
    SERVICE_KEY,
    client,
    last_request,
    last_response,
    sql_one,
    sql_value,
)


service = client(SERVICE_KEY)
admin = service.auth.admin


# ------------------------------------------------------------------ helpers
def new_phone() -> str:
    """A fresh number in E.164 form: +1555 and 7 random digits (never 0000000)."""
    return f"+1555{secrets.randbelow(9_999_999) + 1:07d}"


def stored(phone: str) -> str:
    """How the server stores a number: E.164 digits without `+`."""
    return phone.removeprefix("+")


def texts(phone: str) -> list[dict]:
    """The texts the main server kept in its local SMS outbox for `phone`, oldest first.
    (The request goes through httpx too: check wire() before reading the outbox.)"""
    return admin_outbox(phone=phone)["texts"]


def texts_of(phone: str, kinds: list[str]) -> list[dict]:
    """Asserts the outbox holds exactly `kinds` for `phone` (oldest first); returns the texts."""
    sent = texts(phone)
    assert [t["kind"] for t in sent] == kinds, f"texts to {phone}: {sent}"
    for t in sent:
        assert t["to"] == phone
        assert t["sent_at"]
    return sent


def code_of(text: dict) -> str:
    """The code of a text (6 digits on this server)."""
    m = re.search(r"\b(\d{6})\b", text["body"])
    assert m, f"no code in {text}"
    return m.group(1)


def other_code(code: str) -> str:
    return "111111" if code == "000000" else "000000"


def phone_sign_up(data: dict | None = None):
    """Signs a new number up with a password (unconfirmed: sms_autoconfirm is off):
    (client, phone, response)."""
    c = fresh()
    phone = new_phone()
    res = c.auth.sign_up({"phone": phone, "password": PASSWORD, "options": {"data": data or {}}})
    assert res.session is None, "without sms_autoconfirm sign_up returns no session"
    return c, phone, res


def confirmed_phone_user():
    """A phone user confirmed through the texted code, signed in on its own client:
    (client, phone, verify response)."""
    _, phone, signup = phone_sign_up()
    [text] = texts_of(phone, ["otp"])
    c = fresh()
    res = c.auth.verify_otp({"phone": phone, "token": code_of(text), "type": "sms"})
    assert res.session is not None and res.user.id == signup.user.id
    return c, phone, res


# ------------------------------------------------------------------ sign-up by phone
def test_phone_sign_up_returns_unconfirmed_user_and_texts_a_code():
    c = fresh()
    phone = new_phone()
    res = c.auth.sign_up({"phone": phone, "password": PASSWORD, "options": {"data": {"nickname": "ada"}}})
    assert wire() == ("POST", "/auth/v1/signup", 200, None)
    assert res.session is None
    user = res.user
    assert UUID_RE.match(user.id)
    assert user.phone == stored(phone)
    assert user.phone_confirmed_at is None
    assert not user.email
    assert user.confirmation_sent_at is not None
    assert user.user_metadata == {"nickname": "ada"}
    assert user.app_metadata == {"provider": "phone", "providers": ["phone"]}
    assert [(i.provider, i.user_id, i.identity_data["phone"]) for i in user.identities] == [
        ("phone", user.id, stored(phone))
    ]
    assert c.auth.get_session() is None

    [text] = texts_of(phone, ["otp"])
    assert text["channel"] == "sms"
    assert re.fullmatch(r"\d{6}", code_of(text))
    assert sql_one(
        "select phone, phone_confirmed_at is not null as confirmed, email from auth.users where id = %s", (user.id,)
    ) == {"phone": stored(phone), "confirmed": False, "email": None}


def test_phone_password_sign_in_before_verification_is_phone_not_confirmed():
    _, phone, _ = phone_sign_up()
    err = auth_fails(
        lambda: fresh().auth.sign_in_with_password({"phone": phone, "password": PASSWORD}), 400, "phone_not_confirmed"
    )
    assert err.name == "AuthApiError"
    assert wire() == ("POST", "/auth/v1/token", 400, "phone_not_confirmed")
    assert parse_qs(last_request().url.query.decode())["grant_type"] == ["password"]


def test_verify_otp_sms_confirms_and_signs_in_then_password_sign_in_works():
    _, phone, signup = phone_sign_up({"nickname": "bob"})
    user_id = signup.user.id
    [text] = texts_of(phone, ["otp"])

    c = fresh()
    res = c.auth.verify_otp({"phone": phone, "token": code_of(text), "type": "sms"})
    assert wire() == ("POST", "/auth/v1/verify", 200, None)
    assert res.user.id == user_id
    assert res.user.phone == stored(phone)
    assert res.user.phone_confirmed_at is not None
    assert [i.provider for i in res.user.identities] == ["phone"]
    assert res.user.identities[0].identity_data["phone_verified"] is True
    claims = assert_session(res.session, user_id)
    assert claims["phone"] == stored(phone)
    assert claims["user_metadata"] == {"nickname": "bob"}
    assert amr_methods(res.session.access_token) == ["otp"]
    assert c.auth.get_session().access_token == res.session.access_token
    assert sql_value("select phone_confirmed_at is not null from auth.users where id = %s", (user_id,)) is True

    signed_in = fresh().auth.sign_in_with_password({"phone": phone, "password": PASSWORD})
    assert wire() == ("POST", "/auth/v1/token", 200, None)
    assert_session(signed_in.session, user_id)
    assert amr_methods(signed_in.session.access_token) == ["password"]
    assert claims_of(signed_in.session.access_token)["session_id"] != claims["session_id"]
    assert signed_in.user.phone == stored(phone)

    auth_fails(
        lambda: fresh().auth.sign_in_with_password({"phone": phone, "password": "not-the-password"}),
        400,
        "invalid_credentials",
    )


def test_sms_code_is_single_use_and_a_wrong_code_is_otp_expired():
    _, phone, signup = phone_sign_up()
    code = code_of(texts_of(phone, ["otp"])[0])

    err = auth_fails(
        lambda: fresh().auth.verify_otp({"phone": phone, "token": other_code(code), "type": "sms"}), 403, "otp_expired"
    )
    assert err.message == "Token has expired or is invalid"
    assert wire() == ("POST", "/auth/v1/verify", 403, "otp_expired")

    # the wrong attempt did not spend the right code
    res = fresh().auth.verify_otp({"phone": phone, "token": code, "type": "sms"})
    assert_session(res.session, signup.user.id)

    auth_fails(lambda: fresh().auth.verify_otp({"phone": phone, "token": code, "type": "sms"}), 403, "otp_expired")


def test_resend_sms_texts_a_new_code_and_answers_unknown_numbers_alike():
    _, phone, signup = phone_sign_up()
    res = fresh().auth.resend({"type": "sms", "phone": phone})
    known_wire, known_body = wire(), last_response().json()
    assert known_wire == ("POST", "/auth/v1/resend", 200, None)
    assert known_body == {}
    assert (res.user, res.session, res.message_id) == (None, None, None)
    sent = texts_of(phone, ["otp", "otp"])

    unknown = new_phone()
    other = fresh().auth.resend({"type": "sms", "phone": unknown})
    assert (wire(), last_response().json()) == (known_wire, known_body)
    assert other == res
    texts_of(unknown, [])

    # the new code replaces the first one (one pending code per user, as in GoTrue)
    if code_of(sent[0]) != code_of(sent[1]):
        first = code_of(sent[0])
        auth_fails(lambda: fresh().auth.verify_otp({"phone": phone, "token": first, "type": "sms"}), 403, "otp_expired")
    verified = fresh().auth.verify_otp({"phone": phone, "token": code_of(sent[1]), "type": "sms"})
    assert_session(verified.session, signup.user.id)
    assert verified.user.phone_confirmed_at is not None


# ------------------------------------------------------------------ OTP sign-in by text
def test_sign_in_with_otp_phone_creates_the_user_and_verify_otp_signs_in():
    c = fresh()
    phone = new_phone()
    sent = c.auth.sign_in_with_otp({"phone": phone, "options": {"data": {"source": "otp"}}})
    assert wire() == ("POST", "/auth/v1/otp", 200, None)
    assert (sent.user, sent.session) == (None, None)
    assert isinstance(sent.message_id, str) and sent.message_id
    assert sent.message_id == last_response().json()["message_id"]

    created = sql_one(
        "select id, phone, phone_confirmed_at is not null as confirmed, raw_user_meta_data as meta"
        " from auth.users where phone = %s",
        (stored(phone),),
    )
    user_id = created.pop("id")
    assert UUID_RE.match(user_id)
    assert created == {"phone": stored(phone), "confirmed": False, "meta": {"source": "otp"}}

    [text] = texts_of(phone, ["otp"])
    assert text["channel"] == "sms"
    res = c.auth.verify_otp({"phone": phone, "token": code_of(text), "type": "sms"})
    assert res.user.id == user_id
    assert res.user.phone == stored(phone)
    assert res.user.phone_confirmed_at is not None
    assert res.user.user_metadata == {"source": "otp"}
    assert res.user.app_metadata == {"provider": "phone", "providers": ["phone"]}
    assert_session(res.session, user_id)
    assert amr_methods(res.session.access_token) == ["otp"]
    assert c.auth.get_session().access_token == res.session.access_token

    # a known (now confirmed) number gets a new code, which signs in the same user
    fresh().auth.sign_in_with_otp({"phone": phone})
    again = texts_of(phone, ["otp", "otp"])
    second = fresh().auth.verify_otp({"phone": phone, "token": code_of(again[1]), "type": "sms"})
    assert_session(second.session, user_id)
    assert sql_value("select count(*) from auth.users where phone = %s", (stored(phone),)) == 1


def test_sign_in_with_otp_phone_without_create_user_is_otp_disabled():
    phone = new_phone()
    auth_fails(
        lambda: fresh().auth.sign_in_with_otp({"phone": phone, "options": {"should_create_user": False}}),
        422,
        "otp_disabled",
    )
    assert wire() == ("POST", "/auth/v1/otp", 422, "otp_disabled")
    texts_of(phone, [])
    assert sql_value("select count(*) from auth.users where phone = %s", (stored(phone),)) == 0

    # for a known number the same call sends a code
    _, known, _ = confirmed_phone_user()
    sent = fresh().auth.sign_in_with_otp({"phone": known, "options": {"should_create_user": False}})
    assert sent.message_id
    texts_of(known, ["otp", "otp"])


def test_sign_in_with_otp_phone_over_whatsapp():
    phone = new_phone()
    sent = fresh().auth.sign_in_with_otp({"phone": phone, "options": {"channel": "whatsapp"}})
    assert wire() == ("POST", "/auth/v1/otp", 200, None)
    assert sent.message_id
    [text] = texts_of(phone, ["otp"])
    assert text["channel"] == "whatsapp"
    res = fresh().auth.verify_otp({"phone": phone, "token": code_of(text), "type": "sms"})
    assert_session(res.session, res.user.id)
    assert res.user.phone == stored(phone)


# ------------------------------------------------------------------ phone change and reauthentication
def test_update_user_phone_then_verify_phone_change():
    c, phone, signed_in = confirmed_phone_user()
    user_id = signed_in.user.id
    new = new_phone()
    updated = c.auth.update_user({"phone": new}).user
    assert wire() == ("PUT", "/auth/v1/user", 200, None)
    assert updated.id == user_id
    assert updated.phone == stored(phone), "the number changes only once the new one is verified"
    assert updated.new_phone == stored(new)
    assert sql_one("select phone, phone_change from auth.users where id = %s", (user_id,)) == {
        "phone": stored(phone),
        "phone_change": stored(new),
    }

    [text] = texts_of(new, ["phone_change"])
    assert text["channel"] == "sms"
    texts_of(phone, ["otp"])  # nothing more to the old number

    # the code is bound to the new number
    auth_fails(
        lambda: c.auth.verify_otp({"phone": phone, "token": code_of(text), "type": "phone_change"}), 403, "otp_expired"
    )

    res = c.auth.verify_otp({"phone": new, "token": code_of(text), "type": "phone_change"})
    assert wire() == ("POST", "/auth/v1/verify", 200, None)
    assert res.user.id == user_id
    assert res.user.phone == stored(new)
    assert not res.user.new_phone
    assert res.user.phone_confirmed_at is not None
    assert [i.identity_data["phone"] for i in res.user.identities if i.provider == "phone"] == [stored(new)]
    claims = assert_session(res.session, user_id)
    assert claims["phone"] == stored(new)
    assert c.auth.get_session().user.phone == stored(new)
    assert sql_one(
        "select phone, coalesce(phone_change, '') as phone_change from auth.users where id = %s", (user_id,)
    ) == {"phone": stored(new), "phone_change": ""}

    # the new number signs in with the password, the old one no longer does
    assert_session(fresh().auth.sign_in_with_password({"phone": new, "password": PASSWORD}).session, user_id)
    auth_fails(
        lambda: fresh().auth.sign_in_with_password({"phone": phone, "password": PASSWORD}), 400, "invalid_credentials"
    )


def test_update_user_phone_taken_by_another_user_is_phone_exists():
    _, taken, _ = confirmed_phone_user()
    c, phone, signed_in = confirmed_phone_user()
    auth_fails(lambda: c.auth.update_user({"phone": taken}), 422, "phone_exists")
    assert wire() == ("PUT", "/auth/v1/user", 422, "phone_exists")
    texts_of(taken, ["otp"])
    assert sql_one(
        "select phone, coalesce(phone_change, '') as phone_change from auth.users where id = %s", (signed_in.user.id,)
    ) == {"phone": stored(phone), "phone_change": ""}


def test_reauthenticate_texts_a_phone_user_a_nonce():
    c, phone, _ = confirmed_phone_user()
    res = c.auth.reauthenticate()
    assert wire() == ("GET", "/auth/v1/reauthenticate", 200, None)
    assert (res.user, res.session) == (None, None)
    sent = texts_of(phone, ["otp", "reauthentication"])
    assert sent[1]["channel"] == "sms"
    nonce = code_of(sent[1])
    c.auth.update_user({"password": "nonce-changed-1", "nonce": nonce})
    assert wire() == ("PUT", "/auth/v1/user", 200, None)
    fresh().auth.sign_in_with_password({"phone": phone, "password": "nonce-changed-1"})
    auth_fails(
        lambda: fresh().auth.sign_in_with_password({"phone": phone, "password": PASSWORD}), 400, "invalid_credentials"
    )


# ------------------------------------------------------------------ admin
def test_admin_create_user_with_confirmed_phone_signs_in_with_password():
    phone = new_phone()
    user = admin.create_user(
        {"phone": phone, "phone_confirm": True, "password": PASSWORD, "user_metadata": {"name": "Grace"}}
    ).user
    assert wire() == ("POST", "/auth/v1/admin/users", 200, None)
    assert UUID_RE.match(user.id)
    assert user.phone == stored(phone)
    assert user.phone_confirmed_at is not None
    assert not user.email
    assert user.user_metadata == {"name": "Grace"}
    assert user.app_metadata == {"provider": "phone", "providers": ["phone"]}
    assert [(i.provider, i.identity_data["phone"]) for i in user.identities] == [("phone", stored(phone))]
    texts_of(phone, [])  # a confirmed admin-created user gets no text

    c = fresh()
    res = c.auth.sign_in_with_password({"phone": phone, "password": PASSWORD})
    claims = assert_session(res.session, user.id)
    assert claims["phone"] == stored(phone)
    assert amr_methods(res.session.access_token) == ["password"]
    assert c.auth.get_user().user.phone == stored(phone)

    auth_fails(
        lambda: admin.create_user({"phone": phone, "phone_confirm": True, "password": PASSWORD}), 422, "phone_exists"
    )
