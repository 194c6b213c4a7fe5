//! Lease-based leader election against the real API server, as the
//! controller's ServiceAccount under deploy/'s RBAC (the test inspects and
//! tampers with the Lease as admin).

mod common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use ferrolb_runtime::leader::{LeaderConfig, LeaderElector};
use ferrolb_test_harness::{create_namespace, unique_name};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A namespace for one test, and the Lease API there as admin and as the
/// controller.
async fn leases(prefix: &str) -> (String, Api<Lease>, Api<Lease>) {
    let fixture = common::fixture().await;
    let admin = fixture.client().unwrap();
    let ns = unique_name(prefix);
    create_namespace(&admin, &ns).await.unwrap();
    let controller = common::controller_client(&admin, &ns).await;
    (ns.clone(), Api::namespaced(admin, &ns), Api::namespaced(controller, &ns))
}

fn cfg(identity: &str, lease: Duration) -> LeaderConfig {
    LeaderConfig {
        lease_name: "ferrolb-controller".into(),
        identity: identity.into(),
        lease_duration: lease,
        renew_deadline: lease * 2 / 3,
        retry_period: Duration::from_millis(500),
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>, limit: Duration) -> bool {
    tokio::time::timeout(limit, rx.wait_for(|v| *v)).await.is_ok()
}

#[tokio::test]
async fn one_leader_and_failover_after_the_leader_dies() {
    let (_, admin, leases) = leases("leader").await;
    let lease_duration = Duration::from_secs(6);

    let (tx_a, mut rx_a) = watch::channel(false);
    let (tx_b, mut rx_b) = watch::channel(false);
    let stop_b = CancellationToken::new();
    let a = tokio::spawn(LeaderElector::new(leases.clone(), cfg("a", lease_duration)).run(tx_a, CancellationToken::new()));
    assert!(wait_true(&mut rx_a, Duration::from_secs(20)).await, "a never became leader");
    let b = tokio::spawn(LeaderElector::new(leases.clone(), cfg("b", lease_duration)).run(tx_b, stop_b.clone()));

    // b must stay a follower while a renews.
    tokio::time::sleep(lease_duration + Duration::from_secs(2)).await;
    assert!(*rx_a.borrow() && !*rx_b.borrow(), "exactly one leader");
    let lease = admin.get("ferrolb-controller").await.unwrap();
    assert_eq!(lease.spec.as_ref().unwrap().holder_identity.as_deref(), Some("a"));

    // Kill a without releasing (a crash): b takes over after expiry.
    a.abort();
    let died = Instant::now();
    assert!(wait_true(&mut rx_b, lease_duration * 4).await, "b never took over");
    let took = died.elapsed();
    println!("failover after leader death took {took:?} (lease duration {lease_duration:?})");
    let lease = leases.get("ferrolb-controller").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));

    // A clean stop releases the lease so nobody waits for expiry.
    stop_b.cancel();
    b.await.unwrap();
    assert!(!*rx_b.borrow());
    let lease = leases.get("ferrolb-controller").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity, None);
}

#[tokio::test]
async fn a_leader_that_sees_another_holder_steps_down_at_once() {
    let (_, admin, leases) = leases("leader").await;
    let (tx, mut rx) = watch::channel(false);
    let stop = CancellationToken::new();
    let t = tokio::spawn(LeaderElector::new(leases.clone(), cfg("a", Duration::from_secs(6))).run(tx, stop.clone()));
    assert!(wait_true(&mut rx, Duration::from_secs(20)).await);
    // Someone else grabs the lease behind a's back (as a replica that
    // judged it expired during a network partition would).
    let mut lease = admin.get("ferrolb-controller").await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    admin.replace("ferrolb-controller", &Default::default(), &lease).await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| !*v)).await;
    assert!(lost.is_ok(), "leader kept leading after losing the lease");
    stop.cancel();
    t.await.unwrap();
    // Not the holder any more: stopping must not clear the intruder's lease.
    let lease = leases.get("ferrolb-controller").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("intruder"));
}

