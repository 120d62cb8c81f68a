//! The statements behind the S3 Vectors routes, on `storage.buckets_vectors`,
//! `storage.vector_indexes` and `storage.vectors`: no HTTP here. The routes are the service
//! role's alone, so these run on the pool, without RLS.

use forge_core::{DbErrorKind, ForgeError, Project};
use futures_util::{Stream, TryStreamExt as _};
use serde_json::{Map, Value};
use sqlx::types::Json;
use uuid::Uuid;

use super::BucketDeletion;
use crate::error::{Error, Result};

fn db(e: sqlx::Error) -> Error {
    ForgeError::from(e).into()
}

/// Creates a vector bucket; false when the name is taken.
pub(crate) async fn create_bucket(project: &Project, name: &str) -> Result<bool> {
    let inserted = sqlx::query("insert into storage.buckets_vectors (id) values ($1)")
        .bind(name)
        .execute(project.db().pool())
        .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::UniqueViolation) => Ok(false),
        Err(e) => Err(db(e)),
    }
}

/// When a vector bucket was created, in seconds since the epoch.
pub(crate) async fn bucket_created(project: &Project, name: &str) -> Result<Option<i64>> {
    sqlx::query_scalar("select extract(epoch from created_at)::bigint from storage.buckets_vectors where id = $1")
        .bind(name)
        .fetch_optional(project.db().pool())
        .await
        .map_err(db)
}

/// Up to `limit` vector buckets (name, creation time) after `after` whose names start with
/// `prefix`, by name.
pub(crate) async fn list_buckets(
    project: &Project,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "select id, extract(epoch from created_at)::bigint from storage.buckets_vectors \
         where ($1::text is null or starts_with(id, $1)) and ($2::text is null or id > $2) \
         order by id limit $3",
    )
    .bind(prefix)
    .bind(after)
    .bind(limit)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)
}

/// Deletes a vector bucket that has no indexes.
pub(crate) async fn delete_bucket(project: &Project, name: &str) -> Result<BucketDeletion> {
    let deleted = sqlx::query(
        "delete from storage.buckets_vectors where id = $1 \
         and not exists (select 1 from storage.vector_indexes where bucket_id = $1)",
    )
    .bind(name)
    .execute(project.db().pool())
    .await;
    match deleted {
        Ok(done) if done.rows_affected() == 1 => Ok(BucketDeletion::Deleted),
        // An index created meanwhile holds the bucket.
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::ForeignKeyViolation) => Ok(BucketDeletion::NotEmpty),
        Err(e) => Err(db(e)),
        Ok(_) => {
            let exists: bool =
                sqlx::query_scalar("select exists (select 1 from storage.buckets_vectors where id = $1)")
                    .bind(name)
                    .fetch_one(project.db().pool())
                    .await
                    .map_err(db)?;
            Ok(if exists { BucketDeletion::NotEmpty } else { BucketDeletion::Missing })
        }
    }
}

/// An index to create.
#[derive(Debug)]
pub(crate) struct NewIndex<'a> {
    pub(crate) bucket: &'a str,
    pub(crate) name: &'a str,
    pub(crate) data_type: &'a str,
    pub(crate) dimension: i32,
    pub(crate) distance_metric: &'a str,
    pub(crate) metadata_configuration: Option<Value>,
}

/// What creating an index came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexCreation {
    Created,
    /// The bucket has an index of that name.
    Taken,
    /// There is no such bucket (or it was deleted meanwhile).
    NoBucket,
}

pub(crate) async fn create_index(project: &Project, i: NewIndex<'_>) -> Result<IndexCreation> {
    let inserted = sqlx::query(
        "insert into storage.vector_indexes (bucket_id, name, data_type, dimension, distance_metric, metadata_configuration) \
         select id, $2, $3, $4, $5, $6 from storage.buckets_vectors where id = $1",
    )
    .bind(i.bucket)
    .bind(i.name)
    .bind(i.data_type)
    .bind(i.dimension)
    .bind(i.distance_metric)
    .bind(i.metadata_configuration.map(Json))
    .execute(project.db().pool())
    .await;
    match inserted {
        Ok(done) if done.rows_affected() == 1 => Ok(IndexCreation::Created),
        Ok(_) => Ok(IndexCreation::NoBucket),
        Err(e) => match DbErrorKind::of_sqlx(&e) {
            Some(DbErrorKind::UniqueViolation) => Ok(IndexCreation::Taken),
            Some(DbErrorKind::ForeignKeyViolation) => Ok(IndexCreation::NoBucket),
            _ => Err(db(e)),
        },
    }
}

