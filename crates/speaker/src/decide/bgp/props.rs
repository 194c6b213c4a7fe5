//! Property tests of [`decide_bgp`]. What should happen is computed here by
//! a small model written from speaker.md §4.2–4.4 and crds.md B10 over the
//! generator's own values, not by calling the code under test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_allocator::{PoolDef, ServiceKey};
use ferrolb_bgp::packet::Family;
use ferrolb_config::assemble::{BgpMode, Config, DynamicAsn, NodeSet, PoolAdvertisements};
use ferrolb_config::community::Community;
use ferrolb_config::selector::Selector;
use ipnet::IpNet;
use proptest::prelude::*;

use super::tests::{NODE, adv, peer};
use super::*;
use crate::decide::Endpoint;
use crate::decide::layer2::EXCLUDE_LB_LABEL;

const COMMUNITIES: [&str; 5] = ["64500:1", "64500:2", "65000:100", "large:64500:1:1", "large:1:2:3"];
const V4_LENGTHS: [i32; 3] = [24, 28, 32];
const V6_LENGTHS: [i32; 3] = [64, 120, 128];
const LOCAL_PREFS: [u32; 3] = [0, 100, 200];

#[derive(Debug, Clone)]
struct AdGen {
    v4_len: usize,
    v6_len: usize,
    local_pref: usize,
    communities: Vec<bool>,
    zone_a: Option<bool>,
    /// Indexes into the peers, plus one past them for a peer that does not exist.
    peers: Option<Vec<usize>>,
    app: Option<bool>,
}

#[derive(Debug, Clone)]
enum AsnGen {
    Internal,
    External,
    DynamicInternal,
    DynamicExternal,
    /// localASN equal to the peer's AS: iBGP through the AS presented.
    LocalAsIbgp,
}

#[derive(Debug, Clone)]
struct PeerGen {
    asn: AsnGen,
    v6: bool,
    dual_stack: bool,
    interface: bool,
    zone_a: Option<bool>,
}

#[derive(Debug, Clone)]
struct SvcGen {
    v4: Option<u8>,
    v6: Option<u8>,
    app: bool,
    local: bool,
    /// (on this node, serving)
    endpoints: Vec<(bool, bool)>,
}

#[derive(Debug, Clone)]
struct WorldGen {
    mode: BgpMode,
    zone_a: bool,
    unavailable: bool,
    excluded: bool,
    ads: Vec<AdGen>,
    peers: Vec<PeerGen>,
    services: Vec<SvcGen>,
}

fn service() -> impl Strategy<Value = SvcGen> {
    (
        prop::option::weighted(0.8, 0u8..6),
        prop::option::weighted(0.5, 0u8..6),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec((any::<bool>(), prop::bool::weighted(0.8)), 0..3),
    )
        .prop_map(|(v4, v6, app, local, endpoints)| SvcGen { v4, v6, app, local, endpoints })
}

fn world() -> impl Strategy<Value = WorldGen> {
    let ad = (
        0..V4_LENGTHS.len(),
        0..V6_LENGTHS.len(),
        0..LOCAL_PREFS.len(),
        prop::collection::vec(prop::bool::weighted(0.3), COMMUNITIES.len()),
        prop::option::weighted(0.4, any::<bool>()),
        prop::option::weighted(0.5, prop::collection::vec(0usize..5, 0..3)),
        prop::option::weighted(0.3, any::<bool>()),
    )
        .prop_map(|(v4_len, v6_len, local_pref, communities, zone_a, peers, app)| AdGen {
            v4_len,
            v6_len,
            local_pref,
            communities,
            zone_a,
            peers,
            app,
        });
    let asn = prop_oneof![
        Just(AsnGen::Internal),
        Just(AsnGen::External),
        Just(AsnGen::DynamicInternal),
        Just(AsnGen::DynamicExternal),
        Just(AsnGen::LocalAsIbgp),
    ];
    let peer = (asn, any::<bool>(), prop::bool::weighted(0.3), prop::bool::weighted(0.2), prop::option::weighted(0.3, any::<bool>()))
        .prop_map(|(asn, v6, dual_stack, interface, zone_a)| PeerGen { asn, v6, dual_stack, interface, zone_a });
    let svc = service();
    (
        prop_oneof![Just(BgpMode::Native), Just(BgpMode::Frr), Just(BgpMode::FrrK8s)],
        any::<bool>(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::collection::vec(ad, 1..4),
        prop::collection::vec(peer, 1..5),
        prop::collection::vec(svc, 1..6),
    )
        .prop_map(|(mode, zone_a, unavailable, excluded, ads, peers, services)| WorldGen {
            mode,
            zone_a,
            unavailable,
            excluded,
            ads,
            peers,
            services,
        })
}

fn zone(a: bool) -> &'static str {
    if a { "a" } else { "b" }
}

