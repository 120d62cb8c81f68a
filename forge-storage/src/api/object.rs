//! Objects: upload (`POST`/`PUT`, raw or multipart), download (authenticated, public and
//! signed, with ranges and validators), info, list, move, copy, remove and signed URLs.
//!
//! Rows are read and written as the caller through RLS on `storage.objects`; bytes go to the
//! object store under a fresh version for every upload (see the crate docs).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use forge_core::DbErrorKind;
use forge_core::Project;
use forge_core::rls::{self, RequestContext};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use object_store::{GetOptions, GetRange, ObjectStoreExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{BucketInfo, bucket_info, parse_body, rls_json};
use crate::blob;
use crate::error::{Error, ErrorKind, Result};
use crate::service::Storage;

/// The longest object name, in bytes (Supabase's limit).
const MAX_NAME: usize = 1024;

/// Checks an object name: no empty, `.` or `..` segments, no control characters, not too long.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let bad = || Err(Error::new(ErrorKind::InvalidKey, format!("Invalid key: {name}")));
    // Supabase's characters: letters, digits, space and `_/!.*'()&$=@;:+,?-`.
    let allowed = |c: char| c.is_ascii_alphanumeric() || " _/!.*'()&$=@;:+,?-".contains(c);
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(allowed) {
        return bad();
    }
    if name.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return bad();
    }
    Ok(())
}

/// What a row says about its bytes.
#[derive(Debug, Deserialize)]
struct Stored {
    version: String,
    #[serde(default)]
    metadata: Value,
    updated: String,
}

const STORED_JSON: &str = "jsonb_build_object('version', version, 'metadata', metadata, \
     'updated', to_char(updated_at at time zone 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS') || ' GMT')";

/// The `x-upsert` header.
pub(super) fn upsert(headers: &HeaderMap) -> bool {
    headers.get("x-upsert").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Whether `mime` is allowed by a bucket's list (entries may end in `/*`).
fn mime_allowed(bucket: &BucketInfo, mime: &str) -> bool {
    let Some(allowed) = bucket.allowed_mime_types.as_ref().filter(|a| !a.is_empty()) else { return true };
    let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match a.strip_suffix("/*") {
            Some(kind) => essence.split('/').next() == Some(kind),
            None => a == essence || a == "*/*",
        }
    })
}

pub(super) fn check_mime(bucket: &BucketInfo, mime: &str) -> Result<()> {
    if mime_allowed(bucket, mime) {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::InvalidMimeType, format!("mime type {mime} is not supported")))
    }
}

/// How an upload lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `POST`: a new object, or a replaced one with `x-upsert: true`.
    Create { upsert: bool },
    /// `PUT`: replaces an existing object.
    Update,
}

/// What an upload carried besides its bytes.
#[derive(Debug, Default)]
struct Described {
    content_type: String,
    cache_control: String,
    user_metadata: Option<Value>,
}

