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
        node_selectors: spec.node_selectors.iter().map(legacy_to_label_selector).collect(),
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
        node_selectors: spec.node_selectors.iter().map(label_selector_to_legacy).collect(),
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
