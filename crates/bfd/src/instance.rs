//! The async side: one tokio task per session driving its [`Session`] with
//! real timers and its transmit socket, one task per receive socket
//! demultiplexing datagrams to sessions, and the [`Bfd`] handle to add,
//! update, watch and remove sessions. Sockets are opened in the network
//! namespace of the thread that calls [`Bfd::add`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::network::{NetworkError, Receiver, Transmitter, if_index};
use crate::packet::{ControlPacket, Diagnostic, State};
use crate::profile::{Hop, Profile, ProfileError};
use crate::session::{Action, Event, Session};

/// What identifies a session: the peer, and the interface when one is given
/// (the same link-local address can sit behind two interfaces).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub peer: IpAddr,
    pub interface: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub peer: IpAddr,
    /// Source address; the kernel's choice when `None`.
    pub local: Option<IpAddr>,
    pub interface: Option<String>,
    pub hop: Hop,
    pub profile: Profile,
    /// The `vrf` label of MetalLB's metrics ("" for the default VRF).
    pub vrf: String,
}

impl SessionConfig {
    pub fn key(&self) -> SessionKey {
        SessionKey { peer: self.peer, interface: self.interface.clone() }
    }
}

/// What BGP watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    pub state: State,
    /// Why we last changed state.
    pub diag: Diagnostic,
    pub remote_state: State,
}

/// Per-session counts behind MetalLB's BFD metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub control_in: AtomicU64,
    pub control_out: AtomicU64,
    /// Always 0: echo is not run (docs/bfd.md); exported so dashboards
    /// built for MetalLB find the series.
    pub echo_in: AtomicU64,
    pub echo_out: AtomicU64,
    pub up_events: AtomicU64,
    pub down_events: AtomicU64,
    /// Datagrams for this session refused by the state machine (TTL,
    /// authentication, discriminator).
    pub discarded: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("a BFD session with {0:?} exists already")]
    Exists(SessionKey),
    #[error("no BFD session with {0:?}")]
    Unknown(SessionKey),
    #[error("interface {0} not found")]
    NoInterface(String),
}

enum Cmd {
    Packet { packet: ControlPacket, ttl: u8 },
    Profile(Profile),
    PathDown,
    Remove(oneshot::Sender<()>),
}

struct Entry {
    discr: u32,
    vrf: String,
    cmds: mpsc::UnboundedSender<Cmd>,
    status: watch::Receiver<SessionStatus>,
    counters: Arc<Counters>,
    receiver: ReceiverKey,
}

/// Which receive socket a session listens on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ReceiverKey {
    v6: bool,
    hop: Hop,
    device: Option<String>,
}

#[derive(Default)]
pub(crate) struct Inner {
    sessions: HashMap<SessionKey, Entry>,
    by_discr: HashMap<u32, SessionKey>,
    receivers: HashMap<ReceiverKey, (usize, JoinHandle<()>)>,
}

/// The BFD engine. Cheap to clone; tasks run on the tokio runtime of the
/// caller of [`Bfd::add`].
#[derive(Clone, Default)]
pub struct Bfd {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic elsewhere cannot leave the maps half-updated in a way that
    // matters more than losing every session would.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bfd {
    pub fn new() -> Bfd {
        Bfd::default()
    }

