//! The admission and conversion webhooks against a real kube-apiserver
//! (tests/kube-fixture): the API server calls our HTTPS server on 127.0.0.1,
//! trusting the CA the server generated and injected into the
//! ValidatingWebhookConfiguration and the BGPPeer CRD.
//!
//! Webhook configurations are cluster-wide, so every scenario runs inside one
//! test, in order, against this test binary's own fixture.

use std::time::Duration;

use ferrolb_test_harness::{create_namespace, install_crds, shared, unique_name, wait_for};
use ferrolb_webhook::{ServeOptions, WebhookServer};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const VWC: &str = "metallb-webhook-configuration";
const TIMEOUT: Duration = Duration::from_secs(60);

fn resource(version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "metallb.io".into(),
        version: version.into(),
        api_version: format!("metallb.io/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn pools() -> ApiResource {
    resource("v1beta1", "IPAddressPool", "ipaddresspools")
}

fn object(ar: &ApiResource, ns: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": ar.api_version, "kind": ar.kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("valid object")
}

async fn create(client: &Client, ar: &ApiResource, ns: &str, name: &str, spec: Value) -> Result<DynamicObject, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    api.create(&PostParams::default(), &object(ar, ns, name, spec))
        .await
        .map_err(message)
}

fn message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    }
}

/// Asserts the create is refused by our webhook, returning the message.
async fn refused(client: &Client, ar: &ApiResource, ns: &str, name: &str, spec: Value) -> String {
    match create(client, ar, ns, name, spec).await {
        Ok(_) => panic!("{} {ns}/{name} was accepted; the webhook should have refused it", ar.kind),
        Err(m) => {
            assert!(m.contains("admission webhook") && m.contains("denied the request"), "not a webhook denial: {m}");
            m
        }
    }
}

fn webhook(name: &str, path: &str, version: &str, plural: &str, ops: &[&str], base: &str) -> Value {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": format!("{base}{path}")},
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "timeoutSeconds": 10,
        "rules": [{"apiGroups": ["metallb.io"], "apiVersions": [version], "operations": ops, "resources": [plural]}]
    })
}

/// The same webhooks as deploy/manifests/webhook.yaml, by URL instead of Service.
fn webhook_configuration(base: &str) -> ValidatingWebhookConfiguration {
    let crud = ["CREATE", "UPDATE"];
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": VWC},
        "webhooks": [
            webhook("bgppeersvalidationwebhook.metallb.io", "/validate-metallb-io-v1beta2-bgppeer", "v1beta2", "bgppeers", &crud, base),
            webhook("bfdprofilevalidationwebhook.metallb.io", "/validate-metallb-io-v1beta1-bfdprofile", "v1beta1", "bfdprofiles", &["CREATE", "DELETE"], base),
            webhook("bgpadvertisementvalidationwebhook.metallb.io", "/validate-metallb-io-v1beta1-bgpadvertisement", "v1beta1", "bgpadvertisements", &crud, base),
            webhook("communityvalidationwebhook.metallb.io", "/validate-metallb-io-v1beta1-community", "v1beta1", "communities", &crud, base),
            webhook("ipaddresspoolvalidationwebhook.metallb.io", "/validate-metallb-io-v1beta1-ipaddresspool", "v1beta1", "ipaddresspools", &crud, base),
            webhook("l2advertisementvalidationwebhook.metallb.io", "/validate-metallb-io-v1beta1-l2advertisement", "v1beta1", "l2advertisements", &crud, base),
        ]
    }))
    .expect("valid webhook configuration")
}

