//! Plain-HTTP endpoints: `/metrics` on the metrics listener, `/healthz`
//! (liveness) and `/readyz` (readiness) on the health listener. The process
//! registers what "live" and "ready" mean through [`Health`].
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
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::Error;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A health predicate, asked on every probe; it must not block.
pub type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// The text served on `/metrics` (OpenMetrics), produced on every scrape.
pub type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

/// What `/healthz` and `/readyz` answer: 200 `ok` while the predicate holds
/// (or when none is registered), 503 otherwise.
#[derive(Clone, Default)]
pub struct Health {
    live: Option<Check>,
    ready: Option<Check>,
}

impl Health {
    /// Both probes always succeed.
    pub fn new() -> Self {
        Health::default()
    }

    /// `/healthz` answers 503 while `check` returns false (the kubelet
    /// restarts the container).
    pub fn liveness(mut self, check: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.live = Some(Arc::new(check));
        self
    }

    /// `/readyz` answers 503 while `check` returns false.
    pub fn readiness(mut self, check: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.ready = Some(Arc::new(check));
        self
    }

    fn holds(check: &Option<Check>) -> bool {
        check.as_ref().is_none_or(|c| c())
    }
}

/// What a listener answers.
#[derive(Clone)]
pub enum Endpoints {
    /// `/metrics` with the text the function returns.
    Metrics(MetricsText),
    /// `/healthz` and `/readyz`.
    Health(Health),
}

impl Endpoints {
    /// `/metrics` serving the families of `registry`.
    pub fn registry(registry: Arc<Registry>) -> Self {
        Endpoints::Metrics(Arc::new(move || encode(&registry)))
    }
}

/// OpenMetrics text of every family in `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an error here would be a bug in
    // the encoder, and an empty body is the safe answer.
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// Binds now (so a port conflict fails start-up) and returns the bound
/// address and the serving future, which runs until dropped.
pub async fn bind(
    what: &'static str,
    addr: SocketAddr,
    endpoints: Endpoints,
) -> Result<(SocketAddr, impl Future<Output = ()> + Send + 'static), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { what, addr, source })?;
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
        (Endpoints::Metrics(text), "/metrics") => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, OPENMETRICS)
            .body(Full::new(Bytes::from(text())))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n")),
        (Endpoints::Health(h), "/healthz") => probe(Health::holds(&h.live)),
        (Endpoints::Health(h), "/readyz") => probe(Health::holds(&h.ready)),
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn probe(ok: bool) -> Response<Full<Bytes>> {
    if ok {
        plain(StatusCode::OK, "ok")
    } else {
        plain(StatusCode::SERVICE_UNAVAILABLE, "not ok\n")
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
    use std::sync::atomic::{AtomicBool, Ordering};

    use prometheus_client::metrics::gauge::Gauge;
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
        let mut registry = Registry::default();
        let g = Gauge::<i64>::default();
        registry.register("metallb_k8s_client_config_loaded_bool", "loaded", g.clone());
        g.set(1);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (maddr, mserve) = bind("metrics", any, Endpoints::registry(Arc::new(registry))).await.unwrap();
        let (haddr, hserve) = bind("health", any, Endpoints::Health(Health::new())).await.unwrap();
        let t1 = tokio::spawn(mserve);
        let t2 = tokio::spawn(hserve);
        let body = get(maddr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("metallb_k8s_client_config_loaded_bool 1"));
        assert!(get(haddr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(haddr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get(haddr, "/metrics").await.starts_with("HTTP/1.1 404"));
        assert!(get(maddr, "/healthz").await.starts_with("HTTP/1.1 404"));
        t1.abort();
        t2.abort();
    }

    #[tokio::test]
    async fn registered_checks_decide_the_probes() {
        let ready = Arc::new(AtomicBool::new(false));
        let r = ready.clone();
        let health = Health::new()
            .readiness(move || r.load(Ordering::Relaxed))
            .liveness(|| true);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addr, serve) = bind("health", any, Endpoints::Health(health)).await.unwrap();
        let t = tokio::spawn(serve);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        ready.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        t.abort();
    }

    #[tokio::test]
    async fn port_conflict_is_an_error() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addr, _serve) = bind("health", any, Endpoints::Health(Health::new())).await.unwrap();
        let err = bind("health", addr, Endpoints::Health(Health::new())).await.err().unwrap();
        assert!(err.to_string().contains("binding health endpoint"), "{err}");
    }
}
