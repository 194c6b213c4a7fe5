use super::*;

fn frr_peer(spec: Value) -> Fixture {
    Fixture { peers: vec![peer("p", spec)], mode: BgpMode::Frr, ..Default::default() }
}

fn native_peer(spec: Value) -> Fixture {
    Fixture { peers: vec![peer("p", spec)], ..Default::default() }
}

#[test]
fn valid_peer_parsed() {
    let mut f = native_peer(json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "sourceAddress": "10.0.0.2",
        "routerID": "1.2.3.4", "holdTime": "90s", "password": "pw", "nodeSelectors": [{"matchLabels": {"zone": "x"}}]}));
    f.nodes = vec![node("n1", json!({"zone": "x"})), node("n2", json!({}))];
    let cfg = f.ok();
    let p = &cfg.peers[0];
    assert_eq!(p.my_asn, 64500);
    assert_eq!(p.asn, 64501);
    assert_eq!(p.port, 179);
    assert_eq!(p.address, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(p.source_address, Some("10.0.0.2".parse().unwrap()));
    assert_eq!(p.router_id, Some("1.2.3.4".parse().unwrap()));
    assert_eq!(p.timers, Some(crate::timers::Timers { hold: 90 * crate::duration::SECOND, keepalive: 30 * crate::duration::SECOND }));
    assert_eq!(p.password, Password::Plain("pw".into()));
    assert_eq!(p.nodes.nodes.iter().cloned().collect::<Vec<_>>(), ["n1"]);
}

#[test]
fn port_zero_means_default() {
    let cfg = native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "peerPort": 0})).ok();
    assert_eq!(cfg.peers[0].port, 179);
    let cfg = native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "peerPort": 1179})).ok();
    assert_eq!(cfg.peers[0].port, 1179);
}

#[test]
fn r1_missing_local_asn() {
    native_peer(json!({"myASN": 0, "peerASN": 1, "peerAddress": "10.0.0.1"}))
        .expect_error("BGPPeer/p: spec.myASN: missing local ASN");
}

#[test]
fn r2_missing_peer_asn() {
    native_peer(json!({"myASN": 1, "peerAddress": "10.0.0.1"}))
        .expect_error("BGPPeer/p: spec.peerASN: missing peer ASN and dynamicASN");
}

#[test]
fn r3_both_asns() {
    frr_peer(json!({"myASN": 1, "peerASN": 2, "dynamicASN": "external", "peerAddress": "10.0.0.1"}))
        .expect_error("BGPPeer/p: spec.dynamicASN: both peer ASN and dynamicASN specified");
}

#[test]
fn r4_dynamic_asn_accepted_values() {
    let cfg = frr_peer(json!({"myASN": 1, "dynamicASN": "internal", "peerAddress": "10.0.0.1"})).ok();
    assert_eq!(cfg.peers[0].dynamic_asn, Some(DynamicAsn::Internal));
    // Other values cannot even be represented: the manifest reader reports them.
    let bad: Result<BGPPeer, _> = serde_json::from_value(json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "p"}, "spec": {"myASN": 1, "dynamicASN": "sideways"}}));
    assert!(bad.is_err());
}

#[test]
fn r5_multihop_ibgp() {
    native_peer(json!({"myASN": 1, "peerASN": 1, "peerAddress": "10.0.0.1", "ebgpMultiHop": true}))
        .expect_error("BGPPeer/p: spec.ebgpMultiHop: invalid ebgp-multihop parameter set for an ibgp peer");
}

#[test]
fn r6_no_address_or_interface() {
    native_peer(json!({"myASN": 1, "peerASN": 2}))
        .expect_error("BGPPeer/p: spec.peerAddress: peer has no Address or Interface specified");
}

#[test]
fn r7_both_address_and_interface() {
    frr_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "interface": "eth0"}))
        .expect_error("BGPPeer/p: spec.interface: peer has both Address and Interface specified");
}

#[test]
fn r8_timers() {
    native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "holdTime": "2s"}))
        .expect_error(r#"BGPPeer/p: spec.holdTime: invalid BGPPeer timers: invalid hold time "2s": must be 0 or >=3s"#);
    frr_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "holdTime": "30s", "keepaliveTime": "40s"}))
        .expect_error(r#"BGPPeer/p: spec.holdTime: invalid BGPPeer timers: invalid keepaliveTime "40s", must be lower than holdTime "30s""#);
    native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "holdTime": "soon"}))
        .expect_error(r#"BGPPeer/p: spec.holdTime: invalid BGPPeer timers: time: invalid duration "soon""#);
}

#[test]
fn r8_zero_timers_are_explicit() {
    let cfg = native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "holdTime": "0s", "keepaliveTime": "0s"})).ok();
    assert_eq!(cfg.peers[0].timers, Some(crate::timers::Timers { hold: 0, keepalive: 0 }));
}

