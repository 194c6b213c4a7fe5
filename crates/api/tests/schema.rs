//! The generated CRDs: names, versions, printer columns, field names,
//! defaults, bounds, CEL rules (exact text) and structural validity.

mod common;

use common::openapi::structural_problems;
use common::{crd, property, schema};
use ferrolb_api::cel;
use serde_json::{Value, json};

const CRD_NAMES: [&str; 9] = [
    "bfdprofiles.metallb.io",
    "bgpadvertisements.metallb.io",
    "bgppeers.metallb.io",
    "communities.metallb.io",
    "configurationstates.metallb.io",
    "ipaddresspools.metallb.io",
    "l2advertisements.metallb.io",
    "servicebgpstatuses.metallb.io",
    "servicel2statuses.metallb.io",
];

fn property_names(schema: &Value, path: &str) -> Vec<String> {
    let node = if path.is_empty() {
        schema
    } else {
        property(schema, path)
    };
    node["properties"]
        .as_object()
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    names.sort();
    names
}

fn rules_at(node: &Value) -> Vec<(String, String)> {
    node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            (
                rule["rule"].as_str().unwrap_or_default().to_string(),
                rule["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pair(rule: cel::CelRule) -> (String, String) {
    (rule.rule.to_string(), rule.message.to_string())
}

#[test]
fn one_crd_per_kind_sorted_by_name() {
    let crds = ferrolb_api::crds::all();
    let names: Vec<&str> = crds
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    assert_eq!(names, CRD_NAMES);
    for crd in &crds {
        assert_eq!(crd.spec.group, "metallb.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, None, "{:?}", crd.metadata.name);
        let expected_name = format!("{}.metallb.io", crd.spec.names.plural);
        assert_eq!(crd.metadata.name.as_deref(), Some(expected_name.as_str()));
        for version in &crd.spec.versions {
            let subresources = version.subresources.as_ref().expect("subresources");
            assert!(
                subresources.status.is_some(),
                "{expected_name} {} has no status subresource",
                version.name
            );
            assert!(version.served);
        }
    }
}

#[test]
fn bgppeer_has_both_versions_with_v1beta2_stored() {
    let peers = crd("bgppeers.metallb.io");
    type Version<'a> = (&'a str, bool, bool, Option<bool>, Option<&'a str>);
    let versions: Vec<Version> = peers
        .spec
        .versions
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                v.served,
                v.storage,
                v.deprecated,
                v.deprecation_warning.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        vec![
            (
                "v1beta1",
                true,
                false,
                Some(true),
                Some("v1beta1 is deprecated, please use v1beta2")
            ),
            ("v1beta2", true, true, None, None),
        ]
    );
    let conversion = peers.spec.conversion.clone().expect("conversion set");
    assert_eq!(conversion.strategy, "None");
    assert!(conversion.webhook.is_none());
    for other in CRD_NAMES.iter().filter(|n| **n != "bgppeers.metallb.io") {
        let other_crd = crd(other);
        let versions: Vec<(&str, bool)> = other_crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.storage))
            .collect();
        assert_eq!(versions, vec![("v1beta1", true)], "{other}");
    }
}

#[test]
fn every_schema_is_structural() {
    for crd in ferrolb_api::crds::all() {
        for version in &crd.spec.versions {
            let schema = serde_json::to_value(
                version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .expect("schema"),
            )
            .expect("serialises");
            let problems = structural_problems(&schema);
            assert!(
                problems.is_empty(),
                "{:?} {}: {problems:#?}",
                crd.metadata.name,
                version.name
            );
        }
    }
}

