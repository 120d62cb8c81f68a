//! Vector buckets: CreateVectorBucket, GetVectorBucket, ListVectorBuckets, DeleteVectorBucket.

use axum::Json;
use forge_core::error::DbErrorKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Answer, Call, Failure, ListNames, MAX_LIST_NAMES, check_name, conflict, db, not_found, page_size, paged, required,
    with_token,
};
use crate::error::{Error, ErrorKind};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BucketRef {
    pub(super) vector_bucket_name: Option<String>,
}

pub(super) async fn create_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    check_name(&name, "vector bucket name", false)?;
    let inserted = sqlx::query("insert into storage.buckets_vectors (id) values ($1)")
        .bind(&name)
        .execute(project.db().pool())
        .await;
    match inserted {
        Ok(_) => Ok(Json(json!({}))),
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::UniqueViolation) => {
            Err(conflict("Vector bucket", &name))
        }
        Err(e) => Err(db(e)),
    }
}

pub(super) async fn get_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    let created: Option<i64> =
        sqlx::query_scalar("select extract(epoch from created_at)::bigint from storage.buckets_vectors where id = $1")
            .bind(&name)
            .fetch_optional(project.db().pool())
            .await
            .map_err(db)?;
    let created = created.ok_or_else(|| not_found("Vector bucket", &name))?;
    Ok(Json(json!({ "vectorBucket": { "vectorBucketName": name, "creationTime": created } })))
}

pub(super) async fn list_buckets(Call { project, body }: Call<ListNames>) -> Answer {
    let limit = page_size(body.max_results, 100, MAX_LIST_NAMES)?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select id, extract(epoch from created_at)::bigint from storage.buckets_vectors \
         where ($1::text is null or starts_with(id, $1)) and ($2::text is null or id > $2) \
         order by id limit $3",
    )
    .bind(&body.prefix)
    .bind(&body.next_token)
    .bind(limit + 1)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)?;
    let (page, next) = paged(rows, limit, |(name, _)| name.clone());
    let buckets: Vec<Value> =
        page.into_iter().map(|(name, t)| json!({ "vectorBucketName": name, "creationTime": t })).collect();
    Ok(Json(with_token(json!({ "vectorBuckets": buckets }), next)))
}

pub(super) async fn delete_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    let deleted = sqlx::query(
        "delete from storage.buckets_vectors where id = $1 \
         and not exists (select 1 from storage.vector_indexes where bucket_id = $1)",
    )
    .bind(&name)
    .execute(project.db().pool())
    .await;
    let not_empty = || {
        Failure(Error::new(
            ErrorKind::VectorBucketNotEmpty,
            format!("The vector bucket {name} still has indexes: delete them first"),
        ))
    };
    match deleted {
        Ok(done) if done.rows_affected() == 1 => Ok(Json(json!({}))),
        // An index created meanwhile holds the bucket.
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::ForeignKeyViolation) => Err(not_empty()),
        Err(e) => Err(db(e)),
        Ok(_) => {
            let exists: bool =
                sqlx::query_scalar("select exists (select 1 from storage.buckets_vectors where id = $1)")
                    .bind(&name)
                    .fetch_one(project.db().pool())
                    .await
                    .map_err(db)?;
            Err(if exists { not_empty() } else { not_found("Vector bucket", &name) })
        }
    }
}

// ---------------------------------------------------------------- indexes
