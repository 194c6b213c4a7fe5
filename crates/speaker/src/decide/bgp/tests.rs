//! One test per rule of speaker.md §4.1–4.5 and §5.2.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_allocator::{PoolDef, ServiceKey};
use ferrolb_bgp::packet::Family;
use ferrolb_bgp::session::PeerAsn;
use ferrolb_config::assemble::{BgpAdvertisement, BgpMode, Config, DynamicAsn, NodeSet, Password, Peer, PoolAdvertisements};
use ferrolb_config::community::Community;
use ferrolb_config::duration::SECOND;
use ferrolb_config::selector::Selector;
use ferrolb_config::timers::Timers;

use super::engine::{PeerConfigError, PeerEnv, engine_peer, engine_routes, fallback_router_id};
use super::*;
use crate::decide::tests::service;
use crate::decide::layer2::EXCLUDE_LB_LABEL;

pub(super) const NODE: &str = "node-a";

pub(super) fn adv(name: &str) -> BgpAdvertisement {
    BgpAdvertisement {
        name: name.into(),
        aggregation_length: 32,
        aggregation_length_v6: 128,
        local_pref: 0,
        communities: BTreeSet::new(),
        nodes: NodeSet::default(),
        peers: vec![],
        service_selectors: vec![],
    }
}

pub(super) fn peer(name: &str, my_asn: u32, asn: u32, address: &str) -> Peer {
    Peer {
        name: name.into(),
        my_asn,
        asn,
        dynamic_asn: None,
        local_asn: 0,
        address: Some(address.parse().unwrap()),
        interface: None,
        source_address: None,
        port: 179,
        timers: None,
        connect_time: None,
        router_id: None,
        nodes: NodeSet::default(),
        password: Password::None,
        bfd_profile: None,
        ebgp_multihop: false,
        vrf: None,
        enable_graceful_restart: false,
        disable_mp: false,
        dual_stack_address_family: false,
    }
}

fn label_selector(key: &str, value: &str) -> Selector {
    let mut s = Selector::default();
    s.match_labels.insert(key.into(), value.into());
    s
}

fn nodes_where(key: &str, value: &str) -> NodeSet {
    NodeSet { selectors: vec![label_selector(key, value)], nodes: BTreeSet::new() }
}

fn community(text: &str) -> Community {
    Community::parse(text).unwrap()
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// A configuration, this node's state and the Services: one world seen from
/// [`NODE`].
struct World {
    mode: BgpMode,
    config: Config,
    services: Vec<ServiceState>,
    nodes: BTreeMap<String, NodeState>,
    ignore_exclude_lb: bool,
}

impl World {
    fn new(ads: Vec<BgpAdvertisement>, peers: Vec<Peer>, services: Vec<ServiceState>) -> Self {
        let mut pool_advertisements = BTreeMap::new();
        pool_advertisements.insert("pool".to_string(), PoolAdvertisements { l2: vec![], bgp: ads });
        let config = Config {
            pools: vec![PoolDef::new("pool", vec![net("198.51.100.0/24"), net("2001:db8:100::/64")])],
            pool_advertisements,
            peers,
            ..Config::default()
        };
        let nodes = BTreeMap::from([(NODE.to_string(), NodeState::default())]);
        World { mode: BgpMode::Frr, config, services, nodes, ignore_exclude_lb: false }
    }

    fn own(&mut self) -> &mut NodeState {
        self.nodes.get_mut(NODE).unwrap()
    }

    fn decide(&self) -> BgpDecision {
        decide_bgp(&BgpInput {
            node: NODE,
            mode: self.mode,
            config: &self.config,
            services: &self.services,
            nodes: &self.nodes,
            ignore_exclude_lb: self.ignore_exclude_lb,
        })
    }

    fn reason(&self, svc: &str) -> Option<&'static str> {
        self.decide().withdrawn.get(&key(svc)).map(WithdrawReason::as_str)
    }

    fn routes(&self, peer: &str) -> BTreeMap<IpNet, Route> {
        self.decide().routes.get(peer).cloned().unwrap_or_default()
    }
}

fn ebgp(name: &str) -> Peer {
    peer(name, 64500, 64501, "203.0.113.1")
}

