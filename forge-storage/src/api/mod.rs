//! The HTTP face of forge-storage, at `/storage/v1`.

mod bucket;
mod cdn;
mod iceberg;
mod list_v2;
mod object;
pub(crate) mod tus;
mod vectors;

use axum::Router;
use axum::routing::{get, patch, post, put};
use forge_core::WireFormat;
use forge_core::error::RefusalLayer;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::service::Storage;
use object::access::{Authenticated, Public, Signed};
use tus::{ByJwt, BySignature};

/// The statement a listing route (`list` or `list-v2`) runs on `bucket` for `body`.
#[cfg(feature = "test-support")]
pub(crate) fn listing_statement(route: &str, bucket: &str, body: serde_json::Value) -> Result<crate::rows::Statement> {
    let bad = |e: serde_json::Error| Error::invalid(e.to_string());
    match route {
        "list" => {
            let page = object::list::folder_page(bucket.to_owned(), serde_json::from_value(body).map_err(bad)?)?;
            Ok(crate::rows::folder_statement(&page))
        }
        "list-v2" => {
            list_v2::Listing::from_body(serde_json::from_value(body).map_err(bad)?)?.statement(bucket.to_owned())
        }
        other => Err(Error::invalid(format!("no listing route {other:?}"))),
    }
}

impl Storage {
    /// The routes, to nest at `/storage/v1` under a [`forge_core::ProjectLayer`].
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        // Marks a route whose body may take longer than an edge's request timeout.
        let long = || axum::middleware::from_fn(forge_core::LongRequest::mark);
        // Resumable uploads answer the framework's refusals as TUS does: plain text.
        let tus = || RefusalLayer::new(WireFormat::Tus);
        Router::new()
            .route("/bucket", get(bucket::list).post(bucket::create))
            .route("/bucket/", get(bucket::list).post(bucket::create))
            .route("/bucket/{id}", get(bucket::get).put(bucket::update).delete(bucket::delete))
            .route("/bucket/{id}/empty", post(bucket::empty))
            .route("/render/image/authenticated/{bucket}/{*path}", get(object::render::render::<Authenticated>))
            .route("/render/image/public/{bucket}/{*path}", get(object::render::render::<Public>))
            .route("/render/image/sign/{bucket}/{*path}", get(object::render::render::<Signed>))
            // Routes whose bodies are objects' bytes may outlast an edge's request timeout
            // (`LongRequest`): their bodies are cut off after 30 s without a byte instead.
            .route("/upload/resumable", post(tus::create::<ByJwt>).layer(long()).options(tus::options).layer(tus()))
            .route("/upload/resumable/", post(tus::create::<ByJwt>).layer(long()).options(tus::options).layer(tus()))
            .route(
                "/upload/resumable/sign",
                post(tus::create::<BySignature>).layer(long()).options(tus::options).layer(tus()),
            )
            .route(
                "/upload/resumable/sign/",
                post(tus::create::<BySignature>).layer(long()).options(tus::options).layer(tus()),
            )
            .route(
                "/upload/resumable/sign/{id}",
                patch(tus::patch::<BySignature>)
                    .post(tus::overridden::<BySignature>)
                    .layer(long())
                    .head(tus::head::<BySignature>)
                    .delete(tus::terminate::<BySignature>)
                    .options(tus::options)
                    .layer(tus()),
            )
            .route(
                "/upload/resumable/{id}",
                patch(tus::patch::<ByJwt>)
                    .post(tus::overridden::<ByJwt>)
                    .layer(long())
                    .head(tus::head::<ByJwt>)
                    .delete(tus::terminate::<ByJwt>)
                    .options(tus::options)
                    .layer(tus()),
            )
            .route("/cdn/{bucket}", axum::routing::delete(cdn::purge_bucket))
            .route("/cdn/{bucket}/{*path}", axum::routing::delete(cdn::purge))
            .route("/object/list/{bucket}", post(object::list::list))
            .route("/object/list-v2/{bucket}", post(list_v2::list_v2))
            .route("/object/move", post(object::move_object::move_object))
            .route("/object/copy", post(object::copy::copy))
            .route("/object/info/public/{bucket}/{*path}", get(object::info::info::<Public>))
            .route("/object/info/authenticated/{bucket}/{*path}", get(object::info::info::<Authenticated>))
            .route("/object/info/{bucket}/{*path}", get(object::info::info::<Authenticated>))
            .route("/object/public/{bucket}/{*path}", get(object::download::download::<Public>))
            .route("/object/authenticated/{bucket}/{*path}", get(object::download::download::<Authenticated>))
            .route(
                "/object/upload/sign/{bucket}/{*path}",
                put(object::upload::upload_signed).layer(long()).post(object::sign::sign_upload),
            )
            .route("/object/sign/{bucket}", post(object::sign::sign_many))
            .route("/object/sign/{bucket}/{*path}", get(object::download::download::<Signed>).post(object::sign::sign))
            .route("/object/{bucket}", axum::routing::delete(object::remove::remove_many))
            .route(
                "/object/{bucket}/{*path}",
                post(object::upload::upload)
                    .put(object::upload::update)
                    .layer(long())
                    .get(object::download::download::<Authenticated>)
                    .delete(object::remove::remove),
            )
            .nest("/vector", vectors::router())
            .nest("/iceberg", iceberg::router())
            .layer(axum::Extension(self.clone()))
            .layer(axum::Extension(WireFormat::Storage))
            .layer(RefusalLayer::new(WireFormat::Storage))
            // Uploads are limited while streaming (the bucket's and the service's limits), not
            // by axum's 2 MiB default for extractors such as multipart forms.
            .layer(axum::extract::DefaultBodyLimit::disable())
    }
}

/// How a service-only family of routes refuses a caller, in its own error format: `None` for
/// a role other than the service role, `Some` for credentials that failed.
pub(crate) type Refusal = fn(Option<forge_core::Rejection>) -> axum::response::Response;

/// Lets only the service role through to `router` (the vector and analytics routes, as in
/// Supabase). A refused request's body is read and dropped before the answer (up to the
/// drain's bounds), so a client still sending gets the error on a connection it can reuse.
pub(crate) fn service_only<S: Clone + Send + Sync + 'static>(router: Router<S>, refuse: Refusal) -> Router<S> {
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| async move {
            let (mut parts, body) = req.into_parts();
            let principal =
                <forge_core::Principal as axum::extract::FromRequestParts<()>>::from_request_parts(&mut parts, &())
                    .await;
            let refused = match principal {
                Ok(forge_core::Principal::Service(_)) => None,
                Ok(_) => Some(refuse(None)),
                Err(rejection) => Some(refuse(Some(rejection))),
            };
            match refused {
                None => next.run(axum::extract::Request::from_parts(parts, body)).await,
                Some(answer) => {
                    crate::blob::discard(body).await;
                    answer
                }
            }
        },
    ))
}

/// The S3 naming rule of vector and table buckets (and of vector indexes, with `dots`): 3 to
/// 63 lower-case letters, digits and hyphens, beginning and ending with a letter or digit.
pub(crate) fn s3_style_name(name: &str, dots: bool) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.'))
        && edge(name.chars().next())
        && edge(name.chars().last())
}

/// A JSON request body, in Storage's shape: an empty body is `{}`, and a body that does not
/// parse as `T` is 400 `InvalidRequest`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| Error::invalid(e.body_text()))?;
        Ok(JsonBody(parse_body(&bytes)?))
    }
}

/// Parses a JSON body (an empty body is `{}`).
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| Error::invalid(format!("Invalid JSON body: {e}")))
}
