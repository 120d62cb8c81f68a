//! Moving (renaming) an object within or across buckets.

use axum::Json;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::Deserialize;
use serde_json::{Value, json};

use super::check_name;
use super::upload::{check_fits, duplicate};
use crate::api::JsonBody;
use crate::error::{Error, Result};
use crate::rows::{self, BucketInfo, Reader, bucket_info};

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

impl MoveBody {
    /// Checks both names and finds the destination bucket (the source's when none is named),
    /// as move and copy both start.
    pub(super) async fn destination(&self, project: &Project) -> Result<BucketInfo> {
        check_name(&self.source_key)?;
        check_name(&self.destination_key)?;
        bucket_info(project, self.destination_bucket.as_deref().unwrap_or(&self.bucket_id)).await
    }
}

pub(crate) async fn move_object(
    project: Project,
    ctx: RequestContext,
    JsonBody(body): JsonBody<MoveBody>,
) -> Result<Json<Value>> {
    let destination = body.destination(&project).await?;
    if destination.id != body.bucket_id {
        let metadata =
            rows::object_row(&project, Reader::Caller(&ctx), "metadata", &body.bucket_id, &body.source_key).await?;
        check_fits(&destination, &metadata)?;
    }
    // The bytes stay where they are: only the row changes.
    let from = (body.bucket_id.as_str(), body.source_key.as_str());
    let moved =
        rows::move_object(&project, &ctx, from, (&destination.id, &body.destination_key)).await.map_err(duplicate)?;
    moved.ok_or_else(Error::no_such_key)?;
    Ok(Json(json!({ "message": "Successfully moved" })))
}
