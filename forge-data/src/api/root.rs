//! `GET /` and `HEAD /`: the OpenAPI document of the requested schema.

use axum::Extension;
use axum::extract::OriginalUri;
use axum::response::{IntoResponse, Response};
use forge_core::{Principal, Project};
use http::{HeaderMap, HeaderValue, Method, header};

use super::{openapi, request_schema};
use crate::data::Data;
use crate::error::{Error, ErrorKind};

pub(super) async fn get(
    Extension(data): Extension<Data>,
    project: Project,
    principal: Principal,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let authenticated = principal.is_authenticated();
    if !data.config().openapi {
        return Error::refused(ErrorKind::RootDisabled, "Root endpoint metadata is disabled").render(authenticated);
    }
    let schema = match data.schema(&project).await {
        Ok(s) => s,
        Err(e) => return e.render(authenticated),
    };
    let schema_name = match request_schema(&schema, &method, &headers) {
        Ok(s) => s,
        Err(e) => return e.render(authenticated),
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let base_path = uri.0.path().trim_end_matches('/');
    let doc = openapi::document(&schema, schema_name, host, if base_path.is_empty() { "/" } else { base_path });
    let mut res = doc.to_string().into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openapi+json; charset=utf-8"));
    res
}
