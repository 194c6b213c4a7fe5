//! The handle the speaker process uses: peers added, changed and removed,
//! routes set per peer, and a watch of every session's state and counters.
//! Changing routes never resets a session; changing a peer resets it only
//! when a field carried by the OPEN or the connection changed.

mod config;
mod peer;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

pub use config::PeerConfig;
use peer::{PeerCmd, PeerTask};

use crate::network::{self, md5};
use crate::rib_out::Advertisement;
use crate::session::{Negotiated, State};

/// A session's state and counters (exported by the speaker under MetalLB's
/// metric names: session_up, updates_total, announced_prefixes_total,
/// pending_prefixes_total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub state: State,
    pub session_up: bool,
    pub negotiated: Option<Negotiated>,
    /// UPDATE messages sent (announcements and withdrawals).
    pub updates_sent: u64,
    pub prefixes_advertised: usize,
    pub pending_prefixes: usize,
    /// How many times the session reached Established.
    pub established_count: u64,
    pub last_error: Option<String>,
}

impl Default for PeerStatus {
    fn default() -> Self {
        Self {
            state: State::Idle,
            session_up: false,
            negotiated: None,
            updates_sent: 0,
            prefixes_advertised: 0,
            pending_prefixes: 0,
            established_count: 0,
            last_error: None,
        }
    }
}

struct PeerHandle {
    cfg: PeerConfig,
    tx: mpsc::UnboundedSender<PeerCmd>,
    task: JoinHandle<()>,
}

type Peers = Arc<Mutex<HashMap<String, PeerHandle>>>;

pub struct Speaker {
    peers: Peers,
    listeners: Vec<(SocketAddr, Arc<TcpListener>, JoinHandle<()>)>,
    status_tx: watch::Sender<BTreeMap<String, PeerStatus>>,
}

fn lock(peers: &Peers) -> std::sync::MutexGuard<'_, HashMap<String, PeerHandle>> {
    // A panic elsewhere while holding the lock leaves a usable map.
    peers.lock().unwrap_or_else(|e| e.into_inner())
}

impl Speaker {
    /// Starts the engine (inside a tokio runtime), listening on `listen`
    /// for peers that connect to us (port 179 in production).
    pub fn start(listen: &[SocketAddr]) -> std::io::Result<Speaker> {
        let peers: Peers = Arc::default();
        let (status_tx, _) = watch::channel(BTreeMap::new());
        let mut listeners = vec![];
        for addr in listen {
            let l = Arc::new(network::listen(*addr, None)?);
            let bound = l.local_addr()?;
            let task = tokio::spawn(accept_loop(l.clone(), peers.clone()));
            listeners.push((bound, l, task));
        }
        Ok(Speaker {
            peers,
            listeners,
            status_tx,
        })
    }

