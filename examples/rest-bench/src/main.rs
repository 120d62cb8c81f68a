//! Run with `cargo run --release -p example-rest-bench` (optionally `-- <seconds> <connections>`).
//!
//! forge-data's router against hand-written axum + sqlx handlers, on the same database, with
//! the same pool size (16) and the same load generator, in one run. Two baselines:
//!
//! - **plain** (`plain.rs`), the one that counts: the shared anchors' refserver adapted to these
//!   tables. One query per request, JSON built by Postgres, no RLS and no JWT check.
//! - **RLS** (`baseline.rs`): verifies the same JWT and applies the same RLS (role and claims
//!   set in a transaction), in four sequential round trips (BEGIN, set_config, query, COMMIT).
//!   It applies only to the user's cases.
//!
//! The cases:
//!
//! - as `anon` (the anon key as `apikey` and bearer, as supabase-js sends it) on
//!   `public_items`, a table without RLS that `anon` may read and insert into. These are the
//!   three cases the shared anchors script measures:
//!   1. GET one row by id (`Accept: application/vnd.pgrst.object+json`);
//!   2. GET 100 rows, `price >= 500`, ordered by id;
//!   3. POST one row (`return=representation`);
//! - as a signed-in user (a user token) on `items`, under the policy `owner = auth.uid()`:
//!   4. GET one row by id (object, as in case 1);
//!   5. GET 100 rows with a filter and an order;
//!   6. POST one row (`return=minimal`);
//!   7. GET with a to-many embed.
//!
//! Each target of a case gets a 2 s warm-up; then the targets take turns in rounds of about
//! 2 s until each has had its time (10 s by default), so that a slow patch on a shared machine
//! falls on every side alike. The table gives req/s and p99 per target, and forge-data's ratio
//! to each baseline.

mod baseline;
mod load;
mod plain;

use std::time::Duration;

use axum::Router;
use forge_core::testing::test_db;
use forge_core::{Database, Project, ProjectKeys, ProjectLayer, ProjectSettings};
use serde_json::{Value, json};

const POOL: u32 = 16;
const ROWS: usize = 100_000;

const SCHEMA: &str = "
create table categories (id int primary key, name text not null);
create table items (
  id bigserial primary key,
  owner uuid not null,
  category_id int not null references categories(id),
  name text not null,
  price int not null,
  created_at timestamptz not null default now()
);
create index on items (owner, id);
create index on items (owner, category_id, id);
alter table items enable row level security;
create policy own_items on items for all to authenticated using (owner = auth.uid()) with check (owner = auth.uid());
alter table categories enable row level security;
create policy read_categories on categories for select to authenticated using (true);

-- The anchors' table, without RLS: anon may read it and add to it.
create table public_items (
  id bigserial primary key,
  name text not null,
  price int not null,
  created_at timestamptz not null default now()
);
revoke all on public_items from anon, authenticated;
revoke all on sequence public_items_id_seq from anon, authenticated;
grant select, insert on public_items to anon;
grant usage on sequence public_items_id_seq to anon;
";

