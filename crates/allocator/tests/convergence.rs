//! Keeping, losing and moving addresses (allocation.md §10, §11) and the
//! convergence steps, events and result codes of controller.md §3.

mod common;

use common::*;
use ferrolb_allocator::*;

fn with_status(mut s: ServiceView, ips: &[&str], pool: Option<&str>) -> ServiceView {
    s.ingress_ips = ips.iter().map(|s| s.to_string()).collect();
    if let Some(p) = pool {
        s.annotations
            .insert(annotations::IP_ALLOCATED_FROM_POOL.into(), p.into());
    }
    s
}

#[test]
fn restart_keeps_status_addresses_silently() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/24"])]);
    let s = with_status(svc("ns", "a"), &["10.0.0.7"], Some("p"));
    let c = run(&mut a, &s);
    assert_eq!(c.ingress, ["10.0.0.7"]);
    assert!(c.events.is_empty());
    assert!(!c.changed);
    assert_eq!(c.result, SyncResult::Success);
    assert_eq!(a.pool_counters("p").unwrap().assigned_v4, 1);
    // Missing annotation: it gets written.
    let s = with_status(svc("ns", "b"), &["10.0.0.8"], None);
    let c = run(&mut a, &s);
    assert!(c.changed);
    assert_eq!(c.pool.as_deref(), Some("p"));
}

#[test]
fn first_claimer_wins_on_restart() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let c1 = run(
        &mut a,
        &with_status(svc("ns", "a"), &["10.0.0.1"], Some("p")),
    );
    assert_eq!(c1.ingress, ["10.0.0.1"]);
    let c2 = run(
        &mut a,
        &with_status(svc("ns", "b"), &["10.0.0.1"], Some("p")),
    );
    assert_eq!(c2.ingress, ["10.0.0.0"]);
    assert_eq!(
        event_texts(&c2),
        [
            "Normal ClearAssignment: current IP for \"ns/b\" not allowed by config, will attempt for new IP assignment: can't change sharing key for \"ns/b\", address also in use by ns/a",
            "Normal IPAllocated: Assigned IP [\"10.0.0.0\"]"
        ]
    );
}

#[test]
fn requested_pool_change_reallocates_without_clear_event() {
    let mut a = alloc(vec![
        pool("p", &["10.0.0.0/30"]),
        pool("q", &["10.1.0.0/30"]),
    ]);
    let mut s = svc("ns", "a");
    apply(&mut a, &mut s);
    assert_eq!(s.ingress_ips, ["10.0.0.0"]);
    s.annotations
        .insert(annotations::ADDRESS_POOL.into(), "q".into());
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.1.0.0"]);
    assert_eq!(
        event_texts(&c),
        ["Normal IPAllocated: Assigned IP [\"10.1.0.0\"]"]
    );
    assert_eq!(a.pool_counters("p").unwrap().assigned_v4, 0);
}

#[test]
fn requested_address_change_reallocates() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = svc("ns", "a");
    apply(&mut a, &mut s);
    s.annotations
        .insert(annotations::LOADBALANCER_IPS.into(), "10.0.0.3".into());
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.0.0.3"]);
}

#[test]
fn equal_requested_set_sorts_status_by_text() {
    let mut a = alloc(vec![pool("p", &["3.3.3.0/30", "2001:db8::/126"])]);
    let s = annotate(
        with_status(
            dual("ns", "d", "RequireDualStack", &["IPv4", "IPv6"]),
            &["3.3.3.3", "2001:db8::1"],
            Some("p"),
        ),
        annotations::LOADBALANCER_IPS,
        "3.3.3.3,2001:db8::1",
    );
    let c = run(&mut a, &s);
    assert_eq!(c.ingress, ["2001:db8::1", "3.3.3.3"]);
    assert!(c.changed);
    assert!(c.events.is_empty());
}

#[test]
fn malformed_request_keeps_addresses() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = svc("ns", "a");
    apply(&mut a, &mut s);
    s.annotations
        .insert(annotations::LOADBALANCER_IPS.into(), "garbage".into());
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.0.0.0"]);
    assert_eq!(c.result, SyncResult::ErrorNoRetry);
    assert_eq!(
        event_texts(&c),
        [
            "Warning LoadBalancerFailed: invalid requested loadbalancer IPs: invalid metallb.io/loadBalancerIPs: \"garbage\""
        ]
    );
    assert!(!c.changed);
    assert_eq!(c.failure.unwrap().kind, FailureKind::InvalidRequest);
}

