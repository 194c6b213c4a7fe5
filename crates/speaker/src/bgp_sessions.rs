//! Puts the BGP decision (`decide::bgp`) on the wire: tells the engine
//! (`ferrolb-bgp`) which sessions to run and which routes each carries, runs
//! BFD beside the sessions that name a profile, and turns what the engine
//! reports into MetalLB's metrics, events and log lines.
//!
//! Only differences reach the engine: a route change is a `change_routes`
//! of that peer's changed prefixes alone (the whole set goes with
//! `set_routes` only when the decision was rebuilt or the session is new),
//! and a peer whose configuration did not change is not
//! touched, so a new pool, advertisement or Service never resets a session
//! (issue 7 "Incremental change"). Whether a changed peer needs a new
//! session is the engine's call (`PeerConfig::needs_reset`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_allocator::ServiceKey;
use ferrolb_bfd::{Bfd, Hop, Profile, SessionConfig as BfdSessionConfig, SessionKey as BfdKey};
use ferrolb_bgp::packet::notification::CEASE_BFD_DOWN;
use ferrolb_bgp::speaker::{PeerConfig, PeerStatus, Speaker as Engine};
use ferrolb_config::assemble::{BfdProfile, Config};
use ferrolb_l2::InterfaceInfo;
use ferrolb_runtime::events::{EventSpec, EventType, Recorder};
use k8s_openapi::api::core::v1::ObjectReference;
use tokio::sync::{mpsc, watch};

use crate::decide::bgp::engine::{PeerEnv, engine_peer, engine_route, engine_routes};
use crate::decide::bgp::{BgpChanges, BgpDecision, PeerSession, RefusedRoute};
use crate::metrics::{AnnouncedLabels, BgpPeerLabels, Shown, SpeakerMetrics};

pub const PROTOCOL_BGP: &str = "bgp";

/// What happened that the runner must hand back to [`BgpSessions`].
#[derive(Debug)]
pub enum BgpEvent {
    /// A session's state or counters changed.
    Status,
    /// BFD declared the path to this peer down.
    BfdDown(String),
    /// The routers' link-local addresses on unnumbered interfaces changed.
    Neighbors,
}

/// How often the neighbour table is read while an unnumbered peer waits.
const NEIGHBOR_POLL: Duration = Duration::from_secs(2);

/// One peer as the engine was last told.
struct Applied {
    config: PeerConfig,
    /// Whether the engine has had the session's whole set of routes; until
    /// then it holds them back ([`BgpSessions::start_sessions`]). After
    /// that it gets the prefixes that changed: no copy of the routes is
    /// kept here to compare with.
    routes_given: bool,
    /// MetalLB native's `peer` label: `<address>:<port>`.
    label: BgpPeerLabels,
    bfd: Option<(BfdKey, Profile)>,
}

pub struct BgpSessions {
    node: Arc<str>,
    namespace: String,
    engine: Engine,
    status: watch::Receiver<BTreeMap<String, PeerStatus>>,
    bfd: Bfd,
    bfd_down_tx: mpsc::UnboundedSender<String>,
    bfd_down_rx: mpsc::UnboundedReceiver<String>,
    peers: BTreeMap<String, Applied>,
    /// Interfaces of unnumbered peers, for the neighbour task.
    unnumbered: watch::Sender<BTreeSet<String>>,
    /// The router's link-local address per unnumbered interface, as the
    /// neighbour task last found it.
    neighbors: watch::Receiver<BTreeMap<String, Ipv6Addr>>,
    link_local: BTreeMap<String, Ipv6Addr>,
    /// Why a peer could not be configured, so the same reason is logged once.
    refused: BTreeMap<String, String>,
    /// What the metrics and events last showed of each session.
    seen: BTreeMap<String, SeenStatus>,
    /// Services advertised from this node, with their addresses.
    advertised: BTreeMap<ServiceKey, Arc<[IpAddr]>>,
    refused_routes: RefusalLog,
    metrics: SpeakerMetrics,
    recorder: Recorder,
    /// The `nodeAssigned` event of every Service this node advertises: one
    /// text, shared by all of them.
    node_assigned: EventSpec,
}

#[derive(Default)]
struct SeenStatus {
    up: bool,
    updates_sent: u64,
}

