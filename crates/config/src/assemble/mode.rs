//! BGP-implementation-specific checks on the raw objects (crds.md §10.3).

use super::nodes::{NodeIndex, convert_all};
use super::peers::parse_duration;
use super::{BgpMode, ConfigInput, Errors, by_name, name_of};
use crate::cidr;
use crate::community::Community;
use crate::error::kinds;
use crate::selector;
use ferrolb_api::v1beta2::BGPPeer;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub(crate) fn check(input: &ConfigInput<'_>, nodes: &NodeIndex, errs: &mut Errors) {
    match input.mode {
        BgpMode::Native => native(input, errs),
        BgpMode::Frr | BgpMode::FrrK8s => frr(input, nodes, errs),
    }
}

fn native(input: &ConfigInput<'_>, errs: &mut Errors) {
    for p in by_name(input.bgp_peers, |p| &p.metadata) {
        let name = name_of(&p.metadata);
        let s = &p.spec;
        let addr = &s.peer_address;
        let keepalive_set = matches!(parse_duration(s.keepalive_time.as_deref()), Ok(Some(k)) if k != 0);
        let rules: [(bool, &str, &str); 10] = [
            (!s.bfd_profile.is_empty(), "spec.bfdProfile", "has bfd-profile set on native bgp mode"),
            (keepalive_set, "spec.keepaliveTime", "has keepalive-time set on native bgp mode"),
            (!s.vrf.is_empty(), "spec.vrf", "has vrf set on native bgp mode"),
            (s.connect_time.is_some(), "spec.connectTime", "has connect time set on native bgp mode"),
            (s.enable_graceful_restart, "spec.enableGracefulRestart", "has EnableGracefulRestart flag set on native bgp mode"),
            (s.disable_mp, "spec.disableMP", "has disable MP flag set on native bgp mode"),
            (s.dual_stack_address_family, "spec.dualStackAddressFamily", "has dualstackaddressfamily flag set on native bgp mode"),
            (s.dynamic_asn.is_some(), "spec.dynamicASN", "has dynamicASN set on native bgp mode"),
            (!s.interface.is_empty(), "spec.interface", "has interface set on native bgp mode"),
            (s.local_asn != 0, "spec.localASN", "has localASN set on native bgp mode"),
        ];
        for (violated, field, text) in rules {
            if violated {
                errs.push(kinds::PEER, name, field, format!("peer {addr} {text}"));
            }
        }
    }
    for b in by_name(input.bfd_profiles, |b| &b.metadata) {
        errs.push(kinds::BFD, name_of(&b.metadata), "", "bfd profiles section set");
    }
    native_ipv6_pools(input, errs);
    native_communities(input, errs);
}

/// Pools selected by any BGPAdvertisement must be IPv4-only in native mode.
fn native_ipv6_pools(input: &ConfigInput<'_>, errs: &mut Errors) {
    let mut selected: BTreeSet<&str> = BTreeSet::new();
    let mut all = false;
    let mut selectors = Vec::new();
    for adv in input.bgp_advertisements {
        let spec = &adv.spec;
        if spec.ip_address_pools.is_empty() && spec.ip_address_pool_selectors.is_empty() {
            all = true;
        }
        selected.extend(spec.ip_address_pools.iter().map(String::as_str));
        // Invalid selectors are reported by the advertisement's own checks.
        if let Ok(sels) = convert_all(&spec.ip_address_pool_selectors) {
            selectors.extend(sels);
        }
    }
    for pool in by_name(input.pools, |p| &p.metadata) {
        let name = name_of(&pool.metadata);
        let labels = pool.metadata.labels.clone().unwrap_or_default();
        if !(all || selected.contains(name) || selector::any_matches(&selectors, &labels)) {
            continue;
        }
        let v6 = pool
            .spec
            .addresses
            .iter()
            .filter_map(|a| cidr::parse_entry(a).ok())
            .flatten()
            .find(|n| matches!(n, IpNet::V6(_)));
        if let Some(net) = v6 {
            errs.push(
                kinds::POOL,
                name,
                "spec.addresses",
                format!("pool {name:?} has ipv6 CIDR {net}, native bgp mode does not support ipv6"),
            );
        }
    }
}

