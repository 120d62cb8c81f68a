//! `GET /openapi.json`, the Management API's OpenAPI document ([`super::openapi`]), and the
//! Swagger UI page that renders it at `/docs`, its files under `/docs/{file}`. The files are
//! compiled into the binary (`utoipa-swagger-ui` with `vendored`: nothing is downloaded to build
//! it) and the page loads nothing from elsewhere: its online validator badge is off.
//!
//! The server trims trailing slashes before routing, so the page is served at `/docs` itself
//! with its files named by absolute paths, not at `/docs/` with relative ones.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use utoipa_swagger_ui::Config;

use crate::platform::error::Error;

/// Where the page is.
const PAGE: &str = "/docs";
/// Where the document is.
const SPEC: &str = "/openapi.json";

/// The document and the page, for the root router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let spec = match serde_json::to_vec(&super::openapi()) {
        Ok(spec) => axum::body::Bytes::from(spec),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document does not serialize");
            axum::body::Bytes::new()
        }
    };
    let config = Arc::new(Config::new([SPEC]).validator_url("none"));
    let page_config = config.clone();
    Router::new()
        .route(SPEC, get(move || async move { ([(CONTENT_TYPE, "application/json")], spec.clone()) }))
        .route(PAGE, get(move || async move { page(&page_config) }))
        .route(&format!("{PAGE}/{{file}}"), get(move |Path(file): Path<String>| async move { file_of(&config, &file) }))
}

/// Swagger UI's `index.html`, its files named under [`PAGE`].
fn page(config: &Arc<Config<'static>>) -> Response {
    let Some(html) = swagger_file(config, "index.html") else {
        return Error::not_found("Docs page").into_response();
    };
    let html = String::from_utf8_lossy(&html.bytes)
        .replace("=\"./", &format!("=\"{PAGE}/"))
        .replace("href=\"index.css\"", &format!("href=\"{PAGE}/index.css\""));
    ([(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache")], html).into_response()
}

/// One of the page's files (scripts, styles, icons, and the initializer that names [`SPEC`]).
fn file_of(config: &Arc<Config<'static>>, name: &str) -> Response {
    let Some(file) = swagger_file(config, name) else {
        return Error::not_found("File").into_response();
    };
    let mut res = ([(CONTENT_TYPE, file.content_type)], file.bytes.into_owned()).into_response();
    if file.gzpipped {
        res.headers_mut().insert(CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
    }
    res
}

fn swagger_file(config: &Arc<Config<'static>>, name: &str) -> Option<utoipa_swagger_ui::SwaggerFile<'static>> {
    match utoipa_swagger_ui::serve(name, config.clone()) {
        Ok(file) => file,
        Err(e) => {
            tracing::error!(error = %e, file = name, "a docs page file could not be served");
            None
        }
    }
}
