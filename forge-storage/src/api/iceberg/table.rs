//! Tables of an analytics bucket's catalog, under `/v1/{prefix}/namespaces/{namespace}/tables`:
//!
//! - `GET` lists them (`{identifiers: [{namespace, name}], next-page-token?}`, paged with
//!   `pageSize` and `pageToken`); `POST` (a `CreateTableRequest`) creates one with fresh ids
//!   and answers a `LoadTableResult` (`{metadata-location, metadata, config}`); with
//!   `stage-create` nothing is stored and `metadata-location` is null;
//! - `GET /{table}` loads it (`snapshots=refs` keeps only referenced snapshots), `HEAD` tells
//!   whether it exists (204 or 404), `DELETE` drops it (204; `purgeRequested` has no files to
//!   purge), `POST /{table}/metrics` accepts a metrics report (204) and discards it;
//! - `POST /{table}` commits `{requirements, updates}` ([`super::metadata`]): the row is locked,
//!   the requirements are checked against the locked metadata and the updates applied, all in
//!   one transaction, so of two commits made against the same metadata only one can succeed
//!   (the other gets 409 `CommitFailedException`). A commit with `assert-create` to a table
//!   that does not exist creates it (pyiceberg's create transactions). iceberg-js's
//!   `updateTable` shorthand (`{schema?, partition-spec?, properties?}`) is read as the updates
//!   it stands for;
//! - `POST /v1/{prefix}/tables/rename {source, destination}` renames or moves one (204).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use forge_core::Project;
use forge_core::error::DbErrorKind;
use forge_core::rls::{RequestContext, RlsTx};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::{IcebergError, IcebergResult};
use super::{
    ServiceRole, begin, namespace_id, namespace_levels, namespace_path, page_size, parse_json, query_params, table_name,
};
use crate::error::ErrorKind;
use crate::rows::iceberg::{self, TableRow, TableVersion};
use crate::table_metadata::{
    CreateTable, Object, apply_updates, check_complete, check_requirements, empty_table, log_previous,
    metadata_location, new_table, now_ms, shorthand_updates,
};

/// Where a new table lives unless its request says: `s3://<bucket>/<level>/.../<table>`.
fn default_location(prefix: &str, levels: &[String], name: &str) -> String {
    format!("s3://{prefix}/{}/{name}", levels.join("/"))
}

fn load_result(metadata_location: Option<&str>, metadata: Object) -> Json<Value> {
    Json(json!({ "metadata-location": metadata_location, "metadata": metadata, "config": {} }))
}

