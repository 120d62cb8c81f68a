//! The OAuth 2 / OIDC redirect flow against a fake OpenID provider started in the test: a
//! small axum app with discovery, authorize, token, userinfo and JWKS.

mod common;

use common::AssertError as _;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Api, api_with, assert_session};
use forge_auth::{AuthConfig, ProviderConfig};
use forge_core::{ProjectKeys, ProjectRef};
use http::StatusCode;
use serde_json::{Value, json};

const CLIENT_ID: &str = "forge-client";
const CLIENT_SECRET: &str = "forge-client-secret";

/// An issued code: (nonce, S256 challenge, redirect_uri).
type Issued = (String, String, String);

#[derive(Clone)]
struct Fake {
    issuer: String,
    keys: ProjectKeys,
    codes: Arc<Mutex<HashMap<String, Issued>>>,
    user: Arc<Mutex<Value>>,
}

impl Fake {
    fn id_token(&self, nonce: &str, aud: &str) -> String {
        let user = self.user.lock().expect("lock").clone();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({ "iss": self.issuer, "aud": aud, "iat": now, "exp": now + 300, "nonce": nonce });
        for (k, v) in user.as_object().expect("user") {
            claims[k] = v.clone();
        }
        self.keys.sign(claims.as_object().expect("claims")).expect("sign")
    }
}

async fn discovery(State(f): State<Fake>) -> Json<Value> {
    Json(json!({
        "issuer": f.issuer,
        "authorization_endpoint": format!("{}/authorize", f.issuer),
        "token_endpoint": format!("{}/token", f.issuer),
        "userinfo_endpoint": format!("{}/userinfo", f.issuer),
        "jwks_uri": format!("{}/jwks", f.issuer),
    }))
}

async fn authorize(State(f): State<Fake>, Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "{q:?}");
    let code = format!("code-{}", f.codes.lock().expect("lock").len());
    f.codes
        .lock()
        .expect("lock")
        .insert(code.clone(), (q["nonce"].clone(), q["code_challenge"].clone(), q["redirect_uri"].clone()));
    Redirect::to(&format!("{}?code={code}&state={}", q["redirect_uri"], q["state"])).into_response()
}

async fn token(State(f): State<Fake>, headers: http::HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    // The client authenticates with HTTP Basic (oauth2's default).
    let basic = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if basic != expected {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" }))).into_response();
    }
    let Some((nonce, challenge, redirect)) = f.codes.lock().expect("lock").remove(&form["code"]) else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_grant" }))).into_response();
    };
    let computed =
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, form["code_verifier"].as_bytes()));
    if computed != challenge || form["redirect_uri"] != redirect {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_grant", "error_description": "PKCE" })))
            .into_response();
    }
    Json(json!({
        "access_token": "provider-access-token",
        "refresh_token": "provider-refresh-token",
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": f.id_token(&nonce, CLIENT_ID),
    }))
    .into_response()
}

async fn userinfo(State(f): State<Fake>) -> Json<Value> {
    let mut user = f.user.lock().expect("lock").clone();
    user["locale"] = json!("en");
    Json(user)
}

async fn jwks(State(f): State<Fake>) -> Json<Value> {
    Json(f.keys.jwks())
}

async fn start_fake() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let keys = ProjectKeys::builder(ProjectRef::new("idp").expect("ref"), vec![7u8; 32])
        .es256_pkcs8(forge_core::keys::generate_es256_pkcs8().expect("key"))
        .build()
        .expect("keys");
    let fake = Fake {
        issuer,
        keys,
        codes: Arc::default(),
        user: Arc::new(Mutex::new(
            json!({ "sub": "idp-user-1", "email": "Pat@Example.com", "email_verified": true, "name": "Pat" }),
        )),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .route("/jwks", get(jwks))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    fake
}

async fn api_for(fake: &Fake) -> Api {
    let provider = ProviderConfig::new(CLIENT_ID, CLIENT_SECRET).with_kind("oidc").with_issuer(&fake.issuer);
    let config = AuthConfig::default()
        .with_redirect_urls(["http://app.test/*"])
        .with_provider("fakeidp", provider)
        .with_manual_linking_enabled(true);
    config.validate().expect("valid config");
    api_with(config).await
}