#[test]
fn garbage_status_is_replaced() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let c = run(&mut a, &with_status(svc("ns", "a"), &["bogus"], None));
    assert_eq!(c.ingress, ["10.0.0.0"]);
    assert_eq!(
        event_texts(&c),
        [
            "Warning nolbIPsIPFamily: Failed to retrieve LBIPs IPFamily for [\"<nil>\"]: IPFamilyForAddresses: Invalid address [\"<nil>\"]",
            "Normal IPAllocated: Assigned IP [\"10.0.0.0\"]"
        ]
    );
}

#[test]
fn family_change_reallocates() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30", "fc00::/126"])]);
    let c = run(
        &mut a,
        &with_status(svc("ns", "a"), &["fc00::1"], Some("p")),
    );
    assert_eq!(c.ingress, ["10.0.0.0"]);
    assert_eq!(a.pool_counters("p").unwrap().assigned_v6, 0);
}

#[test]
fn bad_cluster_ips_fail_without_clearing() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = with_status(svc("ns", "a"), &["10.0.0.1"], Some("p"));
    s.cluster_ips = vec!["nope".into()];
    s.cluster_ip = Some("nope".into());
    let c = run(&mut a, &s);
    assert_eq!(c.ingress, ["10.0.0.1"]);
    assert_eq!(c.result, SyncResult::ErrorNoRetry);
    assert_eq!(
        event_texts(&c),
        [
            "Warning noclusterIPsIPFamily: Failed to retrieve ClusterIPs IPFamily for [\"nope\"] nope: IPFamilyForAddresses: Invalid address [\"nope\"]"
        ]
    );
    assert_eq!(c.failure.unwrap().kind, FailureKind::InvalidClusterIPs);
}

#[test]
fn require_dual_stack_needs_two_cluster_ips() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = with_status(svc("ns", "a"), &["10.0.0.1"], Some("p"));
    s.ip_family_policy = Some("RequireDualStack".into());
    let c = run(&mut a, &s);
    assert!(c.ingress.is_empty());
    assert_eq!(c.pool, None);
    assert_eq!(
        event_texts(&c),
        [
            "Warning not enough clusterips: Service requires dual stack but not enough clusterips [\"10.96.0.10\"]"
        ]
    );
    assert_eq!(c.failure.unwrap().kind, FailureKind::NotEnoughClusterIPs);
    assert_eq!(c.result, SyncResult::ErrorNoRetry);
}

#[test]
fn not_load_balancer_is_cleared_and_frees_room() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = svc("ns", "a");
    apply(&mut a, &mut s);
    s.type_ = Some("ClusterIP".into());
    let c = apply(&mut a, &mut s);
    assert!(c.ingress.is_empty());
    assert_eq!(c.pool, None);
    assert!(c.changed);
    assert_eq!(c.ignored.as_deref(), Some("not of type LoadBalancer"));
    assert!(c.failure.is_none());
    // Addresses still in a pool were freed: others may now fit.
    assert_eq!(c.result, SyncResult::ReprocessAll);
    let again = run(&mut a, &s);
    assert!(!again.changed);
    assert_eq!(again.result, SyncResult::Success);
}

#[test]
fn other_load_balancer_class_is_untouched() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = with_status(svc("ns", "a"), &["192.0.2.1"], None);
    s.load_balancer_class = Some("other".into());
    let c = run(&mut a, &s);
    assert!(!c.managed);
    assert_eq!(c.ingress, ["192.0.2.1"]);
    assert!(!c.changed);
    assert!(c.ignored.is_some());
    let c = converge(
        &mut a,
        &s,
        &ConvergeOptions {
            lb_class: Some("other".into()),
        },
    );
    assert!(c.managed);
    assert_eq!(c.ingress, ["10.0.0.0"]);
}

#[test]
fn nothing_happens_before_the_first_configuration() {
    let mut a = Allocator::new();
    let c = run(&mut a, &svc("ns", "a"));
    assert!(c.managed && !c.changed && c.ingress.is_empty() && c.events.is_empty());
    assert_eq!(c.result, SyncResult::Success);
}

#[test]
fn all_pools_removed_clears_everything_silently() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = svc("ns", "a");
    apply(&mut a, &mut s);
    a.set_pools(vec![]);
    let c = apply(&mut a, &mut s);
    assert!(c.ingress.is_empty());
    assert!(c.events.is_empty());
    assert_eq!(c.result, SyncResult::ErrorNoRetry);
    assert_eq!(c.failure.unwrap().kind, FailureKind::NoPools);
    assert!(a.take_dirty_pools().contains("p"));
}

#[test]
fn no_cluster_ip_clears() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = with_status(svc("ns", "a"), &["10.0.0.1"], Some("p"));
    s.cluster_ip = None;
    s.cluster_ips.clear();
    let c = run(&mut a, &s);
    assert!(c.ingress.is_empty());
    assert_eq!(c.failure.unwrap().kind, FailureKind::NoClusterIP);
}

