//! Run with `cargo run --release -p example-auth-bench` (optionally `-- <seconds> <connections>`).
//!
//! What forge-auth costs, in one run, over real HTTP against a private Postgres:
//!
//! 1. password sign-ins per second (`POST /auth/v1/token?grant_type=password`) against raw
//!    argon2id verifications per second on as many threads, in alternating rounds;
//! 2. token refreshes per second, each connection following its own refresh-token chain;
//! 3. the per-request authentication work, timed in-process: `verify_jwt` for HS256 and ES256
//!    user tokens, the whole `authenticate` step, the claims JSON handed to Postgres, and the
//!    pieces of a verification (signature with the key parsed per call or once, HMAC, claims
//!    parsing);
//! 4. an authenticated REST GET (a user's JWT from a real sign-in, under an RLS policy
//!    `owner = auth.uid()`) against an anon REST GET (the anon key, a policy that lets anon
//!    read the same kind of row), in alternating rounds, against the target that
//!    authentication adds under 5% (authenticated req/s at least 0.95x anon);
//! 5. the database's share of the difference: the same reads sent straight through
//!    forge-core's RLS gateway, as anon and as the user, without HTTP or JWTs; and the user's
//!    read again with `request.jwt.claim.sub` set as well, so that `auth.uid()` need not parse
//!    the whole claims JSON.
//!
//! The project signs with ES256, so the sign-in token is ES256. To separate the costs, the REST
//! comparison also sends an HS256 token with the same claims, and reads a copy of the table
//! whose policy does not call `auth.uid()`.

mod gateway;
mod load;
mod micro;
mod setup;

use std::time::Duration;

use forge_core::Principal;
use forge_core::testing::TEST_JWT_SECRET;
use serde_json::Value;

use crate::load::{Outcome, Target};
use crate::setup::PASSWORD;

