//! `ferrolb speaker`: wires the watches, the failure detector, the layer 2
//! responder, the decision and the writes together, and runs until shutdown.
//!
//! One loop owns all state: every watch, the detector's view and the
//! interface list only wake it; it then reads them all, decides, and applies
//! the difference. A burst of changes costs one pass.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrolb_allocator::ServiceKey;
use ferrolb_api::v1beta1::{
    BFDProfile, BGPAdvertisement, Community, ConfigurationState, IPAddressPool, L2Advertisement, ServiceBGPStatus, ServiceL2Status,
};
use ferrolb_api::v1beta2::BGPPeer;
use ferrolb_config::assemble::{BgpMode, Config};
use ferrolb_l2::{InterfaceInfo, L2Report, Responder, ResponderConfig};
use ferrolb_membership::{Membership, View};
use ferrolb_runtime::config_state::{ConfigStateWriter, Identity, Verdict};
use ferrolb_runtime::events::{EventCounters, EventSpec, EventType, Recorder, RecorderConfig};
use ferrolb_runtime::http_server::{self, Endpoints, Health};
use ferrolb_runtime::retry::{backoff, sleep_until};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, ObjectReference, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use kube::Client;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bgp_sessions::{self, BgpSessions};
use crate::cluster;
use crate::config_load::{self, ConfigSources};
use crate::decide::bgp::{BgpChanges, BgpContext, BgpInput, BgpState, decide_bgp};
use crate::decide::{self, DecideInput, Decision, InterfaceScope, MemberNetworks};
use crate::error::SpeakerError;
use crate::inputs::Refreshed;
use crate::status_sync::{StatusSync, changed_keys};
use crate::svcstatus::{self, Items, StatusFacts};
use crate::metrics::{AnnouncedLabels, Shown, SpeakerMetrics};
use crate::options::{ML_SECRET_KEY_FILE, SpeakerOptions};
use crate::passes::PassSchedule;
use crate::{inputs, netmeta, watch as watches};

/// `source.component` of the speaker's Events (speaker.md §6).
pub const COMPONENT: &str = "metallb-speaker";
const PROTOCOL_L2: &str = "layer2";
/// Speaker Pods are listed this often for the detector's seeds (speaker.md §3.8: every minute).
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);
/// How long a graceful stop waits for the detector's goodbye to go out.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);
/// Retry spacing of a configuration refused by the safety check (speaker.md §1.2 step 1).
const CONFIG_RETRY_BASE: Duration = Duration::from_millis(500);
const CONFIG_RETRY_MAX: Duration = Duration::from_secs(30);
/// MetalLB's ConfigMap of raw FRR configuration (crds.md §11), and its key.
const BGP_EXTRAS: &str = "bgpextras";
const BGP_EXTRAS_KEY: &str = "extras";
/// `ConfigurationState` message when a valid configuration could not be
/// applied (crds.md §9: MetalLB's words; the log says which addresses).
const SYNC_STATE_ERROR: &str = "general handler sync state error";

