//! Phone sign-up, OTP sign-in, phone change and reauthentication by text message, through the
//! development SMS outbox and through Twilio's Messages API (a local fake speaking its wire
//! format).

mod common;

use common::AssertError as _;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::{Api, api, api_with, assert_session, assert_user};
use forge_auth::{AuthConfig, TwilioSettings};
use serde_json::{Value, json};

fn phone_on() -> AuthConfig {
    AuthConfig::default().with_phone_enabled(true)
}

#[tokio::test]
async fn phone_is_off_unless_enabled() {
    let t = api().await;
    let r = t.post("/auth/v1/signup", json!({ "phone": "+15550001111", "password": "correct horse 1" })).await;
    r.assert_error(400, "phone_provider_disabled");
    t.post("/auth/v1/otp", json!({ "phone": "+15550001111" })).await.assert_error(400, "phone_provider_disabled");
    let r = t.post("/auth/v1/token?grant_type=password", json!({ "phone": "+15550001111", "password": "x" })).await;
    r.assert_error(422, "phone_provider_disabled");
    let settings = t.send("GET", "/auth/v1/settings", None, "").await.json();
    assert_eq!((settings["external"]["phone"].clone(), settings["sms_provider"].clone()), (json!(false), json!("")));
    let on = api_with(phone_on()).await;
    let settings = on.send("GET", "/auth/v1/settings", None, "").await.json();
    assert_eq!(settings["external"]["phone"], true);
    assert_eq!(settings["sms_provider"], "outbox");
}

