//! Targets for `perf`/`callgrind` when tuning the allocation path:
//! `cargo run --release --example profile_fill -- [rounds] [fill|full]`.
//! `fill` fills a /16 pool `rounds` times; `full` makes 50 full /24 pools
//! and runs `rounds` x 10,000 failing attempts against them.

use ferrolb_allocator::{Allocator, ConvergeOptions, PoolDef, ServiceView, converge};

fn view(i: usize) -> ServiceView {
    ServiceView {
        namespace: "default".into(),
        name: format!("svc-{i}"),
        type_: Some("LoadBalancer".into()),
        cluster_ip: Some("10.96.0.1".into()),
        cluster_ips: vec!["10.96.0.1".into()],
        ports: vec![("TCP".into(), 80)],
        ..Default::default()
    }
}

fn pool(name: &str, cidr: &str) -> PoolDef {
    PoolDef::new(name, vec![cidr.parse().expect("cidr")])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let mode = args.next().unwrap_or_else(|| "fill".to_string());
    let opts = ConvergeOptions::default();
    if mode == "full" {
        let mut a = Allocator::new();
        a.set_pools(
            (0..50)
                .map(|i| pool(&format!("p{i:02}"), &format!("10.{i}.0.0/24")))
                .collect(),
        );
        for i in 0..50 * 256 {
            converge(&mut a, &view(i), &opts);
        }
        let probe = view(usize::MAX);
        let start = std::time::Instant::now();
        for _ in 0..rounds * 10_000 {
            let c = converge(&mut a, &probe, &opts);
            if c.failure.is_none() {
                eprintln!("setup did not fill the pools");
                return;
            }
        }
        let per = start.elapsed().as_nanos() as f64 / (rounds * 10_000) as f64;
        println!("{per:.0} ns per failing attempt");
        return;
    }
    let views: Vec<ServiceView> = (0..65_534).map(view).collect();
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let mut a = Allocator::new();
        a.set_pools(vec![pool("p", "10.0.0.0/16")]);
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