#[test]
fn range_moved_to_another_pool_keeps_the_address() {
    let mut a = alloc(vec![pool("old", &["10.0.0.0/30"])]);
    let mut s = svc("ns", "a");
    apply(&mut a, &mut s);
    a.set_pools(vec![pool("new", &["10.0.0.0/30"])]);
    assert_eq!(a.assigned_pool(&ServiceKey::new("ns", "a")), Some("new"));
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.0.0.0"]);
    assert_eq!(c.pool.as_deref(), Some("new"));
    assert!(c.changed);
    assert!(c.events.is_empty());
    assert_eq!(a.pool_counters("new").unwrap().assigned_v4, 1);
}

#[test]
fn removed_pool_readdresses_with_events() {
    let mut a = alloc(vec![
        pool("a", &["10.0.0.0/30"]),
        pool("b", &["10.1.0.0/30"]),
    ]);
    let mut s = annotate(svc("ns", "x"), annotations::ADDRESS_POOL, "");
    s.load_balancer_ip = Some("10.0.0.2".into());
    apply(&mut a, &mut s);
    s.load_balancer_ip = None;
    a.set_pools(vec![pool("b", &["10.1.0.0/30"])]);
    assert_eq!(a.service_count(), 0, "record dropped with its pool");
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.1.0.0"]);
    assert_eq!(
        event_texts(&c),
        [
            "Normal ClearAssignment: current IP for \"ns/x\" not allowed by config, will attempt for new IP assignment: [\"10.0.0.2\"] is not allowed in config",
            "Normal IPAllocated: Assigned IP [\"10.1.0.0\"]"
        ]
    );
}

#[test]
fn avoid_buggy_turned_on_readdresses_dot_zero() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/24"])]);
    let mut s = svc("ns", "a");
    apply(&mut a, &mut s);
    assert_eq!(s.ingress_ips, ["10.0.0.0"]);
    a.set_pools(vec![avoid_buggy(pool("p", &["10.0.0.0/24"]))]);
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.0.0.1"]);
    assert_eq!(c.events[0].reason, "ClearAssignment");
}

#[test]
fn narrowed_service_allocation_readdresses() {
    let mut a = alloc(vec![
        pool("p", &["10.0.0.0/30"]),
        pool("q", &["10.1.0.0/30"]),
    ]);
    let mut s = svc("dev", "a");
    apply(&mut a, &mut s);
    assert_eq!(s.ingress_ips, ["10.0.0.0"]);
    a.set_pools(vec![
        with_namespaces(pool("p", &["10.0.0.0/30"]), &["prod"]),
        pool("q", &["10.1.0.0/30"]),
    ]);
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.1.0.0"]);
    assert!(
        c.events[0]
            .message
            .ends_with("pool p not compatible for ip assignment")
    );
}

#[test]
fn auto_assign_and_priority_changes_do_not_move_anyone() {
    let mut a = alloc(vec![
        pool("p", &["10.0.0.0/30"]),
        pool("q", &["10.1.0.0/30"]),
    ]);
    let mut s = svc("ns", "a");
    apply(&mut a, &mut s);
    a.set_pools(vec![
        no_auto(pool("p", &["10.0.0.0/30"])),
        with_priority(pool("q", &["10.1.0.0/30"]), 1),
    ]);
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.0.0.0"]);
    assert!(!c.changed);
}

#[test]
fn prefer_dual_stack_follow_up_adds_the_missing_family() {
    let mut a = alloc(vec![pool("d", &["10.0.0.0/32", "fc00::/127"])]);
    let mut blocker = svc("ns", "blocker");
    apply(&mut a, &mut blocker);
    let mut s = dual("ns", "d", "PreferDualStack", &["IPv6", "IPv4"]);
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["fc00::"]);
    a.release(&ServiceKey::new("ns", "blocker"));
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["fc00::", "10.0.0.0"]);
    assert_eq!(
        event_texts(&c),
        ["Normal IPAllocated: Assigned additional IP \"10.0.0.0\""]
    );
    let c = apply(&mut a, &mut s);
    assert!(!c.changed && c.events.is_empty());
}

#[test]
fn prefer_dual_stack_with_single_cluster_ip_is_stable() {
    let mut a = alloc(vec![pool("d", &["10.0.0.0/30", "fc00::/126"])]);
    let mut s = svc("ns", "a");
    s.ip_family_policy = Some("PreferDualStack".into());
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.0.0.0"]);
    for _ in 0..3 {
        let c = apply(&mut a, &mut s);
        assert!(!c.changed);
        assert!(c.events.is_empty());
        assert_eq!(c.ingress, ["10.0.0.0"]);
    }
}

