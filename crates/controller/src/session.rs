//! One leadership term: the reconcile loop that owns the allocator and is
//! the only place that writes. Dropping the session future aborts every
//! write it started, which is how a replica that loses the lease stops
//! writing at once.
//!
//! The loop is single-threaded over the allocator: it drains every change
//! notification available, acts on the batch (configuration, passes,
//! single Services), then hands writes to bounded-concurrency writers and
//! waits for the next notification or write completion.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ferrolb_allocator::{
    Allocator, ConvergeOptions, Convergence, EventType as AllocEventType, PoolDef, ServiceKey, SyncResult,
    converge, deprecated_annotation_events,
};
use ferrolb_api::annotations::IP_ALLOCATED_FROM_POOL;
use ferrolb_api::v1beta1::{ConfigurationState, IPAddressPool};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use ferrolb_runtime::config_state::{ConfigStateWriter, Identity, Verdict};
use ferrolb_runtime::events::{self, EventSpec, EventType, Recorder, RecorderConfig};
use ferrolb_runtime::retry::{RetryQueue, backoff, sleep_until};

use crate::metrics::Metrics;
use crate::order::{self, PassEntry};
use crate::overlay::{Overlay, WriteState, cache_caught_up};
use crate::pool_status::{self, PoolStatusWriter};
use crate::service_status::{self, Current, Desired};
use crate::watch::{CONFIG_STATE_NAME, Caches, Change, ChangeRouter, ServiceId, id_of};

/// `source.component` of the controller's Events, as MetalLB's.
pub const EVENT_COMPONENT: &str = "metallb-controller";

/// What a session needs from the process.
#[derive(Clone)]
pub struct SessionContext {
    pub client: Client,
    pub namespace: String,
    pub lb_class: Option<String>,
    pub pod_name: Option<String>,
    pub instance: String,
    pub write_concurrency: usize,
    pub event_interval: Duration,
    pub caches: Caches,
    pub router: ChangeRouter,
    pub metrics: Metrics,
    pub progress: Progress,
    /// True once every cache has completed its first list. One task waits
    /// on the caches and publishes here: a reflector store wakes only the
    /// last of several concurrent waiters.
    pub synced: tokio::sync::watch::Receiver<bool>,
}

/// The loop's liveness signal, read by `/healthz`: how many Services wait
/// for a status write, and when a write last completed. Only completed
/// writes count as progress: a loop that spins on failing writes (API
/// server unreachable, permission refused) is as stuck as one that hangs.
#[derive(Clone)]
pub struct Progress(Arc<ProgressInner>);

struct ProgressInner {
    origin: std::time::Instant,
    pending: AtomicUsize,
    /// Milliseconds from `origin` to the last progress.
    last: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress(Arc::new(ProgressInner {
            origin: std::time::Instant::now(),
            pending: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        }))
    }
}

