//! Lease-based leader election against the real API server.

use std::time::{Duration, Instant};

use ferrolb_runtime::leader::{LeaderConfig, LeaderElector};
use ferrolb_test_harness::{create_namespace, shared, unique_name};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
    let fixture = shared().await.expect("fixture");
    let client = fixture.client().unwrap();
    let ns = unique_name("leader");
    create_namespace(&client, &ns).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
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
    let lease = leases.get("ferrolb-controller").await.unwrap();
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
    let fixture = shared().await.expect("fixture");
    let client = fixture.client().unwrap();
    let ns = unique_name("leader");
    create_namespace(&client, &ns).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let (tx, mut rx) = watch::channel(false);
    let stop = CancellationToken::new();
    let t = tokio::spawn(LeaderElector::new(leases.clone(), cfg("a", Duration::from_secs(6))).run(tx, stop.clone()));
    assert!(wait_true(&mut rx, Duration::from_secs(20)).await);
    // Someone else grabs the lease behind a's back (as a replica that
    // judged it expired during a network partition would).
    let mut lease = leases.get("ferrolb-controller").await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    leases.replace("ferrolb-controller", &Default::default(), &lease).await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| !*v)).await;
    assert!(lost.is_ok(), "leader kept leading after losing the lease");
    stop.cancel();
    t.await.unwrap();
    // Not the holder any more: stopping must not clear the intruder's lease.
    let lease = leases.get("ferrolb-controller").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("intruder"));
}
