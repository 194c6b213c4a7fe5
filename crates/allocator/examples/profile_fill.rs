//! Fills a /16 pool repeatedly; a target for `perf record` when tuning the
//! allocation path (`cargo run --release --example profile_fill`).

use ferrolb_allocator::{Allocator, ConvergeOptions, PoolDef, ServiceView, converge};

fn main() {
    let views: Vec<ServiceView> = (0..65_534usize)
        .map(|i| ServiceView {
            namespace: "default".into(),
            name: format!("svc-{i}"),
            type_: Some("LoadBalancer".into()),
            cluster_ip: Some("10.96.0.1".into()),
            cluster_ips: vec!["10.96.0.1".into()],
            ports: vec![("TCP".into(), 80)],
            ..Default::default()
        })
        .collect();
    let opts = ConvergeOptions::default();
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let mut a = Allocator::new();
        a.set_pools(vec![PoolDef::new(
            "p",
            vec!["10.0.0.0/16".parse().expect("cidr")],
        )]);
        for v in &views {
            let c = converge(&mut a, v, &opts);
            if c.failure.is_some() {
                eprintln!("unexpected failure: {:?}", c.failure);
                return;
            }
        }
    }
    let per = start.elapsed().as_nanos() as f64 / (rounds * views.len()) as f64;
    println!("{per:.0} ns per allocation (including allocator drop)");
}