impl BgpSessions {
    /// The engine dials every peer and listens for none, as MetalLB's
    /// native speaker does (speaker.md §4.5): no port 179 to bind on the
    /// host, and routers configured active or passive both work.
    pub fn start(node: &str, namespace: &str, metrics: SpeakerMetrics, recorder: Recorder, bfd: Bfd) -> std::io::Result<Self> {
        let engine = Engine::start(&[])?;
        let status = engine.status();
        let (bfd_down_tx, bfd_down_rx) = mpsc::unbounded_channel();
        let (unnumbered, interfaces) = watch::channel(BTreeSet::new());
        let (found, neighbors) = watch::channel(BTreeMap::new());
        tokio::spawn(find_neighbors(interfaces, found));
        Ok(BgpSessions {
            node: node.into(),
            namespace: namespace.to_string(),
            engine,
            status,
            bfd,
            bfd_down_tx,
            bfd_down_rx,
            peers: BTreeMap::new(),
            unnumbered,
            neighbors,
            link_local: BTreeMap::new(),
            refused: BTreeMap::new(),
            seen: BTreeMap::new(),
            advertised: BTreeMap::new(),
            refused_routes: RefusalLog::default(),
            metrics,
            recorder,
            node_assigned: EventSpec {
                type_: EventType::Normal,
                reason: "nodeAssigned".into(),
                message: format!("announcing from node \"{node}\" with protocol \"bgp\"").into(),
            },
        })
    }

    /// Waits for the next thing to hand to [`Self::handle`].
    pub async fn next_event(&mut self) -> BgpEvent {
        tokio::select! {
            changed = self.status.changed() => match changed {
                Ok(()) => BgpEvent::Status,
                // The engine lives as long as `self`: never ends.
                Err(_) => std::future::pending().await,
            },
            Some(peer) = self.bfd_down_rx.recv() => BgpEvent::BfdDown(peer),
            Ok(()) = self.neighbors.changed() => BgpEvent::Neighbors,
        }
    }

    /// Returns whether the decision must be applied again (an unnumbered
    /// peer's address was found or changed).
    pub fn handle(&mut self, event: BgpEvent) -> bool {
        match event {
            BgpEvent::Status => self.publish_status(),
            BgpEvent::BfdDown(peer) => {
                if self.peers.contains_key(&peer) {
                    tracing::warn!(peer = %peer, "BFD declared the path down: resetting the BGP session");
                    self.engine.reset_peer(&peer, CEASE_BFD_DOWN);
                }
            }
            BgpEvent::Neighbors => {
                let found = self.neighbors.borrow_and_update().clone();
                if found != self.link_local {
                    tracing::info!(routers = ?found, "link-local routers of unnumbered peers");
                    self.link_local = found;
                    return true;
                }
            }
        }
        false
    }

    /// Makes the engine run `decision`'s sessions with its routes, and
    /// reports Services that start or stop being advertised. Only what
    /// `changes` names is compared with what the engine was told (all of it
    /// after a rebuild).
    pub fn apply(&mut self, decision: &BgpDecision, changes: &BgpChanges, config: &Config, ifaces: &[InterfaceInfo], secrets: &BTreeMap<(String, String), String>) {
        self.apply_peers(decision, config, ifaces, secrets, Some(changes));
        let services = match changes.all {
            true => decision.advertised.keys().chain(self.advertised.keys()).cloned().collect(),
            false => changes.services.clone(),
        };
        self.apply_services(decision, services);
        self.publish_status();
    }

    /// Starts `decision`'s sessions before the Services are known, so that
    /// sessions (and BFD) come up while the Services are still being
    /// listed. The engine holds End-of-RIB until [`Self::apply`] gives the
    /// routes, so a graceful-restart helper keeps our routes meanwhile.
    pub fn start_sessions(&mut self, decision: &BgpDecision, config: &Config, ifaces: &[InterfaceInfo], secrets: &BTreeMap<(String, String), String>) {
        self.apply_peers(decision, config, ifaces, secrets, None);
        self.publish_status();
    }