/// Follows the browser's hops: Forge's authorize → the provider → Forge's callback.
async fn browser_flow(t: &Api, query: &str) -> String {
    let r = t.send("GET", &format!("/auth/v1/authorize?provider=fakeidp&{query}"), None, "").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.body);
    let at_provider = r.header("location").expect("location").to_owned();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let res = http.get(&at_provider).send().await.expect("provider");
    let back = res.headers()["location"].to_str().expect("location").to_owned();
    let path = back.strip_prefix("http://localhost").unwrap_or_else(|| panic!("back to forge: {back}"));
    assert!(path.starts_with("/auth/v1/callback?code="), "{path}");
    let r = t.send("GET", path, None, "").await;
    assert!(r.status.is_redirection(), "{} {}", r.status, r.body);
    r.header("location").expect("location").to_owned()
}

fn fragment_params(url: &str) -> HashMap<String, String> {
    let fragment = url.split_once('#').map(|(_, f)| f).unwrap_or_default();
    form_urlencoded::parse(fragment.as_bytes()).into_owned().collect()
}

#[tokio::test]
async fn the_implicit_redirect_flow_signs_in_and_reuses_the_identity() {
    let fake = start_fake().await;
    let t = api_for(&fake).await;
    let landing = browser_flow(&t, "redirect_to=http://app.test/done&scopes=groups").await;
    assert!(landing.starts_with("http://app.test/done#access_token="), "{landing}");
    let p = fragment_params(&landing);
    assert_eq!(p["provider_token"], "provider-access-token");
    assert_eq!(p["provider_refresh_token"], "provider-refresh-token");
    assert_eq!(p["token_type"], "bearer");
    let claims = Api::claims(&p["access_token"]);
    assert_eq!(claims["amr"][0]["method"], "oauth");
    assert_eq!(claims["email"], "pat@example.com");
    assert_eq!(claims["app_metadata"]["provider"], "fakeidp");

    let me = t.send("GET", "/auth/v1/user", Some(&p["access_token"]), "").await.json();
    assert_eq!(me["identities"][0]["provider"], "fakeidp");
    assert_eq!(me["identities"][0]["id"], "idp-user-1");
    assert_eq!(me["identities"][0]["identity_data"]["locale"], "en", "userinfo merged");
    assert!(me["email_confirmed_at"].is_string(), "the provider vouched for the email");
    assert_eq!(me["user_metadata"]["full_name"], "Pat");

    // Again: the same user, through the same identity.
    let again = fragment_params(&browser_flow(&t, "redirect_to=http://app.test/done").await);
    assert_eq!(Api::claims(&again["access_token"])["sub"], claims["sub"]);
    let users: i64 = sqlx::query_scalar("select count(*) from auth.users").fetch_one(t.db.pool()).await.expect("count");
    assert_eq!(users, 1);
}

#[tokio::test]
async fn the_pkce_flow_returns_a_code_for_the_token_endpoint() {
    let fake = start_fake().await;
    let t = api_for(&fake).await;
    let verifier = "v".repeat(64);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    let landing = browser_flow(
        &t,
        &format!("redirect_to=http://app.test/cb&code_challenge={challenge}&code_challenge_method=s256"),
    )
    .await;
    let code = landing.strip_prefix("http://app.test/cb?code=").unwrap_or_else(|| panic!("{landing}"));
    let s = t.post("/auth/v1/token?grant_type=pkce", json!({ "auth_code": code, "code_verifier": verifier })).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_session(&s.json());
    assert_eq!(s.json()["provider_token"], "provider-access-token");
    t.post("/auth/v1/token?grant_type=pkce", json!({ "auth_code": code, "code_verifier": verifier }))
        .await
        .assert_error(404, "flow_state_not_found");

    // skip_http_redirect answers the provider URL as JSON (linkIdentity / signInWithOAuth in fetch mode).
    let r = t.send("GET", "/auth/v1/authorize?provider=fakeidp&skip_http_redirect=true", None, "").await;
    assert!(
        r.json()["url"].as_str().is_some_and(|u| u.starts_with(&format!("{}/authorize?", fake.issuer))),
        "{}",
        r.body
    );
    t.send("GET", "/auth/v1/authorize?provider=nope", None, "").await.assert_error(400, "validation_failed");
}

#[tokio::test]
async fn bad_or_replayed_state_and_provider_errors_land_as_errors() {
    let fake = start_fake().await;
    let t = api_for(&fake).await;
    let r = t.send("GET", "/auth/v1/callback?code=x&state=not-a-uuid", None, "").await;
    let location = r.header("location").expect("location");
    assert!(location.contains("error_code=bad_oauth_state"), "{location}");

    let r = t.send("GET", "/auth/v1/authorize?provider=fakeidp&redirect_to=http://app.test/x", None, "").await;
    let at_provider = r.header("location").expect("location").to_owned();
    let state = at_provider.split("state=").nth(1).and_then(|s| s.split('&').next()).expect("state").to_owned();
    let denied = t
        .send("GET", &format!("/auth/v1/callback?error=access_denied&error_description=nope&state={state}"), None, "")
        .await;
    let location = denied.header("location").expect("location");
    assert!(
        location.starts_with("http://app.test/x?error=invalid_request&error_code=bad_oauth_callback"),
        "{location}"
    );
    // The state was spent by that answer.
    let replay = t.send("GET", &format!("/auth/v1/callback?code=code-0&state={state}"), None, "").await;
    assert!(replay.header("location").expect("location").contains("bad_oauth_state"));
}

