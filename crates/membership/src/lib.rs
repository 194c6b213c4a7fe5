//! Failure detection among ferrolb speakers: which speakers are live, agreed
//! by all of them within well under a second of a node dying. The protocol
//! (ring heartbeats, SWIM-style probes and incarnations, anti-entropy by view
//! digest) and its figures are in docs/membership.md.
//!
//! Modules: `packet` (wire format), `replay` (replay refusal), `state` (the
//! pure protocol), `network` (the UDP socket), `sim` (a simulated lossy
//! network for tests and figures); `Membership` wires them in a tokio task.

pub mod metrics;
pub mod network;
pub mod packet;
pub mod replay;
pub mod sim;
pub mod state;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, ReasonLabel};
use crate::network::{Incoming, Network};
pub use crate::state::{Member, Tuning, View};
use crate::state::{Action, Change, DownReason, Event, State};

pub struct Config {
    /// This node's name (the Kubernetes node name).
    pub name: String,
    /// `--ml-bindaddr:--ml-bindport`.
    pub bind: SocketAddr,
    /// Address peers reach this node at; defaults to the bound address, which
    /// then must not be unspecified (0.0.0.0 or ::).
    pub advertise: Option<SocketAddr>,
    /// HMAC-SHA256 key (`derive_key`); `None` = unauthenticated.
    pub key: Option<[u8; 32]>,
    /// Initial metadata (opaque here; the speaker's usable networks).
    pub meta: Vec<u8>,
    /// With a key, how far a datagram's timestamp may be from our clock.
    pub replay_window: Duration,
    pub tuning: Tuning,
}

impl Config {
    pub fn new(name: impl Into<String>, bind: SocketAddr) -> Self {
        Self {
            name: name.into(),
            bind,
            advertise: None,
            key: None,
            meta: Vec::new(),
            replay_window: Duration::from_secs(60),
            tuning: Tuning::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("node name {0:?} is empty or longer than {max} bytes", max = packet::MAX_NAME)]
    BadName(String),
    #[error("metadata of {0} bytes is larger than {max}", max = packet::MAX_META)]
    MetaTooLong(usize),
    #[error("bound to the unspecified address {0}: set an advertise address peers can reach")]
    NoAdvertiseAddress(SocketAddr),
}

/// speaker.md §3.8: the secret file's bytes followed by SHA-256 of the empty
/// string, first 32 bytes. Not SHA-256 of the secret; kept identical to
/// MetalLB's so one Secret serves both during a migration.
pub fn derive_key(secret: &[u8]) -> [u8; 32] {
    let empty = Sha256::digest([]);
    let mut key = [0u8; 32];
    for (k, b) in key.iter_mut().zip(secret.iter().chain(empty.iter())) {
        *k = *b;
    }
    key
}

const SKEW_WARNING_EVERY: Duration = Duration::from_secs(60);

enum Command {
    Seeds(Vec<SocketAddr>),
    Meta(Vec<u8>),
    Leave { timeout: Duration, done: oneshot::Sender<()> },
}

/// Handle on the running membership task. Dropping it stops the task at once
/// without telling anyone (peers find out as for a crash); `leave` tells them.
pub struct Membership {
    commands: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
}

impl Membership {
    pub async fn start(cfg: Config, registry: &mut Registry) -> Result<(Self, watch::Receiver<View>), MembershipError> {
        if cfg.name.is_empty() || cfg.name.len() > packet::MAX_NAME {
            return Err(MembershipError::BadName(cfg.name));
        }
        if cfg.meta.len() > packet::MAX_META {
            return Err(MembershipError::MetaTooLong(cfg.meta.len()));
        }
        // Larger than any incarnation an earlier run of this node used, as long
        // as the clock does not jump back by more than the earlier run lasted.
        let incarnation = network::wall_clock_ms();
        let window = cfg.replay_window.as_millis() as u64;
        let net = Network::bind(cfg.bind, cfg.name.clone(), incarnation, cfg.key, window)
            .await
            .map_err(|source| MembershipError::Bind { addr: cfg.bind, source })?;
        let local_addr = net.local_addr().map_err(|source| MembershipError::Bind { addr: cfg.bind, source })?;
        let advertise = cfg.advertise.unwrap_or(local_addr);
        if advertise.ip().is_unspecified() {
            return Err(MembershipError::NoAdvertiseAddress(advertise));
        }
        if cfg.key.is_none() {
            warn!("membership traffic is not authenticated (no secret key)");
        }
        let tick = cfg.tuning.heartbeat_interval.min(cfg.tuning.probe_interval) / 2;
        let state = State::new(cfg.name, advertise, incarnation, cfg.meta, cfg.tuning);
        let (view_tx, view_rx) = watch::channel(state.view().clone());
        let (commands, rx) = mpsc::unbounded_channel();
        let metrics = Metrics::register(registry);
        let driver = Driver { state, net, view: view_tx, metrics, tick, last_skew_warning: None };
        tokio::spawn(driver.run(rx));
        Ok((Self { commands, local_addr }, view_rx))
    }

    /// The bound socket address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Addresses of the other speakers (their Pod IPs and the membership
    /// port). Those not yet members are contacted at once and every
    /// `rejoin_interval`.
    pub fn set_seeds(&self, addrs: Vec<SocketAddr>) {
        let _ = self.commands.send(Command::Seeds(addrs));
    }

