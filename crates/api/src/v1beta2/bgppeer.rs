//! BGPPeer v1beta2: the stored version (crds.md §5.1).

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;
use crate::optional_spec::optional_spec;
use crate::schema_attrs::{MapTypeAtomic, Validations};
use crate::serde_defaults::{is_false, is_zero_u32};

/// Default of `peerPort`.
pub const DEFAULT_PEER_PORT: u16 = 179;

fn default_peer_port() -> u16 {
    DEFAULT_PEER_PORT
}

/// BGPPeerSpec defines the desired state of Peer.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(remote = "Self")]
#[kube(
    group = "metallb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    namespaced,
    status = "BGPPeerStatus",
    derive = "PartialEq",
    derive = "Default",
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
#[schemars(transform = Validations(&[
    cel::PEER_MY_ASN_SET,
    cel::PEER_ASN_OR_DYNAMIC_ASN,
    cel::PEER_NOT_BOTH_ASN_AND_DYNAMIC_ASN,
    cel::PEER_ADDRESS_OR_INTERFACE,
    cel::PEER_NOT_BOTH_ADDRESS_AND_INTERFACE,
    cel::PEER_NO_MULTIHOP_FOR_IBGP,
]))]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// AS number to use for the local end of the session.
    #[serde(rename = "myASN")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub my_asn: u32,

    /// AS number to expect from the remote end of the session.
    /// ASN and DynamicASN are mutually exclusive and one of them must be specified.
    /// 0 means unset.
    #[serde(default, rename = "peerASN", skip_serializing_if = "is_zero_u32")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub peer_asn: u32,

    /// DynamicASN detects the AS number to use for the remote end of the session
    /// without explicitly setting it via the ASN field. Limited to:
    /// internal - if the neighbor's ASN is different than MyASN connection is denied.
    /// external - if the neighbor's ASN is the same as MyASN the connection is denied.
    /// ASN and DynamicASN are mutually exclusive and one of them must be specified.
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicASNMode>,

    /// AS number to use for the local end of the session instead of myASN
    /// towards this peer. 0 means unset.
    #[serde(default, rename = "localASN", skip_serializing_if = "is_zero_u32")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub local_asn: u32,

    /// Address to dial when establishing the session.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_address: String,

    /// Interface is the node interface over which the unnumbered BGP peering will
    /// be established. No API validation takes place as that string value
    /// represents an interface name on the host and if user provides an invalid
    /// value, only the actual BGP session will not be established.
    /// Address and Interface are mutually exclusive and one of them must be specified.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,

    /// Source address to use when establishing the session.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_address: String,

    /// Port to dial when establishing the session.
    #[serde(default = "default_peer_port")]
    #[schemars(range(min = 1, max = 16384))]
    pub peer_port: u16,

    /// Requested BGP hold time, per RFC4271 (Go duration, e.g. `90s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,

    /// Requested BGP keepalive time, per RFC4271 (Go duration, e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,

    /// Requested BGP connect time, controls how long BGP waits between connection attempts to a neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = Validations(&[cel::CONNECT_TIME_RANGE, cel::CONNECT_TIME_WHOLE_SECONDS]))]
    pub connect_time: Option<String>,

    /// BGP router ID to advertise to the peer
    #[serde(default, rename = "routerID", skip_serializing_if = "String::is_empty")]
    pub router_id: String,

    /// Only connect to this peer on nodes that match one of these
    /// selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Authentication password for routers enforcing TCP MD5 authenticated sessions
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,

    /// passwordSecret is name of the authentication secret for BGP Peer.
    /// the secret must be of type "kubernetes.io/basic-auth", and created in the
    /// same namespace as the MetalLB deployment. The password is stored in the
    /// secret as the key "password".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = MapTypeAtomic)]
    pub password_secret: Option<SecretReference>,

    /// The name of the BFD Profile to be used for the BFD session associated to the BGP session.
    /// If not set, the BFD session won't be set up.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bfd_profile: String,

    /// EnableGracefulRestart allows BGP peer to continue to forward data packets along
    /// known routes while the routing protocol information is being restored.
    /// This field is immutable because it requires restart of the BGP session.
    /// Supported for BGP mode FRR and FRR-K8S.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(transform = Validations(&[cel::GRACEFUL_RESTART_IMMUTABLE]))]
    pub enable_graceful_restart: bool,

    /// To set if the BGPPeer is multi-hops away. Needed for FRR mode only.
    #[serde(default, rename = "ebgpMultiHop", skip_serializing_if = "is_false")]
    pub ebgp_multi_hop: bool,

    /// To set if we want to peer with the BGPPeer using an interface belonging to
    /// a host vrf
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vrf: String,

    /// To set if we want to disable MP BGP that will separate IPv4 and IPv6 route exchanges into distinct BGP sessions.
    /// Deprecated: has no effect.
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,

    /// To set if we want to enable the neighbor not only for the ipfamily related to its session,
    /// but also the other one. This allows to advertise/receive IPv4 prefixes over IPv6 sessions and vice versa.
    #[serde(default)]
    pub dual_stack_address_family: bool,
}

impl Default for BGPPeerSpec {
    fn default() -> Self {
        Self {
            my_asn: 0,
            peer_asn: 0,
            dynamic_asn: None,
            local_asn: 0,
            peer_address: String::new(),
            interface: String::new(),
            source_address: String::new(),
            peer_port: DEFAULT_PEER_PORT,
            hold_time: None,
            keepalive_time: None,
            connect_time: None,
            router_id: String::new(),
            node_selectors: Vec::new(),
            password: String::new(),
            password_secret: None,
            bfd_profile: String::new(),
            enable_graceful_restart: false,
            ebgp_multi_hop: false,
            vrf: String::new(),
            disable_mp: false,
            dual_stack_address_family: false,
        }
    }
}

optional_spec!(BGPPeerSpec);

/// How the remote AS is accepted when it is not given explicitly.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DynamicASNMode {
    // Accept a remote AS equal to myASN (iBGP).
    Internal,
    // Accept a remote AS different from myASN (eBGP).
    External,
}

impl DynamicASNMode {
    /// The wire value (`internal` / `external`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::External => "external",
        }
    }
}

/// BGPPeerStatus defines the observed state of Peer (unused).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BGPPeerStatus {}
