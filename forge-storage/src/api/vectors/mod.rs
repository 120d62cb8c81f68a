//! Vector buckets at `/vector`: the S3 Vectors API of `supabase.storage.vectors` (storage-js)
//! and `storage.vectors()` (storage3). Every route is a `POST /<Operation>` with a JSON body,
//! and only the service role may call them, as in Supabase.
//!
//! Buckets, indexes and vectors are rows in Postgres (migration 0003). A query is an exact
//! nearest-neighbour search: it streams the index's vectors once, applies the metadata filter
//! and keeps the `topK` closest, so it never holds more than `topK` candidates. Errors have
//! Storage's shape with the real HTTP status and the S3 Vectors codes
//! (`S3VectorNotFoundException` 404, `S3VectorConflictException` 409,
//! `S3VectorBucketNotEmpty` 400).

mod filter;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use forge_core::error::DbErrorKind;
use forge_core::{ForgeError, Principal, Project, WireFormat};
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::parse_body;
use crate::error::{Error, ErrorKind};
use filter::Filter;

/// The largest request body these routes read: a full `PutVectors` batch (500 vectors of 4096
/// components with their metadata) fits. An edge in front may allow less (forge-server's body
/// limit is 50 MiB by default).
const MAX_BODY: usize = 64 << 20;
const MAX_DIMENSION: i32 = 4096;
const MAX_PUT: usize = 500;
const MAX_GET: usize = 100;
const MAX_DELETE: usize = 500;
const MAX_TOP_K: i64 = 100;
const MAX_KEY_CHARS: usize = 1024;
const MAX_KEY_BYTES: usize = 2048;
const MAX_METADATA_BYTES: usize = 40 << 10;
const MAX_NON_FILTERABLE: usize = 10;
const MAX_LIST_NAMES: i64 = 500;
const MAX_LIST_VECTORS: i64 = 1000;
const MAX_SEGMENTS: i32 = 16;

/// The routes, relative to `/storage/v1/vector`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let routes = Router::new()
        .route("/CreateVectorBucket", post(create_bucket))
        .route("/GetVectorBucket", post(get_bucket))
        .route("/ListVectorBuckets", post(list_buckets))
        .route("/DeleteVectorBucket", post(delete_bucket))
        .route("/CreateIndex", post(create_index))
        .route("/GetIndex", post(get_index))
        .route("/ListIndexes", post(list_indexes))
        .route("/DeleteIndex", post(delete_index))
        .route("/PutVectors", post(put_vectors))
        .route("/GetVectors", post(get_vectors))
        .route("/ListVectors", post(list_vectors))
        .route("/QueryVectors", post(query_vectors))
        .route("/DeleteVectors", post(delete_vectors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(forge_core::error::RefusalLayer::new(WireFormat::StorageVectors));
    super::service_only(routes, |failed| match failed {
        Some(rejection) => rejection.into_response(),
        None => Failure(Error::invalid_role()).into_response(),
    })
}

/// A failure of a vector route: Storage's error body with the real HTTP status.
#[derive(Debug)]
pub(crate) struct Failure(Error);

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        self.0.render(WireFormat::StorageVectors)
    }
}

fn db(e: sqlx::Error) -> Failure {
    Failure(Error::Core(ForgeError::from(e)))
}

type Answer = Result<Json<Value>, Failure>;

