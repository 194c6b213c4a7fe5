//! One leadership term: the reconcile loop that owns the allocator and is
//! the only place that writes. Dropping the session future aborts every
//! write it started, which is how a replica that loses the lease stops
//! writing at once.
//!
//! The loop is single-threaded over the allocator: it drains every change
//! notification available, acts on the batch (configuration, passes,
//! single Services), then hands writes to bounded-concurrency writers and
//! waits for the next notification or write completion.
//!
//! Writes are fenced (docs/fencing.md): each status patch carries the
//! resourceVersion it was computed from, and requests are sent only while
//! the leadership [`Fence`] holds. A 409 means the object changed since:
//! the Service is not written again until the watch cache shows a newer
//! version than the refused one, then it is processed afresh.
//!
//! Memory stays bounded under bursts: Events wait in an outbox of at most
//! [`OUTBOX_LIMIT`] (plus one batch) for room in the recorder's bounded
//! channel, and while the outbox is over that bound the loop takes no new
//! notifications, which backs up the bounded change channel and pauses the
//! reflectors. Everything kept per Service is dropped when it is deleted.

use std::collections::{HashMap, HashSet, VecDeque};
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
use ferrolb_runtime::leader::Fence;
use ferrolb_runtime::retry::{RetryQueue, backoff, sleep_until};

use crate::metrics::Metrics;
use crate::order::{self, PassEntry};
use crate::overlay::{Overlay, WriteState, cache_caught_up};
use crate::pool_status::{self, PoolStatusWriter};
use crate::service_status::{self, Current, Desired, WriteError, is_conflict};
use crate::watch::{CONFIG_STATE_NAME, Caches, Change, ChangeRouter, ServiceId, id_of};

/// `source.component` of the controller's Events, as MetalLB's.
pub const EVENT_COMPONENT: &str = "metallb-controller";

