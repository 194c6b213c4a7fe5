//! BGPPeer conversion between v1beta1 and v1beta2 (v1beta2 is the hub),
//! following crds.md §5.3. Used for offline input and by a conversion
//! webhook. The v1beta2 → v1beta1 direction is lossy: every v1beta2-only
//! field is dropped.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::{v1beta1, v1beta2};

/// What Go's zero `metav1.Duration` serialises to; v1beta1 always carries
/// its timers, so an unset timer is this value.
pub const ZERO_DURATION: &str = "0s";

/// Converts a v1beta1 peer to v1beta2, metadata included, and applies the
/// v1beta2 defaults (`peerPort` 0 becomes 179).
pub fn to_v1beta2(peer: &v1beta1::BGPPeer) -> v1beta2::BGPPeer {
    v1beta2::BGPPeer {
        metadata: peer.metadata.clone(),
        spec: spec_to_v1beta2(&peer.spec),
        status: peer.status.as_ref().map(|_| v1beta2::BGPPeerStatus {}),
    }
}

/// Converts a v1beta2 peer to v1beta1, metadata included; v1beta2-only
/// fields are dropped.
pub fn to_v1beta1(peer: &v1beta2::BGPPeer) -> v1beta1::BGPPeer {
    v1beta1::BGPPeer {
        metadata: peer.metadata.clone(),
        spec: spec_to_v1beta1(&peer.spec),
        status: peer.status.as_ref().map(|_| v1beta1::BGPPeerStatus {}),
    }
}

/// crds.md §5.3 v1beta1 → v1beta2, then v1beta2 defaulting.
pub fn spec_to_v1beta2(spec: &v1beta1::BGPPeerSpec) -> v1beta2::BGPPeerSpec {
    v1beta2::BGPPeerSpec {
        my_asn: spec.my_asn,
        peer_asn: spec.peer_asn,
        peer_address: spec.peer_address.clone(),
        source_address: spec.source_address.clone(),
        // 0 is stored without the field; the v1beta2 schema default fills it.
        peer_port: if spec.peer_port == 0 {
            v1beta2::DEFAULT_PEER_PORT
        } else {
            spec.peer_port
        },
        // v1beta1 always carries its timers, so an unset timer arrives as an
        // explicit zero (crds.md §5.3 rule 2).
        hold_time: Some(timer_or_zero(spec.hold_time.as_deref())),
        keepalive_time: Some(timer_or_zero(spec.keepalive_time.as_deref())),
        router_id: spec.router_id.clone(),
        node_selectors: spec
            .node_selectors
            .iter()
            .map(legacy_to_label_selector)
            .collect(),
        password: spec.password.clone(),
        bfd_profile: spec.bfd_profile.clone(),
        ebgp_multi_hop: spec.ebgp_multi_hop,
        ..v1beta2::BGPPeerSpec::default()
    }
}

/// crds.md §5.3 v1beta2 → v1beta1: the shared fields back, absent timers as
/// zero, v1beta2-only fields dropped.
pub fn spec_to_v1beta1(spec: &v1beta2::BGPPeerSpec) -> v1beta1::BGPPeerSpec {
    v1beta1::BGPPeerSpec {
        my_asn: spec.my_asn,
        peer_asn: spec.peer_asn,
        peer_address: spec.peer_address.clone(),
        source_address: spec.source_address.clone(),
        peer_port: spec.peer_port,
        hold_time: Some(timer_or_zero(spec.hold_time.as_deref())),
        keepalive_time: Some(timer_or_zero(spec.keepalive_time.as_deref())),
        router_id: spec.router_id.clone(),
        node_selectors: spec
            .node_selectors
            .iter()
            .map(label_selector_to_legacy)
            .collect(),
        password: spec.password.clone(),
        bfd_profile: spec.bfd_profile.clone(),
        ebgp_multi_hop: spec.ebgp_multi_hop,
    }
}

fn timer_or_zero(timer: Option<&str>) -> String {
    timer.unwrap_or(ZERO_DURATION).to_string()
}

/// An empty legacy selector becomes `{}`, which matches every node.
fn legacy_to_label_selector(selector: &v1beta1::NodeSelector) -> LabelSelector {
    LabelSelector {
        match_labels: (!selector.match_labels.is_empty()).then(|| selector.match_labels.clone()),
        match_expressions: (!selector.match_expressions.is_empty()).then(|| {
            selector
                .match_expressions
                .iter()
                .map(|expression| LabelSelectorRequirement {
                    key: expression.key.clone(),
                    operator: expression.operator.clone(),
                    values: Some(expression.values.clone()),
                })
                .collect()
        }),
    }
}

