//! speaker.md §4.3 (the prefixes a Service produces) and §4.4 (which of
//! them go to which peer, with which attributes).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_allocator::ServiceKey;
use ferrolb_bgp::packet::Family;
use ferrolb_config::assemble::{BgpAdvertisement, BgpMode};
use ferrolb_config::community::Community;
use ipnet::IpNet;

use super::{MAX_COMMUNITIES, PeerSession, RefusedRoute, Route};

/// The routes of one advertised Service: each address masked by each
/// applicable advertisement, with the advertisement that made it.
pub(super) struct Produced<'c> {
    pub key: ServiceKey,
    pub ips: Vec<IpAddr>,
    routes: Vec<(IpNet, &'c BgpAdvertisement)>,
}

impl<'c> Produced<'c> {
    pub fn new(key: ServiceKey, ips: Vec<IpAddr>, ads: &[&'c BgpAdvertisement]) -> Self {
        let routes = ips.iter().flat_map(|ip| ads.iter().map(|ad| (aggregate(*ip, ad), *ad))).collect();
        Produced { key, ips, routes }
    }

    /// Its prefixes (a prefix made by two advertisements appears twice).
    pub fn prefixes(&self) -> impl Iterator<Item = &IpNet> {
        self.routes.iter().map(|(prefix, _)| prefix)
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
    IpNet::new(ip, len).map(|net| net.trunc()).unwrap_or_else(|_| IpNet::from(ip))
}

pub(super) struct Distributed {
    pub routes: BTreeMap<String, BTreeMap<IpNet, Route>>,
    pub refused: BTreeSet<RefusedRoute>,
}

/// §4.4 for every session: the pooled routes each peer is named by, in its
/// families, one entry per prefix with the union of communities.
pub(super) fn distribute(mode: BgpMode, sessions: &BTreeMap<String, PeerSession>, produced: &[Produced<'_>]) -> Distributed {
    let mut out = Distributed { routes: BTreeMap::new(), refused: BTreeSet::new() };
    for (name, session) in sessions {
        let mut merged: BTreeMap<IpNet, (u32, BTreeSet<Community>)> = BTreeMap::new();
        let toward = produced
            .iter()
            .flat_map(|p| p.routes.iter())
            .filter(|(prefix, ad)| (ad.peers.is_empty() || ad.peers.contains(name)) && session.families.contains(&Family::of(prefix)));
        for (prefix, ad) in toward {
            let (local_pref, communities) = merged.entry(*prefix).or_default();
            // Upstream keeps whichever LOCAL_PREF it meets first, which
            // depends on map order; the highest is the same on every run
            // and is what FRR's route-maps give when the other is unset.
            *local_pref = (*local_pref).max(ad.local_pref);
            communities.extend(ad.communities.iter().copied());
        }
        let ibgp = session.ibgp();
        let mut routes = BTreeMap::new();
        for (prefix, (local_pref, communities)) in merged {
            if communities.len() > MAX_COMMUNITIES {
                out.refused.insert(RefusedRoute { peer: name.clone(), prefix, communities: communities.len() });
                continue;
            }
            let local_pref = match mode {
                BgpMode::Native => ibgp.then_some(local_pref),
                BgpMode::Frr | BgpMode::FrrK8s => (ibgp && local_pref != 0).then_some(local_pref),
            };
            routes.insert(prefix, Route { local_pref, communities });
        }
        out.routes.insert(name.clone(), routes);
    }
    out
}
