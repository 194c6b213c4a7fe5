//! allocation.md §13 worked examples and the priority-only seed scenario.

mod common;

use common::*;
use ferrolb_allocator::*;

fn section13() -> Allocator {
    alloc(vec![
        pool("A", &["10.0.0.0/30"]),
        with_priority(pool("B", &["10.1.0.0/30"]), 5),
        with_namespaces(with_priority(pool("C", &["10.2.0.0/30"]), 1), &["prod"]),
        no_auto(pool("D", &["10.3.0.0/30"])),
    ])
}

#[test]
fn example_1_priority_only_pool_beats_unconstrained_pool() {
    let mut a = section13();
    let c = run(&mut a, &svc("dev", "a"));
    assert_eq!(c.ingress, ["10.1.0.0"]);
    assert_eq!(c.pool.as_deref(), Some("B"));
    assert_eq!(c.result, SyncResult::Success);
    assert!(c.changed);
    assert_eq!(
        event_texts(&c),
        ["Normal IPAllocated: Assigned IP [\"10.1.0.0\"]"]
    );
}

#[test]
fn example_2_namespace_pool_with_better_priority_first() {
    let mut a = section13();
    let c = run(&mut a, &svc("prod", "x"));
    assert_eq!(c.ingress, ["10.2.0.0"]);
    assert_eq!(c.pool.as_deref(), Some("C"));
}

#[test]
fn example_3_next_pinned_pool_when_full_never_the_fallback() {
    let mut a = section13();
    for i in 0..4 {
        let c = run(&mut a, &svc("prod", &format!("s{i}")));
        assert_eq!(c.ingress, [format!("10.2.0.{i}")]);
    }
    for i in 0..4 {
        let c = run(&mut a, &svc("prod", &format!("t{i}")));
        assert_eq!(c.pool.as_deref(), Some("B"));
        assert_eq!(c.ingress, [format!("10.1.0.{i}")]);
    }
    // B and C full: only now the fallback pool A.
    let c = run(&mut a, &svc("prod", "u"));
    assert_eq!(c.pool.as_deref(), Some("A"));
    assert_eq!(c.ingress, ["10.0.0.0"]);
}

#[test]
fn example_4_requested_pool_ignores_auto_assign() {
    let mut a = section13();
    let s = annotate(svc("dev", "b"), annotations::ADDRESS_POOL, "D");
    let c = run(&mut a, &s);
    assert_eq!(c.ingress, ["10.3.0.0"]);
    assert_eq!(c.pool.as_deref(), Some("D"));
}

#[test]
fn example_5_requested_ip_in_incompatible_pool() {
    let mut a = section13();
    let mut s = svc("dev", "c");
    s.load_balancer_ip = Some("10.2.0.3".into());
    let c = run(&mut a, &s);
    assert!(c.ingress.is_empty());
    let f = c.failure.expect("failure");
    assert_eq!(f.kind, FailureKind::IncompatiblePool);
    assert_eq!(f.error, "pool C not compatible for ip assignment");
    assert!(
        f.message
            .starts_with("pool C not compatible for ip assignment")
    );
    assert_eq!(c.events[0].type_, EventType::Warning);
    assert_eq!(c.events[0].reason, "AllocationFailed");
    assert!(c.events[0].message.starts_with(
        "Failed to allocate IP for \"dev/c\": pool C not compatible for ip assignment"
    ));
    assert_eq!(c.result, SyncResult::ErrorNoRetry);
}

