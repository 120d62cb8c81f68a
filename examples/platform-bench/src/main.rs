//! Run with `cargo run --release -p example-platform-bench` (optionally `-- <projects> <seconds>
//! <connections>`, default `1000 10 64`), after `cargo build --release -p forge-server`.
//!
//! The multi-project platform of the release `forge-server` binary (`FORGE_BIN`, default
//! `target/release/forge-server`), driven through its Management API, from the outside. One
//! data directory, the server restarted with other settings for each phase:
//!
//! 1. **Creation:** N projects created one after another (`POST /v1/projects`): p50, p99 and
//!    max latency; for comparison, `create database … template` alone, as the superuser.
//! 2. **N projects, 50 active, within a budget of 100 connections**, with the default pool
//!    size (2 per project, so 50 projects open at once) and with a pool of 5 (20 open): every
//!    project used once (`GET /p/{ref}/rest/v1/`), then load round-robin over 50 of them
//!    (`GET /p/{ref}/rest/v1/items?id=eq.K`); the peak of connections to project databases
//!    (`pg_stat_activity`, every 20 ms), the server's resident memory (`VmRSS`) idle and
//!    under load, and the load's requests per second.
//! 3. **A cold project's first request:** projects never opened by this server process, then
//!    the same projects again after their pools were closed by the idle timeout (2 s): the
//!    first `GET /p/{ref}/rest/v1/items?id=eq.1`, against the same request once warm.
//! 4. **Metering overhead:** the default project's `GET /rest/v1/t?id=eq.N` (10,000 rows) at
//!    64 connections, the server alternately with metering on and off (8 runs: on, off, off,
//!    on, on, off, off, on; restarted between runs on the same data), the overhead being the
//!    mean on against the mean off; and, since a 2% effect is below this machine's run-to-run
//!    noise, the meter's own cost measured in this process (the same small answer through the
//!    project layer with and without it, 600,000 requests each), as a share of the server CPU
//!    a GET took in the runs above.

mod http;
mod layer;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Conn, Outcome};
use serde_json::{Value, json};
use server::{Setup, Watcher};
use sqlx::Connection as _;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Projects loaded round-robin in phase 2.
const ACTIVE: usize = 50;
/// Projects whose first request is timed in phase 3 (each twice: never opened, and after the idle close).
const COLD: usize = 60;
/// The connection budget of phase 2.
const BUDGET: &str = "100";
/// Clones of the template timed directly, as the superuser.
const CLONES: usize = 10;
/// Of which with `strategy file_copy`.
const FILE_COPIES: usize = 5;
/// Metering runs, alternated on, off, off, on, ... (ABBA cancels a linear drift).
const METERING_RUNS: usize = 8;
/// Databases connected to directly, as the superuser, in phase 3.
const PG_PROBES: usize = 10;

#[derive(Debug, Clone)]
struct Project {
    reference: String,
    anon: String,
}

