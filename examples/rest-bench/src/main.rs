//! Run with `cargo run --release -p example-rest-bench` (optionally `-- <seconds> <connections>`).
//!
//! forge-data's router against a hand-written axum + sqlx handler for the same four queries,
//! on the same database, with the same pool size and the same load generator, in one run:
//!
//! 1. GET one row by primary key as an authenticated user, under an RLS policy;
//! 2. GET 100 rows with a filter and an order;
//! 3. POST one row;
//! 4. GET with a to-many embed.
//!
//! The hand-written side is a strong baseline: it verifies the same JWT, applies the same RLS
//! (role and claims set in a transaction), and turns off sqlx's per-acquire ping.

mod baseline;
mod load;

use std::time::Duration;

use axum::Router;
use forge_core::testing::test_db;
use forge_core::{Database, Project, ProjectKeys, ProjectLayer, ProjectSettings};
use serde_json::json;

const POOL: u32 = 16;
const USERS: usize = 100;
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
";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let connections: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);

    eprintln!("setting up: private Postgres, {ROWS} rows, RLS");
    let t = test_db().await;
    sqlx::raw_sql(SCHEMA).execute(t.pool()).await?;
    sqlx::raw_sql(
        "insert into categories select g, 'category ' || g from generate_series(1, 50) g;
         insert into items (owner, category_id, name, price)
         select ('00000000-0000-4000-8000-' || lpad((g % 100)::text, 12, '0'))::uuid, 1 + (g / 100) % 50, 'item ' || g, g % 1000
         from generate_series(1, 100000) g;
         analyze;",
    )
    .execute(t.pool())
    .await?;
    let _ = USERS;

    // The same database and pool size for both sides.
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

    let data = forge_data::Data::builder().build()?;
    let forge = Router::new().nest("/rest/v1", data.router()).layer(ProjectLayer::single(project.clone()));
    let forge_addr = serve(forge).await?;
    let baseline = baseline::router(t.url(), POOL, forge_core::testing::TEST_JWT_SECRET).await?;
    let baseline_addr = serve(baseline).await?;
    let keys: &ProjectKeys = project.keys();
    let common = vec![
        ("apikey".to_owned(), keys.anon_key().to_owned()),
        ("authorization".to_owned(), format!("Bearer {token}")),
    ];

    let item_body = json!({"owner": user, "category_id": 3, "name": "new item", "price": 42}).to_string();
    let cases: Vec<(&str, load::Target, load::Target)> = vec![
        (
            "1. GET one row by primary key (RLS)",
            load::Target::get(forge_addr, own_ids.iter().map(|id| format!("/rest/v1/items?id=eq.{id}")).collect(), &common),
            load::Target::get(baseline_addr, own_ids.iter().map(|id| format!("/items/{id}")).collect(), &common),
        ),
        (
            "2. GET 100 rows, filter + order",
            load::Target::get(forge_addr, vec!["/rest/v1/items?price=gt.100&order=id&limit=100".into()], &common),
            load::Target::get(baseline_addr, vec!["/items?min_price=100".into()], &common),
        ),
        (
            "3. POST one row",
            load::Target::post(forge_addr, "/rest/v1/items", &item_body, &common),
            load::Target::post(baseline_addr, "/items", &item_body, &common),
        ),
        (
            "4. GET with a to-many embed",
            load::Target::get(
                forge_addr,
                vec!["/rest/v1/categories?select=id,name,items(id,name,price)&id=in.(1,2,3)&order=id&items.order=id&items.limit=20".into()],
                &common,
            ),
            load::Target::get(baseline_addr, vec!["/categories".into()], &common),
        ),
    ];

    // Both sides must answer the same thing before anything is timed.
    for (name, f, b) in &cases {
        let (fs, fb) = f.once().await?;
        let (bs, bb) = b.once().await?;
        if fs / 100 != 2 || bs / 100 != 2 {
            return Err(format!("{name}: forge answered {fs}, baseline {bs}: {fb} / {bb}").into());
        }
        if !name.starts_with("3.") {
            let fv: serde_json::Value = serde_json::from_str(&fb)?;
            let bv: serde_json::Value = serde_json::from_str(&bb)?;
            if fv != bv {
                return Err(format!("{name}: the two sides disagree:\nforge:    {fv}\nbaseline: {bv}").into());
            }
        }
    }

    println!("\n{connections} connections, {seconds} s per case after a 2 s warm-up, pools of {POOL}, {ROWS} rows\n");
    println!("| case | forge-data req/s | forge-data p99 | hand-written req/s | hand-written p99 | ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, forge, base) in &cases {
        forge.run(connections, Duration::from_secs(2)).await;
        let f = forge.run(connections, Duration::from_secs(seconds)).await;
        base.run(connections, Duration::from_secs(2)).await;
        let b = base.run(connections, Duration::from_secs(seconds)).await;
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.0} | {:.2} ms | {:.2}x |",
            f.rps,
            f.p99_ms,
            b.rps,
            b.p99_ms,
            f.rps / b.rps.max(1.0)
        );
        if f.errors + b.errors > 0 {
            println!("|   (non-2xx answers: forge-data {}, hand-written {}) | | | | | |", f.errors, b.errors);
        }
    }
    Ok(())
}

async fn serve(app: Router) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
