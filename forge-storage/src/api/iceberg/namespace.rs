//! Namespaces of an analytics bucket's catalog, under `/v1/{prefix}/namespaces`:
//!
//! - `GET` lists the top-level namespaces, or the children of `parent` (levels joined by
//!   `%1F`), paged with `pageSize` and `pageToken`: `{namespaces: [[level, ...]],
//!   next-page-token?}`;
//! - `POST {namespace: [..], properties?}` creates one (409 `AlreadyExistsException` if it
//!   exists, 404 if its parent does not): `{namespace, properties}`;
//! - `GET /{namespace}` loads it (`{namespace, properties}`), `HEAD` tells whether it exists
//!   (204 or 404), `DELETE` drops it (204; 409 `NamespaceNotEmptyException` while it has tables
//!   or child namespaces, enforced by foreign keys, so a concurrent creation cannot slip in);
//! - `POST /{namespace}/properties {removals, updates}` changes its properties:
//!   `{updated, removed, missing}`.

use forge_core::error::DbErrorKind;
use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::response::IntoResponse;
use forge_core::Project;
use forge_core::rls::RequestContext;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{IcebergError, IcebergResult};
use super::{
    ServiceRole, begin, namespace_id, namespace_levels, namespace_path, page_size, parse_json, query_params, resolve,
};
use crate::rows::iceberg;
use crate::table_metadata::string_map;

pub(crate) async fn list(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path(prefix): Path<String>,
    RawQuery(query): RawQuery,
) -> IcebergResult<Json<Value>> {
    let params = query_params(query.as_deref());
    let parent = match params.get("parent").filter(|p| !p.is_empty()) {
        Some(raw) => namespace_path(raw)?,
        None => Vec::new(),
    };
    let limit = page_size(&params)?;
    let token = params.get("pageToken").filter(|t| !t.is_empty());
    let tx = begin(&project, &ctx).await?;
    let (catalog, parent_id) = resolve(&tx, &prefix, &parent).await?;
    if !parent.is_empty() && parent_id.is_none() {
        return Err(IcebergError::no_such_namespace(&parent));
    }
    // Children are ordered, and paged, by their last level.
    let children =
        iceberg::child_namespaces(&tx, catalog, parent_id, token.map(String::as_str), limit.saturating_add(1)).await?;
    tx.commit().await?;
    page(children, limit)
}

