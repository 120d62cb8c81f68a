//! `POST /object/list-v2/{bucket}` (storage-js `listV2`, storage3 `list_v2`): keys under a
//! raw prefix, paged with an opaque cursor, optionally folded into folders at the next `/`.
//! Names are full keys, as Supabase sends them; folders end in `/`.

use axum::Json;
use axum::extract::Path;
use base64::Engine as _;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::JsonBody;
use crate::error::{Error, Result};
use crate::rows::{like_escape, query_json, timestamp_json};

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
    JsonBody(body): JsonBody<ListV2Body>,
) -> Result<Json<Value>> {
    let listing = Listing::from_body(body)?;
    let pattern = format!("{}%", like_escape(&listing.prefix));
    let prefix_len = i32::try_from(listing.prefix.chars().count()).map_err(|_| Error::invalid("prefix is too long"))?;
    let after = listing.cursor.as_ref().map(|c| c.after.clone());
    let at = listing.cursor.as_ref().and_then(|c| c.at.clone());
    let fetch = listing.limit + 1;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&bucket, &pattern, &prefix_len, &after, &fetch, &at, &listing.folded];
    let rows = match query_json(&project, &ctx, &listing.sql(), &params).await? {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    Ok(Json(listing.page(rows)))
}

/// A `list-v2` request, checked: the page size, the prefix, whether names fold into folders,
/// and the order (a cursor keeps the order of the page it came from).
#[derive(Debug)]
struct Listing {
    limit: i64,
    prefix: String,
    folded: bool,
    cursor: Option<Cursor>,
    column: &'static str,
    order: &'static str,
}

impl Listing {
    fn from_body(body: ListV2Body) -> Result<Self> {
        let limit = match body.limit {
            None => MAX_LIMIT,
            Some(n) if n >= 1 => n.min(MAX_LIMIT),
            Some(_) => return Err(Error::invalid("limit must be at least 1")),
        };
        let folded = body.with_delimiter.unwrap_or(false);
        let cursor = body.cursor.as_deref().filter(|c| !c.is_empty()).map(Cursor::decode).transpose()?;
        let sort = body.sort_by.unwrap_or_default();
        let (column, order) = match &cursor {
            Some(c) => (column(Some(&c.column))?, order(Some(&c.order))?),
            None => (column(sort.column.as_deref())?, order(sort.order.as_deref())?),
        };
        // Folding into folders walks the names in order, so it sorts by name.
        let column = if folded { "name" } else { column };
        Ok(Listing { limit, prefix: body.prefix.unwrap_or_default(), folded, cursor, column, order })
    }

    /// The page's query: $1 bucket, $2 the prefix's LIKE pattern, $3 its length, $4 the
    /// cursor's entry, $5 the rows to fetch, $6 the cursor's timestamp, $7 whether to fold.
    fn sql(&self) -> String {
        let (column, order) = (self.column, self.order);
        let cmp = if order == "asc" { ">" } else { "<" };
        // With the delimiter ($7), a name with a `/` past the prefix stands for its folder: one
        // entry per folder, named up to and including that `/`. Sorting by name, the sort key
        // is a constant, so the cursor compares names alone.
        // Timestamps sort (and page) at the milliseconds they are answered with.
        let key = if column == "name" {
            "'-infinity'::timestamptz".to_owned()
        } else {
            format!("date_trunc('milliseconds', {column})")
        };
        // By name, the cursor also bounds the scan, so a page does not read the names before
        // it. Folded too: an entry is a prefix of its names, so an entry past the cursor has
        // only names past it (at one level, the cursor is never a longer path through an entry).
        let skip = if column == "name" { format!("name collate \"C\" {cmp} $4::text") } else { "true".to_owned() };
        format!(
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
               'metadata', metadata, 'updated_at', {updated}, 'created_at', {created}, \
               'last_accessed_at', {accessed}) order by n), '[]'::jsonb) from page",
            updated = timestamp_json!("updated_at"),
            created = timestamp_json!("created_at"),
            accessed = timestamp_json!("last_accessed_at"),
        )
    }

    /// The answer for `rows` (up to one more than the page, which tells a next page exists):
    /// folders and objects, and the cursor of the next page.
    fn page(&self, mut rows: Vec<Value>) -> Value {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let has_next = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = match rows.last() {
            Some(last) if has_next => Some(
                Cursor {
                    after: last["entry"].as_str().unwrap_or_default().to_owned(),
                    column: self.column.to_owned(),
                    order: self.order.to_owned(),
                    at: (self.column != "name").then(|| last[self.column].as_str().unwrap_or_default().to_owned()),
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
        json!({ "hasNext": has_next, "folders": folders, "objects": objects, "nextCursor": next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(body: Value) -> Result<Listing> {
        Listing::from_body(serde_json::from_value(body).expect("a list-v2 body"))
    }

    #[test]
    fn a_request_is_checked_and_folding_sorts_by_name() {
        let l = listing(json!({})).expect("defaults");
        assert_eq!((l.limit, l.column, l.order, l.folded), (MAX_LIMIT, "name", "asc", false));
        assert_eq!(listing(json!({ "limit": 5000 })).expect("capped").limit, MAX_LIMIT);
        assert!(listing(json!({ "limit": 0 })).is_err());
        assert!(listing(json!({ "sortBy": { "column": "size" } })).is_err());
        assert!(listing(json!({ "sortBy": { "order": "up" } })).is_err());
        let l = listing(json!({ "with_delimiter": true, "sortBy": { "column": "updated_at", "order": "DESC" } }))
            .expect("folded");
        assert_eq!((l.column, l.order), ("name", "desc"));
        assert!(listing(json!({ "cursor": "not base64 json" })).is_err());
    }

    #[test]
    fn a_cursor_keeps_the_order_of_its_page() {
        let first = listing(json!({ "limit": 1, "sortBy": { "column": "created_at", "order": "desc" } })).expect("l");
        let rows = vec![
            json!({ "entry": "b.txt", "folder": false, "id": "1", "created_at": "2026-01-02T00:00:00Z" }),
            json!({ "entry": "a.txt", "folder": false, "id": "2", "created_at": "2026-01-01T00:00:00Z" }),
        ];
        let page = first.page(rows);
        assert_eq!(page["hasNext"], true);
        assert_eq!(page["objects"].as_array().map(Vec::len), Some(1));
        let cursor = page["nextCursor"].as_str().expect("a cursor");
        let next = listing(json!({ "cursor": cursor, "sortBy": { "column": "name" } })).expect("next");
        assert_eq!((next.column, next.order), ("created_at", "desc"), "the cursor's order wins");
        assert_eq!(next.cursor.as_ref().and_then(|c| c.at.as_deref()), Some("2026-01-02T00:00:00Z"));
    }

    #[test]
    fn folders_and_objects_are_told_apart() {
        let l = listing(json!({ "with_delimiter": true })).expect("l");
        let page = l.page(vec![
            json!({ "entry": "docs/", "folder": true }),
            json!({ "entry": "readme.md", "folder": false, "id": "9" }),
        ]);
        assert_eq!(page["folders"], json!([{ "name": "docs/", "key": "docs/" }]));
        assert_eq!(page["objects"][0]["key"], "readme.md");
        assert_eq!((page["hasNext"].as_bool(), page["nextCursor"].is_null()), (Some(false), true));
    }
}
