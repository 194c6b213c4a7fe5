//! The seed scenario end to end with plain Services (no load-balancer
//! class): pools that only carry `serviceAllocation: {priority: N}` serve
//! every Service, the lower number first; a Service that cannot be served
//! says why for each pool. (Own test binary: a controller without
//! `--lb-class` handles every classless Service of its API server.)

mod common;

use common::*;
use ferrolb_controller::service_status::POOL_ANNOTATION;

#[tokio::test]
async fn priority_only_pools_serve_plain_services() {
    let env = env("seed", false).await;
    env.apply(&pool_yaml("second", &["10.20.0.7/32"], "  serviceAllocation:\n    priority: 20\n")).await;
    env.apply(&pool_yaml("first", &["10.10.0.7/32"], "  serviceAllocation:\n    priority: 10\n")).await;
    let ctl = env.start(&[]).await;

    env.create_service("one", "").await;
    assert_eq!(env.wait_ips("one").await, ["10.10.0.7"]);
    let one = env.services().get("one").await.unwrap();
    assert_eq!(annotation(&one, POOL_ANNOTATION).as_deref(), Some("first"));

    env.create_service("two", "").await;
    assert_eq!(env.wait_ips("two").await, ["10.20.0.7"]);

    env.create_service("three", "").await;
    let ev = env.wait_event("three", "AllocationFailed", "no available IPs").await;
    let msg = ev.message.unwrap();
    assert!(msg.starts_with(&format!("Failed to allocate IP for \"{}/three\": no available IPs", env.apps)), "{msg}");
    assert!(msg.contains("pool \"first\"") && msg.contains("pool \"second\""), "each pool named: {msg}");
    let three = env
        .wait_service("three", "pending condition", |s| condition(s).is_some_and(|c| c.status == "False"))
        .await;
    let cond = condition(&three).unwrap();
    assert_eq!(cond.reason, "PoolExhausted");
    assert!(cond.message.contains("pool \"first\"") && cond.message.contains("pool \"second\""), "{}", cond.message);

    // A Service that stops being a LoadBalancer is cleared entirely, and
    // the waiting one gets the freed address.
    let patch = serde_json::json!({"spec": {"type": "ClusterIP"}});
    env.services().patch("one", &Default::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let one = env
        .wait_service("one", "cleared", |s| ips(s).is_empty() && annotation(s, POOL_ANNOTATION).is_none())
        .await;
    assert!(condition(&one).is_none(), "condition removed");
    assert_eq!(env.wait_ips("three").await, ["10.10.0.7"]);
    ctl.shutdown().await;
}
