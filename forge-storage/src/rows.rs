//! Every statement the bucket and object routes run on `storage.buckets` and
//! `storage.objects`, as functions of typed arguments: no HTTP here. Reads and writes as the
//! caller go through forge-core's RLS gateway, so Supabase's storage policies decide; the
//! service's own lookups (a bucket's settings, a public or signed read) use the pool.
//!
//! Rows come back as JSON built in SQL (`jsonb_build_object`), the shape the routes answer.
//!
//! The other services' statements are in submodules: [`tus`] (resumable uploads),
//! [`vectors`] (S3 Vectors) and [`iceberg`] (analytics buckets and the Iceberg catalog). The
//! routes under `api/` parse and answer; what they read and write is decided here.

use forge_core::Project;
use forge_core::rls::{self, RequestContext};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::error::{Error, Result};

/// A `timestamptz` column (a string literal naming it) as Supabase Storage renders bucket and
/// object timestamps: UTC, milliseconds, `Z` (`2021-02-17T04:43:32.770Z`, node-postgres' `Date`
/// through `JSON.stringify`), or null. `to_jsonb` would render `2021-02-17T04:43:32.770123+00:00`.
/// Every statement whose JSON carries a timestamp uses this one expression; it expands to a
/// literal, so the statements stay constants.
macro_rules! timestamp_json {
    ($column:literal) => {
        concat!("to_char(", $column, " at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
    };
}
pub(crate) use timestamp_json;

/// A moment in the form of [`timestamp_json!`] (for JSON built outside SQL, such as an
/// object's `metadata.lastModified`).
pub(crate) fn timestamp_text(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

pub(crate) mod iceberg;
pub(crate) mod tus;
pub(crate) mod vectors;

/// Runs one statement returning one JSON value in its own RLS transaction, as the caller.
pub(crate) async fn query_json(
    project: &Project,
    ctx: &RequestContext,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Value>> {
    let rows = rls::query_once(project.db(), ctx, sql, params).await?;
    Ok(rows.first().and_then(|r| r.get::<_, Option<Value>>(0)))
}

/// A bucket as the service sees it (looked up without RLS: the caller's rights are checked on
/// the objects).
#[derive(Debug, Clone)]
pub(crate) struct BucketInfo {
    pub(crate) id: String,
    pub(crate) public: bool,
    pub(crate) file_size_limit: Option<i64>,
    pub(crate) allowed_mime_types: Option<Vec<String>>,
}

pub(crate) async fn bucket_info(project: &Project, id: &str) -> Result<BucketInfo> {
    let row = sqlx::query("select id, public, file_size_limit, allowed_mime_types from storage.buckets where id = $1")
        .bind(id)
        .fetch_optional(project.db().pool())
        .await
        .map_err(forge_core::ForgeError::from)?
        .ok_or_else(Error::no_such_bucket)?;
    use sqlx::Row as _;
    let read = |e: sqlx::Error| Error::from(forge_core::ForgeError::from(e));
    Ok(BucketInfo {
        id: row.try_get("id").map_err(read)?,
        public: row.try_get("public").map_err(read)?,
        file_size_limit: row.try_get("file_size_limit").map_err(read)?,
        allowed_mime_types: row.try_get("allowed_mime_types").map_err(read)?,
    })
}

pub(crate) const STORED_JSON: &str = "jsonb_build_object('version', version, 'metadata', metadata, \
     'updated', to_char(updated_at at time zone 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS') || ' GMT')";

/// An object's row for its info endpoint.
pub(crate) const INFO_JSON: &str = concat!(
    "jsonb_build_object('id', id, 'name', name, 'version', version, 'bucket_id', bucket_id, \
     'size', (metadata ->> 'size')::bigint, 'content_type', metadata ->> 'mimetype', \
     'cache_control', metadata ->> 'cacheControl', 'etag', metadata ->> 'eTag', \
     'metadata', coalesce(user_metadata, '{}'::jsonb), 'last_modified', ",
    timestamp_json!("updated_at"),
    ", 'created_at', ",
    timestamp_json!("created_at"),
    ")"
);

/// An object's row as `remove` answers it.
pub(crate) const FILE_OBJECT_JSON: &str = concat!(
    "jsonb_build_object('name', name, 'id', id, 'updated_at', ",
    timestamp_json!("updated_at"),
    ", 'created_at', ",
    timestamp_json!("created_at"),
    ", 'last_accessed_at', ",
    timestamp_json!("last_accessed_at"),
    ", 'metadata', metadata, 'bucket_id', bucket_id, 'owner', owner, 'user_metadata', user_metadata)"
);

/// Who reads an object's row.
pub(crate) enum Reader<'a> {
    /// The caller, through RLS.
    Caller(&'a RequestContext),
    /// The service itself: for public buckets and signed URLs, whose access was decided
    /// otherwise.
    Service,
}

/// The row of `bucket/name` rendered as `json` (a `jsonb_build_object` of its columns), or
/// 404 `NoSuchKey`.
pub(crate) async fn object_row(
    project: &Project,
    reader: Reader<'_>,
    json: &str,
    bucket: &str,
    name: &str,
) -> Result<Value> {
    let sql = format!("select {json} from storage.objects where bucket_id = $1 and name = $2");
    let row = match reader {
        Reader::Caller(ctx) => query_json(project, ctx, &sql, &[&bucket, &name]).await?,
        Reader::Service => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(bucket)
            .bind(name)
            .fetch_optional(project.db().pool())
            .await
            .map_err(forge_core::ForgeError::from)?,
    };
    row.ok_or_else(Error::no_such_key)
}

/// A bucket's row as the bucket routes answer it.
pub(crate) const BUCKET_JSON: &str = concat!(
    "jsonb_build_object('id', b.id, 'name', b.name, 'owner', coalesce(b.owner::text, ''), \
     'public', b.public, 'type', b.type, 'file_size_limit', b.file_size_limit, \
     'allowed_mime_types', b.allowed_mime_types, 'created_at', ",
    timestamp_json!("b.created_at"),
    ", 'updated_at', ",
    timestamp_json!("b.updated_at"),
    ")"
);

/// A page of the buckets the caller sees, ordered by `column` (`b.id`, `b.name`,
/// `b.created_at` or `b.updated_at`) in `order` (`asc` or `desc`), then by id.
pub(crate) async fn list_buckets(
    project: &Project,
    ctx: &RequestContext,
    (column, order): (&'static str, &'static str),
    search: Option<String>,
    limit: i64,
    offset: i64,
) -> Result<Option<Value>> {
    let sql = format!(
        "select coalesce(jsonb_agg(j order by n), '[]'::jsonb) from ( \
           select {BUCKET_JSON} as j, row_number() over (order by {column} {order}, b.id) as n \
           from storage.buckets b where $1::text is null or b.name ilike '%' || $1 || '%' \
           order by {column} {order}, b.id limit $2 offset $3) t"
    );
    query_json(project, ctx, &sql, &[&search, &limit, &offset]).await
}

/// One bucket the caller sees.
pub(crate) async fn get_bucket(project: &Project, ctx: &RequestContext, id: &str) -> Result<Option<Value>> {
    let sql = format!("select {BUCKET_JSON} from storage.buckets b where b.id = $1");
    query_json(project, ctx, &sql, &[&id]).await
}

/// A bucket to create.
#[derive(Debug)]
pub(crate) struct NewBucket<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    /// The creator's user id, when it is one.
    pub(crate) owner: Option<String>,
    pub(crate) public: bool,
    pub(crate) file_size_limit: Option<i64>,
    pub(crate) allowed_mime_types: &'a Option<Vec<String>>,
}

/// Creates a bucket as the caller; its name, or a unique violation for a taken id.
pub(crate) async fn create_bucket(project: &Project, ctx: &RequestContext, b: &NewBucket<'_>) -> Result<Option<Value>> {
    let sql = "insert into storage.buckets (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types) \
               values ($1, $2, $3::text::uuid, $3, $4, $5, $6) returning to_jsonb(name)";
    query_json(project, ctx, sql, &[&b.id, &b.name, &b.owner, &b.public, &b.file_size_limit, b.allowed_mime_types])
        .await
}

/// What an update changes: a setting left out stays as it is, one given as null clears.
#[derive(Debug)]
pub(crate) struct BucketChange<'a> {
    pub(crate) public: Option<bool>,
    pub(crate) set_limit: bool,
    pub(crate) file_size_limit: Option<i64>,
    pub(crate) set_types: bool,
    pub(crate) allowed_mime_types: &'a Option<Vec<String>>,
}

/// Updates a bucket as the caller; false when the caller sees no such bucket.
pub(crate) async fn update_bucket(
    project: &Project,
    ctx: &RequestContext,
    id: &str,
    c: &BucketChange<'_>,
) -> Result<bool> {
    let sql = "update storage.buckets set public = coalesce($2, public), \
               file_size_limit = case when $3 then $4 else file_size_limit end, \
               allowed_mime_types = case when $5 then $6 else allowed_mime_types end, updated_at = now() \
               where id = $1 returning to_jsonb(id)";
    let params: [&(dyn ToSql + Sync); 6] =
        [&id, &c.public, &c.set_limit, &c.file_size_limit, &c.set_types, c.allowed_mime_types];
    Ok(query_json(project, ctx, sql, &params).await?.is_some())
}

/// Deletes every object of a bucket as the caller, in one transaction; the versions whose
/// bytes are now unnamed, or `None` when the caller sees no such bucket.
pub(crate) async fn empty_bucket(project: &Project, ctx: &RequestContext, id: &str) -> Result<Option<Vec<String>>> {
    let tx = rls::begin(project.db(), ctx).await?;
    let found = tx.query("select 1 from storage.buckets where id = $1", &[&id]).await?;
    if found.is_empty() {
        return Ok(None);
    }
    let rows = tx
        .query_and_commit(
            "delete from storage.objects where bucket_id = $1 and version is not null returning version",
            &[&id],
        )
        .await?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

/// What deleting a bucket came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketDeletion {
    Deleted,
    /// It still has objects.
    NotEmpty,
    /// The caller sees no such bucket.
    Missing,
}

/// Deletes an empty bucket as the caller.
pub(crate) async fn delete_bucket(project: &Project, ctx: &RequestContext, id: &str) -> Result<BucketDeletion> {
    let tx = rls::begin(project.db(), ctx).await?;
    let objects = tx.query("select 1 from storage.objects where bucket_id = $1 limit 1", &[&id]).await?;
    if !objects.is_empty() {
        return Ok(BucketDeletion::NotEmpty);
    }
    let rows = tx.query_and_commit("delete from storage.buckets where id = $1 returning id", &[&id]).await?;
    Ok(if rows.is_empty() { BucketDeletion::Missing } else { BucketDeletion::Deleted })
}

/// Whether the caller sees `bucket/name`.
pub(crate) async fn object_visible(project: &Project, ctx: &RequestContext, bucket: &str, name: &str) -> Result<bool> {
    let sql = "select to_jsonb(id) from storage.objects where bucket_id = $1 and name = $2";
    Ok(query_json(project, ctx, sql, &[&bucket, &name]).await?.is_some())
}

/// Whether the caller sees the bucket.
pub(crate) async fn bucket_visible(project: &Project, ctx: &RequestContext, id: &str) -> Result<bool> {
    let sql = "select to_jsonb(id) from storage.buckets where id = $1";
    Ok(query_json(project, ctx, sql, &[&id]).await?.is_some())
}

/// Which of `names` in `bucket` the caller sees.
pub(crate) async fn visible_names(
    project: &Project,
    ctx: &RequestContext,
    bucket: &str,
    names: &[String],
) -> Result<Vec<String>> {
    let sql =
        "select coalesce(jsonb_agg(name), '[]'::jsonb) from storage.objects where bucket_id = $1 and name = any($2)";
    let visible = query_json(project, ctx, sql, &[&bucket, &names]).await?.unwrap_or_default();
    Ok(visible.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default())
}

/// Deletes `bucket/name` as the caller; the version whose bytes it named, if the caller saw it.
pub(crate) async fn delete_object(
    project: &Project,
    ctx: &RequestContext,
    bucket: &str,
    name: &str,
) -> Result<Option<Value>> {
    let sql = "delete from storage.objects where bucket_id = $1 and name = $2 returning to_jsonb(version)";
    query_json(project, ctx, sql, &[&bucket, &name]).await
}

/// Deletes the named objects the caller sees: `{objects: [their rows], versions: [...]}`.
pub(crate) async fn delete_objects(
    project: &Project,
    ctx: &RequestContext,
    bucket: &str,
    names: &[String],
) -> Result<Value> {
    let sql = format!(
        "with gone as (delete from storage.objects where bucket_id = $1 and name = any($2) \
           returning {FILE_OBJECT_JSON} as j, version) \
         select jsonb_build_object('objects', coalesce(jsonb_agg(j), '[]'::jsonb), \
           'versions', coalesce(jsonb_agg(version), '[]'::jsonb)) from gone"
    );
    Ok(query_json(project, ctx, &sql, &[&bucket, &names]).await?.unwrap_or_default())
}

/// What a copy reads of its source: the version, the metadata and the user metadata.
pub(crate) const SOURCE_JSON: &str =
    "jsonb_build_object('version', version, 'metadata', metadata, 'user_metadata', user_metadata)";

/// Renames `from_bucket/from` to `to_bucket/to` as the caller (the bytes stay where they are);
/// `None` when the caller sees no such object.
pub(crate) async fn move_object(
    project: &Project,
    ctx: &RequestContext,
    (from_bucket, from): (&str, &str),
    (to_bucket, to): (&str, &str),
) -> Result<Option<Value>> {
    let sql = "update storage.objects set bucket_id = $3, name = $4, updated_at = now() \
               where bucket_id = $1 and name = $2 returning to_jsonb(id)";
    query_json(project, ctx, sql, &[&from_bucket, &from, &to_bucket, &to]).await
}

/// `and` the names whose `lower(name)` starts with `lower(<param>)`, as a range of
/// `lower(name) collate "C"` (byte order), which the index `idx_objects_bucket_id_name_lower`
/// (migration 0006) serves, also in a generic plan: from `lower(<param>)` to the same with its
/// last character one higher. For a parameter from [`ci_range_prefix`], whose last character
/// lowers to one character below U+D7FF, those are exactly the names that start with it.
///
/// Under row-level security policies, Postgres does not take `lower(name)` (not leakproof) into
/// an index condition ahead of the policies: a caller with policies scans the bucket as before;
/// the service role, which bypasses them, reads the range.
macro_rules! lower_prefix_range {
    ($param:literal) => {
        concat!(
            "and lower(name) collate \"C\" >= lower(",
            $param,
            "::text) and lower(name) collate \"C\" < (left(lower(",
            $param,
            "::text), -1) || chr(ascii(right(lower(",
            $param,
            "::text), 1)) + 1))"
        )
    };
}

/// The prefix whose [`lower_prefix_range!`] holds every name that starts with `prefix` ignoring
/// case (`name ilike '<prefix>%'`, which Postgres decides as `lower(name) like lower(pattern)`),
/// or `None` to scan without one.
///
/// `prefix` itself when it ends in a printable ASCII character: lowered alone or in the
/// pattern, before its `%`, it lowers alike (the end of a text and a `%` are the same context
/// to every case mapping), and its last character lowers to one character (ASCII, or `ı` for
/// `I` under a Turkish locale) that `chr(ascii(..) + 1)` can follow. Else `prefix` up to its
/// last `/`: a `/` lowers to itself and ends every case-mapping context, so a name that starts
/// with the prefix ignoring case starts with that part of it too. `None` when neither applies
/// or the prefix is empty (every name matches).
pub(crate) fn ci_range_prefix(prefix: &str) -> Option<&str> {
    let printable = |c: char| c == ' ' || c.is_ascii_graphic();
    let cut = if prefix.ends_with(printable) { prefix } else { &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)] };
    (!cut.is_empty()).then_some(cut)
}

