//! The session's executor: the async half. It owns the client-side pieces
//! (status writers, Event recorder, `ConfigurationState` writer), waits for
//! whatever comes next (a change notification, a write's answer, the
//! step's timer, room in the recorder), hands it to the [`Step`] as input
//! and carries out the effects it returns. It decides nothing about
//! Services or pools.

use std::collections::VecDeque;
use std::sync::Arc;

use ferrolb_api::v1beta1::{Community, ConfigurationState, IPAddressPool};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use ferrolb_runtime::config_state::{ConfigStateWriter, Identity};
use ferrolb_runtime::events::{self, EventSpec, Recorder};
use ferrolb_runtime::mem::shrink_sparse;
use ferrolb_runtime::retry::sleep_until;

use super::hold::Held;
use super::step::{self, Clock, Effect, Input, Step, World};
use super::{OUTBOX_LIMIT, POOL_WRITE_SETTLE, POOL_WRITE_WAIT_MAX, SessionContext};
use crate::pool_status::{self, PoolWrite};
use crate::service_record::ServiceRecord;
use crate::service_status;
use crate::watch::{CONFIG_STATE_NAME, Caches, Change, ServiceId};

/// The watch caches as the step's [`World`].
pub struct CacheWorld<'a> {
    pub caches: &'a Caches,
    pub namespace: &'a str,
}

impl World for CacheWorld<'_> {
    fn service(&self, id: &ServiceId) -> Option<Arc<ServiceRecord>> {
        self.caches.services.get(id)
    }

    fn services(&self) -> Vec<Arc<ServiceRecord>> {
        self.caches.services.state()
    }

    fn pool(&self, name: &str) -> Option<Arc<IPAddressPool>> {
        self.caches.pools.get(&ObjectRef::new(name).within(self.namespace))
    }

    fn configuration(&self) -> (Vec<IPAddressPool>, Vec<Community>, Vec<Namespace>) {
        let c = self.caches;
        (
            c.pools.state().iter().map(|p| (**p).clone()).collect(),
            c.communities.state().iter().map(|x| (**x).clone()).collect(),
            c.namespaces.state().iter().map(|n| (**n).clone()).collect(),
        )
    }

    fn config_state(&self) -> Option<ObjectReference> {
        stored_config_state(self.caches, self.namespace).map(|cs| cs.object_ref(&()))
    }
}

/// `ConfigurationState/controller` as the watch cache holds it.
fn stored_config_state(caches: &Caches, namespace: &str) -> Option<Arc<ConfigurationState>> {
    caches.config_states.get(&ObjectRef::new(CONFIG_STATE_NAME).within(namespace))
}

pub(super) struct Executor {
    ctx: SessionContext,
    step: Step,
    services: service_status::Writer,
    pools: pool_status::Writer,
    /// Pool status writes waiting for the Service writes outstanding (see
    /// `session::hold`).
    held_pools: Held<(String, PoolWrite)>,
    config_state: ConfigStateWriter,
    recorder: Recorder,
    backlog: events::Backlog,
    /// Events waiting for room in the recorder's channel.
    outbox: VecDeque<(ObjectReference, EventSpec)>,
    /// When the step wants a turn without input.
    timer: Option<Instant>,
}

impl Executor {
    pub(super) fn new(
        ctx: SessionContext,
        owner: Option<OwnerReference>,
        recorder: Recorder,
        backlog: events::Backlog,
    ) -> Self {
        let pool_api: Api<IPAddressPool> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        let cs_api: Api<ConfigurationState> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        Executor {
            step: Step::new(ctx.lb_class.clone(), ctx.metrics.clone()),
            services: service_status::writer(ctx.client.clone(), ctx.write_concurrency, ctx.fence.clone()),
            pools: pool_status::writer(pool_api, ctx.fence.clone()),
            held_pools: Held::new(POOL_WRITE_WAIT_MAX, POOL_WRITE_SETTLE),
            config_state: ConfigStateWriter::new(cs_api, Identity::controller(), owner),
            recorder,
            backlog,
            outbox: VecDeque::new(),
            timer: None,
            ctx,
        }
    }

    /// Runs the term: the first turn, then one turn per wake-up until
    /// `cancel` or the end of the notifications.
    pub(super) async fn run(&mut self, changes: &mut mpsc::Receiver<Change>, cancel: &CancellationToken) {
        self.turn(vec![Input::Start]);
        self.flush_events();
        loop {
            let intake = self.outbox.len() < OUTBOX_LIMIT;
            let recorder = self.recorder.clone();
            let mut inputs = Vec::new();
            tokio::select! {
                _ = cancel.cancelled() => return,
                change = changes.recv(), if intake => match change {
                    Some(c) => inputs.push(Input::Change(c)),
                    None => return,
                },
                slot = recorder.reserve(), if !self.outbox.is_empty() => {
                    if let Some((object, spec)) = self.outbox.pop_front() {
                        slot.record(object, spec);
                    }
                }
                (id, (write, result)) = self.services.next() => {
                    if step::answered(&result) {
                        self.ctx.progress.advanced();
                    }
                    inputs.push(Input::ServiceWritten { id, write, result });
                }
                (name, result) = self.pools.next() => inputs.push(Input::PoolWritten { name, result }),
                result = self.config_state.next() => self.config_state.finished(result, Instant::now()),
                _ = sleep_until(self.timer) => {}
                _ = sleep_until(self.held_pools.deadline()) => {}
            }
            // Take everything else that is already there, so a burst of
            // notifications is handled as one batch.
            while self.outbox.len() < OUTBOX_LIMIT
                && let Ok(c) = changes.try_recv()
            {
                inputs.push(Input::Change(c));
            }
            self.turn(inputs);
            self.flush_events();
        }
    }

    /// One step over `inputs`, then its effects.
    fn turn(&mut self, inputs: Vec<Input>) {
        let clock = Clock { now: Instant::now(), wall: Timestamp::now() };
        let world = CacheWorld { caches: &self.ctx.caches, namespace: &self.ctx.namespace };
        for effect in self.step.handle(clock, inputs, &world) {
            match effect {
                Effect::WriteService { id, write, body } => self.services.submit(id, (write, body)),
                Effect::CancelServiceWrite { id } => {
                    self.services.cancel(&id);
                }
                Effect::WritePool { name, patch, .. } => self.held_pools.push(clock.now, (name, patch)),
                Effect::Event { object, spec } => self.outbox.push_back((object, spec)),
                Effect::Verdict(verdict) => self.config_state.set(verdict),
                Effect::Timer(at) => self.timer = at,
            }
        }
        let backlog = self.services.backlog();
        for (name, patch) in self.held_pools.release(clock.now, backlog > 0) {
            self.pools.submit(name, patch);
        }
        self.backlog.set(backlog);
        self.ctx.progress.set_pending(backlog + self.step.unresolved());
        let stored = stored_config_state(&self.ctx.caches, &self.ctx.namespace);
        self.config_state.flush(stored.as_deref());
    }

    /// Moves waiting Events into the recorder's channel while it has room.
    fn flush_events(&mut self) {
        while let Some((object, spec)) = self.outbox.pop_front() {
            if let Err(back) = self.recorder.try_record(object, spec) {
                self.outbox.push_front(back);
                break;
            }
        }
        // A full pass queues an Event per Service at once.
        shrink_sparse(&mut self.outbox);
    }
}
