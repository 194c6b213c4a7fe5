//! The session's decisions, as a pure state machine: inputs in, effects out.
//!
//! [`Step`] owns the allocator and everything the session remembers between
//! two turns (its own writes the cache does not show yet, retries,
//! conflicts, pending passes, pool status). It has no client, no task and
//! no timer: the clock is an argument ([`Clock`]), what the watch caches
//! hold is read through [`World`], and what must be done is returned as
//! [`Effect`]s for the executor (`session::exec`) to carry out. Its answers
//! come back as inputs. The same inputs over the same world give the same
//! effects, which is what the replay tests (tests/replay.rs) check.
//!
//! One call of [`Step::handle`] is one turn of the session loop: the inputs
//! gathered since the last turn (a batch of change notifications, a write's
//! answer), then the work they call for: configuration first, then either a
//! full pass or the individual Services, then pool status.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_allocator::{
    Allocator, ConvergeOptions, Convergence, EventType as AllocEventType, PoolDef, ServiceKey, SyncResult,
    converge, deprecated_annotation_events,
};
use ferrolb_api::annotations::IP_ALLOCATED_FROM_POOL;
use ferrolb_api::v1beta1::{Community, IPAddressPool};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use ferrolb_runtime::config_state::Verdict;
use ferrolb_runtime::events::{EventSpec, EventType};
use ferrolb_runtime::mem::shrink_sparse;
use ferrolb_runtime::retry::{RetryQueue, backoff};

use crate::metrics::Metrics;
use crate::order::{self, PassEntry};
use crate::overlay::{Overlay, WriteState, cache_caught_up};
use crate::pool_status::{self, PoolStatus, PoolWrite};
use crate::service_status::{self, Body, Current, Desired, WriteError, is_conflict};
use crate::service_record::ServiceRecord;
use crate::watch::{Change, ServiceId};

/// Failed Service writes are retried after 200 ms, doubling up to 60 s.
const WRITE_RETRY_BASE: Duration = Duration::from_millis(200);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(60);

/// What the watch caches hold, as the step reads it. The executor reads
/// the watch caches (Services as records); the replay tests a map.
pub trait World {
    fn service(&self, id: &ServiceId) -> Option<Arc<ServiceRecord>>;
    /// Every Service (any order: passes sort them).
    fn services(&self) -> Vec<Arc<ServiceRecord>>;
    /// An IPAddressPool of the MetalLB namespace.
    fn pool(&self, name: &str) -> Option<Arc<IPAddressPool>>;
    /// The objects the pool configuration is built from.
    fn configuration(&self) -> (Vec<IPAddressPool>, Vec<Community>, Vec<Namespace>);
    /// `ConfigurationState/controller`, if it exists (the object of
    /// configuration Events).
    fn config_state(&self) -> Option<ObjectReference>;
}

/// The time of a turn: the monotonic instant (retries, spacing, timers) and
/// the wall-clock time written into conditions.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub now: Instant,
    pub wall: Timestamp,
}

/// What the step is told.
#[derive(Debug)]
pub enum Input {
    /// The session began (this replica leads and the caches are synced):
    /// load the configuration and process every Service.
    Start,
    /// A watch notification.
    Change(Change),
    /// The answer to [`Effect::WriteService`] number `write`.
    ServiceWritten { id: ServiceId, write: u64, result: Result<Service, WriteError> },
    /// The answer to the [`Effect::WritePool`] of this pool.
    PoolWritten { name: String, result: Result<IPAddressPool, WriteError> },
}

/// What the executor must do, in this order.
#[derive(Debug)]
pub enum Effect {
    /// PATCH the Service's status with `body` (which carries its
    /// resourceVersion precondition). At most one per Service is
    /// outstanding; its answer comes back as [`Input::ServiceWritten`].
    WriteService { id: ServiceId, write: u64, body: Body },
    /// Drop the Service's write if it has not started (the Service is gone).
    /// A write already sent is answered as usual and its answer ignored.
    CancelServiceWrite { id: ServiceId },
    /// PATCH the pool's status; answered by [`Input::PoolWritten`].
    WritePool { name: String, write: u64, patch: PoolWrite },
    /// Record an Event.
    Event { object: ObjectReference, spec: EventSpec },
    /// `ConfigurationState/controller` must show this verdict.
    Verdict(Verdict),
    /// Run a turn (with no input) at this instant; `None`: no timer needed.
    /// Replaces the previous timer.
    Timer(Option<Instant>),
}

