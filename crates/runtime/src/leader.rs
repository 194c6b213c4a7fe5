//! Leader election on a `coordination.k8s.io/v1` Lease, in the manner of
//! client-go's leaderelection package: optimistic concurrency on the Lease's
//! resourceVersion, expiry judged on the local clock from the moment a change
//! of the record was *observed* (immune to clock skew between replicas).
//!
//! The elector publishes leadership on a `watch` channel. It steps down the
//! moment `renew_deadline` has passed since the last successful renewal was
//! *sent*, or when it sees another holder. A standby starts its expiry clock
//! no earlier than that send (it sees the record only once the API server
//! stored it), so with `renew_deadline < lease_duration` a deposed leader
//! stops writing before a standby can take over.
//!
//! `leaseDurationSeconds` is an integer in the API: a sub-second duration is
//! written rounded *up* (a standby reading it never takes over early), while
//! the elector's own timers (renew deadline, retry period, expiry of a record
//! without a duration) keep full precision. [`LeaderConfig::validate`] checks
//! the timings as client-go does.
//!
//! A [`Fence`] (from [`LeaderElector::fence`]) tells a writer, at the moment
//! it is about to send, whether the renew deadline of the last successful
//! renewal has passed; [`Fence::guard`] refuses to start a request after it
//! and abandons one still waiting for its answer when it passes. The
//! deadline is an instant on the local monotonic clock, so a writer stops on
//! time even when the task that publishes "not leading" runs late
//! (docs/fencing.md).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::retry::sleep_until;

/// Names and timings of the election (client-go's meaning of each).
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// The Lease's name, in the namespace of the elector's `Api<Lease>`.
    pub lease_name: String,
    /// `holderIdentity` written while leading; unique per replica.
    pub identity: String,
    /// How long a non-leader waits after the last observed renewal.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops leading.
    pub renew_deadline: Duration,
    /// Interval between acquire / renew attempts.
    pub retry_period: Duration,
}

/// client-go's jitter factor: the renew deadline must exceed this many
/// retry periods.
pub const JITTER_FACTOR: f64 = 1.2;

/// Timings that cannot give a safe election (client-go's rules).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimingError {
    /// A timing is zero.
    #[error("{name} must be greater than zero")]
    Zero {
        /// Which timing.
        name: &'static str,
    },
    /// `lease_duration <= renew_deadline`: a standby could take over while
    /// the old leader still writes.
    #[error("lease duration ({lease_duration:?}) must be greater than renew deadline ({renew_deadline:?})")]
    LeaseNotAboveDeadline {
        /// The lease duration.
        lease_duration: Duration,
        /// The renew deadline.
        renew_deadline: Duration,
    },
    /// `renew_deadline <= 1.2 × retry_period`: a leader would step down
    /// after a single slow renewal.
    #[error("renew deadline ({renew_deadline:?}) must be greater than {JITTER_FACTOR} × retry period ({retry_period:?})")]
    DeadlineNotAboveRetry {
        /// The renew deadline.
        renew_deadline: Duration,
        /// The retry period.
        retry_period: Duration,
    },
    /// The lease duration, rounded up to whole seconds, does not fit the
    /// Lease's `leaseDurationSeconds` (int32).
    #[error("lease duration ({0:?}) is too long for a Lease")]
    TooLong(Duration),
}

impl LeaderConfig {
    /// client-go's checks: every timing > 0, lease duration > renew
    /// deadline > 1.2 × retry period.
    pub fn validate(&self) -> Result<(), TimingError> {
        for (name, d) in [
            ("lease duration", self.lease_duration),
            ("renew deadline", self.renew_deadline),
            ("retry period", self.retry_period),
        ] {
            if d.is_zero() {
                return Err(TimingError::Zero { name });
            }
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(TimingError::LeaseNotAboveDeadline {
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
            });
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err(TimingError::DeadlineNotAboveRetry {
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            });
        }
        if lease_duration_seconds(self.lease_duration).is_none() {
            return Err(TimingError::TooLong(self.lease_duration));
        }
        Ok(())
    }
}

/// The last Lease record seen and when (local clock) it was first seen.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    acquire_time: Option<Timestamp>,
    transitions: i32,
    duration_secs: Option<i32>,
}

struct Observed {
    record: Record,
    at: Instant,
}

#[derive(Debug)]
enum Outcome {
    Leading,
    Following(Option<String>),
}

/// A request refused or abandoned because this replica may no longer act
/// as leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not the leader: the lease's renew deadline has passed or leadership was lost")]
pub struct NotLeader;

