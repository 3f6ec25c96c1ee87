//! The accept loop both listeners run: plain TCP or TLS, HTTP/1.1 with upgrades (WebSocket), and
//! a graceful stop that lets in-flight requests finish.
//!
//! Ours rather than `warp::serve` because warp 0.4's acceptor trait is private and its TLS is
//! gone, so a TLS stream cannot be handed to it. This is the same hyper-util connection builder
//! warp's own loop uses, with one addition: the peer address is put in the request as
//! [`PeerAddr`], which the filters read with [`peer`].

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use warp::Filter;

/// A TLS handshake that takes longer than this is given up: it holds a task and a socket.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TCP peer of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The connection's peer address, as `warp::addr::remote()` would give it.
pub fn peer(
) -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<PeerAddr>().map(|p: Option<PeerAddr>| p.map(|p| p.0))
}

/// Serves `filter` on `listener` (through `tls` when given) until `stop` turns true, then stops
/// accepting and waits for the connections' in-flight requests. Upgraded connections (sockets)
/// are not waited for: they see the same signal and close themselves.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) where
    F: Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let service = warp::service(filter.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(PeerAddr(addr));
            let mut service = service.clone();
            tower_service::Service::call(&mut service, request)
        });
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(tcp, service, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => connection(stream, service, watcher).await,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn connection<IO, S, B>(io: IO, service: S, watcher: hyper_util::server::graceful::Watcher)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Accept errors that concern one connection are ignored; others (out of file descriptors) are
/// logged and the loop waits a moment, so it does not spin while the process is at its limit.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
}