impl Progress {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A write completed.
    fn advanced(&self) {
        self.0.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Services waiting for a write; the stall clock starts when work appears.
    pub(crate) fn set_pending(&self, n: usize) {
        if self.0.pending.swap(n, Ordering::Relaxed) == 0 && n > 0 {
            self.advanced();
        }
    }

    /// Services waiting for a write.
    pub fn pending(&self) -> usize {
        self.0.pending.load(Ordering::Relaxed)
    }

    /// Work is pending and nothing completed for longer than `bound`.
    pub fn stalled(&self, bound: Duration) -> bool {
        let idle = self.now_ms().saturating_sub(self.0.last.load(Ordering::Relaxed));
        self.pending() > 0 && Duration::from_millis(idle) > bound
    }
}

/// Work gathered from one batch of notifications.
#[derive(Default)]
struct Pending {
    config: bool,
    full_pass: bool,
    /// Retry the Services waiting for addresses (something was freed).
    pending_pass: bool,
    relisted: bool,
    services: HashSet<ServiceId>,
    pools: HashSet<String>,
    config_state: bool,
}

impl Pending {
    fn add(&mut self, change: Change) {
        match change {
            Change::Service(id) => {
                self.services.insert(id);
            }
            Change::ServicesRelisted => self.relisted = true,
            Change::Config => self.config = true,
            Change::Pool(name) => {
                self.pools.insert(name);
            }
            Change::ConfigState => self.config_state = true,
        }
    }
}

pub struct Session {
    ctx: SessionContext,
    opts: ConvergeOptions,
    alloc: Allocator,
    applied: Option<Vec<PoolDef>>,
    /// Services holding an allocation (to release those that vanished
    /// while the watch was down).
    allocated: HashSet<ServiceId>,
    /// Services without the addresses they need: retried when addresses are freed.
    waiting: HashSet<ServiceId>,
    overlay: HashMap<ServiceId, Overlay>,
    /// Services to process again once their in-flight write completes.
    rewrite_after: HashSet<ServiceId>,
    writer: service_status::Writer,
    retries: RetryQueue<ServiceId>,
    /// Services whose last write failed and waits for its retry.
    failed_writes: HashSet<ServiceId>,
    pass_attempts: u32,
    pass_retry_at: Option<Instant>,
    pools: PoolStatusWriter,
    config_state: ConfigStateWriter,
    recorder: Recorder,
    backlog: events::Backlog,
    pending: Pending,
}

/// Runs one leadership term until `cancel`.
pub async fn run(ctx: SessionContext, cancel: CancellationToken) {
    let mut changes = ctx.router.subscribe();
    let mut synced = ctx.synced.clone();
    tokio::select! {
        _ = cancel.cancelled() => return,
        // An error means the process is shutting down.
        r = synced.wait_for(|s| *s) => if r.is_err() { return },
    }
    let owner = tokio::select! {
        _ = cancel.cancelled() => return,
        o = ferrolb_runtime::owner::pod_owner(&ctx.client, &ctx.namespace, ctx.pod_name.as_deref()) => o,
    };
    let mut background = JoinSet::new();
    let backlog = events::Backlog::default();
    let (recorder, recorder_task) = events::recorder(
        ctx.client.clone(),
        RecorderConfig {
            component: EVENT_COMPONENT.to_string(),
            instance: ctx.instance.clone(),
            flush_interval: ctx.event_interval,
        },
        ctx.metrics.event_counters(),
        backlog.clone(),
    );
    background.spawn(recorder_task.run(cancel.child_token()));
    let mut s = Session::new(ctx, owner, recorder, backlog);
    tracing::info!(namespace = %s.ctx.namespace, "controller session started");
    s.pending.config = true;
    s.pending.full_pass = true;
    s.pending.config_state = true;
    s.act();
    s.run_loop(&mut changes, &cancel).await;
    s.ctx.router.unsubscribe();
    tracing::info!("controller session ended");
}

impl Session {
    fn new(
        ctx: SessionContext,
        owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
        recorder: Recorder,
        backlog: events::Backlog,
    ) -> Self {
        let pool_api: Api<IPAddressPool> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        let cs_api: Api<ConfigurationState> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        Session {
            opts: ConvergeOptions { lb_class: ctx.lb_class.clone() },
            alloc: Allocator::new(),
            applied: None,
            allocated: HashSet::new(),
            waiting: HashSet::new(),
            overlay: HashMap::new(),
            rewrite_after: HashSet::new(),
            writer: service_status::writer(ctx.client.clone(), ctx.write_concurrency),
            retries: RetryQueue::new(Duration::from_millis(200), Duration::from_secs(60)),
            failed_writes: HashSet::new(),
            pass_attempts: 0,
            pass_retry_at: None,
            pools: PoolStatusWriter::new(pool_api, &ctx.namespace),
            config_state: ConfigStateWriter::new(cs_api, Identity::controller(), owner),
            recorder,
            backlog,
            pending: Pending::default(),
            ctx,
        }
    }

