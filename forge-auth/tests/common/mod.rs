//! Drives forge-auth's router in-process over a fresh test database.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::ops::Deref;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use forge_auth::{Auth, AuthBuilder, AuthConfig};
use forge_core::testing::{TestApp, test_db};
use http::StatusCode;
use serde_json::Value;

pub use forge_core::testing::Reply;

/// forge-auth's router at `/auth/v1` in forge-core's shared harness.
pub struct Api {
    pub t: TestApp,
    pub auth: Auth,
}

impl Deref for Api {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.t
    }
}

/// GoTrue's error shape, asserted on a reply.
pub trait AssertError {
    /// Asserts the status and a GoTrue error body with `code`, readable by both client parsers.
    fn assert_error(&self, status: u16, code: &str);
}

impl AssertError for Reply {
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        let body = self.json();
        assert_eq!(body["code"], code, "{}", self.body);
        assert_eq!(body["error_code"], code, "{}", self.body);
        assert!(body["msg"].is_string() && body["message"] == body["msg"], "{}", self.body);
        assert_eq!(self.header("x-supabase-api-version"), Some("2024-01-01"));
        assert_eq!(self.header("x-sb-error-code"), Some(code));
    }
}

pub async fn api() -> Api {
    api_with(AuthConfig::default()).await
}

pub async fn api_with(config: AuthConfig) -> Api {
    api_built(Auth::builder().config(config)).await
}

pub async fn api_built(builder: AuthBuilder) -> Api {
    let db = test_db().await;
    forge_core::migrate::run(db.pool(), &[forge_auth::MIGRATIONS]).await.expect("migrate");
    let project = db.project("test");
    let auth = builder.build().expect("auth");
    let app = Router::new().nest("/auth/v1", auth.router());
    Api { t: TestApp::new(db, project, app), auth }
}

impl Api {
    pub async fn send_from(&self, ip: &str, method: &str, uri: &str, token: Option<&str>, body: &str) -> Reply {
        let bearer = token.map_or_else(|| self.anon_key(), str::to_owned);
        let mut req = self
            .request(method, uri)
            .header("authorization", format!("Bearer {bearer}"))
            .header("x-supabase-api-version", "2024-01-01");
        if !body.is_empty() {
            req = req.header("content-type", "application/json;charset=UTF-8");
        }
        let mut req = req.body(Body::from(body.to_owned())).expect("request");
        let addr: SocketAddr = format!("{ip}:40000").parse().expect("address");
        req.extensions_mut().insert(ConnectInfo(addr));
        self.t.send(req).await
    }

    pub async fn send(&self, method: &str, uri: &str, token: Option<&str>, body: &str) -> Reply {
        self.send_from("127.0.0.1", method, uri, token, body).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Reply {
        self.send("POST", uri, None, &body.to_string()).await
    }

    pub async fn admin(&self, method: &str, uri: &str, body: Value) -> Reply {
        let key = self.service_key();
        let body = if body.is_null() { String::new() } else { body.to_string() };
        self.send(method, uri, Some(&key), &body).await
    }

    /// Signs up `email` with `password` (auto-confirm on) and returns the session.
    pub async fn sign_up(&self, email: &str, password: &str) -> Value {
        let r = self.post("/auth/v1/signup", serde_json::json!({ "email": email, "password": password })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post("/auth/v1/token?grant_type=password", serde_json::json!({ "email": email, "password": password }))
            .await
    }

    pub async fn refresh(&self, token: &str) -> Reply {
        self.post("/auth/v1/token?grant_type=refresh_token", serde_json::json!({ "refresh_token": token })).await
    }

    /// The newest OTP mailed to `to`, read from the outbox.
    pub fn last_otp(&self, to: &str) -> String {
        let mail = self.auth.outbox().expect("outbox").last_to(to).unwrap_or_else(|| panic!("no mail to {to}"));
        let marker = "code: ";
        let start =
            mail.html.find(marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no code in {}", mail.html));
        mail.html[start..].chars().take_while(char::is_ascii_digit).collect()
    }

    /// The newest link mailed to `to`.
    pub fn last_link(&self, to: &str) -> String {
        let mail = self.auth.outbox().expect("outbox").last_to(to).unwrap_or_else(|| panic!("no mail to {to}"));
        let start = mail.html.find("href=\"").expect("a link") + 6;
        let end = mail.html[start..].find('"').expect("closing quote") + start;
        mail.html[start..end].replace("&amp;", "&")
    }

    pub fn mails_to(&self, to: &str) -> usize {
        self.auth.outbox().expect("outbox").messages(Some(to)).len()
    }

    /// The code in the newest text to `phone`, read from the SMS outbox.
    pub fn last_sms_code(&self, phone: &str) -> String {
        let sms =
            self.auth.sms_outbox().expect("sms outbox").last_to(phone).unwrap_or_else(|| panic!("no text to {phone}"));
        let code: String = sms.body.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(code, sms.otp, "the text carries the code");
        code
    }

    pub fn texts_to(&self, phone: &str) -> usize {
        self.auth.sms_outbox().expect("sms outbox").messages(Some(phone)).len()
    }

    /// Decodes a JWT's claims without verifying.
    pub fn claims(token: &str) -> Value {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).expect("three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
        serde_json::from_slice(&bytes).expect("claims JSON")
    }
}

/// Asserts the Session shape both clients require.
#[track_caller]
pub fn assert_session(s: &Value) {
    assert!(s["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{s}");
    assert_eq!(s["token_type"], "bearer");
    assert!(s["expires_in"].as_u64().is_some_and(|n| n > 0), "{s}");
    assert!(s["expires_at"].as_i64().is_some(), "{s}");
    assert!(s["refresh_token"].as_str().is_some_and(|t| t.len() >= 22), "{s}");
    assert_user(&s["user"]);
}

/// Asserts the User shape both clients require.
#[track_caller]
pub fn assert_user(u: &Value) {
    assert!(u["id"].as_str().is_some_and(|i| i.len() == 36), "{u}");
    assert_eq!(u["aud"], "authenticated", "{u}");
    assert!(u["app_metadata"].is_object() && u["user_metadata"].is_object(), "{u}");
    assert!(u["created_at"].as_str().is_some_and(|t| t.contains('T')), "{u}");
    assert!(u["identities"].is_array(), "{u}");
}
