//! `ferrolb speaker` in layer 2 mode, end to end: the real API server, three
//! node network namespaces on one bridge each running the speaker binary as
//! the `metallb-system/speaker` ServiceAccount under the shipped RBAC, and a
//! router namespace asking with the kernel's own ARP and NDP.
//!
//! Needs root, iproute2, arping and python3 (scripts/test.sh installs them).

mod speaker_env;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_test_harness::probe;
use speaker_env::{Cluster, ServiceSpec};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_answers_arp_and_ndp_and_another_takes_over_after_sigkill() {
    let _serial = speaker_env::serial().await;
    let mut c = Cluster::start("l2a", 3, 0).await;
    let v4 = c.vip(0);
    let v6 = c.vip6(0);
    c.create_service(&ServiceSpec::new("web", &[IpAddr::V4(v4), IpAddr::V6(v6)]).endpoints_on(&[2])).await;

    let owner = c.wait_single_arp_owner(v4, WAIT).await;
    assert_eq!(owner, c.expected_owner("web", IpAddr::V4(v4)), "the MetalLB election (SHA-256 of node#ip) picks the owner");
    // NDP: multicast solicitation from the router's kernel-independent probe,
    // answered by the same node, and the router's own neighbour table agrees.
    let ndp = probe::ndp_who_has(&c.topo.router().ns, v6, Duration::from_secs(2)).expect("ndprobe runs");
    assert_eq!(ndp.as_deref(), Some(c.mac(owner)), "the owner answers the Neighbor Solicitation");
    c.ping6(v6);
    assert_eq!(probe::neigh(&c.topo.router().ns, IpAddr::V6(v6)).expect("ip neigh").map(|n| n.mac), Some(c.mac(owner).to_string()));
    // A unicast solicitation (the router re-checking a STALE entry) is answered too.
    c.make_stale(IpAddr::V6(v6));
    c.ping6(v6);
    let entry = probe::neigh(&c.topo.router().ns, IpAddr::V6(v6)).expect("ip neigh").expect("entry");
    assert!(entry.state.contains("REACHABLE") || entry.state.contains("DELAY") || entry.state.contains("PROBE"), "unicast NS answered: {entry:?}");

    // Traffic to the address reaches the owner's namespace.
    let _listener = c.listen(owner, SocketAddr::new(IpAddr::V4(v4), 8080));
    assert_eq!(
        probe::tcp_connect(&c.topo.router().ns, SocketAddr::new(IpAddr::V4(v4), 8080), Duration::from_secs(3)).expect("connect"),
        probe::TcpOutcome::Connected
    );
    c.wait_l2_status("web", Some(owner)).await;

    // SIGKILL the owner's speaker: another node answers, the router's entry moves.
    let old_mac = c.mac(owner).to_string();
    let killed_at = c.kill_speaker(owner);
    let answer = probe::watch_first_answer(c.topo.router(), v4, &old_mac, Instant::now() + WAIT)
        .expect("watching ARP")
        .expect("another node answers after the owner's speaker died");
    let failover = answer.at.duration_since(killed_at);
    eprintln!("failover after SIGKILL: {failover:?}");
    let new_owner = c.node_of_mac(&answer.mac);
    assert_ne!(new_owner, owner);
    assert_eq!(c.arp_owners(v4), vec![new_owner], "exactly one node answers after the failover");
    c.wait_l2_status("web", Some(new_owner)).await;

    // The failed node comes back: the address stays where it is (sticky).
    c.start_speaker(owner);
    c.wait_members(3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.arp_owners(v4), vec![new_owner], "the returning node does not take the address back");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_over_and_a_dead_link_moves_the_address() {
    let _serial = speaker_env::serial().await;
    let mut c = Cluster::start("l2b", 3, 1).await;
    let v4 = c.vip(0);
    c.create_service(&ServiceSpec::new("web", &[IpAddr::V4(v4)]).endpoints_on(&[1, 2, 3])).await;
    let owner = c.wait_single_arp_owner(v4, WAIT).await;

    // SIGTERM: the speaker says goodbye and the next node answers at once.
    let old_mac = c.mac(owner).to_string();
    let stopped_at = c.stop_speaker(owner);
    let answer = probe::watch_first_answer(c.topo.router(), v4, &old_mac, Instant::now() + WAIT)
        .expect("watching ARP")
        .expect("another node answers after a graceful stop");
    eprintln!("hand-over after SIGTERM: {:?}", answer.at.duration_since(stopped_at));
    let second = c.node_of_mac(&answer.mac);
    assert_eq!(c.arp_owners(v4), vec![second]);

    // The new owner's link goes down: the last node takes over.
    let second_mac = c.mac(second).to_string();
    c.topo.node(second).ns.set_link("eth0", false).expect("link down");
    let down_at = Instant::now();
    let answer = probe::watch_first_answer(c.topo.router(), v4, &second_mac, Instant::now() + WAIT)
        .expect("watching ARP")
        .expect("the remaining node answers after the owner's link went down");
    eprintln!("failover after link down: {:?}", answer.at.duration_since(down_at));
    let third = c.node_of_mac(&answer.mac);
    assert!(third != owner && third != second);
    assert_eq!(c.arp_owners(v4), vec![third]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertisement_rules_local_policy_selectors_interfaces_and_sharing() {
    let _serial = speaker_env::serial().await;
    let c = Cluster::start("l2c", 3, 2).await;
    // externalTrafficPolicy Local: only the node with the endpoint answers.
    let local = c.vip(0);
    c.create_service(&ServiceSpec::new("local", &[IpAddr::V4(local)]).endpoints_on(&[3]).local()).await;
    assert_eq!(c.wait_single_arp_owner(local, WAIT).await, 3);

    // Two Services sharing one address are announced by one node.
    let shared = c.vip(1);
    c.create_service(&ServiceSpec::new("shared-a", &[IpAddr::V4(shared)]).endpoints_on(&[1]).sharing("k")).await;
    c.create_service(&ServiceSpec::new("shared-b", &[IpAddr::V4(shared)]).endpoints_on(&[2]).sharing("k")).await;
    let shared_owner = c.wait_single_arp_owner(shared, WAIT).await;
    assert_eq!(shared_owner, c.expected_owner("shared-a", IpAddr::V4(shared)));

    // An IPv6-only Service.
    let v6 = c.vip6(2);
    c.create_service(&ServiceSpec::new("six", &[IpAddr::V6(v6)]).endpoints_on(&[1])).await;
    let six_owner = c.expected_owner("six", IpAddr::V6(v6));
    let ndp = wait_ndp(&c, v6).await;
    assert_eq!(ndp.as_deref(), Some(c.mac(six_owner)));

    // nodeSelectors: an advertisement for pool "pinned" that selects node2 only.
    let pinned = c.vip(3);
    c.pin_pool_to_node(3, 2).await;
    c.create_service(&ServiceSpec::new("pinned", &[IpAddr::V4(pinned)]).endpoints_on(&[1, 3])).await;
    assert_eq!(c.wait_single_arp_owner(pinned, WAIT).await, 2);

    // serviceSelectors: the advertisement of pool 5 announces only Services
    // labelled tier=front; an unlabelled Service on the same address is not
    // announced through it (and, sharing the address with a selective
    // advertisement, would not be anyway: speaker.md §3.2 step 3).
    let selective = c.vip(5);
    c.select_services(5, "tier", "front").await;
    c.create_service(&ServiceSpec::new("back", &[IpAddr::V4(selective)]).endpoints_on(&[1])).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(c.arp_owners(selective).is_empty(), "a Service the serviceSelectors do not match is not announced");
    c.create_service(&ServiceSpec::new("front", &[IpAddr::V4(selective)]).endpoints_on(&[1]).label("tier", "front")).await;
    assert_eq!(c.wait_single_arp_owner(selective, WAIT).await, c.expected_owner("front", IpAddr::V4(selective)));

    // interfaces naming an interface the owner lacks: nothing answers, and
    // the speaker says why in an event.
    let nowhere = c.vip(4);
    c.restrict_pool_to_interface(4, "eth7").await;
    c.create_service(&ServiceSpec::new("nowhere", &[IpAddr::V4(nowhere)]).endpoints_on(&[1])).await;
    let ev = c.wait_event("nowhere", "announceFailed", "doesn't exist").await.expect("announceFailed event");
    assert!(ev.contains(&nowhere.to_string()), "{ev}");
    assert!(c.arp_owners(nowhere).is_empty(), "no node answers on an interface it does not have");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_checks_strict_arp_and_a_second_answerer() {
    let _serial = speaker_env::serial().await;
    let mut c = Cluster::start("l2d", 3, 3).await;
    let v4 = c.vip(0);
    c.create_service(&ServiceSpec::new("web", &[IpAddr::V4(v4)]).endpoints_on(&[1])).await;
    let owner = c.wait_single_arp_owner(v4, WAIT).await;

    // Another node's kernel also answers for the address (as with kube-proxy
    // IPVS without strictARP): the owner's probe sees the foreign reply.
    let other = (1..=3).find(|n| *n != owner).expect("three nodes");
    c.topo.node(other).ns.sysctl(&[("net.ipv4.conf.all.arp_ignore", "0")]).expect("sysctl");
    c.topo.node(other).ns.add_address("eth0", IpAddr::V4(v4), 32).expect("address");
    let ev = c.wait_event("web", "duplicateAnswer", c.mac(other)).await.expect("duplicateAnswer event");
    assert!(ev.contains(&v4.to_string()), "{ev}");
    c.topo.node(other).ns.del_address("eth0", IpAddr::V4(v4), 32).expect("address");

    // kube-ipvs0 present and arp_ignore/arp_announce not strict: warning on the Node.
    let node = c.topo.node(owner).ns.clone();
    node.run("ip", &["link", "add", "kube-ipvs0", "type", "bridge"]).expect("kube-ipvs0");
    node.sysctl(&[("net.ipv4.conf.all.arp_ignore", "0"), ("net.ipv4.conf.all.arp_announce", "0")]).expect("sysctl");
    c.stop_speaker(owner);
    c.start_speaker(owner);
    let ev = c.wait_node_event(owner, "strictARPDisabled").await.expect("strictARPDisabled event");
    assert!(ev.contains("strictARP"), "{ev}");
    c.shutdown().await;
}

async fn wait_ndp(c: &Cluster, ip: Ipv6Addr) -> Option<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = probe::ndp_who_has(&c.topo.router().ns, ip, Duration::from_millis(500)).expect("ndprobe runs");
        if answer.is_some() || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
