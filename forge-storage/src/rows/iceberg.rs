//! The statements behind the Iceberg REST catalog and analytics buckets, on
//! `storage.buckets_analytics`, `storage.iceberg_namespaces` and `storage.iceberg_tables`:
//! no HTTP here. They run as the caller (the service role), in the route's RLS transaction
//! where a route reads before it writes; a function that takes the transaction by value
//! commits it. Errors keep their [`forge_core::DbErrorKind`], which the routes turn into the
//! catalog's own errors (a unique violation is an existing name, a foreign key a parent
//! dropped meanwhile, or a namespace that still has children).

use forge_core::rls::{self, RequestContext, RlsTx};
use forge_core::{ForgeError, Project};
use serde_json::Value;
use uuid::Uuid;

use super::query_json;
use crate::error::Result;

type DbResult<T> = std::result::Result<T, ForgeError>;

/// An analytics bucket as the routes answer it.
const BUCKET_JSON: &str = concat!(
    "jsonb_build_object('id', b.name, 'name', b.name, 'type', b.type, 'format', b.format, 'created_at', ",
    timestamp_json!("b.created_at"),
    ", 'updated_at', ",
    timestamp_json!("b.updated_at"),
    ")"
);

/// Creates an analytics bucket: its row as the routes answer it.
pub(crate) async fn create_bucket(project: &Project, ctx: &RequestContext, name: &str) -> Result<Option<Value>> {
    let sql = format!("insert into storage.buckets_analytics as b (name) values ($1) returning {BUCKET_JSON}");
    query_json(project, ctx, &sql, &[&name]).await
}

/// A page of analytics buckets, ordered by `column` (`b.name`, `b.created_at` or
/// `b.updated_at`) in `order` (`asc` or `desc`), then by name; `pattern` is an `ilike`
/// pattern on the name.
pub(crate) async fn list_buckets(
    project: &Project,
    ctx: &RequestContext,
    (column, order): (&'static str, &'static str),
    pattern: Option<String>,
    limit: i64,
    offset: i64,
) -> Result<Option<Value>> {
    // Only the column and the order, chosen by the caller from fixed lists, are formatted in.
    let sql = format!(
        "select coalesce(jsonb_agg(j order by n), '[]'::jsonb) from ( \
           select {BUCKET_JSON} as j, row_number() over (order by {column} {order}, b.name) as n \
           from storage.buckets_analytics b where $1::text is null or b.name ilike $1 \
           order by {column} {order}, b.name limit $2 offset $3) t"
    );
    query_json(project, ctx, &sql, &[&pattern, &limit, &offset]).await
}

/// Deletes an analytics bucket; false when there is none. A bucket that still has namespaces
/// fails on their foreign key.
pub(crate) async fn delete_bucket(project: &Project, ctx: &RequestContext, name: &str) -> DbResult<bool> {
    let sql = "delete from storage.buckets_analytics where name = $1 returning id";
    Ok(!rls::query_once(project.db(), ctx, sql, &[&name]).await?.is_empty())
}

/// An analytics bucket's id and, when it has one, the id of its namespace `levels` (`levels`
/// empty: none). `None` when there is no such bucket.
pub(crate) async fn resolve(tx: &RlsTx, warehouse: &str, levels: &[String]) -> DbResult<Option<(Uuid, Option<Uuid>)>> {
    let rows = tx
        .query(
            "select b.id, n.id from storage.buckets_analytics b \
             left join storage.iceberg_namespaces n on n.catalog_id = b.id and n.levels = $2::text[] \
             where b.name = $1",
            &[&warehouse, &levels],
        )
        .await?;
    let Some(row) = rows.first() else { return Ok(None) };
    Ok(Some((row.try_get(0)?, row.try_get(1)?)))
}

