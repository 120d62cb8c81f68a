//! A project exported to one archive and imported as a new project, through the real binary:
//! create, use (tables, a view, an RLS policy, rows, an auth user, stored objects), export,
//! delete (nothing left), import; every row, definition and object byte comes back. A damaged
//! archive is refused, and an import that fails half-way leaves no project behind.

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;

use common::{Response, Server, command};
use serde_json::{Value, json};

/// `forge-server tokens create --email <email>` beside the running server: one line, the token.
fn pat(dir: &Path, email: &str) -> String {
    let out = command(dir).args(["tokens", "create", "--email", email]).output().expect("run the CLI");
    assert!(out.status.success(), "tokens create failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

fn cli_json(dir: &Path, args: &[&str]) -> Value {
    let out = command(dir).args(args).output().expect("run the CLI");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Runs the CLI expecting it to fail; its error output.
fn cli_fails(dir: &Path, args: &[&str]) -> String {
    let out = command(dir).args(args).output().expect("run the CLI");
    assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
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

/// A project made or changed by the command line, once the running server has seen the
/// change: its poll (every second) closes the pools of a project changed since its last
/// look, and a request holding a handle from before then fails with "Pool has been closed".
fn project_cli(dir: &Path, args: &[&str]) -> Value {
    let made = cli_json(dir, args);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    made
}

/// SQL through the Management API's `database/query`: the rows.
fn query(server: &Server, token: &str, reference: &str, sql: &str) -> Value {
    let res =
        api(server, "POST", &format!("/v1/projects/{reference}/database/query"), token, Some(json!({ "query": sql })));
    assert_eq!(res.status, 200, "{sql}: {}", res.body);
    res.json()
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

/// A GET whose body is bytes. HTTP/1.0, so the body ends with the connection (no chunking).
fn download(server: &Server, path: &str, key: &str) -> (u16, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    let req =
        format!("GET {path} HTTP/1.0\r\nHost: {}\r\napikey: {key}\r\nAuthorization: Bearer {key}\r\n\r\n", server.addr);
    stream.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, raw[split + 4..].to_vec())
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The files under `dir`, recursively.
fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 })
        .sum()
}

/// What of `reference` is left: databases, records and keys; stored files.
fn leftovers(dir: &Path, reference: &str) -> (String, usize) {
    let admin = common::embedded_url(&dir.join("data"));
    let platform_db = format!("{}/forge_platform", admin.strip_suffix("/postgres").expect("the postgres database"));
    let rows = psql(
        &platform_db,
        &format!(
            "select (select count(*) from pg_database where datname like '%{reference}%') \
              + (select count(*) from forge.projects where ref = '{reference}') \
              + (select count(*) from forge.api_keys where ref = '{reference}')"
        ),
    );
    (rows, files_under(&dir.join("data/storage").join(reference)))
}

/// Every base table of the project's schemas with all its rows (ordered by their text), and
/// what defines the schema beyond its tables.
fn snapshot(server: &Server, token: &str, reference: &str) -> Value {
    let tables = query(
        server,
        token,
        reference,
        "select table_schema as s, table_name as t from information_schema.tables \
         where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') \
         order by 1, 2",
    );
    let mut rows = serde_json::Map::new();
    for t in tables.as_array().expect("tables") {
        let (s, t) = (t["s"].as_str().expect("schema"), t["t"].as_str().expect("table"));
        let got = query(
            server,
            token,
            reference,
            &format!("select coalesce(json_agg(r order by r::text), '[]') as rows from \"{s}\".\"{t}\" r"),
        );
        rows.insert(format!("{s}.{t}"), got[0]["rows"].clone());
    }
    let definitions = query(
        server,
        token,
        reference,
        "select json_build_object(\
           'policies', (select json_agg(p order by schemaname, tablename, policyname) from pg_policies p), \
           'views', (select json_agg(json_build_array(schemaname, viewname, definition) order by schemaname, viewname) \
                     from pg_views v where schemaname not in ('pg_catalog', 'information_schema')), \
           'functions', (select json_agg(pg_get_functiondef(f.oid) order by n.nspname, f.proname, f.oid::regprocedure::text) \
                         from pg_proc f join pg_namespace n on n.oid = f.pronamespace \
                         where f.prokind in ('f', 'p') and n.nspname in ('public', 'auth', 'storage', 'realtime', 'forge')), \
           'grants', (select json_agg(distinct json_build_array(o.grantee, table_schema, table_name, privilege_type, is_grantable)::text) \
                      from information_schema.role_table_grants, \
                      lateral (select case when grantee ~ '^forge_' then '<owner>' else grantee end as grantee) o \
                      where table_schema in ('public', 'auth', 'storage', 'realtime')), \
           'rls', (select json_agg(c.oid::regclass::text order by c.oid::regclass::text) from pg_class c \
                   where c.relrowsecurity and c.relnamespace::regnamespace::text in ('public', 'auth', 'storage', 'realtime')), \
           'publication', (select json_agg(t order by t::text) from pg_publication_tables t), \
           'sequences', (select json_agg(json_build_array(schemaname, sequencename, last_value) \
                                   order by schemaname, sequencename) from pg_sequences) \
         ) as d",
    );
    json!({ "rows": rows, "definitions": definitions[0]["d"] })
}

#[test]
fn a_project_comes_back_whole_from_its_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let owner = pat(dir.path(), "owner@example.com");
    let created = project_cli(dir.path(), &["projects", "create", "--name", "Archived app"]);
    let reference = created["ref"].as_str().expect("ref").to_owned();
    let anon = created["anon_key"].as_str().expect("anon key").to_owned();
    let service = created["service_role_key"].as_str().expect("service key").to_owned();
    let json_type = ("content-type", "application/json");

    // A user, whose id the rows below name.
    let password = "correct horse battery staple";
    let signup = server.request(
        "POST",
        &format!("/p/{reference}/auth/v1/signup"),
        &[("apikey", &anon), json_type],
        json!({ "email": "ada@example.com", "password": password }).to_string().as_bytes(),
    );
    assert_eq!(signup.status, 200, "{}", signup.body);
    let user_id = signup.json()["user"]["id"].as_str().expect("user id").to_owned();

    // Tables: an identity key, jsonb, arrays, a view, RLS calling a function, grants, a
    // policy on storage's own table, a table in the realtime publication.
    let sql = format!(
        "create function public.is_owner(o uuid) returns boolean language sql stable as $$ select o = auth.uid() $$; \
         create table notes (id bigint generated always as identity primary key, owner uuid, title text not null, \
             tags text[] not null default '{{}}', meta jsonb, scores int[], at timestamptz not null default '2024-05-01T12:00:00Z'); \
         alter table notes enable row level security; \
         create policy own_notes on notes for all to authenticated using (public.is_owner(owner)) with check (public.is_owner(owner)); \
         create view note_tags as select id, unnest(tags) as tag from notes; \
         grant select on note_tags to anon; \
         create table kinds (code text primary key, label text, weight numeric(6,2)); \
         insert into kinds values ('a', 'Alpha', 1.5), ('b', null, null), ('ü', 'Umlaut \"quoted\"', -2); \
         insert into notes (owner, title, tags, meta, scores) values \
             ('{user_id}', 'mine', '{{red,\"two words\"}}', '{{\"k\": [1, 2, {{\"z\": null}}], \"s\": \"é\"}}', '{{1,2,3}}'), \
             ('{user_id}', 'mine too', '{{}}', null, null), \
             (gen_random_uuid(), 'not mine', '{{blue}}', '[]', '{{}}'); \
         insert into notes (title, tags, meta) select 'bulk ' || i, array['t' || i % 7], jsonb_build_object('i', i) \
             from generate_series(1, 200) as i; \
         delete from notes where title = 'bulk 7'; \
         alter publication supabase_realtime add table notes; \
         create policy \"read docs\" on storage.objects for select to authenticated using (bucket_id = 'docs'); \
         select count(*) as n from notes"
    );
    assert_eq!(query(&server, &owner, &reference, &sql), json!([{ "n": 202 }]));

    // Stored objects, one over 5 MB.
    let service_auth = format!("Bearer {service}");
    let storage = |method: &str, path: &str, content_type: &str, body: &[u8]| {
        server.request(
            method,
            &format!("/p/{reference}/storage/v1/{path}"),
            &[("apikey", &service), ("authorization", &service_auth), ("content-type", content_type)],
            body,
        )
    };
    let bucket = storage("POST", "bucket", "application/json", br#"{"name":"docs","public":false}"#);
    assert_eq!(bucket.status, 200, "{}", bucket.body);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.txt", b"hello".to_vec()),
        ("nested/dir/b.json", br#"{"b": true}"#.to_vec()),
        ("big.bin", noise(6 * 1024 * 1024 + 123, 7)),
    ];
    for (name, bytes) in &files {
        let up = storage("POST", &format!("object/docs/{name}"), "application/octet-stream", bytes);
        assert_eq!(up.status, 200, "{name}: {}\n{}", up.body, server.logs());
    }
    let before = snapshot(&server, &owner, &reference);
    assert_eq!(before["rows"]["auth.users"].as_array().map(Vec::len), Some(1));
    assert_eq!(before["rows"]["storage.objects"].as_array().map(Vec::len), Some(3));
    assert_eq!(before["rows"]["public.kinds"].as_array().map(Vec::len), Some(3));

    // Export.
    let exported = cli_json(dir.path(), &["projects", "export", &reference, "--output", "app.tar.gz"]);
    assert_eq!(exported["objects"], 3, "{exported}");
    assert!(exported["object_bytes"].as_u64().expect("bytes") > 6 * 1024 * 1024);
    let archive = dir.path().join("app.tar.gz");
    let mut magic = [0u8; 2];
    std::fs::File::open(&archive).expect("the archive").read_exact(&mut magic).expect("read");
    assert_eq!(magic, [0x1f, 0x8b], "a .tar.gz archive is gzip-compressed");
    let left_beside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".forge-export-"))
        .collect();
    assert!(left_beside.is_empty(), "the export's staging is gone");

    // Delete: nothing left.
    cli_json(dir.path(), &["projects", "delete", &reference]);
    assert_eq!(leftovers(dir.path(), &reference), ("0".to_owned(), 0));

    // Import: a new project, new keys, the same everything.
    let imported = project_cli(dir.path(), &["projects", "import", "app.tar.gz"]);
    let new_ref = imported["ref"].as_str().expect("new ref").to_owned();
    assert_ne!(new_ref, reference);
    assert_eq!(imported["name"], "Archived app");
    assert_eq!(imported["organization_slug"], "default");
    assert_eq!(imported["status"], "ACTIVE_HEALTHY");
    let new_anon = imported["anon_key"].as_str().expect("anon key").to_owned();
    let new_service = imported["service_role_key"].as_str().expect("service key").to_owned();
    assert_ne!(new_anon, anon);
    assert!(imported["publishable_key"].is_string() && imported["secret_key"].is_string(), "{imported}");

    let after = snapshot(&server, &owner, &new_ref);
    let (rows_before, rows_after) = (&before["rows"], &after["rows"]);
    assert_eq!(
        rows_before.as_object().expect("tables").keys().collect::<Vec<_>>(),
        rows_after.as_object().expect("tables").keys().collect::<Vec<_>>(),
        "the same tables"
    );
    for (table, rows) in rows_before.as_object().expect("tables") {
        assert_eq!(rows, &rows_after[table], "the rows of {table}");
    }
    assert_eq!(before["definitions"], after["definitions"], "policies, views, functions, grants, sequences");
    // The identity goes on from where it was.
    let next = query(&server, &owner, &new_ref, "insert into notes (title) values ('after') returning id");
    assert_eq!(next, json!([{ "id": 204 }]));
    // The imported tables are the project owner's again: it may change them.
    let owner_role = query(
        &server,
        &owner,
        &new_ref,
        "alter table notes add column imported boolean; select tableowner from pg_tables where tablename = 'notes'",
    );
    assert_eq!(owner_role, json!([{ "tableowner": "forge_owners" }]));

    // The user signs in on the imported project, and RLS (through its function) shows them
    // their notes only.
    let signin = server.request(
        "POST",
        &format!("/p/{new_ref}/auth/v1/token?grant_type=password"),
        &[("apikey", &new_anon), json_type],
        json!({ "email": "ada@example.com", "password": password }).to_string().as_bytes(),
    );
    assert_eq!(signin.status, 200, "{}", signin.body);
    let session = signin.json();
    assert_eq!(session["user"]["id"], user_id.as_str());
    let bearer = format!("Bearer {}", session["access_token"].as_str().expect("access token"));
    let mine = server.request(
        "GET",
        &format!("/p/{new_ref}/rest/v1/notes?select=title&order=id"),
        &[("apikey", &new_anon), ("authorization", &bearer)],
        b"",
    );
    assert_eq!((mine.status, mine.json()), (200, json!([{ "title": "mine" }, { "title": "mine too" }])));

    // Every object, byte for byte, under the new ref with the new key; none under the old.
    for (name, bytes) in &files {
        let (status, got) = download(&server, &format!("/p/{new_ref}/storage/v1/object/docs/{name}"), &new_service);
        assert_eq!(status, 200, "{name}");
        assert!(got == *bytes, "{name}: {} bytes back of {}", got.len(), bytes.len());
    }
    assert_eq!(files_under(&dir.path().join("data/storage").join(&reference)), 0);

    let audit = api(&server, "GET", "/v1/organizations/default/audit", &owner, None).json();
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|e| Some((e["action"].as_str()?, e["project_ref"].as_str()?)))
        .collect();
    assert!(actions.contains(&("project.export", reference.as_str())), "{actions:?}");
    assert!(actions.contains(&("project.import", new_ref.as_str())), "{actions:?}");
}

