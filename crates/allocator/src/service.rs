//! The Service as the allocation rules see it, and how its fields are read
//! (allocation.md §2, §7.1, §7.2, §8; crds.md §11).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::family::{Family, Policy, ServiceFamily, family_for_addresses, parse_ip};
use crate::gofmt::quote;

/// Annotation keys read and written by the allocation path (defined in `ferrolb_api`).
pub use ferrolb_api::annotations;

/// The raw Service fields the allocation rules read, copied without interpretation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.type`
    pub type_: Option<String>,
    pub load_balancer_class: Option<String>,
    /// `spec.loadBalancerIP`
    pub load_balancer_ip: Option<String>,
    pub cluster_ip: Option<String>,
    pub cluster_ips: Vec<String>,
    pub ip_family_policy: Option<String>,
    pub ip_families: Vec<String>,
    /// `(protocol, port)`; an empty protocol means TCP.
    pub ports: Vec<(String, i32)>,
    pub external_traffic_policy: Option<String>,
    pub selector: BTreeMap<String, String>,
    /// `status.loadBalancer.ingress[].ip`, non-empty ones.
    pub ingress_ips: Vec<String>,
    /// RFC 3339, used by `ferrolb plan` for ordering.
    pub creation_timestamp: Option<String>,
}

/// `namespace/name`, the identity of a Service in the allocator.
///
/// Shared strings: a key is copied into every index that names the Service
/// (the controller's, and the speaker's caches, decision, status plan and
/// writer queue), and with `String`s each copy was two allocations; at
/// 10,000 Services those copies were several MiB of the speaker's memory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of(view: &ServiceView) -> Self {
        ServiceKey::new(view.namespace.clone(), view.name.clone())
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One `(protocol, port)` pair of a Service; `Display` is upstream's `TCP/80`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub protocol: String,
    pub port: i32,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// Addresses the Service asks for and their family (upstream `getDesiredLbIPs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredIps {
    pub ips: Vec<IpAddr>,
    pub family: ServiceFamily,
}

impl ServiceView {
    pub fn key(&self) -> ServiceKey {
        ServiceKey::of(self)
    }

    pub fn is_load_balancer(&self) -> bool {
        self.type_.as_deref() == Some("LoadBalancer")
    }