    async fn run_loop(&mut self, changes: &mut mpsc::UnboundedReceiver<Change>, cancel: &CancellationToken) {
        loop {
            let wake = [self.retries.next_deadline(), self.pass_retry_at].into_iter().flatten().min();
            tokio::select! {
                _ = cancel.cancelled() => return,
                change = changes.recv() => match change {
                    Some(c) => self.pending.add(c),
                    None => return,
                },
                (id, result) = self.writer.next() => self.service_written(id, result),
                (name, result) = self.pools.next() => self.pools.finished(name, result, Instant::now()),
                result = self.config_state.next() => self.config_state.finished(result, Instant::now()),
                _ = sleep_until(wake) => {}
            }
            // Take everything else that is already there, so a burst of
            // notifications is handled as one batch.
            while let Ok(c) = changes.try_recv() {
                self.pending.add(c);
            }
            self.act();
        }
    }

    /// Handles the gathered batch, then starts writes.
    fn act(&mut self) {
        let now = Instant::now();
        for id in self.retries.pop_due(now) {
            self.pending.services.insert(id);
        }
        if self.pass_retry_at.is_some_and(|t| t <= now) {
            self.pass_retry_at = None;
            self.pending.pending_pass = true;
        }
        let mut p = std::mem::take(&mut self.pending);
        if p.config {
            self.ctx.metrics.k8s.updates.inc();
            if self.reload_config() {
                p.full_pass = true;
            }
        }
        if p.relisted {
            self.release_vanished();
            p.full_pass = true;
        }
        // Deletions first: a full pass only sees the Services that exist.
        let services = std::mem::take(&mut p.services);
        let (present, gone): (Vec<ServiceId>, Vec<ServiceId>) = services
            .into_iter()
            .partition(|id| self.ctx.caches.services.get(&obj_ref(id)).is_some());
        for id in &gone {
            self.deleted(id);
        }
        if self.alloc.is_loaded() {
            if p.full_pass {
                self.pass(None);
            } else {
                for id in present {
                    self.process_id(&id);
                }
                // Requests made while processing land in self.pending.
                if p.pending_pass || std::mem::take(&mut self.pending.pending_pass) {
                    let ids: Vec<ServiceId> = self.waiting.iter().cloned().collect();
                    self.pass(Some(ids));
                }
            }
        }
        self.backlog.set(self.writer.backlog());
        self.ctx.progress.set_pending(self.writer.backlog() + self.failed_writes.len());
        let dirty = self.alloc.take_dirty_pools();
        let dirty: HashSet<String> = dirty.into_iter().collect();
        pool_status::update_metrics(&self.ctx.metrics, &self.alloc, &dirty);
        for name in dirty.into_iter().chain(p.pools) {
            self.pools.mark(name);
        }
        self.pools.prune(&self.ctx.caches.pools);
        self.pools.flush(&self.alloc, &self.ctx.caches.pools);
        self.config_state.flush(self.stored_config_state().as_deref());
    }

    /// `ConfigurationState/controller` as the watch cache holds it.
    fn stored_config_state(&self) -> Option<Arc<ConfigurationState>> {
        self.ctx.caches.config_states.get(&ObjectRef::new(CONFIG_STATE_NAME).within(&self.ctx.namespace))
    }

