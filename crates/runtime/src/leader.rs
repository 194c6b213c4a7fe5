//! Leader election on a `coordination.k8s.io/v1` Lease, in the manner of
//! client-go's leaderelection package: optimistic concurrency on the Lease's
//! resourceVersion, expiry judged on the local clock from the moment a change
//! of the record was *observed* (immune to clock skew between replicas).
//!
//! The elector publishes leadership on a `watch` channel. It steps down the
//! moment renewal has failed for `renew_deadline`, or when it sees another
//! holder, so a deposed leader stops writing before a standby can take over
//! (`renew_deadline < lease_duration`).

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

/// Runs the election for one identity; see [`LeaderElector::run`].
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderConfig,
    observed: Option<Observed>,
}

impl LeaderElector {
    /// An elector on `api` (namespaced: the Lease's namespace).
    pub fn new(api: Api<Lease>, cfg: LeaderConfig) -> Self {
        LeaderElector { api, cfg, observed: None }
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
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => break,
                // A hung API call must not keep a deposed leader writing.
                _ = sleep_until(deadline), if is_leader => {
                    tracing::warn!(identity = %self.cfg.identity, "leader lease renewal timed out, stepping down");
                    last_renew = None;
                    leading.send_replace(false);
                    continue;
                }
                r = self.try_acquire_or_renew() => r,
            };
            match attempt {
                Ok(Outcome::Leading) => {
                    last_renew = Some(Instant::now());
                    if !is_leader {
                        tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "became leader");
                        leading.send_replace(true);
                    }
                }
                Ok(Outcome::Following(holder)) => {
                    if is_leader {
                        tracing::warn!(identity = %self.cfg.identity, holder = ?holder, "lost leadership to another holder");
                        last_renew = None;
                        leading.send_replace(false);
                    }
                }
                Err(error) => {
                    tracing::warn!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, error = %error, "lease acquire/renew failed");
                    if is_leader && last_renew.is_some_and(|t| t.elapsed() >= self.cfg.renew_deadline) {
                        last_renew = None;
                        leading.send_replace(false);
                    }
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
                            leading.send_replace(false);
                        }
                    }
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        if *leading.borrow() {
            leading.send_replace(false);
            if let Err(error) = self.release().await {
                tracing::warn!(error = %error, "releasing the leader lease failed; a standby takes over after expiry");
            }
        }
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
            lease_duration_seconds: Some(duration_secs(self.cfg.lease_duration)),
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

fn duration_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}
