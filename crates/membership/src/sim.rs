//! A deterministic simulated network around the pure state machine: many
//! nodes, random loss and latency, blocked links (partitions), slow and frozen
//! nodes, kills and restarts. Used by the property tests, the replay tests
//! and the figures example; no sockets and no real time.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::packet::{self, Envelope, Header, Message};
use crate::state::{Action, Change, Event, State, Tuning, View};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    /// Probability that any one datagram is lost.
    pub loss: f64,
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// How often each node's state machine is ticked (the driver ticks at
    /// half the shorter of heartbeat and probe intervals).
    pub tick: Duration,
    pub seed: u64,
    pub tuning: Tuning,
}

impl SimConfig {
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            nodes,
            loss: 0.0,
            latency_min: Duration::from_micros(100),
            latency_max: Duration::from_micros(500),
            tick: Duration::from_millis(25),
            seed,
            tuning: Tuning::default(),
        }
    }
}

/// Something a node's view did, seen from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub at: Duration,
    pub observer: usize,
    pub what: Observed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Change(Change),
    View(View),
    Sent { to: usize, msg: Message },
}

enum Payload {
    Tick,
    Deliver { from: SocketAddr, sender: String, msg: Message },
}

struct Item {
    at: Duration,
    seq: u64,
    node: usize,
    payload: Payload,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    // Reversed: BinaryHeap pops the greatest, we want the earliest.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct Node {
    name: String,
    addr: SocketAddr,
    state: Option<State>,
    /// Each run of a node gets a new generation; queued ticks of an old run are ignored.
    generation: u64,
    tick_generation: BTreeMap<u64, u64>,
    frozen_until: Duration,
    /// Extra random delay (0..slow) on everything this node sends.
    slow: Duration,
    sent: u64,
    sent_bytes: u64,
}

pub struct Sim {
    cfg: SimConfig,
    base: Instant,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Item>,
    nodes: Vec<Node>,
    by_addr: BTreeMap<SocketAddr, usize>,
    blocked: BTreeSet<(usize, usize)>,
    rng: fastrand::Rng,
    pub loss: f64,
    /// Record every message sent (except heartbeats and acks), for replays.
    pub trace_sends: bool,
    pub observations: Vec<Observation>,
}

pub fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

pub fn node_addr(i: usize) -> SocketAddr {
    let n = i as u32 + 1;
    SocketAddr::new(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8).into(), 7946)
}

impl Sim {
    /// Nodes are created stopped; `start` them.
    pub fn new(cfg: SimConfig) -> Self {
        let nodes: Vec<Node> = (0..cfg.nodes)
            .map(|i| Node {
                name: node_name(i),
                addr: node_addr(i),
                state: None,
                generation: 0,
                tick_generation: BTreeMap::new(),
                frozen_until: Duration::ZERO,
                slow: Duration::ZERO,
                sent: 0,
                sent_bytes: 0,
            })
            .collect();
        let by_addr = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        Self {
            rng: fastrand::Rng::with_seed(cfg.seed),
            loss: cfg.loss,
            cfg,
            base: Instant::now(),
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            by_addr,
            blocked: BTreeSet::new(),
            trace_sends: false,
            observations: Vec::new(),
        }
    }