/// The nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p99 and max of latencies in µs, as milliseconds.
fn spread(mut us: Vec<u32>) -> (f64, f64, f64) {
    us.sort_unstable();
    let ms = |v: u32| f64::from(v) / 1000.0;
    (ms(percentile(&us, 50.0)), ms(percentile(&us, 99.0)), ms(us.last().copied().unwrap_or(0)))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**not met**" }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A Management API call with the bearer token; the JSON answer, or an error for a status
/// other than `expect`.
async fn api(
    conn: &mut Conn,
    bearer: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    expect: u16,
) -> Result<Value, Error> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, text) = conn.call(method, path, &[("authorization", bearer)], &body).await?;
    if status != expect {
        return Err(format!("{method} {path}: {status} {text}").into());
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Samples the server's RSS and Postgres's PSS every 500 ms until stopped; the maxima.
fn sample_memory(setup: &Setup, pid: u32) -> (Arc<AtomicBool>, tokio::task::JoinHandle<(u64, u64)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let setup = setup.clone();
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let (mut rss, mut pss) = (0, 0);
        while !flag.load(Ordering::Relaxed) {
            rss = rss.max(rss_of(pid));
            let s = setup.clone();
            pss = pss.max(tokio::task::spawn_blocking(move || s.postgres_pss_kib()).await.unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        (rss, pss)
    });
    (stop, task)
}

/// A process's CPU time (user and system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // After the command: state is field 3, utime 14 and stime 15 (1-based, in the whole line).
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Phase 2's figures for one pool size.
#[derive(Debug)]
struct Many {
    pool: usize,
    budget: usize,
    rss_start: u64,
    rss_after_pass: u64,
    rss_load: u64,
    pss_load: u64,
    peak_pass: i64,
    peak_load: i64,
    pass: (f64, f64, f64),
    pass_errors: usize,
    pass_time: Duration,
    load: Outcome,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000).max(1);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let connections: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let duration = Duration::from_secs(seconds);
    let bin = PathBuf::from(std::env::var("FORGE_BIN").unwrap_or_else(|_| "target/release/forge-server".into()));
    if !server::exists(&bin) {
        return Err(
            format!("{} not found: cargo build --release -p forge-server (or set FORGE_BIN)", bin.display()).into()
        );
    }
    let bin = bin.canonicalize()?;
    let tmp = tempfile::tempdir()?;
    let setup = Setup { bin, dir: tmp.path().to_path_buf() };
    let load_before = loadavg();
    let begun = Instant::now();
    eprintln!(
        "platform-bench: {n} projects, {seconds} s loads at {connections} connections; load average {load_before}"
    );

    // 1. Creation.
    let s =
        setup.start("create", &[("FORGE_PROJECT_CONNECTION_BUDGET", BUDGET), ("FORGE_PROJECT_IDLE_TIMEOUT", "2")])?;
    eprintln!("server up in {:?} (pid {})", s.started_in, s.pid());
    let rss_empty = s.rss_kib();
    let bearer = format!("Bearer {}", setup.token("bench@example.com")?);
    // The template's clone alone, as the superuser, for comparison: before any project.
    let mut admin = sqlx::PgConnection::connect(&setup.admin_url("postgres")).await?;
    let clones_before = clone_probe(&mut admin, CLONES, "").await?;
    let _ = admin.close().await;
    let mut conn = Conn::open(s.addr).await?;
    let mut projects = Vec::with_capacity(n);
    let mut created_us = Vec::with_capacity(n);
    let creation_started = Instant::now();
    for i in 0..n {
        let body = json!({ "name": format!("bench {i}"), "organization_id": "default" });
        let t = Instant::now();
        let made = api(&mut conn, &bearer, "POST", "/v1/projects", Some(body), 201).await?;
        created_us.push(t.elapsed().as_micros() as u32);
        let reference = made["ref"].as_str().ok_or("no ref")?.to_owned();
        let keys = api(&mut conn, &bearer, "GET", &format!("/v1/projects/{reference}/api-keys?reveal=true"), None, 200)
            .await?;
        let anon = keys
            .as_array()
            .and_then(|k| k.iter().find(|k| k["kind"] == "legacy_anon"))
            .and_then(|k| k["api_key"].as_str())
            .ok_or("no anon key")?
            .to_owned();
        projects.push(Project { reference, anon });
        if (i + 1) % 100 == 0 {
            eprintln!("  {} projects created ({:?})", i + 1, creation_started.elapsed());
        }
    }
    let creation_time = creation_started.elapsed();
    let rss_created = s.rss_kib();
    let creation = spread(created_us);

    // After: a checkpoint (which the creations' WAL made big), then the clones again.
    let mut admin = sqlx::PgConnection::connect(&setup.admin_url("postgres")).await?;
    eprintln!("checkpoint after {n} creations");
    let t = Instant::now();
    sqlx::raw_sql("checkpoint").execute(&mut admin).await?;
    let checkpoint_time = t.elapsed();
    let clones_after = clone_probe(&mut admin, CLONES, "").await?;
    let file_copy = clone_probe(&mut admin, FILE_COPIES, " strategy file_copy").await?;
    let template_size: i64 =
        sqlx::query_scalar("select pg_database_size('forge_platform_template')").fetch_one(&mut admin).await?;
    let _ = admin.close().await;

    // Tables: `items` in the first projects (phases 2 and 3), `t` in the default one (phase 4).
    let tabled = n.min(ACTIVE.max(COLD));
    eprintln!("creating tables in {tabled} projects and the default one");
    let items = "create table items (id int primary key, name text not null); \
                 insert into items select g, 'item ' || g from generate_series(1, 100) g; \
                 grant select on items to anon";
    for p in &projects[..tabled] {
        let path = format!("/v1/projects/{}/database/query", p.reference);
        api(&mut conn, &bearer, "POST", &path, Some(json!({ "query": items })), 200).await?;
    }
    let t = "create table t (id int primary key, v text not null); \
             insert into t select g, md5(g::text) from generate_series(1, 10000) g; \
             grant select on t to anon; analyze t";
    api(&mut conn, &bearer, "POST", "/v1/projects/default/database/query", Some(json!({ "query": t })), 200).await?;
    drop(conn);
    s.stop();

    // 2. N projects, 50 active, a budget of 100 connections.
    let active = &projects[..n.min(ACTIVE)];
    let mut many = Vec::new();
    // The default pool (2: 50 projects open at once) and a pool of 5 (20 open).
    for (pool, budget) in [(2usize, 100usize), (5, 100)] {
        many.push(many_projects(&setup, &projects, active, pool, budget, duration, connections).await?);
    }

    // 3. Cold first requests.
    let cold_sample = &projects[..n.min(COLD)];
    let s = setup.start("cold", &[("FORGE_PROJECT_CONNECTION_BUDGET", BUDGET), ("FORGE_PROJECT_IDLE_TIMEOUT", "2")])?;
    let watcher = Watcher::start(&setup.admin_url("postgres")).await?;
    // Postgres's share: a plain connection and `select 1` to databases no one has connected to
    // since it started, then again (projects outside the sample).
    let (mut pg_first, mut pg_again) = (Vec::new(), Vec::new());
    for p in projects.iter().skip(COLD).take(PG_PROBES) {
        let url = setup.admin_url(&format!("forge_platform_{}", p.reference));
        for times in [&mut pg_first, &mut pg_again] {
            let t = Instant::now();
            let mut c = sqlx::PgConnection::connect(&url).await?;
            sqlx::query("select 1").execute(&mut c).await?;
            times.push(t.elapsed().as_micros() as u32);
            let _ = c.close().await;
        }
    }
    let (pg_first, pg_again) = (spread(pg_first), spread(pg_again));
    eprintln!("cold first requests: {} projects never opened by this server", cold_sample.len());
    let (never_opened, warm_1) = first_requests(s.addr, cold_sample).await?;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let open_left = watcher.current();
    eprintln!("  the same after the idle close (connections to project databases left: {open_left})");
    let (after_idle, warm_2) = first_requests(s.addr, cold_sample).await?;
    watcher.stop().await;
    s.stop();
    let cold_never = spread(never_opened);
    let cold_idle = spread(after_idle);
    let warm = spread([warm_1, warm_2].concat());

    // 4. Metering overhead: on, off, off, on, on, off, off, on.
    let mut runs = Vec::new();
    let mut cpu_per_request = Vec::new();
    for i in 0..METERING_RUNS {
        let on_now = matches!(i % 4, 0 | 3);
        let (label, on) = if on_now { ("on", "true") } else { ("off", "false") };
        let s = setup.start(&format!("metering-{label}-{}", runs.len()), &[("FORGE_USAGE_METERING", on)])?;
        let requests: Vec<Vec<u8>> = (0..1000)
            .map(|k| {
                let id = (k * 7919) % 10_000 + 1;
                http::request("GET", &format!("/rest/v1/t?id=eq.{id}"), &[("apikey", &s.anon_key)], "")
            })
            .collect();
        let requests = Arc::new(requests);
        let (status, body) = Conn::open(s.addr).await?.exchange(&requests[0]).await?;
        if status != 200 || !String::from_utf8_lossy(&body).contains("\"id\"") {
            return Err(format!("default project GET: {status} {}", String::from_utf8_lossy(&body)).into());
        }
        http::run(s.addr, requests.clone(), connections, Duration::from_secs(2)).await;
        let cpu_before = cpu_seconds(s.pid());
        let outcome = http::run(s.addr, requests, connections, duration).await;
        let cpu = cpu_seconds(s.pid()) - cpu_before;
        let cpu_us = cpu * 1e6 / (outcome.rps * duration.as_secs_f64()).max(1.0);
        eprintln!(
            "  metering {label}: {:.0} req/s, p99 {:.2} ms, {} errors, server CPU {cpu_us:.1} µs per request",
            outcome.rps, outcome.p99_ms, outcome.errors
        );
        runs.push((on == "true", outcome));
        cpu_per_request.push((on == "true", cpu_us));
        s.stop();
    }
    let mean = |on: bool| {
        let v: Vec<f64> = runs.iter().filter(|(o, _)| *o == on).map(|(_, r)| r.rps).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (rps_on, rps_off) = (mean(true), mean(false));
    let cpu_mean = |on: bool| {
        let v: Vec<f64> = cpu_per_request.iter().filter(|(o, _)| *o == on).map(|(_, c)| *c).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (cpu_on, cpu_off) = (cpu_mean(true), cpu_mean(false));
    let overhead = (rps_off - rps_on) / rps_off * 100.0;
    // Each pair of consecutive runs is one on and one off.
    let pair_overheads: Vec<f64> = runs
        .chunks(2)
        .filter_map(|pair| {
            let on = pair.iter().find(|(o, _)| *o)?.1.rps;
            let off = pair.iter().find(|(o, _)| !*o)?.1.rps;
            Some((off - on) / off * 100.0)
        })
        .collect();

    // 4b. The meter's own cost, in this process, against this run's server CPU per GET.
    let (layer_off_ns, layer_on_ns) = layer::cost().await?;
    let layer_extra_us = (layer_on_ns - layer_off_ns) / 1000.0;
    let layer_share = layer_extra_us / cpu_off * 100.0;
    eprintln!(
        "  meter alone: {layer_off_ns:.0} ns per request without, {layer_on_ns:.0} ns with: {layer_extra_us:.2} µs, {layer_share:.2}% of a GET's {cpu_off:.1} µs of server CPU"
    );

    // The report.
    let load_after = loadavg();
    let fmt3 = |(a, b, c): (f64, f64, f64)| format!("{a:.1} / {b:.1} / {c:.1} ms");
    println!();
    println!(
        "Platform benchmark: {n} projects; loads of {seconds} s at {connections} connections; {} in all; \
         load average {load_before} before, {load_after} after.",
        fmt_duration(begun.elapsed())
    );
    println!();
    println!("| case | figure | value | target | |");
    println!("|---|---|---:|---|---|");
    println!(
        "| 1. creation, {n} projects one after another | `POST /v1/projects` p50 / p99 / max | {} | p50 < 1 s | {} |",
        fmt3(creation),
        verdict(creation.0 < 1000.0)
    );
    println!("| | all {n} (with a key listing each) | {} | | |", fmt_duration(creation_time));
    println!(
        "| | `create database … template` alone ({CLONES}), before any project: p50 / p99 / max | {} | | |",
        fmt3(clones_before.create)
    );
    println!("| | `checkpoint` right after the {n} creations | {} | | |", fmt_duration(checkpoint_time));
    println!(
        "| | `create database … template` alone ({CLONES}), after them and the checkpoint: p50 / p99 / max | {} | | |",
        fmt3(clones_after.create)
    );
    println!(
        "| | `drop database` of such a clone, before / after: p50 | {:.1} / {:.1} ms | | |",
        clones_before.drop.0, clones_after.drop.0
    );
    println!(
        "| | `create database … strategy file_copy` ({FILE_COPIES}), after: p50 / p99 / max | {} | | |",
        fmt3(file_copy.create)
    );
    println!(
        "| | template database size; WAL written per clone | {}; {} | | |",
        mib(template_size as u64 / 1024),
        mib(clones_before.wal_bytes as u64 / 1024)
    );
    println!("| | server RSS: no project / {n} created | {} / {} | | |", mib(rss_empty), mib(rss_created));
    let mut peak_all = 0;
    for m in &many {
        let open = m.budget / m.pool;
        if m.budget == 100 {
            peak_all = peak_all.max(m.peak_pass).max(m.peak_load);
        }
        println!(
            "| 2. {n} projects, {} active, budget {}, pool {} ({open} open at most) | peak connections to project databases: every project used once / {} active under load | {} / {} | ≤ {} | {} |",
            active.len(),
            m.budget,
            m.pool,
            active.len(),
            m.peak_pass,
            m.peak_load,
            m.budget,
            verdict(m.peak_pass.max(m.peak_load) <= m.budget as i64)
        );
        println!(
            "| | every project used once (4 at a time): first request p50 / p99 / max; all; non-2xx | {}; {}; {} | | |",
            fmt3(m.pass),
            fmt_duration(m.pass_time),
            m.pass_errors
        );
        println!(
            "| | {} active round-robin: req/s; p50 / p99; non-2xx | {:.0}; {:.2} / {:.2} ms; {} | | |",
            active.len(),
            m.load.rps,
            m.load.p50_ms,
            m.load.p99_ms,
            m.load.errors
        );
        println!(
            "| | server RSS: started / idle after all used once / under load (max) | {} / {} / {} | | |",
            mib(m.rss_start),
            mib(m.rss_after_pass),
            mib(m.rss_load)
        );
        println!("| | Postgres PSS under load (max) | {} | | |", mib(m.pss_load));
    }
    let cold_met = cold_never.1 < 100.0 && cold_idle.1 < 100.0;
    println!(
        "| 3. cold project, first `GET /p/{{ref}}/rest/v1/items?id=eq.1` | never opened by this server ({}): p50 / p99 / max | {} | < 100 ms (p99) | {} |",
        cold_sample.len(),
        fmt3(cold_never),
        verdict(cold_met)
    );
    println!("| | after the idle close ({}): p50 / p99 / max | {} | | |", cold_sample.len(), fmt3(cold_idle));
    println!("| | the same request warm (baseline): p50 / p99 / max | {} | | |", fmt3(warm));
    if n > COLD {
        println!(
            "| | Postgres alone: connect + `select 1` to a database, first since its start / again, p50 / p99 / max ({}) | {}; {} | | |",
            PG_PROBES.min(n - COLD),
            fmt3(pg_first),
            fmt3(pg_again)
        );
    }
    println!("| | cold p50 / warm p50 | {:.1}x | | |", if warm.0 > 0.0 { cold_never.0 / warm.0 } else { 0.0 });
    let per_run: Vec<String> =
        runs.iter().map(|(on, r)| format!("{} {:.0}", if *on { "on" } else { "off" }, r.rps)).collect();
    println!(
        "| 4. metering, default project `GET /rest/v1/t?id=eq.N`, runs on, off, off, on, ... | req/s per run | {} | | |",
        per_run.join(", ")
    );
    println!("| | req/s on / off (means); ratio | {rps_on:.0} / {rps_off:.0}; {:.3}x | | |", rps_on / rps_off);
    let p99: Vec<String> = runs.iter().map(|(_, r)| format!("{:.2}", r.p99_ms)).collect();
    println!("| | p99 per run | {} ms | | |", p99.join(", "));
    let pairs: Vec<String> = pair_overheads.iter().map(|o| format!("{o:.1}%")).collect();
    println!("| | overhead of each on/off pair | {} | | |", pairs.join(", "));
    let cpus: Vec<String> = cpu_per_request.iter().map(|(_, c)| format!("{c:.1}")).collect();
    println!("| | server CPU per request, per run | {} µs | | |", cpus.join(", "));
    println!(
        "| | server CPU per request on / off (means); extra | {cpu_on:.1} / {cpu_off:.1} µs; {:+.1}% | | |",
        (cpu_on - cpu_off) / cpu_off * 100.0
    );
    println!("| | overhead (req/s, means; within the machine's noise) | {overhead:.1}% | | |");
    println!(
        "| | the meter alone, in process: per request without / with; extra | {layer_off_ns:.0} / {layer_on_ns:.0} ns; {layer_extra_us:.2} µs | | |"
    );
    println!(
        "| | the meter's extra against the server CPU of a GET (off) | {layer_share:.2}% of {cpu_off:.1} µs | < 2% | {} |",
        verdict(layer_share < 2.0)
    );
    println!();
    println!(
        "Targets: creation p50 < 1 s {}; {n} projects within {BUDGET} connections (peak {peak_all}) {}; cold first request p99 < 100 ms {}; metering overhead < 2% {}.",
        verdict(creation.0 < 1000.0),
        verdict(peak_all <= 100),
        verdict(cold_met),
        verdict(layer_share < 2.0)
    );
    Ok(())
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 { format!("{}:{:04.1} min", (s / 60.0) as u64, s % 60.0) } else { format!("{s:.1} s") }
}

/// Clones of the template as the superuser, each dropped at once.
#[derive(Debug)]
struct Clones {
    create: (f64, f64, f64),
    drop: (f64, f64, f64),
    wal_bytes: f64,
}

async fn clone_probe(admin: &mut sqlx::PgConnection, count: usize, strategy: &str) -> Result<Clones, Error> {
    let (mut create, mut drop, mut wal_bytes) = (Vec::new(), Vec::new(), 0f64);
    for i in 0..count {
        let before: String =
            sqlx::query_scalar("select pg_current_wal_insert_lsn()::text").fetch_one(&mut *admin).await?;
        let t = Instant::now();
        let sql = format!("create database forge_bench_probe_{i} template forge_platform_template{strategy}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *admin).await?;
        create.push(t.elapsed().as_micros() as u32);
        let wal: f64 =
            sqlx::query_scalar("select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::text::pg_lsn)::float8")
                .bind(&before)
                .fetch_one(&mut *admin)
                .await?;
        wal_bytes += wal / count as f64;
        let t = Instant::now();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop database forge_bench_probe_{i}"))).execute(&mut *admin).await?;
        drop.push(t.elapsed().as_micros() as u32);
    }
    Ok(Clones { create: spread(create), drop: spread(drop), wal_bytes })
}

/// Phase 2 for one pool size.
async fn many_projects(
    setup: &Setup,
    projects: &[Project],
    active: &[Project],
    pool: usize,
    budget: usize,
    duration: Duration,
    connections: usize,
) -> Result<Many, Error> {
    let (pool_text, budget_text) = (pool.to_string(), budget.to_string());
    let s = setup.start(
        &format!("many-pool{pool}-budget{budget}"),
        &[("FORGE_PROJECT_CONNECTION_BUDGET", &budget_text), ("FORGE_PROJECT_POOL_SIZE", &pool_text)],
    )?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_start = s.rss_kib();
    let watcher = Watcher::start(&setup.admin_url("postgres")).await?;

    // Every project used once, four at a time.
    eprintln!("pool {pool}, budget {budget}: every one of {} projects used once", projects.len());
    let started = Instant::now();
    let (latencies, errors) = use_each_once(s.addr, projects, 4).await?;
    let pass_time = started.elapsed();
    let peak_pass = watcher.take_peak();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_pass = s.rss_kib();

    // The active ones under load.
    let mut requests = Vec::new();
    for k in 1..=10 {
        for p in active {
            requests.push(http::request(
                "GET",
                &format!("/p/{}/rest/v1/items?id=eq.{k}", p.reference),
                &[("apikey", &p.anon)],
                "",
            ));
        }
    }
    let requests = Arc::new(requests);
    eprintln!("pool {pool}, budget {budget}: {} active projects round-robin, {connections} connections", active.len());
    let _ = watcher.take_peak();
    let (stop, sampler) = sample_memory(setup, s.pid());
    let load = http::run(s.addr, requests, connections, duration).await;
    stop.store(true, Ordering::Relaxed);
    let (rss_load, pss_load) = sampler.await.unwrap_or((0, 0));
    let peak_load = watcher.stop().await;
    eprintln!(
        "  {:.0} req/s, p99 {:.2} ms, {} non-2xx (first: {}); peak connections {peak_pass} / {peak_load}",
        load.rps,
        load.p99_ms,
        load.errors,
        load.first_error.as_deref().unwrap_or("-")
    );
    s.stop();
    Ok(Many {
        pool,
        budget,
        rss_start,
        rss_after_pass,
        rss_load,
        pss_load,
        peak_pass,
        peak_load,
        pass: spread(latencies),
        pass_errors: errors,
        pass_time,
        load,
    })
}

/// `GET /p/{ref}/rest/v1/` once for every project, `parallel` at a time: the latencies, and how
/// many answers were not 2xx.
async fn use_each_once(addr: SocketAddr, projects: &[Project], parallel: usize) -> Result<(Vec<u32>, usize), Error> {
    let next = Arc::new(AtomicU64::new(0));
    let projects: Arc<Vec<Project>> = Arc::new(projects.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (next, projects) = (next.clone(), projects.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(p) = projects.get(i) else { break };
                let t = Instant::now();
                let (status, _) =
                    conn.call("GET", &format!("/p/{}/rest/v1/", p.reference), &[("apikey", &p.anon)], "").await?;
                latencies.push(t.elapsed().as_micros() as u32);
                if status / 100 != 2 {
                    errors += 1;
                }
            }
            Ok::<_, std::io::Error>((latencies, errors))
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    Ok((all, errors))
}

/// For each project in turn: its first request, timed, then the same request again (warm),
/// 100 ms apart from the next project's.
async fn first_requests(addr: SocketAddr, projects: &[Project]) -> Result<(Vec<u32>, Vec<u32>), Error> {
    let mut conn = Conn::open(addr).await?;
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for p in projects {
        let path = format!("/p/{}/rest/v1/items?id=eq.1", p.reference);
        let headers = [("apikey", p.anon.as_str())];
        // A request of the server's own first, so the connection is surely live.
        conn.call("GET", "/health", &[], "").await?;
        let t = Instant::now();
        let (status, body) = conn.call("GET", &path, &headers, "").await?;
        cold.push(t.elapsed().as_micros() as u32);
        if status != 200 {
            return Err(format!("{path}: {status} {body}").into());
        }
        let t = Instant::now();
        let (status, _) = conn.call("GET", &path, &headers, "").await?;
        warm.push(t.elapsed().as_micros() as u32);
        if status != 200 {
            return Err(format!("{path}: {status} (warm)").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((cold, warm))
}