    /// Starts a session; its state is watched through the returned receiver
    /// (Down at first, AdminDown never: removal drops the sender).
    pub fn add(&self, config: SessionConfig) -> Result<watch::Receiver<SessionStatus>, BfdError> {
        config.profile.validate()?;
        if config.profile.echo_mode {
            tracing::warn!(peer = %config.peer, "BFD echo mode requested but not supported; running asynchronous mode only");
        }
        let key = config.key();
        let scope_id = match &config.interface {
            Some(name) => match if_index(name) {
                0 => return Err(BfdError::NoInterface(name.clone())),
                i => i,
            },
            None => 0,
        };
        let mut inner = lock(&self.inner);
        if inner.sessions.contains_key(&key) {
            return Err(BfdError::Exists(key));
        }
        let transmitter = Transmitter::open(
            config.peer,
            config.hop.port(),
            config.local,
            config.interface.as_deref(),
            scope_id,
        )?;
        let receiver = ReceiverKey { v6: config.peer.is_ipv6(), hop: config.hop, device: config.interface.clone() };
        if let Some((users, _)) = inner.receivers.get_mut(&receiver) {
            *users += 1;
        } else {
            let socket = Receiver::open(receiver.v6, config.hop.port(), receiver.device.as_deref())?;
            let task = tokio::spawn(receive_loop(socket, receiver.device.clone(), Arc::downgrade(&self.inner)));
            inner.receivers.insert(receiver.clone(), (1, task));
        }
        let mut discr = 0;
        while discr == 0 || inner.by_discr.contains_key(&discr) {
            discr = fastrand::u32(1..);
        }
        let session = Session::new(discr, config.profile.clone(), config.hop, fastrand::u64(..));
        let initial = SessionStatus { state: State::Down, diag: Diagnostic::None, remote_state: State::Down };
        let (status_tx, status) = watch::channel(initial);
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tracing::info!(peer = %config.peer, interface = ?config.interface, discr, port = transmitter.local_port(), "BFD session added");
        tokio::spawn(run_session(session, transmitter, cmd_rx, status_tx, counters.clone(), config.peer));
        inner.by_discr.insert(discr, key.clone());
        inner.sessions.insert(
            key,
            Entry { discr, vrf: config.vrf, cmds, status: status.clone(), counters, receiver },
        );
        Ok(status)
    }

    /// New timers or roles for a running session: a Poll Sequence if it is
    /// Up, never a reset.
    pub fn update(&self, key: &SessionKey, profile: Profile) -> Result<(), BfdError> {
        profile.validate()?;
        self.send(key, Cmd::Profile(profile))
    }

    /// Tells a session its path is down (e.g. the interface lost carrier).
    pub fn path_down(&self, key: &SessionKey) -> Result<(), BfdError> {
        self.send(key, Cmd::PathDown)
    }

    fn send(&self, key: &SessionKey, cmd: Cmd) -> Result<(), BfdError> {
        let inner = lock(&self.inner);
        let entry = inner.sessions.get(key).ok_or_else(|| BfdError::Unknown(key.clone()))?;
        entry.cmds.send(cmd).map_err(|_| BfdError::Unknown(key.clone()))
    }

    /// Stops a session after telling the peer AdminDown.
    pub async fn remove(&self, key: &SessionKey) -> Result<(), BfdError> {
        let (done_tx, done) = oneshot::channel();
        {
            let mut inner = lock(&self.inner);
            let entry = inner.sessions.remove(key).ok_or_else(|| BfdError::Unknown(key.clone()))?;
            inner.by_discr.remove(&entry.discr);
            if let Some((users, task)) = inner.receivers.get_mut(&entry.receiver) {
                *users -= 1;
                if *users == 0 {
                    task.abort();
                    inner.receivers.remove(&entry.receiver);
                }
            }
            let _ = entry.cmds.send(Cmd::Remove(done_tx));
        }
        let _ = done.await;
        Ok(())
    }

    pub fn watch(&self, key: &SessionKey) -> Option<watch::Receiver<SessionStatus>> {
        lock(&self.inner).sessions.get(key).map(|e| e.status.clone())
    }

    pub fn counters(&self, key: &SessionKey) -> Option<Arc<Counters>> {
        lock(&self.inner).sessions.get(key).map(|e| e.counters.clone())
    }