/// (column name, jsonPath, type, priority)
type Column = (&'static str, &'static str, &'static str, Option<i32>);

#[test]
fn printer_columns_match_metallb() {
    let expect: [(&str, &str, &[Column]); 10] = [
        (
            "ipaddresspools.metallb.io",
            "v1beta1",
            &[
                ("Auto Assign", ".spec.autoAssign", "boolean", None),
                ("Avoid Buggy IPs", ".spec.avoidBuggyIPs", "boolean", None),
                ("Addresses", ".spec.addresses", "string", None),
            ],
        ),
        (
            "l2advertisements.metallb.io",
            "v1beta1",
            &[
                ("IPAddressPools", ".spec.ipAddressPools", "string", None),
                (
                    "IPAddressPool Selectors",
                    ".spec.ipAddressPoolSelectors",
                    "string",
                    None,
                ),
                ("Interfaces", ".spec.interfaces", "string", None),
                ("Node Selectors", ".spec.nodeSelectors", "string", Some(10)),
            ],
        ),
        (
            "bgpadvertisements.metallb.io",
            "v1beta1",
            &[
                ("IPAddressPools", ".spec.ipAddressPools", "string", None),
                (
                    "IPAddressPool Selectors",
                    ".spec.ipAddressPoolSelectors",
                    "string",
                    None,
                ),
                ("Peers", ".spec.peers", "string", None),
                ("Node Selectors", ".spec.nodeSelectors", "string", Some(10)),
            ],
        ),
        (
            "bgppeers.metallb.io",
            "v1beta1",
            &[
                ("Address", ".spec.peerAddress", "string", None),
                ("ASN", ".spec.peerASN", "string", None),
                ("BFD Profile", ".spec.bfdProfile", "string", None),
                ("Multi Hops", ".spec.ebgpMultiHop", "string", None),
            ],
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            &[
                ("Address", ".spec.peerAddress", "string", None),
                ("ASN", ".spec.peerASN", "string", None),
                ("BFD Profile", ".spec.bfdProfile", "string", None),
                ("Multi Hops", ".spec.ebgpMultiHop", "string", None),
            ],
        ),
        ("communities.metallb.io", "v1beta1", &[]),
        (
            "bfdprofiles.metallb.io",
            "v1beta1",
            &[
                ("Passive Mode", ".spec.passiveMode", "boolean", None),
                (
                    "Transmit Interval",
                    ".spec.transmitInterval",
                    "integer",
                    None,
                ),
                ("Receive Interval", ".spec.receiveInterval", "integer", None),
                ("Multiplier", ".spec.detectMultiplier", "integer", None),
            ],
        ),
        (
            "servicel2statuses.metallb.io",
            "v1beta1",
            &[
                ("Allocated Node", ".status.node", "string", None),
                ("Service Name", ".status.serviceName", "string", None),
                (
                    "Service Namespace",
                    ".status.serviceNamespace",
                    "string",
                    None,
                ),
            ],
        ),
        (
            "servicebgpstatuses.metallb.io",
            "v1beta1",
            &[
                ("Node", ".status.node", "string", None),
                ("Service Name", ".status.serviceName", "string", None),
                (
                    "Service Namespace",
                    ".status.serviceNamespace",
                    "string",
                    None,
                ),
            ],
        ),
        (
            "configurationstates.metallb.io",
            "v1beta1",
            &[
                ("Result", ".status.result", "string", None),
                ("ErrorSummary", ".status.errorSummary", "string", None),
                ("Age", ".metadata.creationTimestamp", "date", None),
            ],
        ),
    ];
    for (name, version, columns) in expect {
        let crd = crd(name);
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .expect("version");
        let actual: Vec<(&str, &str, &str, Option<i32>)> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.json_path.as_str(),
                    c.type_.as_str(),
                    c.priority,
                )
            })
            .collect();
        assert_eq!(actual, columns.to_vec(), "{name} {}", version.name);
    }
}