    /// controller.md §2. Returns whether a new configuration was applied.
    fn reload_config(&mut self) -> bool {
        let caches = &self.ctx.caches;
        let pools: Vec<IPAddressPool> = caches.pools.state().iter().map(|p| (**p).clone()).collect();
        let communities: Vec<_> = caches.communities.state().iter().map(|c| (**c).clone()).collect();
        let namespaces: Vec<_> = caches.namespaces.state().iter().map(|n| (**n).clone()).collect();
        match ferrolb_config::build::build_pool_config(&pools, &communities, &namespaces) {
            Ok(defs) => {
                self.ctx.metrics.k8s.applied();
                self.config_state.set(Verdict::Valid);
                if self.applied.as_ref() == Some(&defs) {
                    return false;
                }
                tracing::info!(event = "configLoaded", pools = defs.len(), "pool configuration applied");
                self.alloc.set_pools(defs.clone());
                self.applied = Some(defs);
                true
            }
            Err(errors) => {
                let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                tracing::error!(event = "configStale", error = %message, "invalid pool configuration, keeping the last valid one");
                self.ctx.metrics.k8s.stale();
                self.config_state.set(Verdict::Invalid(message.clone()));
                if let Some(cs) = self.stored_config_state() {
                    self.recorder.record(
                        &cs.object_ref(&()),
                        EventSpec { type_: EventType::Warning, reason: "ConfigurationError".into(), message },
                    );
                }
                false
            }
        }
    }

    /// After a relist, Services deleted while the watch was down are released.
    fn release_vanished(&mut self) {
        let gone: Vec<ServiceId> = self
            .allocated
            .iter()
            .filter(|id| self.ctx.caches.services.get(&obj_ref(id)).is_none())
            .cloned()
            .collect();
        for id in gone {
            self.deleted(&id);
        }
    }

    /// A reprocess pass (controller.md §4) over every Service, or over `only`.
    fn pass(&mut self, only: Option<Vec<ServiceId>>) {
        let services: Vec<Arc<Service>> = match only {
            None => self.ctx.caches.services.state(),
            Some(ids) => ids.iter().filter_map(|id| self.ctx.caches.services.get(&obj_ref(id))).collect(),
        };
        if services.is_empty() {
            return;
        }
        let mut entries: Vec<PassEntry<Arc<Service>>> = services
            .into_iter()
            .map(|svc| {
                let (namespace, name) = id_of(&svc);
                let ingress_count = self.believed_ips(&(namespace.clone(), name.clone()), &svc).len();
                let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string());
                PassEntry { key: svc, namespace, name, ingress_count, created }
            })
            .collect();
        order::sort(&mut entries);
        let mut again = false;
        for e in entries {
            if self.process(&e.key) == Some(SyncResult::ReprocessAll) {
                again = true;
            }
        }
        // Individual results asked for a pass; this one covers them.
        self.pending.pending_pass = false;
        if again {
            self.pass_attempts = self.pass_attempts.saturating_add(1);
            // The first repeats run at once (a sharing change settles in one
            // more pass); a pass that keeps asking is spaced out.
            let delay = match self.pass_attempts {
                0..=2 => Duration::ZERO,
                n => backoff(Duration::from_millis(10), Duration::from_secs(10), n - 2),
            };
            self.pass_retry_at = Some(Instant::now() + delay);
        } else {
            self.pass_attempts = 0;
        }
    }

    fn process_id(&mut self, id: &ServiceId) -> Option<SyncResult> {
        match self.ctx.caches.services.get(&obj_ref(id)) {
            Some(svc) => self.process(&svc),
            None => {
                self.deleted(id);
                None
            }
        }
    }

    /// controller.md §3.2.
    fn deleted(&mut self, id: &ServiceId) {
        self.overlay.remove(id);
        self.rewrite_after.remove(id);
        self.waiting.remove(id);
        self.allocated.remove(id);
        self.failed_writes.remove(id);
        if self.alloc.release(&ServiceKey::new(id.0.clone(), id.1.clone())) {
            tracing::info!(event = "serviceDeleted", service = %fmt_id(id), "service deleted");
            self.pending.pending_pass = true;
        }
    }

