//! Property tests: random pools and service streams checked against the
//! allocation invariants. The comparison with a naive linear-scan reference
//! model is in reference_model.rs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::*;
use ferrolb_allocator::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct CidrSpec {
    v6: bool,
    prefix_extra: u8,
    offset: u8,
}

#[derive(Clone, Debug)]
struct PoolSpec {
    cidrs: Vec<CidrSpec>,
    avoid: bool,
    auto: bool,
    kind: u8,
    priority: i32,
}

fn cidr_spec() -> impl Strategy<Value = CidrSpec> {
    (prop::bool::weighted(0.2), 0u8..=8, any::<u8>()).prop_map(|(v6, prefix_extra, offset)| {
        CidrSpec {
            v6,
            prefix_extra,
            offset,
        }
    })
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        prop::collection::vec(cidr_spec(), 1..4),
        any::<bool>(),
        prop::bool::weighted(0.85),
        0u8..4,
        -1i32..4,
    )
        .prop_map(|(cidrs, avoid, auto, kind, priority)| PoolSpec {
            cidrs,
            avoid,
            auto,
            kind,
            priority,
        })
}

/// Pool `i`'s CIDR `j` lives in its own /24 (or /120), so nothing overlaps.
fn build(specs: &[PoolSpec], generation: u8) -> Vec<PoolDef> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let cidrs: Vec<String> = spec
                .cidrs
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let prefix_extra = u32::from(c.prefix_extra);
                    let size = 1u32 << (8 - prefix_extra);
                    let offset = (u32::from(c.offset) % (256 / size)) * size;
                    if c.v6 {
                        format!(
                            "fc00:{generation}:{i}:{j}::{offset:x}/{}",
                            120 + prefix_extra
                        )
                    } else {
                        format!(
                            "10.{}.{}.{offset}/{}",
                            i + 10 * usize::from(generation % 3),
                            j,
                            24 + prefix_extra
                        )
                    }
                })
                .collect();
            let refs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
            let mut p = pool(&format!("pool{i}"), &refs);
            p.avoid_buggy_ips = spec.avoid;
            p.auto_assign = spec.auto;
            match spec.kind {
                1 => p = with_priority(p, spec.priority),
                2 => p = with_namespaces(with_priority(p, spec.priority), &["a"]),
                3 => p = with_selector(with_priority(p, spec.priority), "tier", "web"),
                _ => {}
            }
            p
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    Converge {
        svc: u8,
        family: u8,
        share: u8,
        port: u8,
        request: u8,
    },
    Release {
        svc: u8,
    },
    Reconfigure {
        generation: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..10, 0u8..4, 0u8..3, 0u8..3, 0u8..6).prop_map(|(svc, family, share, port, request)| Op::Converge {
            svc, family, share, port, request
        }),
        2 => (0u8..10).prop_map(|svc| Op::Release { svc }),
        1 => (0u8..3).prop_map(|generation| Op::Reconfigure { generation }),
    ]
}

fn service(n: u8, family: u8, share: u8, port: u8, request: u8, pools: &[PoolDef]) -> ServiceView {
    let ns = if n.is_multiple_of(2) { "a" } else { "b" };
    let name = format!("s{n}");
    let mut s = match family {
        0 | 1 => svc(ns, &name),
        2 => svc6(ns, &name),
        _ => dual(
            ns,
            &name,
            if n.is_multiple_of(3) {
                "RequireDualStack"
            } else {
                "PreferDualStack"
            },
            &["IPv6", "IPv4"],
        ),
    };
    if n % 4 == 1 {
        s = labels(s, &[("tier", "web")]);
    }
    if share > 0 {
        s = annotate(
            s,
            annotations::ALLOW_SHARED_IP,
            if share == 1 { "k1" } else { "k2" },
        );
    }
    s = ports(s, &[("TCP", 80 + i32::from(port))]);
    match request {
        1 if !pools.is_empty() => {
            let p = &pools[usize::from(n) % pools.len()];
            s = annotate(s, annotations::ADDRESS_POOL, &p.name);
        }
        2 if !pools.is_empty() => {
            let p = &pools[usize::from(n) % pools.len()];
            let addr = p.cidrs[0].addr();
            s.load_balancer_ip = Some(addr.to_string());
        }
        _ => {}
    }
    s
}

struct World {
    specs: Vec<PoolSpec>,
    alloc: Allocator,
    pools: Vec<PoolDef>,
    services: BTreeMap<u8, ServiceView>,
}

impl World {
    fn new(specs: Vec<PoolSpec>) -> Self {
        let pools = build(&specs, 0);
        World {
            alloc: alloc(pools.clone()),
            specs,
            pools,
            services: BTreeMap::new(),
        }
    }

    fn step(&mut self, op: &Op) -> String {
        match *op {
            Op::Converge {
                svc: n,
                family,
                share,
                port,
                request,
            } => {
                let mut s = service(n, family, share, port, request, &self.pools);
                if let Some(prev) = self.services.get(&n) {
                    s.ingress_ips = prev.ingress_ips.clone();
                    s.annotations.extend(
                        prev.annotations
                            .get(annotations::IP_ALLOCATED_FROM_POOL)
                            .map(|p| (annotations::IP_ALLOCATED_FROM_POOL.to_string(), p.clone())),
                    );
                }
                let c = apply(&mut self.alloc, &mut s);
                self.services.insert(n, s);
                format!("{c:?}")
            }
            Op::Release { svc } => {
                self.services.remove(&svc);
                let key = ServiceKey::new(if svc % 2 == 0 { "a" } else { "b" }, format!("s{svc}"));
                format!("{}", self.alloc.release(&key))
            }
            Op::Reconfigure { generation } => {
                self.pools = build(&self.specs, generation);
                self.alloc.set_pools(self.pools.clone());
                format!("{:?}", self.alloc.take_dirty_pools())
            }
        }
    }
}

