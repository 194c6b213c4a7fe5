//! A Kubernetes Service copied into the allocator's [`ServiceView`], without
//! interpretation (docs/interfaces.md): every parse and message lives in the allocator.

use ferrolb_allocator::ServiceView;
use k8s_openapi::api::core::v1::Service;

pub fn view(svc: &Service) -> ServiceView {
    let meta = &svc.metadata;
    let spec = svc.spec.as_ref();
    let ingress_ips = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| ingress.iter().filter_map(|i| i.ip.clone()).filter(|ip| !ip.is_empty()).collect())
        .unwrap_or_default();
    ServiceView {
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        name: meta.name.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        type_: spec.and_then(|s| s.type_.clone()),
        load_balancer_class: spec.and_then(|s| s.load_balancer_class.clone()),
        load_balancer_ip: spec.and_then(|s| s.load_balancer_ip.clone()),
        cluster_ip: spec.and_then(|s| s.cluster_ip.clone()),
        cluster_ips: spec.and_then(|s| s.cluster_ips.clone()).unwrap_or_default(),
        ip_family_policy: spec.and_then(|s| s.ip_family_policy.clone()),
        ip_families: spec.and_then(|s| s.ip_families.clone()).unwrap_or_default(),
        ports: spec
            .and_then(|s| s.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| (p.protocol.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "TCP".into()), p.port))
                    .collect()
            })
            .unwrap_or_default(),
        external_traffic_policy: spec.and_then(|s| s.external_traffic_policy.clone()),
        selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
        ingress_ips,
        creation_timestamp: meta.creation_timestamp.as_ref().map(|t| t.0.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn copies_every_field() {
        let s = svc(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"},
                "annotations": {"metallb.io/address-pool": "p"}, "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "c", "loadBalancerIP": "10.0.0.1",
                "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1"], "ipFamilyPolicy": "PreferDualStack",
                "ipFamilies": ["IPv4", "IPv6"], "externalTrafficPolicy": "Local", "selector": {"app": "web"},
                "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"hostname": "x.example"}, {"ip": ""}]}}
        }));
        let v = view(&s);
        assert_eq!(v.namespace, "prod");
        assert_eq!(v.name, "web");
        assert_eq!(v.labels["app"], "web");
        assert_eq!(v.annotations["metallb.io/address-pool"], "p");
        assert_eq!(v.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(v.load_balancer_class.as_deref(), Some("c"));
        assert_eq!(v.load_balancer_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(v.cluster_ip.as_deref(), Some("10.96.0.1"));
        assert_eq!(v.cluster_ips, ["10.96.0.1", "fd00::1"]);
        assert_eq!(v.ip_family_policy.as_deref(), Some("PreferDualStack"));
        assert_eq!(v.ip_families, ["IPv4", "IPv6"]);
        assert_eq!(v.ports, [("TCP".to_string(), 80), ("UDP".to_string(), 53)]);
        assert_eq!(v.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(v.selector["app"], "web");
        assert_eq!(v.ingress_ips, ["10.0.0.1"]);
        assert_eq!(v.creation_timestamp.as_deref(), Some("2024-01-02T03:04:05Z"));
    }

    #[test]
    fn empty_service() {
        let v = view(&Service::default());
        assert_eq!(v.namespace, "default");
        assert!(v.ports.is_empty());
        assert!(v.ingress_ips.is_empty());
        assert_eq!(v.type_, None);
    }
}