/// Up to `limit` children of namespace `parent` (`None`: the top level) after the one whose
/// last level is `after`, ordered by their last level: their levels.
pub(crate) async fn child_namespaces(
    tx: &RlsTx,
    catalog: Uuid,
    parent: Option<Uuid>,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<Vec<String>>> {
    let rows = tx
        .query(
            "select levels from storage.iceberg_namespaces \
             where catalog_id = $1 and parent_id is not distinct from $2 \
               and ($3::text is null or levels[cardinality(levels)] > $3 collate \"C\") \
             order by levels[cardinality(levels)] collate \"C\" limit $4",
            &[&catalog, &parent, &after, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?)
}

/// Creates a namespace and commits: its properties as stored.
pub(crate) async fn create_namespace(
    tx: RlsTx,
    catalog: Uuid,
    parent: Option<Uuid>,
    levels: &[String],
    properties: &Value,
) -> DbResult<Option<Value>> {
    let rows = tx
        .query_and_commit(
            "insert into storage.iceberg_namespaces (catalog_id, parent_id, levels, properties) \
             values ($1, $2, $3, $4) returning properties",
            &[&catalog, &parent, &levels, properties],
        )
        .await?;
    Ok(rows.first().map(|r| r.try_get(0)).transpose()?)
}

/// A namespace's properties; `lock` holds its row until the transaction ends.
pub(crate) async fn namespace_properties(tx: &RlsTx, id: Uuid, lock: bool) -> DbResult<Option<Value>> {
    let sql = if lock {
        "select properties from storage.iceberg_namespaces where id = $1 for update"
    } else {
        "select properties from storage.iceberg_namespaces where id = $1"
    };
    let rows = tx.query(sql, &[&id]).await?;
    Ok(rows.first().map(|r| r.try_get(0)).transpose()?)
}

/// Replaces a namespace's properties and commits.
pub(crate) async fn set_namespace_properties(tx: RlsTx, id: Uuid, properties: &Value) -> DbResult<()> {
    tx.query_and_commit(
        "update storage.iceberg_namespaces set properties = $2, updated_at = now() where id = $1",
        &[&id, properties],
    )
    .await?;
    Ok(())
}

/// Deletes a namespace and commits; false when it was gone already. Tables and child
/// namespaces reference it: a non-empty namespace fails on their keys.
pub(crate) async fn delete_namespace(tx: RlsTx, id: Uuid) -> DbResult<bool> {
    let rows = tx.query_and_commit("delete from storage.iceberg_namespaces where id = $1 returning id", &[&id]).await?;
    Ok(!rows.is_empty())
}

/// A stored table.
#[derive(Debug)]
pub(crate) struct TableRow {
    pub(crate) id: Uuid,
    pub(crate) location: String,
    pub(crate) metadata_location: String,
    pub(crate) metadata: serde_json::Map<String, Value>,
    pub(crate) version: i64,
}

/// Table `name` of a namespace; `lock` holds its row until the transaction ends.
pub(crate) async fn table(tx: &RlsTx, namespace: Uuid, name: &str, lock: bool) -> DbResult<Option<TableRow>> {
    let sql = if lock {
        "select id, location, metadata_location, metadata, version from storage.iceberg_tables \
         where namespace_id = $1 and name = $2 for update"
    } else {
        "select id, location, metadata_location, metadata, version from storage.iceberg_tables \
         where namespace_id = $1 and name = $2"
    };
    let rows = tx.query(sql, &[&namespace, &name]).await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let metadata = match row.try_get::<_, Value>(3)? {
        Value::Object(o) => o,
        _ => return Err(ForgeError::internal("table metadata is not an object")),
    };
    Ok(Some(TableRow {
        id: row.try_get(0)?,
        location: row.try_get(1)?,
        metadata_location: row.try_get(2)?,
        metadata,
        version: row.try_get(4)?,
    }))
}

/// Up to `limit` table names of a namespace after `after`, by name.
pub(crate) async fn table_names(tx: &RlsTx, namespace: Uuid, after: Option<&str>, limit: i64) -> DbResult<Vec<String>> {
    let rows = tx
        .query(
            "select name from storage.iceberg_tables where namespace_id = $1 and ($2::text is null or name > $2) \
             order by name limit $3",
            &[&namespace, &after, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?)
}

/// Creates table `name` of a namespace at version 0 and commits: the location of its
/// metadata file.
pub(crate) async fn create_table(
    tx: RlsTx,
    namespace: Uuid,
    name: &str,
    location: &str,
    metadata: &serde_json::Map<String, Value>,
) -> DbResult<String> {
    let file = crate::table_metadata::metadata_location(location, 0);
    tx.query_and_commit(
        "insert into storage.iceberg_tables (namespace_id, name, location, metadata_location, metadata, version) \
         values ($1, $2, $3, $4, $5, 0)",
        &[&namespace, &name, &location, &file, &Value::Object(metadata.clone())],
    )
    .await?;
    Ok(file)
}

/// A table's next version.
#[derive(Debug)]
pub(crate) struct TableVersion<'a> {
    pub(crate) id: Uuid,
    pub(crate) metadata: Value,
    pub(crate) metadata_location: &'a str,
    pub(crate) version: i64,
    pub(crate) location: &'a str,
}

/// Records a table's new version and commits.
pub(crate) async fn update_table(tx: RlsTx, v: TableVersion<'_>) -> DbResult<()> {
    tx.query_and_commit(
        "update storage.iceberg_tables set metadata = $2, metadata_location = $3, version = $4, location = $5, \
         updated_at = now() where id = $1",
        &[&v.id, &v.metadata, &v.metadata_location, &v.version, &v.location],
    )
    .await?;
    Ok(())
}

/// Deletes a table and commits; false when there was none.
pub(crate) async fn delete_table(tx: RlsTx, namespace: Uuid, name: &str) -> DbResult<bool> {
    let rows = tx
        .query_and_commit(
            "delete from storage.iceberg_tables where namespace_id = $1 and name = $2 returning id",
            &[&namespace, &name],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Moves table `from` of one namespace to `to` of another (or the same) and commits; false
/// when there was no such table.
pub(crate) async fn rename_table(
    tx: RlsTx,
    (from_ns, from): (Uuid, &str),
    (to_ns, to): (Uuid, &str),
) -> DbResult<bool> {
    let rows = tx
        .query_and_commit(
            "update storage.iceberg_tables set namespace_id = $3, name = $4, updated_at = now() \
             where namespace_id = $1 and name = $2 returning id",
            &[&from_ns, &from, &to_ns, &to],
        )
        .await?;
    Ok(!rows.is_empty())
}
