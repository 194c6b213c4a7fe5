//! Which pool and which address: allocation.md §3–§7.

mod common;

use common::*;
use ferrolb_allocator::*;

fn first_ip(a: &mut Allocator, s: &ServiceView) -> Vec<String> {
    let c = run(a, s);
    assert!(c.failure.is_none(), "{:?}", c.failure);
    c.ingress
}

#[test]
fn cidrs_are_walked_in_list_order() {
    let mut a = alloc(vec![pool("p", &["10.0.0.128/25", "10.0.0.0/25"])]);
    assert_eq!(first_ip(&mut a, &svc("ns", "a")), ["10.0.0.128"]);
}

#[test]
fn network_and_broadcast_addresses_are_not_skipped() {
    let mut a = alloc(vec![
        pool("p", &["192.168.1.254/31"]),
        pool("q", &["fc00::/124"]),
    ]);
    assert_eq!(first_ip(&mut a, &svc("ns", "a")), ["192.168.1.254"]);
    assert_eq!(first_ip(&mut a, &svc("ns", "b")), ["192.168.1.255"]);
    assert_eq!(first_ip(&mut a, &svc6("ns", "c")), ["fc00::"]);
}

#[test]
fn avoid_buggy_ips_skips_every_dot_0_and_dot_255() {
    let mut a = alloc(vec![avoid_buggy(pool("p", &["10.0.0.0/23"]))]);
    let mut last = Vec::new();
    for i in 0..255 {
        last = first_ip(&mut a, &svc("ns", &format!("s{i}")));
    }
    // 254 usable in 10.0.0.0/24, the 255th is 10.0.1.1.
    assert_eq!(last, ["10.0.1.1"]);
    let mut s = svc("ns", "req");
    s.load_balancer_ip = Some("10.0.0.255".into());
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(f.kind, FailureKind::RequestedIPOutsidePools);
    assert_eq!(
        f.message,
        "[\"10.0.0.255\"] is not allowed in config: \"10.0.0.255\" is skipped by avoidBuggyIPs in pool \"p\""
    );
}

#[test]
fn many_small_ranges_are_used_in_order() {
    let cidrs: Vec<String> = (0..50).map(|i| format!("10.{}.0.7/32", 50 - i)).collect();
    let refs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
    let mut a = alloc(vec![pool("p", &refs)]);
    for (i, cidr) in cidrs.iter().enumerate() {
        let got = first_ip(&mut a, &svc("ns", &format!("s{i}")));
        assert_eq!(got, [cidr.trim_end_matches("/32")]);
    }
    let f = run(&mut a, &svc("ns", "more")).failure.unwrap();
    assert_eq!(f.message, "no available IPs: pool \"p\" is full");
}

#[test]
fn auto_assign_false_is_only_used_on_request() {
    let mut a = alloc(vec![no_auto(pool("d", &["10.3.0.0/30"]))]);
    let c = run(&mut a, &svc("ns", "a"));
    let f = c.failure.unwrap();
    assert_eq!(f.kind, FailureKind::NoMatchingPool);
    assert_eq!(
        f.message,
        "no available IPs: pool \"d\" has autoAssign disabled"
    );
    let s = annotate(svc("ns", "b"), annotations::ADDRESS_POOL, "d");
    assert_eq!(first_ip(&mut a, &s), ["10.3.0.0"]);
    let mut s = svc("ns", "c");
    s.load_balancer_ip = Some("10.3.0.3".into());
    assert_eq!(first_ip(&mut a, &s), ["10.3.0.3"]);
}

#[test]
fn namespace_constraint_matching_nothing_serves_nobody() {
    let nobody = with_namespaces(pool("n", &["10.9.0.0/30"]), &[]);
    let mut a = alloc(vec![nobody, pool("f", &["10.8.0.0/30"])]);
    // Automatic: not pinned, not a fallback either.
    assert_eq!(first_ip(&mut a, &svc("ns", "a")), ["10.8.0.0"]);
    let s = annotate(svc("ns", "b"), annotations::ADDRESS_POOL, "n");
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(f.kind, FailureKind::IncompatiblePool);
    assert_eq!(
        f.message,
        "pool n not compatible for ip assignment: pool \"n\" selects no namespace (its namespace constraint matches none)"
    );
    let mut s = svc("ns", "c");
    s.load_balancer_ip = Some("10.9.0.1".into());
    assert_eq!(
        run(&mut a, &s).failure.unwrap().kind,
        FailureKind::IncompatiblePool
    );
}

