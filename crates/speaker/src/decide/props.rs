//! Property tests: every speaker evaluates [`decide`] on its own, so the
//! outcomes taken together must elect exactly one live eligible node per
//! layer 2 Service, in every state. "Eligible" is computed here by a small
//! model written from speaker.md §3.1–3.2, not by calling the code under test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_allocator::{PoolDef, ServiceKey};
use ferrolb_config::assemble::{Config, L2Advertisement, NodeSet, PoolAdvertisements};
use ferrolb_config::selector::Selector;
use proptest::prelude::*;

use super::tests::ad;
use super::*;

const SUBNET: &str = "198.51.100.0/24";

#[derive(Debug, Clone)]
struct AdGen {
    zone: Option<bool>,
    app: Option<bool>,
    interfaces: Option<Vec<bool>>,
    prefer_zone_a: Option<i32>,
}

#[derive(Debug, Clone)]
struct SvcGen {
    ip: u8,
    app: bool,
    local: bool,
    endpoints: Vec<usize>,
    sharing: bool,
}

#[derive(Debug, Clone)]
struct NodeGen {
    zone_a: bool,
    live: bool,
    unavailable: bool,
    excluded: bool,
    /// None = did not publish; Some(list of (eth index, on the subnet)).
    networks: Option<Vec<(usize, bool)>>,
}

#[derive(Debug, Clone)]
struct WorldGen {
    nodes: Vec<NodeGen>,
    ads: Vec<AdGen>,
    services: Vec<SvcGen>,
    membership: bool,
}

fn ifname(i: usize) -> String {
    format!("eth{i}")
}

fn world() -> impl Strategy<Value = WorldGen> {
    let node = (
        any::<bool>(),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.7, prop::collection::vec((0usize..2, any::<bool>()), 0..3)),
    )
        .prop_map(|(zone_a, live, unavailable, excluded, networks)| NodeGen { zone_a, live, unavailable, excluded, networks });
    let ad = (
        prop::option::of(any::<bool>()),
        prop::option::weighted(0.3, any::<bool>()),
        prop::option::weighted(0.4, prop::collection::vec(any::<bool>(), 2)),
        prop::option::weighted(0.3, 1i32..100),
    )
        .prop_map(|(zone, app, interfaces, prefer_zone_a)| AdGen { zone, app, interfaces, prefer_zone_a });
    let svc = (0u8..8, any::<bool>(), any::<bool>(), prop::collection::vec(0usize..7, 0..3), prop::bool::weighted(0.2))
        .prop_map(|(ip, app, local, endpoints, sharing)| SvcGen { ip, app, local, endpoints, sharing });
    (
        prop::collection::vec(node, 1..7),
        prop::collection::vec(ad, 1..4),
        prop::collection::vec(svc, 1..6),
        any::<bool>(),
    )
        .prop_map(|(nodes, ads, services, membership)| WorldGen { nodes, ads, services, membership })
}

fn zone_selector(zone_a: bool) -> Selector {
    let mut s = Selector::default();
    s.match_labels.insert("zone".into(), if zone_a { "a" } else { "b" }.into());
    s
}

fn node_name(i: usize) -> String {
    format!("node{i}")
}

struct Built {
    config: Config,
    services: Vec<ServiceState>,
    nodes: BTreeMap<String, NodeState>,
    live: Option<BTreeMap<String, MemberNetworks>>,
}