    fn apply_peers(
        &mut self,
        decision: &BgpDecision,
        config: &Config,
        ifaces: &[InterfaceInfo],
        secrets: &BTreeMap<(String, String), String>,
        routes_changed: Option<&BgpChanges>,
    ) {
        let with_routes = routes_changed.is_some();
        let unnumbered: BTreeSet<String> =
            decision.sessions.values().filter(|s| s.address.is_none()).filter_map(|s| s.interface.clone()).collect();
        self.unnumbered.send_if_modified(|current| {
            let changed = *current != unnumbered;
            *current = unnumbered;
            changed
        });
        let env = PeerEnv { node: &self.node, node_ipv4: node_ipv4(ifaces), link_local: &self.link_local, secrets };
        let mut wanted: BTreeMap<&String, (PeerConfig, &PeerSession)> = BTreeMap::new();
        for (name, session) in &decision.sessions {
            match engine_peer(session, &env) {
                Ok(cfg) => {
                    self.refused.remove(name);
                    wanted.insert(name, (cfg, session));
                }
                Err(error) => {
                    let text = error.to_string();
                    if self.refused.get(name) != Some(&text) {
                        tracing::error!(peer = %name, %error, "BGP session not started");
                        self.refused.insert(name.clone(), text);
                    }
                }
            }
        }
        self.refused.retain(|name, _| decision.sessions.contains_key(name));

        let gone: Vec<String> = self.peers.keys().filter(|n| !wanted.contains_key(n)).cloned().collect();
        for name in gone {
            self.remove(&name);
        }
        let no_routes = BTreeMap::new();
        for (name, (cfg, session)) in wanted {
            let routes = decision.routes.get(name).unwrap_or(&no_routes);
            let bfd = session.bfd_profile.as_deref().and_then(|p| bfd_session(&cfg, config.bfd_profile(p)?));
            match self.peers.get_mut(name) {
                Some(applied) => {
                    if applied.config != cfg {
                        self.engine.set_peer(name, cfg.clone());
                        self.metrics.bgp.forget(&applied.label);
                        applied.label = peer_label(&cfg);
                        applied.config = cfg;
                    }
                    if let Some(changes) = routes_changed {
                        if !applied.routes_given || changes.all {
                            self.engine.set_routes(name, engine_routes(routes));
                            applied.routes_given = true;
                        } else if let Some(prefixes) = changes.peers.get(name.as_str()) {
                            let changed = prefixes.iter().map(|p| (*p, routes.get(p).map(engine_route))).collect();
                            self.engine.change_routes(name, changed);
                        }
                    }
                }
                None => {
                    tracing::info!(peer = %name, address = %cfg.address, "starting BGP session");
                    self.engine.set_peer(name, cfg.clone());
                    if with_routes {
                        self.engine.set_routes(name, engine_routes(routes));
                    }
                    let label = peer_label(&cfg);
                    self.metrics.bgp.session_up.get_or_create(&label).set(0);
                    self.peers.insert(name.clone(), Applied { config: cfg, routes_given: with_routes, label, bfd: None });
                }
            }
            self.apply_bfd(name, bfd);
        }
    }

    fn remove(&mut self, name: &str) {
        let Some(applied) = self.peers.remove(name) else { return };
        tracing::info!(peer = %name, "closing BGP session: peer no longer configured for this node");
        // The task sends its Cease and ends on its own.
        drop(self.engine.forget_peer(name));
        self.metrics.bgp.forget(&applied.label);
        self.seen.remove(name);
        if let Some((key, _)) = applied.bfd {
            self.remove_bfd(key);
        }
    }

    /// Starts, changes or stops the BFD session beside peer `name`.
    fn apply_bfd(&mut self, name: &str, wanted: Option<BfdSessionConfig>) {
        let Some(applied) = self.peers.get_mut(name) else { return };
        let current = applied.bfd.clone();
        match (current, wanted) {
            (None, None) => {}
            (Some((key, profile)), Some(cfg)) if key == cfg.key() => {
                if profile != cfg.profile {
                    if let Err(error) = self.bfd.update(&key, cfg.profile.clone()) {
                        tracing::warn!(peer = %name, %error, "changing the BFD profile failed");
                    }
                    applied.bfd = Some((key, cfg.profile));
                }
            }
            (current, wanted) => {
                applied.bfd = None;
                if let Some((key, _)) = current {
                    self.remove_bfd(key);
                }
                if let Some(cfg) = wanted {
                    let (key, profile) = (cfg.key(), cfg.profile.clone());
                    match self.bfd.add(cfg) {
                        Ok(status) => {
                            tokio::spawn(watch_bfd(name.to_string(), status, self.bfd_down_tx.clone()));
                            if let Some(applied) = self.peers.get_mut(name) {
                                applied.bfd = Some((key, profile));
                            }
                        }
                        Err(error) => tracing::error!(peer = %name, %error, "BFD session not started"),
                    }
                }
            }
        }
    }

    fn remove_bfd(&self, key: BfdKey) {
        let bfd = self.bfd.clone();
        tokio::spawn(async move {
            if let Err(error) = bfd.remove(&key).await {
                tracing::debug!(%error, "BFD session already gone");
            }
        });
    }