/// The byte-order range `[low, high)` (for `name ~>=~ low and name ~<~ high`, which the index
/// `name_prefix_search` serves, also in a generic plan) holding every name that starts with
/// `prefix` (case-sensitive, as `name like '<prefix>%'`): `prefix` up to its last printable
/// ASCII character, and the same with that character one higher. Names that start with
/// `prefix` start with that part of it, and in UTF-8's byte order the names that start with a
/// text are exactly those from it to it with its last character one higher. `None` when the
/// prefix has no printable ASCII character (an empty prefix matches every name).
pub(crate) fn prefix_range(prefix: &str) -> Option<(&str, String)> {
    let end = prefix.rfind(|c: char| c == ' ' || c.is_ascii_graphic())?;
    let low = &prefix[..=end];
    let high = format!("{}{}", &prefix[..end], char::from(prefix.as_bytes()[end] + 1));
    Some((low, high))
}

/// A statement and its parameters, built apart from running it so that tests can look at its
/// plan ([`crate::testing::explain_listing`]).
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Statement {
    pub(crate) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// A page of one folder's entries, as `list` answers it: files (direct children) and one
/// entry per subfolder (no id).
#[derive(Debug)]
pub(crate) struct FolderPage {
    pub(crate) bucket: String,
    /// The folder, with its trailing `/` (empty for the root).
    pub(crate) folder: String,
    /// The folder's depth plus one: the path token that names an entry.
    pub(crate) level: i32,
    /// Entries whose name starts with this.
    pub(crate) search: String,
    /// `name`, `updated_at`, `created_at` or `last_accessed_at`.
    pub(crate) column: &'static str,
    /// `asc` or `desc`.
    pub(crate) order: &'static str,
    pub(crate) limit: i64,
    pub(crate) offset: i64,
}

/// Lists a folder as the caller. Names sort case-insensitively with folders and files
/// interleaved; any other column lists the folders first (by name), then the files by that
/// column (Supabase's rules).
pub(crate) async fn list_folder(project: &Project, ctx: &RequestContext, p: &FolderPage) -> Result<Option<Value>> {
    let statement = folder_statement(p);
    query_json(project, ctx, &statement.sql, &statement.params()).await
}

/// The statement [`list_folder`] runs: $1 the bucket, $2 the folder's ILIKE pattern, $3 the
/// level, $4 the search's ILIKE pattern, $5 and $6 the limit and offset, and when the folder
/// and search have a [`ci_range_prefix`], $7 that prefix.
pub(crate) fn folder_statement(p: &FolderPage) -> Statement {
    let (column, order) = (p.column, p.order);
    let ordering = if column == "name" {
        format!("lower(name) collate \"C\" {order}")
    } else {
        format!(
            "is_file, case when not is_file then lower(name) end collate \"C\" {order}, {column} {order}, lower(name) collate \"C\" {order}"
        )
    };
    // The folder and the search bound the scan (an index range); the `ilike`s decide.
    let bound = ci_range_prefix(&format!("{}{}", p.folder, p.search)).map(str::to_owned);
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
           where bucket_id = $1 {range}and name ilike $2 escape '\\' and path_tokens[$3] ilike $4 escape '\\' \
           order by path_tokens[$3], array_length(path_tokens, 1) = $3 desc), \
         page as (select *, row_number() over (order by {ordering}) as n from entries \
           order by {ordering} limit $5 offset $6) \
         select coalesce(jsonb_agg(jsonb_build_object('name', name, 'id', id, 'updated_at', {updated}, \
           'created_at', {created}, 'last_accessed_at', {accessed}, 'metadata', metadata) order by n), \
           '[]'::jsonb) from page",
        updated = timestamp_json!("updated_at"),
        created = timestamp_json!("created_at"),
        accessed = timestamp_json!("last_accessed_at"),
        range = if bound.is_some() { concat!(lower_prefix_range!("$7"), " ") } else { "" },
    );
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![
        Box::new(p.bucket.clone()),
        Box::new(format!("{}%", like_escape(&p.folder))),
        Box::new(p.level),
        Box::new(format!("{}%", like_escape(&p.search))),
        Box::new(p.limit),
        Box::new(p.offset),
    ];
    if let Some(bound) = bound {
        params.push(Box::new(bound));
    }
    Statement { sql, params }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// How an upload lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `POST`: a new object, or a replaced one with `x-upsert: true`.
    Create { upsert: bool },
    /// `PUT`: replaces an existing object.
    Update,
}

