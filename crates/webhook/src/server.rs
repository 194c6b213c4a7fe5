//! The HTTPS server: TLS accept loop with connection limits, routing to the
//! admission and conversion handlers, certificate upkeep in the background,
//! graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use kube::Client;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::admission;
use crate::certs;
use crate::cluster::KubeCluster;
use crate::endpoints::{CONVERT_PATH, Kind};
use crate::idle::IdleTimeout;
use crate::inject::CertStore;
use crate::options::{ServeOptions, WebhookArgs};
use crate::policy::{Policy, Snapshot};
use crate::tls::{CertResolver, TlsSettings};
use crate::upkeep::{CertSync, InjectTargets};

/// Largest request body accepted: a review holds an object and its old copy,
/// each at most ~1.5 MiB in etcd.
const MAX_BODY: usize = 4 << 20;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often `--cert-dir` is re-read.
const RELOAD_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    TlsOptions(#[from] crate::tls::TlsOptionsError),
    #[error("building the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("webhook certificate: {0}")]
    Cert(#[from] certs::CertError),
    #[error("webhook certificate: {0}")]
    KeyPair(#[from] crate::tls::KeyPairError),
    #[error("webhook certificate: {0}")]
    Sync(#[from] crate::upkeep::SyncError),
    #[error("webhook server: {0}")]
    Io(std::io::Error),
    #[error("binding the webhook server to {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

struct App {
    policy: Policy,
    cluster: KubeCluster,
    mode: ferrolb_config::assemble::BgpMode,
}

/// Where the serving certificate comes from, and how it is kept fresh.
enum Upkeep {
    /// `--disable-cert-rotation`: re-read `--cert-dir` when it changes.
    Dir { dir: std::path::PathBuf, last: crate::tls::PemPair },
    /// Generated and shared through the certificate Secret; injected as caBundle.
    Rotate(Box<CertSync>),
}

/// Per-connection limits, from the flags.
#[derive(Clone, Copy)]
struct ConnLimits {
    http2: bool,
    header_read: Duration,
    idle: Duration,
}

/// A bound, ready webhook server (certificate loaded, port open).
pub struct WebhookServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: ConnLimits,
    slots: Arc<Semaphore>,
    app: Arc<App>,
    resolver: Arc<CertResolver>,
    settings: TlsSettings,
    upkeep: Upkeep,
}

impl WebhookServer {
    /// Loads or generates the certificate, injects the CA bundle (best effort)
    /// and binds the port. Handlers only become reachable once the
    /// certificate is ready, as in MetalLB.
    pub async fn bind(opts: ServeOptions, client: Client) -> Result<Self, ServeError> {
        let settings = opts.tls.settings()?;
        let provider = settings.provider().clone();
        let resolver = Arc::new(CertResolver::new());
        let args = &opts.args;

        let upkeep = if args.disable_cert_rotation {
            let pair = certs::read_dir(&args.cert_dir)?;
            resolver.set(pair.certified_key(&provider)?);
            Upkeep::Dir { dir: args.cert_dir.clone(), last: pair }
        } else {
            let mut sans = certs::service_dns_names(&args.cert_service_name, &opts.namespace);
            sans.extend(opts.extra_sans.iter().cloned());
            let store = CertStore {
                namespace: opts.namespace.clone(),
                secret_name: args.webhook_secret.clone(),
                sans,
            };
            let targets = InjectTargets {
                webhook_configuration: args.webhook_configuration_name.clone(),
                conversion_crd: args.conversion_crd_name.clone(),
            };
            let mut sync =
                CertSync::new(store, targets, opts.cert_timing, client.clone(), provider, resolver.clone());
            sync.start().await?;
            Upkeep::Rotate(Box::new(sync))
        };

        let server_config = settings.server_config(resolver.clone(), args.webhook_http2)?;
        let listener = TcpListener::bind(args.bind_address)
            .await
            .map_err(|source| ServeError::Bind { addr: args.bind_address, source })?;
        Ok(WebhookServer {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(server_config)),
            limits: ConnLimits::from(args),
            slots: Arc::new(Semaphore::new(args.max_connections as usize)),
            app: Arc::new(App {
                policy: Policy { namespace: opts.namespace.clone() },
                cluster: KubeCluster::new(client, opts.namespace.clone()),
                mode: opts.mode,
            }),
            resolver,
            settings,
            upkeep,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// PEM of the CA bundle injected as caBundle: the Secret's `ca.crt`
    /// (None with `--cert-dir`).
    pub fn ca_bundle(&self) -> Option<&str> {
        match &self.upkeep {
            Upkeep::Rotate(sync) => sync.ca_bundle(),
            Upkeep::Dir { .. } => None,
        }
    }

    /// Serves until `shutdown` resolves, then drains open connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let WebhookServer { listener, acceptor, limits, slots, app, resolver, settings, upkeep } = self;
        let upkeep_task = tokio::spawn(run_upkeep(upkeep, resolver, settings));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        tracing::info!(addr = %listener.local_addr()?, "webhook server listening");
        loop {
            // A slot is taken before accepting: at the limit, new clients wait
            // in the listen backlog instead of being accepted and starved.
            let slot = tokio::select! {
                _ = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(s) => s,
                    Err(_) => break, // the semaphore is never closed
                },
            };
            if slots.available_permits() == 0 {
                tracing::debug!("webhook connection limit reached; further clients wait");
            }
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _slot = slot;
                serve_connection(tcp, peer, acceptor, app, limits, watcher).await;
            });
        }
        drop(listener);
        upkeep_task.abort();
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
            tracing::warn!("webhook connections still open after {SHUTDOWN_GRACE:?}; closing");
        }
        Ok(())
    }
}

