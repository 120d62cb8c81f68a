//! Run with `cargo run --release -p example-realtime-bench` (optionally `-- <seconds of
//! sustained writes> <all|broadcast|changes>`, default `10 all`).
//!
//! forge-realtime against a hand-written tokio-tungstenite fan-out server (the ceiling: no
//! auth, no RLS, no Phoenix), with the same client load generator, in one run:
//!
//! 1. resident memory per idle socket at 10,000 sockets, each joined to one channel;
//! 2. one broadcast fanned out to 1,000 and to 10,000 subscribers: latency from the send stamp
//!    to receipt, and delivered messages per second for a burst of broadcasts;
//! 3. one committed row delivered through `postgres_changes` to 1,000 subscribers, each a
//!    distinct user whose RLS policy is checked (Forge only): latency from commit to receipt;
//! 4. sustained changes with 100 such subscribers: one writer inserting as fast as it can.
//!
//! Both servers run as child processes of this one (`serve-forge`, `serve-ceiling`), one at a
//! time, so each one's memory and CPU time are its own; the clients run here.

mod ceiling;
mod client;
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Error, Join, Probe, Publisher, Recorder, Server as Target, unix_us};
use forge_core::ProjectKeys;
use serde_json::json;
use server::Server;

/// The large fan-out, and the sockets of the memory measurement.
const BIG: usize = 10_000;
/// The small fan-out.
const SMALL: usize = 1_000;
/// Subscribers of the postgres_changes case, each a distinct user.
const RLS_USERS: usize = 1_000;
/// Subscribers of the sustained case.
const SUSTAINED_USERS: usize = 100;
/// Single broadcasts timed per fan-out (after two untimed ones).
const ROUNDS: usize = 20;
/// Deliveries per burst: the burst is this many divided by the subscribers, sent back to back.
const BURST_DELIVERIES: usize = 300_000;
/// Single committed rows timed (after two untimed ones).
const CHANGE_ROUNDS: usize = 10;
/// Handshakes and joins in flight at once.
const CONCURRENCY: usize = 200;

const SCHEMA: &str = "
create table public.members (room int not null, user_id uuid not null, primary key (room, user_id));
create table public.feed (
  id bigint generated always as identity primary key,
  room int not null,
  body text not null,
  created_at timestamptz not null default now()
);
alter table public.feed enable row level security;
-- Each subscriber's identity is checked: a row is visible to the members of its room.
create policy members_read on public.feed for select to authenticated
  using (exists (select 1 from public.members m where m.room = feed.room and m.user_id = auth.uid()));
grant select on public.feed, public.members to authenticated;
alter publication supabase_realtime add table public.feed;
";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve-forge") => {
            logs();
            let (url, gateway) = (args.get(2).ok_or("url")?, args.get(3).ok_or("gateway url")?);
            server::forge(url, gateway).await
        }
        Some("serve-ceiling") => {
            logs();
            server::ceiling().await
        }
        other => {
            let seconds = other.and_then(|s| s.parse().ok()).unwrap_or(10);
            let only = args.get(2).map(String::as_str).unwrap_or("all");
            if !["all", "broadcast", "changes"].contains(&only) {
                return Err("the cases are all, broadcast or changes".into());
            }
            Box::pin(bench(seconds, only)).await
        }
    }
}

