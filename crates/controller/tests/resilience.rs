//! Restart and failover against the real API server: no Service changes
//! address because a controller died, and a standby takes over.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use ferrolb_test_harness::wait_for;
use futures::StreamExt;
use kube::api::ListParams;

async fn snapshot(env: &Env) -> BTreeMap<String, Vec<String>> {
    env.services()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|s| !ips(s).is_empty())
        .map(|s| (s.metadata.name.clone().unwrap(), ips(s)))
        .collect()
}

async fn create_services(client: kube::Client, ns: String, class: String, range: std::ops::Range<usize>) {
    let api: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::namespaced(client, &ns);
    futures::stream::iter(range)
        .map(|i| {
            let api = api.clone();
            let class = class.clone();
            async move {
                let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("s{i:04}")},
                    "spec": {"type": "LoadBalancer", "loadBalancerClass": class, "ports": [{"port": 80}]}
                }))
                .unwrap();
                api.create(&Default::default(), &svc).await.expect("create service");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test]
async fn restart_mid_stream_keeps_every_address() {
    const N: usize = 500;
    let env = env("restart", true).await;
    env.apply(&pool_yaml("big", &["10.64.0.0/22"], "")).await;
    let first = env.start(&[]).await;

    // The first half is created while the controller runs and it is killed
    // once a quarter has addresses (so writes are in flight); the second
    // half arrives while no controller runs.
    let creator = tokio::spawn(create_services(env.client.clone(), env.apps.clone(), env.class.clone().unwrap(), 0..N / 2));
    wait_for("a quarter of the Services assigned", Duration::from_secs(120), || async {
        (snapshot(&env).await.len() >= N / 4).then_some(())
    })
    .await
    .unwrap();
    first.kill();
    creator.await.unwrap();
    create_services(env.client.clone(), env.apps.clone(), env.class.clone().unwrap(), N / 2..N).await;
    // Requests already on the wire when the task died have landed by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = snapshot(&env).await;
    println!("killed the controller with {} of {N} Services assigned (writes in flight at the kill landed after it)", before.len());
    assert!(before.len() < N);

    let second = env.start(&[]).await;
    let after = wait_for("every Service assigned", Duration::from_secs(180), || async {
        let s = snapshot(&env).await;
        (s.len() == N).then_some(s)
    })
    .await
    .unwrap();
    for (name, ips) in &before {
        assert_eq!(after.get(name), Some(ips), "{name} changed address across the restart");
    }
    let distinct: HashSet<&Vec<String>> = after.values().collect();
    assert_eq!(distinct.len(), N, "addresses are unique");
    second.shutdown().await;
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_dies() {
    let env = env("failover", true).await;
    env.apply(&pool_yaml("p", &["10.99.0.0/29"], "")).await;
    let le = ["--leader-elect=true"];
    let a = env.start(&[le[0], "--pod-name=ctl-a"]).await;
    wait_for("a leads", WAIT, || async { (a.metrics.is_leader.get() == 1).then_some(()) }).await.unwrap();
    let b = env.start(&[le[0], "--pod-name=ctl-b"]).await;

    env.create_service("s1", "").await;
    assert_eq!(env.wait_ips("s1").await, ["10.99.0.0"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.metrics.is_leader.get(), 0, "one leader");
    assert_eq!(b.metrics.requests_for(None, "services/status"), 0, "the standby never writes");

    a.kill();
    let died = Instant::now();
    env.create_service("s2", "").await;
    assert_eq!(env.wait_ips("s2").await, ["10.99.0.1"]);
    println!("standby served a new Service {:?} after the leader died", died.elapsed());
    assert_eq!(b.metrics.is_leader.get(), 1);
    assert_eq!(ips(&env.services().get("s1").await.unwrap()), ["10.99.0.0"]);
    b.shutdown().await;
}

#[tokio::test]
async fn a_controller_that_loses_the_lease_stops_writing() {
    use k8s_openapi::api::coordination::v1::Lease;
    let env = env("deposed", true).await;
    env.apply(&pool_yaml("p", &["10.98.0.0/29"], "")).await;
    let a = env.start(&["--leader-elect=true", "--pod-name=ctl-a"]).await;
    wait_for("a leads", WAIT, || async { (a.metrics.is_leader.get() == 1).then_some(()) }).await.unwrap();
    env.create_service("before", "").await;
    env.wait_ips("before").await;

    // Another holder takes the lease (a replica that judged it expired).
    let leases: kube::Api<Lease> = kube::Api::namespaced(env.client.clone(), &env.system);
    let mut lease = leases.get("ferrolb-controller").await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.lease_duration_seconds = Some(600);
    leases.replace("ferrolb-controller", &Default::default(), &lease).await.unwrap();
    wait_for("a steps down", WAIT, || async { (a.metrics.is_leader.get() == 0).then_some(()) }).await.unwrap();
    let writes = a.metrics.requests_for(Some("PATCH"), "services/status");

    env.create_service("after", "").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = env.services().get("after").await.unwrap();
    assert!(ips(&after).is_empty(), "a deposed leader assigned {:?}", ips(&after));
    assert_eq!(a.metrics.requests_for(Some("PATCH"), "services/status"), writes, "no status write after losing the lease");
    a.shutdown().await;
}
