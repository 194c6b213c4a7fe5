//! The fast allocator against the naive reference model (tests/reference):
//! random pools (IPv4, IPv6 and dual-family, from a few addresses to tens of
//! thousands, every kind of `serviceAllocation`), random Service streams
//! (single- and dual-stack, sharing keys, Local backends, requested pools and
//! requested addresses by annotation and by `spec.loadBalancerIP`), with
//! requested addresses filling large pools sparsely so automatic allocation
//! has to find the holes. Each Service is allocated fresh; the model and the
//! allocator must agree on the pool, the addresses and their order, or on the
//! refusal, and afterwards on who holds what.

mod reference;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_allocator::{Allocator, ConvergeOptions, ServiceKey, converge};
use proptest::prelude::*;
use reference::{Alloc, Cidr, Family, Labels, Model, Namespaces, Op, Pool, Request, Sel, Service};

const KEYS: [&str; 4] = ["team", "env", "tier", "app"];
const VALUES: [&str; 4] = ["x", "y", "web", "prod"];
/// Not in pool-index order, so name order is exercised.
const POOL_NAMES: [&str; 5] = ["delta", "alpha", "echo", "bravo", "charlie"];
const SERVICES: u8 = 32;

fn namespaces() -> Namespaces {
    let labels = |pairs: &[(&str, &str)]| -> Labels { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
    [
        ("a".to_string(), labels(&[("team", "x"), ("env", "prod")])),
        ("b".to_string(), labels(&[("team", "y")])),
        ("c".to_string(), labels(&[])),
    ]
    .into()
}

fn sel() -> impl Strategy<Value = Sel> {
    (
        prop::collection::vec((0..KEYS.len(), 0..VALUES.len()), 0..2),
        prop::collection::vec((0..KEYS.len(), 0u8..4, prop::collection::btree_set(0..VALUES.len(), 1..3)), 0..3),
    )
        .prop_map(|(labels, exprs)| Sel {
            labels: labels.into_iter().map(|(k, v)| (KEYS[k].to_string(), VALUES[v].to_string())).collect(),
            exprs: exprs
                .into_iter()
                .map(|(k, op, values)| {
                    let op = [Op::In, Op::NotIn, Op::Exists, Op::DoesNotExist][usize::from(op)];
                    // Kubernetes: In/NotIn need values, Exists/DoesNotExist have none.
                    let values = match op {
                        Op::In | Op::NotIn => values.into_iter().map(|v| VALUES[v].to_string()).collect(),
                        Op::Exists | Op::DoesNotExist => Vec::new(),
                    };
                    (KEYS[k].to_string(), op, values)
                })
                .collect(),
        })
}

#[derive(Clone, Debug)]
struct CidrSpec {
    v6: bool,
    large: bool,
    prefix_step: u8,
    offset: u32,
}

fn cidr_spec() -> impl Strategy<Value = CidrSpec> {
    (prop::bool::weighted(0.35), prop::bool::weighted(0.25), 0u8..=4, any::<u32>())
        .prop_map(|(v6, large, prefix_step, offset)| CidrSpec { v6, large, prefix_step, offset })
}

/// CIDR `j` of pool `i` lies in its own 2^16 block, so nothing overlaps.
/// Large ones hold 16,384 to 65,536 addresses; small ones 1 to 16.
fn cidr(i: usize, j: usize, c: &CidrSpec) -> Cidr {
    let width: u8 = if c.v6 { 128 } else { 32 };
    let host_bits = if c.large { 16 - c.prefix_step.min(2) } else { 4 - c.prefix_step.min(4) };
    let size = 1u128 << host_bits;
    let block = (i * 3 + j) as u128;
    let region = if c.v6 { (0xfc00u128 << 112) | (block << 32) } else { (10u128 << 24) | (block << 16) };
    let offset = (u128::from(c.offset) % ((1 << 16) / size)) * size;
    Cidr { v6: c.v6, base: region + offset, prefix: width - host_bits }
}

#[derive(Clone, Debug)]
struct PoolSpec {
    cidrs: Vec<CidrSpec>,
    auto: bool,
    avoid: bool,
    kind: u8,
    priority: i32,
    namespaces: BTreeSet<usize>,
    namespace_selectors: Vec<Sel>,
    service_selectors: Vec<Sel>,
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        prop::collection::vec(cidr_spec(), 1..4),
        prop::bool::weighted(0.85),
        any::<bool>(),
        0u8..7,
        -1i32..4,
        prop::collection::btree_set(0usize..3, 1..3),
        prop::collection::vec(sel(), 1..3),
        prop::collection::vec(sel(), 1..3),
    )
        .prop_map(|(cidrs, auto, avoid, kind, priority, namespaces, namespace_selectors, service_selectors)| PoolSpec {
            cidrs,
            auto,
            avoid,
            kind,
            priority,
            namespaces,
            namespace_selectors,
            service_selectors,
        })
}

