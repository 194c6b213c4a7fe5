use super::*;

fn one_pool(p: IPAddressPool) -> Fixture {
    Fixture { pools: vec![p], ..Default::default() }
}

#[test]
fn valid_pool_keeps_address_order_and_splits_ranges() {
    let cfg = one_pool(pool("prod", &["10.0.0.10-10.0.0.20", "192.168.0.0/31", "fc00::/127"])).ok();
    let p = &cfg.pools[0];
    let cidrs: Vec<String> = p.cidrs.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        cidrs,
        ["10.0.0.10/31", "10.0.0.12/30", "10.0.0.16/30", "10.0.0.20/32", "192.168.0.0/31", "fc00::/127"]
    );
    assert!(p.auto_assign);
    assert!(!p.avoid_buggy_ips);
    assert_eq!(p.allocation, None);
}

#[test]
fn p1_missing_name() {
    let mut p = pool("x", &["10.0.0.0/24"]);
    p.metadata.name = None;
    one_pool(p).expect_error("IPAddressPool/: metadata.name: missing pool name");
}

#[test]
fn p2_no_addresses() {
    one_pool(pool("prod", &[])).expect_error("IPAddressPool/prod: spec.addresses: pool has no prefixes defined");
}

#[test]
fn p3_invalid_cidr() {
    one_pool(pool("prod", &["10.0.0.0/24", "10.1.0.0/24", "10.0.0.0/33"]))
        .expect_error(r#"IPAddressPool/prod: spec.addresses[2]: invalid CIDR "10.0.0.0/33""#);
}

#[test]
fn p3_absurd_prefix_and_zone() {
    let errs = one_pool(pool("prod", &["10.0.0.0/4294967296", "fe80::1%eth0/64", "fe80::/99999999999999999999999"])).errors();
    assert_eq!(
        errs,
        [
            r#"IPAddressPool/prod: spec.addresses[0]: invalid CIDR "10.0.0.0/4294967296""#,
            r#"IPAddressPool/prod: spec.addresses[1]: invalid CIDR "fe80::1%eth0/64""#,
            r#"IPAddressPool/prod: spec.addresses[2]: invalid CIDR "fe80::/99999999999999999999999""#,
        ]
    );
}

#[test]
fn p4_invalid_range_start() {
    one_pool(pool("prod", &["fe80::1%eth0-fe80::9"]))
        .expect_error(r#"IPAddressPool/prod: spec.addresses[0]: invalid IP range "fe80::1%eth0-fe80::9": invalid start IP "fe80::1%eth0""#);
}

#[test]
fn p5_invalid_range_end() {
    one_pool(pool("prod", &["10.0.0.1-10.0.0.300"]))
        .expect_error(r#"IPAddressPool/prod: spec.addresses[0]: invalid IP range "10.0.0.1-10.0.0.300": invalid end IP "10.0.0.300""#);
}

#[test]
fn p6_reversed_range() {
    one_pool(pool("prod", &["10.0.0.9-10.0.0.1"])).expect_error(
        r#"IPAddressPool/prod: spec.addresses[0]: invalid IP range "10.0.0.9-10.0.0.1": start IP "10.0.0.9" is after the end IP "10.0.0.1""#,
    );
}

#[test]
fn mixed_family_range_rejected() {
    let errs = one_pool(pool("prod", &["10.0.0.1-fc00::1"])).errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(r#"IPAddressPool/prod: spec.addresses[0]: invalid IP range "10.0.0.1-fc00::1": "#), "{errs:?}");
}

#[test]
fn p8_duplicate_namespace() {
    one_pool(pool_spec("prod", json!({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"namespaces": ["a", "b", "a"]}})))
        .expect_error("IPAddressPool/prod: spec.serviceAllocation.namespaces: duplicate definition in namespaces field");
}

#[test]
fn p9_duplicate_namespace_selectors() {
    let errs = one_pool(pool_spec(
        "prod",
        json!({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"a": "b"}}, {"matchLabels": {"a": "b"}}]}}),
    ))
    .errors();
    assert_eq!(
        errs,
        [r#"IPAddressPool/prod: spec.serviceAllocation.namespaceSelectors: duplicate definition of namespaceSelectors "&LabelSelector{MatchLabels:map[string]string{a: b,},MatchExpressions:[]LabelSelectorRequirement{},}""#]
    );
}

#[test]
fn p9_duplicate_service_selectors() {
    let errs = one_pool(pool_spec(
        "prod",
        json!({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"serviceSelectors": [
            {"matchExpressions": [{"key": "k", "operator": "In", "values": ["b", "a"]}]},
            {"matchExpressions": [{"key": "k", "operator": "In", "values": ["a", "b"]}]}]}}),
    ))
    .errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("IPAddressPool/prod: spec.serviceAllocation.serviceSelectors: duplicate definition of serviceSelectors \""), "{errs:?}");
}

#[test]
fn p10_invalid_namespace_selector() {
    let errs = one_pool(pool_spec(
        "prod",
        json!({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"namespaceSelectors": [{"matchExpressions": [{"key": "k", "operator": "Bogus"}]}]}}),
    ))
    .errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("IPAddressPool/prod: spec.serviceAllocation.namespaceSelectors[0]: invalid namespace label selector "), "{errs:?}");
    assert!(errs[0].ends_with("in ip pool prod: \"Bogus\" is not a valid label selector operator"), "{errs:?}");
}

#[test]
fn p10_invalid_service_selector() {
    let errs = one_pool(pool_spec(
        "prod",
        json!({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"serviceSelectors": [{"matchLabels": {"bad key": "v"}}]}}),
    ))
    .errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("spec.serviceAllocation.serviceSelectors[0]: invalid service label selector "), "{errs:?}");
}