/// An index's row.
#[derive(Debug)]
pub(crate) struct IndexRow {
    pub(crate) id: Uuid,
    pub(crate) dimension: i32,
    pub(crate) distance_metric: String,
    pub(crate) metadata_configuration: Option<Value>,
    /// Seconds since the epoch.
    pub(crate) created: i64,
}

/// What looking an index up found.
#[derive(Debug)]
pub(crate) enum IndexLookup {
    Found(IndexRow),
    NoIndex,
    NoBucket,
}

/// The index `name` of vector bucket `bucket`.
pub(crate) async fn index(project: &Project, bucket: &str, name: &str) -> Result<IndexLookup> {
    /// The bucket's row, joined with the index's when there is one.
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Option<Uuid>,
        dimension: Option<i32>,
        distance_metric: Option<String>,
        metadata_configuration: Option<Json<Value>>,
        created: Option<i64>,
    }
    let row: Option<Row> = sqlx::query_as(
        "select i.id, i.dimension, i.distance_metric, i.metadata_configuration, \
         extract(epoch from i.created_at)::bigint as created from storage.buckets_vectors b \
         left join storage.vector_indexes i on i.bucket_id = b.id and i.name = $2 where b.id = $1",
    )
    .bind(bucket)
    .bind(name)
    .fetch_optional(project.db().pool())
    .await
    .map_err(db)?;
    let Some(Row { id, dimension, distance_metric, metadata_configuration, created }) = row else {
        return Ok(IndexLookup::NoBucket);
    };
    let (Some(id), Some(dimension), Some(distance_metric), Some(created)) = (id, dimension, distance_metric, created)
    else {
        return Ok(IndexLookup::NoIndex);
    };
    let metadata_configuration = metadata_configuration.map(|c| c.0);
    Ok(IndexLookup::Found(IndexRow { id, dimension, distance_metric, metadata_configuration, created }))
}

/// Up to `limit` indexes (name, creation time) of `bucket` after `after` whose names start
/// with `prefix`, by name; `None` when there is no such bucket.
pub(crate) async fn list_indexes(
    project: &Project,
    bucket: &str,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Option<Vec<(String, i64)>>> {
    let rows: Vec<(Option<String>, Option<i64>)> = sqlx::query_as(
        "select i.name, extract(epoch from i.created_at)::bigint from storage.buckets_vectors b \
         left join storage.vector_indexes i on i.bucket_id = b.id \
           and ($2::text is null or starts_with(i.name, $2)) and ($3::text is null or i.name > $3) \
         where b.id = $1 order by i.name limit $4",
    )
    .bind(bucket)
    .bind(prefix)
    .bind(after)
    .bind(limit)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(rows.into_iter().filter_map(|(n, t)| Some((n?, t?))).collect()))
}

/// Deletes an index and its vectors; false when it was already gone.
pub(crate) async fn delete_index(project: &Project, id: Uuid) -> Result<bool> {
    // Its vectors go with it (on delete cascade).
    let done = sqlx::query("delete from storage.vector_indexes where id = $1")
        .bind(id)
        .execute(project.db().pool())
        .await
        .map_err(db)?;
    Ok(done.rows_affected() > 0)
}

