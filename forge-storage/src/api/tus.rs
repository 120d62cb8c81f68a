//! TUS 1.0.0 resumable uploads at `/upload/resumable`, as Supabase Storage serves them to
//! tus-js-client and Uppy: creation (also with the first bytes), `HEAD`, `PATCH`,
//! termination and expiration, plus the signed variant under `/upload/resumable/sign` that
//! takes a signed upload URL's token in `x-signature`.
//!
//! An upload is a row of `storage.resumable_uploads`; its bytes are part blobs under
//! `<project ref>/tus/<id>/<start offset>`, one per `PATCH`, so any `ObjectStore` will do. A
//! `PATCH` holds the row's lock while it writes, so an upload has one writer at a time (a
//! second one gets 423), and a body that breaks off keeps what arrived: the client asks for
//! the offset and goes on from there. When the last byte is in, the parts are joined into the
//! object's version `<project ref>/<id>` and the object row is written as the caller, as a
//! plain upload would be; until then nothing is visible.
//!
//! Errors have the real status and a plain-text body, as Supabase's TUS routes answer.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{OriginalUri, Path, Request};
use axum::response::{IntoResponse, Response};
use axum::{Extension, http};
use base64::Engine as _;
use forge_core::rls::RequestContext;
use forge_core::{Principal, Project, Rejection};
use futures_util::TryStreamExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use object_store::ObjectStoreExt as _;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::bucket_info;
use super::object::{
    Mode, NewVersion, check_mime, check_name, object_metadata, owner_of, point_at_version, precheck, size_limit,
    upsert, verify_token,
};
use crate::blob;
use crate::error::Error;
use crate::service::Storage;

const TUS_VERSION: &str = "1.0.0";
/// How long an upload may take, from its creation (Supabase's `TUS_URL_EXPIRY_MS`).
const EXPIRY: time::Duration = time::Duration::hours(1);
const CHUNK_TYPE: &str = "application/offset+octet-stream";
/// Expired uploads removed per creation.
const SWEEP: i64 = 100;

/// A TUS error: the real status, with the message as plain text.
#[derive(Debug)]
pub(crate) struct TusError(Error);

type TusResult<T> = std::result::Result<T, TusError>;

impl From<Error> for TusError {
    fn from(e: Error) -> Self {
        TusError(e)
    }
}

impl From<forge_core::ForgeError> for TusError {
    fn from(e: forge_core::ForgeError) -> Self {
        TusError(Error::Core(e))
    }
}

impl From<Rejection> for TusError {
    fn from(r: Rejection) -> Self {
        TusError(Error::Core(r.error))
    }
}

impl From<sqlx::Error> for TusError {
    fn from(e: sqlx::Error) -> Self {
        TusError(Error::Core(e.into()))
    }
}

impl IntoResponse for TusError {
    fn into_response(self) -> Response {
        let (status, message) = match self.0 {
            Error::Api { status, message, .. } => (status, message.into_owned()),
            Error::Core(e) => {
                let (_, status, message) = e.storage_parts(true);
                if status >= 500 {
                    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "resumable upload failed");
                }
                (status, message)
            }
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, message).into_response();
        res.headers_mut().insert(tus_resumable(), HeaderValue::from_static(TUS_VERSION));
        if status == StatusCode::PRECONDITION_FAILED {
            res.headers_mut().insert(HeaderName::from_static("tus-version"), HeaderValue::from_static(TUS_VERSION));
        }
        res
    }
}

fn tus_error(status: u16, code: &'static str, message: &'static str) -> TusError {
    TusError(Error::api(status, code, message))
}

fn not_found() -> TusError {
    tus_error(404, "NoSuchUpload", "Upload not found")
}

fn tus_resumable() -> HeaderName {
    HeaderName::from_static("tus-resumable")
}

/// A response carrying `Tus-Resumable` and `headers`.
fn reply(status: StatusCode, headers: &[(&'static str, String)]) -> Response {
    let mut res = status.into_response();
    let out = res.headers_mut();
    out.insert(tus_resumable(), HeaderValue::from_static(TUS_VERSION));
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(HeaderName::from_static(name), v);
        }
    }
    res
}

