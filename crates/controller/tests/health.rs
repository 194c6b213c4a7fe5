//! `/readyz` and `/healthz` on the real API server (docs/controller.md,
//! "Health"): not ready until every cache has synced (and the readiness gate
//! a webhook sets is open); not live when Service writes are pending and none
//! has completed for `--healthz-stall-timeout`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::proxy::Proxy;
use common::*;
use ferrolb_controller::options::ReadinessGate;
use ferrolb_test_harness::wait_for;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

/// A free loopback port for the health endpoint (0 disables it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn health_flags() -> [String; 2] {
    ["--bind-address=127.0.0.1".into(), format!("--health-probe-port={}", free_port())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_caches_have_synced() {
    let env = env("readyz", true).await;
    env.apply(&pool_yaml("one", &["192.0.2.120/32"], "")).await;
    let proxy = Proxy::to_server(env.fixture.server_url()).await;
    proxy.down().await;
    let kubeconfig = format!("--kubeconfig={}", env.kubeconfig_via(&proxy.url()).display());
    let [bind, port] = health_flags();
    let ctl = env.start(&[&kubeconfig, &bind, &port]).await;
    let addr = ctl.health_addr.expect("health endpoint");

    // The API server cannot be reached: no cache can list.
    for _ in 0..10 {
        assert_eq!(http_status(addr, "/readyz").await, Some(503), "ready before any cache synced");
        assert_eq!(http_status(addr, "/healthz").await, Some(200), "nothing pending: live");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.up().await;
    wait_status(addr, "/readyz", 200, WAIT).await;
    env.create_service("a", "").await;
    assert_eq!(env.wait_ips("a").await, ["192.0.2.120"]);
    ctl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_the_readiness_gate_is_closed() {
    let env = env("gate", true).await;
    let [bind, port] = health_flags();
    let mut opts = env.options(&[&bind, &port]);
    let open = Arc::new(AtomicBool::new(false));
    let o = open.clone();
    opts.readiness_gate = ReadinessGate::new(move || o.load(Ordering::Relaxed));
    let ctl = env.start_with(opts).await;
    let addr = ctl.health_addr.expect("health endpoint");
    // Synced well within this (the API server is right there), yet not ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(http_status(addr, "/readyz").await, Some(503));
    open.store(true, Ordering::Relaxed);
    wait_status(addr, "/readyz", 200, WAIT).await;
    ctl.shutdown().await;
}

/// Denies every Service status write in `apps` (a ValidatingAdmissionPolicy):
/// the controller's writes fail and are retried, its loop runs on.
async fn freeze_status_writes(env: &Env) -> String {
    let name = format!("{}-freeze", env.system);
    let yaml = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: {name}\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules:\n    - apiGroups: [\"\"]\n      apiVersions: [v1]\n      operations: [UPDATE]\n      resources: [services/status]\n  validations:\n  - expression: \"false\"\n    message: frozen by the test\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata:\n  name: {name}\nspec:\n  policyName: {name}\n  validationActions: [Deny]\n  matchResources:\n    namespaceSelector:\n      matchLabels:\n        kubernetes.io/metadata.name: {apps}\n",
        apps = env.apps
    );
    ferrolb_test_harness::apply_yaml(&env.client, &yaml).await.expect("admission policy");
    name
}

/// Whether a status write to `service` is refused now (dry run, as admin).
async fn status_writes_refused(env: &Env, service: &str) -> bool {
    let patch = serde_json::json!({"status": {"conditions": [{"type": "ferrolb.test/Probe", "status": "True", "reason": "Probe", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let params = PatchParams { dry_run: true, ..Default::default() };
    env.services().patch_status(service, &params, &Patch::Merge(&patch)).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_live_when_pending_writes_make_no_progress() {
    let env = env("healthz", true).await;
    env.apply(&pool_yaml("two", &["192.0.2.122/31"], "")).await;
    let [bind, port] = health_flags();
    let ctl = env.start(&[&bind, &port, "--healthz-stall-timeout=2s"]).await;
    let addr: SocketAddr = ctl.health_addr.expect("health endpoint");
    wait_status(addr, "/readyz", 200, WAIT).await;
    env.create_service("a", "").await;
    env.wait_ips("a").await;
    // Idle for longer than the bound: nothing pending, so live.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(http_status(addr, "/healthz").await, Some(200));

    let policy = freeze_status_writes(&env).await;
    wait_for("status writes to be refused", WAIT, || async { status_writes_refused(&env, "a").await.then_some(()) })
        .await
        .expect("policy in force");
    env.create_service("b", "").await;
    wait_status(addr, "/healthz", 503, WAIT).await;
    let b = env.services().get("b").await.unwrap();
    assert!(ips(&b).is_empty(), "b was written although writes are refused");
    assert!(!ctl.task.is_finished(), "a stalled loop is reported, not fatal");

    // Writes go through again: b is served and the controller is live.
    let bindings: Api<kube::api::DynamicObject> = Api::all_with(
        env.client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicyBinding",
        )),
    );
    bindings.delete(&policy, &DeleteParams::default()).await.expect("deleting the binding");
    assert_eq!(env.wait_ips("b").await, ["192.0.2.123"]);
    wait_status(addr, "/healthz", 200, WAIT).await;
    ctl.shutdown().await;
}
