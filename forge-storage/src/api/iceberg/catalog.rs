//! `GET /v1/config?warehouse=<bucket>`: the catalog's configuration, which Iceberg REST
//! clients (pyiceberg, Spark, Trino) read first. The warehouse is an analytics bucket; the
//! answer sets the catalog's prefix to its name, so later calls go to `/v1/<bucket>/...` (where
//! iceberg-js goes directly), and lists the endpoints this catalog serves.

use axum::Json;
use axum::extract::RawQuery;
use forge_core::Project;
use serde_json::{Value, json};

use super::error::{IcebergError, IcebergResult};
use super::{ServiceRole, begin, query_params, resolve};

/// The endpoints served, as the spec names them in `ConfigResponse.endpoints`.
const ENDPOINTS: [&str; 14] = [
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
    "POST /v1/{prefix}/tables/rename",
];

pub(crate) async fn config(
    project: Project,
    ServiceRole(ctx): ServiceRole,
    RawQuery(query): RawQuery,
) -> IcebergResult<Json<Value>> {
    let params = query_params(query.as_deref());
    let warehouse = params
        .get("warehouse")
        .filter(|w| !w.is_empty())
        .ok_or_else(|| IcebergError::bad_request("The warehouse parameter (an analytics bucket's name) is required"))?;
    let tx = begin(&project, &ctx).await?;
    resolve(&tx, warehouse, &[]).await?;
    tx.commit().await?;
    Ok(Json(json!({
        "defaults": {},
        "overrides": { "prefix": warehouse },
        "endpoints": ENDPOINTS,
    })))
}
