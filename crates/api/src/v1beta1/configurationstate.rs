//! ConfigurationState: written by the controller and each speaker, whether
//! their last configuration load succeeded (crds.md §9).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::optional_spec::optional_spec;
use crate::schema_attrs::ListMapKeys;

/// Condition type written by the controller's pool reconciler.
pub const CONDITION_POOL_RECONCILER_VALID: &str = "poolReconcilerValid";
/// Condition type written by a speaker's config reconciler.
pub const CONDITION_CONFIG_RECONCILER_VALID: &str = "configReconcilerValid";
/// Condition reason when the configuration was applied.
pub const REASON_RECONCILED: &str = "Reconciled";
/// Condition reason when the configuration is invalid; the only reason that
/// makes `result` `Invalid`.
pub const REASON_CONFIGURATION_ERROR: &str = "ConfigurationError";
/// Condition reason for failures that are not configuration errors.
pub const REASON_UNKNOWN_ERROR: &str = "UnknownError";

/// ConfigurationStateSpec is empty: the object carries only status.
#[derive(
    CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq,
)]
#[serde(remote = "Self")]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ConfigurationState",
    plural = "configurationstates",
    singular = "configurationstate",
    namespaced,
    status = "ConfigurationStateStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ConfigurationState is a status-only CRD that reports configuration validation results from MetalLB components.",
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(
        name = "ErrorSummary",
        type_ = "string",
        json_path = ".status.errorSummary"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ConfigurationStateSpec {}

optional_spec!(ConfigurationStateSpec);

/// Aggregated outcome of a component's last configuration load.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConfigurationResult {
    Valid,
    Invalid,
    Unknown,
}

/// ConfigurationStateStatus defines the observed state of ConfigurationState.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateStatus {
    /// Result indicates the configuration validation result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ConfigurationResult>,

    /// ErrorSummary contains the aggregated error messages from reconciliation failures.
    /// This field is empty when Result is "Valid".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_summary: String,

    /// Conditions contains the status conditions from the reconcilers running in this component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = ListMapKeys(&["type"]))]
    pub conditions: Vec<Condition>,
}