#[test]
fn fallback_pools_by_name_and_constrained_pools_never_fall_back() {
    let mut a = alloc(vec![
        pool("zeta", &["10.2.0.0/32"]),
        pool("alpha", &["10.1.0.0/32"]),
        with_namespaces(pool("other", &["10.3.0.0/30"]), &["other"]),
    ]);
    assert_eq!(first_ip(&mut a, &svc("ns", "a")), ["10.1.0.0"]);
    assert_eq!(first_ip(&mut a, &svc("ns", "b")), ["10.2.0.0"]);
    let f = run(&mut a, &svc("ns", "c")).failure.unwrap();
    assert_eq!(
        f.message,
        "no available IPs: pool \"other\" does not select namespace \"ns\"; pool \"alpha\" is full; pool \"zeta\" is full"
    );
    assert_eq!(f.kind, FailureKind::PoolExhausted);
    assert_eq!(f.pools.len(), 3);
    assert!(f.pools.iter().all(|v| !v.eligible));
}

#[test]
fn negative_priority_is_unset_and_ties_break_by_name() {
    let mut a = alloc(vec![
        with_priority(pool("b-neg", &["10.2.0.0/32"]), -5),
        with_priority(pool("a-zero", &["10.1.0.0/32"]), 0),
        with_priority(pool("c-two", &["10.3.0.0/32"]), 2),
    ]);
    assert_eq!(first_ip(&mut a, &svc("ns", "a")), ["10.3.0.0"]);
    assert_eq!(first_ip(&mut a, &svc("ns", "b")), ["10.1.0.0"]);
    assert_eq!(first_ip(&mut a, &svc("ns", "c")), ["10.2.0.0"]);
}

#[test]
fn service_selectors_pick_by_labels() {
    let mut a = alloc(vec![
        with_selector(pool("web", &["10.1.0.0/30"]), "app", "web"),
        pool("any", &["10.2.0.0/30"]),
    ]);
    let web = labels(svc("ns", "w"), &[("app", "web")]);
    assert_eq!(first_ip(&mut a, &web), ["10.1.0.0"]);
    assert_eq!(first_ip(&mut a, &svc("ns", "x")), ["10.2.0.0"]);
    let e = explain(&a, &svc("ns", "y"));
    assert_eq!(e.pools[0].reason, VerdictReason::LabelsNotSelected);
}

#[test]
fn ipv6_service_against_ipv4_pools_says_family() {
    let mut a = alloc(vec![pool("A", &["10.0.0.0/30"])]);
    let f = run(&mut a, &svc6("ns", "v6")).failure.unwrap();
    assert_eq!(f.kind, FailureKind::FamilyUnavailable);
    assert_eq!(
        f.message,
        "no available IPs: pool \"A\" has no IPv6 addresses"
    );
}

#[test]
fn require_dual_stack_takes_both_from_one_pool_ipv4_first() {
    let mut a = alloc(vec![
        pool("v4", &["10.5.0.0/30"]),
        pool("both", &["fc00::/126", "10.6.0.0/30"]),
    ]);
    let s = dual("ns", "d", "RequireDualStack", &["IPv6", "IPv4"]);
    let c = run(&mut a, &s);
    assert_eq!(c.ingress, ["10.6.0.0", "fc00::"]);
    assert_eq!(c.pool.as_deref(), Some("both"));
}

#[test]
fn require_dual_stack_without_a_dual_pool_fails() {
    let mut a = alloc(vec![
        pool("v4", &["10.5.0.0/30"]),
        pool("v6", &["fc00::/126"]),
    ]);
    let f = run(
        &mut a,
        &dual("ns", "d", "RequireDualStack", &["IPv4", "IPv6"]),
    )
    .failure
    .unwrap();
    assert_eq!(f.kind, FailureKind::FamilyUnavailable);
    assert_eq!(
        f.message,
        "no available IPs: pool \"v4\" has no IPv6 addresses; pool \"v6\" has no IPv4 addresses"
    );
}

