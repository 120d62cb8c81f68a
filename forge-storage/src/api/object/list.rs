//! Listing a folder (`POST /object/list/{bucket}`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{parse_body, rls_json};
use crate::error::{Error, Result};

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

/// Escapes `%`, `_` and `\` for a LIKE pattern.
pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

pub(crate) async fn list(
    project: Project,
    ctx: RequestContext,
    Path(bucket): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let body: ListBody = parse_body(&body)?;
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
    let pattern = format!("{}%", like_escape(&folder));
    let search = format!("{}%", like_escape(body.search.as_deref().unwrap_or("")));
    // Direct children are files; deeper names show as one folder entry each (no id).
    // Names sort case-insensitively with folders and files interleaved; any other column
    // lists the folders first (by name), then the files by that column (Supabase's rules).
    let ordering = if column == "name" {
        format!("lower(name) collate \"C\" {order}")
    } else {
        format!(
            "is_file, case when not is_file then lower(name) end collate \"C\" {order}, {column} {order}, lower(name) collate \"C\" {order}"
        )
    };
    // Direct children are files; deeper names show as one folder entry each (no id).
    let sql = format!(
        "with entries as ( \
           select distinct on (path_tokens[$3], array_length(path_tokens, 1) = $3) \
             path_tokens[$3] as name, array_length(path_tokens, 1) = $3 as is_file, \
             case when array_length(path_tokens, 1) = $3 then id end as id, \
             case when array_length(path_tokens, 1) = $3 then updated_at end as updated_at, \
             case when array_length(path_tokens, 1) = $3 then created_at end as created_at, \
             case when array_length(path_tokens, 1) = $3 then last_accessed_at end as last_accessed_at, \
             case when array_length(path_tokens, 1) = $3 then metadata end as metadata \
           from storage.objects \
           where bucket_id = $1 and name ilike $2 escape '\\' and path_tokens[$3] ilike $4 escape '\\' \
           order by path_tokens[$3], array_length(path_tokens, 1) = $3 desc), \
         page as (select *, row_number() over (order by {ordering}) as n from entries \
           order by {ordering} limit $5 offset $6) \
         select coalesce(jsonb_agg(jsonb_build_object('name', name, 'id', id, 'updated_at', updated_at, \
           'created_at', created_at, 'last_accessed_at', last_accessed_at, 'metadata', metadata) order by n), \
           '[]'::jsonb) from page"
    );
    let out = rls_json(&project, &ctx, &sql, &[&bucket, &pattern, &level, &search, &limit, &offset]).await?;
    Ok(Json(out.unwrap_or_else(|| json!([]))))
}