/// A vector-route call: the project, after checking the caller is the service role, and the
/// parsed JSON body.
pub(crate) struct Call<T> {
    project: Project,
    body: T,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Call<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let project = <Project as axum::extract::FromRequestParts<S>>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let principal = <Principal as axum::extract::FromRequestParts<S>>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !matches!(principal, Principal::Service(_)) {
            return Err(Failure(Error::invalid_role()).into_response());
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(|rejection| {
            let kind = if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ErrorKind::EntityTooLarge
            } else {
                ErrorKind::InvalidRequest
            };
            Failure(Error::new(kind, rejection.body_text())).into_response()
        })?;
        let body = parse_body(&bytes).map_err(|e| Failure(e).into_response())?;
        Ok(Call { project, body })
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure(Error::new(ErrorKind::InvalidParameter, message.into()))
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, Failure> {
    value.ok_or_else(|| Failure(Error::new(ErrorKind::MissingParameter, format!("Missing required parameter: {name}"))))
}

fn not_found(what: &str, name: &str) -> Failure {
    Failure(Error::new(ErrorKind::VectorNotFound, format!("{what} not found: {name}")))
}

fn conflict(what: &str, name: &str) -> Failure {
    Failure(Error::new(ErrorKind::VectorConflict, format!("{what} already exists: {name}")))
}

/// S3 Vectors' naming rule: 3 to 63 lower-case letters, digits and hyphens (and dots, for
/// index names), beginning and ending with a letter or digit.
fn check_name(name: &str, what: &str, dots: bool) -> Result<(), Failure> {
    if super::s3_style_name(name, dots) {
        Ok(())
    } else {
        let allowed = if dots {
            "lower-case letters, digits, hyphens and dots"
        } else {
            "lower-case letters, digits and hyphens"
        };
        Err(invalid(format!(
            "Invalid {what} {name:?}: use 3 to 63 {allowed}, beginning and ending with a letter or digit"
        )))
    }
}

/// A page size: at most `max` (larger asks are capped), at least 1.
fn page_size(asked: Option<i64>, default: i64, max: i64) -> Result<i64, Failure> {
    match asked {
        Some(n) if n < 1 => Err(invalid("maxResults must be at least 1")),
        Some(n) => Ok(n.min(max)),
        None => Ok(default),
    }
}

// ---------------------------------------------------------------- buckets

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketRef {
    vector_bucket_name: Option<String>,
}

async fn create_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    check_name(&name, "vector bucket name", false)?;
    let inserted = sqlx::query("insert into storage.buckets_vectors (id) values ($1)")
        .bind(&name)
        .execute(project.db().pool())
        .await;
    match inserted {
        Ok(_) => Ok(Json(json!({}))),
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::UniqueViolation) => {
            Err(conflict("Vector bucket", &name))
        }
        Err(e) => Err(db(e)),
    }
}

async fn get_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    let created: Option<i64> =
        sqlx::query_scalar("select extract(epoch from created_at)::bigint from storage.buckets_vectors where id = $1")
            .bind(&name)
            .fetch_optional(project.db().pool())
            .await
            .map_err(db)?;
    let created = created.ok_or_else(|| not_found("Vector bucket", &name))?;
    Ok(Json(json!({ "vectorBucket": { "vectorBucketName": name, "creationTime": created } })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListNames {
    vector_bucket_name: Option<String>,
    prefix: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

async fn list_buckets(Call { project, body }: Call<ListNames>) -> Answer {
    let limit = page_size(body.max_results, 100, MAX_LIST_NAMES)?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select id, extract(epoch from created_at)::bigint from storage.buckets_vectors \
         where ($1::text is null or starts_with(id, $1)) and ($2::text is null or id > $2) \
         order by id limit $3",
    )
    .bind(&body.prefix)
    .bind(&body.next_token)
    .bind(limit + 1)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)?;
    let (page, next) = paged(rows, limit, |(name, _)| name.clone());
    let buckets: Vec<Value> =
        page.into_iter().map(|(name, t)| json!({ "vectorBucketName": name, "creationTime": t })).collect();
    Ok(Json(with_token(json!({ "vectorBuckets": buckets }), next)))
}

/// Splits a page fetched with one extra row into the page and the next token.
fn paged<T>(mut rows: Vec<T>, limit: i64, token: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(token);
        (rows, next)
    } else {
        (rows, None)
    }
}

fn with_token(mut body: Value, next: Option<String>) -> Value {
    if let Some(next) = next {
        body["nextToken"] = Value::String(next);
    }
    body
}

async fn delete_bucket(Call { project, body }: Call<BucketRef>) -> Answer {
    let name = required(body.vector_bucket_name, "vectorBucketName")?;
    let deleted = sqlx::query(
        "delete from storage.buckets_vectors where id = $1 \
         and not exists (select 1 from storage.vector_indexes where bucket_id = $1)",
    )
    .bind(&name)
    .execute(project.db().pool())
    .await;
    let not_empty = || {
        Failure(Error::new(
            ErrorKind::VectorBucketNotEmpty,
            format!("The vector bucket {name} still has indexes: delete them first"),
        ))
    };
    match deleted {
        Ok(done) if done.rows_affected() == 1 => Ok(Json(json!({}))),
        // An index created meanwhile holds the bucket.
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::ForeignKeyViolation) => Err(not_empty()),
        Err(e) => Err(db(e)),
        Ok(_) => {
            let exists: bool =
                sqlx::query_scalar("select exists (select 1 from storage.buckets_vectors where id = $1)")
                    .bind(&name)
                    .fetch_one(project.db().pool())
                    .await
                    .map_err(db)?;
            Err(if exists { not_empty() } else { not_found("Vector bucket", &name) })
        }
    }
}

