//! Per-peer Adj-RIB-Out: the routes we want the peer to have, what it has
//! been sent, and the fewest UPDATEs that take it from one to the other
//! (routes with equal attributes share one UPDATE).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::packet::{Family, RouteAttrs};

/// A route as the speaker asks for it; the session fills in next hop and
/// AS path, and drops LOCAL_PREF toward eBGP peers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Advertisement {
    pub local_pref: Option<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<(u32, u32, u32)>,
}

/// What turns advertisements into attributes on one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrContext {
    pub ibgp: bool,
    pub local_asn: u32,
    pub next_hop_v4: Option<IpAddr>,
    pub next_hop_v6: Option<IpAddr>,
    /// iBGP peers get LOCAL_PREF always (MetalLB sends its configured
    /// value; FRR uses 100 when none is set).
    pub default_local_pref: u32,
}

/// Routes with their attributes. Routes with equal attributes share one
/// set: a speaker advertising 10,000 Services with the same communities
/// held 10,000 equal copies (each with its own AS path) in `desired` and as
/// many in `sent`, 2.5 MiB at its peak (docs/benchmarks-bgp.md).
pub type Routes = BTreeMap<IpNet, Arc<RouteAttrs>>;

/// Resolves advertisements for a session; routes of a family with no next
/// hop are left out (and reported by the caller).
pub fn resolve(ads: &BTreeMap<IpNet, Advertisement>, ctx: &AttrContext) -> Routes {
    let mut shared: HashMap<(Family, &Advertisement), Arc<RouteAttrs>> = HashMap::new();
    ads.iter()
        .filter_map(|(p, a)| {
            let family = Family::of(p);
            let next_hop = match family {
                Family::Ipv4Unicast => ctx.next_hop_v4?,
                Family::Ipv6Unicast => ctx.next_hop_v6?,
            };
            let attrs = shared.entry((family, a)).or_insert_with(|| Arc::new(attributes(a, next_hop, ctx)));
            Some((*p, attrs.clone()))
        })
        .collect()
}

/// Attributes resolved for one session, shared by every route of the same
/// advertisement and family, for routes resolved one at a time (a changed
/// Service's) rather than all at once ([`resolve`]). Valid for one
/// [`AttrContext`]: cleared when the session's context changes.
#[derive(Debug, Default)]
pub struct AttrCache(HashMap<Advertisement, [Option<Arc<RouteAttrs>>; 2]>);

impl AttrCache {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// `prefix` advertised as `ad` under `ctx`; `None` when the session has
    /// no next hop of the prefix's family.
    pub fn resolve_one(&mut self, prefix: &IpNet, ad: &Advertisement, ctx: &AttrContext) -> Option<Arc<RouteAttrs>> {
        let (slot, next_hop) = match Family::of(prefix) {
            Family::Ipv4Unicast => (0, ctx.next_hop_v4?),
            Family::Ipv6Unicast => (1, ctx.next_hop_v6?),
        };
        if let Some(attrs) = self.0.get(ad).and_then(|slots| slots[slot].clone()) {
            return Some(attrs);
        }
        let attrs = Arc::new(attributes(ad, next_hop, ctx));
        self.0.entry(ad.clone()).or_default()[slot] = Some(attrs.clone());
        Some(attrs)
    }
}

