//! BGPAdvertisement (crds.md §4, B1–B11) and its attachment to pools.

use super::communities;
use super::l2::selected_pools;
use super::nodes::{NodeIndex, convert_all};
use super::pools::WorkPool;
use super::types::{BgpAdvertisement as Bgp, PoolAdvertisements};
use super::{Errors, by_name, name_of};
use crate::community::{Community, CommunityError};
use crate::error::kinds;
use crate::selector::{self, Selector};
use ferrolb_api::v1beta1::BGPAdvertisement;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashSet};

pub(crate) fn attach(
    advs: &[BGPAdvertisement],
    pools: &[WorkPool],
    aliases: &BTreeMap<String, Community>,
    nodes: &NodeIndex,
    out: &mut BTreeMap<String, PoolAdvertisements>,
    errs: &mut Errors,
) {
    let sorted = by_name(advs, |a| &a.metadata);
    check_identical(&sorted, errs);
    let mut names = HashSet::new();
    for adv in sorted {
        let name = name_of(&adv.metadata);
        if !names.insert(name) {
            // Completely identical copies were already reported by B11.
            continue;
        }
        let Some((parsed, pool_selectors)) = parse(adv, aliases, nodes, errs) else { continue };
        for pool in selected_pools(&adv.spec.ip_address_pools, &pool_selectors, pools) {
            if let Err(msg) = check_aggregation(&parsed, pool) {
                errs.push(kinds::BGP_ADV, name, "spec.aggregationLength", msg);
                continue;
            }
            let Some(entry) = out.get_mut(&pool.def.name) else { continue };
            if parsed.service_selectors.is_empty() {
                let conflict = entry
                    .bgp
                    .iter()
                    .filter(|a| a.service_selectors.is_empty())
                    .find(|a| !compatible(a, &parsed, pool.has_v4(), pool.has_v6(), !nodes.is_empty()));
                if let Some(other) = conflict {
                    errs.push(
                        kinds::BGP_ADV,
                        name,
                        "spec.localPref",
                        format!(
                            "invalid local preference {}: local preferernce {} was already set for the same type of BGP update. Check existing BGP advertisements with common pools and aggregation lengths (conflicts with BGPAdvertisement {:?} on pool {:?})",
                            parsed.local_pref, other.local_pref, other.name, pool.def.name
                        ),
                    );
                    continue;
                }
            }
            entry.bgp.push(parsed.clone());
        }
    }
}

/// B11: two objects identical in every field, metadata included (offline input only).
/// Other same-name pairs are reported as duplicates.
fn check_identical(sorted: &[&BGPAdvertisement], errs: &mut Errors) {
    for (j, b) in sorted.iter().enumerate().skip(1) {
        let name = name_of(&b.metadata);
        // Same-name objects sit next to each other after sorting; look back over them.
        let same_name = sorted[..j].iter().enumerate().rev().take_while(|(_, a)| name_of(&a.metadata) == name);
        let mut reported = false;
        for (i, a) in same_name {
            if *a == *b {
                errs.push(
                    kinds::BGP_ADV,
                    name,
                    "",
                    format!("duplicate definition of bgpadvertisements. advertisement {i} and {j} are equal"),
                );
                reported = true;
                break;
            }
        }
        if !reported && j > 0 && name_of(&sorted[j - 1].metadata) == name {
            errs.push(kinds::BGP_ADV, name, "metadata.name", format!("duplicate definition of BGPAdvertisement {name:?}"));
        }
    }
}

/// B10 compatibility of two advertisements without service selectors on one pool.
/// Public because the speaker applies the same test per Service (speaker.md §4.2).
pub fn advertisements_compatible(a: &Bgp, b: &Bgp, pool_has_v4: bool, pool_has_v6: bool) -> bool {
    compatible(a, b, pool_has_v4, pool_has_v6, true)
}

/// Without Node objects (offline input) node sets say nothing, so, as for the FRR
/// peer checks, every pair is assumed to share a node.
fn compatible(a: &Bgp, b: &Bgp, pool_has_v4: bool, pool_has_v6: bool, nodes_known: bool) -> bool {
    if a.local_pref == b.local_pref {
        return true;
    }
    let v4_differs = a.aggregation_length != b.aggregation_length;
    let v6_differs = a.aggregation_length_v6 != b.aggregation_length_v6;
    let aggregation_differs = match (pool_has_v4, pool_has_v6) {
        (true, false) => v4_differs,
        (false, true) => v6_differs,
        (true, true) => v4_differs && v6_differs,
        (false, false) => false,
    };
    if aggregation_differs {
        return true;
    }
    if !a.peers.is_empty() && !b.peers.is_empty() && !a.peers.iter().any(|p| b.peers.contains(p)) {
        return true;
    }
    nodes_known && a.nodes.nodes.is_disjoint(&b.nodes.nodes)
}