// ---------------------------------------------------------------- indexes

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateIndex {
    vector_bucket_name: Option<String>,
    index_name: Option<String>,
    data_type: Option<String>,
    dimension: Option<i64>,
    distance_metric: Option<String>,
    metadata_configuration: Option<MetadataConfiguration>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetadataConfiguration {
    #[serde(default)]
    non_filterable_metadata_keys: Vec<String>,
}

async fn create_index(Call { project, body }: Call<CreateIndex>) -> Answer {
    let bucket = required(body.vector_bucket_name, "vectorBucketName")?;
    let name = required(body.index_name, "indexName")?;
    check_name(&name, "index name", true)?;
    let data_type = required(body.data_type, "dataType")?;
    if data_type != "float32" {
        return Err(invalid(format!("Unsupported dataType {data_type:?}: only \"float32\" is supported")));
    }
    let dimension = required(body.dimension, "dimension")?;
    let dimension = i32::try_from(dimension)
        .ok()
        .filter(|d| (1..=MAX_DIMENSION).contains(d))
        .ok_or_else(|| invalid(format!("dimension must be between 1 and {MAX_DIMENSION}")))?;
    let metric = required(body.distance_metric, "distanceMetric")?;
    Metric::parse(&metric)?;
    let keys = body.metadata_configuration.unwrap_or_default().non_filterable_metadata_keys;
    if keys.len() > MAX_NON_FILTERABLE {
        return Err(invalid(format!("At most {MAX_NON_FILTERABLE} non-filterable metadata keys are allowed")));
    }
    if keys.iter().any(|k| k.is_empty() || k.len() > 63) {
        return Err(invalid("Non-filterable metadata keys must have 1 to 63 characters"));
    }
    let config = (!keys.is_empty()).then(|| json!({ "nonFilterableMetadataKeys": keys }));
    let inserted = sqlx::query(
        "insert into storage.vector_indexes (bucket_id, name, data_type, dimension, distance_metric, metadata_configuration) \
         select id, $2, $3, $4, $5, $6 from storage.buckets_vectors where id = $1",
    )
    .bind(&bucket)
    .bind(&name)
    .bind(&data_type)
    .bind(dimension)
    .bind(&metric)
    .bind(config.map(sqlx::types::Json))
    .execute(project.db().pool())
    .await;
    match inserted {
        Ok(done) if done.rows_affected() == 1 => Ok(Json(json!({}))),
        Ok(_) => Err(not_found("Vector bucket", &bucket)),
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::UniqueViolation) => {
            Err(conflict("Vector index", &name))
        }
        // The bucket was deleted meanwhile.
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::ForeignKeyViolation) => {
            Err(not_found("Vector bucket", &bucket))
        }
        Err(e) => Err(db(e)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexRef {
    vector_bucket_name: Option<String>,
    index_name: Option<String>,
}

/// The bucket and index a call names, both required.
fn names(bucket: Option<String>, index: Option<String>) -> Result<(String, String), Failure> {
    Ok((required(bucket, "vectorBucketName")?, required(index, "indexName")?))
}

async fn get_index(Call { project, body }: Call<IndexRef>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let found = index(&project, &bucket, &name).await?;
    let mut index = json!({
        "indexName": name,
        "vectorBucketName": bucket,
        "dataType": "float32",
        "dimension": found.dimension,
        "distanceMetric": found.metric.name(),
        "creationTime": found.created,
    });
    if let Some(config) = found.configuration {
        index["metadataConfiguration"] = config;
    }
    Ok(Json(json!({ "index": index })))
}

async fn list_indexes(Call { project, body }: Call<ListNames>) -> Answer {
    let bucket = required(body.vector_bucket_name, "vectorBucketName")?;
    let limit = page_size(body.max_results, 100, MAX_LIST_NAMES)?;
    let rows: Vec<(Option<String>, Option<i64>)> = sqlx::query_as(
        "select i.name, extract(epoch from i.created_at)::bigint from storage.buckets_vectors b \
         left join storage.vector_indexes i on i.bucket_id = b.id \
           and ($2::text is null or starts_with(i.name, $2)) and ($3::text is null or i.name > $3) \
         where b.id = $1 order by i.name limit $4",
    )
    .bind(&bucket)
    .bind(&body.prefix)
    .bind(&body.next_token)
    .bind(limit + 1)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)?;
    if rows.is_empty() {
        return Err(not_found("Vector bucket", &bucket));
    }
    let rows: Vec<(String, i64)> = rows.into_iter().filter_map(|(n, t)| Some((n?, t?))).collect();
    let (page, next) = paged(rows, limit, |(name, _)| name.clone());
    let indexes: Vec<Value> = page
        .into_iter()
        .map(|(name, t)| json!({ "indexName": name, "vectorBucketName": bucket, "creationTime": t }))
        .collect();
    Ok(Json(with_token(json!({ "indexes": indexes }), next)))
}

async fn delete_index(Call { project, body }: Call<IndexRef>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let found = index(&project, &bucket, &name).await?;
    // Its vectors go with it (on delete cascade).
    let done = sqlx::query("delete from storage.vector_indexes where id = $1")
        .bind(found.id)
        .execute(project.db().pool())
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(not_found("Vector index", &name));
    }
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------- vectors

/// A distance metric.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    /// `1 - cos(a, b)`: 0 for the same direction, 2 for opposite ones.
    Cosine,
    /// `|a - b|`.
    Euclidean,
}