fn selector(key: &str, value: &str) -> Selector {
    let mut s = Selector::default();
    s.match_labels.insert(key.into(), value.into());
    s
}

fn peer_name(i: usize) -> String {
    format!("p{i}")
}

/// Addresses spaced so that a /28 or /24 aggregation makes Services share prefixes.
fn ips_of(s: &SvcGen) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Some(i) = s.v4 {
        out.push(format!("198.51.100.{}", u16::from(i) * 7).parse().unwrap());
    }
    if let Some(i) = s.v6 {
        out.push(format!("2001:db8:100::{:x}", u16::from(i) * 300).parse().unwrap());
    }
    out
}

struct Built {
    config: Config,
    services: Vec<ServiceState>,
    nodes: BTreeMap<String, NodeState>,
}

fn build(g: &WorldGen) -> Built {
    let mut labels = BTreeMap::from([("zone".to_string(), zone(g.zone_a).to_string())]);
    if g.excluded {
        labels.insert(EXCLUDE_LB_LABEL.to_string(), String::new());
    }
    let nodes = BTreeMap::from([(NODE.to_string(), NodeState { labels, network_unavailable: g.unavailable })]);
    let ads = g
        .ads
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut out = adv(&format!("ad{i}"));
            out.aggregation_length = V4_LENGTHS[a.v4_len];
            out.aggregation_length_v6 = V6_LENGTHS[a.v6_len];
            out.local_pref = LOCAL_PREFS[a.local_pref];
            out.communities =
                COMMUNITIES.iter().zip(&a.communities).filter(|(_, on)| **on).map(|(c, _)| Community::parse(c).unwrap()).collect();
            if let Some(z) = a.zone_a {
                out.nodes = NodeSet { selectors: vec![selector("zone", zone(z))], nodes: BTreeSet::new() };
            }
            if let Some(list) = &a.peers {
                out.peers = list.iter().map(|i| peer_name(*i)).collect::<BTreeSet<_>>().into_iter().collect();
            }
            if let Some(app) = a.app {
                out.service_selectors = vec![selector("app", &app.to_string())];
            }
            out
        })
        .collect();
    let peers = g
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let address = if p.v6 { format!("2001:db8::{}", i + 1) } else { format!("203.0.113.{}", i + 1) };
            let mut out = peer(&peer_name(i), 64500, 64501, &address);
            match p.asn {
                AsnGen::Internal => out.asn = 64500,
                AsnGen::External => {}
                AsnGen::DynamicInternal => (out.asn, out.dynamic_asn) = (0, Some(DynamicAsn::Internal)),
                AsnGen::DynamicExternal => (out.asn, out.dynamic_asn) = (0, Some(DynamicAsn::External)),
                AsnGen::LocalAsIbgp => out.local_asn = 64501,
            }
            out.dual_stack_address_family = p.dual_stack;
            if p.interface {
                out.address = None;
                out.interface = Some(format!("eth{i}"));
            }
            if let Some(z) = p.zone_a {
                out.nodes = NodeSet { selectors: vec![selector("zone", zone(z))], nodes: BTreeSet::new() };
            }
            out
        })
        .collect();
    let mut pool_advertisements = BTreeMap::new();
    pool_advertisements.insert("pool".to_string(), PoolAdvertisements { l2: vec![], bgp: ads });
    let config = Config {
        pools: vec![PoolDef::new("pool", vec!["198.51.100.0/24".parse().unwrap(), "2001:db8:100::/64".parse().unwrap()])],
        pool_advertisements,
        peers,
        ..Config::default()
    };
    let services = g
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| ServiceState {
            key: ServiceKey::new("default", format!("svc{i}")),
            is_load_balancer: true,
            labels: BTreeMap::from([("app".to_string(), s.app.to_string())]).into(),
            has_sharing_key: false,
            ingress: ips_of(s).iter().map(ToString::to_string).collect(),
            local_traffic_policy: s.local,
            endpoints: s
                .endpoints
                .iter()
                .map(|(here, serving)| Endpoint { node: Some(if *here { NODE } else { "node-b" }.into()), serving: *serving })
                .collect(),
        })
        .collect();
    Built { config, services, nodes }
}

