//! The Rust types read MetalLB manifests as MetalLB does: field names,
//! defaults, missing `spec`, and a lossless round trip.

mod common;

use std::collections::BTreeMap;

use common::openapi::value_problems;
use common::{FIXTURE_FILES, load, load_values, schema_for};
use ferrolb_api::{v1beta1, v1beta2};
use serde_json::{Value, json};

fn by_name<T: kube::Resource>(items: Vec<T>) -> BTreeMap<String, T> {
    items
        .into_iter()
        .map(|item| {
            (
                item.meta().name.clone().expect("fixture objects are named"),
                item,
            )
        })
        .collect()
}

#[test]
fn pools_read_with_defaults() {
    let pools = by_name(load::<v1beta1::IPAddressPool>("ipaddresspools.yaml"));
    let first = &pools["first-pool"].spec;
    assert_eq!(
        first.addresses,
        [
            "192.168.10.0/24",
            "192.168.9.1-192.168.9.5",
            "fc00:f853:0ccd:e799::/124"
        ]
    );
    assert!(first.auto_assign, "autoAssign defaults to true");
    assert!(!first.avoid_buggy_ips, "avoidBuggyIPs defaults to false");
    assert_eq!(first.service_allocation, None);
    assert!(!pools["expensive"].spec.auto_assign);
    assert!(pools["cheap"].spec.avoid_buggy_ips);

    let allocation = pools["ns-scoped"]
        .spec
        .service_allocation
        .as_ref()
        .expect("serviceAllocation");
    assert_eq!(allocation.priority, 50);
    assert_eq!(allocation.namespaces, ["namespace-a", "namespace-b"]);
    let labels = allocation.namespace_selectors[0]
        .match_labels
        .as_ref()
        .expect("matchLabels");
    assert_eq!(labels.get("foo").map(String::as_str), Some("bar"));
    let expression = &allocation.service_selectors[0]
        .match_expressions
        .as_ref()
        .expect("expressions")[0];
    assert_eq!(
        (
            expression.key.as_str(),
            expression.operator.as_str(),
            expression.values.clone()
        ),
        (
            "serviceType",
            "In",
            Some(vec!["database".to_string(), "cache".to_string()])
        )
    );
    assert!(pools.values().all(|pool| pool.status.is_none()));
}

#[test]
fn l2_advertisement_without_spec_is_an_empty_spec() {
    let ads = by_name(load::<v1beta1::L2Advertisement>("l2advertisements.yaml"));
    assert_eq!(ads["example"].spec, v1beta1::L2AdvertisementSpec::default());
    assert_eq!(
        ads["pools-by-name"].spec.ip_address_pools,
        ["first-pool", "expensive"]
    );
    assert_eq!(ads["pools-by-name"].spec.interfaces, ["eth0", "eth1"]);
    let selected = &ads["selected"].spec;
    assert_eq!(selected.node_selectors.len(), 1);
    assert_eq!(selected.service_selectors.len(), 1);
    let weights: Vec<i32> = selected
        .preferred_node_selectors
        .iter()
        .map(|p| p.weight)
        .collect();
    assert_eq!(weights, [80, 20]);
    assert_eq!(
        selected.preferred_node_selectors[1].preference,
        Default::default()
    );
}

#[test]
fn bgp_advertisement_defaults_aggregation_lengths() {
    let ads = by_name(load::<v1beta1::BGPAdvertisement>("bgpadvertisements.yaml"));
    let example = &ads["example"].spec;
    assert_eq!(
        (example.aggregation_length, example.aggregation_length_v6),
        (32, 128)
    );
    assert_eq!(example.local_pref, 0);
    let local = &ads["local"].spec;
    assert_eq!(local.local_pref, 100);
    assert_eq!(
        local.communities,
        ["65535:65282", "large:123:456:789", "vpn-only"]
    );
    assert_eq!(
        local.aggregation_length_v6, 128,
        "unset V6 length defaults even when V4 is set"
    );
    let external = &ads["external"].spec;
    assert_eq!(
        (external.aggregation_length, external.aggregation_length_v6),
        (24, 64)
    );
    assert_eq!(external.peers, ["peer-a", "peer-b"]);
}