#[test]
fn field_names_are_metallbs() {
    let expect: [(&str, &str, &str, &[&str]); 16] = [
        (
            "ipaddresspools.metallb.io",
            "v1beta1",
            "spec",
            &[
                "addresses",
                "autoAssign",
                "avoidBuggyIPs",
                "serviceAllocation",
            ],
        ),
        (
            "ipaddresspools.metallb.io",
            "v1beta1",
            "spec.serviceAllocation",
            &[
                "priority",
                "namespaces",
                "namespaceSelectors",
                "serviceSelectors",
            ],
        ),
        (
            "ipaddresspools.metallb.io",
            "v1beta1",
            "status",
            &[
                "assignedIPv4",
                "assignedIPv6",
                "availableIPv4",
                "availableIPv6",
            ],
        ),
        (
            "l2advertisements.metallb.io",
            "v1beta1",
            "spec",
            &[
                "ipAddressPools",
                "ipAddressPoolSelectors",
                "nodeSelectors",
                "interfaces",
                "serviceSelectors",
                "preferredNodeSelectors",
            ],
        ),
        (
            "bgpadvertisements.metallb.io",
            "v1beta1",
            "spec",
            &[
                "aggregationLength",
                "aggregationLengthV6",
                "localPref",
                "communities",
                "ipAddressPools",
                "ipAddressPoolSelectors",
                "nodeSelectors",
                "peers",
                "serviceSelectors",
            ],
        ),
        (
            "bgppeers.metallb.io",
            "v1beta1",
            "spec",
            &[
                "myASN",
                "peerASN",
                "peerAddress",
                "sourceAddress",
                "peerPort",
                "holdTime",
                "keepaliveTime",
                "routerID",
                "nodeSelectors",
                "password",
                "bfdProfile",
                "ebgpMultiHop",
            ],
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec",
            &[
                "myASN",
                "peerASN",
                "dynamicASN",
                "localASN",
                "peerAddress",
                "interface",
                "sourceAddress",
                "peerPort",
                "holdTime",
                "keepaliveTime",
                "connectTime",
                "routerID",
                "nodeSelectors",
                "password",
                "passwordSecret",
                "bfdProfile",
                "enableGracefulRestart",
                "ebgpMultiHop",
                "vrf",
                "disableMP",
                "dualStackAddressFamily",
            ],
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.passwordSecret",
            &["name", "namespace"],
        ),
        (
            "communities.metallb.io",
            "v1beta1",
            "spec",
            &["communities"],
        ),
        (
            "bfdprofiles.metallb.io",
            "v1beta1",
            "spec",
            &[
                "receiveInterval",
                "transmitInterval",
                "detectMultiplier",
                "echoInterval",
                "echoMode",
                "passiveMode",
                "minimumTtl",
            ],
        ),
        (
            "servicel2statuses.metallb.io",
            "v1beta1",
            "status",
            &["node", "serviceName", "serviceNamespace", "interfaces"],
        ),
        (
            "servicebgpstatuses.metallb.io",
            "v1beta1",
            "status",
            &["node", "serviceName", "serviceNamespace", "peers"],
        ),
        (
            "configurationstates.metallb.io",
            "v1beta1",
            "status",
            &["result", "errorSummary", "conditions"],
        ),
        ("configurationstates.metallb.io", "v1beta1", "spec", &[]),
        ("servicel2statuses.metallb.io", "v1beta1", "spec", &[]),
        ("l2advertisements.metallb.io", "v1beta1", "status", &[]),
    ];
    for (name, version, path, fields) in expect {
        assert_eq!(
            property_names(&schema(name, version), path),
            sorted(fields),
            "{name} {version} {path}"
        );
    }
    let l2 = schema("l2advertisements.metallb.io", "v1beta1");
    let preferred = &property(&l2, "spec.preferredNodeSelectors")["items"];
    assert_eq!(
        property_names(preferred, ""),
        sorted(&["weight", "preference"])
    );
    let community = schema("communities.metallb.io", "v1beta1");
    assert_eq!(
        property_names(&property(&community, "spec.communities")["items"], ""),
        sorted(&["name", "value"])
    );
    let v1beta1 = schema("bgppeers.metallb.io", "v1beta1");
    let legacy = &property(&v1beta1, "spec.nodeSelectors")["items"];
    assert_eq!(
        property_names(legacy, ""),
        sorted(&["matchLabels", "matchExpressions"])
    );
    assert_eq!(
        legacy["properties"]["matchExpressions"]["items"]["required"],
        json!(["key", "operator", "values"])
    );
    assert_eq!(
        legacy["properties"]["matchExpressions"]["items"]["properties"]["values"]["minItems"],
        json!(1)
    );
}