fn decide_built(b: &Built, mode: BgpMode) -> BgpDecision {
    decide_bgp(&BgpInput { node: NODE, mode, config: &b.config, services: &b.services, nodes: &b.nodes, ignore_exclude_lb: false })
}

// The model.

fn ad_selects_node(g: &WorldGen, a: &AdGen) -> bool {
    a.zone_a.is_none_or(|z| z == g.zone_a)
}

fn applicable<'g>(g: &'g WorldGen, s: &SvcGen) -> Vec<&'g AdGen> {
    g.ads.iter().filter(|a| ad_selects_node(g, a) && a.app.is_none_or(|app| app == s.app)).collect()
}

/// crds.md B10 for a pool with both families, on one node.
fn compatible(a: &AdGen, b: &AdGen) -> bool {
    let peers_disjoint = match (&a.peers, &b.peers) {
        (Some(x), Some(y)) => !x.is_empty() && !y.is_empty() && !x.iter().any(|p| y.contains(p)),
        _ => false,
    };
    LOCAL_PREFS[a.local_pref] == LOCAL_PREFS[b.local_pref] || (a.v4_len != b.v4_len && a.v6_len != b.v6_len) || peers_disjoint
}

/// §4.2, the reason string or `None` when advertised.
fn model_reason(g: &WorldGen, s: &SvcGen) -> Option<&'static str> {
    if ips_of(s).is_empty() {
        return Some("noIPAllocated");
    }
    if !g.ads.iter().any(|a| ad_selects_node(g, a)) {
        return Some("notOwner");
    }
    let ads = applicable(g, s);
    if ads.is_empty() {
        return Some("noMatchingAdvertisement");
    }
    if ads.iter().enumerate().any(|(i, a)| ads[i + 1..].iter().any(|b| !compatible(a, b))) {
        return Some("conflictingAdvertisements");
    }
    if g.unavailable {
        return Some("nodeNetworkUnavailable");
    }
    if g.excluded {
        return Some("nodeLabeledExcludeBalancers");
    }
    if s.local && !s.endpoints.iter().any(|(here, serving)| *here && *serving) {
        return Some("noLocalEndpoints");
    }
    if !s.endpoints.iter().any(|(_, serving)| *serving) {
        return Some("noEndpoints");
    }
    None
}

fn model_has_session(g: &WorldGen, p: &PeerGen) -> bool {
    p.zone_a.is_none_or(|z| z == g.zone_a)
}

fn model_ibgp(p: &PeerGen) -> bool {
    matches!(p.asn, AsnGen::Internal | AsnGen::DynamicInternal | AsnGen::LocalAsIbgp)
}

fn model_families(g: &WorldGen, p: &PeerGen) -> BTreeSet<Family> {
    if g.mode == BgpMode::Native || p.dual_stack || p.interface {
        return BTreeSet::from(Family::ALL);
    }
    BTreeSet::from([if p.v6 { Family::Ipv6Unicast } else { Family::Ipv4Unicast }])
}

