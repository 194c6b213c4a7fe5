//! What this node announces: a pure function of the configuration, the
//! Services with their endpoints, the Nodes, the live speakers and the
//! current owners (speaker.md §2 and §3.2, with ferrolb's differences below).
//! The BGP counterpart, which needs no election, is [`bgp::decide_bgp`].
//! No I/O, no clock: every speaker evaluates the same inputs the same way, so
//! they agree on one owner per layer 2 address without talking to each other.
//!
//! Where ferrolb differs from MetalLB (docs/speaker.md says why):
//! - A live speaker whose usable interfaces (up, with carrier) have no network
//!   containing a Service address is not a candidate for it, as long as some
//!   other candidate has one ([`MemberNetworks`]).
//! - Ownership is sticky: the node that currently announces a Service (its
//!   ServiceL2Status) keeps it while it stays a top-scored candidate, so a
//!   failed node that comes back does not take its addresses back and reset
//!   their connections.

pub mod bgp;
mod election;
mod layer2;
mod service;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ferrolb_allocator::ServiceKey;
use ferrolb_config::assemble::Config;
use ipnet::IpNet;

pub use election::election_hash;

/// One LoadBalancer-class Service as the speaker sees it. Services of another
/// load-balancer class are filtered out before they get here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub key: ServiceKey,
    pub is_load_balancer: bool,
    /// Shared, as `ingress` is: the watch's cache and the joined Services
    /// ([`crate::inputs`]) hold the same Service, differing in endpoints only.
    pub labels: std::sync::Arc<BTreeMap<String, String>>,
    /// Whether a sharing key (`allow-shared-ip`, either prefix) is present.
    pub has_sharing_key: bool,
    /// `status.loadBalancer.ingress[].ip` as written, non-empty ones.
    pub ingress: std::sync::Arc<[String]>,
    /// `externalTrafficPolicy: Local`.
    pub local_traffic_policy: bool,
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of the Service's EndpointSlices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Shared with the EndpointSlice cache's interned names.
    pub node: Option<std::sync::Arc<str>>,
    /// `ready` unset or true, or `serving` true (speaker.md §3.2 step 1).
    pub serving: bool,
}

/// What the speaker reads of a Node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    pub labels: BTreeMap<String, String>,
    /// The `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
}

/// Networks a live speaker can answer on: for each usable interface (up, with
/// carrier, not excluded) its name and the networks of its addresses. `None`
/// when the member did not say (an older ferrolb, or membership off): such a
/// node is assumed able to answer for any address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberNetworks {
    pub interfaces: Option<Vec<(String, Vec<IpNet>)>>,
}

/// Everything [`decide`] reads.
#[derive(Debug, Clone, Copy)]
pub struct DecideInput<'a> {
    /// This node.
    pub node: &'a str,
    pub config: &'a Config,
    pub services: &'a [ServiceState],
    pub nodes: &'a BTreeMap<String, NodeState>,
    /// Live speakers by node name. `None` = membership is off: every known Node
    /// is assumed to run a healthy speaker (speaker.md §3.1).
    pub live: Option<&'a BTreeMap<String, MemberNetworks>>,
    /// The node currently announcing each Service in layer 2 (from the
    /// ServiceL2Status objects).
    pub sticky: &'a BTreeMap<ServiceKey, String>,
    /// `--ignore-exclude-lb`.
    pub ignore_exclude_lb: bool,
}

/// On which interfaces an address is answered (speaker.md §3.3): the layer 2
/// crate's own type, so the decision hands it over unchanged.
pub use ferrolb_l2::InterfaceScope;

/// This node answers for these addresses of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Announce {
    /// Each address with the interfaces it is answered on, in ingress order.
    pub ips: Vec<(IpAddr, InterfaceScope)>,
}

