//! Real-kernel tests: a Responder inside a network namespace, checked from a
//! "router" namespace with the kernel's own tools (arping, ping, ip neigh).
//! Run as root (CI is root); namespaces are named l2t-*.

mod support;

use std::time::Duration;

use ferrolb_l2::packet::{ArpOp, ArpPacket, Frame, Mac, NdpMessage, NeighborSolicitation, solicited_node};
use ferrolb_l2::{L2Report, ResponderConfig};
use socket2::{Domain, Protocol, Socket, Type};
use support::*;

fn mac(s: &str) -> Mac {
    s.parse().expect("mac")
}

fn ip_label(ip: &str) -> String {
    format!("ip=\"{ip}\"")
}

#[test]
fn answers_arp_and_ndp_then_falls_silent_when_withdrawn() {
    let t = Topology::new("basic");
    let node = NodeResponder::start(&t.node, ResponderConfig::default());

    // Nothing answers before the addresses are announced (the node's kernel
    // holds them on lo but must stay silent).
    assert_eq!(t.arping(VIP4), Vec::<String>::new(), "answered before announcing");

    node.announce(&[VIP4, VIP6]);
    t.wait_for("gratuitous packets counted", Duration::from_secs(5), || {
        node.metric("metallb_layer2_gratuitous_sent", &ip_label(VIP4)) >= 2
            && node.metric("metallb_layer2_gratuitous_sent", &ip_label(VIP6)) >= 1
    });

    assert_eq!(t.arping(VIP4), vec![NODE_MAC.to_string()]);
    t.flush_neighbours();
    assert!(t.ping(VIP4), "IPv4 ping to the VIP");
    assert_eq!(t.neighbour(VIP4).and_then(|n| n.0), Some(NODE_MAC.to_string()));
    assert!(t.ping(VIP6), "IPv6 ping to the VIP (resolved by a multicast solicitation)");
    assert_eq!(t.neighbour(VIP6).and_then(|n| n.0), Some(NODE_MAC.to_string()));

    let requests = node.metric("metallb_layer2_requests_received", &ip_label(VIP4));
    let responses = node.metric("metallb_layer2_responses_sent", &ip_label(VIP4));
    assert!(requests >= 2 && responses >= 2, "v4 requests {requests}, responses {responses}");
    assert!(node.metric("metallb_layer2_responses_sent", &ip_label(VIP6)) >= 1);

    // Withdrawn: silent at once, and the series are gone.
    node.announce(&[]);
    t.wait_for("series deleted", Duration::from_secs(5), || !node.metrics().contains(VIP4));
    t.flush_neighbours();
    assert_eq!(t.arping(VIP4), Vec::<String>::new(), "answered after withdrawal");
    assert!(!t.ping(VIP6), "IPv6 VIP still reachable after withdrawal");
    assert_eq!(t.neighbour(VIP6).and_then(|n| n.0), None, "IPv6 resolved after withdrawal");
}

#[test]
fn answers_unicast_neighbour_solicitations() {
    let t = Topology::new("ucast");
    let node = NodeResponder::start(&t.node, ResponderConfig::default());
    node.announce(&[VIP6]);
    t.wait_for("announced", Duration::from_secs(5), || {
        node.metric("metallb_layer2_gratuitous_sent", &ip_label(VIP6)) >= 1
    });
    // A STALE entry with our MAC: the next use goes DELAY -> PROBE, and the
    // router then sends only unicast solicitations to that MAC (RFC 4861
    // §7.3.3). Without an answer to those the entry ends FAILED after 3 probes;
    // REACHABLE needs a solicited advertisement answering them.
    t.sysctl(&t.router, &["net.ipv6.neigh.eth0.delay_first_probe_time=1"]);
    t.flush_neighbours();
    must(&["ip", "-n", &t.router, "-6", "neigh", "replace", VIP6, "lladdr", NODE_MAC, "dev", "eth0", "nud", "stale"]);
    let before = node.metric("metallb_layer2_requests_received", &ip_label(VIP6));
    assert!(t.ping(VIP6));
    t.wait_for("REACHABLE after unicast probes", Duration::from_secs(8), || {
        t.neighbour(VIP6).is_some_and(|(ll, state)| ll.as_deref() == Some(NODE_MAC) && state == "REACHABLE")
    });
    assert!(node.metric("metallb_layer2_requests_received", &ip_label(VIP6)) > before);
}

