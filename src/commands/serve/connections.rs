//! Connections: at most `--max-connections` at once (the others get a 503
//! and are closed), hyper's header read timeout (which also closes a
//! kept-alive connection left idle), and a graceful drain: on the shutdown
//! signal the listener closes, requests in flight are answered, then each
//! connection closes.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::errors::raw_response;
use crate::settings::ServeLimits;

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => accept(stream, &app, &slots, &graceful, limits.read_timeout),
                Err(err) => {
                    // Out of file descriptors, say: let some close.
                    eprintln!("warning: cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves one connection if a slot is free, else refuses it.
fn accept(
    stream: TcpStream,
    app: &Router,
    slots: &Arc<Semaphore>,
    graceful: &GracefulShutdown,
    read_timeout: Duration,
) {
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        tokio::spawn(refuse(stream));
        return;
    };
    let _ = stream.set_nodelay(true);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        // A client that vanishes or times out ends only its connection.
        let _ = connection.await;
        drop(slot);
    });
}

/// A 503 for a connection over the limit, then close it. The request's
/// first bytes are read first (briefly): closing with them unread would
/// reset the connection and lose the answer.
async fn refuse(mut stream: TcpStream) {
    let mut request = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut request)).await;
    let answer = raw_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many connections: try again shortly",
    );
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}