#[test]
fn prefer_dual_stack_prefers_a_pool_with_both() {
    let mut a = alloc(vec![
        pool("a-v6", &["fc00::/126"]),
        pool("b-both", &["fc01::/126", "10.6.0.0/30"]),
    ]);
    let c = run(
        &mut a,
        &dual("ns", "d", "PreferDualStack", &["IPv6", "IPv4"]),
    );
    assert_eq!(c.ingress, ["10.6.0.0", "fc01::"]);
    let e = explain(&a, &dual("ns", "e", "PreferDualStack", &["IPv6", "IPv4"]));
    assert_eq!(e.pools[0].reason, VerdictReason::OffersOnly(Family::V6));
    assert_eq!(e.pools[1].reason, VerdictReason::Chosen);
}

#[test]
fn requested_pool_errors() {
    let mut a = alloc(vec![
        pool("v4", &["10.5.0.0/32"]),
        pool("v4free", &["10.7.0.0/30"]),
        pool("mixed", &["10.6.0.0/32", "fc00::/126"]),
    ]);
    let s = annotate(svc("ns", "u"), annotations::ADDRESS_POOL, "nope");
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(
        (f.kind, f.message.as_str()),
        (FailureKind::UnknownPool, "unknown pool \"nope\"")
    );

    assert_eq!(
        first_ip(
            &mut a,
            &annotate(svc("ns", "a"), annotations::ADDRESS_POOL, "v4")
        ),
        ["10.5.0.0"]
    );
    let f = run(
        &mut a,
        &annotate(svc("ns", "b"), annotations::ADDRESS_POOL, "v4"),
    )
    .failure
    .unwrap();
    assert_eq!(f.kind, FailureKind::PoolExhausted);
    assert_eq!(
        f.message,
        "no available IPs in pool v4: pool \"v4\" is full"
    );

    let s = annotate(
        dual("ns", "d", "RequireDualStack", &["IPv4", "IPv6"]),
        annotations::ADDRESS_POOL,
        "v4free",
    );
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(f.error, "no available IPs in pool v4free for dual IPFamily");
    assert_eq!(f.kind, FailureKind::FamilyUnavailable);

    // Upstream quirk: IPv4 exhausted, IPv6 free -> a nil address.
    assert_eq!(
        first_ip(
            &mut a,
            &annotate(svc("ns", "c"), annotations::ADDRESS_POOL, "mixed")
        ),
        ["10.6.0.0"]
    );
    let f = run(
        &mut a,
        &annotate(svc("ns", "e"), annotations::ADDRESS_POOL, "mixed"),
    )
    .failure
    .unwrap();
    assert_eq!(f.error, "[\"<nil>\"] is not allowed in config");
    assert_eq!(f.kind, FailureKind::FamilyUnavailable);
    assert_eq!(
        f.message,
        "[\"<nil>\"] is not allowed in config: pool \"mixed\" has no free IPv4 address"
    );
}