/// Work gathered from one batch of inputs.
#[derive(Default)]
struct Pending {
    config: bool,
    full_pass: bool,
    /// Retry the Services waiting for addresses (something was freed).
    pending_pass: bool,
    relisted: bool,
    services: HashSet<ServiceId>,
    pools: HashSet<String>,
}

/// The session's state; see the module documentation.
pub struct Step {
    opts: ConvergeOptions,
    metrics: Metrics,
    alloc: Allocator,
    applied: Option<Vec<PoolDef>>,
    /// Services holding an allocation (to release those that vanished
    /// while the watch was down).
    allocated: HashSet<ServiceId>,
    /// Services without the addresses they need: retried when addresses are freed.
    waiting: HashSet<ServiceId>,
    overlay: HashMap<ServiceId, Overlay>,
    /// Services to process again once their outstanding write is answered.
    rewrite_after: HashSet<ServiceId>,
    /// The number of each Service's outstanding write (queued or sent, not answered).
    writing: HashMap<ServiceId, u64>,
    retries: RetryQueue<ServiceId>,
    /// Services whose last write failed and waits for its retry.
    failed_writes: HashSet<ServiceId>,
    /// Services whose last write was refused (409) and the resourceVersion
    /// it was conditioned on: not written again while that is the newest
    /// version the controller knows.
    conflicts: HashMap<ServiceId, String>,
    pass_attempts: u32,
    pass_retry_at: Option<Instant>,
    pools: PoolStatus,
    pending: Pending,
    /// Number of the last write handed out.
    writes: u64,
    /// The timer last asked for.
    timer: Option<Instant>,
    effects: Vec<Effect>,
}

impl Step {
    /// A step for Services of `lb_class` (None: MetalLB's default class),
    /// counting into `metrics`.
    pub fn new(lb_class: Option<String>, metrics: Metrics) -> Self {
        Step {
            opts: ConvergeOptions { lb_class },
            metrics,
            alloc: Allocator::new(),
            applied: None,
            allocated: HashSet::new(),
            waiting: HashSet::new(),
            overlay: HashMap::new(),
            rewrite_after: HashSet::new(),
            writing: HashMap::new(),
            retries: RetryQueue::new(WRITE_RETRY_BASE, WRITE_RETRY_MAX),
            failed_writes: HashSet::new(),
            conflicts: HashMap::new(),
            pass_attempts: 0,
            pass_retry_at: None,
            pools: PoolStatus::default(),
            pending: Pending::default(),
            writes: 0,
            timer: None,
            effects: Vec::new(),
        }
    }

    /// One turn: takes `inputs` in order, then acts on what they call for
    /// (and on retries and passes that came due by `clock.now`).
    pub fn handle(&mut self, clock: Clock, inputs: impl IntoIterator<Item = Input>, world: &impl World) -> Vec<Effect> {
        for input in inputs {
            self.input(clock, input, world);
        }
        self.act(clock, world);
        self.shrink();
        let timer = [self.retries.next_deadline(), self.pass_retry_at, self.pools.deadline()].into_iter().flatten().min();
        if timer != self.timer {
            self.timer = timer;
            self.effects.push(Effect::Timer(timer));
        }
        std::mem::take(&mut self.effects)
    }

    /// Gives back the room a burst took in the per-Service tables once they
    /// have drained (they are sized for every Service while the first
    /// writes are outstanding, and would otherwise keep it).
    fn shrink(&mut self) {
        shrink_sparse(&mut self.overlay);
        shrink_sparse(&mut self.writing);
        shrink_sparse(&mut self.rewrite_after);
        shrink_sparse(&mut self.failed_writes);
        shrink_sparse(&mut self.conflicts);
        shrink_sparse(&mut self.waiting);
        shrink_sparse(&mut self.allocated);
    }

