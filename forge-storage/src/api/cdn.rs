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
use super::rls_json;
use crate::error::{Error, Result};

pub(crate) async fn purge(
    project: Project,
    ctx: RequestContext,
    ObjectPath { bucket, name }: ObjectPath,
) -> Result<Json<Value>> {
    let sql = "select to_jsonb(id) from storage.objects where bucket_id = $1 and name = $2";
    rls_json(&project, &ctx, sql, &[&bucket, &name.as_str()]).await?.ok_or_else(Error::no_such_key)?;
    Ok(Json(json!({ "message": "success" })))
}

pub(crate) async fn purge_bucket(
    project: Project,
    ctx: RequestContext,
    Path(bucket): Path<String>,
) -> Result<Json<Value>> {
    // The bucket as the caller sees it: purging tells nobody what they may not read.
    let sql = "select to_jsonb(id) from storage.buckets where id = $1";
    rls_json(&project, &ctx, sql, &[&bucket]).await?.ok_or_else(Error::no_such_bucket)?;
    Ok(Json(json!({ "message": "success" })))
}
