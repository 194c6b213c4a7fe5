use super::*;

fn base() -> Fixture {
    Fixture {
        pools: vec![
            labeled_pool("a", json!({"tier": "front"}), &["10.0.0.0/24"]),
            labeled_pool("b", json!({"tier": "back"}), &["10.1.0.0/24"]),
        ],
        nodes: vec![node("n1", json!({"zone": "x"})), node("n2", json!({"zone": "y"}))],
        ..Default::default()
    }
}

fn l2_names(cfg: &Config, pool: &str) -> Vec<String> {
    cfg.pool_advertisements[pool].l2.iter().map(|a| a.name.clone()).collect()
}

fn bgp_names(cfg: &Config, pool: &str) -> Vec<String> {
    cfg.pool_advertisements[pool].bgp.iter().map(|a| a.name.clone()).collect()
}

#[test]
fn l2_without_pool_selection_applies_to_every_pool() {
    let mut f = base();
    f.l2 = vec![l2("all", json!({}))];
    let cfg = f.ok();
    assert_eq!(l2_names(&cfg, "a"), ["all"]);
    assert_eq!(l2_names(&cfg, "b"), ["all"]);
    let adv = &cfg.pool_advertisements["a"].l2[0];
    assert!(adv.all_interfaces);
    assert_eq!(adv.nodes.nodes.len(), 2);
}

#[test]
fn l2_by_name_and_selector_union_unknown_ignored() {
    let mut f = base();
    f.l2 = vec![
        l2("by-name", json!({"ipAddressPools": ["a", "missing"]})),
        l2("by-label", json!({"ipAddressPoolSelectors": [{"matchLabels": {"tier": "back"}}], "interfaces": ["eth0"]})),
        l2("both", json!({"ipAddressPools": ["a"], "ipAddressPoolSelectors": [{"matchLabels": {"tier": "front"}}], "nodeSelectors": [{"matchLabels": {"zone": "y"}}]})),
    ];
    let cfg = f.ok();
    assert_eq!(l2_names(&cfg, "a"), ["both", "by-name"]);
    assert_eq!(l2_names(&cfg, "b"), ["by-label"]);
    let both = &cfg.pool_advertisements["a"].l2[0];
    assert_eq!(both.nodes.nodes.iter().cloned().collect::<Vec<_>>(), ["n2"]);
    assert!(!cfg.pool_advertisements["b"].l2[0].all_interfaces);
}

#[test]
fn l2_identical_effect_deduplicated_unless_preferences() {
    let mut f = base();
    f.l2 = vec![
        l2("one", json!({"ipAddressPools": ["a"]})),
        l2("two", json!({"ipAddressPools": ["a"]})),
        l2("pref1", json!({"ipAddressPools": ["b"], "preferredNodeSelectors": [{"weight": 10, "preference": {"matchLabels": {"zone": "x"}}}]})),
        l2("pref2", json!({"ipAddressPools": ["b"], "preferredNodeSelectors": [{"weight": 5, "preference": {}}]})),
    ];
    let cfg = f.ok();
    assert_eq!(l2_names(&cfg, "a"), ["one"]);
    assert_eq!(l2_names(&cfg, "b"), ["pref1", "pref2"]);
    let p1 = &cfg.pool_advertisements["b"].l2[0];
    assert_eq!(p1.preferred_node_scores.get("n1"), Some(&10));
    assert_eq!(p1.preferred_node_scores.get("n2"), None);
    let p2 = &cfg.pool_advertisements["b"].l2[1];
    assert_eq!(p2.preferred_node_scores.len(), 2);
}

#[test]
fn l2_scores_only_for_eligible_nodes() {
    let mut f = base();
    f.l2 = vec![l2("p", json!({"nodeSelectors": [{"matchLabels": {"zone": "y"}}],
        "preferredNodeSelectors": [{"weight": 7, "preference": {}}, {"weight": 3, "preference": {"matchLabels": {"zone": "y"}}}]}))];
    let cfg = f.ok();
    let scores = &cfg.pool_advertisements["a"].l2[0].preferred_node_scores;
    assert_eq!(scores.len(), 1);
    assert_eq!(scores.get("n2"), Some(&10));
}

