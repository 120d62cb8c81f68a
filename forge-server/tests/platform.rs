//! The platform's control plane, through the real binary: the setup link, personal access
//! tokens from the command line, the Management API's project lifecycle, and the isolation
//! between organizations and roles.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Response, Server, command};
use serde_json::{Value, json};

/// `forge-server tokens create --email <email>` beside the running server: one line, the token.
fn pat(dir: &Path, email: &str) -> String {
    let out = command(dir).args(["tokens", "create", "--email", email]).output().expect("run the CLI");
    assert!(out.status.success(), "tokens create failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the token is the only line of output: {stdout:?}");
    assert!(lines[0].starts_with("sbp_") && lines[0].len() == 44, "{}", lines[0]);
    lines[0].to_owned()
}

fn cli_json(dir: &Path, args: &[&str]) -> Value {
    let out = command(dir).args(args).output().expect("run the CLI");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn api(server: &Server, method: &str, path: &str, token: &str, body: Option<Value>) -> Response {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![("authorization", auth.as_str())];
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    server.request(method, path, &headers, body.as_bytes())
}

fn create_project(server: &Server, token: &str, org: &str, name: &str) -> String {
    let res = api(server, "POST", "/v1/projects", token, Some(json!({ "name": name, "organization_id": org })));
    assert_eq!(res.status, 201, "{}", res.body);
    let body = res.json();
    assert_eq!(body["status"], "ACTIVE_HEALTHY");
    body["ref"].as_str().expect("ref").to_owned()
}

/// The project's keys by kind, revealed.
fn keys(server: &Server, token: &str, reference: &str) -> Vec<Value> {
    let res = api(server, "GET", &format!("/v1/projects/{reference}/api-keys?reveal=true"), token, None);
    assert_eq!(res.status, 200, "{}", res.body);
    res.json().as_array().expect("keys").clone()
}

fn key_of(keys: &[Value], kind: &str) -> (String, String) {
    let k = keys.iter().find(|k| k["kind"] == kind).unwrap_or_else(|| panic!("no {kind} key"));
    (k["id"].as_str().expect("id").to_owned(), k["api_key"].as_str().expect("value").to_owned())
}

fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new(psql_bin()).args([url, "-XAtqc", sql]).output().expect("psql");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

fn psql_bin() -> String {
    for dir in ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"] {
        let p = format!("{dir}/psql");
        if Path::new(&p).exists() {
            return p;
        }
    }
    "psql".into()
}

#[test]
fn the_setup_link_makes_the_first_owner_once_and_platform_users_sign_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let line = server.printed("/platform/setup?token=").expect("the banner prints the setup link");
    let token = line.split("token=").nth(1).expect("token").trim().to_owned();
    let config = server.get("/platform/config").json();
    let platform_anon = config["anon_key"].as_str().expect("anon key").to_owned();
    assert!(config["url"].as_str().expect("url").ends_with("/p/platform"));

    // Before the owner exists, nothing makes a platform user, and the Management API is shut.
    let signup = server.request(
        "POST",
        "/p/platform/auth/v1/signup",
        &[("apikey", &platform_anon), ("content-type", "application/json")],
        br#"{"email":"eve@example.com","password":"long enough password"}"#,
    );
    assert_eq!(signup.status, 403, "{}", signup.body);
    assert_eq!(server.get("/v1/organizations").status, 401);
    // The platform project serves auth only.
    let rest = server.request("GET", "/p/platform/rest/v1/", &[("apikey", &platform_anon)], b"");
    assert_eq!(rest.status, 404);
    assert_eq!(server.get("/platform/setup").header("content-type"), Some("text/html; charset=utf-8"));

    let setup = |token: &str, email: &str| {
        let body = json!({ "token": token, "email": email, "password": "correct horse battery" }).to_string();
        server.request("POST", "/v1/setup", &[("content-type", "application/json")], body.as_bytes())
    };
    let wrong = setup("not-the-token", "owner@example.com");
    assert_eq!((wrong.status, wrong.json()["code"].as_str()), (401, Some("unauthorized")));
    let done = setup(&token, "Owner@Example.com");
    assert_eq!(done.status, 201, "{}", done.body);
    let again = setup(&token, "second@example.com");
    assert_eq!((again.status, again.json()["code"].as_str()), (409, Some("setup_done")));

    // The owner signs in to the platform project; the session authorizes the Management API.
    let signin = server.request(
        "POST",
        "/p/platform/auth/v1/token?grant_type=password",
        &[("apikey", &platform_anon), ("content-type", "application/json")],
        br#"{"email":"owner@example.com","password":"correct horse battery"}"#,
    );
    assert_eq!(signin.status, 200, "{}", signin.body);
    let session = signin.json()["access_token"].as_str().expect("access token").to_owned();
    let orgs = api(&server, "GET", "/v1/organizations", &session, None);
    assert_eq!(orgs.status, 200);
    assert_eq!(orgs.json()[0]["id"], "default");
    let projects = api(&server, "GET", "/v1/projects", &session, None).json();
    assert_eq!(projects[0]["ref"], "default", "the default project is the platform's too");
    // A session of another project (the default one's service key) is not a platform session.
    let other = api(&server, "GET", "/v1/organizations", &server.anon_key, None);
    assert_eq!(other.status, 401);

    // After setup, sign-up is open; a new user belongs to no organization and sees nothing.
    let signup = server.request(
        "POST",
        "/p/platform/auth/v1/signup",
        &[("apikey", &platform_anon), ("content-type", "application/json")],
        br#"{"email":"new@example.com","password":"long enough password"}"#,
    );
    assert_eq!(signup.status, 200, "{}", signup.body);
    let newcomer = pat(dir.path(), "new@example.com");
    assert_eq!(api(&server, "GET", "/v1/projects", &newcomer, None).json(), json!([]));
    assert_eq!(api(&server, "GET", "/v1/projects/default", &newcomer, None).status, 404);
}