/// Tries, as the caller, the row change an upload in `mode` will make, and rolls it back:
/// false when there is no row to update.
pub(crate) async fn try_write(
    project: &Project,
    ctx: &RequestContext,
    mode: Mode,
    bucket: &str,
    name: &str,
    owner: Option<&str>,
) -> Result<bool> {
    let sql = match mode {
        Mode::Create { upsert: false } => {
            "insert into storage.objects (bucket_id, name, owner, owner_id) values ($1, $2, $3::text::uuid, $3) \
             returning 1"
        }
        Mode::Create { upsert: true } => {
            "insert into storage.objects (bucket_id, name, owner, owner_id) values ($1, $2, $3::text::uuid, $3) \
             on conflict (bucket_id, name) do update set owner = excluded.owner, owner_id = excluded.owner_id \
             returning 1"
        }
        Mode::Update => {
            "update storage.objects set owner = $3::text::uuid, owner_id = $3 where bucket_id = $1 and name = $2 \
             returning 1"
        }
    };
    let rows = rls::try_once(project.db(), ctx, sql, &[&bucket, &name, &owner]).await?;
    Ok(!rows.is_empty())
}

/// A version just stored, with what its row will say about it.
pub(crate) struct NewVersion {
    pub(crate) version: String,
    pub(crate) metadata: Value,
    pub(crate) user_metadata: Option<Value>,
}

