//! Buckets: `GET|POST /bucket`, `GET|PUT|DELETE /bucket/{id}`, `POST /bucket/{id}/empty`.
//! They run as the caller through RLS on `storage.buckets` (the service role bypasses it).

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::{Extension, Json};
use forge_core::DbErrorKind;
use forge_core::Project;
use forge_core::rls::RequestContext;
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_body;
use crate::api::JsonBody;
use crate::blob;
use crate::error::{Error, ErrorKind, Result};
use crate::rows;
use crate::service::Storage;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    search: Option<String>,
    #[serde(rename = "sortColumn")]
    sort_column: Option<String>,
    #[serde(rename = "sortOrder")]
    sort_order: Option<String>,
}

pub(crate) async fn list(project: Project, ctx: RequestContext, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    let column = match q.sort_column.as_deref().unwrap_or("name") {
        "id" => "b.id",
        "name" => "b.name",
        "created_at" => "b.created_at",
        "updated_at" => "b.updated_at",
        other => return Err(Error::invalid(format!("Invalid sortColumn {other:?}"))),
    };
    let order = match q.sort_order.as_deref().unwrap_or("asc") {
        "asc" => "asc",
        "desc" => "desc",
        other => return Err(Error::invalid(format!("Invalid sortOrder {other:?}"))),
    };
    let search = q.search.filter(|s| !s.is_empty());
    let limit = q.limit.unwrap_or(i64::MAX).max(0);
    let offset = q.offset.unwrap_or(0).max(0);
    let out = rows::list_buckets(&project, &ctx, (column, order), search, limit, offset).await?;
    Ok(Json(out.unwrap_or_else(|| json!([]))))
}

pub(crate) async fn get(project: Project, ctx: RequestContext, Path(id): Path<String>) -> Result<Json<Value>> {
    rows::get_bucket(&project, &ctx, &id).await?.map(Json).ok_or_else(Error::no_such_bucket)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct BucketBody {
    id: Option<String>,
    name: Option<String>,
    public: Option<bool>,
    file_size_limit: Option<Value>,
    allowed_mime_types: Option<Vec<String>>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Bucket names: what Supabase accepts, without `/`, at most 100 characters.
fn valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.trim() == name
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.!*'() &$@=;:+,?".contains(c))
}

/// A size limit: a number of bytes, or a string in Supabase Storage's form (`"20MB"`,
/// `"1.5gb"`, `"512kb"`, `"100B"`): digits with an optional decimal part, then `b`, `kb`, `mb`
/// or `gb` in any case, with nothing else (no spaces, no bare number). The units are decimal
/// (1 MB is 1 000 000 bytes) and the number keeps three significant digits, as upstream's
/// `parseFileSizeToBytes` rounds it with `toPrecision(3)`.
pub(crate) fn parse_size(value: &Value) -> Result<Option<i64>> {
    let bad = || Error::invalid("Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B");
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(n), _) if n >= 0 => Ok(Some(n)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_991.0 => {
                // A whole number written with a decimal point (`1024.0`) is still an integer.
                Ok(Some(f as i64))
            }
            _ => Err(bad()),
        },
        Value::String(s) => size_in_bytes(s).map(Some).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// `"<digits>[.<digits>](b|kb|mb|gb)"` in bytes, or `None` when it is not of that form or
/// not a whole number of bytes.
fn size_in_bytes(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = lower.split_at(split);
    let exponent: i32 = match unit {
        "b" => 0,
        "kb" => 3,
        "mb" => 6,
        "gb" => 9,
        _ => return None,
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) if !f.is_empty() => (w, f),
        Some(_) => return None,
        None => (number, ""),
    };
    if whole.is_empty() || fraction.contains('.') {
        return None;
    }
    // The significant digits and the power of ten they are scaled by.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    let mut scale = exponent - i32::try_from(fraction.len()).ok()?;
    // Three significant digits, rounded half up (`Number.prototype.toPrecision(3)`).
    let (kept, dropped) = digits.split_at(digits.len().min(3));
    let mut mantissa: i64 = kept.parse().ok()?;
    scale += i32::try_from(dropped.len()).ok()?;
    if dropped.starts_with(['5', '6', '7', '8', '9']) {
        mantissa += 1;
    }
    if scale >= 0 {
        mantissa.checked_mul(10i64.checked_pow(u32::try_from(scale).ok()?)?)
    } else {
        // Digits below a byte: whole only if they are zeros.
        let divisor = 10i64.checked_pow(u32::try_from(-scale).ok()?)?;
        (mantissa % divisor == 0).then(|| mantissa / divisor)
    }
}

fn check_mime_types(types: &Option<Vec<String>>) -> Result<()> {
    for t in types.iter().flatten() {
        let valid = t
            .split_once('/')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !t.contains(char::is_whitespace) && t.is_ascii());
        if !valid {
            return Err(Error::invalid(format!("Invalid MIME type {t:?}")));
        }
    }
    Ok(())
}

