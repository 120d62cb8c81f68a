//! Object info (`GET /object/info/...`): the row, authenticated or public.

use axum::Json;
use axum::extract::Path;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde_json::Value;

use super::*;
use crate::error::Result;

pub(super) const INFO_JSON: &str = "jsonb_build_object('id', id, 'name', name, 'version', version, 'bucket_id', bucket_id, \
     'size', (metadata ->> 'size')::bigint, 'content_type', metadata ->> 'mimetype', \
     'cache_control', metadata ->> 'cacheControl', 'etag', metadata ->> 'eTag', \
     'metadata', coalesce(user_metadata, '{}'::jsonb), 'last_modified', updated_at, 'created_at', created_at)";

pub(crate) async fn info(
    project: Project,
    ctx: RequestContext,
    Path((bucket, name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    check_name(&name)?;
    object_row(&project, Reader::Caller(&ctx), INFO_JSON, &bucket, &name).await.map(Json)
}

pub(crate) async fn info_public(project: Project, Path((bucket, name)): Path<(String, String)>) -> Result<Json<Value>> {
    check_name(&name)?;
    ensure_public(&project, &bucket).await?;
    object_row(&project, Reader::Service, INFO_JSON, &bucket, &name).await.map(Json)
}
