use super::*;

fn frr() -> Fixture {
    Fixture { mode: BgpMode::Frr, ..Default::default() }
}

#[test]
fn bfd_profile_parsed() {
    let mut f = frr();
    f.bfd = vec![bfd("fast", json!({"receiveInterval": 10, "transmitInterval": 60000, "detectMultiplier": 2, "echoInterval": 50, "echoMode": true, "minimumTtl": 254}))];
    let cfg = f.ok();
    assert_eq!(cfg.bfd_profiles[0].receive_interval, Some(10));
    assert!(cfg.bfd_profiles[0].echo_mode);
    assert!(!cfg.bfd_profiles[0].passive_mode);
}

#[test]
fn bfd_ranges() {
    let cases = [
        ("receiveInterval", 9, "invalid receive interval value: invalid value 9, must be in 10-60000 range"),
        ("transmitInterval", 60001, "invalid transmit interval value: invalid value 60001, must be in 10-60000 range"),
        ("detectMultiplier", 256, "invalid detect multiplier value: invalid value 256, must be in 2-255 range"),
        ("echoInterval", 1, "invalid echo interval value: invalid value 1, must be in 10-60000 range"),
        ("minimumTtl", 0, "invalid minimum ttl value: invalid value 0, must be in 1-254 range"),
    ];
    for (field, value, msg) in cases {
        let mut f = frr();
        f.bfd = vec![bfd("b", json!({field: value}))];
        f.expect_error(&format!("BFDProfile/b: spec.{field}: {msg}"));
    }
}

#[test]
fn bfd_missing_and_duplicate_name() {
    let mut f = frr();
    let mut b = bfd("x", json!({}));
    b.metadata.name = None;
    f.bfd = vec![b];
    f.expect_error("BFDProfile/: metadata.name: missing bfd profile name");
    f.bfd = vec![bfd("x", json!({})), bfd("x", json!({}))];
    f.expect_error("BFDProfile/x: metadata.name: found duplicate bfd profile name x");
}

#[test]
fn bfd_echo_with_ipv6_pool() {
    let mut f = frr();
    f.pools = vec![pool("v6", &["fc00::/64"]), pool("v4", &["10.0.0.0/24"])];
    f.bfd = vec![bfd("echo", json!({"echoMode": true}))];
    f.peers = vec![peer("p", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "bfdProfile": "echo"}))];
    f.bgp = vec![bgp("adv", json!({}))];
    f.expect_error("IPAddressPool/v6: pool v6 has bgpadvertisement adv which references peer p which has bfd echo enabled, which is not possible");
    // Targeting only another peer is fine.
    f.bgp = vec![bgp("adv", json!({"peers": ["other"]}))];
    f.ok();
}

fn native_peer(spec: Value) -> Fixture {
    Fixture { peers: vec![peer("p", spec)], ..Default::default() }
}

#[test]
fn native_rejects_frr_only_peer_fields() {
    let base = json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1"});
    let cases = [
        ("keepaliveTime", json!("10s"), "spec.keepaliveTime", "peer 10.0.0.1 has keepalive-time set on native bgp mode"),
        ("vrf", json!("red"), "spec.vrf", "peer 10.0.0.1 has vrf set on native bgp mode"),
        ("connectTime", json!("0s"), "spec.connectTime", "peer 10.0.0.1 has connect time set on native bgp mode"),
        ("enableGracefulRestart", json!(true), "spec.enableGracefulRestart", "peer 10.0.0.1 has EnableGracefulRestart flag set on native bgp mode"),
        ("disableMP", json!(true), "spec.disableMP", "peer 10.0.0.1 has disable MP flag set on native bgp mode"),
        ("dualStackAddressFamily", json!(true), "spec.dualStackAddressFamily", "peer 10.0.0.1 has dualstackaddressfamily flag set on native bgp mode"),
        ("localASN", json!(7), "spec.localASN", "peer 10.0.0.1 has localASN set on native bgp mode"),
    ];
    for (key, value, field, msg) in cases {
        let mut spec = base.clone();
        spec[key] = value;
        native_peer(spec).expect_error(&format!("BGPPeer/p: {field}: {msg}"));
    }
    // A zero keepalive is not "set".
    let mut spec = base.clone();
    spec["keepaliveTime"] = json!("0s");
    spec["holdTime"] = json!("0s");
    native_peer(spec).ok();
}

