//! The async handle the speaker holds: the interface watcher, the announcer
//! and the network on tokio tasks, wired by channels.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::announcer::{Announcer, Count, Input, Output, Purpose, Report, Timing};
use crate::interfaces::{ExcludeList, InterfaceInfo, InterfaceScope, InterfacesError, Scanner};
use crate::metrics::Metrics;
use crate::network::{Network, NetworkError, NetworkStats, Received};

#[derive(Debug, Clone)]
pub struct ResponderConfig {
    pub exclude: ExcludeList,
    /// Periodic full rescan besides netlink notifications (speaker.md §3.4: 10 s).
    pub rescan_interval: Duration,
    pub timing: Timing,
    /// Frames waiting for the announcer; beyond this a flood is dropped at
    /// the socket (counted as `queue_full`), so memory stays bounded.
    pub queue_depth: usize,
}

impl ResponderConfig {
    pub fn new(exclude: ExcludeList) -> Self {
        ResponderConfig { exclude, rescan_interval: Duration::from_secs(10), timing: Timing::default(), queue_depth: 1024 }
    }
}

impl Default for ResponderConfig {
    fn default() -> Self {
        Self::new(ExcludeList::default_list())
    }
}

/// What the responder tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L2Report {
    /// A MAC that is not one of this node's answered or announced for an
    /// address this node announces: another node (or host) claims it too.
    Conflict { ip: IpAddr, interface: String, mac: [u8; 6] },
}