    /// crds.md §11.1: the `metallb.io/` key wins whenever it is present,
    /// even with an empty value.
    pub fn annotation(&self, current: &str, deprecated: &str) -> &str {
        self.annotations
            .get(current)
            .or_else(|| self.annotations.get(deprecated))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// crds.md §11.2: without `--lb-class` only class-less Services are handled.
    pub fn handled_by(&self, lb_class: Option<&str>) -> bool {
        let wanted = lb_class.unwrap_or("");
        match &self.load_balancer_class {
            None => wanted.is_empty(),
            Some(class) => class == wanted,
        }
    }

    pub fn policy(&self) -> Policy {
        Policy::parse(self.ip_family_policy.as_deref())
    }

    /// Primary family of a PreferDualStack Service (allocation.md §5.2).
    pub fn primary_family(&self) -> Family {
        if self.ip_families.first().map(String::as_str) == Some("IPv6") {
            Family::V6
        } else {
            Family::V4
        }
    }

    pub fn has_cluster_ip(&self) -> bool {
        !self.cluster_ips.is_empty() || self.cluster_ip.as_deref().is_some_and(|c| !c.is_empty())
    }

    /// allocation.md §2 rules 1–2 (upstream `ipfamily.ForService`).
    pub fn family(&self) -> Result<ServiceFamily, String> {
        if !self.cluster_ips.is_empty() {
            family_for_addresses(&self.cluster_ips)
        } else {
            family_for_addresses(&[self.cluster_ip.as_deref().unwrap_or("")])
        }
    }

    /// Sharing key (allocation.md §8): empty means no sharing.
    pub fn sharing_key(&self) -> &str {
        self.annotation(
            annotations::ALLOW_SHARED_IP,
            annotations::ALLOW_SHARED_IP_DEPRECATED,
        )
    }

    /// Backend key (allocation.md §8): the selector for `Local` Services.
    pub fn backend_key(&self) -> String {
        if self.external_traffic_policy.as_deref() != Some("Local") {
            return String::new();
        }
        self.selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn port_set(&self) -> Vec<Port> {
        self.ports
            .iter()
            .map(|(protocol, port)| Port {
                protocol: if protocol.is_empty() {
                    "TCP".to_string()
                } else {
                    protocol.clone()
                },
                port: *port,
            })
            .collect()
    }

    /// Requested pool; empty means none.
    pub fn requested_pool(&self) -> &str {
        self.annotation(
            annotations::ADDRESS_POOL,
            annotations::ADDRESS_POOL_DEPRECATED,
        )
    }

    /// allocation.md §7.1 rules 1–3: `Ok(None)` when nothing is requested.
    pub fn desired_ips(&self) -> Result<Option<DesiredIps>, String> {
        let annotation = self.annotation(
            annotations::LOADBALANCER_IPS,
            annotations::LOADBALANCER_IPS_DEPRECATED,
        );
        let field = self.load_balancer_ip.as_deref().unwrap_or("");
        match (annotation.is_empty(), field.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Err(format!(
                "service can not have both {} and svc.Spec.LoadBalancerIP",
                annotations::LOADBALANCER_IPS
            )),
            (false, true) => {
                let mut ips = Vec::new();
                for item in annotation.split(',') {
                    match parse_ip(item.trim()) {
                        Some(ip) => ips.push(ip),
                        None => {
                            return Err(format!(
                                "invalid {}: {}",
                                annotations::LOADBALANCER_IPS,
                                quote(annotation)
                            ));
                        }
                    }
                }
                let texts: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                let family = family_for_addresses(&texts)?;
                Ok(Some(DesiredIps { ips, family }))
            }
            (true, false) => match parse_ip(field) {
                Some(ip) => Ok(Some(DesiredIps {
                    family: ServiceFamily::single(Family::of(&ip)),
                    ips: vec![ip],
                })),
                None => Err(format!("invalid spec.loadBalancerIP {}", quote(field))),
            },
        }
    }

    /// Annotation keys under the deprecated prefix, in key order.
    pub fn deprecated_annotation_keys(&self) -> impl Iterator<Item = &str> {
        self.annotations
            .keys()
            .filter(|k| k.starts_with(annotations::DEPRECATED_PREFIX))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ServiceView {
        ServiceView {
            namespace: "ns".into(),
            name: "svc".into(),
            type_: Some("LoadBalancer".into()),
            cluster_ip: Some("10.96.0.1".into()),
            cluster_ips: vec!["10.96.0.1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn current_annotation_wins_even_when_empty() {
        let mut v = view();
        v.annotations
            .insert(annotations::ALLOW_SHARED_IP_DEPRECATED.into(), "old".into());
        assert_eq!(v.sharing_key(), "old");
        v.annotations
            .insert(annotations::ALLOW_SHARED_IP.into(), "".into());
        assert_eq!(v.sharing_key(), "");
        v.annotations
            .insert(annotations::ALLOW_SHARED_IP.into(), "new".into());
        assert_eq!(v.sharing_key(), "new");
    }

    #[test]
    fn backend_key_only_for_local() {
        let mut v = view();
        v.selector.insert("b".into(), "2".into());
        v.selector.insert("a".into(), "1".into());
        assert_eq!(v.backend_key(), "");
        v.external_traffic_policy = Some("Local".into());
        assert_eq!(v.backend_key(), "a=1,b=2");
    }

    #[test]
    fn desired_ips_parsing_and_errors() {
        let mut v = view();
        assert_eq!(v.desired_ips(), Ok(None));
        v.annotations.insert(
            annotations::LOADBALANCER_IPS.into(),
            " 10.0.0.1 , fc00::1".into(),
        );
        let d = v.desired_ips().unwrap().unwrap();
        assert_eq!(d.family, ServiceFamily::Dual);
        assert_eq!(d.ips.len(), 2);
        v.load_balancer_ip = Some("10.0.0.2".into());
        assert_eq!(
            v.desired_ips(),
            Err(
                "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
                    .into()
            )
        );
        v.annotations.clear();
        v.load_balancer_ip = Some("nope".into());
        assert_eq!(
            v.desired_ips(),
            Err("invalid spec.loadBalancerIP \"nope\"".into())
        );
        v.load_balancer_ip = None;
        v.annotations
            .insert(annotations::LOADBALANCER_IPS.into(), "10.0.0.1,x".into());
        assert_eq!(
            v.desired_ips(),
            Err("invalid metallb.io/loadBalancerIPs: \"10.0.0.1,x\"".into())
        );
        v.annotations.insert(
            annotations::LOADBALANCER_IPS.into(),
            "10.0.0.1,10.0.0.2".into(),
        );
        assert_eq!(
            v.desired_ips(),
            Err("IPFamilyForAddresses: same address family [\"10.0.0.1\" \"10.0.0.2\"]".into())
        );
        v.annotations.insert(
            annotations::LOADBALANCER_IPS.into(),
            "10.0.0.1,fc00::1,10.0.0.3".into(),
        );
        assert_eq!(
            v.desired_ips(),
            Err(
                "IPFamilyForAddresses: invalid ips length 3 [\"10.0.0.1\" \"fc00::1\" \"10.0.0.3\"]"
                    .into()
            )
        );
    }

    #[test]
    fn lb_class_filter() {
        let mut v = view();
        assert!(v.handled_by(None));
        assert!(!v.handled_by(Some("x")));
        v.load_balancer_class = Some("x".into());
        assert!(!v.handled_by(None));
        assert!(v.handled_by(Some("x")));
    }

    #[test]
    fn ports_default_to_tcp() {
        let mut v = view();
        v.ports = vec![("".into(), 80), ("UDP".into(), 53)];
        let p = v.port_set();
        assert_eq!(p[0].to_string(), "TCP/80");
        assert_eq!(p[1].to_string(), "UDP/53");
    }
}