/// Every request but `OPTIONS` must speak TUS 1.0.0 (412 otherwise).
fn check_version(headers: &HeaderMap) -> TusResult<()> {
    match headers.get(tus_resumable()) {
        Some(v) if v == TUS_VERSION => Ok(()),
        _ => Err(tus_error(412, "InvalidRequest", "Unsupported TUS version")),
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> TusResult<Option<&'h str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| TusError(Error::invalid(format!("Invalid {name} header")))),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> TusResult<Option<u64>> {
    match header_str(headers, name)? {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().map(Some).map_err(|_| TusError(Error::invalid(format!("Invalid {name} header"))))
        }
        Some(_) => Err(TusError(Error::invalid(format!("Invalid {name} header")))),
    }
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs (the value may be absent).
fn parse_metadata(raw: &str) -> TusResult<HashMap<String, String>> {
    let bad = || tus_error(400, "InvalidRequest", "Invalid Upload-Metadata header");
    let mut out = HashMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) || value.contains(' ') {
            return Err(bad());
        }
        let value = base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| bad())?;
        let value = String::from_utf8(value).map_err(|_| bad())?;
        if out.insert(key.to_owned(), value).is_some() {
            return Err(bad());
        }
    }
    Ok(out)
}

/// The id in an upload's URL: base64url of `<bucket>/<object>/<version>`, as Supabase's.
fn encode_id(bucket: &str, name: &str, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{bucket}/{name}/{id}"))
}

fn decode_id(raw: &str) -> TusResult<(String, String, Uuid)> {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = engine.decode(raw.trim_end_matches('=')).map_err(|_| not_found())?;
    let text = String::from_utf8(bytes).map_err(|_| not_found())?;
    let (key, id) = text.rsplit_once('/').ok_or_else(not_found)?;
    let (bucket, name) = key.split_once('/').ok_or_else(not_found)?;
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    Ok((bucket.to_owned(), name.to_owned(), id))
}

/// The absolute URL of `path` as the client reached it, through any proxy in front
/// (`X-Forwarded-Proto`, `-Host`, `-Port` and `-Prefix`).
fn public_url(headers: &HeaderMap, path: &str) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim())
            .filter(|v| !v.is_empty())
    };
    let proto = match first("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let mut host = first("x-forwarded-host").or_else(|| first("host")).unwrap_or("localhost").to_owned();
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()));
    if let Some(port) = first("x-forwarded-port").filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        && !has_port
        && !matches!((proto, port), ("http", "80") | ("https", "443"))
    {
        host = format!("{host}:{port}");
    }
    let prefix = first("x-forwarded-prefix").unwrap_or("").trim_end_matches('/');
    let prefix = if prefix.is_empty() || prefix.starts_with('/') { prefix.to_owned() } else { format!("/{prefix}") };
    format!("{proto}://{host}{prefix}{}", path.trim_end_matches('/'))
}