    /// `nodeAssigned` and `metallb_speaker_announced` for Services that
    /// start being advertised (or whose addresses changed); log lines for
    /// those that stop. `keys` holds every Service that may have changed.
    fn apply_services(&mut self, decision: &BgpDecision, keys: BTreeSet<ServiceKey>) {
        for key in keys {
            let Some(announce) = decision.advertised.get(&key) else {
                if let Some(ips) = self.advertised.remove(&key) {
                    let reason = decision.withdrawn.get(&key).map(|r| r.as_str()).unwrap_or("serviceDeleted");
                    tracing::info!(service = %key, ips = ?ips, reason, protocol = PROTOCOL_BGP, event = "serviceWithdrawn", "withdrawing service announcement");
                    self.forget_announced(&key, &ips);
                }
                continue;
            };
            if self.advertised.get(&key) == Some(&announce.ips) {
                continue;
            }
            if let Some(old) = self.advertised.get(&key) {
                self.forget_announced(&key, old);
            }
            for ip in announce.ips.iter() {
                self.metrics.announced.get_or_create(&self.announced_labels(&key, ip)).set(1);
            }
            tracing::info!(service = %key, ips = ?announce.ips, protocol = PROTOCOL_BGP, peers = ?announce.peers, event = "serviceAnnounced", "service has IP, announcing");
            self.recorder.record(&crate::runner::service_reference(&key), self.node_assigned.clone());
            self.advertised.insert(key, announce.ips.clone());
        }
        for refused in self.refused_routes.fresh(&decision.refused) {
            tracing::error!(peer = %refused.peer, prefix = %refused.prefix, error = %refused.message(), "route not advertised");
        }
    }

    fn announced_labels(&self, key: &ServiceKey, ip: &IpAddr) -> AnnouncedLabels {
        AnnouncedLabels { service: Shown(key.clone()), protocol: PROTOCOL_BGP, node: self.node.clone(), ip: Shown(*ip) }
    }

    fn forget_announced(&self, key: &ServiceKey, ips: &[IpAddr]) {
        for ip in ips {
            self.metrics.announced.remove(&self.announced_labels(key, ip));
        }
    }

    /// MetalLB's per-session metrics, and an event and a log line when a
    /// session comes up or goes down.
    fn publish_status(&mut self) {
        let status = self.status.borrow_and_update().clone();
        for (name, applied) in &self.peers {
            let Some(s) = status.get(name) else { continue };
            let m = &self.metrics.bgp;
            m.session_up.get_or_create(&applied.label).set(i64::from(s.session_up));
            m.announced_prefixes.get_or_create(&applied.label).set(gauge(s.prefixes_advertised));
            m.pending_prefixes.get_or_create(&applied.label).set(gauge(s.pending_prefixes));
            let seen = self.seen.entry(name.clone()).or_default();
            m.updates.get_or_create(&applied.label).inc_by(s.updates_sent.saturating_sub(seen.updates_sent));
            seen.updates_sent = s.updates_sent;
            if s.session_up != seen.up {
                seen.up = s.session_up;
                let peer = peer_reference(&self.namespace, name);
                if s.session_up {
                    tracing::info!(peer = %name, address = %applied.config.address, event = "sessionUp", "BGP session established");
                    self.recorder.record(&peer, EventSpec {
                        type_: EventType::Normal,
                        reason: "sessionUp".into(),
                        message: format!("BGP session with {} established on node \"{}\"", applied.label.peer, self.node).into(),
                    });
                } else {
                    let why = s.last_error.clone().unwrap_or_else(|| "unknown".into());
                    tracing::warn!(peer = %name, address = %applied.config.address, reason = %why, event = "sessionDown", "BGP session down");
                    self.recorder.record(&peer, EventSpec {
                        type_: EventType::Warning,
                        reason: "sessionDown".into(),
                        message: format!("BGP session with {} on node \"{}\" went down: {why}", applied.label.peer, self.node).into(),
                    });
                }
            }
        }
    }

    /// The addresses of the Services this node advertises.
    pub fn advertised_ips(&self) -> impl Iterator<Item = &IpAddr> {
        self.advertised.values().flat_map(|ips| ips.iter())
    }

