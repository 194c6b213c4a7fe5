//! IPAddressPool status counters (controller.md §6): recomputed from the
//! allocator for every pool it signals, written with a merge patch of the
//! status subresource only when they differ from what the pool shows.
//!
//! During a burst of allocations a pool's counters change with every
//! Service; writes are therefore serialised per pool and spaced by
//! [`MIN_INTERVAL`], the last one always carrying the final figures.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ferrolb_allocator::{Allocator, PoolCounters};
use ferrolb_api::v1beta1::{IPAddressPool, IPAddressPoolStatus};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::metrics::{Metrics, PoolGauges};

pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_secs(2);

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

pub struct PoolStatusWriter {
    api: Api<IPAddressPool>,
    namespace: String,
    marked: HashSet<String>,
    in_flight: HashSet<String>,
    last_write: HashMap<String, Instant>,
    /// What was last written (uid, status, resourceVersion), until the cache shows it.
    written: HashMap<String, (String, IPAddressPoolStatus, String)>,
    tasks: JoinSet<(String, Result<IPAddressPool, kube::Error>)>,
    wake: Option<Instant>,
}

impl PoolStatusWriter {
    pub fn new(api: Api<IPAddressPool>, namespace: &str) -> Self {
        PoolStatusWriter {
            api,
            namespace: namespace.to_string(),
            marked: HashSet::new(),
            in_flight: HashSet::new(),
            last_write: HashMap::new(),
            written: HashMap::new(),
            tasks: JoinSet::new(),
            wake: None,
        }
    }

    pub fn mark(&mut self, name: impl Into<String>) {
        self.marked.insert(name.into());
    }

    /// When the writer wants `flush` called again (spacing or retry).
    pub fn wake_at(&self) -> Option<Instant> {
        self.wake
    }

    /// Starts the writes that are due.
    pub fn flush(&mut self, alloc: &Allocator, pools: &Store<IPAddressPool>, now: Instant) {
        self.wake = None;
        let marked: Vec<String> = self.marked.iter().cloned().collect();
        for name in marked {
            if self.in_flight.contains(&name) {
                continue;
            }
            let Some(pool) = pools.get(&ObjectRef::new(&name).within(&self.namespace)) else {
                // Not (or no longer) an object: nothing to write.
                self.marked.remove(&name);
                continue;
            };
            let desired = status_of(alloc.pool_counters(&name));
            if self.shown(&pool) == Some(&desired) {
                self.marked.remove(&name);
                continue;
            }
            if let Some(at) = self.last_write.get(&name).map(|t| *t + MIN_INTERVAL)
                && at > now
            {
                self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
                continue;
            }
            self.marked.remove(&name);
            self.in_flight.insert(name.clone());
            self.last_write.insert(name.clone(), now);
            let api = self.api.clone();
            let body = serde_json::json!({ "status": desired });
            self.tasks.spawn(async move {
                let r = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await;
                (name, r)
            });
        }
    }

    /// The status the pool has, counting a write the cache does not show yet.
    fn shown<'a>(&'a self, pool: &'a IPAddressPool) -> Option<&'a IPAddressPoolStatus> {
        let name = pool.name_any();
        if let Some((uid, status, rv)) = self.written.get(&name)
            && pool.metadata.uid.as_deref() == Some(uid.as_str())
            && !crate::overlay::cache_caught_up(pool.metadata.resource_version.as_deref(), rv)
        {
            return Some(status);
        }
        pool.status.as_ref()
    }

    pub async fn join_next(&mut self) -> Option<(String, Result<IPAddressPool, kube::Error>)> {
        self.tasks.join_next().await.and_then(Result::ok)
    }

    pub fn has_tasks(&self) -> bool {
        !self.tasks.is_empty()
    }

    pub fn finished(&mut self, name: String, result: Result<IPAddressPool, kube::Error>, now: Instant) {
        self.in_flight.remove(&name);
        match result {
            Ok(pool) => {
                if let (Some(uid), Some(status), Some(rv)) =
                    (pool.metadata.uid.clone(), pool.status.clone(), pool.metadata.resource_version.clone())
                {
                    self.written.insert(name, (uid, status, rv));
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.written.remove(&name);
            }
            Err(error) => {
                tracing::warn!(pool = %name, %error, "writing IPAddressPool status failed, will retry");
                self.marked.insert(name.clone());
                self.last_write.insert(name, now + RETRY - MIN_INTERVAL);
                let at = now + RETRY;
                self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
            }
        }
    }

    /// Forgets written state of pools whose cache entry caught up.
    pub fn prune(&mut self, pools: &Store<IPAddressPool>) {
        let ns = &self.namespace;
        self.written.retain(|name, (_, _, rv)| {
            pools
                .get(&ObjectRef::new(name).within(ns))
                .is_some_and(|p| !crate::overlay::cache_caught_up(p.metadata.resource_version.as_deref(), rv))
        });
    }
}
