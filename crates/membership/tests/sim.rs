//! Property tests of the pure state machine on a simulated lossy network.

use std::time::Duration;

use ferrolb_membership::sim::{Observed, Sim, SimConfig};
use ferrolb_membership::state::{Change, DownReason};
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

/// Time for every node to learn of a death once one watcher found it: the
/// broadcast's repeats (each of which may be lost).
fn spread(cfg: &SimConfig) -> Duration {
    cfg.tuning.heartbeat_interval * (cfg.tuning.broadcast_repeats as u32 - 1) + cfg.tick
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Any cluster size, any loss up to 5%: every node ends with the same,
    /// complete view.
    #[test]
    fn every_live_node_converges(nodes in 5usize..50, seed in any::<u64>(), loss in 0.0f64..0.05) {
        let mut cfg = SimConfig::new(nodes, seed);
        cfg.loss = loss;
        let (sim, t) = Sim::started(cfg, MS(15_000));
        prop_assert!(t.is_some(), "not converged after 15 s");
        let view = &sim.state(0).unwrap().view().members;
        for i in 1..nodes {
            prop_assert_eq!(&sim.state(i).unwrap().view().members, view);
        }
    }

    /// A killed node is dropped by every live node within the bound.
    #[test]
    fn killed_node_dropped_everywhere_within_bound(
        nodes in 5usize..40, seed in any::<u64>(), loss in 0.0f64..0.05, offset_ms in 0u64..1000, victim in any::<prop::sample::Index>()
    ) {
        let mut cfg = SimConfig::new(nodes, seed);
        cfg.loss = loss;
        let bound = detection_bound(&cfg) + spread(&cfg);
        let (mut sim, t) = Sim::started(cfg, MS(15_000));
        prop_assert!(t.is_some());
        let killed_at = sim.now() + MS(500 + offset_ms);
        sim.run_until(killed_at);
        let v = victim.index(nodes);
        let name = sim.name(v).to_string();
        sim.kill(v);
        let done = sim.run_until_true(killed_at + MS(10_000), |s| s.holding(&name).is_empty());
        prop_assert!(done.is_some(), "still held by {:?}", sim.holding(&name));
        let took = done.unwrap() - killed_at;
        prop_assert!(took <= bound, "took {:?}, bound {:?}", took, bound);
        prop_assert!(sim.downs_of(&name, killed_at).len() >= nodes - 1);
    }
}

#[test]
fn no_false_deaths_at_5_percent_loss() {
    let mut sim = started(50, 11, 0.05);
    let from = sim.now();
    sim.clear_observations();
    sim.run_until(from + MS(60_000));
    assert!(sim.all_downs(from).is_empty(), "{:?}", sim.all_downs(from).first());
    assert!(sim.converged());
    let probes: u64 = (0..50).map(|i| sim.state(i).unwrap().stats().probes).sum();
    let false_suspicions: u64 = (0..50).map(|i| sim.state(i).unwrap().stats().false_suspicions).sum();
    // Probes may happen (a watcher missing five heartbeats in a row is rare
    // at 5%), and each must have been answered.
    assert_eq!(probes, false_suspicions);
}

#[test]
fn jittery_node_is_not_declared_dead() {
    let mut sim = started(10, 5, 0.01);
    let from = sim.now();
    // Everything node 4 sends is delayed by up to 300 ms (reordered too).
    sim.set_slow(4, MS(300));
    sim.run_until(from + MS(30_000));
    assert!(sim.all_downs(from).is_empty(), "{:?}", sim.all_downs(from).first());
    assert!(sim.converged());
}

#[test]
fn short_freeze_is_survived_and_long_freeze_refuted() {
    let mut sim = started(10, 9, 0.0);
    let name = sim.name(2).to_string();
    // Shorter than suspect_after + probe_timeout: the probe is answered late but in time.
    let from = sim.now();
    sim.freeze(2, MS(600));
    sim.run_until(from + MS(3_000));
    assert!(sim.downs_of(&name, from).is_empty());
    assert!(sim.converged());
    // Longer: declared dead by everyone; on waking it hears so, refutes with
    // a higher incarnation and everyone takes it back.
    let from = sim.now();
    let incarnation = sim.state(2).unwrap().incarnation();
    sim.freeze(2, MS(2_000));
    let gone = sim.run_until_true(from + MS(2_000), |s| s.holding(&name).is_empty());
    assert!(gone.is_some(), "frozen node still held by {:?}", sim.holding(&name));
    let back = sim.run_until_converged(from + MS(4_000)).expect("back within 2 s of waking");
    assert!(back - from >= MS(2_000));
    assert!(sim.state(2).unwrap().incarnation() > incarnation);
    assert!(sim.state(2).unwrap().stats().refutations >= 1);
    // The frozen node itself blamed nobody for its own silence.
    assert!(sim.observations.iter().all(|o| o.observer != 2 || !matches!(o.what, Observed::Change(Change::Down { .. }))));
}