impl Metric {
    fn parse(name: &str) -> Result<Self, Failure> {
        match name {
            "cosine" => Ok(Metric::Cosine),
            "euclidean" => Ok(Metric::Euclidean),
            other => Err(invalid(format!("Unsupported distanceMetric {other:?}: use \"cosine\" or \"euclidean\""))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
        }
    }

    fn distance(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Metric::Cosine => {
                let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
                for (x, y) in a.iter().zip(b) {
                    let (x, y) = (f64::from(*x), f64::from(*y));
                    dot += x * y;
                    na += x * x;
                    nb += y * y;
                }
                // Rounding can take it just outside [0, 2].
                (1.0 - dot / (na.sqrt() * nb.sqrt())).clamp(0.0, 2.0)
            }
            Metric::Euclidean => {
                a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>().sqrt()
            }
        }
    }
}

/// An index as the vector routes need it.
struct Index {
    id: Uuid,
    dimension: usize,
    metric: Metric,
    non_filterable: Vec<String>,
    /// The configuration as stored (`GetIndex` answers it).
    configuration: Option<Value>,
    /// Seconds since the epoch.
    created: i64,
}

async fn index(project: &Project, bucket: &str, name: &str) -> Result<Index, Failure> {
    /// The bucket's row, joined with the index's when there is one.
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Option<Uuid>,
        dimension: Option<i32>,
        distance_metric: Option<String>,
        metadata_configuration: Option<sqlx::types::Json<Value>>,
        created: Option<i64>,
    }
    let row: Option<Row> = sqlx::query_as(
        "select i.id, i.dimension, i.distance_metric, i.metadata_configuration, \
         extract(epoch from i.created_at)::bigint as created from storage.buckets_vectors b \
         left join storage.vector_indexes i on i.bucket_id = b.id and i.name = $2 where b.id = $1",
    )
    .bind(bucket)
    .bind(name)
    .fetch_optional(project.db().pool())
    .await
    .map_err(db)?;
    let Some(Row { id, dimension, distance_metric, metadata_configuration, created }) = row else {
        return Err(not_found("Vector bucket", bucket));
    };
    let (Some(id), Some(dimension), Some(metric), Some(created)) = (id, dimension, distance_metric, created) else {
        return Err(not_found("Vector index", name));
    };
    let configuration = metadata_configuration.map(|c| c.0);
    let non_filterable = match &configuration {
        Some(c) => {
            MetadataConfiguration::deserialize(c).map_err(|e| Failure(Error::internal(e)))?.non_filterable_metadata_keys
        }
        None => Vec::new(),
    };
    Ok(Index {
        id,
        dimension: usize::try_from(dimension).map_err(|e| Failure(Error::internal(e)))?,
        metric: Metric::parse(&metric)?,
        non_filterable,
        configuration,
        created,
    })
}

#[derive(Debug, Deserialize)]
struct VectorData {
    float32: Option<Vec<f32>>,
}

