//! Plain-HTTP endpoints: `/metrics` on the metrics port, `/healthz` and
//! `/readyz` on the health port.
//!
//! Deviation from MetalLB: metrics are served over plain HTTP without
//! TokenReview/SubjectAccessReview (docs/controller.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::ControllerError;
use crate::metrics::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a listener answers.
#[derive(Clone)]
pub enum Endpoints {
    Metrics(Metrics),
    Health,
}

/// Binds now (so a port conflict fails start-up) and returns the bound
/// address and the serving future.
pub async fn bind(
    what: &'static str,
    addr: SocketAddr,
    endpoints: Endpoints,
) -> Result<(SocketAddr, impl Future<Output = ()> + Send + 'static), ControllerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ControllerError::Bind { what, addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ControllerError::Bind { what, addr, source })?;
    Ok((local, serve(listener, Arc::new(endpoints))))
}

async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>) {
    // Connections live in a JoinSet so they end when the server future is dropped.
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "accepting HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let endpoints = endpoints.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(answer(&endpoints, &req)) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%error, %peer, "HTTP connection ended with an error");
            }
        });
    }
}

fn answer(endpoints: &Endpoints, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match (endpoints, req.uri().path()) {
        (Endpoints::Metrics(m), "/metrics") => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, OPENMETRICS)
            .body(Full::new(Bytes::from(m.encode())))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n")),
        (Endpoints::Health, "/healthz" | "/readyz") => plain(StatusCode::OK, "ok"),
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let m = Metrics::new();
        m.config_loaded.set(1);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (maddr, mserve) = bind("metrics", any, Endpoints::Metrics(m)).await.unwrap();
        let (haddr, hserve) = bind("health", any, Endpoints::Health).await.unwrap();
        let t1 = tokio::spawn(mserve);
        let t2 = tokio::spawn(hserve);
        let body = get(maddr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("metallb_k8s_client_config_loaded_bool 1"));
        assert!(get(haddr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(haddr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get(haddr, "/metrics").await.starts_with("HTTP/1.1 404"));
        t1.abort();
        t2.abort();
    }

    #[tokio::test]
    async fn port_conflict_is_an_error() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addr, _serve) = bind("health", any, Endpoints::Health).await.unwrap();
        let err = bind("health", addr, Endpoints::Health).await.err().unwrap();
        assert!(err.to_string().contains("binding health endpoint"), "{err}");
    }
}
