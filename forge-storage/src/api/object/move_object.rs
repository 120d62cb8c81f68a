//! Moving (renaming) an object within or across buckets.

use axum::Json;
use axum::body::Bytes;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use super::{bucket_info, parse_body, rls_json};
use crate::error::{Error, Result};

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct MoveBody {
    #[serde(rename = "bucketId")]
    pub(super) bucket_id: String,
    #[serde(rename = "sourceKey")]
    pub(super) source_key: String,
    #[serde(rename = "destinationKey")]
    pub(super) destination_key: String,
    #[serde(rename = "destinationBucket")]
    pub(super) destination_bucket: Option<String>,
}

pub(crate) async fn move_object(project: Project, ctx: RequestContext, body: Bytes) -> Result<Json<Value>> {
    let body: MoveBody = parse_body(&body)?;
    check_name(&body.source_key)?;
    check_name(&body.destination_key)?;
    let to_bucket = body.destination_bucket.clone().unwrap_or_else(|| body.bucket_id.clone());
    let destination = bucket_info(&project, &to_bucket).await?;
    if destination.id != body.bucket_id {
        let sql = "select metadata from storage.objects where bucket_id = $1 and name = $2";
        let metadata = rls_json(&project, &ctx, sql, &[&body.bucket_id, &body.source_key])
            .await?
            .ok_or_else(Error::no_such_key)?;
        check_fits(&destination, &metadata)?;
    }
    // The bytes stay where they are: only the row changes.
    let sql = "update storage.objects set bucket_id = $3, name = $4, updated_at = now() \
               where bucket_id = $1 and name = $2 returning to_jsonb(id)";
    let moved = rls_json(&project, &ctx, sql, &[&body.bucket_id, &body.source_key, &to_bucket, &body.destination_key])
        .await
        .map_err(duplicate)?;
    moved.ok_or_else(Error::no_such_key)?;
    Ok(Json(json!({ "message": "Successfully moved" })))
}
