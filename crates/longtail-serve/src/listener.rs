//! The accept loop: hyper with a timer, so a client that trickles its headers (slow loris) or
//! holds an idle keep-alive socket is cut off after `header_read_timeout_seconds`; at most
//! `max_connections` sockets at once (more wait in the kernel's backlog); graceful shutdown
//! that finishes the requests in flight and closes the rest at a deadline.
//!
//! `axum::serve` builds hyper without a timer, which silently turns hyper's header-read
//! timeout off, and has no connection cap: hence this loop. HTTP/1.1 only: hyper's
//! version-sniffing builder waits for a first byte with no timeout, so a socket that sends
//! nothing would be held forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How the loop treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// After shutdown is asked, requests in flight get this long before their sockets close.
    pub shutdown_grace: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // A place first, then a socket: past the cap, new clients wait in the backlog instead
        // of taking memory and descriptors here.
        let place = tokio::select! {
            p = places.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("longtail serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(place);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            eprintln!(
                "longtail serve: connections still open after {:?}; closing them",
                limits.shutdown_grace
            );
        }
    }
}