/// An HTTP date (`Upload-Expires`).
fn http_date(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

/// How a request proves its right to an upload.
enum Caller {
    /// A signed-in (or anon, or service) caller, whose rights the policies decide.
    Jwt(RequestContext),
    /// The holder of a signed upload URL: its token, from `x-signature`.
    Signed(Option<String>),
}

impl Caller {
    fn signed(headers: &HeaderMap) -> Self {
        Caller::Signed(headers.get("x-signature").and_then(|v| v.to_str().ok()).map(str::to_owned))
    }
}

/// What a request may do to one upload, once checked.
struct Access {
    /// The caller's transaction settings (the service's for a signed URL).
    ctx: RequestContext,
    owner: Option<String>,
    upsert: bool,
}

impl Access {
    /// The access a new upload of `bucket/name` gets.
    fn new(project: &Project, caller: Caller, bucket: &str, name: &str, headers: &HeaderMap) -> TusResult<Self> {
        match caller {
            Caller::Jwt(ctx) => Ok(Access { owner: owner_of(&ctx), upsert: upsert(headers), ctx }),
            Caller::Signed(token) => {
                let claims = verify_token(project, token.as_deref(), "upload", bucket, name)?;
                Ok(Access {
                    ctx: service_ctx(),
                    owner: claims.get("owner").and_then(Value::as_str).map(str::to_owned),
                    upsert: claims.get("upsert").and_then(Value::as_bool).unwrap_or(false),
                })
            }
        }
    }

    /// The access `caller` has to an existing upload: only the creator's role and user, or
    /// a token for the same object and owner, reach it (404 otherwise).
    fn to(project: &Project, caller: Caller, upload: &Upload) -> TusResult<Self> {
        match caller {
            Caller::Jwt(ctx) => {
                let owner = owner_of(&ctx);
                if upload.signed || ctx.principal().role() != upload.role || owner != upload.owner_id {
                    return Err(not_found());
                }
                Ok(Access { ctx, owner, upsert: upload.upsert })
            }
            Caller::Signed(token) => {
                let claims = verify_token(project, token.as_deref(), "upload", &upload.bucket_id, &upload.name)?;
                let owner = claims.get("owner").and_then(Value::as_str).map(str::to_owned);
                if !upload.signed || owner != upload.owner_id {
                    return Err(not_found());
                }
                Ok(Access { ctx: service_ctx(), owner, upsert: upload.upsert })
            }
        }
    }
}

/// The settings a signed upload's row changes run with: its policies were checked when the
/// URL was signed.
fn service_ctx() -> RequestContext {
    RequestContext::new(Principal::service(), Method::POST, "/upload/resumable/sign")
}

/// An upload in progress (a row of `storage.resumable_uploads`).
#[derive(Debug, sqlx::FromRow)]
struct Upload {
    id: Uuid,
    bucket_id: String,
    name: String,
    role: String,
    owner_id: Option<String>,
    signed: bool,
    upsert: bool,
    upload_length: i64,
    upload_offset: i64,
    parts: Vec<i64>,
    content_type: String,
    cache_control: String,
    user_metadata: Option<Value>,
    upload_metadata: Option<String>,
    expires_at: OffsetDateTime,
    finished_at: Option<OffsetDateTime>,
}

impl Upload {
    fn expired(&self) -> bool {
        self.finished_at.is_none() && self.expires_at <= OffsetDateTime::now_utc()
    }

    fn length(&self) -> u64 {
        u64::try_from(self.upload_length).unwrap_or(0)
    }

    fn offset(&self) -> u64 {
        u64::try_from(self.upload_offset).unwrap_or(0)
    }
}

const UPLOAD_COLUMNS: &str = "id, bucket_id, name, role, owner_id, signed, upsert, upload_length, upload_offset, \
     parts, content_type, cache_control, user_metadata, upload_metadata, expires_at, finished_at";

/// The upload `raw` names (a URL id). With `lock`, the row is locked in `tx` for its one
/// writer; a request that finds it locked gets 423.
async fn load(conn: &mut sqlx::PgConnection, raw: &str, lock: bool) -> TusResult<Upload> {
    let (bucket, name, id) = decode_id(raw)?;
    let sql = format!(
        "select {UPLOAD_COLUMNS} from storage.resumable_uploads where id = $1 and bucket_id = $2 and name = $3{}",
        if lock { " for update nowait" } else { "" }
    );
    let row = sqlx::query_as::<_, Upload>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(bucket)
        .bind(name)
        .fetch_optional(conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => {
                tus_error(423, "ResourceLocked", "The upload is being written by another request")
            }
            _ => TusError::from(e),
        })?;
    row.ok_or_else(not_found)
}

pub(crate) fn part_prefix(project: &Project, id: Uuid) -> object_store::path::Path {
    object_store::path::Path::from_iter([project.reference().as_str(), "tus", &id.to_string()])
}

fn part_path(project: &Project, id: Uuid, start: i64) -> object_store::path::Path {
    part_prefix(project, id).join(format!("{start:020}"))
}

/// Deletes every part blob of an upload (those of failed `PATCH`es too).
pub(crate) async fn forget_parts(storage: &Storage, project: &Project, id: Uuid) {
    let store = storage.store().as_ref();
    let prefix = part_prefix(project, id);
    match store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect::<Vec<_>>().await {
        Ok(paths) => blob::forget(store, paths).await,
        Err(e) => tracing::warn!(error = %e, upload = %id, "listing an upload's parts failed; they are kept"),
    }
}

/// Removes up to [`SWEEP`] expired uploads (and the parts of unfinished ones), skipping any
/// being written. Returns how many went.
pub(crate) async fn sweep_expired(storage: &Storage, project: &Project) -> Result<usize, sqlx::Error> {
    let gone: Vec<(Uuid, bool)> = sqlx::query_as(
        "delete from storage.resumable_uploads where id in (select id from storage.resumable_uploads \
           where expires_at < now() order by expires_at limit $1 for update skip locked) \
         returning id, finished_at is null",
    )
    .bind(SWEEP)
    .fetch_all(project.db().pool())
    .await?;
    for (id, unfinished) in &gone {
        if *unfinished {
            forget_parts(storage, project, *id).await;
        }
    }
    Ok(gone.len())
}

