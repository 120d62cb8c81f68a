//! The Prometheus side: request counters, egress and latency histograms kept by the meter,
//! database pool use read at each scrape, and the `/metrics` route.
//!
//! Series: `forge_http_requests_total{project,service,status_class}`,
//! `forge_http_egress_bytes_total{project,service}`,
//! `forge_http_request_duration_seconds{service}` (a histogram of the time to the response
//! head; no project label, to bound cardinality), `forge_db_pool_connections{project,state}`
//! with state `in_use` or `idle`, and `forge_db_pool_max_connections{project}`.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::digest;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use forge_core::ProjectRef;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric as _, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::{Meter, ServiceKind, StatusClass};

/// One database pool's use, as the pool source reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUse {
    /// The project whose pool it is.
    pub reference: ProjectRef,
    /// Connections open (in use and idle).
    pub size: u32,
    /// Connections open and idle.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Reports every pool's use; called at each scrape of `/metrics`, so it should be quick (for
/// sqlx, `pool.size()`, `pool.num_idle()` and `pool.options().get_max_connections()`).
pub type PoolSource = Arc<dyn Fn() -> Vec<PoolUse> + Send + Sync>;

/// Latency buckets, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A project ref as a label value, without copying its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ProjectLabel(ProjectRef);

impl EncodeLabelValue for ProjectLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.0.as_str())
    }
}

impl EncodeLabelValue for ServiceKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    project: ProjectLabel,
    service: ServiceKind,
    status_class: StatusClass,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EgressLabels {
    project: ProjectLabel,
    service: ServiceKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabels {
    service: ServiceKind,
}

type SharedSource = Arc<RwLock<Option<PoolSource>>>;

/// The meter's Prometheus registry and the handles it updates.
pub(super) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    egress: Family<EgressLabels, Counter>,
    latency: Family<ServiceLabels, Histogram, fn() -> Histogram>,
    pool_source: SharedSource,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let egress = Family::<EgressLabels, Counter>::default();
        let latency = Family::<ServiceLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let pool_source = SharedSource::default();
        registry.register(
            "forge_http_requests",
            "HTTP requests answered, by project, service and status class",
            requests.clone(),
        );
        registry.register(
            "forge_http_egress_bytes",
            "Response body bytes sent, by project and service",
            egress.clone(),
        );
        registry.register(
            "forge_http_request_duration_seconds",
            "Time from request to response head, by service",
            latency.clone(),
        );
        registry.register_collector(Box::new(PoolCollector(pool_source.clone())));
        Self { registry, requests, egress, latency, pool_source }
    }

    pub(super) fn count_request(&self, reference: &ProjectRef, service: ServiceKind, status_class: StatusClass) {
        let labels = RequestLabels { project: ProjectLabel(reference.clone()), service, status_class };
        self.requests.get_or_create(&labels).inc();
    }

    pub(super) fn count_egress(&self, reference: &ProjectRef, service: ServiceKind, bytes: u64) {
        let labels = EgressLabels { project: ProjectLabel(reference.clone()), service };
        self.egress.get_or_create(&labels).inc_by(bytes);
    }

    pub(super) fn observe_latency(&self, service: ServiceKind, elapsed: Duration) {
        self.latency.get_or_create(&ServiceLabels { service }).observe(elapsed.as_secs_f64());
    }

    pub(super) fn set_pool_source(&self, source: PoolSource) {
        *self.pool_source.write().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    pub(super) fn forget(&self, reference: &ProjectRef) {
        let project = ProjectLabel(reference.clone());
        for service in ServiceKind::ALL {
            for status_class in StatusClass::ALL {
                self.requests.remove(&RequestLabels { project: project.clone(), service, status_class });
            }
            self.egress.remove(&EgressLabels { project: project.clone(), service });
        }
    }

    pub(super) fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String only fails if a metric's encoder does, and ours do not.
        if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding the metrics failed");
        }
        text
    }
}

/// Reads pool use from the pool source at each scrape.
struct PoolCollector(SharedSource);

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCollector").finish_non_exhaustive()
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let source = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(source) = source else { return Ok(()) };
        let pools = source();
        {
            let mut metric = encoder.encode_descriptor(
                "forge_db_pool_connections",
                "Database pool connections open, by project and state (in_use, idle)",
                None,
                MetricType::Gauge,
            )?;
            for pool in &pools {
                for (state, value) in [("in_use", pool.size.saturating_sub(pool.idle)), ("idle", pool.idle)] {
                    let labels = [("project", pool.reference.as_str()), ("state", state)];
                    ConstGauge::new(i64::from(value)).encode(metric.encode_family(&labels)?)?;
                }
            }
        }
        let mut metric = encoder.encode_descriptor(
            "forge_db_pool_max_connections",
            "The most connections each project's database pool opens",
            None,
            MetricType::Gauge,
        )?;
        for pool in &pools {
            let labels = [("project", pool.reference.as_str())];
            ConstGauge::new(i64::from(pool.max)).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// `GET /metrics` in the Prometheus text format. With a `token`, requests must carry
/// `Authorization: Bearer <token>` (compared in constant time) or get a 401; without one,
/// serve it on an address only the scraper reaches.
pub fn metrics_router<S>(meter: Meter, token: Option<SecretString>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let expected = token.map(|t| Arc::new(digest::digest(&digest::SHA256, t.expose_secret().as_bytes())));
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| async move {
            if let Some(expected) = &expected
                && !bearer_matches(&headers, expected)
            {
                return unauthorized();
            }
            let content_type = HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE);
            ([(header::CONTENT_TYPE, content_type)], meter.render_metrics()).into_response()
        }),
    )
}

/// Whether the request's bearer token is the expected one. Both sides are hashed first, so
/// the comparison takes the same time whatever the token's length or content.
fn bearer_matches(headers: &HeaderMap, expected: &digest::Digest) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let given = digest::digest(&digest::SHA256, token.trim().as_bytes());
    given.as_ref().ct_eq(expected.as_ref()).into()
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a bearer token is required\n").into_response()
}
