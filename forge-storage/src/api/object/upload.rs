//! Uploads: `POST` (create, or replace with `x-upsert`) and `PUT` (update) of raw or multipart
//! bodies, and `PUT` to a signed upload URL; the pipeline that stores the bytes and then
//! records the row.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, Request};
use axum::{Extension, Json};
use forge_core::DbErrorKind;
use forge_core::Project;
use forge_core::rls::RequestContext;
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::sign::{TokenQuery, UploadGrant};
use super::{check_mime, check_name};
use crate::blob;
use crate::error::{Error, ErrorKind, Result};
use crate::rows::{self, BucketInfo, bucket_info};
pub(crate) use crate::rows::{Mode, NewVersion};
use crate::service::Storage;

/// The `x-upsert` header.
pub(crate) fn upsert(headers: &HeaderMap) -> bool {
    headers.get("x-upsert").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// What an upload carried besides its bytes.
#[derive(Debug, Default)]
pub(super) struct Described {
    pub(super) content_type: String,
    pub(super) cache_control: String,
    pub(super) user_metadata: Option<Value>,
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
pub(crate) fn owner_of(ctx: &RequestContext) -> Option<String> {
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
pub(super) async fn store_detached(
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
pub(super) async fn store_object(
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
pub(crate) fn object_metadata(version: &str, size: u64, mimetype: &str, cache_control: &str) -> Value {
    let now = rows::timestamp_text(OffsetDateTime::now_utc());
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
pub(crate) fn size_limit(storage: &Storage, bucket: &BucketInfo) -> u64 {
    let service = storage.config().file_size_limit;
    bucket.file_size_limit.and_then(|l| u64::try_from(l).ok()).map_or(service, |l| l.min(service))
}

/// Points the row of `bucket/name` at a version already in the store, as the caller (a new
/// row, or with `upsert` or `Mode::Update` the existing one). If the change fails the new
/// blob is removed; if it succeeds, the blob it replaced is removed once no row names it.
/// Returns the row's id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn point_at_version(
    project: &Project,
    ctx: &RequestContext,
    store: &dyn object_store::ObjectStore,
    mode: Mode,
    bucket: &str,
    name: &str,
    owner: Option<&str>,
    new: NewVersion,
) -> Result<Value> {
    let row = match rows::write_version(project, ctx, mode, bucket, name, owner, &new).await {
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
pub(crate) async fn precheck(
    project: &Project,
    ctx: &RequestContext,
    bucket: &str,
    name: &str,
    owner: Option<&str>,
    mode: Mode,
) -> Result<()> {
    if !rows::try_write(project, ctx, mode, bucket, name, owner).await.map_err(duplicate)? {
        return Err(Error::no_such_key());
    }
    Ok(())
}

/// Reads a multipart upload: the file part (named `""` by storage-js, `file` by storage3, or
/// any part with a file name) streams into `path`; `cacheControl` and `metadata` may come
/// before or after it.
pub(super) async fn read_form(
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
pub(super) async fn read_text(mut field: axum::extract::multipart::Field<'_>) -> Result<String> {
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
pub(super) async fn forget_unreferenced(project: &Project, store: &dyn object_store::ObjectStore, version: &str) {
    match rows::version_named(project, version).await {
        Ok(false) => blob::forget(store, vec![Storage::blob_path(project, version)]).await,
        Ok(true) => {}
        Err(e) => tracing::warn!(error = %e, "checking a replaced version failed; its blob is kept"),
    }
}

/// Refuses to put an object into a bucket whose limits it breaks (move and copy).
pub(super) fn check_fits(bucket: &BucketInfo, metadata: &Value) -> Result<()> {
    check_mime(bucket, metadata["mimetype"].as_str().unwrap_or("application/octet-stream"))?;
    let size = metadata["size"].as_i64().unwrap_or(0);
    if bucket.file_size_limit.is_some_and(|limit| size > limit) {
        return Err(blob::too_large());
    }
    Ok(())
}

pub(super) fn duplicate(e: Error) -> Error {
    match &e {
        e if e.db_kind() == Some(DbErrorKind::UniqueViolation) => {
            Error::new(ErrorKind::KeyAlreadyExists, "The resource already exists")
        }
        e if e.db_kind() == Some(DbErrorKind::ForeignKeyViolation) => Error::no_such_bucket(),
        _ => e,
    }
}

pub(super) fn decode_metadata(value: &HeaderValue) -> Result<Value> {
    use base64::Engine as _;
    let bad = || Error::invalid("x-metadata must be base64-encoded JSON object");
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_bytes()).map_err(|_| bad())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(bad()),
    }
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
