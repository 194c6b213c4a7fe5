//! Figures for docs/membership.md:
//!   cargo run --release -p ferrolb-membership --example figures [-- --quick]
//!
//! 1. Loopback UDP: five real `Membership` instances; kill one (dropped, no
//!    leave) 20 times at a random moment and time how long until the first
//!    and until every survivor's view drops it; also graceful leaves.
//! 2. Simulator: steady-state datagrams and bytes per node per second for
//!    clusters of 10, 100 and 1,000 nodes; the cost of one death; detection
//!    time over many kills with and without loss; false suspicions and false
//!    deaths per node-hour under loss.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_membership::sim::{Sim, SimConfig};
use ferrolb_membership::{Config, Membership, View, derive_key};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    format!("median {:.1} ms, p90 {:.1} ms, worst {:.1} ms (n={})", pick(0.5), pick(0.9), pick(1.0), v.len())
}

async fn node(name: String, bind: SocketAddr) -> (Membership, watch::Receiver<View>) {
    let mut cfg = Config::new(name, bind);
    cfg.key = Some(derive_key(b"figures-secret-key-22b"));
    Membership::start(cfg, &mut Registry::default()).await.expect("start")
}

async fn until(v: &mut watch::Receiver<View>, f: impl Fn(&View) -> bool) {
    tokio::time::timeout(Duration::from_secs(10), v.wait_for(|v| f(v))).await.expect("timed out").expect("alive");
}

async fn loopback(kills: usize) {
    const N: usize = 5;
    let mut nodes = Vec::new();
    for i in 0..N {
        nodes.push(Some(node(format!("n{i}"), "127.0.0.1:0".parse().unwrap()).await));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().flatten().map(|(m, _)| m.local_addr()).collect();
    for (m, _) in nodes.iter().flatten() {
        m.set_seeds(addrs.clone());
    }
    for (_, v) in nodes.iter_mut().flatten() {
        until(v, |v| v.members.len() == N).await;
    }
    let mut rng = fastrand::Rng::with_seed(42);
    let (mut first, mut all) = (Vec::new(), Vec::new());
    for k in 0..kills {
        let victim = k % N;
        let name = format!("n{victim}");
        tokio::time::sleep(MS(300 + rng.u64(0..100))).await;
        let t = Instant::now();
        nodes[victim] = None;
        // One task per survivor, so each records its own moment.
        let tasks: Vec<_> = nodes
            .iter()
            .flatten()
            .map(|(_, v)| {
                let (mut v, name) = (v.clone(), name.clone());
                tokio::spawn(async move {
                    until(&mut v, |v| !v.members.contains_key(&name)).await;
                    t.elapsed()
                })
            })
            .collect();
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await.expect("waiter"));
        }
        first.push(*seen.iter().min().unwrap());
        all.push(*seen.iter().max().unwrap());
        nodes[victim] = Some(node(name.clone(), addrs[victim]).await);
        if let Some((m, _)) = &nodes[victim] {
            m.set_seeds(addrs.clone());
        }
        for (_, v) in nodes.iter_mut().flatten() {
            until(v, |v| v.members.len() == N).await;
        }
    }
    println!("loopback, {N} nodes, {kills} kills (SIGKILL-like drop):");
    println!("  first survivor drops it: {}", summary(first));
    println!("  every survivor drops it: {}", summary(all));
    let mut leaves = Vec::new();
    for victim in 0..N - 1 {
        let Some((m, _)) = nodes[victim].take() else { continue };
        let name = format!("n{victim}");
        let t = Instant::now();
        m.leave(Duration::from_secs(1)).await;
        for (_, v) in nodes.iter_mut().flatten() {
            until(v, |v| !v.members.contains_key(&name)).await;
        }
        leaves.push(t.elapsed());
    }
    println!("  graceful leave, acknowledged and dropped everywhere: {}", summary(leaves));
}

