//! One tokio task per peer: feeds the session state machine with socket,
//! timer and command events, and carries out its actions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{PeerConfig, PeerStatus};
use crate::network::{self, FrameError};
use crate::packet::{self, Family, Message};
use crate::rib_out::{Advertisement, AttrCache, AttrContext, Change, RibOut, Routes, resolve};
use crate::session::{Action, Event, Outgoing, Session, State, Timer};

pub(crate) enum PeerCmd {
    Config(Box<PeerConfig>),
    Routes(BTreeMap<IpNet, Advertisement>),
    /// Some prefixes' routes changed (`None`: withdrawn); each prefix once.
    RouteChanges(Vec<(IpNet, Option<Advertisement>)>),
    Incoming(TcpStream),
    /// Stop with this Cease subcode and end the task.
    Stop(u8),
    /// Tear the session down with this Cease subcode and start over.
    Reset(u8),
    /// Close the connection without a NOTIFICATION and end the task: a
    /// graceful restart helper then keeps our routes (RFC 4724 §4.2).
    Abandon,
}

enum ConnEvent {
    Connected(u64, TcpStream),
    Failed(u64, std::io::Error),
    Message(u64, Vec<u8>),
    ReadFailed(u64, FrameError),
}

struct Conn {
    writer: OwnedWriteHalf,
    reader: JoinHandle<()>,
    local: SocketAddr,
}

pub(crate) struct PeerTask {
    name: String,
    cfg: PeerConfig,
    session: Session,
    /// `None` until the owner first says which routes to carry: a session
    /// may come up before that (the speaker starts its sessions before it
    /// has read every Service), and End-of-RIB must not go out until the
    /// routes have, or a graceful-restart helper would flush the routes it
    /// kept for us (RFC 4724 §4.2).
    ads: Option<BTreeMap<IpNet, Advertisement>>,
    /// Whether this connection got its initial routes and End-of-RIB.
    initial_sent: bool,
    rib: RibOut,
    /// Attributes of routes resolved one at a time on this connection.
    attrs: AttrCache,
    conn: Option<Conn>,
    connecting: Option<JoinHandle<()>>,
    /// Bumped whenever a connection (attempt) is replaced, so that events
    /// of an older one are recognised and dropped.
    generation: u64,
    timers: HashMap<Timer, Instant>,
    events_tx: mpsc::UnboundedSender<ConnEvent>,
    events_rx: mpsc::UnboundedReceiver<ConnEvent>,
    queue: VecDeque<Event>,
    status: watch::Sender<BTreeMap<String, PeerStatus>>,
}

