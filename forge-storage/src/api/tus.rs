//! TUS 1.0.0 resumable uploads at `/upload/resumable`, as Supabase Storage serves them to
//! tus-js-client and Uppy: creation (also with the first bytes), `HEAD`, `PATCH`,
//! termination and expiration, plus the signed variant under `/upload/resumable/sign` that
//! takes a signed upload URL's token in `x-signature`.
//!
//! An upload is a row of `storage.resumable_uploads`; its bytes are part blobs under
//! `<project ref>/tus/<id>/<start offset>-<lease>`, one per `PATCH`, so any `ObjectStore`
//! will do. A `PATCH` takes a lease on the row, renewed while its chunk streams, so an upload
//! has one writer at a time (a second one gets 423) and no connection is held while bytes
//! arrive. A body that breaks off keeps what arrived: the client asks for the offset and goes
//! on from there. When the last byte is in, the parts are joined into the object's version
//! `<project ref>/<id>` and the object row is written as the caller, as a plain upload would
//! be; until then nothing is visible.
//!
//! Errors have the real status and a plain-text body, as Supabase's TUS routes answer.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, OriginalUri, Path, Request};
use axum::response::{IntoResponse, Response};
use axum::{Extension, http};
use base64::Engine as _;
use forge_core::rls::RequestContext;
use forge_core::{Project, Rejection, WireFormat};
use futures_util::TryStreamExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use object_store::ObjectStoreExt as _;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::object::sign::UploadGrant;
use super::object::upload::{
    Mode, NewVersion, object_metadata, owner_of, point_at_version, precheck, size_limit, upsert,
};
use super::object::{check_mime, check_name};
use crate::blob;
use crate::error::{Error, ErrorKind};
use crate::rows::tus::Upload;
use crate::rows::{self, bucket_info};
use crate::service::Storage;

use forge_core::error::TUS_VERSION;
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

impl IntoResponse for TusError {
    fn into_response(self) -> Response {
        self.0.render(WireFormat::Tus)
    }
}

fn tus_error(kind: ErrorKind, message: &'static str) -> TusError {
    TusError(Error::new(kind, message))
}

fn not_found() -> TusError {
    tus_error(ErrorKind::NoSuchUpload, "Upload not found")
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
        _ => Err(tus_error(ErrorKind::TusVersionNotSupported, "Unsupported TUS version")),
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
    let bad = || tus_error(ErrorKind::InvalidRequest, "Invalid Upload-Metadata header");
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
fn public_url(headers: &HeaderMap, uri: &http::Uri) -> String {
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
    // HTTP/2 carries the host in the URI, not in a `Host` header.
    let authority = uri.authority().map(http::uri::Authority::as_str);
    let mut host = first("x-forwarded-host").or_else(|| first("host")).or(authority).unwrap_or("localhost").to_owned();
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()));
    if let Some(port) = first("x-forwarded-port").filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        && !has_port
        && !matches!((proto, port), ("http", "80") | ("https", "443"))
    {
        host = format!("{host}:{port}");
    }
    let prefix = first("x-forwarded-prefix").unwrap_or("").trim_end_matches('/');
    let prefix = if prefix.is_empty() || prefix.starts_with('/') { prefix.to_owned() } else { format!("/{prefix}") };
    format!("{proto}://{host}{prefix}{}", uri.path().trim_end_matches('/'))
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

/// The routes under `/upload/resumable`: the caller's token decides.
pub(crate) struct ByJwt;

/// The routes under `/upload/resumable/sign`: a signed upload URL's token in `x-signature`.
pub(crate) struct BySignature;

/// A TUS request's [`Caller`], as its route family (`P`) proves it.
pub(crate) struct TusCaller<P>(Caller, PhantomData<P>);