pub(crate) async fn upload(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path((bucket, name)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>> {
    let mode = Mode::Create { upsert: upsert(request.headers()) };
    let owner = owner_of(&ctx);
    store_detached(storage, project, ctx, bucket, name, request, mode, owner).await
}

/// The caller's user id, when the caller is a user.
pub(super) fn owner_of(ctx: &RequestContext) -> Option<String> {
    ctx.principal().claims().sub().filter(|s| Uuid::parse_str(s).is_ok()).map(str::to_owned)
}

pub(crate) async fn update(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path((bucket, name)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Value>> {
    let owner = owner_of(&ctx);
    store_detached(storage, project, ctx, bucket, name, request, Mode::Update, owner).await
}

/// Runs an upload on a task of its own: a client that goes away cannot cut it short between
/// storing the bytes and recording them (or removing them), which would leave a stray blob.
/// Its body is [`blob::guard`]ed: dropping this request interrupts the upload cleanly.
#[allow(clippy::too_many_arguments)]
async fn store_detached(
    storage: Storage,
    project: Project,
    ctx: RequestContext,
    bucket: String,
    name: String,
    request: Request,
    mode: Mode,
    owner: Option<String>,
) -> Result<Json<Value>> {
    let (parts, body) = request.into_parts();
    // If this request is dropped (a timeout, a client that left), the task sees its body
    // break off and cleans up as for any interrupted upload.
    let (body, _cancel) = blob::guard(body, storage.config().upload_idle_timeout);
    let request = Request::from_parts(parts, body);
    // On any refusal the rest of the body is read and dropped before the answer goes out.
    let task = tokio::spawn(async move {
        blob::drained(request, |parts, body| {
            store_object(&storage, &project, &ctx, &bucket, &name, parts, body, mode, owner)
        })
        .await
    });
    task.await.map_err(Error::internal)?
}

#[allow(clippy::too_many_arguments)]
async fn store_object(
    storage: &Storage,
    project: &Project,
    ctx: &RequestContext,
    bucket: &str,
    name: &str,
    parts: http::request::Parts,
    body: Body,
    mode: Mode,
    owner: Option<String>,
) -> Result<Json<Value>> {
    let checked = async {
        check_name(name)?;
        // Refuse what the policies (or an existing key) would refuse before any byte moves.
        // Both at once; a missing bucket is reported as such, whatever the policies say.
        let (bucket, allowed) = futures_util::join!(
            bucket_info(project, bucket),
            precheck(project, ctx, bucket, name, owner.as_deref(), mode)
        );
        let bucket = bucket?;
        allowed?;
        Ok::<_, Error>(bucket)
    };
    let bucket = checked.await?;
    let limit = size_limit(storage, &bucket);
    let version = Uuid::now_v7().to_string();
    let path = Storage::blob_path(project, &version);
    let store = storage.store().as_ref();
    let headers = parts.headers.clone();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();

    let read = if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        match Multipart::from_request(Request::from_parts(parts, body), &()).await {
            Ok(mut form) => read_form(&mut form, &bucket, store, &path, limit).await,
            Err(e) => Err(Error::invalid(format!("Invalid form: {e}"))),
        }
    } else {
        let mut stream = body.into_data_stream();
        let mime = if content_type.is_empty() { "application/octet-stream".to_owned() } else { content_type };
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let described = async {
            check_mime(&bucket, &mime)?;
            if declared.is_some_and(|n| n > limit) {
                return Err(blob::too_large());
            }
            let user_metadata = match headers.get("x-metadata") {
                None => None,
                Some(v) => Some(decode_metadata(v)?),
            };
            let cache_control =
                headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            Ok(Described { content_type: mime, cache_control, user_metadata })
        };
        match described.await {
            Ok(d) => blob::write(store, &path, &mut stream, limit, blob::OnBreak::Discard).await.map(|size| (size, d)),
            Err(e) => Err(e),
        }
    };
    let (size, described) = match read {
        Ok(read) => read,
        Err(e) => {
            // The file may have been stored before a later field failed.
            blob::forget(store, vec![path]).await;
            return Err(e);
        }
    };

    let cache_control =
        if described.cache_control.is_empty() { "no-cache".to_owned() } else { described.cache_control };
    let metadata = object_metadata(&version, size, &described.content_type, &cache_control);
    let new = NewVersion { version, metadata, user_metadata: described.user_metadata };
    let id = point_at_version(project, ctx, store, mode, &bucket.id, name, owner.as_deref(), new).await?;
    Ok(Json(json!({ "Id": id, "Key": format!("{}/{name}", bucket.id) })))
}

/// The `metadata` of an object row whose bytes are version `version`.
pub(super) fn object_metadata(version: &str, size: u64, mimetype: &str, cache_control: &str) -> Value {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    json!({
        "eTag": format!("\"{version}\""),
        "size": size,
        "mimetype": mimetype,
        "cacheControl": cache_control,
        "lastModified": now,
        "contentLength": size,
        "httpStatusCode": 200,
    })
}

/// The largest object `bucket` takes: its own limit, within the service's.
pub(super) fn size_limit(storage: &Storage, bucket: &BucketInfo) -> u64 {
    let service = storage.config().file_size_limit;
    bucket.file_size_limit.and_then(|l| u64::try_from(l).ok()).map_or(service, |l| l.min(service))
}

/// A version just stored, with what its row will say about it.
pub(super) struct NewVersion {
    pub(super) version: String,
    pub(super) metadata: Value,
    pub(super) user_metadata: Option<Value>,
}

/// Points the row of `bucket/name` at a version already in the store, as the caller (a new
/// row, or with `upsert` or `Mode::Update` the existing one). If the change fails the new
/// blob is removed; if it succeeds, the blob it replaced is removed once no row names it.
/// Returns the row's id.
#[allow(clippy::too_many_arguments)]
pub(super) async fn point_at_version(
    project: &Project,
    ctx: &RequestContext,
    store: &dyn object_store::ObjectStore,
    mode: Mode,
    bucket: &str,
    name: &str,
    owner: Option<&str>,
    new: NewVersion,
) -> Result<Value> {
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
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&bucket, &name, &owner, &new.metadata, &new.user_metadata, &new.version];
    let row = match rls_json(project, ctx, sql, &params).await {
        Ok(Some(row)) => row,
        failed => {
            // Unless a row names it after all (a resumable upload finished once already).
            forget_unreferenced(project, store, &new.version).await;
            return Err(match failed {
                Err(e) => duplicate(e),
                _ => Error::no_such_key(),
            });
        }
    };
    if let Some(old) = row["old"].as_str() {
        forget_unreferenced(project, store, old).await;
    }
    Ok(row["id"].clone())
}

/// Tries the row change an upload will make, as the caller, and rolls it back.
pub(super) async fn precheck(
    project: &Project,
    ctx: &RequestContext,
    bucket: &str,
    name: &str,
    owner: Option<&str>,
    mode: Mode,
) -> Result<()> {
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
    let rows = rls::try_once(project.db(), ctx, sql, &[&bucket, &name, &owner]).await.map_err(Error::from);
    if rows.map_err(duplicate)?.is_empty() {
        return Err(Error::no_such_key());
    }
    Ok(())
}

/// Reads a multipart upload: the file part (named `""` by storage-js, `file` by storage3, or
/// any part with a file name) streams into `path`; `cacheControl` and `metadata` may come
/// before or after it.
async fn read_form(
    form: &mut Multipart,
    bucket: &BucketInfo,
    store: &dyn object_store::ObjectStore,
    path: &object_store::path::Path,
    limit: u64,
) -> Result<(u64, Described)> {
    let mut described = Described::default();
    let mut size = None;
    while let Some(field) = form.next_field().await? {
        let field_name = field.name().unwrap_or("").to_owned();
        let is_file = field.file_name().is_some() || field_name.is_empty() || field_name == "file";
        if is_file && size.is_none() {
            let mime = field.content_type().unwrap_or("application/octet-stream").to_owned();
            check_mime(bucket, &mime)?;
            described.content_type = mime;
            let mut field = field;
            size = Some(blob::write(store, path, &mut field, limit, blob::OnBreak::Discard).await?);
            continue;
        }
        let text = read_text(field).await?;
        match field_name.as_str() {
            "cacheControl" => described.cache_control = format!("max-age={}", text.trim()),
            "contentType" if !text.trim().is_empty() => {
                // Overrides the part's type; checked like it.
                check_mime(bucket, text.trim())?;
                described.content_type = text.trim().to_owned();
            }
            "metadata" | "userMetadata" => match serde_json::from_str::<Value>(&text) {
                Ok(v) if v.is_object() => described.user_metadata = Some(v),
                _ => return Err(Error::invalid("metadata must be a JSON object")),
            },
            _ => {}
        }
    }
    let size = size.ok_or_else(|| Error::invalid("The form has no file"))?;
    Ok((size, described))
}

/// A non-file form field, at most 1 MiB.
async fn read_text(mut field: axum::extract::multipart::Field<'_>) -> Result<String> {
    const MAX_FIELD: usize = 1024 * 1024;
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if bytes.len() + chunk.len() > MAX_FIELD {
            return Err(Error::new(ErrorKind::EntityTooLarge, "A form field exceeded 1 MiB"));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| Error::invalid("A form field is not UTF-8"))
}

/// Deletes a replaced version's blob unless a row still names it: a concurrent move or upsert
/// may have read the same old version.
async fn forget_unreferenced(project: &Project, store: &dyn object_store::ObjectStore, version: &str) {
    let referenced: std::result::Result<bool, sqlx::Error> =
        sqlx::query_scalar("select exists (select 1 from storage.objects where version = $1)")
            .bind(version)
            .fetch_one(project.db().pool())
            .await;
    match referenced {
        Ok(false) => blob::forget(store, vec![Storage::blob_path(project, version)]).await,
        Ok(true) => {}
        Err(e) => tracing::warn!(error = %e, "checking a replaced version failed; its blob is kept"),
    }
}

/// Refuses to put an object into a bucket whose limits it breaks (move and copy).
fn check_fits(bucket: &BucketInfo, metadata: &Value) -> Result<()> {
    check_mime(bucket, metadata["mimetype"].as_str().unwrap_or("application/octet-stream"))?;
    let size = metadata["size"].as_i64().unwrap_or(0);
    if bucket.file_size_limit.is_some_and(|limit| size > limit) {
        return Err(blob::too_large());
    }
    Ok(())
}

fn duplicate(e: Error) -> Error {
    match &e {
        e if e.db_kind() == Some(DbErrorKind::UniqueViolation) => {
            Error::new(ErrorKind::KeyAlreadyExists, "The resource already exists")
        }
        e if e.db_kind() == Some(DbErrorKind::ForeignKeyViolation) => Error::no_such_bucket(),
        _ => e,
    }
}

fn decode_metadata(value: &HeaderValue) -> Result<Value> {
    use base64::Engine as _;
    let bad = || Error::invalid("x-metadata must be base64-encoded JSON object");
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_bytes()).map_err(|_| bad())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(bad()),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct DownloadQuery {
    download: Option<String>,
}

pub(crate) async fn download(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path((bucket, name)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    check_name(&name)?;
    let stored = object_row(&project, Reader::Caller(&ctx), STORED_JSON, &bucket, &name).await?;
    serve(&storage, &project, stored, &name, q.download, &headers).await
}

pub(crate) async fn download_public(
    Extension(storage): Extension<Storage>,
    project: Project,
    Path((bucket, name)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    check_name(&name)?;
    ensure_public(&project, &bucket).await?;
    let stored = object_row(&project, Reader::Service, STORED_JSON, &bucket, &name).await?;
    serve(&storage, &project, stored, &name, q.download, &headers).await
}

/// Who reads an object's row.
enum Reader<'a> {
    /// The caller, through RLS.
    Caller(&'a RequestContext),
    /// The service itself: for public buckets and signed URLs, whose access was decided
    /// otherwise.
    Service,
}

/// The row of `bucket/name` rendered as `json` (a `jsonb_build_object` of its columns), or
/// 404 `NoSuchKey`.
async fn object_row(project: &Project, reader: Reader<'_>, json: &str, bucket: &str, name: &str) -> Result<Value> {
    let sql = format!("select {json} from storage.objects where bucket_id = $1 and name = $2");
    let row = match reader {
        Reader::Caller(ctx) => rls_json(project, ctx, &sql, &[&bucket, &name]).await?,
        Reader::Service => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(bucket)
            .bind(name)
            .fetch_optional(project.db().pool())
            .await
            .map_err(forge_core::ForgeError::from)?,
    };
    row.ok_or_else(Error::no_such_key)
}

/// 404 `NoSuchBucket` unless `bucket` is public: a private bucket's objects are never served
/// on public URLs.
async fn ensure_public(project: &Project, bucket: &str) -> Result<()> {
    if bucket_info(project, bucket).await?.public { Ok(()) } else { Err(Error::no_such_bucket()) }
}

/// One byte range, from a `Range: bytes=...` header.
fn parse_range(value: &str) -> Option<GetRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    match (start.trim(), end.trim()) {
        ("", n) => Some(GetRange::Suffix(n.parse().ok()?)),
        (s, "") => Some(GetRange::Offset(s.parse().ok()?)),
        (s, e) => {
            let (s, e): (u64, u64) = (s.parse().ok()?, e.parse().ok()?);
            (s <= e).then(|| GetRange::Bounded(s..e.saturating_add(1)))
        }
    }
}

/// `Content-Disposition` for `?download=<file>` (empty: the object's own file name).
fn attachment(name: &str, file: String) -> String {
    let file = if file.is_empty() { name.rsplit('/').next().unwrap_or(name).to_owned() } else { file };
    let ascii: String =
        file.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = form_urlencoded::byte_serialize(file.as_bytes()).collect::<String>().replace('+', "%20");
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Whether `If-None-Match` names one of `tags` (or is `*`): the client's copy is current.
fn if_none_match(headers: &HeaderMap, tags: &[&str]) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(str::trim).any(|t| t == "*" || tags.contains(&t)))
}

/// Whether the client takes WebP (`Accept: image/webp`), as browsers say for images.
fn accepts_webp(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let q_zero =
                |p: &str| p.replace(' ', "").strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0);
            let refused = parts.clone().skip(1).any(q_zero);
            parts.next().is_some_and(|m| m.eq_ignore_ascii_case("image/webp")) && !refused
        })
    })
}