    /// Services whose write failed or was refused and is not resolved yet:
    /// work pending besides the writes outstanding (for `/healthz`).
    pub fn unresolved(&self) -> usize {
        self.failed_writes.len() + self.conflicts.len()
    }

    fn input(&mut self, clock: Clock, input: Input, world: &impl World) {
        match input {
            Input::Start => {
                self.pending.config = true;
                self.pending.full_pass = true;
            }
            Input::Change(change) => match change {
                Change::Service(id) => {
                    self.pending.services.insert(id);
                }
                Change::ServicesRelisted => self.pending.relisted = true,
                Change::Config => self.pending.config = true,
                Change::Pool(name) => {
                    self.pending.pools.insert(name);
                }
                // The executor compares the stored object on every turn.
                Change::ConfigState => {}
            },
            Input::ServiceWritten { id, write, result } => self.service_written(clock, id, write, result, world),
            Input::PoolWritten { name, result } => self.pools.finished(name, result, clock.now),
        }
    }

    /// Handles the gathered batch.
    fn act(&mut self, clock: Clock, world: &impl World) {
        let now = clock.now;
        for id in self.retries.pop_due(now) {
            self.pending.services.insert(id);
        }
        if self.pass_retry_at.is_some_and(|t| t <= now) {
            self.pass_retry_at = None;
            self.pending.pending_pass = true;
        }
        let mut p = std::mem::take(&mut self.pending);
        if p.config {
            self.metrics.k8s.updates.inc();
            if self.reload_config(world) {
                p.full_pass = true;
            }
        }
        if p.relisted {
            self.release_vanished(world);
            p.full_pass = true;
        }
        // Deletions first: a full pass only sees the Services that exist.
        let mut services: Vec<ServiceId> = p.services.drain().collect();
        services.sort();
        let (present, gone): (Vec<ServiceId>, Vec<ServiceId>) =
            services.into_iter().partition(|id| world.service(id).is_some());
        for id in &gone {
            self.deleted(id);
        }
        if self.alloc.is_loaded() {
            if p.full_pass {
                self.pass(clock, None, world);
            } else {
                for id in present {
                    if let Some(svc) = world.service(&id) {
                        self.process(clock, &svc);
                    }
                }
                // Requests made while processing land in self.pending.
                if p.pending_pass || std::mem::take(&mut self.pending.pending_pass) {
                    let mut ids: Vec<ServiceId> = self.waiting.iter().cloned().collect();
                    ids.sort();
                    self.pass(clock, Some(ids), world);
                }
            }
        }
        let dirty: HashSet<String> = self.alloc.take_dirty_pools().into_iter().collect();
        pool_status::update_metrics(&self.metrics, &self.alloc, &dirty);
        for name in dirty.into_iter().chain(p.pools) {
            self.pools.mark(name);
        }
        let pool = |name: &str| world.pool(name);
        self.pools.prune(&pool);
        for (name, patch) in self.pools.flush(now, &self.alloc, &pool) {
            self.writes += 1;
            self.effects.push(Effect::WritePool { name, write: self.writes, patch });
        }
    }

    /// controller.md §2. Returns whether a new configuration was applied.
    fn reload_config(&mut self, world: &impl World) -> bool {
        let (pools, communities, namespaces) = world.configuration();
        match ferrolb_config::assemble::build_pool_config(&pools, &communities, &namespaces) {
            Ok(defs) => {
                self.metrics.k8s.applied();
                self.effects.push(Effect::Verdict(Verdict::Valid));
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
                self.metrics.k8s.stale();
                self.effects.push(Effect::Verdict(Verdict::Invalid(message.clone())));
                if let Some(object) = world.config_state() {
                    let spec = EventSpec { type_: EventType::Warning, reason: "ConfigurationError".into(), message: message.into() };
                    self.effects.push(Effect::Event { object, spec });
                }
                false
            }
        }
    }