#[test]
fn l1_duplicate_pool_names() {
    let mut f = base();
    f.l2 = vec![l2("x", json!({"ipAddressPools": ["a", "a"]}))];
    f.expect_error(r#"L2Advertisement/x: spec.ipAddressPools: duplicate definition of ipAddressPools "a""#);
}

#[test]
fn l2_duplicate_node_selectors() {
    let mut f = base();
    f.l2 = vec![l2("x", json!({"nodeSelectors": [{"matchLabels": {"a": "b"}}, {"matchLabels": {"a": "b"}}]}))];
    let errs = f.errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(r#"L2Advertisement/x: spec.nodeSelectors: duplicate definition of nodeSelectors "&LabelSelector{"#), "{errs:?}");
}

#[test]
fn l2_duplicate_pool_and_service_selectors() {
    let mut f = base();
    let s = json!({"matchLabels": {"a": "b"}});
    f.l2 = vec![l2("x", json!({"ipAddressPoolSelectors": [s, s], "serviceSelectors": [s, s]}))];
    let errs = f.errors();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("spec.ipAddressPoolSelectors: duplicate definition of ipAddressPoolSelectors"));
    assert!(errs[1].contains("spec.serviceSelectors: duplicate definition of serviceSelectors"));
}

#[test]
fn l3_duplicate_expression_value() {
    let mut f = base();
    f.l2 = vec![l2("x", json!({"nodeSelectors": [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["v", "v"]}]}]}))];
    f.expect_error(r#"L2Advertisement/x: spec.nodeSelectors: duplicate definition of match expression value in label selector "v""#);
}

#[test]
fn l4_duplicate_expression() {
    let mut f = base();
    let e = json!({"key": "k", "operator": "Exists"});
    f.l2 = vec![l2("x", json!({"serviceSelectors": [{"matchExpressions": [e, e]}]}))];
    f.expect_error(
        r#"L2Advertisement/x: spec.serviceSelectors: duplicate definition of match expressions "&LabelSelectorRequirement{Key:k,Operator:Exists,Values:[],}""#,
    );
}

#[test]
fn l5_unparsable_selectors() {
    let mut f = base();
    let bad = json!({"matchExpressions": [{"key": "k", "operator": "In"}]});
    f.l2 = vec![l2("x", json!({"nodeSelectors": [bad], "serviceSelectors": [bad], "ipAddressPoolSelectors": [bad],
        "preferredNodeSelectors": [{"weight": 1, "preference": bad}]}))];
    let errs = f.errors();
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("L2Advertisement/x: spec.ipAddressPoolSelectors[0]: invalid label selector: ")));
    assert!(errs.iter().any(|e| e.starts_with("L2Advertisement/x: spec.nodeSelectors[0]: failed to parse node selector for x: ")));
    assert!(errs.iter().any(|e| e.starts_with("L2Advertisement/x: spec.serviceSelectors[0]: failed to parse service selector for x: ")));
    assert!(errs.iter().any(|e| e.starts_with("L2Advertisement/x: spec.preferredNodeSelectors[0].preference: failed to parse preferred node selectors for x: ")));
}

#[test]
fn l6_weight_out_of_range() {
    let mut f = base();
    f.l2 = vec![l2("x", json!({"preferredNodeSelectors": [{"weight": 0, "preference": {}}, {"weight": 101, "preference": {}}]}))];
    let errs = f.errors();
    assert_eq!(errs.len(), 2);
    assert!(errs[0].starts_with("L2Advertisement/x: spec.preferredNodeSelectors[0].weight: Invalid value: 0:"), "{errs:?}");
    assert!(errs[1].contains("in body should be in the range 1-100"));
}