    /// Builds, starts and seeds every node with all addresses, then runs until
    /// every view is complete (or `limit`). Returns the convergence time.
    pub fn started(cfg: SimConfig, limit: Duration) -> (Self, Option<Duration>) {
        let mut sim = Self::new(cfg);
        let all: Vec<usize> = (0..sim.nodes.len()).collect();
        for &i in &all {
            sim.start(i, 1_000);
        }
        for &i in &all {
            sim.seed(i, &all);
        }
        let t = sim.run_until_converged(limit);
        (sim, t)
    }

    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    pub fn state(&self, i: usize) -> Option<&State> {
        self.nodes[i].state.as_ref()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].state.is_some()
    }

    /// Datagrams node `i` has sent (a large Sync counts as its datagrams).
    pub fn sent(&self, i: usize) -> u64 {
        self.nodes[i].sent
    }

    /// UDP payload bytes node `i` has sent, as encoded with an HMAC tag.
    pub fn sent_bytes(&self, i: usize) -> u64 {
        self.nodes[i].sent_bytes
    }

    pub fn start(&mut self, i: usize, incarnation: u64) {
        let n = &mut self.nodes[i];
        n.state = Some(State::new(n.name.clone(), n.addr, incarnation, Vec::new(), self.cfg.tuning.clone()));
        n.generation += 1;
        n.frozen_until = self.now;
        let gen_ = n.generation;
        let phase = Duration::from_micros(self.rng.u64(0..self.cfg.tick.as_micros() as u64));
        let seq = self.push(self.now + phase, i, Payload::Tick);
        self.nodes[i].tick_generation.insert(seq, gen_);
    }

    pub fn seed(&mut self, i: usize, seeds: &[usize]) {
        let addrs = seeds.iter().map(|&s| self.nodes[s].addr).collect();
        self.input(i, Event::SeedsChanged(addrs));
    }

    /// Stops a node without a word (SIGKILL, power loss).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].state = None;
    }

    pub fn leave(&mut self, i: usize) {
        self.input(i, Event::Leave);
    }

    pub fn set_meta(&mut self, i: usize, meta: Vec<u8>) {
        self.input(i, Event::MetaChanged(meta));
    }

    /// Delivers a message to node `to` as if `from` had sent it now.
    pub fn inject(&mut self, to: usize, from: usize, msg: Message) {
        let (addr, sender) = (self.nodes[from].addr, self.nodes[from].name.clone());
        self.input(to, Event::Received { from: addr, sender, msg });
    }

    /// Drops every datagram between nodes of different groups (both ways).
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        for (gi, a) in groups.iter().enumerate() {
            for b in groups.iter().skip(gi + 1) {
                for &x in a {
                    for &y in b {
                        self.blocked.insert((x, y));
                        self.blocked.insert((y, x));
                    }
                }
            }
        }
    }

    /// Drops datagrams from `from` to `to` only.
    pub fn block(&mut self, from: usize, to: usize) {
        self.blocked.insert((from, to));
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The node stops processing (ticks and datagrams queue up) for `d`.
    pub fn freeze(&mut self, i: usize, d: Duration) {
        self.nodes[i].frozen_until = self.now + d;
    }

    pub fn set_slow(&mut self, i: usize, jitter: Duration) {
        self.nodes[i].slow = jitter;
    }

    fn push(&mut self, at: Duration, node: usize, payload: Payload) -> u64 {
        self.seq += 1;
        self.queue.push(Item { at, seq: self.seq, node, payload });
        self.seq
    }

    fn input(&mut self, i: usize, event: Event) {
        let now = self.base + self.now;
        let Some(state) = self.nodes[i].state.as_mut() else { return };
        let actions = state.handle(now, event);
        self.apply(i, actions);
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => self.send(i, to, msg),
                Action::ViewChanged(v) => self.observe(i, Observed::View(v)),
                Action::Changed(c) => self.observe(i, Observed::Change(c)),
            }
        }
    }

    fn observe(&mut self, observer: usize, what: Observed) {
        self.observations.push(Observation { at: self.now, observer, what });
    }

    fn send(&mut self, from: usize, to: SocketAddr, msg: Message) {
        let name = &self.nodes[from].name;
        let header = Header { sender: name.clone(), boot: 0, seq: 0, timestamp_ms: 0 };
        for part in packet::split(name, msg.clone()) {
            let env = Envelope { header: header.clone(), msg: part };
            let bytes = packet::encode(&env, None).map(|b| b.len() + packet::TAG_LEN).unwrap_or(0);
            self.nodes[from].sent += 1;
            self.nodes[from].sent_bytes += bytes as u64;
        }
        let Some(&dest) = self.by_addr.get(&to) else { return };
        if self.trace_sends && !matches!(msg, Message::Heartbeat { .. } | Message::Ack { .. }) {
            self.observe(from, Observed::Sent { to: dest, msg: msg.clone() });
        }
        if self.blocked.contains(&(from, dest)) || (self.loss > 0.0 && self.rng.f64() < self.loss) {
            return;
        }
        let span = (self.cfg.latency_max - self.cfg.latency_min).as_micros() as u64;
        let mut delay = self.cfg.latency_min + Duration::from_micros(self.rng.u64(0..=span));
        let slow = self.nodes[from].slow;
        if !slow.is_zero() {
            delay += Duration::from_micros(self.rng.u64(0..=slow.as_micros() as u64));
        }
        let (addr, sender) = (self.nodes[from].addr, self.nodes[from].name.clone());
        self.push(self.now + delay, dest, Payload::Deliver { from: addr, sender, msg });
    }

    /// Runs every event up to and including time `t`.
    pub fn run_until(&mut self, t: Duration) {
        while self.queue.peek().is_some_and(|i| i.at <= t) {
            let Some(item) = self.queue.pop() else { break };
            self.now = item.at;
            let i = item.node;
            if self.nodes[i].frozen_until > self.now {
                // Re-queued in order: later sequence numbers keep arrival order.
                let until = self.nodes[i].frozen_until;
                self.seq += 1;
                self.queue.push(Item { at: until, seq: self.seq, ..item });
                continue;
            }
            match item.payload {
                Payload::Tick => {
                    let Some(gen_) = self.nodes[i].tick_generation.remove(&item.seq) else { continue };
                    if gen_ != self.nodes[i].generation || self.nodes[i].state.is_none() {
                        continue;
                    }
                    self.input(i, Event::Tick);
                    let seq = self.push(self.now + self.cfg.tick, i, Payload::Tick);
                    self.nodes[i].tick_generation.insert(seq, gen_);
                }
                Payload::Deliver { from, sender, msg } => self.input(i, Event::Received { from, sender, msg }),
            }
        }
        self.now = t;
    }

    /// Runs in steps of one tick until `done(self)` or `limit` (absolute); the
    /// time it first held.
    pub fn run_until_true(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> Option<Duration> {
        loop {
            if done(self) {
                return Some(self.now);
            }
            if self.now >= limit {
                return None;
            }
            let next = (self.now + self.cfg.tick).min(limit);
            self.run_until(next);
        }
    }

    pub fn run_until_converged(&mut self, limit: Duration) -> Option<Duration> {
        self.run_until_true(limit, |s| s.converged())
    }

    /// Names of running, not departed nodes.
    pub fn running(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter(|n| n.state.as_ref().is_some_and(|s| !s.has_left()))
            .map(|n| n.name.clone())
            .collect()
    }

    /// Every running node's view holds exactly the running nodes.
    pub fn converged(&self) -> bool {
        let running = self.running();
        self.nodes.iter().filter_map(|n| n.state.as_ref()).filter(|s| running.contains(s.name())).all(|s| {
            s.view().members.len() == running.len() && s.view().members.keys().all(|k| running.contains(k))
        })
    }

    /// Running nodes whose view still contains `name`.
    pub fn holding(&self, name: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].state.as_ref().is_some_and(|s| s.view().members.contains_key(name)))
            .filter(|&i| self.nodes[i].name != name)
            .collect()
    }

    /// Down changes (any reason) about `name` recorded after `since`.
    pub fn downs_of(&self, name: &str, since: Duration) -> Vec<&Observation> {
        self.observations
            .iter()
            .filter(|o| o.at >= since)
            .filter(|o| matches!(&o.what, Observed::Change(Change::Down { name: n, .. }) if n == name))
            .collect()
    }

    /// Every Down change recorded after `since`.
    pub fn all_downs(&self, since: Duration) -> Vec<&Observation> {
        self.observations
            .iter()
            .filter(|o| o.at >= since && matches!(o.what, Observed::Change(Change::Down { .. })))
            .collect()
    }

    /// Forgets recorded observations (long runs).
    pub fn clear_observations(&mut self) {
        self.observations.clear();
    }
}
