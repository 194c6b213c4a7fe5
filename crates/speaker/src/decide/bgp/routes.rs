//! speaker.md §4.3 (the prefixes a Service produces) and §4.4 (which of
//! them go to which peer, with which attributes).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_bgp::packet::Family;
use ferrolb_config::assemble::{BgpAdvertisement, BgpMode, Config};
use ferrolb_config::community::Community;
use ipnet::IpNet;

use super::{MAX_COMMUNITIES, PeerSession, Route};

/// One advertisement of the configuration: the pool's index in
/// `Config::pools` and the advertisement's index among the pool's BGP
/// advertisements. An index instead of a reference, so what a Service
/// produced can be kept between passes; it is only valid for the
/// configuration it was made from (a new configuration recomputes all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AdRef {
    pub pool: u32,
    pub ad: u32,
}

impl AdRef {
    pub fn resolve(self, config: &Config) -> Option<&BgpAdvertisement> {
        let pool = config.pools.get(usize::try_from(self.pool).ok()?)?;
        config
            .pool_advertisements
            .get(&pool.name)?
            .bgp
            .get(usize::try_from(self.ad).ok()?)
    }
}

/// The address masked to the advertisement's aggregation length for its
/// family (§4.3).
pub(crate) fn aggregate(ip: IpAddr, ad: &BgpAdvertisement) -> IpNet {
    let (len, max) = match ip {
        IpAddr::V4(_) => (ad.aggregation_length, 32),
        IpAddr::V6(_) => (ad.aggregation_length_v6, 128),
    };
    // Validation keeps the lengths in range (crds.md B5, B6); clamping only
    // keeps a hand-built configuration from failing here.
    let len = u8::try_from(len.clamp(0, max)).unwrap_or(0);
    IpNet::new(ip, len)
        .map(|net| net.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// What one peer gets for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Toward {
    /// No advertisement producing the prefix names this peer, or the peer
    /// does not take the prefix's family.
    Nothing,
    Route(Route),
    /// More communities than a route may carry (§4.4 step 5): how many.
    Refused(usize),
}

/// §4.4 for one prefix and one session: the advertisements producing the
/// prefix that name this peer, merged into one route with the union of
/// their communities.
pub(super) fn toward<'c>(
    mode: BgpMode,
    peer: &str,
    session: &PeerSession,
    prefix: &IpNet,
    ads: impl IntoIterator<Item = &'c BgpAdvertisement>,
) -> Toward {
    if !session.families.contains(&Family::of(prefix)) {
        return Toward::Nothing;
    }
    let mut merged: Option<(u32, BTreeSet<Community>)> = None;
    for ad in ads
        .into_iter()
        .filter(|ad| ad.peers.is_empty() || ad.peers.iter().any(|p| p == peer))
    {
        let (local_pref, communities) = merged.get_or_insert_with(Default::default);
        // Upstream keeps whichever LOCAL_PREF it meets first, which
        // depends on map order; the highest is the same on every run
        // and is what FRR's route-maps give when the other is unset.
        *local_pref = (*local_pref).max(ad.local_pref);
        communities.extend(ad.communities.iter().copied());
    }
    let Some((local_pref, communities)) = merged else {
        return Toward::Nothing;
    };
    if communities.len() > MAX_COMMUNITIES {
        return Toward::Refused(communities.len());
    }
    let ibgp = session.ibgp();
    let local_pref = match mode {
        BgpMode::Native => ibgp.then_some(local_pref),
        BgpMode::Frr | BgpMode::FrrK8s => (ibgp && local_pref != 0).then_some(local_pref),
    };
    Toward::Route(Route {
        local_pref,
        communities,
    })
}
