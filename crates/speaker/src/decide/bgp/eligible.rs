//! speaker.md §4.2: whether this node advertises a Service, and through
//! which of its pool's advertisements.

use std::collections::BTreeSet;

use ferrolb_allocator::PoolDef;
use ferrolb_config::assemble::{BgpAdvertisement, NodeSet, advertisements_compatible};

use super::super::Endpoint;
use super::super::layer2::EXCLUDE_LB_LABEL;
use super::{BgpContext, NodeState, ServiceState, WithdrawReason};

/// Whether an object with these node selectors applies to this node. A node
/// not seen yet has no labels, so only selector-less objects apply to it.
pub(super) fn selects(nodes: &NodeSet, own: Option<&NodeState>) -> bool {
    match own {
        Some(state) => nodes.matches(&state.labels),
        None => nodes.selectors.is_empty(),
    }
}

/// The advertisements through which this node advertises `svc`, as indexes
/// among the pool's BGP advertisements (in attachment order) with the
/// advertisements themselves, or MetalLB's reason for not advertising it.
pub(super) fn applicable<'c>(
    ctx: &BgpContext<'c>,
    own: Option<&NodeState>,
    svc: &ServiceState,
    pool: &'c PoolDef,
) -> Result<Vec<(usize, &'c BgpAdvertisement)>, WithdrawReason> {
    let all: &'c [BgpAdvertisement] =
        ctx.config.pool_advertisements.get(&pool.name).map(|a| a.bgp.as_slice()).unwrap_or(&[]);
    let selecting: Vec<(usize, &'c BgpAdvertisement)> = all.iter().enumerate().filter(|(_, ad)| selects(&ad.nodes, own)).collect();
    if selecting.is_empty() {
        return Err(WithdrawReason::NotOwner { owner: None });
    }
    let ads: Vec<(usize, &'c BgpAdvertisement)> = selecting
        .into_iter()
        .filter(|(_, ad)| ad.service_selectors.is_empty() || ad.service_selectors.iter().any(|s| s.matches(&svc.labels)))
        .collect();
    if ads.is_empty() {
        return Err(WithdrawReason::NoMatchingAdvertisement);
    }
    let has_v4 = pool.cidrs.iter().any(|n| matches!(n, ipnet::IpNet::V4(_)));
    let has_v6 = pool.cidrs.iter().any(|n| matches!(n, ipnet::IpNet::V6(_)));
    for (i, (_, a)) in ads.iter().enumerate() {
        if ads[i + 1..].iter().any(|(_, b)| conflict(a, b, has_v4, has_v6, ctx.node)) {
            return Err(WithdrawReason::ConflictingAdvertisements);
        }
    }
    if let Some(state) = own {
        if state.network_unavailable {
            return Err(WithdrawReason::NodeNetworkUnavailable);
        }
        if !ctx.ignore_exclude_lb && state.labels.contains_key(EXCLUDE_LB_LABEL) {
            return Err(WithdrawReason::NodeLabeledExcludeBalancers);
        }
    }
    let here = |e: &Endpoint| e.node.as_deref() == Some(ctx.node);
    if svc.local_traffic_policy && !svc.endpoints.iter().any(|e| e.serving && here(e)) {
        return Err(WithdrawReason::NoLocalEndpoints);
    }
    if !svc.endpoints.iter().any(|e| e.serving) {
        return Err(WithdrawReason::NoEndpoints);
    }
    Ok(ads)
}

/// crds.md B10 between two advertisements that both apply to a Service on
/// this node. Both select this node, so their node sets are never disjoint
/// here, whatever the sets computed when the configuration was built say:
/// the test runs on copies whose node set is this node alone.
fn conflict(a: &BgpAdvertisement, b: &BgpAdvertisement, has_v4: bool, has_v6: bool, node: &str) -> bool {
    if a.local_pref == b.local_pref {
        return false;
    }
    let here = NodeSet { selectors: Vec::new(), nodes: BTreeSet::from([node.to_string()]) };
    let a = BgpAdvertisement { nodes: here.clone(), ..a.clone() };
    let b = BgpAdvertisement { nodes: here, ..b.clone() };
    !advertisements_compatible(&a, &b, has_v4, has_v6)
}
