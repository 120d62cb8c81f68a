//! Lingering close for request bodies a service stopped reading.
//!
//! A request refused before its body was read (over the body limit, unauthenticated, a bad
//! upload) is answered at once, but the client may still be sending. Closing the connection
//! then loses the answer: the kernel resets a socket closed with unread data, and browsers'
//! `fetch` gives up when a write fails. So, like nginx's lingering close, the rest of such a
//! body is read and dropped in the background, for at most [`LINGER`] and while bytes keep
//! coming ([`IDLE`]), so the client finishes sending and reads the answer.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use http_body_util::BodyExt as _;
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};

/// The longest a refused body is read for after its request ended.
pub const LINGER: Duration = Duration::from_secs(10);
/// The longest gap between two pieces of a refused body while it is read.
pub const IDLE: Duration = Duration::from_secs(2);

/// Wraps a request's body so that, dropped unfinished, the rest is read in the background.
pub fn wrap(req: Request) -> Request {
    req.map(|body| Body::new(Lingering { inner: Some(body), finished: false }))
}

/// A request body that lingers when dropped unfinished.
struct Lingering {
    inner: Option<Body>,
    finished: bool,
}

impl HttpBody for Lingering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(inner).poll_frame(cx);
        // The end, or a broken connection: nothing to linger for.
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else { return };
        if self.finished || body.is_end_stream() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

/// Reads and drops what is left of `body`, within [`LINGER`] and [`IDLE`].
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(IDLE, body.frame()).await {}
    })
    .await;
}
