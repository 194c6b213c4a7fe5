//! The decision in the types `ferrolb_bgp::speaker::Speaker` takes
//! (`set_peer`, `set_routes`). Only what the decision cannot know is asked
//! for: the facts of this node the runner reads from the system.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::rib_out::Advertisement;
use ferrolb_bgp::session::PeerAsn;
use ferrolb_bgp::speaker::PeerConfig;
use ferrolb_config::assemble::{DynamicAsn, Password};
use ferrolb_config::community::Community;
use ipnet::IpNet;

use super::{PeerSession, RemoteAsn, Route};

/// Restart time announced with graceful restart: FRR's default, which
/// MetalLB's FRR modes leave in place.
pub const GRACEFUL_RESTART_TIME: u16 = 120;

/// Facts of this node the engine needs beyond the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PeerEnv<'a> {
    pub node: &'a str,
    /// An IPv4 address of this node: the router ID when the peer sets none.
    pub node_ipv4: Option<Ipv4Addr>,
    /// The link-local address of each unnumbered peer, by interface name.
    pub link_local: &'a BTreeMap<String, Ipv6Addr>,
    /// Passwords of Secrets passed through unresolved (FRR-K8s secret
    /// passthrough), by (namespace, name).
    pub secrets: &'a BTreeMap<(String, String), String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerConfigError {
    /// BGP identifiers are 4 bytes (upstream crashes on an IPv6 router ID).
    #[error("router ID {0} is not an IPv4 address")]
    RouterIdNotIpv4(IpAddr),
    #[error("unnumbered peer on interface {0}: no link-local neighbor address known yet")]
    NoLinkLocal(String),
    #[error("password secret {namespace}/{name} is not known")]
    UnknownSecret { namespace: String, name: String },
}

/// `Speaker::set_peer`'s configuration for one session.
pub fn engine_peer(s: &PeerSession, env: &PeerEnv<'_>) -> Result<PeerConfig, PeerConfigError> {
    let address = match (s.address, &s.interface) {
        (Some(address), _) => address,
        (None, Some(iface)) => {
            IpAddr::V6(*env.link_local.get(iface).ok_or_else(|| PeerConfigError::NoLinkLocal(iface.clone()))?)
        }
        // Validation requires an address or an interface (crds.md R6).
        (None, None) => return Err(PeerConfigError::NoLinkLocal(String::new())),
    };
    let router_id = match s.router_id {
        Some(IpAddr::V4(id)) => id,
        Some(other) => return Err(PeerConfigError::RouterIdNotIpv4(other)),
        None => env.node_ipv4.unwrap_or_else(|| fallback_router_id(env.node)),
    };
    let peer_asn = match s.remote_asn {
        RemoteAsn::Exact(asn) => PeerAsn::Exact(asn),
        RemoteAsn::Dynamic(DynamicAsn::Internal) => PeerAsn::Internal,
        RemoteAsn::Dynamic(DynamicAsn::External) => PeerAsn::External,
    };
    let password = match &s.password {
        Password::None => None,
        Password::Plain(text) => Some(text.clone()),
        Password::SecretRef { name, namespace } => Some(
            env.secrets
                .get(&(namespace.clone(), name.clone()))
                .cloned()
                .ok_or_else(|| PeerConfigError::UnknownSecret { namespace: namespace.clone(), name: name.clone() })?,
        ),
    };
    let mut cfg = PeerConfig::new(s.my_asn, peer_asn, address, router_id);
    cfg.local_asn = s.local_asn;
    cfg.port = s.port;
    cfg.source = s.source_address;
    cfg.interface = s.interface.clone();
    cfg.hold_time = s.hold_time;
    cfg.keepalive_time = s.keepalive_time;
    cfg.connect_time = s.connect_time;
    cfg.ebgp_multihop = s.ebgp_multihop;
    cfg.password = password.filter(|p| !p.is_empty());
    cfg.vrf = s.vrf.clone();
    cfg.graceful_restart = s.graceful_restart.then_some(GRACEFUL_RESTART_TIME);
    cfg.families = s.families.iter().copied().collect();
    Ok(cfg)
}

/// MetalLB native's last resort (speaker.md §4.5): CRC-32 (IEEE) of the node
/// name, little-endian.
pub fn fallback_router_id(node: &str) -> Ipv4Addr {
    Ipv4Addr::from(crc32fast::hash(node.as_bytes()).to_le_bytes())
}

/// `Speaker::set_routes`' routes for one peer.
pub fn engine_routes(routes: &BTreeMap<IpNet, Route>) -> BTreeMap<IpNet, Advertisement> {
    routes.iter().map(|(prefix, route)| (*prefix, engine_route(route))).collect()
}

/// One route as the engine takes it.
pub fn engine_route(route: &Route) -> Advertisement {
    let mut ad = Advertisement { local_pref: route.local_pref, ..Advertisement::default() };
    for c in &route.communities {
        match *c {
            Community::Standard { asn, value } => ad.communities.push((u32::from(asn) << 16) | u32::from(value)),
            Community::Large { global, local1, local2 } => ad.large_communities.push((global, local1, local2)),
        }
    }
    ad
}