fn mask(ip: IpAddr, a: &AdGen) -> IpNet {
    let len = match ip {
        IpAddr::V4(_) => V4_LENGTHS[a.v4_len],
        IpAddr::V6(_) => V6_LENGTHS[a.v6_len],
    };
    IpNet::new(ip, len as u8).unwrap().trunc()
}

fn names_peer(a: &AdGen, peer: usize) -> bool {
    a.peers.as_ref().is_none_or(|list| list.is_empty() || list.contains(&peer))
}

/// Per peer and prefix, the union of communities of every (Service,
/// address, advertisement) that should put the prefix there.
fn model_routes(g: &WorldGen) -> BTreeMap<String, BTreeMap<IpNet, BTreeSet<Community>>> {
    let mut out = BTreeMap::new();
    for (pi, p) in g.peers.iter().enumerate() {
        if !model_has_session(g, p) {
            continue;
        }
        let families = model_families(g, p);
        let mut routes: BTreeMap<IpNet, BTreeSet<Community>> = BTreeMap::new();
        for s in g.services.iter().filter(|s| model_reason(g, s).is_none()) {
            for ip in ips_of(s) {
                for a in applicable(g, s).into_iter().filter(|a| names_peer(a, pi)) {
                    let prefix = mask(ip, a);
                    if !families.contains(&Family::of(&prefix)) {
                        continue;
                    }
                    let communities = COMMUNITIES.iter().zip(&a.communities).filter(|(_, on)| **on).map(|(c, _)| Community::parse(c).unwrap());
                    routes.entry(prefix).or_default().extend(communities);
                }
            }
        }
        out.insert(peer_name(pi), routes);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// [`BgpState::update`] with only the Services that changed gives what
    /// a decision from scratch gives, over a sequence of changes, and
    /// reports exactly the peers whose routes changed and at least every
    /// Service whose outcome changed.
    #[test]
    fn updates_equal_a_rebuild(g in world(), steps in prop::collection::vec(prop::collection::vec(service(), 0..6), 1..4)) {
        let first = build(&g);
        fn ctx(b: &Built, mode: BgpMode) -> BgpContext<'_> {
            BgpContext { node: NODE, mode, config: &b.config, nodes: &b.nodes, ignore_exclude_lb: false }
        }
        let mut state = BgpState::default();
        state.rebuild(&ctx(&first, g.mode), &first.services);
        let mut current: BTreeMap<ServiceKey, ServiceState> = first.services.into_iter().map(|s| (s.key.clone(), s)).collect();
        for services in steps {
            let next = build(&WorldGen { services, ..g.clone() });
            let wanted: BTreeMap<ServiceKey, ServiceState> = next.services.iter().map(|s| (s.key.clone(), s.clone())).collect();
            let changed: Vec<(&ServiceKey, Option<&ServiceState>)> = current
                .keys()
                .chain(wanted.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|k| current.get(*k) != wanted.get(*k))
                .map(|k| (k, wanted.get(k)))
                .collect();
            let before = state.decision().clone();
            let changes = state.update(&ctx(&next, g.mode), changed);
            let expected = decide_built(&next, g.mode);
            prop_assert_eq!(state.decision(), &expected);
            let none = BTreeMap::new();
            let peers: BTreeMap<String, BTreeSet<IpNet>> = expected
                .routes
                .iter()
                .map(|(peer, now)| {
                    let was = before.routes.get(peer).unwrap_or(&none);
                    let differ = was.keys().chain(now.keys()).filter(|p| was.get(*p) != now.get(*p)).copied().collect::<BTreeSet<IpNet>>();
                    (peer.clone(), differ)
                })
                .filter(|(_, differ)| !differ.is_empty())
                .collect();
            prop_assert_eq!(&changes.peers, &peers);
            for key in before.advertised.keys().chain(expected.advertised.keys()).chain(before.withdrawn.keys()).chain(expected.withdrawn.keys()) {
                let differs = before.advertised.get(key) != expected.advertised.get(key) || before.withdrawn.get(key) != expected.withdrawn.get(key);
                prop_assert!(!differs || changes.services.contains(key), "{} changed but was not reported", key);
            }
            prop_assert!(!changes.all);
            current = wanted;
        }
    }

    #[test]
    fn every_service_gets_the_models_outcome(g in world()) {
        let d = decide_built(&build(&g), g.mode);
        for (i, s) in g.services.iter().enumerate() {
            let key = ServiceKey::new("default", format!("svc{i}"));
            let got = d.withdrawn.get(&key).map(WithdrawReason::as_str);
            prop_assert_eq!(got, model_reason(&g, s), "{}", key);
            prop_assert_eq!(d.advertised.contains_key(&key), got.is_none());
        }
    }

    /// Every prefix comes from an address of an advertised Service masked by
    /// an advertisement applying to it that names the peer; each is listed
    /// once with the union of the communities of everything producing it.
    #[test]
    fn routes_are_exactly_the_models(g in world()) {
        let d = decide_built(&build(&g), g.mode);
        let model = model_routes(&g);
        let got: BTreeMap<String, BTreeMap<IpNet, BTreeSet<Community>>> = d
            .routes
            .iter()
            .map(|(peer, routes)| (peer.clone(), routes.iter().map(|(p, r)| (*p, r.communities.clone())).collect()))
            .collect();
        prop_assert_eq!(got, model);
    }

    #[test]
    fn local_pref_never_goes_to_ebgp_peers(g in world()) {
        let d = decide_built(&build(&g), g.mode);
        for (pi, p) in g.peers.iter().enumerate() {
            let Some(routes) = d.routes.get(&peer_name(pi)) else { continue };
            prop_assert_eq!(d.sessions[&peer_name(pi)].ibgp(), model_ibgp(p));
            if !model_ibgp(p) {
                prop_assert!(routes.values().all(|r| r.local_pref.is_none()), "{}: {:?}", peer_name(pi), routes);
            } else if g.mode == BgpMode::Native {
                prop_assert!(routes.values().all(|r| r.local_pref.is_some()));
            }
        }
    }

    #[test]
    fn a_local_service_without_a_local_endpoint_advertises_nothing(g in world()) {
        let d = decide_built(&build(&g), g.mode);
        for (i, s) in g.services.iter().enumerate() {
            if s.local && !s.endpoints.iter().any(|(here, serving)| *here && *serving) {
                let key = ServiceKey::new("default", format!("svc{i}"));
                prop_assert!(!d.advertised.contains_key(&key));
                prop_assert!(!d.status_peers().any(|(k, _)| *k == key));
            }
        }
    }

    #[test]
    fn status_peers_are_those_receiving_one_of_the_services_prefixes(g in world()) {
        let d = decide_built(&build(&g), g.mode);
        for announce in d.advertised.values() {
            let want: BTreeSet<String> = d
                .routes
                .iter()
                .filter(|(_, routes)| announce.prefixes.iter().any(|p| routes.contains_key(p)))
                .map(|(peer, _)| peer.clone())
                .collect();
            let got: BTreeSet<String> = announce.peers.iter().map(|p| p.to_string()).collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(got.len(), announce.peers.len(), "each peer once");
            prop_assert!(announce.prefixes.windows(2).all(|w| w[0] < w[1]), "prefixes sorted, each once");
        }
    }

    #[test]
    fn the_order_of_services_peers_and_advertisements_does_not_matter(g in world()) {
        let b = build(&g);
        let mut shuffled = build(&g);
        shuffled.services.reverse();
        shuffled.config.peers.reverse();
        for ads in shuffled.config.pool_advertisements.values_mut() {
            ads.bgp.reverse();
        }
        prop_assert_eq!(decide_built(&b, g.mode), decide_built(&shuffled, g.mode));
    }
}
