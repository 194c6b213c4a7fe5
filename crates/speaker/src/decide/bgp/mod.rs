//! What this node advertises over BGP (speaker.md §4.1–4.5, §5.2): a pure
//! function of the configuration, this node, the Services with their
//! endpoints and the Nodes. No I/O, no clock. Unlike layer 2 there is no
//! election: every eligible node advertises (ECMP at the router), so the
//! outcome on one node does not depend on any other speaker.
//!
//! The rules of the FRR-based modes (§4.4 family filter and LOCAL_PREF, §4.5
//! session column "FRR") apply when the configuration was built for `frr` or
//! `frr-k8s`; native mode keeps MetalLB's native behaviour. docs/
//! speaker-bgp-decision.md lists the rules and the choices where the
//! specification is silent.

mod eligible;
pub mod engine;
mod routes;
mod sessions;
mod state;

pub use state::{BgpChanges, BgpState};

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_allocator::ServiceKey;
use ferrolb_bgp::packet::Family;
use ferrolb_config::assemble::{BgpMode, Config, DynamicAsn, Password};
use ferrolb_config::community::Community;
use ipnet::IpNet;

use super::{NodeState, ServiceState, WithdrawReason};

/// Everything [`decide_bgp`] reads.
#[derive(Debug, Clone, Copy)]
pub struct BgpInput<'a> {
    /// This node.
    pub node: &'a str,
    /// `METALLB_BGP_TYPE` the configuration was validated for.
    pub mode: BgpMode,
    pub config: &'a Config,
    pub services: &'a [ServiceState],
    /// Nodes by name; only this node's entry is read (BGP eligibility is per
    /// node). A node not listed yet has no labels: only objects without node
    /// selectors apply to it (§4.1 "labels unknown until the Node is seen").
    pub nodes: &'a BTreeMap<String, NodeState>,
    /// `--ignore-exclude-lb`.
    pub ignore_exclude_lb: bool,
}

impl<'a> BgpInput<'a> {
    /// What is read besides the Services.
    pub fn context(&self) -> BgpContext<'a> {
        BgpContext { node: self.node, mode: self.mode, config: self.config, nodes: self.nodes, ignore_exclude_lb: self.ignore_exclude_lb }
    }
}

/// [`BgpInput`] without the Services: what [`BgpState`] reads besides the
/// Services it is given.
#[derive(Debug, Clone, Copy)]
pub struct BgpContext<'a> {
    pub node: &'a str,
    pub mode: BgpMode,
    pub config: &'a Config,
    pub nodes: &'a BTreeMap<String, NodeState>,
    pub ignore_exclude_lb: bool,
}

/// The peer's AS: a number, or MetalLB's `dynamicASN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteAsn {
    Exact(u32),
    Dynamic(DynamicAsn),
}

/// One BGP session this node must have (§4.1), with its parameters as the
/// engine needs them (§4.5, mode defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSession {
    pub my_asn: u32,
    /// `localASN`: the AS presented to this peer instead of `my_asn`.
    pub local_asn: Option<u32>,
    pub remote_asn: RemoteAsn,
    /// `peerAddress`; `None` for an unnumbered (`interface`) peer.
    pub address: Option<IpAddr>,
    pub interface: Option<String>,
    pub port: u16,
    /// Whole seconds; the mode's default when the peer sets no timers (native
    /// 90 s, FRR 180 s).
    pub hold_time: u16,
    /// Whole seconds; `None` = derived from the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// Whole seconds; `None` = the engine's default.
    pub connect_time: Option<u16>,
    pub router_id: Option<IpAddr>,
    pub password: Password,
    pub source_address: Option<IpAddr>,
    pub ebgp_multihop: bool,
    pub vrf: Option<String>,
    /// Name of the BFDProfile enabling BFD on this session.
    pub bfd_profile: Option<String>,
    pub graceful_restart: bool,
    pub dual_stack_address_family: bool,
    /// Deprecated upstream and without effect; kept so a change is visible.
    pub disable_mp: bool,
    /// Families whose prefixes this peer receives (§4.4 step 3).
    pub families: BTreeSet<Family>,
}

