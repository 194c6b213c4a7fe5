//! BGPPeer v1beta1: served but deprecated; v1beta2 is stored (crds.md §5.2).
//! Objects are converted with [`crate::conversion`].

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;
use crate::optional_spec::optional_spec;
use crate::schema_attrs::Validations;
use crate::serde_defaults::{is_false, is_zero_u16};

/// Warning the API server returns to clients using this version.
pub const DEPRECATION_WARNING: &str = "v1beta1 is deprecated, please use v1beta2";

/// BGPPeerSpec defines the desired state of Peer.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(remote = "Self")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    namespaced,
    status = "BGPPeerStatus",
    derive = "PartialEq",
    derive = "Default",
    storage = false,
    served = true,
    deprecated = "v1beta1 is deprecated, please use v1beta2",
    doc = "BGPPeer is the Schema for the peers API.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "string",
        json_path = ".spec.ebgpMultiHop"
    )
)]
#[schemars(transform = Validations(&[cel::PEER_MY_ASN_SET, cel::PEER_NO_MULTIHOP_FOR_IBGP]))]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// AS number to use for the local end of the session.
    #[serde(rename = "myASN")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub my_asn: u32,

    /// AS number to expect from the remote end of the session.
    #[serde(rename = "peerASN")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub peer_asn: u32,

    /// Address to dial when establishing the session.
    pub peer_address: String,

    /// Source address to use when establishing the session.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_address: String,

    /// Port to dial when establishing the session. 0 means unset (179 after
    /// conversion to v1beta2).
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    #[schemars(range(min = 0, max = 16384))]
    pub peer_port: u16,

    /// Requested BGP hold time, per RFC4271 (Go duration, e.g. `90s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,

    /// Requested BGP keepalive time, per RFC4271 (Go duration, e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,

    /// BGP router ID to advertise to the peer
    #[serde(default, rename = "routerID", skip_serializing_if = "String::is_empty")]
    pub router_id: String,

    /// Only connect to this peer on nodes that match one of these
    /// selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<NodeSelector>,

    /// Authentication password for routers enforcing TCP MD5 authenticated sessions
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,

    /// The name of the BFD Profile to be used for the BFD session associated to the BGP session.
    /// If not set, the BFD session won't be set up.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bfd_profile: String,

    /// EBGP peer is multi-hops away
    #[serde(default, rename = "ebgpMultiHop", skip_serializing_if = "is_false")]
    pub ebgp_multi_hop: bool,
}

optional_spec!(BGPPeerSpec);

/// Legacy (pre-LabelSelector) node selector of the v1beta1 BGPPeer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<MatchExpression>,
}

/// One requirement of a legacy [`NodeSelector`]; all three fields are required.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct MatchExpression {
    pub key: String,

    pub operator: String,

    #[schemars(length(min = 1))]
    pub values: Vec<String>,
}

/// BGPPeerStatus defines the observed state of Peer (unused).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BGPPeerStatus {}
