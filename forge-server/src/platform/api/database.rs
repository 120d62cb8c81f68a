//! `POST /v1/projects/{ref}/database/query`: SQL run as the project's database owner, for
//! table and policy management (Supabase's endpoint). The answer is the rows of the last
//! statement as JSON objects; several statements run as one implicit transaction, so one that
//! fails undoes the others. Developers and above only.

use axum::extract::{Path, State};
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};
use utoipa::ToSchema;

use super::{Body, ErrorBody, Need, project_for};
use crate::platform::Platform;
use crate::platform::error::{Error, ErrorKind};
use crate::platform::users::Caller;

/// The SQL to run.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RunQuery)]
pub struct Query {
    /// One or more statements, run as one implicit transaction.
    #[schema(example = "select 1 as one")]
    pub query: String,
}

/// The longest a query may run.
const STATEMENT_TIMEOUT: &str = "set statement_timeout = '60s';\n";

/// Runs the query.
#[utoipa::path(
    post,
    path = "/projects/{ref}/database/query",
    operation_id = "v1-run-a-query",
    tag = "database",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref")),
    request_body = Query,
    responses(
        (status = 200, description = "The rows of the last statement, each an object of its columns", body = Vec<std::collections::HashMap<String, Value>>),
        (status = 400, description = "A malformed body or empty query (`invalid_request`), or SQL Postgres refused (`query_failed`, with its message)", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Read-only members may not run SQL", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
    )
)]
pub async fn query(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
    Body(req): Body<Query>,
) -> Result<axum::Json<Vec<Value>>, Error> {
    // The default project's database is the server's own, reached as its configured user:
    // only its organization's owners and administrators may send it SQL.
    let (row, _) = project_for(&platform, &caller, &reference, Need::Write).await?;
    if row.cluster_id.is_none() {
        project_for(&platform, &caller, &reference, Need::Admin).await?;
    }
    if req.query.trim().is_empty() {
        return Err(Error::invalid("query is required"));
    }
    let reference = forge_core::ProjectRef::new(&row.reference).map_err(|_| Error::not_found("Project"))?;
    let project = platform.registry().get(&reference).await?.ok_or_else(|| Error::not_found("Project"))?;
    let sql = format!("{STATEMENT_TIMEOUT}{}", req.query);
    // A managed project's SQL runs as its owner role, which reaches nothing outside its own
    // database; never as the cluster's superuser.
    let mut owner = match row.cluster_id {
        Some(_) => Some(platform.owner_connection(&row).await?),
        None => None,
    };
    let mut stream = match owner.as_mut() {
        Some(conn) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(conn),
        None => sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(project.db().pool()),
    };
    let (mut last, mut current) = (Vec::new(), Vec::new());
    loop {
        match stream.try_next().await {
            Ok(Some(sqlx::Either::Left(_done))) => last = std::mem::take(&mut current),
            Ok(Some(sqlx::Either::Right(row))) => current.push(row_json(&row)),
            Ok(None) => break,
            Err(e) => {
                return Err(match e.as_database_error() {
                    Some(db) => Error::new(ErrorKind::QueryFailed, db.message().to_owned()),
                    None => e.into(),
                });
            }
        }
    }
    drop(stream);
    if let Some(conn) = owner {
        let _ = sqlx::Connection::close(conn).await;
    }
    // A statement that returned rows but no completion (never, in practice) still counts.
    let rows = if current.is_empty() { last } else { current };
    tracing::info!(project = %reference, actor = %caller.email, "ran SQL through the Management API");
    platform
        .store()
        .audit(
            platform.store().pool(),
            &caller.actor(),
            "database.query",
            Some(row.organization_id),
            Some(reference.as_str()),
            serde_json::json!({}),
        )
        .await?;
    Ok(axum::Json(rows))
}

/// A row of the simple-query protocol (text values) as JSON: numbers, booleans and JSON as
/// themselves, everything else as its text.
fn row_json(row: &PgRow) -> Value {
    let mut out = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = match row.try_get_raw(i) {
            Ok(v) if v.is_null() => Value::Null,
            Ok(v) => {
                let text = v.as_str().unwrap_or_default();
                match v.type_info().name() {
                    "INT2" | "INT4" | "INT8" | "OID" => {
                        text.parse::<i64>().map(Value::from).unwrap_or_else(|_| text.into())
                    }
                    "FLOAT4" | "FLOAT8" | "NUMERIC" => serde_json::from_str::<serde_json::Number>(text)
                        .map(Value::Number)
                        .unwrap_or_else(|_| text.into()),
                    "BOOL" => Value::Bool(text == "t"),
                    "JSON" | "JSONB" => serde_json::from_str(text).unwrap_or_else(|_| text.into()),
                    _ => Value::String(text.to_owned()),
                }
            }
            Err(_) => Value::Null,
        };
        out.insert(column.name().to_owned(), value);
    }
    Value::Object(out)
}