#[tokio::test]
async fn phone_signup_is_confirmed_by_a_single_use_code_bound_to_the_number() {
    // No re-send interval here: the repeated sign-up below would otherwise be too soon.
    let t = api_with(phone_on().with_max_frequency(0)).await;
    let r = t
        .post(
            "/auth/v1/signup",
            json!({ "phone": "+1 (555) 000-2222", "password": "correct horse 1", "data": { "a": 1 } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user = r.json();
    assert_user(&user);
    assert!(user.get("access_token").is_none(), "no session before the code: {user}");
    assert_eq!(user["phone"], "15550002222");
    assert!(user.get("phone_confirmed_at").is_none(), "{user}");
    assert_eq!(user["identities"][0]["provider"], "phone");
    let code = t.last_sms_code("+15550002222");
    assert_eq!(code.len(), 6);

    let login =
        t.post("/auth/v1/token?grant_type=password", json!({ "phone": "15550002222", "password": "correct horse 1" }));
    login.await.assert_error(400, "phone_not_confirmed");

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let verify = |phone: &str, token: &str| json!({ "type": "sms", "phone": phone, "token": token });
    t.post("/auth/v1/verify", verify("+15550002222", wrong)).await.assert_error(403, "otp_expired");
    t.post("/auth/v1/verify", verify("+15550009999", &code)).await.assert_error(403, "otp_expired");
    let r = t.post("/auth/v1/verify", json!({ "type": "sms", "token_hash": "abc" })).await;
    assert_eq!(r.status.as_u16(), 400, "a text code has no link: {}", r.body);
    let r = t.post("/auth/v1/verify", verify("+15550002222", &code)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.json();
    assert_session(&s);
    assert!(s["user"]["phone_confirmed_at"].is_string(), "{s}");
    assert_eq!(s["user"]["identities"][0]["identity_data"]["phone_verified"], true);
    assert_eq!(Api::claims(s["access_token"].as_str().expect("token"))["phone"], "15550002222");
    t.post("/auth/v1/verify", verify("+15550002222", &code)).await.assert_error(403, "otp_expired");

    let login =
        t.post("/auth/v1/token?grant_type=password", json!({ "phone": "+15550002222", "password": "correct horse 1" }));
    assert_eq!(login.await.status, 200);

    // A confirmed number signing up again gets a stranger's answer and no text.
    let again = t.post("/auth/v1/signup", json!({ "phone": "+15550002222", "password": "other pass 22" })).await;
    assert_eq!(again.status, 200, "{}", again.body);
    let fake = again.json();
    assert_ne!(fake["id"], s["user"]["id"]);
    assert!(fake.get("phone_confirmed_at").is_none());
    assert_eq!(t.texts_to("+15550002222"), 1);
}

#[tokio::test]
async fn codes_expire_and_resends_are_spaced() {
    let t = api_with(phone_on()).await;
    let r = t.post("/auth/v1/otp", json!({ "phone": "+447700900123" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["message_id"].as_str().is_some_and(|m| m.starts_with("outbox-")), "{}", r.body);
    let code = t.last_sms_code("447700900123");
    sqlx::query("update auth.users set confirmation_sent_at = now() - interval '61 seconds'")
        .execute(t.db.pool())
        .await
        .expect("age the code");
    let r = t.post("/auth/v1/verify", json!({ "type": "sms", "phone": "+447700900123", "token": code })).await;
    r.assert_error(403, "otp_expired");

    let r = t.post("/auth/v1/resend", json!({ "type": "sms", "phone": "+447700900123" })).await;
    r.assert_error(429, "over_sms_send_rate_limit");
    // Unknown numbers answer alike (and count alike).
    let r = t.post("/auth/v1/resend", json!({ "type": "sms", "phone": "+447700900999" })).await;
    assert_eq!((r.status.as_u16(), r.json()), (200, json!({})));
    t.post("/auth/v1/resend", json!({ "type": "sms", "phone": "+447700900999" }))
        .await
        .assert_error(429, "over_sms_send_rate_limit");
    assert_eq!(t.texts_to("447700900999"), 0);

    let r = t.post("/auth/v1/otp", json!({ "phone": "+15550003333", "create_user": false })).await;
    r.assert_error(422, "otp_disabled");
    t.post("/auth/v1/otp", json!({ "phone": "+15550003333", "channel": "pigeon" }))
        .await
        .assert_error(400, "validation_failed");
    t.post("/auth/v1/otp", json!({ "phone": "+0123456" })).await.assert_error(400, "validation_failed");
}

#[tokio::test]
async fn otp_sign_in_phone_change_and_reauthentication_by_text() {
    let t = api_with(phone_on().with_secure_password_change(true)).await;
    let r = t.post("/auth/v1/otp", json!({ "phone": "+15550004444", "data": { "plan": "free" } })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let code = t.last_sms_code("15550004444");
    let s = t.post("/auth/v1/verify", json!({ "type": "sms", "phone": "15550004444", "token": code })).await.json();
    assert_session(&s);
    assert_eq!(s["user"]["user_metadata"]["plan"], "free");
    let claims = Api::claims(s["access_token"].as_str().expect("token"));
    assert_eq!(claims["amr"][0]["method"], "otp");
    let token = s["access_token"].as_str().expect("token").to_owned();

    // Someone else's number is refused; a free one is confirmed by a code sent to it.
    t.admin("POST", "/auth/v1/admin/users", json!({ "phone": "+15550005555", "phone_confirm": true })).await;
    let r = t.send("PUT", "/auth/v1/user", Some(&token), &json!({ "phone": "+15550005555" }).to_string()).await;
    r.assert_error(422, "phone_exists");
    let r = t.send("PUT", "/auth/v1/user", Some(&token), &json!({ "phone": "+15550006666" }).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["new_phone"], "15550006666");
    assert_eq!(r.json()["phone"], "15550004444");
    let code = t.last_sms_code("15550006666");
    let r = t.post("/auth/v1/verify", json!({ "type": "phone_change", "phone": "+15550004444", "token": code })).await;
    r.assert_error(403, "otp_expired");
    let r = t.post("/auth/v1/verify", json!({ "type": "phone_change", "phone": "+15550006666", "token": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user = &r.json()["user"];
    assert_eq!(user["phone"], "15550006666");
    assert!(user.get("new_phone").is_none(), "{user}");
    assert_eq!(user["identities"][0]["identity_data"]["phone"], "15550006666");
    let token = r.json()["access_token"].as_str().expect("token").to_owned();

    // A phone-only user reauthenticates by text.
    let r = t.send("GET", "/auth/v1/reauthenticate", Some(&token), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let nonce = t.last_sms_code("15550006666");
    let set = json!({ "password": "first pass 123", "nonce": nonce }).to_string();
    let r = t.send("PUT", "/auth/v1/user", Some(&token), &set).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let login =
        t.post("/auth/v1/token?grant_type=password", json!({ "phone": "+15550006666", "password": "first pass 123" }));
    assert_eq!(login.await.status, 200);
}

type Form = Vec<(String, String)>;

/// The forms the fake received with valid credentials.
#[derive(Default)]
struct Twilio {
    calls: Mutex<Vec<Form>>,
}

/// A local stand-in for `POST /2010-04-01/Accounts/{sid}/Messages.json`, answering with
/// Twilio's JSON (and its 400 error shape for an invalid `To`).
async fn messages(
    State(fake): State<Arc<Twilio>>,
    headers: HeaderMap,
    body: String,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    use base64::Engine as _;
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let form: Form = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("AC123:tw-secret"));
    if auth != expected {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "code": 20003, "message": "Authenticate", "status": 401 })),
        );
    }
    fake.calls.lock().expect("lock").push(form.clone());
    let to = form.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone()).unwrap_or_default();
    if to.ends_with("0000000") {
        let err = json!({ "code": 21211, "message": format!("The 'To' number {to} is not a valid phone number."), "status": 400 });
        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(err));
    }
    let reply = json!({ "sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "to": to, "error_code": null, "error_message": null });
    (axum::http::StatusCode::CREATED, axum::Json(reply))
}

#[tokio::test]
async fn texts_go_through_twilios_messages_api() {
    let fake = Arc::new(Twilio::default());
    let app =
        axum::Router::new().route("/2010-04-01/Accounts/AC123/Messages.json", post(messages)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let twilio = TwilioSettings::new("AC123", "tw-secret", "MG999").with_api_base(base);
    assert!(!format!("{twilio:?}").contains("tw-secret"), "Debug hides the token");
    let t = api_with(phone_on().with_twilio(twilio)).await;
    assert!(t.auth.sms_outbox().is_none());
    assert_eq!(t.send("GET", "/auth/v1/settings", None, "").await.json()["sms_provider"], "twilio");

    let r = t.post("/auth/v1/otp", json!({ "phone": "+15550007777" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["message_id"], "SM0123456789abcdef0123456789abcdef");
    let form = fake.calls.lock().expect("lock")[0].clone();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field("To").as_deref(), Some("+15550007777"));
    assert_eq!(field("MessagingServiceSid").as_deref(), Some("MG999"));
    let text = field("Body").expect("body");
    let code: String = text.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(text, format!("Your code is {code}"));
    let r = t.post("/auth/v1/verify", json!({ "type": "sms", "phone": "+15550007777", "token": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // WhatsApp goes to the same API with prefixed numbers.
    let r = t.post("/auth/v1/otp", json!({ "phone": "+15550008888", "channel": "whatsapp" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let form = fake.calls.lock().expect("lock")[1].clone();
    assert!(form.contains(&("To".into(), "whatsapp:+15550008888".into())), "{form:?}");
    assert!(form.contains(&("From".into(), "whatsapp:MG999".into())), "{form:?}");

    // A provider refusal is 422 sms_send_failed, without the provider's words.
    let r = t.post("/auth/v1/otp", json!({ "phone": "+15550000000" })).await;
    r.assert_error(422, "sms_send_failed");
    assert!(!r.body.contains("21211") && !r.body.contains("valid phone"), "{}", r.body);
}

#[tokio::test]
async fn phone_mfa_factors_upgrade_the_session_with_a_texted_code() {
    let off = api().await;
    let s = off.sign_up("mfa-off@example.com", "correct horse 1").await;
    let token = s["access_token"].as_str().expect("token");
    let enroll = json!({ "factor_type": "phone", "phone": "+15550001212" }).to_string();
    off.send("POST", "/auth/v1/factors", Some(token), &enroll).await.assert_error(422, "mfa_phone_enroll_not_enabled");

    // No re-send interval, so the second challenge below may text at once.
    let t = api_with(AuthConfig::default().with_mfa_phone_enabled(true).with_max_frequency(0)).await;
    let s = t.sign_up("mfa@example.com", "correct horse 1").await;
    let token = s["access_token"].as_str().expect("token").to_owned();
    let r = t.send("POST", "/auth/v1/factors", Some(&token), &enroll).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let factor = r.json();
    assert_eq!((factor["type"].clone(), factor["phone"].clone()), (json!("phone"), json!("15550001212")));
    let id = factor["id"].as_str().expect("id").to_owned();

    let challenge = |t: &'static str| format!("/auth/v1/factors/{id}/{t}");
    let r = t.send("POST", &challenge("challenge"), Some(&token), "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["type"], "phone");
    let first = r.json()["id"].as_str().expect("challenge").to_owned();
    let sms = t.auth.sms_outbox().expect("outbox").last_to("15550001212").expect("a text");
    assert_eq!(sms.kind, forge_auth::SmsKind::Mfa);
    let code = sms.otp.clone();
    let wrong = if code == "000000" { "000001" } else { "000000" };

    // A wrong answer spends the challenge.
    let r = t
        .send("POST", &challenge("verify"), Some(&token), &json!({ "challenge_id": first, "code": wrong }).to_string())
        .await;
    r.assert_error(422, "mfa_verification_failed");
    let r = t
        .send("POST", &challenge("verify"), Some(&token), &json!({ "challenge_id": first, "code": code }).to_string())
        .await;
    r.assert_error(422, "mfa_challenge_expired");

    let r = t.send("POST", &challenge("challenge"), Some(&token), "{}").await;
    let second = r.json()["id"].as_str().expect("challenge").to_owned();
    let code = t.last_sms_code("15550001212");
    let r = t
        .send("POST", &challenge("verify"), Some(&token), &json!({ "challenge_id": second, "code": code }).to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let claims = Api::claims(r.json()["access_token"].as_str().expect("token"));
    assert_eq!(claims["aal"], "aal2");
    assert!(claims["amr"].as_array().expect("amr").iter().any(|a| a["method"] == "mfa/phone"), "{claims}");
    assert_eq!(r.json()["user"]["factors"][0]["status"], "verified");
    assert_eq!(r.json()["user"]["factors"][0]["phone"], "15550001212");
}

/// GoTrue's `token_hash`: lower-hex SHA-224 of the address followed by the code.
fn token_hash(address: &str, code: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA224, format!("{address}{code}").as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_texted_code_is_only_good_as_a_code_typed_with_its_number() {
    let t = api_with(phone_on()).await;
    assert_eq!(t.post("/auth/v1/otp", json!({ "phone": "+15550003131" })).await.status, 200);
    let code = t.last_sms_code("15550003131");
    let hash = token_hash("15550003131", &code);
    // Neither as an email link (which would skip the per-number guess limit and the SMS
    // lifetime) nor as a hash with a phone type.
    for kind in ["signup", "email", "magiclink", "sms"] {
        let r = t.post("/auth/v1/verify", json!({ "type": kind, "token_hash": hash })).await;
        assert!(matches!(r.status.as_u16(), 400 | 403), "{kind}: {}", r.body);
        let r = t.send("GET", &format!("/auth/v1/verify?type={kind}&token={hash}"), None, "").await;
        assert_eq!(r.status, 303);
        assert!(r.header("location").is_some_and(|l| l.contains("error")), "{kind}: {:?}", r.header("location"));
    }
    let r = t.post("/auth/v1/verify", json!({ "type": "sms", "phone": "15550003131", "token": code })).await;
    assert_eq!(r.status, 200, "the code survived the attempts: {}", r.body);
}

#[tokio::test]
async fn a_number_registered_by_someone_else_is_theirs_only_after_the_owner_proves_it() {
    let t = api_with(phone_on().with_max_frequency(0)).await;
    // The attacker registers the victim's number with a password and some metadata.
    let body = json!({ "phone": "+15550004141", "password": "attacker pass 1", "data": { "name": "mallory" } });
    assert_eq!(t.post("/auth/v1/signup", body).await.status, 200);
    // The owner later signs in by code.
    assert_eq!(t.post("/auth/v1/otp", json!({ "phone": "+15550004141" })).await.status, 200);
    let code = t.last_sms_code("15550004141");
    let r = t.post("/auth/v1/verify", json!({ "type": "sms", "phone": "15550004141", "token": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["user_metadata"], json!({}), "metadata set without proof is gone");
    let login =
        t.post("/auth/v1/token?grant_type=password", json!({ "phone": "15550004141", "password": "attacker pass 1" }));
    login.await.assert_error(400, "invalid_credentials");

    // A sign-up confirmed with its own code keeps its password.
    let body = json!({ "phone": "+15550004242", "password": "owner pass 12" });
    assert_eq!(t.post("/auth/v1/signup", body).await.status, 200);
    let code = t.last_sms_code("15550004242");
    let r = t.post("/auth/v1/verify", json!({ "type": "sms", "phone": "15550004242", "token": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let login =
        t.post("/auth/v1/token?grant_type=password", json!({ "phone": "15550004242", "password": "owner pass 12" }));
    assert_eq!(login.await.status, 200);

    // The same holds for an email registered by someone else (confirmation on).
    let e = api_with(AuthConfig::default().with_mailer_autoconfirm(false).with_max_frequency(0)).await;
    let body = json!({ "email": "victim@example.com", "password": "attacker pass 1" });
    assert_eq!(e.post("/auth/v1/signup", body).await.status, 200);
    assert_eq!(e.post("/auth/v1/otp", json!({ "email": "victim@example.com" })).await.status, 200);
    let code = e.last_otp("victim@example.com");
    let r = e.post("/auth/v1/verify", json!({ "type": "email", "email": "victim@example.com", "token": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    e.login("victim@example.com", "attacker pass 1").await.assert_error(400, "invalid_credentials");
}

#[tokio::test]
async fn phone_mfa_challenges_to_one_number_are_spaced() {
    let t = api_with(AuthConfig::default().with_mfa_phone_enabled(true)).await;
    let s = t.sign_up("spaced@example.com", "correct horse 1").await;
    let token = s["access_token"].as_str().expect("token");
    let enroll = json!({ "factor_type": "phone", "phone": "+15550005151" }).to_string();
    let id =
        t.send("POST", "/auth/v1/factors", Some(token), &enroll).await.json()["id"].as_str().expect("id").to_owned();
    let path = format!("/auth/v1/factors/{id}/challenge");
    assert_eq!(t.send("POST", &path, Some(token), "{}").await.status, 200);
    t.send("POST", &path, Some(token), "{}").await.assert_error(429, "over_sms_send_rate_limit");
}
