//! [`UsageLayer`]: counts each response of a project-scoped router.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use forge_core::{Project, ProjectRef};
use http::Request;
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use tower::{Layer, Service};

use super::{Meter, ServiceKind, StatusClass};

/// A long body's bytes go to the meter at least this often, so a download spanning an hour
/// (or a crash) is counted close to when it was sent rather than all at its end.
const EGRESS_REPORT_BYTES: u64 = 1 << 20;

/// Meters every response: install it inside `ProjectLayer` (which must have put the
/// [`Project`] into the request's extensions and stripped any `/p/{ref}` prefix).
#[derive(Debug, Clone)]
pub struct UsageLayer {
    meter: Meter,
}

impl UsageLayer {
    /// A layer counting into `meter`.
    pub fn new(meter: Meter) -> Self {
        Self { meter }
    }
}

impl<S> Layer<S> for UsageLayer {
    type Service = UsageService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        UsageService { inner, meter: self.meter.clone() }
    }
}

/// The service made by [`UsageLayer`].
#[derive(Debug, Clone)]
pub struct UsageService<S> {
    inner: S,
    meter: Meter,
}

impl<S, B> Service<Request<B>> for UsageService<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = UsageFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let service = ServiceKind::for_path(req.uri().path());
        let reference = req.extensions().get::<Project>().map(|p| p.reference().clone());
        let started = Instant::now();
        let meter = self.meter.clone();
        let response = self.inner.call(req);
        UsageFuture(Box::pin(async move {
            let response = response.await?;
            meter.observe_latency(service, started.elapsed());
            let Some(reference) = reference else { return Ok(response) };
            meter.count_request(&reference, service, StatusClass::of(response.status()));
            if response.body().is_end_stream() {
                return Ok(response); // no bytes to count
            }
            Ok(response.map(|body| Body::new(MeteredBody { inner: body, meter, reference, service, unreported: 0 })))
        }))
    }
}

/// The future of [`UsageService`].
pub struct UsageFuture<E>(Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>);

impl<E> std::fmt::Debug for UsageFuture<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageFuture").finish_non_exhaustive()
    }
}

impl<E> Future for UsageFuture<E> {
    type Output = Result<Response, E>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// A response body that counts its data bytes as they are polled out, reporting them to the
/// meter every [`EGRESS_REPORT_BYTES`] and when dropped (finished or cut short).
pub(super) struct MeteredBody {
    inner: Body,
    meter: Meter,
    reference: ProjectRef,
    service: ServiceKind,
    unreported: u64,
}

impl std::fmt::Debug for MeteredBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredBody")
            .field("reference", &self.reference)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl MeteredBody {
    fn report(&mut self) {
        let bytes = std::mem::take(&mut self.unreported);
        if bytes > 0 {
            self.meter.count_egress(&self.reference, self.service, bytes);
        }
    }
}

impl HttpBody for MeteredBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.unreported += data.len() as u64;
            if this.unreported >= EGRESS_REPORT_BYTES {
                this.report();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        self.report();
    }
}
