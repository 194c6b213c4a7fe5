use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_allocator::{PoolDef, ServiceKey};
use ferrolb_config::assemble::{Config, L2Advertisement, NodeSet, PoolAdvertisements};
use ferrolb_config::selector::Selector;

use super::*;

pub(super) fn ad(name: &str) -> L2Advertisement {
    L2Advertisement {
        name: name.into(),
        nodes: NodeSet::default(),
        all_interfaces: true,
        interfaces: vec![],
        service_selectors: vec![],
        preferred_node_scores: BTreeMap::new(),
        has_preferences: false,
    }
}

fn config(ads: Vec<L2Advertisement>) -> Config {
    let mut pool_advertisements = BTreeMap::new();
    pool_advertisements.insert("pool".to_string(), PoolAdvertisements { l2: ads, bgp: vec![] });
    Config {
        pools: vec![PoolDef::new("pool", vec!["198.51.100.192/27".parse().unwrap(), "2001:db8::200/120".parse().unwrap()])],
        pool_advertisements,
        ..Config::default()
    }
}

pub(super) fn service(name: &str, ips: &[&str], endpoint_nodes: &[&str]) -> ServiceState {
    ServiceState {
        key: ServiceKey::new("default", name),
        is_load_balancer: true,
        labels: Default::default(),
        has_sharing_key: false,
        ingress: ips.iter().map(|s| s.to_string()).collect(),
        local_traffic_policy: false,
        endpoints: endpoint_nodes.iter().map(|n| Endpoint { node: Some((*n).into()), serving: true }).collect(),
    }
}

fn nodes(names: &[&str]) -> BTreeMap<String, NodeState> {
    names.iter().map(|n| (n.to_string(), NodeState::default())).collect()
}

struct World {
    config: Config,
    services: Vec<ServiceState>,
    nodes: BTreeMap<String, NodeState>,
    live: Option<BTreeMap<String, MemberNetworks>>,
    sticky: BTreeMap<ServiceKey, String>,
}

impl World {
    fn new(config: Config, services: Vec<ServiceState>, node_names: &[&str]) -> Self {
        World { config, services, nodes: nodes(node_names), live: None, sticky: BTreeMap::new() }
    }

    fn decide_on(&self, node: &str) -> Decision {
        decide(&DecideInput {
            node,
            config: &self.config,
            services: &self.services,
            nodes: &self.nodes,
            live: self.live.as_ref(),
            sticky: &self.sticky,
            ignore_exclude_lb: false,
        })
    }

    /// The nodes announcing `svc`, over every node's own decision.
    fn owners(&self, svc: &str) -> Vec<String> {
        let key = ServiceKey::new("default", svc);
        self.nodes.keys().filter(|n| self.decide_on(n).layer2.contains_key(&key)).cloned().collect()
    }

    fn reason_on(&self, node: &str, svc: &str) -> Option<WithdrawReason> {
        self.decide_on(node).withdrawn.get(&ServiceKey::new("default", svc)).cloned()
    }
}

fn hash_winner(names: &[&str], ip: &str) -> String {
    let ip: IpAddr = ip.parse().unwrap();
    names.iter().min_by_key(|n| election_hash(n, &ip)).unwrap().to_string()
}

#[test]
fn election_hash_is_sha256_of_node_hash_ip() {
    // sha256("node1#198.51.100.200"), computed with coreutils' sha256sum.
    let h = election_hash("node1", &"198.51.100.200".parse().unwrap());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "d394e1861a10028c1c0e8bed4719611cf81296fd100937d4bf3b2b3b259e8868");
}

#[test]
fn exactly_one_node_announces_and_it_is_the_hash_winner() {
    let names = ["node1", "node2", "node3"];
    let w = World::new(config(vec![ad("l2")]), vec![service("web", &["198.51.100.200"], &["node2"])], &names);
    assert_eq!(w.owners("web"), vec![hash_winner(&names, "198.51.100.200")]);
}

#[test]
fn dual_stack_is_announced_by_one_node_elected_on_the_first_address() {
    let names = ["node1", "node2", "node3"];
    let w = World::new(
        config(vec![ad("l2")]),
        vec![service("web", &["2001:db8::200", "198.51.100.200"], &["node1"])],
        &names,
    );
    let owner = hash_winner(&names, "2001:db8::200");
    assert_eq!(w.owners("web"), vec![owner.clone()]);
    let announce = &w.decide_on(&owner).layer2[&ServiceKey::new("default", "web")];
    assert_eq!(announce.ips.len(), 2);
}

