//! speaker.md §4.1 (which BGPPeers get a session on this node) and §4.5
//! (their parameters, the mode's defaults applied).

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_bgp::packet::Family;
use ferrolb_config::assemble::{BgpMode, Config, Peer};
use ferrolb_config::duration::{Nanos, SECOND};

use super::eligible::selects;
use super::{NodeState, PeerSession, RemoteAsn};

/// Hold time when the peer sets no timers: MetalLB native's 90 s, FRR's
/// default 180 s in the FRR-based modes.
const NATIVE_HOLD: u16 = 90;
const FRR_HOLD: u16 = 180;

pub(super) fn for_node(config: &Config, mode: BgpMode, own: Option<&NodeState>) -> BTreeMap<String, PeerSession> {
    config
        .peers
        .iter()
        .filter(|peer| selects(&peer.nodes, own))
        .map(|peer| (peer.name.clone(), session(peer, mode)))
        .collect()
}

fn session(peer: &Peer, mode: BgpMode) -> PeerSession {
    let default_hold = match mode {
        BgpMode::Native => NATIVE_HOLD,
        BgpMode::Frr | BgpMode::FrrK8s => FRR_HOLD,
    };
    PeerSession {
        my_asn: peer.my_asn,
        local_asn: (peer.local_asn != 0).then_some(peer.local_asn),
        remote_asn: match peer.dynamic_asn {
            Some(dynamic) => RemoteAsn::Dynamic(dynamic),
            None => RemoteAsn::Exact(peer.asn),
        },
        address: peer.address,
        interface: peer.interface.clone(),
        port: peer.port,
        hold_time: peer.timers.map_or(default_hold, |t| seconds(t.hold)),
        keepalive_time: peer.timers.map(|t| seconds(t.keepalive)),
        connect_time: peer.connect_time.map(seconds),
        router_id: peer.router_id,
        password: peer.password.clone(),
        source_address: peer.source_address,
        ebgp_multihop: peer.ebgp_multihop,
        vrf: peer.vrf.clone().filter(|v| !v.is_empty()),
        bfd_profile: peer.bfd_profile.clone().filter(|p| !p.is_empty()),
        graceful_restart: peer.enable_graceful_restart,
        dual_stack_address_family: peer.dual_stack_address_family,
        disable_mp: peer.disable_mp,
        families: families(peer, mode),
    }
}

/// §4.4 step 3. Native mode filters nothing (its configuration cannot hold
/// IPv6 pools with BGP advertisements anyway). FRR activates a neighbor in
/// its address's family, in both for `dualStackAddressFamily` or an
/// unnumbered peer.
fn families(peer: &Peer, mode: BgpMode) -> BTreeSet<Family> {
    let both = BTreeSet::from(Family::ALL);
    if mode == BgpMode::Native || peer.dual_stack_address_family || peer.interface.is_some() {
        return both;
    }
    match peer.address {
        Some(std::net::IpAddr::V4(_)) => BTreeSet::from([Family::Ipv4Unicast]),
        Some(std::net::IpAddr::V6(_)) => BTreeSet::from([Family::Ipv6Unicast]),
        // Validation requires an address or an interface.
        None => both,
    }
}

/// Whole seconds, as BGP carries them (sub-second parts truncate, as
/// upstream's timer parsing does; values past the field saturate).
fn seconds(d: Nanos) -> u16 {
    u16::try_from((d / SECOND).max(0)).unwrap_or(u16::MAX)
}
