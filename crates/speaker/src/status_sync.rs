//! Keeps one kind of per-node status object (ServiceL2Status or
//! ServiceBGPStatus) in agreement with what this node announces: plans from
//! the watch plus this node's unseen writes, hands each Service's requests to
//! a bounded writer, and retries failures after a growing delay.

use std::collections::{BTreeMap, HashSet};
use std::marker::PhantomData;
use std::time::Duration;

use ferrolb_allocator::ServiceKey;
use ferrolb_runtime::retry::backoff;
use ferrolb_runtime::status::StatusWriter;
use futures::FutureExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use crate::svcstatus::{self, Items, StatusFacts, StatusKind, StatusOp, Unseen};
use crate::watch::Projected;

/// Requests in flight at once. Each holds a connection to the API server:
/// unbounded, a burst of 1,000 Services opened 1,000 TLS connections and
/// ~50 MiB (docs/benchmarks-speaker.md).
const MAX_STATUS_WRITES: usize = 8;
/// Retry spacing of a failed request.
const RETRY_BASE: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub type Results = Vec<(StatusOp, Result<Option<String>, kube::Error>)>;

pub struct StatusSync<K> {
    node: String,
    writer: StatusWriter<ServiceKey, Vec<StatusOp>, Results>,
    /// Interfaces or peers of each Service this node announces, as its
    /// object should show them (from the last decision).
    wanted: BTreeMap<ServiceKey, Items>,
    /// Failed attempts in a row per Service, for the retry delay; dropped on
    /// success and when the Service needs no request any more.
    failures: BTreeMap<ServiceKey, u32>,
    pub unseen: Unseen,
    /// The cache's generation and the unseen writes' settles when the last
    /// full plan was made. While both are unchanged, only a Service whose
    /// wanted entry changed can need a request, and a plan looks at those
    /// alone: a full plan reads every object, which at 1,000 Services was a
    /// quarter of each pass.
    planned_at: Option<(u64, u64)>,
    /// `metallb_k8s_client_update_errors_total`.
    errors: Counter,
    kind: PhantomData<K>,
}

