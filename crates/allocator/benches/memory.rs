//! Heap bytes held by the allocator per assigned Service, measured with a
//! counting global allocator (net bytes: allocated minus freed).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ferrolb_allocator::{ConvergeOptions, PoolDef, ServiceView, converge};
use support::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn measure(label: &str, pools: Vec<PoolDef>, views: &[ServiceView]) {
    let opts = ConvergeOptions::default();
    let mut a = allocator(pools);
    let before = LIVE.load(Ordering::Relaxed);
    for v in views {
        let c = converge(&mut a, v, &opts);
        assert!(c.failure.is_none(), "{label}: {:?}", c.failure);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let per = (after - before) as f64 / views.len() as f64;
    println!(
        "{label}: {} services, {} bytes held, {per:.1} bytes/service",
        views.len(),
        after - before
    );
    drop(a);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    measure(
        "ipv4 /16, 65534 services",
        v4_16(),
        &services(65_534, false),
    );
    measure(
        "ipv4 /16, 40000 services",
        v4_16(),
        &services(40_000, false),
    );
    measure(
        "ipv6 /64, 100000 services",
        v6_64(),
        &services(100_000, true),
    );
    measure(
        "1000 ranges, 100000 services",
        thousand_ranges(),
        &services(100_000, false),
    );
    let shared: Vec<ServiceView> = services(65_534, false)
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            s.annotations.insert(
                "metallb.io/allow-shared-ip".into(),
                format!("key-{}", i / 4),
            );
            s.ports = vec![("TCP".into(), 8000 + (i % 4) as i32)];
            s
        })
        .collect();
    measure(
        "ipv4 /16, 65534 services sharing 4 per address",
        v4_16(),
        &shared,
    );
}
