//! The async side: one tokio task per session driving its [`Session`] with
//! real timers and its transmit socket, one task per receive socket
//! demultiplexing datagrams to sessions, and the [`Bfd`] handle to add,
//! update, watch and remove sessions. Sockets are opened in the network
//! namespace of the thread that calls [`Bfd::add`].
//!
//! Echo: a session whose profile asks for it (single hop) gets an
//! [`EchoSender`], a task keeping the peer's MAC from the neighbour table,
//! and a share of the [`EchoReceiver`] of its local address, whose task
//! hands our returned echo packets to their session by discriminator and
//! reflects the IPv6 echo packets of echo peers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::echo::{ECHO_TTL, EchoPacket};
use crate::network::{
    EchoInput, EchoReceiver, EchoSender, Link, Neighbours, NetworkError, Receiver, Transmitter, if_index,
    ipv4_forwarding, source_towards,
};
use crate::packet::{ControlPacket, Diagnostic, State};
use crate::profile::{Hop, Profile, ProfileError};
use crate::session::{Action, Event, Session, Timer};

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

/// What BGP watches. A watcher may miss a quick Down -> Up (a watch keeps
/// the latest value only): `falls` counts every fall from Up, so comparing
/// it with the last value seen catches those too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    pub state: State,
    /// Why we last changed state.
    pub diag: Diagnostic,
    pub remote_state: State,
    /// How many times the session fell from Up.
    pub falls: u64,
    pub last_fall: Option<Fall>,
}

/// One fall of a session from Up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fall {
    pub at: std::time::Instant,
    pub diag: Diagnostic,
}

/// Per-session counts behind MetalLB's BFD metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub control_in: AtomicU64,
    pub control_out: AtomicU64,
    /// Our echo packets back from the peer, handed to the session.
    pub echo_in: AtomicU64,
    /// Our echo packets sent.
    pub echo_out: AtomicU64,
    /// The peer's (IPv6) echo packets we sent back.
    pub echo_reflected: AtomicU64,
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
    Echo(EchoPacket),
    /// Echo was turned on by a profile update: the sockets to run it.
    EchoPath(EchoPath),
    Remove(oneshot::Sender<()>),
}

struct Entry {
    discr: u32,
    vrf: String,
    cmds: mpsc::UnboundedSender<Cmd>,
    status: watch::Receiver<SessionStatus>,
    counters: Arc<Counters>,
    receiver: ReceiverKey,
    /// What echo needs, kept to open it on a profile update.
    local: Option<IpAddr>,
    hop: Hop,
    /// The echo receiver this session shares, once echo is set up.
    echo: Option<EchoKey>,
}

/// Which echo receive socket a session shares: one per local address and
/// interface (0: any).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EchoKey {
    local: IpAddr,
    ifindex: u32,
}

/// A session's echo transmit side: the packet socket and where to send.
struct EchoPath {
    sender: EchoSender,
    link: watch::Receiver<Option<Link>>,
    /// Wakes the neighbour task when a send found no MAC.
    lookup: Arc<Notify>,
    neighbour_task: JoinHandle<()>,
}

impl Drop for EchoPath {
    fn drop(&mut self) {
        self.neighbour_task.abort();
    }
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
    echo_receivers: HashMap<EchoKey, (usize, JoinHandle<()>)>,
}