fn build(g: &WorldGen) -> Built {
    let mut nodes = BTreeMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let mut labels = BTreeMap::new();
        labels.insert("zone".to_string(), if n.zone_a { "a" } else { "b" }.to_string());
        if n.excluded {
            labels.insert(super::layer2::EXCLUDE_LB_LABEL.to_string(), String::new());
        }
        nodes.insert(node_name(i), NodeState { labels, network_unavailable: n.unavailable });
    }
    let ads: Vec<L2Advertisement> = g
        .ads
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut out = ad(&format!("ad{i}"));
            if let Some(zone_a) = a.zone {
                out.nodes = NodeSet { selectors: vec![zone_selector(zone_a)], nodes: BTreeSet::new() };
            }
            if let Some(app) = a.app {
                let mut s = Selector::default();
                s.match_labels.insert("app".into(), app.to_string());
                out.service_selectors = vec![s];
            }
            if let Some(picks) = &a.interfaces {
                out.all_interfaces = false;
                out.interfaces = picks.iter().enumerate().filter(|(_, p)| **p).map(|(i, _)| ifname(i)).collect();
            }
            if let Some(weight) = a.prefer_zone_a {
                out.has_preferences = true;
                for (name, state) in &nodes {
                    if out.nodes.matches(&state.labels) && state.labels.get("zone").map(String::as_str) == Some("a") {
                        out.preferred_node_scores.insert(name.clone(), weight);
                    }
                }
            }
            out
        })
        .collect();
    let mut pool_advertisements = BTreeMap::new();
    pool_advertisements.insert("pool".to_string(), PoolAdvertisements { l2: ads, bgp: vec![] });
    let config = Config {
        pools: vec![PoolDef::new("pool", vec!["198.51.100.200/29".parse().unwrap()])],
        pool_advertisements,
        ..Config::default()
    };
    let services = g
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut labels = BTreeMap::new();
            labels.insert("app".to_string(), s.app.to_string());
            ServiceState {
                key: ServiceKey::new("default", format!("svc{i}")),
                is_load_balancer: true,
                labels: labels.into(),
                has_sharing_key: s.sharing,
                ingress: vec![format!("198.51.100.{}", 200 + s.ip)].into(),
                local_traffic_policy: s.local,
                endpoints: s
                    .endpoints
                    .iter()
                    .map(|n| Endpoint { node: Some(node_name(*n).into()), serving: true })
                    .collect(),
            }
        })
        .collect();
    let live = g.membership.then(|| {
        g.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.live)
            .map(|(i, n)| (node_name(i), networks_of(n)))
            .collect()
    });
    Built { config, services, nodes, live }
}

fn networks_of(n: &NodeGen) -> MemberNetworks {
    MemberNetworks {
        interfaces: n.networks.as_ref().map(|list| {
            list.iter()
                .map(|(i, on_subnet)| {
                    let net = if *on_subnet { SUBNET } else { "203.0.113.0/24" };
                    (ifname(*i), vec![net.parse().unwrap()])
                })
                .collect()
        }),
    }
}

fn decide_all(b: &Built, sticky: &BTreeMap<ServiceKey, String>) -> BTreeMap<String, Decision> {
    b.nodes
        .keys()
        .map(|node| {
            let d = decide(&DecideInput {
                node,
                config: &b.config,
                services: &b.services,
                nodes: &b.nodes,
                live: b.live.as_ref(),
                sticky,
                ignore_exclude_lb: false,
            });
            (node.clone(), d)
        })
        .collect()
}

fn owners(all: &BTreeMap<String, Decision>, key: &ServiceKey) -> Vec<String> {
    all.iter().filter(|(_, d)| d.layer2.contains_key(key)).map(|(n, _)| n.clone()).collect()
}