impl<S: Send + Sync> FromRequestParts<S> for TusCaller<ByJwt> {
    type Rejection = TusError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> TusResult<Self> {
        let ctx = RequestContext::from_request_parts(parts, state).await?;
        Ok(TusCaller(Caller::Jwt(ctx), PhantomData))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TusCaller<BySignature> {
    type Rejection = TusError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> TusResult<Self> {
        let token = parts.headers.get("x-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(TusCaller(Caller::Signed(token), PhantomData))
    }
}

/// What a request may do to one upload, once checked.
struct Access {
    /// The caller's transaction settings (the service's for a signed URL).
    ctx: RequestContext,
    /// The caller's `sub`, as the token gave it.
    subject: Option<String>,
    /// The object's owner (a user id).
    owner: Option<String>,
    upsert: bool,
}

impl Access {
    /// The access a new upload of `bucket/name` gets.
    fn new(project: &Project, caller: Caller, bucket: &str, name: &str, headers: &HeaderMap) -> TusResult<Self> {
        match caller {
            Caller::Jwt(ctx) => Ok(Access {
                subject: ctx.principal().claims().sub().map(str::to_owned),
                owner: owner_of(&ctx),
                upsert: upsert(headers),
                ctx,
            }),
            Caller::Signed(token) => {
                let grant = UploadGrant::verify(project, token.as_deref(), bucket, name)?;
                Ok(Access { ctx: signed_ctx(), subject: None, owner: grant.owner, upsert: grant.upsert })
            }
        }
    }

    /// The access `caller` has to an existing upload: only the creator's role and subject, or
    /// a token for the same object and owner, reach it (404 otherwise).
    fn to(project: &Project, caller: Caller, upload: &Upload) -> TusResult<Self> {
        match caller {
            Caller::Jwt(ctx) => {
                let subject = ctx.principal().claims().sub().map(str::to_owned);
                if upload.signed || ctx.principal().role() != upload.role || subject != upload.subject {
                    return Err(not_found());
                }
                Ok(Access { owner: owner_of(&ctx), subject, ctx, upsert: upload.upsert })
            }
            Caller::Signed(token) => {
                let grant = UploadGrant::verify(project, token.as_deref(), &upload.bucket_id, &upload.name)?;
                if !upload.signed || grant.owner != upload.owner_id {
                    return Err(not_found());
                }
                Ok(Access { ctx: signed_ctx(), subject: None, owner: grant.owner, upsert: upload.upsert })
            }
        }
    }
}

fn signed_ctx() -> RequestContext {
    UploadGrant::ctx(Method::POST, "/upload/resumable/sign")
}

/// The upload `raw` names (a URL id), or 404.
async fn load(project: &Project, raw: &str) -> TusResult<Upload> {
    let (bucket, name, id) = decode_id(raw)?;
    rows::tus::load(project, id, &bucket, &name).await?.ok_or_else(not_found)
}

/// How long a writer's lease on an upload holds unless renewed; it is renewed every third
/// of that while the chunk streams.
const LEASE: Duration = Duration::from_secs(60);

/// The most parts an upload may have.
const MAX_PARTS: usize = 10_000;

fn locked() -> TusError {
    tus_error(ErrorKind::UploadLocked, "The upload is being written by another request")
}

/// Takes the writer's lease on `upload` (423 while another request holds it) and returns
/// the upload as it stands now: what an earlier writer recorded counts, not what was read
/// before the lease.
async fn take_lease(project: &Project, upload: &Upload, lease: Uuid) -> TusResult<Upload> {
    rows::tus::take_lease(project, upload.id, lease, LEASE).await?.ok_or_else(locked)
}

/// Keeps the lease alive while a chunk streams; never returns. A lease that could not be
/// renewed is found out when the chunk is recorded.
async fn renew_lease(project: &Project, id: Uuid, lease: Uuid) -> std::convert::Infallible {
    let mut every = tokio::time::interval(LEASE / 3);
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(e) = rows::tus::renew_lease(project, id, lease, LEASE).await {
            tracing::warn!(error = %e, upload = %id, "renewing a resumable upload's lease failed");
        }
    }
}

/// Gives the lease up without recording anything.
async fn release_lease(project: &Project, id: Uuid, lease: Uuid) {
    if let Err(e) = rows::tus::release_lease(project, id, lease).await {
        tracing::warn!(error = %e, upload = %id, "releasing a resumable upload's lease failed; it runs out");
    }
}

pub(crate) fn part_prefix(project: &Project, id: Uuid) -> object_store::path::Path {
    object_store::path::Path::from_iter([project.reference().as_str(), "tus", &id.to_string()])
}

fn part_path(project: &Project, id: Uuid, part: &str) -> object_store::path::Path {
    part_prefix(project, id).join(part)
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
pub(crate) async fn sweep_expired(storage: &Storage, project: &Project) -> Result<usize, Error> {
    let gone = rows::tus::delete_expired(project, SWEEP).await?;
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

pub(crate) async fn create<P>(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    TusCaller(caller, _): TusCaller<P>,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> TusResult<Response> {
    create_upload(storage, project?, caller, &uri, request).await
}

async fn create_upload(
    storage: Storage,
    project: Project,
    caller: Caller,
    uri: &http::Uri,
    request: Request,
) -> TusResult<Response> {
    blob::drained(request, |parts, body| create_with(storage, project, caller, uri, parts.headers, body)).await
}

async fn create_with(
    storage: Storage,
    project: Project,
    caller: Caller,
    uri: &http::Uri,
    headers: HeaderMap,
    body: Body,
) -> TusResult<Response> {
    check_version(&headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(tus_error(ErrorKind::InvalidRequest, "Upload-Defer-Length is not supported"));
    }
    if headers.contains_key("upload-concat") {
        return Err(tus_error(ErrorKind::InvalidRequest, "Upload-Concat is not supported"));
    }
    let length = header_u64(&headers, "upload-length")?
        .ok_or_else(|| tus_error(ErrorKind::InvalidRequest, "Upload-Length is required"))?;
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

    // Time-ordered: the sweep tells a young version from a stray one by its id.
    let id = Uuid::now_v7();
    let expires = OffsetDateTime::now_utc() + EXPIRY;
    let upload = rows::tus::NewUpload {
        id,
        bucket_id: &bucket.id,
        name,
        role: access.ctx.principal().role(),
        subject: access.subject.as_deref(),
        owner_id: access.owner.as_deref(),
        signed,
        upsert: access.upsert,
        upload_length: i64::try_from(length).map_err(|_| TusError(blob::too_large()))?,
        content_type,
        cache_control: &cache_control,
        user_metadata: &user_metadata,
        upload_metadata: Some(raw_metadata).filter(|m| !m.is_empty()),
        expires_at: expires,
    };
    rows::tus::insert(&project, &upload).await?;

    let location = format!("{}/{}", public_url(&headers, uri), encode_id(&bucket.id, name, id));
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

pub(crate) async fn head<P>(
    project: Result<Project, Rejection>,
    TusCaller(caller, _): TusCaller<P>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> TusResult<Response> {
    head_upload(project?, caller, &raw, &headers).await
}

async fn head_upload(project: Project, caller: Caller, raw: &str, headers: &HeaderMap) -> TusResult<Response> {
    check_version(headers)?;
    let upload = load(&project, raw).await?;
    Access::to(&project, caller, &upload)?;
    if upload.expired() {
        return Err(tus_error(ErrorKind::UploadExpired, "The upload has expired"));
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

pub(crate) async fn patch<P>(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    TusCaller(caller, _): TusCaller<P>,
    Path(raw): Path<String>,
    request: Request,
) -> TusResult<Response> {
    patch_upload(storage, project?, caller, raw, request).await
}

async fn patch_upload(
    storage: Storage,
    project: Project,
    caller: Caller,
    raw: String,
    request: Request,
) -> TusResult<Response> {
    blob::drained(request, |parts, body| patch_with(storage, project, caller, raw, parts.headers, body)).await
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
        return Err(tus_error(ErrorKind::InvalidMimeType, "Content-Type must be application/offset+octet-stream"));
    }
    let offset = header_u64(&headers, "upload-offset")?
        .ok_or_else(|| tus_error(ErrorKind::InvalidRequest, "Upload-Offset is required"))?;
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
/// The work runs on a task of its own, so that a client that goes away cannot cut it short
/// between storing bytes and recording them; the body is [`blob::guard`]ed, so that it then
/// ends as an interrupted chunk (what arrived is kept).
async fn write(
    storage: Storage,
    project: Project,
    writer: Writer,
    raw: String,
    offset: u64,
    body: Body,
) -> TusResult<Written> {
    let (body, _cancel) = blob::guard(body, storage.config().upload_idle_timeout);
    let task = tokio::spawn(async move { write_leased(&storage, &project, writer, &raw, offset, body).await });
    task.await.map_err(|e| TusError(Error::internal(e)))?
}

/// Takes the upload's lease, writes under it, and gives it up however that ends. No
/// transaction stays open while the bytes arrive.
async fn write_leased(
    storage: &Storage,
    project: &Project,
    writer: Writer,
    raw: &str,
    offset: u64,
    body: Body,
) -> TusResult<Written> {
    let upload = load(project, raw).await?;
    let access = match writer {
        Writer::Creator(access) => access,
        Writer::Caller(caller) => Access::to(project, caller, &upload)?,
    };
    if upload.expired() {
        return Err(tus_error(ErrorKind::UploadExpired, "The upload has expired"));
    }
    let (id, lease) = (upload.id, Uuid::new_v4());
    let upload = take_lease(project, &upload, lease).await?;
    let written = write_chunk(storage, project, &access, upload, lease, offset, body).await;
    if written.is_err() {
        release_lease(project, id, lease).await;
    }
    written
}

/// The work of [`write_leased`], under the lease.
#[allow(clippy::too_many_arguments)]
async fn write_chunk(
    storage: &Storage,
    project: &Project,
    access: &Access,
    upload: Upload,
    lease: Uuid,
    offset: u64,
    body: Body,
) -> TusResult<Written> {
    if offset != upload.offset() {
        return Err(tus_error(ErrorKind::UploadOffsetMismatch, "Upload-Offset does not match the upload's offset"));
    }
    let mut stream = body.into_data_stream();
    if upload.finished_at.is_some() {
        // A client repeating its last request gets the same answer, as long as it adds nothing.
        while let Some(chunk) = stream.try_next().await.map_err(Error::from)? {
            if !chunk.is_empty() {
                return Err(TusError(blob::too_large()));
            }
        }
        return Ok(Written { offset, expires: None });
    }

    let store = storage.store().as_ref();
    let remaining = upload.length() - upload.offset();
    let mut parts = upload.parts.clone();
    let mut received = 0;
    if remaining > 0 {
        if parts.len() >= MAX_PARTS {
            return Err(tus_error(ErrorKind::InvalidRequest, "An upload takes at most 10000 chunks"));
        }
        // Named by offset and lease: a writer whose lease ran out never overwrites the part
        // of the request that took the upload over.
        let part = format!("{:020}-{lease}", upload.upload_offset);
        let path = part_path(project, upload.id, &part);
        let streaming = blob::write(store, &path, &mut stream, remaining, blob::OnBreak::Keep);
        received = tokio::select! {
            received = streaming => received?,
            never = renew_lease(project, upload.id, lease) => match never {},
        };
        if received > 0 {
            parts.push(part);
        } else {
            // An empty chunk leaves no part.
            blob::forget(store, vec![path]).await;
        }
    }
    let now_at = upload.offset() + received;
    if now_at < upload.length() {
        record(project, &upload, lease, now_at, &parts, false).await?;
        return Ok(Written { offset: now_at, expires: Some(upload.expires_at) });
    }
    // The last byte is in: the object appears.
    match finish(storage, project, access, &upload, &parts).await {
        Ok(()) => {
            record(project, &upload, lease, now_at, &parts, true).await?;
            forget_parts(storage, project, upload.id).await;
            Ok(Written { offset: now_at, expires: None })
        }
        Err(e) if e.status() < 500 => {
            // The object may not be created (a policy or an existing key refused it): the
            // upload is over.
            rows::tus::abandon(project, upload.id, lease).await?;
            forget_parts(storage, project, upload.id).await;
            Err(e.into())
        }
        // This chunk's part stays unrecorded: the client sends the chunk again.
        Err(e) => Err(e.into()),
    }
}

/// Records where the upload stands and gives the lease up: 409 if the lease ran out and
/// another request took the upload over meanwhile (this chunk is then not recorded).
async fn record(
    project: &Project,
    upload: &Upload,
    lease: Uuid,
    offset: u64,
    parts: &[String],
    finished: bool,
) -> TusResult<()> {
    let offset = i64::try_from(offset).map_err(|_| TusError(blob::too_large()))?;
    if !rows::tus::record(project, upload.id, lease, offset, parts, finished).await? {
        return Err(tus_error(ErrorKind::UploadOffsetMismatch, "Another request took the upload over"));
    }
    Ok(())
}

/// Joins an upload's parts into the object's version and points the object row at it, as
/// the caller. Done already if a row names the version (the upload's own record failed
/// after that).
async fn finish(
    storage: &Storage,
    project: &Project,
    access: &Access,
    upload: &Upload,
    parts: &[String],
) -> Result<(), Error> {
    let store = storage.store().as_ref();
    let version = upload.id.to_string();
    if rows::version_named(project, &version).await? {
        return Ok(());
    }
    let dest = Storage::blob_path(project, &version);
    let paths: Vec<_> = parts.iter().map(|part| part_path(project, upload.id, part)).collect();
    let joined = if paths.is_empty() {
        store.put(&dest, object_store::PutPayload::new()).await.map(|_| 0).map_err(Error::from)
    } else {
        blob::join(storage.store(), &paths, &dest).await
    };
    // A missing part is the server's fault, not a refusal: the upload stays.
    let size = joined.map_err(|e| match e {
        e @ Error::Api { .. } if e.status() < 500 => Error::internal(format!("joining upload {}: {e}", upload.id)),
        other => other,
    })?;
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

pub(crate) async fn terminate<P>(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    TusCaller(caller, _): TusCaller<P>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> TusResult<Response> {
    terminate_upload(storage, project?, caller, &raw, &headers).await
}

async fn terminate_upload(
    storage: Storage,
    project: Project,
    caller: Caller,
    raw: &str,
    headers: &HeaderMap,
) -> TusResult<Response> {
    check_version(headers)?;
    let upload = load(&project, raw).await?;
    Access::to(&project, caller, &upload)?;
    if upload.finished_at.is_some() {
        return Err(tus_error(ErrorKind::InvalidRequest, "A finished upload cannot be terminated"));
    }
    if !rows::tus::terminate(&project, upload.id).await? {
        return Err(locked());
    }
    forget_parts(&storage, &project, upload.id).await;
    Ok(reply(StatusCode::NO_CONTENT, &[]))
}

/// `POST` with `X-HTTP-Method-Override` (tus-js-client's `overridePatchMethod`, for
/// environments that cannot send `PATCH`): the method it names.
pub(crate) async fn overridden<P>(
    Extension(storage): Extension<Storage>,
    project: Result<Project, Rejection>,
    TusCaller(caller, _): TusCaller<P>,
    Path(raw): Path<String>,
    request: Request,
) -> TusResult<Response> {
    override_method(storage, project?, caller, raw, request).await
}

async fn override_method(
    storage: Storage,
    project: Project,
    caller: Caller,
    raw: String,
    request: Request,
) -> TusResult<Response> {
    let method = header_str(request.headers(), "x-http-method-override")?.map(str::to_ascii_uppercase);
    match method.as_deref() {
        Some("PATCH") => patch_upload(storage, project, caller, raw, request).await,
        Some("HEAD") => head_upload(project, caller, &raw, request.headers()).await,
        Some("DELETE") => terminate_upload(storage, project, caller, &raw, request.headers()).await,
        _ => Err(tus_error(ErrorKind::TusMethodNotAllowed, "An upload takes HEAD, PATCH and DELETE")),
    }
}
