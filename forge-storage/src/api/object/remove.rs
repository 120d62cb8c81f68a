//! Removing one object, or many from a bucket.

use axum::extract::Path;
use axum::{Extension, Json};
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ObjectPath;
use crate::api::JsonBody;
use crate::blob;
use crate::error::{Error, Result};
use crate::rows;
use crate::service::Storage;

pub(crate) async fn remove(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    ObjectPath { bucket, name }: ObjectPath,
) -> Result<Json<Value>> {
    let version = rows::delete_object(&project, &ctx, &bucket, &name).await?.ok_or_else(Error::no_such_key)?;
    if let Some(v) = version.as_str() {
        blob::forget(storage.store().as_ref(), vec![Storage::blob_path(&project, v)]).await;
    }
    Ok(Json(json!({ "message": "Successfully deleted" })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct RemoveBody {
    pub(super) prefixes: Vec<String>,
}

pub(crate) async fn remove_many(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path(bucket): Path<String>,
    JsonBody(body): JsonBody<RemoveBody>,
) -> Result<Json<Value>> {
    if body.prefixes.is_empty() || body.prefixes.len() > 1000 {
        return Err(Error::invalid("prefixes must name between 1 and 1000 objects"));
    }
    let out = rows::delete_objects(&project, &ctx, &bucket, &body.prefixes).await?;
    let versions = out["versions"].as_array().cloned().unwrap_or_default();
    let paths = versions.iter().filter_map(Value::as_str).map(|v| Storage::blob_path(&project, v)).collect();
    blob::forget(storage.store().as_ref(), paths).await;
    Ok(Json(out["objects"].clone()))
}
