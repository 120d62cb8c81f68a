//! The RLS gateway: the one per-request transaction every service runs its SQL in.
//!
//! [`begin`] takes a connection from the project's gateway pool and, in one pipelined flight,
//! sends `BEGIN` (`READ ONLY` for GET and HEAD) and one `SELECT set_config(...)` that sets,
//! transaction-locally and in PostgREST's order:
//!
//! 1. `role`: the principal's database role;
//! 2. `request.jwt.claims`: the claims JSON, with `role` forced to that role;
//! 3. `request.method` and `request.path`;
//! 4. `request.headers`: lower-cased names, `cookie` left out;
//! 5. any extra settings the service added (for example `search_path`).
//!
//! Postgres then enforces the policies. Statements are prepared once per connection and
//! reused. A transaction that is dropped without [`RlsTx::commit`] is rolled back before its
//! connection is reused, and a commit after a failed statement reports the failure instead of
//! silently rolling back.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use deadpool_postgres::Object;
use futures_util::future::{try_join, try_join3};
use http::request::Parts;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::db::Database;
use crate::error::{ForgeError, Rejection};
use crate::principal::Principal;

const BEGIN_READ_ONLY: &str = "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY";
const BEGIN_READ_WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE";
const COMMIT: &str = "COMMIT";
const ROLLBACK: &str = "ROLLBACK";

/// Everything the gateway sets up for one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    principal: Principal,
    method: http::Method,
    path: String,
    headers: String,
    settings: Vec<(Cow<'static, str>, String)>,
}

impl RequestContext {
    /// A context with no request headers.
    pub fn new(principal: Principal, method: http::Method, path: impl Into<String>) -> Self {
        Self { principal, method, path: path.into(), headers: "{}".into(), settings: Vec::new() }
    }

    /// A context for a request: its method, path and headers (lower-cased, without `cookie`).
    pub fn from_parts(parts: &Parts, principal: Principal) -> Self {
        let mut headers = Map::new();
        for (name, value) in &parts.headers {
            if name == http::header::COOKIE {
                continue;
            }
            if let Ok(v) = value.to_str() {
                // Repeated headers are joined as HTTP allows.
                match headers.get_mut(name.as_str()) {
                    Some(Value::String(existing)) => {
                        existing.push_str(", ");
                        existing.push_str(v);
                    }
                    _ => {
                        headers.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
                    }
                }
            }
        }
        Self {
            principal,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            headers: Value::Object(headers).to_string(),
            settings: Vec::new(),
        }
    }

