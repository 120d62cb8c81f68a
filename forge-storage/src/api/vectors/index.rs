//! Vector indexes: CreateIndex, GetIndex, ListIndexes, DeleteIndex, and the distance metrics.

use axum::Json;
use forge_core::Project;
use forge_core::error::DbErrorKind;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    Answer, Call, Failure, ListNames, MAX_DIMENSION, MAX_LIST_NAMES, MAX_NON_FILTERABLE, check_name, conflict, db,
    invalid, not_found, page_size, paged, required, with_token,
};
use crate::error::Error;

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

pub(super) async fn delete_index(Call { project, body }: Call<IndexRef>) -> Answer {
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
pub(super) enum Metric {
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

    pub(super) fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
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