/// Runs the speaker until `shutdown` is cancelled.
pub async fn run(opts: SpeakerOptions, shutdown: CancellationToken) -> Result<(), SpeakerError> {
    let node = opts.node()?;
    let namespace = opts.resolved_namespace()?;
    let bgp_type = std::env::var("METALLB_BGP_TYPE").ok();
    opts.check(bgp_type.as_deref())?;
    let mode = BgpMode::from_env_value(bgp_type.as_deref()).map_err(SpeakerError::BgpType)?;
    tracing::info!(node = %node, version = env!("CARGO_PKG_VERSION"), "MetalLB speaker starting (ferrolb {})", env!("CARGO_PKG_VERSION"));
    for (flag, why) in opts.ignored() {
        tracing::info!(flag, why, "option accepted and ignored");
    }

    let mut registry = Registry::default();
    let metrics = SpeakerMetrics::register(&mut registry);
    let bfd = ferrolb_bfd::Bfd::new();
    bfd.register_metrics(&mut registry);
    let config = ferrolb_runtime::client::load_config(opts.kubeconfig.as_deref()).await?;
    let client = ferrolb_runtime::client::build(config, ferrolb_api::labels::COMPONENT_SPEAKER, |_, _| {})?;

    let exclude = ferrolb_l2::ExcludeList::from_file(&opts.excludel2_path)
        .map_err(|e| SpeakerError::Startup(format!("{}: {e}", opts.excludel2_path.display())))?;
    let mut responder = Responder::start(ResponderConfig::new(exclude), &mut registry).await?;
    let mut reports = responder.reports();
    let mut interfaces = responder.interfaces();

    let membership_settings = opts.membership()?;
    let (membership, mut view) = match &membership_settings {
        Some(settings) => {
            let key = match &settings.secret_key_path {
                Some(dir) => {
                    let path = dir.join(ML_SECRET_KEY_FILE);
                    let secret = std::fs::read(&path)
                        .map_err(|e| SpeakerError::Startup(format!("reading the memberlist secret key {}: {e}", path.display())))?;
                    Some(ferrolb_membership::derive_key(&secret))
                }
                None => {
                    tracing::warn!("no --ml-secret-key-path: failure detector messages are not authenticated");
                    None
                }
            };
            let mut cfg = ferrolb_membership::Config::new(node.clone(), settings.bind);
            cfg.key = key;
            cfg.tuning.heartbeat_interval = opts.heartbeat_interval;
            cfg.meta = netmeta::encode(&usable_networks(&interfaces.borrow()));
            let (m, v) = Membership::start(cfg, &mut registry).await?;
            (Some(m), Some(v))
        }
        None => {
            tracing::info!("failure detector off (needs --ml-bindaddr and --ml-labels): every Node is assumed to run a healthy speaker");
            (None, None)
        }
    };

    let registry = Arc::new(registry);
    let mut tasks = JoinSet::new();
    let ready = Arc::new(AtomicBool::new(false));
    serve_http(&opts, registry.clone(), ready.clone(), &mut tasks).await?;

    let (recorder, recorder_task) = ferrolb_runtime::events::recorder(
        client.clone(),
        RecorderConfig {
            component: COMPONENT.into(),
            instance: opts.pod_name.clone().unwrap_or_else(|| node.clone()),
            flush_interval: Duration::from_secs(30),
        },
        EventCounters::default(),
        Default::default(),
    );
    let events_cancel = shutdown.child_token();
    tasks.spawn(recorder_task.run(events_cancel.clone()));

    let changed = Arc::new(Notify::new());
    let config_changed = Arc::new(Notify::new());
    // ServiceBGPStatus changes (mostly the echo of this speaker's own writes)
    // change no decision: they only replan the status objects, not a pass
    // over every Service.
    let bgp_status_changed = Arc::new(Notify::new());
    let identity = Identity::speaker(&node);
    let notify = Notifies { changed: changed.clone(), config_changed: config_changed.clone(), bgp_status_changed: bgp_status_changed.clone() };
    let caches = Caches::start(&client, &namespace, &opts.lb_class, &node, &identity.name, &notify, &mut tasks);
    // `None` until the first listing: an empty list (a single-node cluster)
    // must still reach the detector, which settles on it.
    let (seeds_tx, mut seeds) = watch::channel(None);
    if let Some(settings) = &membership_settings {
        tasks.spawn(discover_peers(client.clone(), namespace.clone(), settings.labels.clone(), settings.bind.port(), node.clone(), seeds_tx));
    }

    // The configuration is enough to know the BGP sessions: they start
    // while the Services and endpoints (the long lists) are still read.
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = caches.config_synced() => {}
    }

    let metrics_errors = metrics.k8s.update_errors.clone();
    let bgp = BgpSessions::start(&node, &namespace, metrics.clone(), recorder.clone(), bfd)
        .map_err(|e| SpeakerError::Startup(format!("starting the BGP engine: {e}")))?;
    let owner = ferrolb_runtime::owner::pod_owner(&client, &namespace, opts.pod_name.as_deref()).await;
    let config_state = ConfigStateWriter::new(Api::namespaced(client.clone(), &namespace), identity, owner.clone());
    let mut speaker = Speaker {
        node: node.as_str().into(),
        namespace: namespace.clone(),
        mode,
        secret_passthrough: opts.frrk8s_secret_passthrough,
        ignore_exclude_lb: opts.ignore_exclude_lb,
        responder,
        bgp,
        metrics,
        recorder,
        config_state,
        config_retry_at: None,
        config_refusals: 0,
        config: None,
        announced: BTreeMap::new(),
        addresses: BTreeMap::new(),
        ip_owners: BTreeMap::new(),
        strict_arp: None,
        l2_status: StatusSync::new(&client, &namespace, &node, owner.clone(), metrics_errors.clone()),
        bgp_status: StatusSync::new(&client, &namespace, &node, owner, metrics_errors),
        inputs: inputs::ServiceInputs::default(),
        nodes: BTreeMap::new(),
        bgp_state: BgpState::default(),
        layer2: Decision::default(),
        sticky: BTreeMap::new(),
        rebuild: true,
    };
    speaker.reload_config(&caches);
    speaker.start_sessions(&caches, &interfaces.borrow());
    tokio::select! {
        _ = shutdown.cancelled() => {
            speaker.bgp.shutdown().await;
            return Ok(());
        }
        _ = caches.synced() => {}
    }
    ready.store(true, Ordering::Relaxed);
    tracing::info!("caches synced, announcing");
    let mut config_dirty = true;
    let mut strict_arp_tick = tokio::time::interval(Duration::from_secs(60));
    let mut passes = PassSchedule::new(Instant::now());
    // Replans of the ServiceBGPStatus objects alone, spaced like passes: the
    // watch echoes each of this node's writes, thousands in a row.
    let mut status_replans = PassSchedule::idle();
    loop {
        if status_replans.due(Instant::now()) {
            let started = Instant::now();
            speaker.bgp_status.replan(&caches.bgp_statuses);
            status_replans.done(started, Instant::now());
        }
        if passes.due(Instant::now()) {
            // One turn of the runtime first: a Service and its endpoints
            // written together reach their caches in the same pass.
            tokio::task::yield_now().await;
            let started = Instant::now();
            if config_dirty {
                speaker.reload_config(&caches);
                speaker.rebuild = true;
                config_dirty = false;
            }
            // Until the detector has heard from its peers (or waited for them),
            // this node would see itself alone and claim every address.
            let settled = view.as_ref().is_none_or(|v| v.borrow().settled);
            if settled {
                let live = view.as_ref().map(|v| live_members(&v.borrow()));
                let routes = speaker.reconcile_routes(&caches, &interfaces.borrow());
                if let Some(routes) = routes {
                    tokio::task::yield_now().await;
                    speaker.reconcile_rest(routes, &caches, live.as_ref(), &interfaces.borrow());
                }
            }
            speaker.config_state.flush(caches.own_state(&namespace, speaker.config_state.name()).as_ref());
            let ended = Instant::now();
            tracing::debug!(took_us = ended.duration_since(started).as_micros() as u64, "pass");
            passes.done(started, ended);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // Cache changes come in bursts (a relist, a rollout, the watch
            // echoing this speaker's own writes): they are batched.
            _ = changed.notified() => passes.batched(Instant::now()),
            _ = bgp_status_changed.notified() => status_replans.batched(Instant::now()),
            _ = config_changed.notified() => {
                config_dirty = true;
                passes.batched(Instant::now());
            }
            // A peer failing or a link going down: failover waits for nothing.
            Ok(()) = async { match view.as_mut() { Some(v) => v.changed().await, None => std::future::pending().await } } => {
                speaker.rebuild = true;
                passes.urgent(Instant::now());
            }
            Ok(()) = interfaces.changed() => {
                if let Some(m) = &membership {
                    let meta = netmeta::encode(&usable_networks(&interfaces.borrow()));
                    if let Err(error) = m.set_meta(meta) {
                        tracing::warn!(%error, "publishing this node's networks failed");
                    }
                }
                passes.urgent(Instant::now());
            }
            Some(report) = reports.recv() => speaker.report(report),
            event = speaker.bgp.next_event() => {
                if speaker.bgp.handle(event) {
                    passes.urgent(Instant::now());
                }
            }
            Ok(()) = seeds.changed() => {
                let listed = seeds.borrow_and_update().clone();
                if let (Some(m), Some(listed)) = (&membership, listed) {
                    m.set_seeds(listed);
                }
            }
            (service, results) = speaker.l2_status.next() => speaker.l2_status.written(&caches.l2_statuses, service, results),
            (service, results) = speaker.bgp_status.next() => speaker.bgp_status.written(&caches.bgp_statuses, service, results),
            result = speaker.config_state.next() => {
                speaker.config_state.finished(result, Instant::now());
                speaker.config_state.flush(caches.own_state(&namespace, speaker.config_state.name()).as_ref());
            }
            _ = sleep_until(speaker.config_retry_at) => {
                speaker.config_retry_at = None;
                config_dirty = true;
                passes.urgent(Instant::now());
            }
            _ = strict_arp_tick.tick() => speaker.check_strict_arp(),
            _ = sleep_until(passes.next()) => {}
            _ = sleep_until(status_replans.next()) => {}
        }
    }

    // Graceful stop: stop answering, tell the other speakers at once so they
    // take over without waiting for a timeout, then flush pending events.
    tracing::info!("shutting down: withdrawing every announcement");
    speaker.responder.set_announced(BTreeMap::new());
    speaker.bgp.shutdown().await;
    if let Some(m) = membership {
        m.leave(LEAVE_TIMEOUT).await;
    }
    events_cancel.cancel();
    tasks.abort_all();
    Ok(())
}