/// A port nobody listens on yet; the webhook server binds it right after.
/// (The URLs must be registered before the server starts, so that its
/// start-up caBundle injection finds them.)
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_against_the_api_server() {
    let fixture = shared().await.expect("kube fixture");
    let client = fixture.client().expect("client");
    install_crds(&client, &ferrolb_api::crds::render_yaml()).await.expect("CRDs");
    let ns = unique_name("metallb");
    let other = unique_name("elsewhere");
    create_namespace(&client, &ns).await.unwrap();
    create_namespace(&client, &other).await.unwrap();

    // Register the webhooks and the BGPPeer conversion by URL, without CA: the
    // server must inject its generated CA before anything can work.
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    vwcs.create(&PostParams::default(), &webhook_configuration(&base)).await.expect("create VWC");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let conversion = json!({"spec": {"conversion": {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"], "clientConfig": {"url": format!("{base}/convert")}}}}});
    crds.patch("bgppeers.metallb.io", &PatchParams::default(), &Patch::Merge(&conversion))
        .await
        .expect("switch BGPPeer conversion to the webhook");

    let mut opts = ServeOptions::new(&ns);
    opts.args.bind_address = format!("127.0.0.1:{port}").parse().unwrap();
    opts.extra_sans = vec!["127.0.0.1".into()];
    let server = WebhookServer::bind(opts, client.clone()).await.expect("bind webhook server");
    let ca = server.ca_bundle().expect("generated CA").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // --- certificate stored and injected
    let secret = Api::<Secret>::namespaced(client.clone(), &ns).get("metallb-webhook-cert").await.expect("cert Secret");
    let data = secret.data.unwrap();
    assert_eq!(data["ca.crt"], ByteString(ca.clone().into_bytes()));
    assert!(data.contains_key("tls.crt") && data.contains_key("tls.key") && data.contains_key("ca.key"));
    let vwc = vwcs.get(VWC).await.unwrap();
    for hook in vwc.webhooks.unwrap() {
        assert_eq!(hook.client_config.ca_bundle, Some(ByteString(ca.clone().into_bytes())), "{}", hook.name);
    }
    let crd = crds.get("bgppeers.metallb.io").await.unwrap();
    let cc = crd.spec.conversion.unwrap().webhook.unwrap().client_config.unwrap();
    assert_eq!(cc.ca_bundle, Some(ByteString(ca.clone().into_bytes())));

    // The API server picks webhook configurations up asynchronously: wait
    // until an invalid pool is refused.
    let pools = pools();
    wait_for("the webhook to be called", TIMEOUT, || async {
        let dry = PostParams { dry_run: true, ..PostParams::default() };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &pools);
        match api.create(&dry, &object(&pools, &ns, "probe", json!({"addresses": ["nonsense"]}))).await {
            Err(e) => message(e).contains("denied the request").then_some(()),
            Ok(_) => None,
        }
    })
    .await
    .expect("webhook active");

    // --- IPAddressPool
    create(&client, &pools, &ns, "pool-a", json!({"addresses": ["10.10.0.0/24"]})).await.expect("valid pool accepted");
    let m = refused(&client, &pools, &ns, "pool-b", json!({"addresses": ["10.10.0.128/25"]})).await;
    assert!(m.contains("pool-a") && m.contains("pool-b") && m.contains("overlaps"), "overlap message names both pools: {m}");
    let m = refused(&client, &pools, &other, "pool-c", json!({"addresses": ["10.20.0.0/24"]})).await;
    assert!(m.contains(&format!("resource must be created in {ns} namespace")), "{m}");
    let m = refused(&client, &pools, &ns, "bad", json!({"addresses": ["10.0.0.0/33"]})).await;
    assert!(m.contains("IPAddressPool/bad") && m.contains("spec.addresses") && m.contains("10.0.0.0/33"), "{m}");
    let m = refused(&client, &pools, &ns, "range", json!({"addresses": ["10.30.0.9-10.30.0.1"]})).await;
    assert!(m.contains("IPAddressPool/range") && m.contains("is after the end IP"), "{m}");
    // UPDATE is validated against the other pools too.
    create(&client, &pools, &ns, "pool-b", json!({"addresses": ["10.11.0.0/24"]})).await.expect("disjoint pool accepted");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &pools);
    let patch = json!({"spec": {"addresses": ["10.10.0.0/16"]}});
    let m = message(api.patch("pool-b", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap_err());
    assert!(m.contains("pool-b") && m.contains("pool-a") && m.contains("overlaps"), "{m}");
    // Deleting a pool is always allowed.
    api.delete("pool-b", &DeleteParams::default()).await.expect("delete pool");

    // --- L2Advertisement, BGPAdvertisement, Community
    let l2 = resource("v1beta1", "L2Advertisement", "l2advertisements");
    create(&client, &l2, &ns, "l2", json!({"ipAddressPools": ["pool-a"]})).await.expect("valid L2Advertisement");
    let m = refused(&client, &l2, &ns, "l2-dup", json!({"ipAddressPools": ["pool-a", "pool-a"]})).await;
    assert!(m.contains("L2Advertisement/l2-dup") && m.contains("duplicate definition of ipAddressPools"), "{m}");
    let bgpadv = resource("v1beta1", "BGPAdvertisement", "bgpadvertisements");
    // B9: pool-a is a /24, so aggregating to /16 is invalid; community aliases
    // that may not exist yet are not checked at admission.
    create(&client, &bgpadv, &ns, "adv", json!({"aggregationLength": 28, "communities": ["no-such-alias", "65000:1"]}))
        .await
        .expect("valid BGPAdvertisement");
    let m = refused(&client, &bgpadv, &ns, "adv-16", json!({"aggregationLength": 16, "ipAddressPools": ["pool-a"]})).await;
    assert!(m.contains("BGPAdvertisement/adv-16") && m.contains("invalid aggregation length"), "{m}");
    let community = resource("v1beta1", "Community", "communities");
    create(&client, &community, &ns, "c1", json!({"communities": [{"name": "gold", "value": "65000:100"}]}))
        .await
        .expect("valid Community");
    let m = refused(&client, &community, &ns, "c2", json!({"communities": [{"name": "gold", "value": "65000:200"}]})).await;
    assert!(m.contains("duplicate definition of community") && m.contains("gold"), "{m}");

    // --- BGPPeer (v1beta2), BFDProfile deletion
    let peers = resource("v1beta2", "BGPPeer", "bgppeers");
    let bfd = resource("v1beta1", "BFDProfile", "bfdprofiles");
    create(&client, &bfd, &ns, "fast", json!({"receiveInterval": 100})).await.expect("BFDProfile accepted");
    let m = refused(&client, &bfd, &other, "fast", json!({})).await;
    assert!(m.contains(&format!("resource must be created in {ns} namespace")), "{m}");
    // The bfdProfile reference is cleared before validation, so native mode
    // does not reject it at admission.
    create(&client, &peers, &ns, "peer1", json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1", "bfdProfile": "fast"}))
        .await
        .expect("valid peer accepted");
    let m = refused(&client, &peers, &ns, "peer-bad", json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "not-an-ip"})).await;
    assert!(m.contains("BGPPeer/peer-bad") && m.contains("not-an-ip"), "{m}");
    let m = refused(&client, &peers, &ns, "peer-vrf", json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.2", "vrf": "red"})).await;
    assert!(m.contains("vrf set on native bgp mode"), "{m}");
    // disableMP: admitted without any check, even outside the namespace.
    create(&client, &peers, &other, "legacy", json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "not-an-ip", "disableMP": true}))
        .await
        .expect("disableMP peer skips every admission check");

    let bfd_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &bfd);
    let m = message(bfd_api.delete("fast", &DeleteParams::default()).await.unwrap_err());
    assert!(m.contains("failed to delete BFDProfile fast, used by BGPPeer peer1"), "{m}");
    let peer_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &peers);
    peer_api.delete("peer1", &DeleteParams::default()).await.expect("delete peer");
    bfd_api.delete("fast", &DeleteParams::default()).await.expect("unreferenced BFDProfile deleted");

    // --- v1beta1 BGPPeer: converted by /convert, validated through v1beta2
    let v1 = resource("v1beta1", "BGPPeer", "bgppeers");
    // The CRD's new caBundle reaches the API server's conversion client
    // asynchronously, like the webhook configuration did.
    let v1_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &v1);
    wait_for("the conversion webhook to be trusted", TIMEOUT, || async {
        let dry = PostParams { dry_run: true, ..PostParams::default() };
        let probe = object(&v1, &ns, "probe", json!({"myASN": 1, "peerASN": 2, "peerAddress": "192.0.2.9"}));
        v1_api.create(&dry, &probe).await.ok()
    })
    .await
    .expect("conversion webhook usable");
    let stored = create(&client, &v1, &ns, "old", json!({"myASN": 64500, "peerASN": 64502, "peerAddress": "192.0.2.3",
        "nodeSelectors": [{"matchLabels": {"rack": "r1"}}]}))
        .await
        .expect("v1beta1 peer accepted");
    assert_eq!(stored.data["spec"]["peerAddress"], "192.0.2.3");
    let as_v2 = peer_api.get("old").await.expect("read as v1beta2");
    assert_eq!(as_v2.data["spec"]["holdTime"], "0s", "{:?}", as_v2.data);
    assert_eq!(as_v2.data["spec"]["peerPort"], 179);
    assert_eq!(as_v2.data["spec"]["nodeSelectors"][0]["matchLabels"]["rack"], "r1");
    let m = refused(&client, &v1, &ns, "old-bad", json!({"myASN": 64500, "peerASN": 64502, "peerAddress": "300.1.1.1"})).await;
    assert!(m.contains("300.1.1.1"), "{m}");

    // --- webhook off: with the configuration gone, the API server stores
    // what the webhook would refuse (the controller must then ignore it).
    vwcs.delete(VWC, &DeleteParams::default()).await.expect("delete VWC");
    wait_for("the API server to stop calling the webhook", TIMEOUT, || async {
        let dry = PostParams { dry_run: true, ..PostParams::default() };
        api.create(&dry, &object(&pools, &ns, "overlap", json!({"addresses": ["10.10.0.0/25"]}))).await.ok()
    })
    .await
    .expect("webhook configuration removed");
    let accepted = create(&client, &pools, &ns, "overlap", json!({"addresses": ["10.10.0.0/25"]}))
        .await
        .expect("overlapping pool stored without the webhook");
    assert_eq!(accepted.name_any(), "overlap");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("server stops")
        .unwrap()
        .expect("server ran cleanly");
}