#[test]
fn communities_and_bfd_profiles() {
    let communities = load::<v1beta1::Community>("communities.yaml");
    let aliases: Vec<(&str, &str)> = communities[0]
        .spec
        .communities
        .iter()
        .map(|alias| (alias.name.as_str(), alias.value.as_str()))
        .collect();
    assert_eq!(
        aliases,
        [
            ("vpn-only", "1234:1"),
            ("NO_ADVERTISE", "65535:65282"),
            ("large-one", "large:1234:1:1")
        ]
    );

    let profiles = by_name(load::<v1beta1::BFDProfile>("bfdprofiles.yaml"));
    let full = &profiles["testbfdprofile"].spec;
    assert_eq!(
        (
            full.receive_interval,
            full.transmit_interval,
            full.detect_multiplier,
            full.echo_interval,
            full.minimum_ttl
        ),
        (Some(380), Some(270), Some(5), Some(62), Some(254))
    );
    assert_eq!(
        (full.echo_mode, full.passive_mode),
        (Some(true), Some(true))
    );
    assert_eq!(
        profiles["defaults"].spec,
        v1beta1::BFDProfileSpec::default(),
        "unset values stay unset for FRR"
    );
}

#[test]
fn v1beta2_peers_read_with_defaults() {
    let peers = by_name(load::<v1beta2::BGPPeer>("bgppeers-v1beta2.yaml"));
    let sample = &peers["sample"].spec;
    assert_eq!(
        (sample.my_asn, sample.peer_asn, sample.peer_address.as_str()),
        (64500, 64501, "10.0.0.1")
    );
    assert_eq!(sample.peer_port, 179, "peerPort defaults to 179");
    assert_eq!(
        (
            sample.hold_time.as_deref(),
            sample.keepalive_time.as_deref()
        ),
        (None, None)
    );
    assert!(
        !sample.disable_mp && !sample.dual_stack_address_family && !sample.enable_graceful_restart
    );

    let secret = &peers["with-secret"].spec;
    assert_eq!(secret.peer_port, 180);
    assert_eq!(
        (
            secret.hold_time.as_deref(),
            secret.keepalive_time.as_deref(),
            secret.connect_time.as_deref()
        ),
        (Some("3m"), Some("1m"), Some("5s"))
    );
    let reference = secret.password_secret.as_ref().expect("passwordSecret");
    assert_eq!(
        (reference.name.as_deref(), reference.namespace.as_deref()),
        (Some("secretname"), Some("metallb-system"))
    );

    let unnumbered = &peers["unnumbered"].spec;
    assert_eq!(
        unnumbered.dynamic_asn,
        Some(v1beta2::DynamicASNMode::External)
    );
    assert_eq!(unnumbered.peer_asn, 0);
    assert_eq!(
        (unnumbered.interface.as_str(), unnumbered.vrf.as_str()),
        ("net0", "red")
    );
    assert_eq!(unnumbered.local_asn, 64600);
    assert!(unnumbered.enable_graceful_restart && unnumbered.dual_stack_address_family);
    assert_eq!(unnumbered.router_id, "10.10.10.10");
}

#[test]
fn v1beta1_peers_read_as_written() {
    let peers = by_name(load::<v1beta1::BGPPeer>("bgppeers-v1beta1.yaml"));
    let legacy = &peers["legacy"].spec;
    assert_eq!(legacy.peer_port, 1179);
    assert_eq!(legacy.node_selectors.len(), 2);
    assert_eq!(
        legacy.node_selectors[0].match_expressions[0].values,
        ["slow"]
    );
    assert_eq!(legacy.node_selectors[1], v1beta1::NodeSelector::default());
    let minimal = &peers["minimal"].spec;
    assert_eq!(
        (minimal.peer_port, minimal.hold_time.as_deref()),
        (0, None),
        "v1beta1 has no schema defaults"
    );
}

