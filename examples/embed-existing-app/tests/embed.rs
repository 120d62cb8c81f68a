//! The example app against a real Postgres: forge-auth and forge-data under the app's own
//! paths and pool, and the app's own handlers reading the same sessions.

use axum::Router;
use axum::body::Body;
use forge_core::testing::{TEST_JWT_SECRET, test_db};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    apikey: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = axum::http::Request::builder().method(method).uri(uri).header("apikey", apikey);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json").header("prefer", "return=representation");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let res = app.clone().oneshot(req.body(body).expect("request")).await.expect("response");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn forge_mounts_under_the_apps_paths_over_its_own_pool() {
    let t = test_db().await;
    // The app's own pool, made from its own URL, as an app has before it takes Forge in.
    let pool = sqlx::PgPool::connect(t.url()).await.expect("the app's pool");
    let (app, project) = example_embed_existing_app::app(
        pool.clone(),
        t.url(),
        Some(t.gateway_url()),
        TEST_JWT_SECRET.as_bytes(),
        "http://localhost:3000",
    )
    .await
    .expect("the app starts");
    let anon = project.keys().anon_key().to_owned();

    // The app's own route, with its own state.
    let (status, body) = call(&app, "GET", "/health", &anon, None, None).await;
    assert_eq!((status, body), (200, json!({ "app": "notes", "ok": true })));

    // Sign up through forge-auth at the app's path.
    let (status, session) = call(
        &app,
        "POST",
        "/api/auth/signup",
        &anon,
        None,
        Some(json!({ "email": "ann@example.com", "password": "a long enough password" })),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let token = session["access_token"].as_str().expect("a session").to_owned();
    let user: uuid::Uuid = session["user"]["id"].as_str().and_then(|s| s.parse().ok()).expect("user id");

    // Write through forge-data at the app's path; RLS fills in and checks the owner.
    let (status, rows) =
        call(&app, "POST", "/api/db/notes", &anon, Some(&token), Some(json!({ "body": "first" }))).await;
    assert_eq!(status, 201, "{rows}");
    assert_eq!(rows[0]["owner"], json!(user));
    let (owner, body): (uuid::Uuid, String) =
        sqlx::query_as("select owner, body from public.notes").fetch_one(&pool).await.expect("the row in SQL");
    assert_eq!((owner, body.as_str()), (user, "first"));

    // A note of someone else, written straight to the app's pool, stays out of forge-data's
    // answer (row-level security) and of the app's own handler (its own SQL).
    let other = uuid::Uuid::new_v4();
    sqlx::query(
        "insert into auth.users (id, aud, role, email) values ($1, 'authenticated', 'authenticated', 'bo@example.com')",
    )
    .bind(other)
    .execute(&pool)
    .await
    .expect("another user");
    sqlx::query("insert into public.notes (owner, body) values ($1, 'not yours')")
        .bind(other)
        .execute(&pool)
        .await
        .expect("another note");
    let (status, rows) = call(&app, "GET", "/api/db/notes?select=body", &anon, Some(&token), None).await;
    assert_eq!((status, rows), (200, json!([{ "body": "first" }])));
    let (status, rows) = call(&app, "GET", "/api/db/notes", &anon, None, None).await;
    assert_eq!((status, rows), (200, json!([])), "anon sees no notes");

    // The app's own handler reads the same session through the Principal extractor.
    let (status, mine) = call(&app, "GET", "/me/notes", &anon, Some(&token), None).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["user"], json!(user));
    let bodies: Vec<&str> =
        mine["notes"].as_array().expect("notes").iter().filter_map(|n| n["body"].as_str()).collect();
    assert_eq!(bodies, ["first"]);
    let (status, _) = call(&app, "GET", "/me/notes", &anon, None, None).await;
    assert_eq!(status, 401, "the app refuses anon itself");

    // forge-auth's own routes answer in GoTrue's shape under the app's path too.
    let (status, user_body) = call(&app, "GET", "/api/auth/user", &anon, Some(&token), None).await;
    assert_eq!((status, user_body["email"].as_str()), (200, Some("ann@example.com")));
    let (status, refused) = call(&app, "GET", "/api/auth/user", &anon, None, None).await;
    assert_eq!((status, refused["error_code"].as_str()), (401, Some("no_authorization")));
}