    /// After a relist, Services deleted while the watch was down are released.
    fn release_vanished(&mut self, world: &impl World) {
        let mut gone: Vec<ServiceId> = self.allocated.iter().filter(|id| world.service(id).is_none()).cloned().collect();
        gone.sort();
        for id in gone {
            self.deleted(&id);
        }
    }

    /// A reprocess pass (controller.md §4) over every Service, or over `only`.
    fn pass(&mut self, clock: Clock, only: Option<Vec<ServiceId>>, world: &impl World) {
        let services: Vec<Arc<ServiceRecord>> = match only {
            None => world.services(),
            Some(ids) => ids.iter().filter_map(|id| world.service(id)).collect(),
        };
        if services.is_empty() {
            return;
        }
        let mut entries: Vec<PassEntry<Arc<ServiceRecord>>> = services
            .into_iter()
            .map(|svc| {
                let (namespace, name) = (svc.id.0.to_string(), svc.id.1.to_string());
                let ingress_count = self.believed(&svc.id, &svc).0.ips().len();
                let created = svc.created.as_ref().map(|t| t.0.to_string());
                PassEntry { key: svc, namespace, name, ingress_count, created }
            })
            .collect();
        order::sort(&mut entries);
        let mut again = false;
        for e in entries {
            if self.process(clock, &e.key) == Some(SyncResult::ReprocessAll) {
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
            self.pass_retry_at = Some(clock.now + delay);
        } else {
            self.pass_attempts = 0;
        }
    }

    /// controller.md §3.2.
    fn deleted(&mut self, id: &ServiceId) {
        self.forget(id);
        self.waiting.remove(id);
        self.allocated.remove(id);
        if self.alloc.release(&ServiceKey::new(&*id.0, &*id.1)) {
            tracing::info!(event = "serviceDeleted", service = %fmt_id(id), "service deleted");
            self.pending.pending_pass = true;
        }
    }

    /// Drops the write state kept for a Service that is gone: its overlay,
    /// outstanding write, retry history and pending retry, conflict.
    fn forget(&mut self, id: &ServiceId) {
        self.overlay.remove(id);
        self.rewrite_after.remove(id);
        self.failed_writes.remove(id);
        self.retries.forget(id);
        self.conflicts.remove(id);
        if self.writing.remove(id).is_some() {
            self.effects.push(Effect::CancelServiceWrite { id: id.clone() });
        }
    }

    /// Entries kept per Service (write state, retries), for tests.
    #[cfg(test)]
    fn per_service_state(&self) -> usize {
        self.overlay.len()
            + self.rewrite_after.len()
            + self.writing.len()
            + self.failed_writes.len()
            + self.retries.len()
            + self.conflicts.len()
            + self.waiting.len()
            + self.allocated.len()
    }

    /// controller.md §3.3–3.4 for one Service; queues its write.
    fn process(&mut self, clock: Clock, svc: &ServiceRecord) -> Option<SyncResult> {
        let id = svc.id.clone();
        self.metrics.k8s.updates.inc();
        let mut view = svc.view();
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
        let reference = svc.object_ref();
        self.track(&id, &conv);
        let desired = Desired {
            ips: conv.ingress.clone(),
            pool: conv.pool.clone(),
            condition: crate::condition::for_convergence(&view, &conv),
        };
        let write = base.differs_from(&desired);
        if self.conflicts.get(&id).is_some_and(|refused| newer_than(svc.resource_version(), refused)) {
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
            self.metrics.k8s.update_errors.inc();
        }
        if conv.result == SyncResult::ReprocessAll {
            self.pending.pending_pass = true;
        }
        if write {
            self.queue_write(clock, svc, &id, &base, desired);
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
        let spec = EventSpec { type_, reason: ev.reason.as_str().into(), message: ev.message.as_str().into() };
        self.effects.push(Effect::Event { object: reference.clone(), spec });
    }

    fn queue_write(&mut self, clock: Clock, svc: &ServiceRecord, id: &ServiceId, believed: &Current, desired: Desired) {
        if self.writing.contains_key(id) {
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
        let mut body = service_status::patch_body(svc.uid.as_deref(), believed, &desired, clock.wall);
        if let Some(rv) = &believed.resource_version {
            service_status::precondition(&mut body, rv);
        }
        let mut after = believed.clone();
        after.ingress = desired.ips.iter().cloned().map(Some).collect();
        after.pool = desired.pool.clone();
        after.condition = serde_json::from_value(body["status"]["conditions"][0].clone()).ok().map(Box::new);
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
            Overlay { uid: svc.uid.clone(), believed: after, state: WriteState::InFlight },
        );
        self.writes += 1;
        self.writing.insert(id.clone(), self.writes);
        self.effects.push(Effect::WriteService { id: id.clone(), write: self.writes, body });
    }

    fn service_written(
        &mut self,
        clock: Clock,
        id: ServiceId,
        write: u64,
        result: Result<Service, WriteError>,
        world: &impl World,
    ) {
        if answered(&result) {
            self.failed_writes.remove(&id);
        }
        if self.writing.get(&id) != Some(&write) {
            // The answer to a write made before the Service was forgotten
            // (deleted while its write was in flight).
            tracing::debug!(service = %fmt_id(&id), write, "answer to a status write of a forgotten Service, ignored");
            return;
        }
        self.writing.remove(&id);
        if world.service(&id).is_none() {
            // Deleted while the write was in flight: keep nothing for it.
            self.forget(&id);
            return;
        }
        match result {
            Ok(svc) => {
                self.retries.reset(&id);
                self.conflicts.remove(&id);
                let written = ServiceRecord::from(svc);
                let rv = written.resource_version().unwrap_or_default().to_string();
                self.overlay.insert(
                    id.clone(),
                    Overlay { uid: written.uid, believed: written.status, state: WriteState::Written(rv) },
                );
            }
            // The watch brings the new state and that triggers processing.
            Err(WriteError::Api(error)) if write_resolved(&error) => {
                tracing::debug!(service = %fmt_id(&id), %error, "status write not applied: the Service is gone or was recreated");
                self.overlay.remove(&id);
            }
            Err(WriteError::Api(error)) if is_conflict(&error) => self.write_conflict(clock, &id, &error, world),
            Err(error) => {
                self.failed_writes.insert(id.clone());
                let delay = self.retries.schedule(id.clone(), clock.now);
                match &error {
                    WriteError::NotLeader(_) => {
                        // The session ends with the leadership; this only
                        // matters if it does not.
                        tracing::debug!(service = %fmt_id(&id), %error, "service status write not sent or abandoned");
                    }
                    WriteError::Api(_) => {
                        self.metrics.k8s.update_errors.inc();
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
    fn write_conflict(&mut self, clock: Clock, id: &ServiceId, error: &kube::Error, world: &impl World) {
        let sent = self.overlay.get_mut(id).and_then(|o| {
            o.state = WriteState::Failed;
            o.believed.resource_version.clone()
        });
        let Some(sent) = sent else {
            // Not reachable: every session write carries a resourceVersion.
            self.failed_writes.insert(id.clone());
            self.retries.schedule(id.clone(), clock.now);
            return;
        };
        tracing::info!(service = %fmt_id(id), resource_version = %sent, %error,
            "service changed since its status was computed (409); processing it again from the newer version");
        let cached = world.service(id).and_then(|s| s.resource_version().map(str::to_string));
        if newer_than(cached.as_deref(), &sent) {
            // The watch already delivered it: no further event will come.
            self.pending.services.insert(id.clone());
        }
        self.conflicts.insert(id.clone(), sent);
    }

    /// The Service as the controller believes it is, its own writes included
    /// (what allocation reads), and what the API server is known to hold
    /// (what a write is compared with). They differ only after a failed write.
    fn believed(&mut self, id: &ServiceId, svc: &ServiceRecord) -> (Current, Current) {
        let cached = svc.status.clone();
        let Some(o) = self.overlay.get(id) else { return (cached.clone(), cached) };
        if o.uid != svc.uid {
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
                if cache_caught_up(svc.resource_version(), rv) {
                    self.overlay.remove(id);
                    (cached.clone(), cached)
                } else {
                    let written = Current { generation: cached.generation, ..o.believed.clone() };
                    (written.clone(), written)
                }
            }
        }
    }
}

/// Whether the API server answered a write (even with a refusal that needs
/// no retry): that is progress for `/healthz`.
pub fn answered(result: &Result<Service, WriteError>) -> bool {
    match result {
        Ok(_) => true,
        Err(WriteError::Api(e)) => write_resolved(e) || is_conflict(e),
        Err(WriteError::NotLeader(_)) => false,
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

pub(crate) fn fmt_id(id: &ServiceId) -> String {
    format!("{}/{}", id.0, id.1)
}

/// A [`World`] over plain maps: what the caches would hold, for tests and
/// replays. Pools are those of the MetalLB namespace, keyed by name.
#[derive(Clone, Default)]
pub struct MapWorld {
    pub services: std::collections::BTreeMap<ServiceId, Arc<ServiceRecord>>,
    pub pools: std::collections::BTreeMap<String, Arc<IPAddressPool>>,
    pub communities: Vec<Community>,
    pub namespaces: Vec<Namespace>,
    pub config_state: Option<ObjectReference>,
}

impl World for MapWorld {
    fn service(&self, id: &ServiceId) -> Option<Arc<ServiceRecord>> {
        self.services.get(id).cloned()
    }

    fn services(&self) -> Vec<Arc<ServiceRecord>> {
        self.services.values().cloned().collect()
    }

    fn pool(&self, name: &str) -> Option<Arc<IPAddressPool>> {
        self.pools.get(name).cloned()
    }

    fn configuration(&self) -> (Vec<IPAddressPool>, Vec<Community>, Vec<Namespace>) {
        let pools = self.pools.values().map(|p| (**p).clone()).collect();
        (pools, self.communities.clone(), self.namespaces.clone())
    }

    fn config_state(&self) -> Option<ObjectReference> {
        self.config_state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> MapWorld {
        let pool: IPAddressPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": { "namespace": "metallb-system", "name": "p", "uid": "pool-uid", "resourceVersion": "1" },
            "spec": { "addresses": ["192.0.2.0/30"] }
        }))
        .expect("pool");
        let mut w = MapWorld::default();
        w.pools.insert("p".into(), Arc::new(pool));
        w
    }

    fn service(rv: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": { "namespace": "ns", "name": "a", "uid": "u", "resourceVersion": rv },
            "spec": { "type": "LoadBalancer", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                      "ipFamilies": ["IPv4"], "ports": [{ "port": 80 }] }
        }))
        .expect("service")
    }

    fn record(rv: &str) -> ServiceRecord {
        service(rv).into()
    }

    fn clock(ms: u64, base: Instant) -> Clock {
        Clock { now: base + Duration::from_millis(ms), wall: Timestamp::UNIX_EPOCH }
    }

    fn api_error(code: u16) -> WriteError {
        WriteError::Api(kube::Error::Api(kube::core::Status::failure("m", "r").with_code(code).boxed()))
    }

    /// The Service writes among `effects`: (number, precondition).
    fn writes(effects: &[Effect]) -> Vec<(u64, String)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::WriteService { write, body, .. } => {
                    let v: serde_json::Value = serde_json::from_str(body.get()).expect("json");
                    Some((*write, v["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string()))
                }
                _ => None,
            })
            .collect()
    }

    fn changed(id: &ServiceId) -> Vec<Input> {
        vec![Input::Change(Change::Service(id.clone()))]
    }

    #[test]
    fn a_conflict_waits_for_a_newer_version_then_writes_again() {
        let base = Instant::now();
        let mut w = world();
        let id: ServiceId = ("ns".into(), "a".into());
        w.services.insert(id.clone(), Arc::new(record("5")));
        let mut s = Step::new(None, Metrics::new());
        let fx = s.handle(clock(0, base), [Input::Start], &w);
        assert_eq!(writes(&fx), [(1, "5".to_string())], "the write (number 1) is conditioned on v5");

        let fx = s.handle(clock(1, base), [Input::ServiceWritten { id: id.clone(), write: 1, result: Err(api_error(409)) }], &w);
        assert_eq!(s.conflicts.get(&id).map(String::as_str), Some("5"));
        assert_eq!(s.overlay[&id].state, WriteState::Failed, "allocation keeps its decision");
        assert!(writes(&fx).is_empty(), "the cache has nothing newer yet: wait for the watch");
        assert!(s.retries.is_empty() && s.failed_writes.is_empty(), "a conflict is not retried blindly");
        assert_eq!(s.unresolved(), 1, "pending work for /healthz");

        // Processing again on the same version does not write (no 409 loop).
        assert!(writes(&s.handle(clock(2, base), changed(&id), &w)).is_empty(), "no write on the refused version");

        // A version newer than the refused one arrives: written again from it.
        assert!(newer_than(Some("6"), "5") && !newer_than(Some("5"), "5") && !newer_than(Some("4"), "5"));
        assert!(newer_than(Some("x"), "y") && !newer_than(None, "5"));
        w.services.insert(id.clone(), Arc::new(record("6")));
        let fx = s.handle(clock(3, base), changed(&id), &w);
        assert_eq!(writes(&fx).iter().map(|(_, rv)| rv.as_str()).collect::<Vec<_>>(), ["6"]);
        let second = writes(&fx)[0].0;
        assert!(s.conflicts.is_empty());

        // Refused again, but the cache already shows a newer version:
        // processed at once, since no further watch event will come.
        w.services.insert(id.clone(), Arc::new(record("8")));
        let fx = s.handle(clock(4, base), [Input::ServiceWritten { id: id.clone(), write: second, result: Err(api_error(409)) }], &w);
        assert_eq!(writes(&fx).iter().map(|(_, rv)| rv.as_str()).collect::<Vec<_>>(), ["8"]);
    }

    #[test]
    fn a_deleted_service_leaves_no_write_or_retry_state() {
        let base = Instant::now();
        let mut w = world();
        let id: ServiceId = ("ns".into(), "a".into());
        w.services.insert(id.clone(), Arc::new(record("5")));
        let mut s = Step::new(None, Metrics::new());
        let mut fx = s.handle(clock(0, base), [Input::Start], &w);
        let mut t = 0;
        for _ in 0..3 {
            let (n, _) = writes(&fx)[0].clone();
            s.handle(clock(t, base), [Input::ServiceWritten { id: id.clone(), write: n, result: Err(api_error(500)) }], &w);
            t += 70_000; // past the longest retry delay
            fx = s.handle(clock(t, base), [], &w);
        }
        assert!(s.writing.contains_key(&id), "a retry is outstanding");
        let (outstanding, _) = writes(&fx)[0].clone();
        s.handle(clock(t, base), [Input::ServiceWritten { id: id.clone(), write: outstanding, result: Err(api_error(500)) }], &w);
        let fx = s.handle(clock(t + 70_000, base), [], &w);
        let (in_flight, _) = writes(&fx)[0].clone();
        s.conflicts.insert(id.clone(), "5".into());
        assert!(s.failed_writes.contains(&id) && s.retries.len() == 1);
        assert!(s.per_service_state() > 0);

        w.services.remove(&id);
        let fx = s.handle(clock(t + 70_001, base), changed(&id), &w);
        assert_eq!(s.per_service_state(), 0, "everything kept for the Service is dropped");
        assert!(fx.iter().any(|e| matches!(e, Effect::CancelServiceWrite { id: c } if *c == id)), "the queued write is cancelled");
        // The answer of the write that was in flight keeps nothing either.
        let fx = s.handle(clock(t + 70_002, base), [Input::ServiceWritten { id: id.clone(), write: in_flight, result: Err(api_error(500)) }], &w);
        assert_eq!(s.per_service_state(), 0);
        assert!(writes(&fx).is_empty());
        assert!(s.retries.pop_due(base + Duration::from_secs(1_000)).is_empty(), "no retry comes due");
    }
}
