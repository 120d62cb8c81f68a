//! The database's share on its own: the same one-row read sent straight through forge-core's
//! RLS gateway (`rls::query_once`), with no HTTP, no JWT and no REST planner, as anon or as a
//! user with the sign-in token's claims.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::{Method, Request};
use forge_core::rls::{self, RequestContext};
use forge_core::{Claims, Database, Principal};

use crate::load::Outcome;

/// One kind of read: who asks, and the statements, sent in turn.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    ctx: RequestContext,
    statements: Arc<Vec<String>>,
}

impl Read {
    /// Reads of `table` rows by id, as `principal`, with the settings forge-data sends for a
    /// request with `headers` (`request.headers` included) and its `search_path`.
    pub(crate) fn new(
        principal: Principal,
        table: &str,
        ids: &[i64],
        headers: &[(String, String)],
    ) -> Result<Self, axum::http::Error> {
        let mut request = Request::builder().method(Method::GET).uri(format!("/rest/v1/{table}"));
        for (name, value) in [("host", "bench"), ("content-length", "0")] {
            request = request.header(name, value);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let (parts, ()) = request.body(())?.into_parts();
        let ctx =
            RequestContext::from_parts(&parts, principal).with_setting("search_path", "\"public\", \"extensions\"");
        // Literal ids (one cached statement each), as the ids are ours, not user input.
        let statements = ids
            .iter()
            .map(|id| {
                format!("select coalesce(json_agg(t), '[]')::text from (select * from {table} where id = {id}) t")
            })
            .collect();
        Ok(Self { ctx, statements: Arc::new(statements) })
    }

    /// Also sets `request.jwt.claim.sub`, which the bootstrap's `auth.uid()` reads before it
    /// falls back to parsing all of `request.jwt.claims`.
    pub(crate) fn with_sub(mut self, claims: &Claims) -> Self {
        let sub = claims.sub().unwrap_or_default().to_owned();
        self.ctx = self.ctx.with_setting("request.jwt.claim.sub", sub);
        self
    }

    /// The first statement's answer.
    pub(crate) async fn once(&self, db: &Database) -> Result<String, forge_core::ForgeError> {
        let rows = rls::query_once(db, &self.ctx, &self.statements[0], &[]).await?;
        Ok(rows.first().map(|r| r.get::<_, String>(0)).unwrap_or_default())
    }

    /// Runs `tasks` loops of reads for `duration`.
    pub(crate) async fn run(&self, db: &Database, tasks: usize, duration: Duration) -> Outcome {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut handles = Vec::new();
        for c in 0..tasks {
            let (read, db, stop) = (self.clone(), db.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                let mut out = Outcome::default();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let sql = &read.statements[i % read.statements.len()];
                    i += 1;
                    let begun = Instant::now();
                    let answer = rls::query_once(&db, &read.ctx, sql, &[]).await;
                    out.record(begun.elapsed(), answer.err().map(|e| e.to_string()));
                }
                out
            }));
        }
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Outcome::default();
        for h in handles {
            if let Ok(o) = h.await {
                all.merge(o);
            }
        }
        all.set_elapsed(started.elapsed());
        all
    }
}
