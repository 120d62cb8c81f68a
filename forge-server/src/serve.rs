//! The connection loop: HTTP/1.1 over TCP (with upgrades, for websockets), with the limits a
//! public server needs. Cleartext HTTP/2 is not served: nothing in front of a browser needs
//! it, and it has no header or idle timeout to hold a silent connection to.
//!
//! - A connection has [`Limits::header_timeout`] to send a request's headers, counted from
//!   when it opens or its previous response ends: a client that sends nothing, stops in the
//!   middle of a request line or dribbles header lines is closed then, and so is an idle
//!   keep-alive connection.
//! - At most [`Limits::max_connections`] are served at once; further ones wait in the
//!   listen backlog (costing the server no file descriptor) until one closes.
//! - On shutdown the listener closes at once, connections finish their in-flight requests,
//!   and whatever is still running after the drain time is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tower::ServiceExt as _;

/// The limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a connection may take to send a request's headers, from when it opens or its
    /// previous response ends.
    pub header_timeout: Duration,
    /// The most connections served at once.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after the shutdown signal.
    pub drain: Duration,
}

/// Serves `app` until `shutdown` resolves, then stops accepting connections and lets
/// in-flight requests finish, for at most `limits.drain` before giving up on them.
pub async fn serve_app(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    // `/rest/v1/` is `/rest/v1`: trailing slashes go before routing.
    let app = tower::Layer::layer(&tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash(), app);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(());
    // Each connection holds a sender: all are gone once every connection has closed.
    let (open_tx, mut open_rx) = mpsc::channel::<Infallible>(1);
    tokio::pin!(shutdown);
    loop {
        // A free slot first: past the limit, connections wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY, the last segment of a streamed body can wait out the client's
        // delayed ACK (about 40 ms) behind Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // The peer address is what auth's per-client rate limits key on (unless a proxy
        // header is configured).
        let service = app.clone().map_request(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let (mut stop, open) = (stop_rx.clone(), open_tx.clone());
        tokio::spawn(async move {
            let (_slot, _open) = (slot, open);
            serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service), peer, limits, &mut stop).await;
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    drop(stop_tx);
    drop(open_tx);
    if tokio::time::timeout(limits.drain, open_rx.recv()).await.is_err() {
        tracing::warn!("requests still running after {:?}; stopping anyway", limits.drain);
    }
    Ok(())
}

/// Serves one connection until it closes, or until `stop` says to finish the request in
/// flight and close.
async fn serve_connection<S>(
    io: TokioIo<tokio::net::TcpStream>,
    service: TowerToHyperService<S>,
    peer: SocketAddr,
    limits: Limits,
    stop: &mut watch::Receiver<()>,
) where
    S: tower::Service<http::Request<Incoming>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The timer starts as soon as the connection is ready for a request: a client that sends
    // nothing at all is closed too.
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let served = tokio::select! {
        served = conn.as_mut() => served,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = served {
        tracing::trace!(%peer, error = %e, "connection ended with an error");
    }
}

/// Waits out an accept error: a connection that failed before it was accepted is nothing;
/// anything else (out of file descriptors) is logged and retried after a second, as hyper
/// does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Serves `app` on a free port; the sender triggers shutdown.
    async fn spawn(
        app: axum::Router,
        drain: Duration,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stop_rx.await;
        };
        let limits = Limits { header_timeout: Duration::from_secs(30), max_connections: 100, drain };
        (addr, stop_tx, tokio::spawn(serve_app(listener, app, shutdown, limits)))
    }

    async fn send(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        stream
    }

    #[tokio::test]
    async fn shutdown_drains_in_flight_requests_and_refuses_new_ones() {
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            "done"
        };
        let (addr, stop, server) = spawn(axum::Router::new().route("/slow", get(slow)), Duration::from_secs(10)).await;
        let in_flight = tokio::spawn(async move {
            let mut response = String::new();
            send(addr, "/slow").await.read_to_string(&mut response).await.expect("read");
            response
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        stop.send(()).expect("signal shutdown");
        tokio::time::sleep(Duration::from_millis(100)).await;

        // The listener is closed: new connections are refused while the old request finishes.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections after shutdown");
        let response = in_flight.await.expect("join");
        assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("done"), "{response}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops")
            .expect("join")
            .expect("serve");
    }

    #[tokio::test]
    async fn a_request_that_never_finishes_does_not_block_shutdown_forever() {
        let app = axum::Router::new().route("/hang", get(std::future::pending::<&'static str>));
        let (addr, stop, server) = spawn(app, Duration::from_millis(300)).await;
        let _hanging = send(addr, "/hang").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).expect("signal shutdown");
        let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
        stopped.expect("gave up after the drain time").expect("join").expect("serve");
    }
}