fn native_communities(input: &ConfigInput<'_>, errs: &mut Errors) {
    let mut aliases: BTreeMap<&str, ()> = BTreeMap::new();
    for c in by_name(input.communities, |c| &c.metadata) {
        let name = name_of(&c.metadata);
        for (i, alias) in c.spec.communities.iter().enumerate() {
            aliases.insert(alias.name.as_str(), ());
            if Community::parse(&alias.value).is_ok_and(|v| v.is_large()) {
                errs.push(
                    kinds::COMMUNITY,
                    name,
                    format!("spec.communities[{i}].value"),
                    format!(
                        "native BGP mode only supports legacy communities, BGP community CR {name:?} has non legacy community {:?}",
                        alias.name
                    ),
                );
            }
        }
    }
    for adv in by_name(input.bgp_advertisements, |a| &a.metadata) {
        let name = name_of(&adv.metadata);
        for (i, item) in adv.spec.communities.iter().enumerate() {
            if !aliases.contains_key(item.as_str()) && Community::parse(item).is_ok_and(|v| v.is_large()) {
                errs.push(
                    kinds::BGP_ADV,
                    name,
                    format!("spec.communities[{i}]"),
                    format!(
                        "native BGP mode only supports legacy communities, BGP advertisement {name:?} has non legacy community {item:?}"
                    ),
                );
            }
        }
    }
}

/// Peers that may run on the same node must agree (FRR and FRR-K8s modes).
fn frr(input: &ConfigInput<'_>, nodes: &NodeIndex, errs: &mut Errors) {
    let peers = by_name(input.bgp_peers, |p| &p.metadata);
    // Node name -> peers on it; without Node objects every pair is assumed to share one.
    let mut groups: BTreeMap<Option<&str>, Vec<&BGPPeer>> = BTreeMap::new();
    for p in &peers {
        if nodes.is_empty() {
            groups.entry(None).or_default().push(p);
            continue;
        }
        // Invalid selectors are reported by the peer's own checks.
        let Ok(sels) = convert_all(&p.spec.node_selectors) else { continue };
        for (node, labels) in nodes.labels() {
            if sels.is_empty() || selector::any_matches(&sels, labels) {
                groups.entry(Some(node)).or_default().push(p);
            }
        }
    }
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for group in groups.values() {
        let mut first_rid: Option<&BGPPeer> = None;
        let mut ids: HashMap<String, &BGPPeer> = HashMap::new();
        let mut asn_per_vrf: HashMap<&str, &BGPPeer> = HashMap::new();
        for p in group {
            let name = name_of(&p.metadata);
            let mut report = |field: &str, msg: String| {
                if reported.insert((name.to_string(), msg.clone())) {
                    errs.push(kinds::PEER, name, field, msg);
                }
            };
            match first_rid {
                None => first_rid = Some(p),
                Some(f) if f.spec.router_id != p.spec.router_id => report(
                    "spec.routerID",
                    format!(
                        "peer {} has RouterID different from {}, in FRR mode peers selecting the same node must all have the same RouterID",
                        p.spec.router_id, f.spec.router_id
                    ),
                ),
                Some(_) => {}
            }
            let id = identifier(p);
            if ids.contains_key(&id) {
                report(
                    "spec.peerAddress",
                    format!("peer {id} already exists, FRR mode doesn't support duplicate BGPPeers selecting the same node"),
                );
            } else {
                ids.insert(id.clone(), p);
            }
            match asn_per_vrf.get(p.spec.vrf.as_str()) {
                Some(f) if f.spec.my_asn != p.spec.my_asn => report(
                    "spec.myASN",
                    format!(
                        "peer {id} has myAsn different from {}, in FRR mode peers selecting the same node must have the same myAsn within the same VRF",
                        identifier(f)
                    ),
                ),
                Some(_) => {}
                None => {
                    asn_per_vrf.insert(p.spec.vrf.as_str(), p);
                }
            }
        }
    }
}

/// Address (or interface when there is none), suffixed `-<vrf>` when a VRF is set.
fn identifier(p: &BGPPeer) -> String {
    let base = if p.spec.peer_address.is_empty() { &p.spec.interface } else { &p.spec.peer_address };
    if p.spec.vrf.is_empty() { base.clone() } else { format!("{base}-{}", p.spec.vrf) }
}
