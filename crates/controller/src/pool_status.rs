//! IPAddressPool status counters (controller.md §6): recomputed from the
//! allocator for every pool it signals, written with a merge patch of the
//! status subresource only when they differ from what the pool shows.
//!
//! During a burst of allocations a pool's counters change with every
//! Service; [`PoolStatus`] (pure, driven by the session's step) decides what
//! to write and when: one write per pool at a time, starts spaced by
//! [`MIN_INTERVAL`], the figures read when the write starts, so the last one
//! always carries the final figures. [`writer`] sends them.
//!
//! Fencing (docs/fencing.md): each patch carries the resourceVersion of the
//! pool it was computed against, so a write based on a version someone
//! else (a new leader) has replaced is refused with 409. After a 409 the
//! pool is not written again until the watch cache shows a version other
//! than the refused one; then the figures are compared and written anew.
//! Requests go through the leadership fence.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_allocator::{Allocator, PoolCounters};
use ferrolb_api::v1beta1::{IPAddressPool, IPAddressPoolStatus};
use ferrolb_runtime::leader::Fence;
use ferrolb_runtime::status::StatusWriter;
use futures::FutureExt;
use kube::api::{Api, Patch, PatchParams};
use kube::ResourceExt;
use tokio::time::Instant;

use crate::metrics::{Metrics, PoolGauges};
use crate::service_status::{WriteError, is_conflict};

pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_secs(2);
/// Pools are few; this only bounds a configuration with very many.
const IN_FLIGHT: usize = 16;

pub fn status_of(c: Option<PoolCounters>) -> IPAddressPoolStatus {
    let c = c.unwrap_or_default();
    IPAddressPoolStatus {
        assigned_ipv4: c.assigned_v4,
        assigned_ipv6: c.assigned_v6,
        available_ipv4: c.available_v4,
        available_ipv6: c.available_v6,
    }
}

/// Updates the allocator gauges of every pool in `names` (deleting the
/// series of pools the allocator no longer knows).
pub fn update_metrics(metrics: &Metrics, alloc: &Allocator, names: &HashSet<String>) {
    for name in names {
        match alloc.pool_counters(name) {
            Some(c) => metrics.set_pool(
                name,
                PoolGauges {
                    total_v4: c.capacity_v4,
                    total_v6: c.capacity_v6,
                    in_use_v4: c.assigned_v4,
                    in_use_v6: c.assigned_v6,
                },
            ),
            None => metrics.remove_pool(name),
        }
    }
}

/// One pool status write: the figures and the version they replace.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolWrite {
    /// Precondition: the pool's resourceVersion the figures were compared with.
    pub resource_version: Option<String>,
    pub status: IPAddressPoolStatus,
}

