//! [`decide_bgp`](super::decide_bgp) kept up to date one Service at a time.
//!
//! A Service's outcome depends on the configuration, this node and the
//! Service alone; what a peer receives for a prefix depends on the Services
//! producing that prefix. So when only Services change, only their own
//! outcomes and the routes of their prefixes (old and new) are recomputed,
//! and a pass costs what changed, not what exists: at 10,000 Services a full
//! decision took ~20 ms of every pass (docs/benchmarks-bgp.md). Anything
//! else (configuration, Nodes) goes through [`BgpState::rebuild`].
//!
//! Both paths end in the same [`BgpDecision`]; the property test in
//! `state_props.rs` checks that any sequence of updates equals a rebuild.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_allocator::ServiceKey;
use ipnet::IpNet;
use smallvec::SmallVec;

use super::routes::{AdRef, Toward, aggregate, toward};
use super::{
    BgpAnnounce, BgpContext, BgpDecision, RefusedRoute, ServiceState, WithdrawReason, eligible,
    sessions,
};
use crate::decide::service;
use crate::intern::SharedSet;

/// What an advertised Service produces: each address masked by each
/// applicable advertisement (§4.3), with the advertisement that made it.
#[derive(Debug, Clone)]
struct Produced {
    ips: Arc<[IpAddr]>,
    /// Inline for one route (one address, one advertisement: the rule).
    routes: SmallVec<[(IpNet, AdRef); 1]>,
}

/// What changed in the decision, for whoever applies it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpChanges {
    /// Everything may have changed (a rebuild).
    pub all: bool,
    /// Peers whose routes changed, with the prefixes whose route to them
    /// changed (added, removed or different).
    pub peers: BTreeMap<String, BTreeSet<IpNet>>,
    /// Services whose entry in `advertised` or `withdrawn` changed
    /// (including ones that left both).
    pub services: BTreeSet<ServiceKey>,
}

/// The decision with what it was made from, kept for every Service between
/// passes (a `ServiceKey` copy shares its strings: the maps hold no copies
/// of their own).
#[derive(Debug, Default)]
pub struct BgpState {
    decision: BgpDecision,
    produced: BTreeMap<ServiceKey, Produced>,
    /// The advertised Services producing each prefix, sorted. Usually one;
    /// more with shared addresses or aggregation.
    /// Inline for one producer: a vector of one was an allocation per prefix.
    producers: HashMap<IpNet, SmallVec<[ServiceKey; 1]>>,
    /// The names of `decision.routes`' peers, in its order, shared by every
    /// [`BgpAnnounce::peers`].
    peer_names: Vec<Arc<str>>,
    /// Each distinct [`BgpAnnounce::peers`] list once: Services usually go
    /// to the same peers, and a list of their own was an allocation each.
    peer_lists: SharedSet<[Arc<str>]>,
}

impl BgpState {
    pub fn decision(&self) -> &BgpDecision {
        &self.decision
    }

    pub fn into_decision(self) -> BgpDecision {
        self.decision
    }

