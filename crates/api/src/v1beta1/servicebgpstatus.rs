//! ServiceBGPStatus: written by speakers, which peers a Service is advertised
//! to from a node (crds.md §8). The identity fields are immutable once set.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;
use crate::optional_spec::optional_spec;
use crate::schema_attrs::Validations;

/// ServiceBGPStatusSpec defines the desired state of ServiceBGPStatus (empty).
#[derive(
    CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq,
)]
#[serde(remote = "Self")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    plural = "servicebgpstatuses",
    singular = "servicebgpstatus",
    namespaced,
    status = "MetalLBServiceBGPStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ServiceBGPStatus exposes the BGP peers a service is configured to be advertised to, per relevant node.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceBGPStatusSpec {}

optional_spec!(ServiceBGPStatusSpec);

/// MetalLBServiceBGPStatus defines the observed state of ServiceBGPStatus.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetalLBServiceBGPStatus {
    /// Node indicates the node announcing the service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = Validations(&[cel::STATUS_FIELD_IMMUTABLE]))]
    pub node: String,

    /// ServiceName indicates the service this status represents.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = Validations(&[cel::STATUS_FIELD_IMMUTABLE]))]
    pub service_name: String,

    /// ServiceNamespace indicates the namespace of the service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = Validations(&[cel::STATUS_FIELD_IMMUTABLE]))]
    pub service_namespace: String,

    /// Peers indicate the BGP peers for which the service is configured to be advertised to.
    /// The service being actually advertised to a given peer depends on the session state and is not indicated here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}