    /// controller.md §3.3–3.4 for one Service; queues its write.
    fn process(&mut self, svc: &Service) -> Option<SyncResult> {
        let id = id_of(svc);
        self.ctx.metrics.k8s.updates.inc();
        let mut view = crate::view::service_view(svc);
        let (believed, base) = self.believed(&id, svc);
        view.ingress_ips = believed.ips();
        match &believed.pool {
            Some(p) => view.annotations.insert(IP_ALLOCATED_FROM_POOL.to_string(), p.clone()),
            None => view.annotations.remove(IP_ALLOCATED_FROM_POOL),
        };
        let conv = converge(&mut self.alloc, &view, &self.opts);
        if !conv.managed {
            return None;
        }
        let reference = svc.object_ref(&());
        self.track(&id, &conv);
        let desired = Desired {
            ips: conv.ingress.clone(),
            pool: conv.pool.clone(),
            condition: crate::condition::for_convergence(&view, &conv),
        };
        let write = base.differs_from(&desired);
        for ev in &conv.events {
            self.event(&reference, &id, ev);
        }
        if write && !conv.changed {
            // Condition-only write: converge emitted no deprecation warnings.
            for ev in deprecated_annotation_events(&view) {
                self.event(&reference, &id, &ev);
            }
        }
        if conv.result == SyncResult::ErrorNoRetry {
            self.ctx.metrics.k8s.update_errors.inc();
        }
        if conv.result == SyncResult::ReprocessAll {
            self.pending.pending_pass = true;
        }
        if write {
            self.queue_write(svc, &id, &base, desired);
        }
        Some(conv.result)
    }

    fn track(&mut self, id: &ServiceId, conv: &Convergence) {
        if conv.ingress.is_empty() {
            self.allocated.remove(id);
        } else {
            self.allocated.insert(id.clone());
        }
        let lacking = conv.failure.is_some()
            || (conv.ignored.is_none() && conv.ingress.is_empty())
            || conv.events.iter().any(|e| e.reason == "AdditionalAssignFailed");
        if lacking {
            self.waiting.insert(id.clone());
        } else {
            self.waiting.remove(id);
        }
    }

    fn event(&self, reference: &ObjectReference, id: &ServiceId, ev: &ferrolb_allocator::Event) {
        let type_ = match ev.type_ {
            AllocEventType::Normal => EventType::Normal,
            AllocEventType::Warning => EventType::Warning,
        };
        match type_ {
            EventType::Normal => tracing::info!(service = %fmt_id(id), reason = %ev.reason, "{}", ev.message),
            EventType::Warning => tracing::warn!(service = %fmt_id(id), reason = %ev.reason, "{}", ev.message),
        }
        self.recorder.record(
            reference,
            EventSpec { type_, reason: ev.reason.clone(), message: ev.message.clone() },
        );
    }

    fn queue_write(&mut self, svc: &Service, id: &ServiceId, believed: &Current, desired: Desired) {
        if self.writer.busy(id) {
            // One write per Service at a time; look again when it returns.
            self.rewrite_after.insert(id.clone());
            return;
        }
        let body = service_status::patch_body(svc.metadata.uid.as_deref(), believed, &desired, Timestamp::now());
        let mut after = believed.clone();
        after.ingress = desired.ips.iter().cloned().map(Some).collect();
        after.pool = desired.pool.clone();
        after.condition = serde_json::from_value(body["status"]["conditions"][0].clone()).ok();
        tracing::info!(event = "serviceUpdated", service = %fmt_id(id), ips = ?desired.ips, pool = ?desired.pool, "updating service status");
        let body = match serde_json::value::to_raw_value(&body) {
            Ok(raw) => raw,
            Err(err) => {
                // Not reachable for a JSON tree with string keys; never write
                // a half-built body.
                tracing::error!(service = %fmt_id(id), error = %err, "cannot serialise the status patch");
                return;
            }
        };
        self.overlay.insert(
            id.clone(),
            Overlay { uid: svc.metadata.uid.clone(), believed: after, state: WriteState::InFlight },
        );
        self.writer.submit(id.clone(), body);
    }