#[tokio::test]
async fn id_token_grant_and_linking_by_verified_email() {
    let fake = start_fake().await;
    let t = api_for(&fake).await;
    // An existing email user with the provider's (verified) address gets the identity linked.
    let existing = t.sign_up("pat@example.com", "password-1234").await;
    let id_token = fake.id_token("raw-nonce", CLIENT_ID);
    let s = t
        .post(
            "/auth/v1/token?grant_type=id_token",
            json!({ "provider": "fakeidp", "id_token": id_token, "nonce": "raw-nonce" }),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.json()["user"]["id"], existing["user"]["id"]);
    assert_eq!(s.json()["user"]["app_metadata"]["providers"], json!(["email", "fakeidp"]));

    let wrong_nonce = t
        .post(
            "/auth/v1/token?grant_type=id_token",
            json!({ "provider": "fakeidp", "id_token": id_token, "nonce": "other" }),
        )
        .await;
    wrong_nonce.assert_error(400, "validation_failed");
    // A token bound to a nonce is refused without it.
    t.post("/auth/v1/token?grant_type=id_token", json!({ "provider": "fakeidp", "id_token": id_token }))
        .await
        .assert_error(400, "validation_failed");
    let wrong_aud = fake.id_token("n", "someone-else");
    t.post("/auth/v1/token?grant_type=id_token", json!({ "provider": "fakeidp", "id_token": wrong_aud }))
        .await
        .assert_error(400, "validation_failed");
    let other_keys = ProjectKeys::builder(ProjectRef::new("evil").expect("ref"), vec![9u8; 32])
        .es256_pkcs8(forge_core::keys::generate_es256_pkcs8().expect("key"))
        .build()
        .expect("keys");
    let mut claims = Api::claims(&id_token);
    claims["sub"] = json!("attacker");
    let forged = other_keys.sign(claims.as_object().expect("claims")).expect("sign");
    t.post("/auth/v1/token?grant_type=id_token", json!({ "provider": "fakeidp", "id_token": forged }))
        .await
        .assert_error(400, "validation_failed");
    t.post("/auth/v1/token?grant_type=id_token", json!({ "provider": "unknown", "id_token": id_token }))
        .await
        .assert_error(400, "provider_disabled");

    // An unverified provider email never takes over an account.
    *fake.user.lock().expect("lock") =
        json!({ "sub": "idp-user-2", "email": "pat@example.com", "email_verified": false });
    let unverified = fake.id_token("n", CLIENT_ID);
    t.post(
        "/auth/v1/token?grant_type=id_token",
        json!({ "provider": "fakeidp", "id_token": unverified, "nonce": "n" }),
    )
    .await
    .assert_error(422, "provider_email_needs_verification");

    // Unlinking: the email identity can go while another remains; the last one cannot.
    let at = s.json()["access_token"].as_str().expect("at").to_owned();
    let me = t.send("GET", "/auth/v1/user", Some(&at), "").await.json();
    let email_identity = me["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|i| i["provider"] == "email")
        .expect("email")["identity_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let fake_identity = me["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|i| i["provider"] == "fakeidp")
        .expect("fake")["identity_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = t.send("DELETE", &format!("/auth/v1/user/identities/{email_identity}"), Some(&at), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.send("DELETE", &format!("/auth/v1/user/identities/{fake_identity}"), Some(&at), "")
        .await
        .assert_error(422, "single_identity_not_deletable");
    let me = t.send("GET", "/auth/v1/user", Some(&at), "").await.json();
    assert_eq!(me["app_metadata"]["providers"], json!(["fakeidp"]));
}

#[tokio::test]
async fn third_party_tokens_are_trusted_once_the_issuers_keys_are_fetched() {
    use forge_auth::third_party::{ThirdPartyConfig, refresh};
    let fake = start_fake().await;
    let config = ThirdPartyConfig::new(&fake.issuer).with_audience(CLIENT_ID);
    let issuer = forge_core::ThirdPartyIssuer::new(fake.issuer.clone(), Some(CLIENT_ID.into()));
    assert_eq!(refresh(&config, &issuer).await.expect("discovery and JWKS"), 1);
    let keys = ProjectKeys::builder(ProjectRef::new("app").expect("ref"), vec![3u8; 32])
        .third_party(issuer)
        .build()
        .expect("keys");
    let token = fake.id_token("n", CLIENT_ID);
    let principal = keys
        .authenticate(Some(keys.anon_key().as_bytes()), Some(format!("Bearer {token}").as_bytes()))
        .expect("a third-party user");
    assert_eq!(principal.role(), "authenticated");
    assert_eq!(principal.claims().sub(), Some("idp-user-1"));
    let other_aud = fake.id_token("n", "another-client");
    assert!(keys.authenticate(None, Some(format!("Bearer {other_aud}").as_bytes())).is_err());

    let unreachable = ThirdPartyConfig::new("http://127.0.0.1:9");
    assert!(refresh(&unreachable, &forge_core::ThirdPartyIssuer::new("http://127.0.0.1:9", None)).await.is_err());
}

#[tokio::test]
async fn link_identity_makes_an_anonymous_user_permanent() {
    let fake = start_fake().await;
    let t = api_for(&fake).await;
    let anon = t.post("/auth/v1/signup", json!({})).await.json();
    let at = anon["access_token"].as_str().expect("at").to_owned();
    let r = t
        .send("GET", "/auth/v1/user/identities/authorize?provider=fakeidp&redirect_to=http://app.test/linked&skip_http_redirect=true", Some(&at), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.json()["url"].as_str().expect("url").to_owned();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let back = http.get(&url).send().await.expect("provider").headers()["location"].to_str().expect("loc").to_owned();
    let landing = t.send("GET", back.strip_prefix("http://localhost").expect("forge"), None, "").await;
    let location = landing.header("location").expect("location").to_owned();
    let p = fragment_params(&location);
    let claims = Api::claims(&p["access_token"]);
    assert_eq!(claims["sub"], anon["user"]["id"], "the same user");
    assert_eq!(claims["is_anonymous"], false);
    assert_eq!(claims["email"], "pat@example.com");
    let me = t.send("GET", "/auth/v1/user", Some(&p["access_token"]), "").await.json();
    assert_eq!(me["identities"][0]["provider"], "fakeidp");

    // The identity now belongs to that user: another user cannot link it.
    let other = t.sign_up("other@example.com", "password-1234").await;
    let r = t
        .send(
            "GET",
            "/auth/v1/user/identities/authorize?provider=fakeidp&redirect_to=http://app.test/x",
            other["access_token"].as_str(),
            "",
        )
        .await;
    let at_provider = r.header("location").expect("location").to_owned();
    let back =
        http.get(&at_provider).send().await.expect("provider").headers()["location"].to_str().expect("loc").to_owned();
    let landing = t.send("GET", back.strip_prefix("http://localhost").expect("forge"), None, "").await;
    assert!(landing.header("location").expect("location").contains("error_code=identity_already_exists"));
    t.send("GET", "/auth/v1/user/identities/authorize?provider=fakeidp", None, "").await.assert_error(403, "bad_jwt");
}

#[tokio::test]
async fn a_pre_registered_unconfirmed_account_is_not_taken_over_by_oauth_linking() {
    let fake = start_fake().await;
    let provider = ProviderConfig::new(CLIENT_ID, CLIENT_SECRET).with_kind("oidc").with_issuer(&fake.issuer);
    let config = AuthConfig::default()
        .with_mailer_autoconfirm(false)
        .with_redirect_urls(["http://app.test/*"])
        .with_provider("fakeidp", provider);
    let t = api_with(config).await;
    // The attacker registers the victim's address first (it stays unconfirmed).
    t.post("/auth/v1/signup", json!({ "email": "pat@example.com", "password": "attacker-pass-1" })).await;
    let landing = browser_flow(&t, "redirect_to=http://app.test/done").await;
    let p = fragment_params(&landing);
    let me = t.send("GET", "/auth/v1/user", Some(&p["access_token"]), "").await.json();
    assert_eq!(me["identities"].as_array().map(Vec::len), Some(1), "only the provider's identity: {me}");
    assert_eq!(me["identities"][0]["provider"], "fakeidp");
    t.login("pat@example.com", "attacker-pass-1").await.assert_error(400, "invalid_credentials");
}

#[tokio::test]
async fn third_party_tokens_do_not_reach_the_auth_services_own_user_endpoints() {
    let fake = start_fake().await;
    let t = api_for(&fake).await;
    // A project that trusts the fake IdP for its data APIs.
    let issuer = forge_core::ThirdPartyIssuer::new(fake.issuer.clone(), Some(CLIENT_ID.into()));
    issuer.set_jwks(&fake.keys.jwks()).expect("jwks");
    let keys = ProjectKeys::builder(
        ProjectRef::new("test").expect("ref"),
        forge_core::testing::TEST_JWT_SECRET.as_bytes().to_vec(),
    )
    .third_party(issuer)
    .build()
    .expect("keys");
    let project = forge_core::Project::new(
        ProjectRef::new("test").expect("ref"),
        t.db.database().clone(),
        keys.clone(),
        forge_core::ProjectSettings::new("http://localhost"),
    );
    let signed_up = t.sign_up("victim@example.com", "password-1234").await;
    // Even with a subject equal to a real user's id.
    *fake.user.lock().expect("lock") = json!({ "sub": signed_up["user"]["id"], "email": "x@example.com" });
    let token = fake.id_token("n", CLIENT_ID);
    assert!(keys.authenticate(None, Some(format!("Bearer {token}").as_bytes())).is_ok(), "trusted for data APIs");
    let app = axum::Router::new().nest("/auth/v1", t.auth.router()).layer(forge_core::ProjectLayer::single(project));
    let req = http::Request::builder()
        .uri("/auth/v1/user")
        .header("apikey", keys.anon_key())
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let res = tower::ServiceExt::oneshot(app, req).await.expect("response");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn id_token_grant_links_to_the_signed_in_user() {
    let fake = start_fake().await;
    let t = api_for(&fake).await;
    *fake.user.lock().expect("lock") =
        json!({ "sub": "idp-linker", "email": "someone.else@example.com", "email_verified": true });
    let id_token = fake.id_token("n1", CLIENT_ID);
    let body = json!({ "provider": "fakeidp", "id_token": id_token, "nonce": "n1", "link_identity": true });

    // Linking needs a signed-in user.
    t.post("/auth/v1/token?grant_type=id_token", body.clone()).await.assert_error(403, "bad_jwt");

    let me = t.sign_up("linker@example.com", "password-1234").await;
    let at = me["access_token"].as_str().expect("at");
    let r = t.send("POST", "/auth/v1/token?grant_type=id_token", Some(at), &body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.json();
    assert_eq!(s["user"]["id"], me["user"]["id"], "linked to the bearer's user, not matched by email");
    assert_eq!(s["user"]["email"], "linker@example.com");
    assert_eq!(s["user"]["app_metadata"]["providers"], json!(["email", "fakeidp"]));

    // The identity now belongs to that user: another user cannot link it.
    let other = t.sign_up("other@example.com", "password-1234").await;
    let again = json!({ "provider": "fakeidp", "id_token": fake.id_token("n2", CLIENT_ID), "nonce": "n2", "link_identity": true });
    let r =
        t.send("POST", "/auth/v1/token?grant_type=id_token", other["access_token"].as_str(), &again.to_string()).await;
    r.assert_error(422, "identity_already_exists");
}

#[tokio::test]
async fn manual_linking_is_off_by_default_and_then_both_endpoints_are_404() {
    let fake = start_fake().await;
    let provider = ProviderConfig::new(CLIENT_ID, CLIENT_SECRET).with_kind("oidc").with_issuer(&fake.issuer);
    let config = AuthConfig::default().with_redirect_urls(["http://app.test/*"]).with_provider("fakeidp", provider);
    assert!(!config.manual_linking_enabled, "GoTrue's GOTRUE_SECURITY_MANUAL_LINKING_ENABLED defaults to false");
    let t = api_with(config).await;
    let s = t.sign_up("linker@example.com", "password-1234").await;
    let at = s["access_token"].as_str().expect("at");
    let identity = s["user"]["identities"][0]["identity_id"].as_str().expect("identity id");

    let link = "/auth/v1/user/identities/authorize?provider=fakeidp&skip_http_redirect=true";
    let r = t.send("GET", link, Some(at), "").await;
    r.assert_error(404, "manual_linking_disabled");
    assert_eq!(r.json()["message"], "Manual linking is disabled");
    let unlink = format!("/auth/v1/user/identities/{identity}");
    t.send("DELETE", &unlink, Some(at), "").await.assert_error(404, "manual_linking_disabled");
    // The session is checked first, as GoTrue's middleware order has it.
    t.send("GET", link, None, "").await.assert_error(403, "bad_jwt");
    let me = t.send("GET", "/auth/v1/user", Some(at), "").await.json();
    assert_eq!(me["identities"].as_array().map(Vec::len), Some(1), "nothing was unlinked");
}