/// B9: per `addresses` entry, the aggregation length of its family must not be shorter
/// than the entry's shortest CIDR prefix.
fn check_aggregation(adv: &Bgp, pool: &WorkPool) -> Result<(), String> {
    for (entry, nets) in &pool.entries {
        let Some(first) = nets.first() else { continue };
        let length = match first {
            IpNet::V4(_) => adv.aggregation_length,
            IpNet::V6(_) => adv.aggregation_length_v6,
        };
        let lowest = nets.iter().map(|n| i32::from(n.prefix_len())).min().unwrap_or(0);
        if length < lowest {
            return Err(format!(
                "invalid aggregation length {length}: prefix {lowest} in this pool is more specific than the aggregation length for addresses {entry} (pool {:?})",
                pool.def.name
            ));
        }
    }
    Ok(())
}

fn parse(
    adv: &BGPAdvertisement,
    aliases: &BTreeMap<String, Community>,
    nodes: &NodeIndex,
    errs: &mut Errors,
) -> Option<(Bgp, Vec<Selector>)> {
    let name = name_of(&adv.metadata);
    let spec = &adv.spec;
    let before = errs.0.len();
    for (field, list, label) in [
        ("ipAddressPools", &spec.ip_address_pools, "ipAddressPools"),
        ("communities", &spec.communities, "community"),
        ("peers", &spec.peers, "peers"),
    ] {
        if let Err(msg) = selector::check_duplicate_names(label, list) {
            errs.push(kinds::BGP_ADV, name, format!("spec.{field}"), msg);
        }
    }
    for (field, sels) in [
        ("ipAddressPoolSelectors", &spec.ip_address_pool_selectors),
        ("nodeSelectors", &spec.node_selectors),
        ("serviceSelectors", &spec.service_selectors),
    ] {
        if let Err(msg) = selector::check_duplicates(field, sels) {
            errs.push(kinds::BGP_ADV, name, format!("spec.{field}"), msg);
        }
    }
    if !spec.service_selectors.is_empty() {
        if spec.aggregation_length != 32 {
            errs.push(
                kinds::BGP_ADV,
                name,
                "spec.aggregationLength",
                format!("serviceSelectors and aggregationLength are mutually exclusive, both cannot be set in {name}"),
            );
        }
        if spec.aggregation_length_v6 != 128 {
            errs.push(
                kinds::BGP_ADV,
                name,
                "spec.aggregationLengthV6",
                format!("serviceSelectors and aggregationLengthV6 are mutually exclusive, both cannot be set in {name}"),
            );
        }
    }
    if spec.aggregation_length > 32 {
        errs.push(kinds::BGP_ADV, name, "spec.aggregationLength", format!("invalid aggregation length {} for IPv4", spec.aggregation_length));
    }
    if spec.aggregation_length_v6 > 128 {
        errs.push(kinds::BGP_ADV, name, "spec.aggregationLengthV6", format!("invalid aggregation length {} for IPv6", spec.aggregation_length_v6));
    }
    let mut communities = BTreeSet::new();
    for (i, item) in spec.communities.iter().enumerate() {
        match communities::resolve(item, aliases) {
            Ok(c) => {
                communities.insert(c);
            }
            Err(e) => {
                let detail = match &e {
                    CommunityError::Format(_) => format!("{e} (not a community and no Community alias of that name)"),
                    CommunityError::Value(_) => e.to_string(),
                };
                errs.push(
                    kinds::BGP_ADV,
                    name,
                    format!("spec.communities[{i}]"),
                    format!("invalid community {item:?} in BGP advertisement: {detail}"),
                );
            }
        }
    }
    let pool_selectors = convert_all(&spec.ip_address_pool_selectors).map_err(|(i, e)| {
        errs.push(kinds::BGP_ADV, name, format!("spec.ipAddressPoolSelectors[{i}]"), format!("invalid label selector: {e}"))
    });
    let node_selectors = convert_all(&spec.node_selectors).map_err(|(i, e)| {
        errs.push(kinds::BGP_ADV, name, format!("spec.nodeSelectors[{i}]"), format!("failed to parse node selector for {name}: {e}"))
    });
    let service_selectors = convert_all(&spec.service_selectors).map_err(|(i, e)| {
        errs.push(kinds::BGP_ADV, name, format!("spec.serviceSelectors[{i}]"), format!("failed to parse service selector for {name}: {e}"))
    });
    let (Ok(pool_selectors), Ok(node_selectors), Ok(service_selectors)) = (pool_selectors, node_selectors, service_selectors)
    else {
        return None;
    };
    if errs.0.len() != before {
        return None;
    }
    Some((
        Bgp {
            name: name.to_string(),
            aggregation_length: spec.aggregation_length,
            aggregation_length_v6: spec.aggregation_length_v6,
            local_pref: spec.local_pref,
            communities,
            nodes: nodes.node_set(node_selectors),
            peers: spec.peers.clone(),
            service_selectors,
        },
        pool_selectors,
    ))
}