    fn service_written(&mut self, id: ServiceId, result: Result<Service, kube::Error>) {
        if !matches!(&result, Err(e) if !write_resolved(e)) {
            self.failed_writes.remove(&id);
            self.ctx.progress.advanced();
        }
        match result {
            Ok(svc) => {
                self.retries.reset(&id);
                let rv = svc.metadata.resource_version.clone().unwrap_or_default();
                self.overlay.insert(
                    id.clone(),
                    Overlay { uid: svc.metadata.uid.clone(), believed: Current::of(&svc), state: WriteState::Written(rv) },
                );
            }
            // The watch brings the new state and that triggers processing.
            Err(error) if write_resolved(&error) => {
                tracing::debug!(service = %fmt_id(&id), %error, "status write not applied: the Service is gone or was recreated");
                self.overlay.remove(&id);
            }
            Err(error) => {
                self.failed_writes.insert(id.clone());
                self.ctx.metrics.k8s.update_errors.inc();
                let delay = self.retries.schedule(id.clone(), Instant::now());
                tracing::warn!(service = %fmt_id(&id), %error, retry_in = ?delay, "writing service status failed");
                if let Some(o) = self.overlay.get_mut(&id) {
                    o.state = WriteState::Failed;
                }
            }
        }
        if self.rewrite_after.remove(&id) {
            self.pending.services.insert(id);
        }
    }

    /// The Service as the controller believes it is, its own writes included
    /// (what allocation reads), and what the API server is known to hold
    /// (what a write is compared with). They differ only after a failed write.
    fn believed(&mut self, id: &ServiceId, svc: &Service) -> (Current, Current) {
        let cached = Current::of(svc);
        let Some(o) = self.overlay.get(id) else { return (cached.clone(), cached) };
        if o.uid != svc.metadata.uid {
            self.overlay.remove(id);
            return (cached.clone(), cached);
        }
        match &o.state {
            WriteState::InFlight => (o.believed.clone(), o.believed.clone()),
            WriteState::Failed => {
                let meant = Current { ingress: o.believed.ingress.clone(), pool: o.believed.pool.clone(), ..cached.clone() };
                (meant, cached)
            }
            WriteState::Written(rv) => {
                if cache_caught_up(svc.metadata.resource_version.as_deref(), rv) {
                    self.overlay.remove(id);
                    (cached.clone(), cached)
                } else {
                    let written = Current { generation: cached.generation, ..o.believed.clone() };
                    (written.clone(), written)
                }
            }
        }
    }

    fn believed_ips(&mut self, id: &ServiceId, svc: &Service) -> Vec<String> {
        self.believed(id, svc).0.ips()
    }
}

/// A refused write that needs no retry: the Service was deleted, or deleted
/// and recreated (stale uid, 422); the watch brings the new state.
fn write_resolved(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 404 || (s.code == 422 && s.message.contains("metadata.uid")))
}

fn obj_ref(id: &ServiceId) -> ObjectRef<Service> {
    ObjectRef::new(&id.1).within(&id.0)
}

fn fmt_id(id: &ServiceId) -> String {
    format!("{}/{}", id.0, id.1)
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn stalled_only_with_work_pending_and_no_completion_within_the_bound() {
        let p = Progress::default();
        let bound = Duration::from_millis(30);
        std::thread::sleep(bound * 2);
        assert!(!p.stalled(bound), "idle is not stalled, however long");
        p.set_pending(3);
        assert!(!p.stalled(bound), "the clock starts when work appears");
        std::thread::sleep(bound * 2);
        assert!(p.stalled(bound));
        p.advanced();
        assert!(!p.stalled(bound), "a completed write is progress");
        std::thread::sleep(bound * 2);
        p.set_pending(2);
        assert!(p.stalled(bound), "fewer pending without a completion is no progress");
        p.set_pending(0);
        assert!(!p.stalled(bound));
    }
}