#[derive(Debug, Deserialize)]
struct VectorIn {
    key: Option<String>,
    data: Option<VectorData>,
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutVectors {
    vector_bucket_name: Option<String>,
    index_name: Option<String>,
    vectors: Option<Vec<VectorIn>>,
}

/// A key: 1 to 1024 characters (S3 Vectors' rule) and at most 2048 bytes, which keeps the
/// key within what a Postgres index entry holds.
fn check_key(key: &str) -> Result<(), Failure> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS || key.len() > MAX_KEY_BYTES {
        return Err(invalid(format!(
            "Vector keys must have 1 to {MAX_KEY_CHARS} characters and at most {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A query or stored vector: the index's dimension, finite components, and (for cosine) not
/// all zero.
fn check_vector(v: &[f32], index: &Index, what: &str) -> Result<(), Failure> {
    if v.len() != index.dimension {
        return Err(invalid(format!("{what} has {} components; the index takes {}", v.len(), index.dimension)));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(invalid(format!("{what} has a component that is not a finite number")));
    }
    if index.metric == Metric::Cosine && v.iter().all(|x| *x == 0.0) {
        return Err(invalid(format!("{what} is all zeros, which has no cosine distance")));
    }
    Ok(())
}

/// Metadata: an object of strings, numbers, booleans and arrays of them, at most 40 KiB.
fn check_metadata(key: &str, metadata: Option<Value>) -> Result<Option<String>, Failure> {
    let map = match metadata {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(invalid(format!("The metadata of vector {key:?} must be an object"))),
    };
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    for (name, value) in &map {
        let fine = match value {
            Value::Array(items) => items.iter().all(scalar),
            other => scalar(other),
        };
        if !fine {
            return Err(invalid(format!(
                "Metadata {name:?} of vector {key:?} must be a string, number, boolean or an array of them"
            )));
        }
    }
    let text = Value::Object(map).to_string();
    if text.len() > MAX_METADATA_BYTES {
        return Err(invalid(format!("The metadata of vector {key:?} is over {} KiB", MAX_METADATA_BYTES >> 10)));
    }
    Ok(Some(text))
}

fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

async fn put_vectors(Call { project, body }: Call<PutVectors>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let vectors = required(body.vectors, "vectors")?;
    if vectors.is_empty() || vectors.len() > MAX_PUT {
        return Err(invalid(format!("vectors must have 1 to {MAX_PUT} entries")));
    }
    let index = index(&project, &bucket, &name).await?;
    let mut vectors = vectors;
    // Rows are locked in key order (bytes, as the column's "C" collation sorts), so batches
    // that share keys never wait on each other in a cycle.
    vectors.sort_by(|a, b| a.key.cmp(&b.key));
    let mut seen = HashSet::new();
    let (mut keys, mut data, mut metadata) = (Vec::new(), Vec::new(), Vec::new());
    for v in vectors {
        let key = required(v.key, "vectors.key")?;
        check_key(&key)?;
        if !seen.insert(key.clone()) {
            return Err(invalid(format!("Vector key {key:?} appears twice in the request")));
        }
        let values = required(v.data.and_then(|d| d.float32), "vectors.data.float32")?;
        check_vector(&values, &index, &format!("Vector {key:?}"))?;
        metadata.push(check_metadata(&key, v.metadata)?);
        data.push(encode(&values));
        keys.push(key);
    }
    let stored = sqlx::query(
        "insert into storage.vectors (index_id, key, data, metadata) \
         select $1, k, d, m::jsonb from unnest($2::text[], $3::bytea[], $4::text[]) with ordinality as t(k, d, m, n) \
         order by n \
         on conflict (index_id, key) do update set data = excluded.data, metadata = excluded.metadata",
    )
    .bind(index.id)
    .bind(&keys)
    .bind(&data)
    .bind(&metadata)
    .execute(project.db().pool())
    .await;
    match stored {
        Ok(_) => Ok(Json(json!({}))),
        // The index was deleted meanwhile.
        Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::ForeignKeyViolation) => {
            Err(not_found("Vector index", &name))
        }
        Err(e) => Err(db(e)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetVectors {
    vector_bucket_name: Option<String>,
    index_name: Option<String>,
    keys: Option<Vec<String>>,
    #[serde(default)]
    return_data: bool,
    #[serde(default)]
    return_metadata: bool,
}

fn check_keys(keys: Option<Vec<String>>, max: usize) -> Result<Vec<String>, Failure> {
    let keys = required(keys, "keys")?;
    if keys.is_empty() || keys.len() > max {
        return Err(invalid(format!("keys must have 1 to {max} entries")));
    }
    keys.iter().try_for_each(|k| check_key(k))?;
    Ok(keys)
}

/// A vector as the routes answer it: the key, and the data and metadata when asked.
fn vector_json(key: String, data: Option<&[u8]>, metadata: Option<Value>) -> Value {
    let mut v = json!({ "key": key });
    if let Some(data) = data {
        v["data"] = json!({ "float32": decode(data) });
    }
    if let Some(metadata) = metadata {
        v["metadata"] = metadata;
    }
    v
}

/// A key, its data and its metadata (each read only when asked).
type VectorRow = (String, Option<Vec<u8>>, Option<sqlx::types::Json<Value>>);

async fn get_vectors(Call { project, body }: Call<GetVectors>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let keys = check_keys(body.keys, MAX_GET)?;
    let index = index(&project, &bucket, &name).await?;
    let rows: Vec<VectorRow> = sqlx::query_as(
        "select key, case when $3 then data end, case when $4 then metadata end from storage.vectors \
             where index_id = $1 and key = any($2)",
    )
    .bind(index.id)
    .bind(&keys)
    .bind(body.return_data)
    .bind(body.return_metadata)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)?;
    let mut found: HashMap<String, (Option<Vec<u8>>, Option<Value>)> =
        rows.into_iter().map(|(k, d, m)| (k, (d, m.map(|m| m.0)))).collect();
    // In the order asked, each once; missing keys are left out.
    let vectors: Vec<Value> = keys
        .into_iter()
        .filter_map(|key| {
            let (data, metadata) = found.remove(&key)?;
            let metadata = body.return_metadata.then(|| metadata.unwrap_or_else(|| json!({})));
            Some(vector_json(key, data.as_deref(), metadata))
        })
        .collect();
    Ok(Json(json!({ "vectors": vectors })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListVectors {
    vector_bucket_name: Option<String>,
    index_name: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    #[serde(default)]
    return_data: bool,
    #[serde(default)]
    return_metadata: bool,
    segment_count: Option<i32>,
    segment_index: Option<i32>,
}

async fn list_vectors(Call { project, body }: Call<ListVectors>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let limit = page_size(body.max_results, 500, MAX_LIST_VECTORS)?;
    // Parallel scans: segment i of n holds the keys whose hash is i modulo n.
    let segment = match (body.segment_count, body.segment_index) {
        (None, None) => None,
        (Some(n), Some(i)) if (1..=MAX_SEGMENTS).contains(&n) && (0..n).contains(&i) => Some((n, i)),
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "segmentCount must be 1 to {MAX_SEGMENTS} and segmentIndex 0 to segmentCount - 1"
            )));
        }
        _ => return Err(invalid("segmentCount and segmentIndex go together")),
    };
    let index = index(&project, &bucket, &name).await?;
    let rows: Vec<VectorRow> = sqlx::query_as(
        "select key, case when $7 then data end, case when $5 then metadata end from storage.vectors \
         where index_id = $1 and ($2::text is null or key > $2) \
         and ($3::int is null or mod(hashtext(key)::bigint + 2147483648, $3) = $4) \
         order by key limit $6",
    )
    .bind(index.id)
    .bind(&body.next_token)
    .bind(segment.map(|s| s.0))
    .bind(segment.map(|s| s.1))
    .bind(body.return_metadata)
    .bind(limit + 1)
    .bind(body.return_data)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)?;
    let (page, next) = paged(rows, limit, |(key, _, _)| key.clone());
    let vectors: Vec<Value> = page
        .into_iter()
        .map(|(key, data, metadata)| {
            let metadata = body.return_metadata.then(|| metadata.map_or_else(|| json!({}), |m| m.0));
            vector_json(key, data.as_deref(), metadata)
        })
        .collect();
    Ok(Json(with_token(json!({ "vectors": vectors }), next)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryVectors {
    vector_bucket_name: Option<String>,
    index_name: Option<String>,
    query_vector: Option<VectorData>,
    top_k: Option<i64>,
    filter: Option<Value>,
    #[serde(default)]
    return_distance: bool,
    #[serde(default)]
    return_metadata: bool,
}

/// A query candidate, ordered by distance and then key (the heap's top is the worst kept).
struct Candidate {
    distance: f64,
    key: String,
    metadata: Option<Value>,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance.total_cmp(&other.distance).then_with(|| self.key.cmp(&other.key))
    }
}

async fn query_vectors(Call { project, body }: Call<QueryVectors>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let query = required(body.query_vector.and_then(|q| q.float32), "queryVector.float32")?;
    let top_k = body.top_k.unwrap_or(10);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(invalid(format!("topK must be between 1 and {MAX_TOP_K}")));
    }
    let top_k = usize::try_from(top_k).map_err(|e| Failure(Error::internal(e)))?;
    let index = index(&project, &bucket, &name).await?;
    check_vector(&query, &index, "The query vector")?;
    let filter =
        body.filter.filter(|f| !f.is_null()).map(|f| Filter::compile(&f, &index.non_filterable)).transpose()?;

    let want_metadata = filter.is_some() || body.return_metadata;
    let mut rows = sqlx::query_as::<_, (String, Vec<u8>, Option<sqlx::types::Json<Map<String, Value>>>)>(
        "select key, data, case when $2 then metadata end from storage.vectors where index_id = $1",
    )
    .bind(index.id)
    .bind(want_metadata)
    .fetch(project.db().pool());
    let mut best = BinaryHeap::with_capacity(top_k + 1);
    while let Some((key, data, metadata)) = rows.try_next().await.map_err(db)? {
        let metadata = metadata.map(|m| m.0);
        if filter.as_ref().is_some_and(|f| !f.matches(metadata.as_ref())) {
            continue;
        }
        let distance = index.metric.distance(&query, &decode(&data));
        // Kept only if better than the worst kept: by distance, then (on a tie) by key.
        let worse = |worst: &Candidate| worst.distance.total_cmp(&distance).then_with(|| worst.key.cmp(&key)).is_le();
        if best.len() == top_k && best.peek().is_some_and(worse) {
            continue;
        }
        let metadata = body.return_metadata.then(|| Value::Object(metadata.unwrap_or_default()));
        best.push(Candidate { distance, key, metadata });
        if best.len() > top_k {
            best.pop();
        }
    }
    let vectors: Vec<Value> = best
        .into_sorted_vec()
        .into_iter()
        .map(|c| {
            let mut v = vector_json(c.key, None, c.metadata);
            if body.return_distance {
                // Sent as a float32, as S3 Vectors does.
                v["distance"] = json!(c.distance as f32);
            }
            v
        })
        .collect();
    Ok(Json(json!({ "vectors": vectors, "distanceMetric": index.metric.name() })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteVectors {
    vector_bucket_name: Option<String>,
    index_name: Option<String>,
    keys: Option<Vec<String>>,
}

async fn delete_vectors(Call { project, body }: Call<DeleteVectors>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let keys = check_keys(body.keys, MAX_DELETE)?;
    let index = index(&project, &bucket, &name).await?;
    sqlx::query("delete from storage.vectors where index_id = $1 and key = any($2)")
        .bind(index.id)
        .bind(&keys)
        .execute(project.db().pool())
        .await
        .map_err(db)?;
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let d = Metric::Cosine.distance(&[1.0, 0.0], &[0.0, 2.0]);
        assert!((d - 1.0).abs() < 1e-9, "{d}");
        let d = Metric::Cosine.distance(&[1.0, 1.0], &[-3.0, -3.0]);
        assert!((d - 2.0).abs() < 1e-9, "{d}");
        let d = Metric::Euclidean.distance(&[1.0, 2.0], &[4.0, 6.0]);
        assert!((d - 5.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn names_follow_the_s3_vectors_rule() {
        assert!(check_name("docs-1", "bucket", false).is_ok());
        assert!(check_name("my.index-2", "index", true).is_ok());
        for bad in ["ab", "Docs", "docs_1", "-docs", "docs-", "a.b.c", &"x".repeat(64)] {
            assert!(check_name(bad, "bucket", false).is_err(), "{bad}");
        }
        assert!(check_name(".idx", "index", true).is_err());
    }

    #[test]
    fn vectors_round_trip_through_bytes() {
        let v = [0.5f32, -1.25, 3.0e-7, f32::MAX];
        assert_eq!(decode(&encode(&v)), v);
    }
}