impl PeerTask {
    pub(crate) fn new(
        name: String,
        cfg: PeerConfig,
        status: watch::Sender<BTreeMap<String, PeerStatus>>,
    ) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        status.send_modify(|m| {
            m.insert(name.clone(), PeerStatus::default());
        });
        Self {
            session: Session::new(cfg.session()),
            name,
            cfg,
            ads: None,
            initial_sent: false,
            rib: RibOut::new(),
            attrs: AttrCache::default(),
            conn: None,
            connecting: None,
            generation: 0,
            timers: HashMap::new(),
            events_tx,
            events_rx,
            queue: VecDeque::from([Event::Start]),
            status,
        }
    }

    fn update_status(&self, f: impl FnOnce(&mut PeerStatus)) {
        self.status.send_modify(|m| {
            if let Some(s) = m.get_mut(&self.name) {
                f(s)
            }
        });
    }

    pub(crate) async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<PeerCmd>) {
        loop {
            self.drain().await;
            let deadline = self.timers.values().min().copied();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => { self.stop(3).await; break; }
                    Some(PeerCmd::Stop(sub)) => { self.stop(sub).await; break; }
                    Some(PeerCmd::Reset(sub)) => self.restart(sub).await,
                    Some(PeerCmd::Abandon) => { self.apply(Action::Close).await; break; }
                    Some(PeerCmd::Config(new)) => self.reconfigure(*new).await,
                    Some(PeerCmd::Routes(ads)) => { self.ads = Some(ads); self.readvertise().await; }
                    Some(PeerCmd::RouteChanges(changes)) => self.change_routes(changes).await,
                    Some(PeerCmd::Incoming(stream)) => self.incoming(stream),
                },
                Some(ev) = self.events_rx.recv() => self.conn_event(ev),
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    let mut due: Vec<Timer> = self.timers.iter().filter(|(_, d)| **d <= now).map(|(t, _)| *t).collect();
                    due.sort_by_key(|t| *t as u8);
                    for t in due {
                        self.timers.remove(&t);
                        self.queue.push_back(Event::TimerFired(t));
                    }
                }
            }
        }
        self.status.send_modify(|m| {
            m.remove(&self.name);
        });
    }

    async fn stop(&mut self, subcode: u8) {
        self.queue.push_back(Event::Stop {
            cease_subcode: subcode,
        });
        self.drain().await;
    }

    /// Stops the session with a Cease and starts a fresh one from the
    /// current configuration.
    async fn restart(&mut self, subcode: u8) {
        self.stop(subcode).await;
        self.session = Session::new(self.cfg.session());
        self.queue.push_back(Event::Start);
    }

    async fn reconfigure(&mut self, new: PeerConfig) {
        if self.cfg.needs_reset(&new) {
            info!(peer = %self.name, "configuration change needs a new session");
            self.cfg = new;
            self.restart(crate::packet::notification::CEASE_OTHER_CONFIG_CHANGE)
                .await;
        } else {
            self.cfg = new;
            self.readvertise().await;
        }
    }

    fn incoming(&mut self, stream: TcpStream) {
        if !self.session.accepts_incoming() {
            debug!(peer = %self.name, state = ?self.session.state(), "incoming connection refused: session busy");
            return;
        }
        if let Err(e) = network::prepare_accepted(&stream, &self.cfg.endpoint(self.scope_id())) {
            warn!(peer = %self.name, error = %e, "incoming connection: socket options failed");
            return;
        }
        self.abandon_connection();
        self.generation += 1;
        self.install(stream);
        self.queue.push_back(Event::TcpConnected);
    }

    fn conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Connected(g, stream) if g == self.generation => {
                self.connecting = None;
                self.install(stream);
                self.queue.push_back(Event::TcpConnected);
            }
            ConnEvent::Failed(g, e) if g == self.generation => {
                self.connecting = None;
                debug!(peer = %self.name, error = %e, "connect failed");
                self.update_status(|s| s.last_error = Some(format!("connect: {e}")));
                self.queue.push_back(Event::TcpFailed);
            }
            ConnEvent::Message(g, bytes) if g == self.generation => {
                let asn4 = self.session.negotiated().is_some_and(|n| n.four_octet_as);
                match packet::decode(&bytes, asn4) {
                    Ok(m) => {
                        if let Message::Notification(n) = &m {
                            warn!(peer = %self.name, notification = %n, "notification received");
                        }
                        self.queue.push_back(Event::Message(m));
                    }
                    Err(e) => {
                        warn!(peer = %self.name, error = %e, "malformed message");
                        self.queue.push_back(Event::Malformed(e));
                    }
                }
            }
            ConnEvent::ReadFailed(g, e) if g == self.generation => match e {
                FrameError::Header(e) => {
                    warn!(peer = %self.name, error = %e, "malformed message header");
                    self.queue.push_back(Event::Malformed(e));
                }
                other => {
                    debug!(peer = %self.name, error = %other, "connection ended");
                    self.queue.push_back(Event::TcpClosed);
                }
            },
            _ => {} // an older connection's event
        }
    }

    fn scope_id(&self) -> u32 {
        self.cfg.interface.as_deref().map_or(0, network::if_index)
    }

    fn install(&mut self, stream: TcpStream) {
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0));
        let (mut rd, wr) = stream.into_split();
        let tx = self.events_tx.clone();
        let g = self.generation;
        let reader = tokio::spawn(async move {
            loop {
                match network::read_message(&mut rd).await {
                    Ok(m) => {
                        if tx.send(ConnEvent::Message(g, m)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(ConnEvent::ReadFailed(g, e));
                        return;
                    }
                }
            }
        });
        self.conn = Some(Conn {
            writer: wr,
            reader,
            local,
        });
    }

    fn abandon_connection(&mut self) {
        if let Some(c) = self.connecting.take() {
            c.abort();
        }
        if let Some(c) = self.conn.take() {
            c.reader.abort();
        }
    }

    async fn drain(&mut self) {
        while let Some(ev) = self.queue.pop_front() {
            let before = self.session.state();
            let actions = self.session.step(ev);
            for a in actions {
                self.apply(a).await;
            }
            let state = self.session.state();
            if state != before {
                debug!(peer = %self.name, from = ?before, to = ?state, "session state");
                self.update_status(|s| s.state = state);
            }
        }
    }

    async fn apply(&mut self, action: Action) {
        match action {
            Action::Connect => {
                self.abandon_connection();
                self.generation += 1;
                let g = self.generation;
                let ep = self.cfg.endpoint(self.scope_id());
                let tx = self.events_tx.clone();
                self.connecting = Some(tokio::spawn(async move {
                    let ev = match network::connect(&ep).await {
                        Ok(s) => ConnEvent::Connected(g, s),
                        Err(e) => ConnEvent::Failed(g, e),
                    };
                    let _ = tx.send(ev);
                }));
            }
            Action::Send(out) => {
                let bytes = match &out {
                    Outgoing::Open(o) => o.encode(),
                    Outgoing::Keepalive => Ok(packet::encode_keepalive()),
                    Outgoing::Notification(n) => {
                        warn!(peer = %self.name, notification = %n, "sending notification");
                        Ok(n.encode())
                    }
                };
                match bytes {
                    Ok(b) => {
                        self.write(&[b]).await;
                    }
                    Err(e) => warn!(peer = %self.name, error = %e, "cannot encode message"),
                }
            }
            Action::Close => {
                if let Some(mut c) = self.conn.take() {
                    let _ = c.writer.shutdown().await;
                    c.reader.abort();
                }
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                self.generation += 1;
            }
            Action::Arm(t, d) => {
                self.timers.insert(t, Instant::now() + d);
            }
            Action::Cancel(t) => {
                self.timers.remove(&t);
            }
            Action::Up(n) => {
                info!(peer = %self.name, peer_as = n.peer_asn, hold = n.hold_time, families = ?n.families, "session established");
                self.update_status(|s| {
                    s.established_count += 1;
                    s.session_up = true;
                    s.negotiated = Some(n.clone());
                });
                self.send_initial(&n.families).await;
            }
            Action::Down(reason) => {
                info!(peer = %self.name, %reason, "session down");
                self.rib.reset();
                self.initial_sent = false;
                self.update_status(|s| {
                    s.session_up = false;
                    s.negotiated = None;
                    s.prefixes_advertised = 0;
                    s.last_error = Some(reason.to_string());
                });
            }
            // Before the initial send there is nothing to repeat: the
            // initial send carries everything.
            Action::ResendRoutes(_) if !self.initial_sent => {}
            Action::ResendRoutes(f) => {
                let changes = self.rib.refresh(f);
                self.send_changes(changes).await;
            }
        }
    }

    /// What turns advertisements into this connection's attributes; `None`
    /// before the session is negotiated.
    fn attr_context(&self) -> Option<AttrContext> {
        let n = self.session.negotiated()?;
        let local = self.conn.as_ref().map(|c| c.local.ip().to_canonical());
        Some(AttrContext {
            ibgp: n.ibgp,
            local_asn: self.cfg.local_asn(),
            next_hop_v4: self
                .cfg
                .next_hop_v4
                .map(IpAddr::V4)
                .or(local.filter(|a| a.is_ipv4())),
            next_hop_v6: self
                .cfg
                .next_hop_v6
                .map(IpAddr::V6)
                .or(local.filter(|a| a.is_ipv6())),
            default_local_pref: 100,
        })
    }

    /// The desired routes with this connection's attributes.
    fn resolved(&self) -> Routes {
        let (Some(ctx), Some(ads)) = (self.attr_context(), &self.ads) else {
            return BTreeMap::new();
        };
        let r = resolve(ads, &ctx);
        if r.len() < ads.len() {
            debug!(peer = %self.name, left_out = ads.len() - r.len(), "routes without a next hop of their family");
        }
        r
    }

    fn pending(&self) -> usize {
        self.ads.as_ref().map_or(0, BTreeMap::len)
    }

    /// Every route, then End-of-RIB, once the routes are known.
    async fn send_initial(&mut self, families: &[Family]) {
        if self.ads.is_none() {
            debug!(peer = %self.name, "session up before the routes are known: End-of-RIB waits for them");
            return;
        }
        // A new connection may have a new local address: new next hops.
        self.attrs.clear();
        self.rib.set_desired(self.resolved());
        let changes = self.rib.initial(families);
        self.initial_sent = true;
        self.send_changes(changes).await;
    }

    async fn readvertise(&mut self) {
        self.update_status(|s| s.pending_prefixes = self.pending());
        if self.session.state() != State::Established {
            return;
        }
        let families = self
            .session
            .negotiated()
            .map(|n| n.families.clone())
            .unwrap_or_default();
        if !self.initial_sent {
            self.send_initial(&families).await;
            return;
        }
        // Every full resolve starts the cache over: the configuration (next
        // hops, AS) may have changed with it.
        self.attrs.clear();
        self.rib.set_desired(self.resolved());
        let changes = self.rib.diff(&families);
        self.send_changes(changes).await;
    }

    /// Some routes changed: on an established session that has had its
    /// initial routes, only those prefixes are resolved and compared with
    /// what the peer has (a pass that changed one of 10,000 Services used to
    /// resolve and compare all 10,000 routes); otherwise the routes wait for
    /// the session, as with [`PeerCmd::Routes`].
    async fn change_routes(&mut self, changes: Vec<(IpNet, Option<Advertisement>)>) {
        let ads = self.ads.get_or_insert_with(BTreeMap::new);
        for (prefix, ad) in &changes {
            match ad {
                Some(ad) => ads.insert(*prefix, ad.clone()),
                None => ads.remove(prefix),
            };
        }
        let ctx = self.attr_context();
        let (Some(ctx), true) = (ctx, self.session.state() == State::Established && self.initial_sent) else {
            self.readvertise().await;
            return;
        };
        self.update_status(|s| s.pending_prefixes = self.pending());
        let resolved = changes
            .into_iter()
            .map(|(prefix, ad)| {
                let attrs = ad.and_then(|ad| self.attrs.resolve_one(&prefix, &ad, &ctx));
                (prefix, attrs)
            })
            .collect();
        let families = self.session.negotiated().map(|n| n.families.clone()).unwrap_or_default();
        let changes = self.rib.update(resolved, &families);
        self.send_changes(changes).await;
    }

    async fn send_changes(&mut self, changes: Vec<Change>) {
        let asn4 = self.session.negotiated().is_some_and(|n| n.four_octet_as);
        let mut msgs = Vec::new();
        let mut updates = 0u64;
        for c in changes {
            let encoded = match &c {
                Change::Announce {
                    family,
                    attrs,
                    prefixes,
                } => {
                    let over_mp = *family == Family::Ipv4Unicast && attrs.next_hop.is_ipv6();
                    packet::encode_announce(*family, attrs, prefixes, asn4, over_mp)
                }
                Change::Withdraw { family, prefixes } => {
                    packet::encode_withdraw(*family, prefixes, false)
                }
                Change::EndOfRib(f) => packet::encode_end_of_rib(*f, false).map(|m| vec![m]),
            };
            match encoded {
                Ok(m) => {
                    if !matches!(c, Change::EndOfRib(_)) {
                        updates += m.len() as u64;
                    }
                    msgs.extend(m);
                }
                Err(e) => warn!(peer = %self.name, error = %e, "cannot encode routes"),
            }
        }
        self.write(&msgs).await;
        let advertised = self.rib.sent().len();
        let pending = self.pending();
        self.update_status(|s| {
            s.updates_sent += updates;
            s.prefixes_advertised = advertised;
            s.pending_prefixes = pending;
        });
    }

    async fn write(&mut self, msgs: &[Vec<u8>]) {
        let Some(c) = self.conn.as_mut() else { return };
        for m in msgs {
            if let Err(e) = c.writer.write_all(m).await {
                debug!(peer = %self.name, error = %e, "write failed");
                self.queue.push_back(Event::TcpClosed);
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