    /// Adds a transaction-local setting, set after the standard ones. The value is a bound
    /// parameter; the name must be a setting the service chose, never user input.
    pub fn with_setting(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Whether the transaction is read-only (GET and HEAD).
    pub fn read_only(&self) -> bool {
        self.method == http::Method::GET || self.method == http::Method::HEAD
    }

    fn set_config_sql(&self) -> String {
        let mut sql = String::from(
            "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
             set_config('request.method', $3, true), set_config('request.path', $4, true), \
             set_config('request.headers', $5, true), set_config('request.jwt.claim.sub', $6, true), \
             set_config('request.jwt.claim.role', $7, true), set_config('request.jwt.claim.email', $8, true)",
        );
        for i in 0..self.settings.len() {
            let n = 9 + 2 * i;
            sql.push_str(&format!(", set_config(${n}, ${}, true)", n + 1));
        }
        sql
    }

    fn set_config_params(&self) -> (String, Vec<String>) {
        let mut params = Vec::with_capacity(8 + 2 * self.settings.len());
        let claims = self.principal.claims();
        params.push(self.principal.role().to_owned());
        params.push(self.principal.claims_json());
        params.push(self.method.as_str().to_owned());
        params.push(self.path.clone());
        params.push(self.headers.clone());
        // The single claims PostgREST used to set: `auth.uid()`, `auth.role()` and
        // `auth.email()` read them first, so policies need not parse the claims JSON per row.
        params.push(claims.sub().unwrap_or_default().to_owned());
        params.push(self.principal.role().to_owned());
        params.push(claims.email().unwrap_or_default().to_owned());
        for (name, value) in &self.settings {
            params.push(name.to_string());
            params.push(value.clone());
        }
        (self.set_config_sql(), params)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        Ok(RequestContext::from_parts(parts, principal))
    }
}

/// An open RLS transaction. Finish it with [`RlsTx::commit`] or [`RlsTx::rollback`]; dropping
/// it rolls back.
#[derive(Debug)]
pub struct RlsTx {
    conn: Option<Object>,
    failed: AtomicBool,
}

/// Opens the request's transaction on `db`'s gateway pool.
pub async fn begin(db: &Database, ctx: &RequestContext) -> Result<RlsTx, ForgeError> {
    let tx = RlsTx::new(db.gateway().get().await?);
    let conn = tx.conn();
    let (set_sql, values) = ctx.set_config_params();
    let set_params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    let (begin, set) = try_join(conn.prepare_cached(begin_sql(ctx)), conn.prepare_cached(&set_sql)).await?;
    // On failure, dropping `tx` rolls back before the connection is reused.
    try_join(conn.execute(&begin, &[]), conn.execute(&set, &set_params)).await?;
    Ok(tx)
}

/// Runs one statement in its own RLS transaction: `BEGIN`, the settings, the statement and
/// `COMMIT` go out in a single flight once the statement is prepared on the connection. The
/// first time, it is prepared in the same pipeline after the settings, so it is parsed under
/// the request's role.
pub async fn query_once(
    db: &Database,
    ctx: &RequestContext,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, ForgeError> {
    Ok(run_once(db, ctx, sql, params).await?.0)
}

/// Like [`query_once`] for a statement whose effect matters, not its rows: returns the number
/// of rows it affected (an INSERT, UPDATE or DELETE without RETURNING).
pub async fn execute_once(
    db: &Database,
    ctx: &RequestContext,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, ForgeError> {
    Ok(run_once(db, ctx, sql, params).await?.1)
}

/// Like [`query_once`], but the transaction is rolled back: the statement's rows, or its
/// error, without its effect. It tells whether the caller's policies would let a change
/// through (an insert they refuse fails with SQLSTATE 42501), in one flight.
pub async fn try_once(
    db: &Database,
    ctx: &RequestContext,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, ForgeError> {
    Ok(run_once_then(db, ctx, sql, params, ROLLBACK).await?.0)
}

async fn run_once(
    db: &Database,
    ctx: &RequestContext,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(Vec<Row>, u64), ForgeError> {
    run_once_then(db, ctx, sql, params, COMMIT).await
}

/// `BEGIN`, the settings, `sql` and `end` (`COMMIT` or `ROLLBACK`) in one flight.
async fn run_once_then(
    db: &Database,
    ctx: &RequestContext,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    end: &'static str,
) -> Result<(Vec<Row>, u64), ForgeError> {
    let mut tx = RlsTx::new(db.gateway().get().await?);
    let conn = tx.conn();
    let (set_sql, values) = ctx.set_config_params();
    let set_params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    let (begin, set, end) =
        try_join3(conn.prepare_cached(begin_sql(ctx)), conn.prepare_cached(&set_sql), conn.prepare_cached(end)).await?;
    let statement_and_end = async {
        // Cached: resolves at once, in the same poll, so all four go out together.
        let stmt = conn.prepare_cached(sql).await?;
        let rows = async {
            let stream = conn.query_raw(&stmt, params.iter().copied()).await?;
            futures_util::pin_mut!(stream);
            let mut rows = Vec::new();
            while let Some(row) = futures_util::TryStreamExt::try_next(&mut stream).await? {
                rows.push(row);
            }
            let affected = stream.rows_affected().unwrap_or(rows.len() as u64);
            Ok::<_, tokio_postgres::Error>((rows, affected))
        };
        try_join(rows, conn.execute(&end, &[])).await
    };
    let (_, _, (result, _)) =
        try_join3(conn.execute(&begin, &[]), conn.execute(&set, &set_params), statement_and_end).await?;
    tx.release();
    Ok(result)
}

fn begin_sql(ctx: &RequestContext) -> &'static str {
    if ctx.read_only() { BEGIN_READ_ONLY } else { BEGIN_READ_WRITE }
}

impl RlsTx {
    fn new(conn: Object) -> Self {
        Self { conn: Some(conn), failed: AtomicBool::new(false) }
    }

    fn conn(&self) -> &Object {
        self.conn.as_ref().expect("an RlsTx holds its connection until it is finished")
    }

    /// Hands the connection back to the pool: only once its transaction has ended.
    fn release(&mut self) {
        self.conn = None;
    }

    /// The underlying client, for statements the helpers below do not cover. Errors from
    /// statements run on it directly are not tracked: prefer [`RlsTx::query`].
    pub fn client(&self) -> &tokio_postgres::Client {
        self.conn()
    }

    /// Prepares `sql`, reusing the connection's cached statement when there is one.
    pub async fn prepare(&self, sql: &str) -> Result<Statement, ForgeError> {
        self.track(self.conn().prepare_cached(sql).await)
    }

    /// Runs a statement and returns its rows.
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, ForgeError> {
        let stmt = self.prepare(sql).await?;
        self.track(self.conn().query(&stmt, params).await)
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, ForgeError> {
        let stmt = self.prepare(sql).await?;
        self.track(self.conn().execute(&stmt, params).await)
    }

    /// Runs a last statement and commits, both in one flight.
    pub async fn query_and_commit(mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, ForgeError> {
        self.ensure_ok()?;
        let conn = self.conn();
        let (stmt, commit) = try_join(conn.prepare_cached(sql), conn.prepare_cached(COMMIT)).await?;
        let (rows, _) = try_join(conn.query(&stmt, params), conn.execute(&commit, &[])).await?;
        self.release();
        Ok(rows)
    }

    /// Commits. Fails, and rolls back, if an earlier statement failed.
    pub async fn commit(mut self) -> Result<(), ForgeError> {
        self.ensure_ok()?;
        let conn = self.conn();
        let stmt = conn.prepare_cached(COMMIT).await?;
        conn.execute(&stmt, &[]).await?;
        self.release();
        Ok(())
    }

    /// Rolls back.
    pub async fn rollback(mut self) -> Result<(), ForgeError> {
        let conn = self.conn();
        let stmt = conn.prepare_cached(ROLLBACK).await?;
        conn.execute(&stmt, &[]).await?;
        self.release();
        Ok(())
    }

    fn ensure_ok(&self) -> Result<(), ForgeError> {
        if self.failed.load(Ordering::Relaxed) {
            // Dropping self rolls back.
            return Err(ForgeError::internal("commit after a failed statement in the same transaction"));
        }
        Ok(())
    }

    fn track<T>(&self, result: Result<T, tokio_postgres::Error>) -> Result<T, ForgeError> {
        result.map_err(|e| {
            self.failed.store(true, Ordering::Relaxed);
            e.into()
        })
    }
}

impl Drop for RlsTx {
    /// A transaction still open here was abandoned (an error, or a cancelled request): roll it
    /// back before the connection serves anyone else. After an error its state is unknown;
    /// a `ROLLBACK` outside a transaction is harmless.
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if conn.batch_execute(ROLLBACK).await.is_err() {
                        // Never hand a connection in an unknown state back to the pool.
                        drop(Object::take(conn));
                    }
                });
            }
            Err(_) => drop(Object::take(conn)),
        }
    }
}
