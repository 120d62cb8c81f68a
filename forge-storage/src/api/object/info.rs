//! Object info (`GET /object/info/...`): the row, authenticated or public.

use axum::Json;
use serde_json::Value;

use super::*;
use crate::error::Result;

pub(super) const INFO_JSON: &str = "jsonb_build_object('id', id, 'name', name, 'version', version, 'bucket_id', bucket_id, \
     'size', (metadata ->> 'size')::bigint, 'content_type', metadata ->> 'mimetype', \
     'cache_control', metadata ->> 'cacheControl', 'etag', metadata ->> 'eTag', \
     'metadata', coalesce(user_metadata, '{}'::jsonb), 'last_modified', updated_at, 'created_at', created_at)";

/// `GET /object/info/{authenticated,public}/{bucket}/{path}` and `GET /object/info/{bucket}/{path}`.
pub(crate) async fn info<M: AccessMode>(read: ObjectRead<M>) -> Result<Json<Value>> {
    read.row(INFO_JSON).await.map(Json)
}
