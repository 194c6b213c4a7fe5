//! `ferrolb speaker` in BGP mode, end to end: the real API server, node
//! network namespaces each running the speaker binary as the
//! `metallb-system/speaker` ServiceAccount under the shipped RBAC, and FRR's
//! bgpd (and bfdd) in the router namespace, whose RIB is read as JSON.
//!
//! Needs root, iproute2 and the Debian package frr (scripts/test.sh installs
//! them); a missing bgpd fails the tests.

mod speaker_env;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_test_harness::apply_yaml;
use ferrolb_test_harness::routers::Daemon;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams};
use speaker_env::{Cluster, METALLB_NS, ServiceSpec};

const WAIT: Duration = Duration::from_secs(30);
const ROUTER_ASN: u32 = 64512;
const NODE_ASN: u32 = 64513;

/// Polls `ok` every 200 ms until it holds; panics with `what` and the
/// speakers' logs after `timeout`.
async fn wait_until(c: &Cluster, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// bgpd in the router namespace: AS 64512, every node a passive neighbor
/// (the speakers dial) in both families, ECMP over up to 8 paths.
fn router(c: &Cluster, tag: &str, neighbor_extra: &str, global_extra: &str) -> Daemon {
    let r = c.topo.router();
    let mut neighbors = String::new();
    let mut activate = String::new();
    for node in c.topo.nodes() {
        for addr in [IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)] {
            neighbors.push_str(&format!(" neighbor {addr} remote-as {NODE_ASN}\n neighbor {addr} passive\n"));
            for line in neighbor_extra.lines() {
                neighbors.push_str(&format!(" neighbor {addr} {line}\n"));
            }
            activate.push_str(&format!("  neighbor {addr} activate\n"));
        }
    }
    let conf = format!(
        "frr defaults traditional\nhostname router\nlog stdout informational\n!\nrouter bgp {ROUTER_ASN}\n bgp router-id {id}\n\
         no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n{global_extra}{neighbors} !\n\
         address-family ipv4 unicast\n{activate}  maximum-paths 8\n exit-address-family\n !\n\
         address-family ipv6 unicast\n{activate}  maximum-paths 8\n exit-address-family\n!\n",
        id = r.ipv4,
    );
    Daemon::bgpd(&r.ns, &format!("{}-{tag}", c.prefix), &conf)
}

/// Next hops of `prefix`'s paths in the router's RIB, sorted.
fn next_hops(frr: &Daemon, afi: &str, prefix: &str) -> Vec<String> {
    let mut hops: Vec<String> = frr
        .paths(afi, prefix)
        .iter()
        .filter_map(|p| p["nexthops"].as_array()?.first()?["ip"].as_str().map(str::to_string))
        .collect();
    hops.sort();
    hops
}

