//! The engine against FRR 8 bgpd in network namespaces (root): eBGP over
//! IPv4 and IPv6 with communities, iBGP with LOCAL_PREF, withdrawal, hold
//! timer expiry and router restart, TCP MD5, and a malformed peer next to a
//! healthy session.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use common::{NODE_V4, NODE_V6, ROUTER_V4, ROUTER_V6, Topology, peer, wait_for, wait_up};
use ferrolb_bgp::packet::Family;
use ferrolb_bgp::rib_out::Advertisement;
use ferrolb_bgp::speaker::Speaker;
use ipnet::IpNet;

const LONG: Duration = Duration::from_secs(30);

fn frr_conf(neighbors: &str, v4: &[&str], v6: &[&str]) -> String {
    let act = |ns: &[&str]| {
        ns.iter()
            .map(|n| format!("  neighbor {n} activate\n"))
            .collect::<String>()
    };
    format!(
        "frr defaults traditional\nhostname router\nlog stdout informational\n!\nrouter bgp 64500\n bgp router-id 198.51.100.1\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n{neighbors} !\n address-family ipv4 unicast\n{} exit-address-family\n !\n address-family ipv6 unicast\n{} exit-address-family\n!\n",
        act(v4),
        act(v6)
    )
}

fn neighbor(addr: &str, remote_as: &str, extra: &str) -> String {
    format!(
        " neighbor {addr} remote-as {remote_as}\n neighbor {addr} passive\n neighbor {addr} timers 1 3\n neighbor {addr} timers connect 1\n{extra}"
    )
}

fn routes(list: &[(&str, Advertisement)]) -> BTreeMap<IpNet, Advertisement> {
    list.iter()
        .map(|(p, a)| (p.parse().expect("prefix"), a.clone()))
        .collect()
}

fn comm(a: u32, b: u32) -> u32 {
    (a << 16) | b
}

#[test]
fn frr_ebgp_ipv4_and_ipv6_with_communities_then_withdraw() {
    let topo = Topology::new();
    let conf = frr_conf(
        &(neighbor(NODE_V4, "64512", "") + &neighbor(NODE_V6, "64512", "")),
        &[NODE_V4],
        &[NODE_V6],
    );
    let frr = topo.bgpd("frr", &conf);
    let frr = std::sync::Arc::new(frr);
    let f = frr.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let frr = f;
            let speaker = Speaker::start(&[]).expect("speaker");
            let mut p4 = peer(64512, 64500, ROUTER_V4);
            p4.families = vec![Family::Ipv4Unicast];
            let mut p6 = peer(64512, 64500, ROUTER_V6);
            p6.families = vec![Family::Ipv6Unicast];
            speaker.set_peer("v4", p4);
            speaker.set_peer("v6", p6);
            let ad = Advertisement {
                local_pref: Some(300),
                communities: vec![comm(64512, 100)],
                large_communities: vec![(64512, 1, 2)],
            };
            speaker.set_routes("v4", routes(&[("203.0.113.10/32", ad.clone())]));
            speaker.set_routes("v6", routes(&[("2001:db8:ffff::10/128", ad.clone())]));
            wait_up(&speaker, "v4", LONG).await;
            wait_up(&speaker, "v6", LONG).await;

            let p = wait_for("IPv4 route at FRR", LONG, || {
                frr.path("ipv4", "203.0.113.10/32")
            })
            .await;
            assert_eq!(p["nexthops"][0]["ip"], NODE_V4, "{p}");
            assert_eq!(p["aspath"]["string"], "64512", "{p}");
            assert_eq!(
                p["community"]["list"],
                serde_json::json!(["64512:100"]),
                "{p}"
            );
            assert_eq!(
                p["largeCommunity"]["list"],
                serde_json::json!(["64512:1:2"]),
                "{p}"
            );
            assert!(
                p.get("locPrf").is_none(),
                "LOCAL_PREF must not reach an eBGP peer: {p}"
            );

            let p = wait_for("IPv6 route at FRR", LONG, || {
                frr.path("ipv6", "2001:db8:ffff::10/128")
            })
            .await;
            assert_eq!(p["nexthops"][0]["ip"], NODE_V6, "{p}");
            assert_eq!(
                p["community"]["list"],
                serde_json::json!(["64512:100"]),
                "{p}"
            );
            assert_eq!(
                p["largeCommunity"]["list"],
                serde_json::json!(["64512:1:2"]),
                "{p}"
            );

            let before = speaker.status().borrow()["v4"].clone();
            speaker.set_routes("v4", BTreeMap::new());
            speaker.set_routes("v6", BTreeMap::new());
            wait_for("IPv4 withdrawal", LONG, || {
                frr.path("ipv4", "203.0.113.10/32").is_none().then_some(())
            })
            .await;
            wait_for("IPv6 withdrawal", LONG, || {
                frr.path("ipv6", "2001:db8:ffff::10/128")
                    .is_none()
                    .then_some(())
            })
            .await;
            let after = speaker.status().borrow()["v4"].clone();
            assert_eq!(
                after.established_count, before.established_count,
                "route changes must not reset the session"
            );
            assert!(after.updates_sent > before.updates_sent);
            assert_eq!(after.prefixes_advertised, 0);
            speaker.shutdown().await;
        })
    });
}

