//! The HTTPS server on its own (no API server needed for these paths): a
//! certificate from `--cert-dir`, TLS version and ALPN settings, routing, and
//! the conversion endpoint over the wire.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrolb_webhook::certs;
use ferrolb_webhook::{ServeOptions, WebhookServer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A client that is never used: in `--cert-dir` mode the server makes no API
/// calls for these requests.
fn unused_client() -> kube::Client {
    let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

struct Running {
    addr: std::net::SocketAddr,
    ca_pem: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(configure: impl FnOnce(&mut ServeOptions)) -> Running {
    let bundle = certs::generate(&["127.0.0.1".into()], SystemTime::now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &bundle.serving.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &bundle.serving.key_pem).unwrap();
    let mut opts = ServeOptions::new("metallb-system");
    opts.args.bind_address = "127.0.0.1:0".parse().unwrap();
    opts.args.disable_cert_rotation = true;
    opts.args.cert_dir = dir.path().to_path_buf();
    configure(&mut opts);
    let server = WebhookServer::bind(opts, unused_client()).await.expect("bind");
    assert!(server.ca_bundle().is_none(), "no generated CA in --cert-dir mode");
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running { addr, ca_pem: bundle.ca_cert_pem, stop, task, _dir: dir }
}

fn client_config(ca_pem: &str, versions: &[&'static rustls::SupportedProtocolVersion], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

async fn connect(
    r: &Running,
    cfg: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(r.addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await
}

/// One HTTP/1.1 request; returns (status code, body).
async fn request(r: &Running, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let cfg = client_config(&r.ca_pem, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let mut tls = connect(r, cfg).await.expect("TLS handshake");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw)).await.unwrap().ok();
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers") + 4;
    (status, raw[split..].to_vec())
}

async fn stop(r: Running) {
    r.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), r.task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn serves_conversion_and_routes_over_tls_from_cert_dir() {
    let r = start(|_| {}).await;
    let review = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "abc", "desiredAPIVersion": "metallb.io/v1beta2", "objects": [{
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
            "metadata": {"name": "p", "namespace": "metallb-system"},
            "spec": {"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "peerPort": 0}
        }]}
    });
    let (status, body) = request(&r, "POST", "/convert", &serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, 200);
    let out: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["response"]["uid"], "abc");
    assert_eq!(out["response"]["convertedObjects"][0]["apiVersion"], "metallb.io/v1beta2");
    assert_eq!(out["response"]["convertedObjects"][0]["spec"]["peerPort"], 179);

    // A malformed admission review still gets a review back (denied).
    let (status, body) = request(&r, "POST", "/validate-metallb-io-v1beta1-ipaddresspool", b"{}").await;
    assert_eq!(status, 200);
    let out: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["response"]["allowed"], false);

    assert_eq!(request(&r, "GET", "/convert", b"").await.0, 405);
    assert_eq!(request(&r, "POST", "/validate-metallb-io-v1beta1-bgppeer", b"{}").await.0, 404);
    stop(r).await;
}

#[tokio::test]
async fn tls_versions_and_alpn_follow_the_flags() {
    // Default: TLS 1.3 only, HTTP/1.1 only.
    let r = start(|_| {}).await;
    let tls12 = client_config(&r.ca_pem, &[&rustls::version::TLS12], &[b"h2", b"http/1.1"]);
    assert!(connect(&r, tls12).await.is_err(), "TLS 1.2 must be refused by default");
    let both = client_config(&r.ca_pem, &[&rustls::version::TLS13], &[b"h2", b"http/1.1"]);
    let conn = connect(&r, both).await.expect("TLS 1.3");
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // A client trusting another CA is refused.
    let other = certs::generate(&["127.0.0.1".into()], SystemTime::now()).unwrap();
    let stranger = client_config(&other.ca_cert_pem, &[&rustls::version::TLS13], &[]);
    assert!(connect(&r, stranger).await.is_err());
    stop(r).await;

    // --tls-min-version=VersionTLS12 and --webhook-http2.
    let r = start(|o| {
        o.tls.tls_min_version = "VersionTLS12".into();
        o.args.webhook_http2 = true;
    })
    .await;
    let tls12 = client_config(&r.ca_pem, &[&rustls::version::TLS12], &[b"h2", b"http/1.1"]);
    let conn = connect(&r, tls12).await.expect("TLS 1.2 allowed");
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    stop(r).await;
}

#[tokio::test]
async fn bad_cert_dir_and_tls_options_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ServeOptions::new("metallb-system");
    opts.args.bind_address = "127.0.0.1:0".parse().unwrap();
    opts.args.disable_cert_rotation = true;
    opts.args.cert_dir = dir.path().to_path_buf();
    let err = WebhookServer::bind(opts.clone(), unused_client()).await.err().expect("missing files");
    assert!(err.to_string().contains("tls.crt"), "{err}");

    opts.tls.tls_cipher_suites = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into();
    let err = WebhookServer::bind(opts, unused_client()).await.err().expect("suites with TLS 1.3");
    assert_eq!(err.to_string(), "cipher suites cannot be configured with TLS 1.3");
}