#[test]
fn example_6_sharing_services_get_the_same_address() {
    let mut a = section13();
    let s1 = ports(
        annotate(svc("dev", "web"), annotations::ALLOW_SHARED_IP, "k"),
        &[("TCP", 80)],
    );
    let s2 = ports(
        annotate(svc("dev", "tls"), annotations::ALLOW_SHARED_IP, "k"),
        &[("TCP", 443)],
    );
    let c1 = run(&mut a, &s1);
    let c2 = run(&mut a, &s2);
    assert_eq!(c1.ingress, ["10.1.0.0"]);
    assert_eq!(c2.ingress, ["10.1.0.0"]);
    assert_eq!(a.pool_counters("B").unwrap().assigned_v4, 1);
    // A third one on TCP/80 packs onto the next address.
    let s3 = ports(
        annotate(svc("dev", "web2"), annotations::ALLOW_SHARED_IP, "k"),
        &[("TCP", 80)],
    );
    assert_eq!(run(&mut a, &s3).ingress, ["10.1.0.1"]);
}

#[test]
fn example_7_avoid_buggy_ips_and_counters() {
    let mut a = alloc(vec![avoid_buggy(pool("E", &["10.4.0.0/24"]))]);
    let before = a.pool_counters("E").unwrap();
    assert_eq!((before.assigned_v4, before.available_v4), (0, 254));
    let c = run(&mut a, &svc("dev", "e"));
    assert_eq!(c.ingress, ["10.4.0.1"]);
    let after = a.pool_counters("E").unwrap();
    assert_eq!((after.assigned_v4, after.available_v4), (1, 253));
    assert_eq!((after.assigned_v6, after.available_v6), (0, 0));
}

fn v4_v6_pools() -> Allocator {
    alloc(vec![
        pool("v4", &["10.5.0.0/30"]),
        pool("v6", &["fc00::/126"]),
    ])
}

#[test]
fn example_8_prefer_dual_stack_primary_ipv6_then_follow_up_fails_each_pass() {
    let mut a = v4_v6_pools();
    let mut s = dual("dev", "d", "PreferDualStack", &["IPv6", "IPv4"]);
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["fc00::"]);
    assert_eq!(c.pool.as_deref(), Some("v6"));
    for _ in 0..3 {
        let c = apply(&mut a, &mut s);
        assert_eq!(c.ingress, ["fc00::"]);
        assert_eq!(
            event_texts(&c),
            [
                "Normal AdditionalAssignFailed: cannot assign additional IP in PreferDualStack: [\"fc00::\" \"<nil>\"] is not allowed in config"
            ]
        );
        assert!(!c.changed);
        assert_eq!(c.result, SyncResult::Success);
    }
}

#[test]
fn example_9_prefer_dual_stack_primary_ipv4() {
    let mut a = v4_v6_pools();
    let c = run(
        &mut a,
        &dual("dev", "d", "PreferDualStack", &["IPv4", "IPv6"]),
    );
    assert_eq!(c.ingress, ["10.5.0.0"]);
    assert_eq!(c.pool.as_deref(), Some("v4"));
}

#[test]
fn seed_scenario_two_priority_only_pools() {
    let mut a = alloc(vec![
        with_priority(pool("second", &["192.168.20.0/31"]), 20),
        with_priority(pool("first", &["192.168.10.0/31"]), 10),
    ]);
    let got: Vec<(Vec<String>, Option<String>)> = (0..4)
        .map(|i| {
            let c = run(&mut a, &svc("default", &format!("s{i}")));
            (c.ingress, c.pool)
        })
        .collect();
    assert_eq!(
        got[0],
        (vec!["192.168.10.0".to_string()], Some("first".to_string()))
    );
    assert_eq!(
        got[1],
        (vec!["192.168.10.1".to_string()], Some("first".to_string()))
    );
    assert_eq!(
        got[2],
        (vec!["192.168.20.0".to_string()], Some("second".to_string()))
    );
    assert_eq!(
        got[3],
        (vec!["192.168.20.1".to_string()], Some("second".to_string()))
    );
    let c = run(&mut a, &svc("default", "s4"));
    let f = c.failure.expect("both pools full");
    assert_eq!(f.kind, FailureKind::PoolExhausted);
    assert_eq!(
        f.message,
        "no available IPs: pool \"first\" is full; pool \"second\" is full"
    );
}