/// `OPTIONS`: what this server speaks.
pub(crate) async fn options(Extension(storage): Extension<Storage>) -> Response {
    reply(
        StatusCode::NO_CONTENT,
        &[
            ("tus-version", TUS_VERSION.to_owned()),
            ("tus-extension", "creation,creation-with-upload,termination,expiration".to_owned()),
            ("tus-max-size", storage.config().file_size_limit.to_string()),
        ],
    )
}

pub(crate) async fn create(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    ctx: Result<RequestContext, Rejection>,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> TusResult<Response> {
    create_upload(storage, project?, Caller::Jwt(ctx?), uri.path(), request).await
}

pub(crate) async fn create_signed(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> TusResult<Response> {
    let caller = Caller::signed(request.headers());
    create_upload(storage, project?, caller, uri.path(), request).await
}

/// Runs `handle` on a request whose body may carry a chunk. On a refusal the rest of the body
/// is read and dropped (within a bound) before the answer goes out: a client still sending,
/// as tus-js-client does with a first chunk of 6 MiB, would otherwise see a reset, not the
/// status.
async fn drained<F, Fut>(request: Request, handle: F) -> TusResult<Response>
where
    F: FnOnce(HeaderMap, Body) -> Fut,
    Fut: Future<Output = TusResult<Response>>,
{
    let (parts, body) = request.into_parts();
    let (body, drain) = blob::pump(body);
    let result = handle(parts.headers, body).await;
    if result.is_err() {
        drain.finish().await;
    }
    result
}

async fn create_upload(
    storage: Storage,
    project: Project,
    caller: Caller,
    path: &str,
    request: Request,
) -> TusResult<Response> {
    drained(request, |headers, body| create_with(storage, project, caller, path, headers, body)).await
}

async fn create_with(
    storage: Storage,
    project: Project,
    caller: Caller,
    path: &str,
    headers: HeaderMap,
    body: Body,
) -> TusResult<Response> {
    check_version(&headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(tus_error(400, "InvalidRequest", "Upload-Defer-Length is not supported"));
    }
    let length = header_u64(&headers, "upload-length")?
        .ok_or_else(|| tus_error(400, "InvalidRequest", "Upload-Length is required"))?;
    let raw_metadata = header_str(&headers, "upload-metadata")?.unwrap_or("");
    let metadata = parse_metadata(raw_metadata)?;
    let required = |key: &str| {
        metadata
            .get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| TusError(Error::invalid(format!("Upload-Metadata must name the {key}"))))
    };
    let (bucket, name) = (required("bucketName")?, required("objectName")?);
    check_name(name)?;
    let bucket = bucket_info(&project, bucket).await?;
    if length > size_limit(&storage, &bucket) {
        return Err(TusError(blob::too_large()));
    }
    let content_type = metadata.get("contentType").filter(|t| !t.is_empty()).map_or("application/octet-stream", |t| t);
    check_mime(&bucket, content_type)?;
    let cache_control = match metadata.get("cacheControl") {
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => format!("max-age={s}"),
        _ => "no-cache".to_owned(),
    };
    // Like Supabase, user metadata that does not parse is dropped.
    let user_metadata =
        metadata.get("metadata").and_then(|m| serde_json::from_str::<Value>(m).ok()).filter(Value::is_object);
    let signed = matches!(caller, Caller::Signed(_));
    let access = Access::new(&project, caller, &bucket.id, name, &headers)?;
    // Refuse now what the policies (or an existing key) would refuse at the end.
    precheck(&project, &access.ctx, &bucket.id, name, access.owner.as_deref(), Mode::Create { upsert: access.upsert })
        .await?;
    if let Err(e) = sweep_expired(&storage, &project).await {
        tracing::warn!(error = %e, "sweeping expired uploads failed");
    }

    let id = Uuid::new_v4();
    let expires = OffsetDateTime::now_utc() + EXPIRY;
    sqlx::query(
        "insert into storage.resumable_uploads (id, bucket_id, name, role, owner_id, signed, upsert, upload_length, \
           content_type, cache_control, user_metadata, upload_metadata, expires_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(&bucket.id)
    .bind(name)
    .bind(access.ctx.principal().role())
    .bind(access.owner.as_deref())
    .bind(signed)
    .bind(access.upsert)
    .bind(i64::try_from(length).map_err(|_| TusError(blob::too_large()))?)
    .bind(content_type)
    .bind(&cache_control)
    .bind(&user_metadata)
    .bind(Some(raw_metadata).filter(|m| !m.is_empty()))
    .bind(expires)
    .execute(project.db().pool())
    .await?;

    let location = format!("{}/{}", public_url(&headers, path), encode_id(&bucket.id, name, id));
    let mut out = vec![("location", location), ("upload-expires", http_date(expires))];
    // creation-with-upload: the first bytes may come with the creation (and an empty upload
    // is complete at once).
    let has_chunk = headers.get(header::CONTENT_TYPE).is_some_and(|t| t == CHUNK_TYPE);
    if has_chunk || length == 0 {
        let raw = encode_id(&bucket.id, name, id);
        let written = write(storage, project, Writer::Creator(access), raw, 0, body).await?;
        out.push(("upload-offset", written.offset.to_string()));
    }
    Ok(reply(StatusCode::CREATED, &out))
}

pub(crate) async fn head(
    project: Result<Project, Rejection>,
    ctx: Result<RequestContext, Rejection>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> TusResult<Response> {
    head_upload(project?, Caller::Jwt(ctx?), &raw, &headers).await
}

pub(crate) async fn head_signed(
    project: Result<Project, Rejection>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> TusResult<Response> {
    head_upload(project?, Caller::signed(&headers), &raw, &headers).await
}

async fn head_upload(project: Project, caller: Caller, raw: &str, headers: &HeaderMap) -> TusResult<Response> {
    check_version(headers)?;
    let mut conn = project.db().pool().acquire().await.map_err(forge_core::ForgeError::from)?;
    let upload = load(&mut conn, raw, false).await?;
    drop(conn);
    Access::to(&project, caller, &upload)?;
    if upload.expired() {
        return Err(tus_error(410, "NoSuchUpload", "The upload has expired"));
    }
    let mut out = vec![
        ("upload-offset", upload.upload_offset.to_string()),
        ("upload-length", upload.upload_length.to_string()),
        ("cache-control", "no-store".to_owned()),
    ];
    if upload.finished_at.is_none() {
        out.push(("upload-expires", http_date(upload.expires_at)));
    }
    if let Some(m) = upload.upload_metadata {
        out.push(("upload-metadata", m));
    }
    Ok(reply(StatusCode::OK, &out))
}

pub(crate) async fn patch(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    ctx: Result<RequestContext, Rejection>,
    Path(raw): Path<String>,
    request: Request,
) -> TusResult<Response> {
    patch_upload(storage, project?, Caller::Jwt(ctx?), raw, request).await
}

pub(crate) async fn patch_signed(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    Path(raw): Path<String>,
    request: Request,
) -> TusResult<Response> {
    let caller = Caller::signed(request.headers());
    patch_upload(storage, project?, caller, raw, request).await
}

async fn patch_upload(
    storage: Storage,
    project: Project,
    caller: Caller,
    raw: String,
    request: Request,
) -> TusResult<Response> {
    drained(request, |headers, body| patch_with(storage, project, caller, raw, headers, body)).await
}

async fn patch_with(
    storage: Storage,
    project: Project,
    caller: Caller,
    raw: String,
    headers: HeaderMap,
    body: Body,
) -> TusResult<Response> {
    check_version(&headers)?;
    if headers.get(header::CONTENT_TYPE).is_none_or(|t| t != CHUNK_TYPE) {
        return Err(tus_error(415, "InvalidMimeType", "Content-Type must be application/offset+octet-stream"));
    }
    let offset = header_u64(&headers, "upload-offset")?
        .ok_or_else(|| tus_error(400, "InvalidRequest", "Upload-Offset is required"))?;
    let written = write(storage, project, Writer::Caller(caller), raw, offset, body).await?;
    let mut out = vec![("upload-offset", written.offset.to_string())];
    if let Some(expires) = written.expires {
        out.push(("upload-expires", http_date(expires)));
    }
    Ok(reply(StatusCode::NO_CONTENT, &out))
}

/// Who writes to an upload.
enum Writer {
    /// Its creator, in the creation request (already checked).
    Creator(Access),
    /// A caller to check against the upload.
    Caller(Caller),
}

/// Where an upload stands after a write.
struct Written {
    offset: u64,
    /// When it expires, unless it is finished.
    expires: Option<OffsetDateTime>,
}

/// Writes one chunk at `offset` and, if it was the last, turns the upload into its object.
/// The work runs on a task of its own, so a client that goes away cannot cut it short
/// between storing bytes and recording them.
async fn write(
    storage: Storage,
    project: Project,
    writer: Writer,
    raw: String,
    offset: u64,
    body: Body,
) -> TusResult<Written> {
    let task = tokio::spawn(async move { write_locked(&storage, &project, writer, &raw, offset, body).await });
    task.await.map_err(|e| TusError(Error::internal(e)))?
}

async fn write_locked(
    storage: &Storage,
    project: &Project,
    writer: Writer,
    raw: &str,
    offset: u64,
    body: Body,
) -> TusResult<Written> {
    let mut tx = project.db().pool().begin().await?;
    let ending = match write_chunk(storage, project, writer, raw, offset, body, &mut tx).await {
        Ok(ending) => ending,
        Err(e) => {
            rollback(tx).await;
            return Err(e);
        }
    };
    let store = storage.store().as_ref();
    if let Err(e) = tx.commit().await {
        if let Ending::Written { part: Some(part), .. } = ending {
            blob::forget(store, vec![part]).await;
        }
        return Err(e.into());
    }
    match ending {
        Ending::Written { written, finished, .. } => {
            if let Some(id) = finished {
                forget_parts(storage, project, id).await;
            }
            Ok(written)
        }
        Ending::Refused { id, error } => {
            forget_parts(storage, project, id).await;
            Err(error.into())
        }
    }
}

/// Ends `tx` now: a dropped transaction would keep its row locks until its connection is
/// next used.
async fn rollback(tx: sqlx::Transaction<'_, sqlx::Postgres>) {
    if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "rolling back a resumable upload's transaction failed");
    }
}

/// How a write ends, once its transaction commits.
enum Ending {
    /// The chunk is recorded.
    Written {
        written: Written,
        /// The part it stored, to remove if the commit fails.
        part: Option<object_store::path::Path>,
        /// The upload, if this chunk finished it: its parts go.
        finished: Option<Uuid>,
    },
    /// The object could not be created (a policy or an existing key refused it): the upload
    /// is removed, and its parts go.
    Refused { id: Uuid, error: Error },
}

/// The work of [`write_locked`] inside its transaction.
#[allow(clippy::too_many_arguments)]
async fn write_chunk(
    storage: &Storage,
    project: &Project,
    writer: Writer,
    raw: &str,
    offset: u64,
    body: Body,
    tx: &mut sqlx::PgConnection,
) -> TusResult<Ending> {
    let upload = load(tx, raw, true).await?;
    let access = match writer {
        Writer::Creator(access) => access,
        Writer::Caller(caller) => Access::to(project, caller, &upload)?,
    };
    if upload.expired() {
        return Err(tus_error(410, "NoSuchUpload", "The upload has expired"));
    }
    if offset != upload.offset() {
        return Err(tus_error(409, "InvalidRequest", "Upload-Offset does not match the upload's offset"));
    }
    let mut stream = body.into_data_stream();
    if upload.finished_at.is_some() {
        // A client repeating its last request gets the same answer, as long as it adds nothing.
        while let Some(chunk) = stream.try_next().await.map_err(Error::from)? {
            if !chunk.is_empty() {
                return Err(TusError(blob::too_large()));
            }
        }
        return Ok(Ending::Written { written: Written { offset, expires: None }, part: None, finished: None });
    }

    let store = storage.store().as_ref();
    let part = part_path(project, upload.id, upload.upload_offset);
    let remaining = upload.length() - upload.offset();
    let received =
        if remaining == 0 { 0 } else { blob::write(store, &part, &mut stream, remaining, blob::OnBreak::Keep).await? };
    let mut parts = upload.parts.clone();
    if received > 0 {
        parts.push(upload.upload_offset);
    } else if remaining > 0 {
        // An empty chunk leaves no part.
        blob::forget(store, vec![part.clone()]).await;
    }
    let part = (received > 0).then_some(part);
    let now_at = upload.offset() + received;
    let record = |finished: bool| {
        sqlx::query(
            "update storage.resumable_uploads set upload_offset = $2, parts = $3, \
               finished_at = case when $4 then now() end where id = $1",
        )
        .bind(upload.id)
        .bind(i64::try_from(now_at).unwrap_or(i64::MAX))
        .bind(parts.clone())
        .bind(finished)
    };

    if now_at < upload.length() {
        let recorded = record(false).execute(&mut *tx).await;
        if let Err(e) = recorded {
            if let Some(part) = part {
                blob::forget(store, vec![part]).await;
            }
            return Err(e.into());
        }
        let written = Written { offset: now_at, expires: Some(upload.expires_at) };
        return Ok(Ending::Written { written, part, finished: None });
    }
    // The last byte is in: the object appears.
    let finished = match finish(storage, project, &access, &upload, &parts).await {
        Ok(()) => record(true).execute(&mut *tx).await.map_err(TusError::from),
        Err(e) if e.status() < 500 => {
            sqlx::query("delete from storage.resumable_uploads where id = $1")
                .bind(upload.id)
                .execute(&mut *tx)
                .await?;
            return Ok(Ending::Refused { id: upload.id, error: e });
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = finished {
        // This chunk is dropped; the client may send it again.
        if let Some(part) = part {
            blob::forget(store, vec![part]).await;
        }
        return Err(e);
    }
    Ok(Ending::Written { written: Written { offset: now_at, expires: None }, part, finished: Some(upload.id) })
}

/// Joins an upload's parts into the object's version and points the object row at it, as
/// the caller.
async fn finish(
    storage: &Storage,
    project: &Project,
    access: &Access,
    upload: &Upload,
    parts: &[i64],
) -> Result<(), Error> {
    let store = storage.store().as_ref();
    let version = upload.id.to_string();
    let dest = Storage::blob_path(project, &version);
    let paths: Vec<_> = parts.iter().map(|start| part_path(project, upload.id, *start)).collect();
    let size = if paths.is_empty() {
        store.put(&dest, object_store::PutPayload::new()).await?;
        0
    } else {
        blob::join(storage.store(), &paths, &dest).await?
    };
    if size != upload.length() {
        blob::forget(store, vec![dest]).await;
        return Err(Error::internal(format!("upload {} joined to {size} bytes, not {}", upload.id, upload.length())));
    }
    let metadata = object_metadata(&version, size, &upload.content_type, &upload.cache_control);
    let new = NewVersion { version, metadata, user_metadata: upload.user_metadata.clone() };
    let mode = Mode::Create { upsert: access.upsert };
    point_at_version(project, &access.ctx, store, mode, &upload.bucket_id, &upload.name, access.owner.as_deref(), new)
        .await?;
    Ok(())
}

pub(crate) async fn terminate(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    ctx: Result<RequestContext, Rejection>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> TusResult<Response> {
    terminate_upload(storage, project?, Caller::Jwt(ctx?), &raw, &headers).await
}

pub(crate) async fn terminate_signed(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> TusResult<Response> {
    terminate_upload(storage, project?, Caller::signed(&headers), &raw, &headers).await
}

async fn terminate_upload(
    storage: Storage,
    project: Project,
    caller: Caller,
    raw: &str,
    headers: &HeaderMap,
) -> TusResult<Response> {
    check_version(headers)?;
    let mut tx = project.db().pool().begin().await?;
    let checked = async {
        let upload = load(&mut tx, raw, true).await?;
        Access::to(&project, caller, &upload)?;
        if upload.finished_at.is_some() {
            return Err(tus_error(400, "InvalidRequest", "A finished upload cannot be terminated"));
        }
        sqlx::query("delete from storage.resumable_uploads where id = $1").bind(upload.id).execute(&mut *tx).await?;
        Ok(upload.id)
    }
    .await;
    let id = match checked {
        Ok(id) => id,
        Err(e) => {
            rollback(tx).await;
            return Err(e);
        }
    };
    tx.commit().await?;
    forget_parts(&storage, &project, id).await;
    Ok(reply(StatusCode::NO_CONTENT, &[]))
}
