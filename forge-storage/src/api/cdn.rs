//! `DELETE /cdn/{bucket}[/{path}]` (storage-js `purgeCache` and `purgeBucketCache`). Forge
//! puts no CDN in front of storage, so there is nothing to purge: the request is checked as
//! Supabase checks it (the object must be visible to the caller, the bucket must exist) and
//! then succeeds.

use axum::Json;
use axum::extract::Path;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde_json::{Value, json};

use super::object::ObjectPath;
use crate::error::{Error, Result};
use crate::rows;

pub(crate) async fn purge(
    project: Project,
    ctx: RequestContext,
    ObjectPath { bucket, name }: ObjectPath,
) -> Result<Json<Value>> {
    if !rows::object_visible(&project, &ctx, &bucket, &name).await? {
        return Err(Error::no_such_key());
    }
    Ok(Json(json!({ "message": "success" })))
}

pub(crate) async fn purge_bucket(
    project: Project,
    ctx: RequestContext,
    Path(bucket): Path<String>,
) -> Result<Json<Value>> {
    // The bucket as the caller sees it: purging tells nobody what they may not read.
    if !rows::bucket_visible(&project, &ctx, &bucket).await? {
        return Err(Error::no_such_bucket());
    }
    Ok(Json(json!({ "message": "success" })))
}
