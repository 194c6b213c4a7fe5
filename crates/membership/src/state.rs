//! The membership protocol as a pure state machine: events in, actions out.
//! No sockets and no clock reads: the time is an argument of `handle`, so the
//! same code runs under the UDP driver, the replay tests and the simulator.
//!
//! The protocol is described in docs/membership.md. In short: live members
//! form a ring ordered by a hash of their names; each sends a heartbeat every
//! interval to its `monitors` successors and watches its `monitors`
//! predecessors. A watched member silent for `suspect_after` is probed
//! directly and through helpers for `probe_timeout`; unanswered, it is
//! declared dead and that is broadcast. Incarnations settle conflicts as in
//! SWIM; heartbeats carry a digest of the live set so diverging views are
//! noticed and exchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::packet::{Message, Record, Status};

/// Timers and fan-outs. The defaults aim at ~0.7 s detection on a LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// How often each member sends a heartbeat to each of its successors.
    pub heartbeat_interval: Duration,
    /// How many predecessors watch each member (k).
    pub monitors: usize,
    /// Silence after which a watched member is probed.
    pub suspect_after: Duration,
    /// How long a probe may stay unanswered before the member is declared dead.
    pub probe_timeout: Duration,
    /// Interval between direct pings of one probe.
    pub probe_interval: Duration,
    /// Members asked to ping a suspect on our behalf (SWIM indirect probe).
    pub indirect_probes: usize,
    /// How many times a broadcast is sent, one heartbeat interval apart.
    pub broadcast_repeats: usize,
    /// Consecutive heartbeats with a different view digest before a full exchange.
    pub sync_after_mismatches: u32,
    /// Least time between two exchanges with the same peer, and between two
    /// corrective replies to the same sender.
    pub sync_min_interval: Duration,
    /// How often seeds and dead members' addresses are contacted again (heals partitions).
    pub rejoin_interval: Duration,
    /// After the first seeds, how long to wait for a view before acting alone.
    pub settle_timeout: Duration,
    /// How long a dead or departed member is remembered (refuses stale gossip).
    pub tombstone_ttl: Duration,
    /// How many seeds are asked for their whole view on join.
    pub join_sync_fanout: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(100),
            monitors: 3,
            suspect_after: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_millis(50),
            indirect_probes: 2,
            broadcast_repeats: 3,
            sync_after_mismatches: 3,
            sync_min_interval: Duration::from_secs(1),
            rejoin_interval: Duration::from_secs(5),
            settle_timeout: Duration::from_secs(2),
            tombstone_ttl: Duration::from_secs(300),
            join_sync_fanout: 3,
        }
    }
}

/// A live member as the rest of the speaker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub incarnation: u64,
    pub meta: Vec<u8>,
    pub addr: SocketAddr,
}

/// The live members (self included), and whether this node has had a view
/// from a peer yet (or waited `settle_timeout` for one): until then the set
/// is probably incomplete and the speaker should not act on it alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub members: BTreeMap<String, Member>,
    pub settled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Tick,
    Received { from: SocketAddr, sender: String, msg: Message },
    SeedsChanged(Vec<SocketAddr>),
    MetaChanged(Vec<u8>),
    Leave,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send { to: SocketAddr, msg: Message },
    ViewChanged(View),
    /// For logs and metrics; the view is authoritative.
    Changed(Change),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Up { name: String, incarnation: u64, via: String },
    Updated { name: String, incarnation: u64 },
    Down { name: String, incarnation: u64, reason: DownReason },
    /// Someone held this node dead (or an older life of it newer): it raised
    /// its incarnation and told everyone.
    Refuted { incarnation: u64, by: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// This node watched it, heard nothing for `silent_for` and no probe was answered.
    Unresponsive { silent_for: Duration },
    /// Another member found it dead.
    ReportedDead { by: String },
    Left,
}

/// Monotone counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub probes: u64,
    pub false_suspicions: u64,
    pub declared_dead: u64,
    pub refutations: u64,
    pub syncs: u64,
}

#[derive(Debug)]
struct Peer {
    record: Record,
    ring_key: u64,
    since: Instant,
    last_heard: Option<Instant>,
    watch_since: Option<Instant>,
    mismatches: u32,
    last_sync: Option<Instant>,
}