async fn serve_http(
    opts: &SpeakerOptions,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    tasks: &mut JoinSet<()>,
) -> Result<(), SpeakerError> {
    if opts.port != 0 {
        let (addr, serve) =
            http_server::bind("metrics", SocketAddr::new(opts.metrics_bind_address, opts.port), Endpoints::registry(registry)).await?;
        tracing::info!(%addr, "serving /metrics");
        tasks.spawn(serve);
    }
    if opts.health_probe_port != 0 {
        // Loopback only: the speaker shares the host's network namespace.
        let health = Health::new().readiness(move || ready.load(Ordering::Relaxed));
        let (addr, serve) =
            http_server::bind("health", SocketAddr::from(([127, 0, 0, 1], opts.health_probe_port)), Endpoints::Health(health)).await?;
        tracing::info!(%addr, "serving /healthz and /readyz");
        tasks.spawn(serve);
    }
    Ok(())
}

/// What the first half of a pass leaves for the second.
struct RoutesApplied {
    /// The Services the pass looks at again; `None` = all of them.
    changed: Option<BTreeSet<ServiceKey>>,
    bgp_changes: BgpChanges,
}

/// What a watch wakes: a pass, a configuration reload and pass, or a replan
/// of the ServiceBGPStatus objects alone.
struct Notifies {
    changed: Arc<Notify>,
    config_changed: Arc<Notify>,
    bgp_status_changed: Arc<Notify>,
}

