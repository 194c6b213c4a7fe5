//! IP sharing: allocation.md §8.

mod common;

use common::*;
use ferrolb_allocator::*;

fn shared(name: &str, key: &str, p: &[(&str, i32)]) -> ServiceView {
    ports(
        annotate(svc("ns", name), annotations::ALLOW_SHARED_IP, key),
        p,
    )
}

fn requesting(mut s: ServiceView, ip: &str) -> ServiceView {
    s.load_balancer_ip = Some(ip.into());
    s
}

#[test]
fn different_keys_cannot_share() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    run(
        &mut a,
        &requesting(shared("a", "k1", &[("TCP", 80)]), "10.0.0.1"),
    );
    let c = run(
        &mut a,
        &requesting(shared("b", "k2", &[("TCP", 443)]), "10.0.0.1"),
    );
    let f = c.failure.unwrap();
    assert_eq!(f.kind, FailureKind::SharingConflict);
    assert_eq!(
        f.message,
        "can't change sharing key for \"ns/b\", address also in use by ns/a"
    );
}

#[test]
fn no_key_never_shares_and_lists_holders_sorted() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    run(
        &mut a,
        &requesting(shared("z", "k", &[("TCP", 80)]), "10.0.0.1"),
    );
    run(
        &mut a,
        &requesting(shared("y", "k", &[("TCP", 81)]), "10.0.0.1"),
    );
    let f = run(&mut a, &requesting(svc("ns", "x"), "10.0.0.1"))
        .failure
        .unwrap();
    assert_eq!(
        f.error,
        "can't change sharing key for \"ns/x\", address also in use by ns/y,ns/z"
    );
    // Automatic allocation without a key skips the held address.
    assert_eq!(run(&mut a, &svc("ns", "w")).ingress, ["10.0.0.0"]);
    assert_eq!(run(&mut a, &svc("ns", "v")).ingress, ["10.0.0.2"]);
}

#[test]
fn port_collision_and_protocols() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    run(
        &mut a,
        &requesting(shared("dns-tcp", "k", &[("TCP", 53)]), "10.0.0.1"),
    );
    let c = run(
        &mut a,
        &requesting(shared("dns-udp", "k", &[("UDP", 53)]), "10.0.0.1"),
    );
    assert_eq!(c.ingress, ["10.0.0.1"]);
    let f = run(
        &mut a,
        &requesting(
            shared("again", "k", &[("UDP", 5353), ("TCP", 53)]),
            "10.0.0.1",
        ),
    )
    .failure
    .unwrap();
    assert_eq!(f.message, "port TCP/53 is already in use on \"10.0.0.1\"");
    assert_eq!(a.pool_counters("p").unwrap().assigned_v4, 1);
}

#[test]
fn backend_key_must_match_for_local_services() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let local = |name: &str, app: &str, port: i32| {
        let mut s = shared(name, "k", &[("TCP", port)]);
        s.external_traffic_policy = Some("Local".into());
        s.selector.insert("app".into(), app.into());
        s
    };
    assert_eq!(run(&mut a, &local("a", "x", 80)).ingress, ["10.0.0.0"]);
    assert_eq!(run(&mut a, &local("b", "x", 81)).ingress, ["10.0.0.0"]);
    assert_eq!(run(&mut a, &local("c", "y", 82)).ingress, ["10.0.0.1"]);
    // A Cluster service with the same key has an empty backend key.
    assert_eq!(
        run(&mut a, &shared("d", "k", &[("TCP", 83)])).ingress,
        ["10.0.0.2"]
    );
}

#[test]
fn packing_uses_lowest_compatible_address() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/29"])]);
    for (name, port, want) in [
        ("a", 80, "10.0.0.0"),
        ("b", 443, "10.0.0.0"),
        ("c", 80, "10.0.0.1"),
        ("d", 80, "10.0.0.2"),
        ("e", 443, "10.0.0.1"),
        ("f", 8080, "10.0.0.0"),
    ] {
        assert_eq!(
            run(&mut a, &shared(name, "k", &[("TCP", port)])).ingress,
            [want],
            "{name}"
        );
    }
    // Releasing the first holder of .1 keeps it shared by e: packing still finds it.
    a.release(&ServiceKey::new("ns", "c"));
    assert_eq!(
        run(&mut a, &shared("g", "k", &[("TCP", 80)])).ingress,
        ["10.0.0.1"]
    );
    // A non-sharing service takes the lowest free one, never a shared one.
    assert_eq!(run(&mut a, &svc("ns", "plain")).ingress, ["10.0.0.3"]);
}

#[test]
fn a_sole_holder_may_change_its_key() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s = shared("a", "k1", &[("TCP", 80)]);
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.0.0.0"]);
    s.annotations
        .insert(annotations::ALLOW_SHARED_IP.into(), "k2".into());
    let c = apply(&mut a, &mut s);
    assert_eq!(c.ingress, ["10.0.0.0"]);
    assert!(c.events.is_empty());
    // The allocation key changed: everyone else must be reconsidered.
    assert_eq!(c.result, SyncResult::ReprocessAll);
    // Now a k2 sharer packs with it.
    assert_eq!(
        run(&mut a, &shared("b", "k2", &[("TCP", 81)])).ingress,
        ["10.0.0.0"]
    );
}

#[test]
fn changing_key_while_sharing_moves_the_service() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut s1 = shared("a", "k", &[("TCP", 80)]);
    let mut s2 = shared("b", "k", &[("TCP", 81)]);
    apply(&mut a, &mut s1);
    apply(&mut a, &mut s2);
    assert_eq!(s2.ingress_ips, ["10.0.0.0"]);
    s2.annotations
        .insert(annotations::ALLOW_SHARED_IP.into(), "other".into());
    let c = apply(&mut a, &mut s2);
    assert_eq!(c.ingress, ["10.0.0.1"]);
    assert_eq!(
        event_texts(&c),
        [
            "Normal ClearAssignment: current IP for \"ns/b\" not allowed by config, will attempt for new IP assignment: can't change sharing key for \"ns/b\", address also in use by ns/a",
            "Normal IPAllocated: Assigned IP [\"10.0.0.1\"]"
        ]
    );
    assert_eq!(c.result, SyncResult::ReprocessAll);
}

#[test]
fn local_with_empty_selector_shares_with_cluster() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let mut local = shared("l", "k", &[("TCP", 80)]);
    local.external_traffic_policy = Some("Local".into());
    assert_eq!(run(&mut a, &local).ingress, ["10.0.0.0"]);
    assert_eq!(
        run(&mut a, &shared("c", "k", &[("TCP", 81)])).ingress,
        ["10.0.0.0"]
    );
}

#[test]
fn deprecated_sharing_annotation_is_honoured() {
    let mut a = alloc(vec![pool("p", &["10.0.0.0/30"])]);
    let old = |name: &str, port: i32| {
        ports(
            annotate(
                svc("ns", name),
                annotations::ALLOW_SHARED_IP_DEPRECATED,
                "k",
            ),
            &[("TCP", port)],
        )
    };
    assert_eq!(run(&mut a, &old("a", 80)).ingress, ["10.0.0.0"]);
    assert_eq!(run(&mut a, &old("b", 81)).ingress, ["10.0.0.0"]);
}