#[test]
fn a_project_lives_from_creation_to_deletion_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let admin = common::embedded_url(&dir.path().join("data"));
    let owner = pat(dir.path(), "owner@example.com");

    let started = Instant::now();
    let reference = create_project(&server, &owner, "default", "Todo app");
    eprintln!("created {reference} in {:?}", started.elapsed());
    assert!(reference.len() == 20 && reference.bytes().all(|b| b.is_ascii_lowercase()), "{reference}");
    let got = api(&server, "GET", &format!("/v1/projects/{reference}"), &owner, None).json();
    assert_eq!(got["url"], format!("{}/p/{reference}", server.url));

    let keys = keys(&server, &owner, &reference);
    assert_eq!(keys.len(), 4, "{keys:?}");
    // Bad parameters are answered in the API's own shape.
    let bad = api(&server, "GET", &format!("/v1/projects/{reference}/api-keys?reveal=maybe"), &owner, None);
    assert_eq!((bad.status, bad.json()["code"].as_str()), (400, Some("invalid_request")));
    let bad = api(&server, "DELETE", "/v1/organizations/default/members/not-a-uuid", &owner, None);
    assert_eq!((bad.status, bad.json()["code"].as_str()), (404, Some("not_found")));
    let bad = server.request(
        "POST",
        "/v1/projects",
        &[("authorization", &format!("Bearer {owner}")), ("content-type", "application/json")],
        b"{not json",
    );
    assert_eq!((bad.status, bad.json()["code"].as_str()), (400, Some("invalid_request")));
    let (_, anon) = key_of(&keys, "legacy_anon");
    let (_, service) = key_of(&keys, "legacy_service_role");
    let (publishable_id, publishable) = key_of(&keys, "publishable");

    // Tables through database/query; rows through REST under RLS.
    let sql = "create table todos (id bigint generated always as identity primary key, title text not null); \
               alter table todos enable row level security; \
               create policy anyone on todos for all to anon using (true) with check (true); \
               grant select, insert on todos to anon; \
               select count(*) as n from todos";
    let res = api(
        &server,
        "POST",
        &format!("/v1/projects/{reference}/database/query"),
        &owner,
        Some(json!({ "query": sql })),
    );
    assert_eq!((res.status, res.json()), (200, json!([{ "n": 0 }])), "{}", res.body);
    let bad = api(
        &server,
        "POST",
        &format!("/v1/projects/{reference}/database/query"),
        &owner,
        Some(json!({ "query": "select nope" })),
    );
    assert_eq!((bad.status, bad.json()["code"].as_str()), (400, Some("query_failed")));
    // The SQL runs as the project's own owner role, not as the cluster's superuser: it can
    // manage its tables, storage policies and publication, and nothing beyond its database.
    let query = |sql: &str| {
        api(&server, "POST", &format!("/v1/projects/{reference}/database/query"), &owner, Some(json!({ "query": sql })))
    };
    let who = query(
        "reset role; select session_user as login, current_user as me, \
         (select bool_or(rolsuper) from pg_roles where rolname in (session_user, current_user)) as su",
    );
    assert_eq!(
        who.json(),
        json!([{ "login": format!("forge_{reference}"), "me": "forge_owners", "su": false }]),
        "{}",
        who.body
    );
    for escape in [
        "copy (select 1) to program 'id'",
        "select pg_read_file('/etc/passwd')",
        "set role postgres",
        "alter system set log_statement = 'all'",
        "create role intruder superuser",
        "select * from forge.migrations",
    ] {
        let res = query(escape);
        assert_eq!((res.status, res.json()["code"].as_str()), (400, Some("query_failed")), "{escape}: {}", res.body);
    }
    let owned = query(
        "create policy own_files on storage.objects for select to authenticated using (owner = auth.uid()); \
         create function public.tag() returns trigger language plpgsql as $$ begin return new; end $$; \
         create trigger tag after insert on auth.users for each row execute function public.tag(); \
         select count(*) as n from auth.users",
    );
    assert_eq!((owned.status, owned.json()), (200, json!([{ "n": 0 }])), "{}", owned.body);

    let rest = format!("/p/{reference}/rest/v1/todos");
    let insert = server.request(
        "POST",
        &rest,
        &[("apikey", &publishable), ("content-type", "application/json"), ("prefer", "return=representation")],
        br#"{"title":"ship it"}"#,
    );
    assert_eq!(insert.status, 201, "{}", insert.body);
    let read = server.request("GET", &format!("{rest}?select=title"), &[("apikey", &anon)], b"");
    assert_eq!(read.json(), json!([{ "title": "ship it" }]));
    // As in a Supabase project, tables made in SQL are granted to the API roles by default.
    let made = query("create table auto (id int primary key); insert into auto values (1)");
    assert_eq!(made.status, 200, "{}", made.body);
    // (The schema cache reloads on the DDL's notification, as PostgREST's does.)
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let auto = server.request("GET", &format!("/p/{reference}/rest/v1/auto"), &[("apikey", &anon)], b"");
        if auto.status == 200 {
            assert_eq!(auto.json(), json!([{ "id": 1 }]));
            break;
        }
        assert!(Instant::now() < deadline, "the new table never became visible: {}", auto.body);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The default project does not have the table: the projects are apart.
    let default = server.request("GET", "/rest/v1/todos", &[("apikey", &server.anon_key)], b"");
    assert_eq!(default.status, 404, "{}", default.body);
    // Another project's key does not open this one.
    let foreign = server.request("GET", &rest, &[("apikey", &server.anon_key)], b"");
    assert_eq!(foreign.status, 401);

    // Files go under the project's prefix.
    let bucket = server.request(
        "POST",
        &format!("/p/{reference}/storage/v1/bucket"),
        &[("apikey", &service), ("authorization", &format!("Bearer {service}")), ("content-type", "application/json")],
        br#"{"name":"docs","public":false}"#,
    );
    assert_eq!(bucket.status, 200, "{}", bucket.body);
    let upload = server.request(
        "POST",
        &format!("/p/{reference}/storage/v1/object/docs/a.txt"),
        &[("apikey", &service), ("authorization", &format!("Bearer {service}")), ("content-type", "text/plain")],
        b"hello",
    );
    assert_eq!(upload.status, 200, "{}", upload.body);
    let files = dir.path().join("data/storage").join(&reference);
    assert!(files.is_dir(), "the project's files are under its prefix");

    // Pause: 503 with a clear code, on every service; restore: served again.
    let paused = api(&server, "POST", &format!("/v1/projects/{reference}/pause"), &owner, None);
    assert_eq!((paused.status, paused.json()["status"].as_str()), (200, Some("INACTIVE")));
    let res = server.request("GET", &rest, &[("apikey", &anon)], b"");
    assert_eq!(res.status, 503);
    assert_eq!(res.json()["message"], "Project is paused; restore it to serve requests");
    let res = server.request("GET", &format!("/p/{reference}/auth/v1/settings"), &[("apikey", &anon)], b"");
    assert_eq!(res.status, 503);
    let restored = api(&server, "POST", &format!("/v1/projects/{reference}/restore"), &owner, None);
    assert_eq!(restored.json()["status"], "ACTIVE_HEALTHY");
    assert_eq!(server.request("GET", &rest, &[("apikey", &anon)], b"").status, 200);

    // A new key works at once; a revoked one stops within the poll interval (1 s).
    let made = api(
        &server,
        "POST",
        &format!("/v1/projects/{reference}/api-keys"),
        &owner,
        Some(json!({ "type": "publishable", "name": "mobile" })),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let mobile = made.json()["api_key"].as_str().expect("new key").to_owned();
    assert_eq!(server.request("GET", &rest, &[("apikey", &mobile)], b"").status, 200);
    let revoked = api(&server, "DELETE", &format!("/v1/projects/{reference}/api-keys/{publishable_id}"), &owner, None);
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.request("GET", &rest, &[("apikey", &publishable)], b"").status != 401 {
        assert!(Instant::now() < deadline, "the revoked key still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.request("GET", &rest, &[("apikey", &mobile)], b"").status, 200, "other keys keep working");

    // Delete: the database, its slots, its files, its keys and its record are all gone.
    let platform_db = format!("{}/forge_platform", admin.strip_suffix("/postgres").expect("the postgres database"));
    let database = psql(&platform_db, &format!("select database from forge.projects where ref = '{reference}'"));
    let deleted = api(&server, "DELETE", &format!("/v1/projects/{reference}"), &owner, None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(server.request("GET", &rest, &[("apikey", &anon)], b"").status, 404);
    assert_eq!(api(&server, "GET", &format!("/v1/projects/{reference}"), &owner, None).status, 404);
    let left = psql(
        &platform_db,
        &format!(
            "select (select count(*) from pg_database where datname like '%{reference}%') \
              + (select count(*) from pg_replication_slots where database like '%{reference}%') \
              + (select count(*) from forge.projects where ref = '{reference}') \
              + (select count(*) from forge.api_keys where ref = '{reference}') \
              + (select count(*) from forge.signing_keys where ref = '{reference}') \
              + (select count(*) from forge.project_secrets where ref = '{reference}') \
              + (select count(*) from pg_roles where rolname like '%{reference}%')"
        ),
    );
    assert!(!database.is_empty());
    assert_eq!(left, "0", "nothing of the project is left in Postgres");
    let leftover_files: Vec<_> = walk(&files);
    assert!(leftover_files.is_empty(), "no files left: {leftover_files:?}");
    let audit = api(&server, "GET", "/v1/organizations/default/audit", &owner, None).json();
    let actions: Vec<&str> = audit.as_array().expect("log").iter().filter_map(|e| e["action"].as_str()).collect();
    for action in
        ["project.create", "project.pause", "project.restore", "api_key.create", "api_key.revoke", "project.delete"]
    {
        assert!(actions.contains(&action), "{action} is in the audit log: {actions:?}");
    }
    let rewrite = psql(&platform_db, "select count(*) from forge.audit_log");
    assert!(rewrite.parse::<i64>().expect("count") >= 6);
    let out = std::process::Command::new(psql_bin())
        .args([platform_db.as_str(), "-XAtqc", "delete from forge.audit_log"])
        .output()
        .expect("psql");
    assert!(!out.status.success(), "the audit log is append-only");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every Management API route a caller could aim at a project or organization.
fn management_routes(
    org: &str,
    project: &str,
    key_id: &str,
    member: &str,
) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", format!("/v1/organizations/{org}"), None),
        ("GET", format!("/v1/organizations/{org}/members"), None),
        ("PATCH", format!("/v1/organizations/{org}/members/{member}"), Some(json!({ "role_name": "Developer" }))),
        ("DELETE", format!("/v1/organizations/{org}/members/{member}"), None),
        ("POST", format!("/v1/organizations/{org}/members/invitations"), Some(json!({ "email": "x@example.com" }))),
        ("GET", format!("/v1/organizations/{org}/audit"), None),
        ("POST", "/v1/projects".into(), Some(json!({ "name": "intruder", "organization_id": org }))),
        ("GET", format!("/v1/projects/{project}"), None),
        ("POST", format!("/v1/projects/{project}/pause"), None),
        ("POST", format!("/v1/projects/{project}/restore"), None),
        ("POST", format!("/v1/projects/{project}/transfer"), Some(json!({ "target_organization_slug": "default" }))),
        ("GET", format!("/v1/projects/{project}/api-keys?reveal=true"), None),
        ("POST", format!("/v1/projects/{project}/api-keys"), Some(json!({ "type": "secret", "name": "x" }))),
        ("GET", format!("/v1/projects/{project}/api-keys/{key_id}?reveal=true"), None),
        ("DELETE", format!("/v1/projects/{project}/api-keys/{key_id}"), None),
        ("POST", format!("/v1/projects/{project}/database/query"), Some(json!({ "query": "select 1" }))),
        ("DELETE", format!("/v1/projects/{project}"), None),
    ]
}

#[test]
fn organizations_are_isolated_and_roles_are_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let owner = pat(dir.path(), "owner@example.com");

    // Organization A is the default one; its members are invited with each role.
    let mut members = vec![("Owner", owner.clone())];
    for (role, email) in
        [("Administrator", "admin@example.com"), ("Developer", "dev@example.com"), ("Read only", "reader@example.com")]
    {
        let token = pat(dir.path(), email);
        let invited = api(
            &server,
            "POST",
            "/v1/organizations/default/members/invitations",
            &owner,
            Some(json!({ "email": email, "role_name": role })),
        );
        assert_eq!(invited.status, 201, "{}", invited.body);
        let invitation = invited.json()["token"].as_str().expect("token").to_owned();
        // Only the invited address may take it.
        let stolen = api(&server, "POST", "/v1/invitations/accept", &owner, Some(json!({ "token": invitation })));
        assert_eq!(stolen.status, 404);
        let joined = api(&server, "POST", "/v1/invitations/accept", &token, Some(json!({ "token": invitation })));
        assert_eq!((joined.status, joined.json()["role_name"].as_str()), (200, Some(role)), "{}", joined.body);
        members.push((role, token));
    }
    let project_a = create_project(&server, &owner, "default", "A's app");
    let keys_a = keys(&server, &owner, &project_a);

    // Organization B belongs to someone else.
    let b_owner = pat(dir.path(), "b@example.com");
    let org_b = api(&server, "POST", "/v1/organizations", &b_owner, Some(json!({ "name": "B Corp" })));
    assert_eq!(org_b.status, 201, "{}", org_b.body);
    let org_b = org_b.json()["id"].as_str().expect("slug").to_owned();
    let project_b = create_project(&server, &b_owner, &org_b, "B's app");
    let keys_b = keys(&server, &b_owner, &project_b);
    let (b_key_id, _) = key_of(&keys_b, "secret");
    let b_owner_id =
        api(&server, "GET", &format!("/v1/organizations/{org_b}/members"), &b_owner, None).json()[0]["user_id"]
            .as_str()
            .expect("user id")
            .to_owned();
    let outsider = pat(dir.path(), "outsider@example.com");

    // Every role of A, and an outsider, is refused on everything of B, as if it did not exist.
    let mut callers = members.clone();
    callers.push(("outsider", outsider.clone()));
    let mut table = Vec::new();
    for (role, token) in &callers {
        for (method, path, body) in management_routes(&org_b, &project_b, &b_key_id, &b_owner_id) {
            let res = api(&server, method, &path, token, body);
            table.push(format!("{role:>13} {method:6} {path} -> {}", res.status));
            assert_eq!(res.status, 404, "{role} {method} {path}: {}", res.body);
        }
        let listed = api(&server, "GET", "/v1/projects", token, None).json();
        assert!(!listed.to_string().contains(&project_b), "{role} lists B's project");
        let orgs = api(&server, "GET", "/v1/organizations", token, None).json();
        assert!(!orgs.to_string().contains(&org_b), "{role} lists B");
    }
    eprintln!("{}", table.join("\n"));
    assert!(api(&server, "GET", &format!("/v1/projects/{project_b}"), &b_owner, None).status == 200, "B sees its own");

    // A's keys open nothing of B's, on any service.
    for kind in ["legacy_anon", "legacy_service_role", "publishable", "secret"] {
        let (_, key) = key_of(&keys_a, kind);
        let bearer = format!("Bearer {key}");
        for (method, path) in [
            ("GET", format!("/p/{project_b}/rest/v1/")),
            ("GET", format!("/p/{project_b}/storage/v1/bucket")),
            ("GET", format!("/p/{project_b}/auth/v1/admin/users")),
            ("POST", format!("/p/{project_b}/realtime/v1/api/broadcast")),
        ] {
            let res = server.request(method, &path, &[("apikey", &key), ("authorization", &bearer)], b"{}");
            assert!(matches!(res.status, 400..=403), "{kind} on {method} {path}: {} {}", res.status, res.body);
        }
    }

    // Within A, what each role may do.
    let by_role = |role: &str| members.iter().find(|(r, _)| *r == role).expect("member").1.clone();
    let (reader, developer, admin) = (by_role("Read only"), by_role("Developer"), by_role("Administrator"));
    let p = format!("/v1/projects/{project_a}");
    assert_eq!(api(&server, "GET", &p, &reader, None).status, 200, "read-only members read");
    let reader_keys = api(&server, "GET", &format!("{p}/api-keys?reveal=true"), &reader, None).json();
    for k in reader_keys.as_array().expect("keys") {
        let service = k["role"] == "service_role";
        assert_eq!(k["api_key"].is_null(), service, "read-only members see only public keys: {k}");
    }
    let writes = [
        ("POST", format!("{p}/pause"), None),
        ("POST", format!("{p}/api-keys"), Some(json!({ "type": "publishable", "name": "x" }))),
        ("POST", format!("{p}/database/query"), Some(json!({ "query": "create table t (id int)" }))),
        ("DELETE", p.clone(), None),
        ("POST", "/v1/organizations/default/members/invitations".into(), Some(json!({ "email": "y@example.com" }))),
        ("POST", "/v1/projects".into(), Some(json!({ "name": "x", "organization_id": "default" }))),
    ];
    for (method, path, body) in writes {
        let res = api(&server, method, &path, &reader, body);
        assert_eq!((res.status, res.json()["code"].as_str()), (403, Some("forbidden")), "read-only {method} {path}");
    }
    // Developers work with data and public keys, not with the project's life or secrets.
    let q =
        api(&server, "POST", &format!("{p}/database/query"), &developer, Some(json!({ "query": "select 2 as two" })));
    assert_eq!(q.json(), json!([{ "two": 2 }]));
    let made = api(
        &server,
        "POST",
        &format!("{p}/api-keys"),
        &developer,
        Some(json!({ "type": "publishable", "name": "web" })),
    );
    assert_eq!(made.status, 201);
    for (method, path, body) in [
        ("POST", format!("{p}/pause"), None),
        ("DELETE", p.clone(), None),
        ("POST", format!("{p}/api-keys"), Some(json!({ "type": "secret", "name": "x" }))),
    ] {
        assert_eq!(api(&server, method, &path, &developer, body).status, 403, "developer {method} {path}");
    }
    let dev_keys = api(&server, "GET", &format!("{p}/api-keys?reveal=true"), &developer, None).json();
    assert!(dev_keys.as_array().expect("keys").iter().all(|k| k["role"] != "service_role" || k["api_key"].is_null()));
    let admin_keys = api(&server, "GET", &format!("{p}/api-keys?reveal=true"), &admin, None).json();
    assert!(admin_keys.as_array().expect("keys").iter().all(|k| k["api_key"].is_string()), "administrators reveal");
    // An administrator may not touch the owner.
    let owner_id = api(&server, "GET", "/v1/organizations/default/members", &owner, None).json()[0]["user_id"]
        .as_str()
        .expect("owner id")
        .to_owned();
    let demote = api(
        &server,
        "PATCH",
        &format!("/v1/organizations/default/members/{owner_id}"),
        &admin,
        Some(json!({ "role_name": "Developer" })),
    );
    assert_eq!(demote.status, 403);

    // A removed member loses access at once.
    let members_list = api(&server, "GET", "/v1/organizations/default/members", &owner, None).json();
    let dev_id = members_list
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["email"] == "dev@example.com")
        .and_then(|m| m["user_id"].as_str())
        .expect("developer id")
        .to_owned();
    let removed = api(&server, "DELETE", &format!("/v1/organizations/default/members/{dev_id}"), &admin, None);
    assert_eq!(removed.status, 204, "{}", removed.body);
    assert_eq!(api(&server, "GET", &p, &developer, None).status, 404);
    assert_eq!(
        api(&server, "POST", &format!("{p}/database/query"), &developer, Some(json!({ "query": "select 1" }))).status,
        404
    );
    // The last owner stays.
    let leave = api(&server, "DELETE", &format!("/v1/organizations/default/members/{owner_id}"), &owner, None);
    assert_eq!(leave.status, 409);
    // Tokens: a deleted personal access token stops working.
    let made = api(&server, "POST", "/v1/profile/access-tokens", &admin, Some(json!({ "name": "ci" })));
    assert_eq!(made.status, 201, "{}", made.body);
    let ci = made.json();
    let ci_token = ci["token"].as_str().expect("token").to_owned();
    assert_eq!(api(&server, "GET", "/v1/projects", &ci_token, None).status, 200);
    let listed = api(&server, "GET", "/v1/profile/access-tokens", &admin, None);
    assert!(!listed.body.contains(&ci_token), "listings never show a token");
    let gone =
        api(&server, "DELETE", &format!("/v1/profile/access-tokens/{}", ci["id"].as_str().expect("id")), &admin, None);
    assert_eq!(gone.status, 204);
    assert_eq!(api(&server, "GET", "/v1/projects", &ci_token, None).status, 401);
    // A token with an expiry stops working then.
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let made =
        api(&server, "POST", "/v1/profile/access-tokens", &admin, Some(json!({ "name": "brief", "expires_at": soon })));
    assert_eq!(made.status, 201, "{}", made.body);
    let brief = made.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(api(&server, "GET", "/v1/projects", &brief, None).status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(api(&server, "GET", "/v1/projects", &brief, None).status, 401, "an expired token");
    let past = api(
        &server,
        "POST",
        "/v1/profile/access-tokens",
        &admin,
        Some(json!({ "name": "old", "expires_at": "2020-01-01T00:00:00Z" })),
    );
    assert_eq!((past.status, past.json()["code"].as_str()), (400, Some("invalid_request")));
}

#[test]
fn the_command_line_drives_the_same_control_plane() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let created = cli_json(dir.path(), &["projects", "create", "--name", "From the shell"]);
    let reference = created["ref"].as_str().expect("ref").to_owned();
    let anon = created["anon_key"].as_str().expect("the new project's anon key").to_owned();
    let rest = format!("/p/{reference}/rest/v1/");
    assert_eq!(server.request("GET", &rest, &[("apikey", &anon)], b"").status, 200);
    let listed = cli_json(dir.path(), &["projects", "list"]);
    assert!(listed.as_array().expect("list").iter().any(|p| p["ref"] == reference.as_str()));
    let paused = cli_json(dir.path(), &["projects", "pause", &reference]);
    assert_eq!(paused["status"], "INACTIVE");
    // The running server notices within its poll interval.
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.request("GET", &rest, &[("apikey", &anon)], b"").status != 503 {
        assert!(Instant::now() < deadline, "the server still serves a paused project");
        std::thread::sleep(Duration::from_millis(100));
    }
    cli_json(dir.path(), &["projects", "restore", &reference]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.request("GET", &rest, &[("apikey", &anon)], b"").status != 200 {
        assert!(Instant::now() < deadline, "the server does not serve the restored project");
        std::thread::sleep(Duration::from_millis(100));
    }
    cli_json(dir.path(), &["projects", "delete", &reference]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.request("GET", &rest, &[("apikey", &anon)], b"").status != 404 {
        assert!(Instant::now() < deadline, "the server still serves a deleted project");
        std::thread::sleep(Duration::from_millis(100));
    }
    let missing = command(dir.path()).args(["projects", "delete", &reference]).output().expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

fn decode_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().expect("header");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64");
    serde_json::from_slice::<Value>(&raw).expect("json")["kid"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn transfer_host_routing_signing_key_rotation_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start(dir.path(), &[("FORGE_BASE_DOMAIN", "forge.test"), ("FORGE_METRICS_TOKEN", "scrape-me-please")]);
    let owner = pat(dir.path(), "owner@example.com");
    let reference = create_project(&server, &owner, "default", "moving");
    let keys = keys(&server, &owner, &reference);
    let (_, anon) = key_of(&keys, "legacy_anon");

    // Served by host name too.
    let host = format!("{reference}.forge.test");
    let res = server.request("GET", "/rest/v1/", &[("host", &host), ("apikey", &anon)], b"");
    assert_eq!(res.status, 200, "{}", res.body);
    let other = server.request("GET", "/rest/v1/", &[("host", "nosuchproject.forge.test"), ("apikey", &anon)], b"");
    assert_eq!(other.status, 404, "an unknown project under the base domain: {}", other.body);
    let elsewhere =
        server.request("GET", "/rest/v1/", &[("host", &format!("{reference}.elsewhere.test")), ("apikey", &anon)], b"");
    assert_eq!(elsewhere.status, 401, "another domain names no project: the default one answers, whose keys differ");

    // Transfer to another organization of the same owner.
    let org = api(&server, "POST", "/v1/organizations", &owner, Some(json!({ "name": "Second org" })));
    let org = org.json()["id"].as_str().expect("slug").to_owned();
    let moved = api(
        &server,
        "POST",
        &format!("/v1/projects/{reference}/transfer"),
        &owner,
        Some(json!({ "target_organization_slug": org })),
    );
    assert_eq!((moved.status, moved.json()["organization_id"].as_str()), (200, Some(org.as_str())), "{}", moved.body);
    let audit = api(&server, "GET", &format!("/v1/organizations/{org}/audit"), &owner, None).json();
    assert!(audit.to_string().contains("project.transfer"));
    assert_eq!(server.request("GET", &format!("/p/{reference}/rest/v1/"), &[("apikey", &anon)], b"").status, 200);

    // Signing keys: a session signed before a rotation still verifies until its key is deleted.
    let signup = server.request(
        "POST",
        &format!("/p/{reference}/auth/v1/signup"),
        &[("apikey", &anon), ("content-type", "application/json")],
        br#"{"email":"user@example.com","password":"long enough password"}"#,
    );
    assert_eq!(signup.status, 200, "{}", signup.body);
    let session = signup.json()["access_token"].as_str().expect("session").to_owned();
    let listed =
        api(&server, "GET", &format!("/v1/projects/{reference}/config/auth/signing-keys"), &owner, None).json();
    let statuses: Vec<&str> =
        listed["keys"].as_array().expect("keys").iter().filter_map(|k| k["status"].as_str()).collect();
    assert_eq!(statuses, ["current", "standby"]);
    let standby_kid = listed["keys"][1]["kid"].as_str().expect("kid").to_owned();
    assert_eq!(decode_kid(&session), listed["keys"][0]["kid"].as_str().expect("kid"));
    let rotated =
        api(&server, "POST", &format!("/v1/projects/{reference}/config/auth/signing-keys/rotate"), &owner, None);
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let rotated = rotated.json();
    let previous =
        rotated["keys"].as_array().expect("keys").iter().find(|k| k["status"] == "previous").expect("previous");
    let previous_id = previous["id"].as_str().expect("id").to_owned();
    assert_eq!(rotated["keys"][0]["kid"].as_str(), Some(standby_kid.as_str()), "the standby key signs now");
    let jwks = server.get(&format!("/p/{reference}/auth/v1/.well-known/jwks.json")).json();
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 3, "current, standby and previous are published");
    let user = |token: &str| {
        server.request(
            "GET",
            &format!("/p/{reference}/auth/v1/user"),
            &[("apikey", &anon), ("authorization", &format!("Bearer {token}"))],
            b"",
        )
    };
    assert_eq!(user(&session).status, 200, "an older session still verifies");
    let signin = server.request(
        "POST",
        &format!("/p/{reference}/auth/v1/token?grant_type=password"),
        &[("apikey", &anon), ("content-type", "application/json")],
        br#"{"email":"user@example.com","password":"long enough password"}"#,
    );
    assert_eq!(decode_kid(signin.json()["access_token"].as_str().expect("token")), standby_kid);
    let deleted = api(
        &server,
        "DELETE",
        &format!("/v1/projects/{reference}/config/auth/signing-keys/{previous_id}"),
        &owner,
        None,
    );
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let refused = user(&session);
    assert_eq!(
        (refused.status, refused.json()["error_code"].as_str()),
        (403, Some("bad_jwt")),
        "a session of a deleted key no longer verifies (GoTrue answers 403 bad_jwt)"
    );
    let current = rotated["keys"][0]["id"].as_str().expect("id");
    let refused =
        api(&server, "DELETE", &format!("/v1/projects/{reference}/config/auth/signing-keys/{current}"), &owner, None);
    assert_eq!(refused.status, 404, "only previous keys can be deleted");

    // Prometheus metrics behind the token.
    assert_eq!(server.get("/metrics").status, 401);
    let metrics = server.request("GET", "/metrics", &[("authorization", "Bearer scrape-me-please")], b"");
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains(&format!("project=\"{reference}\"")), "{}", metrics.body);
    assert!(metrics.body.contains("forge_http_request_duration_seconds_bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_serves_a_managed_project_and_a_pause_closes_its_sockets() {
    use forge_realtime::testing::Client;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("FORGE_REALTIME_POLL_INTERVAL", "0.02")]);
    let owner = pat(dir.path(), "owner@example.com");
    let reference = create_project(&server, &owner, "default", "live");
    let keys = keys(&server, &owner, &reference);
    let (_, anon) = key_of(&keys, "legacy_anon");
    let (_, service) = key_of(&keys, "legacy_service_role");
    let sql = "create table log (id int primary key, body text); \
               alter publication supabase_realtime add table log";
    let res = api(
        &server,
        "POST",
        &format!("/v1/projects/{reference}/database/query"),
        &owner,
        Some(json!({ "query": sql })),
    );
    assert_eq!(res.status, 200, "{}", res.body);

    let url = format!("ws://{}/p/{reference}/realtime/v1/websocket?apikey={anon}&vsn=1.0.0", server.addr);
    let mut client = Client::connect(&url).await.expect("connect");
    let binding = json!({ "event": "INSERT", "schema": "public", "table": "log" });
    let (_, reply) = client.join("realtime:log", json!({ "postgres_changes": [binding] }), Some(&service)).await;
    assert_eq!(reply.payload["status"], "ok", "{reply:?}");
    assert_eq!(client.expect("system").await.payload["message"], "Subscribed to PostgreSQL");
    let insert = json!({ "query": "insert into log values (1, 'hello')" });
    let res = api(&server, "POST", &format!("/v1/projects/{reference}/database/query"), &owner, Some(insert));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(client.change_ids(1, Duration::from_millis(300)).await, [1]);
    // Another project's key does not open this project's socket.
    let foreign =
        format!("ws://{}/p/{reference}/realtime/v1/websocket?apikey={}&vsn=1.0.0", server.addr, server.anon_key);
    assert!(Client::connect(&foreign).await.is_err(), "a foreign key is refused at the handshake");

    // Pausing closes the project's sockets; connecting again is refused while it is paused.
    let paused = api(&server, "POST", &format!("/v1/projects/{reference}/pause"), &owner, None);
    assert_eq!(paused.status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.next_within(Duration::from_millis(500)).await {
            None => break,
            Some(_) => assert!(Instant::now() < deadline, "the socket stays open after the pause"),
        }
    }
    assert!(Client::connect(&url).await.is_err(), "a paused project refuses sockets");
}

#[test]
fn a_project_closed_for_being_idle_reopens_with_a_live_schema_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("FORGE_PROJECT_IDLE_TIMEOUT", "1")]);
    let owner = pat(dir.path(), "owner@example.com");
    let reference = create_project(&server, &owner, "default", "sleepy");
    let keys = keys(&server, &owner, &reference);
    let (_, anon) = key_of(&keys, "legacy_anon");
    let root = format!("/p/{reference}/rest/v1/");
    assert_eq!(server.request("GET", &root, &[("apikey", &anon)], b"").status, 200);
    // Closed after a second unused (the idle sweep runs every second at this setting) ...
    std::thread::sleep(Duration::from_millis(2500));
    // ... and opened again by the next request, with a schema cache that hears new tables.
    assert_eq!(server.request("GET", &root, &[("apikey", &anon)], b"").status, 200);
    let made = api(
        &server,
        "POST",
        &format!("/v1/projects/{reference}/database/query"),
        &owner,
        Some(json!({ "query": "create table later (id int primary key)" })),
    );
    assert_eq!(made.status, 200, "{}", made.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.request("GET", &format!("/p/{reference}/rest/v1/later"), &[("apikey", &anon)], b"").status != 200 {
        assert!(Instant::now() < deadline, "the reopened project never saw the new table");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_smallest_pool_serves_rest_auth_and_storage_at_once() {
    // Two connections, one for the services and one for REST: REST's schema cache hears DDL on
    // the REST connection, so the services' own work is not left waiting behind a listener.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("FORGE_PROJECT_POOL_SIZE", "2")]);
    let owner = pat(dir.path(), "owner@example.com");
    let reference = create_project(&server, &owner, "default", "small");
    let keys = keys(&server, &owner, &reference);
    let (_, anon) = key_of(&keys, "legacy_anon");
    let (_, service) = key_of(&keys, "legacy_service_role");
    let service_headers = [("apikey", service.as_str()), ("authorization", &format!("Bearer {service}"))];
    let made = api(
        &server,
        "POST",
        &format!("/v1/projects/{reference}/database/query"),
        &owner,
        Some(json!({ "query": "create table notes (id int primary key); grant select on notes to anon" })),
    );
    assert_eq!(made.status, 200, "{}", made.body);
    // REST first: its schema cache starts listening for DDL.
    let rest = format!("/p/{reference}/rest/v1/notes");
    assert_eq!(server.request("GET", &rest, &[("apikey", &anon)], b"").status, 200);
    let started = Instant::now();
    for i in 0..3 {
        let user =
            json!({ "email": format!("u{i}@example.com"), "password": "a long password", "email_confirm": true });
        let res = server.request(
            "POST",
            &format!("/p/{reference}/auth/v1/admin/users"),
            &[service_headers[0], service_headers[1], ("content-type", "application/json")],
            user.to_string().as_bytes(),
        );
        assert_eq!(res.status, 200, "auth, user {i}: {}", res.body);
        let bucket = json!({ "name": format!("bucket-{i}") });
        let res = server.request(
            "POST",
            &format!("/p/{reference}/storage/v1/bucket"),
            &[service_headers[0], service_headers[1], ("content-type", "application/json")],
            bucket.to_string().as_bytes(),
        );
        assert_eq!(res.status, 200, "storage, bucket {i}: {}", res.body);
        assert_eq!(server.request("GET", &rest, &[("apikey", &anon)], b"").status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "the services waited for a connection");
    // A table made now is served: the REST connection heard the DDL.
    let made = api(
        &server,
        "POST",
        &format!("/v1/projects/{reference}/database/query"),
        &owner,
        Some(json!({ "query": "create table later (id int primary key); grant select on later to anon" })),
    );
    assert_eq!(made.status, 200, "{}", made.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.request("GET", &format!("/p/{reference}/rest/v1/later"), &[("apikey", &anon)], b"").status != 200 {
        assert!(Instant::now() < deadline, "the new table was never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One is refused at start-up, with the reason.
    let Err(err) = Server::try_start(tempfile::tempdir().expect("tempdir").path(), &[("FORGE_PROJECT_POOL_SIZE", "1")])
    else {
        panic!("a pool of 1 is refused");
    };
    assert!(err.contains("project_pool_size must be at least 2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_realtime_state_is_admitted_into_the_connection_budget() {
    use forge_realtime::testing::Client;
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[
            ("FORGE_PROJECT_POOL_SIZE", "2"),
            ("FORGE_PROJECT_CONNECTION_BUDGET", "4"),
            ("FORGE_REALTIME_POLL_INTERVAL", "0.02"),
        ],
    );
    let owner = pat(dir.path(), "owner@example.com");
    let (a, b) = (create_project(&server, &owner, "default", "a"), create_project(&server, &owner, "default", "b"));
    let (_, anon_a) = key_of(&keys(&server, &owner, &a), "legacy_anon");
    let (_, anon_b) = key_of(&keys(&server, &owner, &b), "legacy_anon");
    let mut admin = sqlx::PgConnection::connect(&common::embedded_url(&dir.path().join("data"))).await.expect("admin");
    let sql = "select count(*) filter (where datname = 'forge_platform_' || $1), \
                      count(*) filter (where datname = 'forge_platform_' || $2), count(*) \
               from pg_stat_activity where datname like 'forge\\_platform\\_%' \
               and datname <> 'forge_platform_template' and backend_type = 'client backend' \
               and application_name <> 'forge-control'";
    // Both open, with both pools' connections each: the whole budget of 4.
    for (reference, anon) in [(&a, &anon_a), (&b, &anon_b)] {
        assert_eq!(server.request("GET", &format!("/p/{reference}/rest/v1/"), &[("apikey", anon)], b"").status, 200);
    }
    let (in_a, in_b, all): (i64, i64, i64) =
        sqlx::query_as(sql).bind(&a).bind(&b).fetch_one(&mut admin).await.expect("count");
    assert_eq!((in_a, in_b, all), (2, 2, 4));
    // A second later both are idle. B's first socket starts its realtime state, whose change
    // capture holds a connection of its own: room is made first, by closing A, the least
    // recently used.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let url = format!("ws://{}/p/{b}/realtime/v1/websocket?apikey={anon_b}&vsn=1.0.0", server.addr);
    let _client = Client::connect(&url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (in_a, in_b, all): (i64, i64, i64) =
            sqlx::query_as(sql).bind(&a).bind(&b).fetch_one(&mut admin).await.expect("count");
        assert!(all <= 4, "{all} connections, over the budget of 4 ({in_a} to A, {in_b} to B)");
        if in_a == 0 && in_b == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "A was not closed for B's capture: {in_a} to A, {in_b} to B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