#[test]
fn bgp_defaults_and_community_resolution() {
    let mut f = base();
    f.communities = vec![community("c", &[("no-export", "65535:65281"), ("1:2", "large:1:2:3")])];
    f.mode = BgpMode::Frr;
    f.bgp = vec![bgp("adv", json!({"communities": ["no-export", "1:2", "100:200", "large:7:8:9"], "localPref": 50, "peers": ["p1"]}))];
    let cfg = f.ok();
    let adv = &cfg.pool_advertisements["a"].bgp[0];
    assert_eq!(adv.aggregation_length, 32);
    assert_eq!(adv.aggregation_length_v6, 128);
    assert_eq!(adv.local_pref, 50);
    let texts: Vec<String> = adv.communities.iter().map(|c| c.to_string()).collect();
    // The alias named "1:2" wins over parsing.
    assert_eq!(texts, ["large:1:2:3", "large:7:8:9", "100:200", "65535:65281"]);
    assert_eq!(adv.peers, ["p1"]);
    assert_eq!(cfg.communities.len(), 2);
}

#[test]
fn b1_duplicates() {
    let mut f = base();
    f.bgp = vec![bgp("x", json!({"ipAddressPools": ["a", "a"], "communities": ["1:1", "1:1"], "peers": ["p", "p"]}))];
    assert_eq!(
        f.errors(),
        [
            r#"BGPAdvertisement/x: spec.ipAddressPools: duplicate definition of ipAddressPools "a""#,
            r#"BGPAdvertisement/x: spec.communities: duplicate definition of community "1:1""#,
            r#"BGPAdvertisement/x: spec.peers: duplicate definition of peers "p""#,
        ]
    );
}

#[test]
fn b2_duplicate_selectors() {
    let mut f = base();
    let s = json!({"matchLabels": {"a": "b"}});
    f.bgp = vec![bgp("x", json!({"nodeSelectors": [s, s]}))];
    let errs = f.errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("BGPAdvertisement/x: spec.nodeSelectors: duplicate definition of nodeSelectors"));
}

#[test]
fn b3_b4_service_selectors_with_aggregation() {
    let mut f = base();
    f.bgp = vec![bgp("x", json!({"serviceSelectors": [{}], "aggregationLength": 24, "aggregationLengthV6": 64}))];
    assert_eq!(
        f.errors(),
        [
            "BGPAdvertisement/x: spec.aggregationLength: serviceSelectors and aggregationLength are mutually exclusive, both cannot be set in x",
            "BGPAdvertisement/x: spec.aggregationLengthV6: serviceSelectors and aggregationLengthV6 are mutually exclusive, both cannot be set in x",
        ]
    );
}

#[test]
fn b5_b6_aggregation_too_long() {
    let mut f = base();
    f.bgp = vec![bgp("x", json!({"aggregationLength": 33, "aggregationLengthV6": 129}))];
    assert_eq!(
        f.errors(),
        [
            "BGPAdvertisement/x: spec.aggregationLength: invalid aggregation length 33 for IPv4",
            "BGPAdvertisement/x: spec.aggregationLengthV6: invalid aggregation length 129 for IPv6",
        ]
    );
}

#[test]
fn b7_invalid_community_value() {
    let mut f = base();
    f.bgp = vec![bgp("x", json!({"communities": ["1:70000"]}))];
    let errs = f.errors();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(r#"BGPAdvertisement/x: spec.communities[0]: invalid community "1:70000" in BGP advertisement: invalid community value: "#),
        "{errs:?}"
    );
}

#[test]
fn b8_unknown_alias() {
    let mut f = base();
    f.bgp = vec![bgp("x", json!({"communities": ["no-such-alias"]}))];
    let errs = f.errors();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(r#"BGPAdvertisement/x: spec.communities[0]: invalid community "no-such-alias" in BGP advertisement: invalid community format: no-such-alias"#),
        "{errs:?}"
    );
}

#[test]
fn b9_aggregation_shorter_than_pool_prefix() {
    let mut f = base();
    f.pools.push(pool("r", &["10.2.0.10-10.2.0.20"]));
    f.bgp = vec![bgp("x", json!({"aggregationLength": 16, "ipAddressPools": ["a"]}))];
    f.expect_error(
        r#"BGPAdvertisement/x: spec.aggregationLength: invalid aggregation length 16: prefix 24 in this pool is more specific than the aggregation length for addresses 10.0.0.0/24 (pool "a")"#,
    );
    f.bgp = vec![bgp("x", json!({"aggregationLength": 29, "ipAddressPools": ["r"]}))];
    let errs = f.errors();
    assert!(errs[0].contains("invalid aggregation length 29: prefix 30 in this pool"), "{errs:?}");
    f.bgp = vec![bgp("x", json!({"aggregationLength": 30, "ipAddressPools": ["r"]}))];
    f.ok();
    f.bgp = vec![bgp("x", json!({"aggregationLength": 24, "ipAddressPools": ["a"]}))];
    f.ok();
}