/// The wake-up of a watch whose reader works from the changed keys.
fn journaled(notify: &Arc<Notify>) -> watches::Wake {
    watches::Wake { notify: notify.clone(), journaled: true }
}

/// The watch of ServiceBGPStatus objects: each node manages only its own
/// (§5.2), so the others' are not even sent (with 10,000 Services on three
/// nodes, two thirds of 30,000 objects). A name that is not a valid label
/// value (too long, or odd characters from a mistyped `--node-name`) cannot
/// be selected on, and the API server would refuse the watch; then every
/// object comes and the plan filters.
fn own_bgp_statuses(node: &str) -> watcher::Config {
    let all = watcher::Config::default();
    match ferrolb_config::selector::validate_label_value(node) {
        Ok(()) => all.labels(&format!("{}={node}", ferrolb_api::labels::NODE)),
        Err(_) => all,
    }
}

/// Every watch the speaker reads.
struct Caches {
    services: watches::Projected<decide::ServiceState>,
    slices: watches::Projected<cluster::SliceFacts>,
    l2_statuses: watches::Projected<StatusFacts>,
    bgp_statuses: watches::Projected<StatusFacts>,
    /// This speaker's own ConfigurationState, so a deleted or edited one is rewritten.
    own_state: watches::Projected<ConfigurationState>,
    /// The `extras` text of the `bgpextras` ConfigMap (raw FRR configuration).
    bgp_extras: watches::Projected<String>,
    config: ConfigSources,
}

impl Caches {
    fn start(
        client: &Client,
        namespace: &str,
        lb_class: &str,
        node: &str,
        own_state: &str,
        notify: &Notifies,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        let all = watcher::Config::default();
        let class = lb_class.to_string();
        let project_service = move |key: &watches::ObjectKey, svc: &Service| cluster::service_facts(key, svc, &class);
        let ns = |c: &Client| (c.clone(), namespace.to_string());
        let (c, n) = ns(client);
        Caches {
            services: watches::spawn_with(tasks, "services", Api::<Service>::all(c.clone()), all.clone(), project_service, journaled(&notify.changed)),
            slices: watches::spawn_with(tasks, "endpointslices", Api::<EndpointSlice>::all(c.clone()), all.clone(), |_, slice: &EndpointSlice| cluster::slice_facts(slice), journaled(&notify.changed)),
            l2_statuses: watches::spawn_with(
                tasks,
                "servicel2statuses",
                Api::<ServiceL2Status>::namespaced(c.clone(), &n),
                all.clone(),
                svcstatus::facts::<ServiceL2Status>,
                watches::Wake { notify: notify.changed.clone(), journaled: false },
            ),
            bgp_statuses: watches::spawn_with(
                tasks,
                "servicebgpstatuses",
                Api::<ServiceBGPStatus>::namespaced(c.clone(), &n),
                own_bgp_statuses(node),
                svcstatus::facts::<ServiceBGPStatus>,
                watches::Wake { notify: notify.bgp_status_changed.clone(), journaled: false },
            ),
            own_state: watches::spawn(
                tasks,
                "configurationstates",
                Api::<ConfigurationState>::namespaced(c.clone(), &n),
                watcher::Config::default().fields(&format!("metadata.name={own_state}")),
                config_load::whole,
                notify.changed.clone(),
            ),
            bgp_extras: watches::spawn(
                tasks,
                "configmaps",
                Api::<ConfigMap>::namespaced(c.clone(), &n),
                watcher::Config::default().fields(&format!("metadata.name={BGP_EXTRAS}")),
                |cm: &ConfigMap| Some(cm.data.as_ref().and_then(|d| d.get(BGP_EXTRAS_KEY)).cloned().unwrap_or_default()),
                notify.config_changed.clone(),
            ),
            config: ConfigSources {
                pools: watches::spawn(tasks, "ipaddresspools", Api::<IPAddressPool>::namespaced(c.clone(), &n), all.clone(), config_load::pool_spec, notify.config_changed.clone()),
                l2_advertisements: watches::spawn(tasks, "l2advertisements", Api::<L2Advertisement>::namespaced(c.clone(), &n), all.clone(), config_load::whole, notify.config_changed.clone()),
                bgp_advertisements: watches::spawn(tasks, "bgpadvertisements", Api::<BGPAdvertisement>::namespaced(c.clone(), &n), all.clone(), config_load::whole, notify.config_changed.clone()),
                bgp_peers: watches::spawn(tasks, "bgppeers", Api::<BGPPeer>::namespaced(c.clone(), &n), all.clone(), config_load::whole, notify.config_changed.clone()),
                communities: watches::spawn(tasks, "communities", Api::<Community>::namespaced(c.clone(), &n), all.clone(), config_load::whole, notify.config_changed.clone()),
                bfd_profiles: watches::spawn(tasks, "bfdprofiles", Api::<BFDProfile>::namespaced(c.clone(), &n), all.clone(), config_load::whole, notify.config_changed.clone()),
                secrets: watches::spawn(tasks, "secrets", Api::<Secret>::namespaced(c.clone(), &n), all.clone(), config_load::whole, notify.config_changed.clone()),
                namespaces: watches::spawn(tasks, "namespaces", Api::<Namespace>::all(c.clone()), all.clone(), config_load::slim_namespace, notify.config_changed.clone()),
                nodes: watches::spawn(tasks, "nodes", Api::<Node>::all(c), all, config_load::node_facts, notify.config_changed.clone()),
            },
        }
    }