/// Whether this replica may still write as leader: true until the renew
/// deadline of its last successful renewal (counted from when that renewal
/// was sent), false once it steps down. Cheap to clone; see the module
/// documentation.
#[derive(Clone, Debug)]
pub struct Fence(FenceInner);

#[derive(Clone, Debug)]
enum FenceInner {
    /// No election (a single replica): always holds.
    Always,
    /// Until when the lease is held; `None` while not leading.
    Lease(watch::Receiver<Option<Instant>>),
}

impl Fence {
    /// A fence that always holds, for a process that runs without election.
    pub fn always() -> Self {
        Fence(FenceInner::Always)
    }

    /// A fence and the sender that moves its deadline (what an elector
    /// publishes; also for tests).
    pub fn channel() -> (watch::Sender<Option<Instant>>, Fence) {
        let (tx, rx) = watch::channel(None);
        (tx, Fence(FenceInner::Lease(rx)))
    }

    /// Whether a write may be sent now.
    pub fn holds(&self) -> bool {
        match &self.0 {
            FenceInner::Always => true,
            FenceInner::Lease(rx) => rx.borrow().is_some_and(|until| Instant::now() < until),
        }
    }

    /// Resolves once the fence no longer holds (deadline passed without a
    /// renewal, leadership lost, elector gone); pends for ever on
    /// [`Fence::always`].
    pub async fn lost(&self) {
        let mut rx = match &self.0 {
            FenceInner::Always => return std::future::pending().await,
            FenceInner::Lease(rx) => rx.clone(),
        };
        loop {
            let Some(until) = *rx.borrow_and_update() else { return };
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                // Checked again: a renewal may have moved the deadline.
                _ = tokio::time::sleep_until(until) => {}
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Runs `request` only if the fence holds now, and abandons it (drops
    /// the future, closing its connection) if the fence stops holding
    /// before it completes.
    pub async fn guard<F: Future>(&self, request: F) -> Result<F::Output, NotLeader> {
        if !self.holds() {
            return Err(NotLeader);
        }
        tokio::select! {
            biased;
            _ = self.lost() => Err(NotLeader),
            out = request => Ok(out),
        }
    }
}

/// Runs the election for one identity; see [`LeaderElector::run`].
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderConfig,
    observed: Option<Observed>,
    fence: watch::Sender<Option<Instant>>,
}

impl LeaderElector {
    /// An elector on `api` (namespaced: the Lease's namespace).
    pub fn new(api: Api<Lease>, cfg: LeaderConfig) -> Self {
        LeaderElector { api, cfg, observed: None, fence: watch::channel(None).0 }
    }

    /// The fence of this elector's leadership: holds from a successful
    /// acquire or renewal until `renew_deadline` after it was sent.
    pub fn fence(&self) -> Fence {
        Fence(FenceInner::Lease(self.fence.subscribe()))
    }

    /// Runs until `shutdown`, publishing leadership on `leading`; then
    /// releases the Lease if held so a standby takes over without waiting
    /// for expiry.
    pub async fn run(mut self, leading: watch::Sender<bool>, shutdown: CancellationToken) {
        let mut last_renew: Option<Instant> = None;
        // Watching the Lease makes a standby see each renewal as it happens,
        // so expiry is judged from the last renewal itself (not from a poll up
        // to a retry period later), and a leader sees a foreign holder at once.
        let cfg = watcher::Config::default().fields(&format!("metadata.name={}", self.cfg.lease_name));
        let updates = watcher(self.api.clone(), cfg).default_backoff().applied_objects();
        let mut updates = std::pin::pin!(updates);
        loop {
            let is_leader = *leading.borrow();
            let deadline = last_renew.map(|t| t + self.cfg.renew_deadline);
            if is_leader && deadline.is_some_and(|d| Instant::now() >= d) {
                self.step_down(&leading, "leader lease renewal timed out, stepping down");
                last_renew = None;
                continue;
            }
            // The renewal counts from when it was sent: the API server may
            // store it (and a standby see it) any time after this instant.
            let sent = Instant::now();
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => break,
                // A hung API call must not keep a deposed leader writing.
                _ = sleep_until(deadline), if is_leader => {
                    self.step_down(&leading, "leader lease renewal timed out, stepping down");
                    last_renew = None;
                    continue;
                }
                r = self.try_acquire_or_renew() => r,
            };
            match attempt {
                Ok(Outcome::Leading) => {
                    last_renew = Some(sent);
                    // Before "leading" is published: a session never starts
                    // with a fence that does not hold.
                    self.fence.send_replace(Some(sent + self.cfg.renew_deadline));
                    if !is_leader {
                        tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "became leader");
                        leading.send_replace(true);
                    }
                }
                Ok(Outcome::Following(holder)) => {
                    if is_leader {
                        tracing::warn!(identity = %self.cfg.identity, holder = ?holder, "lost leadership to another holder");
                        last_renew = None;
                        self.fence.send_replace(None);
                        leading.send_replace(false);
                    }
                }
                Err(error) => {
                    tracing::warn!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, error = %error, "lease acquire/renew failed");
                }
            }
            let mut next = Instant::now() + self.cfg.retry_period;
            loop {
                // Wake exactly when the holder's lease runs out; an expiry
                // already past waits the retry period (no tight loop when
                // attempts fail).
                if !*leading.borrow()
                    && let Some(expiry) = self.expiry()
                    && expiry > Instant::now()
                {
                    next = next.min(expiry);
                }
                // A leader whose renewals fail wakes at its renew deadline,
                // not a retry period after it (the step-down bound).
                if *leading.borrow()
                    && let Some(deadline) = last_renew.map(|t| t + self.cfg.renew_deadline)
                {
                    next = next.min(deadline);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(next) => break,
                    Some(update) = updates.next() => {
                        let lease = match update {
                            Ok(lease) => lease,
                            Err(error) => {
                                // Acquire/renew polls every retry period
                                // regardless, so election still works; only
                                // the early notice of a foreign holder is lost.
                                tracing::warn!(
                                    identity = %self.cfg.identity, lease = %self.cfg.lease_name, %error,
                                    "watching the leader Lease failed (retrying with backoff); falling back to polling every retry period"
                                );
                                continue;
                            }
                        };
                        let record = self.observe(&lease);
                        let mine = record.holder.as_deref() == Some(self.cfg.identity.as_str());
                        if *leading.borrow() && !mine {
                            tracing::warn!(identity = %self.cfg.identity, holder = ?record.holder, "lost leadership to another holder");
                            last_renew = None;
                            self.fence.send_replace(None);
                            leading.send_replace(false);
                        }
                    }
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        self.fence.send_replace(None);
        if *leading.borrow() {
            leading.send_replace(false);
            if let Err(error) = self.release().await {
                tracing::warn!(error = %error, "releasing the leader lease failed; a standby takes over after expiry");
            }
        }
    }

    fn step_down(&self, leading: &watch::Sender<bool>, why: &'static str) {
        tracing::warn!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "{why}");
        self.fence.send_replace(None);
        leading.send_replace(false);
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Outcome, kube::Error> {
        let now = Timestamp::now();
        let existing = match self.api.get_opt(&self.cfg.lease_name).await? {
            Some(l) => l,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.lease_name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(now, now, 0)),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(created) => {
                        self.observe(&created);
                        Ok(Outcome::Leading)
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Following(None)),
                    Err(e) => Err(e),
                };
            }
        };
        let record = self.observe(&existing);
        let me = record.holder.as_deref() == Some(self.cfg.identity.as_str());
        let held = record.holder.as_deref().is_some_and(|h| !h.is_empty());
        if held && !me && !self.observed_expired() {
            return Ok(Outcome::Following(record.holder));
        }
        let (acquire, transitions) = if me {
            (record.acquire_time.unwrap_or(now), record.transitions)
        } else {
            (now, record.transitions.saturating_add(1))
        };
        let mut lease = existing;
        lease.spec = Some(self.spec(acquire, now, transitions));
        // `replace` sends metadata.resourceVersion: a concurrent writer makes it 409.
        match self.api.replace(&self.cfg.lease_name, &PostParams::default(), &lease).await {
            Ok(updated) => {
                self.observe(&updated);
                Ok(Outcome::Leading)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Following(record.holder)),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquire: Timestamp, renew: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(lease_duration_seconds(self.cfg.lease_duration).unwrap_or(i32::MAX)),
            acquire_time: Some(MicroTime(acquire)),
            renew_time: Some(MicroTime(renew)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    fn observe(&mut self, lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity,
            renew_time: spec.renew_time.map(|t| t.0),
            acquire_time: spec.acquire_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration_secs: spec.lease_duration_seconds,
        };
        let changed = self.observed.as_ref().is_none_or(|o| o.record != record);
        if changed {
            self.observed = Some(Observed { record: record.clone(), at: Instant::now() });
        }
        record
    }

    /// When the observed record expires: its holder's own duration counts
    /// when written, as in client-go. `None` before anything was observed.
    fn expiry(&self) -> Option<Instant> {
        let o = self.observed.as_ref()?;
        let d = o
            .record
            .duration_secs
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.cfg.lease_duration);
        Some(o.at + d)
    }

