//! Projects resolved per request, isolation between them, and bad input over HTTP.

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use forge_core::project::ProjectMap;
use forge_core::rls::{self, RequestContext};
use forge_core::testing::{TestDb, test_db};
use forge_core::{
    Database, DatabaseConfig, Project, ProjectKeys, ProjectLayer, ProjectRef, ProjectSettings, RefResolver, WireFormat,
};
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::{Layer as _, ServiceExt as _};

async fn secrets(project: Project, ctx: RequestContext) -> Response {
    let authenticated = ctx.principal().is_authenticated();
    match rls::query_once(project.db(), &ctx, "select coalesce(json_agg(v order by v), '[]')::text from secrets", &[])
        .await
    {
        Ok(rows) => ([("content-type", "application/json")], rows[0].get::<_, String>(0)).into_response(),
        Err(e) => e.render(WireFormat::PostgRest, authenticated),
    }
}

type App = forge_core::project::ProjectService<Router>;

fn app(resolver: RefResolver) -> App {
    let router = Router::new()
        .route("/rest/v1/secrets", get(secrets))
        .route("/auth/v1/user", get(secrets))
        .route("/storage/v1/bucket", get(secrets));
    // Around the router, so the `/p/{ref}` prefix is gone before routing.
    ProjectLayer::new(resolver).layer(router)
}

async fn seeded(value: &str) -> TestDb {
    let t = test_db().await;
    sqlx::raw_sql(
        "create table secrets (v text);
         alter table secrets enable row level security;
         create policy everyone_reads on secrets for select to anon using (true);",
    )
    .execute(t.pool())
    .await
    .expect("schema");
    sqlx::query("insert into secrets values ($1)").bind(value).execute(t.pool()).await.expect("seed");
    t
}