/// Events the session keeps waiting for the recorder before it stops taking
/// notifications.
pub const OUTBOX_LIMIT: usize = 1024;

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
    /// Holds while this replica may write as leader.
    pub fence: Fence,
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
    /// Services whose last write was refused (409) and the resourceVersion
    /// it was conditioned on: not written again while that is the newest
    /// version the controller knows.
    conflicts: HashMap<ServiceId, String>,
    /// Events waiting for room in the recorder's channel.
    outbox: VecDeque<(ObjectReference, EventSpec)>,
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
            writer: service_status::writer(ctx.client.clone(), ctx.write_concurrency, ctx.fence.clone()),
            retries: RetryQueue::new(Duration::from_millis(200), Duration::from_secs(60)),
            failed_writes: HashSet::new(),
            conflicts: HashMap::new(),
            outbox: VecDeque::new(),
            pass_attempts: 0,
            pass_retry_at: None,
            pools: PoolStatusWriter::new(pool_api, &ctx.namespace, ctx.fence.clone()),
            config_state: ConfigStateWriter::new(cs_api, Identity::controller(), owner),
            recorder,
            backlog,
            pending: Pending::default(),
            ctx,
        }
    }

    async fn run_loop(&mut self, changes: &mut mpsc::Receiver<Change>, cancel: &CancellationToken) {
        loop {
            let wake = [self.retries.next_deadline(), self.pass_retry_at].into_iter().flatten().min();
            let intake = self.outbox.len() < OUTBOX_LIMIT;
            let recorder = self.recorder.clone();
            tokio::select! {
                _ = cancel.cancelled() => return,
                change = changes.recv(), if intake => match change {
                    Some(c) => self.pending.add(c),
                    None => return,
                },
                slot = recorder.reserve(), if !self.outbox.is_empty() => {
                    if let Some((object, spec)) = self.outbox.pop_front() {
                        slot.record(object, spec);
                    }
                }
                (id, result) = self.writer.next() => self.service_written(id, result),
                (name, result) = self.pools.next() => self.pools.finished(name, result, Instant::now()),
                result = self.config_state.next() => self.config_state.finished(result, Instant::now()),
                _ = sleep_until(wake) => {}
            }
            // Take everything else that is already there, so a burst of
            // notifications is handled as one batch.
            while self.outbox.len() < OUTBOX_LIMIT
                && let Ok(c) = changes.try_recv()
            {
                self.pending.add(c);
            }
            self.act();
            self.flush_events();
        }
    }

    /// Moves waiting Events into the recorder's channel while it has room.
    fn flush_events(&mut self) {
        while let Some((object, spec)) = self.outbox.pop_front() {
            if let Err(back) = self.recorder.try_record(object, spec) {
                self.outbox.push_front(back);
                break;
            }
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
        self.ctx.progress.set_pending(self.writer.backlog() + self.failed_writes.len() + self.conflicts.len());
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
        match ferrolb_config::assemble::build_pool_config(&pools, &communities, &namespaces) {
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
                    let spec = EventSpec { type_: EventType::Warning, reason: "ConfigurationError".into(), message };
                    self.outbox.push_back((cs.object_ref(&()), spec));
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
        self.forget(id);
        self.waiting.remove(id);
        self.allocated.remove(id);
        if self.alloc.release(&ServiceKey::new(id.0.clone(), id.1.clone())) {
            tracing::info!(event = "serviceDeleted", service = %fmt_id(id), "service deleted");
            self.pending.pending_pass = true;
        }
    }

    /// Drops the write state kept for a Service that is gone: its overlay,
    /// queued write, retry history and pending retry, conflict.
    fn forget(&mut self, id: &ServiceId) {
        self.overlay.remove(id);
        self.rewrite_after.remove(id);
        self.failed_writes.remove(id);
        self.retries.forget(id);
        self.writer.cancel(id);
        self.conflicts.remove(id);
    }

    /// Entries kept per Service (write state, retries), for tests.
    #[cfg(test)]
    fn per_service_state(&self) -> usize {
        self.overlay.len()
            + self.rewrite_after.len()
            + self.failed_writes.len()
            + self.retries.len()
            + self.conflicts.len()
            + self.waiting.len()
            + self.allocated.len()
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
        if self.conflicts.get(&id).is_some_and(|refused| newer_than(svc.metadata.resource_version.as_deref(), refused)) {
            // The cache shows a version newer than the one a write was refused on.
            self.conflicts.remove(&id);
        }
        if !write && self.overlay.get(&id).is_some_and(|o| o.state == WriteState::Failed) {
            // The API server already holds what is meant: nothing to retry.
            self.overlay.remove(&id);
        }
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

    fn event(&mut self, reference: &ObjectReference, id: &ServiceId, ev: &ferrolb_allocator::Event) {
        let type_ = match ev.type_ {
            AllocEventType::Normal => EventType::Normal,
            AllocEventType::Warning => EventType::Warning,
        };
        match type_ {
            EventType::Normal => tracing::info!(service = %fmt_id(id), reason = %ev.reason, "{}", ev.message),
            EventType::Warning => tracing::warn!(service = %fmt_id(id), reason = %ev.reason, "{}", ev.message),
        }
        let spec = EventSpec { type_, reason: ev.reason.clone(), message: ev.message.clone() };
        self.outbox.push_back((reference.clone(), spec));
    }

    fn queue_write(&mut self, svc: &Service, id: &ServiceId, believed: &Current, desired: Desired) {
        if self.writer.busy(id) {
            // One write per Service at a time; look again when it returns.
            self.rewrite_after.insert(id.clone());
            return;
        }
        if self.conflicts.contains_key(id) {
            // Refused on the version still known as newest: the watch
            // brings the newer one and the Service is processed again then.
            tracing::debug!(service = %fmt_id(id), "status write waits for the newer version that refused the last one");
            return;
        }
        let mut body = service_status::patch_body(svc.metadata.uid.as_deref(), believed, &desired, Timestamp::now());
        if let Some(rv) = &believed.resource_version {
            service_status::precondition(&mut body, rv);
        }
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

    fn service_written(&mut self, id: ServiceId, result: Result<Service, WriteError>) {
        // A request the API server answered (even with a refusal that needs
        // no retry) is progress.
        let answered = match &result {
            Ok(_) => true,
            Err(WriteError::Api(e)) => write_resolved(e) || is_conflict(e),
            Err(WriteError::NotLeader(_)) => false,
        };
        if answered {
            self.failed_writes.remove(&id);
            self.ctx.progress.advanced();
        }
        if self.ctx.caches.services.get(&obj_ref(&id)).is_none() {
            // Deleted while the write was in flight: keep nothing for it.
            self.forget(&id);
            return;
        }
        match result {
            Ok(svc) => {
                self.retries.reset(&id);
                self.conflicts.remove(&id);
                let rv = svc.metadata.resource_version.clone().unwrap_or_default();
                self.overlay.insert(
                    id.clone(),
                    Overlay { uid: svc.metadata.uid.clone(), believed: Current::of(&svc), state: WriteState::Written(rv) },
                );
            }
            // The watch brings the new state and that triggers processing.
            Err(WriteError::Api(error)) if write_resolved(&error) => {
                tracing::debug!(service = %fmt_id(&id), %error, "status write not applied: the Service is gone or was recreated");
                self.overlay.remove(&id);
            }
            Err(WriteError::Api(error)) if is_conflict(&error) => self.write_conflict(&id, &error),
            Err(error) => {
                self.failed_writes.insert(id.clone());
                let delay = self.retries.schedule(id.clone(), Instant::now());
                match &error {
                    WriteError::NotLeader(_) => {
                        // The session ends with the leadership; this only
                        // matters if it does not.
                        tracing::debug!(service = %fmt_id(&id), %error, "service status write not sent or abandoned");
                    }
                    WriteError::Api(_) => {
                        self.ctx.metrics.k8s.update_errors.inc();
                        tracing::warn!(service = %fmt_id(&id), %error, retry_in = ?delay, "writing service status failed");
                    }
                }
                if let Some(o) = self.overlay.get_mut(&id) {
                    o.state = WriteState::Failed;
                }
            }
        }
        if self.rewrite_after.remove(&id) {
            self.pending.services.insert(id);
        }
    }

    /// A write refused with 409: the Service changed since the version the
    /// write was computed from (another writer, or a newer leader). The
    /// allocation keeps what was decided (overlay `Failed`); the Service is
    /// written again only after the cache shows a version newer than the
    /// refused one, processed afresh from it.
    fn write_conflict(&mut self, id: &ServiceId, error: &kube::Error) {
        let sent = self.overlay.get_mut(id).and_then(|o| {
            o.state = WriteState::Failed;
            o.believed.resource_version.clone()
        });
        let Some(sent) = sent else {
            // Not reachable: every session write carries a resourceVersion.
            self.failed_writes.insert(id.clone());
            self.retries.schedule(id.clone(), Instant::now());
            return;
        };
        tracing::info!(service = %fmt_id(id), resource_version = %sent, %error,
            "service changed since its status was computed (409); processing it again from the newer version");
        let cached = self.ctx.caches.services.get(&obj_ref(id)).and_then(|s| s.metadata.resource_version.clone());
        if newer_than(cached.as_deref(), &sent) {
            // The watch already delivered it: no further event will come.
            self.pending.services.insert(id.clone());
        }
        self.conflicts.insert(id.clone(), sent);
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

/// Whether the cache's version `cached` is newer than `refused`, the
/// precondition of a refused write. resourceVersions are increasing
/// integers with etcd3; when they do not parse, any other version counts as
/// newer (at worst one more write, refused again).
fn newer_than(cached: Option<&str>, refused: &str) -> bool {
    let Some(cached) = cached else { return false };
    match (cached.parse::<u64>(), refused.parse::<u64>()) {
        (Ok(c), Ok(r)) => c > r,
        _ => cached != refused,
    }
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

#[cfg(test)]
mod write_state_tests {
    use super::*;
    use kube::runtime::reflector::{self, store::Writer as StoreWriter};
    use kube::runtime::watcher::Event as WatchEvent;

    /// A session over empty caches whose fence never holds: nothing it
    /// queues reaches the network.
    fn session() -> (Session, StoreWriter<Service>) {
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().expect("url"))).expect("client");
        let (services, svc_writer) = reflector::store();
        let caches = Caches {
            services,
            namespaces: reflector::store().0,
            pools: reflector::store().0,
            communities: reflector::store().0,
            config_states: reflector::store().0,
        };
        let (_fence_tx, fence) = Fence::channel();
        let ctx = SessionContext {
            client: client.clone(),
            namespace: "metallb-system".into(),
            lb_class: None,
            pod_name: None,
            instance: "test".into(),
            write_concurrency: 4,
            event_interval: Duration::from_secs(1),
            caches,
            router: ChangeRouter::default(),
            metrics: Metrics::new(),
            progress: Progress::default(),
            fence,
            synced: tokio::sync::watch::channel(true).1,
        };
        let backlog = events::Backlog::default();
        let cfg = RecorderConfig { component: EVENT_COMPONENT.into(), instance: "test".into(), flush_interval: Duration::from_secs(1) };
        let (recorder, _task) = events::recorder(client, cfg, events::EventCounters::default(), backlog.clone());
        (Session::new(ctx, None, recorder, backlog), svc_writer)
    }

    fn service(rv: &str) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("a".into());
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some("u".into());
        s.metadata.resource_version = Some(rv.into());
        s
    }

    fn api_error(code: u16) -> WriteError {
        WriteError::Api(kube::Error::Api(kube::core::Status::failure("m", "r").with_code(code).boxed()))
    }

    fn desired() -> Desired {
        Desired { ips: vec!["192.0.2.1".into()], pool: Some("p".into()), condition: None }
    }

    /// Queues a write for `svc` and consumes the writer's own answer (the
    /// fence refuses it); returns the body's precondition.
    async fn queue(s: &mut Session, svc: &Service) {
        let id = id_of(svc);
        s.queue_write(svc, &id, &Current::of(svc), desired());
        assert!(s.writer.busy(&id), "queued");
        let (done, result) = s.writer.next().await;
        assert_eq!(done, id);
        assert!(matches!(result, Err(WriteError::NotLeader(_))), "no request without the lease");
    }

    #[tokio::test]
    async fn a_conflict_waits_for_a_newer_version_then_writes_again() {
        let (mut s, mut cache) = session();
        let id: ServiceId = ("ns".into(), "a".into());
        let v5 = service("5");
        cache.apply_watcher_event(&WatchEvent::Apply(v5.clone()));
        queue(&mut s, &v5).await;
        assert_eq!(s.overlay[&id].believed.resource_version.as_deref(), Some("5"), "the write is conditioned on v5");

        s.service_written(id.clone(), Err(api_error(409)));
        assert_eq!(s.conflicts.get(&id).map(String::as_str), Some("5"));
        assert_eq!(s.overlay[&id].state, WriteState::Failed, "allocation keeps its decision");
        assert!(!s.pending.services.contains(&id), "the cache has nothing newer yet: wait for the watch");
        assert!(s.retries.is_empty() && s.failed_writes.is_empty(), "a conflict is not retried blindly");

        // Processing again on the same version does not write (no 409 loop).
        s.queue_write(&v5, &id, &Current::of(&v5), desired());
        assert!(!s.writer.busy(&id), "no write on the refused version");

        // A version newer than the refused one arrives: written again from it.
        assert!(newer_than(Some("6"), "5") && !newer_than(Some("5"), "5") && !newer_than(Some("4"), "5"));
        assert!(newer_than(Some("x"), "y") && !newer_than(None, "5"));
        s.conflicts.remove(&id); // what process() does once the cache is newer
        let v6 = service("6");
        cache.apply_watcher_event(&WatchEvent::Apply(v6.clone()));
        queue(&mut s, &v6).await;
        assert_eq!(s.overlay[&id].believed.resource_version.as_deref(), Some("6"));

        // Refused again, but the cache already shows a newer version:
        // processed at once, since no further watch event will come.
        cache.apply_watcher_event(&WatchEvent::Apply(service("8")));
        s.service_written(id.clone(), Err(api_error(409)));
        assert!(s.pending.services.contains(&id));
    }

    #[tokio::test]
    async fn a_deleted_service_leaves_no_write_or_retry_state() {
        let (mut s, mut cache) = session();
        let id: ServiceId = ("ns".into(), "a".into());
        let svc = service("5");
        cache.apply_watcher_event(&WatchEvent::Apply(svc.clone()));
        for _ in 0..3 {
            queue(&mut s, &svc).await;
            s.service_written(id.clone(), Err(api_error(500)));
        }
        assert!(s.failed_writes.contains(&id) && s.retries.len() == 1 && s.retries.next_deadline().is_some());
        s.queue_write(&svc, &id, &Current::of(&svc), desired());
        s.waiting.insert(id.clone());
        s.allocated.insert(id.clone());
        s.conflicts.insert(id.clone(), "5".into());
        assert!(s.per_service_state() > 0);

        // A second write waits behind the one in flight.
        s.writer.submit(id.clone(), serde_json::value::to_raw_value(&serde_json::json!({})).expect("body"));
        cache.apply_watcher_event(&WatchEvent::Delete(svc.clone()));
        s.deleted(&id);
        assert_eq!(s.per_service_state(), 0, "everything kept for the Service is dropped");
        assert!(!s.overlay.contains_key(&id));
        assert!(s.writer.in_flight(&id) && s.writer.backlog() == 1, "the queued follow-up is cancelled");
        // The answer of the write that was in flight keeps nothing either.
        let (done, result) = s.writer.next().await;
        s.service_written(done, result);
        assert_eq!(s.per_service_state(), 0);
        assert!(!s.writer.busy(&id));
        assert!(s.retries.pop_due(Instant::now() + Duration::from_secs(120)).is_empty(), "no retry comes due");
    }
}