fn label_selector_to_legacy(selector: &LabelSelector) -> v1beta1::NodeSelector {
    v1beta1::NodeSelector {
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions: selector
            .match_expressions
            .iter()
            .flatten()
            .map(|requirement| v1beta1::MatchExpression {
                key: requirement.key.clone(),
                operator: requirement.operator.clone(),
                values: requirement.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

impl From<&v1beta1::BGPPeer> for v1beta2::BGPPeer {
    fn from(peer: &v1beta1::BGPPeer) -> Self {
        to_v1beta2(peer)
    }
}

impl From<&v1beta2::BGPPeer> for v1beta1::BGPPeer {
    fn from(peer: &v1beta2::BGPPeer) -> Self {
        to_v1beta1(peer)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::SecretReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn legacy_peer() -> v1beta1::BGPPeer {
        v1beta1::BGPPeer {
            metadata: ObjectMeta {
                name: Some("legacy".into()),
                namespace: Some("metallb-system".into()),
                labels: Some(BTreeMap::from([("team".into(), "net".into())])),
                ..ObjectMeta::default()
            },
            spec: v1beta1::BGPPeerSpec {
                my_asn: 64500,
                peer_asn: 64501,
                peer_address: "10.0.0.1".into(),
                source_address: "10.0.0.2".into(),
                peer_port: 1179,
                hold_time: Some("90s".into()),
                keepalive_time: Some("30s".into()),
                router_id: "10.10.10.10".into(),
                node_selectors: vec![
                    v1beta1::NodeSelector {
                        match_labels: BTreeMap::from([("rack".into(), "a".into())]),
                        match_expressions: vec![v1beta1::MatchExpression {
                            key: "speed".into(),
                            operator: "NotIn".into(),
                            values: vec!["slow".into()],
                        }],
                    },
                    v1beta1::NodeSelector::default(),
                ],
                password: "s3cr3t".into(),
                bfd_profile: "fast".into(),
                ebgp_multi_hop: true,
            },
            status: None,
        }
    }

    #[test]
    fn v1beta1_fields_are_copied() {
        let converted = to_v1beta2(&legacy_peer());
        assert_eq!(converted.metadata, legacy_peer().metadata);
        let spec = converted.spec;
        assert_eq!((spec.my_asn, spec.peer_asn), (64500, 64501));
        assert_eq!(
            (spec.peer_address.as_str(), spec.source_address.as_str()),
            ("10.0.0.1", "10.0.0.2")
        );
        assert_eq!(spec.peer_port, 1179);
        assert_eq!(
            (spec.hold_time.as_deref(), spec.keepalive_time.as_deref()),
            (Some("90s"), Some("30s"))
        );
        assert_eq!(spec.router_id, "10.10.10.10");
        assert_eq!(
            (spec.password.as_str(), spec.bfd_profile.as_str()),
            ("s3cr3t", "fast")
        );
        assert!(spec.ebgp_multi_hop);
        assert_eq!(
            spec.node_selectors[0],
            LabelSelector {
                match_labels: Some(BTreeMap::from([("rack".into(), "a".into())])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "speed".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["slow".into()]),
                }]),
            }
        );
        // v1beta2-only fields take their v1beta2 defaults.
        assert_eq!(spec.dynamic_asn, None);
        assert_eq!(
            (spec.local_asn, spec.interface.as_str(), spec.vrf.as_str()),
            (0, "", "")
        );
        assert_eq!(
            (spec.connect_time.as_deref(), spec.password_secret.as_ref()),
            (None, None)
        );
        assert!(
            !spec.enable_graceful_restart && !spec.disable_mp && !spec.dual_stack_address_family
        );
    }

    #[test]
    fn empty_legacy_selector_matches_everything() {
        let converted = spec_to_v1beta2(&legacy_peer().spec);
        assert_eq!(converted.node_selectors[1], LabelSelector::default());
        assert_eq!(
            serde_json::to_value(&converted.node_selectors[1]).ok(),
            Some(serde_json::json!({}))
        );
    }

    #[test]
    fn unset_v1beta1_timers_become_explicit_zero_and_port_defaults() {
        let spec = v1beta1::BGPPeerSpec {
            my_asn: 1,
            peer_asn: 2,
            peer_address: "10.0.0.1".into(),
            ..v1beta1::BGPPeerSpec::default()
        };
        let converted = spec_to_v1beta2(&spec);
        assert_eq!(converted.hold_time.as_deref(), Some("0s"));
        assert_eq!(converted.keepalive_time.as_deref(), Some("0s"));
        assert_eq!(converted.peer_port, 179);
    }

    #[test]
    fn v1beta2_only_fields_are_dropped() {
        let spec = v1beta2::BGPPeerSpec {
            my_asn: 64512,
            dynamic_asn: Some(v1beta2::DynamicASNMode::External),
            local_asn: 64600,
            interface: "net0".into(),
            connect_time: Some("5s".into()),
            password_secret: Some(SecretReference {
                name: Some("bgp".into()),
                namespace: Some("metallb-system".into()),
            }),
            enable_graceful_restart: true,
            vrf: "red".into(),
            disable_mp: true,
            dual_stack_address_family: true,
            node_selectors: vec![LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "role".into(),
                    operator: "Exists".into(),
                    values: None,
                }]),
            }],
            ..v1beta2::BGPPeerSpec::default()
        };
        let back = spec_to_v1beta1(&spec);
        assert_eq!(
            back,
            v1beta1::BGPPeerSpec {
                my_asn: 64512,
                peer_port: 179,
                hold_time: Some("0s".into()),
                keepalive_time: Some("0s".into()),
                node_selectors: vec![v1beta1::NodeSelector {
                    match_labels: BTreeMap::new(),
                    match_expressions: vec![v1beta1::MatchExpression {
                        key: "role".into(),
                        operator: "Exists".into(),
                        values: Vec::new(),
                    }],
                }],
                ..v1beta1::BGPPeerSpec::default()
            }
        );
    }

    #[test]
    fn round_trip_through_the_hub_keeps_v1beta1_fields() {
        let original = legacy_peer();
        let back = to_v1beta1(&to_v1beta2(&original));
        assert_eq!(back, original);
        let via_from: v1beta2::BGPPeer = (&original).into();
        assert_eq!(via_from, to_v1beta2(&original));
    }

    #[test]
    fn status_presence_is_kept() {
        let mut peer = legacy_peer();
        peer.status = Some(v1beta1::BGPPeerStatus {});
        assert_eq!(to_v1beta2(&peer).status, Some(v1beta2::BGPPeerStatus {}));
        assert_eq!(to_v1beta1(&to_v1beta2(&legacy_peer())).status, None);
    }
}
