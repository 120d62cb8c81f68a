//! Captcha protection against a local stand-in for hCaptcha's `siteverify` (form in, JSON
//! verdict out).

mod common;

use common::AssertError as _;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use common::api_with;
use forge_auth::AuthConfig;
use forge_auth::captcha::{CaptchaProvider, CaptchaSettings};
use serde_json::{Value, json};

type Form = Vec<(String, String)>;

async fn siteverify(State(seen): State<Arc<Mutex<Vec<Form>>>>, body: String) -> axum::Json<Value> {
    let form: Form = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let ok = field("secret").as_deref() == Some("cap-secret") && field("response").as_deref() == Some("good-token");
    seen.lock().expect("lock").push(form);
    if ok {
        axum::Json(json!({ "success": true, "challenge_ts": "2026-11-22T00:00:00Z", "hostname": "localhost" }))
    } else {
        axum::Json(json!({ "success": false, "error-codes": ["invalid-input-response"] }))
    }
}

fn with_token(mut body: Value, token: &str) -> Value {
    body["gotrue_meta_security"] = json!({ "captcha_token": token });
    body
}

#[tokio::test]
async fn protected_endpoints_need_a_token_the_provider_accepts() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route("/siteverify", post(siteverify)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/siteverify", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let captcha = CaptchaSettings::new(CaptchaProvider::Hcaptcha, "cap-secret").with_verify_url(url);
    assert!(!format!("{captcha:?}").contains("cap-secret"));
    let t = api_with(AuthConfig::default().with_captcha(captcha)).await;

    let signup = json!({ "email": "cap@example.com", "password": "correct horse 1" });
    let r = t.post("/auth/v1/signup", signup.clone()).await;
    r.assert_error(400, "captcha_failed");
    assert!(seen.lock().expect("lock").is_empty(), "no token: the provider is not asked");
    let r = t.post("/auth/v1/signup", with_token(signup.clone(), "forged")).await;
    r.assert_error(400, "captcha_failed");
    assert!(r.body.contains("invalid-input-response"), "{}", r.body);
    let r = t.post("/auth/v1/signup", with_token(signup, "good-token")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let form = seen.lock().expect("lock").last().cloned().expect("a check");
    assert!(form.contains(&("remoteip".into(), "127.0.0.1".into())), "{form:?}");

    let login = json!({ "email": "cap@example.com", "password": "correct horse 1" });
    t.post("/auth/v1/token?grant_type=password", login.clone()).await.assert_error(400, "captcha_failed");
    let r = t.post("/auth/v1/token?grant_type=password", with_token(login, "good-token")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Refreshing needs no captcha.
    let rt = r.json()["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(t.refresh(&rt).await.status, 200);

    for path in ["/auth/v1/recover", "/auth/v1/otp", "/auth/v1/magiclink"] {
        t.post(path, json!({ "email": "cap@example.com" })).await.assert_error(400, "captcha_failed");
    }
    t.post("/auth/v1/resend", json!({ "type": "signup", "email": "cap@example.com" }))
        .await
        .assert_error(400, "captcha_failed");
    t.post("/auth/v1/signup", json!({})).await.assert_error(400, "captcha_failed");
    let r = t.post("/auth/v1/recover", with_token(json!({ "email": "cap@example.com" }), "good-token")).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn an_unreachable_provider_fails_closed_without_details() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/siteverify", listener.local_addr().expect("addr"));
    drop(listener);
    let captcha = CaptchaSettings::new(CaptchaProvider::Turnstile, "s").with_verify_url(url);
    let t = api_with(AuthConfig::default().with_captcha(captcha)).await;
    let body = with_token(json!({ "email": "x@example.com", "password": "correct horse 1" }), "tok");
    let r = t.post("/auth/v1/signup", body).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!r.body.contains("127.0.0.1"), "{}", r.body);
    let users: i64 = sqlx::query_scalar("select count(*) from auth.users").fetch_one(t.db.pool()).await.expect("n");
    assert_eq!(users, 0);
}
