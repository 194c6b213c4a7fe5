//! The engine against BIRD 2 and GoBGP 3 in network namespaces (root):
//! eBGP over IPv4 and IPv6 with communities and large communities, iBGP
//! with LOCAL_PREF (BIRD), and withdrawal.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Daemon, NODE_V4, NODE_V6, ROUTER_V4, ROUTER_V6, Topology, wait_for, wait_up};
use ferrolb_bgp::packet::Family;
use ferrolb_bgp::rib_out::Advertisement;
use ferrolb_bgp::speaker::{PeerConfig, Speaker};
use ipnet::IpNet;

const LONG: Duration = Duration::from_secs(30);

/// A session of the engine carrying one address family.
fn peer(my_asn: u32, peer_asn: u32, addr: &str, family: Family) -> PeerConfig {
    let mut p = common::peer(my_asn, peer_asn, addr);
    p.families = vec![family];
    p
}

fn one(prefix: &str, ad: Advertisement) -> BTreeMap<IpNet, Advertisement> {
    BTreeMap::from([(prefix.parse().expect("prefix"), ad)])
}

fn ad() -> Advertisement {
    Advertisement {
        local_pref: Some(150),
        communities: vec![(64512 << 16) | 100],
        large_communities: vec![(64512, 1, 2)],
    }
}

const BIRD_CONF: &str = r#"
log stderr all;
router id 198.51.100.1;
protocol device { }
template bgp speaker {
  local as 64500;
  passive on;
  hold time 3;
  keepalive time 1;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 10;
}
protocol bgp node_v4 from speaker {
  neighbor 198.51.100.11 as 64512;
  ipv4 { import all; export none; };
}
protocol bgp node_v6 from speaker {
  neighbor 2001:db8::11 as 64512;
  ipv6 { import all; export none; };
}
"#;

#[test]
fn bird_ebgp_ipv4_ipv6_communities_and_withdraw() {
    let topo = Topology::new();
    let bird = std::sync::Arc::new(topo.bird(BIRD_CONF));
    let b = bird.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let speaker = Speaker::start(&[]).expect("speaker");
            speaker.set_peer("v4", peer(64512, 64500, ROUTER_V4, Family::Ipv4Unicast));
            speaker.set_peer("v6", peer(64512, 64500, ROUTER_V6, Family::Ipv6Unicast));
            speaker.set_routes("v4", one("203.0.113.10/32", ad()));
            speaker.set_routes("v6", one("2001:db8:ffff::10/128", ad()));
            wait_up(&speaker, "v4", LONG).await;
            wait_up(&speaker, "v6", LONG).await;
            let text = wait_for("IPv4 route at BIRD", LONG, || {
                let t = b.birdc("show route all for 203.0.113.10/32");
                t.contains("BGP.next_hop").then_some(t)
            })
            .await;
            assert!(text.contains(&format!("BGP.next_hop: {NODE_V4}")), "{text}");
            assert!(text.contains("BGP.as_path: 64512"), "{text}");
            assert!(text.contains("BGP.community: (64512,100)"), "{text}");
            assert!(
                text.contains("BGP.large_community: (64512, 1, 2)"),
                "{text}"
            );
            // BIRD shows its own default 100 for eBGP routes: our 150 must not arrive.
            assert!(!text.contains("BGP.local_pref: 150"), "{text}");
            let text = wait_for("IPv6 route at BIRD", LONG, || {
                let t = b.birdc("show route all for 2001:db8:ffff::10/128");
                t.contains("BGP.next_hop").then_some(t)
            })
            .await;
            assert!(text.contains(&format!("BGP.next_hop: {NODE_V6}")), "{text}");
            assert!(
                text.contains("BGP.large_community: (64512, 1, 2)"),
                "{text}"
            );
            speaker.set_routes("v4", BTreeMap::new());
            speaker.set_routes("v6", BTreeMap::new());
            wait_for("withdrawal at BIRD", LONG, || {
                let a = b.birdc("show route all for 203.0.113.10/32");
                let c = b.birdc("show route all for 2001:db8:ffff::10/128");
                (!a.contains("BGP.") && !c.contains("BGP.")).then_some(())
            })
            .await;
            speaker.shutdown().await;
        })
    });
}

