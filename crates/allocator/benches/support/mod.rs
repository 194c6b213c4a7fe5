//! Builders shared by the allocator benchmarks.
#![allow(dead_code)]

use ferrolb_allocator::{Allocator, ConvergeOptions, PoolDef, ServiceView, converge};

pub fn pool(name: &str, cidrs: &[String]) -> PoolDef {
    PoolDef::new(
        name,
        cidrs
            .iter()
            .map(|c| c.parse().expect("benchmark CIDR"))
            .collect(),
    )
}

pub fn service(i: usize, v6: bool) -> ServiceView {
    let cluster = if v6 {
        format!("fd00::{:x}", i & 0xffff)
    } else {
        format!("10.96.{}.{}", (i >> 8) & 0xff, i & 0xff)
    };
    ServiceView {
        namespace: "default".into(),
        name: format!("svc-{i}"),
        type_: Some("LoadBalancer".into()),
        cluster_ip: Some(cluster.clone()),
        cluster_ips: vec![cluster],
        ports: vec![("TCP".into(), 80)],
        ..Default::default()
    }
}

pub fn services(n: usize, v6: bool) -> Vec<ServiceView> {
    (0..n).map(|i| service(i, v6)).collect()
}

pub fn allocator(pools: Vec<PoolDef>) -> Allocator {
    let mut a = Allocator::new();
    a.set_pools(pools);
    a
}

/// Converges every view; panics if one gets no address (a broken benchmark
/// setup must not pass for a fast one).
pub fn fill(a: &mut Allocator, views: &[ServiceView]) {
    let opts = ConvergeOptions::default();
    for v in views {
        let c = converge(a, v, &opts);
        assert!(c.failure.is_none(), "benchmark setup: {:?}", c.failure);
    }
}

pub fn v4_16() -> Vec<PoolDef> {
    vec![pool("p16", &["10.0.0.0/16".to_string()])]
}

pub fn v6_64() -> Vec<PoolDef> {
    vec![pool("p64", &["fc00::/64".to_string()])]
}

/// 1,000 ranges of 128 addresses, listed out of address order.
pub fn thousand_ranges() -> Vec<PoolDef> {
    let cidrs: Vec<String> = (0..1000u32)
        .map(|i| {
            let k = (i * 7919) % 1000;
            format!("10.{}.{}.{}/25", k / 500, (k / 2) % 250, (k % 2) * 128)
        })
        .collect();
    vec![pool("ranges", &cidrs)]
}