pub(crate) async fn list(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path((prefix, namespace)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> IcebergResult<Json<Value>> {
    let levels = namespace_path(&namespace)?;
    let params = query_params(query.as_deref());
    let limit = page_size(&params)?;
    let token = params.get("pageToken").filter(|t| !t.is_empty());
    let tx = begin(&project, &ctx).await?;
    let ns = namespace_id(&tx, &prefix, &levels).await?;
    let mut names = iceberg::table_names(&tx, ns, token.map(String::as_str), limit.saturating_add(1)).await?;
    tx.commit().await?;
    let more = i64::try_from(names.len()).unwrap_or(i64::MAX) > limit;
    if more {
        names.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    let identifiers: Vec<Value> = names.iter().map(|name| json!({ "namespace": levels, "name": name })).collect();
    let mut out = json!({ "identifiers": identifiers });
    if more && let Some(last) = names.last() {
        out["next-page-token"] = json!(last);
    }
    Ok(Json(out))
}

pub(crate) async fn create(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path((prefix, namespace)): Path<(String, String)>,
    body: Bytes,
) -> IcebergResult<Json<Value>> {
    let levels = namespace_path(&namespace)?;
    let req: CreateTable = parse_json(&body)?;
    let name = table_name(&req.name)?;
    let location = match req.location.as_deref().map(str::trim) {
        Some("") => return Err(IcebergError::bad_request("A table location must not be empty")),
        Some(location) => location.trim_end_matches('/').to_owned(),
        None => default_location(&prefix, &levels, name),
    };
    let metadata = new_table(&req, &location, Uuid::new_v4(), now_ms())?;
    let already = || IcebergError::already_exists(format!("Table already exists: {}.{name}", levels.join(".")));
    let tx = begin(&project, &ctx).await?;
    let ns = namespace_id(&tx, &prefix, &levels).await?;
    if req.stage_create {
        // Staged: checked and answered, not stored; a commit with assert-create creates it.
        if iceberg::table(&tx, ns, name, false).await?.is_some() {
            return Err(already());
        }
        tx.commit().await?;
        return Ok(load_result(None, metadata));
    }
    let file = iceberg::create_table(tx, ns, name, &location, &metadata).await.map_err(|e| match e.db_kind() {
        Some(DbErrorKind::UniqueViolation) => already(),
        Some(DbErrorKind::ForeignKeyViolation) => IcebergError::no_such_namespace(&levels),
        _ => e.into(),
    })?;
    Ok(load_result(Some(&file), metadata))
}

/// The table named by a path, in its own read-only transaction.
async fn find(project: &Project, ctx: &RequestContext, path: &(String, String, String)) -> IcebergResult<TableRow> {
    let (prefix, namespace, table) = path;
    let levels = namespace_path(namespace)?;
    let name = table_name(table)?;
    let tx = begin(project, ctx).await?;
    let ns = namespace_id(&tx, prefix, &levels).await?;
    let row = iceberg::table(&tx, ns, name, false).await?;
    tx.commit().await?;
    row.ok_or_else(|| IcebergError::no_such_table(&levels, name))
}

pub(crate) async fn load(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path(path): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> IcebergResult<Json<Value>> {
    let snapshots = query_params(query.as_deref()).get("snapshots").cloned();
    let mut row = find(&project, &ctx, &path).await?;
    match snapshots.as_deref() {
        None | Some("all") => {}
        Some("refs") => {
            let referenced: Vec<Value> = row
                .metadata
                .get("refs")
                .and_then(Value::as_object)
                .map(|refs| refs.values().filter_map(|r| r.get("snapshot-id").cloned()).collect())
                .unwrap_or_default();
            if let Some(Value::Array(list)) = row.metadata.get_mut("snapshots") {
                list.retain(|s| s.get("snapshot-id").is_some_and(|id| referenced.contains(id)));
            }
        }
        Some(other) => return Err(IcebergError::bad_request(format!("Invalid snapshots mode {other:?}: all or refs"))),
    }
    Ok(load_result(Some(&row.metadata_location), row.metadata))
}

pub(crate) async fn exists(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path(path): Path<(String, String, String)>,
) -> IcebergResult<StatusCode> {
    find(&project, &ctx, &path).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn remove(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
) -> IcebergResult<StatusCode> {
    let levels = namespace_path(&namespace)?;
    let name = table_name(&table)?;
    let tx = begin(&project, &ctx).await?;
    let ns = namespace_id(&tx, &prefix, &levels).await?;
    if !iceberg::delete_table(tx, ns, name).await? {
        return Err(IcebergError::no_such_table(&levels, name));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A commit's requirements and updates: `{requirements, updates}` as the spec sends them, or
/// iceberg-js's `updateTable` shorthand.
fn commit_body(body: &[u8]) -> IcebergResult<(Vec<Value>, Vec<Value>)> {
    let body: Object = parse_json(body)?;
    let list = |field: &str| match body.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(IcebergError::bad_request(format!("{field} must be an array"))),
    };
    if body.contains_key("requirements") || body.contains_key("updates") {
        return Ok((list("requirements")?, list("updates")?));
    }
    match shorthand_updates(&body) {
        Some(updates) => Ok((Vec::new(), updates)),
        None => Err(IcebergError::bad_request("A commit needs requirements and updates")),
    }
}

pub(crate) async fn commit(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    body: Bytes,
) -> IcebergResult<Json<Value>> {
    let levels = namespace_path(&namespace)?;
    let name = table_name(&table)?;
    let (requirements, updates) = commit_body(&body)?;
    let now = now_ms();
    let tx = begin(&project, &ctx).await?;
    let ns = namespace_id(&tx, &prefix, &levels).await?;
    // The lock is held until the transaction ends: a concurrent commit waits here, then sees
    // this one's metadata and checks its requirements against it.
    let current = match iceberg::table(&tx, ns, name, true).await? {
        Some(current) => current,
        None => {
            let creates = requirements.iter().any(|r| r.get("type").and_then(Value::as_str) == Some("assert-create"));
            if !creates {
                return Err(IcebergError::no_such_table(&levels, name));
            }
            return create_by_commit(tx, (ns, &prefix, &levels, name), &requirements, &updates, now).await;
        }
    };
    check_requirements(Some(&current.metadata), &requirements)?;
    let Some(mut metadata) = apply_updates(&current.metadata, &updates, now)? else {
        // Nothing changed: no new version.
        tx.commit().await?;
        return Ok(Json(json!({ "metadata-location": current.metadata_location, "metadata": current.metadata })));
    };
    let previous_ms = current.metadata.get("last-updated-ms").and_then(Value::as_i64).unwrap_or(now);
    log_previous(&mut metadata, &current.metadata_location, previous_ms);
    let location = metadata.get("location").and_then(Value::as_str).unwrap_or(&current.location).to_owned();
    let version = current.version + 1;
    let file = metadata_location(&location, version);
    let next = TableVersion {
        id: current.id,
        metadata: Value::Object(metadata.clone()),
        metadata_location: &file,
        version,
        location: &location,
    };
    iceberg::update_table(tx, next).await?;
    Ok(Json(json!({ "metadata-location": file, "metadata": metadata })))
}

/// A commit with `assert-create` to a table that does not exist: its updates build the table
/// from empty metadata.
async fn create_by_commit(
    tx: RlsTx,
    (ns, prefix, levels, name): (Uuid, &str, &[String], &str),
    requirements: &[Value],
    updates: &[Value],
    now: i64,
) -> IcebergResult<Json<Value>> {
    check_requirements(None, requirements)?;
    let base = empty_table(&default_location(prefix, levels, name), Uuid::new_v4(), now);
    let metadata = apply_updates(&base, updates, now)?.unwrap_or(base);
    check_complete(&metadata)?;
    let location = metadata.get("location").and_then(Value::as_str).unwrap_or_default().to_owned();
    let file = iceberg::create_table(tx, ns, name, &location, &metadata).await.map_err(|e| match e.db_kind() {
        Some(DbErrorKind::UniqueViolation) => IcebergError::commit_failed("Requirement failed: table already exists"),
        Some(DbErrorKind::ForeignKeyViolation) => IcebergError::no_such_namespace(levels),
        _ => e.into(),
    })?;
    Ok(Json(json!({ "metadata-location": file, "metadata": metadata })))
}

#[derive(Debug, Deserialize)]
struct TableIdentifier {
    namespace: Vec<String>,
    name: String,
}

#[derive(Debug, Deserialize)]
struct RenameBody {
    source: TableIdentifier,
    destination: TableIdentifier,
}

pub(crate) async fn rename(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path(prefix): Path<String>,
    body: Bytes,
) -> IcebergResult<StatusCode> {
    let body: RenameBody = parse_json(&body)?;
    let (from_levels, to_levels) =
        (namespace_levels(&body.source.namespace)?, namespace_levels(&body.destination.namespace)?);
    let (from, to) = (table_name(&body.source.name)?, table_name(&body.destination.name)?);
    let tx = begin(&project, &ctx).await?;
    // A source in a missing namespace is a missing table.
    let from_ns = namespace_id(&tx, &prefix, &from_levels).await.map_err(|e| match e.kind() {
        Some(ErrorKind::NoSuchNamespace) => IcebergError::no_such_table(&from_levels, from),
        _ => e,
    })?;
    let to_ns = namespace_id(&tx, &prefix, &to_levels).await?;
    let renamed = iceberg::rename_table(tx, (from_ns, from), (to_ns, to)).await.map_err(|e| match e.db_kind() {
        Some(DbErrorKind::UniqueViolation) => {
            IcebergError::already_exists(format!("Table already exists: {}.{to}", to_levels.join(".")))
        }
        Some(DbErrorKind::ForeignKeyViolation) => IcebergError::no_such_namespace(&to_levels),
        _ => e.into(),
    })?;
    if !renamed {
        return Err(IcebergError::no_such_table(&from_levels, from));
    }
    Ok(StatusCode::NO_CONTENT)
}