impl From<&WebhookArgs> for ConnLimits {
    fn from(args: &WebhookArgs) -> Self {
        ConnLimits { http2: args.webhook_http2, header_read: args.header_read_timeout, idle: args.idle_timeout }
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    limits: ConnLimits,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let io = IdleTimeout::new(tcp, limits.idle);
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "webhook TLS handshake timed out");
            return;
        }
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if !limits.http2 {
        builder = builder.http1_only();
    }
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let service = hyper::service::service_fn(move |req| handle(app.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
    }
}

async fn run_upkeep(upkeep: Upkeep, resolver: Arc<CertResolver>, settings: TlsSettings) {
    let provider = settings.provider().clone();
    match upkeep {
        Upkeep::Dir { dir, mut last } => loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            match certs::read_dir(&dir) {
                Ok(pair) if pair != last => match pair.certified_key(&provider) {
                    Ok(key) => {
                        resolver.set(key);
                        last = pair;
                        tracing::info!(dir = %dir.display(), "webhook certificate reloaded");
                    }
                    // Half-written files during a Secret update land here; the
                    // next round picks up the complete pair.
                    Err(e) => tracing::warn!(error = %e, "new webhook certificate not usable yet"),
                },
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook certificate directory not readable"),
            }
        },
        Upkeep::Rotate(sync) => sync.run().await,
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

fn text_response(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text.to_string())));
    *resp.status_mut() = status;
    resp
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let target = if path == CONVERT_PATH { Some(None) } else { Kind::from_path(&path).map(Some) };
    let Some(target) = target else {
        return Ok(text_response(StatusCode::NOT_FOUND, "not found\n"));
    };
    if req.method() != Method::POST {
        return Ok(text_response(StatusCode::METHOD_NOT_ALLOWED, "only POST is served here\n"));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(text_response(StatusCode::BAD_REQUEST, &format!("reading the body: {e}\n"))),
    };
    let out = match target {
        Some(kind) => admit(&app, kind, &body).await,
        None => crate::convert::handle(&body),
    };
    Ok(json_response(StatusCode::OK, out))
}

async fn admit(app: &App, kind: Kind, body: &[u8]) -> Vec<u8> {
    let review = match admission::decode(body, kind) {
        Ok((request, review)) => {
            let check = |s: &Snapshot| crate::check::check(s, app.mode, &app.policy.namespace);
            let verdict = app.policy.review(&app.cluster, check, &review).await;
            if verdict.allowed {
                tracing::debug!(kind = kind.name(), name = %review.name, op = ?review.op, "admitted");
            } else {
                tracing::info!(kind = kind.name(), name = %review.name, op = ?review.op,
                    reason = %verdict.message, "denied");
            }
            admission::respond(&request, verdict)
        }
        Err(invalid) => invalid.into_review(),
    };
    // Serialising these plain structs cannot fail; an empty body would make
    // the API server report a decoding error, which is the right outcome anyway.
    serde_json::to_vec(&review).unwrap_or_default()
}