#[test]
fn statuses_read() {
    let docs = load_values("statuses.yaml");
    let l2: v1beta1::ServiceL2Status =
        serde_json::from_value(docs[0].clone()).expect("ServiceL2Status");
    let status = l2.status.expect("status");
    assert_eq!(
        (
            status.node.as_str(),
            status.service_name.as_str(),
            status.service_namespace.as_str()
        ),
        ("kind-worker", "web", "default")
    );
    assert_eq!(
        status.interfaces,
        [v1beta1::InterfaceInfo {
            name: "eth0".into()
        }]
    );

    let bgp: v1beta1::ServiceBGPStatus =
        serde_json::from_value(docs[1].clone()).expect("ServiceBGPStatus");
    assert_eq!(bgp.status.expect("status").peers, ["peer-a", "peer-b"]);

    let state: v1beta1::ConfigurationState =
        serde_json::from_value(docs[2].clone()).expect("ConfigurationState");
    let status = state.status.expect("status");
    assert_eq!(status.result, Some(v1beta1::ConfigurationResult::Invalid));
    assert_eq!(
        status.conditions[0].type_,
        v1beta1::CONDITION_POOL_RECONCILER_VALID
    );
    assert_eq!(
        status.conditions[0].reason,
        v1beta1::REASON_CONFIGURATION_ERROR
    );
}

/// Parses one fixture document with the type its kind names, writes it back
/// and returns the JSON the type produces.
fn retype(document: &Value) -> Value {
    fn through<T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug>(
        document: &Value,
    ) -> Value {
        let typed: T = serde_json::from_value(document.clone()).expect("typed parse");
        let written = serde_json::to_value(&typed).expect("serialises");
        let again: T = serde_json::from_value(written.clone()).expect("re-parse");
        assert_eq!(again, typed, "round trip changed the object");
        written
    }
    match (document["apiVersion"].as_str(), document["kind"].as_str()) {
        (Some("metallb.io/v1beta1"), Some("IPAddressPool")) => {
            through::<v1beta1::IPAddressPool>(document)
        }
        (Some("metallb.io/v1beta1"), Some("L2Advertisement")) => {
            through::<v1beta1::L2Advertisement>(document)
        }
        (Some("metallb.io/v1beta1"), Some("BGPAdvertisement")) => {
            through::<v1beta1::BGPAdvertisement>(document)
        }
        (Some("metallb.io/v1beta1"), Some("Community")) => through::<v1beta1::Community>(document),
        (Some("metallb.io/v1beta1"), Some("BFDProfile")) => {
            through::<v1beta1::BFDProfile>(document)
        }
        (Some("metallb.io/v1beta1"), Some("BGPPeer")) => through::<v1beta1::BGPPeer>(document),
        (Some("metallb.io/v1beta2"), Some("BGPPeer")) => through::<v1beta2::BGPPeer>(document),
        (Some("metallb.io/v1beta1"), Some("ServiceL2Status")) => {
            through::<v1beta1::ServiceL2Status>(document)
        }
        (Some("metallb.io/v1beta1"), Some("ServiceBGPStatus")) => {
            through::<v1beta1::ServiceBGPStatus>(document)
        }
        (Some("metallb.io/v1beta1"), Some("ConfigurationState")) => {
            through::<v1beta1::ConfigurationState>(document)
        }
        other => panic!("fixture of unexpected kind {other:?}"),
    }
}

#[test]
fn every_fixture_round_trips_and_stays_schema_valid() {
    for file in FIXTURE_FILES {
        for (index, document) in load_values(file).iter().enumerate() {
            let schema = schema_for(document);
            let problems = value_problems(&schema, document, "");
            assert!(
                problems.is_empty(),
                "{file}#{index} as written: {problems:#?}"
            );
            let written = retype(document);
            let problems = value_problems(&schema, &written, "");
            assert!(
                problems.is_empty(),
                "{file}#{index} as ferrolb writes it: {problems:#?}"
            );
            assert_eq!(
                written["metadata"], document["metadata"],
                "{file}#{index} metadata"
            );
        }
    }
}