/// The model: nodes that may announce `s`, per speaker.md §3.1–3.2 plus
/// ferrolb's networks rule (an able node on the subnet beats one off it).
fn eligible(g: &WorldGen, s: &SvcGen) -> BTreeSet<String> {
    if s.endpoints.is_empty() {
        return BTreeSet::new();
    }
    let applicable: Vec<&AdGen> = g.ads.iter().filter(|a| a.app.is_none_or(|app| app == s.app)).collect();
    if s.sharing && applicable.iter().any(|a| a.app.is_some()) {
        return BTreeSet::new();
    }
    let ip: IpAddr = format!("198.51.100.{}", 200 + s.ip).parse().unwrap();
    let subnet: ipnet::IpNet = SUBNET.parse().unwrap();
    let mut tiers: [BTreeSet<String>; 3] = Default::default();
    for (i, n) in g.nodes.iter().enumerate() {
        let usable = !g.membership || n.live;
        let selecting: Vec<&&AdGen> = applicable.iter().filter(|a| a.zone.is_none_or(|z| z == n.zone_a)).collect();
        let local_ok = !s.local || s.endpoints.contains(&i);
        if !usable || n.unavailable || n.excluded || selecting.is_empty() || !local_ok {
            continue;
        }
        let allowed = |iface: usize| selecting.iter().any(|a| a.interfaces.as_ref().is_none_or(|p| p[iface]));
        let networks = if g.membership { n.networks.as_ref() } else { None };
        match networks {
            None => {
                tiers[0].insert(node_name(i));
            }
            Some(list) => {
                if list.iter().any(|(iface, on)| *on && allowed(*iface) && subnet.contains(&ip)) {
                    tiers[0].insert(node_name(i));
                } else if list.iter().any(|(iface, _)| allowed(*iface)) {
                    tiers[1].insert(node_name(i));
                } else {
                    tiers[2].insert(node_name(i));
                }
            }
        }
    }
    tiers.into_iter().find(|t| !t.is_empty()).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn exactly_one_live_eligible_node_owns_each_service(g in world()) {
        let b = build(&g);
        let all = decide_all(&b, &BTreeMap::new());
        for (s, svc) in g.services.iter().zip(&b.services) {
            let owners = owners(&all, &svc.key);
            let eligible = eligible(&g, s);
            if eligible.is_empty() {
                prop_assert!(owners.is_empty(), "{}: nobody eligible but {:?} announce", svc.key, owners);
            } else {
                prop_assert_eq!(owners.len(), 1, "{}: eligible {:?}", svc.key, eligible);
                prop_assert!(eligible.contains(&owners[0]), "{}: owner {} not eligible {:?}", svc.key, owners[0], eligible);
            }
        }
    }

    #[test]
    fn losing_a_node_that_owns_nothing_moves_nothing(g in world(), victim in 0usize..7) {
        let mut g = g;
        g.membership = true;
        let victim_i = victim % g.nodes.len();
        let victim = node_name(victim_i);
        g.nodes[victim_i].live = true;
        let b = build(&g);
        let with = decide_all(&b, &BTreeMap::new());
        g.nodes[victim_i].live = false;
        let without = decide_all(&build(&g), &BTreeMap::new());
        for svc in &b.services {
            let before = owners(&with, &svc.key);
            if before == vec![victim.clone()] { continue; }
            prop_assert_eq!(before, owners(&without, &svc.key), "{} moved when {} left", svc.key, victim);
        }
    }

    #[test]
    fn a_returning_node_does_not_take_back_what_moved(g in world(), victim in 0usize..7) {
        // Membership on, nobody publishes networks, no preferences: the tiers
        // and scores cannot favour the returning node, only the hash could.
        let mut g = g;
        g.membership = true;
        for n in &mut g.nodes { n.networks = None; }
        for a in &mut g.ads { a.prefer_zone_a = None; }
        let victim_i = victim % g.nodes.len();
        g.nodes[victim_i].live = false;
        let b = build(&g);
        let away = decide_all(&b, &BTreeMap::new());
        let sticky: BTreeMap<ServiceKey, String> = b.services.iter()
            .filter_map(|s| owners(&away, &s.key).first().map(|o| (s.key.clone(), o.clone())))
            .collect();
        g.nodes[victim_i].live = true;
        let back = decide_all(&build(&g), &sticky);
        for svc in &b.services {
            if let Some(owner) = sticky.get(&svc.key) {
                prop_assert_eq!(owners(&back, &svc.key), vec![owner.clone()]);
            }
        }
    }

    /// What a pass that decides only the changed Services relies on: each
    /// Service decided alone gets what it gets among all the others.
    #[test]
    fn each_service_alone_decides_as_among_all(g in world()) {
        let b = build(&g);
        let sticky = BTreeMap::new();
        for (node, together) in decide_all(&b, &sticky) {
            let input = DecideInput { node: &node, config: &b.config, services: &[], nodes: &b.nodes, live: b.live.as_ref(), sticky: &sticky, ignore_exclude_lb: false };
            let mut alone = Decision::default();
            for svc in &b.services {
                let one = decide_each(&input, [svc]);
                alone.layer2.extend(one.layer2);
                alone.withdrawn.extend(one.withdrawn);
            }
            prop_assert_eq!(alone, together);
        }
    }

    #[test]
    fn service_order_does_not_matter(g in world()) {
        let b = build(&g);
        let mut reversed = build(&g);
        reversed.services.reverse();
        prop_assert_eq!(decide_all(&b, &BTreeMap::new()), decide_all(&reversed, &BTreeMap::new()));
    }
}
