//! Arbitrary input never panics the manifest reader or the builder.

use ferrolb_config::assemble::{BgpMode, build_config};
use ferrolb_config::manifest::{ReadOptions, read_str};
use proptest::prelude::*;
use serde_json::{Value, json};

fn read_and_build(text: &str) {
    if let Ok(m) = read_str("fuzz.yaml", text, &ReadOptions::default()) {
        for mode in [BgpMode::Native, BgpMode::Frr, BgpMode::FrrK8s] {
            let _ = build_config(&m.config_input(mode, "metallb-system"));
        }
        let _ = ferrolb_config::assemble::build_pool_config(&m.pools, &m.communities, &m.namespaces);
    }
}

/// Scalars that exercise the parsers: addresses, ranges, durations, communities, junk.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[0-9a-f:.%/ -]{0,24}".prop_map(Value::from),
        "(10|192|fc00|fe80|::ffff)[.:][0-9]{1,3}[.:][0-9]{1,3}[.:][0-9]{1,3}(/[0-9]{1,3})?".prop_map(Value::from),
        "[0-9.]{1,6}(ns|us|ms|s|m|h|x)?".prop_map(Value::from),
        "(large:)?[0-9]{1,11}:[0-9]{1,11}(:[0-9]{1,11})?".prop_map(Value::from),
        "[a-zA-Z0-9_./-]{0,12}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn selector() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map("[a-z/.]{0,5}", "[a-z]{0,3}", 0..3),
        prop::collection::vec(
            ("[a-z]{0,3}", prop_oneof![Just("In"), Just("NotIn"), Just("Exists"), Just("DoesNotExist"), Just("Bad")], prop::collection::vec("[a-z]{0,2}", 0..3)),
            0..3,
        ),
    )
        .prop_map(|(labels, exprs)| {
            let exprs: Vec<Value> = exprs.into_iter().map(|(k, op, v)| json!({"key": k, "operator": op, "values": v})).collect();
            json!({"matchLabels": labels, "matchExpressions": exprs})
        })
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        scalar(),
        prop::collection::vec(scalar(), 0..4).prop_map(Value::from),
        prop::collection::vec(selector(), 0..3).prop_map(Value::from),
        selector(),
    ]
}

const KINDS: &[(&str, &str)] = &[
    ("metallb.io/v1beta1", "IPAddressPool"),
    ("metallb.io/v1beta1", "L2Advertisement"),
    ("metallb.io/v1beta1", "BGPAdvertisement"),
    ("metallb.io/v1beta1", "Community"),
    ("metallb.io/v1beta1", "BFDProfile"),
    ("metallb.io/v1beta1", "BGPPeer"),
    ("metallb.io/v1beta2", "BGPPeer"),
    ("v1", "Service"),
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "Secret"),
];

const FIELDS: &[&str] = &[
    "addresses", "autoAssign", "avoidBuggyIPs", "ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors",
    "serviceSelectors", "interfaces", "aggregationLength", "aggregationLengthV6", "localPref", "communities",
    "peers", "myASN", "peerASN", "dynamicASN", "localASN", "peerAddress", "interface", "sourceAddress",
    "peerPort", "holdTime", "keepaliveTime", "connectTime", "routerID", "password", "bfdProfile", "vrf",
    "ebgpMultiHop", "disableMP", "enableGracefulRestart", "receiveInterval", "echoMode", "minimumTtl",
];

/// A document of a known kind with random spec fields.
fn document() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(KINDS),
        "[a-z]{0,3}",
        prop::option::of(prop_oneof![Just("metallb-system"), Just("other")]),
        prop::collection::btree_map(prop::sample::select(FIELDS), field_value(), 0..6),
        prop::option::of(prop::collection::vec((selector(), any::<i8>()), 0..2)),
        prop::option::of((any::<i32>(), prop::collection::vec("[a-z]{0,2}", 0..3), prop::collection::vec(selector(), 0..2))),
    )
        .prop_map(|((api, kind), name, ns, fields, prefs, alloc)| {
            let mut spec = serde_json::Map::new();
            for (k, v) in fields {
                spec.insert(k.to_string(), v);
            }
            if let Some(prefs) = prefs {
                let list: Vec<Value> = prefs.into_iter().map(|(s, w)| json!({"weight": w, "preference": s})).collect();
                spec.insert("preferredNodeSelectors".into(), list.into());
            }
            if let Some((priority, namespaces, sels)) = alloc {
                spec.insert("serviceAllocation".into(), json!({"priority": priority, "namespaces": namespaces, "namespaceSelectors": sels}));
            }
            json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns, "labels": {"a": "b"}}, "spec": spec})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        read_and_build(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_ish_text(text in "([a-zA-Z0-9:/.\\-\\[\\]{},&*!|>'\"%# ]{0,20}\n){0,12}") {
        read_and_build(&text);
    }

    #[test]
    fn structured_documents(docs in prop::collection::vec(document(), 1..8)) {
        let text: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
        read_and_build(&text.join("\n---\n"));
    }

    #[test]
    fn structured_documents_as_a_list(docs in prop::collection::vec(document(), 1..8)) {
        read_and_build(&json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string());
    }
}

/// Valid pools with random ranges always build, and their CIDRs cover the ranges.
#[test]
fn random_valid_pools_build() {
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&(any::<u32>(), 0u32..1000), |(start, len)| {
            let end = start.saturating_add(len);
            let a = std::net::Ipv4Addr::from(start);
            let b = std::net::Ipv4Addr::from(end);
            let text = format!("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: p}}\nspec: {{addresses: ['{a}-{b}']}}\n");
            let m = read_str("x", &text, &ReadOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let cfg = build_config(&m.config_input(BgpMode::Native, "metallb-system")).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let total: u64 = cfg.pools[0].cidrs.iter().map(|c| 1u64 << (32 - c.prefix_len())).sum();
            prop_assert_eq!(total, u64::from(end - start) + 1);
            Ok(())
        })
        .unwrap();
}

/// The structured generator must reach the builder, not just the reader's error paths.
#[test]
fn structured_generator_reaches_the_builder() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut read_ok, mut built, mut invalid) = (0, 0, 0);
    for _ in 0..300 {
        let doc = document().new_tree(&mut runner).unwrap().current();
        if let Ok(m) = read_str("x", &doc.to_string(), &ReadOptions::default()) {
            read_ok += 1;
            match build_config(&m.config_input(BgpMode::Frr, "metallb-system")) {
                Ok(_) => built += 1,
                Err(_) => invalid += 1,
            }
        }
    }
    assert!(read_ok > 30, "only {read_ok} of 300 generated documents were readable");
    assert!(built > 0 && invalid > 0, "built {built}, invalid {invalid}");
}