impl PeerSession {
    /// Whether LOCAL_PREF goes to this peer (§4.4 step 4): its AS equals the
    /// AS we present to it, or `dynamicASN: internal`.
    pub fn ibgp(&self) -> bool {
        match self.remote_asn {
            RemoteAsn::Exact(asn) => asn == self.local_asn.unwrap_or(self.my_asn),
            RemoteAsn::Dynamic(DynamicAsn::Internal) => true,
            RemoteAsn::Dynamic(DynamicAsn::External) => false,
        }
    }
}

/// One prefix as sent to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Only toward iBGP peers. Native: always, the advertisement's value (0
    /// when unset). FRR-based: only a non-zero value; the router then sends
    /// its default 100.
    pub local_pref: Option<u32>,
    /// Standard and large communities merged over every advertisement and
    /// Service producing the prefix for this peer.
    pub communities: BTreeSet<Community>,
}

/// A Service this node advertises. One per advertised Service, kept between
/// passes: sorted vectors rather than sets, and peer names shared with the
/// other Services' (a one-element `BTreeSet` allocates a whole B-tree node,
/// ~200 bytes; at 10,000 Services the sets were 7.5 MiB of the speaker's
/// heap, docs/benchmarks-bgp.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAnnounce {
    /// Its addresses, in ingress order (shared with what the state keeps of
    /// the Service).
    pub ips: Arc<[IpAddr]>,
    /// Every prefix it produces (§4.3), whichever peers they go to; sorted,
    /// each once.
    pub prefixes: Vec<IpNet>,
    /// What this node's ServiceBGPStatus lists (§5.2): peers receiving at
    /// least one of `prefixes`, possibly through another Service's route;
    /// sorted, each once. Shared by every Service going to the same peers.
    pub peers: Arc<[Arc<str>]>,
}

/// A prefix held back from one peer because it carries more communities than
/// the wire format allows (§4.4 step 5).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RefusedRoute {
    pub peer: String,
    pub prefix: IpNet,
    pub communities: usize,
}

/// Most communities one route may carry (§4.4 step 5).
pub const MAX_COMMUNITIES: usize = 63;

impl RefusedRoute {
    /// MetalLB's error text for it.
    pub fn message(&self) -> String {
        format!("max supported communities is {MAX_COMMUNITIES}, got {}", self.communities)
    }
}

/// The outcome on this node. Every collection is sorted, so equal inputs give
/// equal values whatever their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpDecision {
    /// Sessions by BGPPeer name.
    pub sessions: BTreeMap<String, PeerSession>,
    /// Routes by BGPPeer name: one entry per session, possibly empty.
    pub routes: BTreeMap<String, BTreeMap<IpNet, Route>>,
    /// Advertised Services, with what each advertises.
    pub advertised: BTreeMap<ServiceKey, BgpAnnounce>,
    pub withdrawn: BTreeMap<ServiceKey, WithdrawReason>,
    pub refused: BTreeSet<RefusedRoute>,
}

impl BgpDecision {
    /// The ServiceBGPStatus this node keeps per Service (§5.2): only Services
    /// advertised to at least one peer have one.
    pub fn status_peers(&self) -> impl Iterator<Item = (&ServiceKey, &Arc<[Arc<str>]>)> {
        self.advertised.iter().filter(|(_, a)| !a.peers.is_empty()).map(|(k, a)| (k, &a.peers))
    }

    /// One Service's entry of [`Self::status_peers`].
    pub fn status_peers_of(&self, key: &ServiceKey) -> Option<&Arc<[Arc<str>]>> {
        self.advertised.get(key).filter(|a| !a.peers.is_empty()).map(|a| &a.peers)
    }
}

/// Decides this node's sessions, the routes toward each peer, and for every
/// Service whether it is advertised (and to whom) or why not.
pub fn decide_bgp(input: &BgpInput<'_>) -> BgpDecision {
    let mut state = BgpState::default();
    state.rebuild(&input.context(), input.services);
    state.into_decision()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;

#[cfg(test)]
mod golden;