/// Alternating rounds per comparison.
const ROUNDS: u32 = 10;
/// The target: authentication adds under this share to an authenticated REST GET.
const TARGET: f64 = 0.05;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10).max(1);
    let connections: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64).max(1);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let measure = Duration::from_secs(seconds);
    let round = (measure / ROUNDS).max(Duration::from_secs(1));
    let warm_up = Duration::from_secs(2);

    eprintln!("setting up: private Postgres, forge-auth, {connections} users signing up over HTTP");
    let b = setup::setup(connections, cores * 2).await?;
    let keys = b.keys().clone();
    let paths = |table: &str, ids: &[i64]| ids.iter().map(|id| format!("/rest/v1/{table}?id=eq.{id}")).collect();
    let get = |table: &str, ids: &[i64], headers: &[(String, String)]| {
        let paths: Vec<String> = paths(table, ids);
        Target::get(b.addr, &paths, headers)
    };
    let variants = [
        ("anon key, `notes` (policy `public`)", get("notes", &b.public_ids, &b.anon)),
        (
            "user, ES256 sign-in token, `notes` (policy `owner = auth.uid()`)",
            get("notes", &b.private_ids, &b.as_user(&b.es256_token)),
        ),
        ("user, HS256 token (same claims), `notes`", get("notes", &b.private_ids, &b.as_user(&b.hs256_token))),
        (
            "user, HS256 token, `posts` (policy `public`, no `auth.uid()`)",
            get("posts", &b.public_ids, &b.as_user(&b.hs256_token)),
        ),
    ];
    // Each reads exactly one row, and RLS keeps anon out of the private notes.
    for (name, target) in &variants {
        let (status, body) = target.once().await?;
        let rows: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status != 200 || rows.as_array().map(Vec::len) != Some(1) {
            return Err(format!("{name}: expected one row, got {status}: {body}").into());
        }
    }
    let (_, hidden) = get("notes", &b.private_ids, &b.anon).once().await?;
    if hidden != "[]" {
        return Err(format!("anon read a private note: {hidden}").into());
    }
    let anon = keys.authenticate(Some(keys.anon_key().as_bytes()), None)?;
    let user = Principal::from_claims(b.claims.clone());
    let user_headers = b.as_user(&b.es256_token);
    let reads = [
        ("anon, `notes`", gateway::Read::new(anon, "notes", &b.public_ids, &b.anon)?),
        ("user, `notes`", gateway::Read::new(user.clone(), "notes", &b.private_ids, &user_headers)?),
        ("user, `posts` (no `auth.uid()`)", gateway::Read::new(user.clone(), "posts", &b.public_ids, &user_headers)?),
        (
            "user, `notes`, with `request.jwt.claim.sub` also set",
            gateway::Read::new(user.clone(), "notes", &b.private_ids, &user_headers)?.with_sub(&b.claims),
        ),
    ];
    let db = b.project.db();
    for (name, read) in &reads {
        let rows: Value = serde_json::from_str(&read.once(db).await?)?;
        if rows.as_array().map(Vec::len) != Some(1) {
            return Err(format!("gateway read {name}: expected one row, got {rows}").into());
        }
    }

    // 1. Password sign-ins against raw argon2id verification, in alternating rounds.
    let sign_in = b.sign_in();
    sign_in.run(cores, warm_up).await;
    let mut logins = Outcome::default();
    let (mut verified, mut verify_time) = (0u64, Duration::ZERO);
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            logins.merge(sign_in.run(cores, round).await);
        }
        let stored = b.stored_hash.clone();
        let raw = move || micro::password_verifications(PASSWORD, &stored, cores, round);
        let (n, took) = tokio::task::spawn_blocking(raw).await?;
        (verified, verify_time) = (verified + n, verify_time + took);
        if r % 2 == 1 {
            logins.merge(sign_in.run(cores, round).await);
        }
    }
    let raw = verified as f64 / verify_time.as_secs_f64().max(1e-9);

    // 2. Refresh-token chains.
    let refresh = Target::refresh(b.addr, "/auth/v1/token?grant_type=refresh_token", b.refresh_tokens.clone(), &b.anon);
    refresh.run(connections, warm_up).await;
    let refreshes = refresh.run(connections, measure).await;

    // 3. Per-request authentication work, one thread, no HTTP.
    let tokens = micro::Tokens { hs256: &b.hs256_token, es256: &b.es256_token, secret: TEST_JWT_SECRET.as_bytes() };
    let steps = micro::auth_steps(&keys, &tokens, Duration::from_millis(500))?;

    // 4. Authenticated against anon REST GET, in alternating rounds.
    for (_, target) in &variants {
        target.run(connections, warm_up).await;
    }
    let loaded = alternate(variants.len(), ROUNDS, async |i| variants[i].1.run(connections, round).await).await;
    let one = Duration::from_secs(1);
    let unloaded = alternate(variants.len(), 3, async |i| variants[i].1.run(1, one).await).await;

    // 5. The same reads through the RLS gateway alone.
    for (_, read) in &reads {
        read.run(db, connections, warm_up).await;
    }
    let db_loaded = alternate(reads.len(), ROUNDS, async |i| reads[i].1.run(db, connections, round).await).await;
    let db_unloaded = alternate(reads.len(), 3, async |i| reads[i].1.run(db, 1, one).await).await;

    println!("\n{cores} cores, {seconds} s per measurement after a 2 s warm-up, {ROUNDS} alternating rounds");
    println!(
        "token sizes: anon key {} B, HS256 user token {} B, ES256 user token {} B; user claims JSON {} B",
        keys.anon_key().len(),
        b.hs256_token.len(),
        b.es256_token.len(),
        user.claims_json().len()
    );

    println!("\n## 1. Password sign-in ({cores} connections; raw verify on {cores} threads)\n");
    println!("| measurement | per second | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    row("`POST /token?grant_type=password`", &logins);
    let raw_ms = cores as f64 / raw.max(1e-9) * 1000.0;
    println!("| raw `password::verify` (argon2id m=19456, t=2, p=1) | {raw:.1} | {raw_ms:.2} ms (mean) | |");
    println!("\nsign-ins / raw verifications: {:.2}x", logins.rps() / raw.max(1e-9));
    errors("sign-in", &logins);

    println!("\n## 2. Token refresh ({connections} connections, one refresh-token chain each)\n");
    println!("| measurement | per second | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    row("`POST /token?grant_type=refresh_token`", &refreshes);
    errors("refresh", &refreshes);

    let auth_p50_us = unloaded[1].p50_ms() * 1000.0;
    let cpu_us = cores as f64 / loaded[1].rps().max(1e-9) * 1e6;
    println!("\n## 3. Per-request authentication work (one thread, in-process, best of 5 interleaved slices)\n");
    println!(
        "| step | ns per call | share of unloaded authenticated GET p50 ({auth_p50_us:.0} µs) | \
         share of CPU per loaded authenticated GET ({cpu_us:.0} µs) |"
    );
    println!("|---|---:|---:|---:|");
    for step in &steps {
        // ns / 1000 / µs * 100 = ns / 10 / µs.
        let (p50_share, cpu_share) = (step.ns / 10.0 / auth_p50_us, step.ns / 10.0 / cpu_us);
        println!("| {} | {:.0} | {p50_share:.2}% | {cpu_share:.2}% |", step.name, step.ns);
    }
    println!(
        "\n(Authenticated GET: the ES256 sign-in token. CPU per loaded GET = {cores} cores / its req/s; \
         Postgres and the load generator share those cores.)"
    );

    println!(
        "\n## 4. REST GET of one row under RLS: authenticated against anon\n\n\
         {connections} connections, rounds of {} s; unloaded: 1 connection, 3 rounds of 1 s\n",
        round.as_secs()
    );
    comparison("caller", &variants.iter().map(|v| v.0).collect::<Vec<_>>(), &loaded, &unloaded);
    let us = |o: &[Outcome], i: usize| o[i].p50_ms() * 1000.0;
    println!(
        "\nunloaded p50 differences: a user token instead of the anon key (HS256, no `auth.uid()`) {:+.0} µs; \
         `auth.uid()` in the policy {:+.0} µs; ES256 instead of HS256 {:+.0} µs",
        us(&unloaded, 3) - us(&unloaded, 0),
        us(&unloaded, 2) - us(&unloaded, 3),
        us(&unloaded, 1) - us(&unloaded, 2)
    );

    println!(
        "\n## 5. The database's share: the same reads through forge-core's RLS gateway alone\n\n\
         (`rls::query_once`, no HTTP, no JWT; {connections} tasks, rounds of {} s; unloaded: 1 task)\n",
        round.as_secs()
    );
    comparison("caller", &reads.iter().map(|r| r.0).collect::<Vec<_>>(), &db_loaded, &db_unloaded);

    println!();
    for (i, (name, _)) in variants.iter().enumerate().take(3).skip(1) {
        let ratio = loaded[i].rps() / loaded[0].rps().max(1e-9);
        let latency = unloaded[i].p50_ms() / unloaded[0].p50_ms().max(1e-9) - 1.0;
        let verdict = if ratio >= 1.0 - TARGET { "PASS" } else { "FAIL" };
        println!(
            "{verdict}: {name}: authenticated/anon throughput {ratio:.3}x (target >= {:.2}x), unloaded latency {:+.1}%",
            1.0 - TARGET,
            latency * 100.0
        );
    }
    Ok(())
}

/// Runs `run(i)` for each of `n` variants, `rounds` times, rotating which goes first, and
/// merges each variant's rounds.
async fn alternate(n: usize, rounds: u32, mut run: impl AsyncFnMut(usize) -> Outcome) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = (0..n).map(|_| Outcome::default()).collect();
    for r in 0..rounds as usize {
        for k in 0..n {
            let i = (r + k) % n;
            out[i].merge(run(i).await);
        }
    }
    out
}

/// A table of variants against the first.
fn comparison(what: &str, names: &[&str], loaded: &[Outcome], unloaded: &[Outcome]) {
    println!("| {what} | req/s | p50 | p99 | vs first | unloaded p50 | vs first |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, name) in names.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.3}x | {:.3} ms | {:+.1}% |",
            loaded[i].rps(),
            loaded[i].p50_ms(),
            loaded[i].p99_ms(),
            loaded[i].rps() / loaded[0].rps().max(1e-9),
            unloaded[i].p50_ms(),
            (unloaded[i].p50_ms() / unloaded[0].p50_ms().max(1e-9) - 1.0) * 100.0
        );
    }
    for (i, name) in names.iter().enumerate() {
        errors(name, &loaded[i]);
        errors(name, &unloaded[i]);
    }
}

fn row(name: &str, o: &Outcome) {
    println!("| {name} | {:.1} | {:.2} ms | {:.2} ms |", o.rps(), o.p50_ms(), o.p99_ms());
}

fn errors(name: &str, o: &Outcome) {
    if o.errors > 0 {
        println!("({name}: {} failed requests; first: {:?})", o.errors, o.first_error);
    }
}
