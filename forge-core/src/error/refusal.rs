//! The framework's own refusals, rendered in the service's shape.
//!
//! axum answers a query string or path that does not deserialize, a body over the limit or of
//! the wrong type, a method a route does not take and an unknown route itself, in plain text.
//! [`RefusalLayer`] turns each such answer into the error shape of the service that owns the
//! router, so a client sees one format for every bad input.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode, header};

use super::{ErrorCode, ForgeError, Problem, RenderedError, WireFormat};

/// The most of a refusal's text that is read (axum's are a line or two).
const MAX_TEXT: usize = 4096;

/// A layer that renders framework refusals in `format` (see the module doc). Responses a
/// renderer built, and every response below 400, pass unchanged.
#[derive(Debug, Clone, Copy)]
pub struct RefusalLayer {
    format: WireFormat,
}

impl RefusalLayer {
    /// Refusals answered in `format`.
    pub fn new(format: WireFormat) -> Self {
        Self { format }
    }
}

impl<S> tower::Layer<S> for RefusalLayer {
    type Service = Refusals<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Refusals { inner, format: self.format }
    }
}

/// The service of [`RefusalLayer`].
#[derive(Debug, Clone)]
pub struct Refusals<S> {
    inner: S,
    format: WireFormat,
}

impl<S> tower::Service<Request<Body>> for Refusals<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let format = self.format;
        let future = self.inner.call(req);
        Box::pin(async move {
            let res = future.await?;
            Ok(if is_framework_refusal(&res) { render_refusal(format, res).await } else { res })
        })
    }
}

/// An error status that no renderer built, with a plain-text or empty body.
fn is_framework_refusal(res: &Response) -> bool {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || res.extensions().get::<RenderedError>().is_some() {
        return false;
    }
    match res.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| v.starts_with("text/plain")),
    }
}

async fn render_refusal(format: WireFormat, res: Response) -> Response {
    let (parts, body) = res.into_parts();
    let status = parts.status;
    let bytes = axum::body::to_bytes(body, MAX_TEXT).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    if status.is_server_error() {
        // A route misconfigured against its extractors: the text is for the log only.
        return ForgeError::internal(format!("framework refusal {status}: {text}")).render(format, false);
    }
    // A body over the limit is the shared `payload_too_large` (its codes come from the one table).
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorCode::PayloadTooLarge.info().message.to_owned()
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("Bad request").to_owned()
    } else {
        text
    };
    let mut out = format.render(Problem::new(status, refusal_code(format, status), message));
    // Keep what the framework said beside the body (`Allow` on a 405, say).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH && !out.headers().contains_key(name) {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out.into_response()
}

/// The code each service gives a refusal of this status.
fn refusal_code(format: WireFormat, status: StatusCode) -> &'static str {
    let s = status.as_u16();
    match format {
        WireFormat::PostgRest => match s {
            404 => "PGRST125",
            405 => "PGRST117",
            413 | 415 | 422 => "PGRST102",
            _ => "PGRST100",
        },
        WireFormat::GoTrue => match s {
            404 => "not_found",
            413 => ErrorCode::PayloadTooLarge.info().gotrue,
            415 | 422 => "bad_json",
            _ => "validation_failed",
        },
        WireFormat::Storage | WireFormat::StorageVectors | WireFormat::Tus => match s {
            404 => "NotFound",
            413 => "EntityTooLarge",
            415 => "InvalidMimeType",
            _ => "InvalidRequest",
        },
        WireFormat::Iceberg => match s {
            404 => "NotFoundException",
            405 => "MethodNotAllowedException",
            413 => "RequestTooLargeException",
            _ => "BadRequestException",
        },
        WireFormat::Realtime | WireFormat::RealtimeSocket | WireFormat::Plain => match s {
            404 => "not_found",
            413 => "payload_too_large",
            _ => "bad_request",
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::extract::Query;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    #[derive(serde::Deserialize)]
    struct Page {
        #[allow(dead_code)]
        limit: u32,
    }

    async fn call(format: WireFormat, uri: &str, method: &str) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let app: Router =
            Router::new().route("/bucket", get(|_: Query<Page>| async { "ok" })).layer(RefusalLayer::new(format));
        let res = app
            .oneshot(Request::builder().method(method).uri(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.expect("body");
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn a_query_string_that_does_not_deserialize_is_answered_in_the_service_shape() {
        let (status, _, body) = call(WireFormat::Storage, "/bucket?limit=x", "GET").await;
        assert_eq!(status, 400);
        assert_eq!((body["statusCode"].as_str(), body["code"].as_str()), (Some("400"), Some("InvalidRequest")));
        assert!(body["message"].as_str().is_some_and(|m| m.contains("limit")), "{body}");

        let (status, _, body) = call(WireFormat::PostgRest, "/bucket?limit=x", "GET").await;
        assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("PGRST100")));
        let (_, headers, body) = call(WireFormat::GoTrue, "/bucket?limit=x", "GET").await;
        assert_eq!(body["error_code"], "validation_failed");
        assert_eq!(headers["x-sb-error-code"], "validation_failed");
    }

    #[tokio::test]
    async fn methods_and_routes_refused_by_the_router_keep_their_status_and_allow() {
        let (status, headers, body) = call(WireFormat::PostgRest, "/bucket?limit=1", "DELETE").await;
        assert_eq!((status.as_u16(), body["code"].as_str()), (405, Some("PGRST117")));
        assert!(headers.contains_key(header::ALLOW));
        let (status, _, body) = call(WireFormat::Iceberg, "/nowhere", "GET").await;
        assert_eq!((status.as_u16(), body["error"]["type"].as_str()), (404, Some("NotFoundException")));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_the_shared_payload_too_large() {
        let app: Router = Router::new()
            .route("/echo", axum::routing::post(|body: String| async move { body }))
            .layer(axum::extract::DefaultBodyLimit::max(4))
            .layer(RefusalLayer::new(WireFormat::GoTrue));
        let req = Request::builder().method("POST").uri("/echo").body(Body::from("0123456789")).expect("request");
        let res = app.oneshot(req).await.expect("response");
        assert_eq!(res.status(), 413);
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            (body["error_code"].as_str(), body["msg"].as_str()),
            (Some("validation_failed"), Some("Payload too large"))
        );
    }

    #[tokio::test]
    async fn answers_a_renderer_built_or_below_400_pass_unchanged() {
        let (status, _, _) = call(WireFormat::Storage, "/bucket?limit=1", "GET").await;
        assert_eq!(status, 200);
        let app: Router = Router::new()
            .route("/x", get(|| async { ForgeError::NotFound.render(WireFormat::Plain, false) }))
            .layer(RefusalLayer::new(WireFormat::Storage));
        let res = app.oneshot(Request::builder().uri("/x").body(Body::empty()).expect("request")).await.expect("res");
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["code"], "not_found", "the plain body stays");
    }
}
