//! Facts about the API server the controller's write path relies on,
//! checked against the real kube-apiserver fixture. The controller's writes
//! are made as its ServiceAccount under deploy/'s RBAC; set-up as admin.

mod common;

use std::collections::BTreeMap;

use ferrolb_controller::service_status::{self, CONDITION_TYPE, ConditionSpec, Current, Desired, POOL_ANNOTATION};
use ferrolb_test_harness::{create_namespace, unique_name};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

fn lb_service(name: &str) -> Service {
    Service {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort { port: 80, ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn desired(ip: &str, pool: &str) -> Desired {
    Desired {
        ips: vec![ip.into()],
        pool: Some(pool.into()),
        condition: Some(ConditionSpec { status: true, reason: "IPAllocated".into(), message: format!("Assigned IP [\"{ip}\"]") }),
    }
}

/// Services of a new namespace as admin and as the controller.
async fn apis() -> (Api<Service>, Api<Service>) {
    let client = common::fixture().await.client().unwrap();
    let ns = unique_name("semantics");
    create_namespace(&client, &ns).await.unwrap();
    let controller = common::controller_client(&client, &ns).await;
    (Api::namespaced(client, &ns), Api::namespaced(controller, &ns))
}

#[tokio::test]
async fn one_status_patch_writes_ingress_condition_and_annotation() {
    let (api, controller) = apis().await;
    let created = api.create(&PostParams::default(), &lb_service("web")).await.unwrap();
    // Someone else's condition must survive ours (merge by type).
    let other = serde_json::json!({"status": {"conditions": [{
        "type": "example.com/Other", "status": "True", "reason": "Because", "message": "",
        "lastTransitionTime": "2025-01-01T00:00:00Z"}]}});
    api.patch_status("web", &Default::default(), &kube::api::Patch::Merge(&other)).await.unwrap();

    let want = desired("192.0.2.10", "pool-a");
    let body = service_status::patch_body(created.metadata.uid.as_deref(), &Current::of(&created), &want, Timestamp::now());
    let updated = service_status::write(&controller, "web", &body).await.unwrap();

    let fresh = api.get("web").await.unwrap();
    for svc in [&updated, &fresh] {
        let ann: BTreeMap<String, String> = svc.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(ann.get(POOL_ANNOTATION).map(String::as_str), Some("pool-a"), "annotation persisted via /status");
        let cur = Current::of(svc);
        assert_eq!(cur.ips(), vec!["192.0.2.10".to_string()]);
        assert!(!cur.differs_from(&want), "nothing left to write: {cur:?}");
        let types: Vec<_> = svc.status.as_ref().unwrap().conditions.as_ref().unwrap().iter().map(|c| c.type_.clone()).collect();
        assert!(types.contains(&"example.com/Other".to_string()) && types.contains(&CONDITION_TYPE.to_string()), "{types:?}");
    }

    // Clearing removes all three, and leaves the foreign condition alone.
    let body = service_status::patch_body(fresh.metadata.uid.as_deref(), &Current::of(&fresh), &Desired::default(), Timestamp::now());
    let cleared = service_status::write(&controller, "web", &body).await.unwrap();
    let cur = Current::of(&cleared);
    assert!(cur.ingress.is_empty() && cur.pool.is_none() && cur.condition.is_none(), "{cur:?}");
    assert_eq!(cleared.status.unwrap().conditions.unwrap().len(), 1);
}

#[tokio::test]
async fn status_patch_with_a_stale_uid_is_refused() {
    let (api, controller) = apis().await;
    let first = api.create(&PostParams::default(), &lb_service("again")).await.unwrap();
    api.delete("again", &Default::default()).await.unwrap();
    let second = api.create(&PostParams::default(), &lb_service("again")).await.unwrap();
    assert_ne!(first.metadata.uid, second.metadata.uid);
    let body = service_status::patch_body(first.metadata.uid.as_deref(), &Current::of(&first), &desired("192.0.2.11", "p"), Timestamp::now());
    let err = service_status::write(&controller, "again", &body).await.expect_err("stale uid must be refused");
    match err {
        // The API server answers 422 "metadata.uid: field is immutable".
        kube::Error::Api(s) => assert!(s.code == 422 && s.message.contains("metadata.uid"), "{s:?}"),
        other => panic!("unexpected error {other}"),
    }
    assert!(Current::of(&api.get("again").await.unwrap()).ips().is_empty());
}