fn pool(i: usize, s: &PoolSpec) -> Pool {
    let names = || s.namespaces.iter().map(|n| ["a", "b", "c"][*n].to_string()).collect::<Vec<_>>();
    let nobody = Sel { labels: vec![("team".into(), "nobody".into())], exprs: vec![] };
    let alloc = |namespaces, namespace_selectors, service_selectors| {
        Some(Alloc { priority: s.priority, namespaces, namespace_selectors, service_selectors })
    };
    Pool {
        name: POOL_NAMES[i].to_string(),
        cidrs: s.cidrs.iter().enumerate().map(|(j, c)| cidr(i, j, c)).collect(),
        auto_assign: s.auto,
        avoid_buggy: s.avoid,
        alloc: match s.kind {
            0 => None,
            1 => alloc(vec![], vec![], vec![]),
            2 => alloc(names(), vec![], vec![]),
            3 => alloc(vec![], s.namespace_selectors.clone(), vec![]),
            4 => alloc(vec![], vec![], s.service_selectors.clone()),
            5 => alloc(names(), s.namespace_selectors.clone(), s.service_selectors.clone()),
            // A namespace constraint that selects no namespace.
            _ => alloc(vec![], vec![nobody], s.service_selectors.clone()),
        },
    }
}

/// Where a requested address comes from: the `n`-th CIDR of its family over
/// all pools, at an offset biased to the starts of CIDRs and of /24 blocks
/// (so avoidBuggyIPs and the lowest-free search are exercised).
#[derive(Clone, Debug)]
struct Pick {
    n: usize,
    offset: u32,
}

fn pick() -> impl Strategy<Value = Pick> {
    (any::<usize>(), prop_oneof![0u32..6, 250u32..262, any::<u32>()]).prop_map(|(n, offset)| Pick { n, offset })
}

fn address(pools: &[Pool], v6: bool, p: &Pick) -> IpAddr {
    let cidrs: Vec<&Cidr> = pools.iter().flat_map(|pool| pool.cidrs.iter()).filter(|c| c.v6 == v6).collect();
    if cidrs.is_empty() {
        // No pool has the family: an address outside every pool.
        return if v6 { "2001:db8::1".parse().expect("ip") } else { "192.0.2.1".parse().expect("ip") };
    }
    let c = cidrs[p.n % cidrs.len()];
    c.ip(c.base + u128::from(p.offset) % c.size())
}