    async fn synced(&self) {
        self.config_synced().await;
        self.services.synced().await;
        self.slices.synced().await;
        self.l2_statuses.synced().await;
        self.bgp_statuses.synced().await;
    }

    /// What the configuration and the BGP sessions are made of.
    async fn config_synced(&self) {
        self.own_state.synced().await;
        self.bgp_extras.synced().await;
        self.config.synced().await;
    }

    /// Every Node's labels and conditions, by name.
    fn nodes(&self) -> BTreeMap<String, decide::NodeState> {
        self.config.nodes.read(|m| m.iter().map(|(key, (_, st))| (key.name.to_string(), st.clone())).collect())
    }

    fn own_state(&self, namespace: &str, name: &str) -> Option<ConfigurationState> {
        self.own_state.get(&watches::ObjectKey::new(namespace, name))
    }

    /// The raw FRR text of the `bgpextras` ConfigMap, when it has any.
    fn bgp_extras(&self) -> Option<String> {
        self.bgp_extras.values().into_iter().find(|text| !text.trim().is_empty())
    }
}

/// The reconcile state: what was decided last and what is on the wire.
struct Speaker {
    node: Arc<str>,
    namespace: String,
    mode: BgpMode,
    secret_passthrough: bool,
    ignore_exclude_lb: bool,
    responder: Responder,
    bgp: BgpSessions,
    metrics: SpeakerMetrics,
    recorder: Recorder,
    config_state: ConfigStateWriter,
    /// When a configuration refused by the safety check is tried again.
    config_retry_at: Option<Instant>,
    /// How many times in a row the safety check refused a configuration.
    config_refusals: u32,
    config: Option<Config>,
    /// Services this node announces, with their addresses.
    announced: BTreeMap<ServiceKey, Vec<IpAddr>>,
    /// What the responder was last told.
    addresses: BTreeMap<IpAddr, ferrolb_l2::InterfaceScope>,
    /// Services per announced address, for reports about an address.
    ip_owners: BTreeMap<IpAddr, Vec<ServiceKey>>,
    strict_arp: Option<String>,
    /// ServiceL2Status and ServiceBGPStatus objects of this node.
    l2_status: StatusSync<ServiceL2Status>,
    bgp_status: StatusSync<ServiceBGPStatus>,
    /// The Services as the last pass read them.
    inputs: inputs::ServiceInputs,
    /// Nodes as the last pass read them.
    nodes: BTreeMap<String, decide::NodeState>,
    /// The BGP and layer 2 decisions of the last pass.
    bgp_state: BgpState,
    layer2: Decision,
    /// The layer 2 owners the last pass decided with.
    sticky: BTreeMap<ServiceKey, String>,
    /// Something besides the Services changed (configuration, live
    /// speakers): the next pass decides every Service again.
    rebuild: bool,
}