    /// Every session closed: without a NOTIFICATION where graceful restart
    /// is on, so the routers keep the routes while this speaker restarts.
    pub async fn shutdown(self) {
        self.engine.shutdown().await;
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn peer_label(cfg: &PeerConfig) -> BgpPeerLabels {
    let peer = match cfg.address {
        IpAddr::V6(a) => format!("[{a}]:{}", cfg.port),
        IpAddr::V4(a) => format!("{a}:{}", cfg.port),
    };
    BgpPeerLabels { peer }
}

fn peer_reference(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("BGPPeer".into()),
        api_version: Some("metallb.io/v1beta2".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..ObjectReference::default()
    }
}

/// The router ID when a peer sets none: the first IPv4 address of a usable
/// interface other than loopback, by interface index (stable across
/// restarts, unlike a set's order).
fn node_ipv4(ifaces: &[InterfaceInfo]) -> Option<Ipv4Addr> {
    let mut usable: Vec<&InterfaceInfo> = ifaces.iter().filter(|i| i.up && i.name != "lo").collect();
    usable.sort_by_key(|i| i.index);
    usable.iter().flat_map(|i| i.ipv4.iter()).map(|n| n.addr()).find(|a| !a.is_loopback())
}

/// The BFD session beside a BGP session: same peer, same source, single
/// hop unless the peer is reached over several (`ebgpMultiHop`).
fn bfd_session(cfg: &PeerConfig, profile: &BfdProfile) -> Option<BfdSessionConfig> {
    Some(BfdSessionConfig {
        peer: cfg.address,
        local: cfg.source,
        interface: cfg.interface.clone(),
        hop: if cfg.ebgp_multihop { Hop::Multi } else { Hop::Single },
        profile: bfd_profile(profile),
        vrf: cfg.vrf.clone().unwrap_or_default(),
    })
}

/// A BFDProfile in the engine's units, FRR's defaults for what it leaves
/// unset (crds.md §6).
pub fn bfd_profile(p: &BfdProfile) -> Profile {
    let d = Profile::default();
    let ms = |v: Option<u32>, default: std::time::Duration| v.map_or(default, |ms| std::time::Duration::from_millis(u64::from(ms)));
    let small = |v: Option<u32>, default: u8| v.map_or(default, |n| u8::try_from(n).unwrap_or(u8::MAX));
    Profile {
        receive_interval: ms(p.receive_interval, d.receive_interval),
        transmit_interval: ms(p.transmit_interval, d.transmit_interval),
        detect_multiplier: small(p.detect_multiplier, d.detect_multiplier),
        passive: p.passive_mode,
        minimum_ttl: small(p.minimum_ttl, d.minimum_ttl),
        echo_mode: p.echo_mode,
        echo_interval: ms(p.echo_interval, d.echo_interval),
    }
}

/// Reads the kernel's neighbour table for the routers of the interfaces in
/// `interfaces` (BGP unnumbered) until the speaker drops its sender.
async fn find_neighbors(mut interfaces: watch::Receiver<BTreeSet<String>>, found: watch::Sender<BTreeMap<String, Ipv6Addr>>) {
    loop {
        let wanted = interfaces.borrow_and_update().clone();
        let mut routers = BTreeMap::new();
        for name in &wanted {
            match ferrolb_bgp::network::neighbors::routers_on(name).await {
                // Several routers on one link: the lowest address, so every
                // pass picks the same one.
                Ok(list) => {
                    if let Some(first) = list.first() {
                        routers.insert(name.clone(), *first);
                    }
                }
                Err(error) => tracing::warn!(interface = %name, %error, "reading the neighbour table failed"),
            }
        }
        found.send_if_modified(|current| {
            let changed = *current != routers;
            *current = routers;
            changed
        });
        tokio::select! {
            changed = interfaces.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(NEIGHBOR_POLL), if !wanted.is_empty() => {}
        }
    }
}

/// Reports each fall of the BFD session from Up to anything else. The
/// watch keeps only the latest status, and a session may fall and come Up
/// again between two reads (echo failure while control packets still flow
/// takes milliseconds to recover): the session's `falls` count is what is
/// compared, so no fall is missed; one report per read is enough (the BGP
/// session is reset once).
async fn watch_bfd(peer: String, mut status: watch::Receiver<ferrolb_bfd::SessionStatus>, down: mpsc::UnboundedSender<String>) {
    let mut seen = status.borrow_and_update().falls;
    while status.changed().await.is_ok() {
        let falls = status.borrow_and_update().falls;
        if falls > seen && down.send(peer.clone()).is_err() {
            return;
        }
        seen = falls;
    }
}

/// Passwords of Secrets named by peers (`passwordSecret` kept as a
/// reference: FRR-K8s secret passthrough), by (namespace, name). ferrolb's
/// engine runs in this process, so it reads them itself.
pub fn referenced_secrets<'a>(
    config: &Config,
    secrets: impl Iterator<Item = &'a k8s_openapi::api::core::v1::Secret>,
) -> BTreeMap<(String, String), String> {
    let wanted: BTreeSet<(String, String)> = config
        .peers
        .iter()
        .filter_map(|p| match &p.password {
            ferrolb_config::assemble::Password::SecretRef { name, namespace } => Some((namespace.clone(), name.clone())),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    secrets
        .filter_map(|s| {
            let key = (s.metadata.namespace.clone()?, s.metadata.name.clone()?);
            if !wanted.contains(&key) {
                return None;
            }
            let password = s.data.as_ref()?.get("password")?;
            Some((key, String::from_utf8_lossy(&password.0).into_owned()))
        })
        .collect()
}

/// The routes refused at the last pass, so that a refusal is logged when it
/// starts, not on every pass while it lasts (a pass runs on every change of
/// any Service).
#[derive(Default)]
struct RefusalLog {
    logged: BTreeSet<RefusedRoute>,
}

impl RefusalLog {
    /// The routes of `now` not refused at the last call.
    fn fresh(&mut self, now: &BTreeSet<RefusedRoute>) -> Vec<RefusedRoute> {
        if *now == self.logged {
            return Vec::new();
        }
        let fresh = now.difference(&self.logged).cloned().collect();
        self.logged = now.clone();
        fresh
    }
}

#[cfg(test)]
mod refusal_log_tests {
    use super::*;

    fn route(prefix: &str, communities: usize) -> RefusedRoute {
        RefusedRoute { peer: "p".into(), prefix: prefix.parse().expect("prefix"), communities }
    }

    #[test]
    fn a_refusal_is_logged_when_it_starts_and_again_only_after_it_ended() {
        let mut log = RefusalLog::default();
        let a = route("192.0.2.1/32", 64);
        let b = route("192.0.2.2/32", 70);
        assert_eq!(log.fresh(&[a.clone()].into()), [a.clone()]);
        assert!(log.fresh(&[a.clone()].into()).is_empty(), "still refused: not logged again");
        assert_eq!(log.fresh(&[a.clone(), b.clone()].into()), [b.clone()], "only the new one");
        assert!(log.fresh(&BTreeSet::new()).is_empty(), "both ended");
        assert_eq!(log.fresh(&[a.clone()].into()), [a], "refused again: logged again");
        let more = route("192.0.2.2/32", 80);
        assert_eq!(log.fresh(&[more.clone()].into()), [more], "another count is another message");
    }
}

#[cfg(test)]
mod watch_bfd_tests {
    use super::*;
    use ferrolb_bfd::packet::{Diagnostic, State};
    use ferrolb_bfd::{Fall, SessionStatus};

    fn status(state: State, falls: u64) -> SessionStatus {
        let last_fall = (falls > 0).then(|| Fall { at: std::time::Instant::now(), diag: Diagnostic::EchoFunctionFailed });
        SessionStatus { state, diag: Diagnostic::None, remote_state: state, falls, last_fall }
    }

    /// A fall the watcher never saw as Down (Up -> Down -> Up between two
    /// reads) still resets the BGP session; Up -> Down too; a change that
    /// is not a fall does not.
    #[tokio::test]
    async fn every_fall_is_reported_even_one_never_seen_down() {
        let (tx, rx) = watch::channel(status(State::Down, 0));
        let (down_tx, mut down) = mpsc::unbounded_channel();
        let task = tokio::spawn(watch_bfd("p".into(), rx, down_tx));
        let next = |down: &mut mpsc::UnboundedReceiver<String>| down.try_recv().ok();
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        tx.send(status(State::Up, 0)).expect("send");
        settle().await;
        assert_eq!(next(&mut down), None, "coming Up is no fall");
        // Down and Up again before the watcher ran: only the count moved.
        tx.send(status(State::Up, 1)).expect("send");
        settle().await;
        assert_eq!(next(&mut down), Some("p".to_string()));
        tx.send(status(State::Down, 2)).expect("send");
        settle().await;
        assert_eq!(next(&mut down), Some("p".to_string()));
        // Remote state changes while Down: no new fall.
        tx.send(SessionStatus { remote_state: State::Init, ..status(State::Down, 2) }).expect("send");
        settle().await;
        assert_eq!(next(&mut down), None);
        task.abort();
    }
}
