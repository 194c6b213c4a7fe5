//! Fenced writes (docs/fencing.md): a leader cut off from the API server
//! whose requests are delayed, not lost, must not overwrite anything once a
//! new leader has taken over, for Service status and for pool status.
//!
//! Controller a reaches the API server through a proxy that holds what a
//! sends (common/proxy.rs) while answers still reach it, so a keeps seeing
//! watch events and sends writes into the partition. Its renewals are held
//! too: it steps down, b (direct) takes over and writes. Then the proxy
//! delivers everything a sent. The objects on the API server must be
//! exactly as b left them.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::*;
use ferrolb_api::v1beta1::IPAddressPool;
use ferrolb_test_harness::wait_for;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};

const TIMINGS: [&str; 4] = [
    "--leader-elect=true",
    "--leader-election-lease-duration=4s",
    "--leader-election-renew-deadline=3s",
    "--leader-election-retry-period=1s",
];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    TIMINGS.iter().copied().chain(extra.iter().copied()).collect()
}

/// What a write would change: resourceVersion, status and annotations.
fn service_state(s: &Service) -> (Option<String>, String, String) {
    (
        s.metadata.resource_version.clone(),
        serde_json::to_string(&s.status).unwrap_or_default(),
        serde_json::to_string(&s.metadata.annotations).unwrap_or_default(),
    )
}

fn pool_state(p: &IPAddressPool) -> (Option<String>, String) {
    (p.metadata.resource_version.clone(), serde_json::to_string(&p.status).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_delayed_writes_do_not_land() {
    let env = env("fencing", true).await;
    env.apply(&pool_yaml("p", &["10.97.0.0/29"], "")).await;
    let pools: Api<IPAddressPool> = Api::namespaced(env.client.clone(), &env.system);
    let proxy = Proxy::to_server(env.fixture.server_url()).await;
    let via = env.kubeconfig_via(&proxy.url());
    let via_arg = format!("--kubeconfig={}", via.display());

    let a = env.start(&args(&["--pod-name=ctl-a", &via_arg])).await;
    wait_for("a leads", WAIT, || async { (a.metrics.is_leader.get() == 1).then_some(()) }).await.unwrap();
    let b = env.start(&args(&["--pod-name=ctl-b"])).await;
    env.create_service("before", "").await;
    assert_eq!(env.wait_ips("before").await, ["10.97.0.0"]);
    let assigned = |n: i64| {
        let pools = pools.clone();
        async move {
            let p = pools.get("p").await.ok()?;
            (p.status.as_ref().map(|s| s.assigned_ipv4) == Some(n)).then_some(p)
        }
    };
    wait_for("a writes the pool status", WAIT, || assigned(1)).await.unwrap();
    // A Service the controllers do not manage, for the control write below.
    let control: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "control"},
        "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}
    }))
    .unwrap();
    env.services().create(&Default::default(), &control).await.unwrap();

    // The partition: everything a sends from now on is held.
    proxy.hold();
    let svc_writes = a.metrics.requests_for(Some("PATCH"), "services/status");
    let pool_writes = a.metrics.requests_for(Some("PATCH"), "ipaddresspools/status");
    env.create_service("during", "").await;
    wait_for("a sends the Service write into the partition", WAIT, || async {
        (a.metrics.requests_for(Some("PATCH"), "services/status") > svc_writes).then_some(())
    })
    .await
    .unwrap();
    wait_for("a sends the pool status write into the partition", WAIT, || async {
        (a.metrics.requests_for(Some("PATCH"), "ipaddresspools/status") > pool_writes).then_some(())
    })
    .await
    .unwrap();
    // Control: an unconditional write sent through the same held proxy,
    // which must land on release (the proxy delays, it does not lose).
    let control_client = {
        let text = std::fs::read_to_string(&via).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    };
    let control_api: Api<Service> = Api::namespaced(control_client, &env.apps);
    let control = tokio::spawn(async move {
        let body = serde_json::json!({"metadata": {"annotations": {"test.ferrolb/delayed": "landed"}}});
        control_api.patch_status("control", &PatchParams::default(), &Patch::Merge(&body)).await
    });

    wait_for("a steps down at its renew deadline", WAIT, || async { (a.metrics.is_leader.get() == 0).then_some(()) })
        .await
        .unwrap();
    let stopped_at = (
        a.metrics.requests_for(Some("PATCH"), "services/status"),
        a.metrics.requests_for(Some("PATCH"), "ipaddresspools/status"),
    );
    // b takes over and writes both objects a wrote into the partition.
    assert_eq!(env.wait_ips("during").await, ["10.97.0.1"]);
    assert_eq!(b.metrics.is_leader.get(), 1);
    wait_for("b writes the pool status", WAIT, || assigned(2)).await.unwrap();
    // A Service created after a stepped down: a sends nothing for it.
    env.create_service("after", "").await;
    assert_eq!(env.wait_ips("after").await, ["10.97.0.2"]);
    wait_for("b writes the pool status", WAIT, || assigned(3)).await.unwrap();

    // What b left, once it is idle (two identical reads a second apart).
    let snapshot = || async {
        let mut out = Vec::new();
        for name in ["before", "during", "after"] {
            out.push(service_state(&env.services().get(name).await.unwrap()));
        }
        (out, pool_state(&pools.get("p").await.unwrap()))
    };
    let mut left_by_b = snapshot().await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let again = snapshot().await;
        if again == left_by_b {
            break;
        }
        left_by_b = again;
    }
    let held = proxy.stats.held_bytes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(held > 0, "a's writes were held by the proxy");

    proxy.release();
    let landed = tokio::time::timeout(WAIT, control).await.expect("control write answered").unwrap();
    assert!(landed.is_ok(), "the held control write was delivered: {landed:?}");
    let connections = proxy.stats.held_connections.load(std::sync::atomic::Ordering::SeqCst);
    let _ = wait_for("the server answers every delivered connection", Duration::from_secs(20), || async {
        (proxy.stats.answered_connections.load(std::sync::atomic::Ordering::SeqCst) >= connections).then_some(())
    })
    .await;
    // Let anything delivered late be applied before looking.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let control = env.services().get("control").await.unwrap();
    assert_eq!(annotation(&control, "test.ferrolb/delayed").as_deref(), Some("landed"));

    let after_release = snapshot().await;
    println!(
        "held {held} bytes on {connections} connections; answered {}; a sent {} Service and {} pool status PATCHes in all",
        proxy.stats.answered_connections.load(std::sync::atomic::Ordering::SeqCst),
        stopped_at.0,
        stopped_at.1
    );
    assert_eq!(after_release.1, left_by_b.1, "a's delayed pool status write landed");
    for (i, name) in ["before", "during", "after"].iter().enumerate() {
        assert_eq!(after_release.0[i], left_by_b.0[i], "a's delayed write to {name} landed");
    }
    assert_eq!(
        (a.metrics.requests_for(Some("PATCH"), "services/status"), a.metrics.requests_for(Some("PATCH"), "ipaddresspools/status")),
        stopped_at,
        "a sent no status write after it stepped down"
    );
    assert_eq!(a.metrics.is_leader.get(), 0);
    b.shutdown().await;
    a.shutdown().await;
}

