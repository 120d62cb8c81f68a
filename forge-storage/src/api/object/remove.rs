//! Removing one object, or many from a bucket.

use axum::body::Bytes;
use axum::extract::Path;
use axum::{Extension, Json};
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use super::{parse_body, rls_json};
use crate::blob;
use crate::error::{Error, Result};
use crate::service::Storage;

pub(super) const FILE_OBJECT_JSON: &str = "jsonb_build_object('name', name, 'id', id, 'updated_at', updated_at, \
     'created_at', created_at, 'last_accessed_at', last_accessed_at, 'metadata', metadata, \
     'bucket_id', bucket_id, 'owner', owner, 'user_metadata', user_metadata)";

pub(crate) async fn remove(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    ObjectPath { bucket, name }: ObjectPath,
) -> Result<Json<Value>> {
    let sql = "delete from storage.objects where bucket_id = $1 and name = $2 returning to_jsonb(version)";
    let version = rls_json(&project, &ctx, sql, &[&bucket, &name.as_str()]).await?.ok_or_else(Error::no_such_key)?;
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
    body: Bytes,
) -> Result<Json<Value>> {
    let body: RemoveBody = parse_body(&body)?;
    if body.prefixes.is_empty() || body.prefixes.len() > 1000 {
        return Err(Error::invalid("prefixes must name between 1 and 1000 objects"));
    }
    let sql = format!(
        "with gone as (delete from storage.objects where bucket_id = $1 and name = any($2) \
           returning {FILE_OBJECT_JSON} as j, version) \
         select jsonb_build_object('objects', coalesce(jsonb_agg(j), '[]'::jsonb), \
           'versions', coalesce(jsonb_agg(version), '[]'::jsonb)) from gone"
    );
    let out = rls_json(&project, &ctx, &sql, &[&bucket, &body.prefixes]).await?.unwrap_or_default();
    let versions = out["versions"].as_array().cloned().unwrap_or_default();
    let paths = versions.iter().filter_map(Value::as_str).map(|v| Storage::blob_path(&project, v)).collect();
    blob::forget(storage.store().as_ref(), paths).await;
    Ok(Json(out["objects"].clone()))
}