    /// Replaces this node's metadata; peers see it within one round trip.
    pub fn set_meta(&self, meta: Vec<u8>) -> Result<(), MembershipError> {
        if meta.len() > packet::MAX_META {
            return Err(MembershipError::MetaTooLong(meta.len()));
        }
        let _ = self.commands.send(Command::Meta(meta));
        Ok(())
    }

    /// Tells every live member this node leaves and waits until all have
    /// acknowledged, or `timeout`.
    pub async fn leave(self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Leave { timeout, done }).is_ok() {
            let _ = tokio::time::timeout(timeout + Duration::from_millis(50), wait).await;
        }
    }
}

struct Driver {
    state: State,
    net: Network,
    view: watch::Sender<View>,
    metrics: Metrics,
    tick: Duration,
    last_skew_warning: Option<Instant>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                _ = ticker.tick() => Event::Tick,
                incoming = self.net.recv() => match self.incoming(incoming) {
                    Some(e) => e,
                    None => continue,
                },
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(Command::Seeds(s)) => Event::SeedsChanged(s),
                    Some(Command::Meta(m)) => Event::MetaChanged(m),
                    Some(Command::Leave { timeout, done }) => {
                        self.leave(&mut ticker, timeout).await;
                        let _ = done.send(());
                        return;
                    }
                },
            };
            self.step(event).await;
        }
    }

    async fn leave(&mut self, ticker: &mut tokio::time::Interval, timeout: Duration) {
        info!(node = self.state.name(), "leaving the membership");
        self.step(Event::Leave).await;
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.state.leave_done() {
            let event = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = ticker.tick() => Event::Tick,
                incoming = self.net.recv() => match self.incoming(incoming) {
                    Some(e) => e,
                    None => continue,
                },
            };
            self.step(event).await;
        }
    }

    fn incoming(&mut self, incoming: std::io::Result<Incoming>) -> Option<Event> {
        match incoming {
            Ok(Incoming::Message { from, sender, msg }) => {
                self.metrics.datagrams_received.inc();
                Some(Event::Received { from, sender, msg })
            }
            Ok(Incoming::Rejected { from, why }) => {
                self.metrics.datagrams_rejected.get_or_create(&ReasonLabel { reason: why.reason() }).inc();
                // A peer whose clock is off by more than the replay window can
                // never join: say so loudly, but not for every datagram.
                let skewed = matches!(why, network::Rejection::Replay(replay::ReplayError::Stale { .. }));
                if skewed && self.last_skew_warning.is_none_or(|t| t.elapsed() >= SKEW_WARNING_EVERY) {
                    self.last_skew_warning = Some(Instant::now());
                    warn!(%from, error = %why, "membership datagram refused: clocks differ by more than the replay window (check NTP)");
                } else {
                    debug!(%from, error = %why, "membership datagram rejected");
                }
                None
            }
            Err(e) => {
                debug!(error = %e, "membership socket receive error");
                None
            }
        }
    }

    async fn step(&mut self, event: Event) {
        for action in self.state.handle(Instant::now(), event) {
            match action {
                Action::Send { to, msg } => match self.net.send(to, msg).await {
                    Ok(n) => {
                        self.metrics.datagrams_sent.inc_by(n);
                    }
                    Err(e) => debug!(%to, error = %e, "membership send failed"),
                },
                Action::ViewChanged(view) => {
                    self.metrics.members.set(view.members.len() as i64);
                    self.view.send_replace(view);
                }
                Action::Changed(change) => log_change(&change),
            }
        }
        self.metrics.observe(self.state.stats());
    }
}

fn log_change(change: &Change) {
    match change {
        Change::Up { name, incarnation, via } => info!(member = %name, incarnation, via = %via, "speaker up"),
        Change::Updated { name, incarnation } => debug!(member = %name, incarnation, "speaker updated"),
        Change::Down { name, incarnation, reason } => match reason {
            DownReason::Unresponsive { silent_for } => warn!(
                member = %name, incarnation, silent_ms = silent_for.as_millis() as u64,
                "speaker down: no heartbeat and no probe answered"
            ),
            DownReason::ReportedDead { by } => warn!(member = %name, incarnation, by = %by, "speaker down: found dead by a peer"),
            DownReason::Left => info!(member = %name, incarnation, "speaker down: left"),
        },
        Change::Refuted { incarnation, by } => {
            warn!(incarnation, by = %by, "this speaker was held dead by a peer; refuted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_secret_then_empty_digest() {
        // SHA-256("") = e3b0c442 98fc1c14 9afbf4c8 996fb924 ...
        let secret = b"abcdefghijklmnopqrstuv"; // 22 bytes, the usual length
        let key = derive_key(secret);
        assert_eq!(&key[..22], secret);
        assert_eq!(&key[22..], &[0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb]);
        // A long secret is cut, not hashed.
        let long = [7u8; 40];
        assert_eq!(derive_key(&long), [7u8; 32]);
        // An empty secret is the empty string's digest itself.
        assert_eq!(&derive_key(b"")[..4], &[0xe3, 0xb0, 0xc4, 0x42]);
    }
}
