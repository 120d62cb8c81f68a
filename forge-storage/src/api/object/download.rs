//! Downloads: authenticated, public and signed, with ranges, validators and `download=`.

use axum::Extension;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use forge_core::Project;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use object_store::{GetOptions, GetRange};
use serde_json::Value;

use super::Stored;
use super::access::{AccessMode, ObjectRead};
use crate::error::{Error, ErrorKind, Result};
use crate::rows::STORED_JSON;
use crate::service::Storage;

/// `GET /object/{authenticated,public,sign}/{bucket}/{path}` and `GET /object/{bucket}/{path}`.
pub(crate) async fn download<M: AccessMode>(
    Extension(storage): Extension<Storage>,
    read: ObjectRead<M>,
    headers: HeaderMap,
) -> Result<Response> {
    if read.claims().is_some_and(|claims| claims.get("transformations").is_some()) {
        // A link to a transformed image does not also give the original.
        return Err(Error::new(ErrorKind::InvalidSignature, "This token is for a transformed image only"));
    }
    let stored = read.row(STORED_JSON).await?;
    serve(&storage, &read.project, stored, &read.name, read.download, &headers).await
}

/// One byte range, from a `Range: bytes=...` header.
pub(super) fn parse_range(value: &str) -> Option<GetRange> {
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
pub(super) fn attachment(name: &str, file: String) -> String {
    let file = if file.is_empty() { name.rsplit('/').next().unwrap_or(name).to_owned() } else { file };
    let ascii: String =
        file.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = form_urlencoded::byte_serialize(file.as_bytes()).collect::<String>().replace('+', "%20");
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Whether `If-None-Match` names one of `tags` (or is `*`): the client's copy is current.
pub(super) fn if_none_match(headers: &HeaderMap, tags: &[&str]) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(str::trim).any(|t| t == "*" || tags.contains(&t)))
}

/// Whether the client takes WebP (`Accept: image/webp`), as browsers say for images.
pub(super) fn accepts_webp(headers: &HeaderMap) -> bool {
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

pub(super) async fn serve(
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