#[test]
fn bird_ibgp_local_pref() {
    let topo = Topology::new();
    let conf = BIRD_CONF.replace(
        "protocol bgp node_v4 from speaker {\n  neighbor 198.51.100.11 as 64512;",
        "protocol bgp node_v4 from speaker {\n  neighbor 198.51.100.11 as 64500;\n  direct;",
    );
    let bird = std::sync::Arc::new(topo.bird(&conf));
    let b = bird.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let speaker = Speaker::start(&[]).expect("speaker");
            speaker.set_peer("v4", peer(64500, 64500, ROUTER_V4, Family::Ipv4Unicast));
            speaker.set_routes("v4", one("203.0.113.10/32", ad()));
            wait_up(&speaker, "v4", LONG).await;
            let text = wait_for("iBGP route at BIRD", LONG, || {
                let t = b.birdc("show route all for 203.0.113.10/32");
                t.contains("BGP.next_hop").then_some(t)
            })
            .await;
            assert!(text.contains("BGP.local_pref: 150"), "{text}");
            assert!(text.contains(&format!("BGP.next_hop: {NODE_V4}")), "{text}");
            speaker.shutdown().await;
        })
    });
}

const GOBGP_CONF: &str = r#"
[global.config]
  as = 64500
  router-id = "198.51.100.1"

[[neighbors]]
  [neighbors.config]
    neighbor-address = "198.51.100.11"
    peer-as = 64512
  [neighbors.transport.config]
    passive-mode = true
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 3
    keepalive-interval = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"

[[neighbors]]
  [neighbors.config]
    neighbor-address = "2001:db8::11"
    peer-as = 64512
  [neighbors.transport.config]
    passive-mode = true
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 3
    keepalive-interval = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#;

/// Attributes of the first path of `prefix` by type code.
fn gobgp_attrs(d: &Daemon, afi: &str, prefix: &str) -> Option<BTreeMap<u64, serde_json::Value>> {
    let v = d.gobgp(&format!("global rib -a {afi}"));
    let attrs = v.get(prefix)?.get(0)?.get("attrs")?.as_array()?.clone();
    Some(
        attrs
            .into_iter()
            .filter_map(|a| Some((a.get("type")?.as_u64()?, a)))
            .collect(),
    )
}

#[test]
fn gobgp_ebgp_ipv4_ipv6_communities_and_withdraw() {
    let topo = Topology::new();
    let g = std::sync::Arc::new(topo.gobgpd(GOBGP_CONF));
    let gd = g.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let speaker = Speaker::start(&[]).expect("speaker");
            speaker.set_peer("v4", peer(64512, 64500, ROUTER_V4, Family::Ipv4Unicast));
            speaker.set_peer("v6", peer(64512, 64500, ROUTER_V6, Family::Ipv6Unicast));
            speaker.set_routes("v4", one("203.0.113.10/32", ad()));
            speaker.set_routes("v6", one("2001:db8:ffff::10/128", ad()));
            wait_up(&speaker, "v4", LONG).await;
            wait_up(&speaker, "v6", LONG).await;
            let a = wait_for("IPv4 route at GoBGP", LONG, || {
                gobgp_attrs(&gd, "ipv4", "203.0.113.10/32")
            })
            .await;
            assert_eq!(a[&3]["nexthop"], NODE_V4, "{a:?}");
            assert_eq!(
                a[&8]["communities"],
                serde_json::json!([(64512u64 << 16) | 100]),
                "{a:?}"
            );
            assert!(
                a.contains_key(&32),
                "large community attribute missing: {a:?}"
            );
            assert!(!a.contains_key(&5), "no LOCAL_PREF toward eBGP: {a:?}");
            let a = wait_for("IPv6 route at GoBGP", LONG, || {
                gobgp_attrs(&gd, "ipv6", "2001:db8:ffff::10/128")
            })
            .await;
            assert_eq!(a[&14]["nexthop"], NODE_V6, "{a:?}");
            speaker.set_routes("v4", BTreeMap::new());
            speaker.set_routes("v6", BTreeMap::new());
            wait_for("withdrawal at GoBGP", LONG, || {
                (gobgp_attrs(&gd, "ipv4", "203.0.113.10/32").is_none()
                    && gobgp_attrs(&gd, "ipv6", "2001:db8:ffff::10/128").is_none())
                .then_some(())
            })
            .await;
            speaker.shutdown().await;
        })
    });
}
