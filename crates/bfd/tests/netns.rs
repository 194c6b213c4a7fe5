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

/// Echo against FRR's bfdd (with zebra), IPv4 and IPv6: echo packets flow
/// both ways (ours looped by the router's forwarding plane; bfdd's IPv4
/// ones by ours, its IPv6 ones by our reflector), the control rate drops to
/// once a second, and when the router stops forwarding our echo packets the
/// session falls with EchoFunctionFailed within the echo detection time
/// (50 ms x 3) while control packets keep flowing.
#[test]
fn frr_bfdd_echo_v4_v6_and_broken_echo_path_detected() {
    use std::sync::atomic::Ordering::Relaxed;
    let t = Topology::new("echo");
    // The router loops our echo packets; we loop bfdd's IPv4 ones.
    t.sysctl(&t.router, &[("net.ipv4.ip_forward", "1"), ("net.ipv6.conf.all.forwarding", "1")]);
    t.sysctl(&t.node, &[("net.ipv4.ip_forward", "1")]);
    let echo_lines = "echo-mode\necho transmit-interval 50\necho receive-interval 50";
    let bfdd = Bfdd::start_with_zebra(&t.router, "echo", &[(NODE4, ROUTER4, echo_lines), (NODE6, ROUTER6, echo_lines)], 100);
    let rt = runtime();
    let bfd = Bfd::new();
    let echo = Profile { echo_mode: true, echo_interval: Duration::from_millis(50), ..fast() };
    let mut v4 = add(&t.node, &rt, &bfd, config(ROUTER4, NODE4, echo.clone())).expect("add v4");
    let mut v6 = add(&t.node, &rt, &bfd, config(ROUTER6, NODE6, echo)).expect("add v6");
    wait_status(&rt, &mut v4, "IPv4 Up", LIMIT, |s| s.state == State::Up);
    wait_status(&rt, &mut v6, "IPv6 Up", LIMIT, |s| s.state == State::Up);
    let (c4, c6) = (bfd.counters(&key(ROUTER4)).expect("c4"), bfd.counters(&key(ROUTER6)).expect("c6"));
    // Our echo packets come back, bfdd's IPv6 ones are reflected by us, and
    // we ask bfdd for control packets once a second (echo runs).
    wait_for("echo packets back on both sessions", LIMIT, || {
        c4.echo_in.load(Relaxed) > 20 && c6.echo_in.load(Relaxed) > 20 && c6.echo_reflected.load(Relaxed) > 0
    });
    wait_for("bfdd sees 1 s control RX and 50 ms echo RX from us", LIMIT, || {
        [(NODE4, ROUTER4), (NODE6, ROUTER6)].iter().all(|(p, l)| {
            let j = bfdd.peer(p, l);
            j.contains("\"status\":\"up\"")
                && j.contains("\"remote-receive-interval\":1000")
                && j.contains("\"remote-echo-receive-interval\":50")
        })
    });
    // bfdd's own IPv4 echo comes back through our forwarding plane.
    let counters = bfdd.vtysh(&[&format!("show bfd peer {NODE4} local-address {ROUTER4} counters json")]);
    let compact: String = counters.split_whitespace().collect();
    assert!(compact.contains("\"echo-packet-output\":") && !compact.contains("\"echo-packet-input\":0,"), "{counters}");
    println!("bfdd IPv4 counters: {compact}");
    assert_eq!(v4.borrow().falls, 0, "no fall while echo works");

    // The router stops forwarding: our echo packets are lost, bfdd's control
    // packets and its own echo (looped by us) are not.
    for (rx, c, v6, off) in [
        (&mut v4, &c4, false, [("net.ipv4.conf.all.forwarding", "0"), ("net.ipv4.conf.eth0.forwarding", "0")]),
        (&mut v6, &c6, true, [("net.ipv6.conf.all.forwarding", "0"), ("net.ipv6.conf.eth0.forwarding", "0")]),
    ] {
        let control_before = c.control_in.load(Relaxed);
        t.sysctl(&t.router, &off);
        let cut = Instant::now();
        let s = wait_status(&rt, rx, "a fall after the echo path broke", LIMIT, |s| s.falls >= 1);
        let after = cut.elapsed();
        let fall = s.last_fall.expect("last fall");
        println!(
            "{} echo failure: fall {:?} after forwarding off (echo detect 150 ms; control detect {} ms)",
            if v6 { "IPv6" } else { "IPv4" },
            fall.at.duration_since(cut),
            3 * 1000
        );
        assert_eq!(fall.diag, Diagnostic::EchoFunctionFailed);
        assert!(after < Duration::from_secs(1), "echo failure took {after:?}");
        wait_for("control packets still flowing", LIMIT, || c.control_in.load(Relaxed) > control_before + 2);
    }
    // Metrics count echo for real.
    let mut registry = prometheus_client::registry::Registry::default();
    bfd.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for peer in [ROUTER4, ROUTER6] {
        for name in ["metallb_bfd_echo_packet_input", "metallb_bfd_echo_packet_output"] {
            let line = text.lines().find(|l| l.starts_with(&format!("{name}{{peer=\"{peer}\""))).expect("series");
            let n: u64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("value");
            assert!(n > 0, "{line}");
        }
    }
    drop(bfdd);
}