/// The entries of a plain tar archive, in order.
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = tar::Archive::new(archive);
    tar.entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = e.path().expect("path").to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("data");
            (name, data)
        })
        .collect()
}

fn build(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        tar.append_data(&mut header, name, data.as_slice()).expect("append");
    }
    tar.into_inner().expect("tar")
}

fn sha256(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_damaged_archive_is_refused_and_a_failed_import_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let owner = pat(dir.path(), "owner@example.com");
    let created = project_cli(dir.path(), &["projects", "create", "--name", "Fragile"]);
    let reference = created["ref"].as_str().expect("ref").to_owned();
    let service = created["service_role_key"].as_str().expect("service key").to_owned();
    query(&server, &owner, &reference, "create table t (id int primary key); insert into t values (1)");
    let auth = format!("Bearer {service}");
    let headers = [("apikey", service.as_str()), ("authorization", auth.as_str())];
    let bucket = server.request(
        "POST",
        &format!("/p/{reference}/storage/v1/bucket"),
        &[headers[0], headers[1], ("content-type", "application/json")],
        br#"{"name":"docs"}"#,
    );
    assert_eq!(bucket.status, 200, "{}", bucket.body);
    for (name, body) in [("one.txt", b"first object".as_slice()), ("two.txt", b"second object")] {
        let up = server.request(
            "POST",
            &format!("/p/{reference}/storage/v1/object/docs/{name}"),
            &[headers[0], headers[1], ("content-type", "text/plain")],
            body,
        );
        assert_eq!(up.status, 200, "{}\n{}", up.body, server.logs());
    }
    cli_json(dir.path(), &["projects", "export", &reference, "-o", "fragile.tar"]);
    let good = std::fs::read(dir.path().join("fragile.tar")).expect("the archive");
    let original = entries(&good);
    assert_eq!(original[0].0, "manifest.json");
    assert_eq!(original[1].0, "database.pgdump");
    assert_eq!(original.len(), 4, "{:?}", original.iter().map(|e| &e.0).collect::<Vec<_>>());

    let projects = || cli_json(dir.path(), &["projects", "list"]).as_array().expect("list").len();
    let databases = || {
        let admin = common::embedded_url(&dir.path().join("data"));
        psql(&admin, "select count(*) from pg_database where datname like 'forge_platform_%'")
    };
    let state = || (projects(), databases(), files_under(&dir.path().join("data/storage")));
    let clean = state();

    // One flipped byte in an object: refused before anything is made.
    let mut flipped = original.clone();
    flipped[3].1[0] ^= 0x01;
    std::fs::write(dir.path().join("flipped.tar"), build(&flipped)).expect("write");
    let err = cli_fails(dir.path(), &["projects", "import", "flipped.tar"]);
    assert!(err.contains("The archive is damaged") && err.contains("SHA-256"), "{err}");
    assert_eq!(state(), clean, "nothing was made");

    // A byte of the dump, an object missing, an object too many, not an archive at all.
    let mut dump = original.clone();
    let middle = dump[1].1.len() / 2;
    dump[1].1[middle] ^= 0x40;
    let mut missing = original.clone();
    missing.pop();
    let mut extra = original.clone();
    extra.push(("objects/intruder".into(), b"x".to_vec()));
    for (name, bytes) in [
        ("dump.tar", build(&dump)),
        ("missing.tar", build(&missing)),
        ("extra.tar", build(&extra)),
        ("text.tar", b"not an archive".to_vec()),
    ] {
        std::fs::write(dir.path().join(name), bytes).expect("write");
        let err = cli_fails(dir.path(), &["projects", "import", name]);
        assert!(err.contains("damaged") || err.contains("not a Forge project archive"), "{name}: {err}");
    }
    assert_eq!(state(), clean, "nothing was made");

    // An archive whose every digest matches, but whose dump Postgres cannot restore: the
    // project is made, the restore fails, and the project is deleted again.
    let mut unrestorable = original.clone();
    let garbage = b"PGDMP but not really a dump".to_vec();
    let mut manifest: Value = serde_json::from_slice(&unrestorable[0].1).expect("manifest");
    manifest["database"]["size"] = json!(garbage.len());
    manifest["database"]["sha256"] = json!(sha256(&garbage));
    unrestorable[0].1 = serde_json::to_vec(&manifest).expect("json");
    unrestorable[1].1 = garbage;
    std::fs::write(dir.path().join("unrestorable.tar"), build(&unrestorable)).expect("write");
    let err = cli_fails(dir.path(), &["projects", "import", "unrestorable.tar"]);
    assert!(err.contains("pg_restore"), "{err}");
    assert_eq!(state(), clean, "the half-imported project is gone");
    let audit = api(&server, "GET", "/v1/organizations/default/audit", &owner, None).json();
    let actions: Vec<&str> = audit.as_array().expect("log").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(&actions[..2], ["project.delete", "project.create"], "made and deleted again: {actions:?}");

    // The untouched archive still imports.
    let imported = project_cli(dir.path(), &["projects", "import", "fragile.tar", "--name", "Sturdy"]);
    assert_eq!(imported["name"], "Sturdy");
    let new_ref = imported["ref"].as_str().expect("ref");
    assert_eq!(query(&server, &owner, new_ref, "select id from t"), json!([{ "id": 1 }]));
}