#[test]
fn spec_is_required_only_for_ipaddresspool() {
    for name in CRD_NAMES {
        let crd = crd(name);
        for version in &crd.spec.versions {
            let root = schema(name, &version.name);
            let requires_spec = root["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("spec")));
            assert_eq!(
                requires_spec,
                name == "ipaddresspools.metallb.io",
                "{name} {}",
                version.name
            );
        }
    }
    let pool = schema("ipaddresspools.metallb.io", "v1beta1");
    assert_eq!(property(&pool, "spec")["required"], json!(["addresses"]));
    assert_eq!(
        property(&pool, "status")["required"],
        json!([
            "assignedIPv4",
            "assignedIPv6",
            "availableIPv4",
            "availableIPv6"
        ])
    );
    for field in [
        "assignedIPv4",
        "assignedIPv6",
        "availableIPv4",
        "availableIPv6",
    ] {
        let node = property(&pool, &format!("status.{field}"));
        assert_eq!(
            (node["type"].as_str(), node["format"].as_str()),
            (Some("integer"), Some("int64"))
        );
    }
    let v1beta1 = schema("bgppeers.metallb.io", "v1beta1");
    assert_eq!(
        property(&v1beta1, "spec")["required"],
        json!(["myASN", "peerASN", "peerAddress"])
    );
    let v1beta2 = schema("bgppeers.metallb.io", "v1beta2");
    assert_eq!(property(&v1beta2, "spec")["required"], json!(["myASN"]));
    let l2 = schema("l2advertisements.metallb.io", "v1beta1");
    assert_eq!(
        property(&l2, "spec.preferredNodeSelectors")["items"]["required"],
        json!(["preference", "weight"])
    );
}

/// (crd, version, path, default, minimum, maximum)
type Bounds = (
    &'static str,
    &'static str,
    &'static str,
    Option<Value>,
    Option<f64>,
    Option<f64>,
);

#[test]
fn defaults_and_bounds_match_metallb() {
    let expect: Vec<Bounds> = vec![
        (
            "ipaddresspools.metallb.io",
            "v1beta1",
            "spec.autoAssign",
            Some(json!(true)),
            None,
            None,
        ),
        (
            "ipaddresspools.metallb.io",
            "v1beta1",
            "spec.avoidBuggyIPs",
            Some(json!(false)),
            None,
            None,
        ),
        (
            "ipaddresspools.metallb.io",
            "v1beta1",
            "spec.serviceAllocation.priority",
            None,
            None,
            None,
        ),
        (
            "bgpadvertisements.metallb.io",
            "v1beta1",
            "spec.aggregationLength",
            Some(json!(32)),
            Some(1.0),
            None,
        ),
        (
            "bgpadvertisements.metallb.io",
            "v1beta1",
            "spec.aggregationLengthV6",
            Some(json!(128)),
            None,
            None,
        ),
        (
            "bgpadvertisements.metallb.io",
            "v1beta1",
            "spec.localPref",
            None,
            Some(0.0),
            None,
        ),
        (
            "l2advertisements.metallb.io",
            "v1beta1",
            "spec.preferredNodeSelectors",
            None,
            None,
            None,
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.peerPort",
            Some(json!(179)),
            Some(1.0),
            Some(16384.0),
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.myASN",
            None,
            Some(0.0),
            Some(4294967295.0),
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.peerASN",
            None,
            Some(0.0),
            Some(4294967295.0),
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.localASN",
            None,
            Some(1.0),
            Some(4294967295.0),
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.disableMP",
            Some(json!(false)),
            None,
            None,
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.dualStackAddressFamily",
            Some(json!(false)),
            None,
            None,
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.enableGracefulRestart",
            None,
            None,
            None,
        ),
        (
            "bgppeers.metallb.io",
            "v1beta2",
            "spec.ebgpMultiHop",
            None,
            None,
            None,
        ),
        (
            "bgppeers.metallb.io",
            "v1beta1",
            "spec.peerPort",
            None,
            Some(0.0),
            Some(16384.0),
        ),
        (
            "bgppeers.metallb.io",
            "v1beta1",
            "spec.myASN",
            None,
            Some(0.0),
            Some(4294967295.0),
        ),
        (
            "bfdprofiles.metallb.io",
            "v1beta1",
            "spec.receiveInterval",
            None,
            Some(10.0),
            Some(60000.0),
        ),
        (
            "bfdprofiles.metallb.io",
            "v1beta1",
            "spec.transmitInterval",
            None,
            Some(10.0),
            Some(60000.0),
        ),
        (
            "bfdprofiles.metallb.io",
            "v1beta1",
            "spec.echoInterval",
            None,
            Some(10.0),
            Some(60000.0),
        ),
        (
            "bfdprofiles.metallb.io",
            "v1beta1",
            "spec.detectMultiplier",
            None,
            Some(2.0),
            Some(255.0),
        ),
        (
            "bfdprofiles.metallb.io",
            "v1beta1",
            "spec.minimumTtl",
            None,
            Some(1.0),
            Some(254.0),
        ),
    ];
    for (name, version, path, default, min, max) in expect {
        let node = property(&schema(name, version), path).clone();
        assert_eq!(
            node.get("default").cloned(),
            default,
            "{name} {version} {path} default"
        );
        assert_eq!(
            node["minimum"].as_f64(),
            min,
            "{name} {version} {path} minimum"
        );
        assert_eq!(
            node["maximum"].as_f64(),
            max,
            "{name} {version} {path} maximum"
        );
    }
    let l2 = schema("l2advertisements.metallb.io", "v1beta1");
    let weight = &property(&l2, "spec.preferredNodeSelectors")["items"]["properties"]["weight"];
    assert_eq!(
        (weight["minimum"].as_f64(), weight["maximum"].as_f64()),
        (Some(1.0), Some(100.0))
    );
    assert_eq!(weight["format"], json!("int32"));
}

#[test]
fn durations_are_strings() {
    for (version, fields) in [
        ("v1beta1", &["holdTime", "keepaliveTime"][..]),
        ("v1beta2", &["holdTime", "keepaliveTime", "connectTime"][..]),
    ] {
        let peer = schema("bgppeers.metallb.io", version);
        for field in fields {
            let node = property(&peer, &format!("spec.{field}"));
            assert_eq!(node["type"], json!("string"), "{version} {field}");
            assert!(node.get("format").is_none(), "{version} {field}");
        }
    }
}

#[test]
fn enums_match_metallb() {
    let peer = schema("bgppeers.metallb.io", "v1beta2");
    assert_eq!(
        property(&peer, "spec.dynamicASN")["enum"],
        json!(["internal", "external"])
    );
    let state = schema("configurationstates.metallb.io", "v1beta1");
    assert_eq!(
        property(&state, "status.result")["enum"],
        json!(["Valid", "Invalid", "Unknown"])
    );
}

#[test]
fn cel_rules_are_exactly_these() {
    let pool = schema("ipaddresspools.metallb.io", "v1beta1");
    assert_eq!(
        rules_at(property(&pool, "spec.addresses")),
        vec![(
            "size(self) > 0".to_string(),
            "pool has no prefixes defined".to_string()
        )]
    );

    let adv = schema("bgpadvertisements.metallb.io", "v1beta1");
    let adv_rules = rules_at(property(&adv, "spec"));
    assert_eq!(
        adv_rules,
        vec![pair(cel::BGPADV_SERVICE_SELECTORS_AGGREGATION)]
    );
    assert_eq!(
        adv_rules[0].1,
        "serviceSelectors and aggregationLength are mutually exclusive, can only be used together \
         with default aggregationLength (32) and aggregationLengthV6 (128)"
    );

    let v1beta2 = schema("bgppeers.metallb.io", "v1beta2");
    assert_eq!(
        rules_at(property(&v1beta2, "spec.connectTime")),
        vec![
            (
                "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535"
                    .to_string(),
                "connect time should be between 1 seconds to 65535".to_string()
            ),
            (
                "duration(self).getMilliseconds() % 1000 == 0".to_string(),
                "connect time should contain a whole number of seconds".to_string()
            ),
        ]
    );
    assert_eq!(
        rules_at(property(&v1beta2, "spec.enableGracefulRestart")),
        vec![(
            "self == oldSelf".to_string(),
            "EnableGracefulRestart cannot be changed after creation".to_string()
        )]
    );
    let messages: Vec<String> = rules_at(property(&v1beta2, "spec"))
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        messages,
        [
            "missing local ASN",
            "missing peer ASN and dynamicASN",
            "both peer ASN and dynamicASN specified",
            "peer has no Address or Interface specified",
            "peer has both Address and Interface specified",
            "invalid ebgp-multihop parameter set for an ibgp peer",
        ]
    );
    let v1beta1 = schema("bgppeers.metallb.io", "v1beta1");
    assert_eq!(
        rules_at(property(&v1beta1, "spec")),
        vec![
            pair(cel::PEER_MY_ASN_SET),
            pair(cel::PEER_NO_MULTIHOP_FOR_IBGP)
        ]
    );

    for name in [
        "servicel2statuses.metallb.io",
        "servicebgpstatuses.metallb.io",
    ] {
        let status = schema(name, "v1beta1");
        for field in ["node", "serviceName", "serviceNamespace"] {
            assert_eq!(
                rules_at(property(&status, &format!("status.{field}"))),
                vec![(
                    "self == oldSelf".to_string(),
                    "Value is immutable".to_string()
                )],
                "{name} {field}"
            );
        }
    }
}

