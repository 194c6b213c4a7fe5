//! The generated webhook certificate is stored in the `--webhook-secret`
//! Secret and reused by the next start, unless it no longer fits (here: a
//! stored certificate for other names), and two replicas share it, against a
//! real API server.

use std::convert::Infallible;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::Barrier;

use ferrolb_test_harness::{KubeFixture, create_namespace, shared, unique_name, wait_for};
use ferrolb_webhook::inject::bundle_from_secret;
use ferrolb_webhook::{CertTiming, ServeOptions, WebhookServer};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_is_persisted_reused_and_replaced() {
    let fixture = shared().await.expect("kube fixture");
    let client = fixture.client().unwrap();
    let ns = unique_name("certs");
    create_namespace(&client, &ns).await.unwrap();
    let mut opts = ServeOptions::new(&ns);
    opts.args.bind_address = "127.0.0.1:0".parse().unwrap();
    opts.args.webhook_secret = "my-cert".into();

    let first = WebhookServer::bind(opts.clone(), client.clone()).await.unwrap();
    let ca1 = first.ca_bundle().unwrap().to_string();
    drop(first);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stored = bundle_from_secret(&secrets.get("my-cert").await.unwrap()).expect("all four keys");
    assert_eq!(stored.ca_cert_pem, ca1);

    // A restart reuses it: the caBundle registered with the API server stays valid.
    let second = WebhookServer::bind(opts.clone(), client.clone()).await.unwrap();
    assert_eq!(second.ca_bundle().unwrap(), ca1);
    drop(second);

    // A stored certificate that does not cover the service name is replaced.
    let foreign = ferrolb_webhook::certs::generate(&["elsewhere.example".into()], std::time::SystemTime::now()).unwrap();
    let patch = serde_json::json!({"data": {"tls.crt": ByteString(foreign.serving.cert_pem.clone().into_bytes()),
                                            "tls.key": ByteString(foreign.serving.key_pem.clone().into_bytes())}});
    secrets.patch("my-cert", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let third = WebhookServer::bind(opts, client.clone()).await.unwrap();
    let ca3 = third.ca_bundle().unwrap().to_string();
    assert_ne!(ca3, ca1);
    let stored = bundle_from_secret(&secrets.get("my-cert").await.unwrap()).unwrap();
    assert_eq!(stored.ca_cert_pem, ca3);
    assert_ne!(stored.serving.cert_pem, foreign.serving.cert_pem);
}

/// Every caBundle the API server stores for a webhook configuration, in
/// order, as `kubectl get --watch` reports each version of the object.
struct CaBundleLog {
    kubectl: Child,
    seen: Arc<Mutex<Vec<String>>>,
}

impl CaBundleLog {
    fn start(fixture: &KubeFixture, vwc: &str) -> Self {
        let mut kubectl = fixture
            .kubectl()
            .args(["get", "validatingwebhookconfiguration", vwc, "--watch"])
            .arg("-o=jsonpath={.webhooks[0].clientConfig.caBundle}{\"\\n\"}")
            .stdout(Stdio::piped())
            .spawn()
            .expect("kubectl get --watch");
        let stdout = kubectl.stdout.take().expect("piped stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        CaBundleLog { kubectl, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for CaBundleLog {
    fn drop(&mut self) {
        let _ = self.kubectl.kill();
        let _ = self.kubectl.wait();
    }
}

/// The caBundle field as the API server prints it (base64).
fn base64(pem: &str) -> String {
    serde_json::to_value(ByteString(pem.as_bytes().to_vec())).unwrap().as_str().unwrap().to_string()
}

/// Whether the server at `addr` presents a certificate for 127.0.0.1 that
/// chains to a CA in `ca_pem`.
async fn trusted_by(addr: SocketAddr, ca_pem: &str) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else { return false };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.is_ok()
}

/// A plain-HTTP front for the API server that forwards every request
/// through the fixture's client (which adds the credentials), except that the
/// first `held` Secret creations wait until all of them have arrived. Two
/// replicas behind it have then both read "no Secret" before either writes
/// one: the first-install race, every time.
async fn gated_api_server(client: kube::Client, held: usize) -> kube::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new((Barrier::new(held), AtomicUsize::new(0), held));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (client, gate) = (client.clone(), gate.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| forward(client.clone(), gate.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

async fn forward(
    client: kube::Client,
    gate: Arc<(Barrier, AtomicUsize, usize)>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let creates_secret = req.method() == Method::POST && req.uri().path().ends_with("/secrets");
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let (barrier, arrived, held) = &*gate;
    if creates_secret && arrived.fetch_add(1, Ordering::SeqCst) < *held {
        barrier.wait().await;
    }
    let upstream = Request::from_parts(parts, kube::client::Body::from(body.to_vec()));
    let (mut parts, body) = match client.send(upstream).await {
        Ok(resp) => resp.into_parts(),
        Err(e) => {
            let mut resp = Response::new(Full::new(Bytes::from(e.to_string())));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(resp);
        }
    };
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    // The body is re-framed here.
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Consecutive repeats folded: the distinct values in the order they appeared.
fn transitions(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_first_install_share_one_certificate() {
    let fixture = shared().await.expect("kube fixture");
    let client = fixture.client().unwrap();
    let ns = unique_name("replicas");
    create_namespace(&client, &ns).await.unwrap();
    let vwc_name = unique_name("replicas-webhook");
    // Registered without caBundle, for a group nothing uses, so the API
    // server never calls it.
    let vwc: ValidatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": vwc_name},
        "webhooks": [{
            "name": "replicas.ferrolb.test", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Ignore", "clientConfig": {"url": "https://127.0.0.1:1/unused"},
            "rules": [{"apiGroups": ["replicas.ferrolb.test"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["things"]}]
        }]
    }))
    .unwrap();
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    vwcs.create(&PostParams::default(), &vwc).await.unwrap();
    let log = CaBundleLog::start(fixture, &vwc_name);
    wait_for("the watch to print the initial object", Duration::from_secs(30), || async {
        (!log.seen().is_empty()).then_some(())
    })
    .await
    .unwrap();

    let mut opts = ServeOptions::new(&ns);
    opts.args.bind_address = "127.0.0.1:0".parse().unwrap();
    opts.args.webhook_configuration_name = vwc_name.clone();
    opts.args.conversion_crd_name = "absent.replicas.ferrolb.test".into();
    opts.extra_sans = vec!["127.0.0.1".into()];
    opts.cert_timing = CertTiming { sync_every: Duration::from_millis(300), rotation_overlap: Duration::from_millis(200) };

    // Both start at once against an empty namespace: both find no Secret,
    // both try to create one.
    let gated = gated_api_server(client.clone(), 2).await;
    let (a, b) = tokio::join!(
        WebhookServer::bind(opts.clone(), gated.clone()),
        WebhookServer::bind(opts.clone(), gated.clone())
    );
    let (a, b) = (a.expect("replica a"), b.expect("replica b"));
    let first = a.ca_bundle().unwrap().to_string();
    assert_eq!(b.ca_bundle(), Some(first.as_str()), "the replicas ended with different CAs");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let names: Vec<String> = secrets.list(&ListParams::default()).await.unwrap().items.into_iter()
        .filter_map(|s| s.metadata.name).collect();
    assert_eq!(names, vec![opts.args.webhook_secret.clone()], "exactly one certificate Secret");
    let stored = bundle_from_secret(&secrets.get(&opts.args.webhook_secret).await.unwrap()).unwrap();
    assert_eq!(stored.ca_cert_pem, first);

    let addrs = [a.local_addr().unwrap(), b.local_addr().unwrap()];
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for server in [a, b] {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(server.run(async move {
            let _ = stopped.await;
        })));
    }
    for addr in addrs {
        assert!(trusted_by(addr, &first).await, "replica {addr} serves a certificate the caBundle does not trust");
    }

    // The Secret deleted under running replicas: they write the certificate
    // they serve back (one create wins, the other adopts it); nothing changes.
    secrets.delete(&opts.args.webhook_secret, &DeleteParams::default()).await.unwrap();
    let restored = wait_for("the Secret to be written back", Duration::from_secs(20), || async {
        secrets.get_opt(&opts.args.webhook_secret).await.ok().flatten().and_then(|s| bundle_from_secret(&s))
    })
    .await
    .unwrap();
    assert_eq!(restored, stored);

    // A new bundle put into the Secret (as another replica's rotation does)
    // is what every replica ends up serving and injecting.
    let next = ferrolb_webhook::certs::generate(
        &[format!("metallb-webhook-service.{ns}.svc"), format!("metallb-webhook-service.{ns}.svc.cluster.local"),
          format!("metallb-webhook-service.{ns}"), "metallb-webhook-service".into(), "127.0.0.1".into()],
        SystemTime::now(),
    )
    .unwrap();
    let patch = serde_json::json!({"data": {
        "ca.crt": ByteString(next.ca_cert_pem.clone().into_bytes()),
        "ca.key": ByteString(next.ca_key_pem.clone().into_bytes()),
        "tls.crt": ByteString(next.serving.cert_pem.clone().into_bytes()),
        "tls.key": ByteString(next.serving.key_pem.clone().into_bytes()),
    }});
    secrets.patch(&opts.args.webhook_secret, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    for addr in addrs {
        wait_for("every replica to serve the Secret's new certificate", Duration::from_secs(20), || async {
            trusted_by(addr, &next.ca_cert_pem).await.then_some(())
        })
        .await
        .unwrap();
    }
    // A few more rounds: nobody brings the old CA back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for stop in stops {
        stop.send(()).unwrap();
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let now = vwcs.get(&vwc_name).await.unwrap();
    let injected = now.webhooks.unwrap()[0].client_config.ca_bundle.clone().unwrap();
    assert_eq!(injected.0, next.ca_cert_pem.as_bytes());

    let last = base64(&next.ca_cert_pem);
    wait_for("the watch to report the last update", Duration::from_secs(20), || async {
        (log.seen().last() == Some(&last)).then_some(())
    })
    .await
    .unwrap();
    let history = transitions(log.seen());
    assert_eq!(
        history,
        vec![String::new(), base64(&first), base64(&next.ca_cert_pem)],
        "the caBundle went through other values than none -> first CA -> the Secret's new CA"
    );
    vwcs.delete(&vwc_name, &DeleteParams::default()).await.unwrap();
}