/// Why a Service is not announced by this node, in MetalLB's words (the
/// `reason` of its `serviceWithdrawn` log line). Layer 2 and BGP share it:
/// both start with the same per-Service checks (speaker.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WithdrawReason {
    NotLoadBalancer,
    NoIpAllocated,
    InvalidIp,
    IpNotAllowed,
    NoMatchingAdvertisement,
    SharedIpWithServiceSelector,
    /// Another node is elected, or no node can be (the owner, when there is one).
    /// In BGP: no advertisement of the pool selects this node.
    NotOwner { owner: Option<String> },
    /// BGP: two advertisements applying to the Service disagree on LOCAL_PREF.
    ConflictingAdvertisements,
    /// BGP: this node's `NetworkUnavailable` condition is true.
    NodeNetworkUnavailable,
    /// BGP: this node carries the exclude-from-external-load-balancers label.
    NodeLabeledExcludeBalancers,
    /// BGP, `externalTrafficPolicy: Local`: no serving endpoint on this node.
    NoLocalEndpoints,
    /// BGP: no serving endpoint anywhere.
    NoEndpoints,
}

impl WithdrawReason {
    /// MetalLB's reason string.
    pub fn as_str(&self) -> &'static str {
        match self {
            WithdrawReason::NotLoadBalancer => "notLoadBalancer",
            WithdrawReason::NoIpAllocated => "noIPAllocated",
            WithdrawReason::InvalidIp => "invalidIP",
            WithdrawReason::IpNotAllowed => "ipNotAllowed",
            WithdrawReason::NoMatchingAdvertisement => "noMatchingAdvertisement",
            WithdrawReason::SharedIpWithServiceSelector => "sharedIPWithServiceSelector",
            WithdrawReason::NotOwner { .. } => "notOwner",
            WithdrawReason::ConflictingAdvertisements => "conflictingAdvertisements",
            WithdrawReason::NodeNetworkUnavailable => "nodeNetworkUnavailable",
            WithdrawReason::NodeLabeledExcludeBalancers => "nodeLabeledExcludeBalancers",
            WithdrawReason::NoLocalEndpoints => "noLocalEndpoints",
            WithdrawReason::NoEndpoints => "noEndpoints",
        }
    }
}

impl fmt::Display for WithdrawReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome for every Service given: each is either announced in layer 2
/// by this node or withdrawn with a reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub layer2: BTreeMap<ServiceKey, L2Announce>,
    pub withdrawn: BTreeMap<ServiceKey, WithdrawReason>,
}

impl Decision {
    /// Addresses this node answers for, merged over Services sharing an
    /// address (the union of their interface scopes).
    pub fn announced_addresses(&self) -> BTreeMap<IpAddr, InterfaceScope> {
        let mut out: BTreeMap<IpAddr, InterfaceScope> = BTreeMap::new();
        for announce in self.layer2.values() {
            for (ip, scope) in &announce.ips {
                let merged = match out.remove(ip) {
                    None => scope.clone(),
                    Some(existing) => union(existing, scope),
                };
                out.insert(*ip, merged);
            }
        }
        out
    }
}

fn union(a: InterfaceScope, b: &InterfaceScope) -> InterfaceScope {
    match (a, b) {
        (InterfaceScope::All, _) | (_, InterfaceScope::All) => InterfaceScope::All,
        (InterfaceScope::Only(mut x), InterfaceScope::Only(y)) => {
            x.extend(y.iter().cloned());
            InterfaceScope::Only(x)
        }
    }
}

/// Decides, for every Service, whether this node announces it in layer 2.
pub fn decide(input: &DecideInput<'_>) -> Decision {
    decide_each(input, input.services)
}

/// [`decide`] for `services` instead of `input.services`: a Service's
/// outcome depends on the other inputs and itself only, so a pass after a
/// few Services changed decides those alone.
pub fn decide_each<'s>(input: &DecideInput<'_>, services: impl IntoIterator<Item = &'s ServiceState>) -> Decision {
    let mut decision = Decision::default();
    let mut candidates = layer2::CandidateCache::new(input);
    for svc in services {
        let outcome = service::addresses(input.config, svc)
            .and_then(|(pool, ips)| layer2::evaluate(input, &mut candidates, svc, pool, ips));
        match outcome {
            Ok(announce) => {
                decision.layer2.insert(svc.key.clone(), announce);
            }
            Err(reason) => {
                decision.withdrawn.insert(svc.key.clone(), reason);
            }
        }
    }
    decision
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