#[test]
fn partition_splits_then_heals() {
    let mut sim = started(20, 3, 0.0);
    let left: Vec<usize> = (0..20).filter(|i| i % 2 == 0).collect();
    let right: Vec<usize> = (0..20).filter(|i| i % 2 == 1).collect();
    let split_at = sim.now();
    sim.partition(&[left.clone(), right.clone()]);
    let sides_apart = |s: &Sim| {
        left.iter().all(|&i| s.state(i).unwrap().view().members.len() == 10)
            && right.iter().all(|&i| s.state(i).unwrap().view().members.len() == 10)
    };
    let apart = sim.run_until_true(split_at + MS(20_000), sides_apart).expect("each side sees only itself");
    let tuning = SimConfig::new(1, 0).tuning;
    // Long enough for every broadcast to be over: only the periodic rejoin
    // crosses the healed link.
    sim.run_until(apart + MS(3_000));
    assert!(sides_apart(&sim));
    sim.heal();
    let healed_at = sim.now();
    let healed = sim.run_until_converged(healed_at + MS(20_000)).expect("views merge after heal");
    let rejoin = tuning.rejoin_interval;
    assert!(healed - healed_at <= rejoin + MS(2_000), "heal took {:?}", healed - healed_at);
    eprintln!("partition 10/10: apart after {:?}, merged {:?} after heal", apart - split_at, healed - healed_at);
}

#[test]
fn graceful_leave_is_seen_at_once() {
    let mut sim = started(10, 4, 0.0);
    let name = sim.name(6).to_string();
    let at = sim.now();
    sim.leave(6);
    let done = sim.run_until_true(at + MS(1_000), |s| s.holding(&name).is_empty()).unwrap();
    assert!(done - at <= MS(25), "took {:?}", done - at);
    assert!(sim.state(6).unwrap().leave_done());
    for o in sim.downs_of(&name, at) {
        assert!(matches!(&o.what, Observed::Change(Change::Down { reason: DownReason::Left, .. })));
    }
}

#[test]
fn restart_with_higher_incarnation_rejoins() {
    let mut sim = started(10, 8, 0.0);
    let name = sim.name(1).to_string();
    sim.kill(1);
    let at = sim.now();
    sim.run_until_true(at + MS(3_000), |s| s.holding(&name).is_empty()).expect("declared dead");
    sim.start(1, 5_000);
    sim.seed(1, &[0, 2, 3]);
    let at = sim.now();
    let back = sim.run_until_converged(at + MS(3_000)).expect("rejoined");
    assert!(back - at <= MS(200), "rejoin took {:?}", back - at);
    assert!(sim.state(0).unwrap().view().members[&name].incarnation == 5_000);
}

#[test]
fn meta_change_reaches_every_view() {
    let mut sim = started(10, 2, 0.0);
    let name = sim.name(7).to_string();
    sim.set_meta(7, b"10.0.0.0/24".to_vec());
    let at = sim.now();
    let has = |s: &Sim| (0..10).all(|i| s.state(i).unwrap().view().members[&name].meta == b"10.0.0.0/24");
    let done = sim.run_until_true(at + MS(1_000), has).expect("meta everywhere");
    // One latency for the peers; the sender's own view at its next tick.
    assert!(done - at <= SimConfig::new(1, 0).tick * 2, "took {:?}", done - at);
}

#[test]
fn lone_node_settles_after_the_timeout() {
    let mut sim = Sim::new(SimConfig::new(2, 1));
    sim.start(0, 1_000);
    // Its only seed never answers (node 1 is not running).
    sim.seed(0, &[1]);
    let settle = SimConfig::new(1, 0).tuning.settle_timeout;
    sim.run_until(settle - MS(50));
    assert!(!sim.state(0).unwrap().view().settled);
    sim.run_until(settle + MS(50));
    assert!(sim.state(0).unwrap().view().settled);
    assert_eq!(sim.state(0).unwrap().view().members.len(), 1);
}