#[derive(Debug)]
struct Probe {
    nonce: u64,
    incarnation: u64,
    started: Instant,
    silent_since: Instant,
    next_ping: Instant,
}

#[derive(Debug)]
struct Relay {
    origin: SocketAddr,
    nonce: u64,
    expires: Instant,
}

#[derive(Debug)]
struct Broadcast {
    due: Instant,
    left: usize,
    msg: Message,
    extra: Option<SocketAddr>,
}

#[derive(Debug)]
struct Leaving {
    nonce: u64,
    pending: BTreeSet<String>,
    next: Instant,
}

#[derive(Debug)]
pub struct State {
    tuning: Tuning,
    me: Record,
    boot: u64,
    peers: BTreeMap<String, Peer>,
    successors: Vec<String>,
    watched: Vec<String>,
    digest: u64,
    /// The view, ring or digest must be recomputed.
    dirty: bool,
    /// A member went down: publish now rather than at the next tick.
    urgent: bool,
    view: View,
    seeds: Vec<SocketAddr>,
    probes: BTreeMap<String, Probe>,
    relays: BTreeMap<u64, Relay>,
    broadcasts: Vec<Broadcast>,
    /// Last corrective reply per sender, to answer each at most once per `sync_min_interval`.
    corrected: BTreeMap<String, Instant>,
    nonce: u64,
    leaving: Option<Leaving>,
    settle_deadline: Option<Instant>,
    last_tick: Option<Instant>,
    next_heartbeat: Option<Instant>,
    next_rejoin: Option<Instant>,
    stats: Stats,
}