#[test]
fn native_rejects_bfd_dynamic_asn_and_interface() {
    let errs = native_peer(json!({"myASN": 1, "dynamicASN": "external", "interface": "eth0", "bfdProfile": "b"})).errors();
    assert!(errs.contains(&"BGPPeer/p: spec.bfdProfile: peer  has bfd-profile set on native bgp mode".to_string()), "{errs:?}");
    assert!(errs.contains(&"BGPPeer/p: spec.dynamicASN: peer  has dynamicASN set on native bgp mode".to_string()), "{errs:?}");
    assert!(errs.contains(&"BGPPeer/p: spec.interface: peer  has interface set on native bgp mode".to_string()), "{errs:?}");
}

#[test]
fn native_rejects_bfd_profiles() {
    let f = Fixture { bfd: vec![bfd("b", json!({}))], ..Default::default() };
    f.expect_error("BFDProfile/b: bfd profiles section set");
}

#[test]
fn native_rejects_ipv6_pools_with_bgp() {
    let mut f = Fixture {
        pools: vec![labeled_pool("v6", json!({"bgp": "yes"}), &["10.0.0.0/24", "fc00::/64"]), pool("v4", &["10.1.0.0/24"])],
        ..Default::default()
    };
    for adv in [json!({}), json!({"ipAddressPools": ["v6"]}), json!({"ipAddressPoolSelectors": [{"matchLabels": {"bgp": "yes"}}]})] {
        f.bgp = vec![bgp("adv", adv)];
        f.expect_error(r#"IPAddressPool/v6: spec.addresses: pool "v6" has ipv6 CIDR fc00::/64, native bgp mode does not support ipv6"#);
    }
    f.bgp = vec![bgp("adv", json!({"ipAddressPools": ["v4"]}))];
    f.ok();
    // Only BGP counts: L2 may announce IPv6 pools.
    f.bgp = vec![];
    f.l2 = vec![l2("l2", json!({}))];
    f.ok();
}

#[test]
fn native_rejects_large_communities() {
    let f = Fixture {
        pools: vec![pool("a", &["10.0.0.0/24"])],
        communities: vec![community("c", &[("big", "large:1:2:3"), ("small", "1:2")])],
        bgp: vec![bgp("adv", json!({"communities": ["large:4:5:6", "small", "big"]}))],
        ..Default::default()
    };
    assert_eq!(
        f.errors(),
        [
            r#"Community/c: spec.communities[0].value: native BGP mode only supports legacy communities, BGP community CR "c" has non legacy community "big""#,
            r#"BGPAdvertisement/adv: spec.communities[0]: native BGP mode only supports legacy communities, BGP advertisement "adv" has non legacy community "large:4:5:6""#,
        ]
    );
}

#[test]
fn native_allows_duplicate_peer_addresses() {
    let spec = json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1"});
    let f = Fixture { peers: vec![peer("a", spec.clone()), peer("b", spec)], ..Default::default() };
    assert_eq!(f.ok().peers.len(), 2);
}

#[test]
fn frr_duplicate_peer_on_same_node() {
    let spec = json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1"});
    let mut f = Fixture { peers: vec![peer("a", spec.clone()), peer("b", spec)], mode: BgpMode::Frr, ..Default::default() };
    f.expect_error("BGPPeer/b: spec.peerAddress: peer 10.0.0.1 already exists, FRR mode doesn't support duplicate BGPPeers selecting the same node");
    // Disjoint node selectors with known nodes: no shared node, no conflict.
    f.nodes = vec![node("n1", json!({"z": "1"})), node("n2", json!({"z": "2"}))];
    f.peers = vec![
        peer("a", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "nodeSelectors": [{"matchLabels": {"z": "1"}}]})),
        peer("b", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "nodeSelectors": [{"matchLabels": {"z": "2"}}]})),
    ];
    f.ok();
    // Same address in different VRFs is a different identifier.
    f.nodes = vec![];
    f.peers = vec![
        peer("a", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1"})),
        peer("b", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "vrf": "red"})),
    ];
    f.ok();
}