#[test]
fn zero_values_are_omitted_like_go_omitempty() {
    let peer = v1beta2::BGPPeer::new(
        "p",
        v1beta2::BGPPeerSpec {
            my_asn: 64500,
            peer_asn: 64501,
            peer_address: "10.0.0.1".into(),
            ..Default::default()
        },
    );
    let json = serde_json::to_value(&peer).expect("serialises");
    assert_eq!(json["apiVersion"], json!("metallb.io/v1beta2"));
    assert_eq!(json["kind"], json!("BGPPeer"));
    assert_eq!(
        json["spec"],
        json!({
            "myASN": 64500,
            "peerASN": 64501,
            "peerAddress": "10.0.0.1",
            "peerPort": 179,
            "disableMP": false,
            "dualStackAddressFamily": false,
        })
    );
    let pool = v1beta1::IPAddressPool::new(
        "p",
        v1beta1::IPAddressPoolSpec {
            addresses: vec!["10.0.0.0/24".into()],
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        },
    );
    assert_eq!(
        serde_json::to_value(&pool).expect("serialises")["spec"],
        json!({"addresses": ["10.0.0.0/24"], "autoAssign": true, "avoidBuggyIPs": false})
    );
    let status = v1beta1::IPAddressPoolStatus {
        assigned_ipv4: 1,
        assigned_ipv6: 0,
        available_ipv4: 253,
        available_ipv6: 0,
    };
    assert_eq!(
        serde_json::to_value(&status).expect("serialises"),
        json!({"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 253, "availableIPv6": 0})
    );
}

#[test]
fn null_or_missing_spec_reads_as_the_defaulted_spec() {
    for spec in [json!(null), json!({})] {
        let adv: v1beta1::BGPAdvertisement = serde_json::from_value(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": "a"}, "spec": spec,
        }))
        .expect("parses");
        assert_eq!(
            (adv.spec.aggregation_length, adv.spec.aggregation_length_v6),
            (32, 128)
        );
    }
    let peer: v1beta2::BGPPeer = serde_saphyr::from_str(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: x\n",
    )
    .expect("parses");
    assert_eq!((peer.spec.my_asn, peer.spec.peer_port), (0, 179));
    let state: v1beta1::ConfigurationState =
        serde_json::from_value(json!({"apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState", "metadata": {"name": "controller"}}))
            .expect("parses");
    assert_eq!(state.status, None);
}

#[test]
fn the_pool_spec_is_not_optional() {
    let missing = serde_json::from_value::<v1beta1::IPAddressPool>(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"},
    }));
    assert!(missing.is_err_and(|err| err.to_string().contains("spec")));
    let no_addresses = serde_json::from_value::<v1beta1::IPAddressPool>(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"}, "spec": {},
    }));
    assert!(no_addresses.is_err_and(|err| err.to_string().contains("addresses")));
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let cases = [
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"}, "spec": {"addresses": "10.0.0.0/24"}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"}, "spec": {"addresses": [], "autoAssign": "yes"}}),
    ];
    for case in cases {
        assert!(serde_json::from_value::<v1beta1::IPAddressPool>(case).is_err());
    }
    let bad_enum = json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "p"}, "spec": {"myASN": 1, "dynamicASN": "sideways"}});
    assert!(serde_json::from_value::<v1beta2::BGPPeer>(bad_enum).is_err());
    let too_big = json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "p"}, "spec": {"myASN": 4294967296u64}});
    assert!(serde_json::from_value::<v1beta2::BGPPeer>(too_big).is_err());
    assert!(
        serde_saphyr::from_str::<v1beta1::L2Advertisement>("kind: L2Advertisement\nspec: [1, 2]\n")
            .is_err()
    );
}
