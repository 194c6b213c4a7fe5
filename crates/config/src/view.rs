//! Service -> `ServiceView`: the raw fields the allocation rules read, copied
//! without interpretation (all parsing lives in the allocator). One mapping for
//! the live controller and the offline `plan`/`explain`; the speaker reads the
//! ingress addresses through [`ingress_ips`].

use ferrolb_allocator::ServiceView;
use k8s_openapi::api::core::v1::Service;

/// `status.loadBalancer.ingress[].ip`, in order, skipping items without an IP
/// (hostname-only items, empty strings).
pub fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|items| items.iter().filter_map(|i| i.ip.clone()).filter(|ip| !ip.is_empty()).collect())
        .unwrap_or_default()
}

pub fn service_view(svc: &Service) -> ServiceView {
    let meta = &svc.metadata;
    let spec = svc.spec.clone().unwrap_or_default();
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
        ingress_ips: ingress_ips(svc),
        creation_timestamp: meta.creation_timestamp.as_ref().map(|t| t.0.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).expect("a Service")
    }

    #[test]
    fn copies_fields_without_interpreting_them() {
        let s = svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                         "annotations": {"metallb.io/loadBalancerIPs": "not an ip"},
                         "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {"type": "LoadBalancer", "loadBalancerIP": "x", "clusterIP": "10.96.0.1",
                     "clusterIPs": ["10.96.0.1", "fd00::1"], "ipFamilyPolicy": "PreferDualStack",
                     "ipFamilies": ["IPv4", "IPv6"], "externalTrafficPolicy": "Local",
                     "selector": {"app": "web"},
                     "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}, {"hostname": "lb.example"},
                                                   {"ip": ""}, {"ip": "2001:db8::1"}]}}
        }));
        let v = service_view(&s);
        assert_eq!((v.namespace.as_str(), v.name.as_str()), ("shop", "web"));
        assert_eq!(v.annotations.get("metallb.io/loadBalancerIPs").map(String::as_str), Some("not an ip"));
        assert_eq!(v.load_balancer_ip.as_deref(), Some("x"));
        assert_eq!(v.ports, vec![("TCP".to_string(), 80), ("UDP".to_string(), 53)]);
        assert_eq!(v.cluster_ips.len(), 2);
        assert_eq!(v.ip_families, vec!["IPv4".to_string(), "IPv6".to_string()]);
        assert_eq!(v.ingress_ips, vec!["198.51.100.10".to_string(), "2001:db8::1".to_string()]);
        assert_eq!(v.creation_timestamp.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(ingress_ips(&s), v.ingress_ips);
    }

    #[test]
    fn a_bare_service_gives_empty_fields() {
        let v = service_view(&svc(serde_json::json!({"metadata": {"name": "a"}})));
        assert_eq!(v.name, "a");
        assert!(v.namespace.is_empty() && v.type_.is_none() && v.ports.is_empty() && v.ingress_ips.is_empty());
    }
}
