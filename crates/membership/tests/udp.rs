//! Real UDP on loopback: three `Membership` instances on 127.0.0.1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_membership::{Config, Membership, View, derive_key};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

const KEY_SECRET: &[u8] = b"0123456789abcdefghijkl";

async fn start(name: &str, bind: SocketAddr, key: &[u8]) -> (Membership, watch::Receiver<View>, Registry) {
    let mut cfg = Config::new(name, bind);
    cfg.key = Some(derive_key(key));
    let mut registry = Registry::default();
    let (m, v) = Membership::start(cfg, &mut registry).await.expect("start");
    (m, v, registry)
}

async fn wait_for(view: &mut watch::Receiver<View>, what: &str, f: impl Fn(&View) -> bool) -> Duration {
    let t = Instant::now();
    let reached = tokio::time::timeout(Duration::from_secs(10), view.wait_for(|v| f(v))).await.is_ok();
    assert!(reached, "timed out waiting for {what}; view {:?}", names(&view.borrow()));
    t.elapsed()
}

fn names(v: &View) -> Vec<&str> {
    v.members.keys().map(String::as_str).collect()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_kill_leave_and_restart() {
    let (a, mut va, reg_a) = start("a", any_port(), KEY_SECRET).await;
    let (b, mut vb, _rb) = start("b", any_port(), KEY_SECRET).await;
    let (c, mut vc, _rc) = start("c", any_port(), KEY_SECRET).await;
    let seeds = vec![a.local_addr(), b.local_addr(), c.local_addr()];
    for m in [&a, &b, &c] {
        m.set_seeds(seeds.clone());
    }
    for v in [&mut va, &mut vb, &mut vc] {
        wait_for(v, "all three", |v| v.settled && names(v) == ["a", "b", "c"]).await;
    }
    let mut text = String::new();
    encode(&mut text, &reg_a).unwrap();
    assert!(text.contains("ferrolb_membership_members 3"), "{text}");

    // Kill c: dropped without a word, its socket closes.
    let c_addr = c.local_addr();
    drop(c);
    let took_a = wait_for(&mut va, "a to drop c", |v| names(v) == ["a", "b"]).await;
    let took_b = wait_for(&mut vb, "b to drop c", |v| names(v) == ["a", "b"]).await;
    eprintln!("kill detected by a after {took_a:?}, by b after {took_b:?}");
    // Detection waits for 500 ms of silence then a 200 ms probe.
    assert!(took_a >= Duration::from_millis(500), "{took_a:?}: faster than the timers allow");

    // Restart c on the same address: a higher incarnation beats its tombstone.
    let (c2, mut vc2, _rc2) = start("c", c_addr, KEY_SECRET).await;
    c2.set_seeds(seeds.clone());
    for v in [&mut va, &mut vb, &mut vc2] {
        wait_for(v, "c back", |v| names(v) == ["a", "b", "c"]).await;
    }
    assert!(va.borrow().members["c"].incarnation > 0);

    // Graceful leave of b: the others drop it on receipt, not after a timeout.
    let t = Instant::now();
    b.leave(Duration::from_secs(1)).await;
    let left_after = t.elapsed();
    let seen = wait_for(&mut va, "a to drop b", |v| names(v) == ["a", "c"]).await;
    eprintln!("leave acknowledged after {left_after:?}; a saw it {seen:?} later");
    assert!(left_after < Duration::from_millis(500), "leave waited {left_after:?}: acks missing");
    wait_for(&mut vc2, "c to drop b", |v| names(v) == ["a", "c"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_key_cannot_join() {
    let (a, mut va, reg_a) = start("a", any_port(), KEY_SECRET).await;
    let (b, vb, _rb) = start("b", any_port(), b"another-secret-entirely").await;
    a.set_seeds(vec![b.local_addr()]);
    b.set_seeds(vec![a.local_addr()]);
    // Both settle alone (settle_timeout) without ever seeing the other.
    wait_for(&mut va, "a settled", |v| v.settled).await;
    assert_eq!(names(&va.borrow()), ["a"]);
    assert_eq!(names(&vb.borrow()), ["b"]);
    let mut text = String::new();
    encode(&mut text, &reg_a).unwrap();
    assert!(text.contains(r#"ferrolb_membership_datagrams_rejected_total{reason="auth"}"#), "{text}");
}

/// Views too large for one datagram travel as several: forty members with
/// 400 bytes of metadata each, seeded only with the first one, all end with
/// the whole view, metadata included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_views_are_split_and_merged() {
    const N: usize = 40;
    let mut nodes = Vec::new();
    for i in 0..N {
        let mut cfg = Config::new(format!("node-{i:02}"), any_port());
        cfg.key = Some(derive_key(KEY_SECRET));
        cfg.meta = vec![i as u8; 400];
        nodes.push(Membership::start(cfg, &mut Registry::default()).await.expect("start"));
    }
    let first = nodes[0].0.local_addr();
    for (m, _) in &nodes[1..] {
        m.set_seeds(vec![first]);
    }
    for (_, v) in &mut nodes {
        wait_for(v, "all forty", |v| v.members.len() == N).await;
    }
    for (_, v) in &nodes {
        let v = v.borrow();
        assert!(v.members.values().all(|m| m.meta.len() == 400 && m.meta[0] as usize == m.name[5..].parse::<usize>().unwrap()));
    }
}
