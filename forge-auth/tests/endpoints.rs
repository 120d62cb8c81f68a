//! Each endpoint against a real Postgres, through the router.

mod common;

use common::AssertError as _;

use common::{Api, api, api_with, assert_session, assert_user};
use forge_auth::AuthConfig;
use serde_json::json;

fn confirm_on() -> AuthConfig {
    AuthConfig::default().with_mailer_autoconfirm(false).with_site_url("http://app.test")
}

#[tokio::test]
async fn signup_with_autoconfirm_returns_a_session_with_gotrues_claims() {
    let t = api().await;
    let s = t.sign_up("Alice@Example.com", "correct horse 1").await;
    assert_session(&s);
    assert_eq!(s["user"]["email"], "alice@example.com");
    assert_eq!(s["user"]["app_metadata"], json!({ "provider": "email", "providers": ["email"] }));
    assert_eq!(s["user"]["identities"][0]["provider"], "email");
    assert!(s["user"]["email_confirmed_at"].is_string());
    let claims = Api::claims(s["access_token"].as_str().expect("token"));
    assert_eq!(claims["sub"], s["user"]["id"]);
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(claims["amr"][0]["method"], "password");
    assert_eq!(claims["is_anonymous"], false);
    assert_eq!(claims["iss"], "http://localhost/auth/v1");
    assert!(claims["session_id"].as_str().is_some_and(|s| s.len() == 36));
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 3600);

    // The stored password is argon2id and the refresh token is stored only as a digest.
    let (hash, token): (String, String) = sqlx::query_as(
        "select u.encrypted_password, r.token from auth.users u join auth.refresh_tokens r on r.user_id = u.id::text",
    )
    .fetch_one(t.db.pool())
    .await
    .expect("row");
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert_ne!(token, s["refresh_token"].as_str().expect("rt"));
    assert_eq!(token.len(), 64);

    let again = t.post("/auth/v1/signup", json!({ "email": "alice@example.com", "password": "another pass 2" })).await;
    again.assert_error(422, "user_already_exists");
}

#[tokio::test]
async fn signup_validates_input() {
    let t = api().await;
    t.post("/auth/v1/signup", json!({ "email": "not-an-email", "password": "long enough" }))
        .await
        .assert_error(400, "validation_failed");
    t.post("/auth/v1/signup", json!({ "email": "a@b.co" })).await.assert_error(400, "validation_failed");
    let weak = t.post("/auth/v1/signup", json!({ "email": "a@b.co", "password": "short" })).await;
    weak.assert_error(422, "weak_password");
    assert_eq!(weak.json()["weak_password"]["reasons"], json!(["length"]));
    assert_eq!(weak.json()["msg"], "Password should be at least 8 characters.", "GoTrue names the minimum");
    let stricter = api_with(AuthConfig::default().with_password_min_length(12)).await;
    let weak = stricter.post("/auth/v1/signup", json!({ "email": "a@b.co", "password": "eleven-char" })).await;
    assert_eq!(weak.json()["message"], "Password should be at least 12 characters.");
    t.send("POST", "/auth/v1/signup", None, "{not json").await.assert_error(400, "bad_json");
    let disabled = api_with(AuthConfig::default().with_disable_signup(true)).await;
    disabled
        .post("/auth/v1/signup", json!({ "email": "a@b.co", "password": "long enough" }))
        .await
        .assert_error(422, "signup_disabled");
}

#[tokio::test]
async fn anonymous_sign_in_and_upgrade_by_email() {
    let t = api().await;
    let r = t.post("/auth/v1/signup", json!({ "data": { "theme": "dark" }, "gotrue_meta_security": {} })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.json();
    assert_session(&s);
    assert_eq!(s["user"]["is_anonymous"], true);
    assert_eq!(s["user"]["user_metadata"]["theme"], "dark");
    let token = s["access_token"].as_str().expect("token");
    let claims = Api::claims(token);
    assert_eq!((claims["is_anonymous"].clone(), claims["amr"][0]["method"].clone()), (json!(true), json!("anonymous")));

    let up = t.send("PUT", "/auth/v1/user", Some(token), &json!({ "email": "anon@example.com" }).to_string()).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.json()["is_anonymous"], false);
    assert_eq!(up.json()["email"], "anon@example.com");

    let off = api_with(AuthConfig::default().with_anonymous_enabled(false)).await;
    off.post("/auth/v1/signup", json!({})).await.assert_error(422, "anonymous_provider_disabled");
}