#[test]
fn r9_bad_address() {
    native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.256"}))
        .expect_error(r#"BGPPeer/p: spec.peerAddress: invalid BGPPeer address "10.0.0.256""#);
    native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "fe80::1%eth0"}))
        .expect_error(r#"BGPPeer/p: spec.peerAddress: invalid BGPPeer address "fe80::1%eth0""#);
}

#[test]
fn r10_bad_router_id() {
    native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "routerID": "router"}))
        .expect_error(r#"BGPPeer/p: spec.routerID: invalid router ID "router""#);
}

#[test]
fn r11_bad_source() {
    native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "sourceAddress": " 10.0.0.2"}))
        .expect_error(r#"BGPPeer/p: spec.sourceAddress: invalid source IP " 10.0.0.2""#);
}

#[test]
fn r12_node_selectors() {
    let s = json!({"matchLabels": {"a": "b"}});
    let errs = native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "nodeSelectors": [s, s]})).errors();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("BGPPeer/p: spec.nodeSelectors: duplicate definition of nodeSelectors "), "{errs:?}");
    let errs = native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1",
        "nodeSelectors": [{"matchExpressions": [{"key": "k", "operator": "Near"}]}]})).errors();
    assert_eq!(errs, [r#"BGPPeer/p: spec.nodeSelectors[0]: failed to convert peer p node selector: "Near" is not a valid label selector operator"#]);
}

fn with_secret(secret_ref: &str, secrets: Vec<Secret>) -> Fixture {
    let mut f = native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1",
        "passwordSecret": {"name": secret_ref, "namespace": "elsewhere"}}));
    f.secrets = secrets;
    f
}

#[test]
fn r13_password_and_secret() {
    native_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "password": "x", "passwordSecret": {"name": "s"}}))
        .expect_error(r#"BGPPeer/p: spec.passwordSecret: can not have both password and secret ref set in peer config "metallb-system"/"p""#);
}

#[test]
fn r14_secret_not_found() {
    with_secret("s", vec![]).expect_error(r#"BGPPeer/p: spec.passwordSecret.name: secret ref not found for peer config "metallb-system"/"p""#);
    // A Secret of that name in another namespace does not count.
    let mut other: Secret = secret("s", "kubernetes.io/basic-auth", json!({"password": "cHc="}));
    other.metadata.namespace = Some("elsewhere".into());
    assert_eq!(with_secret("s", vec![other]).errors().len(), 1);
}

#[test]
fn r15_secret_type() {
    with_secret("s", vec![secret("s", "Opaque", json!({"password": "cHc="}))]).expect_error(
        r#"BGPPeer/p: spec.passwordSecret.name: secret type mismatch on "metallb-system"/"s", type "kubernetes.io/basic-auth" is expected "#,
    );
}

#[test]
fn r16_secret_without_password() {
    with_secret("s", vec![secret("s", "kubernetes.io/basic-auth", json!({"username": "cHc="}))])
        .expect_error(r#"BGPPeer/p: spec.passwordSecret.name: password not specified in the secret "metallb-system"/"s""#);
}

#[test]
fn secret_password_resolved() {
    let cfg = with_secret("s", vec![secret("s", "kubernetes.io/basic-auth", json!({"password": "cHc="}))]).ok();
    assert_eq!(cfg.peers[0].password, Password::Plain("pw".into()));
}

#[test]
fn secret_passthrough_in_frr_k8s_mode() {
    let mut f = with_secret("s", vec![]);
    f.mode = BgpMode::FrrK8s;
    f.passthrough = true;
    let cfg = f.ok();
    assert_eq!(cfg.peers[0].password, Password::SecretRef { name: "s".into(), namespace: "metallb-system".into() });
}

#[test]
fn r17_missing_bfd_profile() {
    frr_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "bfdProfile": "fast"}))
        .expect_error("BGPPeer/p: spec.bfdProfile: peer p referencing non existing bfd profile fast");
    let mut f = frr_peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "bfdProfile": "fast"}));
    f.bfd = vec![bfd("fast", json!({}))];
    assert_eq!(f.ok().peers[0].bfd_profile.as_deref(), Some("fast"));
}

#[test]
fn r18_duplicate_peer() {
    let spec = json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1"});
    let f = Fixture { peers: vec![peer("p", spec.clone()), peer("p", spec)], ..Default::default() };
    f.expect_error("BGPPeer/p: metadata.name: peer p already exists");
}

#[test]
fn every_error_of_one_peer_reported() {
    let errs = native_peer(json!({"myASN": 0, "peerASN": 0, "routerID": "x", "sourceAddress": "y"})).errors();
    assert_eq!(errs.len(), 5, "{errs:?}");
}