/// A page of namespaces, with the token of the next one when there is more.
fn page(mut namespaces: Vec<Vec<String>>, limit: i64) -> IcebergResult<Json<Value>> {
    let more = i64::try_from(namespaces.len()).unwrap_or(i64::MAX) > limit;
    if more {
        namespaces.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    let mut out = json!({ "namespaces": namespaces });
    if more && let Some(last) = namespaces.last().and_then(|ns| ns.last()) {
        out["next-page-token"] = json!(last);
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    namespace: Option<Vec<String>>,
    #[serde(default)]
    properties: Option<Value>,
}

pub(crate) async fn create(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path(prefix): Path<String>,
    body: Bytes,
) -> IcebergResult<Json<Value>> {
    let body: CreateBody = parse_json(&body)?;
    let levels = namespace_levels(body.namespace.as_deref().unwrap_or_default())?;
    let properties = Value::Object(string_map(body.properties.as_ref(), "properties")?);
    let tx = begin(&project, &ctx).await?;
    let parent = &levels[..levels.len() - 1];
    let (catalog, parent_id) = resolve(&tx, &prefix, parent).await?;
    if !parent.is_empty() && parent_id.is_none() {
        return Err(IcebergError::no_such_namespace(parent));
    }
    // The foreign keys make a parent (or bucket) dropped meanwhile fail the insert.
    let stored = iceberg::create_namespace(tx, catalog, parent_id, &levels, &properties).await.map_err(|e| match e
        .db_kind()
    {
        Some(DbErrorKind::UniqueViolation) => {
            IcebergError::already_exists(format!("Namespace already exists: {}", levels.join(".")))
        }
        Some(DbErrorKind::ForeignKeyViolation) if parent.is_empty() => IcebergError::no_such_warehouse(&prefix),
        Some(DbErrorKind::ForeignKeyViolation) => IcebergError::no_such_namespace(parent),
        _ => e.into(),
    })?;
    let properties = stored.unwrap_or(properties);
    Ok(Json(json!({ "namespace": levels, "properties": properties })))
}

/// The levels and properties of the namespace a path names, read in their own transaction.
async fn find(project: &Project, ctx: &RequestContext, prefix: &str, raw: &str) -> IcebergResult<(Vec<String>, Value)> {
    let levels = namespace_path(raw)?;
    let tx = begin(project, ctx).await?;
    let id = namespace_id(&tx, prefix, &levels).await?;
    let properties = iceberg::namespace_properties(&tx, id, false).await?;
    tx.commit().await?;
    let properties = properties.ok_or_else(|| IcebergError::no_such_namespace(&levels))?;
    Ok((levels, properties))
}

pub(crate) async fn load(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path((prefix, namespace)): Path<(String, String)>,
) -> IcebergResult<Json<Value>> {
    let (levels, properties) = find(&project, &ctx, &prefix, &namespace).await?;
    Ok(Json(json!({ "namespace": levels, "properties": properties })))
}

pub(crate) async fn exists(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path((prefix, namespace)): Path<(String, String)>,
) -> IcebergResult<StatusCode> {
    find(&project, &ctx, &prefix, &namespace).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn remove(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path((prefix, namespace)): Path<(String, String)>,
) -> IcebergResult<impl IntoResponse> {
    let levels = namespace_path(&namespace)?;
    let tx = begin(&project, &ctx).await?;
    let id = namespace_id(&tx, &prefix, &levels).await?;
    // Tables and child namespaces reference it: a non-empty namespace fails on their keys.
    let deleted = iceberg::delete_namespace(tx, id).await.map_err(|e| match e.db_kind() {
        Some(DbErrorKind::ForeignKeyViolation) => IcebergError::namespace_not_empty(&levels),
        _ => e.into(),
    })?;
    // A concurrent drop took it first.
    if !deleted {
        return Err(IcebergError::no_such_namespace(&levels));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct PropertiesBody {
    #[serde(default)]
    removals: Option<Vec<String>>,
    #[serde(default)]
    updates: Option<Value>,
}

pub(crate) async fn update_properties(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path((prefix, namespace)): Path<(String, String)>,
    body: Bytes,
) -> IcebergResult<Json<Value>> {
    let levels = namespace_path(&namespace)?;
    let body: PropertiesBody = parse_json(&body)?;
    let removals: BTreeSet<String> = body.removals.unwrap_or_default().into_iter().collect();
    let updates = string_map(body.updates.as_ref(), "updates")?;
    if let Some(both) = updates.keys().find(|k| removals.contains(*k)) {
        return Err(IcebergError::unprocessable(format!("Property {both:?} is both updated and removed")));
    }
    let tx = begin(&project, &ctx).await?;
    let id = namespace_id(&tx, &prefix, &levels).await?;
    let mut properties = match iceberg::namespace_properties(&tx, id, true).await? {
        Some(Value::Object(p)) => p,
        _ => return Err(IcebergError::no_such_namespace(&levels)),
    };
    let (removed, missing): (Vec<String>, Vec<String>) = removals.into_iter().partition(|k| properties.contains_key(k));
    for key in &removed {
        properties.remove(key);
    }
    let updated: Vec<String> = updates.keys().cloned().collect();
    properties.extend(updates);
    iceberg::set_namespace_properties(tx, id, &Value::Object(properties)).await?;
    Ok(Json(json!({ "updated": updated, "removed": removed, "missing": missing })))
}