#[tokio::test]
async fn password_grant_checks_credentials_and_confirmation() {
    let t = api().await;
    t.sign_up("bob@example.com", "password-1234").await;
    let ok = t.login("BOB@example.com", "password-1234").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_session(&ok.json());
    assert!(ok.json()["user"]["last_sign_in_at"].is_string());
    t.login("bob@example.com", "wrong-password").await.assert_error(400, "invalid_credentials");
    t.login("nobody@example.com", "password-1234").await.assert_error(400, "invalid_credentials");
    t.post("/auth/v1/token?grant_type=password", json!({})).await.assert_error(400, "invalid_credentials");
    t.post("/auth/v1/token?grant_type=magic", json!({})).await.assert_error(400, "invalid_credentials");

    let c = api_with(confirm_on()).await;
    let r = c.post("/auth/v1/signup", json!({ "email": "carol@example.com", "password": "password-1234" })).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["access_token"].is_null(), "no session before confirmation");
    c.login("carol@example.com", "password-1234").await.assert_error(400, "email_not_confirmed");
}

#[tokio::test]
async fn imported_bcrypt_hashes_log_in_and_are_upgraded() {
    let t = api().await;
    let hash = bcrypt::hash("imported-pass", 4).expect("bcrypt");
    let r = t
        .admin(
            "POST",
            "/auth/v1/admin/users",
            json!({ "email": "old@example.com", "password_hash": hash, "email_confirm": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.login("old@example.com", "imported-pass").await.status, 200);
    let stored: String =
        sqlx::query_scalar("select encrypted_password from auth.users where email = 'old@example.com'")
            .fetch_one(t.db.pool())
            .await
            .expect("hash");
    assert!(stored.starts_with("$argon2id$"), "upgraded on login: {stored}");
    assert_eq!(t.login("old@example.com", "imported-pass").await.status, 200);
}

#[tokio::test]
async fn refresh_rotates_and_logout_scopes() {
    let t = api().await;
    let s = t.sign_up("dave@example.com", "password-1234").await;
    let rt = s["refresh_token"].as_str().expect("rt").to_owned();
    let r = t.refresh(&rt).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s2 = r.json();
    assert_session(&s2);
    assert_ne!(s2["refresh_token"], s["refresh_token"], "rotated");
    let c1 = Api::claims(s["access_token"].as_str().expect("at"));
    let c2 = Api::claims(s2["access_token"].as_str().expect("at"));
    assert_eq!(c1["session_id"], c2["session_id"], "same session");
    t.refresh("no-such-token").await.assert_error(400, "refresh_token_not_found");
    t.post("/auth/v1/token?grant_type=refresh_token", json!({})).await.assert_error(400, "validation_failed");

    // A second session; logout scope=others ends only the first.
    let other = t.login("dave@example.com", "password-1234").await.json();
    let at2 = s2["access_token"].as_str().expect("at");
    let r = t.send("POST", "/auth/v1/logout?scope=others", Some(at2), "").await;
    assert_eq!(r.status, 204, "{}", r.body);
    t.refresh(other["refresh_token"].as_str().expect("rt")).await.assert_error(400, "refresh_token_not_found");
    assert_eq!(t.send("GET", "/auth/v1/user", Some(at2), "").await.status, 200);
    // scope=local ends this one; its access token is refused by user endpoints afterwards.
    assert_eq!(t.send("POST", "/auth/v1/logout?scope=local", Some(at2), "").await.status, 204);
    t.send("GET", "/auth/v1/user", Some(at2), "").await.assert_error(403, "session_not_found");
    t.refresh(s2["refresh_token"].as_str().expect("rt")).await.assert_error(400, "refresh_token_not_found");
}

#[tokio::test]
async fn user_get_and_update() {
    let t = api().await;
    let s = t.sign_up("erin@example.com", "password-1234").await;
    let at = s["access_token"].as_str().expect("at");
    let me = t.send("GET", "/auth/v1/user", Some(at), "").await;
    assert_eq!(me.status, 200);
    assert_user(&me.json());
    assert_eq!(me.json()["email"], "erin@example.com");
    t.send("GET", "/auth/v1/user", None, "").await.assert_error(403, "bad_jwt");
    let r = t.send("GET", "/auth/v1/user", Some("not.a.jwt"), "").await;
    r.assert_error(403, "bad_jwt");

    let up = t.send("PUT", "/auth/v1/user", Some(at), &json!({ "data": { "name": "Erin", "x": 1 } }).to_string()).await;
    assert_eq!(up.json()["user_metadata"], json!({ "name": "Erin", "x": 1 }));
    let up = t.send("PUT", "/auth/v1/user", Some(at), &json!({ "data": { "x": null } }).to_string()).await;
    assert_eq!(up.json()["user_metadata"], json!({ "name": "Erin" }), "null removes a key");

    let same = t.send("PUT", "/auth/v1/user", Some(at), &json!({ "password": "password-1234" }).to_string()).await;
    same.assert_error(422, "same_password");
    let weak = t.send("PUT", "/auth/v1/user", Some(at), &json!({ "password": "abc" }).to_string()).await;
    weak.assert_error(422, "weak_password");
    let ok = t.send("PUT", "/auth/v1/user", Some(at), &json!({ "password": "new-password-99" }).to_string()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    t.login("erin@example.com", "password-1234").await.assert_error(400, "invalid_credentials");
    assert_eq!(t.login("erin@example.com", "new-password-99").await.status, 200);

    t.sign_up("taken@example.com", "password-1234").await;
    t.send("PUT", "/auth/v1/user", Some(at), &json!({ "email": "taken@example.com" }).to_string())
        .await
        .assert_error(422, "email_exists");
}

#[tokio::test]
async fn email_change_needs_the_link_sent_to_the_new_address() {
    let t = api_with(confirm_on()).await;
    let link = t
        .admin(
            "POST",
            "/auth/v1/admin/users",
            json!({ "email": "f@example.com", "password": "password-1234", "email_confirm": true }),
        )
        .await;
    assert_eq!(link.status, 200);
    let s = t.login("f@example.com", "password-1234").await.json();
    let at = s["access_token"].as_str().expect("at");
    let r = t.send("PUT", "/auth/v1/user", Some(at), &json!({ "email": "F2@example.com" }).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["email"], "f@example.com");
    assert_eq!(r.json()["new_email"], "f2@example.com");
    let otp = t.last_otp("f2@example.com");
    let v = t.post("/auth/v1/verify", json!({ "type": "email_change", "email": "f2@example.com", "token": otp })).await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.json()["user"]["email"], "f2@example.com");
    // Single use.
    t.post("/auth/v1/verify", json!({ "type": "email_change", "email": "f2@example.com", "token": otp }))
        .await
        .assert_error(403, "otp_expired");
}

#[tokio::test]
async fn confirmation_link_redirects_with_a_session_in_the_fragment() {
    let t = api_with(confirm_on().with_redirect_urls(["http://localhost:3000/*"])).await;
    let r = t
        .send(
            "POST",
            "/auth/v1/signup?redirect_to=http://localhost:3000/welcome",
            None,
            &json!({ "email": "g@example.com", "password": "password-1234" }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["confirmation_sent_at"].is_string());
    let link = t.last_link("g@example.com");
    assert!(link.starts_with("http://localhost/auth/v1/verify?token="), "{link}");
    assert!(link.contains("type=signup"), "{link}");
    let path = link.trim_start_matches("http://localhost");
    let v = t.send("GET", path, None, "").await;
    assert_eq!(v.status, 303, "{}", v.body);
    let location = v.header("location").expect("location");
    assert!(location.starts_with("http://localhost:3000/welcome#access_token="), "{location}");
    for part in ["&expires_in=3600", "&refresh_token=", "&token_type=bearer", "&type=signup"] {
        assert!(location.contains(part), "{location}");
    }
    assert_eq!(t.login("g@example.com", "password-1234").await.status, 200, "confirmed");
    // Used once: the second visit lands with an error in query and fragment.
    let again = t.send("GET", path, None, "").await;
    let location = again.header("location").expect("location");
    assert!(location.contains("?error=access_denied&error_code=otp_expired"), "{location}");
    assert!(location.contains("#error=access_denied"), "{location}");
    // A redirect outside the allow list falls back to the site URL.
    let r = t
        .send(
            "POST",
            "/auth/v1/recover?redirect_to=https://evil.example/steal",
            None,
            &json!({ "email": "g@example.com" }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        t.last_link("g@example.com").ends_with("redirect_to=http%3A%2F%2Fapp.test"),
        "{}",
        t.last_link("g@example.com")
    );
}

#[tokio::test]
async fn otp_signs_in_and_creates_users_unless_told_not_to() {
    let t = api().await;
    let r = t.post("/auth/v1/otp", json!({ "email": "h@example.com", "create_user": true, "data": { "n": 1 } })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({}));
    let otp = t.last_otp("h@example.com");
    assert_eq!(otp.len(), 6);
    let v = t.post("/auth/v1/verify", json!({ "type": "email", "email": "h@example.com", "token": otp })).await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_session(&v.json());
    assert_eq!(v.json()["user"]["user_metadata"]["n"], 1);
    t.post("/auth/v1/verify", json!({ "type": "email", "email": "h@example.com", "token": otp }))
        .await
        .assert_error(403, "otp_expired");
    t.post("/auth/v1/otp", json!({ "email": "new@example.com", "create_user": false }))
        .await
        .assert_error(422, "otp_disabled");
    // The legacy magiclink endpoint, and verify by token_hash.
    let m = t.post("/auth/v1/magiclink", json!({ "email": "i@example.com" })).await;
    assert_eq!((m.status.as_u16(), m.json()), (200, json!({})));
    let link = t.last_link("i@example.com");
    let hash = link.split("token=").nth(1).and_then(|s| s.split('&').next()).expect("hash");
    let v = t.post("/auth/v1/verify", json!({ "type": "magiclink", "token_hash": hash })).await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(Api::claims(v.json()["access_token"].as_str().expect("at"))["amr"][0]["method"], "otp");
}

#[tokio::test]
async fn expired_otps_are_refused() {
    let t = api().await;
    t.sign_up("j@example.com", "password-1234").await;
    assert_eq!(t.post("/auth/v1/otp", json!({ "email": "j@example.com" })).await.status, 200);
    let otp = t.last_otp("j@example.com");
    sqlx::query("update auth.users set recovery_sent_at = now() - interval '11 minutes'")
        .execute(t.db.pool())
        .await
        .expect("age");
    t.post("/auth/v1/verify", json!({ "type": "email", "email": "j@example.com", "token": otp }))
        .await
        .assert_error(403, "otp_expired");
}

#[tokio::test]
async fn recovery_with_pkce_exchanges_a_code() {
    let t = api().await;
    t.sign_up("k@example.com", "password-1234").await;
    let verifier = "a".repeat(56) + &"b".repeat(56);
    let challenge = {
        use base64::Engine as _;
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
    };
    let r = t
        .post(
            "/auth/v1/recover",
            json!({ "email": "k@example.com", "code_challenge": challenge, "code_challenge_method": "s256" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let link = t.last_link("k@example.com");
    let v = t.send("GET", link.trim_start_matches("http://localhost"), None, "").await;
    let location = v.header("location").expect("location").to_owned();
    let code = location.split("?code=").nth(1).unwrap_or_else(|| panic!("a code: {location}"));
    let bad = t
        .post("/auth/v1/token?grant_type=pkce", json!({ "auth_code": code, "code_verifier": "wrong".repeat(10) }))
        .await;
    bad.assert_error(400, "bad_code_verifier");
    // The code was spent by the failed attempt: PKCE codes are single-use.
    t.post("/auth/v1/token?grant_type=pkce", json!({ "auth_code": code, "code_verifier": verifier }))
        .await
        .assert_error(404, "flow_state_not_found");

    // Again on a fresh project (the re-send interval is per address).
    let t = api_with(AuthConfig::default().with_max_frequency(0)).await;
    t.sign_up("k@example.com", "password-1234").await;
    t.post(
        "/auth/v1/recover",
        json!({ "email": "k@example.com", "code_challenge": challenge, "code_challenge_method": "s256" }),
    )
    .await;
    let link = t.last_link("k@example.com");
    let v = t.send("GET", link.trim_start_matches("http://localhost"), None, "").await;
    let location = v.header("location").expect("location").to_owned();
    let code = location.split("?code=").nth(1).expect("code");
    let s = t.post("/auth/v1/token?grant_type=pkce", json!({ "auth_code": code, "code_verifier": verifier })).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_session(&s.json());
    assert_eq!(Api::claims(s.json()["access_token"].as_str().expect("at"))["amr"][0]["method"], "recovery");
}

#[tokio::test]
async fn resend_and_reauthenticate() {
    let t = api_with(confirm_on().with_max_frequency(0).with_secure_password_change(true)).await;
    t.post("/auth/v1/signup", json!({ "email": "l@example.com", "password": "password-1234" })).await;
    assert_eq!(t.mails_to("l@example.com"), 1);
    let r = t.post("/auth/v1/resend", json!({ "type": "signup", "email": "l@example.com" })).await;
    assert_eq!((r.status.as_u16(), r.json()), (200, json!({})));
    assert_eq!(t.mails_to("l@example.com"), 2);
    t.post("/auth/v1/resend", json!({ "type": "bogus", "email": "l@example.com" }))
        .await
        .assert_error(400, "validation_failed");
    let otp = t.last_otp("l@example.com");
    let s = t.post("/auth/v1/verify", json!({ "type": "signup", "email": "l@example.com", "token": otp })).await.json();
    let at = s["access_token"].as_str().expect("at");

    // With secure password change, a new password needs the emailed nonce.
    let r = t.send("PUT", "/auth/v1/user", Some(at), &json!({ "password": "brand-new-pass" }).to_string()).await;
    r.assert_error(400, "reauthentication_needed");
    let r = t.send("GET", "/auth/v1/reauthenticate", Some(at), "").await;
    assert_eq!((r.status.as_u16(), r.json()), (200, json!({})));
    let nonce = t.last_otp("l@example.com");
    let r = t
        .send("PUT", "/auth/v1/user", Some(at), &json!({ "password": "brand-new-pass", "nonce": "000000" }).to_string())
        .await;
    r.assert_error(422, "reauthentication_not_valid");
    t.send("GET", "/auth/v1/reauthenticate", Some(at), "").await;
    let nonce2 = t.last_otp("l@example.com");
    assert_ne!(nonce, nonce2);
    let r = t
        .send("PUT", "/auth/v1/user", Some(at), &json!({ "password": "brand-new-pass", "nonce": nonce2 }).to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.login("l@example.com", "brand-new-pass").await.status, 200);
}

#[tokio::test]
async fn settings_health_jwks_and_unknown_paths() {
    let t = api().await;
    let s = t.send("GET", "/auth/v1/settings", None, "").await.json();
    assert_eq!(s["mailer_autoconfirm"], true);
    assert_eq!(s["disable_signup"], false);
    assert_eq!(s["external"]["email"], true);
    assert!(t.send("GET", "/auth/v1/health", None, "").await.json()["version"].is_string());
    let jwks = t.send("GET", "/auth/v1/.well-known/jwks.json", None, "").await;
    assert_eq!(jwks.json(), json!({ "keys": [] }));
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=600"));
    t.send("GET", "/auth/v1/nope", None, "").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn admin_users_crud_and_link_header() {
    let t = api().await;
    for i in 0..5 {
        let r = t.admin("POST", "/auth/v1/admin/users", json!({ "email": format!("u{i}@example.com"), "password": "password-1234", "email_confirm": true, "user_metadata": { "i": i } })).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = t.admin("GET", "/auth/v1/admin/users?page=1&per_page=2", serde_json::Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["users"].as_array().expect("users").len(), 2);
    assert_eq!(r.json()["aud"], "authenticated");
    assert_eq!(r.header("x-total-count"), Some("5"));
    assert_eq!(
        r.header("link"),
        Some(
            "</auth/v1/admin/users?page=2&per_page=2>; rel=\"next\", </auth/v1/admin/users?page=3&per_page=2>; rel=\"last\""
        )
    );
    let last = t.admin("GET", "/auth/v1/admin/users?page=3&per_page=2", serde_json::Value::Null).await;
    assert_eq!(last.header("link"), Some("</auth/v1/admin/users?page=3&per_page=2>; rel=\"last\""));
    t.admin("GET", "/auth/v1/admin/users?page=x", serde_json::Value::Null).await.assert_error(400, "validation_failed");

    let id = r.json()["users"][0]["id"].as_str().expect("id").to_owned();
    let one = t.admin("GET", &format!("/auth/v1/admin/users/{id}"), serde_json::Value::Null).await;
    assert_user(&one.json());
    let up = t
        .admin(
            "PUT",
            &format!("/auth/v1/admin/users/{id}"),
            json!({ "app_metadata": { "plan": "pro" }, "ban_duration": "1h" }),
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.json()["app_metadata"]["plan"], "pro");
    assert_eq!(up.json()["app_metadata"]["provider"], "email");
    assert!(up.json()["banned_until"].is_string());
    let email = up.json()["email"].as_str().expect("email").to_owned();
    let banned = t.login(&email, "password-1234").await;
    banned.assert_error(400, "user_banned");
    t.admin("PUT", &format!("/auth/v1/admin/users/{id}"), json!({ "ban_duration": "none" })).await;
    let again = t.login(&email, "password-1234").await;
    assert_eq!(again.status, 200, "{}", again.body);

    t.admin("POST", "/auth/v1/admin/users", json!({ "email": email })).await.assert_error(422, "email_exists");
    assert_eq!(
        t.admin("DELETE", &format!("/auth/v1/admin/users/{id}"), json!({ "should_soft_delete": false })).await.json(),
        json!({})
    );
    t.admin("GET", &format!("/auth/v1/admin/users/{id}"), serde_json::Value::Null)
        .await
        .assert_error(404, "user_not_found");
    t.admin("GET", "/auth/v1/admin/users/not-a-uuid", serde_json::Value::Null)
        .await
        .assert_error(404, "user_not_found");

    // Only the service role: the anon key and user tokens get 403 not_admin.
    t.send("GET", "/auth/v1/admin/users", None, "").await.assert_error(403, "not_admin");
    let s = t.sign_up("plain@example.com", "password-1234").await;
    t.send("GET", "/auth/v1/admin/users", s["access_token"].as_str(), "").await.assert_error(403, "not_admin");
}

#[tokio::test]
async fn generate_link_and_invite() {
    let t = api().await;
    let r = t
        .admin(
            "POST",
            "/auth/v1/admin/generate_link",
            json!({ "type": "magiclink", "email": "m@example.com", "redirectTo": "http://localhost/x" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_user(&body);
    assert_eq!(body["verification_type"], "magiclink");
    assert_eq!(body["email_otp"].as_str().map(str::len), Some(6));
    assert_eq!(body["hashed_token"].as_str().map(str::len), Some(56));
    assert!(body["action_link"].as_str().is_some_and(|l| l.contains("/auth/v1/verify?token=")));
    assert_eq!(body["redirect_to"], "http://localhost/x");
    assert_eq!(t.mails_to("m@example.com"), 0, "generate_link sends nothing");
    let v = t.post("/auth/v1/verify", json!({ "type": "magiclink", "token_hash": body["hashed_token"] })).await;
    assert_eq!(v.status, 200, "{}", v.body);
    t.admin("POST", "/auth/v1/admin/generate_link", json!({ "type": "recovery", "email": "ghost@example.com" }))
        .await
        .assert_error(404, "user_not_found");

    let inv = t.admin("POST", "/auth/v1/invite", json!({ "email": "n@example.com", "data": { "team": 7 } })).await;
    assert_eq!(inv.status, 200, "{}", inv.body);
    assert!(inv.json()["invited_at"].is_string());
    let otp = t.last_otp("n@example.com");
    let s = t.post("/auth/v1/verify", json!({ "type": "invite", "email": "n@example.com", "token": otp })).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.json()["user"]["user_metadata"]["team"], 7);
    t.admin("POST", "/auth/v1/invite", json!({ "email": "n@example.com" })).await.assert_error(422, "email_exists");

    let outbox = t.admin("GET", "/auth/v1/admin/outbox?email=n@example.com", serde_json::Value::Null).await;
    assert_eq!(outbox.json()["messages"][0]["kind"], "invite");
    t.send("GET", "/auth/v1/admin/outbox", None, "").await.assert_error(403, "not_admin");
}

#[tokio::test]
async fn sessions_are_signed_with_the_current_key_and_the_key_set_is_published() {
    use forge_core::keys::{KeyAlgorithm, SigningKey, generate_signing_key_pkcs8};
    use forge_core::{Project, ProjectKeys, ProjectRef, ProjectSettings};
    let key = |alg| SigningKey::from_pkcs8_der(&generate_signing_key_pkcs8(alg).expect("generate")).expect("key");
    let (current, standby) = (key(KeyAlgorithm::Es256), key(KeyAlgorithm::Es256));
    let db = forge_core::testing::test_db().await;
    forge_core::migrate::run(db.pool(), &[forge_auth::MIGRATIONS]).await.expect("migrate");
    let reference = ProjectRef::new("test").expect("ref");
    let keys = ProjectKeys::builder(reference.clone(), forge_core::testing::TEST_JWT_SECRET.as_bytes().to_vec())
        .signing_key(current.clone())
        .verification_key(standby.clone())
        .build()
        .expect("keys");
    let project = Project::new(reference, db.database().clone(), keys, ProjectSettings::new("http://localhost"));
    let auth = forge_auth::Auth::builder().build().expect("auth");
    let app = axum::Router::new().nest("/auth/v1", auth.router());
    let t = common::Api { t: forge_core::testing::TestApp::new(db, project, app), auth };

    let s = t.sign_up("keys@example.com", "password-1234").await;
    let at = s["access_token"].as_str().expect("at");
    let header: serde_json::Value = {
        use base64::Engine as _;
        let h = at.split('.').next().expect("header");
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("json")
    };
    assert_eq!(header, json!({ "alg": "ES256", "typ": "JWT", "kid": current.kid() }));
    let jwks = t.send("GET", "/auth/v1/.well-known/jwks.json", None, "").await.json();
    assert_eq!(jwks, json!({ "keys": [current.public_jwk(), standby.public_jwk()] }));
    assert_eq!(t.send("GET", "/auth/v1/user", Some(at), "").await.status, 200);
    // A refreshed session is signed with the same key; the legacy HS256 secret still verifies.
    let r = t.refresh(s["refresh_token"].as_str().expect("rt")).await;
    assert!(r.json()["access_token"].as_str().is_some_and(|t| t.starts_with(at.split('.').next().expect("h"))));
    let mut claims = Api::claims(at).as_object().expect("claims").clone();
    claims.remove("session_id");
    let legacy = t.project.keys().sign_hs256(&claims).expect("HS256");
    let r = t.send("GET", "/auth/v1/user", Some(&legacy), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
}