#[test]
fn frr_ibgp_local_pref_and_next_hop() {
    let topo = Topology::new();
    let frr = std::sync::Arc::new(topo.bgpd("frr",
        &frr_conf(&neighbor(NODE_V4, "internal", ""), &[NODE_V4], &[]),
    ));
    let f = frr.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let speaker = Speaker::start(&[]).expect("speaker");
            let mut p = peer(64500, 64500, ROUTER_V4);
            p.families = vec![Family::Ipv4Unicast];
            speaker.set_peer("r", p);
            speaker.set_routes(
                "r",
                routes(&[
                    (
                        "203.0.113.0/24",
                        Advertisement {
                            local_pref: Some(150),
                            communities: vec![comm(64500, 200)],
                            ..Default::default()
                        },
                    ),
                    ("198.51.100.200/32", Advertisement::default()),
                ]),
            );
            wait_up(&speaker, "r", LONG).await;
            let p = wait_for("iBGP route", LONG, || f.path("ipv4", "203.0.113.0/24")).await;
            assert_eq!(p["locPrf"], 150, "{p}");
            assert_eq!(p["peer"]["type"], "internal", "{p}");
            assert_eq!(p["nexthops"][0]["ip"], NODE_V4, "{p}");
            assert_eq!(
                p["community"]["list"],
                serde_json::json!(["64500:200"]),
                "{p}"
            );
            let p = wait_for("iBGP default local pref", LONG, || {
                f.path("ipv4", "198.51.100.200/32")
            })
            .await;
            assert_eq!(p["locPrf"], 100, "{p}");
            speaker.shutdown().await;
        })
    });
}

#[test]
fn frr_hold_timer_expiry_and_router_restart_readvertise() {
    let topo = Topology::new();
    let conf = frr_conf(&neighbor(NODE_V4, "64512", ""), &[NODE_V4], &[]);
    let frr = std::sync::Arc::new(std::sync::Mutex::new(topo.bgpd("frr", &conf)));
    let f = frr.clone();
    let router = topo.router.clone();
    let topo = std::sync::Arc::new(topo);
    let t = topo.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let path = |f: &std::sync::Arc<std::sync::Mutex<common::Daemon>>| {
                f.lock().expect("frr").path("ipv4", "203.0.113.10/32")
            };
            let speaker = Speaker::start(&[]).expect("speaker");
            let mut p = peer(64512, 64500, ROUTER_V4);
            p.families = vec![Family::Ipv4Unicast];
            speaker.set_peer("r", p);
            speaker.set_routes(
                "r",
                routes(&[("203.0.113.10/32", Advertisement::default())]),
            );
            wait_up(&speaker, "r", LONG).await;
            wait_for("route", LONG, || path(&f)).await;

            // Block traffic: our hold timer (3 s) must expire.
            t.router_link(false);
            let mut rx = speaker.status();
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|m| !m["r"].session_up))
                .await
                .expect("session must go down when the peer falls silent")
                .expect("status");
            let reason = speaker.status().borrow()["r"]
                .last_error
                .clone()
                .unwrap_or_default();
            assert!(
                reason.contains("hold timer expired"),
                "down reason: {reason}"
            );
            t.router_link(true);
            tokio::time::timeout(LONG, rx.wait_for(|m| m["r"].established_count >= 2))
                .await
                .expect("back up")
                .expect("status");
            wait_for("route after hold expiry", LONG, || path(&f)).await;

            // Router restart: kill bgpd, start it again.
            f.lock().expect("frr").kill();
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|m| !m["r"].session_up))
                .await
                .expect("session down after router death")
                .expect("status");
            *f.lock().expect("frr") = t.bgpd("frr2", &conf);
            tokio::time::timeout(LONG, rx.wait_for(|m| m["r"].established_count >= 3))
                .await
                .expect("back up")
                .expect("status");
            wait_for("route after router restart", LONG, || path(&f)).await;
            speaker.shutdown().await;
            let _ = router;
        })
    });
}

