//! Vector indexes: CreateIndex, GetIndex, ListIndexes, DeleteIndex, and the distance metrics.

use axum::Json;
use forge_core::Project;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    Answer, Call, Failure, ListNames, MAX_DIMENSION, MAX_LIST_NAMES, MAX_NON_FILTERABLE, check_name, conflict, invalid,
    not_found, page_size, paged, required, with_token,
};
use crate::error::Error;
use crate::rows::vectors::{self, IndexCreation, IndexLookup, IndexRow};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateIndex {
    pub(super) vector_bucket_name: Option<String>,
    pub(super) index_name: Option<String>,
    pub(super) data_type: Option<String>,
    pub(super) dimension: Option<i64>,
    pub(super) distance_metric: Option<String>,
    pub(super) metadata_configuration: Option<MetadataConfiguration>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct MetadataConfiguration {
    #[serde(default)]
    pub(super) non_filterable_metadata_keys: Vec<String>,
}

pub(super) async fn create_index(Call { project, body }: Call<CreateIndex>) -> Answer {
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
    let new = vectors::NewIndex {
        bucket: &bucket,
        name: &name,
        data_type: &data_type,
        dimension,
        distance_metric: &metric,
        metadata_configuration: config,
    };
    match vectors::create_index(&project, new).await? {
        IndexCreation::Created => Ok(Json(json!({}))),
        IndexCreation::Taken => Err(conflict("Vector index", &name)),
        IndexCreation::NoBucket => Err(not_found("Vector bucket", &bucket)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IndexRef {
    pub(super) vector_bucket_name: Option<String>,
    pub(super) index_name: Option<String>,
}

/// The bucket and index a call names, both required.
pub(super) fn names(bucket: Option<String>, index: Option<String>) -> Result<(String, String), Failure> {
    Ok((required(bucket, "vectorBucketName")?, required(index, "indexName")?))
}

pub(super) async fn get_index(Call { project, body }: Call<IndexRef>) -> Answer {
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

pub(super) async fn list_indexes(Call { project, body }: Call<ListNames>) -> Answer {
    let bucket = required(body.vector_bucket_name, "vectorBucketName")?;
    let limit = page_size(body.max_results, 100, MAX_LIST_NAMES)?;
    let prefix = body.prefix.as_deref();
    let rows = vectors::list_indexes(&project, &bucket, prefix, body.next_token.as_deref(), limit + 1)
        .await?
        .ok_or_else(|| not_found("Vector bucket", &bucket))?;
    let (page, next) = paged(rows, limit, |(name, _)| name.clone());
    let indexes: Vec<Value> = page
        .into_iter()
        .map(|(name, t)| json!({ "indexName": name, "vectorBucketName": bucket, "creationTime": t }))
        .collect();
    Ok(Json(with_token(json!({ "indexes": indexes }), next)))
}

pub(super) async fn delete_index(Call { project, body }: Call<IndexRef>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let found = index(&project, &bucket, &name).await?;
    if !vectors::delete_index(&project, found.id).await? {
        return Err(not_found("Vector index", &name));
    }
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------- vectors

/// A distance metric. A smaller distance is a nearer vector for each of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Metric {
    /// `1 - cos(a, b)`: 0 for the same direction, 2 for opposite ones.
    Cosine,
    /// `|a - b|`.
    Euclidean,
    /// `dotproduct` (storage-js' `DistanceMetric`; not in S3 Vectors or upstream Storage's
    /// pgvector adapter): the negative inner product `-(a . b)`, as pgvector's `<#>` reports
    /// it, so the largest inner product is the nearest.
    DotProduct,
}

impl Metric {
    fn parse(name: &str) -> Result<Self, Failure> {
        match name {
            "cosine" => Ok(Metric::Cosine),
            "euclidean" => Ok(Metric::Euclidean),
            "dotproduct" => Ok(Metric::DotProduct),
            other => Err(invalid(format!(
                "Unsupported distanceMetric {other:?}: use \"cosine\", \"euclidean\" or \"dotproduct\""
            ))),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
            Metric::DotProduct => "dotproduct",
        }
    }

    pub(super) fn distance(self, a: &[f32], b: &[f32]) -> f64 {
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
            Metric::DotProduct => -a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>(),
        }
    }
}

/// An index as the vector routes need it.
pub(super) struct Index {
    pub(super) id: Uuid,
    pub(super) dimension: usize,
    pub(super) metric: Metric,
    pub(super) non_filterable: Vec<String>,
    /// The configuration as stored (`GetIndex` answers it).
    pub(super) configuration: Option<Value>,
    /// Seconds since the epoch.
    pub(super) created: i64,
}

pub(super) async fn index(project: &Project, bucket: &str, name: &str) -> Result<Index, Failure> {
    let row = match vectors::index(project, bucket, name).await? {
        IndexLookup::Found(row) => row,
        IndexLookup::NoIndex => return Err(not_found("Vector index", name)),
        IndexLookup::NoBucket => return Err(not_found("Vector bucket", bucket)),
    };
    let IndexRow { id, dimension, distance_metric: metric, metadata_configuration: configuration, created } = row;
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
