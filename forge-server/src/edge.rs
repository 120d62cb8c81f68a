//! The edge every request passes: request id, tracing (with credentials redacted), CORS with
//! the Supabase header lists, body-size limit and timeout, and error bodies in the wire shape
//! of the service asked.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use forge_core::{ForgeError, LongRequest, WireFormat};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;

/// Request headers browsers may send (SUPABASE-WIRE.md §A, plus TUS and tracing headers).
pub const ALLOWED_HEADERS: &[&str] = &[
    "apikey",
    "authorization",
    "x-client-info",
    "content-type",
    "accept",
    "accept-language",
    "content-language",
    "accept-profile",
    "content-profile",
    "prefer",
    "range",
    "x-supabase-api-version",
    "x-upsert",
    "x-metadata",
    "cache-control",
    "x-retry-count",
    "x-region",
    "x-request-id",
    "traceparent",
    "tracestate",
    "baggage",
    "tus-resumable",
    "upload-length",
    "upload-metadata",
    "upload-offset",
    "upload-defer-length",
    "upload-concat",
    "x-http-method-override",
    // The signed variant of resumable uploads carries its token here.
    "x-signature",
];

/// Response headers browsers may read (SUPABASE-WIRE.md §A and G.20).
pub const EXPOSED_HEADERS: &[&str] = &[
    "content-range",
    "x-total-count",
    "link",
    "x-supabase-api-version",
    "location",
    "preference-applied",
    "proxy-status",
    "content-location",
    "content-encoding",
    "range-unit",
    "x-request-id",
    "x-sb-error-code",
    "tus-resumable",
    "upload-offset",
    "upload-length",
    "upload-expires",
    // What an image render did (forge-storage's renders).
    "x-transformations",
];

const SENSITIVE: &[HeaderName] = &[header::AUTHORIZATION, header::COOKIE, header::SET_COOKIE];

/// Wraps `router` in the edge layers.
pub fn layer(router: Router, config: &Config) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let sensitive: Arc<[HeaderName]> = SENSITIVE.iter().cloned().chain([HeaderName::from_static("apikey")]).collect();
    let limit = config.body_limit;
    let timeout = Duration::from_secs(config.request_timeout);
    let upload = Duration::from_secs(config.upload_timeout);
    // The first layer added is the innermost. Error shaping wraps the limit and timeout layers
    // (to reshape their bare responses) and sits inside CORS (so shaped errors carry CORS).
    let body_limit = usize::try_from(config.body_limit).unwrap_or(usize::MAX);
    router
        // What a handler reads whole (a JSON body) may be as large as what the edge lets in:
        // axum's own default would cut it at 2 MiB. A service that wants less says so on its
        // routes (the vector routes do).
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        // Outside the limit: a body cut off there (or refused unread) is still read to its
        // end in the background, so that the client sees the answer.
        .layer(tower::util::MapRequestLayer::new(crate::linger::wrap))
        .layer(middleware::from_fn(move |req: Request, next: Next| deadline(req, next, timeout, upload)))
        .layer(middleware::from_fn(move |req: Request, next: Next| shape_errors(req, next, limit)))
        .layer(cors(config))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

fn cors(config: &Config) -> CorsLayer {
    let methods =
        [Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE, Method::OPTIONS, Method::HEAD];
    let headers: Vec<HeaderName> = ALLOWED_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect();
    let exposed: Vec<HeaderName> = EXPOSED_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect();
    let layer = CorsLayer::new()
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers(exposed)
        .max_age(Duration::from_secs(86_400));
    if config.cors_origins.is_empty() {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let origins: Vec<HeaderValue> =
            config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        layer.allow_origin(origins).allow_credentials(true)
    }
}

/// Answers 504 when a request's response is not ready in `timeout`. A route that streams an
/// object's bytes (forge-storage's uploads) marks its request ([`LongRequest`]) and is held to
/// `upload` instead: such bodies may take longer to arrive, and forge-storage also cuts them
/// off after 30 s without a byte.
async fn deadline(mut req: Request, next: Next, timeout: Duration, upload: Duration) -> Response {
    let long = LongRequest::default();
    req.extensions_mut().insert(long.clone());
    let run = next.run(req);
    tokio::pin!(run);
    let res = match tokio::time::timeout(timeout, &mut run).await {
        Ok(res) => return res,
        Err(_) if long.allowed() => tokio::time::timeout(upload.saturating_sub(timeout), run).await,
        Err(elapsed) => Err(elapsed),
    };
    res.unwrap_or_else(|_| StatusCode::GATEWAY_TIMEOUT.into_response())
}

