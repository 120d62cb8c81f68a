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

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use forge_core::{Principal, Project, WireFormat};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::parse_body;
use crate::error::{Error, ErrorKind};

mod bucket;
mod index;
mod vector;

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

/// A float32 as JSON, in the shortest decimal that reads back as the same float32 (`0.1`), as
/// S3 Vectors writes its components and distances. `serde_json` widens an `f32` to the `f64`
/// `0.10000000149011612`; instead the float32's shortest form (Rust's `Display`) is read as
/// the `f64` nearest to it, whose own shortest form has the same digits.
pub(super) fn float32(x: f32) -> Value {
    x.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// The routes, relative to `/storage/v1/vector`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let routes = Router::new()
        .route("/CreateVectorBucket", post(bucket::create_bucket))
        .route("/GetVectorBucket", post(bucket::get_bucket))
        .route("/ListVectorBuckets", post(bucket::list_buckets))
        .route("/DeleteVectorBucket", post(bucket::delete_bucket))
        .route("/CreateIndex", post(index::create_index))
        .route("/GetIndex", post(index::get_index))
        .route("/ListIndexes", post(index::list_indexes))
        .route("/DeleteIndex", post(index::delete_index))
        .route("/PutVectors", post(vector::put_vectors))
        .route("/GetVectors", post(vector::get_vectors))
        .route("/ListVectors", post(vector::list_vectors))
        .route("/QueryVectors", post(vector::query_vectors))
        .route("/DeleteVectors", post(vector::delete_vectors))
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
        match self.0 {
            // Only the vector routes' own errors carry their real status; what forge-core
            // reports (the database, authentication) is folded as on Storage's other routes.
            core @ Error::Core(_) => core.render(WireFormat::Storage),
            own => own.render(WireFormat::StorageVectors),
        }
    }
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
struct ListNames {
    vector_bucket_name: Option<String>,
    prefix: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::index::Metric;
    use super::vector::{decode, encode};
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
    fn dot_product_distance_is_the_negative_inner_product() {
        let d = Metric::DotProduct.distance(&[1.0, 2.0], &[3.0, -0.5]);
        assert!((d - -2.0).abs() < 1e-9, "{d}");
        let near = Metric::DotProduct.distance(&[1.0, 1.0], &[2.0, 2.0]);
        let far = Metric::DotProduct.distance(&[1.0, 1.0], &[-2.0, -2.0]);
        assert!(near < far, "a larger inner product is nearer");
    }

    #[test]
    fn float32s_are_written_in_their_shortest_form() {
        let text = |x: f32| float32(x).to_string();
        assert_eq!(text(0.1), "0.1");
        assert_eq!(text(-0.3), "-0.3");
        assert_eq!(text(1.0), "1.0");
        assert_eq!(text(0.5), "0.5");
        assert_eq!(text(1.0e-7), "1e-7");
        assert_eq!(text(16_777_217.0), "16777216.0");
        // Every float32 reads back as itself and is written as its shortest decimal.
        let mut bits = 0x3dcc_cccd_u32;
        for _ in 0..20_000 {
            bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = f32::from_bits(bits);
            if !x.is_finite() {
                continue;
            }
            let written = text(x);
            assert_eq!(written.parse::<f32>().ok(), Some(x), "{x:e} written as {written}");
            // The very decimal that is the float32's shortest form.
            assert_eq!(written.parse::<f64>().ok(), format!("{x:e}").parse::<f64>().ok(), "{x:e} written as {written}");
        }
        for x in [f32::MAX, f32::MIN_POSITIVE, -f32::MAX, 3.0e-7] {
            assert_eq!(text(x).parse::<f32>().ok(), Some(x));
        }
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
