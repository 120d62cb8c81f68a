//! Objects: upload (`POST`/`PUT`, raw or multipart), download (authenticated, public and
//! signed, with ranges and validators), info, list, move, copy, remove and signed URLs.
//!
//! Rows are read and written as the caller through RLS on `storage.objects`; bytes go to the
//! object store under a fresh version for every upload (see the crate docs).

use forge_core::Project;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
pub(crate) use crate::rows::{BucketInfo, bucket_info};

pub(crate) mod access;
pub(crate) mod copy;
pub(crate) mod download;
pub(crate) mod info;
pub(crate) mod list;
pub(crate) mod move_object;
pub(crate) mod remove;
pub(crate) mod render;
pub(crate) mod sign;
pub(crate) mod upload;

/// The longest object name, in bytes (Supabase's limit).
pub(super) const MAX_NAME: usize = 1024;

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

/// An object's name, checked by [`check_name`]: the only way an object route gets one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectName(String);

impl ObjectName {
    /// Checks `name`; 400 `InvalidKey` when Storage would refuse it.
    pub(crate) fn parse(name: String) -> Result<Self> {
        check_name(&name)?;
        Ok(Self(name))
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for ObjectName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// `{bucket}/{*path}` of an object route: the bucket id as sent (a missing bucket is found
/// out by the query) and the checked object name.
#[derive(Debug)]
pub(crate) struct ObjectPath {
    pub(crate) bucket: String,
    pub(crate) name: ObjectName,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ObjectPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self> {
        let axum::extract::Path((bucket, name)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|r| Error::invalid(r.body_text()))?;
        Ok(ObjectPath { bucket, name: ObjectName::parse(name)? })
    }
}

/// What a row says about its bytes.
#[derive(Debug, Deserialize)]
pub(super) struct Stored {
    version: String,
    #[serde(default)]
    metadata: Value,
    updated: String,
}

/// Whether `mime` is allowed by a bucket's list (entries may end in `/*`).
pub(super) fn mime_allowed(bucket: &BucketInfo, mime: &str) -> bool {
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

pub(crate) fn check_mime(bucket: &BucketInfo, mime: &str) -> Result<()> {
    if mime_allowed(bucket, mime) {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::InvalidMimeType, format!("mime type {mime} is not supported")))
    }
}

/// 404 `NoSuchBucket` unless `bucket` is public: a private bucket's objects are never served
/// on public URLs.
pub(super) async fn ensure_public(project: &Project, bucket: &str) -> Result<()> {
    if bucket_info(project, bucket).await?.public { Ok(()) } else { Err(Error::no_such_bucket()) }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, header};
    use object_store::GetRange;

    use super::download::{accepts_webp, parse_range};
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
