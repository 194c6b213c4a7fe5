//! The CEL rules evaluated client-side (kube-cel, with schema defaults applied
//! first, as the API server does): every rule compiles, stays within the cost
//! budget, accepts every fixture (objects MetalLB accepts), and rejects the
//! cases it exists for with MetalLB's message.

mod common;

use common::{FIXTURE_FILES, load_values, schema, schema_for};
use kube_cel::{ScopeContext, Validator, WarningKind, analyze_rule, compile_schema};
use serde_json::{Value, json};

/// Every schema node carrying rules, with its path.
fn rule_nodes<'a>(node: &'a Value, path: String, found: &mut Vec<(String, &'a Value)>) {
    if node.get("x-kubernetes-validations").is_some() {
        found.push((path.clone(), node));
    }
    for (name, child) in node["properties"].as_object().into_iter().flatten() {
        rule_nodes(child, format!("{path}.{name}"), found);
    }
    if let Some(items) = node.get("items") {
        rule_nodes(items, format!("{path}[]"), found);
    }
}

#[test]
fn every_rule_compiles_and_is_cheap() {
    let mut checked = 0;
    for crd in ferrolb_api::crds::all() {
        for version in &crd.spec.versions {
            let root = schema(
                crd.metadata.name.as_deref().unwrap_or_default(),
                &version.name,
            );
            let mut nodes = Vec::new();
            rule_nodes(&root, String::new(), &mut nodes);
            for (path, node) in nodes {
                let compiled = compile_schema(node);
                assert!(
                    !compiled.has_errors(),
                    "{path}: {:?}",
                    compiled.compilation_errors()
                );
                for rule in node["x-kubernetes-validations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let text = rule["rule"].as_str().expect("rule text");
                    let warnings = analyze_rule(text, &compiled, ScopeContext::CrdValidation);
                    let serious: Vec<_> = warnings
                        .iter()
                        .filter(|w| {
                            matches!(w.kind, WarningKind::CostExceeded | WarningKind::WrongScope)
                        })
                        .collect();
                    assert!(serious.is_empty(), "{path}: {text}: {serious:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 19);
}

#[test]
fn every_fixture_passes_the_rules() {
    let validator = Validator::new();
    for file in FIXTURE_FILES {
        for (index, document) in load_values(file).iter().enumerate() {
            let result = validator.validate(&schema_for(document), document, None);
            assert!(result.is_ok(), "{file}#{index}: {result:?}");
            // An unchanged update passes the transition rules too.
            let result = validator.validate(&schema_for(document), document, Some(document));
            assert!(result.is_ok(), "{file}#{index} (update): {result:?}");
        }
    }
}

fn object(api_version: &str, kind: &str, body: Value) -> Value {
    let mut object = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "metallb-system"}});
    if let (Some(target), Some(fields)) = (object.as_object_mut(), body.as_object()) {
        target.extend(fields.clone());
    }
    object
}

/// Messages of the rules that fail for `object` (and `old`, for updates).
fn failures(object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&schema_for(object), object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn peer(spec: Value) -> Value {
    object("metallb.io/v1beta2", "BGPPeer", json!({"spec": spec}))
}

#[test]
fn pool_needs_addresses() {
    let empty = object(
        "metallb.io/v1beta1",
        "IPAddressPool",
        json!({"spec": {"addresses": []}}),
    );
    assert_eq!(failures(&empty, None), ["pool has no prefixes defined"]);
    let one = object(
        "metallb.io/v1beta1",
        "IPAddressPool",
        json!({"spec": {"addresses": ["10.0.0.1/32"]}}),
    );
    assert!(failures(&one, None).is_empty());
}

#[test]
fn service_selectors_need_default_aggregation() {
    const MESSAGE: &str = "serviceSelectors and aggregationLength are mutually exclusive, can only be used together with default aggregationLength (32) and aggregationLengthV6 (128)";
    let adv = |spec: Value| {
        object(
            "metallb.io/v1beta1",
            "BGPAdvertisement",
            json!({"spec": spec}),
        )
    };
    let selector = json!([{"matchLabels": {"app": "web"}}]);
    assert_eq!(
        failures(
            &adv(json!({"serviceSelectors": selector, "aggregationLength": 24})),
            None
        ),
        [MESSAGE]
    );
    assert_eq!(
        failures(
            &adv(json!({"serviceSelectors": selector, "aggregationLengthV6": 64})),
            None
        ),
        [MESSAGE]
    );
    assert!(
        failures(&adv(json!({"serviceSelectors": selector})), None).is_empty(),
        "defaults are 32/128"
    );
    assert!(failures(&adv(json!({"serviceSelectors": selector, "aggregationLength": 32, "aggregationLengthV6": 128})), None).is_empty());
    assert!(
        failures(
            &adv(json!({"serviceSelectors": [], "aggregationLength": 24})),
            None
        )
        .is_empty()
    );
    assert!(failures(&adv(json!({"aggregationLength": 24})), None).is_empty());
}

#[test]
fn v1beta2_peer_identity_rules() {
    assert_eq!(
        failures(
            &peer(json!({"myASN": 0, "peerASN": 1, "peerAddress": "10.0.0.1"})),
            None
        ),
        ["missing local ASN"]
    );
    assert_eq!(
        failures(&peer(json!({"myASN": 1, "peerAddress": "10.0.0.1"})), None),
        ["missing peer ASN and dynamicASN"]
    );
    assert_eq!(
        failures(
            &peer(json!({"myASN": 1, "peerASN": 0, "peerAddress": "10.0.0.1"})),
            None
        ),
        ["missing peer ASN and dynamicASN"],
        "peerASN 0 is unset"
    );
    assert_eq!(
        failures(
            &peer(
                json!({"myASN": 1, "peerASN": 2, "dynamicASN": "internal", "peerAddress": "10.0.0.1"})
            ),
            None
        ),
        ["both peer ASN and dynamicASN specified"]
    );
    assert!(failures(&peer(json!({"myASN": 1, "peerASN": 0, "dynamicASN": "internal", "peerAddress": "10.0.0.1"})), None).is_empty());
    assert_eq!(
        failures(&peer(json!({"myASN": 1, "peerASN": 2})), None),
        ["peer has no Address or Interface specified"]
    );
    assert_eq!(
        failures(
            &peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "", "interface": ""})),
            None
        ),
        ["peer has no Address or Interface specified"]
    );
    assert_eq!(
        failures(
            &peer(
                json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "interface": "eth0"})
            ),
            None
        ),
        ["peer has both Address and Interface specified"]
    );
    assert!(
        failures(
            &peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "", "interface": "eth0"})),
            None
        )
        .is_empty(),
        "an empty address is unset, as in Go"
    );
}