#[test]
fn frr_md5_matching_comes_up_wrong_never_does() {
    let topo = Topology::new();
    let conf = frr_conf(
        &(neighbor(
            NODE_V4,
            "64512",
            &format!(" neighbor {NODE_V4} password s3cret\n"),
        ) + &neighbor(
            NODE_V6,
            "64512",
            &format!(" neighbor {NODE_V6} password s3cret\n"),
        )),
        &[NODE_V4],
        &[NODE_V6],
    );
    let frr = std::sync::Arc::new(topo.bgpd("frr", &conf));
    let f = frr.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let speaker = Speaker::start(&[]).expect("speaker");
            let mut good = peer(64512, 64500, ROUTER_V4);
            good.password = Some("s3cret".into());
            let mut bad = peer(64512, 64500, ROUTER_V6);
            bad.password = Some("wrong".into());
            speaker.set_peer("good", good);
            speaker.set_peer("bad", bad);
            wait_up(&speaker, "good", LONG).await;
            assert!(f.established(NODE_V4));
            tokio::time::sleep(Duration::from_secs(8)).await;
            let st = speaker.status().borrow()["bad"].clone();
            assert_eq!(
                st.established_count, 0,
                "wrong MD5 password must never come up: {st:?}"
            );
            assert!(!f.established(NODE_V6));
            speaker.shutdown().await;
        })
    });
}

/// A raw peer in the router namespace: answers the speaker's OPEN, then
/// sends `bad` and returns the NOTIFICATION it gets back (code, subcode).
async fn malformed_peer(listener: tokio::net::TcpListener, bad: Vec<u8>) -> (u8, u8, Vec<u8>) {
    use ferrolb_bgp::network::read_message;
    use ferrolb_bgp::packet::{self, Capabilities, Message, Open};
    use tokio::io::AsyncWriteExt;
    let (mut s, _) = listener.accept().await.expect("accept");
    let open = read_message(&mut s).await.expect("speaker OPEN");
    assert!(matches!(packet::decode(&open, false), Ok(Message::Open(_))));
    let caps = Capabilities {
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        ..Default::default()
    };
    s.write_all(
        &Open::new(64501, 3, Ipv4Addr::new(198, 51, 100, 2), caps)
            .encode()
            .expect("open"),
    )
    .await
    .expect("w");
    s.write_all(&packet::encode_keepalive()).await.expect("w");
    loop {
        let m = read_message(&mut s).await.expect("speaker message");
        if matches!(packet::decode(&m, true), Ok(Message::Keepalive)) {
            break;
        }
    }
    s.write_all(&bad).await.expect("w");
    loop {
        let m = read_message(&mut s).await.expect("the NOTIFICATION");
        if let Ok(Message::Notification(n)) = packet::decode(&m, true) {
            return (n.code, n.subcode, n.data);
        }
    }
}