fn steady_cost(n: usize) {
    let t0 = Instant::now();
    let (mut sim, joined) = Sim::started(SimConfig::new(n, 1), Duration::from_secs(60));
    let joined = joined.expect("converged");
    let join_dgrams: u64 = (0..n).map(|i| sim.sent(i)).sum();
    sim.run_until(sim.now() + Duration::from_secs(5));
    let (d0, b0): (Vec<u64>, Vec<u64>) = (0..n).map(|i| (sim.sent(i), sim.sent_bytes(i))).unzip();
    let window = 10.0;
    sim.run_until(sim.now() + Duration::from_secs(10));
    let per_node: Vec<f64> = (0..n).map(|i| (sim.sent(i) - d0[i]) as f64 / window).collect();
    let bytes: f64 = (0..n).map(|i| (sim.sent_bytes(i) - b0[i]) as f64).sum::<f64>() / window / n as f64;
    let mean = per_node.iter().sum::<f64>() / n as f64;
    let max = per_node.iter().cloned().fold(0.0, f64::max);
    // One death: everything sent in the 3 s after a kill, above the steady rate.
    let before: u64 = (0..n).map(|i| sim.sent(i)).sum();
    sim.kill(n / 2);
    sim.run_until(sim.now() + Duration::from_secs(3));
    let after: u64 = (0..n).map(|i| sim.sent(i)).sum();
    let extra = after as f64 - before as f64 - mean * 3.0 * (n - 1) as f64;
    println!(
        "  {n:>5} nodes: steady {mean:.1} datagrams/s sent per node (max {max:.1}), {bytes:.0} B/s; join of all at once {:?} ({:.0} datagrams per node); one death costs {extra:.0} datagrams cluster-wide [sim {:.1?}]",
        joined,
        join_dgrams as f64 / n as f64,
        t0.elapsed()
    );
}

fn detection(n: usize, loss: f64, kills: usize) {
    let mut cfg = SimConfig::new(n, 7);
    cfg.loss = loss;
    let (mut sim, t) = Sim::started(cfg, Duration::from_secs(60));
    t.expect("converged");
    let mut rng = fastrand::Rng::with_seed(3);
    let (mut first, mut all) = (Vec::new(), Vec::new());
    for victim in 0..kills.min(n - 2) {
        sim.run_until(sim.now() + MS(500 + rng.u64(0..1000)));
        let at = sim.now();
        let name = sim.name(victim).to_string();
        sim.kill(victim);
        let done = sim.run_until_true(at + Duration::from_secs(10), |s| s.holding(&name).is_empty()).expect("dropped");
        let downs = sim.downs_of(&name, at);
        first.push(downs.first().map(|o| o.at - at).unwrap_or_default());
        all.push(done - at);
    }
    println!("  {n} nodes, loss {:.0}%: first {}", loss * 100.0, summary(first));
    println!("  {n} nodes, loss {:.0}%: all   {}", loss * 100.0, summary(all));
}

fn false_positives(n: usize, loss: f64, secs: u64) {
    let mut cfg = SimConfig::new(n, 11);
    cfg.loss = loss;
    let (mut sim, t) = Sim::started(cfg, Duration::from_secs(60));
    t.expect("converged");
    let from = sim.now();
    let totals = |sim: &Sim| {
        (0..n).map(|i| sim.state(i).unwrap().stats()).fold((0, 0), |(p, d), s| (p + s.probes, d + s.declared_dead))
    };
    let (p0, d0) = totals(&sim);
    sim.run_until(from + Duration::from_secs(secs));
    let (p1, d1) = totals(&sim);
    let (probes, deaths) = (p1 - p0, d1 - d0);
    let node_hours = n as f64 * secs as f64 / 3600.0;
    println!(
        "  {n} nodes, loss {:>2.0}%, {secs} s: {:.1} probes per node-hour; {deaths} false declarations of death ({:.2} per node-hour); converged at the end: {}",
        loss * 100.0,
        probes as f64 / node_hours,
        deaths as f64 / node_hours,
        sim.converged()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    loopback(if quick { 5 } else { 20 }).await;
    println!("simulated (latency 0.1-0.5 ms, tick 25 ms, default tuning):");
    for n in [10, 100, 1000] {
        if !(quick && n == 1000) {
            steady_cost(n);
        }
    }
    println!("detection, time from kill until the first / every live node drops it:");
    detection(100, 0.0, if quick { 10 } else { 50 });
    detection(100, 0.05, if quick { 10 } else { 50 });
    println!("false positives (answered probes are harmless; down observations are failovers):");
    let secs = if quick { 60 } else { 600 };
    for loss in [0.05, 0.1, 0.2, 0.3] {
        false_positives(50, loss, secs);
    }
}
