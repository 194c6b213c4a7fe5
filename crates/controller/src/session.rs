//! One leadership term: the reconcile loop that owns the allocator and is
//! the only place that writes. Dropping the session future aborts every
//! write it started, which is how a replica that loses the lease stops
//! writing at once.
//!
//! Two halves (docs/controller.md, "The session"):
//! - [`step`]: every decision, as a pure state machine. It takes typed
//!   inputs (the session started, a change notification, a write's answer)
//!   with the clock as an argument, reads the watch caches through a
//!   narrow trait, and returns typed effects (write this status with this
//!   precondition, cancel a write, write pool status, record an Event, set
//!   the configuration verdict, arm the timer). The allocator lives there.
//!   Replay tests (tests/replay.rs) run it over recorded inputs.
//! - `exec`: the executor. It owns the writers and the Event recorder,
//!   waits for the next notification, answer or timer, drains every other
//!   notification already there (a burst is one batch, one turn), feeds
//!   the step and carries out its effects (IPAddressPool status writes
//!   only after the Service status writes outstanding: `hold`).
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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use kube::Client;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use ferrolb_runtime::events::{self, RecorderConfig};
use ferrolb_runtime::leader::Fence;

use crate::metrics::Metrics;
use crate::watch::{Caches, ChangeRouter};

mod exec;
mod hold;
pub mod step;

pub use exec::CacheWorld;

/// `source.component` of the controller's Events, as MetalLB's.
pub const EVENT_COMPONENT: &str = "metallb-controller";

/// Events the session keeps waiting for the recorder before it stops taking
/// notifications.
pub const OUTBOX_LIMIT: usize = 1024;

/// Longest an IPAddressPool status write waits for the Service status
/// writes outstanding to be answered (`session::hold`).
pub const POOL_WRITE_WAIT_MAX: Duration = Duration::from_millis(100);

/// How long no Service status write must be outstanding before the held
/// IPAddressPool status writes go (`session::hold`): the speakers' reaction
/// to a new address takes a few milliseconds of the API server.
pub const POOL_WRITE_SETTLE: Duration = Duration::from_millis(20);

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
    pub(crate) fn advanced(&self) {
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
    let router = ctx.router.clone();
    tracing::info!(namespace = %ctx.namespace, "controller session started");
    exec::Executor::new(ctx, owner, recorder, backlog).run(&mut changes, &cancel).await;
    router.unsubscribe();
    tracing::info!("controller session ended");
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