/// One case: forge-data, the plain handler and, for the user's cases, the RLS baseline.
struct Case {
    name: &'static str,
    forge: load::Target,
    plain: load::Target,
    rls: Option<load::Target>,
    /// A write: bodies are compared without the generated `id` and `created_at`.
    write: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let connections: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);

    eprintln!("setting up: private Postgres, {ROWS} rows in items (RLS) and in public_items (no RLS)");
    let t = test_db().await;
    sqlx::raw_sql(SCHEMA).execute(t.pool()).await?;
    sqlx::raw_sql(
        "insert into categories select g, 'category ' || g from generate_series(1, 50) g;
         insert into items (owner, category_id, name, price)
         select ('00000000-0000-4000-8000-' || lpad((g % 100)::text, 12, '0'))::uuid, 1 + (g / 100) % 50, 'item ' || g, g % 1000
         from generate_series(1, 100000) g;
         insert into public_items (name, price)
         select 'item-' || g, (g * 7919) % 1000 from generate_series(1, 100000) g;
         analyze;",
    )
    .execute(t.pool())
    .await?;

    // The same database and pool size for every side.
    let config = t.config().with_pool_sizes(POOL, POOL as usize);
    let project = {
        let base = t.project("bench");
        let db = Database::connect_lazy(&config)?;
        Project::new(base.reference().clone(), db, base.keys().clone(), ProjectSettings::new("http://127.0.0.1"))
    };
    let user = "00000000-0000-4000-8000-000000000007";
    let claims = json!({"sub": user, "role": "authenticated", "aud": "authenticated", "exp": 4_102_444_800u64});
    let token = project.keys().sign_hs256(claims.as_object().ok_or("claims")?)?;
    let own_ids: Vec<i64> = sqlx::query_scalar("select id from items where owner = $1::uuid order by id limit 500")
        .bind(user)
        .fetch_all(t.pool())
        .await?;
    let public_ids: Vec<i64> =
        sqlx::query_scalar("select id from public_items order by random() limit 1000").fetch_all(t.pool()).await?;

    let data = forge_data::Data::builder().build()?;
    let forge = Router::new().nest("/rest/v1", data.router()).layer(ProjectLayer::single(project.clone()));
    let f = serve(forge).await?;
    let r = serve(baseline::router(t.url(), POOL, forge_core::testing::TEST_JWT_SECRET).await?).await?;
    let p = serve(plain::router(t.url(), POOL).await?).await?;

    let keys: &ProjectKeys = project.keys();
    let header = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let anon = vec![header("apikey", keys.anon_key()), header("authorization", &format!("Bearer {}", keys.anon_key()))];
    let signed_in = vec![header("apikey", keys.anon_key()), header("authorization", &format!("Bearer {token}"))];
    let with = |base: &[(String, String)], k: &str, v: &str| {
        let mut h = base.to_vec();
        h.push(header(k, v));
        h
    };
    let object = "application/vnd.pgrst.object+json";
    let anon_object = with(&anon, "accept", object);
    let anon_returning = with(&anon, "prefer", "return=representation");
    let signed_in_object = with(&signed_in, "accept", object);
    let paths = |ids: &[i64], prefix: &str| ids.iter().map(|id| format!("{prefix}{id}")).collect::<Vec<_>>();

    let public_body = json!({"name": "new item", "price": 42}).to_string();
    let item_body = json!({"owner": user, "category_id": 3, "name": "new item", "price": 42}).to_string();
    let cases = vec![
        Case {
            name: "1. anon: GET one row by id",
            forge: load::Target::get(f, paths(&public_ids, "/rest/v1/public_items?id=eq."), &anon_object),
            plain: load::Target::get(p, paths(&public_ids, "/public_items/"), &anon_object),
            rls: None,
            write: false,
        },
        Case {
            name: "2. anon: GET 100 rows, price >= 500, order id",
            forge: load::Target::get(f, vec!["/rest/v1/public_items?price=gte.500&order=id&limit=100".into()], &anon),
            plain: load::Target::get(p, vec!["/public_items?min=500".into()], &anon),
            rls: None,
            write: false,
        },
        Case {
            name: "3. anon: POST one row (representation)",
            forge: load::Target::post(f, "/rest/v1/public_items", &public_body, &anon_returning),
            plain: load::Target::post(p, "/public_items", &public_body, &anon_returning),
            rls: None,
            write: true,
        },
        Case {
            name: "4. user: GET one row by id (RLS)",
            forge: load::Target::get(f, paths(&own_ids, "/rest/v1/items?id=eq."), &signed_in_object),
            plain: load::Target::get(p, paths(&own_ids, "/items/"), &signed_in_object),
            rls: Some(load::Target::get(r, paths(&own_ids, "/items/"), &signed_in_object)),
            write: false,
        },
        Case {
            name: "5. user: GET 100 rows, filter + order (RLS)",
            forge: load::Target::get(f, vec!["/rest/v1/items?price=gt.100&order=id&limit=100".into()], &signed_in),
            plain: load::Target::get(p, vec![format!("/items?owner={user}&min_price=100")], &signed_in),
            rls: Some(load::Target::get(r, vec!["/items?min_price=100".into()], &signed_in)),
            write: false,
        },
        Case {
            name: "6. user: POST one row (RLS, minimal)",
            forge: load::Target::post(f, "/rest/v1/items", &item_body, &signed_in),
            plain: load::Target::post(p, "/items", &item_body, &signed_in),
            rls: Some(load::Target::post(r, "/items", &item_body, &signed_in)),
            write: true,
        },
        Case {
            name: "7. user: GET with a to-many embed (RLS)",
            forge: load::Target::get(
                f,
                vec!["/rest/v1/categories?select=id,name,items(id,name,price)&id=in.(1,2,3)&order=id&items.order=id&items.limit=20".into()],
                &signed_in,
            ),
            plain: load::Target::get(p, vec![format!("/categories?owner={user}")], &signed_in),
            rls: Some(load::Target::get(r, vec!["/categories".into()], &signed_in)),
            write: false,
        },
    ];

    // Every side must answer the same thing before anything is timed.
    for case in &cases {
        let (fs, fb) = case.forge.once().await?;
        let mut others = vec![("plain", &case.plain)];
        others.extend(case.rls.as_ref().map(|r| ("RLS baseline", r)));
        for (side, target) in others {
            let (s, b) = target.once().await?;
            if fs / 100 != 2 || s / 100 != 2 {
                return Err(format!("{}: forge answered {fs}, {side} {s}: {fb} / {b}", case.name).into());
            }
            let (fv, v) = (comparable(&fb, case.write)?, comparable(&b, case.write)?);
            if fv != v {
                return Err(format!("{}: forge and {side} disagree:\nforge: {fv}\n{side}: {v}", case.name).into());
            }
        }
    }

    // Each target is warmed up, then the targets of a case take turns in rounds of about 2 s
    // until each has had `seconds`: a slow patch on a shared machine falls on all of them alike.
    let rounds = (seconds / 2).max(1);
    let round = Duration::from_secs_f64(seconds as f64 / rounds as f64);
    println!(
        "\n{connections} connections, {seconds} s per target in {rounds} interleaved rounds after a 2 s warm-up, \
         pools of {POOL}, {ROWS} rows per table\n"
    );
    println!(
        "| case | plain req/s | plain p99 | RLS baseline req/s | RLS baseline p99 | forge-data req/s | forge-data p99 | forge/plain | forge/RLS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for case in &cases {
        let mut targets = vec![&case.plain];
        targets.extend(&case.rls);
        targets.push(&case.forge);
        for target in &targets {
            target.run(connections, Duration::from_secs(2)).await;
        }
        let mut samples: Vec<load::Samples> = targets.iter().map(|_| load::Samples::default()).collect();
        for _ in 0..rounds {
            for (target, samples) in targets.iter().zip(&mut samples) {
                samples.add(target.sample(connections, round).await);
            }
        }
        let mut outcomes: Vec<load::Outcome> = samples.into_iter().map(load::Samples::outcome).collect();
        let forge = outcomes.pop().ok_or("forge-data's outcome")?;
        let rls = if case.rls.is_some() { outcomes.pop() } else { None };
        let plain = outcomes.pop().ok_or("the plain handler's outcome")?;
        let (rls_rps, rls_p99, vs_rls) = match &rls {
            Some(b) => {
                (format!("{:.0}", b.rps), format!("{:.2} ms", b.p99_ms), format!("{:.2}x", forge.rps / b.rps.max(1.0)))
            }
            None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        println!(
            "| {} | {:.0} | {:.2} ms | {rls_rps} | {rls_p99} | {:.0} | {:.2} ms | {:.2}x | {vs_rls} |",
            case.name,
            plain.rps,
            plain.p99_ms,
            forge.rps,
            forge.p99_ms,
            forge.rps / plain.rps.max(1.0),
        );
        let rls_errors = rls.as_ref().map_or(0, |b| b.errors);
        if plain.errors + rls_errors + forge.errors > 0 {
            println!(
                "|   (non-2xx answers: plain {}, RLS baseline {rls_errors}, forge-data {}) | | | | | | | | |",
                plain.errors, forge.errors
            );
        }
    }
    Ok(())
}

/// A body as compared across sides: JSON, a one-element array as its element (an object
/// response and a one-row array say the same), and for writes without the generated columns.
fn comparable(body: &str, write: bool) -> Result<Value, serde_json::Error> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let mut v: Value = serde_json::from_str(body)?;
    if let Value::Array(a) = &mut v
        && a.len() == 1
    {
        v = a.remove(0);
    }
    if write && let Value::Object(o) = &mut v {
        o.remove("id");
        o.remove("created_at");
    }
    Ok(v)
}

async fn serve(app: Router) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
