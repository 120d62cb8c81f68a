//! `POST /object/list-v2/{bucket}` (storage-js `listV2`, storage3 `list_v2`): keys under a
//! raw prefix, paged with an opaque cursor, optionally folded into folders at the next `/`.
//!
//! As Supabase Storage answers it (`src/storage/object.ts` `listObjectsV2`, the
//! `storage.search_v2` / `search_by_timestamp` functions of its `0050-search-v2-optimised`
//! migration):
//!
//! - Names are full keys; a folder's name ends in `/`.
//! - With the delimiter, every entry also has a `key`: its path segment at the prefix's depth
//!   (`split_part(name, '/', levels)`, with `levels` the number of `/`-separated parts of the
//!   prefix, 1 for none), so the folder `testpath/` has the key `testpath`. A folder has every
//!   other field null, but sorted by a timestamp its `created_at` and `updated_at` are the
//!   oldest `created_at` of its objects, which is what it sorts by.
//! - Without the delimiter, objects have no `key`.
//! - By name, entries sort in byte order, a folder where its first object would be; by
//!   `created_at` or `updated_at`, at millisecond precision, then by name (a folder's without
//!   its `/`), folders and objects together.
//! - `nextCursor` and `nextCursorKey` (the last entry's name, a folder's without its `/`) are
//!   there only when there is a next page.

use axum::Json;
use axum::extract::Path;
use base64::Engine as _;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::JsonBody;
use crate::error::{Error, Result};
use crate::rows::{Statement, like_escape, prefix_range, query_json, timestamp_json};
use tokio_postgres::types::ToSql;

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
    let statement = listing.statement(bucket)?;
    let rows = match query_json(&project, &ctx, &statement.sql, &statement.params()).await? {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    Ok(Json(listing.page(rows)))
}

/// A `list-v2` request, checked: the page size, the prefix, whether names fold into folders,
/// and the order (a cursor keeps the order of the page it came from).
#[derive(Debug)]
pub(crate) struct Listing {
    limit: i64,
    prefix: String,
    folded: bool,
    cursor: Option<Cursor>,
    column: &'static str,
    order: &'static str,
}

impl Listing {
    pub(crate) fn from_body(body: ListV2Body) -> Result<Self> {
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
        Ok(Listing { limit, prefix: body.prefix.unwrap_or_default(), folded, cursor, column, order })
    }

    /// The page's statement on `bucket`, with its parameters (see [`Listing::sql`]).
    pub(crate) fn statement(&self, bucket: String) -> Result<Statement> {
        let prefix_len =
            i32::try_from(self.prefix.chars().count()).map_err(|_| Error::invalid("prefix is too long"))?;
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![
            Box::new(bucket),
            Box::new(format!("{}%", like_escape(&self.prefix))),
            Box::new(prefix_len),
            Box::new(self.cursor.as_ref().map(|c| c.after.clone())),
            Box::new(self.limit + 1),
            Box::new(self.cursor.as_ref().and_then(|c| c.at.clone())),
            Box::new(self.folded),
        ];
        if let Some((low, high)) = prefix_range(&self.prefix) {
            params.push(Box::new(low.to_owned()));
            params.push(Box::new(high));
        }
        Ok(Statement { sql: self.sql(), params })
    }