#[derive(Clone, Debug)]
enum RequestSpec {
    None,
    Pool(usize),
    /// `shape`: 0 the Service's own family, 1 IPv4, 2 IPv6, 3 IPv6+IPv4,
    /// 4 two IPv4 (refused).
    Ips { shape: u8, first: Pick, second: Pick },
    SpecIp(Pick, bool),
    Both(Pick),
    IpsInPool(Pick, Pick, usize),
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    prop_oneof![
        5 => Just(RequestSpec::None),
        2 => (0usize..6).prop_map(RequestSpec::Pool),
        3 => (prop_oneof![4 => Just(0u8), 1 => 1u8..5], pick(), pick())
            .prop_map(|(shape, first, second)| RequestSpec::Ips { shape, first, second }),
        2 => (pick(), prop::bool::weighted(0.2)).prop_map(|(p, v6)| RequestSpec::SpecIp(p, v6)),
        1 => pick().prop_map(RequestSpec::Both),
        1 => (pick(), pick(), 0usize..6).prop_map(|(a, b, p)| RequestSpec::IpsInPool(a, b, p)),
    ]
}

fn pool_name(pools: &[Pool], i: usize) -> String {
    pools.get(i).map_or_else(|| "nosuch".to_string(), |p| p.name.clone())
}

/// The second address of a dual request: mostly from the pool of the first
/// (the only way a dual request can succeed), sometimes from anywhere.
fn partner(pools: &[Pool], first: IpAddr, v6: bool, p: &Pick) -> IpAddr {
    match home(pools, first) {
        Some(pool) if !p.n.is_multiple_of(4) => address(std::slice::from_ref(pool), v6, p),
        _ => address(pools, v6, p),
    }
}

/// The pool whose CIDRs hold `ip` (the test's own lookup, for generating).
fn home(pools: &[Pool], ip: IpAddr) -> Option<&Pool> {
    pools
        .iter()
        .find(|pool| pool.cidrs.iter().any(|c| c.v6 == ip.is_ipv6() && (c.base..c.base + c.size()).contains(&raw(ip))))
}

