//! Image transformations on download (`/render/image/...`): authenticated, public and signed.

use axum::Extension;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::response::{IntoResponse, Response};
use forge_core::Project;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use object_store::ObjectStoreExt as _;
use serde_json::Value;

use super::Stored;
use super::access::{AccessMode, ObjectRead};
use super::download::{accepts_webp, attachment, if_none_match};
use crate::error::{Error, ErrorKind, Result};
use crate::rows::STORED_JSON;
use crate::service::Storage;

/// `GET /render/image/{authenticated,public,sign}/{bucket}/{path}`: a signed URL renders the
/// transformation that was signed; the others take it from the query.
pub(crate) async fn render<M: AccessMode>(
    Extension(storage): Extension<Storage>,
    read: ObjectRead<M>,
    asked: std::result::Result<Query<crate::render::Transform>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let t = match read.claims() {
        Some(claims) => match claims.get("transformations").and_then(Value::as_str) {
            Some(query) => crate::render::Transform::from_query(query)?,
            None => crate::render::Transform::default(),
        },
        // Only a signed URL ignores the query's transformation: it renders the signed one.
        None => asked.map(|Query(t)| t).map_err(|r| Error::invalid(r.body_text()))?,
    };
    crate::render::check(&t)?;
    let stored = read.row(STORED_JSON).await?;
    render_stored(&storage, &read.project, stored, t, &read.name, read.download, &headers).await
}

/// Renders a stored image. Without a `format`, a client that takes WebP gets WebP (as
/// Supabase's image service answers browsers); `format=origin` keeps the stored format. Each
/// stored version and transformation has its own ETag, so a revalidation skips the render.
pub(super) async fn render_stored(
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
    // What was asked, before the client's Accept picks WebP (Storage names only the former).
    let transformations = t.header();
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
    if let Some(transformations) = &transformations {
        set(header::HeaderName::from_static("x-transformations"), transformations);
    }
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
