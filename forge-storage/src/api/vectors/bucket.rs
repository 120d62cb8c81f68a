//! Vector buckets: CreateVectorBucket, GetVectorBucket, ListVectorBuckets, DeleteVectorBucket.

use axum::Json;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Answer, Call, Failure, ListNames, MAX_LIST_NAMES, check_name, conflict, not_found, page_size, paged, required,
    with_token,
};
use crate::error::{Error, ErrorKind};
use crate::rows::{BucketDeletion, vectors};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BucketRef {
    pub(super) vector_bucket_name: Option<String>,
}

pub(super) async fn create_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    check_name(&name, "vector bucket name", false)?;
    if !vectors::create_bucket(&project, &name).await? {
        return Err(conflict("Vector bucket", &name));
    }
    Ok(Json(json!({})))
}

pub(super) async fn get_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    let created = vectors::bucket_created(&project, &name).await?;
    let created = created.ok_or_else(|| not_found("Vector bucket", &name))?;
    Ok(Json(json!({ "vectorBucket": { "vectorBucketName": name, "creationTime": created } })))
}

pub(super) async fn list_buckets(Call { project, body }: Call<ListNames>) -> Answer {
    let limit = page_size(body.max_results, 100, MAX_LIST_NAMES)?;
    let rows = vectors::list_buckets(&project, body.prefix.as_deref(), body.next_token.as_deref(), limit + 1).await?;
    let (page, next) = paged(rows, limit, |(name, _)| name.clone());
    let buckets: Vec<Value> =
        page.into_iter().map(|(name, t)| json!({ "vectorBucketName": name, "creationTime": t })).collect();
    Ok(Json(with_token(json!({ "vectorBuckets": buckets }), next)))
}

pub(super) async fn delete_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    let not_empty = || {
        Failure(Error::new(
            ErrorKind::VectorBucketNotEmpty,
            format!("The vector bucket {name} still has indexes: delete them first"),
        ))
    };
    match vectors::delete_bucket(&project, &name).await? {
        BucketDeletion::Deleted => Ok(Json(json!({}))),
        BucketDeletion::NotEmpty => Err(not_empty()),
        BucketDeletion::Missing => Err(not_found("Vector bucket", &name)),
    }
}

// ---------------------------------------------------------------- indexes