/// Points the row of `bucket/name` at `new`, as the caller: `{id, old}` with the version it
/// replaced, or `None` when there is no row to update.
pub(crate) async fn write_version(
    project: &Project,
    ctx: &RequestContext,
    mode: Mode,
    bucket: &str,
    name: &str,
    owner: Option<&str>,
    new: &NewVersion,
) -> Result<Option<Value>> {
    let sql = match mode {
        Mode::Create { upsert: false } => {
            "insert into storage.objects (bucket_id, name, owner, owner_id, metadata, user_metadata, version) \
             values ($1, $2, $3::text::uuid, $3, $4, $5, $6) returning jsonb_build_object('id', id, 'old', null)"
        }
        Mode::Create { upsert: true } => {
            "with old as (select version from storage.objects where bucket_id = $1 and name = $2) \
             insert into storage.objects (bucket_id, name, owner, owner_id, metadata, user_metadata, version) \
             values ($1, $2, $3::text::uuid, $3, $4, $5, $6) \
             on conflict (bucket_id, name) do update set owner = excluded.owner, owner_id = excluded.owner_id, \
               metadata = excluded.metadata, user_metadata = excluded.user_metadata, version = excluded.version, \
               updated_at = now(), last_accessed_at = now() \
             returning jsonb_build_object('id', id, 'old', (select version from old))"
        }
        Mode::Update => {
            "with old as (select id, version from storage.objects where bucket_id = $1 and name = $2) \
             update storage.objects o set owner = $3::text::uuid, owner_id = $3, metadata = $4, \
               user_metadata = coalesce($5, o.user_metadata), version = $6, updated_at = now(), \
               last_accessed_at = now() \
             from old where o.id = old.id and o.bucket_id = $1 and o.name = $2 \
             returning jsonb_build_object('id', o.id, 'old', old.version)"
        }
    };
    let params: [&(dyn ToSql + Sync); 6] = [&bucket, &name, &owner, &new.metadata, &new.user_metadata, &new.version];
    query_json(project, ctx, sql, &params).await
}