    /// The addresses actually listened on (port 0 resolved).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(a, _, _)| *a).collect()
    }

    pub fn status(&self) -> watch::Receiver<BTreeMap<String, PeerStatus>> {
        self.status_tx.subscribe()
    }

    fn set_listener_keys(&self, addr: IpAddr, password: Option<&str>) {
        for (bound, l, _) in &self.listeners {
            if bound.is_ipv4() != addr.is_ipv4() && !bound.is_ipv6() {
                continue;
            }
            // A dual-stack IPv6 listener sees IPv4 peers as mapped addresses.
            let key_addr = match (bound, addr) {
                (SocketAddr::V6(_), IpAddr::V4(a)) => IpAddr::V6(a.to_ipv6_mapped()),
                _ => addr,
            };
            if let Err(e) = md5::set_key(l.as_ref(), key_addr, password.map(str::as_bytes)) {
                warn!(%addr, error = %e, "cannot set the TCP MD5 key on the listener");
            }
        }
    }

    /// Adds a peer, or changes one (resetting its session only when needed).
    pub fn set_peer(&self, name: &str, cfg: PeerConfig) {
        let mut peers = lock(&self.peers);
        if let Some(h) = peers.get_mut(name) {
            if h.cfg.password != cfg.password || h.cfg.address != cfg.address {
                self.set_listener_keys(h.cfg.address, None);
                self.set_listener_keys(cfg.address, cfg.password.as_deref());
            }
            h.cfg = cfg.clone();
            let _ = h.tx.send(PeerCmd::Config(Box::new(cfg)));
            return;
        }
        if let Some(pw) = cfg.password.as_deref() {
            self.set_listener_keys(cfg.address, Some(pw));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(
            PeerTask::new(name.to_string(), cfg.clone(), self.status_tx.clone()).run(rx),
        );
        peers.insert(name.to_string(), PeerHandle { cfg, tx, task });
    }

    /// Removes a peer: Cease (peer de-configured) and the connection closed.
    pub async fn remove_peer(&self, name: &str) {
        if let Some(task) = self.forget_peer(name) {
            let _ = task.await;
        }
    }

    /// [`Self::remove_peer`] without waiting: the peer's task sends its
    /// Cease and ends on its own. Returns the task, for a caller that wants
    /// to wait after all.
    pub fn forget_peer(&self, name: &str) -> Option<JoinHandle<()>> {
        let h = lock(&self.peers).remove(name)?;
        if h.cfg.password.is_some() {
            self.set_listener_keys(h.cfg.address, None);
        }
        let _ = h.tx.send(PeerCmd::Stop(
            crate::packet::notification::CEASE_PEER_DECONFIGURED,
        ));
        Some(h.task)
    }

    /// Tears a session down with a Cease of `subcode` (e.g. BFD down) and
    /// lets it come up again as usual.
    pub fn reset_peer(&self, name: &str, subcode: u8) {
        if let Some(h) = lock(&self.peers).get(name) {
            let _ = h.tx.send(PeerCmd::Reset(subcode));
        }
    }

    /// The names of the configured peers.
    pub fn peer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.peers).keys().cloned().collect();
        names.sort();
        names
    }

    /// The routes to advertise to a peer (replacing the previous set).
    pub fn set_routes(&self, name: &str, routes: BTreeMap<IpNet, Advertisement>) {
        if let Some(h) = lock(&self.peers).get(name) {
            let _ = h.tx.send(PeerCmd::Routes(routes));
        }
    }

    /// Changes the routes of some prefixes of a peer (`None`: withdrawn),
    /// leaving the others as they are; each prefix once. What the peer is
    /// sent is computed for those prefixes alone. Meant to follow a
    /// [`Self::set_routes`]: before one, the changes make the peer's whole
    /// set, and End-of-RIB may follow them.
    pub fn change_routes(&self, name: &str, changes: Vec<(IpNet, Option<Advertisement>)>) {
        if let Some(h) = lock(&self.peers).get(name) {
            let _ = h.tx.send(PeerCmd::RouteChanges(changes));
        }
    }

    /// Stops every session and waits. A session with graceful restart
    /// configured is closed without a NOTIFICATION, so that a helper router
    /// keeps our routes until we are back (a speaker restarting during an
    /// upgrade); the others get Cease, administrative shutdown.
    pub async fn shutdown(self) {
        let handles: Vec<PeerHandle> = lock(&self.peers).drain().map(|(_, h)| h).collect();
        for h in handles {
            let cmd = if h.cfg.graceful_restart.is_some() {
                PeerCmd::Abandon
            } else {
                PeerCmd::Stop(crate::packet::notification::CEASE_ADMIN_SHUTDOWN)
            };
            let _ = h.tx.send(cmd);
            let _ = h.task.await;
        }
        for (_, _, t) in &self.listeners {
            t.abort();
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        for (_, _, t) in &self.listeners {
            t.abort();
        }
        for (_, h) in lock(&self.peers).drain() {
            h.task.abort();
        }
    }
}

async fn accept_loop(listener: Arc<TcpListener>, peers: Peers) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = remote.ip().to_canonical();
        let peers = lock(&peers);
        match peers.values().find(|h| h.cfg.address == ip) {
            Some(h) => {
                let _ = h.tx.send(PeerCmd::Incoming(stream));
            }
            None => debug!(%remote, "connection from an unknown peer closed"),
        }
    }
}