#[test]
fn withdrawal_reasons_follow_the_service_checks() {
    let mut w = World::new(
        config(vec![ad("l2")]),
        vec![
            service("none", &[], &["node1"]),
            service("bad", &["not-an-ip"], &["node1"]),
            service("foreign", &["192.0.2.1"], &["node1"]),
            service("noeps", &["198.51.100.201"], &[]),
        ],
        &["node1"],
    );
    w.services.push(ServiceState { is_load_balancer: false, ..service("cluster", &["198.51.100.202"], &["node1"]) });
    assert_eq!(w.reason_on("node1", "none"), Some(WithdrawReason::NoIpAllocated));
    assert_eq!(w.reason_on("node1", "bad"), Some(WithdrawReason::InvalidIp));
    assert_eq!(w.reason_on("node1", "foreign"), Some(WithdrawReason::IpNotAllowed));
    assert_eq!(w.reason_on("node1", "noeps"), Some(WithdrawReason::NotOwner { owner: None }));
    assert_eq!(w.reason_on("node1", "cluster"), Some(WithdrawReason::NotLoadBalancer));
}

#[test]
fn local_traffic_policy_elects_among_nodes_with_endpoints() {
    let names = ["node1", "node2", "node3"];
    let mut svc = service("web", &["198.51.100.200"], &["node3"]);
    svc.local_traffic_policy = true;
    let w = World::new(config(vec![ad("l2")]), vec![svc], &names);
    assert_eq!(w.owners("web"), vec!["node3".to_string()]);
}

#[test]
fn node_selectors_restrict_candidates_and_others_see_no_matching_advertisement() {
    let mut only2 = ad("l2");
    let mut sel = Selector::default();
    sel.match_labels.insert("zone".into(), "b".into());
    only2.nodes = NodeSet { selectors: vec![sel], nodes: BTreeSet::from(["node2".to_string()]) };
    let mut w = World::new(config(vec![only2]), vec![service("web", &["198.51.100.200"], &["node1"])], &["node1", "node2"]);
    w.nodes.get_mut("node2").unwrap().labels.insert("zone".into(), "b".into());
    assert_eq!(w.owners("web"), vec!["node2".to_string()]);
    assert_eq!(w.reason_on("node1", "web"), Some(WithdrawReason::NoMatchingAdvertisement));
}

#[test]
fn service_selectors_and_sharing_keys() {
    let mut selective = ad("l2");
    let mut sel = Selector::default();
    sel.match_labels.insert("app".into(), "web".into());
    selective.service_selectors = vec![sel];
    let mut matching = service("web", &["198.51.100.200"], &["node1"]);
    std::sync::Arc::make_mut(&mut matching.labels).insert("app".into(), "web".into());
    let mut shared = matching.clone();
    shared.key = ServiceKey::new("default", "shared");
    shared.has_sharing_key = true;
    let other = service("other", &["198.51.100.201"], &["node1"]);
    let w = World::new(config(vec![selective]), vec![matching, shared, other], &["node1"]);
    assert_eq!(w.owners("web"), vec!["node1".to_string()]);
    assert_eq!(w.reason_on("node1", "shared"), Some(WithdrawReason::SharedIpWithServiceSelector));
    assert_eq!(w.reason_on("node1", "other"), Some(WithdrawReason::NoMatchingAdvertisement));
}

#[test]
fn preference_scores_win_over_the_hash() {
    let names = ["node1", "node2", "node3"];
    let loser = names.iter().find(|n| **n != hash_winner(&names, "198.51.100.200")).unwrap().to_string();
    let mut preferring = ad("l2");
    preferring.preferred_node_scores.insert(loser.clone(), 10);
    preferring.has_preferences = true;
    let w = World::new(config(vec![preferring]), vec![service("web", &["198.51.100.200"], &["node1"])], &names);
    assert_eq!(w.owners("web"), vec![loser]);
}