/// Inserts or replaces vectors: `keys` (sorted, so that batches sharing keys lock them in
/// the same order), their encoded `data` and their `metadata` as JSON text. False when the
/// index was deleted meanwhile.
pub(crate) async fn put_vectors(
    project: &Project,
    index: Uuid,
    keys: &[String],
    data: &[Vec<u8>],
    metadata: &[Option<String>],
) -> Result<bool> {
    let stored = sqlx::query(
        "insert into storage.vectors (index_id, key, data, metadata) \
         select $1, k, d, m::jsonb from unnest($2::text[], $3::bytea[], $4::text[]) with ordinality as t(k, d, m, n) \
         order by n \
         on conflict (index_id, key) do update set data = excluded.data, metadata = excluded.metadata",
    )
    .bind(index)
    .bind(keys)
    .bind(data)
    .bind(metadata)
    .execute(project.db().pool())
    .await;
    match stored {
        Ok(_) => Ok(true),
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::ForeignKeyViolation) => Ok(false),
        Err(e) => Err(db(e)),
    }
}

/// A stored vector: its key, and its encoded data and metadata when they were asked for.
pub(crate) type VectorRow = (String, Option<Vec<u8>>, Option<Value>);

/// A [`VectorRow`] as read.
type StoredRow = (String, Option<Vec<u8>>, Option<Json<Value>>);

fn unwrap_json((key, data, metadata): StoredRow) -> VectorRow {
    (key, data, metadata.map(|m| m.0))
}

/// What to read of each vector.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub(crate) data: bool,
    pub(crate) metadata: bool,
}

/// The vectors of `keys` there are, in no order.
pub(crate) async fn get_vectors(
    project: &Project,
    index: Uuid,
    keys: &[String],
    read: Reading,
) -> Result<Vec<VectorRow>> {
    let rows: Vec<StoredRow> = sqlx::query_as(
        "select key, case when $3 then data end, case when $4 then metadata end from storage.vectors \
         where index_id = $1 and key = any($2)",
    )
    .bind(index)
    .bind(keys)
    .bind(read.data)
    .bind(read.metadata)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(unwrap_json).collect())
}

/// A page of an index's vectors, by key.
#[derive(Debug)]
pub(crate) struct VectorPage<'a> {
    pub(crate) index: Uuid,
    pub(crate) after: Option<&'a str>,
    /// `(n, i)`: only segment `i` of `n` (the keys whose hash is `i` modulo `n`).
    pub(crate) segment: Option<(i32, i32)>,
    pub(crate) limit: i64,
    pub(crate) read: Reading,
}

pub(crate) async fn list_vectors(project: &Project, p: &VectorPage<'_>) -> Result<Vec<VectorRow>> {
    let rows: Vec<StoredRow> = sqlx::query_as(
        "select key, case when $7 then data end, case when $5 then metadata end from storage.vectors \
         where index_id = $1 and ($2::text is null or key > $2) \
         and ($3::int is null or mod(hashtext(key)::bigint + 2147483648, $3) = $4) \
         order by key limit $6",
    )
    .bind(p.index)
    .bind(p.after)
    .bind(p.segment.map(|s| s.0))
    .bind(p.segment.map(|s| s.1))
    .bind(p.read.metadata)
    .bind(p.limit)
    .bind(p.read.data)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(unwrap_json).collect())
}

/// A vector to rank: its key, its encoded data and (when asked) its metadata.
pub(crate) type Candidate = (String, Vec<u8>, Option<Map<String, Value>>);

/// Every vector of an index as a stream (key, data, and metadata when `metadata`), for a
/// query to rank.
pub(crate) fn scan<'a>(
    project: &'a Project,
    index: Uuid,
    metadata: bool,
) -> impl Stream<Item = Result<Candidate>> + Send + 'a {
    sqlx::query_as::<_, (String, Vec<u8>, Option<Json<Map<String, Value>>>)>(
        "select key, data, case when $2 then metadata end from storage.vectors where index_id = $1",
    )
    .bind(index)
    .bind(metadata)
    .fetch(project.db().pool())
    .map_ok(|(key, data, metadata)| (key, data, metadata.map(|m| m.0)))
    .map_err(db)
}

/// Deletes the vectors of `keys` there are.
pub(crate) async fn delete_vectors(project: &Project, index: Uuid, keys: &[String]) -> Result<()> {
    sqlx::query("delete from storage.vectors where index_id = $1 and key = any($2)")
        .bind(index)
        .bind(keys)
        .execute(project.db().pool())
        .await
        .map_err(db)?;
    Ok(())
}
