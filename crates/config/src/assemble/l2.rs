//! L2Advertisement (crds.md §3, L1–L6) and its attachment to pools.

use super::nodes::{NodeIndex, convert_all};
use super::pools::WorkPool;
use super::types::{L2Advertisement as L2, PoolAdvertisements};
use super::{Errors, by_name, name_of};
use crate::error::kinds;
use crate::selector::{self, Selector};
use ferrolb_api::v1beta1::L2Advertisement;
use std::collections::{BTreeMap, HashSet};

/// Parses every L2Advertisement and attaches it to its pools; returns one entry per pool.
pub(crate) fn attach(
    advs: &[L2Advertisement],
    pools: &[WorkPool],
    nodes: &NodeIndex,
    errs: &mut Errors,
) -> BTreeMap<String, PoolAdvertisements> {
    let mut out: BTreeMap<String, PoolAdvertisements> =
        pools.iter().map(|p| (p.def.name.clone(), PoolAdvertisements::default())).collect();
    let mut names = HashSet::new();
    for adv in by_name(advs, |a| &a.metadata) {
        let name = name_of(&adv.metadata);
        if !names.insert(name) {
            errs.push(kinds::L2_ADV, name, "metadata.name", format!("duplicate definition of L2Advertisement {name:?}"));
            continue;
        }
        let Some((parsed, pool_selectors)) = parse(adv, nodes, errs) else { continue };
        for pool in selected_pools(&adv.spec.ip_address_pools, &pool_selectors, pools) {
            if let Some(entry) = out.get_mut(&pool.def.name) {
                add_deduplicated(&mut entry.l2, parsed.clone());
            }
        }
    }
    out
}

/// Pools an advertisement applies to: all when it names and selects none, else the
/// union of named pools (unknown names ignored) and label-selected pools, each once.
pub(crate) fn selected_pools<'p>(names: &[String], selectors: &[Selector], pools: &'p [WorkPool]) -> Vec<&'p WorkPool> {
    if names.is_empty() && selectors.is_empty() {
        return pools.iter().collect();
    }
    pools
        .iter()
        .filter(|p| names.contains(&p.def.name) || selector::any_matches(selectors, &p.labels))
        .collect()
}

/// Identical-in-effect copies without preferences collapse into one.
fn add_deduplicated(list: &mut Vec<L2>, adv: L2) {
    let same_effect = |a: &L2| {
        !a.has_preferences
            && a.nodes.nodes == adv.nodes.nodes
            && a.all_interfaces == adv.all_interfaces
            && sorted(&a.interfaces) == sorted(&adv.interfaces)
            && a.service_selectors == adv.service_selectors
    };
    if adv.has_preferences || !list.iter().any(same_effect) {
        list.push(adv);
    }
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut s: Vec<&String> = v.iter().collect();
    s.sort();
    s.dedup();
    s
}

/// The parsed advertisement and its converted pool selectors; `None` after errors.
fn parse(adv: &L2Advertisement, nodes: &NodeIndex, errs: &mut Errors) -> Option<(L2, Vec<Selector>)> {
    let name = name_of(&adv.metadata);
    let spec = &adv.spec;
    let before = errs.0.len();
    if let Err(msg) = selector::check_duplicate_names("ipAddressPools", &spec.ip_address_pools) {
        errs.push(kinds::L2_ADV, name, "spec.ipAddressPools", msg);
    }
    for (field, sels) in [
        ("ipAddressPoolSelectors", &spec.ip_address_pool_selectors),
        ("nodeSelectors", &spec.node_selectors),
        ("serviceSelectors", &spec.service_selectors),
    ] {
        if let Err(msg) = selector::check_duplicates(field, sels) {
            errs.push(kinds::L2_ADV, name, format!("spec.{field}"), msg);
        }
    }
    let pool_selectors = convert_all(&spec.ip_address_pool_selectors).map_err(|(i, e)| {
        errs.push(kinds::L2_ADV, name, format!("spec.ipAddressPoolSelectors[{i}]"), format!("invalid label selector: {e}"))
    });
    let node_selectors = convert_all(&spec.node_selectors).map_err(|(i, e)| {
        errs.push(kinds::L2_ADV, name, format!("spec.nodeSelectors[{i}]"), format!("failed to parse node selector for {name}: {e}"))
    });
    let service_selectors = convert_all(&spec.service_selectors).map_err(|(i, e)| {
        errs.push(kinds::L2_ADV, name, format!("spec.serviceSelectors[{i}]"), format!("failed to parse service selector for {name}: {e}"))
    });
    let mut preferences = Vec::new();
    for (i, p) in spec.preferred_node_selectors.iter().enumerate() {
        if !(1..=100).contains(&p.weight) {
            errs.push(
                kinds::L2_ADV,
                name,
                format!("spec.preferredNodeSelectors[{i}].weight"),
                format!("Invalid value: {}: spec.preferredNodeSelectors[{i}].weight in body should be in the range 1-100", p.weight),
            );
        }
        match selector::convert(&p.preference) {
            Ok(s) => preferences.push((p.weight, s)),
            Err(e) => errs.push(
                kinds::L2_ADV,
                name,
                format!("spec.preferredNodeSelectors[{i}].preference"),
                format!("failed to parse preferred node selectors for {name}: {e}"),
            ),
        }
    }
    let (Ok(pool_selectors), Ok(node_selectors), Ok(service_selectors)) = (pool_selectors, node_selectors, service_selectors)
    else {
        return None;
    };
    if errs.0.len() != before {
        return None;
    }
    let node_set = nodes.node_set(node_selectors);
    let mut scores = BTreeMap::new();
    for (node, labels) in nodes.labels() {
        if !node_set.nodes.contains(node) {
            continue;
        }
        let score = preferences.iter().filter(|(_, s)| s.matches(labels)).fold(0i32, |acc, (w, _)| acc.saturating_add(*w));
        if score > 0 {
            scores.insert(node.to_string(), score);
        }
    }
    Some((
        L2 {
            name: name.to_string(),
            nodes: node_set,
            all_interfaces: spec.interfaces.is_empty(),
            interfaces: spec.interfaces.clone(),
            service_selectors,
            preferred_node_scores: scores,
            has_preferences: !preferences.is_empty(),
        },
        pool_selectors,
    ))
}
