//! Projections of Kubernetes objects to what [`crate::decide`] reads.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use ferrolb_allocator::ServiceKey;
use ferrolb_api::annotations::{ALLOW_SHARED_IP, ALLOW_SHARED_IP_DEPRECATED};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use crate::decide::{NodeState, ServiceState};
use crate::intern;

/// Label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the speaker keeps of a Service (endpoints are joined in later), if
/// this speaker handles its class (controller.md §3.1: no `--lb-class`
/// handles Services without a class; with one, exactly that class).
/// What the speaker keeps of a Service, `key` being its key (shared).
pub fn service_facts(key: &ServiceKey, svc: &Service, lb_class: &str) -> Option<ServiceState> {
    let spec = svc.spec.as_ref()?;
    let class = spec.load_balancer_class.as_deref().unwrap_or("");
    if class != lb_class {
        return None;
    }
    let annotations = svc.annotations();
    let ingress = ferrolb_config::view::ingress_ips(svc);
    Some(ServiceState {
        key: key.clone(),
        is_load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
        labels: shared_labels(svc.labels()),
        has_sharing_key: annotations.contains_key(ALLOW_SHARED_IP) || annotations.contains_key(ALLOW_SHARED_IP_DEPRECATED),
        ingress: ingress.into(),
        local_traffic_policy: spec.external_traffic_policy.as_deref() == Some("Local"),
        // Joined in from the EndpointSlices (crate::inputs).
        endpoints: Vec::new(),
    })
}

/// Labels as the decision holds them; Services without labels share one
/// empty set instead of allocating one each.
fn shared_labels(labels: &BTreeMap<String, String>) -> Arc<BTreeMap<String, String>> {
    static NONE: LazyLock<Arc<BTreeMap<String, String>>> = LazyLock::new(Arc::default);
    if labels.is_empty() { NONE.clone() } else { Arc::new(labels.clone()) }
}

/// What the decision reads of one EndpointSlice: which nodes have a
/// serving endpoint of the Service (speaker.md §3.2 step 1). Endpoints that
/// do not serve never matter, and a node with several counts once, so only
/// that is kept: a slice of 100 endpoints on 3 nodes costs 3 names.
///
/// The Service is named without its namespace: a slice belongs to a Service
/// of its own namespace, which the watch's key already holds, and 10,000
/// slices would otherwise carry 10,000 more copies of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceFacts {
    /// The `kubernetes.io/service-name` label: a Service of the slice's namespace.
    pub service_name: Arc<str>,
    /// Nodes with a serving endpoint, sorted, each once; interned
    /// ([`intern::node`]).
    pub serving_nodes: Box<[Arc<str>]>,
    /// A serving endpoint names no node.
    pub serving_unplaced: bool,
}

pub fn slice_facts(slice: &EndpointSlice) -> Option<SliceFacts> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?;
    let mut serving_nodes = Vec::new();
    let mut serving_unplaced = false;
    for e in &slice.endpoints {
        let conditions = e.conditions.as_ref();
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
        let serving = conditions.and_then(|c| c.serving).unwrap_or(false);
        if !(ready || serving) {
            continue;
        }
        match &e.node_name {
            Some(node) => serving_nodes.push(intern::node(node)),
            None => serving_unplaced = true,
        }
    }
    serving_nodes.sort_unstable();
    serving_nodes.dedup();
    Some(SliceFacts { service_name: Arc::from(service.as_str()), serving_nodes: serving_nodes.into_boxed_slice(), serving_unplaced })
}

/// What the speaker keeps of a Node.
pub fn node_facts(node: &Node) -> Option<NodeState> {
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| conds.iter().any(|c| c.type_ == "NetworkUnavailable" && c.status == "True"));
    Some(NodeState { labels: node.labels().clone(), network_unavailable })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        serde_json::from_value(serde_saphyr::from_str::<serde_json::Value>(yaml).unwrap()).unwrap()
    }

    #[test]
    fn class_filter_and_fields() {
        let s = svc(
            "metadata: {name: web, namespace: shop, annotations: {metallb.universe.tf/allow-shared-ip: k}}\n\
             spec: {type: LoadBalancer, externalTrafficPolicy: Local}\n\
             status: {loadBalancer: {ingress: [{ip: 198.51.100.10}, {hostname: x}]}}",
        );
        let f = service_facts(&crate::watch::key_of(&s), &s, "").unwrap();
        assert_eq!(f.key, ServiceKey::new("shop", "web"));
        assert!(f.is_load_balancer && f.has_sharing_key && f.local_traffic_policy);
        assert_eq!(&*f.ingress, ["198.51.100.10".to_string()]);
        assert!(service_facts(&crate::watch::key_of(&s), &s, "other").is_none());
    }

    #[test]
    fn endpoint_readiness_follows_metallb() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "nodeName": "n1"},
                {"addresses": ["10.0.0.2"], "nodeName": "n2", "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"], "nodeName": "n3", "conditions": {"ready": false, "serving": true}},
                {"addresses": ["10.0.0.4"], "nodeName": "n1"}
            ]
        }))
        .unwrap();
        let f = slice_facts(&slice).unwrap();
        assert_eq!(&*f.service_name, "web");
        assert_eq!(&*f.serving_nodes, &[Arc::<str>::from("n1"), Arc::from("n3")]);
        assert!(!f.serving_unplaced);

        let unplaced: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-2", "namespace": "shop", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.5"]}, {"addresses": ["10.0.0.6"], "conditions": {"ready": false}}]
        }))
        .unwrap();
        let f = slice_facts(&unplaced).unwrap();
        assert!(f.serving_nodes.is_empty() && f.serving_unplaced);
    }

    #[test]
    fn node_names_are_shared_between_slices() {
        let slice = |name: &str| -> EndpointSlice {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "shop", "labels": {SERVICE_NAME_LABEL: "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "n1"}]
            }))
            .unwrap()
        };
        let (a, b) = (slice_facts(&slice("a")).unwrap(), slice_facts(&slice("b")).unwrap());
        assert!(Arc::ptr_eq(&a.serving_nodes[0], &b.serving_nodes[0]), "one copy of n1");
    }
}
