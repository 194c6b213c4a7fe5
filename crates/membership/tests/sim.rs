//! Property tests of the pure state machine on a simulated lossy network.

use std::time::Duration;

use ferrolb_membership::sim::{Sim, SimConfig};
use ferrolb_membership::state::{Change, DownReason};
use ferrolb_membership::sim::Observed;
use proptest::prelude::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// suspect_after + probe_timeout + one tick + latency: documented in docs/membership.md.
fn detection_bound(cfg: &SimConfig) -> Duration {
    cfg.tuning.suspect_after + cfg.tuning.probe_timeout + cfg.tick + cfg.latency_max * 2
}

fn started(nodes: usize, seed: u64, loss: f64) -> Sim {
    let mut cfg = SimConfig::new(nodes, seed);
    cfg.loss = loss;
    let (sim, t) = Sim::started(cfg, MS(10_000));
    assert!(t.is_some(), "{nodes} nodes did not converge within 10 s (seed {seed}, loss {loss})");
    sim
}

#[test]
fn small_cluster_joins_quickly() {
    let (_, t) = Sim::started(SimConfig::new(5, 1), MS(5_000));
    let t = t.expect("converged");
    assert!(t < MS(1_000), "join took {t:?}");
}

#[test]
fn kill_is_seen_by_every_live_node_within_the_bound() {
    let mut sim = started(20, 7, 0.0);
    sim.run_until(sim.now() + MS(1_000));
    let victim = 3;
    let name = sim.name(victim).to_string();
    let killed_at = sim.now() + MS(37);
    sim.run_until(killed_at);
    sim.kill(victim);
    let bound = detection_bound(&SimConfig::new(20, 7));
    let done = sim.run_until_true(killed_at + MS(5_000), |s| s.holding(&name).is_empty()).expect("everyone drops it");
    assert!(done - killed_at <= bound, "took {:?}, bound {bound:?}", done - killed_at);
    assert!(sim.converged());
    // Exactly the victim went down, and at least one watcher found it unresponsive.
    let downs = sim.all_downs(killed_at);
    assert!(downs.iter().all(|o| matches!(&o.what, Observed::Change(Change::Down { name: n, .. }) if *n == name)));
    assert!(downs.iter().any(|o| matches!(&o.what, Observed::Change(Change::Down { reason: DownReason::Unresponsive { .. }, .. }))));
}