#[test]
fn p11_duplicate_pool_name() {
    let f = Fixture { pools: vec![pool("prod", &["10.0.0.0/24"]), pool("prod", &["10.1.0.0/24"])], ..Default::default() };
    f.expect_error(r#"IPAddressPool/prod: metadata.name: duplicate definition of pool "prod""#);
}

#[test]
fn p12_overlap_across_pools_names_the_later_pool_in_name_order() {
    // Given in reverse order: name order decides which pool is "later".
    let f = Fixture { pools: vec![pool("b", &["10.0.0.128/25"]), pool("a", &["10.0.0.0/24"])], ..Default::default() };
    f.expect_error(
        r#"IPAddressPool/b: spec.addresses[0]: CIDR "10.0.0.128/25" in pool "b" overlaps with already defined CIDR "10.0.0.0/24" (pool "a")"#,
    );
}

#[test]
fn p12_overlap_within_a_pool_and_between_ranges() {
    one_pool(pool("a", &["10.0.0.0-10.0.0.10", "10.0.0.10-10.0.0.20"])).expect_error(
        r#"IPAddressPool/a: spec.addresses[1]: CIDR "10.0.0.10/31" in pool "a" overlaps with already defined CIDR "10.0.0.10/32" (pool "a")"#,
    );
    // Adjacent ranges share no address.
    one_pool(pool("a", &["10.0.0.0-10.0.0.9", "10.0.0.10-10.0.0.20"])).ok();
}

#[test]
fn p12_overlap_names_the_earliest_defined_cidr() {
    let f = Fixture { pools: vec![pool("a", &["10.0.0.64/26", "10.0.0.0/26"]), pool("b", &["10.0.0.0/24"])], ..Default::default() };
    f.expect_error(
        r#"IPAddressPool/b: spec.addresses[0]: CIDR "10.0.0.0/24" in pool "b" overlaps with already defined CIDR "10.0.0.64/26" (pool "a")"#,
    );
}

#[test]
fn p12_equal_ipv6() {
    let f = Fixture { pools: vec![pool("a", &["fc00::/64"]), pool("b", &["fc00::5/64"])], ..Default::default() };
    assert_eq!(f.errors().len(), 1);
}

#[test]
fn all_errors_collected_across_pools() {
    let f = Fixture {
        pools: vec![pool("a", &["x"]), pool("b", &[]), pool("c", &["10.0.0.0/24", "10.0.0.0/25"])],
        ..Default::default()
    };
    let errs = f.errors();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].starts_with("IPAddressPool/a:"));
    assert!(errs[1].starts_with("IPAddressPool/b:"));
    assert!(errs[2].starts_with("IPAddressPool/c:"));
}

#[test]
fn output_sorted_by_name() {
    let f = Fixture { pools: vec![pool("z", &["10.0.1.0/24"]), pool("a", &["10.0.0.0/24"])], ..Default::default() };
    let names: Vec<String> = f.ok().pools.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["a", "z"]);
}

#[test]
fn namespace_selectors_resolved_against_namespaces() {
    let f = Fixture {
        pools: vec![pool_spec(
            "prod",
            json!({"addresses": ["10.0.0.0/24"], "autoAssign": false, "avoidBuggyIPs": true,
                   "serviceAllocation": {"priority": 5, "namespaces": ["explicit"],
                     "namespaceSelectors": [{"matchLabels": {"team": "a"}}, {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}],
                     "serviceSelectors": [{"matchLabels": {"app": "web"}}]}}),
        )],
        namespaces: vec![
            namespace("ns-a", json!({"team": "a"})),
            namespace("ns-b", json!({"team": "b"})),
            namespace("ns-prod", json!({"env": "prod"})),
        ],
        ..Default::default()
    };
    let cfg = f.ok();
    let p = &cfg.pools[0];
    assert!(!p.auto_assign);
    assert!(p.avoid_buggy_ips);
    let a = p.allocation.as_ref().unwrap();
    assert_eq!(a.priority, 5);
    assert!(a.has_namespace_constraint);
    let ns: Vec<&str> = a.namespaces.iter().map(String::as_str).collect();
    assert_eq!(ns, ["explicit", "ns-a", "ns-prod"]);
    assert_eq!(a.service_selectors.len(), 1);
}

#[test]
fn namespace_selector_matching_nothing_keeps_the_constraint() {
    let f = Fixture {
        pools: vec![pool_spec("p", json!({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"x": "y"}}]}}))],
        ..Default::default()
    };
    let a = f.ok().pools[0].allocation.clone().unwrap();
    assert!(a.has_namespace_constraint);
    assert!(a.namespaces.is_empty());
}

#[test]
fn priority_only_allocation() {
    let f = Fixture { pools: vec![pool_spec("p", json!({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"priority": -2}}))], ..Default::default() };
    let a = f.ok().pools[0].allocation.clone().unwrap();
    assert_eq!(a.priority, -2);
    assert!(!a.has_namespace_constraint);
    assert!(a.service_selectors.is_empty());
}

#[test]
fn build_pool_config_ignores_other_kinds_but_not_communities() {
    let pools = vec![pool("a", &["10.0.0.0/24"])];
    let defs = build_pool_config(&pools, &[], &[]).unwrap();
    assert_eq!(defs.len(), 1);
    let bad = vec![community("c", &[("x", "1:99999")])];
    let errs = build_pool_config(&pools, &bad, &[]).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].kind, "Community");
}
