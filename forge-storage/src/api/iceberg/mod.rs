//! Analytics buckets and their Iceberg REST catalog, at `/iceberg`: what storage-js's
//! `storage.analytics` (with iceberg-js for `from(bucket)`), storage3's `analytics()` and
//! other Iceberg REST clients (pyiceberg, Spark, Trino) call.
//!
//! - `POST|GET /bucket`, `DELETE /bucket/{name}`: analytics buckets ([`bucket`]).
//! - `GET /v1/config?warehouse=<bucket>`: the catalog's configuration; each analytics bucket is
//!   a warehouse, and the catalog's prefix is `<bucket>` ([`catalog`]).
//! - `/v1/{bucket}/namespaces[/{namespace}[/properties]]`: namespaces ([`namespace`]).
//! - `/v1/{bucket}/namespaces/{namespace}/tables[/{table}[/metrics]]` and
//!   `/v1/{bucket}/tables/rename`: tables, their commits included ([`table`]).
//!
//! Only the service role may call these routes (Supabase enforces it on all of them); every
//! other caller gets 403 `AccessDenied` "Access denied: Invalid role". Errors use the Iceberg
//! REST error model with the real status ([`error`]). The routes run as the caller in
//! forge-core's RLS gateway; the catalog lives in `storage.buckets_analytics`,
//! `storage.iceberg_namespaces` and `storage.iceberg_tables`, which only the service role may
//! use.
//!
//! ## Names
//!
//! - An analytics bucket: 3 to 63 lower-case letters, digits and hyphens, starting and ending
//!   with a letter or digit (S3 table buckets' rule; Supabase's analytics buckets are S3 table
//!   buckets).
//! - A namespace level and a table: 1 to 255 lower-case letters, digits and underscores,
//!   starting and ending with a letter or digit (S3 Tables' rule). A multi-level namespace is
//!   sent in a path joined by the unit separator (`%1F`), as the Iceberg REST spec says; a
//!   nested namespace needs its parent to exist.
//!
//! ## Not supported
//!
//! Table metadata is kept in Postgres and answered from there: no metadata or data files are
//! written, and Forge has no S3 protocol endpoint, so `metadata-location` and `location` name
//! where a file-based catalog would have written them (`s3://<bucket>/<namespace>/<table>`),
//! and engines cannot read or write table data through Forge. `purgeRequested` is accepted and
//! has nothing to purge. Views, multi-table transactions (`/transactions/commit`), table
//! registration, scan planning and credential vending are not offered (`/v1/config` lists the
//! endpoints that are), and tables are format version 2 only.

mod bucket;
mod catalog;
mod error;
mod namespace;
mod table;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::routing::{delete, get, post};
use forge_core::rls::{self, RequestContext, RlsTx};
use forge_core::{Principal, Project};
use http::request::Parts;
use uuid::Uuid;

use error::{IcebergError, IcebergResult};

use crate::rows;

/// The routes, relative to `/storage/v1/iceberg`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let routes = Router::new()
        .route("/bucket", get(bucket::list).post(bucket::create))
        .route("/bucket/", get(bucket::list).post(bucket::create))
        .route("/bucket/{name}", delete(bucket::delete))
        .route("/v1/config", get(catalog::config))
        .route("/v1/{prefix}/namespaces", get(namespace::list).post(namespace::create))
        .route(
            "/v1/{prefix}/namespaces/{namespace}",
            get(namespace::load).head(namespace::exists).delete(namespace::remove),
        )
        .route("/v1/{prefix}/namespaces/{namespace}/properties", post(namespace::update_properties))
        .route("/v1/{prefix}/namespaces/{namespace}/tables", get(table::list).post(table::create))
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables/{table}",
            get(table::load).head(table::exists).post(table::commit).delete(table::remove),
        )
        // A metrics report is acknowledged (204) once its table is found; nothing is kept.
        .route("/v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics", post(table::exists))
        .route("/v1/{prefix}/tables/rename", post(table::rename))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(forge_core::error::RefusalLayer::new(forge_core::WireFormat::Iceberg));
    super::service_only(routes, |failed| {
        let error = failed.map_or_else(IcebergError::invalid_role, |rejection| IcebergError::from(rejection.error));
        axum::response::IntoResponse::into_response(error)
    })
}

/// The largest request body: a commit with its schemas and snapshots, or a create request.
const MAX_BODY: usize = 8 << 20;