fn ibgp(name: &str) -> Peer {
    peer(name, 64500, 64500, "203.0.113.2")
}

// §4.1

#[test]
fn sessions_follow_the_peers_node_selectors() {
    let mut zone_a = ebgp("zone-a");
    zone_a.nodes = nodes_where("zone", "a");
    let mut zone_b = ebgp("zone-b");
    zone_b.nodes = nodes_where("zone", "b");
    let mut w = World::new(vec![adv("ad")], vec![zone_a, zone_b, ebgp("everywhere")], vec![]);
    w.own().labels.insert("zone".into(), "a".into());
    let names: Vec<String> = w.decide().sessions.into_keys().collect();
    assert_eq!(names, vec!["everywhere".to_string(), "zone-a".to_string()]);

    // Before the Node is seen, only peers without selectors get a session.
    w.nodes.clear();
    let names: Vec<String> = w.decide().sessions.into_keys().collect();
    assert_eq!(names, vec!["everywhere".to_string()]);
}

#[test]
fn session_parameters_carry_every_peer_field() {
    let mut p = peer("full", 64500, 0, "2001:db8::1");
    p.dynamic_asn = Some(DynamicAsn::External);
    p.local_asn = 64999;
    p.port = 1179;
    p.timers = Some(Timers { hold: 30 * SECOND + SECOND / 2, keepalive: 10 * SECOND });
    p.connect_time = Some(5 * SECOND);
    p.router_id = Some("192.0.2.9".parse().unwrap());
    p.password = Password::SecretRef { name: "bgp".into(), namespace: "metallb-system".into() };
    p.source_address = Some("2001:db8::9".parse().unwrap());
    p.ebgp_multihop = true;
    p.vrf = Some("red".into());
    p.bfd_profile = Some("fast".into());
    p.enable_graceful_restart = true;
    p.disable_mp = true;
    let w = World::new(vec![adv("ad")], vec![p], vec![]);
    let s = &w.decide().sessions["full"];
    assert_eq!(s.my_asn, 64500);
    assert_eq!(s.local_asn, Some(64999));
    assert_eq!(s.remote_asn, RemoteAsn::Dynamic(DynamicAsn::External));
    assert_eq!(s.address, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(s.port, 1179);
    assert_eq!((s.hold_time, s.keepalive_time, s.connect_time), (30, Some(10), Some(5)));
    assert_eq!(s.router_id, Some("192.0.2.9".parse().unwrap()));
    assert_eq!(s.password, Password::SecretRef { name: "bgp".into(), namespace: "metallb-system".into() });
    assert_eq!(s.source_address, Some("2001:db8::9".parse().unwrap()));
    assert!(s.ebgp_multihop && s.graceful_restart && s.disable_mp);
    assert_eq!(s.vrf.as_deref(), Some("red"));
    assert_eq!(s.bfd_profile.as_deref(), Some("fast"));
    assert_eq!(s.families, BTreeSet::from([Family::Ipv6Unicast]));
    assert!(!s.ibgp());
}

#[test]
fn unset_timers_take_the_modes_default_hold_time() {
    let mut w = World::new(vec![adv("ad")], vec![ebgp("p")], vec![]);
    assert_eq!((w.decide().sessions["p"].hold_time, w.decide().sessions["p"].keepalive_time), (180, None));
    w.mode = BgpMode::Native;
    assert_eq!(w.decide().sessions["p"].hold_time, 90);
}

// §4.2

#[test]
fn the_shared_service_checks_come_first() {
    let mut cluster_ip = service("cluster", &["198.51.100.1"], &[NODE]);
    cluster_ip.is_load_balancer = false;
    let w = World::new(
        vec![adv("ad")],
        vec![ebgp("p")],
        vec![
            cluster_ip,
            service("none", &[], &[NODE]),
            service("bad", &["nope"], &[NODE]),
            service("foreign", &["192.0.2.1"], &[NODE]),
        ],
    );
    assert_eq!(w.reason("cluster"), Some("notLoadBalancer"));
    assert_eq!(w.reason("none"), Some("noIPAllocated"));
    assert_eq!(w.reason("bad"), Some("invalidIP"));
    assert_eq!(w.reason("foreign"), Some("ipNotAllowed"));
}

#[test]
fn not_owner_when_no_advertisement_of_the_pool_selects_this_node() {
    let mut elsewhere = adv("ad");
    elsewhere.nodes = nodes_where("zone", "b");
    let mut w = World::new(vec![elsewhere], vec![ebgp("p")], vec![service("web", &["198.51.100.10"], &[NODE])]);
    w.own().labels.insert("zone".into(), "a".into());
    assert_eq!(w.reason("web"), Some("notOwner"));
    assert!(w.routes("p").is_empty());
    w.own().labels.insert("zone".into(), "b".into());
    assert_eq!(w.reason("web"), None);
}

#[test]
fn no_matching_advertisement_when_the_service_selectors_exclude_it() {
    let mut only_web = adv("ad");
    only_web.service_selectors = vec![label_selector("app", "web")];
    let mut web = service("web", &["198.51.100.10"], &[NODE]);
    std::sync::Arc::make_mut(&mut web.labels).insert("app".into(), "web".into());
    let w = World::new(vec![only_web], vec![ebgp("p")], vec![web, service("db", &["198.51.100.11"], &[NODE])]);
    assert_eq!(w.reason("db"), Some("noMatchingAdvertisement"));
    assert_eq!(w.reason("web"), None);
}

#[test]
fn conflicting_advertisements_are_refused_per_service() {
    let mut a = adv("a");
    a.local_pref = 100;
    a.service_selectors = vec![label_selector("app", "web")];
    let mut b = adv("b");
    b.local_pref = 200;
    b.service_selectors = vec![label_selector("tier", "front")];
    let mut both = service("both", &["198.51.100.10"], &[NODE]);
    std::sync::Arc::make_mut(&mut both.labels).insert("app".into(), "web".into());
    std::sync::Arc::make_mut(&mut both.labels).insert("tier".into(), "front".into());
    let mut one = service("one", &["198.51.100.11"], &[NODE]);
    std::sync::Arc::make_mut(&mut one.labels).insert("app".into(), "web".into());
    let mut w = World::new(vec![a, b], vec![ebgp("p"), ebgp("q")], vec![both, one]);
    assert_eq!(w.reason("both"), Some("conflictingAdvertisements"));
    assert_eq!(w.reason("one"), None);

    // B10 (c): disjoint peer lists make them compatible.
    let ads = &mut w.config.pool_advertisements.get_mut("pool").unwrap().bgp;
    ads[0].peers = vec!["p".into()];
    ads[1].peers = vec!["q".into()];
    assert_eq!(w.reason("both"), None);
}

#[test]
fn unavailable_and_excluded_nodes_advertise_nothing() {
    let mut w = World::new(vec![adv("ad")], vec![ebgp("p")], vec![service("web", &["198.51.100.10"], &[NODE])]);
    w.own().network_unavailable = true;
    assert_eq!(w.reason("web"), Some("nodeNetworkUnavailable"));
    w.own().network_unavailable = false;
    w.own().labels.insert(EXCLUDE_LB_LABEL.into(), String::new());
    assert_eq!(w.reason("web"), Some("nodeLabeledExcludeBalancers"));
    assert!(w.routes("p").is_empty());
    w.ignore_exclude_lb = true;
    assert_eq!(w.reason("web"), None);
}

#[test]
fn endpoints_decide_by_traffic_policy() {
    let mut local_elsewhere = service("local-elsewhere", &["198.51.100.10"], &["node-b"]);
    local_elsewhere.local_traffic_policy = true;
    let mut local_here = service("local-here", &["198.51.100.11"], &[NODE, "node-b"]);
    local_here.local_traffic_policy = true;
    let mut local_none = service("local-none", &["198.51.100.12"], &[]);
    local_none.local_traffic_policy = true;
    let mut not_serving = service("not-serving", &["198.51.100.13"], &[NODE]);
    not_serving.endpoints[0].serving = false;
    let w = World::new(
        vec![adv("ad")],
        vec![ebgp("p")],
        vec![
            local_elsewhere,
            local_here,
            local_none,
            not_serving,
            service("cluster-elsewhere", &["198.51.100.14"], &["node-b"]),
            service("cluster-none", &["198.51.100.15"], &[]),
        ],
    );
    assert_eq!(w.reason("local-elsewhere"), Some("noLocalEndpoints"));
    assert_eq!(w.reason("local-here"), None);
    // The Local check comes before the "anywhere" one.
    assert_eq!(w.reason("local-none"), Some("noLocalEndpoints"));
    assert_eq!(w.reason("not-serving"), Some("noEndpoints"));
    assert_eq!(w.reason("cluster-elsewhere"), None);
    assert_eq!(w.reason("cluster-none"), Some("noEndpoints"));
    let prefixes: Vec<IpNet> = w.routes("p").into_keys().collect();
    assert_eq!(prefixes, vec![net("198.51.100.11/32"), net("198.51.100.14/32")]);
}

// §4.3

#[test]
fn each_address_is_masked_per_family_by_each_applicable_advertisement() {
    let mut agg = adv("agg");
    agg.aggregation_length = 24;
    agg.aggregation_length_v6 = 64;
    agg.communities = BTreeSet::from([community("64500:2"), community("64500:1")]);
    let w = World::new(
        vec![agg, adv("host")],
        vec![peer("dual", 64500, 64501, "203.0.113.1")],
        vec![service("web", &["198.51.100.10", "2001:db8:100::10"], &[NODE])],
    );
    let mut w = w;
    w.config.peers[0].dual_stack_address_family = true;
    let d = w.decide();
    let want: BTreeSet<IpNet> = ["198.51.100.0/24", "198.51.100.10/32", "2001:db8:100::/64", "2001:db8:100::10/128"]
        .into_iter()
        .map(net)
        .collect();
    assert_eq!(d.advertised[&key("web")].prefixes, want.iter().copied().collect::<Vec<_>>());
    assert_eq!(d.routes["dual"].keys().copied().collect::<BTreeSet<_>>(), want);
    let agg_route = &d.routes["dual"][&net("198.51.100.0/24")];
    assert_eq!(agg_route.communities.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["64500:1", "64500:2"]);
    assert!(d.routes["dual"][&net("198.51.100.10/32")].communities.is_empty());
}

// §4.4

#[test]
fn routes_go_only_to_the_peers_an_advertisement_names() {
    let mut to_p = adv("to-p");
    to_p.peers = vec!["p".into(), "absent".into()];
    to_p.aggregation_length = 24;
    let w = World::new(vec![to_p, adv("to-all")], vec![ebgp("p"), ebgp("q")], vec![service("web", &["198.51.100.10"], &[NODE])]);
    let d = w.decide();
    assert_eq!(d.routes["p"].keys().copied().collect::<Vec<_>>(), vec![net("198.51.100.0/24"), net("198.51.100.10/32")]);
    assert_eq!(d.routes["q"].keys().copied().collect::<Vec<_>>(), vec![net("198.51.100.10/32")]);
    assert!(!d.routes.contains_key("absent"));
}

#[test]
fn a_shared_prefix_is_sent_once_with_the_union_of_communities() {
    let mut web_ad = adv("web");
    web_ad.aggregation_length = 24;
    web_ad.service_selectors = vec![];
    web_ad.communities = BTreeSet::from([community("64500:1"), community("large:64500:1:1")]);
    let mut db_ad = web_ad.clone();
    db_ad.name = "db".into();
    db_ad.communities = BTreeSet::from([community("64500:2")]);
    let w = World::new(
        vec![web_ad, db_ad],
        vec![ebgp("p")],
        vec![service("web", &["198.51.100.10"], &[NODE]), service("db", &["198.51.100.20"], &[NODE])],
    );
    let routes = w.routes("p");
    assert_eq!(routes.len(), 1);
    let got: Vec<String> = routes[&net("198.51.100.0/24")].communities.iter().map(ToString::to_string).collect();
    // Sorted as MetalLB sorts: a standard A:B counts as large (A·65536+B):0:0.
    assert_eq!(got, vec!["large:64500:1:1", "64500:1", "64500:2"]);

    // §4.4 step 6: withdrawing one Service keeps the prefix the other produces.
    let mut w = w;
    w.services[0].endpoints.clear();
    assert_eq!(w.routes("p").keys().copied().collect::<Vec<_>>(), vec![net("198.51.100.0/24")]);
}

#[test]
fn frr_modes_send_each_family_to_peers_of_that_family() {
    let mut dual = peer("dual", 64500, 64501, "203.0.113.3");
    dual.dual_stack_address_family = true;
    let mut unnumbered = peer("unnumbered", 64500, 64501, "203.0.113.4");
    unnumbered.address = None;
    unnumbered.interface = Some("eth1".into());
    let peers = vec![peer("v4", 64500, 64501, "203.0.113.1"), peer("v6", 64500, 64501, "2001:db8::1"), dual, unnumbered];
    let mut w = World::new(vec![adv("ad")], peers, vec![service("web", &["198.51.100.10", "2001:db8:100::10"], &[NODE])]);
    let v4 = net("198.51.100.10/32");
    let v6 = net("2001:db8:100::10/128");
    for mode in [BgpMode::Frr, BgpMode::FrrK8s] {
        w.mode = mode;
        let d = w.decide();
        assert_eq!(d.routes["v4"].keys().copied().collect::<Vec<_>>(), vec![v4]);
        assert_eq!(d.routes["v6"].keys().copied().collect::<Vec<_>>(), vec![v6]);
        assert_eq!(d.routes["dual"].len(), 2);
        assert_eq!(d.routes["unnumbered"].len(), 2);
    }
    w.mode = BgpMode::Native;
    assert_eq!(w.routes("v4").len(), 2, "native mode has no family filter");
}

#[test]
fn local_pref_goes_to_ibgp_peers_only_with_the_modes_rules() {
    let mut with_pref = adv("with-pref");
    with_pref.local_pref = 150;
    with_pref.peers = vec!["ibgp".into(), "ebgp".into()];
    let mut without = adv("without");
    without.peers = vec!["ibgp-unset".into()];
    let mut w = World::new(
        vec![with_pref, without],
        vec![ibgp("ibgp"), ebgp("ebgp"), ibgp("ibgp-unset")],
        vec![service("web", &["198.51.100.10"], &[NODE])],
    );
    let pref = |w: &World, p: &str| w.routes(p)[&net("198.51.100.10/32")].local_pref;
    // FRR: a non-zero value toward iBGP; unset leaves FRR's default.
    assert_eq!(pref(&w, "ibgp"), Some(150));
    assert_eq!(pref(&w, "ebgp"), None);
    assert_eq!(pref(&w, "ibgp-unset"), None);
    // Native: always present toward iBGP, 0 when unset.
    w.mode = BgpMode::Native;
    assert_eq!(pref(&w, "ibgp"), Some(150));
    assert_eq!(pref(&w, "ebgp"), None);
    assert_eq!(pref(&w, "ibgp-unset"), Some(0));
}

#[test]
fn ibgp_is_judged_on_the_as_presented_and_dynamic_asns() {
    let mut internal = peer("internal", 64500, 0, "203.0.113.1");
    internal.dynamic_asn = Some(DynamicAsn::Internal);
    let mut external = peer("external", 64500, 0, "203.0.113.2");
    external.dynamic_asn = Some(DynamicAsn::External);
    let mut local_as = peer("local-as", 64500, 65000, "203.0.113.3");
    local_as.local_asn = 65000;
    let mut ad = adv("ad");
    ad.local_pref = 120;
    let w = World::new(vec![ad], vec![internal, external, local_as], vec![service("web", &["198.51.100.10"], &[NODE])]);
    let d = w.decide();
    let pref = |p: &str| d.routes[p][&net("198.51.100.10/32")].local_pref;
    assert_eq!((pref("internal"), pref("external"), pref("local-as")), (Some(120), None, Some(120)));
}

#[test]
fn more_than_63_communities_hold_the_route_back_from_that_peer() {
    let many = |from: u16, n: u16| (from..from + n).map(|v| Community::Standard { asn: 64500, value: v }).collect();
    let mut first = adv("first");
    first.communities = many(0, 40);
    first.peers = vec!["p".into(), "q".into()];
    let mut second = adv("second");
    second.communities = many(40, 24);
    second.peers = vec!["p".into()];
    let w = World::new(vec![first, second], vec![ebgp("p"), ebgp("q")], vec![service("web", &["198.51.100.10"], &[NODE])]);
    let d = w.decide();
    assert!(d.routes["p"].is_empty());
    assert_eq!(d.routes["q"][&net("198.51.100.10/32")].communities.len(), 40);
    let refused: Vec<String> = d.refused.iter().map(|r| format!("{} {} {}", r.peer, r.prefix, r.message())).collect();
    assert_eq!(refused, vec!["p 198.51.100.10/32 max supported communities is 63, got 64"]);
    // Only the peer that still receives a prefix is listed.
    assert_eq!(&*d.advertised[&key("web")].peers, &[std::sync::Arc::<str>::from("q")]);

    let mut w = w;
    w.config.pool_advertisements.get_mut("pool").unwrap().bgp[1].communities = many(40, 23);
    assert_eq!(w.routes("p")[&net("198.51.100.10/32")].communities.len(), 63);
}

// §5.2

#[test]
fn status_lists_peers_receiving_a_prefix_of_the_service_even_through_another() {
    // "web" reaches q only through the /24 that "db" also produces.
    let mut web_ad = adv("web-ad");
    web_ad.aggregation_length = 24;
    web_ad.peers = vec!["p".into()];
    web_ad.service_selectors = vec![label_selector("app", "web")];
    web_ad.aggregation_length = 32;
    let mut agg_for_web = adv("web-agg");
    agg_for_web.aggregation_length = 24;
    agg_for_web.peers = vec!["p".into()];
    let mut agg_for_db = adv("db-agg");
    agg_for_db.aggregation_length = 24;
    agg_for_db.peers = vec!["q".into()];
    agg_for_db.service_selectors = vec![label_selector("app", "db")];
    agg_for_web.service_selectors = vec![label_selector("app", "web")];
    let mut web = service("web", &["198.51.100.10"], &[NODE]);
    std::sync::Arc::make_mut(&mut web.labels).insert("app".into(), "web".into());
    let mut db = service("db", &["198.51.100.20"], &[NODE]);
    std::sync::Arc::make_mut(&mut db.labels).insert("app".into(), "db".into());
    let mut idle = service("idle", &["198.51.100.30"], &[NODE]);
    std::sync::Arc::make_mut(&mut idle.labels).insert("app".into(), "none".into());
    let mut to_nobody = adv("to-nobody");
    to_nobody.peers = vec!["absent".into()];
    to_nobody.service_selectors = vec![label_selector("app", "none")];
    let w = World::new(vec![web_ad, agg_for_web, agg_for_db, to_nobody], vec![ebgp("p"), ebgp("q")], vec![web, db, idle]);
    let d = w.decide();
    let status: BTreeMap<_, _> = d.status_peers().collect();
    let names = |s: &[std::sync::Arc<str>]| s.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(names(status[&key("web")]), vec!["p", "q"]);
    assert_eq!(names(status[&key("db")]), vec!["p", "q"]);
    // Advertised, but to no peer this node has: no ServiceBGPStatus.
    assert!(d.advertised.contains_key(&key("idle")));
    assert!(!status.contains_key(&key("idle")));
}

// Engine conversion

fn env_with<'a>(link_local: &'a BTreeMap<String, Ipv6Addr>, secrets: &'a BTreeMap<(String, String), String>) -> PeerEnv<'a> {
    PeerEnv { node: NODE, node_ipv4: None, link_local, secrets }
}

#[test]
fn engine_peer_carries_the_session() {
    let mut p = peer("p", 64500, 64501, "203.0.113.1");
    p.timers = Some(Timers { hold: 9 * SECOND, keepalive: 3 * SECOND });
    p.connect_time = Some(7 * SECOND);
    p.password = Password::Plain("s3cret".into());
    p.source_address = Some("203.0.113.100".parse().unwrap());
    p.ebgp_multihop = true;
    p.vrf = Some("red".into());
    p.enable_graceful_restart = true;
    p.local_asn = 65010;
    let w = World::new(vec![], vec![p], vec![]);
    let s = &w.decide().sessions["p"];
    let (link_local, secrets) = (BTreeMap::new(), BTreeMap::new());
    let mut env = env_with(&link_local, &secrets);
    env.node_ipv4 = Some(Ipv4Addr::new(192, 0, 2, 7));
    let cfg = engine_peer(s, &env).unwrap();
    assert_eq!(cfg.my_asn, 64500);
    assert_eq!(cfg.local_asn, Some(65010));
    assert_eq!(cfg.peer_asn, PeerAsn::Exact(64501));
    assert_eq!(cfg.address, "203.0.113.1".parse::<IpAddr>().unwrap());
    assert_eq!(cfg.router_id, Ipv4Addr::new(192, 0, 2, 7));
    assert_eq!((cfg.hold_time, cfg.keepalive_time, cfg.connect_time), (9, Some(3), Some(7)));
    assert_eq!(cfg.password.as_deref(), Some("s3cret"));
    assert_eq!(cfg.source, Some("203.0.113.100".parse().unwrap()));
    assert!(cfg.ebgp_multihop);
    assert_eq!(cfg.vrf.as_deref(), Some("red"));
    assert_eq!(cfg.graceful_restart, Some(engine::GRACEFUL_RESTART_TIME));
    assert_eq!(cfg.families, vec![Family::Ipv4Unicast]);
    assert!(!cfg.passive);
}

#[test]
fn engine_peer_resolves_what_the_configuration_cannot_know() {
    let mut unnumbered = peer("u", 64500, 0, "203.0.113.1");
    unnumbered.address = None;
    unnumbered.interface = Some("eth1".into());
    unnumbered.dynamic_asn = Some(DynamicAsn::Internal);
    unnumbered.password = Password::SecretRef { name: "bgp".into(), namespace: "ns".into() };
    let mut v6_id = peer("v6-id", 64500, 64501, "203.0.113.1");
    v6_id.router_id = Some("2001:db8::1".parse().unwrap());
    let w = World::new(vec![], vec![unnumbered, v6_id], vec![]);
    let d = w.decide();
    let link_local = BTreeMap::from([("eth1".to_string(), "fe80::1".parse::<Ipv6Addr>().unwrap())]);
    let secrets = BTreeMap::from([(("ns".to_string(), "bgp".to_string()), "pw".to_string())]);
    let none = BTreeMap::new();
    let none_secrets = BTreeMap::new();

    assert_eq!(engine_peer(&d.sessions["u"], &env_with(&none, &secrets)), Err(PeerConfigError::NoLinkLocal("eth1".into())));
    assert_eq!(
        engine_peer(&d.sessions["u"], &env_with(&link_local, &none_secrets)),
        Err(PeerConfigError::UnknownSecret { namespace: "ns".into(), name: "bgp".into() })
    );
    let cfg = engine_peer(&d.sessions["u"], &env_with(&link_local, &secrets)).unwrap();
    assert_eq!(cfg.address, "fe80::1".parse::<IpAddr>().unwrap());
    assert_eq!(cfg.interface.as_deref(), Some("eth1"));
    assert_eq!(cfg.peer_asn, PeerAsn::Internal);
    assert_eq!(cfg.password.as_deref(), Some("pw"));
    assert_eq!(cfg.families, Family::ALL.to_vec());
    assert_eq!(cfg.router_id, fallback_router_id(NODE));
    assert_eq!(
        engine_peer(&d.sessions["v6-id"], &env_with(&none, &none_secrets)),
        Err(PeerConfigError::RouterIdNotIpv4("2001:db8::1".parse().unwrap()))
    );
}

#[test]
fn fallback_router_id_is_the_little_endian_crc32_of_the_node_name() {
    // zlib.crc32(b"node1") in Python is 0x85ef2540.
    assert_eq!(fallback_router_id("node1"), Ipv4Addr::new(0x40, 0x25, 0xef, 0x85));
}

#[test]
fn engine_routes_encode_both_community_kinds() {
    let route = Route {
        local_pref: Some(10),
        communities: BTreeSet::from([community("64500:7"), community("large:1:2:3"), community("0:1")]),
    };
    let out = engine_routes(&BTreeMap::from([(net("198.51.100.0/24"), route)]));
    let ad = &out[&net("198.51.100.0/24")];
    assert_eq!(ad.local_pref, Some(10));
    assert_eq!(ad.communities, vec![1, (64500 << 16) | 7]);
    assert_eq!(ad.large_communities, vec![(1, 2, 3)]);
}