#[test]
fn frr_router_id_mismatch() {
    let f = Fixture {
        peers: vec![
            peer("a", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "routerID": "1.1.1.1"})),
            peer("b", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.2"})),
        ],
        mode: BgpMode::FrrK8s,
        ..Default::default()
    };
    f.expect_error("BGPPeer/b: spec.routerID: peer  has RouterID different from 1.1.1.1, in FRR mode peers selecting the same node must all have the same RouterID");
}

#[test]
fn frr_my_asn_mismatch_within_vrf() {
    let mut f = Fixture {
        peers: vec![
            peer("a", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1"})),
            peer("b", json!({"myASN": 5, "peerASN": 2, "peerAddress": "10.0.0.2"})),
        ],
        mode: BgpMode::Frr,
        ..Default::default()
    };
    f.expect_error("BGPPeer/b: spec.myASN: peer 10.0.0.2 has myAsn different from 10.0.0.1, in FRR mode peers selecting the same node must have the same myAsn within the same VRF");
    f.peers[1].spec.vrf = "red".into();
    f.ok();
}

#[test]
fn mode_from_env_value() {
    assert_eq!(BgpMode::from_env_value(None), Ok(BgpMode::Native));
    assert_eq!(BgpMode::from_env_value(Some("")), Ok(BgpMode::Native));
    assert_eq!(BgpMode::from_env_value(Some("frr")), Ok(BgpMode::Frr));
    assert_eq!(BgpMode::from_env_value(Some("frr-k8s")), Ok(BgpMode::FrrK8s));
    assert!(BgpMode::from_env_value(Some("bird")).is_err());
}

#[test]
fn community_objects() {
    let f = Fixture {
        communities: vec![community("a", &[("x", "1:2")]), community("b", &[("x", "3:4"), ("y", "nope")])],
        ..Default::default()
    };
    assert_eq!(
        f.errors(),
        [
            r#"Community/b: spec.communities[0].name: duplicate definition of community "x""#,
            r#"Community/b: spec.communities[1].value: parsing community "y": invalid community format: nope"#,
        ]
    );
}

#[test]
fn empty_input_is_valid() {
    let cfg = Fixture::default().ok();
    assert!(cfg.pools.is_empty());
    assert!(cfg.peers.is_empty());
}

#[test]
fn errors_come_in_build_order() {
    // One failing object per step of §10.1, given in reverse order.
    let f = Fixture {
        pools: vec![pool("v6", &["fc00::/64"]), pool("bad", &["x"])],
        l2: vec![l2("l2", json!({"ipAddressPools": ["v6", "v6"]}))],
        bgp: vec![bgp("adv", json!({"peers": ["p"], "ipAddressPools": ["v6"]}))],
        communities: vec![community("c", &[("x", "nope")])],
        peers: vec![peer("p", json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "bfdProfile": "echo"})),
                    peer("q", json!({"myASN": 1, "peerAddress": "10.0.0.2"}))],
        bfd: vec![bfd("echo", json!({"echoMode": true})), bfd("slow", json!({"receiveInterval": 1}))],
        mode: BgpMode::Frr,
        ..Default::default()
    };
    let kinds: Vec<String> = f.build().unwrap_err().iter().map(|e| format!("{}/{}", e.kind, e.name)).collect();
    assert_eq!(
        kinds,
        ["BFDProfile/slow", "BGPPeer/q", "Community/c", "IPAddressPool/bad", "L2Advertisement/l2", "IPAddressPool/v6"]
    );
    // Mode checks come first of all.
    let mut native = Fixture { bfd: vec![bfd("slow", json!({"receiveInterval": 1}))], ..Default::default() };
    native.peers = vec![peer("p", json!({"myASN": 0, "peerASN": 2, "peerAddress": "10.0.0.1", "vrf": "red"}))];
    let kinds: Vec<String> = native.errors();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(kinds[0].starts_with("BGPPeer/p: spec.vrf:"), "{kinds:?}");
    assert_eq!(kinds[1], "BFDProfile/slow: bfd profiles section set");
    assert!(kinds[2].starts_with("BFDProfile/slow: spec.receiveInterval:"), "{kinds:?}");
    assert!(kinds[3].starts_with("BGPPeer/p: spec.myASN:"), "{kinds:?}");
}