impl Speaker {
    /// speaker.md §1.1 steps 3–5 and §1.2: the verdict goes to the metrics
    /// and to `ConfigurationState/speaker-<node>`.
    fn reload_config(&mut self, caches: &Caches) {
        self.metrics.k8s.updates.inc();
        match caches.config.build(self.mode, &self.namespace, self.secret_passthrough) {
            Ok(config) => {
                let stranded = config_load::stranded(&config, self.addresses.keys().chain(self.bgp.advertised_ips()));
                if !stranded.is_empty() {
                    self.config_refusals = self.config_refusals.saturating_add(1);
                    let delay = backoff(CONFIG_RETRY_BASE, CONFIG_RETRY_MAX, self.config_refusals);
                    tracing::error!(?stranded, retry_in = ?delay, "new configuration refused for now: addresses this node announces belong to no pool of it (kept on the old configuration until the controller moves them)");
                    self.config_retry_at = Some(Instant::now() + delay);
                    self.metrics.k8s.stale();
                    self.metrics.k8s.update_errors.inc();
                    self.config_state.set(Verdict::Invalid(SYNC_STATE_ERROR.to_string()));
                    return;
                }
                self.config_retry_at = None;
                self.config_refusals = 0;
                if self.config.as_ref() != Some(&config) {
                    tracing::info!(pools = config.pools.len(), "configuration loaded");
                }
                self.config = Some(config);
                self.metrics.k8s.applied();
                match caches.bgp_extras() {
                    // MetalLB's FRR mode appends it to frr.conf. There is no
                    // FRR here to read it: say so, and apply everything else.
                    Some(text) => {
                        let message = format!(
                            "ConfigMap {}/{BGP_EXTRAS} holds raw FRR configuration ({} bytes), which ferrolb cannot honour: it speaks BGP in-process, without FRR; the rest of the configuration is applied",
                            self.namespace,
                            text.len()
                        );
                        tracing::error!(configmap = BGP_EXTRAS, bytes = text.len(), "{message}");
                        self.config_state.set(Verdict::Invalid(message));
                    }
                    None => self.config_state.set(Verdict::Valid),
                }
            }
            Err(errors) => {
                // Not retried: only a change of the objects can fix it.
                self.config_retry_at = None;
                self.config_refusals = 0;
                let message = config_load::describe(&errors);
                tracing::error!(error = %message, "configuration invalid, keeping the previous one");
                self.metrics.k8s.stale();
                self.config_state.set(Verdict::Invalid(message));
            }
        }
    }

    /// The BGP sessions of the configuration, with no routes yet
    /// ([`BgpSessions::start_sessions`]).
    fn start_sessions(&mut self, caches: &Caches, ifaces: &[InterfaceInfo]) {
        let Some(config) = &self.config else { return };
        let decision = decide_bgp(&BgpInput {
            node: &self.node,
            mode: self.mode,
            config,
            services: &[],
            nodes: &caches.nodes(),
            ignore_exclude_lb: self.ignore_exclude_lb,
        });
        let secrets = caches.config.secrets.read(|m| bgp_sessions::referenced_secrets(config, m.values()));
        self.bgp.start_sessions(&decision, config, ifaces, &secrets);
    }

    /// The first half of a pass: brings the kept Services up to date,
    /// decides again what changed (everything when [`Self::rebuild`] is set
    /// or a watch relisted) and hands the BGP engine its route changes. The
    /// caller yields before [`Self::reconcile_rest`]: the engine's session
    /// tasks were woken from this task, and tokio runs a task woken that way
    /// only when this one yields (the worker's LIFO slot, which no other
    /// worker may steal), so without the yield the UPDATEs would wait for
    /// the layer 2 and status work. The route is what makes a new Service
    /// reachable.
    fn reconcile_routes(&mut self, caches: &Caches, ifaces: &[InterfaceInfo]) -> Option<RoutesApplied> {
        let config = self.config.as_ref()?;
        let refreshed = self.inputs.refresh(&caches.services, &caches.slices);
        let nodes = caches.nodes();
        if nodes != self.nodes {
            self.nodes = nodes;
            self.rebuild = true;
        }
        let changed = match refreshed {
            Refreshed::Keys(keys) if !self.rebuild => Some(keys),
            _ => None,
        };
        self.rebuild = false;
        // BGP needs no election: every eligible node advertises (ECMP).
        let ctx = BgpContext { node: &self.node, mode: self.mode, config, nodes: &self.nodes, ignore_exclude_lb: self.ignore_exclude_lb };
        let bgp_changes = match &changed {
            None => self.bgp_state.rebuild(&ctx, self.inputs.all()),
            Some(keys) => self.bgp_state.update(&ctx, keys.iter().map(|k| (k, self.inputs.get(k)))),
        };
        let secrets = caches.config.secrets.read(|m| bgp_sessions::referenced_secrets(config, m.values()));
        self.bgp.apply(self.bgp_state.decision(), &bgp_changes, config, ifaces, &secrets);
        Some(RoutesApplied { changed, bgp_changes })
    }

