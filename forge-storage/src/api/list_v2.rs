//! `POST /object/list-v2/{bucket}` (storage-js `listV2`, storage3 `list_v2`): keys under a
//! raw prefix, paged with an opaque cursor, optionally folded into folders at the next `/`.
//! Names are full keys, as Supabase sends them; folders end in `/`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use base64::Engine as _;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::object::list::like_escape;
use super::{parse_body, rls_json};
use crate::error::{Error, Result};

/// The most entries a page holds (Supabase's limit and default).
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListV2Body {
    prefix: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
    with_delimiter: Option<bool>,
    #[serde(rename = "sortBy")]
    sort_by: Option<SortBy>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct SortBy {
    column: Option<String>,
    order: Option<String>,
}

/// Where the next page starts: after `after` (and, sorting by a timestamp, its value `at`),
/// in the order of the first page. Sent base64url-encoded, opaque to clients.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    after: String,
    column: String,
    order: String,
    #[serde(default)]
    at: Option<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(raw: &str) -> Result<Self> {
        let bad = || Error::invalid("Invalid cursor");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&json).map_err(|_| bad())?;
        // The timestamp goes to Postgres as text: it must be one.
        if let Some(at) = &cursor.at {
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).map_err(|_| bad())?;
        }
        Ok(cursor)
    }
}

fn column(name: Option<&str>) -> Result<&'static str> {
    match name.unwrap_or("name") {
        "name" => Ok("name"),
        "updated_at" => Ok("updated_at"),
        "created_at" => Ok("created_at"),
        other => Err(Error::invalid(format!("Invalid sortBy column {other:?}"))),
    }
}

fn order(name: Option<&str>) -> Result<&'static str> {
    match name.unwrap_or("asc").to_ascii_lowercase().as_str() {
        "asc" => Ok("asc"),
        "desc" => Ok("desc"),
        other => Err(Error::invalid(format!("Invalid sortBy order {other:?}"))),
    }
}

pub(crate) async fn list_v2(
    project: Project,
    ctx: RequestContext,
    Path(bucket): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let body: ListV2Body = parse_body(&body)?;
    let limit = match body.limit {
        None => MAX_LIMIT,
        Some(n) if n >= 1 => n.min(MAX_LIMIT),
        Some(_) => return Err(Error::invalid("limit must be at least 1")),
    };
    let prefix = body.prefix.unwrap_or_default();
    let folded = body.with_delimiter.unwrap_or(false);
    // A cursor keeps the order of the page it came from.
    let cursor = body.cursor.as_deref().filter(|c| !c.is_empty()).map(Cursor::decode).transpose()?;
    let sort = body.sort_by.unwrap_or_default();
    let (column, order) = match &cursor {
        Some(c) => (column(Some(&c.column))?, order(Some(&c.order))?),
        None => (column(sort.column.as_deref())?, order(sort.order.as_deref())?),
    };
    // Folding into folders walks the names in order, so it sorts by name.
    let column = if folded { "name" } else { column };
    let cmp = if order == "asc" { ">" } else { "<" };
    let pattern = format!("{}%", like_escape(&prefix));
    let prefix_len = i32::try_from(prefix.chars().count()).map_err(|_| Error::invalid("prefix is too long"))?;
    let after = cursor.as_ref().map(|c| c.after.clone());
    let at = cursor.as_ref().and_then(|c| c.at.clone());

    // With the delimiter ($7), a name with a `/` past the prefix stands for its folder: one
    // entry per folder, named up to and including that `/`. Sorting by name, the sort key is
    // a constant, so the cursor compares names alone.
    let key = if column == "name" { "'-infinity'::timestamptz" } else { column };
    // By name, the cursor also bounds the scan, so a page does not read the names before it.
    // Folded too: an entry is a prefix of its names, so an entry past the cursor has only
    // names past it (at one level, the cursor is never a longer path through an entry).
    let skip = if column == "name" { format!("name collate \"C\" {cmp} $4::text") } else { "true".to_owned() };
    let sql = format!(
        "with listed as ( \
           select (case when $7 and strpos(substr(name, $3 + 1), '/') > 0 \
               then left(name, $3 + strpos(substr(name, $3 + 1), '/')) else name end) collate \"C\" as entry, \
             id, name, metadata, updated_at, created_at, last_accessed_at \
           from storage.objects where bucket_id = $1 and name like $2 escape '\\' \
             and ($4::text is null or {skip})), \
         entries as ( \
           select distinct on (entry) entry, entry <> name collate \"C\" as folder, id, metadata, updated_at, \
             created_at, last_accessed_at, {key} as sort_key \
           from listed order by entry, name collate \"C\"), \
         page as (select *, row_number() over (order by sort_key {order}, entry {order}) as n from entries \
           where $4::text is null \
             or (sort_key, entry) {cmp} (coalesce($6::text::timestamptz, '-infinity'), $4::text collate \"C\") \
           order by sort_key {order}, entry {order} limit $5) \
         select coalesce(jsonb_agg(jsonb_build_object('entry', entry, 'folder', folder, 'id', id, \
           'metadata', metadata, 'updated_at', updated_at, 'created_at', created_at, \
           'last_accessed_at', last_accessed_at) order by n), '[]'::jsonb) from page"
    );
    let fetch = limit + 1;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&bucket, &pattern, &prefix_len, &after, &fetch, &at, &folded];
    let rows = rls_json(&project, &ctx, &sql, &params).await?;
    let mut rows = match rows {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    let has_next = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = match rows.last() {
        Some(last) if has_next => Some(
            Cursor {
                after: last["entry"].as_str().unwrap_or_default().to_owned(),
                column: column.to_owned(),
                order: order.to_owned(),
                at: (column != "name").then(|| last[column].as_str().unwrap_or_default().to_owned()),
            }
            .encode(),
        ),
        _ => None,
    };
    let (mut folders, mut objects) = (Vec::new(), Vec::new());
    for row in rows {
        let key = row["entry"].clone();
        if row["folder"] == json!(true) {
            folders.push(json!({ "name": key, "key": key }));
        } else {
            objects.push(json!({
                "id": row["id"],
                "name": key,
                "key": key,
                "metadata": row["metadata"],
                "updated_at": row["updated_at"],
                "created_at": row["created_at"],
                "last_accessed_at": row["last_accessed_at"],
            }));
        }
    }
    Ok(Json(json!({ "hasNext": has_next, "folders": folders, "objects": objects, "nextCursor": next_cursor })))
}