/// The attributes of one advertisement on a session.
fn attributes(a: &Advertisement, next_hop: IpAddr, ctx: &AttrContext) -> RouteAttrs {
    let mut communities = a.communities.clone();
    communities.sort_unstable();
    communities.dedup();
    let mut large = a.large_communities.clone();
    large.sort_unstable();
    large.dedup();
    RouteAttrs {
        next_hop,
        as_path: if ctx.ibgp { vec![] } else { vec![ctx.local_asn] },
        local_pref: ctx.ibgp.then(|| a.local_pref.unwrap_or(ctx.default_local_pref)),
        communities,
        large_communities: large,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Announce {
        family: Family,
        attrs: RouteAttrs,
        prefixes: Vec<IpNet>,
    },
    Withdraw {
        family: Family,
        prefixes: Vec<IpNet>,
    },
    EndOfRib(Family),
}

#[derive(Debug, Default, Clone)]
pub struct RibOut {
    desired: Routes,
    sent: Routes,
}

impl RibOut {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_desired(&mut self, desired: Routes) {
        self.desired = desired;
    }

    pub fn desired(&self) -> &Routes {
        &self.desired
    }

    /// Prefixes the peer currently has from us.
    pub fn sent(&self) -> &Routes {
        &self.sent
    }

    /// The session went down: the peer has nothing of ours any more.
    pub fn reset(&mut self) {
        self.sent.clear();
    }

    /// Everything, then End-of-RIB for each family: after session up.
    pub fn initial(&mut self, families: &[Family]) -> Vec<Change> {
        self.sent.clear();
        let mut out = self.diff(families);
        out.extend(families.iter().map(|f| Change::EndOfRib(*f)));
        out
    }

    /// Everything of one family again (ROUTE-REFRESH).
    pub fn refresh(&mut self, family: Family) -> Vec<Change> {
        self.sent.retain(|p, _| Family::of(p) != family);
        self.diff(&[family])
    }

    /// The changes that make `sent` equal `desired` (restricted to
    /// `families`): withdrawals first, then announcements grouped by
    /// attributes. `sent` is updated as if they were delivered.
    pub fn diff(&mut self, families: &[Family]) -> Vec<Change> {
        let in_scope = |p: &IpNet| families.contains(&Family::of(p));
        let mut withdraw: BTreeMap<Family, Vec<IpNet>> = BTreeMap::new();
        for p in self.sent.keys() {
            if in_scope(p) && !self.desired.contains_key(p) {
                withdraw.entry(Family::of(p)).or_default().push(*p);
            }
        }
        let mut announce: BTreeMap<(Family, &Arc<RouteAttrs>), Vec<IpNet>> = BTreeMap::new();
        for (p, a) in &self.desired {
            if in_scope(p) && self.sent.get(p) != Some(a) {
                announce.entry((Family::of(p), a)).or_default().push(*p);
            }
        }
        let announce: Vec<_> = announce
            .into_iter()
            .map(|((f, a), p)| (f, a.clone(), p))
            .collect();
        self.emit(withdraw, announce)
    }

    /// Sets the desired route of each prefix of `changes` (`None`: no
    /// route) and returns what brings the peer up to date for those
    /// prefixes alone (restricted to `families`): the cost of a pass that
    /// changed one Service, where [`Self::diff`] compares every route.
    /// Each prefix appears once in `changes`.
    pub fn update(&mut self, changes: Vec<(IpNet, Option<Arc<RouteAttrs>>)>, families: &[Family]) -> Vec<Change> {
        let mut withdraw: BTreeMap<Family, Vec<IpNet>> = BTreeMap::new();
        let mut announce: BTreeMap<(Family, Arc<RouteAttrs>), Vec<IpNet>> = BTreeMap::new();
        for (p, attrs) in changes {
            match &attrs {
                Some(a) => self.desired.insert(p, a.clone()),
                None => self.desired.remove(&p),
            };
            let family = Family::of(&p);
            if !families.contains(&family) {
                continue;
            }
            match attrs {
                None if self.sent.contains_key(&p) => withdraw.entry(family).or_default().push(p),
                Some(a) if self.sent.get(&p) != Some(&a) => announce.entry((family, a)).or_default().push(p),
                _ => {}
            }
        }
        let announce = announce.into_iter().map(|((f, a), p)| (f, a, p)).collect();
        self.emit(withdraw, announce)
    }

    /// Withdrawals first, then announcements; `sent` updated as if they
    /// were delivered.
    fn emit(&mut self, withdraw: BTreeMap<Family, Vec<IpNet>>, announce: Vec<(Family, Arc<RouteAttrs>, Vec<IpNet>)>) -> Vec<Change> {
        let mut out = Vec::with_capacity(withdraw.len() + announce.len());
        for (family, prefixes) in withdraw {
            for p in &prefixes {
                self.sent.remove(p);
            }
            out.push(Change::Withdraw { family, prefixes });
        }
        for (family, attrs, prefixes) in announce {
            for p in &prefixes {
                self.sent.insert(*p, attrs.clone());
            }
            out.push(Change::Announce {
                family,
                attrs: RouteAttrs::clone(&attrs),
                prefixes,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