#[test]
fn b9_ipv6_uses_the_v6_length() {
    let f = Fixture {
        pools: vec![pool("v6", &["fc00::/64"])],
        bgp: vec![bgp("x", json!({"aggregationLength": 32, "aggregationLengthV6": 48}))],
        mode: BgpMode::Frr,
        ..Default::default()
    };
    let errs = f.errors();
    assert!(errs[0].contains("invalid aggregation length 48: prefix 64"), "{errs:?}");
}

#[test]
fn b10_local_pref_conflict() {
    let mut f = base();
    f.bgp = vec![
        bgp("first", json!({"localPref": 100, "ipAddressPools": ["a"]})),
        bgp("second", json!({"localPref": 200, "ipAddressPools": ["a"]})),
    ];
    let errs = f.errors();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("BGPAdvertisement/second: spec.localPref: invalid local preference 200: local preferernce 100 was already set for the same type of BGP update. Check existing BGP advertisements with common pools and aggregation lengths"),
        "{errs:?}"
    );
}

#[test]
fn b10_compatible_cases() {
    let cases = [
        // (a) equal local preference
        (json!({"localPref": 100}), json!({"localPref": 100})),
        // (b) different IPv4 aggregation on an IPv4-only pool
        (json!({"localPref": 100, "aggregationLength": 24}), json!({"localPref": 200})),
        // (c) disjoint peer lists
        (json!({"localPref": 100, "peers": ["p1"]}), json!({"localPref": 200, "peers": ["p2"]})),
        // (d) disjoint node sets
        (json!({"localPref": 100, "nodeSelectors": [{"matchLabels": {"zone": "x"}}]}),
         json!({"localPref": 200, "nodeSelectors": [{"matchLabels": {"zone": "y"}}]})),
        // service selectors exempt the advertisement
        (json!({"localPref": 100}), json!({"localPref": 200, "serviceSelectors": [{}]})),
    ];
    for (a, b) in cases {
        let mut f = base();
        let mut a = a;
        let mut b = b;
        a["ipAddressPools"] = json!(["a"]);
        b["ipAddressPools"] = json!(["a"]);
        f.bgp = vec![bgp("first", a.clone()), bgp("second", b.clone())];
        let cfg = f.ok();
        assert_eq!(bgp_names(&cfg, "a"), ["first", "second"], "{a} {b}");
    }
}

#[test]
fn b10_dual_stack_pool_needs_both_lengths_to_differ() {
    let f = Fixture {
        pools: vec![pool("d", &["10.0.0.0/24", "fc00::/64"])],
        bgp: vec![
            bgp("first", json!({"localPref": 1, "aggregationLength": 24, "aggregationLengthV6": 64})),
            bgp("second", json!({"localPref": 2, "aggregationLength": 32, "aggregationLengthV6": 64})),
        ],
        mode: BgpMode::Frr,
        ..Default::default()
    };
    assert_eq!(f.errors().len(), 1);
}

#[test]
fn b11_identical_objects() {
    let mut f = base();
    f.bgp = vec![bgp("same", json!({"localPref": 1})), bgp("same", json!({"localPref": 1}))];
    f.expect_error("BGPAdvertisement/same: duplicate definition of bgpadvertisements. advertisement 0 and 1 are equal");
    f.bgp = vec![bgp("same", json!({"localPref": 1})), bgp("same", json!({"localPref": 2}))];
    f.expect_error(r#"BGPAdvertisement/same: metadata.name: duplicate definition of BGPAdvertisement "same""#);
}

#[test]
fn advertisements_of_an_invalid_pool_are_not_reported() {
    let mut f = base();
    f.pools.push(pool("bad", &["nope"]));
    f.bgp = vec![bgp("x", json!({"ipAddressPools": ["bad"], "aggregationLength": 8}))];
    let errs = f.errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("IPAddressPool/bad:"));
}