/// The caller of an analytics route: only the service role gets through. Authentication
/// failures and other roles are refused as Iceberg errors.
#[derive(Debug)]
pub(crate) struct ServiceRole(pub(crate) RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for ServiceRole {
    type Rejection = IcebergError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = RequestContext::from_request_parts(parts, state).await.map_err(|r| IcebergError::from(r.error))?;
        if !matches!(ctx.principal(), Principal::Service(_)) {
            return Err(IcebergError::invalid_role());
        }
        Ok(Self(ctx))
    }
}

/// Opens the request's transaction, as the caller.
async fn begin(project: &Project, ctx: &RequestContext) -> IcebergResult<RlsTx> {
    Ok(rls::begin(project.db(), ctx).await?)
}

/// The query string's parameters (the last of repeated ones). Read by hand so that a bad query
/// is answered as an Iceberg error.
fn query_params(raw: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// A JSON body (an empty body is `{}`).
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> IcebergResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| IcebergError::bad_request(format!("Invalid JSON body: {e}")))
}

/// A namespace level or a table name: 1 to 255 lower-case letters, digits and underscores,
/// starting and ending with a letter or digit.
fn valid_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (1..=255).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && edge(name.chars().next())
        && edge(name.chars().last())
}

/// The deepest namespace: eight levels of 255 bytes still fit Postgres' index entries.
const MAX_LEVELS: usize = 8;

/// A namespace's levels from a JSON array.
fn namespace_levels(levels: &[String]) -> IcebergResult<Vec<String>> {
    if levels.is_empty() || levels.len() > MAX_LEVELS {
        return Err(IcebergError::bad_request(format!("A namespace has 1 to {MAX_LEVELS} levels")));
    }
    if let Some(bad) = levels.iter().find(|l| !valid_name(l)) {
        return Err(IcebergError::bad_request(format!(
            "Invalid namespace name {bad:?}: use 1 to 255 lower-case letters, digits and underscores, \
             starting and ending with a letter or digit"
        )));
    }
    Ok(levels.to_vec())
}

/// A namespace as a path segment sends it: levels joined by the unit separator (`%1F`).
fn namespace_path(raw: &str) -> IcebergResult<Vec<String>> {
    let levels: Vec<String> = raw.split('\u{1f}').map(str::to_owned).collect();
    namespace_levels(&levels)
}

fn table_name(name: &str) -> IcebergResult<&str> {
    if !valid_name(name) {
        return Err(IcebergError::bad_request(format!(
            "Invalid table name {name:?}: use 1 to 255 lower-case letters, digits and underscores, \
             starting and ending with a letter or digit"
        )));
    }
    Ok(name)
}

/// An analytics bucket's id, and the id of its namespace `levels` if it has one (`levels`
/// empty: none).
async fn resolve(tx: &RlsTx, warehouse: &str, levels: &[String]) -> IcebergResult<(Uuid, Option<Uuid>)> {
    rows::iceberg::resolve(tx, warehouse, levels).await?.ok_or_else(|| IcebergError::no_such_warehouse(warehouse))
}

/// The id of namespace `levels` of an analytics bucket: 404 when either is missing.
async fn namespace_id(tx: &RlsTx, warehouse: &str, levels: &[String]) -> IcebergResult<Uuid> {
    resolve(tx, warehouse, levels).await?.1.ok_or_else(|| IcebergError::no_such_namespace(levels))
}

/// A page size (`pageSize`, at least 1), or no limit.
fn page_size(params: &HashMap<String, String>) -> IcebergResult<i64> {
    match params.get("pageSize") {
        None => Ok(i64::MAX),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| IcebergError::bad_request(format!("Invalid pageSize {raw:?}: expected an integer >= 1"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_s3_tables() {
        for good in ["a", "sales", "eu_2024", "x1", "0"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Sales", "_x", "x_", "a-b", "a.b", "a b", "ünï", &"a".repeat(256)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn namespaces_in_paths_are_joined_by_the_unit_separator() {
        assert_eq!(namespace_path("a\u{1f}b").ok(), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(namespace_path("a\u{1f}").is_err());
        assert!(namespace_path("a.b").is_err());
    }

    #[test]
    fn query_strings_and_page_sizes() {
        let params = query_params(Some("parent=a%1Fb&pageSize=2"));
        assert_eq!(params.get("parent").map(String::as_str), Some("a\u{1f}b"));
        assert_eq!(page_size(&params).ok(), Some(2));
        assert_eq!(page_size(&HashMap::new()).ok(), Some(i64::MAX));
        assert!(page_size(&query_params(Some("pageSize=0"))).is_err());
    }
}
