//! IPAddressPool status counters (controller.md §6): recomputed from the
//! allocator for every pool it signals, written with a merge patch of the
//! status subresource only when they differ from what the pool shows.
//!
//! During a burst of allocations a pool's counters change with every
//! Service; writes go through the runtime's keyed writer, one per pool at a
//! time and spaced by [`MIN_INTERVAL`], a queued write superseded by newer
//! figures, so the last one always carries the final figures.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ferrolb_allocator::{Allocator, PoolCounters};
use ferrolb_api::v1beta1::{IPAddressPool, IPAddressPoolStatus};
use ferrolb_runtime::status::StatusWriter;
use futures::FutureExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use tokio::time::Instant;

use crate::metrics::{Metrics, PoolGauges};

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

pub struct PoolStatusWriter {
    namespace: String,
    /// Pools whose status must be compared with the allocator's figures.
    marked: HashSet<String>,
    /// What was last written (uid, status, resourceVersion), until the cache shows it.
    written: HashMap<String, (String, IPAddressPoolStatus, String)>,
    writer: StatusWriter<String, IPAddressPoolStatus, Result<IPAddressPool, kube::Error>>,
}

impl PoolStatusWriter {
    pub fn new(api: Api<IPAddressPool>, namespace: &str) -> Self {
        let writer = StatusWriter::new(IN_FLIGHT, move |name: String, status: IPAddressPoolStatus| {
            let api = api.clone();
            async move {
                let body = serde_json::json!({ "status": status });
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await
            }
            .boxed()
        })
        .with_min_interval(MIN_INTERVAL);
        PoolStatusWriter { namespace: namespace.to_string(), marked: HashSet::new(), written: HashMap::new(), writer }
    }

    pub fn mark(&mut self, name: impl Into<String>) {
        self.marked.insert(name.into());
    }

    /// Queues the writes that are needed; the writer starts them as spacing allows.
    pub fn flush(&mut self, alloc: &Allocator, pools: &Store<IPAddressPool>) {
        let marked: Vec<String> = self.marked.iter().cloned().collect();
        for name in marked {
            if self.writer.in_flight(&name) {
                // Compared again when it returns (the session acts then).
                continue;
            }
            self.marked.remove(&name);
            let Some(pool) = pools.get(&ObjectRef::new(&name).within(&self.namespace)) else {
                // Not (or no longer) an object: nothing to write.
                self.writer.cancel(&name);
                continue;
            };
            let desired = status_of(alloc.pool_counters(&name));
            if self.shown(&pool) == Some(&desired) {
                // A queued write of older figures must not go out after all.
                self.writer.cancel(&name);
                continue;
            }
            self.writer.submit(name, desired);
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

    /// The next finished write; pends while none is queued or in flight.
    pub async fn next(&mut self) -> (String, Result<IPAddressPool, kube::Error>) {
        self.writer.next().await
    }

    pub fn finished(&mut self, name: String, result: Result<IPAddressPool, kube::Error>, now: Instant) {
        match result {
            Ok(pool) => {
                if let (Some(uid), Some(status), Some(rv)) =
                    (pool.metadata.uid.clone(), pool.status.clone(), pool.metadata.resource_version.clone())
                {
                    self.written.insert(name, (uid, status, rv));
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::debug!(pool = %name, error = %s, "IPAddressPool status not written: the pool is gone");
                self.written.remove(&name);
            }
            Err(error) => {
                tracing::warn!(pool = %name, %error, "writing IPAddressPool status failed, will retry");
                self.writer.hold(&name, now + RETRY);
                self.marked.insert(name);
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