    /// Registers MetalLB's BFD metric families (observability.md §2.3),
    /// read from the live sessions at each scrape.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(crate::metrics::Collector { bfd: self.clone() }));
    }

    /// (peer, vrf, up, counters) of every session, sorted by peer.
    pub(crate) fn snapshot(&self) -> Vec<(SessionKey, String, bool, Arc<Counters>)> {
        let inner = lock(&self.inner);
        let mut v: Vec<_> = inner
            .sessions
            .iter()
            .map(|(k, e)| (k.clone(), e.vrf.clone(), e.status.borrow().state == State::Up, e.counters.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl std::fmt::Debug for Bfd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bfd").field("sessions", &lock(&self.inner).sessions.len()).finish()
    }
}

/// Reads one receive socket and hands each decoded packet to its session:
/// by Your Discriminator when the peer knows ours, else by source address
/// (and the socket's device).
async fn receive_loop(socket: Receiver, device: Option<String>, inner: std::sync::Weak<Mutex<Inner>>) {
    loop {
        let datagram = match socket.recv().await {
            Ok(d) => d,
            Err(error) => {
                tracing::warn!(%error, "BFD receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let packet = match ControlPacket::decode(&datagram.payload) {
            Ok(p) => p,
            Err(error) => {
                tracing::debug!(source = %datagram.source, %error, "BFD datagram refused");
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        let inner = lock(&inner);
        let source = datagram.source.ip();
        let key = if packet.your_discriminator != 0 {
            inner.by_discr.get(&packet.your_discriminator).cloned()
        } else {
            Some(SessionKey { peer: source, interface: device.clone() })
        };
        // A discriminator match must still come from the session's peer.
        let Some(entry) = key.as_ref().filter(|k| k.peer == source).and_then(|k| inner.sessions.get(k)) else {
            tracing::debug!(%source, your = packet.your_discriminator, "BFD packet for no session");
            continue;
        };
        let _ = entry.cmds.send(Cmd::Packet { packet, ttl: datagram.ttl });
    }
}

async fn run_session(
    mut session: Session,
    transmitter: Transmitter,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    status: watch::Sender<SessionStatus>,
    counters: Arc<Counters>,
    peer: IpAddr,
) {
    let mut transmit_at: Option<Instant> = None;
    let mut detection_at: Option<Instant> = None;
    let mut pending = vec![Event::AdminUp];
    let mut done: Option<oneshot::Sender<()>> = None;
    loop {
        for event in pending.drain(..) {
            if let Event::Received { .. } = event {
                counters.control_in.fetch_add(1, Ordering::Relaxed);
            }
            let now = Instant::now();
            for action in session.handle(event) {
                match action {
                    Action::Send(p) => {
                        match transmitter.send(&p.encode()).await {
                            Ok(()) => {
                                counters.control_out.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(error) => tracing::debug!(%peer, %error, "BFD send failed"),
                        }
                    }
                    Action::ArmTransmit(d) => transmit_at = Some(now + d),
                    Action::StopTransmit => transmit_at = None,
                    Action::ArmDetection(d) => detection_at = Some(now + d),
                    Action::StopDetection => detection_at = None,
                    Action::StateChanged { from, to, diag } => {
                        tracing::info!(%peer, %from, %to, %diag, "BFD session state");
                        if to == State::Up {
                            counters.up_events.fetch_add(1, Ordering::Relaxed);
                        } else if from == State::Up {
                            counters.down_events.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Action::Discarded(why) => {
                        counters.discarded.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, %why, "BFD packet discarded");
                    }
                }
            }
            // AdminDown is internal (removal): watchers see Down.
            let state = if session.state() == State::AdminDown { State::Down } else { session.state() };
            let next = SessionStatus { state, diag: session.local_diag(), remote_state: session.remote_state() };
            status.send_if_modified(|s| {
                let changed = *s != next;
                *s = next;
                changed
            });
        }
        if let Some(done) = done.take() {
            let _ = done.send(());
            return;
        }
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        tokio::select! {
            biased;
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Packet { packet, ttl }) => pending.push(Event::Received { packet, ttl }),
                Some(Cmd::Profile(p)) => pending.push(Event::Profile(p)),
                Some(Cmd::PathDown) => pending.push(Event::PathDown),
                Some(Cmd::Remove(tx)) => {
                    pending.push(Event::AdminDown);
                    done = Some(tx);
                }
                None => return,
            },
            _ = sleep_until(detection_at.unwrap_or(far)), if detection_at.is_some() => {
                detection_at = None;
                pending.push(Event::DetectionTimer);
            }
            _ = sleep_until(transmit_at.unwrap_or(far)), if transmit_at.is_some() => {
                transmit_at = None;
                pending.push(Event::TransmitTimer);
            }
        }
    }
}
