//! Community: named aliases for BGP communities (crds.md §7).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::optional_spec::optional_spec;

/// CommunitySpec defines the desired state of Community.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(remote = "Self")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    singular = "community",
    namespaced,
    status = "CommunityStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Community is a collection of aliases for communities. Users can define named aliases to be used in the BGPAdvertisement CRD."
)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    /// The list of named aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunityAlias>,
}

optional_spec!(CommunitySpec);

/// One named community value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CommunityAlias {
    /// The name of the alias for the community.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,

    /// The BGP community value corresponding to the given name. Can be a standard community of the form 1234:1234
    /// or a large community of the form large:1234:1234:1234.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// CommunityStatus defines the observed state of Community (unused).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CommunityStatus {}