async fn serve(
    storage: &Storage,
    project: &Project,
    stored: Value,
    name: &str,
    download: Option<String>,
    headers: &HeaderMap,
) -> Result<Response> {
    let stored: Stored = serde_json::from_value(stored).map_err(Error::internal)?;
    let etag = format!("\"{}\"", stored.version);
    let meta = &stored.metadata;
    let size = meta["size"].as_u64().unwrap_or(0);
    let mut out = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set(header::ETAG, &etag);
    set(header::LAST_MODIFIED, &stored.updated);
    set(header::CACHE_CONTROL, meta["cacheControl"].as_str().unwrap_or("no-cache"));
    set(header::ACCEPT_RANGES, "bytes");
    set(header::CONTENT_TYPE, meta["mimetype"].as_str().unwrap_or("application/octet-stream"));
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(file) = download {
        set(header::CONTENT_DISPOSITION, &attachment(name, file));
    }
    if if_none_match(headers, &[&etag, &stored.version]) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(|v| (v, parse_range(v)));
    let range = match range {
        None => None,
        Some((_, Some(r))) => Some(r),
        Some((raw, None)) => {
            tracing::debug!(range = raw, "unsupported range, sending the whole object");
            None
        }
    };
    if let Some(r) = &range {
        let unsatisfiable = match r {
            GetRange::Bounded(b) => b.start >= size,
            GetRange::Offset(o) => *o >= size,
            GetRange::Suffix(n) => *n == 0,
        };
        if unsatisfiable {
            set(header::CONTENT_RANGE, &format!("bytes */{size}"));
            let mut res = Error::new(ErrorKind::InvalidRange, "invalid range provided").into_response();
            res.headers_mut().extend(out);
            return Ok(res);
        }
    }
    let options = GetOptions { range: range.clone(), ..GetOptions::default() };
    let got = storage.store().get_opts(&Storage::blob_path(project, &stored.version), options).await?;
    let span = got.range.clone();
    let body = match got.payload {
        // Local files are read in large pieces: object_store's own stream reads 8 KiB at a time.
        object_store::GetResultPayload::File(file, _) => Body::from_stream(crate::blob::read_file(file, span.clone())),
        object_store::GetResultPayload::Stream(stream) => Body::from_stream(stream),
    };
    let length = span.end - span.start;
    set(header::CONTENT_LENGTH, &length.to_string());
    let status = if range.is_some() {
        set(header::CONTENT_RANGE, &format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1)));
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    Ok((status, out, body).into_response())
}

