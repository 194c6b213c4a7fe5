//! Layer 2 eligibility and election (speaker.md §3.1–3.3).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::rc::Rc;

use ferrolb_allocator::PoolDef;
use ferrolb_config::assemble::L2Advertisement;

use super::election::{Ranked, winner};
use super::{DecideInput, InterfaceScope, L2Announce, MemberNetworks, NodeState, ServiceState, WithdrawReason};

/// Nodes carrying this label never announce (unless `--ignore-exclude-lb`).
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// A node that may announce for a set of advertisements, before the
/// per-Service filters (traffic policy, networks).
#[derive(Debug, Clone)]
pub(super) struct Candidate<'a> {
    node: &'a str,
    score: i64,
    /// Where this node would answer (§3.3): the union over the applicable
    /// advertisements that select it.
    scope: InterfaceScope,
    networks: Option<&'a MemberNetworks>,
}

/// Candidates depend only on the applicable advertisements, which Services of
/// one pool mostly share: computing them once per distinct set keeps a full
/// evaluation at O(Services + Nodes × advertisement sets) rather than
/// O(Services × Nodes) selector matches.
pub(super) struct CandidateCache<'a> {
    input: DecideInput<'a>,
    by_ads: HashMap<(&'a str, Vec<usize>), Rc<Vec<Candidate<'a>>>>,
}

impl<'a> CandidateCache<'a> {
    pub(super) fn new(input: &DecideInput<'a>) -> Self {
        CandidateCache { input: *input, by_ads: HashMap::new() }
    }

    fn candidates(&mut self, pool: &'a str, ads: &[&'a L2Advertisement], ad_ids: Vec<usize>) -> Rc<Vec<Candidate<'a>>> {
        let input = self.input;
        self.by_ads
            .entry((pool, ad_ids))
            .or_insert_with(|| Rc::new(compute_candidates(&input, ads)))
            .clone()
    }
}

fn usable_speakers<'a>(input: &DecideInput<'a>) -> Vec<(&'a str, Option<&'a MemberNetworks>)> {
    match input.live {
        Some(live) => live.iter().map(|(name, nets)| (name.as_str(), Some(nets))).collect(),
        None => input.nodes.keys().map(|name| (name.as_str(), None)).collect(),
    }
}