    /// The page's query: $1 bucket, $2 the prefix's LIKE pattern, $3 its length, $4 the
    /// cursor's entry, $5 the rows to fetch, $6 the cursor's timestamp, $7 whether to fold,
    /// and when the prefix has a [`prefix_range`], $8 and $9 its bounds.
    fn sql(&self) -> String {
        let (column, order) = (self.column, self.order);
        let cmp = if order == "asc" { ">" } else { "<" };
        let by_name = column == "name";
        // With the delimiter ($7), a name with a `/` past the prefix stands for its folder: one
        // entry per folder, named up to and including that `/`. Sorting by name, the sort key
        // is a constant, so the cursor compares names alone; by a timestamp, a folder sorts by
        // its oldest object's creation, at the milliseconds it is answered with.
        let sort_key = if by_name {
            "'-infinity'::timestamptz".to_owned()
        } else {
            format!(
                "coalesce(date_trunc('milliseconds', case when folder then first_created else {column} end), 'epoch')"
            )
        };
        // By a timestamp, ties go by name, a folder's without its `/` (Storage's order).
        let sort_name = if by_name { "entry" } else { "case when folder then left(entry, -1) else entry end" };
        // By name, the cursor also bounds the scan, so a page does not read the names before
        // it. Folded too: an entry is a prefix of its names, so an entry past the cursor has
        // only names past it (at one level, the cursor is never a longer path through an entry).
        let skip = if by_name { format!("name collate \"C\" {cmp} $4::text") } else { "true".to_owned() };
        // The prefix also bounds the scan, by a range of names the index `name_prefix_search`
        // serves (`like` with a parameter serves none); the `like` still decides.
        let range =
            if prefix_range(&self.prefix).is_some() { "and name ~>=~ $8::text and name ~<~ $9::text " } else { "" };
        format!(
            "with listed as ( \
               select (case when $7 and strpos(substr(name, $3 + 1), '/') > 0 \
                   then left(name, $3 + strpos(substr(name, $3 + 1), '/')) else name end) collate \"C\" as entry, \
                 id, name, metadata, updated_at, created_at, last_accessed_at \
               from storage.objects where bucket_id = $1 {range}and name like $2 escape '\\' \
                 and ($4::text is null or {skip})), \
             entries as ( \
               select distinct on (entry) entry, entry <> name collate \"C\" as folder, id, metadata, updated_at, \
                 created_at, last_accessed_at, min(created_at) over (partition by entry) as first_created \
               from listed order by entry, name collate \"C\"), \
             keyed as ( \
               select *, {sort_key} as sort_key, ({sort_name}) collate \"C\" as sort_name, \
                 case when not folder then updated_at when {by_time} then first_created end as shown_updated, \
                 case when not folder then created_at when {by_time} then first_created end as shown_created, \
                 case when not folder then last_accessed_at end as shown_accessed \
               from entries), \
             page as (select *, row_number() over (order by sort_key {order}, sort_name {order}) as n from keyed \
               where $4::text is null \
                 or (sort_key, sort_name) {cmp} (coalesce($6::text::timestamptz, '-infinity'), $4::text collate \"C\") \
               order by sort_key {order}, sort_name {order} limit $5) \
             select coalesce(jsonb_agg(jsonb_build_object('entry', entry, 'folder', folder, 'sort_name', sort_name, \
               'at', {at}, 'id', case when not folder then id end, 'metadata', case when not folder then metadata end, \
               'updated_at', {updated}, 'created_at', {created}, 'last_accessed_at', {accessed}) order by n), \
               '[]'::jsonb) from page",
            by_time = !by_name,
            at = timestamp_json!("sort_key"),
            updated = timestamp_json!("shown_updated"),
            created = timestamp_json!("shown_created"),
            accessed = timestamp_json!("shown_accessed"),
        )
    }

