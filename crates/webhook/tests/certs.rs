//! The generated webhook certificate is stored in the `--webhook-secret`
//! Secret and reused by the next start, unless it no longer fits (here: a
//! stored certificate for other names), against a real API server.

use ferrolb_test_harness::{create_namespace, shared, unique_name};
use ferrolb_webhook::inject::bundle_from_secret;
use ferrolb_webhook::{ServeOptions, WebhookServer};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};

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
