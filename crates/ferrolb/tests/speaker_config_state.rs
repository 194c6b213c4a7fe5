//! `ConfigurationState/speaker-<node>` (crds.md §9, speaker.md §1.1 step 4)
//! written by the real `ferrolb speaker` against the real API server: Valid
//! after a load, Invalid naming the offending pool while the speaker keeps
//! announcing on its previous configuration, Valid again once fixed, and
//! rewritten when deleted or edited by hand; Invalid while a `bgpextras`
//! ConfigMap holds raw FRR configuration, with everything else applied.
//!
//! Needs root, iproute2, arping and python3 (scripts/test.sh installs them).

mod speaker_env;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_api::v1beta1::{ConfigurationResult, ConfigurationState, IPAddressPool};
use ferrolb_test_harness::apply_yaml;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use speaker_env::{Cluster, METALLB_NS, ServiceSpec};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until the object exists and `ok` holds for it; returns it.
async fn wait_state(c: &Cluster, api: &Api<ConfigurationState>, name: &str, what: &str, ok: impl Fn(&ConfigurationState) -> bool) -> ConfigurationState {
    let deadline = Instant::now() + WAIT;
    loop {
        let current = api.get_opt(name).await.expect("get ConfigurationState");
        if let Some(cs) = &current
            && ok(cs)
        {
            return cs.clone();
        }
        assert!(Instant::now() < deadline, "ConfigurationState/{name}: not {what}: {:?}\n{}", current.and_then(|c| c.status), c.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn result(cs: &ConfigurationState) -> Option<ConfigurationResult> {
    cs.status.as_ref().and_then(|s| s.result)
}

/// Waits until speaker 1's metrics show `line`.
async fn wait_metric(c: &Cluster, line: &str) {
    let deadline = Instant::now() + WAIT;
    while !c.metrics(1).lines().any(|l| l.trim() == line) {
        assert!(Instant::now() < deadline, "no {line:?} in\n{}\n{}", c.metrics(1), c.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaker_reports_its_configuration_verdict_in_its_configuration_state() {
    let _serial = speaker_env::serial().await;
    let c = Cluster::start("cfgst", 1, 5).await;
    let node = c.node_name(1);
    let name = format!("speaker-{node}");
    let api: Api<ConfigurationState> = Api::namespaced(c.admin.clone(), METALLB_NS);
    let pools: Api<IPAddressPool> = Api::namespaced(c.admin.clone(), METALLB_NS);
    let bad = format!("{}-bad", c.prefix);

    let valid = wait_state(&c, &api, &name, "Valid", |cs| result(cs) == Some(ConfigurationResult::Valid)).await;
    let labels = valid.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("metallb.io/component-type").map(String::as_str), Some("speaker"));
    assert_eq!(labels.get("metallb.io/node-name"), Some(&node));
    let owners = valid.metadata.owner_references.clone().unwrap_or_default();
    assert!(owners.iter().any(|o| o.kind == "Pod" && o.name == name), "owned by the speaker Pod: {owners:?}");
    let status = valid.status.clone().expect("status");
    assert_eq!(status.error_summary, "");
    let condition = status.conditions.iter().find(|c| c.type_ == "configReconcilerValid").expect("configReconcilerValid");
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "Reconciled"));

    // Deleted by hand: written again.
    api.delete(&name, &DeleteParams::default()).await.expect("delete ConfigurationState");
    let old_uid = valid.metadata.uid.clone();
    let recreated =
        wait_state(&c, &api, &name, "recreated", |cs| cs.metadata.uid != old_uid && result(cs) == Some(ConfigurationResult::Valid)).await;

    let v4 = c.vip(0);
    c.create_service(&ServiceSpec::new("web", &[IpAddr::V4(v4)]).endpoints_on(&[1])).await;
    assert_eq!(c.wait_single_arp_owner(v4, WAIT).await, 1);
    // Passes that do not change the verdict do not write.
    let unchanged = api.get(&name).await.expect("get ConfigurationState");
    assert_eq!(unchanged.metadata.resource_version, recreated.metadata.resource_version, "rewritten without a new verdict");
    wait_metric(&c, "metallb_k8s_client_config_stale_bool 0").await;

    // A second pool with the same address: the schema accepts it, the
    // configuration builder does not.
    let yaml = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {bad}, namespace: {METALLB_NS}}}\nspec: {{addresses: [{v4}/32], autoAssign: false}}\n"
    );
    apply_yaml(&c.admin, &yaml).await.expect("overlapping pool");
    let invalid = wait_state(&c, &api, &name, "Invalid", |cs| result(cs) == Some(ConfigurationResult::Invalid)).await;
    let status = invalid.status.clone().expect("status");
    assert!(status.error_summary.starts_with("configuration error: "), "{}", status.error_summary);
    assert!(status.error_summary.contains(&bad), "the error names the pool: {}", status.error_summary);
    let condition = status.conditions.iter().find(|c| c.type_ == "configReconcilerValid").expect("configReconcilerValid");
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", "ConfigurationError"));
    assert_eq!(condition.message, status.error_summary);
    wait_metric(&c, "metallb_k8s_client_config_stale_bool 1").await;
    // The previous configuration stays in force.
    assert_eq!(c.wait_single_arp_owner(v4, WAIT).await, 1, "still announced on the previous configuration");

    // Edited by hand to say Valid: the speaker puts its verdict back.
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": {"result": "Valid", "errorSummary": ""}})))
        .await
        .expect("edit status");
    wait_state(&c, &api, &name, "Invalid again after the edit", |cs| {
        cs.status.as_ref().is_some_and(|s| s.result == Some(ConfigurationResult::Invalid) && s.error_summary.contains(&bad))
    })
    .await;

    pools.delete(&bad, &DeleteParams::default()).await.expect("delete the overlapping pool");
    wait_state(&c, &api, &name, "Valid after the fix", |cs| {
        cs.status.as_ref().is_some_and(|s| s.result == Some(ConfigurationResult::Valid) && s.error_summary.is_empty())
    })
    .await;
    wait_metric(&c, "metallb_k8s_client_config_stale_bool 0").await;
    wait_metric(&c, "metallb_k8s_client_config_loaded_bool 1").await;
    assert_eq!(c.wait_single_arp_owner(v4, WAIT).await, 1);

    // Raw FRR configuration in the bgpextras ConfigMap cannot be honoured:
    // the state says so, and the rest of the configuration still applies.
    apply_yaml(
        &c.admin,
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bgpextras, namespace: {METALLB_NS}}}\ndata: {{extras: \"router bgp 64512\\n\"}}\n"),
    )
    .await
    .expect("bgpextras");
    let extras = wait_state(&c, &api, &name, "Invalid for bgpextras", |cs| {
        cs.status.as_ref().is_some_and(|s| s.result == Some(ConfigurationResult::Invalid) && s.error_summary.contains("bgpextras"))
    })
    .await;
    assert!(extras.status.expect("status").error_summary.contains("cannot honour"));
    wait_metric(&c, "metallb_k8s_client_config_stale_bool 0").await;
    let v4b = c.vip(1);
    c.create_service(&ServiceSpec::new("after-extras", &[IpAddr::V4(v4b)]).endpoints_on(&[1])).await;
    assert_eq!(c.wait_single_arp_owner(v4b, WAIT).await, 1, "new Services are still announced");
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(c.admin.clone(), METALLB_NS)
        .delete("bgpextras", &DeleteParams::default())
        .await
        .expect("delete bgpextras");
    wait_state(&c, &api, &name, "Valid without bgpextras", |cs| result(cs) == Some(ConfigurationResult::Valid)).await;

    c.shutdown().await;
    api.delete(&name, &DeleteParams::default()).await.expect("delete ConfigurationState");
}
