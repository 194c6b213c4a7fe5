//! The engine on real kernels, in namespaces these tests create (root):
//! against FRR's bfdd (needs the `frr` package; fails if bfdd is missing)
//! and against itself. Durations are printed, never asserted; the limits
//! below only bound a hung test.

mod support;

use std::time::{Duration, Instant};

use ferrolb_bfd::packet::{ControlPacket, Diagnostic, State};
use ferrolb_bfd::{Bfd, Profile, SessionKey};
use support::*;

const LIMIT: Duration = Duration::from_secs(20);

fn key(peer: &str) -> SessionKey {
    SessionKey { peer: ip(peer), interface: Some("eth0".into()) }
}

#[test]
fn frr_bfdd_session_up_with_profile_intervals_and_link_down_detected() {
    let t = Topology::new("frr");
    let bfdd = Bfdd::start(&t.router, "frr", &[(NODE4, ROUTER4, ""), (NODE6, ROUTER6, "")], 100);
    let rt = runtime();
    let bfd = Bfd::new();
    let mut v4 = add(&t.node, &rt, &bfd, config(ROUTER4, NODE4, fast())).expect("add v4");
    let mut v6 = add(&t.node, &rt, &bfd, config(ROUTER6, NODE6, fast())).expect("add v6");
    let started = Instant::now();
    wait_status(&rt, &mut v4, "IPv4 Up", LIMIT, |s| s.state == State::Up);
    println!("IPv4 session Up after {:?}", started.elapsed());
    wait_status(&rt, &mut v6, "IPv6 Up", LIMIT, |s| s.state == State::Up);
    // bfdd agrees, with our 100 ms intervals once its poll has settled.
    wait_for("bfdd sees both sessions up with 100 ms remote timers", LIMIT, || {
        [(NODE4, ROUTER4), (NODE6, ROUTER6)].iter().all(|(p, l)| {
            let j = bfdd.peer(p, l);
            j.contains("\"status\":\"up\"")
                && j.contains("\"remote-receive-interval\":100")
                && j.contains("\"remote-transmit-interval\":100")
                && j.contains("\"remote-detect-multiplier\":3")
        })
    });
    let c = bfd.counters(&key(ROUTER4)).expect("counters");
    assert!(c.control_in.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(c.up_events.load(std::sync::atomic::Ordering::Relaxed), 1);

    // The router's link goes down: nothing arrives, our detection fires.
    t.link(&t.router, false);
    let cut = Instant::now();
    let s = wait_status(&rt, &mut v4, "IPv4 Down after link down", LIMIT, |s| s.state == State::Down);
    println!("IPv4 Down {:?} after the link went down (detect time 300 ms)", cut.elapsed());
    assert_eq!(s.diag, Diagnostic::ControlDetectionTimeExpired);
    let s = wait_status(&rt, &mut v6, "IPv6 Down after link down", LIMIT, |s| s.state == State::Down);
    assert_eq!(s.diag, Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(c.down_events.load(std::sync::atomic::Ordering::Relaxed), 1);

    t.link(&t.router, true);
    wait_status(&rt, &mut v4, "IPv4 Up again", LIMIT, |s| s.state == State::Up);
    wait_status(&rt, &mut v6, "IPv6 Up again", LIMIT, |s| s.state == State::Up);

    // Metrics under MetalLB's names.
    let mut registry = prometheus_client::registry::Registry::default();
    bfd.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(text.contains("metallb_bfd_session_up{peer=\"198.51.100.1\",vrf=\"\"} 1"), "{text}");
    assert!(text.contains("metallb_bfd_session_down_events{peer=\"198.51.100.1\",vrf=\"\"} 1"), "{text}");
    assert!(text.contains("metallb_bfd_control_packet_input{peer=\"2001:db8::1\",vrf=\"\"} "), "{text}");
    assert!(text.contains("metallb_bfd_echo_packet_output{peer=\"198.51.100.1\",vrf=\"\"} 0"), "{text}");
    drop(bfdd);
}

#[test]
fn frr_bfdd_admin_shutdown_is_seen() {
    let t = Topology::new("adm");
    let bfdd = Bfdd::start(&t.router, "adm", &[(NODE4, ROUTER4, "")], 100);
    let rt = runtime();
    let bfd = Bfd::new();
    let mut rx = add(&t.node, &rt, &bfd, config(ROUTER4, NODE4, fast())).expect("add");
    wait_status(&rt, &mut rx, "Up", LIMIT, |s| s.state == State::Up);
    let out = bfdd.vtysh(&["configure terminal", "bfd", &format!("peer {NODE4} local-address {ROUTER4}"), "shutdown"]);
    let s = wait_status(&rt, &mut rx, "Down after bfdd shutdown", LIMIT, |s| s.state == State::Down);
    assert_eq!(s.diag, Diagnostic::NeighborSignaledSessionDown, "vtysh said: {out}");
    assert_eq!(s.remote_state, State::AdminDown);
    bfdd.vtysh(&["configure terminal", "bfd", &format!("peer {NODE4} local-address {ROUTER4}"), "no shutdown"]);
    wait_status(&rt, &mut rx, "Up after no shutdown", LIMIT, |s| s.state == State::Up);
}

#[test]
fn passive_mode_waits_for_frr() {
    let t = Topology::new("pas");
    // Both sides passive: nobody speaks.
    let bfdd = Bfdd::start(&t.router, "pas", &[(NODE4, ROUTER4, "passive-mode")], 100);
    let rt = runtime();
    let bfd = Bfd::new();
    let passive = Profile { passive: true, ..fast() };
    let mut rx = add(&t.node, &rt, &bfd, config(ROUTER4, NODE4, passive)).expect("add");
    std::thread::sleep(Duration::from_secs(3));
    let c = bfd.counters(&key(ROUTER4)).expect("counters");
    assert_eq!(c.control_out.load(std::sync::atomic::Ordering::Relaxed), 0, "a passive session spoke first");
    assert_eq!(rx.borrow().state, State::Down);
    // bfdd turns active: it speaks, we answer, the session comes Up.
    bfdd.vtysh(&["configure terminal", "bfd", &format!("peer {NODE4} local-address {ROUTER4}"), "no passive-mode"]);
    wait_status(&rt, &mut rx, "Up once bfdd speaks", LIMIT, |s| s.state == State::Up);
    assert!(c.control_out.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

#[test]
fn engine_against_itself_v4_v6_profile_update_and_removal() {
    let t = Topology::new("self");
    let rt = runtime();
    let (a, b) = (Bfd::new(), Bfd::new());
    let mut a4 = add(&t.router, &rt, &a, config(NODE4, ROUTER4, fast())).expect("a v4");
    let mut a6 = add(&t.router, &rt, &a, config(NODE6, ROUTER6, fast())).expect("a v6");
    let mut b4 = add(&t.node, &rt, &b, config(ROUTER4, NODE4, fast())).expect("b v4");
    let mut b6 = add(&t.node, &rt, &b, config(ROUTER6, NODE6, fast())).expect("b v6");
    for (rx, what) in [(&mut a4, "a v4"), (&mut a6, "a v6"), (&mut b4, "b v4"), (&mut b6, "b v6")] {
        wait_status(&rt, rx, what, LIMIT, |s| s.state == State::Up);
    }
    // A slower profile while Up: Poll/Final, no flap.
    let slow = Profile { transmit_interval: Duration::from_millis(300), receive_interval: Duration::from_millis(300), ..fast() };
    a.update(&key(NODE4), slow).expect("update");
    std::thread::sleep(Duration::from_secs(2));
    let ca = a.counters(&key(NODE4)).expect("counters");
    let cb = b.counters(&key(ROUTER4)).expect("counters");
    for c in [&ca, &cb] {
        assert_eq!(c.up_events.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(c.down_events.load(std::sync::atomic::Ordering::Relaxed), 0, "profile update flapped the session");
    }
    assert_eq!(b4.borrow().state, State::Up);
    // Removing a's session tells b AdminDown.
    rt.block_on(a.remove(&key(NODE4))).expect("remove");
    let s = wait_status(&rt, &mut b4, "b Down after a's removal", LIMIT, |s| s.state == State::Down);
    assert_eq!(s.diag, Diagnostic::NeighborSignaledSessionDown);
    assert_eq!(b6.borrow().state, State::Up, "the IPv6 session is untouched");
}

#[test]
fn packet_with_ttl_254_is_dropped() {
    let t = Topology::new("ttl");
    let rt = runtime();
    let bfd = Bfd::new();
    let mut rx = add(&t.node, &rt, &bfd, config(ROUTER4, NODE4, fast())).expect("add");
    let c = bfd.counters(&key(ROUTER4)).expect("counters");
    let send = |ttl: u32| {
        in_netns(&t.router, &rt, || {
            let s = std::net::UdpSocket::bind((ip(ROUTER4), 49200)).expect("bind");
            s.set_ttl(ttl).expect("ttl");
            let p = ControlPacket::new(State::Down, 4242, 0).encode();
            s.send_to(&p, (ip(NODE4), 3784)).expect("send");
        })
    };
    send(254);
    wait_for("the TTL 254 packet counted", LIMIT, || c.discarded.load(std::sync::atomic::Ordering::Relaxed) == 1);
    assert_eq!(rx.borrow().state, State::Down, "a TTL 254 packet moved the session");
    send(255);
    wait_status(&rt, &mut rx, "Init from the TTL 255 packet", LIMIT, |s| s.state == State::Init);
    assert_eq!(c.discarded.load(std::sync::atomic::Ordering::Relaxed), 1);
}