    /// The second half of a pass: the ServiceBGPStatus plan, then layer 2
    /// (decide, announce, status).
    fn reconcile_rest(
        &mut self,
        routes: RoutesApplied,
        caches: &Caches,
        live: Option<&BTreeMap<String, MemberNetworks>>,
        ifaces: &[InterfaceInfo],
    ) {
        let Some(config) = &self.config else { return };
        let RoutesApplied { changed, bgp_changes } = routes;
        let bgp = self.bgp_state.decision();
        if bgp_changes.all {
            let peers = bgp.status_peers().map(|(k, peers)| (k.clone(), peers.clone())).collect();
            self.bgp_status.plan(peers, &caches.bgp_statuses);
        } else {
            let changed = bgp_changes.services.iter().map(|k| (k.clone(), bgp.status_peers_of(k).cloned()));
            self.bgp_status.plan_changed(changed, &caches.bgp_statuses);
        }

        let now = std::time::Instant::now();
        let unseen = &mut self.l2_status.unseen;
        let sticky = caches.l2_statuses.read(|m| {
            unseen.settle(m.values(), now);
            inputs::sticky(unseen.effective(m.values()), live)
        });
        let input = DecideInput { node: &self.node, config, services: &[], nodes: &self.nodes, live, sticky: &sticky, ignore_exclude_lb: self.ignore_exclude_lb };
        match changed {
            None => self.layer2 = decide::decide_each(&input, self.inputs.all()),
            Some(mut keys) => {
                // A Service whose current owner changed is decided again too.
                keys.extend(changed_keys(&self.sticky, &sticky));
                let fresh = decide::decide_each(&input, keys.iter().filter_map(|k| self.inputs.get(k)));
                for key in &keys {
                    self.layer2.layer2.remove(key);
                }
                self.layer2.layer2.extend(fresh.layer2);
                self.layer2.withdrawn = fresh.withdrawn;
            }
        }
        self.sticky = sticky;
        let mut decision = std::mem::take(&mut self.layer2);
        self.apply_announcements(&decision, ifaces);
        self.plan_statuses(&decision, caches);
        // Reasons are read only by this pass's withdrawal log lines, and a
        // later pass decides again every Service it changes: not kept (in a
        // BGP-only cluster every Service has one, 1.5 MiB at 10,000).
        decision.withdrawn = BTreeMap::new();
        self.layer2 = decision;
    }

    fn apply_announcements(&mut self, decision: &Decision, ifaces: &[InterfaceInfo]) {
        let existing: BTreeSet<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
        let mut addresses: BTreeMap<IpAddr, ferrolb_l2::InterfaceScope> = BTreeMap::new();
        let mut ip_owners: BTreeMap<IpAddr, Vec<ServiceKey>> = BTreeMap::new();
        for (key, announce) in &decision.layer2 {
            for (ip, scope) in &announce.ips {
                let scope = match scope {
                    InterfaceScope::All => ferrolb_l2::InterfaceScope::All,
                    InterfaceScope::Only(names) => {
                        let present: BTreeSet<String> = names.iter().filter(|n| existing.contains(n.as_str())).cloned().collect();
                        if present.is_empty() {
                            // speaker.md §3.3: skipped with a warning; the
                            // Service still counts as announced.
                            if !self.announced.contains_key(key)
                                && let Some(svc) = self.inputs.get(key)
                            {
                                self.event(svc, EventType::Warning, "announceFailed", format!(
                                    "the interfaces specified by LB IP \"{ip}\" doesn't exist in assigned node \"{}\" with protocol \"layer2\"",
                                    self.node
                                ));
                            }
                            continue;
                        }
                        ferrolb_l2::InterfaceScope::Only(present)
                    }
                };
                ip_owners.entry(*ip).or_default().push(key.clone());
                let merged = match addresses.remove(ip) {
                    Some(ferrolb_l2::InterfaceScope::Only(mut a)) => match scope {
                        ferrolb_l2::InterfaceScope::Only(b) => {
                            a.extend(b);
                            ferrolb_l2::InterfaceScope::Only(a)
                        }
                        all => all,
                    },
                    Some(all) => all,
                    None => scope,
                };
                addresses.insert(*ip, merged);
            }
        }
        for (key, announce) in &decision.layer2 {
            let ips: Vec<IpAddr> = announce.ips.iter().map(|(ip, _)| *ip).collect();
            let previous = self.announced.get(key);
            if previous == Some(&ips) {
                continue;
            }
            if let Some(old) = previous {
                tracing::info!(service = %key, ips = ?old, reason = "loadBalancerIPChanged", event = "serviceWithdrawn", "withdrawing service announcement");
                self.forget_metrics(key, old);
            }
            for ip in &ips {
                self.metrics.announced.get_or_create(&self.labels(key, ip)).set(1);
            }
            tracing::info!(service = %key, ips = ?ips, protocol = PROTOCOL_L2, event = "serviceAnnounced", "service has IP, announcing");
            if let Some(svc) = self.inputs.get(key) {
                self.event(svc, EventType::Normal, "nodeAssigned", format!("announcing from node \"{}\" with protocol \"layer2\"", self.node));
            }
            self.announced.insert(key.clone(), ips);
        }
        let gone: Vec<ServiceKey> = self.announced.keys().filter(|k| !decision.layer2.contains_key(*k)).cloned().collect();
        for key in gone {
            if let Some(ips) = self.announced.remove(&key) {
                let reason = decision.withdrawn.get(&key).map(|r| r.as_str()).unwrap_or("serviceDeleted");
                tracing::info!(service = %key, ips = ?ips, reason, event = "serviceWithdrawn", "withdrawing service announcement");
                self.forget_metrics(&key, &ips);
            }
        }
        if addresses != self.addresses {
            self.responder.set_announced(addresses.clone());
            self.addresses = addresses;
        }
        self.ip_owners = ip_owners;
    }

