//! The HTTP/1.1 connection loop: axum's router behind hyper with a timer, so a client that
//! opens a connection and then sends its request headers slowly, or keeps an idle
//! keep-alive connection open, is cut off instead of holding one of the listener's
//! connection places for ever (`axum::serve` runs hyper without a timer, so it has no such
//! limit).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::api::listener::ApiListener;

/// Serves `app` on the connections `listener` accepts until `shutdown` fires, then lets the
/// requests in flight finish (each connection closes after its current response) and
/// returns once every connection has closed, or after [`DRAIN_TIMEOUT`] (the connections
/// still open are then dropped with the process). A client gets `header_timeout` to send each
/// request's headers, counted from when its connection is ready for a request (so it also
/// bounds how long a keep-alive connection may sit idle).
pub async fn serve(
    mut listener: ApiListener,
    app: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    // Each connection task holds a receiver; `closed()` resolves when the last one is gone.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let stream = tokio::select! {
            stream = listener.next() => stream,
            () = shutdown.cancelled() => break,
        };
        let peer = ConnectInfo(stream.peer().clone());
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // What `into_make_service_with_connect_info` would add: who is calling.
            request.extensions_mut().insert(peer.clone());
            // A Router is always ready, so `call` needs no `poll_ready` first.
            let response = app.clone().call(request);
            async move { Ok::<_, Infallible>(response.await.unwrap_or_else(|e| match e {})) }
        });
        let (shutdown, open) = (shutdown.clone(), open_rx.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(result),
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await);
                }
            }
            drop(open);
        });
    }
    drop(open_rx);
    if tokio::time::timeout(DRAIN_TIMEOUT, open_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = open_tx.receiver_count(),
            "HTTP connections still busy {} s after shutdown began: closing them",
            DRAIN_TIMEOUT.as_secs()
        );
    }
}

/// How long requests in flight get to finish once the node shuts down.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!("HTTP connection ended: {e}");
    }
}