impl Inner {
    /// Sets up echo for the session `key`: the local address (the kernel's
    /// choice towards the peer if none is configured), the shared receiver,
    /// the sender and the neighbour task.
    fn open_echo(&mut self, key: &SessionKey, local: Option<IpAddr>, this: &Arc<Mutex<Inner>>) -> Result<(EchoKey, EchoPath), BfdError> {
        let device = key.interface.as_deref();
        let local = match local {
            Some(l) => l,
            None => source_towards(key.peer, device)?,
        };
        let ifindex = match device {
            Some(name) => if_index(name),
            None => 0,
        };
        let echo_key = EchoKey { local, ifindex };
        if let Some((users, _)) = self.echo_receivers.get_mut(&echo_key) {
            *users += 1;
        } else {
            let socket = EchoReceiver::open(local, ifindex, device)?;
            let task = tokio::spawn(echo_receive_loop(socket, Arc::downgrade(this)));
            self.echo_receivers.insert(echo_key.clone(), (1, task));
        }
        let opened = EchoSender::open(local).and_then(|s| Ok((s, Neighbours::open()?)));
        let (sender, neighbours) = match opened {
            Ok(o) => o,
            Err(e) => {
                self.release_echo(&echo_key);
                return Err(e.into());
            }
        };
        let (link_tx, link) = watch::channel(None);
        let lookup = Arc::new(Notify::new());
        let neighbour_task = tokio::spawn(watch_neighbour(neighbours, key.peer, ifindex, link_tx, lookup.clone()));
        Ok((echo_key, EchoPath { sender, link, lookup, neighbour_task }))
    }