    /// The answer for `rows` (up to one more than the page, which tells a next page exists):
    /// folders and objects, and the cursor of the next page.
    fn page(&self, mut rows: Vec<Value>) -> Value {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let has_next = rows.len() > limit;
        rows.truncate(limit);
        // The depth of the prefix, in `/`-separated parts: which segment is an entry's key.
        let levels = if self.prefix.is_empty() { 1 } else { self.prefix.split('/').count() };
        let (mut folders, mut objects) = (Vec::new(), Vec::new());
        for row in &rows {
            let name = row["entry"].as_str().unwrap_or_default();
            let key = name.trim_end_matches('/').split('/').nth(levels - 1).unwrap_or_default();
            if row["folder"] == json!(true) {
                folders.push(json!({
                    "key": key,
                    "name": name,
                    "id": null,
                    "updated_at": row["updated_at"],
                    "created_at": row["created_at"],
                    "last_accessed_at": null,
                    "metadata": null,
                }));
            } else {
                let mut object = json!({
                    "id": row["id"],
                    "name": name,
                    "metadata": row["metadata"],
                    "updated_at": row["updated_at"],
                    "created_at": row["created_at"],
                    "last_accessed_at": row["last_accessed_at"],
                });
                if self.folded {
                    object["key"] = json!(key);
                }
                objects.push(object);
            }
        }
        let mut answer = json!({ "hasNext": has_next, "folders": folders, "objects": objects });
        if let Some(last) = rows.last().filter(|_| has_next) {
            let after = last["sort_name"].as_str().unwrap_or_default().to_owned();
            let cursor = Cursor {
                after: after.clone(),
                column: self.column.to_owned(),
                order: self.order.to_owned(),
                at: (self.column != "name").then(|| last["at"].as_str().unwrap_or_default().to_owned()),
            };
            answer["nextCursor"] = json!(cursor.encode());
            // The last entry's name, a folder's without its `/` (as Storage's rows name folders).
            answer["nextCursorKey"] = json!(last["entry"].as_str().unwrap_or_default().trim_end_matches('/'));
        }
        answer
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn listing(body: Value) -> Result<Listing> {
        Listing::from_body(serde_json::from_value(body).expect("a list-v2 body"))
    }

    #[test]
    fn a_request_is_checked_and_folding_keeps_the_sort() {
        let l = listing(json!({})).expect("defaults");
        assert_eq!((l.limit, l.column, l.order, l.folded), (MAX_LIMIT, "name", "asc", false));
        assert_eq!(listing(json!({ "limit": 5000 })).expect("capped").limit, MAX_LIMIT);
        assert!(listing(json!({ "limit": 0 })).is_err());
        assert!(listing(json!({ "sortBy": { "column": "size" } })).is_err());
        assert!(listing(json!({ "sortBy": { "order": "up" } })).is_err());
        let l = listing(json!({ "with_delimiter": true, "sortBy": { "column": "updated_at", "order": "DESC" } }))
            .expect("folded");
        assert_eq!((l.column, l.order, l.folded), ("updated_at", "desc", true));
        assert!(listing(json!({ "cursor": "not base64 json" })).is_err());
    }

    #[test]
    fn a_cursor_keeps_the_order_of_its_page() {
        let first = listing(json!({ "limit": 1, "sortBy": { "column": "created_at", "order": "desc" } })).expect("l");
        let rows = vec![
            json!({ "entry": "b.txt", "sort_name": "b.txt", "folder": false, "id": "1", "at": "2026-01-02T00:00:00.000Z" }),
            json!({ "entry": "a.txt", "sort_name": "a.txt", "folder": false, "id": "2", "at": "2026-01-01T00:00:00.000Z" }),
        ];
        let page = first.page(rows);
        assert_eq!(page["hasNext"], true);
        assert_eq!(page["objects"].as_array().map(Vec::len), Some(1));
        assert_eq!(page["nextCursorKey"], "b.txt");
        let cursor = page["nextCursor"].as_str().expect("a cursor");
        let next = listing(json!({ "cursor": cursor, "sortBy": { "column": "name" } })).expect("next");
        assert_eq!((next.column, next.order), ("created_at", "desc"), "the cursor's order wins");
        assert_eq!(next.cursor.as_ref().and_then(|c| c.at.as_deref()), Some("2026-01-02T00:00:00.000Z"));
        assert_eq!(next.cursor.as_ref().map(|c| c.after.as_str()), Some("b.txt"));
    }

    #[test]
    fn folders_have_a_key_without_the_slash_and_objects_one_when_folded() {
        let l = listing(json!({ "with_delimiter": true })).expect("l");
        let page = l.page(vec![
            json!({ "entry": "testpath/", "folder": true, "updated_at": null, "created_at": null }),
            json!({ "entry": "readme.md", "folder": false, "id": "9" }),
        ]);
        assert_eq!(
            page["folders"],
            json!([{ "key": "testpath", "name": "testpath/", "id": null, "updated_at": null, "created_at": null,
                     "last_accessed_at": null, "metadata": null }])
        );
        assert_eq!(
            (page["objects"][0]["key"].as_str(), page["objects"][0]["name"].as_str()),
            (Some("readme.md"), Some("readme.md"))
        );
        assert_eq!(page["hasNext"], false);
        assert!(page.get("nextCursor").is_none() && page.get("nextCursorKey").is_none(), "{page}");

        // Under a prefix, the key is the segment at the prefix's depth (split_part).
        let l = listing(json!({ "with_delimiter": true, "prefix": "a/b" })).expect("l");
        let page =
            l.page(vec![json!({ "entry": "a/bc/", "folder": true }), json!({ "entry": "a/bd.txt", "folder": false })]);
        assert_eq!(
            (page["folders"][0]["key"].as_str(), page["objects"][0]["key"].as_str()),
            (Some("bc"), Some("bd.txt"))
        );
        let l = listing(json!({ "with_delimiter": true, "prefix": "a/" })).expect("l");
        let page = l.page(vec![json!({ "entry": "a/deep/", "folder": true })]);
        assert_eq!(page["folders"][0]["key"], "deep");

        // Without the delimiter, objects have no key.
        let l = listing(json!({})).expect("l");
        let page = l.page(vec![json!({ "entry": "a/b.txt", "folder": false })]);
        assert!(page["objects"][0].get("key").is_none(), "{page}");
    }
}