const INFO_JSON: &str = "jsonb_build_object('id', id, 'name', name, 'version', version, 'bucket_id', bucket_id, \
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

const FILE_OBJECT_JSON: &str = "jsonb_build_object('name', name, 'id', id, 'updated_at', updated_at, \
     'created_at', created_at, 'last_accessed_at', last_accessed_at, 'metadata', metadata, \
     'bucket_id', bucket_id, 'owner', owner, 'user_metadata', user_metadata)";

pub(crate) async fn remove(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path((bucket, name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    check_name(&name)?;
    let sql = "delete from storage.objects where bucket_id = $1 and name = $2 returning to_jsonb(version)";
    let version = rls_json(&project, &ctx, sql, &[&bucket, &name]).await?.ok_or_else(Error::no_such_key)?;
    if let Some(v) = version.as_str() {
        blob::forget(storage.store().as_ref(), vec![Storage::blob_path(&project, v)]).await;
    }
    Ok(Json(json!({ "message": "Successfully deleted" })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct RemoveBody {
    prefixes: Vec<String>,
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

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct SortBy {
    column: Option<String>,
    order: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListBody {
    prefix: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    #[serde(rename = "sortBy")]
    sort_by: Option<SortBy>,
    search: Option<String>,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
pub(super) fn like_escape(s: &str) -> String {
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

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct MoveBody {
    #[serde(rename = "bucketId")]
    bucket_id: String,
    #[serde(rename = "sourceKey")]
    source_key: String,
    #[serde(rename = "destinationKey")]
    destination_key: String,
    #[serde(rename = "destinationBucket")]
    destination_bucket: Option<String>,
}

pub(crate) async fn move_object(project: Project, ctx: RequestContext, body: Bytes) -> Result<Json<Value>> {
    let body: MoveBody = parse_body(&body)?;
    check_name(&body.source_key)?;
    check_name(&body.destination_key)?;
    let to_bucket = body.destination_bucket.clone().unwrap_or_else(|| body.bucket_id.clone());
    let destination = bucket_info(&project, &to_bucket).await?;
    if destination.id != body.bucket_id {
        let sql = "select metadata from storage.objects where bucket_id = $1 and name = $2";
        let metadata = rls_json(&project, &ctx, sql, &[&body.bucket_id, &body.source_key])
            .await?
            .ok_or_else(Error::no_such_key)?;
        check_fits(&destination, &metadata)?;
    }
    // The bytes stay where they are: only the row changes.
    let sql = "update storage.objects set bucket_id = $3, name = $4, updated_at = now() \
               where bucket_id = $1 and name = $2 returning to_jsonb(id)";
    let moved = rls_json(&project, &ctx, sql, &[&body.bucket_id, &body.source_key, &to_bucket, &body.destination_key])
        .await
        .map_err(duplicate)?;
    moved.ok_or_else(Error::no_such_key)?;
    Ok(Json(json!({ "message": "Successfully moved" })))
}

pub(crate) async fn copy(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>> {
    let body: MoveBody = parse_body(&body)?;
    check_name(&body.source_key)?;
    check_name(&body.destination_key)?;
    let to_bucket = body.destination_bucket.clone().unwrap_or_else(|| body.bucket_id.clone());
    let destination = bucket_info(&project, &to_bucket).await?;
    let sql = "select jsonb_build_object('version', version, 'metadata', metadata, 'user_metadata', user_metadata) \
               from storage.objects where bucket_id = $1 and name = $2";
    let source =
        rls_json(&project, &ctx, sql, &[&body.bucket_id, &body.source_key]).await?.ok_or_else(Error::no_such_key)?;
    let from = source["version"].as_str().ok_or_else(Error::no_such_key)?;
    check_fits(&destination, &source["metadata"])?;
    let version = Uuid::now_v7().to_string();
    let store = storage.store().as_ref();
    let target = Storage::blob_path(&project, &version);
    store.copy(&Storage::blob_path(&project, from), &target).await?;
    let mut metadata = source["metadata"].clone();
    metadata["eTag"] = json!(format!("\"{version}\""));
    metadata["lastModified"] = json!(OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default());
    let owner = owner_of(&ctx);
    let mode = Mode::Create { upsert: upsert(&headers) };
    let new = NewVersion { version, metadata, user_metadata: Some(source["user_metadata"].clone()) };
    let id =
        point_at_version(&project, &ctx, store, mode, &to_bucket, &body.destination_key, owner.as_deref(), new).await?;
    Ok(Json(json!({ "Id": id, "Key": format!("{to_bucket}/{}", body.destination_key) })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignBody {
    /// An image transformation: the URL then points at `/render/image/sign/...`.
    transform: Option<crate::render::Transform>,
    /// A number, or a numeric string (storage3 sends `"60"`; Supabase coerces it).
    #[serde(rename = "expiresIn", deserialize_with = "int_or_string")]
    expires_in: Option<i64>,
    paths: Vec<String>,
}

fn int_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| D::Error::custom("expiresIn must be an integer")),
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| D::Error::custom("expiresIn must be an integer"))
        }
        Some(_) => Err(D::Error::custom("expiresIn must be an integer")),
    }
}

fn expiry(storage: &Storage, seconds: Option<i64>) -> Result<i64> {
    let max = i64::try_from(storage.config().max_signed_url_expiry).unwrap_or(i64::MAX);
    match seconds {
        Some(s) if s >= 1 && s <= max => Ok(s),
        _ => Err(Error::invalid(format!("expiresIn must be between 1 and {max} seconds"))),
    }
}

fn signed_url(
    project: &Project,
    bucket: &str,
    name: &str,
    expires_in: i64,
    transform: Option<&crate::render::Transform>,
) -> Result<String> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut claims =
        json!({ "url": format!("{bucket}/{name}"), "scope": "download", "iat": now, "exp": now + expires_in });
    if let Some(t) = transform {
        claims["transformations"] = json!(t.to_query());
    }
    let claims = claims.as_object().cloned().unwrap_or_default();
    let token = project.keys().sign_hs256(&claims).map_err(Error::internal)?;
    let base = if transform.is_some() { "/render/image/sign" } else { "/object/sign" };
    Ok(format!("{base}/{bucket}/{name}?token={token}"))
}

pub(crate) async fn sign(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path((bucket, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>> {
    check_name(&name)?;
    let body: SignBody = parse_body(&body)?;
    let expires_in = expiry(&storage, body.expires_in)?;
    // Only what the caller may read can be signed.
    let sql = "select to_jsonb(id) from storage.objects where bucket_id = $1 and name = $2";
    rls_json(&project, &ctx, sql, &[&bucket, &name]).await?.ok_or_else(Error::no_such_key)?;
    if let Some(t) = &body.transform {
        crate::render::check(t)?;
    }
    Ok(Json(json!({ "signedURL": signed_url(&project, &bucket, &name, expires_in, body.transform.as_ref())? })))
}

pub(crate) async fn sign_many(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path(bucket): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let body: SignBody = parse_body(&body)?;
    let expires_in = expiry(&storage, body.expires_in)?;
    if body.paths.is_empty() || body.paths.len() > 1000 {
        return Err(Error::invalid("paths must name between 1 and 1000 objects"));
    }
    let sql =
        "select coalesce(jsonb_agg(name), '[]'::jsonb) from storage.objects where bucket_id = $1 and name = any($2)";
    let visible = rls_json(&project, &ctx, sql, &[&bucket, &body.paths]).await?.unwrap_or_default();
    let visible: Vec<&str> =
        visible.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let mut out = Vec::with_capacity(body.paths.len());
    for path in &body.paths {
        if visible.contains(&path.as_str()) {
            out.push(
                json!({ "path": path, "signedURL": signed_url(&project, &bucket, path, expires_in, None)?, "error": null }),
            );
        } else {
            out.push(json!({ "path": path, "signedURL": null, "error": "Either the object does not exist or you do not have access to it" }));
        }
    }
    Ok(Json(Value::Array(out)))
}

/// How long a signed upload URL stays valid (Supabase's two hours).
const UPLOAD_URL_TTL: i64 = 2 * 3600;

/// `createSignedUploadUrl`: a URL anyone holding it may upload this one object to, once the
/// caller has shown it may create it.
pub(crate) async fn sign_upload(
    project: Project,
    ctx: RequestContext,
    Path((bucket, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    check_name(&name)?;
    bucket_info(&project, &bucket).await?;
    let upsert = upsert(&headers);
    let owner = owner_of(&ctx);
    // Would the caller's upload pass the policies (insert, or the upsert's update)? Try it
    // as the caller and roll back.
    precheck(&project, &ctx, &bucket, &name, owner.as_deref(), Mode::Create { upsert }).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "url": format!("{bucket}/{name}"),
        "scope": "upload",
        "upsert": upsert,
        "owner": owner,
        "iat": now,
        "exp": now + UPLOAD_URL_TTL,
    });
    let token = project.keys().sign_hs256(claims.as_object().expect("an object")).map_err(Error::internal)?;
    Ok(Json(json!({ "url": format!("/object/upload/sign/{bucket}/{name}?token={token}"), "token": token })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

/// `uploadToSignedUrl`: no JWT; the token decides the object, the owner and whether it may
/// replace an existing one.
pub(crate) async fn upload_signed(
    Extension(storage): Extension<Storage>,
    project: Project,
    Path((bucket, name)): Path<(String, String)>,
    Query(q): Query<TokenQuery>,
    request: Request,
) -> Result<Json<Value>> {
    let grant = match UploadGrant::verify(&project, q.token.as_deref(), &bucket, &name) {
        Ok(grant) => grant,
        Err(e) => {
            // Answered after the body, not with a reset while the client is still sending.
            blob::discard(request.into_body()).await;
            return Err(e);
        }
    };
    let ctx = UploadGrant::ctx(http::Method::PUT, "/object/upload/sign");
    let key = format!("{bucket}/{name}");
    let mode = Mode::Create { upsert: grant.upsert };
    let Json(stored) = store_detached(storage, project, ctx, bucket, name, request, mode, grant.owner).await?;
    Ok(Json(json!({ "Key": key, "Id": stored["Id"] })))
}

/// What a signed upload URL lets its holder do: create one object (or, with `upsert`,
/// replace it), owned by the URL's signer.
pub(super) struct UploadGrant {
    pub(super) owner: Option<String>,
    pub(super) upsert: bool,
}

impl UploadGrant {
    /// The grant of an upload token for `bucket/name` (see [`verify_token`]).
    pub(super) fn verify(project: &Project, token: Option<&str>, bucket: &str, name: &str) -> Result<Self> {
        let claims = verify_token(project, token, "upload", bucket, name)?;
        Ok(UploadGrant {
            owner: claims.get("owner").and_then(Value::as_str).map(str::to_owned),
            upsert: claims.get("upsert").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The settings the grant's row changes run with: the policies were checked, as the
    /// signer, when the URL was signed.
    pub(super) fn ctx(method: http::Method, path: &'static str) -> RequestContext {
        RequestContext::new(forge_core::Principal::service(), method, path)
    }
}

/// Verifies a signed-URL token: its signature and expiry, its scope (`download` or
/// `upload`), and that it names `bucket/name`.
fn verify_token(
    project: &Project,
    token: Option<&str>,
    scope: &str,
    bucket: &str,
    name: &str,
) -> Result<forge_core::Claims> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::InvalidSignature, "Querystring must have required property 'token'"))?;
    let claims = project.keys().verify_own_jwt(token).map_err(|e| match e.code {
        forge_core::ErrorCode::JwtExpired => Error::new(ErrorKind::ExpiredToken, "The provided token has expired."),
        _ => Error::new(ErrorKind::InvalidJwt, format!("The token is invalid: {e}")),
    })?;
    if claims.get("scope").and_then(Value::as_str) != Some(scope) {
        return Err(Error::new(ErrorKind::InvalidSignature, format!("Token is not scoped for {scope}")));
    }
    if claims.get("url").and_then(Value::as_str) != Some(format!("{bucket}/{name}").as_str()) {
        return Err(Error::new(ErrorKind::InvalidSignature, "The signature does not match the object"));
    }
    Ok(claims)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignedQuery {
    token: Option<String>,
    download: Option<String>,
}

pub(crate) async fn download_signed(
    Extension(storage): Extension<Storage>,
    project: Project,
    Path((bucket, name)): Path<(String, String)>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let claims = verify_token(&project, q.token.as_deref(), "download", &bucket, &name)?;
    if claims.get("transformations").is_some() {
        // A link to a transformed image does not also give the original.
        return Err(Error::new(ErrorKind::InvalidSignature, "This token is for a transformed image only"));
    }
    let stored = object_row(&project, Reader::Service, STORED_JSON, &bucket, &name).await?;
    serve(&storage, &project, stored, &name, q.download, &headers).await
}

pub(crate) async fn render(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path((bucket, name)): Path<(String, String)>,
    Query(t): Query<crate::render::Transform>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    check_name(&name)?;
    crate::render::check(&t)?;
    let stored = object_row(&project, Reader::Caller(&ctx), STORED_JSON, &bucket, &name).await?;
    render_stored(&storage, &project, stored, t, &name, q.download, &headers).await
}

pub(crate) async fn render_public(
    Extension(storage): Extension<Storage>,
    project: Project,
    Path((bucket, name)): Path<(String, String)>,
    Query(t): Query<crate::render::Transform>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    check_name(&name)?;
    crate::render::check(&t)?;
    ensure_public(&project, &bucket).await?;
    let stored = object_row(&project, Reader::Service, STORED_JSON, &bucket, &name).await?;
    render_stored(&storage, &project, stored, t, &name, q.download, &headers).await
}

pub(crate) async fn render_signed(
    Extension(storage): Extension<Storage>,
    project: Project,
    Path((bucket, name)): Path<(String, String)>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let claims = verify_token(&project, q.token.as_deref(), "download", &bucket, &name)?;
    // The transformation is the one that was signed.
    let t = match claims.get("transformations").and_then(Value::as_str) {
        Some(query) => crate::render::Transform::from_query(query)?,
        None => crate::render::Transform::default(),
    };
    crate::render::check(&t)?;
    let stored = object_row(&project, Reader::Service, STORED_JSON, &bucket, &name).await?;
    render_stored(&storage, &project, stored, t, &name, q.download, &headers).await
}

/// Renders a stored image. Without a `format`, a client that takes WebP gets WebP (as
/// Supabase's image service answers browsers); `format=origin` keeps the stored format. Each
/// stored version and transformation has its own ETag, so a revalidation skips the render.
async fn render_stored(
    storage: &Storage,
    project: &Project,
    stored: Value,
    mut t: crate::render::Transform,
    name: &str,
    download: Option<String>,
    asked: &HeaderMap,
) -> Result<Response> {
    use base64::Engine as _;
    let stored: Stored = serde_json::from_value(stored).map_err(Error::internal)?;
    if t.format.is_none() && accepts_webp(asked) {
        t.format = Some("webp".into());
    }
    let variant = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t.to_query());
    let etag = format!("\"{}.{variant}\"", stored.version);
    let cache = stored.metadata["cacheControl"].as_str().unwrap_or("no-cache").to_owned();
    let mut headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(header::ETAG, &etag);
    set(header::CACHE_CONTROL, &cache);
    set(header::LAST_MODIFIED, &stored.updated);
    set(header::VARY, "Accept");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(file) = download {
        set(header::CONTENT_DISPOSITION, &attachment(name, file));
    }
    if if_none_match(asked, &[&etag]) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    if stored.metadata["size"].as_u64().unwrap_or(0) > crate::render::MAX_INPUT_BYTES {
        return Err(Error::new(ErrorKind::EntityTooLarge, "The image is too large to transform"));
    }
    let got = storage.store().get(&Storage::blob_path(project, &stored.version)).await?;
    if got.meta.size > crate::render::MAX_INPUT_BYTES {
        return Err(Error::new(ErrorKind::EntityTooLarge, "The image is too large to transform"));
    }
    // At most one transformation per core at a time: each may use hundreds of MiB.
    let _permit = storage.0.renders.acquire().await.map_err(Error::internal)?;
    let bytes = got.bytes().await?;
    let (out, mime) =
        tokio::task::spawn_blocking(move || crate::render::apply(&bytes, &t)).await.map_err(Error::internal)??;
    set(header::CONTENT_TYPE, mime);
    set(header::CONTENT_LENGTH, &out.len().to_string());
    Ok((StatusCode::OK, headers, out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_segment_by_segment() {
        for ok in ["a.txt", "a/b/c.png", "folder/with space/(1) it's=ok;+,?.txt", "a..b/c"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            ".",
            "a/./b",
            "..",
            "a/../b",
            "a\u{0}b",
            "a\nb",
            "é.txt",
            "a#b",
            "a%b",
            long.as_str(),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn webp_is_taken_when_accept_names_it() {
        let accept = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
            accepts_webp(&h)
        };
        assert!(accept("image/avif,image/webp,image/apng,image/*,*/*;q=0.8"));
        assert!(accept("IMAGE/WEBP"));
        assert!(!accept("image/webp;q=0, image/*"));
        assert!(!accept("image/webp; q=0.0"));
        assert!(accept("image/webp;q=0.5"));
        assert!(!accept("image/*,*/*"));
        assert!(!accept("image/webpx"));
        assert!(!accepts_webp(&HeaderMap::new()));
    }

    #[test]
    fn single_byte_ranges_only() {
        assert_eq!(parse_range("bytes=0-9"), Some(GetRange::Bounded(0..10)));
        assert_eq!(parse_range("bytes=5-"), Some(GetRange::Offset(5)));
        assert_eq!(parse_range("bytes=-3"), Some(GetRange::Suffix(3)));
        for bad in ["bytes=9-1", "bytes=0-1,4-5", "items=0-1", "bytes=a-b", "bytes=-"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn mime_lists_allow_wildcards_and_ignore_parameters() {
        let bucket = |types: Option<Vec<&str>>| BucketInfo {
            id: "b".into(),
            public: false,
            file_size_limit: None,
            allowed_mime_types: types.map(|t| t.into_iter().map(str::to_owned).collect()),
        };
        assert!(mime_allowed(&bucket(None), "anything/at-all"));
        let images = bucket(Some(vec!["image/*", "text/csv"]));
        assert!(mime_allowed(&images, "image/png"));
        assert!(mime_allowed(&images, "Text/CSV; charset=utf-8"));
        assert!(!mime_allowed(&images, "text/plain"));
        assert!(!mime_allowed(&images, "imagex/png"));
    }
}
