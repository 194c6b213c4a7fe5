//! `metallb.io/v1beta2`: the stored version of BGPPeer.

mod bgppeer;

pub use bgppeer::{BGPPeer, BGPPeerSpec, BGPPeerStatus, DEFAULT_PEER_PORT, DynamicASNMode};