/// Position on the ring: a hash, so that nodes with neighbouring names (often
/// the same rack) do not watch each other and fail together.
fn ring_key(name: &str) -> u64 {
    let h = Sha256::digest(name.as_bytes());
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

/// `(incarnation, status)` order: the newer record wins a merge.
fn newer(a: &Record, b: &Record) -> bool {
    (a.incarnation, a.status) > (b.incarnation, b.status)
}

struct Out(Vec<Action>);

impl Out {
    fn send(&mut self, to: SocketAddr, msg: Message) {
        self.0.push(Action::Send { to, msg });
    }
}

impl State {
    /// `incarnation` must exceed any this node used before (the driver uses
    /// wall-clock milliseconds), so that a restarted node beats its tombstone.
    pub fn new(name: String, addr: SocketAddr, incarnation: u64, meta: Vec<u8>, tuning: Tuning) -> Self {
        let me = Record { name, incarnation, status: Status::Alive, addr, meta };
        let mut s = Self {
            tuning,
            boot: incarnation,
            me,
            peers: BTreeMap::new(),
            successors: Vec::new(),
            watched: Vec::new(),
            digest: 0,
            dirty: true,
            urgent: false,
            view: View::default(),
            seeds: Vec::new(),
            probes: BTreeMap::new(),
            relays: BTreeMap::new(),
            broadcasts: Vec::new(),
            corrected: BTreeMap::new(),
            nonce: 0,
            leaving: None,
            settle_deadline: None,
            last_tick: None,
            next_heartbeat: None,
            next_rejoin: None,
            stats: Stats::default(),
        };
        s.digest = s.compute_digest();
        s.view.members.insert(s.me.name.clone(), member(&s.me));
        s
    }

    pub fn name(&self) -> &str {
        &self.me.name
    }

    pub fn boot(&self) -> u64 {
        self.boot
    }

    pub fn incarnation(&self) -> u64 {
        self.me.incarnation
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The last view published (`ViewChanged`), or the initial one.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// `Leave` was handled.
    pub fn has_left(&self) -> bool {
        self.leaving.is_some()
    }

    /// After `Leave`: every member that was live has acknowledged.
    pub fn leave_done(&self) -> bool {
        self.leaving.as_ref().is_some_and(|l| l.pending.is_empty())
    }

    /// Members this node sends heartbeats to, and those it watches (as of the
    /// last publication).
    pub fn ring_neighbours(&self) -> (&[String], &[String]) {
        (&self.successors, &self.watched)
    }

    /// Runs one event. A view change is published at the end of a `Tick`, or
    /// at once when a member went down: a join storm (every node learning
    /// of N members) then costs one recomputation per tick, not one per
    /// member, while a failure is never delayed.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Out(Vec::new());
        let tick = event == Event::Tick;
        match event {
            Event::Tick => self.tick(now, &mut out),
            Event::Received { from, sender, msg } => self.received(now, from, sender, msg, &mut out),
            Event::SeedsChanged(seeds) => self.seeds_changed(now, seeds, &mut out),
            Event::MetaChanged(meta) => {
                if meta != self.me.meta && self.leaving.is_none() {
                    self.me.meta = meta;
                    self.me.incarnation += 1;
                    self.dirty = true;
                    self.broadcast(now, self.alive_msg(false), None, &mut out);
                }
            }
            Event::Leave => self.leave(now, &mut out),
        }
        if tick || self.urgent {
            self.publish(now, &mut out);
        }
        out.0
    }

    fn next_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce
    }

    fn alive_msg(&self, want_sync: bool) -> Message {
        Message::Alive { record: self.me.clone(), want_sync }
    }

    fn live_peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values().filter(|p| p.record.status == Status::Alive)
    }

    fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.peers.get(name).map(|p| p.record.addr)
    }

    fn full_view(&self, reply: bool) -> Message {
        let mut records: Vec<Record> = vec![self.me.clone()];
        records.extend(self.peers.values().map(|p| p.record.clone()));
        Message::Sync { records, reply }
    }

    /// Sends now and `broadcast_repeats - 1` more times, one heartbeat apart,
    /// to every member live at that moment (and to `extra`).
    fn broadcast(&mut self, now: Instant, msg: Message, extra: Option<SocketAddr>, out: &mut Out) {
        self.send_to_all(&msg, extra, out);
        if self.tuning.broadcast_repeats > 1 {
            let due = now + self.tuning.heartbeat_interval;
            self.broadcasts.push(Broadcast { due, left: self.tuning.broadcast_repeats - 1, msg, extra });
        }
    }

    fn send_to_all(&self, msg: &Message, extra: Option<SocketAddr>, out: &mut Out) {
        let mut sent = BTreeSet::new();
        for p in self.live_peers() {
            if sent.insert(p.record.addr) {
                out.send(p.record.addr, msg.clone());
            }
        }
        if let Some(extra) = extra.filter(|a| *a != self.me.addr && !sent.contains(a)) {
            out.send(extra, msg.clone());
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Out) {
        let interval = self.tuning.heartbeat_interval;
        // A gap between ticks longer than the suspicion time means this
        // process was frozen (GC pause, CPU starvation, suspended VM): the
        // silence it saw is its own, so no watched member is blamed for it.
        let frozen = self.last_tick.is_some_and(|t| now.saturating_duration_since(t) > self.tuning.suspect_after);
        self.last_tick = Some(now);
        if frozen {
            for name in &self.watched {
                if let Some(p) = self.peers.get_mut(name) {
                    p.watch_since = Some(now);
                }
            }
            self.probes.clear();
        }
        if let Some(l) = &mut self.leaving {
            if now >= l.next && !l.pending.is_empty() {
                l.next = now + interval;
                let msg = Message::Leave { incarnation: self.me.incarnation, nonce: l.nonce };
                for name in &l.pending {
                    if let Some(p) = self.peers.get(name) {
                        out.send(p.record.addr, msg.clone());
                    }
                }
            }
            return;
        }
        let next_heartbeat = *self.next_heartbeat.get_or_insert(now);
        if now >= next_heartbeat {
            // After a freeze, resume the cadence instead of sending the missed beats.
            self.next_heartbeat =
                Some(if now >= next_heartbeat + interval { now + interval } else { next_heartbeat + interval });
            let msg = Message::Heartbeat { incarnation: self.me.incarnation, digest: self.digest };
            for name in &self.successors {
                if let Some(addr) = self.addr_of(name) {
                    out.send(addr, msg.clone());
                }
            }
            self.expire(now);
        }
        self.watch(now, out);
        self.run_probes(now, out);
        self.run_broadcasts(now, out);
        let next_rejoin = *self.next_rejoin.get_or_insert(now + self.tuning.rejoin_interval);
        if now >= next_rejoin {
            self.next_rejoin = Some(now + self.tuning.rejoin_interval);
            self.rejoin(out);
        }
        if self.settle_deadline.is_some_and(|d| now >= d) && !self.view.settled {
            self.dirty = true;
        }
    }

    /// Forgets tombstones, expired relays and old corrective-reply marks.
    fn expire(&mut self, now: Instant) {
        let ttl = self.tuning.tombstone_ttl;
        self.peers
            .retain(|_, p| p.record.status == Status::Alive || now.saturating_duration_since(p.since) < ttl);
        self.relays.retain(|_, r| r.expires > now);
        let min = self.tuning.sync_min_interval;
        self.corrected.retain(|_, t| now.saturating_duration_since(*t) < min);
    }

    fn watch(&mut self, now: Instant, out: &mut Out) {
        for i in 0..self.watched.len() {
            let name = &self.watched[i];
            if self.probes.contains_key(name) {
                continue;
            }
            let Some(p) = self.peers.get(name) else { continue };
            let silent_since = match (p.last_heard, p.watch_since) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b).unwrap_or(now),
            };
            if now.saturating_duration_since(silent_since) < self.tuning.suspect_after {
                continue;
            }
            let (name, addr, incarnation) = (name.clone(), p.record.addr, p.record.incarnation);
            let nonce = self.next_nonce();
            self.stats.probes += 1;
            out.send(addr, Message::Ping { nonce });
            // Helpers: our own successors, which are not the suspect.
            let helpers: Vec<SocketAddr> = self
                .successors
                .iter()
                .filter(|h| **h != name)
                .filter_map(|h| self.addr_of(h))
                .take(self.tuning.indirect_probes)
                .collect();
            for h in helpers {
                out.send(h, Message::PingReq { nonce, target: name.clone(), addr });
            }
            let next_ping = now + self.tuning.probe_interval;
            self.probes.insert(name, Probe { nonce, incarnation, started: now, silent_since, next_ping });
        }
    }

    fn run_probes(&mut self, now: Instant, out: &mut Out) {
        let mut dead = Vec::new();
        for (name, probe) in &mut self.probes {
            let Some(p) = self.peers.get(name) else { continue };
            if now.saturating_duration_since(probe.started) >= self.tuning.probe_timeout {
                dead.push(name.clone());
            } else if now >= probe.next_ping {
                probe.next_ping = now + self.tuning.probe_interval;
                out.send(p.record.addr, Message::Ping { nonce: probe.nonce });
            }
        }
        for name in dead {
            let Some(probe) = self.probes.remove(&name) else { continue };
            let Some(p) = self.peers.get_mut(&name) else { continue };
            if p.record.status != Status::Alive || p.record.incarnation != probe.incarnation {
                continue;
            }
            p.record.status = Status::Dead;
            p.since = now;
            let addr = p.record.addr;
            self.dirty = true;
            self.urgent = true;
            self.stats.declared_dead += 1;
            out.0.push(Action::Changed(Change::Down {
                name: name.clone(),
                incarnation: probe.incarnation,
                reason: DownReason::Unresponsive { silent_for: now.saturating_duration_since(probe.silent_since) },
            }));
            // The dead member is told too: if it is only cut off one way, it refutes.
            self.broadcast(now, Message::Dead { name, incarnation: probe.incarnation }, Some(addr), out);
        }
    }

    fn run_broadcasts(&mut self, now: Instant, out: &mut Out) {
        let due: Vec<Broadcast> = {
            let (due, rest) = std::mem::take(&mut self.broadcasts).into_iter().partition(|b| now >= b.due);
            self.broadcasts = rest;
            due
        };
        for mut b in due {
            self.send_to_all(&b.msg, b.extra, out);
            b.left -= 1;
            if b.left > 0 {
                b.due = now + self.tuning.heartbeat_interval;
                self.broadcasts.push(b);
            }
        }
    }

    /// Contacts seeds and dead members' addresses that are not live members:
    /// how a node joins, and how the two sides of a healed partition meet.
    fn rejoin(&mut self, out: &mut Out) {
        let live: BTreeSet<SocketAddr> = self.live_peers().map(|p| p.record.addr).collect();
        let mut targets: BTreeSet<SocketAddr> = self.seeds.iter().copied().collect();
        targets.extend(self.peers.values().filter(|p| p.record.status == Status::Dead).map(|p| p.record.addr));
        targets.retain(|a| *a != self.me.addr && !live.contains(a));
        // Alone, ask a few for their whole view; otherwise introducing
        // ourselves is enough (anti-entropy does the rest).
        let mut want = if live.is_empty() { self.tuning.join_sync_fanout } else { 0 };
        for to in targets {
            out.send(to, self.alive_msg(want > 0));
            want = want.saturating_sub(1);
        }
    }

    fn seeds_changed(&mut self, now: Instant, seeds: Vec<SocketAddr>, out: &mut Out) {
        self.seeds = seeds;
        if self.settle_deadline.is_none() && !self.view.settled {
            if self.seeds.iter().all(|a| *a == self.me.addr) {
                self.settle_deadline = Some(now);
                self.dirty = true;
            } else {
                self.settle_deadline = Some(now + self.tuning.settle_timeout);
            }
        }
        if self.leaving.is_none() {
            self.rejoin(out);
        }
    }

    fn leave(&mut self, now: Instant, out: &mut Out) {
        if self.leaving.is_some() {
            return;
        }
        let nonce = self.next_nonce();
        let pending: BTreeSet<String> = self.live_peers().map(|p| p.record.name.clone()).collect();
        self.me.status = Status::Left;
        let msg = Message::Leave { incarnation: self.me.incarnation, nonce };
        self.send_to_all(&msg, None, out);
        self.leaving = Some(Leaving { nonce, pending, next: now + self.tuning.heartbeat_interval });
        self.probes.clear();
        self.broadcasts.clear();
    }

    fn received(&mut self, now: Instant, from: SocketAddr, sender: String, msg: Message, out: &mut Out) {
        if sender == self.me.name {
            return;
        }
        if self.leaving.is_some() {
            self.received_while_leaving(from, &sender, msg, out);
            return;
        }
        if let Some(p) = self.peers.get_mut(&sender) {
            p.last_heard = Some(now);
            if p.record.status == Status::Alive && self.probes.remove(&sender).is_some() {
                self.stats.false_suspicions += 1;
            }
        }
        let is_leave = matches!(msg, Message::Leave { .. });
        match msg {
            Message::Heartbeat { incarnation, digest } => self.heartbeat(now, from, &sender, incarnation, digest, out),
            Message::Alive { record, want_sync } => {
                self.merge(now, record, &sender, from, out);
                if want_sync {
                    self.sync_to(now, &sender, from, false, out);
                }
            }
            Message::Dead { name, incarnation } => {
                if name == self.me.name {
                    self.accused(now, incarnation, &sender, from, out);
                } else if let Some(p) = self.peers.get(&name) {
                    let record = Record { incarnation, status: Status::Dead, ..p.record.clone() };
                    self.merge(now, record, &sender, from, out);
                }
            }
            Message::Leave { incarnation, nonce } => {
                if let Some(p) = self.peers.get(&sender) {
                    let record = Record { incarnation, status: Status::Left, ..p.record.clone() };
                    self.merge(now, record, &sender, from, out);
                }
                out.send(from, Message::Ack { nonce });
            }
            Message::Ping { nonce } => out.send(from, Message::Ack { nonce }),
            Message::PingReq { nonce, target, addr } => {
                if target == self.me.name {
                    out.send(from, Message::Ack { nonce });
                } else {
                    let mine = self.next_nonce();
                    let expires = now + self.tuning.probe_timeout;
                    self.relays.insert(mine, Relay { origin: from, nonce, expires });
                    out.send(addr, Message::Ping { nonce: mine });
                }
            }
            Message::Ack { nonce } => self.ack(now, nonce, out),
            Message::Sync { records, reply } => {
                for r in records {
                    self.merge(now, r, &sender, from, out);
                }
                if !self.view.settled {
                    self.settle_deadline = Some(now);
                    self.dirty = true;
                }
                if reply {
                    self.sync_to(now, &sender, from, false, out);
                }
            }
        }
        // A sender we hold dead (or departed) is still talking: tell it, so it
        // refutes with a higher incarnation instead of staying invisible.
        if !is_leave {
            let held_down = self.peers.get(&sender).filter(|p| p.record.status != Status::Alive);
            if let Some(p) = held_down {
                let msg = Message::Dead { name: sender.clone(), incarnation: p.record.incarnation };
                if self.may_correct(now, &sender) {
                    out.send(from, msg);
                }
            }
        }
    }

    fn received_while_leaving(&mut self, from: SocketAddr, sender: &str, msg: Message, out: &mut Out) {
        match msg {
            Message::Ping { nonce } => out.send(from, Message::Ack { nonce }),
            Message::Ack { nonce } => {
                if let Some(l) = &mut self.leaving
                    && l.nonce == nonce
                {
                    l.pending.remove(sender);
                }
            }
            _ => {}
        }
    }

    fn may_correct(&mut self, now: Instant, sender: &str) -> bool {
        let min = self.tuning.sync_min_interval;
        match self.corrected.get(sender) {
            Some(t) if now.saturating_duration_since(*t) < min => false,
            _ => {
                self.corrected.insert(sender.to_string(), now);
                true
            }
        }
    }

    fn heartbeat(&mut self, now: Instant, from: SocketAddr, sender: &str, incarnation: u64, digest: u64, out: &mut Out) {
        if self.dirty {
            self.digest = self.compute_digest();
        }
        let my_digest = self.digest;
        let threshold = self.tuning.sync_after_mismatches;
        let min = self.tuning.sync_min_interval;
        let Some(p) = self.peers.get_mut(sender) else {
            // It knows us and we do not know it: ask for its view.
            if self.may_correct(now, sender) {
                out.send(from, self.alive_msg(true));
            }
            return;
        };
        if p.record.status != Status::Alive {
            return;
        }
        if digest == my_digest && incarnation <= p.record.incarnation {
            p.mismatches = 0;
            return;
        }
        // Views differ. Often that is a broadcast still in flight, so only a
        // difference that lasts several heartbeats triggers an exchange.
        p.mismatches += 1;
        if p.mismatches >= threshold && p.last_sync.is_none_or(|t| now.saturating_duration_since(t) >= min) {
            p.mismatches = 0;
            self.sync_to(now, sender, from, true, out);
        }
    }

    fn sync_to(&mut self, now: Instant, name: &str, to: SocketAddr, reply: bool, out: &mut Out) {
        if let Some(p) = self.peers.get_mut(name) {
            p.last_sync = Some(now);
        }
        self.stats.syncs += 1;
        out.send(to, self.full_view(reply));
    }

    fn ack(&mut self, now: Instant, nonce: u64, out: &mut Out) {
        if let Some(r) = self.relays.remove(&nonce) {
            out.send(r.origin, Message::Ack { nonce: r.nonce });
            return;
        }
        let Some(target) = self.probes.iter().find(|(_, p)| p.nonce == nonce).map(|(n, _)| n.clone()) else {
            return;
        };
        self.probes.remove(&target);
        self.stats.false_suspicions += 1;
        // Answered through a helper: alive, but its heartbeats do not reach us.
        // Restart the silence clock rather than probing again at once.
        if let Some(p) = self.peers.get_mut(&target) {
            p.watch_since = Some(now);
        }
    }

    /// Someone says this node is dead.
    fn accused(&mut self, now: Instant, incarnation: u64, by: &str, from: SocketAddr, out: &mut Out) {
        if incarnation >= self.me.incarnation {
            self.refute(now, incarnation, by, from, out);
        } else {
            // It only has old news: correct that one sender.
            out.send(from, self.alive_msg(false));
        }
    }

    fn refute(&mut self, now: Instant, seen: u64, by: &str, from: SocketAddr, out: &mut Out) {
        self.me.incarnation = seen.max(self.me.incarnation) + 1;
        self.stats.refutations += 1;
        self.dirty = true;
        out.0.push(Action::Changed(Change::Refuted { incarnation: self.me.incarnation, by: by.to_string() }));
        self.broadcast(now, self.alive_msg(false), Some(from), out);
    }

    /// Takes in a record about any member, from `via` (itself or a gossiping peer).
    fn merge(&mut self, now: Instant, r: Record, via: &str, from: SocketAddr, out: &mut Out) {
        if r.name == self.me.name {
            let beats_me = r.incarnation > self.me.incarnation
                || (r.incarnation == self.me.incarnation && r.status != Status::Alive);
            if beats_me {
                self.refute(now, r.incarnation, via, from, out);
            }
            return;
        }
        let gossip = r.name != via;
        let name = r.name.clone();
        let Some(p) = self.peers.get_mut(&name) else {
            let alive = r.status == Status::Alive;
            let (incarnation, addr) = (r.incarnation, r.addr);
            let key = ring_key(&name);
            let peer = Peer {
                record: r,
                ring_key: key,
                since: now,
                last_heard: (!gossip).then_some(now),
                watch_since: None,
                mismatches: 0,
                last_sync: None,
            };
            self.peers.insert(name.clone(), peer);
            if alive {
                self.dirty = true;
                out.0.push(Action::Changed(Change::Up { name, incarnation, via: via.to_string() }));
                if gossip {
                    // Let it hear from us directly (it may not know us yet).
                    out.send(addr, self.alive_msg(false));
                }
            }
            return;
        };
        if !newer(&r, &p.record) {
            return;
        }
        let was_alive = p.record.status == Status::Alive;
        let is_alive = r.status == Status::Alive;
        if r.status != p.record.status {
            p.since = now;
        }
        let (incarnation, addr, status) = (r.incarnation, r.addr, r.status);
        // New metadata can change who may announce what (an interface lost
        // its carrier): as urgent as a death.
        let meta_changed = p.record.meta != r.meta;
        p.record = r;
        self.dirty = true;
        let change = match (was_alive, is_alive) {
            (true, true) => {
                self.urgent |= meta_changed;
                Change::Updated { name, incarnation }
            }
            (false, true) => {
                p.last_heard = (!gossip).then_some(now);
                p.watch_since = None;
                p.mismatches = 0;
                if gossip {
                    out.send(addr, self.alive_msg(false));
                }
                Change::Up { name, incarnation, via: via.to_string() }
            }
            (true, false) => {
                self.urgent = true;
                self.probes.remove(&name);
                let reason = if status == Status::Left {
                    DownReason::Left
                } else {
                    DownReason::ReportedDead { by: via.to_string() }
                };
                Change::Down { name, incarnation, reason }
            }
            (false, false) => return,
        };
        out.0.push(Action::Changed(change));
    }

    fn compute_digest(&self) -> u64 {
        let mut h = Sha256::new();
        let mut live: Vec<(&str, u64)> = self.live_peers().map(|p| (p.record.name.as_str(), p.record.incarnation)).collect();
        if self.me.status == Status::Alive {
            live.push((&self.me.name, self.me.incarnation));
        }
        live.sort_unstable();
        for (name, inc) in live {
            h.update([name.len() as u8]);
            h.update(name.as_bytes());
            h.update(inc.to_be_bytes());
        }
        let d = h.finalize();
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// Recomputes ring, digest and view after a change and publishes the view.
    fn publish(&mut self, now: Instant, out: &mut Out) {
        self.urgent = false;
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.digest = self.compute_digest();
        self.rebuild_ring(now);
        let mut members = BTreeMap::new();
        if self.me.status == Status::Alive {
            members.insert(self.me.name.clone(), member(&self.me));
        }
        for p in self.live_peers() {
            members.insert(p.record.name.clone(), member(&p.record));
        }
        let settled = self.view.settled || self.settle_deadline.is_some_and(|d| now >= d);
        let view = View { members, settled };
        if view != self.view {
            self.view = view.clone();
            out.0.push(Action::ViewChanged(view));
        }
    }

    fn rebuild_ring(&mut self, now: Instant) {
        let mut ring: Vec<(u64, &str)> = self.live_peers().map(|p| (p.ring_key, p.record.name.as_str())).collect();
        let me = (ring_key(&self.me.name), self.me.name.as_str());
        ring.push(me);
        ring.sort_unstable();
        let n = ring.len();
        let pos = ring.iter().position(|e| *e == me).unwrap_or(0);
        let k = self.tuning.monitors.min(n - 1);
        let successors: Vec<String> = (1..=k).map(|i| ring[(pos + i) % n].1.to_string()).collect();
        let watched: Vec<String> = (1..=k).map(|i| ring[(pos + n - i) % n].1.to_string()).collect();
        for name in &watched {
            if !self.watched.contains(name)
                && let Some(p) = self.peers.get_mut(name)
            {
                p.watch_since = Some(now);
            }
        }
        self.probes.retain(|name, _| watched.contains(name));
        self.successors = successors;
        self.watched = watched;
    }
}

fn member(r: &Record) -> Member {
    Member { name: r.name.clone(), incarnation: r.incarnation, meta: r.meta.clone(), addr: r.addr }
}