/// Turns the bare 413 and 504 responses of the limit and timeout layers into errors in the
/// wire shape of the service the path names.
async fn shape_errors(req: Request, next: Next, limit: u64) -> Response {
    let format = WireFormat::for_path(service_path(req.uri().path()));
    let res = next.run(req).await;
    let is_json =
        res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    // TUS answers are plain text on purpose (Supabase's resumable uploads do so).
    if is_json || res.headers().contains_key("tus-resumable") {
        return res;
    }
    match res.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ForgeError::PayloadTooLarge { limit }.render(format, false),
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => ForgeError::Timeout.render(format, false),
        _ => res,
    }
}

/// The path without a `/p/{ref}` prefix.
fn service_path(path: &str) -> &str {
    match path.strip_prefix("/p/") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use axum::routing::{get, post};
    use tower::ServiceExt as _;

    fn app(config: &Config) -> Router {
        let router = Router::new()
            .route("/rest/v1/slow", get(|| tokio::time::sleep(Duration::from_secs(5))))
            .route("/storage/v1/slow", get(|| tokio::time::sleep(Duration::from_secs(5))))
            .route(
                "/storage/v1/object/stuck/{*path}",
                post(|| tokio::time::sleep(Duration::from_secs(10))).layer(middleware::from_fn(LongRequest::mark)),
            )
            .route(
                "/storage/v1/object/{bucket}/{*path}",
                post(|| async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    "stored"
                })
                .layer(middleware::from_fn(LongRequest::mark)),
            )
            .route(
                "/storage/v1/object/list/{bucket}",
                post(|| async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    "listed"
                }),
            )
            .route("/rest/v1/echo", post(|body: Bytes| async move { body.len().to_string() }))
            .route(
                "/storage/v1/upload/resumable",
                post(|| async { (StatusCode::PAYLOAD_TOO_LARGE, [("tus-resumable", "1.0.0")], "too large") }),
            );
        layer(router, config)
    }

    async fn json(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn timeouts_answer_in_the_service_shape() {
        let config = Config { request_timeout: 1, ..Config::default() };
        let res =
            app(&config).oneshot(Request::get("/rest/v1/slow").body(Body::empty()).expect("req")).await.expect("ok");
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(json(res).await["code"], "PGRST003");
        let res =
            app(&config).oneshot(Request::get("/storage/v1/slow").body(Body::empty()).expect("req")).await.expect("ok");
        assert_eq!(json(res).await["statusCode"], "504");
    }

    #[tokio::test]
    async fn marked_routes_outlast_the_request_timeout_up_to_the_upload_deadline() {
        let config = Config { request_timeout: 1, upload_timeout: 3, ..Config::default() };
        let send = |uri: &str| Request::post(uri).body(Body::empty()).expect("req");
        let res = app(&config).oneshot(send("/storage/v1/object/public/big.bin")).await.expect("ok");
        assert_eq!(res.status(), StatusCode::OK, "a marked route may take longer");
        let res = app(&config).oneshot(send("/storage/v1/object/list/docs")).await.expect("ok");
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT, "an unmarked route keeps the timeout");
        let res = app(&config).oneshot(send("/storage/v1/object/stuck/forever.bin")).await.expect("ok");
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT, "the upload deadline still holds");
        assert_eq!(json(res).await["statusCode"], "504");
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_cut_off_while_streaming() {
        let config = Config { body_limit: 1000, ..Config::default() };
        // No Content-Length: the limit can only be enforced as the bytes arrive.
        let chunks = futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 100]))));
        let req = Request::post("/rest/v1/echo").body(Body::from_stream(chunks)).expect("req");
        let res = app(&config).oneshot(req).await.expect("ok");
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json(res).await["code"], "PGRST102");
        // Under the limit, the body arrives whole.
        let req = Request::post("/rest/v1/echo").body(Body::from(vec![b'x'; 900])).expect("req");
        let res = app(&config).oneshot(req).await.expect("ok");
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn resumable_upload_answers_keep_their_plain_text() {
        let res = app(&Config::default())
            .oneshot(Request::post("/storage/v1/upload/resumable").body(Body::empty()).expect("req"))
            .await
            .expect("ok");
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
        assert_eq!(&body[..], b"too large");
    }

    #[test]
    fn service_paths_ignore_the_project_prefix() {
        assert_eq!(service_path("/p/abc/rest/v1/x"), "/rest/v1/x");
        assert_eq!(service_path("/p/abc"), "/");
        assert_eq!(service_path("/auth/v1/token"), "/auth/v1/token");
    }
}
