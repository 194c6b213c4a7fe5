//! Allocation speed (docs/benchmarks.md, section "allocator").

mod support;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrolb_allocator::{ConvergeOptions, PoolDef, converge};
use support::*;

fn fill_bench(c: &mut Criterion, name: &str, pools: fn() -> Vec<PoolDef>, n: usize, v6: bool) {
    let views = services(n, v6);
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("converge", |b| {
        b.iter_batched(
            || allocator(pools()),
            |mut a| {
                fill(&mut a, &views);
                a
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn fill_v4(c: &mut Criterion) {
    fill_bench(c, "fill_ipv4_slash16_65534", v4_16, 65_534, false);
}

fn fill_v6(c: &mut Criterion) {
    fill_bench(c, "alloc_ipv6_slash64_100k", v6_64, 100_000, true);
}

fn fill_ranges(c: &mut Criterion) {
    fill_bench(c, "alloc_1000_ranges_100k", thousand_ranges, 100_000, false);
}

/// One attempt against 50 full /16 pools (3.3 million services held).
fn full_pools(c: &mut Criterion) {
    let pools: Vec<PoolDef> = (0..50)
        .map(|i| pool(&format!("full{i:02}"), &[format!("10.{}.0.0/16", i + 100)]))
        .collect();
    let mut a = allocator(pools);
    let opts = ConvergeOptions::default();
    for i in 0..50 * 65_536 {
        let v = service(i, false);
        let got = converge(&mut a, &v, &opts);
        assert!(got.failure.is_none(), "setup: {:?}", got.failure);
    }
    let probe = service(usize::MAX >> 1, false);
    let shared = {
        let mut s = service((usize::MAX >> 1) - 1, false);
        s.annotations
            .insert("metallb.io/allow-shared-ip".into(), "k".into());
        s
    };
    let mut group = c.benchmark_group("attempt_50_full_slash16");
    group.bench_function("converge_fails", |b| {
        b.iter(|| {
            let out = converge(&mut a, &probe, &opts);
            assert!(out.failure.is_some());
            out
        })
    });
    group.bench_function("converge_fails_with_sharing_key", |b| {
        b.iter(|| {
            let out = converge(&mut a, &shared, &opts);
            assert!(out.failure.is_some());
            out
        })
    });
    group.finish();
}

criterion_group!(benches, fill_v4, fill_v6, fill_ranges, full_pools);
criterion_main!(benches);