fn compute_candidates<'a>(input: &DecideInput<'a>, ads: &[&'a L2Advertisement]) -> Vec<Candidate<'a>> {
    let mut out = Vec::new();
    for (node, networks) in usable_speakers(input) {
        // A live speaker without a Node object has no labels to select on.
        let Some(state) = input.nodes.get(node) else { continue };
        if state.network_unavailable || (!input.ignore_exclude_lb && state.labels.contains_key(EXCLUDE_LB_LABEL)) {
            continue;
        }
        let selecting: Vec<&L2Advertisement> = ads.iter().copied().filter(|ad| ad.nodes.matches(&state.labels)).collect();
        if selecting.is_empty() {
            continue;
        }
        let score = ads
            .iter()
            .map(|ad| i64::from(ad.preferred_node_scores.get(node).copied().unwrap_or(0)))
            .sum();
        out.push(Candidate { node, score, scope: scope_of(&selecting), networks });
    }
    out
}

fn scope_of(selecting: &[&L2Advertisement]) -> InterfaceScope {
    if selecting.iter().any(|ad| ad.all_interfaces) {
        return InterfaceScope::All;
    }
    InterfaceScope::Only(selecting.iter().flat_map(|ad| ad.interfaces.iter().cloned()).collect::<BTreeSet<_>>())
}

/// §3.2 for one Service whose addresses are in `pool`.
pub(super) fn evaluate<'a>(
    input: &DecideInput<'a>,
    cache: &mut CandidateCache<'a>,
    svc: &ServiceState,
    pool: &'a PoolDef,
    ips: Vec<IpAddr>,
) -> Result<L2Announce, WithdrawReason> {
    if !svc.endpoints.iter().any(|e| e.serving) {
        return Err(WithdrawReason::NotOwner { owner: None });
    }
    let all_ads: &'a [L2Advertisement] =
        input.config.pool_advertisements.get(&pool.name).map(|a| a.l2.as_slice()).unwrap_or(&[]);
    let (ad_ids, ads): (Vec<usize>, Vec<&'a L2Advertisement>) = all_ads
        .iter()
        .enumerate()
        .filter(|(_, ad)| ad.service_selectors.is_empty() || ad.service_selectors.iter().any(|s| s.matches(&svc.labels)))
        .unzip();
    if svc.has_sharing_key && ads.iter().any(|ad| !ad.service_selectors.is_empty()) {
        return Err(WithdrawReason::SharedIpWithServiceSelector);
    }
    let empty = NodeState::default();
    let own = input.nodes.get(input.node).unwrap_or(&empty);
    if !ads.iter().any(|ad| ad.nodes.matches(&own.labels)) {
        return Err(WithdrawReason::NoMatchingAdvertisement);
    }

    let all = cache.candidates(&pool.name, &ads, ad_ids);
    let local: Vec<&Candidate<'a>> = all
        .iter()
        .filter(|c| !svc.local_traffic_policy || svc.endpoints.iter().any(|e| e.serving && e.node.as_deref() == Some(c.node)))
        .collect();
    let able = able_to_answer(&local, &ips);
    let ranked: Vec<Ranked<'a>> = able.iter().map(|c| Ranked { node: c.node, score: c.score }).collect();
    let sticky = input.sticky.get(&svc.key).map(String::as_str);
    let Some(owner) = ips.first().and_then(|first| winner(&ranked, first, sticky)) else {
        return Err(WithdrawReason::NotOwner { owner: None });
    };
    if owner != input.node {
        return Err(WithdrawReason::NotOwner { owner: Some(owner.to_string()) });
    }
    let scope = able.iter().find(|c| c.node == owner).map(|c| c.scope.clone()).unwrap_or(InterfaceScope::All);
    Ok(L2Announce { ips: ips.into_iter().map(|ip| (ip, scope.clone())).collect() })
}

/// ferrolb's link-awareness: prefer candidates that have, on an interface
/// they may answer on, a network containing every address; failing that,
/// candidates with at least one such interface up with carrier; failing
/// that, every candidate. A candidate that did not publish its networks
/// counts as able.
fn able_to_answer<'c, 'a>(candidates: &[&'c Candidate<'a>], ips: &[IpAddr]) -> Vec<&'c Candidate<'a>> {
    let on_subnet: Vec<&Candidate> = candidates
        .iter()
        .copied()
        .filter(|c| match interfaces_of(c) {
            None => true,
            Some(ifaces) => ips.iter().all(|ip| {
                ifaces.iter().any(|(name, nets)| allowed(&c.scope, name) && nets.iter().any(|n| n.contains(ip)))
            }),
        })
        .collect();
    if !on_subnet.is_empty() {
        return on_subnet;
    }
    let with_link: Vec<&Candidate> = candidates
        .iter()
        .copied()
        .filter(|c| match interfaces_of(c) {
            None => true,
            Some(ifaces) => ifaces.iter().any(|(name, _)| allowed(&c.scope, name)),
        })
        .collect();
    if !with_link.is_empty() {
        return with_link;
    }
    // Nobody can answer (every allowed interface is down or missing): elect
    // as MetalLB would, so the owner reports `announceFailed` and the
    // operator sees why nothing answers.
    candidates.to_vec()
}

fn interfaces_of<'c>(c: &'c Candidate<'_>) -> Option<&'c Vec<(String, Vec<ipnet::IpNet>)>> {
    c.networks.and_then(|n| n.interfaces.as_ref())
}

fn allowed(scope: &InterfaceScope, name: &str) -> bool {
    match scope {
        InterfaceScope::All => true,
        InterfaceScope::Only(names) => names.contains(name),
    }
}
