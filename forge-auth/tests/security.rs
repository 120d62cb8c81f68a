//! The security cases: token reuse and revocation, forged tokens, rate limits, enumeration,
//! and single-use TOTP codes.

mod common;

use common::AssertError as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Api, api, api_with};
use forge_auth::{AuthConfig, RateLimits};
use serde_json::{Value, json};

#[tokio::test]
async fn reusing_a_rotated_refresh_token_after_the_window_revokes_the_session() {
    let t = api().await;
    let s = t.sign_up("a@example.com", "password-1234").await;
    let rt1 = s["refresh_token"].as_str().expect("rt").to_owned();
    let s2 = t.refresh(&rt1).await.json();
    let rt2 = s2["refresh_token"].as_str().expect("rt").to_owned();

    // Within the reuse window (a second tab refreshing at once): accepted, and the first
    // successor stays valid.
    let fork = t.refresh(&rt1).await;
    assert_eq!(fork.status, 200, "{}", fork.body);
    assert_ne!(fork.json()["refresh_token"], rt2);

    // Later, the same rotated token is a theft signal: the whole session goes.
    sqlx::query("update auth.refresh_tokens set updated_at = now() - interval '11 seconds' where revoked")
        .execute(t.db.pool())
        .await
        .expect("age");
    t.refresh(&rt1).await.assert_error(400, "refresh_token_already_used");
    t.refresh(&rt2).await.assert_error(400, "refresh_token_not_found");
    let at = s2["access_token"].as_str().expect("at");
    t.send("GET", "/auth/v1/user", Some(at), "").await.assert_error(403, "session_not_found");
    let sessions: i64 =
        sqlx::query_scalar("select count(*) from auth.sessions").fetch_one(t.db.pool()).await.expect("count");
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn logout_revokes_every_refresh_token_of_the_user() {
    let t = api().await;
    let a = t.sign_up("b@example.com", "password-1234").await;
    let b = t.login("b@example.com", "password-1234").await.json();
    let r = t.send("POST", "/auth/v1/logout", a["access_token"].as_str(), "").await;
    assert_eq!(r.status, 204, "{}", r.body);
    for s in [&a, &b] {
        t.refresh(s["refresh_token"].as_str().expect("rt")).await.assert_error(400, "refresh_token_not_found");
    }
    let live: i64 =
        sqlx::query_scalar("select count(*) from auth.refresh_tokens").fetch_one(t.db.pool()).await.expect("count");
    assert_eq!(live, 0);
    t.send("POST", "/auth/v1/logout", None, "").await.assert_error(403, "bad_jwt");
}

fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

#[tokio::test]
async fn expired_tampered_and_unsigned_tokens_are_rejected() {
    let t = api().await;
    let s = t.sign_up("c@example.com", "password-1234").await;
    let good = s["access_token"].as_str().expect("at");
    assert_eq!(t.send("GET", "/auth/v1/user", Some(good), "").await.status, 200);
    let mut claims = Api::claims(good);

    // Expired (past the leeway), though correctly signed.
    let mut expired = claims.as_object().expect("claims").clone();
    expired.insert("exp".into(), json!(time::OffsetDateTime::now_utc().unix_timestamp() - 300));
    let token = t.project.keys().sign_hs256(&expired).expect("sign");
    t.send("GET", "/auth/v1/user", Some(&token), "").await.assert_error(403, "bad_jwt");

    // Tampered: another user's id under the original signature.
    claims["sub"] = json!("00000000-0000-4000-8000-000000000000");
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    t.send("GET", "/auth/v1/user", Some(&tampered), "").await.assert_error(403, "bad_jwt");

    // alg none, with and without a signature part.
    let none = forge(&json!({ "alg": "none", "typ": "JWT" }), &Api::claims(good), "");
    t.send("GET", "/auth/v1/user", Some(&none), "").await.assert_error(403, "bad_jwt");
    let none = forge(&json!({ "alg": "None", "typ": "JWT" }), &Api::claims(good), "x");
    t.send("GET", "/auth/v1/user", Some(&none), "").await.assert_error(403, "bad_jwt");

    // Signed with another secret.
    let other = t.db.project_with_secret("test", b"another-secret-that-is-long-enough-0000");
    let foreign = other.keys().sign_hs256(Api::claims(good).as_object().expect("claims")).expect("sign");
    t.send("GET", "/auth/v1/user", Some(&foreign), "").await.assert_error(403, "bad_jwt");

    // Wrong audience.
    let mut aud = Api::claims(good).as_object().expect("claims").clone();
    aud.insert("aud".into(), json!("someone-else"));
    let token = t.project.keys().sign_hs256(&aud).expect("sign");
    t.send("GET", "/auth/v1/user", Some(&token), "").await.assert_error(403, "bad_jwt");

    // Signed with the project secret, but naming a role requests may not switch to (a
    // superuser, a predefined role): refused as GoTrue refuses a bad JWT, on the user and
    // admin routes alike.
    for role in ["postgres", "pg_read_all_data"] {
        let mut forged = Api::claims(good).as_object().expect("claims").clone();
        forged.insert("role".into(), json!(role));
        let token = t.project.keys().sign_hs256(&forged).expect("sign");
        let r = t.send("GET", "/auth/v1/user", Some(&token), "").await;
        r.assert_error(403, "bad_jwt");
        assert!(r.json()["msg"].as_str().is_some_and(|m| m.contains("permission denied to set role")), "{}", r.body);
        t.send("GET", "/auth/v1/admin/users", Some(&token), "").await.assert_error(403, "bad_jwt");
    }

    // A valid token for a user who no longer exists.
    let mut ghost = Api::claims(good).as_object().expect("claims").clone();
    ghost.insert("sub".into(), json!("00000000-0000-4000-8000-000000000001"));
    ghost.remove("session_id");
    let token = t.project.keys().sign_hs256(&ghost).expect("sign");
    t.send("GET", "/auth/v1/user", Some(&token), "").await.assert_error(403, "user_not_found");
}

#[tokio::test]
async fn rate_limits_trigger_per_client_address() {
    let limits = RateLimits::default().with_otp_per_5min(2).with_token_per_5min(3).with_verify_per_5min(2);
    let t = api_with(AuthConfig::default().with_rate_limits(limits).with_max_frequency(0)).await;
    let body = json!({ "email": "d@example.com" }).to_string();
    for _ in 0..2 {
        assert_eq!(t.send_from("10.0.0.1", "POST", "/auth/v1/recover", None, &body).await.status, 200);
    }
    t.send_from("10.0.0.1", "POST", "/auth/v1/recover", None, &body).await.assert_error(429, "over_request_rate_limit");
    assert_eq!(t.send_from("10.0.0.2", "POST", "/auth/v1/recover", None, &body).await.status, 200, "another client");

    let login = json!({ "email": "d@example.com", "password": "whatever-123" }).to_string();
    for _ in 0..3 {
        let r = t.send_from("10.0.0.3", "POST", "/auth/v1/token?grant_type=password", None, &login).await;
        r.assert_error(400, "invalid_credentials");
    }
    let r = t.send_from("10.0.0.3", "POST", "/auth/v1/token?grant_type=password", None, &login).await;
    r.assert_error(429, "over_request_rate_limit");

    let verify = json!({ "type": "email", "email": "d@example.com", "token": "000000" }).to_string();
    for _ in 0..2 {
        t.send_from("10.0.0.4", "POST", "/auth/v1/verify", None, &verify).await.assert_error(403, "otp_expired");
    }
    t.send_from("10.0.0.4", "POST", "/auth/v1/verify", None, &verify)
        .await
        .assert_error(429, "over_request_rate_limit");
    // A link clicked over the limit still lands on the redirect, with the error in it.
    let link = t.send_from("10.0.0.4", "GET", "/auth/v1/verify?type=signup&token=000000", None, "").await;
    assert_eq!(link.status, 303, "{}", link.body);
    let location = link.header("location").expect("a redirect");
    assert!(location.contains("error_code=over_request_rate_limit"), "{location}");

    // Requests without a valid session are refused for that, and spend no one's budget:
    // the limit is checked after the session (otp_per_5min also guards PUT /user).
    for _ in 0..3 {
        let r = t.send_from("10.0.0.5", "PUT", "/auth/v1/user", Some("not-a-jwt"), r#"{"data":{}}"#).await;
        r.assert_error(403, "bad_jwt");
    }
    let ann = t.sign_up("ann@example.com", "password-1234").await;
    let token = ann["access_token"].as_str().expect("token");
    for _ in 0..2 {
        let r = t.send_from("10.0.0.5", "PUT", "/auth/v1/user", Some(token), r#"{"data":{"a":1}}"#).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = t.send_from("10.0.0.5", "PUT", "/auth/v1/user", Some(token), r#"{"data":{"a":1}}"#).await;
    r.assert_error(429, "over_request_rate_limit");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_in_gotrue_shape() {
    let t = api().await;
    let big = format!(r#"{{"email":"a@example.com","pad":"{}"}}"#, "x".repeat(3 << 20));
    t.send("POST", "/auth/v1/otp", None, &big).await.assert_error(413, "validation_failed");
    t.send("POST", "/auth/v1/signup", None, &big).await.assert_error(413, "validation_failed");
}

#[tokio::test]
async fn the_same_address_gets_one_mail_per_interval() {
    let t = api().await;
    t.sign_up("e@example.com", "password-1234").await;
    assert_eq!(t.post("/auth/v1/recover", json!({ "email": "e@example.com" })).await.status, 200);
    let again = t.post("/auth/v1/recover", json!({ "email": "e@example.com" })).await;
    again.assert_error(429, "over_email_send_rate_limit");
    assert_eq!(t.mails_to("e@example.com"), 1);
}

/// Replaces values that differ between any two answers (ids, timestamps) by their type.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let volatile = k.ends_with("id") || k.ends_with("_at") || k == "sub" || k == "email";
                    (k.clone(), if volatile { json!(format!("<{}>", type_name(v))) } else { shape(v) })
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        other => other.clone(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::String(_) => "string",
        _ => "other",
    }
}

#[tokio::test]
async fn enumeration_safe_responses_do_not_tell_known_from_unknown_addresses() {
    let t = api_with(AuthConfig::default().with_mailer_autoconfirm(false)).await;
    let r = t
        .admin(
            "POST",
            "/auth/v1/admin/users",
            json!({ "email": "known@example.com", "password": "password-1234", "email_confirm": true }),
        )
        .await;
    assert_eq!(r.status, 200);

    for path in ["/auth/v1/recover", "/auth/v1/magiclink"] {
        let known = t.post(path, json!({ "email": "known@example.com" })).await;
        let unknown = t.post(path, json!({ "email": "unknown@example.com" })).await;
        assert_eq!((known.status, known.body.as_str()), (unknown.status, unknown.body.as_str()), "{path}");
        // And a second request within the interval is refused alike.
        let known = t.post(path, json!({ "email": "known@example.com" })).await;
        let unknown = t.post(path, json!({ "email": "unknown@example.com" })).await;
        assert_eq!(known.status, 429, "{path}: {}", known.body);
        assert_eq!(
            (known.status, known.json()["code"].clone()),
            (unknown.status, unknown.json()["code"].clone()),
            "{path}"
        );
    }
    let known = t.post("/auth/v1/resend", json!({ "type": "signup", "email": "known@example.com" })).await;
    let unknown = t.post("/auth/v1/resend", json!({ "type": "signup", "email": "nobody@example.com" })).await;
    assert_eq!((known.status, known.body.as_str()), (unknown.status, unknown.body.as_str()));

    // Sign-up with confirmation on: a registered address answers exactly like a new one.
    t.admin(
        "POST",
        "/auth/v1/admin/users",
        json!({ "email": "known2@example.com", "password": "password-1234", "email_confirm": true }),
    )
    .await;
    let known = t.post("/auth/v1/signup", json!({ "email": "known2@example.com", "password": "password-5678" })).await;
    let fresh = t.post("/auth/v1/signup", json!({ "email": "fresh@example.com", "password": "password-5678" })).await;
    assert_eq!(known.status, fresh.status);
    assert_eq!(shape(&known.json()), shape(&fresh.json()));
    assert_eq!(known.json()["email"], "known2@example.com");
    assert_eq!(t.mails_to("known2@example.com"), 0, "sign-up sent nothing to the registered address");
    assert_eq!(t.login("known2@example.com", "password-1234").await.status, 200, "the password was not changed");
    // A second sign-up within the interval is refused alike.
    let known = t.post("/auth/v1/signup", json!({ "email": "known2@example.com", "password": "password-5678" })).await;
    let fresh = t.post("/auth/v1/signup", json!({ "email": "fresh@example.com", "password": "password-5678" })).await;
    assert_eq!((known.status.as_u16(), fresh.status.as_u16()), (429, 429));
}

fn totp_code(secret_b32: &str, offset_steps: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).expect("base32");
    let totp = totp_rs::Builder::new().with_secret(secret).with_account_name("t".to_owned()).build().expect("totp");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() + offset_steps * 30;
    totp.generate(u64::try_from(now).expect("time")).to_string()
}

#[tokio::test]
async fn totp_mfa_upgrades_the_session_and_each_code_is_usable_once() {
    let t = api().await;
    let s = t.sign_up("f@example.com", "password-1234").await;
    let at = s["access_token"].as_str().expect("at").to_owned();
    let enroll = t
        .send(
            "POST",
            "/auth/v1/factors",
            Some(&at),
            &json!({ "factor_type": "totp", "friendly_name": "phone" }).to_string(),
        )
        .await;
    assert_eq!(enroll.status, 200, "{}", enroll.body);
    let e = enroll.json();
    assert_eq!(e["type"], "totp");
    assert!(e["totp"]["qr_code"].as_str().is_some_and(|q| q.starts_with("<?xml") || q.contains("<svg")), "raw SVG");
    assert!(e["totp"]["uri"].as_str().is_some_and(|u| u.starts_with("otpauth://totp/")));
    let secret = e["totp"]["secret"].as_str().expect("secret").to_owned();
    let factor = e["id"].as_str().expect("id").to_owned();
    t.send(
        "POST",
        "/auth/v1/factors",
        Some(&at),
        &json!({ "factor_type": "totp", "friendly_name": "phone" }).to_string(),
    )
    .await
    .assert_error(422, "mfa_factor_name_conflict");

    let challenge = |token: String| {
        let f = factor.clone();
        let t = &t;
        async move { t.send("POST", &format!("/auth/v1/factors/{f}/challenge"), Some(&token), "{}").await }
    };
    let c = challenge(at.clone()).await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert!(c.json()["expires_at"].as_i64().is_some());
    let cid = c.json()["id"].as_str().expect("id").to_owned();
    let wrong = t
        .send(
            "POST",
            &format!("/auth/v1/factors/{factor}/verify"),
            Some(&at),
            &json!({ "challenge_id": cid, "code": "000000" }).to_string(),
        )
        .await;
    if totp_code(&secret, 0) != "000000" {
        wrong.assert_error(422, "mfa_verification_failed");
    }
    let code = totp_code(&secret, 0);
    let v = t
        .send(
            "POST",
            &format!("/auth/v1/factors/{factor}/verify"),
            Some(&at),
            &json!({ "challenge_id": cid, "code": code }).to_string(),
        )
        .await;
    assert_eq!(v.status, 200, "{}", v.body);
    let session = v.json();
    common::assert_session(&session);
    let claims = Api::claims(session["access_token"].as_str().expect("at"));
    assert_eq!(claims["aal"], "aal2");
    assert_eq!(claims["amr"][0]["method"], "totp");
    assert_eq!(claims["amr"][1]["method"], "password");
    assert_eq!(session["user"]["factors"][0]["status"], "verified");
    let at2 = session["access_token"].as_str().expect("at").to_owned();

    // The same code again, on a fresh challenge: refused. So is the spent challenge.
    let c2 = challenge(at2.clone()).await.json()["id"].as_str().expect("id").to_owned();
    t.send(
        "POST",
        &format!("/auth/v1/factors/{factor}/verify"),
        Some(&at2),
        &json!({ "challenge_id": c2, "code": code }).to_string(),
    )
    .await
    .assert_error(422, "mfa_verification_failed");
    t.send(
        "POST",
        &format!("/auth/v1/factors/{factor}/verify"),
        Some(&at2),
        &json!({ "challenge_id": cid, "code": code }).to_string(),
    )
    .await
    .assert_error(422, "mfa_challenge_expired");

    // The old session token (aal1) cannot change credentials, add factors or remove the verified one.
    t.send("PUT", "/auth/v1/user", Some(&at), &json!({ "password": "another-password-1" }).to_string())
        .await
        .assert_error(401, "insufficient_aal");
    t.send("PUT", "/auth/v1/user", Some(&at), &json!({ "email": "thief@example.com" }).to_string())
        .await
        .assert_error(401, "insufficient_aal");
    t.send("POST", "/auth/v1/factors", Some(&at), &json!({ "factor_type": "totp", "friendly_name": "2" }).to_string())
        .await
        .assert_error(403, "insufficient_aal");
    t.send("DELETE", &format!("/auth/v1/factors/{factor}"), Some(&at), "").await.assert_error(422, "insufficient_aal");
    // The refresh token from before the upgrade was replaced by the aal2 one.
    t.refresh(s["refresh_token"].as_str().expect("rt")).await;
    let r = t.refresh(session["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(Api::claims(r.json()["access_token"].as_str().expect("at"))["aal"], "aal2", "refresh keeps aal2");

    let admin_list = t
        .admin("GET", &format!("/auth/v1/admin/users/{}/factors", claims["sub"].as_str().expect("sub")), Value::Null)
        .await;
    assert_eq!(admin_list.json()[0]["id"], factor.as_str());
    let del = t.send("DELETE", &format!("/auth/v1/factors/{factor}"), Some(&at2), "").await;
    assert_eq!(del.json(), json!({ "id": factor }));
    t.send("POST", &format!("/auth/v1/factors/{factor}/challenge"), Some(&at2), "{}")
        .await
        .assert_error(404, "mfa_factor_not_found");
}

#[tokio::test]
async fn sessions_end_at_the_time_box_and_after_inactivity() {
    let t = api_with(AuthConfig::default().with_session_timebox(3600).with_session_inactivity_timeout(600)).await;
    let a = t.sign_up("g@example.com", "password-1234").await;
    assert_eq!(t.refresh(a["refresh_token"].as_str().expect("rt")).await.status, 200, "fresh sessions refresh");

    let b = t.login("g@example.com", "password-1234").await.json();
    sqlx::query("update auth.sessions set refreshed_at = (now() - interval '11 minutes') at time zone 'utc', created_at = now() - interval '11 minutes'")
        .execute(t.db.pool())
        .await
        .expect("idle");
    t.refresh(b["refresh_token"].as_str().expect("rt")).await.assert_error(400, "session_expired");

    let c = t.login("g@example.com", "password-1234").await.json();
    sqlx::query(
        "update auth.sessions set created_at = now() - interval '61 minutes', refreshed_at = now() at time zone 'utc'",
    )
    .execute(t.db.pool())
    .await
    .expect("old");
    t.refresh(c["refresh_token"].as_str().expect("rt")).await.assert_error(400, "session_expired");
    let left: i64 =
        sqlx::query_scalar("select count(*) from auth.sessions").fetch_one(t.db.pool()).await.expect("count");
    assert_eq!(left, 1, "expired sessions are removed when presented; the first one has not been yet");
}

#[tokio::test]
async fn sign_up_never_changes_an_existing_unconfirmed_account() {
    // Confirmation on: an invited (unconfirmed) user is not taken over by signing up.
    let t = api_with(AuthConfig::default().with_mailer_autoconfirm(false).with_max_frequency(0)).await;
    let invited = t.admin("POST", "/auth/v1/invite", json!({ "email": "inv@example.com" })).await.json();
    let r = t.post("/auth/v1/signup", json!({ "email": "inv@example.com", "password": "attacker-pass-1" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.json()["id"], invited["id"], "the real id is not revealed");
    assert!(r.json()["access_token"].is_null());
    let (hash, meta): (String, Value) =
        sqlx::query_as("select encrypted_password, raw_user_meta_data from auth.users where email = 'inv@example.com'")
            .fetch_one(t.db.pool())
            .await
            .expect("user");
    assert_eq!((hash.as_str(), meta), ("", json!({})), "nothing was overwritten");

    // Autoconfirm on: refused outright.
    let t = api().await;
    t.admin("POST", "/auth/v1/admin/users", json!({ "email": "pre@example.com", "password": "owner-pass-123" })).await;
    t.post("/auth/v1/signup", json!({ "email": "pre@example.com", "password": "attacker-pass-1" }))
        .await
        .assert_error(422, "user_already_exists");
}

#[tokio::test]
async fn limits_hold_without_the_proxy_header_and_per_guessed_address() {
    let limits = RateLimits::default().with_otp_per_5min(1);
    let t = api_with(AuthConfig::default().with_rate_limits(limits).with_rate_limit_header("x-forwarded-for")).await;
    let body = json!({ "email": "h@example.com" });
    assert_eq!(t.post("/auth/v1/recover", body.clone()).await.status, 200);
    t.post("/auth/v1/recover", json!({ "email": "i@example.com" })).await.assert_error(429, "over_request_rate_limit");

    // Guessing one address's OTP from many client addresses still runs out.
    let t = api().await;
    let verify = json!({ "type": "email", "email": "j@example.com", "token": "000000" }).to_string();
    for i in 0..10 {
        t.send_from(&format!("10.1.0.{i}"), "POST", "/auth/v1/verify", None, &verify)
            .await
            .assert_error(403, "otp_expired");
    }
    t.send_from("10.1.0.99", "POST", "/auth/v1/verify", None, &verify)
        .await
        .assert_error(429, "over_request_rate_limit");
}