    fn observed_expired(&self) -> bool {
        self.expiry().is_none_or(|t| Instant::now() >= t)
    }

    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.lease_name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        self.api
            .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
            .await
            .map(|_| tracing::info!(identity = %self.cfg.identity, "released leader lease"))
    }
}

/// `leaseDurationSeconds` for `d`: whole seconds rounded up (at least 1),
/// so a standby that reads it never waits less than the holder means.
/// `None` when it does not fit an int32.
pub fn lease_duration_seconds(d: Duration) -> Option<i32> {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs.max(1)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lease: u64, renew: u64, retry: u64) -> LeaderConfig {
        LeaderConfig {
            lease_name: "l".into(),
            identity: "i".into(),
            lease_duration: Duration::from_millis(lease),
            renew_deadline: Duration::from_millis(renew),
            retry_period: Duration::from_millis(retry),
        }
    }

    #[test]
    fn timings_are_checked_as_client_go_does() {
        assert_eq!(cfg(15_000, 10_000, 2_000).validate(), Ok(()));
        assert_eq!(cfg(1_500, 1_250, 1_000).validate(), Ok(()));
        assert!(matches!(cfg(10_000, 10_000, 2_000).validate(), Err(TimingError::LeaseNotAboveDeadline { .. })));
        assert!(matches!(cfg(15_000, 2_400, 2_000).validate(), Err(TimingError::DeadlineNotAboveRetry { .. })));
        assert_eq!(cfg(15_000, 2_401, 2_000).validate(), Ok(()));
        assert_eq!(cfg(15_000, 10_000, 0).validate(), Err(TimingError::Zero { name: "retry period" }));
        let huge = LeaderConfig { lease_duration: Duration::from_secs(1 << 40), ..cfg(0, 10_000, 2_000) };
        assert!(matches!(huge.validate(), Err(TimingError::TooLong(_))));
        let msg = cfg(10_000, 10_000, 2_000).validate().unwrap_err().to_string();
        assert_eq!(msg, "lease duration (10s) must be greater than renew deadline (10s)");
    }

    #[tokio::test(start_paused = true)]
    async fn fence_holds_until_the_deadline_and_follows_renewals() {
        assert!(Fence::always().holds());
        let (tx, fence) = Fence::channel();
        assert!(!fence.holds(), "not leading yet");
        assert_eq!(fence.guard(async { 1 }).await, Err(NotLeader), "nothing starts without the lease");
        let t0 = Instant::now();
        tx.send_replace(Some(t0 + Duration::from_secs(10)));
        assert!(fence.holds());
        assert_eq!(fence.guard(async { 2 }).await, Ok(2));
        // A renewal at 8 s moves the deadline to 18 s.
        let renew = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(8)).await;
            renew.send_replace(Some(t0 + Duration::from_secs(18)));
        });
        // A request that never answers is abandoned exactly at the deadline in force.
        let out = fence.guard(std::future::pending::<()>()).await;
        assert_eq!(out, Err(NotLeader));
        assert_eq!(Instant::now() - t0, Duration::from_secs(18));
        assert!(!fence.holds(), "past the deadline");
        // Stepping down (None) ends a guarded request at once.
        tx.send_replace(Some(Instant::now() + Duration::from_secs(10)));
        let clear = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            clear.send_replace(None);
        });
        let t1 = Instant::now();
        assert_eq!(fence.guard(std::future::pending::<()>()).await, Err(NotLeader));
        assert_eq!(Instant::now() - t1, Duration::from_secs(1));
    }

    #[test]
    fn written_duration_rounds_up_and_keeps_whole_seconds() {
        assert_eq!(lease_duration_seconds(Duration::from_secs(15)), Some(15));
        assert_eq!(lease_duration_seconds(Duration::from_millis(3_500)), Some(4));
        assert_eq!(lease_duration_seconds(Duration::from_millis(1)), Some(1));
        assert_eq!(lease_duration_seconds(Duration::ZERO), Some(1));
        assert_eq!(lease_duration_seconds(Duration::from_secs(1 << 40)), None);
    }
}
