//! The validated configuration: what the controller and a speaker consume.

use crate::community::Community;
use crate::selector::Selector;
use crate::timers::Timers;
use crate::duration::Nanos;
use ferrolb_allocator::PoolDef;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A whole validated configuration. Every list is in `metadata.name` order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub pools: Vec<PoolDef>,
    /// Advertisements attached to each pool (by pool name), in attachment order.
    pub pool_advertisements: BTreeMap<String, PoolAdvertisements>,
    pub peers: Vec<Peer>,
    pub bfd_profiles: Vec<BfdProfile>,
    /// Community aliases by alias name.
    pub communities: BTreeMap<String, Community>,
}

impl Config {
    pub fn pool(&self, name: &str) -> Option<&PoolDef> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    pub fn bfd_profile(&self, name: &str) -> Option<&BfdProfile> {
        self.bfd_profiles.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolAdvertisements {
    pub l2: Vec<L2Advertisement>,
    pub bgp: Vec<BgpAdvertisement>,
}

/// Nodes an object applies to: its selectors (empty = every node) and the nodes
/// they selected among the Node objects known at build time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSet {
    pub selectors: Vec<Selector>,
    pub nodes: BTreeSet<String>,
}

impl NodeSet {
    /// Whether a node with these labels is selected (re-evaluates the selectors, so it
    /// also answers for nodes created after the build).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selectors.is_empty() || self.selectors.iter().any(|s| s.matches(labels))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct L2Advertisement {
    pub name: String,
    pub nodes: NodeSet,
    /// True when `spec.interfaces` is empty.
    pub all_interfaces: bool,
    pub interfaces: Vec<String>,
    /// Empty = every Service.
    pub service_selectors: Vec<Selector>,
    /// Node name -> summed weight of matching `preferredNodeSelectors` (eligible nodes only).
    pub preferred_node_scores: BTreeMap<String, i32>,
    pub has_preferences: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BgpAdvertisement {
    pub name: String,
    pub aggregation_length: i32,
    pub aggregation_length_v6: i32,
    pub local_pref: u32,
    /// Aliases resolved, sorted, without duplicates.
    pub communities: BTreeSet<Community>,
    pub nodes: NodeSet,
    /// Target peer names; empty = every peer.
    pub peers: Vec<String>,
    /// Empty = every Service.
    pub service_selectors: Vec<Selector>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicAsn {
    Internal,
    External,
}

/// Where a peer's TCP-MD5 password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Password {
    #[default]
    None,
    /// `spec.password`, or the `password` key of the referenced Secret.
    Plain(String),
    /// Secret reference passed through unresolved (FRR-K8s secret passthrough).
    SecretRef { name: String, namespace: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub name: String,
    pub my_asn: u32,
    /// 0 when `dynamic_asn` is used.
    pub asn: u32,
    pub dynamic_asn: Option<DynamicAsn>,
    /// 0 = unset.
    pub local_asn: u32,
    pub address: Option<IpAddr>,
    pub interface: Option<String>,
    pub source_address: Option<IpAddr>,
    pub port: u16,
    /// `None` = unset (implementation defaults, crds.md §5.5).
    pub timers: Option<Timers>,
    pub connect_time: Option<Nanos>,
    pub router_id: Option<IpAddr>,
    pub nodes: NodeSet,
    pub password: Password,
    pub bfd_profile: Option<String>,
    pub ebgp_multihop: bool,
    pub vrf: Option<String>,
    pub enable_graceful_restart: bool,
    pub disable_mp: bool,
    pub dual_stack_address_family: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    pub name: String,
    pub receive_interval: Option<u32>,
    pub transmit_interval: Option<u32>,
    pub detect_multiplier: Option<u32>,
    pub echo_interval: Option<u32>,
    pub echo_mode: bool,
    pub passive_mode: bool,
    pub minimum_ttl: Option<u32>,
}