    /// Makes the ServiceL2Status objects agree with `decision`.
    fn plan_statuses(&mut self, decision: &Decision, caches: &Caches) {
        let wanted = decision
            .layer2
            .iter()
            .map(|(key, a)| {
                let names = match a.ips.first().map(|(_, s)| s) {
                    Some(InterfaceScope::Only(names)) => names.iter().map(|n| crate::intern::item(n)).collect(),
                    _ => Items::default(),
                };
                (key.clone(), names)
            })
            .collect();
        self.l2_status.plan(wanted, &caches.l2_statuses);
    }

    fn report(&mut self, report: L2Report) {
        match report {
            L2Report::Conflict { ip, interface, mac } => {
                let mac = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
                tracing::warn!(%ip, %interface, %mac, "another host answers for an address this node announces");
                let message = format!(
                    "another host ({mac}) also answers for {ip} on {interface} of node \"{}\": two nodes announce this address (check kube-proxy strictARP and other load balancers)",
                    self.node
                );
                for key in self.ip_owners.get(&ip).cloned().unwrap_or_default() {
                    let reference = service_reference(&key);
                    self.recorder.record(&reference, EventSpec { type_: EventType::Warning, reason: "duplicateAnswer".into(), message: message.as_str().into() });
                }
            }
        }
    }

    fn check_strict_arp(&mut self) {
        let problem = ferrolb_l2::strict_arp_problem();
        if problem == self.strict_arp {
            return;
        }
        if let Some(text) = &problem {
            tracing::warn!(problem = %text, "kube-proxy IPVS without strictARP: every node answers ARP for every Service address");
            let reference = ObjectReference { kind: Some("Node".into()), api_version: Some("v1".into()), name: Some(self.node.to_string()), ..ObjectReference::default() };
            self.recorder.record(&reference, EventSpec { type_: EventType::Warning, reason: "strictARPDisabled".into(), message: text.as_str().into() });
        }
        self.strict_arp = problem;
    }

    fn labels(&self, key: &ServiceKey, ip: &IpAddr) -> AnnouncedLabels {
        AnnouncedLabels { service: Shown(key.clone()), protocol: PROTOCOL_L2, node: self.node.clone(), ip: Shown(*ip) }
    }

    fn forget_metrics(&self, key: &ServiceKey, ips: &[IpAddr]) {
        for ip in ips {
            self.metrics.announced.remove(&self.labels(key, ip));
        }
    }

    fn event(&self, svc: &decide::ServiceState, type_: EventType, reason: &str, message: String) {
        self.recorder.record(&service_reference(&svc.key), EventSpec { type_, reason: reason.into(), message: message.into() });
    }
}

pub(crate) fn service_reference(key: &ServiceKey) -> ObjectReference {
    ObjectReference {
        kind: Some("Service".into()),
        api_version: Some("v1".into()),
        namespace: Some(key.namespace.to_string()),
        name: Some(key.name.to_string()),
        ..ObjectReference::default()
    }
}

/// Usable interfaces with their networks, as published to the other speakers.
fn usable_networks(ifaces: &[InterfaceInfo]) -> Vec<(String, Vec<ipnet::IpNet>)> {
    ifaces
        .iter()
        .filter(|i| i.up && i.carrier)
        .map(|i| {
            let nets = i.ipv4.iter().map(|n| ipnet::IpNet::V4(n.trunc())).chain(
                i.ipv6.iter().filter(|n| !is_link_local(&n.addr())).map(|n| ipnet::IpNet::V6(n.trunc())),
            );
            (i.name.clone(), nets.collect())
        })
        .collect()
}

fn is_link_local(ip: &std::net::Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

fn live_members(view: &View) -> BTreeMap<String, MemberNetworks> {
    view.members.iter().map(|(name, m)| (name.clone(), netmeta::decode(&m.meta))).collect()
}

/// Lists the speaker Pods every minute and hands their addresses to the
/// failure detector (speaker.md §3.8). API load grows with nodes only.
async fn discover_peers(client: Client, namespace: String, labels: String, port: u16, node: String, seeds: watch::Sender<Option<Vec<SocketAddr>>>) {
    let api = Api::<Pod>::namespaced(client, &namespace);
    let mut tick = tokio::time::interval(DISCOVERY_INTERVAL);
    loop {
        tick.tick().await;
        match api.list(&ListParams::default().labels(&labels)).await {
            Ok(list) => {
                let addrs: Vec<SocketAddr> = list
                    .items
                    .iter()
                    .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node.as_str()))
                    .filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect();
                tracing::debug!(peers = addrs.len(), "speaker Pods listed");
                seeds.send_if_modified(|current| {
                    let changed = current.as_ref() != Some(&addrs);
                    *current = Some(addrs);
                    changed
                });
            }
            Err(error) => tracing::warn!(%error, labels = %labels, "listing speaker Pods failed; retrying in a minute"),
        }
    }
}