/// A client acting as the controller that reaches the API server through `proxy`.
async fn client_via(proxy: &Proxy, ns: &str) -> kube::Client {
    let fixture = common::fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let path = ferrolb_test_harness::identity::Identity::controller()
        .write_kubeconfig(fixture, &dir.path().join("kubeconfig"))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replace(fixture.server_url(), &proxy.url());
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    config.default_namespace = ns.to_string();
    kube::Client::try_from(config).unwrap()
}

/// The documented bound: a leader cut off from the API server reports
/// not-leading within the renew deadline of its last renewal, before a
/// standby can take the Lease (lease duration after it saw that renewal).
/// Timings are sub-second and not multiples of the retry period, where
/// rounding the written duration down or checking the deadline only after
/// a retry period would break the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_steps_down_before_a_standby_takes_over() {
    let (ns, admin, leases) = leases("stepdown").await;
    let timings = |identity: &str| LeaderConfig {
        lease_name: "ferrolb-controller".into(),
        identity: identity.into(),
        lease_duration: Duration::from_millis(2_800),
        renew_deadline: Duration::from_millis(2_500),
        retry_period: Duration::from_millis(1_000),
    };
    timings("a").validate().expect("valid timings");
    let proxy = Proxy::to_server(common::fixture().await.server_url()).await;
    let partitioned: Api<Lease> = Api::namespaced(client_via(&proxy, &ns).await, &ns);

    let (tx_a, mut rx_a) = watch::channel(false);
    let (tx_b, mut rx_b) = watch::channel(false);
    let stop = CancellationToken::new();
    let a = tokio::spawn(LeaderElector::new(partitioned, timings("a")).run(tx_a, stop.clone()));
    assert!(wait_true(&mut rx_a, Duration::from_secs(20)).await, "a never became leader");
    let b = tokio::spawn(LeaderElector::new(leases.clone(), timings("b")).run(tx_b, stop.clone()));
    let spec = admin.get("ferrolb-controller").await.unwrap().spec.unwrap();
    assert_eq!(spec.lease_duration_seconds, Some(3), "2.8 s is written rounded up");

    // Record when each renewal of a is first seen (no earlier than it was sent).
    let last_seen = std::sync::Arc::new(std::sync::Mutex::new(Instant::now()));
    let seen = last_seen.clone();
    let observer_stop = CancellationToken::new();
    let observing = observer_stop.clone();
    let observer = tokio::spawn(async move {
        let mut last = None;
        while !observing.is_cancelled() {
            if let Ok(l) = admin.get("ferrolb-controller").await {
                let spec = l.spec.unwrap_or_default();
                if spec.holder_identity.as_deref() == Some("a") && spec.renew_time != last {
                    last = spec.renew_time;
                    *seen.lock().unwrap() = Instant::now();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(*rx_a.borrow() && !*rx_b.borrow());

    proxy.down().await;
    let partitioned_at = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), rx_a.wait_for(|v| !*v)).await.expect("a never stepped down").unwrap();
    let stepped_down = Instant::now();
    assert!(wait_true(&mut rx_b, Duration::from_secs(20)).await, "b never took over");
    let took_over = Instant::now();
    observer_stop.cancel();
    observer.await.unwrap();
    let last_renewal = *last_seen.lock().unwrap();
    let after_renewal = stepped_down.duration_since(last_renewal);
    println!(
        "partitioned leader: stepped down {after_renewal:?} after its last renewal was seen \
         ({:?} after the partition); standby took over {:?} after that renewal",
        stepped_down.duration_since(partitioned_at),
        took_over.duration_since(last_renewal)
    );
    assert!(after_renewal < Duration::from_millis(2_800), "stepped down {after_renewal:?} after the last renewal");
    assert!(stepped_down < took_over, "two leaders at once");
    stop.cancel();
    let _ = a.await;
    b.await.unwrap();
}