/// The servers' warnings (a socket closed as too slow, a failed check) on stderr.
fn logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// User `i`'s id.
fn user(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// User `i`'s access token, signed with the project's keys.
fn token(keys: &ProjectKeys, i: usize) -> Result<String, Error> {
    let exp = unix_us() / 1_000_000 + 3600;
    let claims = json!({"sub": user(i), "role": "authenticated", "aud": "authenticated", "exp": exp});
    Ok(keys.sign(claims.as_object().ok_or("claims")?)?)
}

/// The join of a broadcast subscriber (and the publisher), as supabase-js sends it.
fn broadcast_join(topic: &str, token: &str) -> Join {
    Join {
        topic: topic.to_owned(),
        payload: json!({"config": {"broadcast": {"self": false}, "postgres_changes": []}, "access_token": token}),
        changes: false,
    }
}

/// The join of a postgres_changes subscriber.
fn changes_join(topic: &str, token: &str) -> Join {
    Join {
        topic: topic.to_owned(),
        payload: json!({
            "config": {
                "broadcast": {"self": false},
                "postgres_changes": [{"event": "INSERT", "schema": "public", "table": "feed"}],
            },
            "access_token": token,
        }),
        changes: true,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// Latencies in milliseconds: p50, p99, max.
fn spread(mut samples: Vec<u32>) -> (f64, f64, f64) {
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99), percentile(&samples, 1.0))
}

/// Memory of the idle sockets.
#[derive(Debug, Clone, Copy)]
struct Memory {
    base: u64,
    upgraded: u64,
    joined: u64,
}

impl Memory {
    fn per_socket(self) -> f64 {
        (self.joined.saturating_sub(self.base)) as f64 / BIG as f64 / 1024.0
    }
    fn upgrade_share(self) -> f64 {
        (self.upgraded.saturating_sub(self.base)) as f64 / BIG as f64 / 1024.0
    }
    fn join_share(self) -> f64 {
        (self.joined.saturating_sub(self.upgraded)) as f64 / BIG as f64 / 1024.0
    }
}

/// One fan-out size on one server.
#[derive(Debug, Clone, Copy)]
struct Fanout {
    /// Single broadcasts: latency p50, p99 (ms).
    p50: f64,
    p99: f64,
    /// Single broadcasts: send to last delivery, median over the rounds (ms).
    last: f64,
    /// Burst: broadcasts sent, delivered per second, latency p50 and p99 (ms).
    burst: usize,
    rate: f64,
    burst_p50: f64,
    burst_p99: f64,
    /// Server CPU time per delivery in the burst (µs).
    cpu_per_delivery: f64,
    /// Deliveries that never arrived (single and burst).
    missing: u64,
}

/// Times `ROUNDS` single broadcasts, then a burst, to the `n` subscribers reading into `rec`.
async fn fanout(server: &Server, publisher: &mut Publisher, rec: &Recorder, n: usize) -> Result<Fanout, Error> {
    let n64 = n as u64;
    let mut expected = rec.received();
    let mut missing = 0;
    let mut lasts = Vec::new();
    for round in 0..ROUNDS + 2 {
        if round == 2 {
            rec.take();
        }
        let sent = unix_us();
        publisher.send().await?;
        expected += n64;
        if !rec.wait_for(expected, Duration::from_secs(10)).await {
            missing += expected - rec.received();
            expected = rec.received();
        }
        if round >= 2 {
            lasts.push(rec.last_us().saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (p50, p99, _) = spread(rec.take());
    let (last, _, _) = spread(lasts);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let burst = (BURST_DELIVERIES / n).max(1);
    let (cpu0, start) = (server.cpu(), unix_us());
    publisher.send_burst(burst).await?;
    expected += n64 * burst as u64;
    if !rec.wait_for(expected, Duration::from_secs(60)).await {
        missing += expected - rec.received();
    }
    let cpu = server.cpu() - cpu0;
    let samples = rec.take();
    let delivered = samples.len() as f64;
    let elapsed = rec.last_us().saturating_sub(start).max(1) as f64 / 1e6;
    let (burst_p50, burst_p99, _) = spread(samples);
    Ok(Fanout {
        p50,
        p99,
        last,
        burst,
        rate: delivered / elapsed,
        burst_p50,
        burst_p99,
        cpu_per_delivery: cpu / delivered.max(1.0) * 1e6,
        missing,
    })
}

/// The broadcast cases on one server: memory at 10,000 idle joined sockets, then the fan-out
/// to those 10,000, then to 1,000 new ones.
async fn broadcasts(server: &Server, target: &Target, tokens: &[String]) -> Result<(Memory, Fanout, Fanout), Error> {
    // A few sockets first, so what the first socket starts (the project's state, buffers,
    // the runtime's workers) is in the baseline.
    {
        let rec = Arc::new(Recorder::default());
        let warm = client::open_many(target, 10, 10).await?;
        let _subs =
            client::join_many(warm, target, |i| broadcast_join("realtime:warm", &tokens[i]), Probe::SentUs, &rec, 10)
                .await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = server.rss();

    let started = Instant::now();
    let sockets = client::open_many(target, BIG, CONCURRENCY).await?;
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let upgraded = server.rss();
    let rec = Arc::new(Recorder::default());
    let started = Instant::now();
    let subs = client::join_many(
        sockets,
        target,
        |i| broadcast_join("realtime:room", &tokens[i]),
        Probe::SentUs,
        &rec,
        CONCURRENCY,
    )
    .await?;
    let joined_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let joined = server.rss();
    eprintln!(
        "  {BIG} sockets opened in {:.1} s and joined in {:.1} s; RSS {:.1} -> {:.1} -> {:.1} MiB",
        opened.as_secs_f64(),
        joined_in.as_secs_f64(),
        base as f64 / 1048576.0,
        upgraded as f64 / 1048576.0,
        joined as f64 / 1048576.0
    );
    let memory = Memory { base, upgraded, joined };

    let mut publisher = Publisher::start(target, &broadcast_join("realtime:room", &tokens[BIG])).await?;
    let big = fanout(server, &mut publisher, &rec, BIG).await?;
    drop(publisher);
    drop(subs);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let rec = Arc::new(Recorder::default());
    let sockets = client::open_many(target, SMALL, CONCURRENCY).await?;
    let subs = client::join_many(
        sockets,
        target,
        |i| broadcast_join("realtime:room-1k", &tokens[i]),
        Probe::SentUs,
        &rec,
        CONCURRENCY,
    )
    .await?;
    let mut publisher = Publisher::start(target, &broadcast_join("realtime:room-1k", &tokens[BIG])).await?;
    let small = fanout(server, &mut publisher, &rec, SMALL).await?;
    drop(publisher);
    drop(subs);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((memory, big, small))
}

/// CPU time of the database's processes (backends and background workers), in seconds.
async fn database_cpu(pool: &sqlx::PgPool) -> f64 {
    let pids: Vec<i32> =
        sqlx::query_scalar("select pid from pg_stat_activity").fetch_all(pool).await.unwrap_or_default();
    pids.iter().map(|p| server::cpu_of(*p as u32)).sum()
}

/// The postgres_changes case.
#[derive(Debug)]
struct Changes {
    p50: f64,
    p99: f64,
    max: f64,
    /// Per row: commit to first and to last delivery, medians over the rows (ms).
    first: f64,
    last: f64,
    missing: u64,
    /// What the subscriber who is not a member received (should be nothing).
    outsider: u64,
    server_cpu: f64,
    database_cpu: f64,
}

async fn insert_row(pool: &sqlx::PgPool) -> Result<(), Error> {
    sqlx::query("insert into public.feed (room, body) values (1, 'hello')").execute(pool).await?;
    Ok(())
}

/// One committed row at a time, to `RLS_USERS` subscribers of distinct users, plus one user
/// the policy keeps out.
async fn changes(server: &Server, target: &Target, pool: &sqlx::PgPool, tokens: &[String]) -> Result<Changes, Error> {
    let rec = Arc::new(Recorder::default());
    let started = Instant::now();
    let sockets = client::open_many(target, RLS_USERS, CONCURRENCY).await?;
    let subs = client::join_many(
        sockets,
        target,
        |i| changes_join("realtime:feed", &tokens[i]),
        Probe::CommitTimestamp,
        &rec,
        50,
    )
    .await?;
    let outsider_rec = Arc::new(Recorder::default());
    let mut outsider_ws = client::open(target).await?;
    client::join(&mut outsider_ws, target, &changes_join("realtime:feed", &tokens[BIG])).await?;
    let outsider = client::read(outsider_ws, target, Probe::CommitTimestamp, outsider_rec.clone());
    eprintln!("  {RLS_USERS} postgres_changes subscribers joined in {:.1} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let n = RLS_USERS as u64;
    let mut expected = 0;
    let mut missing = 0;
    let (mut firsts, mut lasts, mut all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu0, mut db0) = (0.0, 0.0);
    for round in 0..CHANGE_ROUNDS + 2 {
        if round == 2 {
            // The pools are open now: their backends are counted.
            (cpu0, db0) = (server.cpu(), database_cpu(pool).await);
        }
        insert_row(pool).await?;
        expected += n;
        if !rec.wait_for(expected, Duration::from_secs(20)).await {
            missing += expected - rec.received();
            expected = rec.received();
        }
        let mut samples = rec.take();
        samples.sort_unstable();
        if round >= 2 {
            firsts.push(samples.first().copied().unwrap_or(0));
            lasts.push(samples.last().copied().unwrap_or(0));
            all.extend(samples);
        }
        // Apart, so that each row is a batch of its own.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (server_cpu, database_cpu) = (server.cpu() - cpu0, database_cpu(pool).await - db0);
    let (p50, p99, max) = spread(all);
    let (first, _, _) = spread(firsts);
    let (last, _, _) = spread(lasts);
    let outsider_got = outsider_rec.received();
    drop(outsider);
    drop(subs);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Changes { p50, p99, max, first, last, missing, outsider: outsider_got, server_cpu, database_cpu })
}

/// The sustained case.
#[derive(Debug)]
struct Sustained {
    rows: u64,
    seconds: f64,
    /// Deliveries per second while the writer wrote, and until the last one arrived.
    rate_during: f64,
    rate_overall: f64,
    p50: f64,
    p99: f64,
    max: f64,
    /// From the writer's stop to the last delivery (s).
    drain: f64,
    missing: u64,
    server_cpu: f64,
    database_cpu: f64,
}

/// One writer inserting rows one by one for `seconds`, to `SUSTAINED_USERS` subscribers.
async fn sustained(
    server: &Server,
    target: &Target,
    db: &forge_core::testing::TestDb,
    tokens: &[String],
    seconds: u64,
) -> Result<Sustained, Error> {
    let rec = Arc::new(Recorder::default());
    let sockets = client::open_many(target, SUSTAINED_USERS, CONCURRENCY).await?;
    let subs = client::join_many(
        sockets,
        target,
        |i| changes_join("realtime:feed-100", &tokens[i]),
        Probe::CommitTimestamp,
        &rec,
        50,
    )
    .await?;
    let writer = sqlx::PgPool::connect(db.url()).await?;
    insert_row(&writer).await?;
    let n = SUSTAINED_USERS as u64;
    rec.wait_for(n, Duration::from_secs(20)).await;
    rec.take();
    let before = rec.received();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (cpu0, db0) = (server.cpu(), database_cpu(db.pool()).await);
    let start = unix_us();
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut rows = 0u64;
    while Instant::now() < until {
        insert_row(&writer).await?;
        rows += 1;
    }
    let stop = unix_us();
    let during = rec.received() - before;
    let expected = before + rows * n;
    let missing = if rec.wait_for(expected, Duration::from_secs(60)).await { 0 } else { expected - rec.received() };
    let (server_cpu, database_cpu) = (server.cpu() - cpu0, database_cpu(db.pool()).await - db0);
    let delivered = (rec.received() - before) as f64;
    let last = rec.last_us();
    let (p50, p99, max) = spread(rec.take());
    drop(subs);
    let secs = (stop - start) as f64 / 1e6;
    Ok(Sustained {
        rows,
        seconds: secs,
        rate_during: during as f64 / secs,
        rate_overall: delivered / (last.saturating_sub(start).max(1) as f64 / 1e6),
        p50,
        p99,
        max,
        drain: last.saturating_sub(stop) as f64 / 1e6,
        missing,
        server_cpu,
        database_cpu,
    })
}

fn yes(met: bool) -> &'static str {
    if met { "**met**" } else { "**not met**" }
}

async fn bench(seconds: u64, only: &str) -> Result<(), Error> {
    eprintln!("setting up: private Postgres, the realtime schema, {RLS_USERS} members, {} tokens", BIG + 1);
    let db = forge_core::testing::test_db().await;
    forge_core::migrate::run(db.pool(), &[forge_realtime::MIGRATIONS]).await?;
    sqlx::raw_sql(SCHEMA).execute(db.pool()).await?;
    sqlx::query("insert into public.members select 1, ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid from generate_series(0, $1 - 1) g")
        .bind(RLS_USERS as i32)
        .execute(db.pool())
        .await?;
    sqlx::raw_sql("analyze").execute(db.pool()).await?;
    let keys = server::keys()?;
    // User BIG is the publisher, and the outsider of the postgres_changes case.
    let tokens: Vec<String> = (0..=BIG).map(|i| token(&keys, i)).collect::<Result<_, _>>()?;

    let mut broadcast = None;
    if only != "changes" {
        eprintln!("ceiling: hand-written tokio-tungstenite fan-out");
        let ceiling = Server::spawn(&["serve-ceiling"]).await?;
        let target = Target::Ceiling { addr: ceiling.addr };
        let c = broadcasts(&ceiling, &target, &tokens).await?;
        ceiling.stop().await;
        broadcast = Some(c);
    }
    eprintln!("forge-realtime");
    let forge = Server::spawn(&["serve-forge", db.url(), db.gateway_url()]).await?;
    eprintln!("  server pid {}", forge.pid);
    let target = Target::Forge { addr: forge.addr, anon_key: keys.anon_key().to_owned() };
    if let Some(c) = broadcast {
        let f = broadcasts(&forge, &target, &tokens).await?;
        print_broadcasts(f, c);
    }
    if only != "broadcast" {
        eprintln!("postgres_changes: {RLS_USERS} users under RLS");
        let ch = changes(&forge, &target, db.pool(), &tokens).await?;
        eprintln!("sustained: {SUSTAINED_USERS} users, one writer for {seconds} s");
        let su = sustained(&forge, &target, &db, &tokens, seconds).await?;
        print_changes(&ch, &su, only == "changes");
    }
    forge.stop().await;
    Ok(())
}

fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

fn header() {
    println!();
    println!("| case | figure | forge-realtime | ceiling | ratio | target | |");
    println!("|---|---|---:|---:|---:|---|---|");
}

type Broadcasts = (Memory, Fanout, Fanout);

fn print_broadcasts((f_mem, f_big, f_small): Broadcasts, (c_mem, c_big, c_small): Broadcasts) {
    header();
    let per = f_mem.per_socket();
    println!(
        "| 10,000 idle sockets, each joined to one channel | RSS per socket | {per:.1} KiB | {:.1} KiB | {:.2}x | < 16 KiB | {} |",
        c_mem.per_socket(),
        per / c_mem.per_socket(),
        yes(per < 16.0)
    );
    println!(
        "| | of which the WebSocket upgrade / the join | {:.1} / {:.1} KiB | {:.1} / {:.1} KiB | | | |",
        f_mem.upgrade_share(),
        f_mem.join_share(),
        c_mem.upgrade_share(),
        c_mem.join_share()
    );
    for (n, f, c) in [(SMALL, f_small, c_small), (BIG, f_big, c_big)] {
        let label = if n == BIG { "10,000" } else { "1,000" };
        let (target_p99, target_rate) = if n == BIG { ("< 100 ms", "≥ 0.8x") } else { ("", "") };
        println!("| one broadcast to {label} | p50 latency | {} | {} | | | |", ms(f.p50), ms(c.p50));
        let met = if n == BIG { yes(f.p99 < 100.0) } else { "" };
        println!("| | p99 latency | {} | {} | | {target_p99} | {met} |", ms(f.p99), ms(c.p99));
        println!("| | send to last delivery (median of {ROUNDS}) | {} | {} | | | |", ms(f.last), ms(c.last));
        let ratio = f.rate / c.rate;
        let met = if n == BIG { yes(ratio >= 0.8) } else { "" };
        println!(
            "| | delivered/s, burst of {} broadcasts | {:.0} | {:.0} | {ratio:.2}x | {target_rate} | {met} |",
            f.burst, f.rate, c.rate
        );
        println!(
            "| | burst latency p50 / p99 | {:.1} / {:.1} ms | {:.1} / {:.1} ms | | | |",
            f.burst_p50, f.burst_p99, c.burst_p50, c.burst_p99
        );
        println!(
            "| | server CPU per delivery (burst) | {:.2} µs | {:.2} µs | {:.2}x | | |",
            f.cpu_per_delivery,
            c.cpu_per_delivery,
            f.cpu_per_delivery / c.cpu_per_delivery
        );
        if f.missing + c.missing > 0 {
            println!("| | deliveries missing | {} | {} | | | |", f.missing, c.missing);
        }
    }
}

fn print_changes(ch: &Changes, su: &Sustained, header_first: bool) {
    if header_first {
        header();
    }
    println!("| one committed row to {RLS_USERS} users under RLS | commit to delivery p50 | {} | | | | |", ms(ch.p50));
    println!("| | p99 (max {}) | {} | | | < 250 ms | {} |", ms(ch.max), ms(ch.p99), yes(ch.p99 < 250.0));
    println!(
        "| | commit to first / last delivery (median of {CHANGE_ROUNDS} rows) | {} / {} | | | | |",
        ms(ch.first),
        ms(ch.last)
    );
    println!(
        "| | CPU per row: server / database | {:.1} / {:.1} ms | | | | |",
        ch.server_cpu / CHANGE_ROUNDS as f64 * 1e3,
        ch.database_cpu / CHANGE_ROUNDS as f64 * 1e3
    );
    println!("| | missing / received by a non-member | {} / {} | | | 0 / 0 | |", ch.missing, ch.outsider);
    println!(
        "| sustained, {SUSTAINED_USERS} users under RLS, one writer for {:.0} s | rows committed/s | {:.0} | | | | |",
        su.seconds,
        su.rows as f64 / su.seconds
    );
    println!(
        "| | delivered/s while writing / until the last | {:.0} / {:.0} | | | | |",
        su.rate_during, su.rate_overall
    );
    println!("| | lag p50 / p99 / max | {:.0} / {:.0} / {:.0} ms | | | | |", su.p50, su.p99, su.max);
    println!("| | last delivery after the writer stopped | {:.2} s | | | | |", su.drain);
    println!(
        "| | CPU per row: server / database | {:.2} / {:.2} ms | | | | |",
        su.server_cpu / su.rows.max(1) as f64 * 1e3,
        su.database_cpu / su.rows.max(1) as f64 * 1e3
    );
    if su.missing > 0 {
        println!("| | deliveries missing | {} | | | | |", su.missing);
    }
}
