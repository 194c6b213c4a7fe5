//! Builders shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ferrolb_allocator::*;

pub fn pool(name: &str, cidrs: &[&str]) -> PoolDef {
    PoolDef::new(
        name,
        cidrs
            .iter()
            .map(|c| c.parse().expect("test CIDR"))
            .collect(),
    )
}

pub fn with_priority(mut p: PoolDef, priority: i32) -> PoolDef {
    p.allocation
        .get_or_insert_with(PoolAllocation::default)
        .priority = priority;
    p
}

pub fn with_namespaces(mut p: PoolDef, namespaces: &[&str]) -> PoolDef {
    let a = p.allocation.get_or_insert_with(PoolAllocation::default);
    a.has_namespace_constraint = true;
    a.namespaces = namespaces.iter().map(|s| s.to_string()).collect();
    p
}

pub fn with_selector(mut p: PoolDef, key: &str, value: &str) -> PoolDef {
    let mut sel = LabelSelector::default();
    sel.match_labels.insert(key.into(), value.into());
    p.allocation
        .get_or_insert_with(PoolAllocation::default)
        .service_selectors
        .push(sel);
    p
}

pub fn no_auto(mut p: PoolDef) -> PoolDef {
    p.auto_assign = false;
    p
}

pub fn avoid_buggy(mut p: PoolDef) -> PoolDef {
    p.avoid_buggy_ips = true;
    p
}

/// An IPv4 single-stack LoadBalancer Service with one TCP/80 port.
pub fn svc(ns: &str, name: &str) -> ServiceView {
    ServiceView {
        namespace: ns.into(),
        name: name.into(),
        type_: Some("LoadBalancer".into()),
        cluster_ip: Some("10.96.0.10".into()),
        cluster_ips: vec!["10.96.0.10".into()],
        ports: vec![("TCP".into(), 80)],
        ..Default::default()
    }
}

pub fn svc6(ns: &str, name: &str) -> ServiceView {
    let mut s = svc(ns, name);
    s.cluster_ip = Some("fd00::10".into());
    s.cluster_ips = vec!["fd00::10".into()];
    s
}

pub fn dual(ns: &str, name: &str, policy: &str, families: &[&str]) -> ServiceView {
    let mut s = svc(ns, name);
    s.cluster_ips = vec!["10.96.0.5".into(), "fd00::5".into()];
    s.cluster_ip = Some("10.96.0.5".into());
    s.ip_family_policy = Some(policy.into());
    s.ip_families = families.iter().map(|f| f.to_string()).collect();
    s
}

pub fn annotate(mut s: ServiceView, key: &str, value: &str) -> ServiceView {
    s.annotations.insert(key.into(), value.into());
    s
}

pub fn ports(mut s: ServiceView, ports: &[(&str, i32)]) -> ServiceView {
    s.ports = ports.iter().map(|(p, n)| (p.to_string(), *n)).collect();
    s
}

pub fn labels(mut s: ServiceView, pairs: &[(&str, &str)]) -> ServiceView {
    s.labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    s
}

pub fn alloc(pools: Vec<PoolDef>) -> Allocator {
    let mut a = Allocator::new();
    a.set_pools(pools);
    a
}

pub fn run(a: &mut Allocator, s: &ServiceView) -> Convergence {
    converge(a, s, &ConvergeOptions::default())
}

/// Converges, then feeds the result back as the Service's status, as the
/// controller's write + watch would.
pub fn apply(a: &mut Allocator, s: &mut ServiceView) -> Convergence {
    let c = run(a, s);
    s.ingress_ips = c.ingress.clone();
    match &c.pool {
        Some(p) => {
            s.annotations
                .insert(annotations::IP_ALLOCATED_FROM_POOL.into(), p.clone());
        }
        None => {
            s.annotations.remove(annotations::IP_ALLOCATED_FROM_POOL);
        }
    }
    c
}

pub fn event_texts(c: &Convergence) -> Vec<String> {
    c.events
        .iter()
        .map(|e| format!("{:?} {}: {}", e.type_, e.reason, e.message))
        .collect()
}