fn established_counts(c: &Cluster, frr: &Daemon) -> Vec<u64> {
    c.topo.nodes().iter().map(|n| frr.established_count(&n.ipv4.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_mode_ecmp_from_every_eligible_node_and_changes_without_a_session_reset() {
    let _serial = speaker_env::serial().await;
    let c = Cluster::start("bgpa", 2, 0).await;
    let frr = router(&c, "frr", "", "");
    let router_v4 = c.topo.router().ipv4;
    c.bgp_pool("web", 1, 4, false, "communities: [\"64512:100\"]").await;
    c.bgp_peer("router", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {router_v4}, holdTime: 9s")).await;
    let nodes: Vec<String> = c.topo.nodes().iter().map(|n| n.ipv4.to_string()).collect();
    wait_until(&c, "both speakers established with the router", WAIT, || nodes.iter().all(|n| frr.established(n))).await;

    // externalTrafficPolicy Cluster: every node advertises, the router has
    // one path per node (ECMP) with the advertisement's community.
    let web = c.bgp_vip(1);
    c.create_service(&ServiceSpec::new("web", &[IpAddr::V4(web)]).endpoints_on(&[1])).await;
    let web_prefix = format!("{web}/32");
    wait_until(&c, "a path from each node", WAIT, || next_hops(&frr, "ipv4", &web_prefix) == nodes).await;
    for path in frr.paths("ipv4", &web_prefix) {
        assert_eq!(path["community"]["string"], "64512:100", "community on {path}");
        assert_eq!(path["aspath"]["string"], NODE_ASN.to_string(), "eBGP AS_PATH {path}");
    }
    let sessions = established_counts(&c, &frr);
    // Each advertising node keeps its own ServiceBGPStatus naming the peer.
    c.wait_bgp_status("web", &[(1, &["router"]), (2, &["router"])]).await;

    // Local: only the node with a ready endpoint advertises.
    let local = c.bgp_vip(2);
    c.create_service(&ServiceSpec::new("local", &[IpAddr::V4(local)]).endpoints_on(&[2]).local()).await;
    let local_prefix = format!("{local}/32");
    wait_until(&c, "the Local Service only from node 2", WAIT, || next_hops(&frr, "ipv4", &local_prefix) == vec![nodes[1].clone()]).await;
    c.wait_bgp_status("local", &[(2, &["router"])]).await;

    // A new pool with its own advertisement (aggregated to /31) and a
    // Service of it: the route appears, no session is reset.
    c.bgp_pool("agg", 8, 2, false, "aggregationLength: 31").await;
    let agg = c.bgp_vip(9);
    c.create_service(&ServiceSpec::new("agg", &[IpAddr::V4(agg)]).endpoints_on(&[1, 2])).await;
    let agg_prefix = format!("{}/31", c.bgp_vip(8));
    wait_until(&c, "the aggregated route", WAIT, || next_hops(&frr, "ipv4", &agg_prefix) == nodes).await;
    assert!(frr.paths("ipv4", &format!("{agg}/32")).is_empty(), "only the aggregate is advertised");

    // An advertisement limited to node 1 by nodeSelectors.
    let pinned_ad = format!("nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: {}}}}}]", c.node_name(1));
    c.bgp_pool("pinned", 11, 2, false, &pinned_ad).await;
    let pinned = c.bgp_vip(11);
    c.create_service(&ServiceSpec::new("pinned", &[IpAddr::V4(pinned)]).endpoints_on(&[1, 2])).await;
    let pinned_prefix = format!("{pinned}/32");
    wait_until(&c, "the pinned route from node 1 only", WAIT, || next_hops(&frr, "ipv4", &pinned_prefix) == vec![nodes[0].clone()]).await;
    c.wait_bgp_status("pinned", &[(1, &["router"])]).await;

    // What the speaker says about it.
    let metrics = c.metrics(1);
    let peer_label = format!("peer=\"{router_v4}:179\"");
    assert!(metrics.lines().any(|l| l.starts_with("metallb_bgp_session_up") && l.contains(&peer_label) && l.ends_with(" 1")), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("metallb_bgp_announced_prefixes_total") && l.contains(&peer_label) && l.ends_with(" 3")), "{metrics}");
    assert!(metrics.contains(&format!("metallb_speaker_announced{{service=\"{}/web\",protocol=\"bgp\"", c.ns)), "{metrics}");
    c.wait_event("web", "nodeAssigned", "with protocol \"bgp\"").await.expect("nodeAssigned event");

    // Deleting a Service withdraws its prefix, from every node.
    let services: Api<Service> = Api::namespaced(c.admin.clone(), &c.ns);
    services.delete("web", &DeleteParams::default()).await.expect("delete web");
    wait_until(&c, "web's prefix withdrawn", WAIT, || frr.paths("ipv4", &web_prefix).is_empty()).await;
    c.wait_bgp_status("web", &[]).await;
    assert_eq!(next_hops(&frr, "ipv4", &local_prefix), vec![nodes[1].clone()], "the other routes stay");
    assert_eq!(established_counts(&c, &frr), sessions, "no session was reset by the changes");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_mode_ipv6_ibgp_local_pref_large_communities_and_md5_from_a_secret() {
    let _serial = speaker_env::serial().await;
    let c = Cluster::start_with_env("bgpb", 1, 1, &[("METALLB_BGP_TYPE", "frr")]).await;
    let r = c.topo.router();
    let node = &c.topo.nodes()[0];
    // The IPv4 neighbor wants an MD5 password; over IPv6 the node presents
    // the router's own AS (localASN), so the session is iBGP and carries
    // LOCAL_PREF.
    let conf = format!(
        "frr defaults traditional\nhostname router\nlog stdout informational\n!\nrouter bgp {ROUTER_ASN}\n bgp router-id {id}\n\
         no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n\
         neighbor {n4} remote-as {NODE_ASN}\n neighbor {n4} passive\n neighbor {n4} password s3cret-pw\n\
         neighbor {n6} remote-as {ROUTER_ASN}\n neighbor {n6} passive\n !\n\
         address-family ipv4 unicast\n  neighbor {n4} activate\n exit-address-family\n !\n\
         address-family ipv6 unicast\n  neighbor {n6} activate\n exit-address-family\n!\n",
        id = r.ipv4,
        n4 = node.ipv4,
        n6 = node.ipv6,
    );
    let frr = Daemon::bgpd(&r.ns, &format!("{}-frr", c.prefix), &conf);
    let secret = format!("{}-bgp-password", c.prefix);
    apply_yaml(
        &c.admin,
        &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}, namespace: {METALLB_NS}}}\ntype: kubernetes.io/basic-auth\nstringData: {{password: s3cret-pw}}\n"),
    )
    .await
    .expect("secret");
    c.bgp_pool(
        "dual",
        1,
        2,
        true,
        "localPref: 150, communities: [\"large:64512:7:9\", \"64512:200\"]",
    )
    .await;
    c.bgp_peer("v4", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {}, passwordSecret: {{name: {secret}}}", r.ipv4)).await;
    // localASN: the node presents the router's own AS to it, so iBGP.
    c.bgp_peer("v6", &format!("myASN: {NODE_ASN}, localASN: {ROUTER_ASN}, peerASN: {ROUTER_ASN}, peerAddress: \"{}\"", r.ipv6)).await;
    let (n4, n6) = (node.ipv4.to_string(), node.ipv6.to_string());
    wait_until(&c, "both sessions established (MD5 over IPv4)", WAIT, || frr.established(&n4) && frr.established(&n6)).await;

    let (v4, v6) = (c.bgp_vip(1), c.bgp_vip6(1));
    c.create_service(&ServiceSpec::new("dual", &[IpAddr::V4(v4), IpAddr::V6(v6)]).endpoints_on(&[1])).await;
    let (p4, p6) = (format!("{v4}/32"), format!("{v6}/128"));
    wait_until(&c, "both prefixes in the RIB", WAIT, || !frr.paths("ipv4", &p4).is_empty() && !frr.paths("ipv6", &p6).is_empty()).await;
    // FRR mode: each family only to the peer of its own family.
    let ebgp = &frr.paths("ipv4", &p4)[0];
    assert_eq!(ebgp["community"]["string"], "64512:200", "{ebgp}");
    assert_eq!(ebgp["largeCommunity"]["string"], "64512:7:9", "{ebgp}");
    assert!(ebgp.get("locPrf").is_none_or(|l| l != 150), "no LOCAL_PREF toward eBGP: {ebgp}");
    let ibgp = &frr.paths("ipv6", &p6)[0];
    assert_eq!(ibgp["locPrf"], 150, "LOCAL_PREF toward iBGP: {ibgp}");
    assert_eq!(ibgp["largeCommunity"]["string"], "64512:7:9", "{ibgp}");

    // A wrong password in the Secret: the session goes down and stays down.
    let wrong = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}, namespace: {METALLB_NS}}}\ntype: kubernetes.io/basic-auth\nstringData: {{password: not-it}}\n"
    );
    apply_yaml(&c.admin, &wrong).await.expect("secret");
    wait_until(&c, "the IPv4 session down after the password changed", WAIT, || !frr.established(&n4)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!frr.established(&n4), "a session with the wrong MD5 password came up");
    assert!(frr.established(&n6), "the other session is untouched");
    // Put right again: it comes back with its route.
    apply_yaml(
        &c.admin,
        &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}, namespace: {METALLB_NS}}}\ntype: kubernetes.io/basic-auth\nstringData: {{password: s3cret-pw}}\n"),
    )
    .await
    .expect("secret");
    wait_until(&c, "the IPv4 session and route back", WAIT, || frr.established(&n4) && !frr.paths("ipv4", &p4).is_empty()).await;
    drop(frr);
    c.shutdown().await;
}