#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    #[error(transparent)]
    Interfaces(#[from] InterfacesError),
    #[error(transparent)]
    Network(#[from] NetworkError),
}

/// Answers ARP and NDP for the announced set. Dropping it stops answering
/// (tasks aborted, sockets closed, multicast groups left).
///
/// Sockets are created on the runtime's threads, so they live in those
/// threads' network namespace.
pub struct Responder {
    announced: watch::Sender<BTreeMap<IpAddr, InterfaceScope>>,
    interfaces: watch::Receiver<Vec<InterfaceInfo>>,
    reports: Option<mpsc::Receiver<L2Report>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Responder {
    /// Scans the interfaces once (an error here is fatal: no netlink), then
    /// starts answering for the (initially empty) announced set.
    pub async fn start(cfg: ResponderConfig, registry: &mut Registry) -> Result<Self, L2Error> {
        let scanner = Scanner::open()?;
        let first = without_excluded(scanner.scan().await?, &cfg.exclude);
        let (interfaces_tx, interfaces) = watch::channel(first);
        let (announced, announced_rx) = watch::channel(BTreeMap::new());
        let (reports_tx, reports) = mpsc::channel(64);
        let (frames_tx, frames_rx) = mpsc::channel(cfg.queue_depth.max(1));
        let stats = Arc::new(NetworkStats::default());
        let network = Network::new(frames_tx, stats.clone())?;
        let metrics = Metrics::register(registry);

        let watcher = tokio::spawn(watch_interfaces(scanner, cfg.exclude.clone(), cfg.rescan_interval, interfaces_tx));
        let driver = Driver {
            announcer: Announcer::new(cfg.timing),
            network,
            metrics,
            stats,
            reports: reports_tx,
            epoch: Instant::now(),
            last_send_warning: None,
            retry_sockets: None,
            failed_joins: Default::default(),
            retry_joins_at: None,
        };
        let run = tokio::spawn(driver.run(announced_rx, interfaces.clone(), frames_rx));
        Ok(Responder { announced, interfaces, reports: Some(reports), tasks: vec![watcher, run] })
    }

    /// The whole desired set. Every call re-confirms: an address not in its
    /// gratuitous window gets a round now and a 5 s window; one in it gets
    /// its window pushed out (speaker.md §3.6). Addresses absent from the
    /// map stop being answered at once (§3.7).
    pub fn set_announced(&self, ips: BTreeMap<IpAddr, InterfaceScope>) {
        self.announced.send_replace(ips);
    }

    /// The node's links after name exclusion, whether usable or not (see
    /// [`InterfaceInfo::arp_usable`]); refreshed on netlink events and every rescan.
    pub fn interfaces(&self) -> watch::Receiver<Vec<InterfaceInfo>> {
        self.interfaces.clone()
    }

    /// Conflicts. The first call takes the stream; later calls get a closed one.
    pub fn reports(&mut self) -> mpsc::Receiver<L2Report> {
        self.reports.take().unwrap_or_else(|| mpsc::channel(1).1)
    }
}

fn without_excluded(links: Vec<InterfaceInfo>, exclude: &ExcludeList) -> Vec<InterfaceInfo> {
    links.into_iter().filter(|l| !exclude.excludes(&l.name)).collect()
}

/// Rescans on every link/address notification (a carrier loss is seen at
/// once) and every `rescan` interval; publishes only real changes.
async fn watch_interfaces(
    mut scanner: Scanner,
    exclude: ExcludeList,
    rescan: Duration,
    publish: watch::Sender<Vec<InterfaceInfo>>,
) {
    loop {
        tokio::select! {
            changed = scanner.changed() => {
                if let Err(error) = changed {
                    tracing::warn!(%error, "netlink notifications stopped; reopening");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match Scanner::open() {
                        Ok(s) => scanner = s,
                        Err(error) => tracing::warn!(%error, "reopening netlink failed"),
                    }
                }
            }
            _ = tokio::time::sleep(rescan) => {}
        }
        match scanner.scan().await {
            Ok(links) => {
                let links = without_excluded(links, &exclude);
                publish.send_if_modified(|current| {
                    let changed = *current != links;
                    if changed {
                        *current = links;
                    }
                    changed
                });
            }
            Err(error) => tracing::warn!(%error, "interface scan failed; keeping the previous list"),
        }
        if publish.is_closed() {
            return;
        }
    }
}

/// The announcer's task: feeds it inputs, carries out its outputs.
struct Driver {
    announcer: Announcer,
    network: Network,
    metrics: Metrics,
    stats: Arc<NetworkStats>,
    reports: mpsc::Sender<L2Report>,
    epoch: Instant,
    last_send_warning: Option<Instant>,
    /// Links for which a socket could not be opened are retried at this time
    /// (the interface list is only republished when it changes).
    retry_sockets: Option<(Instant, Vec<InterfaceInfo>)>,
    /// Group joins that failed (e.g. the link went away for a moment); the
    /// announcer believes them joined, so they are retried here.
    failed_joins: std::collections::BTreeSet<(u32, std::net::Ipv6Addr)>,
    retry_joins_at: Option<Instant>,
}

impl Driver {
    async fn run(
        mut self,
        mut announced: watch::Receiver<BTreeMap<IpAddr, InterfaceScope>>,
        mut interfaces: watch::Receiver<Vec<InterfaceInfo>>,
        mut frames: mpsc::Receiver<Received>,
    ) {
        let links = interfaces.borrow_and_update().clone();
        self.interfaces(links);
        loop {
            let deadline = self.announcer.next_deadline().map(|d| self.epoch + d);
            let retry_at = self.retry_sockets.as_ref().map(|r| r.0);
            let joins_at = self.retry_joins_at;
            tokio::select! {
                // Changes of the set and of the links first, then timers: a
                // flood of frames must not delay a withdrawal or a round.
                biased;
                changed = announced.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let set = announced.borrow_and_update().clone();
                    self.handle(Input::SetAnnounced(set));
                }
                changed = interfaces.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let links = interfaces.borrow_and_update().clone();
                    self.interfaces(links);
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.handle(Input::Tick);
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    if let Some((_, links)) = self.retry_sockets.take() {
                        self.interfaces(links);
                    }
                }
                _ = tokio::time::sleep_until(joins_at.unwrap_or_else(Instant::now)), if joins_at.is_some() => {
                    self.retry_joins_at = None;
                    for (ifindex, group) in std::mem::take(&mut self.failed_joins) {
                        self.apply(Output::JoinGroup { ifindex, group });
                    }
                }
                frame = frames.recv() => match frame {
                    Some(Received { ifindex, bytes }) => self.handle(Input::Frame { ifindex, bytes }),
                    None => return,
                },
            }
            for (reason, counter) in
                [("queue_full", &self.stats.queue_full), ("socket_buffer_full", &self.stats.socket_buffer_full)]
            {
                let lost = counter.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    self.metrics.dropped(reason, lost);
                }
            }
        }
    }

    fn interfaces(&mut self, links: Vec<InterfaceInfo>) {
        // Sockets first, so that frames for new links can be sent at once.
        let errors = self.network.sync(&links);
        for error in &errors {
            tracing::warn!(%error, "layer 2 responder not started on an interface; retrying in 5 s");
        }
        self.retry_sockets = (!errors.is_empty()).then(|| (Instant::now() + Duration::from_secs(5), links.clone()));
        self.handle(Input::Interfaces(links));
    }

    fn handle(&mut self, input: Input) {
        let now = Instant::now().saturating_duration_since(self.epoch);
        for output in self.announcer.handle(now, input) {
            self.apply(output);
        }
    }

    fn apply(&mut self, output: Output) {
        let m = &self.metrics;
        match output {
            Output::Send { ifindex, frame, purpose } => match self.network.send(ifindex, &frame) {
                Ok(()) => {
                    if let Purpose::Reply(ip) = purpose {
                        m.responses_sent.get_or_create(&Metrics::ip(&ip)).inc_by(1);
                    }
                }
                Err(error) => self.send_failed(ifindex, purpose, &error),
            },
            Output::JoinGroup { ifindex, group } => {
                if let Err(error) = self.network.join(ifindex, &group) {
                    tracing::warn!(ifindex, %group, %error, "joining the solicited-node group failed; retrying in 5 s");
                    self.failed_joins.insert((ifindex, group));
                    self.retry_joins_at.get_or_insert_with(|| Instant::now() + Duration::from_secs(5));
                }
            }
            Output::LeaveGroup { ifindex, group } => {
                self.failed_joins.remove(&(ifindex, group));
                if let Err(error) = self.network.leave(ifindex, &group) {
                    tracing::debug!(ifindex, %group, %error, "leaving the solicited-node group failed");
                }
            }
            Output::Report(Report::Conflict { ip, interface, mac }) => {
                m.conflicts.get_or_create(&Metrics::ip(&ip)).inc();
                tracing::warn!(%ip, %interface, %mac, "another MAC answers for an address this node announces");
                // A slow reader loses reports rather than stalling answering.
                let _ = self.reports.try_send(L2Report::Conflict { ip, interface, mac: mac.0 });
            }
            Output::Count(Count::RequestReceived(ip)) => m.requests_received.get_or_create(&Metrics::ip(&ip)).inc_by(1),
            Output::Count(Count::GratuitousSent(ip, n)) => m.gratuitous_sent.get_or_create(&Metrics::ip(&ip)).inc_by(n),
            Output::Count(Count::Dropped(reason)) => m.dropped(reason, 1),
            Output::Withdrawn(ip) => m.forget(&ip),
        }
    }

    /// At most one warning a second: a dead link under a flood of requests
    /// must not flood the log.
    fn send_failed(&mut self, ifindex: u32, purpose: Purpose, error: &std::io::Error) {
        let now = Instant::now();
        if self.last_send_warning.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        self.last_send_warning = Some(now);
        let interface = self.network.interface_name(ifindex).unwrap_or("?").to_string();
        tracing::warn!(%interface, ?purpose, %error, "sending a layer 2 frame failed");
    }
}