#[test]
fn excluded_and_unavailable_nodes_are_not_candidates() {
    let names = ["node1", "node2", "node3"];
    let mut w = World::new(config(vec![ad("l2")]), vec![service("web", &["198.51.100.200"], &["node1"])], &names);
    let first = hash_winner(&names, "198.51.100.200");
    w.nodes.get_mut(&first).unwrap().labels.insert(layer2::EXCLUDE_LB_LABEL.into(), "".into());
    let rest: Vec<&str> = names.iter().copied().filter(|n| *n != first).collect();
    let second = hash_winner(&rest, "198.51.100.200");
    assert_eq!(w.owners("web"), vec![second.clone()]);
    w.nodes.get_mut(&second).unwrap().network_unavailable = true;
    let last: Vec<&str> = rest.iter().copied().filter(|n| *n != second).collect();
    assert_eq!(w.owners("web"), vec![last[0].to_string()]);
}

#[test]
fn interfaces_of_advertisements_selecting_the_node_are_united() {
    let mut a = ad("a");
    a.all_interfaces = false;
    a.interfaces = vec!["eth0".into()];
    let mut b = ad("b");
    b.all_interfaces = false;
    b.interfaces = vec!["eth1".into()];
    let w = World::new(config(vec![a, b]), vec![service("web", &["198.51.100.200"], &["node1"])], &["node1"]);
    let d = w.decide_on("node1");
    let scope = &d.layer2[&ServiceKey::new("default", "web")].ips[0].1;
    assert_eq!(scope, &InterfaceScope::Only(BTreeSet::from(["eth0".to_string(), "eth1".to_string()])));
}

fn member(ifaces: &[(&str, &str)]) -> MemberNetworks {
    MemberNetworks {
        interfaces: Some(ifaces.iter().map(|(name, net)| (name.to_string(), vec![net.parse().unwrap()])).collect()),
    }
}

#[test]
fn only_live_members_are_candidates() {
    let names = ["node1", "node2", "node3"];
    let mut w = World::new(config(vec![ad("l2")]), vec![service("web", &["198.51.100.200"], &["node1"])], &names);
    let first = hash_winner(&names, "198.51.100.200");
    w.live = Some(names.iter().filter(|n| **n != first).map(|n| (n.to_string(), MemberNetworks::default())).collect());
    let owners = w.owners("web");
    assert_eq!(owners.len(), 1);
    assert_ne!(owners[0], first);
}

#[test]
fn a_node_without_the_subnet_or_carrier_is_passed_over_while_another_has_it() {
    let names = ["node1", "node2", "node3"];
    let mut w = World::new(config(vec![ad("l2")]), vec![service("web", &["198.51.100.200"], &["node1"])], &names);
    let first = hash_winner(&names, "198.51.100.200");
    let mut live: BTreeMap<String, MemberNetworks> =
        names.iter().map(|n| (n.to_string(), member(&[("eth0", "198.51.100.0/24")]))).collect();
    // The winner's eth0 lost carrier: it publishes only another network.
    live.insert(first.clone(), member(&[("eth1", "203.0.113.0/24")]));
    w.live = Some(live.clone());
    let owners = w.owners("web");
    assert_eq!(owners.len(), 1);
    assert_ne!(owners[0], first);

    // Nobody has the subnet: every node with an interface up stays a candidate.
    for nets in live.values_mut() {
        *nets = member(&[("eth9", "203.0.113.0/24")]);
    }
    w.live = Some(live.clone());
    assert_eq!(w.owners("web"), vec![first.clone()]);

    // Nobody has any interface up: the election falls back to MetalLB's, so
    // the owner can report that it has nowhere to answer.
    for nets in live.values_mut() {
        *nets = member(&[]);
    }
    w.live = Some(live);
    assert_eq!(w.owners("web"), vec![first]);
}

#[test]
fn the_current_owner_keeps_the_service_when_a_better_hashed_node_returns() {
    let names = ["node1", "node2", "node3"];
    let mut w = World::new(config(vec![ad("l2")]), vec![service("web", &["198.51.100.200"], &["node1"])], &names);
    let first = hash_winner(&names, "198.51.100.200");
    let second = names.iter().find(|n| **n != first).unwrap().to_string();
    w.sticky.insert(ServiceKey::new("default", "web"), second.clone());
    assert_eq!(w.owners("web"), vec![second]);
}

#[test]
fn announced_addresses_merge_services_sharing_an_address() {
    let mut a = ad("a");
    a.all_interfaces = false;
    a.interfaces = vec!["eth0".into()];
    let w = World::new(
        config(vec![a]),
        vec![service("web", &["198.51.100.200"], &["node1"]), service("dns", &["198.51.100.200"], &["node1"])],
        &["node1"],
    );
    let all = w.decide_on("node1").announced_addresses();
    assert_eq!(all.len(), 1);
}