/// Whether any object row names `version` (bypassing RLS: the service's own bookkeeping).
pub(crate) async fn version_named(project: &Project, version: &str) -> Result<bool> {
    sqlx::query_scalar("select exists (select 1 from storage.objects where version = $1)")
        .bind(version)
        .fetch_one(project.db().pool())
        .await
        .map_err(|e| forge_core::ForgeError::from(e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_insensitive_range_ends_in_printable_ascii_or_at_a_slash() {
        assert_eq!(ci_range_prefix(""), None);
        assert_eq!(ci_range_prefix("photos/"), Some("photos/"));
        assert_eq!(ci_range_prefix("photos/IMG_1"), Some("photos/IMG_1"));
        assert_eq!(ci_range_prefix("50%/a_"), Some("50%/a_"));
        assert_eq!(ci_range_prefix("été/"), Some("été/"));
        // A last character beyond ASCII may lower to several, or to one `chr` cannot follow.
        assert_eq!(ci_range_prefix("fotos/été"), Some("fotos/"));
        assert_eq!(ci_range_prefix("a/b/\u{10FFFF}"), Some("a/b/"));
        assert_eq!(ci_range_prefix("\u{D7FF}"), None);
        assert_eq!(ci_range_prefix("été"), None);
        assert_eq!(ci_range_prefix("a\u{7f}"), None);
    }

    #[test]
    fn a_byte_range_holds_exactly_the_names_with_the_prefix() {
        assert_eq!(prefix_range(""), None);
        assert_eq!(prefix_range("photos/"), Some(("photos/", "photos0".to_owned())));
        assert_eq!(prefix_range("a~"), Some(("a~", "a\u{7f}".to_owned())));
        assert_eq!(prefix_range("a "), Some(("a ", "a!".to_owned())));
        assert_eq!(prefix_range("été"), Some(("ét", "éu".to_owned())));
        assert_eq!(prefix_range("a/\u{10FFFF}"), Some(("a/", "a0".to_owned())));
        assert_eq!(prefix_range("é"), None);
        // Every name that starts with the prefix is in the range, and no other.
        let names = ["a/", "a/x", "a/\u{10FFFF}", "a0", "a.", "a", "a/\u{7f}", "b", "ét", "éta", "éu", "és", "étÿ"];
        for prefix in ["a/", "ét", "a/\u{10FFFF}", "é"] {
            let Some((low, high)) = prefix_range(prefix) else { continue };
            for name in names {
                let within = name >= low && name < high.as_str();
                assert_eq!(within, name.starts_with(low), "{name:?} in the range of {prefix:?}");
            }
        }
    }
}