impl<K: StatusKind> StatusSync<K> {
    pub fn new(client: &Client, namespace: &str, node: &str, owner: Option<OwnerReference>, errors: Counter) -> Self {
        let (client, ns, writer_node) = (client.clone(), namespace.to_string(), node.to_string());
        let writer = StatusWriter::new(MAX_STATUS_WRITES, move |_, ops: Vec<StatusOp>| {
            let (client, ns, node, owner) = (client.clone(), ns.clone(), writer_node.clone(), owner.clone());
            async move {
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    let result = svcstatus::apply::<K>(&client, &ns, &node, owner.as_ref(), &op).await;
                    results.push((op, result));
                }
                results
            }
            .boxed()
        });
        StatusSync {
            node: node.to_string(),
            writer,
            wanted: BTreeMap::new(),
            failures: BTreeMap::new(),
            unseen: Unseen::default(),
            planned_at: None,
            errors,
            kind: PhantomData,
        }
    }

    /// Hands the writer what makes the objects agree with `wanted`. A
    /// Service with a request in flight is planned again when the request
    /// returns ([`Self::written`]), from what it did.
    pub fn plan(&mut self, wanted: BTreeMap<ServiceKey, Items>, cache: &Projected<StatusFacts>) {
        let previous = std::mem::replace(&mut self.wanted, wanted);
        let changed = changed_keys(&previous, &self.wanted);
        drop(previous);
        self.plan_keys(changed, cache);
    }

    /// [`Self::plan`] where only the Services in `changed` may differ from
    /// the last wanted state: each with its new items, `None` when this node
    /// no longer announces it. A pass that changed one Service of 10,000
    /// then costs one Service, not a copy and comparison of all of them.
    pub fn plan_changed(&mut self, changed: impl IntoIterator<Item = (ServiceKey, Option<Items>)>, cache: &Projected<StatusFacts>) {
        let mut keys = Vec::new();
        for (service, items) in changed {
            if self.wanted.get(&service) == items.as_ref() {
                continue;
            }
            match items {
                Some(items) => self.wanted.insert(service.clone(), items),
                None => self.wanted.remove(&service),
            };
            keys.push(service);
        }
        self.plan_keys(keys, cache);
    }

    /// Plans the Services in `changed` alone while nothing else can need a
    /// request, else every Service.
    fn plan_keys(&mut self, changed: Vec<ServiceKey>, cache: &Projected<StatusFacts>) {
        // Read before the objects: a change in between makes the next plan
        // a full one, never a missed one.
        let at = (cache.generation(), self.unseen.settled());
        if self.planned_at == Some(at) {
            for service in changed {
                self.plan_one(cache, service);
            }
            return;
        }
        self.planned_at = Some(at);
        // Each Service's requests go to the writer as they are planned, and
        // the queued requests of the Services left out are dropped: no whole
        // plan, nor a set of what was submitted, is kept beside the writer's
        // queue (at the first pass, each would be a copy of every key).
        let (node, unseen, wanted) = (&self.node, &self.unseen, &self.wanted);
        let (writer, failures) = (&mut self.writer, &mut self.failures);
        cache.read(|m| {
            let mut planned: HashSet<&ServiceKey> = HashSet::new();
            svcstatus::plan_each(K::OWNERSHIP, node, wanted, unseen.effective(m.values()), |service, ops| {
                if !writer.in_flight(service) {
                    writer.submit(service.clone(), ops);
                }
                planned.insert(service);
            });
            writer.retain_queued(|service| planned.contains(service));
            failures.retain(|service, _| planned.contains(service));
        });
    }

    /// [`Self::plan`] again with the same wanted state, after the objects
    /// changed (the watch showed a write).
    pub fn replan(&mut self, cache: &Projected<StatusFacts>) {
        let now = Instant::now().into_std();
        cache.read(|m| self.unseen.settle(m.values(), now));
        self.plan_keys(Vec::new(), cache);
    }

    /// The next Service whose requests returned.
    pub async fn next(&mut self) -> (ServiceKey, Results) {
        self.writer.next().await
    }

    /// A Service's requests returned: remember what they did until the
    /// watch shows it, and plan that Service again (a failure is retried
    /// after a growing delay).
    pub fn written(&mut self, cache: &Projected<StatusFacts>, service: ServiceKey, results: Results) {
        let now = Instant::now();
        let mut failed = false;
        for (op, result) in results {
            match result {
                Ok(created) => self.unseen.record(&self.node, &op, created, now.into_std()),
                Err(error) => {
                    failed = true;
                    self.errors.inc();
                    tracing::warn!(service = %service, kind = %K::kind(&()), ?op, %error, "status object write failed; will retry");
                }
            }
        }
        if failed {
            let attempts = self.failures.entry(service.clone()).or_default();
            *attempts = attempts.saturating_add(1);
            self.writer.hold(&service, now + backoff(RETRY_BASE, RETRY_MAX, *attempts));
        } else {
            self.failures.remove(&service);
        }
        self.plan_one(cache, service);
    }

    /// Plans one Service from its own objects.
    fn plan_one(&mut self, cache: &Projected<StatusFacts>, service: ServiceKey) {
        let (node, unseen) = (&self.node, &self.unseen);
        let ops = cache.read(|m| {
            let objects = unseen.effective_for(m.values(), &service);
            svcstatus::plan_service(K::OWNERSHIP, node, &service, self.wanted.get(&service), &objects)
        });
        if ops.is_empty() {
            self.writer.cancel(&service);
            self.failures.remove(&service);
        } else if !self.writer.in_flight(&service) {
            self.writer.submit(service, ops);
        }
    }
}

/// Keys whose entry differs between `old` and `new` (added, removed or
/// changed).
pub(crate) fn changed_keys<K: Ord + Clone, V: PartialEq>(old: &BTreeMap<K, V>, new: &BTreeMap<K, V>) -> Vec<K> {
    let changed = new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, _)| k.clone());
    let removed = old.keys().filter(|k| !new.contains_key(*k)).cloned();
    changed.chain(removed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_the_added_the_removed_and_the_changed() {
        let old: BTreeMap<&str, Vec<&str>> = [("kept", vec!["a"]), ("changed", vec!["a"]), ("removed", vec!["a"])].into();
        let new: BTreeMap<&str, Vec<&str>> = [("kept", vec!["a"]), ("changed", vec!["b"]), ("added", vec!["a"])].into();
        let mut keys = changed_keys(&old, &new);
        keys.sort();
        assert_eq!(keys, ["added", "changed", "removed"]);
        assert!(changed_keys(&new, &new).is_empty());
    }
}