#[test]
fn sees_carrier_changes_at_once() {
    let t = Topology::new("carrier");
    // A long rescan interval: only netlink notifications can explain a quick update.
    let cfg = ResponderConfig { rescan_interval: Duration::from_secs(600), ..ResponderConfig::default() };
    let node = NodeResponder::start(&t.node, cfg);
    let eth0 = |node: &NodeResponder| node.interfaces().into_iter().find(|i| i.name == "eth0");
    let first = eth0(&node).expect("eth0 listed");
    assert!(first.arp_usable() && first.ndp_usable(), "{first:?}");
    assert_eq!(first.mac, mac(NODE_MAC).0);
    assert!(first.ipv4.iter().any(|n| n.to_string() == "198.51.100.11/24"), "{first:?}");
    assert!(first.link_local.is_some_and(|ll| ll.segments()[0] == 0xfe80), "{first:?}");
    assert!(!node.interfaces().iter().any(|i| i.name == "lo"), "lo is excluded by default");

    // The router's end going down takes the node's carrier away.
    must(&["ip", "-n", &t.router, "link", "set", "eth0", "down"]);
    t.wait_for("carrier loss seen", Duration::from_secs(2), || eth0(&node).is_some_and(|i| !i.carrier));
    must(&["ip", "-n", &t.router, "link", "set", "eth0", "up"]);
    t.wait_for("carrier back", Duration::from_secs(2), || eth0(&node).is_some_and(|i| i.carrier));
    node.announce(&[VIP4]);
    t.wait_for("answers again", Duration::from_secs(5), || t.arping(VIP4) == vec![NODE_MAC.to_string()]);
}

#[test]
fn reports_a_conflict_with_another_owner() {
    let t = Topology::new("conflict");
    // The router's kernel holds both VIPs on its interface: it answers our probes.
    must(&["ip", "-n", &t.router, "addr", "add", &format!("{VIP4}/24"), "dev", "eth0"]);
    must(&["ip", "-n", &t.router, "addr", "add", &format!("{VIP6}/64"), "dev", "eth0", "nodad"]);
    let node = NodeResponder::start(&t.node, ResponderConfig::default());
    node.announce(&[VIP4, VIP6]);
    let router_mac = mac(ROUTER_MAC).0;
    let conflict = |ip: &str| {
        let ip = ip.parse().expect("ip");
        L2Report::Conflict { ip, interface: "eth0".into(), mac: router_mac }
    };
    t.wait_for("both conflicts reported", Duration::from_secs(5), || {
        let r = node.reports();
        r.contains(&conflict(VIP4)) && r.contains(&conflict(VIP6))
    });
    assert!(node.metric("ferrolb_layer2_conflicts_total", &ip_label(VIP4)) >= 1);
}

/// Sends raw frames from inside a namespace (a dedicated thread enters it).
fn send_frames(netns: &str, frames: Vec<Vec<u8>>, pause_every: usize) {
    let netns = netns.to_string();
    std::thread::spawn(move || {
        enter_netns(&netns).expect("setns");
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0))).expect("packet socket");
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = if_index("eth0") as i32;
        addr.sll_halen = 6;
        for (i, frame) in frames.iter().enumerate() {
            // SAFETY: a valid sockaddr_ll and buffer for sendto.
            let rc = unsafe {
                libc::sendto(
                    std::os::fd::AsRawFd::as_raw_fd(&socket),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            // A full transmit queue under the flood just loses frames.
            let _ = rc;
            if pause_every > 0 && i % pause_every == pause_every - 1 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    })
    .join()
    .expect("sender thread");
}