#[test]
fn malformed_peers_get_the_right_notification_while_frr_stays_up() {
    let topo = Topology::new();
    let frr = std::sync::Arc::new(topo.bgpd("frr",
        &frr_conf(&neighbor(NODE_V4, "64512", ""), &[NODE_V4], &[]),
    ));
    let marker = {
        let mut k = ferrolb_bgp::packet::encode_keepalive();
        k[0] = 0;
        k
    };
    let bad_length = {
        let mut k = ferrolb_bgp::packet::encode_keepalive();
        k[17] = 18;
        k
    };
    let hex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    };
    let truncated_mp_reach = hex(
        "ffffffffffffffffffffffffffffffff 0040 02 0000 0029 40010100 400200 900e001e 0002 01 10 20010db8000000000000000000000011 00 80 20010db800000000",
    );
    let cases: Vec<(Vec<u8>, (u8, u8))> = vec![
        (marker, (1, 1)),
        (bad_length, (1, 2)),
        (truncated_mp_reach, (3, 9)),
    ];
    let ports: Vec<u16> = (0..cases.len() as u16).map(|i| 17900 + i).collect();

    // The raw peers listen in the router namespace, on their own thread.
    let router = topo.router.clone();
    let ports2 = ports.clone();
    let cases2 = cases.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let raw = std::thread::spawn(move || {
        Topology::in_netns(&router, move || {
            Box::pin(async move {
                let mut tasks = vec![];
                for (port, (bad, _)) in ports2.iter().zip(cases2) {
                    let l = tokio::net::TcpListener::bind((ROUTER_V4, *port))
                        .await
                        .expect("bind");
                    tasks.push(tokio::spawn(malformed_peer(l, bad)));
                }
                ready_tx.send(()).expect("ready");
                let mut got = vec![];
                for t in tasks {
                    got.push(
                        tokio::time::timeout(LONG, t)
                            .await
                            .expect("raw peer timed out")
                            .expect("raw peer"),
                    );
                }
                got
            })
        })
    });
    ready_rx.recv_timeout(LONG).expect("raw peers ready");
    let f = frr.clone();
    let ports3 = ports.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let speaker = Speaker::start(&[]).expect("speaker");
            let mut good = peer(64512, 64500, ROUTER_V4);
            good.families = vec![Family::Ipv4Unicast];
            speaker.set_peer("frr", good);
            wait_up(&speaker, "frr", LONG).await;
            for (i, port) in ports3.iter().enumerate() {
                let mut p = peer(64512, 64501, ROUTER_V4);
                p.port = *port;
                p.hold_time = 3;
                speaker.set_peer(&format!("raw{i}"), p);
            }
            tokio::time::sleep(Duration::from_secs(6)).await;
            let st = speaker.status().borrow()["frr"].clone();
            assert!(
                st.session_up && st.established_count == 1,
                "the healthy session must stay up: {st:?}"
            );
            assert!(f.established(NODE_V4));
            speaker.shutdown().await;
        })
    });
    let got = raw.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    for ((code, sub, data), (_, want)) in got.iter().zip(&cases) {
        assert_eq!((*code, *sub), *want, "data {data:?}");
    }
    assert_eq!(got[1].2, vec![0, 18], "bad length carries the length");
}

/// A restarting speaker whose session comes up before it knows its routes
/// (the ferrolb speaker starts sessions before it has read every Service)
/// must not send End-of-RIB yet: the graceful-restart helper keeps our
/// routes, stale, until End-of-RIB, and an early one would flush them.
#[test]
fn frr_graceful_restart_helper_keeps_routes_until_the_routes_are_known() {
    let topo = Topology::new();
    let conf = frr_conf(
        &format!(" bgp graceful-restart\n{}", neighbor(NODE_V4, "64512", "")),
        &[NODE_V4],
        &[],
    );
    let frr = std::sync::Arc::new(topo.bgpd("frr", &conf));
    let f = frr.clone();
    Topology::in_netns(&topo.node, move || {
        Box::pin(async move {
            let prefix = "203.0.113.10/32";
            let stale = |f: &common::Daemon| {
                f.path("ipv4", prefix)
                    .map(|p| p["stale"].as_bool().unwrap_or(false))
            };
            let mut p = peer(64512, 64500, ROUTER_V4);
            p.families = vec![Family::Ipv4Unicast];
            p.graceful_restart = Some(120);

            let first = Speaker::start(&[]).expect("speaker");
            first.set_peer("r", p.clone());
            first.set_routes("r", routes(&[(prefix, Advertisement::default())]));
            wait_up(&first, "r", LONG).await;
            wait_for("route", LONG, || (stale(&f) == Some(false)).then_some(())).await;
            // Closed without a NOTIFICATION: FRR keeps the route as stale.
            first.shutdown().await;

            let second = Speaker::start(&[]).expect("speaker");
            second.set_peer("r", p);
            wait_up(&second, "r", LONG).await;
            let count = f.established_count(NODE_V4);
            assert!(count >= 2, "FRR saw the new session ({count})");
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(
                stale(&f),
                Some(true),
                "before End-of-RIB the helper keeps the route, stale"
            );
            second.set_routes("r", routes(&[(prefix, Advertisement::default())]));
            wait_for("the route fresh after End-of-RIB", LONG, || {
                (stale(&f) == Some(false)).then_some(())
            })
            .await;
            assert_eq!(f.established_count(NODE_V4), count, "no reset");
            second.shutdown().await;
        })
    });
}