#[test]
fn requested_addresses_errors() {
    let mut a = alloc(vec![
        pool("p", &["10.0.0.0/30", "fc00::/126"]),
        pool("q", &["10.1.0.0/30"]),
    ]);
    let mut s = svc("ns", "both");
    s.load_balancer_ip = Some("10.0.0.1".into());
    let s = annotate(s, annotations::LOADBALANCER_IPS, "10.0.0.2");
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(f.kind, FailureKind::InvalidRequest);
    assert_eq!(
        f.message,
        "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
    );

    let s = annotate(svc("ns", "fam"), annotations::LOADBALANCER_IPS, "fc00::1");
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(
        f.message,
        "requested loadBalancer IP(s) [\"fc00::1\"] does not match the ipFamily of the service"
    );

    let s = annotate(svc("ns", "out"), annotations::LOADBALANCER_IPS, "192.0.2.1");
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(f.kind, FailureKind::RequestedIPOutsidePools);
    assert_eq!(
        f.message,
        "[\"192.0.2.1\"] is not allowed in config: \"192.0.2.1\" is in no pool"
    );

    let s = annotate(
        annotate(svc("ns", "mis"), annotations::LOADBALANCER_IPS, "10.1.0.1"),
        annotations::ADDRESS_POOL,
        "p",
    );
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(
        f.message,
        "requested loadBalancer IP(s) [\"10.1.0.1\"] is not compatible with requested address pool p"
    );
    assert_eq!(a.pool_counters("q").unwrap().assigned_v4, 0, "claim undone");

    let s = annotate(
        dual("ns", "spread", "RequireDualStack", &["IPv4", "IPv6"]),
        annotations::LOADBALANCER_IPS,
        "10.1.0.1,fc00::1",
    );
    let f = run(&mut a, &s).failure.unwrap();
    assert_eq!(
        f.message,
        "[\"10.1.0.1\" \"fc00::1\"] is not allowed in config: the requested IPs are in different pools"
    );
}

#[test]
fn requested_dual_addresses_keep_the_requested_order() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30", "fc00::/126"])]);
    let s = annotate(
        dual("ns", "d", "RequireDualStack", &["IPv4", "IPv6"]),
        annotations::LOADBALANCER_IPS,
        "fc00::2, 10.0.0.3",
    );
    let c = run(&mut a, &s);
    assert_eq!(c.ingress, ["fc00::2", "10.0.0.3"]);
    assert_eq!(
        c.events[0].message,
        "Assigned IP [\"fc00::2\" \"10.0.0.3\"]"
    );
}

#[test]
fn empty_current_annotation_hides_the_deprecated_one() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let s = annotate(
        annotate(
            svc("ns", "a"),
            annotations::LOADBALANCER_IPS_DEPRECATED,
            "10.0.0.3",
        ),
        annotations::LOADBALANCER_IPS,
        "",
    );
    assert_eq!(first_ip(&mut a, &s), ["10.0.0.0"]);
    let s = annotate(
        svc("ns", "b"),
        annotations::LOADBALANCER_IPS_DEPRECATED,
        "10.0.0.3",
    );
    assert_eq!(first_ip(&mut a, &s), ["10.0.0.3"]);
}

#[test]
fn prefer_dual_stack_falls_back_to_the_secondary_family() {
    let mut a = alloc(vec![pool("v4", &["10.5.0.0/30"])]);
    let c = run(
        &mut a,
        &dual("ns", "d", "PreferDualStack", &["IPv6", "IPv4"]),
    );
    assert_eq!(c.ingress, ["10.5.0.0"]);
}

#[test]
fn requested_pool_serves_require_dual_stack() {
    let mut a = alloc(vec![no_auto(pool("both", &["fc00::/126", "10.6.0.0/30"]))]);
    let s = annotate(
        dual("ns", "d", "RequireDualStack", &["IPv6", "IPv4"]),
        annotations::ADDRESS_POOL,
        "both",
    );
    assert_eq!(run(&mut a, &s).ingress, ["10.6.0.0", "fc00::"]);
}

#[test]
fn dirty_pools_follow_claims_releases_and_reconfiguration() {
    let mut a = alloc(vec![
        pool("p", &["10.0.0.0/30"]),
        pool("q", &["10.1.0.0/30"]),
    ]);
    assert_eq!(a.take_dirty_pools().len(), 2);
    assert!(a.take_dirty_pools().is_empty());
    run(&mut a, &svc("ns", "a"));
    assert_eq!(a.take_dirty_pools().into_iter().collect::<Vec<_>>(), ["p"]);
    a.release(&ServiceKey::new("ns", "a"));
    assert_eq!(a.take_dirty_pools().into_iter().collect::<Vec<_>>(), ["p"]);
    a.set_pools(vec![pool("r", &["10.2.0.0/30"])]);
    assert_eq!(
        a.take_dirty_pools().into_iter().collect::<Vec<_>>(),
        ["p", "q", "r"]
    );
}