#[test]
fn survives_malformed_frames_and_a_request_flood() {
    let t = Topology::new("flood");
    let node = NodeResponder::start(&t.node, ResponderConfig::default());
    node.announce(&[VIP4, VIP6]);
    t.wait_for("announced", Duration::from_secs(5), || {
        node.metric("metallb_layer2_gratuitous_sent", &ip_label(VIP4)) >= 2
    });

    let router = mac(ROUTER_MAC);
    let request = Frame::arp(
        Mac::BROADCAST,
        router,
        ArpPacket {
            op: ArpOp::Request,
            sha: router,
            spa: "198.51.100.1".parse().expect("ip"),
            tha: Mac::ZERO,
            tpa: VIP4.parse().expect("ip"),
        },
    )
    .encode();
    let vip6 = VIP6.parse().expect("ip");
    let group = solicited_node(&vip6);
    let ns = Frame::ndp(
        Mac::ipv6_multicast(&group),
        router,
        "2001:db8::1".parse().expect("ip"),
        group,
        NdpMessage::Solicitation(NeighborSolicitation { target: vip6, source_lla: Some(router) }),
    )
    .encode();

    // Malformed: cut-short ARP, ARP with a bad hardware type, NS with a bad
    // checksum, and bytes that merely look like ARP.
    let mut malformed = Vec::new();
    for i in 0..100u8 {
        malformed.push(request[..20 + usize::from(i % 20)].to_vec());
        let mut bad_type = request.clone();
        bad_type[15] = 7;
        malformed.push(bad_type);
        let mut bad_sum = ns.clone();
        bad_sum[57] ^= 0x5a;
        malformed.push(bad_sum);
        let mut junk: Vec<u8> = (0..60).map(|j| j ^ i.wrapping_mul(31)).collect();
        junk[12..14].copy_from_slice(&[0x08, 0x06]);
        malformed.push(junk);
    }
    send_frames(&t.router, malformed, 20);
    t.wait_for("malformed frames counted", Duration::from_secs(5), || {
        let m = node.metrics();
        ["truncated", "bad_hardware_type", "bad_checksum"]
            .iter()
            .all(|r| m.contains(&format!("ferrolb_layer2_frames_dropped_total{{reason=\"{r}\"}}")))
    });

    // A burst of valid requests, as fast as the router can send them.
    let mut flood = Vec::new();
    for _ in 0..5000 {
        flood.push(request.clone());
        flood.push(ns.clone());
    }
    send_frames(&t.router, flood, 0);
    // Wait until the queue is drained (the answer count stops moving).
    let mut answered = node.metric("metallb_layer2_responses_sent", &ip_label(VIP4));
    t.wait_for("flood drained", Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_millis(300));
        let now = node.metric("metallb_layer2_responses_sent", &ip_label(VIP4));
        std::mem::replace(&mut answered, now) == now
    });
    assert!(answered > 100, "only {answered} IPv4 answers during the flood");

    // Still answering afterwards.
    t.flush_neighbours();
    assert_eq!(t.arping(VIP4), vec![NODE_MAC.to_string()]);
    assert!(t.ping(VIP6));
    assert_eq!(t.neighbour(VIP6).and_then(|n| n.0), Some(NODE_MAC.to_string()));
    let dropped = |reason: &str| node.metric("ferrolb_layer2_frames_dropped_total", &format!("reason=\"{reason}\""));
    eprintln!(
        "flood of 10000 requests: {answered} IPv4 answers; dropped: {} on a full queue, {} by the kernel (socket buffer, counted so far)",
        dropped("queue_full"),
        dropped("socket_buffer_full")
    );
}

#[test]
fn gratuitous_announcements_move_existing_router_entries() {
    let t = Topology::new("garp");
    let node = NodeResponder::start(&t.node, ResponderConfig::default());
    // The router still points at a previous owner (failover). Gratuitous ARP
    // and unsolicited NA update existing entries (they create none: test-peers.md §3.5).
    for ip in [VIP4, VIP6] {
        must(&["ip", "-n", &t.router, "neigh", "replace", ip, "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale"]);
    }
    // Stay clear of the neighbour locktime (1 s) after that update.
    std::thread::sleep(Duration::from_millis(1100));
    node.announce(&[VIP4, VIP6]);
    t.wait_for("router entries moved to the node", Duration::from_secs(5), || {
        [VIP4, VIP6].iter().all(|ip| t.neighbour(ip).and_then(|n| n.0).as_deref() == Some(NODE_MAC))
    });
    assert_eq!(node.metric("metallb_layer2_requests_received", &ip_label(VIP4)), 0, "moved without any request");
}

#[test]
fn defends_against_duplicate_address_detection() {
    let t = Topology::new("dad");
    let node = NodeResponder::start(&t.node, ResponderConfig::default());
    node.announce(&[VIP6]);
    t.wait_for("announced", Duration::from_secs(5), || {
        node.metric("metallb_layer2_gratuitous_sent", &ip_label(VIP6)) >= 1
    });
    // The router tries to configure the announced address with DAD: our
    // answer to its DAD solicitation (NA to ff02::1) makes DAD fail.
    t.sysctl(&t.router, &["net.ipv6.conf.eth0.accept_dad=1"]);
    must(&["ip", "-n", &t.router, "addr", "add", &format!("{VIP6}/64"), "dev", "eth0"]);
    t.wait_for("router's DAD failed", Duration::from_secs(5), || {
        must(&["ip", "-n", &t.router, "-6", "addr", "show", "dev", "eth0"]).contains("dadfailed")
    });
    assert!(node.metric("metallb_layer2_requests_received", &ip_label(VIP6)) >= 1);
}