#[test]
fn no_other_cel_rules_exist() {
    fn count(node: &Value) -> usize {
        let here = node["x-kubernetes-validations"]
            .as_array()
            .map_or(0, Vec::len);
        let props: usize = node["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, c)| count(c))
            .sum();
        here + props + node.get("items").map_or(0, count)
    }
    let total: usize = ferrolb_api::crds::all()
        .iter()
        .flat_map(|crd| crd.spec.versions.iter())
        .map(|v| {
            count(
                &serde_json::to_value(
                    v.schema
                        .as_ref()
                        .and_then(|s| s.open_api_v3_schema.as_ref()),
                )
                .expect("json"),
            )
        })
        .sum();
    // pool 1, advertisement 1, v1beta1 peer 2, v1beta2 peer 6 + 2 + 1, statuses 2 x 3
    assert_eq!(total, 1 + 1 + 2 + 9 + 6);
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    let state = schema("configurationstates.metallb.io", "v1beta1");
    let conditions = property(&state, "status.conditions");
    assert_eq!(conditions["x-kubernetes-list-type"], json!("map"));
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    assert_eq!(
        conditions["items"]["properties"]["lastTransitionTime"]["format"],
        json!("date-time")
    );
}

#[test]
fn selectors_and_secret_refs_are_atomic() {
    let pool = schema("ipaddresspools.metallb.io", "v1beta1");
    let selector = &property(&pool, "spec.serviceAllocation.namespaceSelectors")["items"];
    assert_eq!(selector["x-kubernetes-map-type"], json!("atomic"));
    assert_eq!(
        selector["properties"]["matchExpressions"]["x-kubernetes-list-type"],
        json!("atomic")
    );
    let peer = schema("bgppeers.metallb.io", "v1beta2");
    assert_eq!(
        property(&peer, "spec.passwordSecret")["x-kubernetes-map-type"],
        json!("atomic")
    );
}

#[test]
fn rendered_yaml_is_the_crds_in_order() {
    let yaml = ferrolb_api::crds::render_yaml();
    assert_eq!(
        yaml,
        ferrolb_api::crds::render_yaml(),
        "rendering is deterministic"
    );
    let parsed: Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        serde_saphyr::from_multiple(&yaml).expect("rendered YAML parses back");
    assert_eq!(parsed, ferrolb_api::crds::all());
    assert!(
        !yaml.contains("16384.0"),
        "integral bounds are printed as integers"
    );
}

#[test]
fn structural_checker_flags_the_unfixed_kube_derive_output() {
    use kube::CustomResourceExt;
    // What kube-derive emits before crds::all() rewrites it: `nullable`,
    // `title`, Rust integer formats and `null` in enums.
    let raw = ferrolb_api::v1beta2::BGPPeer::crd();
    let schema = serde_json::to_value(
        &raw.spec.versions[0]
            .schema
            .as_ref()
            .expect("schema")
            .open_api_v3_schema,
    )
    .expect("json");
    let problems = structural_problems(&schema).join("\n");
    assert!(problems.contains("has nullable"), "{problems}");
    assert!(problems.contains("has title"), "{problems}");
    assert!(
        problems.contains("unknown integer format uint16"),
        "{problems}"
    );
}
