//! Service -> `ServiceView`: the raw fields the allocation rules read,
//! copied without interpretation (all parsing lives in the allocator).

use ferrolb_allocator::ServiceView;
use k8s_openapi::api::core::v1::Service;

pub fn service_view(svc: &Service) -> ServiceView {
    let meta = &svc.metadata;
    let spec = svc.spec.clone().unwrap_or_default();
    let ingress_ips = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|items| items.iter().filter_map(|i| i.ip.clone()).filter(|ip| !ip.is_empty()).collect())
        .unwrap_or_default();
    ServiceView {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        type_: spec.type_,
        load_balancer_class: spec.load_balancer_class,
        load_balancer_ip: spec.load_balancer_ip,
        cluster_ip: spec.cluster_ip,
        cluster_ips: spec.cluster_ips.unwrap_or_default(),
        ip_family_policy: spec.ip_family_policy,
        ip_families: spec.ip_families.unwrap_or_default(),
        ports: spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.protocol.unwrap_or_else(|| "TCP".to_string()), p.port))
            .collect(),
        external_traffic_policy: spec.external_traffic_policy,
        selector: spec.selector.unwrap_or_default(),
        ingress_ips,
        creation_timestamp: meta.creation_timestamp.as_ref().map(|t| t.0.to_string()),
    }
}
