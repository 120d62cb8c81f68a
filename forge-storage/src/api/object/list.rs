//! Listing a folder (`POST /object/list/{bucket}`).

use axum::Json;
use axum::extract::Path;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::JsonBody;
use crate::error::{Error, Result};
use crate::rows;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct SortBy {
    pub(super) column: Option<String>,
    pub(super) order: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListBody {
    pub(super) prefix: Option<String>,
    pub(super) limit: Option<i64>,
    pub(super) offset: Option<i64>,
    #[serde(rename = "sortBy")]
    pub(super) sort_by: Option<SortBy>,
    pub(super) search: Option<String>,
}

pub(crate) async fn list(
    project: Project,
    ctx: RequestContext,
    Path(bucket): Path<String>,
    JsonBody(body): JsonBody<ListBody>,
) -> Result<Json<Value>> {
    let out = rows::list_folder(&project, &ctx, &folder_page(bucket, body)?).await?;
    Ok(Json(out.unwrap_or_else(|| json!([]))))
}

/// The page of `bucket` a `list` request asks for.
pub(crate) fn folder_page(bucket: String, body: ListBody) -> Result<rows::FolderPage> {
    let prefix = body.prefix.unwrap_or_default();
    let prefix = prefix.trim_matches('/');
    let (folder, level) = if prefix.is_empty() {
        (String::new(), 1i32)
    } else {
        (format!("{prefix}/"), prefix.split('/').count() as i32 + 1)
    };
    let sort = body.sort_by.unwrap_or_default();
    let column = match sort.column.as_deref().unwrap_or("name") {
        "name" => "name",
        "updated_at" => "updated_at",
        "created_at" => "created_at",
        "last_accessed_at" => "last_accessed_at",
        other => return Err(Error::invalid(format!("Invalid sortBy column {other:?}"))),
    };
    let order = match sort.order.as_deref().unwrap_or("asc").to_ascii_lowercase().as_str() {
        "asc" => "asc",
        "desc" => "desc",
        other => return Err(Error::invalid(format!("Invalid sortBy order {other:?}"))),
    };
    let limit = body.limit.unwrap_or(100).clamp(1, 1500);
    let offset = body.offset.unwrap_or(0).max(0);
    Ok(rows::FolderPage {
        bucket,
        folder,
        level,
        search: body.search.unwrap_or_default(),
        column,
        order,
        limit,
        offset,
    })
}