fn usable(p: &PoolDef, ip: &IpAddr) -> bool {
    let buggy = matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255));
    p.cidrs.iter().any(|c| c.contains(ip)) && !(p.avoid_buggy_ips && buggy)
}

fn addresses(p: &PoolDef) -> Vec<IpAddr> {
    p.cidrs
        .iter()
        .flat_map(|c| c.hosts_all())
        .filter(|ip| usable(p, ip))
        .collect()
}

trait HostsAll {
    fn hosts_all(&self) -> Vec<IpAddr>;
}

impl HostsAll for ipnet::IpNet {
    /// Every address, network and broadcast included (small test CIDRs only).
    fn hosts_all(&self) -> Vec<IpAddr> {
        let (start, end) = match self {
            ipnet::IpNet::V4(n) => (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            ),
            ipnet::IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
        };
        (start..=end)
            .map(|raw| match self {
                ipnet::IpNet::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(raw as u32)),
                ipnet::IpNet::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(raw)),
            })
            .collect()
    }
}

/// Who holds what, read back through the public API.
fn holders(w: &World) -> BTreeMap<IpAddr, Vec<u8>> {
    let mut out: BTreeMap<IpAddr, Vec<u8>> = BTreeMap::new();
    for (n, s) in &w.services {
        if let Some(ips) = w.alloc.assigned_ips(&s.key()) {
            for ip in ips {
                out.entry(ip).or_default().push(*n);
            }
        }
    }
    out
}

fn check_invariants(w: &World) -> Result<(), TestCaseError> {
    let held = holders(w);
    for (ip, who) in &held {
        if who.len() > 1 {
            let first = &w.services[&who[0]];
            let mut ports = BTreeSet::new();
            for n in who {
                let s = &w.services[n];
                prop_assert!(!s.sharing_key().is_empty(), "{ip} shared without key");
                prop_assert_eq!(s.sharing_key(), first.sharing_key());
                prop_assert_eq!(s.backend_key(), first.backend_key());
                for p in s.port_set() {
                    prop_assert!(ports.insert(p), "{} port clash", ip);
                }
            }
        }
    }
    for s in w.services.values() {
        if let Some(ips) = w.alloc.assigned_ips(&s.key()) {
            let pool_name = w
                .alloc
                .assigned_pool(&s.key())
                .unwrap_or_default()
                .to_string();
            let def = w.alloc.pool(&pool_name).expect("record pool exists");
            for ip in &ips {
                prop_assert!(
                    usable(def, ip),
                    "{} outside usable part of {}",
                    ip,
                    pool_name
                );
            }
            prop_assert_eq!(w.alloc.pool_for_ips(&ips), Some(pool_name.as_str()));
        }
    }
    for p in &w.pools {
        let c = w.alloc.pool_counters(&p.name).expect("counters");
        let all = addresses(p);
        let cap = |v6: bool| all.iter().filter(|ip| ip.is_ipv6() == v6).count() as i64;
        let used = |v6: bool| {
            held.keys()
                .filter(|ip| ip.is_ipv6() == v6 && usable(p, ip))
                .count() as i64
        };
        prop_assert_eq!(c.capacity_v4, cap(false));
        prop_assert_eq!(c.capacity_v6, cap(true));
        prop_assert_eq!(c.assigned_v4, used(false));
        prop_assert_eq!(c.assigned_v6, used(true));
        prop_assert_eq!(c.available_v4, cap(false) - used(false));
        prop_assert_eq!(c.available_v6, cap(true) - used(true));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn invariants_hold_over_random_streams(
        specs in prop::collection::vec(pool_spec(), 1..5),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut w = World::new(specs.clone());
        let mut transcript = Vec::new();
        for op in &ops {
            transcript.push(w.step(op));
            check_invariants(&w)?;
        }
        // Same input, same result.
        let mut again = World::new(specs);
        let replay: Vec<String> = ops.iter().map(|op| again.step(op)).collect();
        prop_assert_eq!(transcript, replay);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Releasing everything gives back every address: counters return to zero
    /// and the allocator then behaves exactly like a fresh one.
    #[test]
    fn releasing_everything_loses_no_address(
        specs in prop::collection::vec(pool_spec(), 1..5),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut w = World::new(specs.clone());
        for op in &ops {
            w.step(op);
        }
        let generation_pools = w.pools.clone();
        for n in 0..10u8 {
            w.step(&Op::Release { svc: n });
        }
        for p in &generation_pools {
            let c = w.alloc.pool_counters(&p.name).expect("counters");
            prop_assert_eq!((c.assigned_v4, c.assigned_v6), (0, 0));
            prop_assert_eq!((c.available_v4, c.available_v6), (c.capacity_v4, c.capacity_v6));
        }
        let mut fresh = alloc(generation_pools);
        for n in 0..10u8 {
            let s = service(n, n % 4, n % 3, n % 2, 0, &w.pools);
            let got = run(&mut w.alloc, &s);
            let want = run(&mut fresh, &s);
            prop_assert_eq!(got.ingress, want.ingress);
            prop_assert_eq!(got.pool, want.pool);
        }
    }
}
