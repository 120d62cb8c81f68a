//! A request's leave to outlast the request timeout.
//!
//! An edge that times requests out puts a [`LongRequest`] in each request's extensions; a route
//! that streams a large body (an upload) raises it, and the edge then holds the request to its
//! longer upload deadline instead. The route decides, not the path's spelling, so any bucket
//! or object name gets the same treatment.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The flag; clones share it.
#[derive(Debug, Clone, Default)]
pub struct LongRequest(Arc<AtomicBool>);

impl LongRequest {
    /// Marks the request as one that may take until the upload deadline.
    pub fn allow(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a route marked the request.
    pub fn allowed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Middleware for routes that stream large bodies: marks the request when an edge put a
    /// flag in it (and does nothing otherwise).
    pub async fn mark(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
        if let Some(flag) = req.extensions().get::<LongRequest>() {
            flag.allow();
        }
        next.run(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let flag = LongRequest::default();
        assert!(!flag.allowed());
        flag.clone().allow();
        assert!(flag.allowed());
    }
}
