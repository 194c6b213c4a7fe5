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
use tokio::time::Instant;
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

fn h1_client(r: &Running) -> rustls::ClientConfig {
    client_config(&r.ca_pem, &[&rustls::version::TLS13], &[b"http/1.1"])
}

fn request_head(method: &str, path: &str, content_length: usize, close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n{connection}\r\n"
    )
}

/// Reads one HTTP/1.1 response (Content-Length framed); returns (status code, body).
async fn read_response<S: AsyncReadExt + Unpin>(stream: &mut S) -> (u16, Vec<u8>) {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response within 10 s")
            .expect("reading the response");
        assert!(n > 0, "connection closed before the response headers: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    while raw.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("reading the body");
        assert!(n > 0, "connection closed mid-body");
        raw.extend_from_slice(&chunk[..n]);
    }
    (status, raw[head_end..head_end + length].to_vec())
}

/// One HTTP/1.1 request on a new connection; returns (status code, body).
async fn request(r: &Running, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut tls = connect(r, h1_client(r)).await.expect("TLS handshake");
    tls.write_all(request_head(method, path, body.len(), true).as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    read_response(&mut tls).await
}

/// A valid BGPPeer v1beta1 -> v1beta2 ConversionReview.
fn conversion_review() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "abc", "desiredAPIVersion": "metallb.io/v1beta2", "objects": [{
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
            "metadata": {"name": "p", "namespace": "metallb-system"},
            "spec": {"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "peerPort": 0}
        }]}
    }))
    .unwrap()
}

/// How long until the server closes the connection (EOF or a reset/TLS
/// error on read), reading and discarding whatever it sends before.
async fn time_until_closed<S: AsyncReadExt + Unpin>(stream: &mut S, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut sink)).await {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

async fn stop(r: Running) {
    r.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), r.task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn serves_conversion_and_routes_over_tls_from_cert_dir() {
    let r = start(|_| {}).await;
    let (status, body) = request(&r, "POST", "/convert", &conversion_review()).await;
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

#[tokio::test]
async fn half_a_header_is_cut_off_after_the_header_read_timeout() {
    let r = start(|o| {
        o.args.header_read_timeout = Duration::from_secs(1);
        o.args.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let body = conversion_review();
    let head = request_head("POST", "/convert", body.len(), false);
    let (first, rest) = head.split_at(head.len() / 2);

    let mut stalled = connect(&r, h1_client(&r)).await.expect("TLS handshake");
    stalled.write_all(first.as_bytes()).await.unwrap();
    let waited = time_until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}, before the timeout");
    assert!(waited < Duration::from_secs(5), "closed only after {waited:?}");

    // A header that arrives in pieces within the timeout is served, and the
    // clock restarts for the next request on the same connection.
    let mut slow = connect(&r, h1_client(&r)).await.expect("TLS handshake");
    for round in 0..2 {
        slow.write_all(first.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        slow.write_all(rest.as_bytes()).await.unwrap();
        slow.write_all(&body).await.unwrap();
        assert_eq!(read_response(&mut slow).await.0, 200, "request {round}");
    }
    stop(r).await;
}

#[tokio::test]
async fn stalled_connections_are_closed_after_the_idle_timeout() {
    let r = start(|o| {
        o.args.header_read_timeout = Duration::from_secs(60);
        o.args.idle_timeout = Duration::from_secs(1);
        o.args.webhook_http2 = true;
    })
    .await;
    let body = conversion_review();
    let head = request_head("POST", "/convert", body.len(), true);

    // A body that stops half-way.
    let mut stalled = connect(&r, h1_client(&r)).await.expect("TLS handshake");
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&body[..body.len() / 2]).await.unwrap();
    let waited = time_until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert!((Duration::from_millis(900)..Duration::from_secs(5)).contains(&waited), "closed after {waited:?}");

    // An HTTP/2 connection that never opens a stream (the server's SETTINGS
    // arrive first; then nothing moves).
    let h2 = client_config(&r.ca_pem, &[&rustls::version::TLS13], &[b"h2"]);
    let mut idle = connect(&r, h2).await.expect("TLS handshake");
    assert_eq!(idle.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    idle.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // empty SETTINGS frame
    let waited = time_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!((Duration::from_millis(900)..Duration::from_secs(5)).contains(&waited), "closed after {waited:?}");

    // A body trickling in for three idle timeouts is still served: only
    // silence counts.
    let mut trickle = connect(&r, h1_client(&r)).await.expect("TLS handshake");
    trickle.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for piece in body.chunks(body.len().div_ceil(10)) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trickle.write_all(piece).await.unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(read_response(&mut trickle).await.0, 200);
    stop(r).await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    const CAP: usize = 3;
    let r = start(|o| o.args.max_connections = CAP as u32).await;
    let mut open = Vec::new();
    for _ in 0..CAP {
        open.push(connect(&r, h1_client(&r)).await.expect("TLS handshake within the cap"));
    }
    // Connection CAP+1 gets through TCP (the listen backlog) but is not
    // accepted, so its TLS handshake does not complete.
    let addr = r.addr;
    let config = h1_client(&r);
    let mut extra = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        TlsConnector::from(Arc::new(config)).connect(name, tcp).await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), &mut extra).await.is_err(),
        "connection {} was served while {CAP} were open",
        CAP + 1
    );
    // The open ones are served (keep-alive).
    let body = conversion_review();
    for conn in &mut open {
        conn.write_all(request_head("POST", "/convert", body.len(), false).as_bytes()).await.unwrap();
        conn.write_all(&body).await.unwrap();
        assert_eq!(read_response(conn).await.0, 200);
    }
    // Closing one frees its slot for the waiting client.
    drop(open.pop());
    let mut extra = tokio::time::timeout(Duration::from_secs(5), extra)
        .await
        .expect("the waiting connection is accepted once a slot frees")
        .unwrap()
        .expect("TLS handshake");
    extra.write_all(request_head("POST", "/convert", body.len(), true).as_bytes()).await.unwrap();
    extra.write_all(&body).await.unwrap();
    assert_eq!(read_response(&mut extra).await.0, 200);
    stop(r).await;
}