async fn call<S>(app: &S, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, http::HeaderMap, Value)
where
    S: tower::Service<Request<Body>, Response = Response, Error = std::convert::Infallible> + Clone,
{
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn two_projects_by_path_prefix_cannot_see_each_others_data() {
    let (a, b) = (seeded("alpha-data").await, seeded("beta-data").await);
    let alpha = a.project_with_secret("alpha", b"alpha-secret-alpha-secret-alpha-secret!!");
    let beta = b.project_with_secret("beta", b"beta-secret-beta-secret-beta-secret-beta");
    let map = ProjectMap::new();
    map.insert(alpha.clone());
    map.insert(beta.clone());
    let app = app(RefResolver::new(map.clone()).by_path_prefix().by_host_label());
    let ka = alpha.keys().anon_key().to_owned();
    let kb = beta.keys().anon_key().to_owned();

    let (s, _, body) = call(&app, "/p/alpha/rest/v1/secrets", &[("apikey", &ka)]).await;
    assert_eq!((s, body), (StatusCode::OK, json!(["alpha-data"])));
    let (s, _, body) = call(&app, "/p/beta/rest/v1/secrets", &[("apikey", &kb)]).await;
    assert_eq!((s, body), (StatusCode::OK, json!(["beta-data"])));

    // Beta's key opens nothing of alpha's.
    let (s, h, body) = call(&app, "/p/alpha/rest/v1/secrets", &[("apikey", &kb)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "PGRST301");
    assert_eq!(h["proxy-status"], "PostgREST; error=PGRST301");
    let (s, _, _) = call(&app, "/p/alpha/rest/v1/secrets", &[("apikey", beta.keys().publishable_key())]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The host's first label resolves too.
    let (s, _, body) = call(&app, "/rest/v1/secrets", &[("apikey", &kb), ("host", "beta.forge.test:8000")]).await;
    assert_eq!((s, body), (StatusCode::OK, json!(["beta-data"])));
}

#[tokio::test]
async fn unknown_projects_get_a_clear_404_in_each_services_shape() {
    let app = app(RefResolver::new(ProjectMap::new()).by_path_prefix());
    let (s, h, body) = call(&app, "/p/nope/rest/v1/secrets", &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "PGRST125");
    assert!(body["message"].as_str().expect("message").contains("nope"), "{body}");
    assert_eq!(h["proxy-status"], "PostgREST; error=PGRST125");

    let (s, h, body) = call(&app, "/p/nope/auth/v1/user", &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!((body["code"].as_str(), body["error_code"].as_str()), (Some("not_found"), Some("not_found")));
    assert_eq!(h["x-supabase-api-version"], "2024-01-01");

    let (s, _, body) = call(&app, "/p/nope/storage/v1/bucket", &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!((body["statusCode"].as_str(), body["code"].as_str()), (Some("404"), Some("TenantNotFound")));

    // Not even a valid ref, and no project named at all.
    let (s, _, body) = call(&app, "/p/NOT_A_REF!/rest/v1/secrets", &[]).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("PGRST125")));
    let (s, _, body) = call(&app, "/rest/v1/secrets", &[]).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("PGRST125")));
}

#[tokio::test]
async fn bad_credentials_get_stable_codes_never_500() {
    let a = seeded("x").await;
    let project = a.project("solo");
    let map = ProjectMap::new();
    map.insert(project.clone());
    let app = app(RefResolver::new(map).by_path_prefix());
    let anon = project.keys().anon_key().to_owned();
    let big = format!("Bearer {}", "x".repeat(20_000));
    type Case<'a> = (Vec<(&'a str, &'a str)>, StatusCode, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec![], StatusCode::UNAUTHORIZED, "PGRST302"),
        (vec![("apikey", &anon), ("authorization", "Token abc")], StatusCode::UNAUTHORIZED, "PGRST301"),
        (vec![("apikey", &anon), ("authorization", "Bearer not.a.jwt")], StatusCode::UNAUTHORIZED, "PGRST301"),
        (vec![("apikey", &anon), ("authorization", &big)], StatusCode::from_u16(431).expect("status"), "PGRST301"),
        (vec![("apikey", "sb_publishable_wrong")], StatusCode::UNAUTHORIZED, "PGRST301"),
        (
            vec![("apikey", &anon), ("authorization", "Bearer eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.")],
            StatusCode::UNAUTHORIZED,
            "PGRST301",
        ),
    ];
    for (headers, status, code) in cases {
        let (s, h, body) = call(&app, "/p/solo/rest/v1/secrets", &headers).await;
        assert_eq!((s, body["code"].as_str()), (status, Some(code)), "{headers:?} -> {body}");
        if s == StatusCode::UNAUTHORIZED {
            assert!(h.contains_key("www-authenticate"));
        }
    }
    // The same failure in GoTrue's shape on an auth path.
    let (s, _, body) = call(&app, "/p/solo/auth/v1/user", &[("apikey", &anon), ("authorization", "Bearer junk")]).await;
    assert_eq!((s, body["code"].as_str(), body["msg"].is_string()), (StatusCode::UNAUTHORIZED, Some("bad_jwt"), true));
}

#[tokio::test]
async fn a_missing_database_is_a_clean_503_not_a_500() {
    let t = test_db().await;
    let url = t.url().replace(t.name(), "no_such_database");
    let db = Database::connect_lazy(&DatabaseConfig::new(url)).expect("config");
    let reference = ProjectRef::new("ghost").expect("ref");
    let keys = ProjectKeys::builder(reference.clone(), forge_core::testing::TEST_JWT_SECRET.as_bytes().to_vec())
        .build()
        .expect("keys");
    let project = Project::new(reference, db, keys.clone(), ProjectSettings::new("http://localhost"));
    let app = Router::new().route("/rest/v1/secrets", get(secrets)).layer(ProjectLayer::single(project));
    let (s, h, body) = call(&app, "/rest/v1/secrets", &[("apikey", keys.anon_key())]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "PGRST000");
    assert_eq!(body["message"], "Database connection error.");
    assert!(!body.to_string().contains("no_such_database"), "no internals leak: {body}");
    assert_eq!(h["proxy-status"], "PostgREST; error=PGRST000");
}
