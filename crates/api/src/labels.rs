//! Label keys and values MetalLB writes on the objects it creates
//! (crds.md §8, §9, §11.4).

/// On ServiceL2Status / ServiceBGPStatus: node of the writing speaker.
pub const NODE: &str = "metallb.io/node";
/// On ServiceL2Status / ServiceBGPStatus: name of the Service.
pub const SERVICE_NAME: &str = "metallb.io/service-name";
/// On ServiceL2Status / ServiceBGPStatus: namespace of the Service.
pub const SERVICE_NAMESPACE: &str = "metallb.io/service-namespace";
/// On ConfigurationState: which component wrote it.
pub const COMPONENT_TYPE: &str = "metallb.io/component-type";
/// On a speaker's ConfigurationState: the speaker's node.
pub const NODE_NAME: &str = "metallb.io/node-name";

/// Value of [`COMPONENT_TYPE`] on the controller's ConfigurationState.
pub const COMPONENT_CONTROLLER: &str = "controller";
/// Value of [`COMPONENT_TYPE`] on a speaker's ConfigurationState.
pub const COMPONENT_SPEAKER: &str = "speaker";
