//! Analytics buckets: `POST /bucket` (`{name}`), `GET /bucket` (`limit`, `offset`,
//! `sortColumn`, `sortOrder`, `search`), `DELETE /bucket/{name}`.
//!
//! A bucket is answered as `{id, name, type: "ANALYTICS", format: "iceberg", created_at,
//! updated_at}`, with its name as its id, as Supabase does. A bucket that still has namespaces
//! cannot be deleted (409 `ResourceNotEmpty`); drop its tables and namespaces first.
//! Errors are built with Storage's codes and answered in the Iceberg error model
//! ([`super::error`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use forge_core::Project;
use forge_core::error::DbErrorKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{IcebergError, IcebergResult};
use super::{ServiceRole, parse_json, query_params};
use crate::error::{Error, ErrorKind};
use crate::rows::{iceberg, like_escape};

/// An analytics bucket's name: 3 to 63 lower-case letters, digits and hyphens, starting and
/// ending with a letter or digit (the rule of S3 table buckets, which back Supabase's; the
/// table's check constraint says the same).
fn valid_bucket_name(name: &str) -> bool {
    crate::api::s3_style_name(name, false)
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    name: Option<Value>,
}

pub(crate) async fn create(project: Project, ServiceRole(ctx): ServiceRole, body: Bytes) -> IcebergResult<Json<Value>> {
    let body: CreateBody = parse_json(&body)?;
    let name = match body.name {
        Some(Value::String(name)) => name,
        _ => return Err(Error::invalid("body must have required property 'name'").into()),
    };
    if !valid_bucket_name(&name) {
        return Err(Error::new(ErrorKind::InvalidBucketName, "Bucket name invalid").into());
    }
    let created = iceberg::create_bucket(&project, &ctx, &name).await.map_err(|e| match &e {
        e if e.db_kind() == Some(DbErrorKind::UniqueViolation) => {
            Error::new(ErrorKind::BucketAlreadyExists, "The resource already exists")
        }
        _ => e,
    })?;
    created.map(Json).ok_or_else(|| Error::internal("the insert returned no row").into())
}

pub(crate) async fn list(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    RawQuery(query): RawQuery,
) -> IcebergResult<Json<Value>> {
    let params = query_params(query.as_deref());
    let int = |name: &str, min: i64| -> IcebergResult<Option<i64>> {
        params
            .get(name)
            .map(|raw| {
                raw.parse::<i64>().ok().filter(|n| *n >= min).ok_or_else(|| {
                    IcebergError::from(Error::invalid(format!("querystring/{name} must be an integer >= {min}")))
                })
            })
            .transpose()
    };
    let limit = int("limit", 1)?.unwrap_or(i64::MAX);
    let offset = int("offset", 0)?.unwrap_or(0);
    // The id of an analytics bucket is its name.
    let column = match params.get("sortColumn").map_or("name", String::as_str) {
        "id" | "name" => "b.name",
        "created_at" => "b.created_at",
        "updated_at" => "b.updated_at",
        other => return Err(Error::invalid(format!("Invalid sortColumn {other:?}")).into()),
    };
    let order = match params.get("sortOrder").map_or("asc", String::as_str) {
        "asc" => "asc",
        "desc" => "desc",
        other => return Err(Error::invalid(format!("Invalid sortOrder {other:?}")).into()),
    };
    let search = params.get("search").filter(|s| !s.is_empty()).map(|s| format!("%{}%", like_escape(s)));
    let out = iceberg::list_buckets(&project, &ctx, (column, order), search, limit, offset).await?;
    Ok(Json(out.unwrap_or_else(|| json!([]))))
}

pub(crate) async fn delete(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    Path(name): Path<String>,
) -> IcebergResult<Json<Value>> {
    // Namespaces reference their bucket: deleting one that has any fails on the foreign key,
    // whatever is created concurrently.
    let deleted = iceberg::delete_bucket(&project, &ctx, &name).await.map_err(|e| match e.db_kind() {
        Some(DbErrorKind::ForeignKeyViolation) => Error::new(
            ErrorKind::BucketNotEmpty,
            "The analytics bucket you tried to delete is not empty: drop its tables and namespaces first",
        ),
        _ => Error::from(e),
    })?;
    if !deleted {
        return Err(Error::no_such_bucket().into());
    }
    Ok(Json(json!({ "message": "Successfully deleted" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_table_buckets() {
        for good in ["abc", "analytics-data", "a1-b2", &"a".repeat(63)] {
            assert!(valid_bucket_name(good), "{good}");
        }
        for bad in ["ab", "-abc", "abc-", "Abc", "a_bc", "a.bc", "a bc", &"a".repeat(64)] {
            assert!(!valid_bucket_name(bad), "{bad:?}");
        }
    }
}
