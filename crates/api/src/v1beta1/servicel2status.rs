//! ServiceL2Status: written by speakers, which node announces a Service in
//! layer 2 (crds.md §8). The identity fields are immutable once set.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;
use crate::optional_spec::optional_spec;
use crate::schema_attrs::Validations;

/// ServiceL2StatusSpec defines the desired state of ServiceL2Status (empty).
#[derive(
    CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq,
)]
#[serde(remote = "Self")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    singular = "servicel2status",
    namespaced,
    status = "MetalLBServiceL2Status",
    derive = "PartialEq",
    derive = "Default",
    doc = "ServiceL2Status reveals the actual traffic status of loadbalancer services in layer2 mode.",
    printcolumn(name = "Allocated Node", type_ = "string", json_path = ".status.node"),
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
pub struct ServiceL2StatusSpec {}

optional_spec!(ServiceL2StatusSpec);

/// MetalLBServiceL2Status defines the observed state of ServiceL2Status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetalLBServiceL2Status {
    /// Node indicates the node that receives the directed traffic
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = Validations(&[cel::STATUS_FIELD_IMMUTABLE]))]
    pub node: String,

    /// ServiceName indicates the service this status represents
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = Validations(&[cel::STATUS_FIELD_IMMUTABLE]))]
    pub service_name: String,

    /// ServiceNamespace indicates the namespace of the service
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = Validations(&[cel::STATUS_FIELD_IMMUTABLE]))]
    pub service_namespace: String,

    /// Interfaces indicates the interfaces that receive the directed traffic;
    /// empty when the IP is announced on every interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
}

/// InterfaceInfo defines interface info of layer2 announcement.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub struct InterfaceInfo {
    /// Name the name of network interface card
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}