pub(crate) async fn create(
    project: Project,
    ctx: RequestContext,
    JsonBody(body): JsonBody<BucketBody>,
) -> Result<Json<Value>> {
    let name = body.name.or(body.id.clone()).ok_or_else(|| Error::invalid("A bucket name is required"))?;
    let id = body.id.unwrap_or_else(|| name.clone());
    if !valid_bucket_name(&id) || !valid_bucket_name(&name) {
        return Err(Error::new(ErrorKind::InvalidBucketName, "Bucket name invalid"));
    }
    let limit = match &body.file_size_limit {
        Some(v) => parse_size(v)?,
        None => None,
    };
    check_mime_types(&body.allowed_mime_types)?;
    let kind = body.kind.unwrap_or_else(|| "STANDARD".into());
    if kind != "STANDARD" {
        return Err(Error::invalid("Only STANDARD buckets are supported"));
    }
    let owner = ctx.principal().claims().sub().map(str::to_owned);
    let owner = owner.filter(|o| uuid::Uuid::parse_str(o).is_ok());
    let new = rows::NewBucket {
        id: &id,
        name: &name,
        owner,
        public: body.public.unwrap_or(false),
        file_size_limit: limit,
        allowed_mime_types: &body.allowed_mime_types,
    };
    let created = rows::create_bucket(&project, &ctx, &new).await.map_err(duplicate_bucket)?;
    Ok(Json(json!({ "name": created.unwrap_or(Value::String(name)) })))
}

fn duplicate_bucket(e: Error) -> Error {
    match &e {
        e if e.db_kind() == Some(DbErrorKind::UniqueViolation) => {
            Error::new(ErrorKind::BucketAlreadyExists, "The resource already exists")
        }
        _ => e,
    }
}

pub(crate) async fn update(
    project: Project,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    // A field set to null clears it; a missing field stays as it is.
    let raw: Value = parse_body(&body)?;
    let body: BucketBody = parse_body(&body)?;
    let given = |k: &str| raw.as_object().is_some_and(|o| o.contains_key(k));
    let set_limit = given("file_size_limit");
    let limit = match &body.file_size_limit {
        Some(v) => parse_size(v)?,
        None => None,
    };
    check_mime_types(&body.allowed_mime_types)?;
    let set_types = given("allowed_mime_types");
    let change = rows::BucketChange {
        public: body.public,
        set_limit,
        file_size_limit: limit,
        set_types,
        allowed_mime_types: &body.allowed_mime_types,
    };
    if !rows::update_bucket(&project, &ctx, &id, &change).await? {
        return Err(Error::no_such_bucket());
    }
    Ok(Json(json!({ "message": "Successfully updated" })))
}

pub(crate) async fn empty(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let versions = rows::empty_bucket(&project, &ctx, &id).await?.ok_or_else(Error::no_such_bucket)?;
    blob::forget(storage.store().as_ref(), versions.iter().map(|v| Storage::blob_path(&project, v)).collect()).await;
    Ok(Json(json!({ "message": "Successfully emptied" })))
}

pub(crate) async fn delete(project: Project, ctx: RequestContext, Path(id): Path<String>) -> Result<Json<Value>> {
    match rows::delete_bucket(&project, &ctx, &id).await? {
        rows::BucketDeletion::NotEmpty => {
            return Err(Error::new(ErrorKind::BucketNotEmpty, "The bucket you tried to delete is not empty"));
        }
        rows::BucketDeletion::Missing => return Err(Error::no_such_bucket()),
        rows::BucketDeletion::Deleted => {}
    }
    Ok(Json(json!({ "message": "Successfully deleted" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_decimal_units() {
        let size = |v: Value| parse_size(&v).ok().flatten();
        assert_eq!(size(json!(100)), Some(100));
        assert_eq!(size(json!(1024.0)), Some(1024));
        assert_eq!(size(json!("20mb")), Some(20_000_000));
        assert_eq!(size(json!("1MB")), Some(1_000_000));
        assert_eq!(size(json!("500Kb")), Some(500_000));
        assert_eq!(size(json!("2GB")), Some(2_000_000_000));
        assert_eq!(size(json!("100b")), Some(100));
        assert_eq!(size(json!("1.5mb")), Some(1_500_000));
        assert_eq!(size(json!("0.5KB")), Some(500));
        assert_eq!(size(json!("0b")), Some(0));
        // Three significant digits, as upstream's toPrecision(3).
        assert_eq!(size(json!("1.2345mb")), Some(1_230_000));
        assert_eq!(size(json!("12345b")), Some(12_300));
        assert_eq!(size(json!("1.235kb")), Some(1_240));
        assert_eq!(size(json!("999.9kb")), Some(1_000_000));
        assert_eq!(parse_size(&Value::Null).ok(), Some(None));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("1024"),
            json!("500 kb"),
            json!(" 1mb"),
            json!("1TB"),
            json!("MB"),
            json!(".5mb"),
            json!("1.mb"),
            json!("1.2.3mb"),
            json!("-1mb"),
            json!("1.5b"),
            json!("99999999999999999999GB"),
            json!(true),
        ] {
            let e = parse_size(&bad).expect_err(&bad.to_string());
            assert_eq!(e.to_string(), "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B");
        }
    }

    #[test]
    fn bucket_names_keep_to_supabases_characters() {
        assert!(valid_bucket_name("avatars") && valid_bucket_name("My Bucket-1.0"));
        for bad in ["", "a/b", " lead", "x".repeat(101).as_str(), "ünï"] {
            assert!(!valid_bucket_name(bad), "{bad:?}");
        }
    }
}