/// The merge patch of one pool's status, conditional on `resource_version`.
pub fn patch_body(write: &PoolWrite) -> serde_json::Value {
    let mut body = serde_json::json!({ "status": write.status });
    if let Some(rv) = &write.resource_version {
        body["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    body
}

/// Pool status writes, keyed by pool name: the requests only. What to write
/// and when (spacing, retries, conflicts) is [`PoolStatus`]'s decision.
pub type Writer = StatusWriter<String, PoolWrite, Result<IPAddressPool, WriteError>>;

/// A writer sending at most a few pool patches at once, each only while
/// `fence` holds.
pub fn writer(api: Api<IPAddressPool>, fence: Fence) -> Writer {
    StatusWriter::new(IN_FLIGHT, move |name: String, write: PoolWrite| {
        let api = api.clone();
        let fence = fence.clone();
        async move {
            let body = patch_body(&write);
            let (params, patch) = (PatchParams::default(), Patch::Merge(&body));
            match fence.guard(api.patch_status(&name, &params, &patch)).await {
                Ok(r) => r.map_err(WriteError::from),
                Err(not_leader) => Err(not_leader.into()),
            }
        }
        .boxed()
    })
}

/// Which pool status writes are needed and when they may start. Pure state
/// (no client, no timer): the session's step drives it with the clock as an
/// argument and hands the writes it returns to the executor.
///
/// One write per pool at a time; two starts for one pool are spaced by
/// [`MIN_INTERVAL`], a failed write is retried after [`RETRY`]. While a pool
/// is held back it stays marked and is compared when the hold ends, with
/// the figures of then, so the last write always carries the final figures.
#[derive(Default)]
pub struct PoolStatus {
    /// Pools whose status must be compared with the allocator's figures.
    marked: HashSet<String>,
    /// What was last written (uid, status, resourceVersion), until the cache shows it.
    written: HashMap<String, (String, IPAddressPoolStatus, String)>,
    /// Pools whose last write was refused (409), with the resourceVersion it
    /// was conditioned on: not written again while that is still the newest
    /// version known.
    conflicts: HashMap<String, String>,
    /// Pools with a write started and not answered, and the precondition it carried.
    in_flight: HashMap<String, Option<String>>,
    /// Pools that may not start a write before the instant (spacing after a
    /// start, delay after a failure); only future instants are kept.
    not_before: HashMap<String, Instant>,
}

impl PoolStatus {
    pub fn mark(&mut self, name: impl Into<String>) {
        self.marked.insert(name.into());
    }

    /// The writes to start now: every marked pool with no write in flight
    /// and not held back is compared with the allocator's figures. `pool`
    /// reads the watch cache.
    pub fn flush(
        &mut self,
        now: Instant,
        alloc: &Allocator,
        pool: &dyn Fn(&str) -> Option<Arc<IPAddressPool>>,
    ) -> Vec<(String, PoolWrite)> {
        self.not_before.retain(|_, at| *at > now);
        let mut marked: Vec<String> = self.marked.iter().cloned().collect();
        marked.sort();
        let mut out = Vec::new();
        for name in marked {
            if self.in_flight.contains_key(&name) {
                // Compared again when it returns.
                continue;
            }
            let Some(pool) = pool(&name) else {
                // Not (or no longer) an object: nothing to write.
                self.marked.remove(&name);
                self.conflicts.remove(&name);
                continue;
            };
            let (shown, version) = self.shown(&pool);
            if let Some(refused) = self.conflicts.get(&name) {
                if version.as_ref() == Some(refused) {
                    // The API server holds a newer version than any seen:
                    // wait for the watch to bring it (it marks the pool).
                    continue;
                }
                self.conflicts.remove(&name);
            }
            if self.not_before.contains_key(&name) {
                continue;
            }
            self.marked.remove(&name);
            let desired = status_of(alloc.pool_counters(&name));
            if shown.as_ref() == Some(&desired) {
                continue;
            }
            self.not_before.insert(name.clone(), now + MIN_INTERVAL);
            self.in_flight.insert(name.clone(), version.clone());
            out.push((name, PoolWrite { resource_version: version, status: desired }));
        }
        out
    }

    /// When a held-back pool may be written next.
    pub fn deadline(&self) -> Option<Instant> {
        self.not_before
            .iter()
            .filter(|(name, _)| self.marked.contains(*name) && !self.in_flight.contains_key(*name))
            .map(|(_, at)| *at)
            .min()
    }

    /// The status the pool has and its resourceVersion, counting a write the
    /// cache does not show yet.
    fn shown(&self, pool: &IPAddressPool) -> (Option<IPAddressPoolStatus>, Option<String>) {
        let name = pool.name_any();
        if let Some((uid, status, rv)) = self.written.get(&name)
            && pool.metadata.uid.as_deref() == Some(uid.as_str())
            && !crate::overlay::cache_caught_up(pool.metadata.resource_version.as_deref(), rv)
        {
            return (Some(status.clone()), Some(rv.clone()));
        }
        (pool.status.clone(), pool.metadata.resource_version.clone())
    }

    /// The answer to the write of `name` in flight.
    pub fn finished(&mut self, name: String, result: Result<IPAddressPool, WriteError>, now: Instant) {
        let Some(sent) = self.in_flight.remove(&name) else {
            tracing::debug!(pool = %name, "answer to an IPAddressPool status write not in flight, ignored");
            return;
        };
        match result {
            Ok(pool) => {
                self.conflicts.remove(&name);
                if let (Some(uid), Some(status), Some(rv)) =
                    (pool.metadata.uid.clone(), pool.status.clone(), pool.metadata.resource_version.clone())
                {
                    self.written.insert(name, (uid, status, rv));
                }
            }
            Err(WriteError::Api(kube::Error::Api(s))) if s.code == 404 => {
                tracing::debug!(pool = %name, error = %s, "IPAddressPool status not written: the pool is gone");
                self.written.remove(&name);
            }
            Err(WriteError::Api(error)) if is_conflict(&error) => {
                tracing::info!(pool = %name, resource_version = ?sent, %error,
                    "IPAddressPool changed since its status was computed (409); recomputing once the watch shows the new version");
                if let Some(rv) = sent {
                    self.conflicts.insert(name.clone(), rv);
                }
                self.marked.insert(name);
            }
            Err(WriteError::NotLeader(error)) => {
                // The session ends with the leadership; nothing to retry.
                tracing::debug!(pool = %name, %error, "IPAddressPool status write not sent or abandoned");
            }
            Err(WriteError::Api(error)) => {
                tracing::warn!(pool = %name, %error, "writing IPAddressPool status failed, will retry");
                let at = self.not_before.entry(name.clone()).or_insert(now);
                *at = (*at).max(now + RETRY);
                self.marked.insert(name);
            }
        }
    }

    /// Forgets written state of pools whose cache entry caught up.
    pub fn prune(&mut self, pool: &dyn Fn(&str) -> Option<Arc<IPAddressPool>>) {
        self.written.retain(|name, (_, _, rv)| {
            pool(name).is_some_and(|p| !crate::overlay::cache_caught_up(p.metadata.resource_version.as_deref(), rv))
        });
    }
}