fn raw(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn request(spec: &RequestSpec, family: Family, pools: &[Pool]) -> Request {
    let own = |first: &Pick, second: &Pick| -> Vec<IpAddr> {
        match family {
            Family::V4 | Family::PreferSingleV4 => vec![address(pools, false, first)],
            Family::V6 => vec![address(pools, true, first)],
            Family::Dual { primary_v6, .. } => {
                let a = address(pools, primary_v6, first);
                vec![a, partner(pools, a, !primary_v6, second)]
            }
        }
    };
    match spec {
        RequestSpec::None => Request::None,
        RequestSpec::Pool(i) => Request::Pool(pool_name(pools, *i)),
        RequestSpec::Ips { shape, first, second } => Request::Ips(match shape {
            0 => own(first, second),
            1 => vec![address(pools, false, first)],
            2 => vec![address(pools, true, first)],
            3 => vec![address(pools, true, first), address(pools, false, second)],
            _ => vec![address(pools, false, first), address(pools, false, second)],
        }),
        RequestSpec::SpecIp(p, v6) => Request::SpecIp(address(pools, *v6, p)),
        RequestSpec::Both(p) => Request::Both(vec![address(pools, false, p)], address(pools, false, p)),
        RequestSpec::IpsInPool(a, b, i) => {
            let ips = own(a, b);
            // Mostly the pool the first address is in: the case that can succeed.
            let name = match home(pools, ips[0]) {
                Some(pool) if !i.is_multiple_of(3) => pool.name.clone(),
                _ => pool_name(pools, *i),
            };
            Request::IpsInPool(ips, name)
        }
    }
}

#[derive(Clone, Debug)]
struct ServiceSpec {
    id: u8,
    family: u8,
    labels: Vec<(usize, usize)>,
    sharing: u8,
    local: u8,
    ports: BTreeSet<usize>,
    request: RequestSpec,
}

fn service_spec() -> impl Strategy<Value = ServiceSpec> {
    (
        0..SERVICES,
        prop_oneof![3 => Just(0u8), 1 => 1u8..6],
        prop::collection::vec((0..KEYS.len(), 0..VALUES.len()), 0..3),
        prop_oneof![2 => Just(0u8), 1 => 1u8..3],
        prop_oneof![3 => Just(0u8), 1 => 1u8..3],
        prop::collection::btree_set(0usize..4, 1..3),
        request_spec(),
    )
        .prop_map(|(id, family, labels, sharing, local, ports, request)| ServiceSpec {
            id,
            family,
            labels,
            sharing,
            local,
            ports,
            request,
        })
}

const PORTS: [(&str, i32); 4] = [("TCP", 80), ("TCP", 443), ("UDP", 53), ("TCP", 53)];

fn service(s: &ServiceSpec, pools: &[Pool]) -> Service {
    let family = match s.family {
        0 => Family::V4,
        1 => Family::V6,
        2 => Family::Dual { require: false, primary_v6: false },
        3 => Family::Dual { require: false, primary_v6: true },
        4 => Family::Dual { require: true, primary_v6: false },
        _ => Family::PreferSingleV4,
    };
    Service {
        // The namespace follows the id, so one key is always one namespace.
        namespace: ["a", "b", "c"][usize::from(s.id % 3)].to_string(),
        name: format!("s{}", s.id),
        labels: s.labels.iter().map(|(k, v)| (KEYS[*k].to_string(), VALUES[*v].to_string())).collect(),
        family,
        sharing: ["", "k1", "k2"][usize::from(s.sharing)].to_string(),
        local_app: [None, Some("one"), Some("two")][usize::from(s.local)].map(str::to_string),
        ports: s.ports.iter().map(|i| (PORTS[*i].0.to_string(), PORTS[*i].1)).collect(),
        request: request(&s.request, family, pools),
    }
}

fn key(id: u8) -> ServiceKey {
    ServiceKey::new(["a", "b", "c"][usize::from(id % 3)], format!("s{id}"))
}

/// Allocates `svc` fresh in both and compares the outcomes; returns the
/// model's outcome (for the coverage check).
fn compare_one(model: &mut Model, alloc: &mut Allocator, svc: &Service) -> Result<String, TestCaseError> {
    alloc.release(&svc.key());
    let expected = model.allocate(svc);
    let label = match &expected {
        Ok((_, ips)) => format!("{} address(es) for {:?}", ips.len(), std::mem::discriminant(&svc.request)),
        Err(r) => format!("{:?}", std::mem::discriminant(r)),
    };
    let c = converge(alloc, &svc.view(), &ConvergeOptions::default());
    match expected {
        Ok((pool, ips)) => {
            prop_assert!(c.failure.is_none(), "{svc:?}: model gave {pool} {ips:?}, allocator failed: {:?}", c.failure);
            prop_assert_eq!(c.pool.as_deref(), Some(pool.as_str()), "{:?}", svc);
            prop_assert_eq!(c.ips(), ips, "{:?}", svc);
        }
        Err(refusal) => {
            prop_assert!(c.ingress.is_empty(), "{svc:?}: model refused ({refusal:?}), allocator gave {:?}", c.ingress);
            let error = c.failure.as_ref().map(|f| f.error.clone()).unwrap_or_default();
            prop_assert!(error.contains(&refusal.text()), "{svc:?}: model refused ({refusal:?}), allocator said {error:?}");
        }
    }
    Ok(label)
}

/// Who holds what, in both.
fn compare_holdings(model: &Model, alloc: &Allocator) -> Result<(), TestCaseError> {
    for id in 0..SERVICES {
        let k = key(id);
        let want = model.held.get(&k).map(|h| (h.pool.clone(), h.ips.iter().copied().collect::<BTreeSet<_>>()));
        let got = alloc
            .assigned_ips(&k)
            .map(|ips| (alloc.assigned_pool(&k).unwrap_or_default().to_string(), ips.into_iter().collect::<BTreeSet<_>>()));
        prop_assert_eq!(got, want, "{}", k);
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Step {
    Allocate(ServiceSpec),
    Release(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => service_spec().prop_map(Step::Allocate),
        1 => (0..SERVICES).prop_map(Step::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fast_allocator_picks_exactly_what_a_naive_linear_scan_picks(
        specs in prop::collection::vec(pool_spec(), 1..6),
        steps in prop::collection::vec(step(), 1..100),
    ) {
        let pools: Vec<Pool> = specs.iter().enumerate().map(|(i, s)| pool(i, s)).collect();
        let mut model = Model::new(pools.clone(), namespaces());
        let mut alloc = Allocator::new();
        alloc.set_pools(model.defs());
        for step in &steps {
            match step {
                Step::Allocate(spec) => {
                    compare_one(&mut model, &mut alloc, &service(spec, &pools))?;
                }
                Step::Release(id) => {
                    model.release(&key(*id));
                    alloc.release(&key(*id));
                }
            }
            compare_holdings(&model, &alloc)?;
        }
    }
}

/// A /16 and a /112 filled sparsely through requested addresses (every third
/// address of the first 1,500, some with sharing keys), then automatic
/// allocations must land in the same holes as the model's linear scan.
#[test]
fn sparse_fill_of_large_pools() {
    let big4 = Cidr { v6: false, base: 10u128 << 24, prefix: 16 };
    let big6 = Cidr { v6: true, base: 0xfc00u128 << 112, prefix: 112 };
    let pools = vec![
        Pool { name: "big".into(), cidrs: vec![big4, big6], auto_assign: true, avoid_buggy: true, alloc: None },
        Pool {
            name: "small".into(),
            cidrs: vec![Cidr { v6: false, base: (10u128 << 24) | (1 << 16), prefix: 30 }],
            auto_assign: true,
            avoid_buggy: false,
            alloc: Some(Alloc { priority: 1, namespaces: vec!["b".into()], ..Alloc::default() }),
        },
    ];
    let mut model = Model::new(pools.clone(), namespaces());
    let mut alloc = Allocator::new();
    alloc.set_pools(model.defs());
    let mut ids = 0u32;
    let mut next = |ns: &str, family: Family, sharing: &str, request: Request| {
        ids += 1;
        Service {
            namespace: ns.into(),
            name: format!("s{ids}"),
            labels: BTreeMap::new(),
            family,
            sharing: sharing.into(),
            local_app: None,
            ports: [("TCP".to_string(), 80 + (ids % 2) as i32)].into(),
            request,
        }
    };
    for i in (0..1500u128).step_by(3) {
        let sharing = if i % 2 == 0 { "k" } else { "" };
        let v4 = big4.ip(big4.base + i);
        let v6 = big6.ip(big6.base + i + 1);
        let svc = match i % 4 {
            0 => next("a", Family::V4, sharing, Request::SpecIp(v4)),
            1 => next("a", Family::V6, sharing, Request::Ips(vec![v6])),
            _ => next("b", Family::Dual { require: true, primary_v6: false }, sharing, Request::Ips(vec![v4, v6])),
        };
        compare_one(&mut model, &mut alloc, &svc).expect("sparse fill agrees");
    }
    let families = [
        Family::V4,
        Family::V6,
        Family::Dual { require: false, primary_v6: true },
        Family::Dual { require: true, primary_v6: false },
        Family::PreferSingleV4,
    ];
    for round in 0..400usize {
        let ns = ["a", "b", "c"][round % 3];
        let sharing = ["", "k", "k2"][round % 3];
        let svc = next(ns, families[round % families.len()], sharing, Request::None);
        compare_one(&mut model, &mut alloc, &svc).expect("automatic allocation agrees");
    }
    compare_holdings_all(&model, &alloc);
}

fn compare_holdings_all(model: &Model, alloc: &Allocator) {
    for (k, h) in &model.held {
        let got: BTreeSet<IpAddr> = alloc.assigned_ips(k).unwrap_or_default().into_iter().collect();
        assert_eq!(got, h.ips.iter().copied().collect::<BTreeSet<_>>(), "{k}");
        assert_eq!(alloc.assigned_pool(k), Some(h.pool.as_str()), "{k}");
    }
}

/// The generators must reach every refusal and every way of succeeding, or
/// the comparison above proves less than it seems.
#[test]
fn generators_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..200 {
        let specs = prop::collection::vec(pool_spec(), 1..6).new_tree(&mut runner).expect("pools").current();
        let steps = prop::collection::vec(step(), 1..100).new_tree(&mut runner).expect("steps").current();
        let pools: Vec<Pool> = specs.iter().enumerate().map(|(i, s)| pool(i, s)).collect();
        let mut model = Model::new(pools.clone(), namespaces());
        let mut alloc = Allocator::new();
        alloc.set_pools(model.defs());
        for step in &steps {
            if let Step::Allocate(spec) = step {
                let label = compare_one(&mut model, &mut alloc, &service(spec, &pools)).expect("agreement");
                *seen.entry(label).or_default() += 1;
            }
        }
    }
    let refusals = [
        reference::Refusal::BothRequested,
        reference::Refusal::SameFamily,
        reference::Refusal::FamilyMismatch,
        reference::Refusal::NotAllowed,
        reference::Refusal::NotCompatible(String::new()),
        reference::Refusal::Sharing,
        reference::Refusal::Port,
        reference::Refusal::UnknownPool(String::new()),
        reference::Refusal::NoneInPool(String::new()),
        reference::Refusal::NoneInPoolForDual(String::new()),
        reference::Refusal::NotInRequestedPool(String::new()),
        reference::Refusal::NoneAvailable,
    ];
    for r in refusals {
        let label = format!("{:?}", std::mem::discriminant(&r));
        assert!(seen.get(&label).is_some_and(|n| *n > 0), "never refused with {r:?}: {seen:?}");
    }
    let requests = [
        Request::None,
        Request::Pool(String::new()),
        Request::Ips(vec![]),
        Request::SpecIp("10.0.0.1".parse().expect("ip")),
        Request::IpsInPool(vec![], String::new()),
    ];
    for r in &requests {
        for n in [1, 2] {
            if n == 2 && matches!(r, Request::SpecIp(_)) {
                continue;
            }
            let label = format!("{n} address(es) for {:?}", std::mem::discriminant(r));
            assert!(seen.get(&label).is_some_and(|c| *c > 0), "never {label} ({r:?}): {seen:?}");
        }
    }
}

/// The model's selector matching against hand-checked Kubernetes cases, so a
/// wrong model cannot agree with a wrong allocator unnoticed.
#[test]
fn model_selector_semantics() {
    let labels: Labels = [("team".to_string(), "x".to_string())].into();
    let expr = |op, values: &[&str]| Sel {
        labels: vec![],
        exprs: vec![("team".into(), op, values.iter().map(|s| s.to_string()).collect())],
    };
    let other = |op| Sel { labels: vec![], exprs: vec![("env".into(), op, vec!["prod".into()])] };
    assert!(reference::sel_matches(&Sel::default(), &labels));
    assert!(reference::sel_matches(&expr(Op::In, &["x", "y"]), &labels));
    assert!(!reference::sel_matches(&expr(Op::NotIn, &["x"]), &labels));
    assert!(reference::sel_matches(&other(Op::NotIn), &labels), "NotIn holds for a missing key");
    assert!(!reference::sel_matches(&other(Op::In), &labels));
    assert!(reference::sel_matches(&expr(Op::Exists, &[]), &labels));
    assert!(reference::sel_matches(&other(Op::DoesNotExist), &labels));
    let both = Sel { labels: vec![("team".into(), "x".into())], exprs: vec![("team".into(), Op::NotIn, vec!["x".into()])] };
    assert!(!reference::sel_matches(&both, &labels), "matchLabels and expressions must all hold");
}