#[test]
fn ebgp_multihop_is_refused_for_ibgp() {
    const MESSAGE: &str = "invalid ebgp-multihop parameter set for an ibgp peer";
    assert_eq!(
        failures(
            &peer(
                json!({"myASN": 5, "peerASN": 5, "peerAddress": "10.0.0.1", "ebgpMultiHop": true})
            ),
            None
        ),
        [MESSAGE]
    );
    assert!(
        failures(
            &peer(
                json!({"myASN": 5, "peerASN": 6, "peerAddress": "10.0.0.1", "ebgpMultiHop": true})
            ),
            None
        )
        .is_empty()
    );
    assert!(
        failures(
            &peer(
                json!({"myASN": 5, "peerASN": 5, "peerAddress": "10.0.0.1", "ebgpMultiHop": false})
            ),
            None
        )
        .is_empty()
    );
    assert!(failures(&peer(json!({"myASN": 5, "dynamicASN": "internal", "peerAddress": "10.0.0.1", "ebgpMultiHop": true})), None).is_empty());
    let v1beta1 = object(
        "metallb.io/v1beta1",
        "BGPPeer",
        json!({"spec": {"myASN": 5, "peerASN": 5, "peerAddress": "10.0.0.1", "ebgpMultiHop": true}}),
    );
    assert_eq!(failures(&v1beta1, None), [MESSAGE]);
    let v1beta1 = object(
        "metallb.io/v1beta1",
        "BGPPeer",
        json!({"spec": {"myASN": 0, "peerASN": 5, "peerAddress": "10.0.0.1"}}),
    );
    assert_eq!(failures(&v1beta1, None), ["missing local ASN"]);
}

#[test]
fn connect_time_is_whole_seconds_in_range() {
    let with = |connect: &str| {
        peer(json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "connectTime": connect}))
    };
    for ok in ["1s", "5s", "1m", "18h12m15s"] {
        assert!(failures(&with(ok), None).is_empty(), "{ok}");
    }
    assert_eq!(
        failures(&with("0s"), None),
        ["connect time should be between 1 seconds to 65535"]
    );
    assert_eq!(
        failures(&with("65536s"), None),
        ["connect time should be between 1 seconds to 65535"]
    );
    assert_eq!(
        failures(&with("1500ms"), None),
        ["connect time should contain a whole number of seconds"]
    );
}

#[test]
fn graceful_restart_cannot_change() {
    let with = |flag: Option<bool>| {
        let mut spec = json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1"});
        if let Some(flag) = flag {
            spec["enableGracefulRestart"] = json!(flag);
        }
        peer(spec)
    };
    assert_eq!(
        failures(&with(Some(false)), Some(&with(Some(true)))),
        ["EnableGracefulRestart cannot be changed after creation"]
    );
    assert!(failures(&with(Some(true)), Some(&with(Some(true)))).is_empty());
    // Transition rules only run when the field exists in both versions.
    assert!(failures(&with(Some(true)), Some(&with(None))).is_empty());
    assert!(failures(&with(None), Some(&with(Some(true)))).is_empty());
}

#[test]
fn status_identity_is_immutable() {
    for kind in ["ServiceL2Status", "ServiceBGPStatus"] {
        let with = |node: &str, namespace: &str| {
            object(
                "metallb.io/v1beta1",
                kind,
                json!({"status": {"node": node, "serviceName": "web", "serviceNamespace": namespace}}),
            )
        };
        let old = with("node-a", "default");
        assert!(failures(&old, Some(&old)).is_empty());
        assert!(
            failures(&with("node-b", "default"), None).is_empty(),
            "{kind}: creation is free"
        );
        assert_eq!(
            failures(&with("node-b", "default"), Some(&old)),
            ["Value is immutable"],
            "{kind}"
        );
        assert_eq!(
            failures(&with("node-b", "other"), Some(&old)),
            ["Value is immutable", "Value is immutable"],
            "{kind}"
        );
    }
}
