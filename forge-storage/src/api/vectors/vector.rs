//! Vectors: PutVectors, GetVectors, ListVectors, QueryVectors (exact nearest neighbours) and
//! DeleteVectors.

use axum::Json;
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use super::index::{Index, Metric, index, names};
use super::{
    Answer, Call, Failure, MAX_DELETE, MAX_GET, MAX_KEY_BYTES, MAX_KEY_CHARS, MAX_LIST_VECTORS, MAX_METADATA_BYTES,
    MAX_PUT, MAX_SEGMENTS, MAX_TOP_K, float32, invalid, not_found, page_size, paged, required, with_token,
};
use crate::error::Error;
use crate::rows::vectors::{self, Reading, VectorPage};
use crate::vector_filter::Filter;

#[derive(Debug, Deserialize)]
pub(super) struct VectorData {
    pub(super) float32: Option<Vec<f32>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct VectorIn {
    pub(super) key: Option<String>,
    pub(super) data: Option<VectorData>,
    pub(super) metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutVectors {
    pub(super) vector_bucket_name: Option<String>,
    pub(super) index_name: Option<String>,
    pub(super) vectors: Option<Vec<VectorIn>>,
}

/// A key: 1 to 1024 characters (S3 Vectors' rule) and at most 2048 bytes, which keeps the
/// key within what a Postgres index entry holds.
pub(super) fn check_key(key: &str) -> Result<(), Failure> {
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
pub(super) fn check_vector(v: &[f32], index: &Index, what: &str) -> Result<(), Failure> {
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
pub(super) fn check_metadata(key: &str, metadata: Option<Value>) -> Result<Option<String>, Failure> {
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

pub(super) fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn decode(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub(super) async fn put_vectors(Call { project, body }: Call<PutVectors>) -> Answer {
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
    if !vectors::put_vectors(&project, index.id, &keys, &data, &metadata).await? {
        // The index was deleted meanwhile.
        return Err(not_found("Vector index", &name));
    }
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GetVectors {
    pub(super) vector_bucket_name: Option<String>,
    pub(super) index_name: Option<String>,
    pub(super) keys: Option<Vec<String>>,
    #[serde(default)]
    pub(super) return_data: bool,
    #[serde(default)]
    pub(super) return_metadata: bool,
}

pub(super) fn check_keys(keys: Option<Vec<String>>, max: usize) -> Result<Vec<String>, Failure> {
    let keys = required(keys, "keys")?;
    if keys.is_empty() || keys.len() > max {
        return Err(invalid(format!("keys must have 1 to {max} entries")));
    }
    keys.iter().try_for_each(|k| check_key(k))?;
    Ok(keys)
}

/// A vector as the routes answer it: the key, and the data and metadata when asked.
pub(super) fn vector_json(key: String, data: Option<&[u8]>, metadata: Option<Value>) -> Value {
    let mut v = json!({ "key": key });
    if let Some(data) = data {
        v["data"] = json!({ "float32": decode(data).into_iter().map(float32).collect::<Vec<_>>() });
    }
    if let Some(metadata) = metadata {
        v["metadata"] = metadata;
    }
    v
}

pub(super) async fn get_vectors(Call { project, body }: Call<GetVectors>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let keys = check_keys(body.keys, MAX_GET)?;
    let index = index(&project, &bucket, &name).await?;
    let read = Reading { data: body.return_data, metadata: body.return_metadata };
    let rows = vectors::get_vectors(&project, index.id, &keys, read).await?;
    let mut found: HashMap<String, (Option<Vec<u8>>, Option<Value>)> =
        rows.into_iter().map(|(k, d, m)| (k, (d, m))).collect();
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
pub(super) struct ListVectors {
    pub(super) vector_bucket_name: Option<String>,
    pub(super) index_name: Option<String>,
    pub(super) max_results: Option<i64>,
    pub(super) next_token: Option<String>,
    #[serde(default)]
    pub(super) return_data: bool,
    #[serde(default)]
    pub(super) return_metadata: bool,
    pub(super) segment_count: Option<i32>,
    pub(super) segment_index: Option<i32>,
}

pub(super) async fn list_vectors(Call { project, body }: Call<ListVectors>) -> Answer {
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
    let page = VectorPage {
        index: index.id,
        after: body.next_token.as_deref(),
        segment,
        limit: limit + 1,
        read: Reading { data: body.return_data, metadata: body.return_metadata },
    };
    let rows = vectors::list_vectors(&project, &page).await?;
    let (page, next) = paged(rows, limit, |(key, _, _)| key.clone());
    let vectors: Vec<Value> = page
        .into_iter()
        .map(|(key, data, metadata)| {
            let metadata = body.return_metadata.then(|| metadata.unwrap_or_else(|| json!({})));
            vector_json(key, data.as_deref(), metadata)
        })
        .collect();
    Ok(Json(with_token(json!({ "vectors": vectors }), next)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryVectors {
    pub(super) vector_bucket_name: Option<String>,
    pub(super) index_name: Option<String>,
    pub(super) query_vector: Option<VectorData>,
    pub(super) top_k: Option<i64>,
    pub(super) filter: Option<Value>,
    #[serde(default)]
    pub(super) return_distance: bool,
    #[serde(default)]
    pub(super) return_metadata: bool,
}

/// A query candidate, ordered by distance and then key (the heap's top is the worst kept).
pub(super) struct Candidate {
    pub(super) distance: f64,
    pub(super) key: String,
    pub(super) metadata: Option<Value>,
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

pub(super) async fn query_vectors(Call { project, body }: Call<QueryVectors>) -> Answer {
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
    let mut rows = std::pin::pin!(vectors::scan(&project, index.id, want_metadata));
    let mut best = BinaryHeap::with_capacity(top_k + 1);
    while let Some((key, data, metadata)) = rows.try_next().await? {
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
                v["distance"] = float32(c.distance as f32);
            }
            v
        })
        .collect();
    Ok(Json(json!({ "vectors": vectors, "distanceMetric": index.metric.name() })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeleteVectors {
    pub(super) vector_bucket_name: Option<String>,
    pub(super) index_name: Option<String>,
    pub(super) keys: Option<Vec<String>>,
}

pub(super) async fn delete_vectors(Call { project, body }: Call<DeleteVectors>) -> Answer {
    let (bucket, name) = names(body.vector_bucket_name, body.index_name)?;
    let keys = check_keys(body.keys, MAX_DELETE)?;
    let index = index(&project, &bucket, &name).await?;
    vectors::delete_vectors(&project, index.id, &keys).await?;
    Ok(Json(json!({})))
}