    /// The decision for `services` from scratch.
    pub fn rebuild<'s>(
        &mut self,
        ctx: &BgpContext<'_>,
        services: impl IntoIterator<Item = &'s ServiceState>,
    ) -> BgpChanges {
        let own = ctx.nodes.get(ctx.node);
        *self = BgpState::default();
        self.decision.sessions = sessions::for_node(ctx.config, ctx.mode, own);
        self.decision.routes = self
            .decision
            .sessions
            .keys()
            .map(|name| (name.clone(), BTreeMap::new()))
            .collect();
        self.peer_names = self.decision.routes.keys().map(|name| Arc::from(name.as_str())).collect();
        let mut prefixes = BTreeSet::new();
        for svc in services {
            prefixes.extend(self.evaluate(ctx, &svc.key, Some(svc)));
        }
        self.route(ctx, &prefixes);
        let keys: Vec<ServiceKey> = self.produced.keys().cloned().collect();
        for key in keys {
            self.announce(&key);
        }
        BgpChanges {
            all: true,
            ..BgpChanges::default()
        }
    }

    /// The decision after the Services in `changed` changed: each key with
    /// its new state, `None` when it is gone. The configuration, this node
    /// and the sessions must be those of the last [`Self::rebuild`].
    pub fn update<'s>(
        &mut self,
        ctx: &BgpContext<'_>,
        changed: impl IntoIterator<Item = (&'s ServiceKey, Option<&'s ServiceState>)>,
    ) -> BgpChanges {
        let mut changes = BgpChanges::default();
        let mut prefixes = BTreeSet::new();
        let mut before: BTreeMap<ServiceKey, (Option<BgpAnnounce>, Option<WithdrawReason>)> =
            BTreeMap::new();
        for (key, svc) in changed {
            before.entry(key.clone()).or_insert_with(|| {
                (
                    self.decision.advertised.get(key).cloned(),
                    self.decision.withdrawn.get(key).cloned(),
                )
            });
            if let Some(old) = self.forget(key) {
                prefixes.extend(old.routes.into_iter().map(|(prefix, _)| prefix));
            }
            prefixes.extend(self.evaluate(ctx, key, svc));
        }
        changes.peers = self.route(ctx, &prefixes);
        // A Service's peers follow its prefixes' routes, which other
        // Services producing the same prefixes may have changed.
        let mut touched: BTreeSet<ServiceKey> = prefixes
            .iter()
            .flat_map(|p| self.producers.get(p).into_iter().flatten())
            .cloned()
            .collect();
        touched.extend(
            before
                .keys()
                .filter(|k| self.produced.contains_key(*k))
                .cloned(),
        );
        for key in touched {
            before
                .entry(key.clone())
                .or_insert_with(|| (self.decision.advertised.get(&key).cloned(), None));
            self.announce(&key);
        }
        for (key, (advertised, withdrawn)) in before {
            if self.decision.advertised.get(&key) != advertised.as_ref()
                || self.decision.withdrawn.get(&key) != withdrawn.as_ref()
            {
                changes.services.insert(key);
            }
        }
        changes
    }

    /// Drops what `key` produced; returns it.
    fn forget(&mut self, key: &ServiceKey) -> Option<Produced> {
        self.decision.withdrawn.remove(key);
        self.decision.advertised.remove(key);
        let old = self.produced.remove(key)?;
        for (prefix, _) in &old.routes {
            if let Some(list) = self.producers.get_mut(prefix) {
                list.retain(|k| k != key);
                if list.is_empty() {
                    self.producers.remove(prefix);
                }
            }
        }
        Some(old)
    }

    /// §4.2–4.3 for one Service: records what it produces or why it is
    /// withdrawn; returns its prefixes.
    fn evaluate(
        &mut self,
        ctx: &BgpContext<'_>,
        key: &ServiceKey,
        svc: Option<&ServiceState>,
    ) -> Vec<IpNet> {
        let Some(svc) = svc else { return Vec::new() };
        let own = ctx.nodes.get(ctx.node);
        let outcome = service::addresses(ctx.config, svc).and_then(|(pool, ips)| {
            let ads = eligible::applicable(ctx, own, svc, pool)?;
            // The pool came from `config.pools`: its index is there.
            let pool_index = ctx
                .config
                .pools
                .iter()
                .position(|p| p.name == pool.name)
                .unwrap_or_default();
            Ok((pool_index, ips, ads))
        });
        match outcome {
            Ok((pool, ips, ads)) => {
                let routes: SmallVec<[(IpNet, AdRef); 1]> = ips
                    .iter()
                    .flat_map(|ip| {
                        ads.iter().map(move |(index, ad)| {
                            let at = AdRef {
                                pool: small(pool),
                                ad: small(*index),
                            };
                            (aggregate(*ip, ad), at)
                        })
                    })
                    .collect();
                let prefixes: Vec<IpNet> = routes.iter().map(|(prefix, _)| *prefix).collect();
                for prefix in &prefixes {
                    let list = self.producers.entry(*prefix).or_default();
                    if let Err(at) = list.binary_search(key) {
                        list.insert(at, key.clone());
                    }
                }
                self.produced.insert(key.clone(), Produced { ips: ips.into(), routes });
                prefixes
            }
            Err(reason) => {
                self.decision.withdrawn.insert(key.clone(), reason);
                Vec::new()
            }
        }
    }

    /// §4.4 for `prefixes` toward every session; returns the peers whose
    /// routes changed, with those prefixes.
    fn route(&mut self, ctx: &BgpContext<'_>, prefixes: &BTreeSet<IpNet>) -> BTreeMap<String, BTreeSet<IpNet>> {
        let mut changed: BTreeMap<String, BTreeSet<IpNet>> = BTreeMap::new();
        if prefixes.is_empty() {
            return changed;
        }
        self.decision
            .refused
            .retain(|r| !prefixes.contains(&r.prefix));
        for (name, session) in &self.decision.sessions {
            let Some(routes) = self.decision.routes.get_mut(name) else {
                continue;
            };
            for prefix in prefixes {
                let ads = self
                    .producers
                    .get(prefix)
                    .into_iter()
                    .flatten()
                    .filter_map(|key| self.produced.get(key))
                    .flat_map(|p| {
                        p.routes
                            .iter()
                            .filter(|(p, _)| p == prefix)
                            .filter_map(|(_, at)| at.resolve(ctx.config))
                    });
                let wanted = match toward(ctx.mode, name, session, prefix, ads) {
                    Toward::Route(route) => Some(route),
                    Toward::Nothing => None,
                    Toward::Refused(communities) => {
                        self.decision.refused.insert(RefusedRoute {
                            peer: name.clone(),
                            prefix: *prefix,
                            communities,
                        });
                        None
                    }
                };
                let differs = match &wanted {
                    Some(route) => routes.get(prefix) != Some(route),
                    None => routes.contains_key(prefix),
                };
                if differs {
                    match wanted {
                        Some(route) => routes.insert(*prefix, route),
                        None => routes.remove(prefix),
                    };
                    changed.entry(name.clone()).or_default().insert(*prefix);
                }
            }
        }
        changed
    }

    /// `advertised` for an advertised Service: its prefixes and the peers
    /// receiving at least one of them.
    fn announce(&mut self, key: &ServiceKey) {
        let Some((shared, p)) = self.produced.get_key_value(key) else {
            return;
        };
        let mut prefixes: Vec<IpNet> = p.routes.iter().map(|(prefix, _)| *prefix).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        prefixes.shrink_to_fit();
        let peers: Vec<Arc<str>> = self
            .decision
            .routes
            .values()
            .zip(&self.peer_names)
            .filter(|(routes, _)| prefixes.iter().any(|prefix| routes.contains_key(prefix)))
            .map(|(_, name)| name.clone())
            .collect();
        let peers = self.peer_lists.share(&peers);
        self.decision.advertised.insert(
            shared.clone(),
            BgpAnnounce {
                ips: p.ips.clone(),
                prefixes,
                peers,
            },
        );
    }
}

/// Indexes of pools and advertisements: a configuration has far fewer than
/// 2^32 of either.
fn small(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}
