//! `metallb.io/v1beta1`: every MetalLB kind, including the deprecated
//! (served, not stored) v1beta1 BGPPeer.

mod bfdprofile;
mod bgpadvertisement;
mod bgppeer;
mod community;
mod configurationstate;
mod ipaddresspool;
mod l2advertisement;
mod servicebgpstatus;
mod servicel2status;

pub use bfdprofile::{BFDProfile, BFDProfileSpec, BFDProfileStatus};
pub use bgpadvertisement::{
    BGPAdvertisement, BGPAdvertisementSpec, BGPAdvertisementStatus, DEFAULT_AGGREGATION_LENGTH,
    DEFAULT_AGGREGATION_LENGTH_V6,
};
pub use bgppeer::{
    BGPPeer, BGPPeerSpec, BGPPeerStatus, DEPRECATION_WARNING, MatchExpression, NodeSelector,
};
pub use community::{Community, CommunityAlias, CommunitySpec, CommunityStatus};
pub use configurationstate::{
    CONDITION_CONFIG_RECONCILER_VALID, CONDITION_POOL_RECONCILER_VALID, ConfigurationResult,
    ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus,
    REASON_CONFIGURATION_ERROR, REASON_RECONCILED, REASON_UNKNOWN_ERROR,
};
pub use ipaddresspool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use l2advertisement::{
    L2Advertisement, L2AdvertisementSpec, L2AdvertisementStatus, PreferredNodeSelector,
};
pub use servicebgpstatus::{MetalLBServiceBGPStatus, ServiceBGPStatus, ServiceBGPStatusSpec};
pub use servicel2status::{
    InterfaceInfo, MetalLBServiceL2Status, ServiceL2Status, ServiceL2StatusSpec,
};
