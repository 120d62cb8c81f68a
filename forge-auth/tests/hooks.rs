//! The custom access token hook: a Postgres function, called as `supabase_auth_admin`, that
//! may change the claims of every access token (sign-in and refresh).

mod common;

use common::AssertError as _;

use common::{Api, api_with};
use forge_auth::{AuthConfig, Hooks};
use serde_json::json;

const HOOK: &str = "
create table public.user_roles (user_id uuid primary key, role text not null);
create function public.custom_access_token_hook(event jsonb) returns jsonb language plpgsql as $$
declare
  claims jsonb := event -> 'claims';
  email text := claims ->> 'email';
begin
  if email like 'blocked%' then
    return jsonb_build_object('error', jsonb_build_object('http_code', 403, 'message', 'Blocked by policy'));
  end if;
  if email like 'broken%' then
    return jsonb_build_object('claims', claims - 'session_id');
  end if;
  if email like 'slow%' then
    perform pg_sleep(5);
  end if;
  if email like 'superuser%' then
    return jsonb_build_object('claims', claims || jsonb_build_object('role', 'postgres'));
  end if;
  if email like 'snoop%' then
    perform count(*) from auth.refresh_tokens;
  end if;
  claims := claims || jsonb_build_object(
    'user_role', (select role from public.user_roles where user_id = (event ->> 'user_id')::uuid),
    'signed_in_by', event ->> 'authentication_method');
  return jsonb_build_object('claims', claims);
end
$$;
grant usage on schema public to supabase_auth_admin;
grant execute on function public.custom_access_token_hook to supabase_auth_admin;
grant select on public.user_roles to supabase_auth_admin;
revoke execute on function public.custom_access_token_hook from authenticated, anon, public;
";

async fn with_hook() -> Api {
    let hooks = Hooks::default().with_custom_access_token("pg-functions://postgres/public/custom_access_token_hook");
    let t = api_with(AuthConfig::default().with_hooks(hooks)).await;
    sqlx::raw_sql(HOOK).execute(t.db.pool()).await.expect("hook");
    t
}

fn claims(r: &common::Reply) -> serde_json::Value {
    Api::claims(r.json()["access_token"].as_str().expect("access token"))
}

#[tokio::test]
async fn the_hook_adds_claims_to_every_access_token() {
    let t = with_hook().await;
    let s = t.sign_up("ada@example.com", "correct horse 1").await;
    let c = Api::claims(s["access_token"].as_str().expect("token"));
    assert_eq!(c["user_role"], serde_json::Value::Null);
    assert_eq!(c["signed_in_by"], "password");
    assert_eq!(c["sub"], s["user"]["id"]);

    let id: uuid::Uuid = s["user"]["id"].as_str().expect("id").parse().expect("uuid");
    sqlx::query("insert into public.user_roles values ($1, 'editor')")
        .bind(id)
        .execute(t.db.pool())
        .await
        .expect("role");
    let r = t.refresh(s["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(claims(&r)["user_role"], "editor");
    let r = t.login("ada@example.com", "correct horse 1").await;
    assert_eq!(claims(&r)["user_role"], "editor");
    // The token the hook shaped is still the project's: /user accepts it.
    let at = r.json()["access_token"].as_str().expect("at").to_owned();
    assert_eq!(t.send("GET", "/auth/v1/user", Some(&at), "").await.status, 200);
}

#[tokio::test]
async fn hook_refusals_and_bad_answers_fail_the_sign_in() {
    let t = with_hook().await;
    let r = t.post("/auth/v1/signup", json!({ "email": "blocked@example.com", "password": "correct horse 1" })).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["msg"], "Blocked by policy");
    let users: i64 = sqlx::query_scalar("select count(*) from auth.users").fetch_one(t.db.pool()).await.expect("n");
    assert_eq!(users, 0, "the refused sign-up was undone");

    // Dropping a claim every token needs is the hook's bug: a generic 500.
    let r = t.post("/auth/v1/signup", json!({ "email": "broken@example.com", "password": "correct horse 1" })).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!r.body.contains("session_id"), "no internals leak: {}", r.body);

    // A role requests may not switch to (here a superuser) is refused before any token is signed.
    let r = t.post("/auth/v1/signup", json!({ "email": "superuser@example.com", "password": "correct horse 1" })).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!r.body.contains("postgres") && !r.body.contains("access_token"), "{}", r.body);

    // The hook runs as supabase_auth_admin, which may not read refresh tokens.
    let r = t.post("/auth/v1/signup", json!({ "email": "snoop@example.com", "password": "correct horse 1" })).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!r.body.contains("refresh_tokens") && !r.body.contains("permission"), "{}", r.body);

    let r = t.post("/auth/v1/signup", json!({ "email": "slow@example.com", "password": "correct horse 1" })).await;
    r.assert_error(422, "hook_timeout");

    // A missing function is refused, not skipped.
    sqlx::raw_sql("drop function public.custom_access_token_hook").execute(t.db.pool()).await.expect("drop");
    t.login("blocked@example.com", "correct horse 1").await.assert_error(400, "invalid_credentials");
    let r = t.post("/auth/v1/signup", json!({ "email": "eve@example.com", "password": "correct horse 1" })).await;
    assert_eq!(r.status, 500, "{}", r.body);

    let bad = AuthConfig::default()
        .with_hooks(Hooks::default().with_custom_access_token("pg-functions://postgres/public/x;drop"));
    assert!(bad.validate().is_err());
}