#[test]
fn deprecated_annotations_warn_only_when_writing() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = annotate(svc("ns", "a"), annotations::ALLOW_SHARED_IP_DEPRECATED, "k");
    let c = apply(&mut a, &mut s);
    assert_eq!(
        event_texts(&c),
        [
            "Normal IPAllocated: Assigned IP [\"10.0.0.0\"]",
            "Warning deprecatedAnnotation: Service uses deprecated annotation metallb.universe.tf/allow-shared-ip"
        ]
    );
    let c = apply(&mut a, &mut s);
    assert!(c.events.is_empty());
    assert_eq!(deprecated_annotation_events(&s).len(), 1);
}

#[test]
fn local_service_first_allocation_requests_reprocess() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = svc("ns", "a");
    s.external_traffic_policy = Some("Local".into());
    s.selector.insert("app".into(), "x".into());
    assert_eq!(run(&mut a, &s).result, SyncResult::ReprocessAll);
    let plain = run(&mut a, &svc("ns", "b"));
    assert_eq!(plain.result, SyncResult::Success);
}

#[test]
fn release_reports_whether_there_was_an_allocation() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    run(&mut a, &svc("ns", "a"));
    let key = ServiceKey::new("ns", "a");
    assert_eq!(
        a.assigned_ips(&key),
        Some(vec!["10.0.0.0".parse().unwrap()])
    );
    assert!(a.release(&key));
    assert!(!a.release(&key));
    assert_eq!(a.pool_counters("p").unwrap().assigned_v4, 0);
    assert_eq!(run(&mut a, &svc("ns", "b")).ingress, ["10.0.0.0"]);
}

#[test]
fn counters_follow_section_9() {
    let mut a = alloc(vec![
        pool("big", &["fc00::/64", "fc00:1::/120"]),
        pool("mix", &["fc01::/64", "10.0.0.0/24"]),
        avoid_buggy(pool("tiny", &["10.9.9.0/32"])),
    ]);
    let big = a.pool_counters("big").unwrap();
    assert_eq!((big.capacity_v6, big.available_v6), (i64::MAX, i64::MAX));
    let mix = a.pool_counters("mix").unwrap();
    assert_eq!(mix.capacity_total(), i64::MAX);
    assert_eq!(mix.available_v4, 256);
    let tiny = a.pool_counters("tiny").unwrap();
    assert_eq!((tiny.capacity_v4, tiny.available_v4), (0, 0));
    assert_eq!(a.pool_counters("nope"), None);
    let c = run(&mut a, &svc6("ns", "a"));
    assert_eq!(c.pool.as_deref(), Some("big"));
    let big = a.pool_counters("big").unwrap();
    assert_eq!((big.assigned_v6, big.available_v6), (1, i64::MAX - 1));
    assert_eq!(big.assigned_total(), 1);
}

#[test]
fn explain_lists_every_pool_in_order() {
    let mut a = alloc(vec![
        pool("A", &["10.0.0.0/30"]),
        with_priority(pool("B", &["10.1.0.0/30"]), 5),
        with_namespaces(with_priority(pool("C", &["10.2.0.0/30"]), 1), &["prod"]),
        no_auto(pool("D", &["10.3.0.0/30"])),
    ]);
    let s = svc("dev", "a");
    let e = explain(&a, &s);
    let got: Vec<(String, bool, String)> = e
        .pools
        .iter()
        .map(|v| (v.pool.to_string(), v.eligible, v.reason.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "C".to_string(),
                false,
                "does not select namespace \"dev\"".to_string()
            ),
            ("B".to_string(), true, "was chosen".to_string()),
            (
                "A".to_string(),
                true,
                "was not tried: an earlier pool was chosen".to_string()
            ),
            (
                "D".to_string(),
                false,
                "has autoAssign disabled".to_string()
            ),
        ]
    );
    assert_eq!(e.path, AllocationPath::Automatic);
    assert_eq!(e.outcome.ingress, ["10.1.0.0"]);
    let text = e.to_string();
    assert!(
        text.contains("outcome: assigned 10.1.0.0 from pool \"B\""),
        "{text}"
    );
    // Explaining changes nothing.
    assert_eq!(a.service_count(), 0);
    let mut kept = svc("dev", "k");
    apply(&mut a, &mut kept);
    let e = explain(&a, &kept);
    assert_eq!(e.path, AllocationPath::Kept);
    assert_eq!(e.pools[1].reason, VerdictReason::Kept);
    assert_eq!(e.pools[2].reason, VerdictReason::NotTriedKept);
}

#[test]
fn explain_pending_service() {
    let a = alloc(vec![with_namespaces(
        pool("lab", &["10.0.0.0/30"]),
        &["lab"],
    )]);
    let e = explain(&a, &svc("default", "db"));
    assert!(
        e.to_string().contains(
            "outcome: pending: no available IPs: pool \"lab\" does not select namespace \"default\""
        ),
        "{e}"
    );
}