/// `metallb_bgp_session_up` of speaker `i` toward `peer` (`addr:port`).
fn session_up(c: &Cluster, i: usize, peer: &str) -> Option<bool> {
    let label = format!("peer=\"{peer}\"");
    c.metrics(i)
        .lines()
        .find(|l| l.starts_with("metallb_bgp_session_up{") && l.contains(&label))
        .map(|l| l.ends_with(" 1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_down_takes_the_bgp_session_down_long_before_the_hold_timer() {
    let _serial = speaker_env::serial().await;
    let c = Cluster::start_with_env("bgpc", 1, 2, &[("METALLB_BGP_TYPE", "frr")]).await;
    let r = c.topo.router();
    let node = &c.topo.nodes()[0];
    let frr = router(&c, "frr", "", "");
    let (n4, r4) = (node.ipv4.to_string(), r.ipv4.to_string());
    let bfdd = Daemon::bfdd(&r.ns, &format!("{}-bfdd", c.prefix), &[(&n4, &r4, "")], 100);
    apply_yaml(
        &c.admin,
        &format!(
            "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: {}-fast, namespace: {METALLB_NS}}}\n\
             spec: {{receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}}\n",
            c.prefix
        ),
    )
    .await
    .expect("BFD profile");
    c.bgp_pool("web", 1, 2, false, "aggregationLength: 32").await;
    // FRR mode's default hold time (180 s) applies: only BFD can take the
    // session down within the wait below.
    c.bgp_peer("router", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {r4}, bfdProfile: {}-fast", c.prefix)).await;
    let peer = format!("{r4}:179");
    wait_until(&c, "BGP established and BFD up", WAIT, || {
        frr.established(&n4) && c.metrics(1).lines().any(|l| l.starts_with("metallb_bfd_session_up{") && l.contains(&r4) && l.ends_with(" 1"))
    })
    .await;
    assert!(bfdd.vtysh(&[&format!("show bfd peer {n4} local-address {r4} json")]).contains("\"status\":\"up\""));
    c.topo.router().ns.set_link("eth0", false).expect("router link down");
    let down_at = Instant::now();
    wait_until(&c, "the BGP session down through BFD", WAIT, || session_up(&c, 1, &peer) == Some(false)).await;
    eprintln!("BGP session down {:?} after the link went down (BFD detect time 300 ms)", down_at.elapsed());
    assert!(c.log(1).contains("BFD declared the path down"), "{}", c.logs());
    let up = c.wait_peer_event("router", "sessionUp").await.expect("sessionUp event");
    assert!(up.contains(&peer), "{up}");
    let down = c.wait_peer_event("router", "sessionDown").await.expect("sessionDown event");
    assert!(down.contains("went down"), "{down}");
    // The link comes back: BFD and BGP come back up, the route with them.
    c.topo.router().ns.set_link("eth0", true).expect("router link up");
    let prefix = format!("{}/32", c.bgp_vip(1));
    c.create_service(&ServiceSpec::new("web", &[IpAddr::V4(c.bgp_vip(1))]).endpoints_on(&[1])).await;
    wait_until(&c, "session and route back after the link", Duration::from_secs(60), || {
        session_up(&c, 1, &peer) == Some(true) && !frr.paths("ipv4", &prefix).is_empty()
    })
    .await;
    drop((frr, bfdd));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_the_routes_through_a_speaker_restart() {
    let _serial = speaker_env::serial().await;
    // FRR-K8s mode: served by the same engine, in process.
    let mut c = Cluster::start_with_env("bgpd", 1, 3, &[("METALLB_BGP_TYPE", "frr-k8s")]).await;
    let r4 = c.topo.router().ipv4.to_string();
    let n4 = c.topo.nodes()[0].ipv4.to_string();
    let frr = router(&c, "frr", "", " bgp graceful-restart\n");
    c.bgp_pool("web", 1, 2, false, "aggregationLength: 32").await;
    c.bgp_peer("router", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {r4}, enableGracefulRestart: true")).await;
    let vip = c.bgp_vip(1);
    c.create_service(&ServiceSpec::new("web", &[IpAddr::V4(vip)]).endpoints_on(&[1])).await;
    let prefix = format!("{vip}/32");
    wait_until(&c, "the route in the RIB", WAIT, || frr.established(&n4) && !frr.paths("ipv4", &prefix).is_empty()).await;
    let remote_gr = |frr: &Daemon| frr.json(&format!("show bgp neighbors {n4} json"))[&n4]["gracefulRestartInfo"]["remoteGrMode"].clone();
    assert_eq!(remote_gr(&frr), "Restart", "the router sees our graceful restart capability");

    // SIGTERM (a rolling upgrade) and a new speaker: the router keeps the
    // route (stale) the whole time, and takes it fresh afterwards.
    let before = frr.established_count(&n4);
    c.stop_speaker(1);
    let restart_at = Instant::now();
    let mut missing = 0;
    let mut started = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if frr.paths("ipv4", &prefix).is_empty() {
            missing += 1;
        }
        if !started && restart_at.elapsed() > Duration::from_secs(2) {
            c.start_speaker(1);
            started = true;
        }
        if started && frr.established_count(&n4) > before && frr.paths("ipv4", &prefix).iter().all(|p| p.get("stale").is_none()) {
            break;
        }
        assert!(Instant::now() < deadline, "the speaker did not come back\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(missing, 0, "the route left the RIB during the restart");
    assert_eq!(frr.paths("ipv4", &prefix).len(), 1, "no duplicate path after the restart");

    // Without graceful restart a stop withdraws at once (Cease). The field
    // cannot change on an existing peer (CEL), so the peer is replaced.
    Api::<ferrolb_api::v1beta2::BGPPeer>::namespaced(c.admin.clone(), METALLB_NS)
        .delete(&format!("{}-router", c.prefix), &DeleteParams::default())
        .await
        .expect("delete peer");
    c.bgp_peer("plain", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {r4}")).await;
    wait_until(&c, "the route back over a session without graceful restart", WAIT, || {
        frr.established(&n4) && !frr.paths("ipv4", &prefix).is_empty() && remote_gr(&frr) != "Restart"
    })
    .await;
    c.stop_speaker(1);
    wait_until(&c, "the route withdrawn after a stop without graceful restart", Duration::from_secs(5), || frr.paths("ipv4", &prefix).is_empty()).await;
    drop(frr);
    c.shutdown().await;
}

/// GoBGP's listening port: BIRD has 179 in the same router namespace.
const GOBGP_PORT: u16 = 1790;
/// GoBGP's own router addresses: in FRR mode two BGPPeers selecting one
/// node may not share an address.
const GOBGP_V4: &str = "198.51.100.2";
const GOBGP_V6: &str = "2001:db8::2";

/// BIRD and GoBGP in the router namespace, each with a passive eBGP
/// neighbor per node and family.
fn bird_and_gobgp(c: &Cluster) -> (Daemon, Daemon) {
    let r = c.topo.router();
    let mut bird = format!(
        "log stderr all;\nrouter id {id};\nprotocol device {{ }}\n\
         template bgp node {{ local as {ROUTER_ASN}; passive on; connect retry time 1; error wait time 1, 10; }}\n",
        id = r.ipv4
    );
    let mut gobgp = format!("[global.config]\n  as = {ROUTER_ASN}\n  router-id = \"{}\"\n  port = {GOBGP_PORT}\n", r.ipv4);
    for (i, node) in c.topo.nodes().iter().enumerate() {
        for (family, addr) in [("ipv4", IpAddr::V4(node.ipv4)), ("ipv6", IpAddr::V6(node.ipv6))] {
            bird.push_str(&format!(
                "protocol bgp n{i}_{family} from node {{ neighbor {addr} as {NODE_ASN}; {family} {{ import all; export none; }}; }}\n"
            ));
            gobgp.push_str(&format!(
                "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = {NODE_ASN}\n\
                 [neighbors.transport.config]\n    passive-mode = true\n\
                 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}-unicast\"\n"
            ));
        }
    }
    (Daemon::bird(&r.ns, &format!("{}-bird", c.prefix), &bird), Daemon::gobgpd(&r.ns, &format!("{}-gobgp", c.prefix), &gobgp))
}

/// The next hops BIRD holds for `prefix` (one route per neighbor).
fn bird_next_hops(bird: &Daemon, prefix: &str) -> Vec<String> {
    let text = bird.birdc(&format!("show route all for {prefix}"));
    let mut hops: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("BGP.next_hop:"))
        .filter_map(|h| h.split_whitespace().next().map(str::to_string))
        .collect();
    hops.sort();
    hops
}

/// The neighbors GoBGP has a path of `prefix` from.
fn gobgp_sources(gobgp: &Daemon, afi: &str, prefix: &str) -> Vec<String> {
    let rib = gobgp.gobgp(&format!("global rib -a {afi}"));
    let mut sources: Vec<String> = rib
        .get(prefix)
        .and_then(|paths| paths.as_array())
        .map(|paths| paths.iter().filter_map(|p| p["neighbor-ip"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    sources.sort();
    sources
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_and_gobgp_receive_every_node_over_ipv4_and_ipv6() {
    let _serial = speaker_env::serial().await;
    let c = Cluster::start_with_env("bgpe", 2, 4, &[("METALLB_BGP_TYPE", "frr")]).await;
    let r = c.topo.router();
    r.ns.add_address("eth0", GOBGP_V4.parse().expect("ip"), 24).expect("GoBGP's IPv4 address");
    r.ns.add_address("eth0", GOBGP_V6.parse().expect("ip"), 64).expect("GoBGP's IPv6 address");
    let (bird, gobgp) = bird_and_gobgp(&c);
    c.bgp_pool("dual", 1, 2, true, "communities: [\"64512:300\", \"large:64512:3:4\"]").await;
    for (name, bird_addr, gobgp_addr) in [("v4", r.ipv4.to_string(), GOBGP_V4), ("v6", r.ipv6.to_string(), GOBGP_V6)] {
        let peer = |addr: &str| format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: \"{addr}\"");
        c.bgp_peer(&format!("bird-{name}"), &peer(&bird_addr)).await;
        c.bgp_peer(&format!("gobgp-{name}"), &format!("{}, peerPort: {GOBGP_PORT}", peer(gobgp_addr))).await;
    }
    let (v4, v6) = (c.bgp_vip(1), c.bgp_vip6(1));
    c.create_service(&ServiceSpec::new("dual", &[IpAddr::V4(v4), IpAddr::V6(v6)]).endpoints_on(&[1])).await;
    let (p4, p6) = (format!("{v4}/32"), format!("{v6}/128"));
    let mut nodes4: Vec<String> = c.topo.nodes().iter().map(|n| n.ipv4.to_string()).collect();
    let mut nodes6: Vec<String> = c.topo.nodes().iter().map(|n| n.ipv6.to_string()).collect();
    nodes4.sort();
    nodes6.sort();
    wait_until(&c, "BIRD holds both prefixes from both nodes", WAIT, || {
        bird_next_hops(&bird, &p4) == nodes4 && bird_next_hops(&bird, &p6) == nodes6
    })
    .await;
    wait_until(&c, "GoBGP holds both prefixes from both nodes", WAIT, || {
        gobgp_sources(&gobgp, "ipv4", &p4) == nodes4 && gobgp_sources(&gobgp, "ipv6", &p6) == nodes6
    })
    .await;
    let route = bird.birdc(&format!("show route all for {p6}"));
    assert!(route.contains("(64512,300)"), "standard community at BIRD: {route}");
    assert!(route.contains("(64512, 3, 4)"), "large community at BIRD: {route}");
    c.wait_bgp_status("dual", &[(1, &["bird-v4", "bird-v6", "gobgp-v4", "gobgp-v6"]), (2, &["bird-v4", "bird-v6", "gobgp-v4", "gobgp-v6"])]).await;

    Api::<Service>::namespaced(c.admin.clone(), &c.ns).delete("dual", &DeleteParams::default()).await.expect("delete");
    wait_until(&c, "both routers withdraw both prefixes", WAIT, || {
        bird_next_hops(&bird, &p4).is_empty()
            && bird_next_hops(&bird, &p6).is_empty()
            && gobgp_sources(&gobgp, "ipv4", &p4).is_empty()
            && gobgp_sources(&gobgp, "ipv6", &p6).is_empty()
    })
    .await;
    drop((bird, gobgp));
    c.shutdown().await;
}

/// The link-local address of `dev` in namespace `ns`.
fn link_local(ns: &ferrolb_test_harness::netns::NetNs, dev: &str) -> String {
    let out = ns.output("ip", &["-6", "-o", "addr", "show", "dev", dev, "scope", "link"]).expect("ip addr");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no link-local address on {dev}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnumbered_peer_found_through_router_advertisements() {
    let _serial = speaker_env::serial().await;
    let c = Cluster::start_with_env("bgpf", 1, 5, &[("METALLB_BGP_TYPE", "frr")]).await;
    let r = c.topo.router();
    let node_ll = link_local(&c.topo.nodes()[0].ns, "eth0");
    let _radvd = Daemon::radvd(&r.ns, &format!("{}-radvd", c.prefix), "eth0");
    let bird = Daemon::bird(
        &r.ns,
        &format!("{}-bird", c.prefix),
        &format!(
            "log stderr all;\nrouter id {};\nprotocol device {{ }}\n\
             protocol bgp node {{ local as {ROUTER_ASN}; neighbor {node_ll} as {NODE_ASN}; interface \"eth0\"; passive on;\n\
             connect retry time 1; error wait time 1, 10; ipv6 {{ import all; export none; }}; }}\n",
            r.ipv4
        ),
    );
    c.bgp_pool("v6", 1, 2, true, "aggregationLength: 32").await;
    // No address: the router's link-local address on eth0 is learned from
    // its Router Advertisements.
    c.bgp_peer("unnumbered", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, interface: eth0")).await;
    let v6 = c.bgp_vip6(1);
    c.create_service(&ServiceSpec::new("v6", &[IpAddr::V6(v6)]).endpoints_on(&[1])).await;
    let prefix = format!("{v6}/128");
    wait_until(&c, "BIRD learns the prefix over the unnumbered session", Duration::from_secs(60), || {
        bird.birdc(&format!("show route all for {prefix}")).contains("BGP.next_hop")
    })
    .await;
    let router_ll = link_local(&r.ns, "eth0");
    let peer = format!("[{router_ll}]:179");
    assert_eq!(session_up(&c, 1, &peer), Some(true), "the session is with the router's link-local address\n{}", c.metrics(1));
    drop(bird);
    c.shutdown().await;
}

/// The BGPPeer fields that change how the connection is made, each against
/// its own FRR neighbor so that FRR's acceptance proves the field worked:
/// `vrf` (only a socket bound to the device reaches the peer), `sourceAddress`
/// with `dynamicASN` (FRR knows the node only by that address), and
/// `ebgpMultiHop` (FRR demands TTL ≥ 254 from that neighbor, GTSM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vrf_source_address_dynamic_asn_and_ebgp_multihop_shape_the_connection() {
    let _serial = speaker_env::serial().await;
    // Slot 5 as the unnumbered test: no room for a seventh (speaker_env::vip),
    // and the tests run one at a time, each deleting its objects.
    let c = Cluster::start_with_env("bgpg", 1, 5, &[("METALLB_BGP_TYPE", "frr")]).await;
    let r = c.topo.router();
    let node = &c.topo.nodes()[0];
    let ip = |ns: &ferrolb_test_harness::netns::NetNs, args: &[&str]| {
        ns.run("ip", args).unwrap_or_else(|e| panic!("ip {args:?} in {}: {e}", ns.name()));
    };
    // A second link to the router, 192.0.2.0/30, that the main table has no
    // route over (`noprefixroute`): only a socket bound to the device
    // (SO_BINDTODEVICE, what `vrf` sets) reaches the peer. This kernel has
    // no VRF support (CONFIG_NET_VRF unset), so the device is a plain veth
    // standing in for the VRF device; the VRF's own table is not exercised.
    ip(&node.ns, &["link", "add", "red", "type", "veth", "peer", "name", "red-r", "netns", r.ns.name()]);
    ip(&node.ns, &["addr", "add", "192.0.2.1/30", "dev", "red", "noprefixroute"]);
    ip(&node.ns, &["link", "set", "red", "up"]);
    ip(&r.ns, &["addr", "add", "192.0.2.2/30", "dev", "red-r"]);
    ip(&r.ns, &["link", "set", "red-r", "up"]);
    let main_table = node.ns.output("ip", &["route", "get", "192.0.2.2"]).expect("ip route get");
    assert!(!main_table.status.success(), "the main table must not reach the peer behind `red`");
    // Two more node addresses, each known to FRR as its own neighbor, and a
    // router loopback one routed hop away.
    ip(&node.ns, &["addr", "add", "198.51.100.99/24", "dev", "eth0"]);
    ip(&node.ns, &["addr", "add", "198.51.100.98/24", "dev", "eth0"]);
    ip(&r.ns, &["addr", "add", "203.0.113.254/32", "dev", "lo"]);
    ip(&node.ns, &["route", "add", "203.0.113.254/32", "via", &r.ipv4.to_string()]);

    let conf = format!(
        "frr defaults traditional\nhostname router\nlog stdout informational\n!\nrouter bgp {ROUTER_ASN}\n bgp router-id {id}\n\
         no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n\
         neighbor 192.0.2.1 remote-as {NODE_ASN}\n neighbor 192.0.2.1 passive\n\
         neighbor 198.51.100.99 remote-as {NODE_ASN}\n neighbor 198.51.100.99 passive\n\
         neighbor 198.51.100.98 remote-as {NODE_ASN}\n neighbor 198.51.100.98 passive\n neighbor 198.51.100.98 ttl-security hops 1\n !\n\
         address-family ipv4 unicast\n  neighbor 192.0.2.1 activate\n  neighbor 198.51.100.99 activate\n  neighbor 198.51.100.98 activate\n exit-address-family\n!\n",
        id = r.ipv4,
    );
    let frr = Daemon::bgpd(&r.ns, &format!("{}-frr", c.prefix), &conf);
    c.bgp_pool("web", 1, 1, false, "aggregationLength: 32").await;
    c.bgp_peer("red", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: 192.0.2.2, vrf: red")).await;
    c.bgp_peer("src", &format!("myASN: {NODE_ASN}, dynamicASN: external, peerAddress: {}, sourceAddress: 198.51.100.99", r.ipv4)).await;
    // Without ebgpMultiHop the speaker sends TTL 1, which GTSM drops.
    c.bgp_peer("hop1", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: 203.0.113.254, sourceAddress: 198.51.100.98")).await;
    wait_until(&c, "the VRF session and the sourceAddress/dynamicASN session", WAIT, || {
        frr.established("192.0.2.1") && frr.established("198.51.100.99")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!frr.established("198.51.100.98"), "a TTL-1 session passed FRR's TTL security");
    Api::<ferrolb_api::v1beta2::BGPPeer>::namespaced(c.admin.clone(), METALLB_NS)
        .delete(&format!("{}-hop1", c.prefix), &DeleteParams::default())
        .await
        .expect("delete peer");
    c.bgp_peer("hop255", &format!("myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: 203.0.113.254, sourceAddress: 198.51.100.98, ebgpMultiHop: true")).await;
    wait_until(&c, "the ebgpMultiHop session (TTL 255)", WAIT, || frr.established("198.51.100.98")).await;

    let vip = c.bgp_vip(1);
    c.create_service(&ServiceSpec::new("web", &[IpAddr::V4(vip)]).endpoints_on(&[1])).await;
    let prefix = format!("{vip}/32");
    wait_until(&c, "the route over all three sessions", WAIT, || frr.paths("ipv4", &prefix).len() == 3).await;
    assert_eq!(next_hops(&frr, "ipv4", &prefix), vec!["192.0.2.1", "198.51.100.98", "198.51.100.99"], "each session's own local address");
    c.wait_bgp_status("web", &[(1, &["hop255", "red", "src"])]).await;
    drop(frr);
    c.shutdown().await;
}
