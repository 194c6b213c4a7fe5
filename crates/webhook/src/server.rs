//! The HTTPS server: TLS accept loop, routing to the admission and conversion
//! handlers, certificate upkeep in the background, graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use kube::Client;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission;
use crate::certs::{self, RENEW_BEFORE};
use crate::cluster::KubeCluster;
use crate::endpoints::{CONVERT_PATH, Kind};
use crate::inject::{self, CertStore};
use crate::options::ServeOptions;
use crate::policy::{Policy, Snapshot};
use crate::tls::{CertResolver, TlsSettings};

/// Largest request body accepted: a review holds an object and its old copy,
/// each at most ~1.5 MiB in etcd.
const MAX_BODY: usize = 4 << 20;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the caBundle fields are re-checked (a re-applied webhook
/// configuration comes back with an empty caBundle).
const INJECT_EVERY: Duration = Duration::from_secs(30);
/// How often the certificate's remaining validity is checked.
const RENEW_CHECK_EVERY: Duration = Duration::from_secs(3600);
/// How often `--cert-dir` is re-read.
const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// During a rotation both CAs are trusted this long before the server
/// switches to the new certificate, so the API server picks up the bundle first.
const ROTATION_OVERLAP: Duration = Duration::from_secs(10);

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
    #[error("webhook server: {0}")]
    Io(std::io::Error),
    #[error("binding the webhook server to {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

struct App {
    policy: Policy,
    cluster: KubeCluster,
    mode: ferrolb_config::build::BgpMode,
}

/// Where the serving certificate comes from, and how it is kept fresh.
enum Upkeep {
    /// `--disable-cert-rotation`: re-read `--cert-dir` when it changes.
    Dir { dir: std::path::PathBuf, last: crate::tls::PemPair },
    /// Generated here; stored in a Secret and injected as caBundle.
    Rotate { store: CertStore, bundle: certs::CertBundle, persisted: bool },
}

/// A bound, ready webhook server (certificate loaded, port open).
pub struct WebhookServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    http2: bool,
    app: Arc<App>,
    client: Client,
    resolver: Arc<CertResolver>,
    settings: TlsSettings,
    upkeep: Upkeep,
    webhook_configuration: String,
    conversion_crd: String,
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
            // Without access to the Secret the webhook still works with an
            // in-memory certificate; it is just not reused after a restart.
            let (bundle, persisted) = match store.load_or_create(&client, &provider).await {
                Ok(b) => (b, true),
                Err(e) => {
                    tracing::warn!(error = %e, "webhook certificate not persisted; using an in-memory one");
                    (certs::generate(&store.sans, SystemTime::now())?, false)
                }
            };
            resolver.set(bundle.serving.certified_key(&provider)?);
            Upkeep::Rotate { store, bundle, persisted }
        };

        let server_config = settings.server_config(resolver.clone(), args.webhook_http2)?;
        let listener = TcpListener::bind(args.bind_address)
            .await
            .map_err(|source| ServeError::Bind { addr: args.bind_address, source })?;
        let server = WebhookServer {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(server_config)),
            http2: args.webhook_http2,
            app: Arc::new(App {
                policy: Policy { namespace: opts.namespace.clone() },
                cluster: KubeCluster::new(client.clone(), opts.namespace.clone()),
                mode: opts.mode,
            }),
            client,
            resolver,
            settings,
            upkeep,
            webhook_configuration: args.webhook_configuration_name.clone(),
            conversion_crd: args.conversion_crd_name.clone(),
        };
        server.inject_now().await;
        Ok(server)
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// PEM of the CA that signed the serving certificate (None with `--cert-dir`).
    pub fn ca_bundle(&self) -> Option<&str> {
        match &self.upkeep {
            Upkeep::Rotate { bundle, .. } => Some(&bundle.ca_cert_pem),
            Upkeep::Dir { .. } => None,
        }
    }

    async fn inject_now(&self) {
        if let Some(ca) = self.ca_bundle() {
            inject_logged(&self.client, &self.webhook_configuration, &self.conversion_crd, ca).await;
        }
    }

    /// Serves until `shutdown` resolves, then drains open connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let WebhookServer {
            listener, acceptor, http2, app, client, resolver, settings, upkeep,
            webhook_configuration, conversion_crd,
        } = self;
        let upkeep_task = tokio::spawn(run_upkeep(
            upkeep, client, resolver, settings, webhook_configuration, conversion_crd,
        ));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        tracing::info!(addr = %listener.local_addr()?, "webhook server listening");
        loop {
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
                let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
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
                if !http2 {
                    builder = builder.http1_only();
                }
                let service = hyper::service::service_fn(move |req| handle(app.clone(), req));
                let conn = builder.serve_connection(TokioIo::new(tls), service);
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
                }
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

async fn inject_logged(client: &Client, vwc: &str, crd: &str, ca: &str) {
    match inject::inject_ca_bundle(client, vwc, crd, ca).await {
        Ok(done) if done != Default::default() => tracing::info!(
            webhook_configuration = done.webhook_configuration,
            crd = done.crd,
            "webhook caBundle updated"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "webhook caBundle not updated"),
    }
}

async fn run_upkeep(
    upkeep: Upkeep,
    client: Client,
    resolver: Arc<CertResolver>,
    settings: TlsSettings,
    vwc: String,
    crd: String,
) {
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
        Upkeep::Rotate { store, mut bundle, mut persisted } => {
            let mut since_check = Duration::ZERO;
            loop {
                tokio::time::sleep(INJECT_EVERY).await;
                since_check += INJECT_EVERY;
                if since_check >= RENEW_CHECK_EVERY {
                    since_check = Duration::ZERO;
                    let later = SystemTime::now() + RENEW_BEFORE;
                    if certs::check_bundle(&bundle, &store.sans, later, &provider).is_err() {
                        match rotate(&client, &store, &bundle, &resolver, &provider, &vwc, &crd).await {
                            Ok((b, p)) => {
                                bundle = b;
                                persisted = p;
                            }
                            Err(e) => tracing::warn!(error = %e, "webhook certificate rotation failed"),
                        }
                    }
                }
                if !persisted {
                    // Retry storing an in-memory certificate (e.g. RBAC fixed later).
                    if let Ok(existing) = store.read(&client).await {
                        persisted = store.store(&client, existing, &bundle).await.is_ok();
                    }
                }
                inject_logged(&client, &vwc, &crd, &bundle.ca_cert_pem).await;
            }
        }
    }
}

/// New CA and certificate: trust both CAs first, then switch the server.
async fn rotate(
    client: &Client,
    store: &CertStore,
    old: &certs::CertBundle,
    resolver: &CertResolver,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    vwc: &str,
    crd: &str,
) -> Result<(certs::CertBundle, bool), ServeError> {
    let new = certs::generate(&store.sans, SystemTime::now())?;
    let key = new.serving.certified_key(provider)?;
    let both = format!("{}{}", new.ca_cert_pem, old.ca_cert_pem);
    inject_logged(client, vwc, crd, &both).await;
    tokio::time::sleep(ROTATION_OVERLAP).await;
    resolver.set(key);
    let persisted = match store.read(client).await {
        Ok(existing) => store.store(client, existing, &new).await.is_ok(),
        Err(_) => false,
    };
    tracing::info!("webhook certificate rotated");
    Ok((new, persisted))
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
