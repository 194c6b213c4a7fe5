//! BGPAdvertisement: announce selected pools via BGP (crds.md §4).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;
use crate::optional_spec::optional_spec;
use crate::schema_attrs::Validations;
use crate::serde_defaults::is_zero_u32;

/// Default of `aggregationLength`: one IPv4 route per address.
pub const DEFAULT_AGGREGATION_LENGTH: i32 = 32;
/// Default of `aggregationLengthV6`: one IPv6 route per address.
pub const DEFAULT_AGGREGATION_LENGTH_V6: i32 = 128;

fn default_aggregation_length() -> i32 {
    DEFAULT_AGGREGATION_LENGTH
}

fn default_aggregation_length_v6() -> i32 {
    DEFAULT_AGGREGATION_LENGTH_V6
}

/// BGPAdvertisementSpec defines the desired state of BGPAdvertisement.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(remote = "Self")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    singular = "bgpadvertisement",
    namespaced,
    status = "BGPAdvertisementStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "BGPAdvertisement allows to advertise the IPs coming from the selected IPAddressPools via BGP, setting the parameters of the BGP Advertisement.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
#[schemars(transform = Validations(&[cel::BGPADV_SERVICE_SELECTORS_AGGREGATION]))]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// The aggregation-length advertisement option lets you “roll up” the /32s into a larger prefix. Defaults to 32. Works for IPv4 addresses.
    #[serde(default = "default_aggregation_length")]
    #[schemars(range(min = 1))]
    pub aggregation_length: i32,

    /// The aggregation-length advertisement option lets you “roll up” the /128s into a larger prefix. Defaults to 128. Works for IPv6 addresses.
    #[serde(
        default = "default_aggregation_length_v6",
        rename = "aggregationLengthV6"
    )]
    pub aggregation_length_v6: i32,

    /// The BGP LOCAL_PREF attribute which is used by BGP best path algorithm,
    /// Path with higher localpref is preferred over one with lower localpref.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub local_pref: u32,

    /// The BGP communities to be associated with the announcement. Each item can be a standard community of the
    /// form 1234:1234, a large community of the form large:1234:1234:1234 or the name of an alias defined in the
    /// Community CRD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,

    /// The list of IPAddressPools to advertise via this advertisement, selected by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,

    /// A selector for the IPAddressPools which would get advertised via this advertisement.
    /// If no IPAddressPool is selected by this or by the list, the advertisement is applied to all the IPAddressPools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// NodeSelectors allows to limit the nodes to announce as next hops for the LoadBalancer IP.
    /// When empty, all the nodes having are announced as next hops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Peers limits the bgppeer to advertise the ips of the selected pools to.
    /// When empty, the loadbalancer IP is announced to all the BGPPeers configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,

    /// ServiceSelectors limits the Services advertised through this advertisement
    /// to those matching at least one selector. Empty means every Service.
    /// Can only be combined with the default aggregation lengths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

impl Default for BGPAdvertisementSpec {
    fn default() -> Self {
        Self {
            aggregation_length: DEFAULT_AGGREGATION_LENGTH,
            aggregation_length_v6: DEFAULT_AGGREGATION_LENGTH_V6,
            local_pref: 0,
            communities: Vec::new(),
            ip_address_pools: Vec::new(),
            ip_address_pool_selectors: Vec::new(),
            node_selectors: Vec::new(),
            peers: Vec::new(),
            service_selectors: Vec::new(),
        }
    }
}

optional_spec!(BGPAdvertisementSpec);

/// BGPAdvertisementStatus defines the observed state of BGPAdvertisement (unused).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BGPAdvertisementStatus {}