/// The API server facts the fence relies on: a status PATCH carrying a
/// resourceVersion other than the object's is refused with 409 and changes
/// nothing; with the object's own version it applies. Service and pool.
#[tokio::test]
async fn a_stale_resource_version_is_refused_and_changes_nothing() {
    use ferrolb_controller::pool_status::{self, PoolWrite};
    use ferrolb_controller::service_status::{self, ConditionSpec, Current, Desired};
    let env = env("precondition", true).await;
    env.apply(&pool_yaml("p", &["10.96.0.0/30"], "")).await;
    let controller = controller_client(&env.client, &env.apps).await;
    let services: Api<Service> = Api::namespaced(controller.clone(), &env.apps);
    let pools_as_controller: Api<IPAddressPool> =
        Api::namespaced(common::controller_client(&env.client, &env.system).await, &env.system);
    let pools: Api<IPAddressPool> = Api::namespaced(env.client.clone(), &env.system);

    let read = env.create_service("web", "").await;
    // Someone else writes the Service after it was read.
    let bump = serde_json::json!({"metadata": {"annotations": {"example.com/touched": "yes"}}});
    env.services().patch("web", &PatchParams::default(), &Patch::Merge(&bump)).await.unwrap();
    let newer = env.services().get("web").await.unwrap();
    let want = Desired {
        ips: vec!["10.96.0.1".into()],
        pool: Some("p".into()),
        condition: Some(ConditionSpec { status: true, reason: "IPAllocated".into(), message: "m".into() }),
    };
    let stale_rv = read.metadata.resource_version.clone().unwrap();
    let mut body = service_status::patch_body(read.metadata.uid.as_deref(), &Current::of(&read), &want, k8s_openapi::jiff::Timestamp::now());
    service_status::precondition(&mut body, &stale_rv);
    let err = service_status::write(&services, "web", &body).await.expect_err("stale version refused");
    assert!(service_status::is_conflict(&err), "{err}");
    let unchanged = env.services().get("web").await.unwrap();
    assert_eq!(unchanged.metadata.resource_version, newer.metadata.resource_version);
    assert!(ips(&unchanged).is_empty());
    service_status::precondition(&mut body, newer.metadata.resource_version.as_deref().unwrap());
    let written = service_status::write(&services, "web", &body).await.expect("current version applies");
    assert_eq!(ips(&written), ["10.96.0.1"]);

    let pool = pools.get("p").await.unwrap();
    let status = ferrolb_api::v1beta1::IPAddressPoolStatus { assigned_ipv4: 1, available_ipv4: 3, ..Default::default() };
    let stale = PoolWrite { resource_version: Some("1".into()), status: status.clone() };
    let err = pools_as_controller
        .patch_status("p", &PatchParams::default(), &Patch::Merge(&pool_status::patch_body(&stale)))
        .await
        .expect_err("stale pool version refused");
    assert!(service_status::is_conflict(&err), "{err}");
    assert_eq!(pools.get("p").await.unwrap().metadata.resource_version, pool.metadata.resource_version);
    let current = PoolWrite { resource_version: pool.metadata.resource_version.clone(), status };
    let written = pools_as_controller
        .patch_status("p", &PatchParams::default(), &Patch::Merge(&pool_status::patch_body(&current)))
        .await
        .expect("current pool version applies");
    assert_eq!(written.status.map(|s| s.assigned_ipv4), Some(1));
}