    fn release_echo(&mut self, key: &EchoKey) {
        if let Some((users, task)) = self.echo_receivers.get_mut(key) {
            *users -= 1;
            if *users == 0 {
                task.abort();
                self.echo_receivers.remove(key);
            }
        }
    }
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
        let mut profile = config.profile.clone();
        let mut echo = None;
        if profile.echo_mode && config.hop == Hop::Multi {
            tracing::warn!(peer = %config.peer, "BFD echo is not for multi-hop sessions (RFC 5883); not run");
        } else if profile.echo_mode {
            match inner.open_echo(&key, config.local, &self.inner) {
                Ok(e) => echo = Some(e),
                Err(error) => {
                    // Running echo without its sockets would only fail the
                    // session over and over: asynchronous mode alone.
                    tracing::warn!(peer = %config.peer, %error, "BFD echo unavailable; asynchronous mode only");
                    profile.echo_mode = false;
                }
            }
        }
        let mut session = Session::new(discr, profile, config.hop, fastrand::u64(..));
        session.set_echo_loopable(loopable(config.peer, config.interface.as_deref()));
        let initial =
            SessionStatus { state: State::Down, diag: Diagnostic::None, remote_state: State::Down, falls: 0, last_fall: None };
        let (status_tx, status) = watch::channel(initial);
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tracing::info!(peer = %config.peer, interface = ?config.interface, discr, port = transmitter.local_port(), "BFD session added");
        let (echo_key, echo_path) = echo.unzip();
        let io = SessionIo { transmitter, echo: echo_path, counters: counters.clone(), peer: config.peer };
        tokio::spawn(run_session(session, io, cmd_rx, status_tx));
        inner.by_discr.insert(discr, key.clone());
        inner.sessions.insert(
            key,
            Entry {
                discr,
                vrf: config.vrf,
                cmds,
                status: status.clone(),
                counters,
                receiver,
                local: config.local,
                hop: config.hop,
                echo: echo_key,
            },
        );
        Ok(status)
    }

    /// New timers or roles for a running session: a Poll Sequence if it is
    /// Up, never a reset.
    pub fn update(&self, key: &SessionKey, mut profile: Profile) -> Result<(), BfdError> {
        profile.validate()?;
        let mut inner = lock(&self.inner);
        let entry = inner.sessions.get(key).ok_or_else(|| BfdError::Unknown(key.clone()))?;
        if profile.echo_mode && entry.echo.is_none() && entry.hop == Hop::Single {
            let local = entry.local;
            match inner.open_echo(key, local, &self.inner) {
                Ok((echo_key, path)) => {
                    let entry = inner.sessions.get_mut(key).ok_or_else(|| BfdError::Unknown(key.clone()))?;
                    entry.echo = Some(echo_key);
                    let _ = entry.cmds.send(Cmd::EchoPath(path));
                }
                Err(error) => {
                    tracing::warn!(peer = %key.peer, %error, "BFD echo unavailable; asynchronous mode only");
                    profile.echo_mode = false;
                }
            }
        }
        let entry = inner.sessions.get(key).ok_or_else(|| BfdError::Unknown(key.clone()))?;
        entry.cmds.send(Cmd::Profile(profile)).map_err(|_| BfdError::Unknown(key.clone()))
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
            if let Some(echo) = &entry.echo {
                inner.release_echo(echo);
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

/// Whether we can loop the peer's echo packets back: IPv4 through our
/// forwarding plane (so only if forwarding is on), IPv6 through the
/// reflector on the echo socket.
fn loopable(peer: IpAddr, device: Option<&str>) -> bool {
    peer.is_ipv6() || ipv4_forwarding(device)
}

/// Keeps the peer's neighbour entry (interface and MAC) for the echo
/// sender: looked up again every few seconds (the peer's MAC may change),
/// every half second while missing, and at once when a send found none.
async fn watch_neighbour(
    neighbours: Neighbours,
    peer: IpAddr,
    ifindex: u32,
    link: watch::Sender<Option<Link>>,
    lookup: Arc<Notify>,
) {
    loop {
        let found = match neighbours.lookup(peer, ifindex).await {
            Ok(found) => found,
            Err(error) => {
                tracing::debug!(%peer, %error, "BFD echo: neighbour lookup failed");
                None
            }
        };
        let again = if found.is_some() { std::time::Duration::from_secs(5) } else { std::time::Duration::from_millis(500) };
        link.send_if_modified(|l| {
            let changed = *l != found;
            *l = found;
            changed
        });
        tokio::select! {
            _ = tokio::time::sleep(again) => {}
            _ = lookup.notified() => {}
        }
    }
}

/// Reads one echo receive socket: our echo packets back go to their
/// session by discriminator; a (IPv6) echo packet of a peer that has an
/// echo session with us is sent back.
async fn echo_receive_loop(socket: EchoReceiver, inner: std::sync::Weak<Mutex<Inner>>) {
    let local = socket.local();
    loop {
        let input = match socket.recv().await {
            Ok(i) => i,
            Err(error) => {
                tracing::warn!(%local, %error, "BFD echo receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        match input {
            EchoInput::Returned(Err(error)) => tracing::debug!(%local, %error, "BFD echo datagram refused"),
            EchoInput::Returned(Ok(r)) if r.ttl == ECHO_TTL => {
                // Not forwarded by anyone: it never left this host.
                tracing::debug!(%local, "BFD echo packet with TTL 255 ignored");
            }
            EchoInput::Returned(Ok(r)) => {
                let inner = lock(&inner);
                let entry = inner.by_discr.get(&r.packet.my_discriminator).and_then(|k| inner.sessions.get(k));
                match entry {
                    Some(e) => {
                        let _ = e.cmds.send(Cmd::Echo(r.packet));
                    }
                    None => tracing::debug!(%local, discr = r.packet.my_discriminator, "BFD echo packet for no session"),
                }
            }
            EchoInput::Foreign(d) => {
                let source = d.source.ip();
                // Only what arrived straight from an echo peer (hop limit 255).
                let counters = {
                    let inner = lock(&inner);
                    inner.sessions.iter().find(|(k, e)| k.peer == source && e.echo.is_some()).map(|(_, e)| e.counters.clone())
                };
                match counters {
                    Some(c) if d.ttl == ECHO_TTL => match socket.reflect(&d).await {
                        Ok(()) => {
                            c.echo_reflected.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => tracing::debug!(%source, %error, "BFD echo reflection failed"),
                    },
                    _ => tracing::debug!(%source, ttl = d.ttl, "BFD echo packet from no echo peer"),
                }
            }
        }
    }
}

/// What a session task sends through and counts in.
struct SessionIo {
    transmitter: Transmitter,
    echo: Option<EchoPath>,
    counters: Arc<Counters>,
    peer: IpAddr,
}

impl SessionIo {
    async fn send(&self, p: &ControlPacket) {
        match self.transmitter.send(&p.encode()).await {
            Ok(()) => {
                self.counters.control_out.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(peer = %self.peer, %error, "BFD send failed"),
        }
    }

    fn send_echo(&self, e: &EchoPacket) {
        let Some(echo) = &self.echo else { return };
        let link = *echo.link.borrow();
        let Some(link) = link else {
            tracing::debug!(peer = %self.peer, "BFD echo: no neighbour entry for the peer yet");
            echo.lookup.notify_one();
            return;
        };
        match echo.sender.send(e, link) {
            Ok(()) => {
                self.counters.echo_out.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(peer = %self.peer, %error, "BFD echo send failed"),
        }
    }
}

async fn run_session(
    mut session: Session,
    mut io: SessionIo,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    status: watch::Sender<SessionStatus>,
) {
    let peer = io.peer;
    let counters = io.counters.clone();
    // When each timer fires, indexed as `Timer::ALL`.
    let mut due: [Option<Instant>; 4] = [None; 4];
    let mut pending = vec![Event::AdminUp];
    let mut done: Option<oneshot::Sender<()>> = None;
    let mut falls = 0u64;
    let mut last_fall = None;
    loop {
        for event in pending.drain(..) {
            match event {
                Event::Received { .. } => counters.control_in.fetch_add(1, Ordering::Relaxed),
                Event::EchoReceived(_) => counters.echo_in.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            let now = Instant::now();
            for action in session.handle(event) {
                for (timer, delay) in Timer::of(&action) {
                    due[timer as usize] = delay.map(|d| now + d);
                }
                match action {
                    Action::Send(p) => io.send(&p).await,
                    Action::SendEcho(e) => io.send_echo(&e),
                    Action::StateChanged { from, to, diag } => {
                        tracing::info!(%peer, %from, %to, %diag, "BFD session state");
                        if to == State::Up {
                            counters.up_events.fetch_add(1, Ordering::Relaxed);
                        } else if from == State::Up {
                            counters.down_events.fetch_add(1, Ordering::Relaxed);
                            falls += 1;
                            last_fall = Some(Fall { at: std::time::Instant::now(), diag });
                        }
                    }
                    Action::Discarded(why) => {
                        counters.discarded.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, %why, "BFD packet discarded");
                    }
                    // Timers: handled above.
                    Action::ArmTransmit(_)
                    | Action::StopTransmit
                    | Action::ArmDetection(_)
                    | Action::StopDetection
                    | Action::ArmEchoTransmit(_)
                    | Action::ArmEchoDetection(_)
                    | Action::StopEcho => {}
                }
            }
            // AdminDown is internal (removal): watchers see Down.
            let state = if session.state() == State::AdminDown { State::Down } else { session.state() };
            let next =
                SessionStatus { state, diag: session.local_diag(), remote_state: session.remote_state(), falls, last_fall };
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
        // The earliest timer; on a tie, the order of `Timer::ALL`.
        let next = Timer::ALL
            .iter()
            .filter_map(|t| due[*t as usize].map(|at| (at, *t)))
            .min_by_key(|(at, t)| (*at, *t as usize));
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        tokio::select! {
            biased;
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Packet { packet, ttl }) => pending.push(Event::Received { packet, ttl }),
                Some(Cmd::Profile(p)) => pending.push(Event::Profile(p)),
                Some(Cmd::PathDown) => pending.push(Event::PathDown),
                Some(Cmd::Echo(e)) => pending.push(Event::EchoReceived(e)),
                Some(Cmd::EchoPath(path)) => io.echo = Some(path),
                Some(Cmd::Remove(tx)) => {
                    pending.push(Event::AdminDown);
                    done = Some(tx);
                }
                None => return,
            },
            _ = sleep_until(next.map_or(far, |n| n.0)), if next.is_some() => {
                if let Some((_, timer)) = next {
                    due[timer as usize] = None;
                    pending.push(timer.event());
                }
            }
        }
    }
}
